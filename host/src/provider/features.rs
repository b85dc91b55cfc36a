//! The features a provider may declare in `describe`: words of the contract that change what
//! the host does with it.

use super::bindings::api::ProviderInfo;

/// A feature word (`features` in `describe`). Providers may declare others; the host acts on
/// these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Feature {
    /// Its sandboxes outlive their leases (an existing host): `delete` only releases the
    /// lease, so `get` keeps answering and there is nothing to wait for.
    Persistent,
    /// It can start a stopped sandbox.
    Start,
    /// It can stop a running sandbox.
    Stop,
}

impl Feature {
    /// The word as providers write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Feature::Persistent => "persistent",
            Feature::Start => "start",
            Feature::Stop => "stop",
        }
    }

    /// Whether `info` declares this feature.
    pub fn declared_by(self, info: &ProviderInfo) -> bool {
        info.features.iter().any(|f| f == self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_match_serde() {
        for f in [Feature::Persistent, Feature::Start, Feature::Stop] {
            assert_eq!(
                serde_json::to_string(&f).unwrap(),
                format!("\"{}\"", f.as_str())
            );
        }
    }
}
