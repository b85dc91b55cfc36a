//! Daytona's error body (`AllExceptionsFilter`): `{path, timestamp, statusCode, error, message}`.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Daytona's `message` for any non-HTTP exception.
pub(crate) const UNEXPECTED: &str = "An unexpected error occurred.";

/// An error a handler returns; the intercepting middleware fills in the request path.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    /// An error with the given status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 "Sandbox with ID or name <x> not found".
    pub fn sandbox_not_found(key: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            format!("Sandbox with ID or name {key} not found"),
        )
    }

    /// 409 "Sandbox state change in progress".
    pub fn in_progress() -> Self {
        Self::new(StatusCode::CONFLICT, "Sandbox state change in progress")
    }

    /// 500 with Daytona's generic message.
    pub fn unexpected() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, UNEXPECTED)
    }
}

/// Marker left on a response so the middleware can render the body with the request path.
#[derive(Debug, Clone)]
pub(crate) struct PendingErrorBody(pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = self.status.into_response();
        resp.extensions_mut().insert(PendingErrorBody(self.message));
        resp
    }
}

/// The reason phrase Node would use for `status` (`STATUS_CODES[status]`).
pub(crate) fn reason_phrase(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Unknown")
}

/// Renders a complete Daytona error response.
pub(crate) fn error_response(
    path: &str,
    status: StatusCode,
    message: &str,
    headers: &[(String, String)],
) -> Response {
    let body = json!({
        "path": path,
        "timestamp": super::state::rfc3339(chrono::Utc::now()),
        "statusCode": status.as_u16(),
        "error": reason_phrase(status),
        "message": message,
    });
    let mut resp = (status, axum::Json(body)).into_response();
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            resp.headers_mut().append(n, v);
        }
    }
    resp
}
