//! Sandboxes, SSH tokens and their transitions. Transitions are stored as (stored state,
//! desired state, pending step) and applied lazily by [`Store::tick`]; the API reports the
//! derived state as Daytona does.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// Formats a timestamp the way Daytona does (`2026-06-23T12:00:00.000Z`).
pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Stored states that mean failure; the user must delete (or recover).
pub(crate) fn is_error_state(state: &str) -> bool {
    state == "error" || state == "build_failed"
}

/// An SSH-side effect to run once the state lock is released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SshEvent {
    /// `access_revoked(token)`.
    Revoked(String),
    /// `sandbox_deleted(id)`.
    Deleted(String),
    /// `sandbox_running(id, running)`: the stored state became, or stopped being, `started`.
    Running(String, bool),
}

/// A scheduled move of the stored state.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub to: String,
    pub due: Instant,
}

/// One sandbox as the simulator stores it.
#[derive(Debug, Clone)]
pub(crate) struct Sandbox {
    pub id: String,
    pub seq: u64,
    pub name: String,
    pub snapshot: Option<String>,
    pub user: String,
    pub env: Map<String, Value>,
    pub labels: BTreeMap<String, String>,
    pub public: bool,
    pub target: String,
    pub cpu: u64,
    pub gpu: u64,
    pub memory: u64,
    pub disk: u64,
    pub state: String,
    pub desired_state: String,
    pub error_reason: Option<String>,
    /// The `errorReason` the next `/start` fails with ([`crate::DaytonaSim::fail_next_start`]).
    pub fails_to_start: Option<String>,
    pub pending: Option<Pending>,
    pub auto_stop_interval: i64,
    pub auto_archive_interval: i64,
    pub auto_delete_interval: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
    pub listed_from: Instant,
    /// `container` (cannot fork), `linux-vm` or `windows`.
    pub class: String,
    /// The sandbox this one was forked from.
    pub parent: Option<String>,
}

impl Sandbox {
    /// The state Daytona reports (§3.3); `for_list` adds the list-only `restoring` rule.
    pub fn derived_state(&self, for_list: bool) -> &str {
        let (s, d) = (self.state.as_str(), self.desired_state.as_str());
        if s == d || is_error_state(s) {
            return s;
        }
        match (s, d) {
            // Only a started or stopped sandbox shows `destroying` (addendum §9); an archived,
            // paused or building one keeps its own word until it is gone.
            ("started" | "stopped", "destroyed") => "destroying",
            ("started", "stopped") => "stopping",
            ("stopped", "started") => "starting",
            ("stopped", "archived") => "archiving",
            ("unknown", "started") => "creating",
            ("archived", "started") if for_list => "restoring",
            _ => s,
        }
    }

    /// Whether a state change is under way (lifecycle calls then get 409).
    pub fn in_transition(&self) -> bool {
        self.pending.is_some() || self.state != self.desired_state
    }

    /// Hidden like Daytona hides errored sandboxes that are being deleted (404, not listed).
    pub fn hidden(&self) -> bool {
        is_error_state(&self.state) && self.desired_state == "destroyed"
    }

    /// Sets the desired state and schedules the stored state to become `to` after `delay`.
    pub fn begin(&mut self, desired: &str, to: &str, delay: Duration) {
        let now = Instant::now();
        self.desired_state = desired.to_string();
        self.pending = Some(Pending {
            to: to.to_string(),
            due: now + delay,
        });
        self.updated_at = Utc::now();
    }

    /// Soft delete: desired `destroyed`, renamed `DESTROYED_<name>_<ms>`, gone after `delay`.
    pub fn begin_destroy(&mut self, delay: Duration) {
        self.name = format!("DESTROYED_{}_{}", self.name, Utc::now().timestamp_millis());
        self.begin("destroyed", "destroyed", delay);
    }

    /// The Sandbox JSON object (§3.1); list items omit `env` and the network/volume fields.
    pub fn to_json(&self, ctx: &JsonCtx, for_list: bool) -> Value {
        let mut v = json!({
            "id": self.id,
            "organizationId": ctx.organization_id,
            "name": self.name,
            "snapshot": self.snapshot,
            "user": self.user,
            "labels": self.labels,
            "public": self.public,
            "target": self.target,
            "cpu": self.cpu,
            "gpu": self.gpu,
            "memory": self.memory,
            "disk": self.disk,
            "state": self.derived_state(for_list),
            "desiredState": self.desired_state,
            "errorReason": self.error_reason,
            "recoverable": false,
            "backupState": "None",
            "autoStopInterval": self.auto_stop_interval,
            "autoArchiveInterval": self.auto_archive_interval,
            "autoDeleteInterval": self.auto_delete_interval,
            "createdAt": rfc3339(self.created_at),
            "updatedAt": rfc3339(self.updated_at),
            "lastActivityAt": rfc3339(self.last_activity_at),
            "sandboxClass": self.class,
            "runnerId": "sim-runner",
            "toolboxProxyUrl": ctx.toolbox_proxy_url,
        });
        if !for_list {
            let obj = v.as_object_mut().expect("object");
            obj.insert("env".into(), Value::Object(self.env.clone()));
            obj.insert("networkBlockAll".into(), Value::Bool(false));
            obj.insert("volumes".into(), json!([]));
        }
        v
    }
}

/// Values shared by every rendered Sandbox object.
#[derive(Debug, Clone)]
pub(crate) struct JsonCtx {
    pub organization_id: String,
    pub toolbox_proxy_url: String,
}

/// One SSH access token.
#[derive(Debug, Clone)]
pub(crate) struct SshToken {
    pub id: String,
    pub sandbox_id: String,
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub expired: bool,
}

impl SshToken {
    /// The `SshAccessDto` JSON.
    pub fn to_json(&self, ssh_command: &str) -> Value {
        json!({
            "id": self.id,
            "sandboxId": self.sandbox_id,
            "token": self.token,
            "expiresAt": rfc3339(self.expires_at),
            "createdAt": rfc3339(self.created_at),
            "updatedAt": rfc3339(self.created_at),
            "sshCommand": ssh_command,
        })
    }
}

/// A snapshot of one sandbox for tests and the `/_sim/sandboxes` control route.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SandboxView {
    /// Sandbox UUID.
    pub id: String,
    /// Current name (`DESTROYED_…` once deleted).
    pub name: String,
    /// Derived state, as `GET /sandbox/{id}` reports it.
    pub state: String,
    /// Stored state (what Daytona's `states` filter compares against).
    pub stored_state: String,
    /// Desired state.
    pub desired_state: String,
    /// Error reason, if any.
    pub error_reason: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Auto-stop interval in minutes.
    pub auto_stop_interval: i64,
    /// Auto-archive interval in minutes.
    pub auto_archive_interval: i64,
    /// Auto-delete interval in minutes.
    pub auto_delete_interval: i64,
    /// Snapshot name (`None` for build-info sandboxes).
    pub snapshot: Option<String>,
    /// Region.
    pub target: String,
    /// OS user.
    pub user: String,
    /// Number of live (unexpired, unrevoked) SSH tokens.
    pub ssh_tokens: usize,
    /// Whether a state change is pending or stuck (lifecycle calls get 409).
    pub in_transition: bool,
    /// Whether `GET /sandbox` shows it yet (see `list_lag`).
    pub listed: bool,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last recorded activity.
    pub last_activity_at: String,
}

/// A snapshot of one SSH token for tests.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SshTokenView {
    /// Token (also the SSH user name).
    pub token: String,
    /// Sandbox it grants access to.
    pub sandbox_id: String,
    /// RFC 3339 expiry.
    pub expires_at: String,
    /// Whether it expired (revoked tokens are removed instead).
    pub expired: bool,
}

/// All mutable simulator state, behind one lock.
#[derive(Debug, Default)]
pub(crate) struct Store {
    pub sandboxes: Vec<Sandbox>,
    pub tokens: Vec<SshToken>,
    /// Every token ever minted, revoked ones included, in order.
    pub minted: Vec<String>,
    pub next_seq: u64,
    /// SSH events produced under the lock, dispatched after it is released.
    pub outbox: Vec<SshEvent>,
    /// Snapshots made from sandboxes (the configured base snapshots are not listed here).
    pub snapshots: Vec<Snapshot>,
}

/// A snapshot made from a sandbox (`POST /sandbox/{id}/snapshot`).
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub id: String,
    pub name: String,
    /// `active`, or `removing` once deleted.
    pub state: String,
    /// When it becomes visible: when its sandbox leaves `snapshotting`. Until then it does
    /// not exist for the API (Daytona inserts the row on completion).
    pub visible_from: Instant,
    /// When a deleted snapshot is gone for good.
    pub gone_at: Option<Instant>,
    pub class: String,
    pub created_at: DateTime<Utc>,
}

impl Snapshot {
    /// The SnapshotDto JSON.
    pub fn to_json(&self, organization_id: &str) -> Value {
        json!({
            "id": self.id,
            "organizationId": organization_id,
            "general": false,
            "name": self.name,
            "imageName": null,
            "state": self.state,
            "size": 1.0,
            "entrypoint": null,
            "cpu": 1, "gpu": 0, "mem": 1, "disk": 3,
            "errorReason": null,
            "createdAt": rfc3339(self.created_at),
            "updatedAt": rfc3339(self.created_at),
            "lastUsedAt": null,
            "sandboxClass": self.class,
        })
    }
}

impl Store {
    /// Applies every due transition and token expiry.
    pub fn tick(&mut self, now: Instant, now_utc: DateTime<Utc>) {
        let mut gone = Vec::new();
        for sb in &mut self.sandboxes {
            let due = matches!(&sb.pending, Some(p) if p.due <= now);
            if !due {
                continue;
            }
            let to = sb.pending.take().expect("pending").to;
            sb.updated_at = now_utc;
            if to == "destroyed" {
                gone.push(sb.id.clone());
            } else {
                let (was, is) = (sb.state == "started", to == "started");
                sb.state = to;
                if was != is {
                    self.outbox.push(SshEvent::Running(sb.id.clone(), is));
                }
            }
        }
        for id in gone {
            self.remove(&id);
        }
        self.snapshots
            .retain(|snap| snap.gone_at.is_none_or(|at| at > now));
        for t in &mut self.tokens {
            if !t.expired && t.expires_at <= now_utc {
                t.expired = true;
                self.outbox.push(SshEvent::Revoked(t.token.clone()));
            }
        }
    }

    /// Removes a sandbox for good, revoking its tokens.
    pub fn remove(&mut self, id: &str) {
        let Some(pos) = self.sandboxes.iter().position(|s| s.id == id) else {
            return;
        };
        self.sandboxes.remove(pos);
        self.revoke(id, None);
        self.tokens.retain(|t| t.sandbox_id != id);
        self.outbox.push(SshEvent::Deleted(id.to_string()));
    }

    /// Removes the sandbox's tokens (only `token` if given), queueing `access_revoked` for live ones.
    pub fn revoke(&mut self, sandbox_id: &str, token: Option<&str>) {
        let outbox = &mut self.outbox;
        self.tokens.retain(|t| {
            let hit = t.sandbox_id == sandbox_id && token.is_none_or(|tok| tok == t.token);
            if hit && !t.expired {
                outbox.push(SshEvent::Revoked(t.token.clone()));
            }
            !hit
        });
    }

    /// Marks every live token of the sandbox expired, queueing `access_revoked`.
    pub fn expire(&mut self, sandbox_id: &str) {
        for t in &mut self.tokens {
            if t.sandbox_id == sandbox_id && !t.expired {
                t.expired = true;
                self.outbox.push(SshEvent::Revoked(t.token.clone()));
            }
        }
    }

    /// Looks a visible sandbox up by id, then by name.
    pub fn find(&self, key: &str) -> Option<usize> {
        let visible = |s: &Sandbox| !s.hidden();
        self.sandboxes
            .iter()
            .position(|s| s.id == key && visible(s))
            .or_else(|| {
                self.sandboxes
                    .iter()
                    .position(|s| s.name == key && visible(s))
            })
    }

    /// A visible snapshot by id, then by name.
    pub fn snapshot(&self, key: &str, now: Instant) -> Option<&Snapshot> {
        let visible = |s: &&Snapshot| s.visible_from <= now;
        let mut live = self.snapshots.iter().filter(visible);
        live.clone()
            .find(|s| s.id == key)
            .or_else(|| live.find(|s| s.name == key))
    }

    /// Looks a sandbox up by exact id, hidden ones included.
    pub fn by_id(&self, id: &str) -> Option<&Sandbox> {
        self.sandboxes.iter().find(|s| s.id == id)
    }

    /// Mutable lookup by exact id, hidden ones included.
    pub fn by_id_mut(&mut self, id: &str) -> Option<&mut Sandbox> {
        self.sandboxes.iter_mut().find(|s| s.id == id)
    }

    /// Whether a live sandbox already has this name.
    pub fn name_taken(&self, name: &str) -> bool {
        self.sandboxes.iter().any(|s| s.name == name && !s.hidden())
    }

    /// Number of live tokens of a sandbox.
    pub fn live_tokens(&self, sandbox_id: &str) -> usize {
        self.tokens
            .iter()
            .filter(|t| t.sandbox_id == sandbox_id && !t.expired)
            .count()
    }

    /// The view of one sandbox.
    pub fn view(&self, sb: &Sandbox, now: Instant) -> SandboxView {
        SandboxView {
            id: sb.id.clone(),
            name: sb.name.clone(),
            state: sb.derived_state(false).to_string(),
            stored_state: sb.state.clone(),
            desired_state: sb.desired_state.clone(),
            error_reason: sb.error_reason.clone(),
            labels: sb.labels.clone(),
            auto_stop_interval: sb.auto_stop_interval,
            auto_archive_interval: sb.auto_archive_interval,
            auto_delete_interval: sb.auto_delete_interval,
            snapshot: sb.snapshot.clone(),
            target: sb.target.clone(),
            user: sb.user.clone(),
            ssh_tokens: self.live_tokens(&sb.id),
            in_transition: sb.in_transition(),
            listed: sb.listed_from <= now && !sb.hidden(),
            created_at: rfc3339(sb.created_at),
            last_activity_at: rfc3339(sb.last_activity_at),
        }
    }

    /// Views of every sandbox that still exists, in creation order.
    pub fn views(&self) -> Vec<SandboxView> {
        let now = Instant::now();
        self.sandboxes.iter().map(|s| self.view(s, now)).collect()
    }

    /// Views of every token.
    pub fn token_views(&self) -> Vec<SshTokenView> {
        self.tokens
            .iter()
            .map(|t| SshTokenView {
                token: t.token.clone(),
                sandbox_id: t.sandbox_id.clone(),
                expires_at: rfc3339(t.expires_at),
                expired: t.expired,
            })
            .collect()
    }

    /// Forces a state (see `DaytonaSim::set_state`); returns false if the id is unknown.
    pub fn force_state(&mut self, id: &str, state: &str, reason: Option<&str>) -> bool {
        if state == "destroyed" {
            let found = self.by_id(id).is_some();
            self.remove(id);
            return found;
        }
        let Some(sb) = self.by_id_mut(id) else {
            return false;
        };
        sb.pending = None;
        sb.updated_at = Utc::now();
        let (stored, desired) = match state {
            "creating" => ("unknown", "started"),
            "starting" => ("stopped", "started"),
            "stopping" => ("started", "stopped"),
            "destroying" => ("started", "destroyed"),
            "archiving" => ("stopped", "archived"),
            s if is_error_state(s) => {
                let desired = if sb.desired_state == "destroyed" {
                    "destroyed"
                } else {
                    "started"
                };
                (s, desired)
            }
            s => (s, s),
        };
        let event = ((sb.state == "started") != (stored == "started"))
            .then(|| SshEvent::Running(sb.id.clone(), stored == "started"));
        sb.state = stored.to_string();
        sb.desired_state = desired.to_string();
        sb.error_reason = if is_error_state(stored) {
            Some(reason.unwrap_or("Simulated error").to_string())
        } else {
            reason.map(str::to_string)
        };
        self.outbox.extend(event);
        true
    }
}
