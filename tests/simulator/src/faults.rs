//! Fault injection for the next N matching requests: a canned error instead of the action, the
//! action applied and then an error or no answer at all (the connection closed: the answer is
//! lost), or the real answer held back for a while. Faults queued for the same requests are
//! used in injection order, which makes a sequence of failures.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Placeholder in a fault header name, replaced per request by the Daytona throttler name
/// of the matched route (`sandbox-create`, `sandbox-lifecycle` or `authenticated`).
pub const THROTTLER_PLACEHOLDER: &str = "{throttler}";

/// What the client gets for a faulted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// The fault's `status` and `message` as a Daytona error.
    #[default]
    Error,
    /// No answer: the connection is closed mid-response.
    Lost,
    /// The real answer (after the `delay`).
    Real,
}

/// Changes what the next `times` requests matching `method` and `path_contains` do.
///
/// By default the request is not applied and is answered with an error. With `apply` the
/// request is carried out first (a create creates), then answered as `answer` says, after
/// `delay`; `Answer::Real` always applies.
///
/// As JSON (`POST /_sim/faults`) the fields are the same names in snake_case, all optional,
/// with the delay given as `delay_ms` and `answer` one of `error`, `lost`, `real`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Fault {
    /// HTTP method to match (case-insensitive); `None` matches any.
    pub method: Option<String>,
    /// Substring the request path (without query) must contain, e.g. `/start` or `/api/sandbox`.
    pub path_contains: String,
    /// Response status.
    pub status: u16,
    /// `message` of the Daytona error body.
    pub message: String,
    /// Extra response headers; `{throttler}` in a name is replaced per request.
    pub headers: Vec<(String, String)>,
    /// How many matching requests get the fault before it is used up.
    pub times: usize,
    /// Delay before the fault response is sent.
    #[serde(rename = "delay_ms", with = "millis")]
    pub delay: Duration,
    /// Carry the request out before answering.
    pub apply: bool,
    /// What the client gets.
    pub answer: Answer,
}

impl Default for Fault {
    fn default() -> Self {
        Self {
            method: None,
            path_contains: String::new(),
            status: 500,
            message: super::error::UNEXPECTED.to_string(),
            headers: Vec::new(),
            times: 1,
            delay: Duration::ZERO,
            apply: false,
            answer: Answer::Error,
        }
    }
}

impl Fault {
    /// A one-shot 429 "ThrottlerException: Too Many Requests" with `Retry-After-<throttler>`.
    pub fn rate_limited(path_contains: &str, retry_after_secs: u64) -> Self {
        let secs = retry_after_secs.to_string();
        Self {
            path_contains: path_contains.to_string(),
            status: 429,
            message: "ThrottlerException: Too Many Requests".to_string(),
            headers: vec![
                (format!("Retry-After-{THROTTLER_PLACEHOLDER}"), secs.clone()),
                (
                    format!("X-RateLimit-Remaining-{THROTTLER_PLACEHOLDER}"),
                    "0".to_string(),
                ),
                (format!("X-RateLimit-Reset-{THROTTLER_PLACEHOLDER}"), secs),
            ],
            ..Self::default()
        }
    }

    /// A one-shot error with `status` and `message`; `method` `""` or `"*"` matches any.
    pub fn status(method: &str, path_contains: &str, status: u16, message: &str) -> Self {
        let method = match method {
            "" | "*" => None,
            m => Some(m.to_string()),
        };
        Self {
            method,
            path_contains: path_contains.to_string(),
            status,
            message: message.to_string(),
            ..Self::default()
        }
    }

    /// The request is carried out, then answered with `status` and `message`: e.g. a create
    /// that happened although the client saw a 504.
    pub fn applied_then_status(
        method: &str,
        path_contains: &str,
        status: u16,
        message: &str,
    ) -> Self {
        Self {
            apply: true,
            ..Self::status(method, path_contains, status, message)
        }
    }

    /// The request is carried out, then the connection is closed without an answer.
    pub fn applied_then_lost(method: &str, path_contains: &str) -> Self {
        Self {
            apply: true,
            answer: Answer::Lost,
            ..Self::status(method, path_contains, 200, "")
        }
    }

    /// The request is carried out at once, its real answer sent only after `delay`.
    pub fn delayed_answer(method: &str, path_contains: &str, delay: Duration) -> Self {
        Self {
            apply: true,
            answer: Answer::Real,
            delay,
            ..Self::status(method, path_contains, 200, "")
        }
    }

    /// Sets how many matching requests get this fault.
    pub fn with_times(mut self, times: usize) -> Self {
        self.times = times;
        self
    }

    /// Sets the delay before the fault response.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Restricts the fault to one HTTP method.
    pub fn with_method(mut self, method: &str) -> Self {
        self.method = Some(method.to_string());
        self
    }

    /// Whether the fault applies to this request.
    pub(crate) fn matches(&self, method: &str, path: &str) -> bool {
        self.times > 0
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && path.contains(&self.path_contains)
    }

    /// The headers with the throttler placeholder resolved for this request.
    pub(crate) fn resolved_headers(&self, method: &str, path: &str) -> Vec<(String, String)> {
        let throttler = throttler_for(method, path);
        self.headers
            .iter()
            .map(|(n, v)| (n.replace(THROTTLER_PLACEHOLDER, throttler), v.clone()))
            .collect()
    }
}

/// Daytona's throttler name for a route (§1.4).
pub(crate) fn throttler_for(method: &str, path: &str) -> &'static str {
    let rest = path.trim_end_matches('/').strip_prefix("/api/sandbox");
    let segments: Vec<&str> = match rest {
        Some("") => Vec::new(),
        Some(r) if r.starts_with('/') => r[1..].split('/').collect(),
        _ => return "authenticated",
    };
    let method = method.to_ascii_uppercase();
    match (method.as_str(), segments.as_slice()) {
        ("POST", []) | ("POST", [_, "fork"]) => "sandbox-create",
        ("DELETE", [_]) => "sandbox-lifecycle",
        (
            "POST",
            [
                _,
                "start" | "stop" | "pause" | "resize" | "archive" | "recover",
            ],
        ) => "sandbox-lifecycle",
        _ => "authenticated",
    }
}

/// Takes one use of the first matching fault, dropping it when used up.
pub(crate) fn take_fault(faults: &mut Vec<Fault>, method: &str, path: &str) -> Option<Fault> {
    let pos = faults.iter().position(|f| f.matches(method, path))?;
    let fault = faults[pos].clone();
    faults[pos].times -= 1;
    if faults[pos].times == 0 {
        faults.remove(pos);
    }
    Some(fault)
}

/// (De)serializes a `Duration` as whole milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes milliseconds.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    /// Reads milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttler_names() {
        assert_eq!(throttler_for("POST", "/api/sandbox"), "sandbox-create");
        assert_eq!(throttler_for("GET", "/api/sandbox"), "authenticated");
        assert_eq!(
            throttler_for("POST", "/api/sandbox/x/start"),
            "sandbox-lifecycle"
        );
        assert_eq!(
            throttler_for("DELETE", "/api/sandbox/x"),
            "sandbox-lifecycle"
        );
        assert_eq!(
            throttler_for("DELETE", "/api/sandbox/x/ssh-access"),
            "authenticated"
        );
        assert_eq!(
            throttler_for("PUT", "/api/sandbox/x/labels"),
            "authenticated"
        );
        assert_eq!(throttler_for("GET", "/api/sandboxes"), "authenticated");
    }

    #[test]
    fn times_run_out() {
        let mut faults = vec![Fault::status("GET", "/x", 500, "boom").with_times(2)];
        assert!(take_fault(&mut faults, "get", "/api/x").is_some());
        assert!(take_fault(&mut faults, "POST", "/api/x").is_none());
        assert!(take_fault(&mut faults, "GET", "/api/x").is_some());
        assert!(take_fault(&mut faults, "GET", "/api/x").is_none());
    }
}
