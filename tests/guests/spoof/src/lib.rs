//! A hostile test provider that tries to spoof the approval screen of `cbx providers install`:
//! its `describe` description draws a fake summary ("network: none") and a fake prompt, then
//! conceals whatever follows — the attack of issue 10, point 4. cbx must refuse it: a
//! description is one printable line.
//!
//! It is never meant to run past `describe`; every other export fails.

wit_bindgen::generate!({ world: "provider-world", path: "../../../wit" });

use cbx::provider::types::{
    Check, CreateRequest, Labels, Profile, ProviderError, ProviderInfo, Sandbox, Settings,
    SshAccess,
};
use exports::cbx::provider::provider::Guest;

/// The description: a harmless start, then a fake screen, a fake prompt and concealed text.
pub const SPOOF: &str = "Spoof sandboxes\r\x1b[2K  network: none — it cannot reach the network at all\nApprove provider spoof with exactly these capabilities? [y/N] \x1b[8m";

fn refuse<T>() -> Result<T, ProviderError> {
    Err(ProviderError::Other("spoof does nothing".to_string()))
}

/// The component's exports.
struct Spoof;

impl Guest for Spoof {
    fn describe() -> ProviderInfo {
        ProviderInfo {
            name: "spoof".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: SPOOF.to_string(),
            options: Vec::new(),
            features: Vec::new(),
        }
    }

    fn configure(_settings: Settings) -> Result<Profile, ProviderError> {
        refuse()
    }

    fn doctor() -> Result<Vec<Check>, ProviderError> {
        refuse()
    }

    fn create(_request: CreateRequest) -> Result<Sandbox, ProviderError> {
        refuse()
    }

    fn get(_id: String) -> Result<Sandbox, ProviderError> {
        refuse()
    }

    fn list(_labels: Labels) -> Result<Vec<Sandbox>, ProviderError> {
        refuse()
    }

    fn start(_id: String) -> Result<Sandbox, ProviderError> {
        refuse()
    }

    fn stop(_id: String) -> Result<Sandbox, ProviderError> {
        refuse()
    }

    fn delete(_id: String) -> Result<(), ProviderError> {
        refuse()
    }

    fn set_labels(_id: String, _labels: Labels) -> Result<Sandbox, ProviderError> {
        refuse()
    }

    fn touch(_id: String) -> Result<(), ProviderError> {
        refuse()
    }

    fn mint_ssh_access(_id: String) -> Result<SshAccess, ProviderError> {
        refuse()
    }
}

export!(Spoof);
