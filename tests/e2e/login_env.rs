//! End-to-end tests of the login environment read once per connection (issue 14): the login
//! that proves SSH works reads what the sandbox's login profile sets, and warm commands reuse
//! it instead of sourcing the profile each time — until a profile file changes, a command is
//! not on the cached PATH, or `[run] login-environment = "fresh"`. The real binary against the
//! simulator with its real sshd (needs root, like `data_plane`, whose world these tests share).

use std::path::{Path, PathBuf};

use cbx_testkit::home::Output;

use super::data_plane::World;

/// A lease and its sandbox's home, where the tests write the login profile.
struct Sandbox {
    slug: String,
    lease: String,
    home: PathBuf,
}

impl Sandbox {
    /// A warmed-up lease whose sandbox's `~/.profile` is `profile`, read by a fresh login
    /// (the master of the warmup is closed, so the next command logs in again).
    fn with_profile(w: &World, slug: &str, profile: &str) -> Sandbox {
        let lease = w.warmup(slug);
        let id = lease["leaseId"].as_str().unwrap().to_string();
        let sandbox = lease["sandboxId"].as_str().unwrap();
        let home = w.gateway.sandbox_home(sandbox).expect("sandbox home");
        let sb = Sandbox {
            slug: slug.into(),
            lease: id,
            home,
        };
        sb.write_profile(profile);
        sb.close_master(w);
        sb
    }

    fn write_profile(&self, profile: &str) {
        let tools = self.home.join("tools");
        std::fs::create_dir_all(&tools).unwrap();
        script(&tools.join("hello"), "echo \"hello $FROM_PROFILE\"");
        std::fs::write(
            self.home.join(".profile"),
            format!("echo sourced >> \"$HOME/count\"\n{profile}"),
        )
        .unwrap();
    }

    /// Closes the lease's multiplexing master.
    fn close_master(&self, w: &World) {
        let config = w
            .home
            .state_dir()
            .join("secrets")
            .join(&self.lease)
            .join("ssh_config");
        let _ = std::process::Command::new("ssh")
            .arg("-F")
            .arg(&config)
            .args(["-O", "exit", &format!("cbx-{}", self.lease)])
            .output();
    }

    /// How many times the profile was sourced.
    fn sourced(&self) -> usize {
        count_lines(&self.home.join("count"))
    }

    fn run(&self, w: &World, command: &[&str]) -> Output {
        let mut args = vec!["run", "--id", &self.slug, "--"];
        args.extend(command);
        w.cbx(&args)
    }
}

fn count_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// An executable shell script at `path`.
fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    let ok = std::process::Command::new("chmod")
        .arg("755")
        .arg(path)
        .status()
        .unwrap();
    assert!(ok.success());
}

/// A profile exporting FROM_PROFILE=`value` and putting `~/tools` on PATH.
fn profile(value: &str) -> String {
    format!("export FROM_PROFILE={value}\nPATH=\"$HOME/tools:$PATH\"\n")
}

#[test]
fn login_env_warm_runs_reuse_the_profile_read_at_the_login_until_it_changes() {
    let Some(w) = World::new() else { return };
    let sb = Sandbox::with_profile(&w, "lenv", &profile("one"));
    // The login that finds out (no master) reads the profile once.
    sb.run(&w, &["true"]).ok();
    assert_eq!(sb.sourced(), 1);
    for _ in 0..3 {
        let out = sb.run(&w, &["hello"]);
        out.ok();
        assert_eq!(out.stdout, "hello one\n", "{out}");
    }
    let out = w.cbx(&["ssh", "lenv", "--", "hello"]);
    assert_eq!(out.stdout, "hello one\n", "{out}");
    let out = w.cbx(&["run", "--id", "lenv", "--shell", "--", "hello; exit 3"]);
    out.expect_code(3);
    assert_eq!(out.stdout, "hello one\n", "{out}");
    // A command exiting 255 itself under the cache: its status, and it ran once.
    let out = sb.run(&w, &["sh", "-c", "echo ran >> \"$HOME/ran255\"; exit 255"]);
    out.expect_code(255);
    assert_eq!(
        count_lines(&sb.home.join("ran255")),
        1,
        "run exactly once: {out}"
    );
    assert_eq!(sb.sourced(), 1, "warm commands do not source the profile");
    // Forwarded variables win over the cached ones.
    let out = w.home.run_with_env(
        &[
            "run",
            "--id",
            "lenv",
            "--env",
            "FROM_PROFILE",
            "--",
            "hello",
        ],
        &[("FROM_PROFILE", "forwarded")],
    );
    assert_eq!(out.stdout, "hello forwarded\n", "{out}");
    assert_eq!(sb.sourced(), 1);

    // Edited after it was read: the profile is newer than the stamp, so it is sourced.
    std::thread::sleep(std::time::Duration::from_millis(20));
    sb.write_profile(&profile("two"));
    let out = sb.run(&w, &["hello"]);
    assert_eq!(out.stdout, "hello two\n", "{out}");
    assert_eq!(sb.sourced(), 2);
    let out = sb.run(&w, &["hello"]);
    assert_eq!(out.stdout, "hello two\n", "{out}");
    assert_eq!(sb.sourced(), 3, "stale until the next login reads it again");
    w.cbx(&["stop", "lenv"]).ok();
}

/// A tool installed since the login read the environment, on a PATH directory only the new
/// profile has (as rustup writes `~/.profile`), is found through the login shell, once.
#[test]
fn login_env_a_tool_installed_since_is_found_by_the_login_shell_and_runs_once() {
    let Some(w) = World::new() else { return };
    let sb = Sandbox::with_profile(&w, "rusty", &profile("one"));
    sb.run(&w, &["true"]).ok();
    let before = sb.sourced();
    let bin = sb.home.join(".cargo/bin");
    std::fs::create_dir_all(&bin).unwrap();
    script(
        &bin.join("newtool"),
        "echo ran >> \"$HOME/ran\"; echo new; exit 4",
    );
    // The installer appends to the profile without changing its mtime past the stamp's
    // (worst case): only the PATH lookup can notice.
    let stamp = std::fs::metadata(sb.home.join(".profile"))
        .unwrap()
        .modified()
        .unwrap();
    let mut text = std::fs::read_to_string(sb.home.join(".profile")).unwrap();
    text.push_str("PATH=\"$HOME/.cargo/bin:$PATH\"\n");
    std::fs::write(sb.home.join(".profile"), text).unwrap();
    std::fs::File::options()
        .write(true)
        .open(sb.home.join(".profile"))
        .unwrap()
        .set_modified(stamp)
        .unwrap();
    let out = sb.run(&w, &["newtool"]);
    out.expect_code(4);
    assert_eq!(out.stdout, "new\n", "{out}");
    assert_eq!(count_lines(&sb.home.join("ran")), 1, "run exactly once");
    assert_eq!(sb.sourced(), before + 1, "through the login shell");
    w.cbx(&["stop", "rusty"]).ok();
}

/// A profile that exports a secret-looking variable is never cached: every command sources
/// it, and its value is in no file of cbx's and no output; doctor says why, by name.
#[test]
fn login_env_a_secret_in_the_profile_is_not_cached_and_not_stored() {
    let Some(w) = World::new() else { return };
    let secret = "s3cr3t-login-value";
    let sb = Sandbox::with_profile(
        &w,
        "secretive",
        &format!("{}export MY_API_TOKEN={secret}\n", profile("one")),
    );
    let first = sb.run(&w, &["hello"]);
    assert_eq!(first.stdout, "hello one\n", "{first}");
    let mut outputs = vec![first];
    for n in 2..=3 {
        let out = sb.run(&w, &["hello"]);
        assert_eq!(out.stdout, "hello one\n", "{out}");
        assert_eq!(
            sb.sourced(),
            n + 1,
            "sourced on every run (and by the login)"
        );
        outputs.push(out);
    }
    let doctor = w.cbx(&["doctor", "--lease", "secretive", "--json"]);
    doctor.ok();
    let check = doctor.json()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "login-environment")
        .cloned()
        .unwrap_or_else(|| panic!("no login-environment check: {doctor}"));
    assert_eq!(check["status"], "warn", "{doctor}");
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("not cached: the login shell sets MY_API_TOKEN, which looks like a secret"),
        "{doctor}"
    );
    outputs.push(doctor);
    let refs: Vec<&Output> = outputs.iter().collect();
    w.home.assert_secret_absent(secret, &refs, &[]);
    assert!(
        files_with(&cbx_testkit::home::shared_cache_dir(), secret.as_bytes()).is_empty(),
        "the secret is in cbx's cache"
    );
    w.cbx(&["stop", "secretive"]).ok();
}

/// Files under `dir` holding `needle`.
fn files_with(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_with(&path, needle));
        } else if std::fs::read(&path).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)) {
            found.push(path);
        }
    }
    found
}

/// `[run] login-environment = "fresh"` sources the profile for every command (and doctor
/// says so); a value that is neither is refused, naming the file and line.
#[test]
fn login_env_fresh_sources_the_profile_every_time_and_a_bad_value_names_its_line() {
    let Some(w) = World::new() else { return };
    let sb = Sandbox::with_profile(&w, "fresh", &profile("one"));
    sb.run(&w, &["true"]).ok();
    let doctor = w.cbx(&["doctor", "--lease", "fresh"]);
    doctor.ok();
    assert!(
        doctor.stdout.contains("cached (") && doctor.stdout.contains("from the login shell"),
        "{doctor}"
    );
    w.home
        .write_config("[run]\nlogin-environment = \"fresh\"\n");
    let before = sb.sourced();
    for n in 1..=2 {
        let out = sb.run(&w, &["hello"]);
        assert_eq!(out.stdout, "hello one\n", "{out}");
        assert_eq!(sb.sourced(), before + n);
    }
    let doctor = w.cbx(&["doctor", "--lease", "fresh"]);
    assert!(
        doctor
            .stdout
            .contains("not used: every command starts a login shell"),
        "{doctor}"
    );
    // Doctor's login read the profile too.
    let before = sb.sourced();
    w.home
        .write_config("\n[run]\nlogin-environment = \"always\"\n");
    let out = sb.run(&w, &["hello"]);
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("run.login-environment: must be \"cached\""),
        "{out}"
    );
    assert!(out.stderr.contains("config.toml:3"), "{out}");
    assert_eq!(sb.sourced(), before, "nothing ran");
    w.home.write_config("");
    w.cbx(&["stop", "fresh"]).ok();
}

/// A profile that exports the names a `--env` variable and cbx forward (`FOO`, `CBX_SLUG`)
/// overrides neither: the local value wins on the cached path, on the login shell after the
/// profile changed, and with `[run] login-environment = "fresh"`, for an argv and a `--shell`
/// script; the env file is gone each time.
#[test]
fn login_env_forwarded_and_cbx_variables_win_over_the_profile() {
    let Some(w) = World::new() else { return };
    let sb = Sandbox::with_profile(&w, "winner", "export FOO=profile CBX_SLUG=profile\n");
    sb.run(&w, &["true"]).ok();
    let show = "echo \"$FOO $CBX_SLUG\"";
    let check = |how: &str, login: bool| {
        for shell in [false, true] {
            let before = sb.sourced();
            let mut args = vec!["run", "--id", "winner", "--env", "FOO"];
            if shell {
                args.extend(["--shell", "--", show]);
            } else {
                args.extend(["--", "sh", "-c", show]);
            }
            let out = w.home.run_with_env(&args, &[("FOO", "local")]);
            out.ok();
            assert_eq!(
                out.stdout, "local winner\n",
                "{how}, --shell {shell}: {out}"
            );
            let sourced = sb.sourced() - before;
            assert_eq!(sourced, usize::from(login), "{how}, --shell {shell}: {out}");
            let left: Vec<_> = std::fs::read_dir(sb.home.join(".cbx"))
                .map(|d| d.flatten().map(|e| e.file_name()).collect())
                .unwrap_or_default();
            assert!(
                !left.iter().any(|n| n.to_string_lossy().starts_with("env-")),
                "{how}: an env file was left: {left:?}"
            );
        }
    };
    check("cached", false);
    // The names cbx uses for itself on the sandbox are not forwarded.
    let out = w.home.run_with_env(
        &["run", "--id", "winner", "--env", "cbx_keep", "--", "true"],
        &[("cbx_keep", "x")],
    );
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("--env cbx_keep: names that begin with cbx_ are cbx's own on the sandbox"),
        "{out}"
    );
    // Edited after it was read: the login shell runs the profile, which sets FOO last.
    std::thread::sleep(std::time::Duration::from_millis(20));
    sb.write_profile("export FOO=edited CBX_SLUG=edited\n");
    check("login shell after an edit", true);
    w.home
        .write_config("[run]\nlogin-environment = \"fresh\"\n");
    check("fresh", true);
    w.home.write_config("");
    w.cbx(&["stop", "winner"]).ok();
}
