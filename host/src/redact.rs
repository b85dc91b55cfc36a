//! Removes secrets from everything cbx prints or writes.
//!
//! Every credential value and SSH token cbx handles is registered with a [`Redactor`]; output,
//! logs and error messages pass through [`Redactor::redact`] before they leave the process.
//! A value is scrubbed in the forms a service or provider might echo it in too
//! ([`encoded_forms`]): base64 (standard and URL-safe, padded or not, and wherever it falls in
//! a longer base64 text) and URL encoding.

use std::sync::{Arc, RwLock};

/// The placeholder for a credential value.
pub const SECRET: &str = "<redacted>";
/// The placeholder for an SSH access token used as a user name.
pub const TOKEN: &str = "<token>";

/// A shared set of secret values to scrub from text.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Arc<RwLock<Vec<(String, &'static str)>>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redactor { .. }")
    }
}

impl Redactor {
    /// A redactor that knows no secrets yet.
    pub fn new() -> Redactor {
        Redactor::default()
    }

    /// Registers `secret`, to be replaced by `placeholder` wherever it appears.
    /// Values shorter than 4 characters are ignored: scrubbing them would mangle ordinary text.
    pub fn add(&self, secret: &str, placeholder: &'static str) {
        let secret = secret.trim();
        if secret.len() < 4 {
            return;
        }
        let mut secrets = self.secrets.write().unwrap_or_else(|e| e.into_inner());
        if secrets.iter().any(|(s, _)| s == secret) {
            return;
        }
        secrets.push((secret.to_string(), placeholder));
        for form in encoded_forms(secret) {
            if !secrets.iter().any(|(s, _)| *s == form) {
                secrets.push((form, placeholder));
            }
        }
        // Longest first, so a secret containing another is replaced whole.
        secrets.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
    }

    /// `text` with every registered secret, and anything following `Bearer `, replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        {
            let secrets = self.secrets.read().unwrap_or_else(|e| e.into_inner());
            for (secret, placeholder) in secrets.iter() {
                if out.contains(secret.as_str()) {
                    out = out.replace(secret.as_str(), placeholder);
                }
            }
        }
        redact_bearer(&out)
    }
}

/// Shortest encoded form scrubbed: shorter runs of base64 would match ordinary text.
const MIN_ENCODED: usize = 8;

/// The forms of `secret` other than itself that text may carry it in: base64 in the standard
/// and URL-safe alphabets, with and without padding; the run of base64 characters that encodes
/// only the secret at each of the three offsets it can start at inside a longer base64 text
/// (so `base64("user:" + secret)` is caught too); and its URL encoding (upper- and lower-case
/// hex, `%20` or `+` for spaces). Forms shorter than 8 characters are left out.
pub fn encoded_forms(secret: &str) -> Vec<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let bytes = secret.as_bytes();
    let mut forms = vec![STANDARD.encode(bytes), URL_SAFE.encode(bytes)];
    for engine in [STANDARD_NO_PAD, URL_SAFE_NO_PAD] {
        for offset in 0..3usize {
            let mut shifted = vec![0u8; offset];
            shifted.extend_from_slice(bytes);
            let text = engine.encode(&shifted);
            // Characters whose six bits all come from the secret.
            let start = (offset * 8).div_ceil(6);
            let end = (shifted.len() * 8) / 6;
            if end > start {
                forms.push(text[start..end].to_string());
            }
            forms.push(text);
        }
    }
    let url = percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    forms.push(url.replace("%20", "+"));
    forms.push(lowercase_escapes(&url));
    forms.push(url);
    forms.retain(|f| f.len() >= MIN_ENCODED && f != secret);
    forms.sort();
    forms.dedup();
    forms
}

/// `%2F` → `%2f` in a percent-encoded text.
fn lowercase_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let escape = rest.get(i..i + 3).unwrap_or(&rest[i..]);
        out.push_str(&escape.to_ascii_lowercase());
        rest = &rest[i + escape.len()..];
    }
    out.push_str(rest);
    out
}

/// Replaces the token after every `Bearer ` (any case) with [`SECRET`].
fn redact_bearer(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    if !lower.contains("bearer ") {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    let mut search = 0;
    while let Some(pos) = lower[search..].find("bearer ") {
        let start = search + pos + "bearer ".len();
        let end = text[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | ';' | '\\' | '`'))
            .map_or(text.len(), |e| start + e);
        out.push_str(&text[rest..start]);
        let token = &text[start..end];
        if end > start && token != SECRET && token != "{value}" {
            out.push_str(SECRET);
        } else {
            out.push_str(&text[start..end]);
        }
        rest = end;
        search = end.max(start);
        if search >= text.len() {
            break;
        }
    }
    out.push_str(&text[rest..]);
    out
}

/// A `tracing` writer that redacts each line before writing it to stderr.
#[derive(Clone)]
pub struct RedactingStderr {
    redactor: Redactor,
}

impl RedactingStderr {
    /// A writer scrubbing with `redactor`.
    pub fn new(redactor: Redactor) -> RedactingStderr {
        RedactingStderr { redactor }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingLine;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingLine {
            redactor: self.redactor.clone(),
            buf: Vec::new(),
        }
    }
}

/// One log event being written; redacted and flushed to stderr when dropped.
pub struct RedactingLine {
    redactor: Redactor,
    buf: Vec<u8>,
}

impl std::io::Write for RedactingLine {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactingLine {
    fn drop(&mut self) {
        use std::io::Write;
        if self.buf.is_empty() {
            return;
        }
        let text = self.redactor.redact(&String::from_utf8_lossy(&self.buf));
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_registered_secrets_longest_first() {
        let r = Redactor::new();
        r.add("abcd", SECRET);
        r.add("abcdefgh", TOKEN);
        assert_eq!(r.redact("x abcdefgh y abcd"), "x <token> y <redacted>");
    }

    #[test]
    fn scrubs_base64_and_url_encoded_forms() {
        use base64::Engine as _;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let secret = "s3cret/key+with?odd=chars~01";
        let r = Redactor::new();
        r.add(secret, SECRET);
        for encoded in [
            STANDARD.encode(secret),
            URL_SAFE_NO_PAD.encode(secret),
            percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
                .to_string(),
        ] {
            let shown = r.redact(&format!("echo: {encoded} end"));
            assert!(!shown.contains(&encoded), "{shown}");
            assert!(shown.contains(SECRET), "{shown}");
        }
        // Inside a longer base64 text, at every offset.
        for prefix in ["", "a", "ab", "user:", "Authorization: Bearer "] {
            for alphabet in [STANDARD, base64::engine::general_purpose::URL_SAFE] {
                let blob = alphabet.encode(format!("{prefix}{secret}\"}}"));
                let shown = r.redact(&blob);
                assert!(shown.contains(SECRET), "{prefix:?}: {shown}");
                // All but the characters shared with its neighbours are gone.
                let removed = blob.len() + SECRET.len() - shown.len();
                assert!(removed >= secret.len() * 4 / 3 - 2, "{prefix:?}: {shown}");
            }
        }
    }

    #[test]
    fn encoded_forms_skip_the_short_and_the_unchanged() {
        assert!(encoded_forms("abcd").iter().all(|f| f.len() >= 8));
        assert!(!encoded_forms("plainalnum123").contains(&"plainalnum123".to_string()));
    }

    #[test]
    fn ignores_short_values() {
        let r = Redactor::new();
        r.add("ab", SECRET);
        assert_eq!(r.redact("about"), "about");
    }

    #[test]
    fn scrubs_bearer_tokens_it_was_not_told_about() {
        let r = Redactor::new();
        assert_eq!(
            r.redact(r#"{"authorization":"Bearer sk-123","x":"bearer abc def"}"#),
            r#"{"authorization":"Bearer <redacted>","x":"bearer <redacted> def"}"#
        );
        assert_eq!(r.redact("Bearer "), "Bearer ");
    }
}
