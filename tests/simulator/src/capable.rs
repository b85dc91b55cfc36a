//! Snapshots made from sandboxes and forks, as Daytona does them
//! (shared/reference/daytona-api-more.md §2–3):
//!
//! - `POST /sandbox/{id}/snapshot` answers with the *sandbox*, now `snapshotting`; the files
//!   are copied at once (the container is frozen while Daytona commits) and the snapshot row
//!   appears only when the sandbox returns to its previous state. A name already taken fails
//!   silently: no new row, the old one stays.
//! - `GET /snapshots/{idOrName}`, `GET /snapshots` (`name` substring, `page`, `limit`),
//!   `DELETE /snapshots/{id}` (a UUID only; `removing`, then gone).
//! - `POST /sandbox/{id}/fork`: 422 for a `container`-class sandbox (before any state check),
//!   400 unless `started`, 409 while a transition runs; the child copies the source's labels
//!   and files and goes `creating` → `started`, the source `forking` → `started`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;

use super::Shared;
use super::auth::Authed;
use super::error::ApiError;
use super::routes::{opt_str, parse_object, query_get, query_pairs, sandbox_response, valid_name};
use super::state::{Pending, Snapshot, SshEvent, Store};

/// `POST /api/sandbox/{idOrName}/snapshot`.
pub(crate) async fn snapshot(
    State(shared): State<Arc<Shared>>,
    auth: Authed,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    // Daytona: `write:sandboxes`, not `write:snapshots` (the route acts on the sandbox).
    auth.require("write:sandboxes")?;
    let req = parse_object(&body)?;
    let Some(name) = opt_str(&req, "name")? else {
        return Err(ApiError::bad_request("name must be a string"));
    };
    if !valid_name(&name) {
        return Err(ApiError::bad_request(
            "name must not contain HTML tags, URLs, or control characters",
        ));
    }
    let delay = shared.config.snapshot_delay;
    let snap_id = uuid::Uuid::new_v4().to_string();
    let id = shared
        .locked(|s| {
            let idx = s
                .find(&key)
                .ok_or_else(|| ApiError::sandbox_not_found(&key))?;
            let now = Instant::now();
            let taken = s.snapshots.iter().any(|x| x.name == name);
            let sb = &mut s.sandboxes[idx];
            if sb.in_transition() {
                return Err(ApiError::in_progress());
            }
            if sb.state != "started" && sb.state != "stopped" {
                return Err(ApiError::bad_request(
                    "Sandbox must be in started or stopped state to create a snapshot",
                ));
            }
            let back = sb.state.clone();
            let back_for_event = back.clone();
            sb.state = "snapshotting".into();
            sb.pending = Some(Pending {
                to: back,
                due: now + delay,
            });
            sb.updated_at = Utc::now();
            let (id, class) = (sb.id.clone(), sb.class.clone());
            // Daytona's gateway serves only started sandboxes; this one is frozen meanwhile.
            if back_for_event == "started" {
                s.outbox.push(SshEvent::Running(id.clone(), false));
            }
            if !taken {
                s.snapshots.push(Snapshot {
                    id: snap_id.clone(),
                    name: name.clone(),
                    state: "active".into(),
                    visible_from: now + delay,
                    gone_at: None,
                    class,
                    created_at: Utc::now(),
                });
            }
            Ok(id)
        })
        .await?;
    let ssh = shared.config.ssh.clone();
    let (sid, key) = (id.clone(), snap_id);
    let _ = tokio::task::spawn_blocking(move || ssh.files_saved(&sid, &key)).await;
    sandbox_response(&shared, &id).await
}

/// `GET /api/snapshots/{idOrName}`.
pub(crate) async fn get_snapshot(
    State(shared): State<Arc<Shared>>,
    _auth: Authed,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let org = shared.json_ctx.organization_id.clone();
    let v = shared
        .locked(|s| s.snapshot(&key, Instant::now()).map(|x| x.to_json(&org)))
        .await;
    match v {
        Some(v) => Ok(axum::Json(v).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Snapshot with ID or name {key} not found"),
        )),
    }
}

/// `GET /api/snapshots`: `name` as a case-insensitive substring, `page` from 1, `limit` ≤ 200.
pub(crate) async fn list_snapshots(
    State(shared): State<Arc<Shared>>,
    _auth: Authed,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(&raw);
    let number =
        |k: &str, default: usize| -> Result<usize, ApiError> {
            match query_get(&pairs, k) {
                None => Ok(default),
                Some(v) => v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    ApiError::bad_request(format!("{k} must be a positive integer"))
                }),
            }
        };
    let (page, limit) = (number("page", 1)?, number("limit", 100)?.min(200));
    let needle = query_get(&pairs, "name").unwrap_or("").to_lowercase();
    let org = shared.json_ctx.organization_id.clone();
    let all: Vec<_> = shared
        .locked(|s| {
            let now = Instant::now();
            s.snapshots
                .iter()
                .filter(|x| x.visible_from <= now && x.name.to_lowercase().contains(&needle))
                .map(|x| x.to_json(&org))
                .collect()
        })
        .await;
    let total = all.len();
    let items: Vec<_> = all
        .into_iter()
        .skip((page - 1) * limit)
        .take(limit)
        .collect();
    Ok(axum::Json(json!({
        "items": items,
        "total": total,
        "page": page,
        "totalPages": total.div_ceil(limit),
    }))
    .into_response())
}

/// `DELETE /api/snapshots/{id}`: the id only (a name is 400), `removing`, gone after the
/// delete delay.
pub(crate) async fn delete_snapshot(
    State(shared): State<Arc<Shared>>,
    auth: Authed,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    // Daytona checks the scope before it looks at the id.
    auth.require("delete:snapshots")?;
    if uuid::Uuid::parse_str(&key).is_err() {
        return Err(ApiError::bad_request(
            "Validation failed (uuid is expected)",
        ));
    }
    let delay = shared.config.delete_delay;
    shared
        .locked(|s| {
            let now = Instant::now();
            let snap = s
                .snapshots
                .iter_mut()
                .find(|x| x.id == key && x.visible_from <= now)
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::NOT_FOUND,
                        format!("Snapshot with ID {key} not found"),
                    )
                })?;
            snap.state = "removing".into();
            snap.gone_at.get_or_insert(now + delay);
            Ok(())
        })
        .await?;
    Ok(StatusCode::OK.into_response())
}

/// `POST /api/sandbox/{idOrName}/fork`.
pub(crate) async fn fork(
    State(shared): State<Arc<Shared>>,
    auth: Authed,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    auth.require("write:sandboxes")?;
    let req = parse_object(&body)?;
    let name = opt_str(&req, "name")?.filter(|n| !n.is_empty());
    if let Some(n) = &name
        && !valid_name(n)
    {
        return Err(ApiError::bad_request(
            "name must not contain HTML tags, URLs, or control characters",
        ));
    }
    let delay = shared.config.create_delay;
    let child_id = uuid::Uuid::new_v4().to_string();
    let source = shared
        .locked(|s| insert_fork(s, &key, name.as_deref(), &child_id, delay))
        .await?;
    let ssh = shared.config.ssh.clone();
    let (from, to) = (source, child_id.clone());
    let copied = tokio::task::spawn_blocking(move || {
        ssh.sandbox_created(&to)?;
        ssh.files_copied(&from, &to)
    })
    .await
    .unwrap_or_else(|e| Err(anyhow::anyhow!("ssh backend panicked: {e}")));
    if let Err(e) = copied {
        let reason = format!("Failed to fork sandbox: {e:#}");
        shared
            .locked(|s| s.force_state(&child_id, "error", Some(&reason)))
            .await;
    }
    sandbox_response(&shared, &child_id).await
}

/// Checks that sandbox `key` may be forked and inserts the child `child_id` (its labels and
/// class copied; `creating` → `started` after `delay`), the source `forking` meanwhile.
/// Returns the source's id.
fn insert_fork(
    s: &mut Store,
    key: &str,
    name: Option<&str>,
    child_id: &str,
    delay: Duration,
) -> Result<String, ApiError> {
    let idx = s
        .find(key)
        .ok_or_else(|| ApiError::sandbox_not_found(key))?;
    let sb = &s.sandboxes[idx];
    if sb.class != "linux-vm" && sb.class != "windows" {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Forking is not supported for this sandbox",
        ));
    }
    if sb.state != "started" {
        return Err(ApiError::bad_request(
            "Sandbox must be in started state to fork",
        ));
    }
    if sb.in_transition() {
        return Err(ApiError::in_progress());
    }
    let child_name = name.map_or_else(|| child_id.to_string(), str::to_string);
    if s.name_taken(&child_name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "Sandbox with this name already exists",
        ));
    }
    let now = Instant::now();
    let mut child = s.sandboxes[idx].clone();
    child.id = child_id.to_string();
    child.name = child_name;
    child.parent = Some(s.sandboxes[idx].id.clone());
    child.state = "unknown".into();
    child.error_reason = None;
    child.created_at = Utc::now();
    child.updated_at = child.created_at;
    child.last_activity_at = child.created_at;
    child.listed_from = now;
    s.next_seq += 1;
    child.seq = s.next_seq;
    child.begin("started", "started", delay);
    let src = &mut s.sandboxes[idx];
    src.state = "forking".into();
    src.pending = Some(Pending {
        to: "started".into(),
        due: now + delay,
    });
    let source = src.id.clone();
    s.outbox.push(SshEvent::Running(source.clone(), false));
    s.sandboxes.push(child);
    Ok(source)
}
