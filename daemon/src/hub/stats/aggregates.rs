//! The aggregate cells a hub keeps, changed in the same commit as the records they count.

use std::collections::{BTreeMap, HashMap};

use passerelle_proto::codes::slug_of;
use passerelle_proto::date::Month;
use passerelle_proto::v1::{AgeBand, ContractType, NeedStatus, Structure, StructureKind};
use prost::Message;

use super::tables::*;
use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::hub::ingest::HubRecord;
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

/// The quarter and year cells an indicators month cell rolls up into.
pub(super) fn rollups(month_key: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(month_key);
    let parts: Vec<&str> = text.split('/').collect();
    let (Some(ordinal), Some(dep), Some(kind)) =
        (parts.get(1).and_then(|p| p.parse::<u32>().ok()), parts.get(2), parts.get(3))
    else {
        return Vec::new();
    };
    let month = Month::from_ordinal(ordinal);
    let quarter = month.year as u32 * 4 + u32::from(month.month - 1) / 3;
    vec![
        format!("iq/{quarter:08}/{dep}/{kind}").into_bytes(),
        format!("iy/{:08}/{dep}/{kind}", month.year).into_bytes(),
    ]
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
    if record.deleted {
        return None;
    }
    if let Some(report) = &record.indicators {
        let f = report.fields.as_ref()?;
        let e = f.exits.unwrap_or_default();
        return Some(vec![
            f.etp_hundredths as i64,
            i64::from(f.employees_in_insertion),
            f.hours_worked as i64,
            i64::from(f.hires),
            i64::from(e.total),
            i64::from(e.durable),
            i64::from(e.transition),
            i64::from(e.positive),
            i64::from(e.other),
        ]);
    }
    if let Some(need) = &record.need {
        return (need.status == NeedStatus::Open as i32).then(|| vec![1, i64::from(need.open_positions)]);
    }
    record.profile.as_ref().map(|_| vec![1])
}

/// Where a record is counted and with which values, or `None` if it is not counted. Indicators
/// need the structure (département, kind); needs and profiles carry their own coordinates.
pub(crate) fn contribution(record: &HubRecord, structure: Option<&Structure>) -> Option<(Vec<u8>, Vec<i64>)> {
    let values = values_of(record)?;
    let key = if let Some(report) = &record.indicators {
        let s = structure?;
        let month = Month::parse(&report.fields.as_ref()?.period).ok()?;
        format!("i/{:08}/{}/{}", month.ordinal(), s.departement, slug_of::<StructureKind>(s.kind))
    } else if let Some(need) = &record.need {
        let start = Month::parse(need.start_date.get(..7)?).ok()?;
        let contract = slug_of::<ContractType>(need.contract_type);
        format!("n/{:08}/{}/{}/{}", start.ordinal(), need.departement, need.rome_code, contract)
    } else {
        let profile = record.profile.as_ref()?;
        let domaine: String = profile.rome_codes.first()?.chars().take(3).collect();
        format!("p/{}/{}/{}", profile.departement, domaine, slug_of::<AgeBand>(profile.age_band))
    };
    Some((key.into_bytes(), values))
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
            && !old.stat_key.is_empty()
            && let Some(values) = values_of(old)
        {
            if !delta.cells.contains_key(&old.stat_key) {
                let cell = self.load_cell(&old.stat_key)?;
                delta.cells.insert(old.stat_key.clone(), cell);
            }
            let mut keys = vec![old.stat_key.clone()];
            if old.stat_key.starts_with(b"i/") {
                keys.extend(rollups(&old.stat_key));
            }
            for key in keys {
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
                let mut keys = vec![key.clone()];
                if key.starts_with(b"i/") {
                    keys.extend(rollups(&key));
                }
                for k in keys {
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

    /// Writes the changed cells into `batch`.
    pub(in crate::hub) fn flush_stats(batch: &mut WriteBatch, delta: StatsDelta) {
        for (key, cell) in delta.cells {
            let indicators = key.starts_with(b"i/") || key.starts_with(b"iq/") || key.starts_with(b"iy/");
            let summary_key = [b"z/".as_slice(), &key].concat();
            if cell.contributions.is_empty() {
                batch.delete(Tree::Stats, key);
                if indicators {
                    batch.delete(Tree::Stats, summary_key);
                }
            } else {
                if indicators {
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
