//! Configuration: the user's config file, a repository's `cbx.toml`, environment variables and
//! flags, merged into the choices one command runs with.
//!
//! Precedence, lowest first: provider defaults, user config, repository config, environment,
//! flags. A repository config may choose options, never where credentials are sent: it cannot
//! set endpoints. Every problem names the file and line to change.

pub mod diagnostic;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;
use toml::Spanned;

use self::diagnostic::Diagnostic;
use crate::error::{ErrorKind, Failure};
use crate::grant::EndpointOverrides;
use crate::provider::api::{OptionKind, OptionSpec};

/// The provider used when nothing chooses one.
pub const DEFAULT_PROVIDER: &str = "daytona";
/// The repository config file name.
pub const REPO_CONFIG: &str = "cbx.toml";
/// Default lease lifetime.
pub const DEFAULT_TTL: Duration = Duration::from_secs(90 * 60);
/// Default idle timeout (after which the provider stops the sandbox).
pub const DEFAULT_IDLE: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    provider: Option<Spanned<String>>,
    lease: Option<RawLease>,
    #[serde(default)]
    providers: BTreeMap<String, RawProviderConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLease {
    ttl: Option<Spanned<String>>,
    idle_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProviderConfig {
    #[serde(default)]
    options: BTreeMap<String, Spanned<toml::Value>>,
    endpoints: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    grant: Option<Spanned<RawGrant>>,
}

/// A user's narrowing of a provider's grant.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    endpoints: Option<Vec<Spanned<String>>>,
    credentials: Option<Vec<Spanned<String>>>,
}

/// One parsed config file.
#[derive(Debug)]
struct ConfigFile {
    path: PathBuf,
    source: String,
    raw: RawConfig,
}

impl ConfigFile {
    fn load(path: &Path) -> Result<Option<ConfigFile>> {
        let source = match fs_err::read_to_string(path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let shown = path.display().to_string();
        let raw: RawConfig = toml::from_str(&source).map_err(|e| {
            Failure::new(
                ErrorKind::Usage,
                Diagnostic::from_toml(&shown, &source, &e).to_string(),
            )
        })?;
        Ok(Some(ConfigFile {
            path: path.to_path_buf(),
            source,
            raw,
        }))
    }

    fn diagnostic(
        &self,
        span: std::ops::Range<usize>,
        message: impl Into<String>,
    ) -> anyhow::Error {
        Failure::new(
            ErrorKind::Usage,
            Diagnostic::new(
                &self.path.display().to_string(),
                &self.source,
                span,
                message,
            )
            .to_string(),
        )
        .into()
    }

    fn line_of(&self, span: std::ops::Range<usize>) -> usize {
        self.source[..span.start.min(self.source.len())]
            .matches('\n')
            .count()
            + 1
    }
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "where")]
pub enum Origin {
    /// The provider's default.
    Default,
    /// A config file and line.
    File(String),
    /// An environment variable.
    Env(String),
    /// A command-line flag.
    Flag(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(w) => f.write_str(w),
            Origin::Env(v) => write!(f, "environment variable {v}"),
            Origin::Flag(flag) => write!(f, "{flag}"),
        }
    }
}

/// A provider option's value and where it came from.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OptionValue {
    /// The option's name.
    pub name: String,
    /// Its value.
    pub value: String,
    /// Where the value came from.
    pub origin: Origin,
}

/// The user's and the repository's configuration.
#[derive(Debug)]
pub struct Config {
    user: Option<ConfigFile>,
    repo: Option<ConfigFile>,
}

impl Config {
    /// Loads the user config at `user_path` and the `cbx.toml` governing `cwd`, if any.
    pub fn load(user_path: &Path, cwd: &Path) -> Result<Config> {
        let user = ConfigFile::load(user_path)
            .with_context(|| format!("read user config {}", user_path.display()))?;
        let repo = match find_repo_config(cwd) {
            Some(path) => ConfigFile::load(&path)
                .with_context(|| format!("read repository config {}", path.display()))?,
            None => None,
        };
        if let Some(repo) = &repo {
            for (name, p) in &repo.raw.providers {
                if let Some(grant) = &p.grant {
                    return Err(repo.diagnostic(
                        grant.span(),
                        format!(
                            "a repository's {REPO_CONFIG} may not set providers.{name}.grant; grants belong in your user config ({})",
                            user_path.display()
                        ),
                    ));
                }
                if let Some(endpoints) = &p.endpoints {
                    return Err(repo.diagnostic(
                        endpoints.span(),
                        format!(
                            "a repository's {REPO_CONFIG} may not set providers.{name}.endpoints: it would choose where your credentials are sent. \
                             Set it in your user config ({}) or with --endpoint instead",
                            user_path.display()
                        ),
                    ));
                }
            }
        }
        Ok(Config { user, repo })
    }

    /// The repository config file in effect, if any.
    pub fn repo_path(&self) -> Option<&Path> {
        self.repo.as_ref().map(|r| r.path.as_path())
    }

    /// The provider to use: `flag`, else `CBX_PROVIDER`, else the repository's or user's
    /// `provider`, else Daytona.
    pub fn provider(&self, flag: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> String {
        if let Some(p) = flag {
            return p.to_string();
        }
        if let Some(p) = env("CBX_PROVIDER").filter(|p| !p.is_empty()) {
            return p;
        }
        for file in [&self.repo, &self.user].into_iter().flatten() {
            if let Some(p) = &file.raw.provider {
                return p.get_ref().clone();
            }
        }
        DEFAULT_PROVIDER.to_string()
    }

    /// The lease TTL and idle timeout: flags, else `CBX_TTL`/`CBX_IDLE_TIMEOUT`, else config.
    pub fn lease_times(
        &self,
        ttl_flag: Option<&str>,
        idle_flag: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Duration, Duration)> {
        let pick = |flag: Option<&str>,
                    flag_name: &str,
                    var: &str,
                    key: fn(&RawLease) -> &Option<Spanned<String>>,
                    default: Duration|
         -> Result<Duration> {
            if let Some(v) = flag {
                return parse_duration(v, &format!("--{flag_name}"));
            }
            if let Some(v) = env(var).filter(|v| !v.is_empty()) {
                return parse_duration(&v, &format!("environment variable {var}"));
            }
            for file in [&self.repo, &self.user].into_iter().flatten() {
                if let Some(v) = file.raw.lease.as_ref().and_then(|l| key(l).as_ref()) {
                    return parse_duration(v.get_ref(), "").map_err(|e| {
                        file.diagnostic(
                            v.span(),
                            format!(
                                "lease.{flag_name}: {}",
                                crate::error::failure(&e)
                                    .map_or(e.to_string(), |f| f.message.clone())
                            ),
                        )
                    });
                }
            }
            Ok(default)
        };
        let ttl = pick(ttl_flag, "ttl", "CBX_TTL", |l| &l.ttl, DEFAULT_TTL)?;
        let idle = pick(
            idle_flag,
            "idle-timeout",
            "CBX_IDLE_TIMEOUT",
            |l| &l.idle_timeout,
            DEFAULT_IDLE,
        )?;
        Ok((ttl, idle))
    }

    /// The endpoint URLs and grant narrowing the user chose for `provider` (never from a
    /// repository).
    pub fn endpoint_overrides(
        &self,
        provider: &str,
        flags: &[(String, String)],
    ) -> Result<EndpointOverrides> {
        let mut overrides = EndpointOverrides {
            flags: flags.to_vec(),
            ..Default::default()
        };
        if let Some(user) = &self.user
            && let Some(p) = user.raw.providers.get(provider)
            && let Some(grant) = &p.grant
        {
            let place = |span: std::ops::Range<usize>| {
                format!("{}:{}", user.path.display(), user.line_of(span))
            };
            let g = grant.get_ref();
            overrides.allow_endpoints = g.endpoints.as_ref().map(|l| {
                l.iter()
                    .map(|n| (n.get_ref().clone(), place(n.span())))
                    .collect()
            });
            overrides.allow_credentials = g.credentials.as_ref().map(|l| {
                l.iter()
                    .map(|n| (n.get_ref().clone(), place(n.span())))
                    .collect()
            });
        }
        if let Some(user) = &self.user
            && let Some(p) = user.raw.providers.get(provider)
            && let Some(endpoints) = &p.endpoints
        {
            for (name, url) in endpoints.get_ref() {
                overrides.user_config.push((
                    name.clone(),
                    url.get_ref().clone(),
                    format!("{}:{}", user.path.display(), user.line_of(url.span())),
                ));
            }
        }
        Ok(overrides)
    }

    /// Resolves `provider`'s options against the specs it declares: defaults, then user
    /// config, repository config, `CBX_<PROVIDER>_<OPTION>` variables and `--option` flags.
    /// Unknown options and badly typed values are errors that say where they were set.
    pub fn options(
        &self,
        provider: &str,
        specs: &[OptionSpec],
        user_only: &[String],
        flags: &[(String, String)],
        env_vars: &[(String, String)],
    ) -> Result<Vec<OptionValue>> {
        let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        let unknown = |name: &str, place: String| -> anyhow::Error {
            Failure::new(
                ErrorKind::Usage,
                format!(
                    "unknown option `{name}` for provider {provider} ({place}); it accepts: {}",
                    if known.is_empty() {
                        "no options".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            )
            .into()
        };
        let mut values: BTreeMap<String, OptionValue> = BTreeMap::new();
        for spec in specs {
            if let Some(d) = &spec.default {
                values.insert(
                    spec.name.clone(),
                    OptionValue {
                        name: spec.name.clone(),
                        value: d.clone(),
                        origin: Origin::Default,
                    },
                );
            }
        }
        for file in [&self.user, &self.repo].into_iter().flatten() {
            let Some(p) = file.raw.providers.get(provider) else {
                continue;
            };
            let from_repo = self.repo.as_ref().is_some_and(|r| std::ptr::eq(r, file));
            for (name, value) in &p.options {
                if from_repo && user_only.contains(name) {
                    return Err(file.diagnostic(
                        value.span(),
                        format!(
                            "a repository's {REPO_CONFIG} may not set option `{name}` of provider {provider}: it chooses where your files and keys go. \
                             Set it in your user config or with -o {name}=…"
                        ),
                    ));
                }
                let Some(spec) = specs.iter().find(|s| s.name == *name) else {
                    return Err(file.diagnostic(
                        value.span(),
                        format!(
                            "unknown option `{name}` for provider {provider}; it accepts: {}",
                            if known.is_empty() {
                                "no options".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                    ));
                };
                let text = match value.get_ref() {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => {
                        return Err(file.diagnostic(
                            value.span(),
                            format!(
                                "option `{name}` must be a string, integer or boolean, not {}",
                                other.type_str()
                            ),
                        ));
                    }
                };
                check_kind(spec, &text).map_err(|m| file.diagnostic(value.span(), m))?;
                let origin = Origin::File(format!(
                    "{}:{}",
                    file.path.display(),
                    file.line_of(value.span())
                ));
                values.insert(
                    name.clone(),
                    OptionValue {
                        name: name.clone(),
                        value: text,
                        origin,
                    },
                );
            }
        }
        let prefix = format!("CBX_{}_", provider.to_ascii_uppercase().replace('-', "_"));
        for (var, value) in env_vars {
            let Some(rest) = var.strip_prefix(&prefix) else {
                continue;
            };
            let name = rest.to_ascii_lowercase().replace('_', "-");
            let Some(spec) = specs.iter().find(|s| s.name == name) else {
                return Err(unknown(&name, format!("from environment variable {var}")));
            };
            check_kind(spec, value).map_err(|m| {
                Failure::new(
                    ErrorKind::Usage,
                    format!("{m} (from environment variable {var})"),
                )
            })?;
            values.insert(
                name.clone(),
                OptionValue {
                    name,
                    value: value.clone(),
                    origin: Origin::Env(var.clone()),
                },
            );
        }
        for (name, value) in flags {
            let Some(spec) = specs.iter().find(|s| s.name == *name) else {
                return Err(unknown(name, format!("from --option {name}={value}")));
            };
            check_kind(spec, value)
                .map_err(|m| Failure::new(ErrorKind::Usage, format!("{m} (from --option)")))?;
            values.insert(
                name.clone(),
                OptionValue {
                    name: name.clone(),
                    value: value.clone(),
                    origin: Origin::Flag(format!("--option {name}")),
                },
            );
        }
        Ok(values.into_values().collect())
    }
}

fn check_kind(spec: &OptionSpec, value: &str) -> Result<(), String> {
    match spec.kind {
        OptionKind::Text => Ok(()),
        OptionKind::Integer => value
            .trim()
            .parse::<i64>()
            .map(|_| ())
            .map_err(|_| format!("option `{}` must be an integer, got `{value}`", spec.name)),
        OptionKind::Boolean => match value.trim() {
            "true" | "false" => Ok(()),
            _ => Err(format!(
                "option `{}` must be true or false, got `{value}`",
                spec.name
            )),
        },
    }
}

/// Parses a duration like `90m`, `1h30m` or `45s`.
pub fn parse_duration(text: &str, place: &str) -> Result<Duration> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        let at = if place.is_empty() {
            String::new()
        } else {
            format!(" (from {place})")
        };
        Failure::new(
            ErrorKind::Usage,
            format!("`{text}` is not a duration{at}: {e}; write e.g. 90m, 1h30m or 45s"),
        )
    })?;
    Ok(d)
}

/// The `cbx.toml` governing `cwd`: in `cwd` or a parent, not above the repository root.
pub fn find_repo_config(cwd: &Path) -> Option<PathBuf> {
    let mut dir = Some(cwd);
    while let Some(d) = dir {
        let candidate = d.join(REPO_CONFIG);
        if candidate.is_file() {
            return Some(candidate);
        }
        if d.join(".git").exists() {
            return None;
        }
        dir = d.parent();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, kind: OptionKind, default: Option<&str>) -> OptionSpec {
        OptionSpec {
            name: name.into(),
            description: String::new(),
            kind,
            default: default.map(Into::into),
        }
    }

    fn setup(user: &str, repo: &str) -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        let user_path = dir.path().join("config.toml");
        std::fs::write(&user_path, user).unwrap();
        let repo_dir = dir.path().join("repo");
        std::fs::create_dir_all(repo_dir.join(".git")).unwrap();
        std::fs::write(repo_dir.join("cbx.toml"), repo).unwrap();
        let cfg = Config::load(&user_path, &repo_dir).unwrap_or_else(|e| panic!("{e:#}"));
        (dir, cfg)
    }

    #[test]
    fn precedence_default_user_repo_env_flag() {
        let specs = [
            spec("snapshot", OptionKind::Text, Some("")),
            spec("minutes", OptionKind::Integer, Some("60")),
        ];
        let (_d, cfg) = setup(
            "[providers.daytona.options]\nsnapshot = \"user\"\nminutes = 5\n",
            "[providers.daytona.options]\nsnapshot = \"repo\"\n",
        );
        let v = cfg.options("daytona", &specs, &[], &[], &[]).unwrap();
        assert_eq!(
            v.iter().map(|o| o.value.as_str()).collect::<Vec<_>>(),
            ["5", "repo"]
        );
        assert!(matches!(&v[1].origin, Origin::File(f) if f.ends_with("cbx.toml:2")));
        let v = cfg
            .options(
                "daytona",
                &specs,
                &[],
                &[("snapshot".into(), "flag".into())],
                &[("CBX_DAYTONA_SNAPSHOT".into(), "env".into())],
            )
            .unwrap();
        assert_eq!(v[1].value, "flag");
        let v = cfg
            .options(
                "daytona",
                &specs,
                &[],
                &[],
                &[("CBX_DAYTONA_SNAPSHOT".into(), "env".into())],
            )
            .unwrap();
        assert_eq!(v[1].origin, Origin::Env("CBX_DAYTONA_SNAPSHOT".into()));
    }

    #[test]
    fn unknown_option_in_repo_config_points_at_line() {
        let specs = [spec("snapshot", OptionKind::Text, None)];
        let (_d, cfg) = setup("", "# x\n[providers.daytona.options]\nsnapshott = \"a\"\n");
        let err = cfg
            .options("daytona", &specs, &[], &[], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("cbx.toml:3:13: unknown option `snapshott` for provider daytona; it accepts: snapshot"), "{err}");
    }

    #[test]
    fn unknown_option_from_env_and_flag() {
        let specs = [spec("snapshot", OptionKind::Text, None)];
        let (_d, cfg) = setup("", "");
        let err = cfg
            .options(
                "daytona",
                &specs,
                &[],
                &[],
                &[("CBX_DAYTONA_SNAP".into(), "x".into())],
            )
            .unwrap_err();
        assert!(err.to_string().contains("unknown option `snap` for provider daytona (from environment variable CBX_DAYTONA_SNAP)"), "{err}");
        let err = cfg
            .options("daytona", &specs, &[], &[("x".into(), "1".into())], &[])
            .unwrap_err();
        assert_eq!(crate::error::exit_code(&err), 2);
    }

    #[test]
    fn integer_options_are_checked() {
        let specs = [spec("minutes", OptionKind::Integer, None)];
        let (_d, cfg) = setup("", "");
        let err = cfg
            .options(
                "daytona",
                &specs,
                &[],
                &[("minutes".into(), "ten".into())],
                &[],
            )
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("option `minutes` must be an integer, got `ten`"),
            "{err}"
        );
    }

    #[test]
    fn repository_may_not_set_user_only_options() {
        let specs = [spec("host", OptionKind::Text, None)];
        let (_d, cfg) = setup("", "[providers.ssh.options]\nhost = \"evil.example\"\n");
        let err = cfg
            .options("ssh", &specs, &["host".into()], &[], &[])
            .unwrap_err();
        assert_eq!(crate::error::exit_code(&err), 2);
        assert!(
            err.to_string().contains(
                "cbx.toml:2:8: a repository's cbx.toml may not set option `host` of provider ssh"
            ),
            "{err}"
        );
        let (_d, cfg) = setup("[providers.ssh.options]\nhost = \"mine.example\"\n", "");
        assert_eq!(
            cfg.options("ssh", &specs, &["host".into()], &[], &[])
                .unwrap()[0]
                .value,
            "mine.example"
        );
    }

    #[test]
    fn repository_may_not_set_endpoints() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        std::fs::write(
            dir.path().join("cbx.toml"),
            "[providers.daytona.endpoints]\napi = \"https://evil.example/api\"\n",
        )
        .unwrap();
        let err = Config::load(&dir.path().join("none.toml"), dir.path()).unwrap_err();
        assert_eq!(crate::error::exit_code(&err), 2);
        let text = err.to_string();
        assert!(
            text.contains(
                "cbx.toml:1:1: a repository's cbx.toml may not set providers.daytona.endpoints"
            ),
            "{text}"
        );
    }

    #[test]
    fn user_endpoints_and_lease_times() {
        let (_d, cfg) = setup(
            "[lease]\nttl = \"2h\"\n[providers.daytona.endpoints]\napi = \"https://x.example/api\"\n",
            "[lease]\nidle-timeout = \"10m\"\n",
        );
        let o = cfg.endpoint_overrides("daytona", &[]).unwrap();
        assert_eq!(o.user_config[0].1, "https://x.example/api");
        let (ttl, idle) = cfg.lease_times(None, None, &|_| None).unwrap();
        assert_eq!((ttl.as_secs(), idle.as_secs()), (7200, 600));
        let err = cfg.lease_times(Some("soon"), None, &|_| None).unwrap_err();
        assert!(
            err.to_string()
                .contains("`soon` is not a duration (from --ttl)"),
            "{err}"
        );
    }
}
