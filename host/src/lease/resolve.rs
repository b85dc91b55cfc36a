//! Finding leases: one by lease id or slug (local claims first, then the provider's list of
//! owned sandboxes), or all of a provider's.

use anyhow::Result;

use crate::error::{ErrorKind, Failure, fail};
use crate::lease::Lease;
use crate::lease::claims::Claim;
use crate::lease::id::{self, LeaseId};
use crate::lease::labels::Ownership;
use crate::lease::session::Session;
use crate::progress;
use crate::provider::CallError;
use crate::provider::api::ProviderError;
use crate::terminal::inert;

/// Finds a lease by lease id or slug: local claims first (exact), then the provider's list of
/// owned sandboxes. Fails with exit 4 when nothing matches.
pub async fn resolve(session: &mut Session, ident: &str) -> Result<Lease> {
    let matches = session.claims().matching(Some(session.name()), ident)?;
    if matches.len() > 1 {
        return Err(fail(
            ErrorKind::Usage,
            format!("`{ident}` matches several leases; use the lease id"),
        ));
    }
    if let Some(claim) = matches.into_iter().next() {
        return claimed(session, claim).await;
    }
    let by_id = LeaseId::parse(ident);
    if let Some(id) = &by_id {
        // A damaged claim file of exactly this lease: say so (it affects this lease only).
        session.claims().get(id)?;
    }
    let slug = id::normalize_slug(ident);
    let owned = session.list_owned().await.map_err(|e| session.failure(e))?;
    let found: Vec<_> = owned
        .into_iter()
        .filter(|(_, o)| Some(&o.lease) == by_id.as_ref() || o.slug == slug)
        .collect();
    match found.len() {
        0 => Err(not_found(session, ident, by_id.as_ref(), &slug)),
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

/// Nothing matches `ident`: says whether a cbx process is still creating that lease.
fn not_found(session: &Session, ident: &str, by_id: Option<&LeaseId>, slug: &str) -> anyhow::Error {
    let creating = session.intents().scan().ok().and_then(|(all, _)| {
        all.into_iter().find(|i| {
            i.provider == session.name()
                && i.lease()
                    .is_some_and(|p| Some(&p.lease_id) == by_id || p.slug == slug)
        })
    });
    let message = match creating.as_ref().and_then(|i| Some((i, i.lease()?))) {
        Some((i, plan)) => format!(
            "lease {} ({}) is not made yet: `cbx {}` (pid {}) has not finished creating it",
            i.id, plan.slug, i.command, i.owner.pid
        ),
        None => format!("no {} lease matches `{ident}`", session.name()),
    };
    Failure::new(ErrorKind::NotFound, message)
        .hint("`cbx list` shows your leases")
        .into()
}

/// The lease of `claim`, read from the provider; its sandbox must still carry its labels.
async fn claimed(session: &mut Session, claim: Claim) -> Result<Lease> {
    match session.get(&claim.sandbox_id).await {
        Ok(sandbox) => {
            let ownership = Ownership::from_labels(&sandbox.labels, session.name())
                .filter(|o| o.lease == claim.lease_id)
                .ok_or_else(|| {
                    fail(
                        ErrorKind::NotFound,
                        format!(
                            "sandbox {} no longer carries the labels of lease {}; cbx will not touch it",
                            inert(&sandbox.id),
                            claim.lease_id
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
                claim.lease_id,
                inert(&claim.slug),
                inert(&claim.sandbox_id)
            ),
        )
        .hint(format!(
            "`cbx stop {}` removes the stale claim",
            claim.lease_id
        ))
        .into()),
        Err(e) => Err(session.failure(e)),
    }
}

/// Every lease of this provider: the ones its list reports as cbx's, plus ones claimed here
/// that the list does not show yet (a service's list can lag behind a fresh create), read
/// directly. Sorted by creation time. A claim whose sandbox is gone gets a note on stderr.
pub async fn list(session: &mut Session) -> Result<Vec<Lease>> {
    let owned = session.list_owned().await.map_err(|e| session.failure(e))?;
    let claims: Vec<Claim> = session
        .claims()
        .all()?
        .into_iter()
        .filter(|c| c.provider == session.name())
        .collect();
    let mut leases: Vec<Lease> = owned
        .into_iter()
        .map(|(sandbox, ownership)| Lease {
            claim: claims
                .iter()
                .find(|c| c.lease_id == ownership.lease)
                .cloned(),
            sandbox,
            ownership,
        })
        .collect();
    for claim in &claims {
        if leases.iter().any(|l| l.ownership.lease == claim.lease_id) {
            continue;
        }
        match session.get(&claim.sandbox_id).await {
            Ok(sandbox) => {
                if let Some(ownership) = Ownership::from_labels(&sandbox.labels, session.name())
                    .filter(|o| o.lease == claim.lease_id)
                {
                    leases.push(Lease {
                        sandbox,
                        ownership,
                        claim: Some(claim.clone()),
                    });
                }
            }
            Err(CallError::Provider(ProviderError::NotFound(_))) => progress::report(&format!(
                "note: lease {} ({}) is claimed here but its sandbox {} is gone; `cbx stop {}` removes the claim",
                claim.lease_id, claim.slug, claim.sandbox_id, claim.lease_id
            )),
            Err(e) => return Err(session.failure(e)),
        }
    }
    leases.sort_by(|a, b| {
        a.ownership
            .created_at
            .cmp(&b.ownership.created_at)
            .then(a.ownership.lease.cmp(&b.ownership.lease))
    });
    Ok(leases)
}
