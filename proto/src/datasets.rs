//! The datasets a node shares with hubs (the one place their names are written), and the digest
//! both sides compute to compare them.
//!
//! A digest is a count and the XOR of a 16-byte hash per live record, so it does not depend on
//! order, can be updated record by record, and two sides agree exactly when they hold the same
//! (key, version) pairs (up to a 2^-128 accident).

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use crate::validate::FieldError;

/// A dataset a node may share with a hub. The wire carries its slug ([`Dataset::as_str`]); the
/// daemon parses it once where it enters (config `share`, `PushOpen.datasets`, `Change.dataset`,
/// the outbox) and works with the enum, so a new dataset is a new variant the compiler walks
/// through every `match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dataset {
    /// Anonymised recruitment needs (`SharedNeed`).
    Needs,
    /// Monthly indicator reports (`IndicatorReport`).
    Indicators,
    /// Anonymised profiles of persons available for work (`AnonymizedProfile`), under consent.
    Profiles,
}

impl Dataset {
    /// Every dataset a sharing agreement may name today.
    pub const ALL: [Dataset; 3] = [Dataset::Needs, Dataset::Indicators, Dataset::Profiles];

    /// The slug: on the wire, in config files, in store keys and in metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Dataset::Needs => "needs",
            Dataset::Indicators => "indicators",
            Dataset::Profiles => "profiles",
        }
    }

    /// Whether a hub relays the dataset to its upstream hubs (profiles never leave the network).
    pub const fn is_relayed(self) -> bool {
        matches!(self, Dataset::Needs | Dataset::Indicators)
    }

    /// Parses a slug, naming `field` in the error (`datasets`, `hubs.share`, `dataset`).
    pub fn parse(field: &str, slug: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|d| d.as_str() == slug)
            .ok_or_else(|| FieldError::new(field, slug, format!("expected one of {}", Self::choices())))
    }

    /// The slugs, comma-separated, for error messages.
    pub fn choices() -> String {
        Self::ALL.map(Dataset::as_str).join(", ")
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Dataset {
    type Err = FieldError;

    fn from_str(slug: &str) -> Result<Self, FieldError> {
        Self::parse("dataset", slug)
    }
}

/// So a wire string can be compared with a dataset without allocating.
impl PartialEq<Dataset> for str {
    fn eq(&self, other: &Dataset) -> bool {
        self == other.as_str()
    }
}

/// So a wire string can be compared with a dataset without allocating.
impl PartialEq<Dataset> for String {
    fn eq(&self, other: &Dataset) -> bool {
        self.as_str() == other.as_str()
    }
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

    #[test]
    fn dataset_slugs_round_trip() {
        for dataset in Dataset::ALL {
            assert_eq!(dataset.as_str().parse::<Dataset>(), Ok(dataset));
            assert_eq!(dataset.to_string(), dataset.as_str());
            let wire: String = dataset.as_str().into();
            assert!(
                wire == dataset && *wire.as_str() == dataset,
                "a wire string compares equal to its dataset"
            );
        }
        assert_eq!(Dataset::choices(), "needs, indicators, profiles");
    }

    #[test]
    fn unknown_datasets_name_the_field_and_the_choices() {
        let err = Dataset::parse("hubs.share", "persons").expect_err("not a dataset");
        assert_eq!(err.to_string(), r#"hubs.share "persons": expected one of needs, indicators, profiles"#);
        assert!("Needs".parse::<Dataset>().is_err(), "slugs are case-sensitive");
        assert!(!Dataset::Profiles.is_relayed());
        assert!(Dataset::Needs.is_relayed() && Dataset::Indicators.is_relayed());
    }
}
