//! Optional capabilities: interfaces of the contract a provider may export beside `provider`
//! (`checkpoint`, `fork`). The host reads them from the component's exports when it loads it;
//! a command that needs one the provider lacks fails before it does anything.

use super::bindings::api;
use super::inspect::Interface;
use crate::error::{ErrorKind, Failure};

/// The contract's package (`contract::PACKAGE`, which uses this module, so not imported).
const PACKAGE: &str = "cbx:provider";

/// An optional interface of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// `cbx:provider/checkpoint`: save a sandbox; create sandboxes from what was saved.
    Checkpoint,
    /// `cbx:provider/fork`: copy a running sandbox into a new one.
    Fork,
}

impl Capability {
    /// Every capability this host knows, in the order it reports them.
    pub const ALL: [Capability; 2] = [Capability::Checkpoint, Capability::Fork];

    /// Its interface name, which is also the word users see.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Checkpoint => "checkpoint",
            Capability::Fork => "fork",
        }
    }

    /// What it lets a provider do, for error messages.
    fn purpose(self) -> &'static str {
        match self {
            Capability::Checkpoint => "save a sandbox as a checkpoint and create sandboxes from it",
            Capability::Fork => "copy a running sandbox into a new one",
        }
    }
}

/// What a `fork` call gave: the new sandbox, or the service's refusal to fork this one (the
/// host falls back to creating sandboxes).
#[derive(Debug, Clone)]
pub enum Forked {
    /// The new sandbox, as accepted.
    Sandbox(api::Sandbox),
    /// Why this sandbox cannot be forked.
    NotForkable(String),
}

/// The capabilities among `exports`: an export named `cbx:provider/<capability>@<version>`.
/// (Whether its functions have the right types is checked when the component is instantiated.)
pub fn detect(exports: &[Interface]) -> Vec<Capability> {
    Capability::ALL
        .into_iter()
        .filter(|c| {
            let prefix = format!("{PACKAGE}/{}@", c.as_str());
            exports.iter().any(|e| e.name.starts_with(&prefix))
        })
        .collect()
}

/// `Ok` if `has` includes `needed`; else the error a command gives before doing anything:
/// exit 2, naming the capability and the provider.
pub fn require(
    provider: &str,
    has: &[Capability],
    needed: Capability,
    command: &str,
) -> anyhow::Result<()> {
    if has.contains(&needed) {
        return Ok(());
    }
    Err(Failure::new(
        ErrorKind::Usage,
        format!(
            "{command} needs the `{}` capability, and provider {provider} does not offer it (it cannot {})",
            needed.as_str(),
            needed.purpose()
        ),
    )
    .hint(format!(
        "use a provider that exports {PACKAGE}/{} (see `cbx providers inspect NAME`), e.g. --provider daytona",
        needed.as_str()
    ))
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(name: &str) -> Interface {
        Interface {
            name: name.into(),
            functions: Vec::new(),
        }
    }

    #[test]
    fn detects_capabilities_by_export_name() {
        let exports = [
            export("cbx:provider/provider@0.1.0"),
            export("cbx:provider/fork@0.1.0"),
            export("other:pkg/checkpoint@0.1.0"),
        ];
        assert_eq!(detect(&exports), [Capability::Fork]);
        assert!(detect(&exports[..1]).is_empty());
    }

    #[test]
    fn a_missing_capability_is_a_usage_error_naming_it_and_the_provider() {
        let err = require(
            "ssh",
            &[Capability::Fork],
            Capability::Checkpoint,
            "cbx checkpoint create",
        )
        .unwrap_err();
        let failure = err.downcast_ref::<Failure>().unwrap();
        assert_eq!(failure.kind, ErrorKind::Usage);
        let text = err.to_string();
        assert!(
            text.contains("`checkpoint`") && text.contains("provider ssh"),
            "{text}"
        );
        assert!(require("d", &[Capability::Fork], Capability::Fork, "x").is_ok());
    }
}
