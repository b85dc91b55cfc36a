//! Remote paths and globs, as `run --download` and `cp` take them: checked (no `..`, no
//! control characters, absolute only where the caller allows it) and written for the remote
//! `sh` so that nothing but the glob characters `*`, `?` and `[…]` is special in them.

use anyhow::Result;

use crate::error::{ErrorKind, Failure};
use crate::remote::quote;

/// The exit status of a transfer script whose base directory does not exist.
pub const NO_DIRECTORY: i32 = 97;
/// The start of the stderr line a transfer script writes for a pattern that matched nothing,
/// followed by the pattern's index.
pub const MISSING: &str = "cbx-transfer: missing ";

/// `text` as a remote path for `what` (e.g. `--download`), trailing slashes removed. Refused
/// (exit 2): empty, `..` anywhere, control characters, and an absolute path unless
/// `allow_absolute` (a home-relative `~` path is refused as well: it would not be expanded).
pub fn check(text: &str, allow_absolute: bool, what: &str) -> Result<String> {
    let refuse = |why: &str, hint: &str| -> anyhow::Error {
        Failure::new(
            ErrorKind::Usage,
            format!("{what} `{}`: {why}", crate::terminal::inert(text)),
        )
        .hint(hint.to_string())
        .into()
    };
    if text.chars().any(char::is_control) {
        return Err(refuse(
            "contains control characters",
            "name the file without them",
        ));
    }
    let trimmed = text.trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(refuse(
            "names nothing",
            "name a file, a directory or a glob",
        ));
    }
    if trimmed.split('/').any(|c| c == "..") {
        return Err(refuse(
            "`..` is not allowed in a remote path",
            "name the path from the work directory down (globs such as `target/*.xml` work)",
        ));
    }
    if text.starts_with('~') {
        return Err(refuse(
            "`~` is not expanded",
            "give the path relative to the work directory, or (for `cp`) an absolute path",
        ));
    }
    if text.starts_with('/') && !allow_absolute {
        return Err(refuse(
            "absolute remote paths are not allowed here",
            "give the path relative to the work directory (`cbx cp` takes absolute paths)",
        ));
    }
    Ok(trimmed.to_string())
}

/// Whether `pattern` holds a glob character.
pub fn has_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// `pattern` as one word for `sh`: the glob characters bare, everything else quoted. A `!` or
/// `^` right after `[` stays bare too (a negated bracket expression).
pub fn glob_word(pattern: &str) -> String {
    let mut out = String::new();
    let mut literal = String::new();
    let mut previous = None;
    for c in pattern.chars() {
        let bare =
            matches!(c, '*' | '?' | '[' | ']') || (matches!(c, '!' | '^') && previous == Some('['));
        if bare {
            if !literal.is_empty() {
                out.push_str(&quote(&literal));
                literal.clear();
            }
            out.push(c);
        } else {
            literal.push(c);
        }
        previous = Some(c);
    }
    if !literal.is_empty() {
        out.push_str(&quote(&literal));
    }
    out
}

/// The remote command that changes into `base` and writes a tar stream of everything the
/// `patterns` (relative to `base`) match to stdout, each entry named `./PATH`. A pattern that
/// matches nothing gets a [`MISSING`] line on stderr; a missing `base` exits [`NO_DIRECTORY`].
/// It runs under `sh` whatever the login shell is.
pub fn fetch_command(base: &str, patterns: &[String]) -> String {
    let mut script = format!(
        "cd -- {} 2>/dev/null || exit {NO_DIRECTORY}; set --; ",
        quote(base)
    );
    for (i, p) in patterns.iter().enumerate() {
        script.push_str(&format!(
            "m=0; for p in {}; do if [ -e \"$p\" ] || [ -L \"$p\" ]; then set -- \"$@\" \"./$p\"; m=1; fi; done; \
             [ $m = 1 ] || echo '{MISSING}{i}' >&2; ",
            glob_word(p)
        ));
    }
    script.push_str("[ $# -gt 0 ] || exit 0; exec tar -cf - \"$@\"");
    format!("exec sh -c {}", quote(&script))
}

/// The remote command that unpacks a tar stream from stdin into `dir` (created if missing),
/// without restoring owners.
pub fn send_command(dir: &str) -> String {
    let script = format!(
        "mkdir -p -- {d} && cd -- {d} && exec tar -xof -",
        d = quote(dir)
    );
    format!("exec sh -c {}", quote(&script))
}

/// The remote command that exits 0 when `path` is a directory.
pub fn is_dir_command(path: &str) -> String {
    format!("exec sh -c {}", quote(&format!("[ -d {} ]", quote(path))))
}

/// Joins a remote `path` to `base` unless it is absolute.
pub fn under(base: &str, path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else if path.is_empty() {
        base.to_string()
    } else {
        format!("{}/{path}", base.trim_end_matches('/'))
    }
}

/// Splits a checked remote path into its directory (empty for none) and its last name.
pub fn split_last(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((dir, name)) => (dir, name),
        None => ("", path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn check_refuses_escapes_and_keeps_the_rest() {
        assert_eq!(
            check("target/junit.xml", false, "x").unwrap(),
            "target/junit.xml"
        );
        assert_eq!(check("dist/", false, "x").unwrap(), "dist");
        assert_eq!(check("/etc/hosts", true, "x").unwrap(), "/etc/hosts");
        for (bad, why) in [
            ("../x", "`..`"),
            ("a/../../x", "`..`"),
            ("a/..", "`..`"),
            ("/etc/passwd", "absolute"),
            ("~/x", "`~`"),
            ("", "names nothing"),
            ("a\nb", "control"),
        ] {
            let e = check(bad, false, "--download").unwrap_err();
            assert!(format!("{e:#}").contains(why), "{bad:?}: {e:#}");
            assert_eq!(crate::error::exit_code(&e), 2);
        }
    }

    #[test]
    fn glob_words_expand_only_globs() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a b.xml", "c.xml", "$HOME.xml", "d.txt", "e'f.xml", "x!"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let run = |pattern: &str| {
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "for p in {}; do echo \"$p\"; done",
                    glob_word(pattern)
                ))
                .current_dir(dir.path())
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        assert_eq!(run("*.xml"), "$HOME.xml\na b.xml\nc.xml\ne'f.xml\n");
        assert_eq!(run("a b.xml"), "a b.xml\n");
        assert_eq!(run("$HOME*"), "$HOME.xml\n");
        assert_eq!(run("[!a-c]*.xml"), "$HOME.xml\ne'f.xml\n");
        assert_eq!(run("x!"), "x!\n");
        assert_eq!(run("nothing*"), "nothing*\n");
    }

    #[test]
    fn split_last_names_the_directory_and_the_name() {
        assert_eq!(split_last("a/b/c"), ("a/b", "c"));
        assert_eq!(split_last("/etc"), ("/", "etc"));
        assert_eq!(split_last("file"), ("", "file"));
        assert_eq!(under("w/r", "x"), "w/r/x");
        assert_eq!(under("w/r", "/abs"), "/abs");
    }
}
