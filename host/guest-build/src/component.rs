//! Turns what the wasm linker produced into a component: a core module is wrapped by
//! `wit-component` (its WIT comes from wit-bindgen's component-type section), a WASI
//! preview-1 module is wrapped together with the preview-1 *reactor* adapter, which maps its
//! `wasi_snapshot_preview1` imports onto WASI 0.2 interfaces.

use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};

use crate::toolchain::Finish;

/// The component made of `linked` (the linker's output), as `finish` says.
pub fn finish(linked: Vec<u8>, finish: Finish) -> Result<Vec<u8>, String> {
    match finish {
        Finish::Encode => encode_component(&linked),
        Finish::Adapt => adapt_component(&linked),
        Finish::AsIs => Ok(linked),
    }
}

/// Wraps a core module that carries wit-bindgen's component-type section into a component.
pub fn encode_component(module: &[u8]) -> Result<Vec<u8>, String> {
    wit_component::ComponentEncoder::default()
        .module(module)
        .map_err(|e| format!("{e:#}"))?
        .validate(true)
        .encode()
        .map_err(|e| format!("{e:#}"))
}

/// Wraps a WASI preview-1 core module into a component that imports WASI 0.2.
pub fn adapt_component(module: &[u8]) -> Result<Vec<u8>, String> {
    wit_component::ComponentEncoder::default()
        .module(module)
        .map_err(|e| format!("{e:#}"))?
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )
        .map_err(|e| format!("the WASI preview-1 adapter: {e:#}"))?
        .validate(true)
        .encode()
        .map_err(|e| format!("{e:#}"))
}
