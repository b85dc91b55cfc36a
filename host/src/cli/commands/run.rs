//! `cbx run`: sync the working tree to a sandbox and run a command there, streaming its output
//! and exiting with its status (the work is `ops::run`).

use anyhow::Result;

use crate::cli::args::RunArgs;
use crate::context::Context;
use crate::lease::acquire::Purpose;
use crate::ops::download::{self, Downloads};
use crate::ops::run::{self, LeaseChoice, RunRequest};
use crate::ops::run_report::RunReport;
use crate::progress;
use crate::remote::Program;

/// Runs `cbx run`; writes its report (`--report`, `--json`, the `-v` timings line) however
/// it ends.
pub async fn run(ctx: &Context, args: &RunArgs) -> Result<u8> {
    let mut report = RunReport::default();
    let result = match request(ctx, args) {
        Ok(request) => run::run(ctx, &request, &mut report).await,
        Err(e) => Err(e),
    };
    finish(ctx, args, &mut report, &result);
    result
}

/// Fills in how the run ended and writes the report where asked.
fn finish(ctx: &Context, args: &RunArgs, report: &mut RunReport, result: &Result<u8>) {
    match result {
        Ok(code) => report.exit_code = *code,
        Err(e) => {
            report.exit_code = crate::error::exit_code(e);
            report.error = Some(ctx.redactor.redact(&format!("{e:#}")));
        }
    }
    if ctx.flags.verbose > 0 {
        progress::report(&report.timings.line());
    }
    if args.report.is_none() && !args.json {
        return;
    }
    let json = match serde_json::to_string_pretty(report) {
        Ok(json) => json,
        Err(e) => {
            progress::report(&format!("warning: could not write the run's report: {e}"));
            return;
        }
    };
    if let Some(path) = &args.report {
        let path = ctx.cwd.join(path);
        if let Err(e) = crate::paths::write_private_atomic(&path, format!("{json}\n").as_bytes()) {
            progress::report(&format!(
                "warning: could not write the run's report to {}: {e:#}",
                path.display()
            ));
        }
    }
    if args.json {
        println!("{json}");
    }
}

/// The library's request for `args`.
fn request(ctx: &Context, args: &RunArgs) -> Result<RunRequest> {
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
        keep_on_failure: args.keep_on_failure,
        stdout_to_stderr: args.json,
        downloads: Downloads {
            list: args
                .download
                .iter()
                .map(|d| download::parse(d, &ctx.cwd))
                .collect::<Result<_>>()?,
            required: args.require_download,
            junit: args
                .junit
                .iter()
                .map(|g| crate::transfer::pattern::check(g, false, "--junit"))
                .collect::<Result<_>>()?,
        },
    };
    Ok(request)
}
