//! `cbx warmup`: lease a new sandbox and wait until it is ready.

use anyhow::Result;

use crate::cli::args::{LeaseArgs, WarmupArgs};
use crate::cli::output;
use crate::config::parse_duration;
use crate::context::Context;
use crate::lease::acquire::{AcquireRequest, acquire};
use crate::lease::view::LeaseView;
use crate::terminal::inert;

/// Runs `cbx warmup`.
pub async fn run(ctx: &Context, args: &WarmupArgs) -> Result<u8> {
    let mut session = ctx.session(&ctx.provider_name()).await?;
    let request = acquire_request(ctx, &args.lease)?;
    let lease = acquire(&mut session, &request).await?;
    let view = LeaseView::of(&lease);
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

/// The acquire request from lease flags, environment and config.
pub fn acquire_request(ctx: &Context, args: &LeaseArgs) -> Result<AcquireRequest> {
    let (ttl, idle) =
        ctx.config
            .lease_times(args.ttl.as_deref(), args.idle_timeout.as_deref(), &ctx.env)?;
    if ttl.val.as_secs() < 60 {
        return Err(crate::error::fail(
            crate::error::ErrorKind::Usage,
            "the lease TTL must be at least 1 minute",
        ));
    }
    Ok(AcquireRequest {
        slug: args.slug.clone(),
        ttl: ttl.val,
        idle: idle.val,
        repo_root: ctx.repo_root().map(std::path::PathBuf::from),
        ready_timeout: parse_duration(&args.ready_timeout, "--ready-timeout")?,
    })
}
