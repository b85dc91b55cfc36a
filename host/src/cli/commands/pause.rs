//! `cbx pause`: stop a lease's sandbox without deleting it (only with an exact local claim).

use std::time::Duration;

use anyhow::Result;

use crate::cli::args::PauseArgs;
use crate::context::Context;
use crate::lease::pause;
use crate::terminal::inert;

/// How long `cbx pause` waits for the provider to report the sandbox stopped.
const WAIT_STOPPED: Duration = Duration::from_secs(60);

/// Runs `cbx pause`.
pub async fn run(ctx: &Context, args: &PauseArgs) -> Result<u8> {
    let provider = ctx.provider_for(&args.lease)?;
    let mut session = ctx.session(&provider).await?;
    let paused = pause::pause(&mut session, &args.lease, WAIT_STOPPED).await?;
    if args.json {
        let json = serde_json::json!({
            "leaseId": paused.lease.to_string(),
            "slug": paused.slug,
            "sandboxId": paused.sandbox,
            "state": paused.state,
            "alreadyStopped": paused.already,
        });
        println!("{json}");
        return Ok(0);
    }
    let line = format!(
        "paused {} slug={} sandbox={} state={}{}",
        paused.lease,
        paused.slug,
        paused.sandbox,
        paused.state,
        if paused.already {
            " (it was already stopped)"
        } else {
            ""
        }
    );
    println!("{}", inert(&line));
    Ok(0)
}
