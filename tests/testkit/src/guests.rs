//! The test guests: small provider components built from `tests/guests` by this crate's build
//! script, for tests that run real components in the real host.
//!
//! - `probe` (`cbx-guest-probe`): a provider steered by its options; see
//!   `tests/guests/probe/src/lib.rs` for its option protocol.
//! - `malformed` (`cbx-guest-malformed`): a provider that answers with malformed data (SSH
//!   access that would inject ssh options, invalid UTF-8, huge lists); see
//!   `tests/guests/malformed/src/lib.rs`.
//! - `spoof` (`cbx-guest-spoof`): a provider whose description tries to draw a fake approval
//!   screen; see `tests/guests/spoof/src/lib.rs`.
//! - `broken` (`cbx-guest-broken`): the provider template with one of the usual mistakes of
//!   provider authors, chosen by its `fault` option, for the conformance suite to catch; see
//!   `tests/guests/broken/src/lib.rs`.
//! - `escape-wasi` (`cbx-guest-escape-wasi`): a WASI component; tries the environment,
//!   arguments, files, sockets, name lookups and processes through WASI and reports what it
//!   got; see `tests/guests/escape-wasi/src/lib.rs`.
//! - `template` (`cbx-provider-template`): the provider template of `providers/template`,
//!   built as a WASI component the way its README tells authors to (wasm32-wasip2 where the
//!   toolchain has it, else wasm32-wasip1 and the preview-1 adapter).

use std::path::PathBuf;

/// Where the build script wrote the components.
const DIR: &str = env!("CBX_TEST_GUESTS_DIR");

/// The path of the built component `name` (e.g. `probe`, or its package name `cbx-guest-probe`).
pub fn path(name: &str) -> PathBuf {
    let package = if name.starts_with("cbx-") {
        name.to_string()
    } else if name == "template" {
        "cbx-provider-template".to_string()
    } else {
        format!("cbx-guest-{name}")
    };
    PathBuf::from(DIR).join(format!("{package}.wasm"))
}

/// The bytes of the built component `name`; panics if it was not built.
pub fn bytes(name: &str) -> Vec<u8> {
    let path = path(name);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("test guest {name} is not built at {}: {e}", path.display()))
}
