//! The run settings: `[run] login-environment`, whether commands reuse the sandbox's login
//! environment read once per connection (`cached`, the default) or start a login shell each
//! (`fresh`), in the user's config or a repository's `cbx.toml` (the layer of highest
//! precedence wins).

use anyhow::Result;
use serde::Deserialize;
use toml::Spanned;

use super::Config;
use crate::login_env::LoginEnvironment;
use crate::provenance::{Definition, Value};

/// `[run]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawRun {
    login_environment: Option<Spanned<String>>,
}

impl Config {
    /// `[run] login-environment` of the repository's or the user's config, else `cached`. An
    /// unknown value is refused (exit 2) pointing at its line.
    pub fn login_environment(&self) -> Result<Value<LoginEnvironment>> {
        let mut chosen = Value::new(LoginEnvironment::default(), Definition::Default);
        for file in self.files() {
            let Some(v) = file
                .raw
                .run
                .as_ref()
                .and_then(|r| r.login_environment.as_ref())
            else {
                continue;
            };
            let mode = match v.get_ref().as_str() {
                "cached" => LoginEnvironment::Cached,
                "fresh" => LoginEnvironment::Fresh,
                _ => {
                    return Err(file.diagnostic(
                        v.span(),
                        "run.login-environment: must be \"cached\" (reuse the login \
                         environment read once per connection) or \"fresh\" (a login shell for \
                         every command)",
                    ));
                }
            };
            chosen = Value::new(mode, file.definition(v.span()));
        }
        Ok(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::load_for_test as load;

    #[test]
    fn the_mode_comes_from_the_repository_over_the_user() {
        let (_d, cfg) = load("", "");
        let v = cfg.login_environment().unwrap();
        assert_eq!(
            (v.val, v.definition),
            (LoginEnvironment::Cached, Definition::Default)
        );
        let (_d, cfg) = load(
            "[run]\nlogin-environment = \"fresh\"\n",
            "[run]\nlogin-environment = \"cached\"\n",
        );
        let v = cfg.login_environment().unwrap();
        assert_eq!(v.val, LoginEnvironment::Cached);
        assert!(matches!(v.definition, Definition::RepoFile(_)));
        let (_d, cfg) = load("[run]\nlogin-environment = \"fresh\"\n", "");
        assert_eq!(
            cfg.login_environment().unwrap().val,
            LoginEnvironment::Fresh
        );
    }

    #[test]
    fn a_bad_value_points_at_its_line() {
        let (_d, cfg) = load("", "\n[run]\nlogin-environment = \"always\"\n");
        let err = cfg.login_environment().unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("run.login-environment: must be \"cached\""),
            "{text}"
        );
        assert!(text.contains("cbx.toml:3"), "{text}");
        assert_eq!(crate::error::exit_code(&err), 2);
    }
}
