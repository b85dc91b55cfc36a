//! `daytona-sim`: runs the Daytona simulator standalone on 127.0.0.1.
//!
//! Prints `DAYTONA_API_URL=…`, `DAYTONA_API_KEY=…` and `DAYTONA_SSH_GATEWAY=…` (where its
//! minted SSH access leads, which cbx connects to only when told) on stdout, then serves until
//! SIGINT or SIGTERM (or until stdin closes, with `--exit-on-stdin-close`).

use std::io::{Read, Write};
use std::time::Duration;

use cbx_daytona_sim::{DaytonaSim, SimConfig};

/// Usage text.
const USAGE: &str = "usage: daytona-sim [--port N] [--api-key K] [--exit-on-stdin-close]
       [--jwt T] [--organization-id ID] [--create-delay-ms N] [--start-delay-ms N]
       [--stop-delay-ms N] [--delete-delay-ms N] [--server-wait-ms N] [--list-lag-ms N]
       [--legacy-list] [--max-page-size N] [--snapshot NAME]... [--latency-ms N] [--ssh]

  --latency-ms  add N ms to every API request before it is answered (a remote service's
         network latency)

  --ssh  serve the sandboxes over a real sshd on loopback that logs in with the access
         token as user name, like Daytona's gateway (needs root: it creates throwaway
         system users, removed again on exit)
  --snapshot NAME
         a snapshot name create accepts (repeatable; replaces the defaults daytona-small,
         daytona-medium, daytona-large, cbx-test-no-rsync, cbx-test-no-rsync-no-tar,
         cbx-test-fails-to-start)

  Images: with --ssh, a sandbox made from a snapshot whose name contains `no-rsync` has no
  rsync on its PATH (like Daytona's sandbox-slim image: only sh, tar and the rest); one whose
  name also contains `no-tar` has neither rsync nor tar. E.g. `-o snapshot=cbx-test-no-rsync`.
  A sandbox made from cbx-test-fails-to-start goes to `error` (its image cannot be pulled).";

/// Parsed command line.
struct Args {
    config: SimConfig,
    exit_on_stdin_close: bool,
    ssh: bool,
}

/// Parses the command line (`--flag value` or `--flag=value`).
fn parse_args() -> Result<Args, String> {
    let mut config = SimConfig::default();
    let mut exit_on_stdin_close = false;
    let mut ssh = false;
    let mut custom_snapshots = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = || -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let ms = |v: String| -> Result<Duration, String> {
            v.parse()
                .map(Duration::from_millis)
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--port" => config.port = value()?.parse().map_err(|_| "--port: not a port")?,
            "--api-key" => config.api_key = value()?,
            "--jwt" => config.jwt = Some(value()?),
            "--organization-id" => config.organization_id = value()?,
            "--create-delay-ms" => config.create_delay = ms(value()?)?,
            "--start-delay-ms" => config.start_delay = ms(value()?)?,
            "--stop-delay-ms" => config.stop_delay = ms(value()?)?,
            "--delete-delay-ms" => config.delete_delay = ms(value()?)?,
            "--server-wait-ms" => config.server_wait = ms(value()?)?,
            "--list-lag-ms" => config.list_lag = ms(value()?)?,
            "--latency-ms" => config.latency = ms(value()?)?,
            "--legacy-list" => config.legacy_list = true,
            "--max-page-size" => {
                config.max_page_size = value()?
                    .parse()
                    .map_err(|_| "--max-page-size: not a number")?
            }
            "--snapshot" => custom_snapshots.push(value()?),
            "--exit-on-stdin-close" => exit_on_stdin_close = true,
            "--ssh" => ssh = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    if !custom_snapshots.is_empty() {
        config.snapshots = custom_snapshots;
    }
    Ok(Args {
        config,
        exit_on_stdin_close,
        ssh,
    })
}

/// Resolves when SIGINT or SIGTERM arrives.
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("daytona-sim: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let mut config = args.config;
    let gateway = if args.ssh {
        let g = std::sync::Arc::new(cbx_daytona_sim::sshd::SshdGateway::start()?);
        config.ssh = g.clone();
        Some(g)
    } else {
        None
    };
    let sim = DaytonaSim::start(config).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "DAYTONA_API_URL={}", sim.api_url())?;
        writeln!(out, "DAYTONA_API_KEY={}", sim.api_key())?;
        writeln!(out, "DAYTONA_SSH_GATEWAY={}", sim.ssh_gateway())?;
        out.flush()?;
    }
    if args.exit_on_stdin_close {
        // A plain thread: a blocked stdin read must not keep the runtime from shutting down.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut sink = [0u8; 4096];
            let mut stdin = std::io::stdin().lock();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            let _ = tx.send(());
        });
        tokio::select! {
            _ = terminated() => {}
            _ = rx => {}
        }
    } else {
        terminated().await;
    }
    sim.shutdown();
    // Removes the sandbox users and stops sshd.
    drop(gateway);
    Ok(())
}
