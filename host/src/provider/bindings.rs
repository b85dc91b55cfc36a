//! Rust bindings of the WIT contract (`wit/provider.wit`), generated at compile time.

wasmtime::component::bindgen!({
    world: "provider-world",
    path: "../wit",
    imports: { default: async },
    exports: { default: async },
});

/// The contract's data types, under names the rest of cbx uses.
pub mod api {
    pub use super::cbx::provider::types::{
        Check, CheckStatus, CreateRequest, OptionKind, OptionSpec, Profile, ProviderError,
        ProviderInfo, RateLimit, Sandbox, SandboxState, Settings, SshAccess,
    };

    /// The contract version this host implements.
    pub const CONTRACT: &str = "cbx:provider@0.1.0";
}

impl std::fmt::Display for api::SandboxState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            api::SandboxState::Creating => "creating",
            api::SandboxState::Starting => "starting",
            api::SandboxState::Ready => "ready",
            api::SandboxState::Stopping => "stopping",
            api::SandboxState::Stopped => "stopped",
            api::SandboxState::Archived => "archived",
            api::SandboxState::Failed => "failed",
            api::SandboxState::Deleted => "deleted",
            api::SandboxState::Unknown => "unknown",
        })
    }
}
