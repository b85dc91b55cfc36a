//! Ending leases: deleting a lease's sandbox (only with an exact claim), forgetting a lease
//! whose sandbox is gone, and reaping expired leases. Whatever this machine keeps for a lease
//! — claim, SSH access, sync records — goes with it.

use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{DateTime, Utc};

use crate::error::ErrorKind;
use crate::lease::Lease;
use crate::lease::access::AccessCache;
use crate::lease::claims::Claim;
use crate::lease::id::LeaseId;
use crate::lease::resolve::resolve;
use crate::lease::session::Session;
use crate::progress::{self, Progress};
use crate::provider::CallError;
use crate::provider::api::{ProviderError, SandboxState};

/// The result of [`release`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// The sandbox was deleted.
    Deleted,
    /// The sandbox was already gone; the stale claim was removed.
    AlreadyGone,
}

/// Deletes a lease's sandbox — only with an exact claim — removes the claim, and waits (up to
/// `wait`) until the provider reports the sandbox gone, unless the provider's sandboxes are
/// persistent.
pub async fn release(session: &mut Session, lease: &Lease, wait: Duration) -> Result<Released> {
    lease.require_claim("delete")?;
    let id = lease.sandbox.id.clone();
    let existed = session.delete(&id).await.map_err(|e| session.failure(e))?;
    session.claims().discard(&lease.ownership.lease)?;
    forget_local(session, &lease.ownership.lease).await;
    if existed && !wait.is_zero() && !session.persistent() {
        wait_gone(session, &id, wait).await;
    }
    Ok(if existed {
        Released::Deleted
    } else {
        Released::AlreadyGone
    })
}

/// Polls `get` after a deletion until the sandbox is gone, for up to `wait`.
async fn wait_gone(session: &mut Session, id: &str, wait: Duration) {
    let mut progress = Progress::start(format!("deleting sandbox {id}"), session.quiet());
    let deadline = Instant::now() + wait;
    let mut delay = Duration::from_millis(200);
    loop {
        match session.get(id).await {
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

/// Removes what this machine keeps for a lease besides its claim: SSH access (closing its
/// connection) and sync records.
pub async fn forget_local(session: &Session, lease: &LeaseId) {
    AccessCache::of(session.dirs(), lease)
        .forget(session.env())
        .await;
    crate::sync::forget(&session.dirs().state, lease.as_str());
}

/// Removes a claim whose sandbox no longer exists (confirmed by the provider).
pub async fn forget_if_gone(session: &mut Session, claim: &Claim) -> Result<bool> {
    let gone = match session.get(&claim.sandbox_id).await {
        Err(CallError::Provider(ProviderError::NotFound(_))) => true,
        Ok(s) => s.state == SandboxState::Deleted,
        Err(e) => return Err(session.failure(e)),
    };
    if gone {
        session.claims().discard(&claim.lease_id)?;
        forget_local(session, &claim.lease_id).await;
    }
    Ok(gone)
}

/// Deletes leases of this provider whose TTL has passed and that this machine holds exact
/// claims for. Best effort: problems are reported, never fatal.
pub async fn reap_expired(session: &mut Session) {
    let Ok(claims) = session.claims().all() else {
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
            Ok(_) => progress::report(&format!(
                "deleted expired lease {} ({}, expired {})",
                claim.lease_id, claim.slug, claim.expires_at
            )),
            Err(e) => {
                if crate::error::failure(&e).is_some_and(|f| f.kind == ErrorKind::NotFound) {
                    let _ = forget_if_gone(session, &claim).await;
                } else {
                    progress::report(&format!(
                        "warning: could not delete expired lease {}: {}",
                        claim.lease_id,
                        session.redactor().redact(&format!("{e:#}"))
                    ));
                }
            }
        }
    }
}

/// What `cbx stop` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// The lease.
    pub lease: LeaseId,
    /// Its slug.
    pub slug: String,
    /// Its sandbox.
    pub sandbox: String,
    /// Whether the sandbox was already gone (only the claim was removed).
    pub already_gone: bool,
}

/// Deletes the sandbox of the lease `ident` names and forgets the lease, waiting up to `wait`
/// for the provider to report it gone; a claim whose sandbox is already gone is removed once
/// the provider confirms it.
pub async fn stop(session: &mut Session, ident: &str, wait: Duration) -> Result<Stopped> {
    let lease = match resolve(session, ident).await {
        Ok(lease) => lease,
        Err(e) if crate::error::failure(&e).is_some_and(|f| f.kind == ErrorKind::NotFound) => {
            let claim = session
                .claims()
                .matching(Some(session.name()), ident)?
                .into_iter()
                .next();
            if let Some(claim) = claim
                && forget_if_gone(session, &claim).await?
            {
                return Ok(Stopped {
                    lease: claim.lease_id,
                    slug: claim.slug,
                    sandbox: claim.sandbox_id,
                    already_gone: true,
                });
            }
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let released = release(session, &lease, wait).await?;
    Ok(Stopped {
        lease: lease.ownership.lease,
        slug: lease.ownership.slug,
        sandbox: lease.sandbox.id,
        already_gone: released == Released::AlreadyGone,
    })
}
