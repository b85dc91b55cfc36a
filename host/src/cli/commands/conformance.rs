//! `cbx providers test`: run a provider through the whole lease lifecycle against whatever
//! service its endpoint points at and report each step of the contract (the suite is
//! `ops::conformance`).

use anyhow::Result;

use crate::cli::output;
use crate::config::{READY_RANGE, parse_duration_in};
use crate::context::Context;
use crate::error::ErrorKind;
use crate::ops::conformance::{self, StepResult};
use crate::terminal::inert;

/// Runs `cbx providers test NAME`.
pub async fn run(ctx: &Context, name: &str, timeout: &str, json: bool) -> Result<u8> {
    let timeout = parse_duration_in(timeout, "--timeout", READY_RANGE)?;
    let report = conformance::run(ctx, name, timeout, &|s| {
        if !json {
            let line = format!("{:<5} {:<16} {}", s.result.as_str(), s.step, s.detail);
            eprintln!("{}", inert(&line));
        }
    })
    .await;
    if json {
        output::json(&report)?;
    } else {
        let count = |r: StepResult| report.steps.iter().filter(|s| s.result == r).count();
        println!(
            "{}: {} ({} steps, {} failed, {} warnings)",
            name,
            if report.passed {
                "conforms"
            } else {
                "does NOT conform"
            },
            report.steps.len(),
            count(StepResult::Fail),
            count(StepResult::Warn)
        );
    }
    Ok(if report.passed {
        0
    } else {
        ErrorKind::Provider.exit_code()
    })
}
