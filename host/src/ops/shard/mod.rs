//! `cbx shard` as a library call: one command on N sandboxes at once. Everything local is
//! checked once (the file list, forwarded variables), the plan is decided and printed before
//! anything is created (see [`plan`]), then every shard — concurrently, each with its own
//! provider session — leases its sandbox exactly as a one-shot `cbx run` does (an intent on
//! record first, so a kill at any instant leaves it to the next command to delete), syncs the
//! tree, runs its command (`{index}`, `{total}`, `{lease}` substituted; `CBX_SHARD_INDEX` and
//! `CBX_SHARD_TOTAL` set) with every output line led by `[i/N] ` (see [`stream`]), and deletes
//! its sandbox as soon as it is done, unless `--keep`. A shard whose lease cannot be made is
//! reported failed; the others run on. A signal stops every shard, and each deletes its own
//! sandbox; `--fail-fast` does the same after the first failure. The verdict is [`verdict`].

pub mod junit_merge;
pub mod plan;
pub mod stream;
pub mod verdict;

use std::io::IsTerminal;
use std::time::Instant;

use anyhow::Result;
use tokio::sync::watch;

use crate::context::Context;
use crate::error::{ErrorKind, Failure};
use crate::interrupt;
use crate::lease::Lease;
use crate::lease::acquire::{AcquireRequest, Acquired, Source, acquire};
use crate::lease::session::Session;
use crate::login_env;
use crate::ops::run::{self, Job, LeaseChoice, RunRequest};
use crate::ops::run_report::RunReport;
use crate::ops::test_report;
use crate::progress;
use crate::ssh::{SessionStdin, SshClient};
use crate::terminal::inert;

use self::stream::Sink;
use self::verdict::{Ended, ShardReport};

/// What `cbx shard` was asked to do.
#[derive(Debug, Clone)]
pub struct ShardRequest {
    /// How many shards.
    pub count: u32,
    /// `--from`: a lease (forked) or a checkpoint.
    pub from: Option<String>,
    /// What each shard runs; its lease is [`LeaseChoice::New`], the template of every shard's
    /// lease (its purpose says whether the leases are kept).
    pub run: RunRequest,
    /// Cancel the other shards after the first failure.
    pub fail_fast: bool,
    /// Keep the `--junit` reports' text in each shard's report (to merge them).
    pub junit_documents: bool,
}

/// Forks of one lease, one at a time: Daytona refuses a second fork of a sandbox while it is
/// still forking the first. Once the service says the lease's sandbox cannot be forked at
/// all, the shards still waiting create fresh sandboxes side by side instead.
#[derive(Default)]
struct Forking {
    turn: tokio::sync::Mutex<()>,
    not_forkable: std::sync::atomic::AtomicBool,
}

impl Forking {
    fn not_forkable(&self) -> bool {
        self.not_forkable.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Why a shard stopped before its command ended.
enum Stop {
    /// `--fail-fast` after another shard failed.
    Cancelled,
    /// An error, or a signal's failure.
    Error(anyhow::Error),
}

/// What every shard shares.
struct Slot<'a> {
    index: u32,
    total: u32,
    job: &'a Job,
    acquire: &'a AcquireRequest,
    cancel: &'a watch::Sender<bool>,
    /// With `--from LEASE` and the `fork` capability: forks are made one at a time.
    forking: Option<&'a Forking>,
    fail_fast: bool,
    junit_documents: bool,
    started: Instant,
    quiet: bool,
}

impl Slot<'_> {
    fn prefix(&self) -> String {
        format!("[{}/{}] ", self.index, self.total)
    }

    /// A line of this shard's (led by its `[i/N] `, see [`progress::led`]).
    fn note(&self, message: &str) {
        progress::note(self.quiet, message);
    }
}

/// Runs `request`; each shard's report is pushed to `reports` (in shard order), the table is
/// printed, and the one exit code returned (see [`verdict`]); a signal is its failure (130,
/// 143, 129) after every shard has cleaned up.
pub async fn shard(
    ctx: &Context,
    request: &ShardRequest,
    reports: &mut Vec<ShardReport>,
) -> Result<u8> {
    ctx.config.check_shard_count(request.count)?;
    let LeaseChoice::New(template) = &request.run.lease else {
        return Err(Failure::new(ErrorKind::Usage, "cbx shard always leases new sandboxes").into());
    };
    let job = run::prepare(ctx, &request.run)?;
    let name = ctx.provider_name();
    let from = plan::ShardSource::of(ctx, &name, request.from.as_deref())?;
    let mut first = match from.needs() {
        Some(capability) => {
            ctx.session_requiring(&name, capability, "shard --from")
                .await?
        }
        None => ctx.session(&name).await?,
    };
    let plan = plan::decide(&mut first, request.count, &from).await?;
    progress::note(ctx.flags.quiet, &format!("shard: {}", plan.line));
    // Expired leases are deleted here, once: every shard's acquire would try it again.
    crate::lease::release::reap_expired(&mut first).await;
    let mut sessions = vec![first];
    for _ in 1..request.count {
        let configured = ctx.configure(ctx.load(&name).await?).await?;
        sessions.push(ctx.session_of(configured));
    }
    if let Some(files) = &job.files {
        // Made while the providers loaded; no shard is leased for a tree that cannot be synced.
        files.get().await?;
    }
    // On a terminal, N spinners (one per shard's create, login and sync) would draw over one
    // another: the shards' own progress is left out there; each shard's `[i/N]` lines, the
    // warnings and the verdict remain.
    if request.count > 1 && std::io::stderr().is_terminal() {
        sessions.iter_mut().for_each(|s| s.set_quiet(true));
    }
    let acquire = AcquireRequest {
        slug: None,
        source: plan.source.clone(),
        ..template.clone()
    };
    let _shield = interrupt::shield();
    let cancel = watch::Sender::new(false);
    let forks = Forking::default();
    let forking = matches!(plan.source, Source::Fork(_)).then_some(&forks);
    let started = Instant::now();
    let shards = sessions.into_iter().zip(1..).map(|(session, index)| {
        let slot = Slot {
            index,
            total: request.count,
            job: &job,
            acquire: &acquire,
            cancel: &cancel,
            forking,
            fail_fast: request.fail_fast,
            junit_documents: request.junit_documents,
            started,
            quiet: ctx.flags.quiet,
        };
        progress::led(slot.prefix(), one(slot, session))
    });
    reports.extend(futures_util::future::join_all(shards).await);
    verdict::print_table(reports);
    if let Some(signal) = interrupt::pending() {
        return Err(signal.failure("interrupted"));
    }
    Ok(verdict::exit_code(reports))
}

/// One shard, from its lease to its clean-up.
async fn one(slot: Slot<'_>, mut session: Session) -> ShardReport {
    let mut report = ShardReport::new(slot.index);
    let outcome = lease_and_run(&slot, &mut session, &mut report).await;
    match outcome {
        Ok(code) => {
            report.ended = if code == 0 {
                Ended::Passed
            } else {
                Ended::Failed
            };
            report.exit_code = code;
        }
        Err(Stop::Cancelled) => {
            report.ended = Ended::Cancelled;
            report.exit_code = 0;
        }
        Err(Stop::Error(e)) => {
            report.exit_code = crate::error::exit_code(&e);
            let text = session.redactor().redact(&format!("{e:#}"));
            if report.exit_code >= 128 {
                report.ended = Ended::Interrupted;
            } else {
                report.ended = Ended::Error;
                slot.note(&format!("error: {text}"));
            }
            report.error = Some(inert(&text).into_owned());
        }
    }
    report.seconds = slot.started.elapsed().as_secs_f64();
    report
}

/// Leases the shard's sandbox, runs its command and releases the lease (unless kept).
async fn lease_and_run(
    slot: &Slot<'_>,
    session: &mut Session,
    report: &mut ShardReport,
) -> Result<u8, Stop> {
    let turn = match slot.forking {
        Some(f) if !f.not_forkable() => Some(f.turn.lock().await),
        _ => None,
    };
    if *slot.cancel.borrow() {
        return Err(Stop::Cancelled);
    }
    let fresh;
    let request = match slot.forking {
        Some(f) if f.not_forkable() => {
            fresh = AcquireRequest {
                source: Source::Fresh,
                ..slot.acquire.clone()
            };
            &fresh
        }
        _ => slot.acquire,
    };
    let acquired = acquire(session, request).await;
    if let (Some(f), Ok(a)) = (slot.forking, &acquired)
        && a.not_forkable
    {
        f.not_forkable
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    drop(turn);
    let Acquired {
        mut lease, intent, ..
    } = acquired.map_err(|e| {
        if own_failure(&e) {
            cancel_others(slot);
        }
        Stop::Error(e)
    })?;
    let o = &lease.ownership;
    report.lease_id = Some(o.lease.to_string());
    report.slug = Some(o.slug.clone());
    report.sandbox_id = Some(lease.sandbox.id.clone());
    slot.note(&format!(
        "leased {} slug={} sandbox={}",
        o.lease, o.slug, lease.sandbox.id
    ));
    let outcome = if *slot.cancel.borrow() {
        Err(Stop::Cancelled)
    } else if let Some(signal) = interrupt::pending() {
        Err(Stop::Error(signal.failure("interrupted")))
    } else {
        let outcome = execute(slot, session, &mut lease, report).await;
        match &outcome {
            Ok(code) if *code != 0 => cancel_others(slot),
            Err(Stop::Error(e)) if own_failure(e) => cancel_others(slot),
            _ => {}
        }
        outcome
    };
    let Some(hold) = intent else {
        report.kept = true;
        return outcome;
    };
    let cancelled = matches!(outcome, Err(Stop::Cancelled));
    let outcome = match outcome {
        Ok(code) => Ok(code),
        Err(Stop::Cancelled) => Ok(0),
        Err(Stop::Error(e)) => Err(e),
    };
    match run::release_one_shot(session, &lease, hold, outcome).await {
        Ok(_) if cancelled => Err(Stop::Cancelled),
        Ok(code) => Ok(code),
        Err(e) => Err(Stop::Error(e)),
    }
}

/// Whether `e` is a shard's own failure (not a signal's).
fn own_failure(e: &anyhow::Error) -> bool {
    crate::error::exit_code(e) < 128
}

/// With `--fail-fast`, stops the other shards (once) after this one failed.
fn cancel_others(slot: &Slot<'_>) {
    if slot.fail_fast && !*slot.cancel.borrow() {
        slot.note("failed; --fail-fast stops the other shards");
        slot.cancel.send_replace(true);
    }
}

/// Completes when a signal arrives or the shards are cancelled.
async fn stopped(cancel: &watch::Sender<bool>) -> Stop {
    let mut rx = cancel.subscribe();
    tokio::select! {
        signal = interrupt::interrupted() => Stop::Error(signal.failure("interrupted")),
        _ = rx.wait_for(|c| *c) => Stop::Cancelled,
    }
}

/// Connects, syncs and runs the shard's command, then fetches its `--junit` reports; returns
/// the command's exit code.
async fn execute(
    slot: &Slot<'_>,
    session: &mut Session,
    lease: &mut Lease,
    report: &mut ShardReport,
) -> Result<u8, Stop> {
    let mut run_report = RunReport::default();
    let (ssh, workdir, env_file) = tokio::select! {
        r = run::connect_and_sync(session, lease, slot.job, &mut run_report) => r.map_err(Stop::Error)?,
        stop = stopped(slot.cancel) => return Err(stop),
    };
    let id = lease.ownership.lease.to_string();
    let program = plan::substitute(&slot.job.program, slot.index, slot.total, &id);
    let exports = [
        ("CBX_LEASE_ID".to_string(), id),
        ("CBX_SLUG".to_string(), lease.ownership.slug.clone()),
        ("CBX_SHARD_INDEX".to_string(), slot.index.to_string()),
        ("CBX_SHARD_TOTAL".to_string(), slot.total.to_string()),
    ];
    let login = run::cached_login(slot.job, lease);
    let forwarded: Vec<String> = slot.job.forwarded.iter().map(|(k, _)| k.clone()).collect();
    let reuse = login.as_ref().map(|env| login_env::Reuse {
        env,
        forwarded: &forwarded,
    });
    let line = login_env::command_line(
        &workdir,
        true,
        &exports,
        env_file.as_deref(),
        &program,
        reuse,
    );
    let sink = if slot.job.stdout_to_stderr {
        Sink::Err
    } else {
        Sink::Out
    };
    let prefix = slot.prefix();
    let status = tokio::select! {
        r = started_relay(&ssh, &line, &prefix, sink) => r.map_err(|e| {
            Stop::Error(Failure::new(ErrorKind::Other, crate::ssh::spawn_error(&e)).into())
        })?,
        stop = stopped(slot.cancel) => return Err(stop),
    };
    let code = run::exit_status(&ssh, status, lease)
        .await
        .map_err(Stop::Error)?;
    report.command_exit_code = Some(code);
    let patterns = &slot.job.downloads.junit;
    if !patterns.is_empty() {
        let tests = tokio::select! {
            t = test_report::collect_keeping(session, &ssh, &workdir, patterns, slot.junit_documents) => t,
            signal = interrupt::interrupted() => return Err(Stop::Error(signal.failure("interrupted"))),
        };
        report.tests = Some(tests);
    }
    Ok(code)
}

/// Starts `line` (stdin empty) and relays its output, each line led by `prefix`.
async fn started_relay(
    ssh: &SshClient,
    line: &str,
    prefix: &str,
    sink: Sink,
) -> std::io::Result<std::process::ExitStatus> {
    let session = ssh.start(line, SessionStdin::Null).await?;
    stream::relay(session, prefix, sink).await
}
