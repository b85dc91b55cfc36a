//! `cbx stop`: deleting a lease's sandbox and forgetting the lease — also a lease whose
//! creation never finished (an intent), and a claim whose sandbox is already gone.

use std::time::Duration;

use anyhow::Result;

use crate::error::{ErrorKind, Failure};
use crate::lease::cleanup::delete_unheld;
use crate::lease::id::{self, LeaseId};
use crate::lease::intent::Settle;
use crate::lease::owner::owner_id;
use crate::lease::reconcile::{self, Settled};
use crate::lease::release::{Released, forget_if_gone, release, wait_gone};
use crate::lease::resolve::resolve;
use crate::lease::session::Session;
use crate::lease::view::OwnerKind;

/// What `cbx stop` did. Field names are documented in docs/cli.md (`stop --json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stopped {
    /// The lease.
    #[serde(rename = "leaseId")]
    pub lease: LeaseId,
    /// Its slug.
    pub slug: String,
    /// Its sandbox.
    #[serde(rename = "sandboxId")]
    pub sandbox: String,
    /// Whether the sandbox was already gone (only the claim was removed).
    pub already_gone: bool,
    /// With `--reclaim`, who made the sandbox: `this-machine`, `another` or `unknown`.
    pub reclaimed_from: Option<&'static str>,
}

/// `cbx stop --reclaim`: deletes the cbx sandbox of the lease `ident` names although this
/// machine holds no claim for it — after checking, under the claims lock, that no local
/// command holds it. A lease claimed here is stopped as usual.
pub async fn reclaim(session: &mut Session, ident: &str, wait: Duration) -> Result<Stopped> {
    let lease = resolve(session, ident).await?;
    if lease.claim.is_some() {
        lease.require_claim("reclaim")?;
        return stop(session, ident, wait).await;
    }
    let me = owner_id(session.dirs())?;
    let outcome = delete_unheld(session, &lease).await?;
    if outcome == "deleted" && !wait.is_zero() && !session.persistent() {
        wait_gone(session, &lease.sandbox.id, wait).await;
    }
    Ok(Stopped {
        lease: lease.ownership.lease.clone(),
        slug: lease.ownership.slug.clone(),
        sandbox: lease.sandbox.id.clone(),
        already_gone: outcome != "deleted",
        reclaimed_from: Some(OwnerKind::of(&lease, &me).as_str()),
    })
}

/// Deletes the sandbox of the lease `ident` names and forgets the lease, waiting up to `wait`
/// for the provider to report it gone; a claim whose sandbox is already gone is removed once
/// the provider confirms it.
pub async fn stop(session: &mut Session, ident: &str, wait: Duration) -> Result<Stopped> {
    if let Some(stopped) = stop_unfinished(session, ident).await? {
        return Ok(stopped);
    }
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
                    reclaimed_from: None,
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
        reclaimed_from: None,
    })
}

/// Stops a lease that exists only as an intent (its creation never finished): deletes
/// whatever sandbox it left. `None` when `ident` names no intent, or one whose lease is
/// already claimed (then it is stopped like any lease, and the command making it fails).
async fn stop_unfinished(session: &mut Session, ident: &str) -> Result<Option<Stopped>> {
    let by_id = LeaseId::parse(ident);
    let slug = id::normalize_slug(ident);
    let intents = session.intents().clone();
    let (all, _) = intents.scan()?;
    let Some((intent, plan)) = all.into_iter().find_map(|i| {
        let plan = i.lease()?.clone();
        let found = i.provider == session.name()
            && (Some(&plan.lease_id) == by_id.as_ref() || plan.slug == slug);
        found.then_some((i, plan))
    }) else {
        return Ok(None);
    };
    let lease = plan.lease_id.clone();
    if session.claims().get(&lease)?.is_some() {
        return Ok(None);
    }
    let Some(hold) = intents.take(&intent.id)? else {
        return Err(Failure::new(
            ErrorKind::Other,
            format!(
                "lease {lease} ({}) is still being created by `cbx {}` (pid {})",
                plan.slug, intent.command, intent.owner.pid
            ),
        )
        .hint(format!(
            "wait for that command, or stop it (Ctrl-C, or `kill {}`): it deletes what it \
             created, and if it cannot, the next cbx command does",
            intent.owner.pid
        ))
        .into());
    };
    let settled = reconcile::settle(session, hold, Settle::Delete).await?;
    let (sandbox, already_gone) = match settled {
        Settled::Deleted { sandbox, .. } => (sandbox, false),
        Settled::NotOurs { sandbox } => {
            return Err(Failure::new(
                ErrorKind::NotFound,
                reconcile::describe(&intent, &Settled::NotOurs { sandbox }),
            )
            .into());
        }
        _ => (
            intent.object_id.clone().unwrap_or(intent.name.clone()),
            true,
        ),
    };
    Ok(Some(Stopped {
        lease,
        slug: plan.slug.clone(),
        sandbox,
        already_gone,
        reclaimed_from: None,
    }))
}
