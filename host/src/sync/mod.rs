//! Syncing the working tree to a sandbox with rsync.
//!
//! What is synced is what git considers part of the tree — tracked files plus untracked files
//! that are not ignored (`git ls-files -co --exclude-standard`) — minus `.cbxignore`. Files
//! deleted locally since the last sync are pruned remotely; anything else on the sandbox
//! (installed dependencies, build caches) is left alone. A fingerprint of the file list's
//! paths, sizes, modes and modification times skips the sync entirely when nothing changed.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::error::{ErrorKind, Failure};
use crate::paths;
use crate::progress::{Progress, human_duration};
use crate::redact::Redactor;
use crate::remote::quote;
use crate::ssh::SshClient;

/// Trees with more files than this get a warning.
pub const WARN_FILES: usize = 20_000;
/// Trees larger than this get a warning.
pub const WARN_BYTES: u64 = 1 << 30;
/// Trees with more files than this are refused unless allowed.
pub const MAX_FILES: usize = 100_000;
/// Trees larger than this are refused unless allowed.
pub const MAX_BYTES: u64 = 5 << 30;

/// The files to sync.
#[derive(Debug, Clone)]
pub struct FileList {
    /// The repository root.
    pub root: PathBuf,
    /// Relative paths (as bytes), sorted.
    pub files: Vec<Vec<u8>>,
    /// Their total size.
    pub bytes: u64,
    /// Fingerprint of paths, sizes, modes and modification times.
    pub fingerprint: String,
}

/// The git work tree containing `dir`; a clear error (exit 6) when there is none.
pub fn repo_root(dir: &Path) -> Result<PathBuf> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--show-toplevel"])
        .current_dir(dir)
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure::new(
                ErrorKind::Sync,
                "git is not installed; cbx uses it to decide which files to sync",
            )
            .hint("install git, or pass --no-sync")
            .into());
        }
        Err(e) => return Err(e).context("run git"),
    };
    if !out.status.success() {
        return Err(Failure::new(
            ErrorKind::Sync,
            format!(
                "{} is not inside a git repository; cbx syncs the files git knows about",
                dir.display()
            ),
        )
        .hint("run `git init` here, or pass --no-sync to run without syncing")
        .into());
    }
    Ok(PathBuf::from(OsStr::from_bytes(
        out.stdout.trim_ascii_end(),
    )))
}

impl FileList {
    /// Lists the files of the work tree at `root`.
    pub fn collect(root: &Path) -> Result<FileList> {
        let out = std::process::Command::new("git")
            .args([
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ])
            .current_dir(root)
            .output()
            .context("run git ls-files")?;
        if !out.status.success() {
            return Err(Failure::new(
                ErrorKind::Sync,
                format!(
                    "git ls-files failed in {}: {}",
                    root.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            )
            .into());
        }
        let ignore = cbxignore(root)?;
        let mut seen = HashSet::new();
        let mut entries = Vec::new();
        let mut bytes = 0u64;
        for raw in out.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
            if !seen.insert(raw) {
                continue; // a conflicted file appears once per stage
            }
            let rel = Path::new(OsStr::from_bytes(raw));
            let Ok(meta) = std::fs::symlink_metadata(root.join(rel)) else {
                continue; // deleted in the work tree: pruned remotely
            };
            if meta.is_dir() {
                continue; // a submodule: its own repository, not synced
            }
            if let Some(gi) = &ignore
                && gi.matched_path_or_any_parents(rel, false).is_ignore()
            {
                continue;
            }
            bytes += meta.len();
            entries.push((raw.to_vec(), meta));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut hasher = Sha256::new();
        hasher.update(b"cbx-sync-v1\0");
        for (path, meta) in &entries {
            use std::os::unix::fs::MetadataExt;
            hasher.update(path);
            hasher.update(
                format!(
                    "\0{}\0{}\0{}\0{}\0",
                    meta.len(),
                    meta.mode(),
                    meta.mtime(),
                    meta.mtime_nsec()
                )
                .as_bytes(),
            );
        }
        Ok(FileList {
            root: root.to_path_buf(),
            files: entries.into_iter().map(|(p, _)| p).collect(),
            bytes,
            fingerprint: hex::encode(hasher.finalize()),
        })
    }

    /// Refuses (exit 6) a tree past the limits unless `allow_large`; warns past the warning
    /// thresholds.
    pub fn check_size(&self, allow_large: bool, progress: &dyn Fn(&str)) -> Result<()> {
        let n = self.files.len();
        if !allow_large && (n > MAX_FILES || self.bytes > MAX_BYTES) {
            return Err(Failure::new(
                ErrorKind::Sync,
                format!(
                    "the tree to sync is very large ({n} files, {}); cbx refuses more than {MAX_FILES} files or {}",
                    human_bytes(self.bytes),
                    human_bytes(MAX_BYTES)
                ),
            )
            .hint("exclude what the sandbox does not need in .cbxignore (gitignore syntax), or pass --sync-large (or set CBX_SYNC_ALLOW_LARGE=1) to sync it anyway")
            .into());
        }
        if n > WARN_FILES || self.bytes > WARN_BYTES {
            progress(&format!(
                "warning: syncing a large tree ({n} files, {}); consider a .cbxignore",
                human_bytes(self.bytes)
            ));
        }
        Ok(())
    }
}

fn cbxignore(root: &Path) -> Result<Option<ignore::gitignore::Gitignore>> {
    let path = root.join(".cbxignore");
    if !path.exists() {
        return Ok(None);
    }
    let mut builder = ignore::gitignore::GitignoreBuilder::new(root);
    if let Some(e) = builder.add(&path) {
        return Err(Failure::new(ErrorKind::Sync, format!("{}: {e}", path.display())).into());
    }
    Ok(Some(
        builder
            .build()
            .with_context(|| format!("read {}", path.display()))?,
    ))
}

/// What the last successful sync to a lease sent, kept beside the claims (no secrets).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    remote_dir: String,
    fingerprint: String,
    synced_at: String,
}

/// Where sync records for `lease` live.
pub fn record_paths(state_dir: &Path, lease: &str) -> (PathBuf, PathBuf) {
    let dir = state_dir.join("sync");
    (
        dir.join(format!("{lease}.json")),
        dir.join(format!("{lease}.files")),
    )
}

/// Removes a lease's sync records.
pub fn forget(state_dir: &Path, lease: &str) {
    let (meta, files) = record_paths(state_dir, lease);
    let _ = fs_err::remove_file(meta);
    let _ = fs_err::remove_file(files);
}

/// What a sync did.
#[derive(Debug, Clone)]
pub struct Report {
    /// Whether it was skipped because nothing changed.
    pub skipped: bool,
    /// Files in the tree.
    pub files: usize,
    /// Their size.
    pub bytes: u64,
    /// Files rsync transferred.
    pub transferred: Option<u64>,
    /// Files pruned remotely.
    pub pruned: usize,
    /// How long it took.
    pub took: Duration,
}

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
) -> Result<Report> {
    let started = Instant::now();
    let (meta_path, files_path) = record_paths(state_dir, lease);
    let previous: Option<Record> = fs_err::read(&meta_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if !options.force
        && let Some(prev) = &previous
        && prev.fingerprint == list.fingerprint
        && prev.remote_dir == remote_dir
    {
        return Ok(Report {
            skipped: true,
            files: list.files.len(),
            bytes: list.bytes,
            transferred: Some(0),
            pruned: 0,
            took: started.elapsed(),
        });
    }
    let previous_files: Vec<Vec<u8>> = match &previous {
        Some(p) if p.remote_dir == remote_dir => fs_err::read(&files_path)
            .map(|b| {
                b.split(|c| *c == 0)
                    .filter(|p| !p.is_empty())
                    .map(<[u8]>::to_vec)
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
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
    let mut files_in = Vec::with_capacity(list.files.len() * 32);
    for p in &list.files {
        files_in.extend_from_slice(p);
        files_in.push(0);
    }
    let outcome = transfer(ssh, list, remote_dir, &deleted, &files_in, redactor).await;
    progress.clear();
    let stats = outcome?;

    // 3. Remember what was sent.
    let record = Record {
        remote_dir: remote_dir.to_string(),
        fingerprint: list.fingerprint.clone(),
        synced_at: chrono::Utc::now().to_rfc3339(),
    };
    paths::write_private_atomic(&files_path, &files_in)?;
    paths::write_private_atomic(&meta_path, &serde_json::to_vec_pretty(&record)?)?;
    Ok(Report {
        skipped: false,
        files: list.files.len(),
        bytes: list.bytes,
        transferred: stats,
        pruned: deleted.len(),
        took: started.elapsed(),
    })
}

/// Creates the work directory and prunes what was deleted locally (one round trip), then
/// rsyncs the listed files. Returns how many files rsync transferred.
async fn transfer(
    ssh: &SshClient,
    list: &FileList,
    remote_dir: &str,
    deleted: &[&[u8]],
    files_in: &[u8],
    redactor: &Redactor,
) -> Result<Option<u64>> {
    let mut deleted_in = Vec::new();
    for p in deleted {
        deleted_in.extend_from_slice(p);
        deleted_in.push(0);
    }
    let dir = quote(remote_dir);
    let mut cmd = ssh.ssh();
    cmd.arg(ssh.alias())
        .arg(format!("mkdir -p {dir} && cd {dir} && xargs -0 rm -f --"));
    run_with_input(cmd, &deleted_in, "prepare the work directory", redactor).await?;

    let mut rsync = tokio::process::Command::new("rsync");
    rsync
        .args([
            "--links",
            "--perms",
            "--times",
            "--stats",
            "--timeout=300",
            "--files-from=-",
            "--from0",
        ])
        .arg("-e")
        .arg(ssh.rsync_shell());
    if !is_loopback(&ssh.target().host) {
        rsync.arg("--compress");
    }
    let mut source = list.root.as_os_str().to_owned();
    source.push("/");
    rsync
        .arg(source)
        .arg(format!("{}:{}/", ssh.alias(), remote_dir));
    run_rsync(rsync, files_in, redactor).await
}

async fn run_with_input(
    mut cmd: tokio::process::Command,
    input: &[u8],
    what: &str,
    redactor: &Redactor,
) -> Result<()> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::new(ErrorKind::Sync, crate::ssh::spawn_error(&e)))?;
    let mut stdin = child.stdin.take().expect("piped");
    let input = input.to_vec();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
    });
    let out = child.wait_with_output().await.context("wait for ssh")?;
    let _ = writer.await;
    if !out.status.success() {
        return Err(Failure::new(
            ErrorKind::Sync,
            format!(
                "could not {what} on the sandbox (ssh exit {}): {}",
                out.status.code().unwrap_or(-1),
                redactor.redact(String::from_utf8_lossy(&out.stderr).trim())
            ),
        )
        .into());
    }
    Ok(())
}

/// Runs rsync with the file list on stdin; returns the number of files it transferred.
async fn run_rsync(
    mut cmd: tokio::process::Command,
    list: &[u8],
    redactor: &Redactor,
) -> Result<Option<u64>> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| {
        Failure::new(
            ErrorKind::Sync,
            if e.kind() == std::io::ErrorKind::NotFound {
                "rsync is not installed on this machine (install it, e.g. apt-get install rsync)"
                    .to_string()
            } else {
                format!("could not run rsync: {e}")
            },
        )
    })?;
    let mut stdin = child.stdin.take().expect("piped");
    let input = list.to_vec();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
    });
    let out = child.wait_with_output().await.context("wait for rsync")?;
    let _ = writer.await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = redactor.redact(String::from_utf8_lossy(&out.stderr).trim());
    match out.status.code() {
        Some(0) => {}
        // Files vanished between listing and sending: the rest arrived.
        Some(24) => tracing::warn!("some files vanished during the sync: {stderr}"),
        code => {
            let remote_missing = stderr.contains("command not found") || code == Some(127);
            let mut f = Failure::new(
                ErrorKind::Sync,
                format!("rsync failed (exit {}): {stderr}", code.unwrap_or(-1)),
            );
            if remote_missing {
                f = f.hint("the sandbox needs rsync installed (use an image or snapshot that has it), or pass --no-sync");
            }
            return Err(f.into());
        }
    }
    Ok(stdout
        .lines()
        .find_map(|l| l.strip_prefix("Number of regular files transferred:"))
        .and_then(|n| n.trim().replace(',', "").parse().ok()))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `1.2 MB` style sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// One line describing a finished sync.
pub fn summary(report: &Report, remote_dir: &str) -> String {
    if report.skipped {
        format!(
            "no changes since the last sync ({} files checked in {})",
            report.files,
            human_duration(report.took)
        )
    } else {
        format!(
            "synced {} files ({}) to {remote_dir} in {}{}{}",
            report.files,
            human_bytes(report.bytes),
            human_duration(report.took),
            report
                .transferred
                .map(|t| format!("; {t} sent"))
                .unwrap_or_default(),
            if report.pruned > 0 {
                format!("; {} pruned", report.pruned)
            } else {
                String::new()
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let ok = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
    }

    #[test]
    fn lists_tracked_and_untracked_minus_ignored_and_cbxignore() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        git(root, &["init", "-q"]);
        std::fs::write(root.join(".gitignore"), "target/\n").unwrap();
        std::fs::write(root.join(".cbxignore"), "*.log\n").unwrap();
        std::fs::create_dir_all(root.join("target")).unwrap();
        std::fs::write(root.join("target/big"), "x").unwrap();
        std::fs::write(root.join("a.rs"), "a").unwrap();
        std::fs::write(root.join("debug.log"), "l").unwrap();
        std::fs::write(root.join("gone.rs"), "g").unwrap();
        git(root, &["add", "a.rs", "gone.rs"]);
        std::fs::remove_file(root.join("gone.rs")).unwrap();
        std::fs::write(root.join("new.txt"), "n").unwrap();
        let list = FileList::collect(root).unwrap();
        let names: Vec<String> = list
            .files
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect();
        assert_eq!(names, [".cbxignore", ".gitignore", "a.rs", "new.txt"]);
        let again = FileList::collect(root).unwrap();
        assert_eq!(list.fingerprint, again.fingerprint);
        std::fs::write(root.join("new.txt"), "changed").unwrap();
        assert_ne!(
            FileList::collect(root).unwrap().fingerprint,
            list.fingerprint
        );
    }

    #[test]
    fn not_a_repository_is_a_sync_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = repo_root(dir.path()).unwrap_err();
        assert_eq!(crate::error::exit_code(&err), 6);
        assert!(
            err.to_string().contains("is not inside a git repository"),
            "{err}"
        );
    }

    #[test]
    fn size_limits_warn_and_refuse() {
        let list = FileList {
            root: PathBuf::new(),
            files: vec![b"a".to_vec(); MAX_FILES + 1],
            bytes: 1,
            fingerprint: String::new(),
        };
        let err = list.check_size(false, &|_| {}).unwrap_err();
        assert!(err.to_string().contains("very large"), "{err}");
        assert!(
            crate::error::failure(&err)
                .unwrap()
                .hint
                .as_deref()
                .unwrap()
                .contains("--sync-large")
        );
        let warned = std::cell::Cell::new(false);
        list.check_size(true, &|_| warned.set(true)).unwrap();
        assert!(warned.get());
    }
}
