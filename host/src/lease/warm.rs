//! The warm path of a command on an existing lease (`cbx run --id`, `cbx ssh`): when this
//! machine's claim has not expired, its SSH access is cached and a multiplexing master for
//! that access is up, the command goes straight over the live connection. Nothing is asked of
//! the provider: the lease is as the claim describes it, and the lease's expiry is enforced
//! from the claim. Anything missing means the full path (ask the provider, start the sandbox
//! if it stopped, mint access), as does a connection that fails before the command started
//! (see `ops::guard`).
//!
//! Keeping the lease alive (the claim's last use, the provider's idle timer) is done after
//! the command, and at most every [`TOUCH_INTERVAL`].

use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};

use crate::error::{ErrorKind, Failure};
use crate::lease::access;
use crate::lease::claims::Claim;
use crate::lease::labels::Ownership;
use crate::lease::session::Session;
use crate::lease::{Lease, ready, release, resolve};
use crate::provider::api::{self, SandboxState};
use crate::ssh::SshClient;
use crate::terminal::inert;

/// A warm run tells the provider (and the claim) that the lease is in use at most this often.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(30);

/// A lease ready for the warm path: as its claim describes it, with a client over the live
/// master connection.
pub struct WarmLease {
    /// The lease, from the claim (its sandbox was not asked about).
    pub lease: Lease,
    /// A client whose master connection is up.
    pub ssh: SshClient,
}

/// The warm path for `ident`, if it can be taken (see the module documentation). An expired
/// lease is refused (exit 5), as on the full path.
pub fn warm(session: &Session, ident: &str) -> Result<Option<WarmLease>> {
    let Ok(matches) = session.claims().matching(Some(session.name()), ident) else {
        return Ok(None);
    };
    let [claim] = matches.as_slice() else {
        return Ok(None);
    };
    let Some(lease) = lease_of(claim) else {
        return Ok(None);
    };
    // The lease's expiry, from the claim (which the provider's labels agree with).
    ready::refuse_expired(&lease)?;
    let Some(ssh) = access::live_cached(session, &claim.lease_id, &claim.sandbox_id)? else {
        return Ok(None);
    };
    Ok(Some(WarmLease { lease, ssh }))
}

fn unix(rfc3339: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.timestamp())
}

/// The lease as `claim` describes it; its sandbox taken to be ready (the warm path finds out
/// otherwise when it connects).
fn lease_of(claim: &Claim) -> Option<Lease> {
    let created_at = unix(&claim.created_at)?;
    let expires_at = unix(&claim.expires_at)?;
    let ownership = Ownership {
        provider: claim.provider.clone(),
        lease: claim.lease_id.clone(),
        slug: claim.slug.clone(),
        created_at,
        touched_at: unix(&claim.last_used_at).unwrap_or(created_at),
        ttl_secs: u64::try_from(expires_at - created_at).unwrap_or(0),
        idle_secs: 0,
        work_root: claim.work_root.clone(),
        // Not in the claim, and not needed to use the lease.
        owner: None,
    };
    let sandbox = api::Sandbox {
        id: claim.sandbox_id.clone(),
        name: claim.sandbox_name.clone(),
        state: SandboxState::Ready,
        provider_state: "not asked (warm path)".into(),
        reason: None,
        labels: ownership.to_labels(),
        created_at: Some(claim.created_at.clone()),
    };
    Some(Lease {
        sandbox,
        ownership,
        claim: Some(claim.clone()),
    })
}

/// After a warm command: records the use in the claim and the provider's idle timer, unless
/// that was done less than [`TOUCH_INTERVAL`] ago. Best effort (a lease stopped meanwhile is
/// the caller's to report).
pub async fn touch_if_due(session: &mut Session, lease: &mut Lease) {
    let last = lease
        .claim
        .as_ref()
        .and_then(|c| unix(&c.last_used_at))
        .unwrap_or(0);
    let since = Utc::now().timestamp().saturating_sub(last);
    if (0..TOUCH_INTERVAL.as_secs() as i64).contains(&since) {
        return;
    }
    if let Err(e) = ready::touch(session, lease).await {
        tracing::debug!("touch after the command: {e:#}");
    }
}

/// Finds lease `ident` for a command about to use it (the full path). A claim whose sandbox
/// the provider no longer has (deleted outside cbx) is removed, with the lease's SSH access
/// and sync records, and the error (exit 4) says so.
pub async fn resolve_to_use(session: &mut Session, ident: &str) -> Result<Lease> {
    let err = match resolve::resolve(session, ident).await {
        Ok(lease) => return Ok(lease),
        Err(e) if crate::error::exit_code(&e) == ErrorKind::NotFound.exit_code() => e,
        Err(e) => return Err(e),
    };
    let matches = session
        .claims()
        .matching(Some(session.name()), ident)
        .unwrap_or_default();
    let [claim] = matches.as_slice() else {
        return Err(err);
    };
    if !release::forget_if_gone(session, claim).await? {
        return Err(err);
    }
    Err(Failure::new(
        ErrorKind::NotFound,
        format!(
            "lease {} ({}) is gone: its sandbox {} no longer exists (it was deleted outside \
             cbx); cbx removed its claim",
            claim.lease_id,
            inert(&claim.slug),
            inert(&claim.sandbox_id)
        ),
    )
    .hint("`cbx warmup` leases a new one")
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::claims::CLAIM_VERSION;
    use crate::lease::id::LeaseId;

    fn claim(created: &str, expires: &str) -> Claim {
        Claim {
            version: CLAIM_VERSION,
            lease_id: LeaseId::parse("cbx_0123456789ab").unwrap(),
            slug: "amber-otter".into(),
            provider: "daytona".into(),
            sandbox_id: "sb-1".into(),
            sandbox_name: "cbx-amber-otter".into(),
            repo_root: None,
            work_root: "cbx".into(),
            created_at: created.into(),
            expires_at: expires.into(),
            last_used_at: created.into(),
            generation: 3,
        }
    }

    #[test]
    fn the_lease_of_a_claim_expires_when_the_claim_does() {
        let c = claim("2026-01-01T00:00:00Z", "2026-01-01T01:30:00Z");
        let lease = lease_of(&c).unwrap();
        assert_eq!(
            lease.ownership.expires_at(),
            unix("2026-01-01T01:30:00Z").unwrap()
        );
        assert_eq!(lease.ownership.lease, c.lease_id);
        assert_eq!(lease.ownership.work_root, "cbx");
        assert_eq!(lease.sandbox.id, "sb-1");
        assert!(lease.exactly_claimed());
        let err = ready::refuse_expired(&lease).unwrap_err();
        assert_eq!(crate::error::exit_code(&err), 5);
        assert!(format!("{err:#}").contains("expired at 2026-01-01T01:30:00Z"));
        // A claim whose times cannot be read takes the full path.
        assert!(lease_of(&claim("yesterday", "2026-01-01T01:30:00Z")).is_none());
    }
}
