//! Configuration: the user's config file, a repository's `cbx.toml`, environment variables and
//! flags, merged into the choices one command runs with.
//!
//! Precedence, lowest first: defaults, user config, repository config, environment, flags —
//! written once, in [`crate::provenance`]; every getter returns a [`Value`] that says where it
//! came from. A repository config may choose options, never where credentials or files are
//! sent: it cannot set endpoints, SSH destinations or grants. Every problem names the file and
//! line to change.

mod durations;
mod options;
mod run;
mod shard;
mod sync;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;
use toml::Spanned;

use crate::diagnostic::Diagnostic;
use crate::environment::Environment;
use crate::error::{ErrorKind, Failure};
use crate::grant::EndpointOverrides;
use crate::grant::destination::DestinationPattern;
use crate::provenance::{self, Definition, Value};

pub use self::durations::{
    DurationRange, IDLE_RANGE, READY_RANGE, TTL_RANGE, parse_duration, parse_duration_in,
};

/// The provider used when nothing chooses one.
pub const DEFAULT_PROVIDER: &str = "daytona";
/// The repository config file name.
pub const REPO_CONFIG: &str = "cbx.toml";
/// Default lease lifetime.
pub const DEFAULT_TTL: Duration = Duration::from_secs(90 * 60);
/// Default idle timeout (after which the provider stops the sandbox).
pub const DEFAULT_IDLE: Duration = Duration::from_secs(30 * 60);
/// Default time to wait for a sandbox to become ready.
pub const DEFAULT_READY: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    provider: Option<Spanned<String>>,
    lease: Option<RawLease>,
    sync: Option<RawSync>,
    shard: Option<shard::RawShard>,
    run: Option<run::RawRun>,
    #[serde(default)]
    providers: BTreeMap<String, RawProviderConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSync {
    transport: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLease {
    ttl: Option<Spanned<String>>,
    idle_timeout: Option<Spanned<String>>,
    ready_timeout: Option<Spanned<String>>,
}

/// The lease times a command runs with, each checked against its range, with where it came
/// from.
#[derive(Debug, Clone)]
pub struct LeaseTimes {
    /// Lifetime.
    pub ttl: Value<Duration>,
    /// Idle timeout (zero: never).
    pub idle: Value<Duration>,
    /// How long to wait for a sandbox to become ready.
    pub ready: Value<Duration>,
}

/// The lease flags of one command (`None`: not given).
#[derive(Debug, Clone, Copy, Default)]
pub struct LeaseFlags<'a> {
    /// `--ttl`.
    pub ttl: Option<&'a str>,
    /// `--idle-timeout`.
    pub idle: Option<&'a str>,
    /// `--ready-timeout`.
    pub ready: Option<&'a str>,
}

/// One lease time setting: its name (flag and config key), variable, key, default and range.
struct LeaseTimeSetting {
    name: &'static str,
    var: &'static str,
    key: fn(&RawLease) -> &Option<Spanned<String>>,
    default: Duration,
    range: DurationRange,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProviderConfig {
    #[serde(default)]
    options: BTreeMap<String, Spanned<toml::Value>>,
    endpoints: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    grant: Option<Spanned<RawGrant>>,
    ssh: Option<Spanned<RawSsh>>,
    limits: Option<Spanned<RawLimits>>,
}

/// A user's lowering of a provider's request caps.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLimits {
    requests_per_call: Option<Spanned<u32>>,
    requests_per_run: Option<Spanned<u32>>,
}

/// A user's narrowing of a provider's grant.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawGrant {
    endpoints: Option<Vec<Spanned<String>>>,
    credentials: Option<Vec<Spanned<String>>>,
    ssh_destinations: Option<Vec<Spanned<String>>>,
}

/// A user's choices about a provider's SSH connections.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSsh {
    destinations: Option<Spanned<Vec<Spanned<String>>>>,
    agent: Option<Spanned<bool>>,
}

/// Whose config file it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// The user's own.
    User,
    /// A repository's `cbx.toml`.
    Repo,
}

/// One parsed config file.
#[derive(Debug)]
struct ConfigFile {
    path: PathBuf,
    source: String,
    raw: RawConfig,
    scope: Scope,
}

impl ConfigFile {
    fn load(path: &Path, scope: Scope) -> Result<Option<ConfigFile>> {
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
            scope,
        }))
    }

    fn diagnostic(&self, span: Range<usize>, message: impl Into<String>) -> anyhow::Error {
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

    /// The definition of a value at `span`: this file and the line.
    fn definition(&self, span: Range<usize>) -> Definition {
        let line = self.source[..span.start.min(self.source.len())]
            .matches('\n')
            .count()
            + 1;
        let place = format!("{}:{line}", self.path.display());
        match self.scope {
            Scope::User => Definition::UserFile(place),
            Scope::Repo => Definition::RepoFile(place),
        }
    }

    /// What this file says about provider `name`.
    fn provider(&self, name: &str) -> Option<&RawProviderConfig> {
        self.raw.providers.get(name)
    }

    /// Refuses what only the user may choose: endpoints, SSH settings, grants and request caps.
    fn check_repository_limits(&self, user_path: &Path) -> Result<()> {
        for (name, p) in &self.raw.providers {
            if let Some(ssh) = &p.ssh {
                return Err(self.diagnostic(
                    ssh.span(),
                    format!(
                        "a repository's {REPO_CONFIG} may not set providers.{name}.ssh: it would choose where your files, commands and keys go. \
                         Set it in your user config ({}) instead",
                        user_path.display()
                    ),
                ));
            }
            if let Some(limits) = &p.limits {
                return Err(self.diagnostic(
                    limits.span(),
                    format!(
                        "a repository's {REPO_CONFIG} may not set providers.{name}.limits; they belong in your user config ({})",
                        user_path.display()
                    ),
                ));
            }
            if let Some(grant) = &p.grant {
                return Err(self.diagnostic(
                    grant.span(),
                    format!(
                        "a repository's {REPO_CONFIG} may not set providers.{name}.grant; grants belong in your user config ({})",
                        user_path.display()
                    ),
                ));
            }
            if let Some(endpoints) = &p.endpoints {
                return Err(self.diagnostic(
                    endpoints.span(),
                    format!(
                        "a repository's {REPO_CONFIG} may not set providers.{name}.endpoints: it would choose where your credentials are sent. \
                         Set it in your user config ({}) or with --endpoint instead",
                        user_path.display()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The user's and the repository's configuration.
#[derive(Debug)]
pub struct Config {
    user: Option<ConfigFile>,
    repo: Option<ConfigFile>,
}

/// A value read from one of the layers, before it is parsed: its text and, from a file, the
/// file and span to point a diagnostic at.
type Layered<'a> = Value<Option<(String, Option<(&'a ConfigFile, Range<usize>)>)>>;

impl Config {
    /// Loads the user config at `user_path` and the `cbx.toml` governing `cwd` (in `cwd` or a
    /// parent, not above `repo_root`, the repository `cwd` is in).
    pub fn load(user_path: &Path, cwd: &Path, repo_root: Option<&Path>) -> Result<Config> {
        let user = ConfigFile::load(user_path, Scope::User)
            .with_context(|| format!("read user config {}", user_path.display()))?;
        let repo = match find_repo_config(cwd, repo_root) {
            Some(path) => ConfigFile::load(&path, Scope::Repo)
                .with_context(|| format!("read repository config {}", path.display()))?,
            None => None,
        };
        if let Some(repo) = &repo {
            repo.check_repository_limits(user_path)?;
        }
        Ok(Config { user, repo })
    }

    /// The repository config file in effect, if any.
    pub fn repo_path(&self) -> Option<&Path> {
        self.repo.as_ref().map(|r| r.path.as_path())
    }

    /// The files, lowest precedence first.
    fn files(&self) -> impl Iterator<Item = &ConfigFile> {
        [&self.user, &self.repo].into_iter().flatten()
    }

    /// The provider to use: `--provider`, else `CBX_PROVIDER`, else the repository's or user's
    /// `provider`, else Daytona.
    pub fn provider(&self, flag: Option<&str>, env: &Environment) -> Value<String> {
        let mut candidates = vec![Value::new(
            DEFAULT_PROVIDER.to_string(),
            Definition::Default,
        )];
        candidates.extend(self.files().filter_map(|file| {
            let p = file.raw.provider.as_ref()?;
            Some(Value::new(p.get_ref().clone(), file.definition(p.span())))
        }));
        candidates.extend(
            env.var("CBX_PROVIDER")
                .filter(|p| !p.is_empty())
                .map(|p| Value::new(p, Definition::Env("CBX_PROVIDER".into()))),
        );
        candidates
            .extend(flag.map(|p| Value::new(p.to_string(), Definition::Flag("--provider".into()))));
        provenance::pick(candidates).expect("the default is a candidate")
    }

    /// The lease lifetime, idle timeout and ready timeout: flags, else `CBX_TTL`,
    /// `CBX_IDLE_TIMEOUT`, `CBX_READY_TIMEOUT`, else config (`[lease]` `ttl`, `idle-timeout`,
    /// `ready-timeout`), else the defaults. A value outside its range is refused (exit 2)
    /// naming the range and where it was set.
    pub fn lease_times(&self, flags: LeaseFlags<'_>, env: &Environment) -> Result<LeaseTimes> {
        let setting = |name, var, key, default, range| LeaseTimeSetting {
            name,
            var,
            key,
            default,
            range,
        };
        Ok(LeaseTimes {
            ttl: self.lease_time(
                flags.ttl,
                &setting("ttl", "CBX_TTL", |l| &l.ttl, DEFAULT_TTL, TTL_RANGE),
                env,
            )?,
            idle: self.lease_time(
                flags.idle,
                &setting(
                    "idle-timeout",
                    "CBX_IDLE_TIMEOUT",
                    |l| &l.idle_timeout,
                    DEFAULT_IDLE,
                    IDLE_RANGE,
                ),
                env,
            )?,
            ready: self.lease_time(
                flags.ready,
                &setting(
                    "ready-timeout",
                    "CBX_READY_TIMEOUT",
                    |l| &l.ready_timeout,
                    DEFAULT_READY,
                    READY_RANGE,
                ),
                env,
            )?,
        })
    }

    /// One lease time, from the layer of highest precedence (only that one is parsed).
    fn lease_time(
        &self,
        flag: Option<&str>,
        setting: &LeaseTimeSetting,
        env: &Environment,
    ) -> Result<Value<Duration>> {
        let mut candidates: Vec<Layered<'_>> = vec![Value::new(None, Definition::Default)];
        for file in self.files() {
            if let Some(v) = file
                .raw
                .lease
                .as_ref()
                .and_then(|l| (setting.key)(l).as_ref())
            {
                let text = (v.get_ref().clone(), Some((file, v.span())));
                candidates.push(Value::new(Some(text), file.definition(v.span())));
            }
        }
        if let Some(text) = env.var(setting.var).filter(|v| !v.is_empty()) {
            candidates.push(Value::new(
                Some((text, None)),
                Definition::Env(setting.var.into()),
            ));
        }
        if let Some(text) = flag {
            let definition = Definition::Flag(format!("--{}", setting.name));
            candidates.push(Value::new(Some((text.to_string(), None)), definition));
        }
        let chosen = provenance::pick(candidates).expect("the default is a candidate");
        let duration = match &chosen.val {
            None => setting.default,
            Some((text, None)) => {
                parse_duration_in(text, &chosen.definition.place(), setting.range)?
            }
            Some((text, Some((file, span)))) => parse_duration_in(text, "", setting.range)
                .map_err(|e| {
                    let why =
                        crate::error::failure(&e).map_or(e.to_string(), |f| f.message.clone());
                    file.diagnostic(span.clone(), format!("lease.{}: {why}", setting.name))
                })?,
        };
        Ok(Value::new(duration, chosen.definition))
    }

    /// The endpoint URLs and grant narrowing the user chose for `provider` (never from a
    /// repository), with the `--endpoint` flags after the user config's URLs.
    pub fn endpoint_overrides(
        &self,
        provider: &str,
        flags: &[(String, String)],
    ) -> Result<EndpointOverrides> {
        let mut overrides = EndpointOverrides::default();
        if let Some(user) = &self.user
            && let Some(p) = user.provider(provider)
        {
            if let Some(grant) = &p.grant {
                let named = |l: &Vec<Spanned<String>>| -> Vec<(String, Definition)> {
                    l.iter()
                        .map(|n| (n.get_ref().clone(), user.definition(n.span())))
                        .collect()
                };
                overrides.allow_endpoints = grant.get_ref().endpoints.as_ref().map(named);
                overrides.allow_credentials = grant.get_ref().credentials.as_ref().map(named);
                let allow_ssh = grant.get_ref().ssh_destinations.as_ref();
                check_destinations(user, allow_ssh.into_iter().flatten())?;
                overrides.ssh.allow = allow_ssh.map(named);
            }
            if let Some(ssh) = &p.ssh {
                let ssh = ssh.get_ref();
                if let Some(list) = &ssh.destinations {
                    check_destinations(user, list.get_ref())?;
                    let texts = list.get_ref().iter().map(|d| d.get_ref().clone()).collect();
                    overrides.ssh.destinations =
                        Some(Value::new(texts, user.definition(list.span())));
                }
                overrides.ssh.agent = ssh
                    .agent
                    .as_ref()
                    .map(|a| Value::new(*a.get_ref(), user.definition(a.span())));
            }
            if let Some(limits) = &p.limits {
                overrides.requests = user_limits(user, limits.get_ref())?;
            }
            for (name, url) in p.endpoints.iter().flat_map(|e| e.get_ref()) {
                let value = Value::new(url.get_ref().clone(), user.definition(url.span()));
                overrides.urls.push((name.clone(), value));
            }
        }
        for (name, url) in flags {
            let value = Value::new(url.clone(), Definition::Flag(format!("--endpoint {name}")));
            overrides.urls.push((name.clone(), value));
        }
        Ok(overrides)
    }
}

/// The request caps a user's `[providers.NAME.limits]` sets (each at least 1).
fn user_limits(file: &ConfigFile, limits: &RawLimits) -> Result<(Option<u32>, Option<u32>)> {
    let check = |v: &Option<Spanned<u32>>, key: &str| -> Result<Option<u32>> {
        match v {
            Some(v) if *v.get_ref() == 0 => Err(file.diagnostic(
                v.span(),
                format!("limits.{key} must be at least 1 (it can only lower the provider's cap)"),
            )),
            Some(v) => Ok(Some(*v.get_ref())),
            None => Ok(None),
        }
    };
    Ok((
        check(&limits.requests_per_call, "requests-per-call")?,
        check(&limits.requests_per_run, "requests-per-run")?,
    ))
}

/// Fails with a diagnostic at the first of `list` that is not an SSH destination pattern.
fn check_destinations<'a>(
    file: &ConfigFile,
    list: impl IntoIterator<Item = &'a Spanned<String>>,
) -> Result<()> {
    for d in list {
        DestinationPattern::parse(d.get_ref())
            .map_err(|m| file.diagnostic(d.span(), format!("SSH destination {m}")))?;
    }
    Ok(())
}

/// The `cbx.toml` governing `cwd`: in `cwd` or a parent, not above `repo_root` (when `cwd` is
/// in a repository).
pub fn find_repo_config(cwd: &Path, repo_root: Option<&Path>) -> Option<PathBuf> {
    for dir in cwd.ancestors() {
        let candidate = dir.join(REPO_CONFIG);
        if candidate.is_file() {
            return Some(candidate);
        }
        if let Some(root) = repo_root
            && (dir == root || std::fs::canonicalize(dir).is_ok_and(|d| d == root))
        {
            return None;
        }
    }
    None
}

/// Tests: `user` as the user's config file and `repo` as a repository's `cbx.toml`, in a fresh
/// directory (kept alive by the returned guard), loaded.
#[cfg(test)]
pub(crate) fn load_for_test(user: &str, repo: &str) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let user_path = dir.path().join("config.toml");
    std::fs::write(&user_path, user).unwrap();
    let repo_dir = dir.path().join("repo");
    std::fs::create_dir_all(repo_dir.join(".git")).unwrap();
    std::fs::write(repo_dir.join("cbx.toml"), repo).unwrap();
    let cfg =
        Config::load(&user_path, &repo_dir, Some(&repo_dir)).unwrap_or_else(|e| panic!("{e:#}"));
    (dir, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::api::{OptionKind, OptionSpec};

    fn spec(name: &str, kind: OptionKind, default: Option<&str>) -> OptionSpec {
        OptionSpec {
            name: name.into(),
            description: String::new(),
            kind,
            default: default.map(Into::into),
        }
    }

    use super::load_for_test as setup;

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
            v.iter().map(|(_, o)| o.val.as_str()).collect::<Vec<_>>(),
            ["5", "repo"]
        );
        assert!(matches!(&v[1].1.definition, Definition::RepoFile(f) if f.ends_with("cbx.toml:2")));
        assert!(
            matches!(&v[0].1.definition, Definition::UserFile(f) if f.ends_with("config.toml:3"))
        );
        let v = cfg
            .options(
                "daytona",
                &specs,
                &[],
                &[("snapshot".into(), "flag".into())],
                &[("CBX_DAYTONA_SNAPSHOT".into(), "env".into())],
            )
            .unwrap();
        assert_eq!(v[1].1.val, "flag");
        assert_eq!(
            v[1].1.definition,
            Definition::Flag("--option snapshot".into())
        );
        let v = cfg
            .options(
                "daytona",
                &specs,
                &[],
                &[],
                &[("CBX_DAYTONA_SNAPSHOT".into(), "env".into())],
            )
            .unwrap();
        assert_eq!(
            v[1].1.definition,
            Definition::Env("CBX_DAYTONA_SNAPSHOT".into())
        );
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
                .1
                .val,
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
        let err =
            Config::load(&dir.path().join("none.toml"), dir.path(), Some(dir.path())).unwrap_err();
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
    fn request_caps_are_lowered_in_user_config_only() {
        let (_d, cfg) = setup("[providers.daytona.limits]\nrequests-per-call = 20\n", "");
        let o = cfg.endpoint_overrides("daytona", &[]).unwrap();
        assert_eq!(o.requests, (Some(20), None));
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("config.toml");
        std::fs::write(&user, "[providers.daytona.limits]\nrequests-per-run = 0\n").unwrap();
        let cfg = Config::load(&user, dir.path(), None).unwrap();
        let err = cfg.endpoint_overrides("daytona", &[]).unwrap_err();
        assert!(
            err.to_string()
                .contains("config.toml:2:20: limits.requests-per-run must be at least 1"),
            "{err}"
        );
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        std::fs::write(
            dir.path().join("cbx.toml"),
            "[providers.daytona.limits]\nrequests-per-call = 1\n",
        )
        .unwrap();
        let err =
            Config::load(&dir.path().join("none.toml"), dir.path(), Some(dir.path())).unwrap_err();
        assert!(
            err.to_string()
                .contains("a repository's cbx.toml may not set providers.daytona.limits"),
            "{err}"
        );
    }

    #[test]
    fn ssh_destinations_and_the_agent_come_only_from_the_user() {
        let (_d, cfg) = setup(
            "[providers.daytona.ssh]\ndestinations = [\"gw.self.example:2222\"]\nagent = true\n\
             [providers.daytona.grant]\nssh-destinations = [\"gw.self.example:2222\"]\n",
            "",
        );
        let o = cfg.endpoint_overrides("daytona", &[]).unwrap();
        let d = o.ssh.destinations.unwrap();
        assert_eq!(d.val, ["gw.self.example:2222"]);
        assert!(matches!(&d.definition, Definition::UserFile(f) if f.ends_with("config.toml:2")));
        assert!(o.ssh.agent.unwrap().val);
        assert_eq!(o.ssh.allow.unwrap()[0].0, "gw.self.example:2222");

        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        std::fs::write(
            dir.path().join("cbx.toml"),
            "[providers.daytona.ssh]\ndestinations = [\"evil.example:22\"]\n",
        )
        .unwrap();
        let err =
            Config::load(&dir.path().join("none.toml"), dir.path(), Some(dir.path())).unwrap_err();
        assert_eq!(crate::error::exit_code(&err), 2);
        assert!(
            err.to_string().contains(
                "cbx.toml:1:1: a repository's cbx.toml may not set providers.daytona.ssh"
            ),
            "{err}"
        );

        let (_d, cfg) = setup(
            "[providers.daytona.ssh]\ndestinations = [\"gw.self.example\"]\n",
            "",
        );
        let err = cfg.endpoint_overrides("daytona", &[]).unwrap_err();
        assert!(
            err.to_string()
                .contains("config.toml:2:17: SSH destination `gw.self.example` needs a port"),
            "{err}"
        );
    }

    #[test]
    fn user_endpoints_and_lease_times() {
        let (_d, cfg) = setup(
            "[lease]\nttl = \"2h\"\n[providers.daytona.endpoints]\napi = \"https://x.example/api\"\n",
            "[lease]\nidle-timeout = \"10m\"\n",
        );
        let o = cfg.endpoint_overrides("daytona", &[]).unwrap();
        assert_eq!(o.urls[0].1.val, "https://x.example/api");
        let none = Environment::default();
        let times = cfg.lease_times(LeaseFlags::default(), &none).unwrap();
        let (ttl, idle) = (times.ttl, times.idle);
        assert_eq!((ttl.val.as_secs(), idle.val.as_secs()), (7200, 600));
        assert!(matches!(ttl.definition, Definition::UserFile(_)));
        assert!(matches!(idle.definition, Definition::RepoFile(_)));
        assert_eq!(times.ready.val, DEFAULT_READY);
        let env = Environment::from_pairs([("CBX_TTL", "3h"), ("CBX_READY_TIMEOUT", "7m")]);
        let times = cfg.lease_times(LeaseFlags::default(), &env).unwrap();
        assert_eq!(times.ttl.val.as_secs(), 3 * 3600);
        assert_eq!(times.ready.val.as_secs(), 7 * 60);
        let flags = LeaseFlags {
            ttl: Some("soon"),
            ..LeaseFlags::default()
        };
        let err = cfg.lease_times(flags, &none).unwrap_err();
        assert!(
            err.to_string()
                .contains("`soon` is not a duration (from --ttl)"),
            "{err}"
        );
    }

    #[test]
    fn out_of_range_lease_times_name_the_range_and_the_place() {
        let (_d, cfg) = setup(
            "[lease]\nttl = \"300000y\"\n",
            "[lease]\nready-timeout = \"0s\"\n",
        );
        let none = Environment::default();
        let flags = LeaseFlags {
            ready: Some("1m"),
            ..LeaseFlags::default()
        };
        let err = cfg.lease_times(flags, &none).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("config.toml:2:7"), "{text}");
        assert!(
            text.contains("lease.ttl: `300000y` is out of range"),
            "{text}"
        );
        assert!(text.contains("between 1m and 365d"), "{text}");
        assert_eq!(crate::error::exit_code(&err), 2);
        let flags = LeaseFlags {
            ttl: Some("2h"),
            ..LeaseFlags::default()
        };
        let err = cfg.lease_times(flags, &none).unwrap_err();
        assert!(
            format!("{err:#}").contains("lease.ready-timeout: `0s` is out of range"),
            "{err:#}"
        );
        let env = Environment::from_pairs([("CBX_IDLE_TIMEOUT", "99999999999m")]);
        let flags = LeaseFlags {
            ttl: Some("2h"),
            ready: Some("1m"),
            ..LeaseFlags::default()
        };
        let err = cfg.lease_times(flags, &env).unwrap_err();
        assert!(
            format!("{err:#}")
                .contains("(from environment variable CBX_IDLE_TIMEOUT) is out of range"),
            "{err:#}"
        );
    }

    #[test]
    fn provider_from_flag_env_repo_user_default() {
        let (_d, cfg) = setup("provider = \"user\"\n", "provider = \"repo\"\n");
        let none = Environment::default();
        assert_eq!(cfg.provider(None, &none).val, "repo");
        let env = Environment::from_pairs([("CBX_PROVIDER", "env")]);
        assert_eq!(cfg.provider(None, &env).val, "env");
        assert_eq!(
            cfg.provider(Some("flag"), &env).definition,
            Definition::Flag("--provider".into())
        );
        let (_d, cfg) = setup("", "");
        assert_eq!(
            cfg.provider(None, &none),
            Value::new(DEFAULT_PROVIDER.to_string(), Definition::Default)
        );
    }

    #[test]
    fn the_repository_config_is_found_up_to_the_repository_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(dir.path().join(REPO_CONFIG), "").unwrap();
        assert_eq!(find_repo_config(&root.join("a/b"), Some(&root)), None);
        assert_eq!(
            find_repo_config(&root.join("a/b"), None),
            Some(dir.path().join(REPO_CONFIG))
        );
        std::fs::write(root.join(REPO_CONFIG), "").unwrap();
        assert_eq!(
            find_repo_config(&root.join("a/b"), Some(&root)),
            Some(root.join(REPO_CONFIG))
        );
    }
}
