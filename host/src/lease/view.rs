//! What cbx reports about a lease, for people and for `--json`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::lease::{Lease, now_unix, rfc3339};
use crate::provider::api::SandboxState;

/// One lease as `status`, `list` and `warmup` report it. Field names are documented in
/// docs/cli.md and stable.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseView {
    /// The lease id.
    pub lease_id: String,
    /// The slug.
    pub slug: String,
    /// The provider.
    pub provider: String,
    /// The provider's sandbox id.
    pub sandbox_id: String,
    /// The provider's sandbox name.
    pub sandbox_name: String,
    /// Normalised state: creating, starting, ready, stopping, stopped, archived, failed,
    /// deleted or unknown.
    pub state: String,
    /// The provider's own word for the state.
    pub provider_state: String,
    /// Whether the sandbox is ready for commands.
    pub ready: bool,
    /// Why the sandbox is in its state, when the provider says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// All labels on the sandbox.
    pub labels: BTreeMap<String, String>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// When the lease expires (RFC 3339).
    pub expires_at: String,
    /// Last time cbx used the lease (RFC 3339): the later of the label written at creation and
    /// this machine's claim.
    pub last_touched_at: String,
    /// Lease lifetime in seconds.
    pub ttl_secs: u64,
    /// Idle timeout in seconds.
    pub idle_timeout_secs: u64,
    /// Whether the lease is past its expiry.
    pub expired: bool,
    /// Work root on the sandbox.
    pub work_root: String,
    /// Whether this machine holds an exact claim on the lease.
    pub claimed: bool,
    /// The repository the claim binds, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo_root: Option<String>,
}

impl LeaseView {
    /// The view of `lease`, with the sandbox's live state.
    pub fn of(lease: &Lease) -> LeaseView {
        let o = &lease.ownership;
        LeaseView {
            lease_id: o.lease.to_string(),
            slug: o.slug.clone(),
            provider: o.provider.clone(),
            sandbox_id: lease.sandbox.id.clone(),
            sandbox_name: lease.sandbox.name.clone(),
            state: lease.sandbox.state.to_string(),
            provider_state: lease.sandbox.provider_state.clone(),
            ready: lease.sandbox.state == SandboxState::Ready,
            reason: lease.sandbox.reason.clone(),
            labels: lease.sandbox.labels.iter().cloned().collect(),
            created_at: rfc3339(o.created_at),
            expires_at: rfc3339(o.expires_at()),
            last_touched_at: lease
                .claim
                .as_ref()
                .map(|c| c.last_used_at.clone())
                .filter(|t| t.as_str() > rfc3339(o.touched_at).as_str())
                .unwrap_or_else(|| rfc3339(o.touched_at)),
            ttl_secs: o.ttl_secs,
            idle_timeout_secs: o.idle_secs,
            expired: o.expires_at() <= now_unix(),
            work_root: o.work_root.clone(),
            claimed: lease.exactly_claimed(),
            repo_root: lease.claim.as_ref().and_then(|c| c.repo_root.clone()),
        }
    }
}
