//! A provider ready for lease operations: its calls, repeated under the host's retry policy,
//! and the mapping from their errors to cbx failures.
//!
//! The provider is configured already, or pending (`provider::Pending`: found, approved,
//! granted and described from the describe cache) and loaded on its first call — every call
//! goes through [`Session::with_retries`], which loads it first, so a command that never
//! calls the provider (the warm path) never compiles or instantiates it. What the session
//! answers without a call (name, description, profile, grant, capabilities) it knows either
//! way.

use std::time::Duration;

use anyhow::Result;

use crate::audit::{AuditLog, AuditRecord};
use crate::environment::Environment;
use crate::grant::Grant;
use crate::grant::ssh::SshGrant;
use crate::lease::claims::Claims;
use crate::lease::intent::Intents;
use crate::lease::labels::Ownership;
use crate::paths::Dirs;
use crate::progress;
use crate::provider::api::{self, ProviderError};
use crate::provider::capability::Forked;
use crate::provider::{CallError, Capability, Configured, Feature, Pending, ProviderInstance};
use crate::redact::Redactor;

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

/// Whether repeating an operation is safe when it may already have taken effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// Safe to repeat (reads, deletes, label replacement, start/stop).
    Idempotent,
    /// Repeat only when the service said it did nothing (rate limiting).
    OnlyIfRejected,
}

/// The session's provider: configured, or loaded on its first call.
enum Provider {
    Configured(Box<Configured>),
    Pending(Box<Pending>),
}

/// A provider ready for lease operations, with this user's claims and intents.
pub struct Session {
    provider: Provider,
    claims: Claims,
    intents: Intents,
    dirs: Dirs,
    env: Environment,
    quiet: bool,
    retry: RetryPolicy,
}

impl Session {
    /// A session of `provider`, keeping claims and lease files under `dirs`, in the
    /// environment cbx started with; `quiet` suppresses progress.
    pub fn new(provider: Configured, dirs: Dirs, env: Environment, quiet: bool) -> Session {
        Session::of(Provider::Configured(Box::new(provider)), dirs, env, quiet)
    }

    /// [`Session::new`] for a provider loaded on its first call.
    pub fn pending(provider: Pending, dirs: Dirs, env: Environment, quiet: bool) -> Session {
        Session::of(Provider::Pending(Box::new(provider)), dirs, env, quiet)
    }

    fn of(provider: Provider, dirs: Dirs, env: Environment, quiet: bool) -> Session {
        Session {
            claims: Claims::new(dirs.claims()),
            intents: Intents::new(dirs.intents()),
            provider,
            dirs,
            env,
            quiet,
            retry: RetryPolicy::default(),
        }
    }

    /// Whether the provider has been loaded (and configured).
    pub fn loaded(&self) -> bool {
        matches!(self.provider, Provider::Configured(_))
    }

    /// The configured provider, loading and configuring it first if it is pending — with the
    /// errors loading it eagerly gives. A failed load leaves it pending.
    pub async fn configured(&mut self) -> Result<&mut Configured> {
        if let Provider::Pending(pending) = &self.provider {
            let configured = pending.load().await?;
            self.provider = Provider::Configured(Box::new(configured));
        }
        match &mut self.provider {
            Provider::Configured(c) => Ok(c),
            Provider::Pending(_) => anyhow::bail!("the provider was not loaded"),
        }
    }

    /// The provider's name.
    pub fn name(&self) -> &str {
        match &self.provider {
            Provider::Configured(c) => c.name(),
            Provider::Pending(p) => p.name(),
        }
    }

    /// What the provider says about itself.
    pub fn info(&self) -> &api::ProviderInfo {
        match &self.provider {
            Provider::Configured(c) => c.info(),
            Provider::Pending(p) => p.info(),
        }
    }

    /// What the provider reported after accepting its settings (for a pending one, the same
    /// settings the last time it was configured with them).
    pub fn profile(&self) -> &api::Profile {
        match &self.provider {
            Provider::Configured(c) => c.profile(),
            Provider::Pending(p) => p.profile(),
        }
    }

    /// The provider's effective grant.
    pub fn grant(&self) -> &Grant {
        match &self.provider {
            Provider::Configured(c) => c.grant(),
            Provider::Pending(p) => p.grant(),
        }
    }

    /// Where the provider's minted SSH access may lead, and the user's key.
    pub fn ssh_grant(&self) -> &SshGrant {
        match &self.provider {
            Provider::Configured(c) => c.ssh_grant(),
            Provider::Pending(p) => p.ssh_grant(),
        }
    }

    /// Appends `record` to the audit log (a failure to write is a warning, as for the
    /// provider's own events).
    pub fn audit(&self, record: &AuditRecord) {
        if let Err(e) = AuditLog::new(self.dirs.audit_log()).append(record) {
            tracing::warn!("could not write the audit log: {e:#}");
        }
    }

    /// This user's claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// What this user's cbx processes are creating (see `lease::intent`).
    pub fn intents(&self) -> &Intents {
        &self.intents
    }

    /// cbx's directories (SSH access and sync records live there too).
    pub fn dirs(&self) -> &Dirs {
        &self.dirs
    }

    /// The environment cbx started with.
    pub fn env(&self) -> &Environment {
        &self.env
    }

    /// Whether progress is suppressed.
    pub fn quiet(&self) -> bool {
        self.quiet
    }

    /// Suppresses progress (or not) from now on: `cbx shard` quiets its shards' sessions on a
    /// terminal, where their spinners would draw over one another.
    pub fn set_quiet(&mut self, quiet: bool) {
        self.quiet = quiet;
    }

    /// The redactor the provider's secrets are registered with.
    pub fn redactor(&self) -> &Redactor {
        match &self.provider {
            Provider::Configured(c) => c.redactor(),
            Provider::Pending(p) => p.redactor(),
        }
    }

    /// Whether the provider declares `feature`.
    pub fn declares(&self, feature: Feature) -> bool {
        feature.declared_by(self.info())
    }

    /// Whether the provider's sandboxes outlive their leases (an existing host).
    pub fn persistent(&self) -> bool {
        self.declares(Feature::Persistent)
    }

    /// Turns a failed call into a cbx failure with a kind and a hint.
    pub fn failure(&self, err: CallError) -> anyhow::Error {
        crate::provider::failure::to_failure(err, self.grant(), self.redactor())
    }

    /// The instance, the provider loaded first (see [`Session::configured`]).
    async fn instance(&mut self) -> Result<&mut ProviderInstance, CallError> {
        match self.configured().await {
            Ok(c) => Ok(c.instance()),
            Err(e) => Err(CallError::Load(e)),
        }
    }

    /// Runs `call` on the provider, repeating it as the retry policy allows for `repeat`,
    /// with a line on stderr (unless quiet) before each repetition.
    async fn with_retries<R>(
        &mut self,
        repeat: Repeat,
        mut call: impl AsyncFnMut(&mut ProviderInstance) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        let mut attempt = 1;
        loop {
            let err = match call(self.instance().await?).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let Some(delay) = self.retry_delay(&err, attempt, repeat) else {
                return Err(err);
            };
            progress::note(
                self.quiet,
                &format!(
                    "{}: {}; retrying in {} (attempt {} of {})",
                    self.name(),
                    self.redactor().redact(&err.to_string()),
                    progress::human_duration(delay),
                    attempt + 1,
                    self.retry.attempts
                ),
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
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

    /// Read-only readiness checks (not retried: they report the service as it is).
    pub async fn doctor(&mut self) -> Result<Vec<api::Check>, CallError> {
        self.instance().await?.doctor().await
    }

    /// Reads one sandbox, once: no retries (`cbx providers test` checks the error itself).
    pub async fn get_once(&mut self, id: &str) -> Result<api::Sandbox, CallError> {
        self.instance().await?.get(id).await
    }

    /// Answers the provider's next allowed HTTP request with `response` instead of sending it
    /// (see [`crate::grant::http::HttpGateway::rehearse`]), the provider loaded first.
    pub async fn rehearse(&mut self, response: crate::grant::http::InboundResponse) -> Result<()> {
        self.configured()
            .await?
            .instance()
            .gateway()
            .rehearse(response);
        Ok(())
    }

    /// Reads one sandbox.
    pub async fn get(&mut self, id: &str) -> Result<api::Sandbox, CallError> {
        self.with_retries(Repeat::Idempotent, async |p| p.get(id).await)
            .await
    }

    /// The sandboxes carrying all of `labels`.
    pub async fn list(
        &mut self,
        labels: &[(String, String)],
    ) -> Result<Vec<api::Sandbox>, CallError> {
        self.with_retries(Repeat::Idempotent, async |p| p.list(labels).await)
            .await
    }

    /// Lists the sandboxes of this provider that cbx owns.
    pub async fn list_owned(&mut self) -> Result<Vec<(api::Sandbox, Ownership)>, CallError> {
        let selector = Ownership::selector(self.name());
        let sandboxes = self.list(&selector).await?;
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
        self.with_retries(Repeat::OnlyIfRejected, async |p| p.create(request).await)
            .await
    }

    /// Starts a sandbox.
    pub async fn start(&mut self, id: &str) -> Result<api::Sandbox, CallError> {
        self.with_retries(Repeat::Idempotent, async |p| p.start(id).await)
            .await
    }

    /// Stops a sandbox.
    pub async fn stop(&mut self, id: &str) -> Result<api::Sandbox, CallError> {
        self.with_retries(Repeat::Idempotent, async |p| p.stop(id).await)
            .await
    }

    /// Deletes a sandbox; `Ok(false)` if it was already gone.
    pub async fn delete(&mut self, id: &str) -> Result<bool, CallError> {
        match self
            .with_retries(Repeat::Idempotent, async |p| p.delete(id).await)
            .await
        {
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
        self.with_retries(Repeat::Idempotent, async |p| p.set_labels(id, labels).await)
            .await
    }

    /// Resets a sandbox's idle timer.
    pub async fn touch(&mut self, id: &str) -> Result<(), CallError> {
        self.with_retries(Repeat::Idempotent, async |p| p.touch(id).await)
            .await
    }

    /// Mints SSH access (repeated only when rate limited: new access may revoke the old).
    pub async fn mint_ssh_access(&mut self, id: &str) -> Result<api::SshAccess, CallError> {
        self.with_retries(Repeat::OnlyIfRejected, async |p| {
            p.mint_ssh_access(id).await
        })
        .await
    }

    /// `Ok` if the provider offers `capability`; else the usage error `command` gives.
    pub fn require(&self, capability: Capability, command: &str) -> Result<()> {
        match &self.provider {
            Provider::Configured(c) => c.require(capability, command),
            Provider::Pending(p) => p.require(capability, command),
        }
    }

    /// Starts saving sandbox `id` as checkpoint `name` (not repeated: a repeat could collide
    /// with the first save).
    pub async fn create_checkpoint(&mut self, id: &str, name: &str) -> Result<(), CallError> {
        self.with_retries(Repeat::OnlyIfRejected, async |p| {
            p.create_checkpoint(id, name).await
        })
        .await
    }

    /// Reads one checkpoint by name.
    pub async fn get_checkpoint(&mut self, name: &str) -> Result<api::CheckpointInfo, CallError> {
        self.with_retries(Repeat::Idempotent, async |p| p.get_checkpoint(name).await)
            .await
    }

    /// The checkpoints whose names start with `prefix`.
    pub async fn list_checkpoints(
        &mut self,
        prefix: &str,
    ) -> Result<Vec<api::CheckpointInfo>, CallError> {
        self.with_retries(Repeat::Idempotent, async |p| {
            p.list_checkpoints(prefix).await
        })
        .await
    }

    /// Deletes a checkpoint by id; `Ok(false)` if it was already gone.
    pub async fn delete_checkpoint(&mut self, id: &str) -> Result<bool, CallError> {
        match self
            .with_retries(Repeat::Idempotent, async |p| p.delete_checkpoint(id).await)
            .await
        {
            Ok(()) => Ok(true),
            Err(CallError::Provider(ProviderError::NotFound(_))) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates a sandbox from checkpoint `name` (retried only when rejected outright).
    pub async fn create_from_checkpoint(
        &mut self,
        name: &str,
        request: &api::CreateRequest,
    ) -> Result<api::Sandbox, CallError> {
        self.with_retries(Repeat::OnlyIfRejected, async |p| {
            p.create_from_checkpoint(name, request).await
        })
        .await
    }

    /// Forks sandbox `id` (retried only when rejected outright).
    pub async fn fork(
        &mut self,
        id: &str,
        request: &api::CreateRequest,
    ) -> Result<Forked, CallError> {
        self.with_retries(Repeat::OnlyIfRejected, async |p| p.fork(id, request).await)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::EndpointOverrides;
    use crate::provenance::{Definition, Value};
    use crate::provider::Runtime;

    fn dirs(root: &std::path::Path) -> Dirs {
        Dirs {
            config: root.join("config"),
            state: root.join("state"),
            cache: root.join("cache"),
            data: root.join("data"),
        }
    }

    fn env(key: Option<&str>) -> Environment {
        let mut vars = vec![("HOME", "/nonexistent")];
        if let Some(k) = key {
            vars.push(("DAYTONA_API_KEY", k));
        }
        Environment::from_pairs(vars)
    }

    /// The options a provider with no user settings gets: its defaults.
    fn defaults(info: &api::ProviderInfo) -> Vec<(String, Value<String>)> {
        info.options
            .iter()
            .filter_map(|o| {
                let d = o.default.clone()?;
                Some((o.name.clone(), Value::new(d, Definition::Default)))
            })
            .collect()
    }

    #[tokio::test]
    async fn a_pending_provider_answers_from_its_description_and_loads_on_first_use() {
        let root = tempfile::tempdir().unwrap();
        let dirs = dirs(root.path());
        let env = env(Some("dtn_test_key"));
        let runtime = Runtime::new(&dirs, &env, &Redactor::new());
        let choices = EndpointOverrides::default();
        let found = runtime.find("daytona", &choices).unwrap();
        assert!(runtime.described(&found).is_none(), "nothing cached yet");
        // Loading describes it, and remembers the description.
        let loaded = runtime.load_found(found.clone()).await.unwrap();
        let described = runtime.described(&found).expect("described once");
        assert!(described.same_as(loaded.info(), &loaded.fit().capabilities));
        let options = defaults(&described.info);
        assert!(runtime.configured_before(&found, &options).is_none());
        let eager = loaded.configure(&options).await.unwrap();
        // Configuring it remembers the profile those settings gave.
        let profile = runtime.configured_before(&found, &options).expect("cached");
        let mut other = options.clone();
        other.push((
            "snapshot".into(),
            Value::new("x".into(), Definition::Default),
        ));
        assert!(runtime.configured_before(&found, &other).is_none());

        let pending = Pending::new(runtime, found, described, options, profile).unwrap();
        let mut session = Session::pending(pending, dirs.clone(), env.clone(), true);
        assert!(!session.loaded());
        assert_eq!(session.name(), "daytona");
        assert_eq!(session.info().name, eager.info().name);
        assert_eq!(session.grant().provider, "daytona");
        assert_eq!(session.ssh_grant().agent, eager.ssh_grant().agent);
        for c in Capability::ALL {
            assert_eq!(
                session.require(c, "x").is_ok(),
                eager.require(c, "x").is_ok(),
                "{c:?}"
            );
        }
        assert_eq!(session.profile().work_root, eager.profile().work_root);
        assert_eq!(session.profile().summary, eager.profile().summary);
        assert!(!session.loaded(), "none of that loaded it");
        session.configured().await.unwrap();
        assert!(session.loaded(), "loaded on demand");
        assert_eq!(session.profile().work_root, eager.profile().work_root);
    }

    #[tokio::test]
    async fn a_pending_provider_without_credentials_fails_as_configuring_it_does() {
        let root = tempfile::tempdir().unwrap();
        let dirs = dirs(root.path());
        let runtime = Runtime::new(&dirs, &env(None), &Redactor::new());
        let found = runtime
            .find("daytona", &EndpointOverrides::default())
            .unwrap();
        let loaded = runtime.load_found(found.clone()).await.unwrap();
        let described = runtime.described(&found).unwrap();
        let options = defaults(&described.info);
        let eager = loaded.configure(&options).await.err().expect("no key");
        let profile = api::Profile {
            work_root: "cbx".into(),
            summary: vec![],
        };
        let lazy = Pending::new(runtime, found, described, options, profile)
            .err()
            .expect("no key");
        assert_eq!(format!("{lazy:#}"), format!("{eager:#}"));
        assert_eq!(
            crate::error::exit_code(&lazy),
            crate::error::exit_code(&eager)
        );
        assert_eq!(crate::error::exit_code(&lazy), 3, "{lazy:#}");
    }
}
