//! End-to-end tests of the built-in `ssh` provider: the real `cbx` binary leasing an existing
//! host — a real sshd on loopback that accepts only public-key logins — with real `ssh` and
//! `rsync`, and a provider component whose grant is empty.
//!
//! The lease tests need root (they create a throwaway system user with an authorized key);
//! elsewhere they print why they are skipped. CI runs them as root. The checks of the grant
//! and of the options run anywhere.

use std::path::{Path, PathBuf};

use cbx_testkit::home::{CbxHome, Output};
use cbx_testkit::sshd::{SshUser, Sshd, SshdGateway};

const CBX: &str = env!("CARGO_BIN_EXE_cbx");

/// An sshd with a key-only user, a cbx home whose user config points the ssh provider at it,
/// and a git repository as working directory.
struct World {
    sshd: Sshd,
    user: SshUser,
    home: CbxHome,
}

impl World {
    fn new() -> Option<World> {
        if let Some(why) = SshdGateway::unavailable() {
            eprintln!("skipping ssh provider test: {why}");
            return None;
        }
        let sshd = Sshd::start_with_pubkey().expect("start sshd");
        let user = SshUser::create().expect("create ssh user");
        let home = CbxHome::new(CBX);
        home.write_config(&format!(
            "[providers.ssh.options]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"{user}\"\n\
             identity-file = \"{key}\"\n",
            port = sshd.port(),
            user = user.name(),
            key = user.key().display(),
        ));
        let world = World { sshd, user, home };
        world.git(&["init", "-q"]);
        world.write("file", "hello from the repo\n");
        world.write(".gitignore", "target/\n");
        world.write("target/junk", "ignored\n");
        world.git(&["add", "."]);
        Some(world)
    }

    fn repo(&self) -> &Path {
        &self.home.cwd
    }

    fn write(&self, rel: &str, text: &str) {
        self.home.write_file(rel, text);
    }

    fn git(&self, args: &[&str]) {
        self.home.git(args);
    }

    /// `cbx --provider ssh args…`.
    fn cbx(&self, args: &[&str]) -> Output {
        let mut all = vec!["--provider", "ssh"];
        all.extend_from_slice(args);
        let out = self.home.run(&all);
        if out.code != 0 && out.code != 3 {
            eprintln!("sshd log:\n{}", self.sshd.log());
        }
        out
    }

    /// Where `lease`'s work directory for this repository is on the host.
    fn remote_workdir(&self, lease: &str) -> PathBuf {
        self.user
            .home()
            .join("cbx")
            .join(lease)
            .join(self.repo().file_name().unwrap())
    }
}

#[test]
fn a_lease_on_an_existing_host_warms_runs_and_stops() {
    let Some(w) = World::new() else { return };

    let out = w.cbx(&["doctor"]);
    out.ok();
    assert!(
        out.stdout
            .contains(&format!("{}@127.0.0.1:{}", w.user.name(), w.sshd.port())),
        "{out}"
    );

    let out = w.cbx(&["warmup", "--slug", "box"]);
    out.ok();
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("leased "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("slug=box provider=ssh sandbox=cbx-box-"),
        "{out}"
    );
    let lease = line.split_whitespace().nth(1).unwrap().to_string();
    assert!(lease.starts_with("cbx_") && lease.len() == 16, "{lease}");
    let sandbox = line.split("sandbox=").nth(1).unwrap().trim().to_string();
    assert!(
        sandbox.len() < 100,
        "the sandbox id stays compact: {sandbox}"
    );

    // Listed from the local claim (the provider lists nothing), with the labels from its id.
    let out = w.cbx(&["list", "--json"]);
    out.ok();
    let leases = out.json();
    let leases = leases.as_array().unwrap();
    assert_eq!(leases.len(), 1, "{out}");
    assert_eq!(leases[0]["leaseId"], lease.as_str());
    assert_eq!(leases[0]["slug"], "box");
    assert_eq!(leases[0]["sandboxId"], sandbox.as_str());
    let out = w.cbx(&["list"]);
    out.ok();
    assert!(out.stdout.contains("box"), "{out}");

    let out = w.cbx(&["status", "box"]);
    out.ok();
    assert!(out.stdout.contains(&lease), "{out}");
    assert!(out.stdout.contains("ready"), "{out}");

    // run syncs the tree, runs in the work directory and passes the exit code through.
    let out = w.cbx(&["run", "--id", "box", "--", "sh", "-c", "cat file; exit 3"]);
    out.expect_code(3);
    assert!(out.stdout.contains("hello from the repo"), "{out}");
    assert!(out.stderr.contains("synced"), "{out}");
    let wd = w.remote_workdir(&lease);
    assert_eq!(
        std::fs::read_to_string(wd.join("file")).unwrap(),
        "hello from the repo\n"
    );
    assert!(
        !wd.join("target/junk").exists(),
        "ignored files are not synced"
    );

    // Nothing changed: the second run skips the sync.
    let out = w.cbx(&["run", "--id", "box", "--", "true"]);
    out.ok();
    assert!(
        out.stderr.contains("no changes since the last sync"),
        "{out}"
    );

    let out = w.cbx(&["ssh", "box", "--", "cat", "file"]);
    out.ok();
    assert_eq!(out.stdout, "hello from the repo\n", "{out}");

    // Pointed at another port, the lease is not used: it belongs to the host it was made on.
    let out = w.cbx(&["-o", "port=1", "run", "--id", "box", "--", "true"]);
    out.expect_code(5);
    assert!(
        out.stderr.contains("another SSH host, port or user"),
        "{out}"
    );

    // stop releases the lease at once (nothing to wait for: the host stays) and forgets it.
    let started = std::time::Instant::now();
    let out = w.cbx(&["stop", "box"]);
    out.ok();
    assert!(
        out.stdout.contains(&format!("released {lease} slug=box")),
        "{out}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{out}"
    );
    let out = w.cbx(&["list", "--json"]);
    out.ok();
    assert_eq!(out.json(), serde_json::json!([]), "{out}");
    w.cbx(&["status", "box"]).expect_code(4);
    // The host is not a sandbox cbx created: its files, the synced work directory included,
    // stay where they are.
    assert_eq!(
        std::fs::read_to_string(wd.join("file")).unwrap(),
        "hello from the repo\n"
    );
}

#[test]
fn a_one_shot_run_works_and_leaves_no_lease() {
    let Some(w) = World::new() else { return };
    let out = w.cbx(&["run", "--", "sh", "-c", "cat file && true"]);
    out.ok();
    assert!(out.stdout.contains("hello from the repo"), "{out}");
    let out = w.cbx(&["run", "--", "true"]);
    out.ok();
    let out = w.cbx(&["list", "--json"]);
    out.ok();
    assert_eq!(out.json(), serde_json::json!([]), "{out}");
}

#[test]
fn a_refused_login_fails_fast_with_ssh_s_message() {
    let Some(w) = World::new() else { return };
    let wrong = w.home.path().join("wrong_key");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&wrong)
        .status()
        .unwrap();
    assert!(status.success());
    let key = format!("identity-file={}", wrong.display());
    w.cbx(&["-o", &key, "warmup", "--slug", "nokey"]).ok();
    let started = std::time::Instant::now();
    let out = w.cbx(&["-o", &key, "run", "--id", "nokey", "--", "true"]);
    out.expect_code(5);
    assert!(out.stderr.contains("Permission denied"), "{out}");
    // Piped stderr gets one line for the whole wait, then the result: no line per attempt.
    assert_eq!(
        out.stderr
            .matches("connecting over SSH to 127.0.0.1")
            .count(),
        1,
        "{out}"
    );
    assert!(!out.stderr.contains("(attempt"), "{out}");
    // An existing host does not come up later: cbx does not wait two minutes for it.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "{out}"
    );
    w.cbx(&["stop", "nokey"]).ok();
}

#[test]
fn the_ssh_provider_has_an_empty_grant_and_imports_only_the_contract() {
    let home = CbxHome::new(CBX);
    let out = home.run(&["providers", "inspect", "ssh", "--json"]);
    out.ok();
    let v = out.json();
    assert_eq!(v["name"], "ssh");
    assert_eq!(v["origin"]["kind"], "builtin");
    assert_eq!(v["manifest"]["endpoints"], serde_json::json!([]));
    assert_eq!(v["manifest"]["credentials"], serde_json::json!([]));
    assert_eq!(v["grant"]["endpoints"], serde_json::json!([]));
    assert_eq!(v["grant"]["credentials"], serde_json::json!([]));
    assert_eq!(v["wasi"], false);
    let imports = v["imports"].as_array().unwrap();
    assert!(
        imports
            .iter()
            .all(|i| i["name"].as_str().unwrap().starts_with("cbx:provider/")),
        "{out}"
    );
    assert!(
        !imports
            .iter()
            .any(|i| i["name"] == "cbx:provider/http@0.1.0"),
        "the ssh provider never imports http: {out}"
    );
    let options: Vec<&str> = v["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        options,
        ["host", "port", "user", "identity-file", "work-root"]
    );

    let out = home.run(&["providers", "inspect", "ssh"]);
    out.ok();
    assert!(out.stdout.contains("no network access"), "{out}");

    let out = home.run(&["providers", "list"]);
    out.ok();
    assert!(out.stdout.contains("daytona"), "{out}");
    assert!(out.stdout.contains("ssh"), "{out}");
}

#[test]
fn a_missing_host_is_a_usage_error_naming_the_option() {
    let home = CbxHome::new(CBX);
    home.write_config("[providers.ssh.options]\nuser = \"dev\"\n");
    for args in [
        &["--provider", "ssh", "warmup"][..],
        &["--provider", "ssh", "run", "--no-sync", "--", "true"][..],
    ] {
        let out = home.run(args);
        out.expect_code(2);
        assert!(out.stderr.contains("option host is not set"), "{out}");
        assert!(out.stderr.contains("-o host="), "{out}");
        assert!(out.stderr.contains("[providers.ssh.options]"), "{out}");
    }
    let out = home.run(&["--provider", "ssh", "-o", "host=127.0.0.1", "doctor"]);
    assert!(out.stdout.contains("dev@127.0.0.1:22"), "{out}");
    let out = home.run(&["--provider", "ssh", "-o", "host=-oProxyCommand=x", "warmup"]);
    out.expect_code(2);
    assert!(out.stderr.contains("option host must be"), "{out}");
}

#[test]
fn the_key_file_is_checked_before_anything_connects() {
    // Runs anywhere: nothing connects. A TCP listener stands where the host would be.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let home = CbxHome::new(CBX);
    home.git(&["init", "-q"]);
    home.write_file("file", "x\n");
    let loose = home.path().join("loose_key");
    std::fs::write(&loose, "not really a key\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let loose = loose.display().to_string();
    for (key, says) in [
        ("/etc/shadow", "is under /etc, where no SSH key belongs"),
        ("/proc/self/environ", "is under /proc"),
        ("~/.ssh/id_ed25519\\", "ends with a backslash"),
        ("~/.ssh/missing", "cannot be read"),
        (
            loose.as_str(),
            "can be read or written by group or others (mode 644)",
        ),
    ] {
        home.write_config(&format!(
            "[providers.ssh.options]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"dev\"\nidentity-file = '{key}'\n"
        ));
        let started = std::time::Instant::now();
        let out = home.run(&["--provider", "ssh", "run", "--", "true"]);
        out.expect_code(2);
        assert!(
            out.stderr.contains(&format!(
                "the SSH key file {key:?} (option `identity-file` of provider ssh, from user config {}:5) {says}",
                home.config_file().display()
            )),
            "{out}"
        );
        assert!(out.stderr.contains("hint: "), "{out}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{key}: cbx waited\n{out}"
        );
    }
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("something connected: {other:?}"),
    }
    assert!(!home.state_dir().join("known_hosts").exists());
}

#[test]
fn the_destination_is_only_the_users_options_and_inspect_says_so() {
    let home = CbxHome::new(CBX);
    home.write_config(
        "[providers.ssh.options]\nhost = \"build.example\"\nport = 2200\nuser = \"dev\"\nidentity-file = \"~/.ssh/id_ed25519\"\n",
    );
    let out = home.run(&["providers", "inspect", "ssh", "--json"]);
    out.ok();
    let ssh = &out.json()["grant"]["ssh"];
    assert_eq!(
        ssh["basis"],
        serde_json::json!({"kind": "options", "host": "host", "port": "port"})
    );
    assert_eq!(ssh["destinations"][0]["destination"], "build.example:2200");
    assert_eq!(ssh["destinations"][0]["source"]["kind"], "userConfig");
    assert_eq!(ssh["identity"]["path"], "~/.ssh/id_ed25519");
    assert_eq!(ssh["agent"], false);
    let out = home.run(&["providers", "inspect", "ssh"]);
    out.ok();
    assert!(
        out.stdout
            .contains("ssh destination from your options `host` and `port`"),
        "{out}"
    );
    assert!(
        out.stdout.contains(
            "may send your files, commands and --env values over SSH to build.example:2200"
        ),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("SSH key: ~/.ssh/id_ed25519 (from user config"),
        "{out}"
    );

    // The destination cannot be moved by configuration other than the options.
    home.write_config(
        "[providers.ssh.options]\nhost = \"build.example\"\nuser = \"dev\"\n[providers.ssh.ssh]\ndestinations = [\"evil.example:22\"]\n",
    );
    let out = home.run(&["--provider", "ssh", "warmup"]);
    out.expect_code(2);
    assert!(
        out.stderr.contains(
            "sets SSH destinations for provider ssh, which takes its SSH destination from your options `host` and `port`"
        ),
        "{out}"
    );
}

/// A key with a passphrase, unlocked in the user's ssh-agent: cbx does not use the agent
/// unless the user opts in (`[providers.ssh.ssh] agent = true`).
#[test]
fn the_agent_is_used_only_when_the_user_opts_in() {
    let Some(w) = World::new() else { return };
    let ssh_dir = w.home.path().join(".ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    let locked = ssh_dir.join("locked");
    std::fs::copy(w.user.key(), &locked).unwrap();
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-p", "-P", "", "-N", "agent-passphrase", "-f"])
        .arg(&locked)
        .status()
        .unwrap();
    assert!(status.success());
    let agent = Agent::start(w.home.path(), &locked);
    let options = format!(
        "[providers.ssh.options]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"{user}\"\nidentity-file = \"~/.ssh/locked\"\n",
        port = w.sshd.port(),
        user = w.user.name(),
    );
    w.home.write_config(&options);
    let sock = agent.socket.display().to_string();
    let run = |args: &[&str]| {
        let mut all = vec!["--provider", "ssh"];
        all.extend_from_slice(args);
        w.home
            .run_with_env(&all, &[("SSH_AUTH_SOCK", sock.as_str())])
    };
    run(&["warmup", "--slug", "agent"]).ok();
    let out = run(&["run", "--id", "agent", "--", "true"]);
    out.expect_code(5);
    assert!(
        !w.sshd.log().contains("Accepted publickey"),
        "the agent was used without the user's opt-in:\n{}",
        w.sshd.log()
    );
    w.home
        .write_config(&format!("{options}[providers.ssh.ssh]\nagent = true\n"));
    let out = run(&["run", "--id", "agent", "--", "echo", "via the agent"]);
    out.ok();
    assert_eq!(out.stdout, "via the agent\n");
    assert!(
        w.sshd.log().contains("Accepted publickey"),
        "{}",
        w.sshd.log()
    );
    run(&["stop", "agent"]).ok();
}

/// An ssh-agent on a socket in `dir`, holding `key` (unlocked with its passphrase through
/// SSH_ASKPASS). Killed on drop.
struct Agent {
    child: std::process::Child,
    socket: PathBuf,
}

impl Agent {
    fn start(dir: &Path, key: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let child = std::process::Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start ssh-agent");
        let agent = Agent { child, socket };
        let started = std::time::Instant::now();
        while !agent.socket.exists() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "no agent socket"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let askpass = dir.join("askpass.sh");
        std::fs::write(&askpass, "#!/bin/sh\necho agent-passphrase\n").unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        let out = std::process::Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &agent.socket)
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run ssh-add");
        assert!(
            out.status.success(),
            "ssh-add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        agent
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
