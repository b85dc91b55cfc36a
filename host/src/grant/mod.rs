//! Capabilities: what one provider may do in this invocation, and the single place that
//! enforces it.
//!
//! - [`manifest`]: what a provider asks for (`cbx-provider.toml`), validated.
//! - [`approval`]: what the user approved for an installed provider, pinned to its digest.
//! - [`changes`]: the facts an approval covers, and what changed between two of them.
//! - [`resolve`]: the effective [`Grant`] — the manifest narrowed by the user's configuration:
//!   its endpoints (each base URL from the manifest default, the user config, the endpoint's
//!   environment variable or `--endpoint`) and the credentials the host will attach (read from
//!   the environment, bound to one endpoint each).
//! - [`ssh`]: the data plane's part of the grant — the SSH destinations a provider may name
//!   and the user's key — with [`destination`] patterns.
//! - [`headers`]: the headers the host owns.
//! - [`egress`]: the one check every request a provider makes must pass, and the one check
//!   every SSH access it mints must pass.
//! - [`http`]: the gateway that performs only what the check allows.

pub mod approval;
pub mod changes;
pub mod destination;
pub mod egress;
pub mod headers;
pub mod http;
pub mod manifest;
pub mod resolve;
pub mod ssh;

use std::fmt;

use anyhow::Result;
use url::Url;

use self::manifest::RequestCaps;
use self::ssh::{SshChoices, SshGrant};
use crate::error::{ErrorKind, Failure};
use crate::provenance::{Definition, Value};
use crate::redact::SECRET;

/// An endpoint the provider may reach: requests must lie under `url`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantedEndpoint {
    /// The endpoint's name in the manifest.
    pub name: String,
    /// The base URL.
    pub url: Url,
    /// Where the URL came from.
    #[serde(serialize_with = "endpoint_source")]
    pub source: Definition,
}

/// An endpoint's source as docs/cli.md documents it: `manifest`, `env`, `userConfig` or `flag`.
fn endpoint_source<S: serde::Serializer>(d: &Definition, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Definition::UserFile(p) => crate::provenance::tagged(s, "userConfig", Some(p)),
        other => serde::Serialize::serialize(other, s),
    }
}

/// A credential value that never prints itself.
#[derive(Clone)]
pub struct SecretValue(String);

impl SecretValue {
    /// The value, for building the header the host sends. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SECRET)
    }
}

/// A credential the host attaches to requests for its endpoint.
#[derive(Debug, Clone)]
pub struct BoundCredential {
    /// The credential's name in the manifest.
    pub name: String,
    /// The environment variable it was read from.
    pub env: String,
    /// The endpoint it is bound to.
    pub endpoint: String,
    /// The header it is sent in.
    pub header: String,
    /// The header value template (`{value}` stands for the credential).
    pub format: String,
    /// Whether the value is secret.
    pub secret: bool,
    value: SecretValue,
}

impl BoundCredential {
    /// The raw value (for scrubbing it from responses). Never log it.
    pub fn secret_value(&self) -> &str {
        self.value.expose()
    }

    /// The header value to send.
    pub fn header_value(&self) -> String {
        self.format.replace("{value}", self.value.expose())
    }
}

/// What the user chose about a provider's grant: endpoint URLs (from the user's config file or
/// `--endpoint`, never from a repository) and narrowing.
#[derive(Debug, Clone, Default)]
pub struct EndpointOverrides {
    /// (endpoint, URL and where it was set), in the order they were read.
    pub urls: Vec<(String, Value<String>)>,
    /// User narrowing: if set, only these endpoints (name, where it was set) are granted.
    pub allow_endpoints: Option<Vec<(String, Definition)>>,
    /// User narrowing: if set, only these credentials (name, where it was set) are attached.
    pub allow_credentials: Option<Vec<(String, Definition)>>,
    /// User narrowing of the request caps (`[providers.NAME.limits]`): per call, per run.
    pub requests: (Option<u32>, Option<u32>),
    /// SSH destinations replaced or narrowed, and the agent opt-in.
    pub ssh: SshChoices,
}

/// The effective capabilities of one provider for one invocation.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The provider's name.
    pub provider: String,
    /// Endpoints it may reach.
    pub endpoints: Vec<GrantedEndpoint>,
    /// Credentials the host attaches (only those set and selected).
    pub credentials: Vec<BoundCredential>,
    /// Header names the provider may never set: all declared credential headers and the
    /// standard authentication headers.
    pub reserved_headers: Vec<String>,
    /// Why authentication is not possible, if it is not (checked before service calls).
    pub auth_problem: Option<AuthProblem>,
    /// How many HTTP requests it may make.
    pub requests: RequestCaps,
    /// Where its minted SSH access may lead, and the key cbx logs in with.
    pub ssh: SshGrant,
}

/// Why a provider cannot authenticate.
#[derive(Debug, Clone)]
pub struct AuthProblem {
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub hint: Option<String>,
}

impl Grant {
    /// The grant of a provider that may do nothing: no network, no credentials. A provider the
    /// user has not approved runs under it (to describe itself for review), whatever its
    /// manifest asks for.
    pub fn empty(provider: &str) -> Grant {
        Grant {
            provider: provider.to_string(),
            endpoints: Vec::new(),
            credentials: Vec::new(),
            reserved_headers: headers::AUTHENTICATION
                .iter()
                .map(|h| h.to_string())
                .collect(),
            auth_problem: None,
            requests: RequestCaps::DEFAULT,
            ssh: SshGrant::none(provider),
        }
    }

    /// Fails with exit code 3 unless the provider can authenticate.
    pub fn require_auth(&self) -> Result<()> {
        match &self.auth_problem {
            None => Ok(()),
            Some(p) => {
                let mut f = Failure::new(ErrorKind::Auth, p.message.clone());
                f.hint = p.hint.clone();
                Err(f.into())
            }
        }
    }

    /// The resolved base URL of each endpoint, for the provider's settings.
    pub fn endpoint_urls(&self) -> Vec<(String, String)> {
        self.endpoints
            .iter()
            .map(|e| (e.name.clone(), e.url.as_str().to_string()))
            .collect()
    }

    /// Names of the credentials the host will attach.
    pub fn credential_names(&self) -> Vec<String> {
        self.credentials.iter().map(|c| c.name.clone()).collect()
    }

    /// The endpoint called `name`, if granted.
    pub fn endpoint(&self, name: &str) -> Option<&GrantedEndpoint> {
        self.endpoints.iter().find(|e| e.name == name)
    }

    /// Whether the credential called `name` will be attached.
    pub fn attaches(&self, name: &str) -> bool {
        self.credentials.iter().any(|c| c.name == name)
    }
}
