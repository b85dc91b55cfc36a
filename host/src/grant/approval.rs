//! What the user approved for each installed provider, pinned to the component's digest.
//!
//! `cbx providers install` shows what a provider asks for and records the user's approval in
//! `grants.toml` in the user's config. Every load checks that the component's sha256 is the
//! approved one and that the manifest asks for nothing beyond the approval; otherwise the
//! provider is refused until approved again.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::destination::DestinationPattern;
use super::manifest::{Manifest, SshDecl};
use crate::error::{ErrorKind, Failure};
use crate::paths;

/// One provider's approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Approval {
    /// The approved component's sha256 (hex).
    pub sha256: String,
    /// The approved manifest's sha256 (hex): any change to it needs a new approval.
    #[serde(default)]
    pub manifest_sha256: String,
    /// Where it was installed from.
    pub source: String,
    /// The provider's version at approval.
    pub version: String,
    /// When (RFC 3339).
    pub approved_at: String,
    /// Approved endpoints: name → default URL from the manifest.
    #[serde(default)]
    pub endpoints: BTreeMap<String, String>,
    /// Approved credentials.
    #[serde(default)]
    pub credentials: Vec<ApprovedCredential>,
    /// Whether the approved component imports WASI (for showing what a reinstall changes;
    /// absent from approvals written before cbx recorded it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasi: Option<bool>,
    /// The options the approved component declared (likewise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<String>>,
    /// Approved SSH destinations and the options they and the key come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<Box<ApprovedSsh>>,
}

/// Where the user approved a provider's minted SSH access to lead.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ApprovedSsh {
    /// Host patterns and ports.
    #[serde(default)]
    pub destinations: Vec<String>,
    /// The user-only option naming the user's own host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_option: Option<String>,
    /// The user-only option naming its port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_option: Option<String>,
    /// The user-only option naming the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_option: Option<String>,
}

impl ApprovedSsh {
    /// What `decl` declares, as approved.
    fn of(decl: &SshDecl) -> ApprovedSsh {
        ApprovedSsh {
            destinations: decl.destinations.iter().map(|d| d.to_string()).collect(),
            host_option: decl.host_option.clone(),
            port_option: decl.port_option.clone(),
            identity_option: decl.identity_option.clone(),
        }
    }

    /// What `decl` asks for beyond this approval.
    fn excess(&self, decl: &SshDecl) -> Vec<String> {
        let approved: Vec<DestinationPattern> = self
            .destinations
            .iter()
            .filter_map(|d| DestinationPattern::parse(d).ok())
            .collect();
        let mut out: Vec<String> = decl
            .destinations
            .iter()
            .filter(|d| !approved.iter().any(|a| a.covers(d)))
            .map(|d| format!("SSH destination `{d}`"))
            .collect();
        let options = [
            ("SSH host from option", &self.host_option, &decl.host_option),
            ("SSH port from option", &self.port_option, &decl.port_option),
            (
                "SSH key from option",
                &self.identity_option,
                &decl.identity_option,
            ),
        ];
        for (what, approved, wanted) in options {
            if let Some(w) = wanted
                && approved.as_ref() != Some(w)
            {
                out.push(format!("{what} `{w}`"));
            }
        }
        out
    }
}

/// A credential as approved: which variable, sent how, to which endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ApprovedCredential {
    /// The credential's name.
    pub name: String,
    /// Its environment variable.
    pub env: String,
    /// The endpoint it may be sent to.
    pub endpoint: String,
    /// The header.
    pub header: String,
    /// The header value format.
    pub format: String,
}

impl Approval {
    /// The approval that grants exactly what `manifest` asks for.
    pub fn of(manifest: &Manifest, sha256: &str, source: &str, version: &str) -> Approval {
        Approval {
            sha256: sha256.to_string(),
            manifest_sha256: manifest.sha256.clone(),
            source: source.to_string(),
            version: version.to_string(),
            approved_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            endpoints: manifest
                .endpoints
                .iter()
                .map(|e| (e.name.clone(), e.url.to_string()))
                .collect(),
            credentials: manifest
                .credentials
                .iter()
                .map(|c| ApprovedCredential {
                    name: c.name.clone(),
                    env: c.env.clone(),
                    endpoint: c.endpoint.clone(),
                    header: c.header.clone(),
                    format: c.format.clone(),
                })
                .collect(),
            wasi: None,
            options: None,
            ssh: manifest.ssh.as_ref().map(|d| Box::new(ApprovedSsh::of(d))),
        }
    }

    /// Whether this approval pins the manifest's hash (approvals written before cbx pinned
    /// manifests do not, and must be given again).
    pub fn pins_manifest(&self) -> bool {
        !self.manifest_sha256.is_empty()
    }

    /// What `manifest` asks for beyond this approval (empty: nothing).
    pub fn excess(&self, manifest: &Manifest) -> Vec<String> {
        let mut out = Vec::new();
        for e in &manifest.endpoints {
            match self.endpoints.get(&e.name) {
                None => out.push(format!("a new endpoint `{}` ({})", e.name, e.url)),
                Some(url) if url != e.url.as_str() => out.push(format!(
                    "endpoint `{}` moved from {url} to {}",
                    e.name, e.url
                )),
                Some(_) => {}
            }
        }
        for c in &manifest.credentials {
            let wanted = ApprovedCredential {
                name: c.name.clone(),
                env: c.env.clone(),
                endpoint: c.endpoint.clone(),
                header: c.header.clone(),
                format: c.format.clone(),
            };
            if !self.credentials.contains(&wanted) {
                out.push(format!(
                    "credential `{}` ({} as `{}` to `{}`)",
                    c.name, c.env, c.header, c.endpoint
                ));
            }
        }
        if let Some(decl) = &manifest.ssh {
            out.extend(
                self.ssh
                    .as_deref()
                    .cloned()
                    .unwrap_or_default()
                    .excess(decl),
            );
        }
        out
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantsFile {
    #[serde(default)]
    providers: BTreeMap<String, Approval>,
}

/// The grants file.
#[derive(Debug, Clone)]
pub struct Approvals {
    path: PathBuf,
}

impl Approvals {
    /// The grants file at `path`.
    pub fn new(path: PathBuf) -> Approvals {
        Approvals { path }
    }

    fn load(&self) -> Result<GrantsFile> {
        match fs_err::read_to_string(&self.path) {
            Ok(text) => toml::from_str(&text).map_err(|e| {
                Failure::new(
                    ErrorKind::Usage,
                    crate::diagnostic::Diagnostic::from_toml(
                        &self.path.display().to_string(),
                        &text,
                        &e,
                    )
                    .to_string(),
                )
                .into()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(GrantsFile::default()),
            Err(e) => Err(e.into()),
        }
    }

    fn save(&self, file: &GrantsFile) -> Result<()> {
        let mut text = String::from(
            "# Providers you approved with `cbx providers install`, and exactly what you approved.\n\
             # cbx refuses a provider whose component or manifest changed since; reinstall to review.\n\n",
        );
        text.push_str(&toml::to_string_pretty(file).context("encode grants")?);
        paths::write_private_atomic(&self.path, text.as_bytes())
    }

    /// The approval for `name`, if any.
    pub fn get(&self, name: &str) -> Result<Option<Approval>> {
        Ok(self.load()?.providers.remove(name))
    }

    /// Records an approval (replacing any earlier one).
    pub fn put(&self, name: &str, approval: Approval) -> Result<()> {
        let mut file = self.load()?;
        file.providers.insert(name.to_string(), approval);
        self.save(&file)
    }

    /// Forgets an approval.
    pub fn remove(&self, name: &str) -> Result<()> {
        let mut file = self.load()?;
        if file.providers.remove(name).is_some() {
            self.save(&file)?;
        }
        Ok(())
    }

    /// Whether `name`'s component `sha256` and `manifest` are covered by an approval: the
    /// approval, or why not.
    pub fn verdict(&self, name: &str, sha256: &str, manifest: &Manifest) -> Result<Verdict> {
        let Some(approval) = self.get(name)? else {
            return Ok(Verdict::Refused(
                Unapproved::Never,
                format!("provider {name} is installed but you have not approved it"),
            ));
        };
        if approval.sha256 != sha256 {
            return Ok(Verdict::Refused(
                Unapproved::Changed,
                format!(
                    "provider {name} changed since you approved it: its component's sha256 is {sha256}, you approved {}",
                    approval.sha256
                ),
            ));
        }
        let excess = approval.excess(manifest);
        if !excess.is_empty() {
            return Ok(Verdict::Refused(
                Unapproved::AsksForMore,
                format!(
                    "provider {name}'s manifest asks for more than you approved: {}",
                    excess.join("; ")
                ),
            ));
        }
        if !approval.pins_manifest() {
            return Ok(Verdict::Refused(
                Unapproved::Changed,
                format!(
                    "provider {name} was approved by an earlier cbx that did not pin its manifest (sha256 {}); approve it again to pin it",
                    manifest.sha256
                ),
            ));
        }
        if approval.manifest_sha256 != manifest.sha256 {
            return Ok(Verdict::Refused(
                Unapproved::Changed,
                format!(
                    "provider {name}'s manifest changed since you approved it (sha256 {}, you approved {})",
                    manifest.sha256, approval.manifest_sha256
                ),
            ));
        }
        Ok(Verdict::Approved(approval))
    }

    /// Fails (exit 7) unless `name`'s component `sha256` and `manifest` are covered by an
    /// approval.
    pub fn check(&self, name: &str, sha256: &str, manifest: &Manifest) -> Result<Approval> {
        match self.verdict(name, sha256, manifest)? {
            Verdict::Approved(approval) => Ok(approval),
            Verdict::Refused(_, message) => Err(Failure::new(ErrorKind::Denied, message)
                .hint(format!(
                    "review and approve it again with `cbx providers install <file> --manifest <manifest>` (`cbx providers inspect {name}` shows what it asks for)"
                ))
                .into()),
        }
    }
}

/// Whether an installed provider may run under its own grant.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Yes: the user approved exactly this.
    Approved(Approval),
    /// No, for this reason (and this message).
    Refused(Unapproved, String),
}

/// Why an installed provider may not run under its own grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unapproved {
    /// The user never approved it.
    Never,
    /// Its component or manifest changed since the approval.
    Changed,
    /// Its manifest asks for more than the user approved.
    AsksForMore,
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &str = "[provider]\nname = \"p\"\n[endpoints.api]\nurl = \"https://api.example.com\"\n[credentials.key]\nenv = \"P_KEY\"\nendpoint = \"api\"\nheader = \"Authorization\"\nformat = \"Bearer {value}\"\n";

    #[test]
    fn approval_pins_digest_and_capabilities() {
        let dir = tempfile::tempdir().unwrap();
        let approvals = Approvals::new(dir.path().join("grants.toml"));
        let m = Manifest::parse("m", M).unwrap();
        let err = approvals.check("p", "aa", &m).unwrap_err();
        assert_eq!(crate::error::exit_code(&err), 7);
        approvals
            .put("p", Approval::of(&m, "aa", "/x/p.wasm", "1.0.0"))
            .unwrap();
        approvals.check("p", "aa", &m).unwrap();
        let err = approvals.check("p", "bb", &m).unwrap_err();
        assert!(
            err.to_string().contains("changed since you approved it"),
            "{err}"
        );
        let wider = Manifest::parse(
            "m",
            &M.replace("https://api.example.com", "https://evil.example.com"),
        )
        .unwrap();
        let err = approvals.check("p", "aa", &wider).unwrap_err();
        assert!(
            err.to_string().contains(
                "endpoint `api` moved from https://api.example.com/ to https://evil.example.com/"
            ),
            "{err}"
        );
        let more = Manifest::parse(
            "m",
            &format!("{M}[endpoints.extra]\nurl = \"https://x.example\"\n"),
        )
        .unwrap();
        assert!(
            approvals
                .check("p", "aa", &more)
                .unwrap_err()
                .to_string()
                .contains("a new endpoint `extra`")
        );
        let quieter = Manifest::parse(
            "m",
            &M.replace("[credentials.key]", "[credentials.key]\nsecret = false"),
        )
        .unwrap();
        let err = approvals.check("p", "aa", &quieter).unwrap_err();
        assert!(
            err.to_string()
                .contains("p's manifest changed since you approved it"),
            "{err}"
        );
        approvals.remove("p").unwrap();
        assert!(approvals.get("p").unwrap().is_none());
    }

    /// Approvals written by earlier versions still load: without a manifest hash (refused
    /// until approved again, saying why), and without the component facts (loaded as absent).
    #[test]
    fn earlier_approvals_load_and_unpinned_ones_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grants.toml");
        let m = Manifest::parse("m", M).unwrap();
        let old = |pin: &str| {
            format!(
                "[providers.p]\nsha256 = \"aa\"\n{pin}source = \"/x/p.wasm\"\nversion = \"1.0.0\"\napproved-at = \"2025-01-01T00:00:00Z\"\n\n[providers.p.endpoints]\napi = \"https://api.example.com/\"\n\n[[providers.p.credentials]]\nname = \"key\"\nenv = \"P_KEY\"\nendpoint = \"api\"\nheader = \"Authorization\"\nformat = \"Bearer {{value}}\"\n"
            )
        };
        std::fs::write(&path, old("")).unwrap();
        let approvals = Approvals::new(path.clone());
        let approval = approvals.get("p").unwrap().unwrap();
        assert!(!approval.pins_manifest());
        assert_eq!((approval.wasi, approval.options), (None, None));
        let err = approvals.check("p", "aa", &m).unwrap_err();
        assert_eq!(crate::error::exit_code(&err), 7);
        assert!(
            err.to_string().contains(
                "provider p was approved by an earlier cbx that did not pin its manifest"
            ),
            "{err}"
        );
        std::fs::write(&path, old(&format!("manifest-sha256 = \"{}\"\n", m.sha256))).unwrap();
        approvals.check("p", "aa", &m).unwrap();
    }

    #[test]
    fn approval_pins_ssh_destinations_like_origins() {
        let dir = tempfile::tempdir().unwrap();
        let approvals = Approvals::new(dir.path().join("grants.toml"));
        let with = |ssh: &str| Manifest::parse("m", &format!("{M}[ssh]\n{ssh}")).unwrap();
        let m = with("destinations = [\"*.acme.example:22\"]\n");
        approvals
            .put("p", Approval::of(&m, "aa", "/x/p.wasm", "1.0.0"))
            .unwrap();
        approvals.check("p", "aa", &m).unwrap();
        let text = fs_err::read_to_string(dir.path().join("grants.toml")).unwrap();
        assert!(
            text.contains("[providers.p.ssh]\ndestinations = [\"*.acme.example:22\"]"),
            "{text}"
        );
        let narrower = with("destinations = [\"eu.acme.example:22\"]\n");
        assert!(
            approvals
                .get("p")
                .unwrap()
                .unwrap()
                .excess(&narrower)
                .is_empty()
        );
        // Narrower asks for nothing more, but it is a change to the manifest all the same.
        let err = approvals.check("p", "aa", &narrower).unwrap_err();
        assert!(
            err.to_string()
                .contains("p's manifest changed since you approved it"),
            "{err}"
        );
        for (wider, says) in [
            (
                "destinations = [\"*.acme.example:22\", \"127.0.0.2:2222\"]\n",
                "SSH destination `127.0.0.2:2222`",
            ),
            (
                "destinations = [\"*.example:22\"]\n",
                "SSH destination `*.example:22`",
            ),
            (
                "destinations = [\"*.acme.example:22\"]\nidentity-option = \"key\"\n",
                "SSH key from option `key`",
            ),
        ] {
            let manifest = if wider.contains("identity-option") {
                Manifest::parse(
                    "m",
                    &format!("{M}[options]\nuser-only = [\"key\"]\n[ssh]\n{wider}"),
                )
                .unwrap()
            } else {
                with(wider)
            };
            let err = approvals.check("p", "aa", &manifest).unwrap_err();
            assert_eq!(crate::error::exit_code(&err), 7);
            assert!(
                err.to_string()
                    .contains(&format!("asks for more than you approved: {says}")),
                "{err}"
            );
        }
        // An approval from before SSH destinations were pinned approves none.
        let old = Approval {
            ssh: None,
            ..Approval::of(&m, "aa", "/x", "1")
        };
        assert_eq!(old.excess(&m), ["SSH destination `*.acme.example:22`"]);
    }
}
