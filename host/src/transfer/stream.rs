//! The ssh processes that carry tar streams to and from a sandbox over the lease's
//! multiplexed connection. The tar side runs on a blocking thread, fed through a bounded
//! channel, so a large transfer never sits in memory; dropping a transfer (a signal) kills its
//! ssh and ends the unpack, which then removes the file it was writing.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::Stdio;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::pattern::MISSING;
use super::unpack::{Place, Unpacked, unpack};
use crate::error::{ErrorKind, Failure};
use crate::redact::Redactor;
use crate::ssh::SshClient;

/// What one fetch received.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    /// What was written and refused.
    pub unpacked: Unpacked,
    /// The indexes of the patterns that matched nothing.
    pub missing: Vec<usize>,
    /// The remote command's exit status (through ssh; `None` when ssh was killed).
    pub status: Option<i32>,
    /// What the remote side printed on stderr (markers removed), secrets redacted.
    pub stderr: String,
    /// Why the stream could not be unpacked to its end, if it could not.
    pub broken: Option<String>,
}

impl Fetched {
    /// Whether everything the sandbox meant to send arrived and was unpacked.
    pub fn complete(&self) -> bool {
        self.status == Some(0) && self.broken.is_none()
    }
}

/// A [`Read`] over chunks from an async task; the end of the channel is the end of the data.
struct ChannelReader {
    rx: mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A [`Write`] that hands chunks to an async task.
struct ChannelWriter(mpsc::Sender<Vec<u8>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .blocking_send(buf.to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the ssh connection closed"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs the remote `command` (a [`super::pattern::fetch_command`]) and unpacks the tar stream
/// it writes at `place`.
pub async fn fetch(
    ssh: &SshClient,
    command: String,
    place: Place,
    redactor: &Redactor,
) -> Result<Fetched> {
    let mut cmd = ssh.ssh();
    cmd.args(["-T", ssh.alias()])
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::new(ErrorKind::Other, crate::ssh::spawn_error(&e)))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let (tx, rx) = mpsc::channel::<Vec<u8>>(16);
    let unpacker = tokio::task::spawn_blocking(move || {
        let mut out = Unpacked::default();
        let reader = ChannelReader {
            rx,
            chunk: Vec::new(),
            at: 0,
        };
        let result = unpack(reader, &place, &mut out);
        (out, result)
    });
    let pump = async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut open = true;
        loop {
            let n = stdout.read(&mut buf).await?;
            if n == 0 {
                return Ok::<(), io::Error>(());
            }
            // After the end of the archive (or a failed unpack), read the rest away so the
            // remote tar is not killed by a closed pipe.
            if open && tx.send(buf[..n].to_vec()).await.is_err() {
                open = false;
            }
        }
    };
    let mut err = Vec::new();
    let (pumped, _, status) = tokio::join!(pump, stderr.read_to_end(&mut err), child.wait());
    let (unpacked, result) = unpacker
        .await
        .map_err(|e| anyhow::anyhow!("the unpacking thread failed: {e}"))?;
    let mut fetched = Fetched {
        unpacked,
        status: status.ok().and_then(|s| s.code()),
        ..Fetched::default()
    };
    let mut other = Vec::new();
    for line in String::from_utf8_lossy(&err).lines() {
        match line
            .strip_prefix(MISSING)
            .and_then(|i| i.trim().parse().ok())
        {
            Some(i) => fetched.missing.push(i),
            None => other.push(line.to_string()),
        }
    }
    fetched.stderr = redactor.redact(other.join("\n").trim());
    fetched.broken = match (result, pumped) {
        (Err(e), _) => Some(e.to_string()),
        (Ok(()), Err(e)) => Some(format!("reading from ssh: {e}")),
        _ => None,
    };
    Ok(fetched)
}

/// Packs `local` (its top entry named `name`) and sends it to the remote `command` (a
/// [`super::pattern::send_command`]); fails with what the remote side said.
pub async fn send(
    ssh: &SshClient,
    command: String,
    local: PathBuf,
    name: String,
    redactor: &Redactor,
) -> Result<()> {
    let mut cmd = ssh.ssh();
    cmd.args(["-T", ssh.alias()])
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::new(ErrorKind::Other, crate::ssh::spawn_error(&e)))?;
    let mut stdin = child.stdin.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16);
    let packer =
        tokio::task::spawn_blocking(move || super::pack::pack(&local, &name, ChannelWriter(tx)));
    let feed = async move {
        while let Some(chunk) = rx.recv().await {
            stdin.write_all(&chunk).await?;
        }
        stdin.shutdown().await
    };
    let mut err = Vec::new();
    let (fed, _, status) = tokio::join!(feed, stderr.read_to_end(&mut err), child.wait());
    let packed = packer
        .await
        .map_err(|e| anyhow::anyhow!("the packing thread failed: {e}"))?;
    let remote = redactor.redact(String::from_utf8_lossy(&err).trim());
    let status = status?;
    if let Err(e) = packed {
        return Err(Failure::new(
            ErrorKind::Other,
            format!("could not read what to send: {e}"),
        )
        .into());
    }
    if !status.success() || fed.is_err() {
        return Err(Failure::new(
            ErrorKind::Other,
            format!(
                "the sandbox did not take the files (exit {}){}",
                status.code().unwrap_or(-1),
                if remote.is_empty() {
                    String::new()
                } else {
                    format!(": {remote}")
                }
            ),
        )
        .into());
    }
    Ok(())
}
