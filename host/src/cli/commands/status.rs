//! `cbx status`: one lease with its sandbox's live state.

use anyhow::Result;

use crate::cli::Context;
use crate::cli::args::StatusArgs;
use crate::cli::output;
use crate::lease::lifecycle;
use crate::lease::view::LeaseView;

/// Runs `cbx status`.
pub async fn run(ctx: &Context, args: &StatusArgs) -> Result<u8> {
    let provider = super::provider_for(ctx, &args.lease)?;
    let mut session = ctx.session(&provider).await?;
    let lease = lifecycle::resolve(&mut session, &args.lease).await?;
    let view = LeaseView::of(&lease);
    if args.json {
        output::json(&view)?;
    } else {
        print!("{}", output::lease_details(&view));
    }
    Ok(0)
}
