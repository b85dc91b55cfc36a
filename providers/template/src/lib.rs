//! A cbx provider to start from.
//!
//! It speaks a small REST API — the subset of Daytona's that the Daytona simulator in cbx's
//! `tests/` serves — so it works end to end right away. To write a provider for your service,
//! change the requests in the `impl Guest` block and the two mappings below (`state_of`,
//! `error_of`); keep everything else. See docs/providers/authoring.md.

wit_bindgen::generate!({ world: "provider-world", path: "../../wit" });

use std::cell::RefCell;

use cbx::provider::http::{self, HttpError, Method, Request};
use cbx::provider::log::{self, Level};
use cbx::provider::types::{
    Check, CheckStatus, CreateRequest, Labels, OptionKind, OptionSpec, Profile, ProviderError,
    ProviderInfo, RateLimit, Sandbox, SandboxState, Settings, SshAccess,
};
use exports::cbx::provider::provider::Guest;
use serde_json::{Value, json};

/// What `configure` accepted; the component is single-threaded, so a thread-local will do.
struct Config {
    api: String,
    snapshot: String,
}

thread_local! {
    static CONFIG: RefCell<Option<Config>> = const { RefCell::new(None) };
}

fn with_config<R>(f: impl FnOnce(&Config) -> Result<R, ProviderError>) -> Result<R, ProviderError> {
    CONFIG.with(|c| match &*c.borrow() {
        Some(cfg) => f(cfg),
        None => Err(ProviderError::InvalidConfig(
            "configure was not called".into(),
        )),
    })
}

/// Sends one request through the host and returns the JSON body of a 2xx answer. The host
/// attaches credentials, enforces the grant and times out; this maps everything else.
fn call(
    method: Method,
    url: &str,
    body: Option<Value>,
    action: &str,
) -> Result<Value, ProviderError> {
    log::log(Level::Debug, &format!("{action}: {:?} {url}", method));
    let response = http::send(&Request {
        method,
        url: url.to_string(),
        headers: vec![
            ("accept".into(), "application/json".into()),
            ("content-type".into(), "application/json".into()),
        ],
        body: body.map(|b| b.to_string().into_bytes()),
        timeout_ms: Some(60_000),
    })
    .map_err(|e| match e {
        HttpError::Timeout(m) | HttpError::Connect(m) => {
            ProviderError::Unavailable(format!("{action}: {m}"))
        }
        HttpError::Denied(m) | HttpError::InvalidRequest(m) | HttpError::Other(m) => {
            ProviderError::Other(format!("{action}: {m}"))
        }
        HttpError::TooLarge(n) => {
            ProviderError::Other(format!("{action}: response over {n} bytes"))
        }
    })?;
    let text = String::from_utf8_lossy(&response.body);
    if !(200..300).contains(&response.status) {
        return Err(error_of(response.status, &response.headers, &text, action));
    }
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text)
        .map_err(|_| ProviderError::Other(format!("{action}: the answer is not JSON")))
}

/// Maps a service error to the contract's typed errors (the host picks exit codes and retries
/// from them; `cbx providers test` checks 404, 401 and 429). Adapt to your service.
fn error_of(status: u16, headers: &[(String, String)], body: &str, action: &str) -> ProviderError {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.chars().take(200).collect());
    let m = format!("{action}: {message} (HTTP {status})");
    match status {
        401 => ProviderError::Unauthorized(m),
        403 => ProviderError::Forbidden(m),
        404 => ProviderError::NotFound(m),
        409 => ProviderError::Conflict(m),
        429 => ProviderError::RateLimited(RateLimit {
            message: m,
            retry_after_ms: retry_after_ms(headers),
        }),
        500..=599 => ProviderError::Unavailable(m),
        _ => ProviderError::Other(m),
    }
}

/// The delay a `Retry-After: <seconds>` header asks for, in milliseconds.
fn retry_after_ms(headers: &[(String, String)]) -> Option<u64> {
    headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("retry-after"))
        .and_then(|(_, value)| value.trim().parse::<f64>().ok())
        .filter(|secs| secs.is_finite() && *secs >= 0.0)
        .map(|secs| (secs * 1000.0) as u64)
}

/// Maps the service's state words to the contract's states. Adapt to your service.
fn state_of(word: &str) -> SandboxState {
    match word {
        "started" => SandboxState::Ready,
        "creating" | "pulling_snapshot" | "unknown" => SandboxState::Creating,
        "starting" | "restoring" => SandboxState::Starting,
        "stopping" => SandboxState::Stopping,
        "stopped" => SandboxState::Stopped,
        "archived" | "archiving" => SandboxState::Archived,
        "error" | "build_failed" => SandboxState::Failed,
        "destroying" | "destroyed" => SandboxState::Deleted,
        _ => SandboxState::Unknown,
    }
}

/// Reads one sandbox from the service's JSON.
fn sandbox_of(v: &Value, action: &str) -> Result<Sandbox, ProviderError> {
    let id = v["id"]
        .as_str()
        .ok_or_else(|| ProviderError::Other(format!("{action}: no sandbox id in the answer")))?;
    let word = v["state"].as_str().unwrap_or("unknown");
    Ok(Sandbox {
        id: id.to_string(),
        name: v["name"].as_str().unwrap_or(id).to_string(),
        state: state_of(word),
        provider_state: word.to_string(),
        reason: v["errorReason"].as_str().map(str::to_string),
        labels: v["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default(),
        created_at: v["createdAt"].as_str().map(str::to_string),
    })
}

fn labels_json(labels: &Labels) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// Percent-encodes a query or path component.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The component's exports.
struct Template;

impl Guest for Template {
    fn describe() -> ProviderInfo {
        ProviderInfo {
            name: "template".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "A template provider (speaks the Daytona simulator's API)".into(),
            options: vec![OptionSpec {
                name: "snapshot".into(),
                description: "The image to create sandboxes from (empty: the service's default)"
                    .into(),
                kind: OptionKind::Text,
                default: Some(String::new()),
            }],
            features: vec![
                "start".into(),
                "stop".into(),
                "touch".into(),
                "labels".into(),
            ],
        }
    }

    fn configure(settings: Settings) -> Result<Profile, ProviderError> {
        let api = settings
            .endpoints
            .iter()
            .find(|(name, _)| name == "api")
            .map(|(_, url)| url.trim_end_matches('/').to_string())
            .ok_or_else(|| {
                ProviderError::InvalidConfig("the grant has no `api` endpoint".into())
            })?;
        let snapshot = settings
            .options
            .iter()
            .find(|(k, _)| k == "snapshot")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        CONFIG.with(|c| {
            *c.borrow_mut() = Some(Config {
                api: api.clone(),
                snapshot: snapshot.clone(),
            })
        });
        Ok(Profile {
            work_root: "cbx".into(),
            summary: vec![
                ("api".into(), api),
                (
                    "snapshot".into(),
                    if snapshot.is_empty() {
                        "default".into()
                    } else {
                        snapshot
                    },
                ),
            ],
        })
    }

    fn doctor() -> Result<Vec<Check>, ProviderError> {
        with_config(|c| {
            call(
                Method::Get,
                &format!("{}/sandbox?limit=1", c.api),
                None,
                "list sandboxes",
            )?;
            Ok(vec![Check {
                name: "api".into(),
                status: CheckStatus::Ok,
                detail: "the API answers and accepts the credentials".into(),
            }])
        })
    }

    fn create(request: CreateRequest) -> Result<Sandbox, ProviderError> {
        with_config(|c| {
            let mut body = json!({
                "name": request.name,
                "labels": labels_json(&request.labels),
                "autoStopInterval": request.idle_timeout_minutes,
            });
            if !c.snapshot.is_empty() {
                body["snapshot"] = json!(c.snapshot);
            }
            let v = call(
                Method::Post,
                &format!("{}/sandbox", c.api),
                Some(body),
                "create sandbox",
            )?;
            sandbox_of(&v, "create sandbox")
        })
    }

    fn get(id: String) -> Result<Sandbox, ProviderError> {
        with_config(|c| {
            sandbox_of(
                &call(
                    Method::Get,
                    &format!("{}/sandbox/{}", c.api, encode(&id)),
                    None,
                    "get sandbox",
                )?,
                "get sandbox",
            )
        })
    }

    fn list(labels: Labels) -> Result<Vec<Sandbox>, ProviderError> {
        with_config(|c| {
            let filter = encode(&labels_json(&labels).to_string());
            let mut out = Vec::new();
            let mut cursor: Option<String> = None;
            for _ in 0..1000 {
                let mut url = format!("{}/sandbox?limit=100&labels={filter}", c.api);
                if let Some(cur) = &cursor {
                    url.push_str(&format!("&cursor={}", encode(cur)));
                }
                let page = call(Method::Get, &url, None, "list sandboxes")?;
                let items = page.get("items").unwrap_or(&page);
                for item in items.as_array().into_iter().flatten() {
                    out.push(sandbox_of(item, "list sandboxes")?);
                }
                match page["nextCursor"].as_str() {
                    Some(next) if !next.is_empty() => cursor = Some(next.to_string()),
                    _ => return Ok(out),
                }
            }
            Err(ProviderError::Other(
                "list sandboxes: too many pages".into(),
            ))
        })
    }

    fn start(id: String) -> Result<Sandbox, ProviderError> {
        with_config(|c| {
            sandbox_of(
                &call(
                    Method::Post,
                    &format!("{}/sandbox/{}/start", c.api, encode(&id)),
                    None,
                    "start sandbox",
                )?,
                "start sandbox",
            )
        })
    }

    fn stop(id: String) -> Result<Sandbox, ProviderError> {
        with_config(|c| {
            sandbox_of(
                &call(
                    Method::Post,
                    &format!("{}/sandbox/{}/stop", c.api, encode(&id)),
                    None,
                    "stop sandbox",
                )?,
                "stop sandbox",
            )
        })
    }

    fn delete(id: String) -> Result<(), ProviderError> {
        with_config(|c| {
            call(
                Method::Delete,
                &format!("{}/sandbox/{}", c.api, encode(&id)),
                None,
                "delete sandbox",
            )
            .map(|_| ())
        })
    }

    fn set_labels(id: String, labels: Labels) -> Result<Sandbox, ProviderError> {
        with_config(|c| {
            let body = json!({ "labels": labels_json(&labels) });
            call(
                Method::Put,
                &format!("{}/sandbox/{}/labels", c.api, encode(&id)),
                Some(body),
                "set labels",
            )?;
            sandbox_of(
                &call(
                    Method::Get,
                    &format!("{}/sandbox/{}", c.api, encode(&id)),
                    None,
                    "get sandbox",
                )?,
                "get sandbox",
            )
        })
    }

    fn touch(id: String) -> Result<(), ProviderError> {
        with_config(|c| {
            call(
                Method::Post,
                &format!("{}/sandbox/{}/last-activity", c.api, encode(&id)),
                None,
                "touch sandbox",
            )
            .map(|_| ())
        })
    }

    fn mint_ssh_access(id: String) -> Result<SshAccess, ProviderError> {
        with_config(|c| {
            let v = call(
                Method::Post,
                &format!(
                    "{}/sandbox/{}/ssh-access?expiresInMinutes=60",
                    c.api,
                    encode(&id)
                ),
                None,
                "mint ssh access",
            )?;
            let token = v["token"]
                .as_str()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    ProviderError::Other("mint ssh access: no token in the answer".into())
                })?;
            // `sshCommand` looks like `ssh [-p PORT] TOKEN@HOST`.
            let words: Vec<&str> = v["sshCommand"]
                .as_str()
                .unwrap_or_default()
                .split_whitespace()
                .collect();
            let port = words
                .iter()
                .position(|w| *w == "-p")
                .and_then(|i| words.get(i + 1))
                .and_then(|p| p.parse().ok())
                .unwrap_or(22);
            let host = words
                .last()
                .and_then(|d| d.rsplit_once('@'))
                .map(|(_, h)| h.to_string())
                .unwrap_or_else(|| "localhost".into());
            Ok(SshAccess {
                user: token.to_string(),
                user_is_secret: true,
                host,
                port,
                identity_file: None,
                expires_at: v["expiresAt"].as_str().map(str::to_string),
            })
        })
    }
}

export!(Template);
