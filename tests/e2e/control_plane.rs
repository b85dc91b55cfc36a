//! The real `cbx` binary against the stateful Daytona simulator: the whole control plane
//! (doctor → warmup → list → status → stop), pagination, list lag, ownership, claims, failed
//! and slow sandboxes, authentication, configuration and secret hygiene.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cbx_testkit::daytona_sim::{DaytonaSim, SimConfig, SshBackend};
use cbx_testkit::home::{CbxHome, Output};
use serde_json::{Value, json};

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

// ---------------------------------------------------------------------------------------------
// Helpers

/// A fast simulator.
fn fast() -> SimConfig {
    SimConfig::default().with_delays(Duration::from_millis(100))
}

/// Starts `config` and a home pointed at it with the simulator's API key.
fn setup(config: SimConfig) -> (DaytonaSim, CbxHome) {
    let sim = DaytonaSim::start_background(config).expect("start the simulator");
    let mut home = CbxHome::new(env!("CARGO_BIN_EXE_cbx"));
    home.env("DAYTONA_API_URL", &sim.api_url())
        .env("DAYTONA_API_KEY", &sim.api_key())
        .env("DAYTONA_SSH_GATEWAY", &sim.ssh_gateway());
    (sim, home)
}

/// A lease as `warmup --json` reports it.
#[derive(Debug, Clone)]
struct Leased {
    lease: String,
    slug: String,
    sandbox: String,
    json: Value,
}

/// Runs `cbx warmup --json` plus `extra` and returns the lease.
#[track_caller]
fn warmup(home: &CbxHome, extra: &[&str]) -> (Leased, Output) {
    let mut args = vec!["warmup", "--json"];
    args.extend_from_slice(extra);
    let out = home.run(&args);
    out.ok();
    let json = out.json();
    let s = |k: &str| {
        json[k]
            .as_str()
            .unwrap_or_else(|| panic!("`{k}` missing\n{out}"))
            .to_string()
    };
    (
        Leased {
            lease: s("leaseId"),
            slug: s("slug"),
            sandbox: s("sandboxId"),
            json: json.clone(),
        },
        out,
    )
}

/// The claim files under the home.
fn claim_files(home: &CbxHome) -> Vec<PathBuf> {
    let dir = home.state_dir().join("claims");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect()
}

/// The claim file of one lease.
fn claim_file(home: &CbxHome, lease: &str) -> PathBuf {
    home.state_dir()
        .join("claims")
        .join(format!("{lease}.json"))
}

/// Waits (bounded) until the simulator holds no sandbox at all, not even a `destroying` one.
#[track_caller]
fn assert_sim_empties(sim: &DaytonaSim, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let left = sim.sandboxes();
        if left.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            panic!("sandboxes left behind: {left:#?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Lease ids in `list --json` output.
fn lease_ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("list --json is an array")
        .iter()
        .map(|v| v["leaseId"].as_str().expect("leaseId").to_string())
        .collect()
}

/// A minimal blocking HTTP/1.1 call to the simulator (for sandboxes cbx did not create).
fn sim_http(sim: &DaytonaSim, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut stream = TcpStream::connect(sim.addr()).expect("connect to the simulator");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        sim.addr(),
        sim.api_key(),
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("receive");
    let text = String::from_utf8_lossy(&raw);
    let (head, payload) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, serde_json::from_str(payload).unwrap_or(Value::Null))
}

/// Creates a sandbox directly in the simulator, as another tool (or another cbx) would.
fn create_foreign(sim: &DaytonaSim, name: &str, labels: Value) -> String {
    let (status, body) = sim_http(
        sim,
        "POST",
        "/api/sandbox",
        Some(&json!({ "name": name, "labels": labels })),
    );
    assert_eq!(status, 200, "{body}");
    body["id"].as_str().expect("an id").to_string()
}

/// Waits (bounded) until the simulator reports `id` as `started`.
fn wait_started(sim: &DaytonaSim, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while sim.sandbox(id).is_none_or(|s| s.state != "started") {
        assert!(Instant::now() < deadline, "sandbox {id} never started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// The full flow

#[test]
fn full_flow_doctor_warmup_list_status_stop() {
    let (sim, home) = setup(fast());
    let key = sim.api_key();
    let mut outs = Vec::new();

    // doctor: human and JSON.
    let doctor = home.run(&["doctor"]);
    doctor.ok();
    assert!(
        doctor.stdout.contains("credentials accepted (api-key)"),
        "{doctor}"
    );
    let doctor_json = home.run(&["doctor", "--json"]);
    doctor_json.ok();
    let report = doctor_json.json();
    assert_eq!(report["provider"], "daytona");
    assert_eq!(report["ok"], true);
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] != "fail"),
        "{report:#}"
    );
    outs.extend([doctor, doctor_json]);

    // warmup (human): one result line on stdout, progress on stderr.
    let human = home.run(&["warmup", "--slug", "first-otter", "--ttl", "2h"]);
    human.ok();
    let line = human.stdout.trim_end();
    assert_eq!(human.stdout.lines().count(), 1, "{human}");
    let parts: Vec<&str> = line.split(' ').collect();
    assert_eq!(parts.len(), 5, "{human}");
    assert_eq!(parts[0], "leased");
    assert!(
        parts[1].starts_with("cbx_") && parts[1].len() == 16,
        "{human}"
    );
    assert_eq!(parts[2], "slug=first-otter");
    assert_eq!(parts[3], "provider=daytona");
    let first_sandbox = parts[4].strip_prefix("sandbox=").expect("sandbox=");
    assert!(sim.sandbox(first_sandbox).is_some(), "{human}");
    assert!(
        human.stderr.contains("creating a daytona sandbox"),
        "{human}"
    );
    assert!(human.stderr.contains("is ready"), "{human}");
    outs.push(human);

    // warmup (JSON): every documented field, consistent with the simulator.
    let (lease, out) = warmup(&home, &["--slug", "second-otter", "--ttl", "2h"]);
    let j = &lease.json;
    assert_eq!(j["provider"], "daytona");
    assert_eq!(j["slug"], "second-otter");
    assert_eq!(j["state"], "ready");
    assert_eq!(j["ready"], true);
    assert_eq!(j["claimed"], true);
    assert!(lease.lease.starts_with("cbx_") && lease.lease.len() == 16);
    let view = sim.sandbox(&lease.sandbox).expect("the sandbox exists");
    assert_eq!(view.state, "started");
    for label in OWNERSHIP_LABELS {
        assert!(view.labels.contains_key(*label), "label {label} missing");
        assert_eq!(
            j["labels"][label].as_str(),
            Some(view.labels[*label].as_str()),
            "label {label}"
        );
    }
    assert_eq!(view.labels["cbx"], "true");
    assert_eq!(view.labels["cbx_provider"], "daytona");
    assert_eq!(view.labels["cbx_lease"], lease.lease);
    assert_eq!(view.labels["cbx_slug"], "second-otter");
    assert_eq!(view.labels["cbx_ttl_secs"], "7200");
    let created: i64 = view.labels["cbx_created_at"].parse().unwrap();
    let expires: i64 = view.labels["cbx_expires_at"].parse().unwrap();
    assert_eq!(expires - created, 7200);
    let ts = |k: &str| {
        chrono::DateTime::parse_from_rfc3339(j[k].as_str().expect(k))
            .unwrap_or_else(|e| panic!("{k}: {e}"))
            .timestamp()
    };
    assert_eq!(ts("createdAt"), created);
    assert_eq!(ts("expiresAt"), expires);
    assert!((created - chrono::Utc::now().timestamp()).abs() < 300);
    assert!(claim_file(&home, &lease.lease).is_file());
    assert!(out.stderr.contains("is ready"), "{out}");
    outs.push(out);

    // list: JSON and human.
    let list = home.run(&["list", "--json"]);
    list.ok();
    let ids = lease_ids(&list.json());
    assert_eq!(ids.len(), 2, "{list}");
    assert!(ids.contains(&lease.lease));
    let list_human = home.run(&["list"]);
    list_human.ok();
    assert!(list_human.stdout.contains(&lease.lease), "{list_human}");
    assert!(list_human.stdout.contains("second-otter"), "{list_human}");
    assert!(list_human.stdout.contains(&lease.sandbox), "{list_human}");
    outs.extend([list, list_human]);

    // status: live state, by slug and by lease id.
    let status = home.run(&["status", "second-otter", "--json"]);
    status.ok();
    let s = status.json();
    assert_eq!(s["leaseId"], lease.lease.as_str());
    assert_eq!(s["sandboxId"], lease.sandbox.as_str());
    assert_eq!(s["state"], "ready");
    assert_eq!(s["ready"], true);
    outs.push(status);

    // The sandbox stops behind cbx's back: status reports it, labels notwithstanding.
    assert!(sim.set_state(&lease.sandbox, "stopped"));
    let status = home.run(&["status", &lease.lease, "--json"]);
    status.ok();
    let s = status.json();
    assert_eq!(s["state"], "stopped", "{status}");
    assert_eq!(s["providerState"], "stopped", "{status}");
    assert_eq!(s["ready"], false, "{status}");
    let status_human = home.run(&["status", "second-otter"]);
    status_human.ok();
    assert!(
        status_human.stdout.contains("stopped (daytona: stopped)"),
        "{status_human}"
    );
    assert!(
        status_human
            .stdout
            .lines()
            .any(|l| l.starts_with("ready") && l.trim_end().ends_with("no")),
        "{status_human}"
    );
    let list = home.run(&["list", "--json"]);
    list.ok();
    let listed = list.json();
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["leaseId"] == lease.lease.as_str())
        .expect("listed");
    assert_eq!(entry["state"], "stopped");
    assert_eq!(entry["ready"], false);
    outs.extend([status, status_human, list]);

    // stop: the sandbox is gone from the simulator and the claim is removed.
    let stop = home.run(&["stop", "second-otter"]);
    stop.ok();
    assert!(
        stop.stdout
            .starts_with(&format!("released {} slug=second-otter", lease.lease)),
        "{stop}"
    );
    assert!(sim.sandbox(&lease.sandbox).is_none(), "still there: {stop}");
    assert!(!claim_file(&home, &lease.lease).exists());
    outs.push(stop);
    let stop = home.run(&["stop", "first-otter"]);
    stop.ok();
    outs.push(stop);
    assert_sim_empties(&sim, Duration::from_secs(5));
    assert!(claim_files(&home).is_empty());

    let list = home.run(&["list", "--json"]);
    list.ok();
    assert_eq!(list.json(), json!([]));
    let list_human = home.run(&["list"]);
    list_human.ok();
    assert_eq!(list_human.stdout, "", "{list_human}");
    assert!(
        list_human.stderr.contains("no daytona leases"),
        "{list_human}"
    );
    outs.extend([list, list_human]);

    // Every request carried the key, and the key is nowhere in outputs or files.
    for r in sim.requests() {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {key}").as_str()),
            "{} {}",
            r.method,
            r.path
        );
    }
    let refs: Vec<&Output> = outs.iter().collect();
    home.assert_secret_absent(&key, &refs, &[]);
}

// ---------------------------------------------------------------------------------------------
// Listing

#[test]
fn list_follows_pagination_across_pages() {
    let (sim, home) = setup(SimConfig {
        max_page_size: 2,
        ..fast()
    });
    let mut outs = Vec::new();
    let mut leases = Vec::new();
    for _ in 0..5 {
        let (lease, out) = warmup(&home, &[]);
        leases.push(lease.lease);
        outs.push(out);
    }
    sim.clear_requests();
    let list = home.run(&["list", "--json"]);
    list.ok();
    let mut ids = lease_ids(&list.json());
    ids.sort();
    leases.sort();
    assert_eq!(ids, leases, "{list}");
    let pages: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path == "/api/sandbox")
        .collect();
    assert_eq!(pages.len(), 3, "5 sandboxes in pages of 2: {pages:#?}");
    assert!(!pages[0].query_pairs().iter().any(|(k, _)| k == "cursor"));
    for page in &pages[1..] {
        assert!(
            page.query_pairs()
                .iter()
                .any(|(k, v)| k == "cursor" && !v.is_empty()),
            "{page:?}"
        );
    }
    // No per-sandbox reads were needed: the list had them all.
    assert!(
        !sim.requests()
            .iter()
            .any(|r| r.path.starts_with("/api/sandbox/")),
        "{:#?}",
        sim.requests()
    );
    outs.push(list);
    let refs: Vec<&Output> = outs.iter().collect();
    home.assert_secret_absent(&sim.api_key(), &refs, &[]);
}

#[test]
fn list_accepts_legacy_bare_array() {
    let (sim, home) = setup(SimConfig {
        legacy_list: true,
        ..fast()
    });
    let (a, out_a) = warmup(&home, &[]);
    let (b, out_b) = warmup(&home, &[]);
    let list = home.run(&["list", "--json"]);
    list.ok();
    let mut ids = lease_ids(&list.json());
    ids.sort();
    let mut want = vec![a.lease.clone(), b.lease.clone()];
    want.sort();
    assert_eq!(ids, want);
    let stop = home.run(&["stop", &a.slug]);
    stop.ok();
    let list2 = home.run(&["list", "--json"]);
    list2.ok();
    assert_eq!(lease_ids(&list2.json()), vec![b.lease.clone()]);
    home.assert_secret_absent(&sim.api_key(), &[&out_a, &out_b, &list, &stop, &list2], &[]);
}

#[test]
fn list_lag_falls_back_to_claims() {
    let (sim, home) = setup(SimConfig {
        list_lag: Duration::from_secs(3600),
        ..fast()
    });
    let (lease, out) = warmup(&home, &[]);
    // The simulator's list does not show it yet…
    assert!(!sim.sandbox(&lease.sandbox).unwrap().listed);
    // …but cbx list does, through the claim.
    let list = home.run(&["list", "--json"]);
    list.ok();
    let listed = list.json();
    assert_eq!(lease_ids(&listed), vec![lease.lease.clone()], "{list}");
    assert_eq!(listed[0]["state"], "ready");
    assert_eq!(listed[0]["sandboxId"], lease.sandbox.as_str());
    let status = home.run(&["status", &lease.slug, "--json"]);
    status.ok();
    assert_eq!(status.json()["leaseId"], lease.lease.as_str());
    assert_eq!(status.json()["ready"], true);
    let stop = home.run(&["stop", &lease.lease]);
    stop.ok();
    assert_sim_empties(&sim, Duration::from_secs(5));
    assert!(claim_files(&home).is_empty());
    home.assert_secret_absent(&sim.api_key(), &[&out, &list, &status, &stop], &[]);
}

// ---------------------------------------------------------------------------------------------
// Ownership and claims

#[test]
fn foreign_sandboxes_are_invisible_and_untouchable() {
    let (sim, home) = setup(fast());
    let plain = create_foreign(&sim, "someone-elses-box", json!({ "team": "web" }));
    let other_provider = create_foreign(
        &sim,
        "other-provider-box",
        json!({
            "cbx": "true",
            "cbx_provider": "e2b",
            "cbx_lease": "cbx_0123456789ab",
            "cbx_slug": "foreign-fox",
        }),
    );
    // Owned by cbx (labels), but this machine holds no claim for it.
    let unclaimed = create_foreign(
        &sim,
        "unclaimed-box",
        json!({
            "cbx": "true",
            "cbx_provider": "daytona",
            "cbx_lease": "cbx_abcdefabcdef",
            "cbx_slug": "lonely-lynx",
        }),
    );
    for id in [&plain, &other_provider, &unclaimed] {
        wait_started(&sim, id);
    }
    let (mine, warm) = warmup(&home, &[]);

    // Without --all, only what this machine holds; --all adds the unclaimed cbx sandbox.
    let held = home.run(&["list", "--json"]);
    held.ok();
    assert!(!held.stdout.contains("cbx_abcdefabcdef"), "{held}");
    assert!(
        held.stderr.contains("note: 1 more cbx sandbox of daytona"),
        "{held}"
    );
    let list = home.run(&["list", "--all", "--json"]);
    list.ok();
    let listed = list.json();
    let ids = lease_ids(&listed);
    assert!(ids.contains(&mine.lease), "{list}");
    assert!(!ids.contains(&"cbx_0123456789ab".to_string()), "{list}");
    for id in [&plain, &other_provider] {
        assert!(!list.stdout.contains(id.as_str()), "{list}");
    }
    let lonely = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["leaseId"] == "cbx_abcdefabcdef")
        .expect("an owned sandbox is listed");
    assert_eq!(lonely["claimed"], false);
    assert_eq!(lonely["owner"], "unknown", "made before owner labels");
    let list_human = home.run(&["list", "--all"]);
    list_human.ok();
    assert!(!list_human.stdout.contains(&plain), "{list_human}");
    assert!(!list_human.stdout.contains("foreign-fox"), "{list_human}");

    let mut outs = vec![warm, list, list_human];
    for ident in [
        plain.as_str(),
        "someone-elses-box",
        other_provider.as_str(),
        "other-provider-box",
        "foreign-fox",
        "cbx_0123456789ab",
        "lonely-lynx",
        "cbx_abcdefabcdef",
    ] {
        let out = home.run(&["stop", ident]);
        assert_eq!(out.code, 4, "stop {ident}\n{out}");
        let status = home.run(&["status", ident]);
        if ident.contains("lonely") || ident == "cbx_abcdefabcdef" {
            status.ok();
            assert!(status.stdout.contains("not held here"), "{status}");
        } else {
            assert_eq!(status.code, 4, "status {ident}\n{status}");
        }
        outs.extend([out, status]);
    }
    assert!(
        !sim.requests().iter().any(|r| r.method == "DELETE"),
        "cbx deleted something: {:#?}",
        sim.requests()
    );
    for id in [&plain, &other_provider, &unclaimed, &mine.sandbox] {
        let v = sim.sandbox(id).expect("still there");
        assert_eq!(v.desired_state, "started", "{v:?}");
    }
    let refs: Vec<&Output> = outs.iter().collect();
    home.assert_secret_absent(&sim.api_key(), &refs, &[]);
}

#[test]
fn stop_requires_an_exact_claim() {
    let (sim, home) = setup(fast());
    let (lease, warm) = warmup(&home, &[]);
    let claim = claim_file(&home, &lease.lease);
    assert!(claim.is_file());
    std::fs::remove_file(&claim).unwrap();

    let stop = home.run(&["stop", &lease.slug]);
    assert_eq!(stop.code, 4, "{stop}");
    assert!(stop.stderr.contains("no claim"), "{stop}");
    let stop_id = home.run(&["stop", &lease.lease]);
    assert_eq!(stop_id.code, 4, "{stop_id}");

    // A claim binding this lease to another lease's sandbox is not exact either.
    let (other, warm_other) = warmup(&home, &[]);
    let forge = |sandbox: &str| {
        json!({
            "version": 1,
            "leaseId": lease.lease,
            "slug": lease.slug,
            "provider": "daytona",
            "sandboxId": sandbox,
            "sandboxName": "cbx-elsewhere",
            "repoRoot": null,
            "workRoot": "cbx",
            "createdAt": "2099-01-01T00:00:00Z",
            "expiresAt": "2099-01-01T01:30:00Z",
            "lastUsedAt": "2099-01-01T00:00:00Z",
        })
    };
    std::fs::write(
        &claim,
        serde_json::to_vec_pretty(&forge(&other.sandbox)).unwrap(),
    )
    .unwrap();
    let stop_crossed = home.run(&["stop", &lease.lease]);
    assert_eq!(stop_crossed.code, 4, "{stop_crossed}");
    assert!(
        stop_crossed.stderr.contains(&other.sandbox),
        "{stop_crossed}"
    );

    // A claim whose sandbox does not exist is dropped as stale; the real sandbox is untouched.
    std::fs::write(
        &claim,
        serde_json::to_vec_pretty(&forge("00000000-0000-4000-8000-000000000000")).unwrap(),
    )
    .unwrap();
    let stop_stale = home.run(&["stop", &lease.lease]);
    stop_stale.ok();
    assert!(stop_stale.stdout.contains("already gone"), "{stop_stale}");
    assert!(!claim.exists());

    assert!(
        !sim.requests().iter().any(|r| r.method == "DELETE"),
        "{:#?}",
        sim.requests()
    );
    for id in [&lease.sandbox, &other.sandbox] {
        let v = sim.sandbox(id).expect("still there");
        assert_eq!(v.state, "started");
        assert_eq!(v.desired_state, "started");
    }
    home.assert_secret_absent(
        &sim.api_key(),
        &[
            &warm,
            &warm_other,
            &stop,
            &stop_id,
            &stop_crossed,
            &stop_stale,
        ],
        &[],
    );
}

// ---------------------------------------------------------------------------------------------
// Failed and slow sandboxes

/// An SSH side whose runner cannot provision sandboxes: every new sandbox goes to `error`.
struct BrokenRunner;

impl SshBackend for BrokenRunner {
    fn sandbox_created(&self, _id: &str) -> anyhow::Result<()> {
        anyhow::bail!("runner disk is full")
    }
    fn access_granted(&self, _sandbox_id: &str, _token: &str) -> anyhow::Result<(String, u16)> {
        anyhow::bail!("no ssh")
    }
    fn access_revoked(&self, _token: &str) {}
    fn sandbox_deleted(&self, _id: &str) {}
}

#[test]
fn failed_sandbox_exits_5_and_leaves_nothing() {
    let (sim, home) = setup(SimConfig {
        ssh: Arc::new(BrokenRunner),
        ..fast()
    });
    let out = home.run(&["warmup"]);
    assert_eq!(out.code, 5, "{out}");
    assert!(out.stdout.is_empty(), "{out}");
    assert!(
        out.stderr.contains(
            "failed to start (error): Failed to provision sandbox: runner disk is full; cbx \
             deleted it again, nothing is left"
        ),
        "{out}"
    );
    // It was created, then deleted again.
    let reqs = sim.requests();
    assert_eq!(
        reqs.iter()
            .filter(|r| r.method == "POST" && r.path == "/api/sandbox")
            .count(),
        1
    );
    assert_eq!(reqs.iter().filter(|r| r.method == "DELETE").count(), 1);
    assert_sim_empties(&sim, Duration::from_secs(5));
    assert!(claim_files(&home).is_empty(), "{:?}", claim_files(&home));
    let list = home.run(&["list", "--json"]);
    list.ok();
    assert_eq!(list.json(), json!([]));
    home.assert_secret_absent(&sim.api_key(), &[&out, &list], &[]);
}

#[test]
fn ready_timeout_exits_5_and_leaves_nothing() {
    // Creation takes much longer than cbx waits; Daytona refuses to delete a sandbox while
    // it is still being created (409), so cbx must outlast the transition to clean up.
    let (sim, home) = setup(SimConfig {
        create_delay: Duration::from_secs(12),
        ..fast()
    });
    let started = Instant::now();
    let out = home.run(&["warmup", "--ready-timeout", "1s"]);
    let took = started.elapsed();
    assert_eq!(out.code, 5, "{out}");
    assert!(out.stderr.contains("was not ready after"), "{out}");
    assert!(out.stdout.is_empty(), "{out}");
    // Whatever cbx did, when it exits the sandbox must be gone or its deletion accepted.
    let left: Vec<_> = sim
        .sandboxes()
        .into_iter()
        .filter(|s| s.desired_state != "destroyed")
        .collect();
    assert!(
        left.is_empty(),
        "cbx exited after {took:?} leaving {left:#?}\n{out}\nrequests: {:#?}",
        sim.requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect::<Vec<_>>()
    );
    assert!(claim_files(&home).is_empty(), "{:?}", claim_files(&home));
    assert_sim_empties(&sim, Duration::from_secs(5));
    home.assert_secret_absent(&sim.api_key(), &[&out], &[]);
}

// ---------------------------------------------------------------------------------------------
// Authentication

#[test]
fn missing_credentials_exit_3_naming_the_variable() {
    let (sim, mut home) = setup(fast());
    home.unset("DAYTONA_API_KEY");
    for cmd in [&["warmup"][..], &["list"], &["doctor"]] {
        let out = home.run(cmd);
        assert_eq!(out.code, 3, "{cmd:?}\n{out}");
        let text = format!("{}{}", out.stdout, out.stderr);
        assert!(text.contains("DAYTONA_API_KEY"), "{cmd:?}\n{out}");
    }
    assert!(sim.requests().is_empty(), "{:#?}", sim.requests());
}

#[test]
fn jwt_without_organization_exits_3() {
    let jwt = "eyJhbGciOiJIUzI1NiJ9.test-jwt-without-org.sig";
    let (sim, mut home) = setup(SimConfig {
        jwt: Some(jwt.to_string()),
        ..fast()
    });
    home.unset("DAYTONA_API_KEY").env("DAYTONA_JWT_TOKEN", jwt);
    let list = home.run(&["list"]);
    assert_eq!(list.code, 3, "{list}");
    assert!(list.stderr.contains("DAYTONA_ORGANIZATION_ID"), "{list}");
    let warm = home.run(&["warmup"]);
    assert_eq!(warm.code, 3, "{warm}");
    assert!(warm.stderr.contains("DAYTONA_ORGANIZATION_ID"), "{warm}");
    assert!(sim.requests().is_empty(), "{:#?}", sim.requests());
    home.assert_secret_absent(jwt, &[&list, &warm], &[]);
}

#[test]
fn wrong_key_exits_3() {
    let (sim, mut home) = setup(fast());
    let wrong = "dtn_0000000000000000000000000000000000000000000000000000000000000bad";
    home.env("DAYTONA_API_KEY", wrong);
    let list = home.run(&["list"]);
    assert_eq!(list.code, 3, "{list}");
    assert!(list.stderr.contains("Invalid credentials"), "{list}");
    assert!(list.stderr.contains("DAYTONA_API_KEY"), "{list}");
    let warm = home.run(&["warmup"]);
    assert_eq!(warm.code, 3, "{warm}");
    let doctor = home.run(&["doctor"]);
    assert_eq!(doctor.code, 3, "{doctor}");
    assert!(sim.sandboxes().is_empty());
    assert!(
        sim.requests()
            .iter()
            .all(|r| r.header("authorization") == Some(format!("Bearer {wrong}").as_str()))
    );
    home.assert_secret_absent(wrong, &[&list, &warm, &doctor], &[]);
}

#[test]
fn jwt_with_organization_works_end_to_end() {
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYngtZTJlIn0.c2lnbmF0dXJl";
    let (sim, mut home) = setup(SimConfig {
        jwt: Some(jwt.to_string()),
        ..fast()
    });
    let org = sim.organization_id();
    let key = sim.api_key();
    home.unset("DAYTONA_API_KEY")
        .env("DAYTONA_JWT_TOKEN", jwt)
        .env("DAYTONA_ORGANIZATION_ID", &org);
    let doctor = home.run(&["doctor"]);
    doctor.ok();
    assert!(
        doctor.stdout.contains("credentials accepted (jwt)"),
        "{doctor}"
    );
    let (lease, warm) = warmup(&home, &[]);
    let list = home.run(&["list", "--json"]);
    list.ok();
    assert_eq!(lease_ids(&list.json()), vec![lease.lease.clone()]);
    let status = home.run(&["status", &lease.slug]);
    status.ok();
    let stop = home.run(&["stop", &lease.slug]);
    stop.ok();
    assert_sim_empties(&sim, Duration::from_secs(5));
    let reqs = sim.requests();
    assert!(!reqs.is_empty());
    for r in &reqs {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {jwt}").as_str())
        );
        assert_eq!(r.header("x-daytona-organization-id"), Some(org.as_str()));
    }
    let outs = [&doctor, &warm, &list, &status, &stop];
    home.assert_secret_absent(jwt, &outs, &[]);
    home.assert_secret_absent(&key, &outs, &[]);
}

// ---------------------------------------------------------------------------------------------
// Configuration

#[test]
fn unknown_option_from_flag_env_and_repo_config_exits_2() {
    let (sim, mut home) = setup(fast());
    let key = sim.api_key();

    let flag = home.run(&["warmup", "-o", "flavour=large"]);
    assert_eq!(flag.code, 2, "{flag}");
    assert!(flag.stderr.contains("unknown option `flavour`"), "{flag}");
    assert!(
        flag.stderr.contains("snapshot"),
        "lists known options\n{flag}"
    );

    home.env("CBX_DAYTONA_FOO", "1");
    let env = home.run(&["list"]);
    assert_eq!(env.code, 2, "{env}");
    assert!(env.stderr.contains("CBX_DAYTONA_FOO"), "{env}");
    home.unset("CBX_DAYTONA_FOO");

    std::fs::create_dir_all(home.cwd.join(".git")).unwrap();
    std::fs::write(
        home.cwd.join("cbx.toml"),
        "# repository settings\n[providers.daytona.options]\nsnapshot = \"daytona-small\"\nsnapshott = \"daytona-large\"\n",
    )
    .unwrap();
    let repo = home.run(&["warmup"]);
    assert_eq!(repo.code, 2, "{repo}");
    let shown = format!("{}:4:", home.cwd.join("cbx.toml").display());
    assert!(repo.stderr.contains(&shown), "wants {shown}\n{repo}");
    assert!(repo.stderr.contains("unknown option `snapshott`"), "{repo}");

    assert!(sim.requests().is_empty(), "{:#?}", sim.requests());
    home.assert_secret_absent(&key, &[&flag, &env, &repo], &[]);
}

#[test]
fn repo_config_may_not_set_endpoints() {
    let (sim, home) = setup(fast());
    std::fs::create_dir_all(home.cwd.join(".git")).unwrap();
    std::fs::write(
        home.cwd.join("cbx.toml"),
        "[providers.daytona.endpoints]\napi = \"http://127.0.0.1:9/api\"\n",
    )
    .unwrap();
    for cmd in [&["warmup"][..], &["list"], &["doctor"]] {
        let out = home.run(cmd);
        assert_eq!(out.code, 2, "{cmd:?}\n{out}");
        assert!(out.stderr.contains("cbx.toml:1:"), "{out}");
        assert!(
            out.stderr
                .contains("may not set providers.daytona.endpoints"),
            "{out}"
        );
        home.assert_secret_absent(&sim.api_key(), &[&out], &[]);
    }
    assert!(sim.requests().is_empty());
}

#[test]
fn snapshot_from_user_config_reaches_the_create_body() {
    let (sim, home) = setup(fast());
    home.write_config("[providers.daytona.options]\nsnapshot = \"daytona-medium\"\n");
    let (lease, warm) = warmup(&home, &["--idle-timeout", "20m"]);
    let creates: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/api/sandbox")
        .collect();
    assert_eq!(creates.len(), 1);
    let body = creates[0].body_json().expect("a JSON body");
    assert_eq!(body["snapshot"], "daytona-medium", "{body:#}");
    assert_eq!(body["autoStopInterval"], 20, "{body:#}");
    for field in ["cpu", "memory", "disk", "gpu"] {
        assert!(body.get(field).is_none(), "{field} sent: {body:#}");
    }
    let v = sim.sandbox(&lease.sandbox).unwrap();
    assert_eq!(v.snapshot.as_deref(), Some("daytona-medium"));
    // A flag overrides the user config.
    let (_, warm2) = warmup(&home, &["-o", "snapshot=daytona-large"]);
    let body = sim
        .requests()
        .into_iter()
        .rfind(|r| r.method == "POST" && r.path == "/api/sandbox")
        .and_then(|r| r.body_json())
        .unwrap();
    assert_eq!(body["snapshot"], "daytona-large");
    home.assert_secret_absent(&sim.api_key(), &[&warm, &warm2], &[]);
}

#[test]
fn the_daytona_provider_passes_the_conformance_test() {
    let (sim, home) = setup(fast());
    let out = home.run(&["--provider", "daytona", "providers", "test", "--json"]);
    out.ok();
    let report = out.json();
    assert_eq!(report["passed"], true, "{report}");
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    for step in [
        "describe",
        "create",
        "ready",
        "list",
        "set-labels",
        "ssh-access",
        "stop",
        "start",
        "delete",
        "gone",
    ] {
        assert!(steps.contains(&step), "missing step {step}: {report}");
    }
    assert!(
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["result"] != "fail")
    );
    assert_sim_empties(&sim, Duration::from_secs(5));
    home.assert_secret_absent(&sim.api_key(), &[&out], &[]);
}

// ---------------------------------------------------------------------------------------------
// Output formats pinned byte for byte

/// Replaces what changes from run to run — ids, times, ports, paths, durations, sizes — with
/// fixed words, so that the rest of an output can be compared byte for byte.
struct Scrub {
    words: Vec<(String, String)>,
}

impl Scrub {
    fn new() -> Scrub {
        Scrub { words: Vec::new() }
    }

    /// Replaces `from` with `to` (longest first, whatever the order they were added in).
    fn word(&mut self, from: &str, to: &str) -> &mut Scrub {
        if !from.is_empty() {
            self.words.push((from.to_string(), to.to_string()));
            self.words.sort_by_key(|(f, _)| std::cmp::Reverse(f.len()));
        }
        self
    }

    fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (from, to) in &self.words {
            out = out.replace(from.as_str(), to);
        }
        let out = mask_times(&out);
        let out = mask_digits_after(&out, "\"millis\": ");
        let out = mask_digits_after(&out, "\"bytes\":");
        let out = mask_digits_after(&out, "\"size\": ");
        let out = mask_digits_after(&out, "\"ageSecs\": ");
        let out = ["created_at", "touched_at", "expires_at"]
            .iter()
            .fold(out, |out, label| {
                mask_digits_after(&out, &format!("\"cbx_{label}\": \""))
            });
        mask_load_time(&out)
    }
}

/// Every RFC 3339 time (`2026-01-01T00:00:00Z`, with fractions or an offset) as `<time>`.
fn mask_times(text: &str) -> String {
    let b = text.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd";
    let fits = |at: usize| {
        at + shape.len() <= b.len()
            && shape.iter().zip(&b[at..]).all(|(s, c)| match s {
                b'd' => c.is_ascii_digit(),
                s => s == c,
            })
    };
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if fits(i) {
            let mut end = i + shape.len();
            if b.get(end) == Some(&b'.') {
                end += 1;
                while b.get(end).is_some_and(u8::is_ascii_digit) {
                    end += 1;
                }
            }
            if b.get(end) == Some(&b'Z') {
                end += 1;
            } else if matches!(b.get(end), Some(b'+' | b'-')) && end + 6 <= b.len() {
                end += 6;
            }
            out.push_str("<time>");
            i = end;
        } else {
            let ch = text[i..].chars().next().expect("a char");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// The digits right after each `key` replaced by `0`.
fn mask_digits_after(text: &str, key: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(key) {
        out.push_str(&rest[..at + key.len()]);
        rest = &rest[at + key.len()..];
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 {
            out.push('0');
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// `compiled in 1.2s` / `loaded from cache in 35ms` as `<loaded>`.
fn mask_load_time(text: &str) -> String {
    let mut out = text.to_string();
    for lead in ["; compiled in ", "; loaded from cache in "] {
        while let Some(at) = out.find(lead) {
            let end = out[at..].find(')').map_or(out.len(), |e| at + e);
            out.replace_range(at..end, "; <loaded>");
        }
    }
    out
}

/// The first line a tool prints about its version, as `doctor` shows it.
fn tool_line(tool: &str, arg: &str) -> String {
    let out = std::process::Command::new(tool)
        .arg(arg)
        .output()
        .expect("run the tool");
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn json_outputs_claims_and_audit_lines_are_pinned() {
    let (sim, mut home) = setup(fast());
    home.env("CBX_DAYTONA_TARGET", "eu");
    home.write_config("[providers.daytona.options]\nuser = \"daytona\"\n");
    home.git(&["init", "-q"]);
    let mut scrub = Scrub::new();
    scrub
        .word(&sim.api_url(), "<api>")
        .word(&sim.base_url(), "<base>")
        .word(&home.path().display().to_string(), "<home>")
        .word(&tool_line("git", "--version"), "<git version>")
        .word(&tool_line("ssh", "-V"), "<ssh version>")
        .word(&tool_line("rsync", "--version"), "<rsync version>");
    let mut got = String::new();
    let mut add = |title: &str, text: &str| {
        got.push_str(&format!("=== {title}\n{text}"));
        if !text.ends_with('\n') {
            got.push('\n');
        }
    };

    let doctor = home.run(&["doctor", "--json"]);
    doctor.ok();
    let (leased, warmup) = warmup(&home, &["--slug", "pinned-otter"]);
    let owner = std::fs::read_to_string(home.state_dir().join("owner-id")).expect("owner id");
    scrub
        .word(&leased.lease, "<lease>")
        .word(&leased.lease[4..], "<lease-hex>")
        .word(&leased.sandbox, "<sandbox>")
        .word(owner.trim(), "<owner>");
    let list = home.run(&["list", "--json"]);
    list.ok();
    let status = home.run(&["status", &leased.lease, "--json"]);
    status.ok();
    let claim = std::fs::read_to_string(claim_file(&home, &leased.lease)).expect("the claim");
    let providers = home.run(&["providers", "list", "--json"]);
    providers.ok();
    let digest = providers.json()[0]["digest"]
        .as_str()
        .expect("a digest")
        .to_string();
    scrub
        .word(&digest, "<digest>")
        .word(&digest[..12], "<digest12>");
    let ssh_digest = providers.json()[1]["digest"]
        .as_str()
        .expect("a digest")
        .to_string();
    scrub.word(&ssh_digest, "<ssh digest>");
    let inspect = home.run(&["providers", "inspect", "daytona", "--json"]);
    inspect.ok();
    home.run(&["stop", &leased.lease]).ok();
    let audit = home.run(&["providers", "audit", "--json", "--last", "1000"]);
    audit.ok();
    let mut audit_lines: Vec<String> = audit.stdout.lines().map(|l| scrub.apply(l)).collect();
    audit_lines.sort();
    audit_lines.dedup();
    let test = home.run(&["--provider", "daytona", "providers", "test", "--json"]);
    test.ok();
    let created = test.json()["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["step"] == "create")
        .and_then(|s| s["detail"].as_str())
        .and_then(|d| d.strip_prefix("sandbox "))
        .and_then(|d| d.split(' ').next())
        .expect("the created sandbox")
        .to_string();
    scrub.word(&created, "<conformance sandbox>");

    add("doctor --json", &scrub.apply(&doctor.stdout));
    add("warmup --json", &scrub.apply(&warmup.stdout));
    add("list --json", &scrub.apply(&list.stdout));
    add("status --json", &scrub.apply(&status.stdout));
    add("claim file", &scrub.apply(&claim));
    add("providers list --json", &scrub.apply(&providers.stdout));
    add(
        "providers inspect daytona --json",
        &scrub.apply(&inspect.stdout),
    );
    add(
        "providers audit --json (sorted, unique)",
        &audit_lines.join("\n"),
    );
    add("providers test daytona --json", &scrub.apply(&test.stdout));
    assert_eq!(got, PINNED, "an output format changed");
}

/// What the outputs were when this test was written; a change here is a change of a
/// documented format (docs/cli.md) or of a state file.
const PINNED: &str = r##"=== doctor --json
{
  "provider": "daytona",
  "ok": true,
  "checks": [
    {
      "name": "config",
      "status": "ok",
      "detail": "user config <home>/config/cbx/config.toml; repository config none"
    },
    {
      "name": "git",
      "status": "ok",
      "detail": "<git version>"
    },
    {
      "name": "ssh",
      "status": "ok",
      "detail": "<ssh version>"
    },
    {
      "name": "rsync",
      "status": "ok",
      "detail": "<rsync version>"
    },
    {
      "name": "provider",
      "status": "ok",
      "detail": "daytona 0.1.0 (built into cbx, sha256 <digest12>…; <loaded>)"
    },
    {
      "name": "grant",
      "status": "ok",
      "detail": "may reach <api> `api` (from environment variable DAYTONA_API_URL)"
    },
    {
      "name": "credentials",
      "status": "ok",
      "detail": "api-key from DAYTONA_API_KEY → Authorization header to `api`"
    },
    {
      "name": "options",
      "status": "ok",
      "detail": "api=<api> snapshot=account default target=eu user=daytona auto-delete=the lease's TTL after it stops auth=api-key"
    },
    {
      "name": "auth",
      "status": "ok",
      "detail": "credentials accepted (api-key)"
    },
    {
      "name": "api",
      "status": "ok",
      "detail": "GET /sandbox answered 200"
    },
    {
      "name": "scopes",
      "status": "ok",
      "detail": "the API key has write:sandboxes and delete:sandboxes"
    },
    {
      "name": "cleanup",
      "status": "ok",
      "detail": "cbx deletes a lease when its TTL is over; Daytona deletes a stopped cbx sandbox the lease's TTL after it stops (auto-delete-minutes), unless it archives it first (10080 min after it stops, auto-archive-minutes)"
    }
  ]
}
=== warmup --json
{
  "leaseId": "<lease>",
  "slug": "pinned-otter",
  "provider": "daytona",
  "sandboxId": "<sandbox>",
  "sandboxName": "cbx-pinned-otter-<lease-hex>",
  "state": "ready",
  "providerState": "started",
  "ready": true,
  "labels": {
    "cbx": "true",
    "cbx_created_at": "0",
    "cbx_expires_at": "0",
    "cbx_idle_secs": "1800",
    "cbx_lease": "<lease>",
    "cbx_owner": "<owner>",
    "cbx_provider": "daytona",
    "cbx_slug": "pinned-otter",
    "cbx_touched_at": "0",
    "cbx_ttl_secs": "5400",
    "cbx_work_root": "cbx"
  },
  "createdAt": "<time>",
  "expiresAt": "<time>",
  "lastTouchedAt": "<time>",
  "ttlSecs": 5400,
  "idleTimeoutSecs": 1800,
  "expired": false,
  "workRoot": "cbx",
  "claimed": true,
  "repoRoot": "<home>/work"
}
=== list --json
[
  {
    "leaseId": "<lease>",
    "slug": "pinned-otter",
    "provider": "daytona",
    "sandboxId": "<sandbox>",
    "sandboxName": "cbx-pinned-otter-<lease-hex>",
    "state": "ready",
    "providerState": "started",
    "ready": true,
    "labels": {
      "cbx": "true",
      "cbx_created_at": "0",
      "cbx_expires_at": "0",
      "cbx_idle_secs": "1800",
      "cbx_lease": "<lease>",
      "cbx_owner": "<owner>",
      "cbx_provider": "daytona",
      "cbx_slug": "pinned-otter",
      "cbx_touched_at": "0",
      "cbx_ttl_secs": "5400",
      "cbx_work_root": "cbx"
    },
    "createdAt": "<time>",
    "expiresAt": "<time>",
    "lastTouchedAt": "<time>",
    "ttlSecs": 5400,
    "idleTimeoutSecs": 1800,
    "expired": false,
    "workRoot": "cbx",
    "claimed": true,
    "repoRoot": "<home>/work",
    "owner": "this-machine",
    "ageSecs": 0
  }
]
=== status --json
{
  "leaseId": "<lease>",
  "slug": "pinned-otter",
  "provider": "daytona",
  "sandboxId": "<sandbox>",
  "sandboxName": "cbx-pinned-otter-<lease-hex>",
  "state": "ready",
  "providerState": "started",
  "ready": true,
  "labels": {
    "cbx": "true",
    "cbx_created_at": "0",
    "cbx_expires_at": "0",
    "cbx_idle_secs": "1800",
    "cbx_lease": "<lease>",
    "cbx_owner": "<owner>",
    "cbx_provider": "daytona",
    "cbx_slug": "pinned-otter",
    "cbx_touched_at": "0",
    "cbx_ttl_secs": "5400",
    "cbx_work_root": "cbx"
  },
  "createdAt": "<time>",
  "expiresAt": "<time>",
  "lastTouchedAt": "<time>",
  "ttlSecs": 5400,
  "idleTimeoutSecs": 1800,
  "expired": false,
  "workRoot": "cbx",
  "claimed": true,
  "repoRoot": "<home>/work"
}
=== claim file
{
  "version": 1,
  "leaseId": "<lease>",
  "slug": "pinned-otter",
  "provider": "daytona",
  "sandboxId": "<sandbox>",
  "sandboxName": "cbx-pinned-otter-<lease-hex>",
  "repoRoot": "<home>/work",
  "workRoot": "cbx",
  "createdAt": "<time>",
  "expiresAt": "<time>",
  "lastUsedAt": "<time>",
  "generation": 1
}
=== providers list --json
[
  {
    "name": "daytona",
    "version": "0.1.0",
    "description": "Daytona cloud sandboxes",
    "origin": {
      "kind": "builtin"
    },
    "digest": "<digest>",
    "status": "built in, default"
  },
  {
    "name": "ssh",
    "version": "0.1.0",
    "description": "An existing SSH host you already have (host, port, user and key from your config)",
    "origin": {
      "kind": "builtin"
    },
    "digest": "<ssh digest>",
    "status": "built in"
  }
]
=== providers inspect daytona --json
{
  "name": "daytona",
  "version": "0.1.0",
  "description": "Daytona cloud sandboxes",
  "contract": "cbx:provider@0.1.0",
  "origin": {
    "kind": "builtin"
  },
  "digest": "<digest>",
  "size": 0,
  "imports": [
    {
      "name": "cbx:provider/http@0.1.0",
      "functions": [
        "send"
      ]
    },
    {
      "name": "cbx:provider/log@0.1.0",
      "functions": [
        "log"
      ]
    },
    {
      "name": "cbx:provider/types@0.1.0",
      "functions": []
    }
  ],
  "exports": [
    {
      "name": "cbx:provider/checkpoint@0.1.0",
      "functions": [
        "create-checkpoint",
        "get-checkpoint",
        "list-checkpoints",
        "delete-checkpoint",
        "create-from-checkpoint"
      ]
    },
    {
      "name": "cbx:provider/fork@0.1.0",
      "functions": [
        "fork"
      ]
    },
    {
      "name": "cbx:provider/provider@0.1.0",
      "functions": [
        "describe",
        "configure",
        "doctor",
        "create",
        "get",
        "list",
        "start",
        "stop",
        "delete",
        "set-labels",
        "touch",
        "mint-ssh-access"
      ]
    }
  ],
  "features": [
    "start",
    "stop",
    "touch",
    "labels",
    "checkpoint",
    "fork"
  ],
  "capabilities": [
    "checkpoint",
    "fork"
  ],
  "options": [
    {
      "name": "snapshot",
      "kind": "text",
      "description": "Snapshot to create sandboxes from; it sets the size (daytona-small, daytona-medium, daytona-large). Empty: the account's default snapshot",
      "default": "",
      "value": "",
      "origin": {
        "kind": "default"
      }
    },
    {
      "name": "target",
      "kind": "text",
      "description": "Region to create sandboxes in, e.g. us or eu. Empty: the organization's default region",
      "default": "",
      "value": "eu",
      "origin": {
        "kind": "env",
        "where": "CBX_DAYTONA_TARGET"
      }
    },
    {
      "name": "user",
      "kind": "text",
      "description": "OS user that runs in the sandbox",
      "default": "daytona",
      "value": "daytona",
      "origin": {
        "kind": "file",
        "where": "<home>/config/cbx/config.toml:2"
      }
    },
    {
      "name": "work-root",
      "kind": "text",
      "description": "Where leases keep their work directories; a relative path is relative to the SSH user's home",
      "default": "cbx",
      "value": "cbx",
      "origin": {
        "kind": "default"
      }
    },
    {
      "name": "ssh-access-minutes",
      "kind": "integer",
      "description": "Lifetime of minted SSH access in minutes, 1 to 1440",
      "default": "60",
      "value": "60",
      "origin": {
        "kind": "default"
      }
    },
    {
      "name": "auto-archive-minutes",
      "kind": "integer",
      "description": "Minutes a stopped sandbox waits before Daytona archives it; 0 means Daytona's maximum",
      "default": "10080",
      "value": "10080",
      "origin": {
        "kind": "default"
      }
    },
    {
      "name": "auto-delete-minutes",
      "kind": "text",
      "description": "Minutes after a sandbox stops before Daytona deletes it on its own: `ttl` (the lease's TTL), `never`, or a number",
      "default": "ttl",
      "value": "ttl",
      "origin": {
        "kind": "default"
      }
    }
  ],
  "manifest": {
    "origin": "builtin:daytona/cbx-provider.toml",
    "endpoints": [
      {
        "name": "api",
        "url": "https://app.daytona.io/api",
        "env": "DAYTONA_API_URL",
        "description": "Daytona's REST API"
      }
    ],
    "credentials": [
      {
        "name": "api-key",
        "env": "DAYTONA_API_KEY",
        "endpoint": "api",
        "header": "Authorization",
        "format": "Bearer {value}",
        "secret": true,
        "requires": [],
        "description": "A Daytona API key (dashboard → Keys)"
      },
      {
        "name": "jwt",
        "env": "DAYTONA_JWT_TOKEN",
        "endpoint": "api",
        "header": "Authorization",
        "format": "Bearer {value}",
        "secret": true,
        "requires": [
          "organization"
        ],
        "description": "A Daytona login token (JWT); needs the organization id"
      },
      {
        "name": "organization",
        "env": "DAYTONA_ORGANIZATION_ID",
        "endpoint": "api",
        "header": "X-Daytona-Organization-ID",
        "format": "{value}",
        "secret": false,
        "requires": [],
        "description": "The Daytona organization to act in"
      }
    ],
    "authOneOf": [
      "api-key",
      "jwt"
    ],
    "ssh": {
      "destinations": [
        "ssh.app.daytona.io:22"
      ],
      "env": "DAYTONA_SSH_GATEWAY",
      "hostOption": null,
      "portOption": null,
      "identityOption": null,
      "description": "Daytona's SSH gateway"
    }
  },
  "approval": "built into cbx (trusted with cbx itself)",
  "approved": null,
  "wasi": false,
  "grant": {
    "endpoints": [
      {
        "name": "api",
        "url": "<api>",
        "source": {
          "kind": "env",
          "where": "DAYTONA_API_URL"
        }
      }
    ],
    "credentials": [
      {
        "name": "api-key",
        "env": "DAYTONA_API_KEY",
        "set": true,
        "attached": true,
        "header": "Authorization",
        "endpoint": "api",
        "endpointUrl": "<api>"
      },
      {
        "name": "jwt",
        "env": "DAYTONA_JWT_TOKEN",
        "set": false,
        "attached": false,
        "header": "Authorization",
        "endpoint": "api",
        "endpointUrl": "<api>"
      },
      {
        "name": "organization",
        "env": "DAYTONA_ORGANIZATION_ID",
        "set": false,
        "attached": false,
        "header": "X-Daytona-Organization-ID",
        "endpoint": "api",
        "endpointUrl": "<api>"
      }
    ],
    "authProblem": null,
    "ssh": {
      "basis": {
        "kind": "listed",
        "env": "DAYTONA_SSH_GATEWAY"
      },
      "destinations": [
        {
          "destination": "127.0.0.1:2222",
          "source": {
            "kind": "env",
            "where": "DAYTONA_SSH_GATEWAY"
          }
        }
      ],
      "identityOption": null,
      "identity": null,
      "agent": false
    }
  },
  "sharedCredentials": []
}
=== providers audit --json (sorted, unique)
{"time":"<time>","provider":"daytona","kind":"request","operation":"create","method":"GET","url":"<api>/api-keys/current","status":200,"bytes":0,"credentials":["api-key"],"outcome":"ok"}
{"time":"<time>","provider":"daytona","kind":"request","operation":"create","method":"POST","url":"<api>/sandbox","status":200,"bytes":0,"credentials":["api-key"],"outcome":"ok"}
{"time":"<time>","provider":"daytona","kind":"request","operation":"delete","method":"DELETE","url":"<api>/sandbox/<sandbox>","status":200,"bytes":0,"credentials":["api-key"],"outcome":"ok"}
{"time":"<time>","provider":"daytona","kind":"request","operation":"doctor","method":"GET","url":"<api>/api-keys/current","status":200,"bytes":0,"credentials":["api-key"],"outcome":"ok"}
{"time":"<time>","provider":"daytona","kind":"request","operation":"doctor","method":"GET","url":"<api>/sandbox?limit=1&labels=%7B%22cbx%22%3A%22true%22%7D","status":200,"bytes":0,"credentials":["api-key"],"outcome":"ok"}
{"time":"<time>","provider":"daytona","kind":"request","operation":"get","method":"GET","url":"<api>/sandbox/<sandbox>","status":200,"bytes":0,"credentials":["api-key"],"outcome":"ok"}
{"time":"<time>","provider":"daytona","kind":"request","operation":"get","method":"GET","url":"<api>/sandbox/<sandbox>","status":404,"bytes":0,"credentials":["api-key"],"outcome":"ok"}
{"time":"<time>","provider":"daytona","kind":"request","operation":"list","method":"GET","url":"<api>/sandbox?limit=100&sort=createdAt&order=asc&labels=%7B%22cbx%22%3A%22true%22%2C%22cbx_provider%22%3A%22daytona%22%7D","status":200,"bytes":0,"credentials":["api-key"],"outcome":"ok"}
{"time":"<time>","provider":"daytona","kind":"request","operation":"set-labels","method":"PUT","url":"<api>/sandbox/<sandbox>/labels","status":200,"bytes":0,"credentials":["api-key"],"outcome":"ok"}
=== providers test daytona --json
{
  "provider": "daytona",
  "passed": true,
  "timeoutSecs": 60,
  "steps": [
    {
      "step": "load+configure",
      "result": "pass",
      "detail": "work root `cbx`",
      "millis": 0
    },
    {
      "step": "describe",
      "result": "pass",
      "detail": "daytona 0.1.0, 7 options",
      "millis": 0
    },
    {
      "step": "doctor",
      "result": "pass",
      "detail": "4 checks",
      "millis": 0
    },
    {
      "step": "not-found",
      "result": "pass",
      "detail": "get of a missing sandbox answers not-found",
      "millis": 0
    },
    {
      "step": "create",
      "result": "pass",
      "detail": "sandbox <conformance sandbox> (creating)",
      "millis": 0
    },
    {
      "step": "ready",
      "result": "pass",
      "detail": "state started",
      "millis": 0
    },
    {
      "step": "ssh-access",
      "result": "pass",
      "detail": "<token>@127.0.0.1:2222",
      "millis": 0
    },
    {
      "step": "get",
      "result": "pass",
      "detail": "returns the id and the labels given at create",
      "millis": 0
    },
    {
      "step": "list",
      "result": "pass",
      "detail": "listed under its labels, and not under a label it does not carry",
      "millis": 0
    },
    {
      "step": "set-labels",
      "result": "pass",
      "detail": "replaced labels read back",
      "millis": 0
    },
    {
      "step": "touch",
      "result": "pass",
      "detail": "ok",
      "millis": 0
    },
    {
      "step": "ssh-reachable",
      "result": "warn",
      "detail": "nothing accepted a connection at 127.0.0.1:2222 within 10 s of `ready` (fine for a fake service without SSH; against the real one, report `ready` only once SSH is up)",
      "millis": 0
    },
    {
      "step": "stop",
      "result": "pass",
      "detail": "stopped",
      "millis": 0
    },
    {
      "step": "start",
      "result": "pass",
      "detail": "ready again",
      "millis": 0
    },
    {
      "step": "error-401",
      "result": "pass",
      "detail": "HTTP 401 answers unauthorized",
      "millis": 0
    },
    {
      "step": "error-429",
      "result": "pass",
      "detail": "HTTP 429 with Retry-After: 7 answers rate-limited, retry after 7000 ms",
      "millis": 0
    },
    {
      "step": "delete",
      "result": "pass",
      "detail": "accepted",
      "millis": 0
    },
    {
      "step": "gone",
      "result": "pass",
      "detail": "get answers not-found",
      "millis": 0
    },
    {
      "step": "delete again",
      "result": "pass",
      "detail": "idempotent",
      "millis": 0
    }
  ]
}
"##;

/// `cbx ssh L --print` (issue 13): mints access and prints the command without connecting —
/// here nothing listens on the simulator's SSH gateway, and it still answers at once — and a
/// second `--print` reuses the cached access. `-vv` piped prints no ANSI colours.
#[test]
fn ssh_print_never_connects_and_piped_logs_have_no_colours() {
    let (sim, home) = setup(fast());
    let (leased, _) = warmup(&home, &["--slug", "printed"]);
    let started = Instant::now();
    let out = home.run(&["ssh", "printed", "--print"]);
    out.ok();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "--print must not wait for SSH\n{out}"
    );
    assert!(out.stdout.starts_with("ssh "), "{out}");
    assert!(out.stdout.contains("<token>@"), "{out}");
    assert!(!out.stderr.contains("waiting for SSH"), "{out}");
    assert!(out.stderr.contains("--show-secret prints it"), "{out}");
    let again = home.run(&["ssh", "printed", "--print", "--show-secret"]);
    again.ok();
    let minted = sim.minted_ssh_tokens();
    assert_eq!(
        minted.len(),
        1,
        "the second --print reuses the cached access"
    );
    assert!(again.stdout.contains(&format!("{}@", minted[0])), "{again}");
    // Piped, without NO_COLOR (the test homes set it): still no colours.
    let verbose = home
        .command(&["-vv", "status", &leased.lease])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&verbose.stderr);
    assert!(verbose.status.success(), "{stderr}");
    assert!(stderr.contains("DEBUG"), "{stderr}");
    assert!(!stderr.contains('\x1b'), "no ANSI when piped\n{stderr}");
    home.run(&["stop", &leased.lease]).ok();
}

#[test]
fn an_error_while_the_file_list_is_still_being_made_ends_cbx_at_once() {
    use std::os::unix::fs::PermissionsExt;
    let (_sim, mut home) = setup(fast());
    home.git(&["init", "-q"]);
    home.write_file("a.txt", "a");
    home.git(&["add", "."]);
    // A git whose `ls-files` takes 30 s: the run's file list is still being made when the
    // lease turns out not to exist.
    let bin = home.path().join("slow-git");
    std::fs::create_dir_all(&bin).unwrap();
    let real = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v git"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    std::fs::write(
        bin.join("git"),
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = ls-files ] && sleep 30; done\nexec {} \"$@\"\n",
            real.trim()
        ),
    )
    .unwrap();
    std::fs::set_permissions(bin.join("git"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    home.env("PATH", &path);
    let started = Instant::now();
    let out = home.run(&["run", "--id", "nosuch", "--", "true"]);
    let took = started.elapsed();
    out.expect_code(4);
    assert!(
        out.stderr
            .contains("error: no daytona lease matches `nosuch`"),
        "{out}"
    );
    // Not waiting for the listing: well under its 30 s, with room for a loaded machine.
    assert!(took < Duration::from_secs(20), "cbx took {took:?}\n{out}");
}
