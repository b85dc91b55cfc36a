//! The conformance suite of `cbx providers test`: a provider run through the whole lease
//! lifecycle against whatever service its endpoint points at (a simulator while developing),
//! each step of the contract checked. Provider authors run it before shipping.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::context::Context;
use crate::lease::access::{AccessOrigin, admit, target_of};
use crate::lease::session::Session;
use crate::provider::api::{self, OptionKind, ProviderError, SandboxState};
use crate::provider::{CallError, Feature};

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
    /// What was seen (secrets removed).
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
    /// The steps, in order.
    pub steps: Vec<ConformanceStep>,
}

/// The suite in progress.
struct Suite<'a> {
    steps: Vec<ConformanceStep>,
    started: Instant,
    /// How long to wait for a state.
    timeout: Duration,
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

/// Runs the suite against provider `name`, waiting up to `timeout` for each state; `on_step`
/// sees each step as it ends.
pub async fn run(
    ctx: &Context,
    name: &str,
    timeout: Duration,
    on_step: &dyn Fn(&ConformanceStep),
) -> ConformanceReport {
    let mut suite = Suite {
        steps: Vec::new(),
        started: Instant::now(),
        timeout,
        on_step,
    };
    match ctx.session(name).await {
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
        provider: name.to_string(),
        passed: !suite.steps.iter().any(|s| s.result == StepResult::Fail),
        steps: suite.steps,
    }
}

/// Every step after loading: describe, doctor, then a sandbox's whole life.
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
    let labels = vec![
        ("cbx-conformance".to_string(), "true".to_string()),
        ("run".to_string(), marker.clone()),
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
        Ok(s) => {
            let detail = format!("sandbox {} ({})", s.id, s.provider_state);
            suite.record("create", StepResult::Pass, detail);
            s.id
        }
        Err(e) => return suite.record("create", StepResult::Fail, text(session, e)),
    };
    lifecycle(suite, session, &id, &labels).await;
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

/// Ready, get, list, set-labels, touch, SSH access, stop and start.
async fn lifecycle(
    suite: &mut Suite<'_>,
    session: &mut Session,
    id: &str,
    labels: &[(String, String)],
) {
    match wait_for(session, id, SandboxState::Ready, suite.timeout).await {
        Ok(s) => suite.record(
            "ready",
            StepResult::Pass,
            format!("state {}", s.provider_state),
        ),
        Err(e) => return suite.record("ready", StepResult::Fail, e),
    }
    match session.get(id).await {
        Ok(s) if labels.iter().all(|l| s.labels.contains(l)) && s.id == id => suite.record(
            "get",
            StepResult::Pass,
            "returns the id and the labels given at create",
        ),
        Ok(s) if s.id != id => {
            suite.record("get", StepResult::Fail, format!("returned id {}", s.id))
        }
        Ok(_) => suite.record(
            "get",
            StepResult::Fail,
            "the labels given at create are missing",
        ),
        Err(e) => suite.record("get", StepResult::Fail, text(session, e)),
    }
    listing(suite, session, id, labels).await;
    labelling(suite, session, id, labels).await;
    match session.touch(id).await {
        Ok(()) => suite.record("touch", StepResult::Pass, "ok"),
        Err(e) => suite.record("touch", StepResult::Fail, text(session, e)),
    }
    ssh_access(suite, session, id).await;
    stop_and_start(suite, session, id).await;
}

/// The sandbox is listed under its labels (lists may lag behind creation: a few seconds).
async fn listing(
    suite: &mut Suite<'_>,
    session: &mut Session,
    id: &str,
    labels: &[(String, String)],
) {
    for _ in 0..10 {
        match session.list(labels).await {
            Ok(items) if items.iter().any(|s| s.id == id) => {
                return suite.record(
                    "list",
                    StepResult::Pass,
                    "the sandbox is listed under its labels",
                );
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            Err(e) => return suite.record("list", StepResult::Fail, text(session, e)),
        }
    }
    suite.record(
        "list",
        StepResult::Warn,
        "the sandbox was not listed within 5 s (cbx falls back to its claims)",
    );
}

/// Replaced labels are read back.
async fn labelling(
    suite: &mut Suite<'_>,
    session: &mut Session,
    id: &str,
    labels: &[(String, String)],
) {
    let mut more = labels.to_vec();
    more.push(("extra".to_string(), "yes".to_string()));
    let read = async {
        session.set_labels(id, &more).await?;
        session.get(id).await
    }
    .await;
    match read {
        Ok(s) if s.labels.contains(&("extra".to_string(), "yes".to_string())) => {
            suite.record("set-labels", StepResult::Pass, "replaced labels read back")
        }
        Ok(_) => suite.record(
            "set-labels",
            StepResult::Warn,
            "replaced labels were not read back (labels fixed at creation?)",
        ),
        Err(e) => suite.record("set-labels", StepResult::Fail, text(session, e)),
    }
}

/// Minted SSH access is usable as an ssh config's target, and its destination lies within
/// the provider's grant (the one check every minted access passes; audited).
async fn ssh_access(suite: &mut Suite<'_>, session: &mut Session, id: &str) {
    match session.mint_ssh_access(id).await {
        Ok(a) => {
            let minted = target_of(a);
            match admit(session, None, &minted, AccessOrigin::Minted) {
                Ok(target) => suite.record(
                    "ssh-access",
                    StepResult::Pass,
                    format!("{}:{}", target.shown_destination(), target.port),
                ),
                Err(e) => suite.record("ssh-access", StepResult::Fail, e.to_string()),
            }
        }
        Err(e) => suite.record("ssh-access", StepResult::Fail, text(session, e)),
    }
}

/// Stop and start, for providers declaring them.
async fn stop_and_start(suite: &mut Suite<'_>, session: &mut Session, id: &str) {
    if !session.declares(Feature::Stop) {
        return suite.record(
            "stop",
            StepResult::Skip,
            "the provider does not declare the `stop` feature",
        );
    }
    match session.stop(id).await {
        Ok(_) => match wait_for(session, id, SandboxState::Stopped, suite.timeout).await {
            Ok(_) => suite.record("stop", StepResult::Pass, "stopped"),
            Err(e) => suite.record("stop", StepResult::Fail, e),
        },
        Err(e) => suite.record("stop", StepResult::Fail, text(session, e)),
    }
    if session.declares(Feature::Start) {
        match session.start(id).await {
            Ok(_) => match wait_for(session, id, SandboxState::Ready, suite.timeout).await {
                Ok(_) => suite.record("start", StepResult::Pass, "ready again"),
                Err(e) => suite.record("start", StepResult::Fail, e),
            },
            Err(e) => suite.record("start", StepResult::Fail, text(session, e)),
        }
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
                let detail = format!("still {} after deletion", s.provider_state);
                suite.record("gone", StepResult::Fail, detail);
                break;
            }
            Err(e) => {
                suite.record("gone", StepResult::Fail, text(session, e));
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    // `delete` reports a sandbox already gone as `Ok(false)`.
    match session.delete(id).await {
        Ok(_) => suite.record("delete again", StepResult::Pass, "idempotent"),
        Err(e) => suite.record("delete again", StepResult::Fail, text(session, e)),
    }
}

async fn wait_for(
    session: &mut Session,
    id: &str,
    want: SandboxState,
    timeout: Duration,
) -> Result<api::Sandbox, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match session.get(id).await {
            Ok(s) if s.state == want => return Ok(s),
            Ok(s) if s.state == SandboxState::Failed => {
                return Err(format!(
                    "the sandbox failed ({}): {}",
                    s.provider_state,
                    s.reason.unwrap_or_default()
                ));
            }
            Ok(s) if Instant::now() >= deadline => {
                return Err(format!(
                    "not {want} after {}s (state {})",
                    timeout.as_secs(),
                    s.provider_state
                ));
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(300)).await,
            Err(e) => return Err(text(session, e)),
        }
    }
}

fn text(session: &Session, e: CallError) -> String {
    session.redactor().redact(&e.to_string())
}
