//! The SSH side of the data plane: OpenSSH `ssh` driven through a private config file. A leaf:
//! it knows targets and config files, not leases or providers (the access cache that decides
//! which target to use is lease logic, in `lease::access`).
//!
//! Each lease gets a 0600 ssh config under the secrets directory naming its host, port, user
//! and options, so no secret ever appears on a command line: every `ssh` and `rsync` cbx runs
//! says only `ssh -F <config> cbx-<lease>`. Connections are multiplexed (ControlMaster), host
//! keys go to a known_hosts file cbx owns (accept-new), forwarding is off, and ssh offers only
//! the key the user configured — never the agent, unless the user opted in.
//!
//! - [`identity`]: the checks a user's key file must pass.
//! - [`session`]: one command's session, its output relayed; [`mux`] opens it over the live
//!   master connection without an `ssh` process.

pub mod identity;
pub mod mux;
pub mod session;

pub use session::{RemoteSession, SessionStdin, StdoutTo};

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::process::Command;

use crate::environment::Environment;
use crate::error::{ErrorKind, Failure};
use crate::paths;
use crate::progress::Progress;
use crate::redact::TOKEN;

/// How to reach a sandbox over SSH.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// SSH user name (a bearer token for some providers).
    pub user: String,
    /// Whether the user name is a secret.
    pub user_is_secret: bool,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Private key to log in with.
    pub identity_file: Option<String>,
}

impl Target {
    /// Checks that every field is safe to write into an ssh config (a provider chose them).
    pub fn validate(&self, provider: &str) -> Result<()> {
        let bad = |what: &str| -> anyhow::Error {
            Failure::new(
                ErrorKind::Provider,
                format!("provider {provider} returned an unusable SSH {what}"),
            )
            .into()
        };
        let user_ok = !self.user.is_empty()
            && !self.user.starts_with('-')
            && self.user.len() <= 256
            && self
                .user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !user_ok {
            return Err(bad("user"));
        }
        let host_ok = !self.host.is_empty()
            && !self.host.starts_with('-')
            && self.host.len() <= 253
            && self
                .host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:".contains(&b));
        if !host_ok {
            return Err(bad("host"));
        }
        if self.port == 0 {
            return Err(bad("port"));
        }
        if let Some(key) = &self.identity_file
            && (key.is_empty() || key.chars().any(|c| c.is_control() || c == '"' || c == '%'))
        {
            return Err(bad("identity file path"));
        }
        Ok(())
    }

    /// `user@host` with a secret user shown as `<token>`.
    pub fn shown_destination(&self) -> String {
        let user = if self.user_is_secret {
            TOKEN
        } else {
            self.user.as_str()
        };
        format!("{user}@{}", self.host)
    }
}

/// A configured SSH connection to one lease's sandbox.
#[derive(Debug, Clone)]
pub struct SshClient {
    config: PathBuf,
    alias: String,
    known_hosts: PathBuf,
    target: Target,
    /// The multiplexing master's socket (unknown for a client of [`SshClient::for_config`]).
    socket: Option<PathBuf>,
}

/// The ssh config's host alias for a lease.
pub fn alias(lease: &str) -> String {
    format!("cbx-{lease}")
}

impl SshClient {
    /// Writes the lease's ssh config (0600) into `dir` and returns a client using it; `agent`
    /// lets ssh use the user's agent (their opt-in). Multiplexing sockets go under
    /// `state_dir`, or (when that path is too long for a socket name) under the temporary
    /// directory of `env`.
    pub fn prepare(
        dir: &Path,
        state_dir: &Path,
        lease: &str,
        target: Target,
        agent: bool,
        env: &Environment,
    ) -> Result<SshClient> {
        paths::private_dir(dir)?;
        let known_hosts = state_dir.join("known_hosts");
        usable_known_hosts(&known_hosts)?;
        let socket = control_socket(state_dir, env, lease, &target)?;
        let alias = alias(lease);
        let mut cfg = String::new();
        cfg.push_str(&format!(
            "# Written by cbx for lease {lease}. It may hold an access token: keep it private.\n"
        ));
        cfg.push_str(&format!("Host {alias}\n"));
        let mut opt = |k: &str, v: &str| cfg.push_str(&format!("  {k} {v}\n"));
        opt("HostName", &target.host);
        opt("Port", &target.port.to_string());
        opt("User", &target.user);
        opt("BatchMode", "yes");
        opt("StrictHostKeyChecking", "accept-new");
        opt(
            "UserKnownHostsFile",
            &format!("\"{}\"", known_hosts.display()),
        );
        opt("GlobalKnownHostsFile", "/dev/null");
        opt("UpdateHostKeys", "no");
        opt("ControlMaster", "auto");
        opt("ControlPath", &format!("\"{}\"", socket.display()));
        opt("ControlPersist", "600");
        opt("ServerAliveInterval", "15");
        opt("ServerAliveCountMax", "3");
        opt("ConnectTimeout", "10");
        opt("ForwardAgent", "no");
        opt("ForwardX11", "no");
        opt("ClearAllForwardings", "yes");
        opt("PermitLocalCommand", "no");
        opt("LogLevel", "ERROR");
        opt("PasswordAuthentication", "no");
        opt("KbdInteractiveAuthentication", "no");
        match (&target.identity_file, agent) {
            (Some(key), _) => {
                // Exactly the user's key; the agent only if they opted in (it may then sign
                // for this key, and no other).
                opt("IdentityFile", &format!("\"{key}\""));
                opt("IdentitiesOnly", "yes");
            }
            (None, true) => {
                // The user opted in: the agent's keys, and no key file.
                opt("IdentityFile", "none");
                opt("IdentitiesOnly", "no");
            }
            (None, false) => {
                // The user name is the credential: offer no keys and no agent.
                opt("IdentitiesOnly", "yes");
                opt("IdentityFile", "none");
                opt("PubkeyAuthentication", "no");
            }
        }
        if !agent {
            opt("IdentityAgent", "none");
        }
        let config = dir.join("ssh_config");
        // Written (and synced) only when it changes: a warm run finds it as it left it.
        if std::fs::read(&config).ok().as_deref() != Some(cfg.as_bytes()) {
            paths::write_private_atomic(&config, cfg.as_bytes())?;
        }
        Ok(SshClient {
            config,
            alias,
            known_hosts,
            target,
            socket: Some(socket),
        })
    }

    /// A client for the config [`SshClient::prepare`] wrote into `dir` earlier, without
    /// writing anything (to close its master connection).
    pub fn for_config(dir: &Path, state_dir: &Path, lease: &str, target: Target) -> SshClient {
        SshClient {
            config: dir.join("ssh_config"),
            alias: alias(lease),
            known_hosts: state_dir.join("known_hosts"),
            target,
            socket: None,
        }
    }

    /// The target this client connects to.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The host alias to pass to ssh and rsync.
    pub fn alias(&self) -> &str {
        &self.alias
    }

    /// `ssh -F <config>`, ready for more arguments. The process is killed when its handle is
    /// dropped (a command cancelled by a signal leaves no ssh behind).
    pub fn ssh(&self) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.arg("-F").arg(&self.config).kill_on_drop(true);
        cmd
    }

    /// The `-e` value for rsync: the same ssh, quoted for rsync's own word splitting.
    pub fn rsync_shell(&self) -> String {
        format!(
            "ssh -F '{}'",
            self.config.display().to_string().replace('\'', "")
        )
    }

    /// Whether a multiplexing master connection is up: its socket accepts a connection.
    /// Asked of the socket directly rather than with `ssh -O check`, which would start a whole
    /// ssh client (several milliseconds) to learn the same thing; the master takes the bare
    /// connect and close as a client that said nothing.
    pub fn master_alive(&self) -> bool {
        self.socket
            .as_deref()
            .is_some_and(|s| std::os::unix::net::UnixStream::connect(s).is_ok())
    }

    /// One attempt to log in and run `command` (a short shell snippet that always succeeds);
    /// returns what it printed, or ssh's stderr on failure.
    pub async fn probe(&self, command: &str) -> Result<String, String> {
        let mut cmd = self.ssh();
        cmd.args(["-o", "ConnectTimeout=5", &self.alias, command])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let out = cmd.output().await.map_err(|e| spawn_error(&e))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    /// Waits until SSH login works (which also starts the multiplexing master), showing
    /// progress; fails with exit 5 after `timeout`. The login that works runs `command` (see
    /// [`SshClient::probe`]); returns what it printed — `None` when a master was up already
    /// and no login was needed.
    pub async fn wait_ready(
        &self,
        timeout: Duration,
        quiet: bool,
        command: &str,
    ) -> Result<Option<String>> {
        if self.master_alive() {
            return Ok(None);
        }
        let deadline = Instant::now() + timeout;
        let mut progress = Progress::start(
            format!(
                "connecting over SSH to {}:{}",
                self.target.host, self.target.port
            ),
            quiet,
        );
        let mut attempt = 1;
        loop {
            match self.probe(command).await {
                Ok(printed) if attempt == 1 => {
                    progress.clear();
                    return Ok(Some(printed));
                }
                Ok(printed) => {
                    let took = crate::progress::human_duration(progress.elapsed());
                    progress.finish(format!(
                        "SSH on {}:{} accepted the login after {attempt} attempts ({took})",
                        self.target.host, self.target.port
                    ));
                    return Ok(Some(printed));
                }
                Err(e) if Instant::now() >= deadline => {
                    progress.clear();
                    return Err(Failure::new(
                        ErrorKind::Sandbox,
                        format!(
                            "could not log in over SSH to {}:{} within {}s{}",
                            self.target.host,
                            self.target.port,
                            timeout.as_secs(),
                            if e.is_empty() {
                                String::new()
                            } else {
                                format!(": {}", crate::terminal::inert(&e))
                            }
                        ),
                    )
                    .into());
                }
                Err(_) => {
                    attempt += 1;
                    progress.tick(format!(
                        "waiting for SSH on {}:{} (attempt {attempt})",
                        self.target.host, self.target.port
                    ));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Closes the multiplexing master, if any (best effort).
    pub async fn close_master(&self) {
        let mut cmd = self.ssh();
        cmd.args(["-O", "exit", &self.alias])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = tokio::time::timeout(Duration::from_secs(5), cmd.status()).await;
    }

    /// A paste-able ssh command; the user is shown as `<token>` unless `show_secret`.
    pub fn printable(&self, show_secret: bool) -> String {
        let t = &self.target;
        let user = if t.user_is_secret && !show_secret {
            TOKEN.to_string()
        } else {
            t.user.clone()
        };
        let mut words = vec!["ssh".to_string()];
        if t.port != 22 {
            words.extend(["-p".into(), t.port.to_string()]);
        }
        words.extend([
            "-o".into(),
            "StrictHostKeyChecking=accept-new".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
        ]);
        if let Some(key) = &t.identity_file {
            words.extend([
                "-i".into(),
                key.clone(),
                "-o".into(),
                "IdentitiesOnly=yes".into(),
            ]);
        }
        words.push(format!("{user}@{}", t.host));
        words
            .iter()
            .map(|w| {
                if w == &format!("{TOKEN}@{}", t.host) {
                    w.clone()
                } else {
                    crate::remote::quote(w)
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Makes sure cbx's known_hosts is a regular file cbx can read and write (creating it empty,
/// 0600, if absent). Given a directory or an unreadable file, ssh would connect without
/// checking or recording the host key; cbx refuses to connect instead.
fn usable_known_hosts(path: &Path) -> Result<()> {
    let shown = path.display();
    let refuse = |why: String, hint: String| -> anyhow::Error {
        Failure::new(
            ErrorKind::Other,
            format!("{why}; cbx will not connect without checking the sandbox's host key"),
        )
        .hint(hint)
        .into()
    };
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => {
            return Err(refuse(
                format!("cbx's known_hosts {shown} is not a regular file"),
                format!(
                    "move it aside (`mv {shown} {shown}.bad`); cbx then starts a new one and records host keys again"
                ),
            ));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(refuse(
                format!("cannot read cbx's known_hosts {shown}: {e}"),
                format!("make it yours and readable: `chmod 600 {shown}`"),
            ));
        }
    }
    let mut open = std::fs::File::options();
    open.read(true).append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    open.open(path).map(|_| ()).map_err(|e| {
        refuse(
            format!("cannot read and write cbx's known_hosts {shown}: {e}"),
            format!("make it yours, readable and writable: `chmod 600 {shown}`"),
        )
    })
}

/// The multiplexing socket of `lease` for `target`: named by cbx, not by ssh's `%C`, so that
/// cbx can look for a live master without starting ssh. The name hashes the lease and the
/// user, host and port (as `%C` does), so new access gets a master of its own.
pub fn control_socket(
    state_dir: &Path,
    env: &Environment,
    lease: &str,
    target: &Target,
) -> Result<PathBuf> {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    for part in [lease, &target.user, &target.host, &target.port.to_string()] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let name: String = hash
        .finalize()
        .iter()
        .take(20)
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(control_dir(state_dir, env)?.join(name))
}

/// Where multiplexing sockets live: a private directory whose path is short enough for a
/// Unix socket name.
fn control_dir(state_dir: &Path, env: &Environment) -> Result<PathBuf> {
    let preferred = state_dir.join("secrets/cm");
    // Socket paths are limited to ~104 bytes; %C expands to 40 characters.
    let dir = if preferred.as_os_str().len() + 42 <= 100 {
        preferred
    } else {
        env.temp_dir().join(format!("cbx-cm-{}", user_id(env)))
    };
    paths::private_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}

/// The user's id, as the owner of their home directory.
fn user_id(env: &Environment) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(env.home().unwrap_or_default())
            .map(|m| m.uid().to_string())
            .unwrap_or_else(|_| "user".into())
    }
    #[cfg(not(unix))]
    {
        let _ = env;
        "user".into()
    }
}

/// A clear error for a tool that could not be started.
pub fn spawn_error(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        "the `ssh` client is not installed (install OpenSSH, e.g. apt-get install openssh-client)"
            .into()
    } else {
        format!("could not run ssh: {e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            user: "tok123secret".into(),
            user_is_secret: true,
            host: "ssh.example.com".into(),
            port: 2222,
            identity_file: None,
        }
    }

    #[test]
    fn config_is_private_and_injection_proof() {
        let dir = tempfile::tempdir().unwrap();
        let c = SshClient::prepare(
            &dir.path().join("s"),
            dir.path(),
            "cbx_0123456789ab",
            target(),
            false,
            &Environment::default(),
        )
        .unwrap();
        let text = std::fs::read_to_string(&c.config).unwrap();
        assert!(text.contains("  User tok123secret\n"));
        assert!(text.contains("  IdentityAgent none\n"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&c.config).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let mut evil = target();
        evil.host = "x\n  ProxyCommand touch /tmp/pwned".into();
        assert!(evil.validate("p").is_err());
        let mut evil = target();
        evil.user = "-oProxyCommand=x".into();
        assert!(evil.validate("p").is_err());
        assert!(target().validate("p").is_ok());
    }

    #[test]
    fn a_key_is_offered_alone_and_the_agent_only_on_the_users_opt_in() {
        let dir = tempfile::tempdir().unwrap();
        let config = |identity: Option<&str>, agent: bool| {
            let mut t = target();
            t.identity_file = identity.map(String::from);
            let c = SshClient::prepare(
                &dir.path().join("s"),
                dir.path(),
                "cbx_0123456789ab",
                t,
                agent,
                &Environment::default(),
            )
            .unwrap();
            std::fs::read_to_string(&c.config).unwrap()
        };
        let text = config(Some("/home/u/.ssh/id_ed25519"), false);
        for line in [
            "  IdentityFile \"/home/u/.ssh/id_ed25519\"\n",
            "  IdentitiesOnly yes\n",
            "  IdentityAgent none\n",
            "  PasswordAuthentication no\n",
            "  ForwardAgent no\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
        let text = config(Some("/home/u/.ssh/id_ed25519"), true);
        assert!(text.contains("  IdentitiesOnly yes\n"), "{text}");
        assert!(!text.contains("IdentityAgent"), "{text}");
        let text = config(None, true);
        assert!(
            text.contains("  IdentityFile none\n  IdentitiesOnly no\n"),
            "{text}"
        );
        assert!(!text.contains("IdentityAgent"), "{text}");
        let text = config(None, false);
        assert!(text.contains("  PubkeyAuthentication no\n"), "{text}");
        assert!(text.contains("  IdentityAgent none\n"), "{text}");
    }

    #[test]
    fn printable_hides_the_token_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        let c = SshClient::prepare(
            &dir.path().join("s"),
            dir.path(),
            "cbx_0123456789ab",
            target(),
            false,
            &Environment::default(),
        )
        .unwrap();
        let shown = c.printable(false);
        assert!(
            shown.starts_with("ssh -p 2222 -o StrictHostKeyChecking=accept-new"),
            "{shown}"
        );
        assert!(shown.ends_with(" <token>@ssh.example.com"), "{shown}");
        assert!(!shown.contains("tok123secret"));
        assert!(c.printable(true).ends_with(" tok123secret@ssh.example.com"));
    }

    #[test]
    fn sockets_go_to_the_temporary_directory_of_the_environment_when_state_is_deep() {
        let dir = tempfile::tempdir().unwrap();
        let env = Environment::from_pairs([("TMPDIR", dir.path())]);
        let shallow = dir.path().join("s");
        assert_eq!(
            control_dir(&shallow, &env).unwrap(),
            shallow.join("secrets/cm")
        );
        let deep = dir.path().join("d".repeat(90));
        let chosen = control_dir(&deep, &env).unwrap();
        assert!(chosen.starts_with(dir.path()), "{}", chosen.display());
        assert!(
            chosen
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("cbx-cm-"),
            "{}",
            chosen.display()
        );
    }
}
