//! The toolchain check: its build script builds a tiny core guest and a tiny WASI guest the
//! way cbx's real builds do, so `cargo build -p cbx-toolchain-check` (run by `tests/setup.sh`)
//! fails early, with a message naming what to install, on a machine that cannot build cbx.

/// The tiny core guest's component.
pub const CORE_COMPONENT: &str = concat!(env!("CBX_CHECK_GUESTS_DIR"), "/cbx-check-core.wasm");

/// The tiny WASI guest's component.
pub const WASI_COMPONENT: &str = concat!(env!("CBX_CHECK_GUESTS_DIR"), "/cbx-check-wasi.wasm");
