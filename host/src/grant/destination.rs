//! SSH destination patterns: a host (exact, or `*.` and a domain for any name under it) and a
//! port, as manifests, user configs and grants write them (`ssh.app.daytona.io:22`,
//! `*.example.com:2222`, `[::1]:22`).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// A host pattern and a port. Host names compare without regard to case; addresses compare as
/// addresses (`::1` is `0:0:0:0:0:0:0:1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationPattern {
    /// The host in lowercase; for a wildcard, the domain after `*.`.
    host: String,
    /// `*.<host>`: any name with one or more labels before `host`.
    wildcard: bool,
    /// The TCP port.
    port: u16,
}

impl DestinationPattern {
    /// Parses `HOST:PORT`, `*.DOMAIN:PORT` or `[IPV6]:PORT`. The error says what is wrong.
    pub fn parse(text: &str) -> Result<DestinationPattern, String> {
        let text = text.trim();
        let (host, port) = split_host_port(text)?;
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("`{text}`: the port must be a number from 1 to 65535"))?;
        let (host, wildcard) = match host.strip_prefix("*.") {
            Some(domain) => (domain, true),
            None => (host, false),
        };
        // A fully qualified name's trailing dot names the same host.
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        let is_address = host.parse::<IpAddr>().is_ok();
        if wildcard && is_address {
            return Err(format!(
                "`{text}`: a wildcard `*.` goes before a domain name, not an address"
            ));
        }
        if !is_address && !is_dns_name(&host) {
            return Err(format!(
                "`{text}` is not a host name or address (letters, digits, `-` and `.`; a leading `*.` for any name under a domain)"
            ));
        }
        Ok(DestinationPattern {
            host,
            wildcard,
            port,
        })
    }

    /// The pattern that matches exactly `host` (a name or an address, IPv6 without brackets)
    /// and `port`.
    pub fn exact(host: &str, port: u16) -> Result<DestinationPattern, String> {
        if host.contains(':') {
            DestinationPattern::parse(&format!("[{host}]:{port}"))
        } else {
            DestinationPattern::parse(&format!("{host}:{port}"))
        }
        .and_then(|p| {
            if p.wildcard {
                Err(format!("`{host}` is not a host name or address"))
            } else {
                Ok(p)
            }
        })
    }

    /// Whether `host` and `port` (as a provider returns them) match this pattern.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if port != self.port {
            return false;
        }
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        if self.wildcard {
            return host
                .strip_suffix(&self.host)
                .and_then(|rest| rest.strip_suffix('.'))
                .is_some_and(|labels| !labels.is_empty() && is_dns_name(labels));
        }
        match (host.parse::<IpAddr>(), self.host.parse::<IpAddr>()) {
            (Ok(a), Ok(b)) => a == b,
            (Err(_), Err(_)) => host == self.host,
            _ => false,
        }
    }

    /// Whether every destination `other` matches, this one matches too (so a grant listing
    /// `other` narrows one listing this).
    pub fn covers(&self, other: &DestinationPattern) -> bool {
        if self.port != other.port {
            return false;
        }
        match (self.wildcard, other.wildcard) {
            (false, false) => self.matches(&other.host, other.port),
            (false, true) => false,
            (true, false) => self.matches(&other.host, other.port),
            (true, true) => {
                other.host == self.host || other.host.ends_with(&format!(".{}", self.host))
            }
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for DestinationPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            write!(f, "*.{}:{}", self.host, self.port)
        } else if self.host.parse::<Ipv6Addr>().is_ok() {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl serde::Serialize for DestinationPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `host:port` as a provider's host and port are shown (IPv6 in brackets).
pub fn shown(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Splits `HOST:PORT` or `[IPV6]:PORT`.
fn split_host_port(text: &str) -> Result<(&str, &str), String> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("`{text}`: an IPv6 address needs its closing `]`"))?;
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(format!("`{text}`: `{host}` is not an IPv6 address"));
        }
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| format!("`{text}` needs a port, e.g. `[{host}]:22`"))?;
        return Ok((host, port));
    }
    match text.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => Err(format!(
            "`{text}`: write an IPv6 address in brackets, e.g. `[::1]:22`"
        )),
        Some((host, port)) if !host.is_empty() => Ok((host, port)),
        _ => Err(format!("`{text}` needs a port, e.g. `{text}:22`")),
    }
}

/// Whether `s` is a DNS name: dot-separated labels of letters, digits and `-` (not at either
/// end), at most 63 bytes each and 253 in all.
fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> DestinationPattern {
        DestinationPattern::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn exact_names_match_without_case_and_only_on_their_port() {
        let d = p("ssh.app.daytona.io:22");
        assert!(d.matches("ssh.app.daytona.io", 22));
        assert!(d.matches("SSH.App.Daytona.IO", 22));
        assert!(!d.matches("ssh.app.daytona.io", 2222));
        assert!(!d.matches("evil.ssh.app.daytona.io", 22));
        assert!(!d.matches("ssh.app.daytona.io.evil.example", 22));
        assert!(!d.matches("127.0.0.2", 22));
        assert!(d.matches("ssh.app.daytona.io.", 22));
        assert_eq!(p("ssh.app.daytona.io.:22"), d);
        assert_eq!(d.to_string(), "ssh.app.daytona.io:22");
    }

    #[test]
    fn a_wildcard_matches_one_or_more_labels_under_its_domain() {
        let d = p("*.daytona.io:22");
        assert!(d.matches("ssh.daytona.io", 22));
        assert!(d.matches("eu.ssh.daytona.io", 22));
        assert!(!d.matches("daytona.io", 22));
        assert!(!d.matches("evildaytona.io", 22));
        assert!(!d.matches(".daytona.io", 22));
        assert!(!d.matches("ssh.daytona.io", 2222));
        assert_eq!(d.to_string(), "*.daytona.io:22");
    }

    #[test]
    fn addresses_compare_as_addresses() {
        let d = p("[::1]:2222");
        assert!(d.matches("::1", 2222));
        assert!(d.matches("0:0:0:0:0:0:0:1", 2222));
        assert!(!d.matches("127.0.0.1", 2222));
        assert_eq!(d.to_string(), "[::1]:2222");
        let d = p("127.0.0.1:22");
        assert!(d.matches("127.0.0.1", 22));
        assert!(!d.matches("127.0.0.2", 22));
        assert!(!d.matches("localhost", 22));
        assert_eq!(
            DestinationPattern::exact("::1", 22).unwrap().to_string(),
            "[::1]:22"
        );
    }

    #[test]
    fn bad_patterns_say_what_is_wrong() {
        for (text, says) in [
            ("ssh.example.com", "needs a port"),
            ("ssh.example.com:0", "from 1 to 65535"),
            ("ssh.example.com:http", "from 1 to 65535"),
            ("*.127.0.0.1:22", "not an address"),
            ("*:22", "not a host name"),
            ("a*.example.com:22", "not a host name"),
            ("ex ample.com:22", "not a host name"),
            ("-x.example.com:22", "not a host name"),
            ("::1:22", "in brackets"),
            ("[::1:22", "closing"),
            ("[nope]:22", "not an IPv6 address"),
            (":22", "needs a port"),
        ] {
            let err = DestinationPattern::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn covering_is_narrowing() {
        assert!(p("*.daytona.io:22").covers(&p("ssh.daytona.io:22")));
        assert!(p("*.daytona.io:22").covers(&p("*.eu.daytona.io:22")));
        assert!(p("*.daytona.io:22").covers(&p("*.daytona.io:22")));
        assert!(!p("*.daytona.io:22").covers(&p("*.io:22")));
        assert!(!p("*.daytona.io:22").covers(&p("ssh.daytona.io:2222")));
        assert!(!p("ssh.daytona.io:22").covers(&p("*.daytona.io:22")));
        assert!(p("ssh.daytona.io:22").covers(&p("SSH.daytona.io:22")));
    }
}
