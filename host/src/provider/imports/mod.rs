//! The host side of the imports a provider may use, one file per interface, as wasmtime's own
//! host crates are laid out: [`http`] (requests the host checks against the grant and
//! performs), [`log`] (lines into the host's log) and [`wasi`] (WASI, deny-by-default, for
//! components built for wasm32-wasip2).

pub mod http;
pub mod log;
pub mod wasi;

use super::bindings::cbx::provider::types as wit_types;
use super::store::HostState;

/// The contract's `types` interface has no functions.
impl wit_types::Host for HostState {}
