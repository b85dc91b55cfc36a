//! A hostile test provider that answers with malformed data, to prove the host validates what
//! a provider returns before it acts on it.
//!
//! It manages make-believe sandboxes without any service and without state that outlives one
//! cbx invocation: a sandbox's id carries its labels (hex-encoded), so `get` in a later
//! invocation answers what `create` was given and a lease made by `warmup` can be resolved by
//! `ssh`. Every sandbox is `ready`.
//!
//! Option `mode` chooses the malformation:
//! - `ok`: none;
//! - `ssh-host`: `mint-ssh-access` returns a host that would inject an ssh option
//!   (`x\n  ProxyCommand sh -c 'touch MARKER'`);
//! - `ssh-user`: it returns a user that would be parsed as an option (`-oProxyCommand=…`);
//! - `ssh-identity`: it returns an identity-file path with a line break and ssh's `%` tokens;
//! - `bad-utf8`: `list` returns a sandbox whose name is not UTF-8;
//! - `huge-list`: `list` returns `count` sandboxes with 4 KiB strings, none of them cbx's.
//!
//! Option `marker` is the file the injected commands would create; the tests check that it
//! never appears.
//!
//! Options steer what else it returns, as a hostile provider would choose it:
//! - `dest-host`, `dest-port`: where `mint-ssh-access` says the sandbox is (default
//!   `127.0.0.1:22`) — an attacker's server, say;
//! - `key`: the identity file `mint-ssh-access` names (default none) — the user's own key, a
//!   system file, a path ending in `\`;
//! - `user-key`: declared only, for manifests that name it as the user's key option;
//! - `work-root`: the work root `configure` reports (default `malformed`), e.g. `-rf`.

wit_bindgen::generate!({ world: "provider-world", path: "../../../wit" });

use std::cell::RefCell;

use cbx::provider::types::{
    Check, CheckStatus, CreateRequest, Labels, OptionKind, OptionSpec, Profile, ProviderError,
    ProviderInfo, Sandbox, SandboxState, Settings, SshAccess,
};
use exports::cbx::provider::provider::Guest;

thread_local! {
    static OPTIONS: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
    /// Labels replaced during this invocation, by sandbox id.
    static RELABELED: RefCell<Vec<(String, Labels)>> = const { RefCell::new(Vec::new()) };
}

fn option(name: &str) -> Option<String> {
    OPTIONS.with(|o| {
        o.borrow()
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    })
}

fn mode() -> String {
    option("mode").unwrap_or_else(|| "ok".to_string())
}

fn marker() -> String {
    option("marker").unwrap_or_else(|| "/tmp/cbx-malformed-pwned".to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A sandbox id that carries `labels`.
fn id_for(labels: &Labels) -> String {
    let text: String = labels.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    format!("m{}", hex(text.as_bytes()))
}

/// The labels a sandbox id carries.
fn labels_of(id: &str) -> Result<Labels, ProviderError> {
    let not_found = || ProviderError::NotFound(format!("no sandbox {id}"));
    let bytes = id.strip_prefix('m').and_then(unhex).ok_or_else(not_found)?;
    let text = String::from_utf8(bytes).map_err(|_| not_found())?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

fn sandbox(id: &str, name: &str, labels: Labels) -> Sandbox {
    Sandbox {
        id: id.to_string(),
        name: name.to_string(),
        state: SandboxState::Ready,
        provider_state: "started".to_string(),
        reason: None,
        labels,
        created_at: None,
    }
}

fn lookup(id: &str) -> Result<Sandbox, ProviderError> {
    let relabeled = RELABELED.with(|r| {
        r.borrow()
            .iter()
            .rev()
            .find(|(i, _)| i == id)
            .map(|(_, l)| l.clone())
    });
    let labels = match relabeled {
        Some(l) => l,
        None => labels_of(id)?,
    };
    Ok(sandbox(id, "malformed-sandbox", labels))
}

/// A string whose bytes are not UTF-8. The canonical ABI passes it as pointer and length; the
/// host must refuse to lift it.
fn not_utf8() -> String {
    let bytes: Vec<u8> = vec![b'b', b'a', b'd', 0xff, 0xfe, 0xc3, 0x28];
    // SAFETY: deliberately violated, to hand the host malformed data. The string is only
    // passed through the component ABI, never inspected as `str` on this side.
    unsafe { String::from_utf8_unchecked(bytes) }
}

/// The component's exports.
struct Malformed;

impl Guest for Malformed {
    fn describe() -> ProviderInfo {
        let spec =
            |name: &str, kind: OptionKind, default: Option<&str>, description: &str| OptionSpec {
                name: name.to_string(),
                description: description.to_string(),
                kind,
                default: default.map(str::to_string),
            };
        ProviderInfo {
            name: "malformed".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "A test provider that answers with malformed data".to_string(),
            options: vec![
                spec(
                    "mode",
                    OptionKind::Text,
                    Some("ok"),
                    "ok, ssh-host, ssh-user, ssh-identity, bad-utf8 or huge-list",
                ),
                spec(
                    "marker",
                    OptionKind::Text,
                    None,
                    "The file injected commands would create",
                ),
                spec(
                    "count",
                    OptionKind::Integer,
                    Some("1000"),
                    "How many sandboxes huge-list returns",
                ),
                spec(
                    "dest-host",
                    OptionKind::Text,
                    Some("127.0.0.1"),
                    "The SSH host mint-ssh-access returns",
                ),
                spec(
                    "dest-port",
                    OptionKind::Integer,
                    Some("22"),
                    "The SSH port mint-ssh-access returns",
                ),
                spec(
                    "key",
                    OptionKind::Text,
                    None,
                    "The identity file mint-ssh-access names",
                ),
                spec(
                    "user-key",
                    OptionKind::Text,
                    None,
                    "The user's key (for manifests naming it as their key option)",
                ),
                spec(
                    "work-root",
                    OptionKind::Text,
                    Some("malformed"),
                    "The work root configure reports",
                ),
            ],
            features: Vec::new(),
        }
    }

    fn configure(settings: Settings) -> Result<Profile, ProviderError> {
        OPTIONS.with(|o| *o.borrow_mut() = settings.options);
        Ok(Profile {
            work_root: option("work-root").unwrap_or_else(|| "malformed".to_string()),
            summary: vec![("mode".to_string(), mode())],
        })
    }

    fn doctor() -> Result<Vec<Check>, ProviderError> {
        Ok(vec![Check {
            name: "malformed".to_string(),
            status: CheckStatus::Ok,
            detail: format!("mode {}", mode()),
        }])
    }

    fn create(request: CreateRequest) -> Result<Sandbox, ProviderError> {
        let id = id_for(&request.labels);
        Ok(sandbox(&id, &request.name, request.labels))
    }

    fn get(id: String) -> Result<Sandbox, ProviderError> {
        lookup(&id)
    }

    fn list(_labels: Labels) -> Result<Vec<Sandbox>, ProviderError> {
        match mode().as_str() {
            "bad-utf8" => Ok(vec![sandbox("m", &not_utf8(), Vec::new())]),
            "huge-list" => {
                let count: usize = option("count").and_then(|c| c.parse().ok()).unwrap_or(1000);
                let filler = "x".repeat(4096);
                Ok((0..count)
                    .map(|i| {
                        sandbox(
                            &format!("huge-{i}-{filler}"),
                            &filler,
                            vec![("owner".to_string(), filler.clone())],
                        )
                    })
                    .collect())
            }
            _ => Ok(Vec::new()),
        }
    }

    fn start(id: String) -> Result<Sandbox, ProviderError> {
        lookup(&id)
    }

    fn stop(id: String) -> Result<Sandbox, ProviderError> {
        lookup(&id)
    }

    fn delete(id: String) -> Result<(), ProviderError> {
        lookup(&id).map(|_| ())
    }

    fn set_labels(id: String, labels: Labels) -> Result<Sandbox, ProviderError> {
        lookup(&id)?;
        RELABELED.with(|r| r.borrow_mut().push((id.clone(), labels)));
        lookup(&id)
    }

    fn touch(id: String) -> Result<(), ProviderError> {
        lookup(&id).map(|_| ())
    }

    fn mint_ssh_access(id: String) -> Result<SshAccess, ProviderError> {
        lookup(&id)?;
        let marker = marker();
        let mut access = SshAccess {
            user: "cbx".to_string(),
            user_is_secret: false,
            host: option("dest-host").unwrap_or_else(|| "127.0.0.1".to_string()),
            port: option("dest-port")
                .and_then(|p| p.parse().ok())
                .unwrap_or(22),
            identity_file: option("key"),
            expires_at: None,
        };
        match mode().as_str() {
            "ssh-host" => {
                access.host = format!("x\n  ProxyCommand sh -c 'touch {marker}'");
            }
            "ssh-user" => {
                access.user = format!("-oProxyCommand=sh -c 'touch {marker}'");
            }
            "ssh-identity" => {
                access.identity_file =
                    Some(format!("%d/.ssh/id\n  ProxyCommand sh -c 'touch {marker}'"));
            }
            _ => {}
        }
        Ok(access)
    }
}

export!(Malformed);
