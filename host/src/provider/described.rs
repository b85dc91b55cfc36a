//! The describe cache: what a component said about itself (`describe`) and the capabilities
//! its exports offer, kept per component digest so that a command which may never call the
//! provider (the warm path of `cbx run --id` and `cbx ssh`) knows its options and features
//! without loading it.
//!
//! Written (private, atomically) after every real `describe`, next to the compiled-component
//! cache, under the component's sha256 — for a built-in provider the digest `build.rs`
//! computed. Read back only when everything checks: the file is this cbx's format, written
//! by this cbx version, for this digest, its name is the manifest's, and it passes the same
//! bounds `describe` is held to. Anything else is no cache, and the provider is loaded.
//!
//! Trust: the same as the compiled-component cache (`engine`), which holds native code cbx
//! runs: a directory only this user can write. Whoever can write there can already change
//! what the provider does; a description they forge changes no more than that (option
//! defaults, features), and the user's approval and grant are checked from the package and
//! the user's configuration, never from here.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::bindings::api::{OptionKind, OptionSpec, ProviderInfo};
use super::bounds::Bounded;
use super::capability::Capability;
use crate::paths;

/// The format of a cache file; another is no cache.
const FORMAT: u32 = 1;

/// A component's description and capabilities, as cached.
#[derive(Debug, Clone)]
pub struct Described {
    /// What it says about itself.
    pub info: ProviderInfo,
    /// The optional capabilities its exports offer.
    pub capabilities: Vec<Capability>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Record {
    format: u32,
    cbx: String,
    digest: String,
    name: String,
    version: String,
    description: String,
    options: Vec<OptionRecord>,
    features: Vec<String>,
    capabilities: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OptionRecord {
    name: String,
    description: String,
    kind: String,
    default: Option<String>,
}

/// The cache of descriptions in `dir`.
#[derive(Debug, Clone)]
pub struct DescribeCache {
    dir: PathBuf,
}

impl DescribeCache {
    /// The cache in `dir` (`<cache>/descriptions`).
    pub fn new(dir: PathBuf) -> DescribeCache {
        DescribeCache { dir }
    }

    fn file(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit());
        hex.then(|| self.dir.join(format!("{digest}.json")))
    }

    /// The description of the component with sha256 `digest`, whose manifest names it `name`;
    /// `None` when there is none this cbx wrote and can use.
    pub fn read(&self, digest: &str, name: &str) -> Option<Described> {
        let path = self.file(digest)?;
        if !private_file(&path) {
            return None;
        }
        let record: Record = serde_json::from_slice(&fs_err::read(&path).ok()?).ok()?;
        let usable = record.format == FORMAT
            && record.cbx == env!("CARGO_PKG_VERSION")
            && record.digest == digest
            && record.name == name;
        if !usable {
            tracing::debug!("ignoring the description in {}", path.display());
            return None;
        }
        let described = from_record(record)?;
        described.info.bounded().ok()?;
        Some(described)
    }

    /// Caches `described` for the component with sha256 `digest`, unless the cache already
    /// holds exactly that (best effort: a failure is a debug line, and the next command loads
    /// the provider).
    pub fn remember(&self, digest: &str, described: &Described) {
        let Some(path) = self.file(digest) else {
            return;
        };
        let Ok(json) = serde_json::to_vec_pretty(&to_record(digest, described)) else {
            return;
        };
        if private_file(&path) && fs_err::read(&path).is_ok_and(|old| old == json) {
            return;
        }
        if let Err(e) = paths::write_private_atomic(&path, &json) {
            tracing::debug!("could not cache the provider's description: {e:#}");
        }
    }
}

impl Described {
    /// Whether `info` and `capabilities` (a fresh `describe`) say what this description says.
    pub fn same_as(&self, info: &ProviderInfo, capabilities: &[Capability]) -> bool {
        let fresh = Described {
            info: info.clone(),
            capabilities: capabilities.to_vec(),
        };
        let json = |d: &Described| serde_json::to_string(&to_record("", d)).ok();
        json(self) == json(&fresh)
    }
}

fn to_record(digest: &str, d: &Described) -> Record {
    let info = &d.info;
    Record {
        format: FORMAT,
        cbx: env!("CARGO_PKG_VERSION").to_string(),
        digest: digest.to_string(),
        name: info.name.clone(),
        version: info.version.clone(),
        description: info.description.clone(),
        options: info
            .options
            .iter()
            .map(|o| OptionRecord {
                name: o.name.clone(),
                description: o.description.clone(),
                kind: o.kind.as_str().to_string(),
                default: o.default.clone(),
            })
            .collect(),
        features: info.features.clone(),
        capabilities: d
            .capabilities
            .iter()
            .map(|c| c.as_str().to_string())
            .collect(),
    }
}

fn from_record(r: Record) -> Option<Described> {
    let options = r
        .options
        .into_iter()
        .map(|o| {
            let kind = [OptionKind::Text, OptionKind::Integer, OptionKind::Boolean]
                .into_iter()
                .find(|k| k.as_str() == o.kind)?;
            Some(OptionSpec {
                name: o.name,
                description: o.description,
                kind,
                default: o.default,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let capabilities = r
        .capabilities
        .iter()
        .map(|c| Capability::ALL.into_iter().find(|k| k.as_str() == c))
        .collect::<Option<Vec<_>>>()?;
    Some(Described {
        info: ProviderInfo {
            name: r.name,
            version: r.version,
            description: r.description,
            options,
            features: r.features,
        },
        capabilities,
    })
}

/// Whether `path` is a regular file that neither group nor others can write, in a directory
/// only its owner can reach (the compiled-component cache's rule).
fn private_file(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let (Ok(file), Some(Ok(dir))) = (
            std::fs::symlink_metadata(path),
            path.parent().map(std::fs::metadata),
        ) else {
            return false;
        };
        file.is_file()
            && file.mode() & 0o022 == 0
            && dir.mode() & 0o077 == 0
            && file.uid() == dir.uid()
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn described() -> Described {
        Described {
            info: ProviderInfo {
                name: "daytona".into(),
                version: "0.1.0".into(),
                description: "Daytona sandboxes".into(),
                options: vec![OptionSpec {
                    name: "snapshot".into(),
                    description: "The snapshot".into(),
                    kind: OptionKind::Text,
                    default: Some("base".into()),
                }],
                features: vec!["start".into(), "touch".into()],
            },
            capabilities: vec![Capability::Fork],
        }
    }

    fn cache() -> (tempfile::TempDir, DescribeCache) {
        let tmp = tempfile::tempdir().unwrap();
        let cache = DescribeCache::new(tmp.path().join("descriptions"));
        (tmp, cache)
    }

    #[test]
    fn a_description_written_is_read_back_for_its_digest_and_name() {
        let (_tmp, cache) = cache();
        assert!(cache.read(DIGEST, "daytona").is_none(), "empty cache");
        cache.remember(DIGEST, &described());
        let back = cache.read(DIGEST, "daytona").expect("cached");
        assert_eq!(back.info.name, "daytona");
        assert_eq!(back.info.options[0].name, "snapshot");
        assert_eq!(back.info.options[0].default.as_deref(), Some("base"));
        assert!(matches!(back.info.options[0].kind, OptionKind::Text));
        assert_eq!(back.info.features, ["start", "touch"]);
        assert_eq!(back.capabilities, [Capability::Fork]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = cache.file(DIGEST).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_changed_component_or_another_name_is_no_cache() {
        let (_tmp, cache) = cache();
        cache.remember(DIGEST, &described());
        let other = DIGEST.replace('0', "f");
        assert!(cache.read(&other, "daytona").is_none(), "another digest");
        assert!(cache.read(DIGEST, "ssh").is_none(), "another manifest name");
        // A file renamed to another digest still names its own.
        std::fs::copy(cache.file(DIGEST).unwrap(), cache.file(&other).unwrap()).unwrap();
        assert!(cache.read(&other, "daytona").is_none());
        // Not a digest: never a path.
        assert!(cache.read("../x", "daytona").is_none());
    }

    #[test]
    fn a_corrupted_foreign_or_out_of_bounds_file_is_ignored() {
        let (_tmp, cache) = cache();
        cache.remember(DIGEST, &described());
        let path = cache.file(DIGEST).unwrap();
        let good = std::fs::read_to_string(&path).unwrap();
        let write = |text: &str| std::fs::write(&path, text).unwrap();
        write("{not json");
        assert!(cache.read(DIGEST, "daytona").is_none(), "corrupted");
        write(&good.replace(env!("CARGO_PKG_VERSION"), "0.0.0-other"));
        assert!(cache.read(DIGEST, "daytona").is_none(), "another cbx");
        write(&good.replace("\"format\": 1", "\"format\": 2"));
        assert!(cache.read(DIGEST, "daytona").is_none(), "another format");
        write(&good.replace("\"text\"", "\"colour\""));
        assert!(cache.read(DIGEST, "daytona").is_none(), "unknown kind");
        write(&good.replace("\"fork\"", "\"teleport\""));
        assert!(
            cache.read(DIGEST, "daytona").is_none(),
            "unknown capability"
        );
        write(&good.replace("\"0.1.0\"", "\"one\""));
        assert!(
            cache.read(DIGEST, "daytona").is_none(),
            "breaks describe's rules"
        );
        write(&good);
        assert!(cache.read(DIGEST, "daytona").is_some(), "restored");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
            assert!(
                cache.read(DIGEST, "daytona").is_none(),
                "writable by others"
            );
        }
    }
}
