//! Rust bindings of the WIT contract (`wit/provider.wit`), generated at compile time.

wasmtime::component::bindgen!({
    world: "provider-world",
    path: "../wit",
    // `send` may trap: a provider over its request caps, or sending an oversized request, is
    // stopped at once rather than told and trusted to stop.
    imports: {
        "cbx:provider/http.send": async | trappable,
        default: async,
    },
    exports: { default: async },
});

/// Bindings of the optional capability interfaces (`checkpoint`, `fork`), sharing the core
/// bindings' types. Only their export indices are used: a component may export any subset,
/// so the host looks each one up itself (`capability.rs`) rather than requiring this world.
pub mod capable {
    wasmtime::component::bindgen!({
        world: "capable-provider-world",
        path: "../wit",
        with: {
            "cbx:provider/types": super::cbx::provider::types,
            "cbx:provider/http": super::cbx::provider::http,
            "cbx:provider/log": super::cbx::provider::log,
        },
        imports: { default: async },
        exports: { default: async },
    });
}

/// The contract's data types, under names the rest of cbx uses.
pub mod api {
    pub use super::capable::exports::cbx::provider::checkpoint::{CheckpointInfo, CheckpointState};
    pub use super::capable::exports::cbx::provider::fork::ForkError;
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

impl api::CheckStatus {
    /// The word `doctor` reports: `ok`, `warn` or `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            api::CheckStatus::Ok => "ok",
            api::CheckStatus::Warn => "warn",
            api::CheckStatus::Fail => "fail",
        }
    }
}

/// As `doctor --json` writes it (docs/cli.md): `"ok"`, `"warn"` or `"fail"`.
impl serde::Serialize for api::CheckStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl api::OptionKind {
    /// The word `providers inspect` reports: `text`, `integer` or `boolean`.
    pub fn as_str(self) -> &'static str {
        match self {
            api::OptionKind::Text => "text",
            api::OptionKind::Integer => "integer",
            api::OptionKind::Boolean => "boolean",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::api::CheckStatus;

    #[test]
    fn check_statuses_serialize_as_words() {
        for (status, word) in [
            (CheckStatus::Ok, "\"ok\""),
            (CheckStatus::Warn, "\"warn\""),
            (CheckStatus::Fail, "\"fail\""),
        ] {
            assert_eq!(serde_json::to_string(&status).unwrap(), word);
        }
    }
}
