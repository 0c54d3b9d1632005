//! Consolidated statistics on a hub: aggregate cells maintained as records arrive or leave, and
//! the predefined tables consumers may read, every cell through disclosure control.
//!
//! Cells are keyed by their finest coordinates and hold one contribution per structure (its
//! summed values and how many records it has there), so a query costs the number of cells, never
//! the number of records, and the disclosure rules (structures per cell, dominance) can be
//! evaluated exactly:
//!
//! | table | cell key | values |
//! |---|---|---|
//! | indicators | month, département, kind | etp, employees, hours, hires, exits (total, durable, transition, positive, other) |
//! | needs | start month, département, ROME fiche, contract | needs, open positions |
//! | profiles | département, ROME domaine, age band | profiles |
//!
//! Each record stores the key of the cell it is counted in, so it is uncounted from that very
//! cell. Cells are written in the same commit as the records they count.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use passerelle_proto::codes::{Code, slug_of};
use passerelle_proto::date::{Month, format_unix_ms};
use passerelle_proto::v1::{
    AgeBand, Cell, ContractType, GetTableRequest, Measure, NeedStatus, Structure, StructureKind, Table,
};
use passerelle_proto::validate::FieldError;
use prost::Message;

use super::Hub;
use super::ingest::HubRecord;
use crate::error::{Error, Result};
use crate::store::{StoreError, Tree, WriteBatch, scan_prefix};

/// A cell must have at least this many contributing structures.
pub const MIN_STRUCTURES: usize = 3;
/// No structure may contribute more than this share of a cell's value, in percent.
pub const DOMINANCE_PERCENT: i64 = 85;

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
pub struct Summary {
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
    fn merge(&mut self, other: &Summary) {
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
fn rollups(month_key: &[u8]) -> Vec<Vec<u8>> {
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
    fn apply(&mut self, siret: &str, values: &[i64], sign: i64, at_ms: i64) {
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
fn values_of(record: &HubRecord) -> Option<Vec<i64>> {
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
pub fn contribution(record: &HubRecord, structure: Option<&Structure>) -> Option<(Vec<u8>, Vec<i64>)> {
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
pub struct StatsDelta {
    cells: HashMap<Vec<u8>, StatCell>,
}

impl Hub {
    fn load_cell(&self, key: &[u8]) -> Result<StatCell> {
        Ok(match self.store.get(Tree::Stats, key)? {
            Some(raw) => StatCell::decode(raw.as_slice())
                .map_err(|_| Error::Store(StoreError("corrupt statistics cell".into())))?,
            None => StatCell::default(),
        })
    }

    /// Moves a record's contribution from its old state to its new one; sets the new record's
    /// `stat_key`.
    pub(super) fn stage_stats(
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
    pub(super) fn flush_stats(batch: &mut WriteBatch, delta: StatsDelta) {
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

// ---------------------------------------------------------------------------------------------
// Tables.
// ---------------------------------------------------------------------------------------------

/// A table's cell before disclosure control: contributions merged per structure.
#[derive(Debug, Clone, Default)]
struct Group {
    /// Per structure: summed values and the number of months (indicators) it reported.
    by_siret: BTreeMap<String, (Vec<i64>, i64)>,
}

impl Group {
    fn add(&mut self, c: &Contribution) {
        let entry = self.by_siret.entry(c.siret.clone()).or_insert_with(|| (vec![0; c.values.len()], 0));
        entry.0.resize(c.values.len().max(entry.0.len()), 0);
        for (acc, v) in entry.0.iter_mut().zip(&c.values) {
            *acc += v;
        }
        entry.1 += i64::from(c.records);
    }

    fn merge(&mut self, other: &Group) {
        for (siret, (values, months)) in &other.by_siret {
            let entry = self.by_siret.entry(siret.clone()).or_insert_with(|| (vec![0; values.len()], 0));
            for (acc, v) in entry.0.iter_mut().zip(values) {
                *acc += v;
            }
            entry.1 += months;
        }
    }
}

/// How a table reads its cells.
struct Spec {
    prefix: &'static str,
    dimensions: &'static [&'static str],
    /// (name, unit, how to total over structures)
    measures: &'static [(&'static str, &'static str, Agg)],
    /// The measure that counts persons (checked against the person threshold), if any.
    persons: Option<usize>,
    /// The measure the dominance rule looks at.
    dominance: usize,
}

#[derive(Clone, Copy)]
enum Agg {
    /// Summed over months and structures (flows).
    Sum,
    /// Averaged over the months each structure reported, then summed (stocks).
    MonthlyAverage,
}

const INDICATORS: Spec = Spec {
    prefix: "i/",
    dimensions: &["departement", "region", "kind", "network"],
    measures: &[
        ("etp", "hundredths", Agg::MonthlyAverage),
        ("employees_in_insertion", "count", Agg::MonthlyAverage),
        ("hours_worked", "count", Agg::Sum),
        ("hires", "count", Agg::Sum),
        ("exits_total", "count", Agg::Sum),
        ("exits_durable", "count", Agg::Sum),
        ("exits_transition", "count", Agg::Sum),
        ("exits_positive", "count", Agg::Sum),
        ("exits_other", "count", Agg::Sum),
    ],
    persons: Some(1),
    dominance: 2,
};

const NEEDS: Spec = Spec {
    prefix: "n/",
    dimensions: &["rome-grand-domaine", "rome-domaine", "rome", "departement", "start-month", "contract"],
    measures: &[("needs", "count", Agg::Sum), ("open_positions", "count", Agg::Sum)],
    persons: None,
    dominance: 1,
};

const PROFILES: Spec = Spec {
    prefix: "p/",
    dimensions: &["rome-domaine", "departement", "age-band"],
    measures: &[("profiles", "count", Agg::Sum)],
    persons: Some(0),
    dominance: 0,
};

/// Parses `2026-10`, `2026-Q3` or `2026` into an inclusive month range.
pub fn parse_period(period: &str) -> Result<(Month, Month)> {
    let invalid =
        || FieldError::new("period", period, "expected a month 2026-10, a quarter 2026-Q3 or a year 2026");
    if let Ok(m) = Month::parse(period) {
        return Ok((m, m));
    }
    if let Some((year, q)) = period.split_once("-Q") {
        let year: i32 = year.parse().map_err(|_| invalid())?;
        let q: u8 = q.parse().map_err(|_| invalid())?;
        if !(1..=4).contains(&q) || !(1900..=2199).contains(&year) {
            return Err(invalid().into());
        }
        return Ok((Month { year, month: q * 3 - 2 }, Month { year, month: q * 3 }));
    }
    let year: i32 = period.parse().map_err(|_| invalid())?;
    if !(1900..=2199).contains(&year) {
        return Err(invalid().into());
    }
    Ok((Month { year, month: 1 }, Month { year, month: 12 }))
}

impl Hub {
    /// A predefined table with disclosure control.
    pub fn table(&self, request: &GetTableRequest) -> Result<Table> {
        let spec = match request.table.as_str() {
            "indicators" => &INDICATORS,
            "needs" => &NEEDS,
            "profiles" => &PROFILES,
            other => {
                return Err(FieldError::new("table", other, "expected indicators, needs or profiles").into());
            }
        };
        if request.by.len() > 2 {
            return Err(FieldError::rule("by", "at most two dimensions").into());
        }
        for d in &request.by {
            if !spec.dimensions.contains(&d.as_str()) {
                return Err(FieldError::new(
                    "by",
                    d,
                    format!("expected one of {}", spec.dimensions.join(", ")),
                )
                .into());
            }
        }
        let mut freshness = Vec::new();
        let min_persons = i64::from(self.config.min_persons);
        let (cells, label) = match request.table.as_str() {
            "indicators" => {
                let (cells, latest) = self.indicator_cells(&request.period, &request.by, min_persons)?;
                if latest > 0 {
                    freshness.push(format!("{}={}", request.period, format_unix_ms(latest)));
                }
                (cells, request.period.clone())
            }
            "needs" => {
                let from = request
                    .from
                    .as_deref()
                    .map(|m| passerelle_proto::validate::month("from", m))
                    .transpose()?;
                let to =
                    request.to.as_deref().map(|m| passerelle_proto::validate::month("to", m)).transpose()?;
                let label = format!(
                    "{}..{}",
                    from.map(|m| m.to_string()).unwrap_or_default(),
                    to.map(|m| m.to_string()).unwrap_or_default()
                );
                let from = from.unwrap_or(Month { year: 1900, month: 1 });
                let to = to.unwrap_or(Month { year: 2199, month: 12 });
                let start = format!("n/{:08}", from.ordinal());
                let end = format!("n/{:08}", to.ordinal() + 1);
                let cells =
                    self.store.scan(Tree::Stats, start.as_bytes(), Some(end.as_bytes()), usize::MAX)?;
                let groups = group_cells(cells, |parts| {
                    let month = Month::from_ordinal(parts.get(1).and_then(|p| p.parse().ok()).unwrap_or(0));
                    let (dep, rome, contract) = (part(parts, 2), part(parts, 3), part(parts, 4));
                    request
                        .by
                        .iter()
                        .map(|d| match d.as_str() {
                            "rome-grand-domaine" => rome.chars().take(1).collect(),
                            "rome-domaine" => rome.chars().take(3).collect(),
                            "rome" => rome.to_string(),
                            "departement" => dep.to_string(),
                            "start-month" => month.to_string(),
                            _ => contract.to_string(),
                        })
                        .collect()
                })?;
                (
                    controlled(
                        spec,
                        summarize_with_margins(spec, &request.by, &groups),
                        &request.by,
                        min_persons,
                    ),
                    label,
                )
            }
            _ => {
                let cells = scan_prefix(self.store.as_ref(), Tree::Stats, b"p/")?;
                let groups = group_cells(cells, |parts| {
                    let (dep, domaine, band) = (part(parts, 1), part(parts, 2), part(parts, 3));
                    request
                        .by
                        .iter()
                        .map(|d| match d.as_str() {
                            "rome-domaine" => domaine.to_string(),
                            "departement" => dep.to_string(),
                            _ => band.to_string(),
                        })
                        .collect()
                })?;
                (
                    controlled(
                        spec,
                        summarize_with_margins(spec, &request.by, &groups),
                        &request.by,
                        min_persons,
                    ),
                    String::new(),
                )
            }
        };
        let mut rules = vec![
            format!("a cell with fewer than {MIN_STRUCTURES} contributing structures is suppressed"),
            format!(
                "a cell where one structure contributes more than {DOMINANCE_PERCENT} % of {} is suppressed",
                spec.measures[spec.dominance].0
            ),
            "suppressed cells are complemented so that none can be recomputed from the published totals"
                .to_string(),
        ];
        if let Some(p) = spec.persons {
            rules.insert(
                1,
                format!(
                    "a cell counting fewer than {min_persons} persons ({}) is suppressed",
                    spec.measures[p].0
                ),
            );
        }
        if request.table == "indicators" {
            rules.push(format!("exit figures counting fewer than {min_persons} exits are suppressed"));
            rules.push(
                "a quarter or year cell is suppressed when exactly one of its months or quarters is, so that it cannot be recomputed by subtraction"
                    .into(),
            );
            rules.push("etp and employees are monthly averages per structure over the period; other figures are sums".into());
        }
        Ok(Table {
            table: request.table.clone(),
            by: request.by.clone(),
            period: label,
            cells,
            rules,
            freshness,
        })
    }

    /// The disclosure-controlled cells of an indicators table. On a hub whose data lies in one
    /// région (every network and regional hub), every table is a projection of one *family* of
    /// linked tables computed together (see [`Family`]), so a cell has the same status in every
    /// table that shows it. A table by région on a hub spanning several régions is computed on
    /// its own (primary rules, the rule across periods, complementary suppression).
    fn indicator_cells(&self, period: &str, by: &[String], min_persons: i64) -> Result<(Vec<Cell>, i64)> {
        let (family, finest, latest) = self.indicator_family(period, min_persons)?;
        let regions: BTreeSet<&str> =
            finest.keys().map(|k| passerelle_proto::geo::region_of(&k[0]).unwrap_or("?")).collect();
        if by.iter().any(|d| d == "region") && regions.len() > 1 {
            let (summaries, _) = self.indicator_summaries(period, by)?;
            let mut cells = disclose(&INDICATORS, with_margins(by, &summaries, Summary::merge), min_persons);
            let children = sub_periods(period)?
                .iter()
                .map(|p| self.indicator_cells(p, by, min_persons).map(|(cells, _)| cells))
                .collect::<Result<Vec<_>>>()?;
            temporal_suppression(&mut cells, &children);
            secondary_suppression(&mut cells, by.len());
            return Ok((cells, latest));
        }
        // The table's own cells, grouped from the finest ones; région and network are constant.
        let mut groups: BTreeMap<Vec<String>, Summary> = BTreeMap::new();
        for (key, summary) in &finest {
            let (dep, kind) = (key[0].as_str(), key[1].as_str());
            let coords = by
                .iter()
                .map(|d| match d.as_str() {
                    "departement" => dep.to_string(),
                    "region" => passerelle_proto::geo::region_of(dep).unwrap_or("?").to_string(),
                    "kind" => kind.to_string(),
                    _ => self.config.network.clone(),
                })
                .collect();
            groups.entry(coords).or_default().merge(summary);
        }
        let shape = (by.iter().any(|d| d == "departement"), by.iter().any(|d| d == "kind"));
        let table: HashMap<(String, String), &Cell> =
            family.table(shape.0, shape.1).iter().map(|c| (Family::coords(c, shape), c)).collect();
        // Each cell is the family's cell at the same (département, kind) coordinates.
        let cells = with_margins(by, &groups, Summary::merge)
            .into_iter()
            .filter_map(|(key, total, _)| {
                let coord =
                    |dim: &str| by.iter().position(|d| d == dim).map_or("*".to_string(), |i| key[i].clone());
                let mut cell = (*table.get(&(coord("departement"), coord("kind")))?).clone();
                cell.key = key;
                cell.total = total;
                Some(cell)
            })
            .collect();
        Ok((cells, latest))
    }

    /// The family of linked indicators tables of `period` (by nothing, département, kind, and
    /// département × kind), with primary rules, the rule across periods (against the same
    /// family of each sub-period) and complementary suppression iterated across the four
    /// tables until every shared cell has one status.
    /// Also returns the finest summaries it read and the latest report time.
    fn indicator_family(
        &self,
        period: &str,
        min_persons: i64,
    ) -> Result<(Family, BTreeMap<Vec<String>, Summary>, i64)> {
        let (finest, latest) = self.indicator_summaries(period, &family_dims())?;
        let children = sub_periods(period)?
            .iter()
            .map(|p| self.indicator_family(p, min_persons).map(|(family, _, _)| family))
            .collect::<Result<Vec<_>>>()?;
        let mut family = Family::default();
        for (with_dep, with_kind) in Family::SHAPES {
            let by: Vec<String> = family_dims()
                .into_iter()
                .zip([with_dep, with_kind])
                .filter_map(|(d, keep)| keep.then_some(d))
                .collect();
            let mut groups: BTreeMap<Vec<String>, Summary> = BTreeMap::new();
            for (key, summary) in &finest {
                let coords: Vec<String> = key
                    .iter()
                    .zip([with_dep, with_kind])
                    .filter(|(_, keep)| *keep)
                    .map(|(v, _)| v.clone())
                    .collect();
                groups.entry(coords).or_default().merge(summary);
            }
            let mut cells = disclose(&INDICATORS, with_margins(&by, &groups, Summary::merge), min_persons);
            let sub: Vec<Vec<Cell>> =
                children.iter().map(|c| c.table(with_dep, with_kind).to_vec()).collect();
            temporal_suppression(&mut cells, &sub);
            family.tables.push(((with_dep, with_kind), cells));
        }
        family.settle();
        Ok((family, finest, latest))
    }

    /// The precomputed summaries of the indicators cells of one period (a month, quarter or
    /// year cell each), grouped by `by`; and the latest report time.
    fn indicator_summaries(
        &self,
        period: &str,
        by: &[String],
    ) -> Result<(BTreeMap<Vec<String>, Summary>, i64)> {
        let (from, to) = parse_period(period)?;
        let prefix = if from == to {
            format!("z/i/{:08}/", from.ordinal())
        } else if to.month - from.month == 2 {
            format!("z/iq/{:08}/", from.year as u32 * 4 + u32::from(from.month - 1) / 3)
        } else {
            format!("z/iy/{:08}/", from.year)
        };
        let mut groups: BTreeMap<Vec<String>, Summary> = BTreeMap::new();
        let mut latest = 0;
        for (key, raw) in scan_prefix(self.store.as_ref(), Tree::Stats, prefix.as_bytes())? {
            let summary = Summary::decode(raw.as_slice())
                .map_err(|_| Error::Store(StoreError("corrupt summary".into())))?;
            latest = latest.max(summary.latest_ms);
            let key = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            let (dep, kind) = key.split_once('/').unwrap_or((&key, ""));
            let coords: Vec<String> = by
                .iter()
                .map(|d| match d.as_str() {
                    "departement" => dep.to_string(),
                    "region" => passerelle_proto::geo::region_of(dep).unwrap_or("?").to_string(),
                    "kind" => kind.to_string(),
                    _ => self.config.network.clone(),
                })
                .collect();
            groups.entry(coords).or_default().merge(&summary);
        }
        Ok((groups, latest))
    }
}

/// The dimensions of the finest table of a family: every other indicators table of a regional
/// hub is one of its margins (région and network are constant there).
fn family_dims() -> Vec<String> {
    vec!["departement".to_string(), "kind".to_string()]
}

/// Linked tables of one period: by nothing, by département, by kind, by département × kind.
/// They share cells — the département margins, the kind margins, the grand total — and a
/// consumer may read all of them, so a cell withheld in one must be withheld in all, or the
/// others give it back. [`Family::settle`] runs complementary suppression in each table and
/// spreads every withheld cell to the tables sharing it, until nothing changes (suppression only
/// grows, so this ends).
#[derive(Debug, Default, Clone)]
struct Family {
    tables: Vec<((bool, bool), Vec<Cell>)>,
}

impl Family {
    /// (with département, with kind), in the order the tables are kept.
    const SHAPES: [(bool, bool); 4] = [(false, false), (true, false), (false, true), (true, true)];

    fn table(&self, with_dep: bool, with_kind: bool) -> &[Cell] {
        self.tables
            .iter()
            .find(|(shape, _)| *shape == (with_dep, with_kind))
            .map_or(&[], |(_, c)| c.as_slice())
    }

    /// A cell's (département, kind) coordinates, `*` for "all".
    fn coords(cell: &Cell, (with_dep, with_kind): (bool, bool)) -> (String, String) {
        let mut values = cell.key.iter();
        let dep = if with_dep { values.next().cloned().unwrap_or_default() } else { "*".into() };
        let kind = if with_kind { values.next().cloned().unwrap_or_default() } else { "*".into() };
        (dep, kind)
    }

    fn settle(&mut self) {
        loop {
            for ((with_dep, with_kind), cells) in &mut self.tables {
                secondary_suppression(cells, usize::from(*with_dep) + usize::from(*with_kind));
            }
            // Every coordinate's strongest status across the tables that show it.
            let mut withheld: HashMap<(String, String), (Option<String>, Option<String>)> = HashMap::new();
            for (shape, cells) in &self.tables {
                for cell in cells {
                    let entry = withheld.entry(Self::coords(cell, *shape)).or_default();
                    if cell_hidden(cell) && entry.0.is_none() {
                        entry.0 = Some(cell.suppressed.clone());
                    }
                    if exits_hidden(cell) && entry.1.is_none() {
                        let reason = cell
                            .measures
                            .iter()
                            .find(|m| m.name == "exits_total")
                            .map(|m| m.suppressed.clone())
                            .unwrap_or_default();
                        entry.1 = Some(reason);
                    }
                }
            }
            let mut changed = false;
            for (shape, cells) in &mut self.tables {
                for cell in cells.iter_mut() {
                    let Some((whole, exits)) = withheld.get(&Self::coords(cell, *shape)) else { continue };
                    if let Some(reason) = whole
                        && !cell_hidden(cell)
                    {
                        hide_cell(cell, reason);
                        changed = true;
                    } else if let Some(reason) = exits
                        && !exits_hidden(cell)
                    {
                        hide_exits(cell, reason);
                        changed = true;
                    }
                }
            }
            if !changed {
                return;
            }
        }
    }
}

fn part<'a>(parts: &[&'a str], i: usize) -> &'a str {
    parts.get(i).copied().unwrap_or("")
}

/// Groups stored cells (with per-structure contributions) by the coordinates `coords` gives.
fn group_cells(
    cells: Vec<crate::store::KeyValue>,
    coords: impl Fn(&[&str]) -> Vec<String>,
) -> Result<BTreeMap<Vec<String>, Group>> {
    let mut groups: BTreeMap<Vec<String>, Group> = BTreeMap::new();
    for (key, raw) in cells {
        let cell =
            StatCell::decode(raw.as_slice()).map_err(|_| Error::Store(StoreError("corrupt cell".into())))?;
        let key = String::from_utf8_lossy(&key).into_owned();
        let parts: Vec<&str> = key.split('/').collect();
        let group = groups.entry(coords(&parts)).or_default();
        for c in &cell.contributions {
            group.add(c);
        }
    }
    Ok(groups)
}

/// Interior cells plus margins (per value of each of two dimensions) and the grand total.
fn with_margins<T: Clone + Default>(
    by: &[String],
    groups: &BTreeMap<Vec<String>, T>,
    merge: impl Fn(&mut T, &T),
) -> Vec<(Vec<String>, bool, T)> {
    let mut all: Vec<(Vec<String>, bool, T)> =
        groups.iter().map(|(k, g)| (k.clone(), false, g.clone())).collect();
    if by.len() == 2 {
        let mut rows: BTreeMap<String, T> = BTreeMap::new();
        let mut cols: BTreeMap<String, T> = BTreeMap::new();
        for (k, g) in groups {
            merge(rows.entry(k[0].clone()).or_default(), g);
            merge(cols.entry(k[1].clone()).or_default(), g);
        }
        all.extend(rows.into_iter().map(|(v, g)| (vec![v, "*".into()], true, g)));
        all.extend(cols.into_iter().map(|(v, g)| (vec!["*".into(), v], true, g)));
    }
    if !by.is_empty() && !groups.is_empty() {
        let mut grand = T::default();
        for g in groups.values() {
            merge(&mut grand, g);
        }
        all.push((vec!["*".into(); by.len()], true, grand));
    }
    all
}

/// Margins over per-structure groups (structures may appear in several cells), then summaries.
fn summarize_with_margins(
    spec: &Spec,
    by: &[String],
    groups: &BTreeMap<Vec<String>, Group>,
) -> Vec<(Vec<String>, bool, Summary)> {
    with_margins(by, groups, Group::merge).into_iter().map(|(k, t, g)| (k, t, summarize(spec, &g))).collect()
}

/// Disclosure control of groups given per structure (for tests and the needs/profiles tables).
#[cfg(test)]
fn disclose_groups(
    spec: &Spec,
    by: &[String],
    groups: &BTreeMap<Vec<String>, Group>,
    min_persons: i64,
) -> Vec<Cell> {
    disclose(spec, summarize_with_margins(spec, by, groups), min_persons)
}

fn totals(spec: &Spec, group: &Group) -> Vec<i64> {
    let mut out = vec![0i64; spec.measures.len()];
    for (values, months) in group.by_siret.values() {
        for (i, (_, _, agg)) in spec.measures.iter().enumerate() {
            out[i] += per_structure(values.get(i).copied().unwrap_or(0), *months, *agg);
        }
    }
    out
}

fn per_structure(value: i64, months: i64, agg: Agg) -> i64 {
    match agg {
        Agg::Sum => value,
        Agg::MonthlyAverage => (value + months / 2) / months.max(1),
    }
}

/// The summary of a group of structures.
fn summarize(spec: &Spec, group: &Group) -> Summary {
    let agg = spec.measures[spec.dominance].2;
    Summary {
        structures: group.by_siret.len() as u32,
        totals: totals(spec, group),
        dominance_max: group
            .by_siret
            .values()
            .map(|(v, m)| per_structure(v.get(spec.dominance).copied().unwrap_or(0), *m, agg))
            .max()
            .unwrap_or(0),
        latest_ms: 0,
    }
}

/// Primary disclosure control of every interior cell and total.
fn disclose(spec: &Spec, entries: Vec<(Vec<String>, bool, Summary)>, min_persons: i64) -> Vec<Cell> {
    entries
        .into_iter()
        .map(|(key, total, summary)| {
            let values = summary.totals.clone();
            let value = |i: usize| values.get(i).copied().unwrap_or(0);
            let structures = summary.structures as usize;
            let reason = if structures < MIN_STRUCTURES {
                format!("fewer than {MIN_STRUCTURES} structures")
            } else if spec.persons.is_some_and(|p| value(p) < min_persons) {
                format!("fewer than {min_persons} persons")
            } else if value(spec.dominance) > 0
                && summary.dominance_max * 100 > DOMINANCE_PERCENT * value(spec.dominance)
            {
                format!("one structure contributes more than {DOMINANCE_PERCENT} %")
            } else {
                String::new()
            };
            let mut measures: Vec<Measure> = spec
                .measures
                .iter()
                .enumerate()
                .map(|(i, (name, unit, _))| Measure {
                    name: (*name).into(),
                    value: reason.is_empty().then_some(value(i)),
                    unit: (*unit).into(),
                    suppressed: reason.clone(),
                })
                .collect();
            if spec.prefix == "i/" {
                let exits = value(4);
                let dynamic = value(5) + value(6) + value(7);
                let rate = (exits > 0).then(|| (dynamic * 20_000 / exits + 1) / 2);
                measures.push(Measure {
                    name: "dynamic_exit_rate".into(),
                    value: if reason.is_empty() { rate } else { None },
                    unit: "percent-hundredths".into(),
                    suppressed: reason.clone(),
                });
                if reason.is_empty() && exits > 0 && exits < min_persons {
                    for m in measures
                        .iter_mut()
                        .filter(|m| m.name.starts_with("exits_") || m.name == "dynamic_exit_rate")
                    {
                        m.value = None;
                        m.suppressed = format!("fewer than {min_persons} exits");
                    }
                }
            }
            Cell {
                key,
                total,
                structures: reason.is_empty().then_some(structures as u32),
                measures,
                suppressed: reason,
            }
        })
        .collect()
}

/// Primary rules, then complementary suppression: the cells of a table without periods.
fn controlled(
    spec: &Spec,
    entries: Vec<(Vec<String>, bool, Summary)>,
    by: &[String],
    min_persons: i64,
) -> Vec<Cell> {
    let mut cells = disclose(spec, entries, min_persons);
    secondary_suppression(&mut cells, by.len());
    cells
}

/// The reason given to a cell hidden to protect another one.
const SECONDARY: &str = "secondary suppression: protects another suppressed cell";
/// The reason given to exit figures hidden to protect other exit figures.
const SECONDARY_EXITS: &str = "secondary suppression: protects other exit figures";
/// The reason given to a period cell hidden to protect one of its months or quarters.
const SECONDARY_PERIOD: &str = "secondary suppression: protects a suppressed month or quarter";

/// Whether the whole cell is withheld.
fn cell_hidden(cell: &Cell) -> bool {
    !cell.suppressed.is_empty()
}

/// Whether the cell has exit figures (indicators tables).
fn has_exits(cell: &Cell) -> bool {
    cell.measures.iter().any(|m| m.name == "exits_total")
}

/// Whether the cell's exit figures are withheld (with the cell, or on their own).
fn exits_hidden(cell: &Cell) -> bool {
    cell_hidden(cell) || cell.measures.iter().any(|m| m.name == "exits_total" && m.value.is_none())
}

fn hide_cell(cell: &mut Cell, reason: &str) {
    cell.suppressed = reason.into();
    cell.structures = None;
    for m in &mut cell.measures {
        m.value = None;
        m.suppressed = reason.into();
    }
}

fn hide_exits(cell: &mut Cell, reason: &str) {
    for m in
        cell.measures.iter_mut().filter(|m| m.name.starts_with("exits_") || m.name == "dynamic_exit_rate")
    {
        m.value = None;
        m.suppressed = reason.into();
    }
}

/// Across periods: a period's cell is the sum of the same cell in its sub-periods (a quarter's
/// three months, a year's four quarters), which are published too. If exactly one of them is
/// withheld while the period's cell is published, subtraction gives it away: the period's cell
/// is withheld as well. The same holds for exit figures on their own. (Two or more withheld
/// sub-periods only reveal their sum, as within a table.) A sub-period without the cell had no
/// data there, which is public: it counts as published.
fn temporal_suppression(cells: &mut [Cell], children: &[Vec<Cell>]) {
    if children.is_empty() {
        return;
    }
    let by_key: Vec<HashMap<&[String], &Cell>> =
        children.iter().map(|child| child.iter().map(|c| (c.key.as_slice(), c)).collect()).collect();
    let withheld = |key: &[String], hidden: fn(&Cell) -> bool| {
        by_key.iter().filter(|child| child.get(key).is_some_and(|c| hidden(c))).count()
    };
    for cell in cells.iter_mut() {
        if !cell_hidden(cell) && withheld(&cell.key, cell_hidden) == 1 {
            hide_cell(cell, SECONDARY_PERIOD);
        }
        if has_exits(cell) && !exits_hidden(cell) && withheld(&cell.key, exits_hidden) == 1 {
            hide_exits(cell, SECONDARY_PERIOD);
        }
    }
}

/// The sub-periods published on their own whose sum is `period`: a quarter's months, a year's
/// quarters (a year's months are reached through its quarters).
fn sub_periods(period: &str) -> Result<Vec<String>> {
    let (from, to) = parse_period(period)?;
    Ok(if from == to {
        Vec::new()
    } else if to.month - from.month == 2 {
        (0..3).map(|i| Month { year: from.year, month: from.month + i }.to_string()).collect()
    } else {
        (1..=4).map(|q| format!("{}-Q{q}", from.year)).collect()
    })
}

/// The lines of a table: (its members, its total), along each dimension and for the margins
/// against the grand total.
fn lines_of(cells: &[Cell], dims: usize) -> Vec<(Vec<usize>, usize)> {
    let mut lines: Vec<(Vec<usize>, usize)> = Vec::new();
    let index_of = |key: &[String]| cells.iter().position(|c| c.key == key);
    let interior: Vec<usize> = (0..cells.len()).filter(|&i| !cells[i].total).collect();
    match dims {
        1 => {
            if let Some(t) = index_of(&["*".to_string()]) {
                lines.push((interior.clone(), t));
            }
        }
        2 => {
            let grand = index_of(&["*".to_string(), "*".to_string()]);
            for axis in 0..2 {
                let mut margins = Vec::new();
                let mut values: Vec<String> = interior.iter().map(|&i| cells[i].key[axis].clone()).collect();
                values.sort();
                values.dedup();
                for v in values {
                    let mut key = vec!["*".to_string(), "*".to_string()];
                    key[axis] = v.clone();
                    if let Some(t) = index_of(&key) {
                        let members = interior.iter().copied().filter(|&i| cells[i].key[axis] == v).collect();
                        lines.push((members, t));
                        margins.push(t);
                    }
                }
                if let Some(g) = grand {
                    lines.push((margins, g));
                }
            }
        }
        _ => {}
    }
    lines
}

/// Complementary suppression: no line (row, column, or the margins against the grand total)
/// whose total is published may hold exactly one suppressed cell, which could be recomputed by
/// subtraction. Done for whole cells, then for exit figures (withheld on their own when too few).
fn secondary_suppression(cells: &mut [Cell], dims: usize) {
    let lines = lines_of(cells, dims);
    complement(
        cells,
        &lines,
        cell_hidden,
        |c| hide_cell(c, SECONDARY),
        |c| {
            c.structures.unwrap_or(0) as i64 * 1_000_000
                + c.measures.first().and_then(|m| m.value).unwrap_or(0)
        },
    );
    if cells.iter().any(has_exits) {
        complement(
            cells,
            &lines,
            exits_hidden,
            |c| hide_exits(c, SECONDARY_EXITS),
            |c| c.measures.iter().find(|m| m.name == "exits_total").and_then(|m| m.value).unwrap_or(0),
        );
    }
}

/// Hides the smallest published member of every line with a published total and exactly one
/// hidden member, until there is none. `hide` must make `hidden` true.
fn complement(
    cells: &mut [Cell],
    lines: &[(Vec<usize>, usize)],
    hidden: fn(&Cell) -> bool,
    hide: impl Fn(&mut Cell),
    size: impl Fn(&Cell) -> i64,
) {
    loop {
        let mut changed = false;
        for (members, total) in lines {
            if hidden(&cells[*total]) || members.iter().filter(|&&i| hidden(&cells[i])).count() != 1 {
                continue;
            }
            let victim = members
                .iter()
                .copied()
                .filter(|&i| !hidden(&cells[i]))
                .min_by_key(|&i| size(&cells[i]))
                .unwrap_or(*total);
            hide(&mut cells[victim]);
            changed = true;
        }
        if !changed {
            return;
        }
    }
}

/// The kinds of structures, for listing dimensions.
pub fn kinds() -> Vec<&'static str> {
    StructureKind::ALL.iter().map(|(_, s)| *s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A group from (siret, [etp, employees, hours, hires, exits…], months).
    fn group(rows: &[(&str, [i64; 9])]) -> Group {
        let mut g = Group::default();
        for (siret, values) in rows {
            g.add(&Contribution { siret: (*siret).into(), values: values.to_vec(), records: 1 });
        }
        g
    }

    fn v(employees: i64, hours: i64, exits: [i64; 5]) -> [i64; 9] {
        [employees * 80, employees, hours, 2, exits[0], exits[1], exits[2], exits[3], exits[4]]
    }

    fn value(cell: &Cell, name: &str) -> Option<i64> {
        cell.measures.iter().find(|m| m.name == name).and_then(|m| m.value)
    }

    /// Tries to recompute suppressed interior cells of `measure` from published totals, line by
    /// line, as an attacker would; returns the cells it could recover.
    fn recoverable(cells: &[Cell], measure: &str) -> Vec<Vec<String>> {
        let mut known: HashMap<Vec<String>, i64> =
            cells.iter().filter_map(|c| value(c, measure).map(|v| (c.key.clone(), v))).collect();
        let mut recovered = Vec::new();
        loop {
            let mut progress = false;
            for axis in 0..2 {
                let mut lines: BTreeMap<String, Vec<&Cell>> = BTreeMap::new();
                for c in cells.iter().filter(|c| !c.total) {
                    lines.entry(c.key[axis].clone()).or_default().push(c);
                }
                for (v, members) in lines {
                    let mut total_key = vec!["*".to_string(), "*".to_string()];
                    total_key[axis] = v;
                    let Some(total) = known.get(&total_key).copied() else { continue };
                    let unknown: Vec<&&Cell> =
                        members.iter().filter(|c| !known.contains_key(&c.key)).collect();
                    if unknown.len() == 1 {
                        let sum: i64 = members.iter().filter_map(|c| known.get(&c.key)).sum();
                        known.insert(unknown[0].key.clone(), total - sum);
                        recovered.push(unknown[0].key.clone());
                        progress = true;
                    }
                }
            }
            if !progress {
                return recovered;
            }
        }
    }

    /// A dozen structures over two départements × two kinds, built so that each primary rule
    /// triggers somewhere, checked by hand.
    fn twelve() -> BTreeMap<Vec<String>, Group> {
        let k = |a: &str, b: &str| vec![a.to_string(), b.to_string()];
        BTreeMap::from([
            // 49 × ai: 4 structures, 40 employees, balanced: published.
            (
                k("49", "ai"),
                group(&[
                    ("s01", v(10, 1000, [4, 1, 1, 1, 1])),
                    ("s02", v(10, 1000, [2, 1, 0, 0, 1])),
                    ("s03", v(10, 1000, [0; 5])),
                    ("s04", v(10, 1000, [0; 5])),
                ]),
            ),
            // 49 × aci: 2 structures: fewer than 3 structures.
            (k("49", "aci"), group(&[("s05", v(20, 2000, [0; 5])), ("s06", v(20, 2000, [0; 5]))])),
            // 44 × ai: 3 structures but one has 90 % of the hours: dominance.
            (
                k("44", "ai"),
                group(&[
                    ("s07", v(30, 9000, [0; 5])),
                    ("s08", v(5, 500, [0; 5])),
                    ("s09", v(5, 500, [0; 5])),
                ]),
            ),
            // 44 × aci: 3 structures, 4 employees: fewer than 5 persons.
            (
                k("44", "aci"),
                group(&[("s10", v(2, 500, [0; 5])), ("s11", v(1, 400, [0; 5])), ("s12", v(1, 300, [0; 5]))]),
            ),
        ])
    }

    #[test]
    fn each_primary_rule_triggers_and_nothing_is_shown_as_zero() {
        let by = vec!["departement".to_string(), "kind".to_string()];
        let cells = disclose_groups(&INDICATORS, &by, &twelve(), 5);
        let cell = |a: &str, b: &str| cells.iter().find(|c| c.key == [a, b]).cloned().expect("cell");
        assert_eq!(cell("49", "ai").suppressed, "");
        assert_eq!(value(&cell("49", "ai"), "employees_in_insertion"), Some(40));
        assert_eq!(value(&cell("49", "ai"), "hours_worked"), Some(4000));
        assert_eq!(cell("49", "ai").structures, Some(4));
        assert_eq!(value(&cell("49", "ai"), "exits_total"), Some(6));
        assert_eq!(value(&cell("49", "ai"), "dynamic_exit_rate"), Some(6667), "4 dynamic of 6: 66.67 %");
        assert_eq!(cell("49", "aci").suppressed, "fewer than 3 structures");
        assert_eq!(cell("44", "ai").suppressed, "one structure contributes more than 85 %");
        assert_eq!(cell("44", "aci").suppressed, "fewer than 5 persons");
        for c in &cells {
            if !c.suppressed.is_empty() {
                assert!(
                    c.structures.is_none()
                        && c.measures.iter().all(|m| m.value.is_none() && !m.suppressed.is_empty()),
                    "{c:?}"
                );
            }
        }
        // With 11 as the threshold (state consumers), the 44 × ai cell (40 persons) stays published
        // on that rule but 49 × ai's 6 exits become too few to show.
        let strict = disclose_groups(&INDICATORS, &by, &twelve(), 11);
        let c = strict.iter().find(|c| c.key == ["49", "ai"]).cloned().expect("cell");
        assert_eq!(value(&c, "exits_total"), None);
        assert!(c.measures.iter().any(|m| m.suppressed == "fewer than 11 exits"));
        assert_eq!(value(&c, "employees_in_insertion"), Some(40));
    }

    #[test]
    fn no_suppressed_cell_can_be_recovered_from_published_totals() {
        let by = vec!["departement".to_string(), "kind".to_string()];
        let mut cells = disclose_groups(&INDICATORS, &by, &twelve(), 5);
        // Without complementary suppression the attack works (the test can fail)…
        let naive = recoverable(&cells, "hours_worked");
        assert!(
            naive.contains(&vec!["49".to_string(), "aci".to_string()]),
            "the row total gives 49 × aci away: {naive:?}"
        );
        // …with it, nothing is recoverable.
        secondary_suppression(&mut cells, 2);
        for measure in ["hours_worked", "employees_in_insertion", "etp"] {
            assert!(
                recoverable(&cells, measure).is_empty(),
                "{measure}: recovered {:?}",
                recoverable(&cells, measure)
            );
        }
        assert!(cells.iter().any(|c| c.suppressed.starts_with("secondary suppression")));
    }

    #[test]
    fn a_one_dimension_table_with_a_single_suppressed_cell_gets_a_complement() {
        let by = vec!["departement".to_string()];
        let mut groups: BTreeMap<Vec<String>, Group> = BTreeMap::new();
        for (k, g) in twelve() {
            groups.entry(vec![k[0].clone()]).or_default().merge(&g);
        }
        groups.insert(vec!["85".into()], group(&[("s13", v(10, 100, [0; 5]))]));
        let mut cells = disclose_groups(&INDICATORS, &by, &groups, 5);
        secondary_suppression(&mut cells, 1);
        let hidden = cells.iter().filter(|c| !c.total && !c.suppressed.is_empty()).count();
        assert!(hidden != 1, "a single suppressed cell next to a published total is recoverable");
    }

    #[test]
    fn exit_figures_withheld_on_their_own_get_a_complement_too() {
        let k = |a: &str, b: &str| vec![a.to_string(), b.to_string()];
        let three = |exits: [i64; 5]| {
            group(&[("a", v(10, 1000, exits)), ("b", v(10, 1000, exits)), ("c", v(10, 1000, exits))])
        };
        let groups = BTreeMap::from([
            (k("49", "ai"), three([5, 2, 1, 1, 1])),
            (k("49", "aci"), three([2, 1, 0, 0, 1])), // 6 exits: fewer than 11, withheld alone.
            (k("44", "ai"), three([5, 2, 1, 1, 1])),
            (k("44", "aci"), three([5, 2, 1, 1, 1])),
        ]);
        let by = vec!["departement".to_string(), "kind".to_string()];
        let naive = disclose_groups(&INDICATORS, &by, &groups, 11);
        assert!(
            recoverable(&naive, "exits_total").contains(&k("49", "aci")),
            "without a complement the row total gives 49 × aci's exits away"
        );
        let mut cells = naive.clone();
        secondary_suppression(&mut cells, 2);
        assert!(recoverable(&cells, "exits_total").is_empty(), "{:?}", recoverable(&cells, "exits_total"));
        assert!(cells.iter().all(|c| c.suppressed.is_empty()), "whole cells stay published");
        assert!(cells.iter().any(|c| c.measures.iter().any(|m| m.suppressed == SECONDARY_EXITS)));
    }

    #[test]
    fn periods() -> anyhow::Result<()> {
        assert_eq!(
            parse_period("2026-Q3")?,
            (Month { year: 2026, month: 7 }, Month { year: 2026, month: 9 })
        );
        assert_eq!(parse_period("2026")?, (Month { year: 2026, month: 1 }, Month { year: 2026, month: 12 }));
        assert_eq!(
            parse_period("2026-10")?,
            (Month { year: 2026, month: 10 }, Month { year: 2026, month: 10 })
        );
        assert!(parse_period("2026-Q5").is_err() && parse_period("Q3").is_err());
        Ok(())
    }
}

#[cfg(test)]
mod incremental {
    use std::path::PathBuf;

    use passerelle_proto::identity::{PeerId, Role};
    use passerelle_proto::v1::{
        Batch, Change, Exits, IndicatorFields, IndicatorReport, SharedNeed, Tombstone, change,
    };
    use proptest::prelude::*;

    use super::*;
    use crate::authz::Peer;
    use crate::config::HubConfig;
    use crate::hub::ingest::PushSession;
    use crate::tls::ServerTlsFiles;

    /// Cell key → structure → (values, records).
    type Cells = BTreeMap<Vec<u8>, BTreeMap<String, (Vec<i64>, u32)>>;

    const ORIGINS: [(&str, &str, i32); 3] =
        [("73282932000074", "49", 1), ("44306184100047", "44", 2), ("52104378900010", "49", 1)];

    fn hub(dir: &std::path::Path) -> Hub {
        let config = HubConfig {
            id: "coorace-pdl".into(),
            network: "coorace".into(),
            region: "52".into(),
            listen: "127.0.0.1:0".parse().expect("addr"),
            auto_accept: true,
            denied_serials: Vec::new(),
            k_anonymity: 5,
            min_persons: 5,
            upstreams: Vec::new(),
            tls: ServerTlsFiles { cert: PathBuf::new(), key: PathBuf::new(), client_cas: Vec::new() },
        };
        Hub::open(dir, config, Default::default(), None).expect("open hub")
    }

    /// (origin, what, key, value): what 0 = report, 1 = report withdrawn, 2 = open need,
    /// 3 = filled need, 4 = need withdrawn.
    fn op() -> impl Strategy<Value = (usize, u8, u8, u32)> {
        (0..3usize, 0..5u8, 0..4u8, 1..50u32)
    }

    /// Reports of 2026 for three structures of 49: A and B every month, C all but February and
    /// the third quarter. Each sub-period table alone is correct; together, published periods
    /// must not give a withheld one away by subtraction.
    #[test]
    fn no_withheld_month_or_quarter_can_be_recomputed_from_other_periods() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let hub = hub(dir.path());
        hub.admit(&Peer { id: PeerId { role: Role::Hub, id: "coorace-pdl".into() }, serial: None }, None)?;
        let session = PushSession::for_tests_relay("coorace-pdl", 1);
        let mut changes = Vec::new();
        for (i, (siret, _, _)) in ORIGINS.iter().enumerate() {
            let origin = Structure {
                siret: (*siret).into(),
                kind: 1,
                name: format!("S{i}"),
                departement: "49".into(),
            };
            for month in 1..=12u8 {
                if i == 2 && (month == 2 || (7..=9).contains(&month)) {
                    continue;
                }
                let period = format!("2026-{month:02}");
                let report = IndicatorReport {
                    siret: (*siret).into(),
                    fields: Some(IndicatorFields {
                        period: period.clone(),
                        etp_hundredths: 500,
                        employees_in_insertion: 10,
                        hours_worked: 1000 + 100 * i as u64 + u64::from(month),
                        hires: 1,
                        exits: Some(Exits { total: 6, durable: 2, transition: 1, positive: 1, other: 2 }),
                    }),
                    version: 1,
                    submitted_at_ms: 0,
                };
                changes.push(Change {
                    dataset: "indicators".into(),
                    key: period,
                    version: 1,
                    payload: Some(change::Payload::Indicators(report)),
                    origin: Some(origin.clone()),
                    origin_epoch: vec![1; 16],
                    origin_epoch_created_at_ms: 1,
                });
            }
        }
        hub.apply_batch(&session, Batch { seq: 1, changes, head_seq: 1 })?;

        let months: Vec<String> = (1..=12).map(|m| format!("2026-{m:02}")).collect();
        let quarters: Vec<String> = (1..=4).map(|q| format!("2026-Q{q}")).collect();
        let periods: Vec<String> =
            months.iter().chain(&quarters).cloned().chain(["2026".to_string()]).collect();
        // Each period's total of hours, as a consumer reads it (None: withheld).
        let read = |naive: bool| -> anyhow::Result<BTreeMap<String, Option<i64>>> {
            periods
                .iter()
                .map(|p| {
                    let cells = if naive {
                        let (summaries, _) = hub.indicator_summaries(p, &[])?;
                        controlled(&INDICATORS, with_margins(&[], &summaries, Summary::merge), &[], 5)
                    } else {
                        hub.table(&GetTableRequest {
                            table: "indicators".into(),
                            period: p.clone(),
                            ..Default::default()
                        })?
                        .cells
                    };
                    let hours = cells
                        .first()
                        .and_then(|c| c.measures.iter().find(|m| m.name == "hours_worked")?.value);
                    Ok((p.clone(), hours))
                })
                .collect()
        };
        // The attacker: a period is the sum of its sub-periods; solve every relation with one unknown.
        let relations: Vec<(String, Vec<String>)> = (0..4)
            .map(|q| (quarters[q].clone(), months[q * 3..q * 3 + 3].to_vec()))
            .chain([("2026".to_string(), quarters.clone()), ("2026".to_string(), months.clone())])
            .collect();
        let attack = |published: &BTreeMap<String, Option<i64>>| -> Vec<String> {
            let mut known: BTreeMap<String, i64> =
                published.iter().filter_map(|(p, v)| v.map(|v| (p.clone(), v))).collect();
            let mut recovered = Vec::new();
            loop {
                let mut progress = false;
                for (total, parts) in &relations {
                    let unknown: Vec<&String> = parts.iter().filter(|p| !known.contains_key(*p)).collect();
                    if let (Some(t), [one]) = (known.get(total).copied(), unknown.as_slice()) {
                        let sum: i64 = parts.iter().filter_map(|p| known.get(p)).sum();
                        known.insert((*one).clone(), t - sum);
                        recovered.push((*one).clone());
                        progress = true;
                    }
                }
                if !progress {
                    return recovered;
                }
            }
        };
        let naive = read(true)?;
        assert_eq!(naive["2026-02"], None, "February has 2 structures: withheld");
        assert!(naive["2026-Q1"].is_some(), "the first quarter alone has 3: published");
        assert!(attack(&naive).contains(&"2026-02".to_string()), "Q1 − January − March gives February away");

        let published = read(false)?;
        assert_eq!(attack(&published), Vec::<String>::new(), "{published:?}");
        assert_eq!(published["2026-Q1"], None, "Q1 is withheld to protect February");
        assert_eq!(published["2026-Q3"], None, "Q3 has 2 structures");
        assert!(published["2026"].is_some(), "two withheld quarters reveal only their sum: the year stays");
        let q1 = hub.table(&GetTableRequest {
            table: "indicators".into(),
            period: "2026-Q1".into(),
            ..Default::default()
        })?;
        assert_eq!(q1.cells[0].suppressed, SECONDARY_PERIOD);
        assert!(q1.rules.iter().any(|r| r.contains("exactly one of its months or quarters")));
        Ok(())
    }

    /// A valid SIRET (Luhn) for structure `n`.
    fn siret(n: usize) -> String {
        let base = format!("{:013}", 1_000_000_000_000u64 + n as u64 * 7919);
        (0..10)
            .map(|d| format!("{base}{d}"))
            .find(|s| passerelle_proto::validate::siret("siret", s).is_ok())
            .unwrap_or_default()
    }

    /// A cell's (département, kind) coordinates, `*` for all.
    type Coords = (String, String);
    /// A cell's coordinates and its published hours (None: withheld).
    type Seen = (Coords, Option<i64>);

    /// The four linked tables of one month — by nothing, département, kind, département × kind
    /// — read together: built so that, computed one by one, the kind table publishes ETTI's
    /// figure which the département × kind table withheld to protect 49 × ACI (2 structures).
    #[test]
    fn linked_tables_share_one_suppression_and_give_nothing_away_together() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let hub = hub(dir.path());
        hub.admit(&Peer { id: PeerId { role: Role::Hub, id: "coorace-pdl".into() }, serial: None }, None)?;
        // (département, kind, structures, employees each, hours each)
        let groups: [(&str, i32, usize, u32, u64); 5] = [
            ("49", 1, 3, 10, 1200), // AI
            ("49", 2, 2, 10, 1000), // ACI: fewer than 3 structures
            ("49", 4, 3, 6, 500),   // ETTI, only in 49
            ("44", 1, 3, 12, 1500), // AI
            ("44", 3, 3, 5, 300),   // EI, only in 44, the smallest kind
        ];
        let mut changes = Vec::new();
        let mut n = 0;
        for (dep, kind, count, employees, hours) in groups {
            for _ in 0..count {
                n += 1;
                let siret = siret(n);
                let origin =
                    Structure { siret: siret.clone(), kind, name: format!("S{n}"), departement: dep.into() };
                let report = IndicatorReport {
                    siret,
                    fields: Some(IndicatorFields {
                        period: "2026-10".into(),
                        etp_hundredths: hours * 100 / 134,
                        employees_in_insertion: employees,
                        hours_worked: hours,
                        hires: 1,
                        exits: Some(Exits { total: 6, durable: 2, transition: 1, positive: 1, other: 2 }),
                    }),
                    version: 1,
                    submitted_at_ms: 0,
                };
                changes.push(Change {
                    dataset: "indicators".into(),
                    key: "2026-10".into(),
                    version: 1,
                    payload: Some(change::Payload::Indicators(report)),
                    origin: Some(origin),
                    origin_epoch: vec![1; 16],
                    origin_epoch_created_at_ms: 1,
                });
            }
        }
        hub.apply_batch(
            &PushSession::for_tests_relay("coorace-pdl", 1),
            Batch { seq: 1, changes, head_seq: 1 },
        )?;

        let shapes: [Vec<String>; 4] = [
            vec![],
            vec!["departement".into()],
            vec!["kind".into()],
            vec!["departement".into(), "kind".into()],
        ];
        // Every cell of every table, by its (département, kind) coordinates.
        let read = |naive: bool| -> anyhow::Result<Vec<Seen>> {
            let mut all = Vec::new();
            for by in &shapes {
                let cells = if naive {
                    let (summaries, _) = hub.indicator_summaries("2026-10", by)?;
                    controlled(&INDICATORS, with_margins(by, &summaries, Summary::merge), by, 5)
                } else {
                    hub.table(&GetTableRequest {
                        table: "indicators".into(),
                        by: by.clone(),
                        period: "2026-10".into(),
                        ..Default::default()
                    })?
                    .cells
                };
                let shape = (by.iter().any(|d| d == "departement"), by.iter().any(|d| d == "kind"));
                for c in cells {
                    let hours = c.measures.iter().find(|m| m.name == "hours_worked").and_then(|m| m.value);
                    all.push((Family::coords(&c, shape), hours));
                }
            }
            Ok(all)
        };
        // The attacker: every row, column and margin relation, with all tables' published values.
        let attack = |cells: &[Seen]| -> Vec<(String, String)> {
            let mut known: HashMap<(String, String), i64> =
                cells.iter().filter_map(|(k, v)| v.map(|v| (k.clone(), v))).collect();
            let all: BTreeSet<(String, String)> = cells.iter().map(|(k, _)| k.clone()).collect();
            let star = || "*".to_string();
            let mut relations: Vec<(Coords, Vec<Coords>)> = Vec::new();
            let interior: Vec<&(String, String)> = all.iter().filter(|(d, k)| d != "*" && k != "*").collect();
            let deps: BTreeSet<&String> = interior.iter().map(|(d, _)| d).collect();
            let kinds: BTreeSet<&String> = interior.iter().map(|(_, k)| k).collect();
            for d in &deps {
                relations.push((
                    (d.to_string(), star()),
                    interior.iter().filter(|(x, _)| x == *d).map(|c| (*c).clone()).collect(),
                ));
            }
            for k in &kinds {
                relations.push((
                    (star(), k.to_string()),
                    interior.iter().filter(|(_, x)| x == *k).map(|c| (*c).clone()).collect(),
                ));
            }
            relations.push(((star(), star()), deps.iter().map(|d| (d.to_string(), star())).collect()));
            relations.push(((star(), star()), kinds.iter().map(|k| (star(), k.to_string())).collect()));
            let mut recovered = Vec::new();
            loop {
                let mut progress = false;
                for (total, parts) in &relations {
                    let unknown: Vec<&(String, String)> =
                        parts.iter().filter(|p| !known.contains_key(*p)).collect();
                    if let (Some(t), [one]) = (known.get(total).copied(), unknown.as_slice()) {
                        let sum: i64 = parts.iter().filter_map(|p| known.get(p)).sum();
                        known.insert((*one).clone(), t - sum);
                        recovered.push((*one).clone());
                        progress = true;
                    }
                }
                if !progress {
                    return recovered;
                }
            }
        };
        let aci_49 = ("49".to_string(), "aci".to_string());
        let naive = read(true)?;
        assert!(attack(&naive).contains(&aci_49), "tables computed one by one give 49 × ACI away: {naive:?}");

        let linked = read(false)?;
        assert_eq!(attack(&linked), Vec::<(String, String)>::new(), "{linked:?}");
        // And a cell has one status wherever it shows.
        let mut status: HashMap<(String, String), bool> = HashMap::new();
        for (coords, value) in &linked {
            let published = value.is_some();
            assert_eq!(
                *status.entry(coords.clone()).or_insert(published),
                published,
                "{coords:?} in {linked:?}"
            );
        }
        Ok(())
    }

    /// A record relayed by two network hubs stays until neither relays it; counted once.
    #[test]
    fn relayed_records_are_reference_counted() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let hub = hub(dir.path());
        let (siret, dep, kind) = ORIGINS[0];
        let origin = Structure { siret: siret.into(), kind, name: "S".into(), departement: dep.into() };
        for relay in ["coorace-pdl", "fas-pdl"] {
            hub.admit(&Peer { id: PeerId { role: Role::Hub, id: relay.into() }, serial: None }, None)?;
        }
        let report = IndicatorReport {
            siret: siret.into(),
            fields: Some(IndicatorFields {
                period: "2026-10".into(),
                etp_hundredths: 100,
                employees_in_insertion: 10,
                hours_worked: 1000,
                hires: 2,
                exits: Some(Exits::default()),
            }),
            version: 2,
            submitted_at_ms: 0,
        };
        let change = |payload| Change {
            dataset: "indicators".into(),
            key: "2026-10".into(),
            version: 2,
            payload: Some(payload),
            origin: Some(origin.clone()),
            origin_epoch: vec![1; 16],
            origin_epoch_created_at_ms: 1,
        };
        let tombstone = || {
            change::Payload::Tombstone(Tombstone {
                origin_siret: siret.into(),
                hub_id: "coorace-pdl".into(),
                reason: "no longer relayed".into(),
            })
        };
        let coorace = PushSession::for_tests_relay("coorace-pdl", 1);
        let fas = PushSession::for_tests_relay("fas-pdl", 2);
        for session in [&coorace, &fas] {
            hub.apply_batch(
                session,
                Batch {
                    seq: 1,
                    changes: vec![change(change::Payload::Indicators(report.clone()))],
                    head_seq: 1,
                },
            )?;
        }
        let cells = hub.stat_cells("i/")?;
        assert_eq!(cells.values().map(|c| c.contributions.len()).sum::<usize>(), 1, "counted once");
        let sources = |hub: &Hub| -> anyhow::Result<Option<Vec<String>>> {
            Ok(hub.records_of(siret, "indicators")?.first().map(|(_, r)| r.sources.clone()))
        };
        assert_eq!(sources(&hub)?, Some(vec!["coorace-pdl".to_string(), "fas-pdl".to_string()]));

        hub.apply_batch(&fas, Batch { seq: 2, changes: vec![change(tombstone())], head_seq: 2 })?;
        assert_eq!(sources(&hub)?, Some(vec!["coorace-pdl".to_string()]), "still relayed by Coorace");
        assert_eq!(hub.stat_cells("i/")?.len(), 1, "still counted");

        hub.apply_batch(&coorace, Batch { seq: 2, changes: vec![change(tombstone())], head_seq: 2 })?;
        assert_eq!(sources(&hub)?, None, "no hub relays it: gone");
        assert!(
            hub.stat_cells("i/")?.is_empty() && hub.stat_cells("iq/")?.is_empty(),
            "and uncounted everywhere"
        );
        Ok(())
    }

    proptest! {
            #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]
            #[test]
            fn incremental_cells_equal_a_full_recomputation(ops in prop::collection::vec(op(), 1..60)) {
                let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
                let hub = hub(dir.path());
                let mut sessions = Vec::new();
                for (i, (siret, dep, kind)) in ORIGINS.iter().enumerate() {
                    let peer = Peer { id: PeerId { role: Role::Node, id: (*siret).into() }, serial: None };
                    let structure = Structure { siret: (*siret).into(), kind: *kind, name: format!("S{i}"), departement: (*dep).into() };
                    hub.admit(&peer, Some(structure)).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    sessions.push(PushSession::for_tests(peer, vec![i as u8; 16], &["needs", "indicators"], i as u64 + 1));
                }
                let mut versions: HashMap<(usize, String), u64> = HashMap::new();
                for (seq, (origin, what, key, value)) in ops.into_iter().enumerate() {
                    let siret = ORIGINS[origin].0;
                    let (dataset, key) = if what < 2 {
                        ("indicators", format!("2026-{:02}", 1 + key))
                    } else {
                        ("needs", format!("01920000-0000-7000-8000-00000000000{key}"))
                    };
                    let version = versions.entry((origin, key.clone())).or_default();
                    *version += 1;
                    let tombstone = Some(change::Payload::Tombstone(Tombstone { origin_siret: siret.into(), hub_id: "coorace-pdl".into(), reason: "deleted".into() }));
                    let payload = match what {
                        0 => Some(change::Payload::Indicators(IndicatorReport {
                            siret: siret.into(),
                            fields: Some(IndicatorFields {
                                period: key.clone(),
                                etp_hundredths: u64::from(value) * 10,
                                employees_in_insertion: value,
                                hours_worked: u64::from(value) * 100,
                                hires: value % 3,
                                exits: Some(Exits { total: value % 4, durable: value % 4, ..Default::default() }),
                            }),
                            version: *version,
                            submitted_at_ms: 0,
                        })),
                        2 | 3 => Some(change::Payload::Need(SharedNeed {
                            origin_siret: siret.into(),
                            need_id: key.clone(),
                            origin_version: *version,
                            rome_code: format!("K22{:02}", value % 5),
                            contract_type: 1,
                            open_positions: value,
                            hours_per_week: 20,
                            departement: "49".into(),
                            start_date: "2027-01-04".into(),
                            status: if what == 2 { 1 } else { 2 },
                            ..Default::default()
                        })),
                        _ => tombstone,
                    };
                    let batch = Batch { seq: seq as u64 + 1, changes: vec![Change { dataset: dataset.into(), key, version: *version, payload, ..Default::default() }], head_seq: 0 };
                    hub.apply_batch(&sessions[origin], batch).map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
                // Recompute every cell from the live records.
                let mut expected: Cells = BTreeMap::new();
                let members = hub.list_members().map_err(|e| TestCaseError::fail(e.to_string()))?;
                for (siret, _, _) in ORIGINS {
                    let structure = members.iter().find(|m| m.id == siret).and_then(|m| m.structure.clone());
                    for dataset in ["needs", "indicators"] {
                        for (_, record) in hub.records_of(siret, dataset).map_err(|e| TestCaseError::fail(e.to_string()))? {
    if let Some((key, values)) = contribution(&record, structure.as_ref()) {
                                let mut keys = vec![key.clone()];
                                if key.starts_with(b"i/") {
                                    keys.extend(rollups(&key));
                                }
                                for key in keys {
                                    let entry = expected
                                        .entry(key)
                                        .or_default()
                                        .entry(siret.to_string())
                                        .or_insert_with(|| (vec![0; values.len()], 0));
                                    for (a, v) in entry.0.iter_mut().zip(&values) {
                                        *a += v;
                                    }
                                    entry.1 += 1;
                                }
                            }
                        }
                    }
                }
                let mut actual: Cells = BTreeMap::new();
                for prefix in ["i/", "iq/", "iy/", "n/"] {
                    for (k, cell) in hub.stat_cells(prefix).map_err(|e| TestCaseError::fail(e.to_string()))? {
                        actual.insert(k, cell.contributions.into_iter().map(|c| (c.siret, (c.values, c.records))).collect());
                    }
                }
                prop_assert_eq!(&actual, &expected);
                // Every indicators cell has a summary equal to one computed afresh.
                let stored = hub.store.scan(Tree::Stats, b"z/", Some(b"z0"), usize::MAX).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let indicator_cells = expected.keys().filter(|k| !k.starts_with(b"n/")).count();
                prop_assert_eq!(stored.len(), indicator_cells);
                for (key, raw) in stored {
                    let summary = Summary::decode(raw.as_slice()).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    let mut group = Group::default();
                    for (siret, (values, records)) in &expected[&key[2..]] {
                        group.add(&Contribution { siret: siret.clone(), values: values.clone(), records: *records });
                    }
                    let fresh = summarize(&INDICATORS, &group);
                    prop_assert_eq!((summary.structures, summary.totals, summary.dominance_max), (fresh.structures, fresh.totals, fresh.dominance_max));
                }

            }
        }
}
