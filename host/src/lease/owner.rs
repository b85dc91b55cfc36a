//! The owner id: a stable, non-identifying id of this user on this machine, written on every
//! sandbox cbx creates (label `cbx_owner`), so `list --all` and `cleanup` can tell this
//! machine's sandboxes from other machines' without a claim.
//!
//! It is random (16 lowercase hex digits), generated once and kept in cbx's state directory
//! (`owner-id`, 0600). It says nothing about the user or the machine: no user name, host name
//! or address goes into it. The first writer wins: a racing second cbx reads the first's id.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rand::Rng;

use crate::paths::{self, Dirs};

/// The file holding the owner id, in the state directory.
const FILE: &str = "owner-id";
/// Hex digits in an owner id.
const LEN: usize = 16;

/// This user's owner id on this machine, created on first use.
pub fn owner_id(dirs: &Dirs) -> Result<String> {
    let path = dirs.state.join(FILE);
    if let Some(id) = read(&path)? {
        return Ok(id);
    }
    let bytes: [u8; LEN / 2] = rand::rng().random();
    let fresh: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    create(&path, &fresh)?;
    read(&path)?.with_context(|| format!("{} vanished after it was written", path.display()))
}

/// Whether `text` is shaped like an owner id.
pub fn is_owner_id(text: &str) -> bool {
    text.len() == LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The id in `path`, if the file exists; an error naming the file if it holds something else.
fn read(path: &Path) -> Result<Option<String>> {
    match fs_err::read_to_string(path) {
        Ok(text) if is_owner_id(text.trim()) => Ok(Some(text.trim().to_string())),
        Ok(_) => Err(crate::error::Failure::new(
            crate::error::ErrorKind::Other,
            format!("{} does not hold a cbx owner id", path.display()),
        )
        .hint(format!(
            "move {} aside; cbx then makes a new id (sandboxes labelled with the old one \
             show as another owner's in `cbx list --all`)",
            path.display()
        ))
        .into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Writes `id` to `path` unless a file is already there: a private temporary file, then a
/// hard link to `path`, which fails if another process got there first.
fn create(path: &Path, id: &str) -> Result<()> {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    paths::private_dir(&dir)?;
    let tmp: PathBuf = dir.join(format!(".owner-id-{}", std::process::id()));
    paths::write_private_atomic(&tmp, format!("{id}\n").as_bytes())?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("write {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(root: &Path) -> Dirs {
        Dirs {
            config: root.join("config"),
            state: root.join("state"),
            cache: root.join("cache"),
            data: root.join("data"),
        }
    }

    #[test]
    fn made_once_private_and_stable() {
        let root = tempfile::tempdir().unwrap();
        let d = dirs(root.path());
        let id = owner_id(&d).unwrap();
        assert!(is_owner_id(&id), "{id}");
        assert_eq!(owner_id(&d).unwrap(), id);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(d.state.join(FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = tempfile::tempdir().unwrap();
        assert_ne!(owner_id(&dirs(other.path())).unwrap(), id);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(&d.state).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn the_first_writer_wins_and_a_damaged_file_is_named() {
        let root = tempfile::tempdir().unwrap();
        let d = dirs(root.path());
        std::fs::create_dir_all(&d.state).unwrap();
        std::fs::write(d.state.join(FILE), "0123456789abcdef\n").unwrap();
        assert_eq!(owner_id(&d).unwrap(), "0123456789abcdef");
        create(&d.state.join(FILE), "ffffffffffffffff").unwrap();
        assert_eq!(owner_id(&d).unwrap(), "0123456789abcdef");
        std::fs::write(d.state.join(FILE), "alice@laptop\n").unwrap();
        let err = owner_id(&d).unwrap_err();
        assert!(
            format!("{err:#}").contains("does not hold a cbx owner id"),
            "{err:#}"
        );
        assert!(!is_owner_id("0123456789ABCDEF"));
    }
}
