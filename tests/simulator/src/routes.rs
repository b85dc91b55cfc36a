//! The axum router: the intercepting middleware (recording, faults, error bodies) and the
//! `/api/sandbox...` handlers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::Utc;
use serde_json::{Map, Value, json};

use super::auth::Authed;
use super::capable;
use super::error::{ApiError, PendingErrorBody, error_response};
use super::faults::Answer;
use super::ssh::{mint_token, ssh_command};
use super::state::{Sandbox, SshToken, Store, is_error_state};
use super::{DEFAULT_SNAPSHOT, REGIONS, RecordedRequest, Shared, control};

/// Largest request body the simulator reads.
const BODY_LIMIT: usize = 64 << 20;

/// Builds the whole application.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/sandbox", get(list).post(create))
        .route("/api/sandbox/{key}", get(get_one).delete(delete))
        .route("/api/sandbox/{key}/start", post(start))
        .route("/api/sandbox/{key}/stop", post(stop))
        .route("/api/sandbox/{key}/archive", post(archive))
        .route("/api/sandbox/{key}/labels", put(replace_labels))
        .route("/api/sandbox/{key}/last-activity", post(last_activity))
        .route("/api/sandbox/{key}/snapshot", post(capable::snapshot))
        .route("/api/sandbox/{key}/fork", post(capable::fork))
        .route("/api/snapshots", get(capable::list_snapshots))
        .route(
            "/api/snapshots/{key}",
            get(capable::get_snapshot).delete(capable::delete_snapshot),
        )
        .route(
            "/api/sandbox/{key}/ssh-access",
            post(create_ssh).delete(revoke_ssh),
        )
        .route("/api/api-keys/current", get(current_api_key))
        .merge(control::router())
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), intercept))
        .with_state(shared)
}

/// Records the request, answers injected faults, and renders Daytona error bodies.
async fn intercept(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let display_path = parts
        .uri
        .path_and_query()
        .map_or(path.clone(), |p| p.as_str().to_string());
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            return error_response(
                &display_path,
                StatusCode::PAYLOAD_TOO_LARGE,
                "request entity too large",
                &[],
            );
        }
    };
    let method = parts.method.as_str().to_string();
    let control = path == "/_sim" || path.starts_with("/_sim/");
    let mut fault = None;
    if !control {
        shared.record(RecordedRequest {
            method: method.clone(),
            path: path.clone(),
            query: parts.uri.query().unwrap_or("").to_string(),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into(),
                    )
                })
                .collect(),
            body: bytes.to_vec(),
        });
        fault = shared.take_fault(&method, &path);
        let latency = shared.latency();
        if !latency.is_zero() {
            // The API's latency: the round trip a client pays to a remote service.
            tokio::time::sleep(latency).await;
        }
    }
    let applies = fault
        .as_ref()
        .is_none_or(|f| f.apply || f.answer == Answer::Real);
    let resp = if applies {
        let resp = next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
        Some(match resp.extensions().get::<PendingErrorBody>() {
            Some(PendingErrorBody(message)) => {
                error_response(&display_path, resp.status(), message, &[])
            }
            None => resp,
        })
    } else {
        None
    };
    let Some(fault) = fault else {
        return resp.expect("applied");
    };
    if !fault.delay.is_zero() {
        tokio::time::sleep(fault.delay).await;
    }
    match (fault.answer, resp) {
        (Answer::Real, Some(resp)) => resp,
        (Answer::Lost, _) => lost_answer(),
        _ => {
            let status =
                StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let headers = fault.resolved_headers(&method, &path);
            error_response(&display_path, status, &fault.message, &headers)
        }
    }
}

/// A response that never arrives whole: its headers promise a body, whose stream then fails,
/// so the server closes the connection mid-answer.
fn lost_answer() -> Response {
    let broken = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("the simulator lost this answer"))
    });
    let mut resp = Response::new(Body::from_stream(broken));
    resp.headers_mut().insert(
        axum::http::header::CONTENT_LENGTH,
        axum::http::HeaderValue::from_static("4096"),
    );
    resp
}

/// Nest's 404 for an unknown route (also used for a wrong method).
async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("Cannot {method} {}", uri.path()),
    )
}

// ---------------------------------------------------------------------------------------------
// Request parsing helpers

/// Decoded query pairs.
pub(crate) fn query_pairs(raw: &Option<String>) -> Vec<(String, String)> {
    raw.as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// The last value of a query parameter.
pub(crate) fn query_get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Every value of a repeated query parameter (`k=a&k=b` or `k[]=a`).
fn query_all(pairs: &[(String, String)], key: &str) -> Vec<String> {
    let bracket = format!("{key}[]");
    pairs
        .iter()
        .filter(|(k, _)| *k == key || *k == bracket)
        .map(|(_, v)| v.clone())
        .collect()
}

/// Parses a JSON object body; an empty body is `{}`.
pub(crate) fn parse_object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad_request("Request body must be a JSON object")),
        Err(e) => Err(ApiError::bad_request(format!("Invalid JSON body: {e}"))),
    }
}

/// An optional string field.
pub(crate) fn opt_str(m: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(format!("{key} must be a string"))),
    }
}

/// An optional boolean field.
fn opt_bool(m: &Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::bad_request(format!(
            "{key} must be a boolean value"
        ))),
    }
}

/// An optional integer field.
fn opt_int(m: &Map<String, Value>, key: &str) -> Result<Option<i64>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
        Some(Value::Number(n)) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => {
            Ok(n.as_f64().map(|f| f as i64))
        }
        Some(_) => Err(ApiError::bad_request(format!(
            "{key} must be a number conforming to the specified constraints"
        ))),
    }
}

/// An optional object of strings (labels, env).
fn opt_str_map(m: &Map<String, Value>, key: &str) -> Result<BTreeMap<String, String>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(o)) => string_map(o)
            .ok_or_else(|| ApiError::bad_request(format!("{key} must be an object of strings"))),
        Some(_) => Err(ApiError::bad_request(format!("{key} must be an object"))),
    }
}

/// Converts a JSON object whose values are all strings.
fn string_map(o: &Map<String, Value>) -> Option<BTreeMap<String, String>> {
    o.iter()
        .map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
        .collect()
}

/// JavaScript truthiness, for the resource rule.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

/// Daytona's name rule: no HTML tags, URLs or control characters.
pub(crate) fn valid_name(name: &str) -> bool {
    !(name.chars().any(char::is_control)
        || (name.contains('<') && name.contains('>'))
        || name.contains("://"))
}

// ---------------------------------------------------------------------------------------------
// Sort and cursor (addendum §5.1): `sort` (default `lastActivityAt`) and `order` (default
// `desc`), with the id as the secondary key in the same direction. The cursor is the opaque hex
// of "<sort value>\u{1f}<id>" of the last item returned; like Daytona's it does not record the
// sort, so a client must resend the same `sort` and `order` with every page.

/// The sort fields `GET /sandbox` accepts.
const SORTS: &[&str] = &[
    "name",
    "cpu",
    "memoryGib",
    "diskGib",
    "lastActivityAt",
    "createdAt",
];

/// A sandbox's sort value for `sort`, as a string that orders like the value.
fn sort_value(sb: &Sandbox, sort: &str) -> String {
    let time = |t: chrono::DateTime<Utc>| format!("{:020}", t.timestamp_millis().max(0));
    match sort {
        "name" => sb.name.clone(),
        "cpu" => format!("{:020}", sb.cpu),
        "memoryGib" => format!("{:020}", sb.memory),
        "diskGib" => format!("{:020}", sb.disk),
        "createdAt" => time(sb.created_at),
        _ => time(sb.last_activity_at),
    }
}

/// Encodes a cursor after `sb` in the order of `sort`.
fn encode_cursor(sb: &Sandbox, sort: &str) -> String {
    format!("{}\u{1f}{}", sort_value(sb, sort), sb.id)
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Decodes a cursor into the (sort value, id) it points after.
fn decode_cursor(cursor: &str) -> Option<(String, String)> {
    if !cursor.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..cursor.len())
        .step_by(2)
        .map(|i| {
            cursor
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    let text = String::from_utf8(bytes?).ok()?;
    let (value, id) = text.split_once('\u{1f}')?;
    uuid::Uuid::parse_str(id).ok()?;
    Some((value.to_string(), id.to_string()))
}

/// The `sort` and whether the `order` is descending, or Daytona's 400.
fn sort_of(pairs: &[(String, String)]) -> Result<(String, bool), ApiError> {
    let sort = query_get(pairs, "sort").unwrap_or("lastActivityAt");
    if !SORTS.contains(&sort) {
        return Err(ApiError::bad_request(format!(
            "sort must be one of the following values: {}",
            SORTS.join(", ")
        )));
    }
    let desc = match query_get(pairs, "order").unwrap_or("desc") {
        "desc" => true,
        "asc" => false,
        _ => {
            return Err(ApiError::bad_request(
                "order must be one of the following values: asc, desc",
            ));
        }
    };
    Ok((sort.to_string(), desc))
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// `GET /api/sandbox`: cursor-paginated (or legacy bare-array) list.
async fn list(
    State(shared): State<Arc<Shared>>,
    _auth: Authed,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(&raw);
    let cfg = &shared.config;
    let labels = match query_get(&pairs, "labels") {
        None => BTreeMap::new(),
        Some(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(o)) => {
                string_map(&o).ok_or_else(|| ApiError::bad_request("Invalid labels JSON format"))?
            }
            _ => return Err(ApiError::bad_request("Invalid labels JSON format")),
        },
    };
    let id_prefix = query_get(&pairs, "id").map(str::to_lowercase);
    let name_prefix = query_get(&pairs, "name").map(str::to_lowercase);
    let states = query_all(&pairs, "states");
    let include_errored_deleted = query_get(&pairs, "includeErroredDeleted") == Some("true");
    let matches = |sb: &Sandbox, now: Instant| {
        sb.listed_from <= now
            && (include_errored_deleted || !sb.hidden())
            && labels.iter().all(|(k, v)| sb.labels.get(k) == Some(v))
            && id_prefix
                .as_deref()
                .is_none_or(|p| sb.id.to_lowercase().starts_with(p))
            && name_prefix
                .as_deref()
                .is_none_or(|p| sb.name.to_lowercase().starts_with(p))
            && (states.is_empty() || states.contains(&sb.state))
    };

    if cfg.legacy_list {
        let items = shared
            .locked(|s| {
                let now = Instant::now();
                s.sandboxes
                    .iter()
                    .filter(|sb| matches(sb, now))
                    .map(|sb| sb.to_json(&shared.json_ctx, false))
                    .collect::<Vec<_>>()
            })
            .await;
        return Ok(axum::Json(Value::Array(items)).into_response());
    }

    let limit = match query_get(&pairs, "limit") {
        None => 100,
        Some(s) => {
            let n: i64 = s
                .parse()
                .map_err(|_| ApiError::bad_request("limit must be an integer number"))?;
            if n < 1 {
                return Err(ApiError::bad_request("limit must not be less than 1"));
            }
            if n > 200 {
                return Err(ApiError::bad_request("limit must not be greater than 200"));
            }
            n as usize
        }
    };
    let limit = limit.min(cfg.max_page_size.max(1));
    let (sort, desc) = sort_of(&pairs)?;
    let after = match query_get(&pairs, "cursor") {
        None | Some("") => None,
        Some(c) => Some(
            decode_cursor(c)
                .ok_or_else(|| ApiError::bad_request(format!("Invalid cursor provided: {c}")))?,
        ),
    };
    let (items, next) = shared
        .locked(|s| {
            let now = Instant::now();
            let key = |sb: &Sandbox| (sort_value(sb, &sort), sb.id.clone());
            let beyond = |sb: &Sandbox| {
                after.as_ref().is_none_or(|a| {
                    let k = key(sb);
                    if desc { &k < a } else { &k > a }
                })
            };
            let mut all: Vec<&Sandbox> = s
                .sandboxes
                .iter()
                .filter(|sb| beyond(sb) && matches(sb, now))
                .collect();
            all.sort_by_key(|sb| key(sb));
            if desc {
                all.reverse();
            }
            let mut page: Vec<&Sandbox> = all.into_iter().take(limit + 1).collect();
            let more = page.len() > limit;
            page.truncate(limit);
            let next = if more {
                page.last().map(|sb| encode_cursor(sb, &sort))
            } else {
                None
            };
            let items: Vec<Value> = page
                .iter()
                .map(|sb| sb.to_json(&shared.json_ctx, true))
                .collect();
            (items, next)
        })
        .await;
    Ok(axum::Json(serde_json::json!({ "items": items, "nextCursor": next })).into_response())
}

/// `POST /api/sandbox`: create from a snapshot (or build info).
async fn create(
    State(shared): State<Arc<Shared>>,
    auth: Authed,
    body: Bytes,
) -> Result<Response, ApiError> {
    auth.require("write:sandboxes")?;
    let req = parse_object(&body)?;
    let cfg = &shared.config;
    let snapshot = opt_str(&req, "snapshot")?.filter(|s| !s.trim().is_empty());
    let build = !matches!(req.get("buildInfo"), None | Some(Value::Null));
    if build {
        if snapshot.is_some() {
            return Err(ApiError::bad_request(
                "Cannot specify a snapshot when using a build info entry",
            ));
        }
        let dockerfile = req
            .get("buildInfo")
            .and_then(|b| b.get("dockerfileContent"));
        if !matches!(dockerfile, Some(Value::String(s)) if !s.is_empty()) {
            return Err(ApiError::bad_request(
                "buildInfo.dockerfileContent should not be empty",
            ));
        }
    } else if ["cpu", "gpu", "memory", "disk"]
        .iter()
        .any(|k| truthy(req.get(*k)))
    {
        return Err(ApiError::bad_request(
            "Cannot specify Sandbox resources when using a snapshot",
        ));
    }
    let name = opt_str(&req, "name")?.filter(|n| !n.is_empty());
    if let Some(n) = &name
        && !valid_name(n)
    {
        return Err(ApiError::bad_request(
            "name must not contain HTML tags, URLs, or control characters",
        ));
    }
    let user = opt_str(&req, "user")?
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "daytona".into());
    let target = opt_str(&req, "target")?
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "us".into());
    let labels = opt_str_map(&req, "labels")?;
    let env = opt_str_map(&req, "env")?;
    let public = opt_bool(&req, "public")?.unwrap_or(false);
    let auto_stop = opt_int(&req, "autoStopInterval")?.unwrap_or(15);
    if auto_stop < 0 {
        return Err(ApiError::bad_request(
            "Auto-stop interval must be non-negative",
        ));
    }
    let auto_archive = match opt_int(&req, "autoArchiveInterval")?.unwrap_or(10080) {
        n if n < 0 => {
            return Err(ApiError::bad_request(
                "Auto-archive interval must be non-negative",
            ));
        }
        0 => 43200,
        n => n.min(43200),
    };
    let auto_delete = opt_int(&req, "autoDeleteInterval")?.unwrap_or(-1);
    let resource = |k: &str, default: u64| -> Result<u64, ApiError> {
        Ok(if build {
            opt_int(&req, k)?.map_or(default, |n| n.max(0) as u64)
        } else {
            default
        })
    };
    let (cpu, gpu, memory, disk) = (
        resource("cpu", 1)?,
        resource("gpu", 0)?,
        resource("memory", 1)?,
        resource("disk", 3)?,
    );
    if !REGIONS.contains(&target.as_str()) {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "Region not found"));
    }
    let saved = match &snapshot {
        Some(s) => {
            shared
                .locked(|st| {
                    st.snapshot(s, Instant::now())
                        .map(|x| (x.id.clone(), x.class.clone()))
                })
                .await
        }
        None => None,
    };
    if let Some(s) = &snapshot
        && !cfg.snapshots.contains(s)
        && saved.is_none()
    {
        return Err(ApiError::bad_request(format!(
            "Snapshot {s} not found. Did you add it through the Daytona Dashboard?"
        )));
    }

    let id = uuid::Uuid::new_v4().to_string();
    let now = Utc::now();
    let sandbox = Sandbox {
        id: id.clone(),
        seq: 0,
        name: name.unwrap_or_else(|| id.clone()),
        snapshot: if build {
            None
        } else {
            Some(snapshot.unwrap_or_else(|| DEFAULT_SNAPSHOT.into()))
        },
        user,
        env: env
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
        labels,
        public,
        target,
        cpu,
        gpu,
        memory,
        disk,
        state: "unknown".into(),
        desired_state: "started".into(),
        error_reason: None,
        fails_to_start: None,
        pending: None,
        auto_stop_interval: auto_stop,
        auto_archive_interval: auto_archive,
        auto_delete_interval: auto_delete,
        created_at: now,
        updated_at: now,
        last_activity_at: now,
        listed_from: Instant::now() + cfg.list_lag,
        class: saved
            .as_ref()
            .map_or_else(|| cfg.sandbox_class.clone(), |(_, class)| class.clone()),
        parent: None,
    };
    let create_delay = cfg.create_delay;
    let image = sandbox.snapshot.clone();
    shared
        .locked(move |s: &mut Store| {
            if s.name_taken(&sandbox.name) {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!("Sandbox with name {} already exists", sandbox.name),
                ));
            }
            let mut sandbox = sandbox;
            s.next_seq += 1;
            sandbox.seq = s.next_seq;
            // Creation times are distinct and increasing (Daytona's are microseconds apart at
            // least), so `sort=createdAt` orders sandboxes as they were created.
            if let Some(last) = s.sandboxes.iter().map(|x| x.created_at).max()
                && sandbox.created_at.timestamp_millis() <= last.timestamp_millis()
            {
                sandbox.created_at = last + chrono::Duration::milliseconds(1);
                sandbox.updated_at = sandbox.created_at;
                sandbox.last_activity_at = sandbox.created_at;
            }
            sandbox.begin("started", "started", create_delay);
            s.sandboxes.push(sandbox);
            Ok(())
        })
        .await?;

    let ssh = cfg.ssh.clone();
    let sid = id.clone();
    let restore = saved.map(|(key, _)| key);
    let fails = image.as_deref() == Some(crate::FAILING_SNAPSHOT);
    let created = tokio::task::spawn_blocking(move || {
        ssh.sandbox_created_from(&sid, image.as_deref())?;
        match restore {
            Some(key) => ssh.files_restored(&key, &sid),
            None => Ok(()),
        }
    })
    .await
    .unwrap_or_else(|e| Err(anyhow::anyhow!("ssh backend panicked: {e}")));
    if let Err(e) = created {
        let reason = format!("Failed to provision sandbox: {e:#}");
        shared
            .locked(|s| s.force_state(&id, "error", Some(&reason)))
            .await;
    }
    if fails {
        shared
            .locked(|s| s.force_state(&id, "error", Some(crate::FAILING_REASON)))
            .await;
    }
    if !build {
        wait_started(&shared, &id, cfg.server_wait).await?;
    }
    sandbox_response(&shared, &id).await
}

/// Waits up to `max` for `started`; an error state in that window is 400 "failed to start".
async fn wait_started(shared: &Shared, id: &str, max: Duration) -> Result<(), ApiError> {
    if max.is_zero() {
        return Ok(());
    }
    let deadline = Instant::now() + max;
    loop {
        let state = shared
            .locked(|s| {
                s.by_id(id)
                    .map(|sb| (sb.state.clone(), sb.error_reason.clone()))
            })
            .await;
        match state {
            None => return Ok(()),
            Some((s, _)) if s == "started" => return Ok(()),
            Some((s, reason)) if is_error_state(&s) => {
                return Err(ApiError::bad_request(format!(
                    "Sandbox failed to start: {}",
                    reason.unwrap_or_default()
                )));
            }
            Some(_) => {}
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(());
        }
        tokio::time::sleep((deadline - now).min(Duration::from_millis(5))).await;
    }
}

/// The full Sandbox JSON of `id` (by exact id), or 404.
pub(crate) async fn sandbox_response(shared: &Shared, id: &str) -> Result<Response, ApiError> {
    let v = shared
        .locked(|s| s.by_id(id).map(|sb| sb.to_json(&shared.json_ctx, false)))
        .await;
    v.map(|v| axum::Json(v).into_response())
        .ok_or_else(|| ApiError::sandbox_not_found(id))
}

/// Runs `f` on the visible sandbox named by `key`; returns its id and full JSON afterwards.
async fn with_sandbox<R>(
    shared: &Shared,
    key: &str,
    f: impl FnOnce(&mut Sandbox) -> Result<R, ApiError>,
) -> Result<(String, Value, R), ApiError> {
    shared
        .locked(|s| {
            let idx = s
                .find(key)
                .ok_or_else(|| ApiError::sandbox_not_found(key))?;
            let sb = &mut s.sandboxes[idx];
            let r = f(sb)?;
            Ok((sb.id.clone(), sb.to_json(&shared.json_ctx, false), r))
        })
        .await
}

/// `GET /api/sandbox/{idOrName}`.
async fn get_one(
    State(shared): State<Arc<Shared>>,
    _auth: Authed,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let (_, v, ()) = with_sandbox(&shared, &key, |_| Ok(())).await?;
    Ok(axum::Json(v).into_response())
}

/// `DELETE /api/sandbox/{idOrName}`: soft delete.
async fn delete(
    State(shared): State<Arc<Shared>>,
    auth: Authed,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    auth.require("delete:sandboxes")?;
    let delay = shared.config.delete_delay;
    let has_children = shared
        .locked(|s| {
            let Some(idx) = s.find(&key) else {
                return false;
            };
            let id = s.sandboxes[idx].id.clone();
            s.sandboxes
                .iter()
                .any(|c| c.parent.as_deref() == Some(id.as_str()) && c.desired_state != "destroyed")
        })
        .await;
    if has_children {
        return Err(ApiError::bad_request(
            "Cannot delete sandbox which has active fork children. The forks must be deleted first.",
        ));
    }
    let (_, v, ()) = with_sandbox(&shared, &key, |sb| {
        // The real API answers 500 for a sandbox still being created or started (Daytona
        // issues #2236, #2390; the addendum §9), 409 for other changes in progress.
        if matches!(sb.derived_state(false), "creating" | "starting") {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "An unexpected error occurred.",
            ));
        }
        if !is_error_state(&sb.state) && sb.in_transition() {
            return Err(ApiError::in_progress());
        }
        sb.begin_destroy(delay);
        Ok(())
    })
    .await?;
    Ok(axum::Json(v).into_response())
}

/// `POST /api/sandbox/{idOrName}/start`.
async fn start(
    State(shared): State<Arc<Shared>>,
    auth: Authed,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    auth.require("write:sandboxes")?;
    let delay = shared.config.start_delay;
    let (id, v, wait) = with_sandbox(&shared, &key, |sb| {
        if is_error_state(&sb.state) {
            return Err(ApiError::bad_request("Sandbox is in an errored state"));
        }
        if sb.in_transition() {
            return Err(ApiError::in_progress());
        }
        match sb.state.as_str() {
            "started" => Ok(false),
            "stopped" if sb.fails_to_start.is_some() => {
                sb.pending = None;
                sb.state = "error".into();
                sb.desired_state = "started".into();
                sb.error_reason = sb.fails_to_start.take();
                Ok(true)
            }
            "stopped" => {
                sb.begin("started", "started", delay);
                Ok(true)
            }
            "archived" => {
                // The runner picks it up at once; restoring takes longer, so no server wait.
                sb.state = "restoring".into();
                sb.begin("started", "started", delay);
                Ok(false)
            }
            _ => Err(ApiError::bad_request("Sandbox is not in valid state")),
        }
    })
    .await?;
    if !wait {
        return Ok(axum::Json(v).into_response());
    }
    wait_started(&shared, &id, shared.config.server_wait).await?;
    sandbox_response(&shared, &id).await
}

/// `POST /api/sandbox/{idOrName}/stop` (an ephemeral sandbox is deleted instead).
async fn stop(
    State(shared): State<Arc<Shared>>,
    auth: Authed,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    auth.require("write:sandboxes")?;
    let (stop_delay, delete_delay) = (shared.config.stop_delay, shared.config.delete_delay);
    let (_, v, ()) = with_sandbox(&shared, &key, |sb| {
        if is_error_state(&sb.state) {
            return Err(ApiError::bad_request("Sandbox is in an errored state"));
        }
        if sb.in_transition() {
            return Err(ApiError::in_progress());
        }
        if sb.state != "started" {
            return Err(ApiError::bad_request("Sandbox is not in a stoppable state"));
        }
        if sb.auto_delete_interval == 0 {
            sb.begin_destroy(delete_delay);
        } else {
            sb.begin("stopped", "stopped", stop_delay);
        }
        Ok(())
    })
    .await?;
    Ok(axum::Json(v).into_response())
}

/// `POST /api/sandbox/{idOrName}/archive`.
async fn archive(
    State(shared): State<Arc<Shared>>,
    auth: Authed,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    auth.require("write:sandboxes")?;
    let delay = shared.config.stop_delay;
    let (_, v, ()) = with_sandbox(&shared, &key, |sb| {
        if is_error_state(&sb.state) {
            return Err(ApiError::bad_request("Sandbox is in an errored state"));
        }
        if sb.in_transition() {
            return Err(ApiError::in_progress());
        }
        if sb.auto_delete_interval == 0 {
            return Err(ApiError::bad_request(
                "Ephemeral sandboxes cannot be archived",
            ));
        }
        if sb.state != "stopped" {
            return Err(ApiError::bad_request("Sandbox is not stopped"));
        }
        sb.begin("archived", "archived", delay);
        Ok(())
    })
    .await?;
    Ok(axum::Json(v).into_response())
}

/// `PUT /api/sandbox/{idOrName}/labels`: replaces every label.
async fn replace_labels(
    State(shared): State<Arc<Shared>>,
    auth: Authed,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    auth.require("write:sandboxes")?;
    let labels = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("labels")
                .and_then(Value::as_object)
                .and_then(string_map)
        })
        .ok_or_else(|| ApiError::bad_request("labels must be an object"))?;
    let (_, v, ()) = with_sandbox(&shared, &key, |sb| {
        sb.labels = labels;
        sb.updated_at = Utc::now();
        Ok(())
    })
    .await?;
    Ok(axum::Json(v).into_response())
}

/// `POST /api/sandbox/{id}/last-activity`: 201, empty body.
async fn last_activity(
    State(shared): State<Arc<Shared>>,
    _auth: Authed,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    with_sandbox(&shared, &key, |sb| {
        sb.last_activity_at = Utc::now();
        Ok(())
    })
    .await?;
    Ok(StatusCode::CREATED.into_response())
}

/// `POST /api/sandbox/{idOrName}/ssh-access?expiresInMinutes=N`: one live token per sandbox.
async fn create_ssh(
    State(shared): State<Arc<Shared>>,
    auth: Authed,
    Path(key): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    auth.require("write:sandboxes")?;
    let pairs = query_pairs(&raw);
    let minutes = match query_get(&pairs, "expiresInMinutes") {
        None | Some("") => 60.0,
        Some(s) => s
            .parse::<f64>()
            .ok()
            .filter(|m| m.is_finite())
            .ok_or_else(|| ApiError::bad_request("expiresInMinutes must be a number"))?,
    };
    // Revoke earlier tokens first (their access_revoked runs before access_granted below).
    let (id, _, ()) = with_sandbox(&shared, &key, |_| Ok(())).await?;
    shared.locked(|s| s.revoke(&id, None)).await;

    let token = mint_token();
    let ssh = shared.config.ssh.clone();
    let (sid, tok) = (id.clone(), token.clone());
    let granted = tokio::task::spawn_blocking(move || ssh.access_granted(&sid, &tok))
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("ssh backend panicked: {e}")));
    let (host, port) = granted.map_err(|e| {
        eprintln!("daytona-sim: ssh access_granted failed: {e:#}");
        ApiError::unexpected()
    })?;

    let now = Utc::now();
    let record = SshToken {
        id: uuid::Uuid::new_v4().to_string(),
        sandbox_id: id.clone(),
        token: token.clone(),
        expires_at: now + chrono::Duration::milliseconds((minutes * 60_000.0) as i64),
        created_at: now,
        expired: false,
    };
    let json = record.to_json(&ssh_command(&token, &host, port));
    let stored = shared
        .locked(|s| {
            if s.by_id(&id).is_none() {
                // Deleted meanwhile: the token never becomes live.
                s.outbox
                    .push(super::state::SshEvent::Revoked(token.clone()));
                return false;
            }
            // A concurrent mint may have slipped in; keep only ours.
            s.revoke(&id, None);
            s.minted.push(record.token.clone());
            s.tokens.push(record);
            true
        })
        .await;
    if !stored {
        return Err(ApiError::sandbox_not_found(&key));
    }
    Ok(axum::Json(json).into_response())
}

/// `DELETE /api/sandbox/{idOrName}/ssh-access[?token=T]`: returns the Sandbox.
async fn revoke_ssh(
    State(shared): State<Arc<Shared>>,
    auth: Authed,
    Path(key): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    auth.require("write:sandboxes")?;
    let pairs = query_pairs(&raw);
    let token = query_get(&pairs, "token")
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let v = shared
        .locked(|s| {
            let idx = s
                .find(&key)
                .ok_or_else(|| ApiError::sandbox_not_found(&key))?;
            let id = s.sandboxes[idx].id.clone();
            s.revoke(&id, token.as_deref());
            Ok::<_, ApiError>(s.sandboxes[idx].to_json(&shared.json_ctx, false))
        })
        .await?;
    Ok(axum::Json(v).into_response())
}

/// `GET /api-keys/current` (§4 of the addendum): the API key's name, masked value and
/// permissions. API keys only: the JWT gets 401 `Invalid credentials`.
async fn current_api_key(
    State(shared): State<Arc<Shared>>,
    auth: Authed,
) -> Result<Response, ApiError> {
    if !auth.is_api_key() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Invalid credentials",
        ));
    }
    let key = &shared.config.api_key;
    let masked = format!(
        "{}{}{}",
        &key[..3.min(key.len())],
        "*".repeat(20),
        &key[key.len().saturating_sub(3)..]
    );
    Ok(Json(json!({
        "name": "cbx-sim",
        "value": masked,
        "createdAt": "2026-01-01T00:00:00.000Z",
        "permissions": auth.scopes.unwrap_or_default(),
        "lastUsedAt": null,
        "expiresAt": null,
        "userId": "sim-user",
    }))
    .into_response())
}
