//! `cbx ssh`: an interactive shell on a lease's sandbox, one command, or a paste-able command
//! line. A shell or command takes the warm path when it can (see `lease::warm`), falling back
//! like `cbx run --id` (see `ops::guard`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitStatus;

use anyhow::Result;

use crate::cli::args::SshArgs;
use crate::context::Context;
use crate::error::{ErrorKind, Failure, fail};
use crate::lease::session::Session;
use crate::lease::warm::{self, WarmLease};
use crate::lease::{Lease, access, connect, ready};
use crate::login_env::{self, LoginEnv, LoginEnvironment, Reuse};
use crate::ops::guard::RunGuard;
use crate::remote::Program;
use crate::ssh::{SshClient, StdoutTo};
use crate::sync::tools;

/// Runs `cbx ssh`.
pub async fn run(ctx: &Context, args: &SshArgs) -> Result<u8> {
    let times = ctx
        .config
        .lease_times(crate::config::LeaseFlags::default(), &ctx.env)?;
    let reuse_login = ctx.config.login_environment()?.val == LoginEnvironment::Cached;
    let provider = ctx.provider_for(&args.lease)?;
    let mut session = ctx.session_on_demand(&provider).await?;
    let guard = RunGuard::new();
    let mut tried = false;
    if !args.print
        && let Some(WarmLease { mut lease, ssh }) = warm::warm(&session, &args.lease)?
    {
        let workdir = connect::workdir(&lease, repo(ctx, &lease).as_deref())?;
        let login = cached_login(ctx, reuse_login, &lease);
        let line = line_of(args, &lease, &workdir, login.as_ref());
        let status = session_of(args, &ssh, &line, Some(&guard)).await?;
        if !guard.failed_before_start(&ssh, &status).await {
            warm::touch_if_due(&mut session, &mut lease).await;
            return exit_code(status);
        }
        tracing::info!("the warm path's connection failed; asking {provider}");
        tried = true;
    }
    let mut lease = warm::resolve_to_use(&mut session, &args.lease).await?;
    lease.require_claim("use")?;
    ready::ensure_ready(&mut session, &mut lease, times.ready.val).await?;
    if args.print {
        return print(&mut session, &mut lease, args.show_secret, args.json).await;
    }
    let workdir = connect::workdir(&lease, repo(ctx, &lease).as_deref())?;
    ready::touch(&mut session, &mut lease).await?;
    let ssh = connect::ssh(&mut session, &lease).await?;
    if tried && let Some(code) = guard.before_rerun(&ssh, &lease.ownership.slug).await? {
        return Ok(code);
    }
    let login = cached_login(ctx, reuse_login, &lease);
    let line = line_of(args, &lease, &workdir, login.as_ref());
    exit_code(session_of(args, &ssh, &line, None).await?)
}

/// The login environment cached for `lease`, when commands reuse it (see `login_env`).
fn cached_login(ctx: &Context, reuse: bool, lease: &Lease) -> Option<LoginEnv> {
    if !reuse {
        return None;
    }
    tools::load_login(&ctx.dirs.state, lease.ownership.lease.as_str())?.into_cached()
}

/// The remote command line of the shell (a login shell: it reads the profile anyway) or the
/// command (with the cached login environment `login`, if any).
fn line_of(args: &SshArgs, lease: &Lease, workdir: &str, login: Option<&LoginEnv>) -> String {
    let exports = vec![
        (
            "CBX_LEASE_ID".to_string(),
            lease.ownership.lease.to_string(),
        ),
        ("CBX_SLUG".to_string(), lease.ownership.slug.clone()),
    ];
    let (program, login) = if args.command.is_empty() {
        (Program::Shell("exec \"${SHELL:-/bin/sh}\" -l".into()), None)
    } else {
        (Program::Argv(args.command.clone()), login)
    };
    let reuse = login.map(|env| Reuse {
        env,
        forwarded: &[],
    });
    login_env::command_line(workdir, false, &exports, None, &program, reuse)
}

/// The local repository, else the one the lease was created from.
fn repo(ctx: &Context, lease: &Lease) -> Option<PathBuf> {
    ctx.repo_root().map(PathBuf::from).or_else(|| {
        lease
            .claim
            .as_ref()
            .and_then(|c| c.repo_root.as_ref().map(PathBuf::from))
    })
}

/// Runs the shell (or the command) on the sandbox with the remote command line `line`;
/// `guard`'s prelude leads a warm run's line.
async fn session_of(
    args: &SshArgs,
    ssh: &SshClient,
    line: &str,
    guard: Option<&RunGuard>,
) -> Result<ExitStatus> {
    let line = match guard {
        Some(g) => format!("{}{line}", g.prelude()),
        None => line.to_string(),
    };
    // A terminal session keeps the terminal; anything else is relayed (see `ssh::session`).
    let status = if args.command.is_empty() && std::io::stdin().is_terminal() {
        let mut cmd = ssh.ssh();
        cmd.args(["-t", ssh.alias()]).arg(line);
        cmd.status().await
    } else {
        crate::ssh::session::relay(ssh, &line, StdoutTo::Stdout).await
    };
    Ok(status.map_err(|e| Failure::new(ErrorKind::Other, crate::ssh::spawn_error(&e)))?)
}

/// cbx's exit code for the ssh session's status.
fn exit_code(status: ExitStatus) -> Result<u8> {
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
/// With `json`, the command and its parts as one JSON object (docs/cli.md).
async fn print(
    session: &mut Session,
    lease: &mut Lease,
    show_secret: bool,
    json: bool,
) -> Result<u8> {
    ready::touch(session, lease).await?;
    let (ssh, _) = access::obtain(session, lease, None).await?;
    if json {
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
