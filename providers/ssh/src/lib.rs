//! cbx's ssh provider: leases on an existing SSH host that you already have.
//!
//! The component has an empty grant: it imports nothing but the contract's types, never
//! reaches the network and never sees a key. It turns the options (host, port, user, key path)
//! into SSH access for cbx, whose own `ssh` and `rsync` do the work. Each lease is an id that
//! carries its labels (see [`codec`]), so the provider needs no storage either.

wit_bindgen::generate!({ world: "provider-world", path: "../../wit" });

mod codec;
mod config;
mod ops;

use exports::cbx::provider::provider::{
    Check, CreateRequest, Guest, Labels, Profile, ProviderError, ProviderInfo, Sandbox, Settings,
    SshAccess,
};

use crate::config::Config;
use crate::ops::SshHost;

/// The component's export implementation.
pub struct SshProvider;

/// Runs `f` against the stored configuration, or fails if `configure` was not called.
fn with_host<R>(
    f: impl FnOnce(&SshHost<'_>) -> Result<R, ProviderError>,
) -> Result<R, ProviderError> {
    let cfg = config::current()?;
    f(&SshHost::new(&cfg))
}

impl Guest for SshProvider {
    fn describe() -> ProviderInfo {
        ProviderInfo {
            name: ops::NAME.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "An existing SSH host you already have".to_string(),
            options: config::option_specs(),
            features: vec!["persistent".to_string()],
        }
    }

    fn configure(settings: Settings) -> Result<Profile, ProviderError> {
        let cfg = Config::from_settings(&settings)?;
        let profile = cfg.profile();
        config::store(cfg);
        Ok(profile)
    }

    fn doctor() -> Result<Vec<Check>, ProviderError> {
        with_host(|h| Ok(h.doctor()))
    }

    fn create(request: CreateRequest) -> Result<Sandbox, ProviderError> {
        with_host(|h| h.create(&request))
    }

    fn get(id: String) -> Result<Sandbox, ProviderError> {
        with_host(|h| h.get(&id))
    }

    fn list(_labels: Labels) -> Result<Vec<Sandbox>, ProviderError> {
        with_host(|h| Ok(h.list()))
    }

    fn start(id: String) -> Result<Sandbox, ProviderError> {
        // Always running: nothing to start.
        with_host(|h| h.get(&id))
    }

    fn stop(id: String) -> Result<Sandbox, ProviderError> {
        // An existing host is not cbx's to stop: the lease stays ready.
        with_host(|h| h.get(&id))
    }

    fn delete(id: String) -> Result<(), ProviderError> {
        with_host(|h| h.delete(&id))
    }

    fn set_labels(id: String, _labels: Labels) -> Result<Sandbox, ProviderError> {
        with_host(|h| h.set_labels(&id))
    }

    fn touch(_id: String) -> Result<(), ProviderError> {
        // No idle timer to reset.
        with_host(|_| Ok(()))
    }

    fn mint_ssh_access(id: String) -> Result<SshAccess, ProviderError> {
        with_host(|h| h.mint_ssh_access(&id))
    }
}

// Export only in the component: the export symbols' names (`cbx:provider/...`) cannot be
// linked into a native shared library, which `cargo test` builds.
#[cfg(target_arch = "wasm32")]
export!(SshProvider);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_lists_options_and_features() {
        let info = SshProvider::describe();
        assert_eq!(info.name, "ssh");
        assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(info.features, ["persistent"]);
        let names: Vec<&str> = info.options.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(
            names,
            ["host", "port", "user", "identity-file", "work-root"]
        );
        let defaults: Vec<Option<&str>> =
            info.options.iter().map(|o| o.default.as_deref()).collect();
        assert_eq!(defaults, [None, Some("22"), None, Some(""), Some("cbx")]);
        assert!(info.options.iter().all(|o| !o.description.contains('\n')));
    }

    #[test]
    fn exports_before_configure_are_invalid_config() {
        // Tests run on their own threads, so this thread has no configuration.
        let err = SshProvider::get("x".to_string()).unwrap_err();
        assert!(
            matches!(err, ProviderError::InvalidConfig(ref m) if m == "configure was not called")
        );
    }

    #[test]
    fn a_lease_round_trips_through_the_exports() {
        SshProvider::configure(config::tests::full()).unwrap();
        let created = SshProvider::create(CreateRequest {
            name: "cbx-box-00000000000a".to_string(),
            labels: vec![("cbx".to_string(), "true".to_string())],
            idle_timeout_minutes: 0,
            ttl_minutes: 60,
        })
        .unwrap();
        for s in [
            SshProvider::get(created.id.clone()).unwrap(),
            SshProvider::start(created.id.clone()).unwrap(),
            SshProvider::stop(created.id.clone()).unwrap(),
            SshProvider::set_labels(created.id.clone(), Vec::new()).unwrap(),
        ] {
            assert_eq!(s.id, created.id);
            assert_eq!(s.labels, created.labels);
        }
        assert!(SshProvider::list(Vec::new()).unwrap().is_empty());
        SshProvider::touch(created.id.clone()).unwrap();
        SshProvider::delete(created.id.clone()).unwrap();
        assert_eq!(SshProvider::doctor().unwrap().len(), 3);
        assert_eq!(SshProvider::mint_ssh_access(created.id).unwrap().port, 2222);
    }
}
