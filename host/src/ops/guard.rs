//! Never running a user's command twice when a warm run falls back.
//!
//! A warm `cbx run --id` (or `cbx ssh`) goes straight to the command over the live
//! multiplexing connection, without asking the provider anything (`lease::warm`). When the
//! connection fails, cbx falls back to the full path — ask the provider, start the sandbox,
//! mint access — and runs the command then, but only if it did not start the first time.
//! ssh's exit status cannot say: 255 is both ssh's own failure and a command's `exit 255`,
//! and a connection lost just after the command started looks like one lost just before.
//!
//! So the warm run's remote command line first creates an empty file named by a fresh run id,
//! `~/.cbx/runs/<hour>/<unix time>-<random hex>` (shell builtins only: no process, no extra
//! round trip; `mkdir` once an hour), and only then runs the command. After ssh exits 255, cbx asks whether that file
//! exists — over the same connection while its master is up, else over the connection the
//! full path makes, before it runs anything:
//!
//! - it exists: the command started, and its status is passed through (255, with a warning
//!   when the connection is gone); it is never run again;
//! - it does not: the shell never got as far as the command (the login was refused, the
//!   sandbox was stopped, the connection broke first); the full path runs it, once;
//! - the question cannot be answered: the full path asks again, and a failure there ends
//!   the command with that failure, without running it.
//!
//! Run files are kept a day: later warm runs remove the hour directories older than that, in
//! the background. The prelude looks at directory names only (at most 25), so its cost does
//! not grow with the number of runs; with one flat directory of files (cbx before this
//! layout, whose files it also removes) it looped over every run of the last day, +2.4 ms
//! on a warm run after 300 runs.

use std::process::{ExitStatus, Stdio};

use anyhow::Result;

use crate::error::{ErrorKind, fail};
use crate::lease::id::LeaseId;
use crate::lease::now_unix;
use crate::ssh::SshClient;

/// Where run files live, relative to the login directory.
const RUNS: &str = ".cbx/runs";
/// Run files older than this (seconds) are removed.
const KEEP_SECS: i64 = 86_400;
/// Run files are grouped in directories per this many seconds.
const BUCKET_SECS: i64 = 3_600;

/// The run file of one warm run (see the module documentation).
#[derive(Debug, Clone)]
pub struct RunGuard {
    /// The hour directory, `unix time / BUCKET_SECS`.
    bucket: i64,
    id: String,
}

impl Default for RunGuard {
    fn default() -> Self {
        RunGuard::new()
    }
}

impl RunGuard {
    /// A guard with a fresh run id.
    pub fn new() -> RunGuard {
        let now = now_unix();
        RunGuard {
            bucket: now / BUCKET_SECS,
            id: format!("{now}-{}", &LeaseId::generate().as_str()[4..]),
        }
    }

    fn dir(&self) -> String {
        format!("{RUNS}/{}", self.bucket)
    }

    fn path(&self) -> String {
        format!("{}/{}", self.dir(), self.id)
    }

    /// Shell text to put before the command line: creates the run file, and removes old ones
    /// in the background.
    pub fn prelude(&self) -> String {
        let cutoff = now_unix() - KEEP_SECS;
        // Hour directories are named by a number; a name with `-` is a run file of the flat
        // layout, named by its unix time.
        format!(
            "[ -d {dir} ] || mkdir -p {dir}; {{ : > {path}; }} 2>/dev/null; o=; \
             for f in {RUNS}/*; do t=${{f##*/}}; case $t in *-*) [ \"${{t%%-*}}\" -lt {cutoff} ];; \
             *) [ \"$t\" -lt {old_bucket} ];; esac 2>/dev/null && o=\"$o $f\"; done; \
             if [ -n \"$o\" ]; then rm -rf -- $o </dev/null >/dev/null 2>&1 & fi; ",
            dir = self.dir(),
            path = self.path(),
            old_bucket = cutoff / BUCKET_SECS,
        )
    }

    /// Whether the command started (its run file exists); `None` when ssh could not say.
    pub async fn started(&self, ssh: &SshClient) -> Option<bool> {
        let mut cmd = ssh.ssh();
        cmd.arg(ssh.alias())
            .arg(format!("test -e {}", self.path()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match cmd.status().await.ok()?.code() {
            Some(0) => Some(true),
            Some(1) => Some(false),
            _ => None,
        }
    }

    /// Whether a warm run that ended with `status` failed before its command started: ssh
    /// exited 255 and the live connection does not show the run file (or is gone).
    pub async fn failed_before_start(&self, ssh: &SshClient, status: &ExitStatus) -> bool {
        if status.code() != Some(255) {
            return false;
        }
        // Asked over the live connection only: without one, the full path asks.
        !ssh.master_alive() || self.started(ssh).await != Some(true)
    }

    /// On the full path, before the command runs again after its warm run failed: `None`
    /// when it never started (run it); `Some(255)` when it did (not run again; the warning
    /// says the connection was lost); an error when that cannot be found out.
    pub async fn before_rerun(&self, ssh: &SshClient, slug: &str) -> Result<Option<u8>> {
        match self.started(ssh).await {
            Some(false) => Ok(None),
            Some(true) => {
                tracing::warn!("{}", lost_connection(slug));
                Ok(Some(255))
            }
            None => Err(fail(
                ErrorKind::Sandbox,
                "the connection to the sandbox failed, and cbx could not find out whether the \
                 command had started; it did not run it again",
            )),
        }
    }
}

/// The warning for a command whose connection was lost while it ran (lease `slug`).
pub fn lost_connection(slug: &str) -> String {
    format!(
        "ssh exited 255 and its connection to the sandbox is gone: the connection was lost, \
         and the command may not have finished (run it again, or look with `cbx ssh {slug}`)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The prelude in a real shell: it creates the run file, removes only old run files, and
    /// lets the command after it run with its own status — in dash and in bash.
    #[test]
    fn the_prelude_marks_the_run_and_cleans_up_old_ones() {
        for shell in ["sh", "bash"] {
            prelude_in(shell);
        }
    }

    fn prelude_in(shell: &str) {
        let home = tempfile::tempdir().unwrap();
        let runs = home.path().join(RUNS);
        std::fs::create_dir_all(&runs).unwrap();
        // The flat layout of earlier cbx versions: an old and a recent run file.
        std::fs::write(runs.join("1000-aaaa"), "").unwrap();
        let recent = format!("{}-bbbb", now_unix() - 60);
        std::fs::write(runs.join(&recent), "").unwrap();
        // Hour directories: one two days old, one from an hour ago.
        let hour = now_unix() / BUCKET_SECS;
        let old_dir = runs.join((hour - 48).to_string());
        std::fs::create_dir_all(&old_dir).unwrap();
        std::fs::write(old_dir.join("1-cccc"), "").unwrap();
        let last_hour = runs.join((hour - 1).to_string());
        std::fs::create_dir_all(&last_hour).unwrap();
        std::fs::write(last_hour.join("2-dddd"), "").unwrap();
        let guard = RunGuard::new();
        let status = std::process::Command::new(shell)
            .arg("-c")
            .arg(format!("{}wait; exit 7", guard.prelude()))
            .current_dir(home.path())
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(7), "{shell}");
        assert!(home.path().join(guard.path()).exists());
        assert!(runs.join(&recent).exists());
        assert!(last_hour.join("2-dddd").exists());
        assert!(!runs.join("1000-aaaa").exists());
        assert!(!old_dir.exists());
    }

    /// On a sandbox that never had a warm run, the prelude makes the directory itself.
    #[test]
    fn the_prelude_works_in_a_fresh_home() {
        let home = tempfile::tempdir().unwrap();
        let guard = RunGuard::new();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{}echo ran", guard.prelude()))
            .current_dir(home.path())
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\n");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "");
        assert!(home.path().join(guard.path()).exists());
    }
}
