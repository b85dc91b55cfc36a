//! How the effective grant is computed from a manifest, the user's choices and the
//! environment, one step per function: check the user's choices against the manifest, pick
//! each endpoint's URL, read the credentials, select the ones to attach, reserve the headers.

use anyhow::Result;

use super::manifest::{CredentialDecl, Manifest, RequestCaps, parse_endpoint_url};
use super::ssh::SshGrant;
use super::{
    AuthProblem, BoundCredential, EndpointOverrides, Grant, GrantedEndpoint, SecretValue, headers,
};
use crate::error::{ErrorKind, Failure};
use crate::provenance::{self, Definition, Value};
use crate::redact::{Redactor, SECRET};

/// Looks up an environment variable.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Grant {
    /// Resolves the effective grant of `manifest`: endpoint URLs from `overrides` and `env`,
    /// credential values from `env`. Secret values are registered with `redactor`.
    pub fn resolve(
        manifest: &Manifest,
        overrides: &EndpointOverrides,
        env: Lookup<'_>,
        redactor: &Redactor,
    ) -> Result<Grant> {
        check_overrides(manifest, overrides)?;
        let endpoints = endpoints(manifest, overrides, env)?;
        let values = read_credentials(manifest, overrides, env, redactor);
        let (credentials, auth_problem) = select_credentials(manifest, &values, &endpoints);
        let ssh = SshGrant::resolve(
            &manifest.name,
            &manifest.origin,
            manifest.ssh.as_ref(),
            &overrides.ssh,
            env,
        )?;
        Ok(Grant {
            provider: manifest.name.clone(),
            endpoints,
            credentials,
            reserved_headers: reserved_headers(manifest),
            auth_problem,
            requests: RequestCaps {
                per_call: narrowed(manifest.requests.per_call, overrides.requests.0),
                per_run: narrowed(manifest.requests.per_run, overrides.requests.1),
            },
            ssh,
        })
    }
}

/// The manifest's cap, lowered to the user's if the user set a lower one.
fn narrowed(manifest: u32, user: Option<u32>) -> u32 {
    user.map_or(manifest, |u| u.min(manifest))
}

/// Fails (exit 2) when the user names an endpoint or credential the manifest does not declare:
/// a user's choices can only narrow what the manifest declares.
fn check_overrides(manifest: &Manifest, overrides: &EndpointOverrides) -> Result<()> {
    for (name, url) in &overrides.urls {
        if manifest.endpoint(name).is_none() {
            let place = match &url.definition {
                Definition::Flag(_) => "--endpoint".to_string(),
                other => other.to_string(),
            };
            return Err(unknown_endpoint(manifest, name, &place));
        }
    }
    let narrowing = [
        ("endpoint", &overrides.allow_endpoints),
        ("credential", &overrides.allow_credentials),
    ];
    for (what, allowed) in narrowing {
        for (name, place) in allowed.iter().flatten() {
            let declared = match what {
                "endpoint" => manifest.endpoint(name).is_some(),
                _ => manifest.credential(name).is_some(),
            };
            if !declared {
                return Err(Failure::new(
                    ErrorKind::Usage,
                    format!(
                        "{}: grant lists {what} `{name}`, which provider {} does not declare; a grant can only narrow what the manifest declares",
                        place.place(),
                        manifest.name
                    ),
                )
                .into());
            }
        }
    }
    Ok(())
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

/// Whether the user's narrowing (`allowed`) lets `name` through.
fn allowed(list: &Option<Vec<(String, Definition)>>, name: &str) -> bool {
    list.as_ref()
        .is_none_or(|l| l.iter().any(|(a, _)| a == name))
}

/// The granted endpoints: each declared one the user's narrowing allows, at the URL of highest
/// precedence (manifest default, user config, the endpoint's variable, `--endpoint`). Every
/// chosen URL is validated, overridden or not.
fn endpoints(
    manifest: &Manifest,
    overrides: &EndpointOverrides,
    env: Lookup<'_>,
) -> Result<Vec<GrantedEndpoint>> {
    let mut endpoints = Vec::new();
    for decl in &manifest.endpoints {
        if !allowed(&overrides.allow_endpoints, &decl.name) {
            continue;
        }
        // The last URL the user's config file, or the flags, set for this endpoint.
        let last = |flag: bool| {
            overrides
                .urls
                .iter()
                .rev()
                .find(|(n, v)| {
                    *n == decl.name && matches!(v.definition, Definition::Flag(_)) == flag
                })
                .map(|(_, v)| v.clone())
        };
        let user = last(false);
        let var = decl.env.as_ref().and_then(|var| {
            env(var)
                .filter(|v| !v.trim().is_empty())
                .map(|text| Value::new(text, Definition::Env(var.clone())))
        });
        let flag = last(true);
        let mut candidates = vec![Value::new(
            decl.url.clone(),
            Definition::Manifest(manifest.origin.clone()),
        )];
        for candidate in [user, var, flag].into_iter().flatten() {
            let url = parse_endpoint_url(candidate.val.trim()).map_err(|m| {
                Failure::new(
                    ErrorKind::Usage,
                    format!(
                        "endpoint `{}` of provider {} (from {}): {m}",
                        decl.name, manifest.name, candidate.definition
                    ),
                )
            })?;
            candidates.push(Value::new(url, candidate.definition));
        }
        let url = provenance::pick(candidates).expect("the manifest default is a candidate");
        endpoints.push(GrantedEndpoint {
            name: decl.name.clone(),
            url: url.val,
            source: url.definition,
        });
    }
    Ok(endpoints)
}

/// Every declared credential with its value, if set and not left out by the user's narrowing.
/// Secret values are registered for redaction even when unused, so a value that shows up
/// anywhere is scrubbed.
fn read_credentials<'m>(
    manifest: &'m Manifest,
    overrides: &EndpointOverrides,
    env: Lookup<'_>,
    redactor: &Redactor,
) -> Vec<(&'m CredentialDecl, Option<String>)> {
    manifest
        .credentials
        .iter()
        .map(|decl| {
            let value = env(&decl.env)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty());
            if let Some(v) = &value
                && decl.secret
            {
                redactor.add(v, SECRET);
            }
            let value = value.filter(|_| allowed(&overrides.allow_credentials, &decl.name));
            (decl, value)
        })
        .collect()
}

/// The credentials to attach — the first set one of `[auth] one-of`, plus every other set
/// credential bound to a granted endpoint — and why authentication is impossible, if it is.
fn select_credentials(
    manifest: &Manifest,
    values: &[(&CredentialDecl, Option<String>)],
    endpoints: &[GrantedEndpoint],
) -> (Vec<BoundCredential>, Option<AuthProblem>) {
    let value_of = |name: &str| {
        values
            .iter()
            .find(|(d, _)| d.name == name)
            .and_then(|(_, v)| v.clone())
    };
    let auth_choice = manifest
        .auth
        .as_ref()
        .and_then(|a| a.one_of.iter().find(|n| value_of(n).is_some()).cloned());
    let mut auth_problem = missing_auth(manifest, auth_choice.is_some());
    let mut credentials = Vec::new();
    for (decl, value) in values {
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
                auth_problem = Some(missing_requirement(manifest, decl, required));
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
    (credentials, auth_problem)
}

/// The problem of a provider that needs authentication and has none of its credentials.
fn missing_auth(manifest: &Manifest, chosen: bool) -> Option<AuthProblem> {
    let auth = manifest.auth.as_ref().filter(|_| !chosen)?;
    let vars: Vec<String> = auth
        .one_of
        .iter()
        .filter_map(|n| manifest.credential(n).map(|c| c.env.clone()))
        .collect();
    Some(AuthProblem {
        message: format!(
            "provider {} needs credentials: set {}",
            manifest.name,
            join_or(&vars)
        ),
        hint: auth.hint.clone(),
    })
}

/// The problem of a credential set without one it requires.
fn missing_requirement(manifest: &Manifest, decl: &CredentialDecl, required: &str) -> AuthProblem {
    let req = manifest
        .credential(required)
        .map_or(required.to_string(), |c| c.env.clone());
    let what = manifest
        .credential(required)
        .map(|c| c.description.clone())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| required.to_string());
    AuthProblem {
        message: format!(
            "provider {}: {} is set but {req} is not; credential `{}` requires it",
            manifest.name, decl.env, decl.name
        ),
        hint: Some(format!("set {req} ({what})")),
    }
}

/// The headers a provider may never set: the standard authentication headers and every header
/// a declared credential is sent in.
fn reserved_headers(manifest: &Manifest) -> Vec<String> {
    let mut reserved: Vec<String> = headers::AUTHENTICATION
        .iter()
        .map(|s| s.to_string())
        .collect();
    for decl in &manifest.credentials {
        let h = decl.header.to_ascii_lowercase();
        if !reserved.contains(&h) {
            reserved.push(h);
        }
    }
    reserved
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
            urls: vec![(
                "api".into(),
                Value::new(
                    "https://user.example/api".into(),
                    Definition::UserFile("config.toml:2".into()),
                ),
            )],
            ..Default::default()
        };
        let g = resolve(&[], o.clone()).unwrap();
        assert_eq!(g.endpoints[0].url.as_str(), "https://user.example/api");
        let g = resolve(&[("DAYTONA_API_URL", "https://env.example/api")], o.clone()).unwrap();
        assert_eq!(
            g.endpoints[0].source,
            Definition::Env("DAYTONA_API_URL".into())
        );
        o.urls.push((
            "api".into(),
            Value::new(
                "http://127.0.0.1:9/api".into(),
                Definition::Flag("--endpoint api".into()),
            ),
        ));
        let g = resolve(&[("DAYTONA_API_URL", "https://env.example/api")], o).unwrap();
        assert_eq!(g.endpoints[0].url.as_str(), "http://127.0.0.1:9/api");
        let json = serde_json::to_string(
            &resolve(
                &[],
                EndpointOverrides {
                    urls: vec![(
                        "api".into(),
                        Value::new(
                            "https://user.example/api".into(),
                            Definition::UserFile("config.toml:2".into()),
                        ),
                    )],
                    ..Default::default()
                },
            )
            .unwrap()
            .endpoints,
        )
        .unwrap();
        assert_eq!(
            json,
            r#"[{"name":"api","url":"https://user.example/api","source":{"kind":"userConfig","where":"config.toml:2"}}]"#
        );
    }

    #[test]
    fn unknown_endpoints_and_narrowing_name_where_they_were_set() {
        let flag = EndpointOverrides {
            urls: vec![(
                "apii".into(),
                Value::new(
                    "https://x.example".into(),
                    Definition::Flag("--endpoint apii".into()),
                ),
            )],
            ..Default::default()
        };
        let err = resolve(&[], flag).unwrap_err().to_string();
        assert!(err.starts_with("--endpoint sets endpoint `apii`, but provider daytona declares no such endpoint (declared: api)"), "{err}");
        let narrowing = EndpointOverrides {
            allow_credentials: Some(vec![(
                "key".into(),
                Definition::UserFile("/c.toml:4".into()),
            )]),
            ..Default::default()
        };
        let err = resolve(&[], narrowing).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "/c.toml:4: grant lists credential `key`, which provider daytona does not declare"
            ),
            "{err}"
        );
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
