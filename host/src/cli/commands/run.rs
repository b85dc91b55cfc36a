//! `cbx run`: sync the working tree to a sandbox and run a command there, streaming its output
//! and exiting with its status (the work is `ops::run`).

use anyhow::Result;

use crate::cli::args::RunArgs;
use crate::context::Context;
use crate::lease::acquire::Purpose;
use crate::ops::run::{self, LeaseChoice, RunRequest};
use crate::remote::Program;

/// Runs `cbx run`.
pub async fn run(ctx: &Context, args: &RunArgs) -> Result<u8> {
    let program = if args.shell {
        Program::Shell(args.command.join(" "))
    } else {
        Program::Argv(args.command.clone())
    };
    let times = ctx
        .config
        .lease_times(super::warmup::lease_flags(&args.lease), &ctx.env)?;
    let transport = ctx
        .config
        .sync_transport(args.sync_transport.as_deref(), &ctx.env)?
        .val;
    let lease = match &args.id {
        Some(ident) => LeaseChoice::Existing(ident.clone()),
        None => {
            let purpose = if args.keep {
                Purpose::KeptRun
            } else {
                Purpose::OneShotRun
            };
            LeaseChoice::New(super::warmup::acquire_request(ctx, &args.lease, purpose)?)
        }
    };
    let request = RunRequest {
        lease,
        program,
        env: args.env.clone(),
        sync: !args.no_sync,
        resync: args.resync,
        sync_large: args.sync_large,
        transport,
        ready_timeout: times.ready.val,
    };
    run::run(ctx, &request).await
}
