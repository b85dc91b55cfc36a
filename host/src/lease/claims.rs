//! Local claims: which leases this user holds, bound to a sandbox id and a repository.
//!
//! One JSON file per lease under the state directory, mode 0600, written atomically and
//! durably. Writers take an exclusive lock (`claims/.lock`), which also guards the intents
//! (`lease::intent`), so checking a slug and reserving it is one step. A claim carries a
//! generation: its contents change only through [`Claims::update`], which applies a change
//! only to the generation the caller read — so `stop` (which removes the claim) always wins
//! over a racing `run`. A damaged file affects only its own lease. A claim holds no secrets.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, Failure};
use crate::lease::id::LeaseId;
use crate::lease::records::{self, DamagedFile};
use crate::paths;

/// The current claim file format. Version 1 files without a `generation` read as generation
/// 0; the previous cbx reads today's files (it ignores `generation`).
pub const CLAIM_VERSION: u32 = 1;

/// A lease this machine holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claim {
    /// File format version.
    pub version: u32,
    /// The lease.
    pub lease_id: LeaseId,
    /// Its slug.
    pub slug: String,
    /// The provider.
    pub provider: String,
    /// The provider's id for the sandbox.
    pub sandbox_id: String,
    /// The provider's name for the sandbox.
    pub sandbox_name: String,
    /// The repository it was created from, if any.
    pub repo_root: Option<String>,
    /// Work root on the sandbox.
    pub work_root: String,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Expiry time (RFC 3339).
    pub expires_at: String,
    /// Last use (RFC 3339).
    pub last_used_at: String,
    /// Counts the writes of this claim: 1 when created, one more per update.
    #[serde(default)]
    pub generation: u64,
}

/// The claims directory.
#[derive(Debug, Clone)]
pub struct Claims {
    dir: PathBuf,
}

/// An exclusive lock on the claims (and intents); released on drop.
pub struct ClaimsLock {
    file: File,
}

impl Drop for ClaimsLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// What [`Claims::update`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// The change was written; the claim as it now is.
    Done(Claim),
    /// Another process changed the claim since it was read; the claim as it now is. Nothing
    /// was written.
    Changed(Claim),
    /// The claim is gone (the lease was stopped), or now binds another sandbox.
    Gone,
}

/// Every readable claim, and the files that could not be read.
#[derive(Debug, Clone, Default)]
pub struct ClaimScan {
    /// The readable claims, sorted by creation time.
    pub claims: Vec<Claim>,
    /// The damaged files.
    pub damaged: Vec<DamagedFile>,
}

impl Claims {
    /// Claims kept in `dir`.
    pub fn new(dir: PathBuf) -> Claims {
        Claims { dir }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, lease: &LeaseId) -> PathBuf {
        records::path_of(&self.dir, lease)
    }

    /// Takes the exclusive lock (waits for other cbx processes). An unusable lock file is an
    /// error that names it.
    pub fn lock(&self) -> Result<ClaimsLock> {
        let path = self.dir.join(".lock");
        let open = || -> Result<File> {
            paths::private_dir(&self.dir)?;
            let file = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            file.lock()?;
            Ok(file)
        };
        match open() {
            Ok(file) => Ok(ClaimsLock { file }),
            Err(e) => Err(Failure::new(
                ErrorKind::Other,
                format!("cannot lock cbx's claims ({}): {e:#}", path.display()),
            )
            .hint(format!(
                "{} must be a regular file you can write, in a directory you own; if it is \
                 something else, move it aside and run the command again",
                path.display()
            ))
            .into()),
        }
    }

    /// The claim for `lease`, if this machine holds one; an error (for this lease only) if its
    /// file is damaged.
    pub fn get(&self, lease: &LeaseId) -> Result<Option<Claim>> {
        match records::read(&self.path(lease), "claim") {
            None => Ok(None),
            Some(Ok(c)) => Ok(Some(c)),
            Some(Err(damaged)) => Err(damaged.failure()),
        }
    }

    /// Writes a new claim (generation 1); fails if `lease` already has one. Take
    /// [`Claims::lock`] first.
    pub fn create(&self, claim: &Claim, _lock: &ClaimsLock) -> Result<Claim> {
        if self.path(&claim.lease_id).exists() {
            anyhow::bail!("lease {} already has a claim", claim.lease_id);
        }
        let claim = Claim {
            generation: 1,
            ..claim.clone()
        };
        self.write(&claim)?;
        Ok(claim)
    }

    fn write(&self, claim: &Claim) -> Result<()> {
        let mut json = serde_json::to_vec_pretty(claim)?;
        json.push(b'\n');
        paths::write_private_durable(&self.path(&claim.lease_id), &json)
            .with_context(|| format!("save the claim for {}", claim.lease_id))
    }

    /// Applies `change` to the claim of `lease`, under the lock, only if it still exists,
    /// still binds `sandbox_id` and is still at `generation`.
    pub fn update(
        &self,
        lease: &LeaseId,
        sandbox_id: &str,
        generation: u64,
        change: impl FnOnce(&mut Claim),
    ) -> Result<Update> {
        let _lock = self.lock()?;
        let Some(mut current) = self.get(lease)? else {
            return Ok(Update::Gone);
        };
        if current.sandbox_id != sandbox_id {
            return Ok(Update::Gone);
        }
        if current.generation != generation {
            return Ok(Update::Changed(current));
        }
        change(&mut current);
        current.generation = generation + 1;
        self.write(&current)?;
        Ok(Update::Done(current))
    }

    /// Fails with exit 4 unless `lease` is still claimed here for `sandbox_id`. Under the
    /// lock, this makes a write that depends on the claim safe against `stop`.
    pub fn require(&self, lease: &LeaseId, sandbox_id: &str, _lock: &ClaimsLock) -> Result<()> {
        match self.get(lease)? {
            Some(c) if c.sandbox_id == sandbox_id => Ok(()),
            _ => Err(stopped_meanwhile(lease)),
        }
    }

    /// Removes the claim for `lease` (no error if absent). Take [`Claims::lock`] first.
    pub fn remove(&self, lease: &LeaseId, _lock: &ClaimsLock) -> Result<()> {
        paths::remove_durable(&self.path(lease))
    }

    /// Removes the claim for `lease` under the lock (no error if absent).
    pub fn discard(&self, lease: &LeaseId) -> Result<()> {
        let lock = self.lock()?;
        self.remove(lease, &lock)
    }

    /// The readable claims of `provider` matching `ident`: a lease id, or a slug.
    pub fn matching(&self, provider: Option<&str>, ident: &str) -> Result<Vec<Claim>> {
        let by_id = LeaseId::parse(ident);
        let slug = crate::lease::id::normalize_slug(ident);
        Ok(self
            .all()?
            .into_iter()
            .filter(|c| provider.is_none_or(|p| c.provider == p))
            .filter(|c| Some(&c.lease_id) == by_id.as_ref() || c.slug == slug)
            .collect())
    }

    /// Every readable claim, sorted by creation time (damaged files are left out; see
    /// [`Claims::scan`]).
    pub fn all(&self) -> Result<Vec<Claim>> {
        Ok(self.scan()?.claims)
    }

    /// Every readable claim, sorted by creation time, and every damaged claim file.
    pub fn scan(&self) -> Result<ClaimScan> {
        let (mut claims, damaged) = records::scan::<Claim>(&self.dir, "claim")?;
        claims.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then(a.lease_id.cmp(&b.lease_id))
        });
        Ok(ClaimScan { claims, damaged })
    }
}

/// The failure of a command whose lease was stopped while it was using it (exit 4).
pub fn stopped_meanwhile(lease: &LeaseId) -> anyhow::Error {
    Failure::new(
        ErrorKind::NotFound,
        format!(
            "lease {lease} was stopped while this command was using it (its claim is gone); \
             cbx recreated nothing for it"
        ),
    )
    .hint("`cbx list` shows your leases; `cbx warmup` leases a new one")
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(id: &str) -> Claim {
        Claim {
            version: CLAIM_VERSION,
            lease_id: LeaseId::parse(id).unwrap(),
            slug: "amber-otter".into(),
            provider: "daytona".into(),
            sandbox_id: "sb-1".into(),
            sandbox_name: "cbx-amber-otter".into(),
            repo_root: Some("/src/app".into()),
            work_root: "cbx".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            expires_at: "2026-01-01T01:30:00Z".into(),
            last_used_at: "2026-01-01T00:00:00Z".into(),
            generation: 0,
        }
    }

    #[test]
    fn create_get_all_remove_with_private_files() {
        let dir = tempfile::tempdir().unwrap();
        let claims = Claims::new(dir.path().join("claims"));
        let lock = claims.lock().unwrap();
        let c = claims.create(&claim("cbx_0123456789ab"), &lock).unwrap();
        assert_eq!(c.generation, 1);
        assert!(claims.create(&c, &lock).is_err(), "a claim is created once");
        assert_eq!(claims.get(&c.lease_id).unwrap(), Some(c.clone()));
        assert_eq!(claims.all().unwrap(), vec![c.clone()]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(claims.dir().join("cbx_0123456789ab.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let dmode = std::fs::metadata(claims.dir())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(dmode & 0o777, 0o700);
        }
        claims.remove(&c.lease_id, &lock).unwrap();
        assert_eq!(claims.get(&c.lease_id).unwrap(), None);
        claims.remove(&c.lease_id, &lock).unwrap();
    }

    #[test]
    fn updates_apply_only_to_the_generation_read() {
        let dir = tempfile::tempdir().unwrap();
        let claims = Claims::new(dir.path().to_path_buf());
        let c = claims
            .create(&claim("cbx_0123456789ab"), &claims.lock().unwrap())
            .unwrap();
        let touch = |c: &mut Claim| c.last_used_at = "2026-01-01T00:05:00Z".into();
        let Update::Done(now) = claims.update(&c.lease_id, "sb-1", 1, touch).unwrap() else {
            panic!("the first update applies");
        };
        assert_eq!(now.generation, 2);
        assert_eq!(now.last_used_at, "2026-01-01T00:05:00Z");
        // A writer still holding generation 1 changes nothing.
        assert_eq!(
            claims
                .update(&c.lease_id, "sb-1", 1, |c| c.slug = "stale".into())
                .unwrap(),
            Update::Changed(now.clone())
        );
        // Another sandbox, or no claim at all: gone.
        assert_eq!(
            claims.update(&c.lease_id, "sb-2", 2, touch).unwrap(),
            Update::Gone
        );
        claims.discard(&c.lease_id).unwrap();
        assert_eq!(
            claims.update(&c.lease_id, "sb-1", 2, touch).unwrap(),
            Update::Gone
        );
        assert!(
            claims.get(&c.lease_id).unwrap().is_none(),
            "nothing resurrected"
        );
        let lock = claims.lock().unwrap();
        let err = claims.require(&c.lease_id, "sb-1", &lock).unwrap_err();
        assert_eq!(crate::error::exit_code(&err), 4);
        assert!(format!("{err:#}").contains("was stopped while this command"));
    }

    #[test]
    fn a_damaged_claim_affects_only_its_own_lease() {
        let dir = tempfile::tempdir().unwrap();
        let claims = Claims::new(dir.path().to_path_buf());
        let good = claims
            .create(&claim("cbx_aaaaaaaaaaaa"), &claims.lock().unwrap())
            .unwrap();
        std::fs::write(dir.path().join("cbx_0123456789ab.json"), "{").unwrap();
        let scan = claims.scan().unwrap();
        assert_eq!(scan.claims, vec![good.clone()]);
        assert_eq!(scan.damaged.len(), 1);
        let damaged = &scan.damaged[0];
        assert_eq!(damaged.lease, LeaseId::parse("cbx_0123456789ab"));
        let hint = damaged.hint();
        assert!(hint.contains("cbx list --json"), "{hint}");
        assert!(hint.contains(".damaged"), "{hint}");
        assert!(!hint.contains("rm "), "{hint}");
        assert!(!hint.contains("remove it"), "{hint}");
        assert_eq!(claims.get(&good.lease_id).unwrap(), Some(good));
        let err = claims
            .get(&LeaseId::parse("cbx_0123456789ab").unwrap())
            .unwrap_err();
        assert!(format!("{err:#}").contains("is damaged"), "{err:#}");
    }

    /// The claim struct of the previous cbx (before generations), which must keep reading
    /// today's files, and whose files today's cbx must read.
    #[derive(Debug, Deserialize, Serialize)]
    #[serde(rename_all = "camelCase")]
    struct PreviousClaim {
        version: u32,
        lease_id: LeaseId,
        slug: String,
        provider: String,
        sandbox_id: String,
        sandbox_name: String,
        repo_root: Option<String>,
        work_root: String,
        created_at: String,
        expires_at: String,
        last_used_at: String,
    }

    #[test]
    fn claim_files_stay_readable_across_versions() {
        let today = Claim {
            generation: 7,
            ..claim("cbx_0123456789ab")
        };
        let json = serde_json::to_vec(&today).unwrap();
        let old: PreviousClaim = serde_json::from_slice(&json).unwrap();
        assert_eq!(old.sandbox_id, "sb-1");
        let back: Claim = serde_json::from_slice(&serde_json::to_vec(&old).unwrap()).unwrap();
        assert_eq!(back.generation, 0);
        assert_eq!(back.lease_id, today.lease_id);
    }
}
