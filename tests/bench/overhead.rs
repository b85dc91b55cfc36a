//! cbx's overhead, measured side by side with the tools it drives (issue 5).
//!
//! `cargo bench -p cbx --bench overhead` prints a table and writes
//! `<target dir>/bench/overhead.json`. Every figure is the median of repeated runs (after one
//! discarded warm-up run); cbx and its baseline are measured alternately, so drift on the
//! machine affects both alike. `-- --smoke` runs a few iterations on a smaller tree to check
//! that everything works (CI), without judging the figures. docs/performance.md describes the
//! method and the latest figures.
//!
//! Groups:
//! - provider: the embedded Daytona component through the library (`cbx::provider`): cold
//!   compile, cached load, instantiation, and instantiate + calls with one HTTP round trip
//!   against the Daytona simulator on loopback, minus the same request made with reqwest.
//! - control: the release `cbx` binary's `status` and `list` against the simulator, vs the
//!   same HTTP requests replayed with one `curl` process.
//! - data (root only; it needs the simulator's sshd gateway): a warm `cbx run` vs plain
//!   `ssh host true`; syncs of a many-file tree through `cbx::sync` vs plain `rsync`; peak
//!   RSS of `cbx run`; `cbx shard` over 4 sandboxes vs 1 (tests/bench/shard.rs).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cbx::environment::Environment;
use cbx::grant::http::{HttpGateway, HttpLimits};
use cbx::grant::{EndpointOverrides, Grant};
use cbx::provider::api::{CheckStatus, Settings};
use cbx::provider::engine::Compilation;
use cbx::provider::registry::{self, ProviderPackage};
use cbx::provider::{Engine, Limits, ProviderInstance, contract};
use cbx::redact::Redactor;
use cbx::ssh::{SshClient, Target};
use cbx::sync::{self, FileList, TransportChoice};
use cbx_testkit::daytona_sim::{DaytonaSim, RecordedRequest, SimConfig};
use cbx_testkit::home::CbxHome;
use cbx_testkit::sshd::SshdGateway;
use serde_json::{Value, json};

const CBX: &str = env!("CARGO_BIN_EXE_cbx");

type Res<T> = Result<T, Box<dyn std::error::Error>>;

// ---------------------------------------------------------------------------------------------
// Options

#[derive(Debug, Clone)]
struct Opts {
    smoke: bool,
    /// Keep temporary files (trees, sandbox homes) on disk instead of tmpfs.
    disk: bool,
    json: Option<PathBuf>,
    only: Option<String>,
    /// Iterations of the micro measurements (provider calls).
    micro: usize,
    /// Iterations of process-level measurements (a cbx command, ssh, curl).
    proc: usize,
    /// Iterations of the heavy measurements (a first sync of the whole tree).
    heavy: usize,
    /// Iterations of cold compiles.
    cold: usize,
    /// Files in the synced tree.
    files: usize,
    /// Its total size in bytes.
    bytes: u64,
    /// Another cbx binary (the build before a change) to compare the full-path row with.
    before: Option<PathBuf>,
}

impl Opts {
    fn parse() -> Res<Opts> {
        let mut o = Opts {
            smoke: false,
            disk: false,
            json: None,
            only: None,
            micro: 200,
            proc: 20,
            heavy: 7,
            cold: 10,
            files: 10_000,
            bytes: 100_000_000,
            before: None,
        };
        let mut runs: Option<usize> = None;
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                // cargo bench passes --bench to harness = false targets.
                "--bench" => {}
                "--smoke" => o.smoke = true,
                "--disk" => o.disk = true,
                "--json" => o.json = Some(args.next().ok_or("--json needs a path")?.into()),
                "--before" => o.before = Some(args.next().ok_or("--before needs a path")?.into()),
                "--only" => o.only = Some(args.next().ok_or("--only needs a group")?),
                "--runs" => runs = Some(args.next().ok_or("--runs needs a number")?.parse()?),
                "--files" => o.files = args.next().ok_or("--files needs a number")?.parse()?,
                "--megabytes" => {
                    o.bytes = args
                        .next()
                        .ok_or("--megabytes needs a number")?
                        .parse::<u64>()?
                        * 1_000_000
                }
                "-h" | "--help" => {
                    println!(
                        "usage: cargo bench -p cbx --bench overhead -- [--smoke] [--runs N] \
                         [--only provider|control|data] [--files N] [--megabytes N] [--disk] [--json PATH] \
                         [--before PATH-TO-ANOTHER-CBX]"
                    );
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument `{other}` (try --help)").into()),
            }
        }
        if o.smoke {
            (o.micro, o.proc, o.heavy, o.cold) = (10, 3, 2, 2);
            if o.files == 10_000 {
                o.files = 2_000;
            }
            if o.bytes == 100_000_000 {
                o.bytes = 20_000_000;
            }
        }
        if let Some(n) = runs {
            o.proc = n.max(1);
            o.heavy = n.max(1);
            o.cold = n.max(1);
            o.micro = (n * 10).max(1);
        }
        if let Some(g) = &o.only
            && !["provider", "control", "data"].contains(&g.as_str())
        {
            return Err(format!("--only {g}: expected provider, control or data").into());
        }
        Ok(o)
    }

    fn wants(&self, group: &str) -> bool {
        self.only.as_deref().is_none_or(|g| g == group)
    }
}

// ---------------------------------------------------------------------------------------------
// Samples, rows and targets

/// Repeated measurements of one thing, in seconds (or bytes for memory).
#[derive(Debug, Clone, Default)]
struct Samples(Vec<f64>);

impl Samples {
    fn push(&mut self, d: Duration) {
        self.0.push(d.as_secs_f64());
    }
    fn median(&self) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
    fn min(&self) -> f64 {
        self.0.iter().copied().fold(f64::INFINITY, f64::min)
    }
    fn max(&self) -> f64 {
        self.0.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }
    fn json(&self) -> Value {
        json!({
            "median": self.median(),
            "min": self.min(),
            "max": self.max(),
            "n": self.0.len(),
            "samples": self.0,
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Unit {
    Seconds,
    Bytes,
    /// A number of things (requests, processes, connections).
    Count,
}

#[derive(Debug, Clone, Copy)]
enum Goal {
    /// The cbx figure is at most this (seconds or bytes).
    Max(f64),
    /// cbx median minus baseline median is at most this many seconds.
    Overhead(f64),
    /// cbx median / baseline median is at most this.
    Ratio(f64),
    /// No target: reported for information.
    None,
}

struct Row {
    id: &'static str,
    group: &'static str,
    what: String,
    unit: Unit,
    cbx: Samples,
    baseline: Option<(String, Samples)>,
    target: Goal,
    /// Medians of the parts of the cbx figure (where measured), for profiling.
    parts: Vec<(&'static str, Samples)>,
    note: Option<String>,
}

impl Row {
    fn new(id: &'static str, group: &'static str, what: impl Into<String>, target: Goal) -> Row {
        Row {
            id,
            group,
            what: what.into(),
            unit: Unit::Seconds,
            cbx: Samples::default(),
            baseline: None,
            target,
            parts: Vec::new(),
            note: None,
        }
    }

    fn base(&mut self, what: impl Into<String>) -> &mut Samples {
        if self.baseline.is_none() {
            self.baseline = Some((what.into(), Samples::default()));
        }
        &mut self.baseline.as_mut().expect("set").1
    }

    fn part(&mut self, name: &'static str, d: Duration) {
        match self.parts.iter_mut().find(|(n, _)| *n == name) {
            Some((_, s)) => s.push(d),
            None => {
                let mut s = Samples::default();
                s.push(d);
                self.parts.push((name, s));
            }
        }
    }

    fn ratio(&self) -> Option<f64> {
        self.baseline
            .as_ref()
            .map(|(_, b)| self.cbx.median() / b.median())
    }

    fn overhead(&self) -> Option<f64> {
        self.baseline
            .as_ref()
            .map(|(_, b)| self.cbx.median() - b.median())
    }

    fn pass(&self) -> Option<bool> {
        match self.target {
            Goal::Max(m) => Some(self.cbx.median() <= m),
            Goal::Overhead(m) => self.overhead().map(|o| o <= m),
            Goal::Ratio(m) => self.ratio().map(|r| r <= m),
            Goal::None => None,
        }
    }

    fn fmt(&self, v: f64) -> String {
        match self.unit {
            Unit::Seconds => fmt_secs(v),
            Unit::Bytes => format!("{:.1} MB", v / 1e6),
            Unit::Count => format!("{v:.0}"),
        }
    }

    fn target_text(&self) -> String {
        match self.target {
            Goal::Max(m) => format!("≤ {}", self.fmt(m)),
            Goal::Overhead(m) => format!("≤ +{}", fmt_secs(m)),
            Goal::Ratio(r) => format!("≤ {r}×"),
            Goal::None => "—".into(),
        }
    }

    fn comparison_text(&self) -> String {
        match (self.target, self.ratio(), self.overhead()) {
            (Goal::Overhead(_), _, Some(o)) => {
                format!("{}{}", if o < 0.0 { "−" } else { "+" }, fmt_secs(o.abs()))
            }
            (_, Some(r), _) => format!("{r:.2}×"),
            _ => "—".into(),
        }
    }

    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "group": self.group,
            "what": self.what,
            "unit": match self.unit { Unit::Seconds => "s", Unit::Bytes => "bytes", Unit::Count => "count" },
            "cbx": self.cbx.json(),
            "baseline": self.baseline.as_ref().map(|(w, s)| {
                let mut v = s.json();
                v["what"] = json!(w);
                v
            }),
            "ratio": self.ratio(),
            "overhead": self.overhead(),
            "target": match self.target {
                Goal::Max(m) => json!({"kind": "max", "value": m}),
                Goal::Overhead(m) => json!({"kind": "overhead", "value": m}),
                Goal::Ratio(r) => json!({"kind": "ratio", "value": r}),
                Goal::None => Value::Null,
            },
            "pass": self.pass(),
            "parts": self.parts.iter().map(|(n, s)| (n.to_string(), json!(s.median()))).collect::<serde_json::Map<_, _>>(),
            "note": self.note,
        })
    }
}

fn fmt_secs(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 0.01 {
        format!("{:.1} ms", s * 1e3)
    } else if s >= 0.001 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

fn print_row(row: &Row) {
    let base = row
        .baseline
        .as_ref()
        .map(|(w, s)| format!("{} ({w})", row.fmt(s.median())))
        .unwrap_or_else(|| "—".into());
    let result = match row.pass() {
        Some(true) => "PASS",
        Some(false) => "FAIL",
        None => "info",
    };
    println!(
        "{:<44} {:>10}  {:<42} {:>9}  {:<10} {}",
        row.what,
        row.fmt(row.cbx.median()),
        base,
        row.comparison_text(),
        row.target_text(),
        result
    );
    let _ = std::io::stdout().flush();
}

/// One group of measurements: it appends its rows.
type Group = fn(&Opts, &mut Vec<Row>) -> Res<()>;

fn print_header() {
    println!(
        "{:<44} {:>10}  {:<42} {:>9}  {:<10} result",
        "measure", "cbx", "baseline", "cbx vs", "target"
    );
    println!("{}", "-".repeat(132));
}

mod overlap;
mod shard;
mod warm;

// ---------------------------------------------------------------------------------------------
// Processes

/// One finished process: wall time from spawn to reaped, exit code, stderr.
struct Ran {
    wall: Duration,
    code: i32,
    stderr: String,
}

/// Runs `cmd` to completion with stdin and stdout at /dev/null and stderr in a file (a pipe
/// could be held open by an ssh master that outlives the command).
fn run(mut cmd: Command) -> Res<Ran> {
    let err_path = std::env::temp_dir().join(format!("cbx-bench-stderr-{}", std::process::id()));
    let err = std::fs::File::create(&err_path)?;
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(err);
    let started = Instant::now();
    let status = cmd.spawn()?.wait()?;
    let wall = started.elapsed();
    let mut stderr = String::new();
    std::fs::File::open(&err_path)?.read_to_string(&mut stderr)?;
    let _ = std::fs::remove_file(&err_path);
    Ok(Ran {
        wall,
        code: status.code().unwrap_or(-1),
        stderr,
    })
}

/// GNU time, which reports a child's peak resident set size.
const TIME: &str = "/usr/bin/time";

/// Runs `cmd` under GNU time and returns its peak RSS in bytes: the ru_maxrss of the process
/// and the children it waited for. Measured by a small parent on purpose: a child started
/// straight from this (large) process would inherit its high-water mark.
fn peak_rss(cmd: &Command) -> Res<u64> {
    let out = std::env::temp_dir().join(format!("cbx-bench-rss-{}", std::process::id()));
    let mut timed = Command::new(TIME);
    timed
        .args(["-f", "%M", "-o"])
        .arg(&out)
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            timed.env(k, v);
        }
    }
    if let Some(dir) = cmd.get_current_dir() {
        timed.current_dir(dir);
    }
    run_ok("cbx under time", timed)?;
    let kb: u64 = std::fs::read_to_string(&out)?.trim().parse()?;
    let _ = std::fs::remove_file(&out);
    Ok(kb * 1024)
}

/// Like [`run`], but an error unless it exits 0.
fn run_ok(what: &str, cmd: Command) -> Res<Ran> {
    let r = run(cmd)?;
    if r.code != 0 {
        return Err(format!("{what} exited {}: {}", r.code, r.stderr.trim()).into());
    }
    Ok(r)
}

fn sh(script: &str, dir: &Path) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(script).current_dir(dir);
    c
}

fn git(dir: &Path, args: &[&str]) -> Res<()> {
    let out = Command::new("git").args(args).current_dir(dir).output()?;
    if !out.status.success() {
        return Err(format!(
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Provider: compile, load, instantiate, call

fn daytona() -> ProviderPackage {
    registry::builtin()
        .into_iter()
        .find(|p| p.name() == "daytona")
        .expect("the Daytona provider is built in")
}

fn bench_provider(o: &Opts, rows: &mut Vec<Row>) -> Res<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let package = daytona();
    let scratch = tempfile::Builder::new().prefix("cbx-bench-").tempdir()?;

    // Cold compile: a fresh engine and an empty cache directory each time.
    let mut cold = Row::new(
        "provider.cold_compile",
        "provider",
        format!(
            "provider: cold compile ({} kB component)",
            package.component.len() / 1000
        ),
        Goal::None,
    );
    for i in 0..=o.cold {
        let dir = scratch.path().join(format!("cold-{i}"));
        let t = Instant::now();
        let engine = Engine::new(Some(dir))?;
        let (_, how) = engine.load_digested(&package.component, &package.digest)?;
        let d = t.elapsed();
        assert_eq!(how, Compilation::Compiled);
        if i > 0 {
            cold.cbx.push(d);
        }
    }
    cold.note = Some("Engine::new + Engine::load with an empty cache directory (compile with Cranelift, serialize, write the cache file)".into());
    print_row(&cold);
    rows.push(cold);

    // Cached load: what a CLI invocation does to get the compiled component.
    let cache = scratch.path().join("cache");
    Engine::new(Some(cache.clone()))?.load_digested(&package.component, &package.digest)?;
    let mut cached = Row::new(
        "provider.cached_load",
        "provider",
        "provider: cached load",
        Goal::Max(0.005),
    );
    for i in 0..=o.micro {
        let t = Instant::now();
        let package = daytona();
        let t1 = Instant::now();
        let engine = Engine::new(Some(cache.clone()))?;
        let t2 = Instant::now();
        let (component, how) = engine.load_digested(&package.component, &package.digest)?;
        let t3 = Instant::now();
        assert_eq!(how, Compilation::Cached);
        if i > 0 {
            cached.cbx.push(t3 - t);
            cached.part("registry::builtin", t1 - t);
            cached.part("Engine::new", t2 - t1);
            cached.part("Engine::load", t3 - t2);
        }
        drop((component, engine));
    }
    cached.note = Some(
        "registry::builtin() + Engine::new + Engine::load_digested from a warm cache (deserialize; the digest was computed at build time)".into(),
    );
    print_row(&cached);
    rows.push(cached);

    // Instantiate and call, against the simulator on loopback.
    let sim = DaytonaSim::start_background(SimConfig::default())?;
    let key = sim.api_key();
    let api = sim.api_url();
    let env = move |k: &str| match k {
        "DAYTONA_API_URL" => Some(api.clone()),
        "DAYTONA_API_KEY" => Some(key.clone()),
        _ => None,
    };
    let engine = Engine::new(Some(cache.clone()))?;
    let (component, _) = engine.load_digested(&package.component, &package.digest)?;

    let mut inst = Row::new(
        "provider.instantiate",
        "provider",
        "provider: instantiate (+ describe)",
        Goal::None,
    );
    let mut call = Row::new(
        "provider.call_overhead",
        "provider",
        "provider: instantiate + calls, doctor's HTTP (host)",
        Goal::Overhead(0.0005),
    );
    // The requests doctor sends (the API check and the key's scopes), learnt from one call,
    // replayed directly with reqwest on a fresh connection each time (a fresh provider
    // instance has a fresh HTTP client, too).
    let raw_client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let mut replay: Option<Vec<RecordedRequest>> = None;
    rt.block_on(async {
        for i in 0..=o.micro {
            // Alternate which goes first, so neither always runs on a warmer cache.
            let raw_first = match (&replay, i % 2) {
                (Some(r), 1) => Some(raw_all(&raw_client, &sim.base_url(), r).await?),
                _ => None,
            };
            let redactor = Redactor::new();
            let t0 = Instant::now();
            let grant = Arc::new(Grant::resolve(
                &package.manifest,
                &EndpointOverrides::default(),
                &env,
                &redactor,
            )?);
            let t1 = Instant::now();
            contract::check(engine.wasmtime(), &component)?;
            let t2 = Instant::now();
            let gateway = HttpGateway::new(grant.clone(), HttpLimits::default(), redactor.clone())?;
            let t3 = Instant::now();
            let mut instance = ProviderInstance::new(
                package.name(),
                &engine,
                &component,
                gateway,
                redactor,
                Limits::default(),
            )?;
            let t4 = Instant::now();
            instance.describe().await?;
            let t5 = Instant::now();
            instance
                .configure(Settings {
                    options: Vec::new(),
                    endpoints: grant.endpoint_urls(),
                    credentials: grant.credential_names(),
                })
                .await?;
            let t6 = Instant::now();
            if replay.is_none() {
                sim.clear_requests();
            }
            let checks = instance.doctor().await?;
            let t7 = Instant::now();
            if replay.is_none() {
                let reqs = sim.requests();
                if reqs.is_empty() {
                    return Err("doctor made no request".into());
                }
                if checks.iter().any(|c| matches!(c.status, CheckStatus::Fail)) {
                    return Err(format!("doctor failed: {checks:?}").into());
                }
                replay = Some(reqs);
            }
            let r = replay.as_ref().expect("recorded");
            let raw = match raw_first {
                Some(d) => d,
                None => raw_all(&raw_client, &sim.base_url(), r).await?,
            };
            if i > 0 {
                inst.cbx.push(t5 - t1);
                call.cbx.push(t7 - t0);
                call.base("reqwest, same request").push(raw);
                call.part("Grant::resolve", t1 - t0);
                call.part("contract::check", t2 - t1);
                call.part("HttpGateway::new", t3 - t2);
                call.part("ProviderInstance::new", t4 - t3);
                call.part("describe (instantiates)", t5 - t4);
                call.part("configure", t6 - t5);
                call.part("doctor", t7 - t6);
            }
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    inst.note = Some("contract::check + HttpGateway::new + ProviderInstance::new (link) + describe, whose call instantiates the component in a fresh store".into());
    call.note = Some("Grant::resolve .. doctor: instantiate, describe, configure and doctor (its GETs to the simulator: the API check and the key's scopes), minus the same GETs with reqwest on a fresh connection each".into());
    print_row(&inst);
    print_row(&call);
    rows.push(inst);
    rows.push(call);
    Ok(())
}

/// The recorded requests, made one after the other with [`raw_get`]; how long they took.
async fn raw_all(client: &reqwest::Client, base: &str, reqs: &[RecordedRequest]) -> Res<Duration> {
    let mut total = Duration::ZERO;
    for r in reqs {
        total += raw_get(client, base, r).await?;
    }
    Ok(total)
}

/// The recorded request `r` (its method, path, query, `Authorization` and body), made
/// directly with reqwest; how long it took.
async fn raw_get(client: &reqwest::Client, base: &str, r: &RecordedRequest) -> Res<Duration> {
    let url = format!(
        "{base}{}{}{}",
        r.path,
        if r.query.is_empty() { "" } else { "?" },
        r.query
    );
    let t = Instant::now();
    let method = reqwest::Method::from_bytes(r.method.as_bytes())?;
    let mut req = client.request(method, url);
    if let Some(auth) = r.header("authorization") {
        req = req.header("Authorization", auth);
    }
    if !r.body.is_empty() {
        req = req
            .header("Content-Type", "application/json")
            .body(r.body.clone());
    }
    let resp = req.send().await?;
    let status = resp.status();
    let _ = resp.bytes().await?;
    let took = t.elapsed();
    if !status.is_success() {
        return Err(format!("raw request got {status}").into());
    }
    Ok(took)
}

/// Runs `a` and `b`, `a` first on even iterations and `b` first on odd ones, so that neither
/// always runs right after the other (warm caches, dirty pages, a busy neighbour).
fn pair<A, B>(i: usize, a: impl FnOnce() -> Res<A>, b: impl FnOnce() -> Res<B>) -> Res<(A, B)> {
    if i.is_multiple_of(2) {
        let x = a()?;
        Ok((x, b()?))
    } else {
        let y = b()?;
        Ok((a()?, y))
    }
}

/// Runs every measurement of `fs` once, starting with a different one each iteration, and
/// returns their times in the order of `fs`.
fn rotate(i: usize, fs: &mut [&mut dyn FnMut() -> Res<Duration>]) -> Res<Vec<Duration>> {
    let n = fs.len();
    let mut out = vec![Duration::ZERO; n];
    for k in 0..n {
        let j = (i + k) % n;
        out[j] = (fs[j])()?;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Control plane: status and list vs curl

/// A curl config file replaying `reqs` in one curl process (one connection, like cbx's).
fn curl_config(base: &str, reqs: &[RecordedRequest], dir: &Path) -> Res<PathBuf> {
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut cfg = String::new();
    for (i, r) in reqs.iter().enumerate() {
        if i > 0 {
            cfg.push_str("next\n");
        }
        let url = format!(
            "{base}{}{}{}",
            r.path,
            if r.query.is_empty() { "" } else { "?" },
            r.query
        );
        writeln!(cfg, "url = {}", quote(&url))?;
        writeln!(cfg, "request = {}", quote(&r.method))?;
        writeln!(cfg, "output = \"/dev/null\"")?;
        writeln!(cfg, "silent\nshow-error\nfail")?;
        for name in ["authorization", "x-daytona-organization-id", "content-type"] {
            if let Some(v) = r.header(name) {
                writeln!(cfg, "header = {}", quote(&format!("{name}: {v}")))?;
            }
        }
        if !r.body.is_empty() {
            let body = dir.join(format!("body-{i}"));
            std::fs::write(&body, &r.body)?;
            writeln!(
                cfg,
                "data-binary = {}",
                quote(&format!("@{}", body.display()))
            )?;
        }
    }
    let path = dir.join("curl.cfg");
    std::fs::write(&path, cfg)?;
    Ok(path)
}

fn bench_control(o: &Opts, rows: &mut Vec<Row>) -> Res<()> {
    if Command::new("curl").arg("--version").output().is_err() {
        println!("control plane: skipped (curl is not installed; tests/setup.sh installs it)");
        return Ok(());
    }
    let sim = DaytonaSim::start_background(SimConfig::default().with_delays(Duration::ZERO))?;
    let mut home = CbxHome::new(CBX);
    home.env("DAYTONA_API_URL", &sim.api_url())
        .env("DAYTONA_API_KEY", &sim.api_key());
    let out = home.run(&["warmup", "--slug", "bench", "--json"]);
    if out.code != 0 {
        return Err(format!("cbx warmup failed\n{out}").into());
    }
    let scratch = tempfile::Builder::new().prefix("cbx-bench-").tempdir()?;
    for (id, args, what) in [
        (
            "control.status",
            &["status", "bench"][..],
            "control: cbx status <lease>",
        ),
        ("control.list", &["list"][..], "control: cbx list"),
    ] {
        sim.clear_requests();
        run_ok(&format!("cbx {}", args.join(" ")), home.command(args))?;
        let reqs = sim.requests();
        let dir = scratch.path().join(id);
        std::fs::create_dir_all(&dir)?;
        let cfg = curl_config(&sim.base_url(), &reqs, &dir)?;
        let mut row = Row::new(id, "control", what, Goal::None);
        let label = format!(
            "curl, {} request{}",
            reqs.len(),
            if reqs.len() == 1 { "" } else { "s" }
        );
        for i in 0..=o.proc {
            let (c, b) = pair(
                i,
                || run_ok("cbx", home.command(args)),
                || {
                    let mut curl = Command::new("curl");
                    curl.arg("-K").arg(&cfg);
                    run_ok("curl", curl)
                },
            )?;
            if i > 0 {
                row.cbx.push(c.wall);
                row.base(&label).push(b.wall);
            }
        }
        row.note = Some(format!(
            "the release binary end to end vs one curl process making the same {} request(s) (recorded by the simulator during a cbx run) over one connection: {}",
            reqs.len(),
            reqs.iter()
                .map(|r| format!("{} {}", r.method, r.path))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        print_row(&row);
        rows.push(row);
    }
    let _ = home.run(&["stop", "bench"]);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Data plane

/// Writes `files` files of `bytes / files` pseudo-random (incompressible) bytes each, in 100
/// directories, and stages them in a new git repository.
fn make_tree(root: &Path, files: usize, bytes: u64) -> Res<()> {
    std::fs::create_dir_all(root)?;
    git(root, &["init", "-q"])?;
    std::fs::write(root.join(".gitignore"), "target/\n")?;
    let size = (bytes / files.max(1) as u64) as usize;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut buf = vec![0u8; size];
    for i in 0..files {
        let dir = root.join(format!("d{:02}", i % 100));
        if i < 100 {
            std::fs::create_dir_all(&dir)?;
        }
        for chunk in buf.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let b = state.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        std::fs::write(dir.join(format!("f{i:05}.dat")), &buf)?;
    }
    // Ignored files, which neither side syncs.
    std::fs::create_dir_all(root.join("target"))?;
    std::fs::write(root.join("target/junk"), "ignored")?;
    git(root, &["add", "-A"])?;
    Ok(())
}

/// Rewrites one file of the tree with new bytes. Its size changes too (`n % 3` bytes longer
/// than it was made): rsync's quick check compares sizes and whole-second modification times,
/// so a same-size rewrite within the second of the previous sync would not be sent.
fn touch_one(root: &Path, n: u64, size: usize) -> Res<()> {
    let p = root.join("d00/f00000.dat");
    let mut bytes = std::fs::read(&p)?;
    bytes.resize(size + (n % 3) as usize, 0);
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    std::fs::write(&p, bytes)?;
    Ok(())
}

struct Plain {
    port: u16,
    token: String,
}

impl Plain {
    /// The ssh options of a plain, unmultiplexed connection with the token user.
    fn ssh_words(&self) -> Vec<String> {
        [
            "ssh",
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-p",
            &self.port.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn ssh(&self, remote: &str) -> Command {
        let w = self.ssh_words();
        let mut c = Command::new(&w[0]);
        c.args(&w[1..])
            .arg(format!("{}@127.0.0.1", self.token))
            .arg(remote);
        c
    }

    /// `git ls-files … | rsync --files-from` over plain ssh, as a person would type it.
    fn rsync(&self, tree: &Path, remote_dir: &str) -> Command {
        let script = format!(
            "git ls-files -z --cached --others --exclude-standard | \
             rsync --links --perms --times --files-from=- --from0 -e '{}' ./ '{}@127.0.0.1:{}/'",
            self.ssh_words().join(" "),
            self.token,
            remote_dir
        );
        sh(&script, tree)
    }
}

/// The plain `git ls-files | rsync` pipeline, but over cbx's multiplexed connection to the
/// lease (its ssh config and master).
fn mux_rsync(client: &SshClient, tree: &Path, remote_dir: &str) -> Command {
    let script = format!(
        "git ls-files -z --cached --others --exclude-standard | \\
         rsync --links --perms --times --files-from=- --from0 -e \"{}\" ./ '{}:{}/'",
        client.rsync_shell(),
        client.alias(),
        remote_dir
    );
    sh(&script, tree)
}

/// One cbx library sync of `tree`, timed as `cbx run` does it: repo root, file list, size
/// check, sync (fingerprint check, prepare round trip, rsync, record).
fn cbx_sync(
    rt: &tokio::runtime::Runtime,
    client: &SshClient,
    tree: &Path,
    (remote_dir, lease, transport): (&str, &str, TransportChoice),
    state: &Path,
    redactor: &Redactor,
) -> Res<Synced> {
    let t = Instant::now();
    let env = Environment::capture();
    let root = sync::repo_root(tree, &env)?;
    let t1 = Instant::now();
    let list = FileList::collect_cached(&root, &state.join("listings"), &env)?;
    list.check_size(false, &|_| {})?;
    let t2 = Instant::now();
    let report = rt.block_on(sync::sync(
        client,
        &list,
        remote_dir,
        state,
        lease,
        sync::Options {
            force: false,
            quiet: true,
            transport,
            local_rsync: true,
        },
        redactor,
    ))?;
    let t3 = Instant::now();
    Ok(Synced {
        total: t3 - t,
        repo_root: t1 - t,
        collect: t2 - t1,
        sync: t3 - t2,
        report,
    })
}

/// The lease id the library syncs record under (in the bench's own state directory).
const BENCH_LEASE: &str = "cbx_00000000bench";
/// The lease ids the tar-vs-rsync syncs record under.
const TAR_LEASE: &str = "cbx_0000000bnctar";
const RSYNC_LEASE: &str = "cbx_0000000bncrsy";

/// One timed library sync.
struct Synced {
    total: Duration,
    repo_root: Duration,
    collect: Duration,
    sync: Duration,
    report: sync::SyncReport,
}

impl Synced {
    fn parts(&self, row: &mut Row) {
        row.part("sync::repo_root", self.repo_root);
        row.part("FileList::collect_cached", self.collect);
        row.part("sync::sync", self.sync);
    }
}

/// Flushes dirty pages (outside any timing), so a measurement does not pay for the
/// writeback of the one before.
fn settle() {
    rustix::fs::sync();
}

fn bench_data(o: &Opts, rows: &mut Vec<Row>) -> Res<()> {
    if let Some(why) = SshdGateway::unavailable() {
        println!("data plane: skipped ({why})");
        return Ok(());
    }
    let gateway = Arc::new(SshdGateway::start()?);
    let sim = DaytonaSim::start_background(SimConfig {
        ssh: gateway.clone(),
        // Daytona's create and start answer once the sandbox has started (within 30 s).
        server_wait: Duration::from_secs(30),
        ..SimConfig::default().with_delays(Duration::from_millis(20))
    })?;
    let mut home = CbxHome::new(CBX);
    home.env("DAYTONA_API_URL", &sim.api_url())
        .env("DAYTONA_API_KEY", &sim.api_key())
        .env("DAYTONA_SSH_GATEWAY", &sim.ssh_gateway())
        // cbx may put its ssh control sockets under TMPDIR (a long state path); the library
        // calls in this process must find the same ones.
        .env("TMPDIR", &std::env::temp_dir().to_string_lossy());
    let result =
        data_rows(o, rows, &sim, &gateway, &home).and_then(|()| shard::rows(o, rows, &home));
    let _ = home.run(&["stop", "bench"]);
    result
}

fn data_rows(
    o: &Opts,
    rows: &mut Vec<Row>,
    sim: &DaytonaSim,
    gateway: &SshdGateway,
    home: &CbxHome,
) -> Res<()> {
    // A small repository for the warm run; a large tree for the syncs.
    let small = &home.cwd;
    git(small, &["init", "-q"])?;
    std::fs::write(small.join("README.md"), "bench\n")?;
    std::fs::write(small.join("main.rs"), "fn main() {}\n")?;
    git(small, &["add", "-A"])?;
    let scratch = tempfile::Builder::new().prefix("cbx-bench-").tempdir()?;
    let tree = scratch.path().join("tree");
    let file_size = (o.bytes / o.files.max(1) as u64) as usize;
    let t = Instant::now();
    make_tree(&tree, o.files, o.bytes)?;
    println!(
        "(made a {}-file, {} tree in {})",
        o.files,
        sync::human_bytes(o.bytes),
        fmt_secs(t.elapsed().as_secs_f64())
    );

    let out = home.run(&["warmup", "--slug", "bench", "--json"]);
    if out.code != 0 {
        return Err(format!("cbx warmup failed\n{out}").into());
    }
    let lease = out.json()["leaseId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let sandbox = out.json()["sandboxId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // The first run mints SSH access, starts the multiplexing master and syncs.
    run_ok(
        "cbx run",
        home.command(&["run", "--id", "bench", "--", "true"]),
    )?;
    let access: Value = serde_json::from_slice(&std::fs::read(
        home.state_dir()
            .join("secrets")
            .join(&lease)
            .join("access.json"),
    )?)?;
    let target: Target = serde_json::from_value(access["target"].clone())?;
    let plain = Plain {
        port: target.port,
        token: target.user.clone(),
    };
    if !sim
        .ssh_tokens()
        .iter()
        .any(|t| t.token == plain.token && t.sandbox_id == sandbox)
    {
        return Err("cbx's cached SSH token is not a live token of the sandbox".into());
    }
    let sandbox_home = gateway.sandbox_home(&sandbox).ok_or("no sandbox home")?;
    run_ok("plain ssh", plain.ssh("true"))?;

    // Warm run vs plain ssh.
    let mut warm = Row::new(
        "data.warm_run",
        "data",
        "data: warm cbx run --id X -- true",
        Goal::Ratio(1.2),
    );
    for i in 0..=o.proc {
        let (c, b) = pair(
            i,
            || {
                run_ok(
                    "cbx run",
                    home.command(&["run", "--id", "bench", "--", "true"]),
                )
            },
            || run_ok("ssh", plain.ssh("true")),
        )?;
        if i > 0 {
            warm.cbx.push(c.wall);
            warm.base("ssh host true").push(b.wall);
        }
    }
    warm.note = Some("the release binary in a 2-file repository (its sync is skipped by the fingerprint), vs plain ssh with the token user and no multiplexing".into());
    print_row(&warm);
    rows.push(warm);

    // The library's view of the lease's connection: the same ssh config, the same master.
    let state = scratch.path().join("state");
    std::fs::create_dir_all(&state)?;
    let client = SshClient::prepare(
        &scratch.path().join("secrets"),
        &home.state_dir(),
        &lease,
        target,
        false,
        &Environment::capture(),
    )?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if !client.master_alive() {
        return Err("cbx's multiplexing master is not up after cbx run".into());
    }
    let redactor = Redactor::new();
    run_ok("mkdir", plain.ssh("mkdir -p bench"))?;
    let sync_with = |dir: &str, lease: &str, transport: TransportChoice| {
        cbx_sync(
            &rt,
            &client,
            &tree,
            (dir, lease, transport),
            &state,
            &redactor,
        )
    };
    let sync_once = |dir: &str| sync_with(dir, BENCH_LEASE, TransportChoice::Auto);

    // First sync of the whole tree vs rsync into an empty directory, over plain ssh (what a
    // person would run) and over cbx's own connection (what cbx itself adds to rsync).
    let mut first = Row::new(
        "data.first_sync",
        "data",
        format!(
            "data: first sync, {} files, {}",
            o.files,
            sync::human_bytes(o.bytes)
        ),
        Goal::Ratio(1.2),
    );
    let mut first_mux = Row::new(
        "data.first_sync_mux",
        "data",
        "  same, vs rsync over cbx's connection",
        Goal::None,
    );
    for i in 0..=o.heavy {
        for dir in ["cbx", "rsync", "mux"] {
            let _ = std::fs::remove_dir_all(sandbox_home.join("bench").join(dir));
        }
        sync::forget(&state, BENCH_LEASE);
        // Each measurement starts with no writeback of an earlier copy in flight.
        settle();
        let synced = std::cell::RefCell::new(None);
        let t = rotate(
            i,
            &mut [
                &mut || {
                    let r = sync_once("bench/cbx")?;
                    let took = r.total;
                    *synced.borrow_mut() = Some(r);
                    settle();
                    Ok(took)
                },
                &mut || {
                    let r = run_ok("rsync", plain.rsync(&tree, "bench/rsync"))?;
                    settle();
                    Ok(r.wall)
                },
                &mut || {
                    let r = run_ok("rsync", mux_rsync(&client, &tree, "bench/mux"))?;
                    settle();
                    Ok(r.wall)
                },
            ],
        )?;
        let c = synced.into_inner().expect("measured");
        // The tree's files plus its .gitignore.
        if c.report.skipped || c.report.transferred != Some(o.files as u64 + 1) {
            return Err(format!("first sync sent {:?} files", c.report.transferred).into());
        }
        if i > 0 {
            first.cbx.push(t[0]);
            c.parts(&mut first);
            first.base("git ls-files | rsync").push(t[1]);
            first_mux.cbx.push(t[0]);
            first_mux.base("the same over cbx's connection").push(t[2]);
        }
    }
    for dir in ["rsync", "mux"] {
        let sent = count_files(&sandbox_home.join("bench").join(dir));
        if sent != o.files + 1 {
            return Err(format!("rsync left {sent} files, expected {}", o.files + 1).into());
        }
    }
    first.note = Some("cbx::sync (as cbx run calls it, over cbx's multiplexed connection) into an empty directory, vs git ls-files | rsync --files-from over plain ssh into an empty directory; all directories are deleted and dirty pages flushed before each round, and each measurement is flushed after".into());
    first_mux.note = Some("the same cbx::sync vs the same git ls-files | rsync pipeline over cbx's multiplexed connection (ssh -F <cbx's config>): what cbx adds to rsync itself".into());
    print_row(&first);
    print_row(&first_mux);
    rows.push(first);
    rows.push(first_mux);

    // Unchanged tree: the fingerprint skips the sync.
    let mut same = Row::new(
        "data.unchanged_sync",
        "data",
        format!("data: unchanged-tree sync, {} files", o.files),
        Goal::Ratio(1.5),
    );
    let mut plain_rt = Samples::default();
    for i in 0..=o.proc {
        let (c, b) = pair(
            i,
            || sync_once("bench/cbx"),
            || {
                let mut mux = client.ssh().into_std();
                mux.arg(client.alias()).arg("true");
                run_ok("ssh (multiplexed)", mux)
            },
        )?;
        if !c.report.skipped {
            return Err("the unchanged tree was not skipped".into());
        }
        let p = run_ok("ssh", plain.ssh("true"))?;
        if i > 0 {
            same.cbx.push(c.total);
            c.parts(&mut same);
            same.base("ssh round trip, multiplexed").push(b.wall);
            plain_rt.push(p.wall);
        }
    }
    same.note = Some(format!(
        "repo_root + FileList::collect_cached + sync::sync (fingerprint match, no network) vs one round trip over cbx's multiplexed connection (the round trip a remote check would cost); vs a plain, unmultiplexed `ssh host true` ({}) the ratio is {:.2}×",
        fmt_secs(plain_rt.median()),
        same.cbx.median() / plain_rt.median()
    ));
    print_row(&same);
    rows.push(same);

    // One file changed: each copy is one rewritten file behind when it is synced.
    let mut one = Row::new(
        "data.one_file_sync",
        "data",
        format!("data: sync after 1 of {} files changed", o.files),
        Goal::Ratio(1.3),
    );
    let mut one_mux = Row::new(
        "data.one_file_sync_mux",
        "data",
        "  same, vs rsync over cbx's connection",
        Goal::None,
    );
    let n = std::cell::Cell::new(0u64);
    let change = || {
        n.set(n.get() + 1);
        touch_one(&tree, n.get(), file_size)
    };
    for i in 0..=o.proc {
        let synced = std::cell::RefCell::new(None);
        let t = rotate(
            i,
            &mut [
                &mut || {
                    change()?;
                    let r = sync_once("bench/cbx")?;
                    let took = r.total;
                    *synced.borrow_mut() = Some(r);
                    Ok(took)
                },
                &mut || {
                    change()?;
                    Ok(run_ok("rsync", plain.rsync(&tree, "bench/rsync"))?.wall)
                },
                &mut || {
                    change()?;
                    Ok(run_ok("rsync", mux_rsync(&client, &tree, "bench/mux"))?.wall)
                },
            ],
        )?;
        let c = synced.into_inner().expect("measured");
        if c.report.skipped || c.report.transferred != Some(1) {
            return Err(format!("one-file sync sent {:?} files", c.report.transferred).into());
        }
        if i > 0 {
            one.cbx.push(t[0]);
            c.parts(&mut one);
            one.base("git ls-files | rsync").push(t[1]);
            one_mux.cbx.push(t[0]);
            one_mux.base("the same over cbx's connection").push(t[2]);
        }
    }
    one.note = Some("cbx::sync after rewriting one file (fingerprint, prepare round trip, rsync over the multiplexed connection) vs git ls-files | rsync --files-from over plain ssh".into());
    one_mux.note = Some("the same cbx::sync vs the same git ls-files | rsync pipeline over cbx's multiplexed connection: what cbx adds to rsync itself".into());
    print_row(&one);
    print_row(&one_mux);
    rows.push(one);
    rows.push(one_mux);

    tar_rows(
        o,
        rows,
        &sync_with,
        &sandbox_home.join("bench"),
        &state,
        &change,
    )?;

    overlap::rows(o, rows, sim, home, &tree, &lease)?;

    // Last but one: its fallback rows revoke the access the rows above use.
    warm::rows(o, rows, sim, gateway, home, &lease, &sandbox)?;

    // Peak RSS of cbx run, syncing a changed file of the large tree.
    let mut rss = Row::new(
        "data.peak_rss",
        "data",
        "data: peak RSS of cbx run (syncs 1 file)",
        Goal::Max(50e6),
    );
    rss.unit = Unit::Bytes;
    if !Path::new(TIME).exists() {
        println!("data: peak RSS skipped ({TIME} is missing; tests/setup.sh installs it)");
        return Ok(());
    }
    let mut rss_warm = Samples::default();
    for i in 0..=o.proc.min(10) {
        change()?;
        let mut cmd = home.command(&["run", "--id", "bench", "--", "true"]);
        cmd.current_dir(&tree);
        let big = peak_rss(&cmd)?;
        let small = peak_rss(&home.command(&["run", "--id", "bench", "--", "true"]))?;
        if i > 0 {
            rss.cbx.0.push(big as f64);
            rss_warm.0.push(small as f64);
        }
    }
    rss.note = Some(format!(
        "GNU time's %M (ru_maxrss) of `cbx run --id X -- true` in the {}-file tree after changing one file: the largest of cbx and the children it waited for (git, ssh, rsync); a warm run in the 2-file repository peaks at {:.1} MB",
        o.files,
        rss_warm.median() / 1e6
    ));
    print_row(&rss);
    rows.push(rss);
    Ok(())
}

/// The tar transport (for sandboxes without rsync) vs rsync, both through `cbx::sync` over
/// cbx's connection: a first sync of the whole tree, and a sync after one file changed.
fn tar_rows(
    o: &Opts,
    rows: &mut Vec<Row>,
    sync_with: &dyn Fn(&str, &str, TransportChoice) -> Res<Synced>,
    bench_dir: &Path,
    state: &Path,
    change: &dyn Fn() -> Res<()>,
) -> Res<()> {
    let mut first = Row::new(
        "data.first_sync_tar",
        "data",
        "  first sync with tar, vs cbx with rsync",
        Goal::None,
    );
    let sent = |r: &Synced, want: u64, what: &str| -> Res<()> {
        if r.report.skipped || r.report.transferred != Some(want) {
            return Err(format!("{what} sent {:?} files", r.report.transferred).into());
        }
        Ok(())
    };
    for i in 0..=o.heavy {
        for dir in ["tar", "rs"] {
            let _ = std::fs::remove_dir_all(bench_dir.join(dir));
        }
        sync::forget(state, TAR_LEASE);
        sync::forget(state, RSYNC_LEASE);
        settle();
        let t = rotate(
            i,
            &mut [
                &mut || {
                    let r = sync_with("bench/tar", TAR_LEASE, TransportChoice::Tar)?;
                    sent(&r, o.files as u64 + 1, "first tar sync")?;
                    settle();
                    Ok(r.total)
                },
                &mut || {
                    let r = sync_with("bench/rs", RSYNC_LEASE, TransportChoice::Rsync)?;
                    settle();
                    Ok(r.total)
                },
            ],
        )?;
        if i > 0 {
            first.cbx.push(t[0]);
            first.base("cbx::sync with rsync").push(t[1]);
        }
    }
    let arrived = count_files(&bench_dir.join("tar"));
    if arrived != o.files + 1 {
        return Err(format!("tar left {arrived} files, expected {}", o.files + 1).into());
    }
    first.note = Some("cbx::sync with sync.transport = tar (one tar stream into `tar -x` on the sandbox) vs the same with rsync, both into an empty directory over cbx's multiplexed connection".into());
    print_row(&first);
    rows.push(first);

    let mut one = Row::new(
        "data.one_file_sync_tar",
        "data",
        "  sync after 1 file changed, tar vs rsync",
        Goal::None,
    );
    for i in 0..=o.proc {
        let t = rotate(
            i,
            &mut [
                &mut || {
                    change()?;
                    let r = sync_with("bench/tar", TAR_LEASE, TransportChoice::Tar)?;
                    sent(&r, 1, "one-file tar sync")?;
                    Ok(r.total)
                },
                &mut || {
                    change()?;
                    Ok(sync_with("bench/rs", RSYNC_LEASE, TransportChoice::Rsync)?.total)
                },
            ],
        )?;
        if i > 0 {
            one.cbx.push(t[0]);
            one.base("cbx::sync with rsync").push(t[1]);
        }
    }
    one.note = Some("cbx::sync with tar after rewriting one file (only files whose size, mode or modification time changed since the last sync are sent) vs the same with rsync".into());
    print_row(&one);
    rows.push(one);
    Ok(())
}

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            Ok(_) => 1,
            Err(_) => 0,
        })
        .sum()
}

// ---------------------------------------------------------------------------------------------

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default();
    let version = |cmd: &str, arg: &str| {
        Command::new(cmd)
            .arg(arg)
            .output()
            .ok()
            .map(|o| {
                let s = if o.stdout.is_empty() {
                    o.stderr
                } else {
                    o.stdout
                };
                String::from_utf8_lossy(&s)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .unwrap_or_default()
    };
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "kernel": version("uname", "-r"),
        "ssh": version("ssh", "-V"),
        "rsync": version("rsync", "--version"),
        "curl": version("curl", "--version"),
        "git": version("git", "--version"),
    })
}

fn json_path(o: &Opts) -> PathBuf {
    if let Some(p) = &o.json {
        return p.clone();
    }
    // The bench runs from <target>/<profile>/deps/.
    let target = std::env::current_exe()
        .ok()
        .and_then(|e| e.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("bench/overhead.json")
}

/// Puts every temporary file of the run (the synced tree, the sandbox homes, cbx homes) on
/// tmpfs, unless `--disk`: disk writeback on a shared machine adds seconds of noise to a first
/// sync and says nothing about cbx. Returns the directory to remove at the end.
fn use_tmpfs(o: &Opts) -> Option<PathBuf> {
    if o.disk || !Path::new("/dev/shm").is_dir() {
        return None;
    }
    // The tree, two copies of it on the sandbox and the homes; containers often have a small
    // /dev/shm.
    let needed = o.bytes * 4 + (256 << 20);
    let free = free_bytes(Path::new("/dev/shm")).unwrap_or(0);
    if free < needed {
        println!(
            "(temporary files on disk: /dev/shm has {} free, the run needs {})",
            sync::human_bytes(free),
            sync::human_bytes(needed)
        );
        return None;
    }
    let dir = PathBuf::from(format!("/dev/shm/cbx-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    // Sandbox users must reach their homes below it.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).ok()?;
    // SAFETY: called at the start of main, before any other thread exists.
    unsafe { std::env::set_var("TMPDIR", &dir) };
    Some(dir)
}

/// Bytes available to this user on the file system holding `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    let st = rustix::fs::statvfs(path).ok()?;
    Some(st.f_bavail * st.f_frsize)
}

fn main() -> std::process::ExitCode {
    let o = match Opts::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let scratch = use_tmpfs(&o);
    println!(
        "cbx overhead benchmark{} — medians of {} (processes), {} (first syncs), {} (provider calls) runs",
        if o.smoke {
            " (smoke: a few runs, figures not judged)"
        } else {
            ""
        },
        o.proc,
        o.heavy,
        o.micro
    );
    print_header();
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let groups: [(&str, Group); 3] = [
        ("provider", bench_provider),
        ("control", bench_control),
        ("data", bench_data),
    ];
    for (name, f) in groups {
        if !o.wants(name) {
            continue;
        }
        if let Err(e) = f(&o, &mut rows) {
            println!("{name}: ERROR {e}");
            errors.push(format!("{name}: {e}"));
        }
    }
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r.pass() == Some(false))
        .map(|r| r.id)
        .collect();
    let report = json!({
        "mode": if o.smoke { "smoke" } else { "full" },
        "runs": {"process": o.proc, "firstSync": o.heavy, "provider": o.micro, "coldCompile": o.cold},
        "tree": {"files": o.files, "bytes": o.bytes},
        "tmp": std::env::temp_dir(),
        "machine": machine(),
        "tookSeconds": started.elapsed().as_secs_f64(),
        "rows": rows.iter().map(Row::json).collect::<Vec<_>>(),
        "failed": failed,
        "errors": errors,
    });
    let path = json_path(&o);
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            std::fs::write(
                &path,
                serde_json::to_vec_pretty(&report).expect("serializable"),
            )
        });
    println!("{}", "-".repeat(132));
    match written {
        Ok(()) => println!("wrote {}", path.display()),
        Err(e) => {
            eprintln!("error: write {}: {e}", path.display());
            return std::process::ExitCode::FAILURE;
        }
    }
    println!(
        "{} rows, {} targets missed{}, {:.0} s",
        rows.len(),
        failed.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(" ({})", failed.join(", "))
        },
        started.elapsed().as_secs_f64()
    );
    if let Some(dir) = scratch {
        let _ = std::fs::remove_dir_all(dir);
    }
    if !errors.is_empty() {
        return std::process::ExitCode::FAILURE;
    }
    // The figures are judged by people (and docs/performance.md), not by the exit code: a
    // loaded CI machine must not fail a build. --smoke checks only that everything ran.
    std::process::ExitCode::SUCCESS
}
