//! `cbx list`: the leases this machine holds with this provider, with their live state; the
//! ones still being created (or whose creation cbx could not finish yet); and damaged state
//! files. `--all` adds every other cbx sandbox of the provider (no claim here: another
//! machine's, or this one's after its state was lost) and sandboxes being deleted, with their
//! owner and age.

use anyhow::Result;

use crate::cli::args::ListArgs;
use crate::cli::output;
use crate::context::Context;
use crate::lease::owner::owner_id;
use crate::lease::resolve;
use crate::lease::view::{LeaseView, Listing};
use crate::provider::api::SandboxState;

/// Runs `cbx list`.
pub async fn run(ctx: &Context, args: &ListArgs) -> Result<u8> {
    let mut session = ctx.session(&ctx.provider_name()).await?;
    let me = owner_id(session.dirs())?;
    let leases = resolve::list(&mut session).await?;
    let views: Vec<LeaseView> = leases
        .iter()
        .filter(|l| args.all || l.sandbox.state != SandboxState::Deleted)
        .map(|l| LeaseView::listed(l, &me))
        .collect();
    let damaged = session.claims().scan()?.damaged;
    let mut listing = Listing::new(views, session.name(), session.intents(), &damaged)?;
    // Without --all: what this machine holds (a claim, or a creation under way).
    let before = listing.leases.len();
    if !args.all {
        listing
            .leases
            .retain(|l| l.claimed || l.unfinished.is_some());
    }
    let hidden = before - listing.leases.len();
    let notes = output::listing_notes(&listing);
    if args.json {
        output::json(&listing.entries())?;
    } else if listing.leases.is_empty() && listing.unfinished.is_empty() {
        eprintln!("no {} leases", session.name());
    } else {
        print!(
            "{}",
            output::lease_table(&listing.leases, &listing.unfinished)
        );
    }
    if hidden > 0 {
        eprintln!(
            "note: {hidden} more cbx sandbox{} of {} without a claim here (another machine's, or \
             lost by this one); `cbx list --all` shows {}, `cbx cleanup` deletes what is expired \
             or orphaned",
            if hidden == 1 { "" } else { "es" },
            session.name(),
            if hidden == 1 { "it" } else { "them" },
        );
    }
    if !args.json {
        for line in notes {
            eprintln!("{}", ctx.redactor.redact(&line));
        }
    }
    Ok(0)
}
