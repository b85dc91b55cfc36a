//! Syncing the working tree to a sandbox with rsync.
//!
//! What is synced is what git considers part of the tree — tracked files plus untracked files
//! that are not ignored (`git ls-files -co --exclude-standard`) — minus `.cbxignore`. Files
//! deleted locally since the last sync are pruned remotely; anything else on the sandbox
//! (installed dependencies, build caches) is left alone. A fingerprint of the file list's
//! paths, sizes, modes and modification times skips the sync entirely when nothing changed;
//! the [`listing`] cache lets that check run without starting git.

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

mod listing;

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
    if let Some(root) = work_tree_containing(dir) {
        return Ok(root);
    }
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

/// Variables that change how git finds a repository; with any of them set, only git answers.
const GIT_DISCOVERY_VARIABLES: [&str; 4] = [
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
];

/// The work tree containing `dir`, found as git finds it in the common case — the nearest
/// directory (symlinks resolved) holding a `.git` directory with a `HEAD`, or a `.git` file
/// pointing at one — without starting git, which costs more than the rest of a skipped sync
/// (docs/performance.md). `None` leaves the answer, or the error, to `git rev-parse`.
fn work_tree_containing(dir: &Path) -> Option<PathBuf> {
    if GIT_DISCOVERY_VARIABLES
        .iter()
        .any(|v| std::env::var_os(v).is_some())
    {
        return None;
    }
    let dir = std::fs::canonicalize(dir).ok()?;
    // Inside a repository's own .git directory there is no work tree.
    if dir.components().any(|c| c.as_os_str() == ".git") {
        return None;
    }
    for candidate in dir.ancestors() {
        let dot_git = candidate.join(".git");
        let Ok(meta) = std::fs::symlink_metadata(&dot_git) else {
            continue;
        };
        let is_repo = if meta.is_dir() {
            dot_git.join("HEAD").is_file()
        } else {
            // A linked worktree or a submodule: `gitdir: <path>`.
            meta.is_file() && std::fs::read(&dot_git).is_ok_and(|b| b.starts_with(b"gitdir: "))
        };
        return is_repo.then(|| candidate.to_path_buf());
    }
    None
}

impl FileList {
    /// Lists the files of the work tree at `root`.
    ///
    /// Two `git ls-files` run at once: one lists the index (quick), the other walks the work
    /// tree for untracked, not ignored files (the slow part). While git walks, the tracked
    /// files are stat'ed on every core: on a 10,000-file tree the 10,000 stats cost more than
    /// git does, and they are what a sync that finds nothing changed spends its time on.
    pub fn collect(root: &Path) -> Result<FileList> {
        let ignore = cbxignore(root)?;
        let kept = |raw: &[u8]| {
            ignore.as_ref().is_none_or(|gi| {
                !gi.matched_path_or_any_parents(Path::new(OsStr::from_bytes(raw)), false)
                    .is_ignore()
            })
        };
        let others = std::process::Command::new("git")
            .args(["ls-files", "-z", "--others", "--exclude-standard"])
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("run git ls-files")?;
        let mut entries = std::thread::scope(|s| -> Result<Vec<(Vec<u8>, Stamp)>> {
            // Drained on its own thread, so git never waits for the pipe.
            let others = s.spawn(move || others.wait_with_output());
            let cached = ls_files(root, &["--cached"])?;
            // The index is sorted; a conflicted file appears once per stage, side by side.
            let mut paths: Vec<&[u8]> = nul_split(&cached).filter(|p| kept(p)).collect();
            paths.dedup();
            let mut entries = stamped(root, &paths)?;
            let others = others
                .join()
                .expect("the git ls-files reader does not panic")
                .context("run git ls-files")?;
            let others = ls_files_output(root, others)?;
            let paths: Vec<&[u8]> = nul_split(&others).filter(|p| kept(p)).collect();
            entries.extend(stamped(root, &paths)?);
            Ok(entries
                .into_iter()
                .map(|(p, st)| (p.to_vec(), st))
                .collect())
        })?;
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|a, b| a.0 == b.0);
        Ok(FileList::from_entries(root, entries))
    }

    /// Lists the files of the work tree at `root` as [`FileList::collect`] does, without
    /// starting git when the listing cached in `cache_dir` still holds (see [`listing`]): an
    /// unchanged tree then costs one stat per file.
    pub fn collect_cached(root: &Path, cache_dir: &Path) -> Result<FileList> {
        if let Some(files) = listing::reuse(cache_dir, root) {
            let paths: Vec<&[u8]> = files.iter().map(Vec::as_slice).collect();
            let entries = stamped(root, &paths)?
                .into_iter()
                .map(|(p, st)| (p.to_vec(), st))
                .collect();
            return Ok(FileList::from_entries(root, entries));
        }
        // Sealed before git lists: a change while it does shows as a changed stamp next time.
        let seal = listing::Seal::take(root);
        let list = FileList::collect(root)?;
        if let Some(seal) = &seal {
            listing::save(cache_dir, root, seal, &list.files);
        }
        Ok(list)
    }

    /// The list of `entries` (sorted, unique), with its size and fingerprint.
    fn from_entries(root: &Path, entries: Vec<(Vec<u8>, Stamp)>) -> FileList {
        let mut bytes = 0u64;
        let mut hasher = Sha256::new();
        hasher.update(b"cbx-sync-v1\0");
        let mut line = String::with_capacity(64);
        for (path, st) in &entries {
            use std::fmt::Write as _;
            bytes += st.len;
            hasher.update(path);
            line.clear();
            let _ = write!(
                line,
                "\0{}\0{}\0{}\0{}\0",
                st.len, st.mode, st.mtime, st.mtime_nsec
            );
            hasher.update(line.as_bytes());
        }
        FileList {
            root: root.to_path_buf(),
            files: entries.into_iter().map(|(p, _)| p).collect(),
            bytes,
            fingerprint: hex::encode(hasher.finalize()),
        }
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

/// What the fingerprint records of a file.
#[derive(Debug, Clone, Copy)]
struct Stamp {
    len: u64,
    mode: u32,
    mtime: i64,
    mtime_nsec: i64,
}

/// The non-empty NUL-separated items of `bytes`.
fn nul_split(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes.split(|b| *b == 0).filter(|p| !p.is_empty())
}

/// `git ls-files -z <args>` in `root`: its output.
fn ls_files(root: &Path, args: &[&str]) -> Result<Vec<u8>> {
    let out = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .args(args)
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .context("run git ls-files")?;
    ls_files_output(root, out)
}

/// The output of a finished `git ls-files`, or a sync failure with its message.
fn ls_files_output(root: &Path, out: std::process::Output) -> Result<Vec<u8>> {
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
    Ok(out.stdout)
}

/// Fewest files worth a thread of their own when stat'ing.
const FILES_PER_THREAD: usize = 1024;

/// The files among `paths` (relative to `root`) with their stamps, in order, stat'ed on up
/// to one thread per core. Paths that no longer exist (deleted in the work tree: pruned
/// remotely) and directories (submodules: their own repositories) are left out.
fn stamped<'a>(root: &Path, paths: &[&'a [u8]]) -> Result<Vec<(&'a [u8], Stamp)>> {
    use rustix::fs::{Mode, OFlags};
    // Each file is stat'ed relative to its directory, opened once for all of its files: the
    // kernel then walks one path component per file instead of the whole absolute path.
    let root_dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("open {}", root.display()))?;
    let root_dir = &root_dir;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.min(paths.len() / FILES_PER_THREAD).max(1);
    if threads == 1 {
        return Ok(stamp_chunk(root_dir, paths));
    }
    let chunk = paths.len().div_ceil(threads);
    Ok(std::thread::scope(|s| {
        let mut chunks = paths.chunks(chunk);
        let first = chunks.next().unwrap_or_default();
        let rest: Vec<_> = chunks
            .map(|c| s.spawn(move || stamp_chunk(root_dir, c)))
            .collect();
        let mut out = stamp_chunk(root_dir, first);
        for handle in rest {
            out.extend(handle.join().expect("stat'ing files does not panic"));
        }
        out
    }))
}

/// [`stamped`] for one run of paths, on the calling thread.
fn stamp_chunk<'a>(root: &rustix::fd::OwnedFd, paths: &[&'a [u8]]) -> Vec<(&'a [u8], Stamp)> {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags};
    let mut out = Vec::with_capacity(paths.len());
    // The directory of the previous path, open (`None` when it could not be opened: its files
    // are gone). Paths arrive sorted, so a directory's files mostly arrive together.
    let mut current: Option<(&[u8], Option<rustix::fd::OwnedFd>)> = None;
    for raw in paths {
        let (dir, name) = match raw.iter().rposition(|b| *b == b'/') {
            Some(slash) => (&raw[..slash], &raw[slash + 1..]),
            None => (&raw[..0], &raw[..]),
        };
        let dir_fd = if dir.is_empty() {
            Some(root)
        } else {
            if current.as_ref().is_none_or(|(open, _)| *open != dir) {
                let fd = rustix::fs::openat(
                    root,
                    OsStr::from_bytes(dir),
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .ok();
                current = Some((dir, fd));
            }
            current.as_ref().and_then(|(_, fd)| fd.as_ref())
        };
        let Some(dir_fd) = dir_fd else {
            continue;
        };
        let Ok(st) = rustix::fs::statat(dir_fd, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW)
        else {
            continue;
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            continue;
        }
        // `c_long` fields: i64 here, narrower on 32-bit targets.
        #[allow(clippy::unnecessary_cast)]
        out.push((
            *raw,
            Stamp {
                len: st.st_size as u64,
                mode: st.st_mode as u32,
                mtime: st.st_mtime as i64,
                mtime_nsec: st.st_mtime_nsec as i64,
            },
        ));
    }
    out
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
    // The same round trip reports the sandbox's rsync version (nothing when it has none:
    // rsync itself then says so).
    cmd.arg(ssh.alias()).arg(format!(
        "mkdir -p {dir} && cd {dir} && xargs -0 rm -f -- && {{ rsync --version 2>/dev/null | head -n 1; true; }}"
    ));
    let remote = run_with_input(cmd, &deleted_in, "prepare the work directory", redactor).await?;

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
    // rsync's quick check compares whole seconds: a file rewritten at the same size within
    // the second of the previous sync would be skipped. Nanoseconds, where the sandbox's
    // rsync can compare them.
    if compares_nanoseconds(&String::from_utf8_lossy(&remote)) {
        rsync.arg("--modify-window=-1");
    }
    let mut source = list.root.as_os_str().to_owned();
    source.push("/");
    rsync
        .arg(source)
        .arg(format!("{}:{}/", ssh.alias(), remote_dir));
    run_rsync(rsync, files_in, redactor).await
}

/// Whether an `rsync --version` first line names a version that compares modification times
/// to the nanosecond (`--modify-window=-1`, rsync 3.1.3 and later).
fn compares_nanoseconds(version_line: &str) -> bool {
    let Some(version) = version_line
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
    else {
        return false;
    };
    let numbers: Vec<u32> = version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|n| !n.is_empty())
        .take(3)
        .map_while(|n| n.parse().ok())
        .collect();
    numbers.len() == 3 && (numbers[0], numbers[1], numbers[2]) >= (3, 1, 3)
}

/// Runs `cmd` with `input` on stdin; returns its stdout.
async fn run_with_input(
    mut cmd: tokio::process::Command,
    input: &[u8],
    what: &str,
    redactor: &Redactor,
) -> Result<Vec<u8>> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
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
    Ok(out.stdout)
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

    pub(super) fn git(dir: &Path, args: &[&str]) {
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
    fn the_work_tree_is_found_as_git_finds_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        git(&root, &["init", "-q"]);
        // Through a symlink, as git reports it: symlinks resolved.
        std::os::unix::fs::symlink(&root, dir.path().join("link")).unwrap();
        for start in [root.join("a/b"), dir.path().join("link/a")] {
            let git_says = std::process::Command::new("git")
                .args(["rev-parse", "--show-toplevel"])
                .current_dir(&start)
                .output()
                .unwrap();
            let git_says = PathBuf::from(String::from_utf8(git_says.stdout).unwrap().trim());
            assert_eq!(work_tree_containing(&start), Some(git_says.clone()));
            assert_eq!(repo_root(&start).unwrap(), git_says);
        }
        // Inside .git there is no work tree: git answers (with an error).
        assert_eq!(work_tree_containing(&root.join(".git")), None);
        assert!(repo_root(&root.join(".git")).is_err());
        // A linked worktree's `.git` is a file.
        std::fs::write(root.join("f"), "").unwrap();
        git(&root, &["add", "f"]);
        git(
            &root,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.com",
                "commit",
                "-qm",
                "f",
            ],
        );
        let linked = dir.path().join("linked");
        git(&root, &["worktree", "add", "-q", linked.to_str().unwrap()]);
        let linked = std::fs::canonicalize(&linked).unwrap();
        assert_eq!(work_tree_containing(&linked), Some(linked.clone()));
    }

    #[test]
    fn nanosecond_comparison_needs_rsync_3_1_3() {
        for (line, yes) in [
            ("rsync  version 3.2.7  protocol version 31", true),
            ("rsync  version v3.4.1  protocol version 32", true),
            ("rsync  version 3.1.3  protocol version 31", true),
            ("rsync  version 3.1.2  protocol version 31", false),
            ("rsync  version 2.6.9  protocol version 29", false),
            ("", false),
            ("sh: rsync: not found", false),
        ] {
            assert_eq!(compares_nanoseconds(line), yes, "{line:?}");
        }
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

    /// The fingerprint as every cbx so far has computed it: records written by an older cbx
    /// must still match an unchanged tree.
    fn reference_fingerprint(root: &Path, files: &[&str]) -> String {
        use std::os::unix::fs::MetadataExt;
        let mut files = files.to_vec();
        files.sort();
        let mut hasher = Sha256::new();
        hasher.update(b"cbx-sync-v1\0");
        for f in files {
            let meta = std::fs::symlink_metadata(root.join(f)).unwrap();
            hasher.update(f.as_bytes());
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
        hex::encode(hasher.finalize())
    }

    #[test]
    fn many_files_are_listed_in_order_with_a_stable_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        git(root, &["init", "-q"]);
        std::fs::write(root.join(".cbxignore"), "skip/\n").unwrap();
        let mut expected = vec![".cbxignore".to_string()];
        // Enough files for several stat threads; tracked and untracked, in many directories.
        for i in 0..3000 {
            let rel = format!("d{}/f{i:04}", i % 7);
            std::fs::create_dir_all(root.join(format!("d{}", i % 7))).unwrap();
            std::fs::write(root.join(&rel), format!("{i}")).unwrap();
            expected.push(rel);
        }
        std::fs::create_dir_all(root.join("skip")).unwrap();
        std::fs::write(root.join("skip/x"), "x").unwrap();
        git(root, &["add", "d0", "d1", "d2", "d3", "skip"]);
        // Tracked but deleted in the work tree: not listed (pruned remotely instead).
        std::fs::remove_file(root.join("d0/f0000")).unwrap();
        expected.retain(|f| f != "d0/f0000");
        expected.sort();
        let list = FileList::collect(root).unwrap();
        let names: Vec<String> = list
            .files
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect();
        assert_eq!(names, expected);
        let refs: Vec<&str> = expected.iter().map(String::as_str).collect();
        assert_eq!(list.fingerprint, reference_fingerprint(root, &refs));
        let size: u64 = refs
            .iter()
            .map(|f| std::fs::metadata(root.join(f)).unwrap().len())
            .sum();
        assert_eq!(list.bytes, size);
    }

    #[test]
    fn a_conflicted_file_is_listed_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let commit = |msg: &str| {
            git(
                root,
                &[
                    "-c",
                    "user.name=t",
                    "-c",
                    "user.email=t@example.com",
                    "commit",
                    "-qam",
                    msg,
                ],
            )
        };
        git(root, &["init", "-q"]);
        std::fs::write(root.join("a.txt"), "base\n").unwrap();
        git(root, &["add", "a.txt"]);
        commit("base");
        git(root, &["checkout", "-qb", "other"]);
        std::fs::write(root.join("a.txt"), "other\n").unwrap();
        commit("other");
        git(root, &["checkout", "-q", "-"]);
        std::fs::write(root.join("a.txt"), "mine\n").unwrap();
        commit("mine");
        let merge = std::process::Command::new("git")
            .args(["merge", "-q", "other"])
            .current_dir(root)
            .output()
            .unwrap();
        assert!(!merge.status.success(), "the merge must conflict");
        let list = FileList::collect(root).unwrap();
        assert_eq!(list.files, [b"a.txt".to_vec()]);
        assert_eq!(list.fingerprint, reference_fingerprint(root, &["a.txt"]));
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

    /// The sync record as every cbx so far has written it.
    #[test]
    fn the_record_format_is_pinned() {
        let record = Record {
            remote_dir: "cbx/cbx_0123456789ab/app".into(),
            fingerprint: "f".into(),
            synced_at: "T".into(),
        };
        assert_eq!(
            String::from_utf8(serde_json::to_vec_pretty(&record).unwrap()).unwrap(),
            "{\n  \"remoteDir\": \"cbx/cbx_0123456789ab/app\",\n  \"fingerprint\": \"f\",\n  \"syncedAt\": \"T\"\n}"
        );
    }
}
