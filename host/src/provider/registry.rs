//! Where providers come from: the providers embedded in the cbx binary, and providers the user
//! installed (`<data>/providers/<name>/provider.wasm` + `cbx-provider.toml`).

use std::borrow::Cow;
use std::sync::LazyLock;

use anyhow::Result;

use crate::digest::sha256_hex;
use crate::error::{ErrorKind, Failure};
use crate::grant::manifest::Manifest;

/// A provider embedded in the cbx binary.
struct Builtin {
    /// Its directory under `providers/`.
    dir: &'static str,
    /// The component `build.rs` built from it.
    component: &'static [u8],
    /// Hex sha256 of `component`, computed by `build.rs`.
    digest: &'static str,
    /// Its `cbx-provider.toml`.
    manifest: &'static str,
}

// `static BUILTIN: &[Builtin]`, written by `build.rs` from its list of embedded providers.
include!(concat!(env!("OUT_DIR"), "/builtin_providers.rs"));

/// Where a provider's files came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "path")]
pub enum Origin {
    /// Embedded in the cbx binary.
    Builtin,
    /// A file on disk.
    File(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Builtin => f.write_str("built into cbx"),
            Origin::File(p) => f.write_str(p),
        }
    }
}

/// A provider's component and manifest, not yet loaded.
#[derive(Debug, Clone)]
pub struct ProviderPackage {
    /// Its validated manifest.
    pub manifest: Manifest,
    /// The component's bytes (borrowed from the binary for a built-in provider).
    pub component: Cow<'static, [u8]>,
    /// Hex sha256 of the component.
    pub digest: String,
    /// Where it came from.
    pub origin: Origin,
    /// The version recorded when it was installed (installed providers).
    pub installed_version: Option<String>,
}

impl ProviderPackage {
    /// A package from a manifest's text and component bytes.
    pub fn from_parts(
        manifest_file: &str,
        manifest: &str,
        component: Vec<u8>,
        origin: Origin,
    ) -> Result<ProviderPackage> {
        let manifest = Manifest::parse(manifest_file, manifest).map_err(|d| {
            Failure::new(ErrorKind::Usage, format!("invalid provider manifest\n{d}"))
        })?;
        Ok(ProviderPackage {
            digest: sha256_hex(&component),
            manifest,
            component: Cow::Owned(component),
            origin,
            installed_version: None,
        })
    }

    /// The provider's name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }
}

/// The providers embedded in this binary: their manifests parsed once per process, their
/// components borrowed from the binary (not copied) and their digests computed when cbx was
/// built (not hashed again).
pub fn builtin() -> Vec<ProviderPackage> {
    static PARSED: LazyLock<Vec<ProviderPackage>> = LazyLock::new(|| {
        BUILTIN
            .iter()
            .map(|b| {
                let file = format!("builtin:{}/{MANIFEST_FILE}", b.dir);
                ProviderPackage {
                    manifest: Manifest::parse(&file, b.manifest)
                        .expect("the embedded manifests are valid (checked by tests)"),
                    component: Cow::Borrowed(b.component),
                    digest: b.digest.to_string(),
                    origin: Origin::Builtin,
                    installed_version: None,
                }
            })
            .collect()
    });
    PARSED.clone()
}

/// Whether `name` is a provider built into cbx.
pub fn is_builtin(name: &str) -> bool {
    builtin().iter().any(|p| p.name() == name)
}

/// The file names of an installed provider.
pub const COMPONENT_FILE: &str = "provider.wasm";
/// The manifest file name.
pub const MANIFEST_FILE: &str = "cbx-provider.toml";
/// The file recording the provider's version at install.
pub const VERSION_FILE: &str = "version";

/// The providers installed under `dir` (one subdirectory each). Unreadable entries are errors:
/// a damaged installation should be noticed, not silently skipped.
pub fn installed(dir: &std::path::Path) -> Result<Vec<ProviderPackage>> {
    let entries = match fs_err::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        let manifest_path = path.join(MANIFEST_FILE);
        let manifest = fs_err::read_to_string(&manifest_path)?;
        let component = fs_err::read(path.join(COMPONENT_FILE))?;
        let mut package = ProviderPackage::from_parts(
            &manifest_path.display().to_string(),
            &manifest,
            component,
            Origin::File(path.join(COMPONENT_FILE).display().to_string()),
        )?;
        package.installed_version = fs_err::read_to_string(path.join(VERSION_FILE))
            .ok()
            .map(|v| v.trim().to_string());
        out.push(package);
    }
    out.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(out)
}

/// Every known provider: built in first, then installed.
pub fn all(installed_dir: &std::path::Path) -> Result<Vec<ProviderPackage>> {
    let mut all = builtin();
    all.extend(installed(installed_dir)?);
    Ok(all)
}

/// The names of every provider, built in or installed under `installed_dir` (an installed
/// provider lives in a directory of its name), without reading or hashing any component:
/// for questions about names only. An unreadable directory lists only the built-in ones.
pub fn names(installed_dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = builtin().iter().map(|p| p.name().to_string()).collect();
    let installed = fs_err::read_dir(installed_dir)
        .into_iter()
        .flatten()
        .flatten();
    names.extend(
        installed
            .filter(|e| e.path().join(MANIFEST_FILE).is_file())
            .filter_map(|e| e.file_name().into_string().ok()),
    );
    names
}

/// The provider called `name`, or a usage error listing the known ones. A built-in provider
/// is found without reading (and hashing) the installed ones: none may take its name, and a
/// built-in one comes first anyway.
pub fn find(installed_dir: &std::path::Path, name: &str) -> Result<ProviderPackage> {
    if let Some(package) = builtin().into_iter().find(|p| p.name() == name) {
        return Ok(package);
    }
    let all = all(installed_dir)?;
    let names: Vec<String> = all.iter().map(|p| p.name().to_string()).collect();
    all.into_iter().find(|p| p.name() == name).ok_or_else(|| {
        Failure::new(
            ErrorKind::Usage,
            format!("unknown provider `{name}` (known: {})", names.join(", ")),
        )
        .hint("`cbx providers list` shows the providers this cbx knows")
        .into()
    })
}

/// A credential variable another provider's manifest reads too: whoever is granted it would
/// be sent that provider's secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SharedCredential {
    /// The environment variable.
    pub variable: String,
    /// This manifest's credential reading it.
    pub credential: String,
    /// The other provider.
    pub provider: String,
    /// The other provider's credential reading it.
    pub theirs: String,
    /// Whether the other provider is built into cbx.
    pub builtin: bool,
}

impl SharedCredential {
    /// The warning, in words (the screen may colour it too).
    pub fn warning(&self) -> String {
        format!(
            "WARNING: credential `{}` reads {}, the variable of provider {}'s credential `{}`{}: this provider would be sent that secret",
            self.credential,
            self.variable,
            self.provider,
            self.theirs,
            if self.builtin {
                " (built into cbx)"
            } else {
                ""
            }
        )
    }
}

/// The credential variables of `manifest` that another provider — built in or installed under
/// `installed_dir`, other than `manifest`'s own — also reads.
pub fn shared_credentials(
    installed_dir: &std::path::Path,
    manifest: &Manifest,
) -> Result<Vec<SharedCredential>> {
    let mut shared = Vec::new();
    for other in all(installed_dir)? {
        if other.name() == manifest.name {
            continue;
        }
        for mine in &manifest.credentials {
            for theirs in &other.manifest.credentials {
                if theirs.env == mine.env {
                    shared.push(SharedCredential {
                        variable: mine.env.clone(),
                        credential: mine.name.clone(),
                        provider: other.name().to_string(),
                        theirs: theirs.name.clone(),
                        builtin: other.origin == Origin::Builtin,
                    });
                }
            }
        }
    }
    Ok(shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_providers_load_with_valid_manifests() {
        let names: Vec<String> = super::builtin()
            .iter()
            .map(|p| p.name().to_string())
            .collect();
        assert_eq!(names, ["daytona", "ssh"]);
        let none = std::path::Path::new("/nonexistent/cbx-providers");
        assert_eq!(super::names(none), names, "names without installed ones");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("probe")).unwrap();
        std::fs::write(dir.path().join("probe").join(MANIFEST_FILE), "").unwrap();
        std::fs::create_dir_all(dir.path().join("not-a-provider")).unwrap();
        assert_eq!(super::names(dir.path()), ["daytona", "ssh", "probe"]);
        assert!(super::is_builtin("ssh"));
        assert!(!super::is_builtin("probe"));
        assert_eq!(
            super::builtin()[0].manifest.origin,
            "builtin:daytona/cbx-provider.toml"
        );
    }

    #[test]
    fn a_builtin_provider_is_found_without_reading_the_installed_ones() {
        let dir = tempfile::tempdir().unwrap();
        // An installed provider cbx cannot read: an error for every other name.
        std::fs::create_dir(dir.path().join("broken")).unwrap();
        assert_eq!(
            super::find(dir.path(), "daytona").unwrap().name(),
            "daytona"
        );
        assert!(super::find(dir.path(), "acme").is_err());
    }

    #[test]
    fn the_builtin_digests_computed_at_build_time_are_the_components_sha256() {
        for p in super::builtin() {
            assert_eq!(p.digest, sha256_hex(&p.component), "{}", p.name());
            assert_eq!(p.digest.len(), 64);
        }
    }

    #[test]
    fn a_manifest_reading_daytonas_key_is_flagged() {
        let m = Manifest::parse(
            "m",
            "[provider]\nname = \"acme\"\n[endpoints.api]\nurl = \"https://acme.example\"\n[credentials.key]\nenv = \"DAYTONA_API_KEY\"\nendpoint = \"api\"\nheader = \"Authorization\"\nformat = \"Bearer {value}\"\n",
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let shared = super::shared_credentials(dir.path(), &m).unwrap();
        assert_eq!(shared.len(), 1, "{shared:?}");
        assert_eq!(
            shared[0].warning(),
            "WARNING: credential `key` reads DAYTONA_API_KEY, the variable of provider daytona's credential `api-key` (built into cbx): this provider would be sent that secret"
        );
        let daytona = &super::builtin()[0].manifest;
        assert!(
            super::shared_credentials(dir.path(), daytona)
                .unwrap()
                .is_empty()
        );
    }
}
