//! Key encodings, each in one place with its decoding: big-endian numbers so that byte order is
//! the domain's order, and the hub's typed record and feed keys (`origin/dataset/key` text, the
//! bytes every existing store holds).

use passerelle_proto::datasets::Dataset;
use passerelle_proto::date::Month;
use uuid::Uuid;

/// The key of a record identified by a UUID: its 16 bytes. UUIDv7 ids sort by creation time.
pub fn id(id: &Uuid) -> [u8; 16] {
    *id.as_bytes()
}

/// The key of an index entry `parent ++ child`.
pub fn pair(parent: &Uuid, child: &Uuid) -> [u8; 32] {
    let mut key = [0; 32];
    key[..16].copy_from_slice(parent.as_bytes());
    key[16..].copy_from_slice(child.as_bytes());
    key
}

/// The key of a month: its ordinal as a big-endian `u32`.
pub fn month(month: Month) -> [u8; 4] {
    month.ordinal().to_be_bytes()
}

/// The smallest key greater than every key starting with `prefix`, or `None` if there is none
/// (the prefix is all `0xff`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The key of a node's local tombstone of a record: `dataset/key` (the last version, so a
/// deletion travels with a version above the record's). Every tombstone of a dataset lies under
/// `tombstone(dataset, "")`.
pub fn tombstone(dataset: Dataset, key: &str) -> Vec<u8> {
    format!("{dataset}/{key}").into_bytes()
}

/// A record on a hub: whose (origin SIRET), which dataset, and its key in the dataset (need id,
/// period, pseudonym). Stored as `origin/dataset/key`, so every record of an origin's dataset
/// lies under [`RecordKey::prefix`]; neither a SIRET nor a dataset slug contains `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordKey {
    /// The origin structure's SIRET.
    pub origin: String,
    /// The dataset.
    pub dataset: Dataset,
    /// The record's key within the dataset (empty never names a record).
    pub key: String,
}

impl RecordKey {
    /// A record's key.
    pub fn new(origin: impl Into<String>, dataset: Dataset, key: impl Into<String>) -> Self {
        Self { origin: origin.into(), dataset, key: key.into() }
    }

    /// The prefix of every record of `origin`'s `dataset`.
    pub fn prefix(origin: &str, dataset: Dataset) -> Vec<u8> {
        format!("{origin}/{dataset}/").into_bytes()
    }

    /// The stored bytes: `origin/dataset/key`.
    pub fn encode(&self) -> Vec<u8> {
        format!("{}/{}/{}", self.origin, self.dataset, self.key).into_bytes()
    }

    /// Reads stored bytes back; `None` if they are not a record key of a known dataset.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.splitn(3, '/');
        let (origin, dataset, key) = (parts.next()?, parts.next()?, parts.next()?);
        Some(Self::new(origin, dataset.parse().ok()?, key))
    }
}

/// One entry of a hub's change feed: the records one commit changed, at a position.
/// Stored as the position (big-endian, so positions scan in order) → the records' keys, one a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    /// Its position (1, 2, …).
    pub position: u64,
    /// The records it changed.
    pub records: Vec<RecordKey>,
}

impl FeedEntry {
    /// The stored key of a position.
    pub fn key(position: u64) -> [u8; 8] {
        position.to_be_bytes()
    }

    /// The stored value: the records' keys, one a line.
    pub fn encode_records(records: &[RecordKey]) -> Vec<u8> {
        let lines: Vec<Vec<u8>> = records.iter().map(RecordKey::encode).collect();
        lines.join(&b'\n')
    }

    /// Reads a stored entry back; lines that are not record keys are skipped, and a key that is
    /// not a position gives `None`.
    pub fn decode(key: &[u8], value: &[u8]) -> Option<Self> {
        let position = u64::from_be_bytes(key.try_into().ok()?);
        let records = value.split(|b| *b == b'\n').filter_map(RecordKey::decode).collect();
        Some(Self { position, records })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_keys_keep_their_bytes_and_round_trip() {
        let key = RecordKey::new("12345678901234", Dataset::Needs, "0192-a");
        assert_eq!(key.encode(), b"12345678901234/needs/0192-a".to_vec(), "the bytes stores hold");
        assert_eq!(RecordKey::decode(&key.encode()), Some(key.clone()));
        assert!(key.encode().starts_with(&RecordKey::prefix("12345678901234", Dataset::Needs)));
        assert!(!key.encode().starts_with(&RecordKey::prefix("12345678901234", Dataset::Indicators)));
        // A key may itself contain '/': only the first two separate.
        let odd = RecordKey::new("1", Dataset::Profiles, "a/b");
        assert_eq!(RecordKey::decode(&odd.encode()), Some(odd));
        assert_eq!(RecordKey::decode(b"1/unknown/x"), None);
        assert_eq!(RecordKey::decode(b"1/needs"), None);
    }

    #[test]
    fn tombstone_keys_keep_their_bytes() {
        assert_eq!(tombstone(Dataset::Profiles, "p1"), b"profiles/p1".to_vec());
        assert!(tombstone(Dataset::Needs, "x").starts_with(&tombstone(Dataset::Needs, "")));
    }

    #[test]
    fn one_origin_s_records_sort_together_by_key() {
        let a = RecordKey::new("1", Dataset::Indicators, "2026-01").encode();
        let b = RecordKey::new("1", Dataset::Indicators, "2026-02").encode();
        let other = RecordKey::new("2", Dataset::Indicators, "2025-01").encode();
        assert!(a < b && b < other);
    }

    #[test]
    fn feed_entries_round_trip_in_position_order() {
        let records = vec![
            RecordKey::new("1", Dataset::Needs, "x"),
            RecordKey::new("2", Dataset::Indicators, "2026-03"),
        ];
        let value = FeedEntry::encode_records(&records);
        assert_eq!(value, b"1/needs/x\n2/indicators/2026-03".to_vec(), "the bytes stores hold");
        assert_eq!(FeedEntry::decode(&FeedEntry::key(7), &value), Some(FeedEntry { position: 7, records }));
        assert!(FeedEntry::key(255) < FeedEntry::key(256), "positions scan in order");
        assert_eq!(FeedEntry::decode(b"short", &value), None);
    }

    #[test]
    fn prefix_end_carries() {
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
    }

    #[test]
    fn month_keys_sort_chronologically() {
        let dec = Month::parse("2025-12").map(month).expect("valid");
        let jan = Month::parse("2026-01").map(month).expect("valid");
        assert!(dec < jan);
    }
}
