//! Which transport sends the files: rsync where the sandbox (and this machine) has it, else a
//! tar stream that needs only `sh` and `tar` on the sandbox — or a clear error saying what is
//! missing. The sandbox's tools come from a probe riding on a round trip cbx makes anyway
//! (see [`super::tools`]), so choosing costs no extra round trip.

use std::fmt;
use std::str::FromStr;

pub use super::tools::RemoteTools;
use crate::error::{ErrorKind, Failure};

/// The transport a user asked for (`sync.transport`, `CBX_SYNC_TRANSPORT`,
/// `--sync-transport`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TransportChoice {
    /// rsync where both sides have it, else tar.
    #[default]
    Auto,
    /// Always rsync.
    Rsync,
    /// Always tar.
    Tar,
}

impl FromStr for TransportChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(TransportChoice::Auto),
            "rsync" => Ok(TransportChoice::Rsync),
            "tar" => Ok(TransportChoice::Tar),
            other => Err(format!(
                "unknown sync transport `{other}`; use auto, rsync or tar"
            )),
        }
    }
}

impl fmt::Display for TransportChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportChoice::Auto => "auto",
            TransportChoice::Rsync => "rsync",
            TransportChoice::Tar => "tar",
        })
    }
}

/// The transport a sync uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `rsync --files-from` over the lease's ssh connection.
    Rsync,
    /// A tar stream of the changed files into `tar -x` on the sandbox.
    Tar,
}

impl Transport {
    /// Its name, as users choose it.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Rsync => "rsync",
            Transport::Tar => "tar",
        }
    }
}

/// A transfer that failed because the sandbox lacks the tool it ran (the remote shell could
/// not find it): what cbx recorded of the sandbox's tools is out of date. The sync probes
/// again; what reaches the user is the [`Failure`] inside.
#[derive(Debug)]
pub(super) struct ToolMissing(pub(super) Failure);

impl fmt::Display for ToolMissing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ToolMissing {}

/// `err` as the user sees it: a [`ToolMissing`] becomes the failure it carries.
pub(super) fn plain(err: anyhow::Error) -> anyhow::Error {
    match err.downcast::<ToolMissing>() {
        Ok(missing) => missing.0.into(),
        Err(err) => err,
    }
}

/// Whether a remote command that exited `code` saying `stderr` failed because its shell could
/// not find the program (`sh: 1: tar: not found`, `bash: rsync: command not found`).
pub(super) fn not_found(code: Option<i32>, stderr: &str, tool: &str) -> bool {
    code == Some(127)
        || stderr.contains(&format!("{tool}: not found"))
        || stderr.contains(&format!("{tool}: command not found"))
}

/// The transport for `choice`, given the sandbox's tools and whether this machine has
/// rsync; or a sync failure (exit 6) saying exactly what is missing and how to fix it.
pub fn choose(
    choice: TransportChoice,
    remote: &RemoteTools,
    local_rsync: bool,
) -> Result<Transport, Failure> {
    let snapshot_hint = "use a sandbox image (snapshot) that has rsync, e.g. a Dockerfile with `RUN apt-get update && apt-get install -y rsync` (see docs/providers/daytona.md, \"What cbx needs in a snapshot\"), or pass --no-sync";
    match choice {
        TransportChoice::Rsync if !remote.rsync => Err(Failure::new(
            ErrorKind::Sync,
            "the sandbox has no rsync, and sync.transport is rsync",
        )
        .hint(format!(
            "{snapshot_hint}; or let cbx send a tar stream: sync.transport = \"auto\" (needs tar on the sandbox)"
        ))),
        TransportChoice::Rsync if !local_rsync => Err(rsync_missing_here()),
        TransportChoice::Rsync => Ok(Transport::Rsync),
        TransportChoice::Tar if !remote.tar => Err(Failure::new(
            ErrorKind::Sync,
            "the sandbox has no tar, and sync.transport is tar",
        )
        .hint(format!(
            "{snapshot_hint}; or use rsync: sync.transport = \"auto\""
        ))),
        TransportChoice::Tar => Ok(Transport::Tar),
        TransportChoice::Auto if remote.rsync && local_rsync => Ok(Transport::Rsync),
        TransportChoice::Auto if remote.tar => Ok(Transport::Tar),
        TransportChoice::Auto if remote.rsync => Err(Failure::new(
            ErrorKind::Sync,
            "cannot sync: rsync is not installed on this machine and the sandbox has no tar",
        )
        .hint("install rsync here (e.g. apt-get install rsync), or use a sandbox image with tar")),
        TransportChoice::Auto => Err(Failure::new(
            ErrorKind::Sync,
            "the sandbox has neither rsync nor tar: cbx needs rsync, or sh and tar, on the sandbox to sync files",
        )
        .hint(snapshot_hint)),
    }
}

/// The failure when this machine has no rsync but the user asked for it.
fn rsync_missing_here() -> Failure {
    Failure::new(
        ErrorKind::Sync,
        "rsync is not installed on this machine, and sync.transport is rsync",
    )
    .hint("install it (e.g. apt-get install rsync), or set sync.transport = \"auto\" to send a tar stream instead")
}

/// Whether this machine can run rsync: an executable `rsync` on `path` (the environment's
/// `PATH`).
pub fn local_rsync(path: Option<&std::ffi::OsStr>) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join("rsync"))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::sync::tools::having as tools;

    #[test]
    fn a_program_the_remote_shell_cannot_find_is_recognised() {
        assert!(not_found(Some(127), "", "tar"));
        assert!(not_found(
            Some(12),
            "sh: 1: rsync: not found\nrsync: connection unexpectedly closed",
            "rsync"
        ));
        assert!(not_found(
            Some(12),
            "bash: line 1: rsync: command not found",
            "rsync"
        ));
        assert!(!not_found(
            Some(2),
            "tar: src/lib.rs: Cannot open: Permission denied",
            "tar"
        ));
        assert!(!not_found(
            Some(23),
            "rsync: [receiver] mkstemp failed",
            "rsync"
        ));
        let inner = Failure::new(ErrorKind::Sync, "rsync failed (exit 12)");
        let err = plain(ToolMissing(inner).into());
        assert_eq!(crate::error::exit_code(&err), 6);
        assert_eq!(err.to_string(), "rsync failed (exit 12)");
    }

    #[test]
    fn auto_prefers_rsync_and_falls_back_to_tar() {
        use TransportChoice::*;
        assert_eq!(
            choose(Auto, &tools(true, true), true).unwrap(),
            Transport::Rsync
        );
        assert_eq!(
            choose(Auto, &tools(false, true), true).unwrap(),
            Transport::Tar
        );
        assert_eq!(
            choose(Auto, &tools(true, true), false).unwrap(),
            Transport::Tar
        );
        assert_eq!(
            choose(Tar, &tools(true, true), true).unwrap(),
            Transport::Tar
        );
        assert_eq!(
            choose(Rsync, &tools(true, false), true).unwrap(),
            Transport::Rsync
        );
    }

    #[test]
    fn what_is_missing_is_named_with_the_fix() {
        use TransportChoice::*;
        let e = choose(Auto, &tools(false, false), true).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Sync);
        assert!(e.message.contains("neither rsync nor tar"), "{}", e.message);
        assert!(
            e.hint
                .as_deref()
                .unwrap()
                .contains("docs/providers/daytona.md")
        );
        assert!(e.hint.as_deref().unwrap().contains("--no-sync"));
        let e = choose(Auto, &tools(true, false), false).unwrap_err();
        assert!(
            e.message.contains("not installed on this machine"),
            "{}",
            e.message
        );
        let e = choose(Rsync, &tools(false, true), true).unwrap_err();
        assert!(e.message.contains("no rsync"), "{}", e.message);
        assert!(e.hint.as_deref().unwrap().contains("\"auto\""));
        let e = choose(Tar, &tools(true, false), true).unwrap_err();
        assert!(e.message.contains("no tar"), "{}", e.message);
        let e = choose(Rsync, &tools(true, true), false).unwrap_err();
        assert!(e.message.contains("on this machine"), "{}", e.message);
        assert_eq!("tar".parse::<TransportChoice>(), Ok(Tar));
        assert!(
            "scp"
                .parse::<TransportChoice>()
                .unwrap_err()
                .contains("auto, rsync or tar")
        );
    }
}
