//! The provider's options, their validation and the per-invocation configuration.
//!
//! Everything the provider knows about the host comes from here: there is no service to ask.
//! Values are checked against the same rules cbx applies to minted SSH access, so a bad value
//! is a clear `invalid-config` (exit 2) naming the option instead of a provider fault later.

use std::cell::RefCell;

use crate::cbx::provider::types::{OptionKind, OptionSpec, Profile, ProviderError, Settings};

/// The SSH port used when the user sets none.
const DEFAULT_PORT: u16 = 22;
/// Default work root, relative to the SSH user's home.
const DEFAULT_WORK_ROOT: &str = "cbx";
/// Longest host name cbx accepts (DNS's limit).
const MAX_HOST_LEN: usize = 253;
/// Longest user name cbx accepts.
const MAX_USER_LEN: usize = 256;
/// Longest identity-file path accepted.
const MAX_PATH_LEN: usize = 4096;

/// The validated settings of one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Host name or address of the SSH server.
    pub host: String,
    /// Its TCP port.
    pub port: u16,
    /// The user to log in as.
    pub user: String,
    /// A private key on the user's machine, if any. `ssh` reads it; the provider never does.
    pub identity_file: Option<String>,
    /// Where leases keep their work directories on the host.
    pub work_root: String,
}

/// The options `describe` advertises.
pub fn option_specs() -> Vec<OptionSpec> {
    let spec =
        |name: &str, kind: OptionKind, default: Option<&str>, description: &str| OptionSpec {
            name: name.to_string(),
            description: description.to_string(),
            kind,
            default: default.map(str::to_string),
        };
    vec![
        spec(
            "host",
            OptionKind::Text,
            None,
            "Host name or address of the SSH server (required)",
        ),
        spec(
            "port",
            OptionKind::Integer,
            Some("22"),
            "TCP port of the SSH server",
        ),
        spec(
            "user",
            OptionKind::Text,
            None,
            "User to log in as (required)",
        ),
        spec(
            "identity-file",
            OptionKind::Text,
            Some(""),
            "Private key to log in with, an absolute path or ~/…; read by ssh on your machine, \
             never by the provider. Empty: none",
        ),
        spec(
            "work-root",
            OptionKind::Text,
            Some(DEFAULT_WORK_ROOT),
            "Where leases keep their work directories on the host; a relative path is relative \
             to the user's home",
        ),
    ]
}

impl Config {
    /// Validates the host's settings into a configuration.
    pub fn from_settings(settings: &Settings) -> Result<Config, ProviderError> {
        let opt = |name: &str| lookup(&settings.options, name).map(str::trim);

        let host = opt("host")
            .filter(|h| !h.is_empty())
            .ok_or_else(|| missing("host", "ssh.example.com"))?
            .to_string();
        check_host(&host)?;

        let port = match opt("port") {
            None | Some("") => DEFAULT_PORT,
            Some(raw) => raw.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
                invalid(format!(
                    "option port must be a TCP port from 1 to 65535, got {raw:?}"
                ))
            })?,
        };

        let user = opt("user")
            .filter(|u| !u.is_empty())
            .ok_or_else(|| missing("user", "deploy"))?
            .to_string();
        check_user(&user)?;

        let identity_file = match opt("identity-file") {
            None | Some("") => None,
            Some(path) => {
                check_identity_file(path)?;
                Some(path.to_string())
            }
        };

        let work_root = opt("work-root").unwrap_or(DEFAULT_WORK_ROOT).to_string();
        if work_root.is_empty() || work_root.chars().any(char::is_control) {
            return Err(invalid(
                "option work-root must be a non-empty path without control characters".to_string(),
            ));
        }

        Ok(Config {
            host,
            port,
            user,
            identity_file,
            work_root,
        })
    }

    /// `user@host:port`, the target this configuration names.
    pub fn target(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port)
    }

    /// The profile `configure` reports: the work root and the effective settings.
    pub fn profile(&self) -> Profile {
        Profile {
            work_root: self.work_root.clone(),
            summary: vec![
                ("host".to_string(), self.host.clone()),
                ("port".to_string(), self.port.to_string()),
                ("user".to_string(), self.user.clone()),
                (
                    "identity-file".to_string(),
                    self.identity_file
                        .clone()
                        .unwrap_or_else(|| "none".to_string()),
                ),
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

/// The error for a required option that is not set, saying every way to set it.
fn missing(option: &str, example: &str) -> ProviderError {
    invalid(format!(
        "option {option} is not set; the ssh provider needs it to know where to connect. \
         Set it with `-o {option}={example}`, `CBX_SSH_{env}={example}` or \
         `{option} = \"{example}\"` under [providers.ssh.options] in ~/.config/cbx/config.toml",
        env = option.to_ascii_uppercase().replace('-', "_"),
    ))
}

/// Checks a host name or address against what cbx writes into an ssh config.
fn check_host(host: &str) -> Result<(), ProviderError> {
    let ok = !host.starts_with('-')
        && host.len() <= MAX_HOST_LEN
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "option host must be a host name or IP address (letters, digits, `.`, `-` and `:`, \
             at most {MAX_HOST_LEN}, not starting with `-`), got {host:?}"
        )))
    }
}

/// Checks a user name against what cbx writes into an ssh config.
fn check_user(user: &str) -> Result<(), ProviderError> {
    let ok = !user.starts_with('-')
        && user.len() <= MAX_USER_LEN
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "option user must be a user name (letters, digits, `.`, `_` and `-`, not starting \
             with `-`), got {user:?}"
        )))
    }
}

/// Checks an identity-file path: absolute or `~/…` (ssh expands the tilde), and nothing ssh's
/// config syntax would read as quoting or a token.
fn check_identity_file(path: &str) -> Result<(), ProviderError> {
    if !(path.starts_with('/') || path.starts_with("~/")) {
        return Err(invalid(format!(
            "option identity-file must be an absolute path or start with ~/, got {path:?}"
        )));
    }
    if path.len() > MAX_PATH_LEN || path.chars().any(|c| c.is_control() || c == '"' || c == '%') {
        return Err(invalid(
            "option identity-file must not contain control characters, `\"` or `%`".to_string(),
        ));
    }
    Ok(())
}

/// An `invalid-config` error.
fn invalid(message: String) -> ProviderError {
    ProviderError::InvalidConfig(message)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn settings(options: &[(&str, &str)]) -> Settings {
        Settings {
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            endpoints: Vec::new(),
            credentials: Vec::new(),
        }
    }

    /// A complete configuration, as the host hands it over with defaults filled in.
    pub fn full() -> Settings {
        settings(&[
            ("host", "127.0.0.1"),
            ("port", "2222"),
            ("user", "dev"),
            ("identity-file", "/home/me/.ssh/id_ed25519"),
            ("work-root", "cbx"),
        ])
    }

    fn invalid_text(result: Result<Config, ProviderError>) -> String {
        match result {
            Err(ProviderError::InvalidConfig(m)) => m,
            other => panic!("expected invalid-config, got {other:?}"),
        }
    }

    fn with(name: &str, value: &str) -> Settings {
        let mut s = full();
        s.options.push((name.to_string(), value.to_string()));
        s
    }

    #[test]
    fn full_configuration_and_profile() {
        let cfg = Config::from_settings(&full()).unwrap();
        assert_eq!(
            cfg,
            Config {
                host: "127.0.0.1".into(),
                port: 2222,
                user: "dev".into(),
                identity_file: Some("/home/me/.ssh/id_ed25519".into()),
                work_root: "cbx".into(),
            }
        );
        assert_eq!(cfg.target(), "dev@127.0.0.1:2222");
        let profile = cfg.profile();
        assert_eq!(profile.work_root, "cbx");
        assert_eq!(
            profile.summary,
            [
                ("host".to_string(), "127.0.0.1".to_string()),
                ("port".to_string(), "2222".to_string()),
                ("user".to_string(), "dev".to_string()),
                (
                    "identity-file".to_string(),
                    "/home/me/.ssh/id_ed25519".to_string()
                ),
            ]
        );
    }

    #[test]
    fn defaults_apply() {
        let cfg =
            Config::from_settings(&settings(&[("host", "box.example"), ("user", "me")])).unwrap();
        assert_eq!(cfg.port, 22);
        assert_eq!(cfg.identity_file, None);
        assert_eq!(cfg.work_root, "cbx");
        // The described defaults validate too.
        let mut s = settings(&[("host", "h"), ("user", "u")]);
        s.options.extend(
            option_specs()
                .into_iter()
                .filter_map(|o| o.default.map(|d| (o.name, d))),
        );
        assert!(Config::from_settings(&s).is_ok());
    }

    #[test]
    fn missing_host_and_user_say_how_to_set_them() {
        let text = invalid_text(Config::from_settings(&settings(&[("user", "me")])));
        assert!(text.starts_with("option host is not set"), "{text}");
        assert!(text.contains("-o host="), "{text}");
        assert!(text.contains("[providers.ssh.options]"), "{text}");
        assert!(text.contains("~/.config/cbx/config.toml"), "{text}");
        assert!(text.contains("CBX_SSH_HOST"), "{text}");
        let text = invalid_text(Config::from_settings(&settings(&[("host", "  ")])));
        assert!(text.starts_with("option host is not set"), "{text}");
        let text = invalid_text(Config::from_settings(&settings(&[("host", "h")])));
        assert!(text.starts_with("option user is not set"), "{text}");
    }

    #[test]
    fn hosts() {
        for good in ["127.0.0.1", "box.example.com", "::1", "fe80::1", "a-b"] {
            assert!(Config::from_settings(&with("host", good)).is_ok(), "{good}");
        }
        for bad in ["-oProxyCommand=x", "a b", "h;x", "user@h", &"a".repeat(254)] {
            let text = invalid_text(Config::from_settings(&with("host", bad)));
            assert!(text.starts_with("option host must be"), "{text}");
        }
    }

    #[test]
    fn ports() {
        assert_eq!(
            Config::from_settings(&with("port", "65535")).unwrap().port,
            65535
        );
        for bad in ["0", "65536", "-1", "ssh"] {
            let text = invalid_text(Config::from_settings(&with("port", bad)));
            assert!(text.starts_with("option port must be"), "{text}");
        }
    }

    #[test]
    fn users() {
        for good in ["dev", "Dev.User_1", "a-b"] {
            assert!(Config::from_settings(&with("user", good)).is_ok(), "{good}");
        }
        for bad in ["-l", "a b", "x;y", "me@h"] {
            let text = invalid_text(Config::from_settings(&with("user", bad)));
            assert!(text.starts_with("option user must be"), "{text}");
        }
    }

    #[test]
    fn identity_files() {
        let cfg = Config::from_settings(&with("identity-file", "~/.ssh/id_ed25519")).unwrap();
        assert_eq!(cfg.identity_file.as_deref(), Some("~/.ssh/id_ed25519"));
        assert_eq!(
            Config::from_settings(&with("identity-file", ""))
                .unwrap()
                .identity_file,
            None
        );
        for bad in ["id_ed25519", "./key", "~other/key"] {
            let text = invalid_text(Config::from_settings(&with("identity-file", bad)));
            assert!(text.contains("absolute path"), "{text}");
        }
        for bad in ["/a\"b", "/a%d", "/a\nb"] {
            let text = invalid_text(Config::from_settings(&with("identity-file", bad)));
            assert!(text.contains("must not contain"), "{text}");
        }
    }

    #[test]
    fn work_root_must_be_set() {
        assert!(Config::from_settings(&with("work-root", "")).is_err());
        let cfg = Config::from_settings(&with("work-root", "/srv/cbx")).unwrap();
        assert_eq!(cfg.work_root, "/srv/cbx");
    }

    #[test]
    fn store_and_current() {
        CURRENT.with(|c| *c.borrow_mut() = None);
        assert!(
            matches!(current(), Err(ProviderError::InvalidConfig(ref m)) if m == "configure was not called")
        );
        store(Config::from_settings(&full()).unwrap());
        assert_eq!(current().unwrap().user, "dev");
    }
}
