//! A local file or directory as a tar stream, for `cbx cp LOCAL LEASE:REMOTE`. Symlinks are
//! sent as symlinks (never followed), directories recursively.

use std::io::{self, Write};
use std::path::Path;

/// Writes a tar stream of `path` to `to`, its top entry named `name`.
pub fn pack(path: &Path, name: &str, to: impl Write) -> io::Result<()> {
    let mut builder = tar::Builder::new(to);
    builder.follow_symlinks(false);
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        builder.append_dir_all(name, path)?;
    } else {
        builder.append_path_with_name(path, name)?;
    }
    builder.into_inner()?.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::unpack::{Place, Unpacked, unpack};

    #[test]
    fn a_directory_round_trips() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("d/sub")).unwrap();
        std::fs::write(src.path().join("d/sub/f.txt"), "hello").unwrap();
        let mut stream = Vec::new();
        pack(&src.path().join("d"), "renamed", &mut stream).unwrap();
        let dest = tempfile::tempdir().unwrap();
        let mut out = Unpacked::default();
        unpack(&stream[..], &Place::Into(dest.path().into()), &mut out).unwrap();
        assert_eq!(
            std::fs::read_to_string(dest.path().join("renamed/sub/f.txt")).unwrap(),
            "hello"
        );
    }
}
