//! Content digests: the hex sha256 that pins components, manifests and approvals.

use sha2::{Digest, Sha256};

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
