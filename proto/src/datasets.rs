//! The datasets a node shares with hubs, and the digest both sides compute to compare them.
//!
//! A digest is a count and the XOR of a 16-byte hash per live record, so it does not depend on
//! order, can be updated record by record, and two sides agree exactly when they hold the same
//! (key, version) pairs (up to a 2^-128 accident).

use sha2::{Digest as _, Sha256};

/// Anonymised recruitment needs (`SharedNeed`).
pub const NEEDS: &str = "needs";
/// Monthly indicator reports (`IndicatorReport`).
pub const INDICATORS: &str = "indicators";

/// Anonymised profiles of persons available for work (`AnonymizedProfile`), under consent.
pub const PROFILES: &str = "profiles";

/// Every dataset a sharing agreement may name today.
pub const ALL: &[&str] = &[NEEDS, INDICATORS, PROFILES];

/// Whether `name` is a known dataset.
pub fn is_dataset(name: &str) -> bool {
    ALL.contains(&name)
}

/// An order-independent digest of a set of (key, version) pairs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Digest {
    /// How many records.
    pub count: u64,
    /// XOR of each record's 16-byte hash.
    pub hash: [u8; 16],
}

impl Digest {
    /// Adds (or, XOR being its own inverse, removes with [`Digest::remove`]) one record.
    pub fn add(&mut self, key: &str, version: u64) {
        self.count += 1;
        self.xor(key, version);
    }

    /// Removes one record previously added.
    pub fn remove(&mut self, key: &str, version: u64) {
        self.count = self.count.saturating_sub(1);
        self.xor(key, version);
    }

    fn xor(&mut self, key: &str, version: u64) {
        let mut hasher = Sha256::new();
        hasher.update((key.len() as u64).to_be_bytes());
        hasher.update(key.as_bytes());
        hasher.update(version.to_be_bytes());
        let full = hasher.finalize();
        for (acc, byte) in self.hash.iter_mut().zip(full.iter()) {
            *acc ^= byte;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_ignore_order_and_see_versions() {
        let mut a = Digest::default();
        a.add("x", 1);
        a.add("y", 2);
        let mut b = Digest::default();
        b.add("y", 2);
        b.add("x", 1);
        assert_eq!(a, b);
        let mut c = Digest::default();
        c.add("y", 3);
        c.add("x", 1);
        assert_ne!(a, c, "a version change shows");
        b.remove("y", 2);
        b.add("y", 3);
        assert_eq!(b, c, "incremental update");
    }
}
