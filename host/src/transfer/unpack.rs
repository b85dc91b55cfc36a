//! Writing a tar stream a sandbox sent under a local destination, entry by entry. Nothing a
//! hostile sandbox names can land outside the destination: entries with `..`, absolute paths,
//! links and device files are refused (and reported), no existing symlink is ever followed
//! (a parent that is not a real directory refuses the entry; a file is renamed into place, so
//! a symlink in its way is replaced, not written through), and a file appears only once it
//! arrived whole.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use tar::EntryType;

/// Where received entries go.
#[derive(Debug, Clone)]
pub enum Place {
    /// Each entry at its own path under this directory.
    Into(PathBuf),
    /// The one item received becomes this path: its first path component is renamed.
    As(PathBuf),
}

/// What an unpack wrote and refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unpacked {
    /// Regular files written.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The files written, in the order they arrived.
    pub written: Vec<PathBuf>,
    /// Entries not written, each `NAME: why` (NAME as the sandbox sent it, made inert).
    pub refused: Vec<String>,
}

/// How many refused entries are listed, per fetch, before `…and N more`.
const SHOWN_REFUSED: usize = 10;

impl Unpacked {
    /// The warnings for the entries refused in a fetch (`what`: `--download GLOB`,
    /// `--junit GLOB`): the first [`SHOWN_REFUSED`], then how many more.
    pub fn refusals(&self, what: &str) -> Vec<String> {
        let mut lines: Vec<String> = self
            .refused
            .iter()
            .take(SHOWN_REFUSED)
            .map(|r| format!("{what}: {r}"))
            .collect();
        if self.refused.len() > SHOWN_REFUSED {
            lines.push(format!(
                "…and {} more entries refused",
                self.refused.len() - SHOWN_REFUSED
            ));
        }
        lines
    }
}

/// Unpacks the tar stream `reader` at `place`, adding to `out`. A stream that breaks off
/// (or any local write failure) ends the unpack with its error; what arrived whole stays.
pub fn unpack(reader: impl Read, place: &Place, out: &mut Unpacked) -> io::Result<()> {
    let root = match place {
        Place::Into(dir) => dir.clone(),
        Place::As(path) => path.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    let rename = match place {
        Place::Into(_) => None,
        Place::As(path) => Some(
            path.file_name()
                .map(OsString::from)
                .ok_or_else(|| io::Error::other(format!("{} names no file", path.display())))?,
        ),
    };
    if !root.as_os_str().is_empty() {
        fs::create_dir_all(&root)?;
    }
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let shown =
            crate::terminal::inert(&String::from_utf8_lossy(&entry.path_bytes())).into_owned();
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName
        ) {
            continue;
        }
        let rel = match relative(&entry.path()?, rename.as_ref()) {
            Ok(Some(rel)) => rel,
            Ok(None) => continue,
            Err(why) => {
                out.refused.push(format!("{shown}: {why}"));
                continue;
            }
        };
        if let Err(why) = place_entry(&mut entry, kind, &root, &rel, out)? {
            out.refused.push(format!("{shown}: {why}"));
        }
    }
    Ok(())
}

/// `path` as a relative path under the destination (its first component replaced by
/// `rename`), `None` for the destination itself, or why it may not be written.
fn relative(path: &Path, rename: Option<&OsString>) -> Result<Option<PathBuf>, &'static str> {
    let mut rel = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::Normal(name) => {
                if rel.as_os_str().is_empty()
                    && let Some(new) = rename
                {
                    rel.push(new);
                } else {
                    rel.push(name);
                }
            }
            Component::ParentDir => return Err("refused: the name contains `..`"),
            Component::RootDir | Component::Prefix(_) => {
                return Err("refused: the name is an absolute path");
            }
        }
    }
    Ok(if rel.as_os_str().is_empty() {
        None
    } else {
        Some(rel)
    })
}

/// Writes one entry at `root/rel`. The outer error ends the unpack; the inner one refuses
/// only this entry.
fn place_entry(
    entry: &mut tar::Entry<impl Read>,
    kind: EntryType,
    root: &Path,
    rel: &Path,
    out: &mut Unpacked,
) -> io::Result<Result<(), String>> {
    let target = root.join(rel);
    match kind {
        EntryType::Regular | EntryType::Continuous => {}
        EntryType::Directory => {
            return Ok(real_directories(root, rel));
        }
        EntryType::Symlink | EntryType::Link => {
            let to = entry
                .link_name_bytes()
                .map(|b| crate::terminal::inert(&String::from_utf8_lossy(&b)).into_owned())
                .unwrap_or_default();
            return Ok(Err(format!(
                "refused: a link (to `{to}`); cbx does not create links"
            )));
        }
        _ => return Ok(Err("refused: not a regular file or directory".to_string())),
    }
    let parent = rel.parent().unwrap_or(Path::new(""));
    if let Err(why) = real_directories(root, parent) {
        return Ok(Err(why));
    }
    let dir = target.parent().unwrap_or(root);
    let mut part = tempfile::Builder::new().prefix(".cbx-part-").tempfile_in(
        if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        },
    )?;
    let expected = entry.size();
    let bytes = io::copy(entry, part.as_file_mut())?;
    if bytes != expected {
        // The stream ended inside this file: it is dropped (and removed), not kept short.
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the stream ended {bytes} bytes into a file of {expected}"),
        ));
    }
    let exec = entry.header().mode().unwrap_or(0o644) & 0o111 != 0;
    set_mode(part.as_file(), if exec { 0o755 } else { 0o644 })?;
    if let Ok(secs) = entry.header().mtime() {
        let _ = part
            .as_file()
            .set_modified(UNIX_EPOCH + Duration::from_secs(secs));
    }
    if fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) {
        return Ok(Err("refused: a directory is in the way".to_string()));
    }
    if let Err(e) = part.persist(&target) {
        return Ok(Err(format!(
            "could not write {}: {}",
            target.display(),
            e.error
        )));
    }
    out.files += 1;
    out.bytes += bytes;
    out.written.push(target);
    Ok(Ok(()))
}

/// Makes every directory from `root` down to `root/rel`, refusing a component that exists and
/// is not a real directory (a symlink above all: it is never followed).
fn real_directories(root: &Path, rel: &Path) -> Result<(), String> {
    let mut at = root.to_path_buf();
    for c in rel.components() {
        at.push(c);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!(
                    "refused: {} is a symbolic link, which cbx does not follow",
                    at.display()
                ));
            }
            Ok(_) => return Err(format!("refused: {} is not a directory", at.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&at)
                    .map_err(|e| format!("could not create {}: {e}", at.display()))?;
            }
            Err(e) => return Err(format!("could not inspect {}: {e}", at.display())),
        }
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(file: &fs::File, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_file: &fs::File, _mode: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_fetch_and_stop_after_ten() {
        let mut out = Unpacked::default();
        assert!(out.refusals("--junit x").is_empty());
        out.refused = (0..12).map(|i| format!("f{i}: refused: a link")).collect();
        let lines = out.refusals("--junit *.xml");
        assert_eq!(lines.len(), 11);
        assert_eq!(lines[0], "--junit *.xml: f0: refused: a link");
        assert_eq!(lines[9], "--junit *.xml: f9: refused: a link");
        assert_eq!(lines[10], "…and 2 more entries refused");
    }

    /// A tar stream of raw entries (name, kind, body or link target), names written as given.
    fn raw_tar(entries: &[(&str, EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, body) in entries {
            let mut h = tar::Header::new_old();
            let raw = &mut h.as_old_mut().name;
            raw[..name.len()].copy_from_slice(name.as_bytes());
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            if *kind == EntryType::Symlink || *kind == EntryType::Link {
                h.as_old_mut().linkname[..body.len()].copy_from_slice(body);
                h.set_size(0);
                h.set_cksum();
                b.append(&h, io::empty()).unwrap();
            } else {
                h.set_size(body.len() as u64);
                h.set_cksum();
                b.append(&h, *body).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn hostile_names_never_leave_the_destination() {
        let top = tempfile::tempdir().unwrap();
        let dest = top.path().join("a/b/dest");
        fs::create_dir_all(&dest).unwrap();
        fs::write(top.path().join("a/keep"), "mine").unwrap();
        std::os::unix::fs::symlink(top.path().join("a"), dest.join("out")).unwrap();
        let stream = raw_tar(&[
            ("./ok/report.xml", EntryType::Regular, b"<ok/>"),
            ("../../x", EntryType::Regular, b"escape"),
            ("/tmp/abs", EntryType::Regular, b"abs"),
            ("./passwd.xml", EntryType::Symlink, b"/etc/passwd"),
            ("./hard", EntryType::Link, b"/etc/passwd"),
            ("./out/keep", EntryType::Regular, b"through a link"),
            ("./fifo", EntryType::Fifo, b""),
        ]);
        let mut out = Unpacked::default();
        unpack(&stream[..], &Place::Into(dest.clone()), &mut out).unwrap();
        assert_eq!(
            fs::read_to_string(dest.join("ok/report.xml")).unwrap(),
            "<ok/>"
        );
        assert_eq!(out.files, 1);
        assert_eq!(out.refused.len(), 6, "{:#?}", out.refused);
        assert!(
            out.refused[0].starts_with("../../x: refused"),
            "{:?}",
            out.refused
        );
        assert!(
            out.refused[2].contains("a link (to `/etc/passwd`)"),
            "{:?}",
            out.refused
        );
        assert!(!top.path().join("a/x").exists() && !top.path().join("x").exists());
        assert!(!dest.join("passwd.xml").exists());
        assert_eq!(
            fs::read_to_string(top.path().join("a/keep")).unwrap(),
            "mine"
        );
    }

    #[test]
    fn a_symlink_in_the_way_is_replaced_not_followed() {
        let top = tempfile::tempdir().unwrap();
        let victim = top.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let dest = top.path().join("dest");
        fs::create_dir(&dest).unwrap();
        std::os::unix::fs::symlink(&victim, dest.join("report.xml")).unwrap();
        let stream = raw_tar(&[("report.xml", EntryType::Regular, b"new")]);
        let mut out = Unpacked::default();
        unpack(&stream[..], &Place::Into(dest.clone()), &mut out).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert!(
            !fs::symlink_metadata(dest.join("report.xml"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(dest.join("report.xml")).unwrap(), "new");
    }

    #[test]
    fn a_broken_stream_leaves_only_whole_files() {
        let dest = tempfile::tempdir().unwrap();
        let big = vec![b'x'; 100_000];
        let stream = raw_tar(&[
            ("./first", EntryType::Regular, b"whole"),
            ("./second", EntryType::Regular, &big),
        ]);
        let cut = &stream[..stream.len() / 2];
        let mut out = Unpacked::default();
        let err = unpack(cut, &Place::Into(dest.path().into()), &mut out).unwrap_err();
        assert!(!err.to_string().is_empty());
        assert_eq!(out.files, 1);
        let names: Vec<_> = fs::read_dir(dest.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["first"], "no partial file may stay");
    }

    #[test]
    fn as_renames_the_first_component() {
        let top = tempfile::tempdir().unwrap();
        let stream = raw_tar(&[
            ("./logs/", EntryType::Directory, b""),
            ("./logs/a.txt", EntryType::Regular, b"a"),
        ]);
        let mut out = Unpacked::default();
        unpack(&stream[..], &Place::As(top.path().join("copy")), &mut out).unwrap();
        assert_eq!(
            fs::read_to_string(top.path().join("copy/a.txt")).unwrap(),
            "a"
        );
    }
}
