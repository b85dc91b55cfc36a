//! One provider, linked and callable: a fresh store per CLI invocation (prepared again after a
//! fault), and typed calls of the contract's exports that all go through one closure-taking
//! [`ProviderInstance::call`], which runs them under the provider's limits and grant.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use wasmtime::Store;
use wasmtime::component::{Component, HasSelf, Linker};

use super::bindings::api::{self, ProviderError};
use super::bindings::capable::exports::cbx::provider::{checkpoint, fork};
use super::bindings::{ProviderWorld, ProviderWorldPre};
use super::bounds::Bounded;
use super::capability::{Capability, Forked};
use super::engine::Engine;
use super::events::{ProviderEvent, ProviderObserver};
use super::failure::CallError;
use super::limits::{LimitHit, Limits, RunBudget};
use super::store::{self, HostState};
use crate::grant::egress::Denial;
use crate::grant::http::{HttpEvent, HttpGateway, HttpOutcome};
use crate::redact::Redactor;

/// The exports of one live instance: the core interface and the capabilities it offers.
struct Exports {
    core: ProviderWorld,
    checkpoint: Option<checkpoint::Guest>,
    fork: Option<fork::Guest>,
}

/// Where to find the optional exports in the component, looked up once at link time.
#[derive(Clone, Default)]
struct CapabilityIndices {
    checkpoint: Option<checkpoint::GuestIndices>,
    fork: Option<fork::GuestIndices>,
}

struct Live {
    store: Store<HostState>,
    bindings: Exports,
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
    capabilities: CapabilityIndices,
    gateway: HttpGateway,
    redactor: Redactor,
    limits: Limits,
    live: Option<Live>,
    settings: Option<api::Settings>,
    observer: Option<ProviderObserver>,
    /// What this provider used of its per-run budgets, across re-instantiations.
    run: Arc<RunBudget>,
}

/// One export call, given the instance's bindings and store.
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
        let capabilities = CapabilityIndices {
            checkpoint: checkpoint::GuestIndices::new(pre.instance_pre()).ok(),
            fork: fork::GuestIndices::new(pre.instance_pre()).ok(),
        };
        Ok(ProviderInstance {
            name: name.to_string(),
            engine: engine.clone(),
            pre,
            capabilities,
            gateway,
            redactor,
            limits,
            live: None,
            settings: None,
            observer: None,
            run: Arc::default(),
        })
    }

    /// The provider's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The gateway its HTTP requests go through.
    pub fn gateway(&self) -> &HttpGateway {
        &self.gateway
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

    /// A fresh instance in a freshly prepared store.
    async fn instantiate(&mut self) -> Result<(), CallError> {
        let mut store = store::prepare(
            &self.engine,
            &self.name,
            self.gateway.clone(),
            &self.redactor,
            self.limits,
            self.observer.clone(),
            self.run.clone(),
        );
        let bindings = self
            .link_exports(&mut store)
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

    /// Instantiates the component in `store` and finds its exports: the core interface, and
    /// each capability it exports (whose types are checked here).
    async fn link_exports(&self, store: &mut Store<HostState>) -> wasmtime::Result<Exports> {
        let instance = self
            .pre
            .instance_pre()
            .instantiate_async(&mut *store)
            .await?;
        let core = ProviderWorld::new(&mut *store, &instance)?;
        let checkpoint = match &self.capabilities.checkpoint {
            Some(i) => Some(i.load(&mut *store, &instance)?),
            None => None,
        };
        let fork = match &self.capabilities.fork {
            Some(i) => Some(i.load(&mut *store, &instance)?),
            None => None,
        };
        Ok(Exports {
            core,
            checkpoint,
            fork,
        })
    }

    /// The capabilities the component exports.
    pub fn capabilities(&self) -> Vec<Capability> {
        let c = &self.capabilities;
        [
            (Capability::Checkpoint, c.checkpoint.is_some()),
            (Capability::Fork, c.fork.is_some()),
        ]
        .into_iter()
        .filter_map(|(cap, has)| has.then_some(cap))
        .collect()
    }

    /// Runs one lease operation: an instance that has not seen the settings (a fresh one, or
    /// one re-created after a fault) gets them first; then [`ProviderInstance::invoke`].
    async fn call<R: Send + Bounded>(
        &mut self,
        op: &'static str,
        call: impl for<'a> FnOnce(
            &'a Exports,
            &'a mut Store<HostState>,
        ) -> CallFuture<'a, Result<R, ProviderError>>,
    ) -> Result<R, CallError> {
        self.ensure_configured().await?;
        self.invoke(op, call).await
    }

    /// Runs one export call under a fresh budget, turning traps, limit breaches and denials
    /// into [`CallError`]s.
    async fn invoke<R: Send + Bounded>(
        &mut self,
        op: &'static str,
        call: impl for<'a> FnOnce(
            &'a Exports,
            &'a mut Store<HostState>,
        ) -> CallFuture<'a, Result<R, ProviderError>>,
    ) -> Result<R, CallError> {
        if self.live.as_ref().is_none_or(|l| l.poisoned) {
            self.live = None;
            self.instantiate().await?;
        }
        let wall = self.limits.wall_per_call;
        let live = self.live.as_mut().expect("instantiated above");
        live.store.data_mut().begin(op);
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
                self.within_bounds(op, &result)?;
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
                    outcome: HttpOutcome::Denied,
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

    /// Checks what a call returned against the boundary's caps: a breach is a fault of the
    /// call, audited once, and what was returned is dropped unseen.
    fn within_bounds<R: Bounded>(
        &self,
        op: &'static str,
        result: &Result<R, ProviderError>,
    ) -> Result<(), CallError> {
        let checked = match result {
            Ok(v) => v.bounded(),
            Err(e) => e.bounded(),
        };
        let Err(breach) = checked else {
            return Ok(());
        };
        let err = CallError::Fault {
            provider: self.name.clone(),
            op,
            message: breach.message,
            limit: breach.limit,
        };
        self.report(&err);
        Err(err)
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
                let info = b.core.cbx_provider_provider().call_describe(s).await?;
                Ok(Ok(info))
            })
        })
        .await
    }

    /// `configure`: hands over this invocation's settings; remembered for re-instantiation.
    pub async fn configure(&mut self, settings: api::Settings) -> Result<api::Profile, CallError> {
        self.settings = Some(settings.clone());
        let profile = self
            .invoke("configure", move |b, s| {
                Box::pin(async move {
                    b.core
                        .cbx_provider_provider()
                        .call_configure(s, &settings)
                        .await
                })
            })
            .await?;
        if let Some(live) = self.live.as_mut() {
            live.configured = true;
        }
        Ok(profile)
    }

    /// `doctor`: read-only readiness checks.
    pub async fn doctor(&mut self) -> Result<Vec<api::Check>, CallError> {
        self.call("doctor", |b, s| {
            Box::pin(async move { b.core.cbx_provider_provider().call_doctor(s).await })
        })
        .await
    }

    /// `create`: asks the service for a new sandbox.
    pub async fn create(
        &mut self,
        request: &api::CreateRequest,
    ) -> Result<api::Sandbox, CallError> {
        let request = request.clone();
        self.call("create", |b, s| {
            Box::pin(async move {
                b.core
                    .cbx_provider_provider()
                    .call_create(s, &request)
                    .await
            })
        })
        .await
    }

    /// `get`: one sandbox by id.
    pub async fn get(&mut self, id: &str) -> Result<api::Sandbox, CallError> {
        let id = id.to_string();
        self.call("get", |b, s| {
            Box::pin(async move { b.core.cbx_provider_provider().call_get(s, &id).await })
        })
        .await
    }

    /// `list`: sandboxes carrying all of `labels`.
    pub async fn list(
        &mut self,
        labels: &[(String, String)],
    ) -> Result<Vec<api::Sandbox>, CallError> {
        let labels = labels.to_vec();
        self.call("list", |b, s| {
            Box::pin(async move { b.core.cbx_provider_provider().call_list(s, &labels).await })
        })
        .await
    }

    /// `start`: starts a stopped sandbox.
    pub async fn start(&mut self, id: &str) -> Result<api::Sandbox, CallError> {
        let id = id.to_string();
        self.call("start", |b, s| {
            Box::pin(async move { b.core.cbx_provider_provider().call_start(s, &id).await })
        })
        .await
    }

    /// `stop`: stops a running sandbox.
    pub async fn stop(&mut self, id: &str) -> Result<api::Sandbox, CallError> {
        let id = id.to_string();
        self.call("stop", |b, s| {
            Box::pin(async move { b.core.cbx_provider_provider().call_stop(s, &id).await })
        })
        .await
    }

    /// `delete`: deletes a sandbox.
    pub async fn delete(&mut self, id: &str) -> Result<(), CallError> {
        let id = id.to_string();
        self.call("delete", |b, s| {
            Box::pin(async move { b.core.cbx_provider_provider().call_delete(s, &id).await })
        })
        .await
    }

    /// `set-labels`: replaces all labels of a sandbox.
    pub async fn set_labels(
        &mut self,
        id: &str,
        labels: &[(String, String)],
    ) -> Result<api::Sandbox, CallError> {
        let (id, labels) = (id.to_string(), labels.to_vec());
        self.call("set-labels", |b, s| {
            Box::pin(async move {
                b.core
                    .cbx_provider_provider()
                    .call_set_labels(s, &id, &labels)
                    .await
            })
        })
        .await
    }

    /// `touch`: resets a sandbox's idle timer.
    pub async fn touch(&mut self, id: &str) -> Result<(), CallError> {
        let id = id.to_string();
        self.call("touch", |b, s| {
            Box::pin(async move { b.core.cbx_provider_provider().call_touch(s, &id).await })
        })
        .await
    }

    /// `mint-ssh-access`: SSH access to a ready sandbox.
    pub async fn mint_ssh_access(&mut self, id: &str) -> Result<api::SshAccess, CallError> {
        let id = id.to_string();
        self.call("mint-ssh-access", |b, s| {
            Box::pin(async move {
                b.core
                    .cbx_provider_provider()
                    .call_mint_ssh_access(s, &id)
                    .await
            })
        })
        .await
    }

    /// `checkpoint.create-checkpoint`: starts saving sandbox `id` as checkpoint `name`.
    pub async fn create_checkpoint(&mut self, id: &str, name: &str) -> Result<(), CallError> {
        let (id, name) = (id.to_string(), name.to_string());
        self.call("create-checkpoint", |b, s| {
            Box::pin(async move {
                match &b.checkpoint {
                    Some(c) => c.call_create_checkpoint(s, &id, &name).await,
                    None => Ok(Err(lacks(Capability::Checkpoint))),
                }
            })
        })
        .await
    }

    /// `checkpoint.get-checkpoint`: one checkpoint by name.
    pub async fn get_checkpoint(&mut self, name: &str) -> Result<api::CheckpointInfo, CallError> {
        let name = name.to_string();
        self.call("get-checkpoint", |b, s| {
            Box::pin(async move {
                match &b.checkpoint {
                    Some(c) => c.call_get_checkpoint(s, &name).await,
                    None => Ok(Err(lacks(Capability::Checkpoint))),
                }
            })
        })
        .await
    }

    /// `checkpoint.list-checkpoints`: checkpoints whose names start with `prefix`.
    pub async fn list_checkpoints(
        &mut self,
        prefix: &str,
    ) -> Result<Vec<api::CheckpointInfo>, CallError> {
        let prefix = prefix.to_string();
        self.call("list-checkpoints", |b, s| {
            Box::pin(async move {
                match &b.checkpoint {
                    Some(c) => c.call_list_checkpoints(s, &prefix).await,
                    None => Ok(Err(lacks(Capability::Checkpoint))),
                }
            })
        })
        .await
    }

    /// `checkpoint.delete-checkpoint`: deletes a checkpoint by id.
    pub async fn delete_checkpoint(&mut self, id: &str) -> Result<(), CallError> {
        let id = id.to_string();
        self.call("delete-checkpoint", |b, s| {
            Box::pin(async move {
                match &b.checkpoint {
                    Some(c) => c.call_delete_checkpoint(s, &id).await,
                    None => Ok(Err(lacks(Capability::Checkpoint))),
                }
            })
        })
        .await
    }

    /// `checkpoint.create-from-checkpoint`: a new sandbox from checkpoint `name`.
    pub async fn create_from_checkpoint(
        &mut self,
        name: &str,
        request: &api::CreateRequest,
    ) -> Result<api::Sandbox, CallError> {
        let (name, request) = (name.to_string(), request.clone());
        self.call("create-from-checkpoint", |b, s| {
            Box::pin(async move {
                match &b.checkpoint {
                    Some(c) => c.call_create_from_checkpoint(s, &name, &request).await,
                    None => Ok(Err(lacks(Capability::Checkpoint))),
                }
            })
        })
        .await
    }

    /// `fork.fork`: copies sandbox `id` into a new one, or says it cannot.
    pub async fn fork(
        &mut self,
        id: &str,
        request: &api::CreateRequest,
    ) -> Result<Forked, CallError> {
        let (id, request) = (id.to_string(), request.clone());
        self.call("fork", |b, s| {
            Box::pin(async move {
                let Some(f) = &b.fork else {
                    return Ok(Err(lacks(Capability::Fork)));
                };
                Ok(match f.call_fork(s, &id, &request).await? {
                    Ok(sandbox) => Ok(Forked::Sandbox(sandbox)),
                    Err(api::ForkError::NotForkable(why)) => Ok(Forked::NotForkable(why)),
                    Err(api::ForkError::Failed(e)) => Err(e),
                })
            })
        })
        .await
    }
}

/// The error a capability call gives on a provider without it (commands check first, so this
/// is a host bug if it is ever seen).
fn lacks(capability: Capability) -> ProviderError {
    ProviderError::InvalidConfig(format!(
        "the provider does not offer the `{}` capability",
        capability.as_str()
    ))
}
