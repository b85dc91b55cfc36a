//! Intents: what cbx is about to create, recorded durably *before* it asks a provider, so that
//! a crash, a kill or a lost answer at any instant leaves a record the next command can finish
//! (adopt the object) or undo (delete it).
//!
//! One JSON file per intent under `<state>/intents/` (0600, written atomically, file and
//! directory synced), named by its id — for a sandbox, the lease id. The process that recorded
//! it holds an exclusive lock on `<id>.lock` for as long as it works on it; the operating
//! system releases that lock when the process ends, however it ends (even `kill -9`). So an
//! intent whose lock is free has no owner, and [`Intents::take`] hands it to whoever finishes
//! it — never one a live `cbx warmup` is still working on. The pid and start time of the owner
//! are recorded too, to show who it was.
//!
//! The record is generic: a [`Plan`] says what kind of object is meant (a sandbox for a lease,
//! or a checkpoint), and [`Settle`] what to do with it when its owner is gone. Reconciling is
//! `lease::reconcile` (sandboxes) and `lease::checkpoint_settle` (checkpoints).

use std::fs::File;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::lease::claims::{CLAIM_VERSION, Claim, ClaimsLock};
use crate::lease::id::LeaseId;
use crate::lease::labels::Ownership;
use crate::lease::records::{self, DamagedFile};
use crate::lease::rfc3339;
use crate::paths;
use crate::provider::api;

/// The current intent file format.
pub const INTENT_VERSION: u32 = 1;

/// What the next command does with an intent whose owner is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Settle {
    /// Make the object what it was meant to be, if it is healthy (a `warmup`'s lease);
    /// delete it otherwise.
    Adopt,
    /// Delete the object (a one-shot `run`'s lease, or a roll-back under way).
    Delete,
}

impl Settle {
    /// `adopt` or `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Settle::Adopt => "adopt",
            Settle::Delete => "delete",
        }
    }
}

/// The process that recorded an intent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    /// Its process id.
    pub pid: u32,
    /// Its start time (clock ticks after boot, Linux), which tells a reused pid apart.
    #[serde(default)]
    pub started: Option<u64>,
}

impl Owner {
    /// This process.
    pub fn this_process() -> Owner {
        Owner {
            pid: std::process::id(),
            started: process_start_time(),
        }
    }
}

/// The start time of this process from `/proc/self/stat` (field 22), where there is one.
fn process_start_time() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let (_, fields) = stat.rsplit_once(')')?;
    fields.split_whitespace().nth(19)?.parse().ok()
}

/// What is being created, and what cbx needs to finish it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Plan {
    /// A sandbox that becomes a lease.
    Sandbox(LeasePlan),
    /// A checkpoint saved from a lease's sandbox.
    Checkpoint(CheckpointPlan),
}

impl Plan {
    /// The kind of object: `sandbox` or `checkpoint`.
    pub fn kind(&self) -> &'static str {
        match self {
            Plan::Sandbox(_) => "sandbox",
            Plan::Checkpoint(_) => "checkpoint",
        }
    }
}

/// A checkpoint being saved. Its intent's `name` is the checkpoint's name at the provider;
/// its `settle` is always `delete`: a checkpoint whose `create` never saw it saved is deleted
/// (the user never got it, so nothing of it may stay).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointPlan {
    /// The user's short name for it (`deps`).
    pub short: String,
    /// The lease whose sandbox is saved.
    pub lease_id: LeaseId,
    /// That sandbox: while it is busy saving, the checkpoint cannot be deleted yet.
    pub sandbox_id: String,
    /// Whether the provider may have been asked to save it: false while cbx still checks
    /// that the name is free (a checkpoint of that name found then is an older one, never
    /// to be deleted); set durably before the request.
    pub requested: bool,
}

/// The lease a sandbox is meant to become.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeasePlan {
    /// The lease id.
    pub lease_id: LeaseId,
    /// Its slug.
    pub slug: String,
    /// The repository it is for.
    pub repo_root: Option<String>,
    /// Work root on the sandbox.
    pub work_root: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Lifetime, seconds.
    pub ttl_secs: u64,
    /// Idle timeout, seconds.
    pub idle_secs: u64,
    /// The owner id written on the sandbox (absent in intents of an earlier cbx).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl LeasePlan {
    /// The ownership labels the lease's sandbox carries.
    pub fn ownership(&self, provider: &str) -> Ownership {
        Ownership {
            provider: provider.to_string(),
            lease: self.lease_id.clone(),
            slug: self.slug.clone(),
            created_at: self.created_at,
            touched_at: self.created_at,
            ttl_secs: self.ttl_secs,
            idle_secs: self.idle_secs,
            work_root: self.work_root.clone(),
            owner: self.owner.clone(),
        }
    }

    /// The claim binding this lease to `sandbox`.
    pub fn claim(&self, provider: &str, sandbox: &api::Sandbox) -> Claim {
        Claim {
            version: CLAIM_VERSION,
            lease_id: self.lease_id.clone(),
            slug: self.slug.clone(),
            provider: provider.to_string(),
            sandbox_id: sandbox.id.clone(),
            sandbox_name: sandbox.name.clone(),
            repo_root: self.repo_root.clone(),
            work_root: self.work_root.clone(),
            created_at: rfc3339(self.created_at),
            expires_at: rfc3339(self.ownership(provider).expires_at()),
            last_used_at: rfc3339(self.created_at),
            generation: 0,
        }
    }
}

/// A record of something cbx is creating.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Intent {
    /// File format version.
    pub version: u32,
    /// Unique id, the file's name (a sandbox's: its lease id).
    pub id: String,
    /// The provider asked.
    pub provider: String,
    /// The unique name cbx asks the provider to give the object; it finds the object again.
    pub name: String,
    /// The provider's id for the object, once an answer said it.
    #[serde(default)]
    pub object_id: Option<String>,
    /// The command that recorded it (`warmup`, `run`, `run --keep`).
    pub command: String,
    /// What to do when the owner is gone.
    pub settle: Settle,
    /// Who recorded it.
    pub owner: Owner,
    /// When (RFC 3339).
    pub recorded_at: String,
    /// What is being created.
    pub plan: Plan,
}

impl Intent {
    /// The lease a sandbox intent is for; `None` for other kinds.
    pub fn lease(&self) -> Option<&LeasePlan> {
        match &self.plan {
            Plan::Sandbox(p) => Some(p),
            Plan::Checkpoint(_) => None,
        }
    }

    /// The checkpoint a checkpoint intent is for; `None` for other kinds.
    pub fn checkpoint(&self) -> Option<&CheckpointPlan> {
        match &self.plan {
            Plan::Checkpoint(p) => Some(p),
            Plan::Sandbox(_) => None,
        }
    }
}

/// The intents directory.
#[derive(Debug, Clone)]
pub struct Intents {
    dir: PathBuf,
}

/// An intent this process works on (it recorded it, or took it over): the owner's lock is
/// held until drop. Dropping it without [`IntentHold::finish`] leaves the record for the next
/// command.
#[derive(Debug)]
pub struct IntentHold {
    _lock: File,
    dir: PathBuf,
    intent: Intent,
}

impl Intents {
    /// Intents kept in `dir`.
    pub fn new(dir: PathBuf) -> Intents {
        Intents { dir }
    }

    /// The file of intent `id`.
    pub fn json(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn lock_file(&self, id: &str) -> Result<File> {
        paths::private_dir(&self.dir)?;
        let path = self.dir.join(format!("{id}.lock"));
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("open {}", path.display()))
    }

    /// Every readable intent, oldest first, and every damaged intent file.
    pub fn scan(&self) -> Result<(Vec<Intent>, Vec<DamagedFile>)> {
        let (mut intents, damaged) = records::scan::<Intent>(&self.dir, "intent")?;
        intents.sort_by(|a, b| a.recorded_at.cmp(&b.recorded_at).then(a.id.cmp(&b.id)));
        Ok((intents, damaged))
    }

    /// Records `intent` durably and holds it. Take the claims lock first: checking that a
    /// slug is free and reserving it must be one step.
    pub fn record(&self, intent: Intent, _lock: &ClaimsLock) -> Result<IntentHold> {
        let valid = !intent.id.is_empty()
            && intent
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        anyhow::ensure!(valid, "`{}` is not a usable intent id", intent.id);
        let lock = self.lock_file(&intent.id)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                anyhow::bail!("intent {} is already held by another process", intent.id)
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| {
                    format!(
                        "lock {}",
                        self.dir.join(format!("{}.lock", intent.id)).display()
                    )
                });
            }
        }
        anyhow::ensure!(
            !self.json(&intent.id).exists(),
            "intent {} is already recorded",
            intent.id
        );
        let hold = IntentHold {
            _lock: lock,
            dir: self.dir.clone(),
            intent,
        };
        hold.write().with_context(|| {
            format!(
                "record what cbx is about to create ({})",
                hold.path().display()
            )
        })?;
        Ok(hold)
    }

    /// The intent `id`, held by this process now, if its owner is gone; `None` while its owner
    /// (or another cbx finishing it) lives, or once it is finished.
    pub fn take(&self, id: &str) -> Result<Option<IntentHold>> {
        let lock = self.lock_file(id)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("lock the intent {id}"));
            }
        }
        match records::read::<Intent>(&self.json(id), "intent") {
            None => Ok(None),
            Some(Err(damaged)) => Err(damaged.failure()),
            Some(Ok(intent)) => Ok(Some(IntentHold {
                _lock: lock,
                dir: self.dir.clone(),
                intent,
            })),
        }
    }

    /// Whether a live process holds intent `id`.
    pub fn owner_alive(&self, id: &str) -> bool {
        let path = self.dir.join(format!("{id}.lock"));
        let Ok(file) = File::options().write(true).open(path) else {
            return false;
        };
        matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
    }

    /// Removes lock files left without their intent (a process that died between the two),
    /// unless someone holds them.
    pub fn sweep(&self) {
        let Ok(entries) = fs_err::read_dir(&self.dir) else {
            return;
        };
        for path in entries.flatten().map(|e| e.path()) {
            let stale = path.extension().is_some_and(|e| e == "lock")
                && !path.with_extension("json").exists()
                && File::options()
                    .write(true)
                    .open(&path)
                    .is_ok_and(|f| f.try_lock().is_ok());
            if stale {
                let _ = fs_err::remove_file(&path);
            }
        }
    }
}

impl IntentHold {
    /// The intent.
    pub fn intent(&self) -> &Intent {
        &self.intent
    }

    fn path(&self) -> PathBuf {
        self.dir.join(format!("{}.json", self.intent.id))
    }

    fn write(&self) -> Result<()> {
        let mut json = serde_json::to_vec_pretty(&self.intent)?;
        json.push(b'\n');
        paths::write_private_durable(&self.path(), &json)
    }

    /// Changes the intent and writes it durably.
    pub fn update(&mut self, change: impl FnOnce(&mut Intent)) -> Result<()> {
        change(&mut self.intent);
        self.write()
            .with_context(|| format!("update the intent {}", self.path().display()))
    }

    /// The object is made or undone: removes the record (durably), then its lock file.
    pub fn finish(self) -> Result<()> {
        paths::remove_durable(&self.path())
            .with_context(|| format!("remove the intent {}", self.path().display()))?;
        let _ = fs_err::remove_file(self.dir.join(format!("{}.lock", self.intent.id)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::claims::Claims;

    fn intent(id: &str) -> Intent {
        Intent {
            version: INTENT_VERSION,
            id: id.into(),
            provider: "daytona".into(),
            name: format!("cbx-amber-otter-{}", &id[4..]),
            object_id: None,
            command: "warmup".into(),
            settle: Settle::Adopt,
            owner: Owner::this_process(),
            recorded_at: "2026-01-01T00:00:00Z".into(),
            plan: Plan::Sandbox(LeasePlan {
                lease_id: LeaseId::parse(id).unwrap(),
                slug: "amber-otter".into(),
                repo_root: None,
                work_root: "cbx".into(),
                created_at: 1,
                ttl_secs: 5400,
                idle_secs: 1800,
                owner: None,
            }),
        }
    }

    #[test]
    fn a_held_intent_is_not_taken_and_a_released_one_is() {
        let dir = tempfile::tempdir().unwrap();
        let claims = Claims::new(dir.path().join("claims"));
        let intents = Intents::new(dir.path().join("intents"));
        let id = "cbx_0123456789ab";
        let mut hold = intents.record(intent(id), &claims.lock().unwrap()).unwrap();
        assert!(intents.owner_alive(id));
        assert!(intents.take(id).unwrap().is_none(), "its owner is alive");
        hold.update(|i| i.object_id = Some("sb-1".into())).unwrap();
        drop(hold); // the owner ends without finishing
        assert!(!intents.owner_alive(id));
        let (all, damaged) = intents.scan().unwrap();
        assert_eq!(all.len(), 1);
        assert!(damaged.is_empty());
        assert_eq!(all[0].object_id.as_deref(), Some("sb-1"));
        let taken = intents.take(id).unwrap().expect("no owner: taken");
        assert!(intents.owner_alive(id), "held by whoever took it");
        taken.finish().unwrap();
        assert!(intents.scan().unwrap().0.is_empty());
        assert!(intents.take(id).unwrap().is_none(), "finished");
        intents.sweep();
        let left: Vec<_> = std::fs::read_dir(dir.path().join("intents"))
            .unwrap()
            .flatten()
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn the_file_format_is_pinned() {
        let mut i = intent("cbx_0123456789ab");
        i.owner = Owner {
            pid: 42,
            started: Some(7),
        };
        assert_eq!(
            serde_json::to_string(&i).unwrap(),
            r#"{"version":1,"id":"cbx_0123456789ab","provider":"daytona","name":"cbx-amber-otter-0123456789ab","objectId":null,"command":"warmup","settle":"adopt","owner":{"pid":42,"started":7},"recordedAt":"2026-01-01T00:00:00Z","plan":{"sandbox":{"leaseId":"cbx_0123456789ab","slug":"amber-otter","repoRoot":null,"workRoot":"cbx","createdAt":1,"ttlSecs":5400,"idleSecs":1800}}}"#
        );
        assert!(Owner::this_process().pid > 0);
    }

    #[test]
    fn a_checkpoint_intent_is_not_a_lease_and_its_format_is_pinned() {
        let mut i = intent("cbx_0123456789ab");
        i.id = "ckpt-deps".into();
        i.name = "cbx-ckpt-0123456789abcdef_deps".into();
        i.command = "checkpoint create".into();
        i.settle = Settle::Delete;
        i.owner = Owner {
            pid: 42,
            started: None,
        };
        i.plan = Plan::Checkpoint(CheckpointPlan {
            short: "deps".into(),
            lease_id: LeaseId::parse("cbx_0123456789ab").unwrap(),
            sandbox_id: "sb-1".into(),
            requested: true,
        });
        assert!(i.lease().is_none());
        assert_eq!(i.checkpoint().unwrap().short, "deps");
        assert_eq!(i.plan.kind(), "checkpoint");
        let json = serde_json::to_string(&i).unwrap();
        assert!(
            json.ends_with(r#""plan":{"checkpoint":{"short":"deps","leaseId":"cbx_0123456789ab","sandboxId":"sb-1","requested":true}}}"#),
            "{json}"
        );
        let dir = tempfile::tempdir().unwrap();
        let claims = Claims::new(dir.path().join("claims"));
        let intents = Intents::new(dir.path().join("intents"));
        drop(intents.record(i.clone(), &claims.lock().unwrap()).unwrap());
        assert_eq!(intents.scan().unwrap().0, [i]);
    }
}
