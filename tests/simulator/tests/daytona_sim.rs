//! End-to-end tests of the Daytona simulator over real HTTP.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cbx_daytona_sim::{DaytonaSim, Fault, SimConfig, SshBackend};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Short lifecycle delay used by most tests.
const D: Duration = Duration::from_millis(40);

/// A fast sim config.
fn fast() -> SimConfig {
    SimConfig::default().with_delays(D)
}

/// A minimal HTTP client bound to one sim.
struct Api {
    http: reqwest::Client,
    url: String,
    key: String,
}

/// One response: status, headers, JSON body (Null when empty or not JSON).
struct Resp {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Api {
    fn new(sim: &DaytonaSim) -> Self {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        Api {
            http,
            url: sim.api_url(),
            key: sim.api_key(),
        }
    }

    async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self.http.request(method, format!("{}{}", self.url, path));
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let auth = format!("Bearer {}", self.key);
        self.send_with(method, path, body, &[("authorization", &auth)])
            .await
    }

    async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(Method::POST, path, Some(body)).await
    }

    async fn create(&self, body: Value) -> Value {
        let r = self.post("/sandbox", body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body
    }

    /// Polls GET /sandbox/{id} until `state` (or 404 when `state` is "gone").
    async fn wait_state(&self, id: &str, state: &str) {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let r = self.get(&format!("/sandbox/{id}")).await;
            let now = if r.status == StatusCode::NOT_FOUND {
                "gone".to_string()
            } else {
                r.body["state"].as_str().unwrap().to_string()
            };
            if now == state {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {state}, last {now}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Asserts the Daytona error body shape.
fn assert_error(r: &Resp, status: u16, message: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.body);
    assert_eq!(r.body["statusCode"], status);
    assert_eq!(r.body["message"], message);
    assert!(r.body["path"].as_str().unwrap().starts_with('/'));
    assert!(r.body["timestamp"].as_str().unwrap().ends_with('Z'));
    let reason = r.status.canonical_reason().unwrap();
    assert_eq!(r.body["error"], reason);
}

/// An SSH backend that logs every call.
#[derive(Default)]
struct LogSsh {
    calls: Mutex<Vec<String>>,
    port: u16,
}

impl LogSsh {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl SshBackend for LogSsh {
    fn sandbox_created(&self, id: &str) -> anyhow::Result<()> {
        self.calls.lock().unwrap().push(format!("created {id}"));
        Ok(())
    }
    fn access_granted(&self, sandbox_id: &str, token: &str) -> anyhow::Result<(String, u16)> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("granted {sandbox_id} {token}"));
        Ok(("gw.test".into(), self.port))
    }
    fn access_revoked(&self, token: &str) {
        self.calls.lock().unwrap().push(format!("revoked {token}"));
    }
    fn sandbox_deleted(&self, id: &str) {
        self.calls.lock().unwrap().push(format!("deleted {id}"));
    }
}

#[tokio::test]
async fn auth_failures_use_daytona_error_body() {
    let sim = DaytonaSim::start(fast()).await.unwrap();
    let api = Api::new(&sim);
    assert!(sim.api_key().starts_with("dtn_"));

    let r = api.send_with(Method::GET, "/sandbox", None, &[]).await;
    assert_error(&r, 401, "Invalid credentials");
    assert_eq!(r.body["path"], "/api/sandbox");
    assert_eq!(r.body["error"], "Unauthorized");
    let r = api
        .send_with(
            Method::GET,
            "/sandbox",
            None,
            &[("authorization", "Bearer nope")],
        )
        .await;
    assert_error(&r, 401, "Invalid credentials");
    let r = api
        .send_with(Method::POST, "/sandbox", Some(json!({})), &[])
        .await;
    assert_error(&r, 401, "Invalid credentials");
    assert!(sim.sandboxes().is_empty());

    // Unknown routes are 404 JSON even without auth.
    let r = api.send_with(Method::GET, "/nope", None, &[]).await;
    assert_error(&r, 404, "Cannot GET /api/nope");
}

#[tokio::test]
async fn jwt_needs_the_organization_header() {
    let config = SimConfig {
        jwt: Some("eyJhbGciOi.jwt.sig".into()),
        organization_id: "org-1".into(),
        ..fast()
    };
    let sim = DaytonaSim::start(config).await.unwrap();
    let api = Api::new(&sim);
    let bearer = "Bearer eyJhbGciOi.jwt.sig";
    let r = api
        .send_with(Method::GET, "/sandbox", None, &[("authorization", bearer)])
        .await;
    assert_error(&r, 403, "Invalid authentication context");
    let wrong = [
        ("authorization", bearer),
        ("x-daytona-organization-id", "org-2"),
    ];
    let r = api.send_with(Method::GET, "/sandbox", None, &wrong).await;
    assert_error(&r, 403, "Invalid authentication context");
    let ok = [
        ("authorization", bearer),
        ("X-Daytona-Organization-ID", "org-1"),
    ];
    let r = api.send_with(Method::GET, "/sandbox", None, &ok).await;
    assert_eq!(r.status, StatusCode::OK);
    // API keys ignore the header.
    let key = format!("Bearer {}", sim.api_key());
    let h = [
        ("authorization", key.as_str()),
        ("x-daytona-organization-id", "whatever"),
    ];
    let r = api.send_with(Method::GET, "/sandbox", None, &h).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn create_goes_creating_then_started_with_defaults() {
    let ssh = Arc::new(LogSsh {
        port: 2222,
        ..Default::default()
    });
    let sim = DaytonaSim::start(SimConfig {
        ssh: ssh.clone(),
        ..fast()
    })
    .await
    .unwrap();
    let api = Api::new(&sim);
    let sb = api
        .create(json!({"name": "box", "labels": {"a": "1"}}))
        .await;
    assert_eq!(sb["state"], "creating");
    assert_eq!(sb["desiredState"], "started");
    assert_eq!(sb["user"], "daytona");
    assert_eq!(sb["target"], "us");
    assert_eq!(sb["autoStopInterval"], 15);
    assert_eq!(sb["autoArchiveInterval"], 10080);
    assert_eq!(sb["autoDeleteInterval"], -1);
    assert_eq!((sb["cpu"].clone(), sb["gpu"].clone()), (json!(1), json!(0)));
    assert_eq!(
        (sb["memory"].clone(), sb["disk"].clone()),
        (json!(1), json!(3))
    );
    assert_eq!(sb["organizationId"], sim.organization_id());
    assert!(
        sb["toolboxProxyUrl"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    let id = sb["id"].as_str().unwrap();
    uuid::Uuid::parse_str(id).unwrap();
    chrono::DateTime::parse_from_rfc3339(sb["createdAt"].as_str().unwrap()).unwrap();
    chrono::DateTime::parse_from_rfc3339(sb["updatedAt"].as_str().unwrap()).unwrap();
    assert_eq!(ssh.calls(), vec![format!("created {id}")]);

    api.wait_state(id, "started").await;
    // By name as well as by id.
    let r = api.get("/sandbox/box").await;
    assert_eq!(r.body["id"], id);
    assert_eq!(r.body["state"], "started");
    assert_eq!(sim.sandboxes()[0].state, "started");
}

#[tokio::test]
async fn server_wait_answers_started() {
    let config = SimConfig {
        server_wait: Duration::from_secs(2),
        ..fast()
    };
    let sim = DaytonaSim::start(config).await.unwrap();
    let api = Api::new(&sim);
    let t = Instant::now();
    let sb = api.create(json!({})).await;
    assert_eq!(sb["state"], "started");
    assert!(t.elapsed() < Duration::from_secs(1));
    assert_eq!(sb["name"], sb["id"], "name defaults to the id");
}

#[tokio::test]
async fn create_validation() {
    let sim = DaytonaSim::start(fast()).await.unwrap();
    let api = Api::new(&sim);
    let msg = "Cannot specify Sandbox resources when using a snapshot";
    assert_error(&api.post("/sandbox", json!({"cpu": 2})).await, 400, msg);
    assert_error(
        &api.post(
            "/sandbox",
            json!({"snapshot": "daytona-small", "memory": 4}),
        )
        .await,
        400,
        msg,
    );
    // Zero resources pass.
    assert_eq!(
        api.post("/sandbox", json!({"cpu": 0, "disk": 0}))
            .await
            .status,
        StatusCode::OK
    );
    let r = api.post("/sandbox", json!({"autoStopInterval": -1})).await;
    assert_error(&r, 400, "Auto-stop interval must be non-negative");
    let r = api.post("/sandbox", json!({"snapshot": "nope"})).await;
    assert_error(
        &r,
        400,
        "Snapshot nope not found. Did you add it through the Daytona Dashboard?",
    );
    let sb = api
        .create(json!({"snapshot": "daytona-medium", "autoStopInterval": 0}))
        .await;
    assert_eq!(sb["snapshot"], "daytona-medium");
    assert_eq!(sb["autoStopInterval"], 0);
    // Build info allows resources.
    let build = json!({"buildInfo": {"dockerfileContent": "FROM x\n"}, "cpu": 2, "memory": 4});
    let sb = api.create(build).await;
    assert_eq!(
        (sb["cpu"].clone(), sb["memory"].clone()),
        (json!(2), json!(4))
    );
}

#[tokio::test]
async fn duplicate_name_conflicts_until_deleted() {
    let sim = DaytonaSim::start(fast()).await.unwrap();
    let api = Api::new(&sim);
    let sb = api.create(json!({"name": "dup"})).await;
    let r = api.post("/sandbox", json!({"name": "dup"})).await;
    assert_error(&r, 409, "Sandbox with name dup already exists");
    let id = sb["id"].as_str().unwrap();
    api.wait_state(id, "started").await;
    let r = api.send(Method::DELETE, "/sandbox/dup", None).await;
    assert_eq!(r.status, StatusCode::OK);
    // Delete renames at once, freeing the name.
    api.create(json!({"name": "dup"})).await;
}

#[tokio::test]
async fn label_filter_takes_url_encoded_json() {
    let sim = DaytonaSim::start(fast()).await.unwrap();
    let api = Api::new(&sim);
    api.create(json!({"name": "a", "labels": {"crabbox": "true", "owner": "me"}}))
        .await;
    api.create(json!({"name": "b", "labels": {"crabbox": "true", "owner": "you"}}))
        .await;
    api.create(json!({"name": "c", "labels": {"other": "x"}}))
        .await;
    let names = |r: &Resp| -> Vec<String> {
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().into())
            .collect()
    };
    let r = api
        .get("/sandbox?labels=%7B%22crabbox%22%3A%22true%22%7D")
        .await;
    assert_eq!(
        names(&r),
        ["b", "a"],
        "the default: last activity, newest first"
    );
    assert!(r.body["nextCursor"].is_null());
    assert!(
        r.body["items"][0].get("env").is_none(),
        "list items omit env"
    );
    let r = api
        .get("/sandbox?labels=%7B%22crabbox%22%3A%22true%22%2C%22owner%22%3A%22you%22%7D")
        .await;
    assert_eq!(names(&r), ["b"]);
    let r = api
        .get("/sandbox?labels=%7B%22crabbox%22%3A%22TRUE%22%7D")
        .await;
    assert!(names(&r).is_empty(), "exact values only");
    let r = api.get("/sandbox").await;
    assert_eq!(names(&r), ["c", "b", "a"]);
    let r = api.get("/sandbox?sort=createdAt&order=asc").await;
    assert_eq!(names(&r), ["a", "b", "c"]);
    assert_error(
        &api.get("/sandbox?labels=%7Bnot-json").await,
        400,
        "Invalid labels JSON format",
    );
}

#[tokio::test]
async fn cursor_pagination_with_small_pages() {
    let sim = DaytonaSim::start(SimConfig {
        max_page_size: 2,
        ..fast()
    })
    .await
    .unwrap();
    let api = Api::new(&sim);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            api.create(json!({"name": format!("s{i}")})).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/sandbox?limit=100&sort=createdAt&order=asc&cursor={c}"),
            None => "/sandbox?limit=100&sort=createdAt&order=asc".to_string(),
        };
        let r = api.get(&path).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let items = r.body["items"].as_array().unwrap();
        sizes.push(items.len());
        seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_string()));
        match r.body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(seen, ids, "stable creation order, no duplicates");
    assert_error(
        &api.get("/sandbox?cursor=bogus").await,
        400,
        "Invalid cursor provided: bogus",
    );
    assert_error(
        &api.get("/sandbox?limit=0").await,
        400,
        "limit must not be less than 1",
    );
    assert_error(
        &api.get("/sandbox?limit=201").await,
        400,
        "limit must not be greater than 200",
    );
}

#[tokio::test]
async fn legacy_list_is_a_bare_array() {
    let sim = DaytonaSim::start(SimConfig {
        legacy_list: true,
        max_page_size: 1,
        ..fast()
    })
    .await
    .unwrap();
    let api = Api::new(&sim);
    api.create(json!({"labels": {"k": "v"}})).await;
    api.create(json!({})).await;
    let r = api.get("/sandbox?limit=1").await;
    assert_eq!(r.body.as_array().unwrap().len(), 2);
    let r = api.get("/sandbox?labels=%7B%22k%22%3A%22v%22%7D").await;
    assert_eq!(r.body.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn list_lag_hides_new_sandboxes_from_the_list_only() {
    let lag = Duration::from_millis(250);
    let sim = DaytonaSim::start(SimConfig {
        list_lag: lag,
        ..fast()
    })
    .await
    .unwrap();
    let api = Api::new(&sim);
    let t = Instant::now();
    let id = api.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = api.get("/sandbox").await;
    assert!(
        t.elapsed() < lag,
        "test machine too slow to observe the lag"
    );
    assert_eq!(r.body["items"].as_array().unwrap().len(), 0);
    assert_eq!(
        api.get(&format!("/sandbox/{id}")).await.status,
        StatusCode::OK
    );
    tokio::time::sleep(lag).await;
    let r = api.get("/sandbox").await;
    assert_eq!(r.body["items"][0]["id"], id.as_str());
}

#[tokio::test]
async fn delete_goes_destroying_then_404() {
    let ssh = Arc::new(LogSsh {
        port: 2222,
        ..Default::default()
    });
    let config = SimConfig {
        ssh: ssh.clone(),
        delete_delay: Duration::from_millis(150),
        ..fast()
    };
    let sim = DaytonaSim::start(config).await.unwrap();
    let api = Api::new(&sim);
    let id = api.create(json!({"name": "gone-soon"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.wait_state(&id, "started").await;
    let r = api
        .send(Method::DELETE, &format!("/sandbox/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["state"], "destroying");
    assert_eq!(r.body["desiredState"], "destroyed");
    let name = r.body["name"].as_str().unwrap();
    assert!(name.starts_with("DESTROYED_gone-soon_"), "{name}");
    // Still listed while destroying; a second delete is a 409.
    let list = api.get("/sandbox").await;
    assert_eq!(list.body["items"][0]["state"], "destroying");
    let r = api
        .send(Method::DELETE, &format!("/sandbox/{id}"), None)
        .await;
    assert_error(&r, 409, "Sandbox state change in progress");
    api.wait_state(&id, "gone").await;
    let r = api.get(&format!("/sandbox/{id}")).await;
    assert_error(&r, 404, &format!("Sandbox with ID or name {id} not found"));
    assert_eq!(
        api.get("/sandbox").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert!(sim.sandboxes().is_empty());
    // The SSH side hears of it once the state lock is released (the ticker may be the one
    // that removed it): wait for that, bounded.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !ssh.calls().contains(&format!("deleted {id}")) {
        assert!(Instant::now() < deadline, "{:?}", ssh.calls());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = api
        .send(Method::DELETE, &format!("/sandbox/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn lifecycle_calls_conflict_during_transitions() {
    let config = SimConfig {
        create_delay: Duration::from_millis(300),
        ..fast()
    };
    let sim = DaytonaSim::start(config).await.unwrap();
    let api = Api::new(&sim);
    let id = api.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (m, p) in [(Method::POST, "/start"), (Method::POST, "/stop")] {
        let r = api.send(m, &format!("/sandbox/{id}{p}"), None).await;
        assert_error(&r, 409, "Sandbox state change in progress");
    }
    // Deleting a sandbox still being created is a 500, as the real API answers.
    let r = api
        .send(Method::DELETE, &format!("/sandbox/{id}"), None)
        .await;
    assert_error(&r, 500, "An unexpected error occurred.");
    // A stuck transitional state stays put.
    sim.set_state(&id, "stopping");
    assert_eq!(
        api.get(&format!("/sandbox/{id}")).await.body["state"],
        "stopping"
    );
    let r = api.post(&format!("/sandbox/{id}/start"), json!({})).await;
    assert_error(&r, 409, "Sandbox state change in progress");
}

#[tokio::test]
async fn stop_and_start() {
    let sim = DaytonaSim::start(fast()).await.unwrap();
    let api = Api::new(&sim);
    let id = api.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.wait_state(&id, "started").await;

    let r = api.post(&format!("/sandbox/{id}/start"), json!({})).await;
    assert_eq!(
        (r.status, r.body["state"].clone()),
        (StatusCode::OK, json!("started"))
    );

    let r = api.post(&format!("/sandbox/{id}/stop"), json!({})).await;
    assert_eq!(r.body["state"], "stopping");
    assert_eq!(r.body["desiredState"], "stopped");
    api.wait_state(&id, "stopped").await;
    let r = api.post(&format!("/sandbox/{id}/stop"), json!({})).await;
    assert_error(&r, 400, "Sandbox is not in a stoppable state");

    let r = api.post(&format!("/sandbox/{id}/start"), json!({})).await;
    assert_eq!(r.body["state"], "starting");
    api.wait_state(&id, "started").await;

    sim.set_state_with_reason(&id, "error", "disk on fire");
    let r = api.get(&format!("/sandbox/{id}")).await;
    assert_eq!(
        (r.body["state"].clone(), r.body["errorReason"].clone()),
        (json!("error"), json!("disk on fire"))
    );
    let r = api.post(&format!("/sandbox/{id}/start"), json!({})).await;
    assert_error(&r, 400, "Sandbox is in an errored state");
    // Errored sandboxes can be deleted and vanish at once.
    let r = api
        .send(Method::DELETE, &format!("/sandbox/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        api.get(&format!("/sandbox/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn put_labels_replaces_all() {
    let sim = DaytonaSim::start(fast()).await.unwrap();
    let api = Api::new(&sim);
    let id = api.create(json!({"labels": {"a": "1", "b": "2"}})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/sandbox/{id}/labels");
    let r = api
        .send(Method::PUT, &path, Some(json!({"labels": {"c": "3"}})))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["labels"], json!({"c": "3"}));
    assert_eq!(r.body["id"], id.as_str(), "full Sandbox object");
    assert_eq!(sim.sandboxes()[0].labels.len(), 1);
    let r = api.send(Method::PUT, &path, Some(json!({"c": "3"}))).await;
    assert_error(&r, 400, "labels must be an object");
    let r = api
        .send(Method::PUT, &path, Some(json!({"labels": {}})))
        .await;
    assert_eq!(r.body["labels"], json!({}));

    let r = api
        .send(Method::POST, &format!("/sandbox/{id}/last-activity"), None)
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.body.is_null());
}

#[tokio::test]
async fn ssh_access_revokes_the_previous_token() {
    let ssh = Arc::new(LogSsh {
        port: 2222,
        ..Default::default()
    });
    let sim = DaytonaSim::start(SimConfig {
        ssh: ssh.clone(),
        ..fast()
    })
    .await
    .unwrap();
    let api = Api::new(&sim);
    let id = api.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = api
        .post(
            &format!("/sandbox/{id}/ssh-access?expiresInMinutes=30"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let first = r.body["token"].as_str().unwrap().to_string();
    assert_eq!(first.len(), 32);
    assert!(first.chars().all(|c| c.is_ascii_alphanumeric()), "{first}");
    assert_eq!(r.body["sshCommand"], format!("ssh -p 2222 {first}@gw.test"));
    assert_eq!(r.body["sandboxId"], id.as_str());
    let created =
        chrono::DateTime::parse_from_rfc3339(r.body["createdAt"].as_str().unwrap()).unwrap();
    let expires =
        chrono::DateTime::parse_from_rfc3339(r.body["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!((expires - created).num_minutes(), 30);

    let r = api
        .post(&format!("/sandbox/{id}/ssh-access"), json!({}))
        .await;
    let second = r.body["token"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    let calls = ssh.calls();
    let revoked = calls
        .iter()
        .position(|c| *c == format!("revoked {first}"))
        .unwrap();
    let granted = calls
        .iter()
        .position(|c| *c == format!("granted {id} {second}"))
        .unwrap();
    assert!(revoked < granted, "{calls:?}");
    assert_eq!(sim.sandboxes()[0].ssh_tokens, 1);
    assert_eq!(sim.validate_ssh_token(&first), None);
    assert_eq!(sim.validate_ssh_token(&second), Some(id.clone()));

    sim.expire_ssh_tokens(&id);
    assert!(ssh.calls().contains(&format!("revoked {second}")));
    assert_eq!(sim.sandboxes()[0].ssh_tokens, 0);

    let r = api
        .post(&format!("/sandbox/{id}/ssh-access"), json!({}))
        .await;
    let third = r.body["token"].as_str().unwrap().to_string();
    let r = api
        .send(
            Method::DELETE,
            &format!("/sandbox/{id}/ssh-access?token={third}"),
            None,
        )
        .await;
    assert_eq!(r.body["id"], id.as_str());
    assert!(ssh.calls().contains(&format!("revoked {third}")));
    assert!(sim.ssh_tokens().iter().all(|t| t.token != third));
}

#[tokio::test]
async fn ssh_command_omits_port_22() {
    let ssh = Arc::new(LogSsh {
        port: 22,
        ..Default::default()
    });
    let sim = DaytonaSim::start(SimConfig { ssh, ..fast() })
        .await
        .unwrap();
    let api = Api::new(&sim);
    let id = api.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = api
        .post(&format!("/sandbox/{id}/ssh-access"), json!({}))
        .await;
    let token = r.body["token"].as_str().unwrap();
    assert_eq!(r.body["sshCommand"], format!("ssh {token}@gw.test"));
}

#[tokio::test]
async fn faults_rate_limit_then_run_out() {
    let sim = DaytonaSim::start(fast()).await.unwrap();
    let api = Api::new(&sim);
    sim.inject(
        Fault::rate_limited("/api/sandbox", 7)
            .with_method("POST")
            .with_times(2),
    );
    for _ in 0..2 {
        let r = api.post("/sandbox", json!({})).await;
        assert_error(&r, 429, "ThrottlerException: Too Many Requests");
        assert_eq!(r.headers["retry-after-sandbox-create"], "7");
        assert!(r.headers.get("retry-after").is_none());
    }
    // GET is not matched, and the third POST goes through.
    assert_eq!(api.get("/sandbox").await.status, StatusCode::OK);
    let id = api.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(sim.sandboxes().len(), 1, "faulted requests are not handled");

    sim.inject(Fault::rate_limited("/start", 3));
    let r = api.post(&format!("/sandbox/{id}/start"), json!({})).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers["retry-after-sandbox-lifecycle"], "3");
    sim.inject(Fault::rate_limited("/sandbox", 1));
    assert_eq!(
        api.get("/sandbox").await.headers["retry-after-authenticated"],
        "1"
    );

    let delay = Duration::from_millis(100);
    sim.inject(
        Fault::status("GET", &format!("/sandbox/{id}"), 503, "upstream sad").with_delay(delay),
    );
    let t = Instant::now();
    let r = api.get(&format!("/sandbox/{id}")).await;
    assert!(t.elapsed() >= delay);
    assert_error(&r, 503, "upstream sad");
    assert_eq!(
        api.get(&format!("/sandbox/{id}")).await.status,
        StatusCode::OK
    );

    let posts = sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/api/sandbox")
        .count();
    assert_eq!(posts, 3, "faulted requests are still recorded");
}

#[tokio::test]
async fn faults_apply_then_fail_lose_the_answer_or_hold_it() {
    let sim = DaytonaSim::start(fast()).await.unwrap();
    let api = Api::new(&sim);

    // Applied, then answered 504: the sandbox exists although the client saw an error.
    sim.inject(Fault::applied_then_status(
        "POST",
        "/api/sandbox",
        504,
        "Gateway Timeout",
    ));
    let r = api.post("/sandbox", json!({"name": "applied-504"})).await;
    assert_error(&r, 504, "Gateway Timeout");
    assert!(
        sim.sandbox("applied-504").is_some(),
        "the create was applied"
    );

    // Applied, then the answer is lost: the client gets no response at all.
    sim.inject(Fault::applied_then_lost("POST", "/api/sandbox"));
    let lost = api
        .http
        .post(format!("{}/sandbox", api.url))
        .bearer_auth(&api.key)
        .json(&json!({"name": "applied-lost"}))
        .send()
        .await;
    let body = match lost {
        Ok(resp) => resp.bytes().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(body.is_err(), "the answer must not arrive");
    assert!(
        sim.sandbox("applied-lost").is_some(),
        "the create was applied"
    );

    // Not applied: a plain fault still leaves nothing.
    sim.inject(Fault::status("POST", "/api/sandbox", 503, "busy"));
    let r = api.post("/sandbox", json!({"name": "refused"})).await;
    assert_error(&r, 503, "busy");
    assert!(sim.sandbox("refused").is_none());

    // The real answer, held back: the sandbox exists while the client still waits.
    let hold = Duration::from_millis(400);
    sim.inject(Fault::delayed_answer("POST", "/api/sandbox", hold));
    let t = Instant::now();
    let pending = tokio::spawn({
        let http = api.http.clone();
        let url = format!("{}/sandbox", api.url);
        let key = api.key.clone();
        async move {
            http.post(url)
                .bearer_auth(key)
                .json(&json!({"name": "held"}))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let deadline = Instant::now() + Duration::from_secs(2);
    while sim.sandbox("held").is_none() {
        assert!(Instant::now() < deadline, "the held create was not applied");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!pending.is_finished(), "the answer is held back");
    assert_eq!(pending.await.unwrap(), StatusCode::OK);
    assert!(t.elapsed() >= hold);

    // A sequence: two different failures for the same request, in injection order.
    sim.inject(Fault::status("GET", "/api/sandbox/held", 503, "first"));
    sim.inject(Fault::status("GET", "/api/sandbox/held", 502, "second"));
    assert_error(&api.get("/sandbox/held").await, 503, "first");
    assert_error(&api.get("/sandbox/held").await, 502, "second");
    assert_eq!(api.get("/sandbox/held").await.status, StatusCode::OK);
}

#[tokio::test]
async fn requests_are_recorded_in_order() {
    let sim = DaytonaSim::start(fast()).await.unwrap();
    let api = Api::new(&sim);
    api.post("/sandbox", json!({"name": "rec", "labels": {"x": "y"}}))
        .await;
    api.send_with(
        Method::GET,
        "/sandbox?labels=%7B%22x%22%3A%22y%22%7D&limit=5",
        None,
        &[("X-Daytona-Source", "cbx")],
    )
    .await;
    let reqs = sim.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].path.as_str()),
        ("POST", "/api/sandbox")
    );
    assert_eq!(
        reqs[0].body_json().unwrap(),
        json!({"name": "rec", "labels": {"x": "y"}})
    );
    assert_eq!(
        reqs[0].header("authorization"),
        Some(format!("Bearer {}", sim.api_key()).as_str())
    );
    assert!(reqs[0].headers.iter().all(|(n, _)| *n == n.to_lowercase()));
    assert_eq!(reqs[1].method, "GET");
    assert_eq!(reqs[1].query, "labels=%7B%22x%22%3A%22y%22%7D&limit=5");
    assert_eq!(
        reqs[1].query_pairs()[0],
        ("labels".into(), r#"{"x":"y"}"#.into())
    );
    assert_eq!(reqs[1].header("x-daytona-source"), Some("cbx"));
    assert!(reqs[1].body.is_empty());
}

#[tokio::test]
async fn control_api() {
    let sim = DaytonaSim::start(fast()).await.unwrap();
    let api = Api::new(&sim);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = sim.base_url();
    let id = api.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();

    let fault = json!({"method": "GET", "path_contains": "/api/sandbox", "status": 500, "message": "x", "times": 1});
    let r = http
        .post(format!("{base}/_sim/faults"))
        .json(&fault)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_error(&api.get("/sandbox").await, 500, "x");
    // The JSON form of an applied create answered 504.
    let fault = json!({"method": "POST", "path_contains": "/api/sandbox", "status": 504, "message": "late", "apply": true, "answer": "error"});
    let r = http
        .post(format!("{base}/_sim/faults"))
        .json(&fault)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_error(
        &api.post("/sandbox", json!({"name": "late"})).await,
        504,
        "late",
    );
    assert!(sim.sandbox("late").is_some());

    let body = json!({"state": "error", "errorReason": "boom"});
    let r = http
        .post(format!("{base}/_sim/sandboxes/{id}/state"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let views: Value = http
        .get(format!("{base}/_sim/sandboxes"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(views[0]["state"], "error");
    assert_eq!(views[0]["errorReason"], "boom");

    let reqs: Value = http
        .get(format!("{base}/_sim/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reqs = reqs.as_array().unwrap();
    assert_eq!(reqs.len(), 3, "control calls are not recorded");
    assert_eq!(reqs[0]["method"], "POST");
}

#[test]
fn background_runtime_works_from_sync_code() {
    let sim = DaytonaSim::start_background(fast()).unwrap();
    let url = sim.api_url();
    let key = sim.api_key();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        http.get(format!("{url}/sandbox"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, StatusCode::OK);
    sim.shutdown();
}

/// An SSH backend whose provisioning always fails.
struct FailingSsh;

impl SshBackend for FailingSsh {
    fn sandbox_created(&self, _id: &str) -> anyhow::Result<()> {
        anyhow::bail!("no runner")
    }
    fn access_granted(&self, _sandbox_id: &str, _token: &str) -> anyhow::Result<(String, u16)> {
        anyhow::bail!("no gateway")
    }
    fn access_revoked(&self, _token: &str) {}
    fn sandbox_deleted(&self, _id: &str) {}
}

#[tokio::test]
async fn backend_failures_surface_as_daytona_errors() {
    let config = SimConfig {
        ssh: Arc::new(FailingSsh),
        server_wait: Duration::from_secs(1),
        ..fast()
    };
    let sim = DaytonaSim::start(config).await.unwrap();
    let api = Api::new(&sim);
    let r = api.post("/sandbox", json!({"name": "broken"})).await;
    assert_error(
        &r,
        400,
        "Sandbox failed to start: Failed to provision sandbox: no runner",
    );
    let r = api.get("/sandbox/broken").await;
    assert_eq!(r.body["state"], "error");
    let r = api.post("/sandbox/broken/ssh-access", json!({})).await;
    assert_error(&r, 500, "An unexpected error occurred.");
}

#[tokio::test]
async fn ephemeral_stop_deletes_and_archive_restores() {
    let sim = DaytonaSim::start(fast()).await.unwrap();
    let api = Api::new(&sim);
    let eph = api.create(json!({"autoDeleteInterval": 0})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let keep = api.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.wait_state(&eph, "started").await;
    api.wait_state(&keep, "started").await;
    let r = api.post(&format!("/sandbox/{eph}/stop"), json!({})).await;
    assert_eq!(r.body["state"], "destroying");
    api.wait_state(&eph, "gone").await;

    api.post(&format!("/sandbox/{keep}/stop"), json!({})).await;
    api.wait_state(&keep, "stopped").await;
    let r = api
        .post(&format!("/sandbox/{keep}/archive"), json!({}))
        .await;
    assert_eq!(r.body["state"], "archiving");
    api.wait_state(&keep, "archived").await;
    let r = api.post(&format!("/sandbox/{keep}/start"), json!({})).await;
    assert_eq!(r.body["state"], "restoring");
    api.wait_state(&keep, "started").await;
}

#[tokio::test]
async fn default_sort_is_last_activity_descending_and_created_at_is_stable() {
    let sim = DaytonaSim::start(SimConfig {
        max_page_size: 2,
        ..fast()
    })
    .await
    .unwrap();
    let api = Api::new(&sim);
    let mut ids = Vec::new();
    for i in 0..4 {
        let id = api.create(json!({"name": format!("s{i}")})).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        ids.push(id);
    }
    for id in &ids {
        api.wait_state(id, "started").await;
    }
    // By creation time, ascending: every sandbox once, in creation order, whatever is used.
    let stable = walk(&api, "&sort=createdAt&order=asc", &ids[0]).await;
    assert_eq!(stable, ids);
    // The default (last activity, newest first) starts with the most recently used, and a
    // walk while sandboxes are used can skip one: the reason cbx sorts by creation time.
    let first = api.get("/sandbox?limit=1").await;
    let newest = first.body["items"][0]["id"].as_str().unwrap().to_string();
    let recently: Vec<String> = {
        let all = api.get("/sandbox?limit=2").await;
        all.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(recently[0], newest);
    let skipping = walk(&api, "", &ids[1]).await;
    assert!(skipping.len() < 4, "a moving sort key skips: {skipping:?}");
    assert_error(
        &api.get("/sandbox?sort=state").await,
        400,
        "sort must be one of the following values: name, cpu, memoryGib, diskGib, lastActivityAt, createdAt",
    );
    assert_error(
        &api.get("/sandbox?order=up").await,
        400,
        "order must be one of the following values: asc, desc",
    );
}

/// Walks `GET /sandbox?limit=2<query>` page by page; after the first page, sandbox `bump` is
/// used (as the SSH gateway bumps a sandbox's activity every 45 s).
async fn walk(api: &Api, query: &str, bump: &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut bumped = false;
    loop {
        let path = match &cursor {
            Some(c) => format!("/sandbox?limit=2{query}&cursor={c}"),
            None => format!("/sandbox?limit=2{query}"),
        };
        let r = api.get(&path).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        for i in r.body["items"].as_array().unwrap() {
            seen.push(i["id"].as_str().unwrap().to_string());
        }
        if !bumped {
            bumped = true;
            tokio::time::sleep(Duration::from_millis(5)).await;
            let r = api
                .post(&format!("/sandbox/{bump}/last-activity"), json!({}))
                .await;
            assert_eq!(r.status, StatusCode::CREATED);
        }
        match r.body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    seen
}

#[tokio::test]
async fn api_key_scopes_are_enforced_and_reported() {
    let sim = DaytonaSim::start(SimConfig {
        api_key_permissions: vec!["write:sandboxes".into()],
        jwt: Some("jwt-token".into()),
        ..fast()
    })
    .await
    .unwrap();
    let api = Api::new(&sim);
    let r = api.get("/api-keys/current").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["permissions"], json!(["write:sandboxes"]));
    let masked = r.body["value"].as_str().unwrap();
    assert!(masked.starts_with("dtn") && masked.contains("********************"));
    assert!(!masked.contains(&sim.api_key()[4..]));
    let id = api.create(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.wait_state(&id, "started").await;
    let r = api
        .send(Method::DELETE, &format!("/sandbox/{id}"), None)
        .await;
    assert_error(&r, 403, "Access denied");
    // The JWT (an organization owner) bypasses scopes but may not read a key's.
    let org = sim.organization_id();
    let jwt = [
        ("authorization", "Bearer jwt-token"),
        ("x-daytona-organization-id", org.as_str()),
    ];
    let r = api
        .send_with(Method::GET, "/api-keys/current", None, &jwt)
        .await;
    assert_error(&r, 401, "Invalid credentials");
    let r = api
        .send_with(Method::DELETE, &format!("/sandbox/{id}"), None, &jwt)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["state"], "destroying");

    let none = DaytonaSim::start(SimConfig {
        api_key_permissions: Vec::new(),
        ..fast()
    })
    .await
    .unwrap();
    let r = Api::new(&none).post("/sandbox", json!({})).await;
    assert_error(&r, 403, "Access denied");
}
