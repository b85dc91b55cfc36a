//! The real `cbx` binary against wiremock: the exact requests cbx sends to Daytona (method,
//! path, query, headers including the injected credentials, body) and what it does with each
//! kind of error answer.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cbx_testkit::home::{CbxHome, Output};
use serde_json::{Map, Value, json};
use wiremock::matchers::{method, path, path_regex, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The API key every test uses; it must never show up in output or files.
const KEY: &str = "dtn_e2e5ecret0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6071829304";
/// An organization id.
const ORG: &str = "0d6f3c1e-2b7a-4e58-9c1d-3f2e4a5b6c7d";
/// The sandbox id the fake Daytona hands out.
const SANDBOX_ID: &str = "7f1c2d3e-4b5a-4c6d-8e9f-0a1b2c3d4e5f";

/// The ownership labels every cbx sandbox carries.
const OWNERSHIP_LABELS: &[&str] = &[
    "cbx",
    "cbx_provider",
    "cbx_lease",
    "cbx_slug",
    "cbx_created_at",
    "cbx_touched_at",
    "cbx_ttl_secs",
    "cbx_idle_secs",
    "cbx_expires_at",
    "cbx_work_root",
    "cbx_owner",
];

/// The list filter cbx uses for its own sandboxes, URL-encoded as Daytona wants it.
const OWNED_QUERY: &str = "limit=100&sort=createdAt&order=asc&labels=%7B%22cbx%22%3A%22true%22%2C%22cbx_provider%22%3A%22daytona%22%7D";

// ---------------------------------------------------------------------------------------------
// Helpers: homes, Daytona-shaped bodies, request inspection

/// A home whose cbx talks to `server` with [`KEY`].
fn home_for(server: &MockServer) -> CbxHome {
    let mut home = CbxHome::new(env!("CARGO_BIN_EXE_cbx"));
    home.env("DAYTONA_API_URL", &format!("{}/api", server.uri()))
        .env("DAYTONA_API_KEY", KEY);
    home
}

/// Node's reason phrase for the statuses used here.
fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Daytona's error body (`AllExceptionsFilter`).
fn daytona_error(status: u16, path: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "path": path,
        "timestamp": "2026-06-23T12:00:00.000Z",
        "statusCode": status,
        "error": reason(status),
        "message": message,
    }))
}

/// A Sandbox object as Daytona returns it.
fn sandbox_json(id: &str, name: &str, state: &str, labels: &Value) -> Value {
    json!({
        "id": id,
        "organizationId": ORG,
        "name": name,
        "snapshot": "daytona-small",
        "user": "daytona",
        "env": {},
        "labels": labels,
        "public": false,
        "networkBlockAll": false,
        "target": "us",
        "cpu": 1, "gpu": 0, "memory": 1, "disk": 3,
        "state": state,
        "desiredState": if state == "destroying" { "destroyed" } else { "started" },
        "errorReason": null,
        "recoverable": false,
        "backupState": "None",
        "autoStopInterval": 30,
        "autoArchiveInterval": 10080,
        "autoDeleteInterval": -1,
        "createdAt": "2026-06-23T12:00:00.000Z",
        "updatedAt": "2026-06-23T12:00:00.000Z",
        "lastActivityAt": "2026-06-23T12:00:00.000Z",
        "sandboxClass": "container",
        "runnerId": "runner-1",
        "toolboxProxyUrl": "https://proxy.app.daytona.io/toolbox",
    })
}

/// The full ownership labels of a lease made now.
fn owned_labels(lease: &str, slug: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "cbx": "true",
        "cbx_provider": "daytona",
        "cbx_lease": lease,
        "cbx_slug": slug,
        "cbx_created_at": now.to_string(),
        "cbx_touched_at": now.to_string(),
        "cbx_ttl_secs": "5400",
        "cbx_idle_secs": "1800",
        "cbx_expires_at": (now + 5400).to_string(),
        "cbx_work_root": "cbx",
    })
}

/// Writes the claim a warmup on this machine would have left for `lease`.
fn write_claim(home: &CbxHome, lease: &str, slug: &str, sandbox: &str) {
    let dir = home.state_dir().join("claims");
    std::fs::create_dir_all(&dir).unwrap();
    let now = chrono::Utc::now();
    let ts =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let claim = json!({
        "version": 1,
        "leaseId": lease,
        "slug": slug,
        "provider": "daytona",
        "sandboxId": sandbox,
        "sandboxName": format!("cbx-{slug}-{}", &lease[4..]),
        "repoRoot": null,
        "workRoot": "cbx",
        "createdAt": ts(now),
        "expiresAt": ts(now + chrono::Duration::minutes(90)),
        "lastUsedAt": ts(now),
    });
    std::fs::write(
        dir.join(format!("{lease}.json")),
        serde_json::to_vec_pretty(&claim).unwrap(),
    )
    .unwrap();
}

/// The claim files under the home.
fn claim_files(home: &CbxHome) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(home.state_dir().join("claims"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect()
        })
        .unwrap_or_default()
}

/// Every request the server received.
async fn received(server: &MockServer) -> Vec<Request> {
    server
        .received_requests()
        .await
        .expect("request recording is on")
}

/// `METHOD /path` of each request.
fn lines(reqs: &[Request]) -> Vec<String> {
    reqs.iter()
        .map(|r| format!("{} {}", r.method, r.url.path()))
        .collect()
}

/// A header's value.
fn header<'a>(r: &'a Request, name: &str) -> Option<&'a str> {
    r.headers.get(name).and_then(|v| v.to_str().ok())
}

/// A decoded query parameter.
fn query(r: &Request, key: &str) -> Option<String> {
    r.url
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Checks the credentials on every request: the key, and the organization only when expected.
#[track_caller]
fn assert_auth(reqs: &[Request], org: Option<&str>) {
    let bearer = format!("Bearer {KEY}");
    for r in reqs {
        assert_eq!(
            header(r, "authorization"),
            Some(bearer.as_str()),
            "{} {}",
            r.method,
            r.url
        );
        assert_eq!(
            header(r, "x-daytona-organization-id"),
            org,
            "{} {}",
            r.method,
            r.url
        );
    }
}

/// Runs cbx off the async test's thread.
async fn run(home: &CbxHome, args: &[&str]) -> Output {
    tokio::task::block_in_place(|| home.run(args))
}

// ---------------------------------------------------------------------------------------------
// A tiny stateful Daytona: one sandbox, created by POST, ready after some GETs

/// What the fake does on one POST /sandbox instead of creating normally.
struct CreateFailure {
    response: ResponseTemplate,
    /// Whether the sandbox was created anyway (a lost answer).
    created: bool,
}

#[derive(Default)]
struct FakeState {
    created: bool,
    deleted: bool,
    name: String,
    labels: Value,
    gets: usize,
    ready_after: usize,
    post_times: Vec<Instant>,
    create_failures: VecDeque<CreateFailure>,
}

/// A shared fake; each route answers through it.
#[derive(Clone)]
struct Fake(Arc<Mutex<FakeState>>);

#[derive(Clone, Copy)]
enum Route {
    Create,
    Get,
    Labels,
    Delete,
}

struct FakeRoute(Fake, Route);

impl Fake {
    /// A fake whose sandbox is ready from the `ready_after`-th GET on.
    fn new(ready_after: usize) -> Fake {
        Fake(Arc::new(Mutex::new(FakeState {
            ready_after,
            labels: json!({}),
            ..FakeState::default()
        })))
    }

    /// A fake that already holds a ready sandbox of `lease`.
    fn existing(lease: &str, slug: &str) -> Fake {
        let fake = Fake::new(0);
        {
            let mut s = fake.0.lock().unwrap();
            s.created = true;
            s.name = format!("cbx-{slug}-{}", &lease[4..]);
            s.labels = owned_labels(lease, slug);
        }
        fake
    }

    fn fail_next_create(&self, response: ResponseTemplate, created: bool) {
        self.0
            .lock()
            .unwrap()
            .create_failures
            .push_back(CreateFailure { response, created });
    }

    fn post_times(&self) -> Vec<Instant> {
        self.0.lock().unwrap().post_times.clone()
    }

    /// Mounts the sandbox routes (not the list) on `server`.
    async fn mount(&self, server: &MockServer) {
        let one = r"^/api/sandbox/[^/]+$";
        for (m, p, route) in [
            ("POST", r"^/api/sandbox$", Route::Create),
            ("GET", one, Route::Get),
            ("PUT", r"^/api/sandbox/[^/]+/labels$", Route::Labels),
            ("DELETE", one, Route::Delete),
        ] {
            Mock::given(method(m))
                .and(path_regex(p))
                .respond_with(FakeRoute(self.clone(), route))
                .mount(server)
                .await;
        }
    }
}

impl Respond for FakeRoute {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut s = self.0.0.lock().unwrap();
        let req_path = req.url.path().to_string();
        let key = req_path
            .strip_prefix("/api/sandbox/")
            .map(|rest| rest.split('/').next().unwrap_or("").to_string())
            .unwrap_or_default();
        let exists = s.created && !s.deleted && (key == SANDBOX_ID || key == s.name);
        let not_found = || {
            daytona_error(
                404,
                &req_path,
                &format!("Sandbox with ID or name {key} not found"),
            )
        };
        match self.1 {
            Route::Create => {
                s.post_times.push(Instant::now());
                let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                let failure = s.create_failures.pop_front();
                if failure.as_ref().is_none_or(|f| f.created) {
                    s.created = true;
                    s.name = body["name"].as_str().unwrap_or(SANDBOX_ID).to_string();
                    s.labels = body["labels"].clone();
                }
                match failure {
                    Some(f) => f.response,
                    None => ResponseTemplate::new(200)
                        .set_body_json(sandbox_json(SANDBOX_ID, &s.name, "creating", &s.labels)),
                }
            }
            Route::Get if exists => {
                s.gets += 1;
                let state = if s.gets >= s.ready_after {
                    "started"
                } else {
                    "creating"
                };
                ResponseTemplate::new(200)
                    .set_body_json(sandbox_json(SANDBOX_ID, &s.name, state, &s.labels))
            }
            Route::Labels if exists => {
                let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                s.labels = body["labels"].clone();
                ResponseTemplate::new(200)
                    .set_body_json(sandbox_json(SANDBOX_ID, &s.name, "started", &s.labels))
            }
            Route::Delete if exists => {
                s.deleted = true;
                ResponseTemplate::new(200).set_body_json(sandbox_json(
                    SANDBOX_ID,
                    &format!("DESTROYED_{}_1750000000000", s.name),
                    "destroying",
                    &s.labels,
                ))
            }
            _ => not_found(),
        }
    }
}

/// Mounts an empty owned-sandbox list.
async fn mount_empty_list(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/api/sandbox"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "items": [], "nextCursor": null })),
        )
        .mount(server)
        .await;
}

/// A server with an empty list and a fake sandbox, for warmups.
async fn warmup_server(ready_after: usize) -> (MockServer, Fake) {
    let server = MockServer::start().await;
    mount_empty_list(&server).await;
    // The key's scopes, as `GET /api-keys/current` reports them (masked value and all).
    Mock::given(method("GET"))
        .and(path("/api/api-keys/current"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "name": "cbx",
            "value": "dtn********************9f2",
            "createdAt": "2026-06-23T12:00:00.000Z",
            "permissions": ["write:sandboxes", "delete:sandboxes", "read:volumes"],
            "lastUsedAt": null,
            "expiresAt": null,
            "userId": "user-1",
        })))
        .mount(&server)
        .await;
    let fake = Fake::new(ready_after);
    fake.mount(&server).await;
    (server, fake)
}

/// The one POST /api/sandbox body.
fn create_body(reqs: &[Request]) -> Map<String, Value> {
    let posts: Vec<_> = reqs
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == "/api/sandbox")
        .collect();
    assert!(!posts.is_empty(), "no create: {:?}", lines(reqs));
    match serde_json::from_slice(&posts[0].body).expect("a JSON create body") {
        Value::Object(m) => m,
        other => panic!("create body is not an object: {other}"),
    }
}

fn count(reqs: &[Request], m: &str, p: &str) -> usize {
    reqs.iter()
        .filter(|r| r.method.as_str() == m && r.url.path() == p)
        .count()
}

// ---------------------------------------------------------------------------------------------
// doctor

#[tokio::test(flavor = "multi_thread")]
async fn doctor_lists_one_labelled_sandbox_with_the_key() {
    let server = MockServer::start().await;
    mount_empty_list(&server).await;
    let mut home = home_for(&server);

    let out = run(&home, &["doctor"]).await;
    out.ok();
    let reqs = received(&server).await;
    // The list, then the key's own scopes (unknown to this server: a 404 is a warning).
    assert_eq!(
        lines(&reqs),
        ["GET /api/sandbox", "GET /api/api-keys/current"],
        "{out}"
    );
    assert!(out.stdout.contains("warn  scopes"), "{out}");
    let r = &reqs[0];
    assert_eq!(
        r.url.query(),
        Some("limit=1&labels=%7B%22cbx%22%3A%22true%22%7D")
    );
    assert_eq!(query(r, "labels").as_deref(), Some(r#"{"cbx":"true"}"#));
    assert!(r.body.is_empty());
    assert_auth(&reqs, None);

    // With an organization id set, the API key request carries it too.
    home.env("DAYTONA_ORGANIZATION_ID", ORG);
    let out_org = run(&home, &["doctor", "--json"]).await;
    out_org.ok();
    let reqs = received(&server).await;
    assert_eq!(reqs.len(), 4);
    assert_auth(&reqs[2..], Some(ORG));
    home.assert_secret_absent(KEY, &[&out, &out_org], &[]);
}

// ---------------------------------------------------------------------------------------------
// warmup

#[tokio::test(flavor = "multi_thread")]
async fn warmup_sends_exact_requests_in_order() {
    let (server, _fake) = warmup_server(2).await;
    let home = home_for(&server);
    let out = run(
        &home,
        &[
            "warmup",
            "--json",
            "--slug",
            "exact-otter",
            "--idle-timeout",
            "45m",
            "-o",
            "snapshot=daytona-small",
            "-o",
            "target=eu",
            "-o",
            "user=builder",
        ],
    )
    .await;
    out.ok();
    let view = out.json();
    let lease = view["leaseId"].as_str().unwrap().to_string();
    assert_eq!(view["sandboxId"], SANDBOX_ID);
    assert_eq!(view["slug"], "exact-otter");
    assert_eq!(view["provider"], "daytona");
    assert_eq!(view["state"], "ready");
    assert_eq!(view["ready"], true);

    let reqs = received(&server).await;
    let one = format!("/api/sandbox/{SANDBOX_ID}");
    assert_eq!(
        lines(&reqs),
        [
            "GET /api/sandbox".to_string(),
            "GET /api/api-keys/current".to_string(),
            "POST /api/sandbox".to_string(),
            format!("GET {one}"),
            format!("GET {one}"),
            format!("PUT {one}/labels"),
            format!("GET {one}"),
        ],
        "{out}"
    );
    assert_auth(&reqs, None);

    // The owned-sandbox list.
    assert_eq!(reqs[0].url.query(), Some(OWNED_QUERY));
    assert_eq!(
        serde_json::from_str::<Value>(&query(&reqs[0], "labels").unwrap()).unwrap(),
        json!({ "cbx": "true", "cbx_provider": "daytona" })
    );

    // The create body: exactly these fields, never resources.
    let body = create_body(&reqs);
    let keys: BTreeSet<&str> = body.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "name",
            "labels",
            "autoStopInterval",
            "autoArchiveInterval",
            "autoDeleteInterval",
            "public",
            "snapshot",
            "target",
            "user",
        ]),
        "{body:?}"
    );
    assert_eq!(
        body["name"],
        format!("cbx-exact-otter-{}", &lease[4..]).as_str()
    );
    assert_eq!(body["autoStopInterval"], 45);
    assert_eq!(body["autoArchiveInterval"], 10080);
    // Daytona deletes the sandbox on its own the lease's TTL (90m) after it stops.
    assert_eq!(body["autoDeleteInterval"], 90);
    assert_eq!(body["public"], false);
    assert_eq!(body["snapshot"], "daytona-small");
    assert_eq!(body["target"], "eu");
    assert_eq!(body["user"], "builder");
    let labels = body["labels"].as_object().expect("labels object");
    let label_keys: BTreeSet<&str> = labels.keys().map(String::as_str).collect();
    let want: BTreeSet<&str> = OWNERSHIP_LABELS.iter().copied().collect();
    assert_eq!(label_keys, want);
    assert_eq!(labels["cbx"], "true");
    assert_eq!(labels["cbx_provider"], "daytona");
    assert_eq!(labels["cbx_lease"], lease.as_str());
    assert_eq!(labels["cbx_slug"], "exact-otter");
    assert_eq!(labels["cbx_idle_secs"], "2700");
    assert_eq!(labels["cbx_ttl_secs"], "5400");
    assert_eq!(labels["cbx_work_root"], "cbx");
    // The owner label: this home's random owner id, made once and kept 0600.
    let owner_file = home.state_dir().join("owner-id");
    let owner = std::fs::read_to_string(&owner_file).expect("an owner id file");
    assert_eq!(labels["cbx_owner"], owner.trim());
    assert_eq!(owner.trim().len(), 16);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&owner_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let secs = |k: &str| labels[k].as_str().unwrap().parse::<i64>().unwrap();
    assert_eq!(secs("cbx_expires_at") - secs("cbx_created_at"), 5400);
    assert_eq!(header(&reqs[2], "content-type"), Some("application/json"));

    // The label write: the full map, wrapped in {"labels": …}.
    let put: Value = serde_json::from_slice(&reqs[5].body).expect("JSON labels body");
    assert_eq!(put, json!({ "labels": Value::Object(labels.clone()) }));
    assert_eq!(header(&reqs[5], "content-type"), Some("application/json"));
    for r in reqs
        .iter()
        .filter(|r| matches!(r.method.as_str(), "GET" | "DELETE"))
    {
        assert!(r.body.is_empty(), "{} {} has a body", r.method, r.url);
    }
    assert_eq!(view["labels"], Value::Object(labels.clone()));
    home.assert_secret_absent(KEY, &[&out], &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn warmup_omits_unset_snapshot_and_target() {
    let (server, _fake) = warmup_server(1).await;
    let home = home_for(&server);
    let out = run(&home, &["warmup"]).await;
    out.ok();
    assert!(out.stdout.starts_with("leased cbx_"), "{out}");
    assert!(
        out.stdout
            .trim_end()
            .ends_with(&format!("provider=daytona sandbox={SANDBOX_ID}")),
        "{out}"
    );
    let reqs = received(&server).await;
    let body = create_body(&reqs);
    for absent in ["snapshot", "target", "cpu", "memory", "disk", "gpu"] {
        assert!(!body.contains_key(absent), "{absent} sent: {body:?}");
    }
    assert_eq!(body["user"], "daytona");
    assert_eq!(body["autoStopInterval"], 30);
    assert_eq!(body["public"], false);
    home.assert_secret_absent(KEY, &[&out], &[]);
}

// ---------------------------------------------------------------------------------------------
// list

#[tokio::test(flavor = "multi_thread")]
async fn list_follows_next_cursor() {
    let server = MockServer::start().await;
    let a = "cbx_aaaaaaaaaaa1";
    let b = "cbx_bbbbbbbbbbb2";
    let c = "cbx_ccccccccccc3";
    let foreign = json!({
        "cbx": "true", "cbx_provider": "other", "cbx_lease": "cbx_ddddddddddd4", "cbx_slug": "x"
    });
    Mock::given(method("GET"))
        .and(path("/api/sandbox"))
        .and(query_param_is_missing("cursor"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "items": [
                sandbox_json("id-a", "cbx-a", "started", &owned_labels(a, "amber-ant")),
                sandbox_json("id-f", "foreign", "started", &foreign),
                sandbox_json("id-b", "cbx-b", "stopped", &owned_labels(b, "brave-bee")),
            ],
            "nextCursor": "page/2",
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/sandbox"))
        .and(query_param("cursor", "page/2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "items": [sandbox_json("id-c", "cbx-c", "started", &owned_labels(c, "calm-cat"))],
            "nextCursor": null,
        })))
        .mount(&server)
        .await;
    let home = home_for(&server);
    // These leases are not claimed here: `--all` lists them.
    let out = run(&home, &["list", "--all", "--json"]).await;
    out.ok();
    let listed = out.json();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["leaseId"].as_str().unwrap())
        .collect();
    let got: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(got, BTreeSet::from([a, b, c]), "{out}");
    assert_eq!(ids.len(), 3);
    assert!(!out.stdout.contains("id-f"), "{out}");

    let reqs = received(&server).await;
    assert_eq!(
        lines(&reqs),
        ["GET /api/sandbox", "GET /api/sandbox"],
        "{out}"
    );
    assert_eq!(reqs[0].url.query(), Some(OWNED_QUERY));
    assert_eq!(
        reqs[1].url.query(),
        Some(format!("{OWNED_QUERY}&cursor=page%2F2").as_str())
    );
    assert_auth(&reqs, None);
    home.assert_secret_absent(KEY, &[&out], &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn list_accepts_a_bare_array() {
    let server = MockServer::start().await;
    let a = "cbx_0a0a0a0a0a0a";
    Mock::given(method("GET"))
        .and(path("/api/sandbox"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!([sandbox_json(
                "id-a",
                "cbx-a",
                "started",
                &owned_labels(a, "amber-ant")
            )])),
        )
        .mount(&server)
        .await;
    let home = home_for(&server);
    let out = run(&home, &["list", "--all", "--json"]).await;
    out.ok();
    let listed = out.json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{out}");
    assert_eq!(listed[0]["leaseId"], a);
    assert_eq!(listed[0]["sandboxId"], "id-a");
    assert_eq!(received(&server).await.len(), 1);
    home.assert_secret_absent(KEY, &[&out], &[]);
}

// ---------------------------------------------------------------------------------------------
// stop

#[tokio::test(flavor = "multi_thread")]
async fn stop_deletes_only_the_claimed_sandbox() {
    let server = MockServer::start().await;
    let mine = "cbx_111111111111";
    let theirs = "cbx_222222222222";
    // The list shows both; only `mine` is claimed here.
    Mock::given(method("GET"))
        .and(path("/api/sandbox"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "items": [
                sandbox_json(SANDBOX_ID, "cbx-mine", "started", &owned_labels(mine, "my-moth")),
                sandbox_json("other-id", "cbx-theirs", "started", &owned_labels(theirs, "their-tern")),
            ],
            "nextCursor": null,
        })))
        .mount(&server)
        .await;
    let fake = Fake::existing(mine, "my-moth");
    fake.mount(&server).await;
    let home = home_for(&server);
    write_claim(&home, mine, "my-moth", SANDBOX_ID);

    let refused = run(&home, &["stop", "their-tern"]).await;
    assert_eq!(refused.code, 4, "{refused}");
    let refused_id = run(&home, &["stop", "other-id"]).await;
    assert_eq!(refused_id.code, 4, "{refused_id}");

    let out = run(&home, &["stop", "my-moth"]).await;
    out.ok();
    assert!(
        out.stdout.starts_with(&format!(
            "released {mine} slug=my-moth sandbox={SANDBOX_ID}"
        )),
        "{out}"
    );
    let reqs = received(&server).await;
    let deletes: Vec<String> = reqs
        .iter()
        .filter(|r| r.method.as_str() == "DELETE")
        .map(|r| r.url.path().to_string())
        .collect();
    assert_eq!(deletes, [format!("/api/sandbox/{SANDBOX_ID}")]);
    // After the delete cbx reads the sandbox until it is gone (404).
    let after: Vec<String> = lines(&reqs)
        .into_iter()
        .skip_while(|l| !l.starts_with("DELETE"))
        .collect();
    assert_eq!(after[1], format!("GET /api/sandbox/{SANDBOX_ID}"));
    assert!(claim_files(&home).is_empty());
    assert_auth(&reqs, None);
    home.assert_secret_absent(KEY, &[&refused, &refused_id, &out], &[]);
}

// ---------------------------------------------------------------------------------------------
// Errors

#[tokio::test(flavor = "multi_thread")]
async fn unauthorized_401_exits_3_with_daytonas_message() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/sandbox"))
        .respond_with(daytona_error(401, "/api/sandbox", "Invalid credentials"))
        .mount(&server)
        .await;
    let home = home_for(&server);
    let out = run(&home, &["list"]).await;
    assert_eq!(out.code, 3, "{out}");
    assert!(out.stderr.contains("Invalid credentials"), "{out}");
    assert!(out.stderr.contains("DAYTONA_API_KEY"), "{out}");
    assert_eq!(received(&server).await.len(), 1, "401 is not retried");
    let doctor = run(&home, &["doctor"]).await;
    assert_eq!(doctor.code, 3, "{doctor}");
    home.assert_secret_absent(KEY, &[&out, &doctor], &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn forbidden_403_exits_3() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/sandbox"))
        .respond_with(daytona_error(403, "/api/sandbox", "Forbidden resource"))
        .mount(&server)
        .await;
    let home = home_for(&server);
    let out = run(&home, &["list"]).await;
    assert_eq!(out.code, 3, "{out}");
    assert!(out.stderr.contains("Forbidden resource"), "{out}");
    assert_eq!(received(&server).await.len(), 1);
    home.assert_secret_absent(KEY, &[&out], &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn status_of_a_vanished_sandbox_exits_4() {
    let server = MockServer::start().await;
    let lease = "cbx_333333333333";
    let fake = Fake::new(0); // holds no sandbox: every GET is a 404
    fake.mount(&server).await;
    let home = home_for(&server);
    write_claim(&home, lease, "gone-gnu", SANDBOX_ID);
    let out = run(&home, &["status", "gone-gnu"]).await;
    assert_eq!(out.code, 4, "{out}");
    assert!(out.stderr.contains(SANDBOX_ID), "{out}");
    let reqs = received(&server).await;
    assert_eq!(
        lines(&reqs),
        [format!("GET /api/sandbox/{SANDBOX_ID}")],
        "404 is not retried"
    );
    home.assert_secret_absent(KEY, &[&out], &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_conflict_409_is_retried() {
    let server = MockServer::start().await;
    let lease = "cbx_444444444444";
    Mock::given(method("DELETE"))
        .and(path(format!("/api/sandbox/{SANDBOX_ID}")))
        .respond_with(daytona_error(
            409,
            &format!("/api/sandbox/{SANDBOX_ID}"),
            "Sandbox state change in progress",
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let fake = Fake::existing(lease, "busy-bat");
    fake.mount(&server).await;
    let home = home_for(&server);
    write_claim(&home, lease, "busy-bat", SANDBOX_ID);
    let out = run(&home, &["stop", "busy-bat"]).await;
    out.ok();
    assert!(out.stderr.contains("retrying"), "{out}");
    let reqs = received(&server).await;
    assert_eq!(
        count(&reqs, "DELETE", &format!("/api/sandbox/{SANDBOX_ID}")),
        2,
        "{:?}",
        lines(&reqs)
    );
    assert!(claim_files(&home).is_empty());
    home.assert_secret_absent(KEY, &[&out], &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn create_rate_limited_429_waits_for_retry_after() {
    let (server, fake) = warmup_server(1).await;
    fake.fail_next_create(
        daytona_error(429, "/api/sandbox", "ThrottlerException: Too Many Requests")
            .insert_header("Retry-After-sandbox-create", "1")
            .insert_header("X-RateLimit-Remaining-sandbox-create", "0"),
        false,
    );
    let home = home_for(&server);
    let out = run(&home, &["warmup", "--json"]).await;
    out.ok();
    assert_eq!(out.json()["sandboxId"], SANDBOX_ID);
    let reqs = received(&server).await;
    assert_eq!(
        count(&reqs, "POST", "/api/sandbox"),
        2,
        "{:?}",
        lines(&reqs)
    );
    let times = fake.post_times();
    let gap = times[1] - times[0];
    assert!(
        gap >= Duration::from_millis(950),
        "retried after {gap:?}, not after Retry-After-sandbox-create: 1"
    );
    assert!(gap < Duration::from_secs(5), "waited {gap:?}");
    home.assert_secret_absent(KEY, &[&out], &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn persistent_503_is_retried_a_bounded_number_of_times() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/sandbox"))
        .respond_with(daytona_error(
            503,
            "/api/sandbox",
            "Service temporarily unavailable",
        ))
        .mount(&server)
        .await;
    let home = home_for(&server);
    let out = run(&home, &["list"]).await;
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains("Service temporarily unavailable"),
        "{out}"
    );
    let n = received(&server).await.len();
    assert!((2..=5).contains(&n), "{n} requests");
    home.assert_secret_absent(KEY, &[&out], &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn create_500_is_not_retried_and_a_lost_create_is_cleaned_up() {
    let (server, fake) = warmup_server(1).await;
    // The server created the sandbox but answered 500.
    fake.fail_next_create(
        daytona_error(500, "/api/sandbox", "An unexpected error occurred."),
        true,
    );
    let home = home_for(&server);
    let out = run(&home, &["warmup"]).await;
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains("An unexpected error occurred."),
        "{out}"
    );
    let reqs = received(&server).await;
    assert_eq!(
        count(&reqs, "POST", "/api/sandbox"),
        1,
        "{:?}",
        lines(&reqs)
    );
    let name = create_body(&reqs)["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("cbx-"));
    let post_at = reqs
        .iter()
        .position(|r| r.method.as_str() == "POST")
        .unwrap();
    assert_eq!(
        lines(&reqs[post_at + 1..]),
        [
            format!("GET /api/sandbox/{name}"),
            format!("DELETE /api/sandbox/{SANDBOX_ID}"),
        ]
    );
    assert!(claim_files(&home).is_empty());
    home.assert_secret_absent(KEY, &[&out], &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_snapshot_400_exits_2() {
    let (server, fake) = warmup_server(1).await;
    fake.fail_next_create(
        daytona_error(
            400,
            "/api/sandbox",
            "Snapshot daytona-huge not found. Did you add it through the Daytona Dashboard?",
        ),
        false,
    );
    let home = home_for(&server);
    let out = run(&home, &["warmup", "-o", "snapshot=daytona-huge"]).await;
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr.contains("Snapshot daytona-huge not found"),
        "{out}"
    );
    let reqs = received(&server).await;
    assert_eq!(count(&reqs, "POST", "/api/sandbox"), 1);
    assert!(!reqs.iter().any(|r| r.method.as_str() == "DELETE"));
    home.assert_secret_absent(KEY, &[&out], &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn quota_400_exits_5() {
    let (server, fake) = warmup_server(1).await;
    fake.fail_next_create(
        daytona_error(
            400,
            "/api/sandbox",
            "Total CPU limit exceeded. Maximum allowed: 10.",
        ),
        false,
    );
    let home = home_for(&server);
    let out = run(&home, &["warmup"]).await;
    assert_eq!(out.code, 5, "{out}");
    assert!(out.stderr.contains("Total CPU limit exceeded"), "{out}");
    let reqs = received(&server).await;
    assert_eq!(count(&reqs, "POST", "/api/sandbox"), 1);
    home.assert_secret_absent(KEY, &[&out], &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_echoed_key_is_redacted() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/sandbox"))
        .respond_with(daytona_error(
            401,
            "/api/sandbox",
            &format!("API key {KEY} is revoked (sent as Bearer {KEY})"),
        ))
        .mount(&server)
        .await;
    let home = home_for(&server);
    let out = run(&home, &["list"]).await;
    assert_eq!(out.code, 3, "{out}");
    assert!(out.stderr.contains("<redacted>"), "{out}");
    assert!(out.stderr.contains("is revoked"), "{out}");
    let verbose = run(&home, &["-vv", "list"]).await;
    assert_eq!(verbose.code, 3, "{verbose}");
    let doctor = run(&home, &["doctor", "--json"]).await;
    assert_eq!(doctor.code, 3, "{doctor}");
    home.assert_secret_absent(KEY, &[&out, &verbose, &doctor], &[]);
}

// ---------------------------------------------------------------------------------------------
// Redirects

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_off_the_origin_is_denied() {
    let elsewhere = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "items": [] })))
        .mount(&elsewhere)
        .await;
    let server = MockServer::start().await;
    let target = format!("{}/api/sandbox", elsewhere.uri());
    Mock::given(method("GET"))
        .and(path("/api/sandbox"))
        .respond_with(ResponseTemplate::new(302).insert_header("Location", target.as_str()))
        .mount(&server)
        .await;
    let home = home_for(&server);
    let out = run(&home, &["list"]).await;
    assert_eq!(out.code, 7, "{out}");
    assert!(out.stderr.contains("daytona"), "{out}");
    assert!(out.stderr.contains(&target), "names the URL\n{out}");
    assert!(
        received(&elsewhere).await.is_empty(),
        "the other origin was reached"
    );
    assert_eq!(received(&server).await.len(), 1, "a denial is not retried");
    let doctor = run(&home, &["doctor"]).await;
    assert_eq!(doctor.code, 7, "{doctor}");
    assert!(received(&elsewhere).await.is_empty());
    home.assert_secret_absent(KEY, &[&out, &doctor], &[]);
}
