//! Ending leases: deleting a lease's sandbox (only with an exact claim, or patiently after a
//! failed creation), forgetting a lease whose sandbox is gone, and reaping expired leases.
//! Whatever this machine keeps for a lease — claim, SSH access, sync records — goes with it,
//! under the claims lock, so that nothing depending on the claim is written meanwhile.

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
    forget(session, &lease.ownership.lease).await?;
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
pub async fn wait_gone(session: &mut Session, id: &str, wait: Duration) {
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

/// Removes everything this machine keeps for a lease: closes its SSH master connection, then,
/// under the claims lock, removes its claim, its SSH access files and its sync records. A
/// command still using the lease finds the claim gone before it writes anything for it.
pub async fn forget(session: &Session, lease: &LeaseId) -> Result<()> {
    let cache = AccessCache::of(session.dirs(), lease);
    cache.close().await;
    let lock = session.claims().lock()?;
    session.claims().remove(lease, &lock)?;
    cache.remove();
    crate::sync::forget(&session.dirs().state, lease.as_str());
    Ok(())
}

/// How long deleting after a failed or interrupted creation keeps trying while the service
/// refuses (services refuse to delete a sandbox mid-creation).
pub const CLEANUP_PATIENCE: Duration = Duration::from_secs(300);

/// Deletes `id`, waiting out conflicts (a transition in progress) and temporary failures
/// until `patience` is used up. `Ok` also when it was already gone.
pub async fn delete_patiently(session: &mut Session, id: &str, patience: Duration) -> Result<()> {
    let deadline = Instant::now() + patience;
    let mut progress: Option<Progress> = None;
    let outcome = loop {
        match session.delete(id).await {
            Ok(_) => break Ok(()),
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
                let quiet = session.quiet();
                let message =
                    format!("waiting for sandbox {id} to settle so it can be deleted ({state})");
                progress
                    .get_or_insert_with(|| Progress::start(message.clone(), quiet))
                    .set(message);
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => break Err(session.failure(e)),
        }
    };
    if let Some(p) = progress {
        p.clear();
    }
    outcome
}

/// Removes a claim whose sandbox no longer exists (confirmed by the provider).
pub async fn forget_if_gone(session: &mut Session, claim: &Claim) -> Result<bool> {
    let gone = match session.get(&claim.sandbox_id).await {
        Err(CallError::Provider(ProviderError::NotFound(_))) => true,
        Ok(s) => s.state == SandboxState::Deleted,
        Err(e) => return Err(session.failure(e)),
    };
    if gone {
        forget(session, &claim.lease_id).await?;
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
