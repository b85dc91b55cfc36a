//! Caps on everything that crosses the boundary from a provider: the strings and lists its
//! exports return and the requests it sends. Checked by the host as soon as a call returns (or
//! a request is made), before anything acts on the data; a breach fails the call as a fault
//! naming the field and the cap (exit 8), never a 48 MiB print. docs/security.md lists them.
//!
//! `describe` is held to more than size: a version that is semver, and descriptions, option
//! names and feature words that are one printable line each, since they are shown in the
//! approval screen.

use super::bindings::api::{
    Check, CheckpointInfo, Profile, ProviderError, ProviderInfo, Sandbox, SshAccess,
};
use super::bindings::cbx::provider::http::Request;
use super::capability::Forked;
use super::limits::LimitHit;
use crate::grant::manifest::{MAX_DESCRIPTION_CHARS, printable_line};

/// Most sandboxes one `list` may return.
pub const MAX_SANDBOXES: usize = 10_000;
/// Longest sandbox id, in bytes (ids may carry state: the ssh provider encodes a lease's
/// labels in up to 4 KiB of base64).
pub const MAX_ID: usize = 8192;
/// Longest sandbox name, in bytes.
pub const MAX_SANDBOX_NAME: usize = 256;
/// Longest provider state word, in bytes.
pub const MAX_STATE: usize = 128;
/// Longest reason, doctor check detail or log line, in bytes.
pub const MAX_DETAIL: usize = 4096;
/// Longest error message, in bytes.
pub const MAX_ERROR: usize = 8192;
/// Most labels on one sandbox.
pub const MAX_LABELS: usize = 64;
/// Longest label key, in bytes.
pub const MAX_LABEL_KEY: usize = 128;
/// Longest label value, work root, profile summary value or option default, in bytes.
pub const MAX_VALUE: usize = 1024;
/// Longest timestamp, in bytes.
pub const MAX_TIME: usize = 64;
/// Most doctor checks, options or profile summary entries.
pub const MAX_ITEMS: usize = 64;
/// Longest short name (check, option, feature, summary key, version), in bytes.
pub const MAX_NAME: usize = 64;
/// Longest doctor check name, in bytes.
pub const MAX_CHECK_NAME: usize = 128;
/// Most features.
pub const MAX_FEATURES: usize = 32;
/// Longest SSH user (an access token for some services) or identity-file path, in bytes.
pub const MAX_SSH_USER: usize = 4096;
/// Longest SSH host name, in bytes.
pub const MAX_HOST: usize = 255;
/// Longest request URL and header value, in bytes.
pub const MAX_URL: usize = 8192;
/// Most headers on one request.
pub const MAX_HEADERS: usize = 64;
/// Longest request body, in bytes.
pub const MAX_REQUEST_BODY: usize = 1 << 20;

/// Why what a provider returned is refused: a cap it breached, or a rule it broke.
#[derive(Debug, Clone)]
pub struct Breach {
    /// The cap, if a size was the problem.
    pub limit: Option<LimitHit>,
    /// What is wrong, naming the field.
    pub message: String,
}

impl From<LimitHit> for Breach {
    fn from(limit: LimitHit) -> Breach {
        Breach {
            limit: Some(limit),
            message: limit.to_string(),
        }
    }
}

/// What a provider's export may return, checked against the caps.
pub trait Bounded {
    /// `Ok` if it fits; else the first breach.
    fn bounded(&self) -> Result<(), Breach>;
}

/// `Err` if `text` is longer than `cap` bytes.
fn bytes(what: &'static str, text: &str, cap: usize) -> Result<(), LimitHit> {
    count(what, text.len(), cap, "bytes")
}

/// `Err` if `size` is over `cap`.
fn count(what: &'static str, size: usize, cap: usize, unit: &'static str) -> Result<(), LimitHit> {
    if size > cap {
        return Err(LimitHit::Oversize {
            what,
            size,
            cap,
            unit,
        });
    }
    Ok(())
}

impl Bounded for () {
    fn bounded(&self) -> Result<(), Breach> {
        Ok(())
    }
}

impl Bounded for Sandbox {
    fn bounded(&self) -> Result<(), Breach> {
        bytes("sandbox id", &self.id, MAX_ID)?;
        bytes("sandbox name", &self.name, MAX_SANDBOX_NAME)?;
        bytes("provider state", &self.provider_state, MAX_STATE)?;
        if let Some(r) = &self.reason {
            bytes("reason", r, MAX_DETAIL)?;
        }
        if let Some(t) = &self.created_at {
            bytes("created-at", t, MAX_TIME)?;
        }
        count("labels", self.labels.len(), MAX_LABELS, "entries")?;
        for (k, v) in &self.labels {
            bytes("label key", k, MAX_LABEL_KEY)?;
            bytes("label value", v, MAX_VALUE)?;
        }
        Ok(())
    }
}

impl Bounded for Vec<Sandbox> {
    fn bounded(&self) -> Result<(), Breach> {
        count("sandbox list", self.len(), MAX_SANDBOXES, "entries")?;
        self.iter().try_for_each(Bounded::bounded)
    }
}

impl Bounded for ProviderError {
    fn bounded(&self) -> Result<(), Breach> {
        let text = match self {
            ProviderError::InvalidConfig(m)
            | ProviderError::Unauthorized(m)
            | ProviderError::Forbidden(m)
            | ProviderError::NotFound(m)
            | ProviderError::Conflict(m)
            | ProviderError::Quota(m)
            | ProviderError::Unavailable(m)
            | ProviderError::Other(m) => m,
            ProviderError::RateLimited(r) => &r.message,
        };
        Ok(bytes("error message", text, MAX_ERROR)?)
    }
}

impl Bounded for Profile {
    fn bounded(&self) -> Result<(), Breach> {
        bytes("work root", &self.work_root, MAX_VALUE)?;
        count("profile summary", self.summary.len(), MAX_ITEMS, "entries")?;
        for (k, v) in &self.summary {
            bytes("profile summary key", k, MAX_NAME)?;
            bytes("profile summary value", v, MAX_VALUE)?;
        }
        Ok(())
    }
}

impl Bounded for Vec<Check> {
    fn bounded(&self) -> Result<(), Breach> {
        count("doctor checks", self.len(), MAX_ITEMS, "entries")?;
        for c in self {
            bytes("doctor check name", &c.name, MAX_CHECK_NAME)?;
            bytes("doctor check detail", &c.detail, MAX_DETAIL)?;
        }
        Ok(())
    }
}

impl Bounded for SshAccess {
    fn bounded(&self) -> Result<(), Breach> {
        bytes("SSH user", &self.user, MAX_SSH_USER)?;
        bytes("SSH host", &self.host, MAX_HOST)?;
        if let Some(f) = &self.identity_file {
            bytes("SSH identity file", f, MAX_SSH_USER)?;
        }
        if let Some(t) = &self.expires_at {
            bytes("SSH expires-at", t, MAX_TIME)?;
        }
        Ok(())
    }
}

impl Bounded for ProviderInfo {
    fn bounded(&self) -> Result<(), Breach> {
        bytes("name", &self.name, MAX_NAME)?;
        bytes("version", &self.version, MAX_NAME)?;
        bytes("description", &self.description, 4 * MAX_DESCRIPTION_CHARS)?;
        count("options", self.options.len(), MAX_ITEMS, "entries")?;
        count("features", self.features.len(), MAX_FEATURES, "entries")?;
        for o in &self.options {
            bytes("option name", &o.name, MAX_NAME)?;
            bytes(
                "option description",
                &o.description,
                4 * MAX_DESCRIPTION_CHARS,
            )?;
            if let Some(d) = &o.default {
                bytes("option default", d, MAX_VALUE)?;
            }
        }
        for f in &self.features {
            bytes("feature", f, MAX_NAME)?;
        }
        described_well(self).map_err(|message| Breach {
            limit: None,
            message,
        })
    }
}

/// The rules of `describe` beyond size: a semver version; a description and option
/// descriptions of one printable line; option names and features in lowercase kebab-case.
fn described_well(info: &ProviderInfo) -> Result<(), String> {
    if semver::Version::parse(&info.version).is_err() {
        return Err(format!(
            "its version `{}` is not a semantic version (like 1.2.0)",
            crate::terminal::inert(&info.version)
        ));
    }
    printable_line(&info.description, MAX_DESCRIPTION_CHARS)
        .map_err(|why| format!("its description {why}"))?;
    for o in &info.options {
        if !is_kebab(&o.name) {
            return Err(format!(
                "its option name `{}` is not lowercase kebab-case",
                crate::terminal::inert(&o.name)
            ));
        }
        printable_line(&o.description, MAX_DESCRIPTION_CHARS)
            .map_err(|why| format!("the description of its option `{}` {why}", o.name))?;
        if let Some(d) = &o.default {
            printable_line(d, MAX_VALUE)
                .map_err(|why| format!("the default of its option `{}` {why}", o.name))?;
        }
    }
    for f in &info.features {
        if !is_kebab(f) {
            return Err(format!(
                "its feature `{}` is not lowercase kebab-case",
                crate::terminal::inert(f)
            ));
        }
    }
    Ok(())
}

/// `a-z`, `0-9` and `-`, starting with a letter.
fn is_kebab(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Checks a request a provider sends: URL, headers and body within the caps.
pub fn request(r: &Request) -> Result<(), LimitHit> {
    bytes("request URL", &r.url, MAX_URL)?;
    count("request headers", r.headers.len(), MAX_HEADERS, "entries")?;
    for (name, value) in &r.headers {
        bytes("request header name", name, MAX_NAME * 4)?;
        bytes("request header value", value, MAX_URL)?;
    }
    if let Some(body) = &r.body {
        count("request body", body.len(), MAX_REQUEST_BODY, "bytes")?;
    }
    Ok(())
}

impl Bounded for CheckpointInfo {
    fn bounded(&self) -> Result<(), Breach> {
        bytes("checkpoint id", &self.id, MAX_ID)?;
        bytes("checkpoint name", &self.name, MAX_SANDBOX_NAME)?;
        bytes("provider state", &self.provider_state, MAX_STATE)?;
        if let Some(r) = &self.reason {
            bytes("checkpoint reason", r, MAX_DETAIL)?;
        }
        if let Some(t) = &self.created_at {
            bytes("created-at", t, MAX_TIME)?;
        }
        Ok(())
    }
}

impl Bounded for Vec<CheckpointInfo> {
    fn bounded(&self) -> Result<(), Breach> {
        count("checkpoint list", self.len(), MAX_SANDBOXES, "entries")?;
        self.iter().try_for_each(Bounded::bounded)
    }
}

impl Bounded for Forked {
    fn bounded(&self) -> Result<(), Breach> {
        match self {
            Forked::Sandbox(s) => s.bounded(),
            Forked::NotForkable(m) => Ok(bytes("fork refusal", m, MAX_ERROR)?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::api::{OptionKind, OptionSpec, SandboxState};

    fn sandbox() -> Sandbox {
        Sandbox {
            id: "s-1".into(),
            name: "cbx-x".into(),
            state: SandboxState::Ready,
            provider_state: "started".into(),
            reason: None,
            labels: vec![("cbx".into(), "true".into())],
            created_at: None,
        }
    }

    fn info() -> ProviderInfo {
        ProviderInfo {
            name: "p".into(),
            version: "1.2.3-rc.1".into(),
            description: "A provider".into(),
            options: vec![OptionSpec {
                name: "snap-shot2".into(),
                description: "Which snapshot".into(),
                kind: OptionKind::Text,
                default: Some(String::new()),
            }],
            features: vec!["start".into()],
        }
    }

    #[test]
    fn a_breach_names_the_field_and_the_cap() {
        assert!(sandbox().bounded().is_ok());
        let mut s = sandbox();
        s.name = "x".repeat(300);
        let b = s.bounded().unwrap_err();
        assert_eq!(
            b.message,
            "its sandbox name of 300 bytes is over the cap of 256 bytes"
        );
        assert!(b.limit.is_some());
        let many = vec![sandbox(); MAX_SANDBOXES + 1];
        assert!(
            many.bounded()
                .unwrap_err()
                .message
                .contains("sandbox list of 10001 entries")
        );
        let e = ProviderError::Other("e".repeat(MAX_ERROR + 1));
        assert!(e.bounded().unwrap_err().message.contains("error message"));
    }

    #[test]
    fn describe_needs_semver_and_printable_lines() {
        assert!(info().bounded().is_ok());
        let mut i = info();
        i.version = "v1".into();
        let b = i.bounded().unwrap_err();
        assert_eq!(
            b.message,
            "its version `v1` is not a semantic version (like 1.2.0)"
        );
        assert!(b.limit.is_none());
        let mut i = info();
        i.description = "fine\nApprove? [y/N]".into();
        assert!(
            i.bounded()
                .unwrap_err()
                .message
                .starts_with("its description contains control")
        );
        let mut i = info();
        i.description = "d".repeat(MAX_DESCRIPTION_CHARS + 1);
        assert!(
            i.bounded()
                .unwrap_err()
                .message
                .contains("at most 200 are shown")
        );
        let mut i = info();
        i.options[0].name = "Snap\x1b".into();
        assert!(
            i.bounded()
                .unwrap_err()
                .message
                .contains("`Snap\\x1b` is not lowercase")
        );
    }

    #[test]
    fn requests_are_capped() {
        let r = |body: usize| Request {
            method: crate::provider::bindings::cbx::provider::http::Method::Post,
            url: "https://x.example/".into(),
            headers: vec![],
            body: Some(vec![0; body]),
            timeout_ms: None,
        };
        assert!(request(&r(MAX_REQUEST_BODY)).is_ok());
        assert_eq!(
            request(&r(MAX_REQUEST_BODY + 1)).unwrap_err().to_string(),
            "its request body of 1048577 bytes is over the cap of 1048576 bytes"
        );
    }
}
