//! End-to-end tests of `cbx shard` (issue 16): the real binary and the Daytona provider
//! against the simulator, whose sandboxes are system users of a real sshd (see `data_plane`):
//! substitution, environment and prefixed lines; the verdict (table, exit code) with a failing
//! shard and a shard whose lease cannot be made; Ctrl-C while the sandboxes are being created
//! and SIGTERM while the commands run (nothing left either time); `--fail-fast`; `--keep`;
//! `--from` a checkpoint and a lease (forks); the count cap; the missing-capability error.
//!
//! The lease tests need root (see `data_plane`); the error checks run anywhere.

use std::time::{Duration, Instant};

use cbx_testkit::daytona_sim::Fault;
use cbx_testkit::home::{CbxHome, Output};

use super::crash_safety::{Running, assert_none_live, creates, live, records};
use super::data_plane::World;

const CBX: &str = env!("CARGO_BIN_EXE_cbx");

/// Asserts that nothing is left: no live sandbox, no claim, no intent.
#[track_caller]
fn nothing_left(w: &World) {
    assert_none_live(&w.sim);
    assert!(records(&w.home, "claims").is_empty(), "claims left");
    assert!(records(&w.home, "intents").is_empty(), "intents left");
}

/// The table rows (`N/T  slug  result  time`) of a shard run's stderr.
fn rows(out: &Output, total: usize) -> Vec<String> {
    out.stderr
        .lines()
        .filter(|l| (1..=total).any(|i| l.starts_with(&format!("{i}/{total} "))))
        .map(str::to_string)
        .collect()
}

#[test]
fn shard_substitutes_sets_the_environment_prefixes_lines_and_releases_every_lease() {
    let Some(w) = World::new() else { return };
    let out = w.cbx(&[
        "shard",
        "--count",
        "3",
        "--",
        "sh",
        "-c",
        "echo \"shard {index} of {total} lease {lease} env $CBX_SHARD_INDEX/$CBX_SHARD_TOTAL \
         id $CBX_LEASE_ID\"; cat README.md; printf 'tab\\there\\033[2J\\n'; echo err >&2",
    ]);
    out.ok();
    let plan = out
        .stderr
        .find("shard: 3 sandboxes with daytona, each created fresh")
        .expect("the plan line");
    let first_lease = out.stderr.find("] leased cbx_").expect("a leased line");
    assert!(plan < first_lease, "the plan comes first: {out}");
    for i in 1..=3 {
        let p = format!("[{i}/3] ");
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{p}shard {i} of 3 lease cbx_")))
            .unwrap_or_else(|| panic!("no line of shard {i}: {out}"));
        // {lease} and CBX_LEASE_ID are the same lease; the environment matches the index.
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[6], words[10], "{line}");
        assert_eq!(words[8], format!("{i}/3"), "{line}");
        assert!(
            out.stdout.contains(&format!("{p}hello from the repo\n")),
            "{out}"
        );
        // Sandbox text is inert (tabs kept); stderr lines are prefixed too.
        assert!(
            out.stdout.contains(&format!("{p}tab\there\\x1b[2J\n")),
            "{out}"
        );
        assert!(out.stderr.contains(&format!("{p}err\n")), "{out}");
        // Each shard's own progress says whose it is.
        for step in ["creating a daytona sandbox (", "syncing ", "released cbx_"] {
            assert!(
                out.stderr.contains(&format!("{p}{step}")),
                "no `{p}{step}…` line: {out}"
            );
        }
    }
    assert!(
        !out.stderr.lines().any(|l| l.starts_with("[1/3] [1/3]")),
        "one lead per line: {out}"
    );
    let table = rows(&out, 3);
    assert_eq!(table.len(), 3, "{out}");
    assert!(table.iter().all(|r| r.contains("exit 0")), "{out}");
    assert_eq!(creates(&w.sim), 3);
    nothing_left(&w);
}

#[test]
fn shard_exits_with_the_first_failing_shards_code_and_runs_on_when_a_lease_fails() {
    let Some(w) = World::new() else { return };
    // One of the three creates is refused outright.
    w.sim.inject(Fault::status(
        "POST",
        "/api/sandbox",
        400,
        "Invalid request: no capacity in this region",
    ));
    let out = w.cbx(&[
        "shard",
        "--count",
        "3",
        "--json",
        "--",
        "sh",
        "-c",
        "echo ran {index}; exit $((CBX_SHARD_INDEX * 10))",
    ]);
    let report = out.json();
    let shards = report["shards"].as_array().unwrap();
    let broken: Vec<&serde_json::Value> = shards.iter().filter(|s| s["ended"] == "error").collect();
    assert_eq!(broken.len(), 1, "{out}");
    let broken_index = broken[0]["index"].as_u64().unwrap();
    assert!(broken[0]["leaseId"].is_null(), "{out}");
    assert!(
        broken[0]["error"]
            .as_str()
            .unwrap()
            .contains("no capacity in this region"),
        "{out}"
    );
    // The others ran (their stdout goes to stderr with --json) and failed with their codes.
    let ran: Vec<u64> = shards
        .iter()
        .filter(|s| s["ended"] == "failed")
        .map(|s| s["commandExitCode"].as_u64().unwrap())
        .collect();
    assert_eq!(ran.len(), 2, "{out}");
    for s in shards.iter().filter(|s| s["ended"] == "failed") {
        let i = s["index"].as_u64().unwrap();
        assert_eq!(s["commandExitCode"], i * 10, "{out}");
        assert!(out.stderr.contains(&format!("[{i}/3] ran {i}\n")), "{out}");
    }
    // The exit code is the lowest-numbered failing shard's, whatever failed it.
    let expected = shards
        .iter()
        .find(|s| s["ended"] != "passed")
        .map(|s| s["exitCode"].as_u64().unwrap())
        .unwrap();
    out.expect_code(expected as i32);
    assert_eq!(report["exitCode"], expected);
    let broken_code = broken[0]["exitCode"].as_u64().unwrap();
    assert_ne!(broken_code, 0);
    let table = rows(&out, 3);
    assert!(
        table
            .iter()
            .any(|r| r.starts_with(&format!("{broken_index}/3 "))
                && r.contains(&format!("error (exit {broken_code})"))),
        "{out}"
    );
    assert!(
        out.stderr.contains(&format!("shard {broken_index}/3: ")),
        "{out}"
    );
    nothing_left(&w);
}

#[test]
fn ctrl_c_while_the_sandboxes_are_created_leaves_nothing() {
    let Some(w) = World::new() else { return };
    let run = Running::start(
        &w.home,
        &["shard", "--count", "3", "--", "true"],
        "acquire:created",
        None,
    );
    for _ in 0..3 {
        run.wait_paused("acquire:created");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while creates(&w.sim) < 3 {
        assert!(Instant::now() < deadline, "three creates expected");
        std::thread::sleep(Duration::from_millis(20));
    }
    run.signal("INT");
    let out = run.finish();
    out.expect_code(130);
    let table = rows(&out, 3);
    assert_eq!(table.len(), 3, "{out}");
    assert!(table.iter().all(|r| r.contains("interrupted")), "{out}");
    // Each shard rolled its own creation back.
    assert!(out.stderr.contains("deleted sandbox"), "{out}");
    nothing_left(&w);
}

/// `cbx shard --count 2 --json` of a command that sleeps a minute, both shards started.
fn two_shards_running(w: &World) -> Running {
    let run = Running::start(
        &w.home,
        &[
            "shard",
            "--count",
            "2",
            "--json",
            "--",
            "sh",
            "-c",
            "echo started; sleep 60",
        ],
        "",
        None,
    );
    run.wait_for("[1/2] started");
    run.wait_for("[2/2] started");
    run
}

#[test]
fn sigterm_while_the_commands_run_stops_them_and_releases_every_lease() {
    let Some(w) = World::new() else { return };
    let run = two_shards_running(&w);
    assert_eq!(live(&w.sim).len(), 2);
    let sent = Instant::now();
    run.signal("TERM");
    let out = run.finish();
    out.expect_code(143);
    assert!(sent.elapsed() < Duration::from_secs(30), "{out}");
    let report = out.json();
    assert_eq!(report["exitCode"], 143);
    for s in report["shards"].as_array().unwrap() {
        assert_eq!(s["ended"], "interrupted", "{out}");
    }
    nothing_left(&w);
}

#[test]
fn fail_fast_stops_the_other_shards_after_the_first_failure() {
    let Some(w) = World::new() else { return };
    let started = Instant::now();
    let out = w.cbx(&[
        "shard",
        "--count",
        "3",
        "--fail-fast",
        "--",
        "sh",
        "-c",
        "if [ \"$CBX_SHARD_INDEX\" = 2 ]; then exit 4; fi; echo waiting; sleep 60",
    ]);
    out.expect_code(4);
    assert!(started.elapsed() < Duration::from_secs(45), "{out}");
    assert!(
        out.stderr
            .contains("[2/3] failed; --fail-fast stops the other shards"),
        "{out}"
    );
    let table = rows(&out, 3);
    assert!(table[1].contains("exit 4"), "{table:?}");
    assert!(table[0].contains("cancelled"), "{table:?}");
    assert!(table[2].contains("cancelled"), "{table:?}");
    nothing_left(&w);
}

#[test]
fn keep_keeps_every_lease_and_prints_the_slugs() {
    let Some(w) = World::new() else { return };
    let out = w.cbx(&["shard", "--count", "2", "--keep", "--json", "--", "true"]);
    out.ok();
    let report = out.json();
    let slugs: Vec<String> = report["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["kept"], true);
            s["slug"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(
        out.stderr
            .contains(&format!("kept 2 leases: {} {}", slugs[0], slugs[1])),
        "{out}"
    );
    assert_eq!(live(&w.sim).len(), 2);
    for slug in &slugs {
        w.cbx(&["stop", slug]).ok();
    }
    nothing_left(&w);
}

#[test]
fn shard_from_a_checkpoint_and_from_a_lease_by_fork() {
    let Some(w) = World::new() else { return };
    let base = w.warmup("base");
    let sandbox = base["sandboxId"].as_str().unwrap().to_string();
    let home = w.gateway.sandbox_home(&sandbox).unwrap();
    std::fs::write(home.join("deps-installed"), "yes\n").unwrap();
    w.cbx(&["checkpoint", "create", "base", "--name", "deps"])
        .ok();

    let out = w.cbx(&[
        "shard",
        "--count",
        "2",
        "--from",
        "deps",
        "--",
        "cat",
        "../../../deps-installed",
    ]);
    out.ok();
    assert!(
        out.stderr
            .contains("shard: 2 sandboxes with daytona, each from checkpoint deps"),
        "{out}"
    );
    for i in 1..=2 {
        assert!(out.stdout.contains(&format!("[{i}/2] yes\n")), "{out}");
    }

    // The simulator's sandboxes are containers, which Daytona cannot fork: the plan says
    // forks; the first shard learns that the service cannot fork this one and falls back to a
    // fresh sandbox, and the others create fresh ones at once (no fork tried again).
    let forks = |w: &World| {
        w.sim
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/fork"))
            .count()
    };
    let out = w.cbx(&["shard", "--count", "3", "--from", "base", "--", "true"]);
    out.ok();
    assert!(
        out.stderr
            .contains("shard: 3 sandboxes with daytona, each a fork of lease base"),
        "{out}"
    );
    assert_eq!(
        out.stderr.matches("cannot fork sandbox").count(),
        1,
        "{out}"
    );
    assert_eq!(forks(&w), 1, "{out}");

    // A VM-class parent is forked, files and all.
    assert!(w.sim.set_class(&sandbox, "linux-vm"));
    let before = forks(&w);
    let out = w.cbx(&[
        "shard",
        "--count",
        "2",
        "--from",
        "base",
        "--",
        "cat",
        "../../../deps-installed",
    ]);
    out.ok();
    assert_eq!(forks(&w) - before, 2, "{out}");
    for i in 1..=2 {
        assert!(out.stdout.contains(&format!("[{i}/2] yes\n")), "{out}");
    }
    w.cbx(&["stop", "base"]).ok();
    w.cbx(&["checkpoint", "delete", "deps"]).ok();
    nothing_left(&w);
}

#[test]
fn shard_refuses_a_count_over_the_cap_and_a_missing_capability_before_anything() {
    let home = CbxHome::new(CBX);
    home.git(&["init", "-q"]);
    home.write_file("cbx.toml", "# team settings\n[shard]\nmax-count = 2\n");
    let out = home.run(&["shard", "--count", "3", "--", "true"]);
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("--count 3 is more than `[shard] max-count = 2` (repository config"),
        "{out}"
    );
    assert!(out.stderr.contains("cbx.toml:3"), "{out}");
    assert!(out.stderr.contains("hint: run fewer shards"), "{out}");

    let out = home.run_with_env(
        &[
            "shard",
            "--count",
            "2",
            "--env",
            "CBX_SHARD_INDEX",
            "--",
            "true",
        ],
        &[("CBX_SHARD_INDEX", "9")],
    );
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("--env CBX_SHARD_INDEX: cbx sets it itself, for each shard"),
        "{out}"
    );

    let out = home.run(&["shard", "--count", "0", "--", "true"]);
    out.expect_code(2);
    assert!(out.stderr.contains("--count must be at least 1"), "{out}");

    // The ssh provider has no checkpoints: --from a name that is no lease of its needs them.
    let out = home.run(&[
        "--provider",
        "ssh",
        "-o",
        "host=127.0.0.1",
        "shard",
        "--count",
        "2",
        "--from",
        "deps",
        "--",
        "true",
    ]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("needs the `checkpoint` capability")
            && out.stderr.contains("provider ssh does not offer it"),
        "{out}"
    );
}

#[test]
fn junit_reports_of_every_shard_are_summed_up_and_merged_into_one_file() {
    let Some(w) = World::new() else { return };
    let script = r#"mkdir -p out; c=""; if [ "$CBX_SHARD_INDEX" = 2 ]; then c='<testcase name="b"><failure message="boom"/></testcase>'; fi; printf '<testsuite name="suite%s"><testcase name="a"/>%s</testsuite>\n' "{index}" "$c" > out/junit.xml"#;
    let out = w.cbx(&[
        "shard",
        "--count",
        "2",
        "--junit",
        "out/*.xml",
        "--junit-out",
        "merged.xml",
        "--",
        "sh",
        "-c",
        script,
    ]);
    out.ok();
    assert!(
        out.stderr
            .contains("tests: 3 run, 2 passed, 1 failed, 0 errored, 0 skipped (2 reports)"),
        "{out}"
    );
    assert!(out.stderr.contains("FAILED [2/2] suite2 › b"), "{out}");
    let merged = std::fs::read_to_string(w.repo().join("merged.xml")).unwrap();
    assert!(
        merged.contains(r#"<testsuite name="[1/2] suite1">"#),
        "{merged}"
    );
    assert!(
        merged.contains(r#"<testcase name="b" shard="2/2"><failure message="boom"/>"#),
        "{merged}"
    );
    assert_eq!(merged.matches("<testsuites>").count(), 1, "{merged}");
    nothing_left(&w);
}

#[test]
fn shard_killed_outright_leaves_every_lease_to_the_next_command() {
    let Some(w) = World::new() else { return };
    let run = two_shards_running(&w);
    run.signal("KILL");
    run.finish().expect_code(137);
    assert_eq!(live(&w.sim).len(), 2);
    // Each shard's lease is on record as an intent of `cbx shard`, to be deleted.
    assert_eq!(records(&w.home, "intents").len(), 2);
    let list = w.cbx(&["list"]);
    list.ok();
    assert_eq!(list.stderr.matches("deleted sandbox").count(), 2, "{list}");
    assert!(list.stderr.contains("`cbx shard`"), "{list}");
    nothing_left(&w);
}

#[test]
fn shard_from_a_lease_of_a_provider_without_fork_says_it_creates_fresh_ones() {
    use cbx_testkit::sshd::{SshUser, Sshd, SshdGateway};
    if let Some(why) = SshdGateway::unavailable() {
        eprintln!("skipping: {why}");
        return;
    }
    let sshd = Sshd::start_with_pubkey().expect("start sshd");
    let user = SshUser::create().expect("create ssh user");
    let home = CbxHome::new(CBX);
    home.write_config(&format!(
        "provider = \"ssh\"\n[providers.ssh.options]\nhost = \"127.0.0.1\"\nport = {}\n\
         user = \"{}\"\nidentity-file = \"{}\"\n",
        sshd.port(),
        user.name(),
        user.key().display(),
    ));
    home.git(&["init", "-q"]);
    home.write_file("file", "hello\n");
    home.git(&["add", "."]);
    home.run(&["warmup", "--slug", "box"]).ok();

    let out = home.run(&[
        "shard", "--count", "2", "--from", "box", "--", "echo", "{index}",
    ]);
    out.ok();
    assert!(
        out.stderr.contains(
            "shard: 2 sandboxes with ssh, each created fresh: ssh has no `fork` capability, \
             so lease box is not copied"
        ),
        "{out}"
    );
    for i in 1..=2 {
        assert!(out.stdout.contains(&format!("[{i}/2] {i}\n")), "{out}");
    }
    home.run(&["stop", "box"]).ok();
    let list = home.run(&["list", "--json"]);
    list.ok();
    assert_eq!(list.json().as_array().unwrap().len(), 0, "{list}");
}

#[test]
fn sighup_while_the_shards_connect_and_sync_leaves_nothing() {
    let Some(w) = World::new() else { return };
    let run = Running::start(
        &w.home,
        &["shard", "--count", "2", "--", "true"],
        "run:touched",
        None,
    );
    run.wait_paused("run:touched");
    run.wait_for("[2/2] leased");
    run.wait_for("[1/2] leased");
    run.signal("HUP");
    let out = run.finish();
    out.expect_code(129);
    assert_eq!(rows(&out, 2).len(), 2, "{out}");
    assert!(
        rows(&out, 2).iter().all(|r| r.contains("interrupted")),
        "{out}"
    );
    nothing_left(&w);
}

#[test]
fn on_a_terminal_the_shards_draw_no_spinners_over_one_another() {
    let Some(w) = World::new() else { return };
    let base = w
        .home
        .command(&["shard", "--count", "2", "--", "echo", "hi"]);
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
    let line: Vec<String> = std::iter::once(base.get_program())
        .chain(base.get_args())
        .map(quote)
        .collect();
    // `script` runs cbx with a pseudo-terminal as its stdout and stderr.
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec", &line.join(" "), "/dev/null"])
        .current_dir(base.get_current_dir().unwrap())
        .env_clear()
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::null());
    for (k, v) in base.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let out = cmd.output().expect("run script");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for i in 1..=2 {
        assert!(text.contains(&format!("[{i}/2] leased cbx_")), "{text}");
        assert!(text.contains(&format!("[{i}/2] hi")), "{text}");
    }
    // The shards' own progress (a spinner each on a terminal) is left out.
    assert!(!text.contains("creating a daytona sandbox"), "{text}");
    assert!(!text.contains("connecting over SSH"), "{text}");
    nothing_left(&w);
}

#[test]
fn an_expired_lease_is_deleted_once_not_by_every_shard() {
    let Some(w) = World::new() else { return };
    let old = w.warmup("old");
    let id = old["leaseId"].as_str().unwrap();
    let claim = w.home.state_dir().join("claims").join(format!("{id}.json"));
    let text = std::fs::read_to_string(&claim).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["expiresAt"] = "2000-01-01T00:00:00Z".into();
    std::fs::write(&claim, v.to_string()).unwrap();

    let out = w.cbx(&["shard", "--count", "3", "--", "true"]);
    out.ok();
    assert_eq!(
        out.stderr
            .matches(&format!("deleted expired lease {id}"))
            .count(),
        1,
        "{out}"
    );
    assert!(!out.stderr.contains("warning"), "{out}");
    nothing_left(&w);
}

#[test]
fn fail_fast_after_a_lease_that_cannot_be_made_cancels_the_others_before_their_commands() {
    let Some(w) = World::new() else { return };
    w.sim.inject(Fault::status(
        "POST",
        "/api/sandbox",
        400,
        "Invalid request: no capacity in this region",
    ));
    let started = Instant::now();
    let out = w.cbx(&[
        "shard",
        "--count",
        "3",
        "--fail-fast",
        "--",
        "sh",
        "-c",
        "echo ran; sleep 60",
    ]);
    assert!(started.elapsed() < Duration::from_secs(45), "{out}");
    assert_ne!(out.code, 0, "{out}");
    let table = rows(&out, 3);
    assert_eq!(
        table.iter().filter(|r| r.contains("error (exit")).count(),
        1,
        "{out}"
    );
    assert_eq!(
        table.iter().filter(|r| r.contains("cancelled")).count(),
        2,
        "{out}"
    );
    assert!(!out.stdout.contains("ran"), "no command ran: {out}");
    nothing_left(&w);
}

/// The file list is made while the providers load (issue 14); a tree past the limits still
/// fails with its own error before any shard is leased.
#[test]
fn a_tree_past_the_limits_leases_no_shard() {
    let Some(w) = World::new() else { return };
    // 6 GB, sparse: listed by its size, never read.
    let big = std::fs::File::create(w.repo().join("huge.bin")).unwrap();
    big.set_len(6 << 30).unwrap();
    drop(big);
    let out = w.cbx(&["shard", "--count", "2", "--", "true"]);
    out.expect_code(6);
    assert!(
        out.stderr.contains("the tree to sync is very large"),
        "{out}"
    );
    assert!(w.sim.sandboxes().is_empty(), "no shard was leased: {out}");
    nothing_left(&w);
}
