//! `cbx providers test`: run a provider — installed, built in, or a component file not
//! installed — through the whole lease lifecycle against whatever service its endpoint points
//! at and report each step of the contract (the suite is `ops::conformance`).

use std::io::IsTerminal;

use anyhow::Result;

use crate::cli::args::TestArgs;
use crate::cli::output;
use crate::config::{READY_RANGE, parse_duration_in};
use crate::context::Context;
use crate::error::{ErrorKind, fail};
use crate::ops::conformance::{self, StepResult, Subject};
use crate::provider::install::{self, InstallRequest};
use crate::terminal::inert;

/// Runs `cbx providers test`.
pub async fn run(ctx: &Context, args: &TestArgs) -> Result<u8> {
    let timeout = parse_duration_in(&args.timeout, "--timeout", READY_RANGE)?;
    let subject = match &args.component {
        Some(component) => Subject::File(Box::new(
            from_file(ctx, component, args.manifest.as_deref()).await?,
        )),
        None => Subject::Named(ctx.provider_name()),
    };
    let json = args.json;
    let report = conformance::run(ctx, subject, timeout, &|s| {
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
            report.provider,
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

/// The package of a component file and its manifest, after showing (on stderr) what it asks
/// for — the install screen, read-only: nothing is installed or approved.
async fn from_file(
    ctx: &Context,
    component: &std::path::Path,
    manifest: Option<&std::path::Path>,
) -> Result<crate::provider::registry::ProviderPackage> {
    if ctx.flags.provider.is_some() {
        return Err(fail(
            ErrorKind::Usage,
            "give either --provider NAME (a provider cbx knows) or --component FILE, not both",
        ));
    }
    let request = InstallRequest {
        source: component.display().to_string(),
        manifest: manifest.map(|m| m.display().to_string()),
        sha256: None,
    };
    let candidate = install::prepare(&ctx.runtime(), &request, &ctx.cwd).await?;
    if !ctx.flags.quiet {
        let colour = std::io::stderr().is_terminal() && ctx.var("NO_COLOR").is_none();
        eprint!(
            "{}",
            candidate.screen(&ctx.dirs.installed_providers(), colour)?
        );
        eprintln!(
            "Testing {} {} from this file under the grant above: nothing is installed and no approval is recorded.\n",
            candidate.name(),
            candidate.version()
        );
    }
    candidate.package()
}
