//! The tar transport, for sandboxes without rsync: the changed files as one tar stream over
//! the lease's ssh connection into `tar -x` in the work directory. It needs only `sh` and
//! `tar` on the sandbox. Which files changed is decided against what the last sync sent
//! ([`super::sent`]); pruning happens before, in the prepare round trip, as for rsync. The
//! remote side creates the work directory itself, so a sync with nothing to prune is one
//! round trip.
//!
//! The archive is built on a blocking thread from the files as they are on disk (symbolic
//! links as links, modes and modification times kept) and streamed in chunks, so a large
//! tree never sits in memory. Paths come from git's listing: relative, no `..`.

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::error::{ErrorKind, Failure};
use crate::redact::Redactor;
use crate::remote::quote;
use crate::ssh::{SessionStdin, SshClient};

/// Bytes per chunk handed from the archive builder to ssh.
const CHUNK: usize = 256 * 1024;

/// Sends `files` (relative to `root`) into `remote_dir` as a tar stream; returns how many
/// regular files were sent (files that vanished meanwhile are left out, as rsync does).
pub(super) async fn send(
    ssh: &SshClient,
    root: &Path,
    remote_dir: &str,
    files: Vec<Vec<u8>>,
    redactor: &Redactor,
) -> Result<u64> {
    // `-o`: files belong to whoever extracts them, never to the uid recorded here.
    let line = format!(
        "mkdir -p -- {dir} && cd -- {dir} && tar -x -o -f -",
        dir = quote(remote_dir)
    );
    let mut session = ssh
        .start(&line, SessionStdin::Piped)
        .await
        .map_err(|e| Failure::new(ErrorKind::Sync, crate::ssh::spawn_error(&e)))?;
    let mut stdin = session.stdin.take().expect("piped");
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4);
    let root = root.to_path_buf();
    let builder = tokio::task::spawn_blocking(move || archive(&root, &files, tx));
    let forward = async move {
        while let Some(chunk) = rx.recv().await {
            if stdin.write_all(&chunk).await.is_err() {
                // The remote tar is gone: its exit says why.
                break;
            }
        }
    };
    let (_, out) = tokio::join!(forward, session.output());
    let out = out.map_err(|e| Failure::new(ErrorKind::Sync, format!("wait for ssh: {e}")))?;
    let built = builder
        .await
        .map_err(|e| Failure::new(ErrorKind::Sync, format!("the tar builder failed: {e}")))?;
    match built {
        Ok(sent) if out.status.success() => Ok(sent),
        // A file that could not be read ends the stream early: that, not the remote tar's
        // complaint about the short archive, is what went wrong.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::new(
            ErrorKind::Sync,
            format!("could not read a file to send: {e}"),
        )
        .into()),
        _ => {
            let failure = remote_failure(&out, redactor);
            let stderr = String::from_utf8_lossy(&out.stderr);
            if super::transport::not_found(out.status.code(), &stderr, "tar") {
                Err(super::transport::ToolMissing(failure).into())
            } else {
                Err(failure.into())
            }
        }
    }
}

/// The failure of the remote `tar -x`, with what it printed.
fn remote_failure(out: &std::process::Output, redactor: &Redactor) -> Failure {
    let code = out.status.code().unwrap_or(-1);
    let stderr = redactor.redact(String::from_utf8_lossy(&out.stderr).trim());
    let mut f = Failure::new(
        ErrorKind::Sync,
        format!("tar failed on the sandbox (exit {code}): {stderr}"),
    );
    if code == 127 || stderr.contains("not found") {
        f = f.hint("the sandbox needs tar (or rsync) to receive files: use an image or snapshot that has it (see docs/providers/daytona.md), or pass --no-sync");
    }
    f
}

/// Writes the archive of `files` into `tx`, chunk by chunk; returns how many regular files
/// it holds.
fn archive(root: &Path, files: &[Vec<u8>], tx: mpsc::Sender<Vec<u8>>) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let mut builder = tar::Builder::new(Chunks {
        tx,
        buf: Vec::with_capacity(CHUNK),
    });
    builder.follow_symlinks(false);
    let mut sent = 0;
    for rel in files {
        let name = Path::new(std::ffi::OsStr::from_bytes(rel));
        let full = root.join(name);
        // Counted as rsync counts: regular files (a link is sent, not counted).
        let regular = std::fs::symlink_metadata(&full).is_ok_and(|m| m.is_file());
        match builder.append_path_with_name(&full, name) {
            Ok(()) => sent += u64::from(regular),
            // Deleted between listing and sending: the rest still arrives.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!("{} vanished during the sync", name.display());
            }
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("{}: {e}", name.display()),
                ));
            }
        }
    }
    let mut chunks = builder.into_inner()?;
    chunks.flush()?;
    Ok(sent)
}

/// A writer handing full chunks to the async side.
struct Chunks {
    tx: mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl Write for Chunks {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "ssh ended early"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_remote_tar_says_what_to_do() {
        use std::os::unix::process::ExitStatusExt;
        let out = std::process::Output {
            status: std::process::ExitStatus::from_raw(127 << 8),
            stdout: Vec::new(),
            stderr: b"sh: 1: tar: not found\n".to_vec(),
        };
        let f = remote_failure(&out, &Redactor::new());
        assert_eq!(f.kind, ErrorKind::Sync);
        assert_eq!(
            f.message,
            "tar failed on the sandbox (exit 127): sh: 1: tar: not found"
        );
        assert!(f.hint.as_deref().unwrap().contains("--no-sync"));
    }

    /// The archive holds exactly the files asked for — odd names, links as links, modes and
    /// modification times kept — and leaves out a file that vanished.
    #[test]
    fn the_archive_keeps_names_links_modes_and_times() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("d i r")).unwrap();
        std::fs::write(root.join("d i r/-odd name\n.txt"), "odd").unwrap();
        std::fs::write(root.join("run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::os::unix::fs::symlink("run.sh", root.join("link")).unwrap();
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        std::fs::File::options()
            .write(true)
            .open(root.join("run.sh"))
            .unwrap()
            .set_modified(when)
            .unwrap();
        let files: Vec<Vec<u8>> = ["d i r/-odd name\n.txt", "gone", "link", "run.sh"]
            .iter()
            .map(|f| f.as_bytes().to_vec())
            .collect();
        let (tx, mut rx) = mpsc::channel(1024);
        let sent = archive(root, &files, tx).unwrap();
        assert_eq!(sent, 2, "two regular files and a link");
        let mut bytes = Vec::new();
        while let Ok(chunk) = rx.try_recv() {
            bytes.extend(chunk);
        }
        let mut read = tar::Archive::new(bytes.as_slice());
        let mut seen = Vec::new();
        for entry in read.entries().unwrap() {
            let entry = entry.unwrap();
            let h = entry.header();
            let path = entry.path().unwrap().display().to_string();
            match path.as_str() {
                "link" => {
                    assert_eq!(h.entry_type(), tar::EntryType::Symlink);
                    assert_eq!(h.link_name().unwrap().unwrap().to_str(), Some("run.sh"));
                }
                "run.sh" => {
                    assert_eq!(h.mode().unwrap() & 0o777, 0o755);
                    assert_eq!(h.mtime().unwrap(), 1_700_000_000);
                }
                _ => {}
            }
            seen.push(path);
        }
        assert_eq!(seen, ["d i r/-odd name\n.txt", "link", "run.sh"]);
    }
}
