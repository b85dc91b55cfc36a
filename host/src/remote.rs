//! Building the command lines that run on a sandbox, quoted so that what runs remotely is
//! exactly what the user asked for, every path after `--` so none is read as an option, and
//! the work root a provider reports checked before any command names it.

use anyhow::Result;

use crate::error::{ErrorKind, Failure};
use crate::terminal::inert;

/// Fails with a provider fault (exit 8) unless `root`, the work root provider `provider`
/// reported (or its sandbox's labels record), is safe to name in a remote command: it may not
/// begin with `-` (an option to `mkdir`, `cd`, `rsync`) or hold control characters.
pub fn check_work_root(provider: &str, root: &str) -> Result<()> {
    let why = if root.starts_with('-') {
        "begins with `-`, so a remote command could read it as an option"
    } else if root.chars().any(char::is_control) {
        "contains control characters"
    } else {
        return Ok(());
    };
    let mut shown: String = root.chars().take(200).collect();
    if shown.len() < root.len() {
        shown.push('…');
    }
    Err(Failure::new(
        ErrorKind::Provider,
        format!(
            "provider {provider} reported the work root `{}`, which {why}",
            inert(&shown)
        ),
    )
    .hint("this is a defect in the provider (or its sandbox's labels); cbx refused to use it")
    .into())
}

/// Quotes `s` for a POSIX shell: wrapped in single quotes, embedded quotes escaped.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// What to run on the sandbox.
#[derive(Debug, Clone)]
pub enum Program {
    /// An argv, run exactly as given (no shell interpretation of its words).
    Argv(Vec<String>),
    /// One shell script string, interpreted by the remote shell.
    Shell(String),
}

/// The remote command line that runs `program` in `workdir`, with `exports` (name, value)
/// set and, if given, variables read from (and then deleted with) `env_file`. It runs under a
/// login shell (bash when present) so the sandbox's usual PATH applies, and `exec`s the
/// program so its exit status is the command's. `before_login` is shell text put right before
/// the login shell, after the prelude (the variables and the work directory): it may `exec`
/// the program itself (`login_env`'s cached login environment), else the line goes on. With
/// `require_workdir`, a work directory that is not there yet (a run without a sync) is
/// created, and one that cannot be is an error (exit 1) before anything runs.
///
/// The exported and forwarded variables win over the login profile: the login shell's
/// script sets them again after the profile ran (see [`keep_forwarded`]).
pub fn command_line(
    workdir: &str,
    require_workdir: bool,
    exports: &[(String, String)],
    env_file: Option<&str>,
    program: &Program,
    before_login: Option<&str>,
) -> String {
    let wd = quote(workdir);
    let mut line = prelude(workdir, require_workdir, exports, env_file);
    if let Some(text) = before_login {
        line.push_str(text);
    }
    // After `before_login`, which may run the program: the copies are for the login shell.
    let mut again = String::new();
    if env_file.is_some() {
        line.push_str(KEEP_FORWARDED);
        again.push_str(RESTORE_FORWARDED);
    }
    again.push_str(&export_text(exports));
    let (inner, args) = match program {
        Program::Argv(argv) => (
            format!("{again}cd -- {wd} 2>/dev/null; exec \"$@\""),
            argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "),
        ),
        Program::Shell(script) => (
            format!("{again}cd -- {wd} 2>/dev/null; {script}"),
            String::new(),
        ),
    };
    let inner = quote(&inner);
    let sep = if args.is_empty() { "" } else { " " };
    format!(
        "{line}if command -v bash >/dev/null 2>&1; then exec bash -lc {inner} cbx{sep}{args}; else exec sh -lc {inner} cbx{sep}{args}; fi"
    )
}

/// The start of the line: the env file read and deleted, the work directory entered (or
/// created), the variables exported.
fn prelude(
    workdir: &str,
    require_workdir: bool,
    exports: &[(String, String)],
    env_file: Option<&str>,
) -> String {
    let wd = quote(workdir);
    let mut prelude = String::new();
    if let Some(file) = env_file {
        // Relative to the login directory, so it is read before changing directory.
        let f = quote(file);
        prelude.push_str(&format!("set -a; . {f}; set +a; rm -f -- {f}; "));
    }
    if require_workdir {
        prelude.push_str(&format!(
            "cd -- {wd} 2>/dev/null || {{ mkdir -p -- {wd} && cd -- {wd}; }} 2>/dev/null || {{ echo \"cbx: the work directory {} does not exist on the sandbox and could not be created\" >&2; exit 1; }}; ",
            workdir.replace(['"', '\\', '$', '`'], "")
        ));
    } else {
        prelude.push_str(&format!("cd -- {wd} 2>/dev/null; "));
    }
    prelude.push_str(&export_text(exports));
    prelude
}

/// `export NAME=value …; ` for `exports` (nothing when there are none).
fn export_text(exports: &[(String, String)]) -> String {
    if exports.is_empty() {
        return String::new();
    }
    let mut text = String::from("export");
    for (k, v) in exports {
        text.push_str(&format!(" {k}={}", quote(v)));
    }
    text.push_str("; ");
    text
}

/// The outer shell's step, right before the login shell, that keeps the forwarded variables
/// from the profile: it runs the statement the env file left in `cbx_forward` (see
/// [`keep_forwarded`]). A statement, not a loop over names, so that it needs no word
/// splitting (zsh, a user's login shell, does none).
const KEEP_FORWARDED: &str = "eval \"${cbx_forward-}\"; unset cbx_forward; ";

/// The login shell's step, after its profile, that sets each forwarded variable `N` again
/// from its copy `cbx_keep_N`, the names listed in `cbx_keep`, and removes the copies.
const RESTORE_FORWARDED: &str = "for cbx_n in ${cbx_keep-}; do eval \"export $cbx_n=\\\"\\$cbx_keep_$cbx_n\\\"; unset cbx_keep_$cbx_n\"; done; unset cbx_keep cbx_n; ";

/// The statement, kept in the env file's unexported `cbx_forward`, that exports a copy
/// `cbx_keep_N` of each forwarded variable `N` and their names in `cbx_keep`, for the login
/// shell to set them again after its profile ([`RESTORE_FORWARDED`]). Names only: the values
/// are read from the variables when it runs.
fn keep_forwarded(names: &[&str]) -> String {
    let mut text = String::from("export");
    for n in names {
        text.push_str(&format!(" cbx_keep_{n}=\"${n}\""));
    }
    text.push_str(&format!(" cbx_keep={}", quote(&names.join(" "))));
    text
}

/// The content of an env file setting each (name, value), read under `set -a` (exported);
/// then, unexported, the statement that keeps them from the login profile.
pub fn env_file(vars: &[(String, String)]) -> String {
    let mut text: String = vars
        .iter()
        .map(|(k, v)| format!("{k}={}\n", quote(v)))
        .collect();
    let names: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
    text.push_str(&format!(
        "set +a\ncbx_forward={}\n",
        quote(&keep_forwarded(&names))
    ));
    text
}

/// How the names of the shell variables cbx's remote command lines use for themselves begin
/// (`cbx_keep_<NAME>`, `cbx_forward`, `cbx_path`, …); `--env` does not forward such a name.
pub const OWN_PREFIX: &str = "cbx_";

/// Whether `name` is a valid environment variable name.
pub fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn quoting_survives_a_real_shell() {
        let words = [
            "plain",
            "two words",
            "it's",
            "$HOME",
            "`id`",
            "a\"b",
            "",
            "*",
            "-n",
            "x\ny",
            "\\",
        ];
        let script = words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s\\0' {script}"))
            .output()
            .unwrap();
        let got: Vec<String> = out
            .stdout
            .split(|b| *b == 0)
            .filter(|_| true)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        assert_eq!(&got[..words.len()], &words.map(String::from));
    }

    #[test]
    fn argv_runs_exactly_through_the_login_shell_wrapper() {
        let dir = tempfile::tempdir().unwrap();
        let wd = dir.path().to_str().unwrap();
        let argv = vec![
            "printf".to_string(),
            "%s|".into(),
            "a b".into(),
            "it's".into(),
            "$X".into(),
        ];
        let line = command_line(
            wd,
            true,
            &[("CBX_SLUG".into(), "amber-otter".into())],
            None,
            &Program::Argv(argv),
            None,
        );
        let out = Command::new("sh")
            .arg("-c")
            .arg(&line)
            .env("X", "no")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b|it's|$X|");
        let line = command_line(
            wd,
            true,
            &[("CBX_SLUG".into(), "amber-otter".into())],
            None,
            &Program::Shell("echo $CBX_SLUG; pwd; exit 3".into()),
            None,
        );
        let out = Command::new("sh").arg("-c").arg(&line).output().unwrap();
        assert_eq!(out.status.code(), Some(3));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("amber-otter\n"), "{text}");
        assert!(
            text.trim_end()
                .ends_with(dir.path().file_name().unwrap().to_str().unwrap()),
            "{text}"
        );
    }

    #[test]
    fn env_file_is_sourced_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let env_path = dir.path().join("env");
        std::fs::write(&env_path, env_file(&[("SECRET_X".into(), "v a'l".into())])).unwrap();
        let line = command_line(
            dir.path().to_str().unwrap(),
            true,
            &[],
            Some(env_path.to_str().unwrap()),
            &Program::Argv(vec!["sh".into(), "-c".into(), "echo \"$SECRET_X\"".into()]),
            None,
        );
        let out = Command::new("sh").arg("-c").arg(&line).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "v a'l\n");
        assert!(!env_path.exists());
    }

    /// A fake sandbox HOME whose `.profile` (read by `bash -l` and `sh -l`) exports the same
    /// names cbx sets and forwards, and an env file forwarding `FOO` (a value a shell could
    /// misread) and `BAR`.
    fn profile_home() -> (tempfile::TempDir, std::path::PathBuf) {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(
            home.path().join(".profile"),
            "export FOO=profile BAR=profile CBX_SLUG=profile CBX_SHARD_INDEX=9\n",
        )
        .unwrap();
        std::fs::create_dir(home.path().join(".cbx")).unwrap();
        let env_path = home.path().join(".cbx/env-t");
        let vars = [
            ("FOO".to_string(), "it's \"$HOME\" `id`\nline 2".to_string()),
            ("BAR".to_string(), "bar".to_string()),
        ];
        std::fs::write(&env_path, env_file(&vars)).unwrap();
        (home, env_path)
    }

    /// What a program sees of the forwarded and cbx's variables, and of cbx's copies.
    const SHOW: &str = "printf '%s|' \"$FOO\" \"$BAR\" \"$CBX_SLUG\" \"$CBX_SHARD_INDEX\"; \
                        env | grep -c '^cbx_' || true";

    /// Under the login shell, whose profile runs after the line set them, forwarded (`--env`)
    /// and cbx's own variables still win; the env file is gone; cbx's copies are not left in
    /// the program's environment. Under sh and bash as the outer shell, with bash and with
    /// only `sh -l`, for an argv and a shell script.
    #[test]
    fn forwarded_and_cbx_variables_win_over_the_login_profile() {
        let sh_only = tempfile::tempdir().unwrap();
        for tool in ["sh", "rm", "mkdir", "env", "grep", "printf"] {
            let found = ["/usr/bin", "/bin"]
                .iter()
                .map(|d| std::path::Path::new(d).join(tool))
                .find(|p| p.exists())
                .unwrap();
            std::os::unix::fs::symlink(found, sh_only.path().join(tool)).unwrap();
        }
        let full_path = std::env::var("PATH").unwrap();
        let paths = [full_path.as_str(), sh_only.path().to_str().unwrap()];
        let exports = [
            ("CBX_SLUG".to_string(), "amber-otter".to_string()),
            ("CBX_SHARD_INDEX".to_string(), "1".to_string()),
        ];
        let programs = [
            Program::Argv(vec!["sh".into(), "-c".into(), SHOW.into()]),
            Program::Shell(SHOW.into()),
        ];
        for (outer, path, program) in ["/bin/sh", "/bin/bash"]
            .iter()
            .flat_map(|o| paths.iter().map(move |p| (*o, *p)))
            .flat_map(|(o, p)| programs.iter().map(move |g| (o, p, g)))
        {
            let (home, env_path) = profile_home();
            let line = command_line("work", true, &exports, Some(".cbx/env-t"), program, None);
            let out = Command::new(outer)
                .arg("-c")
                .arg(&line)
                .current_dir(home.path())
                .env_clear()
                .env("PATH", path)
                .env("HOME", home.path())
                .output()
                .unwrap();
            let case = format!("{outer} with PATH {path}, {program:?}");
            assert!(out.status.success(), "{case}: {out:?}");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "it's \"$HOME\" `id`\nline 2|bar|amber-otter|1|0\n",
                "{case}"
            );
            assert!(!env_path.exists(), "{case}");
        }
    }

    #[test]
    fn paths_that_look_like_options_stay_paths() {
        let dir = tempfile::tempdir().unwrap();
        let wd = dir.path().join("-n");
        std::fs::create_dir(&wd).unwrap();
        let env_path = dir.path().join("-f");
        std::fs::write(&env_path, env_file(&[("X".into(), "1".into())])).unwrap();
        let line = command_line(
            wd.to_str().unwrap(),
            true,
            &[],
            Some(env_path.to_str().unwrap()),
            &Program::Argv(vec!["sh".into(), "-c".into(), "echo \"$X\"; pwd".into()]),
            None,
        );
        let out = Command::new("sh").arg("-c").arg(&line).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.starts_with("1\n") && text.trim_end().ends_with("/-n"),
            "{text}"
        );
        assert!(!env_path.exists());
    }

    #[test]
    fn work_roots_that_look_like_options_or_hold_control_characters_are_refused() {
        for root in ["-rf", "-", "cbx\n-x", "a\u{1b}[2Jb"] {
            let err = check_work_root("evil", root).unwrap_err();
            assert_eq!(crate::error::exit_code(&err), 8, "{root:?}");
            assert!(
                err.to_string().starts_with(&format!(
                    "provider evil reported the work root `{}`, which ",
                    inert(root)
                )),
                "{err}"
            );
        }
        let err = check_work_root("evil", "cbx\nerror: forged\u{202e}").unwrap_err();
        assert!(
            err.to_string()
                .contains("the work root `cbx\\nerror: forged\\u{202e}`, which contains"),
            "{err}"
        );
        for root in ["cbx", "/srv/cbx", "~/work", "", "a-b"] {
            check_work_root("p", root).unwrap();
        }
    }

    #[test]
    fn missing_workdir_is_explained() {
        // Under a file: it cannot be created, not even by root.
        let line = command_line(
            "/dev/null/cbx",
            true,
            &[],
            None,
            &Program::Argv(vec!["true".into()]),
            None,
        );
        let out = Command::new("sh").arg("-c").arg(&line).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("the work directory /dev/null/cbx does not exist on the sandbox and could not be created")
        );
    }
}
