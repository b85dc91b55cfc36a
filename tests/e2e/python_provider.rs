//! The contract is language-neutral: the Daytona provider written in Python
//! (`providers/daytona-py`, built with componentize-py) is installed into the real `cbx` binary
//! like any third-party provider and passes the lifecycle the built-in Rust provider passes in
//! `control_plane.rs` (doctor → warmup → list → status → stop) against the Daytona simulator,
//! with the same grant and without the API key showing up anywhere. With root (a real sshd
//! gateway, as in `data_plane.rs`) it also runs commands and `cbx ssh` through it.
//!
//! The component is built once per run by `providers/daytona-py/build.sh`. Without
//! componentize-py the tests say why and skip, except in CI (`CI` set), where tests/setup.sh
//! installs it and its absence is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cbx_testkit::daytona_sim::{DaytonaSim, SimConfig};
use cbx_testkit::home::{CbxHome, Output};
use cbx_testkit::sshd::SshdGateway;
use serde_json::{Value, json};

const CBX: &str = env!("CARGO_BIN_EXE_cbx");
const PROVIDER: &str = "daytona-py";

/// The ownership labels every cbx sandbox carries.
const OWNERSHIP_LABELS: &[&str] = &[
    "cbx",
    "cbx_provider",
    "cbx_lease",
    "cbx_slug",
    "cbx_created_at",
    "cbx_touched_at",
    "cbx_ttl_secs",
    "cbx_idle_secs",
    "cbx_expires_at",
    "cbx_work_root",
    "cbx_owner",
];

// ---------------------------------------------------------------------------------------------
// Building and installing the component

/// The built component and its manifest.
struct Built {
    wasm: PathBuf,
    manifest: PathBuf,
}

/// Builds the component once per test binary; `None` (with the reason printed) when
/// componentize-py is not installed outside CI.
fn component() -> Option<&'static Built> {
    static BUILT: OnceLock<Option<Built>> = OnceLock::new();
    BUILT.get_or_init(build).as_ref()
}

fn build() -> Option<Built> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = root.join("providers/daytona-py/build.sh");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("daytona-py");
    let started = Instant::now();
    let run = Command::new("bash")
        .arg(&script)
        .arg(&out)
        .output()
        .expect("run providers/daytona-py/build.sh");
    let log = format!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    if run.status.code() == Some(127) {
        let why = "componentize-py is not installed (python3 -m pip install componentize-py, \
                   or run tests/setup.sh)";
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must build the Python provider: {why}\n{log}"
        );
        eprintln!("skipping the Python provider tests: {why}");
        return None;
    }
    assert!(run.status.success(), "build.sh failed\n{log}");
    let wasm = out.join("daytona-py.wasm");
    let size = std::fs::metadata(&wasm)
        .expect("the component was built")
        .len();
    eprintln!(
        "timing: built {} ({size} bytes) in {:.1}s",
        wasm.display(),
        started.elapsed().as_secs_f64()
    );
    Some(Built {
        wasm,
        manifest: out.join("cbx-provider.toml"),
    })
}

/// A home pointed at `sim` with the provider installed (and approved) into it.
fn installed_home(sim: &DaytonaSim, built: &Built) -> (CbxHome, Output) {
    let mut home = CbxHome::new(CBX);
    let data = home.path().join("data");
    home.env("XDG_DATA_HOME", data.to_str().expect("a UTF-8 temp path"))
        .env("DAYTONA_API_URL", &sim.api_url())
        .env("DAYTONA_API_KEY", &sim.api_key())
        .env("DAYTONA_SSH_GATEWAY", &sim.ssh_gateway());
    let (wasm, manifest) = (path_str(&built.wasm), path_str(&built.manifest));
    let started = Instant::now();
    let install = home.run(&[
        "providers",
        "install",
        wasm,
        "--manifest",
        manifest,
        "--yes",
    ]);
    install.ok();
    eprintln!(
        "timing: cbx providers install (compiles the component unless cached): {:.2}s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        data.join("cbx/providers").join(PROVIDER).is_dir(),
        "installed under XDG_DATA_HOME\n{install}"
    );
    (home, install)
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// Runs `cbx --provider daytona-py args…`.
fn cbx(home: &CbxHome, args: &[&str]) -> Output {
    let mut all = vec!["--provider", PROVIDER];
    all.extend_from_slice(args);
    home.run(&all)
}

/// Runs one command and prints how long it took, labelled.
fn timed(home: &CbxHome, label: &str, args: &[&str]) -> Output {
    let started = Instant::now();
    let out = cbx(home, args);
    eprintln!(
        "timing: {label} (cbx {}): {:.2}s",
        args.join(" "),
        started.elapsed().as_secs_f64()
    );
    out
}

/// A lease as `warmup --json` reports it.
struct Leased {
    lease: String,
    sandbox: String,
    json: Value,
}

#[track_caller]
fn warmup(home: &CbxHome, extra: &[&str]) -> (Leased, Output) {
    let mut args = vec!["warmup", "--json"];
    args.extend_from_slice(extra);
    let out = cbx(home, &args);
    out.ok();
    let json = out.json();
    let s = |k: &str| {
        json[k]
            .as_str()
            .unwrap_or_else(|| panic!("`{k}` missing\n{out}"))
            .to_string()
    };
    (
        Leased {
            lease: s("leaseId"),
            sandbox: s("sandboxId"),
            json: json.clone(),
        },
        out,
    )
}

/// Lease ids in `list --json` output.
fn lease_ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("list --json is an array")
        .iter()
        .map(|v| v["leaseId"].as_str().expect("leaseId").to_string())
        .collect()
}

fn claim_file(home: &CbxHome, lease: &str) -> PathBuf {
    home.state_dir()
        .join("claims")
        .join(format!("{lease}.json"))
}

fn claim_count(home: &CbxHome) -> usize {
    std::fs::read_dir(home.state_dir().join("claims"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
        .unwrap_or(0)
}

/// Waits (bounded) until the simulator holds no sandbox at all.
#[track_caller]
fn assert_sim_empties(sim: &DaytonaSim, within: Duration) {
    let deadline = Instant::now() + within;
    while !sim.sandboxes().is_empty() {
        assert!(
            Instant::now() < deadline,
            "sandboxes left behind: {:#?}",
            sim.sandboxes()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// Install and inspect

#[test]
fn installs_with_wasi_imports_and_the_daytona_grant() {
    let Some(built) = component() else { return };
    let sim = DaytonaSim::start_background(SimConfig::default()).expect("start the simulator");
    let (home, install) = installed_home(&sim, built);

    let listed = home.run(&["providers", "list", "--json"]);
    listed.ok();
    let entry = listed
        .json()
        .as_array()
        .expect("an array")
        .iter()
        .find(|p| p["name"] == PROVIDER)
        .cloned()
        .unwrap_or_else(|| panic!("{PROVIDER} is listed\n{listed}"));
    assert_eq!(entry["status"], "approved", "{listed}");

    let py = home.run(&["providers", "inspect", PROVIDER, "--json"]);
    py.ok();
    let py = py.json();
    let rust = home.run(&["providers", "inspect", "daytona", "--json"]);
    rust.ok();
    let rust = rust.json();

    assert_eq!(py["name"], PROVIDER);
    assert_eq!(py["contract"], rust["contract"]);
    assert_eq!(py["features"], json!(["start", "stop", "touch", "labels"]));
    let option_names = |v: &Value| -> Vec<String> {
        v["options"]
            .as_array()
            .expect("options")
            .iter()
            .map(|o| o["name"].as_str().expect("name").to_string())
            .collect()
    };
    assert_eq!(option_names(&py), option_names(&rust));
    for (p, r) in py["options"]
        .as_array()
        .unwrap()
        .iter()
        .zip(rust["options"].as_array().unwrap())
    {
        assert_eq!(p["default"], r["default"], "option {}", p["name"]);
        assert_eq!(p["kind"], r["kind"], "option {}", p["name"]);
    }

    // Read from the binary: it is a WASI component (CPython needs WASI), it imports the
    // contract's host interfaces and exports the provider interface.
    assert_eq!(py["wasi"], true, "{py:#}");
    let names = |v: &Value, key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .unwrap_or_else(|| panic!("`{key}` in {v:#}"))
            .iter()
            .map(|i| i["name"].as_str().expect("name").to_string())
            .collect()
    };
    let imports = names(&py, "imports");
    assert!(
        imports.iter().any(|i| i.starts_with("wasi:")),
        "{imports:?}"
    );
    for iface in ["http", "log"] {
        assert!(
            imports
                .iter()
                .any(|i| i.starts_with(&format!("cbx:provider/{iface}@"))),
            "{iface} in {imports:?}"
        );
    }
    let exports = names(&py, "exports");
    assert!(
        exports
            .iter()
            .any(|e| e.starts_with("cbx:provider/provider@0.1.")),
        "{exports:?}"
    );

    // The same grant as the built-in Daytona provider: one endpoint (the simulator, through
    // DAYTONA_API_URL) and the same credentials, bound the same way.
    assert_eq!(py["grant"]["endpoints"], rust["grant"]["endpoints"]);
    assert_eq!(py["grant"]["credentials"], rust["grant"]["credentials"]);
    assert_eq!(py["grant"]["authProblem"], rust["grant"]["authProblem"]);
    assert_eq!(
        py["manifest"]["credentials"],
        rust["manifest"]["credentials"]
    );
    assert_eq!(py["manifest"]["authOneOf"], rust["manifest"]["authOneOf"]);
    let endpoints = py["grant"]["endpoints"].as_array().expect("endpoints");
    assert_eq!(endpoints.len(), 1, "{py:#}");
    assert!(
        endpoints[0].to_string().contains(&sim.api_url()),
        "{endpoints:?}"
    );
    assert_ne!(py["approved"], Value::Null, "{py:#}");

    let human = home.run(&["providers", "inspect", PROVIDER]);
    human.ok();
    home.assert_secret_absent(&sim.api_key(), &[&install, &listed, &human], &[]);
}

// ---------------------------------------------------------------------------------------------
// The control plane, as control_plane.rs's full_flow_doctor_warmup_list_status_stop

#[test]
fn full_flow_doctor_warmup_list_status_stop() {
    let Some(built) = component() else { return };
    let sim =
        DaytonaSim::start_background(SimConfig::default().with_delays(Duration::from_millis(100)))
            .expect("start the simulator");
    let key = sim.api_key();
    let (home, install) = installed_home(&sim, built);
    let mut outs = vec![install];

    // doctor: human and JSON. `install` compiled the component into the cache already.
    let doctor = timed(&home, "first command after install", &["doctor"]);
    doctor.ok();
    assert!(
        doctor.stdout.contains("credentials accepted (api-key)"),
        "{doctor}"
    );
    let doctor_json = timed(&home, "second command", &["doctor", "--json"]);
    doctor_json.ok();
    let report = doctor_json.json();
    assert_eq!(report["provider"], PROVIDER);
    assert_eq!(report["ok"], true);
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] != "fail"),
        "{report:#}"
    );
    outs.extend([doctor, doctor_json]);

    // warmup (human): one result line on stdout, progress on stderr.
    let human = timed(
        &home,
        "warmup",
        &["warmup", "--slug", "first-otter", "--ttl", "2h"],
    );
    human.ok();
    assert_eq!(human.stdout.lines().count(), 1, "{human}");
    let parts: Vec<&str> = human.stdout.trim_end().split(' ').collect();
    assert_eq!(parts.len(), 5, "{human}");
    assert_eq!(parts[0], "leased");
    assert!(
        parts[1].starts_with("cbx_") && parts[1].len() == 16,
        "{human}"
    );
    assert_eq!(parts[2], "slug=first-otter");
    assert_eq!(parts[3], format!("provider={PROVIDER}"));
    let first_sandbox = parts[4].strip_prefix("sandbox=").expect("sandbox=");
    assert!(sim.sandbox(first_sandbox).is_some(), "{human}");
    assert!(
        human
            .stderr
            .contains(&format!("creating a {PROVIDER} sandbox")),
        "{human}"
    );
    assert!(human.stderr.contains("is ready"), "{human}");
    outs.push(human);

    // warmup (JSON): every documented field, consistent with the simulator.
    let (lease, out) = warmup(&home, &["--slug", "second-otter", "--ttl", "2h"]);
    let j = &lease.json;
    assert_eq!(j["provider"], PROVIDER);
    assert_eq!(j["slug"], "second-otter");
    assert_eq!(j["state"], "ready");
    assert_eq!(j["ready"], true);
    assert_eq!(j["claimed"], true);
    assert!(lease.lease.starts_with("cbx_") && lease.lease.len() == 16);
    let view = sim.sandbox(&lease.sandbox).expect("the sandbox exists");
    assert_eq!(view.state, "started");
    for label in OWNERSHIP_LABELS {
        assert!(view.labels.contains_key(*label), "label {label} missing");
        assert_eq!(
            j["labels"][label].as_str(),
            Some(view.labels[*label].as_str()),
            "label {label}"
        );
    }
    assert_eq!(view.labels["cbx"], "true");
    assert_eq!(view.labels["cbx_provider"], PROVIDER);
    assert_eq!(view.labels["cbx_lease"], lease.lease);
    assert_eq!(view.labels["cbx_slug"], "second-otter");
    assert_eq!(view.labels["cbx_ttl_secs"], "7200");
    assert_eq!(view.labels["cbx_work_root"], "cbx");
    let created: i64 = view.labels["cbx_created_at"].parse().unwrap();
    let expires: i64 = view.labels["cbx_expires_at"].parse().unwrap();
    assert_eq!(expires - created, 7200);
    let ts = |k: &str| {
        chrono::DateTime::parse_from_rfc3339(j[k].as_str().expect(k))
            .unwrap_or_else(|e| panic!("{k}: {e}"))
            .timestamp()
    };
    assert_eq!(ts("createdAt"), created);
    assert_eq!(ts("expiresAt"), expires);
    assert!((created - chrono::Utc::now().timestamp()).abs() < 300);
    assert!(claim_file(&home, &lease.lease).is_file());
    assert!(out.stderr.contains("is ready"), "{out}");
    outs.push(out);

    // The Python provider sent what the Rust one sends: the create body and the labels body.
    let requests = sim.requests();
    let create = requests
        .iter()
        .find(|r| r.method == "POST" && r.path == "/api/sandbox")
        .expect("a create request");
    assert_eq!(create.header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&create.body).expect("a JSON create body");
    assert_eq!(body["public"], false, "{body:#}");
    assert_eq!(body["autoArchiveInterval"], 10080, "{body:#}");
    assert_eq!(body["user"], "daytona", "{body:#}");
    assert!(body.get("snapshot").is_none(), "{body:#}");
    let set_labels = requests
        .iter()
        .find(|r| r.method == "PUT" && r.path.ends_with("/labels"))
        .expect("a set-labels request");
    let body: Value = serde_json::from_slice(&set_labels.body).expect("a JSON labels body");
    assert_eq!(body["labels"]["cbx_provider"], PROVIDER, "{body:#}");

    // list: JSON and human.
    let list = cbx(&home, &["list", "--json"]);
    list.ok();
    let ids = lease_ids(&list.json());
    assert_eq!(ids.len(), 2, "{list}");
    assert!(ids.contains(&lease.lease));
    let list_human = cbx(&home, &["list"]);
    list_human.ok();
    assert!(list_human.stdout.contains(&lease.lease), "{list_human}");
    assert!(list_human.stdout.contains("second-otter"), "{list_human}");
    assert!(list_human.stdout.contains(&lease.sandbox), "{list_human}");
    outs.extend([list, list_human]);

    // The built-in provider does not see the Python provider's leases, and the other way round.
    let rust_list = home.run(&["--provider", "daytona", "list", "--json"]);
    rust_list.ok();
    assert_eq!(rust_list.json(), json!([]), "{rust_list}");
    outs.push(rust_list);

    // status: live state, by slug and by lease id.
    let status = cbx(&home, &["status", "second-otter", "--json"]);
    status.ok();
    let s = status.json();
    assert_eq!(s["leaseId"], lease.lease.as_str());
    assert_eq!(s["sandboxId"], lease.sandbox.as_str());
    assert_eq!(s["state"], "ready");
    assert_eq!(s["ready"], true);
    outs.push(status);

    // The sandbox stops behind cbx's back: status reports it.
    assert!(sim.set_state(&lease.sandbox, "stopped"));
    let status = cbx(&home, &["status", &lease.lease, "--json"]);
    status.ok();
    let s = status.json();
    assert_eq!(s["state"], "stopped", "{status}");
    assert_eq!(s["providerState"], "stopped", "{status}");
    assert_eq!(s["ready"], false, "{status}");
    let status_human = cbx(&home, &["status", "second-otter"]);
    status_human.ok();
    assert!(
        status_human
            .stdout
            .contains(&format!("stopped ({PROVIDER}: stopped)")),
        "{status_human}"
    );
    assert!(
        status_human
            .stdout
            .lines()
            .any(|l| l.starts_with("ready") && l.trim_end().ends_with("no")),
        "{status_human}"
    );
    let list = cbx(&home, &["list", "--json"]);
    list.ok();
    let listed = list.json();
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["leaseId"] == lease.lease.as_str())
        .expect("listed");
    assert_eq!(entry["state"], "stopped");
    assert_eq!(entry["ready"], false);
    outs.extend([status, status_human, list]);

    // stop: the sandbox is gone from the simulator and the claim is removed.
    let stop = cbx(&home, &["stop", "second-otter"]);
    stop.ok();
    assert!(
        stop.stdout
            .starts_with(&format!("released {} slug=second-otter", lease.lease)),
        "{stop}"
    );
    assert!(sim.sandbox(&lease.sandbox).is_none(), "still there: {stop}");
    assert!(!claim_file(&home, &lease.lease).exists());
    outs.push(stop);
    let stop = cbx(&home, &["stop", "first-otter"]);
    stop.ok();
    outs.push(stop);
    assert_sim_empties(&sim, Duration::from_secs(5));
    assert_eq!(claim_count(&home), 0);

    let list = cbx(&home, &["list", "--json"]);
    list.ok();
    assert_eq!(list.json(), json!([]));
    let list_human = cbx(&home, &["list"]);
    list_human.ok();
    assert_eq!(list_human.stdout, "", "{list_human}");
    assert!(
        list_human.stderr.contains(&format!("no {PROVIDER} leases")),
        "{list_human}"
    );
    outs.extend([list, list_human]);

    // Every request carried the key (attached by the host), and the key is nowhere in outputs
    // or files.
    for r in sim.requests() {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {key}").as_str()),
            "{} {}",
            r.method,
            r.path
        );
    }
    let refs: Vec<&Output> = outs.iter().collect();
    home.assert_secret_absent(&key, &refs, &[]);
}

#[test]
fn list_follows_pagination_and_errors_map_like_the_rust_provider() {
    let Some(built) = component() else { return };
    let sim = DaytonaSim::start_background(SimConfig {
        max_page_size: 2,
        ..SimConfig::default().with_delays(Duration::from_millis(50))
    })
    .expect("start the simulator");
    let (mut home, _) = installed_home(&sim, built);
    let mut leases = Vec::new();
    for _ in 0..3 {
        leases.push(warmup(&home, &[]).0.lease);
    }
    sim.clear_requests();
    let list = cbx(&home, &["list", "--json"]);
    list.ok();
    let mut ids = lease_ids(&list.json());
    ids.sort();
    leases.sort();
    assert_eq!(ids, leases, "{list}");
    let pages = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path == "/api/sandbox")
        .count();
    assert_eq!(pages, 2, "3 sandboxes in pages of 2");

    // Unknown lease: not found (exit 4). A wrong key: unauthorized (exit 3), without the key.
    cbx(&home, &["status", "no-such-lease"]).expect_code(4);
    home.env("DAYTONA_API_KEY", "wrong-key-123456");
    let denied = cbx(&home, &["doctor"]);
    denied.expect_code(3);
    assert!(
        denied.stdout.contains("Invalid credentials (HTTP 401)"),
        "{denied}"
    );
    home.assert_secret_absent("wrong-key-123456", &[&denied], &[]);
    home.env("DAYTONA_API_KEY", &sim.api_key());
    for lease in &leases {
        cbx(&home, &["stop", lease]).ok();
    }
    assert_sim_empties(&sim, Duration::from_secs(5));
}

// ---------------------------------------------------------------------------------------------
// The data plane through the Python provider (root only: a real sshd gateway)

#[test]
fn run_and_ssh_through_the_python_provider() {
    let Some(built) = component() else { return };
    if let Some(why) = SshdGateway::unavailable() {
        eprintln!("skipping the Python provider's data-plane test: {why}");
        return;
    }
    let gateway = Arc::new(SshdGateway::start().expect("start sshd gateway"));
    let sim = DaytonaSim::start_background(SimConfig {
        ssh: gateway.clone(),
        ..SimConfig::default().with_delays(Duration::from_millis(100))
    })
    .expect("start the simulator");
    let (home, install) = installed_home(&sim, built);
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(&home.cwd)
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["init", "-q"]);
    std::fs::write(home.cwd.join("README.md"), "hello from the repo\n").unwrap();
    git(&["add", "."]);

    let (lease, warm) = warmup(&home, &["--slug", "py-otter"]);
    let run = cbx(
        &home,
        &[
            "run",
            "--id",
            "py-otter",
            "--",
            "sh",
            "-c",
            "cat README.md; echo \"$CBX_SLUG\"; exit 3",
        ],
    );
    run.expect_code(3);
    assert!(run.stdout.contains("hello from the repo"), "{run}");
    assert!(run.stdout.contains("py-otter"), "{run}");
    let ssh = cbx(&home, &["ssh", "py-otter", "--", "cat", "README.md"]);
    ssh.ok();
    assert_eq!(ssh.stdout, "hello from the repo\n", "{ssh}");
    let printed = cbx(&home, &["ssh", "py-otter", "--print"]);
    printed.ok();
    assert!(printed.stdout.contains("<token>@127.0.0.1"), "{printed}");
    // The access the Python provider minted (parsed from `sshCommand`) was cached and reused.
    let mints = sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/ssh-access"))
        .count();
    assert_eq!(mints, 1);
    let stop = cbx(&home, &["stop", "py-otter"]);
    stop.ok();
    assert!(sim.sandbox(&lease.sandbox).is_none(), "{stop}");

    let outs = [&install, &warm, &run, &ssh, &printed, &stop];
    home.assert_secret_absent(&sim.api_key(), &outs, &[]);
    for token in sim.minted_ssh_tokens() {
        home.assert_secret_absent(&token, &outs, &["state/cbx/secrets"]);
    }
}
