//! Checkpoints: a lease's sandbox saved by the provider's `checkpoint` capability, under a
//! name cbx chooses (`cbx-ckpt-<name>`), so they can be listed and deleted as cbx's own, and
//! new sandboxes can start from them (`--from`).

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::error::{ErrorKind, Failure, fail};
use crate::lease::Lease;
use crate::lease::id;
use crate::lease::session::Session;
use crate::progress::{Progress, human_duration};
use crate::provider::api::{CheckpointInfo, CheckpointState, ProviderError, SandboxState};
use crate::provider::{CallError, Capability};
use crate::terminal::inert;

/// Every checkpoint cbx makes is named with this prefix.
pub const PREFIX: &str = "cbx-ckpt-";
/// Longest user part of a checkpoint name.
const MAX_NAME: usize = 48;
/// How long `create` waits for the provider to finish saving.
pub const SAVE_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// The user's part of a checkpoint's name, checked: lowercase letters, digits and dashes.
pub fn user_name(name: &str) -> Result<String> {
    let name = name.strip_prefix(PREFIX).unwrap_or(name);
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        return Err(Failure::new(
            ErrorKind::Usage,
            format!("`{}` is not a valid checkpoint name", inert(name)),
        )
        .hint(format!(
            "use 1 to {MAX_NAME} lowercase letters, digits and dashes, e.g. --name deps-installed"
        ))
        .into());
    }
    Ok(name.to_string())
}

/// The service's name of checkpoint `name`.
pub fn service_name(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// A fresh default name for a checkpoint of `lease`: its slug and 6 random hex digits.
pub fn default_name(lease: &Lease) -> String {
    let hex = id::LeaseId::generate().to_string();
    let tail = &hex[hex.len() - 6..];
    format!("{}-{tail}", lease.ownership.slug)
}

/// Saves `lease`'s sandbox as checkpoint `name` and waits until the provider has it.
pub async fn create(session: &mut Session, lease: &Lease, name: &str) -> Result<CheckpointInfo> {
    let full = service_name(name);
    let sandbox = lease.sandbox.id.clone();
    match session.get_checkpoint(&full).await {
        Err(CallError::Provider(ProviderError::NotFound(_))) => {}
        Ok(_) => {
            return Err(Failure::new(
                ErrorKind::Usage,
                format!("a checkpoint called {name} already exists"),
            )
            .hint("choose another --name, or delete it first: cbx checkpoint delete NAME")
            .into());
        }
        Err(e) => return Err(session.failure(e)),
    }
    let mut progress = Progress::start(
        format!("saving sandbox {} as checkpoint {name}", inert(&sandbox)),
        session.quiet(),
    );
    session
        .create_checkpoint(&sandbox, &full)
        .await
        .map_err(|e| session.failure(e))?;
    let saved = wait_saved(session, &sandbox, &full, &mut progress).await?;
    progress.finish(format!("checkpoint {name} saved"));
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
        let settled = matches!(sb.state, SandboxState::Ready | SandboxState::Stopped);
        if settled {
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

/// cbx's checkpoints with this provider.
pub async fn list(session: &mut Session) -> Result<Vec<CheckpointInfo>> {
    let all = session
        .list_checkpoints(PREFIX)
        .await
        .map_err(|e| session.failure(e))?;
    Ok(all
        .into_iter()
        .filter(|c| c.name.starts_with(PREFIX))
        .collect())
}

/// Deletes checkpoint `name` (by the id the provider gives it). `Ok(false)` if it is gone.
pub async fn delete(session: &mut Session, name: &str) -> Result<bool> {
    let full = service_name(name);
    let found = match session.get_checkpoint(&full).await {
        Ok(c) => c,
        Err(CallError::Provider(ProviderError::NotFound(_))) => return Ok(false),
        Err(e) => return Err(session.failure(e)),
    };
    session
        .delete_checkpoint(&found.id)
        .await
        .map_err(|e| session.failure(e))
}

/// Checks that checkpoint `name` exists and is ready, for `--from`; returns its service name.
pub async fn usable(session: &mut Session, name: &str) -> Result<String> {
    session.require(Capability::Checkpoint, "--from")?;
    let full = service_name(&user_name(name)?);
    match session.get_checkpoint(&full).await {
        Ok(c) if c.state == CheckpointState::Ready => Ok(full),
        Ok(c) => Err(fail(
            ErrorKind::Usage,
            format!(
                "checkpoint {} is not ready ({})",
                inert(name),
                inert(&c.provider_state)
            ),
        )),
        Err(CallError::Provider(ProviderError::NotFound(_))) => Err(Failure::new(
            ErrorKind::NotFound,
            format!("there is no checkpoint called {}", inert(name)),
        )
        .hint("see `cbx checkpoint list`")
        .into()),
        Err(e) => Err(session.failure(e)),
    }
}
