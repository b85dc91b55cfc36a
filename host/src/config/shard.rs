//! The shard settings: `[shard] max-count`, the most sandboxes one `cbx shard` may lease (in
//! the user's config or a repository's `cbx.toml`; the layer of highest precedence wins).

use anyhow::Result;
use serde::Deserialize;
use toml::Spanned;

use super::Config;
use crate::error::{ErrorKind, Failure};
use crate::provenance::{Definition, Value};

/// The most shards cbx leases at once without a `[shard] max-count` (a typo such as
/// `--count 100` should not lease a hundred sandboxes).
pub const DEFAULT_MAX_COUNT: u32 = 32;

/// `[shard]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawShard {
    max_count: Option<Spanned<i64>>,
}

impl Config {
    /// The most shards one `cbx shard` may lease, and where that came from: `[shard]
    /// max-count` of the repository's or the user's config, else [`DEFAULT_MAX_COUNT`]. A value
    /// below 1 is refused (exit 2) pointing at its line.
    pub fn shard_max_count(&self) -> Result<Value<u32>> {
        let mut chosen = Value::new(DEFAULT_MAX_COUNT, Definition::Default);
        for file in self.files() {
            let Some(v) = file.raw.shard.as_ref().and_then(|s| s.max_count.as_ref()) else {
                continue;
            };
            let n = u32::try_from(*v.get_ref())
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    file.diagnostic(
                        v.span(),
                        "shard.max-count: must be a whole number from 1 up",
                    )
                })?;
            chosen = Value::new(n, file.definition(v.span()));
        }
        Ok(chosen)
    }

    /// Checks `count` against [`Config::shard_max_count`]; the error names the key and the
    /// file that set it.
    pub fn check_shard_count(&self, count: u32) -> Result<()> {
        if count == 0 {
            return Err(Failure::new(ErrorKind::Usage, "--count must be at least 1").into());
        }
        let max = self.shard_max_count()?;
        if count <= max.val {
            return Ok(());
        }
        let (what, hint) = match &max.definition {
            Definition::Default => (
                format!("cbx's limit of {} shards", max.val),
                "set a higher `[shard] max-count` in cbx.toml or your user config".to_string(),
            ),
            d => (
                format!("`[shard] max-count = {}` ({d})", max.val),
                format!("run fewer shards, or raise max-count in {}", d.place()),
            ),
        };
        Err(Failure::new(
            ErrorKind::Usage,
            format!("--count {count} is more than {what}"),
        )
        .hint(hint)
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::load_for_test as load;

    #[test]
    fn the_cap_comes_from_the_repository_over_the_user_and_names_its_line() {
        let (_d, cfg) = load("", "");
        assert_eq!(cfg.shard_max_count().unwrap().val, DEFAULT_MAX_COUNT);
        cfg.check_shard_count(DEFAULT_MAX_COUNT).unwrap();
        let err = cfg.check_shard_count(DEFAULT_MAX_COUNT + 1).unwrap_err();
        assert!(err.to_string().contains("cbx's limit of 32"), "{err}");

        let (_d, cfg) = load("[shard]\nmax-count = 10\n", "\n[shard]\nmax-count = 3\n");
        assert_eq!(cfg.shard_max_count().unwrap().val, 3);
        cfg.check_shard_count(3).unwrap();
        let err = cfg.check_shard_count(4).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("--count 4 is more than `[shard] max-count = 3`"),
            "{text}"
        );
        assert!(text.contains("cbx.toml:3"), "{text}");
        assert_eq!(crate::error::exit_code(&err), 2);
        assert!(cfg.check_shard_count(0).is_err());
    }

    #[test]
    fn a_cap_below_one_points_at_its_line() {
        let (_d, cfg) = load("", "[shard]\nmax-count = 0\n");
        let err = cfg.shard_max_count().unwrap_err();
        assert!(format!("{err:#}").contains("shard.max-count"), "{err:#}");
    }
}
