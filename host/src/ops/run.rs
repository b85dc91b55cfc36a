//! `cbx run` as a library call: check everything local (forwarded variables, the repository,
//! the file list), lease or resolve a sandbox, sync the tree, run the command with its output
//! streaming, and delete a one-shot sandbox afterwards — also on SIGINT, SIGTERM or SIGHUP.
//! A one-shot lease stays on record as an intent until it is deleted, so a `kill -9` at any
//! instant leaves it to the next command to delete.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

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
use crate::ops::guard::{self, RunGuard};
use crate::progress;
use crate::remote::{self, Program};
use crate::ssh::SshClient;
use crate::sync::{self, FileList};
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
    /// How long to wait for an existing lease's sandbox to be ready.
    pub ready_timeout: Duration,
}

/// What runs on the sandbox, checked locally before anything is leased.
struct Job {
    program: Program,
    forwarded: Vec<(String, String)>,
    repo: Option<PathBuf>,
    files: Option<FileList>,
    resync: bool,
}

/// A job whose file list is still being made, on a blocking thread, while cbx loads the
/// provider and asks it what it must (see [`prepare`]).
struct Pending {
    job: Job,
    listing: Option<tokio::task::JoinHandle<Result<FileList>>>,
}

impl Pending {
    /// The job with its file list, once that is made and within the size limits.
    async fn finish(self) -> Result<Job> {
        let mut job = self.job;
        if let Some(listing) = self.listing {
            job.files = Some(listing.await??);
        }
        Ok(job)
    }
}

/// Runs `request`; returns the remote command's exit status.
pub async fn run(ctx: &Context, request: &RunRequest) -> Result<u8> {
    let pending = prepare(ctx, request)?;
    match &request.lease {
        LeaseChoice::Existing(ident) => {
            run_existing(ctx, ident, request.ready_timeout, pending).await
        }
        LeaseChoice::New(acquire) => run_new(ctx, acquire, &pending.finish().await?).await,
    }
}

/// The checks that need no sandbox: forwarded variables and the repository, then the file
/// list, which is made on a blocking thread: its stats overlap with loading the provider
/// (and, on the full path, with the provider's answer about the lease). A new lease is
/// created only after the list is made and within the limits.
fn prepare(ctx: &Context, request: &RunRequest) -> Result<Pending> {
    let forwarded = forwarded_env(ctx, &request.env)?;
    let repo = if request.sync {
        Some(ctx.require_repo_root()?.to_path_buf())
    } else {
        ctx.repo_root().map(PathBuf::from)
    };
    let listing = match (&repo, request.sync) {
        (Some(root), true) => {
            let (root, cache, env) = (
                root.clone(),
                ctx.dirs.cache.join("listings"),
                ctx.env.clone(),
            );
            let large = request.sync_large;
            Some(tokio::task::spawn_blocking(move || {
                let list = FileList::collect_cached(&root, &cache, &env)?;
                list.check_size(large, &|m| progress::report(m))?;
                Ok(list)
            }))
        }
        _ => None,
    };
    Ok(Pending {
        job: Job {
            program: request.program.clone(),
            forwarded,
            repo,
            files: None,
            resync: request.resync,
        },
        listing,
    })
}

/// Runs on the existing lease `ident`, which is kept: on the warm path when it can be taken
/// (see `lease::warm`), else — or when the warm path's connection fails before the command
/// started (see `ops::guard`) — on the full path.
async fn run_existing(
    ctx: &Context,
    ident: &str,
    ready_timeout: Duration,
    pending: Pending,
) -> Result<u8> {
    let provider = ctx.provider_for(ident)?;
    let mut session = ctx.session(&provider).await?;
    let _shield = interrupt::shield();
    let guard = RunGuard::new();
    let mut tried = false;
    let warm = warm::warm(&session, ident)?;
    let (mut lease, job) = match warm {
        Some(_) => (None, pending.finish().await?),
        None => {
            let lease = warm::resolve_to_use(&mut session, ident);
            let (lease, job) = tokio::join!(lease, pending.finish());
            (Some(lease?), job?)
        }
    };
    let job = &job;
    if let Some(WarmLease { mut lease, ssh }) = warm {
        let outcome = tokio::select! {
            r = execute_warm(&session, &lease, &ssh, job, &guard) => r,
            signal = interrupt::interrupted() => Err(signal.failure("interrupted")),
        };
        match outcome {
            Ok(Warm::Finished(code)) => {
                warm::touch_if_due(&mut session, &mut lease).await;
                return unless_stopped(&session, &lease, Ok(code)).await;
            }
            Ok(Warm::NotStarted { command_sent }) => {
                tracing::info!("the warm path's connection failed; asking {provider}");
                tried = command_sent;
            }
            Err(e) => return unless_stopped(&session, &lease, Err(e)).await,
        }
    }
    let mut lease = match lease.take() {
        Some(lease) => lease,
        None => warm::resolve_to_use(&mut session, ident).await?,
    };
    lease.require_claim("use")?;
    ready::ensure_ready(&mut session, &mut lease, ready_timeout).await?;
    let guard = tried.then_some(&guard);
    let outcome = tokio::select! {
        r = async {
            testpoint::reached(session.env(), "run:resolved").await;
            execute(&mut session, &mut lease, job, guard).await
        } => r,
        signal = interrupt::interrupted() => Err(signal.failure("interrupted")),
    };
    unless_stopped(&session, &lease, outcome).await
}

/// How a warm run ended.
enum Warm {
    /// The command ran (or started): its exit status.
    Finished(u8),
    /// The connection failed before the command started; `command_sent` if its run file
    /// must be checked before running it again.
    NotStarted { command_sent: bool },
}

/// The warm path's run: the sync (nothing goes over the network when nothing changed), the
/// forwarded variables, then the command, its line led by the guard's prelude. A failure
/// with the master connection gone, or an exit 255 before the command started, is
/// [`Warm::NotStarted`].
async fn execute_warm(
    session: &Session,
    lease: &Lease,
    ssh: &SshClient,
    job: &Job,
    guard: &RunGuard,
) -> Result<Warm> {
    let workdir = connect::workdir(lease, job.repo.as_deref())?;
    testpoint::reached(session.env(), "run:warm").await;
    let prepared = async {
        send_tree(session, lease, ssh, job, &workdir).await?;
        forward_env(session, lease, ssh, &job.forwarded).await
    }
    .await;
    let env_file = match prepared {
        Ok(f) => f,
        Err(_) if !ssh.master_alive() => {
            return Ok(Warm::NotStarted {
                command_sent: false,
            });
        }
        Err(e) => return Err(e),
    };
    let status = run_command(ssh, lease, job, &workdir, env_file, Some(guard)).await?;
    if guard.failed_before_start(ssh, &status).await {
        return Ok(Warm::NotStarted { command_sent: true });
    }
    exit_status(ssh, status, lease).await.map(Warm::Finished)
}

/// Runs on a new lease, deleted afterwards unless kept.
async fn run_new(ctx: &Context, request: &AcquireRequest, job: &Job) -> Result<u8> {
    let mut session = ctx.session(&ctx.provider_name()).await?;
    let _shield = interrupt::shield();
    let Acquired { mut lease, intent } = acquire(&mut session, request).await?;
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
    let outcome = tokio::select! {
        r = execute(&mut session, &mut lease, job, None) => r,
        signal = interrupt::interrupted() => Err(signal.failure("interrupted")),
    };
    match intent {
        Some(hold) => release_one_shot(&mut session, &lease, hold, outcome).await,
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

/// Deletes a one-shot lease's sandbox after the command and finishes its intent. When that
/// fails — or a second signal abandons it — the intent stays and the next command deletes the
/// sandbox; the error says so, and a successful command is not reported as success.
async fn release_one_shot(
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

/// Connects, syncs and runs the command; returns its exit status. With `guard` (a warm run
/// that sent the command before its connection failed), the command runs only if it did not
/// start then.
async fn execute(
    session: &mut Session,
    lease: &mut Lease,
    job: &Job,
    guard: Option<&RunGuard>,
) -> Result<u8> {
    let workdir = connect::workdir(lease, job.repo.as_deref())?;
    ready::touch(session, lease).await?;
    testpoint::reached(session.env(), "run:touched").await;
    let ssh = connect::ssh(session, lease).await?;
    if let Some(guard) = guard
        && let Some(code) = guard.before_rerun(&ssh, &lease.ownership.slug).await?
    {
        return Ok(code);
    }
    send_tree(session, lease, &ssh, job, &workdir).await?;
    testpoint::reached(session.env(), "run:synced").await;
    let env_file = forward_env(session, lease, &ssh, &job.forwarded).await?;
    let status = run_command(&ssh, lease, job, &workdir, env_file, None).await?;
    exit_status(&ssh, status, lease).await
}

/// Runs the job's command in `workdir`, its output relayed; `guard`'s prelude leads the line.
async fn run_command(
    ssh: &SshClient,
    lease: &Lease,
    job: &Job,
    workdir: &str,
    env_file: Option<String>,
    guard: Option<&RunGuard>,
) -> Result<std::process::ExitStatus> {
    let exports = vec![
        (
            "CBX_LEASE_ID".to_string(),
            lease.ownership.lease.to_string(),
        ),
        ("CBX_SLUG".to_string(), lease.ownership.slug.clone()),
    ];
    let line = remote::command_line(workdir, true, &exports, env_file.as_deref(), &job.program);
    let line = match guard {
        Some(g) => format!("{}{line}", g.prelude()),
        None => line,
    };
    let mut cmd = ssh.ssh();
    cmd.args(["-T", ssh.alias()]).arg(line);
    Ok(crate::ssh::relay(cmd)
        .await
        .map_err(|e| Failure::new(ErrorKind::Other, crate::ssh::spawn_error(&e)))?)
}

/// `host:port` of the sandbox `ssh` connects to, for the audit log.
fn destination(ssh: &SshClient) -> String {
    crate::grant::destination::shown(&ssh.target().host, ssh.target().port)
}

/// Syncs the job's files to `workdir` (or just creates it, without a sync); a sync, sent,
/// unchanged or failed, is audited.
async fn send_tree(
    session: &Session,
    lease: &Lease,
    ssh: &SshClient,
    job: &Job,
    workdir: &str,
) -> Result<()> {
    let Some(list) = &job.files else {
        return make_workdir(ssh, workdir).await;
    };
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
    }));
    outcome?;
    progress::note(session.quiet(), &detail);
    Ok(())
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

/// Creates the work directory of a run without a sync.
async fn make_workdir(ssh: &SshClient, workdir: &str) -> Result<()> {
    let mut mk = ssh.ssh();
    mk.arg(ssh.alias())
        .arg(format!("mkdir -p -- {}", remote::quote(workdir)));
    let status = mk.stdin(Stdio::null()).status().await?;
    if !status.success() {
        return Err(fail(
            ErrorKind::Sync,
            format!("could not create {workdir} on the sandbox"),
        ));
    }
    Ok(())
}

/// The remote command's exit status, from ssh's.
async fn exit_status(
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
    let mut cmd = ssh.ssh();
    cmd.arg(ssh.alias())
        .arg(format!(
            "umask 077 && mkdir -p -- .cbx && cat > {}",
            remote::quote(&name)
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::new(ErrorKind::Other, crate::ssh::spawn_error(&e)))?;
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().expect("piped");
        stdin.write_all(remote::env_file(vars).as_bytes()).await?;
    }
    let out = child.wait_with_output().await?;
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
