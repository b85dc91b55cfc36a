//! End-to-end tests of the data plane: the real `cbx` binary against the Daytona simulator
//! whose sandboxes are served by a real sshd on loopback (tokens as user names), with real
//! `ssh` and `rsync`.
//!
//! These need root (the simulated gateway creates throwaway system users); elsewhere each
//! test prints why it is skipped. CI runs them as root.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cbx_testkit::daytona_sim::{DaytonaSim, SimConfig};
use cbx_testkit::home::{CbxHome, Output};
use cbx_testkit::sshd::SshdGateway;

const CBX: &str = env!("CARGO_BIN_EXE_cbx");

/// One sshd gateway shared by every test in this binary (data_plane, warm_path, remote_loop,
/// checkpoints).
pub(crate) fn gateway() -> Option<Arc<SshdGateway>> {
    static GATEWAY: OnceLock<Option<Arc<SshdGateway>>> = OnceLock::new();
    GATEWAY
        .get_or_init(|| {
            if let Some(why) = SshdGateway::unavailable() {
                eprintln!("skipping the tests that need sshd: {why}");
                return None;
            }
            Some(Arc::new(SshdGateway::start().expect("start sshd gateway")))
        })
        .clone()
}

/// The simulator started with `config` on its own runtime, and a cbx home pointed at its API
/// and SSH gateway.
pub(crate) fn start_sim(config: SimConfig) -> (DaytonaSim, CbxHome, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sim = rt.block_on(DaytonaSim::start(config)).unwrap();
    let mut home = CbxHome::new(CBX);
    home.env("DAYTONA_API_URL", &sim.api_url())
        .env("DAYTONA_API_KEY", &sim.api_key())
        .env("DAYTONA_SSH_GATEWAY", &sim.ssh_gateway());
    (sim, home, rt)
}

/// A simulator with SSH, a cbx home pointed at it, and a git repository as working directory.
pub(crate) struct World {
    pub(crate) sim: DaytonaSim,
    pub(crate) gateway: Arc<SshdGateway>,
    pub(crate) home: CbxHome,
    /// Runs the simulator.
    _rt: tokio::runtime::Runtime,
}

/// One sshd gateway that drops connections as Daytona's does (instead of refusing them).
fn dropping_gateway() -> Option<Arc<SshdGateway>> {
    static GATEWAY: OnceLock<Option<Arc<SshdGateway>>> = OnceLock::new();
    GATEWAY
        .get_or_init(|| {
            if let Some(why) = SshdGateway::unavailable() {
                eprintln!("skipping data-plane tests: {why}");
                return None;
            }
            Some(Arc::new(
                SshdGateway::start_dropping().expect("start dropping sshd gateway"),
            ))
        })
        .clone()
}

impl World {
    pub(crate) fn new() -> Option<World> {
        World::with(gateway()?)
    }

    /// A world whose gateway drops connections instead of refusing them.
    fn dropping() -> Option<World> {
        World::with(dropping_gateway()?)
    }

    fn with(gateway: Arc<SshdGateway>) -> Option<World> {
        let (sim, home, rt) = start_sim(SimConfig {
            ssh: gateway.clone(),
            ..SimConfig::default().with_delays(Duration::from_millis(100))
        });
        let world = World {
            sim,
            gateway,
            home,
            _rt: rt,
        };
        world.git(&["init", "-q"]);
        world.write("README.md", "hello from the repo\n");
        world.write("src/lib.rs", "pub fn answer() -> u32 { 42 }\n");
        world.write(".gitignore", "target/\n");
        world.write("target/junk", "ignored\n");
        world.git(&["add", "."]);
        Some(world)
    }

    pub(crate) fn repo(&self) -> &Path {
        &self.home.cwd
    }

    pub(crate) fn write(&self, rel: &str, text: &str) {
        self.home.write_file(rel, text);
    }

    fn git(&self, args: &[&str]) {
        self.home.git(args);
    }

    pub(crate) fn cbx(&self, args: &[&str]) -> Output {
        self.home.run(args)
    }

    pub(crate) fn warmup(&self, slug: &str) -> serde_json::Value {
        let out = self.cbx(&["warmup", "--slug", slug, "--json"]);
        out.ok();
        out.json()
    }

    /// The work directory of `lease` for this repository, on the sandbox's file system.
    pub(crate) fn remote_workdir(&self, sandbox_id: &str, lease: &str) -> PathBuf {
        let repo_name = self
            .repo()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        self.gateway
            .sandbox_home(sandbox_id)
            .expect("sandbox has a home")
            .join("cbx")
            .join(lease)
            .join(repo_name)
    }

    pub(crate) fn ssh_access_requests(&self) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/ssh-access"))
            .count()
    }

    fn tokens(&self) -> Vec<String> {
        self.sim.ssh_tokens().into_iter().map(|t| t.token).collect()
    }
}

#[test]
fn run_syncs_the_tree_streams_output_and_passes_the_exit_code_through() {
    let Some(w) = World::new() else { return };
    let lease = w.warmup("alpha");
    let (lease_id, sandbox) = (
        lease["leaseId"].as_str().unwrap(),
        lease["sandboxId"].as_str().unwrap(),
    );

    let out = w.cbx(&[
        "run",
        "--id",
        "alpha",
        "--",
        "sh",
        "-c",
        "cat README.md; echo \"$CBX_LEASE_ID $CBX_SLUG\"; exit 3",
    ]);
    out.expect_code(3);
    assert!(out.stdout.contains("hello from the repo"), "{out}");
    assert!(out.stdout.contains(&format!("{lease_id} alpha")), "{out}");
    assert!(out.stderr.contains("synced 3 files"), "{out}");

    let wd = w.remote_workdir(sandbox, lease_id);
    assert_eq!(
        std::fs::read_to_string(wd.join("src/lib.rs")).unwrap(),
        "pub fn answer() -> u32 { 42 }\n"
    );
    assert!(
        !wd.join("target/junk").exists(),
        "ignored files must not be synced"
    );

    // Nothing changed: the second run skips the sync without touching the network for it.
    let out = w.cbx(&["run", "--id", "alpha", "--", "true"]);
    out.ok();
    assert!(
        out.stderr.contains("no changes since the last sync"),
        "{out}"
    );

    // A remote-only file (installed dependencies, caches) survives; a file deleted locally is
    // pruned remotely; a new untracked file arrives.
    std::fs::create_dir_all(wd.join("node_modules")).unwrap();
    std::fs::write(wd.join("node_modules/dep.js"), "remote only").unwrap();
    std::fs::remove_file(w.repo().join("README.md")).unwrap();
    w.write("notes.txt", "untracked but not ignored\n");
    let out = w.cbx(&["run", "--id", "alpha", "--", "ls", "-a"]);
    out.ok();
    assert!(out.stderr.contains("1 pruned"), "{out}");
    assert!(!wd.join("README.md").exists());
    assert_eq!(
        std::fs::read_to_string(wd.join("notes.txt")).unwrap(),
        "untracked but not ignored\n"
    );
    assert_eq!(
        std::fs::read_to_string(wd.join("node_modules/dep.js")).unwrap(),
        "remote only"
    );

    // Exact argv, no shell interpretation; --shell runs one script string.
    let out = w.cbx(&[
        "run", "--id", "alpha", "--", "printf", "%s|", "a b", "it's", "$HOME", "*",
    ]);
    out.ok();
    assert_eq!(out.stdout, "a b|it's|$HOME|*|");
    let out = w.cbx(&[
        "run",
        "--id",
        "alpha",
        "--shell",
        "--",
        "echo $CBX_SLUG && exit 5",
    ]);
    out.expect_code(5);
    assert_eq!(out.stdout, "alpha\n");

    // cbx ssh with one command, in the lease's work directory.
    let out = w.cbx(&["ssh", "alpha", "--", "cat", "notes.txt"]);
    out.ok();
    assert_eq!(out.stdout, "untracked but not ignored\n");
    let out = w.cbx(&["ssh", "alpha", "--", "sh", "-c", "exit 4"]);
    out.expect_code(4);

    // One SSH access for all of the above: it is cached and reused.
    assert_eq!(w.ssh_access_requests(), 1);

    w.cbx(&["stop", "alpha"]).ok();
    assert!(
        w.sim.sandbox(sandbox).is_none(),
        "stop waits until the sandbox is gone"
    );
    eventually("the sandbox's file system is removed", || {
        w.gateway.sandbox_home(sandbox).is_none()
    });
    assert!(
        !w.home.state_dir().join("secrets").join(lease_id).exists(),
        "SSH secrets are removed on stop"
    );
}

#[test]
fn an_edit_of_the_same_size_within_the_same_second_is_synced() {
    for transport in TRANSPORTS {
        let Some(mut w) = World::new() else { return };
        w.home.env("CBX_SYNC_TRANSPORT", transport);
        same_second_edit(&w, transport);
    }
}

/// The sync transports every data-plane sync test runs with.
const TRANSPORTS: [&str; 2] = ["rsync", "tar"];

fn same_second_edit(w: &World, transport: &str) {
    w.warmup("beta");
    // Two versions of a file, the same size, stamped within one second: rsync's default quick
    // check (size and whole seconds) would take the second for the first.
    let second = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let stamp = |at: Duration| {
        std::fs::File::options()
            .write(true)
            .open(w.repo().join("src/lib.rs"))
            .unwrap()
            .set_modified(second + at)
            .unwrap();
    };
    w.write("src/lib.rs", "pub fn answer() -> u32 { 42 }\n");
    stamp(Duration::from_millis(100));
    let out = w.cbx(&["run", "--id", "beta", "--", "cat", "src/lib.rs"]);
    out.ok();
    assert_eq!(out.stdout, "pub fn answer() -> u32 { 42 }\n");
    assert!(out.stderr.contains(&format!(" with {transport};")), "{out}");
    w.write("src/lib.rs", "pub fn answer() -> u32 { 43 }\n");
    stamp(Duration::from_millis(200));
    let out = w.cbx(&["run", "--id", "beta", "--", "cat", "src/lib.rs"]);
    out.ok();
    assert_eq!(out.stdout, "pub fn answer() -> u32 { 43 }\n", "{out}");
    w.cbx(&["stop", "beta"]).ok();
}

/// Odd names a sync must carry intact: spaces, quotes, a leading dash, a newline, non-ASCII.
const ODD_NAMES: [&str; 4] = [
    "a b/c'd\"e.txt",
    "-leading-dash.txt",
    "new\nline.txt",
    "ünïcödé/ñ.txt",
];

#[test]
fn both_transports_sync_alike() {
    for transport in TRANSPORTS {
        let Some(mut w) = World::new() else { return };
        w.home.env("CBX_SYNC_TRANSPORT", transport);
        sync_alike(&w, transport);
    }
}

/// First sync (odd names, a link, an executable), fingerprint skip, an incremental sync that
/// sends only the changed file, and pruning that keeps remote-only files: on `transport`.
fn sync_alike(w: &World, transport: &str) {
    for (i, name) in ODD_NAMES.iter().enumerate() {
        w.write(name, &format!("odd {i}\n"));
    }
    w.write("run.sh", "#!/bin/sh\necho ran\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        w.repo().join("run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::os::unix::fs::symlink("README.md", w.repo().join("readme-link")).unwrap();
    w.git(&["add", "."]);
    let lease = w.warmup("delta");
    let (lease, sandbox) = (
        lease["leaseId"].as_str().unwrap(),
        lease["sandboxId"].as_str().unwrap(),
    );
    let out = w.cbx(&["run", "--id", "delta", "--", "./run.sh"]);
    out.ok();
    assert_eq!(out.stdout, "ran\n", "{out}");
    // README.md, src/lib.rs, .gitignore, run.sh, the link and the odd names; the link is
    // not counted as sent (rsync counts regular files).
    assert!(out.stderr.contains("synced 9 files"), "{out}");
    assert!(
        out.stderr.contains(&format!(" with {transport}; 8 sent")),
        "{out}"
    );
    let wd = w.remote_workdir(sandbox, lease);
    for (i, name) in ODD_NAMES.iter().enumerate() {
        assert_eq!(
            std::fs::read_to_string(wd.join(name)).unwrap(),
            format!("odd {i}\n"),
            "{name:?} with {transport}"
        );
    }
    assert_eq!(
        std::fs::read_link(wd.join("readme-link")).unwrap(),
        Path::new("README.md"),
        "a link arrives as a link"
    );
    assert!(!wd.join("target/junk").exists(), "ignored files stay home");

    let out = w.cbx(&["run", "--id", "delta", "--", "true"]);
    out.ok();
    assert!(
        out.stderr.contains("no changes since the last sync"),
        "{out}"
    );

    std::fs::create_dir_all(wd.join("node_modules")).unwrap();
    std::fs::write(wd.join("node_modules/dep.js"), "remote only").unwrap();
    std::fs::remove_file(w.repo().join(ODD_NAMES[2])).unwrap();
    w.write("src/lib.rs", "pub fn answer() -> u32 { 4242 }\n");
    let out = w.cbx(&["run", "--id", "delta", "--", "cat", "src/lib.rs"]);
    out.ok();
    assert_eq!(out.stdout, "pub fn answer() -> u32 { 4242 }\n");
    assert!(
        out.stderr
            .contains(&format!(" with {transport}; 1 sent; 1 pruned")),
        "only the changed file is sent: {out}"
    );
    assert!(!wd.join(ODD_NAMES[2]).exists(), "deleted locally: pruned");
    assert_eq!(
        std::fs::read_to_string(wd.join("node_modules/dep.js")).unwrap(),
        "remote only"
    );
    assert!(wd.join(ODD_NAMES[0]).exists());
    w.cbx(&["stop", "delta"]).ok();
}

#[test]
fn without_rsync_on_the_sandbox_auto_syncs_with_tar() {
    let Some(mut w) = World::new() else { return };
    w.home.env("CBX_DAYTONA_SNAPSHOT", "cbx-test-no-rsync");
    let lease = w.warmup("slim");
    let (lease, sandbox) = (
        lease["leaseId"].as_str().unwrap(),
        lease["sandboxId"].as_str().unwrap(),
    );
    let out = w.cbx(&[
        "run",
        "--id",
        "slim",
        "--shell",
        "--",
        "command -v rsync || echo no rsync; command -v tar >/dev/null && echo has tar",
    ]);
    out.ok();
    assert_eq!(out.stdout, "no rsync\nhas tar\n", "{out}");
    assert!(out.stderr.contains(" with tar; 3 sent"), "{out}");
    let wd = w.remote_workdir(sandbox, lease);
    assert_eq!(
        std::fs::read_to_string(wd.join("README.md")).unwrap(),
        "hello from the repo\n"
    );
    // Asked for rsync explicitly: exit 6, saying what is missing and how to fix it.
    w.write("src/lib.rs", "pub fn answer() -> u32 { 7 }\n");
    let out = w.cbx(&[
        "run",
        "--id",
        "slim",
        "--sync-transport",
        "rsync",
        "--",
        "true",
    ]);
    out.expect_code(6);
    assert!(
        out.stderr
            .contains("the sandbox has no rsync, and sync.transport is rsync"),
        "{out}"
    );
    assert!(out.stderr.contains("snapshot"), "{out}");
    assert!(out.stderr.contains("sync.transport = \"auto\""), "{out}");
    // Auto again: the change arrives with tar, nothing else is sent.
    let out = w.cbx(&["run", "--id", "slim", "--", "cat", "src/lib.rs"]);
    out.ok();
    assert_eq!(out.stdout, "pub fn answer() -> u32 { 7 }\n");
    assert!(out.stderr.contains(" with tar; 1 sent"), "{out}");
    // The sandbox's tar cannot write: exit 6 with what it said; the next sync sends it again.
    use std::os::unix::fs::PermissionsExt;
    let mode = |m: u32| {
        std::fs::set_permissions(wd.join("src"), std::fs::Permissions::from_mode(m)).unwrap()
    };
    mode(0o555);
    w.write("src/lib.rs", "pub fn answer() -> u32 { 8 }\n");
    let out = w.cbx(&["run", "--id", "slim", "--", "true"]);
    mode(0o755);
    out.expect_code(6);
    assert!(
        out.stderr.contains("tar failed on the sandbox (exit "),
        "{out}"
    );
    assert!(out.stderr.contains("tar: src/lib.rs: Cannot open"), "{out}");
    let out = w.cbx(&["run", "--id", "slim", "--", "cat", "src/lib.rs"]);
    out.ok();
    assert_eq!(out.stdout, "pub fn answer() -> u32 { 8 }\n");
    assert!(out.stderr.contains(" with tar; 1 sent"), "{out}");
    w.cbx(&["stop", "slim"]).ok();
}

/// The ssh processes a command started to reach a sandbox (rsync's own included; not
/// doctor's `ssh -V`), from the shims' log.
pub(crate) fn ssh_lines(shims: &ArgvShims) -> Vec<String> {
    shims
        .logged()
        .lines()
        .filter(|l| l.starts_with("ssh ") && *l != "ssh -V")
        .map(String::from)
        .collect()
}

/// The remote command lines a command ran as sessions over the live master connection
/// (`ssh::mux`, no ssh process), from cbx's debug log.
fn master_sessions(out: &Output) -> Vec<String> {
    out.stderr
        .lines()
        .filter_map(|l| l.split_once("session over the master connection: "))
        .map(|(_, line)| line.to_string())
        .collect()
}

/// Runs `args` through the shims, starting with an empty log; returns the output, the ssh
/// processes it started and the sessions it ran over the master connection.
fn counted(w: &World, shims: &ArgvShims, args: &[&str]) -> (Output, Vec<String>, Vec<String>) {
    let _ = std::fs::remove_file(w.home.path().join("argv.log"));
    let out = w.home.run_with_env(
        args,
        &[("PATH", &shims.path_var()), ("CBX_LOG", "cbx=debug")],
    );
    let sessions = master_sessions(&out);
    (out, ssh_lines(shims), sessions)
}

#[test]
fn the_login_that_proves_ssh_works_learns_the_tools_and_tar_costs_no_extra_round_trip() {
    let Some(mut w) = World::new() else { return };
    w.home.env("CBX_DAYTONA_SNAPSHOT", "cbx-test-no-rsync");
    let lease = w.warmup("lean");
    let lease = lease["leaseId"].as_str().unwrap().to_string();
    let shims = ArgvShims::install(w.home.path());
    // Cold: the login that proves SSH works reports the tools and leaves the master up (the
    // one ssh process); the tar stream creates the work directory itself; then the command.
    // Both go over the master's socket. Three round trips, as with rsync.
    let (out, ssh, sessions) = counted(
        &w,
        &shims,
        &["run", "--id", "lean", "--", "cat", "README.md"],
    );
    out.ok();
    assert_eq!(out.stdout, "hello from the repo\n");
    assert!(out.stderr.contains(" with tar; 3 sent"), "{out}");
    assert_eq!(ssh.len(), 1, "the login: {ssh:#?}");
    assert!(ssh[0].contains("cbx-tools:"), "the login probes: {ssh:#?}");
    assert_eq!(sessions.len(), 2, "tar, the command: {sessions:#?}");
    assert!(sessions[0].contains("tar -x"), "{sessions:#?}");
    assert!(sessions[1].contains("README.md"), "{sessions:#?}");
    assert!(
        ssh.iter()
            .chain(&sessions)
            .all(|l| !l.contains("xargs -0 rm")),
        "no prepare round trip: {ssh:#?} {sessions:#?}"
    );
    let record = w
        .home
        .state_dir()
        .join("sync")
        .join(format!("{lease}.tools"));
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(recorded["rsync"], false, "{recorded}");
    assert_eq!(recorded["tar"], true, "{recorded}");
    // Warm, a file changed: the tar stream and the command, nothing else.
    w.write("src/lib.rs", "pub fn answer() -> u32 { 1 }\n");
    let (out, ssh, sessions) = counted(
        &w,
        &shims,
        &["run", "--id", "lean", "--", "cat", "src/lib.rs"],
    );
    out.ok();
    assert_eq!(out.stdout, "pub fn answer() -> u32 { 1 }\n");
    assert_eq!(ssh.len(), 0, "no ssh process: {ssh:#?}");
    assert_eq!(sessions.len(), 2, "tar, the command: {sessions:#?}");
    assert!(sessions[0].contains("tar -x"), "{sessions:#?}");
    // A file deleted: the prepare round trip prunes it (and probes again, for free).
    std::fs::remove_file(w.repo().join("src/lib.rs")).unwrap();
    let (out, _, sessions) = counted(&w, &shims, &["run", "--id", "lean", "--", "ls", "src"]);
    out.ok();
    assert_eq!(out.stdout, "", "{out}");
    assert!(out.stderr.contains("1 pruned"), "{out}");
    assert!(
        sessions[0].contains("xargs -0 rm") && sessions[0].contains("cbx-tools:"),
        "{sessions:#?}"
    );
    // A record that says rsync (out of date): rsync is missing, the sync probes again and
    // sends with tar; the record is put right.
    std::fs::write(
        &record,
        r#"{"rsync":true,"tar":true,"rsyncVersion":null,"probedAt":"T"}"#,
    )
    .unwrap();
    w.write("new.txt", "new\n");
    w.home.git(&["add", "."]);
    let out = w.cbx(&["run", "--id", "lean", "--", "cat", "new.txt"]);
    out.ok();
    assert_eq!(out.stdout, "new\n");
    assert!(out.stderr.contains(" with tar; 1 sent"), "{out}");
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(recorded["rsync"], false, "{recorded}");
    // --resync probes again.
    let (out, _, sessions) = counted(
        &w,
        &shims,
        &["run", "--id", "lean", "--resync", "--", "true"],
    );
    out.ok();
    assert!(sessions[0].contains("cbx-tools:"), "{sessions:#?}");
    w.cbx(&["stop", "lean"]).ok();
    assert!(!record.exists(), "stop forgets the record");
}

#[test]
fn with_rsync_the_first_run_makes_no_prepare_round_trip_either() {
    let Some(w) = World::new() else { return };
    w.warmup("full");
    let shims = ArgvShims::install(w.home.path());
    let (out, ssh, sessions) = counted(
        &w,
        &shims,
        &["run", "--id", "full", "--", "cat", "README.md"],
    );
    out.ok();
    assert!(out.stderr.contains(" with rsync; 3 sent"), "{out}");
    // The login, rsync's own ssh (which creates the work directory); the command goes over
    // the master's socket.
    assert_eq!(ssh.len(), 2, "{ssh:#?}");
    assert_eq!(sessions.len(), 1, "the command: {sessions:#?}");
    assert!(ssh[0].contains("cbx-tools:"), "{ssh:#?}");
    assert!(
        ssh[1].contains("mkdir -p -- ") && ssh[1].contains("rsync --server"),
        "{ssh:#?}"
    );
    w.cbx(&["stop", "full"]).ok();
}

/// `doctor --lease` output's check named `name`.
#[track_caller]
fn check_named(out: &Output, name: &str) -> serde_json::Value {
    out.json()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no `{name}` check: {out}"))
        .clone()
}

#[test]
fn doctor_on_a_live_lease_checks_ssh_and_the_tools_in_one_login() {
    // (snapshot, exit code, syncTransport, what the tools check says)
    let cases = [
        ("daytona-small", 0, Some("rsync"), "syncs will use rsync"),
        (
            "cbx-test-no-rsync",
            0,
            Some("tar"),
            "syncs will use tar; the sandbox has no rsync — a snapshot with rsync",
        ),
        (
            "cbx-test-no-rsync-no-tar",
            6,
            None,
            "the sandbox has neither rsync nor tar: cbx needs rsync, or sh and tar",
        ),
    ];
    for (snapshot, code, transport, says) in cases {
        let Some(mut w) = World::new() else { return };
        w.home.env("CBX_DAYTONA_SNAPSHOT", snapshot);
        let lease = w.warmup("doc");
        let sandbox = lease["sandboxId"].as_str().unwrap().to_string();
        let shims = ArgvShims::install(w.home.path());
        let (out, ssh, _) = counted(&w, &shims, &["doctor", "--lease", "doc", "--json"]);
        out.expect_code(code);
        assert_eq!(ssh.len(), 1, "one login: {ssh:#?}");
        assert!(ssh[0].contains("cbx-tools:"), "{ssh:#?}");
        let json = out.json();
        assert_eq!(json["ok"], code == 0, "{out}");
        assert_eq!(json["syncTransport"].as_str(), transport, "{out}");
        let lease_check = check_named(&out, "lease");
        assert_eq!(lease_check["status"], "ok", "{out}");
        assert!(
            lease_check["detail"].as_str().unwrap().contains(&sandbox),
            "{out}"
        );
        let login = check_named(&out, "sandbox-ssh");
        assert_eq!(login["status"], "ok", "{out}");
        assert!(
            login["detail"]
                .as_str()
                .unwrap()
                .starts_with("logged in as <token>@127.0.0.1 port "),
            "{out}"
        );
        let tools = check_named(&out, "sandbox-tools");
        let detail = tools["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{snapshot}: {out}");
        assert_eq!(
            tools["status"],
            if code == 0 { "ok" } else { "fail" },
            "{out}"
        );
        if code != 0 {
            assert!(detail.contains("docs/providers/daytona.md"), "{out}");
        }
        for token in w.tokens() {
            assert!(!out.stdout.contains(&token), "the token leaked: {out}");
        }
        // Text: one row per check, the problem on stderr.
        let out = w.cbx(&["doctor", "--lease", "doc"]);
        out.expect_code(code);
        assert!(out.stdout.contains("sandbox-tools"), "{out}");
        assert!(out.stdout.contains(says), "{out}");
        if code != 0 {
            assert!(out.stderr.contains("doctor found problems"), "{out}");
        }
        w.cbx(&["stop", "doc"]).ok();
    }
}

#[test]
fn doctor_on_a_lease_that_is_stopped_or_unknown_says_so() {
    let Some(w) = World::new() else { return };
    let lease = w.warmup("nap");
    let sandbox = lease["sandboxId"].as_str().unwrap().to_string();
    assert!(w.sim.set_state(&sandbox, "stopped"));
    let shims = ArgvShims::install(w.home.path());
    let (out, ssh, _) = counted(&w, &shims, &["doctor", "--lease", "nap", "--json"]);
    out.ok();
    assert!(ssh.is_empty(), "no login to a stopped sandbox: {ssh:#?}");
    let check = check_named(&out, "lease");
    assert_eq!(check["status"], "warn", "{out}");
    let detail = check["detail"].as_str().unwrap();
    assert!(
        detail.contains("is stopped; doctor starts nothing"),
        "{out}"
    );
    assert!(detail.contains("-- true` starts it"), "{out}");
    assert_eq!(
        w.sim.sandbox(&sandbox).unwrap().state,
        "stopped",
        "doctor started nothing"
    );
    let out = w.cbx(&["doctor", "--lease", "no-such-lease", "--json"]);
    out.expect_code(4);
    assert_eq!(check_named(&out, "lease")["status"], "fail", "{out}");
    w.cbx(&["stop", "nap"]).ok();
}

#[test]
fn doctor_on_a_lease_whose_sandbox_will_not_log_in_is_exit_5() {
    let Some(w) = World::new() else { return };
    let lease = w.warmup("shy");
    let sandbox = lease["sandboxId"].as_str().unwrap().to_string();
    let resume = w.home.path().join("resume");
    let mut child = w
        .home
        .command(&["doctor", "--lease", "shy"])
        .env("CBX_TEST_PAUSE", "doctor:lease-ready")
        .env("CBX_TEST_RESUME", &resume)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("paused at doctor:lease-ready") {
        line.clear();
        assert_ne!(
            stderr.read_line(&mut line).unwrap(),
            0,
            "doctor ended early"
        );
    }
    // Stopped behind doctor's back: the gateway no longer lets its user log in.
    assert!(w.sim.set_state(&sandbox, "stopped"));
    std::fs::write(&resume, "").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "{stdout}\n{rest}");
    let failed = stdout
        .lines()
        .find(|l| l.contains("sandbox-ssh"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(failed.starts_with("fail"), "{stdout}");
    assert!(
        failed.contains("could not log in over SSH to 127.0.0.1:"),
        "{stdout}"
    );
    assert!(failed.contains("`cbx status "), "{stdout}");
    assert!(!stdout.contains("sandbox-tools"), "{stdout}");
    assert!(rest.contains("doctor found problems"), "{rest}");
    w.cbx(&["stop", "shy"]).ok();
}

#[test]
fn doctor_on_a_lease_whose_access_was_revoked_mints_it_again_once() {
    let Some(w) = World::new() else { return };
    let lease = w.warmup("stale");
    let (id, sandbox) = (
        lease["leaseId"].as_str().unwrap().to_string(),
        lease["sandboxId"].as_str().unwrap().to_string(),
    );
    w.cbx(&["doctor", "--lease", "stale"]).ok();
    let minted = w.ssh_access_requests();
    assert_eq!(minted, 1, "doctor minted the lease's first access");
    // Revoked behind cbx's back, no master up: the cached access fails to log in once.
    w.sim.expire_ssh_tokens(&sandbox);
    close_master(&w, &id);
    let out = w.cbx(&["doctor", "--lease", "stale", "--json"]);
    out.ok();
    assert_eq!(check_named(&out, "sandbox-ssh")["status"], "ok", "{out}");
    assert_eq!(w.ssh_access_requests(), minted + 1, "minted again, once");
    w.cbx(&["stop", "stale"]).ok();
}

#[test]
fn a_sandbox_without_rsync_or_tar_is_a_clear_sync_error() {
    let Some(mut w) = World::new() else { return };
    w.home
        .env("CBX_DAYTONA_SNAPSHOT", "cbx-test-no-rsync-no-tar");
    let out = w.cbx(&["run", "--", "true"]);
    out.expect_code(6);
    assert!(
        out.stderr.contains("the sandbox has neither rsync nor tar: cbx needs rsync, or sh and tar, on the sandbox to sync files"),
        "{out}"
    );
    assert!(out.stderr.contains("docs/providers/daytona.md"), "{out}");
    assert!(out.stderr.contains("--no-sync"), "{out}");
    eventually("the one-shot sandbox is deleted", || {
        w.sim.sandboxes().is_empty()
    });
    let out = w.cbx(&["run", "--no-sync", "--", "echo", "fine"]);
    out.ok();
    assert_eq!(out.stdout, "fine\n");
    // An unknown transport is a usage error naming where it was set.
    w.home.write_config("[sync]\ntransport = \"scp\"\n");
    let out = w.cbx(&["run", "--", "true"]);
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("sync.transport: unknown sync transport `scp`; use auto, rsync or tar"),
        "{out}"
    );
}

#[test]
fn the_listing_cache_is_used_and_still_sees_new_files() {
    let Some(w) = World::new() else { return };
    let lease = w.warmup("gamma");
    let (lease, sandbox) = (
        lease["leaseId"].as_str().unwrap(),
        lease["sandboxId"].as_str().unwrap(),
    );
    // Stamps older than the cache's two-second distrust window, as a tree is between edits.
    let past = std::time::SystemTime::now() - Duration::from_secs(60);
    let age = |rel: &str| {
        let path = w.repo().join(rel);
        let file = if path.is_dir() {
            std::fs::File::open(path)
        } else {
            std::fs::File::options().write(true).open(path)
        };
        file.unwrap().set_modified(past).unwrap();
    };
    // Everything the listing depends on: the directories git walks, the ignore rules, the
    // index and the repository's configuration.
    for path in [
        "",
        "src",
        ".gitignore",
        ".git/index",
        ".git/HEAD",
        ".git/config",
        ".git/info/exclude",
    ] {
        age(path);
    }
    w.cbx(&["run", "--id", "gamma", "--", "true"]).ok();
    // The cache directory is shared by the tests of a run: find this repository's listing.
    let root = std::fs::canonicalize(w.repo()).unwrap();
    let listing = std::fs::read_dir(w.home.cache_dir().join("listings"))
        .expect("listings are cached")
        .map(|e| e.unwrap().path())
        .find(|p| {
            let bytes = std::fs::read(p).unwrap_or_default();
            let root = root.to_str().unwrap().as_bytes();
            bytes.windows(root.len()).any(|w| w == root)
        });
    assert!(listing.is_some(), "this repository's listing is cached");
    // A new untracked file: its directory changed, so git is asked and the file arrives.
    w.write("src/new.rs", "// new\n");
    let out = w.cbx(&["run", "--id", "gamma", "--", "cat", "src/new.rs"]);
    out.ok();
    assert_eq!(out.stdout, "// new\n", "{out}");
    assert!(w.remote_workdir(sandbox, lease).join("src/new.rs").exists());
    w.cbx(&["stop", "gamma"]).ok();
}

#[test]
fn exit_255_says_whether_the_connection_was_lost() {
    let Some(w) = World::new() else { return };
    let lease = w.warmup("delta");
    let lease = lease["leaseId"].as_str().unwrap();

    // The command's own 255 passes through, and the connection is still up.
    let out = w.cbx(&["run", "--id", "delta", "--", "sh", "-c", "exit 255"]);
    out.expect_code(255);
    assert!(
        out.stderr
            .contains("the command itself exited 255, or its ssh session failed"),
        "{out}"
    );

    // The connection goes away while the command runs: stop the multiplexing master.
    let mut child = w
        .home
        .command(&[
            "run",
            "--id",
            "delta",
            "--",
            "sh",
            "-c",
            "echo started; sleep 30",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "started");
    let config = w
        .home
        .state_dir()
        .join("secrets")
        .join(lease)
        .join("ssh_config");
    let alias = std::fs::read_to_string(&config)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Host ").map(str::to_string))
        .expect("the ssh config names its host");
    let exit = std::process::Command::new("ssh")
        .arg("-F")
        .arg(&config)
        .args(["-O", "exit", &alias])
        .output()
        .unwrap();
    assert!(exit.status.success(), "{exit:?}");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{stderr}");
    assert!(
        stderr.contains("its connection to the sandbox is gone")
            && stderr.contains("`cbx ssh delta`"),
        "{stderr}"
    );
    w.cbx(&["stop", "delta"]).ok();
}

#[test]
fn output_streams_while_the_command_runs() {
    let Some(w) = World::new() else { return };
    w.warmup("stream");
    let mut child = w
        .home
        .command(&[
            "run",
            "--id",
            "stream",
            "--",
            "sh",
            "-c",
            "echo first; sleep 4; echo second",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let first_at = Instant::now();
    assert_eq!(first, "first");
    assert_eq!(lines.next().unwrap().unwrap(), "second");
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(
        first_at.elapsed() >= Duration::from_secs(2),
        "the first line must arrive long before the command ends"
    );
    w.cbx(&["stop", "stream"]).ok();
}

#[test]
fn one_shot_run_deletes_its_sandbox_also_on_failure() {
    let Some(w) = World::new() else { return };
    let out = w.cbx(&["run", "--", "sh", "-c", "echo one-shot; exit 9"]);
    out.expect_code(9);
    assert!(out.stdout.contains("one-shot"));
    assert!(out.stderr.contains("released"), "{out}");
    assert!(
        w.cbx(&["list", "--json"])
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        w.sim
            .sandboxes()
            .iter()
            .all(|s| s.state == "destroying" || s.name.starts_with("DESTROYED_"))
    );

    // --keep keeps it.
    let out = w.cbx(&["run", "--keep", "--", "true"]);
    out.ok();
    let leases = w.cbx(&["list", "--json"]).json();
    assert_eq!(leases.as_array().unwrap().len(), 1, "{leases}");
}

#[test]
fn ctrl_c_during_a_one_shot_run_deletes_the_sandbox() {
    let Some(w) = World::new() else { return };
    let mut child = w
        .home
        .command(&["run", "--", "sh", "-c", "echo started; sleep 60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "started");
    let live: Vec<_> = w
        .sim
        .sandboxes()
        .into_iter()
        .filter(|s| s.state == "started")
        .collect();
    assert_eq!(live.len(), 1);
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(stderr.contains("released"), "{stderr}");
    let sandbox = w.sim.sandbox(&live[0].id);
    assert!(
        sandbox.is_none_or(|s| s.state == "destroying"),
        "the interrupted run's sandbox must be deleted"
    );
    assert!(
        w.cbx(&["list", "--json"])
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// A background `cbx` whose stdout lines and stderr are collected as they come.
pub(crate) struct Background {
    child: std::process::Child,
    stdout: Arc<std::sync::Mutex<String>>,
    stderr: Arc<std::sync::Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Background {
    pub(crate) fn start(w: &World, args: &[&str], path: Option<&str>) -> Background {
        let mut cmd = w.home.command(args);
        if let Some(p) = path {
            cmd.env("PATH", p);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Arc::new(std::sync::Mutex::new(String::new()));
        let stderr = Arc::new(std::sync::Mutex::new(String::new()));
        let collect = |pipe: Box<dyn std::io::Read + Send>, sink: Arc<std::sync::Mutex<String>>| {
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut s = sink.lock().unwrap();
                    s.push_str(&line);
                    s.push('\n');
                }
            })
        };
        let readers = vec![
            collect(Box::new(child.stdout.take().unwrap()), stdout.clone()),
            collect(Box::new(child.stderr.take().unwrap()), stderr.clone()),
        ];
        Background {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the exit; returns the code (128 + signal when killed) and stderr.
    pub(crate) fn finish(mut self) -> (i32, String) {
        use std::os::unix::process::ExitStatusExt;
        let status = self.child.wait().unwrap();
        for r in self.readers.drain(..) {
            r.join().unwrap();
        }
        let code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        (code, self.stderr.lock().unwrap().clone())
    }
}

/// The processes (other than this test) whose command line mentions `needle`.
fn processes_mentioning(needle: &Path) -> Vec<String> {
    let needle = needle.as_os_str().as_encoded_bytes();
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline.windows(needle.len()).any(|w| w == needle) {
            found.push(format!(
                "{name}: {}",
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            ));
        }
    }
    found
}

/// Waits (up to 60 s) until no process mentions the world's home: no ssh, rsync or ssh
/// master of its leases is left.
#[track_caller]
fn assert_no_processes_left(w: &World) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = processes_mentioning(w.home.path());
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes left running: {left:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the simulator holds no live sandbox.
#[track_caller]
fn assert_no_live_sandbox(w: &World) {
    eventually("every sandbox deleted", || {
        w.sim
            .sandboxes()
            .iter()
            .all(|s| s.state == "destroying" || s.name.starts_with("DESTROYED_"))
    });
}

#[test]
fn sigterm_during_the_sync_of_a_one_shot_run_stops_rsync_and_deletes_the_sandbox() {
    let Some(w) = World::new() else { return };
    // A file that takes minutes at 1 KiB/s, and an rsync that says when it started.
    let blob: String = (0..400_000u32)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect();
    w.write("big.txt", &blob);
    let shims = w.home.path().join("slow-shims");
    std::fs::create_dir_all(&shims).unwrap();
    let marker = w.home.path().join("rsync-started");
    let script = format!(
        "#!/bin/sh\ntouch '{}'\nexec '{}' --bwlimit=1 \"$@\"\n",
        marker.display(),
        which("rsync").display()
    );
    let shim = shims.join("rsync");
    std::fs::write(&shim, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        shims.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let run = Background::start(&w, &["run", "--", "echo", "never"], Some(&path));
    eventually("rsync started", || marker.exists());
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !processes_mentioning(w.home.path()).is_empty(),
        "rsync and ssh are running"
    );
    run.signal("TERM");
    let (code, stderr) = run.finish();
    assert_eq!(code, 143, "{stderr}");
    assert!(stderr.contains("interrupted (SIGTERM)"), "{stderr}");
    assert!(stderr.contains("released"), "{stderr}");
    assert_no_live_sandbox(&w);
    assert_no_processes_left(&w);
    let state = w.home.state_dir();
    for dir in ["claims", "intents"] {
        let left: Vec<_> = std::fs::read_dir(state.join(dir))
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "json"))
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "{dir}: {left:?}");
    }
}

#[test]
fn sighup_while_a_one_shot_command_runs_kills_ssh_and_deletes_the_sandbox() {
    let Some(w) = World::new() else { return };
    let run = Background::start(
        &w,
        &["run", "--", "sh", "-c", "echo started; sleep 60"],
        None,
    );
    eventually("the command started", || {
        run.stdout.lock().unwrap().contains("started")
    });
    run.signal("HUP");
    let started = Instant::now();
    let (code, stderr) = run.finish();
    assert_eq!(code, 129, "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(stderr.contains("released"), "{stderr}");
    assert_no_live_sandbox(&w);
    assert_no_processes_left(&w);
}

#[test]
fn a_one_shot_run_killed_with_sigkill_is_deleted_by_the_next_command() {
    let Some(w) = World::new() else { return };
    let run = Background::start(
        &w,
        &["run", "--", "sh", "-c", "echo started; sleep 60"],
        None,
    );
    eventually("the command started", || {
        run.stdout.lock().unwrap().contains("started")
    });
    run.signal("KILL");
    let (code, _) = run.finish();
    assert_eq!(code, 137);
    let list = w.cbx(&["list", "--json"]);
    list.ok();
    assert!(list.stderr.contains("deleted sandbox"), "{list}");
    assert!(list.json().as_array().unwrap().is_empty(), "{list}");
    assert_no_live_sandbox(&w);
    // The ssh the killed cbx left ends with the sandbox; its master is closed.
    assert_no_processes_left(&w);
}

#[test]
fn sigterm_during_cbx_ssh_ends_its_ssh() {
    let Some(w) = World::new() else { return };
    w.warmup("shell");
    let ssh = Background::start(
        &w,
        &["ssh", "shell", "--", "sh", "-c", "echo started; sleep 60"],
        None,
    );
    eventually("the command started", || {
        ssh.stdout.lock().unwrap().contains("started")
    });
    ssh.signal("TERM");
    let (code, stderr) = ssh.finish();
    assert_eq!(code, 143, "{stderr}");
    // Only the lease's multiplexing master may stay (it serves the next command).
    eventually("no ssh session left", || {
        processes_mentioning(w.home.path())
            .iter()
            .all(|p| p.contains("[mux]"))
    });
    w.cbx(&["stop", "shell"]).ok();
    assert_no_processes_left(&w);
}

#[test]
fn sigterm_during_a_run_on_a_kept_lease_exits_143_and_keeps_the_lease() {
    let Some(w) = World::new() else { return };
    w.warmup("kept");
    let run = Background::start(
        &w,
        &[
            "run",
            "--id",
            "kept",
            "--",
            "sh",
            "-c",
            "echo started; sleep 60",
        ],
        None,
    );
    eventually("the command started", || {
        run.stdout.lock().unwrap().contains("started")
    });
    let started = Instant::now();
    run.signal("TERM");
    let (code, stderr) = run.finish();
    assert_eq!(code, 143, "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "cbx and its output ended at once"
    );
    let status = w.cbx(&["status", "kept", "--json"]);
    status.ok();
    assert_eq!(status.json()["claimed"], true);
    w.cbx(&["stop", "kept"]).ok();
    assert_no_processes_left(&w);
}

#[test]
fn an_unusable_known_hosts_is_an_error_not_an_unchecked_connection() {
    let Some(w) = World::new() else { return };
    w.warmup("hosts");
    let known_hosts = w.home.state_dir().join("known_hosts");
    let _ = std::fs::remove_file(&known_hosts);
    std::fs::create_dir_all(&known_hosts).unwrap();
    let out = w.cbx(&[
        "run",
        "--id",
        "hosts",
        "--no-sync",
        "--",
        "echo",
        "connected",
    ]);
    assert_eq!(out.code, 1, "{out}");
    assert!(!out.stdout.contains("connected"), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "cbx's known_hosts {} is not a regular file",
            known_hosts.display()
        )),
        "{out}"
    );
    assert!(
        out.stderr.contains("will not connect without checking"),
        "{out}"
    );
    assert!(out.stderr.contains("hint: move it aside"), "{out}");
    std::fs::remove_dir(&known_hosts).unwrap();
    let out = w.cbx(&[
        "run",
        "--id",
        "hosts",
        "--no-sync",
        "--",
        "echo",
        "connected",
    ]);
    out.ok();
    assert_eq!(out.stdout, "connected\n");
    assert!(
        std::fs::read_to_string(&known_hosts)
            .unwrap()
            .contains("127.0.0.1"),
        "the host key was recorded"
    );
    w.cbx(&["stop", "hosts"]).ok();
}

#[test]
fn two_concurrent_runs_on_one_lease_share_one_ssh_access() {
    let Some(w) = World::new() else { return };
    w.warmup("pair");
    let spawn = |tag: &str| {
        w.home
            .command(&[
                "run",
                "--id",
                "pair",
                "--",
                "sh",
                "-c",
                &format!("sleep 1; echo {tag}"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("A"), spawn("B"));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    assert_eq!(String::from_utf8_lossy(&a.stdout), "A\n");
    assert_eq!(String::from_utf8_lossy(&b.stdout), "B\n");
    assert_eq!(
        w.ssh_access_requests(),
        1,
        "minting twice would revoke the first token"
    );
    w.cbx(&["stop", "pair"]).ok();
}

#[test]
fn an_expired_token_is_refreshed() {
    let Some(w) = World::new() else { return };
    let lease = w.warmup("expiry");
    let sandbox = lease["sandboxId"].as_str().unwrap().to_string();
    let lease_id = lease["leaseId"].as_str().unwrap().to_string();
    w.cbx(&["run", "--id", "expiry", "--", "true"]).ok();
    let first = w.tokens();
    assert_eq!(first.len(), 1);

    // The token expires server-side and the multiplexed connection goes away.
    w.sim.expire_ssh_tokens(&sandbox);
    let config = w
        .home
        .state_dir()
        .join("secrets")
        .join(&lease_id)
        .join("ssh_config");
    let _ = std::process::Command::new("ssh")
        .arg("-F")
        .arg(&config)
        .args(["-O", "exit", &format!("cbx-{lease_id}")])
        .output();

    let out = w.cbx(&["run", "--id", "expiry", "--", "echo", "still works"]);
    out.ok();
    assert_eq!(out.stdout, "still works\n");
    assert_eq!(w.ssh_access_requests(), 2, "a fresh token was minted");
    let second = w.tokens();
    assert!(second.iter().all(|t| !first.contains(t)));
    w.cbx(&["stop", "expiry"]).ok();
}

/// Closes the multiplexed connection of `lease_id` (as when it times out or the network
/// drops), so the next command logs in again.
fn close_master(w: &World, lease_id: &str) -> PathBuf {
    let config = w
        .home
        .state_dir()
        .join("secrets")
        .join(lease_id)
        .join("ssh_config");
    let _ = std::process::Command::new("ssh")
        .arg("-F")
        .arg(&config)
        .args(["-O", "exit", &format!("cbx-{lease_id}")])
        .output();
    config
}

#[test]
fn a_gateway_that_drops_connections_is_waited_out_like_one_that_refuses() {
    let Some(w) = World::dropping() else { return };
    let lease = w.warmup("dropper");
    let sandbox = lease["sandboxId"].as_str().unwrap().to_string();
    let lease_id = lease["leaseId"].as_str().unwrap().to_string();
    let first = w.cbx(&["run", "--id", "dropper", "--", "echo", "hi"]);
    first.ok();
    assert_eq!(first.stdout, "hi\n");

    // An expired token: the login goes through, then the connection is dropped — no
    // "Permission denied", as with Daytona's gateway.
    w.sim.expire_ssh_tokens(&sandbox);
    let config = close_master(&w, &lease_id);
    let direct = std::process::Command::new("ssh")
        .arg("-F")
        .arg(&config)
        .args(["-o", "ControlMaster=no", "-o", "ControlPath=none"])
        .args([&format!("cbx-{lease_id}"), "echo", "through"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&direct.stderr);
    assert_eq!(direct.status.code(), Some(255), "{stderr}");
    assert!(!stderr.contains("Permission denied"), "{stderr}");
    assert!(stderr.contains("closed"), "{stderr}");
    assert!(direct.stdout.is_empty());
    // cbx treats the drop as a failed login: it mints fresh access and goes on.
    let out = w.cbx(&["run", "--id", "dropper", "--", "echo", "still works"]);
    out.ok();
    assert_eq!(out.stdout, "still works\n");
    assert_eq!(w.ssh_access_requests(), 2, "a fresh token was minted");

    // A sandbox that is not started drops every login; cbx starts it, then gets in.
    assert!(w.sim.set_state(&sandbox, "stopped"));
    close_master(&w, &lease_id);
    let out = w.cbx(&["run", "--id", "dropper", "--", "echo", "awake"]);
    out.ok();
    assert_eq!(out.stdout, "awake\n");
    w.cbx(&["stop", "dropper"]).ok();
}

#[test]
fn a_stopped_lease_is_started_before_it_is_used() {
    let Some(w) = World::new() else { return };
    let lease = w.warmup("sleepy");
    let sandbox = lease["sandboxId"].as_str().unwrap().to_string();
    assert!(w.sim.set_state(&sandbox, "stopped"));
    let out = w.cbx(&["run", "--id", "sleepy", "--", "echo", "awake"]);
    out.ok();
    assert_eq!(out.stdout, "awake\n");
    assert!(
        w.sim
            .requests()
            .iter()
            .any(|r| r.method == "POST" && r.path.ends_with("/start"))
    );
    w.cbx(&["stop", "sleepy"]).ok();
}

#[test]
fn env_forwarding_is_opt_in_and_values_stay_off_command_lines() {
    let Some(w) = World::new() else { return };
    let shims = ArgvShims::install(w.home.path());
    let mut home = CbxHome::new(CBX);
    home.cwd = w.repo().to_path_buf();
    home.env("DAYTONA_API_URL", &w.sim.api_url())
        .env("DAYTONA_API_KEY", &w.sim.api_key())
        .env("DAYTONA_SSH_GATEWAY", &w.sim.ssh_gateway())
        .env("PATH", &shims.path_var())
        .env("DEPLOY_TOKEN", "s3cr3t-deploy-value")
        .env("NOT_FORWARDED", "should-not-appear");

    let warm = home.run(&["warmup", "--slug", "envy"]);
    warm.ok();
    let run = home.run(&[
        "run",
        "--id",
        "envy",
        "--env",
        "DEPLOY_TOKEN",
        "--",
        "sh",
        "-c",
        "echo \"[$DEPLOY_TOKEN][$NOT_FORWARDED]\"",
    ]);
    run.ok();
    assert_eq!(run.stdout, "[s3cr3t-deploy-value][]\n");
    let ssh = home.run(&["ssh", "envy", "--", "true"]);
    ssh.ok();
    let printed = home.run(&["ssh", "envy", "--print"]);
    printed.ok();
    assert!(printed.stdout.contains("<token>@127.0.0.1"), "{printed}");
    let missing = home.run(&["run", "--id", "envy", "--env", "NOPE_UNSET", "--", "true"]);
    missing.expect_code(2);
    assert!(
        missing.stderr.contains("NOPE_UNSET is not set"),
        "{missing}"
    );
    let stop = home.run(&["stop", "envy"]);
    stop.ok();

    let argv = shims.logged();
    assert!(
        argv.contains("ssh") && argv.contains("rsync"),
        "the shims must have seen ssh and rsync:\n{argv}"
    );
    let tokens = w.sim.minted_ssh_tokens();
    assert!(
        !tokens.is_empty(),
        "the test must know the token it searches for"
    );
    for token in &tokens {
        assert!(
            !argv.contains(token.as_str()),
            "token on a command line:\n{argv}"
        );
        home.assert_secret_absent(
            token,
            &[&warm, &run, &ssh, &printed, &missing, &stop],
            &["state/cbx/secrets"],
        );
    }
    assert!(
        !argv.contains("s3cr3t-deploy-value"),
        "forwarded value on a command line:\n{argv}"
    );
    home.assert_secret_absent(
        "s3cr3t-deploy-value",
        &[&warm, &ssh, &printed, &missing, &stop],
        &[],
    );
    home.assert_secret_absent(
        &w.sim.api_key(),
        &[&warm, &run, &ssh, &printed, &missing, &stop],
        &[],
    );
}

#[test]
fn the_data_plane_is_audited_and_goes_only_to_the_granted_gateway() {
    let Some(mut w) = World::new() else { return };
    w.home.env("DEPLOY_TOKEN", "audited-env-value-4711");
    let lease = w.warmup("audited");
    let lease_id = lease["leaseId"].as_str().unwrap().to_string();
    let run = w.cbx(&[
        "run",
        "--id",
        "audited",
        "--env",
        "DEPLOY_TOKEN",
        "--",
        "true",
    ]);
    run.ok();
    w.cbx(&["run", "--id", "audited", "--", "true"]).ok();
    let audit = w.cbx(&["providers", "audit", "--json", "--of", "daytona"]);
    audit.ok();
    let records: Vec<serde_json::Value> = audit
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &serde_json::Value| {
            ["ssh", "sync", "env"].contains(&r["kind"].as_str().unwrap())
        })
        .collect();
    let gateway = w.sim.ssh_gateway();
    let kinds: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r["kind"].as_str().unwrap(), r["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("ssh", "allowed"),
            ("sync", "sent"),
            ("env", "sent"),
            ("sync", "unchanged")
        ],
        "{records:#?}"
    );
    for r in &records {
        assert_eq!(r["lease"], lease_id.as_str(), "{r}");
        assert_eq!(r["destination"], gateway.as_str(), "{r}");
    }
    assert_eq!(records[0]["operation"], "mint-ssh-access");
    assert_eq!(records[1]["files"], 3);
    assert!(records[1]["bytes"].as_u64().unwrap() > 0);
    assert_eq!(records[1]["transport"], "rsync over ssh");
    assert_eq!(records[2]["names"], serde_json::json!(["DEPLOY_TOKEN"]));
    let human = w.cbx(&["providers", "audit", "--of", "daytona"]);
    human.ok();
    for line in [
        format!("SSH {gateway}"),
        format!("rsync over ssh 3 files to {gateway}"),
        format!("--env DEPLOY_TOKEN to {gateway}"),
    ] {
        assert!(human.stdout.contains(&line), "{line}\n{human}");
    }

    // Without the override the simulator's gateway is not Daytona's: the access cached on
    // disk is checked again and refused, and nothing new is learnt or sent.
    let known_hosts = w.home.state_dir().join("known_hosts");
    let hosts_before = std::fs::read_to_string(&known_hosts).unwrap();
    w.home.unset("DAYTONA_SSH_GATEWAY");
    let out = w.cbx(&[
        "run",
        "--id",
        "audited",
        "--env",
        "DEPLOY_TOKEN",
        "--",
        "true",
    ]);
    out.expect_code(7);
    assert!(
        out.stderr.contains(&format!(
            "provider daytona was denied SSH {gateway}: it is outside the granted SSH destinations (ssh.app.daytona.io:22)"
        )),
        "{out}"
    );
    assert!(
        out.stderr
            .contains(&format!("or DAYTONA_SSH_GATEWAY={gateway}")),
        "the denial says how to allow a self-hosted gateway\n{out}"
    );
    assert_eq!(std::fs::read_to_string(&known_hosts).unwrap(), hosts_before);
    let audit = w.cbx(&["providers", "audit", "--json", "--of", "daytona"]);
    let last: serde_json::Value =
        serde_json::from_str(audit.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["kind"], "denied");
    assert_eq!(last["operation"], "cached-ssh-access");
    assert_eq!(last["destination"], gateway.as_str());
    w.home
        .assert_secret_absent("audited-env-value-4711", &[&run, &audit, &human, &out], &[]);

    // The user's config may allow it instead of the variable.
    w.home.write_config(&format!(
        "[providers.daytona.ssh]\ndestinations = [\"{gateway}\"]\n"
    ));
    w.cbx(&["run", "--id", "audited", "--", "true"]).ok();
    w.cbx(&["stop", "audited"]).ok();
}

#[test]
fn sync_errors_are_clear() {
    let Some(w) = World::new() else { return };
    let mut home = CbxHome::new(CBX);
    home.env("DAYTONA_API_URL", &w.sim.api_url())
        .env("DAYTONA_API_KEY", &w.sim.api_key())
        .env("DAYTONA_SSH_GATEWAY", &w.sim.ssh_gateway());
    // home.cwd is not a git repository.
    let out = home.run(&["run", "--", "true"]);
    out.expect_code(6);
    assert!(
        out.stderr.contains("is not inside a git repository"),
        "{out}"
    );
    assert!(out.stderr.contains("--no-sync"), "{out}");
    assert!(
        w.sim.sandboxes().is_empty(),
        "nothing is leased when the sync cannot happen"
    );
    let out = home.run(&["run", "--no-sync", "--", "echo", "no sync needed"]);
    out.ok();
    assert_eq!(out.stdout, "no sync needed\n");
}

/// The file list is made while a run goes on the network (issue 14): a tree past the limits
/// still fails with its own error — before a new lease is created, and on an existing lease's
/// full path without running the command or losing the lease.
#[test]
fn a_tree_past_the_limits_fails_before_leasing_and_keeps_an_existing_lease() {
    let Some(w) = World::new() else { return };
    // 6 GB, sparse: listed by its size, never read.
    let big = std::fs::File::create(w.repo().join("huge.bin")).unwrap();
    big.set_len(6 << 30).unwrap();
    drop(big);
    let out = w.cbx(&["run", "--", "touch", "ran"]);
    out.expect_code(6);
    assert!(
        out.stderr.contains("the tree to sync is very large"),
        "{out}"
    );
    assert!(out.stderr.contains("--sync-large"), "{out}");
    assert!(
        w.sim.sandboxes().is_empty(),
        "nothing is leased for a tree that cannot be synced"
    );

    std::fs::remove_file(w.repo().join("huge.bin")).unwrap();
    let lease = w.warmup("big");
    let sandbox = lease["sandboxId"].as_str().unwrap().to_string();
    let lease_id = lease["leaseId"].as_str().unwrap().to_string();
    let big = std::fs::File::create(w.repo().join("huge.bin")).unwrap();
    big.set_len(6 << 30).unwrap();
    drop(big);
    let out = w.cbx(&["run", "--id", "big", "--", "touch", "ran"]);
    out.expect_code(6);
    assert!(
        out.stderr.contains("the tree to sync is very large"),
        "{out}"
    );
    assert!(
        !w.remote_workdir(&sandbox, &lease_id).join("ran").exists(),
        "the command did not run"
    );
    assert_eq!(w.sim.sandboxes().len(), 1, "the lease's sandbox is kept");
    std::fs::remove_file(w.repo().join("huge.bin")).unwrap();
    let out = w.cbx(&["run", "--id", "big", "--", "touch", "ran"]);
    out.ok();
    assert!(w.remote_workdir(&sandbox, &lease_id).join("ran").exists());
    w.cbx(&["stop", "big"]).ok();
}

/// Waits up to 60 s for `check` to hold.
#[track_caller]
pub(crate) fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `ssh` and `rsync` wrappers that log their argv, then run the real tools.
pub(crate) struct ArgvShims {
    dir: PathBuf,
    log: PathBuf,
}

impl ArgvShims {
    pub(crate) fn install(base: &Path) -> ArgvShims {
        let dir = base.join("shims");
        std::fs::create_dir_all(&dir).unwrap();
        let log = base.join("argv.log");
        for tool in ["ssh", "rsync"] {
            let real = which(tool);
            let script = format!(
                "#!/bin/sh\nprintf '%s' '{tool}' >> '{log}'\nfor a in \"$@\"; do printf ' %s' \"$a\" >> '{log}'; done\necho >> '{log}'\nexec '{real}' \"$@\"\n",
                log = log.display(),
                real = real.display()
            );
            let path = dir.join(tool);
            std::fs::write(&path, script).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        ArgvShims { dir, log }
    }

    pub(crate) fn path_var(&self) -> String {
        format!(
            "{}:{}",
            self.dir.display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    pub(crate) fn logged(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn which(tool: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{tool} not found on PATH"))
}
