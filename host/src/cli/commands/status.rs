//! `cbx status`: one lease with its sandbox's live state.

use anyhow::Result;

use crate::cli::args::StatusArgs;
use crate::cli::output;
use crate::context::Context;
use crate::lease::resolve;
use crate::lease::view::LeaseView;

/// Runs `cbx status`.
pub async fn run(ctx: &Context, args: &StatusArgs) -> Result<u8> {
    let provider = ctx.provider_for(&args.lease)?;
    let mut session = ctx.session(&provider).await?;
    let lease = resolve::resolve(&mut session, &args.lease).await?;
    let view = LeaseView::of(&lease);
    if args.json {
        output::json(&view)?;
    } else {
        print!("{}", output::lease_details(&view));
    }
    Ok(0)
}
