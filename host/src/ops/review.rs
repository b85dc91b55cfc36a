//! What `cbx providers list` and `cbx providers inspect` report about providers: where each
//! comes from and whether it is approved, and — for one provider — its interface, what its
//! manifest declares, the user's approval, this invocation's effective grant and its options
//! with where each value came from.

use anyhow::Result;
use serde::Serialize;

use crate::context::Context;
use crate::grant::GrantedEndpoint;
use crate::grant::approval::{Approval, Approvals, Unapproved, Verdict};
use crate::grant::manifest::{CredentialDecl, EndpointDecl, Manifest, SshDecl};
use crate::grant::ssh::SshGrant;
use crate::provenance::Definition;
use crate::provider::api;
use crate::provider::inspect::Interface;
use crate::provider::registry::{self, Origin, ProviderPackage, SharedCredential};
use crate::provider::{Capability, Loaded};

/// One provider as `providers list` reports it. Field names are documented in docs/cli.md.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderEntry {
    /// Its name.
    pub name: String,
    /// cbx's version for a built-in provider; the version recorded at install otherwise.
    pub version: String,
    /// From its manifest.
    pub description: String,
    /// Where its files are.
    pub origin: Origin,
    /// Hex sha256 of its component.
    pub digest: String,
    /// `built in`, `approved`, `changed: needs approval`, …, with `, default` appended for the
    /// provider cbx would use.
    pub status: String,
}

/// Every known provider, built in first, without running any.
pub fn list(ctx: &Context) -> Result<Vec<ProviderEntry>> {
    let default = ctx.provider_name();
    let approvals = Approvals::new(ctx.dirs.grants_file());
    let mut entries = Vec::new();
    for p in registry::all(&ctx.dirs.installed_providers())? {
        let mut status = match &p.origin {
            Origin::Builtin => "built in".to_string(),
            Origin::File(_) => match approvals.verdict(p.name(), &p.digest, &p.manifest) {
                Ok(Verdict::Approved(_)) => "approved".into(),
                Ok(Verdict::Refused(Unapproved::Changed, _)) => "changed: needs approval".into(),
                Ok(Verdict::Refused(Unapproved::AsksForMore, _)) => {
                    "asks for more: needs approval".into()
                }
                Ok(Verdict::Refused(Unapproved::Never, _)) | Err(_) => "not approved".into(),
            },
        };
        if p.name() == default {
            status.push_str(", default");
        }
        entries.push(ProviderEntry {
            name: p.name().to_string(),
            version: version_of(&p),
            description: p.manifest.description.clone(),
            origin: p.origin.clone(),
            digest: p.digest.clone(),
            status,
        });
    }
    Ok(entries)
}

/// The provider's version as recorded at approval, or cbx's for a built-in one.
fn version_of(p: &ProviderPackage) -> String {
    match &p.origin {
        Origin::Builtin => env!("CARGO_PKG_VERSION").to_string(),
        Origin::File(_) => p.installed_version.clone().unwrap_or_else(|| "-".into()),
    }
}

/// What `providers inspect` reports. Field names are documented in docs/cli.md and stable.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    /// From `describe`.
    pub name: String,
    /// From `describe`.
    pub version: String,
    /// From `describe`.
    pub description: String,
    /// The contract this cbx speaks.
    pub contract: &'static str,
    /// Where its files are.
    pub origin: Origin,
    /// Hex sha256 of its component.
    pub digest: String,
    /// The component's size in bytes.
    pub size: usize,
    /// What it imports, read from the component.
    pub imports: Vec<Interface>,
    /// What it exports, read from the component.
    pub exports: Vec<Interface>,
    /// From `describe`.
    pub features: Vec<String>,
    /// The optional capabilities it exports (read from the component).
    pub capabilities: Vec<Capability>,
    /// Each option it declares, with this invocation's value.
    pub options: Vec<OptionReport>,
    /// What its manifest declares.
    pub manifest: ManifestReport,
    /// The approval in words.
    pub approval: String,
    /// The recorded approval, if any.
    pub approved: Option<Approval>,
    /// Whether it imports WASI.
    pub wasi: bool,
    /// This invocation's effective grant.
    pub grant: GrantReport,
    /// Its credential variables that another provider's manifest reads too (a warning: it
    /// would be sent that provider's secret).
    pub shared_credentials: Vec<SharedCredential>,
}

/// One option and its value.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OptionReport {
    /// Its name.
    pub name: String,
    /// `text`, `integer` or `boolean`.
    pub kind: &'static str,
    /// What it does.
    pub description: String,
    /// The provider's default.
    pub default: Option<String>,
    /// The value this invocation would use.
    pub value: Option<String>,
    /// Where the value came from.
    pub origin: Option<Definition>,
}

/// What a manifest declares.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestReport {
    /// Where the manifest came from.
    pub origin: String,
    /// Its endpoints.
    pub endpoints: Vec<EndpointDecl>,
    /// Its credentials.
    pub credentials: Vec<CredentialDecl>,
    /// Credentials that satisfy authentication, in order of preference.
    pub auth_one_of: Vec<String>,
    /// Where its sandboxes are reached over SSH (`null`: nowhere).
    pub ssh: Option<SshDecl>,
}

/// The effective grant.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantReport {
    /// Endpoints it may reach, with where each URL came from.
    pub endpoints: Vec<GrantedEndpoint>,
    /// Each declared credential: set, attached.
    pub credentials: Vec<GrantedCredential>,
    /// Why authentication is impossible, if it is.
    pub auth_problem: Option<String>,
    /// Where minted SSH access may lead, with where each destination came from, and the key.
    pub ssh: SshGrant,
}

/// A declared credential in this invocation. Never its value.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantedCredential {
    /// Its name.
    pub name: String,
    /// Its variable.
    pub env: String,
    /// Whether the variable is set.
    pub set: bool,
    /// Whether cbx will attach it.
    pub attached: bool,
    /// The header it is sent in.
    pub header: String,
    /// The endpoint it is sent to.
    pub endpoint: String,
    /// That endpoint's URL, if granted.
    pub endpoint_url: Option<String>,
}

/// Inspects provider `name`: loaded under its grant if approved, else under an empty grant
/// with the reason (credentials not needed).
pub async fn inspect(ctx: &Context, name: &str) -> Result<Inspection> {
    let review = ctx.review(name).await?;
    let loaded = &review.loaded;
    let package = loaded.package();
    let info = loaded.info();
    Ok(Inspection {
        name: info.name.clone(),
        version: info.version.clone(),
        description: info.description.clone(),
        contract: api::CONTRACT,
        origin: package.origin.clone(),
        digest: package.digest.clone(),
        size: package.component.len(),
        imports: loaded.imports().to_vec(),
        exports: loaded.exports().to_vec(),
        features: info.features.clone(),
        capabilities: loaded.fit().capabilities.clone(),
        options: options(ctx, loaded),
        manifest: manifest(&package.manifest),
        approval: approval(loaded, review.refused.as_deref()),
        approved: loaded.approval().cloned(),
        wasi: loaded.fit().wasi,
        grant: grant(ctx, loaded),
        shared_credentials: registry::shared_credentials(
            &ctx.dirs.installed_providers(),
            &package.manifest,
        )?,
    })
}

/// Each declared option with the value this invocation would use (none when the option
/// configuration is invalid).
fn options(ctx: &Context, loaded: &Loaded) -> Vec<OptionReport> {
    let values = ctx.options(loaded).unwrap_or_default();
    loaded
        .info()
        .options
        .iter()
        .map(|o| {
            let v = values.iter().find(|(n, _)| *n == o.name).map(|(_, v)| v);
            OptionReport {
                name: o.name.clone(),
                kind: o.kind.as_str(),
                description: o.description.clone(),
                default: o.default.clone(),
                value: v.map(|v| v.val.clone()),
                origin: v.map(|v| v.definition.clone()),
            }
        })
        .collect()
}

fn manifest(m: &Manifest) -> ManifestReport {
    ManifestReport {
        origin: m.origin.clone(),
        endpoints: m.endpoints.clone(),
        credentials: m.credentials.clone(),
        auth_one_of: m
            .auth
            .as_ref()
            .map(|a| a.one_of.clone())
            .unwrap_or_default(),
        ssh: m.ssh.clone(),
    }
}

fn approval(loaded: &Loaded, refused: Option<&str>) -> String {
    match (&loaded.package().origin, loaded.approval()) {
        (Origin::Builtin, _) => "built into cbx (trusted with cbx itself)".into(),
        (Origin::File(_), Some(a)) => format!(
            "approved {} (sha256 {}…, from {})",
            a.approved_at,
            &a.sha256[..12],
            a.source
        ),
        (Origin::File(_), None) => format!(
            "REFUSED: {} (shown with an empty grant)",
            refused.unwrap_or("not approved")
        ),
    }
}

fn grant(ctx: &Context, loaded: &Loaded) -> GrantReport {
    let grant = loaded.grant();
    GrantReport {
        endpoints: grant.endpoints.clone(),
        credentials: loaded
            .package()
            .manifest
            .credentials
            .iter()
            .map(|c| GrantedCredential {
                name: c.name.clone(),
                env: c.env.clone(),
                set: ctx.var(&c.env).is_some_and(|v| !v.trim().is_empty()),
                attached: grant.attaches(&c.name),
                header: c.header.clone(),
                endpoint: c.endpoint.clone(),
                endpoint_url: grant.endpoint(&c.endpoint).map(|e| e.url.to_string()),
            })
            .collect(),
        auth_problem: grant.auth_problem.as_ref().map(|p| p.message.clone()),
        ssh: grant
            .ssh
            .with_options(&ctx.options(loaded).unwrap_or_default()),
    }
}
