//! `cbx providers new` and `cbx providers wit`: a provider project to start from, written
//! outside any cbx checkout — the template of `providers/template` (embedded in cbx) renamed,
//! with the contract's WIT vendored into it and a fake of the service to test against.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::error::{ErrorKind, Failure};

/// The contract, as cbx was built against it.
pub const WIT: &str = include_str!("../../../wit/provider.wit");

/// The files of a new Rust project: (path in the project, text). Names are substituted.
const RUST_FILES: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../../providers/template/Cargo.toml"),
    ),
    (
        "Cargo.lock",
        include_str!("../../../providers/template/Cargo.lock"),
    ),
    (
        "cbx-provider.toml",
        include_str!("../../../providers/template/cbx-provider.toml"),
    ),
    (
        "README.md",
        include_str!("../../../providers/template/README.md"),
    ),
    (
        ".gitignore",
        include_str!("../../../providers/template/.gitignore"),
    ),
    (
        "src/lib.rs",
        include_str!("../../../providers/template/src/lib.rs"),
    ),
    (
        "fake/Cargo.toml",
        include_str!("../../../providers/template/fake/Cargo.toml"),
    ),
    (
        "fake/src/main.rs",
        include_str!("../../../providers/template/fake/src/main.rs"),
    ),
];

/// The files of a new Python project.
const PYTHON_FILES: &[(&str, &str)] = &[
    (
        "app.py",
        include_str!("../../../providers/template-py/app.py"),
    ),
    (
        "fake_service.py",
        include_str!("../../../providers/template-py/fake_service.py"),
    ),
    (
        "cbx-provider.toml",
        include_str!("../../../providers/template-py/cbx-provider.toml"),
    ),
    (
        "README.md",
        include_str!("../../../providers/template-py/README.md"),
    ),
    (
        ".gitignore",
        include_str!("../../../providers/template-py/.gitignore"),
    ),
];

/// A language `cbx providers new` writes projects in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Rust with wit-bindgen (the template of `providers/template`).
    Rust,
    /// Python with componentize-py (`providers/template-py`).
    Python,
}

/// Checks a provider name: lowercase letters, digits and `-`, starting with a letter, at most
/// 40 characters (it names the directory, the package and the `NAME_…` variables).
pub fn check_name(name: &str) -> Result<()> {
    let ok = name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if ok {
        return Ok(());
    }
    Err(Failure::new(
        ErrorKind::Usage,
        format!("`{}` is not a provider name", crate::terminal::inert(name)),
    )
    .hint("use lowercase letters, digits and `-`, starting with a letter (at most 40), e.g. `acme-cloud`")
    .into())
}

/// `text` of the template with its names replaced by `name`'s.
fn renamed(path: &str, text: &str, name: &str) -> String {
    let upper = name.to_ascii_uppercase().replace('-', "_");
    let crate_name = format!("cbx-provider-{name}");
    let text = text
        .replace("cbx-provider-template", &crate_name)
        .replace("cbx_provider_template", &crate_name.replace('-', "_"))
        .replace("TEMPLATE_", &format!("{upper}_"));
    match path {
        "app.py" => text.replace(r#"NAME = "template""#, &format!("NAME = {name:?}")),
        "src/lib.rs" => text
            .replace(r#"path: "../../wit""#, r#"path: "wit""#)
            .replace(
                r#"name: "template".into()"#,
                &format!("name: {name:?}.into()"),
            ),
        "cbx-provider.toml" => text.replace(r#"name = "template""#, &format!("name = {name:?}")),
        "README.md" => text
            .replace(
                "# cbx provider `template`",
                &format!("# cbx provider `{name}`"),
            )
            .replace("--provider template", &format!("--provider {name}")),
        _ => text,
    }
}

/// Writes a new provider project in `language` called `name` into `parent/name`, which must
/// not exist. Returns the directory.
pub fn new_project(parent: &Path, name: &str, language: Language) -> Result<PathBuf> {
    check_name(name)?;
    let dir = parent.join(name);
    if dir.exists() {
        return Err(Failure::new(
            ErrorKind::Usage,
            format!("{} already exists; nothing was written", dir.display()),
        )
        .hint("choose another name, or another directory with --parent")
        .into());
    }
    // Written into a temporary sibling first and renamed at the end: a failure leaves no
    // half-written project.
    fs_err::create_dir_all(parent)?;
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}-"))
        .tempdir_in(parent)
        .with_context(|| format!("create a directory in {}", parent.display()))?;
    let files = match language {
        Language::Rust => RUST_FILES,
        Language::Python => PYTHON_FILES,
    };
    for (path, text) in files {
        write(staging.path(), path, &renamed(path, text, name))?;
    }
    write(staging.path(), "wit/provider.wit", WIT)?;
    let staged = staging.keep();
    fs_err::rename(&staged, &dir)?;
    Ok(dir)
}

/// Writes the contract's WIT into `dir/provider.wit` (replacing an older copy). Returns the
/// file.
pub fn write_wit(dir: &Path) -> Result<PathBuf> {
    write(dir, "provider.wit", WIT)?;
    Ok(dir.join("provider.wit"))
}

fn write(root: &Path, rel: &str, text: &str) -> Result<()> {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        fs_err::create_dir_all(parent)?;
    }
    fs_err::write(&path, text)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["acme", "acme-cloud", "a1"] {
            check_name(good).unwrap();
        }
        for bad in [
            "",
            "Acme",
            "1acme",
            "acme-",
            "a/b",
            "../x",
            "acme_cloud",
            &"a".repeat(41),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_new_project_is_the_template_renamed_with_the_wit_vendored() {
        let dir = tempfile::tempdir().unwrap();
        let project = new_project(dir.path(), "acme-cloud", Language::Rust).unwrap();
        let read = |p: &str| std::fs::read_to_string(project.join(p)).unwrap();
        assert!(
            read("src/lib.rs").contains(r#"generate!({ world: "provider-world", path: "wit" })"#)
        );
        assert!(read("src/lib.rs").contains(r#"name: "acme-cloud".into()"#));
        assert!(read("Cargo.toml").contains(r#"name = "cbx-provider-acme-cloud""#));
        assert!(read("Cargo.lock").contains(r#"name = "cbx-provider-acme-cloud""#));
        let manifest = read("cbx-provider.toml");
        assert!(manifest.contains(r#"name = "acme-cloud""#), "{manifest}");
        assert!(manifest.contains("ACME_CLOUD_API_KEY"), "{manifest}");
        crate::grant::manifest::Manifest::parse("m", &manifest).unwrap();
        assert_eq!(read("wit/provider.wit"), WIT);
        assert!(read("README.md").contains("cbx --provider acme-cloud"));
        assert!(read("README.md").contains("ACME_CLOUD_API_KEY=test-key"));
        assert!(project.join("fake/src/main.rs").is_file());
        for (path, _) in RUST_FILES {
            assert!(
                !read(path).contains("template\""),
                "{path} still says template"
            );
        }
        let again = new_project(dir.path(), "acme-cloud", Language::Rust).unwrap_err();
        assert!(again.to_string().contains("already exists"), "{again}");
        let entries = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(entries, 1, "no staging directory is left behind");
    }

    #[test]
    fn a_new_python_project_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        let project = new_project(dir.path(), "acme", Language::Python).unwrap();
        let read = |p: &str| std::fs::read_to_string(project.join(p)).unwrap();
        assert!(read("app.py").contains(r#"NAME = "acme""#));
        let manifest = read("cbx-provider.toml");
        crate::grant::manifest::Manifest::parse("m", &manifest).unwrap();
        assert!(manifest.contains(r#"name = "acme""#) && manifest.contains("ACME_API_KEY"));
        assert!(read("README.md").contains("ACME_API_KEY=test-key"));
        assert_eq!(read("wit/provider.wit"), WIT);
    }
}
