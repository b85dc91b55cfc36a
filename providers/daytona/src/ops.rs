//! The lease operations as Daytona REST calls: one request (or one page loop) per operation.

use crate::api::{self, CreateSandbox, ReplaceLabels};
use crate::cbx::provider::http::{Method, Request, Response};
use crate::cbx::provider::types::{
    Check, CheckStatus, CreateRequest, ProviderError, Sandbox, SshAccess,
};
use crate::config::{Auth, AutoDelete, Config};
use crate::encode::{LabelObject, labels_json, percent_encode};
use crate::errors;
use crate::scopes;
use crate::ssh;
use crate::transport::Transport;

/// Timeout for calls the server may hold while the sandbox starts (it waits up to 30 s).
const SLOW_CALL_TIMEOUT_MS: u32 = 90_000;
/// Page size asked of `GET /sandbox`.
const PAGE_LIMIT: u32 = 100;
/// Most pages `list` follows before it gives up.
const MAX_PAGES: usize = 1000;

/// A configured Daytona client over a transport.
pub struct Daytona<'a, T: Transport> {
    cfg: &'a Config,
    transport: &'a T,
}

impl<'a, T: Transport> Daytona<'a, T> {
    /// A client for `cfg` that sends through `transport`.
    pub fn new(cfg: &'a Config, transport: &'a T) -> Self {
        Daytona { cfg, transport }
    }

    /// Lists one sandbox to prove the endpoint answers and accepts the credentials.
    pub fn doctor(&self) -> Result<Vec<Check>, ProviderError> {
        let action = "list sandboxes";
        let labels = [("cbx".to_string(), "true".to_string())];
        let path = format!(
            "/sandbox?limit=1&labels={}",
            percent_encode(&labels_json(&labels))
        );
        let resp = self.call(Method::Get, &path, None, None, action)?;
        let auth = match self.cfg.auth {
            Auth::None => check(
                "auth",
                CheckStatus::Warn,
                "no credentials are attached, yet the server answered".to_string(),
            ),
            kind => check(
                "auth",
                CheckStatus::Ok,
                format!("credentials accepted ({})", kind.as_str()),
            ),
        };
        let api = match api::parse_page(action, &resp.body) {
            Ok(_) => check(
                "api",
                CheckStatus::Ok,
                format!("GET /sandbox answered {}", resp.status),
            ),
            Err(_) => check(
                "api",
                CheckStatus::Fail,
                format!(
                    "GET /sandbox answered {} but not with a sandbox list; the `api` endpoint \
                     must be Daytona's API base URL, e.g. https://app.daytona.io/api",
                    resp.status
                ),
            ),
        };
        Ok(vec![auth, api, self.scopes_check(), self.cleanup_check()])
    }

    /// The API key's permissions from `GET /api-keys/current`; `None` when the credential is
    /// not an API key or the server has no such route (older servers answer 404).
    fn key_permissions(&self) -> Result<Option<Vec<String>>, ProviderError> {
        if self.cfg.auth != Auth::ApiKey {
            return Ok(None);
        }
        let action = "read the API key's scopes";
        match self.call(Method::Get, "/api-keys/current", None, None, action) {
            Ok(resp) => Ok(scopes::parse_permissions(&resp.body)),
            Err(ProviderError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Doctor's `scopes` line: the exact scopes the key lacks, and the fix.
    fn scopes_check(&self) -> Check {
        let wanted: Vec<&str> = scopes::REQUIRED.iter().map(|(s, _)| *s).collect();
        match (self.cfg.auth, self.key_permissions()) {
            (Auth::Jwt, _) => check(
                "scopes",
                CheckStatus::Ok,
                "a login token (JWT) acts with your organization role's permissions; not checked"
                    .to_string(),
            ),
            (Auth::None, _) => check(
                "scopes",
                CheckStatus::Warn,
                "no credential, so no scopes to check".to_string(),
            ),
            (_, Ok(Some(perms))) => {
                let missing = scopes::missing(&perms);
                if missing.is_empty() && !scopes::can_delete_checkpoints(&perms) {
                    check(
                        "scopes",
                        CheckStatus::Warn,
                        format!(
                            "the API key has {} but lacks {}: leases work, but cbx refuses \
                             `checkpoint create` (it could not delete the checkpoint again). \
                             Fix, if you use checkpoints: {}",
                            wanted.join(" and "),
                            scopes::CHECKPOINT,
                            scopes::CHECKPOINT_FIX
                        ),
                    )
                } else if missing.is_empty() {
                    check(
                        "scopes",
                        CheckStatus::Ok,
                        format!("the API key has {}", wanted.join(" and ")),
                    )
                } else {
                    check(
                        "scopes",
                        CheckStatus::Fail,
                        format!(
                            "the API key lacks {}: {}. Fix: {}",
                            missing.join(" and "),
                            scopes::consequence(&missing),
                            scopes::FIX
                        ),
                    )
                }
            }
            (_, Ok(None)) => check(
                "scopes",
                CheckStatus::Warn,
                format!(
                    "the server does not say the API key's scopes (GET /api-keys/current); cbx \
                     needs {}",
                    wanted.join(" and ")
                ),
            ),
            (_, Err(e)) => check(
                "scopes",
                CheckStatus::Warn,
                format!(
                    "could not read the API key's scopes: {}",
                    errors::message(&e)
                ),
            ),
        }
    }

    /// Refuses (before anything is created) a key that could not delete what it creates.
    fn require_scopes(&self, action: &str) -> Result<(), ProviderError> {
        // Unknown scopes (no route, a temporary failure) do not stop a create.
        let Ok(Some(perms)) = self.key_permissions() else {
            return Ok(());
        };
        let missing = scopes::missing(&perms);
        if missing.is_empty() {
            return Ok(());
        }
        Err(ProviderError::Forbidden(format!(
            "daytona {action}: the API key lacks {}, so {}; nothing was created. Fix: {}",
            missing.join(" and "),
            scopes::consequence(&missing),
            scopes::FIX
        )))
    }

    /// Refuses (before anything is made) a checkpoint the key could not delete again.
    pub(crate) fn require_checkpoint_scope(&self, action: &str) -> Result<(), ProviderError> {
        // Unknown scopes (a JWT, no route, a temporary failure) do not stop a checkpoint.
        let Ok(Some(perms)) = self.key_permissions() else {
            return Ok(());
        };
        if scopes::can_delete_checkpoints(&perms) {
            return Ok(());
        }
        Err(ProviderError::Forbidden(format!(
            "daytona {action}: the API key lacks {}, so cbx could not delete this checkpoint \
             again; nothing was made. Fix: {}",
            scopes::CHECKPOINT,
            scopes::CHECKPOINT_FIX
        )))
    }

    /// What Daytona deletes on its own (`autoDeleteInterval`), and when that never happens.
    fn cleanup_check(&self) -> Check {
        let archive = match self.cfg.auto_archive_minutes {
            0 => "Daytona's maximum".to_string(),
            m => format!("{m} min"),
        };
        match self.cfg.auto_delete {
            AutoDelete::Never => check(
                "cleanup",
                CheckStatus::Warn,
                "auto-delete-minutes=never: Daytona never deletes a stopped cbx sandbox; only cbx \
                 deletes a lease (at its TTL, on the machine holding it). Set \
                 auto-delete-minutes=ttl so an abandoned lease is deleted after it stops"
                    .to_string(),
            ),
            auto => check(
                "cleanup",
                CheckStatus::Ok,
                format!(
                    "cbx deletes a lease when its TTL is over; Daytona deletes a stopped cbx \
                     sandbox {} (auto-delete-minutes), unless it archives it first ({archive} \
                     after it stops, auto-archive-minutes)",
                    auto.describe()
                ),
            ),
        }
    }

    /// Creates a sandbox from the configured snapshot, in the configured region. An idle
    /// timeout past Daytona's 32-bit signed minutes is refused, never wrapped.
    pub fn create(&self, req: &CreateRequest) -> Result<Sandbox, ProviderError> {
        self.create_from(req, &self.cfg.snapshot)
    }

    /// Creates a sandbox from `snapshot` (the configured one, or a checkpoint), in the
    /// configured region.
    pub fn create_from(
        &self,
        req: &CreateRequest,
        snapshot: &str,
    ) -> Result<Sandbox, ProviderError> {
        let action = "create sandbox";
        if i32::try_from(req.idle_timeout_minutes).is_err() {
            return Err(ProviderError::InvalidConfig(format!(
                "an idle timeout of {} minutes is more than Daytona accepts (at most {} minutes)",
                req.idle_timeout_minutes,
                i32::MAX
            )));
        }
        self.require_scopes(action)?;
        let body = api::to_body(&CreateSandbox {
            name: &req.name,
            labels: LabelObject(&req.labels),
            auto_stop_interval: req.idle_timeout_minutes,
            auto_archive_interval: self.cfg.auto_archive_minutes,
            auto_delete_interval: self.cfg.auto_delete.interval(req.ttl_minutes),
            public: false,
            snapshot,
            target: &self.cfg.target,
            user: &self.cfg.user,
        });
        let resp = self.call(
            Method::Post,
            "/sandbox",
            Some(body),
            Some(SLOW_CALL_TIMEOUT_MS),
            action,
        )?;
        sandbox_of(action, &resp)
    }

    /// Reads one sandbox by id or name.
    pub fn get(&self, id: &str) -> Result<Sandbox, ProviderError> {
        let action = format!("get sandbox {id}");
        let path = sandbox_path(id, "", &action)?;
        let resp = self.call(Method::Get, &path, None, None, &action)?;
        sandbox_of(&action, &resp)
    }

    /// Lists every sandbox carrying all `labels`, oldest first, following `nextCursor` to the
    /// end.
    pub fn list(&self, labels: &[(String, String)]) -> Result<Vec<Sandbox>, ProviderError> {
        let action = "list sandboxes";
        // Oldest first by creation time (id breaks ties): a sort key that never changes, so a
        // walk over several pages skips nothing. Daytona's default, last activity, moves
        // whenever a sandbox is used, and the cursor does not record the sort: every page
        // resends it.
        let first = format!(
            "/sandbox?limit={PAGE_LIMIT}&sort=createdAt&order=asc&labels={}",
            percent_encode(&labels_json(labels))
        );
        let mut path = first.clone();
        let mut seen_cursors: Vec<String> = Vec::new();
        let mut out: Vec<Sandbox> = Vec::new();
        for _ in 0..MAX_PAGES {
            let resp = self.call(Method::Get, &path, None, None, action)?;
            let page = api::parse_page(action, &resp.body).map_err(ProviderError::Other)?;
            for sandbox in page.items {
                // A sandbox whose sort key changes mid-walk can show up on two pages.
                if !out.iter().any(|s| s.id == sandbox.id) {
                    out.push(sandbox);
                }
            }
            let Some(cursor) = page.next_cursor else {
                return Ok(out);
            };
            if seen_cursors.contains(&cursor) {
                return Err(ProviderError::Other(format!(
                    "daytona {action}: the server repeated a pagination cursor after {} pages",
                    seen_cursors.len() + 1
                )));
            }
            path = format!("{first}&cursor={}", percent_encode(&cursor));
            seen_cursors.push(cursor);
        }
        Err(ProviderError::Other(format!(
            "daytona {action}: gave up after {MAX_PAGES} pages"
        )))
    }

    /// Starts a stopped or archived sandbox.
    pub fn start(&self, id: &str) -> Result<Sandbox, ProviderError> {
        let action = format!("start sandbox {id}");
        let path = sandbox_path(id, "/start", &action)?;
        let resp = self.call(
            Method::Post,
            &path,
            None,
            Some(SLOW_CALL_TIMEOUT_MS),
            &action,
        )?;
        sandbox_of(&action, &resp)
    }

    /// Stops a running sandbox.
    pub fn stop(&self, id: &str) -> Result<Sandbox, ProviderError> {
        let action = format!("stop sandbox {id}");
        let path = sandbox_path(id, "/stop", &action)?;
        let resp = self.call(Method::Post, &path, None, None, &action)?;
        sandbox_of(&action, &resp)
    }

    /// Deletes a sandbox; `not-found` when it is already gone.
    pub fn delete(&self, id: &str) -> Result<(), ProviderError> {
        let action = format!("delete sandbox {id}");
        let path = sandbox_path(id, "", &action)?;
        self.call(Method::Delete, &path, None, None, &action)?;
        Ok(())
    }

    /// Replaces all of a sandbox's labels and returns the sandbox as it is afterwards.
    pub fn set_labels(
        &self,
        id: &str,
        labels: &[(String, String)],
    ) -> Result<Sandbox, ProviderError> {
        let action = format!("set labels on sandbox {id}");
        let path = sandbox_path(id, "/labels", &action)?;
        let body = api::to_body(&ReplaceLabels {
            labels: LabelObject(labels),
        });
        let resp = self.call(Method::Put, &path, Some(body), None, &action)?;
        // Real servers answer with the Sandbox; the published spec says only `{labels}`.
        if api::has_sandbox_id(&resp.body) {
            sandbox_of(&action, &resp)
        } else {
            self.get(id)
        }
    }

    /// Resets the sandbox's idle timer.
    pub fn touch(&self, id: &str) -> Result<(), ProviderError> {
        let action = format!("touch sandbox {id}");
        let path = sandbox_path(id, "/last-activity", &action)?;
        self.call(Method::Post, &path, None, None, &action)?;
        Ok(())
    }

    /// Mints SSH access; the token is the SSH user and is marked secret.
    pub fn mint_ssh_access(&self, id: &str) -> Result<SshAccess, ProviderError> {
        let action = format!("mint ssh access for sandbox {id}");
        let path = format!(
            "{}?expiresInMinutes={}",
            sandbox_path(id, "/ssh-access", &action)?,
            self.cfg.ssh_access_minutes
        );
        let resp = self.call(Method::Post, &path, None, None, &action)?;
        let access = api::parse_ssh_access(&action, &resp.body).map_err(ProviderError::Other)?;
        let endpoint =
            ssh::endpoint(access.ssh_command.as_deref()).map_err(ProviderError::Other)?;
        Ok(SshAccess {
            user: access.token,
            user_is_secret: true,
            host: endpoint.host,
            port: endpoint.port,
            identity_file: None,
            expires_at: access.expires_at,
        })
    }

    /// Sends one request under the API base; non-2xx answers become typed errors.
    pub(crate) fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout_ms: Option<u32>,
        action: &str,
    ) -> Result<Response, ProviderError> {
        let mut headers = vec![("accept".to_string(), "application/json".to_string())];
        if body.is_some() {
            headers.push(("content-type".to_string(), "application/json".to_string()));
        }
        self.transport
            .debug(&format!("{} {path}", method_name(method)));
        let request = Request {
            method,
            url: format!("{}{path}", self.cfg.base),
            headers,
            body,
            timeout_ms,
        };
        let resp = self
            .transport
            .send(&request)
            .map_err(|e| errors::from_http_error(action, e))?;
        if (200..300).contains(&resp.status) {
            Ok(resp)
        } else {
            Err(errors::from_status(
                action,
                resp.status,
                &resp.headers,
                &resp.body,
            ))
        }
    }
}

/// `/sandbox/{id}{suffix}` with the id percent-encoded; an empty id is refused, since it would
/// address the collection instead.
pub(crate) fn sandbox_path(id: &str, suffix: &str, action: &str) -> Result<String, ProviderError> {
    if id.trim().is_empty() {
        return Err(ProviderError::Other(format!(
            "daytona {action}: the sandbox id is empty"
        )));
    }
    Ok(format!("/sandbox/{}{suffix}", percent_encode(id)))
}

/// The Sandbox in a 2xx response body.
pub(crate) fn sandbox_of(action: &str, resp: &Response) -> Result<Sandbox, ProviderError> {
    api::parse_sandbox_body(action, &resp.body).map_err(ProviderError::Other)
}

/// One doctor line.
fn check(name: &str, status: CheckStatus, detail: String) -> Check {
    Check {
        name: name.to_string(),
        status,
        detail,
    }
}

/// The method's name as written in logs.
fn method_name(method: Method) -> &'static str {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cbx::provider::http::HttpError;
    use crate::cbx::provider::types::{SandboxState, Settings};
    use std::cell::RefCell;
    use std::collections::VecDeque;

    /// A scripted transport: answers in order and records every request.
    pub(crate) struct Fake {
        pub(crate) answers: RefCell<VecDeque<Result<Response, HttpError>>>,
        pub(crate) sent: RefCell<Vec<Request>>,
        logs: RefCell<Vec<String>>,
    }

    impl Fake {
        pub(crate) fn new(answers: Vec<Result<Response, HttpError>>) -> Fake {
            Fake {
                answers: RefCell::new(answers.into()),
                sent: RefCell::new(Vec::new()),
                logs: RefCell::new(Vec::new()),
            }
        }
        pub(crate) fn urls(&self) -> Vec<String> {
            self.sent.borrow().iter().map(|r| r.url.clone()).collect()
        }
    }

    impl Transport for Fake {
        fn send(&self, request: &Request) -> Result<Response, HttpError> {
            self.sent.borrow_mut().push(request.clone());
            self.answers
                .borrow_mut()
                .pop_front()
                .expect("an answer is scripted")
        }
        fn debug(&self, message: &str) {
            self.logs.borrow_mut().push(message.to_string());
        }
    }

    pub(crate) fn ok(status: u16, body: &str) -> Result<Response, HttpError> {
        Ok(Response {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        })
    }

    pub(crate) fn cfg(options: &[(&str, &str)], credentials: &[&str]) -> Config {
        Config::from_settings(&Settings {
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            endpoints: vec![("api".to_string(), "https://d.example/api/".to_string())],
            credentials: credentials.iter().map(|s| s.to_string()).collect(),
        })
        .unwrap()
    }

    pub(crate) fn labels(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const SB: &str = r#"{"id":"id-1","name":"cbx-a","state":"creating","labels":{"cbx":"true"}}"#;
    /// `GET /api-keys/current` of a key with the scopes cbx needs.
    const KEY: &str =
        r#"{"name":"k","permissions":["write:sandboxes","delete:sandboxes","delete:snapshots"]}"#;

    #[test]
    fn create_request() {
        let c = cfg(
            &[("snapshot", "daytona-medium"), ("target", "eu")],
            &["api-key"],
        );
        let fake = Fake::new(vec![ok(200, KEY), ok(200, SB)]);
        let req = CreateRequest {
            name: "cbx-a".into(),
            labels: labels(&[("cbx", "true"), ("lease", "l1")]),
            idle_timeout_minutes: 30,
            ttl_minutes: 90,
        };
        let sb = Daytona::new(&c, &fake).create(&req).unwrap();
        assert_eq!(sb.state, SandboxState::Creating);
        let sent = fake.sent.borrow();
        assert_eq!(sent[0].url, "https://d.example/api/api-keys/current");
        assert_eq!(sent[0].method, Method::Get);
        let r = &sent[1];
        assert_eq!(r.method, Method::Post);
        assert_eq!(r.url, "https://d.example/api/sandbox");
        assert_eq!(r.timeout_ms, Some(90_000));
        assert!(
            r.headers
                .contains(&("content-type".into(), "application/json".into()))
        );
        assert!(
            r.headers
                .contains(&("accept".into(), "application/json".into()))
        );
        let body: serde_json::Value = serde_json::from_slice(r.body.as_ref().unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "name": "cbx-a", "labels": {"cbx": "true", "lease": "l1"},
                "autoStopInterval": 30, "autoArchiveInterval": 10080,
                "autoDeleteInterval": 90, "public": false,
                "snapshot": "daytona-medium", "target": "eu", "user": "daytona"
            })
        );
        assert_eq!(
            fake.logs.borrow().as_slice(),
            ["GET /api-keys/current", "POST /sandbox"]
        );
    }

    #[test]
    fn an_idle_timeout_past_32_bit_minutes_is_refused_before_any_request() {
        let c = cfg(&[], &["api-key"]);
        let fake = Fake::new(vec![ok(200, KEY), ok(200, SB)]);
        let mut req = CreateRequest {
            name: "cbx-a".into(),
            labels: vec![],
            idle_timeout_minutes: 2_147_483_648,
            ttl_minutes: 90,
        };
        let err = Daytona::new(&c, &fake).create(&req).unwrap_err();
        let ProviderError::InvalidConfig(m) = err else {
            panic!("{err:?}");
        };
        assert!(m.contains("at most 2147483647 minutes"), "{m}");
        assert!(fake.sent.borrow().is_empty(), "nothing was sent");
        req.idle_timeout_minutes = 2_147_483_647;
        Daytona::new(&c, &fake).create(&req).unwrap();
        let sent = fake.sent.borrow();
        let body: serde_json::Value =
            serde_json::from_slice(sent[1].body.as_ref().unwrap()).unwrap();
        assert_eq!(body["autoStopInterval"], 2_147_483_647);
    }

    #[test]
    fn create_quota_error() {
        let c = cfg(&[], &["api-key"]);
        let fake = Fake::new(vec![
            ok(200, KEY),
            ok(
                400,
                r#"{"statusCode":400,"message":"Total CPU limit exceeded. Maximum allowed: 10."}"#,
            ),
        ]);
        let req = CreateRequest {
            name: "n".into(),
            labels: vec![],
            idle_timeout_minutes: 0,
            ttl_minutes: 0,
        };
        let err = Daytona::new(&c, &fake).create(&req).unwrap_err();
        let ProviderError::Quota(m) = err else {
            panic!("{err:?}")
        };
        assert_eq!(
            m,
            "daytona create sandbox: Total CPU limit exceeded. Maximum allowed: 10. (HTTP 400)"
        );
    }

    #[test]
    fn get_encodes_id() {
        let c = cfg(&[], &["api-key"]);
        let fake = Fake::new(vec![ok(200, SB)]);
        Daytona::new(&c, &fake).get("a b/c").unwrap();
        assert_eq!(fake.urls(), ["https://d.example/api/sandbox/a%20b%2Fc"]);
        assert_eq!(fake.sent.borrow()[0].body, None);
    }

    #[test]
    fn empty_id_is_refused_without_a_request() {
        let c = cfg(&[], &["api-key"]);
        let fake = Fake::new(vec![]);
        assert!(Daytona::new(&c, &fake).delete(" ").is_err());
        assert!(fake.sent.borrow().is_empty());
    }

    #[test]
    fn list_follows_cursors() {
        let c = cfg(&[], &["api-key"]);
        let fake = Fake::new(vec![
            ok(
                200,
                r#"{"items":[{"id":"a"},{"id":"b"}],"nextCursor":"c/1"}"#,
            ),
            ok(
                200,
                r#"{"items":[{"id":"b"},{"id":"c"}],"nextCursor":"c2"}"#,
            ),
            ok(200, r#"{"items":[],"nextCursor":null}"#),
        ]);
        let out = Daytona::new(&c, &fake)
            .list(&labels(&[("cbx", "true"), ("p", "d")]))
            .unwrap();
        let ids: Vec<&str> = out.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        let q = "https://d.example/api/sandbox?limit=100&sort=createdAt&order=asc&labels=%7B%22cbx%22%3A%22true%22%2C%22p%22%3A%22d%22%7D";
        assert_eq!(
            fake.urls(),
            [
                q.to_string(),
                format!("{q}&cursor=c%2F1"),
                format!("{q}&cursor=c2")
            ]
        );
    }

    #[test]
    fn list_accepts_bare_array() {
        let c = cfg(&[], &["api-key"]);
        let fake = Fake::new(vec![ok(200, r#"[{"id":"a"}]"#)]);
        assert_eq!(Daytona::new(&c, &fake).list(&[]).unwrap().len(), 1);
        assert_eq!(fake.sent.borrow().len(), 1);
    }

    #[test]
    fn list_stops_on_repeated_cursor() {
        let c = cfg(&[], &["api-key"]);
        let fake = Fake::new(vec![
            ok(200, r#"{"items":[],"nextCursor":"x"}"#),
            ok(200, r#"{"items":[],"nextCursor":"y"}"#),
            ok(200, r#"{"items":[],"nextCursor":"x"}"#),
        ]);
        let err = Daytona::new(&c, &fake).list(&[]).unwrap_err();
        assert!(
            matches!(err, ProviderError::Other(ref m) if m.contains("repeated")),
            "{err:?}"
        );
    }

    #[test]
    fn list_gives_up_after_max_pages() {
        let c = cfg(&[], &["api-key"]);
        let answers = (0..MAX_PAGES)
            .map(|i| ok(200, &format!(r#"{{"items":[],"nextCursor":"c{i}"}}"#)))
            .collect();
        let fake = Fake::new(answers);
        let err = Daytona::new(&c, &fake).list(&[]).unwrap_err();
        assert!(
            matches!(err, ProviderError::Other(ref m) if m.contains("1000 pages")),
            "{err:?}"
        );
    }

    #[test]
    fn start_stop_touch_paths() {
        let c = cfg(&[], &["api-key"]);
        let fake = Fake::new(vec![ok(200, SB), ok(200, SB), ok(201, "")]);
        let d = Daytona::new(&c, &fake);
        d.start("id-1").unwrap();
        d.stop("id-1").unwrap();
        d.touch("id-1").unwrap();
        assert_eq!(
            fake.urls(),
            [
                "https://d.example/api/sandbox/id-1/start",
                "https://d.example/api/sandbox/id-1/stop",
                "https://d.example/api/sandbox/id-1/last-activity",
            ]
        );
        let sent = fake.sent.borrow();
        assert_eq!(sent[0].timeout_ms, Some(90_000));
        assert_eq!(sent[1].timeout_ms, None);
        assert!(
            sent.iter()
                .all(|r| r.method == Method::Post && r.body.is_none())
        );
    }

    #[test]
    fn delete_outcomes() {
        let c = cfg(&[], &["api-key"]);
        let fake = Fake::new(vec![
            ok(200, SB),
            ok(
                404,
                r#"{"message":"Sandbox with ID or name id-1 not found"}"#,
            ),
            ok(409, r#"{"message":"Sandbox state change in progress"}"#),
        ]);
        let d = Daytona::new(&c, &fake);
        d.delete("id-1").unwrap();
        assert!(matches!(d.delete("id-1"), Err(ProviderError::NotFound(_))));
        let err = d.delete("id-1").unwrap_err();
        assert!(
            matches!(err, ProviderError::Conflict(ref m) if m == "daytona delete sandbox id-1: Sandbox state change in progress (HTTP 409)"),
            "{err:?}"
        );
        assert_eq!(fake.sent.borrow()[0].method, Method::Delete);
    }

    #[test]
    fn set_labels_with_full_sandbox_answer() {
        let c = cfg(&[], &["api-key"]);
        let fake = Fake::new(vec![ok(200, SB)]);
        let sb = Daytona::new(&c, &fake)
            .set_labels("id-1", &labels(&[("cbx", "true")]))
            .unwrap();
        assert_eq!(sb.id, "id-1");
        let sent = fake.sent.borrow();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].method, Method::Put);
        assert_eq!(sent[0].url, "https://d.example/api/sandbox/id-1/labels");
        assert_eq!(
            sent[0].body.as_deref(),
            Some(&br#"{"labels":{"cbx":"true"}}"#[..])
        );
    }

    #[test]
    fn set_labels_with_labels_only_answer_reads_back() {
        let c = cfg(&[], &["api-key"]);
        let fake = Fake::new(vec![ok(200, r#"{"labels":{"cbx":"true"}}"#), ok(200, SB)]);
        let sb = Daytona::new(&c, &fake)
            .set_labels("id-1", &labels(&[("cbx", "true")]))
            .unwrap();
        assert_eq!(sb.name, "cbx-a");
        let sent = fake.sent.borrow();
        assert_eq!(sent[1].method, Method::Get);
        assert_eq!(sent[1].url, "https://d.example/api/sandbox/id-1");
    }

    #[test]
    fn mint_ssh_access_parses_command() {
        let c = cfg(&[("ssh-access-minutes", "120")], &["api-key"]);
        let fake = Fake::new(vec![ok(
            200,
            r#"{"token":"TOKsecret","sshCommand":"ssh -p 2222 TOKsecret@gw.example","expiresAt":"2026-01-01T00:00:00Z"}"#,
        )]);
        let a = Daytona::new(&c, &fake).mint_ssh_access("id-1").unwrap();
        assert_eq!(a.user, "TOKsecret");
        assert!(a.user_is_secret);
        assert_eq!((a.host.as_str(), a.port), ("gw.example", 2222));
        assert_eq!(a.identity_file, None);
        assert_eq!(a.expires_at.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(
            fake.urls(),
            ["https://d.example/api/sandbox/id-1/ssh-access?expiresInMinutes=120"]
        );
        assert!(fake.logs.borrow().iter().all(|l| !l.contains("TOKsecret")));
    }

    #[test]
    fn mint_ssh_access_defaults_and_errors() {
        let c = cfg(&[], &["api-key"]);
        let fake = Fake::new(vec![
            ok(200, r#"{"token":"T1"}"#),
            ok(200, r#"{"token":""}"#),
            ok(
                200,
                r#"{"token":"T2secret","sshCommand":"ssh -p T2secret@h"}"#,
            ),
        ]);
        let d = Daytona::new(&c, &fake);
        let a = d.mint_ssh_access("id-1").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("ssh.app.daytona.io", 22));
        let err = d.mint_ssh_access("id-1").unwrap_err();
        assert!(
            matches!(err, ProviderError::Other(ref m) if m == "daytona ssh access response has no token")
        );
        let err = d.mint_ssh_access("id-1").unwrap_err();
        assert!(
            matches!(err, ProviderError::Other(ref m) if !m.contains("T2secret")),
            "{err:?}"
        );
    }

    #[test]
    fn doctor_checks() {
        let c = cfg(&[], &["jwt"]);
        let fake = Fake::new(vec![ok(200, r#"{"items":[],"nextCursor":null}"#)]);
        let checks = Daytona::new(&c, &fake).doctor().unwrap();
        assert_eq!(checks.len(), 4);
        assert_eq!(checks[0].name, "auth");
        assert_eq!(checks[0].status, CheckStatus::Ok);
        assert_eq!(checks[0].detail, "credentials accepted (jwt)");
        assert_eq!(checks[1].name, "api");
        assert_eq!(checks[1].detail, "GET /sandbox answered 200");
        assert_eq!(checks[2].name, "scopes");
        assert_eq!(
            checks[2].detail,
            "a login token (JWT) acts with your organization role's permissions; not checked"
        );
        assert_eq!(checks[3].name, "cleanup");
        assert_eq!(checks[3].status, CheckStatus::Ok);
        assert_eq!(
            checks[3].detail,
            "cbx deletes a lease when its TTL is over; Daytona deletes a stopped cbx sandbox the \
             lease's TTL after it stops (auto-delete-minutes), unless it archives it first (10080 \
             min after it stops, auto-archive-minutes)"
        );
        let c = cfg(&[("auto-delete-minutes", "never")], &["jwt"]);
        let fake = Fake::new(vec![ok(200, r#"{"items":[],"nextCursor":null}"#)]);
        let checks = Daytona::new(&c, &fake).doctor().unwrap();
        assert_eq!(checks[3].status, CheckStatus::Warn);
        assert!(
            checks[3].detail.contains("never deletes"),
            "{}",
            checks[3].detail
        );
        assert_eq!(
            fake.urls(),
            ["https://d.example/api/sandbox?limit=1&labels=%7B%22cbx%22%3A%22true%22%7D"]
        );
    }

    #[test]
    fn doctor_flags_a_non_api_endpoint() {
        let c = cfg(&[], &["api-key"]);
        let fake = Fake::new(vec![ok(200, "<!doctype html><html></html>"), ok(200, KEY)]);
        let checks = Daytona::new(&c, &fake).doctor().unwrap();
        assert_eq!(checks[1].status, CheckStatus::Fail);
    }

    #[test]
    fn doctor_names_missing_scopes_and_the_fix() {
        let c = cfg(&[], &["api-key"]);
        let list = || ok(200, r#"{"items":[],"nextCursor":null}"#);
        let fake = Fake::new(vec![
            list(),
            ok(200, KEY),
            list(),
            ok(200, r#"{"permissions":["write:sandboxes"]}"#),
            list(),
            ok(200, r#"{"permissions":[]}"#),
            list(),
            ok(404, r#"{"message":"Cannot GET /api/api-keys/current"}"#),
            list(),
            ok(
                200,
                r#"{"permissions":["write:sandboxes","delete:sandboxes"]}"#,
            ),
        ]);
        let d = Daytona::new(&c, &fake);
        let scopes = |checks: Vec<Check>| checks.into_iter().find(|c| c.name == "scopes").unwrap();
        let ok_line = scopes(d.doctor().unwrap());
        assert_eq!(ok_line.status, CheckStatus::Ok);
        assert_eq!(
            ok_line.detail,
            "the API key has write:sandboxes and delete:sandboxes"
        );
        let no_delete = scopes(d.doctor().unwrap());
        assert_eq!(no_delete.status, CheckStatus::Fail);
        assert!(
            no_delete.detail.starts_with(
                "the API key lacks delete:sandboxes: cbx could create sandboxes but not delete them"
            ),
            "{}",
            no_delete.detail
        );
        assert!(
            no_delete
                .detail
                .contains("Fix: create an API key with write:sandboxes and delete:sandboxes")
        );
        let none = scopes(d.doctor().unwrap());
        assert!(
            none.detail.starts_with(
                "the API key lacks write:sandboxes and delete:sandboxes: cbx cannot create"
            ),
            "{}",
            none.detail
        );
        let unknown = scopes(d.doctor().unwrap());
        assert_eq!(unknown.status, CheckStatus::Warn);
        let no_snapshots = scopes(d.doctor().unwrap());
        assert_eq!(no_snapshots.status, CheckStatus::Warn);
        assert!(
            no_snapshots.detail.starts_with(
                "the API key has write:sandboxes and delete:sandboxes but lacks delete:snapshots: \
                 leases work, but cbx refuses `checkpoint create`"
            ),
            "{}",
            no_snapshots.detail
        );
        assert_eq!(
            fake.urls()[1],
            "https://d.example/api/api-keys/current",
            "the key's own route"
        );
    }

    #[test]
    fn create_refuses_a_key_that_cannot_delete_before_creating() {
        let c = cfg(&[], &["api-key"]);
        let fake = Fake::new(vec![ok(200, r#"{"permissions":["write:sandboxes"]}"#)]);
        let req = CreateRequest {
            name: "n".into(),
            labels: vec![],
            idle_timeout_minutes: 0,
            ttl_minutes: 60,
        };
        let err = Daytona::new(&c, &fake).create(&req).unwrap_err();
        let ProviderError::Forbidden(m) = err else {
            panic!("{err:?}")
        };
        assert!(
            m.starts_with("daytona create sandbox: the API key lacks delete:sandboxes"),
            "{m}"
        );
        assert!(m.contains("nothing was created"), "{m}");
        assert_eq!(fake.sent.borrow().len(), 1, "no POST /sandbox");
        // Scopes the server does not report (404, or an error) do not stop a create.
        let fake = Fake::new(vec![ok(404, r#"{"message":"not found"}"#), ok(200, SB)]);
        Daytona::new(&c, &fake).create(&req).unwrap();
        let fake = Fake::new(vec![ok(503, "{}"), ok(200, SB)]);
        Daytona::new(&c, &fake).create(&req).unwrap();
        assert_eq!(fake.sent.borrow().len(), 2);
    }

    #[test]
    fn doctor_maps_errors() {
        let c = cfg(&[], &["api-key"]);
        let fake = Fake::new(vec![ok(401, r#"{"message":"Invalid credentials"}"#)]);
        let err = Daytona::new(&c, &fake).doctor().unwrap_err();
        assert!(
            matches!(err, ProviderError::Unauthorized(ref m) if m == "daytona list sandboxes: Invalid credentials (HTTP 401)"),
            "{err:?}"
        );
        let fake = Fake::new(vec![Err(HttpError::Connect("connection refused".into()))]);
        let err = Daytona::new(&c, &fake).doctor().unwrap_err();
        assert!(matches!(err, ProviderError::Unavailable(_)), "{err:?}");
    }
}
