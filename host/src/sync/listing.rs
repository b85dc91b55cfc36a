//! The listing cache: which files a sync considers, kept between runs so that checking an
//! unchanged tree does not start git.
//!
//! `git ls-files` reads the index and walks the work tree; on a 10,000-file tree that costs
//! as much as stat'ing every file does, and more than a round trip to the sandbox. The list it
//! returns depends only on:
//! - the index (`.git/index`);
//! - the ignore rules: every `.gitignore` in the tree, `.git/info/exclude`, the global excludes
//!   file and the git configuration that names it, and `.cbxignore`;
//! - the entries of every directory git walks: those not ignored, except `.git`.
//!
//! Creating, deleting or renaming an entry changes its directory's modification time, so a
//! listing saved together with the stamps of all of those — taken *before* git listed the
//! tree — is still the tree's listing while every stamp is unchanged. A file's contents are not
//! part of the listing: every file is stat'ed on every run, and its stamp goes into the
//! fingerprint as before.
//!
//! Any doubt means asking git again: a stamp that changed, a stamp too recent to trust (a
//! change within the same clock tick would not show), a different git environment, a `.git`
//! that is not a plain directory, an unreadable directory, or a cache file that does not parse.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::environment::Environment;
use crate::paths;

/// Stamps younger than this when a listing is saved are not trusted: file systems keep time
/// in ticks (up to two seconds on some), and a change within the tick of the stamp would not
/// change it.
const RACY: Duration = Duration::from_secs(2);

/// The first line of a cache file; a different one is not read.
const MAGIC: &[u8] = b"cbx-listing-v1";

/// What identifies one state of a file or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Mark {
    /// The mark of `path` (not following a final symlink), or `None` when it does not exist.
    fn of(path: &Path) -> Option<Mark> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(path).ok()?;
        Some(Mark {
            ino: meta.ino(),
            len: meta.len(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        })
    }

    fn encode(mark: Option<Mark>) -> String {
        match mark {
            Some(m) => format!("{},{},{},{}", m.ino, m.len, m.mtime, m.mtime_nsec),
            None => "-".into(),
        }
    }

    fn decode(text: &[u8]) -> Result<Option<Mark>> {
        if text == b"-" {
            return Ok(None);
        }
        let text = std::str::from_utf8(text)?;
        let mut parts = text.split(',');
        let mut next = || parts.next().context("a short mark");
        Ok(Some(Mark {
            ino: next()?.parse()?,
            len: next()?.parse()?,
            mtime: next()?.parse()?,
            mtime_nsec: next()?.parse()?,
        }))
    }
}

/// The stamps a listing depends on, taken before git lists the tree.
#[derive(Debug)]
pub(super) struct Seal {
    /// Git's environment, hashed.
    context: String,
    /// Ignore-rule, index and configuration files (absolute), present or not.
    guards: Vec<(PathBuf, Option<Mark>)>,
    /// Every directory git walks, relative to the root (`""` is the root).
    dirs: Vec<(Vec<u8>, Mark)>,
}

impl Seal {
    /// Stamps what the listing of the tree at `root` depends on; `None` when the tree is not
    /// one the cache can vouch for (the reason is logged).
    pub(super) fn take(root: &Path, env: &Environment) -> Option<Seal> {
        match Seal::try_take(root, env) {
            Ok(seal) => seal,
            Err(e) => {
                tracing::debug!("listing cache: not sealing {}: {e:#}", root.display());
                None
            }
        }
    }

    fn try_take(root: &Path, env: &Environment) -> Result<Option<Seal>> {
        if !root.join(".git").is_dir() {
            return Ok(None); // a linked worktree or submodule: its index lives elsewhere
        }
        let context = git_context(env);
        let mut guards: Vec<(PathBuf, Option<Mark>)> = guard_paths(root, env)?
            .into_iter()
            .map(|p| {
                let mark = Mark::of(&p);
                (p, mark)
            })
            .collect();
        let (dirs, gitignores) = walk(root)?;
        guards.extend(gitignores.into_iter().map(|p| {
            let mark = Mark::of(&p);
            (p, mark)
        }));
        Ok(Some(Seal {
            context,
            guards,
            dirs,
        }))
    }

    /// Whether a stamp is too recent to vouch for the listing.
    fn racy(&self) -> bool {
        let Ok(now) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) else {
            return true;
        };
        let limit = now.saturating_sub(RACY).as_secs() as i64;
        let marks = self
            .guards
            .iter()
            .filter_map(|(_, m)| *m)
            .chain(self.dirs.iter().map(|(_, m)| *m));
        marks.into_iter().any(|m| m.mtime >= limit)
    }
}

/// Where the listing of the tree at `root` is cached.
fn cache_file(cache_dir: &Path, root: &Path) -> PathBuf {
    let digest = Sha256::digest(root.as_os_str().as_bytes());
    cache_dir.join(format!("{}.listing", hex::encode(&digest[..16])))
}

/// Saves `files` as the listing of the tree at `root`, sealed by `seal`. Best effort: a
/// listing that cannot be vouched for is removed instead, and errors are only logged.
pub(super) fn save(cache_dir: &Path, root: &Path, seal: &Seal, files: &[Vec<u8>]) {
    let path = cache_file(cache_dir, root);
    if seal.racy() {
        tracing::debug!("listing cache: a stamp is too recent; not saving");
        let _ = std::fs::remove_file(&path);
        return;
    }
    let mut out = Vec::with_capacity(64 + files.len() * 32);
    for field in [MAGIC, seal.context.as_bytes(), root.as_os_str().as_bytes()] {
        out.extend_from_slice(field);
        out.push(0);
    }
    for (guard, mark) in &seal.guards {
        let _ = write!(out, "G{}\0", Mark::encode(*mark));
        out.extend_from_slice(guard.as_os_str().as_bytes());
        out.push(0);
    }
    for (dir, mark) in &seal.dirs {
        let _ = write!(out, "D{}\0", Mark::encode(Some(*mark)));
        out.extend_from_slice(dir);
        out.push(0);
    }
    for file in files {
        out.push(b'F');
        out.extend_from_slice(file);
        out.push(0);
    }
    out.extend_from_slice(b"END\0");
    if let Err(e) = paths::write_private_atomic(&path, &out) {
        tracing::debug!("listing cache: {e:#}");
    }
}

/// The cached listing of the tree at `root`, when every stamp it was saved with still holds.
pub(super) fn reuse(cache_dir: &Path, root: &Path, env: &Environment) -> Option<Vec<Vec<u8>>> {
    let bytes = std::fs::read(cache_file(cache_dir, root)).ok()?;
    match check(&bytes, root, env) {
        Ok(files) => Some(files),
        Err(e) => {
            tracing::debug!("listing cache: asking git: {e:#}");
            None
        }
    }
}

/// The files of a cache file, if it is for `root` and all its stamps hold.
fn check(bytes: &[u8], root: &Path, env: &Environment) -> Result<Vec<Vec<u8>>> {
    let mut fields = bytes.split(|b| *b == 0);
    let mut next = || fields.next().context("the cache file ends early");
    if next()? != MAGIC {
        bail!("another format");
    }
    if next()? != git_context(env).as_bytes() {
        bail!("git's environment changed");
    }
    if next()? != root.as_os_str().as_bytes() {
        bail!("another tree");
    }
    let mut files = Vec::new();
    loop {
        let field = next()?;
        match field.first() {
            Some(b'G') => {
                let mark = Mark::decode(&field[1..])?;
                let path = Path::new(OsStr::from_bytes(next()?));
                if Mark::of(path) != mark {
                    bail!("{} changed", path.display());
                }
            }
            Some(b'D') => {
                let mark = Mark::decode(&field[1..])?;
                let dir = next()?;
                if Mark::of(&root.join(OsStr::from_bytes(dir))) != mark {
                    bail!("directory `{}` changed", String::from_utf8_lossy(dir));
                }
            }
            Some(b'F') => files.push(field[1..].to_vec()),
            _ if field == b"END" => return Ok(files),
            _ => bail!("an unknown record"),
        }
    }
}

/// A digest of the environment variables that change what git lists or where it finds its
/// configuration.
fn git_context(env: &Environment) -> String {
    // Sorted by name, as the environment keeps them.
    let vars = env.vars_os().filter(|(k, _)| {
        let k = k.as_bytes();
        k.starts_with(b"GIT_") || k == b"HOME" || k == b"XDG_CONFIG_HOME"
    });
    let mut hasher = Sha256::new();
    for (k, v) in vars {
        hasher.update(k.as_bytes());
        hasher.update(b"=");
        hasher.update(v.as_bytes());
        hasher.update(b"\0");
    }
    hex::encode(&hasher.finalize()[..16])
}

/// The files outside the walk that the listing depends on: the index, `HEAD`, the
/// repository's excludes, `.cbxignore`, every configuration file git reads or would read if it
/// existed, and the global excludes file.
fn guard_paths(root: &Path, env: &Environment) -> Result<Vec<PathBuf>> {
    let git_dir = root.join(".git");
    let mut guards = vec![
        git_dir.join("index"),
        // Conditional configuration (`includeIf "onbranch:…"`) follows the branch.
        git_dir.join("HEAD"),
        git_dir.join("info").join("exclude"),
        git_dir.join("config"),
        root.join(".cbxignore"),
        PathBuf::from("/etc/gitconfig"),
    ];
    // Where this git reads system and global configuration, existing or not (git 2.42 and
    // later say; the system file depends on where git was installed, /usr/local/etc/gitconfig
    // for a git built from source).
    for var in ["GIT_CONFIG_SYSTEM", "GIT_CONFIG_GLOBAL"] {
        if let Ok(paths) = git(root, &["var", var]) {
            guards.extend(
                paths
                    .split(|b| *b == b'\n')
                    .filter(|p| !p.is_empty())
                    .map(|p| PathBuf::from(OsStr::from_bytes(p))),
            );
        }
    }
    let home = env.home();
    let xdg = env
        .var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".config")));
    if let Some(home) = &home {
        guards.push(home.join(".gitconfig"));
    }
    if let Some(xdg) = &xdg {
        guards.push(xdg.join("git").join("config"));
    }
    // Every file git read its configuration from, includes among them.
    let out = git(root, &["config", "--list", "--show-origin", "-z"])?;
    let mut fields = out.split(|b| *b == 0);
    while let Some(origin) = fields.next() {
        let _entry = fields.next();
        if let Some(file) = origin.strip_prefix(b"file:") {
            guards.push(root.join(OsStr::from_bytes(file)));
        } else if !origin.is_empty() {
            bail!("configuration from {}", String::from_utf8_lossy(origin));
        }
    }
    // The global excludes file: as configured, else git's default.
    let named = Command::new("git")
        .args(["config", "--path", "--get", "core.excludesFile"])
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .context("run git config")?;
    let named = named.stdout.trim_ascii_end();
    if !named.is_empty() {
        guards.push(root.join(OsStr::from_bytes(named)));
    } else if let Some(xdg) = &xdg {
        guards.push(xdg.join("git").join("ignore"));
    }
    guards.sort();
    guards.dedup();
    Ok(guards)
}

/// The directories git walks under `root`, with their marks, and the `.gitignore` files in
/// them. Level by level, `git check-ignore` says which of a level's directories are ignored;
/// git does not list anything below an ignored directory, so neither are they walked.
#[allow(clippy::type_complexity)]
fn walk(root: &Path) -> Result<(Vec<(Vec<u8>, Mark)>, Vec<PathBuf>)> {
    let mut dirs = Vec::new();
    let mut gitignores = Vec::new();
    let mut level: Vec<Vec<u8>> = vec![Vec::new()];
    while !level.is_empty() {
        let mut next = Vec::new();
        for rel in level {
            let path = root.join(OsStr::from_bytes(&rel));
            // The mark first: an entry added while the directory is read changes it.
            let mark = Mark::of(&path).with_context(|| format!("{} vanished", path.display()))?;
            dirs.push((rel.clone(), mark));
            for entry in
                std::fs::read_dir(&path).with_context(|| format!("read {}", path.display()))?
            {
                let entry = entry?;
                let name = entry.file_name();
                let kind = entry.file_type()?;
                if name == ".gitignore" {
                    gitignores.push(entry.path());
                }
                if kind.is_dir() && name != ".git" {
                    let mut child = rel.clone();
                    if !child.is_empty() {
                        child.push(b'/');
                    }
                    child.extend_from_slice(name.as_bytes());
                    next.push(child);
                }
            }
        }
        let ignored = ignored_dirs(root, &next)?;
        next.retain(|d| !ignored.contains(d));
        level = next;
    }
    Ok((dirs, gitignores))
}

/// Which of `dirs` (relative to `root`) git ignores.
fn ignored_dirs(root: &Path, dirs: &[Vec<u8>]) -> Result<HashSet<Vec<u8>>> {
    if dirs.is_empty() {
        return Ok(HashSet::new());
    }
    let mut input = Vec::new();
    for d in dirs {
        input.extend_from_slice(d);
        input.push(0);
    }
    let mut child = Command::new("git")
        .args([
            "check-ignore",
            "--stdin",
            "-z",
            "--verbose",
            "--non-matching",
        ])
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("run git check-ignore")?;
    let mut stdin = child.stdin.take().context("git check-ignore's stdin")?;
    let out = std::thread::scope(|s| {
        let writer = s.spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output();
        let _ = writer.join();
        out
    })
    .context("run git check-ignore")?;
    // 0: some are ignored; 1: none are.
    if !matches!(out.status.code(), Some(0 | 1)) {
        bail!(
            "git check-ignore failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    // Four fields per path: source, line, pattern, path. A negated pattern (`!…`) matched
    // means the path is not ignored.
    let fields: Vec<&[u8]> = out.stdout.split(|b| *b == 0).collect();
    let mut ignored = HashSet::new();
    let mut answered = 0;
    for record in fields.chunks_exact(4) {
        let (source, pattern, path) = (record[0], record[2], record[3]);
        answered += 1;
        if !source.is_empty() && !pattern.starts_with(b"!") {
            ignored.insert(path.to_vec());
        }
    }
    if answered != dirs.len() {
        bail!(
            "git check-ignore answered {answered} of {} paths",
            dirs.len()
        );
    }
    Ok(ignored)
}

/// The output of `git <args>` in `root`.
fn git(root: &Path, args: &[&str]) -> Result<Vec<u8>> {
    let out = Command::new("git")
        .args(args)
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run git {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::files::FileList;
    use crate::sync::files::tests::git;

    /// The environment of this test process, as cbx would capture it.
    fn env() -> Environment {
        Environment::capture()
    }

    /// Sets the modification time of everything under `root` (its `.git` included) an hour
    /// back, so that no stamp is too recent to trust.
    fn age(root: &Path) {
        let past = SystemTime::now() - Duration::from_secs(3600);
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                if entry.file_type().unwrap().is_dir() {
                    stack.push(entry.path());
                } else {
                    let f = std::fs::File::options()
                        .write(true)
                        .open(entry.path())
                        .unwrap();
                    f.set_modified(past).unwrap();
                }
            }
            // Last: setting the times of the entries does not touch the directory's.
            std::fs::File::open(&dir)
                .unwrap()
                .set_modified(past)
                .unwrap();
        }
    }

    /// A repository with tracked, untracked, ignored files and a directory holding only
    /// ignored files, all stamped an hour ago.
    fn repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        git(root, &["init", "-q"]);
        for (path, body) in [
            (".gitignore", "target/\n*.log\n"),
            ("src/main.rs", "fn main() {}\n"),
            ("src/deep/lib.rs", "\n"),
            ("notes.txt", "untracked\n"),
            ("logs/run.log", "ignored\n"),
            ("target/debug/out", "ignored\n"),
        ] {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        git(root, &["add", ".gitignore", "src"]);
        age(root);
        dir
    }

    /// Collects with the cache in `cache`, checking the result against git's own listing.
    fn collect(root: &Path, cache: &Path) -> FileList {
        let list = FileList::collect_cached(root, cache, &env()).unwrap();
        let fresh = FileList::collect(root).unwrap();
        assert_eq!(list.files, fresh.files);
        assert_eq!(list.fingerprint, fresh.fingerprint);
        list
    }

    fn names(files: &[Vec<u8>]) -> Vec<String> {
        files
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect()
    }

    #[test]
    fn an_unchanged_tree_reuses_the_listing() {
        let repo = repo();
        let cache = tempfile::tempdir().unwrap();
        let root = repo.path();
        assert!(
            reuse(cache.path(), root, &env()).is_none(),
            "nothing cached yet"
        );
        let list = collect(root, cache.path());
        assert_eq!(
            names(&list.files),
            [".gitignore", "notes.txt", "src/deep/lib.rs", "src/main.rs"]
        );
        assert_eq!(reuse(cache.path(), root, &env()), Some(list.files.clone()));
        // A file's contents are not part of the listing: it holds, the fingerprint moves.
        std::fs::write(root.join("src/main.rs"), "fn main() { work() }\n").unwrap();
        assert_eq!(reuse(cache.path(), root, &env()), Some(list.files.clone()));
        assert_ne!(collect(root, cache.path()).fingerprint, list.fingerprint);
        // Nor is anything inside an ignored directory.
        std::fs::write(root.join("target/debug/new"), "x").unwrap();
        assert_eq!(reuse(cache.path(), root, &env()), Some(list.files));
        let other = tempfile::tempdir().unwrap();
        assert!(
            reuse(cache.path(), other.path(), &env()).is_none(),
            "another tree"
        );
    }

    #[test]
    fn every_change_to_the_listing_is_noticed() {
        type Change = fn(&Path);
        let changes: [(&str, Change); 9] = [
            ("a new untracked file", |r| {
                std::fs::write(r.join("src/deep/new.rs"), "").unwrap()
            }),
            ("a new file in a directory of ignored files", |r| {
                std::fs::write(r.join("logs/README"), "").unwrap()
            }),
            ("a new directory", |r| {
                std::fs::create_dir_all(r.join("src/deep/er")).unwrap();
                std::fs::write(r.join("src/deep/er/x"), "").unwrap();
            }),
            ("a renamed file", |r| {
                std::fs::rename(r.join("notes.txt"), r.join("notes.md")).unwrap()
            }),
            ("a deleted untracked file", |r| {
                std::fs::remove_file(r.join("notes.txt")).unwrap()
            }),
            ("an edited .gitignore", |r| {
                std::fs::write(r.join(".gitignore"), "target/\n").unwrap()
            }),
            ("an edited .git/info/exclude", |r| {
                std::fs::write(r.join(".git/info/exclude"), "notes.txt\n").unwrap()
            }),
            ("a new .cbxignore", |r| {
                std::fs::write(r.join(".cbxignore"), "src/deep/\n").unwrap()
            }),
            ("a change to the index", |r| {
                git(r, &["add", "-f", "logs/run.log"])
            }),
        ];
        for (what, change) in changes {
            let repo = repo();
            let cache = tempfile::tempdir().unwrap();
            let root = repo.path();
            let before = collect(root, cache.path());
            assert!(reuse(cache.path(), root, &env()).is_some(), "{what}: saved");
            change(root);
            assert!(
                reuse(cache.path(), root, &env()).is_none(),
                "{what}: not noticed"
            );
            let after = collect(root, cache.path());
            assert_ne!(after.fingerprint, before.fingerprint, "{what}");
        }
    }

    #[test]
    fn a_branch_switch_is_not_trusted() {
        // Configuration can depend on the branch (`includeIf "onbranch:…"`); the listing is
        // asked of git again, and is the same.
        let repo = repo();
        let cache = tempfile::tempdir().unwrap();
        let root = repo.path();
        let before = collect(root, cache.path());
        git(root, &["checkout", "-q", "-b", "other"]);
        assert!(reuse(cache.path(), root, &env()).is_none());
        assert_eq!(collect(root, cache.path()).files, before.files);
    }

    #[test]
    fn recent_stamps_are_not_trusted() {
        let repo = repo();
        let cache = tempfile::tempdir().unwrap();
        let root = repo.path();
        collect(root, cache.path());
        assert!(reuse(cache.path(), root, &env()).is_some());
        // A directory changed just now: the listing is not saved until it is older.
        std::fs::write(root.join("src/new.rs"), "").unwrap();
        collect(root, cache.path());
        assert!(reuse(cache.path(), root, &env()).is_none());
        assert!(!cache_file(cache.path(), root).exists());
    }

    #[test]
    fn a_damaged_cache_file_is_not_trusted() {
        let repo = repo();
        let cache = tempfile::tempdir().unwrap();
        let root = repo.path();
        let list = collect(root, cache.path());
        let file = cache_file(cache.path(), root);
        let bytes = std::fs::read(&file).unwrap();
        // Cut short (as by a crash while writing): refused, and git is asked again.
        std::fs::write(&file, &bytes[..bytes.len() - 10]).unwrap();
        assert!(reuse(cache.path(), root, &env()).is_none());
        assert_eq!(collect(root, cache.path()).files, list.files);
    }
}
