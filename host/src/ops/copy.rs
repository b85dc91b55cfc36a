//! `cbx cp`: files and directories between this machine and a lease's sandbox, over the
//! lease's ssh connection as tar streams. Remote paths are relative to the lease's work
//! directory, or absolute; `..` is refused. What comes back is unpacked by cbx itself, so no
//! remote name can write outside the local destination (see `transfer::unpack`).

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::context::Context;
use crate::error::{ErrorKind, Failure};
use crate::lease::{connect, ready, resolve};
use crate::ssh::SshClient;
use crate::terminal::inert;
use crate::transfer::pattern::{self, NO_DIRECTORY};
use crate::transfer::stream;
use crate::transfer::unpack::Place;

/// Which way a copy goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Direction {
    /// From the sandbox: `LEASE:REMOTE LOCAL`.
    Download {
        /// The remote path (the last name may be a glob).
        remote: String,
        /// The local destination.
        local: PathBuf,
    },
    /// To the sandbox: `LOCAL LEASE:REMOTE`.
    Upload {
        /// The local file or directory.
        local: PathBuf,
        /// The remote destination (empty: the work directory).
        remote: String,
    },
}

/// What `cbx cp` was asked to do.
#[derive(Debug, Clone)]
pub struct CopyRequest {
    /// The lease (id or slug).
    pub lease: String,
    /// Which way.
    pub direction: Direction,
    /// How long to wait for a stopped sandbox to be ready.
    pub ready_timeout: std::time::Duration,
}

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Copied {
    /// The lease's id.
    pub lease: String,
    /// The remote path, as resolved on the sandbox.
    pub remote: String,
    /// Files written locally (downloads only).
    pub files: u64,
    /// Their bytes (downloads only).
    pub bytes: u64,
    /// Entries the sandbox sent that were refused, each `NAME: why`.
    pub refused: Vec<String>,
}

/// Copies as `request` says, on a lease claimed here.
pub async fn copy(ctx: &Context, request: &CopyRequest) -> Result<Copied> {
    let provider = ctx.provider_for(&request.lease)?;
    let mut session = ctx.session(&provider).await?;
    let mut lease = resolve::resolve(&mut session, &request.lease).await?;
    lease.require_claim("use")?;
    ready::ensure_ready(&mut session, &mut lease, request.ready_timeout).await?;
    let repo = ctx.repo_root().map(PathBuf::from).or_else(|| {
        lease
            .claim
            .as_ref()
            .and_then(|c| c.repo_root.as_ref().map(PathBuf::from))
    });
    let workdir = connect::workdir(&lease, repo.as_deref())?;
    ready::touch(&mut session, &mut lease).await?;
    let ssh = connect::ssh(&mut session, &lease).await?;
    let mut copied = Copied {
        lease: lease.ownership.lease.to_string(),
        ..Copied::default()
    };
    match &request.direction {
        Direction::Download { remote, local } => {
            download(
                &ssh,
                &workdir,
                remote,
                local,
                session.redactor(),
                &mut copied,
            )
            .await?
        }
        Direction::Upload { local, remote } => {
            upload(
                &ssh,
                &workdir,
                local,
                remote,
                session.redactor(),
                &mut copied,
            )
            .await?
        }
    }
    Ok(copied)
}

/// Copies `remote` (relative to `workdir`, or absolute) to `local`: into it when it is a
/// directory (or ends with `/`), else as it.
async fn download(
    ssh: &SshClient,
    workdir: &str,
    remote: &str,
    local: &Path,
    redactor: &crate::redact::Redactor,
    copied: &mut Copied,
) -> Result<()> {
    let checked = pattern::check(remote, true, "cp")?;
    let (dir, name) = pattern::split_last(&checked);
    if name == "." {
        return Err(usage(remote, "name a file or directory, not `.`"));
    }
    let base = pattern::under(workdir, dir);
    copied.remote = pattern::under(workdir, &checked);
    let into = local.is_dir() || local.as_os_str().to_string_lossy().ends_with('/');
    let place = if into {
        Place::Into(local.to_path_buf())
    } else if pattern::has_glob(name) {
        return Err(Failure::new(
            ErrorKind::Usage,
            format!(
                "cp: {} is not a directory, and `{}` is a glob that may match several files",
                local.display(),
                inert(remote)
            ),
        )
        .hint("copy into an existing directory (or end the local path with `/`)")
        .into());
    } else {
        Place::As(local.to_path_buf())
    };
    let command = pattern::fetch_command(&base, &[name.to_string()]);
    let fetched = stream::fetch(ssh, command, place, redactor).await?;
    copied.files = fetched.unpacked.files;
    copied.bytes = fetched.unpacked.bytes;
    copied.refused = fetched.unpacked.refused.clone();
    if fetched.status == Some(NO_DIRECTORY) || !fetched.missing.is_empty() {
        return Err(Failure::new(
            ErrorKind::NotFound,
            format!(
                "cp: {} does not exist on the sandbox",
                inert(&copied.remote)
            ),
        )
        .hint("relative paths start at the lease's work directory; `cbx ssh LEASE -- ls` shows it")
        .into());
    }
    if !fetched.complete() {
        let why = fetched.broken.unwrap_or_else(|| match fetched.status {
            Some(code) => format!("exit {code}: {}", fetched.stderr),
            None => "the connection was closed".into(),
        });
        return Err(Failure::new(
            ErrorKind::Sync,
            format!(
                "cp: the copy did not finish ({}); {} complete files were kept",
                inert(&why),
                copied.files
            ),
        )
        .into());
    }
    Ok(())
}

/// Copies `local` to `remote` (relative to `workdir`, or absolute; empty: the work
/// directory): into it when it is a directory there (or ends with `/`), else as it.
async fn upload(
    ssh: &SshClient,
    workdir: &str,
    local: &Path,
    remote: &str,
    redactor: &crate::redact::Redactor,
    copied: &mut Copied,
) -> Result<()> {
    if std::fs::symlink_metadata(local).is_err() {
        return Err(Failure::new(
            ErrorKind::Usage,
            format!("cp: {} does not exist here", local.display()),
        )
        .into());
    }
    let own_name = local
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n != "..")
        .ok_or_else(|| usage(&local.display().to_string(), "name a file or directory"))?;
    let (dir, name) = if remote.is_empty() || remote == "." {
        (workdir.to_string(), own_name)
    } else {
        let checked = pattern::check(remote, true, "cp")?;
        let target = pattern::under(workdir, &checked);
        if remote.ends_with('/') || is_remote_dir(ssh, &target).await {
            (target, own_name)
        } else {
            let (dir, name) = pattern::split_last(&checked);
            (pattern::under(workdir, dir), name.to_string())
        }
    };
    copied.remote = format!("{}/{name}", dir.trim_end_matches('/'));
    let command = pattern::send_command(&dir);
    stream::send(ssh, command, local.to_path_buf(), name, redactor).await
}

/// Whether `path` is a directory on the sandbox.
async fn is_remote_dir(ssh: &SshClient, path: &str) -> bool {
    let mut cmd = ssh.ssh();
    cmd.args(["-T", ssh.alias()])
        .arg(pattern::is_dir_command(path))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd.status().await.is_ok_and(|s| s.success())
}

fn usage(path: &str, hint: &str) -> anyhow::Error {
    Failure::new(
        ErrorKind::Usage,
        format!("cp: `{}` names no file", inert(path)),
    )
    .hint(hint.to_string())
    .into()
}
