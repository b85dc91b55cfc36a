//! `cbx providers test`: run a provider through the whole lease lifecycle against whatever
//! service its endpoint points at (a simulator while developing), checking each step of the
//! contract. Provider authors run it before shipping.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use crate::cli::Context;
use crate::cli::output;
use crate::lease::session::Session;
use crate::provider::CallError;
use crate::provider::api::{self, OptionKind, ProviderError, SandboxState};
use crate::ssh::Target;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Step {
    step: &'static str,
    result: &'static str,
    detail: String,
    millis: u128,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    provider: String,
    passed: bool,
    steps: Vec<Step>,
}

struct Run {
    steps: Vec<Step>,
    started: Instant,
    json: bool,
    /// How long to wait for a state.
    timeout: Duration,
}

impl Run {
    fn record(&mut self, step: &'static str, result: &'static str, detail: impl Into<String>) {
        let s = Step {
            step,
            result,
            detail: detail.into(),
            millis: self.started.elapsed().as_millis(),
        };
        if !self.json {
            eprintln!("{:<5} {:<16} {}", s.result, s.step, s.detail);
        }
        self.steps.push(s);
        self.started = Instant::now();
    }

    fn failed(&self) -> bool {
        self.steps.iter().any(|s| s.result == "fail")
    }
}

/// Runs `cbx providers test NAME`.
pub async fn run(ctx: &Context, name: &str, timeout: Duration, json: bool) -> Result<u8> {
    let mut run = Run {
        steps: Vec::new(),
        started: Instant::now(),
        json,
        timeout,
    };
    let mut session = match ctx.session(name).await {
        Ok(s) => s,
        Err(e) => {
            run.record(
                "load+configure",
                "fail",
                ctx.redactor.redact(&format!("{e:#}")),
            );
            return finish(name, run, json);
        }
    };
    run.record(
        "load+configure",
        "pass",
        format!("work root `{}`", session.profile.work_root),
    );
    describe_checks(&mut run, &session.info);

    match session.provider.doctor().await {
        Ok(checks) if checks.iter().any(|c| c.status == api::CheckStatus::Fail) => {
            run.record("doctor", "fail", "doctor reported a failing check");
        }
        Ok(checks) => run.record("doctor", "pass", format!("{} checks", checks.len())),
        Err(e) => run.record("doctor", "fail", text(&session, e)),
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
    let sandbox = match session.create(&request).await {
        Ok(s) if s.id.is_empty() => {
            run.record("create", "fail", "the sandbox has an empty id");
            return finish(name, run, json);
        }
        Ok(s) => {
            run.record(
                "create",
                "pass",
                format!("sandbox {} ({})", s.id, s.provider_state),
            );
            s
        }
        Err(e) => {
            run.record("create", "fail", text(&session, e));
            return finish(name, run, json);
        }
    };
    let id = sandbox.id.clone();
    lifecycle(&mut run, &mut session, &id, &labels).await;

    // Always clean up, then check deletion.
    match session.delete(&id).await {
        Ok(_) => run.record("delete", "pass", "accepted"),
        Err(e) => run.record("delete", "fail", text(&session, e)),
    }
    if session.persistent() {
        run.record(
            "gone",
            "skip",
            "the provider's sandboxes are persistent: delete releases the lease only",
        );
        return finish(name, run, json);
    }
    let deadline = Instant::now() + run.timeout;
    loop {
        match session.get(&id).await {
            Err(CallError::Provider(ProviderError::NotFound(_))) => {
                run.record("gone", "pass", "get answers not-found");
                break;
            }
            Ok(s) if s.state == SandboxState::Deleted && Instant::now() >= deadline => {
                run.record(
                    "gone",
                    "pass",
                    format!("state deleted ({})", s.provider_state),
                );
                break;
            }
            Ok(s) if Instant::now() >= deadline => {
                run.record(
                    "gone",
                    "fail",
                    format!("still {} after deletion", s.provider_state),
                );
                break;
            }
            Err(e) => {
                run.record("gone", "fail", text(&session, e));
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    match session.provider.delete(&id).await {
        Ok(()) | Err(CallError::Provider(ProviderError::NotFound(_))) => {
            run.record("delete again", "pass", "idempotent")
        }
        Err(e) => run.record("delete again", "fail", text(&session, e)),
    }
    finish(name, run, json)
}

fn describe_checks(run: &mut Run, info: &api::ProviderInfo) {
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
        (false, _) => run.record(
            "describe",
            "fail",
            format!("version `{}` is not semver", info.version),
        ),
        (_, Some(o)) => run.record(
            "describe",
            "fail",
            format!(
                "option `{}` has a bad name, default or no description",
                o.name
            ),
        ),
        _ => run.record(
            "describe",
            "pass",
            format!(
                "{} {}, {} options",
                info.name,
                info.version,
                info.options.len()
            ),
        ),
    }
}

async fn lifecycle(run: &mut Run, session: &mut Session, id: &str, labels: &[(String, String)]) {
    match wait_for(session, id, SandboxState::Ready, run.timeout).await {
        Ok(s) => run.record("ready", "pass", format!("state {}", s.provider_state)),
        Err(e) => {
            run.record("ready", "fail", e);
            return;
        }
    }
    match session.get(id).await {
        Ok(s) if labels.iter().all(|l| s.labels.contains(l)) && s.id == id => run.record(
            "get",
            "pass",
            "returns the id and the labels given at create",
        ),
        Ok(s) if s.id != id => run.record("get", "fail", format!("returned id {}", s.id)),
        Ok(_) => run.record("get", "fail", "the labels given at create are missing"),
        Err(e) => run.record("get", "fail", text(session, e)),
    }
    // Lists may lag behind creation: give it a few seconds.
    let mut listed = false;
    for _ in 0..10 {
        match session.provider.list(labels).await {
            Ok(items) if items.iter().any(|s| s.id == id) => {
                listed = true;
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            Err(e) => {
                run.record("list", "fail", text(session, e));
                break;
            }
        }
    }
    if listed {
        run.record("list", "pass", "the sandbox is listed under its labels");
    } else if run.steps.last().is_none_or(|s| s.step != "list") {
        run.record(
            "list",
            "warn",
            "the sandbox was not listed within 5 s (cbx falls back to its claims)",
        );
    }
    let mut more = labels.to_vec();
    more.push(("extra".to_string(), "yes".to_string()));
    match async {
        session.set_labels(id, &more).await?;
        session.get(id).await
    }
    .await
    {
        Ok(s) if s.labels.contains(&("extra".to_string(), "yes".to_string())) => {
            run.record("set-labels", "pass", "replaced labels read back")
        }
        Ok(_) => run.record(
            "set-labels",
            "warn",
            "replaced labels were not read back (labels fixed at creation?)",
        ),
        Err(e) => run.record("set-labels", "fail", text(session, e)),
    }
    match session.touch(id).await {
        Ok(()) => run.record("touch", "pass", "ok"),
        Err(e) => run.record("touch", "fail", text(session, e)),
    }
    match session.mint_ssh_access(id).await {
        Ok(a) => {
            let target = Target {
                user: a.user.clone(),
                user_is_secret: a.user_is_secret,
                host: a.host.clone(),
                port: a.port,
                identity_file: a.identity_file.clone(),
            };
            if a.user_is_secret {
                session
                    .provider
                    .redactor()
                    .add(&a.user, crate::redact::TOKEN);
            }
            match target.validate(session.name()) {
                Ok(()) => run.record(
                    "ssh-access",
                    "pass",
                    format!("{}:{}", target.shown_destination(), a.port),
                ),
                Err(e) => run.record("ssh-access", "fail", e.to_string()),
            }
        }
        Err(e) => run.record("ssh-access", "fail", text(session, e)),
    }
    if session.info.features.iter().any(|f| f == "stop") {
        match session.provider.stop(id).await {
            Ok(_) => match wait_for(session, id, SandboxState::Stopped, run.timeout).await {
                Ok(_) => run.record("stop", "pass", "stopped"),
                Err(e) => run.record("stop", "fail", e),
            },
            Err(e) => run.record("stop", "fail", text(session, e)),
        }
        if session.info.features.iter().any(|f| f == "start") {
            match session.start(id).await {
                Ok(_) => match wait_for(session, id, SandboxState::Ready, run.timeout).await {
                    Ok(_) => run.record("start", "pass", "ready again"),
                    Err(e) => run.record("start", "fail", e),
                },
                Err(e) => run.record("start", "fail", text(session, e)),
            }
        }
    } else {
        run.record(
            "stop",
            "skip",
            "the provider does not declare the `stop` feature",
        );
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
    session.provider.redactor().redact(&e.to_string())
}

fn finish(name: &str, run: Run, json: bool) -> Result<u8> {
    let passed = !run.failed();
    let report = Report {
        provider: name.to_string(),
        passed,
        steps: run.steps,
    };
    if json {
        output::json(&report)?;
    } else {
        let fails = report.steps.iter().filter(|s| s.result == "fail").count();
        let warns = report.steps.iter().filter(|s| s.result == "warn").count();
        println!(
            "{}: {} ({} steps, {fails} failed, {warns} warnings)",
            name,
            if passed {
                "conforms"
            } else {
                "does NOT conform"
            },
            report.steps.len()
        );
    }
    Ok(if passed {
        0
    } else {
        crate::error::ErrorKind::Provider.exit_code()
    })
}
