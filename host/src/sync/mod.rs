//! Syncing the working tree to a sandbox with rsync.
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
//! - [`transfer`]: the ssh round trip and the rsync process.
//! - [`report`]: what a sync did, in words.

pub mod discovery;
pub mod files;
pub mod listing;
pub mod record;
pub mod report;
mod transfer;

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use anyhow::Result;

pub use self::discovery::{find_repo_root, repo_root};
pub use self::files::FileList;
pub use self::record::forget;
pub use self::report::{SyncReport, human_bytes, summary};
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
    let files_in = nul_joined(&list.files);
    let outcome = transfer::transfer(ssh, list, remote_dir, &deleted, &files_in, redactor).await;
    progress.clear();
    report.transferred = outcome?;
    record::save(state_dir, lease, remote_dir, &list.fingerprint, &files_in)?;
    report.skipped = false;
    report.pruned = deleted.len();
    report.took = started.elapsed();
    Ok(report)
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
