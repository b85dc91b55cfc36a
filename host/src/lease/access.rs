//! The SSH access cache: access minted by the provider, kept per lease (0600) and reused until
//! close to its expiry — and the admission every access passes before cbx uses it.
//!
//! Minting new access can revoke the old (Daytona revokes every earlier token), so concurrent
//! cbx processes on one lease must share one: a per-lease lock serialises "read the cache or
//! mint", and a process that finds access minted by another uses it. Reading the cache needs
//! only the lease and its sandbox id (from the claim) — no call to the provider.
//!
//! The files exist only while the lease is claimed: each write checks the claim under the
//! claims lock first, and `cbx stop` removes claim and files under that same lock, so a `run`
//! racing a `stop` never recreates `secrets/<lease>/`.
//!
//! The cache holds access as the provider minted it. Fresh or cached, it is admitted by
//! [`admit`] before any ssh or rsync starts: checked for safe syntax, then against the grant
//! (`grant::egress::authorize_ssh`: the destination granted, the key the user's), audited, and
//! only then turned into a target with the user's checked key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::AuditRecord;
use crate::environment::Environment;
use crate::error::{ErrorKind, Failure};
use crate::grant::egress;
use crate::lease::Lease;
use crate::lease::claims::Claims;
use crate::lease::id::LeaseId;
use crate::lease::session::Session;
use crate::paths::{self, Dirs};
use crate::provider::api;
use crate::redact::TOKEN;
use crate::ssh::{SshClient, Target, identity};

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

/// One lease's cached SSH access, under `<state>/secrets/<lease>/`.
#[derive(Debug, Clone)]
pub struct AccessCache {
    dir: PathBuf,
    state: PathBuf,
    lease: String,
}

/// An exclusive hold on one lease's SSH access; released on drop.
pub struct AccessLock {
    _file: std::fs::File,
}

impl AccessCache {
    /// The cache of `lease`.
    pub fn of(dirs: &Dirs, lease: &LeaseId) -> AccessCache {
        AccessCache {
            dir: dirs.secrets().join(lease.as_str()),
            state: dirs.state.clone(),
            lease: lease.to_string(),
        }
    }

    /// Where the lease's secret files live: `<state>/secrets/<lease>/`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self) -> PathBuf {
        self.dir.join("access.json")
    }

    /// Takes the lease's lock, waiting (without blocking the runtime) for other cbx processes.
    /// The lock file is created only while `claim` holds.
    pub async fn lock(&self, claim: &ClaimCheck<'_>) -> Result<AccessLock> {
        let path = self.dir.join("access.lock");
        let file = claim.while_held(|| {
            paths::private_dir(&self.dir)?;
            std::fs::File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .with_context(|| format!("open {}", path.display()))
        })?;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(AccessLock { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("lock {}", path.display()));
                }
            }
        }
    }

    /// The cached access to sandbox `sandbox_id` (as the provider minted it), if it is still
    /// good for a while and is not `stale` (access to the same user, host and port just failed
    /// to log in).
    pub fn usable(&self, sandbox_id: &str, stale: Option<&Target>) -> Option<Target> {
        let cached: CachedAccess = fs_err::read(self.file())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())?;
        let fresh_enough = cached.expires_at.as_deref().is_none_or(|t| {
            DateTime::parse_from_rfc3339(t).is_ok_and(|t| {
                t.with_timezone(&Utc) - Utc::now()
                    > chrono::Duration::from_std(REFRESH_MARGIN).expect("small")
            })
        });
        let same = |s: &Target| {
            s.user == cached.target.user
                && s.host == cached.target.host
                && s.port == cached.target.port
        };
        (cached.sandbox_id == sandbox_id && stale.is_none_or(|s| !same(s)) && fresh_enough)
            .then_some(cached.target)
    }

    /// Caches `target`, access to the claimed sandbox until `expires_at` (RFC 3339), while
    /// `claim` holds.
    pub fn store(
        &self,
        claim: &ClaimCheck<'_>,
        target: &Target,
        expires_at: Option<String>,
    ) -> Result<()> {
        let cached = CachedAccess {
            sandbox_id: claim.sandbox.to_string(),
            target: target.clone(),
            expires_at,
            minted_at: Utc::now().to_rfc3339(),
        };
        let json = serde_json::to_vec_pretty(&cached)?;
        claim.while_held(|| paths::write_private_atomic(&self.file(), &json))
    }

    /// An SSH client for `target`, its config written into the lease's directory while
    /// `claim` holds; `agent` is the user's opt-in to their ssh agent.
    pub fn client(
        &self,
        claim: &ClaimCheck<'_>,
        target: Target,
        agent: bool,
        env: &Environment,
    ) -> Result<SshClient> {
        claim.while_held(|| {
            SshClient::prepare(&self.dir, &self.state, &self.lease, target, agent, env)
        })
    }

    /// Closes the lease's master connection, if its access is cached (best effort).
    pub async fn close(&self) {
        if let Ok(bytes) = fs_err::read(self.file())
            && let Ok(c) = serde_json::from_slice::<CachedAccess>(&bytes)
            && c.target.validate("cached").is_ok()
        {
            SshClient::for_config(&self.dir, &self.state, &self.lease, c.target)
                .close_master()
                .await;
        }
    }

    /// Removes the lease's secret files. Hold the claims lock (see `release::forget`).
    pub fn remove(&self) {
        let _ = fs_err::remove_dir_all(&self.dir);
    }
}

/// A claim that files of the SSH access cache depend on: the lease, claimed here for this
/// sandbox.
pub struct ClaimCheck<'a> {
    claims: &'a Claims,
    lease: &'a LeaseId,
    sandbox: &'a str,
}

impl ClaimCheck<'_> {
    /// Runs `write` under the claims lock, only while the claim still exists (exit 4
    /// otherwise: the lease was stopped meanwhile).
    fn while_held<R>(&self, write: impl FnOnce() -> Result<R>) -> Result<R> {
        let lock = self.claims.lock()?;
        self.claims.require(self.lease, self.sandbox, &lock)?;
        write()
    }
}

/// The SSH target of access a provider minted.
pub fn target_of(access: api::SshAccess) -> Target {
    Target {
        user: access.user,
        user_is_secret: access.user_is_secret,
        host: access.host,
        port: access.port,
        identity_file: access.identity_file,
    }
}

/// Where access comes from, for the audit log and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessOrigin {
    /// Just minted by the provider.
    Minted,
    /// Read back from the lease's cache.
    Cached,
}

impl AccessOrigin {
    /// The operation the audit log names.
    fn operation(self) -> &'static str {
        match self {
            AccessOrigin::Minted => "mint-ssh-access",
            AccessOrigin::Cached => "cached-ssh-access",
        }
    }
}

/// Admits access `minted` by the session's provider (for `lease`, if any) before cbx uses
/// it: a secret user is registered for redaction; the fields must be safe to write into an
/// ssh config (exit 8); the destination must be granted and any key the user's
/// (`egress::authorize_ssh`, exit 7); the user's key must pass its checks (exit 2). Every
/// minted destination, and every denial, is audited. Returns the target to connect to, with
/// the user's key.
pub fn admit(
    session: &Session,
    lease: Option<&str>,
    minted: &Target,
    origin: AccessOrigin,
) -> Result<Target> {
    let provider = session.name();
    if minted.user_is_secret {
        session.redactor().add(&minted.user, TOKEN);
    }
    minted.validate(provider)?;
    let grant = session.ssh_grant();
    let destination = crate::grant::destination::shown(&minted.host, minted.port);
    let authorized = match egress::authorize_ssh(
        grant,
        &minted.host,
        minted.port,
        minted.identity_file.as_deref(),
    ) {
        Ok(a) => a,
        Err(denial) => {
            let text = session.redactor().redact(&denial.to_string());
            session.audit(&AuditRecord::ssh_access(
                provider,
                origin.operation(),
                lease,
                &destination,
                Some(&text),
            ));
            return Err(Failure::new(ErrorKind::Denied, text)
                    .hint("nothing was sent: cbx connects only where the provider's grant allows, with your own key (`cbx providers inspect` shows the grant)")
                    .into());
        }
    };
    if origin == AccessOrigin::Minted {
        session.audit(&AuditRecord::ssh_access(
            provider,
            origin.operation(),
            lease,
            &destination,
            None,
        ));
    }
    let identity_file = match (&authorized.identity_file, &grant.identity) {
        (Some(path), Some(key)) => {
            let whose = format!(
                "option `{}` of provider {provider}, from {}",
                grant.identity_option.as_deref().unwrap_or("?"),
                key.source
            );
            let real = identity::checked_key(path, session.env().home().as_deref(), &whose)?;
            Some(real.display().to_string())
        }
        _ => None,
    };
    Ok(Target {
        identity_file,
        ..minted.clone()
    })
}

/// SSH access for `lease`: the cached one if still good (and `stale` is not the one we have),
/// else freshly minted — admitted either way (see [`admit`]). `stale` names access that just
/// failed to log in. The flag says whether the access was minted by this call.
pub async fn obtain(
    session: &mut Session,
    lease: &Lease,
    stale: Option<&SshClient>,
) -> Result<(SshClient, bool)> {
    let cache = AccessCache::of(session.dirs(), &lease.ownership.lease);
    let sandbox = &lease.sandbox.id;
    let claims = session.claims().clone();
    let claim = ClaimCheck {
        claims: &claims,
        lease: &lease.ownership.lease,
        sandbox,
    };
    let _lock = cache.lock(&claim).await?;
    let lease_id = lease.ownership.lease.as_str();
    let (target, fresh) = match cache.usable(sandbox, stale.map(SshClient::target)) {
        Some(cached) => (
            admit(session, Some(lease_id), &cached, AccessOrigin::Cached)?,
            false,
        ),
        None => {
            let minted = session
                .mint_ssh_access(sandbox)
                .await
                .map_err(|e| session.failure(e))?;
            let expires_at = minted.expires_at.clone();
            let minted = target_of(minted);
            let target = admit(session, Some(lease_id), &minted, AccessOrigin::Minted)?;
            cache.store(&claim, &minted, expires_at)?;
            (target, true)
        }
    };
    let agent = session.ssh_grant().agent;
    Ok((cache.client(&claim, target, agent, session.env())?, fresh))
}
/// An SSH client for `lease` (claimed here for `sandbox`) from its cached access, only when
/// that access is still good and a multiplexing master for it is up — the warm path, which
/// asks the provider nothing. Admitted like any access (see [`admit`]); `None` when the
/// cache has no good access or no master is listening.
pub fn live_cached(session: &Session, lease: &LeaseId, sandbox: &str) -> Result<Option<SshClient>> {
    let cache = AccessCache::of(session.dirs(), lease);
    let Some(cached) = cache.usable(sandbox, None) else {
        return Ok(None);
    };
    if cached.validate(session.name()).is_err() {
        return Ok(None);
    }
    let socket = crate::ssh::control_socket(
        &session.dirs().state,
        session.env(),
        lease.as_str(),
        &cached,
    )?;
    if std::os::unix::net::UnixStream::connect(&socket).is_err() {
        return Ok(None);
    }
    // Access the grant no longer allows (the user's options changed) is the full path's to
    // report: there the provider says whether the lease is still this destination's.
    let grant = session.ssh_grant();
    if egress::authorize_ssh(
        grant,
        &cached.host,
        cached.port,
        cached.identity_file.as_deref(),
    )
    .is_err()
    {
        return Ok(None);
    }
    let target = admit(session, Some(lease.as_str()), &cached, AccessOrigin::Cached)?;
    let claims = session.claims().clone();
    let claim = ClaimCheck {
        claims: &claims,
        lease,
        sandbox,
    };
    let agent = session.ssh_grant().agent;
    Ok(Some(cache.client(&claim, target, agent, session.env())?))
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
