//! How a provider maps its service: the state words (`ready` too early, never leaving
//! `ready`) and the error answers (404 → not-found, 401 → unauthorized, 429 → rate-limited
//! with its delay). The error answers are rehearsed: the host's gateway gives the provider's
//! next allowed request the answer instead of sending it, so any service — a fake one too —
//! can be checked.

use super::{StepResult, Suite, text};
use crate::grant::http::InboundResponse;
use crate::lease::session::Session;
use crate::provider::CallError;
use crate::provider::api::{self, ProviderError, SandboxState};

/// Service words that mean a sandbox is not ready to use.
const NOT_READY: &[&str] = &[
    "creating",
    "pending",
    "provisioning",
    "starting",
    "building",
    "pulling",
    "initializing",
    "booting",
    "queued",
    "restoring",
    "stopping",
    "stopped",
    "archiving",
    "archived",
    "destroying",
    "destroyed",
    "deleting",
    "deleted",
    "error",
    "failed",
    "terminating",
    "terminated",
    "paused",
    "suspended",
    "shutdown",
    "exited",
];

/// Service words that mean a sandbox is stopped or on its way there.
const STOPPED: &[&str] = &[
    "stopping",
    "stopped",
    "paused",
    "suspended",
    "shutdown",
    "exited",
    "terminated",
    "off",
];

/// Whether the service's word `provider_state` contains one of `words`.
fn says(provider_state: &str, words: &[&str]) -> Option<String> {
    let lower = provider_state.to_ascii_lowercase();
    lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| words.contains(w))
        .map(str::to_string)
}

/// Why `s` should not be `ready`, if the provider says it is while the service's own word
/// says otherwise.
pub(super) fn early_ready(s: &api::Sandbox) -> Option<String> {
    if s.state != SandboxState::Ready {
        return None;
    }
    says(&s.provider_state, NOT_READY).map(|word| {
        format!(
            "the provider says `ready` while the service says `{}`: map the service's `{word}` to the state it means (creating, starting, stopped…), not to ready — cbx would start using a sandbox that is not up",
            s.provider_state
        )
    })
}

/// Why waiting for `want` is hopeless, if it is: the provider still says `ready` after a stop
/// while the service says stopped (at once), or it never left `ready` (at the deadline).
pub(super) fn stuck(
    want: SandboxState,
    s: &api::Sandbox,
    seen: &[SandboxState],
    at_deadline: bool,
) -> Option<String> {
    if want != SandboxState::Stopped || s.state != SandboxState::Ready {
        return None;
    }
    if let Some(word) = says(&s.provider_state, STOPPED) {
        return Some(format!(
            "still `ready` after stop while the service says `{}`: map the service's `{word}` to stopped (or stopping), not to ready",
            s.provider_state
        ));
    }
    (at_deadline && seen == [SandboxState::Ready]).then(|| {
        format!(
            "never left `ready` after stop (the service says `{}`): does the state mapping send every word to ready, or does stop not reach the service?",
            s.provider_state
        )
    })
}

/// `get` of a sandbox that does not exist answers not-found (the service's real answer).
pub(super) async fn not_found(suite: &mut Suite<'_>, session: &mut Session, marker: &str) {
    let missing = format!("cbx-conformance-missing-{marker}");
    match session.get_once(&missing).await {
        Err(CallError::Provider(ProviderError::NotFound(_))) => suite.record(
            "not-found",
            StepResult::Pass,
            "get of a missing sandbox answers not-found",
        ),
        Ok(s) => suite.record(
            "not-found",
            StepResult::Fail,
            format!(
                "get of a sandbox that does not exist returned one (id {}): it must answer not-found",
                s.id
            ),
        ),
        Err(e) => suite.record(
            "not-found",
            StepResult::Fail,
            format!(
                "get of a sandbox that does not exist answered `{}`, not not-found: map the service's 404 (or its missing-sandbox answer) to not-found — cbx reads not-found as \"gone\"",
                text(session, e)
            ),
        ),
    }
}

/// The service's 401 and 429 answers, rehearsed on `get`, map to unauthorized and to
/// rate-limited with the `Retry-After` delay.
pub(super) async fn errors(suite: &mut Suite<'_>, session: &mut Session, id: &str) {
    if let Err(e) = session.rehearse(answer(401, &[])).await {
        let detail = session.redactor().redact(&format!("{e:#}"));
        return suite.record("error-401", StepResult::Fail, detail);
    }
    match session.get_once(id).await {
        Err(CallError::Provider(ProviderError::Unauthorized(_))) => suite.record(
            "error-401",
            StepResult::Pass,
            "HTTP 401 answers unauthorized",
        ),
        other => suite.record(
            "error-401",
            StepResult::Fail,
            format!(
                "HTTP 401 answered {}, not unauthorized: map 401 to unauthorized (exit 3, and the user is told to check the credentials)",
                outcome(session, other)
            ),
        ),
    }
    if let Err(e) = session.rehearse(answer(429, &[("retry-after", "7")])).await {
        let detail = session.redactor().redact(&format!("{e:#}"));
        return suite.record("error-429", StepResult::Fail, detail);
    }
    match session.get_once(id).await {
        Err(CallError::Provider(ProviderError::RateLimited(r))) if r.retry_after_ms == Some(7000) => {
            suite.record(
                "error-429",
                StepResult::Pass,
                "HTTP 429 with Retry-After: 7 answers rate-limited, retry after 7000 ms",
            )
        }
        Err(CallError::Provider(ProviderError::RateLimited(r))) => suite.record(
            "error-429",
            StepResult::Fail,
            format!(
                "HTTP 429 with `Retry-After: 7` answered rate-limited with retry-after-ms {:?}, not Some(7000): read the Retry-After header (seconds) into retry-after-ms, so cbx waits as long as the service asks",
                r.retry_after_ms
            ),
        ),
        other => suite.record(
            "error-429",
            StepResult::Fail,
            format!(
                "HTTP 429 answered {}, not rate-limited: map 429 to rate-limited (cbx retries it after the delay)",
                outcome(session, other)
            ),
        ),
    }
}

/// A rehearsed error answer: status, headers and a JSON body with a message.
fn answer(status: u16, headers: &[(&str, &str)]) -> InboundResponse {
    let body = serde_json::json!({
        "statusCode": status,
        "message": format!("rehearsed by cbx providers test: HTTP {status}"),
        "error": format!("HTTP {status}"),
    });
    InboundResponse {
        status,
        headers: std::iter::once(("content-type", "application/json"))
            .chain(headers.iter().copied())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.to_string().into_bytes(),
    }
}

/// What a call answered, in words.
fn outcome(session: &Session, result: Result<api::Sandbox, CallError>) -> String {
    match result {
        Ok(s) => format!("a sandbox ({})", s.provider_state),
        Err(e) => format!("`{}`", text(session, e)),
    }
}
