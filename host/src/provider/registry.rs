//! Where providers come from: the providers embedded in the cbx binary, and providers the user
//! installed (`<data>/providers/<name>/provider.wasm` + `cbx-provider.toml`).

use anyhow::Result;

use super::engine::sha256_hex;
use super::manifest::Manifest;
use crate::error::{ErrorKind, Failure};

/// The Daytona component, built from `providers/daytona` by `build.rs`.
static DAYTONA_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/cbx-provider-daytona.wasm"));
/// Daytona's manifest.
static DAYTONA_MANIFEST: &str = include_str!("../../../providers/daytona/cbx-provider.toml");
/// The ssh provider's component, built from `providers/ssh` by `build.rs`.
static SSH_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/cbx-provider-ssh.wasm"));
/// The ssh provider's manifest: no endpoints, no credentials.
static SSH_MANIFEST: &str = include_str!("../../../providers/ssh/cbx-provider.toml");

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
    /// The component's bytes.
    pub component: Vec<u8>,
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
            component,
            origin,
            installed_version: None,
        })
    }

    /// The provider's name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }
}

/// The providers embedded in this binary.
pub fn builtin() -> Vec<ProviderPackage> {
    vec![
        ProviderPackage::from_parts(
            "builtin:daytona/cbx-provider.toml",
            DAYTONA_MANIFEST,
            DAYTONA_WASM.to_vec(),
            Origin::Builtin,
        )
        .expect("the embedded Daytona manifest is valid (checked by tests)"),
        ProviderPackage::from_parts(
            "builtin:ssh/cbx-provider.toml",
            SSH_MANIFEST,
            SSH_WASM.to_vec(),
            Origin::Builtin,
        )
        .expect("the embedded ssh manifest is valid (checked by tests)"),
    ]
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

/// The provider called `name`, or a usage error listing the known ones.
pub fn find(installed_dir: &std::path::Path, name: &str) -> Result<ProviderPackage> {
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
