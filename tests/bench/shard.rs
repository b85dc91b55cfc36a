//! The shard rows (issue 16): `cbx shard --count 4 -- sleep 2` against `cbx shard --count 1
//! -- sleep 2` — one shard's time plus one lease's set-up (create, wait, SSH access, sync,
//! release) — alternately, in the small repository, against the simulator and its sshd
//! gateway. Shards that really run in parallel, with their set-up concurrent, keep the ratio
//! near 1 (target ≤ 1.25×). And, from the same 4-shard runs, the time from starting `cbx
//! shard` to the first output line of the last shard to print one.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use cbx_testkit::home::CbxHome;

use super::{Goal, Opts, Ran, Res, Row, pair, print_row, run_ok};

/// How long each shard's command runs.
const COMMAND_SECS: &str = "2";
/// Shards in the parallel run.
const SHARDS: usize = 4;

/// Appends the two shard rows.
pub(super) fn rows(o: &Opts, rows: &mut Vec<Row>, home: &CbxHome) -> Res<()> {
    let runs = o.heavy.max(1);
    let mut wall = Row::new(
        "shard.wall_4",
        "data",
        format!("shard: 4 shards of sleep {COMMAND_SECS}"),
        Goal::Ratio(1.25),
    );
    let mut first = Row::new(
        "shard.last_first_line",
        "data",
        "shard: start to the last shard's 1st line",
        Goal::None,
    );
    for i in 0..=runs {
        let (four, one) = pair(i, || four_shards(home), || one_shard(home))?;
        if i > 0 {
            wall.cbx.push(four.0);
            first.cbx.push(four.1);
            wall.base("1 shard: one lease + its command").push(one.wall);
        }
    }
    wall.note = Some(format!(
        "wall time of `cbx shard --count {SHARDS} -- sleep {COMMAND_SECS}` vs `cbx shard --count 1` of the same command (one shard's time plus one lease's set-up and release), each a fresh lease per shard, synced from the 2-file repository"
    ));
    first.note = Some(format!(
        "from spawning `cbx shard --count {SHARDS} -- sh -c 'echo up; sleep {COMMAND_SECS}'` to the first line of the last shard to print one (all {SHARDS} leases created, ready, synced and running)"
    ));
    print_row(&wall);
    print_row(&first);
    rows.push(wall);
    rows.push(first);
    Ok(())
}

/// `cbx shard --count 1 -- sleep N`.
fn one_shard(home: &CbxHome) -> Res<Ran> {
    run_ok(
        "cbx shard --count 1",
        home.command(&["shard", "--count", "1", "--", "sleep", COMMAND_SECS]),
    )
}

/// `cbx shard --count 4`, its stdout read line by line: (wall time, time to the last shard's
/// first line).
fn four_shards(home: &CbxHome) -> Res<(Duration, Duration)> {
    let count = SHARDS.to_string();
    let script = format!("echo up; sleep {COMMAND_SECS}");
    let mut cmd = home.command(&["shard", "--count", &count, "--", "sh", "-c", &script]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().expect("piped");
    // Read on a thread: an ssh master that outlives cbx may hold the pipe open.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = [false; SHARDS];
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            for (i, s) in seen.iter_mut().enumerate() {
                *s |= line.starts_with(&format!("[{}/{SHARDS}] ", i + 1));
            }
            if seen.iter().all(|s| *s) {
                let _ = tx.send(started.elapsed());
                return;
            }
        }
    });
    let status = child.wait()?;
    let wall = started.elapsed();
    if !status.success() {
        return Err(format!("cbx shard --count {SHARDS} exited {status}").into());
    }
    let last_first = rx
        .recv_timeout(Duration::from_secs(5))
        .map_err(|_| "not every shard printed a line")?;
    Ok((wall, last_first))
}
