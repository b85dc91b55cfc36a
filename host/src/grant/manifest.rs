//! The provider manifest (`cbx-provider.toml`): what a provider asks to be granted.
//!
//! It is validated when loaded, and every problem is reported with the line to change.
//! See docs/security.md for what each field grants.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;
use url::Url;

use super::destination::DestinationPattern;
use super::headers;
use crate::diagnostic::Diagnostic;

/// A validated provider manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The provider's name, e.g. `daytona`.
    pub name: String,
    /// One line about the provider.
    pub description: String,
    /// HTTP endpoints the provider may reach, by name.
    pub endpoints: Vec<EndpointDecl>,
    /// Credentials the host attaches for it.
    pub credentials: Vec<CredentialDecl>,
    /// Which credentials satisfy authentication, if the provider needs any.
    pub auth: Option<AuthDecl>,
    /// Options a repository's `cbx.toml` may not set, because they choose where the user's
    /// files or keys go (e.g. the host of an existing SSH server).
    pub user_only_options: Vec<String>,
    /// Where the provider's sandboxes are reached over SSH (`[ssh]`); none: nowhere.
    pub ssh: Option<SshDecl>,
    /// Where the manifest came from, for messages (`builtin:daytona` or a path).
    pub origin: String,
    /// Hex sha256 of the manifest's text, so an approval can pin all of it.
    pub sha256: String,
    /// Its HTTP request caps (`[limits]`; defaults where it sets none).
    pub requests: RequestCaps,
}

/// How many HTTP requests a provider may make, per call of one of its operations and per run
/// (one cbx invocation). A manifest may set them (`[limits]`, up to [`RequestCaps::MAX`]); the
/// user may only lower them. Enough for Daytona to walk a list of 50,000 sandboxes in one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestCaps {
    /// Requests one call may make.
    pub per_call: u32,
    /// Requests one run may make, all calls together.
    pub per_run: u32,
}

impl RequestCaps {
    /// The caps of a manifest that sets none.
    pub const DEFAULT: RequestCaps = RequestCaps {
        per_call: 500,
        per_run: 5000,
    };
    /// The most a manifest may ask for.
    pub const MAX: RequestCaps = RequestCaps {
        per_call: 10_000,
        per_run: 100_000,
    };
}

/// An HTTP endpoint a provider may reach: a base URL under which all its requests must lie.
/// Serialized as `providers inspect --json` reports it (docs/cli.md).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointDecl {
    /// The endpoint's name, e.g. `api`.
    pub name: String,
    /// The default base URL.
    pub url: Url,
    /// An environment variable that may override the URL.
    pub env: Option<String>,
    /// What the endpoint is.
    pub description: String,
}

/// A credential: read by the host from an environment variable and attached as a header to
/// requests for one endpoint. Serialized as `providers inspect --json` reports it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialDecl {
    /// The credential's name, e.g. `api-key`.
    pub name: String,
    /// The environment variable holding the value.
    pub env: String,
    /// The endpoint it may be sent to.
    pub endpoint: String,
    /// The header it is sent in.
    pub header: String,
    /// The header value, with `{value}` standing for the credential.
    pub format: String,
    /// Whether the value is secret (redacted everywhere). Defaults to true.
    pub secret: bool,
    /// Other credentials that must be set when this one is used.
    pub requires: Vec<String>,
    /// What the credential is.
    pub description: String,
}

/// Where a provider's sandboxes are reached over SSH (`[ssh]`): the destinations its
/// `mint-ssh-access` may return, and the user-only options naming the user's own host and key.
/// Serialized as `providers inspect --json` reports it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SshDecl {
    /// Host patterns and ports (empty when the destination is the user's options).
    pub destinations: Vec<DestinationPattern>,
    /// An environment variable that may replace `destinations` (a self-hosted service).
    pub env: Option<String>,
    /// The user-only option whose value is the one host to connect to.
    pub host_option: Option<String>,
    /// The user-only option whose value is its port (22 without one).
    pub port_option: Option<String>,
    /// The user-only option whose value is the key file to log in with.
    pub identity_option: Option<String>,
    /// What the destinations are.
    pub description: String,
}

/// Authentication alternatives: the first credential of `one_of` that is set is used.
#[derive(Debug, Clone)]
pub struct AuthDecl {
    /// Credential names, in order of preference.
    pub one_of: Vec<String>,
    /// What to tell a user who has none of them.
    pub hint: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    provider: RawProvider,
    #[serde(default)]
    endpoints: BTreeMap<String, Spanned<RawEndpoint>>,
    #[serde(default)]
    credentials: BTreeMap<String, Spanned<RawCredential>>,
    auth: Option<RawAuth>,
    options: Option<RawOptions>,
    limits: Option<RawLimits>,
    ssh: Option<Spanned<RawSsh>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLimits {
    requests_per_call: Option<Spanned<u32>>,
    requests_per_run: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSsh {
    #[serde(default)]
    destinations: Vec<Spanned<String>>,
    env: Option<Spanned<String>>,
    host_option: Option<Spanned<String>>,
    port_option: Option<Spanned<String>>,
    identity_option: Option<Spanned<String>>,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawOptions {
    #[serde(default)]
    user_only: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    name: Spanned<String>,
    description: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoint {
    url: Spanned<String>,
    env: Option<Spanned<String>>,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredential {
    env: Spanned<String>,
    endpoint: Spanned<String>,
    header: Spanned<String>,
    format: Spanned<String>,
    #[serde(default = "yes")]
    secret: bool,
    #[serde(default)]
    requires: Vec<Spanned<String>>,
    #[serde(default)]
    description: String,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawAuth {
    one_of: Vec<Spanned<String>>,
    hint: Option<String>,
}

impl Manifest {
    /// Parses and validates a manifest. `file` names it in errors.
    pub fn parse(file: &str, source: &str) -> Result<Manifest, Diagnostic> {
        let raw: RawManifest =
            toml::from_str(source).map_err(|e| Diagnostic::from_toml(file, source, &e))?;
        let check = Checker { file, source };
        let name = raw.provider.name.get_ref().clone();
        if !is_name(&name) {
            return Err(check.at(
                raw.provider.name.span(),
                format!(
                    "provider name `{name}` must be lowercase letters, digits and dashes, starting with a letter (at most 32)"
                ),
            ));
        }
        check.descriptions(&raw)?;
        let endpoints = check.endpoints(&raw)?;
        let credentials = raw
            .credentials
            .iter()
            .map(|(name, cred)| check.credential(&raw, name, cred))
            .collect::<Result<Vec<_>, _>>()?;
        let auth = check.auth(&raw)?;
        check.no_colliding_headers(&raw, &credentials, auth.as_ref())?;
        let requests = check.limits(raw.limits.as_ref())?;
        let ssh = check.ssh(&raw)?;
        Ok(Manifest {
            name,
            description: raw
                .provider
                .description
                .map(Spanned::into_inner)
                .unwrap_or_default(),
            requests,
            endpoints,
            credentials,
            auth,
            user_only_options: raw.options.map(|o| o.user_only).unwrap_or_default(),
            ssh,
            origin: file.to_string(),
            sha256: crate::digest::sha256_hex(source.as_bytes()),
        })
    }

    /// The endpoint called `name`, if declared.
    pub fn endpoint(&self, name: &str) -> Option<&EndpointDecl> {
        self.endpoints.iter().find(|e| e.name == name)
    }

    /// The credential called `name`, if declared.
    pub fn credential(&self, name: &str) -> Option<&CredentialDecl> {
        self.credentials.iter().find(|c| c.name == name)
    }
}

/// Validation of one manifest's parts, pointing every problem at its line.
struct Checker<'a> {
    file: &'a str,
    source: &'a str,
}

impl Checker<'_> {
    fn at(&self, span: std::ops::Range<usize>, msg: String) -> Diagnostic {
        Diagnostic::new(self.file, self.source, span, msg)
    }

    /// Text shown to people — descriptions, the auth hint — is one printable line of at most
    /// [`MAX_DESCRIPTION_CHARS`] characters (the whole TOML value is blamed: descriptions of
    /// endpoints and credentials are not spanned on their own).
    fn descriptions(&self, raw: &RawManifest) -> Result<(), Diagnostic> {
        if let Some(d) = &raw.provider.description {
            self.one_line(
                d.span(),
                d.get_ref(),
                "provider description",
                MAX_DESCRIPTION_CHARS,
            )?;
        }
        for (name, ep) in &raw.endpoints {
            let what = format!("description of endpoint `{name}`");
            self.one_line(
                ep.span(),
                &ep.get_ref().description,
                &what,
                MAX_DESCRIPTION_CHARS,
            )?;
        }
        for (name, c) in &raw.credentials {
            let what = format!("description of credential `{name}`");
            self.one_line(
                c.span(),
                &c.get_ref().description,
                &what,
                MAX_DESCRIPTION_CHARS,
            )?;
        }
        if let Some(hint) = raw.auth.as_ref().and_then(|a| a.hint.as_ref()) {
            self.one_line(0..0, hint, "[auth] hint", 2 * MAX_DESCRIPTION_CHARS)?;
        }
        if let Some(ssh) = &raw.ssh {
            let what = "description of [ssh]";
            self.one_line(
                ssh.span(),
                &ssh.get_ref().description,
                what,
                MAX_DESCRIPTION_CHARS,
            )?;
        }
        Ok(())
    }

    fn one_line(
        &self,
        span: std::ops::Range<usize>,
        text: &str,
        what: &str,
        max: usize,
    ) -> Result<(), Diagnostic> {
        printable_line(text, max).map_err(|why| self.at(span, format!("the {what} {why}")))
    }

    /// `[limits]`: request caps between 1 and [`RequestCaps::MAX`]; defaults for the rest.
    fn limits(&self, raw: Option<&RawLimits>) -> Result<RequestCaps, Diagnostic> {
        let mut caps = RequestCaps::DEFAULT;
        let Some(raw) = raw else {
            return Ok(caps);
        };
        let fields = [
            (
                &raw.requests_per_call,
                &mut caps.per_call,
                RequestCaps::MAX.per_call,
                "requests-per-call",
            ),
            (
                &raw.requests_per_run,
                &mut caps.per_run,
                RequestCaps::MAX.per_run,
                "requests-per-run",
            ),
        ];
        for (value, cap, max, key) in fields {
            if let Some(v) = value {
                if !(1..=max).contains(v.get_ref()) {
                    return Err(self.at(
                        v.span(),
                        format!("limits.{key} must be between 1 and {max}"),
                    ));
                }
                *cap = *v.get_ref();
            }
        }
        Ok(caps)
    }

    /// `[endpoints.<name>]`: names, URLs and override variables.
    fn endpoints(&self, raw: &RawManifest) -> Result<Vec<EndpointDecl>, Diagnostic> {
        let mut endpoints = Vec::new();
        for (ep_name, ep) in &raw.endpoints {
            if !is_name(ep_name) {
                return Err(self.at(
                    ep.span(),
                    format!(
                        "endpoint name `{ep_name}` must be lowercase letters, digits and dashes"
                    ),
                ));
            }
            let ep_ref = ep.get_ref();
            let url = parse_endpoint_url(ep_ref.url.get_ref())
                .map_err(|m| self.at(ep_ref.url.span(), format!("endpoint `{ep_name}`: {m}")))?;
            let env = match &ep_ref.env {
                Some(v) if !is_env_name(v.get_ref()) => {
                    return Err(self.at(
                        v.span(),
                        format!(
                            "`{}` is not an environment variable name (use A-Z, 0-9 and _)",
                            v.get_ref()
                        ),
                    ));
                }
                Some(v) => Some(v.get_ref().clone()),
                None => None,
            };
            endpoints.push(EndpointDecl {
                name: ep_name.clone(),
                url,
                env,
                description: ep_ref.description.clone(),
            });
        }
        Ok(endpoints)
    }

    /// `[credentials.<name>]`: its variable, its endpoint, its header and format, what it
    /// requires.
    fn credential(
        &self,
        raw: &RawManifest,
        cred_name: &str,
        cred: &Spanned<RawCredential>,
    ) -> Result<CredentialDecl, Diagnostic> {
        let c = cred.get_ref();
        if !is_name(cred_name) {
            return Err(self.at(
                cred.span(),
                format!(
                    "credential name `{cred_name}` must be lowercase letters, digits and dashes"
                ),
            ));
        }
        if !is_env_name(c.env.get_ref()) {
            return Err(self.at(
                c.env.span(),
                format!(
                    "`{}` is not an environment variable name (use A-Z, 0-9 and _)",
                    c.env.get_ref()
                ),
            ));
        }
        if !raw.endpoints.contains_key(c.endpoint.get_ref()) {
            let declared: Vec<&str> = raw.endpoints.keys().map(String::as_str).collect();
            return Err(self.at(
                c.endpoint.span(),
                format!(
                    "credential `{cred_name}` is bound to endpoint `{}`, which this manifest does not declare (declared: {})",
                    c.endpoint.get_ref(),
                    if declared.is_empty() {
                        "none".to_string()
                    } else {
                        declared.join(", ")
                    }
                ),
            ));
        }
        let header = self.credential_header(c)?;
        self.credential_requires(raw, cred_name, c)?;
        Ok(CredentialDecl {
            name: cred_name.to_string(),
            env: c.env.get_ref().clone(),
            endpoint: c.endpoint.get_ref().clone(),
            header,
            format: c.format.get_ref().clone(),
            secret: c.secret,
            requires: c.requires.iter().map(|r| r.get_ref().clone()).collect(),
            description: c.description.clone(),
        })
    }

    /// A credential's header (valid, not one of the transport's) and its format.
    fn credential_header(&self, c: &RawCredential) -> Result<String, Diagnostic> {
        let header = c.header.get_ref();
        if !headers::is_valid_name(header) {
            return Err(self.at(
                c.header.span(),
                format!("`{header}` is not a valid HTTP header name"),
            ));
        }
        if headers::is_transport(header) {
            return Err(self.at(
                c.header.span(),
                format!("a credential cannot be sent in the `{header}` header"),
            ));
        }
        let format = c.format.get_ref();
        if format.matches("{value}").count() != 1 || crate::terminal::inert(format) != *format {
            return Err(self.at(
                c.format.span(),
                "format must contain `{value}` exactly once (e.g. \"Bearer {value}\") and no line breaks or other control characters".to_string(),
            ));
        }
        Ok(header.clone())
    }

    /// What a credential requires: other credentials of this manifest.
    fn credential_requires(
        &self,
        raw: &RawManifest,
        cred_name: &str,
        c: &RawCredential,
    ) -> Result<(), Diagnostic> {
        for r in &c.requires {
            if !raw.credentials.contains_key(r.get_ref()) || r.get_ref() == cred_name {
                return Err(self.at(
                    r.span(),
                    format!(
                        "credential `{cred_name}` requires `{}`, which is not another credential of this manifest",
                        r.get_ref()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `[auth] one-of`: declared credentials, at least one.
    fn auth(&self, raw: &RawManifest) -> Result<Option<AuthDecl>, Diagnostic> {
        let Some(a) = &raw.auth else {
            return Ok(None);
        };
        if a.one_of.is_empty() {
            return Err(self.at(
                0..0,
                "[auth] one-of must name at least one credential".into(),
            ));
        }
        for n in &a.one_of {
            if !raw.credentials.contains_key(n.get_ref()) {
                return Err(self.at(
                    n.span(),
                    format!(
                        "[auth] names `{}`, which is not a credential of this manifest",
                        n.get_ref()
                    ),
                ));
            }
        }
        Ok(Some(AuthDecl {
            one_of: a.one_of.iter().map(|n| n.get_ref().clone()).collect(),
            hint: a.hint.clone(),
        }))
    }

    /// `[ssh]`: either destinations (with an optional override variable) or the user-only
    /// options holding the user's own host and port; optionally the user-only option holding
    /// the key.
    fn ssh(&self, raw: &RawManifest) -> Result<Option<SshDecl>, Diagnostic> {
        let Some(ssh) = &raw.ssh else {
            return Ok(None);
        };
        let s = ssh.get_ref();
        let mut destinations = Vec::new();
        for d in &s.destinations {
            let parsed = DestinationPattern::parse(d.get_ref())
                .map_err(|m| self.at(d.span(), format!("SSH destination {m}")))?;
            destinations.push(parsed);
        }
        match (&s.host_option, destinations.is_empty()) {
            (Some(h), false) => {
                return Err(self.at(
                    h.span(),
                    "[ssh] declares `destinations` and `host-option`; use one: fixed destinations, or the user's own host".into(),
                ));
            }
            (None, true) => {
                return Err(self.at(
                    ssh.span(),
                    "[ssh] needs `destinations` (e.g. [\"ssh.example.com:22\"], where the service's sandboxes are reached) or `host-option` (the user-only option naming the user's own host)".into(),
                ));
            }
            _ => {}
        }
        if s.host_option.is_none()
            && let Some(p) = &s.port_option
        {
            return Err(self.at(p.span(), "`port-option` needs `host-option`".into()));
        }
        let env = match &s.env {
            Some(v) if s.host_option.is_some() => {
                return Err(self.at(
                    v.span(),
                    "`env` replaces `destinations`; a destination from the user's options has none"
                        .into(),
                ));
            }
            Some(v) if !is_env_name(v.get_ref()) => {
                return Err(self.at(
                    v.span(),
                    format!(
                        "`{}` is not an environment variable name (use A-Z, 0-9 and _)",
                        v.get_ref()
                    ),
                ));
            }
            other => other.as_ref().map(|v| v.get_ref().clone()),
        };
        let user_only = raw.options.as_ref().map(|o| o.user_only.as_slice());
        for option in [&s.host_option, &s.port_option, &s.identity_option]
            .into_iter()
            .flatten()
        {
            if !user_only.unwrap_or_default().contains(option.get_ref()) {
                return Err(self.at(
                    option.span(),
                    format!(
                        "option `{}` chooses where the user's files or key go, so list it in [options] user-only",
                        option.get_ref()
                    ),
                ));
            }
        }
        let name = |o: &Option<Spanned<String>>| o.as_ref().map(|v| v.get_ref().clone());
        Ok(Some(SshDecl {
            destinations,
            env,
            host_option: name(&s.host_option),
            port_option: name(&s.port_option),
            identity_option: name(&s.identity_option),
            description: s.description.clone(),
        }))
    }

    /// Two credentials sent in the same header to the same endpoint would collide unless they
    /// are alternatives of `[auth]`.
    fn no_colliding_headers(
        &self,
        raw: &RawManifest,
        credentials: &[CredentialDecl],
        auth: Option<&AuthDecl>,
    ) -> Result<(), Diagnostic> {
        for (i, a) in credentials.iter().enumerate() {
            for b in &credentials[i + 1..] {
                let alternatives = auth
                    .is_some_and(|au| au.one_of.contains(&a.name) && au.one_of.contains(&b.name));
                if a.endpoint == b.endpoint
                    && a.header.eq_ignore_ascii_case(&b.header)
                    && !alternatives
                {
                    let span = raw.credentials[&b.name].get_ref().header.span();
                    return Err(self.at(
                        span,
                        format!(
                            "credentials `{}` and `{}` are both sent in `{}` to endpoint `{}`; make them alternatives with [auth] one-of, or use different headers",
                            a.name, b.name, b.header, b.endpoint
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Longest description a manifest or a provider may give, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 200;

/// `Ok` if `text` is one line of printable characters, at most `max` of them; else why not
/// (`is longer than …`, `contains control characters …`).
pub fn printable_line(text: &str, max: usize) -> Result<(), String> {
    let len = text.chars().count();
    if len > max {
        return Err(format!("is {len} characters long; at most {max} are shown"));
    }
    if crate::terminal::inert(text) != text {
        return Err(
            "contains control characters (line breaks, escapes or bidirectional controls); it must be one printable line"
                .to_string(),
        );
    }
    Ok(())
}

/// Validates an endpoint base URL: absolute http(s), no credentials, query or fragment, and
/// plain http only to a loopback address (anything else would send credentials in clear text).
pub fn parse_endpoint_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("`{text}` is not a valid URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(format!(
                "`{text}` uses plain http; credentials would travel unencrypted. Use https (plain http is allowed only for loopback addresses)"
            ));
        }
        other => return Err(format!("`{text}` must be an http(s) URL, not {other}")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{text}` has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{text}` must not contain a user name or password"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{text}` must not have a query or fragment"));
    }
    Ok(url)
}

/// Whether the URL's host is a loopback address.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAYTONA: &str = include_str!("../../../providers/daytona/cbx-provider.toml");

    #[test]
    fn daytona_manifest_is_valid() {
        let m = Manifest::parse("daytona", DAYTONA).unwrap();
        assert_eq!(m.name, "daytona");
        assert_eq!(m.endpoints[0].url.as_str(), "https://app.daytona.io/api");
        assert_eq!(m.auth.as_ref().unwrap().one_of, ["api-key", "jwt"]);
        assert!(!m.credential("organization").unwrap().secret);
        let ssh = m.ssh.unwrap();
        assert_eq!(ssh.destinations[0].to_string(), "ssh.app.daytona.io:22");
        assert_eq!(ssh.env.as_deref(), Some("DAYTONA_SSH_GATEWAY"));
        assert_eq!(ssh.identity_option, None);
        let m = Manifest::parse(
            "ssh",
            include_str!("../../../providers/ssh/cbx-provider.toml"),
        )
        .unwrap();
        let ssh = m.ssh.unwrap();
        assert!(ssh.destinations.is_empty());
        assert_eq!(ssh.host_option.as_deref(), Some("host"));
        assert_eq!(ssh.port_option.as_deref(), Some("port"));
        assert_eq!(ssh.identity_option.as_deref(), Some("identity-file"));
    }

    #[test]
    fn ssh_declarations_are_checked_line_by_line() {
        let p = "[provider]\nname = \"p\"\n";
        for (ssh, says) in [
            (
                "[ssh]\ndestinations = [\"ok.example:22\", \"ssh.example.com\"]\n",
                "m.toml:4:34: SSH destination `ssh.example.com` needs a port",
            ),
            (
                "[ssh]\ndestinations = [\"*.127.0.0.1:22\"]\n",
                "m.toml:4:17: SSH destination `*.127.0.0.1:22`: a wildcard",
            ),
            (
                "[ssh]\ndescription = \"x\"\n",
                "m.toml:3:1: [ssh] needs `destinations`",
            ),
            (
                "[options]\nuser-only = [\"host\"]\n[ssh]\ndestinations = [\"a.example:22\"]\nhost-option = \"host\"\n",
                "m.toml:7:15: [ssh] declares `destinations` and `host-option`",
            ),
            (
                "[ssh]\nhost-option = \"host\"\n",
                "m.toml:4:15: option `host` chooses where the user's files or key go, so list it in [options] user-only",
            ),
            (
                "[options]\nuser-only = [\"host\"]\n[ssh]\nhost-option = \"host\"\nidentity-option = \"key\"\n",
                "m.toml:7:19: option `key` chooses where",
            ),
            (
                "[options]\nuser-only = [\"host\"]\n[ssh]\nhost-option = \"host\"\nenv = \"X\"\n",
                "m.toml:7:7: `env` replaces `destinations`",
            ),
            (
                "[ssh]\ndestinations = [\"a.example:22\"]\nport-option = \"port\"\n",
                "m.toml:5:15: `port-option` needs `host-option`",
            ),
            (
                "[ssh]\ndestinations = [\"a.example:22\"]\nenv = \"lower\"\n",
                "m.toml:5:7: `lower` is not an environment variable name",
            ),
            (
                "[ssh]\ndestination = [\"a.example:22\"]\n",
                "unknown field `destination`",
            ),
        ] {
            let e = err(&format!("{p}{ssh}"));
            assert!(e.contains(says), "{ssh}\n{e}");
        }
        assert!(Manifest::parse("m", p).unwrap().ssh.is_none());
    }

    fn err(src: &str) -> String {
        Manifest::parse("m.toml", src).unwrap_err().to_string()
    }

    #[test]
    fn unknown_endpoint_points_at_the_line() {
        let e = err(r#"
[provider]
name = "p"
[endpoints.api]
url = "https://x.example"
[credentials.k]
env = "K"
endpoint = "apii"
header = "Authorization"
format = "Bearer {value}"
"#);
        assert!(
            e.starts_with("m.toml:8:12: credential `k` is bound to endpoint `apii`"),
            "{e}"
        );
        assert!(e.contains("declared: api"), "{e}");
    }

    #[test]
    fn plain_http_is_refused_off_loopback() {
        let e = err("[provider]\nname = \"p\"\n[endpoints.api]\nurl = \"http://x.example\"\n");
        assert!(
            e.contains("m.toml:4:7: endpoint `api`: `http://x.example` uses plain http"),
            "{e}"
        );
        assert!(
            Manifest::parse(
                "m",
                "[provider]\nname = \"p\"\n[endpoints.api]\nurl = \"http://127.0.0.1:9/api\"\n"
            )
            .is_ok()
        );
    }

    #[test]
    fn typos_are_caught() {
        let e = err("[provider]\nname = \"p\"\n[endpoints.api]\nurll = \"https://x\"\n");
        assert!(e.contains("m.toml:4:1"), "{e}");
        assert!(e.contains("unknown field `urll`"), "{e}");
    }

    #[test]
    fn format_needs_value_placeholder() {
        let e = err(r#"
[provider]
name = "p"
[endpoints.api]
url = "https://x.example"
[credentials.k]
env = "K"
endpoint = "api"
header = "Authorization"
format = "Bearer"
"#);
        assert!(
            e.contains("m.toml:10:10: format must contain `{value}`"),
            "{e}"
        );
    }

    #[test]
    fn limits_are_checked_and_default() {
        let base = "[provider]\nname = \"p\"\n";
        let m = Manifest::parse("m", base).unwrap();
        assert_eq!(m.requests, RequestCaps::DEFAULT);
        let m = Manifest::parse("m", &format!("{base}[limits]\nrequests-per-call = 50\n")).unwrap();
        assert_eq!(m.requests.per_call, 50);
        assert_eq!(m.requests.per_run, RequestCaps::DEFAULT.per_run);
        let e = err(&format!("{base}[limits]\nrequests-per-run = 1000000\n"));
        assert!(
            e.contains("m.toml:4:20: limits.requests-per-run must be between 1 and 100000"),
            "{e}"
        );
    }

    #[test]
    fn descriptions_are_one_printable_line() {
        let e = err("[provider]\nname = \"p\"\ndescription = \"ok\\nApprove? [y/N]\"\n");
        assert!(
            e.contains("m.toml:3:15: the provider description contains control characters"),
            "{e}"
        );
        let e = err(&format!(
            "[provider]\nname = \"p\"\ndescription = \"{}\"\n",
            "d".repeat(201)
        ));
        assert!(
            e.contains("is 201 characters long; at most 200 are shown"),
            "{e}"
        );
        let e = err(
            "[provider]\nname = \"p\"\n[endpoints.api]\nurl = \"https://x.example\"\n[credentials.k]\nenv = \"K\"\nendpoint = \"api\"\nheader = \"Authorization\"\nformat = \"Bearer {value}\\u001b[8m\"\n",
        );
        assert!(
            e.contains("no line breaks or other control characters"),
            "{e}"
        );
        let e = err(
            "[provider]\nname = \"p\"\n[ssh]\ndestinations = [\"h.example:22\"]\ndescription = \"gw\\u001b]0;t\\u0007\"\n",
        );
        assert!(
            e.contains("m.toml:3:1: the description of [ssh] contains control characters"),
            "{e}"
        );
    }

    #[test]
    fn colliding_headers_need_auth_alternatives() {
        let e = err(r#"
[provider]
name = "p"
[endpoints.api]
url = "https://x.example"
[credentials.a]
env = "A"
endpoint = "api"
header = "Authorization"
format = "Bearer {value}"
[credentials.b]
env = "B"
endpoint = "api"
header = "authorization"
format = "Bearer {value}"
"#);
        assert!(
            e.contains("credentials `a` and `b` are both sent in `authorization`"),
            "{e}"
        );
    }
}
