//! `cbx warmup`: lease a new sandbox and wait until it is ready.

use anyhow::Result;

use crate::cli::args::{LeaseArgs, WarmupArgs};
use crate::cli::output;
use crate::config::LeaseFlags;
use crate::context::Context;
use crate::lease::acquire::{AcquireRequest, Purpose, Source, acquire};
use crate::lease::checkpoint;
use crate::lease::view::LeaseView;
use crate::terminal::inert;

/// Runs `cbx warmup`.
pub async fn run(ctx: &Context, args: &WarmupArgs) -> Result<u8> {
    // Every setting is checked before anything is asked of the provider.
    let request = acquire_request(ctx, &args.lease, Purpose::Warmup)?;
    let mut session = ctx.session(&ctx.provider_name()).await?;
    let acquired = acquire(&mut session, &request).await?;
    let view = LeaseView::of(&acquired.lease);
    if args.json {
        output::json(&view)?;
    } else {
        let line = format!(
            "leased {} slug={} provider={} sandbox={}",
            view.lease_id, view.slug, view.provider, view.sandbox_id
        );
        println!("{}", inert(&line));
    }
    Ok(0)
}

/// The lease flags as the configuration reads them.
pub fn lease_flags(args: &LeaseArgs) -> LeaseFlags<'_> {
    LeaseFlags {
        ttl: args.ttl.as_deref(),
        idle: args.idle_timeout.as_deref(),
        ready: args.ready_timeout.as_deref(),
    }
}

/// The acquire request from lease flags, environment and config, for `purpose`.
pub fn acquire_request(
    ctx: &Context,
    args: &LeaseArgs,
    purpose: Purpose,
) -> Result<AcquireRequest> {
    let times = ctx.config.lease_times(lease_flags(args), &ctx.env)?;
    Ok(AcquireRequest {
        slug: args.slug.clone(),
        ttl: times.ttl.val,
        idle: times.idle.val,
        repo_root: ctx.repo_root().map(std::path::PathBuf::from),
        ready_timeout: times.ready.val,
        purpose,
        source: match (&args.from, &args.fork) {
            (Some(name), _) => Source::Checkpoint(checkpoint::user_name(name)?),
            (_, Some(lease)) => Source::Fork(lease.clone()),
            _ => Source::Fresh,
        },
    })
}
