//! One provider store: what the host keeps for an instance (its grant's gateway, budgets,
//! limits, the call in progress) and how a fresh store is prepared for it — the "prepare"
//! stage of loading, run for every new instance.

use wasmtime::Store;
use wasmtime::component::ResourceTable;

use super::engine::Engine;
use super::events::ProviderObserver;
use super::imports::wasi::{self, SocketAttempts};
use std::sync::Arc;

use super::limits::{CallBudget, LimitHit, Limits, MemoryLimiter, RunBudget};
use crate::grant::egress::Denial;
use crate::grant::http::{HttpEvent, HttpGateway};
use crate::redact::Redactor;

/// Everything the host keeps for one provider store.
pub struct HostState {
    /// The provider's name.
    pub(super) provider: String,
    /// Performs its HTTP requests within its grant.
    pub(super) gateway: HttpGateway,
    /// Scrubs secrets from what it logs.
    pub(super) redactor: Redactor,
    pub(super) memory: MemoryLimiter,
    /// The budget of the call in progress.
    pub(super) budget: CallBudget,
    pub(super) limits: Limits,
    /// The first request of the call the grant refused.
    pub(super) denial: Option<Denial>,
    /// Every HTTP request of this store.
    pub(super) events: Vec<HttpEvent>,
    /// Log lines of the call in progress.
    pub(super) log_lines: u32,
    /// HTTP requests of the call in progress.
    pub(super) requests: u32,
    /// What the provider has used of its per-run budgets (shared by its instances).
    pub(super) run: Arc<RunBudget>,
    pub(super) observer: Option<ProviderObserver>,
    /// The operation in progress.
    pub(super) op: &'static str,
    wasi: wasmtime_wasi::WasiCtx,
    table: ResourceTable,
    /// Socket uses the provider attempted (all refused).
    pub(super) sockets: SocketAttempts,
}

impl wasmtime_wasi::WasiView for HostState {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl HostState {
    /// Starts a new call: a fresh budget, nothing denied or logged yet.
    pub(super) fn begin(&mut self, op: &'static str) {
        self.budget = CallBudget::start(&self.limits);
        self.op = op;
        self.denial = None;
        self.log_lines = 0;
        self.requests = 0;
        self.memory.hit = None;
    }
}

/// A fresh store for provider `name`: its memory cap, and CPU and wall-clock budgets checked
/// on every epoch tick.
pub(super) fn prepare(
    engine: &Engine,
    name: &str,
    gateway: HttpGateway,
    redactor: &Redactor,
    limits: Limits,
    observer: Option<ProviderObserver>,
    run: Arc<RunBudget>,
) -> Store<HostState> {
    let sockets = SocketAttempts::default();
    let state = HostState {
        provider: name.to_string(),
        gateway,
        redactor: redactor.clone(),
        memory: MemoryLimiter::new(limits.memory_bytes),
        budget: CallBudget::start(&limits),
        limits,
        denial: None,
        events: Vec::new(),
        log_lines: 0,
        requests: 0,
        run: run.clone(),
        observer,
        op: "instantiate",
        wasi: wasi::deny_by_default(name, redactor, sockets.clone(), run),
        table: ResourceTable::new(),
        sockets,
    };
    let mut store = Store::new(engine.wasmtime(), state);
    store.limiter(|s| &mut s.memory);
    store.epoch_deadline_callback(|mut ctx| {
        let state = ctx.data_mut();
        if std::time::Instant::now() >= state.budget.deadline {
            return Err(wasmtime::Error::new(LimitHit::WallClock(
                state.limits.wall_per_call,
            )));
        }
        if state.budget.ticks_left == 0 {
            return Err(wasmtime::Error::new(LimitHit::Cpu(
                state.limits.cpu_per_call,
            )));
        }
        state.budget.ticks_left -= 1;
        Ok(wasmtime::UpdateDeadline::Yield(1))
    });
    store.set_epoch_deadline(1);
    store
}
