//! The wasm boundary: loading provider components and calling them.
//!
//! - [`load`]: **loading a provider** — [`Runtime`] (what an invocation's providers share),
//!   [`Runtime::load`] → [`Loaded`] → [`Loaded::configure`] → [`Configured`].
//! - [`registry`]: where providers come from (built into cbx, or installed files).
//! - [`install`]: installing and removing providers (the approval flow).
//! - [`screen`]: the approval screen: the host's facts, the provider's words fenced.
//! - [`contract`]: whether a component fits the contract (version, imports, exports).
//! - [`engine`]: the wasmtime engine and the on-disk cache of compiled components.
//! - [`described`]: the cache of what components said about themselves (`describe`).
//! - [`instance`]: one linked provider and its typed, limited calls.
//! - [`store`]: what the host keeps per instance, and how a fresh store is prepared.
//! - [`imports`]: the host side of each import — `http`, `log`, WASI — one file each.
//! - [`events`]: what a provider did, for the audit log.
//! - [`failure`]: why a call failed, and what that means for the user.
//! - [`capability`]: the optional interfaces a provider may export (`checkpoint`, `fork`).
//! - [`features`]: the feature words of `describe` the host acts on.
//! - [`limits`]: CPU, wall-clock, memory, request and log limits.
//! - [`bounds`]: caps on the size of what crosses the boundary (and `describe`'s rules).
//! - [`inspect`]: what a component imports and exports, read from its binary.
//! - [`bindings`]: the Rust bindings of the WIT contract.
//!
//! Nothing outside this module names wasmtime (a test checks it); the rest of cbx sees
//! [`Loaded`], [`Configured`] and [`ProviderInstance`].

pub mod bindings;
pub mod bounds;
pub mod capability;
pub mod contract;
pub mod described;
pub mod engine;
pub mod events;
pub mod failure;
pub mod features;
pub mod imports;
pub mod inspect;
pub mod install;
pub mod instance;
pub mod limits;
pub mod load;
pub mod registry;
pub mod screen;
pub mod store;

pub use bindings::api;
pub use capability::Capability;
pub use engine::Engine;
pub use failure::CallError;
pub use features::Feature;
pub use instance::ProviderInstance;
pub use limits::Limits;
pub use load::{Configured, Found, Loaded, Pending, Runtime, instantiate};
