//! `cbx doctor`: check configuration, the provider, its grant and credentials, and the service
//! — and with `--lease`, a live lease's SSH and tools — without changing anything (the checks
//! are `ops::doctor`).

use anyhow::Result;

use crate::cli::args::DoctorArgs;
use crate::cli::output;
use crate::context::Context;
use crate::ops::doctor;

/// Runs `cbx doctor`.
pub async fn run(ctx: &Context, args: &DoctorArgs) -> Result<u8> {
    let report = doctor::run(ctx, args.lease.as_deref()).await;
    if args.json {
        output::json(&report)?;
    } else {
        let rows: Vec<[String; 3]> = report
            .checks
            .iter()
            .map(|c| {
                [
                    c.status.as_str().to_string(),
                    c.name.clone(),
                    c.detail.clone(),
                ]
            })
            .collect();
        print!("{}", ctx.redactor.redact(&output::table(&rows)));
        if report.exit != 0 {
            eprintln!("doctor found problems with provider {}", report.provider);
        }
    }
    Ok(report.exit)
}
