//! Where a setting came from, and which source wins: one type for every setting cbx resolves
//! (provider options, endpoint URLs, the provider, lease times), as cargo's
//! `Value<T>`/`Definition` does.
//!
//! Precedence, lowest first: a default (cbx's, a provider's or its manifest's), the user's
//! config file, a repository's `cbx.toml`, an environment variable, a command-line flag. It is
//! written once, in [`Definition::precedence`], and applied by [`pick`].

use std::fmt;

/// Where a value was defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Definition {
    /// A built-in default: cbx's, or the provider's own.
    Default,
    /// A provider manifest's default (the manifest's origin).
    Manifest(String),
    /// A line of the user's config file: `PATH:LINE`.
    UserFile(String),
    /// A line of a repository's `cbx.toml`: `PATH:LINE`.
    RepoFile(String),
    /// An environment variable (its name).
    Env(String),
    /// A command-line flag, as written (`--option snapshot`).
    Flag(String),
}

impl Definition {
    /// How strongly this definition holds against another: higher wins.
    pub fn precedence(&self) -> u8 {
        match self {
            Definition::Default | Definition::Manifest(_) => 0,
            Definition::UserFile(_) => 1,
            Definition::RepoFile(_) => 2,
            Definition::Env(_) => 3,
            Definition::Flag(_) => 4,
        }
    }

    /// The place alone, where its kind goes without saying: `PATH:LINE`, `--option snapshot`,
    /// `environment variable X`, `default`.
    pub fn place(&self) -> String {
        match self {
            Definition::UserFile(p) | Definition::RepoFile(p) | Definition::Flag(p) => p.clone(),
            other => other.to_string(),
        }
    }
}

/// The kind and the place: `user config PATH:LINE`, `flag --endpoint api`, `environment
/// variable X`, `manifest ORIGIN`, `default`.
impl fmt::Display for Definition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Definition::Default => f.write_str("default"),
            Definition::Manifest(m) => write!(f, "manifest {m}"),
            Definition::UserFile(p) => write!(f, "user config {p}"),
            Definition::RepoFile(p) => write!(f, "repository config {p}"),
            Definition::Env(v) => write!(f, "environment variable {v}"),
            Definition::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// As documented for `providers inspect --json` (docs/cli.md): `{"kind":"default"}`,
/// `{"kind":"file","where":PATH:LINE}`, `{"kind":"env","where":VAR}`,
/// `{"kind":"flag","where":FLAG}`, `{"kind":"manifest","where":ORIGIN}`.
impl serde::Serialize for Definition {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (kind, place) = match self {
            Definition::Default => ("default", None),
            Definition::Manifest(m) => ("manifest", Some(m)),
            Definition::UserFile(p) | Definition::RepoFile(p) => ("file", Some(p)),
            Definition::Env(v) => ("env", Some(v)),
            Definition::Flag(f) => ("flag", Some(f)),
        };
        tagged(s, kind, place)
    }
}

/// `{"kind": KIND, "where": PLACE}`, without `where` when there is no place.
pub fn tagged<S: serde::Serializer>(
    s: S,
    kind: &str,
    place: Option<&String>,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(1 + usize::from(place.is_some())))?;
    map.serialize_entry("kind", kind)?;
    if let Some(place) = place {
        map.serialize_entry("where", place)?;
    }
    map.end()
}

/// A value and where it was defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value<T> {
    /// The value.
    pub val: T,
    /// Where it came from.
    pub definition: Definition,
}

impl<T> Value<T> {
    /// `val`, defined at `definition`.
    pub fn new(val: T, definition: Definition) -> Value<T> {
        Value { val, definition }
    }

    /// The same definition with the value transformed.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Value<U> {
        Value {
            val: f(self.val),
            definition: self.definition,
        }
    }
}

/// The candidate whose definition has the highest precedence; of equals, the last (a flag
/// given twice: the second).
pub fn pick<T>(candidates: impl IntoIterator<Item = Value<T>>) -> Option<Value<T>> {
    candidates
        .into_iter()
        .max_by_key(|v| v.definition.precedence())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_env_repo_user_default() {
        let all = || {
            vec![
                Value::new("default", Definition::Default),
                Value::new("flag", Definition::Flag("--x".into())),
                Value::new("user", Definition::UserFile("c:1".into())),
                Value::new("env", Definition::Env("X".into())),
                Value::new("repo", Definition::RepoFile("r:1".into())),
            ]
        };
        let mut left = all();
        for want in ["flag", "env", "repo", "user", "default"] {
            assert_eq!(pick(left.clone()).unwrap().val, want);
            left.retain(|v| v.val != want);
        }
        let twice = [
            Value::new(1, Definition::Flag("-o a=1".into())),
            Value::new(2, Definition::Flag("-o a=2".into())),
        ];
        assert_eq!(pick(twice).unwrap().val, 2);
    }

    #[test]
    fn serializes_as_documented() {
        let json = |d: Definition| serde_json::to_string(&d).unwrap();
        assert_eq!(json(Definition::Default), r#"{"kind":"default"}"#);
        assert_eq!(
            json(Definition::UserFile("/c.toml:2".into())),
            r#"{"kind":"file","where":"/c.toml:2"}"#
        );
        assert_eq!(
            json(Definition::RepoFile("/r/cbx.toml:3".into())),
            r#"{"kind":"file","where":"/r/cbx.toml:3"}"#
        );
        assert_eq!(
            json(Definition::Env("X".into())),
            r#"{"kind":"env","where":"X"}"#
        );
        assert_eq!(
            json(Definition::Flag("--option a".into())),
            r#"{"kind":"flag","where":"--option a"}"#
        );
        assert_eq!(
            json(Definition::Manifest("builtin:d".into())),
            r#"{"kind":"manifest","where":"builtin:d"}"#
        );
        assert_eq!(Definition::Flag("--option a".into()).place(), "--option a");
        assert_eq!(
            Definition::Env("X".into()).to_string(),
            "environment variable X"
        );
    }
}
