//! `cbx list`: the leases cbx owns with this provider, with their live state.

use anyhow::Result;

use crate::cli::args::ListArgs;
use crate::cli::output;
use crate::context::Context;
use crate::lease::resolve;
use crate::lease::view::LeaseView;
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
    if args.json {
        output::json(&views)?;
    } else if views.is_empty() {
        eprintln!("no {} leases", session.name());
    } else {
        print!("{}", output::lease_table(&views));
    }
    Ok(0)
}
