//! `cbx ssh`: an interactive shell on a lease's sandbox, one command, or a paste-able command
//! line.

use std::io::IsTerminal;

use anyhow::Result;

use crate::cli::args::SshArgs;
use crate::context::Context;
use crate::error::{ErrorKind, Failure, fail};
use crate::lease::session::Session;
use crate::lease::{Lease, access, connect, ready, resolve};
use crate::remote::{self, Program};

/// Runs `cbx ssh`.
pub async fn run(ctx: &Context, args: &SshArgs) -> Result<u8> {
    let times = ctx
        .config
        .lease_times(crate::config::LeaseFlags::default(), &ctx.env)?;
    let provider = ctx.provider_for(&args.lease)?;
    let mut session = ctx.session(&provider).await?;
    let mut lease = resolve::resolve(&mut session, &args.lease).await?;
    lease.require_claim("use")?;
    ready::ensure_ready(&mut session, &mut lease, times.ready.val).await?;
    let repo = ctx.repo_root().map(std::path::PathBuf::from).or_else(|| {
        lease
            .claim
            .as_ref()
            .and_then(|c| c.repo_root.as_ref().map(std::path::PathBuf::from))
    });
    let workdir = connect::workdir(&lease, repo.as_deref())?;
    if args.print {
        return print(&mut session, &mut lease, &workdir, args).await;
    }
    ready::touch(&mut session, &mut lease).await?;
    let ssh = connect::ssh(&mut session, &lease).await?;
    let exports = vec![
        (
            "CBX_LEASE_ID".to_string(),
            lease.ownership.lease.to_string(),
        ),
        ("CBX_SLUG".to_string(), lease.ownership.slug.clone()),
    ];
    let mut cmd = ssh.ssh();
    let interactive = args.command.is_empty() && std::io::stdin().is_terminal();
    if args.command.is_empty() {
        cmd.arg(if interactive { "-t" } else { "-T" })
            .arg(ssh.alias());
        cmd.arg(remote::command_line(
            &workdir,
            false,
            &exports,
            None,
            &Program::Shell("exec \"${SHELL:-/bin/sh}\" -l".into()),
        ));
    } else {
        cmd.args(["-T", ssh.alias()]);
        cmd.arg(remote::command_line(
            &workdir,
            false,
            &exports,
            None,
            &Program::Argv(args.command.clone()),
        ));
    }
    // A terminal session keeps the terminal; anything else is relayed (see `ssh::relay`).
    let status = if interactive {
        cmd.status().await
    } else {
        crate::ssh::relay(cmd).await
    }
    .map_err(|e| Failure::new(ErrorKind::Other, crate::ssh::spawn_error(&e)))?;
    match status.code() {
        Some(code) => Ok(code as u8),
        None => Err(fail(
            ErrorKind::Interrupted,
            "the ssh session was interrupted",
        )),
    }
}

/// `cbx ssh L --print`: the command that would log in, with access cached or minted now — but
/// no connection (SSH on a fresh sandbox may take a while to accept logins; the printed
/// command is for later).
async fn print(
    session: &mut Session,
    lease: &mut Lease,
    workdir: &str,
    args: &SshArgs,
) -> Result<u8> {
    let show_secret = args.show_secret;
    ready::touch(session, lease).await?;
    let (ssh, _) = access::obtain(session, lease, None).await?;
    if args.json {
        let t = ssh.target();
        let json = serde_json::json!({
            "leaseId": lease.ownership.lease.to_string(),
            "slug": lease.ownership.slug,
            "command": ssh.printable(show_secret),
            "user": if t.user_is_secret && !show_secret {
                crate::redact::TOKEN.to_string()
            } else {
                t.user.clone()
            },
            "userIsSecret": t.user_is_secret,
            "host": t.host,
            "port": t.port,
            "workdir": workdir,
        });
        println!("{json}");
    } else {
        println!("{}", ssh.printable(show_secret));
    }
    if ssh.target().user_is_secret && !show_secret {
        eprintln!(
            "note: the SSH user is an access token, shown as <token>; --show-secret prints it"
        );
    }
    Ok(0)
}
