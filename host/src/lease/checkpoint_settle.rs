//! Undoing a checkpoint that `cbx checkpoint create` began and never saw saved — after a
//! failure or a signal ([`roll_back`], in the same process), or after a crash or `kill -9`
//! (the next command's reconcile pass, `lease::reconcile::unfinished`, through [`settle`]).
//!
//! Such a checkpoint is always deleted, even if it became ready meanwhile: the user never saw
//! it succeed, so keeping it would leave something nobody knows about (the safer reading of
//! "nothing leaks"). A provider cannot delete a checkpoint it is still saving (Daytona shows
//! it only once the sandbox leaves `snapshotting`), so settling first waits, up to a
//! patience, for the source sandbox to finish; past it the record stays and a later command
//! finishes the job. Only a confirmed outcome removes the record.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::error::{ErrorKind, Failure};
use crate::interrupt;
use crate::lease::intent::{Intent, IntentHold};
use crate::lease::release::CLEANUP_PATIENCE;
use crate::lease::session::Session;
use crate::progress::{self, human_duration};
use crate::provider::CallError;
use crate::provider::api::{ProviderError, SandboxState};
use crate::terminal::inert;
use crate::testpoint;

/// What settling a checkpoint intent did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointSettled {
    /// No checkpoint was made (never asked for, or the save failed), or it is gone already.
    NothingLeft,
    /// The checkpoint was deleted.
    Deleted {
        /// Its id.
        id: String,
    },
    /// The provider is still saving it and cannot delete it yet: the record stays.
    StillSaving,
}

/// Whether a sandbox in `state` is done with any save (so its checkpoint exists now, or
/// never will).
pub fn settled(state: SandboxState) -> bool {
    matches!(
        state,
        SandboxState::Ready
            | SandboxState::Stopped
            | SandboxState::Archived
            | SandboxState::Failed
            | SandboxState::Deleted
    )
}

/// Settles the checkpoint intent held by `hold`: waits up to `patience` for the provider to
/// finish saving, then deletes whatever checkpoint was made and removes the record. An error
/// (the service did not answer) keeps the record for the next command.
pub async fn settle(
    session: &mut Session,
    mut hold: IntentHold,
    patience: Duration,
) -> Result<CheckpointSettled> {
    let Some(plan) = hold.intent().checkpoint().cloned() else {
        anyhow::bail!("intent {} is not a checkpoint's", hold.intent().id);
    };
    if !plan.requested {
        hold.finish()?;
        return Ok(CheckpointSettled::NothingLeft);
    }
    let deadline = Instant::now() + patience;
    let mut delay = Duration::from_millis(200);
    loop {
        let busy = match session.get(&plan.sandbox_id).await {
            Ok(sb) => !settled(sb.state),
            Err(CallError::Provider(ProviderError::NotFound(_))) => false,
            Err(e) => return Err(session.failure(e)),
        };
        if !busy {
            break;
        }
        if Instant::now() + delay > deadline {
            return Ok(CheckpointSettled::StillSaving);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
    let full = hold.intent().name.clone();
    let found = match session.get_checkpoint(&full).await {
        Ok(c) => c,
        Err(CallError::Provider(ProviderError::NotFound(_))) => {
            hold.finish()?;
            return Ok(CheckpointSettled::NothingLeft);
        }
        Err(e) => return Err(session.failure(e)),
    };
    hold.update(|i| i.object_id = Some(found.id.clone()))?;
    session
        .delete_checkpoint(&found.id)
        .await
        .map_err(|e| session.failure(e))?;
    hold.finish()?;
    Ok(CheckpointSettled::Deleted { id: found.id })
}

/// What settling the checkpoint intent `intent` did, in words (the reconcile pass's line).
pub fn describe(intent: &Intent, settled: &CheckpointSettled) -> String {
    let short = intent.checkpoint().map_or("?", |p| p.short.as_str());
    let by = "an unfinished `cbx checkpoint create`";
    match settled {
        CheckpointSettled::NothingLeft => format!(
            "cbx: {by} had left no checkpoint {short} ({}); its record is removed",
            intent.name
        ),
        CheckpointSettled::Deleted { id } => format!(
            "cbx: deleted checkpoint {short} ({}, id {}) that {by} left: it was never \
             reported saved",
            intent.name,
            inert(id)
        ),
        CheckpointSettled::StillSaving => format!(
            "cbx: checkpoint {short} that {by} left is still being saved, and the provider \
             cannot delete it before that ends; a later cbx command deletes it"
        ),
    }
}

/// Undoes a checkpoint creation that failed with `err` and returns the error to report:
/// `err`, saying what became of the checkpoint — deleted, never made, or (still being saved,
/// a second signal, or no answer) left on record for the next command.
pub async fn roll_back(
    session: &mut Session,
    err: anyhow::Error,
    hold: IntentHold,
) -> anyhow::Error {
    let intent = hold.intent().clone();
    let short = intent
        .checkpoint()
        .map_or("", |p| p.short.as_str())
        .to_string();
    if !intent.checkpoint().is_some_and(|p| p.requested) {
        // The provider was never asked: only the record goes.
        if let Err(e) = hold.finish() {
            progress::report(&format!("warning: {e:#}"));
        }
        return err;
    }
    let seen = interrupt::received();
    {
        progress::report(&format!(
            "cbx: deleting the unfinished checkpoint {short}; a provider cannot delete a checkpoint \
             it is still saving, so cbx waits for that (at most {}; a second signal leaves it to \
             the next cbx command)",
            human_duration(CLEANUP_PATIENCE)
        ));
    }
    let cleanup = async {
        testpoint::reached(session.env(), "checkpoint:rolling-back").await;
        settle(session, hold, CLEANUP_PATIENCE).await
    };
    let settled = tokio::select! {
        r = cleanup => Some(r),
        signal = interrupt::after(seen) => {
            progress::report(&format!("{} again: cbx stops cleaning up", signal.name()));
            None
        }
    };
    let cause = session.redactor().redact(&format!("{err:#}"));
    let kind = crate::error::failure(&err).map_or(ErrorKind::Other, |f| f.kind);
    let record = session.intents().json(&intent.id);
    let (message, hint) = match settled {
        Some(Ok(CheckpointSettled::Deleted { id })) => (
            format!(
                "{cause}; cbx deleted the unfinished checkpoint {short} (id {}), nothing is left",
                inert(&id)
            ),
            crate::error::failure(&err).and_then(|f| f.hint.clone()),
        ),
        Some(Ok(CheckpointSettled::NothingLeft)) => (
            format!("{cause}; no checkpoint was left behind"),
            crate::error::failure(&err).and_then(|f| f.hint.clone()),
        ),
        Some(Ok(CheckpointSettled::StillSaving)) | None => (
            format!(
                "{cause}. The provider is still saving checkpoint {short} and cannot delete it \
                 before that ends; cbx keeps its record ({}) and the next cbx command deletes it",
                record.display()
            ),
            Some("run `cbx checkpoint list` in a while: it finishes the clean-up".to_string()),
        ),
        Some(Err(e)) => (
            format!(
                "{cause}. Then cbx could not delete the unfinished checkpoint {short}: {}. It may \
                 still exist; cbx keeps its record ({}) and the next cbx command retries",
                inert(&session.redactor().redact(&format!("{e:#}"))),
                record.display()
            ),
            Some("run `cbx checkpoint list` once the service answers again".to_string()),
        ),
    };
    let mut failure = Failure::new(kind, message);
    failure.hint = hint;
    failure.into()
}
