//! `cbx stop`: delete a lease's sandbox (only with an exact local claim) and forget the lease;
//! with `--reclaim`, adopt and delete a cbx sandbox this machine holds no claim for.

use std::time::Duration;

use anyhow::Result;

use crate::cli::args::StopArgs;
use crate::cli::output;
use crate::context::Context;
use crate::lease::stop;
use crate::terminal::inert;

/// How long `cbx stop` waits for the provider to report the sandbox gone.
const WAIT_GONE: Duration = Duration::from_secs(60);

/// Runs `cbx stop`.
pub async fn run(ctx: &Context, args: &StopArgs) -> Result<u8> {
    let provider = ctx.provider_for(&args.lease)?;
    let mut session = ctx.session(&provider).await?;
    let stopped = if args.reclaim {
        stop::reclaim(&mut session, &args.lease, WAIT_GONE).await?
    } else {
        stop::stop(&mut session, &args.lease, WAIT_GONE).await?
    };
    if args.json {
        output::json(&stopped)?;
        return Ok(0);
    }
    let line = format!(
        "{} {} slug={} sandbox={}{}{}",
        if stopped.reclaimed_from.is_some() {
            "reclaimed and deleted"
        } else {
            "released"
        },
        stopped.lease,
        stopped.slug,
        stopped.sandbox,
        match stopped.reclaimed_from {
            Some("this-machine") => " (made by this machine)",
            Some("another") => " (made by another machine)",
            Some(_) => " (made by an unknown owner)",
            None => "",
        },
        if stopped.already_gone {
            " (it was already gone)"
        } else {
            ""
        }
    );
    println!("{}", inert(&line));
    Ok(0)
}
