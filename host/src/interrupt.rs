//! The one place cbx waits for signals. SIGINT (Ctrl-C), SIGTERM (`timeout`, CI runners,
//! systemd, docker) and SIGHUP (a closed terminal) all mean the same: stop, clean up, and exit
//! with the signal's code (130, 143, 129).
//!
//! [`watch`] installs the handlers when cbx starts, so no signal ever kills cbx outright. A
//! step that has something to clean up (creating a lease, running a one-shot command) holds a
//! [`Shield`] and races its work against [`interrupted`]; a signal then ends the work and the
//! step cleans up, racing its clean-up against [`after`] (a second signal abandons the
//! clean-up, whose durable record the next command finishes). Anywhere else, [`unshielded`]
//! completes and `cli::main` drops the command — killing its child processes — and exits.

use std::sync::OnceLock;

use tokio::sync::watch;

use crate::error::{ErrorKind, Failure};

/// A signal that stops cbx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT: Ctrl-C.
    Interrupt,
    /// SIGTERM: asked to terminate.
    Terminate,
    /// SIGHUP: the terminal went away.
    HangUp,
}

impl Signal {
    /// The signal's name, `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
            Signal::HangUp => "SIGHUP",
        }
    }

    /// The failure kind, which decides the exit code (130, 143, 129).
    pub fn kind(self) -> ErrorKind {
        match self {
            Signal::Interrupt => ErrorKind::Interrupted,
            Signal::Terminate => ErrorKind::Terminated,
            Signal::HangUp => ErrorKind::HungUp,
        }
    }

    /// The failure of a step `what` (e.g. "interrupted") that this signal ended.
    pub fn failure(self, what: &str) -> anyhow::Error {
        Failure::new(self.kind(), format!("{what} ({})", self.name())).into()
    }
}

/// What has been received, and how many steps are cleaning up after signals themselves.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    count: u64,
    last: Option<Signal>,
    shields: usize,
}

fn state() -> &'static watch::Sender<Seen> {
    static STATE: OnceLock<watch::Sender<Seen>> = OnceLock::new();
    STATE.get_or_init(|| watch::Sender::new(Seen::default()))
}

fn record(signal: Signal) {
    state().send_modify(|s| {
        s.count += 1;
        s.last = Some(signal);
    });
}

/// Starts watching SIGINT, SIGTERM and SIGHUP; later calls do nothing. Call it inside the
/// tokio runtime, as early as possible: from then on these signals no longer kill cbx, they
/// are delivered here.
pub fn watch() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(listen);
}

#[cfg(unix)]
fn listen() {
    use tokio::signal::unix::{SignalKind, signal};
    // The handlers are installed here, synchronously; the task only forwards what arrives.
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::warn!("cannot watch signals; Ctrl-C will end cbx without cleaning up");
        return;
    };
    tokio::spawn(async move {
        loop {
            let signal = tokio::select! {
                Some(()) = int.recv() => Signal::Interrupt,
                Some(()) = term.recv() => Signal::Terminate,
                Some(()) = hup.recv() => Signal::HangUp,
                else => return,
            };
            record(signal);
        }
    });
}

#[cfg(not(unix))]
fn listen() {
    tokio::spawn(async {
        while tokio::signal::ctrl_c().await.is_ok() {
            record(Signal::Interrupt);
        }
    });
}

/// How many signals have arrived so far.
pub fn received() -> u64 {
    state().borrow().count
}

/// The last signal, if one has arrived.
pub fn pending() -> Option<Signal> {
    let seen = state().borrow();
    seen.last.filter(|_| seen.count > 0)
}

/// Completes with the first signal — at once if one has already arrived.
pub async fn interrupted() -> Signal {
    after(0).await
}

/// Completes with the next signal after the first `seen` (see [`received`]): a second signal
/// during a clean-up.
pub async fn after(seen: u64) -> Signal {
    first_where(|s| s.count > seen).await
}

/// Completes when a signal has arrived while no [`Shield`] is held: nothing is cleaning up,
/// so the command can simply be dropped.
pub async fn unshielded() -> Signal {
    first_where(|s| s.count > 0 && s.shields == 0).await
}

async fn first_where(done: impl Fn(&Seen) -> bool) -> Signal {
    watch();
    let mut rx = state().subscribe();
    loop {
        {
            let seen = rx.borrow_and_update();
            if done(&seen)
                && let Some(signal) = seen.last
            {
                return signal;
            }
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// While held, a signal does not end the command at once: the step holding it awaits
/// [`interrupted`] and cleans up itself. Released on drop.
#[derive(Debug)]
pub struct Shield(());

/// Takes a [`Shield`].
pub fn shield() -> Shield {
    state().send_modify(|s| s.shields += 1);
    Shield(())
}

impl Drop for Shield {
    fn drop(&mut self) {
        state().send_modify(|s| s.shields = s.shields.saturating_sub(1));
    }
}
