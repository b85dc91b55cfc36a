//! Capability enforcement, proved with real parts: the `probe` test guest (a real component
//! built like the Daytona provider, from `tests/guests/probe`), cbx's real wasmtime host and
//! HTTP gateway, and real HTTP servers on loopback (wiremock, plus raw TCP servers where a
//! response must be malformed on purpose).
//!
//! The probe does what its options say (see `tests/guests/probe/src/lib.rs`): `doctor` sends
//! the configured request, spins, allocates, recurses or panics, and reports what the guest saw
//! as checks. Each test asserts both what the server received and what the guest saw, and that
//! no credential value shows up anywhere observable.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use cbx::grant::egress::Denial;
use cbx::grant::http::{HttpLimits, HttpOutcome};
use cbx::grant::{EndpointOverrides, Grant};
use cbx::provider::api::{Check, Settings};
use cbx::provider::limits::LimitHit;
use cbx::provider::registry::{Origin, ProviderPackage};
use cbx::provider::{CallError, Engine, Limits, ProviderInstance};
use cbx::redact::Redactor;
use cbx_testkit::guests;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The API key the host attaches to the `api` endpoint as `Authorization: Bearer …`.
const API_KEY: &str = "cbxkey-3f9a1c7e5b20d4e8";
/// A second secret, bound to the `api` endpoint in its own header.
const TENANT: &str = "tenant-8d2e4b6a91c3f075";
/// The credential-bound header of [`TENANT`].
const TENANT_HEADER: &str = "X-Probe-Tenant";

/// The probe's manifest: endpoint `api` (with both credentials) and endpoint `files` (none).
fn manifest(api: &str, files: &str) -> String {
    format!(
        r#"
[provider]
name = "probe"
description = "capability test guest"

[endpoints.api]
url = "{api}/api"
description = "the probe's API; both credentials are bound here"

[endpoints.files]
url = "{files}/files"
description = "a second granted endpoint with no credential"

[credentials.api-key]
env = "PROBE_API_KEY"
endpoint = "api"
header = "Authorization"
format = "Bearer {{value}}"

[credentials.tenant]
env = "PROBE_TENANT_TOKEN"
endpoint = "api"
header = "{TENANT_HEADER}"
format = "{{value}}"
"#
    )
}

fn env(var: &str) -> Option<String> {
    match var {
        "PROBE_API_KEY" => Some(API_KEY.to_string()),
        "PROBE_TENANT_TOKEN" => Some(TENANT.to_string()),
        _ => None,
    }
}

/// Limits generous enough for every test that does not probe them.
fn roomy() -> Limits {
    Limits {
        memory_bytes: 32 << 20,
        cpu_per_call: Duration::from_secs(5),
        wall_per_call: Duration::from_secs(20),
    }
}

fn http_limits() -> HttpLimits {
    HttpLimits {
        max_response_bytes: 64 << 10,
        default_timeout: Duration::from_secs(10),
        max_timeout: Duration::from_secs(20),
    }
}

/// The probe, instantiated in the real host under a grant for `api` and `files`.
struct Probe {
    instance: ProviderInstance,
    grant: Grant,
}

impl Probe {
    async fn new(api: &str, files: &str, limits: Limits, http: HttpLimits) -> Probe {
        tracing_capture();
        let package = ProviderPackage::from_parts(
            "tests/probe/cbx-provider.toml",
            &manifest(api, files),
            guests::bytes("probe"),
            Origin::File(guests::path("probe").display().to_string()),
        )
        .expect("the probe manifest is valid");
        let redactor = Redactor::new();
        let grant = Grant::resolve(
            &package.manifest,
            &EndpointOverrides::default(),
            &env,
            &redactor,
        )
        .expect("the grant resolves");
        assert_eq!(grant.credential_names(), ["api-key", "tenant"]);
        let engine = Engine::new(None).expect("engine");
        let mut instance = cbx::provider::instantiate(
            &engine,
            &package,
            Arc::new(grant.clone()),
            redactor,
            limits,
            http,
        )
        .expect("the probe instantiates")
        .instance;
        let info = instance.describe().await.expect("describe");
        assert_eq!(info.name, "probe");
        let names: Vec<&str> = info.options.iter().map(|o| o.name.as_str()).collect();
        for option in ["action", "method", "url", "header", "count"] {
            assert!(names.contains(&option), "{option} missing from {names:?}");
        }
        Probe { instance, grant }
    }

    async fn with_servers(api: &MockServer, files: &MockServer) -> Probe {
        Probe::new(&api.uri(), &files.uri(), roomy(), http_limits()).await
    }

    fn settings(&self, options: &[(&str, &str)]) -> Settings {
        Settings {
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            endpoints: self.grant.endpoint_urls(),
            credentials: self.grant.credential_names(),
        }
    }

    async fn configure(&mut self, options: &[(&str, &str)]) {
        let settings = self.settings(options);
        let profile = self
            .instance
            .configure(settings)
            .await
            .unwrap_or_else(|e| panic!("configure {options:?}: {e}"));
        assert_eq!(profile.work_root, "probe");
    }

    /// Configures `options` and runs `doctor`.
    async fn run(&mut self, options: &[(&str, &str)]) -> Result<Vec<Check>, CallError> {
        self.configure(options).await;
        let result = self.instance.doctor().await;
        assert_clean(&format!("{result:?}"));
        if let Err(e) = &result {
            assert_clean(&e.to_string());
        }
        assert_clean(&serde_json::to_string(self.instance.http_events()).unwrap());
        result
    }

    /// `get` reports `calls=<doctor calls in this instance> action=<configured action>`.
    async fn state(&mut self) -> String {
        self.instance.get("s1").await.expect("get after").name
    }
}

/// Fails if `text` holds a credential value.
fn assert_clean(text: &str) {
    for secret in [API_KEY, TENANT] {
        assert!(!text.contains(secret), "a secret leaked into: {text}");
    }
}

/// The details of the checks called `name`.
fn details<'a>(checks: &'a [Check], name: &str) -> Vec<&'a str> {
    checks
        .iter()
        .filter(|c| c.name == name)
        .map(|c| c.detail.as_str())
        .collect()
}

/// The one detail of the check called `name`.
fn detail<'a>(checks: &'a [Check], name: &str) -> &'a str {
    match details(checks, name).as_slice() {
        [one] => one,
        other => panic!("expected one `{name}` check, got {other:?} in {checks:?}"),
    }
}

fn denial(result: Result<Vec<Check>, CallError>) -> Denial {
    match result {
        Err(CallError::Denied(d)) => d,
        other => panic!("expected a denial, got {other:?}"),
    }
}

fn fault(result: Result<Vec<Check>, CallError>) -> (String, Option<LimitHit>) {
    match &result {
        Err(
            e @ CallError::Fault {
                provider,
                op,
                limit,
                ..
            },
        ) => {
            assert_eq!(provider, "probe");
            assert_eq!(*op, "doctor");
            (e.to_string(), *limit)
        }
        other => panic!("expected a fault, got {other:?}"),
    }
}

fn header<'a>(req: &'a wiremock::Request, name: &str) -> Option<&'a str> {
    req.headers.get(name).map(|v| v.to_str().unwrap())
}

async fn received(server: &MockServer) -> Vec<wiremock::Request> {
    server.received_requests().await.unwrap_or_default()
}

/// A loopback HTTP server written by hand, for responses wiremock will not produce. Each
/// connection's request head is read, then `respond` writes whatever it likes.
fn raw_server(respond: fn(&mut TcpStream)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 64 << 10 {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                respond(&mut stream);
            });
        }
    });
    format!("http://{addr}")
}

// 1. Deny by default, with a denial that says what would allow the request.

#[tokio::test]
async fn requests_outside_the_grant_are_denied_naming_provider_url_and_grant_line() {
    let (api, files, outside) = (
        MockServer::start().await,
        MockServer::start().await,
        MockServer::start().await,
    );
    let mut probe = Probe::with_servers(&api, &files).await;

    // Another origin entirely.
    let url = format!("{}/steal", outside.uri());
    let d = denial(
        probe
            .run(&[("action", "http"), ("method", "post"), ("url", &url)])
            .await,
    );
    assert_eq!(d.provider, "probe");
    assert_eq!(d.method, "POST");
    assert_eq!(d.url, url);
    let text = d.to_string();
    assert!(
        text.starts_with(&format!("provider probe was denied POST {url}")),
        "{text}"
    );
    assert!(text.contains("outside the granted endpoints"), "{text}");
    let origin = outside.uri();
    assert!(
        d.allow_with.as_deref().is_some_and(
            |a| a.contains(&format!("url = \"{origin}\"")) && a.contains("[endpoints.")
        ),
        "the denial names the grant line that would allow it: {text}"
    );

    // The granted origin, outside the granted paths; other schemes and user info.
    let host = api.uri();
    let port_of_outside = outside.address().port();
    for url in [
        format!("{host}/admin"),
        format!("{host}/apix/ping"),
        format!("{host}/api/../admin"),
        format!("{host}/api/%2e%2e/admin"),
        format!("{host}/files/x"),
        format!("http://127.0.0.1:{port_of_outside}/api/ping"),
        host.replacen("http://", "https://", 1) + "/api/ping",
        host.replacen("http://", "http://user:pw@", 1) + "/api/ping",
    ] {
        let d = denial(probe.run(&[("action", "http"), ("url", &url)]).await);
        assert_eq!(d.provider, "probe", "{url}");
        assert!(d.to_string().starts_with("provider probe was denied GET "));
    }

    // Nothing reached any server, and the instance keeps working.
    assert!(received(&api).await.is_empty());
    assert!(received(&files).await.is_empty());
    assert!(received(&outside).await.is_empty());
    let checks = probe.run(&[("action", "ok")]).await.unwrap();
    assert_eq!(detail(&checks, "ok"), "nothing to do");
}

// 2. Credentials: attached by the host, only to their endpoint; never seen by the guest.

#[tokio::test]
async fn host_attaches_credentials_only_to_their_endpoint_and_the_guest_sees_none() {
    let (api, files) = (MockServer::start().await, MockServer::start().await);
    Mock::given(method("GET"))
        .and(path("/api/ping"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-probe", "pong-header")
                .set_body_string("pong"),
        )
        .expect(1)
        .mount(&api)
        .await;
    Mock::given(method("PUT"))
        .and(path("/files/blob"))
        .respond_with(ResponseTemplate::new(201).set_body_string("stored"))
        .expect(1)
        .mount(&files)
        .await;
    let mut probe = Probe::with_servers(&api, &files).await;

    let url = format!("{}/api/ping", api.uri());
    let checks = probe
        .run(&[
            ("action", "http"),
            ("url", &url),
            ("header", "X-Trace: t-1"),
        ])
        .await
        .unwrap();
    // The guest sees the response, the names of its credentials and its endpoints; no value.
    assert_eq!(detail(&checks, "status"), "200");
    assert_eq!(detail(&checks, "body"), "pong");
    assert!(details(&checks, "header").contains(&"x-probe: pong-header"));
    let settings = detail(&checks, "settings");
    assert!(
        settings.ends_with("credentials=api-key,tenant"),
        "{settings}"
    );
    assert!(settings.contains(&format!("api={}/api", api.uri())));
    assert_clean(&format!("{checks:?}"));
    // The server got them, from the host.
    let reqs = received(&api).await;
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        header(&reqs[0], "authorization"),
        Some(format!("Bearer {API_KEY}").as_str())
    );
    assert_eq!(header(&reqs[0], TENANT_HEADER), Some(TENANT));
    assert_eq!(header(&reqs[0], "x-trace"), Some("t-1"));
    assert_eq!(
        probe.instance.http_events()[0].credentials,
        ["api-key", "tenant"]
    );

    // The second granted endpoint has no credential bound: none is sent there.
    let url = format!("{}/files/blob", files.uri());
    let checks = probe
        .run(&[
            ("action", "http"),
            ("method", "put"),
            ("url", &url),
            ("body", "data"),
        ])
        .await
        .unwrap();
    assert_eq!(detail(&checks, "status"), "201");
    assert_eq!(detail(&checks, "body"), "stored");
    let reqs = received(&files).await;
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].body, b"data");
    assert_eq!(header(&reqs[0], "authorization"), None);
    assert_eq!(header(&reqs[0], TENANT_HEADER), None);
    let event = probe.instance.http_events().last().unwrap().clone();
    assert!(event.credentials.is_empty(), "{event:?}");
}

#[tokio::test]
async fn an_echoing_endpoint_cannot_hand_the_guest_a_credential() {
    // A granted endpoint that reflects the request's headers (a debug endpoint, an error page
    // quoting the request) must not become a way for the guest to read a credential.
    let (api, files) = (MockServer::start().await, MockServer::start().await);
    Mock::given(path("/api/echo"))
        .respond_with(|req: &wiremock::Request| {
            let auth = header(req, "authorization").unwrap_or("none").to_string();
            let tenant = header(req, TENANT_HEADER).unwrap_or("none").to_string();
            ResponseTemplate::new(200)
                .insert_header("x-echo-tenant", tenant.as_str())
                .set_body_string(format!("you sent {auth}"))
        })
        .mount(&api)
        .await;
    let mut probe = Probe::with_servers(&api, &files).await;
    let url = format!("{}/api/echo", api.uri());
    probe.configure(&[("action", "http"), ("url", &url)]).await;
    let checks = probe.instance.doctor().await.unwrap();
    assert_eq!(detail(&checks, "status"), "200");
    let seen = format!("{checks:?}");
    for secret in [API_KEY, TENANT] {
        assert!(
            !seen.contains(secret),
            "the guest read a credential value through an echoing endpoint: {seen}"
        );
    }
}

// 3. The component may not set credential headers.

#[tokio::test]
async fn component_may_not_set_authorization_or_credential_headers() {
    let (api, files) = (MockServer::start().await, MockServer::start().await);
    let mut probe = Probe::with_servers(&api, &files).await;
    let to_api = format!("{}/api/ping", api.uri());
    let to_files = format!("{}/files/x", files.uri());
    for (url, h) in [
        (&to_api, "Authorization: Bearer forged"),
        (&to_api, "authorization: Basic Zm9vOmJhcg=="),
        (&to_api, "AUTHORIZATION: Bearer forged"),
        (&to_api, "X-Probe-Tenant: forged"),
        (&to_api, "x-probe-tenant: forged"),
        (&to_api, "Proxy-Authorization: Basic eA=="),
        (&to_api, "Cookie: session=forged"),
        // Not even where no credential is bound.
        (&to_files, "Authorization: Bearer forged"),
        (&to_files, "X-Probe-Tenant: forged"),
    ] {
        let d = denial(
            probe
                .run(&[("action", "http"), ("url", url), ("header", h)])
                .await,
        );
        assert_eq!(d.provider, "probe");
        let name = h.split_once(':').unwrap().0;
        assert!(
            d.reason
                .contains(&format!("may not set the `{name}` header")),
            "{h}: {d}"
        );
    }
    assert!(received(&api).await.is_empty());
    assert!(received(&files).await.is_empty());
}

// 4. Redirects: followed inside the grant (credentials re-bound per hop), never off it.

#[tokio::test]
async fn redirects_inside_the_grant_are_followed_and_credentials_rebound_per_hop() {
    let (api, files) = (MockServer::start().await, MockServer::start().await);
    Mock::given(path("/api/old"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/api/new"))
        .mount(&api)
        .await;
    Mock::given(path("/api/new"))
        .respond_with(ResponseTemplate::new(200).set_body_string("moved"))
        .mount(&api)
        .await;
    let landing = format!("{}/files/landing", files.uri());
    Mock::given(path("/api/to-files"))
        .respond_with(ResponseTemplate::new(307).insert_header("location", landing.as_str()))
        .mount(&api)
        .await;
    Mock::given(path("/files/landing"))
        .respond_with(ResponseTemplate::new(200).set_body_string("landed"))
        .mount(&files)
        .await;
    let mut probe = Probe::with_servers(&api, &files).await;

    let url = format!("{}/api/old", api.uri());
    let checks = probe
        .run(&[("action", "http"), ("url", &url)])
        .await
        .unwrap();
    assert_eq!(detail(&checks, "status"), "200");
    assert_eq!(detail(&checks, "body"), "moved");
    let reqs = received(&api).await;
    let paths: Vec<&str> = reqs.iter().map(|r| r.url.path()).collect();
    assert_eq!(paths, ["/api/old", "/api/new"]);
    for r in &reqs {
        assert_eq!(
            header(r, "authorization"),
            Some(format!("Bearer {API_KEY}").as_str())
        );
    }

    // Redirected from `api` to `files`: the api credentials stay behind.
    let url = format!("{}/api/to-files", api.uri());
    let checks = probe
        .run(&[("action", "http"), ("url", &url)])
        .await
        .unwrap();
    assert_eq!(detail(&checks, "body"), "landed");
    let reqs = received(&files).await;
    assert_eq!(reqs.len(), 1);
    assert_eq!(header(&reqs[0], "authorization"), None);
    assert_eq!(header(&reqs[0], TENANT_HEADER), None);
}

#[tokio::test]
async fn redirects_off_the_grant_are_not_followed() {
    let (api, files, outside) = (
        MockServer::start().await,
        MockServer::start().await,
        MockServer::start().await,
    );
    let steal = format!("{}/steal", outside.uri());
    Mock::given(path("/api/leak"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", steal.as_str()))
        .mount(&api)
        .await;
    Mock::given(path("/api/up"))
        .respond_with(ResponseTemplate::new(308).insert_header("location", "/admin"))
        .mount(&api)
        .await;
    let mut probe = Probe::with_servers(&api, &files).await;

    let url = format!("{}/api/leak", api.uri());
    let d = denial(probe.run(&[("action", "http"), ("url", &url)]).await);
    assert_eq!(d.provider, "probe");
    assert_eq!(d.url, steal);
    assert!(d.reason.contains("redirect led off the grant"), "{d}");
    assert!(received(&outside).await.is_empty());

    let url = format!("{}/api/up", api.uri());
    let d = denial(probe.run(&[("action", "http"), ("url", &url)]).await);
    assert_eq!(d.url, format!("{}/admin", api.uri()));
    let paths: Vec<String> = received(&api)
        .await
        .iter()
        .map(|r| r.url.path().to_string())
        .collect();
    assert_eq!(paths, ["/api/leak", "/api/up"]);
}

// 5. The response size cap.

#[tokio::test]
async fn responses_over_the_size_cap_are_refused() {
    let (api, files) = (MockServer::start().await, MockServer::start().await);
    Mock::given(path("/api/small"))
        .respond_with(ResponseTemplate::new(200).set_body_string("s".repeat(1000)))
        .mount(&api)
        .await;
    Mock::given(path("/api/big"))
        .respond_with(ResponseTemplate::new(200).set_body_string("b".repeat(5000)))
        .mount(&api)
        .await;
    let http = HttpLimits {
        max_response_bytes: 4096,
        ..http_limits()
    };
    let mut probe = Probe::new(&api.uri(), &files.uri(), roomy(), http).await;

    let url = format!("{}/api/small", api.uri());
    let checks = probe
        .run(&[("action", "http"), ("url", &url)])
        .await
        .unwrap();
    assert_eq!(detail(&checks, "body").len(), 1000);

    let url = format!("{}/api/big", api.uri());
    let checks = probe
        .run(&[("action", "http"), ("url", &url)])
        .await
        .unwrap();
    assert_eq!(detail(&checks, "http-error"), "too-large: 4096");
    assert!(details(&checks, "body").is_empty());
    let event = probe.instance.http_events().last().unwrap();
    assert_eq!(event.outcome, HttpOutcome::TooLarge);

    // Without a Content-Length the cap still holds while streaming.
    let chunked = raw_server(|s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
        for _ in 0..10 {
            let _ = s.write_all(format!("3e8\r\n{}\r\n", "c".repeat(1000)).as_bytes());
        }
        let _ = s.write_all(b"0\r\n\r\n");
    });
    let mut probe = Probe::new(&chunked, &files.uri(), roomy(), http).await;
    let url = format!("{chunked}/api/stream");
    let checks = probe
        .run(&[("action", "http"), ("url", &url)])
        .await
        .unwrap();
    assert_eq!(detail(&checks, "http-error"), "too-large: 4096");
}

// 6. CPU, wall-clock and memory limits: a clear error naming the provider and the limit,
//    never a hang, and the same ProviderInstance works again afterwards.

#[tokio::test]
async fn cpu_budget_breach_is_reported_and_the_instance_is_recreated() {
    let (api, files) = (MockServer::start().await, MockServer::start().await);
    let limits = Limits {
        cpu_per_call: Duration::from_millis(200),
        wall_per_call: Duration::from_secs(30),
        ..roomy()
    };
    let mut probe = Probe::new(&api.uri(), &files.uri(), limits, http_limits()).await;
    probe.configure(&[("action", "ok")]).await;
    probe.instance.doctor().await.unwrap();
    assert_eq!(probe.state().await, "calls=1 action=ok");

    let started = Instant::now();
    let (text, limit) = fault(probe.run(&[("action", "spin")]).await);
    let took = started.elapsed();
    eprintln!("CPU breach (budget 200ms) reported after {took:?}");
    assert_eq!(limit, Some(LimitHit::Cpu(Duration::from_millis(200))));
    assert_eq!(
        text,
        "provider probe failed in `doctor`: exceeded its CPU budget of 0.2s per call"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");

    // A fresh instance, configured again with the remembered settings.
    assert_eq!(probe.state().await, "calls=0 action=spin");
    probe.configure(&[("action", "ok")]).await;
    let checks = probe.instance.doctor().await.unwrap();
    assert_eq!(detail(&checks, "ok"), "nothing to do");
}

#[tokio::test]
async fn wall_clock_breach_while_computing_is_reported() {
    let (api, files) = (MockServer::start().await, MockServer::start().await);
    let limits = Limits {
        cpu_per_call: Duration::from_secs(60),
        wall_per_call: Duration::from_millis(300),
        ..roomy()
    };
    let mut probe = Probe::new(&api.uri(), &files.uri(), limits, http_limits()).await;
    let started = Instant::now();
    let (text, limit) = fault(probe.run(&[("action", "spin")]).await);
    let took = started.elapsed();
    eprintln!("wall-clock breach while spinning (deadline 300ms) reported after {took:?}");
    assert_eq!(limit, Some(LimitHit::WallClock(Duration::from_millis(300))));
    assert_eq!(
        text,
        "provider probe failed in `doctor`: did not finish within its deadline of 0.3s per call"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(probe.state().await, "calls=0 action=spin");
}

#[tokio::test]
async fn wall_clock_breach_while_waiting_on_a_slow_server_is_reported() {
    let (api, files) = (MockServer::start().await, MockServer::start().await);
    Mock::given(path("/api/slow"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_secs(30))
                .set_body_string("late"),
        )
        .mount(&api)
        .await;
    let limits = Limits {
        wall_per_call: Duration::from_millis(500),
        ..roomy()
    };
    let mut probe = Probe::new(&api.uri(), &files.uri(), limits, http_limits()).await;
    let url = format!("{}/api/slow", api.uri());
    let started = Instant::now();
    // Ask for far more time than the call has, and for several requests.
    let result = probe
        .run(&[
            ("action", "http"),
            ("url", &url),
            ("timeout-ms", "60000"),
            ("count", "5"),
        ])
        .await;
    let took = started.elapsed();
    eprintln!("wall-clock breach waiting on a slow server (deadline 500ms) after {took:?}");
    let (text, limit) = fault(result);
    assert_eq!(limit, Some(LimitHit::WallClock(Duration::from_millis(500))));
    assert!(text.contains("deadline of 0.5s"), "{text}");
    assert!(took < Duration::from_secs(4), "took {took:?}");

    // A body that trickles in forever is bounded the same way.
    let drip = raw_server(|s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 60000\r\n\r\n");
        for _ in 0..1200 {
            if s.write_all(b"d").and_then(|()| s.flush()).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let mut probe = Probe::new(&drip, &files.uri(), limits, http_limits()).await;
    let url = format!("{drip}/api/drip");
    let started = Instant::now();
    let (_, limit) = fault(probe.run(&[("action", "http"), ("url", &url)]).await);
    let took = started.elapsed();
    eprintln!("wall-clock breach on a dripping body (deadline 500ms) after {took:?}");
    assert_eq!(limit, Some(LimitHit::WallClock(Duration::from_millis(500))));
    assert!(took < Duration::from_secs(4), "took {took:?}");
    probe.configure(&[("action", "ok")]).await;
    probe.instance.doctor().await.unwrap();
}

#[tokio::test]
async fn memory_cap_breach_is_reported_and_the_instance_is_recreated() {
    let (api, files) = (MockServer::start().await, MockServer::start().await);
    let limits = Limits {
        memory_bytes: 16 << 20,
        ..roomy()
    };
    let mut probe = Probe::new(&api.uri(), &files.uri(), limits, http_limits()).await;
    let checks = probe
        .run(&[("action", "alloc"), ("count", "4")])
        .await
        .unwrap();
    assert_eq!(detail(&checks, "alloc"), "allocated 4 MiB");

    let started = Instant::now();
    let (text, limit) = fault(probe.run(&[("action", "alloc"), ("count", "64")]).await);
    eprintln!("memory breach reported after {:?}", started.elapsed());
    assert_eq!(limit, Some(LimitHit::Memory(16 << 20)));
    assert_eq!(
        text,
        "provider probe failed in `doctor`: exceeded its memory limit of 16 MiB"
    );
    assert_eq!(probe.state().await, "calls=0 action=alloc");
    // The new instance starts from a fresh memory: 12 MiB fits again.
    let checks = probe
        .run(&[("action", "alloc"), ("count", "12")])
        .await
        .unwrap();
    assert_eq!(detail(&checks, "alloc"), "allocated 12 MiB");
}

#[tokio::test]
async fn crashes_are_reported_and_the_instance_is_recreated() {
    let (api, files) = (MockServer::start().await, MockServer::start().await);
    let mut probe = Probe::with_servers(&api, &files).await;

    let (text, limit) = fault(probe.run(&[("action", "panic")]).await);
    assert_eq!(limit, None);
    assert!(
        text.starts_with("provider probe failed in `doctor`: crashed"),
        "{text}"
    );
    assert_eq!(probe.state().await, "calls=0 action=panic");

    let started = Instant::now();
    let (text, limit) = fault(probe.run(&[("action", "recurse")]).await);
    eprintln!(
        "unbounded recursion reported after {:?}: {text}",
        started.elapsed()
    );
    assert_eq!(limit, None);
    assert!(text.starts_with("provider probe failed in `doctor`: "));
    assert_eq!(probe.state().await, "calls=0 action=recurse");

    let checks = probe.run(&[("action", "ok")]).await.unwrap();
    assert_eq!(detail(&checks, "ok"), "nothing to do");
}

#[tokio::test]
async fn a_recreated_instance_is_configured_whatever_the_next_call() {
    // After a breach the next call re-creates the instance. If that call is `describe` (which
    // needs no settings), the call after it must still find the instance configured.
    let (api, files) = (MockServer::start().await, MockServer::start().await);
    let limits = Limits {
        cpu_per_call: Duration::from_millis(100),
        ..roomy()
    };
    let mut probe = Probe::new(&api.uri(), &files.uri(), limits, http_limits()).await;
    let (_, limit) = fault(probe.run(&[("action", "spin")]).await);
    assert_eq!(limit, Some(LimitHit::Cpu(Duration::from_millis(100))));
    assert_eq!(probe.instance.describe().await.unwrap().name, "probe");
    let sandbox = probe.instance.get("s1").await;
    match sandbox {
        Ok(s) => assert_eq!(s.name, "calls=0 action=spin"),
        Err(e) => {
            panic!("the instance re-created by `describe` was never configured; `get` failed: {e}")
        }
    }
}

// Secrets stay out of everything observable, the host's tracing output included.

/// Everything the host traces while this test binary runs (every test's output).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// Installs a global TRACE subscriber writing into a buffer, once, before any probe runs.
/// (A global one, not a per-thread default: callsite interest is cached process-wide, and
/// tests run on parallel threads.)
fn tracing_capture() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(captured.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("install the capture");
        captured
    })
}

#[tokio::test]
async fn secrets_are_absent_from_errors_guest_views_and_tracing() {
    let (api, files, outside) = (
        MockServer::start().await,
        MockServer::start().await,
        MockServer::start().await,
    );
    Mock::given(path("/api/ok"))
        .respond_with(ResponseTemplate::new(200).set_body_string("fine"))
        .mount(&api)
        .await;
    Mock::given(path("/api/denied"))
        .respond_with(
            ResponseTemplate::new(401).set_body_string("{\"message\":\"bad credentials\"}"),
        )
        .mount(&api)
        .await;
    let away = format!("{}/x", outside.uri());
    Mock::given(path("/api/away"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", away.as_str()))
        .mount(&api)
        .await;
    let limits = Limits {
        cpu_per_call: Duration::from_millis(100),
        ..roomy()
    };
    let mut probe = Probe::new(&api.uri(), &files.uri(), limits, http_limits()).await;

    let mut observed = String::new();
    let base = api.uri();
    let (ok, unauthorized, away, off) = (
        format!("{base}/api/ok"),
        format!("{base}/api/denied"),
        format!("{base}/api/away"),
        format!("{}/y", outside.uri()),
    );
    let runs: [&[(&str, &str)]; 7] = [
        &[("action", "http"), ("url", &ok)],
        &[("action", "http"), ("url", &unauthorized)],
        &[("action", "http"), ("url", &away)],
        &[("action", "http"), ("url", &off)],
        &[
            ("action", "http"),
            ("url", &ok),
            ("header", "Authorization: Bearer forged"),
        ],
        &[("action", "spin")],
        &[("action", "panic")],
    ];
    for options in runs {
        let result = probe.run(options).await;
        observed.push_str(&format!("{result:?}\n"));
        if let Err(e) = &result {
            observed.push_str(&format!("{e}\n"));
        }
        observed.push_str(&serde_json::to_string(probe.instance.http_events()).unwrap());
    }
    assert_eq!(received(&api).await.len(), 3);
    let log = tracing_capture().text();
    // The capture works: it holds the host's request log and the guest's own log lines.
    for line in ["provider http request", "probe saw status 401"] {
        assert!(
            log.contains(line),
            "`{line}` not in the {} bytes traced",
            log.len()
        );
    }
    assert_clean(&observed);
    for line in log.lines() {
        assert_clean(line);
    }
}
