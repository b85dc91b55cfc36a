//! Acquiring, resolving, waiting for and releasing leases.
//!
//! The host drives every wait: it polls the provider's `get`, shows progress, honours
//! deadlines and Ctrl-C, and cleans up after any failure so no sandbox is left behind.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{DateTime, Utc};

use crate::error::{ErrorKind, Failure, fail};
use crate::lease::claims::{CLAIM_VERSION, Claim};
use crate::lease::id::{self, LeaseId};
use crate::lease::labels::Ownership;
use crate::lease::session::Session;
use crate::progress::{Progress, human_duration};
use crate::provider::CallError;
use crate::provider::api::{self, ProviderError, SandboxState};

/// What a new lease should look like.
#[derive(Debug, Clone)]
pub struct AcquireRequest {
    /// A requested slug; a random one otherwise.
    pub slug: Option<String>,
    /// Lifetime.
    pub ttl: Duration,
    /// Idle time before the provider stops the sandbox.
    pub idle: Duration,
    /// The repository the lease is for.
    pub repo_root: Option<PathBuf>,
    /// How long to wait for the sandbox to become ready.
    pub ready_timeout: Duration,
}

/// A lease and its sandbox as last seen.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The sandbox.
    pub sandbox: api::Sandbox,
    /// What its labels say.
    pub ownership: Ownership,
    /// This machine's claim, if it holds one.
    pub claim: Option<Claim>,
}

impl Lease {
    /// Whether this machine holds an exact claim on the lease: same lease, same sandbox.
    pub fn exactly_claimed(&self) -> bool {
        self.claim
            .as_ref()
            .is_some_and(|c| c.lease_id == self.ownership.lease && c.sandbox_id == self.sandbox.id)
    }

    /// Fails with exit 4 unless this machine holds an exact claim.
    pub fn require_claim(&self, action: &str) -> Result<&Claim> {
        match &self.claim {
            Some(c) if self.exactly_claimed() => Ok(c),
            Some(c) => Err(Failure::new(
                ErrorKind::NotFound,
                format!(
                    "lease {} is claimed for sandbox {}, but the sandbox carrying its labels is {}; cbx will not {action} a sandbox that does not match its claim exactly",
                    c.lease_id, c.sandbox_id, self.sandbox.id
                ),
            )
            .into()),
            None => Err(Failure::new(
                ErrorKind::NotFound,
                format!(
                    "lease {} (sandbox {}) is owned by cbx, but this machine holds no claim for it; cbx will not {action} it",
                    self.ownership.lease, self.sandbox.id
                ),
            )
            .hint("run the command on the machine that created the lease, or remove the sandbox in the provider's console")
            .into()),
        }
    }
}

/// Current Unix time in seconds.
pub fn now_unix() -> i64 {
    Utc::now().timestamp()
}

/// Unix seconds as RFC 3339.
pub fn rfc3339(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Creates a sandbox and makes it a lease: labels, claim, readiness. On any failure — and on
/// Ctrl-C — the sandbox is deleted again; if that fails too, the error says how to clean up.
pub async fn acquire(session: &mut Session, request: &AcquireRequest) -> Result<Lease> {
    reap_expired(session).await;

    let taken_remote: Vec<String> = session
        .list_owned()
        .await
        .map_err(|e| session.failure(e))?
        .into_iter()
        .map(|(_, o)| o.slug)
        .collect();
    let taken_local: Vec<String> = session.claims.all()?.into_iter().map(|c| c.slug).collect();
    let taken = |s: &str| taken_remote.iter().chain(&taken_local).any(|t| t == s);
    let slug = match &request.slug {
        Some(wanted) => {
            let slug = id::normalize_slug(wanted);
            if slug.is_empty() || slug.len() > 40 {
                return Err(fail(
                    ErrorKind::Usage,
                    format!("--slug `{wanted}` must have 1 to 40 letters, digits or dashes"),
                ));
            }
            if taken(&slug) {
                return Err(fail(
                    ErrorKind::Usage,
                    format!("slug `{slug}` is already used by another lease; choose another"),
                ));
            }
            slug
        }
        None => id::unique_slug(&taken),
    };
    let lease = LeaseId::generate();
    let now = now_unix();
    let ownership = Ownership {
        provider: session.name().to_string(),
        lease: lease.clone(),
        slug: slug.clone(),
        created_at: now,
        touched_at: now,
        ttl_secs: request.ttl.as_secs(),
        idle_secs: request.idle.as_secs(),
        work_root: session.profile.work_root.clone(),
    };
    let name = format!("cbx-{slug}-{}", &lease.as_str()[4..]);
    let create = api::CreateRequest {
        name: name.clone(),
        labels: ownership.to_labels(),
        idle_timeout_minutes: request.idle.as_secs().div_ceil(60) as u32,
        ttl_minutes: request.ttl.as_secs().div_ceil(60) as u32,
    };

    let mut created: Option<String> = None;
    let outcome = tokio::select! {
        r = provision(session, request, &create, &ownership, &mut created) => r,
        _ = tokio::signal::ctrl_c() => Err(fail(ErrorKind::Interrupted, "interrupted")),
    };
    match outcome {
        Ok(lease) => Ok(lease),
        Err(err) => {
            let cleanup = async {
                match &created {
                    Some(id) => delete_and_forget(session, id, &lease).await,
                    // The create call may have reached the service even though we saw no
                    // answer; its unique name finds it.
                    None => reconcile_lost_create(session, &name, &lease).await,
                }
            };
            let cleaned = tokio::select! {
                r = cleanup => r,
                _ = tokio::signal::ctrl_c() => Err(fail(ErrorKind::Interrupted, "interrupted again during clean-up")),
            };
            match cleaned {
                Ok(()) => Err(err),
                Err(cleanup_err) => {
                    let id = created.unwrap_or_else(|| name.clone());
                    let kind = crate::error::failure(&err).map_or(ErrorKind::Other, |f| f.kind);
                    Err(err.context(Failure::new(
                        kind,
                        format!(
                            "could not delete sandbox {id} after the failure ({}); it may still be running. \
                             Delete it with `cbx stop {lease}` or in the provider's console",
                            session.provider.redactor().redact(&format!("{cleanup_err:#}"))
                        ),
                    )))
                }
            }
        }
    }
}

async fn provision(
    session: &mut Session,
    request: &AcquireRequest,
    create: &api::CreateRequest,
    ownership: &Ownership,
    created: &mut Option<String>,
) -> Result<Lease> {
    let mut progress = Progress::start(
        format!("creating a {} sandbox ({})", session.name(), ownership.slug),
        session.quiet,
    );
    let sandbox = match session.create(create).await {
        Ok(s) => s,
        Err(e) => {
            progress.clear();
            return Err(session.failure(e));
        }
    };
    *created = Some(sandbox.id.clone());

    // Record ownership locally before waiting, so an interrupted wait can still be cleaned up.
    let claim = Claim {
        version: CLAIM_VERSION,
        lease_id: ownership.lease.clone(),
        slug: ownership.slug.clone(),
        provider: ownership.provider.clone(),
        sandbox_id: sandbox.id.clone(),
        sandbox_name: sandbox.name.clone(),
        repo_root: request.repo_root.as_ref().map(|p| p.display().to_string()),
        work_root: ownership.work_root.clone(),
        created_at: rfc3339(ownership.created_at),
        expires_at: rfc3339(ownership.expires_at()),
        last_used_at: rfc3339(ownership.created_at),
    };
    {
        let lock = session.claims.lock()?;
        session.claims.put(&claim, &lock)?;
    }

    let ready = wait_ready(session, &sandbox.id, request.ready_timeout, &mut progress).await;
    let sandbox = match ready {
        Ok(s) => s,
        Err(e) => {
            progress.clear();
            return Err(e);
        }
    };

    // Write the full ownership labels and read them back: only a verified sandbox is a lease.
    let labels = ownership.to_labels();
    let verified = async {
        session.set_labels(&sandbox.id, &labels).await?;
        session.get(&sandbox.id).await
    }
    .await
    .map_err(|e| session.failure(e));
    let sandbox = match verified {
        Ok(s) => s,
        Err(e) => {
            progress.clear();
            return Err(e);
        }
    };
    match Ownership::from_labels(&sandbox.labels, session.name()) {
        Some(o) if o.lease == ownership.lease && o.slug == ownership.slug => {}
        _ => {
            progress.clear();
            return Err(fail(
                ErrorKind::NotFound,
                format!(
                    "sandbox {} did not keep cbx's ownership labels for lease {}",
                    sandbox.id, ownership.lease
                ),
            ));
        }
    }
    let took = progress.elapsed();
    progress.finish(format!(
        "sandbox {} is ready ({})",
        sandbox.id,
        human_duration(took)
    ));
    Ok(Lease {
        sandbox,
        ownership: ownership.clone(),
        claim: Some(claim),
    })
}

/// Polls `get` until the sandbox is ready; starts it if it is stopped; fails (exit 5) on a
/// failed or deleted sandbox or at the deadline.
pub async fn wait_ready(
    session: &mut Session,
    id: &str,
    timeout: Duration,
    progress: &mut Progress,
) -> Result<api::Sandbox> {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(200);
    let mut started = false;
    loop {
        let sandbox = session.get(id).await.map_err(|e| session.failure(e))?;
        match sandbox.state {
            SandboxState::Ready => return Ok(sandbox),
            SandboxState::Failed => {
                return Err(Failure::new(
                    ErrorKind::Sandbox,
                    format!(
                        "sandbox {id} failed ({}){}",
                        sandbox.provider_state,
                        sandbox
                            .reason
                            .as_deref()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    ),
                )
                .into());
            }
            SandboxState::Deleted => {
                return Err(fail(
                    ErrorKind::Sandbox,
                    format!("sandbox {id} was deleted while cbx waited for it"),
                ));
            }
            SandboxState::Stopped | SandboxState::Archived if !started => {
                progress.set(format!(
                    "starting sandbox {id} ({})",
                    sandbox.provider_state
                ));
                session.start(id).await.map_err(|e| session.failure(e))?;
                started = true;
            }
            _ => {}
        }
        progress.set(format!(
            "waiting for sandbox {id} to be ready ({})",
            sandbox.provider_state
        ));
        if Instant::now() + delay > deadline {
            return Err(Failure::new(
                ErrorKind::Sandbox,
                format!(
                    "sandbox {id} was not ready after {} (last state: {})",
                    human_duration(timeout),
                    sandbox.provider_state
                ),
            )
            .hint("raise the limit with --ready-timeout, or check the provider's status page")
            .into());
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 3 / 2).min(Duration::from_secs(2));
    }
}

/// How long clean-up after a failed acquire keeps trying to delete a sandbox that is still
/// changing state (services refuse to delete a sandbox mid-creation).
pub const CLEANUP_PATIENCE: Duration = Duration::from_secs(300);

async fn delete_and_forget(session: &mut Session, id: &str, lease: &LeaseId) -> Result<()> {
    delete_patiently(session, id, CLEANUP_PATIENCE).await?;
    {
        let lock = session.claims.lock()?;
        session.claims.remove(lease, &lock)?;
    }
    forget_local(session, lease).await;
    Ok(())
}

/// Deletes `id`, waiting out conflicts (a transition in progress) and temporary failures
/// until `patience` is used up. `Ok` also when it was already gone.
pub async fn delete_patiently(session: &mut Session, id: &str, patience: Duration) -> Result<()> {
    let deadline = Instant::now() + patience;
    let mut progress: Option<Progress> = None;
    loop {
        match session.delete(id).await {
            Ok(_) => break,
            Err(CallError::Provider(
                ProviderError::Conflict(_)
                | ProviderError::Unavailable(_)
                | ProviderError::RateLimited(_),
            )) if Instant::now() < deadline => {
                let state = session
                    .get(id)
                    .await
                    .map(|s| s.provider_state)
                    .unwrap_or_default();
                let p = progress.get_or_insert_with(|| {
                    Progress::start(
                        format!("waiting for sandbox {id} to settle so it can be deleted"),
                        session.quiet,
                    )
                });
                p.set(format!(
                    "waiting for sandbox {id} to settle so it can be deleted ({state})"
                ));
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => {
                if let Some(p) = progress {
                    p.clear();
                }
                return Err(session.failure(e));
            }
        }
    }
    if let Some(p) = progress {
        p.clear();
    }
    Ok(())
}

async fn reconcile_lost_create(session: &mut Session, name: &str, lease: &LeaseId) -> Result<()> {
    match session.get(name).await {
        Ok(sandbox) => {
            let owned = Ownership::from_labels(&sandbox.labels, session.name())
                .is_some_and(|o| &o.lease == lease);
            if owned {
                delete_and_forget(session, &sandbox.id, lease).await?;
            }
            Ok(())
        }
        Err(CallError::Provider(ProviderError::NotFound(_))) => Ok(()),
        // Nothing more can be learned; the error being reported already says what failed.
        Err(_) => Ok(()),
    }
}

/// Finds a lease by lease id or slug: local claims first (exact), then the provider's list of
/// owned sandboxes. Fails with exit 4 when nothing matches.
pub async fn resolve(session: &mut Session, ident: &str) -> Result<Lease> {
    let claims = session.claims.all()?;
    let by_id = LeaseId::parse(ident);
    let slug = id::normalize_slug(ident);
    let matches: Vec<&Claim> = claims
        .iter()
        .filter(|c| c.provider == session.name())
        .filter(|c| Some(&c.lease_id) == by_id.as_ref() || c.slug == slug)
        .collect();
    if matches.len() > 1 {
        return Err(fail(
            ErrorKind::Usage,
            format!("`{ident}` matches several leases; use the lease id"),
        ));
    }
    if let Some(claim) = matches.first() {
        let claim = (*claim).clone();
        return match session.get(&claim.sandbox_id).await {
            Ok(sandbox) => {
                let ownership = Ownership::from_labels(&sandbox.labels, session.name())
                    .filter(|o| o.lease == claim.lease_id)
                    .ok_or_else(|| {
                        fail(
                            ErrorKind::NotFound,
                            format!(
                                "sandbox {} no longer carries the labels of lease {}; cbx will not touch it",
                                sandbox.id, claim.lease_id
                            ),
                        )
                    })?;
                Ok(Lease {
                    sandbox,
                    ownership,
                    claim: Some(claim),
                })
            }
            Err(CallError::Provider(ProviderError::NotFound(_))) => Err(Failure::new(
                ErrorKind::NotFound,
                format!(
                    "lease {} ({}) is claimed here, but its sandbox {} no longer exists",
                    claim.lease_id, claim.slug, claim.sandbox_id
                ),
            )
            .hint(format!(
                "`cbx stop {}` removes the stale claim",
                claim.lease_id
            ))
            .into()),
            Err(e) => Err(session.failure(e)),
        };
    }
    let owned = session.list_owned().await.map_err(|e| session.failure(e))?;
    let found: Vec<_> = owned
        .into_iter()
        .filter(|(_, o)| Some(&o.lease) == by_id.as_ref() || o.slug == slug)
        .collect();
    match found.len() {
        0 => Err(Failure::new(
            ErrorKind::NotFound,
            format!("no {} lease matches `{ident}`", session.name()),
        )
        .hint("`cbx list` shows your leases")
        .into()),
        1 => {
            let (sandbox, ownership) = found.into_iter().next().expect("one");
            Ok(Lease {
                sandbox,
                ownership,
                claim: None,
            })
        }
        _ => Err(fail(
            ErrorKind::Usage,
            format!("`{ident}` matches several leases; use the lease id"),
        )),
    }
}

/// The result of [`release`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// The sandbox was deleted.
    Deleted,
    /// The sandbox was already gone; the stale claim was removed.
    AlreadyGone,
}

/// The provider feature saying its sandboxes outlive their leases (an existing host): `delete`
/// only releases the lease, so `get` keeps answering and there is nothing to wait for.
pub const FEATURE_PERSISTENT: &str = "persistent";

/// Deletes a lease's sandbox — only with an exact claim — removes the claim, and waits (up to
/// `wait`) until the provider reports the sandbox gone, unless the provider's sandboxes are
/// persistent.
pub async fn release(session: &mut Session, lease: &Lease, wait: Duration) -> Result<Released> {
    lease.require_claim("delete")?;
    let id = lease.sandbox.id.clone();
    let existed = session.delete(&id).await.map_err(|e| session.failure(e))?;
    {
        let lock = session.claims.lock()?;
        session.claims.remove(&lease.ownership.lease, &lock)?;
    }
    forget_local(session, &lease.ownership.lease).await;
    if existed && !wait.is_zero() && !session.persistent() {
        let mut progress = Progress::start(format!("deleting sandbox {id}"), session.quiet);
        let deadline = Instant::now() + wait;
        let mut delay = Duration::from_millis(200);
        loop {
            match session.get(&id).await {
                Ok(s) => progress.set(format!("deleting sandbox {id} ({})", s.provider_state)),
                // Gone (404), or unreadable: the deletion was accepted either way.
                Err(_) => break,
            }
            if Instant::now() + delay > deadline {
                progress.warn(&format!(
                    "the provider accepted the deletion of sandbox {id} but has not finished it yet"
                ));
                break;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 3 / 2).min(Duration::from_secs(2));
        }
        progress.clear();
    }
    Ok(if existed {
        Released::Deleted
    } else {
        Released::AlreadyGone
    })
}

/// Removes what this machine keeps for a lease besides its claim: SSH access (closing its
/// connection) and sync records.
pub async fn forget_local(session: &Session, lease: &LeaseId) {
    crate::ssh::access::forget(&session.dirs, lease.as_str()).await;
    crate::sync::forget(&session.dirs.state, lease.as_str());
}

/// Fails with exit 5 if the lease has expired; otherwise waits until its sandbox is ready,
/// starting it if it was stopped.
pub async fn ensure_ready(
    session: &mut Session,
    lease: &mut Lease,
    timeout: Duration,
) -> Result<()> {
    if lease.ownership.expires_at() <= now_unix() {
        return Err(Failure::new(
            ErrorKind::Sandbox,
            format!(
                "lease {} ({}) expired at {}",
                lease.ownership.lease,
                lease.ownership.slug,
                rfc3339(lease.ownership.expires_at())
            ),
        )
        .hint(format!(
            "`cbx stop {}` deletes it; `cbx warmup` leases a new one",
            lease.ownership.lease
        ))
        .into());
    }
    if lease.sandbox.state != SandboxState::Ready {
        let mut progress = Progress::start(
            format!(
                "sandbox {} is {}; starting it",
                lease.sandbox.id, lease.sandbox.provider_state
            ),
            session.quiet,
        );
        let result = wait_ready(session, &lease.sandbox.id.clone(), timeout, &mut progress).await;
        progress.clear();
        lease.sandbox = result?;
    }
    Ok(())
}

/// Records that the lease is in use: the provider's idle timer and the claim's last use.
/// Best effort.
pub async fn touch(session: &mut Session, lease: &Lease) {
    if let Err(e) = session.touch(&lease.sandbox.id).await {
        tracing::debug!("touch failed: {e}");
    }
    if let Some(claim) = &lease.claim
        && let Ok(lock) = session.claims.lock()
    {
        let mut claim = claim.clone();
        claim.last_used_at = rfc3339(now_unix());
        let _ = session.claims.put(&claim, &lock);
    }
}

/// Removes a claim whose sandbox no longer exists (confirmed by the provider).
pub async fn forget_if_gone(session: &mut Session, claim: &Claim) -> Result<bool> {
    match session.get(&claim.sandbox_id).await {
        Err(CallError::Provider(ProviderError::NotFound(_))) => {
            {
                let lock = session.claims.lock()?;
                session.claims.remove(&claim.lease_id, &lock)?;
            }
            forget_local(session, &claim.lease_id).await;
            Ok(true)
        }
        Ok(s) if s.state == SandboxState::Deleted => {
            {
                let lock = session.claims.lock()?;
                session.claims.remove(&claim.lease_id, &lock)?;
            }
            forget_local(session, &claim.lease_id).await;
            Ok(true)
        }
        Ok(_) => Ok(false),
        Err(e) => Err(session.failure(e)),
    }
}

/// Deletes leases of this provider whose TTL has passed and that this machine holds exact
/// claims for. Best effort: problems are reported, never fatal.
pub async fn reap_expired(session: &mut Session) {
    let Ok(claims) = session.claims.all() else {
        return;
    };
    let now = Utc::now();
    let provider = session.name().to_string();
    for claim in claims.into_iter().filter(|c| c.provider == provider) {
        let expired = DateTime::parse_from_rfc3339(&claim.expires_at).is_ok_and(|t| t < now);
        if !expired {
            continue;
        }
        let result = async {
            let lease = resolve(session, claim.lease_id.as_str()).await?;
            release(session, &lease, Duration::ZERO).await
        }
        .await;
        match result {
            Ok(_) => eprintln!(
                "deleted expired lease {} ({}, expired {})",
                claim.lease_id, claim.slug, claim.expires_at
            ),
            Err(e) => {
                if crate::error::failure(&e).is_some_and(|f| f.kind == ErrorKind::NotFound) {
                    let _ = forget_if_gone(session, &claim).await;
                } else {
                    eprintln!(
                        "warning: could not delete expired lease {}: {}",
                        claim.lease_id,
                        session.provider.redactor().redact(&format!("{e:#}"))
                    );
                }
            }
        }
    }
}
