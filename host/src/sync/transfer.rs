//! Sending the files: the round trip that creates the work directory, prunes what was deleted
//! locally and reports the sandbox's tools (when there is something to prune or the tools are
//! not known), and `rsync --files-from` over the lease's ssh connection, which creates the
//! work directory itself. Secrets are scrubbed from whatever the tools print.

use std::process::Stdio;

use anyhow::{Context, Result};
use tokio::io::AsyncWriteExt;

use super::files::FileList;
use super::tools::RemoteTools;
use super::transport::{ToolMissing, not_found};
use crate::error::{ErrorKind, Failure};
use crate::redact::Redactor;
use crate::remote::quote;
use crate::ssh::SshClient;

/// Creates the work directory, prunes what was deleted locally (`deleted`, NUL-separated on
/// stdin, never on a command line) and reports the sandbox's tools: one round trip.
pub(super) async fn prepare(
    ssh: &SshClient,
    remote_dir: &str,
    deleted: &[&[u8]],
    redactor: &Redactor,
) -> Result<RemoteTools> {
    let mut deleted_in = Vec::new();
    for p in deleted {
        deleted_in.extend_from_slice(p);
        deleted_in.push(0);
    }
    let dir = quote(remote_dir);
    let line = format!(
        "mkdir -p -- {dir} && cd -- {dir} && xargs -0 rm -f -- && {}",
        RemoteTools::PROBE
    );
    let out = ssh
        .output_with_input(&line, &deleted_in)
        .await
        .map_err(|e| Failure::new(ErrorKind::Sync, crate::ssh::spawn_error(&e)))?;
    let remote = succeeded(out, "prepare the work directory", redactor)?;
    Ok(RemoteTools::parse(&String::from_utf8_lossy(&remote)))
}

/// Sends the listed files (`files_in`, NUL-separated) with rsync, the sandbox's rsync creating
/// the work directory first. Returns how many files rsync transferred.
pub(super) async fn rsync(
    ssh: &SshClient,
    list: &FileList,
    remote_dir: &str,
    tools: &RemoteTools,
    files_in: &[u8],
    redactor: &Redactor,
) -> Result<Option<u64>> {
    let mut rsync = tokio::process::Command::new("rsync");
    rsync
        .args([
            "--links",
            "--perms",
            "--times",
            "--stats",
            "--timeout=300",
            "--files-from=-",
            "--from0",
        ])
        .arg("-e")
        .arg(ssh.rsync_shell())
        // Run by the sandbox's shell, as a prepare round trip would.
        .arg(format!(
            "--rsync-path=mkdir -p -- {} && rsync",
            quote(remote_dir)
        ));
    if !is_loopback(&ssh.target().host) {
        rsync.arg("--compress");
    }
    // rsync's quick check compares whole seconds: a file rewritten at the same size within
    // the second of the previous sync would be skipped. Nanoseconds, where the sandbox's
    // rsync can compare them.
    if compares_nanoseconds(tools.rsync_version.as_deref().unwrap_or_default()) {
        rsync.arg("--modify-window=-1");
    }
    let mut source = list.root.as_os_str().to_owned();
    source.push("/");
    rsync
        .arg(source)
        .arg(format!("{}:{}/", ssh.alias(), remote_dir));
    run_rsync(rsync, files_in, redactor).await
}

/// Whether an `rsync --version` first line names a version that compares modification times
/// to the nanosecond (`--modify-window=-1`, rsync 3.1.3 and later).
fn compares_nanoseconds(version_line: &str) -> bool {
    let Some(version) = version_line
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
    else {
        return false;
    };
    let numbers: Vec<u32> = version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|n| !n.is_empty())
        .take(3)
        .map_while(|n| n.parse().ok())
        .collect();
    numbers.len() == 3 && (numbers[0], numbers[1], numbers[2]) >= (3, 1, 3)
}

/// Starts `cmd` with `input` on its stdin (written while it runs, so it never waits on a
/// full pipe) and waits for `tool`; `spawn_error` says why it could not start.
async fn output_with_input(
    mut cmd: tokio::process::Command,
    input: &[u8],
    tool: &str,
    spawn_error: impl FnOnce(&std::io::Error) -> String,
) -> Result<std::process::Output> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::new(ErrorKind::Sync, spawn_error(&e)))?;
    let mut stdin = child.stdin.take().expect("piped");
    let input = input.to_vec();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
    });
    let out = child
        .wait_with_output()
        .await
        .with_context(|| format!("wait for {tool}"));
    let _ = writer.await;
    out
}

/// The stdout of a remote step that ended well; else a sync error with its exit and stderr.
fn succeeded(out: std::process::Output, what: &str, redactor: &Redactor) -> Result<Vec<u8>> {
    if !out.status.success() {
        return Err(Failure::new(
            ErrorKind::Sync,
            format!(
                "could not {what} on the sandbox (ssh exit {}): {}",
                out.status.code().unwrap_or(-1),
                redactor.redact(String::from_utf8_lossy(&out.stderr).trim())
            ),
        )
        .into());
    }
    Ok(out.stdout)
}

/// Runs rsync with the file list on stdin; returns the number of files it transferred.
async fn run_rsync(
    cmd: tokio::process::Command,
    list: &[u8],
    redactor: &Redactor,
) -> Result<Option<u64>> {
    let out = output_with_input(cmd, list, "rsync", |e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            "rsync is not installed on this machine (install it, e.g. apt-get install rsync)"
                .to_string()
        } else {
            format!("could not run rsync: {e}")
        }
    })
    .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = redactor.redact(String::from_utf8_lossy(&out.stderr).trim());
    match out.status.code() {
        Some(0) => {}
        // Files vanished between listing and sending: the rest arrived.
        Some(24) => tracing::warn!("some files vanished during the sync: {stderr}"),
        code => {
            let f = Failure::new(
                ErrorKind::Sync,
                format!("rsync failed (exit {}): {stderr}", code.unwrap_or(-1)),
            );
            if not_found(code, &stderr, "rsync") {
                return Err(ToolMissing(f.hint("the sandbox needs rsync installed (use an image or snapshot that has it), or pass --no-sync")).into());
            }
            return Err(f.into());
        }
    }
    Ok(stdout
        .lines()
        .find_map(|l| l.strip_prefix("Number of regular files transferred:"))
        .and_then(|n| n.trim().replace(',', "").parse().ok()))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanosecond_comparison_needs_rsync_3_1_3() {
        for (line, yes) in [
            ("rsync  version 3.2.7  protocol version 31", true),
            ("rsync  version v3.4.1  protocol version 32", true),
            ("rsync  version 3.1.3  protocol version 31", true),
            ("rsync  version 3.1.2  protocol version 31", false),
            ("rsync  version 2.6.9  protocol version 29", false),
            ("", false),
            ("sh: rsync: not found", false),
        ] {
            assert_eq!(compares_nanoseconds(line), yes, "{line:?}");
        }
    }
}
