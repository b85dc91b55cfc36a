//! The conformance suite of `cbx providers test`: a provider run through the whole lease
//! lifecycle against whatever service its endpoint points at (a fake of the service while
//! developing), each step of the contract checked. Provider authors run it before shipping.
//!
//! The checks look for the usual mistakes and name their likely cause: a `list` that ignores
//! its labels, a state mapping that says `ready` too early or never leaves it, labels that do
//! not round-trip, service errors mapped to the wrong variant.
//!
//! - [`lifecycle`]: create, ready, get, list, labels, touch, SSH access, stop and start.
//! - [`mapping`]: how the provider maps the service's words and errors.

mod lifecycle;
mod mapping;

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::context::Context;
use crate::lease::session::Session;
use crate::provider::CallError;
use crate::provider::api::{self, OptionKind, ProviderError, SandboxState};
use crate::provider::registry::ProviderPackage;

/// How a step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepResult {
    /// The provider did what the contract says.
    Pass,
    /// It did not.
    Fail,
    /// It did something cbx copes with, but should not.
    Warn,
    /// The step does not apply to this provider.
    Skip,
}

impl StepResult {
    /// The word the report uses.
    pub fn as_str(self) -> &'static str {
        match self {
            StepResult::Pass => "pass",
            StepResult::Fail => "fail",
            StepResult::Warn => "warn",
            StepResult::Skip => "skip",
        }
    }
}

/// One step of the suite.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConformanceStep {
    /// Which step.
    pub step: &'static str,
    /// How it went.
    pub result: StepResult,
    /// What was seen (secrets removed), and for a failure its likely cause.
    pub detail: String,
    /// How long it took.
    pub millis: u128,
}

/// What the suite found. Field names are documented in docs/cli.md and stable.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConformanceReport {
    /// The provider tested.
    pub provider: String,
    /// Whether no step failed.
    pub passed: bool,
    /// How long each step could wait for a state, in seconds.
    pub timeout_secs: u64,
    /// The steps, in order.
    pub steps: Vec<ConformanceStep>,
}

/// What is tested: a provider cbx knows by name, or a component file not installed.
pub enum Subject {
    /// A built-in or installed provider.
    Named(String),
    /// A component and manifest read from files (`--component`).
    File(Box<ProviderPackage>),
}

impl Subject {
    fn name(&self) -> &str {
        match self {
            Subject::Named(n) => n,
            Subject::File(p) => p.name(),
        }
    }
}

/// The suite in progress.
pub(crate) struct Suite<'a> {
    steps: Vec<ConformanceStep>,
    started: Instant,
    /// How long to wait for a state.
    timeout: Duration,
    /// Whether to show no progress while waiting.
    quiet: bool,
    /// Sees each step as it is recorded.
    on_step: &'a dyn Fn(&ConformanceStep),
}

impl Suite<'_> {
    fn record(&mut self, step: &'static str, result: StepResult, detail: impl Into<String>) {
        let s = ConformanceStep {
            step,
            result,
            detail: detail.into(),
            millis: self.started.elapsed().as_millis(),
        };
        (self.on_step)(&s);
        self.steps.push(s);
        self.started = Instant::now();
    }
}

/// Runs the suite against `subject`, letting each step wait up to `timeout` for a state;
/// `on_step` sees each step as it ends.
pub async fn run(
    ctx: &Context,
    subject: Subject,
    timeout: Duration,
    on_step: &dyn Fn(&ConformanceStep),
) -> ConformanceReport {
    let mut suite = Suite {
        steps: Vec::new(),
        started: Instant::now(),
        timeout,
        quiet: ctx.flags.quiet,
        on_step,
    };
    let name = subject.name().to_string();
    let opened = match subject {
        Subject::Named(n) => ctx.session(&n).await,
        Subject::File(package) => ctx.session_of_file(*package).await,
    };
    match opened {
        Ok(mut session) => {
            suite.record(
                "load+configure",
                StepResult::Pass,
                format!("work root `{}`", session.profile().work_root),
            );
            exercise(&mut suite, &mut session).await;
        }
        Err(e) => suite.record(
            "load+configure",
            StepResult::Fail,
            ctx.redactor.redact(&format!("{e:#}")),
        ),
    }
    ConformanceReport {
        provider: name,
        passed: !suite.steps.iter().any(|s| s.result == StepResult::Fail),
        timeout_secs: timeout.as_secs(),
        steps: suite.steps,
    }
}

/// Every step after loading: describe, doctor, errors, then a sandbox's whole life.
async fn exercise(suite: &mut Suite<'_>, session: &mut Session) {
    describe_checks(suite, session.info());
    match session.doctor().await {
        Ok(checks) if checks.iter().any(|c| c.status == api::CheckStatus::Fail) => {
            suite.record(
                "doctor",
                StepResult::Fail,
                "doctor reported a failing check",
            );
        }
        Ok(checks) => suite.record(
            "doctor",
            StepResult::Pass,
            format!("{} checks", checks.len()),
        ),
        Err(e) => suite.record("doctor", StepResult::Fail, text(session, e)),
    }
    let marker = format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
    mapping::not_found(suite, session, &marker).await;
    let labels = vec![
        ("cbx-conformance".to_string(), "true".to_string()),
        ("run".to_string(), marker.clone()),
        // A value with the characters cbx's own labels use (paths, times).
        ("path".to_string(), "/home/dev/cbx:1.5".to_string()),
    ];
    let request = api::CreateRequest {
        name: format!("cbx-conformance-{marker}"),
        labels: labels.clone(),
        idle_timeout_minutes: 15,
        ttl_minutes: 30,
    };
    let id = match session.create(&request).await {
        Ok(s) if s.id.is_empty() => {
            return suite.record("create", StepResult::Fail, "the sandbox has an empty id");
        }
        Ok(s) => match mapping::early_ready(&s) {
            Some(cause) => {
                suite.record("create", StepResult::Fail, cause);
                s.id
            }
            None => {
                let detail = format!("sandbox {} ({})", s.id, s.provider_state);
                suite.record("create", StepResult::Pass, detail);
                s.id
            }
        },
        Err(e) => return suite.record("create", StepResult::Fail, text(session, e)),
    };
    lifecycle::run(suite, session, &id, &labels).await;
    mapping::errors(suite, session, &id).await;
    // Always clean up, then check deletion.
    deletion(suite, session, &id).await;
}

fn describe_checks(suite: &mut Suite<'_>, info: &api::ProviderInfo) {
    let semver = info.version.split('.').count() >= 3
        && info
            .version
            .split(['.', '-', '+'])
            .take(3)
            .all(|p| p.parse::<u64>().is_ok());
    let bad_option = info.options.iter().find(|o| {
        let name_ok = !o.name.is_empty()
            && o.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        let default_ok = match (&o.kind, &o.default) {
            (OptionKind::Integer, Some(d)) => d.parse::<i64>().is_ok(),
            (OptionKind::Boolean, Some(d)) => d == "true" || d == "false",
            _ => true,
        };
        !name_ok || !default_ok || o.description.is_empty()
    });
    match (semver, bad_option) {
        (false, _) => suite.record(
            "describe",
            StepResult::Fail,
            format!("version `{}` is not semver", info.version),
        ),
        (_, Some(o)) => suite.record(
            "describe",
            StepResult::Fail,
            format!(
                "option `{}` has a bad name, default or no description",
                o.name
            ),
        ),
        _ => suite.record(
            "describe",
            StepResult::Pass,
            format!(
                "{} {}, {} options",
                info.name,
                info.version,
                info.options.len()
            ),
        ),
    }
}

/// Delete, gone (unless persistent), delete again.
async fn deletion(suite: &mut Suite<'_>, session: &mut Session, id: &str) {
    match session.delete(id).await {
        Ok(_) => suite.record("delete", StepResult::Pass, "accepted"),
        Err(e) => suite.record("delete", StepResult::Fail, text(session, e)),
    }
    if session.persistent() {
        return suite.record(
            "gone",
            StepResult::Skip,
            "the provider's sandboxes are persistent: delete releases the lease only",
        );
    }
    let deadline = Instant::now() + suite.timeout;
    loop {
        match session.get(id).await {
            Err(CallError::Provider(ProviderError::NotFound(_))) => {
                suite.record("gone", StepResult::Pass, "get answers not-found");
                break;
            }
            Ok(s) if s.state == SandboxState::Deleted && Instant::now() >= deadline => {
                let detail = format!("state deleted ({})", s.provider_state);
                suite.record("gone", StepResult::Pass, detail);
                break;
            }
            Ok(s) if Instant::now() >= deadline => {
                let detail = format!(
                    "still {} ({}) after deletion: get must answer not-found (HTTP 404 → \
                     not-found) or state deleted once the service has deleted it",
                    s.state, s.provider_state
                );
                suite.record("gone", StepResult::Fail, detail);
                break;
            }
            Err(e) => {
                suite.record("gone", StepResult::Fail, text(session, e));
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
    // `delete` reports a sandbox already gone as `Ok(false)`.
    match session.delete(id).await {
        Ok(_) => suite.record("delete again", StepResult::Pass, "idempotent"),
        Err(e) => suite.record(
            "delete again",
            StepResult::Fail,
            format!(
                "{}: deleting a deleted sandbox must succeed or answer not-found",
                text(session, e)
            ),
        ),
    }
}

fn text(session: &Session, e: CallError) -> String {
    session.redactor().redact(&e.to_string())
}
