//! Installing, pinning, approving, narrowing and auditing third-party providers, through the
//! real `cbx` binary: `cbx providers install/list/inspect/remove/audit` and loads that refuse
//! changed components or manifests asking for more than was approved.

use cbx_testkit::guests;
use cbx_testkit::home::{CbxHome, Output};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CBX: &str = env!("CARGO_BIN_EXE_cbx");
const SECRET: &str = "probe-secret-value-123";

/// A home with XDG_DATA_HOME inside it, the probe component and a manifest granting `api`.
struct Setup {
    home: CbxHome,
    rt: tokio::runtime::Runtime,
    server: MockServer,
}

fn manifest(api: &str) -> String {
    format!(
        r#"[provider]
name = "probe"
description = "test probe"

[endpoints.api]
url = "{api}"
description = "the probe's API"

[credentials.key]
env = "PROBE_KEY"
endpoint = "api"
header = "Authorization"
format = "Bearer {{value}}"
"#
    )
}

impl Setup {
    fn new() -> Setup {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let server = rt.block_on(MockServer::start());
        rt.block_on(
            Mock::given(method("GET"))
                .and(path("/api/hello"))
                .respond_with(ResponseTemplate::new(200).set_body_string("hi"))
                .mount(&server),
        );
        let mut home = CbxHome::new(CBX);
        let data = home.path().join("data");
        home.env("XDG_DATA_HOME", data.to_str().unwrap())
            .env("PROBE_KEY", SECRET);
        let dir = home.cwd.join("dist");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(guests::path("probe"), dir.join("probe.wasm")).unwrap();
        std::fs::write(
            dir.join("cbx-provider.toml"),
            manifest(&format!("{}/api", server.uri())),
        )
        .unwrap();
        Setup { home, rt, server }
    }

    fn cbx(&self, args: &[&str]) -> Output {
        self.home.run(args)
    }

    fn install(&self) -> Output {
        self.cbx(&["providers", "install", "dist/probe.wasm", "--yes"])
    }

    fn installed_dir(&self) -> std::path::PathBuf {
        self.home.path().join("data/cbx/providers/probe")
    }

    fn requests(&self) -> usize {
        self.rt
            .block_on(self.server.received_requests())
            .unwrap_or_default()
            .len()
    }
}

#[test]
fn install_shows_the_request_records_approval_and_the_provider_works() {
    let s = Setup::new();
    // Without --yes and without a terminal, nothing is installed.
    let refused = s.cbx(&["providers", "install", "dist/probe.wasm"]);
    refused.expect_code(7);
    assert!(refused.stdout.contains("It asks for ("), "{refused}");
    assert!(refused.stderr.contains("rerun with --yes"), "{refused}");
    assert!(!s.installed_dir().exists());

    let out = s.install();
    out.ok();
    assert!(
        out.stdout
            .contains(&format!("network: requests under {}/api", s.server.uri())),
        "{out}"
    );
    assert!(out.stdout.contains("credential `key`: the value of PROBE_KEY sent as `Authorization: Bearer …` only to endpoint `api`"), "{out}");
    assert!(out.stdout.contains("installed probe "), "{out}");
    let grants =
        std::fs::read_to_string(s.home.config_file().with_file_name("grants.toml")).unwrap();
    assert!(
        grants.contains("[providers.probe]") && grants.contains("sha256 = "),
        "{grants}"
    );

    let list = s.cbx(&["providers", "list", "--json"]);
    list.ok();
    let entries = list.json();
    let probe = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "probe")
        .unwrap();
    assert_eq!(probe["status"], "approved");
    assert_eq!(probe["digest"].as_str().unwrap().len(), 64);
    assert!(
        entries
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "daytona")
    );

    let inspect = s.cbx(&["providers", "inspect", "probe", "--json"]);
    inspect.ok();
    let v = inspect.json();
    assert!(
        v["approval"].as_str().unwrap().starts_with("approved"),
        "{v}"
    );
    assert_eq!(
        v["grant"]["endpoints"][0]["url"],
        format!("{}/api", s.server.uri())
    );
    assert_eq!(v["grant"]["credentials"][0]["attached"], true);
    assert!(
        v["imports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "cbx:provider/http@0.1.0")
    );

    // It runs, its request carries the credential, and the audit log records it by name.
    let url = format!("url={}/api/hello", s.server.uri());
    let doctor = s.cbx(&[
        "--provider",
        "probe",
        "-o",
        "action=http",
        "-o",
        &url,
        "doctor",
    ]);
    doctor.ok();
    let received = s.rt.block_on(s.server.received_requests()).unwrap();
    assert_eq!(
        received[0].headers.get("authorization").unwrap(),
        &format!("Bearer {SECRET}")
    );
    let audit = s.cbx(&["providers", "audit", "--json", "--of", "probe"]);
    audit.ok();
    let record: serde_json::Value =
        serde_json::from_str(audit.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(record["kind"], "request");
    assert_eq!(record["operation"], "doctor");
    assert_eq!(record["status"], 200);
    assert_eq!(record["credentials"][0], "key");
    let human = s.cbx(&["providers", "audit"]);
    human.ok();
    assert!(human.stdout.contains("GET http://127.0.0.1"), "{human}");

    s.home.assert_secret_absent(
        SECRET,
        &[&out, &list, &inspect, &doctor, &audit, &human],
        &[],
    );
}

#[test]
fn a_changed_component_or_a_wider_manifest_is_refused_until_approved_again() {
    let s = Setup::new();
    s.install().ok();
    let dir = s.installed_dir();

    // The manifest asks for another endpoint.
    let original = std::fs::read_to_string(dir.join("cbx-provider.toml")).unwrap();
    std::fs::write(
        dir.join("cbx-provider.toml"),
        format!("{original}\n[endpoints.more]\nurl = \"https://more.example\"\n"),
    )
    .unwrap();
    let out = s.cbx(&["--provider", "probe", "doctor"]);
    out.expect_code(7);
    assert!(
        out.stdout
            .contains("asks for more than you approved: a new endpoint `more`"),
        "{out}"
    );
    let list = s.cbx(&["providers", "list", "--json"]).json();
    assert!(
        list.to_string().contains("asks for more: needs approval"),
        "{list}"
    );
    // The reviewer can still inspect it, under an empty grant.
    let inspect = s.cbx(&["providers", "inspect", "probe"]);
    inspect.ok();
    assert!(inspect.stdout.contains("REFUSED"), "{inspect}");
    std::fs::write(dir.join("cbx-provider.toml"), &original).unwrap();
    s.cbx(&["--provider", "probe", "doctor"]).ok();

    // The component changes (another component in its place).
    std::fs::copy(guests::path("probe"), s.home.cwd.join("probe-copy.wasm")).unwrap();
    let mut bytes = std::fs::read(dir.join("provider.wasm")).unwrap();
    bytes.extend_from_slice(b"\0"); // still a different digest
    std::fs::write(dir.join("provider.wasm"), &bytes).unwrap();
    let out = s.cbx(&["--provider", "probe", "list"]);
    out.expect_code(7);
    assert!(
        out.stderr
            .contains("provider probe changed since you approved it"),
        "{out}"
    );
    assert!(
        out.stderr.contains("hint: review and approve it again"),
        "{out}"
    );

    // Commands on a lease, whose warm path does not load the provider, refuse it as well,
    // with the same exit code and words (its description is cached by now).
    for args in [
        &[
            "--provider",
            "probe",
            "run",
            "--id",
            "some-lease",
            "--no-sync",
            "--",
            "true",
        ][..],
        &["--provider", "probe", "ssh", "some-lease", "--", "true"][..],
    ] {
        let warm = s.cbx(args);
        warm.expect_code(7);
        assert!(
            warm.stderr
                .contains("provider probe changed since you approved it")
                && warm.stderr.contains("hint: review and approve it again"),
            "{warm}"
        );
    }

    // Reinstalling (a review and approval) makes it usable again.
    s.install().ok();
    s.cbx(&["--provider", "probe", "doctor"]).ok();

    let removed = s.cbx(&["providers", "remove", "probe"]);
    removed.ok();
    assert!(!dir.exists());
    let gone = s.cbx(&["--provider", "probe", "list"]);
    gone.expect_code(2);
    assert!(gone.stderr.contains("unknown provider `probe`"), "{gone}");
    s.cbx(&["providers", "remove", "probe"]).expect_code(4);
    s.cbx(&["providers", "remove", "daytona"]).expect_code(2);
}

#[test]
fn ssh_destinations_are_shown_pinned_and_refused_when_wider_until_approved_again() {
    let s = Setup::new();
    let dist = s.home.cwd.join("dist/cbx-provider.toml");
    let original = std::fs::read_to_string(&dist).unwrap();
    let with_ssh =
        |ssh: &str| format!("{original}\n[ssh]\ndestinations = [{ssh}]\nenv = \"PROBE_SSH\"\n");
    std::fs::write(&dist, with_ssh("\"*.gw.example:22\"")).unwrap();
    let out = s.install();
    out.ok();
    assert!(
        out.stdout.contains(
            "ssh: your files, commands and --env values may be sent to *.gw.example:22; you may point it elsewhere with PROBE_SSH"
        ),
        "{out}"
    );
    assert!(
        out.stdout.contains("ssh key: none (it may never pick one)"),
        "{out}"
    );
    let grants =
        std::fs::read_to_string(s.home.config_file().with_file_name("grants.toml")).unwrap();
    assert!(
        grants.contains("[providers.probe.ssh]\ndestinations = [\"*.gw.example:22\"]"),
        "{grants}"
    );

    // inspect shows the declaration and the effective grant, with where each came from.
    let inspect = s.cbx(&["providers", "inspect", "probe"]);
    inspect.ok();
    assert!(
        inspect
            .stdout
            .contains("ssh destination *.gw.example:22 (override: PROBE_SSH)"),
        "{inspect}"
    );
    assert!(
        inspect.stdout.contains(
            "may send your files, commands and --env values over SSH to *.gw.example:22 (from manifest default)"
        ),
        "{inspect}"
    );
    assert!(inspect.stdout.contains("ssh agent: not used"), "{inspect}");
    let json = s
        .home
        .run_with_env(
            &["providers", "inspect", "probe", "--json"],
            &[("PROBE_SSH", "127.0.0.1:2222")],
        )
        .json();
    assert_eq!(
        json["manifest"]["ssh"]["destinations"][0],
        "*.gw.example:22"
    );
    assert_eq!(json["manifest"]["ssh"]["env"], "PROBE_SSH");
    assert_eq!(
        json["approved"]["ssh"]["destinations"][0],
        "*.gw.example:22"
    );
    assert_eq!(
        json["grant"]["ssh"]["destinations"][0],
        serde_json::json!({"destination": "127.0.0.1:2222", "source": {"kind": "env", "where": "PROBE_SSH"}})
    );
    assert_eq!(json["grant"]["ssh"]["agent"], false);

    // A manifest asking for a wider destination set is refused until approved again.
    let dir = s.installed_dir();
    std::fs::write(
        dir.join("cbx-provider.toml"),
        with_ssh("\"*.gw.example:22\", \"127.0.0.2:2222\""),
    )
    .unwrap();
    let out = s.cbx(&["--provider", "probe", "doctor"]);
    out.expect_code(7);
    assert!(
        out.stdout
            .contains("asks for more than you approved: SSH destination `127.0.0.2:2222`"),
        "{out}"
    );
    // A narrower one asks for nothing more, yet it is a changed manifest: approve it again.
    std::fs::write(
        dir.join("cbx-provider.toml"),
        with_ssh("\"eu.gw.example:22\""),
    )
    .unwrap();
    let out = s.cbx(&["--provider", "probe", "doctor"]);
    out.expect_code(7);
    assert!(
        out.stdout
            .contains("manifest changed since you approved it"),
        "{out}"
    );
    // Reinstalling it shows the change of destinations in cbx's words (the installed copy put
    // back as approved, so cbx can tell what changed).
    std::fs::write(
        dir.join("cbx-provider.toml"),
        with_ssh("\"*.gw.example:22\""),
    )
    .unwrap();
    std::fs::write(&dist, with_ssh("\"eu.gw.example:22\"")).unwrap();
    let out = s.install();
    out.ok();
    for change in [
        "Changed since you approved it:",
        "  + ssh destination `eu.gw.example:22`: may receive your files, commands and --env values",
        "  - ssh destination `*.gw.example:22`: may receive your files, commands and --env values",
    ] {
        assert!(out.stdout.lines().any(|l| l == change), "{change}\n{out}");
    }
    s.cbx(&["--provider", "probe", "doctor"]).ok();

    // Only the user's own config may move or narrow them; a grant can only narrow.
    s.home
        .write_config("[providers.probe.grant]\nssh-destinations = [\"127.0.0.2:2222\"]\n");
    let out = s.cbx(&["--provider", "probe", "doctor"]);
    out.expect_code(2);
    assert!(
        out.stdout.contains("grant lists SSH destination `127.0.0.2:2222`, which is not within provider probe's SSH destinations (eu.gw.example:22); a grant can only narrow them"),
        "{out}"
    );
    s.home.write_config("");
    s.home.write_file(
        "cbx.toml",
        "[providers.probe.ssh]\ndestinations = [\"127.0.0.2:2222\"]\n",
    );
    let out = s.cbx(&["--provider", "probe", "doctor"]);
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("a repository's cbx.toml may not set providers.probe.ssh"),
        "{out}"
    );
}

#[test]
fn user_config_narrows_a_grant_and_cannot_widen_it() {
    let s = Setup::new();
    s.install().ok();
    let url = format!("url={}/api/hello", s.server.uri());
    s.home
        .write_config("[providers.probe.grant]\nendpoints = []\n");
    let out = s.cbx(&[
        "--provider",
        "probe",
        "-o",
        "action=http",
        "-o",
        &url,
        "doctor",
    ]);
    out.expect_code(7);
    assert!(
        out.stdout
            .contains("its grant allows no network access at all"),
        "{out}"
    );
    assert_eq!(s.requests(), 0, "nothing left the machine");
    let denied = s.cbx(&["providers", "audit", "--json", "--of", "probe"]);
    assert!(denied.stdout.contains("\"kind\":\"denied\""), "{denied}");

    s.home
        .write_config("[providers.probe.grant]\ncredentials = []\n");
    s.cbx(&[
        "--provider",
        "probe",
        "-o",
        "action=http",
        "-o",
        &url,
        "doctor",
    ])
    .ok();
    let received = s.rt.block_on(s.server.received_requests()).unwrap();
    assert!(
        received[0].headers.get("authorization").is_none(),
        "a narrowed-away credential is not attached"
    );

    s.home
        .write_config("[providers.probe.grant]\nendpoints = [\"api\", \"elsewhere\"]\n");
    let out = s.cbx(&["--provider", "probe", "doctor"]);
    out.expect_code(2);
    assert!(out.stdout.contains("grant lists endpoint `elsewhere`, which provider probe does not declare; a grant can only narrow"), "{out}");
}

#[test]
fn installing_from_a_url_needs_and_checks_a_digest() {
    let s = Setup::new();
    let wasm = guests::bytes("probe");
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&wasm))
    };
    let manifest_text = manifest(&format!("{}/api", s.server.uri()));
    s.rt.block_on(async {
        Mock::given(method("GET"))
            .and(path("/dl/probe.wasm"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(wasm.clone()))
            .mount(&s.server)
            .await;
        Mock::given(method("GET"))
            .and(path("/dl/cbx-provider.toml"))
            .respond_with(ResponseTemplate::new(200).set_body_string(manifest_text.clone()))
            .mount(&s.server)
            .await;
    });
    let url = format!("{}/dl/probe.wasm", s.server.uri());
    let out = s.cbx(&["providers", "install", &url, "--yes"]);
    out.expect_code(2);
    assert!(out.stderr.contains("needs --sha256"), "{out}");
    let wrong = "0".repeat(64);
    let out = s.cbx(&["providers", "install", &url, "--sha256", &wrong, "--yes"]);
    out.expect_code(7);
    assert!(out.stderr.contains("nothing was installed"), "{out}");
    assert!(!s.installed_dir().exists());
    let out = s.cbx(&["providers", "install", &url, "--sha256", &digest, "--yes"]);
    out.ok();
    assert!(
        out.stdout
            .contains(&format!("installed probe 0.1.0 (sha256 {digest})")),
        "{out}"
    );
}

#[test]
fn a_component_for_another_contract_version_is_refused() {
    let s = Setup::new();
    // A minimal component that exports the provider interface of contract 0.2.0.
    let wat = r#"(component
        (core module $m (func (export "f")))
        (core instance $i (instantiate $m))
        (func $f (canon lift (core func $i "f")))
        (instance $inst (export "describe" (func $f)))
        (export "cbx:provider/provider@0.2.0" (instance $inst))
    )"#;
    let bytes = wat::parse_str(wat).unwrap();
    std::fs::write(s.home.cwd.join("dist/probe.wasm"), bytes).unwrap();
    let out = s.install();
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("built against cbx:provider@0.2.0; this cbx supports cbx:provider@0.1.x"),
        "{out}"
    );
    assert!(!s.installed_dir().exists());

    // Not a component at all.
    std::fs::write(s.home.cwd.join("dist/probe.wasm"), b"not wasm").unwrap();
    let out = s.install();
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("compile the provider component"),
        "{out}"
    );
}

#[test]
fn a_manifest_error_points_at_the_line() {
    let s = Setup::new();
    let bad =
        manifest("https://api.example.com").replace("endpoint = \"api\"", "endpoint = \"apii\"");
    std::fs::write(s.home.cwd.join("dist/cbx-provider.toml"), bad).unwrap();
    let out = s.install();
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("cbx-provider.toml:11:12: credential `key` is bound to endpoint `apii`"),
        "{out}"
    );
}

#[test]
fn the_conformance_test_reports_a_provider_that_does_not_conform() {
    let s = Setup::new();
    s.install().ok();
    let out = s.cbx(&[
        "--provider",
        "probe",
        "providers",
        "test",
        "--timeout",
        "2s",
    ]);
    out.expect_code(8);
    assert!(out.stdout.contains("probe: does NOT conform"), "{out}");
    // The probe keeps no labels, mints no SSH access and never goes away.
    assert!(
        out.stderr
            .contains("fail  get              label `cbx-conformance` given at create is missing"),
        "{out}"
    );
    assert!(out.stderr.contains("fail  ssh-access"), "{out}");
    assert!(
        out.stderr.contains("fail  gone             still ")
            && out
                .stderr
                .contains("after deletion: get must answer not-found"),
        "{out}"
    );
    assert!(out.stderr.contains("pass  describe"), "{out}");
}

#[test]
fn the_provider_template_installs_and_conforms() {
    use cbx_testkit::daytona_sim::{DaytonaSim, SimConfig};
    let sim = DaytonaSim::start_background(
        SimConfig::default().with_delays(std::time::Duration::from_millis(100)),
    )
    .unwrap();
    let mut home = CbxHome::new(CBX);
    let data = home.path().join("data");
    home.env("XDG_DATA_HOME", data.to_str().unwrap())
        .env("TEMPLATE_API_KEY", &sim.api_key())
        .env("TEMPLATE_API_URL", &sim.api_url())
        .env("TEMPLATE_SSH_GATEWAY", &sim.ssh_gateway());
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../providers/template/cbx-provider.toml");
    let wasm = guests::path("template");
    let out = home.run(&[
        "providers",
        "install",
        wasm.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
        "--yes",
    ]);
    out.ok();
    assert!(
        out.stdout.contains("WASI: clocks and randomness only"),
        "{out}"
    );
    assert!(
        out.stdout.contains(
            "ssh: your files, commands and --env values may be sent to ssh.example.com:22; you may point it elsewhere with TEMPLATE_SSH_GATEWAY"
        ),
        "{out}"
    );
    let test = home.run(&[
        "--provider",
        "template",
        "providers",
        "test",
        "--timeout",
        "30s",
    ]);
    test.ok();
    assert!(test.stdout.contains("template: conforms"), "{test}");
    // And the real flow.
    let warm = home.run(&[
        "--provider",
        "template",
        "warmup",
        "--slug",
        "tpl",
        "--json",
    ]);
    warm.ok();
    home.run(&["--provider", "template", "status", "tpl"]).ok();
    home.run(&["--provider", "template", "stop", "tpl"]).ok();
    home.assert_secret_absent(&sim.api_key(), &[&out, &test, &warm], &[]);
}

/// An approval an earlier cbx wrote, without the manifest's hash, still loads — and is
/// refused, saying why, until the user approves the provider again (docs/security.md).
#[test]
fn an_approval_that_does_not_pin_the_manifest_must_be_given_again() {
    let s = Setup::new();
    s.install().ok();
    let grants = s.home.config_file().with_file_name("grants.toml");
    let mut file: toml::Table = std::fs::read_to_string(&grants).unwrap().parse().unwrap();
    let probe = file["providers"]["probe"].as_table().unwrap().clone();
    let mut earlier = probe.clone();
    for key in ["manifest-sha256", "wasi", "options"] {
        assert!(earlier.remove(key).is_some(), "no {key} in {probe}");
    }
    file["providers"]
        .as_table_mut()
        .unwrap()
        .insert("probe".into(), earlier.into());
    std::fs::write(&grants, toml::to_string(&file).unwrap()).unwrap();

    let out = s.cbx(&["--provider", "probe", "doctor"]);
    out.expect_code(7);
    assert!(
        out.stdout.contains(
            "provider probe was approved by an earlier cbx that did not pin its manifest"
        ),
        "{out}"
    );
    let list = s.cbx(&["providers", "list", "--json"]).json();
    assert!(
        list.to_string().contains("changed: needs approval"),
        "{list}"
    );

    let out = s.cbx(&["providers", "install", "dist/probe.wasm"]);
    out.expect_code(7);
    assert!(
        out.stdout
            .contains("! the earlier approval does not pin a manifest cbx still has"),
        "{out}"
    );
    s.install().ok();
    s.cbx(&["--provider", "probe", "doctor"]).ok();
    let pinned = std::fs::read_to_string(&grants).unwrap();
    assert!(pinned.contains("manifest-sha256 = "), "{pinned}");
}
