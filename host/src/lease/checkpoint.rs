//! Checkpoints: a lease's sandbox saved by the provider's `checkpoint` capability, under a
//! name that says whose it is (`lease::checkpoint_name`), so they can be listed and deleted as
//! this owner's own, and new sandboxes can start from them (`--from`).
//!
//! Creating one is crash-safe like creating a lease: an intent (`lease::intent`, a checkpoint
//! plan) is recorded before the provider is asked, and finished only once the checkpoint is
//! seen saved. A failure, a signal or a crash in between ends in its deletion — now, or by the
//! next command (`lease::checkpoint_settle`).

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::error::{ErrorKind, Failure, fail};
use crate::interrupt;
use crate::lease::checkpoint_name::{CheckpointName, CheckpointRef};
use crate::lease::checkpoint_settle::{self, settled};
use crate::lease::id;
use crate::lease::intent::{
    CheckpointPlan, INTENT_VERSION, Intent, IntentHold, Owner, Plan, Settle,
};
use crate::lease::owner::owner_id;
use crate::lease::session::Session;
use crate::lease::view::OwnerKind;
use crate::lease::{Lease, now_unix, rfc3339};
use crate::progress::{Progress, human_duration};
use crate::provider::api::{CheckpointInfo, CheckpointState, ProviderError};
use crate::provider::{CallError, Capability};
use crate::terminal::inert;
use crate::testpoint;

pub use crate::lease::checkpoint_name::PREFIX;

/// How long `create` waits for the provider to finish saving.
pub const SAVE_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// A checkpoint as the provider lists it, with the name cbx gave it.
#[derive(Debug, Clone)]
pub struct ListedCheckpoint {
    /// Its name, parsed.
    pub name: CheckpointName,
    /// What the provider says.
    pub info: CheckpointInfo,
}

/// What a user typed for a checkpoint (`deps`, `<owner>_deps`, `cbx-ckpt-…`), checked; the
/// text `usable` and `delete` take.
pub fn user_name(name: &str) -> Result<String> {
    Ok(CheckpointRef::parse(name)?.text())
}

/// A fresh default name for a checkpoint of `lease`: its slug and 6 random hex digits.
pub fn default_name(lease: &Lease) -> String {
    let hex = id::LeaseId::generate().to_string();
    let tail = &hex[hex.len() - 6..];
    format!("{}-{tail}", lease.ownership.slug)
}

/// The intent id of this owner's checkpoint `short`: one creation per name at a time.
fn intent_id(short: &str) -> String {
    format!("ckpt-{short}")
}

/// Saves `lease`'s sandbox as this owner's checkpoint `name` (a short name) and waits until
/// the provider has it. On a failure or a signal the half-made checkpoint is deleted, or left
/// on record for the next command when the provider cannot delete it yet.
pub async fn create(session: &mut Session, lease: &Lease, name: &str) -> Result<CheckpointInfo> {
    let short = crate::lease::checkpoint_name::short_name(name)?;
    let full = CheckpointName::owned(&owner_id(session.dirs())?, &short).service();
    let _shield = interrupt::shield();
    if let Some(signal) = interrupt::pending() {
        return Err(signal.failure("interrupted"));
    }
    let mut hold = record(session, lease, &short, &full)?;
    let outcome = tokio::select! {
        r = save(session, &mut hold) => r,
        signal = interrupt::interrupted() => Err(signal.failure("interrupted")),
    };
    match outcome {
        Ok(saved) => {
            if let Err(e) = hold.finish() {
                crate::progress::report(&format!("warning: {e:#}"));
            }
            Ok(saved)
        }
        Err(err) => Err(checkpoint_settle::roll_back(session, err, hold).await),
    }
}

/// Records the intent to save checkpoint `short` (`full` at the provider); refuses while
/// another creation of that name is under way or not yet cleaned up.
fn record(session: &Session, lease: &Lease, short: &str, full: &str) -> Result<IntentHold> {
    let intents = session.intents();
    let id = intent_id(short);
    let lock = session.claims().lock()?;
    if intents.owner_alive(&id) || intents.json(&id).exists() {
        let why = if intents.owner_alive(&id) {
            "another `cbx checkpoint create` is saving it now"
        } else {
            "an interrupted `cbx checkpoint create` of that name is not cleaned up yet"
        };
        return Err(Failure::new(
            ErrorKind::Usage,
            format!("cannot create checkpoint {short}: {why}; nothing was done"),
        )
        .hint("wait and see `cbx checkpoint list` (it finishes the clean-up), or choose another --name")
        .into());
    }
    let intent = Intent {
        version: INTENT_VERSION,
        id,
        provider: session.name().to_string(),
        name: full.to_string(),
        object_id: None,
        command: "checkpoint create".into(),
        settle: Settle::Delete,
        owner: Owner::this_process(),
        recorded_at: rfc3339(now_unix()),
        plan: Plan::Checkpoint(CheckpointPlan {
            short: short.to_string(),
            lease_id: lease.ownership.lease.clone(),
            sandbox_id: lease.sandbox.id.clone(),
            requested: false,
        }),
    };
    intents.record(intent, &lock)
}

/// Checks the name is free, marks the intent requested, asks the provider and waits.
async fn save(session: &mut Session, hold: &mut IntentHold) -> Result<CheckpointInfo> {
    testpoint::reached(session.env(), "checkpoint:recorded").await;
    let full = hold.intent().name.clone();
    let Some(plan) = hold.intent().checkpoint().cloned() else {
        anyhow::bail!("intent {} is not a checkpoint's", hold.intent().id);
    };
    match session.get_checkpoint(&full).await {
        Err(CallError::Provider(ProviderError::NotFound(_))) => {}
        Ok(_) => {
            return Err(Failure::new(
                ErrorKind::Usage,
                format!("a checkpoint called {} already exists", plan.short),
            )
            .hint("choose another --name, or delete it first: cbx checkpoint delete NAME")
            .into());
        }
        Err(e) => return Err(session.failure(e)),
    }
    hold.update(|i| {
        if let Plan::Checkpoint(p) = &mut i.plan {
            p.requested = true;
        }
    })?;
    let sandbox = plan.sandbox_id.as_str();
    let mut progress = Progress::start(
        format!(
            "saving sandbox {} as checkpoint {}",
            inert(sandbox),
            plan.short
        ),
        session.quiet(),
    );
    session
        .create_checkpoint(sandbox, &full)
        .await
        .map_err(|e| session.failure(e))?;
    testpoint::reached(session.env(), "checkpoint:saving").await;
    let saved = wait_saved(session, sandbox, &full, &mut progress).await?;
    progress.finish(format!("checkpoint {} saved", plan.short));
    Ok(saved)
}

/// Polls the source sandbox until it is no longer busy saving, then the checkpoint until it
/// is ready. Daytona shows success only on the checkpoint itself, and a failed save leaves
/// no trace but its absence.
async fn wait_saved(
    session: &mut Session,
    sandbox: &str,
    full: &str,
    progress: &mut Progress,
) -> Result<CheckpointInfo> {
    let deadline = Instant::now() + SAVE_TIMEOUT;
    let mut delay = Duration::from_millis(200);
    loop {
        let sb = session.get(sandbox).await.map_err(|e| session.failure(e))?;
        if settled(sb.state) {
            match session.get_checkpoint(full).await {
                Ok(c) if c.state == CheckpointState::Ready => return Ok(c),
                Ok(c) if c.state == CheckpointState::Failed => {
                    let why = c.reason.unwrap_or(c.provider_state);
                    return Err(fail(
                        ErrorKind::Sandbox,
                        format!(
                            "the provider could not save the checkpoint: {}",
                            inert(&why)
                        ),
                    ));
                }
                Ok(_) => {}
                Err(CallError::Provider(ProviderError::NotFound(_))) => {
                    return Err(Failure::new(
                        ErrorKind::Sandbox,
                        format!(
                            "sandbox {} finished saving, but the provider has no checkpoint {}: saving failed",
                            inert(sandbox),
                            inert(full)
                        ),
                    )
                    .hint("try again; if it keeps failing, check the provider's quota for snapshots")
                    .into());
                }
                Err(e) => return Err(session.failure(e)),
            }
        }
        progress.set(format!(
            "saving checkpoint {} (sandbox: {})",
            inert(full),
            inert(&sb.provider_state)
        ));
        if Instant::now() + delay > deadline {
            return Err(fail(
                ErrorKind::Sandbox,
                format!(
                    "checkpoint {} was not saved after {}",
                    inert(full),
                    human_duration(SAVE_TIMEOUT)
                ),
            ));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(3));
    }
}

/// cbx's checkpoints with this provider (every owner's, and names of a cbx before owners).
pub async fn list(session: &mut Session) -> Result<Vec<CheckpointInfo>> {
    Ok(listed(session).await?.into_iter().map(|l| l.info).collect())
}

/// [`list`], each with its parsed name.
pub async fn listed(session: &mut Session) -> Result<Vec<ListedCheckpoint>> {
    let all = session
        .list_checkpoints(PREFIX)
        .await
        .map_err(|e| session.failure(e))?;
    Ok(all
        .into_iter()
        .filter_map(|info| {
            let name = CheckpointName::parse(&info.name)?;
            Some(ListedCheckpoint { name, info })
        })
        .collect())
}

/// The checkpoint `reference` (see [`user_name`]) names: for a short name, this owner's,
/// else one of a cbx before owners, else the one other owner's of that name (ambiguous if
/// several). `None` if there is none.
pub async fn find(session: &mut Session, reference: &str) -> Result<Option<ListedCheckpoint>> {
    let me = owner_id(session.dirs())?;
    let short = match CheckpointRef::parse(reference)? {
        CheckpointRef::Exact(name) => return get(session, name).await,
        CheckpointRef::Short(short) => short,
    };
    for name in [
        CheckpointName::owned(&me, &short),
        CheckpointName {
            owner: None,
            short: short.clone(),
        },
    ] {
        if let Some(found) = get(session, name).await? {
            return Ok(Some(found));
        }
    }
    let mut others: Vec<ListedCheckpoint> = listed(session)
        .await?
        .into_iter()
        .filter(|l| {
            l.name.short == short
                && l.name.owner_kind(&me) == OwnerKind::Another
                && l.info.state != CheckpointState::Deleting
        })
        .collect();
    if others.len() > 1 {
        let names: Vec<String> = others.iter().map(|l| l.name.shown(&me)).collect();
        return Err(Failure::new(
            ErrorKind::Usage,
            format!(
                "{} other owners have a checkpoint called {short}: {}",
                others.len(),
                names.join(", ")
            ),
        )
        .hint("name one of them exactly, as `cbx checkpoint list` shows it")
        .into());
    }
    Ok(others.pop())
}

/// Checkpoint `name`, if the provider has it (and is not deleting it already).
async fn get(session: &mut Session, name: CheckpointName) -> Result<Option<ListedCheckpoint>> {
    match session.get_checkpoint(&name.service()).await {
        Ok(info) if info.state == CheckpointState::Deleting => Ok(None),
        Ok(info) => Ok(Some(ListedCheckpoint { name, info })),
        Err(CallError::Provider(ProviderError::NotFound(_))) => Ok(None),
        Err(e) => Err(session.failure(e)),
    }
}

/// Deletes checkpoint `reference` (by the id the provider gives it); `Ok(None)` if there is
/// none, else its name. Another owner's is refused (exit 4) unless `any_owner`.
pub async fn delete(
    session: &mut Session,
    reference: &str,
    any_owner: bool,
) -> Result<Option<CheckpointName>> {
    let Some(found) = find(session, reference).await? else {
        return Ok(None);
    };
    let me = owner_id(session.dirs())?;
    if found.name.owner_kind(&me) == OwnerKind::Another && !any_owner {
        return Err(Failure::new(
            ErrorKind::NotFound,
            format!(
                "checkpoint {} is another owner's (made on another machine, or here before \
                 cbx's state was lost); cbx leaves it alone",
                found.name.shown(&me)
            ),
        )
        .hint(format!(
            "--any-owner deletes it: cbx checkpoint delete {} --any-owner",
            found.name.shown(&me)
        ))
        .into());
    }
    let existed = session
        .delete_checkpoint(&found.info.id)
        .await
        .map_err(|e| session.failure(e))?;
    Ok(existed.then_some(found.name))
}

/// Checks that checkpoint `name` exists and is ready, for `--from`; returns its service name.
pub async fn usable(session: &mut Session, name: &str) -> Result<String> {
    session.require(Capability::Checkpoint, "--from")?;
    match find(session, name).await? {
        Some(l) if l.info.state == CheckpointState::Ready => Ok(l.name.service()),
        Some(l) => Err(fail(
            ErrorKind::Usage,
            format!(
                "checkpoint {} is not ready ({})",
                inert(name),
                inert(&l.info.provider_state)
            ),
        )),
        None => Err(Failure::new(
            ErrorKind::NotFound,
            format!("there is no checkpoint called {}", inert(name)),
        )
        .hint("see `cbx checkpoint list`")
        .into()),
    }
}
