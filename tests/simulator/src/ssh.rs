//! The pluggable SSH side of the simulator: what happens on the "runner" when sandboxes come
//! and go and when SSH tokens are minted or revoked.

/// Receives the simulator's SSH-relevant events; a real backend maps tokens to sshd users.
///
/// Calls are made from a blocking thread, never while the simulator's state lock is held, so an
/// implementation may block briefly (spawn `useradd`, write files, ...).
pub trait SshBackend: Send + Sync {
    /// A sandbox was created; an error puts the sandbox into the `error` state.
    fn sandbox_created(&self, id: &str) -> anyhow::Result<()>;
    /// A sandbox was created from `snapshot` (none: built from a Dockerfile). A backend that
    /// models images overrides this; by default it is [`SshBackend::sandbox_created`].
    fn sandbox_created_from(&self, id: &str, snapshot: Option<&str>) -> anyhow::Result<()> {
        let _ = snapshot;
        self.sandbox_created(id)
    }
    /// A token was minted for `sandbox_id`; returns the gateway `(host, port)` to advertise.
    fn access_granted(&self, sandbox_id: &str, token: &str) -> anyhow::Result<(String, u16)>;
    /// The gateway `(host, port)` minted access names (by default `127.0.0.1:2222`; a
    /// backend advertising another one says so).
    fn gateway(&self) -> (String, u16) {
        ("127.0.0.1".to_string(), 2222)
    }
    /// A token was revoked (replaced, deleted, expired, or its sandbox went away).
    fn access_revoked(&self, token: &str);
    /// A sandbox finished deleting and is gone (404) from now on.
    fn sandbox_deleted(&self, id: &str);
    /// A snapshot `key` of sandbox `id` is being taken: keep a copy of its files.
    fn files_saved(&self, _id: &str, _key: &str) -> anyhow::Result<()> {
        Ok(())
    }
    /// Sandbox `id` was created from snapshot `key`: give it the saved files.
    fn files_restored(&self, _key: &str, _id: &str) -> anyhow::Result<()> {
        Ok(())
    }
    /// Sandbox `to` is a fork of `from`: give it a copy of `from`'s files.
    fn files_copied(&self, _from: &str, _to: &str) -> anyhow::Result<()> {
        Ok(())
    }
    /// A sandbox's stored state became `started` (`running`), or left it. Daytona's gateway
    /// lets a connection through only to a started sandbox.
    fn sandbox_running(&self, _id: &str, _running: bool) {}
}

/// The tools a sandbox made from `snapshot` lacks: a snapshot whose name contains `no-rsync`
/// has no rsync (as Daytona's `sandbox-slim` image), one whose name also contains `no-tar`
/// has no tar either. Every other image has both.
pub fn tools_missing_from(snapshot: Option<&str>) -> Vec<&'static str> {
    let name = snapshot.unwrap_or_default();
    let mut missing = Vec::new();
    if name.contains("no-rsync") {
        missing.push("rsync");
    }
    if name.contains("no-tar") {
        missing.push("tar");
    }
    missing
}

/// A backend that does nothing and advertises the gateway `127.0.0.1:2222`.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSsh;

impl SshBackend for NoSsh {
    fn sandbox_created(&self, _id: &str) -> anyhow::Result<()> {
        Ok(())
    }

    fn access_granted(&self, _sandbox_id: &str, _token: &str) -> anyhow::Result<(String, u16)> {
        Ok(self.gateway())
    }

    fn gateway(&self) -> (String, u16) {
        ("127.0.0.1".to_string(), 2222)
    }

    fn access_revoked(&self, _token: &str) {}

    fn sandbox_deleted(&self, _id: &str) {}
}

/// Builds the `sshCommand` string Daytona returns (no `-p` for port 22).
pub(crate) fn ssh_command(token: &str, host: &str, port: u16) -> String {
    if port == 22 {
        format!("ssh {token}@{host}")
    } else {
        format!("ssh -p {port} {token}@{host}")
    }
}

/// Mints a token shaped like Daytona's (addendum §7): 32 characters of `[A-Za-z0-9]`, upper
/// and lower case, possibly starting with a digit. (One made only of digits — about one in
/// 10^25 — is drawn again: `useradd` refuses an all-digit user name.)
pub(crate) fn mint_token() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    loop {
        let token: String = (0..32)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        if !token.bytes().all(|b| b.is_ascii_digit()) {
            return token;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_32_alphanumerics_of_both_cases() {
        let tokens: Vec<String> = (0..400).map(|_| super::mint_token()).collect();
        assert!(
            tokens
                .iter()
                .all(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_alphanumeric()))
        );
        assert!(
            tokens
                .iter()
                .any(|t| t.bytes().any(|b| b.is_ascii_uppercase()))
        );
        assert!(tokens.iter().any(|t| t.as_bytes()[0].is_ascii_digit()));
    }
}
