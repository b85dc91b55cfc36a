//! Failure kinds and the exit codes they map to.
//!
//! Errors travel as [`anyhow::Error`] with context added at each layer. Where a failure has a
//! kind that decides the exit code, a [`Failure`] sits somewhere in the chain; the CLI finds
//! the outermost one with [`exit_code`].

use std::fmt;

/// What kind of failure ended a command. Each kind has a documented exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// Anything not covered below (exit 1).
    Other,
    /// Bad arguments or configuration (exit 2).
    Usage,
    /// Missing or rejected credentials (exit 3).
    Auth,
    /// A lease or sandbox that does not exist, or that cbx does not own (exit 4).
    NotFound,
    /// A sandbox that failed, or did not become ready in time (exit 5).
    Sandbox,
    /// Syncing the working tree failed (exit 6).
    Sync,
    /// A provider tried something its grant does not allow (exit 7).
    Denied,
    /// A provider component misbehaved: crashed, exceeded a limit or returned bad data (exit 8).
    Provider,
    /// Interrupted by the user: SIGINT, Ctrl-C (exit 130).
    Interrupted,
    /// Asked to terminate: SIGTERM, as `timeout`, CI runners, systemd and docker send (exit 143).
    Terminated,
    /// The terminal went away: SIGHUP (exit 129).
    HungUp,
}

impl ErrorKind {
    /// The process exit code for this kind.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Other => 1,
            ErrorKind::Usage => 2,
            ErrorKind::Auth => 3,
            ErrorKind::NotFound => 4,
            ErrorKind::Sandbox => 5,
            ErrorKind::Sync => 6,
            ErrorKind::Denied => 7,
            ErrorKind::Provider => 8,
            ErrorKind::Interrupted => 130,
            ErrorKind::Terminated => 143,
            ErrorKind::HungUp => 129,
        }
    }
}

/// A failure with a kind, a message and optionally a hint that says what to do.
#[derive(Debug)]
pub struct Failure {
    /// Decides the exit code.
    pub kind: ErrorKind,
    /// What went wrong.
    pub message: String,
    /// What the user can do about it.
    pub hint: Option<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl Failure {
    /// A failure of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds a hint telling the user what to do.
    pub fn hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }
}

/// Builds an [`anyhow::Error`] carrying a [`Failure`].
pub fn fail(kind: ErrorKind, message: impl Into<String>) -> anyhow::Error {
    Failure::new(kind, message).into()
}

/// The outermost [`Failure`] in an error's chain, if any.
pub fn failure(err: &anyhow::Error) -> Option<&Failure> {
    err.chain().find_map(|e| e.downcast_ref::<Failure>())
}

/// The exit code for an error: its outermost [`Failure`]'s kind, else 1.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    failure(err).map_or(1, |f| f.kind.exit_code())
}
