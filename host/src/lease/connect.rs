//! Reaching a lease's sandbox: an SSH client that can log in (cached access, or fresh access
//! waited for), and the remote work directory. The login that proves SSH works also reports
//! the sandbox's tools (`sync::tools`), recorded for the lease so that its syncs pick their
//! transport without asking again, and its login environment (`login_env`), which later
//! commands reuse instead of starting a login shell each.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::lease::Lease;
use crate::lease::access;
use crate::lease::session::Session;
use crate::login_env::{self, Captured};
use crate::ssh::SshClient;
use crate::sync::tools::{self, RemoteTools};

/// How long to wait for SSH to accept a login on a fresh sandbox.
pub const SSH_READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long to wait for SSH on a persistent provider's sandbox: an existing host is up or not,
/// and a refused login will not start working by waiting.
pub const PERSISTENT_SSH_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// An SSH client for `lease` that can log in now. Cached access that no longer works (expired
/// or revoked) is replaced by freshly minted access. A login made to find out records the
/// sandbox's tools.
pub async fn ssh(session: &mut Session, lease: &Lease) -> Result<SshClient> {
    let timeout = if session.persistent() {
        PERSISTENT_SSH_READY_TIMEOUT
    } else {
        SSH_READY_TIMEOUT
    };
    let (client, fresh) = access::obtain(session, lease, None).await?;
    if client.master_alive() {
        return Ok(client);
    }
    let probe = login_probe(lease)?;
    if fresh {
        // Just minted: the sandbox's SSH may still be coming up. Minting again would only
        // revoke this access (and another process's, sharing it).
        let printed = client.wait_ready(timeout, session.quiet(), &probe).await?;
        record_tools(session, lease, printed.as_deref());
        return Ok(client);
    }
    if let Ok(printed) = client.probe(&probe).await {
        record_tools(session, lease, Some(&printed));
        return Ok(client);
    }
    // Cached access that no longer logs in (expired or revoked): mint new access, unless
    // another process just did, and wait for it to work.
    let (client, _) = access::obtain(session, lease, Some(&client)).await?;
    let printed = client.wait_ready(timeout, session.quiet(), &probe).await?;
    record_tools(session, lease, printed.as_deref());
    Ok(client)
}

/// The shell text a login runs to find out: the tools probe, then the login environment's
/// capture (one round trip).
pub fn login_probe(lease: &Lease) -> Result<String> {
    Ok(format!(
        "{}; {}",
        RemoteTools::PROBE,
        login_env::capture(&lease_dir(lease)?)
    ))
}

/// Records the tools and the login environment a login's probe reported (`printed`), if it
/// reported them; returns what the capture found.
pub fn record_tools(session: &Session, lease: &Lease, printed: Option<&str>) -> Option<Captured> {
    let printed = printed?;
    let found = RemoteTools::read(printed)?;
    tracing::debug!("at SSH-ready the sandbox has {found:?}");
    let state = &session.dirs().state;
    let id = lease.ownership.lease.as_str();
    let captured = login_env::read(printed).unwrap_or_else(|| {
        Captured::NotCached("the login printed no environment (its shell stopped early)".into())
    });
    if let Captured::NotCached(why) = &captured {
        tracing::debug!("the login environment is not cached: {why}");
    }
    tools::remember_login(state, id, &found, captured.clone());
    Some(captured)
}

/// The lease's directory on the sandbox, `<work root>/<lease id>`, relative to the login
/// directory unless the work root is absolute; fails as [`workdir`] does.
pub fn lease_dir(lease: &Lease) -> Result<String> {
    crate::remote::check_work_root(&lease.ownership.provider, &lease.ownership.work_root)?;
    let root = lease.ownership.work_root.trim_end_matches('/');
    let root = root.strip_prefix("~/").unwrap_or(root);
    let root = if root.is_empty() || root == "~" {
        "."
    } else {
        root
    };
    Ok(format!("{root}/{}", lease.ownership.lease))
}

/// The remote work directory for `repo` on `lease`: `<work root>/<lease id>/<repo name>`. A
/// work root that a remote command could misread (leading `-`, control characters) is a
/// provider fault (exit 8).
pub fn workdir(lease: &Lease, repo: Option<&Path>) -> Result<String> {
    let dir = lease_dir(lease)?;
    let name = repo
        .and_then(|r| r.file_name())
        .map(|n| {
            n.to_string_lossy()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "._-".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect::<String>()
        })
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .unwrap_or_else(|| "work".into());
    Ok(format!("{dir}/{name}"))
}
