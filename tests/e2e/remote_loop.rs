//! End-to-end tests of the remote test loop (issue 15): `run --download`, `cbx cp`, against
//! the Daytona simulator with its real sshd, including a hostile sandbox (a symlink named like
//! an artifact, a `tar` that sends `../../x`) and interrupted downloads.
//!
//! Needs root, as `data_plane` does; elsewhere each test prints why it is skipped.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cbx_testkit::daytona_sim::{DaytonaSim, SimConfig};
use cbx_testkit::home::{CbxHome, Output};
use cbx_testkit::sshd::SshdGateway;

use super::data_plane::{gateway, start_sim};

const CBX: &str = env!("CARGO_BIN_EXE_cbx");

/// A simulator with SSH, a cbx home pointed at it, and a git repository as working directory.
struct World {
    sim: DaytonaSim,
    gateway: Arc<SshdGateway>,
    home: CbxHome,
    _rt: tokio::runtime::Runtime,
}

impl World {
    fn new() -> Option<World> {
        let gateway = gateway()?;
        let (sim, home, rt) = start_sim(SimConfig {
            ssh: gateway.clone(),
            ..SimConfig::default().with_delays(Duration::from_millis(50))
        });
        home.git(&["init", "-q"]);
        home.write_file("README.md", "hello\n");
        home.git(&["add", "."]);
        Some(World {
            sim,
            gateway,
            home,
            _rt: rt,
        })
    }

    fn cbx(&self, args: &[&str]) -> Output {
        self.home.run(args)
    }

    fn local(&self, rel: &str) -> PathBuf {
        self.home.cwd.join(rel)
    }

    /// Leases `slug` and returns (lease id, sandbox home, work directory on the sandbox).
    fn warmup(&self, slug: &str) -> (String, PathBuf, PathBuf) {
        let out = self.cbx(&["warmup", "--slug", slug, "--json"]);
        out.ok();
        let v = out.json();
        let (lease, sandbox) = (
            v["leaseId"].as_str().unwrap().to_string(),
            v["sandboxId"].as_str().unwrap(),
        );
        let home = self.gateway.sandbox_home(sandbox).expect("sandbox home");
        let repo = self.home.cwd.file_name().unwrap().to_owned();
        let wd = home.join("cbx").join(&lease).join(repo);
        (lease, home, wd)
    }

    /// Makes the sandbox's `tar` (for commands ssh runs) the script `body`: a hostile sandbox.
    fn hostile_tar(&self, sandbox_home: &Path, body: &str) {
        let bin = sandbox_home.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("tar"), format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(bin.join("tar"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(
            sandbox_home.join(".bashrc"),
            format!("export PATH={}:$PATH\n", bin.display()),
        )
        .unwrap();
    }

    /// Waits until the simulator holds no live sandbox.
    #[track_caller]
    fn assert_no_live_sandbox(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self
            .sim
            .sandboxes()
            .iter()
            .all(|s| s.state == "destroying" || s.name.starts_with("DESTROYED_"))
        {
            assert!(Instant::now() < deadline, "a sandbox is still live");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A tar stream whose entries are named exactly as given (a hostile sandbox's).
fn raw_tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, body) in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_mode(0o644);
        h.set_size(body.len() as u64);
        h.set_cksum();
        b.append(&h, *body).unwrap();
    }
    b.into_inner().unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `.cbx-part-` file under `dir`.
fn partial_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if e.file_name().to_string_lossy().starts_with(".cbx-part-") {
                found.push(p);
            }
        }
    }
    found
}

#[test]
fn run_downloads_results_after_a_failed_one_shot_command_and_keeps_its_exit_code() {
    let Some(w) = World::new() else { return };
    let out = w.cbx(&[
        "run",
        "--download",
        "out/*.xml:got",
        "--download",
        "out/logs",
        "--download",
        "nothing/*.xml",
        "--shell",
        "--",
        "mkdir -p out/logs/deep && echo '<testsuite/>' > out/report.xml && \
         echo log > out/logs/deep/a.log && echo skip > out/other.txt && exit 3",
    ]);
    out.expect_code(3);
    assert_eq!(read(&w.local("got/out/report.xml")), "<testsuite/>\n");
    assert!(
        !w.local("got/out/other.txt").exists(),
        "only what the glob matches"
    );
    assert_eq!(read(&w.local("out/logs/deep/a.log")), "log\n");
    assert!(
        out.stderr
            .contains("downloaded 1 file (13 B) from out/*.xml to"),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("warning: --download nothing/*.xml: matched nothing on the sandbox"),
        "{out}"
    );
    // The downloads ran before the one-shot sandbox was deleted.
    let downloaded = out.stderr.find("downloaded 1 file").unwrap();
    assert!(out.stderr[downloaded..].contains("released"), "{out}");
    w.assert_no_live_sandbox();
}

#[test]
fn require_download_turns_a_missing_download_into_an_error() {
    let Some(w) = World::new() else { return };
    let out = w.cbx(&[
        "run",
        "--download",
        "missing.xml",
        "--require-download",
        "--",
        "true",
    ]);
    out.expect_code(6);
    assert!(
        out.stderr
            .contains("error: --download missing.xml: matched nothing on the sandbox"),
        "{out}"
    );
    assert!(out.stderr.contains("hint: check the paths"), "{out}");
    w.assert_no_live_sandbox();

    // After a failed command the command's exit code stays; the error is still shown.
    let out = w.cbx(&[
        "run",
        "--download",
        "missing.xml",
        "--require-download",
        "--",
        "sh",
        "-c",
        "exit 4",
    ]);
    out.expect_code(4);
    assert!(
        out.stderr
            .contains("error: --download missing.xml: matched nothing"),
        "{out}"
    );
}

#[test]
fn download_paths_that_could_escape_are_refused_before_anything_is_leased() {
    let Some(w) = World::new() else { return };
    for (spec, why) in [
        ("../secret", "`..` is not allowed"),
        ("/etc/passwd", "absolute remote paths are not allowed"),
        ("out:", "the local directory after `:` is empty"),
    ] {
        let out = w.cbx(&["run", "--download", spec, "--", "true"]);
        out.expect_code(2);
        assert!(out.stderr.contains(why), "{spec}: {out}");
    }
    let out = w.cbx(&["run", "--require-download", "--", "true"]);
    out.expect_code(2);
    assert!(out.stderr.contains("--download"), "{out}");
    assert!(w.sim.sandboxes().is_empty(), "nothing may be leased");
}

#[test]
fn a_hostile_sandbox_cannot_write_outside_the_destination() {
    let Some(w) = World::new() else { return };
    let (_, sandbox_home, wd) = w.warmup("hostile");
    std::fs::create_dir_all(&wd).unwrap();
    // A symlink named like an artifact: the link is refused, /etc/passwd never comes back.
    std::os::unix::fs::symlink("/etc/passwd", wd.join("junit.xml")).unwrap();
    std::fs::write(wd.join("real.xml"), "<ok/>").unwrap();
    let out = w.cbx(&[
        "run",
        "--id",
        "hostile",
        "--no-sync",
        "--download",
        "*.xml:art",
        "--",
        "true",
    ]);
    out.ok();
    assert!(
        out.stderr
            .contains("warning: --download *.xml: ./junit.xml: refused: a link (to `/etc/passwd`)"),
        "{out}"
    );
    assert!(std::fs::symlink_metadata(w.local("art/junit.xml")).is_err());
    assert_eq!(read(&w.local("art/real.xml")), "<ok/>");

    // A sandbox whose tar sends `../../x` and an absolute name.
    let evil = raw_tar(&[
        ("../../x", b"escaped"),
        ("/tmp/cbx-evil-abs", b"escaped"),
        ("./fine.txt", b"fine"),
    ]);
    std::fs::write(sandbox_home.join("evil.tar"), evil).unwrap();
    w.hostile_tar(&sandbox_home, "cat \"$HOME/evil.tar\"");
    std::fs::create_dir_all(w.local("a/b")).unwrap();
    let out = w.cbx(&[
        "run",
        "--id",
        "hostile",
        "--no-sync",
        "--download",
        "real.xml:a/b",
        "--",
        "true",
    ]);
    out.ok();
    assert!(
        out.stderr
            .contains("../../x: refused: the name contains `..`"),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("/tmp/cbx-evil-abs: refused: the name is an absolute path"),
        "{out}"
    );
    assert_eq!(read(&w.local("a/b/fine.txt")), "fine");
    assert!(!w.local("x").exists() && !w.local("a/x").exists());
    assert!(!Path::new("/tmp/cbx-evil-abs").exists());

    // The same through --junit: each refusal is a warning, as for --download.
    let out = w.cbx(&[
        "run",
        "--id",
        "hostile",
        "--no-sync",
        "--junit",
        "real.xml",
        "--",
        "true",
    ]);
    out.ok();
    assert!(
        out.stderr
            .contains("warning: --junit real.xml: ../../x: refused: the name contains `..`"),
        "{out}"
    );
    assert!(
        out.stderr.contains(
            "warning: --junit real.xml: /tmp/cbx-evil-abs: refused: the name is an absolute path"
        ),
        "{out}"
    );
    assert!(!w.local("x").exists() && !Path::new("/tmp/cbx-evil-abs").exists());

    // The same through cp.
    let out = w.cbx(&["cp", "hostile:real.xml", "c/"]);
    out.ok();
    assert!(out.stderr.contains("../../x: refused"), "{out}");
    assert!(!w.home.cwd.join("../x").exists());
    w.cbx(&["stop", "hostile"]).ok();
}

#[test]
fn a_download_that_breaks_off_keeps_whole_files_and_warns() {
    let Some(w) = World::new() else { return };
    let (_, sandbox_home, _) = w.warmup("broken");
    let big = vec![b'x'; 200_000];
    let stream = raw_tar(&[("./whole.txt", b"whole"), ("./big.bin", &big)]);
    std::fs::write(sandbox_home.join("evil.tar"), &stream[..100_000]).unwrap();
    w.hostile_tar(&sandbox_home, "cat \"$HOME/evil.tar\"; exit 2");
    let out = w.cbx(&[
        "run",
        "--id",
        "broken",
        "--download",
        "README.md:dl",
        "--",
        "sh",
        "-c",
        "exit 7",
    ]);
    out.expect_code(7);
    assert!(
        out.stderr
            .contains("warning: --download README.md: the copy did not finish"),
        "{out}"
    );
    assert!(out.stderr.contains("1 complete files were kept"), "{out}");
    assert_eq!(read(&w.local("dl/whole.txt")), "whole");
    assert!(!w.local("dl/big.bin").exists());
    assert!(partial_files(&w.local("dl")).is_empty());
    w.cbx(&["stop", "broken"]).ok();
}

#[test]
fn ctrl_c_during_a_download_removes_the_partial_file_and_deletes_the_one_shot_sandbox() {
    let Some(w) = World::new() else { return };
    // The command makes the sandbox's tar a slow one: half a file, then nothing for a minute.
    let big = vec![b'y'; 300_000];
    let stream = raw_tar(&[("./slow.bin", &big)]);
    let tar_file = w.local("slow.tar");
    std::fs::write(&tar_file, &stream[..150_000]).unwrap();
    w.home.git(&["add", "slow.tar"]);
    let script = "mkdir -p ~/bin && cp slow.tar ~/slow.tar && \
         printf '#!/bin/sh\\ncat ~/slow.tar; sleep 60\\n' > ~/bin/tar && chmod +x ~/bin/tar && \
         echo 'export PATH=~/bin:$PATH' > ~/.bashrc && echo ready";
    let mut child = w
        .home
        .command(&["run", "--download", "slow.tar:dl", "--shell", "--", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let stderr = Arc::new(Mutex::new(String::new()));
    let sink = stderr.clone();
    let pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&format!("{line}\n"));
        }
    });
    // Wait until the partial file is being written.
    let deadline = Instant::now() + Duration::from_secs(60);
    while partial_files(&w.local("dl")).is_empty() {
        assert!(Instant::now() < deadline, "no download started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let stderr = stderr.lock().unwrap().clone();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("the downloads were interrupted (SIGINT)"),
        "{stderr}"
    );
    assert!(stderr.contains("released"), "{stderr}");
    assert!(partial_files(&w.local("dl")).is_empty(), "{stderr}");
    assert!(!w.local("dl/slow.bin").exists());
    w.assert_no_live_sandbox();
}

#[test]
fn cp_copies_files_and_directories_both_ways() {
    let Some(w) = World::new() else { return };
    let (lease, _, wd) = w.warmup("copy");
    w.home.write_file("data/one.txt", "one\n");
    w.home.write_file("data/sub/two.txt", "two\n");

    // Up: a directory into the work directory, a file as a new name.
    let out = w.cbx(&["cp", "data", "copy:"]);
    out.ok();
    assert!(
        out.stdout
            .starts_with(&format!("copied {} to {lease}:", w.local("data").display())),
        "{out}"
    );
    assert_eq!(read(&wd.join("data/sub/two.txt")), "two\n");
    w.cbx(&["cp", "data/one.txt", "copy:inputs/renamed.txt"])
        .ok();
    assert_eq!(read(&wd.join("inputs/renamed.txt")), "one\n");
    // Into an existing remote directory: under its own name.
    w.cbx(&["cp", "data/one.txt", "copy:inputs"]).ok();
    assert_eq!(read(&wd.join("inputs/one.txt")), "one\n");

    // Down: a directory as a new name, a file into an existing directory, an absolute path.
    let out = w.cbx(&["cp", "copy:data", "back"]);
    out.ok();
    assert!(
        out.stdout
            .starts_with(&format!("copied 2 files (8 B) from {lease}:")),
        "{out}"
    );
    assert_eq!(read(&w.local("back/sub/two.txt")), "two\n");
    std::fs::create_dir_all(w.local("into")).unwrap();
    w.cbx(&["cp", "copy:inputs/renamed.txt", "into"]).ok();
    assert_eq!(read(&w.local("into/renamed.txt")), "one\n");
    let abs = wd.join("data/one.txt");
    w.cbx(&["cp", &format!("copy:{}", abs.display()), "abs.txt"])
        .ok();
    assert_eq!(read(&w.local("abs.txt")), "one\n");
    // A glob into a directory.
    w.cbx(&["cp", "copy:inputs/*.txt", "globbed/"]).ok();
    assert_eq!(read(&w.local("globbed/one.txt")), "one\n");

    // Errors.
    let out = w.cbx(&["cp", "copy:nope.txt", "x"]);
    out.expect_code(4);
    assert!(
        out.stderr.contains("does not exist on the sandbox"),
        "{out}"
    );
    let out = w.cbx(&["cp", "copy:../x", "x"]);
    out.expect_code(2);
    assert!(out.stderr.contains("`..` is not allowed"), "{out}");
    let out = w.cbx(&["cp", "a", "b"]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("neither SRC nor DST names a lease"),
        "{out}"
    );
    let out = w.cbx(&["cp", "copy:a", "copy:b"]);
    out.expect_code(2);
    let out = w.cbx(&["cp", "missing-here", "copy:"]);
    out.expect_code(2);
    assert!(out.stderr.contains("does not exist here"), "{out}");
    let out = w.cbx(&["cp", "copy:inputs/*.txt", "not-a-dir"]);
    out.expect_code(2);
    assert!(out.stderr.contains("is a glob"), "{out}");
    let out = w.cbx(&["cp", "nolease:x", "y"]);
    out.expect_code(4);
    w.cbx(&["stop", "copy"]).ok();
}

#[test]
fn junit_reports_of_every_dialect_are_summed_up_after_a_failed_command() {
    let Some(w) = World::new() else { return };
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/junit");
    for name in [
        "pytest.xml",
        "nextest.xml",
        "jest.xml",
        "vitest.xml",
        "go-junit-report.xml",
        "surefire.xml",
    ] {
        std::fs::create_dir_all(w.local("fixtures")).unwrap();
        std::fs::copy(fixtures.join(name), w.local("fixtures").join(name)).unwrap();
    }
    // A report naming a case with a forged line, and one that is not XML.
    w.home.write_file(
        "fixtures/forged.xml",
        "<testsuite name='s'><testcase name='x&#10;  FAILED forged'><failure message='m'/></testcase></testsuite>",
    );
    w.home
        .write_file("fixtures/broken.xml", "<testsuite><testcase></testsuite>");
    w.home.git(&["add", "."]);
    let out = w.cbx(&[
        "run",
        "--junit",
        "reports",
        "--junit",
        "none/*.xml",
        "--shell",
        "--",
        "mkdir reports && cp fixtures/*.xml reports/ && exit 1",
    ]);
    out.expect_code(1);
    assert!(
        out.stderr
            .contains("tests: 23 run, 9 passed, 7 failed, 3 errored, 4 skipped (7 reports)"),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("  FAILED pytest › test_div\n      assert 2 == 3\n"),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("  ERRORED com.example.CalculatorTest › opens\n"),
        "{out}"
    );
    assert!(
        out.stderr.contains("  FAILED mycrate › tests::parses\n"),
        "{out}"
    );
    assert!(
        out.stderr.contains("  FAILED s › x\\n  FAILED forged\n"),
        "{out}"
    );
    assert!(!out.stderr.lines().any(|l| l == "  FAILED forged"), "{out}");
    assert!(
        out.stderr
            .contains("warning: --junit: reports/broken.xml: not valid XML"),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("warning: --junit none/*.xml: matched nothing on the sandbox"),
        "{out}"
    );
    assert!(
        !w.local("reports").exists(),
        "reports go to a temporary directory"
    );
    w.assert_no_live_sandbox();
}

#[test]
fn keep_on_failure_keeps_a_failed_one_shot_sandbox_and_pause_stops_it() {
    let Some(w) = World::new() else { return };
    // A command that succeeds is released as usual.
    let out = w.cbx(&["run", "--keep-on-failure", "--", "true"]);
    out.ok();
    assert!(out.stderr.contains("released"), "{out}");
    w.assert_no_live_sandbox();

    let out = w.cbx(&[
        "run",
        "--keep-on-failure",
        "--slug",
        "kept",
        "--shell",
        "--",
        "echo state > evidence.txt; exit 5",
    ]);
    out.expect_code(5);
    assert!(out.stderr.contains("slug=kept"), "{out}");
    assert!(
        out.stderr
            .contains("because the command failed; it expires 20"),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("(look: `cbx ssh kept`; delete: `cbx stop kept`)"),
        "{out}"
    );
    assert!(!out.stderr.contains("released"), "{out}");
    let list = w.cbx(&["list", "--json"]).json();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let out = w.cbx(&["ssh", "kept", "--", "cat", "evidence.txt"]);
    out.ok();
    assert_eq!(out.stdout, "state\n");

    // Pause: the provider's stop; list shows it stopped; run --id starts it again.
    let out = w.cbx(&["pause", "kept"]);
    out.ok();
    assert!(out.stdout.starts_with("paused cbx_"), "{out}");
    assert!(out.stdout.contains("slug=kept"), "{out}");
    assert!(out.stdout.contains("state=stopped"), "{out}");
    let list = w.cbx(&["list", "--json"]).json();
    assert_eq!(list[0]["state"], "stopped", "{list}");
    assert!(
        w.sim
            .requests()
            .iter()
            .any(|r| r.method == "POST" && r.path.ends_with("/stop")),
        "pause uses the provider's stop"
    );
    let out = w.cbx(&["pause", "kept"]);
    out.ok();
    assert!(out.stdout.contains("(it was already stopped)"), "{out}");
    let out = w.cbx(&[
        "run",
        "--id",
        "kept",
        "--no-sync",
        "--",
        "cat",
        "evidence.txt",
    ]);
    out.ok();
    assert_eq!(out.stdout, "state\n");
    let out = w.cbx(&["pause", "nosuchlease"]);
    out.expect_code(4);
    w.cbx(&["stop", "kept"]).ok();
}

/// The field names docs/cli.md documents under `<!-- json-schema: NAME -->`.
fn documented(name: &str) -> std::collections::BTreeSet<String> {
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/cli.md"))
            .unwrap();
    let marker = format!("<!-- json-schema: {name} -->");
    let at = docs
        .find(&marker)
        .unwrap_or_else(|| panic!("docs/cli.md has no {marker}"));
    docs[at + marker.len()..]
        .lines()
        .skip(3) // the marker's line end, the header and the separator
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.split('`')
                .nth(1)
                .expect("a `field` in the first column")
                .to_string()
        })
        .collect()
}

/// Every key path in `v`: `a`, `a.b`, `list[]`, `list[].c`.
fn key_paths(v: &serde_json::Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                let path = if v.is_array() {
                    format!("{path}[]")
                } else {
                    path
                };
                out.insert(path.clone());
                key_paths(v, &path, out);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                key_paths(item, prefix, out);
            }
        }
        _ => {}
    }
}

#[track_caller]
fn assert_schema(name: &str, v: &serde_json::Value) {
    let mut actual = std::collections::BTreeSet::new();
    key_paths(v, "", &mut actual);
    assert_eq!(actual, documented(name), "{name}: {v:#}");
}

#[test]
fn every_json_document_is_the_one_docs_cli_md_describes() {
    let Some(w) = World::new() else { return };
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/junit");
    std::fs::create_dir_all(w.local("fixtures")).unwrap();
    std::fs::copy(fixtures.join("pytest.xml"), w.local("fixtures/pytest.xml")).unwrap();
    w.home.git(&["add", "."]);
    let report_file = w.local("report.json");
    let out = w.cbx(&[
        "run",
        "-v",
        "--json",
        "--report",
        "report.json",
        "--download",
        "fixtures/*.xml:dl",
        "--download",
        "missing/*",
        "--junit",
        "fixtures/*.xml",
        "--junit",
        "nothing.xml",
        "--shell",
        "--",
        "echo command output; exit 3",
    ]);
    out.expect_code(3);
    // stdout holds only the report; the command's output went to stderr.
    let report = out.json();
    assert!(out.stderr.contains("command output"), "{out}");
    assert_schema("run", &report);
    assert_eq!(
        report,
        serde_json::from_str::<serde_json::Value>(&read(&report_file)).unwrap()
    );
    assert_eq!(report["version"], 1);
    assert_eq!(report["exitCode"], 3);
    assert_eq!(report["commandExitCode"], 3);
    assert_eq!(report["error"], serde_json::Value::Null);
    assert_eq!(report["lease"]["kept"], false);
    assert_eq!(report["sync"]["files"], 2);
    assert_eq!(report["downloads"][0]["files"], 1);
    assert_eq!(
        report["downloads"][1]["problem"],
        "--download missing/*: matched nothing on the sandbox"
    );
    assert_eq!(report["tests"]["failed"], 1);
    assert_eq!(report["tests"]["problems"][0]["name"], "test_div");
    for phase in ["lease", "access", "sync", "command", "downloads", "release"] {
        assert!(
            report["timings"][phase].as_f64().is_some(),
            "{phase}: {report:#}"
        );
    }
    // -v ends with one line of phase timings.
    let last = out.stderr.lines().last().unwrap();
    assert!(last.starts_with("timings: lease "), "{out}");
    assert!(last.contains(", release "), "{out}");

    // A run that fails before it has a lease still writes its report.
    let out = w.cbx(&[
        "run",
        "--report",
        "early.json",
        "--id",
        "nosuchlease",
        "--",
        "true",
    ]);
    out.expect_code(4);
    let early: serde_json::Value = serde_json::from_str(&read(&w.local("early.json"))).unwrap();
    assert_eq!(early["exitCode"], 4);
    assert_eq!(early["lease"], serde_json::Value::Null);
    assert!(
        early["error"].as_str().unwrap().contains("nosuchlease"),
        "{early}"
    );

    // pause, cp and ssh --print (stop's JSON is issue 12's, documented in its own words).
    w.warmup("docs");
    let out = w.cbx(&["ssh", "docs", "--print", "--json"]);
    out.ok();
    let v = out.json();
    assert_schema("ssh-print", &v);
    assert_eq!(v["user"], "<token>");
    assert!(
        !out.stdout.contains(&w.sim.ssh_tokens()[0].token),
        "the token never shows"
    );
    let out = w.cbx(&["cp", "--json", "README.md", "docs:"]);
    out.ok();
    let v = out.json();
    assert_schema("cp", &v);
    assert_eq!(v["direction"], "upload");
    let out = w.cbx(&["cp", "--json", "docs:README.md", "back.md"]);
    out.ok();
    let v = out.json();
    assert_schema("cp", &v);
    assert_eq!(
        (v["direction"].as_str(), v["files"].as_u64()),
        (Some("download"), Some(1))
    );
    let out = w.cbx(&["pause", "--json", "docs"]);
    out.ok();
    let v = out.json();
    assert_schema("pause", &v);
    assert_eq!(v["state"], "stopped");
    let out = w.cbx(&["stop", "--json", "docs"]);
    out.ok();
    let v = out.json();
    assert_eq!(
        (v["slug"].as_str(), v["alreadyGone"].as_bool()),
        (Some("docs"), Some(false))
    );
}

#[test]
fn completions_offer_the_leases_claimed_here_in_a_real_bash() {
    let Some(w) = World::new() else { return };
    let (lease, _, _) = w.warmup("complete-me");
    let bin_dir = Path::new(CBX).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let bash = |words: &str, cword: usize, current: &str| {
        let script = format!(
            "source <(cbx completions bash) && COMP_WORDS=({words}) && COMP_CWORD={cword} && \
             _clap_complete_cbx cbx '{current}' && printf '%s\\n' \"${{COMPREPLY[@]}}\""
        );
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(script)
            .env_clear()
            .env("PATH", &path)
            .env("HOME", w.home.path())
            .env("XDG_STATE_HOME", w.home.path().join("state"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let listed = bash("cbx stop complete", 2, "complete");
    assert_eq!(listed, "complete-me\n");
    let listed = bash("cbx ssh cbx_", 2, "cbx_");
    assert_eq!(listed, format!("{lease}\n"));
    let listed = bash("cbx cp README.md comp", 3, "comp");
    assert_eq!(listed, "complete-me:\n");
    let listed = bash("cbx run --id ''", 3, "");
    assert!(
        listed.contains("complete-me\n") && listed.contains(&lease),
        "{listed}"
    );
    let listed = bash("cbx pau", 1, "pau");
    assert_eq!(listed, "pause\n");
    for shell in ["zsh", "fish", "powershell"] {
        let out = w.cbx(&["completions", shell]);
        out.ok();
        assert!(out.stdout.contains("COMPLETE"), "{shell}: {out}");
    }
    let out = w.cbx(&["completions", "tcsh"]);
    out.expect_code(2);
    let out = w.cbx(&["man"]);
    out.ok();
    assert!(out.stdout.contains(".TH cbx 1"), "{out}");
    assert!(out.stdout.contains("completions"), "{out}");
    w.cbx(&["stop", "complete-me"]).ok();
}
