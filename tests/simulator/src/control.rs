//! The unauthenticated control API under `/_sim/`, for users of the standalone binary.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::Shared;
use super::error::ApiError;
use super::faults::Fault;

/// Routes: requests, sandboxes, forced states, faults, SSH tokens.
pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sim/requests", get(requests).delete(clear_requests))
        .route("/_sim/sandboxes", get(sandboxes))
        .route("/_sim/sandboxes/{id}/state", post(set_state))
        .route("/_sim/sandboxes/{id}/expire-ssh", post(expire_ssh))
        .route("/_sim/faults", post(add_fault).delete(clear_faults))
        .route("/_sim/ssh-tokens", get(ssh_tokens))
}

/// `GET /_sim/requests`: the request log.
async fn requests(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(Value::Array(
        shared.requests().iter().map(|r| r.to_json()).collect(),
    ))
}

/// `DELETE /_sim/requests`: clears the request log.
async fn clear_requests(State(shared): State<Arc<Shared>>) -> StatusCode {
    super::lock(&shared.requests).clear();
    StatusCode::NO_CONTENT
}

/// `GET /_sim/sandboxes`: every sandbox not gone.
async fn sandboxes(State(shared): State<Arc<Shared>>) -> Response {
    let views = shared.locked(|s| s.views()).await;
    Json(views).into_response()
}

/// `POST /_sim/sandboxes/{id}/state` with `{"state", "errorReason"?}`.
async fn set_state(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("Invalid JSON body: {e}")))?;
    let state = v
        .get("state")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("state must be a string"))?
        .to_string();
    let reason = v
        .get("errorReason")
        .and_then(Value::as_str)
        .map(str::to_string);
    let found = shared
        .locked(|s| s.force_state(&id, &state, reason.as_deref()))
        .await;
    if !found {
        return Err(ApiError::sandbox_not_found(&id));
    }
    let view = shared
        .locked(|s| s.views().into_iter().find(|v| v.id == id))
        .await;
    Ok(Json(json!({ "ok": true, "sandbox": view })).into_response())
}

/// `POST /_sim/sandboxes/{id}/expire-ssh`: expires the sandbox's SSH tokens.
async fn expire_ssh(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> StatusCode {
    shared.locked(|s| s.expire(&id)).await;
    StatusCode::NO_CONTENT
}

/// `POST /_sim/faults` with a JSON [`Fault`].
async fn add_fault(State(shared): State<Arc<Shared>>, body: Bytes) -> Result<StatusCode, ApiError> {
    let fault: Fault = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("Invalid fault: {e}")))?;
    shared.inject(fault);
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /_sim/faults`: drops every queued fault.
async fn clear_faults(State(shared): State<Arc<Shared>>) -> StatusCode {
    super::lock(&shared.faults).clear();
    StatusCode::NO_CONTENT
}

/// `GET /_sim/ssh-tokens`: every token not revoked.
async fn ssh_tokens(State(shared): State<Arc<Shared>>) -> Response {
    let tokens = shared.locked(|s| s.token_views()).await;
    Json(tokens).into_response()
}
