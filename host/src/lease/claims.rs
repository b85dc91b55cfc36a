//! Local claims: which leases this user holds, bound to a sandbox id and a repository.
//!
//! One JSON file per lease under the state directory, mode 0600, written atomically. Writers
//! take an exclusive lock so concurrent cbx processes never interleave updates. A claim holds no
//! secrets.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::lease::id::LeaseId;
use crate::paths;

/// The current claim file format.
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
}

/// The claims directory.
#[derive(Debug, Clone)]
pub struct Claims {
    dir: PathBuf,
}

/// An exclusive lock on the claims directory; released on drop.
pub struct ClaimsLock {
    file: File,
}

impl Drop for ClaimsLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
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
        self.dir.join(format!("{lease}.json"))
    }

    /// Takes the exclusive lock (waits for other cbx processes).
    pub fn lock(&self) -> Result<ClaimsLock> {
        paths::private_dir(&self.dir)?;
        let path = self.dir.join(".lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("open {}", path.display()))?;
        file.lock()
            .with_context(|| format!("lock {}", path.display()))?;
        Ok(ClaimsLock { file })
    }

    /// The claim for `lease`, if this machine holds one.
    pub fn get(&self, lease: &LeaseId) -> Result<Option<Claim>> {
        let path = self.path(lease);
        match fs_err::read(&path) {
            Ok(bytes) => Ok(Some(parse(&path, &bytes)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes (creates or replaces) a claim. Take [`Claims::lock`] first.
    pub fn put(&self, claim: &Claim, _lock: &ClaimsLock) -> Result<()> {
        let mut json = serde_json::to_vec_pretty(claim)?;
        json.push(b'\n');
        paths::write_private_atomic(&self.path(&claim.lease_id), &json)
            .with_context(|| format!("save the claim for {}", claim.lease_id))
    }

    /// Removes the claim for `lease` (no error if absent). Take [`Claims::lock`] first.
    pub fn remove(&self, lease: &LeaseId, _lock: &ClaimsLock) -> Result<()> {
        match fs_err::remove_file(self.path(lease)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Writes `claim` under the lock: one update, whole.
    pub fn save(&self, claim: &Claim) -> Result<()> {
        let lock = self.lock()?;
        self.put(claim, &lock)
    }

    /// Removes the claim for `lease` under the lock (no error if absent).
    pub fn discard(&self, lease: &LeaseId) -> Result<()> {
        let lock = self.lock()?;
        self.remove(lease, &lock)
    }

    /// The claims of `provider` matching `ident`: a lease id, or a slug.
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

    /// Every claim, sorted by creation time. Unreadable files are reported, not skipped.
    pub fn all(&self) -> Result<Vec<Claim>> {
        let entries = match fs_err::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut claims = Vec::new();
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            claims.push(parse(&path, &fs_err::read(&path)?)?);
        }
        claims.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then(a.lease_id.cmp(&b.lease_id))
        });
        Ok(claims)
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Claim> {
    serde_json::from_slice(bytes).with_context(|| {
        format!(
            "claim file {} is damaged; remove it if the lease is gone",
            path.display()
        )
    })
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
        }
    }

    #[test]
    fn put_get_all_remove_with_private_files() {
        let dir = tempfile::tempdir().unwrap();
        let claims = Claims::new(dir.path().join("claims"));
        let lock = claims.lock().unwrap();
        let c = claim("cbx_0123456789ab");
        claims.put(&c, &lock).unwrap();
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
    fn damaged_claim_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let claims = Claims::new(dir.path().to_path_buf());
        std::fs::write(dir.path().join("cbx_0123456789ab.json"), "{").unwrap();
        let err = claims.all().unwrap_err();
        assert!(
            format!("{err:#}").contains("is damaged; remove it if the lease is gone"),
            "{err:#}"
        );
    }
}
