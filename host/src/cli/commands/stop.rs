//! `cbx stop`: delete a lease's sandbox (only with an exact local claim) and forget the lease.

use std::time::Duration;

use anyhow::Result;

use crate::cli::args::StopArgs;
use crate::context::Context;
use crate::lease::stop;
use crate::terminal::inert;

/// How long `cbx stop` waits for the provider to report the sandbox gone.
const WAIT_GONE: Duration = Duration::from_secs(60);

/// Runs `cbx stop`.
pub async fn run(ctx: &Context, args: &StopArgs) -> Result<u8> {
    let provider = ctx.provider_for(&args.lease)?;
    let mut session = ctx.session(&provider).await?;
    let stopped = stop::stop(&mut session, &args.lease, WAIT_GONE).await?;
    if args.json {
        let json = serde_json::json!({
            "leaseId": stopped.lease.to_string(),
            "slug": stopped.slug,
            "sandboxId": stopped.sandbox,
            "alreadyGone": stopped.already_gone,
        });
        println!("{json}");
        return Ok(0);
    }
    let line = format!(
        "released {} slug={} sandbox={}{}",
        stopped.lease,
        stopped.slug,
        stopped.sandbox,
        if stopped.already_gone {
            " (it was already gone)"
        } else {
            ""
        }
    );
    println!("{}", inert(&line));
    Ok(0)
}
