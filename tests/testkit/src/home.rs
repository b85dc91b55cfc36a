//! Running the real `cbx` binary in an isolated home, and checking what it leaves behind.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A throwaway home for one test: its own HOME, XDG config/state dirs and working directory,
/// sharing one compiled-component cache between tests.
pub struct CbxHome {
    dir: tempfile::TempDir,
    bin: PathBuf,
    env: Vec<(String, String)>,
    /// The working directory commands run in (`<home>/work`).
    pub cwd: PathBuf,
}

/// What one `cbx` run produced.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Panics with the whole output unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Output {
        assert_eq!(self.code, code, "unexpected exit code\n{self}");
        self
    }

    /// Panics unless the run succeeded.
    #[track_caller]
    pub fn ok(&self) -> &Output {
        self.expect_code(0)
    }

    /// stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{self}"))
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl CbxHome {
    /// A new home running the cbx binary at `bin`.
    pub fn new(bin: impl Into<PathBuf>) -> CbxHome {
        let dir = tempfile::Builder::new()
            .prefix("cbx-test-")
            .tempdir()
            .expect("temp dir");
        let cwd = dir.path().join("work");
        std::fs::create_dir_all(&cwd).expect("work dir");
        CbxHome {
            dir,
            bin: bin.into(),
            env: Vec::new(),
            cwd,
        }
    }

    /// The home directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The user config file.
    pub fn config_file(&self) -> PathBuf {
        self.path().join("config/cbx/config.toml")
    }

    /// cbx's state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.path().join("state/cbx")
    }

    /// cbx's cache directory, shared by every home of a test run (see [`shared_cache_dir`]).
    pub fn cache_dir(&self) -> PathBuf {
        shared_cache_dir().join("cbx")
    }

    /// Sets an environment variable for every command.
    pub fn env(&mut self, key: &str, value: &str) -> &mut CbxHome {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Removes an environment variable set with [`CbxHome::env`].
    pub fn unset(&mut self, key: &str) -> &mut CbxHome {
        self.env.retain(|(k, _)| k != key);
        self
    }

    /// Writes `text` to `rel` in the working directory, creating its parent directories.
    pub fn write_file(&self, rel: &str, text: &str) {
        let path = self.cwd.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("create directories");
        std::fs::write(path, text).expect("write file");
    }

    /// Runs `git <args>` in the working directory; panics with git's stderr if it fails.
    pub fn git(&self, args: &[&str]) {
        let out = Command::new("git")
            .args(args)
            .current_dir(&self.cwd)
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Writes the user config file.
    pub fn write_config(&self, toml: &str) {
        let path = self.config_file();
        std::fs::create_dir_all(path.parent().expect("parent")).expect("config dir");
        std::fs::write(path, toml).expect("write config");
    }

    /// A `cbx` command with a clean environment: PATH, HOME, XDG dirs and what was set.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .current_dir(&self.cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path())
            .env("XDG_CONFIG_HOME", self.path().join("config"))
            .env("XDG_STATE_HOME", self.path().join("state"))
            .env("XDG_CACHE_HOME", shared_cache_dir())
            .env("NO_COLOR", "1");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `cbx args…` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_env(args, &[])
    }

    /// Runs `cbx args…` to completion with `extra` variables set for this command only.
    pub fn run_with_env(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(args);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run cbx");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Every file under this home whose contents include `needle`, skipping the directories in
    /// `except` (relative to the home).
    pub fn files_containing(&self, needle: &str, except: &[&str]) -> Vec<PathBuf> {
        let skip: Vec<PathBuf> = except.iter().map(|e| self.path().join(e)).collect();
        let mut found = Vec::new();
        walk(self.path(), &skip, needle.as_bytes(), &mut found);
        found
    }

    /// Panics if `secret` appears in any of `outputs` or in any file of this home (except in
    /// the directories listed in `except`).
    #[track_caller]
    pub fn assert_secret_absent(&self, secret: &str, outputs: &[&Output], except: &[&str]) {
        assert!(
            secret.len() >= 4,
            "a test secret must be at least 4 characters"
        );
        for out in outputs {
            assert!(
                !out.stdout.contains(secret),
                "secret found in stdout\n{out}"
            );
            assert!(
                !out.stderr.contains(secret),
                "secret found in stderr\n{out}"
            );
        }
        let files = self.files_containing(secret, except);
        assert!(files.is_empty(), "secret found in files: {files:?}");
    }
}

fn walk(dir: &Path, skip: &[PathBuf], needle: &[u8], found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if skip.iter().any(|s| path.starts_with(s)) {
            continue;
        }
        let Ok(meta) = entry.file_type() else {
            continue;
        };
        if meta.is_dir() {
            walk(&path, skip, needle, found);
        } else if meta.is_file()
            && let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            found.push(path);
        }
    }
}

/// One compiled-component cache shared by all tests of a run (cbx writes it atomically).
pub fn shared_cache_dir() -> PathBuf {
    std::env::temp_dir().join(format!("cbx-test-cache-{}", whoami()))
}

fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| "user".into())
}
