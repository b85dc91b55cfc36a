//! The sandbox's login environment, read once per connection and reused by every command
//! (as devcontainers' `userEnvProbe` does), so that a warm command does not start a second
//! shell that sources the login profile each time.
//!
//! The login that proves SSH works (`lease::connect`, `cbx doctor --lease`) also runs
//! [`capture`]: it touches a stamp file in the lease's directory on the sandbox, then prints
//! the plain environment and the login shell's (`bash -lc`, else `sh -lc`). [`read`] keeps
//! what the login shell changed — or says why that cannot be reused (a secret-looking name, an
//! exported function, too much, not UTF-8, a profile that did not finish), in which case every
//! command goes through the login shell as before. [`command_line`] puts [`fast_path`], the
//! shell text that uses it, before the login shell of `remote::command_line`: it runs the
//! command only while no profile file is newer than the stamp, and only when the command is
//! found on the cached PATH; anything else falls through to the login shell.
//!
//! Also here: [`LoginEnvironment`], the `[run] login-environment` setting (`config::run`)
//! that turns this off.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::remote::{self, Program, is_env_name, quote};
use crate::terminal::inert;

/// The stamp file's name, in the lease's directory on the sandbox (beside the work directory).
pub const STAMP: &str = ".cbx-login-env";

/// The most variables a cached login environment holds.
const MAX_VARS: usize = 256;
/// The most bytes (names and values) a cached login environment holds.
const MAX_BYTES: usize = 64 * 1024;

/// The marker of the probe's environment section; `bash` or `sh` follows it.
const PLAIN: &str = "\0cbx-env:";
/// Printed by the login shell after its profile, right before its environment.
const LOGIN: &str = "\0cbx-login-env\0";
/// The end of the login shell's environment.
const END: &str = "\0cbx-env-end\0";

/// Variables that differ between any two shells and are never cached.
const IGNORED: &[&str] = &["_", "SHLVL", "PWD", "OLDPWD"];

/// Words in a variable's name that mark its value as a secret (never stored).
const SECRET_WORDS: &[&str] = &[
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "API_KEY",
    "APIKEY",
    "ACCESS_KEY",
    "PRIVATE",
    "CREDENTIAL",
];

/// Variables a shell reads or keeps for itself: setting them from the cache could change how
/// cbx's own shell line runs (or fail, read-only in bash), so a login shell that sets one is
/// not cached.
const SHELL_OWN: &[&str] = &[
    "BASH_ENV",
    "ENV",
    "IFS",
    "SHELLOPTS",
    "BASHOPTS",
    "POSIXLY_CORRECT",
    "UID",
    "EUID",
    "PPID",
    "CDPATH",
];

/// Profile files whose change since the stamp makes the cache stale (`$HOME` is expanded on
/// the sandbox).
const PROFILES: &[&str] = &[
    "/etc/profile",
    "/etc/profile.d",
    "/etc/environment",
    "/etc/bash.bashrc",
    "\"$HOME/.profile\"",
    "\"$HOME/.bash_profile\"",
    "\"$HOME/.bash_login\"",
    "\"$HOME/.bashrc\"",
];

/// How a command gets the sandbox's login environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoginEnvironment {
    /// Read once per connection and reused while no profile file changed (this module).
    #[default]
    Cached,
    /// A login shell for every command.
    Fresh,
}

impl fmt::Display for LoginEnvironment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LoginEnvironment::Cached => "cached",
            LoginEnvironment::Fresh => "fresh",
        })
    }
}

/// What the login shell adds to the plain environment, as read once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginEnv {
    /// The sandbox has bash (the login shell was `bash -l`, not `sh -l`).
    pub bash: bool,
    /// Variables the login shell set or changed, with their values.
    pub set: Vec<(String, String)>,
    /// Variables the login shell removed.
    pub unset: Vec<String>,
    /// When it was read (RFC 3339).
    pub read_at: String,
}

/// What a capture found: a login environment to reuse, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Captured {
    /// Reusable.
    Cached(LoginEnv),
    /// Not reusable, and why (names only, never values).
    NotCached(String),
}

impl Captured {
    /// In words, for `cbx doctor --lease`.
    pub fn describe(&self) -> String {
        match self {
            Captured::Cached(env) => format!(
                "cached ({} variable{} from the login shell, read at {})",
                env.set.len() + env.unset.len(),
                if env.set.len() + env.unset.len() == 1 {
                    ""
                } else {
                    "s"
                },
                env.read_at
            ),
            Captured::NotCached(why) => format!("not cached: {why}"),
        }
    }

    /// The login environment to reuse, if there is one.
    pub fn into_cached(self) -> Option<LoginEnv> {
        match self {
            Captured::Cached(env) => Some(env),
            Captured::NotCached(_) => None,
        }
    }
}

/// The shell text that captures the login environment, to run after the tools probe in the
/// same login. `lease_dir` is the lease's directory relative to the login directory (or
/// absolute). Builtins only before the login shell starts; it always succeeds.
pub fn capture(lease_dir: &str) -> String {
    let dir = quote(lease_dir);
    let stamp = quote(&format!("{}/{STAMP}", lease_dir.trim_end_matches('/')));
    format!(
        "mkdir -p -- {dir} 2>/dev/null; {{ : > {stamp}; }} 2>/dev/null; \
         if command -v bash >/dev/null 2>&1; then s=bash; else s=sh; fi; \
         printf '\\0cbx-env:%s\\0' \"$s\"; env -0 2>/dev/null; \
         \"$s\" -lc 'printf \"\\0cbx-login-env\\0\"; exec env -0' </dev/null 2>/dev/null; \
         printf '\\0cbx-env-end\\0'; true"
    )
}

/// Reads what [`capture`] printed (`printed`: the whole probe output, lossily decoded, so a
/// byte that is not UTF-8 reads as U+FFFD); `None` when the capture did not run at all.
pub fn read(printed: &str) -> Option<Captured> {
    let (_, rest) = printed.split_once(PLAIN)?;
    let (shell, rest) = rest.split_once('\0')?;
    let bash = shell == "bash";
    let Some((plain, login)) = rest.split_once(LOGIN) else {
        return Some(Captured::NotCached(
            "the login shell did not finish (its profile failed or waited for input)".into(),
        ));
    };
    // What the profile printed before the marker follows the last entry's NUL: skipped.
    let plain = entries(plain.rsplit_once('\0').map_or("", |(listed, _)| listed));
    let Some((login, _)) = login.split_once(END) else {
        return Some(Captured::NotCached(
            "the login shell's environment was cut short".into(),
        ));
    };
    if !plain.iter().any(|(k, _)| *k == "PATH") {
        return Some(Captured::NotCached(
            "the sandbox's `env` did not list the environment (it lacks `env -0`)".into(),
        ));
    }
    Some(match diff(&plain, &entries(login)) {
        Ok((set, unset)) => Captured::Cached(LoginEnv {
            bash,
            set,
            unset,
            read_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }),
        Err(why) => Captured::NotCached(why),
    })
}

/// The `NAME=value` entries of `env -0` output.
fn entries(text: &str) -> Vec<(&str, &str)> {
    text.split('\0').filter_map(|e| e.split_once('=')).collect()
}

/// What `login` sets or changes over `plain`, and what it removes; an error says why it may
/// not be cached.
#[allow(clippy::type_complexity)]
fn diff(
    plain: &[(&str, &str)],
    login: &[(&str, &str)],
) -> Result<(Vec<(String, String)>, Vec<String>), String> {
    let ignored = |k: &str| IGNORED.contains(&k);
    // Maps, not nested scans: the sandbox decides how long these lists are.
    let before: HashMap<&str, &str> = plain.iter().copied().collect();
    let after: HashSet<&str> = login.iter().map(|(k, _)| *k).collect();
    let mut order = Vec::new();
    let mut changed: BTreeMap<&str, &str> = BTreeMap::new();
    for (k, v) in login {
        if ignored(k) || before.get(k) == Some(v) {
            continue;
        }
        if changed.insert(k, v).is_none() {
            order.push(*k);
        }
    }
    let set: Vec<(String, String)> = order
        .iter()
        .map(|k| (k.to_string(), changed[k].to_string()))
        .collect();
    let mut seen = HashSet::new();
    let unset: Vec<String> = plain
        .iter()
        .filter(|(k, _)| !ignored(k) && !after.contains(k) && seen.insert(*k))
        .map(|(k, _)| k.to_string())
        .collect();
    for name in set.iter().map(|(k, _)| k).chain(&unset) {
        check_name(name)?;
    }
    if set.iter().any(|(_, v)| v.contains('\u{fffd}')) {
        return Err("a value the login shell sets is not UTF-8".into());
    }
    let count = set.len() + unset.len();
    if count > MAX_VARS {
        return Err(format!(
            "the login shell changes {count} variables (more than {MAX_VARS})"
        ));
    }
    let bytes: usize = set.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
        + unset.iter().map(String::len).sum::<usize>();
    if bytes > MAX_BYTES {
        return Err(format!(
            "the login shell's variables take {bytes} bytes (more than {MAX_BYTES})"
        ));
    }
    Ok((set, unset))
}

/// Refuses a name that is not a plain variable name or looks like a secret's.
fn check_name(name: &str) -> Result<(), String> {
    let shown = || {
        let mut s: String = name.chars().take(64).collect();
        if s.len() < name.len() {
            s.push('…');
        }
        inert(&s).into_owned()
    };
    if !is_env_name(name) || name.contains('\u{fffd}') {
        return Err(format!(
            "the login shell sets `{}`, which is not a plain variable name (an exported \
             function?)",
            shown()
        ));
    }
    if SHELL_OWN.contains(&name) {
        return Err(format!(
            "the login shell sets {name}, which shells read for themselves"
        ));
    }
    let upper = name.to_ascii_uppercase();
    if SECRET_WORDS.iter().any(|w| upper.contains(w)) {
        return Err(format!(
            "the login shell sets {name}, which looks like a secret (cbx stores no secrets)"
        ));
    }
    Ok(())
}

/// A cached login environment to use instead of a login shell, and the names of the
/// forwarded (`--env`) variables, which win over it.
#[derive(Debug, Clone, Copy)]
pub struct Reuse<'a> {
    /// The login environment read at the connection's login.
    pub env: &'a LoginEnv,
    /// The forwarded variables' names.
    pub forwarded: &'a [String],
}

/// [`remote::command_line`] for `program` in `workdir`, with the cached login environment
/// `reuse` (if any) tried before the login shell: see [`fast_path`]. The stamp is in the
/// lease's directory, the work directory's parent. Variables set on this line (`exports`, the
/// forwarded ones) win over cached ones, and over the profile under the login shell (see
/// `remote::command_line`).
pub fn command_line(
    workdir: &str,
    require_workdir: bool,
    exports: &[(String, String)],
    env_file: Option<&str>,
    program: &Program,
    reuse: Option<Reuse<'_>>,
) -> String {
    let fast = reuse.map(|reuse| {
        let keep: Vec<&str> = exports
            .iter()
            .map(|(k, _)| k.as_str())
            .chain(reuse.forwarded.iter().map(String::as_str))
            .collect();
        let stamp = format!("../{STAMP}");
        fast_path(reuse.env, &stamp, &keep, program, &quote(workdir))
    });
    remote::command_line(
        workdir,
        require_workdir,
        exports,
        env_file,
        program,
        fast.as_deref(),
    )
}

/// Shell text that runs `program` with the cached login environment `env` instead of a login
/// shell, and `exec`s it — or does nothing (the line goes on to the login shell) when a
/// profile file is newer than the stamp `stamp` or an argv's command is not on the cached
/// PATH. `keep` are names set on this line that must win over the cached ones; `wd` is the
/// quoted work directory for a shell script. Builtins only.
pub fn fast_path(
    env: &LoginEnv,
    stamp: &str,
    keep: &[&str],
    program: &Program,
    wd: &str,
) -> String {
    let s = quote(stamp);
    let mut fresh = format!("[ -f {s} ]");
    for p in PROFILES {
        fresh.push_str(&format!(" && ! [ {p} -nt {s} ]"));
    }
    let kept = |k: &str| keep.contains(&k);
    let mut apply = String::new();
    let vars: Vec<_> = env.set.iter().filter(|(k, _)| !kept(k)).collect();
    if !vars.is_empty() {
        apply.push_str("export");
        for (k, v) in vars {
            apply.push_str(&format!(" {k}={}", quote(v)));
        }
        apply.push_str("; ");
    }
    let removed: Vec<&str> = env
        .unset
        .iter()
        .map(String::as_str)
        .filter(|k| !kept(k))
        .collect();
    if !removed.is_empty() {
        apply.push_str(&format!("unset {}; ", removed.join(" ")));
    }
    let shell = if env.bash { "bash" } else { "sh" };
    match program {
        Program::Argv(argv) => {
            let path = env
                .set
                .iter()
                .find(|(k, _)| k == "PATH" && !kept(k))
                .map(|(_, v)| quote(v))
                .unwrap_or_else(|| "\"$PATH\"".into());
            let args: Vec<String> = argv.iter().map(|a| quote(a)).collect();
            format!(
                "if {fresh}; then cbx_path=$PATH; PATH={path}; set -- {}; \
                 if command -v -- \"$1\" >/dev/null 2>&1; then unset cbx_path; {apply}exec \"$@\"; fi; \
                 PATH=$cbx_path; unset cbx_path; fi; ",
                args.join(" ")
            )
        }
        Program::Shell(script) => {
            let inner = quote(&format!("cd -- {wd} 2>/dev/null; {script}"));
            format!("if {fresh}; then {apply}exec {shell} -c {inner} cbx; fi; ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printed(plain: &str, noise: &str, login: &str) -> String {
        format!("cbx-tools: rsync\n{PLAIN}bash\0{plain}{noise}{LOGIN}{login}{END}")
    }

    #[test]
    fn the_diff_keeps_what_the_login_shell_changed_and_skips_profile_noise() {
        let out = printed(
            "PATH=/bin\0HOME=/h\0GONE=x\0SHLVL=1\0_=/usr/bin/env\0",
            "Welcome! FOO=fake\n",
            "PATH=/opt/bin:/bin\0HOME=/h\0FOO=bar=baz\0SHLVL=2\0_=/x\0PWD=/h\0",
        );
        let Some(Captured::Cached(env)) = read(&out) else {
            panic!("{:?}", read(&out));
        };
        assert!(env.bash);
        assert_eq!(
            env.set,
            vec![
                ("PATH".into(), "/opt/bin:/bin".into()),
                ("FOO".into(), "bar=baz".into())
            ]
        );
        assert_eq!(env.unset, vec!["GONE".to_string()]);
        assert!(
            Captured::Cached(env)
                .describe()
                .starts_with("cached (3 variables from the login shell, read at ")
        );
    }

    #[test]
    fn what_cannot_be_cached_says_why_by_name_only() {
        let why = |login: &str| match read(&printed("PATH=/bin\0", "", login)) {
            Some(Captured::NotCached(why)) => why,
            other => panic!("{other:?}"),
        };
        let w = why("PATH=/bin\0GITHUB_TOKEN=ghp_value\0");
        assert!(w.contains("GITHUB_TOKEN, which looks like a secret"), "{w}");
        assert!(!w.contains("ghp_value"));
        assert!(why("PATH=/bin\0db_password=v\0").contains("db_password"));
        let w = why("PATH=/bin\0BASH_ENV=/etc/x\0");
        assert!(
            w.contains("sets BASH_ENV, which shells read for themselves"),
            "{w}"
        );
        let w = why("PATH=/bin\0BASH_FUNC_f%%=() {  echo\n}\0");
        assert!(
            w.contains("`BASH_FUNC_f%%`, which is not a plain variable name"),
            "{w}"
        );
        assert!(why("PATH=/bin\0X=a\u{fffd}b\0").contains("not UTF-8"));
        let many: String = (0..=MAX_VARS).map(|i| format!("V{i}=1\0")).collect();
        assert!(why(&format!("PATH=/bin\0{many}")).contains("257 variables (more than 256)"));
        // A hostile sandbox's 200,000 variables are refused without a quadratic scan.
        let huge: String = (0..200_000).map(|i| format!("H{i}=1\0")).collect();
        let started = std::time::Instant::now();
        let out = printed(
            &format!("PATH=/bin\0{huge}"),
            "",
            &format!("PATH=/x\0{huge}"),
        );
        assert!(matches!(read(&out), Some(Captured::Cached(_))));
        let out = printed("PATH=/bin\0", "", &format!("PATH=/bin\0{huge}"));
        assert!(matches!(read(&out), Some(Captured::NotCached(_))));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let big = format!("PATH=/bin\0BIG={}\0", "x".repeat(MAX_BYTES));
        assert!(why(&big).contains("more than 65536"));
        let w = why("PATH=/bin\0\x1b[2J=1\0");
        assert!(w.contains("`\\x1b[2J`") && !w.contains('\u{1b}'), "{w}");
    }

    #[test]
    fn a_capture_that_went_wrong_is_not_cached() {
        assert_eq!(read("cbx-tools: rsync\n"), None);
        let not = |out: &str| matches!(read(out), Some(Captured::NotCached(_)));
        // The profile exited (or failed) before printing the marker.
        assert!(not(&format!("{PLAIN}sh\0PATH=/bin\0{END}")));
        // Cut short.
        assert!(not(&format!("{PLAIN}sh\0PATH=/bin\0{LOGIN}PATH=/bin")));
        // `env -0` unsupported: nothing listed.
        assert!(not(&format!("{PLAIN}sh\0{LOGIN}{END}")));
        let Some(Captured::Cached(env)) =
            read(&format!("{PLAIN}sh\0PATH=/b\0{LOGIN}PATH=/b\0{END}"))
        else {
            panic!()
        };
        assert!(!env.bash && env.set.is_empty() && env.unset.is_empty());
    }

    /// The capture in a real shell with a fake HOME whose profile prints noise and sets a
    /// variable: the stamp is made and the variable read.
    #[test]
    fn the_capture_runs_in_a_real_shell() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(
            home.path().join(".profile"),
            "echo profile noise\nexport CBX_T_FROM_PROFILE='a b'\n",
        )
        .unwrap();
        std::fs::write(home.path().join(".bash_profile"), ". ~/.profile\n").unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(capture("cbx/cbx_0123"))
            .current_dir(home.path())
            .env("HOME", home.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(home.path().join("cbx/cbx_0123").join(STAMP).is_file());
        let Some(Captured::Cached(env)) = read(&String::from_utf8_lossy(&out.stdout)) else {
            panic!("{}", String::from_utf8_lossy(&out.stdout));
        };
        assert!(
            env.set
                .contains(&("CBX_T_FROM_PROFILE".into(), "a b".into())),
            "{env:?}"
        );
    }

    /// Without bash, the capture reads `sh -l`'s environment and records that; the line then
    /// runs a shell script with `sh -c`.
    #[test]
    fn without_bash_the_capture_and_the_line_use_sh() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for tool in ["sh", "env", "mkdir", "cat"] {
            let found = ["/usr/bin", "/bin"]
                .iter()
                .map(|d| std::path::Path::new(d).join(tool))
                .find(|p| p.exists())
                .unwrap();
            std::os::unix::fs::symlink(found, bin.join(tool)).unwrap();
        }
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join("cbx/cbx_0123/repo")).unwrap();
        std::fs::write(home.join(".profile"), "export FROM_PROFILE=sh-login\n").unwrap();
        let run = |line: &str| {
            std::process::Command::new(bin.join("sh"))
                .arg("-c")
                .arg(line)
                .current_dir(&home)
                .env_clear()
                .env("PATH", &bin)
                .env("HOME", &home)
                .output()
                .unwrap()
        };
        let out = run(&capture("cbx/cbx_0123"));
        let Some(Captured::Cached(env)) = read(&String::from_utf8_lossy(&out.stdout)) else {
            panic!("{}", String::from_utf8_lossy(&out.stdout));
        };
        assert!(!env.bash, "{env:?}");
        assert!(
            env.set
                .contains(&("FROM_PROFILE".into(), "sh-login".into()))
        );
        let line = command_line(
            "cbx/cbx_0123/repo",
            true,
            &[],
            None,
            &Program::Shell("echo \"$FROM_PROFILE\"; exit 5".into()),
            Some(Reuse {
                env: &env,
                forwarded: &[],
            }),
        );
        assert!(line.contains("exec sh -c "), "{line}");
        // The profile is gone: the value can only come from the cache.
        std::fs::remove_file(home.join(".profile")).unwrap();
        let out = run(&line);
        assert_eq!(out.status.code(), Some(5));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "sh-login\n");
    }

    /// A fake sandbox: a HOME whose `.profile` counts its runs and adds a tool directory, a
    /// lease directory with the stamp and a work directory, and the login environment read.
    struct Fake {
        dir: tempfile::TempDir,
    }

    impl Fake {
        fn new() -> Fake {
            let fake = Fake {
                dir: tempfile::tempdir().unwrap(),
            };
            let home = fake.home();
            let tools = fake.dir.path().join("tools");
            std::fs::create_dir_all(&tools).unwrap();
            std::fs::create_dir_all(fake.workdir()).unwrap();
            let tool = tools.join("mytool");
            std::fs::write(
                &tool,
                "#!/bin/sh\necho \"tool $FROM_PROFILE\"; printf '%s|' \"$@\"\n",
            )
            .unwrap();
            std::process::Command::new("chmod")
                .arg("755")
                .arg(&tool)
                .status()
                .unwrap();
            std::fs::create_dir_all(&home).unwrap();
            fake.set_profile("profile");
            // The profile as it was when the environment was read: older than the stamp.
            fake.age(&home.join(".profile"), 100);
            std::fs::write(fake.stamp(), "").unwrap();
            fake
        }

        fn home(&self) -> std::path::PathBuf {
            self.dir.path().join("home")
        }

        fn workdir(&self) -> std::path::PathBuf {
            self.dir.path().join("root/cbx_0123/repo")
        }

        fn stamp(&self) -> std::path::PathBuf {
            self.dir.path().join("root/cbx_0123").join(STAMP)
        }

        fn set_profile(&self, value: &str) {
            let tools = self.dir.path().join("tools");
            std::fs::write(
                self.home().join(".profile"),
                format!(
                    "echo sourced >> \"$HOME/count\"\nexport FROM_PROFILE={value}\n\
                     PATH=\"{}:$PATH\"\n",
                    tools.display()
                ),
            )
            .unwrap();
        }

        fn age(&self, path: &std::path::Path, secs: i64) {
            let when = chrono::Utc::now().timestamp() - secs;
            let ok = std::process::Command::new("touch")
                .arg("-d")
                .arg(format!("@{when}"))
                .arg(path)
                .status()
                .unwrap();
            assert!(ok.success());
        }

        fn sourced(&self) -> usize {
            std::fs::read_to_string(self.home().join("count"))
                .map(|t| t.lines().count())
                .unwrap_or(0)
        }

        fn env(&self) -> LoginEnv {
            let path = std::env::var("PATH").unwrap();
            LoginEnv {
                bash: true,
                set: vec![
                    ("FROM_PROFILE".into(), "cached".into()),
                    ("FWD".into(), "cached".into()),
                    ("CBX_SLUG".into(), "cached".into()),
                    (
                        "PATH".into(),
                        format!("{}:{path}", self.dir.path().join("tools").display()),
                    ),
                ],
                unset: vec!["GONE".into()],
                read_at: "T".into(),
            }
        }

        /// Runs `program` through the line with the cached environment under `shell`.
        fn run(&self, shell: &str, program: &Program, env_file: Option<&str>) -> Output {
            let env = self.env();
            let forwarded = ["FWD".to_string()];
            let line = command_line(
                self.workdir().to_str().unwrap(),
                true,
                &[("CBX_SLUG".into(), "amber-otter".into())],
                env_file,
                program,
                Some(Reuse {
                    env: &env,
                    forwarded: &forwarded,
                }),
            );
            let out = std::process::Command::new(shell)
                .arg("-c")
                .arg(&line)
                .current_dir(self.dir.path())
                .env("HOME", self.home())
                .env("GONE", "still here")
                .output()
                .unwrap();
            Output {
                code: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            }
        }
    }

    struct Output {
        code: Option<i32>,
        stdout: String,
    }

    fn argv(words: &[&str]) -> Program {
        Program::Argv(words.iter().map(|w| w.to_string()).collect())
    }

    /// While no profile is newer than the stamp, the cached environment is used and the
    /// profile is not sourced; the argument words arrive exactly; cbx's own and forwarded
    /// variables win over cached ones; removed variables are removed.
    #[test]
    fn the_line_uses_the_cache_while_it_is_fresh() {
        for shell in ["sh", "bash"] {
            let fake = Fake::new();
            let words = ["mytool", "a b", "it's", "$HOME", "x\ny", "`id`", "\"q\""];
            let out = fake.run(shell, &argv(&words), None);
            assert_eq!(out.code, Some(0), "{shell}");
            assert_eq!(
                out.stdout,
                format!("tool cached\n{}|", words[1..].join("|")),
                "{shell}"
            );
            assert_eq!(fake.sourced(), 0, "{shell}");
            let env_file = fake.dir.path().join("fwd");
            std::fs::write(&env_file, "FWD=forwarded\n").unwrap();
            let out = fake.run(
                shell,
                &argv(&[
                    "sh",
                    "-c",
                    "echo \"$FWD $CBX_SLUG ${GONE-unset} $FROM_PROFILE\"",
                ]),
                Some(env_file.to_str().unwrap()),
            );
            assert_eq!(
                out.stdout, "forwarded amber-otter unset cached\n",
                "{shell}"
            );
            let out = fake.run(
                shell,
                &Program::Shell("mytool; echo \"$FROM_PROFILE\"; pwd; exit 3".into()),
                None,
            );
            assert_eq!(out.code, Some(3), "{shell}");
            assert!(
                out.stdout.starts_with("tool cached\n|cached\n"),
                "{}",
                out.stdout
            );
            assert!(out.stdout.trim_end().ends_with("/repo"), "{}", out.stdout);
            assert_eq!(fake.sourced(), 0, "{shell}");
        }
    }

    /// Forwarded (`--env`) and cbx's own variables win over a profile that exports the same
    /// names, on the cached path and on the login shell's alike; the env file is read and
    /// gone either way, and cbx's copies of the variables are not in the program's
    /// environment.
    #[test]
    fn forwarded_and_cbx_variables_win_on_both_paths() {
        for shell in ["sh", "bash"] {
            let fake = Fake::new();
            let profile = fake.home().join(".profile");
            std::fs::write(
                &profile,
                "echo sourced >> \"$HOME/count\"\nexport FWD=profile CBX_SLUG=profile\n",
            )
            .unwrap();
            fake.age(&profile, 100);
            let env_file = fake.dir.path().join("fwd");
            let show = "echo \"$FWD $CBX_SLUG\"; env | grep -c '^cbx_' || true";
            let vars = [("FWD".to_string(), "it's $forwarded".to_string())];
            for fresh in [true, false] {
                if !fresh {
                    // Edited since the stamp: the login shell runs the profile.
                    fake.age(&fake.stamp(), 50);
                    fake.age(&profile, 0);
                }
                for program in [argv(&["sh", "-c", show]), Program::Shell(show.into())] {
                    std::fs::write(&env_file, remote::env_file(&vars)).unwrap();
                    let before = fake.sourced();
                    let out = fake.run(shell, &program, Some(env_file.to_str().unwrap()));
                    let case = format!("{shell}, fresh stamp {fresh}, {program:?}");
                    assert_eq!(out.code, Some(0), "{case}");
                    assert_eq!(out.stdout, "it's $forwarded amber-otter\n0\n", "{case}");
                    assert!(!env_file.exists(), "{case}");
                    let login = usize::from(!fresh);
                    assert_eq!(fake.sourced(), before + login, "{case}");
                }
            }
        }
    }

    /// A profile newer than the stamp, or no stamp, means the login shell: sourced once, its
    /// new value seen, the command run once.
    #[test]
    fn a_stale_or_missing_stamp_falls_through_to_the_login_shell() {
        for shell in ["sh", "bash"] {
            let fake = Fake::new();
            fake.age(&fake.stamp(), 50);
            fake.set_profile("edited");
            let script = "echo ran >> \"$HOME/ran\"; echo \"$FROM_PROFILE\"";
            let out = fake.run(shell, &argv(&["sh", "-c", script]), None);
            assert_eq!(out.stdout, "edited\n", "{shell}");
            assert_eq!(fake.sourced(), 1, "{shell}");
            std::fs::remove_file(fake.stamp()).unwrap();
            fake.age(&fake.home().join(".profile"), 100);
            let out = fake.run(shell, &Program::Shell(script.into()), None);
            assert_eq!(out.stdout, "edited\n", "{shell}");
            assert_eq!(fake.sourced(), 2, "{shell}");
            let ran = std::fs::read_to_string(fake.home().join("ran")).unwrap();
            assert_eq!(ran.lines().count(), 2, "{shell}");
        }
    }

    /// A command not on the cached PATH (installed since, on a PATH only the new profile has)
    /// is found by the login shell, and runs once.
    #[test]
    fn a_command_missing_from_the_cached_path_falls_through_once() {
        for shell in ["sh", "bash"] {
            let fake = Fake::new();
            let newer = fake.dir.path().join("newer");
            std::fs::create_dir_all(&newer).unwrap();
            let tool = newer.join("newtool");
            std::fs::write(&tool, "#!/bin/sh\necho once >> \"$HOME/ran\"; exit 4\n").unwrap();
            std::process::Command::new("chmod")
                .arg("755")
                .arg(&tool)
                .status()
                .unwrap();
            std::fs::write(
                fake.home().join(".profile"),
                format!(
                    "echo sourced >> \"$HOME/count\"\nPATH=\"{}:$PATH\"\n",
                    newer.display()
                ),
            )
            .unwrap();
            fake.age(&fake.home().join(".profile"), 100);
            let out = fake.run(shell, &argv(&["newtool"]), None);
            assert_eq!(out.code, Some(4), "{shell}");
            assert_eq!(fake.sourced(), 1, "{shell}");
            let ran = std::fs::read_to_string(fake.home().join("ran")).unwrap();
            assert_eq!(ran, "once\n", "{shell}");
        }
    }
}
