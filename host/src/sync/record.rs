//! Sync records: what the last successful sync to a lease sent — its remote directory, its
//! fingerprint and its file list — kept beside the claims (no secrets), so an unchanged tree
//! is not sent again and files deleted locally are pruned remotely.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::paths;

/// What the last successful sync to a lease sent.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRecord {
    /// The directory it synced to.
    pub remote_dir: String,
    /// The fingerprint of the tree it sent.
    pub fingerprint: String,
    /// When (RFC 3339).
    pub synced_at: String,
}

/// Where sync records for `lease` live: the record and the NUL-separated file list.
pub fn record_paths(state_dir: &Path, lease: &str) -> (PathBuf, PathBuf) {
    let dir = state_dir.join("sync");
    (
        dir.join(format!("{lease}.json")),
        dir.join(format!("{lease}.files")),
    )
}

/// The record of the last sync to `lease`, if there is a readable one.
pub fn load(state_dir: &Path, lease: &str) -> Option<SyncRecord> {
    let (meta, _) = record_paths(state_dir, lease);
    fs_err::read(meta)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// The files the last sync to `lease` sent (none if unreadable).
pub fn load_files(state_dir: &Path, lease: &str) -> Vec<Vec<u8>> {
    let (_, files) = record_paths(state_dir, lease);
    fs_err::read(files)
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|p| !p.is_empty())
                .map(<[u8]>::to_vec)
                .collect()
        })
        .unwrap_or_default()
}

/// Remembers a sync to `remote_dir` of a tree with `fingerprint` and the NUL-separated
/// `files`.
pub fn save(
    state_dir: &Path,
    lease: &str,
    remote_dir: &str,
    fingerprint: &str,
    files: &[u8],
) -> Result<()> {
    let (meta, files_path) = record_paths(state_dir, lease);
    let record = SyncRecord {
        remote_dir: remote_dir.to_string(),
        fingerprint: fingerprint.to_string(),
        synced_at: chrono::Utc::now().to_rfc3339(),
    };
    paths::write_private_atomic(&files_path, files)?;
    paths::write_private_atomic(&meta, &serde_json::to_vec_pretty(&record)?)
}

/// Removes a lease's sync records.
pub fn forget(state_dir: &Path, lease: &str) {
    let (meta, files) = record_paths(state_dir, lease);
    let _ = fs_err::remove_file(meta);
    let _ = fs_err::remove_file(files);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sync record as every cbx so far has written it.
    #[test]
    fn the_record_format_is_pinned() {
        let record = SyncRecord {
            remote_dir: "cbx/cbx_0123456789ab/app".into(),
            fingerprint: "f".into(),
            synced_at: "T".into(),
        };
        assert_eq!(
            String::from_utf8(serde_json::to_vec_pretty(&record).unwrap()).unwrap(),
            "{\n  \"remoteDir\": \"cbx/cbx_0123456789ab/app\",\n  \"fingerprint\": \"f\",\n  \"syncedAt\": \"T\"\n}"
        );
    }

    #[test]
    fn saved_records_load_and_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        save(
            dir.path(),
            "cbx_0123456789ab",
            "cbx/x/app",
            "fp",
            b"a\0b/c\0",
        )
        .unwrap();
        let record = load(dir.path(), "cbx_0123456789ab").unwrap();
        assert_eq!(
            (record.remote_dir.as_str(), record.fingerprint.as_str()),
            ("cbx/x/app", "fp")
        );
        assert_eq!(
            load_files(dir.path(), "cbx_0123456789ab"),
            [b"a".to_vec(), b"b/c".to_vec()]
        );
        forget(dir.path(), "cbx_0123456789ab");
        assert!(load(dir.path(), "cbx_0123456789ab").is_none());
        assert!(load_files(dir.path(), "cbx_0123456789ab").is_empty());
    }
}
