//! A hostile test provider built as a WASI component, as third parties usually build theirs
//! (`wasm32-wasip2`, or `wasm32-wasip1` plus the preview-1 adapter where the toolchain lacks
//! wasip2; `host/guest-build` chooses).
//! Its `doctor` tries every way out that WASI offers a component — the environment, the
//! arguments, the working directory, files, stdin, TCP and UDP sockets, name lookups and
//! processes — first the way ordinary Rust code would (through `std`), then by calling the
//! host's WASI interfaces directly (through the `wasip2` bindings), so a refusal is known to
//! come from the host and not from the guest's own C library. (Sockets are tried only
//! directly: `std::net` needs a preview-2 wasi-libc, which Debian's toolchain lacks.)
//!
//! Each attempt becomes one doctor check named after it:
//! - status `ok` and detail `refused: …` or `empty` when the host gave nothing;
//! - status `fail` and detail `ESCAPED: …` when the attempt got something. Values it got are
//!   shown hex-encoded, so the host's textual redaction cannot hide a leak from the test.
//!
//! Options: `port` (a loopback TCP port to connect to), `udp-port` (a loopback UDP port to
//! send to), `file` (a host file to read), `host` (a name to resolve), `sockets` (`false` skips
//! the socket attempts: the host fails the whole call on one, so the other results would not
//! come back).

wit_bindgen::generate!({ world: "provider-world", path: "../../../wit" });

use std::cell::RefCell;
use std::io::Read;

use cbx::provider::log::{self, Level};
use cbx::provider::types::{
    Check, CheckStatus, CreateRequest, Labels, OptionKind, OptionSpec, Profile, ProviderError,
    ProviderInfo, Sandbox, SshAccess,
};
use exports::cbx::provider::provider::Guest;
use wasip2::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};

thread_local! {
    static OPTIONS: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What one attempt came to.
enum Outcome {
    /// The host gave nothing.
    Refused(String),
    /// The attempt got something (hex-encoded where it is data).
    Escaped(String),
}

fn report(checks: &mut Vec<Check>, name: &str, outcome: Outcome) {
    let (status, detail) = match outcome {
        Outcome::Refused(d) => (CheckStatus::Ok, format!("refused: {d}")),
        Outcome::Escaped(d) => (CheckStatus::Fail, format!("ESCAPED: {d}")),
    };
    checks.push(Check {
        name: name.to_string(),
        status,
        detail,
    });
}

fn pairs(items: &[(String, String)]) -> String {
    items
        .iter()
        .map(|(k, v)| format!("{}={}", hex(k.as_bytes()), hex(v.as_bytes())))
        .collect::<Vec<_>>()
        .join(",")
}

fn list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| hex(s.as_bytes()))
        .collect::<Vec<_>>()
        .join(",")
}

fn port(name: &str) -> u16 {
    option(name).and_then(|p| p.parse().ok()).unwrap_or(9)
}

fn loopback(port: u16) -> IpSocketAddress {
    IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port,
        address: (127, 0, 0, 1),
    })
}

/// The attempts ordinary Rust code makes, through `std`.
fn through_std(checks: &mut Vec<Check>) {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    report(
        checks,
        "std-env",
        if vars.is_empty() {
            Outcome::Refused("empty".into())
        } else {
            Outcome::Escaped(format!("{} variables {}", vars.len(), pairs(&vars)))
        },
    );
    let args: Vec<String> = std::env::args().collect();
    report(
        checks,
        "std-args",
        if args.is_empty() {
            Outcome::Refused("empty".into())
        } else {
            Outcome::Escaped(format!("{} arguments {}", args.len(), list(&args)))
        },
    );
    report(
        checks,
        "std-read-dir",
        match std::fs::read_dir("/") {
            Ok(entries) => {
                let names: Vec<String> = entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                Outcome::Escaped(format!("/ lists {}", list(&names)))
            }
            Err(e) => Outcome::Refused(e.to_string()),
        },
    );
    for (name, path) in [
        ("std-read-passwd", Some("/etc/passwd".to_string())),
        ("std-read-file", option("file")),
    ] {
        let Some(path) = path else { continue };
        report(
            checks,
            name,
            match std::fs::read(&path) {
                Ok(bytes) => Outcome::Escaped(format!("{path}: {}", hex(&bytes))),
                Err(e) => Outcome::Refused(e.to_string()),
            },
        );
    }
    report(
        checks,
        "std-write-file",
        match std::fs::write("/tmp/cbx-escape-wasi-was-here", b"escaped") {
            Ok(()) => Outcome::Escaped("wrote /tmp/cbx-escape-wasi-was-here".into()),
            Err(e) => Outcome::Refused(e.to_string()),
        },
    );
    let mut stdin = Vec::new();
    report(
        checks,
        "std-stdin",
        match std::io::stdin().read_to_end(&mut stdin) {
            Ok(_) if stdin.is_empty() => Outcome::Refused("empty".into()),
            Ok(_) => Outcome::Escaped(hex(&stdin)),
            Err(e) => Outcome::Refused(e.to_string()),
        },
    );
    report(
        checks,
        "std-spawn",
        match std::process::Command::new("/bin/sh")
            .args(["-c", "touch /tmp/cbx-escape-wasi-spawned"])
            .output()
        {
            Ok(out) => Outcome::Escaped(format!("ran /bin/sh: {}", out.status)),
            Err(e) => Outcome::Refused(e.to_string()),
        },
    );
    // Ordinary output goes to the provider's log; nothing here may be secret.
    println!("escape-wasi: stdout line");
    eprintln!("escape-wasi: stderr line");
}

/// The same attempts, straight through the host's WASI 0.2 interfaces.
fn through_wasi(checks: &mut Vec<Check>) {
    use wasip2::cli::environment;
    use wasip2::sockets::{
        instance_network, ip_name_lookup, tcp_create_socket, udp, udp_create_socket,
    };

    let env = environment::get_environment();
    report(
        checks,
        "wasi-environment",
        if env.is_empty() {
            Outcome::Refused("empty".into())
        } else {
            Outcome::Escaped(format!("{} variables {}", env.len(), pairs(&env)))
        },
    );
    let args = environment::get_arguments();
    report(
        checks,
        "wasi-arguments",
        if args.is_empty() {
            Outcome::Refused("empty".into())
        } else {
            Outcome::Escaped(format!("{} arguments {}", args.len(), list(&args)))
        },
    );
    report(
        checks,
        "wasi-cwd",
        match environment::initial_cwd() {
            None => Outcome::Refused("none".into()),
            Some(cwd) => Outcome::Escaped(hex(cwd.as_bytes())),
        },
    );
    let preopens = wasip2::filesystem::preopens::get_directories();
    report(
        checks,
        "wasi-preopens",
        if preopens.is_empty() {
            Outcome::Refused("empty".into())
        } else {
            let names: Vec<String> = preopens.iter().map(|(_, p)| p.clone()).collect();
            Outcome::Escaped(format!("{} directories {}", names.len(), list(&names)))
        },
    );

    if option("sockets").as_deref() == Some("false") {
        return dns(checks);
    }
    let network = instance_network::instance_network();
    let tcp_port = port("port");
    report(
        checks,
        "wasi-tcp",
        match tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4) {
            Err(e) => Outcome::Refused(format!("create-tcp-socket: {e:?}")),
            Ok(socket) => match socket.start_connect(&network, loopback(tcp_port)) {
                Err(e) => Outcome::Refused(format!("start-connect: {e:?}")),
                Ok(()) => {
                    socket.subscribe().block();
                    match socket.finish_connect() {
                        Err(e) => Outcome::Refused(format!("finish-connect: {e:?}")),
                        Ok(_) => Outcome::Escaped(format!("connected to 127.0.0.1:{tcp_port}")),
                    }
                }
            },
        },
    );
    let udp_port = port("udp-port");
    report(
        checks,
        "wasi-udp",
        match udp_create_socket::create_udp_socket(IpAddressFamily::Ipv4) {
            Err(e) => Outcome::Refused(format!("create-udp-socket: {e:?}")),
            Ok(socket) => match socket.start_bind(&network, loopback(0)) {
                Err(e) => Outcome::Refused(format!("start-bind: {e:?}")),
                Ok(()) => {
                    socket.subscribe().block();
                    match socket
                        .finish_bind()
                        .and_then(|()| socket.stream(Some(loopback(udp_port))))
                    {
                        Err(e) => Outcome::Refused(format!("bind/stream: {e:?}")),
                        Ok((_incoming, outgoing)) => {
                            let datagram = udp::OutgoingDatagram {
                                data: b"escape-wasi".to_vec(),
                                remote_address: None,
                            };
                            match outgoing
                                .check_send()
                                .and_then(|_| outgoing.send(&[datagram]))
                            {
                                Ok(n) => Outcome::Escaped(format!(
                                    "sent {n} datagram(s) to 127.0.0.1:{udp_port}"
                                )),
                                Err(e) => Outcome::Refused(format!("send: {e:?}")),
                            }
                        }
                    }
                }
            },
        },
    );
    dns(checks);
}

/// The component's exports.
/// A name lookup through WASI (refused: the host allows none).
fn dns(checks: &mut Vec<Check>) {
    use wasip2::sockets::{instance_network, ip_name_lookup};
    let network = instance_network::instance_network();
    let host = option("host").unwrap_or_else(|| "localhost".to_string());
    report(
        checks,
        "wasi-dns",
        match ip_name_lookup::resolve_addresses(&network, &host) {
            Err(e) => Outcome::Refused(format!("resolve-addresses: {e:?}")),
            Ok(stream) => {
                stream.subscribe().block();
                match stream.resolve_next_address() {
                    Err(e) => Outcome::Refused(format!("resolve-next-address: {e:?}")),
                    Ok(None) => Outcome::Refused("no addresses".into()),
                    Ok(Some(a)) => Outcome::Escaped(format!("{host} resolved to {a:?}")),
                }
            }
        },
    );
}

struct EscapeWasi;

impl Guest for EscapeWasi {
    fn describe() -> ProviderInfo {
        let spec = |name: &str, kind: OptionKind, description: &str| OptionSpec {
            name: name.to_string(),
            description: description.to_string(),
            kind,
            default: None,
        };
        ProviderInfo {
            name: "escape-wasi".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "A WASI test provider that tries to escape".to_string(),
            options: vec![
                spec(
                    "port",
                    OptionKind::Integer,
                    "A loopback TCP port to connect to",
                ),
                spec(
                    "udp-port",
                    OptionKind::Integer,
                    "A loopback UDP port to send to",
                ),
                spec("file", OptionKind::Text, "A host file to read"),
                spec("host", OptionKind::Text, "A name to resolve"),
                spec("sockets", OptionKind::Boolean, "Whether to try sockets (default true)"),
            ],
            features: Vec::new(),
        }
    }

    fn configure(settings: cbx::provider::types::Settings) -> Result<Profile, ProviderError> {
        OPTIONS.with(|o| *o.borrow_mut() = settings.options);
        Ok(Profile {
            work_root: "escape".to_string(),
            summary: Vec::new(),
        })
    }

    fn doctor() -> Result<Vec<Check>, ProviderError> {
        log::log(Level::Info, "escape-wasi: trying every way out");
        let mut checks = Vec::new();
        through_std(&mut checks);
        through_wasi(&mut checks);
        Ok(checks)
    }

    fn create(_request: CreateRequest) -> Result<Sandbox, ProviderError> {
        Err(nothing())
    }

    fn get(_id: String) -> Result<Sandbox, ProviderError> {
        Err(nothing())
    }

    fn list(_labels: Labels) -> Result<Vec<Sandbox>, ProviderError> {
        Ok(Vec::new())
    }

    fn start(_id: String) -> Result<Sandbox, ProviderError> {
        Err(nothing())
    }

    fn stop(_id: String) -> Result<Sandbox, ProviderError> {
        Err(nothing())
    }

    fn delete(_id: String) -> Result<(), ProviderError> {
        Err(nothing())
    }

    fn set_labels(_id: String, _labels: Labels) -> Result<Sandbox, ProviderError> {
        Err(nothing())
    }

    fn touch(_id: String) -> Result<(), ProviderError> {
        Err(nothing())
    }

    fn mint_ssh_access(_id: String) -> Result<SshAccess, ProviderError> {
        Err(nothing())
    }
}

fn nothing() -> ProviderError {
    ProviderError::Other("escape-wasi manages no sandboxes".to_string())
}

export!(EscapeWasi);
