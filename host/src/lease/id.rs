//! Lease ids (`cbx_` + 12 lowercase hex) and human slugs (`adjective-animal`).

use std::fmt;

use rand::Rng;
use rand::seq::IndexedRandom;

/// A lease's canonical id.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct LeaseId(String);

impl LeaseId {
    /// A new random id.
    pub fn generate() -> LeaseId {
        let bytes: [u8; 6] = rand::rng().random();
        LeaseId(format!("cbx_{}", hex::encode(bytes)))
    }

    /// Parses a canonical id; anything else is `None`.
    pub fn parse(text: &str) -> Option<LeaseId> {
        let hex = text.strip_prefix("cbx_")?;
        (hex.len() == 12
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| LeaseId(text.to_string()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for LeaseId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        LeaseId::parse(&s).ok_or_else(|| format!("`{s}` is not a lease id (cbx_ + 12 hex digits)"))
    }
}

impl From<LeaseId> for String {
    fn from(id: LeaseId) -> String {
        id.0
    }
}

const ADJECTIVES: &[&str] = &[
    "amber", "azure", "bold", "brave", "brisk", "calm", "clever", "coral", "cosmic", "crimson",
    "daring", "dusty", "eager", "early", "fancy", "fast", "fierce", "gentle", "golden", "grand",
    "happy", "hidden", "humble", "icy", "jade", "jolly", "keen", "kind", "lively", "lucky",
    "mellow", "merry", "misty", "nimble", "noble", "olive", "pearl", "plucky", "polar", "proud",
    "quick", "quiet", "rapid", "rosy", "rusty", "silver", "sleek", "snowy", "solar", "spry",
    "steady", "sunny", "swift", "tidal", "tiny", "vivid", "warm", "wild", "witty", "zesty",
];

const ANIMALS: &[&str] = &[
    "badger", "beaver", "bison", "bobcat", "crane", "cricket", "dingo", "dolphin", "eagle",
    "falcon", "ferret", "finch", "gecko", "gibbon", "heron", "ibis", "impala", "jackal", "koala",
    "lemur", "lizard", "llama", "lynx", "marmot", "marten", "mink", "moose", "newt", "ocelot",
    "otter", "owl", "panda", "parrot", "pelican", "penguin", "puffin", "quail", "rabbit", "raven",
    "robin", "salmon", "seal", "shrew", "sparrow", "stoat", "swan", "tapir", "tiger", "toucan",
    "turtle", "viper", "walrus", "weasel", "whale", "wolf", "wombat", "yak", "zebra",
];

/// A random `adjective-animal` slug.
pub fn random_slug() -> String {
    let mut rng = rand::rng();
    format!(
        "{}-{}",
        ADJECTIVES.choose(&mut rng).expect("non-empty"),
        ANIMALS.choose(&mut rng).expect("non-empty")
    )
}

/// A slug not in `taken`: random choices first, then a random one with a 4-hex suffix.
pub fn unique_slug(taken: &dyn Fn(&str) -> bool) -> String {
    for _ in 0..32 {
        let s = random_slug();
        if !taken(&s) {
            return s;
        }
    }
    loop {
        let suffix: u16 = rand::rng().random();
        let s = format!("{}-{suffix:04x}", random_slug());
        if !taken(&s) {
            return s;
        }
    }
}

/// Normalises a user-typed slug: lowercase, runs of other characters become one dash.
pub fn normalize_slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_others() {
        let id = LeaseId::generate();
        assert_eq!(LeaseId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(id.as_str().len(), 16);
        for bad in [
            "cbx_ABCDEF123456",
            "cbx_abc",
            "abc_abcdef123456",
            "cbx_abcdef1234567",
            "cbx_abcdefg23456",
        ] {
            assert!(LeaseId::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn slugs_avoid_taken_names() {
        let s = unique_slug(&|_| false);
        assert!(s.contains('-'));
        let suffixed = unique_slug(&|s| s.matches('-').count() == 1);
        assert_eq!(suffixed.matches('-').count(), 2, "{suffixed}");
        assert_eq!(normalize_slug(" Amber_Otter! "), "amber-otter");
    }
}
