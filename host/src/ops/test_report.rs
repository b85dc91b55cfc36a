//! `run --junit GLOB`: after the command, fetch the JUnit XML files the globs match (into a
//! private temporary directory, unpacked as safely as any download) and print a summary on
//! stderr: the totals, then each failed or errored case with its suite, name and the first
//! lines of its message. Report text is the sandbox's: every line is shown inert. `cbx shard
//! --junit-out` keeps the reports' text to merge them.

use std::io::Read;
use std::path::Path;

use crate::junit::{self, Outcome, Summary};
use crate::lease::session::Session;
use crate::progress;
use crate::ssh::SshClient;
use crate::transfer::pattern;
use crate::transfer::stream::fetch;
use crate::transfer::unpack::Place;

/// The largest report cbx parses.
const MAX_REPORT_BYTES: u64 = 64 << 20;
/// How many failed or errored cases are listed before `…and N more`.
const SHOWN_PROBLEMS: usize = 50;

/// What `--junit` found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TestReport {
    /// The report files parsed.
    pub files: u64,
    /// Their totals and problems.
    #[serde(flatten)]
    pub summary: Summary,
    /// Globs that matched nothing, and reports that could not be read.
    pub warnings: Vec<String>,
    /// The parsed reports' text, when asked for (`shard --junit-out` merges them).
    #[serde(skip)]
    pub documents: Vec<Vec<u8>>,
}

/// Fetches and parses the reports `patterns` match in `workdir`.
pub async fn collect(
    session: &Session,
    ssh: &SshClient,
    workdir: &str,
    patterns: &[String],
) -> TestReport {
    collect_keeping(session, ssh, workdir, patterns, false).await
}

/// [`collect`], keeping the text of every report parsed in [`TestReport::documents`] if
/// `keep`.
pub async fn collect_keeping(
    session: &Session,
    ssh: &SshClient,
    workdir: &str,
    patterns: &[String],
    keep: bool,
) -> TestReport {
    let mut report = TestReport::default();
    let dir = match tempfile::Builder::new().prefix("cbx-junit-").tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            report
                .warnings
                .push(format!("--junit: cannot make a temporary directory: {e}"));
            return report;
        }
    };
    for p in patterns {
        let command = pattern::fetch_command(workdir, std::slice::from_ref(p));
        let place = Place::Into(dir.path().to_path_buf());
        match fetch(ssh, command, place, session.redactor()).await {
            Ok(f) if !f.missing.is_empty() || f.status == Some(pattern::NO_DIRECTORY) => {
                report
                    .warnings
                    .push(format!("--junit {p}: matched nothing on the sandbox"));
            }
            Ok(f) => {
                report
                    .warnings
                    .extend(f.unpacked.refusals(&format!("--junit {p}")));
                if !f.complete() {
                    report.warnings.push(format!(
                        "--junit {p}: the copy did not finish; the complete reports are used"
                    ));
                }
                for file in &f.unpacked.written {
                    read_one(file, dir.path(), keep, &mut report);
                }
            }
            Err(e) => report.warnings.push(format!("--junit {p}: {e:#}")),
        }
    }
    report
}

/// Parses one fetched file into `report` (files not ending in `.xml` are skipped).
fn read_one(file: &Path, root: &Path, keep: bool, report: &mut TestReport) {
    let shown = file
        .strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string();
    if file.extension().is_none_or(|e| e != "xml") {
        return;
    }
    let parsed = std::fs::File::open(file)
        .map_err(|e| e.to_string())
        .and_then(|f| {
            let mut text = Vec::new();
            f.take(MAX_REPORT_BYTES + 1)
                .read_to_end(&mut text)
                .map_err(|e| e.to_string())?;
            if text.len() as u64 > MAX_REPORT_BYTES {
                return Err("larger than 64 MiB; skipped".to_string());
            }
            junit::parse(&text[..]).map(|summary| (summary, text))
        });
    match parsed {
        Ok((summary, text)) => {
            report.files += 1;
            report.summary.absorb(summary);
            if keep {
                report.documents.push(text);
            }
        }
        Err(e) => report.warnings.push(format!("--junit: {shown}: {e}")),
    }
}

/// Prints the summary and the warnings on stderr.
pub fn print(report: &TestReport) {
    for w in &report.warnings {
        progress::report(&format!("warning: {w}"));
    }
    if report.files == 0 {
        return;
    }
    let s = &report.summary;
    progress::report(&format!(
        "tests: {} run, {} passed, {} failed, {} errored, {} skipped ({} {})",
        s.tests,
        s.passed,
        s.failed,
        s.errored,
        s.skipped,
        report.files,
        if report.files == 1 {
            "report"
        } else {
            "reports"
        }
    ));
    for (i, p) in s.problems.iter().enumerate() {
        if i == SHOWN_PROBLEMS {
            progress::report(&format!("  …and {} more", s.problems.len() - i));
            break;
        }
        let label = if p.outcome == Outcome::Errored {
            "ERRORED"
        } else {
            "FAILED"
        };
        progress::report(&format!("  {label} {} › {}", p.suite, p.name));
        for line in &p.message {
            progress::report(&format!("      {line}"));
        }
    }
}
