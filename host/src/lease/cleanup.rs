//! Reclaiming: deleting cbx sandboxes this machine holds no claim for — `cbx cleanup` (the
//! expired ones, this owner's orphans, or with `--any-owner` every cbx sandbox) and `cbx stop
//! --reclaim` (one, named).
//!
//! Only sandboxes with cbx's ownership labels of this provider are candidates (`resolve::list`
//! reads nothing else). A sandbox that a local command holds — a claim that is not expired, or
//! an intent (a creation under way or unfinished) — is never deleted here; the check is
//! repeated under the claims lock right before the deletion, so a `warmup` or `run` starting
//! meanwhile wins.

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::error::{ErrorKind, Failure};
use crate::lease::Lease;
use crate::lease::id::LeaseId;
use crate::lease::release::release;
use crate::lease::session::Session;
use crate::lease::view::{OwnerKind, age_secs};
use crate::lease::{now_unix, rfc3339};
use crate::provider::api::SandboxState;
use crate::terminal::inert;

/// What `cleanup` selects.
#[derive(Debug, Clone, Copy, Default)]
pub struct Selection {
    /// Only sandboxes created longer ago than this.
    pub older_than: Option<Duration>,
    /// Also every other cbx sandbox, whoever made it.
    pub any_owner: bool,
}

/// Why a sandbox is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// Its lease's TTL is over.
    Expired,
    /// This owner made it and holds no claim for it any more.
    Orphaned,
    /// Another owner's (or an unknown one's), and `--any-owner` was given.
    AnyOwner,
    /// Named with `stop --reclaim`.
    Reclaimed,
}

/// One sandbox `cleanup` deletes (or, dry, would delete), and how that went.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Removal {
    /// The lease its labels name.
    pub lease_id: String,
    /// Its slug.
    pub slug: String,
    /// The provider's sandbox id.
    pub sandbox_id: String,
    /// The provider's word for its state.
    pub provider_state: String,
    /// Who made it: `this-machine`, `another`, `unknown`.
    pub owner: &'static str,
    /// Seconds since it was created.
    pub age_secs: u64,
    /// When its lease expires (RFC 3339).
    pub expires_at: String,
    /// Why it goes.
    pub reason: Reason,
    /// `would-delete` (dry run), `deleted`, `already-gone`, `skipped` (a local command took it
    /// meanwhile) or `failed`.
    pub outcome: String,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    lease: Option<Box<Lease>>,
}

/// A cbx sandbox `cleanup` leaves alone, and why.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Kept {
    /// The lease its labels name.
    pub lease_id: String,
    /// The provider's sandbox id.
    pub sandbox_id: String,
    /// Who made it.
    pub owner: &'static str,
    /// Why it stays.
    pub why: String,
}

/// What `cleanup` found: what goes and what stays.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanupPlan {
    /// The sandboxes to delete.
    pub delete: Vec<Removal>,
    /// The cbx sandboxes left alone.
    pub kept: Vec<Kept>,
}

/// Sorts `leases` (every cbx lease of the provider, as `resolve::list` reads them) into what
/// goes and what stays, against this machine's owner id `me`.
pub fn plan(
    session: &Session,
    leases: Vec<Lease>,
    me: &str,
    sel: Selection,
) -> Result<CleanupPlan> {
    let (intents, _) = session.intents().scan()?;
    let now = now_unix();
    let mut plan = CleanupPlan::default();
    for lease in leases {
        if lease.sandbox.state == SandboxState::Deleted {
            continue;
        }
        let owner = OwnerKind::of(&lease, me);
        let keep = |why: String| Kept {
            lease_id: lease.ownership.lease.to_string(),
            sandbox_id: lease.sandbox.id.clone(),
            owner: owner.as_str(),
            why,
        };
        let age = age_secs(&lease);
        if sel.older_than.is_some_and(|d| age < d.as_secs()) {
            continue;
        }
        let expired = lease.ownership.expires_at() <= now;
        if let Some(i) = intents
            .iter()
            .find(|i| i.id == lease.ownership.lease.as_str())
        {
            plan.kept.push(keep(format!(
                "`cbx {}` (pid {}) is creating it, or did not finish; `cbx list` finishes that",
                i.command, i.owner.pid
            )));
            continue;
        }
        let reason = match (&lease.claim, lease.exactly_claimed()) {
            (Some(_), false) => {
                plan.kept.push(keep(
                    "a claim here binds its lease to another sandbox".into(),
                ));
                continue;
            }
            (Some(_), true) if expired => Reason::Expired,
            (Some(_), true) => {
                plan.kept.push(keep(format!(
                    "held here; `cbx stop {}` ends it",
                    lease.ownership.lease
                )));
                continue;
            }
            (None, _) if expired => Reason::Expired,
            (None, _) if owner == OwnerKind::ThisMachine => Reason::Orphaned,
            (None, _) if sel.any_owner => Reason::AnyOwner,
            (None, _) => {
                plan.kept.push(keep(
                    "another owner's and not expired (--any-owner deletes it)".into(),
                ));
                continue;
            }
        };
        plan.delete.push(removal(lease, owner, age, reason));
    }
    Ok(plan)
}

fn removal(lease: Lease, owner: OwnerKind, age: u64, reason: Reason) -> Removal {
    Removal {
        lease_id: lease.ownership.lease.to_string(),
        slug: lease.ownership.slug.clone(),
        sandbox_id: lease.sandbox.id.clone(),
        provider_state: lease.sandbox.provider_state.clone(),
        owner: owner.as_str(),
        age_secs: age,
        expires_at: rfc3339(lease.ownership.expires_at()),
        reason,
        outcome: "would-delete".into(),
        error: None,
        lease: Some(Box::new(lease)),
    }
}

/// Deletes what `plan` selected, each one independently; sets each outcome. Returns how many
/// failed.
pub async fn execute(session: &mut Session, plan: &mut CleanupPlan) -> usize {
    let mut failed = 0;
    for r in &mut plan.delete {
        let Some(lease) = r.lease.take() else {
            continue;
        };
        let result = if lease.exactly_claimed() {
            release(session, &lease, Duration::ZERO)
                .await
                .map(|_| "deleted")
        } else {
            delete_unheld(session, &lease).await
        };
        match result {
            Ok(outcome) => r.outcome = outcome.into(),
            Err(e) => {
                let skipped = crate::error::failure(&e).is_some_and(|f| f.kind == ErrorKind::Usage);
                r.outcome = if skipped { "skipped" } else { "failed" }.into();
                if !skipped {
                    failed += 1;
                }
                r.error = Some(session.redactor().redact(&format!("{e:#}")));
            }
        }
    }
    failed
}

/// Deletes the sandbox of `lease`, which this machine holds no claim for: under the claims
/// lock, only if no claim and no intent for its lease appeared meanwhile (else a `Usage`
/// failure saying which).
pub async fn delete_unheld(session: &mut Session, lease: &Lease) -> Result<&'static str> {
    let lock = session.claims().lock()?;
    held_here(session, &lease.ownership.lease)?;
    let existed = session
        .delete(&lease.sandbox.id)
        .await
        .map_err(|e| session.failure(e))?;
    drop(lock);
    Ok(if existed { "deleted" } else { "already-gone" })
}

/// Fails (exit 2) when a local command holds `lease`: a claim or an intent.
fn held_here(session: &Session, lease: &LeaseId) -> Result<()> {
    if session.claims().get(lease)?.is_some() {
        return Err(Failure::new(
            ErrorKind::Usage,
            format!("lease {lease} is claimed here now; cbx leaves it to `cbx stop {lease}`"),
        )
        .into());
    }
    let (intents, _) = session.intents().scan()?;
    if let Some(i) = intents.iter().find(|i| i.id == lease.as_str()) {
        return Err(Failure::new(
            ErrorKind::Usage,
            format!(
                "lease {lease} is being created by `cbx {}` (pid {}); cbx will not delete it \
                 under that command",
                i.command,
                inert(&i.owner.pid.to_string())
            ),
        )
        .hint("wait for that command, or stop it: it deletes what it created")
        .into());
    }
    Ok(())
}
