//! What a lease's sandbox has to receive files with — rsync, tar (and the `sh` that runs the
//! probe) — and the record of it kept beside the lease's sync records.
//!
//! The probe is a shell snippet that rides on a round trip cbx makes anyway: the login that
//! proves SSH works on the cold path (`lease::connect`), `cbx doctor --lease`, and the
//! prepare round trip of a sync that prunes. A sync reads the record to pick its transport
//! without asking the sandbox; it probes again only after `--resync`, when its transport
//! turns out to be missing, or when what was recorded cannot sync.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::login_env::Captured;
use crate::paths;

/// What the sandbox has, as a probe reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteTools {
    /// `rsync` is on the sandbox's PATH.
    pub rsync: bool,
    /// `tar` is on the sandbox's PATH.
    pub tar: bool,
    /// The first line of the sandbox's `rsync --version`, if it has rsync.
    pub rsync_version: Option<String>,
}

/// The marker that starts the tools line of the probe's output.
const MARKER: &str = "cbx-tools:";

/// The longest `rsync --version` line kept, in characters.
const VERSION_CHARS: usize = 120;

impl RemoteTools {
    /// The shell snippet that reports the tools: a line `cbx-tools: rsync tar` naming those on
    /// PATH, then the first line of `rsync --version`. The login shell that runs it is the
    /// sandbox's `sh`; it always succeeds.
    pub const PROBE: &'static str = "{ printf 'cbx-tools:'; for t in rsync tar; do command -v \"$t\" >/dev/null 2>&1 && printf ' %s' \"$t\"; done; echo; rsync --version 2>/dev/null | head -n 1; true; }";

    /// Reads the probe's output (anything before the marker line is ignored: a login banner);
    /// `None` when the output has no tools line (the probe did not run as expected).
    pub fn read(output: &str) -> Option<RemoteTools> {
        let mut lines = output.lines().skip_while(|l| !l.starts_with(MARKER));
        let tools = lines.next()?;
        let names: Vec<&str> = tools[MARKER.len()..].split_whitespace().collect();
        let rsync = names.contains(&"rsync");
        Some(RemoteTools {
            rsync,
            tar: names.contains(&"tar"),
            // The sandbox's words: one line, of a sane length.
            rsync_version: lines
                .next()
                .filter(|l| rsync && l.starts_with("rsync"))
                .map(|l| l.chars().take(VERSION_CHARS).collect()),
        })
    }

    /// As [`RemoteTools::read`], with no tools line meaning no tools.
    pub fn parse(output: &str) -> RemoteTools {
        Self::read(output).unwrap_or_default()
    }

    /// The tools found, in words: `rsync (rsync  version 3.2.7 …), tar`, or `none`.
    pub fn describe(&self) -> String {
        let mut found = Vec::new();
        if self.rsync {
            found.push(match &self.rsync_version {
                Some(v) => format!("rsync ({})", v.trim()),
                None => "rsync".to_string(),
            });
        }
        if self.tar {
            found.push("tar".to_string());
        }
        if found.is_empty() {
            "neither rsync nor tar".to_string()
        } else {
            found.join(", ")
        }
    }
}

/// The record of a lease's tools, with when they were probed, and the login environment
/// read at the same login (`login_env`; absent in records of older cbx, and after a sync's
/// own probe replaced a record that had none).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Recorded {
    #[serde(flatten)]
    tools: RemoteTools,
    probed_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    login_env: Option<Captured>,
}

fn path_of(state_dir: &Path, lease: &str) -> PathBuf {
    state_dir.join("sync").join(format!("{lease}.tools"))
}

fn load_record(state_dir: &Path, lease: &str) -> Option<Recorded> {
    let bytes = fs_err::read(path_of(state_dir, lease)).ok()?;
    serde_json::from_slice::<Recorded>(&bytes).ok()
}

/// The tools last recorded for `lease`'s sandbox, if there is a readable record.
pub fn load(state_dir: &Path, lease: &str) -> Option<RemoteTools> {
    load_record(state_dir, lease).map(|r| r.tools)
}

/// The login environment last read from `lease`'s sandbox (or why it was not cached), if the
/// record has one.
pub fn load_login(state_dir: &Path, lease: &str) -> Option<Captured> {
    load_record(state_dir, lease).and_then(|r| r.login_env)
}

/// Records `tools` as what `lease`'s sandbox has, keeping the login environment recorded.
pub fn save(state_dir: &Path, lease: &str, tools: &RemoteTools) -> Result<()> {
    let login_env = load_login(state_dir, lease);
    save_with_login(state_dir, lease, tools, login_env)
}

/// Records `tools` and the login environment `login_env` read at the same login.
fn save_with_login(
    state_dir: &Path,
    lease: &str,
    tools: &RemoteTools,
    login_env: Option<Captured>,
) -> Result<()> {
    let recorded = Recorded {
        tools: tools.clone(),
        probed_at: chrono::Utc::now().to_rfc3339(),
        login_env,
    };
    paths::write_private_atomic(
        &path_of(state_dir, lease),
        &serde_json::to_vec_pretty(&recorded)?,
    )
}

/// Records `tools` (best effort: a sync without the record only probes again).
pub fn remember(state_dir: &Path, lease: &str, tools: &RemoteTools) {
    if let Err(e) = save(state_dir, lease, tools) {
        tracing::debug!("could not record the sandbox's tools: {e:#}");
    }
}

/// Records `tools` and the login environment `captured` (best effort: without it, commands
/// run under the login shell).
pub fn remember_login(state_dir: &Path, lease: &str, tools: &RemoteTools, captured: Captured) {
    if let Err(e) = save_with_login(state_dir, lease, tools, Some(captured)) {
        tracing::debug!("could not record the sandbox's tools: {e:#}");
    }
}

/// Removes the record of `lease`'s tools.
pub fn forget(state_dir: &Path, lease: &str) {
    let _ = fs_err::remove_file(path_of(state_dir, lease));
}

/// Tests: a sandbox that has rsync and tar as told (and no rsync version line).
#[cfg(test)]
pub(crate) fn having(rsync: bool, tar: bool) -> RemoteTools {
    RemoteTools {
        rsync,
        tar,
        rsync_version: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::having as tools;

    /// The login environment rides with the tools: a sync's own probe keeps it, and it is
    /// forgotten with the record.
    #[test]
    fn the_login_environment_is_kept_by_a_sync_and_forgotten_with_the_tools() {
        let dir = tempfile::tempdir().unwrap();
        let lease = "cbx_0123456789ab";
        let captured = Captured::NotCached("why".into());
        remember_login(dir.path(), lease, &tools(true, false), captured.clone());
        assert_eq!(load_login(dir.path(), lease), Some(captured.clone()));
        remember(dir.path(), lease, &tools(true, true));
        assert_eq!(load(dir.path(), lease), Some(tools(true, true)));
        assert_eq!(load_login(dir.path(), lease), Some(captured));
        forget(dir.path(), lease);
        assert_eq!(load_login(dir.path(), lease), None);
    }

    #[test]
    fn the_probe_output_is_read() {
        let t = RemoteTools::parse(
            "banner\ncbx-tools: rsync tar\nrsync  version 3.2.7  protocol version 31\n",
        );
        assert_eq!(
            t,
            RemoteTools {
                rsync: true,
                tar: true,
                rsync_version: Some("rsync  version 3.2.7  protocol version 31".into())
            }
        );
        assert_eq!(
            t.describe(),
            "rsync (rsync  version 3.2.7  protocol version 31), tar"
        );
        assert_eq!(RemoteTools::parse("cbx-tools: tar\n"), tools(false, true));
        assert_eq!(RemoteTools::parse("cbx-tools:\n"), tools(false, false));
        assert_eq!(RemoteTools::parse(""), tools(false, false));
        assert_eq!(RemoteTools::read("welcome\n"), None);
        let long = format!("cbx-tools: rsync\nrsync  version {}\n", "9".repeat(10_000));
        let version = RemoteTools::parse(&long).rsync_version.unwrap();
        assert_eq!(version.chars().count(), VERSION_CHARS);
        assert_eq!(tools(false, false).describe(), "neither rsync nor tar");
    }

    /// The record as every cbx so far has written it; it loads back and is forgotten.
    #[test]
    fn the_record_is_pinned_loads_and_is_forgotten() {
        let recorded = Recorded {
            tools: tools(false, true),
            probed_at: "T".into(),
            login_env: None,
        };
        assert_eq!(
            String::from_utf8(serde_json::to_vec_pretty(&recorded).unwrap()).unwrap(),
            "{\n  \"rsync\": false,\n  \"tar\": true,\n  \"rsyncVersion\": null,\n  \"probedAt\": \"T\"\n}"
        );
        let dir = tempfile::tempdir().unwrap();
        let lease = "cbx_0123456789ab";
        assert_eq!(load(dir.path(), lease), None);
        save(dir.path(), lease, &tools(true, true)).unwrap();
        assert_eq!(load(dir.path(), lease), Some(tools(true, true)));
        assert_eq!(load_login(dir.path(), lease), None);
        forget(dir.path(), lease);
        assert_eq!(load(dir.path(), lease), None);
    }
}
