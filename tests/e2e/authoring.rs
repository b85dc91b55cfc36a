//! Provider authors outside cbx's repository (issue 13): `cbx providers test` on a component
//! file that is not installed, the conformance checks that catch the usual mistakes (each with
//! the `broken` test guest making one of them, against the Daytona simulator), and
//! `cbx providers new` projects built and tested from a temporary directory as an author
//! would. The project builds need a wasm toolchain (and componentize-py for Python): they run
//! in CI (`CI` set) and otherwise say why they are skipped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cbx_testkit::daytona_sim::{DaytonaSim, SimConfig};
use cbx_testkit::guests;
use cbx_testkit::home::{CbxHome, Output};
use serde_json::Value;

const CBX: &str = env!("CARGO_BIN_EXE_cbx");

/// The simulator and a home whose `broken` and `template` providers point at it.
fn setup() -> (DaytonaSim, CbxHome) {
    let sim =
        DaytonaSim::start_background(SimConfig::default().with_delays(Duration::from_millis(100)))
            .expect("start the simulator");
    let mut home = CbxHome::new(CBX);
    let data = home.path().join("data");
    home.env("XDG_DATA_HOME", data.to_str().unwrap());
    for prefix in ["BROKEN", "TEMPLATE"] {
        home.env(&format!("{prefix}_API_KEY"), &sim.api_key())
            .env(&format!("{prefix}_API_URL"), &sim.api_url())
            .env(&format!("{prefix}_SSH_GATEWAY"), &sim.ssh_gateway());
    }
    (sim, home)
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// `cbx providers test --json` on the broken guest making mistake `fault`.
fn test_broken(home: &CbxHome, fault: &str) -> (Output, Value) {
    let wasm = guests::path("broken");
    let manifest = repo("tests/guests/broken/cbx-provider.toml");
    let option = format!("fault={fault}");
    let out = home.run(&[
        "-o",
        &option,
        "providers",
        "test",
        "--component",
        wasm.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
        "--timeout",
        "10s",
        "--json",
    ]);
    let report = out.json();
    (out, report)
}

/// The step `name` of a report: (result, detail).
#[track_caller]
fn step(report: &Value, name: &str) -> (String, String) {
    let s = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name}: {report:#}"));
    (
        s["result"].as_str().unwrap().to_string(),
        s["detail"].as_str().unwrap().to_string(),
    )
}

/// Asserts that step `name` failed with a detail containing `cause`, and the run exited 8.
#[track_caller]
fn assert_caught(out: &Output, report: &Value, name: &str, cause: &str) {
    out.expect_code(8);
    assert_eq!(report["passed"], false, "{out}");
    let (result, detail) = step(report, name);
    assert_eq!(result, "fail", "{name}: {detail}\n{out}");
    assert!(detail.contains(cause), "{name}: {detail}");
}

#[test]
fn authoring_a_component_file_is_tested_without_installing_it() {
    let (sim, home) = setup();
    let wasm = guests::path("template");
    let manifest = repo("providers/template/cbx-provider.toml");
    let args = [
        "providers",
        "test",
        "--component",
        wasm.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
    ];
    let out = home.run(&args);
    out.ok();
    assert!(out.stdout.contains("template: conforms"), "{out}");
    // The approval screen, read-only, then the steps.
    assert!(out.stderr.contains("TEMPLATE_API_KEY"), "{out}");
    assert!(
        out.stderr.contains("Testing template 0.1.0 from this file under the grant above: nothing is installed and no approval is recorded."),
        "{out}"
    );
    for step in [
        "not-found",
        "error-401",
        "error-429",
        "ready",
        "list",
        "stop",
    ] {
        assert!(
            out.stderr.contains(&format!("pass  {step} ")),
            "{step}\n{out}"
        );
    }
    // Nothing installed, nothing approved.
    assert!(!home.path().join("data/cbx/providers").exists(), "{out}");
    assert!(!home.config_file().with_file_name("grants.toml").exists());
    let list = home.run(&["providers", "list"]);
    assert!(!list.stdout.contains("template"), "{list}");
    // The grant is enforced: an endpoint outside it is refused, not reached.
    let mut denied = args.to_vec();
    denied.extend(["--endpoint", "api=https://elsewhere.example/api"]);
    let out = home.run(&denied);
    assert!(!out.stdout.contains("conforms ("), "{out}");
    // One way to name the provider.
    let both = home.run(&[
        "--provider",
        "daytona",
        "providers",
        "test",
        "--component",
        wasm.to_str().unwrap(),
    ]);
    both.expect_code(2);
    assert!(both.stderr.contains("either --provider NAME"), "{both}");
    let help = home.run(&["providers", "test", "--help"]);
    help.ok();
    assert!(
        help.stdout
            .contains("Usage: cbx providers test [OPTIONS]\n"),
        "{help}"
    );
    assert!(help.stdout.contains("--component <FILE>"), "{help}");
    assert!(help.stdout.contains("[default: 1m]"), "{help}");
    drop(sim);
}

#[test]
fn authoring_a_provider_without_mistakes_conforms() {
    let (_sim, home) = setup();
    let (out, report) = test_broken(&home, "none");
    out.ok();
    assert_eq!(report["passed"], true, "{out}");
    assert_eq!(report["timeoutSecs"], 10);
}

#[test]
fn authoring_a_list_ignoring_its_labels_is_caught() {
    let (_sim, home) = setup();
    let (out, report) = test_broken(&home, "list-ignores-labels");
    assert_caught(
        &out,
        &report,
        "list",
        "does it ignore its `labels` argument?",
    );
}

#[test]
fn authoring_creating_mapped_to_ready_is_caught() {
    let (_sim, home) = setup();
    let (out, report) = test_broken(&home, "creating-is-ready");
    assert_caught(
        &out,
        &report,
        "create",
        "the provider says `ready` while the service says `creating`: map the service's `creating`",
    );
    assert_caught(&out, &report, "ready", "not to ready");
}

#[test]
fn authoring_stopped_mapped_to_ready_is_caught_at_once() {
    let (_sim, home) = setup();
    let started = Instant::now();
    let (out, report) = test_broken(&home, "stopped-is-ready");
    assert_caught(
        &out,
        &report,
        "stop",
        "still `ready` after stop while the service says `stop",
    );
    assert!(started.elapsed() < Duration::from_secs(60), "{out}");
}

#[test]
fn authoring_labels_that_do_not_round_trip_are_caught() {
    let (_sim, home) = setup();
    let (out, report) = test_broken(&home, "labels-mangled");
    assert_caught(
        &out,
        &report,
        "get",
        "label `path` came back as `/home/dev/cbx`, not `/home/dev/cbx:1.5` as given",
    );
    let (out, report) = test_broken(&home, "labels-dropped");
    assert_caught(
        &out,
        &report,
        "get",
        "given at create is missing: store the labels",
    );
}

#[test]
fn authoring_errors_mapped_to_the_wrong_variant_are_caught() {
    let (_sim, home) = setup();
    let (out, report) = test_broken(&home, "errors-as-other");
    assert_caught(
        &out,
        &report,
        "not-found",
        "not not-found: map the service's 404",
    );
    assert_caught(
        &out,
        &report,
        "error-401",
        "not unauthorized: map 401 to unauthorized",
    );
    assert_caught(
        &out,
        &report,
        "error-429",
        "not rate-limited: map 429 to rate-limited",
    );
    let (out, report) = test_broken(&home, "no-retry-after");
    assert_caught(
        &out,
        &report,
        "error-429",
        "retry-after-ms None, not Some(7000): read the Retry-After header",
    );
    assert_eq!(step(&report, "error-401").0, "pass");
}

// ---------------------------------------------------------------------------------------------
// `cbx providers new`, built and tested as an author would

/// Whether the project tests run: always in CI; elsewhere only when asked (they build a
/// component from scratch, 1–3 minutes).
fn projects_enabled(what: &str) -> bool {
    if std::env::var_os("CI").is_some() || std::env::var_os("CBX_TEST_PROJECTS").is_some() {
        return true;
    }
    eprintln!("skipping the {what} project test: it runs in CI, or with CBX_TEST_PROJECTS=1");
    false
}

/// A free loopback port.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running fake service, killed on drop.
struct Fake(Child);

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` (a fake service on `port`) and waits until it accepts connections.
fn start_fake(mut cmd: Command, port: u16) -> Fake {
    let child = cmd
        .stdout(Stdio::null())
        .spawn()
        .expect("start the fake service");
    let fake = Fake(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the fake service did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    fake
}

/// A home working in a new temporary directory outside the checkout, where the author's
/// toolchain (rustup's variables) still works although HOME is the home's.
fn author_home() -> (tempfile::TempDir, CbxHome) {
    let outside = tempfile::Builder::new()
        .prefix("cbx-author-")
        .tempdir()
        .unwrap();
    let mut home = CbxHome::new(CBX);
    home.cwd = outside.path().to_path_buf();
    let real_home = std::env::var("HOME").unwrap_or_default();
    for (var, default) in [("RUSTUP_HOME", ".rustup"), ("CARGO_HOME", ".cargo")] {
        let value = std::env::var(var).unwrap_or_else(|_| format!("{real_home}/{default}"));
        home.env(var, &value);
    }
    if let Ok(toolchain) = std::env::var("RUSTUP_TOOLCHAIN") {
        home.env("RUSTUP_TOOLCHAIN", &toolchain);
    }
    (outside, home)
}

/// `cbx providers test --component provider.wasm` in `project` against the fake on `port`.
fn conforms(home: &CbxHome, project: &Path, prefix: &str, port: u16) {
    let api = format!("api=http://127.0.0.1:{port}/api");
    let key = format!("{prefix}_API_KEY");
    let gateway = format!("{prefix}_SSH_GATEWAY");
    let mut cmd = home.command(&[
        "providers",
        "test",
        "--component",
        "provider.wasm",
        "--endpoint",
        &api,
    ]);
    cmd.current_dir(project)
        .env(&key, "test-key")
        .env(&gateway, "127.0.0.1:2222");
    let out = cmd.output().unwrap();
    let text = format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(": conforms ("),
        "{text}"
    );
}

#[test]
fn authoring_a_new_rust_project_builds_and_conforms_outside_the_checkout() {
    if !projects_enabled("Rust") {
        return;
    }
    let (outside, home) = author_home();
    home.run(&["providers", "new", "acme"]).ok();
    let project = outside.path().join("acme");
    let started = Instant::now();
    let mut build = home.command(&["providers", "build"]);
    build.current_dir(&project);
    let built = build.output().unwrap();
    assert!(
        built.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    eprintln!(
        "timing: cbx providers build took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(project.join("provider.wasm").is_file());
    // The fake, as the README starts it (cargo run), on a free port.
    let port = free_port();
    let mut fake = Command::new("cargo");
    fake.args(["run", "-q", "--manifest-path", "fake/Cargo.toml", "--"])
        .arg(port.to_string())
        .arg("test-key")
        .current_dir(&project);
    let _fake = start_fake(fake, port);
    conforms(&home, &project, "ACME", port);
    // `cbx providers wit` refreshes the vendored contract.
    std::fs::write(project.join("wit/provider.wit"), "stale").unwrap();
    let mut wit = home.command(&["providers", "wit", "--out", "wit"]);
    wit.current_dir(&project);
    assert!(wit.status().unwrap().success());
    let fresh = std::fs::read_to_string(project.join("wit/provider.wit")).unwrap();
    assert_eq!(
        fresh,
        std::fs::read_to_string(repo("wit/provider.wit")).unwrap()
    );
}

#[test]
fn authoring_a_new_python_project_builds_and_conforms_outside_the_checkout() {
    if !projects_enabled("Python") {
        return;
    }
    let (outside, home) = author_home();
    home.run(&["providers", "new", "acme-py", "--lang", "python"])
        .ok();
    let project = outside.path().join("acme-py");
    let built = Command::new("componentize-py")
        .args([
            "-d",
            "wit",
            "-w",
            "provider-world",
            "componentize",
            "app",
            "-o",
            "provider.wasm",
        ])
        .current_dir(&project)
        .output()
        .expect("componentize-py (tests/setup.sh installs it)");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let port = free_port();
    let mut fake = Command::new("python3");
    fake.arg("fake_service.py")
        .arg(port.to_string())
        .arg("test-key")
        .current_dir(&project);
    let _fake = start_fake(fake, port);
    conforms(&home, &project, "ACME_PY", port);
}

#[test]
fn authoring_ready_before_the_service_hands_out_ssh_is_caught() {
    // The service refuses SSH access right after the provider said `ready` (as a service
    // does whose transitional state the provider mapped to ready).
    let (sim, home) = setup();
    sim.inject(cbx_testkit::daytona_sim::Fault::status(
        "POST",
        "/ssh-access",
        409,
        "Sandbox is not started",
    ));
    let (out, report) = test_broken(&home, "none");
    assert_caught(
        &out,
        &report,
        "ssh-access",
        "right after the provider said `ready`: does it report `ready` before the service does",
    );
}
