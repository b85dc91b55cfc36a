//! The HTTP headers the host owns, in one list: a provider may not set them, and no credential
//! may be sent in one that belongs to the transport.

/// Headers of the transport; the host sets them, and no credential is sent in one.
pub const TRANSPORT: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "expect",
];

/// Headers that carry authentication: reserved for the host whatever a manifest declares.
pub const AUTHENTICATION: &[&str] = &["authorization", "proxy-authorization", "cookie"];

/// Whether `name` (any case) is a transport header.
pub fn is_transport(name: &str) -> bool {
    TRANSPORT.contains(&name.to_ascii_lowercase().as_str())
}

/// Whether `name` is a valid HTTP header name (an RFC 9110 token).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_headers_in_any_case() {
        assert!(is_transport("Content-Length"));
        assert!(is_transport("expect"));
        assert!(!is_transport("authorization"));
        assert!(is_valid_name("X-Daytona-Organization-ID"));
        assert!(!is_valid_name("bad header"));
        assert!(!is_valid_name(""));
    }
}
