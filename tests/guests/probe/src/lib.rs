//! A test provider whose behaviour is steered by its options, so cbx's tests can make a real
//! component do what a careless or hostile provider might: reach outside its grant, set
//! credential headers, spin, allocate without bound, recurse or panic.
//!
//! Option protocol (all declared by `describe`):
//! - `action`: what `doctor` does — `ok` (nothing), `http` (send requests), `spin` (burn CPU
//!   forever), `alloc` (grow memory by `count` MiB), `recurse` (recurse without bound) or
//!   `panic`.
//! - `method`, `url`, `header` (`Name: value`), `body`, `timeout-ms`: the request `http` sends;
//!   `body-bytes`: a body of that many `x` bytes instead of `body`.
//! - `count`: how many requests `http` sends, or how many MiB `alloc` allocates.
//!
//! `doctor` reports what the guest saw as checks, in order:
//! - `settings`: `endpoints=<name>=<url>,… credentials=<name>,…` (what `configure` received);
//! - per request, either `status` (the code), one `header` per response header
//!   (`name: value`) and `body` (the body as text), or `http-error` (status `fail`,
//!   `<variant>: <payload>`);
//! - `alloc` after a successful allocation, `ok` for the `ok` action.
//!
//! Each response or http-error is also logged through the host's `log` import.
//!
//! `get(id)` answers a sandbox named `calls=<doctor calls in this instance> action=<action>`,
//! so a test can tell a fresh, re-configured instance from the one before.

wit_bindgen::generate!({ world: "provider-world", path: "../../../wit" });

use std::cell::RefCell;
use std::hint::black_box;

use cbx::provider::http::{self, HttpError, Method, Request};
use cbx::provider::log::{self, Level};
use cbx::provider::types::{
    Check, CheckStatus, CreateRequest, Labels, OptionKind, OptionSpec, Profile, ProviderError,
    ProviderInfo, Sandbox, SandboxState, Settings, SshAccess,
};
use exports::cbx::provider::provider::Guest;

/// What `doctor` does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Action {
    Ok,
    Http,
    Spin,
    Alloc,
    Recurse,
    Panic,
}

impl Action {
    fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "ok" => Action::Ok,
            "http" => Action::Http,
            "spin" => Action::Spin,
            "alloc" => Action::Alloc,
            "recurse" => Action::Recurse,
            "panic" => Action::Panic,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Action::Ok => "ok",
            Action::Http => "http",
            Action::Spin => "spin",
            Action::Alloc => "alloc",
            Action::Recurse => "recurse",
            Action::Panic => "panic",
        }
    }
}

/// The settings `configure` accepted.
struct Config {
    action: Action,
    method: Method,
    url: String,
    header: Option<(String, String)>,
    body: Option<Vec<u8>>,
    timeout_ms: Option<u32>,
    count: u32,
    endpoints: Vec<(String, String)>,
    credentials: Vec<String>,
}

thread_local! {
    static CONFIG: RefCell<Option<Config>> = const { RefCell::new(None) };
    static DOCTOR_CALLS: RefCell<u32> = const { RefCell::new(0) };
    /// Memory the `alloc` action keeps alive.
    static HOARD: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

fn check(name: &str, status: CheckStatus, detail: String) -> Check {
    Check {
        name: name.to_string(),
        status,
        detail,
    }
}

fn invalid(message: String) -> ProviderError {
    ProviderError::InvalidConfig(message)
}

fn parse_settings(settings: &Settings) -> Result<Config, ProviderError> {
    let opt = |name: &str| {
        settings
            .options
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let action = opt("action").unwrap_or("ok");
    let action =
        Action::parse(action).ok_or_else(|| invalid(format!("unknown action `{action}`")))?;
    let method = match opt("method").unwrap_or("get").to_ascii_lowercase().as_str() {
        "get" => Method::Get,
        "head" => Method::Head,
        "post" => Method::Post,
        "put" => Method::Put,
        "patch" => Method::Patch,
        "delete" => Method::Delete,
        other => return Err(invalid(format!("unknown method `{other}`"))),
    };
    let header = match opt("header") {
        None => None,
        Some(h) => {
            let (name, value) = h
                .split_once(':')
                .ok_or_else(|| invalid(format!("header `{h}` is not `Name: value`")))?;
            Some((name.trim().to_string(), value.trim().to_string()))
        }
    };
    let number = |name: &str, default: u32| -> Result<u32, ProviderError> {
        opt(name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| invalid(format!("option {name}: `{v}` is not a number")))
        })
    };
    Ok(Config {
        action,
        method,
        url: opt("url").unwrap_or_default().to_string(),
        header,
        body: match number("body-bytes", 0)? {
            0 => opt("body").map(|b| b.as_bytes().to_vec()),
            n => Some(vec![b'x'; n as usize]),
        },
        timeout_ms: opt("timeout-ms")
            .map(|_| number("timeout-ms", 0))
            .transpose()?,
        count: number("count", 1)?,
        endpoints: settings.endpoints.clone(),
        credentials: settings.credentials.clone(),
    })
}

fn with_config<R>(f: impl FnOnce(&Config) -> Result<R, ProviderError>) -> Result<R, ProviderError> {
    CONFIG.with(|c| match &*c.borrow() {
        Some(cfg) => f(cfg),
        None => Err(invalid("configure was not called".to_string())),
    })
}

fn http_error_text(e: &HttpError) -> String {
    match e {
        HttpError::Denied(m) => format!("denied: {m}"),
        HttpError::Timeout(m) => format!("timeout: {m}"),
        HttpError::Connect(m) => format!("connect: {m}"),
        HttpError::TooLarge(cap) => format!("too-large: {cap}"),
        HttpError::InvalidRequest(m) => format!("invalid-request: {m}"),
        HttpError::Other(m) => format!("other: {m}"),
    }
}

fn send_requests(cfg: &Config, checks: &mut Vec<Check>) {
    for _ in 0..cfg.count {
        let request = Request {
            method: cfg.method,
            url: cfg.url.clone(),
            headers: cfg.header.iter().cloned().collect(),
            body: cfg.body.clone(),
            timeout_ms: cfg.timeout_ms,
        };
        match http::send(&request) {
            Ok(response) => {
                checks.push(check(
                    "status",
                    CheckStatus::Ok,
                    response.status.to_string(),
                ));
                for (name, value) in &response.headers {
                    checks.push(check("header", CheckStatus::Ok, format!("{name}: {value}")));
                }
                let body = String::from_utf8_lossy(&response.body).into_owned();
                log::log(
                    Level::Info,
                    &format!("probe saw status {} body {body:?}", response.status),
                );
                checks.push(check("body", CheckStatus::Ok, body));
            }
            Err(e) => {
                let text = http_error_text(&e);
                log::log(Level::Warn, &format!("probe saw http-error {text}"));
                checks.push(check("http-error", CheckStatus::Fail, text));
            }
        }
    }
}

/// Burns CPU forever; only the host's budget ends it.
fn spin() -> ! {
    let mut x: u64 = 0;
    loop {
        x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

/// Recurses without bound, keeping a frame's worth of data live at every level.
fn recurse(depth: u64) -> u64 {
    if black_box(depth) == u64::MAX {
        return 0;
    }
    let frame = black_box([depth; 64]);
    recurse(black_box(depth + 1)).wrapping_add(frame[(depth % 64) as usize])
}

/// Allocates `mib` MiB and touches every page, so the memory really grows.
fn alloc(mib: u32) {
    HOARD.with(|h| {
        let mut hoard = h.borrow_mut();
        for _ in 0..mib {
            let mut block = vec![0u8; 1 << 20];
            for page in block.chunks_mut(4096) {
                page[0] = 1;
            }
            hoard.push(black_box(block));
        }
    });
}

fn probe_sandbox(id: String) -> Result<Sandbox, ProviderError> {
    with_config(|cfg| {
        let calls = DOCTOR_CALLS.with(|c| *c.borrow());
        Ok(Sandbox {
            name: format!("calls={calls} action={}", cfg.action.name()),
            id,
            state: SandboxState::Ready,
            provider_state: "probe".to_string(),
            reason: None,
            labels: Vec::new(),
            created_at: None,
        })
    })
}

/// The component's exports.
struct Probe;

impl Guest for Probe {
    fn describe() -> ProviderInfo {
        let spec =
            |name: &str, kind: OptionKind, default: Option<&str>, description: &str| OptionSpec {
                name: name.to_string(),
                description: description.to_string(),
                kind,
                default: default.map(str::to_string),
            };
        ProviderInfo {
            name: "probe".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "A test provider steered by its options".to_string(),
            options: vec![
                spec(
                    "action",
                    OptionKind::Text,
                    Some("ok"),
                    "What doctor does: ok, http, spin, alloc, recurse or panic",
                ),
                spec(
                    "method",
                    OptionKind::Text,
                    Some("get"),
                    "The request method",
                ),
                spec("url", OptionKind::Text, None, "The request URL"),
                spec(
                    "header",
                    OptionKind::Text,
                    None,
                    "One request header, `Name: value`",
                ),
                spec("body", OptionKind::Text, None, "The request body"),
                spec(
                    "body-bytes",
                    OptionKind::Integer,
                    None,
                    "A request body of this many bytes instead",
                ),
                spec(
                    "timeout-ms",
                    OptionKind::Integer,
                    None,
                    "The request timeout",
                ),
                spec(
                    "count",
                    OptionKind::Integer,
                    Some("1"),
                    "Requests to send (http) or MiB to allocate (alloc)",
                ),
            ],
            features: Vec::new(),
        }
    }

    fn configure(settings: Settings) -> Result<Profile, ProviderError> {
        let cfg = parse_settings(&settings)?;
        let summary = vec![("action".to_string(), cfg.action.name().to_string())];
        CONFIG.with(|c| *c.borrow_mut() = Some(cfg));
        Ok(Profile {
            work_root: "probe".to_string(),
            summary,
        })
    }

    fn doctor() -> Result<Vec<Check>, ProviderError> {
        DOCTOR_CALLS.with(|c| *c.borrow_mut() += 1);
        with_config(|cfg| {
            let endpoints: Vec<String> = cfg
                .endpoints
                .iter()
                .map(|(name, url)| format!("{name}={url}"))
                .collect();
            let mut checks = vec![check(
                "settings",
                CheckStatus::Ok,
                format!(
                    "endpoints={} credentials={}",
                    endpoints.join(","),
                    cfg.credentials.join(",")
                ),
            )];
            match cfg.action {
                Action::Ok => checks.push(check("ok", CheckStatus::Ok, "nothing to do".into())),
                Action::Http => send_requests(cfg, &mut checks),
                Action::Spin => spin(),
                Action::Alloc => {
                    alloc(cfg.count);
                    checks.push(check(
                        "alloc",
                        CheckStatus::Ok,
                        format!("allocated {} MiB", cfg.count),
                    ));
                }
                Action::Recurse => {
                    let n = recurse(0);
                    checks.push(check("recurse", CheckStatus::Ok, n.to_string()));
                }
                Action::Panic => panic!("the probe panics on purpose"),
            }
            Ok(checks)
        })
    }

    fn create(request: CreateRequest) -> Result<Sandbox, ProviderError> {
        probe_sandbox(request.name)
    }

    fn get(id: String) -> Result<Sandbox, ProviderError> {
        probe_sandbox(id)
    }

    fn list(_labels: Labels) -> Result<Vec<Sandbox>, ProviderError> {
        with_config(|_| Ok(Vec::new()))
    }

    fn start(id: String) -> Result<Sandbox, ProviderError> {
        probe_sandbox(id)
    }

    fn stop(id: String) -> Result<Sandbox, ProviderError> {
        probe_sandbox(id)
    }

    fn delete(_id: String) -> Result<(), ProviderError> {
        with_config(|_| Ok(()))
    }

    fn set_labels(id: String, _labels: Labels) -> Result<Sandbox, ProviderError> {
        probe_sandbox(id)
    }

    fn touch(_id: String) -> Result<(), ProviderError> {
        with_config(|_| Ok(()))
    }

    fn mint_ssh_access(_id: String) -> Result<SshAccess, ProviderError> {
        Err(ProviderError::Other(
            "the probe has no SSH access".to_string(),
        ))
    }
}

export!(Probe);
