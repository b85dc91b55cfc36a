//! A real OpenSSH server on loopback that logs clients in the way Daytona's gateway does: the
//! user name is the access token and no key or password is asked for.
//!
//! [`SshdGateway`] plugs into the Daytona simulator: each sandbox becomes a system user with a
//! home directory (the sandbox's file system), and each minted token becomes an alias of that
//! user (same uid, same home) with an empty password, which sshd accepts with
//! `PermitEmptyPasswords`. Revoking a token deletes its alias, so sshd refuses it ("Permission
//! denied"). [`SshdGateway::start_dropping`] behaves like Daytona's real gateway instead: a
//! revoked or expired token, a deleted sandbox, or one that is not started, logs in and then
//! loses its connection without a word ("Connection closed"). This needs root (CI runs as
//! root); [`SshdGateway::unavailable`] says why it cannot run elsewhere.
//!
//! Images: a sandbox made from a snapshot named `…no-rsync…` (and `…no-tar…`) lacks those
//! tools, as Daytona's slim image lacks rsync ([`crate::tools_missing_from`]). Its users log in
//! through a shell wrapper that runs bash with a PATH of links to every tool of this machine
//! but the missing ones (and a `~/.profile` that sets it again for login shells), so `rsync`
//! (and `tar`) are "command not found" there.

use std::collections::{HashMap, HashSet};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::SshBackend;

/// An sshd process on 127.0.0.1 with its own config and host key.
pub struct Sshd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// sshd_config lines for logins with a user name and no key or password (Daytona's gateway).
const EMPTY_PASSWORD_AUTH: &str = "PermitEmptyPasswords yes\nPasswordAuthentication yes\n\
                                   KbdInteractiveAuthentication no\nPubkeyAuthentication no\n";
/// sshd_config lines for logins with a key in the user's `~/.ssh/authorized_keys` only.
const PUBKEY_AUTH: &str = "PermitEmptyPasswords no\nPasswordAuthentication no\n\
                           KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
                           AuthorizedKeysFile .ssh/authorized_keys\n";

impl Sshd {
    /// Starts sshd on a free loopback port.
    pub fn start() -> Result<Sshd> {
        Sshd::launch(EMPTY_PASSWORD_AUTH)
    }

    /// Starts sshd on a free loopback port accepting only public-key logins (an ordinary
    /// host, as the ssh provider reaches it). See [`SshUser`].
    pub fn start_with_pubkey() -> Result<Sshd> {
        Sshd::launch(PUBKEY_AUTH)
    }

    fn launch(auth: &str) -> Result<Sshd> {
        let dir = tempfile::Builder::new().prefix("cbx-sshd-").tempdir()?;
        let key = dir.path().join("host_key");
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .context("run ssh-keygen (install openssh-client)")?;
        if !status.success() {
            bail!("ssh-keygen failed");
        }
        let port = free_port()?;
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {key}\nPidFile {pid}\n\
                 {auth}UsePAM no\nPermitRootLogin no\nStrictModes no\n\
                 MaxSessions 64\nMaxStartups 200:30:400\nPrintMotd no\nPrintLastLog no\n\
                 X11Forwarding no\nAllowTcpForwarding no\nSubsystem sftp internal-sftp\nLogLevel VERBOSE\n",
                key = key.display(),
                pid = dir.path().join("sshd.pid").display(),
            ),
        )?;
        std::fs::create_dir_all("/run/sshd").context("create /run/sshd")?;
        let log = std::fs::File::create(dir.path().join("sshd.log"))?;
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("start /usr/sbin/sshd (install openssh-server)")?;
        let mut sshd = Sshd { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = sshd.child.try_wait() {
                bail!("sshd exited ({status}): {}", sshd.log());
            }
            if Instant::now() > deadline {
                bail!("sshd did not listen on port {port}: {}", sshd.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(sshd)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// sshd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A throwaway system user that logs in with a freshly generated ed25519 key: a home
/// directory with `~/.ssh/authorized_keys`, and the private key in a separate root-owned
/// directory (the client's side). Removed, with its processes and files, on drop. Needs root;
/// [`SshdGateway::unavailable`] says why it cannot run elsewhere.
pub struct SshUser {
    name: String,
    uid: u32,
    home: PathBuf,
    key: PathBuf,
    _homes: tempfile::TempDir,
    _keys: tempfile::TempDir,
}

impl SshUser {
    /// Creates the user and its key.
    pub fn create() -> Result<SshUser> {
        let homes = tempfile::Builder::new().prefix("cbx-sshuser-").tempdir()?;
        set_mode(homes.path(), 0o755)?;
        let keys = tempfile::Builder::new().prefix("cbx-sshkey-").tempdir()?;
        let key = keys.path().join("id_ed25519");
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "cbx-test", "-f"])
            .arg(&key)
            .status()
            .context("run ssh-keygen (install openssh-client)")?;
        if !status.success() {
            bail!("ssh-keygen failed");
        }
        let name = format!("cbxu{:08x}", rand::random::<u32>());
        let home = homes.path().join(&name);
        retry_useradd(&[
            "-M",
            "-U",
            "-d",
            &home.to_string_lossy(),
            "-s",
            "/bin/sh",
            &name,
        ])?;
        // Without PAM, sshd refuses accounts whose password is locked (`!`, useradd's default);
        // `*` allows no password login yet is not locked.
        let status = Command::new("/usr/sbin/usermod")
            .args(["-p", "*", &name])
            .status()?;
        if !status.success() {
            userdel(&name);
            bail!("usermod -p '*' {name} failed");
        }
        let (uid, gid) = ids(&name)?;
        let user = SshUser {
            name,
            uid,
            home: home.clone(),
            key,
            _homes: homes,
            _keys: keys,
        };
        let ssh_dir = home.join(".ssh");
        std::fs::create_dir_all(&ssh_dir)?;
        std::fs::copy(
            user.key.with_extension("pub"),
            ssh_dir.join("authorized_keys"),
        )?;
        set_mode(&home, 0o755)?;
        set_mode(&ssh_dir, 0o700)?;
        set_mode(&ssh_dir.join("authorized_keys"), 0o600)?;
        for p in [&home, &ssh_dir, &ssh_dir.join("authorized_keys")] {
            chown(p, uid, gid)?;
        }
        Ok(user)
    }

    /// The user name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The home directory (what the user sees as `~`).
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The private key file (0600, owned by the test process's user).
    pub fn key(&self) -> &Path {
        &self.key
    }
}

impl Drop for SshUser {
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .args(["-KILL", "-u", &self.uid.to_string()])
            .status();
        userdel(&self.name);
        // The home is removed with its temporary parent directory.
    }
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

struct SandboxUser {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
    /// The login shell of the sandbox's users (its image's).
    shell: String,
}

#[derive(Default)]
struct Users {
    sandboxes: HashMap<String, SandboxUser>,
    tokens: HashMap<String, String>,
    /// Token users kept after revocation in dropping mode (deleted on drop).
    dropped: Vec<String>,
    /// Sandboxes that are not started: in refusing mode their tokens' logins are locked.
    stopped: HashSet<String>,
}

impl Users {
    /// The tokens of sandbox `id`.
    fn tokens_of(&self, id: &str) -> Vec<String> {
        self.tokens
            .iter()
            .filter(|(_, s)| *s == id)
            .map(|(t, _)| t.clone())
            .collect()
    }
}

/// Locks (`!`) or unlocks (empty: sshd's `PermitEmptyPasswords`) the login of `user`.
fn set_login(user: &str, allowed: bool) {
    let password = if allowed { "" } else { "!" };
    for _ in 0..100 {
        match Command::new("/usr/sbin/usermod")
            .args(["-p", password, user])
            .output()
        {
            Ok(o) if o.status.code() == Some(10) => std::thread::sleep(Duration::from_millis(30)),
            _ => return,
        }
    }
}

/// The session gate of a dropping gateway (sshd's `ForceCommand`): a token marked dropped, or
/// a sandbox (by uid) marked stopped, loses its connection (the sshd session process is
/// killed, as the real gateway's `conn.Close()`); anything else runs as asked.
const GATE: &str = r#"#!/bin/sh
d="$(dirname "$0")"
if [ -e "$d/dropped/$USER" ] || [ -e "$d/stopped/$(id -u)" ]; then
  p=$PPID
  while [ "$p" -gt 1 ]; do
    case "$(cat /proc/$p/comm)" in sshd*) kill -KILL "$p"; exit 255 ;; esac
    p=$(awk '{print $4}' /proc/$p/stat)
  done
  exit 255
fi
if [ -n "$SSH_ORIGINAL_COMMAND" ]; then exec /bin/bash -c "$SSH_ORIGINAL_COMMAND"; fi
exec /bin/bash -l
"#;

/// The simulator's SSH backend: sandboxes are system users served by a real sshd.
pub struct SshdGateway {
    sshd: Sshd,
    root: tempfile::TempDir,
    users: Mutex<Users>,
    /// Held while an image's shell is made.
    images: Mutex<()>,
    /// In dropping mode, the directory of the gate and its markers.
    gate: Option<PathBuf>,
}

impl SshdGateway {
    /// Why the gateway cannot run here, if it cannot (not root, or sshd/useradd missing).
    pub fn unavailable() -> Option<String> {
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        if uid.as_deref() != Some("0") {
            return Some("the SSH tests need root: they create throwaway system users for the simulated Daytona SSH gateway (CI runs them as root)".into());
        }
        for tool in [
            "/usr/sbin/sshd",
            "/usr/sbin/useradd",
            "/usr/bin/rsync",
            "/usr/bin/ssh",
        ] {
            if !Path::new(tool).exists() {
                return Some(format!(
                    "{tool} is missing (install openssh-server, openssh-client and rsync)"
                ));
            }
        }
        None
    }

    /// Starts sshd and an empty set of sandbox users.
    pub fn start() -> Result<SshdGateway> {
        if let Some(why) = SshdGateway::unavailable() {
            bail!("{why}");
        }
        let root = tempfile::Builder::new()
            .prefix("cbx-sandboxes-")
            .tempdir()?;
        set_mode(root.path(), 0o755)?;
        Ok(SshdGateway {
            sshd: Sshd::start()?,
            root,
            users: Mutex::new(Users::default()),
            images: Mutex::new(()),
            gate: None,
        })
    }

    /// Starts a gateway that drops connections the way Daytona's does, instead of refusing
    /// them: for a revoked or expired token, a deleted sandbox, or a sandbox that is not
    /// started, the login succeeds and the connection is then closed (ssh exits 255 with
    /// "closed by remote host"). A token never minted is still refused by sshd.
    pub fn start_dropping() -> Result<SshdGateway> {
        if let Some(why) = SshdGateway::unavailable() {
            bail!("{why}");
        }
        let root = tempfile::Builder::new()
            .prefix("cbx-sandboxes-")
            .tempdir()?;
        set_mode(root.path(), 0o755)?;
        let gate = root.path().join(".gate");
        for dir in ["dropped", "stopped"] {
            std::fs::create_dir_all(gate.join(dir))?;
        }
        set_mode(&gate, 0o755)?;
        let script = gate.join("gate.sh");
        std::fs::write(&script, GATE)?;
        set_mode(&script, 0o755)?;
        let auth = format!("{EMPTY_PASSWORD_AUTH}ForceCommand {}\n", script.display());
        Ok(SshdGateway {
            sshd: Sshd::launch(&auth)?,
            root,
            users: Mutex::new(Users::default()),
            images: Mutex::new(()),
            gate: Some(gate),
        })
    }

    /// Marks `name` in the gate's `dir` (`dropped` or `stopped`), or unmarks it.
    fn mark(&self, dir: &str, name: &str, on: bool) {
        if let Some(gate) = &self.gate {
            let path = gate.join(dir).join(name);
            let _ = if on {
                std::fs::write(&path, "")
            } else {
                std::fs::remove_file(&path)
            };
        }
    }

    /// The sshd.
    pub fn sshd(&self) -> &Sshd {
        &self.sshd
    }

    /// The home directory (file system) of a sandbox.
    pub fn sandbox_home(&self, id: &str) -> Option<PathBuf> {
        self.users
            .lock()
            .unwrap()
            .sandboxes
            .get(id)
            .map(|s| s.home.clone())
    }
}

impl SshdGateway {
    /// The login shell of sandboxes that lack the `missing` tools: `/bin/bash` when nothing
    /// is missing, else a wrapper (made once per image) that runs bash with a PATH of links to
    /// every tool of this machine but those.
    fn image_shell(&self, missing: &[&str]) -> Result<String> {
        if missing.is_empty() {
            return Ok("/bin/bash".into());
        }
        let dir = self
            .root
            .path()
            .join(".images")
            .join(format!("no-{}", missing.join("-")));
        let shell = dir.join("shell");
        let _made = self.images.lock().unwrap();
        if !shell.exists() {
            let bin = dir.join("bin");
            std::fs::create_dir_all(&bin)?;
            for src in ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
                let Ok(entries) = std::fs::read_dir(src) else {
                    continue;
                };
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    let link = bin.join(&name);
                    if missing.iter().any(|m| name == **m) || link.symlink_metadata().is_ok() {
                        continue;
                    }
                    std::os::unix::fs::symlink(entry.path(), link)?;
                }
            }
            let script = format!(
                "#!/bin/sh\nPATH='{}'\nexport PATH\nexec /bin/bash \"$@\"\n",
                bin.display()
            );
            std::fs::write(&shell, script)?;
            for p in [&self.root.path().join(".images"), &dir, &bin, &shell] {
                set_mode(p, 0o755)?;
            }
        }
        Ok(shell.display().to_string())
    }
}

impl SshBackend for SshdGateway {
    fn sandbox_created(&self, id: &str) -> Result<()> {
        self.sandbox_created_from(id, None)
    }

    fn sandbox_created_from(&self, id: &str, snapshot: Option<&str>) -> Result<()> {
        let shell = self.image_shell(&crate::tools_missing_from(snapshot))?;
        let short: String = id
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(10)
            .collect();
        let name = format!("cbxsb{short}");
        let home = self.root.path().join(id);
        std::fs::create_dir_all(&home)?;
        retry_useradd(&[
            "-M",
            "-U",
            "-d",
            &home.to_string_lossy(),
            "-s",
            &shell,
            &name,
        ])?;
        let (uid, gid) = ids(&name)?;
        chown(&home, uid, gid)?;
        if let Some(bin) = Path::new(&shell).parent().map(|d| d.join("bin"))
            && shell != "/bin/bash"
        {
            // Login shells (`bash -l`, `sh -l`) read /etc/profile, which sets a PATH with
            // every tool of this machine: the image's own profile sets its PATH back.
            let profile = home.join(".profile");
            std::fs::write(&profile, format!("PATH='{}'\nexport PATH\n", bin.display()))?;
            chown(&profile, uid, gid)?;
        }
        self.users.lock().unwrap().sandboxes.insert(
            id.to_string(),
            SandboxUser {
                name,
                uid,
                gid,
                home,
                shell,
            },
        );
        Ok(())
    }

    fn access_granted(&self, sandbox_id: &str, token: &str) -> Result<(String, u16)> {
        let (uid, gid, home, shell) = {
            let users = self.users.lock().unwrap();
            let s = users.sandboxes.get(sandbox_id).context("unknown sandbox")?;
            (s.uid, s.gid, s.home.clone(), s.shell.clone())
        };
        retry_useradd(&[
            "-o",
            "-u",
            &uid.to_string(),
            "-g",
            &gid.to_string(),
            "-M",
            "-d",
            &home.to_string_lossy(),
            "-s",
            &shell,
            token,
        ])?;
        let status = Command::new("passwd")
            .args(["-d", token])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("passwd -d {token} failed");
        }
        let stopped = {
            let mut users = self.users.lock().unwrap();
            users
                .tokens
                .insert(token.to_string(), sandbox_id.to_string());
            users.stopped.contains(sandbox_id)
        };
        if stopped && self.gate.is_none() {
            set_login(token, false);
        }
        Ok(self.gateway())
    }

    fn gateway(&self) -> (String, u16) {
        ("127.0.0.1".to_string(), self.sshd.port())
    }

    fn access_revoked(&self, token: &str) {
        let mut users = self.users.lock().unwrap();
        if users.tokens.remove(token).is_some() {
            if self.gate.is_some() {
                users.dropped.push(token.to_string());
                drop(users);
                self.mark("dropped", token, true);
            } else {
                drop(users);
                userdel(token);
            }
        }
    }

    fn sandbox_running(&self, id: &str, running: bool) {
        let (uid, tokens) = {
            let mut users = self.users.lock().unwrap();
            let changed = if running {
                users.stopped.remove(id)
            } else {
                users.stopped.insert(id.to_string())
            };
            let tokens = if changed {
                users.tokens_of(id)
            } else {
                Vec::new()
            };
            (users.sandboxes.get(id).map(|s| s.uid), tokens)
        };
        let Some(uid) = uid else {
            return;
        };
        self.mark("stopped", &uid.to_string(), !running);
        if self.gate.is_none() {
            // Refusing mode: a sandbox that is not started refuses logins.
            for t in &tokens {
                set_login(t, running);
            }
        }
        if !running {
            // Its processes end, the sshd sessions serving it among them (a stopped
            // container keeps no connection).
            let _ = Command::new("pkill")
                .args(["-KILL", "-u", &uid.to_string()])
                .status();
        }
    }

    fn files_saved(&self, id: &str, key: &str) -> Result<()> {
        let (home, _, _) = self.user_of(id)?;
        copy_tree(&home, &self.saved(key), None)
    }

    fn files_restored(&self, key: &str, id: &str) -> Result<()> {
        let (home, uid, gid) = self.user_of(id)?;
        copy_tree(&self.saved(key), &home, Some((uid, gid)))
    }

    fn files_copied(&self, from: &str, to: &str) -> Result<()> {
        let (source, _, _) = self.user_of(from)?;
        let (home, uid, gid) = self.user_of(to)?;
        copy_tree(&source, &home, Some((uid, gid)))
    }

    fn sandbox_deleted(&self, id: &str) {
        let (user, tokens) = {
            let mut users = self.users.lock().unwrap();
            let tokens: Vec<String> = users
                .tokens
                .iter()
                .filter(|(_, s)| *s == id)
                .map(|(t, _)| t.clone())
                .collect();
            for t in &tokens {
                users.tokens.remove(t);
            }
            users.stopped.remove(id);
            (users.sandboxes.remove(id), tokens)
        };
        for t in tokens {
            if self.gate.is_some() {
                self.mark("dropped", &t, true);
                self.users.lock().unwrap().dropped.push(t);
            } else {
                userdel(&t);
            }
        }
        if let Some(user) = user {
            let _ = Command::new("pkill")
                .args(["-KILL", "-u", &user.uid.to_string()])
                .status();
            userdel(&user.name);
            let _ = std::fs::remove_dir_all(&user.home);
        }
    }
}

impl SshdGateway {
    /// Where snapshot `key`'s files are kept.
    fn saved(&self, key: &str) -> PathBuf {
        self.root.path().join("saved").join(key)
    }

    /// The home and owner of sandbox `id`.
    fn user_of(&self, id: &str) -> Result<(PathBuf, u32, u32)> {
        let users = self.users.lock().unwrap();
        let s = users.sandboxes.get(id).context("unknown sandbox")?;
        Ok((s.home.clone(), s.uid, s.gid))
    }
}

/// Copies the contents of `from` into `to` (created if missing), keeping modes and times,
/// and gives everything in `to` to `uid:gid` when given.
fn copy_tree(from: &Path, to: &Path, owner: Option<(u32, u32)>) -> Result<()> {
    std::fs::create_dir_all(to)?;
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()?;
    if !status.success() {
        bail!("cp -a {} {} failed", from.display(), to.display());
    }
    if let Some((uid, gid)) = owner {
        let status = Command::new("chown")
            .args(["-R", &format!("{uid}:{gid}")])
            .arg(to)
            .status()?;
        if !status.success() {
            bail!("chown -R {}", to.display());
        }
    }
    Ok(())
}

impl Drop for SshdGateway {
    fn drop(&mut self) {
        let ids: Vec<String> = self
            .users
            .lock()
            .unwrap()
            .sandboxes
            .keys()
            .cloned()
            .collect();
        for id in ids {
            self.sandbox_deleted(&id);
        }
        let tokens: Vec<String> = {
            let mut users = self.users.lock().unwrap();
            let mut all: Vec<String> = users.tokens.drain().map(|(t, _)| t).collect();
            all.append(&mut users.dropped);
            all
        };
        for t in tokens {
            userdel(&t);
        }
    }
}

fn retry_useradd(args: &[&str]) -> Result<()> {
    let mut last = String::new();
    for _ in 0..100 {
        let out = Command::new("/usr/sbin/useradd").args(args).output()?;
        if out.status.success() {
            return Ok(());
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        // Another useradd holds the passwd lock: wait and retry.
        if out.status.code() == Some(10) || last.contains("lock") {
            std::thread::sleep(Duration::from_millis(30));
            continue;
        }
        break;
    }
    bail!("useradd {}: {last}", args.join(" "))
}

fn userdel(name: &str) {
    for _ in 0..100 {
        let out = Command::new("/usr/sbin/userdel")
            .args(["-f", name])
            .output();
        match out {
            Ok(o) if o.status.success() || o.status.code() == Some(6) => return,
            Ok(o)
                if o.status.code() == Some(10)
                    || String::from_utf8_lossy(&o.stderr).contains("lock") =>
            {
                std::thread::sleep(Duration::from_millis(30));
            }
            _ => return,
        }
    }
}

fn ids(name: &str) -> Result<(u32, u32)> {
    let read = |flag: &str| -> Result<u32> {
        let out = Command::new("id").args([flag, name]).output()?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
    };
    Ok((read("-u")?, read("-g")?))
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .with_context(|| format!("chown {}", path.display()))
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}
