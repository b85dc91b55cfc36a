//! The provider-neutral lease lifecycle.
//!
//! A lease is cbx's handle on one sandbox: an id (`cbx_` + 12 hex), a human slug
//! (`amber-otter`), ownership labels on the sandbox, and a local claim binding lease, sandbox
//! and repository. cbx never touches a sandbox it does not own and holds no exact claim for.
//!
//! - [`Lease`] (here): a lease and its sandbox as last seen.
//! - [`id`]: lease ids and slugs.
//! - [`labels`]: the ownership labels written on sandboxes.
//! - [`owner`]: the owner id of this user on this machine, written on every sandbox.
//! - [`claims`]: local claims (JSON files, 0600, atomic, locked, with generations).
//! - [`intent`]: intents — what cbx is about to create, recorded before it asks.
//! - [`records`]: reading directories of claims and intents, damaged files reported.
//! - [`session`]: a configured provider with the host's retry policy.
//! - [`acquire`]: creating a lease, and cleaning up when that fails.
//! - [`reconcile`]: finishing intents whose process is gone (adopt or delete).
//! - [`ready`]: waiting for a sandbox to be ready; marking a lease as used.
//! - [`resolve`]: finding leases by id or slug, and listing them.
//! - [`release`]: deleting leases, forgetting gone ones, reaping expired ones.
//! - [`stop`]: `cbx stop`, also of a lease whose creation never finished.
//! - [`pause`]: `cbx pause`, stopping a sandbox without deleting it.
//! - [`cleanup`]: `cbx cleanup` and `cbx stop --reclaim`: cbx sandboxes with no claim here.
//! - [`access`]: the SSH access cache (minted access, kept per lease and reused).
//! - [`connect`]: an SSH client that logs in, and the remote work directory.
//! - [`warm`]: the warm path: straight to a live connection, no provider call.
//! - [`view`]: what `status`, `list` and `warmup` report.

pub mod access;
pub mod acquire;
pub mod checkpoint;
pub mod checkpoint_cleanup;
pub mod checkpoint_name;
pub mod checkpoint_settle;
pub mod claims;
pub mod cleanup;
pub mod connect;
pub mod id;
pub mod intent;
pub mod labels;
pub mod owner;
pub mod pause;
pub mod ready;
pub mod reconcile;
pub mod records;
pub mod release;
pub mod resolve;
pub mod session;
pub mod stop;
pub mod view;
pub mod warm;

use anyhow::Result;
use chrono::{DateTime, Utc};

use self::claims::Claim;
use self::labels::Ownership;
use crate::error::{ErrorKind, Failure};
use crate::provider::api;
use crate::terminal::inert;

/// A lease and its sandbox as last seen.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The sandbox.
    pub sandbox: api::Sandbox,
    /// What its labels say.
    pub ownership: Ownership,
    /// This machine's claim, if it holds one.
    pub claim: Option<Claim>,
}

impl Lease {
    /// Whether this machine holds an exact claim on the lease: same lease, same sandbox.
    pub fn exactly_claimed(&self) -> bool {
        self.claim
            .as_ref()
            .is_some_and(|c| c.lease_id == self.ownership.lease && c.sandbox_id == self.sandbox.id)
    }

    /// Fails with exit 4 unless this machine holds an exact claim.
    pub fn require_claim(&self, action: &str) -> Result<&Claim> {
        match &self.claim {
            Some(c) if self.exactly_claimed() => Ok(c),
            Some(c) => Err(Failure::new(
                ErrorKind::NotFound,
                format!(
                    "lease {} is claimed for sandbox {}, but the sandbox carrying its labels is {}; cbx will not {action} a sandbox that does not match its claim exactly",
                    c.lease_id,
                    inert(&c.sandbox_id),
                    inert(&self.sandbox.id)
                ),
            )
            .into()),
            None => Err(Failure::new(
                ErrorKind::NotFound,
                format!(
                    "lease {} (sandbox {}) is owned by cbx, but this machine holds no claim for it; cbx will not {action} it",
                    self.ownership.lease,
                    inert(&self.sandbox.id)
                ),
            )
            .hint(format!(
                "run the command on the machine that created the lease; to delete it from here, \
                 `cbx stop --reclaim {}`",
                self.ownership.lease
            ))
            .into()),
        }
    }
}

/// Current Unix time in seconds.
pub fn now_unix() -> i64 {
    Utc::now().timestamp()
}

/// The latest time cbx writes: 9999-12-31T23:59:59Z, the last one RFC 3339 can say.
pub const LATEST: i64 = 253_402_300_799;

/// Unix seconds as RFC 3339, clamped to 1970…9999 (never wrapping to another date).
pub fn rfc3339(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs.clamp(0, LATEST), 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_never_wrap() {
        assert_eq!(super::rfc3339(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(super::rfc3339(-5), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(86_400), "1970-01-02T00:00:00Z");
    }
}
