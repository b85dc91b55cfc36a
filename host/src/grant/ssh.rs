//! The data plane's part of a grant: where a provider may send the user's files, commands and
//! `--env` values over SSH, and the key cbx logs in with.
//!
//! A manifest declares it in `[ssh]` (`manifest::SshDecl`): either the destinations the
//! service's sandboxes are reached at (Daytona's gateway), which the user may replace for a
//! self-hosted service (user config or the declared variable, never a repository) and narrow,
//! or "the values of my user-only options" (the ssh provider's `host` and `port`). The key is
//! never the provider's choice: only the value of a user-only option the manifest names.
//! [`SshGrant`] is the result; `grant::egress::authorize_ssh` checks every access a provider
//! mints against it.

use anyhow::Result;
use serde::Serialize;

use super::destination::DestinationPattern;
use super::manifest::SshDecl;
use crate::error::{ErrorKind, Failure};
use crate::provenance::{self, Definition, Value};

/// What the user chose about a provider's SSH destinations: only from the user's config file
/// (never a repository's).
#[derive(Debug, Clone, Default)]
pub struct SshChoices {
    /// `[providers.NAME.ssh] destinations`: replaces the manifest's (a self-hosted service).
    pub destinations: Option<Value<Vec<String>>>,
    /// `[providers.NAME.grant] ssh-destinations`: only these (each within the others).
    pub allow: Option<Vec<(String, Definition)>>,
    /// `[providers.NAME.ssh] agent`: let ssh use the user's agent.
    pub agent: Option<Value<bool>>,
}

/// Where a provider's SSH destinations come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum DestinationBasis {
    /// The manifest has no `[ssh]`: the provider may send nothing anywhere.
    None,
    /// The manifest lists them; the user may replace them with a config file or `env`.
    Listed {
        /// The variable that may replace them.
        env: Option<String>,
    },
    /// The values of the user's options: the one destination is the user's own choice.
    Options {
        /// The option holding the host.
        host: String,
        /// The option holding the port (22 without one).
        port: Option<String>,
    },
}

/// A destination the provider may return, and where it came from.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantedDestination {
    /// The host pattern and port.
    pub destination: DestinationPattern,
    /// Where it came from: the manifest, the user config, the variable, an option.
    #[serde(serialize_with = "destination_source")]
    pub source: Definition,
}

/// The key file the user configured, and where.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserKey {
    /// The path as the user wrote it (`~/…` or absolute).
    pub path: String,
    /// Where it was set.
    #[serde(serialize_with = "destination_source")]
    pub source: Definition,
}

/// A source as docs/cli.md documents it (the user's config file is `userConfig`).
fn destination_source<S: serde::Serializer>(d: &Definition, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Definition::UserFile(p) => provenance::tagged(s, "userConfig", Some(p)),
        other => serde::Serialize::serialize(other, s),
    }
}

/// The SSH part of one provider's effective grant.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SshGrant {
    /// The provider.
    #[serde(skip)]
    pub provider: String,
    /// Where the destinations come from.
    pub basis: DestinationBasis,
    /// The destinations minted access may name (for `Options`, filled in from the options by
    /// [`SshGrant::with_options`]).
    pub destinations: Vec<GrantedDestination>,
    /// The user-only option holding the key, if the provider logs in with the user's key.
    pub identity_option: Option<String>,
    /// The user's key: the value of that option (filled in by [`SshGrant::with_options`]).
    pub identity: Option<UserKey>,
    /// Whether ssh may use the user's agent (the user's opt-in).
    pub agent: bool,
}

impl SshGrant {
    /// The grant of a provider that may reach no SSH destination.
    pub fn none(provider: &str) -> SshGrant {
        SshGrant {
            provider: provider.to_string(),
            basis: DestinationBasis::None,
            destinations: Vec::new(),
            identity_option: None,
            identity: None,
            agent: false,
        }
    }

    /// Resolves the SSH grant of provider `provider` (manifest `origin`) declaring `decl`: the
    /// manifest's destinations, replaced by the user's config or the declared variable (read
    /// with `env`), narrowed by the user's grant.
    pub fn resolve(
        provider: &str,
        origin: &str,
        decl: Option<&SshDecl>,
        choices: &SshChoices,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SshGrant> {
        let mut grant = SshGrant::none(provider);
        grant.agent = choices.agent.as_ref().is_some_and(|a| a.val);
        let Some(decl) = decl else {
            refuse_choices(provider, choices, "declares no SSH destinations")?;
            return Ok(grant);
        };
        grant.identity_option = decl.identity_option.clone();
        if let Some(host) = &decl.host_option {
            refuse_choices(
                provider,
                choices,
                &format!(
                    "takes its SSH destination from your options `{host}`{}",
                    decl.port_option
                        .as_ref()
                        .map(|p| format!(" and `{p}`"))
                        .unwrap_or_default()
                ),
            )?;
            grant.basis = DestinationBasis::Options {
                host: host.clone(),
                port: decl.port_option.clone(),
            };
            return Ok(grant);
        }
        grant.basis = DestinationBasis::Listed {
            env: decl.env.clone(),
        };
        let chosen = listed(provider, origin, decl, choices, env)?;
        grant.destinations = narrowed(provider, chosen, choices)?;
        Ok(grant)
    }

    /// This grant with the destination and key that come from the user's `options` (name,
    /// value and where it was set), for a provider whose manifest says so.
    pub fn with_options(&self, options: &[(String, Value<String>)]) -> SshGrant {
        let value = |name: &str| {
            options
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| Value::new(v.val.trim().to_string(), v.definition.clone()))
                .filter(|v| !v.val.is_empty())
        };
        let mut grant = self.clone();
        if let DestinationBasis::Options { host, port } = &self.basis {
            let port = port
                .as_deref()
                .and_then(value)
                .and_then(|p| p.val.parse::<u16>().ok())
                .unwrap_or(22);
            grant.destinations = value(host)
                .and_then(|h| {
                    let destination = DestinationPattern::exact(&h.val, port).ok()?;
                    Some(GrantedDestination {
                        destination,
                        source: h.definition,
                    })
                })
                .into_iter()
                .collect();
        }
        grant.identity = self
            .identity_option
            .as_deref()
            .and_then(value)
            .map(|v| UserKey {
                path: v.val,
                source: v.definition,
            });
        grant
    }
}

/// Fails (exit 2) when the user configured SSH destinations for a provider whose manifest
/// does not take them (it has none, or they are the user's own options).
fn refuse_choices(provider: &str, choices: &SshChoices, why: &str) -> Result<()> {
    let place = choices
        .destinations
        .as_ref()
        .map(|d| d.definition.place())
        .or_else(|| {
            choices
                .allow
                .as_ref()
                .and_then(|a| a.first().map(|(_, d)| d.place()))
        });
    match place {
        None => Ok(()),
        Some(place) => Err(Failure::new(
            ErrorKind::Usage,
            format!(
                "{place}: sets SSH destinations for provider {provider}, which {why}; remove the setting"
            ),
        )
        .into()),
    }
}

/// The listed destinations of highest precedence: the manifest's, the user config's, the
/// declared variable's (comma-separated).
fn listed(
    provider: &str,
    origin: &str,
    decl: &SshDecl,
    choices: &SshChoices,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<GrantedDestination>> {
    let mut candidates = vec![Value::new(None, Definition::Manifest(origin.to_string()))];
    if let Some(user) = &choices.destinations {
        candidates.push(Value::new(Some(user.val.clone()), user.definition.clone()));
    }
    if let Some(var) = &decl.env
        && let Some(text) = env(var).filter(|v| !v.trim().is_empty())
    {
        let list = text.split(',').map(|s| s.trim().to_string()).collect();
        candidates.push(Value::new(Some(list), Definition::Env(var.clone())));
    }
    let chosen = provenance::pick(candidates).expect("the manifest is a candidate");
    let Some(texts) = chosen.val else {
        return Ok(decl
            .destinations
            .iter()
            .map(|d| GrantedDestination {
                destination: d.clone(),
                source: chosen.definition.clone(),
            })
            .collect());
    };
    texts
        .iter()
        .filter(|t| !t.is_empty())
        .map(|t| {
            let destination = DestinationPattern::parse(t).map_err(|m| {
                Failure::new(
                    ErrorKind::Usage,
                    format!(
                        "SSH destination of provider {provider} (from {}): {m}",
                        chosen.definition
                    ),
                )
            })?;
            Ok(GrantedDestination {
                destination,
                source: chosen.definition.clone(),
            })
        })
        .collect()
}

/// `chosen`, narrowed to the user's `ssh-destinations` if set: each must lie within one of
/// `chosen` (exit 2 otherwise: a grant can only narrow).
fn narrowed(
    provider: &str,
    chosen: Vec<GrantedDestination>,
    choices: &SshChoices,
) -> Result<Vec<GrantedDestination>> {
    let Some(allow) = &choices.allow else {
        return Ok(chosen);
    };
    let mut out = Vec::new();
    for (text, place) in allow {
        let refuse = |m: String| -> anyhow::Error {
            Failure::new(ErrorKind::Usage, format!("{}: {m}", place.place())).into()
        };
        let destination = DestinationPattern::parse(text).map_err(|m| refuse(m.clone()))?;
        if !chosen.iter().any(|c| c.destination.covers(&destination)) {
            let all: Vec<String> = chosen.iter().map(|c| c.destination.to_string()).collect();
            return Err(refuse(format!(
                "grant lists SSH destination `{destination}`, which is not within provider {provider}'s SSH destinations ({}); a grant can only narrow them",
                if all.is_empty() {
                    "none".to_string()
                } else {
                    all.join(", ")
                }
            )));
        }
        out.push(GrantedDestination {
            destination,
            source: place.clone(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(destinations: &[&str]) -> SshDecl {
        SshDecl {
            destinations: destinations
                .iter()
                .map(|d| DestinationPattern::parse(d).unwrap())
                .collect(),
            env: Some("ACME_SSH_GATEWAY".into()),
            host_option: None,
            port_option: None,
            identity_option: None,
            description: String::new(),
        }
    }

    fn shown(g: &SshGrant) -> Vec<String> {
        g.destinations
            .iter()
            .map(|d| d.destination.to_string())
            .collect()
    }

    fn user(list: &[&str]) -> Option<Value<Vec<String>>> {
        Some(Value::new(
            list.iter().map(|s| s.to_string()).collect(),
            Definition::UserFile("/c.toml:3".into()),
        ))
    }

    #[test]
    fn the_variable_beats_the_user_config_which_beats_the_manifest() {
        let d = decl(&["ssh.acme.example:22"]);
        let none = |_: &str| None;
        let g = SshGrant::resolve("acme", "m", Some(&d), &SshChoices::default(), &none).unwrap();
        assert_eq!(shown(&g), ["ssh.acme.example:22"]);
        assert_eq!(g.destinations[0].source, Definition::Manifest("m".into()));
        let choices = SshChoices {
            destinations: user(&["gw.self.example:2222"]),
            ..Default::default()
        };
        let g = SshGrant::resolve("acme", "m", Some(&d), &choices, &none).unwrap();
        assert_eq!(shown(&g), ["gw.self.example:2222"]);
        let env = |k: &str| (k == "ACME_SSH_GATEWAY").then(|| "127.0.0.1:2222, [::1]:2222".into());
        let g = SshGrant::resolve("acme", "m", Some(&d), &choices, &env).unwrap();
        assert_eq!(shown(&g), ["127.0.0.1:2222", "[::1]:2222"]);
        assert_eq!(
            g.destinations[0].source,
            Definition::Env("ACME_SSH_GATEWAY".into())
        );
        let bad = |_: &str| Some("127.0.0.1".to_string());
        let err = SshGrant::resolve("acme", "m", Some(&d), &choices, &bad).unwrap_err();
        assert_eq!(crate::error::exit_code(&err), 2);
        assert!(
            err.to_string().contains(
                "SSH destination of provider acme (from environment variable ACME_SSH_GATEWAY): `127.0.0.1` needs a port"
            ),
            "{err}"
        );
    }

    #[test]
    fn narrowing_can_only_narrow() {
        let d = decl(&["*.acme.example:22"]);
        let allow = |s: &str| SshChoices {
            allow: Some(vec![(s.into(), Definition::UserFile("/c.toml:7".into()))]),
            ..Default::default()
        };
        let g = SshGrant::resolve("acme", "m", Some(&d), &allow("eu.acme.example:22"), &|_| {
            None
        })
        .unwrap();
        assert_eq!(shown(&g), ["eu.acme.example:22"]);
        let err = SshGrant::resolve("acme", "m", Some(&d), &allow("evil.example:22"), &|_| None)
            .unwrap_err();
        assert_eq!(crate::error::exit_code(&err), 2);
        assert!(err.to_string().starts_with("/c.toml:7: grant lists SSH destination `evil.example:22`, which is not within provider acme's SSH destinations (*.acme.example:22)"), "{err}");
    }

    #[test]
    fn a_provider_without_ssh_or_with_the_users_own_host_takes_no_destinations_from_config() {
        let choices = SshChoices {
            destinations: user(&["x.example:22"]),
            ..Default::default()
        };
        let err = SshGrant::resolve("http-only", "m", None, &choices, &|_| None).unwrap_err();
        assert!(
            err.to_string()
                .contains("/c.toml:3: sets SSH destinations for provider http-only, which declares no SSH destinations"),
            "{err}"
        );
        let own = SshDecl {
            destinations: Vec::new(),
            env: None,
            host_option: Some("host".into()),
            port_option: Some("port".into()),
            identity_option: Some("identity-file".into()),
            description: String::new(),
        };
        let err = SshGrant::resolve("ssh", "m", Some(&own), &choices, &|_| None).unwrap_err();
        assert!(
            err.to_string()
                .contains("takes its SSH destination from your options `host` and `port`"),
            "{err}"
        );
        let g =
            SshGrant::resolve("ssh", "m", Some(&own), &SshChoices::default(), &|_| None).unwrap();
        assert!(g.destinations.is_empty());
        let opt = |v: &str| Value::new(v.to_string(), Definition::UserFile("/c.toml:2".into()));
        let g = g.with_options(&[
            ("host".into(), opt(" build.example ")),
            (
                "port".into(),
                Value::new("2200".into(), Definition::Default),
            ),
            ("identity-file".into(), opt("~/.ssh/id_ed25519")),
        ]);
        assert_eq!(shown(&g), ["build.example:2200"]);
        assert_eq!(
            g.destinations[0].source,
            Definition::UserFile("/c.toml:2".into())
        );
        assert_eq!(g.identity.unwrap().path, "~/.ssh/id_ed25519");
    }
}
