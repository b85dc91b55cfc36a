//! Syncing the working tree to a sandbox: with rsync, or with a tar stream where the sandbox
//! has no rsync.
//!
//! What is synced is what git considers part of the tree — tracked files plus untracked files
//! that are not ignored — minus `.cbxignore`. Files deleted locally since the last sync are
//! pruned remotely; anything else on the sandbox (installed dependencies, build caches) is
//! left alone. A fingerprint of the file list skips the sync entirely when nothing changed.
//!
//! - [`discovery`]: which repository a directory is in (git-faithful, usually without git).
//! - [`files`]: the file list, its stamps and its fingerprint; size limits.
//! - [`listing`]: the cache that lists an unchanged tree without starting git.
//! - [`record`]: what the last sync to a lease sent.
//! - [`sent`]: the stamp of each file the last sync sent (what the tar transport compares).
//! - [`tools`]: what the sandbox has to receive files with, probed and recorded.
//! - [`transport`]: which transport a sync uses, from what the sandbox has.
//! - [`transfer`]: the prepare round trip and the rsync process.
//! - [`tarball`]: the tar transport.
//! - [`report`]: what a sync did, in words.

pub mod discovery;
pub mod files;
pub mod listing;
pub mod record;
pub mod report;
pub mod sent;
mod tarball;
pub mod tools;
mod transfer;
pub mod transport;

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use anyhow::Result;

pub use self::discovery::{find_repo_root, repo_root};
pub use self::files::FileList;
pub use self::report::{SyncReport, human_bytes, summary};
pub use self::transport::{Transport, TransportChoice};
use crate::progress::Progress;
use crate::redact::Redactor;
use crate::ssh::SshClient;

/// Options of one sync.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Sync even if the fingerprint matches.
    pub force: bool,
    /// Suppress progress.
    pub quiet: bool,
    /// The transport the user chose.
    pub transport: TransportChoice,
    /// Whether this machine can run rsync ([`transport::local_rsync`] of the environment's
    /// `PATH`).
    pub local_rsync: bool,
}

/// Removes a lease's sync records.
pub fn forget(state_dir: &Path, lease: &str) {
    record::forget(state_dir, lease);
    sent::forget(state_dir, lease);
    tools::forget(state_dir, lease);
}

/// Syncs `list` to `remote_dir` over `ssh`, unless the last sync to `lease` sent the same.
pub async fn sync(
    ssh: &SshClient,
    list: &FileList,
    remote_dir: &str,
    state_dir: &Path,
    lease: &str,
    options: Options,
    redactor: &Redactor,
) -> Result<SyncReport> {
    let started = Instant::now();
    let previous = record::load(state_dir, lease).filter(|p| p.remote_dir == remote_dir);
    let mut report = SyncReport {
        skipped: true,
        files: list.files.len(),
        bytes: list.bytes,
        transferred: Some(0),
        pruned: 0,
        transport: None,
        took: started.elapsed(),
    };
    if !options.force
        && previous
            .as_ref()
            .is_some_and(|p| p.fingerprint == list.fingerprint)
    {
        return Ok(report);
    }
    let previous_files = match &previous {
        Some(_) => record::load_files(state_dir, lease),
        None => Vec::new(),
    };
    let current: HashSet<&[u8]> = list.files.iter().map(Vec::as_slice).collect();
    let deleted: Vec<&[u8]> = previous_files
        .iter()
        .map(Vec::as_slice)
        .filter(|p| !current.contains(p))
        .collect();

    let progress = Progress::start(
        format!(
            "syncing {} files ({}) to {remote_dir}",
            list.files.len(),
            human_bytes(list.bytes)
        ),
        options.quiet,
    );
    let stamps = match (&previous, options.force) {
        (Some(_), false) => sent::load(state_dir, lease),
        _ => sent::SentStamps::default(),
    };
    let files_in = nul_joined(&list.files);
    let job = Job {
        ssh,
        list,
        remote_dir,
        stamps: &stamps,
        files_in: &files_in,
        redactor,
    };
    let outcome = send(&job, &deleted, state_dir, lease, options).await;
    progress.clear();
    let (transport, transferred) = outcome?;
    sent::save(state_dir, lease, list)?;
    record::save(state_dir, lease, remote_dir, &list.fingerprint, &files_in)?;
    report.skipped = false;
    report.transport = Some(transport);
    report.transferred = transferred;
    report.pruned = deleted.len();
    report.took = started.elapsed();
    Ok(report)
}

/// What one sync sends, and where.
struct Job<'a> {
    ssh: &'a SshClient,
    list: &'a FileList,
    remote_dir: &'a str,
    /// What the last sync sent (what the tar transport compares).
    stamps: &'a sent::SentStamps,
    /// The file list, NUL-separated (what rsync reads).
    files_in: &'a [u8],
    redactor: &'a Redactor,
}

/// Sends the files with the transport chosen from the sandbox's tools; returns the transport
/// and how many files it sent.
///
/// With the tools recorded for `lease` (and not `--resync`) and nothing to prune, the
/// transport goes first and creates the work directory itself: one round trip. Otherwise —
/// or when the recorded tools cannot sync, or the transport turns out to be missing — the
/// prepare round trip creates the directory, prunes `deleted` and probes the tools again
/// (recording them), then the transport chosen from those sends.
async fn send(
    job: &Job<'_>,
    deleted: &[&[u8]],
    state_dir: &Path,
    lease: &str,
    options: Options,
) -> Result<(Transport, Option<u64>)> {
    let recorded = match options.force {
        true => None,
        false => tools::load(state_dir, lease),
    };
    if let Some(known) = recorded.filter(|_| deleted.is_empty())
        && let Ok(transport) = transport::choose(options.transport, &known, options.local_rsync)
    {
        tracing::debug!(
            "sync transport: {} (recorded: the sandbox has {known:?})",
            transport.name()
        );
        match transmit(job, transport, &known, false).await {
            Err(e) if e.is::<transport::ToolMissing>() => {
                tracing::debug!("the recorded tools are out of date: {e:#}");
                tools::forget(state_dir, lease);
            }
            sent => return sent.map(|sent| (transport, sent)),
        }
    }
    let tools = transfer::prepare(job.ssh, job.remote_dir, deleted, job.redactor).await?;
    tools::remember(state_dir, lease, &tools);
    let transport = transport::choose(options.transport, &tools, options.local_rsync)?;
    tracing::debug!(
        "sync transport: {} (probed: the sandbox has {tools:?})",
        transport.name()
    );
    let sent = transmit(job, transport, &tools, true)
        .await
        .map_err(transport::plain)?;
    Ok((transport, sent))
}

/// Sends the files with `transport` into the work directory, which it creates; returns how
/// many it sent. Unless `dir_made`, it runs even with nothing to send, for the directory.
async fn transmit(
    job: &Job<'_>,
    transport: Transport,
    tools: &tools::RemoteTools,
    dir_made: bool,
) -> Result<Option<u64>> {
    let Job {
        ssh,
        list,
        remote_dir,
        stamps,
        files_in,
        redactor,
    } = *job;
    match transport {
        Transport::Rsync => transfer::rsync(ssh, list, remote_dir, tools, files_in, redactor).await,
        Transport::Tar => {
            let changed: Vec<Vec<u8>> = list
                .files
                .iter()
                .zip(&list.stamps)
                .filter(|(path, stamp)| !stamps.unchanged(path, stamp))
                .map(|(path, _)| path.clone())
                .collect();
            if changed.is_empty() && dir_made {
                Ok(Some(0))
            } else {
                Ok(Some(
                    tarball::send(ssh, &list.root, remote_dir, changed, redactor).await?,
                ))
            }
        }
    }
}

/// `paths`, each followed by a NUL: what rsync's `--files-from --from0` reads.
fn nul_joined(paths: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(paths.len() * 32);
    for p in paths {
        out.extend_from_slice(p);
        out.push(0);
    }
    out
}
