//! `cbx list`: the leases cbx owns with this provider, with their live state; the ones still
//! being created (or whose creation cbx could not finish yet); and damaged state files.

use anyhow::Result;

use crate::cli::args::ListArgs;
use crate::cli::output;
use crate::context::Context;
use crate::lease::resolve;
use crate::lease::view::{LeaseView, Listing};
use crate::provider::api::SandboxState;

/// Runs `cbx list`.
pub async fn run(ctx: &Context, args: &ListArgs) -> Result<u8> {
    let mut session = ctx.session(&ctx.provider_name()).await?;
    let leases = resolve::list(&mut session).await?;
    let views: Vec<LeaseView> = leases
        .iter()
        .filter(|l| args.all || l.sandbox.state != SandboxState::Deleted)
        .map(LeaseView::of)
        .collect();
    let damaged = session.claims().scan()?.damaged;
    let listing = Listing::new(views, session.name(), session.intents(), &damaged)?;
    if args.json {
        output::json(&listing.entries())?;
        return Ok(0);
    }
    if listing.leases.is_empty() && listing.unfinished.is_empty() {
        eprintln!("no {} leases", session.name());
    } else {
        print!(
            "{}",
            output::lease_table(&listing.leases, &listing.unfinished)
        );
    }
    for line in output::listing_notes(&listing) {
        eprintln!("{}", ctx.redactor.redact(&line));
    }
    Ok(0)
}
