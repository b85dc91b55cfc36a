//! `cbx cp`: copy files and directories between this machine and a lease's sandbox (the work
//! is `ops::copy`).

use std::path::PathBuf;

use anyhow::Result;

use crate::cli::args::CpArgs;
use crate::context::Context;
use crate::error::{ErrorKind, Failure};
use crate::ops::copy::{self, CopyRequest, Direction};
use crate::progress;
use crate::sync::human_bytes;
use crate::terminal::inert;

/// Runs `cbx cp`.
pub async fn run(ctx: &Context, args: &CpArgs) -> Result<u8> {
    let (lease, direction) = match (remote(&args.source), remote(&args.destination)) {
        (Some((lease, path)), None) => (
            lease,
            Direction::Download {
                remote: path,
                local: local_path(ctx, &args.destination),
            },
        ),
        (None, Some((lease, path))) => (
            lease,
            Direction::Upload {
                local: local_path(ctx, &args.source),
                remote: path,
            },
        ),
        (Some(_), Some(_)) => {
            return Err(usage(
                "both SRC and DST name a lease; cbx copies between this machine and one lease",
            ));
        }
        (None, None) => {
            return Err(usage("neither SRC nor DST names a lease (`LEASE:PATH`)"));
        }
    };
    let times = ctx
        .config
        .lease_times(crate::config::LeaseFlags::default(), &ctx.env)?;
    let request = CopyRequest {
        lease: lease.clone(),
        direction: direction.clone(),
        ready_timeout: times.ready.val,
    };
    let copied = copy::copy(ctx, &request).await?;
    for r in &copied.refused {
        progress::report(&format!("warning: cp: {r}"));
    }
    if args.json {
        let (kind, local, files, bytes) = match &direction {
            Direction::Download { local, .. } => {
                ("download", local, Some(copied.files), Some(copied.bytes))
            }
            Direction::Upload { local, .. } => ("upload", local, None, None),
        };
        let json = serde_json::json!({
            "leaseId": copied.lease,
            "direction": kind,
            "remote": copied.remote,
            "local": local.display().to_string(),
            "files": files,
            "bytes": bytes,
            "refused": copied.refused,
        });
        println!("{json}");
        return Ok(0);
    }
    let line = match &direction {
        Direction::Download { local, .. } => format!(
            "copied {} {} ({}) from {}:{} to {}",
            copied.files,
            if copied.files == 1 { "file" } else { "files" },
            human_bytes(copied.bytes),
            copied.lease,
            copied.remote,
            local.display()
        ),
        Direction::Upload { local, .. } => format!(
            "copied {} to {}:{}",
            local.display(),
            copied.lease,
            copied.remote
        ),
    };
    println!("{}", inert(&line));
    Ok(0)
}

/// `(lease, path)` when `arg` is `LEASE:PATH`: a colon with no `/` before it.
fn remote(arg: &str) -> Option<(String, String)> {
    let (lease, path) = arg.split_once(':')?;
    if lease.is_empty() || lease.contains('/') {
        return None;
    }
    Some((lease.to_string(), path.to_string()))
}

fn local_path(ctx: &Context, arg: &str) -> PathBuf {
    let mut path = ctx.cwd.join(arg);
    if arg.ends_with('/') {
        // Keep the trailing slash: it asks for "into this directory".
        path.push("");
    }
    path
}

fn usage(message: &str) -> anyhow::Error {
    Failure::new(ErrorKind::Usage, format!("cp: {message}"))
        .hint("write `cbx cp LEASE:REMOTE LOCAL` or `cbx cp LOCAL LEASE:REMOTE`")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_paths_need_a_colon_before_any_slash() {
        assert_eq!(remote("alpha:dist"), Some(("alpha".into(), "dist".into())));
        assert_eq!(
            remote("cbx_0123456789ab:/etc/hosts"),
            Some(("cbx_0123456789ab".into(), "/etc/hosts".into()))
        );
        assert_eq!(remote("./a:b"), None);
        assert_eq!(remote("dir/a:b"), None);
        assert_eq!(remote(":x"), None);
        assert_eq!(remote("plain"), None);
    }
}
