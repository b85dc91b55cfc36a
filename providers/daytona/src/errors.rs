//! Turning Daytona's error responses and the host's HTTP failures into `provider-error`s.

use crate::cbx::provider::http::HttpError;
use crate::cbx::provider::types::{ProviderError, RateLimit};

/// Longest excerpt of an error body quoted in a message, in characters.
const BODY_EXCERPT_CHARS: usize = 300;

/// Message phrases (lowercase) that mark a 400 as an account quota or capacity limit.
const QUOTA_PHRASES: &[&str] = &[
    "limit exceeded",
    "exceeds maximum allowed",
    "no available runners",
    "quota",
    "limit reached",
];

/// How a 400 starts when the sandbox failed while create or start waited for it.
const FAILED_START: &str = "Sandbox failed to start";

/// Message phrases that mark a 400 as a snapshot or region set-up problem.
const CONFIG_PHRASES: &[&str] = &["Snapshot ", "Region not found", "default region"];

/// Maps a non-2xx response of `action` (e.g. `create sandbox`) to a typed error.
pub fn from_status(
    action: &str,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> ProviderError {
    let detail = message_of(status, body);
    let message = format!("daytona {action}: {detail} (HTTP {status})");
    match status {
        401 => ProviderError::Unauthorized(message),
        403 => ProviderError::Forbidden(message),
        404 if detail.contains("Region not found") => ProviderError::InvalidConfig(message),
        404 => ProviderError::NotFound(message),
        409 => ProviderError::Conflict(message),
        429 => ProviderError::RateLimited(RateLimit {
            message,
            retry_after_ms: retry_after_ms(headers),
        }),
        // The sandbox was made and failed while the server waited for it: its reason may
        // quote anything ("Snapshot ... failed to pull"), but it is no set-up problem of ours.
        400 if detail.starts_with(FAILED_START) => ProviderError::Other(message),
        400 if is_quota(&detail) => ProviderError::Quota(message),
        400 if CONFIG_PHRASES.iter().any(|p| detail.contains(p)) => {
            ProviderError::InvalidConfig(message)
        }
        408 | 500..=599 => ProviderError::Unavailable(message),
        _ => ProviderError::Other(message),
    }
}

/// The message any error carries.
pub fn message(err: &ProviderError) -> &str {
    match err {
        ProviderError::InvalidConfig(m)
        | ProviderError::Unauthorized(m)
        | ProviderError::Forbidden(m)
        | ProviderError::NotFound(m)
        | ProviderError::Conflict(m)
        | ProviderError::Quota(m)
        | ProviderError::Unavailable(m)
        | ProviderError::Other(m) => m,
        ProviderError::RateLimited(r) => &r.message,
    }
}

/// Maps the host's failure to deliver a request for `action` to a typed error.
pub fn from_http_error(action: &str, err: HttpError) -> ProviderError {
    match err {
        // The host explains denials itself; its text says what grant would allow the request.
        HttpError::Denied(m) => ProviderError::Other(m),
        HttpError::Timeout(m) | HttpError::Connect(m) => {
            ProviderError::Unavailable(format!("daytona {action}: {m}"))
        }
        HttpError::TooLarge(cap) => ProviderError::Other(format!(
            "daytona {action}: the response exceeded the host's size cap of {cap} bytes"
        )),
        HttpError::InvalidRequest(m) => {
            ProviderError::Other(format!("daytona {action}: invalid request: {m}"))
        }
        HttpError::Other(m) => ProviderError::Other(format!("daytona {action}: {m}")),
    }
}

/// The human part of an error body: its JSON `message`, else its text, else `HTTP <status>`.
pub fn message_of(status: u16, body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        match value.get("message") {
            Some(serde_json::Value::String(m)) if !m.trim().is_empty() => {
                return excerpt(m.trim(), BODY_EXCERPT_CHARS);
            }
            Some(serde_json::Value::Array(parts)) => {
                let joined: Vec<&str> = parts.iter().filter_map(|p| p.as_str()).collect();
                if !joined.is_empty() {
                    return excerpt(&joined.join(", "), BODY_EXCERPT_CHARS);
                }
            }
            _ => {}
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        format!("HTTP {status}")
    } else {
        excerpt(text, BODY_EXCERPT_CHARS)
    }
}

/// The longest wait asked for by `retry-after` or `retry-after-<name>` headers, in milliseconds.
///
/// Values are seconds, integer or decimal; other forms (HTTP dates) are ignored.
pub fn retry_after_ms(headers: &[(String, String)]) -> Option<u64> {
    headers
        .iter()
        .filter(|(name, _)| {
            let name = name.to_ascii_lowercase();
            name == "retry-after" || name.starts_with("retry-after-")
        })
        .filter_map(|(_, value)| value.trim().parse::<f64>().ok())
        .filter(|secs| secs.is_finite() && *secs >= 0.0)
        .map(|secs| (secs * 1000.0).ceil() as u64)
        .max()
}

/// Whether a 400 message describes a quota, tier limit or capacity shortage.
fn is_quota(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    QUOTA_PHRASES.iter().any(|p| lower.contains(p))
}

/// The first `max` characters of `s`, with `…` when cut.
pub fn excerpt(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(message: &str) -> Vec<u8> {
        serde_json::json!({
            "path": "/api/sandbox",
            "timestamp": "2026-06-23T12:00:00.000Z",
            "statusCode": 400,
            "error": "Bad Request",
            "message": message,
        })
        .to_string()
        .into_bytes()
    }

    fn hdr(name: &str, value: &str) -> (String, String) {
        (name.to_string(), value.to_string())
    }

    #[test]
    fn status_codes_map_to_kinds() {
        let b = body("nope");
        assert!(matches!(
            from_status("a", 401, &[], &b),
            ProviderError::Unauthorized(_)
        ));
        assert!(matches!(
            from_status("a", 403, &[], &b),
            ProviderError::Forbidden(_)
        ));
        assert!(matches!(
            from_status("a", 404, &[], &b),
            ProviderError::NotFound(_)
        ));
        assert!(matches!(
            from_status("a", 409, &[], &b),
            ProviderError::Conflict(_)
        ));
        assert!(matches!(
            from_status("a", 408, &[], &b),
            ProviderError::Unavailable(_)
        ));
        assert!(matches!(
            from_status("a", 500, &[], &b),
            ProviderError::Unavailable(_)
        ));
        assert!(matches!(
            from_status("a", 503, &[], &b),
            ProviderError::Unavailable(_)
        ));
        assert!(matches!(
            from_status("a", 400, &[], &b),
            ProviderError::Other(_)
        ));
        assert!(matches!(
            from_status("a", 422, &[], &b),
            ProviderError::Other(_)
        ));
    }

    #[test]
    fn message_has_action_text_and_status() {
        let err = from_status(
            "get sandbox abc",
            404,
            &[],
            &body("Sandbox with ID or name abc not found"),
        );
        let ProviderError::NotFound(m) = err else {
            panic!("{err:?}")
        };
        assert_eq!(
            m,
            "daytona get sandbox abc: Sandbox with ID or name abc not found (HTTP 404)"
        );
    }

    #[test]
    fn message_falls_back_to_text_then_status() {
        assert_eq!(
            message_of(502, b"  <html>bad gateway</html>\n"),
            "<html>bad gateway</html>"
        );
        assert_eq!(message_of(502, b""), "HTTP 502");
        assert_eq!(
            message_of(500, b"{\"statusCode\":500}"),
            "{\"statusCode\":500}"
        );
        assert_eq!(message_of(400, br#"{"message":["a","b"]}"#), "a, b");
        let long = "x".repeat(400);
        assert_eq!(message_of(500, long.as_bytes()).chars().count(), 301);
    }

    #[test]
    fn rate_limit_reads_named_retry_after_headers() {
        let headers = [
            hdr("x-ratelimit-limit-sandbox-create", "300"),
            hdr("retry-after-sandbox-create", "7"),
            hdr("retry-after-authenticated", "2.5"),
        ];
        let err = from_status(
            "create sandbox",
            429,
            &headers,
            &body("ThrottlerException: Too Many Requests"),
        );
        let ProviderError::RateLimited(rl) = err else {
            panic!("{err:?}")
        };
        assert_eq!(rl.retry_after_ms, Some(7000));
        assert_eq!(
            rl.message,
            "daytona create sandbox: ThrottlerException: Too Many Requests (HTTP 429)"
        );
    }

    #[test]
    fn retry_after_variants() {
        assert_eq!(retry_after_ms(&[hdr("retry-after", "1.25")]), Some(1250));
        assert_eq!(retry_after_ms(&[hdr("Retry-After", "3")]), Some(3000));
        assert_eq!(
            retry_after_ms(&[hdr("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]),
            None
        );
        assert_eq!(retry_after_ms(&[hdr("retry-afterx", "3")]), None);
        assert_eq!(retry_after_ms(&[hdr("retry-after", "-1")]), None);
        assert_eq!(retry_after_ms(&[]), None);
        let err = from_status("list sandboxes", 429, &[], b"");
        let ProviderError::RateLimited(rl) = err else {
            panic!("{err:?}")
        };
        assert_eq!(rl.retry_after_ms, None);
        assert_eq!(rl.message, "daytona list sandboxes: HTTP 429 (HTTP 429)");
    }

    #[test]
    fn quota_texts_are_quota() {
        for text in [
            "Total CPU limit exceeded. Maximum allowed: 4500.\nTo increase concurrency limits, upgrade",
            "Memory request 16GB exceeds maximum allowed per sandbox (8GB).",
            "No available runners",
            "Organization quota reached",
            "Sandbox resource limit reached (16), please try again later.",
        ] {
            let err = from_status("create sandbox", 400, &[], &body(text));
            assert!(matches!(err, ProviderError::Quota(_)), "{text}: {err:?}");
        }
    }

    #[test]
    fn a_failed_start_is_not_a_config_problem_even_when_it_names_a_snapshot() {
        for text in [
            "Sandbox failed to start: Snapshot daytona-small failed to pull: manifest unknown",
            "Sandbox failed to start: runner disk is full",
            "Sandbox failed to start: Total CPU limit exceeded",
        ] {
            let err = from_status("create sandbox", 400, &[], &body(text));
            assert!(
                matches!(err, ProviderError::Other(ref m) if m == &format!("daytona create sandbox: {text} (HTTP 400)")),
                "{text}: {err:?}"
            );
        }
        let err = from_status("start sandbox x", 400, &[], &body("Snapshot foo not found"));
        assert!(matches!(err, ProviderError::InvalidConfig(_)), "{err:?}");
    }

    #[test]
    fn snapshot_and_region_texts_are_config() {
        for (status, text) in [
            (
                400,
                "Snapshot foo not found. Did you add it through the Daytona Dashboard?",
            ),
            (400, "Snapshot foo is not available in region eu"),
            (
                400,
                "This organization does not have a default region. Please open the Daytona Dashboard to set a default region.",
            ),
            (400, "Region not found"),
            (404, "Region not found"),
        ] {
            let err = from_status("create sandbox", status, &[], &body(text));
            assert!(
                matches!(err, ProviderError::InvalidConfig(_)),
                "{text}: {err:?}"
            );
        }
    }

    #[test]
    fn host_errors() {
        let e = from_http_error("get sandbox x", HttpError::Denied("not granted".into()));
        assert!(matches!(e, ProviderError::Other(ref m) if m == "not granted"));
        let e = from_http_error("get sandbox x", HttpError::Timeout("after 30 s".into()));
        assert!(
            matches!(e, ProviderError::Unavailable(ref m) if m == "daytona get sandbox x: after 30 s")
        );
        let e = from_http_error("get sandbox x", HttpError::Connect("dns".into()));
        assert!(matches!(e, ProviderError::Unavailable(_)));
        let e = from_http_error("list sandboxes", HttpError::TooLarge(1024));
        assert!(matches!(e, ProviderError::Other(ref m) if m.contains("1024")));
        let e = from_http_error("list sandboxes", HttpError::InvalidRequest("bad".into()));
        assert!(matches!(e, ProviderError::Other(_)));
    }
}
