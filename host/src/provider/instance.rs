//! One instantiated provider: a fresh store per CLI invocation, with typed calls that run
//! under the provider's limits and grant.
//!
//! The host side of the imports lives here too: `http` hands every request to the
//! [`HttpGateway`] (which enforces the grant) and `log` forwards lines into `tracing`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use wasmtime::Store;
use wasmtime::component::{Component, HasSelf, Linker};

use super::api::{self, ProviderError};
use super::bindings::cbx::provider::{http as wit_http, log as wit_log, types as wit_types};
use super::bindings::{ProviderWorld, ProviderWorldPre};
use super::engine::Engine;
use super::limits::{CallBudget, LimitHit, Limits, MemoryLimiter};
use crate::grant::egress::Denial;
use crate::grant::http::{HttpEvent, HttpFailure, HttpGateway, OutboundRequest};
use crate::redact::Redactor;

/// Most log lines one call may emit; the rest are dropped with a note.
const MAX_LOG_LINES_PER_CALL: u32 = 1000;
/// Longest log line kept, in bytes.
const MAX_LOG_LINE: usize = 4096;

/// Something a provider did that an auditor wants to know.
#[derive(Debug, Clone)]
pub enum ProviderEvent {
    /// An HTTP request (allowed or denied).
    Http(HttpEvent),
    /// A call failed: a limit was hit (`limit: true`) or the component misbehaved.
    Fault {
        /// The provider.
        provider: String,
        /// The operation.
        op: &'static str,
        /// Whether a limit was hit.
        limit: bool,
        /// What happened.
        detail: String,
    },
}

/// A callback that sees every [`ProviderEvent`].
pub type ProviderObserver = Arc<dyn Fn(&ProviderEvent) + Send + Sync>;

/// Everything the host keeps for one provider store.
pub struct HostState {
    provider: String,
    gateway: HttpGateway,
    redactor: Redactor,
    memory: MemoryLimiter,
    budget: CallBudget,
    limits: Limits,
    denial: Option<Denial>,
    events: Vec<HttpEvent>,
    log_lines: u32,
    observer: Option<ProviderObserver>,
    op: &'static str,
    wasi: wasmtime_wasi::WasiCtx,
    table: wasmtime::component::ResourceTable,
    sockets: super::wasi::SocketAttempts,
}

impl wasmtime_wasi::WasiView for HostState {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wit_types::Host for HostState {}

impl wit_http::Host for HostState {
    async fn send(
        &mut self,
        request: wit_http::Request,
    ) -> Result<wit_http::Response, wit_http::HttpError> {
        let method = match request.method {
            wit_http::Method::Get => "GET",
            wit_http::Method::Head => "HEAD",
            wit_http::Method::Post => "POST",
            wit_http::Method::Put => "PUT",
            wit_http::Method::Patch => "PATCH",
            wit_http::Method::Delete => "DELETE",
        };
        let outbound = OutboundRequest {
            method: method.to_string(),
            url: request.url,
            headers: request.headers,
            body: request.body,
            timeout: request
                .timeout_ms
                .map(|ms| Duration::from_millis(ms.into())),
        };
        let (result, events) = self.gateway.send(outbound, self.budget.deadline).await;
        for mut event in events {
            event.operation = self.op;
            tracing::debug!(
                provider = %self.provider,
                method = %event.method,
                url = %event.url,
                status = ?event.status,
                bytes = event.bytes,
                credentials = ?event.credentials,
                outcome = event.outcome,
                millis = event.millis,
                "provider http request"
            );
            if let Some(observer) = &self.observer {
                observer(&ProviderEvent::Http(event.clone()));
            }
            self.events.push(event);
        }
        match result {
            Ok(r) => Ok(wit_http::Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Err(HttpFailure::Denied(d)) => {
                let text = d.to_string();
                if self.denial.is_none() {
                    self.denial = Some(d);
                }
                Err(wit_http::HttpError::Denied(text))
            }
            Err(HttpFailure::Timeout(m)) => Err(wit_http::HttpError::Timeout(m)),
            Err(HttpFailure::Connect(m)) => Err(wit_http::HttpError::Connect(m)),
            Err(HttpFailure::TooLarge(cap)) => Err(wit_http::HttpError::TooLarge(cap)),
            Err(HttpFailure::Invalid(m)) => Err(wit_http::HttpError::InvalidRequest(m)),
            Err(HttpFailure::Other(m)) => Err(wit_http::HttpError::Other(m)),
        }
    }
}

impl wit_log::Host for HostState {
    async fn log(&mut self, level: wit_log::Level, message: String) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES_PER_CALL {
            if self.log_lines == MAX_LOG_LINES_PER_CALL + 1 {
                tracing::warn!(provider = %self.provider, "provider logged more than {MAX_LOG_LINES_PER_CALL} lines in one call; dropping the rest");
            }
            return;
        }
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let message = self.redactor.redact(&message);
        let p = &self.provider;
        match level {
            wit_log::Level::Trace => tracing::trace!(provider = %p, "{message}"),
            wit_log::Level::Debug => tracing::debug!(provider = %p, "{message}"),
            wit_log::Level::Info => tracing::info!(provider = %p, "{message}"),
            wit_log::Level::Warn => tracing::warn!(provider = %p, "{message}"),
            wit_log::Level::Error => tracing::error!(provider = %p, "{message}"),
        }
    }
}

/// Why a provider call failed.
#[derive(Debug)]
pub enum CallError {
    /// The provider returned one of the contract's typed errors.
    Provider(ProviderError),
    /// The provider made a request its grant does not allow. Always fatal to the operation.
    Denied(Denial),
    /// The component failed: it trapped, hit a limit or returned something unusable.
    Fault {
        /// The provider.
        provider: String,
        /// The operation.
        op: &'static str,
        /// What happened.
        message: String,
        /// The limit it hit, if that was the cause.
        limit: Option<LimitHit>,
    },
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Provider(e) => write!(f, "{}", provider_error_text(e)),
            CallError::Denied(d) => write!(f, "{d}"),
            CallError::Fault {
                provider,
                op,
                message,
                ..
            } => write!(f, "provider {provider} failed in `{op}`: {message}"),
        }
    }
}

impl std::error::Error for CallError {}

/// The message inside a typed provider error.
pub fn provider_error_text(e: &ProviderError) -> String {
    match e {
        ProviderError::InvalidConfig(m)
        | ProviderError::Unauthorized(m)
        | ProviderError::Forbidden(m)
        | ProviderError::NotFound(m)
        | ProviderError::Conflict(m)
        | ProviderError::Quota(m)
        | ProviderError::Unavailable(m)
        | ProviderError::Other(m) => m.clone(),
        ProviderError::RateLimited(r) => r.message.clone(),
    }
}

struct Live {
    store: Store<HostState>,
    bindings: ProviderWorld,
    /// A call was abandoned or trapped; the instance must not be entered again.
    poisoned: bool,
    /// `configure` succeeded on this instance.
    configured: bool,
}

/// A loaded provider: its compiled component, its grant and (once called) a live instance.
pub struct ProviderInstance {
    name: String,
    engine: Engine,
    pre: ProviderWorldPre<HostState>,
    gateway: HttpGateway,
    redactor: Redactor,
    limits: Limits,
    live: Option<Live>,
    settings: Option<api::Settings>,
    observer: Option<ProviderObserver>,
}

macro_rules! provider_call {
    ($self:ident, $op:literal, |$b:ident, $s:ident| $call:expr) => {{
        $self.ensure_configured().await?;
        $self.invoke($op, |$b, $s| Box::pin($call)).await
    }};
}

type CallFuture<'a, R> =
    std::pin::Pin<Box<dyn std::future::Future<Output = wasmtime::Result<R>> + Send + 'a>>;

impl ProviderInstance {
    /// Links `component` against the host imports. Instantiation happens on the first call.
    pub fn new(
        name: &str,
        engine: &Engine,
        component: &Component,
        gateway: HttpGateway,
        redactor: Redactor,
        limits: Limits,
    ) -> Result<ProviderInstance> {
        let mut linker: Linker<HostState> = Linker::new(engine.wasmtime());
        ProviderWorld::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)?;
        // WASI is hundreds of host functions; linking them is most of the cost of this call
        // (issue 5), so only components that import WASI (built for wasm32-wasip2) get it.
        let imports_wasi = component
            .component_type()
            .imports(engine.wasmtime())
            .any(|(name, _)| name.starts_with("wasi:"));
        if imports_wasi {
            wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        }
        let pre = linker
            .instantiate_pre(component)
            .map_err(anyhow::Error::from)
            .map_err(|e| {
                anyhow::anyhow!(
                    "provider {name} does not fit cbx's contract ({}): {e:#}",
                    api::CONTRACT
                )
            })?;
        let pre = ProviderWorldPre::new(pre).map_err(|e| {
            anyhow::anyhow!(
                "provider {name} does not export the provider interface of {}: {e:#}",
                api::CONTRACT
            )
        })?;
        Ok(ProviderInstance {
            name: name.to_string(),
            engine: engine.clone(),
            pre,
            gateway,
            redactor,
            limits,
            live: None,
            settings: None,
            observer: None,
        })
    }

    /// The provider's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The redactor shared with this provider's host state.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Calls `observer` with every request, denial and failure of the provider (audit log).
    pub fn observe(&mut self, observer: ProviderObserver) {
        self.observer = Some(observer);
    }

    /// The HTTP requests made so far by the live instance.
    pub fn http_events(&self) -> &[HttpEvent] {
        self.live
            .as_ref()
            .map_or(&[], |l| l.store.data().events.as_slice())
    }

    async fn instantiate(&mut self) -> Result<(), CallError> {
        let sockets = super::wasi::SocketAttempts::default();
        let state = HostState {
            provider: self.name.clone(),
            gateway: self.gateway.clone(),
            redactor: self.redactor.clone(),
            memory: MemoryLimiter::new(self.limits.memory_bytes),
            budget: CallBudget::start(&self.limits),
            limits: self.limits,
            denial: None,
            events: Vec::new(),
            log_lines: 0,
            observer: self.observer.clone(),
            op: "instantiate",
            wasi: super::wasi::deny_by_default(&self.name, &self.redactor, sockets.clone()),
            table: wasmtime::component::ResourceTable::new(),
            sockets,
        };
        let mut store = Store::new(self.engine.wasmtime(), state);
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
        let bindings = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| self.fault("instantiate", e, &store))
            .inspect_err(|e| self.report(e))?;
        self.live = Some(Live {
            store,
            bindings,
            poisoned: false,
            configured: false,
        });
        Ok(())
    }

    /// Runs one export call under a fresh budget, turning traps, limit breaches and denials
    /// into [`CallError`]s.
    async fn invoke<R: Send>(
        &mut self,
        op: &'static str,
        call: impl for<'a> FnOnce(
            &'a ProviderWorld,
            &'a mut Store<HostState>,
        ) -> CallFuture<'a, Result<R, ProviderError>>,
    ) -> Result<R, CallError> {
        if self.live.as_ref().is_none_or(|l| l.poisoned) {
            self.live = None;
            self.instantiate().await?;
        }
        let wall = self.limits.wall_per_call;
        let live = self.live.as_mut().expect("instantiated above");
        {
            let state = live.store.data_mut();
            state.budget = CallBudget::start(&state.limits);
            state.op = op;
            state.denial = None;
            state.log_lines = 0;
            state.memory.hit = None;
        }
        live.store.set_epoch_deadline(1);
        // Poisoned until the call returns normally: a dropped (cancelled) call leaves it set.
        live.poisoned = true;
        let outcome = {
            let Live {
                store, bindings, ..
            } = live;
            tokio::time::timeout(wall + Duration::from_secs(2), call(bindings, store)).await
        };
        let denial = self
            .live
            .as_mut()
            .and_then(|l| l.store.data_mut().denial.take());
        let denial = self.socket_denials(op).or(denial);
        match outcome {
            Err(_elapsed) => {
                let err = CallError::Fault {
                    provider: self.name.clone(),
                    op,
                    message: LimitHit::WallClock(wall).to_string(),
                    limit: Some(LimitHit::WallClock(wall)),
                };
                self.report(&err);
                Err(err)
            }
            Ok(Err(trap)) => {
                let live = self.live.as_ref().expect("still live");
                let err = self.fault(op, trap, &live.store);
                self.report(&err);
                Err(denial.map_or(err, CallError::Denied))
            }
            Ok(Ok(result)) => {
                if let Some(live) = self.live.as_mut() {
                    live.poisoned = false;
                }
                if let Some(d) = denial {
                    return Err(CallError::Denied(d));
                }
                result.map_err(CallError::Provider)
            }
        }
    }

    /// Turns the socket uses the provider attempted during the call (all refused by WASI) into
    /// a denial and audit events, so they are never silent.
    fn socket_denials(&mut self, op: &'static str) -> Option<Denial> {
        let live = self.live.as_mut()?;
        let attempts: Vec<String> = live
            .store
            .data()
            .sockets
            .lock()
            .map(|mut a| std::mem::take(&mut *a))
            .unwrap_or_default();
        let first = attempts.first()?.clone();
        let reason = "providers may not open sockets; they reach the network only through the host's http import".to_string();
        for what in &attempts {
            if let Some(observer) = &self.observer {
                observer(&ProviderEvent::Http(HttpEvent {
                    provider: self.name.clone(),
                    operation: op,
                    method: "SOCKET".into(),
                    url: what.clone(),
                    status: None,
                    bytes: 0,
                    credentials: Vec::new(),
                    outcome: "denied",
                    detail: Some(reason.clone()),
                    millis: 0,
                }));
            }
        }
        Some(Denial {
            provider: self.name.clone(),
            method: "an attempt to".into(),
            url: first,
            reason,
            allow_with: None,
        })
    }

    fn report(&self, err: &CallError) {
        if let (
            Some(observer),
            CallError::Fault {
                provider,
                op,
                message,
                limit,
            },
        ) = (&self.observer, err)
        {
            observer(&ProviderEvent::Fault {
                provider: provider.clone(),
                op,
                limit: limit.is_some(),
                detail: message.clone(),
            });
        }
    }

    fn fault(&self, op: &'static str, err: wasmtime::Error, store: &Store<HostState>) -> CallError {
        let limit = err
            .downcast_ref::<LimitHit>()
            .copied()
            .or(store.data().memory.hit);
        let message = if let Some(hit) = limit {
            hit.to_string()
        } else if let Some(trap) = err.downcast_ref::<wasmtime::Trap>() {
            match trap {
                wasmtime::Trap::StackOverflow => {
                    "ran out of stack (unbounded recursion?)".to_string()
                }
                wasmtime::Trap::UnreachableCodeReached => {
                    "crashed (it panicked or aborted; run with -v to see its log)".to_string()
                }
                wasmtime::Trap::MemoryOutOfBounds => {
                    "crashed: out-of-bounds memory access (in Rust guests also the sign of unbounded recursion)".to_string()
                }
                other => format!("crashed: {other}"),
            }
        } else {
            format!("{:#}", anyhow::Error::from(err))
        };
        CallError::Fault {
            provider: self.name.clone(),
            op,
            message: self.redactor.redact(&message),
            limit,
        }
    }

    /// Replays the remembered settings into an instance that has not seen them (a fresh one,
    /// or one re-created after a fault).
    async fn ensure_configured(&mut self) -> Result<(), CallError> {
        let ready = self
            .live
            .as_ref()
            .is_some_and(|l| !l.poisoned && l.configured);
        if !ready && let Some(settings) = self.settings.clone() {
            self.configure(settings).await?;
        }
        Ok(())
    }

    /// `describe`: the provider's name, version, options and features.
    pub async fn describe(&mut self) -> Result<api::ProviderInfo, CallError> {
        self.invoke("describe", |b, s| {
            Box::pin(async move {
                b.cbx_provider_provider()
                    .call_describe(s)
                    .await
                    .map(Ok::<_, ProviderError>)
            })
        })
        .await
    }

    /// `configure`: hands over this invocation's settings; remembered for re-instantiation.
    pub async fn configure(&mut self, settings: api::Settings) -> Result<api::Profile, CallError> {
        self.settings = Some(settings.clone());
        let profile = self
            .invoke("configure", move |b, s| {
                Box::pin(
                    async move { b.cbx_provider_provider().call_configure(s, &settings).await },
                )
            })
            .await?;
        if let Some(live) = self.live.as_mut() {
            live.configured = true;
        }
        Ok(profile)
    }

    /// `doctor`: read-only readiness checks.
    pub async fn doctor(&mut self) -> Result<Vec<api::Check>, CallError> {
        provider_call!(self, "doctor", |b, s| async move {
            b.cbx_provider_provider().call_doctor(s).await
        })
    }

    /// `create`: asks the service for a new sandbox.
    pub async fn create(
        &mut self,
        request: &api::CreateRequest,
    ) -> Result<api::Sandbox, CallError> {
        let request = request.clone();
        provider_call!(self, "create", |b, s| async move {
            b.cbx_provider_provider().call_create(s, &request).await
        })
    }

    /// `get`: one sandbox by id.
    pub async fn get(&mut self, id: &str) -> Result<api::Sandbox, CallError> {
        let id = id.to_string();
        provider_call!(self, "get", |b, s| async move {
            b.cbx_provider_provider().call_get(s, &id).await
        })
    }

    /// `list`: sandboxes carrying all of `labels`.
    pub async fn list(
        &mut self,
        labels: &[(String, String)],
    ) -> Result<Vec<api::Sandbox>, CallError> {
        let labels = labels.to_vec();
        provider_call!(self, "list", |b, s| async move {
            b.cbx_provider_provider().call_list(s, &labels).await
        })
    }

    /// `start`: starts a stopped sandbox.
    pub async fn start(&mut self, id: &str) -> Result<api::Sandbox, CallError> {
        let id = id.to_string();
        provider_call!(self, "start", |b, s| async move {
            b.cbx_provider_provider().call_start(s, &id).await
        })
    }

    /// `stop`: stops a running sandbox.
    pub async fn stop(&mut self, id: &str) -> Result<api::Sandbox, CallError> {
        let id = id.to_string();
        provider_call!(self, "stop", |b, s| async move {
            b.cbx_provider_provider().call_stop(s, &id).await
        })
    }

    /// `delete`: deletes a sandbox.
    pub async fn delete(&mut self, id: &str) -> Result<(), CallError> {
        let id = id.to_string();
        provider_call!(self, "delete", |b, s| async move {
            b.cbx_provider_provider().call_delete(s, &id).await
        })
    }

    /// `set-labels`: replaces all labels of a sandbox.
    pub async fn set_labels(
        &mut self,
        id: &str,
        labels: &[(String, String)],
    ) -> Result<api::Sandbox, CallError> {
        let (id, labels) = (id.to_string(), labels.to_vec());
        provider_call!(self, "set-labels", |b, s| async move {
            b.cbx_provider_provider()
                .call_set_labels(s, &id, &labels)
                .await
        })
    }

    /// `touch`: resets a sandbox's idle timer.
    pub async fn touch(&mut self, id: &str) -> Result<(), CallError> {
        let id = id.to_string();
        provider_call!(self, "touch", |b, s| async move {
            b.cbx_provider_provider().call_touch(s, &id).await
        })
    }

    /// `mint-ssh-access`: SSH access to a ready sandbox.
    pub async fn mint_ssh_access(&mut self, id: &str) -> Result<api::SshAccess, CallError> {
        let id = id.to_string();
        provider_call!(self, "mint-ssh-access", |b, s| async move {
            b.cbx_provider_provider().call_mint_ssh_access(s, &id).await
        })
    }
}
