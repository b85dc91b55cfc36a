//! A passenger client of OpenSSH's connection multiplexing: runs one command over a lease's
//! live master connection without starting an `ssh` client process.
//!
//! A warm `cbx run --id` used to start `ssh -T <alias> <line>`, whose only job, with a master
//! up, is to connect to the master's socket, hand it the command and three file descriptors,
//! and wait for the exit status. Starting that client (loading its libraries, reading its
//! config) costs more than the round trip itself. This module speaks that exchange directly,
//! as OpenSSH documents it in `PROTOCOL.mux` (protocol version 4, unchanged since OpenSSH 5.6):
//!
//! 1. both sides send `MUX_MSG_HELLO` with the version (the master may add extensions, which
//!    are skipped);
//! 2. the client sends `MUX_C_NEW_SESSION` (no tty, no X11, no agent, no escape character,
//!    the command), then its stdin, stdout and stderr, each as one byte carrying one
//!    descriptor (`SCM_RIGHTS`);
//! 3. the master answers `MUX_S_SESSION_OPENED` (or `MUX_S_FAILURE` /
//!    `MUX_S_PERMISSION_DENIED`), later `MUX_S_EXIT_MESSAGE` with the command's exit status,
//!    and closes the socket when the session is over.
//!
//! [`start`] fails — and the caller starts `ssh` instead, exactly as before — whenever no
//! session can have been opened: no socket, no master behind it, another protocol version, a
//! descriptor that could not be sent, a master that refused the session. Once the session may
//! have started, its end is the exit status the master reports, or 255 when the master closes
//! without one (the connection was lost), which is what `ssh` itself would return. Dropping the
//! session's future closes the socket, and the master then ends the session, as it does when
//! an `ssh` client is killed.

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::pin::Pin;
use std::process::ExitStatus;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::pipe;

use crate::terminal::inert;

const MUX_MSG_HELLO: u32 = 0x0000_0001;
const MUX_C_NEW_SESSION: u32 = 0x1000_0002;
const MUX_S_PERMISSION_DENIED: u32 = 0x8000_0002;
const MUX_S_FAILURE: u32 = 0x8000_0003;
const MUX_S_EXIT_MESSAGE: u32 = 0x8000_0004;
const MUX_S_SESSION_OPENED: u32 = 0x8000_0006;
const MUX_S_TTY_ALLOC_FAIL: u32 = 0x8000_0008;
/// The only protocol version OpenSSH has spoken since 5.6 (2010).
const VERSION: u32 = 4;
/// "No escape character".
const NO_ESCAPE: u32 = 0xffff_ffff;
/// The request id of the one request this client makes.
const REQUEST: u32 = 1;
/// The largest packet taken from the master; its messages are a few words and an error text.
const MAX_PACKET: usize = 64 * 1024;
/// How long a master has to say hello before cbx starts `ssh` instead. A live master answers
/// at once; one that does not (stopped, wedged) should not hold a command up.
const HELLO_TIMEOUT: Duration = Duration::from_secs(2);

/// A session the master runs for cbx: the command's output pipes and its end.
pub struct Passenger {
    /// The read end of the command's stdout.
    pub stdout: pipe::Receiver,
    /// The read end of the command's stderr.
    pub stderr: pipe::Receiver,
    /// The exit status the master reports, 255 without one; dropping it ends the session.
    pub ended: Pin<Box<dyn Future<Output = io::Result<ExitStatus>> + Send>>,
}

/// Opens a session running `command` (no tty) with `stdin` over the master listening on
/// `socket`.
pub async fn start(socket: &Path, command: &str, stdin: OwnedFd) -> io::Result<Passenger> {
    let mut master = UnixStream::connect(socket).await?;
    tokio::time::timeout(HELLO_TIMEOUT, hello(&mut master))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the master did not say hello"))??;
    let (out_r, out_w) = io::pipe()?;
    let (err_r, err_w) = io::pipe()?;
    let stdout = pipe::Receiver::from_owned_fd(out_r.into())?;
    let stderr = pipe::Receiver::from_owned_fd(err_r.into())?;
    // An error before the last descriptor is sent means the master cannot have opened the
    // session (it needs all three); after it, only the master's refusal is an error: in
    // both cases nothing ran, so the caller's `ssh` fallback never runs the command twice.
    // A session whose opening is unknown (the master closed without an answer) ends as 255,
    // which the caller's run-file guard settles.
    master.write_all(&new_session(command)).await?;
    for fd in [stdin.as_fd(), out_w.as_fd(), err_w.as_fd()] {
        send_fd(&master, fd).await?;
    }
    // The master holds the write ends now: the pipes end when the session does.
    drop((stdin, out_w, err_w));
    let session = opened(&mut master).await?;
    Ok(Passenger {
        stdout,
        stderr,
        ended: Box::pin(ended(master, session)),
    })
}

/// Sends the client's hello and checks the master's.
async fn hello(master: &mut UnixStream) -> io::Result<()> {
    let mut ours = Packet::new(MUX_MSG_HELLO);
    ours.u32(VERSION);
    master.write_all(&ours.framed()).await?;
    let theirs = read_packet(master).await?;
    let mut fields = Fields(&theirs);
    if fields.u32()? != MUX_MSG_HELLO {
        return Err(invalid("the master's first message is not a hello"));
    }
    match fields.u32()? {
        VERSION => Ok(()),
        other => Err(invalid(&format!("the master speaks mux protocol {other}"))),
    }
}

/// The `MUX_C_NEW_SESSION` request for `command`, framed.
fn new_session(command: &str) -> Vec<u8> {
    let mut p = Packet::new(MUX_C_NEW_SESSION);
    p.u32(REQUEST);
    p.string(b""); // reserved
    p.u32(0); // tty
    p.u32(0); // X11 forwarding
    p.u32(0); // agent forwarding
    p.u32(0); // subsystem
    p.u32(NO_ESCAPE);
    p.string(b""); // terminal type: no tty
    p.string(command.as_bytes());
    p.framed()
}

/// Sends `fd` to the master as OpenSSH does: one zero byte carrying it.
async fn send_fd(master: &UnixStream, fd: BorrowedFd<'_>) -> io::Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};
    let fds = [fd];
    loop {
        master.writable().await?;
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        control.push(SendAncillaryMessage::ScmRights(&fds));
        let sent = master.try_io(tokio::io::Interest::WRITABLE, || {
            sendmsg(
                master,
                &[io::IoSlice::new(&[0])],
                &mut control,
                SendFlags::NOSIGNAL,
            )
            .map_err(io::Error::from)
        });
        match sent {
            Ok(1) => return Ok(()),
            Ok(_) => return Err(io::Error::new(io::ErrorKind::WriteZero, "sendmsg")),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The master's answer to the session request: the session's id; an error when it refused
/// (nothing ran); `None` when the answer is unknown (it may have started).
async fn opened(master: &mut UnixStream) -> io::Result<Option<u32>> {
    let answer = async {
        let reply = read_packet(master).await?;
        let mut fields = Fields(&reply);
        let kind = fields.u32()?;
        if fields.u32()? != REQUEST {
            return Err(invalid("the master answered another request"));
        }
        match kind {
            MUX_S_SESSION_OPENED => Ok(Ok(fields.u32()?)),
            MUX_S_FAILURE | MUX_S_PERMISSION_DENIED => {
                Ok(Err(String::from_utf8_lossy(fields.string()?).into_owned()))
            }
            other => Err(invalid(&format!("unexpected reply 0x{other:08x}"))),
        }
    };
    match answer.await {
        Ok(Ok(session)) => Ok(Some(session)),
        Ok(Err(why)) => Err(io::Error::other(format!(
            "the master refused the session: {}",
            inert(&why)
        ))),
        Err(e) => {
            tracing::debug!("no answer to the multiplexed session request: {e}");
            Ok(None)
        }
    }
}

/// Waits for the session `session` to end: the exit status the master reports, 255 without
/// one (also for a session whose opening is unknown).
async fn ended(mut master: UnixStream, session: Option<u32>) -> io::Result<ExitStatus> {
    let code = match session {
        None => 255,
        Some(session) => match session_exit(&mut master, session).await {
            Ok(Some(code)) => code & 0xff,
            Ok(None) => 255,
            Err(e) => {
                tracing::debug!("the multiplexed session ended without an exit status: {e}");
                255
            }
        },
    };
    Ok(ExitStatus::from_raw((code as i32) << 8))
}

/// The session's messages until the master closes the socket: the exit value, if one came.
async fn session_exit(master: &mut UnixStream, session: u32) -> io::Result<Option<u32>> {
    let mut exit = None;
    // The master writes the exit message, then closes the socket once the session's output
    // is flushed; reading to the end keeps the session whole (PROTOCOL.mux).
    loop {
        let message = match read_packet(master).await {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(exit),
            Err(e) => return Err(e),
        };
        let mut fields = Fields(&message);
        match fields.u32()? {
            MUX_S_EXIT_MESSAGE if fields.u32()? == session => exit = Some(fields.u32()?),
            MUX_S_TTY_ALLOC_FAIL => {}
            other => return Err(invalid(&format!("unexpected message 0x{other:08x}"))),
        }
    }
}

/// Reads one length-prefixed packet.
async fn read_packet(master: &mut UnixStream) -> io::Result<Vec<u8>> {
    let len = master.read_u32().await? as usize;
    if len > MAX_PACKET {
        return Err(invalid(&format!("a packet of {len} bytes")));
    }
    let mut body = vec![0; len];
    master.read_exact(&mut body).await?;
    Ok(body)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("mux protocol: {what}"))
}

/// A packet being built: its type, then fields in SSH wire format.
struct Packet(Vec<u8>);

impl Packet {
    fn new(kind: u32) -> Packet {
        Packet(kind.to_be_bytes().to_vec())
    }

    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn string(&mut self, s: &[u8]) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s);
    }

    /// The packet with its length in front.
    fn framed(self) -> Vec<u8> {
        let mut out = (self.0.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&self.0);
        out
    }
}

/// Fields read off a received packet; running short is an error.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(invalid("a packet ended early"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> io::Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self) -> io::Result<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    //! Against a stand-in master on a real socket, speaking the protocol as `mux.c` does; the
    //! end-to-end tests run the same client against OpenSSH's own master.
    use std::io::{Read, Write};
    use std::os::unix::net::{UnixListener, UnixStream as StdStream};

    use super::*;

    /// What the stand-in master does once it has the session's descriptors.
    #[derive(Clone, Copy)]
    enum Master {
        /// Writes to stdout and stderr, reports `code` and closes.
        Exits(u32),
        /// Opens the session, then closes without an exit message (a lost connection).
        Drops,
        /// Refuses the session.
        Refuses,
        /// Sends a length no packet has.
        Garbles,
    }

    fn packet(fields: &[&[u8]]) -> Vec<u8> {
        let body: Vec<u8> = fields.concat();
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend(body);
        out
    }

    fn be(v: u32) -> Vec<u8> {
        v.to_be_bytes().to_vec()
    }

    fn read_packet(s: &mut StdStream) -> Vec<u8> {
        let mut len = [0; 4];
        s.read_exact(&mut len).unwrap();
        let mut body = vec![0; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut body).unwrap();
        body
    }

    fn receive_fd(s: &StdStream) -> OwnedFd {
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut byte = [0u8; 1];
        let got = recvmsg(
            s,
            &mut [io::IoSliceMut::new(&mut byte)],
            &mut control,
            RecvFlags::empty(),
        )
        .unwrap();
        assert_eq!(got.bytes, 1);
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(mut fds) = message {
                return fds.next().unwrap();
            }
        }
        panic!("no descriptor came with the byte")
    }

    /// A stand-in master speaking `version`, doing `then`; returns its socket's directory and
    /// the session request it received (on its thread's end).
    fn master(version: u32, then: Master) -> (tempfile::TempDir, std::thread::JoinHandle<Vec<u8>>) {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("cm")).unwrap();
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(&packet(&[
                &be(MUX_MSG_HELLO),
                &be(version),
                b"\0\0\0\x04info\0\0\0\x010",
            ]))
            .unwrap();
            let hello = read_packet(&mut s);
            assert_eq!(hello, [be(MUX_MSG_HELLO), be(VERSION)].concat());
            if version != VERSION {
                return Vec::new();
            }
            let request = read_packet(&mut s);
            let fds: Vec<OwnedFd> = (0..3).map(|_| receive_fd(&s)).collect();
            let (_stdin, out, err) = (&fds[0], &fds[1], &fds[2]);
            let opened = packet(&[&be(MUX_S_SESSION_OPENED), &be(REQUEST), &be(9)]);
            match then {
                Master::Exits(code) => {
                    std::fs::File::from(out.try_clone().unwrap())
                        .write_all(b"out\n")
                        .unwrap();
                    std::fs::File::from(err.try_clone().unwrap())
                        .write_all(b"err\n")
                        .unwrap();
                    s.write_all(&opened).unwrap();
                    s.write_all(&packet(&[&be(MUX_S_EXIT_MESSAGE), &be(9), &be(code)]))
                        .unwrap();
                }
                Master::Drops => s.write_all(&opened).unwrap(),
                Master::Refuses => s
                    .write_all(&packet(&[
                        &be(MUX_S_FAILURE),
                        &be(REQUEST),
                        b"\0\0\0\x07\x1b[31mno",
                    ]))
                    .unwrap(),
                Master::Garbles => s.write_all(&u32::MAX.to_be_bytes()).unwrap(),
            }
            request
        });
        (dir, handle)
    }

    fn null() -> OwnedFd {
        std::fs::File::open("/dev/null").unwrap().into()
    }

    /// Runs `command` against `then`; returns the exit code, stdout, stderr and the request.
    async fn session(then: Master) -> (i32, String, String, Vec<u8>) {
        let (dir, handle) = master(VERSION, then);
        let s = start(&dir.path().join("cm"), "echo hi", null())
            .await
            .unwrap();
        let mut out = String::new();
        let mut err = String::new();
        let (mut o, mut e) = (s.stdout, s.stderr);
        let (status, _, _) = tokio::join!(
            s.ended,
            o.read_to_string(&mut out),
            e.read_to_string(&mut err)
        );
        let request = handle.join().unwrap();
        (status.unwrap().code().unwrap(), out, err, request)
    }

    #[tokio::test]
    async fn a_session_relays_the_output_and_the_exit_status_the_master_reports() {
        let (code, out, err, request) = session(Master::Exits(7)).await;
        assert_eq!((code, out.as_str(), err.as_str()), (7, "out\n", "err\n"));
        let expected = [
            be(MUX_C_NEW_SESSION),
            be(REQUEST),
            be(0), // reserved: an empty string
            be(0),
            be(0),
            be(0),
            be(0),
            be(NO_ESCAPE),
            be(0), // no terminal type
            be(7),
            b"echo hi".to_vec(),
        ]
        .concat();
        assert_eq!(
            request, expected,
            "no tty, no forwarding, no escape character"
        );
        // An exit value wider than a byte ends as ssh's would.
        assert_eq!(session(Master::Exits(256 + 3)).await.0, 3);
    }

    #[tokio::test]
    async fn a_session_that_ends_without_an_exit_status_reports_255() {
        for then in [Master::Drops, Master::Garbles] {
            let (code, out, err, _) = session(then).await;
            assert_eq!((code, out.as_str(), err.as_str()), (255, "", ""));
        }
    }

    #[tokio::test]
    async fn a_refused_session_is_an_error_so_that_ssh_is_started_instead() {
        let (dir, handle) = master(VERSION, Master::Refuses);
        let e = start(&dir.path().join("cm"), "true", null())
            .await
            .err()
            .expect("a refusal is not a session");
        handle.join().unwrap();
        assert_eq!(e.to_string(), "the master refused the session: \\x1b[31mno");
    }

    #[tokio::test]
    async fn no_session_starts_without_a_master_speaking_version_4() {
        let dir = tempfile::tempdir().unwrap();
        let missing = start(&dir.path().join("cm"), "true", null()).await;
        assert!(missing.is_err(), "no socket");
        let (dir, handle) = master(3, Master::Drops);
        let old = start(&dir.path().join("cm"), "true", null()).await;
        let e = old.err().expect("another protocol version is refused");
        assert!(e.to_string().contains("mux protocol 3"), "{e}");
        handle.join().unwrap();
        // A socket whose owner never says hello.
        let dir = tempfile::tempdir().unwrap();
        let _silent = UnixListener::bind(dir.path().join("cm")).unwrap();
        let e = start(&dir.path().join("cm"), "true", null())
            .await
            .err()
            .expect("a silent master is given up on");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
