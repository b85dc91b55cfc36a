//! `cbx list`: the leases cbx owns with this provider, with their live state.

use anyhow::Result;

use crate::cli::Context;
use crate::cli::args::ListArgs;
use crate::cli::output;
use crate::lease::labels::Ownership;
use crate::lease::lifecycle::Lease;
use crate::lease::view::LeaseView;
use crate::provider::CallError;
use crate::provider::api::{ProviderError, SandboxState};

/// Runs `cbx list`.
pub async fn run(ctx: &Context, args: &ListArgs) -> Result<u8> {
    let mut session = ctx.session(&ctx.provider_name()).await?;
    let owned = session.list_owned().await.map_err(|e| session.failure(e))?;
    let claims: Vec<_> = session
        .claims
        .all()?
        .into_iter()
        .filter(|c| c.provider == session.name())
        .collect();
    let mut leases: Vec<Lease> = owned
        .into_iter()
        .map(|(sandbox, ownership)| Lease {
            claim: claims
                .iter()
                .find(|c| c.lease_id == ownership.lease)
                .cloned(),
            sandbox,
            ownership,
        })
        .collect();
    // A service's list can lag behind a fresh create; claimed leases missing from it are read
    // directly so they still show.
    for claim in &claims {
        if leases.iter().any(|l| l.ownership.lease == claim.lease_id) {
            continue;
        }
        match session.get(&claim.sandbox_id).await {
            Ok(sandbox) => {
                if let Some(ownership) = Ownership::from_labels(&sandbox.labels, session.name())
                    .filter(|o| o.lease == claim.lease_id)
                {
                    leases.push(Lease {
                        sandbox,
                        ownership,
                        claim: Some(claim.clone()),
                    });
                }
            }
            Err(CallError::Provider(ProviderError::NotFound(_))) => {
                eprintln!(
                    "note: lease {} ({}) is claimed here but its sandbox {} is gone; `cbx stop {}` removes the claim",
                    claim.lease_id, claim.slug, claim.sandbox_id, claim.lease_id
                );
            }
            Err(e) => return Err(session.failure(e)),
        }
    }
    leases.sort_by(|a, b| {
        a.ownership
            .created_at
            .cmp(&b.ownership.created_at)
            .then(a.ownership.lease.cmp(&b.ownership.lease))
    });
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
