//! A configured provider: the loaded component, its grant, its options and profile, with the
//! host's retry policy and the mapping from provider errors to cbx failures.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::config::OptionValue;
use crate::error::{ErrorKind, Failure};
use crate::grant::Grant;
use crate::lease::claims::Claims;
use crate::lease::labels::Ownership;
use crate::provider::api::{self, ProviderError};
use crate::provider::instance::provider_error_text;
use crate::provider::{CallError, ProviderInstance};

/// How calls are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per operation, the first included.
    pub attempts: u32,
    /// First backoff; doubled per attempt.
    pub base: Duration,
    /// Longest single wait.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(500),
            max_wait: Duration::from_secs(30),
        }
    }
}

/// A provider ready for lease operations.
pub struct Session {
    /// The provider instance.
    pub provider: ProviderInstance,
    /// Its effective grant.
    pub grant: Arc<Grant>,
    /// What it says about itself.
    pub info: api::ProviderInfo,
    /// What it reported after accepting its settings.
    pub profile: api::Profile,
    /// The options it runs with.
    pub options: Vec<OptionValue>,
    /// This user's claims.
    pub claims: Claims,
    /// cbx's directories (SSH access and sync records live there too).
    pub dirs: crate::paths::Dirs,
    /// Suppress progress.
    pub quiet: bool,
    /// Retry policy.
    pub retry: RetryPolicy,
}

/// Whether repeating an operation is safe when it may already have taken effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// Safe to repeat (reads, deletes, label replacement, start/stop).
    Idempotent,
    /// Repeat only when the service said it did nothing (rate limiting).
    OnlyIfRejected,
}

macro_rules! with_retries {
    ($self:ident, $repeat:expr, |$p:ident| $call:expr) => {{
        let mut attempt = 1;
        loop {
            let $p = &mut $self.provider;
            match $call.await {
                Ok(v) => break Ok(v),
                Err(e) => match $self.retry_delay(&e, attempt, $repeat) {
                    Some(delay) => {
                        if !$self.quiet {
                            eprintln!(
                                "{}: {}; retrying in {} (attempt {} of {})",
                                $self.provider.name(),
                                $self.provider.redactor().redact(&e.to_string()),
                                crate::progress::human_duration(delay),
                                attempt + 1,
                                $self.retry.attempts
                            );
                        }
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                    }
                    None => break Err(e),
                },
            }
        }
    }};
}

impl Session {
    /// The provider's name.
    pub fn name(&self) -> &str {
        self.provider.name()
    }

    /// Whether the provider's sandboxes outlive their leases (an existing host): it declares
    /// the `persistent` feature.
    pub fn persistent(&self) -> bool {
        self.info
            .features
            .iter()
            .any(|f| f == crate::lease::lifecycle::FEATURE_PERSISTENT)
    }

    fn retry_delay(&self, err: &CallError, attempt: u32, repeat: Repeat) -> Option<Duration> {
        if attempt >= self.retry.attempts {
            return None;
        }
        let backoff = (self.retry.base * 2u32.saturating_pow(attempt - 1)).min(self.retry.max_wait);
        match err {
            CallError::Provider(ProviderError::RateLimited(r)) => Some(
                r.retry_after_ms
                    .map_or(backoff, Duration::from_millis)
                    .min(self.retry.max_wait),
            ),
            CallError::Provider(ProviderError::Conflict(_) | ProviderError::Unavailable(_))
                if repeat == Repeat::Idempotent =>
            {
                Some(backoff)
            }
            _ => None,
        }
    }

    /// Turns a failed call into a cbx failure with a kind and a hint.
    pub fn failure(&self, err: CallError) -> anyhow::Error {
        let name = self.name().to_string();
        let redact = |s: &str| self.provider.redactor().redact(s);
        let f = match &err {
            CallError::Provider(pe) => {
                let msg = redact(&provider_error_text(pe));
                match pe {
                    ProviderError::InvalidConfig(_) => Failure::new(ErrorKind::Usage, msg)
                        .hint(format!("`cbx providers inspect {name}` lists its options and where each value came from")),
                    ProviderError::Unauthorized(_) => {
                        let used: Vec<String> = self.grant.credentials.iter().filter(|c| c.secret).map(|c| c.env.clone()).collect();
                        Failure::new(ErrorKind::Auth, msg).hint(if used.is_empty() {
                            "the service rejected the request as unauthenticated".to_string()
                        } else {
                            format!("the service rejected the credentials from {}; check the value", used.join(", "))
                        })
                    }
                    ProviderError::Forbidden(_) => Failure::new(ErrorKind::Auth, msg)
                        .hint("the credentials are valid but lack permission for this operation"),
                    ProviderError::NotFound(_) => Failure::new(ErrorKind::NotFound, msg),
                    ProviderError::Quota(_) => Failure::new(ErrorKind::Sandbox, msg)
                        .hint("stop or delete sandboxes you no longer need, or raise your account's limits"),
                    ProviderError::RateLimited(_) => Failure::new(ErrorKind::Other, msg)
                        .hint("the service is still rate limiting after several retries; wait a minute and try again"),
                    ProviderError::Unavailable(_) => Failure::new(ErrorKind::Other, msg)
                        .hint("the service looks unavailable; try again shortly"),
                    ProviderError::Conflict(_) | ProviderError::Other(_) => Failure::new(ErrorKind::Other, msg),
                }
            }
            CallError::Denied(d) => Failure::new(ErrorKind::Denied, redact(&d.to_string())).hint(format!(
                "a provider reaches only what its grant allows; `cbx providers inspect {name}` shows the grant"
            )),
            CallError::Fault { .. } => Failure::new(ErrorKind::Provider, redact(&err.to_string()))
                .hint("this is a defect in the provider component; cbx stopped it safely"),
        };
        f.into()
    }

    /// Reads one sandbox.
    pub async fn get(&mut self, id: &str) -> Result<api::Sandbox, CallError> {
        with_retries!(self, Repeat::Idempotent, |p| p.get(id))
    }

    /// Lists the sandboxes of this provider that cbx owns.
    pub async fn list_owned(&mut self) -> Result<Vec<(api::Sandbox, Ownership)>, CallError> {
        let selector = Ownership::selector(self.name());
        let sandboxes = with_retries!(self, Repeat::Idempotent, |p| p.list(&selector))?;
        let name = self.name().to_string();
        Ok(sandboxes
            .into_iter()
            .filter_map(|s| Ownership::from_labels(&s.labels, &name).map(|o| (s, o)))
            .collect())
    }

    /// Creates a sandbox (retried only when the service rejected it outright).
    pub async fn create(
        &mut self,
        request: &api::CreateRequest,
    ) -> Result<api::Sandbox, CallError> {
        with_retries!(self, Repeat::OnlyIfRejected, |p| p.create(request))
    }

    /// Starts a sandbox.
    pub async fn start(&mut self, id: &str) -> Result<api::Sandbox, CallError> {
        with_retries!(self, Repeat::Idempotent, |p| p.start(id))
    }

    /// Deletes a sandbox; `Ok(false)` if it was already gone.
    pub async fn delete(&mut self, id: &str) -> Result<bool, CallError> {
        match with_retries!(self, Repeat::Idempotent, |p| p.delete(id)) {
            Ok(()) => Ok(true),
            Err(CallError::Provider(ProviderError::NotFound(_))) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Replaces a sandbox's labels.
    pub async fn set_labels(
        &mut self,
        id: &str,
        labels: &[(String, String)],
    ) -> Result<api::Sandbox, CallError> {
        with_retries!(self, Repeat::Idempotent, |p| p.set_labels(id, labels))
    }

    /// Resets a sandbox's idle timer.
    pub async fn touch(&mut self, id: &str) -> Result<(), CallError> {
        with_retries!(self, Repeat::Idempotent, |p| p.touch(id))
    }

    /// Mints SSH access.
    pub async fn mint_ssh_access(&mut self, id: &str) -> Result<api::SshAccess, CallError> {
        with_retries!(self, Repeat::OnlyIfRejected, |p| p.mint_ssh_access(id))
    }
}
