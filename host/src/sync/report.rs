//! What a sync did, and how cbx says it: [`SyncReport`], its one-line summary and the
//! `1.2 MB` sizes used in sync messages.

use std::time::Duration;

use super::transport::Transport;
use crate::progress::human_duration;

/// What a sync did.
#[derive(Debug, Clone)]
pub struct SyncReport {
    /// Whether it was skipped because nothing changed.
    pub skipped: bool,
    /// Files in the tree.
    pub files: usize,
    /// Their size.
    pub bytes: u64,
    /// Files the transport sent.
    pub transferred: Option<u64>,
    /// The transport that sent them (none when the sync was skipped).
    pub transport: Option<Transport>,
    /// Files pruned remotely.
    pub pruned: usize,
    /// How long it took.
    pub took: Duration,
}

/// `1.2 MB` style sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// One line describing a finished sync.
pub fn summary(report: &SyncReport, remote_dir: &str) -> String {
    if report.skipped {
        format!(
            "no changes since the last sync ({} files checked in {})",
            report.files,
            human_duration(report.took)
        )
    } else {
        format!(
            "synced {} files ({}) to {remote_dir} in {}{}{}{}",
            report.files,
            human_bytes(report.bytes),
            human_duration(report.took),
            report
                .transport
                .map(|t| format!(" with {}", t.name()))
                .unwrap_or_default(),
            report
                .transferred
                .map(|t| format!("; {t} sent"))
                .unwrap_or_default(),
            if report.pruned > 0 {
                format!("; {} pruned", report.pruned)
            } else {
                String::new()
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_summaries_read_well() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_234_567), "1.2 MB");
        let report = SyncReport {
            skipped: false,
            files: 3,
            bytes: 2_000,
            transferred: Some(2),
            pruned: 1,
            transport: Some(Transport::Tar),
            took: Duration::from_millis(40),
        };
        assert_eq!(
            summary(&report, "cbx/l/app"),
            "synced 3 files (2.0 kB) to cbx/l/app in 40ms with tar; 2 sent; 1 pruned"
        );
        let skipped = SyncReport {
            skipped: true,
            ..report
        };
        assert_eq!(
            summary(&skipped, "cbx/l/app"),
            "no changes since the last sync (3 files checked in 40ms)"
        );
    }
}
