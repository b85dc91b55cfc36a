//! The sync settings: which transport sends the files (`[sync] transport`,
//! `CBX_SYNC_TRANSPORT`, `--sync-transport`; default `auto`).

use anyhow::Result;

use super::Config;
use crate::environment::Environment;
use crate::error::{ErrorKind, Failure};
use crate::provenance::{self, Definition, Value};
use crate::sync::TransportChoice;

/// The variable that chooses the sync transport.
pub const TRANSPORT_VAR: &str = "CBX_SYNC_TRANSPORT";

impl Config {
    /// The sync transport: `--sync-transport` (`flag`), else `CBX_SYNC_TRANSPORT`, else the
    /// repository's or user's `[sync] transport`, else `auto`. An unknown value is refused
    /// (exit 2) naming where it was set.
    pub fn sync_transport(
        &self,
        flag: Option<&str>,
        env: &Environment,
    ) -> Result<Value<TransportChoice>> {
        let mut candidates = vec![Value::new(Ok(TransportChoice::Auto), Definition::Default)];
        for file in self.files() {
            if let Some(t) = file.raw.sync.as_ref().and_then(|s| s.transport.as_ref()) {
                let parsed = t
                    .get_ref()
                    .parse()
                    .map_err(|e: String| file.diagnostic(t.span(), format!("sync.transport: {e}")));
                candidates.push(Value::new(parsed, file.definition(t.span())));
            }
        }
        let from_text = |text: &str, place: String| -> Result<TransportChoice> {
            text.parse::<TransportChoice>()
                .map_err(|e| Failure::new(ErrorKind::Usage, format!("{e} (from {place})")).into())
        };
        if let Some(text) = env.var(TRANSPORT_VAR).filter(|v| !v.is_empty()) {
            let parsed = from_text(&text, format!("environment variable {TRANSPORT_VAR}"));
            candidates.push(Value::new(parsed, Definition::Env(TRANSPORT_VAR.into())));
        }
        if let Some(text) = flag {
            let parsed = from_text(text, "--sync-transport".into());
            candidates.push(Value::new(
                parsed,
                Definition::Flag("--sync-transport".into()),
            ));
        }
        let chosen = provenance::pick(candidates).expect("the default is a candidate");
        Ok(Value::new(chosen.val?, chosen.definition))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::load_for_test as load;

    #[test]
    fn the_transport_comes_from_the_layer_of_highest_precedence() {
        let none = Environment::default();
        let (_d, cfg) = load("", "");
        let v = cfg.sync_transport(None, &none).unwrap();
        assert_eq!(
            (v.val, v.definition),
            (TransportChoice::Auto, Definition::Default)
        );
        let (_d, cfg) = load(
            "[sync]\ntransport = \"rsync\"\n",
            "[sync]\ntransport = \"tar\"\n",
        );
        let v = cfg.sync_transport(None, &none).unwrap();
        assert_eq!(v.val, TransportChoice::Tar);
        assert!(matches!(v.definition, Definition::RepoFile(_)));
        let env = Environment::from_pairs([(TRANSPORT_VAR, "rsync")]);
        assert_eq!(
            cfg.sync_transport(None, &env).unwrap().val,
            TransportChoice::Rsync
        );
        let v = cfg.sync_transport(Some("auto"), &env).unwrap();
        assert_eq!(v.val, TransportChoice::Auto);
        assert_eq!(v.definition, Definition::Flag("--sync-transport".into()));
    }

    #[test]
    fn an_unknown_transport_names_where_it_was_set() {
        let (_d, cfg) = load("", "# x\n[sync]\ntransport = \"scp\"\n");
        let err = cfg
            .sync_transport(None, &Environment::default())
            .unwrap_err();
        assert_eq!(crate::error::exit_code(&err), 2);
        let text = err.to_string();
        assert!(text.contains("cbx.toml:3:13: sync.transport: unknown sync transport `scp`; use auto, rsync or tar"), "{text}");
        // A flag above it wins, and the file's value is then not an error.
        assert_eq!(
            cfg.sync_transport(Some("tar"), &Environment::default())
                .unwrap()
                .val,
            TransportChoice::Tar
        );
        let env = Environment::from_pairs([(TRANSPORT_VAR, "ftp")]);
        let err = cfg.sync_transport(None, &env).unwrap_err();
        assert!(
            err.to_string()
                .contains("(from environment variable CBX_SYNC_TRANSPORT)"),
            "{err}"
        );
    }
}
