//! Finishing intents: what a cbx process recorded before creating a sandbox and did not live
//! to complete. Every lease session first settles its provider's intents whose owner is gone
//! ([`unfinished`]; a session whose provider is loaded on first use only when
//! [`anything_unfinished`] says there is something to settle); a failed or interrupted `warmup`/`run` rolls back through the same
//! [`settle`]. Checkpoint intents are settled by `lease::checkpoint_settle` in the same pass.
//!
//! Settling finds the sandbox by its id (once an answer said it) or its unique name (and, for
//! providers that cannot look names up, its lease label), then either adopts it as the lease
//! it was meant to be (a `warmup`'s, when the sandbox is healthy) or deletes it (a one-shot
//! `run`'s, a roll-back's, or an unhealthy one). Only a confirmed outcome removes the record:
//! when the service cannot be reached the intent stays, the error names the sandbox, and the
//! next command tries again.

use std::time::Duration;

use anyhow::Result;

use crate::error::{ErrorKind, Failure};
use crate::lease::checkpoint_settle;
use crate::lease::id::LeaseId;
use crate::lease::intent::{Intent, IntentHold, Settle};
use crate::lease::labels::{self, Ownership};
use crate::lease::release::{CLEANUP_PATIENCE, delete_patiently, forget};
use crate::lease::session::Session;
use crate::progress;
use crate::provider::CallError;
use crate::provider::api::{self, ProviderError, SandboxState};
use crate::terminal::inert;

/// What settling an intent did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// No sandbox was found: it was never created, or is gone already.
    NothingLeft,
    /// The sandbox was adopted as the lease it was meant to be (it is claimed here now).
    Adopted {
        /// Its id.
        sandbox: String,
        /// Its state, in the provider's words.
        state: String,
    },
    /// The sandbox was deleted.
    Deleted {
        /// Its id.
        sandbox: String,
        /// When it had failed (state `failed`): `(<the provider's word for the state>)`, then
        /// `: <its reason>` when it gave one.
        failed: Option<String>,
    },
    /// A sandbox has the intent's name but not its lease's labels: left alone.
    NotOurs {
        /// Its id.
        sandbox: String,
    },
}

/// Settles every intent of the session's provider whose owner is gone, saying on stderr what
/// it did. Never fatal: an intent that cannot be settled now is kept, with a warning, for the
/// next command.
pub async fn unfinished(session: &mut Session) {
    let intents = session.intents().clone();
    intents.sweep();
    let (all, damaged) = match intents.scan() {
        Ok(scan) => scan,
        Err(e) => {
            progress::report(&format!("warning: cannot read cbx's intents: {e:#}"));
            return;
        }
    };
    for d in &damaged {
        progress::report(&format!(
            "warning: the intent file {} is damaged ({}); `cbx list` says what to do",
            d.path.display(),
            d.error
        ));
    }
    let provider = session.name().to_string();
    for intent in all.iter().filter(|i| i.provider == provider) {
        let hold = match intents.take(&intent.id) {
            Ok(Some(hold)) => hold,
            Ok(None) => continue,
            Err(e) => {
                progress::report(&format!("warning: {e:#}"));
                continue;
            }
        };
        let settle = hold.intent().settle;
        let outcome = if intent.checkpoint().is_some() {
            checkpoint_settle::settle(session, hold, Duration::ZERO)
                .await
                .map(|s| checkpoint_settle::describe(intent, &s))
                .map_err(|e| {
                    e.context(format!(
                        "could not delete checkpoint {} that an unfinished `cbx checkpoint \
                         create` left; cbx keeps its record and the next command retries",
                        intent.name
                    ))
                })
        } else {
            self::settle(session, hold, settle)
                .await
                .map(|s| describe(intent, &s))
        };
        match outcome {
            Ok(said) => progress::report(&said),
            Err(e) => progress::report(&format!(
                "warning: {}",
                session.redactor().redact(&format!("{e:#}"))
            )),
        }
    }
}

/// Whether [`unfinished`] would have anything to do for the session's provider: an intent
/// of it whose owner is gone, or a damaged intent file (to warn about). A local check —
/// reading the intents directory — for a session whose provider is loaded on first use.
pub fn anything_unfinished(session: &Session) -> bool {
    let intents = session.intents();
    let Ok((all, damaged)) = intents.scan() else {
        return true;
    };
    !damaged.is_empty()
        || all
            .iter()
            .any(|i| i.provider == session.name() && !intents.owner_alive(&i.id))
}

/// What settling the sandbox intent `intent` did, in words.
pub fn describe(intent: &Intent, settled: &Settled) -> String {
    let Some(plan) = intent.lease() else {
        return format!("cbx: settled the record {}", intent.id);
    };
    let lease = &plan.lease_id;
    let by = format!("an unfinished `cbx {}`", intent.command);
    match settled {
        Settled::NothingLeft => format!(
            "cbx: {by} had left no sandbox for lease {lease} ({}); its record is removed",
            intent.name
        ),
        Settled::Adopted { sandbox, state } => format!(
            "cbx: finished lease {lease} ({}) that {by} left: sandbox {sandbox} is {state}. It \
             is claimed here now; `cbx stop {lease}` deletes it",
            plan.slug,
        ),
        Settled::Deleted { sandbox, .. } => format!(
            "cbx: deleted sandbox {sandbox} ({}) that {by} left (lease {lease})",
            intent.name
        ),
        Settled::NotOurs { sandbox } => format!(
            "warning: sandbox {sandbox} is named {} but does not carry the labels of lease \
             {lease}; cbx left it alone and removed its record of that lease",
            intent.name
        ),
    }
}

/// Settles the intent held by `hold`: adopts its sandbox (`Settle::Adopt`, healthy) or deletes
/// it, and removes the record — only once that is done. On an error the record stays (with
/// `settle` now `delete` if cbx had decided to delete) and the error names the sandbox and
/// says the next command retries.
pub async fn settle(
    session: &mut Session,
    mut hold: IntentHold,
    settle: Settle,
) -> Result<Settled> {
    let intent = hold.intent().clone();
    let Some(plan) = intent.lease() else {
        anyhow::bail!("intent {} is not a lease's", intent.id);
    };
    let lease = plan.lease_id.clone();
    let found = match find(session, &intent).await {
        Ok(found) => found,
        Err(e) => return Err(kept(session, &intent, e)),
    };
    let Some(sandbox) = found else {
        tidy(session, hold, &lease).await;
        return Ok(Settled::NothingLeft);
    };
    let owned =
        Ownership::from_labels(&sandbox.labels, session.name()).is_some_and(|o| o.lease == lease);
    if !owned {
        hold.finish()?;
        return Ok(Settled::NotOurs {
            sandbox: sandbox.id,
        });
    }
    if settle == Settle::Adopt && healthy(sandbox.state) {
        adopt(session, &intent, &sandbox)?;
        hold.finish()?;
        return Ok(Settled::Adopted {
            sandbox: sandbox.id,
            state: sandbox.provider_state,
        });
    }
    let id = sandbox.id.clone();
    let failed = (sandbox.state == SandboxState::Failed).then(|| {
        let reason = sandbox.reason.as_deref().map(|r| format!(": {r}"));
        format!("({}){}", sandbox.provider_state, reason.unwrap_or_default())
    });
    hold.update(|i| {
        i.settle = Settle::Delete;
        i.object_id = Some(id.clone());
    })?;
    if let Err(e) = delete_patiently(session, &id, CLEANUP_PATIENCE).await {
        return Err(kept(session, hold.intent(), e));
    }
    tidy(session, hold, &lease).await;
    Ok(Settled::Deleted {
        sandbox: id,
        failed,
    })
}

/// Once no sandbox is left: forgets the lease locally and removes the record. What cannot be
/// removed is reported, not fatal — the sandbox is gone either way, and a stale claim or record
/// is found and removed by the next command.
async fn tidy(session: &Session, hold: IntentHold, lease: &LeaseId) {
    if let Err(e) = forget(session, lease).await {
        progress::report(&format!("warning: lease {lease} is gone, but {e:#}"));
    }
    if let Err(e) = hold.finish() {
        progress::report(&format!("warning: lease {lease} is gone, but {e:#}"));
    }
}

/// Whether a sandbox in `state` is worth adopting.
fn healthy(state: SandboxState) -> bool {
    !matches!(
        state,
        SandboxState::Failed | SandboxState::Deleted | SandboxState::Unknown
    )
}

/// The intent's sandbox, if it exists: by id, else by name, else by its lease label.
async fn find(session: &mut Session, intent: &Intent) -> Result<Option<api::Sandbox>> {
    let key = intent.object_id.as_deref().unwrap_or(&intent.name);
    match session.get(key).await {
        Ok(s) if s.state == SandboxState::Deleted => Ok(None),
        Ok(s) => Ok(Some(s)),
        Err(CallError::Provider(ProviderError::NotFound(_))) if intent.object_id.is_some() => {
            Ok(None)
        }
        Err(CallError::Provider(ProviderError::NotFound(_))) => match intent.lease() {
            Some(plan) => by_lease_label(session, &plan.lease_id).await,
            None => Ok(None),
        },
        Err(e) => Err(session.failure(e)),
    }
}

/// The sandbox carrying `lease`'s label, for providers that cannot find one by name.
async fn by_lease_label(session: &mut Session, lease: &LeaseId) -> Result<Option<api::Sandbox>> {
    let mut selector = Ownership::selector(session.name());
    selector.push((labels::LEASE.to_string(), lease.to_string()));
    let found = session
        .list(&selector)
        .await
        .map_err(|e| session.failure(e))?;
    Ok(found.into_iter().find(|s| s.state != SandboxState::Deleted))
}

/// Claims `sandbox` as the intent's lease, unless it is claimed already.
fn adopt(session: &Session, intent: &Intent, sandbox: &api::Sandbox) -> Result<()> {
    let Some(plan) = intent.lease() else {
        anyhow::bail!("intent {} is not a lease's", intent.id);
    };
    let claims = session.claims();
    let lock = claims.lock()?;
    match claims.get(&plan.lease_id)? {
        Some(c) if c.sandbox_id == sandbox.id => Ok(()),
        Some(c) => anyhow::bail!(
            "lease {} is claimed for sandbox {}, not {}; cbx adopts nothing",
            c.lease_id,
            c.sandbox_id,
            sandbox.id
        ),
        None => {
            let claim = plan.claim(session.name(), sandbox);
            claims.create(&claim, &lock).map(|_| ())
        }
    }
}

/// The error of a clean-up that could not be finished: it names the sandbox and says that the
/// record is kept for the next command. The sandbox id and the cause may be the provider's
/// words, so they are quoted [`inert`].
pub fn kept(session: &Session, intent: &Intent, cause: anyhow::Error) -> anyhow::Error {
    let id = intent
        .object_id
        .as_deref()
        .map(|id| format!(" (id {})", inert(id)))
        .unwrap_or_default();
    let lease = intent
        .lease()
        .map(|p| p.lease_id.to_string())
        .unwrap_or_default();
    Failure::new(
        ErrorKind::Other,
        format!(
            "could not clean up sandbox {}{id} of lease {}: {}. It may still exist; cbx keeps \
             its record ({}) and the next cbx command will retry the clean-up",
            intent.name,
            lease,
            inert(&session.redactor().redact(&format!("{cause:#}"))),
            session.intents().json(&intent.id).display()
        ),
    )
    .hint("run `cbx list` once the service answers again: it finishes the clean-up")
    .into()
}
