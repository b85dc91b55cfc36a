//! The files a sync sends: what git considers part of the tree — tracked files plus untracked
//! files that are not ignored (`git ls-files -co --exclude-standard`) — minus `.cbxignore`,
//! each stat'ed, with a fingerprint of their paths, sizes, modes and modification times that
//! tells an unchanged tree without sending anything. The [`listing`](super::listing) cache
//! lets an unchanged tree be listed without starting git.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::listing;
use super::report::human_bytes;
use crate::environment::Environment;
use crate::error::{ErrorKind, Failure};

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
    /// Each file's stamp, in the order of `files`.
    pub stamps: Vec<FileStamp>,
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
        let mut entries = std::thread::scope(|s| -> Result<Vec<(Vec<u8>, FileStamp)>> {
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
    pub fn collect_cached(root: &Path, cache_dir: &Path, env: &Environment) -> Result<FileList> {
        if let Some(files) = listing::reuse(cache_dir, root, env) {
            let paths: Vec<&[u8]> = files.iter().map(Vec::as_slice).collect();
            let entries = stamped(root, &paths)?
                .into_iter()
                .map(|(p, st)| (p.to_vec(), st))
                .collect();
            return Ok(FileList::from_entries(root, entries));
        }
        // Sealed before git lists: a change while it does shows as a changed stamp next time.
        let seal = listing::Seal::take(root, env);
        let list = FileList::collect(root)?;
        if let Some(seal) = &seal {
            listing::save(cache_dir, root, seal, &list.files);
        }
        Ok(list)
    }

    /// The list of `entries` (sorted, unique), with its size and fingerprint.
    fn from_entries(root: &Path, entries: Vec<(Vec<u8>, FileStamp)>) -> FileList {
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
        let (files, stamps) = entries.into_iter().unzip();
        FileList {
            root: root.to_path_buf(),
            files,
            bytes,
            fingerprint: hex::encode(hasher.finalize()),
            stamps,
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

/// What the fingerprint records of a file: when any of it changes, the file is sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// Size in bytes.
    pub len: u64,
    /// Type and permission bits.
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Its nanoseconds.
    pub mtime_nsec: i64,
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
fn stamped<'a>(root: &Path, paths: &[&'a [u8]]) -> Result<Vec<(&'a [u8], FileStamp)>> {
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
fn stamp_chunk<'a>(root: &rustix::fd::OwnedFd, paths: &[&'a [u8]]) -> Vec<(&'a [u8], FileStamp)> {
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
            FileStamp {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn git(dir: &Path, args: &[&str]) {
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
            stamps: Vec::new(),
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
