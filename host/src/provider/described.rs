//! The describe cache: what a component said about itself (`describe`) and the capabilities
//! its exports offer, kept per component digest — and what it answered `configure` with (its
//! profile), per digest and settings — so that a command which may never call the provider
//! (the warm path of `cbx run --id` and `cbx ssh`) knows its options, features and profile
//! without loading it.
//!
//! Written (private, atomically) after every real `describe` and `configure`, next to the
//! compiled-component cache, under the component's sha256 — for a built-in provider the
//! digest `build.rs` computed — and for a profile the sha256 of the settings it answered
//! (options, endpoint URLs, credential names; never a credential's value). Read back only
//! when everything checks: the file is this cbx's format, written by this cbx version, for
//! this digest (and settings), its name is the manifest's, and it passes the same bounds the
//! call's answer is held to. Anything else is no cache, and the provider is loaded. Settings
//! a provider refused are never cached, so they are refused again, by the provider.
//!
//! Trust: the same as the compiled-component cache (`engine`), which holds native code cbx
//! runs: a directory only this user can write. Whoever can write there can already change
//! what the provider does; a description they forge changes no more than that (option
//! defaults, features), and the user's approval and grant are checked from the package and
//! the user's configuration, never from here.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::bindings::api::{OptionKind, OptionSpec, Profile, ProviderInfo, Settings};
use super::bounds::Bounded;
use super::capability::Capability;
use super::engine::trusted_cache_file;
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
struct ProfileRecord {
    format: u32,
    cbx: String,
    digest: String,
    settings: String,
    work_root: String,
    summary: Vec<(String, String)>,
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
        hex(digest).then(|| self.dir.join(format!("{digest}.json")))
    }

    fn profile_file(&self, digest: &str, settings: &str) -> Option<PathBuf> {
        (hex(digest) && hex(settings))
            .then(|| self.dir.join(format!("{digest}-{settings}.profile.json")))
    }

    /// What the component with sha256 `digest` answered `configure` with for `settings`, if
    /// this cbx cached it.
    pub fn read_profile(&self, digest: &str, settings: &Settings) -> Option<Profile> {
        let key = settings_key(settings);
        let path = self.profile_file(digest, &key)?;
        if !trusted_cache_file(&path) {
            return None;
        }
        let r: ProfileRecord = serde_json::from_slice(&fs_err::read(&path).ok()?).ok()?;
        let usable = r.format == FORMAT
            && r.cbx == env!("CARGO_PKG_VERSION")
            && r.digest == digest
            && r.settings == key;
        let profile = Profile {
            work_root: r.work_root,
            summary: r.summary,
        };
        (usable && profile.bounded().is_ok()).then_some(profile)
    }

    /// Caches `profile`, the answer of the component with sha256 `digest` to `settings`
    /// (best effort, unless the cache already holds exactly that).
    pub fn remember_profile(&self, digest: &str, settings: &Settings, profile: &Profile) {
        let key = settings_key(settings);
        let Some(path) = self.profile_file(digest, &key) else {
            return;
        };
        let record = ProfileRecord {
            format: FORMAT,
            cbx: env!("CARGO_PKG_VERSION").to_string(),
            digest: digest.to_string(),
            settings: key,
            work_root: profile.work_root.clone(),
            summary: profile.summary.clone(),
        };
        if let Ok(json) = serde_json::to_vec_pretty(&record) {
            store(&path, &json);
        }
    }

    /// The description of the component with sha256 `digest`, whose manifest names it `name`;
    /// `None` when there is none this cbx wrote and can use.
    pub fn read(&self, digest: &str, name: &str) -> Option<Described> {
        let path = self.file(digest)?;
        if !trusted_cache_file(&path) {
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
        if let Ok(json) = serde_json::to_vec_pretty(&to_record(digest, described)) {
            store(&path, &json);
        }
    }
}

/// Writes `json` to `path` unless it holds exactly that already (a failure is a debug line).
fn store(path: &Path, json: &[u8]) {
    if trusted_cache_file(path) && fs_err::read(path).is_ok_and(|old| old == json) {
        return;
    }
    if let Err(e) = paths::write_private_atomic(path, json) {
        tracing::debug!("could not cache what the provider said: {e:#}");
    }
}

fn hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The sha256 of `settings` (options, endpoint URLs and credential names, in order).
fn settings_key(settings: &Settings) -> String {
    let json = serde_json::to_vec(&(
        &settings.options,
        &settings.endpoints,
        &settings.credentials,
    ))
    .unwrap_or_default();
    crate::digest::sha256_hex(&json)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::bounds;

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

    fn settings(snapshot: &str) -> Settings {
        Settings {
            options: vec![("snapshot".into(), snapshot.into())],
            endpoints: vec![("api".into(), "https://api.example/api".into())],
            credentials: vec!["api-key".into()],
        }
    }

    #[test]
    fn a_profile_is_cached_per_digest_and_settings() {
        let (_tmp, cache) = cache();
        let profile = Profile {
            work_root: "cbx".into(),
            summary: vec![("snapshot".into(), "base".into())],
        };
        assert!(cache.read_profile(DIGEST, &settings("base")).is_none());
        cache.remember_profile(DIGEST, &settings("base"), &profile);
        let back = cache
            .read_profile(DIGEST, &settings("base"))
            .expect("cached");
        assert_eq!(back.work_root, "cbx");
        assert_eq!(back.summary, profile.summary);
        // Other settings (here another option value), or another component: not configured.
        assert!(cache.read_profile(DIGEST, &settings("other")).is_none());
        let other = DIGEST.replace('0', "f");
        assert!(cache.read_profile(&other, &settings("base")).is_none());
        // A damaged file is no cache.
        let key = settings_key(&settings("base"));
        let path = cache.profile_file(DIGEST, &key).unwrap();
        std::fs::write(&path, "[").unwrap();
        assert!(cache.read_profile(DIGEST, &settings("base")).is_none());
        let long = "x".repeat(bounds::MAX_VALUE + 1);
        cache.remember_profile(
            DIGEST,
            &settings("base"),
            &Profile {
                work_root: long,
                summary: vec![],
            },
        );
        assert!(
            cache.read_profile(DIGEST, &settings("base")).is_none(),
            "out of bounds"
        );
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
