//! Checking that a component fits cbx's contract, from its imports and exports.

use wasmtime::component::Component;

use super::capability::{self, Capability};
use super::inspect;
use crate::error::{ErrorKind, Failure};

/// The contract package this host speaks.
pub const PACKAGE: &str = "cbx:provider";
/// The contract versions this host accepts (semver-compatible with 0.1.0).
pub const SUPPORTED: &str = "0.1.x";

/// What a component's interface says about it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fit {
    /// The contract version it was built against.
    pub version: String,
    /// Whether it imports WASI (built for wasm32-wasip2).
    pub wasi: bool,
    /// The optional capabilities it exports.
    pub capabilities: Vec<Capability>,
}

/// Checks that `component` exports the provider interface of a supported contract version
/// and imports nothing but the contract's host interfaces and WASI.
pub fn check(engine: &wasmtime::Engine, component: &Component) -> anyhow::Result<Fit> {
    let (imports, exports) = inspect::interfaces(engine, component);
    check_interfaces(&imports, &exports)
}

/// [`check`], given the component's imports and exports.
pub fn check_interfaces(
    imports: &[inspect::Interface],
    exports: &[inspect::Interface],
) -> anyhow::Result<Fit> {
    let version_of = |name: &str| -> Option<(String, String)> {
        let rest = name.strip_prefix(PACKAGE)?.strip_prefix('/')?;
        let (iface, version) = rest.split_once('@')?;
        Some((iface.to_string(), version.to_string()))
    };
    let Some((_, version)) = exports
        .iter()
        .filter_map(|e| version_of(&e.name))
        .find(|(iface, _)| iface == "provider")
    else {
        return Err(Failure::new(
            ErrorKind::Usage,
            format!(
                "the component does not export {PACKAGE}/provider; it is not a cbx provider (it exports: {})",
                names(exports)
            ),
        )
        .into());
    };
    let all_versions: Vec<String> = imports
        .iter()
        .chain(exports)
        .filter_map(|i| version_of(&i.name).map(|(_, v)| v))
        .collect();
    for v in std::iter::once(&version).chain(&all_versions) {
        if !supported(v) {
            return Err(Failure::new(
                ErrorKind::Usage,
                format!(
                    "the component was built against {PACKAGE}@{v}; this cbx supports {PACKAGE}@{SUPPORTED}"
                ),
            )
            .hint("use a build of the provider for this contract version, or a cbx that supports its version")
            .into());
        }
    }
    let mut wasi = false;
    for i in imports {
        if i.name.starts_with("wasi:") {
            wasi = true;
        } else if version_of(&i.name).is_none() {
            return Err(Failure::new(
                ErrorKind::Usage,
                format!(
                    "the component imports `{}`, which cbx does not provide (providers may import only {PACKAGE} interfaces and WASI)",
                    i.name
                ),
            )
            .into());
        }
    }
    Ok(Fit {
        version,
        wasi,
        capabilities: capability::detect(exports),
    })
}

/// Whether contract version `v` is semver-compatible with 0.1.0.
fn supported(v: &str) -> bool {
    let mut parts = v.split(['.', '-', '+']);
    parts.next() == Some("0") && parts.next() == Some("1")
}

fn names(items: &[inspect::Interface]) -> String {
    if items.is_empty() {
        return "nothing".into();
    }
    items
        .iter()
        .map(|i| i.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn accepts_only_0_1_x() {
        assert!(super::supported("0.1.0"));
        assert!(super::supported("0.1.7"));
        assert!(!super::supported("0.2.0"));
        assert!(!super::supported("1.1.0"));
    }
}
