//! End-to-end tests of the warm path (issue 14): `cbx run --id` and `cbx ssh` on a lease with
//! a live multiplexing master go straight to the command, asking the provider nothing, and
//! every way that connection can fail falls back to the full path without running the
//! command twice. The real binary against the simulator with its real sshd (needs root, like
//! `data_plane`, whose world these tests share).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use super::data_plane::{ArgvShims, World, eventually, ssh_lines};

/// The lease's ssh config and host alias (as cbx wrote them).
fn ssh_config(w: &World, lease: &str) -> (PathBuf, String) {
    let config = w
        .home
        .state_dir()
        .join("secrets")
        .join(lease)
        .join("ssh_config");
    (config, format!("cbx-{lease}"))
}

/// Whether the lease's multiplexing master answers `ssh -O check`.
fn master_up(w: &World, lease: &str) -> bool {
    let (config, alias) = ssh_config(w, lease);
    std::process::Command::new("ssh")
        .arg("-F")
        .arg(&config)
        .args(["-O", "check", &alias])
        .output()
        .unwrap()
        .status
        .success()
}

/// How many lines the file `name` in the lease's remote work directory has (0 if absent).
fn lines_in(w: &World, sandbox: &str, lease: &str, name: &str) -> usize {
    std::fs::read_to_string(w.remote_workdir(sandbox, lease).join(name))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// The lease's claim file.
fn claim_path(w: &World, lease: &str) -> PathBuf {
    w.home
        .state_dir()
        .join("claims")
        .join(format!("{lease}.json"))
}

/// Rewrites the lease's claim with `edit` applied to its JSON.
fn edit_claim(w: &World, lease: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let claim = claim_path(w, lease);
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&claim).unwrap()).unwrap();
    edit(&mut json);
    std::fs::write(&claim, serde_json::to_string(&json).unwrap()).unwrap();
}

/// A lease with a live master and a synced tree: warmed up, then used once.
fn warm_lease(w: &World, slug: &str) -> (String, String) {
    let lease = w.warmup(slug);
    let id = lease["leaseId"].as_str().unwrap().to_string();
    let sandbox = lease["sandboxId"].as_str().unwrap().to_string();
    w.cbx(&["run", "--id", slug, "--", "true"]).ok();
    assert!(master_up(w, &id), "the first run leaves a master up");
    (id, sandbox)
}

/// The command that counts its own runs: one line per run in `ran`, then `exit $code`.
fn counting(code: u8) -> Vec<String> {
    [
        "sh",
        "-c",
        &format!("echo run >> ran; echo done; exit {code}"),
    ]
    .map(String::from)
    .to_vec()
}

/// `cbx run --id slug -- counting(code)`, paused at the warm path's test point while
/// `meanwhile` breaks something; returns exit code, stdout and stderr.
fn run_paused(w: &World, slug: &str, meanwhile: impl FnOnce()) -> (i32, String, String) {
    let resume = w.home.path().join("resume");
    let _ = std::fs::remove_file(&resume);
    let mut args = vec!["run", "--id", slug, "--"];
    let command = counting(0);
    args.extend(command.iter().map(String::as_str));
    let mut child = w
        .home
        .command(&args)
        .env("CBX_TEST_PAUSE", "run:warm")
        .env("CBX_TEST_RESUME", &resume)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    let sink = stderr.clone();
    let pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    eventually("cbx pauses on the warm path", || {
        stderr.lock().unwrap().contains("paused at run:warm")
    });
    meanwhile();
    std::fs::write(&resume, "").unwrap();
    let out = child.wait_with_output().unwrap();
    reader.join().unwrap();
    let stderr = stderr.lock().unwrap().clone();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn warm_path_a_warm_run_asks_the_provider_nothing_and_starts_no_ssh_process() {
    let Some(w) = World::new() else { return };
    let (lease, _) = warm_lease(&w, "quick");
    let shims = ArgvShims::install(w.home.path());
    w.sim.clear_requests();
    let out = w.home.run_with_env(
        &["run", "--id", "quick", "--", "echo", "warm"],
        &[("PATH", &shims.path_var())],
    );
    out.ok();
    assert_eq!(out.stdout, "warm\n", "{out}");
    assert_eq!(w.sim.requests(), vec![], "no control-plane request");
    // The command goes over the live master's socket (`ssh::mux`): no ssh client at all.
    assert_eq!(ssh_lines(&shims), Vec::<String>::new(), "no ssh process");
    // With --env the variables' file goes over the master too, through the session's stdin.
    let _ = std::fs::remove_file(w.home.path().join("argv.log"));
    let out = w.home.run_with_env(
        &[
            "run",
            "--id",
            "quick",
            "--env",
            "WARM_SECRET",
            "--",
            "sh",
            "-c",
            "echo \"[$WARM_SECRET]\"",
        ],
        &[("PATH", &shims.path_var()), ("WARM_SECRET", "s3cr3t-warm")],
    );
    out.ok();
    assert_eq!(out.stdout, "[s3cr3t-warm]\n", "{out}");
    assert_eq!(ssh_lines(&shims), Vec::<String>::new(), "no ssh process");
    w.home.assert_secret_absent("s3cr3t-warm", &[], &[]);
    // cbx ssh with a command takes the same path.
    let out = w.cbx(&["ssh", "quick", "--", "echo", "also warm"]);
    out.ok();
    assert_eq!(out.stdout, "also warm\n", "{out}");
    assert_eq!(w.sim.requests(), vec![], "no control-plane request");
    assert!(master_up(&w, &lease));
    w.cbx(&["stop", "quick"]).ok();
}

/// A warm run without a sync is one session over the master too, also when the work
/// directory is not there yet: the command line creates it (it used to take a `mkdir` round
/// trip first).
#[test]
fn warm_path_a_run_without_a_sync_starts_no_ssh_process_and_creates_the_work_directory() {
    let Some(w) = World::new() else { return };
    let (lease, sandbox) = warm_lease(&w, "nosync");
    let workdir = w.remote_workdir(&sandbox, &lease);
    std::fs::remove_dir_all(&workdir).unwrap();
    let shims = ArgvShims::install(w.home.path());
    let out = w.home.run_with_env(
        &[
            "run",
            "--id",
            "nosync",
            "--no-sync",
            "--",
            "sh",
            "-c",
            "pwd; ls | wc -l",
        ],
        &[("PATH", &shims.path_var())],
    );
    out.ok();
    // The command goes over the live master's socket (`ssh::mux`): no ssh client at all.
    assert_eq!(ssh_lines(&shims), Vec::<String>::new(), "no ssh process");
    let name = workdir.file_name().unwrap().to_str().unwrap();
    assert!(out.stdout.starts_with('/'), "{out}");
    assert!(out.stdout.lines().next().unwrap().ends_with(name), "{out}");
    assert_eq!(
        out.stdout.lines().nth(1),
        Some("0"),
        "an empty new directory: {out}"
    );
    assert!(workdir.is_dir());
    w.cbx(&["stop", "nosync"]).ok();
}

#[test]
fn warm_path_a_command_exiting_255_itself_runs_once_and_its_status_passes_through() {
    let Some(w) = World::new() else { return };
    let (lease, sandbox) = warm_lease(&w, "twofifty");
    w.sim.clear_requests();
    let mut args = vec!["run", "--id", "twofifty", "--"];
    let command = counting(255);
    args.extend(command.iter().map(String::as_str));
    let out = w.cbx(&args);
    out.expect_code(255);
    assert_eq!(out.stdout, "done\n", "{out}");
    assert!(
        out.stderr
            .contains("the command itself exited 255, or its ssh session failed"),
        "{out}"
    );
    assert_eq!(lines_in(&w, &sandbox, &lease, "ran"), 1, "run exactly once");
    assert_eq!(w.sim.requests(), vec![], "no fallback to the provider");
    w.cbx(&["stop", "twofifty"]).ok();
}

#[test]
fn warm_path_a_killed_master_falls_back_and_the_command_runs_once() {
    let Some(w) = World::new() else { return };
    let (lease, sandbox) = warm_lease(&w, "orphan");
    let (config, alias) = ssh_config(&w, &lease);
    let check = std::process::Command::new("ssh")
        .arg("-F")
        .arg(&config)
        .args(["-O", "check", &alias])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stderr);
    let pid: String = said
        .split("pid=")
        .nth(1)
        .expect("ssh -O check names the master's pid")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success()
    );
    eventually("the master is gone", || !master_up(&w, &lease));
    let mut args = vec!["run", "--id", "orphan", "--"];
    let command = counting(0);
    args.extend(command.iter().map(String::as_str));
    let out = w.cbx(&args);
    out.ok();
    assert_eq!(out.stdout, "done\n", "{out}");
    assert_eq!(lines_in(&w, &sandbox, &lease, "ran"), 1, "run exactly once");
    assert!(master_up(&w, &lease), "a new master is up");
    w.cbx(&["stop", "orphan"]).ok();
}

#[test]
fn warm_path_a_sandbox_stopped_by_its_idle_timeout_is_started_and_the_command_runs_once() {
    let Some(w) = World::new() else { return };
    let (lease, sandbox) = warm_lease(&w, "idler");
    w.sim.clear_requests();
    let (code, stdout, stderr) = run_paused(&w, "idler", || {
        // What the idle timeout does: the sandbox stops, its sessions end.
        assert!(w.sim.set_state(&sandbox, "stopped"));
        eventually("the master is gone", || !master_up(&w, &lease));
    });
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "done\n", "{stderr}");
    assert_eq!(lines_in(&w, &sandbox, &lease, "ran"), 1, "run exactly once");
    assert!(
        w.sim
            .requests()
            .iter()
            .any(|r| r.method == "POST" && r.path.ends_with("/start")),
        "the full path started the sandbox"
    );
    w.cbx(&["stop", "idler"]).ok();
}

#[test]
fn warm_path_revoked_access_is_minted_again_and_the_command_runs_once() {
    let Some(w) = World::new() else { return };
    let (lease, sandbox) = warm_lease(&w, "revoked");
    assert_eq!(w.ssh_access_requests(), 1);
    let (code, stdout, stderr) = run_paused(&w, "revoked", || {
        // The access is revoked and the connection it held is closed.
        w.sim.expire_ssh_tokens(&sandbox);
        let (config, alias) = ssh_config(&w, &lease);
        let _ = std::process::Command::new("ssh")
            .arg("-F")
            .arg(&config)
            .args(["-O", "exit", &alias])
            .output();
        eventually("the master is gone", || !master_up(&w, &lease));
    });
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "done\n", "{stderr}");
    assert_eq!(lines_in(&w, &sandbox, &lease, "ran"), 1, "run exactly once");
    assert_eq!(w.ssh_access_requests(), 2, "new access was minted");
    w.cbx(&["stop", "revoked"]).ok();
}

#[test]
fn warm_path_a_sandbox_deleted_behind_cbxs_back_is_a_clear_error_and_the_claim_goes() {
    let Some(w) = World::new() else { return };
    let (lease, sandbox) = warm_lease(&w, "vanished");
    assert!(w.sim.set_state(&sandbox, "destroyed"));
    let out = w.cbx(&["run", "--id", "vanished", "--", "echo", "never"]);
    out.expect_code(4);
    assert_eq!(out.stdout, "", "{out}");
    assert!(
        out.stderr.contains(&format!(
            "lease {lease} (vanished) is gone: its sandbox {sandbox} no longer exists"
        )) && out.stderr.contains("cbx removed its claim")
            && out.stderr.contains("`cbx warmup` leases a new one"),
        "{out}"
    );
    assert!(!claim_path(&w, &lease).exists(), "the claim is removed");
    assert!(
        !w.home.state_dir().join("secrets").join(&lease).exists(),
        "and the lease's SSH access"
    );
    let out = w.cbx(&["run", "--id", "vanished", "--", "true"]);
    out.expect_code(4);
    assert!(out.stderr.contains("no daytona lease matches"), "{out}");
}

#[test]
fn warm_path_an_expired_lease_is_refused_from_its_claim() {
    let Some(w) = World::new() else { return };
    let (lease, _) = warm_lease(&w, "oldie");
    edit_claim(&w, &lease, |json| {
        json["createdAt"] = "2019-12-31T23:00:00Z".into();
        json["expiresAt"] = "2020-01-01T00:00:00Z".into();
    });
    w.sim.clear_requests();
    let out = w.cbx(&["run", "--id", "oldie", "--", "echo", "never"]);
    out.expect_code(5);
    assert_eq!(out.stdout, "", "{out}");
    assert!(
        out.stderr.contains("expired at 2020-01-01T00:00:00Z"),
        "{out}"
    );
    assert_eq!(w.sim.requests(), vec![], "refused without asking");
}

// ---------------------------------------------------------------------------------------------
// The warm path does not load the provider (it is loaded on its first call)

/// Gives `w`'s home a compiled-component cache of its own (a copy of the shared one), so that
/// a test may break it; returns its directory of compiled components.
fn private_component_cache(w: &mut World) -> PathBuf {
    let cache = w.home.path().join("cache");
    let components = cache.join("cbx").join("components");
    std::fs::create_dir_all(&components).unwrap();
    let shared = w.home.cache_dir().join("components");
    for entry in std::fs::read_dir(&shared).into_iter().flatten().flatten() {
        let _ = std::fs::copy(entry.path(), components.join(entry.file_name()));
    }
    w.home.env("XDG_CACHE_HOME", cache.to_str().unwrap());
    components
}

/// Replaces every compiled component in `dir` with bytes no engine can load: a command that
/// loads the provider finds them unusable, compiles the component again and caches it anew.
fn break_compiled(dir: &std::path::Path) -> usize {
    let mut broken = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "cwasm") {
            std::fs::write(entry.path(), BROKEN).unwrap();
            broken += 1;
        }
    }
    broken
}

const BROKEN: &[u8] = b"not a compiled component";

/// How many compiled components in `dir` are still the broken bytes.
fn still_broken(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read(e.path()).is_ok_and(|b| b == BROKEN))
        .count()
}

#[test]
fn warm_path_a_warm_run_does_not_load_the_provider_and_its_fallback_does() {
    let Some(mut w) = World::new() else { return };
    let components = private_component_cache(&mut w);
    let (lease, sandbox) = warm_lease(&w, "lazy");
    // The provider described itself and was configured; both answers are cached next to the
    // compiled code.
    let descriptions = components.with_file_name("descriptions");
    let mut cached: Vec<String> = std::fs::read_dir(&descriptions)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    cached.sort_by_key(|n| n.len());
    assert_eq!(cached.len(), 2, "{cached:?}");
    assert!(cached[1].ends_with(".profile.json"), "{cached:?}");
    let broken = break_compiled(&components);
    assert!(
        broken >= 1,
        "the daytona provider was compiled into this cache"
    );

    // Warm: the command runs, and the provider was never loaded (loading it would have found
    // the compiled code unusable and replaced it).
    let out = w.cbx(&["run", "--id", "lazy", "--", "echo", "warm"]);
    out.ok();
    assert_eq!(out.stdout, "warm\n", "{out}");
    let out = w.cbx(&["ssh", "lazy", "--", "echo", "also warm"]);
    out.ok();
    assert_eq!(out.stdout, "also warm\n", "{out}");
    assert_eq!(
        still_broken(&components),
        broken,
        "the provider was not loaded"
    );

    // The fallback needs the provider: it is loaded on its first call, and the command runs
    // once.
    let (config, alias) = ssh_config(&w, &lease);
    let _ = std::process::Command::new("ssh")
        .arg("-F")
        .arg(&config)
        .args(["-O", "exit", &alias])
        .output();
    eventually("the master is gone", || !master_up(&w, &lease));
    w.sim.clear_requests();
    let mut args = vec!["run", "--id", "lazy", "--"];
    let command = counting(0);
    args.extend(command.iter().map(String::as_str));
    let out = w.cbx(&args);
    out.ok();
    assert_eq!(out.stdout, "done\n", "{out}");
    assert_eq!(lines_in(&w, &sandbox, &lease, "ran"), 1, "run exactly once");
    assert!(
        !w.sim.requests().is_empty(),
        "the full path asked the provider"
    );
    assert!(
        still_broken(&components) < broken,
        "the provider was loaded"
    );
    w.cbx(&["stop", "lazy"]).ok();
}

#[test]
fn warm_path_a_corrupted_description_means_loading_the_provider_and_the_run_works() {
    let Some(mut w) = World::new() else { return };
    let components = private_component_cache(&mut w);
    warm_lease(&w, "garbled");
    let descriptions = components.with_file_name("descriptions");
    for entry in std::fs::read_dir(&descriptions).unwrap().flatten() {
        std::fs::write(entry.path(), "{\"format\": 1, \"name\": ").unwrap();
    }
    let broken = break_compiled(&components);
    let out = w.cbx(&["run", "--id", "garbled", "--", "echo", "loaded"]);
    out.ok();
    assert_eq!(out.stdout, "loaded\n", "{out}");
    assert!(still_broken(&components) < broken, "loaded: recompiled");
    // And described again: the next warm run does without it.
    break_compiled(&components);
    w.cbx(&["run", "--id", "garbled", "--", "true"]).ok();
    assert_eq!(still_broken(&components), broken, "not loaded");
    w.cbx(&["stop", "garbled"]).ok();
}

#[test]
fn warm_path_unfinished_intents_are_finished_before_a_warm_run() {
    let Some(mut w) = World::new() else { return };
    let components = private_component_cache(&mut w);
    warm_lease(&w, "busy");
    // A warmup killed after recording its intent, before creating anything.
    let mut child = w
        .home
        .command(&["warmup", "--slug", "ghost"])
        .env("CBX_TEST_PAUSE", "acquire:recorded")
        .env("CBX_TEST_RESUME", w.home.path().join("never"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let intents = w.home.state_dir().join("intents");
    let recorded = || {
        std::fs::read_dir(&intents)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                    .count()
            })
            .unwrap_or(0)
    };
    eventually("the warmup records its intent", || recorded() == 1);
    let broken = break_compiled(&components);
    assert!(broken >= 1);
    // While its process lives the intent is its own: a warm run leaves it, and loads nothing.
    let out = w.cbx(&["run", "--id", "busy", "--", "echo", "warm"]);
    out.ok();
    assert_eq!(recorded(), 1, "{out}");
    assert_eq!(still_broken(&components), broken, "not loaded: {out}");
    child.kill().unwrap();
    child.wait().unwrap();

    let out = w.cbx(&["run", "--id", "busy", "--", "echo", "warm"]);
    out.ok();
    assert_eq!(out.stdout, "warm\n", "{out}");
    assert!(
        out.stderr
            .contains("an unfinished `cbx warmup` had left no sandbox"),
        "{out}"
    );
    assert_eq!(recorded(), 0, "the intent is finished");
    assert!(
        still_broken(&components) < broken,
        "the provider was loaded for it"
    );
    w.cbx(&["stop", "busy"]).ok();
}

#[test]
fn warm_path_settings_the_provider_refuses_are_refused_on_the_warm_path_too() {
    let Some(w) = World::new() else { return };
    warm_lease(&w, "picky");
    // The host accepts the value (an integer); the provider's `configure` refuses it.
    for _ in 0..2 {
        let out = w.cbx(&[
            "--option",
            "ssh-access-minutes=-5",
            "run",
            "--id",
            "picky",
            "--",
            "echo",
            "never",
        ]);
        out.expect_code(2);
        assert_eq!(out.stdout, "", "{out}");
        assert!(
            out.stderr
                .contains("option ssh-access-minutes must be between 1 and 1440 minutes, got -5"),
            "{out}"
        );
    }
    // Settings it accepted before take the warm path again.
    let out = w.cbx(&[
        "--option",
        "ssh-access-minutes=30",
        "run",
        "--id",
        "picky",
        "--",
        "true",
    ]);
    out.ok();
    w.cbx(&["stop", "picky"]).ok();
}

#[test]
fn warm_path_a_due_touch_after_the_command_loads_the_provider_and_resets_the_idle_timer() {
    let Some(w) = World::new() else { return };
    let (lease, _) = warm_lease(&w, "toucher");
    let long_ago = "2020-01-01T00:00:00Z";
    edit_claim(&w, &lease, |json| json["lastUsedAt"] = long_ago.into());
    let claim = claim_path(&w, &lease);
    w.sim.clear_requests();
    let out = w.cbx(&["run", "--id", "toucher", "--", "echo", "warm"]);
    out.ok();
    assert_eq!(out.stdout, "warm\n", "{out}");
    let requests = w.sim.requests();
    assert!(
        requests.iter().all(|r| r.method == "POST"),
        "only the touch, after the command: {requests:?}"
    );
    assert!(
        requests.iter().any(|r| r.path.ends_with("/last-activity")),
        "the provider was loaded to touch the lease: {requests:?}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&claim).unwrap()).unwrap();
    assert_ne!(json["lastUsedAt"], long_ago, "the claim records the use");
    // Touched just now: the next warm run asks nothing.
    w.sim.clear_requests();
    w.cbx(&["run", "--id", "toucher", "--", "true"]).ok();
    assert_eq!(w.sim.requests(), vec![]);
    w.cbx(&["stop", "toucher"]).ok();
}

#[test]
fn warm_path_a_damaged_intent_file_is_reported_as_on_the_full_path() {
    let Some(w) = World::new() else { return };
    warm_lease(&w, "damaged");
    let intents = w.home.state_dir().join("intents");
    std::fs::create_dir_all(&intents).unwrap();
    let bad = intents.join("cbx_0123456789ac.json");
    std::fs::write(&bad, "{ not an intent").unwrap();
    let out = w.cbx(&["run", "--id", "damaged", "--", "echo", "warm"]);
    out.ok();
    assert_eq!(out.stdout, "warm\n", "{out}");
    assert!(
        out.stderr.contains(&format!(
            "warning: the intent file {} is damaged",
            bad.display()
        )) && out.stderr.contains("`cbx list` says what to do"),
        "{out}"
    );
    std::fs::remove_file(&bad).unwrap();
    w.cbx(&["stop", "damaged"]).ok();
}

/// Warm runs racing on one lease each get a session of their own over the one master: every
/// command's output and exit status are its own, stdin reaches the right command, and none of
/// them starts an ssh process.
#[test]
fn warm_path_concurrent_runs_share_the_master_each_with_its_own_output_and_status() {
    let Some(w) = World::new() else { return };
    let (lease, _) = warm_lease(&w, "race");
    let shims = ArgvShims::install(w.home.path());
    let path = shims.path_var();
    let runs: Vec<_> = (0..4)
        .map(|i| {
            let mut cmd = w.home.command(&[
                "run",
                "--id",
                "race",
                "--",
                "sh",
                "-c",
                &format!(
                    "read line; echo \"$line from {i}\"; echo err {i} >&2; exit {}",
                    10 + i
                ),
            ]);
            let mut child = cmd
                .env("PATH", &path)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            writeln!(stdin, "input {i}").unwrap();
            drop(stdin);
            child
        })
        .collect();
    for (i, child) in runs.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(10 + i as i32), "{stdout}\n{stderr}");
        assert_eq!(stdout, format!("input {i} from {i}\n"), "{stderr}");
        assert!(stderr.contains(&format!("err {i}\n")), "{stderr}");
    }
    assert_eq!(ssh_lines(&shims), Vec::<String>::new(), "no ssh process");
    assert!(master_up(&w, &lease));
    w.cbx(&["stop", "race"]).ok();
}
