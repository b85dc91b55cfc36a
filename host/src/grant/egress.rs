//! The functions that decide whether something a provider asked for may leave the machine.
//!
//! Every path by which a provider reaches the network — each request and each redirect hop —
//! goes through [`authorize`]. It checks the URL against the granted endpoints, refuses
//! headers the provider may not set, and only then attaches the credentials bound to the
//! matched endpoint. Nothing else in cbx attaches credentials.
//!
//! Every SSH access a provider mints — fresh, or cached and read back from disk — goes through
//! [`authorize_ssh`] before any `ssh` or `rsync` starts: the destination must be granted, and
//! the key is the user's, never the provider's.

use std::fmt;

use url::Url;

use super::destination;
use super::ssh::{DestinationBasis, SshGrant};
use super::{Grant, GrantedEndpoint, headers};
use crate::terminal::inert;

/// A request that passed the check, ready to send.
#[derive(Debug)]
pub struct Authorized {
    /// The parsed URL.
    pub url: Url,
    /// The granted endpoint it lies under.
    pub endpoint: String,
    /// The provider's headers.
    pub headers: Vec<(String, String)>,
    /// Credential headers the host adds: (header, value). Values are secret.
    pub credential_headers: Vec<(String, String)>,
    /// Names of the credentials attached.
    pub credentials: Vec<String>,
}

/// Why a request was refused.
#[derive(Debug, Clone)]
pub enum Refusal {
    /// The grant does not allow it.
    Denied(Denial),
    /// The request is malformed.
    Invalid(String),
}

/// A request the grant does not allow, described for the user and the provider.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Denial {
    /// The provider that made the request.
    pub provider: String,
    /// HTTP method.
    pub method: String,
    /// The URL, as requested (credential-like query values redacted; see [`shown`]).
    pub url: String,
    /// What the grant forbids.
    pub reason: String,
    /// What would allow it (the grant line to add), if anything would.
    pub allow_with: Option<String>,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "provider {} was denied {} {}: {}",
            self.provider, self.method, self.url, self.reason
        )?;
        if let Some(allow) = &self.allow_with {
            write!(f, "; {allow}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Denial {}

/// Checks one request against `grant`; on success attaches the endpoint's credentials.
pub fn authorize(
    grant: &Grant,
    method: &str,
    url: &str,
    headers: &[(String, String)],
) -> Result<Authorized, Refusal> {
    let parsed =
        Url::parse(url).map_err(|e| Refusal::Invalid(format!("invalid URL `{url}`: {e}")))?;
    let shown = self::shown(&parsed);
    let deny = |reason: String, allow_with: Option<String>| {
        Refusal::Denied(Denial {
            provider: grant.provider.clone(),
            method: method.to_string(),
            url: shown.clone(),
            reason,
            allow_with,
        })
    };
    let endpoint = granted_endpoint(grant, &parsed, &deny)?;
    check_headers(grant, headers, &deny)?;
    let bound: Vec<_> = grant
        .credentials
        .iter()
        .filter(|c| c.endpoint == endpoint.name)
        .collect();
    Ok(Authorized {
        url: parsed,
        endpoint: endpoint.name.clone(),
        headers: headers.to_vec(),
        credential_headers: bound
            .iter()
            .map(|c| (c.header.clone(), c.header_value()))
            .collect(),
        credentials: bound.iter().map(|c| c.name.clone()).collect(),
    })
}

/// The granted endpoint `url` lies under, or why it lies under none: it carries credentials,
/// hides path separators or dots behind encodings, or is outside every granted endpoint.
fn granted_endpoint<'g>(
    grant: &'g Grant,
    url: &Url,
    deny: &dyn Fn(String, Option<String>) -> Refusal,
) -> Result<&'g GrantedEndpoint, Refusal> {
    if !url.username().is_empty() || url.password().is_some() {
        return Err(deny(
            "URLs may not carry a user name or password".into(),
            None,
        ));
    }
    let raw_path = url.path().to_ascii_lowercase();
    if raw_path.contains("%2f") || raw_path.contains("%5c") || raw_path.contains("%2e") {
        return Err(deny(
            "encoded slashes, backslashes and dots in the path are not allowed".into(),
            None,
        ));
    }
    if let Some(endpoint) = grant.endpoints.iter().find(|e| lies_under(url, &e.url)) {
        return Ok(endpoint);
    }
    let granted: Vec<String> = grant.endpoints.iter().map(|e| e.url.to_string()).collect();
    let origin = url.origin().ascii_serialization();
    let reason = if granted.is_empty() {
        "its grant allows no network access at all".to_string()
    } else {
        format!(
            "it is outside the granted endpoints ({})",
            granted.join(", ")
        )
    };
    Err(deny(
        reason,
        Some(format!(
            "allowing it would take a manifest endpoint `[endpoints.<name>] url = \"{origin}\"` and your approval"
        )),
    ))
}

/// Refuses a header the provider may not set (the host's), or a malformed one.
fn check_headers(
    grant: &Grant,
    requested: &[(String, String)],
    deny: &dyn Fn(String, Option<String>) -> Refusal,
) -> Result<(), Refusal> {
    for (name, value) in requested {
        let lower = name.to_ascii_lowercase();
        if grant.reserved_headers.contains(&lower) {
            return Err(deny(
                format!(
                    "providers may not set the `{name}` header; the host attaches credentials itself"
                ),
                None,
            ));
        }
        if headers::is_transport(&lower) {
            return Err(Refusal::Invalid(format!(
                "the `{name}` header is set by the host"
            )));
        }
        if !headers::is_valid_name(name) {
            return Err(Refusal::Invalid(format!(
                "`{name}` is not a valid header name"
            )));
        }
        if value.contains(['\r', '\n', '\0']) {
            return Err(Refusal::Invalid(format!(
                "the value of header `{name}` contains a line break"
            )));
        }
    }
    Ok(())
}

/// SSH access that passed [`authorize_ssh`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedSsh {
    /// `host:port`, as minted.
    pub destination: String,
    /// The granted destination it matched.
    pub granted: String,
    /// The key to log in with: the user's (as configured), never the provider's.
    pub identity_file: Option<String>,
}

/// Checks SSH access a provider minted (`host`, `port`, the key file it named) against its
/// SSH `grant`: the destination must match a granted one, and a key may only be the user's
/// own (the value of the manifest's identity option). The denial names the provider, the
/// destination and what would allow it.
pub fn authorize_ssh(
    grant: &SshGrant,
    host: &str,
    port: u16,
    identity_file: Option<&str>,
) -> Result<AuthorizedSsh, Denial> {
    let shown = destination::shown(host, port);
    let deny = |reason: String, allow_with: Option<String>| Denial {
        provider: grant.provider.clone(),
        method: "SSH".into(),
        url: shown.clone(),
        reason,
        allow_with,
    };
    let Some(granted) = grant
        .destinations
        .iter()
        .find(|d| d.destination.matches(host, port))
    else {
        let (reason, allow_with) = ungranted_destination(grant, &shown);
        return Err(deny(reason, allow_with));
    };
    let identity_file = match (identity_file.map(str::trim), &grant.identity) {
        (None | Some(""), user) => user.as_ref().map(|k| k.path.clone()),
        (Some(chosen), Some(user)) if chosen == user.path => Some(user.path.clone()),
        (Some(chosen), user) => {
            let (reason, allow_with) = chosen_key(grant, chosen, user.is_some());
            return Err(deny(reason, allow_with));
        }
    };
    Ok(AuthorizedSsh {
        destination: shown.clone(),
        granted: granted.destination.to_string(),
        identity_file,
    })
}

/// Why a destination is not granted, and what would allow it.
fn ungranted_destination(grant: &SshGrant, shown: &str) -> (String, Option<String>) {
    let granted: Vec<String> = grant
        .destinations
        .iter()
        .map(|d| d.destination.to_string())
        .collect();
    let by_manifest = format!(
        "allowing it would take a manifest line `[ssh] destinations = [\"{shown}\"]` and your approval"
    );
    match &grant.basis {
        DestinationBasis::None => (
            "its grant allows no SSH destination at all".into(),
            Some(by_manifest),
        ),
        DestinationBasis::Listed { env } => (
            format!(
                "it is outside the granted SSH destinations ({})",
                if granted.is_empty() {
                    "none".to_string()
                } else {
                    granted.join(", ")
                }
            ),
            Some(format!(
                "{by_manifest}; for a self-hosted service you trust, set `destinations = [\"{shown}\"]` under [providers.{}.ssh] in your user config{}",
                grant.provider,
                env.as_ref()
                    .map(|v| format!(" or {v}={shown}"))
                    .unwrap_or_default()
            )),
        ),
        DestinationBasis::Options { host, port } => (
            match granted.first() {
                Some(g) => format!(
                    "it is not {g}, the destination of your options `{host}`{}",
                    port.as_ref()
                        .map(|p| format!(" and `{p}`"))
                        .unwrap_or_default()
                ),
                None => format!("your option `{host}` is not set to a host name or address"),
            },
            Some(format!(
                "cbx connects only to the host and port you set; set option `{host}` in your user config or with -o {host}=…"
            )),
        ),
    }
}

/// Why a key the provider named is refused, and what would allow the user's key.
fn chosen_key(grant: &SshGrant, chosen: &str, user_has_one: bool) -> (String, Option<String>) {
    let mut shown: String = chosen.chars().take(200).collect();
    if shown.len() < chosen.len() {
        shown.push('…');
    }
    let shown = format!("`{}`", inert(&shown));
    match (&grant.identity_option, user_has_one) {
        (Some(option), true) => (
            format!("it named the key file {shown}, not the one you set in option `{option}`"),
            None,
        ),
        (Some(option), false) => (
            format!(
                "it named the key file {shown}, but you set none in option `{option}`; a provider never chooses a key"
            ),
            Some(format!("set option `{option}` to the key you want cbx to use")),
        ),
        (None, _) => (
            format!(
                "it named the key file {shown}; a provider never chooses a key, and this one takes none from you"
            ),
            Some(
                "a provider that logs in with your key declares `[ssh] identity-option = \"<option>\"` in its manifest; the key is then the one you set in that user-only option".into(),
            ),
        ),
    }
}

/// Whether `url` has `base`'s scheme, host and port and a path at or below `base`'s path.
fn lies_under(url: &Url, base: &Url) -> bool {
    if url.scheme() != base.scheme()
        || url.host() != base.host()
        || url.port_or_known_default() != base.port_or_known_default()
    {
        return false;
    }
    let segments = |u: &Url| -> Vec<String> {
        u.path_segments()
            .map(|s| s.filter(|p| !p.is_empty()).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let (want, have) = (segments(base), segments(url));
    have.len() >= want.len() && want.iter().zip(&have).all(|(a, b)| a == b)
}

/// Words in a query parameter's name that mark its value as a credential.
const CREDENTIAL_WORDS: &[&str] = &[
    "token",
    "key",
    "secret",
    "pass",
    "auth",
    "sig",
    "credential",
    "session",
    "jwt",
];

/// The URL for the audit log and `-vv`: with its query string, as sent, except the values of
/// parameters whose names say they carry a credential (`token`, `api_key`, `X-Amz-Signature`,
/// …), which read `<redacted>`; without the fragment (never sent).
pub fn shown(url: &Url) -> String {
    let mut u = url.clone();
    u.set_fragment(None);
    let Some(query) = url.query() else {
        return u.to_string();
    };
    let kept: Vec<String> = query
        .split('&')
        .map(|pair| {
            let (name, _) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = percent_encoding::percent_decode_str(name)
                .decode_utf8_lossy()
                .to_ascii_lowercase();
            if pair.contains('=') && CREDENTIAL_WORDS.iter().any(|w| decoded.contains(w)) {
                format!("{name}=<redacted>")
            } else {
                pair.to_string()
            }
        })
        .collect();
    u.set_query(None);
    format!("{u}?{}", kept.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_urls_keep_the_query_but_not_credential_values() {
        let url = Url::parse(
            "https://api.example.com/v1/sandbox?limit=100&labels=%7B%22a%22%3A%221%22%7D&api_key=s3cr3t&X-Amz-Signature=abc&token&cursor=c2#frag",
        )
        .unwrap();
        assert_eq!(
            shown(&url),
            "https://api.example.com/v1/sandbox?limit=100&labels=%7B%22a%22%3A%221%22%7D&api_key=<redacted>&X-Amz-Signature=<redacted>&token&cursor=c2"
        );
        let plain = Url::parse("https://api.example.com/v1/sandbox/x").unwrap();
        assert_eq!(shown(&plain), "https://api.example.com/v1/sandbox/x");
    }
    use crate::grant::manifest::Manifest;
    use crate::grant::{EndpointOverrides, Grant};
    use crate::redact::Redactor;

    const DAYTONA: &str = include_str!("../../../providers/daytona/cbx-provider.toml");

    fn grant() -> Grant {
        let m = Manifest::parse("builtin:daytona", DAYTONA).unwrap();
        Grant::resolve(
            &m,
            &EndpointOverrides::default(),
            &|k| (k == "DAYTONA_API_KEY").then(|| "key-123456".to_string()),
            &Redactor::new(),
        )
        .unwrap()
    }

    fn denied(r: Result<Authorized, Refusal>) -> Denial {
        match r {
            Err(Refusal::Denied(d)) => d,
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    #[test]
    fn allows_paths_under_the_endpoint_and_attaches_credentials() {
        let a = authorize(
            &grant(),
            "GET",
            "https://app.daytona.io/api/sandbox?limit=1",
            &[],
        )
        .unwrap();
        assert_eq!(a.endpoint, "api");
        assert_eq!(
            a.credential_headers,
            [("Authorization".to_string(), "Bearer key-123456".to_string())]
        );
        assert!(authorize(&grant(), "GET", "https://app.daytona.io/api", &[]).is_ok());
    }

    #[test]
    fn denies_other_origins_paths_and_ports() {
        for url in [
            "https://evil.example/api/sandbox",
            "https://app.daytona.io/apix/sandbox",
            "https://app.daytona.io/admin",
            "https://app.daytona.io:8443/api/sandbox",
            "http://app.daytona.io/api/sandbox",
            "https://app.daytona.io/api/../admin",
            "https://app.daytona.io/api/%2e%2e/admin",
            "https://app.daytona.io/api/x%2F..%2F..%2Fadmin",
            "https://user:pw@app.daytona.io/api/sandbox",
        ] {
            let d = denied(authorize(&grant(), "GET", url, &[]));
            assert_eq!(d.provider, "daytona", "{url}");
        }
    }

    #[test]
    fn denial_names_provider_url_and_what_would_allow_it() {
        let d = denied(authorize(
            &grant(),
            "POST",
            "https://evil.example/steal?k=v&token=s3cret",
            &[],
        ));
        let text = d.to_string();
        assert!(text.starts_with("provider daytona was denied POST https://evil.example/steal?k=v&token=<redacted>: it is outside the granted endpoints (https://app.daytona.io/api)"), "{text}");
        assert!(text.contains("url = \"https://evil.example\""), "{text}");
    }

    fn ssh_grant(manifest_ssh: &str, env: &[(&str, &str)]) -> SshGrant {
        let m =
            Manifest::parse("m", &format!("[provider]\nname = \"acme\"\n{manifest_ssh}")).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Grant::resolve(
            &m,
            &EndpointOverrides::default(),
            &|k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
            &Redactor::new(),
        )
        .unwrap()
        .ssh
    }

    fn ssh_denied(r: Result<AuthorizedSsh, Denial>) -> String {
        match r {
            Err(d) => d.to_string(),
            Ok(a) => panic!("expected a denial, got {a:?}"),
        }
    }

    #[test]
    fn ssh_destinations_outside_the_grant_are_denied() {
        let g = ssh_grant(
            "[ssh]\ndestinations = [\"ssh.acme.example:22\"]\nenv = \"ACME_SSH\"\n",
            &[],
        );
        let ok = authorize_ssh(&g, "SSH.acme.example", 22, None).unwrap();
        assert_eq!(ok.granted, "ssh.acme.example:22");
        assert_eq!(ok.identity_file, None);
        let text = ssh_denied(authorize_ssh(&g, "127.0.0.2", 2222, None));
        assert!(text.starts_with("provider acme was denied SSH 127.0.0.2:2222: it is outside the granted SSH destinations (ssh.acme.example:22); allowing it would take a manifest line `[ssh] destinations = [\"127.0.0.2:2222\"]` and your approval"), "{text}");
        assert!(
            text.contains(
                "under [providers.acme.ssh] in your user config or ACME_SSH=127.0.0.2:2222"
            ),
            "{text}"
        );
        assert!(authorize_ssh(&g, "ssh.acme.example", 2222, None).is_err());
        let g = ssh_grant("", &[]);
        let text = ssh_denied(authorize_ssh(&g, "ssh.acme.example", 22, None));
        assert!(
            text.contains("its grant allows no SSH destination at all"),
            "{text}"
        );
        let g = ssh_grant(
            "[ssh]\ndestinations = [\"ssh.acme.example:22\"]\nenv = \"ACME_SSH\"\n",
            &[("ACME_SSH", "127.0.0.1:2200")],
        );
        assert!(authorize_ssh(&g, "127.0.0.1", 2200, None).is_ok());
        assert!(authorize_ssh(&g, "ssh.acme.example", 22, None).is_err());
    }

    #[test]
    fn a_provider_never_chooses_the_key() {
        let g = ssh_grant("[ssh]\ndestinations = [\"ssh.acme.example:22\"]\n", &[]);
        for key in [
            "/root/.ssh/id_ed25519",
            "/etc/shadow",
            "/proc/self/environ",
            "C:\\x\\",
        ] {
            let text = ssh_denied(authorize_ssh(&g, "ssh.acme.example", 22, Some(key)));
            assert!(
                text.contains(&format!(
                    "it named the key file `{key}`; a provider never chooses a key"
                )),
                "{text}"
            );
            assert!(text.contains("identity-option"), "{text}");
        }
        let text = ssh_denied(authorize_ssh(
            &g,
            "ssh.acme.example",
            22,
            Some("/home/u/\u{202e}di"),
        ));
        assert!(
            text.contains("it named the key file `/home/u/\\u{202e}di`;"),
            "the provider's path is shown inert: {text}"
        );
        let own = "[options]\nuser-only = [\"host\", \"port\", \"key\"]\n[ssh]\nhost-option = \"host\"\nport-option = \"port\"\nidentity-option = \"key\"\n";
        let g = ssh_grant(own, &[]);
        let opt = |v: &str| {
            crate::provenance::Value::new(v.to_string(), crate::provenance::Definition::Default)
        };
        let g = g.with_options(&[
            ("host".into(), opt("build.example")),
            ("port".into(), opt("2222")),
            ("key".into(), opt("~/.ssh/id_ed25519")),
        ]);
        let ok = authorize_ssh(&g, "build.example", 2222, Some("~/.ssh/id_ed25519")).unwrap();
        assert_eq!(ok.identity_file.as_deref(), Some("~/.ssh/id_ed25519"));
        let ok = authorize_ssh(&g, "build.example", 2222, None).unwrap();
        assert_eq!(ok.identity_file.as_deref(), Some("~/.ssh/id_ed25519"));
        let text = ssh_denied(authorize_ssh(
            &g,
            "build.example",
            2222,
            Some("/root/.ssh/other"),
        ));
        assert!(
            text.contains("not the one you set in option `key`"),
            "{text}"
        );
        let text = ssh_denied(authorize_ssh(&g, "evil.example", 2222, None));
        assert!(
            text.contains(
                "it is not build.example:2222, the destination of your options `host` and `port`"
            ),
            "{text}"
        );
    }

    #[test]
    fn refuses_credential_headers_set_by_the_provider() {
        for h in [
            "Authorization",
            "authorization",
            "X-Daytona-Organization-ID",
            "Cookie",
        ] {
            let d = denied(authorize(
                &grant(),
                "GET",
                "https://app.daytona.io/api/sandbox",
                &[(h.into(), "x".into())],
            ));
            assert!(d.reason.contains("may not set"), "{h}: {}", d.reason);
        }
        let ok = authorize(
            &grant(),
            "GET",
            "https://app.daytona.io/api/x",
            &[("Accept".into(), "application/json".into())],
        );
        assert!(ok.is_ok());
        assert!(matches!(
            authorize(
                &grant(),
                "GET",
                "https://app.daytona.io/api/x",
                &[("Host".into(), "evil".into())]
            ),
            Err(Refusal::Invalid(_))
        ));
    }
}
