//! The full path of `cbx run --id` with a sync to make (issue 14, point 2): the run's file
//! list is made while cbx loads the provider and asks it about the lease, touches it and logs
//! in, so the listing's time should not add to the run's. Measured with 50 ms of API latency,
//! after a new file (so git lists the tree again, and one file is sent) and with the master
//! connection closed (so the run takes the full path: `GET`, touch, a new login). Compared
//! with the listing alone and, given `--before PATH`, with another cbx binary (the build
//! before a change) doing the same.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cbx::environment::Environment;
use cbx::sync::FileList;
use cbx_testkit::daytona_sim::DaytonaSim;
use cbx_testkit::home::CbxHome;

use super::{CBX, Goal, Opts, Res, Row, print_row, rotate, run, run_ok};

/// Appends the full-path rows.
pub(super) fn rows(
    o: &Opts,
    rows: &mut Vec<Row>,
    sim: &DaytonaSim,
    home: &CbxHome,
    tree: &Path,
    lease: &str,
) -> Res<()> {
    let config = home
        .state_dir()
        .join("secrets")
        .join(lease)
        .join("ssh_config");
    let alias = format!("cbx-{lease}");
    let added = tree.join("added");
    std::fs::create_dir_all(&added)?;
    let n = std::cell::Cell::new(0u32);
    // A new file (git must list the tree again; one file to send) and no master connection.
    let prepare = || -> Res<()> {
        n.set(n.get() + 1);
        std::fs::write(added.join(format!("new-{}.txt", n.get())), "new\n")?;
        let mut exit = Command::new("ssh");
        exit.arg("-F").arg(&config).args(["-O", "exit", &alias]);
        let _ = run(exit);
        Ok(())
    };
    let cbx_run = |bin: &Path| -> Res<Duration> {
        prepare()?;
        Ok(run_ok("cbx run (full path)", command(home, bin, tree))?.wall)
    };
    let cache = tempfile::Builder::new()
        .prefix("cbx-bench-listing-")
        .tempdir()?;
    let env = Environment::capture();
    let mut listing = || -> Res<Duration> {
        prepare()?;
        let t = Instant::now();
        let list = FileList::collect_cached(tree, cache.path(), &env)?;
        list.check_size(true, &|_| {})?;
        Ok(t.elapsed())
    };
    sim.set_latency(Duration::from_millis(50));
    let result = (|| -> Res<Row> {
        let mut row = Row::new(
            "data.full_path_sync_50ms",
            "data",
            format!(
                "data: run --id, full path + sync, {} files, API 50 ms",
                o.files
            ),
            Goal::None,
        );
        let mut alone = super::Samples::default();
        for i in 0..=o.proc.min(10) {
            let mut this = || cbx_run(Path::new(CBX));
            let mut before = || match &o.before {
                Some(bin) => cbx_run(bin),
                None => Ok(Duration::ZERO),
            };
            let t = rotate(i, &mut [&mut this, &mut listing, &mut before])?;
            if i > 0 {
                row.cbx.push(t[0]);
                alone.push(t[1]);
                if o.before.is_some() {
                    row.base("the same, cbx before").push(t[2]);
                }
            }
        }
        row.note = Some(format!(
            "`cbx run --id X -- true` in the {}-file tree after adding a file (git lists the tree again; one file is sent), with the master connection closed (full path: GET, touch, a new login) and 50 ms of API latency; the listing alone (FileList::collect_cached + check_size, same state) takes {}{}",
            o.files,
            super::fmt_secs(alone.median()),
            if o.before.is_some() {
                "; the baseline is the binary given with --before, the three measured in rotating order"
            } else {
                ""
            }
        ));
        Ok(row)
    })();
    sim.set_latency(Duration::ZERO);
    let _ = std::fs::remove_dir_all(&added);
    let row = result?;
    print_row(&row);
    rows.push(row);
    Ok(())
}

/// `bin run --id bench -- true` in `dir`, with `home`'s environment.
fn command(home: &CbxHome, bin: &Path, dir: &Path) -> Command {
    let model = home.command(&["run", "--id", "bench", "--", "true"]);
    let mut cmd = Command::new(bin);
    cmd.args(model.get_args()).env_clear().current_dir(dir);
    for (k, v) in model.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd
}
