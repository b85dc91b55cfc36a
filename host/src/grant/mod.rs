//! Capabilities: what one provider may do in this invocation, and the single place that
//! enforces it.
//!
//! The effective [`Grant`] is the provider's manifest narrowed by the user's configuration:
//! its endpoints (each base URL resolved from the manifest default, the endpoint's environment
//! variable, the user config or `--endpoint`) and the credentials the host will attach (read
//! from the environment, bound to one endpoint each). [`egress::authorize`] checks every
//! request a provider makes against it; [`http::HttpGateway`] performs only what it allows.

pub mod approval;
pub mod egress;
pub mod http;

use std::fmt;

use anyhow::Result;
use url::Url;

use crate::error::{ErrorKind, Failure};
use crate::provider::manifest::{Manifest, parse_endpoint_url};
use crate::redact::{Redactor, SECRET};

/// Where a granted endpoint's URL came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "where", rename_all = "camelCase")]
pub enum Source {
    /// The provider's manifest default.
    Manifest(String),
    /// An environment variable.
    Env(String),
    /// The user's config file.
    UserConfig(String),
    /// A command-line flag.
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Manifest(m) => write!(f, "manifest {m}"),
            Source::Env(v) => write!(f, "environment variable {v}"),
            Source::UserConfig(p) => write!(f, "user config {p}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// An endpoint the provider may reach: requests must lie under `url`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantedEndpoint {
    /// The endpoint's name in the manifest.
    pub name: String,
    /// The base URL.
    pub url: Url,
    /// Where the URL came from.
    pub source: Source,
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

/// User-chosen endpoint URLs, in increasing precedence after the manifest default.
#[derive(Debug, Clone, Default)]
pub struct EndpointOverrides {
    /// From the user's config file: (endpoint, url, file).
    pub user_config: Vec<(String, String, String)>,
    /// From `--endpoint NAME=URL`.
    pub flags: Vec<(String, String)>,
    /// User narrowing: if set, only these endpoints (name, where it was set) are granted.
    pub allow_endpoints: Option<Vec<(String, String)>>,
    /// User narrowing: if set, only these credentials (name, where it was set) are attached.
    pub allow_credentials: Option<Vec<(String, String)>>,
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
    /// Resolves the effective grant of `manifest`: endpoint URLs from `overrides` and `env`,
    /// credential values from `env`. Secret values are registered with `redactor`.
    pub fn resolve(
        manifest: &Manifest,
        overrides: &EndpointOverrides,
        env: &dyn Fn(&str) -> Option<String>,
        redactor: &Redactor,
    ) -> Result<Grant> {
        let provider = manifest.name.clone();
        for (name, _, file) in &overrides.user_config {
            if manifest.endpoint(name).is_none() {
                return Err(unknown_endpoint(
                    manifest,
                    name,
                    &format!("user config {file}"),
                ));
            }
        }
        for (name, _) in &overrides.flags {
            if manifest.endpoint(name).is_none() {
                return Err(unknown_endpoint(manifest, name, "--endpoint"));
            }
        }
        for (name, place) in overrides.allow_endpoints.iter().flatten() {
            if manifest.endpoint(name).is_none() {
                return Err(Failure::new(
                    ErrorKind::Usage,
                    format!(
                        "{place}: grant lists endpoint `{name}`, which provider {provider} does not declare; a grant can only narrow what the manifest declares"
                    ),
                )
                .into());
            }
        }
        for (name, place) in overrides.allow_credentials.iter().flatten() {
            if manifest.credential(name).is_none() {
                return Err(Failure::new(
                    ErrorKind::Usage,
                    format!(
                        "{place}: grant lists credential `{name}`, which provider {provider} does not declare; a grant can only narrow what the manifest declares"
                    ),
                )
                .into());
            }
        }
        let endpoint_allowed = |n: &str| {
            overrides
                .allow_endpoints
                .as_ref()
                .is_none_or(|l| l.iter().any(|(a, _)| a == n))
        };
        let credential_allowed = |n: &str| {
            overrides
                .allow_credentials
                .as_ref()
                .is_none_or(|l| l.iter().any(|(a, _)| a == n))
        };
        let mut endpoints = Vec::new();
        for decl in &manifest.endpoints {
            if !endpoint_allowed(&decl.name) {
                continue;
            }
            let mut url = decl.url.clone();
            let mut source = Source::Manifest(manifest.origin.clone());
            let mut choose = |text: &str, src: Source| -> Result<()> {
                url = parse_endpoint_url(text.trim()).map_err(|m| {
                    Failure::new(
                        ErrorKind::Usage,
                        format!(
                            "endpoint `{}` of provider {provider} (from {src}): {m}",
                            decl.name
                        ),
                    )
                })?;
                source = src;
                Ok(())
            };
            if let Some((_, text, file)) = overrides
                .user_config
                .iter()
                .rev()
                .find(|(n, _, _)| *n == decl.name)
            {
                choose(text, Source::UserConfig(file.clone()))?;
            }
            if let Some(var) = &decl.env
                && let Some(text) = env(var).filter(|v| !v.trim().is_empty())
            {
                choose(&text, Source::Env(var.clone()))?;
            }
            if let Some((_, text)) = overrides.flags.iter().rev().find(|(n, _)| *n == decl.name) {
                choose(text, Source::Flag(format!("--endpoint {}", decl.name)))?;
            }
            endpoints.push(GrantedEndpoint {
                name: decl.name.clone(),
                url,
                source,
            });
        }

        // Read every declared credential; register secrets even if unused, so a value that
        // shows up anywhere is scrubbed.
        let mut values = Vec::new();
        for decl in &manifest.credentials {
            let value = env(&decl.env)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty());
            if let Some(v) = &value
                && decl.secret
            {
                redactor.add(v, SECRET);
            }
            // A credential the user's grant leaves out is never part of the grant.
            let value = value.filter(|_| credential_allowed(&decl.name));
            values.push((decl, value));
        }
        let value_of = |name: &str| {
            values
                .iter()
                .find(|(d, _)| d.name == name)
                .and_then(|(_, v)| v.clone())
        };

        // Select: the first set credential of [auth] one-of, plus every other set credential.
        let auth_choice = manifest
            .auth
            .as_ref()
            .and_then(|a| a.one_of.iter().find(|n| value_of(n).is_some()).cloned());
        let mut auth_problem = None;
        if let Some(auth) = &manifest.auth
            && auth_choice.is_none()
        {
            let vars: Vec<String> = auth
                .one_of
                .iter()
                .filter_map(|n| manifest.credential(n).map(|c| c.env.clone()))
                .collect();
            auth_problem = Some(AuthProblem {
                message: format!(
                    "provider {provider} needs credentials: set {}",
                    join_or(&vars)
                ),
                hint: auth.hint.clone(),
            });
        }
        let mut credentials = Vec::new();
        for (decl, value) in &values {
            let Some(value) = value else { continue };
            let is_alternative = manifest
                .auth
                .as_ref()
                .is_some_and(|a| a.one_of.contains(&decl.name));
            if is_alternative && auth_choice.as_deref() != Some(decl.name.as_str()) {
                continue;
            }
            if !endpoints.iter().any(|e| e.name == decl.endpoint) {
                continue;
            }
            for required in &decl.requires {
                if value_of(required).is_none() && auth_problem.is_none() {
                    let req = manifest
                        .credential(required)
                        .map_or(required.clone(), |c| c.env.clone());
                    let what = manifest
                        .credential(required)
                        .map(|c| c.description.clone())
                        .filter(|d| !d.is_empty())
                        .unwrap_or_else(|| required.clone());
                    auth_problem = Some(AuthProblem {
                        message: format!(
                            "provider {provider}: {} is set but {req} is not; credential `{}` requires it",
                            decl.env, decl.name
                        ),
                        hint: Some(format!("set {req} ({what})")),
                    });
                }
            }
            credentials.push(BoundCredential {
                name: decl.name.clone(),
                env: decl.env.clone(),
                endpoint: decl.endpoint.clone(),
                header: decl.header.clone(),
                format: decl.format.clone(),
                secret: decl.secret,
                value: SecretValue(value.clone()),
            });
        }

        let mut reserved_headers: Vec<String> = ["authorization", "proxy-authorization", "cookie"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for decl in &manifest.credentials {
            let h = decl.header.to_ascii_lowercase();
            if !reserved_headers.contains(&h) {
                reserved_headers.push(h);
            }
        }

        Ok(Grant {
            provider,
            endpoints,
            credentials,
            reserved_headers,
            auth_problem,
        })
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
}

fn unknown_endpoint(manifest: &Manifest, name: &str, place: &str) -> anyhow::Error {
    let declared: Vec<&str> = manifest.endpoints.iter().map(|e| e.name.as_str()).collect();
    Failure::new(
        ErrorKind::Usage,
        format!(
            "{place} sets endpoint `{name}`, but provider {} declares no such endpoint (declared: {})",
            manifest.name,
            if declared.is_empty() { "none".into() } else { declared.join(", ") }
        ),
    )
    .into()
}

fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const DAYTONA: &str = include_str!("../../../providers/daytona/cbx-provider.toml");

    fn resolve(env: &[(&str, &str)], overrides: EndpointOverrides) -> Result<Grant> {
        let m = Manifest::parse("builtin:daytona", DAYTONA).unwrap();
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Grant::resolve(&m, &overrides, &|k| env.get(k).cloned(), &Redactor::new())
    }

    #[test]
    fn api_key_is_chosen_over_jwt_and_org_is_attached() {
        let g = resolve(
            &[
                ("DAYTONA_API_KEY", "k1"),
                ("DAYTONA_JWT_TOKEN", "j1"),
                ("DAYTONA_ORGANIZATION_ID", "o1"),
            ],
            EndpointOverrides::default(),
        )
        .unwrap();
        assert_eq!(g.credential_names(), ["api-key", "organization"]);
        assert!(g.require_auth().is_ok());
        assert_eq!(g.credentials[0].header_value(), "Bearer k1");
    }

    #[test]
    fn jwt_without_organization_fails_with_exit_3() {
        let g = resolve(&[("DAYTONA_JWT_TOKEN", "j1")], EndpointOverrides::default()).unwrap();
        let err = g.require_auth().unwrap_err();
        assert_eq!(crate::error::exit_code(&err), 3);
        let f = crate::error::failure(&err).unwrap();
        assert!(
            f.message
                .contains("DAYTONA_JWT_TOKEN is set but DAYTONA_ORGANIZATION_ID is not"),
            "{}",
            f.message
        );
        assert!(
            f.hint
                .as_deref()
                .unwrap()
                .starts_with("set DAYTONA_ORGANIZATION_ID")
        );
    }

    #[test]
    fn no_credentials_names_both_variables() {
        let g = resolve(&[], EndpointOverrides::default()).unwrap();
        let err = g.require_auth().unwrap_err();
        assert!(
            err.to_string()
                .contains("set DAYTONA_API_KEY or DAYTONA_JWT_TOKEN"),
            "{err}"
        );
    }

    #[test]
    fn endpoint_precedence_is_flag_env_user_manifest() {
        let mut o = EndpointOverrides {
            user_config: vec![(
                "api".into(),
                "https://user.example/api".into(),
                "config.toml".into(),
            )],
            ..Default::default()
        };
        let g = resolve(&[], o.clone()).unwrap();
        assert_eq!(g.endpoints[0].url.as_str(), "https://user.example/api");
        let g = resolve(&[("DAYTONA_API_URL", "https://env.example/api")], o.clone()).unwrap();
        assert_eq!(g.endpoints[0].source, Source::Env("DAYTONA_API_URL".into()));
        o.flags
            .push(("api".into(), "http://127.0.0.1:9/api".into()));
        let g = resolve(&[("DAYTONA_API_URL", "https://env.example/api")], o).unwrap();
        assert_eq!(g.endpoints[0].url.as_str(), "http://127.0.0.1:9/api");
    }

    #[test]
    fn cleartext_override_is_refused() {
        let err = resolve(
            &[("DAYTONA_API_URL", "http://evil.example/api")],
            EndpointOverrides::default(),
        )
        .unwrap_err();
        assert_eq!(crate::error::exit_code(&err), 2);
        assert!(
            err.to_string()
                .contains("from environment variable DAYTONA_API_URL"),
            "{err}"
        );
    }

    #[test]
    fn secrets_are_registered_for_redaction() {
        let m = Manifest::parse("builtin:daytona", DAYTONA).unwrap();
        let r = Redactor::new();
        Grant::resolve(
            &m,
            &EndpointOverrides::default(),
            &|k| (k == "DAYTONA_JWT_TOKEN").then(|| "jwt-secret-value".to_string()),
            &r,
        )
        .unwrap();
        assert_eq!(r.redact("x jwt-secret-value"), "x <redacted>");
    }
}
