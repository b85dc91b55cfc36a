//! Creating a lease. First an intent is recorded, durably, under the claims lock — which also
//! reserves the slug — then the sandbox is created with cbx's labels, claimed, and waited for.
//! When anything fails or a signal arrives, the sandbox is deleted again through the same
//! code the next command would use (`lease::reconcile`); if that fails too, the intent stays
//! and the next command finishes the clean-up. So a kill at any instant leaves nothing that
//! `cbx list` and `cbx stop` cannot see and delete.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::error::{ErrorKind, Failure, fail};
use crate::interrupt;
use crate::lease::checkpoint;
use crate::lease::id::{self, LeaseId};
use crate::lease::intent::{INTENT_VERSION, Intent, IntentHold, LeasePlan, Owner, Plan, Settle};
use crate::lease::labels::Ownership;
use crate::lease::owner::owner_id;
use crate::lease::ready::wait_ready;
use crate::lease::reconcile::{self, Settled};
use crate::lease::release::reap_expired;
use crate::lease::resolve::resolve;
use crate::lease::session::Session;
use crate::lease::{Lease, now_unix, rfc3339};
use crate::progress::{self, Progress, human_duration};
use crate::provider::api::{self, ProviderError, SandboxState};
use crate::provider::capability::Forked;
use crate::provider::{CallError, Capability};
use crate::terminal::inert;
use crate::testpoint;

/// The command a lease is made for, which decides what becomes of it if cbx is killed before
/// the command is done with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `cbx warmup`: a lease to keep; adopted if it was created.
    Warmup,
    /// `cbx run --keep`: the same.
    KeptRun,
    /// `cbx run`: a lease for one command; deleted if cbx dies before deleting it.
    OneShotRun,
    /// `cbx shard`: one shard's lease, deleted like a one-shot run's.
    Shard,
    /// `cbx shard --keep`: one shard's lease, kept.
    KeptShard,
}

impl Purpose {
    /// The command, as the intent records it.
    pub fn command(self) -> &'static str {
        match self {
            Purpose::Warmup => "warmup",
            Purpose::KeptRun => "run --keep",
            Purpose::OneShotRun => "run",
            Purpose::Shard => "shard",
            Purpose::KeptShard => "shard --keep",
        }
    }

    fn settle(self) -> Settle {
        match self {
            Purpose::Warmup | Purpose::KeptRun | Purpose::KeptShard => Settle::Adopt,
            Purpose::OneShotRun | Purpose::Shard => Settle::Delete,
        }
    }
}

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
    /// What the lease is for.
    pub purpose: Purpose,
    /// What its sandbox starts from.
    pub source: Source,
}

/// What a new lease's sandbox starts from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Source {
    /// A fresh sandbox, as the provider's options say.
    #[default]
    Fresh,
    /// Checkpoint NAME (the user's name, without cbx's prefix).
    Checkpoint(String),
    /// A copy of the sandbox of this lease (id or slug); fresh if the provider cannot fork it.
    Fork(String),
}

/// A lease just made. A one-shot lease comes with its intent, which keeps it on record (to be
/// deleted) until the command deletes it and finishes the intent.
#[derive(Debug)]
pub struct Acquired {
    /// The lease.
    pub lease: Lease,
    /// For a one-shot lease ([`Purpose::OneShotRun`], [`Purpose::Shard`]), the held intent.
    pub intent: Option<IntentHold>,
    /// The provider could not fork the [`Source::Fork`] lease's sandbox: this one is fresh.
    pub not_forkable: bool,
}

/// Creates a sandbox and makes it a lease: intent, sandbox, claim, readiness, labels. On any
/// failure — and on a signal — the sandbox is deleted again; if that fails too, the error
/// names it and the next command retries.
pub async fn acquire(session: &mut Session, request: &AcquireRequest) -> Result<Acquired> {
    let (from, parent) = match &request.source {
        Source::Fresh => (None, None),
        Source::Checkpoint(name) => (Some(checkpoint::usable(session, name).await?), None),
        Source::Fork(ident) => {
            session.require(Capability::Fork, "--fork")?;
            let lease = resolve(session, ident).await?;
            lease.require_claim("fork")?;
            (None, Some(lease.sandbox.id))
        }
    };
    reap_expired(session).await;
    let (slug, taken_remote) = choose_slug(session, request.slug.as_deref()).await?;
    let _shield = interrupt::shield();
    if let Some(signal) = interrupt::pending() {
        return Err(signal.failure("interrupted"));
    }
    let mut hold = reserve(session, request, slug, &taken_remote)?;
    let mut rejected = false;
    let mut not_forkable = false;
    let outcome = tokio::select! {
        r = provision(session, request, (from.as_deref(), parent.as_deref()), &mut hold, (&mut rejected, &mut not_forkable)) => r,
        signal = interrupt::interrupted() => Err(signal.failure("interrupted")),
    };
    match outcome {
        Ok(lease) if request.purpose.settle() == Settle::Delete => Ok(Acquired {
            lease,
            intent: Some(hold),
            not_forkable,
        }),
        Ok(lease) => {
            // The lease is made and claimed; a record left behind is harmless (the next
            // command finds the claim and removes it).
            if let Err(e) = hold.finish() {
                progress::report(&format!("warning: {e:#}"));
            }
            Ok(Acquired {
                lease,
                intent: None,
                not_forkable,
            })
        }
        Err(err) => Err(roll_back(session, err, hold, rejected).await),
    }
}

/// The slug for a new lease — the one asked for if valid and free here and at the provider,
/// else a random free one — and the slugs the provider's leases use.
async fn choose_slug(
    session: &mut Session,
    wanted: Option<&str>,
) -> Result<(Option<String>, Vec<String>)> {
    // A sandbox being deleted no longer holds its slug.
    let taken_remote: Vec<String> = session
        .list_owned()
        .await
        .map_err(|e| session.failure(e))?
        .into_iter()
        .filter(|(s, _)| s.state != SandboxState::Deleted)
        .map(|(_, o)| o.slug)
        .collect();
    let Some(wanted) = wanted else {
        return Ok((None, taken_remote));
    };
    let slug = id::normalize_slug(wanted);
    if slug.is_empty() || slug.len() > 40 {
        return Err(fail(
            ErrorKind::Usage,
            format!("--slug `{wanted}` must have 1 to 40 letters, digits or dashes"),
        ));
    }
    if taken_remote.contains(&slug) {
        return Err(slug_in_use(&slug, "another lease"));
    }
    Ok((Some(slug), taken_remote))
}

fn slug_in_use(slug: &str, by: &str) -> anyhow::Error {
    Failure::new(
        ErrorKind::Usage,
        format!("slug `{slug}` is in use by {by}; nothing was created"),
    )
    .hint("choose another --slug, or leave it out for a random one")
    .into()
}

/// Reserves the slug and records the intent, in one step under the claims lock: of parallel
/// commands asking for one slug, one wins and the others fail before creating anything.
fn reserve(
    session: &Session,
    request: &AcquireRequest,
    slug: Option<String>,
    taken_remote: &[String],
) -> Result<IntentHold> {
    let lock = session.claims().lock()?;
    let mut here: Vec<(String, String)> = session
        .claims()
        .all()?
        .into_iter()
        .map(|c| (c.slug, format!("lease {}", c.lease_id)))
        .collect();
    let (intents, _) = session.intents().scan()?;
    here.extend(intents.iter().filter_map(|i| {
        let by = format!("lease {} (being created by `cbx {}`)", i.id, i.command);
        Some((i.lease()?.slug.clone(), by))
    }));
    let taken = |s: &str| taken_remote.iter().any(|t| t == s) || here.iter().any(|(t, _)| t == s);
    let slug = match slug {
        Some(slug) => match here.iter().find(|(t, _)| *t == slug) {
            Some((_, by)) => return Err(slug_in_use(&slug, by)),
            None => slug,
        },
        None => id::unique_slug(&taken),
    };
    let lease = LeaseId::generate();
    let intent = Intent {
        version: INTENT_VERSION,
        id: lease.to_string(),
        provider: session.name().to_string(),
        name: format!("cbx-{slug}-{}", &lease.as_str()[4..]),
        object_id: None,
        command: request.purpose.command().to_string(),
        settle: request.purpose.settle(),
        owner: Owner::this_process(),
        recorded_at: rfc3339(now_unix()),
        plan: Plan::Sandbox(LeasePlan {
            lease_id: lease,
            slug,
            repo_root: request.repo_root.as_ref().map(|p| p.display().to_string()),
            work_root: session.profile().work_root.clone(),
            created_at: now_unix(),
            ttl_secs: request.ttl.as_secs(),
            idle_secs: request.idle.as_secs(),
            owner: Some(owner_id(session.dirs())?),
        }),
    };
    session.intents().record(intent, &lock)
}

/// Whole minutes, rounded up, as the contract carries them.
fn minutes(d: Duration, what: &str) -> Result<u32> {
    u32::try_from(d.as_secs().div_ceil(60)).map_err(|_| {
        fail(
            ErrorKind::Usage,
            format!(
                "the {what} is longer than a provider can be told ({} minutes at most)",
                u32::MAX
            ),
        )
    })
}

/// Creates the sandbox, claims it, waits for it and verifies its labels. `rejected` is set
/// when the service refused the create outright (nothing was created); `not_forkable` when
/// the parent could not be forked and the sandbox was created fresh.
async fn provision(
    session: &mut Session,
    request: &AcquireRequest,
    (checkpoint, parent): (Option<&str>, Option<&str>),
    hold: &mut IntentHold,
    (rejected, not_forkable): (&mut bool, &mut bool),
) -> Result<Lease> {
    testpoint::reached(session.env(), "acquire:recorded").await;
    let intent = hold.intent().clone();
    let plan = intent
        .lease()
        .ok_or_else(|| anyhow::anyhow!("intent {} is not a lease's", intent.id))?;
    let ownership = plan.ownership(session.name());
    let create = api::CreateRequest {
        name: intent.name.clone(),
        labels: ownership.to_labels(),
        idle_timeout_minutes: minutes(request.idle, "idle timeout")?,
        ttl_minutes: minutes(request.ttl, "lease lifetime")?,
    };
    let mut progress = Progress::start(
        format!("creating a {} sandbox ({})", session.name(), plan.slug),
        session.quiet(),
    );
    let created = match (checkpoint, parent) {
        (Some(from), _) => session.create_from_checkpoint(from, &create).await,
        (_, Some(parent)) => {
            fork_or_create(session, parent, &create, &mut progress, not_forkable).await
        }
        _ => session.create(&create).await,
    };
    let sandbox = match created {
        Ok(s) => s,
        Err(e) => {
            progress.clear();
            *rejected = refused(&e);
            return Err(session.failure(e));
        }
    };
    hold.update(|i| i.object_id = Some(sandbox.id.clone()))?;
    testpoint::reached(session.env(), "acquire:created").await;

    // Claim it before waiting, so `cbx stop` and `cbx list` know it as this machine's.
    let claims = session.claims();
    let claim = claims.create(&plan.claim(session.name(), &sandbox), &claims.lock()?)?;
    testpoint::reached(session.env(), "acquire:claimed").await;

    let ready = wait_ready(session, &sandbox.id, request.ready_timeout, &mut progress).await;
    let verified = match ready {
        Ok(sandbox) => verify_labels(session, &sandbox.id, &ownership).await,
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
    testpoint::reached(session.env(), "acquire:ready").await;
    Ok(Lease {
        sandbox,
        ownership,
        claim: Some(claim),
    })
}

/// Forks `parent` into the sandbox `create` describes; when the provider cannot fork it,
/// says so, sets `not_forkable` and creates a fresh one instead.
async fn fork_or_create(
    session: &mut Session,
    parent: &str,
    create: &api::CreateRequest,
    progress: &mut Progress,
    not_forkable: &mut bool,
) -> Result<api::Sandbox, CallError> {
    match session.fork(parent, create).await? {
        Forked::Sandbox(s) => Ok(s),
        Forked::NotForkable(why) => {
            *not_forkable = true;
            progress.warn(&format!(
                "cannot fork sandbox {}: {}; creating a fresh sandbox instead",
                inert(parent),
                inert(&session.redactor().redact(&why))
            ));
            session.create(create).await
        }
    }
}

/// Whether a failed create certainly created nothing: the service refused it. Anything else
/// (unavailable, a lost answer, a provider fault) may have taken effect.
fn refused(e: &CallError) -> bool {
    matches!(
        e,
        CallError::Denied(_)
            | CallError::Provider(
                ProviderError::InvalidConfig(_)
                    | ProviderError::Unauthorized(_)
                    | ProviderError::Forbidden(_)
                    | ProviderError::NotFound(_)
                    | ProviderError::Conflict(_)
                    | ProviderError::RateLimited(_)
                    | ProviderError::Quota(_)
            )
    )
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

/// The failure of a creation whose sandbox the provider reported `failed` (e.g. Daytona's 400
/// "Sandbox failed to start: …", its state `error`), and which cbx has deleted again: exit 5,
/// the provider's state and reason (`reason`, as [`Settled::Deleted`] has it) inert, and what
/// to check.
fn failed_to_start(session: &Session, sandbox: &str, reason: &str) -> anyhow::Error {
    let reason = inert(&session.redactor().redact(reason)).into_owned();
    Failure::new(
        ErrorKind::Sandbox,
        format!(
            "sandbox {} failed to start {reason}; cbx deleted it again, nothing is left",
            inert(sandbox)
        ),
    )
    .hint(format!(
        "the {} sandbox did not start from its image: check that the image or snapshot the \
         provider's options choose exists and starts (`cbx doctor` shows the options), then \
         try again",
        session.name()
    ))
    .into()
}

/// Undoes a creation that failed with `err` and returns the error to report: `err`, saying
/// that nothing is left — or, when the clean-up failed (or a second signal abandoned it),
/// naming the sandbox and saying the next command finishes the clean-up.
async fn roll_back(
    session: &mut Session,
    err: anyhow::Error,
    mut hold: IntentHold,
    rejected: bool,
) -> anyhow::Error {
    if rejected && hold.intent().object_id.is_none() {
        if let Err(e) = hold.finish() {
            progress::report(&format!("warning: {e:#}"));
        }
        return err;
    }
    // From here on, whoever finishes this intent deletes.
    if let Err(e) = hold.update(|i| i.settle = Settle::Delete) {
        progress::report(&format!("warning: {e:#}"));
    }
    let intent = hold.intent().clone();
    let seen = interrupt::received();
    let cleanup = async {
        testpoint::reached(session.env(), "acquire:rolling-back").await;
        reconcile::settle(session, hold, Settle::Delete).await
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
    let message = match settled {
        Some(Ok(Settled::Deleted {
            sandbox,
            failed: Some(reason),
        })) if matches!(kind, ErrorKind::Other | ErrorKind::Sandbox) => {
            return failed_to_start(session, &sandbox, &reason);
        }
        Some(Ok(Settled::Deleted { sandbox, .. })) => {
            format!("{cause}; cbx deleted sandbox {sandbox} again, nothing is left")
        }
        Some(Ok(_)) => format!("{cause}; nothing was left behind"),
        Some(Err(cleanup_err)) => {
            return Failure::new(kind, format!("{cause}. Then {cleanup_err:#}"))
                .hint("run `cbx list` once the service answers again: it finishes the clean-up")
                .into();
        }
        None => {
            let kept = reconcile::kept(
                session,
                &intent,
                anyhow::anyhow!("the clean-up was interrupted"),
            );
            return Failure::new(kind, format!("{cause}. Then {kept:#}"))
                .hint("run `cbx list`: it finishes the clean-up")
                .into();
        }
    };
    let mut failure = Failure::new(kind, message);
    failure.hint = crate::error::failure(&err).and_then(|f| f.hint.clone());
    failure.into()
}
