//! `cbx run`: sync the working tree to a sandbox and run a command there, streaming its output
//! and exiting with its status.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Result;

use crate::cli::Context;
use crate::cli::args::RunArgs;
use crate::config::parse_duration;
use crate::error::{ErrorKind, Failure, fail};
use crate::lease::lifecycle::{self, Lease};
use crate::lease::session::Session;
use crate::lease::{connect, id::LeaseId};
use crate::remote::{self, Program};
use crate::ssh::SshClient;
use crate::sync::{self, FileList};

/// Runs `cbx run`.
pub async fn run(ctx: &Context, args: &RunArgs) -> Result<u8> {
    // Check everything local before leasing anything.
    let forwarded = forwarded_env(ctx, &args.env)?;
    let program = if args.shell {
        Program::Shell(args.command.join(" "))
    } else {
        Program::Argv(args.command.clone())
    };
    let repo = if args.no_sync {
        super::repo_root(&ctx.cwd)
    } else {
        Some(sync::repo_root(&ctx.cwd)?)
    };
    let files = match (&repo, args.no_sync) {
        (Some(root), false) => {
            let list = FileList::collect_cached(root, &ctx.dirs.cache.join("listings"))?;
            list.check_size(args.sync_large, &|m| eprintln!("{m}"))?;
            Some(list)
        }
        _ => None,
    };
    let ready_timeout = parse_duration(&args.lease.ready_timeout, "--ready-timeout")?;

    let (mut session, mut lease, one_shot) = match &args.id {
        Some(ident) => {
            let provider = super::provider_for(ctx, ident)?;
            let mut session = ctx.session(&provider).await?;
            let mut lease = lifecycle::resolve(&mut session, ident).await?;
            lease.require_claim("use")?;
            lifecycle::ensure_ready(&mut session, &mut lease, ready_timeout).await?;
            (session, lease, false)
        }
        None => {
            let mut session = ctx.session(&ctx.provider_name()).await?;
            let request = super::warmup::acquire_request(ctx, &args.lease)?;
            let lease = lifecycle::acquire(&mut session, &request).await?;
            eprintln!(
                "leased {} slug={} provider={} sandbox={}{}",
                lease.ownership.lease,
                lease.ownership.slug,
                lease.ownership.provider,
                lease.sandbox.id,
                if args.keep {
                    ""
                } else {
                    " (deleted when the command ends; --keep keeps it)"
                }
            );
            (session, lease, !args.keep)
        }
    };

    let job = Job {
        program,
        forwarded,
        repo,
        files,
        resync: args.resync,
    };
    let outcome = tokio::select! {
        r = execute(&mut session, &mut lease, &job) => r,
        _ = tokio::signal::ctrl_c() => Err(fail(ErrorKind::Interrupted, "interrupted")),
    };
    if !one_shot {
        return outcome;
    }
    let cleanup = tokio::select! {
        r = lifecycle::release(&mut session, &lease, Duration::ZERO) => r.map(|_| ()),
        _ = tokio::signal::ctrl_c() => Err(fail(ErrorKind::Interrupted, "interrupted again")),
    };
    match cleanup {
        Ok(()) => {
            if !session.quiet {
                eprintln!(
                    "released {} (sandbox {} deleted)",
                    lease.ownership.lease, lease.sandbox.id
                );
            }
            outcome
        }
        Err(e) => {
            eprintln!(
                "error: could not delete sandbox {} of lease {}: {}",
                lease.sandbox.id,
                lease.ownership.lease,
                session.provider.redactor().redact(&format!("{e:#}"))
            );
            eprintln!(
                "hint: delete it with `cbx stop {}` (or in the provider's console)",
                lease.ownership.lease
            );
            match outcome {
                // The command succeeded, but a sandbox may be left running: do not report success.
                Ok(0) => Err(e),
                other => other,
            }
        }
    }
}

struct Job {
    program: Program,
    forwarded: Vec<(String, String)>,
    repo: Option<PathBuf>,
    files: Option<FileList>,
    resync: bool,
}

/// Connects, syncs and runs the command; returns its exit status.
async fn execute(session: &mut Session, lease: &mut Lease, job: &Job) -> Result<u8> {
    lifecycle::touch(session, lease).await;
    let ssh = connect::ssh(session, lease).await?;
    let workdir = connect::workdir(lease, job.repo.as_deref());
    let redactor = session.provider.redactor().clone();
    match &job.files {
        Some(list) => {
            let report = sync::sync(
                &ssh,
                list,
                &workdir,
                &session.dirs.state,
                lease.ownership.lease.as_str(),
                sync::Options {
                    force: job.resync,
                    quiet: session.quiet,
                },
                &redactor,
            )
            .await?;
            if !session.quiet {
                eprintln!("{}", sync::summary(&report, &workdir));
            }
        }
        None => {
            let mut mk = ssh.ssh();
            mk.arg(ssh.alias())
                .arg(format!("mkdir -p {}", remote::quote(&workdir)));
            let status = mk.stdin(Stdio::null()).status().await?;
            if !status.success() {
                return Err(fail(
                    ErrorKind::Sync,
                    format!("could not create {workdir} on the sandbox"),
                ));
            }
        }
    }
    let env_file = upload_env(&ssh, &job.forwarded, &redactor).await?;
    let exports = vec![
        (
            "CBX_LEASE_ID".to_string(),
            lease.ownership.lease.to_string(),
        ),
        ("CBX_SLUG".to_string(), lease.ownership.slug.clone()),
    ];
    let line = remote::command_line(&workdir, true, &exports, env_file.as_deref(), &job.program);
    let mut cmd = ssh.ssh();
    cmd.args(["-T", ssh.alias()]).arg(line).kill_on_drop(true);
    let status = cmd
        .status()
        .await
        .map_err(|e| Failure::new(ErrorKind::Other, crate::ssh::spawn_error(&e)))?;
    match status.code() {
        // ssh's own failures are 255 too. The multiplexing master outlives every session, so
        // when it is gone as well, the connection was lost; when it is up, the command most
        // likely exited 255 itself.
        Some(255) if ssh.master_alive().await => {
            tracing::warn!(
                "ssh exited 255: the command itself exited 255, or its ssh session failed"
            );
            Ok(255)
        }
        Some(255) => {
            tracing::warn!(
                "ssh exited 255 and its connection to the sandbox is gone: the connection was \
                 lost, and the command may not have finished (run it again, or look with \
                 `cbx ssh {}`)",
                lease.ownership.slug
            );
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
            "umask 077 && mkdir -p .cbx && cat > {}",
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
