//! The provider's options, their validation and the per-invocation configuration.

use std::cell::RefCell;

use crate::cbx::provider::types::{OptionKind, OptionSpec, Profile, ProviderError, Settings};

/// Default OS user inside the sandbox.
const DEFAULT_USER: &str = "daytona";
/// Default work root, relative to the SSH user's home.
const DEFAULT_WORK_ROOT: &str = "cbx";
/// Default lifetime of minted SSH access, in minutes.
const DEFAULT_SSH_ACCESS_MINUTES: u32 = 60;
/// Longest SSH access lifetime accepted, in minutes (one day, as Daytona's dashboard allows).
const MAX_SSH_ACCESS_MINUTES: u32 = 1440;
/// Default minutes a stopped sandbox waits before Daytona archives it (7 days).
const DEFAULT_AUTO_ARCHIVE_MINUTES: u32 = 10080;
/// Default of option `auto-delete-minutes`: the lease's TTL.
const DEFAULT_AUTO_DELETE: &str = "ttl";
/// Longest OS user name accepted (Linux's `useradd` limit).
const MAX_USER_LEN: usize = 32;

/// The credential the host attaches to requests, as far as its name tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// A Daytona API key.
    ApiKey,
    /// A JWT from `daytona login`.
    Jwt,
    /// No credential at all.
    None,
}

impl Auth {
    /// Guesses the credential kind from the names the host will attach (an API key wins).
    pub fn from_names(names: &[String]) -> Auth {
        let lower: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
        if lower.is_empty() {
            Auth::None
        } else if lower.iter().any(|n| n.contains("jwt"))
            && !lower.iter().any(|n| n.contains("key"))
        {
            Auth::Jwt
        } else {
            Auth::ApiKey
        }
    }

    /// The word shown to users: `api-key`, `jwt` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Auth::ApiKey => "api-key",
            Auth::Jwt => "jwt",
            Auth::None => "none",
        }
    }
}

/// When Daytona deletes a stopped sandbox on its own (`autoDeleteInterval`, minutes after the
/// sandbox stops).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoDelete {
    /// As many minutes as the lease's TTL: never before the lease expires, since a sandbox
    /// stops after it is created.
    Ttl,
    /// Never (Daytona's default, `-1`).
    Never,
    /// This many minutes (at least 1).
    Minutes(u32),
}

impl AutoDelete {
    /// The `autoDeleteInterval` for a lease of `ttl_minutes` (never more than Daytona's
    /// 32-bit signed minutes).
    pub fn interval(self, ttl_minutes: u32) -> i64 {
        match self {
            AutoDelete::Ttl => i64::from(ttl_minutes.max(1)).min(i64::from(i32::MAX)),
            AutoDelete::Never => -1,
            AutoDelete::Minutes(m) => i64::from(m),
        }
    }

    /// How the profile and doctor show it.
    pub fn describe(self) -> String {
        match self {
            AutoDelete::Ttl => "the lease's TTL after it stops".to_string(),
            AutoDelete::Never => "never".to_string(),
            AutoDelete::Minutes(m) => format!("{m} min after it stops"),
        }
    }

    fn parse(raw: &str) -> Result<AutoDelete, ProviderError> {
        match raw {
            "ttl" => Ok(AutoDelete::Ttl),
            "never" => Ok(AutoDelete::Never),
            _ => parse_minutes(raw)
                .and_then(|m| i32::try_from(m).ok())
                .and_then(|m| u32::try_from(m).ok())
                .filter(|m| *m >= 1)
                .map(AutoDelete::Minutes)
                .ok_or_else(|| {
                    invalid(format!(
                        "option auto-delete-minutes must be `ttl` (the lease's TTL), `never`, or a \
                         whole number of minutes from 1 to {} after the sandbox stops, got {raw:?} \
                         (0 would make Daytona delete a lease the moment it stops for being idle)",
                        i32::MAX
                    ))
                }),
        }
    }
}

/// The validated settings of one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The `api` endpoint's base URL, without a trailing `/`.
    pub base: String,
    /// Snapshot name or id; empty for the account's default.
    pub snapshot: String,
    /// Region name or id; empty for the organization's default.
    pub target: String,
    /// OS user in the sandbox.
    pub user: String,
    /// Where leases keep their work directories.
    pub work_root: String,
    /// Lifetime of minted SSH access, in minutes.
    pub ssh_access_minutes: u32,
    /// Minutes a stopped sandbox waits before it is archived (0: Daytona's maximum).
    pub auto_archive_minutes: u32,
    /// When Daytona deletes a stopped sandbox on its own.
    pub auto_delete: AutoDelete,
    /// The credential the host attaches.
    pub auth: Auth,
}

/// The options `describe` advertises, with their defaults.
pub fn option_specs() -> Vec<OptionSpec> {
    let spec = |name: &str, kind: OptionKind, default: &str, description: &str| OptionSpec {
        name: name.to_string(),
        description: description.to_string(),
        kind,
        default: Some(default.to_string()),
    };
    vec![
        spec(
            "snapshot",
            OptionKind::Text,
            "",
            "Snapshot to create sandboxes from; it sets the size (daytona-small, daytona-medium, \
             daytona-large). Empty: the account's default snapshot",
        ),
        spec(
            "target",
            OptionKind::Text,
            "",
            "Region to create sandboxes in, e.g. us or eu. Empty: the organization's default region",
        ),
        spec(
            "user",
            OptionKind::Text,
            DEFAULT_USER,
            "OS user that runs in the sandbox",
        ),
        spec(
            "work-root",
            OptionKind::Text,
            DEFAULT_WORK_ROOT,
            "Where leases keep their work directories; a relative path is relative to the SSH \
             user's home",
        ),
        spec(
            "ssh-access-minutes",
            OptionKind::Integer,
            &DEFAULT_SSH_ACCESS_MINUTES.to_string(),
            "Lifetime of minted SSH access in minutes, 1 to 1440",
        ),
        spec(
            "auto-archive-minutes",
            OptionKind::Integer,
            &DEFAULT_AUTO_ARCHIVE_MINUTES.to_string(),
            "Minutes a stopped sandbox waits before Daytona archives it; 0 means Daytona's maximum",
        ),
        spec(
            "auto-delete-minutes",
            OptionKind::Text,
            DEFAULT_AUTO_DELETE,
            "Minutes after a sandbox stops before Daytona deletes it on its own: `ttl` (the \
             lease's TTL), `never`, or a number",
        ),
    ]
}

impl Config {
    /// Validates the host's settings into a configuration.
    pub fn from_settings(settings: &Settings) -> Result<Config, ProviderError> {
        let base = lookup(&settings.endpoints, "api")
            .map(|url| url.trim())
            .filter(|url| !url.is_empty())
            .ok_or_else(|| invalid("the manifest grants no `api` endpoint".to_string()))?;
        let base = base.strip_suffix('/').unwrap_or(base).to_string();
        let opt = |name: &str| lookup(&settings.options, name).map(str::trim);

        let user = opt("user").unwrap_or(DEFAULT_USER).to_string();
        check_user(&user)?;
        let work_root = opt("work-root").unwrap_or(DEFAULT_WORK_ROOT).to_string();
        if work_root.is_empty() || work_root.chars().any(char::is_control) {
            return Err(invalid(
                "option work-root must be a non-empty path without control characters".to_string(),
            ));
        }
        let ssh_access_minutes = match opt("ssh-access-minutes") {
            None => DEFAULT_SSH_ACCESS_MINUTES,
            Some(raw) => parse_minutes(raw)
                .filter(|m| (1..=i64::from(MAX_SSH_ACCESS_MINUTES)).contains(m))
                .map(|m| m as u32)
                .ok_or_else(|| {
                    invalid(format!(
                        "option ssh-access-minutes must be between 1 and {MAX_SSH_ACCESS_MINUTES} \
                         minutes, got {raw}"
                    ))
                })?,
        };
        let auto_archive_minutes = match opt("auto-archive-minutes") {
            None => DEFAULT_AUTO_ARCHIVE_MINUTES,
            // Daytona keeps intervals as 32-bit signed minutes.
            Some(raw) => parse_minutes(raw)
                .and_then(|m| i32::try_from(m).ok())
                .and_then(|m| u32::try_from(m).ok())
                .ok_or_else(|| {
                    invalid(format!(
                        "option auto-archive-minutes must be 0 (Daytona's maximum) or a whole \
                         number of minutes up to {}, got {raw}",
                        i32::MAX
                    ))
                })?,
        };
        let auto_delete =
            AutoDelete::parse(opt("auto-delete-minutes").unwrap_or(DEFAULT_AUTO_DELETE))?;
        Ok(Config {
            base,
            snapshot: opt("snapshot").unwrap_or("").to_string(),
            target: opt("target").unwrap_or("").to_string(),
            user,
            work_root,
            ssh_access_minutes,
            auto_archive_minutes,
            auto_delete,
            auth: Auth::from_names(&settings.credentials),
        })
    }

    /// The profile `configure` reports: the work root and the effective settings.
    pub fn profile(&self) -> Profile {
        let or = |v: &str, d: &str| {
            if v.is_empty() {
                d.to_string()
            } else {
                v.to_string()
            }
        };
        Profile {
            work_root: self.work_root.clone(),
            summary: vec![
                ("api".to_string(), self.base.clone()),
                (
                    "snapshot".to_string(),
                    or(&self.snapshot, "account default"),
                ),
                (
                    "target".to_string(),
                    or(&self.target, "organization default"),
                ),
                ("user".to_string(), self.user.clone()),
                ("auto-delete".to_string(), self.auto_delete.describe()),
                ("auth".to_string(), self.auth.as_str().to_string()),
            ],
        }
    }
}

thread_local! {
    /// The configuration of the current invocation (the component is single-threaded).
    static CURRENT: RefCell<Option<Config>> = const { RefCell::new(None) };
}

/// Stores the invocation's configuration, replacing any earlier one.
pub fn store(config: Config) {
    CURRENT.with(|c| *c.borrow_mut() = Some(config));
}

/// The stored configuration, or `invalid-config` when `configure` was not called.
pub fn current() -> Result<Config, ProviderError> {
    CURRENT
        .with(|c| c.borrow().clone())
        .ok_or_else(|| invalid("configure was not called".to_string()))
}

/// The value of `name` in a list of pairs (the last one wins).
fn lookup<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A base-10 integer (the host has checked the form already; this re-checks the range).
fn parse_minutes(raw: &str) -> Option<i64> {
    raw.parse::<i64>().ok()
}

/// Checks an OS user name against `[a-z_][a-z0-9_-]*` and the length limit.
fn check_user(user: &str) -> Result<(), ProviderError> {
    let mut chars = user.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if first_ok && rest_ok && user.len() <= MAX_USER_LEN {
        Ok(())
    } else {
        Err(invalid(format!(
            "option user must be a Linux user name: up to {MAX_USER_LEN} characters, a lowercase \
             letter or `_` followed by lowercase letters, digits, `_` or `-`, got {user:?}"
        )))
    }
}

/// An `invalid-config` error.
fn invalid(message: String) -> ProviderError {
    ProviderError::InvalidConfig(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(options: &[(&str, &str)]) -> Settings {
        Settings {
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            endpoints: vec![("api".to_string(), "https://app.daytona.io/api/".to_string())],
            credentials: vec!["api-key".to_string()],
        }
    }

    fn invalid_text(result: Result<Config, ProviderError>) -> String {
        match result {
            Err(ProviderError::InvalidConfig(m)) => m,
            other => panic!("expected invalid-config, got {other:?}"),
        }
    }

    #[test]
    fn defaults_and_profile() {
        let cfg = Config::from_settings(&settings(&[])).unwrap();
        assert_eq!(cfg.base, "https://app.daytona.io/api");
        assert_eq!(cfg.user, "daytona");
        assert_eq!(cfg.work_root, "cbx");
        assert_eq!(cfg.ssh_access_minutes, 60);
        assert_eq!(cfg.auto_archive_minutes, 10080);
        let profile = cfg.profile();
        assert_eq!(profile.work_root, "cbx");
        let summary: Vec<(&str, &str)> = profile
            .summary
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("api", "https://app.daytona.io/api"),
                ("snapshot", "account default"),
                ("target", "organization default"),
                ("user", "daytona"),
                ("auto-delete", "the lease's TTL after it stops"),
                ("auth", "api-key"),
            ]
        );
    }

    #[test]
    fn described_defaults_validate() {
        let defaults: Vec<(String, String)> = option_specs()
            .into_iter()
            .map(|s| (s.name, s.default.unwrap_or_default()))
            .collect();
        let mut s = settings(&[]);
        s.options = defaults;
        let cfg = Config::from_settings(&s).unwrap();
        assert_eq!(cfg.snapshot, "");
        assert_eq!(cfg.target, "");
    }

    #[test]
    fn missing_api_endpoint() {
        let mut s = settings(&[]);
        s.endpoints.clear();
        assert_eq!(
            invalid_text(Config::from_settings(&s)),
            "the manifest grants no `api` endpoint"
        );
    }

    #[test]
    fn only_one_trailing_slash_is_trimmed() {
        let mut s = settings(&[]);
        s.endpoints = vec![("api".to_string(), "http://127.0.0.1:9/api//".to_string())];
        assert_eq!(
            Config::from_settings(&s).unwrap().base,
            "http://127.0.0.1:9/api/"
        );
    }

    #[test]
    fn ssh_access_minutes_range() {
        let text = invalid_text(Config::from_settings(&settings(&[(
            "ssh-access-minutes",
            "0",
        )])));
        assert_eq!(
            text,
            "option ssh-access-minutes must be between 1 and 1440 minutes, got 0"
        );
        assert!(Config::from_settings(&settings(&[("ssh-access-minutes", "1441")])).is_err());
        assert!(Config::from_settings(&settings(&[("ssh-access-minutes", "ten")])).is_err());
        let cfg = Config::from_settings(&settings(&[("ssh-access-minutes", "1440")])).unwrap();
        assert_eq!(cfg.ssh_access_minutes, 1440);
    }

    #[test]
    fn auto_archive_minutes_non_negative() {
        let text = invalid_text(Config::from_settings(&settings(&[(
            "auto-archive-minutes",
            "-1",
        )])));
        assert!(
            text.starts_with("option auto-archive-minutes must be 0"),
            "{text}"
        );
        let cfg = Config::from_settings(&settings(&[("auto-archive-minutes", "0")])).unwrap();
        assert_eq!(cfg.auto_archive_minutes, 0);
        // Daytona's intervals are 32-bit signed minutes: past that is refused, never wrapped.
        let text = invalid_text(Config::from_settings(&settings(&[(
            "auto-archive-minutes",
            "2147483648",
        )])));
        assert!(text.contains("up to 2147483647"), "{text}");
        let cfg =
            Config::from_settings(&settings(&[("auto-archive-minutes", "2147483647")])).unwrap();
        assert_eq!(cfg.auto_archive_minutes, 2147483647);
    }

    #[test]
    fn auto_delete_minutes_ttl_never_or_a_number() {
        let cfg = Config::from_settings(&settings(&[])).unwrap();
        assert_eq!(cfg.auto_delete, AutoDelete::Ttl);
        assert_eq!(cfg.auto_delete.interval(90), 90);
        assert_eq!(cfg.auto_delete.interval(0), 1, "never ephemeral");
        let cfg = Config::from_settings(&settings(&[("auto-delete-minutes", "never")])).unwrap();
        assert_eq!(cfg.auto_delete.interval(90), -1);
        let cfg = Config::from_settings(&settings(&[("auto-delete-minutes", " 240 ")])).unwrap();
        assert_eq!(cfg.auto_delete, AutoDelete::Minutes(240));
        assert_eq!(cfg.auto_delete.interval(90), 240);
        assert_eq!(cfg.auto_delete.describe(), "240 min after it stops");
        for bad in ["0", "-1", "2147483648", "soon", ""] {
            let text = invalid_text(Config::from_settings(&settings(&[(
                "auto-delete-minutes",
                bad,
            )])));
            assert!(
                text.starts_with("option auto-delete-minutes must be `ttl`"),
                "{text}"
            );
            assert!(text.contains("0 would make Daytona delete"), "{text}");
        }
    }

    #[test]
    fn user_names() {
        for good in ["daytona", "_svc", "a-b_c9"] {
            assert!(
                Config::from_settings(&settings(&[("user", good)])).is_ok(),
                "{good}"
            );
        }
        for bad in ["", "Root", "9lives", "a b", "x;rm", &"a".repeat(33)] {
            let text = invalid_text(Config::from_settings(&settings(&[("user", bad)])));
            assert!(text.starts_with("option user must be"), "{text}");
        }
    }

    #[test]
    fn work_root_must_be_set() {
        assert!(Config::from_settings(&settings(&[("work-root", "")])).is_err());
        let cfg = Config::from_settings(&settings(&[("work-root", "/srv/cbx")])).unwrap();
        assert_eq!(cfg.work_root, "/srv/cbx");
    }

    #[test]
    fn auth_from_credential_names() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(Auth::from_names(&names(&[])), Auth::None);
        assert_eq!(Auth::from_names(&names(&["api-key"])), Auth::ApiKey);
        assert_eq!(Auth::from_names(&names(&["jwt"])), Auth::Jwt);
        assert_eq!(
            Auth::from_names(&names(&["jwt", "organization-id"])),
            Auth::Jwt
        );
        assert_eq!(Auth::from_names(&names(&["api-key", "jwt"])), Auth::ApiKey);
    }

    #[test]
    fn store_and_current() {
        CURRENT.with(|c| *c.borrow_mut() = None);
        assert!(
            matches!(current(), Err(ProviderError::InvalidConfig(ref m)) if m == "configure was not called")
        );
        store(Config::from_settings(&settings(&[])).unwrap());
        assert_eq!(current().unwrap().user, "daytona");
    }
}
