//! Daytona cleans up after everyone (issue 12): the real `cbx` binary against the Daytona
//! simulator. Leases carry `autoDeleteInterval` and an owner label; `list --all` shows cbx
//! sandboxes this machine holds no claim for; `cleanup` and `stop --reclaim` delete them —
//! never a sandbox without cbx's labels, never one a local command holds; `doctor` reads the
//! API key's scopes and `warmup` refuses a key that could not delete what it creates.

use std::time::{Duration, Instant};

use cbx_testkit::daytona_sim::{DaytonaSim, SimConfig};
use cbx_testkit::home::{CbxHome, Output};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Helpers

/// A fast simulator.
fn fast() -> SimConfig {
    SimConfig::default().with_delays(Duration::from_millis(100))
}

/// Starts `config` and a home pointed at it.
fn setup(config: SimConfig) -> (DaytonaSim, CbxHome) {
    let sim = DaytonaSim::start_background(config).expect("start the simulator");
    let home = home_for(&sim);
    (sim, home)
}

/// Another home (another machine, or this one after losing its state) on the same account.
fn home_for(sim: &DaytonaSim) -> CbxHome {
    let mut home = CbxHome::new(env!("CARGO_BIN_EXE_cbx"));
    home.env("DAYTONA_API_URL", &sim.api_url())
        .env("DAYTONA_API_KEY", &sim.api_key())
        .env("DAYTONA_SSH_GATEWAY", &sim.ssh_gateway());
    home
}

/// Runs `cbx warmup --json` plus `extra`; returns (lease id, sandbox id).
#[track_caller]
fn warmup(home: &CbxHome, extra: &[&str]) -> (String, String) {
    let mut args = vec!["warmup", "--json"];
    args.extend_from_slice(extra);
    let out = home.run(&args);
    out.ok();
    let json = out.json();
    (
        json["leaseId"].as_str().expect("leaseId").to_string(),
        json["sandboxId"].as_str().expect("sandboxId").to_string(),
    )
}

/// The body of the last create request.
fn last_create(sim: &DaytonaSim) -> Value {
    sim.requests()
        .into_iter()
        .rfind(|r| r.method == "POST" && r.path == "/api/sandbox")
        .and_then(|r| r.body_json())
        .expect("a create request")
}

/// The doctor check named `name` in `doctor --json`.
#[track_caller]
fn doctor_check(out: &Output, name: &str) -> Value {
    out.json()["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no `{name}` check\n{out}"))
        .clone()
}

/// Waits (bounded) until `id` is gone from the simulator.
#[track_caller]
fn assert_gone(sim: &DaytonaSim, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while sim.sandbox(id).is_some() {
        assert!(Instant::now() < deadline, "sandbox {id} still there");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// autoDeleteInterval

#[test]
fn auto_delete_follows_the_ttl_and_the_option() {
    let (sim, home) = setup(fast());
    let (_, sandbox) = warmup(&home, &["--ttl", "2h"]);
    assert_eq!(last_create(&sim)["autoDeleteInterval"], 120);
    assert_eq!(sim.sandbox(&sandbox).unwrap().auto_delete_interval, 120);

    // Per user: the option, from the user config (with its provenance in `providers inspect`).
    home.write_config("[providers.daytona.options]\nauto-delete-minutes = \"45\"\n");
    warmup(&home, &["--ttl", "3h"]);
    assert_eq!(last_create(&sim)["autoDeleteInterval"], 45);
    let inspect = home.run(&["providers", "inspect", "daytona", "--json"]);
    inspect.ok();
    let option = inspect.json()["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "auto-delete-minutes")
        .cloned()
        .expect("the option is listed");
    assert_eq!(option["value"], "45", "{inspect}");
    assert_eq!(option["default"], "ttl", "{inspect}");
    assert_eq!(option["origin"]["kind"], "file", "{inspect}");

    // `never` sends Daytona's "disabled"; doctor says nothing deletes an abandoned lease.
    warmup(&home, &["-o", "auto-delete-minutes=never"]);
    assert_eq!(last_create(&sim)["autoDeleteInterval"], -1);
    let doctor = home.run(&["doctor", "--json", "-o", "auto-delete-minutes=never"]);
    doctor.ok();
    let check = doctor_check(&doctor, "cleanup");
    assert_eq!(check["status"], "warn", "{doctor}");
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("Daytona never deletes a stopped cbx sandbox"),
        "{doctor}"
    );

    // Doctor shows the default and what it means.
    home.write_config("");
    let doctor = home.run(&["doctor"]);
    doctor.ok();
    assert!(
        doctor
            .stdout
            .contains("auto-delete=the lease's TTL after it stops"),
        "{doctor}"
    );
    assert!(
        doctor
            .stdout
            .contains("Daytona deletes a stopped cbx sandbox the lease's TTL after it stops"),
        "{doctor}"
    );

    // 0 would delete a lease the moment it idles: refused before anything is created.
    let before = sim.sandboxes().len();
    let out = home.run(&["warmup", "-o", "auto-delete-minutes=0"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr
            .contains("option auto-delete-minutes must be `ttl` (the lease's TTL), `never`"),
        "{out}"
    );
    assert_eq!(sim.sandboxes().len(), before);
}

// ---------------------------------------------------------------------------------------------
// Owners, list --all, cleanup and stop --reclaim

/// A minimal blocking HTTP/1.1 call to the simulator (for what cbx would not do itself).
fn sim_http(sim: &DaytonaSim, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(sim.addr()).expect("connect to the simulator");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        sim.addr(),
        sim.api_key(),
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("receive");
    let text = String::from_utf8_lossy(&raw);
    let (head, payload) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, serde_json::from_str(payload).unwrap_or(Value::Null))
}

/// Makes the lease on sandbox `id` look created `secs` ago (its TTL of 90m then may be over).
fn age_lease(sim: &DaytonaSim, id: &str, secs: i64) {
    let mut labels = sim.sandbox(id).expect("the sandbox").labels;
    let then = chrono::Utc::now().timestamp() - secs;
    labels.insert("cbx_created_at".into(), then.to_string());
    labels.insert("cbx_expires_at".into(), (then + 5400).to_string());
    let body = serde_json::json!({ "labels": labels });
    let (status, answer) = sim_http(
        sim,
        "PUT",
        &format!("/api/sandbox/{id}/labels"),
        Some(&body),
    );
    assert_eq!(status, 200, "{answer}");
}

/// The entry of lease `lease` in `list --json`.
#[track_caller]
fn entry(list: &Output, lease: &str) -> Option<Value> {
    list.json()
        .as_array()
        .expect("an array")
        .iter()
        .find(|v| v["leaseId"] == lease)
        .cloned()
}

/// The lease ids of `key` (`delete` or `kept`) in `cleanup --json`.
fn ids(report: &Value, key: &str) -> Vec<String> {
    report[key]
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v["leaseId"].as_str().unwrap().to_string())
        .collect()
}

/// The DELETE requests the simulator received, by path.
fn deletes(sim: &DaytonaSim) -> Vec<String> {
    sim.requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path)
        .collect()
}

/// Three leases: `held` (claimed here), `orphan` (made here, claim lost) and `theirs` (another
/// machine's), plus a sandbox without cbx's labels.
struct Scene {
    sim: DaytonaSim,
    home: CbxHome,
    other: CbxHome,
    held: (String, String),
    orphan: (String, String),
    theirs: (String, String),
    foreign: String,
}

fn scene() -> Scene {
    let (sim, home) = setup(fast());
    let other = home_for(&sim);
    let held = warmup(&home, &[]);
    let orphan = warmup(&home, &[]);
    std::fs::remove_file(
        home.state_dir()
            .join("claims")
            .join(format!("{}.json", orphan.0)),
    )
    .unwrap();
    let theirs = warmup(&other, &[]);
    let (status, body) = sim_http(
        &sim,
        "POST",
        "/api/sandbox",
        Some(&serde_json::json!({ "name": "not-cbx", "labels": { "team": "web" } })),
    );
    assert_eq!(status, 200, "{body}");
    let foreign = body["id"].as_str().unwrap().to_string();
    Scene {
        sim,
        home,
        other,
        held,
        orphan,
        theirs,
        foreign,
    }
}

#[test]
fn list_all_shows_owner_age_and_state_of_unclaimed_sandboxes() {
    let s = scene();
    let mine = std::fs::read_to_string(s.home.state_dir().join("owner-id")).unwrap();
    let theirs_id = std::fs::read_to_string(s.other.state_dir().join("owner-id")).unwrap();
    assert_ne!(mine, theirs_id, "each home has its own owner id");
    assert_eq!(
        s.sim.sandbox(&s.theirs.1).unwrap().labels["cbx_owner"],
        theirs_id.trim()
    );

    // Without --all: only what this machine holds, and a note about the rest.
    let list = s.home.run(&["list", "--json"]);
    list.ok();
    assert!(entry(&list, &s.held.0).is_some(), "{list}");
    assert!(entry(&list, &s.orphan.0).is_none(), "{list}");
    assert!(entry(&list, &s.theirs.0).is_none(), "{list}");
    assert!(
        list.stderr
            .contains("note: 2 more cbx sandboxes of daytona without a claim here"),
        "{list}"
    );
    assert!(
        list.stderr.contains("`cbx list --all` shows them"),
        "{list}"
    );

    let all = s.home.run(&["list", "--all", "--json"]);
    all.ok();
    let held = entry(&all, &s.held.0).expect("held");
    assert_eq!(held["owner"], "this-machine");
    assert_eq!(held["claimed"], true);
    let orphan = entry(&all, &s.orphan.0).expect("orphan");
    assert_eq!(orphan["owner"], "this-machine");
    assert_eq!(orphan["claimed"], false);
    assert_eq!(orphan["state"], "ready");
    let theirs = entry(&all, &s.theirs.0).expect("theirs");
    assert_eq!(theirs["owner"], "another");
    assert_eq!(theirs["claimed"], false);
    assert!(theirs["ageSecs"].as_u64().unwrap() < 300, "{all}");
    assert!(!all.stdout.contains(&s.foreign), "{all}");

    let human = s.home.run(&["list", "--all"]);
    human.ok();
    let line = |lease: &str| {
        human
            .stdout
            .lines()
            .find(|l| l.starts_with(lease))
            .unwrap_or_else(|| panic!("no line for {lease}\n{human}"))
            .to_string()
    };
    assert!(human.stdout.starts_with("LEASE"), "{human}");
    assert!(
        human.stdout.lines().next().unwrap().contains("AGE"),
        "{human}"
    );
    assert!(line(&s.held.0).contains("claimed here"), "{human}");
    assert!(line(&s.orphan.0).contains("this machine"), "{human}");
    assert!(line(&s.theirs.0).contains("another"), "{human}");
    assert!(line(&s.theirs.0).contains("ready"), "{human}");
    assert!(deletes(&s.sim).is_empty());
}

#[test]
fn dry_run_refusal_real_run_and_any_owner() {
    let s = scene();
    // A lease of the other machine whose TTL (90m) is long over.
    let expired = warmup(&s.other, &[]);
    age_lease(&s.sim, &expired.1, 3 * 3600);

    let dry = s.home.run(&["cleanup", "--dry-run", "--json"]);
    dry.ok();
    let report = dry.json();
    assert_eq!(report["dryRun"], true);
    let mut going = ids(&report, "delete");
    going.sort();
    let mut want = vec![s.orphan.0.clone(), expired.0.clone()];
    want.sort();
    assert_eq!(going, want, "{dry}");
    for r in report["delete"].as_array().unwrap() {
        assert_eq!(r["outcome"], "would-delete");
        let reason = if r["leaseId"] == s.orphan.0 {
            "orphaned"
        } else {
            "expired"
        };
        assert_eq!(r["reason"], reason, "{dry}");
    }
    let kept = ids(&report, "kept");
    assert!(
        kept.contains(&s.held.0) && kept.contains(&s.theirs.0),
        "{dry}"
    );
    let why = |lease: &str| {
        report["kept"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["leaseId"] == lease)
            .unwrap()["why"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(why(&s.held.0).contains("held here"), "{dry}");
    assert!(why(&s.theirs.0).contains("--any-owner deletes it"), "{dry}");

    // --older-than: only the old one.
    let old = s
        .home
        .run(&["cleanup", "--dry-run", "--json", "--older-than", "2h"]);
    old.ok();
    assert_eq!(
        ids(&old.json(), "delete"),
        std::slice::from_ref(&expired.0),
        "{old}"
    );
    let bad = s
        .home
        .run(&["cleanup", "--dry-run", "--older-than", "soon"]);
    assert_eq!(bad.code, 2, "{bad}");
    assert!(bad.stderr.contains("(from --older-than)"), "{bad}");

    // Human dry run: the table, on stdout; nothing deleted.
    let human = s.home.run(&["cleanup", "--dry-run"]);
    human.ok();
    assert!(
        human.stderr.contains("would delete 2 cbx sandboxes"),
        "{human}"
    );
    assert!(human.stdout.contains("REASON"), "{human}");
    assert!(human.stdout.contains("orphaned"), "{human}");
    assert!(deletes(&s.sim).is_empty(), "a dry run deleted something");

    // Without --yes and without a terminal: refused, nothing deleted.
    let refused = s.home.run(&["cleanup"]);
    assert_eq!(refused.code, 2, "{refused}");
    assert!(
        refused
            .stderr
            .contains("stdin is not a terminal; nothing was deleted"),
        "{refused}"
    );
    assert!(refused.stderr.contains("rerun with --yes"), "{refused}");
    assert!(deletes(&s.sim).is_empty());

    let real = s.home.run(&["cleanup", "--yes", "--json"]);
    real.ok();
    let report = real.json();
    assert_eq!(report["dryRun"], false);
    assert!(
        report["delete"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["outcome"] == "deleted"),
        "{real}"
    );
    assert_gone(&s.sim, &s.orphan.1);
    assert_gone(&s.sim, &expired.1);
    for id in [&s.held.1, &s.theirs.1, &s.foreign] {
        assert!(s.sim.sandbox(id).is_some(), "{id} was deleted");
    }

    // --any-owner, asked for explicitly: the other machine's lease goes; what is held here and
    // what is not cbx's stay.
    let any = s.home.run(&["cleanup", "--any-owner", "--yes"]);
    any.ok();
    assert!(
        any.stdout.contains(&format!("deleted {}", s.theirs.0)),
        "{any}"
    );
    assert_gone(&s.sim, &s.theirs.1);
    assert!(s.sim.sandbox(&s.held.1).is_some());
    assert!(s.sim.sandbox(&s.foreign).is_some());
    let paths = deletes(&s.sim);
    assert!(!paths.iter().any(|p| p.contains(&s.foreign)), "{paths:?}");
    assert!(!paths.iter().any(|p| p.contains(&s.held.1)), "{paths:?}");

    // The other machine sees its lease gone and drops the claim.
    let theirs = s.other.run(&["list"]);
    theirs.ok();
    assert!(
        theirs.stderr.contains("is claimed here but its sandbox"),
        "{theirs}"
    );
    let nothing = s.home.run(&["cleanup", "--yes"]);
    nothing.ok();
    assert!(nothing.stderr.contains("nothing to clean up"), "{nothing}");
}

#[test]
fn stop_reclaim_adopts_and_deletes_one() {
    let s = scene();
    // Plain stop refuses another machine's lease and says how to reclaim it.
    let stop = s.home.run(&["stop", &s.theirs.0]);
    assert_eq!(stop.code, 4, "{stop}");
    assert!(stop.stderr.contains("cbx stop --reclaim"), "{stop}");

    let reclaim = s.home.run(&["stop", "--reclaim", &s.theirs.0, "--json"]);
    reclaim.ok();
    let j = reclaim.json();
    assert_eq!(j["leaseId"], s.theirs.0.as_str());
    assert_eq!(j["sandboxId"], s.theirs.1.as_str());
    assert_eq!(j["reclaimedFrom"], "another");
    assert_eq!(j["alreadyGone"], false);
    assert_gone(&s.sim, &s.theirs.1);

    // By slug, this machine's orphan; human output.
    let slug = s.sim.sandbox(&s.orphan.1).unwrap().labels["cbx_slug"].clone();
    let human = s.home.run(&["stop", "--reclaim", &slug]);
    human.ok();
    assert!(
        human
            .stdout
            .contains(&format!("reclaimed and deleted {}", s.orphan.0)),
        "{human}"
    );
    assert!(human.stdout.contains("(made by this machine)"), "{human}");
    assert_gone(&s.sim, &s.orphan.1);

    // A lease held here is stopped as usual; a sandbox without cbx's labels is never touched.
    let held = s.home.run(&["stop", "--reclaim", &s.held.0]);
    held.ok();
    assert!(held.stdout.starts_with("released"), "{held}");
    let foreign = s.home.run(&["stop", "--reclaim", "not-cbx"]);
    assert_eq!(foreign.code, 4, "{foreign}");
    let foreign_id = s.home.run(&["stop", "--reclaim", &s.foreign]);
    assert_eq!(foreign_id.code, 4, "{foreign_id}");
    assert!(s.sim.sandbox(&s.foreign).is_some());
    assert!(!deletes(&s.sim).iter().any(|p| p.contains(&s.foreign)));
}

#[test]
fn never_deletes_what_a_local_command_is_creating() {
    let (sim, home) = setup(fast());
    let resume = home.path().join("resume");
    let child = home
        .command(&["warmup", "--json", "--slug", "busy-bee"])
        .env("CBX_TEST_PAUSE", "acquire:created")
        .env("CBX_TEST_RESUME", &resume)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start warmup");
    let deadline = Instant::now() + Duration::from_secs(30);
    let sandbox = loop {
        if let Some(s) = sim.sandboxes().into_iter().next() {
            break s.id;
        }
        assert!(
            Instant::now() < deadline,
            "warmup never created its sandbox"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // Even with --any-owner, the sandbox a running warmup is creating stays.
    let cleanup = home.run(&["cleanup", "--any-owner", "--yes", "--json"]);
    cleanup.ok();
    let report = cleanup.json();
    assert!(ids(&report, "delete").is_empty(), "{cleanup}");
    assert!(
        report["kept"][0]["why"]
            .as_str()
            .unwrap()
            .contains("`cbx warmup`"),
        "{cleanup}"
    );
    let reclaim = home.run(&["stop", "--reclaim", "busy-bee"]);
    assert_eq!(reclaim.code, 2, "{reclaim}");
    assert!(
        reclaim.stderr.contains("is being created by `cbx warmup`"),
        "{reclaim}"
    );
    assert!(deletes(&sim).is_empty());
    std::fs::write(&resume, "").unwrap();
    let out = child.wait_with_output().expect("warmup ends");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(sim.sandbox(&sandbox).is_some());
}

// ---------------------------------------------------------------------------------------------
// API-key scopes

/// A simulator whose API key has only `scopes`.
fn scoped(scopes: &[&str]) -> SimConfig {
    let mut config = fast();
    config.api_key_permissions = scopes.iter().map(|s| s.to_string()).collect();
    config
}

#[test]
fn doctor_names_missing_scopes_and_warmup_refuses_with_exit_3() {
    let (sim, home) = setup(scoped(&["write:sandboxes"]));
    let doctor = home.run(&["doctor", "--json"]);
    assert_eq!(doctor.code, 3, "{doctor}");
    let check = doctor_check(&doctor, "scopes");
    assert_eq!(check["status"], "fail");
    let detail = check["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(
            "the API key lacks delete:sandboxes: cbx could create sandboxes but not delete them"
        ),
        "{doctor}"
    );
    assert!(
        detail.contains(
            "Fix: create an API key with write:sandboxes and delete:sandboxes in the Daytona \
             dashboard (Keys) and set DAYTONA_API_KEY to it"
        ),
        "{doctor}"
    );
    let human = home.run(&["doctor"]);
    assert_eq!(human.code, 3, "{human}");
    assert!(human.stdout.contains("lacks delete:sandboxes"), "{human}");

    for args in [
        &["warmup"][..],
        &["run", "--no-sync", "--", "true"],
        &["run", "--keep", "--no-sync", "--", "true"],
    ] {
        let out = home.run(args);
        assert_eq!(out.code, 3, "{args:?}\n{out}");
        assert!(
            out.stderr.contains("the API key lacks delete:sandboxes"),
            "{args:?}\n{out}"
        );
        assert!(
            out.stderr.contains("nothing was created"),
            "{args:?}\n{out}"
        );
    }
    assert!(sim.sandboxes().is_empty());
    assert!(
        !sim.requests()
            .iter()
            .any(|r| r.method == "POST" && r.path == "/api/sandbox"),
        "a create was sent"
    );
    let intents = home.state_dir().join("intents");
    let left = std::fs::read_dir(&intents)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(left, 0, "no intent is left behind");
    home.assert_secret_absent(&sim.api_key(), &[&doctor, &human], &[]);
}

#[test]
fn a_key_without_scopes_and_a_full_key() {
    let (_sim, home) = setup(scoped(&[]));
    let doctor = home.run(&["doctor", "--json"]);
    assert_eq!(doctor.code, 3, "{doctor}");
    let detail = doctor_check(&doctor, "scopes")["detail"].clone();
    assert!(
        detail.as_str().unwrap().starts_with(
            "the API key lacks write:sandboxes and delete:sandboxes: cbx cannot create"
        ),
        "{doctor}"
    );
    let (_sim, home) = setup(fast());
    let doctor = home.run(&["doctor", "--json"]);
    doctor.ok();
    let check = doctor_check(&doctor, "scopes");
    assert_eq!(check["status"], "ok");
    assert_eq!(
        check["detail"],
        "the API key has write:sandboxes and delete:sandboxes"
    );
}

#[test]
fn a_key_without_delete_snapshots_warns_in_doctor_and_makes_no_checkpoint() {
    let (sim, home) = setup(scoped(&["write:sandboxes", "delete:sandboxes"]));
    let doctor = home.run(&["doctor", "--json"]);
    doctor.ok();
    let check = doctor_check(&doctor, "scopes");
    assert_eq!(check["status"], "warn", "{doctor}");
    let detail = check["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(
            "the API key has write:sandboxes and delete:sandboxes but lacks delete:snapshots: \
             leases work, but cbx refuses `checkpoint create`"
        ),
        "{doctor}"
    );
    assert!(
        detail.contains("Fix, if you use checkpoints: add delete:snapshots to the API key"),
        "{doctor}"
    );
    home.run(&["warmup", "--slug", "base"]).ok();
    let out = home.run(&["checkpoint", "create", "base", "--name", "deps"]);
    assert_eq!(out.code, 3, "{out}");
    assert!(
        out.stderr.contains("the API key lacks delete:snapshots")
            && out.stderr.contains("nothing was made"),
        "{out}"
    );
    assert!(
        !sim.requests()
            .iter()
            .any(|r| r.method == "POST" && r.path.ends_with("/snapshot")),
        "a snapshot was asked for"
    );
    assert!(sim.snapshot_names().is_empty());
    let intents = home.state_dir().join("intents");
    let left = std::fs::read_dir(&intents)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(left, 0, "no checkpoint intent is left behind\n{out}");
    home.run(&["stop", "base"]).ok();
    home.assert_secret_absent(&sim.api_key(), &[&doctor, &out], &[]);
}

/// Runs `cbx args…` of `home` on a terminal (`script` gives it a pty), typing `answer`.
fn on_terminal(home: &CbxHome, args: &[&str], answer: &str) -> (i32, String) {
    use std::io::Write;
    let base = home.command(args);
    let line = std::iter::once(base.get_program().to_string_lossy().into_owned())
        .chain(args.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"])
        .current_dir(&home.cwd)
        .env_clear()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in base.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let mut child = cmd.spawn().expect("run script(1)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{answer}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("script ends");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn cleanup_asks_on_a_terminal_and_does_what_the_answer_says() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: script(1) is not installed; the cleanup prompt was not tested");
        return;
    }
    let s = scene();
    let (code, text) = on_terminal(&s.home, &["cleanup"], "n");
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("Delete this sandbox? [y/N]"), "{text}");
    assert!(
        text.contains("not confirmed; nothing was deleted"),
        "{text}"
    );
    assert!(deletes(&s.sim).is_empty());
    let (code, text) = on_terminal(&s.home, &["cleanup"], "y");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(&format!("deleted {}", s.orphan.0)), "{text}");
    assert_gone(&s.sim, &s.orphan.1);
    assert!(s.sim.sandbox(&s.theirs.1).is_some());
    assert!(s.sim.sandbox(&s.held.1).is_some());
}

/// A sandbox that fails to start — Daytona's 400 "Sandbox failed to start: …" while create
/// waits, or state `error` seen while cbx waits — is exit 5 with the reason and what to check,
/// and is deleted again: by `warmup` and by a one-shot `run`.
#[test]
fn a_sandbox_that_fails_to_start_is_exit_5_with_the_reason_and_is_deleted() {
    use cbx_testkit::daytona_sim::{FAILING_REASON, FAILING_SNAPSHOT};
    for server_wait in [Duration::from_secs(2), Duration::ZERO] {
        let (sim, mut home) = setup(SimConfig {
            server_wait,
            ..fast()
        });
        home.env("CBX_DAYTONA_SNAPSHOT", FAILING_SNAPSHOT);
        for args in [&["warmup"][..], &["run", "--no-sync", "--", "true"][..]] {
            let out = home.run(args);
            out.expect_code(5);
            assert!(
                out.stderr.contains(&format!(
                    "failed to start (error): {FAILING_REASON}; cbx deleted it again, nothing \
                     is left"
                )),
                "{args:?} (server wait {server_wait:?}): {out}"
            );
            assert!(
                out.stderr.contains("check that the image or snapshot"),
                "{out}"
            );
            for sandbox in sim.sandboxes() {
                assert_gone(&sim, &sandbox.id);
            }
        }
        let out = home.run(&["list", "--all", "--json"]);
        out.ok();
        assert_eq!(out.json(), serde_json::json!([]), "{out}");
    }
}

/// A stopped lease whose sandbox fails to start again — Daytona's 400 "Sandbox failed to
/// start: …" from `/start`, or state `error` seen while cbx waits — is exit 5 with the reason;
/// the lease is kept for `cbx stop`.
#[test]
fn a_lease_whose_sandbox_fails_to_start_again_is_exit_5_and_kept() {
    for server_wait in [Duration::from_secs(2), Duration::ZERO] {
        let (sim, home) = setup(SimConfig {
            server_wait,
            ..fast()
        });
        let (lease, sandbox) = warmup(&home, &[]);
        assert!(sim.set_state(&sandbox, "stopped"));
        assert!(sim.fail_next_start(&sandbox, "runner disk is full"));
        let out = home.run(&["run", "--id", &lease, "--no-sync", "--", "true"]);
        out.expect_code(5);
        assert!(
            out.stderr.contains(&format!(
                "sandbox {sandbox} failed to start (error): runner disk is full"
            )),
            "server wait {server_wait:?}: {out}"
        );
        assert!(out.stderr.contains("`cbx stop LEASE` deletes"), "{out}");
        assert!(
            sim.sandbox(&sandbox).is_some(),
            "the lease's sandbox is kept"
        );
        home.run(&["stop", &lease]).ok();
        assert_gone(&sim, &sandbox);
    }
}
