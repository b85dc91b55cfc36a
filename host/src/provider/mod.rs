//! The wasm boundary: loading provider components and calling them.
//!
//! - [`manifest`]: the provider manifest and its validation.
//! - [`registry`]: where providers come from (embedded, or installed files).
//! - [`contract`]: whether a component fits the contract (version, imports, exports).
//! - [`engine`]: the wasmtime engine and the on-disk cache of compiled components.
//! - [`limits`]: CPU, wall-clock and memory limits.
//! - [`instance`]: one instantiated provider and its typed, limited calls.
//! - [`inspect`]: what a component imports and exports, read from its binary.
//! - [`wasi`]: WASI linked deny-by-default, for components built for wasm32-wasip2.
//!
//! Nothing outside this module touches wasmtime; the rest of cbx sees [`ProviderInstance`].

pub mod bindings;
pub mod contract;
pub mod engine;
pub mod inspect;
pub mod instance;
pub mod limits;
pub mod manifest;
pub mod registry;
pub mod wasi;

pub use bindings::api;
pub use engine::Engine;
pub use instance::{CallError, ProviderEvent, ProviderInstance};
pub use limits::Limits;

use std::sync::Arc;

use anyhow::{Context as _, Result};

use crate::grant::Grant;
use crate::grant::http::{HttpGateway, HttpLimits};
use crate::redact::Redactor;

/// Compiles (or loads from cache) `package`'s component and links it under `grant`, ready for
/// its first call. The one way cbx turns a provider package into something callable.
pub fn instantiate(
    engine: &Engine,
    package: &registry::ProviderPackage,
    grant: Arc<Grant>,
    redactor: Redactor,
    limits: Limits,
    http_limits: HttpLimits,
) -> Result<(
    ProviderInstance,
    wasmtime::component::Component,
    engine::Loaded,
)> {
    let name = package.name();
    let (component, how) = engine
        .load(&package.component)
        .with_context(|| format!("load provider {name}"))?;
    contract::check(engine.wasmtime(), &component)
        .with_context(|| format!("provider {name} does not fit this cbx"))?;
    let gateway = HttpGateway::new(grant, http_limits, redactor.clone())?;
    let instance = ProviderInstance::new(name, engine, &component, gateway, redactor, limits)?;
    Ok((instance, component, how))
}
