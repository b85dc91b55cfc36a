//! WASI for provider components, linked deny-by-default.
//!
//! Components built for `wasm32-wasip2` import WASI interfaces even when they never use them.
//! cbx links them so such components load, but grants nothing through them: no environment
//! variables, no arguments, no preopened directories (so no files), no sockets and no name
//! lookups; stdin is empty. Clocks and randomness work. Whatever the component writes to
//! stdout or stderr becomes lines in the provider's log, tagged with its name and redacted.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::sync::{Arc, Mutex};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

use crate::provider::limits::RunBudget;
use crate::redact::Redactor;
use crate::terminal::inert;

/// Most bytes of stdout/stderr kept per stream; the rest is dropped.
const MAX_OUTPUT: usize = 1 << 20;

/// Socket uses a provider attempted (every one refused), described for the user and the
/// audit log; drained by the host after each call.
pub type SocketAttempts = Arc<Mutex<Vec<String>>>;

/// A WASI context that grants nothing but clocks and randomness. Sockets may be created but
/// every address is refused, so each attempt is seen — and recorded in `attempts` — rather than
/// failing silently.
/// Its output lines count against the provider's per-run log budget `run`.
pub fn deny_by_default(
    provider: &str,
    redactor: &Redactor,
    attempts: SocketAttempts,
    run: Arc<RunBudget>,
) -> WasiCtx {
    let mut builder = WasiCtxBuilder::new();
    builder
        .stdout(LogStream::new(provider, "stdout", redactor, run.clone()))
        .stderr(LogStream::new(provider, "stderr", redactor, run))
        .allow_tcp(true)
        .allow_udp(true)
        .allow_ip_name_lookup(false)
        .socket_addr_check(move |addr, usage| {
            let what = match usage {
                SocketAddrUse::TcpBind => format!("bind a TCP socket to {addr}"),
                SocketAddrUse::TcpListen => format!("listen for TCP connections on {addr}"),
                SocketAddrUse::TcpAccept => format!("accept a TCP connection from {addr}"),
                SocketAddrUse::TcpConnect => format!("open a TCP connection to {addr}"),
                SocketAddrUse::UdpBind => format!("bind a UDP socket to {addr}"),
                SocketAddrUse::UdpSend => format!("send UDP datagrams to {addr}"),
                SocketAddrUse::UdpReceive => format!("receive UDP datagrams from {addr}"),
            };
            if let Ok(mut a) = attempts.lock()
                && a.len() < 100
            {
                a.push(what);
            }
            Box::pin(async { false })
        });
    builder.build()
}

/// A guest output stream forwarded line by line into the provider's log.
#[derive(Clone)]
pub struct LogStream {
    provider: String,
    stream: &'static str,
    redactor: Redactor,
    run: Arc<RunBudget>,
}

impl LogStream {
    fn new(
        provider: &str,
        stream: &'static str,
        redactor: &Redactor,
        run: Arc<RunBudget>,
    ) -> LogStream {
        LogStream {
            provider: provider.to_string(),
            stream,
            redactor: redactor.clone(),
            run,
        }
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            target: self.clone(),
            buf: Vec::new(),
            written: 0,
        })
    }
}

struct LineWriter {
    target: LogStream,
    buf: Vec<u8>,
    written: usize,
}

impl LineWriter {
    fn emit(&mut self, line: &[u8]) {
        if !self.target.run.admit_log_line(&self.target.provider) {
            return;
        }
        let text = String::from_utf8_lossy(line);
        let text = self.target.redactor.redact(text.trim_end());
        let text = inert(&text);
        tracing::info!(provider = %self.target.provider, stream = self.target.stream, "{text}");
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.written >= MAX_OUTPUT {
            return Poll::Ready(Ok(data.len()));
        }
        this.written += data.len();
        this.buf.extend_from_slice(data);
        while let Some(pos) = this.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = this.buf.drain(..=pos).collect();
            this.emit(&line);
        }
        if this.buf.len() > 4096 {
            let line = std::mem::take(&mut this.buf);
            this.emit(&line);
        }
        if this.written >= MAX_OUTPUT {
            tracing::warn!(provider = %this.target.provider, "provider wrote more than 1 MiB to {}; dropping the rest", this.target.stream);
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            self.emit(&line);
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}
