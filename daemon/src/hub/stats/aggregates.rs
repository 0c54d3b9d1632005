//! The aggregate cells a hub keeps, changed in the same commit as the records they count.

use std::collections::{BTreeMap, BTreeSet, HashMap};

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
    /// The largest single-structure value of each measure (stored order), for dominance on
    /// every measure. Empty in summaries written before it, which are rebuilt at open.
    #[prost(int64, repeated, tag = "5")]
    pub maxima: Vec<i64>,
    /// The second largest single-structure value of each measure, for the pair rule. Empty in
    /// summaries written before it, which are rebuilt at open.
    #[prost(int64, repeated, tag = "6")]
    pub seconds: Vec<i64>,
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
        let n = self.maxima.len().max(other.maxima.len());
        self.maxima.resize(n, 0);
        self.seconds.resize(n, 0);
        for i in 0..n {
            let (a1, a2) = (self.maxima[i], self.seconds[i]);
            let (b1, b2) =
                (other.maxima.get(i).copied().unwrap_or(0), other.seconds.get(i).copied().unwrap_or(0));
            self.maxima[i] = a1.max(b1);
            self.seconds[i] = a1.min(b1).max(a2).max(b2);
        }
        self.latest_ms = self.latest_ms.max(other.latest_ms);
    }
}

impl StatCell {
    /// The summary of an indicators cell, as stored under `z/`.
    pub(super) fn summary(&self) -> Summary {
        let mut group = Group::default();
        for c in &self.contributions {
            group.add(c);
        }
        let mut summary = summarize(&INDICATORS, &group);
        summary.latest_ms = self.latest_ms;
        summary
    }

    pub(super) fn apply(&mut self, siret: &str, values: &[i64], sign: i64, at_ms: i64) {
        self.shift(siret, values, sign, sign, at_ms);
    }

    /// Adds `sign × values` and `records` (a count of records, negative to take them out) to
    /// `siret`'s contribution; a contribution left with no record goes.
    pub(super) fn shift(&mut self, siret: &str, values: &[i64], sign: i64, records: i64, at_ms: i64) {
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
        c.records = u32::try_from((i64::from(c.records) + records).max(0)).unwrap_or(u32::MAX);
        if c.records == 0 {
            self.contributions.remove(index);
        }
        if records > 0 {
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
/// need the structure (département, kind) — the attributes it had when the month was first
/// counted (`counted_as`, the month cell of the record it replaces), else today's; needs and
/// profiles carry their own coordinates.
pub(crate) fn contribution(
    record: &HubRecord,
    structure: Option<&Structure>,
    counted_as: Option<&[u8]>,
) -> Option<(Vec<u8>, Vec<i64>)> {
    let values = values_of(record)?;
    let key = match Table::of_record(record)? {
        Table::Indicators => {
            let month = Month::parse(&record.indicators.as_ref()?.fields.as_ref()?.period).ok()?;
            let pinned = counted_as.and_then(CellKey::decode).and_then(|cell| match cell {
                CellKey::Indicators { period: CellPeriod::Month(_), departement, kind } => {
                    Some((departement, kind))
                }
                _ => None,
            });
            let (departement, kind) = match pinned {
                Some(attributes) => attributes,
                None => {
                    let s = structure?;
                    (s.departement.clone(), slug_of::<StructureKind>(s.kind).to_string())
                }
            };
            CellKey::Indicators { period: CellPeriod::Month(month.ordinal()), departement, kind }
        }
        Table::Needs => {
            // Encoded from the need's own fields (the key of `CellKey::Needs`).
            let need = record.need.as_ref()?;
            let start = Month::parse(need.start_date.get(..7)?).ok()?.ordinal();
            let contract = slug_of::<ContractType>(need.contract_type);
            return Some((CellKey::needs(start, &need.departement, &need.rome_code, contract), values));
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
    /// The indicators months this commit changes, by (origin, month ordinal): how each is counted
    /// after it (`None`: not counted). Their quarters and years are settled from these at the
    /// flush ([`Hub::settle_rollups`]), since where a structure's quarter is counted depends on
    /// its other months.
    months: BTreeMap<(String, u32), Option<MonthCount>>,
}

/// Meta key set once the quarter and year cells follow [`Placement`] (see
/// [`Hub::rebuild_rollups_once`]).
const ROLLUPS_BY_LATEST_MONTH: &[u8] = b"stats/rollups-by-latest-month";

/// Meta key set once every indicators summary carries per-measure maxima and second largest
/// values, for the dominance and pair rules (see
/// [`Hub::rebuild_summaries_once`]).
const SUMMARIES_WITH_SECONDS: &[u8] = b"stats/summaries-with-seconds";

/// How one month of a structure's indicators is counted: under which attributes, with which
/// values, received when.
#[derive(Debug, Clone, PartialEq)]
struct MonthCount {
    departement: String,
    kind: String,
    values: Vec<i64>,
    at_ms: i64,
}

impl MonthCount {
    /// The month cell a record is counted in, and how (`None`: not a counted month).
    fn of(record: &HubRecord) -> Option<(u32, MonthCount)> {
        if !CellKey::is_month(&record.stat_key) {
            // Not decoded to find out: every need and profile applied asks.
            return None;
        }
        let CellKey::Indicators { period: CellPeriod::Month(month), departement, kind } =
            CellKey::decode(&record.stat_key)?
        else {
            return None;
        };
        let values = contributed(record)?;
        Some((month, MonthCount { departement, kind, values, at_ms: record.received_at_ms }))
    }
}

/// Where a structure's months of one quarter or year are counted: all of them under the
/// attributes of the latest month it reported in the period, so a structure whose kind or
/// département changed is counted once in every table of the period (never twice), and each
/// month's own table keeps the attributes of that month.
#[derive(Debug, PartialEq)]
struct Placement {
    departement: String,
    kind: String,
    values: Vec<i64>,
    months: i64,
    at_ms: i64,
}

fn placement<'a>(months: impl Iterator<Item = &'a MonthCount>) -> Option<Placement> {
    let mut out: Option<Placement> = None;
    // In month order: the last one seen gives the attributes.
    for m in months {
        let p = out.get_or_insert_with(|| Placement {
            departement: String::new(),
            kind: String::new(),
            values: vec![0; m.values.len()],
            months: 0,
            at_ms: 0,
        });
        p.departement.clone_from(&m.departement);
        p.kind.clone_from(&m.kind);
        p.values.resize(p.values.len().max(m.values.len()), 0);
        for (acc, v) in p.values.iter_mut().zip(&m.values) {
            *acc += v;
        }
        p.months += 1;
        p.at_ms = p.at_ms.max(m.at_ms);
    }
    out
}

/// The quarters and the year of `year`, with their months' ordinals.
fn rollup_periods(year: i32) -> Vec<(CellPeriod, std::ops::RangeInclusive<u32>)> {
    let first = Month { year, month: 1 }.ordinal();
    let quarter = |q: u32| (CellPeriod::Quarter(year as u32 * 4 + q), first + 3 * q..=first + 3 * q + 2);
    vec![quarter(0), quarter(1), quarter(2), quarter(3), (CellPeriod::Year(year as u32), first..=first + 11)]
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
            self.cell_mut(delta, &old.stat_key)?.apply(origin, &values, -1, 0);
            if let Some((month, _)) = MonthCount::of(old) {
                delta.months.insert((origin.to_string(), month), None);
            }
        }
        if let Some(new) = new {
            new.stat_key.clear();
            let counted_as = old.map(|o| o.stat_key.as_slice());
            if let Some((key, values)) = contribution(new, structure, counted_as) {
                self.cell_mut(delta, &key)?.apply(origin, &values, 1, new.received_at_ms);
                new.stat_key = key;
                if let Some((month, count)) = MonthCount::of(new) {
                    delta.months.insert((origin.to_string(), month), Some(count));
                }
            }
        }
        Ok(())
    }

    /// The cell at `key` as this commit changes it (loaded at first use).
    fn cell_mut<'a>(&self, delta: &'a mut StatsDelta, key: &[u8]) -> Result<&'a mut StatCell> {
        if !delta.cells.contains_key(key) {
            let cell = self.load_cell(key)?;
            delta.cells.insert(key.to_vec(), cell);
        }
        Ok(delta.cells.get_mut(key).expect("loaded above"))
    }

    /// How `origin`'s months of `year` are counted in the store (before this commit).
    fn counted_months(&self, origin: &str, year: i32) -> Result<BTreeMap<u32, MonthCount>> {
        use crate::store::keys::RecordKey;
        use passerelle_proto::datasets::Dataset;
        let prefix =
            [RecordKey::prefix(origin, Dataset::Indicators), format!("{year:04}-").into_bytes()].concat();
        let mut out = BTreeMap::new();
        for (_, raw) in scan_prefix(self.store.as_ref(), Tree::Records, &prefix)? {
            let record = HubRecord::decode(raw.as_slice())
                .map_err(|_| Error::Store(StoreError("corrupt record".into())))?;
            if let Some((month, count)) = MonthCount::of(&record) {
                out.insert(month, count);
            }
        }
        Ok(out)
    }

    /// Moves the quarter and year contributions of every structure whose months this commit
    /// changed: out of where its months counted before, into where they count after
    /// ([`Placement`]). Exact whatever the order of the commit's changes, since both sides are
    /// computed from whole months.
    fn settle_rollups(&self, delta: &mut StatsDelta) -> Result<()> {
        let touched: BTreeSet<(String, i32)> = delta
            .months
            .keys()
            .map(|(origin, month)| (origin.clone(), Month::from_ordinal(*month).year))
            .collect();
        for (origin, year) in touched {
            let before = self.counted_months(&origin, year)?;
            let mut after = before.clone();
            let first = Month { year, month: 1 }.ordinal();
            for ((_, month), count) in
                delta.months.range((origin.clone(), first)..=(origin.clone(), first + 11))
            {
                match count {
                    Some(count) => after.insert(*month, count.clone()),
                    None => after.remove(month),
                };
            }
            for (period, months) in rollup_periods(year) {
                let was = placement(before.range(months.clone()).map(|(_, c)| c));
                let now = placement(after.range(months).map(|(_, c)| c));
                if was == now {
                    continue;
                }
                let key = |p: &Placement| {
                    CellKey::Indicators { period, departement: p.departement.clone(), kind: p.kind.clone() }
                        .encode()
                };
                if let Some(p) = was {
                    self.cell_mut(delta, &key(&p))?.shift(&origin, &p.values, -1, -p.months, 0);
                }
                if let Some(p) = now {
                    self.cell_mut(delta, &key(&p))?.shift(&origin, &p.values, 1, p.months, p.at_ms);
                }
            }
        }
        delta.months.clear();
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
            self.flush_stats(&mut batch, delta)?;
            self.store.commit(batch)?;
        }
        Ok(uncounted)
    }

    /// Rebuilds every quarter and year cell of indicators from the stored months, once per store
    /// ([`ROLLUPS_BY_LATEST_MONTH`] marks it done): stores written before placements rolled each
    /// month up under its own attributes, which counted a structure whose kind or département
    /// changed twice in a quarter. One commit; returns how many cells it rewrote or removed.
    pub(in crate::hub) fn rebuild_rollups_once(&self) -> Result<usize> {
        use crate::store::keys::RecordKey;
        use passerelle_proto::datasets::Dataset;

        let _writer = self.write_lock();
        if self.store.get(Tree::Meta, ROLLUPS_BY_LATEST_MONTH)?.is_some() {
            return Ok(0);
        }
        let mut months: BTreeMap<(String, i32), BTreeMap<u32, MonthCount>> = BTreeMap::new();
        for (key, raw) in self.store.scan(Tree::Records, &[], None, usize::MAX)? {
            let Some(record_key) = RecordKey::decode(&key).filter(|k| k.dataset == Dataset::Indicators)
            else {
                continue;
            };
            let Ok(record) = HubRecord::decode(raw.as_slice()) else { continue };
            if let Some((month, count)) = MonthCount::of(&record) {
                let year = Month::from_ordinal(month).year;
                months.entry((record_key.origin, year)).or_default().insert(month, count);
            }
        }
        let mut cells: HashMap<Vec<u8>, StatCell> = HashMap::new();
        for ((origin, year), counted) in &months {
            for (period, range) in rollup_periods(*year) {
                if let Some(p) = placement(counted.range(range).map(|(_, c)| c)) {
                    let key =
                        CellKey::Indicators { period, departement: p.departement, kind: p.kind }.encode();
                    cells.entry(key).or_default().shift(origin, &p.values, 1, p.months, p.at_ms);
                }
            }
        }
        let mut batch = WriteBatch::new();
        let mut rewritten = 0;
        for prefix in [&b"iq/"[..], b"iy/"] {
            for (key, raw) in scan_prefix(self.store.as_ref(), Tree::Stats, prefix)? {
                match cells.entry(key) {
                    std::collections::hash_map::Entry::Occupied(cell) => {
                        if cell.get().encode_to_vec() == raw {
                            cell.remove();
                        }
                    }
                    // Not placed by any month any more: emptied, so removed with its summary.
                    std::collections::hash_map::Entry::Vacant(cell) => {
                        cell.insert(StatCell::default());
                    }
                }
            }
        }
        rewritten += cells.len();
        let delta = StatsDelta { cells, months: BTreeMap::new() };
        self.flush_stats(&mut batch, delta)?;
        batch.put(Tree::Meta, ROLLUPS_BY_LATEST_MONTH, [1u8]);
        self.store.commit(batch)?;
        Ok(rewritten)
    }

    /// Rewrites every indicators summary from its cell, once per store
    /// ([`SUMMARIES_WITH_SECONDS`] marks it done): summaries written before per-measure maxima
    /// and second largest values could not apply dominance and the pair rule to every measure. One commit; returns how many it rewrote.
    pub(in crate::hub) fn rebuild_summaries_once(&self) -> Result<usize> {
        let _writer = self.write_lock();
        if self.store.get(Tree::Meta, SUMMARIES_WITH_SECONDS)?.is_some() {
            return Ok(0);
        }
        let mut batch = WriteBatch::new();
        let mut rewritten = 0;
        for prefix in [&b"i/"[..], b"iq/", b"iy/"] {
            for (key, raw) in scan_prefix(self.store.as_ref(), Tree::Stats, prefix)? {
                let cell = StatCell::decode(raw.as_slice())
                    .map_err(|_| Error::Store(StoreError("corrupt cell".into())))?;
                if let Some(summary_key) = CellKey::decode(&key).and_then(|k| k.summary()) {
                    batch.put(Tree::Stats, summary_key, cell.summary().encode_to_vec());
                    rewritten += 1;
                }
            }
        }
        batch.put(Tree::Meta, SUMMARIES_WITH_SECONDS, [1u8]);
        self.store.commit(batch)?;
        Ok(rewritten)
    }

    /// Settles the quarters and years of the months changed, then writes the changed cells into
    /// `batch`.
    pub(in crate::hub) fn flush_stats(&self, batch: &mut WriteBatch, mut delta: StatsDelta) -> Result<()> {
        self.settle_rollups(&mut delta)?;
        for (key, cell) in delta.cells {
            let summary_key = CellKey::decode(&key).and_then(|cell| cell.summary());
            if cell.contributions.is_empty() {
                batch.delete(Tree::Stats, key);
                if let Some(summary_key) = summary_key {
                    batch.delete(Tree::Stats, summary_key);
                }
            } else {
                if let Some(summary_key) = summary_key {
                    batch.put(Tree::Stats, summary_key, cell.summary().encode_to_vec());
                }
                batch.put(Tree::Stats, key, cell.encode_to_vec());
            }
        }
        Ok(())
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
