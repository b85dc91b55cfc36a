//! The Daytona simulator: a stateful fake of Daytona's sandbox REST API on loopback, for cbx's
//! end-to-end tests and its demo (`tests/demo.sh` runs the `daytona-sim` binary). See
//! `shared/reference/daytona-api.md` for the API it imitates. [`sshd`] serves the simulated
//! sandboxes over a real sshd. This crate builds no WebAssembly: the demo compiles only cbx,
//! its providers and this.
//!
//! Start it with [`DaytonaSim::start`] (inside a tokio runtime) or
//! [`DaytonaSim::start_background`] (it brings its own runtime), point the client at
//! [`DaytonaSim::api_url`] with [`DaytonaSim::api_key`], then inspect [`DaytonaSim::requests`]
//! and [`DaytonaSim::sandboxes`], or steer it with [`DaytonaSim::inject`] and
//! [`DaytonaSim::set_state`].

mod auth;
mod capable;
mod control;
mod error;
mod faults;
mod routes;
mod ssh;
pub mod sshd;
mod state;

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub use faults::{Answer, Fault, THROTTLER_PLACEHOLDER};
pub use ssh::{NoSsh, SshBackend, tools_missing_from};
pub use state::{SandboxView, SshTokenView};

use state::{JsonCtx, SshEvent, Store};

/// Snapshot reported for sandboxes created without one (the server's `DEFAULT_SNAPSHOT`).
pub const DEFAULT_SNAPSHOT: &str = "daytonaio/sandbox:0.6.0-slim";

/// A snapshot the simulator knows whose sandboxes have no rsync (but sh and tar), as Daytona's
/// `sandbox-slim` image.
pub const NO_RSYNC_SNAPSHOT: &str = "cbx-test-no-rsync";
/// A snapshot the simulator knows whose sandboxes have neither rsync nor tar.
pub const NO_RSYNC_NO_TAR_SNAPSHOT: &str = "cbx-test-no-rsync-no-tar";
/// A snapshot the simulator knows whose sandboxes fail to start (state `error` with
/// [`FAILING_REASON`]), as one whose image cannot be pulled.
pub const FAILING_SNAPSHOT: &str = "cbx-test-fails-to-start";
/// The `errorReason` of a sandbox made from [`FAILING_SNAPSHOT`].
pub const FAILING_REASON: &str = "Failed to pull image cbx-test-fails-to-start: manifest unknown";
/// The scopes a key needs for sandboxes: create/start/stop/labels/ssh-access, and delete.
pub const SANDBOX_SCOPES: &[&str] = &["write:sandboxes", "delete:sandboxes"];
/// The scopes of the simulator's API key by default: [`SANDBOX_SCOPES`] and, for checkpoints,
/// `delete:snapshots`.
pub const DEFAULT_SCOPES: &[&str] = &["write:sandboxes", "delete:sandboxes", "delete:snapshots"];

/// Regions the simulator knows; another `target` gets 404 "Region not found".
pub const REGIONS: &[&str] = &["us", "eu"];

/// How the simulator behaves; `Default` gives a fast, well-behaved sim.
#[derive(Clone)]
pub struct SimConfig {
    /// Port to bind on 127.0.0.1 (0 picks a free one).
    pub port: u16,
    /// The API key accepted as `Authorization: Bearer <key>`.
    pub api_key: String,
    /// The API key's permission scopes (`GET /api-keys/current`); a route needing one the
    /// key lacks answers 403 `Access denied`. Default: [`DEFAULT_SCOPES`].
    pub api_key_permissions: Vec<String>,
    /// A JWT also accepted, only together with `X-Daytona-Organization-ID: <organization_id>`.
    pub jwt: Option<String>,
    /// The organization id (reported as `organizationId`, required with the JWT).
    pub organization_id: String,
    /// Time from create to `started`.
    pub create_delay: Duration,
    /// Time from `/start` to `started`.
    pub start_delay: Duration,
    /// Time from `/stop` to `stopped` (also `archiving` → `archived`).
    pub stop_delay: Duration,
    /// Time from delete (`destroying`) to gone (404).
    pub delete_delay: Duration,
    /// How long create and `/start` wait for `started` before answering (Daytona: 30 s).
    pub server_wait: Duration,
    /// How long after creation a sandbox first shows up in `GET /sandbox`.
    pub list_lag: Duration,
    /// Answer `GET /sandbox` with a bare array (servers before v0.180), no pagination.
    pub legacy_list: bool,
    /// Cap on the page size of `GET /sandbox`, to force pagination.
    pub max_page_size: usize,
    /// Known snapshot names; any other non-empty `snapshot` on create gets 400. A name with
    /// `no-rsync` (and `no-tar`) makes an image without those tools ([`tools_missing_from`]).
    pub snapshots: Vec<String>,
    /// The SSH side (token → gateway mapping).
    pub ssh: Arc<dyn SshBackend>,
    /// Added to every API request before it is answered (control routes excepted): the
    /// network latency of a remote service.
    pub latency: Duration,
    /// The class of every new sandbox: `container` (Daytona's default; forks refused with
    /// 422) or `linux-vm` (forkable). `DaytonaSim::set_class` changes one sandbox's.
    pub sandbox_class: String,
    /// How long taking a snapshot of a sandbox keeps it `snapshotting`.
    pub snapshot_delay: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            port: 0,
            api_key: random_api_key(),
            api_key_permissions: DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect(),
            jwt: None,
            organization_id: uuid::Uuid::new_v4().to_string(),
            create_delay: Duration::from_millis(300),
            start_delay: Duration::from_millis(200),
            stop_delay: Duration::from_millis(200),
            delete_delay: Duration::from_millis(200),
            server_wait: Duration::ZERO,
            list_lag: Duration::ZERO,
            legacy_list: false,
            max_page_size: 100,
            snapshots: [
                "daytona-small",
                "daytona-medium",
                "daytona-large",
                NO_RSYNC_SNAPSHOT,
                NO_RSYNC_NO_TAR_SNAPSHOT,
                FAILING_SNAPSHOT,
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            ssh: Arc::new(NoSsh),
            latency: Duration::ZERO,
            sandbox_class: "container".into(),
            snapshot_delay: Duration::from_millis(300),
        }
    }
}

impl SimConfig {
    /// Sets every lifecycle delay (create, start, stop, delete) to `delay`.
    pub fn with_delays(mut self, delay: Duration) -> Self {
        self.create_delay = delay;
        self.start_delay = delay;
        self.stop_delay = delay;
        self.delete_delay = delay;
        self
    }
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("port", &self.port)
            .field("api_key_permissions", &self.api_key_permissions)
            .field("jwt", &self.jwt.is_some())
            .field("organization_id", &self.organization_id)
            .field("create_delay", &self.create_delay)
            .field("start_delay", &self.start_delay)
            .field("stop_delay", &self.stop_delay)
            .field("delete_delay", &self.delete_delay)
            .field("server_wait", &self.server_wait)
            .field("list_lag", &self.list_lag)
            .field("legacy_list", &self.legacy_list)
            .field("max_page_size", &self.max_page_size)
            .field("snapshots", &self.snapshots)
            .field("latency", &self.latency)
            .finish_non_exhaustive()
    }
}

/// A random key shaped like Daytona's (`dtn_` + 64 hex digits).
fn random_api_key() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let hex: String = (0..64)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap())
        .collect();
    format!("dtn_{hex}")
}

/// One HTTP request as the simulator received it (control routes under `/_sim/` excluded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Method, upper case.
    pub method: String,
    /// Path without the query, e.g. `/api/sandbox/abc`.
    pub path: String,
    /// Raw query string without `?` (empty when absent).
    pub query: String,
    /// Headers in arrival order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// First value of a header (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn body_json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// Decoded query parameters in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.query.as_bytes())
            .into_owned()
            .collect()
    }

    /// The JSON form used by `GET /_sim/requests` (body as lossy UTF-8).
    pub fn to_json(&self) -> Value {
        json!({
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": String::from_utf8_lossy(&self.body),
        })
    }
}

/// State shared by the handlers and the [`DaytonaSim`] handle.
pub(crate) struct Shared {
    pub config: SimConfig,
    pub json_ctx: JsonCtx,
    store: Mutex<Store>,
    requests: Mutex<Vec<RecordedRequest>>,
    faults: Mutex<Vec<Fault>>,
    /// The API latency now (starts as `config.latency`; see [`DaytonaSim::set_latency`]).
    latency_us: AtomicU64,
}

/// Locks a mutex, ignoring poisoning (a panicking test must not wedge the sim).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Runs `f` on the store after applying due transitions; returns the SSH events it queued.
    fn with_store<R>(&self, f: impl FnOnce(&mut Store) -> R) -> (R, Vec<SshEvent>) {
        let mut store = lock(&self.store);
        store.tick(Instant::now(), chrono::Utc::now());
        let r = f(&mut store);
        let events = std::mem::take(&mut store.outbox);
        (r, events)
    }

    /// [`Self::with_store`], then dispatches the SSH events on a blocking thread.
    pub(crate) async fn locked<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let (r, events) = self.with_store(f);
        if !events.is_empty() {
            let ssh = self.config.ssh.clone();
            let _ = tokio::task::spawn_blocking(move || dispatch(&*ssh, events)).await;
        }
        r
    }

    /// [`Self::with_store`], then dispatches the SSH events on the calling thread.
    pub(crate) fn locked_sync<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let (r, events) = self.with_store(f);
        dispatch(&*self.config.ssh, events);
        r
    }

    /// The API latency now.
    pub(crate) fn latency(&self) -> Duration {
        Duration::from_micros(self.latency_us.load(Ordering::Relaxed))
    }

    /// Appends a request to the log.
    pub(crate) fn record(&self, req: RecordedRequest) {
        lock(&self.requests).push(req);
    }

    /// The request log.
    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    /// Queues a fault.
    pub(crate) fn inject(&self, fault: Fault) {
        if fault.times > 0 {
            lock(&self.faults).push(fault);
        }
    }

    /// Takes one use of the first fault matching the request.
    pub(crate) fn take_fault(&self, method: &str, path: &str) -> Option<Fault> {
        faults::take_fault(&mut lock(&self.faults), method, path)
    }
}

/// Runs SSH events against the backend, in order.
fn dispatch(ssh: &dyn SshBackend, events: Vec<SshEvent>) {
    for e in events {
        match e {
            SshEvent::Revoked(token) => ssh.access_revoked(&token),
            SshEvent::Deleted(id) => ssh.sandbox_deleted(&id),
            SshEvent::Running(id, running) => ssh.sandbox_running(&id, running),
        }
    }
}

/// A running simulator; dropping it stops the server.
pub struct DaytonaSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    ticker: tokio::task::JoinHandle<()>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for DaytonaSim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DaytonaSim")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl DaytonaSim {
    /// Binds 127.0.0.1 (port `config.port`, 0 = any) and serves on the current tokio runtime.
    pub async fn start(config: SimConfig) -> anyhow::Result<DaytonaSim> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port)).await?;
        let addr = listener.local_addr()?;
        let json_ctx = JsonCtx {
            organization_id: config.organization_id.clone(),
            toolbox_proxy_url: format!("http://{addr}/toolbox"),
        };
        let shared = Arc::new(Shared {
            latency_us: AtomicU64::new(config.latency.as_micros() as u64),
            config,
            json_ctx,
            store: Mutex::new(Store::default()),
            requests: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
        });
        let app = routes::router(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                eprintln!("daytona-sim: server error: {e}");
            }
        });
        // Applies transitions even when nobody reads, so SSH cleanup happens on time.
        let ticker_shared = shared.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                ticker_shared.locked(|_| ()).await;
            }
        });
        Ok(DaytonaSim {
            shared,
            addr,
            ticker,
            stop: Some(stop),
            runtime: None,
        })
    }

    /// Like [`Self::start`] on a private runtime; call it outside any tokio runtime.
    pub fn start_background(config: SimConfig) -> anyhow::Result<DaytonaSim> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("daytona-sim")
            .enable_all()
            .build()?;
        let mut sim = runtime.block_on(Self::start(config))?;
        sim.runtime = Some(runtime);
        Ok(sim)
    }

    /// The API base, `http://127.0.0.1:PORT/api`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// The server root, `http://127.0.0.1:PORT` (control routes live under `/_sim/`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The accepted API key.
    pub fn api_key(&self) -> String {
        self.shared.config.api_key.clone()
    }

    /// The SSH gateway its minted access names, `HOST:PORT`: what `DAYTONA_SSH_GATEWAY` must
    /// say for cbx to connect there.
    pub fn ssh_gateway(&self) -> String {
        let (host, port) = self.shared.config.ssh.gateway();
        format!("{host}:{port}")
    }

    /// The organization id.
    pub fn organization_id(&self) -> String {
        self.shared.config.organization_id.clone()
    }

    /// Every request received so far (except `/_sim/` control calls), in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    /// Changes the API latency (see [`SimConfig::latency`]) from now on.
    pub fn set_latency(&self, latency: Duration) {
        self.shared
            .latency_us
            .store(latency.as_micros() as u64, Ordering::Relaxed);
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// Queues a fault; faults are tried in injection order.
    pub fn inject(&self, fault: Fault) {
        self.shared.inject(fault);
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Every sandbox that is not gone yet (including `destroying` ones), in creation order.
    pub fn sandboxes(&self) -> Vec<SandboxView> {
        self.shared.locked_sync(|s| s.views())
    }

    /// One sandbox by id, or by name, if not gone.
    pub fn sandbox(&self, id_or_name: &str) -> Option<SandboxView> {
        self.shared.locked_sync(|s| {
            let now = Instant::now();
            let sb = s
                .by_id(id_or_name)
                .or_else(|| s.sandboxes.iter().find(|x| x.name == id_or_name));
            sb.map(|sb| s.view(sb, now))
        })
    }

    /// Forces a state, cancelling any pending transition; false if the id is unknown.
    ///
    /// Steady states set stored = desired. Transitional names set a stuck pair (`creating`,
    /// `starting`, `stopping`, `destroying`, `archiving`); `error`/`build_failed` keep desired
    /// `started` with errorReason "Simulated error"; `destroyed` removes the sandbox.
    pub fn set_state(&self, id: &str, state: &str) -> bool {
        self.shared.locked_sync(|s| s.force_state(id, state, None))
    }

    /// Sets one sandbox's class (`container`, `linux-vm`, `windows`); false if unknown.
    pub fn set_class(&self, id: &str, class: &str) -> bool {
        self.shared.locked_sync(|s| match s.by_id_mut(id) {
            Some(sb) => {
                sb.class = class.to_string();
                true
            }
            None => false,
        })
    }

    /// The names of the snapshots made from sandboxes that the API shows now.
    pub fn snapshot_names(&self) -> Vec<String> {
        let now = Instant::now();
        self.shared.locked_sync(|s| {
            s.snapshots
                .iter()
                .filter(|x| x.visible_from <= now)
                .map(|x| x.name.clone())
                .collect()
        })
    }

    /// Makes the next `/start` of sandbox `id` (when stopped) fail: the sandbox goes to `error`
    /// with `reason` (create's 400 "Sandbox failed to start" when the start waits); false if
    /// the id is unknown.
    pub fn fail_next_start(&self, id: &str, reason: &str) -> bool {
        self.shared.locked_sync(|s| match s.by_id_mut(id) {
            Some(sb) => {
                sb.fails_to_start = Some(reason.to_string());
                true
            }
            None => false,
        })
    }

    /// [`Self::set_state`] with an explicit `errorReason`.
    pub fn set_state_with_reason(&self, id: &str, state: &str, reason: &str) -> bool {
        self.shared
            .locked_sync(|s| s.force_state(id, state, Some(reason)))
    }

    /// Marks every token of the sandbox expired and calls `access_revoked` for each.
    pub fn expire_ssh_tokens(&self, sandbox_id: &str) {
        self.shared.locked_sync(|s| s.expire(sandbox_id));
    }

    /// Every SSH token ever minted, revoked ones included, in order.
    pub fn minted_ssh_tokens(&self) -> Vec<String> {
        self.shared.locked_sync(|s| s.minted.clone())
    }

    /// Every SSH token not revoked (expired ones included).
    pub fn ssh_tokens(&self) -> Vec<SshTokenView> {
        self.shared.locked_sync(|s| s.token_views())
    }

    /// What the gateway's validate call answers: the sandbox id for a live token.
    pub fn validate_ssh_token(&self, token: &str) -> Option<String> {
        self.shared.locked_sync(|s| {
            s.tokens
                .iter()
                .find(|t| t.token == token && !t.expired)
                .map(|t| t.sandbox_id.clone())
        })
    }

    /// Stops the server (same as dropping the handle).
    pub fn shutdown(self) {}
}

impl Drop for DaytonaSim {
    fn drop(&mut self) {
        // Graceful: stop accepting, close idle keep-alive connections, finish in-flight ones.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.ticker.abort();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
