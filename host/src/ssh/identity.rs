//! The key file a user configured for SSH logins, checked before ssh is pointed at it: a
//! private key is a regular file the user owns that nobody else can read, in an ordinary
//! place, written so ssh's config cannot misread it.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::error::{ErrorKind, Failure};

/// Directories no key file lives in (system files, kernel interfaces, devices).
const FORBIDDEN: &[&str] = &["/proc", "/sys", "/dev", "/etc"];

/// Checks the key file `path` (absolute or `~/…`, expanded with `home`) and returns the real
/// path ssh should read. `whose` says where the path was set, for messages (e.g. "option
/// `identity-file` of provider ssh"). A problem is a usage error (exit 2) naming the path and
/// the fix.
pub fn checked_key(path: &str, home: Option<&Path>, whose: &str) -> Result<PathBuf> {
    let refuse = |why: String, fix: &str| -> anyhow::Error {
        Failure::new(
            ErrorKind::Usage,
            format!("the SSH key file {path:?} ({whose}) {why}"),
        )
        .hint(fix.to_string())
        .into()
    };
    check_text(path).map_err(|why| refuse(why, "write the key's path plainly"))?;
    let expanded = expand(path, home).map_err(|why| {
        refuse(
            why,
            "write an absolute path or one starting with ~/, e.g. ~/.ssh/id_ed25519",
        )
    })?;
    under_forbidden(&expanded).map_err(|why| {
        refuse(
            why,
            "point it at a private key in your home directory, e.g. ~/.ssh/id_ed25519",
        )
    })?;
    let real = std::fs::canonicalize(&expanded).map_err(|e| {
        refuse(
            format!("cannot be read ({e})"),
            "create the key or fix the path",
        )
    })?;
    let real_text = real.to_string_lossy();
    check_text(&real_text)
        .and_then(|()| under_forbidden(&real))
        .map_err(|why| {
            refuse(
                format!("resolves to {real_text:?}, which {why}"),
                "point it at a private key in your home directory, e.g. ~/.ssh/id_ed25519",
            )
        })?;
    check_file(&real).map_err(|(why, fix)| refuse(why, &fix))?;
    Ok(real)
}

/// What ssh's config would misread: control characters, a trailing backslash (a line
/// continuation), `"` (quoting) and `%` (ssh's tokens).
fn check_text(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("is empty".into());
    }
    if path.chars().any(char::is_control) {
        return Err("contains a control character".into());
    }
    if path.ends_with('\\') {
        return Err(
            "ends with a backslash, which ssh's config reads as a line continuation".into(),
        );
    }
    if path.contains(['"', '%']) {
        return Err("contains `\"` or `%`, which ssh's config would misread".into());
    }
    Ok(())
}

/// `path` with a leading `~/` replaced by `home`; it must be absolute.
fn expand(path: &str, home: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(rest) = path.strip_prefix("~/") {
        let home = home.ok_or("starts with ~/, but HOME is not set")?;
        return Ok(home.join(rest));
    }
    if path.starts_with('~') {
        return Err("uses a form of ~ cbx does not expand".into());
    }
    let p = PathBuf::from(path);
    if !p.is_absolute() {
        return Err("is relative".into());
    }
    Ok(p)
}

/// Fails when `path` lies under a directory no key lives in.
fn under_forbidden(path: &Path) -> Result<(), String> {
    match FORBIDDEN.iter().find(|d| path.starts_with(d)) {
        Some(dir) => Err(format!("is under {dir}, where no SSH key belongs")),
        None => Ok(()),
    }
}

/// A regular file the user owns, not readable or writable by group or others.
fn check_file(path: &Path) -> Result<(), (String, String)> {
    let shown = path.display();
    let meta = std::fs::metadata(path)
        .map_err(|e| (format!("cannot be read ({e})"), "fix the path".to_string()))?;
    if !meta.is_file() {
        return Err((
            "is not a regular file".into(),
            "point it at a private key file".into(),
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let me = rustix::process::geteuid().as_raw();
        if meta.uid() != me {
            return Err((
                format!(
                    "belongs to user id {}, not to you (user id {me})",
                    meta.uid()
                ),
                format!("use a key you own (chown it, or copy it: cp {shown} ~/.ssh/)"),
            ));
        }
        if meta.mode() & 0o077 != 0 {
            return Err((
                format!(
                    "can be read or written by group or others (mode {:o})",
                    meta.mode() & 0o777
                ),
                format!("make it private: chmod 600 {shown}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(path: &str, home: Option<&Path>) -> (String, String) {
        let e = checked_key(path, home, "option `identity-file` of provider ssh").unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 2, "{e}");
        let f = crate::error::failure(&e).unwrap();
        (f.message.clone(), f.hint.clone().unwrap_or_default())
    }

    #[test]
    fn a_private_key_in_the_home_is_accepted_through_tilde() {
        let home = tempfile::tempdir().unwrap();
        let key = home.path().join("id_test");
        std::fs::write(&key, "key").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let got = checked_key("~/id_test", Some(home.path()), "x").unwrap();
        assert_eq!(got, key.canonicalize().unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
            let (m, h) = err(key.to_str().unwrap(), None);
            assert!(
                m.contains("can be read or written by group or others (mode 644)"),
                "{m}"
            );
            assert_eq!(
                h,
                format!(
                    "make it private: chmod 600 {}",
                    key.canonicalize().unwrap().display()
                )
            );
        }
        let (m, _) = err(home.path().to_str().unwrap(), None);
        assert!(m.ends_with("is not a regular file"), "{m}");
    }

    #[test]
    fn system_files_and_paths_ssh_would_misread_are_refused() {
        for (path, says) in [
            ("/etc/shadow", "is under /etc, where no SSH key belongs"),
            ("/proc/self/environ", "is under /proc"),
            ("/dev/stdin", "is under /dev"),
            ("/sys/kernel/notes", "is under /sys"),
            ("/home/u/.ssh/id\\", "ends with a backslash"),
            (
                "/home/u/.ssh/id\n  ProxyCommand x",
                "contains a control character",
            ),
            ("%d/.ssh/id", "contains `\"` or `%`"),
            ("/home/u/\"id", "contains `\"` or `%`"),
            ("id_ed25519", "is relative"),
            ("~root/.ssh/id", "a form of ~"),
            ("", "is empty"),
            ("/nonexistent/cbx/id", "cannot be read"),
        ] {
            let (m, h) = err(path, None);
            assert!(
                m.starts_with(&format!(
                    "the SSH key file {path:?} (option `identity-file` of provider ssh) "
                )),
                "{m}"
            );
            assert!(m.contains(says), "{path}: {m}");
            assert!(!h.is_empty(), "{path}: no hint");
        }
        let (m, _) = err("~/.ssh/id", None);
        assert!(m.contains("HOME is not set"), "{m}");
    }

    #[cfg(unix)]
    #[test]
    fn a_link_into_a_system_directory_is_refused() {
        let home = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/hostname", home.path().join("id")).unwrap();
        let (m, _) = err("~/id", Some(home.path()));
        assert!(
            m.contains("resolves to \"/etc/hostname\", which is under /etc"),
            "{m}"
        );
    }
}
