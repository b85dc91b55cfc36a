//! The wasm boundary: loading provider components and calling them.
//!
//! - [`manifest`]: the provider manifest and its validation.
//! - [`registry`]: where providers come from (embedded, or files).
//! - [`engine`]: the wasmtime engine and the on-disk cache of compiled components.
//! - [`limits`]: CPU, wall-clock and memory limits.
//! - [`instance`]: one instantiated provider and its typed, limited calls.
//! - [`inspect`]: what a component imports and exports, read from its binary.
//!
//! Nothing outside this module touches wasmtime; the rest of cbx sees [`ProviderInstance`].

pub mod bindings;
pub mod engine;
pub mod inspect;
pub mod instance;
pub mod limits;
pub mod manifest;
pub mod registry;

pub use bindings::api;
pub use engine::Engine;
pub use instance::{CallError, ProviderInstance};
pub use limits::Limits;
