//! The aggregate cells a hub keeps, changed in the same commit as the records they count.

use std::collections::{BTreeMap, HashMap};

use passerelle_proto::codes::slug_of;
use passerelle_proto::date::Month;
use passerelle_proto::v1::{AgeBand, ContractType, Structure, StructureKind};
use prost::Message;

use super::catalogue::*;
use super::tables::*;
use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::hub::ingest::HubRecord;
use crate::store::keys::{CellKey, CellPeriod};
use crate::store::{StoreError, Tree, WriteBatch, scan_prefix};

/// One structure's contribution to a cell.
#[derive(Clone, PartialEq, Message)]
pub struct Contribution {
    /// The structure.
    #[prost(string, tag = "1")]
    pub siret: String,
    /// Its summed values (meaning depends on the table).
    #[prost(int64, repeated, tag = "2")]
    pub values: Vec<i64>,
    /// How many of its records are counted here.
    #[prost(uint32, tag = "3")]
    pub records: u32,
}

/// An aggregate cell.
#[derive(Clone, PartialEq, Message)]
pub struct StatCell {
    /// One per contributing structure.
    #[prost(message, repeated, tag = "1")]
    pub contributions: Vec<Contribution>,
    /// Latest record received for this cell, milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub latest_ms: i64,
}

/// What a query needs of an indicators cell, precomputed when the cell changes, so a table costs
/// the number of cells it reads and never the number of structures or records behind them.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Summary {
    /// Contributing structures.
    #[prost(uint32, tag = "1")]
    pub structures: u32,
    /// Totals per measure (stocks averaged per structure over its months, flows summed).
    #[prost(int64, repeated, tag = "2")]
    pub totals: Vec<i64>,
    /// The largest single-structure value of the dominance measure.
    #[prost(int64, tag = "3")]
    pub dominance_max: i64,
    /// Latest record received.
    #[prost(int64, tag = "4")]
    pub latest_ms: i64,
}

impl Summary {
    /// Adds a summary of cells whose structures are disjoint from this one's.
    pub(super) fn merge(&mut self, other: &Summary) {
        self.structures += other.structures;
        self.totals.resize(self.totals.len().max(other.totals.len()), 0);
        for (a, b) in self.totals.iter_mut().zip(&other.totals) {
            *a += b;
        }
        self.dominance_max = self.dominance_max.max(other.dominance_max);
        self.latest_ms = self.latest_ms.max(other.latest_ms);
    }
}

/// A cell's key and the keys of the cells it rolls up into (indicators: quarter and year).
pub(super) fn with_rollups(key: &[u8]) -> Vec<Vec<u8>> {
    let rollups = CellKey::decode(key).map(|cell| cell.rollups()).unwrap_or_default();
    std::iter::once(key.to_vec()).chain(rollups.iter().map(CellKey::encode)).collect()
}

impl StatCell {
    pub(super) fn apply(&mut self, siret: &str, values: &[i64], sign: i64, at_ms: i64) {
        let index = match self.contributions.iter().position(|c| c.siret == siret) {
            Some(i) => i,
            None => {
                self.contributions.push(Contribution {
                    siret: siret.into(),
                    values: vec![0; values.len()],
                    records: 0,
                });
                self.contributions.len() - 1
            }
        };
        let c = &mut self.contributions[index];
        c.values.resize(values.len().max(c.values.len()), 0);
        for (acc, v) in c.values.iter_mut().zip(values) {
            *acc += sign * v;
        }
        c.records = if sign > 0 { c.records + 1 } else { c.records.saturating_sub(1) };
        if c.records == 0 {
            self.contributions.remove(index);
        }
        if sign > 0 {
            self.latest_ms = self.latest_ms.max(at_ms);
        }
    }
}

/// The values a record contributes, whatever its cell (`None`: not counted).
pub(super) fn values_of(record: &HubRecord) -> Option<Vec<i64>> {
    Table::of_record(record)?.spec().values(record)
}

/// What a stored record with a `stat_key` contributed to that cell. Read from the record whatever
/// today's counting rules say, so a record counted under older rules (a profile counted before
/// purposes existed) is still taken out of its cell.
fn contributed(record: &HubRecord) -> Option<Vec<i64>> {
    (!record.stat_key.is_empty()).then(|| Table::of_record(record).map(|t| t.spec().read(record)))?
}

/// Where a record is counted and with which values, or `None` if it is not counted. Indicators
/// need the structure (département, kind); needs and profiles carry their own coordinates.
pub(crate) fn contribution(record: &HubRecord, structure: Option<&Structure>) -> Option<(Vec<u8>, Vec<i64>)> {
    let values = values_of(record)?;
    let key = match Table::of_record(record)? {
        Table::Indicators => {
            let s = structure?;
            let month = Month::parse(&record.indicators.as_ref()?.fields.as_ref()?.period).ok()?;
            CellKey::Indicators {
                period: CellPeriod::Month(month.ordinal()),
                departement: s.departement.clone(),
                kind: slug_of::<StructureKind>(s.kind).to_string(),
            }
        }
        Table::Needs => {
            let need = record.need.as_ref()?;
            CellKey::Needs {
                start: Month::parse(need.start_date.get(..7)?).ok()?.ordinal(),
                departement: need.departement.clone(),
                rome: need.rome_code.clone(),
                contract: slug_of::<ContractType>(need.contract_type).to_string(),
            }
        }
        Table::Profiles => {
            let profile = record.profile.as_ref()?;
            CellKey::Profiles {
                departement: profile.departement.clone(),
                domaine: profile.rome_codes.first()?.chars().take(3).collect(),
                age_band: slug_of::<AgeBand>(profile.age_band).to_string(),
            }
        }
    };
    Some((key.encode(), values))
}

/// Cells being changed by one commit.
#[derive(Default)]
pub(crate) struct StatsDelta {
    pub(super) cells: HashMap<Vec<u8>, StatCell>,
}

impl Hub {
    pub(super) fn load_cell(&self, key: &[u8]) -> Result<StatCell> {
        Ok(match self.store.get(Tree::Stats, key)? {
            Some(raw) => StatCell::decode(raw.as_slice())
                .map_err(|_| Error::Store(StoreError("corrupt statistics cell".into())))?,
            None => StatCell::default(),
        })
    }

    /// Moves a record's contribution from its old state to its new one; sets the new record's
    /// `stat_key`.
    pub(in crate::hub) fn stage_stats(
        &self,
        delta: &mut StatsDelta,
        origin: &str,
        structure: Option<&Structure>,
        old: Option<&HubRecord>,
        new: Option<&mut HubRecord>,
    ) -> Result<()> {
        if let Some(old) = old
            && let Some(values) = contributed(old)
        {
            if !delta.cells.contains_key(&old.stat_key) {
                let cell = self.load_cell(&old.stat_key)?;
                delta.cells.insert(old.stat_key.clone(), cell);
            }
            for key in with_rollups(&old.stat_key) {
                if !delta.cells.contains_key(&key) {
                    let cell = self.load_cell(&key)?;
                    delta.cells.insert(key.clone(), cell);
                }
                if let Some(cell) = delta.cells.get_mut(&key) {
                    cell.apply(origin, &values, -1, 0);
                }
            }
        }
        if let Some(new) = new {
            new.stat_key.clear();
            if let Some((key, values)) = contribution(new, structure) {
                for k in with_rollups(&key) {
                    if !delta.cells.contains_key(&k) {
                        let cell = self.load_cell(&k)?;
                        delta.cells.insert(k.clone(), cell);
                    }
                    if let Some(cell) = delta.cells.get_mut(&k) {
                        cell.apply(origin, &values, 1, new.received_at_ms);
                    }
                }
                new.stat_key = key;
            }
        }
        Ok(())
    }

    /// Takes out of the statistics the profiles counted under the rules before purposes (every
    /// profile) that no `statistics` consent covers, in one commit; returns how many. Run at open:
    /// a no-op once done, and cheap next to a view of profiles (one scan of the records).
    pub(in crate::hub) fn uncount_profiles_without_statistics(&self) -> Result<usize> {
        use crate::store::keys::RecordKey;
        use passerelle_proto::datasets::Dataset;

        let _writer = self.write_lock();
        let mut delta = StatsDelta::default();
        let mut batch = WriteBatch::new();
        let mut uncounted = 0;
        for (key, raw) in self.store.scan(Tree::Records, &[], None, usize::MAX)? {
            let Some(record_key) = RecordKey::decode(&key).filter(|k| k.dataset == Dataset::Profiles) else {
                continue;
            };
            let Ok(record) = HubRecord::decode(raw.as_slice()) else { continue };
            if record.stat_key.is_empty() || values_of(&record).is_some() {
                continue;
            }
            let mut now = record.clone();
            self.stage_stats(&mut delta, &record_key.origin, None, Some(&record), Some(&mut now))?;
            batch.put(Tree::Records, key, now.encode_to_vec());
            uncounted += 1;
        }
        if uncounted > 0 {
            Self::flush_stats(&mut batch, delta);
            self.store.commit(batch)?;
        }
        Ok(uncounted)
    }

    /// Writes the changed cells into `batch`.
    pub(in crate::hub) fn flush_stats(batch: &mut WriteBatch, delta: StatsDelta) {
        for (key, cell) in delta.cells {
            let summary_key = CellKey::decode(&key).and_then(|cell| cell.summary());
            if cell.contributions.is_empty() {
                batch.delete(Tree::Stats, key);
                if let Some(summary_key) = summary_key {
                    batch.delete(Tree::Stats, summary_key);
                }
            } else {
                if let Some(summary_key) = summary_key {
                    let mut group = Group::default();
                    for c in &cell.contributions {
                        group.add(c);
                    }
                    let mut summary = summarize(&INDICATORS, &group);
                    summary.latest_ms = cell.latest_ms;
                    batch.put(Tree::Stats, summary_key, summary.encode_to_vec());
                }
                batch.put(Tree::Stats, key, cell.encode_to_vec());
            }
        }
    }

    /// Every cell of a table (by key prefix), for tests and recomputation checks.
    pub fn stat_cells(&self, prefix: &str) -> Result<BTreeMap<Vec<u8>, StatCell>> {
        scan_prefix(self.store.as_ref(), Tree::Stats, prefix.as_bytes())?
            .into_iter()
            .map(|(k, v)| {
                Ok((
                    k,
                    StatCell::decode(v.as_slice())
                        .map_err(|_| Error::Store(StoreError("corrupt cell".into())))?,
                ))
            })
            .collect()
    }
}
