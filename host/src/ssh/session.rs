//! One command's session on a sandbox without a terminal: its stdout and stderr as byte
//! streams for cbx to relay, and its end as an exit status. A session goes over the lease's
//! live master connection when there is one ([`mux`](super::mux): no `ssh` process at all),
//! else through an `ssh -T` process, which connects (or fails) as it always has.
//!
//! Relayed output: a multiplexed session hands its output descriptors to the master
//! connection, which would otherwise hold cbx's own stdout and stderr open until the remote
//! command ends — long after a signal ended cbx — and whoever reads cbx's output (a CI
//! runner) would wait for it. cbx gives the session pipes instead and copies them to its own
//! streams chunk by chunk as they come; they close when cbx exits.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::process::{ExitStatus, Output, Stdio};

use tokio::io::{AsyncRead, AsyncWrite};

use super::{SshClient, mux};
use crate::terminal::inert;

/// What a session reads as its stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStdin {
    /// cbx's own stdin.
    Inherit,
    /// Nothing (`/dev/null`).
    Null,
    /// A pipe cbx writes to ([`RemoteSession::stdin`]).
    Piped,
}

/// A started session.
pub struct RemoteSession {
    /// The command's stdin, when it was asked for as [`SessionStdin::Piped`]; dropping it
    /// ends the command's input.
    pub stdin: Option<Box<dyn AsyncWrite + Unpin + Send>>,
    /// The command's stdout.
    pub stdout: Box<dyn AsyncRead + Unpin + Send>,
    /// The command's stderr (and, through an `ssh` process, ssh's own messages).
    pub stderr: Box<dyn AsyncRead + Unpin + Send>,
    /// Its end: the command's exit status as `ssh` would report it (255 for a lost
    /// connection). Dropping it ends the session.
    pub ended: Pin<Box<dyn Future<Output = io::Result<ExitStatus>> + Send>>,
}

/// Where a relayed session's stdout goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdoutTo {
    /// cbx's stdout.
    Stdout,
    /// cbx's stderr, keeping cbx's stdout for a report of its own (`run --json`).
    Stderr,
}

impl SshClient {
    /// Starts the remote command line `line`: over the live master when there is one, else
    /// with an `ssh -T` process.
    pub async fn start(&self, line: &str, stdin: SessionStdin) -> io::Result<RemoteSession> {
        if let Some(socket) = self.socket.as_deref() {
            match over_master(socket, line, stdin).await {
                Ok(session) => {
                    tracing::debug!("session over the master connection: {}", inert(line));
                    return Ok(session);
                }
                Err(e) => tracing::debug!("no multiplexed session ({e}); starting ssh"),
            }
        }
        let mut cmd = self.ssh();
        cmd.args(["-T", self.alias()]).arg(line);
        cmd.stdin(match stdin {
            SessionStdin::Inherit => Stdio::inherit(),
            SessionStdin::Null => Stdio::null(),
            SessionStdin::Piped => Stdio::piped(),
        });
        spawned(cmd)
    }

    /// Runs `line` with `input` as its stdin; returns its status and what it printed.
    pub async fn output_with_input(&self, line: &str, input: &[u8]) -> io::Result<Output> {
        use tokio::io::AsyncWriteExt;
        let mut session = self.start(line, SessionStdin::Piped).await?;
        let mut stdin = session.stdin.take().expect("piped");
        let write = async move {
            // A command that stops reading early (or fails) says why in its exit and stderr.
            let _ = stdin.write_all(input).await;
        };
        let (_, out) = tokio::join!(write, session.output());
        out
    }
}

impl RemoteSession {
    /// Waits for the end, collecting stdout and stderr (stdin, if still held, is closed
    /// first).
    pub async fn output(self) -> io::Result<Output> {
        use tokio::io::AsyncReadExt;
        drop(self.stdin);
        let (mut out, mut err) = (self.stdout, self.stderr);
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let (status, o, e) = tokio::join!(
            self.ended,
            out.read_to_end(&mut stdout),
            err.read_to_end(&mut stderr),
        );
        o?;
        e?;
        Ok(Output {
            status: status?,
            stdout,
            stderr,
        })
    }
}

/// A session the master connection listening on `socket` runs (see [`mux`]).
async fn over_master(socket: &Path, line: &str, stdin: SessionStdin) -> io::Result<RemoteSession> {
    use std::os::fd::{AsFd, OwnedFd};
    use tokio::net::unix::pipe;
    let (fd, writer): (OwnedFd, _) = match stdin {
        SessionStdin::Inherit => (io::stdin().as_fd().try_clone_to_owned()?, None),
        SessionStdin::Null => (std::fs::File::open("/dev/null")?.into(), None),
        SessionStdin::Piped => {
            let (r, w) = io::pipe()?;
            (r.into(), Some(pipe::Sender::from_owned_fd(w.into())?))
        }
    };
    let passenger = mux::start(socket, line, fd).await?;
    Ok(RemoteSession {
        stdin: writer.map(|w| Box::new(w) as Box<dyn AsyncWrite + Unpin + Send>),
        stdout: Box::new(passenger.stdout),
        stderr: Box::new(passenger.stderr),
        ended: passenger.ended,
    })
}

/// The session of an `ssh` process; the process is killed when the session is dropped.
fn spawned(mut cmd: tokio::process::Command) -> io::Result<RemoteSession> {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    Ok(RemoteSession {
        stdin: stdin.map(|s| Box::new(s) as Box<dyn AsyncWrite + Unpin + Send>),
        stdout: Box::new(stdout),
        stderr: Box::new(stderr),
        ended: Box::pin(async move { child.wait().await }),
    })
}

/// Starts `line` (see [`SshClient::start`]) with cbx's stdin and relays its output as it
/// comes; returns its exit status.
pub async fn relay(ssh: &SshClient, line: &str, stdout_to: StdoutTo) -> io::Result<ExitStatus> {
    let session = ssh.start(line, SessionStdin::Inherit).await?;
    let sink: Pin<Box<dyn AsyncWrite + Send>> = match stdout_to {
        StdoutTo::Stdout => Box::pin(tokio::io::stdout()),
        StdoutTo::Stderr => Box::pin(tokio::io::stderr()),
    };
    let (status, out, err) = tokio::join!(
        session.ended,
        copy(session.stdout, sink),
        copy(session.stderr, tokio::io::stderr()),
    );
    out?;
    err?;
    status
}

/// Copies `from` to `to` until its end, flushing each chunk.
async fn copy(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
        to.flush().await?;
    }
}
