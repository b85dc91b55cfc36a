//! `cbx cleanup`'s part for checkpoints: this owner's orphaned checkpoints — ones an
//! interrupted or killed `cbx checkpoint create` began and never saw saved (its intent is
//! left, its process gone). Every command's reconcile pass deletes those it can at once; what
//! is left for `cleanup` are the ones the provider was still saving, which `cleanup`, asked
//! explicitly, waits for (up to the clean-up patience) and then deletes.
//!
//! A saved checkpoint is the user's: `cleanup` never deletes one (`cbx checkpoint delete`
//! does), whoever's it is.

use anyhow::Result;
use serde::Serialize;

use crate::error::ErrorKind;
use crate::lease::checkpoint_settle::{self, CheckpointSettled};
use crate::lease::release::CLEANUP_PATIENCE;
use crate::lease::session::Session;

/// An orphaned checkpoint `cleanup` deletes (or, dry, would delete), and how that went.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointRemoval {
    /// The user's name for it.
    pub name: String,
    /// The provider's name for it.
    pub service_name: String,
    /// Always `unfinished`: its `cbx checkpoint create` never saw it saved.
    pub reason: &'static str,
    /// `would-delete` (dry run), `deleted`, `already-gone`, `skipped` (a command took it
    /// meanwhile) or `failed` (the provider did not answer, or was still saving).
    pub outcome: String,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    intent: String,
}

/// A checkpoint creation `cleanup` leaves alone, and why.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointKept {
    /// The user's name for it.
    pub name: String,
    /// Why it stays.
    pub why: String,
}

/// What `cleanup` found among this owner's checkpoint creations.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointCleanup {
    /// The orphaned checkpoints to delete.
    pub delete: Vec<CheckpointRemoval>,
    /// Creations a live command is still working on.
    pub kept: Vec<CheckpointKept>,
}

/// This provider's checkpoint intents: orphaned (their process gone) to delete, live ones kept.
pub fn plan(session: &Session) -> Result<CheckpointCleanup> {
    let intents = session.intents();
    let (all, _) = intents.scan()?;
    let mut plan = CheckpointCleanup::default();
    for intent in all.iter().filter(|i| i.provider == session.name()) {
        let Some(ckpt) = intent.checkpoint() else {
            continue;
        };
        if intents.owner_alive(&intent.id) {
            plan.kept.push(CheckpointKept {
                name: ckpt.short.clone(),
                why: format!(
                    "`cbx {}` (pid {}) is saving it now; stopping that command deletes it",
                    intent.command, intent.owner.pid
                ),
            });
            continue;
        }
        plan.delete.push(CheckpointRemoval {
            name: ckpt.short.clone(),
            service_name: intent.name.clone(),
            reason: "unfinished",
            outcome: "would-delete".into(),
            error: None,
            intent: intent.id.clone(),
        });
    }
    Ok(plan)
}

/// Deletes what `plan` selected, each independently, waiting for saves still under way; sets
/// each outcome. Returns how many failed.
pub async fn execute(session: &mut Session, plan: &mut CheckpointCleanup) -> usize {
    let mut failed = 0;
    for r in &mut plan.delete {
        let hold = match session.intents().take(&r.intent) {
            Ok(Some(hold)) => hold,
            Ok(None) => {
                r.outcome = "skipped".into();
                r.error = Some("another cbx command took it over meanwhile".into());
                continue;
            }
            Err(e) => {
                failed += 1;
                r.outcome = "failed".into();
                r.error = Some(format!("{e:#}"));
                continue;
            }
        };
        match checkpoint_settle::settle(session, hold, CLEANUP_PATIENCE).await {
            Ok(CheckpointSettled::Deleted { .. }) => r.outcome = "deleted".into(),
            Ok(CheckpointSettled::NothingLeft) => r.outcome = "already-gone".into(),
            Ok(CheckpointSettled::StillSaving) => {
                failed += 1;
                r.outcome = "failed".into();
                r.error = Some(
                    "the provider is still saving it and cannot delete it before; cbx keeps \
                     its record and a later command deletes it"
                        .into(),
                );
            }
            Err(e) => {
                let skipped = crate::error::failure(&e).is_some_and(|f| f.kind == ErrorKind::Usage);
                r.outcome = if skipped { "skipped" } else { "failed" }.into();
                failed += usize::from(!skipped);
                r.error = Some(session.redactor().redact(&format!("{e:#}")));
            }
        }
    }
    failed
}
