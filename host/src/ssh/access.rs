//! SSH access per lease: minted by the provider, cached (0600) and reused until close to its
//! expiry.
//!
//! Minting new access can revoke the old (Daytona revokes every earlier token), so concurrent
//! cbx processes on one lease must share one: a per-lease lock serialises "read the cache or
//! mint", and a process that finds access minted by another uses it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{SshClient, Target};
use crate::lease::lifecycle::Lease;
use crate::lease::session::Session;
use crate::paths::{self, Dirs};
use crate::redact::TOKEN;

/// Reuse cached access only while it has at least this long left.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CachedAccess {
    sandbox_id: String,
    target: Target,
    expires_at: Option<String>,
    minted_at: String,
}

/// Where a lease's secret files live: `<state>/secrets/<lease>/`.
pub fn lease_secrets_dir(dirs: &Dirs, lease: &str) -> PathBuf {
    dirs.secrets().join(lease)
}

/// SSH access for `lease`: the cached one if still good (and `stale` is not the one we have),
/// else freshly minted. `stale` names access that just failed to log in. The flag says whether
/// the access was minted by this call.
pub async fn obtain(
    session: &mut Session,
    dirs: &Dirs,
    lease: &Lease,
    stale: Option<&SshClient>,
) -> Result<(SshClient, bool)> {
    let lease_id = lease.ownership.lease.to_string();
    let dir = lease_secrets_dir(dirs, &lease_id);
    paths::private_dir(&dir)?;
    let _lock = lock(&dir.join("access.lock")).await?;
    let cache_path = dir.join("access.json");
    let cached: Option<CachedAccess> = fs_err::read(&cache_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let usable = cached.filter(|c| {
        c.sandbox_id == lease.sandbox.id
            && stale.is_none_or(|s| s.target() != &c.target)
            && c.expires_at.as_deref().is_none_or(|t| {
                DateTime::parse_from_rfc3339(t).is_ok_and(|t| {
                    t.with_timezone(&Utc) - Utc::now()
                        > chrono::Duration::from_std(REFRESH_MARGIN).expect("small")
                })
            })
    });
    let fresh = usable.is_none();
    let access = match usable {
        Some(c) => c,
        None => {
            let minted = session
                .mint_ssh_access(&lease.sandbox.id)
                .await
                .map_err(|e| session.failure(e))?;
            let target = Target {
                user: minted.user,
                user_is_secret: minted.user_is_secret,
                host: minted.host,
                port: minted.port,
                identity_file: minted.identity_file,
            };
            if target.user_is_secret {
                session.provider.redactor().add(&target.user, TOKEN);
            }
            target.validate(session.name())?;
            let c = CachedAccess {
                sandbox_id: lease.sandbox.id.clone(),
                target,
                expires_at: minted.expires_at,
                minted_at: Utc::now().to_rfc3339(),
            };
            paths::write_private_atomic(&cache_path, &serde_json::to_vec_pretty(&c)?)?;
            c
        }
    };
    if access.target.user_is_secret {
        session.provider.redactor().add(&access.target.user, TOKEN);
    }
    access.target.validate(session.name())?;
    Ok((
        SshClient::prepare(&dir, &dirs.state, &lease_id, access.target)?,
        fresh,
    ))
}

/// Forgets a lease's SSH access: closes its master connection and removes its secret files.
pub async fn forget(dirs: &Dirs, lease: &str) {
    let dir = lease_secrets_dir(dirs, lease);
    if let Ok(bytes) = fs_err::read(dir.join("access.json"))
        && let Ok(c) = serde_json::from_slice::<CachedAccess>(&bytes)
        && let Ok(client) = SshClient::prepare(&dir, &dirs.state, lease, c.target)
    {
        client.close_master().await;
    }
    let _ = fs_err::remove_dir_all(&dir);
}

/// Takes an exclusive lock on `path`, waiting (without blocking the runtime) for other cbx
/// processes.
async fn lock(path: &std::path::Path) -> Result<std::fs::File> {
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("lock {}", path.display()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `access.json` as every cbx so far has written it.
    #[test]
    fn the_cache_file_format_is_pinned() {
        let cached = CachedAccess {
            sandbox_id: "sb-1".into(),
            target: Target {
                user: "tok".into(),
                user_is_secret: true,
                host: "ssh.example.com".into(),
                port: 22,
                identity_file: None,
            },
            expires_at: Some("E".into()),
            minted_at: "M".into(),
        };
        assert_eq!(
            String::from_utf8(serde_json::to_vec_pretty(&cached).unwrap()).unwrap(),
            "{\n  \"sandboxId\": \"sb-1\",\n  \"target\": {\n    \"user\": \"tok\",\n    \"userIsSecret\": true,\n    \"host\": \"ssh.example.com\",\n    \"port\": 22,\n    \"identityFile\": null\n  },\n  \"expiresAt\": \"E\",\n  \"mintedAt\": \"M\"\n}"
        );
    }
}
