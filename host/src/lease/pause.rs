//! `cbx pause`: stopping a lease's sandbox without deleting it — the provider's `stop` (for
//! Daytona `POST /sandbox/{id}/stop`, not `/pause`, which the public runner does not support).
//! The lease, its claim and its files stay; `run --id` and `ssh` start it again.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::lease::id::LeaseId;
use crate::lease::resolve::resolve;
use crate::lease::session::Session;
use crate::provider::api::SandboxState;

/// What `cbx pause` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paused {
    /// The lease.
    pub lease: LeaseId,
    /// Its slug.
    pub slug: String,
    /// Its sandbox.
    pub sandbox: String,
    /// The sandbox's state afterwards (normalised: `stopped`, or `stopping` if it did not stop
    /// within the wait).
    pub state: String,
    /// Whether it was stopped already (nothing was asked of the provider).
    pub already: bool,
}

/// Stops the sandbox of the lease `ident` names (an exact claim is required) and waits up to
/// `wait` for the provider to report it stopped.
pub async fn pause(session: &mut Session, ident: &str, wait: Duration) -> Result<Paused> {
    let lease = resolve(session, ident).await?;
    lease.require_claim("pause")?;
    let id = lease.sandbox.id.clone();
    let mut paused = Paused {
        lease: lease.ownership.lease.clone(),
        slug: lease.ownership.slug.clone(),
        sandbox: id.clone(),
        state: "stopped".into(),
        already: false,
    };
    if matches!(
        lease.sandbox.state,
        SandboxState::Stopped | SandboxState::Archived
    ) {
        paused.already = true;
        return Ok(paused);
    }
    session.stop(&id).await.map_err(|e| session.failure(e))?;
    let deadline = Instant::now() + wait;
    loop {
        let sandbox = session.get(&id).await.map_err(|e| session.failure(e))?;
        if matches!(
            sandbox.state,
            SandboxState::Stopped | SandboxState::Archived
        ) {
            return Ok(paused);
        }
        if Instant::now() >= deadline {
            paused.state = "stopping".into();
            return Ok(paused);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
