//! Where providers come from. Today: the providers embedded in the cbx binary.
//! (Installed third-party providers are found here too once installed; see docs/providers.)

use anyhow::Result;

use super::engine::sha256_hex;
use super::manifest::Manifest;
use crate::error::{ErrorKind, Failure};

/// The Daytona component, built from `providers/daytona` by `build.rs`.
static DAYTONA_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/cbx-provider-daytona.wasm"));
/// Daytona's manifest.
static DAYTONA_MANIFEST: &str = include_str!("../../../providers/daytona/cbx-provider.toml");

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
    ]
}

/// Every known provider.
pub fn all() -> Vec<ProviderPackage> {
    builtin()
}

/// The provider called `name`, or a usage error listing the known ones.
pub fn find(name: &str) -> Result<ProviderPackage> {
    let all = all();
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
