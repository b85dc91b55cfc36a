//! End-to-end tests of the optional capabilities (issue 16): checkpoints and forks through the
//! real `cbx` binary and the Daytona provider against the simulator, whose sandboxes are
//! system users of a real sshd (so a checkpoint or a fork really carries files); and the
//! error a provider without a capability gives (the built-in `ssh` provider).
//!
//! The lease tests need root (see `data_plane`); the capability checks run anywhere.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cbx_testkit::daytona_sim::{DaytonaSim, SimConfig};
use cbx_testkit::home::{CbxHome, Output};
use cbx_testkit::sshd::SshdGateway;

use super::crash_safety::{fast, setup};
use super::data_plane::{gateway, start_sim};

const CBX: &str = env!("CARGO_BIN_EXE_cbx");

/// A simulator with SSH whose new sandboxes are of `class`, and a cbx home pointed at it.
struct World {
    sim: DaytonaSim,
    gateway: Arc<SshdGateway>,
    home: CbxHome,
    _rt: tokio::runtime::Runtime,
}

impl World {
    fn new(class: &str) -> Option<World> {
        let gateway = gateway()?;
        let (sim, home, rt) = start_sim(SimConfig {
            ssh: gateway.clone(),
            sandbox_class: class.to_string(),
            ..SimConfig::default().with_delays(Duration::from_millis(100))
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

    /// `cbx warmup --slug SLUG extra… --json`: (lease id, sandbox id).
    fn warmup(&self, slug: &str, extra: &[&str]) -> (String, String) {
        let mut args = vec!["warmup", "--slug", slug, "--json"];
        args.extend_from_slice(extra);
        let out = self.cbx(&args);
        out.ok();
        let v = out.json();
        (
            v["leaseId"].as_str().unwrap().to_string(),
            v["sandboxId"].as_str().unwrap().to_string(),
        )
    }

    /// A file in a sandbox's home directory, on its file system.
    fn sandbox_file(&self, sandbox: &str, rel: &str) -> PathBuf {
        self.gateway
            .sandbox_home(sandbox)
            .expect("sandbox home")
            .join(rel)
    }

    fn requests(&self, method: &str, suffix: &str) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| r.method == method && r.path.ends_with(suffix))
            .count()
    }
}

#[test]
fn checkpoints_save_files_new_leases_start_from_them_and_delete_by_id() {
    let Some(w) = World::new("container") else {
        return;
    };
    let (_, source) = w.warmup("base", &[]);
    std::fs::write(w.sandbox_file(&source, "deps-installed"), "yes\n").unwrap();

    let out = w.cbx(&["checkpoint", "create", "base", "--name", "deps"]);
    out.ok();
    assert!(out.stdout.contains("checkpoint deps id="), "{out}");
    // The name says whose it is: this home's owner id.
    let full = format!("cbx-ckpt-{}_deps", owner_id(&w.home));
    assert_eq!(w.sim.snapshot_names(), std::slice::from_ref(&full));
    // The name was checked free before the snapshot call (a duplicate fails silently), and
    // success was read from the snapshot itself afterwards.
    let order: Vec<String> = w
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.contains("snapshot"))
        .map(|r| format!("{} {}", r.method, r.path.rsplit('/').next().unwrap()))
        .collect();
    let post = order
        .iter()
        .position(|r| r == "POST snapshot")
        .expect("snapshot posted");
    let get = format!("GET {full}");
    assert!(order[..post].contains(&get), "{order:?}");
    assert!(order[post..].contains(&get), "{order:?}");

    let again = w.cbx(&["checkpoint", "create", "base", "--name", "deps"]);
    again.expect_code(2);
    assert!(
        again
            .stderr
            .contains("a checkpoint called deps already exists"),
        "{again}"
    );

    let list = w.cbx(&["checkpoint", "list", "--json"]);
    list.ok();
    let row: serde_json::Value = serde_json::from_str(list.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(row["name"], "deps");
    assert_eq!(row["state"], "ready");

    let (_, copy) = w.warmup("from-deps", &["--from", "deps"]);
    assert_eq!(
        std::fs::read_to_string(w.sandbox_file(&copy, "deps-installed")).unwrap(),
        "yes\n"
    );
    let create = w
        .sim
        .requests()
        .into_iter()
        .rfind(|r| r.method == "POST" && r.path == "/api/sandbox")
        .unwrap();
    assert_eq!(create.body_json().unwrap()["snapshot"], full.as_str());

    let missing = w.cbx(&["warmup", "--from", "nope"]);
    missing.expect_code(4);
    assert!(
        missing
            .stderr
            .contains("there is no checkpoint called nope"),
        "{missing}"
    );
    let bad = w.cbx(&["checkpoint", "create", "base", "--name", "Bad Name"]);
    bad.expect_code(2);
    assert!(
        bad.stderr.contains("is not a valid checkpoint name"),
        "{bad}"
    );

    let del = w.cbx(&["checkpoint", "delete", "deps"]);
    del.ok();
    assert!(del.stdout.contains("deleted checkpoint deps"), "{del}");
    let by_id = w
        .sim
        .requests()
        .into_iter()
        .find(|r| r.method == "DELETE" && r.path.starts_with("/api/snapshots/"))
        .unwrap();
    assert!(
        !by_id.path.ends_with(&full),
        "deleted by id: {}",
        by_id.path
    );

    for slug in ["base", "from-deps"] {
        w.cbx(&["stop", slug]).ok();
    }
}

/// The owner id cbx made for `home` (it names that home's checkpoints).
fn owner_id(home: &CbxHome) -> String {
    std::fs::read_to_string(home.state_dir().join("owner-id"))
        .expect("owner id")
        .trim()
        .to_string()
}

/// `checkpoint list --json` of `home`: one object per checkpoint.
fn checkpoints(home: &CbxHome) -> Vec<serde_json::Value> {
    let out = home.run(&["checkpoint", "list", "--json"]);
    out.ok();
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Asks the simulator, as a cbx before owners did, to save `sandbox` as snapshot `name`.
fn snapshot_directly(sim: &DaytonaSim, sandbox: &str, name: &str) {
    let status = std::process::Command::new("curl")
        .args(["-sf", "-o", "/dev/null", "-X", "POST"])
        .arg("-H")
        .arg(format!("Authorization: Bearer {}", sim.api_key()))
        .args(["-H", "Content-Type: application/json", "-d"])
        .arg(format!(r#"{{"name":"{name}"}}"#))
        .arg(format!("{}/sandbox/{sandbox}/snapshot", sim.api_url()))
        .status()
        .expect("run curl");
    assert!(status.success(), "snapshot {name}");
    while sim
        .sandbox(sandbox)
        .is_some_and(|s| s.state == "snapshotting")
    {
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn checkpoints_are_owned_another_owners_is_refused_and_old_names_still_work() {
    let (sim, here) = setup(fast());
    let mut there = CbxHome::new(CBX);
    there
        .env("DAYTONA_API_URL", &sim.api_url())
        .env("DAYTONA_API_KEY", &sim.api_key());
    let lease = there.run(&["warmup", "--slug", "far", "--json"]);
    lease.ok();
    let far = lease.json()["sandboxId"].as_str().unwrap().to_string();
    there
        .run(&["checkpoint", "create", "far", "--name", "deps"])
        .ok();
    snapshot_directly(&sim, &far, "cbx-ckpt-legacy");
    // Not cbx's: no prefix, or a malformed owner part. Never listed, never touched.
    snapshot_directly(&sim, &far, "cbx-ckpt-x_y");

    let theirs = format!("{}_deps", owner_id(&there));
    let rows = checkpoints(&here);
    let row = |name: &str| rows.iter().find(|r| r["name"] == name).cloned();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(row(&theirs).expect("theirs")["owner"], "another");
    assert_eq!(row("legacy").expect("old-style")["owner"], "unknown");
    assert_eq!(row("legacy").unwrap()["serviceName"], "cbx-ckpt-legacy");
    let mine = checkpoints(&there);
    assert_eq!(
        mine.iter().find(|r| r["name"] == "deps").unwrap()["owner"],
        "this-machine"
    );
    let human = here.run(&["checkpoint", "list"]);
    assert!(human.stdout.contains("OWNER"), "{human}");
    assert!(human.stdout.contains("AGE"), "{human}");

    // Another owner's: refused (exit 4) without --any-owner, by short or exact name.
    for name in ["deps", theirs.as_str()] {
        let refused = here.run(&["checkpoint", "delete", name]);
        refused.expect_code(4);
        assert!(
            refused
                .stderr
                .contains(&format!("checkpoint {theirs} is another owner's")),
            "{refused}"
        );
        assert!(refused.stderr.contains("--any-owner"), "{refused}");
    }
    assert_eq!(checkpoints(&there).len(), 2, "nothing was deleted");
    // It can still be used to start from.
    let from = here.run(&["warmup", "--slug", "near", "--from", "deps", "--json"]);
    from.ok();

    // This machine's own `deps` is preferred to the other owner's.
    here.run(&["checkpoint", "create", "near", "--name", "deps"])
        .ok();
    let del = here.run(&["checkpoint", "delete", "deps"]);
    del.ok();
    assert_eq!(del.stdout.trim(), "deleted checkpoint deps", "{del}");
    let forced = here.run(&["checkpoint", "delete", "deps", "--any-owner"]);
    forced.ok();
    assert_eq!(
        forced.stdout.trim(),
        format!("deleted checkpoint {theirs}"),
        "{forced}"
    );

    // A checkpoint of a cbx before owners lists, starts leases and deletes as before.
    let old = here.run(&["checkpoint", "delete", "legacy"]);
    old.ok();
    assert_eq!(old.stdout.trim(), "deleted checkpoint legacy", "{old}");
    let gone = here.run(&["checkpoint", "delete", "legacy"]);
    gone.ok();
    assert!(gone.stdout.contains("was already gone"), "{gone}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while sim.snapshot_names() != ["cbx-ckpt-x_y"] {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            sim.snapshot_names()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    here.run(&["stop", "near"]).ok();
    there.run(&["stop", "far"]).ok();
}

#[test]
fn a_fork_copies_the_files_and_a_container_sandbox_falls_back_to_a_fresh_one() {
    let Some(w) = World::new("linux-vm") else {
        return;
    };
    let (_, source) = w.warmup("parent", &[]);
    std::fs::write(w.sandbox_file(&source, "state.txt"), "warm\n").unwrap();
    let (lease, child) = w.warmup("child", &["--fork", "parent"]);
    assert_ne!(child, source);
    assert_eq!(w.requests("POST", "/fork"), 1);
    assert_eq!(
        std::fs::read_to_string(w.sandbox_file(&child, "state.txt")).unwrap(),
        "warm\n"
    );
    // The child carries its own lease's labels, not the parent's (Daytona copies them).
    let view = w.sim.sandbox(&child).unwrap();
    assert_eq!(
        view.labels.get("cbx_lease").map(String::as_str),
        Some(lease.as_str())
    );
    for slug in ["child", "parent"] {
        w.cbx(&["stop", slug]).ok();
    }

    let Some(w) = World::new("container") else {
        return;
    };
    let (_, source) = w.warmup("parent", &[]);
    std::fs::write(w.sandbox_file(&source, "state.txt"), "warm\n").unwrap();
    let out = w.cbx(&["warmup", "--slug", "child", "--fork", "parent", "--json"]);
    out.ok();
    assert!(out.stderr.contains("cannot fork sandbox"), "{out}");
    assert!(out.stderr.contains("Forking is not supported"), "{out}");
    let child = out.json()["sandboxId"].as_str().unwrap().to_string();
    assert!(!w.sandbox_file(&child, "state.txt").exists());
    for slug in ["child", "parent"] {
        w.cbx(&["stop", slug]).ok();
    }
}

#[test]
fn a_provider_without_the_capability_fails_before_anything_and_inspect_shows_capabilities() {
    let home = CbxHome::new(CBX);
    for args in [
        vec!["--provider", "ssh", "checkpoint", "list"],
        vec!["--provider", "ssh", "checkpoint", "create", "some-lease"],
        vec!["--provider", "ssh", "checkpoint", "delete", "deps"],
    ] {
        let out = home.run(&args);
        out.expect_code(2);
        assert!(
            out.stderr.contains("needs the `checkpoint` capability")
                && out.stderr.contains("provider ssh does not offer it"),
            "{out}"
        );
    }
    // No options or credentials were needed: nothing was configured, nothing contacted.
    let ssh = home.run(&["providers", "inspect", "ssh"]);
    ssh.ok();
    assert!(ssh.stdout.contains("Capabilities: none"), "{ssh}");
    let daytona = home.run(&["providers", "inspect", "daytona", "--json"]);
    daytona.ok();
    let v = daytona.json();
    assert_eq!(v["capabilities"], serde_json::json!(["checkpoint", "fork"]));
    let human = home.run(&["providers", "inspect", "daytona"]);
    assert!(
        human.stdout.contains("Capabilities: checkpoint, fork"),
        "{human}"
    );
    assert!(human.stdout.contains("cbx:provider/fork@0.1.0"), "{human}");
}
