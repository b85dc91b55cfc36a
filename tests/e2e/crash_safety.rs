//! Nothing lost, whatever happens (issue 11): the real `cbx` binary against the Daytona
//! simulator, broken as an operator would break it. `kill -9` and real SIGTERM/SIGHUP at each
//! point of `warmup` and of a one-shot `run` (cbx pauses at named test points,
//! `CBX_TEST_PAUSE`), answers that are lost or held back after the create happened, a service
//! that stays unavailable, eight parallel commands wanting one slug, `stop` racing `run`,
//! damaged state files, an unusable claims lock and out-of-range durations. After each, the
//! next `cbx list`/`cbx stop` must see and delete whatever was left.
//!
//! The same with real ssh, rsync and sshd (signals while rsync or the command runs, an
//! unusable known_hosts) is in `data_plane.rs`.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cbx_testkit::daytona_sim::{DaytonaSim, Fault, SimConfig};
use cbx_testkit::home::{CbxHome, Output};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Helpers

/// A fast simulator.
pub(super) fn fast() -> SimConfig {
    SimConfig::default().with_delays(Duration::from_millis(100))
}

/// Starts `config` and a home pointed at it.
pub(super) fn setup(config: SimConfig) -> (DaytonaSim, CbxHome) {
    let sim = DaytonaSim::start_background(config).expect("start the simulator");
    let mut home = CbxHome::new(env!("CARGO_BIN_EXE_cbx"));
    home.env("DAYTONA_API_URL", &sim.api_url())
        .env("DAYTONA_API_KEY", &sim.api_key());
    (sim, home)
}

/// A cbx process started in the background, its stderr collected as it comes.
pub(crate) struct Running {
    child: Child,
    stderr: Arc<Mutex<String>>,
    reader: std::thread::JoinHandle<()>,
}

impl Running {
    /// Starts `cbx args…`, pausing at the test points `pause` (comma-separated; none if empty)
    /// until `resume` exists.
    pub(crate) fn start(
        home: &CbxHome,
        args: &[&str],
        pause: &str,
        resume: Option<&Path>,
    ) -> Running {
        let mut cmd = home.command(args);
        if !pause.is_empty() {
            cmd.env("CBX_TEST_PAUSE", pause);
        }
        if let Some(r) = resume {
            cmd.env("CBX_TEST_RESUME", r);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start cbx");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("piped");
        let sink = stderr.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Running {
            child,
            stderr,
            reader,
        }
    }

    /// Waits (up to 60 s) until stderr contains `text`.
    #[track_caller]
    pub(crate) fn wait_for(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.stderr.lock().unwrap().contains(text) {
            assert!(
                Instant::now() < deadline,
                "cbx never printed {text:?}; stderr so far:\n{}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until cbx pauses at `point`.
    #[track_caller]
    pub(crate) fn wait_paused(&self, point: &str) {
        self.wait_for(&format!("cbx-test: paused at {point} "));
    }

    /// Sends `signal` (`TERM`, `KILL`, `HUP`, `INT`) to the process.
    pub(crate) fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the process (at most 120 s) and returns what it printed; a process killed by
    /// a signal exits 128 + the signal.
    #[track_caller]
    pub(crate) fn finish(mut self) -> Output {
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for cbx") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("cbx did not end; stderr:\n{}", self.stderr.lock().unwrap());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            out.read_to_string(&mut stdout).expect("read stdout");
        }
        self.reader.join().expect("stderr reader");
        let stderr = self.stderr.lock().unwrap().clone();
        Output {
            code: status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
            stdout,
            stderr,
        }
    }
}

/// The `*.json` files in `<state>/<dir>`.
pub(crate) fn records(home: &CbxHome, dir: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(home.state_dir().join(dir)) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect()
}

/// The sandboxes that are neither gone nor being deleted.
pub(crate) fn live(sim: &DaytonaSim) -> Vec<String> {
    sim.sandboxes()
        .into_iter()
        .filter(|s| s.state != "destroying" && !s.name.starts_with("DESTROYED_"))
        .map(|s| s.name)
        .collect()
}

/// Waits (bounded) until no sandbox is left alive.
#[track_caller]
pub(crate) fn assert_none_live(sim: &DaytonaSim) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = live(sim);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "sandboxes left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The elements of `list --json` with `state == want` (or every element for `None`).
fn listed(list: &Output, want: Option<&str>) -> Vec<Value> {
    list.json()
        .as_array()
        .expect("list --json is an array")
        .iter()
        .filter(|v| want.is_none_or(|w| v["state"] == w))
        .cloned()
        .collect()
}

/// The elements of `list --json` that are unfinished: on their own (state `unfinished`) or
/// attached to the lease the provider already lists.
fn unfinished(list: &Output) -> Vec<Value> {
    listed(list, None)
        .into_iter()
        .filter(|v| v.get("unfinished").is_some())
        .collect()
}

/// The lease id in a sandbox name `cbx-<slug>-<12 hex>`.
fn lease_of(name: &str) -> String {
    format!("cbx_{}", &name[name.len() - 12..])
}

/// How many creates reached the service.
pub(crate) fn creates(sim: &DaytonaSim) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/api/sandbox")
        .count()
}

/// Every point of lease creation where cbx can be killed, in order. `create-in-flight` is not
/// a test point: the simulator applies the create at once and holds its answer back.
const ACQUIRE_POINTS: &[&str] = &[
    "acquire:recorded",
    "create-in-flight",
    "acquire:created",
    "acquire:claimed",
    "acquire:ready",
];

/// Starts `args` and brings it to `point`.
fn start_at(sim: &DaytonaSim, home: &CbxHome, args: &[&str], point: &str) -> Running {
    if point == "create-in-flight" {
        // A new sandbox, not a change in the count: a previous case's deleted sandbox
        // disappearing meanwhile would otherwise send the signal before the create.
        let before: Vec<String> = sim.sandboxes().into_iter().map(|s| s.id).collect();
        let created = || sim.sandboxes().iter().any(|s| !before.contains(&s.id));
        sim.inject(Fault::delayed_answer(
            "POST",
            "/api/sandbox",
            Duration::from_secs(60),
        ));
        let running = Running::start(home, args, "", None);
        // Bounded generously: a first command compiles the provider, which on a loaded CI
        // machine with a debug build can take tens of seconds.
        let deadline = Instant::now() + Duration::from_secs(120);
        while !created() {
            assert!(
                Instant::now() < deadline,
                "the create never arrived; cbx's stderr so far:\n{}",
                running.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        return running;
    }
    let running = Running::start(home, args, point, None);
    running.wait_paused(point);
    running
}

// ---------------------------------------------------------------------------------------------
// kill -9 and signals at every point of warmup and one-shot run

#[test]
fn warmup_killed_at_any_point_is_adopted_or_cleaned_by_the_next_command() {
    let (sim, home) = setup(fast());
    for point in ACQUIRE_POINTS {
        let running = start_at(&sim, &home, &["warmup"], point);
        running.signal("KILL");
        let out = running.finish();
        assert_eq!(out.code, 137, "{point}\n{out}");
        sim.clear_faults();
        // The record is there, and list shows it until it is finished.
        assert_eq!(records(&home, "intents").len(), 1, "{point}");

        let list = home.run(&["list", "--json"]);
        list.ok();
        assert!(records(&home, "intents").is_empty(), "{point}: {list}");
        let leases = listed(&list, None);
        if *point == "acquire:recorded" {
            // Killed before the create: nothing to adopt.
            assert!(leases.is_empty(), "{point}: {list}");
            assert!(
                list.stderr.contains("had left no sandbox"),
                "{point}: {list}"
            );
            assert!(live(&sim).is_empty(), "{point}");
            continue;
        }
        // Created: the next command makes it the lease it was meant to be.
        assert_eq!(leases.len(), 1, "{point}: {list}");
        assert_eq!(leases[0]["claimed"], true, "{point}: {list}");
        let lease = leases[0]["leaseId"].as_str().unwrap().to_string();
        assert!(
            list.stderr.contains(&format!("finished lease {lease}")),
            "{point}: {list}"
        );
        let stop = home.run(&["stop", &lease]);
        stop.ok();
        assert_none_live(&sim);
        assert!(records(&home, "claims").is_empty(), "{point}");
    }
}

#[test]
fn one_shot_run_killed_at_any_point_is_deleted_by_the_next_command() {
    let (sim, home) = setup(fast());
    let mut points: Vec<&str> = ACQUIRE_POINTS.to_vec();
    points.push("run:touched");
    for point in points {
        let running = start_at(&sim, &home, &["run", "--no-sync", "--", "true"], point);
        running.signal("KILL");
        assert_eq!(running.finish().code, 137, "{point}");
        sim.clear_faults();
        assert_eq!(records(&home, "intents").len(), 1, "{point}");

        let list = home.run(&["list"]);
        list.ok();
        if point == "acquire:recorded" {
            assert!(
                list.stderr.contains("had left no sandbox"),
                "{point}: {list}"
            );
        } else {
            assert!(
                list.stderr.contains("deleted sandbox") && list.stderr.contains("`cbx run`"),
                "{point}: {list}"
            );
        }
        assert!(list.stdout.is_empty(), "{point}: {list}");
        assert!(records(&home, "intents").is_empty(), "{point}");
        assert!(records(&home, "claims").is_empty(), "{point}");
        assert_none_live(&sim);
    }
}

#[test]
fn sigterm_at_any_point_of_warmup_or_one_shot_run_deletes_what_was_created() {
    let (sim, home) = setup(fast());
    let mut cases: Vec<(&[&str], &str, &str)> = Vec::new();
    for point in ACQUIRE_POINTS {
        cases.push((&["warmup"][..], point, "TERM"));
        cases.push((&["run", "--no-sync", "--", "true"][..], point, "TERM"));
    }
    cases.push((
        &["run", "--no-sync", "--", "true"][..],
        "run:touched",
        "TERM",
    ));
    cases.push((&["warmup"][..], "acquire:claimed", "HUP"));
    cases.push((
        &["run", "--no-sync", "--", "true"][..],
        "run:touched",
        "HUP",
    ));
    cases.push((&["warmup"][..], "acquire:created", "INT"));
    for (args, point, signal) in cases {
        let running = start_at(&sim, &home, args, point);
        running.signal(signal);
        let out = running.finish();
        sim.clear_faults();
        let code = match signal {
            "TERM" => 143,
            "HUP" => 129,
            _ => 130,
        };
        assert_eq!(out.code, code, "{args:?} at {point}\n{out}");
        assert!(
            out.stderr.contains(&format!("SIG{signal}")),
            "{args:?} at {point}\n{out}"
        );
        let said = if point == "acquire:recorded" {
            "nothing was left behind"
        } else if point.starts_with("acquire:") || point == "create-in-flight" {
            "nothing is left"
        } else {
            "released"
        };
        assert!(out.stderr.contains(said), "{args:?} at {point}\n{out}");
        assert!(records(&home, "intents").is_empty(), "{point}: {out}");
        assert!(records(&home, "claims").is_empty(), "{point}: {out}");
        assert_none_live(&sim);
    }
}

#[test]
fn a_second_signal_during_the_clean_up_keeps_the_record_for_the_next_command() {
    let (sim, home) = setup(fast());
    let cases: [(&[&str], &str, &str); 2] = [
        (&["warmup"], "acquire:claimed", "acquire:rolling-back"),
        (
            &["run", "--no-sync", "--", "true"],
            "run:touched",
            "run:releasing",
        ),
    ];
    for (args, first, cleaning) in cases {
        let running = Running::start(&home, args, &format!("{first},{cleaning}"), None);
        running.wait_paused(first);
        running.signal("TERM");
        running.wait_paused(cleaning);
        running.signal("TERM");
        let out = running.finish();
        assert_eq!(out.code, 143, "{args:?}\n{out}");
        assert!(out.stderr.contains("keeps its record"), "{out}");
        assert!(out.stderr.contains("the next cbx command"), "{out}");
        let intents = records(&home, "intents");
        assert_eq!(intents.len(), 1, "{out}");
        let intent: Value = serde_json::from_slice(&std::fs::read(&intents[0]).unwrap()).unwrap();
        assert_eq!(intent["settle"], "delete", "a clean-up under way deletes");
        assert_eq!(
            live(&sim).len(),
            1,
            "the abandoned clean-up left the sandbox"
        );

        let list = home.run(&["list", "--json"]);
        list.ok();
        assert!(list.stderr.contains("deleted sandbox"), "{list}");
        assert!(listed(&list, None).is_empty(), "{list}");
        assert!(records(&home, "intents").is_empty());
        assert!(records(&home, "claims").is_empty());
        assert_none_live(&sim);
    }
}

// ---------------------------------------------------------------------------------------------
// Lost answers and a service that stays unavailable

#[test]
fn a_create_applied_but_answered_504_with_the_service_down_is_named_and_retried() {
    let (sim, home) = setup(fast());
    sim.inject(Fault::applied_then_status(
        "POST",
        "/api/sandbox",
        504,
        "Gateway Timeout",
    ));
    sim.inject(Fault::status("GET", "/api/sandbox/cbx-", 503, "Service Unavailable").with_times(5));
    let out = home.run(&["warmup", "--slug", "flaky"]);
    assert_eq!(out.code, 1, "{out}");
    let names = live(&sim);
    assert_eq!(names.len(), 1, "the create happened: {names:?}");
    let name = &names[0];
    assert!(out.stderr.contains("Gateway Timeout"), "{out}");
    assert!(out.stderr.contains(&format!("sandbox {name}")), "{out}");
    assert!(out.stderr.contains("next cbx command will retry"), "{out}");
    assert!(out.stderr.contains("hint: run `cbx list`"), "{out}");
    assert_eq!(records(&home, "intents").len(), 1);

    // The service is back: the next command finds the sandbox by its name and deletes it.
    let list = home.run(&["list", "--json"]);
    list.ok();
    assert!(
        list.stderr.contains(&format!(
            "deleted sandbox {}",
            sim.sandbox(name).map(|s| s.id).unwrap_or_default()
        )),
        "{list}"
    );
    assert!(listed(&list, None).is_empty(), "{list}");
    assert!(records(&home, "intents").is_empty());
    assert_none_live(&sim);
    assert!(!out.stderr.contains(&sim.api_key()));
}

#[test]
fn while_the_service_stays_down_every_command_keeps_the_record_and_says_so() {
    let (sim, home) = setup(fast());
    let running = start_at(
        &sim,
        &home,
        &["run", "--no-sync", "--", "true"],
        "acquire:created",
    );
    running.signal("KILL");
    running.finish();
    let name = live(&sim).pop().expect("a sandbox");
    // Every lookup fails for a while (five attempts per command): `list` and `list --json`
    // say so, keep the record and show it; so does the start of `stop`, whose own try works.
    sim.inject(Fault::status("GET", "/api/sandbox/", 503, "Service Unavailable").with_times(15));
    let list = home.run(&["list", "--json"]);
    list.ok();
    assert!(
        list.stderr.contains("next cbx command will retry"),
        "{list}"
    );
    let unfinished = unfinished(&list);
    assert_eq!(unfinished.len(), 1, "{list}");
    assert_eq!(unfinished[0]["leaseId"], lease_of(&name));
    assert_eq!(unfinished[0]["sandboxName"], name.as_str());
    assert_eq!(
        unfinished[0]["claimed"], false,
        "never claimed: killed before"
    );
    assert_eq!(unfinished[0]["unfinished"]["command"], "run");
    assert_eq!(unfinished[0]["unfinished"]["running"], false);
    assert_eq!(unfinished[0]["unfinished"]["then"], "delete");
    let human = home.run(&["list"]);
    human.ok();
    assert!(human.stdout.contains(&lease_of(&name)), "{human}");
    assert!(
        human.stderr.contains(&format!(
            "note: lease {} was being created by `cbx run`",
            lease_of(&name)
        )),
        "{human}"
    );
    assert_eq!(records(&home, "intents").len(), 1);

    // `cbx stop` works on it, once the service answers.
    let stop = home.run(&["stop", &lease_of(&name)]);
    stop.ok();
    assert!(
        stop.stdout
            .contains(&format!("released {}", lease_of(&name))),
        "{stop}"
    );
    assert!(records(&home, "intents").is_empty());
    assert_none_live(&sim);
}

#[test]
fn a_one_shot_sandbox_that_cannot_be_deleted_stays_on_record_until_the_next_command() {
    let (sim, home) = setup(fast());
    let running = start_at(
        &sim,
        &home,
        &["run", "--no-sync", "--", "true"],
        "run:touched",
    );
    // The release cannot delete: every attempt is answered 503.
    sim.inject(Fault::status("DELETE", "/api/sandbox/", 503, "Service Unavailable").with_times(5));
    running.signal("TERM");
    let out = running.finish();
    assert_eq!(out.code, 143, "{out}");
    let name = live(&sim).pop().expect("the sandbox is still there");
    assert!(
        out.stderr
            .contains(&format!("could not clean up sandbox {name}")),
        "{out}"
    );
    assert!(out.stderr.contains("next cbx command will retry"), "{out}");
    assert_eq!(records(&home, "intents").len(), 1, "{out}");

    let list = home.run(&["list", "--json"]);
    list.ok();
    assert!(list.stderr.contains("deleted sandbox"), "{list}");
    assert!(listed(&list, None).is_empty(), "{list}");
    assert!(records(&home, "intents").is_empty());
    assert!(records(&home, "claims").is_empty());
    assert_none_live(&sim);
}

#[test]
fn a_lost_create_answer_is_found_by_name_and_rolled_back() {
    let (sim, home) = setup(fast());
    sim.inject(Fault::applied_then_lost("POST", "/api/sandbox"));
    let out = home.run(&["warmup", "--slug", "lost"]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("nothing is left"), "{out}");
    assert!(records(&home, "intents").is_empty(), "{out}");
    assert!(records(&home, "claims").is_empty(), "{out}");
    assert_none_live(&sim);
    // The slug is free again.
    home.run(&["warmup", "--slug", "lost"]).ok();
}

#[test]
fn a_refused_create_leaves_no_record_and_asks_nothing_more() {
    let (sim, home) = setup(fast());
    sim.inject(Fault::status("POST", "/api/sandbox", 403, "Forbidden"));
    let out = home.run(&["warmup"]);
    assert_eq!(out.code, 3, "{out}");
    assert!(records(&home, "intents").is_empty(), "{out}");
    assert!(
        !sim.requests()
            .iter()
            .any(|r| r.path.starts_with("/api/sandbox/cbx-")),
        "a refused create is not looked up"
    );
}

// ---------------------------------------------------------------------------------------------
// Claims are transactions

#[test]
fn eight_parallel_warmups_for_one_slug_make_one_lease() {
    let (sim, home) = setup(fast());
    let runs: Vec<Running> = (0..8)
        .map(|_| Running::start(&home, &["warmup", "--slug", "same", "--json"], "", None))
        .collect();
    let outs: Vec<Output> = runs.into_iter().map(Running::finish).collect();
    let won: Vec<&Output> = outs.iter().filter(|o| o.code == 0).collect();
    assert_eq!(won.len(), 1, "{outs:#?}");
    for lost in outs.iter().filter(|o| o.code != 0) {
        assert_eq!(lost.code, 2, "{lost}");
        assert!(lost.stderr.contains("slug `same` is in use"), "{lost}");
        assert!(lost.stderr.contains("nothing was created"), "{lost}");
    }
    assert_eq!(creates(&sim), 1, "only the winner created anything");
    assert_eq!(live(&sim).len(), 1);
    let status = home.run(&["status", "same", "--json"]);
    status.ok();
    assert_eq!(status.json()["leaseId"], won[0].json()["leaseId"]);
}

#[test]
fn stop_wins_over_a_racing_run_which_recreates_nothing() {
    let (sim, home) = setup(fast());
    for point in ["run:resolved", "run:touched"] {
        let lease = home.run(&["warmup", "--slug", "raced", "--json"]);
        lease.ok();
        let id = lease.json()["leaseId"].as_str().unwrap().to_string();
        let resume = home
            .path()
            .join(format!("resume-{}", point.replace(':', "-")));
        let run = Running::start(
            &home,
            &["run", "--id", "raced", "--no-sync", "--", "true"],
            point,
            Some(&resume),
        );
        run.wait_paused(point);
        home.run(&["stop", "raced"]).ok();
        let minted_before = sim
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/ssh-access"))
            .count();
        std::fs::write(&resume, "").unwrap();
        let out = run.finish();
        assert_eq!(out.code, 4, "{point}\n{out}");
        assert!(
            out.stderr.contains(&format!(
                "lease {id} was stopped while this command was using it"
            )),
            "{point}\n{out}"
        );
        let state = home.state_dir();
        assert!(
            !state.join("claims").join(format!("{id}.json")).exists(),
            "{point}"
        );
        assert!(
            !state.join("secrets").join(&id).exists(),
            "{point}: secrets resurrected"
        );
        assert!(
            !state.join("sync").join(format!("{id}.json")).exists(),
            "{point}"
        );
        let minted_after = sim
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/ssh-access"))
            .count();
        assert_eq!(
            minted_before, minted_after,
            "{point}: no access minted after the stop"
        );
        let list = home.run(&["list", "--json"]);
        list.ok();
        assert!(listed(&list, None).is_empty(), "{point}: {list}");
        assert_none_live(&sim);
    }
    // The slug is free again.
    home.run(&["warmup", "--slug", "raced"]).ok();
}

#[test]
fn stop_refuses_a_lease_still_being_created_and_deletes_it_once_its_process_is_gone() {
    let (sim, home) = setup(fast());
    // Before the create: list shows the lease as unfinished, with no sandbox yet.
    let early = start_at(
        &sim,
        &home,
        &["warmup", "--slug", "early"],
        "acquire:recorded",
    );
    let list = home.run(&["list", "--json"]);
    list.ok();
    let entries = listed(&list, Some("unfinished"));
    assert_eq!(entries.len(), 1, "{list}");
    assert_eq!(entries[0]["slug"], "early");
    assert_eq!(entries[0]["sandboxId"], Value::Null);
    assert_eq!(entries[0]["unfinished"]["command"], "warmup");
    assert_eq!(entries[0]["unfinished"]["pid"], early.child.id());
    let human = home.run(&["list"]);
    human.ok();
    assert!(
        human
            .stdout
            .lines()
            .any(|l| l.contains("early") && l.contains("unfinished")),
        "{human}"
    );
    assert!(
        human.stderr.contains("is being created by `cbx warmup`"),
        "{human}"
    );
    early.signal("KILL");
    early.finish();

    let running = start_at(
        &sim,
        &home,
        &["warmup", "--slug", "busy"],
        "acquire:created",
    );
    let stop = home.run(&["stop", "busy"]);
    assert_eq!(stop.code, 1, "{stop}");
    assert!(
        stop.stderr
            .contains("is still being created by `cbx warmup`"),
        "{stop}"
    );
    assert!(
        stop.stderr.contains(&format!("pid {}", running.child.id())),
        "{stop}"
    );
    assert_eq!(live(&sim).len(), 1, "the live warmup was not disturbed");
    let list = home.run(&["list", "--json"]);
    list.ok();
    let unfinished = unfinished(&list);
    assert_eq!(unfinished.len(), 1, "{list}");
    assert_eq!(unfinished[0]["slug"], "busy");
    assert_eq!(unfinished[0]["unfinished"]["running"], true);
    assert_eq!(unfinished[0]["unfinished"]["then"], "adopt");
    running.signal("KILL");
    running.finish();
    let stop = home.run(&["stop", "busy"]);
    stop.ok();
    assert!(stop.stdout.contains("released"), "{stop}");
    assert!(records(&home, "intents").is_empty());
    assert_none_live(&sim);
}

// ---------------------------------------------------------------------------------------------
// Damage is contained

#[test]
fn damaged_state_affects_only_its_own_lease() {
    let (sim, home) = setup(fast());
    let good = home.run(&["warmup", "--slug", "good", "--json"]);
    good.ok();
    let good_id = good.json()["leaseId"].as_str().unwrap().to_string();
    let claims = home.state_dir().join("claims");
    let intents = home.state_dir().join("intents");
    std::fs::create_dir_all(&intents).unwrap();
    let bad_claim = claims.join("cbx_0123456789ab.json");
    let bad_intent = intents.join("cbx_0123456789ac.json");
    std::fs::write(&bad_claim, "{\"version\": 1, \"leaseId\": ").unwrap();
    std::fs::write(&bad_intent, "not json").unwrap();

    let list = home.run(&["list", "--json"]);
    list.ok();
    let leases = listed(&list, Some("ready"));
    assert_eq!(leases.len(), 1, "{list}");
    assert_eq!(leases[0]["leaseId"], good_id.as_str());
    let damaged = listed(&list, Some("damaged"));
    assert_eq!(damaged.len(), 2, "{list}");
    for d in &damaged {
        let hint = d["damaged"]["hint"].as_str().unwrap();
        assert!(hint.contains("cbx list --json"), "{hint}");
        assert!(hint.contains(".damaged"), "{hint}");
        for unsafe_advice in ["rm ", "remove it", "delete it if", "delete the file"] {
            assert!(!hint.contains(unsafe_advice), "{hint}");
        }
    }
    let files: Vec<&str> = damaged
        .iter()
        .map(|d| d["damaged"]["file"].as_str().unwrap())
        .collect();
    assert!(files.contains(&bad_claim.to_str().unwrap()), "{files:?}");
    assert!(files.contains(&bad_intent.to_str().unwrap()), "{files:?}");
    let human = home.run(&["list"]);
    human.ok();
    assert!(human.stdout.contains(&good_id), "{human}");
    assert!(
        human.stderr.contains(&format!(
            "the claim file {} is damaged",
            bad_claim.display()
        )),
        "{human}"
    );
    assert!(
        human
            .stderr
            .contains("hint: cbx skips lease cbx_0123456789ab"),
        "{human}"
    );

    // Every other lease keeps working.
    home.run(&["status", "good"]).ok();
    let other = home.run(&["warmup", "--slug", "other"]);
    other.ok();
    home.run(&["stop", "other"]).ok();
    // The damaged one is named when asked for.
    let status = home.run(&["status", "cbx_0123456789ab"]);
    assert_eq!(status.code, 1, "{status}");
    assert!(status.stderr.contains("is damaged"), "{status}");
    assert!(
        status
            .stderr
            .contains("hint: cbx skips lease cbx_0123456789ab"),
        "{status}"
    );
    home.run(&["stop", "good"]).ok();
    assert!(
        bad_claim.exists() && bad_intent.exists(),
        "cbx never removes them itself"
    );
    assert_none_live(&sim);
}

#[test]
fn an_unusable_claims_lock_fails_before_anything_is_created() {
    let (sim, home) = setup(fast());
    let lock = home.state_dir().join("claims/.lock");
    std::fs::create_dir_all(&lock).unwrap();
    for args in [&["warmup"][..], &["run", "--no-sync", "--", "true"][..]] {
        let out = home.run(args);
        assert_eq!(out.code, 1, "{out}");
        assert!(
            out.stderr
                .contains(&format!("cannot lock cbx's claims ({})", lock.display())),
            "{out}"
        );
        assert!(out.stderr.contains("move it aside"), "{out}");
    }
    assert_eq!(creates(&sim), 0, "nothing was created");
    assert!(records(&home, "intents").is_empty());
}

#[test]
fn an_error_after_a_successful_roll_back_says_nothing_is_left() {
    let (sim, home) = setup(fast());
    let resume = home.path().join("resume");
    let running = Running::start(&home, &["warmup"], "acquire:created", Some(&resume));
    running.wait_paused("acquire:created");
    // The claims lock becomes unusable after the create: the claim cannot be written.
    let lock = home.state_dir().join("claims/.lock");
    let _ = std::fs::remove_file(&lock);
    std::fs::create_dir_all(&lock).unwrap();
    std::fs::write(&resume, "").unwrap();
    let out = running.finish();
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("cannot lock cbx's claims"), "{out}");
    assert!(out.stderr.contains("again, nothing is left"), "{out}");
    assert!(!out.stderr.contains("could not delete"), "{out}");
    assert!(!out.stderr.contains("may still"), "{out}");
    assert!(!out.stderr.contains("cbx stop"), "{out}");
    assert!(records(&home, "intents").is_empty(), "{out}");
    assert_none_live(&sim);
}

#[test]
fn claim_files_of_the_previous_cbx_still_work() {
    let (sim, home) = setup(fast());
    let out = home.run(&["warmup", "--slug", "old", "--json"]);
    out.ok();
    let id = out.json()["leaseId"].as_str().unwrap().to_string();
    let path = home.state_dir().join("claims").join(format!("{id}.json"));
    let mut claim: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(claim["generation"], 1);
    // As the previous cbx wrote it: no generation.
    claim.as_object_mut().unwrap().remove("generation");
    std::fs::write(&path, serde_json::to_vec_pretty(&claim).unwrap()).unwrap();
    let status = home.run(&["status", "old", "--json"]);
    status.ok();
    assert_eq!(status.json()["claimed"], true);
    home.run(&["stop", "old"]).ok();
    assert_none_live(&sim);
}

// ---------------------------------------------------------------------------------------------
// Durations

#[test]
fn out_of_range_durations_are_refused_before_any_request() {
    let (sim, mut home) = setup(fast());
    let flags: &[(&[&str], &str)] = &[
        (&["warmup", "--ttl", "300000y"], "between 1m and 365d"),
        (
            &["warmup", "--ttl", "18446744073709551615s"],
            "between 1m and 365d",
        ),
        (&["warmup", "--ttl", "30s"], "between 1m and 365d"),
        (
            &["warmup", "--idle-timeout", "99999999999m"],
            "between 0s (never) and 365d",
        ),
        (&["warmup", "--ready-timeout", "0s"], "between 1s and 24h"),
        (
            &["warmup", "--ready-timeout", "1000h"],
            "between 1s and 24h",
        ),
        (
            &["run", "--ttl", "300000y", "--no-sync", "--", "true"],
            "between 1m and 365d",
        ),
        (
            &[
                "run",
                "--id",
                "x",
                "--ready-timeout",
                "99999d",
                "--",
                "true",
            ],
            "between 1s and 24h",
        ),
        (
            &[
                "--provider",
                "daytona",
                "providers",
                "test",
                "--timeout",
                "100000h",
            ],
            "between 1s and 24h",
        ),
    ];
    for (args, range) in flags {
        let out = home.run(args);
        assert_eq!(out.code, 2, "{args:?}\n{out}");
        assert!(out.stderr.contains("is out of range"), "{args:?}\n{out}");
        assert!(out.stderr.contains(range), "{args:?}\n{out}");
        assert!(out.stderr.contains("(from --"), "{args:?}\n{out}");
    }
    for (var, value, range) in [
        ("CBX_TTL", "300000y", "between 1m and 365d"),
        (
            "CBX_IDLE_TIMEOUT",
            "99999999999m",
            "between 0s (never) and 365d",
        ),
        ("CBX_READY_TIMEOUT", "0s", "between 1s and 24h"),
    ] {
        home.env(var, value);
        for args in [&["warmup"][..], &["ssh", "x"][..]] {
            let out = home.run(args);
            assert_eq!(out.code, 2, "{var} {args:?}\n{out}");
            assert!(
                out.stderr.contains(&format!(
                    "(from environment variable {var}) is out of range"
                )),
                "{out}"
            );
            assert!(out.stderr.contains(range), "{out}");
        }
        home.unset(var);
    }
    home.git(&["init", "-q"]);
    for (key, value, range) in [
        ("ttl", "300000y", "between 1m and 365d"),
        (
            "idle-timeout",
            "99999999999m",
            "between 0s (never) and 365d",
        ),
        ("ready-timeout", "25h", "between 1s and 24h"),
    ] {
        let line = format!("[lease]\n{key} = \"{value}\"\n");
        home.write_config(&line);
        let out = home.run(&["warmup"]);
        assert_eq!(out.code, 2, "{key}\n{out}");
        assert!(out.stderr.contains("config.toml:2:"), "{out}");
        assert!(
            out.stderr
                .contains(&format!("lease.{key}: `{value}` is out of range")),
            "{out}"
        );
        assert!(out.stderr.contains(range), "{out}");
        home.write_config("");
        home.write_file("cbx.toml", &line);
        let out = home.run(&["warmup"]);
        assert_eq!(out.code, 2, "{key}\n{out}");
        assert!(out.stderr.contains("cbx.toml:2:"), "{out}");
        assert!(out.stderr.contains(range), "{out}");
        std::fs::remove_file(home.cwd.join("cbx.toml")).unwrap();
    }
    // A provider's own maximum: Daytona keeps intervals as 32-bit signed minutes.
    let out = home.run(&["warmup", "-o", "auto-archive-minutes=2147483648"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("up to 2147483647"), "{out}");
    assert!(
        sim.requests().is_empty(),
        "nothing was asked of the service"
    );

    // The largest values are taken, sent as they are, and give a real expiry.
    let out = home.run(&[
        "warmup",
        "--ttl",
        "365d",
        "--idle-timeout",
        "365d",
        "--json",
    ]);
    out.ok();
    let view = out.json();
    assert_eq!(view["ttlSecs"], 365 * 86400);
    assert_eq!(view["expired"], false);
    let created =
        chrono::DateTime::parse_from_rfc3339(view["createdAt"].as_str().unwrap()).unwrap();
    let expires =
        chrono::DateTime::parse_from_rfc3339(view["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!((expires - created).num_days(), 365);
    let body = sim
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path == "/api/sandbox")
        .and_then(|r| r.body_json())
        .expect("the create");
    assert_eq!(body["autoStopInterval"], 365 * 24 * 60);
    // The next command does not take it for expired.
    let other = home.run(&["warmup"]);
    other.ok();
    assert!(!other.stderr.contains("deleted expired lease"), "{other}");
    assert_eq!(live(&sim).len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Checkpoints (issue 16): an intent before the snapshot; nothing of a checkpoint whose create
// never saw it saved is left, after a signal's own clean-up or after the next command

/// A simulator whose snapshots take `saving` to be saved, and a lease `base` on it.
fn checkpoint_world(saving: Duration) -> (DaytonaSim, CbxHome, String) {
    let (sim, home) = setup(SimConfig {
        snapshot_delay: saving,
        ..fast()
    });
    let out = home.run(&["warmup", "--slug", "base", "--json"]);
    out.ok();
    let sandbox = out.json()["sandboxId"].as_str().unwrap().to_string();
    (sim, home, sandbox)
}

/// Waits (bounded) until the simulator shows no snapshot.
#[track_caller]
fn assert_no_snapshots(sim: &DaytonaSim) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sim.snapshot_names().is_empty() {
        assert!(
            Instant::now() < deadline,
            "snapshots left behind: {:?}",
            sim.snapshot_names()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (bounded) until sandbox `id` is no longer `snapshotting`.
#[track_caller]
fn wait_saved(sim: &DaytonaSim, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while sim.sandbox(id).is_some_and(|s| s.state == "snapshotting") {
        assert!(Instant::now() < deadline, "still snapshotting");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const CREATE_DEPS: &[&str] = &["checkpoint", "create", "base", "--name", "deps"];

#[test]
fn sigint_or_sigterm_while_a_checkpoint_is_saved_deletes_it_once_saved() {
    let (sim, home, sandbox) = checkpoint_world(Duration::from_millis(1500));
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let running = Running::start(&home, CREATE_DEPS, "checkpoint:saving", None);
        running.wait_paused("checkpoint:saving");
        assert_eq!(
            sim.sandbox(&sandbox).unwrap().state,
            "snapshotting",
            "the provider is saving"
        );
        let intents = records(&home, "intents");
        assert_eq!(
            intents.len(),
            1,
            "the intent is recorded before the request"
        );
        let intent: Value = serde_json::from_slice(&std::fs::read(&intents[0]).unwrap()).unwrap();
        assert_eq!(intent["plan"]["checkpoint"]["requested"], true);
        assert_eq!(intent["settle"], "delete");
        let saving = home.run(&["checkpoint", "list", "--json"]);
        saving.ok();
        let row: Value = serde_json::from_str(saving.stdout.trim()).expect("one row");
        assert_eq!(row["name"], "deps", "{saving}");
        assert_eq!(row["state"], "unfinished", "{saving}");
        assert_eq!(row["unfinished"]["running"], true, "{saving}");
        running.signal(signal);
        let out = running.finish();
        assert_eq!(out.code, code, "{out}");
        assert!(out.stderr.contains(&format!("SIG{signal}")), "{out}");
        assert!(
            out.stderr
                .contains("cannot delete a checkpoint it is still saving, so cbx waits"),
            "{out}"
        );
        assert!(
            out.stderr
                .contains("cbx deleted the unfinished checkpoint deps"),
            "{out}"
        );
        assert!(out.stderr.contains("nothing is left"), "{out}");
        assert!(records(&home, "intents").is_empty(), "{out}");
        assert_no_snapshots(&sim);
        let list = home.run(&["checkpoint", "list", "--json"]);
        list.ok();
        assert_eq!(list.stdout.trim(), "", "{list}");
    }
    home.run(&["stop", "base"]).ok();
}

#[test]
fn kill_9_while_a_checkpoint_is_saved_is_deleted_by_a_later_command() {
    let (sim, home, sandbox) = checkpoint_world(Duration::from_secs(4));
    let running = Running::start(&home, CREATE_DEPS, "checkpoint:saving", None);
    running.wait_paused("checkpoint:saving");
    running.signal("KILL");
    assert_eq!(running.finish().code, 137);
    assert_eq!(records(&home, "intents").len(), 1);

    // Still saving: the provider cannot delete it yet, so the record stays, and cbx says so.
    let early = home.run(&["checkpoint", "list"]);
    early.ok();
    assert!(
        early.stderr.contains(
            "checkpoint deps that an unfinished `cbx checkpoint create` left is still being saved"
        ),
        "{early}"
    );
    assert_eq!(records(&home, "intents").len(), 1, "{early}");
    assert!(
        early.stdout.contains("deps") && early.stdout.contains("unfinished"),
        "{early}"
    );
    let again = home.run(CREATE_DEPS);
    again.expect_code(2);
    assert!(
        again.stderr.contains(
            "cannot create checkpoint deps: an interrupted `cbx checkpoint create` of that name is not cleaned up yet; nothing was done"
        ),
        "{again}"
    );

    wait_saved(&sim, &sandbox);
    assert_eq!(sim.snapshot_names().len(), 1, "the save finished");
    // A key without `delete:snapshots`: the clean-up fails, says so, and keeps the record.
    sim.inject(Fault::status(
        "DELETE",
        "/api/snapshots/",
        403,
        "Access denied",
    ));
    let denied = home.run(&["list"]);
    denied.ok();
    assert!(
        denied
            .stderr
            .contains("warning: could not delete checkpoint cbx-ckpt-")
            && denied
                .stderr
                .contains("cbx keeps its record and the next command retries")
            && denied.stderr.contains("Access denied"),
        "{denied}"
    );
    assert_eq!(records(&home, "intents").len(), 1, "{denied}");
    sim.clear_faults();
    let later = home.run(&["checkpoint", "list", "--json"]);
    later.ok();
    assert!(later.stderr.contains("deleted checkpoint deps"), "{later}");
    assert!(
        later.stderr.contains("it was never reported saved"),
        "{later}"
    );
    for row in later.stdout.lines() {
        assert!(row.contains(r#""state":"deleting""#), "{later}");
    }
    assert!(records(&home, "intents").is_empty());
    assert_no_snapshots(&sim);
    home.run(&["stop", "base"]).ok();
}

#[test]
fn a_second_signal_leaves_the_unfinished_checkpoint_to_the_next_command() {
    let (sim, home, sandbox) = checkpoint_world(Duration::from_millis(800));
    let running = Running::start(
        &home,
        CREATE_DEPS,
        "checkpoint:saving,checkpoint:rolling-back",
        None,
    );
    running.wait_paused("checkpoint:saving");
    running.signal("TERM");
    running.wait_paused("checkpoint:rolling-back");
    running.signal("TERM");
    let out = running.finish();
    assert_eq!(out.code, 143, "{out}");
    assert!(
        out.stderr.contains("SIGTERM again: cbx stops cleaning up"),
        "{out}"
    );
    assert!(out.stderr.contains("keeps its record"), "{out}");
    assert!(
        out.stderr.contains("the next cbx command deletes it"),
        "{out}"
    );
    assert_eq!(records(&home, "intents").len(), 1);

    wait_saved(&sim, &sandbox);
    let next = home.run(&["list"]);
    next.ok();
    assert!(next.stderr.contains("deleted checkpoint deps"), "{next}");
    assert!(records(&home, "intents").is_empty());
    assert_no_snapshots(&sim);
    home.run(&["stop", "base"]).ok();
}

#[test]
fn a_create_killed_before_it_asked_deletes_nothing_not_even_an_older_checkpoint_of_that_name() {
    let (sim, home, _) = checkpoint_world(Duration::from_millis(200));
    home.run(CREATE_DEPS).ok();
    assert_eq!(sim.snapshot_names().len(), 1);

    // Killed after recording, before checking the name: the `deps` found then is the older one.
    let running = Running::start(&home, CREATE_DEPS, "checkpoint:recorded", None);
    running.wait_paused("checkpoint:recorded");
    running.signal("KILL");
    running.finish();
    assert_eq!(records(&home, "intents").len(), 1);
    let next = home.run(&["checkpoint", "list", "--json"]);
    next.ok();
    assert!(
        next.stderr.contains("had left no checkpoint deps"),
        "{next}"
    );
    assert_eq!(
        next.stdout.lines().count(),
        1,
        "the older deps is kept: {next}"
    );
    assert!(records(&home, "intents").is_empty());

    // Interrupted before asking: only the record goes, and the error is the signal's.
    let running = Running::start(&home, CREATE_DEPS, "checkpoint:recorded", None);
    running.wait_paused("checkpoint:recorded");
    running.signal("INT");
    let out = running.finish();
    assert_eq!(out.code, 130, "{out}");
    assert!(records(&home, "intents").is_empty(), "{out}");
    assert_eq!(sim.snapshot_names().len(), 1, "{out}");
    home.run(&["stop", "base"]).ok();
}

#[test]
fn cleanup_lists_and_deletes_this_owners_unfinished_checkpoints_and_keeps_live_ones() {
    let (sim, home, sandbox) = checkpoint_world(Duration::from_secs(8));
    let running = Running::start(&home, CREATE_DEPS, "checkpoint:saving", None);
    running.wait_paused("checkpoint:saving");
    let live = home.run(&["cleanup", "--dry-run"]);
    live.ok();
    assert!(
        live.stderr
            .contains("kept checkpoint deps: `cbx checkpoint create` (pid"),
        "{live}"
    );
    running.signal("KILL");
    running.finish();

    let dry = home.run(&["cleanup", "--dry-run"]);
    dry.ok();
    assert!(
        dry.stderr.contains("would delete 1 unfinished checkpoint:"),
        "{dry}"
    );
    assert!(dry.stdout.contains("deps"), "{dry}");
    let json = home.run(&["cleanup", "--dry-run", "--json"]);
    json.ok();
    let v = json.json();
    assert_eq!(v["checkpoints"]["delete"][0]["name"], "deps", "{json}");
    assert_eq!(v["checkpoints"]["delete"][0]["reason"], "unfinished");
    assert_eq!(v["checkpoints"]["delete"][0]["outcome"], "would-delete");
    assert_eq!(
        records(&home, "intents").len(),
        1,
        "a dry run deletes nothing"
    );
    let refused = home.run(&["cleanup"]);
    refused.expect_code(2);
    assert!(
        refused
            .stderr
            .contains("would delete 1 unfinished checkpoint (above) and asks first"),
        "{refused}"
    );

    // Asked explicitly, cleanup waits for the save to end, then deletes.
    let out = home.run(&["cleanup", "--yes", "--json"]);
    out.ok();
    assert_eq!(
        out.json()["checkpoints"]["delete"][0]["outcome"],
        "deleted",
        "{out}"
    );
    assert_ne!(sim.sandbox(&sandbox).unwrap().state, "snapshotting");
    assert!(records(&home, "intents").is_empty());
    assert_no_snapshots(&sim);
    home.run(&["stop", "base"]).ok();
}
