//! Key encodings, each in one place with its decoding: big-endian numbers so that byte order is
//! the domain's order, and the hub's typed record and feed keys (`origin/dataset/key` text, the
//! bytes every existing store holds).

use passerelle_proto::datasets::Dataset;
use passerelle_proto::date::Month;
use passerelle_proto::identity::Role;
use uuid::Uuid;

/// The key of a record identified by a UUID: its 16 bytes. UUIDv7 ids sort by creation time.
pub(crate) fn id(id: &Uuid) -> [u8; 16] {
    *id.as_bytes()
}

/// The key of an index entry `parent ++ child`.
pub(crate) fn pair(parent: &Uuid, child: &Uuid) -> [u8; 32] {
    let mut key = [0; 32];
    key[..16].copy_from_slice(parent.as_bytes());
    key[16..].copy_from_slice(child.as_bytes());
    key
}

/// The key of a month: its ordinal as a big-endian `u32`.
pub(crate) fn month(month: Month) -> [u8; 4] {
    month.ordinal().to_be_bytes()
}

/// The smallest key greater than every key starting with `prefix`, or `None` if there is none
/// (the prefix is all `0xff`).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
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
pub(crate) fn tombstone(dataset: Dataset, key: &str) -> Vec<u8> {
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
        let mut out = Vec::with_capacity(origin.len() + dataset.as_str().len() + 2);
        Self::write_prefix(&mut out, origin, dataset);
        out
    }

    /// The stored bytes: `origin/dataset/key`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// The length of [`RecordKey::encode`]'s bytes.
    fn encoded_len(&self) -> usize {
        self.origin.len() + self.dataset.as_str().len() + self.key.len() + 2
    }

    /// Appends [`RecordKey::encode`]'s bytes to `out` (written directly, not through
    /// `format!`: a hub encodes a key per change it applies).
    fn encode_into(&self, out: &mut Vec<u8>) {
        Self::write_prefix(out, &self.origin, self.dataset);
        out.extend_from_slice(self.key.as_bytes());
    }

    fn write_prefix(out: &mut Vec<u8>, origin: &str, dataset: Dataset) {
        out.extend_from_slice(origin.as_bytes());
        out.push(b'/');
        out.extend_from_slice(dataset.as_str().as_bytes());
        out.push(b'/');
    }

    /// Reads stored bytes back; `None` if they are not a record key of a known dataset.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.splitn(3, '/');
        let (origin, dataset, key) = (parts.next()?, parts.next()?, parts.next()?);
        Some(Self::new(origin, dataset.parse().ok()?, key))
    }
}

/// A hub's member: its identity, the triple (role, id, issuing network). Stored as
/// `role/id/network`, so the identities sharing a role and an id (the same id vouched for by
/// several networks' CAs) lie together under [`MemberKey::prefix`], and a listing goes by role, id,
/// then network. Neither a role, an id (SIRET or slug) nor a network (slug) contains `/`.
/// Stores from before issue 12 hold `role/id` ([`MemberKey::decode_legacy`]), migrated at open.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct MemberKey {
    /// Node or hub.
    pub(crate) role: Role,
    /// Its SIRET or hub id.
    pub(crate) id: String,
    /// The network whose CA issued its certificate.
    pub(crate) network: String,
}

impl MemberKey {
    /// A member's key.
    pub(crate) fn new(role: Role, id: impl Into<String>, network: impl Into<String>) -> Self {
        Self { role, id: id.into(), network: network.into() }
    }

    /// The prefix of every identity with `role` and `id`, whatever its network.
    pub(crate) fn prefix(role: Role, id: &str) -> Vec<u8> {
        format!("{role}/{id}/").into_bytes()
    }

    /// The stored bytes: `role/id/network`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        format!("{}/{}/{}", self.role, self.id, self.network).into_bytes()
    }

    /// Reads stored bytes back; `None` if they are not a member key (a legacy one included).
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.split('/');
        let (role, id, network) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || id.is_empty() || network.is_empty() {
            return None;
        }
        Some(Self::new(Role::parse(role)?, id, network))
    }

    /// A key as stores from before issue 12 wrote it, `role/id` (no network).
    pub(crate) fn decode_legacy(bytes: &[u8]) -> Option<(Role, String)> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (role, id) = text.split_once('/')?;
        if id.is_empty() || id.contains('/') {
            return None;
        }
        Some((Role::parse(role)?, id.to_string()))
    }
}

/// One entry of a hub's change feed: the records one commit changed, at a position.
/// Stored as the position (big-endian, so positions scan in order) → the records' keys, one a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FeedEntry {
    /// Its position (1, 2, …).
    pub position: u64,
    /// The records it changed.
    pub records: Vec<RecordKey>,
}

impl FeedEntry {
    /// The stored key of a position.
    pub(crate) fn key(position: u64) -> [u8; 8] {
        position.to_be_bytes()
    }

    /// The stored value: the records' keys, one a line.
    pub(crate) fn encode_records(records: &[RecordKey]) -> Vec<u8> {
        let len = records.iter().map(|r| r.encoded_len() + 1).sum::<usize>();
        let mut out = Vec::with_capacity(len);
        for (i, record) in records.iter().enumerate() {
            if i > 0 {
                out.push(b'\n');
            }
            record.encode_into(&mut out);
        }
        out
    }

    /// Reads a stored entry back; lines that are not record keys are skipped, and a key that is
    /// not a position gives `None`.
    pub(crate) fn decode(key: &[u8], value: &[u8]) -> Option<Self> {
        let position = u64::from_be_bytes(key.try_into().ok()?);
        let records = value.split(|b| *b == b'\n').filter_map(RecordKey::decode).collect();
        Some(Self { position, records })
    }
}

/// The period of an indicators cell: months roll up into quarters and years.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum CellPeriod {
    /// A month ([`Month::ordinal`]).
    Month(u32),
    /// A quarter: `year * 4 + quarter - 1`.
    Quarter(u32),
    /// A year.
    Year(u32),
}

impl CellPeriod {
    /// The period of a month, or of the quarter or year of a month range `from..=to` (a month,
    /// a calendar quarter, or a calendar year).
    pub(crate) fn of_range(from: Month, to: Month) -> Self {
        if from == to {
            CellPeriod::Month(from.ordinal())
        } else if to.month - from.month == 2 {
            CellPeriod::Quarter(from.year as u32 * 4 + u32::from(from.month - 1) / 3)
        } else {
            CellPeriod::Year(from.year as u32)
        }
    }

    fn tag(self) -> &'static str {
        match self {
            CellPeriod::Month(_) => "i",
            CellPeriod::Quarter(_) => "iq",
            CellPeriod::Year(_) => "iy",
        }
    }

    fn number(self) -> u32 {
        match self {
            CellPeriod::Month(n) | CellPeriod::Quarter(n) | CellPeriod::Year(n) => n,
        }
    }
}

/// A statistics cell on a hub, by its finest coordinates. Stored as text with zero-padded
/// numbers, so one period's cells, or a range of needs' start months, are one key range:
/// `i/MONTH/DEP/KIND` (and `iq/QUARTER/…`, `iy/YEAR/…`), `n/MONTH/DEP/ROME/CONTRACT`,
/// `p/DEP/DOMAINE/AGE-BAND`. Indicators cells also have a summary under `z/` + the cell's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum CellKey {
    /// An indicators cell.
    Indicators {
        /// Its period.
        period: CellPeriod,
        /// The structures' département.
        departement: String,
        /// The structures' kind (slug).
        kind: String,
    },
    /// A needs cell.
    Needs {
        /// The start month ([`Month::ordinal`]).
        start: u32,
        /// The need's département.
        departement: String,
        /// The ROME fiche.
        rome: String,
        /// The contract type (slug).
        contract: String,
    },
    /// A profiles cell.
    Profiles {
        /// The profile's département.
        departement: String,
        /// The ROME domaine sought (three characters).
        domaine: String,
        /// The age band (slug).
        age_band: String,
    },
}

/// The prefix of indicators summaries.
const SUMMARY: &str = "z/";

impl CellKey {
    /// The stored bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        use std::fmt::Write as _;
        // Sized up front: a hub encodes a cell key per record it applies.
        let mut out = String::with_capacity(64);
        let _ = match self {
            CellKey::Indicators { period, departement, kind } => {
                write!(out, "{}/{:08}/{departement}/{kind}", period.tag(), period.number())
            }
            CellKey::Needs { start, departement, rome, contract } => {
                return Self::needs(*start, departement, rome, contract);
            }
            CellKey::Profiles { departement, domaine, age_band } => {
                write!(out, "p/{departement}/{domaine}/{age_band}")
            }
        };
        out.into_bytes()
    }

    /// The stored bytes of a needs cell, from borrowed coordinates: a hub encodes one per need
    /// it applies, and building a [`CellKey::Needs`] first cost three strings each time.
    pub(crate) fn needs(start: u32, departement: &str, rome: &str, contract: &str) -> Vec<u8> {
        use std::io::Write as _;
        let mut out = Vec::with_capacity(12 + departement.len() + rome.len() + contract.len() + 3);
        let _ = write!(out, "n/{start:08}/");
        for (i, part) in [departement, rome, contract].into_iter().enumerate() {
            if i > 0 {
                out.push(b'/');
            }
            out.extend_from_slice(part.as_bytes());
        }
        out
    }

    /// Whether `bytes` are an indicators month cell's key (`i/…`), without decoding them.
    pub(crate) fn is_month(bytes: &[u8]) -> bool {
        bytes.starts_with(b"i/")
    }

    /// Reads stored bytes back (not a summary key); `None` if they are not a cell key.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let parts: Vec<&str> = text.split('/').collect();
        let owned = |i: usize| parts.get(i).map(|p| (*p).to_string());
        let number = |i: usize| parts.get(i)?.parse::<u32>().ok();
        let period = match *parts.first()? {
            "i" => CellPeriod::Month(number(1)?),
            "iq" => CellPeriod::Quarter(number(1)?),
            "iy" => CellPeriod::Year(number(1)?),
            "n" => {
                return Some(CellKey::Needs {
                    start: number(1)?,
                    departement: owned(2)?,
                    rome: owned(3)?,
                    contract: owned(4)?,
                });
            }
            "p" => {
                return Some(CellKey::Profiles {
                    departement: owned(1)?,
                    domaine: owned(2)?,
                    age_band: owned(3)?,
                });
            }
            _ => return None,
        };
        Some(CellKey::Indicators { period, departement: owned(2)?, kind: owned(3)? })
    }

    /// The key of the cell's precomputed summary, for cells that have one (indicators).
    pub(crate) fn summary(&self) -> Option<Vec<u8>> {
        matches!(self, CellKey::Indicators { .. }).then(|| [SUMMARY.as_bytes(), &self.encode()].concat())
    }

    /// The quarter and year cells a month's indicators cell rolls up into (none for others): the
    /// key layout the stores hold (which of them a structure counts in is `hub::stats`'s call).
    #[cfg(test)]
    pub(crate) fn rollups(&self) -> Vec<CellKey> {
        let CellKey::Indicators { period: CellPeriod::Month(ordinal), departement, kind } = self else {
            return Vec::new();
        };
        let month = Month::from_ordinal(*ordinal);
        [
            CellPeriod::Quarter(month.year as u32 * 4 + u32::from(month.month - 1) / 3),
            CellPeriod::Year(month.year as u32),
        ]
        .into_iter()
        .map(|period| CellKey::Indicators { period, departement: departement.clone(), kind: kind.clone() })
        .collect()
    }

    /// The prefix of the summaries of every indicators cell of `period`; what follows it is
    /// `DEP/KIND`.
    pub(crate) fn summaries_of(period: CellPeriod) -> Vec<u8> {
        format!("{SUMMARY}{}/{:08}/", period.tag(), period.number()).into_bytes()
    }

    /// The prefix of every indicators cell of `period` (not their summaries); what follows
    /// it is `DEP/KIND`.
    pub(crate) fn cells_of(period: CellPeriod) -> Vec<u8> {
        format!("{}/{:08}/", period.tag(), period.number()).into_bytes()
    }

    /// The first key of the needs cells starting in month `start` or later.
    pub(crate) fn needs_from(start: u32) -> Vec<u8> {
        format!("n/{start:08}").into_bytes()
    }

    /// The prefix of every profiles cell.
    pub(crate) fn profiles() -> &'static [u8] {
        b"p/"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_keys_hold_the_issuing_network_and_read_legacy_ones() {
        let key = MemberKey::new(Role::Hub, "fas-pdl", "fas");
        assert_eq!(key.encode(), b"hub/fas-pdl/fas".to_vec());
        assert_eq!(MemberKey::decode(&key.encode()), Some(key.clone()));
        assert!(key.encode().starts_with(&MemberKey::prefix(Role::Hub, "fas-pdl")));
        assert!(!key.encode().starts_with(&MemberKey::prefix(Role::Hub, "fas")), "fas is not fas-pdl");
        // What stores from before issue 12 hold, and nothing else, reads as legacy.
        assert_eq!(
            MemberKey::decode_legacy(b"node/73282932000074"),
            Some((Role::Node, "73282932000074".into()))
        );
        assert_eq!(MemberKey::decode(b"node/73282932000074"), None);
        assert_eq!(MemberKey::decode_legacy(&key.encode()), None);
        assert_eq!(MemberKey::decode(b"admin/x/y"), None);
        // Keys sort by role, id, then network.
        let mut keys = [
            MemberKey::new(Role::Hub, "fas-pdl", "fas").encode(),
            MemberKey::new(Role::Hub, "fas-pdl", "coorace").encode(),
            MemberKey::new(Role::Hub, "coorace-pdl", "fas").encode(),
        ];
        keys.sort();
        assert_eq!(keys[0], b"hub/coorace-pdl/fas".to_vec());
        assert_eq!(keys[1], b"hub/fas-pdl/coorace".to_vec());
    }

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
    fn cell_keys_keep_their_bytes_and_round_trip() {
        let jan = Month::parse("2026-01").expect("valid");
        let month = CellKey::Indicators {
            period: CellPeriod::Month(jan.ordinal()),
            departement: "49".into(),
            kind: "ei".into(),
        };
        assert_eq!(
            month.encode(),
            format!("i/{:08}/49/ei", jan.ordinal()).into_bytes(),
            "the bytes stores hold"
        );
        let need = CellKey::Needs {
            start: jan.ordinal(),
            departement: "44".into(),
            rome: "K2204".into(),
            contract: "cddi".into(),
        };
        let profile =
            CellKey::Profiles { departement: "49".into(), domaine: "K22".into(), age_band: "26-44".into() };
        assert_eq!(profile.encode(), b"p/49/K22/26-44".to_vec());
        assert_eq!(need.encode(), format!("n/{:08}/44/K2204/cddi", jan.ordinal()).into_bytes());
        assert_eq!(CellKey::needs(jan.ordinal(), "44", "K2204", "cddi"), need.encode());
        assert!(CellKey::is_month(&month.encode()));
        assert!(![&need, &profile].iter().any(|k| CellKey::is_month(&k.encode())));
        assert!(month.rollups().iter().all(|k| !CellKey::is_month(&k.encode())), "quarters, years");
        for key in [&month, &need, &profile] {
            assert_eq!(CellKey::decode(&key.encode()).as_ref(), Some(key));
        }
        assert_eq!(CellKey::decode(b"x/1/2"), None);
        assert_eq!(CellKey::decode(b"i/notanumber/49/ei"), None);
        assert!(profile.encode().starts_with(CellKey::profiles()));
        assert_eq!(need.summary(), None, "only indicators cells have summaries");
        let summary = month.summary().expect("indicators");
        assert!(summary.starts_with(&CellKey::summaries_of(CellPeriod::Month(jan.ordinal()))));
        assert_eq!(&summary[CellKey::summaries_of(CellPeriod::Month(jan.ordinal())).len()..], b"49/ei");
    }

    #[test]
    fn months_roll_up_into_their_quarter_and_year() {
        let aug = Month::parse("2026-08").expect("valid");
        let cell = CellKey::Indicators {
            period: CellPeriod::Month(aug.ordinal()),
            departement: "49".into(),
            kind: "ei".into(),
        };
        let rollups: Vec<Vec<u8>> = cell.rollups().iter().map(CellKey::encode).collect();
        assert_eq!(
            rollups,
            [format!("iq/{:08}/49/ei", 2026 * 4 + 2).into_bytes(), b"iy/00002026/49/ei".to_vec()]
        );
        let q3 = (Month { year: 2026, month: 7 }, Month { year: 2026, month: 9 });
        assert_eq!(CellPeriod::of_range(q3.0, q3.1), CellPeriod::Quarter(2026 * 4 + 2));
        assert_eq!(CellPeriod::of_range(aug, aug), CellPeriod::Month(aug.ordinal()));
        assert!(rollups.iter().all(|k| CellKey::decode(k).is_some_and(|c| c.rollups().is_empty())));
    }

    #[test]
    fn needs_cells_sort_by_start_month() {
        let (a, b) = (Month::parse("2026-09").expect("valid"), Month::parse("2026-10").expect("valid"));
        let need = |start: u32| {
            CellKey::Needs { start, departement: "99".into(), rome: "Z".into(), contract: "z".into() }
                .encode()
        };
        assert!(need(a.ordinal()) < CellKey::needs_from(b.ordinal()));
        assert!(CellKey::needs_from(b.ordinal()) <= need(b.ordinal()));
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
