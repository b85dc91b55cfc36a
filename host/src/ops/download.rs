//! `run --download REMOTE[:LOCAL]` (and `--junit`, see `test_report`): after the command — also when it failed or was
//! interrupted, and before a one-shot sandbox is deleted — copy what the globs match in the
//! work directory back over the lease's connection. A glob that matches nothing, or a copy
//! that breaks off, is a warning; with `--require-download` it is an error, which changes the
//! exit code only of a command that succeeded (exit 6).

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::error::{ErrorKind, Failure, exit_code};
use crate::interrupt;
use crate::lease::session::Session;
use crate::ops::test_report::{self, TestReport};
use crate::progress;
use crate::ssh::SshClient;
use crate::sync::human_bytes;
use crate::terminal::inert;
use crate::testpoint;
use crate::transfer::pattern::{self, NO_DIRECTORY};
use crate::transfer::stream::{Fetched, fetch};
use crate::transfer::unpack::Place;

/// One `--download`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    /// The glob, relative to the work directory.
    pub pattern: String,
    /// The local directory the matches go under (with their relative paths).
    pub local: PathBuf,
}

/// The downloads of a run and whether they are required.
#[derive(Debug, Clone, Default)]
pub struct Downloads {
    /// The `--download` flags, in order.
    pub list: Vec<Download>,
    /// `--require-download`.
    pub required: bool,
    /// The `--junit` globs, fetched after the downloads.
    pub junit: Vec<String>,
}

/// What one `--download` did, for the run's report.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DownloadReport {
    /// The glob, relative to the work directory.
    pub pattern: String,
    /// The local directory.
    pub local: String,
    /// Files written.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Entries the sandbox sent that were refused, each `NAME: why`.
    pub refused: Vec<String>,
    /// Why the download is incomplete (matched nothing, broke off), or null.
    pub problem: Option<String>,
}

/// What ran after the command, for the run's report.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    /// One report per `--download`.
    pub downloads: Vec<DownloadReport>,
    /// The `--junit` summary, if asked for.
    pub tests: Option<TestReport>,
}

/// What the downloads of a run did.
#[derive(Debug, Clone, Default)]
pub struct Downloaded {
    /// Files written, over all downloads.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Every file written.
    pub written: Vec<PathBuf>,
    /// Problems: globs that matched nothing, copies that broke off.
    pub problems: Vec<String>,
    /// One report per download.
    pub reports: Vec<DownloadReport>,
}

/// Parses `REMOTE[:LOCAL]`; a relative LOCAL is taken from `cwd`, the default is `cwd`.
pub fn parse(text: &str, cwd: &Path) -> Result<Download> {
    let (remote, local) = match text.split_once(':') {
        Some((remote, local)) => (remote, Some(local)),
        None => (text, None),
    };
    let pattern = pattern::check(remote, false, "--download")?;
    let local = match local {
        Some("") => {
            return Err(Failure::new(
                ErrorKind::Usage,
                format!(
                    "--download `{}`: the local directory after `:` is empty",
                    inert(text)
                ),
            )
            .hint("write `--download REMOTE` (into the current directory) or `REMOTE:DIR`")
            .into());
        }
        Some(dir) => cwd.join(dir),
        None => cwd.to_path_buf(),
    };
    Ok(Download { pattern, local })
}

/// Runs the downloads after the command whose result is `status`, and returns the run's
/// result: the command's, unless a required download failed after a successful command (exit
/// 6), or a signal ended the downloads (its code). What they did goes to `collected`.
pub async fn after_command(
    session: &Session,
    ssh: &SshClient,
    workdir: &str,
    downloads: &Downloads,
    status: Result<u8>,
    collected: &mut Collected,
) -> Result<u8> {
    if downloads.list.is_empty() && downloads.junit.is_empty() {
        return status;
    }
    let seen = interrupt::received();
    let (done, tests) = tokio::select! {
        d = async {
            testpoint::reached(session.env(), "run:downloading").await;
            let done = fetch_all(session, ssh, workdir, &downloads.list).await;
            let tests = match downloads.junit.is_empty() {
                true => None,
                false => Some(test_report::collect(session, ssh, workdir, &downloads.junit).await),
            };
            (done, tests)
        } => d,
        signal = interrupt::after(seen) => {
            progress::report(&format!(
                "warning: the downloads were interrupted ({}); files not yet complete were removed",
                signal.name()
            ));
            return match status {
                Err(e) if exit_code(&e) >= 128 => Err(e),
                _ => Err(signal.failure("interrupted during the downloads")),
            };
        }
    };
    if let Some(tests) = &tests {
        test_report::print(tests);
    }
    collected.downloads = done.reports.clone();
    collected.tests = tests;
    conclude(done, downloads.required, status)
}

/// Turns the downloads' problems into warnings, or (required) into an error.
fn conclude(done: Downloaded, required: bool, status: Result<u8>) -> Result<u8> {
    if done.problems.is_empty() {
        return status;
    }
    if !required {
        for p in &done.problems {
            progress::report(&format!("warning: {p}"));
        }
        return status;
    }
    let failure = Failure::new(ErrorKind::Sync, done.problems.join("\n")).hint(
        "check the paths (globs are relative to the work directory), or drop --require-download",
    );
    match status {
        Ok(0) => Err(failure.into()),
        other => {
            progress::report(&format!("error: {}", done.problems.join("\n  ")));
            other
        }
    }
}

/// Runs each download in turn, reporting what each copied.
async fn fetch_all(
    session: &Session,
    ssh: &SshClient,
    workdir: &str,
    list: &[Download],
) -> Downloaded {
    let mut done = Downloaded::default();
    for d in list {
        let command = pattern::fetch_command(workdir, std::slice::from_ref(&d.pattern));
        let fetched = fetch(
            ssh,
            command,
            Place::Into(d.local.clone()),
            session.redactor(),
        )
        .await;
        match fetched {
            Ok(f) => account(session, d, f, &mut done),
            Err(e) => {
                let problem = format!("--download {}: {e:#}", d.pattern);
                done.reports.push(DownloadReport {
                    pattern: d.pattern.clone(),
                    local: d.local.display().to_string(),
                    problem: Some(problem.clone()),
                    ..DownloadReport::default()
                });
                done.problems.push(problem);
            }
        }
    }
    done
}

/// Adds one download's result to `done`, printing its summary and refusals.
fn account(session: &Session, d: &Download, f: Fetched, done: &mut Downloaded) {
    for line in f.unpacked.refusals(&format!("--download {}", d.pattern)) {
        progress::report(&format!("warning: {line}"));
    }
    done.files += f.unpacked.files;
    done.bytes += f.unpacked.bytes;
    done.written.extend(f.unpacked.written.iter().cloned());
    done.reports.push(DownloadReport {
        pattern: d.pattern.clone(),
        local: d.local.display().to_string(),
        files: f.unpacked.files,
        bytes: f.unpacked.bytes,
        refused: f.unpacked.refused.clone(),
        problem: None,
    });
    let before = done.problems.len();
    record(session, d, &f, done);
    if done.problems.len() > before
        && let Some(r) = done.reports.last_mut()
    {
        r.problem = done.problems.last().cloned();
    }
}

/// Adds one download's problem to `done`, or prints its summary.
fn record(session: &Session, d: &Download, f: &Fetched, done: &mut Downloaded) {
    if f.status == Some(NO_DIRECTORY) {
        done.problems.push(format!(
            "--download {}: the work directory does not exist on the sandbox",
            d.pattern
        ));
        return;
    }
    if !f.missing.is_empty() {
        done.problems.push(format!(
            "--download {}: matched nothing on the sandbox",
            d.pattern
        ));
        return;
    }
    if !f.complete() {
        let why = f.broken.clone().unwrap_or_else(|| match f.status {
            Some(code) => format!("exit {code}: {}", f.stderr),
            None => "the connection was closed".to_string(),
        });
        done.problems.push(format!(
            "--download {}: the copy did not finish ({why}); {} complete files were kept",
            d.pattern, f.unpacked.files
        ));
        return;
    }
    progress::note(
        session.quiet(),
        &format!(
            "downloaded {} {} ({}) from {} to {}",
            f.unpacked.files,
            if f.unpacked.files == 1 {
                "file"
            } else {
                "files"
            },
            human_bytes(f.unpacked.bytes),
            d.pattern,
            d.local.display()
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_and_without_a_local_directory() {
        let cwd = Path::new("/home/me/repo");
        assert_eq!(
            parse("target/*.xml", cwd).unwrap(),
            Download {
                pattern: "target/*.xml".into(),
                local: cwd.into()
            }
        );
        assert_eq!(parse("dist/:out", cwd).unwrap().local, cwd.join("out"));
        assert_eq!(
            parse("dist:/tmp/x", cwd).unwrap().local,
            PathBuf::from("/tmp/x")
        );
        let e = parse("dist:", cwd).unwrap_err();
        assert!(format!("{e:#}").contains("is empty"), "{e:#}");
        let e = parse("../secrets:out", cwd).unwrap_err();
        assert!(format!("{e:#}").contains("`..`"), "{e:#}");
    }
}
