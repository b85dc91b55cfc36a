//! The process environment, read once when cbx starts and passed down from there.
//!
//! [`Environment::capture`] is the only place cbx reads its environment; everything else —
//! credentials, option variables, git's discovery variables, where temporary files go — asks
//! the [`Environment`] it was handed. Child processes (git, ssh, rsync) inherit the process's
//! environment as it was at start, which is the same.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

/// A snapshot of environment variables.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    vars: BTreeMap<OsString, OsString>,
}

impl Environment {
    /// The environment of this process.
    pub fn capture() -> Environment {
        Environment {
            vars: std::env::vars_os().collect(),
        }
    }

    /// An environment holding exactly `vars` (for tests and tools).
    pub fn from_pairs<K: Into<OsString>, V: Into<OsString>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Environment {
        Environment {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `name`, if it is set and valid UTF-8.
    pub fn var(&self, name: &str) -> Option<String> {
        self.var_os(name)
            .and_then(OsStr::to_str)
            .map(str::to_string)
    }

    /// The raw value of `name`, if it is set.
    pub fn var_os(&self, name: &str) -> Option<&OsStr> {
        self.vars.get(OsStr::new(name)).map(OsString::as_os_str)
    }

    /// Whether `name` is set (to anything, even an empty value).
    pub fn is_set(&self, name: &str) -> bool {
        self.var_os(name).is_some()
    }

    /// Every variable whose name and value are valid UTF-8, sorted by name.
    pub fn utf8_vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars
            .iter()
            .filter_map(|(k, v)| Some((k.to_str()?, v.to_str()?)))
    }

    /// Every variable, raw, sorted by name.
    pub fn vars_os(&self) -> impl Iterator<Item = (&OsStr, &OsStr)> {
        self.vars
            .iter()
            .map(|(k, v)| (k.as_os_str(), v.as_os_str()))
    }

    /// The home directory, `$HOME`.
    pub fn home(&self) -> Option<PathBuf> {
        self.var_os("HOME").map(PathBuf::from)
    }

    /// The directory for temporary files, as the standard library chooses it on Unix:
    /// `$TMPDIR`, else `/tmp`.
    pub fn temp_dir(&self) -> PathBuf {
        self.var_os("TMPDIR")
            .filter(|t| !t.is_empty())
            .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_what_it_was_given() {
        let env = Environment::from_pairs([("HOME", "/home/u"), ("CBX_TTL", "2h")]);
        assert_eq!(env.var("CBX_TTL").as_deref(), Some("2h"));
        assert_eq!(env.var("PATH"), None);
        assert!(env.is_set("HOME"));
        assert_eq!(env.home(), Some(PathBuf::from("/home/u")));
        assert_eq!(env.temp_dir(), PathBuf::from("/tmp"));
        let env = Environment::from_pairs([("TMPDIR", "/var/tmp")]);
        assert_eq!(env.temp_dir(), PathBuf::from("/var/tmp"));
        assert_eq!(
            env.utf8_vars().collect::<Vec<_>>(),
            [("TMPDIR", "/var/tmp")]
        );
    }
}
