//! Why a provider call failed, and what that means for the user: [`CallError`] and its
//! mapping to a [`Failure`] with a kind (the exit code) and a hint.

use super::bindings::api::ProviderError;
use super::limits::LimitHit;
use crate::error::{ErrorKind, Failure};
use crate::grant::Grant;
use crate::grant::egress::Denial;
use crate::redact::Redactor;
use crate::terminal::inert;

/// Why a provider call failed.
#[derive(Debug)]
pub enum CallError {
    /// The provider returned one of the contract's typed errors.
    Provider(ProviderError),
    /// The provider made a request its grant does not allow. Always fatal to the operation.
    Denied(Denial),
    /// The component failed: it trapped, hit a limit or returned something unusable.
    Fault {
        /// The provider.
        provider: String,
        /// The operation.
        op: &'static str,
        /// What happened.
        message: String,
        /// The limit it hit, if that was the cause.
        limit: Option<LimitHit>,
    },
    /// The provider, loaded on its first call, could not be loaded or configured: the cbx
    /// failure loading it eagerly would have been (kind, message and hint kept).
    Load(anyhow::Error),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Provider(e) => write!(f, "{}", provider_error_text(e)),
            CallError::Denied(d) => write!(f, "{d}"),
            CallError::Fault {
                provider,
                op,
                message,
                ..
            } => write!(f, "provider {provider} failed in `{op}`: {message}"),
            CallError::Load(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for CallError {}

/// The message inside a typed provider error.
pub fn provider_error_text(e: &ProviderError) -> String {
    match e {
        ProviderError::InvalidConfig(m)
        | ProviderError::Unauthorized(m)
        | ProviderError::Forbidden(m)
        | ProviderError::NotFound(m)
        | ProviderError::Conflict(m)
        | ProviderError::Quota(m)
        | ProviderError::Unavailable(m)
        | ProviderError::Other(m) => m.clone(),
        ProviderError::RateLimited(r) => r.message.clone(),
    }
}

/// Turns a failed call of the provider running under `grant` into a cbx failure with a kind
/// and a hint, secrets removed.
pub fn to_failure(err: CallError, grant: &Grant, redactor: &Redactor) -> anyhow::Error {
    let name = &grant.provider;
    // What the provider said is quoted inert: one line that cannot steer the terminal.
    let redact = |s: &str| inert(&redactor.redact(s)).into_owned();
    let f = match err {
        CallError::Load(e) => return e,
        CallError::Provider(ref pe) => typed(pe, name, grant, redact(&provider_error_text(pe))),
        CallError::Denied(ref d) => Failure::new(ErrorKind::Denied, redact(&d.to_string())).hint(format!(
            "a provider reaches only what its grant allows; `cbx providers inspect {name}` shows the grant"
        )),
        CallError::Fault { .. } => Failure::new(ErrorKind::Provider, redact(&err.to_string()))
            .hint("this is a defect in the provider component; cbx stopped it safely"),
    };
    f.into()
}

/// The failure for a typed provider error carrying `msg`.
fn typed(pe: &ProviderError, name: &str, grant: &Grant, msg: String) -> Failure {
    match pe {
        ProviderError::InvalidConfig(_) => Failure::new(ErrorKind::Usage, msg).hint(format!(
            "`cbx providers inspect {name}` lists its options and where each value came from"
        )),
        ProviderError::Unauthorized(_) => {
            let used: Vec<String> = grant
                .credentials
                .iter()
                .filter(|c| c.secret)
                .map(|c| c.env.clone())
                .collect();
            Failure::new(ErrorKind::Auth, msg).hint(if used.is_empty() {
                "the service rejected the request as unauthenticated".to_string()
            } else {
                format!(
                    "the service rejected the credentials from {}; check the value",
                    used.join(", ")
                )
            })
        }
        ProviderError::Forbidden(_) => Failure::new(ErrorKind::Auth, msg)
            .hint("the credentials are valid but lack permission for this operation"),
        ProviderError::NotFound(_) => Failure::new(ErrorKind::NotFound, msg),
        ProviderError::Quota(_) => Failure::new(ErrorKind::Sandbox, msg)
            .hint("stop or delete sandboxes you no longer need, or raise your account's limits"),
        ProviderError::RateLimited(_) => Failure::new(ErrorKind::Other, msg).hint(
            "the service is still rate limiting after several retries; wait a minute and try again",
        ),
        ProviderError::Unavailable(_) => Failure::new(ErrorKind::Other, msg)
            .hint("the service looks unavailable; try again shortly"),
        ProviderError::Conflict(_) | ProviderError::Other(_) => Failure::new(ErrorKind::Other, msg),
    }
}
