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
        for secret in [
            EVIL_KEY.to_string(),
            hex(EVIL_KEY),
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
    // 1000 sandboxes of 12 KiB each: large but within the limits; none is cbx's, so none is
    // shown and nothing is written.
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
                "provider malformed was denied SSH {}: it named the key file {key:?}; a provider never chooses a key",
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
            "it named the key file \"/root/.ssh/other\", not the one you set in option `user-key`"
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
    for (root, why) in [
        (
            "-rf",
            "begins with `-`, so a remote command could read it as an option",
        ),
        ("cbx\n-x", "contains control characters"),
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
                    "provider malformed reported the work root {root:?}, which {why}"
                )),
                "{args:?}\n{out}"
            );
        }
    }
    h.assert_nothing_sent(&attacker);
    h.assert_host_keeps_working(&["mode=ok"]);
}
