//! A shard's command output, line by line, each line led by its shard (`[3/8] `) and made
//! inert (it is the sandbox's text; tabs are kept). A line is written whole, under the
//! standard stream's lock, so lines of different shards never mix within a line. A line
//! longer than [`MAX_LINE`] bytes is cut into pieces of that size.

use std::io::Write;
use std::process::ExitStatus;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

use crate::ssh::RemoteSession;
use crate::terminal::inert;

/// The longest piece of output written as one line.
pub const MAX_LINE: u64 = 64 * 1024;

/// Which of cbx's streams a line goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// stdout.
    Out,
    /// stderr.
    Err,
}

/// Relays `session`'s stdout to `out` and its stderr to stderr, each line led by `prefix`;
/// returns its exit status. The session ends when this is dropped.
pub async fn relay(session: RemoteSession, prefix: &str, out: Sink) -> std::io::Result<ExitStatus> {
    let (status, a, b) = tokio::join!(
        session.ended,
        lines(session.stdout, prefix, out),
        lines(session.stderr, prefix, Sink::Err),
    );
    a?;
    b?;
    status
}

/// Copies `from` line by line to `sink`, each line led by `prefix`.
async fn lines(from: impl AsyncRead + Unpin, prefix: &str, sink: Sink) -> std::io::Result<()> {
    let mut reader = BufReader::new(from);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut buf)
            .await?;
        if n == 0 {
            return Ok(());
        }
        write_line(sink, &shown(prefix, &buf))?;
    }
}

/// `prefix` and the line, without its line ending, inert but for tabs, and a newline.
pub fn shown(prefix: &str, raw: &[u8]) -> String {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let text = String::from_utf8_lossy(raw);
    let parts: Vec<String> = text.split('\t').map(|p| inert(p).into_owned()).collect();
    format!("{prefix}{}\n", parts.join("\t"))
}

/// Writes one whole line to `sink` under its lock.
fn write_line(sink: Sink, line: &str) -> std::io::Result<()> {
    match sink {
        Sink::Out => {
            let mut out = std::io::stdout().lock();
            out.write_all(line.as_bytes())?;
            out.flush()
        }
        Sink::Err => std::io::stderr().lock().write_all(line.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_prefixed_and_inert_but_keep_tabs() {
        assert_eq!(shown("[1/2] ", b"ok\n"), "[1/2] ok\n");
        assert_eq!(shown("[1/2] ", b"a\tb\r\n"), "[1/2] a\tb\n");
        assert_eq!(
            shown("[2/2] ", b"\x1b[2Jforged\rline"),
            "[2/2] \\x1b[2Jforged\\rline\n"
        );
        assert_eq!(shown("[2/2] ", b"no newline"), "[2/2] no newline\n");
        assert_eq!(shown("[1/1] ", b"\xff\n"), "[1/1] \u{fffd}\n");
    }
}
