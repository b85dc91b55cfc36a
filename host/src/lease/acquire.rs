//! Creating a lease: a sandbox with cbx's labels, a local claim, readiness — and, when
//! anything fails or the user interrupts, deleting the sandbox again so none is left behind.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::error::{ErrorKind, Failure, fail};
use crate::lease::claims::{CLAIM_VERSION, Claim};
use crate::lease::id::{self, LeaseId};
use crate::lease::labels::Ownership;
use crate::lease::ready::wait_ready;
use crate::lease::release::{forget_local, reap_expired};
use crate::lease::session::Session;
use crate::lease::{Lease, now_unix, rfc3339};
use crate::progress::{Progress, human_duration};
use crate::provider::CallError;
use crate::provider::api::{self, ProviderError};
use crate::terminal::inert;

/// What a new lease should look like.
#[derive(Debug, Clone)]
pub struct AcquireRequest {
    /// A requested slug; a random one otherwise.
    pub slug: Option<String>,
    /// Lifetime.
    pub ttl: Duration,
    /// Idle time before the provider stops the sandbox.
    pub idle: Duration,
    /// The repository the lease is for.
    pub repo_root: Option<PathBuf>,
    /// How long to wait for the sandbox to become ready.
    pub ready_timeout: Duration,
}

/// Creates a sandbox and makes it a lease: labels, claim, readiness. On any failure — and on
/// Ctrl-C — the sandbox is deleted again; if that fails too, the error says how to clean up.
pub async fn acquire(session: &mut Session, request: &AcquireRequest) -> Result<Lease> {
    reap_expired(session).await;
    let slug = choose_slug(session, request.slug.as_deref()).await?;
    let lease = LeaseId::generate();
    let now = now_unix();
    let ownership = Ownership {
        provider: session.name().to_string(),
        lease: lease.clone(),
        slug: slug.clone(),
        created_at: now,
        touched_at: now,
        ttl_secs: request.ttl.as_secs(),
        idle_secs: request.idle.as_secs(),
        work_root: session.profile().work_root.clone(),
    };
    let name = format!("cbx-{slug}-{}", &lease.as_str()[4..]);
    let create = api::CreateRequest {
        name: name.clone(),
        labels: ownership.to_labels(),
        idle_timeout_minutes: request.idle.as_secs().div_ceil(60) as u32,
        ttl_minutes: request.ttl.as_secs().div_ceil(60) as u32,
    };

    let mut created: Option<String> = None;
    let outcome = tokio::select! {
        r = provision(session, request, &create, &ownership, &mut created) => r,
        () = crate::interrupt::interrupted() => Err(fail(ErrorKind::Interrupted, "interrupted")),
    };
    match outcome {
        Ok(lease) => Ok(lease),
        Err(err) => Err(clean_up_after(session, err, created, &name, &lease).await),
    }
}

/// The slug for a new lease: the one asked for, if valid and free, else a random free one.
async fn choose_slug(session: &mut Session, wanted: Option<&str>) -> Result<String> {
    let taken_remote: Vec<String> = session
        .list_owned()
        .await
        .map_err(|e| session.failure(e))?
        .into_iter()
        .map(|(_, o)| o.slug)
        .collect();
    let taken_local: Vec<String> = session
        .claims()
        .all()?
        .into_iter()
        .map(|c| c.slug)
        .collect();
    let taken = |s: &str| taken_remote.iter().chain(&taken_local).any(|t| t == s);
    let Some(wanted) = wanted else {
        return Ok(id::unique_slug(&taken));
    };
    let slug = id::normalize_slug(wanted);
    if slug.is_empty() || slug.len() > 40 {
        return Err(fail(
            ErrorKind::Usage,
            format!("--slug `{wanted}` must have 1 to 40 letters, digits or dashes"),
        ));
    }
    if taken(&slug) {
        return Err(fail(
            ErrorKind::Usage,
            format!("slug `{slug}` is already used by another lease; choose another"),
        ));
    }
    Ok(slug)
}

/// Deletes what a failed acquire may have created (`created`, or a sandbox called `name` the
/// service made although cbx saw no answer) and returns the error to report: `err`, or — when
/// the clean-up failed too — one that says how to clean up by hand.
async fn clean_up_after(
    session: &mut Session,
    err: anyhow::Error,
    created: Option<String>,
    name: &str,
    lease: &LeaseId,
) -> anyhow::Error {
    let cleanup = async {
        match &created {
            Some(id) => delete_and_forget(session, id, lease).await,
            // The create call may have reached the service even though we saw no answer;
            // its unique name finds it.
            None => reconcile_lost_create(session, name, lease).await,
        }
    };
    let cleaned = tokio::select! {
        r = cleanup => r,
        () = crate::interrupt::interrupted() => Err(fail(ErrorKind::Interrupted, "interrupted again during clean-up")),
    };
    let Err(cleanup_err) = cleaned else {
        return err;
    };
    let id = created.unwrap_or_else(|| name.to_string());
    let kind = crate::error::failure(&err).map_or(ErrorKind::Other, |f| f.kind);
    err.context(Failure::new(
        kind,
        format!(
            "could not delete sandbox {id} after the failure ({}); it may still be running. \
             Delete it with `cbx stop {lease}` or in the provider's console",
            session.redactor().redact(&format!("{cleanup_err:#}"))
        ),
    ))
}

async fn provision(
    session: &mut Session,
    request: &AcquireRequest,
    create: &api::CreateRequest,
    ownership: &Ownership,
    created: &mut Option<String>,
) -> Result<Lease> {
    let mut progress = Progress::start(
        format!("creating a {} sandbox ({})", session.name(), ownership.slug),
        session.quiet(),
    );
    let sandbox = match session.create(create).await {
        Ok(s) => s,
        Err(e) => {
            progress.clear();
            return Err(session.failure(e));
        }
    };
    *created = Some(sandbox.id.clone());

    // Record ownership locally before waiting, so an interrupted wait can still be cleaned up.
    let claim = claim_for(ownership, &sandbox, request);
    session.claims().save(&claim)?;

    let ready = wait_ready(session, &sandbox.id, request.ready_timeout, &mut progress).await;
    let verified = match ready {
        Ok(sandbox) => verify_labels(session, &sandbox.id, ownership).await,
        Err(e) => Err(e),
    };
    let sandbox = match verified {
        Ok(s) => s,
        Err(e) => {
            progress.clear();
            return Err(e);
        }
    };
    let took = progress.elapsed();
    progress.finish(format!(
        "sandbox {} is ready ({})",
        sandbox.id,
        human_duration(took)
    ));
    Ok(Lease {
        sandbox,
        ownership: ownership.clone(),
        claim: Some(claim),
    })
}

/// The claim binding `ownership` to the sandbox just created.
fn claim_for(ownership: &Ownership, sandbox: &api::Sandbox, request: &AcquireRequest) -> Claim {
    Claim {
        version: CLAIM_VERSION,
        lease_id: ownership.lease.clone(),
        slug: ownership.slug.clone(),
        provider: ownership.provider.clone(),
        sandbox_id: sandbox.id.clone(),
        sandbox_name: sandbox.name.clone(),
        repo_root: request.repo_root.as_ref().map(|p| p.display().to_string()),
        work_root: ownership.work_root.clone(),
        created_at: rfc3339(ownership.created_at),
        expires_at: rfc3339(ownership.expires_at()),
        last_used_at: rfc3339(ownership.created_at),
    }
}

/// Writes the full ownership labels on sandbox `id` and reads them back: only a verified
/// sandbox is a lease.
async fn verify_labels(
    session: &mut Session,
    id: &str,
    ownership: &Ownership,
) -> Result<api::Sandbox> {
    let labels = ownership.to_labels();
    let sandbox = async {
        session.set_labels(id, &labels).await?;
        session.get(id).await
    }
    .await
    .map_err(|e| session.failure(e))?;
    match Ownership::from_labels(&sandbox.labels, session.name()) {
        Some(o) if o.lease == ownership.lease && o.slug == ownership.slug => Ok(sandbox),
        _ => Err(fail(
            ErrorKind::NotFound,
            format!(
                "sandbox {} did not keep cbx's ownership labels for lease {}",
                inert(&sandbox.id),
                ownership.lease
            ),
        )),
    }
}

/// How long clean-up after a failed acquire keeps trying to delete a sandbox that is still
/// changing state (services refuse to delete a sandbox mid-creation).
pub const CLEANUP_PATIENCE: Duration = Duration::from_secs(300);

async fn delete_and_forget(session: &mut Session, id: &str, lease: &LeaseId) -> Result<()> {
    delete_patiently(session, id, CLEANUP_PATIENCE).await?;
    session.claims().discard(lease)?;
    forget_local(session, lease).await;
    Ok(())
}

/// Deletes `id`, waiting out conflicts (a transition in progress) and temporary failures
/// until `patience` is used up. `Ok` also when it was already gone.
pub async fn delete_patiently(session: &mut Session, id: &str, patience: Duration) -> Result<()> {
    let deadline = Instant::now() + patience;
    let mut progress: Option<Progress> = None;
    loop {
        match session.delete(id).await {
            Ok(_) => break,
            Err(CallError::Provider(
                ProviderError::Conflict(_)
                | ProviderError::Unavailable(_)
                | ProviderError::RateLimited(_),
            )) if Instant::now() < deadline => {
                let state = session
                    .get(id)
                    .await
                    .map(|s| s.provider_state)
                    .unwrap_or_default();
                let quiet = session.quiet();
                let p = progress.get_or_insert_with(|| {
                    Progress::start(
                        format!("waiting for sandbox {id} to settle so it can be deleted"),
                        quiet,
                    )
                });
                p.set(format!(
                    "waiting for sandbox {id} to settle so it can be deleted ({state})"
                ));
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => {
                if let Some(p) = progress {
                    p.clear();
                }
                return Err(session.failure(e));
            }
        }
    }
    if let Some(p) = progress {
        p.clear();
    }
    Ok(())
}

async fn reconcile_lost_create(session: &mut Session, name: &str, lease: &LeaseId) -> Result<()> {
    match session.get(name).await {
        Ok(sandbox) => {
            let owned = Ownership::from_labels(&sandbox.labels, session.name())
                .is_some_and(|o| &o.lease == lease);
            if owned {
                delete_and_forget(session, &sandbox.id, lease).await?;
            }
            Ok(())
        }
        Err(CallError::Provider(ProviderError::NotFound(_))) => Ok(()),
        // Nothing more can be learned; the error being reported already says what failed.
        Err(_) => Ok(()),
    }
}
