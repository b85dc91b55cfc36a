//! What cbx reports about a lease, for people and for `--json` — and, in `list`, about leases
//! not made yet (unfinished intents) and damaged state files.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::lease::intent::{Intent, Intents, LeasePlan};
use crate::lease::records::DamagedFile;
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
    /// The command still creating the lease (or whose creation cbx could not finish yet), if
    /// any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unfinished: Option<UnfinishedView>,
    /// Who created it, in `list`: `this-machine` (this user here), `another` (another
    /// machine or user, or this one before its state was lost) or `unknown` (no owner label).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Seconds since it was created, in `list`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_secs: Option<u64>,
}

/// Who created a lease, as `list` and `cleanup` say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OwnerKind {
    /// This user on this machine (the owner label is this machine's owner id).
    ThisMachine,
    /// Another machine or user (another owner id).
    Another,
    /// No owner label: made by a cbx before owner labels.
    Unknown,
}

impl OwnerKind {
    /// The owner of `lease`, compared with this machine's owner id `me`.
    pub fn of(lease: &Lease, me: &str) -> OwnerKind {
        OwnerKind::of_id(lease.ownership.owner.as_deref(), me)
    }

    /// The owner of something labelled (or named) with owner id `owner`, compared with `me`.
    pub fn of_id(owner: Option<&str>, me: &str) -> OwnerKind {
        match owner {
            Some(o) if o == me => OwnerKind::ThisMachine,
            Some(_) => OwnerKind::Another,
            None => OwnerKind::Unknown,
        }
    }

    /// `this-machine`, `another` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerKind::ThisMachine => "this-machine",
            OwnerKind::Another => "another",
            OwnerKind::Unknown => "unknown",
        }
    }
}

/// Seconds since `lease` was created (0 for a creation time in the future).
pub fn age_secs(lease: &Lease) -> u64 {
    now_unix().saturating_sub(lease.ownership.created_at).max(0) as u64
}

/// An unfinished creation: an intent (see `lease::intent`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnfinishedView {
    /// The command that recorded it: `warmup`, `run`, `run --keep`.
    pub command: String,
    /// That command's process id.
    pub pid: u32,
    /// Whether that process is still running (else the next cbx command finishes it).
    pub running: bool,
    /// When it was recorded (RFC 3339).
    pub since: String,
    /// What happens if its process is gone: `adopt` (keep the sandbox as the lease, if
    /// healthy) or `delete`.
    pub then: String,
    /// The intent file.
    pub file: String,
}

impl UnfinishedView {
    /// The view of `intent`, whose owner is `running` or not.
    pub fn of(intent: &Intent, running: bool, file: &Path) -> UnfinishedView {
        UnfinishedView {
            command: intent.command.clone(),
            pid: intent.owner.pid,
            running,
            since: intent.recorded_at.clone(),
            then: intent.settle.as_str().to_string(),
            file: file.display().to_string(),
        }
    }
}

/// A lease that exists only as an intent so far: `list` shows it with state `unfinished`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IntentView {
    /// The lease id.
    pub lease_id: String,
    /// The slug.
    pub slug: String,
    /// The provider.
    pub provider: String,
    /// The provider's sandbox id, once known.
    pub sandbox_id: Option<String>,
    /// The name cbx asked the provider for.
    pub sandbox_name: String,
    /// Always `unfinished`.
    pub state: &'static str,
    /// What is unfinished.
    pub unfinished: UnfinishedView,
}

impl IntentView {
    /// The view of `intent`.
    pub fn of(intent: &Intent, plan: &LeasePlan, unfinished: UnfinishedView) -> IntentView {
        IntentView {
            lease_id: plan.lease_id.to_string(),
            slug: plan.slug.clone(),
            provider: intent.provider.clone(),
            sandbox_id: intent.object_id.clone(),
            sandbox_name: intent.name.clone(),
            state: "unfinished",
            unfinished,
        }
    }
}

/// A claim or intent file cbx cannot read: `list` shows it with state `damaged`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DamagedView {
    /// The lease its file name names, if it names one.
    pub lease_id: Option<String>,
    /// Always `damaged`.
    pub state: &'static str,
    /// What is damaged.
    pub damaged: DamagedDetail,
}

/// The damaged file, why, and what to do.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DamagedDetail {
    /// `claim` or `intent`.
    pub record: String,
    /// The file.
    pub file: String,
    /// Why it cannot be read.
    pub error: String,
    /// What to do (never "delete it": it may be the only record of a live sandbox).
    pub hint: String,
}

impl DamagedView {
    /// The view of `file`.
    pub fn of(file: &DamagedFile) -> DamagedView {
        DamagedView {
            lease_id: file.lease.as_ref().map(|l| l.to_string()),
            state: "damaged",
            damaged: DamagedDetail {
                record: file.record.to_string(),
                file: file.path.display().to_string(),
                error: file.error.clone(),
                hint: file.hint(),
            },
        }
    }
}

/// One element of `list --json`: a lease, an unfinished creation or a damaged file. All have
/// `state`; leases and unfinished creations have `leaseId`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ListEntry {
    /// A lease.
    Lease(Box<LeaseView>),
    /// A lease not made yet.
    Unfinished(IntentView),
    /// A file cbx cannot read.
    Damaged(DamagedView),
}

/// What `list` shows.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The leases (with their unfinished creation attached, if any).
    pub leases: Vec<LeaseView>,
    /// Creations with no lease to show yet.
    pub unfinished: Vec<IntentView>,
    /// Damaged claim and intent files.
    pub damaged: Vec<DamagedView>,
}

impl Listing {
    /// `leases`, with the intents of `provider` in `intents` attached or added, and the
    /// damaged files.
    pub fn new(
        leases: Vec<LeaseView>,
        provider: &str,
        intents: &Intents,
        damaged: &[DamagedFile],
    ) -> Result<Listing> {
        let mut listing = Listing {
            leases,
            unfinished: Vec::new(),
            damaged: damaged.iter().map(DamagedView::of).collect(),
        };
        let (all, damaged_intents) = intents.scan()?;
        listing
            .damaged
            .extend(damaged_intents.iter().map(DamagedView::of));
        for intent in all.iter().filter(|i| i.provider == provider) {
            // Unfinished checkpoints are `cbx checkpoint list`'s.
            let Some(plan) = intent.lease() else {
                continue;
            };
            let view = UnfinishedView::of(
                intent,
                intents.owner_alive(&intent.id),
                &intents.json(&intent.id),
            );
            let lease = plan.lease_id.to_string();
            match listing.leases.iter_mut().find(|l| l.lease_id == lease) {
                Some(l) => l.unfinished = Some(view),
                None => listing.unfinished.push(IntentView::of(intent, plan, view)),
            }
        }
        Ok(listing)
    }

    /// Every entry, for `--json`: leases, then unfinished creations, then damaged files.
    pub fn entries(self) -> Vec<ListEntry> {
        let mut out: Vec<ListEntry> = self
            .leases
            .into_iter()
            .map(|l| ListEntry::Lease(Box::new(l)))
            .collect();
        out.extend(self.unfinished.into_iter().map(ListEntry::Unfinished));
        out.extend(self.damaged.into_iter().map(ListEntry::Damaged));
        out
    }
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
            unfinished: None,
            owner: None,
            age_secs: None,
        }
    }

    /// The view `list` shows: with the owner (against this machine's owner id `me`) and age.
    pub fn listed(lease: &Lease, me: &str) -> LeaseView {
        LeaseView {
            owner: Some(OwnerKind::of(lease, me).as_str().to_string()),
            age_secs: Some(age_secs(lease)),
            ..LeaseView::of(lease)
        }
    }
}
