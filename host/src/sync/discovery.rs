//! Which repository a directory is in: the one git-faithful answer to "what would
//! `git rev-parse --show-toplevel` say", used by every command (`--no-sync` included), the
//! repository config lookup and the sync.
//!
//! The common cases are answered without starting git, which costs more than the rest of a
//! skipped sync (docs/performance.md); anything unusual is left to git itself.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::environment::Environment;
use crate::error::{ErrorKind, Failure};

/// Variables that change how git finds a repository; with any of them set, only git answers.
const GIT_DISCOVERY_VARIABLES: [&str; 4] = [
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
];

/// What a look at the file system says, before asking git.
#[derive(Debug, PartialEq, Eq)]
enum Look {
    /// The work tree's root.
    WorkTree(PathBuf),
    /// No `.git` anywhere above: git would find no repository either.
    Outside,
    /// Only git can tell.
    AskGit,
}

/// The work tree containing `dir` (symlinks resolved), `None` when `dir` is in no repository.
/// Fails only when git had to be asked and could not be run.
pub fn find_repo_root(dir: &Path, env: &Environment) -> Result<Option<PathBuf>> {
    match look(dir, env) {
        Look::WorkTree(root) => Ok(Some(root)),
        Look::Outside => Ok(None),
        Look::AskGit => ask_git(dir),
    }
}

/// The work tree containing `dir`; a clear error (exit 6) when there is none.
pub fn repo_root(dir: &Path, env: &Environment) -> Result<PathBuf> {
    find_repo_root(dir, env)?.ok_or_else(|| {
        Failure::new(
            ErrorKind::Sync,
            format!(
                "{} is not inside a git repository; cbx syncs the files git knows about",
                dir.display()
            ),
        )
        .hint("run `git init` here, or pass --no-sync to run without syncing")
        .into()
    })
}

/// `git rev-parse --show-toplevel` in `dir`: the root, or `None` when git says there is none.
fn ask_git(dir: &Path) -> Result<Option<PathBuf>> {
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
        return Ok(None);
    }
    Ok(Some(PathBuf::from(OsStr::from_bytes(
        out.stdout.trim_ascii_end(),
    ))))
}

/// The work tree containing `dir`, found as git finds it in the common case — the nearest
/// directory (symlinks resolved) holding a `.git` directory with a `HEAD`, or a `.git` file
/// pointing at one — or the certainty that there is none.
fn look(dir: &Path, env: &Environment) -> Look {
    if GIT_DISCOVERY_VARIABLES.iter().any(|v| env.is_set(v)) {
        return Look::AskGit;
    }
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return Look::AskGit;
    };
    // Inside a repository's own .git directory there is no work tree.
    if dir.components().any(|c| c.as_os_str() == ".git") {
        return Look::AskGit;
    }
    for candidate in dir.ancestors() {
        let dot_git = candidate.join(".git");
        let meta = match std::fs::symlink_metadata(&dot_git) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(_) => return Look::AskGit,
        };
        let is_repo = if meta.is_dir() {
            dot_git.join("HEAD").is_file()
        } else {
            // A linked worktree or a submodule: `gitdir: <path>`.
            meta.is_file() && std::fs::read(&dot_git).is_ok_and(|b| b.starts_with(b"gitdir: "))
        };
        return if is_repo {
            Look::WorkTree(candidate.to_path_buf())
        } else {
            Look::AskGit
        };
    }
    Look::Outside
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::files::tests::git;

    #[test]
    fn the_work_tree_is_found_as_git_finds_it() {
        let env = Environment::default();
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
            assert_eq!(look(&start, &env), Look::WorkTree(git_says.clone()));
            assert_eq!(repo_root(&start, &env).unwrap(), git_says);
        }
        // Inside .git there is no work tree: git answers (with an error).
        assert_eq!(look(&root.join(".git"), &env), Look::AskGit);
        assert!(repo_root(&root.join(".git"), &env).is_err());
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
        assert_eq!(look(&linked, &env), Look::WorkTree(linked.clone()));
        // With git's discovery variables set, git decides.
        let env = Environment::from_pairs([("GIT_DIR", root.join(".git"))]);
        assert_eq!(look(&root.join("a"), &env), Look::AskGit);
    }

    #[test]
    fn not_a_repository_is_a_sync_error() {
        let dir = tempfile::tempdir().unwrap();
        let env = Environment::default();
        assert_eq!(find_repo_root(dir.path(), &env).unwrap(), None);
        let err = repo_root(dir.path(), &env).unwrap_err();
        assert_eq!(crate::error::exit_code(&err), 6);
        assert!(
            err.to_string().contains("is not inside a git repository"),
            "{err}"
        );
    }
}
