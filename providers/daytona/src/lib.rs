//! cbx's Daytona provider: a WebAssembly component that translates cbx's lease operations into
//! Daytona's REST API through the host's `http` import.
//!
//! The host owns credentials, retries, polling, timeouts and labels; every export here is one
//! request (or one pagination walk) and a translation of its answer.

wit_bindgen::generate!({ world: "capable-provider-world", path: "../../wit" });

mod api;
mod capabilities;
mod config;
mod encode;
mod errors;
mod ops;
mod scopes;
mod ssh;
mod states;
mod transport;

use exports::cbx::provider::provider::{
    Check, CreateRequest, Guest, Labels, Profile, ProviderError, ProviderInfo, Sandbox, Settings,
    SshAccess,
};

use exports::cbx::provider::checkpoint::CheckpointInfo;
use exports::cbx::provider::fork::ForkError;

use crate::config::Config;
use crate::ops::Daytona;
use crate::transport::Host;

/// The component's export implementation.
pub struct DaytonaProvider;

/// Runs `f` against a client for the stored configuration, or fails if `configure` was not called.
fn with_client<R>(
    f: impl FnOnce(&Daytona<'_, Host>) -> Result<R, ProviderError>,
) -> Result<R, ProviderError> {
    let cfg = config::current()?;
    f(&Daytona::new(&cfg, &Host))
}

impl Guest for DaytonaProvider {
    fn describe() -> ProviderInfo {
        ProviderInfo {
            name: "daytona".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "Daytona cloud sandboxes".to_string(),
            options: config::option_specs(),
            features: ["start", "stop", "touch", "labels", "checkpoint", "fork"]
                .map(String::from)
                .to_vec(),
        }
    }

    fn configure(settings: Settings) -> Result<Profile, ProviderError> {
        let cfg = Config::from_settings(&settings)?;
        let profile = cfg.profile();
        config::store(cfg);
        Ok(profile)
    }

    fn doctor() -> Result<Vec<Check>, ProviderError> {
        with_client(|d| d.doctor())
    }

    fn create(request: CreateRequest) -> Result<Sandbox, ProviderError> {
        with_client(|d| d.create(&request))
    }

    fn get(id: String) -> Result<Sandbox, ProviderError> {
        with_client(|d| d.get(&id))
    }

    fn list(labels: Labels) -> Result<Vec<Sandbox>, ProviderError> {
        with_client(|d| d.list(&labels))
    }

    fn start(id: String) -> Result<Sandbox, ProviderError> {
        with_client(|d| d.start(&id))
    }

    fn stop(id: String) -> Result<Sandbox, ProviderError> {
        with_client(|d| d.stop(&id))
    }

    fn delete(id: String) -> Result<(), ProviderError> {
        with_client(|d| d.delete(&id))
    }

    fn set_labels(id: String, labels: Labels) -> Result<Sandbox, ProviderError> {
        with_client(|d| d.set_labels(&id, &labels))
    }

    fn touch(id: String) -> Result<(), ProviderError> {
        with_client(|d| d.touch(&id))
    }

    fn mint_ssh_access(id: String) -> Result<SshAccess, ProviderError> {
        with_client(|d| d.mint_ssh_access(&id))
    }
}

impl exports::cbx::provider::checkpoint::Guest for DaytonaProvider {
    fn create_checkpoint(id: String, name: String) -> Result<(), ProviderError> {
        with_client(|d| d.create_checkpoint(&id, &name))
    }

    fn get_checkpoint(name: String) -> Result<CheckpointInfo, ProviderError> {
        with_client(|d| d.get_checkpoint(&name))
    }

    fn list_checkpoints(prefix: String) -> Result<Vec<CheckpointInfo>, ProviderError> {
        with_client(|d| d.list_checkpoints(&prefix))
    }

    fn delete_checkpoint(id: String) -> Result<(), ProviderError> {
        with_client(|d| d.delete_checkpoint(&id))
    }

    fn create_from_checkpoint(
        name: String,
        request: CreateRequest,
    ) -> Result<Sandbox, ProviderError> {
        with_client(|d| d.create_from(&request, &name))
    }
}

impl exports::cbx::provider::fork::Guest for DaytonaProvider {
    fn fork(id: String, request: CreateRequest) -> Result<Sandbox, ForkError> {
        let cfg = config::current().map_err(ForkError::Failed)?;
        Daytona::new(&cfg, &Host).fork(&id, &request)
    }
}

// Export only in the component: the export symbols' names (`cbx:provider/...`) cannot be
// linked into a native shared library, which `cargo test` builds.
#[cfg(target_arch = "wasm32")]
export!(DaytonaProvider);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_lists_options_and_features() {
        let info = DaytonaProvider::describe();
        assert_eq!(info.name, "daytona");
        assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(
            info.features,
            ["start", "stop", "touch", "labels", "checkpoint", "fork"]
        );
        let names: Vec<&str> = info.options.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "snapshot",
                "target",
                "user",
                "work-root",
                "ssh-access-minutes",
                "auto-archive-minutes",
                "auto-delete-minutes"
            ]
        );
        assert!(
            info.options
                .iter()
                .all(|o| o.default.is_some() && !o.description.contains('\n'))
        );
    }

    #[test]
    fn exports_before_configure_are_invalid_config() {
        // Tests run on their own threads, so this thread has no configuration.
        let err = DaytonaProvider::get("x".to_string()).unwrap_err();
        assert!(
            matches!(err, ProviderError::InvalidConfig(ref m) if m == "configure was not called")
        );
        assert!(matches!(
            DaytonaProvider::doctor(),
            Err(ProviderError::InvalidConfig(_))
        ));
    }
}
