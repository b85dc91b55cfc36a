//! `cbx shard`'s one verdict: what each shard did, the per-shard table on stderr, and the one
//! exit code — 0 only if every shard's command exited 0; else the code of the lowest-numbered
//! shard that failed on its own (its command's exit code, or the exit code of the error that
//! stopped it, e.g. 5 when its sandbox could not be created). Shards cancelled by
//! `--fail-fast` do not decide it.

use std::time::Duration;

use serde::Serialize;

use crate::ops::test_report::TestReport;
use crate::progress::{self, human_duration};

/// How one shard ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ended {
    /// Its command exited 0.
    Passed,
    /// Its command exited non-zero.
    Failed,
    /// Something else stopped it: its lease, the sync, the connection, the clean-up.
    Error,
    /// `--fail-fast` stopped it after another shard failed.
    Cancelled,
    /// A signal stopped it.
    Interrupted,
}

/// What one shard did, for the table and `--json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardReport {
    /// 1-based.
    pub index: u32,
    /// How it ended.
    pub ended: Ended,
    /// Its lease id, once leased.
    pub lease_id: Option<String>,
    /// Its lease's slug.
    pub slug: Option<String>,
    /// Its sandbox.
    pub sandbox_id: Option<String>,
    /// Its command's exit code, when the command ran to its end.
    pub command_exit_code: Option<u8>,
    /// The exit code it stands for: the command's, or its error's.
    pub exit_code: u8,
    /// The error that stopped it, secrets removed.
    pub error: Option<String>,
    /// From the start of `cbx shard` to the end of its clean-up.
    pub seconds: f64,
    /// Whether its lease was kept (`--keep`).
    pub kept: bool,
    /// Its `--junit` results.
    pub tests: Option<TestReport>,
}

impl ShardReport {
    /// A shard that has not done anything yet.
    pub fn new(index: u32) -> ShardReport {
        ShardReport {
            index,
            ended: Ended::Error,
            lease_id: None,
            slug: None,
            sandbox_id: None,
            command_exit_code: None,
            exit_code: 1,
            error: None,
            seconds: 0.0,
            kept: false,
            tests: None,
        }
    }

    /// Whether it failed on its own (a cancelled shard did not).
    pub fn failed(&self) -> bool {
        matches!(
            self.ended,
            Ended::Failed | Ended::Error | Ended::Interrupted
        )
    }
}

/// The one exit code of a shard run (see the module's documentation).
pub fn exit_code(shards: &[ShardReport]) -> u8 {
    shards
        .iter()
        .filter(|s| s.failed())
        .min_by_key(|s| s.index)
        .map_or(0, |s| s.exit_code)
}

/// The per-shard table: shard, lease, result, time, and the error of a shard that had one.
pub fn table(shards: &[ShardReport]) -> Vec<String> {
    let total = shards.len();
    let mut rows = vec![[
        "SHARD".to_string(),
        "LEASE".to_string(),
        "RESULT".to_string(),
        "TIME".to_string(),
    ]];
    for s in shards {
        let result = match s.ended {
            Ended::Passed | Ended::Failed => format!("exit {}", s.exit_code),
            Ended::Error => format!("error (exit {})", s.exit_code),
            Ended::Cancelled => "cancelled".to_string(),
            Ended::Interrupted => "interrupted".to_string(),
        };
        rows.push([
            format!("{}/{total}", s.index),
            s.slug.clone().unwrap_or_else(|| "-".to_string()),
            result,
            human_duration(Duration::from_secs_f64(s.seconds)),
        ]);
    }
    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
    let widths = [width(0), width(1), width(2)];
    let mut lines: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{:w0$}  {:w1$}  {:w2$}  {}",
                r[0],
                r[1],
                r[2],
                r[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            )
        })
        .collect();
    for s in shards {
        if let Some(e) = &s.error {
            lines.push(format!("shard {}/{total}: {e}", s.index));
        }
    }
    lines
}

/// Prints the table on stderr.
pub fn print_table(shards: &[ShardReport]) {
    for line in table(shards) {
        progress::report(&line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(index: u32, ended: Ended, code: u8) -> ShardReport {
        ShardReport {
            ended,
            exit_code: code,
            slug: Some(format!("slug-{index}")),
            ..ShardReport::new(index)
        }
    }

    #[test]
    fn the_exit_code_is_the_first_failing_shards_and_cancelled_ones_do_not_count() {
        assert_eq!(
            exit_code(&[shard(1, Ended::Passed, 0), shard(2, Ended::Passed, 0)]),
            0
        );
        assert_eq!(
            exit_code(&[
                shard(1, Ended::Cancelled, 0),
                shard(2, Ended::Failed, 3),
                shard(3, Ended::Error, 5)
            ]),
            3
        );
        assert_eq!(
            exit_code(&[shard(1, Ended::Error, 5), shard(2, Ended::Failed, 3)]),
            5
        );
    }

    #[test]
    fn the_table_has_a_row_per_shard_and_the_errors_below() {
        let mut bad = shard(2, Ended::Error, 5);
        bad.slug = None;
        bad.error = Some("could not create".into());
        let lines = table(&[
            shard(1, Ended::Passed, 0),
            bad,
            shard(3, Ended::Cancelled, 0),
        ]);
        assert!(lines[0].starts_with("SHARD  LEASE"), "{lines:?}");
        assert!(lines[1].starts_with("1/3    slug-1  exit 0"), "{lines:?}");
        assert!(
            lines[2].starts_with("2/3    -       error (exit 5)"),
            "{lines:?}"
        );
        assert!(lines[3].contains("cancelled"), "{lines:?}");
        assert_eq!(lines[4], "shard 2/3: could not create");
    }
}
