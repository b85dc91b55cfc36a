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
pub fn command_line(
    workdir: &str,
    require_workdir: bool,
    exports: &[(String, String)],
    env_file: Option<&str>,
    program: &Program,
    before_login: Option<&str>,
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
    if !exports.is_empty() {
        prelude.push_str("export");
        for (k, v) in exports {
            prelude.push_str(&format!(" {k}={}", quote(v)));
        }
        prelude.push_str("; ");
    }
    if let Some(text) = before_login {
        prelude.push_str(text);
    }
    let (inner, args) = match program {
        Program::Argv(argv) => (
            format!("cd -- {wd} 2>/dev/null; exec \"$@\""),
            argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "),
        ),
        Program::Shell(script) => (format!("cd -- {wd} 2>/dev/null; {script}"), String::new()),
    };
    let inner = quote(&inner);
    let sep = if args.is_empty() { "" } else { " " };
    format!(
        "{prelude}if command -v bash >/dev/null 2>&1; then exec bash -lc {inner} cbx{sep}{args}; else exec sh -lc {inner} cbx{sep}{args}; fi"
    )
}

/// The content of an env file setting each (name, value).
pub fn env_file(vars: &[(String, String)]) -> String {
    vars.iter()
        .map(|(k, v)| format!("{k}={}\n", quote(v)))
        .collect()
}

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
