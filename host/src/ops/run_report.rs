//! What `cbx run` reports about itself: the lease, the sync, the phase timings, the exit code,
//! the downloads and the test summary. Written as JSON by `--report PATH` and `--json`
//! (documented in docs/cli.md, which a test holds to it), and, for the timings, as one line
//! on stderr with `-v`.

use std::time::Duration;

use serde::Serialize;

use crate::lease::Lease;
use crate::ops::download::DownloadReport;
use crate::ops::test_report::TestReport;
use crate::progress::human_duration;
use crate::sync::SyncReport;

/// The version of the report's shape; it changes only when a field changes meaning or goes.
pub const REPORT_VERSION: u32 = 1;

/// The report of one `cbx run`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    /// [`REPORT_VERSION`].
    pub version: u32,
    /// The lease used, once it is known.
    pub lease: Option<LeaseReport>,
    /// cbx's own exit code.
    pub exit_code: u8,
    /// The remote command's exit status, if it ran to its end.
    pub command_exit_code: Option<u8>,
    /// cbx's error message, secrets redacted, if it failed.
    pub error: Option<String>,
    /// The sync, if one ran (or was skipped as unchanged).
    pub sync: Option<SyncSummary>,
    /// How long each phase took.
    pub timings: Timings,
    /// One entry per `--download`.
    pub downloads: Vec<DownloadReport>,
    /// The `--junit` summary, if asked for.
    pub tests: Option<TestReport>,
}

/// The lease a run used.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseReport {
    /// `cbx_…`.
    pub lease_id: String,
    /// Its slug.
    pub slug: String,
    /// The provider.
    pub provider: String,
    /// The provider's sandbox id.
    pub sandbox_id: String,
    /// Whether the lease outlives the run (`--id`, `--keep`, a kept failure).
    pub kept: bool,
}

impl LeaseReport {
    /// The report of `lease`.
    pub fn of(lease: &Lease, kept: bool) -> LeaseReport {
        LeaseReport {
            lease_id: lease.ownership.lease.to_string(),
            slug: lease.ownership.slug.clone(),
            provider: lease.ownership.provider.clone(),
            sandbox_id: lease.sandbox.id.clone(),
            kept,
        }
    }
}

/// What the sync did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncSummary {
    /// Nothing changed since the last sync: nothing was sent.
    pub skipped: bool,
    /// Files in the tree.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Files rsync sent, when it said.
    pub sent: Option<u64>,
    /// Files removed on the sandbox.
    pub pruned: u64,
}

impl From<&SyncReport> for SyncSummary {
    fn from(r: &SyncReport) -> SyncSummary {
        SyncSummary {
            skipped: r.skipped,
            files: r.files as u64,
            bytes: r.bytes,
            sent: r.transferred,
            pruned: r.pruned as u64,
        }
    }
}

/// Seconds spent in each phase; `null` for a phase that did not happen.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    /// Leasing a new sandbox, or resolving (and resuming) an existing one.
    pub lease: Option<f64>,
    /// Touching the lease and getting an SSH connection that logs in.
    pub access: Option<f64>,
    /// The sync (or creating the work directory) and passing `--env`.
    pub sync: Option<f64>,
    /// The remote command.
    pub command: Option<f64>,
    /// `--download` and `--junit`.
    pub downloads: Option<f64>,
    /// Deleting a one-shot sandbox.
    pub release: Option<f64>,
}

impl Timings {
    /// One line for people: `timings: lease 1.2s, access 310ms, …` (`-` for a phase that did
    /// not happen).
    pub fn line(&self) -> String {
        let phases = [
            ("lease", self.lease),
            ("access", self.access),
            ("sync", self.sync),
            ("command", self.command),
            ("downloads", self.downloads),
            ("release", self.release),
        ];
        let parts: Vec<String> = phases
            .iter()
            .map(|(name, secs)| match secs {
                Some(s) => format!("{name} {}", human_duration(Duration::from_secs_f64(*s))),
                None => format!("{name} -"),
            })
            .collect();
        format!("timings: {}", parts.join(", "))
    }
}

impl Default for RunReport {
    fn default() -> RunReport {
        RunReport {
            version: REPORT_VERSION,
            lease: None,
            exit_code: 0,
            command_exit_code: None,
            error: None,
            sync: None,
            timings: Timings::default(),
            downloads: Vec::new(),
            tests: None,
        }
    }
}

/// Seconds, for a timing.
pub fn seconds(d: Duration) -> Option<f64> {
    Some((d.as_secs_f64() * 1000.0).round() / 1000.0)
}
