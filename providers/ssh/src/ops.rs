//! The lease operations on an existing SSH host.
//!
//! There is no service behind this provider: the "sandbox" is the host named by the options,
//! always there and always ready, and the provider cannot reach it (its grant is empty; cbx's
//! own `ssh` connects). Each lease is a sandbox id that carries the labels cbx gave it (see
//! [`crate::codec`]), so every operation is a pure function of the id and the options.

use crate::cbx::provider::types::{
    Check, CheckStatus, CreateRequest, ProviderError, Sandbox, SandboxState, SshAccess,
};
use crate::codec::{self, EncodeError};
use crate::config::Config;

/// The provider's name, as in its manifest.
pub const NAME: &str = "ssh";
/// The word shown as the sandbox's state: the host is assumed reachable until `ssh` says not.
pub const PROVIDER_STATE: &str = "ready";
/// The state word of a lease made on another target than the configured one.
pub const OTHER_TARGET: &str = "other-target";

/// The operations for one configuration.
pub struct SshHost<'a> {
    cfg: &'a Config,
}

impl<'a> SshHost<'a> {
    /// Operations against the host `cfg` names.
    pub fn new(cfg: &'a Config) -> SshHost<'a> {
        SshHost { cfg }
    }

    fn target_check(&self) -> u32 {
        codec::target_check(&self.cfg.target())
    }

    /// What can be said without reaching the host: where cbx will connect and with what.
    pub fn doctor(&self) -> Vec<Check> {
        let check = |name: &str, status: CheckStatus, detail: String| Check {
            name: name.to_string(),
            status,
            detail,
        };
        let mut checks = vec![check(
            "target",
            CheckStatus::Ok,
            format!(
                "{} (not contacted: this provider has no network access; cbx connects with ssh \
                 when a command runs and reports a failed login then)",
                self.cfg.target()
            ),
        )];
        checks.push(match &self.cfg.identity_file {
            Some(key) => check(
                "identity-file",
                CheckStatus::Ok,
                format!("{key} (read by ssh on this machine, never by the provider)"),
            ),
            None => check(
                "identity-file",
                CheckStatus::Warn,
                "none set: cbx's ssh then offers no key, agent or password, so only a host that \
                 lets the user in without authentication works; set identity-file to a private \
                 key path"
                    .to_string(),
            ),
        });
        checks.push(check(
            "work-root",
            CheckStatus::Ok,
            format!(
                "{} on the host; work directories stay there after `cbx stop` (the host is \
                 never deleted)",
                self.cfg.work_root
            ),
        ));
        checks
    }

    /// Makes the lease's sandbox: an id carrying its name, the target and its labels. The host
    /// itself is not touched; TTL and idle timeout are cbx's to enforce.
    pub fn create(&self, request: &CreateRequest) -> Result<Sandbox, ProviderError> {
        let id = codec::encode(&request.name, self.target_check(), NAME, &request.labels).map_err(
            |e| match e {
                EncodeError::BadName => ProviderError::Other(format!(
                    "sandbox name {:?} must be 1 to {} lowercase letters, digits and dashes",
                    request.name,
                    codec::MAX_NAME_LEN
                )),
                EncodeError::DuplicateKey(k) => {
                    ProviderError::Other(format!("label {k:?} is given twice"))
                }
                EncodeError::TooLarge => ProviderError::Other(
                    "the labels are too large to keep in an ssh sandbox id".to_string(),
                ),
            },
        )?;
        self.get(&id)
    }

    /// Reads the sandbox back out of its id: `ready`, or `failed` when the lease was made on
    /// another target than the configured one (the host would sync to and run on the wrong
    /// machine). An id this provider did not make is `not-found`.
    pub fn get(&self, id: &str) -> Result<Sandbox, ProviderError> {
        let decoded = codec::decode(id, NAME).ok_or_else(|| {
            ProviderError::NotFound(format!(
                "{id:?} is not a sandbox id of the ssh provider (it encodes the lease's labels \
                 after the name)"
            ))
        })?;
        let moved = decoded.target != self.target_check();
        Ok(Sandbox {
            id: id.to_string(),
            name: decoded.name,
            state: if moved {
                SandboxState::Failed
            } else {
                SandboxState::Ready
            },
            provider_state: if moved { OTHER_TARGET } else { PROVIDER_STATE }.to_string(),
            reason: moved.then(|| self.other_target()),
            labels: decoded.labels,
            created_at: None,
        })
    }

    /// Why a lease made on another target cannot be used.
    fn other_target(&self) -> String {
        format!(
            "the lease was made on another SSH host, port or user than the configured {}; set \
             the options back to use it, or `cbx stop` it",
            self.cfg.target()
        )
    }

    /// Nothing to list: leases live only in their ids, which cbx keeps in its local claims.
    pub fn list(&self) -> Vec<Sandbox> {
        Vec::new()
    }

    /// Labels are fixed at creation (they are part of the id). Returns the sandbox as it is
    /// afterwards, that is with the labels it was created with, which is what `get` answers.
    pub fn set_labels(&self, id: &str) -> Result<Sandbox, ProviderError> {
        self.get(id)
    }

    /// Releases the lease. The host is never deleted (cbx did not create it), and nothing is
    /// stored, so this only checks that the id is one of ours.
    pub fn delete(&self, id: &str) -> Result<(), ProviderError> {
        match codec::decode(id, NAME) {
            Some(_) => Ok(()),
            None => Err(ProviderError::NotFound(format!(
                "{id:?} is not a sandbox id of the ssh provider"
            ))),
        }
    }

    /// How to log in: straight from the options. The user name is not a secret, and access
    /// does not expire.
    pub fn mint_ssh_access(&self, id: &str) -> Result<SshAccess, ProviderError> {
        if self.get(id)?.state != SandboxState::Ready {
            return Err(ProviderError::InvalidConfig(self.other_target()));
        }
        Ok(SshAccess {
            user: self.cfg.user.clone(),
            user_is_secret: false,
            host: self.cfg.host.clone(),
            port: self.cfg.port,
            identity_file: self.cfg.identity_file.clone(),
            expires_at: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{full, settings};

    fn cfg() -> Config {
        Config::from_settings(&full()).unwrap()
    }

    fn request() -> CreateRequest {
        CreateRequest {
            name: "cbx-box-0123456789ab".to_string(),
            labels: vec![
                ("cbx".to_string(), "true".to_string()),
                ("cbx_provider".to_string(), "ssh".to_string()),
                ("cbx_lease".to_string(), "cbx_0123456789ab".to_string()),
                ("cbx_slug".to_string(), "box".to_string()),
            ],
            idle_timeout_minutes: 30,
            ttl_minutes: 90,
        }
    }

    #[test]
    fn create_then_get_returns_the_labels_ready() {
        let cfg = cfg();
        let ops = SshHost::new(&cfg);
        let created = ops.create(&request()).unwrap();
        assert!(created.id.starts_with("cbx-box-0123456789ab."));
        assert_eq!(created.name, "cbx-box-0123456789ab");
        assert_eq!(created.state, SandboxState::Ready);
        assert_eq!(created.labels, request().labels);
        let got = ops.get(&created.id).unwrap();
        assert_eq!(got.id, created.id);
        assert_eq!(got.labels, request().labels);
        // A later invocation (a fresh instance, same options) reads the same.
        let again = cfg.clone();
        let fresh = SshHost::new(&again).get(&created.id).unwrap();
        assert_eq!((fresh.name, fresh.labels), (got.name, got.labels));
    }

    #[test]
    fn unknown_ids_and_names_are_not_found() {
        let cfg = cfg();
        let ops = SshHost::new(&cfg);
        for id in ["cbx-box-0123456789ab", "", "x.y", "sb-1"] {
            assert!(
                matches!(ops.get(id), Err(ProviderError::NotFound(_))),
                "{id}"
            );
            assert!(matches!(ops.delete(id), Err(ProviderError::NotFound(_))));
        }
    }

    #[test]
    fn another_target_does_not_see_the_lease() {
        let cfg = cfg();
        let id = SshHost::new(&cfg).create(&request()).unwrap().id;
        let mut moved = full();
        moved.options.push(("port".to_string(), "22".to_string()));
        let other = Config::from_settings(&moved).unwrap();
        let seen = SshHost::new(&other).get(&id).unwrap();
        assert_eq!(seen.state, SandboxState::Failed);
        assert_eq!(seen.provider_state, "other-target");
        let reason = seen.reason.unwrap();
        assert!(
            reason.contains("another SSH host") && reason.contains("dev@127.0.0.1:22"),
            "{reason}"
        );
        assert!(matches!(
            SshHost::new(&other).mint_ssh_access(&id),
            Err(ProviderError::InvalidConfig(_))
        ));
        // It can still be released there.
        assert!(SshHost::new(&other).delete(&id).is_ok());
        // The identity file is not part of the target.
        let mut rekeyed = full();
        rekeyed
            .options
            .push(("identity-file".to_string(), "/other/key".to_string()));
        let rekeyed = Config::from_settings(&rekeyed).unwrap();
        assert!(SshHost::new(&rekeyed).get(&id).is_ok());
    }

    #[test]
    fn labels_are_fixed_at_creation() {
        let cfg = cfg();
        let ops = SshHost::new(&cfg);
        let id = ops.create(&request()).unwrap().id;
        let after = ops.set_labels(&id).unwrap();
        assert_eq!(after.labels, request().labels);
        assert!(ops.list().is_empty());
    }

    #[test]
    fn bad_requests() {
        let cfg = cfg();
        let ops = SshHost::new(&cfg);
        let mut r = request();
        r.name = "Bad.Name".to_string();
        assert!(matches!(ops.create(&r), Err(ProviderError::Other(_))));
        let mut r = request();
        r.labels.push(("cbx".to_string(), "false".to_string()));
        assert!(
            matches!(ops.create(&r), Err(ProviderError::Other(ref m)) if m.contains("\"cbx\""))
        );
    }

    #[test]
    fn ssh_access_comes_from_the_options() {
        let cfg = cfg();
        let ops = SshHost::new(&cfg);
        let id = ops.create(&request()).unwrap().id;
        let access = ops.mint_ssh_access(&id).unwrap();
        assert_eq!(access.user, "dev");
        assert!(!access.user_is_secret);
        assert_eq!(access.host, "127.0.0.1");
        assert_eq!(access.port, 2222);
        assert_eq!(
            access.identity_file.as_deref(),
            Some("/home/me/.ssh/id_ed25519")
        );
        assert_eq!(access.expires_at, None);
        assert!(ops.mint_ssh_access("nope").is_err());
    }

    #[test]
    fn doctor_describes_the_target() {
        let cfg = cfg();
        let checks = SshHost::new(&cfg).doctor();
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["target", "identity-file", "work-root"]);
        assert!(checks.iter().all(|c| c.status == CheckStatus::Ok));
        assert!(checks[0].detail.starts_with("dev@127.0.0.1:2222"));

        let keyless = Config::from_settings(&settings(&[("host", "h"), ("user", "u")])).unwrap();
        let checks = SshHost::new(&keyless).doctor();
        assert_eq!(checks[1].status, CheckStatus::Warn);
    }
}
