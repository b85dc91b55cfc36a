//! `cbx run` as a library call: check everything local (forwarded variables, the repository,
//! the file list), lease or resolve a sandbox, sync the tree, run the command with its output
//! streaming, and delete a one-shot sandbox afterwards — also on SIGINT, SIGTERM or SIGHUP.
//! A one-shot lease stays on record as an intent until it is deleted, so a `kill -9` at any
//! instant leaves it to the next command to delete.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::audit::{AuditRecord, DataOutcome, SyncAudit};
use crate::context::Context;
use crate::error::{ErrorKind, Failure, fail};
use crate::interrupt;
use crate::lease::acquire::{AcquireRequest, Acquired, acquire};
use crate::lease::claims::stopped_meanwhile;
use crate::lease::id::LeaseId;
use crate::lease::intent::IntentHold;
use crate::lease::session::Session;
use crate::lease::warm::{self, WarmLease};
use crate::lease::{Lease, connect, ready, reconcile, release};
use crate::login_env::{self, LoginEnv, LoginEnvironment, Reuse};
use crate::ops::download::{self, Collected, Downloads};
use crate::ops::guard::{self, RunGuard};
use crate::ops::pending_files::PendingFiles;
use crate::ops::run_report::{LeaseReport, RunReport, SyncSummary, seconds};
use crate::progress;
use crate::remote::{self, Program};
use crate::ssh::{SshClient, StdoutTo};
use crate::sync::{self, TransportChoice, tools};
use crate::testpoint;

/// Which lease a run uses.
#[derive(Debug, Clone)]
pub enum LeaseChoice {
    /// An existing lease (id or slug), kept afterwards.
    Existing(String),
    /// A new lease; deleted when the command ends unless its purpose keeps it.
    New(AcquireRequest),
}

/// What `cbx run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The lease.
    pub lease: LeaseChoice,
    /// The command.
    pub program: Program,
    /// Local variables to forward, by name.
    pub env: Vec<String>,
    /// Sync the working tree first.
    pub sync: bool,
    /// Sync even if nothing changed.
    pub resync: bool,
    /// Sync a tree past the size limits.
    pub sync_large: bool,
    /// How to send the files.
    pub transport: TransportChoice,
    /// How long to wait for an existing lease's sandbox to be ready.
    pub ready_timeout: Duration,
    /// What to copy back after the command.
    pub downloads: Downloads,
    /// Keep a one-shot sandbox when the command fails.
    pub keep_on_failure: bool,
    /// Relay the command's stdout to stderr (stdout carries cbx's JSON report).
    pub stdout_to_stderr: bool,
}

/// What runs on the sandbox, checked locally before anything is leased (`cbx shard` shares
/// one among its shards).
pub(crate) struct Job {
    pub(crate) program: Program,
    pub(crate) forwarded: Vec<(String, String)>,
    pub(crate) repo: Option<PathBuf>,
    /// The file list of the sync, being made while the run goes on (see `pending_files`).
    pub(crate) files: Option<PendingFiles>,
    pub(crate) resync: bool,
    pub(crate) downloads: Downloads,
    pub(crate) stdout_to_stderr: bool,
    pub(crate) transport: TransportChoice,
    /// Where the lease's cached login environment is read from (the state directory); `None`
    /// with `[run] login-environment = "fresh"`.
    pub(crate) login_records: Option<PathBuf>,
}

/// Runs `request`; returns the remote command's exit status. What happened (lease, sync,
/// timings, downloads) is written to `report` as it happens, also when the run fails.
pub async fn run(ctx: &Context, request: &RunRequest, report: &mut RunReport) -> Result<u8> {
    let job = prepare(ctx, request)?;
    match &request.lease {
        LeaseChoice::Existing(ident) => {
            run_existing(ctx, ident, request.ready_timeout, &job, report).await
        }
        LeaseChoice::New(acquire) => {
            run_new(ctx, acquire, &job, request.keep_on_failure, report).await
        }
    }
}

/// The checks that need no sandbox: forwarded variables and the repository; then the file
/// list, which is made on a blocking thread while the run goes on: it overlaps loading the
/// provider and, on an existing lease's full path, the provider's answers and the connection.
/// A new lease is created only once the list is made and within the limits.
pub(crate) fn prepare(ctx: &Context, request: &RunRequest) -> Result<Job> {
    let forwarded = forwarded_env(ctx, &request.env)?;
    let repo = if request.sync {
        Some(ctx.require_repo_root()?.to_path_buf())
    } else {
        ctx.repo_root().map(PathBuf::from)
    };
    let files = match (&repo, request.sync) {
        (Some(root), true) => Some(PendingFiles::start(
            root.clone(),
            ctx.dirs.cache.join("listings"),
            ctx.env.clone(),
            request.sync_large,
        )),
        _ => None,
    };
    Ok(Job {
        program: request.program.clone(),
        forwarded,
        repo,
        files,
        resync: request.resync,
        downloads: request.downloads.clone(),
        stdout_to_stderr: request.stdout_to_stderr,
        transport: request.transport,
        login_records: match ctx.config.login_environment()?.val {
            LoginEnvironment::Cached => Some(ctx.dirs.state.clone()),
            LoginEnvironment::Fresh => None,
        },
    })
}

/// Runs on the existing lease `ident`, which is kept: on the warm path when it can be taken
/// (see `lease::warm`), else — or when the warm path's connection fails before the command
/// started (see `ops::guard`) — on the full path.
async fn run_existing(
    ctx: &Context,
    ident: &str,
    ready_timeout: Duration,
    job: &Job,
    report: &mut RunReport,
) -> Result<u8> {
    let provider = ctx.provider_for(ident)?;
    let mut session = ctx.session_on_demand(&provider).await?;
    let guard = RunGuard::new();
    let mut tried = false;
    if let Some(WarmLease { mut lease, ssh }) = warm::warm(&session, ident)? {
        report.lease = Some(LeaseReport::of(&lease, true));
        let _shield = interrupt::shield();
        let outcome = tokio::select! {
            r = execute_warm(&mut session, &lease, &ssh, job, report, &guard) => r,
            signal = interrupt::interrupted() => Err(signal.failure("interrupted")),
        };
        match outcome {
            Ok(Warm::Finished(result)) => {
                warm::touch_if_due(&mut session, &mut lease).await;
                return unless_stopped(&session, &lease, result).await;
            }
            Ok(Warm::NotStarted { command_sent }) => {
                tracing::info!("the warm path's connection failed; asking {provider}");
                tried = command_sent;
            }
            Err(e) => return unless_stopped(&session, &lease, Err(e)).await,
        }
    }
    let started = Instant::now();
    let mut lease = warm::resolve_to_use(&mut session, ident).await?;
    lease.require_claim("use")?;
    report.lease = Some(LeaseReport::of(&lease, true));
    ready::ensure_ready(&mut session, &mut lease, ready_timeout).await?;
    report.timings.lease = seconds(started.elapsed());
    let _shield = interrupt::shield();
    let paused = tokio::select! {
        () = testpoint::reached(session.env(), "run:resolved") => None,
        signal = interrupt::interrupted() => Some(signal),
    };
    let guard = tried.then_some(&guard);
    let outcome = match paused {
        Some(signal) => Err(signal.failure("interrupted")),
        None => execute(&mut session, &mut lease, job, report, guard).await,
    };
    unless_stopped(&session, &lease, outcome).await
}

/// How a warm run ended.
enum Warm {
    /// The command ran (or started): its outcome, downloads done.
    Finished(Result<u8>),
    /// The connection failed before the command started; `command_sent` if its run file
    /// must be checked before running it again.
    NotStarted { command_sent: bool },
}

/// The warm path's run: the sync (nothing goes over the network when nothing changed), the
/// forwarded variables, then the command, its line led by the guard's prelude, and the
/// downloads. A failure with the master connection gone, or an exit 255 before the command
/// started, is [`Warm::NotStarted`].
async fn execute_warm(
    session: &mut Session,
    lease: &Lease,
    ssh: &SshClient,
    job: &Job,
    report: &mut RunReport,
    guard: &RunGuard,
) -> Result<Warm> {
    let workdir = connect::workdir(lease, job.repo.as_deref())?;
    testpoint::reached(session.env(), "run:warm").await;
    let started = Instant::now();
    if let Some(files) = &job.files {
        // A listing that fails is not a failed connection: no fallback for it.
        files.get().await?;
    }
    let prepared = async {
        let synced = send_tree(session, lease, ssh, job, &workdir).await?;
        let env_file = forward_env(session, lease, ssh, &job.forwarded).await?;
        Ok::<_, anyhow::Error>((synced, env_file))
    }
    .await;
    let env_file = match prepared {
        Ok((synced, env_file)) => {
            report.sync = synced;
            env_file
        }
        Err(_) if !ssh.master_alive() => {
            return Ok(Warm::NotStarted {
                command_sent: false,
            });
        }
        Err(e) => return Err(e),
    };
    report.timings.sync = seconds(started.elapsed());
    let started = Instant::now();
    let raw = command_status(ssh, job, lease, &workdir, env_file.as_deref(), Some(guard)).await?;
    if guard.failed_before_start(ssh, &raw).await {
        return Ok(Warm::NotStarted { command_sent: true });
    }
    let status = exit_status(ssh, raw, lease).await;
    report.timings.command = seconds(started.elapsed());
    Ok(Warm::Finished(
        after_command(session, ssh, &workdir, job, status, report).await,
    ))
}

/// Runs on a new lease, deleted afterwards unless kept.
async fn run_new(
    ctx: &Context,
    request: &AcquireRequest,
    job: &Job,
    keep_on_failure: bool,
    report: &mut RunReport,
) -> Result<u8> {
    let mut session = ctx.session(&ctx.provider_name()).await?;
    if let Some(files) = &job.files {
        // Nothing is leased for a tree that cannot be synced.
        files.get().await?;
    }
    let _shield = interrupt::shield();
    let started = Instant::now();
    let Acquired {
        mut lease, intent, ..
    } = acquire(&mut session, request).await?;
    report.timings.lease = seconds(started.elapsed());
    report.lease = Some(LeaseReport::of(&lease, intent.is_none()));
    progress::report(&format!(
        "leased {} slug={} provider={} sandbox={}{}",
        lease.ownership.lease,
        lease.ownership.slug,
        lease.ownership.provider,
        lease.sandbox.id,
        if intent.is_some() {
            " (deleted when the command ends; --keep keeps it)"
        } else {
            ""
        }
    ));
    let outcome = execute(&mut session, &mut lease, job, report, None).await;
    match intent {
        Some(hold) if keep_on_failure && failed(&outcome) => {
            if let Some(l) = report.lease.as_mut() {
                l.kept = true;
            }
            keep_failed(&lease, hold, outcome)
        }
        Some(hold) => {
            let started = Instant::now();
            let result = release_one_shot(&mut session, &lease, hold, outcome).await;
            report.timings.release = seconds(started.elapsed());
            result
        }
        None => unless_stopped(&session, &lease, outcome).await,
    }
}

/// After a run on a kept lease: when `cbx stop` removed the claim meanwhile, removes what the
/// run may have written for the lease since (SSH access, sync records) and reports that (exit
/// 4) instead of the failure the stop caused. A signal's own failure is kept.
async fn unless_stopped(session: &Session, lease: &Lease, outcome: Result<u8>) -> Result<u8> {
    let id = &lease.ownership.lease;
    let claimed = match session.claims().get(id) {
        Ok(claim) => claim.is_some_and(|c| c.sandbox_id == lease.sandbox.id),
        Err(_) => true,
    };
    if claimed {
        return outcome;
    }
    if let Err(e) = release::forget(session, id).await {
        progress::report(&format!("warning: {e:#}"));
    }
    match outcome {
        Ok(code) => {
            progress::report(&format!(
                "note: lease {id} was stopped while this command ran; cbx kept nothing for it"
            ));
            Ok(code)
        }
        Err(e) if crate::error::exit_code(&e) >= 128 => Err(e),
        Err(_) => Err(stopped_meanwhile(id)),
    }
}

/// Whether a run's outcome is a failure worth keeping the sandbox for: a non-zero exit, or an
/// error other than a signal (a signal means "stop", and the sandbox is deleted).
fn failed(outcome: &Result<u8>) -> bool {
    match outcome {
        Ok(code) => *code != 0,
        Err(e) => crate::error::exit_code(e) < 128,
    }
}

/// Keeps a one-shot lease whose command failed (`--keep-on-failure`): its intent is finished,
/// so it stays a lease like one made by `run --keep`, and says how to look at it.
fn keep_failed(lease: &Lease, hold: IntentHold, outcome: Result<u8>) -> Result<u8> {
    if let Err(e) = hold.finish() {
        progress::report(&format!("warning: {e:#}"));
    }
    let o = &lease.ownership;
    progress::report(&format!(
        "kept {} slug={} sandbox={} because the command failed; it expires {} \
         (look: `cbx ssh {}`; delete: `cbx stop {}`)",
        o.lease,
        o.slug,
        lease.sandbox.id,
        crate::lease::rfc3339(o.expires_at()),
        o.slug,
        o.slug
    ));
    outcome
}

/// Deletes a one-shot lease's sandbox after the command and finishes its intent. When that
/// fails — or a second signal abandons it — the intent stays and the next command deletes the
/// sandbox; the error says so, and a successful command is not reported as success.
pub(crate) async fn release_one_shot(
    session: &mut Session,
    lease: &Lease,
    hold: IntentHold,
    outcome: Result<u8>,
) -> Result<u8> {
    let seen = interrupt::received();
    let cleanup = async {
        testpoint::reached(session.env(), "run:releasing").await;
        release::release(session, lease, Duration::ZERO).await
    };
    let cleanup = tokio::select! {
        r = cleanup => r.map(|_| ()),
        signal = interrupt::after(seen) => Err(signal.failure("interrupted again during the clean-up")),
    };
    let kept = match cleanup {
        Ok(()) => {
            if let Err(e) = hold.finish() {
                progress::report(&format!("warning: {e:#}"));
            }
            progress::note(
                session.quiet(),
                &format!(
                    "released {} (sandbox {} deleted)",
                    lease.ownership.lease, lease.sandbox.id
                ),
            );
            return outcome;
        }
        Err(e) => reconcile::kept(session, hold.intent(), e),
    };
    drop(hold);
    match outcome {
        // A command that succeeded is not reported as success: a sandbox may be left.
        Ok(0) => Err(kept),
        other => {
            progress::report(&format!("error: {kept:#}"));
            progress::report(
                "hint: run `cbx list` once the service answers again: it deletes the sandbox",
            );
            other
        }
    }
}

/// Connects, syncs and runs the command, then runs the downloads (also after a failed or
/// interrupted command); returns the command's exit status. A signal ends the step it arrives
/// in; one during the downloads abandons them. With `guard` (a warm run that sent the command
/// before its connection failed), the command runs only if it did not start then.
async fn execute(
    session: &mut Session,
    lease: &mut Lease,
    job: &Job,
    report: &mut RunReport,
    guard: Option<&RunGuard>,
) -> Result<u8> {
    let (ssh, workdir, env_file) = tokio::select! {
        r = connect_and_sync(session, lease, job, report) => r?,
        signal = interrupt::interrupted() => return Err(signal.failure("interrupted")),
    };
    if let Some(guard) = guard
        && let Some(code) = guard.before_rerun(&ssh, &lease.ownership.slug).await?
    {
        return Ok(code);
    }
    let started = Instant::now();
    let status = tokio::select! {
        r = run_command(&ssh, lease, job, &workdir, env_file.as_deref()) => r,
        signal = interrupt::interrupted() => Err(signal.failure("interrupted")),
    };
    report.timings.command = seconds(started.elapsed());
    after_command(session, &ssh, &workdir, job, status, report).await
}

/// After the command: records its status and runs the downloads.
async fn after_command(
    session: &mut Session,
    ssh: &SshClient,
    workdir: &str,
    job: &Job,
    status: Result<u8>,
    report: &mut RunReport,
) -> Result<u8> {
    report.command_exit_code = status.as_ref().ok().copied();
    let started = Instant::now();
    let mut collected = Collected::default();
    let result = download::after_command(
        session,
        ssh,
        workdir,
        &job.downloads,
        status,
        &mut collected,
    )
    .await;
    if !job.downloads.list.is_empty() || !job.downloads.junit.is_empty() {
        report.timings.downloads = seconds(started.elapsed());
    }
    report.downloads = collected.downloads;
    report.tests = collected.tests;
    result
}

/// Connects and syncs; returns the SSH client, the work directory and the forwarded
/// variables' file.
pub(crate) async fn connect_and_sync(
    session: &mut Session,
    lease: &mut Lease,
    job: &Job,
    report: &mut RunReport,
) -> Result<(SshClient, String, Option<String>)> {
    let workdir = connect::workdir(lease, job.repo.as_deref())?;
    let started = Instant::now();
    ready::touch(session, lease).await?;
    testpoint::reached(session.env(), "run:touched").await;
    let ssh = connect::ssh(session, lease).await?;
    report.timings.access = seconds(started.elapsed());
    let started = Instant::now();
    report.sync = send_tree(session, lease, &ssh, job, &workdir).await?;
    testpoint::reached(session.env(), "run:synced").await;
    let env_file = forward_env(session, lease, &ssh, &job.forwarded).await?;
    report.timings.sync = seconds(started.elapsed());
    Ok((ssh, workdir, env_file))
}

/// Runs the command in `workdir`, its output streaming; returns its exit status.
async fn run_command(
    ssh: &SshClient,
    lease: &Lease,
    job: &Job,
    workdir: &str,
    env_file: Option<&str>,
) -> Result<u8> {
    let status = command_status(ssh, job, lease, workdir, env_file, None).await?;
    exit_status(ssh, status, lease).await
}

/// Runs the command in `workdir`, its output streaming, `guard`'s prelude leading its line;
/// returns ssh's exit status.
async fn command_status(
    ssh: &SshClient,
    job: &Job,
    lease: &Lease,
    workdir: &str,
    env_file: Option<&str>,
    guard: Option<&RunGuard>,
) -> Result<std::process::ExitStatus> {
    let exports = vec![
        (
            "CBX_LEASE_ID".to_string(),
            lease.ownership.lease.to_string(),
        ),
        ("CBX_SLUG".to_string(), lease.ownership.slug.clone()),
    ];
    let login = cached_login(job, lease);
    let forwarded: Vec<String> = job.forwarded.iter().map(|(k, _)| k.clone()).collect();
    let reuse = login.as_ref().map(|env| Reuse {
        env,
        forwarded: &forwarded,
    });
    let line = login_env::command_line(workdir, true, &exports, env_file, &job.program, reuse);
    let line = match guard {
        Some(g) => format!("{}{line}", g.prelude()),
        None => line,
    };
    let stdout_to = if job.stdout_to_stderr {
        StdoutTo::Stderr
    } else {
        StdoutTo::Stdout
    };
    let relayed = crate::ssh::session::relay(ssh, &line, stdout_to).await;
    Ok(relayed.map_err(|e| Failure::new(ErrorKind::Other, crate::ssh::spawn_error(&e)))?)
}

/// The login environment cached for `lease` when `job` reuses it (see `login_env`).
pub(crate) fn cached_login(job: &Job, lease: &Lease) -> Option<LoginEnv> {
    let state = job.login_records.as_deref()?;
    let env = tools::load_login(state, lease.ownership.lease.as_str())?.into_cached()?;
    tracing::debug!(
        "the command reuses the login environment read at {} while no profile file is newer",
        env.read_at
    );
    Some(env)
}

/// `host:port` of the sandbox `ssh` connects to, for the audit log.
fn destination(ssh: &SshClient) -> String {
    crate::grant::destination::shown(&ssh.target().host, ssh.target().port)
}

/// Syncs the job's files to `workdir` (without a sync, the command line creates it); a sync, sent,
/// unchanged or failed, is audited.
async fn send_tree(
    session: &Session,
    lease: &Lease,
    ssh: &SshClient,
    job: &Job,
    workdir: &str,
) -> Result<Option<SyncSummary>> {
    let Some(pending) = &job.files else {
        // The command line creates the work directory when it is not there yet: no round
        // trip of its own.
        return Ok(None);
    };
    let list = pending.get().await?;
    let redactor = session.redactor().clone();
    let outcome = sync::sync(
        ssh,
        list,
        workdir,
        &session.dirs().state,
        lease.ownership.lease.as_str(),
        sync::Options {
            force: job.resync,
            quiet: session.quiet(),
            transport: job.transport,
            local_rsync: sync::transport::local_rsync(session.env().var_os("PATH")),
        },
        &redactor,
    )
    .await;
    let (result, detail) = match &outcome {
        Ok(r) if r.skipped => (DataOutcome::Unchanged, sync::summary(r, workdir)),
        Ok(r) => (DataOutcome::Sent, sync::summary(r, workdir)),
        Err(e) => (DataOutcome::Failed, redactor.redact(&format!("{e:#}"))),
    };
    session.audit(&AuditRecord::sync(&SyncAudit {
        provider: session.name().to_string(),
        lease: lease.ownership.lease.to_string(),
        destination: destination(ssh),
        files: list.files.len() as u64,
        bytes: list.bytes,
        outcome: result,
        detail: detail.clone(),
        transport: outcome.as_ref().ok().and_then(|r| r.transport),
    }));
    let summary = SyncSummary::from(&outcome?);
    progress::note(session.quiet(), &detail);
    Ok(Some(summary))
}

/// Forwards the `--env` variables (see [`upload_env`]), auditing their names.
async fn forward_env(
    session: &Session,
    lease: &Lease,
    ssh: &SshClient,
    vars: &[(String, String)],
) -> Result<Option<String>> {
    if vars.is_empty() {
        return Ok(None);
    }
    let uploaded = upload_env(ssh, vars, session.redactor()).await;
    session.audit(&AuditRecord::env(
        session.name(),
        lease.ownership.lease.as_str(),
        &destination(ssh),
        vars.iter().map(|(name, _)| name.clone()).collect(),
        uploaded.is_ok(),
    ));
    uploaded
}

/// The remote command's exit status, from ssh's.
pub(crate) async fn exit_status(
    ssh: &SshClient,
    status: std::process::ExitStatus,
    lease: &Lease,
) -> Result<u8> {
    match status.code() {
        // ssh's own failures are 255 too. The multiplexing master outlives every session, so
        // when it is gone as well, the connection was lost; when it is up, the command most
        // likely exited 255 itself.
        Some(255) if ssh.master_alive() => {
            tracing::warn!(
                "ssh exited 255: the command itself exited 255, or its ssh session failed"
            );
            Ok(255)
        }
        Some(255) => {
            tracing::warn!("{}", guard::lost_connection(&lease.ownership.slug));
            Ok(255)
        }
        Some(code) => Ok(code as u8),
        None => Err(fail(ErrorKind::Interrupted, "the command was interrupted")),
    }
}

/// Reads the `--env` variables from the local environment.
fn forwarded_env(ctx: &Context, names: &[String]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for name in names {
        if !remote::is_env_name(name) {
            return Err(fail(
                ErrorKind::Usage,
                format!("--env {name}: not a variable name (use letters, digits and _)"),
            ));
        }
        if name.starts_with(remote::OWN_PREFIX) {
            return Err(fail(
                ErrorKind::Usage,
                format!(
                    "--env {name}: names that begin with {} are cbx's own on the sandbox; \
                     rename the variable",
                    remote::OWN_PREFIX
                ),
            ));
        }
        if name == "CBX_LEASE_ID" || name == "CBX_SLUG" {
            return Err(fail(
                ErrorKind::Usage,
                format!("--env {name}: cbx sets it itself"),
            ));
        }
        let value = ctx.var(name).ok_or_else(|| {
            Failure::new(
                ErrorKind::Usage,
                format!("--env {name}: {name} is not set in your environment"),
            )
        })?;
        // A forwarded value may be a secret: never echo it.
        ctx.redactor.add(&value, crate::redact::SECRET);
        out.push((name.clone(), value));
    }
    Ok(out)
}

/// Sends forwarded variables to a private file on the sandbox (through ssh's stdin, never on a
/// command line); the remote command reads and deletes it.
async fn upload_env(
    ssh: &SshClient,
    vars: &[(String, String)],
    redactor: &crate::redact::Redactor,
) -> Result<Option<String>> {
    if vars.is_empty() {
        return Ok(None);
    }
    let name = format!(".cbx/env-{}", &LeaseId::generate().as_str()[4..]);
    let line = format!(
        "umask 077 && mkdir -p -- .cbx && cat > {}",
        remote::quote(&name)
    );
    let out = ssh
        .output_with_input(&line, remote::env_file(vars).as_bytes())
        .await
        .map_err(|e| Failure::new(ErrorKind::Other, crate::ssh::spawn_error(&e)))?;
    if !out.status.success() {
        return Err(fail(
            ErrorKind::Other,
            format!(
                "could not pass --env variables to the sandbox: {}",
                redactor.redact(String::from_utf8_lossy(&out.stderr).trim())
            ),
        ));
    }
    Ok(Some(name))
}
