//! `cbx run`: sync the working tree to a sandbox and run a command there, streaming its output
//! and exiting with its status (the work is `ops::run`).

use anyhow::Result;

use crate::cli::args::RunArgs;
use crate::config::parse_duration;
use crate::context::Context;
use crate::ops::run::{self, LeaseChoice, RunRequest};
use crate::remote::Program;

/// Runs `cbx run`.
pub async fn run(ctx: &Context, args: &RunArgs) -> Result<u8> {
    let program = if args.shell {
        Program::Shell(args.command.join(" "))
    } else {
        Program::Argv(args.command.clone())
    };
    let lease = match &args.id {
        Some(ident) => LeaseChoice::Existing(ident.clone()),
        None => LeaseChoice::New {
            request: super::warmup::acquire_request(ctx, &args.lease)?,
            keep: args.keep,
        },
    };
    let request = RunRequest {
        lease,
        program,
        env: args.env.clone(),
        sync: !args.no_sync,
        resync: args.resync,
        sync_large: args.sync_large,
        ready_timeout: parse_duration(&args.lease.ready_timeout, "--ready-timeout")?,
    };
    run::run(ctx, &request).await
}
