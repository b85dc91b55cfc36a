//! `cbx stop`: delete a lease's sandbox (only with an exact local claim) and forget the lease.

use anyhow::Result;

use crate::cli::Context;
use crate::cli::args::StopArgs;
use crate::error::{ErrorKind, failure};
use crate::lease::id::{LeaseId, normalize_slug};
use crate::lease::lifecycle::{self, Released};

/// Runs `cbx stop`.
pub async fn run(ctx: &Context, args: &StopArgs) -> Result<u8> {
    let provider = super::provider_for(ctx, &args.lease)?;
    let mut session = ctx.session(&provider).await?;
    let lease = match lifecycle::resolve(&mut session, &args.lease).await {
        Ok(lease) => lease,
        Err(e) if failure(&e).is_some_and(|f| f.kind == ErrorKind::NotFound) => {
            // A claim whose sandbox is gone: confirm with the provider, then drop the claim.
            let wanted = LeaseId::parse(&args.lease);
            let slug = normalize_slug(&args.lease);
            let claim = session.claims.all()?.into_iter().find(|c| {
                c.provider == session.name()
                    && (Some(&c.lease_id) == wanted.as_ref() || c.slug == slug)
            });
            if let Some(claim) = claim
                && lifecycle::forget_if_gone(&mut session, &claim).await?
            {
                println!(
                    "released {} slug={} sandbox={} (it was already gone)",
                    claim.lease_id, claim.slug, claim.sandbox_id
                );
                return Ok(0);
            }
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let released =
        lifecycle::release(&mut session, &lease, std::time::Duration::from_secs(60)).await?;
    println!(
        "released {} slug={} sandbox={}{}",
        lease.ownership.lease,
        lease.ownership.slug,
        lease.sandbox.id,
        if released == Released::AlreadyGone {
            " (it was already gone)"
        } else {
            ""
        }
    );
    Ok(0)
}
