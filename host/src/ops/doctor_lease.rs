//! `cbx doctor --lease L`: a live lease checked with one round trip to its sandbox. The lease
//! and its sandbox's state come from the provider; then one SSH login both proves that SSH
//! works and reports the sandbox's tools, from which doctor says which transport syncs will
//! use — or exactly what is missing and how to fix it — and whether commands reuse the login
//! environment read at that login (`login_env`). Doctor starts nothing: a stopped
//! sandbox is reported, not started. SSH access is the lease's cached access, minted only
//! when it has none that logs in (as `cbx ssh` does).

use std::time::Instant;

use anyhow::Result;

use crate::context::Context;
use crate::error::{ErrorKind, Failure};
use crate::lease::session::Session;
use crate::lease::{Lease, access, connect, ready, warm};
use crate::login_env::{Captured, LoginEnvironment};
use crate::ops::doctor_report::DoctorReport;
use crate::progress::human_duration;
use crate::provider::api::{CheckStatus, SandboxState};
use crate::ssh::SshClient;
use crate::sync::tools::RemoteTools;
use crate::sync::transport::{self, Transport};
use crate::terminal::inert;

/// Checks lease `ident`: `lease`, then (when its sandbox is ready) `sandbox-ssh`,
/// `sandbox-tools` and `login-environment`. A failure ends the checks with its kind's exit code.
pub async fn check(ctx: &Context, session: &mut Session, ident: &str, report: &mut DoctorReport) {
    let lease = match usable(session, ident).await {
        Ok(lease) => lease,
        Err(e) => return report.fail(ctx, "lease", &e),
    };
    let named = format!(
        "lease {} ({}): sandbox {}",
        lease.ownership.lease,
        lease.ownership.slug,
        inert(&lease.sandbox.id)
    );
    if lease.sandbox.state != SandboxState::Ready {
        return report.add(
            ctx,
            "lease",
            CheckStatus::Warn,
            format!(
                "{named} is {}; doctor starts nothing, so SSH and the sandbox's tools were not \
                 checked. `cbx run --id {} -- true` starts it; then run doctor again",
                inert(&lease.sandbox.provider_state),
                lease.ownership.lease
            ),
        );
    }
    report.add(ctx, "lease", CheckStatus::Ok, format!("{named} is ready"));
    crate::testpoint::reached(session.env(), "doctor:lease-ready").await;
    let started = Instant::now();
    let (ssh, printed) = match login(session, &lease).await {
        Ok(reached) => reached,
        Err(e) => return report.fail(ctx, "sandbox-ssh", &e),
    };
    report.add(
        ctx,
        "sandbox-ssh",
        CheckStatus::Ok,
        format!(
            "logged in as {} port {} ({})",
            ssh.target().shown_destination(),
            ssh.target().port,
            human_duration(started.elapsed())
        ),
    );
    let Some(found) = RemoteTools::read(&printed) else {
        let e = Failure::new(
            ErrorKind::Sync,
            "the sandbox's login shell did not run cbx's tools probe (it printed no `cbx-tools:` line)",
        )
        .hint("cbx needs a POSIX `sh` as the sandbox user's login shell");
        return report.fail(ctx, "sandbox-tools", &e.into());
    };
    let captured = connect::record_tools(session, &lease, Some(&printed));
    tools_check(ctx, &found, report);
    login_env_check(ctx, captured.as_ref(), report);
}

/// The `login-environment` check: whether commands reuse the login environment read at this
/// login, or why each starts a login shell (names only, never values).
fn login_env_check(ctx: &Context, captured: Option<&Captured>, report: &mut DoctorReport) {
    let mode = match ctx.config.login_environment() {
        Ok(m) => m,
        Err(e) => return report.fail(ctx, "login-environment", &e),
    };
    let (status, detail) = match (captured, mode.val) {
        (_, LoginEnvironment::Fresh) => (
            CheckStatus::Ok,
            format!(
                "not used: every command starts a login shell (`[run] login-environment = \
                 \"fresh\"`, {})",
                mode.definition
            ),
        ),
        (Some(c @ Captured::Cached(_)), _) => (CheckStatus::Ok, c.describe()),
        (Some(c), _) => (
            CheckStatus::Warn,
            format!("{}; every command starts a login shell", c.describe()),
        ),
        (None, _) => (
            CheckStatus::Warn,
            "not cached: the login did not report it; every command starts a login shell".into(),
        ),
    };
    report.add(ctx, "login-environment", status, detail);
}

/// The `sandbox-tools` check: what the sandbox has and the transport syncs will use, or the
/// sync failure (exit 6) saying what is missing and how to fix it.
fn tools_check(ctx: &Context, found: &RemoteTools, report: &mut DoctorReport) {
    let choice = match ctx.config.sync_transport(None, &ctx.env) {
        Ok(c) => c.val,
        Err(e) => return report.fail(ctx, "sandbox-tools", &e),
    };
    let local_rsync = transport::local_rsync(ctx.env.var_os("PATH"));
    match transport::choose(choice, found, local_rsync) {
        Ok(chosen) => {
            let why = match chosen {
                Transport::Tar if !found.rsync => {
                    "; the sandbox has no rsync — a snapshot with rsync lets syncs use it (see \
                     docs/providers/daytona.md)"
                }
                Transport::Tar if !local_rsync => "; this machine has no rsync",
                _ => "",
            };
            report.sync_transport = Some(chosen.name());
            report.add(
                ctx,
                "sandbox-tools",
                CheckStatus::Ok,
                format!(
                    "the sandbox has {}; with sync.transport {choice}, syncs will use {}{why}",
                    inert(&found.describe()),
                    chosen.name()
                ),
            );
        }
        Err(missing) => report.fail(ctx, "sandbox-tools", &missing.into()),
    }
}

/// Lease `ident` as the provider reports it, claimed here exactly and not expired.
async fn usable(session: &mut Session, ident: &str) -> Result<Lease> {
    let lease = warm::resolve_to_use(session, ident).await?;
    lease.require_claim("check")?;
    ready::refuse_expired(&lease)?;
    Ok(lease)
}

/// One login to `lease`'s sandbox that runs the tools probe; returns the client and what the
/// probe printed. Cached access that does not log in is replaced once by fresh access.
async fn login(session: &mut Session, lease: &Lease) -> Result<(SshClient, String)> {
    let probe = connect::login_probe(lease)?;
    let (ssh, fresh) = access::obtain(session, lease, None).await?;
    let first = ssh.probe(&probe).await;
    let (ssh, outcome) = match first {
        Err(_) if !fresh => {
            let (ssh, _) = access::obtain(session, lease, Some(&ssh)).await?;
            let again = ssh.probe(&probe).await;
            (ssh, again)
        }
        outcome => (ssh, outcome),
    };
    match outcome {
        Ok(printed) => Ok((ssh, printed)),
        Err(said) => Err(Failure::new(
            ErrorKind::Sandbox,
            format!(
                "could not log in over SSH to {}:{}{}",
                ssh.target().host,
                ssh.target().port,
                if said.is_empty() {
                    String::new()
                } else {
                    format!(": {}", inert(&session.redactor().redact(&said)))
                }
            ),
        )
        .hint(format!(
            "`cbx status {}` shows the sandbox's state; `cbx ssh {} -- true` waits for SSH \
             and says more",
            lease.ownership.lease, lease.ownership.lease
        ))
        .into()),
    }
}
