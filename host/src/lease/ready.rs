//! Waiting for a lease's sandbox: polling `get` until it is ready (starting it if it was
//! stopped), refusing an expired lease, and marking a lease as used (a conditional update of
//! its claim).

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::error::{ErrorKind, Failure, fail};
use crate::lease::claims::{Update, stopped_meanwhile};
use crate::lease::session::Session;
use crate::lease::{Lease, now_unix, rfc3339};
use crate::progress::{Progress, human_duration};
use crate::provider::api::{self, SandboxState};
use crate::terminal::inert;

/// Polls `get` until the sandbox is ready; starts it if it is stopped; fails (exit 5) on a
/// failed or deleted sandbox or at the deadline.
pub async fn wait_ready(
    session: &mut Session,
    id: &str,
    timeout: Duration,
    progress: &mut Progress,
) -> Result<api::Sandbox> {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(200);
    let mut started = false;
    loop {
        let sandbox = session.get(id).await.map_err(|e| session.failure(e))?;
        match sandbox.state {
            SandboxState::Ready => return Ok(sandbox),
            SandboxState::Failed if started => return Err(failed_start(id, &sandbox)),
            SandboxState::Failed => return Err(failed(id, &sandbox)),
            SandboxState::Deleted => {
                return Err(fail(
                    ErrorKind::Sandbox,
                    format!("sandbox {id} was deleted while cbx waited for it"),
                ));
            }
            SandboxState::Stopped | SandboxState::Archived if !started => {
                progress.set(format!(
                    "starting sandbox {id} ({})",
                    sandbox.provider_state
                ));
                let answer = match session.start(id).await {
                    Ok(answer) => answer,
                    Err(e) => return Err(start_failed(session, id, e).await),
                };
                // Services that answer once the sandbox has started (Daytona) need no poll.
                if answer.state == SandboxState::Ready {
                    return Ok(answer);
                }
                started = true;
            }
            _ => {}
        }
        progress.set(format!(
            "waiting for sandbox {id} to be ready ({})",
            sandbox.provider_state
        ));
        if Instant::now() + delay > deadline {
            return Err(Failure::new(
                ErrorKind::Sandbox,
                format!(
                    "sandbox {} was not ready after {} (last state: {})",
                    inert(id),
                    human_duration(timeout),
                    inert(&sandbox.provider_state)
                ),
            )
            .hint("raise the limit with --ready-timeout, or check the provider's status page")
            .into());
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 3 / 2).min(Duration::from_secs(2));
    }
}

/// The failure of a sandbox in state `failed`, with the provider's reason.
fn failed(id: &str, sandbox: &api::Sandbox) -> anyhow::Error {
    failure_of(id, sandbox, "failed").into()
}

/// `sandbox ID <what> (<state>): <reason>`, exit 5.
fn failure_of(id: &str, sandbox: &api::Sandbox, what: &str) -> Failure {
    Failure::new(
        ErrorKind::Sandbox,
        format!(
            "sandbox {} {what} ({}){}",
            inert(id),
            inert(&sandbox.provider_state),
            sandbox
                .reason
                .as_deref()
                .map(|r| format!(": {}", inert(r)))
                .unwrap_or_default()
        ),
    )
}

/// The failure of starting sandbox `id` (`err`): when the sandbox is now `failed` (Daytona's
/// 400 "Sandbox failed to start: …"), exit 5 with the provider's reason and what to do;
/// otherwise `err` as it is.
async fn start_failed(
    session: &mut Session,
    id: &str,
    err: crate::provider::CallError,
) -> anyhow::Error {
    let err = session.failure(err);
    match session.get(id).await {
        Ok(sandbox) if sandbox.state == SandboxState::Failed => failed_start(id, &sandbox),
        _ => err,
    }
}

/// The failure of a sandbox that cbx started and the provider then reported `failed`.
fn failed_start(id: &str, sandbox: &api::Sandbox) -> anyhow::Error {
    failure_of(id, sandbox, "failed to start")
        .hint(
            "the sandbox did not start again from its image; `cbx stop LEASE` deletes the \
             lease, and `cbx warmup` leases a new one",
        )
        .into()
}

/// Fails with exit 5 if the lease has expired; otherwise waits until its sandbox is ready,
/// starting it if it was stopped.
pub async fn ensure_ready(
    session: &mut Session,
    lease: &mut Lease,
    timeout: Duration,
) -> Result<()> {
    refuse_expired(lease)?;
    if lease.sandbox.state != SandboxState::Ready {
        let mut progress = Progress::start(
            format!(
                "sandbox {} is {}; starting it",
                lease.sandbox.id, lease.sandbox.provider_state
            ),
            session.quiet(),
        );
        let result = wait_ready(session, &lease.sandbox.id.clone(), timeout, &mut progress).await;
        progress.clear();
        lease.sandbox = result?;
    }
    Ok(())
}

/// Fails with exit 5 if the lease has expired.
pub fn refuse_expired(lease: &Lease) -> Result<()> {
    if lease.ownership.expires_at() <= now_unix() {
        return Err(Failure::new(
            ErrorKind::Sandbox,
            format!(
                "lease {} ({}) expired at {}",
                lease.ownership.lease,
                lease.ownership.slug,
                rfc3339(lease.ownership.expires_at())
            ),
        )
        .hint(format!(
            "`cbx stop {}` deletes it; `cbx warmup` leases a new one",
            lease.ownership.lease
        ))
        .into());
    }
    Ok(())
}

/// Records that the lease is in use: in the claim (only while it still exists — a lease
/// stopped meanwhile fails with exit 4, before anything else is done with it), then in the
/// provider's idle timer (best effort).
pub async fn touch(session: &mut Session, lease: &mut Lease) -> Result<()> {
    if let Some(claim) = &lease.claim {
        let now = rfc3339(now_unix());
        let mut generation = claim.generation;
        // Another cbx using the lease may write the claim in between: apply the change to
        // what it wrote (a few times at most).
        for _ in 0..5 {
            let update =
                session
                    .claims()
                    .update(&claim.lease_id, &claim.sandbox_id, generation, |c| {
                        c.last_used_at = now.clone()
                    })?;
            match update {
                Update::Done(c) => {
                    lease.claim = Some(c);
                    break;
                }
                Update::Changed(c) => generation = c.generation,
                Update::Gone => return Err(stopped_meanwhile(&claim.lease_id)),
            }
        }
    }
    if let Err(e) = session.touch(&lease.sandbox.id).await {
        tracing::debug!("touch failed: {e}");
    }
    Ok(())
}
