//! Provider options: each declared option's value from the layer of highest precedence —
//! the provider's default, the user config, the repository config, `CBX_<PROVIDER>_<OPTION>`,
//! `--option` — with every layer checked against the options the provider declares.

use std::collections::BTreeMap;

use anyhow::Result;

use super::{Config, ConfigFile, REPO_CONFIG, Scope};
use crate::error::{ErrorKind, Failure};
use crate::provenance::{self, Definition, Value};
use crate::provider::api::{OptionKind, OptionSpec};

/// What option resolution checks values against.
struct Declared<'a> {
    provider: &'a str,
    specs: &'a [OptionSpec],
    user_only: &'a [String],
}

impl Declared<'_> {
    fn spec(&self, name: &str) -> Option<&OptionSpec> {
        self.specs.iter().find(|s| s.name == name)
    }

    /// `it accepts: a, b` (or `no options`).
    fn accepted(&self) -> String {
        if self.specs.is_empty() {
            return "no options".to_string();
        }
        let known: Vec<&str> = self.specs.iter().map(|s| s.name.as_str()).collect();
        known.join(", ")
    }

    fn unknown(&self, name: &str, place: String) -> anyhow::Error {
        Failure::new(
            ErrorKind::Usage,
            format!(
                "unknown option `{name}` for provider {} ({place}); it accepts: {}",
                self.provider,
                self.accepted()
            ),
        )
        .into()
    }
}

impl Config {
    /// Resolves `provider`'s options against the specs it declares: defaults, then user
    /// config, repository config, `CBX_<PROVIDER>_<OPTION>` variables (`env_vars`) and
    /// `--option` flags. Unknown options and badly typed values are errors that say where they
    /// were set. Sorted by name.
    pub fn options(
        &self,
        provider: &str,
        specs: &[OptionSpec],
        user_only: &[String],
        flags: &[(String, String)],
        env_vars: &[(String, String)],
    ) -> Result<Vec<(String, Value<String>)>> {
        let declared = Declared {
            provider,
            specs,
            user_only,
        };
        let mut candidates: Vec<(String, Value<String>)> = specs
            .iter()
            .filter_map(|s| {
                let default = s.default.clone()?;
                Some((s.name.clone(), Value::new(default, Definition::Default)))
            })
            .collect();
        for file in self.files() {
            candidates.extend(file_options(file, &declared)?);
        }
        candidates.extend(env_options(env_vars, &declared)?);
        candidates.extend(flag_options(flags, &declared)?);
        let mut by_name: BTreeMap<String, Vec<Value<String>>> = BTreeMap::new();
        for (name, value) in candidates {
            by_name.entry(name).or_default().push(value);
        }
        Ok(by_name
            .into_iter()
            .filter_map(|(name, values)| Some((name, provenance::pick(values)?)))
            .collect())
    }
}

/// The options one config file sets for the provider, checked.
fn file_options(
    file: &ConfigFile,
    declared: &Declared<'_>,
) -> Result<Vec<(String, Value<String>)>> {
    let provider = declared.provider;
    let Some(p) = file.provider(provider) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (name, value) in &p.options {
        if file.scope == Scope::Repo && declared.user_only.contains(name) {
            return Err(file.diagnostic(
                value.span(),
                format!(
                    "a repository's {REPO_CONFIG} may not set option `{name}` of provider {provider}: it chooses where your files and keys go. \
                     Set it in your user config or with -o {name}=…"
                ),
            ));
        }
        let Some(spec) = declared.spec(name) else {
            return Err(file.diagnostic(
                value.span(),
                format!(
                    "unknown option `{name}` for provider {provider}; it accepts: {}",
                    declared.accepted()
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
        out.push((
            name.clone(),
            Value::new(text, file.definition(value.span())),
        ));
    }
    Ok(out)
}

/// The options set by `CBX_<PROVIDER>_<OPTION>` variables, checked.
fn env_options(
    env_vars: &[(String, String)],
    declared: &Declared<'_>,
) -> Result<Vec<(String, Value<String>)>> {
    let prefix = format!(
        "CBX_{}_",
        declared.provider.to_ascii_uppercase().replace('-', "_")
    );
    let mut out = Vec::new();
    for (var, value) in env_vars {
        let Some(rest) = var.strip_prefix(&prefix) else {
            continue;
        };
        let name = rest.to_ascii_lowercase().replace('_', "-");
        let Some(spec) = declared.spec(&name) else {
            return Err(declared.unknown(&name, format!("from environment variable {var}")));
        };
        check_kind(spec, value).map_err(|m| {
            Failure::new(
                ErrorKind::Usage,
                format!("{m} (from environment variable {var})"),
            )
        })?;
        out.push((
            name,
            Value::new(value.clone(), Definition::Env(var.clone())),
        ));
    }
    Ok(out)
}

/// The options set by `--option NAME=VALUE` flags, checked.
fn flag_options(
    flags: &[(String, String)],
    declared: &Declared<'_>,
) -> Result<Vec<(String, Value<String>)>> {
    let mut out = Vec::new();
    for (name, value) in flags {
        let Some(spec) = declared.spec(name) else {
            return Err(declared.unknown(name, format!("from --option {name}={value}")));
        };
        check_kind(spec, value)
            .map_err(|m| Failure::new(ErrorKind::Usage, format!("{m} (from --option)")))?;
        let definition = Definition::Flag(format!("--option {name}"));
        out.push((name.clone(), Value::new(value.clone(), definition)));
    }
    Ok(out)
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
