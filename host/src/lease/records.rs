//! Directories of per-lease JSON records (claims, intents), read so that one damaged file
//! affects only its own lease: the readable records are returned, the damaged ones reported
//! with their path and a hint that never risks orphaning a live sandbox.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::de::DeserializeOwned;

use crate::lease::id::LeaseId;

/// A record file cbx cannot read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedFile {
    /// The file.
    pub path: PathBuf,
    /// What it is: `claim` or `intent`.
    pub record: &'static str,
    /// The lease its name says it belongs to, if it names one.
    pub lease: Option<LeaseId>,
    /// Why it cannot be read.
    pub error: String,
}

impl DamagedFile {
    /// What the user can safely do. Never "delete it": the file may be the only record of a
    /// sandbox that still exists (and costs money).
    pub fn hint(&self) -> String {
        let lease = self
            .lease
            .as_ref()
            .map_or_else(|| "its lease".to_string(), |l| format!("lease {l}"));
        let file = self.path.display();
        match self.record {
            "intent" => format!(
                "cbx skips this unfinished creation until the file is readable. Check in `cbx list --json` \
                 and the provider's console whether a sandbox of {lease} exists (its name ends in the \
                 lease's 12 hex digits): if one does, delete it there; then move the file aside \
                 (`mv {file} {file}.damaged`)"
            ),
            _ => format!(
                "cbx skips {lease} until the file is readable; it may be the only record binding a \
                 live sandbox to this machine. Check `cbx list --json`: if {lease}'s sandbox is gone, \
                 move the file aside (`mv {file} {file}.damaged`); if it still exists, repair the \
                 file or delete the sandbox in the provider's console first"
            ),
        }
    }

    /// The error to report when a command needs exactly this record.
    pub fn failure(&self) -> anyhow::Error {
        crate::error::Failure::new(
            crate::error::ErrorKind::Other,
            format!(
                "the {} file {} is damaged: {}",
                self.record,
                self.path.display(),
                self.error
            ),
        )
        .hint(self.hint())
        .into()
    }
}

/// The path of `lease`'s record in `dir`.
pub fn path_of(dir: &Path, lease: &LeaseId) -> PathBuf {
    dir.join(format!("{lease}.json"))
}

/// Reads one record: `None` if absent, the [`DamagedFile`] if it cannot be read or parsed.
pub fn read<T: DeserializeOwned>(
    path: &Path,
    record: &'static str,
) -> Option<std::result::Result<T, DamagedFile>> {
    let bytes = match fs_err::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(Err(damaged(path, record, e.to_string()))),
    };
    Some(serde_json::from_slice(&bytes).map_err(|e| damaged(path, record, e.to_string())))
}

fn damaged(path: &Path, record: &'static str, error: String) -> DamagedFile {
    DamagedFile {
        lease: path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(LeaseId::parse),
        path: path.to_path_buf(),
        record,
        error,
    }
}

/// Every `*.json` record in `dir`: the readable ones, and the damaged ones.
pub fn scan<T: DeserializeOwned>(
    dir: &Path,
    record: &'static str,
) -> Result<(Vec<T>, Vec<DamagedFile>)> {
    let entries = match fs_err::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(e.into()),
    };
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        match read::<T>(&path, record) {
            Some(Ok(r)) => good.push(r),
            Some(Err(d)) => bad.push(d),
            // Removed meanwhile (another cbx finished with it).
            None => {}
        }
    }
    bad.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((good, bad))
}
