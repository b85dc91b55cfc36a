//! What the last sync to a lease sent of each file — its size, mode and modification time —
//! kept beside the sync record (no secrets). The tar transport sends only the files whose
//! stamp differs from it, as rsync's quick check (size and modification time) would; a file
//! the record does not know is always sent.
//!
//! The file is `<state>/sync/<lease>.sent`: for each file its path, a NUL, then
//! `len:mode:mtime:nsec` and a NUL. Paths never contain NUL; an unreadable or damaged file
//! counts as no record (everything is sent).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::files::{FileList, FileStamp};
use crate::paths;

/// The stamps the last sync to a lease sent, by path.
#[derive(Debug, Default)]
pub struct SentStamps {
    by_path: HashMap<Vec<u8>, FileStamp>,
}

impl SentStamps {
    /// Whether the file `path` with `stamp` was sent exactly so last time.
    pub fn unchanged(&self, path: &[u8], stamp: &FileStamp) -> bool {
        self.by_path.get(path) == Some(stamp)
    }
}

fn path_of(state_dir: &Path, lease: &str) -> PathBuf {
    state_dir.join("sync").join(format!("{lease}.sent"))
}

/// The stamps the last sync to `lease` sent (empty if there is no readable record).
pub fn load(state_dir: &Path, lease: &str) -> SentStamps {
    let Ok(bytes) = fs_err::read(path_of(state_dir, lease)) else {
        return SentStamps::default();
    };
    parse(&bytes).unwrap_or_default()
}

fn parse(bytes: &[u8]) -> Option<SentStamps> {
    let mut by_path = HashMap::new();
    let mut items = bytes.split(|b| *b == 0);
    while let Some(path) = items.next() {
        if path.is_empty() {
            break;
        }
        let text = std::str::from_utf8(items.next()?).ok()?;
        let mut fields = text.split(':');
        let stamp = FileStamp {
            len: fields.next()?.parse().ok()?,
            mode: fields.next()?.parse().ok()?,
            mtime: fields.next()?.parse().ok()?,
            mtime_nsec: fields.next()?.parse().ok()?,
        };
        by_path.insert(path.to_vec(), stamp);
    }
    Some(SentStamps { by_path })
}

/// Remembers the stamps of every file in `list` as sent to `lease`.
pub fn save(state_dir: &Path, lease: &str, list: &FileList) -> Result<()> {
    let mut out = Vec::with_capacity(list.files.len() * 48);
    for (path, st) in list.files.iter().zip(&list.stamps) {
        out.extend_from_slice(path);
        out.push(0);
        out.extend_from_slice(
            format!("{}:{}:{}:{}", st.len, st.mode, st.mtime, st.mtime_nsec).as_bytes(),
        );
        out.push(0);
    }
    paths::write_private_atomic(&path_of(state_dir, lease), &out)
}

/// Removes a lease's record of sent stamps.
pub fn forget(state_dir: &Path, lease: &str) {
    let _ = fs_err::remove_file(path_of(state_dir, lease));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(len: u64) -> FileStamp {
        FileStamp {
            len,
            mode: 0o100644,
            mtime: 1_700_000_000,
            mtime_nsec: 5,
        }
    }

    #[test]
    fn stamps_round_trip_and_damage_means_no_record() {
        let dir = tempfile::tempdir().unwrap();
        let list = FileList {
            root: PathBuf::new(),
            files: vec![b"a".to_vec(), b"odd\nname:x".to_vec()],
            bytes: 3,
            fingerprint: String::new(),
            stamps: vec![stamp(1), stamp(2)],
        };
        save(dir.path(), "cbx_0123456789ab", &list).unwrap();
        let sent = load(dir.path(), "cbx_0123456789ab");
        assert!(sent.unchanged(b"a", &stamp(1)));
        assert!(sent.unchanged(b"odd\nname:x", &stamp(2)));
        assert!(!sent.unchanged(b"a", &stamp(9)));
        assert!(!sent.unchanged(b"new", &stamp(1)));
        std::fs::write(path_of(dir.path(), "cbx_0123456789ab"), b"a\0not-a-stamp\0").unwrap();
        assert!(!load(dir.path(), "cbx_0123456789ab").unchanged(b"a", &stamp(1)));
        forget(dir.path(), "cbx_0123456789ab");
        assert!(!load(dir.path(), "cbx_0123456789ab").unchanged(b"a", &stamp(1)));
    }
}
