//! Sandbox ids that carry their own labels.
//!
//! The ssh provider has no service and no storage, yet the host needs `get(id)` to return the
//! labels it set at `create` (it checks cbx's ownership labels on every use). So the labels
//! travel inside the id, reversibly:
//!
//! ```text
//! <name>.<payload>        payload = base64url, no padding, of:
//!   version  1 byte  (1)
//!   target   4 bytes (FNV-1a of `user@host:port`, big-endian: which host the lease is on)
//!   entry*   header byte = key code << 4 | value kind, then the key (custom keys only) and
//!            the value
//! ```
//!
//! Key codes 0–10 are the ownership labels cbx writes (`cbx`, `cbx_provider`, …, `cbx_owner`);
//! 15 is any other key, written as text. Value kinds keep the usual values small: text
//! (length + UTF-8), an unsigned decimal as a LEB128 varint, a copy of an earlier entry's
//! value, the sum of two earlier numbers (`cbx_expires_at` = created + ttl), a `cbx_` + 12 hex
//! lease id in 6 bytes, 16 lowercase hex digits (the owner id) in 8 bytes, a slice of the
//! sandbox name (the slug is in it), `true`, and this provider's name. The encoder picks the shortest form for each value; the decoder rebuilds
//! exactly the labels that were given, in order. A typical lease's id is about 80 characters.

use std::fmt::Write as _;

/// The payload format version.
const VERSION: u8 = 1;
/// Separates the name from the payload; never part of a name or of base64url.
pub const SEPARATOR: char = '.';
/// The keys with a one-nibble code, in code order: cbx's documented ownership labels.
const KNOWN_KEYS: [&str; 11] = [
    "cbx",
    "cbx_provider",
    "cbx_lease",
    "cbx_slug",
    "cbx_created_at",
    "cbx_touched_at",
    "cbx_ttl_secs",
    "cbx_idle_secs",
    "cbx_expires_at",
    "cbx_work_root",
    "cbx_owner",
];
/// The key code of a key written out as text.
const CUSTOM_KEY: u8 = 15;
/// Longest sandbox name accepted.
pub const MAX_NAME_LEN: usize = 63;
/// Longest payload accepted, in bytes before base64 (keeps ids usable in files and tables).
const MAX_PAYLOAD: usize = 3000;

/// How a value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Length-prefixed UTF-8.
    Text = 0,
    /// A canonical unsigned decimal, as a varint.
    Uint = 1,
    /// The value of the earlier entry at an index.
    Same = 2,
    /// The sum of two earlier entries' numbers.
    Sum = 3,
    /// `cbx_` followed by 12 lowercase hex digits, as 6 bytes.
    Lease = 4,
    /// A slice of the sandbox name: offset, length.
    Name = 5,
    /// `true`.
    True = 6,
    /// The provider's own name.
    Provider = 7,
    /// 16 lowercase hex digits (an owner id), as 8 bytes.
    Hex16 = 8,
}

impl Kind {
    fn from_nibble(n: u8) -> Option<Kind> {
        Some(match n {
            0 => Kind::Text,
            1 => Kind::Uint,
            2 => Kind::Same,
            3 => Kind::Sum,
            4 => Kind::Lease,
            5 => Kind::Name,
            6 => Kind::True,
            7 => Kind::Provider,
            8 => Kind::Hex16,
            _ => return None,
        })
    }
}

/// What an id says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The sandbox name given at create.
    pub name: String,
    /// The check value of the target the lease was created on.
    pub target: u32,
    /// The labels given at create.
    pub labels: Vec<(String, String)>,
}

/// Why an id could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The name is not lowercase letters, digits and dashes, 1 to 63 long.
    BadName,
    /// Two labels share a key.
    DuplicateKey(String),
    /// The labels are too large to carry in an id.
    TooLarge,
}

/// A 32-bit check value of a target (`user@host:port`): FNV-1a.
pub fn target_check(target: &str) -> u32 {
    target.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Whether `name` is a sandbox name this provider accepts.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Builds the id of a sandbox named `name` with `labels`, on the target with check `target`.
pub fn encode(
    name: &str,
    target: u32,
    provider: &str,
    labels: &[(String, String)],
) -> Result<String, EncodeError> {
    if !valid_name(name) {
        return Err(EncodeError::BadName);
    }
    let mut out = vec![VERSION];
    out.extend_from_slice(&target.to_be_bytes());
    for (i, (key, value)) in labels.iter().enumerate() {
        if labels[..i].iter().any(|(k, _)| k == key) {
            return Err(EncodeError::DuplicateKey(key.clone()));
        }
        let (code, custom) = match KNOWN_KEYS.iter().position(|k| k == key) {
            Some(code) => (code as u8, None),
            None => (CUSTOM_KEY, Some(key)),
        };
        let (kind, body) = shortest_value(value, name, provider, &labels[..i]);
        out.push((code << 4) | kind as u8);
        if let Some(key) = custom {
            put_text(&mut out, key);
        }
        out.extend_from_slice(&body);
        if out.len() > MAX_PAYLOAD {
            return Err(EncodeError::TooLarge);
        }
    }
    let mut id = String::with_capacity(name.len() + 1 + out.len() * 4 / 3 + 1);
    id.push_str(name);
    id.push(SEPARATOR);
    base64url_encode(&out, &mut id);
    Ok(id)
}

/// The shortest way to write `value`, given the name, provider and the entries before it.
fn shortest_value(
    value: &str,
    name: &str,
    provider: &str,
    earlier: &[(String, String)],
) -> (Kind, Vec<u8>) {
    let mut best = (Kind::Text, {
        let mut b = Vec::new();
        put_text(&mut b, value);
        b
    });
    let mut offer = |kind: Kind, body: Vec<u8>| {
        if body.len() < best.1.len() {
            best = (kind, body);
        }
    };
    if value == "true" {
        offer(Kind::True, Vec::new());
    }
    if value == provider {
        offer(Kind::Provider, Vec::new());
    }
    if let Some(n) = canonical_uint(value) {
        let mut b = Vec::new();
        put_varint(&mut b, n);
        offer(Kind::Uint, b);
    }
    if let Some(bytes) = lease_bytes(value) {
        offer(Kind::Lease, bytes.to_vec());
    }
    if let Some(bytes) = hex_bytes::<8>(value) {
        offer(Kind::Hex16, bytes.to_vec());
    }
    if !value.is_empty()
        && let Some(offset) = name.find(value)
    {
        let mut b = Vec::new();
        put_varint(&mut b, offset as u64);
        put_varint(&mut b, value.len() as u64);
        offer(Kind::Name, b);
    }
    if let Some(i) = earlier.iter().position(|(_, v)| v == value) {
        let mut b = Vec::new();
        put_varint(&mut b, i as u64);
        offer(Kind::Same, b);
    }
    if let Some(n) = canonical_uint(value) {
        let numbers: Vec<(usize, u64)> = earlier
            .iter()
            .enumerate()
            .filter_map(|(i, (_, v))| canonical_uint(v).map(|n| (i, n)))
            .collect();
        let pair = numbers.iter().find_map(|&(a, x)| {
            numbers
                .iter()
                .find(|&&(_, y)| x.checked_add(y) == Some(n))
                .map(|&(b, _)| (a, b))
        });
        if let Some((a, b)) = pair {
            let mut body = Vec::new();
            put_varint(&mut body, a as u64);
            put_varint(&mut body, b as u64);
            offer(Kind::Sum, body);
        }
    }
    best
}

/// Reads an id made by [`encode`]; `None` if it is not one.
pub fn decode(id: &str, provider: &str) -> Option<Decoded> {
    let (name, payload) = id.rsplit_once(SEPARATOR)?;
    if !valid_name(name) {
        return None;
    }
    let bytes = base64url_decode(payload)?;
    if bytes.len() > MAX_PAYLOAD {
        return None;
    }
    let mut r = Reader {
        bytes: &bytes,
        at: 0,
    };
    if r.byte()? != VERSION {
        return None;
    }
    let target = u32::from_be_bytes([r.byte()?, r.byte()?, r.byte()?, r.byte()?]);
    let mut labels: Vec<(String, String)> = Vec::new();
    while !r.done() {
        let header = r.byte()?;
        let (code, kind) = (header >> 4, Kind::from_nibble(header & 0x0f)?);
        let key = match code {
            CUSTOM_KEY => r.text()?,
            c => KNOWN_KEYS.get(usize::from(c))?.to_string(),
        };
        let earlier = |i: u64| labels.get(usize::try_from(i).ok()?).map(|(_, v)| v);
        let value = match kind {
            Kind::Text => r.text()?,
            Kind::Uint => r.varint()?.to_string(),
            Kind::Same => earlier(r.varint()?)?.clone(),
            Kind::Sum => {
                let a = canonical_uint(earlier(r.varint()?)?)?;
                let b = canonical_uint(earlier(r.varint()?)?)?;
                a.checked_add(b)?.to_string()
            }
            Kind::Lease => {
                let mut v = String::from("cbx_");
                for _ in 0..6 {
                    write!(v, "{:02x}", r.byte()?).ok()?;
                }
                v
            }
            Kind::Name => {
                let offset = usize::try_from(r.varint()?).ok()?;
                let len = usize::try_from(r.varint()?).ok()?;
                name.get(offset..offset.checked_add(len)?)?.to_string()
            }
            Kind::Hex16 => {
                let mut v = String::new();
                for _ in 0..8 {
                    write!(v, "{:02x}", r.byte()?).ok()?;
                }
                v
            }
            Kind::True => "true".to_string(),
            Kind::Provider => provider.to_string(),
        };
        if labels.iter().any(|(k, _)| *k == key) {
            return None;
        }
        labels.push((key, value));
    }
    Some(Decoded {
        name: name.to_string(),
        target,
        labels,
    })
}

/// `value` as a number if it is exactly how that number is written in decimal.
fn canonical_uint(value: &str) -> Option<u64> {
    let n: u64 = value.parse().ok()?;
    (n.to_string() == value).then_some(n)
}

/// The 6 bytes of a `cbx_` + 12 lowercase hex lease id.
fn lease_bytes(value: &str) -> Option<[u8; 6]> {
    hex_bytes::<6>(value.strip_prefix("cbx_")?)
}

/// The `N` bytes of exactly `2N` lowercase hex digits.
fn hex_bytes<const N: usize>(value: &str) -> Option<[u8; N]> {
    let hex = value.as_bytes();
    if hex.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in hex.chunks(2).enumerate() {
        out[i] = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    put_varint(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    /// A LEB128 varint in its shortest form, at most 64 bits.
    fn varint(&mut self) -> Option<u64> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let part = u64::from(b & 0x7f);
            if shift == 63 && part > 1 {
                return None;
            }
            n |= part << shift;
            if b & 0x80 == 0 {
                // Reject padded forms (a trailing zero group), so every value has one encoding.
                return (b != 0 || shift == 0).then_some(n);
            }
        }
        None
    }

    fn text(&mut self) -> Option<String> {
        let len = usize::try_from(self.varint()?).ok()?;
        let end = self.at.checked_add(len)?;
        let s = std::str::from_utf8(self.bytes.get(self.at..end)?).ok()?;
        self.at = end;
        Some(s.to_string())
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64url_encode(bytes: &[u8], out: &mut String) {
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
        }
    }
}

fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let sextet = |c: u8| ALPHABET.iter().position(|&a| a == c).map(|p| p as u32);
    let input = text.as_bytes();
    if input.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    for chunk in input.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= sextet(c)? << (18 - 6 * i);
        }
        let produced = chunk.len() - 1;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        // Unused low bits must be zero, so every byte string has exactly one text form.
        if bytes[produced..].iter().any(|&b| b != 0) {
            return None;
        }
        out.extend_from_slice(&bytes[..produced]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The labels cbx writes on a lease, as `Ownership::to_labels` makes them.
    fn ownership() -> Vec<(String, String)> {
        labels(&[
            ("cbx", "true"),
            ("cbx_provider", "ssh"),
            ("cbx_lease", "cbx_0123456789ab"),
            ("cbx_slug", "amber-otter"),
            ("cbx_created_at", "1767225600"),
            ("cbx_touched_at", "1767225600"),
            ("cbx_ttl_secs", "5400"),
            ("cbx_idle_secs", "1800"),
            ("cbx_expires_at", "1767231000"),
            ("cbx_work_root", "cbx"),
            ("cbx_owner", "0f1e2d3c4b5a6978"),
        ])
    }

    const NAME: &str = "cbx-amber-otter-0123456789ab";

    #[test]
    fn ownership_labels_round_trip_compactly() {
        let check = target_check("dev@127.0.0.1:22");
        let id = encode(NAME, check, "ssh", &ownership()).unwrap();
        assert!(id.starts_with("cbx-amber-otter-0123456789ab."), "{id}");
        assert!(id.len() <= 98, "{} characters: {id}", id.len());
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "{id}"
        );
        let d = decode(&id, "ssh").unwrap();
        assert_eq!(d.name, NAME);
        assert_eq!(d.target, check);
        assert_eq!(d.labels, ownership());
    }

    #[test]
    fn any_labels_round_trip_in_order() {
        let cases = [
            labels(&[]),
            labels(&[("cbx-conformance", "true"), ("run", "00ff00ff00ff")]),
            labels(&[("extra", ""), ("ünïcode", "välue ✓"), ("n", "007")]),
            labels(&[("a", "18446744073709551615"), ("b", "1"), ("c", "0")]),
            labels(&[("a", "18446744073709551615"), ("b", "18446744073709551615")]),
            labels(&[("x", "5"), ("y", "7"), ("z", "12"), ("w", "12")]),
            labels(&[("cbx_lease", "cbx_0123456789AB"), ("cbx_slug", "cbx")]),
            labels(&[("cbx_work_root", "/srv/work root"), ("k", "cbx-amber")]),
            labels(&[("k", &"v".repeat(300))]),
        ];
        for case in cases {
            let id = encode(NAME, 7, "ssh", &case).unwrap();
            let d = decode(&id, "ssh").unwrap_or_else(|| panic!("{id}"));
            assert_eq!(d.labels, case, "{id}");
            assert_eq!(d.target, 7);
        }
    }

    #[test]
    fn bad_names_and_duplicate_keys_are_refused() {
        for name in ["", "Upper", "a.b", "a_b", &"a".repeat(64)] {
            assert_eq!(
                encode(name, 0, "ssh", &[]),
                Err(EncodeError::BadName),
                "{name}"
            );
        }
        assert_eq!(
            encode("n", 0, "ssh", &labels(&[("k", "1"), ("k", "2")])),
            Err(EncodeError::DuplicateKey("k".into()))
        );
        assert_eq!(
            encode("n", 0, "ssh", &labels(&[("k", &"v".repeat(4000))])),
            Err(EncodeError::TooLarge)
        );
    }

    #[test]
    fn foreign_and_damaged_ids_do_not_decode() {
        let id = encode(NAME, 1, "ssh", &ownership()).unwrap();
        assert!(decode(NAME, "ssh").is_none(), "a bare name is not an id");
        assert!(decode("", "ssh").is_none());
        assert!(decode(".AQ", "ssh").is_none());
        assert!(decode(&format!("{id}="), "ssh").is_none());
        assert!(decode(&id.replace("cbx-amber", "CBX-amber"), "ssh").is_none());
        // Every truncation either fails or decodes to fewer labels, never to other values.
        for cut in 1..id.len() - NAME.len() {
            if let Some(d) = decode(&id[..id.len() - cut], "ssh") {
                assert!(ownership().starts_with(&d.labels));
            }
        }
        // A wrong version byte.
        let mut s = String::from("n.");
        base64url_encode(&[2, 0, 0, 0, 0], &mut s);
        assert!(decode(&s, "ssh").is_none());
        // Reserved key codes and kinds, truncated values, references forward, out-of-range
        // name slices.
        for entry in [
            vec![0xb0, 0],
            vec![0x09],
            vec![0x08],
            vec![0xa8, 1, 2, 3],
            vec![0x02, 0],
            vec![0x05, 0, 9],
            vec![0x03, 0, 0],
            vec![0x61, 1, 0x72, 1],
            vec![0x01, 0x80, 0x00],
        ] {
            let mut payload = vec![1, 0, 0, 0, 0];
            payload.extend_from_slice(&entry);
            let mut s = String::from("n.");
            base64url_encode(&payload, &mut s);
            assert!(decode(&s, "ssh").is_none(), "{entry:?}");
        }
    }

    #[test]
    fn base64url_round_trips_and_is_canonical() {
        for len in 0usize..10 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 250) as u8).collect();
            let mut s = String::new();
            base64url_encode(&bytes, &mut s);
            assert_eq!(s.len(), (len * 4).div_ceil(3));
            assert_eq!(base64url_decode(&s).unwrap(), bytes);
        }
        assert_eq!(base64url_decode("AB"), None, "non-zero unused bits");
        assert_eq!(base64url_decode("A"), None);
        assert_eq!(base64url_decode("A+"), None);
    }

    #[test]
    fn varints_are_shortest_form() {
        for n in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, n);
            let mut r = Reader { bytes: &b, at: 0 };
            assert_eq!(r.varint(), Some(n));
            assert!(r.done());
        }
        let mut r = Reader {
            bytes: &[0x80, 0x00],
            at: 0,
        };
        assert_eq!(r.varint(), None);
        let too_big = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        let mut r = Reader {
            bytes: &too_big,
            at: 0,
        };
        assert_eq!(r.varint(), None);
    }

    #[test]
    fn target_checks_differ() {
        assert_ne!(
            target_check("dev@127.0.0.1:22"),
            target_check("dev@127.0.0.1:2222")
        );
        assert_eq!(target_check(""), 0x811c_9dc5);
    }
}
