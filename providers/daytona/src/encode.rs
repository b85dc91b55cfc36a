//! Percent-encoding and the JSON object form of a label list.

use serde::ser::{Serialize, SerializeMap, Serializer};

/// Percent-encodes every byte of `s` except the unreserved `A-Za-z0-9-._~` (RFC 3986).
pub fn percent_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0x0f)] as char);
        }
    }
    out
}

/// A label list that serialises as a JSON object, keys in the list's order.
///
/// A key listed twice appears once, at its first position, with its last value.
pub struct LabelObject<'a>(pub &'a [(String, String)]);

impl Serialize for LabelObject<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (i, (key, _)) in self.0.iter().enumerate() {
            if self.0[..i].iter().any(|(k, _)| k == key) {
                continue;
            }
            let value = &self
                .0
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .expect("key is present")
                .1;
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// The labels as a compact JSON object string, e.g. `{"cbx":"true"}`.
pub fn labels_json(labels: &[(String, String)]) -> String {
    serde_json::to_string(&LabelObject(labels)).unwrap_or_else(|_| "{}".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keeps_unreserved_bytes() {
        assert_eq!(percent_encode("AZaz09-._~"), "AZaz09-._~");
    }

    #[test]
    fn encodes_everything_else() {
        assert_eq!(percent_encode("a b/c?d=e&f+g"), "a%20b%2Fc%3Fd%3De%26f%2Bg");
        assert_eq!(percent_encode("{\"k\":\"v\"}"), "%7B%22k%22%3A%22v%22%7D");
        assert_eq!(percent_encode("é"), "%C3%A9");
        assert_eq!(percent_encode(""), "");
    }

    #[test]
    fn labels_json_keeps_order() {
        let labels = pairs(&[("zeta", "1"), ("alpha", "2"), ("cbx", "true")]);
        assert_eq!(
            labels_json(&labels),
            r#"{"zeta":"1","alpha":"2","cbx":"true"}"#
        );
    }

    #[test]
    fn labels_json_escapes_and_dedupes() {
        let labels = pairs(&[("a", "x\"y"), ("b", "1"), ("a", "last")]);
        assert_eq!(labels_json(&labels), r#"{"a":"last","b":"1"}"#);
        assert_eq!(labels_json(&[]), "{}");
    }

    #[test]
    fn labels_query_value() {
        let labels = pairs(&[("cbx", "true")]);
        assert_eq!(
            percent_encode(&labels_json(&labels)),
            "%7B%22cbx%22%3A%22true%22%7D"
        );
    }
}
