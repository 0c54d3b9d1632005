//! The predefined tables: cells read and grouped by the requested dimensions, with margins.

use std::collections::{BTreeMap, BTreeSet};

use passerelle_proto::date::{Month, format_unix_ms};
use passerelle_proto::v1::{self, Cell, GetTableRequest};
use passerelle_proto::validate::FieldError;
use prost::Message;

use super::aggregates::*;
use super::catalogue::*;
use super::disclosure::*;
use super::family::*;
use super::world::{Context, Published, Root, World};
use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::store::keys::{CellKey, CellPeriod};
use crate::store::{StoreError, Tree, scan_prefix};

/// A table's cell before disclosure control: contributions merged per structure.
#[derive(Debug, Clone, Default)]
pub(super) struct Group {
    /// Per structure: summed values and the number of months (indicators) it reported.
    pub(super) by_siret: BTreeMap<String, (Vec<i64>, i64)>,
}

impl Group {
    pub(super) fn add(&mut self, c: &Contribution) {
        let entry = self.by_siret.entry(c.siret.clone()).or_insert_with(|| (vec![0; c.values.len()], 0));
        entry.0.resize(c.values.len().max(entry.0.len()), 0);
        for (acc, v) in entry.0.iter_mut().zip(&c.values) {
            *acc += v;
        }
        entry.1 += i64::from(c.records);
    }

    pub(super) fn merge(&mut self, other: &Group) {
        for (siret, (values, months)) in &other.by_siret {
            let entry = self.by_siret.entry(siret.clone()).or_insert_with(|| (vec![0; values.len()], 0));
            for (acc, v) in entry.0.iter_mut().zip(values) {
                *acc += v;
            }
            entry.1 += months;
        }
    }
}

/// An indicators family of one period, the finest summaries it was built from, and the
/// latest report time.
pub(super) type IndicatorFamily = (Family, BTreeMap<Vec<String>, Summary>, i64);

/// The indicators families computed so far, by period label; and, when publishing, what
/// consumers already hold of the year (see `stats::world`) and the revisions being published.
#[derive(Default)]
pub(crate) struct Families {
    computed: std::collections::HashMap<String, IndicatorFamily>,
    /// `None`: tables computed on their own, outside any publication.
    world: Option<World>,
    /// The periods being published, placed in the world (their family is audited there).
    roots: std::collections::HashMap<String, Root>,
}

/// Parses `2026-10`, `2026-Q3` or `2026` into an inclusive month range.
pub(crate) fn parse_period(period: &str) -> Result<(Month, Month)> {
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

/// Checks a consumer's request before anything is read: the table's name, its dimensions and,
/// for the monthly indicators, the period. The first thing `GetTable` does with what a consumer
/// sent, and the entry of the `get_table_request` fuzz target.
pub fn check_table_request(request: &GetTableRequest) -> Result<()> {
    check_revision(request)?;
    if request.table == super::introductions::NAME {
        return super::introductions::check(request).map(|_| ());
    }
    checked_table(request).map(|_| ())
}

/// Only indicators tables have revisions (needs and profiles are live, introductions are
/// published once): a revision asked of another table is refused, not ignored.
fn check_revision(request: &GetTableRequest) -> Result<()> {
    match request.revision {
        Some(n) if request.table != Table::Indicators.as_str() => {
            Err(FieldError::new("revision", n.to_string(), "only indicators tables have revisions").into())
        }
        _ => Ok(()),
    }
}

/// [`check_table_request`], returning the table asked for.
fn checked_table(request: &GetTableRequest) -> Result<Table> {
    let table: Table = request.table.parse()?;
    check_dimensions(table.spec(), &request.by)?;
    if table == Table::Indicators {
        parse_period(&request.period)?;
    }
    Ok(table)
}

fn check_dimensions(spec: &Spec, by: &[String]) -> Result<()> {
    if by.len() > 2 {
        return Err(FieldError::rule("by", "at most two dimensions").into());
    }
    for d in by {
        if !spec.dimensions.contains(&d.as_str()) {
            return Err(
                FieldError::new("by", d, format!("expected one of {}", spec.dimensions.join(", "))).into()
            );
        }
    }
    Ok(())
}

impl Hub {
    /// A predefined table with disclosure control, as published: indicators tables are those
    /// frozen when their period closed (see `hub::periods`); needs and profiles are live.
    pub fn table(&self, request: &GetTableRequest) -> Result<v1::Table> {
        check_revision(request)?;
        if request.table == super::introductions::NAME {
            return self.published_introductions(request);
        }
        if checked_table(request)? == Table::Indicators {
            return self.published_indicators(request);
        }
        self.compute_table(request)
    }

    /// A predefined table computed from the current cells (indicators: what a closing freezes;
    /// consumers read the frozen copy through [`Hub::table`]).
    pub fn compute_table(&self, request: &GetTableRequest) -> Result<v1::Table> {
        self.compute_table_with(request, &mut Families::default())
    }

    /// [`Hub::compute_table`], reusing the indicators families already computed in `families`
    /// (a closing stages every dimension set of a month, its quarter and its year: each
    /// family is settled and audited once).
    pub(crate) fn compute_table_with(
        &self,
        request: &GetTableRequest,
        families: &mut Families,
    ) -> Result<v1::Table> {
        let table: Table = request.table.parse()?;
        let spec = table.spec();
        check_dimensions(spec, &request.by)?;
        let mut freshness = Vec::new();
        let min_persons = i64::from(self.config.min_persons);
        let (cells, label) = match table {
            Table::Indicators => {
                let (cells, latest) =
                    self.indicator_cells(&request.period, &request.by, min_persons, families)?;
                if latest > 0 {
                    freshness.push(format!("{}={}", request.period, format_unix_ms(latest)));
                }
                (cells, request.period.clone())
            }
            Table::Needs => {
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
                let start = CellKey::needs_from(from.ordinal());
                let end = CellKey::needs_from(to.ordinal() + 1);
                let cells = self.store.scan(Tree::Stats, &start, Some(&end), usize::MAX)?;
                let groups = group_cells(cells, |cell| {
                    let CellKey::Needs { start, departement: dep, rome, contract } = cell else {
                        return None;
                    };
                    let month = Month::from_ordinal(*start);
                    Some(
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
                            .collect(),
                    )
                })?;
                let entries = summarize_with_margins(spec, &request.by, &groups);
                (controlled(spec, entries, &request.by, min_persons, self.config.protection_percent), label)
            }
            Table::Profiles => (self.profile_cells(&request.by, min_persons)?, String::new()),
        };
        let mut rules = vec![
            format!("a cell with fewer than {MIN_STRUCTURES} contributing structures is suppressed"),
            format!(
                "a cell where one structure contributes more than {DOMINANCE_PERCENT} % of any measure is suppressed (of an exit figure: the exit figures)"
            ),
            format!(
                "a cell where two structures contribute more than {} % of any measure is suppressed (of an exit figure: the exit figures)",
                pair_limit(self.config.protection_percent)
            ),
            "suppressed cells are complemented so that none can be recomputed from the published totals"
                .to_string(),
        ];
        if table != Table::Needs {
            rules.push(
                "a cell this table shares with the tables by other dimensions is suppressed in all of them alike"
                    .into(),
            );
        }
        if let Some(p) = spec.persons {
            rules.insert(
                1,
                format!("a cell counting fewer than {min_persons} persons ({}) is suppressed", p.name()),
            );
        }
        if spec.exits_rule {
            rules.push(format!("exit figures counting fewer than {min_persons} exits are suppressed"));
            rules.push(
                "a quarter or year cell is suppressed when exactly one of its months or quarters is, so that it cannot be recomputed by subtraction"
                    .into(),
            );
            rules.push("etp and employees are monthly averages per structure over the period; other figures are sums".into());
        }
        Ok(v1::Table {
            table: request.table.clone(),
            by: request.by.clone(),
            period: label,
            cells,
            rules,
            freshness,
            revision: 0,
        })
    }

    /// The disclosure-controlled cells of an indicators table. On a hub whose data lies in one
    /// région (every network and regional hub), every table is a projection of one *family* of
    /// linked tables computed together (see [`Family`]), so a cell has the same status in every
    /// table that shows it. A table by région on a hub spanning several régions is computed on
    /// its own (primary rules, the rule across periods, complementary suppression), and a région
    /// cell is published only where every family cell it sums is: it adds nothing to what the
    /// audited family publishes.
    pub(super) fn indicator_cells(
        &self,
        period: &str,
        by: &[String],
        min_persons: i64,
        families: &mut Families,
    ) -> Result<(Vec<Cell>, i64)> {
        let (family, finest, latest) = self.indicator_family(period, min_persons, families)?;
        let regions: BTreeSet<&str> =
            finest.keys().map(|k| passerelle_proto::geo::region_of(&k[0]).unwrap_or("?")).collect();
        if by.iter().any(|d| d == "region") && regions.len() > 1 {
            let (summaries, _) = self.indicator_summaries(period, by)?;
            let mut cells = disclose(
                &INDICATORS,
                with_margins(by, &summaries, Summary::merge),
                min_persons,
                self.config.protection_percent,
            );
            secondary_suppression(&mut cells, by.len());
            // A région cell is a sum of the family's département cells, which the audit settled
            // without it: published alone it could undo their suppression (a région minus its
            // published départements). So it is published only where every département cell it
            // sums is published whole — then it says nothing they do not.
            let by_dep: Vec<String> = by
                .iter()
                .map(|d| if d == "region" { "departement".to_string() } else { d.clone() })
                .collect();
            let (dep_cells, _) = self.indicator_cells(period, &by_dep, min_persons, families)?;
            let at = by.iter().position(|d| d == "region").unwrap_or(0);
            for cell in cells.iter_mut().filter(|c| !cell_hidden(c)) {
                let parts: Vec<&Cell> = dep_cells
                    .iter()
                    .filter(|d| {
                        d.key.iter().zip(&cell.key).enumerate().all(|(i, (dk, rk))| match i == at {
                            true if rk == "*" => dk == "*",
                            true => dk != "*" && passerelle_proto::geo::region_of(dk) == Some(rk.as_str()),
                            false => dk == rk,
                        })
                    })
                    .collect();
                if parts.is_empty() || parts.iter().any(|d| cell_hidden(d) || exits_hidden(d)) {
                    hide_cell(cell, SECONDARY_REGION);
                }
            }
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
        let keys = with_margins(by, &groups, Summary::merge).into_iter().map(|(k, t, _)| (k, t)).collect();
        let cells = family.project(by, keys);
        Ok((cells, latest))
    }

    /// The family of linked indicators tables of `period` (by nothing, département, kind, and
    /// département × kind), with primary rules, the rule across periods (against the same
    /// family of each sub-period) and complementary suppression iterated across the four
    /// tables until every shared cell has one status.
    /// Also returns the finest summaries it read and the latest report time.
    pub(super) fn indicator_family(
        &self,
        period: &str,
        min_persons: i64,
        families: &mut Families,
    ) -> Result<IndicatorFamily> {
        if let Some(known) = families.computed.get(period) {
            return Ok(known.clone());
        }
        let dims = indicator_dims();
        let (finest, latest) = self.indicator_summaries(period, &dims)?;
        let before = match (&families.world, families.roots.get(period)) {
            (Some(world), Some(root)) => Before {
                subs: Context::sub_tables(world, period),
                context: Context::new(world, root, min_persons, self.config.protection_percent),
            },
            _ => Before::default(),
        };
        let family = Family::build(
            &dims,
            &finest,
            Summary::merge,
            |_, entries| disclose(&INDICATORS, entries, min_persons, self.config.protection_percent),
            |summary| summary.totals.clone(),
            before,
            AuditRule::of(&INDICATORS, self.config.protection_percent),
        );
        families.computed.insert(period.to_string(), (family.clone(), finest.clone(), latest));
        Ok((family, finest, latest))
    }

    /// The profiles table asked for, a projection of the family of linked profiles tables (by
    /// any one or two of domaine, département and age band), settled together.
    pub(super) fn profile_cells(&self, by: &[String], min_persons: i64) -> Result<Vec<Cell>> {
        let dims = profile_dims();
        let cells = scan_prefix(self.store.as_ref(), Tree::Stats, CellKey::profiles())?;
        let finest = group_cells(cells, |cell| {
            // The family's order is `profile_dims`.
            let CellKey::Profiles { departement, domaine, age_band } = cell else {
                return None;
            };
            Some(vec![domaine.clone(), departement.clone(), age_band.clone()])
        })?;
        let family = Family::build(
            &dims,
            &finest,
            Group::merge,
            |_, entries| {
                let entries = entries.into_iter().map(|(k, t, g)| (k, t, summarize(&PROFILES, &g))).collect();
                disclose(&PROFILES, entries, min_persons, self.config.protection_percent)
            },
            |group| totals(&PROFILES, group),
            Before::default(),
            AuditRule::of(&PROFILES, self.config.protection_percent),
        );
        let mut groups: BTreeMap<Vec<String>, Group> = BTreeMap::new();
        for (key, group) in &finest {
            let coords = by
                .iter()
                .map(|d| dims.iter().position(|x| x == d).map_or(String::new(), |i| key[i].clone()))
                .collect();
            groups.entry(coords).or_default().merge(group);
        }
        let keys = with_margins(by, &groups, Group::merge).into_iter().map(|(k, t, _)| (k, t)).collect();
        Ok(family.project(by, keys))
    }

    /// The precomputed summaries of the indicators cells of one period (a month, quarter or
    /// year cell each), grouped by `by`; and the latest report time.
    pub(super) fn indicator_summaries(
        &self,
        period: &str,
        by: &[String],
    ) -> Result<(BTreeMap<Vec<String>, Summary>, i64)> {
        let (from, to) = parse_period(period)?;
        let prefix = CellKey::summaries_of(CellPeriod::of_range(from, to));
        let mut groups: BTreeMap<Vec<String>, Summary> = BTreeMap::new();
        let mut latest = 0;
        for (key, raw) in scan_prefix(self.store.as_ref(), Tree::Stats, &prefix)? {
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

/// The reason given to a région cell hidden because a département it sums is withheld.
pub(super) const SECONDARY_REGION: &str = "secondary suppression: protects a suppressed département";

/// The dimensions of the indicators family: every other indicators table of a regional hub is
/// one of its tables (région and network are constant there).
pub(super) fn indicator_dims() -> Vec<String> {
    vec!["departement".to_string(), "kind".to_string()]
}

/// The dimensions of the profiles family, as `by` names them.
pub(super) fn profile_dims() -> Vec<String> {
    vec!["rome-domaine".to_string(), "departement".to_string(), "age-band".to_string()]
}

/// Groups stored cells (with per-structure contributions) by the coordinates `coords` gives
/// (`None`: a cell of another table, or a key that is not a cell's, skipped).
pub(super) fn group_cells(
    cells: Vec<crate::store::KeyValue>,
    coords: impl Fn(&CellKey) -> Option<Vec<String>>,
) -> Result<BTreeMap<Vec<String>, Group>> {
    let mut groups: BTreeMap<Vec<String>, Group> = BTreeMap::new();
    for (key, raw) in cells {
        let cell =
            StatCell::decode(raw.as_slice()).map_err(|_| Error::Store(StoreError("corrupt cell".into())))?;
        let Some(coords) = CellKey::decode(&key).as_ref().and_then(&coords) else {
            continue;
        };
        let group = groups.entry(coords).or_default();
        for c in &cell.contributions {
            group.add(c);
        }
    }
    Ok(groups)
}

/// Interior cells plus margins (per value of each of two dimensions) and the grand total.
pub(super) fn with_margins<T: Clone + Default>(
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
pub(super) fn summarize_with_margins(
    spec: &Spec,
    by: &[String],
    groups: &BTreeMap<Vec<String>, Group>,
) -> Vec<(Vec<String>, bool, Summary)> {
    with_margins(by, groups, Group::merge).into_iter().map(|(k, t, g)| (k, t, summarize(spec, &g))).collect()
}

/// Disclosure control of groups given per structure (for tests and the needs/profiles tables).
#[cfg(test)]
pub(super) fn disclose_groups(
    spec: &Spec,
    by: &[String],
    groups: &BTreeMap<Vec<String>, Group>,
    min_persons: i64,
) -> Vec<Cell> {
    disclose(spec, summarize_with_margins(spec, by, groups), min_persons, 15)
}

/// Each measure's total over the group's structures (in stored order).
pub(super) fn totals(spec: &Spec, group: &Group) -> Vec<i64> {
    let mut out = vec![0i64; spec.measures.len()];
    for (values, months) in group.by_siret.values() {
        for (total, (measure, value)) in
            out.iter_mut().zip(spec.measures.iter().zip(values.iter().chain(std::iter::repeat(&0))))
        {
            *total += per_structure(*value, *months, measure.agg());
        }
    }
    out
}

pub(super) fn per_structure(value: i64, months: i64, agg: Agg) -> i64 {
    match agg {
        Agg::Sum => value,
        Agg::MonthlyAverage => (value + months / 2) / months.max(1),
    }
}

/// The summary of a group of structures.
pub(super) fn summarize(spec: &Spec, group: &Group) -> Summary {
    let (agg, at) = (spec.dominance.agg(), spec.index(spec.dominance));
    let (maxima, seconds) = spec
        .measures
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let top = top_two(
                group
                    .by_siret
                    .values()
                    .map(|(v, months)| per_structure(v.get(i).copied().unwrap_or(0), *months, m.agg())),
            );
            (top[0], top[1])
        })
        .unzip();
    Summary {
        maxima,
        seconds,
        structures: group.by_siret.len() as u32,
        totals: totals(spec, group),
        dominance_max: group
            .by_siret
            .values()
            .map(|(v, m)| per_structure(v.get(at).copied().unwrap_or(0), *m, agg))
            .max()
            .unwrap_or(0),
        latest_ms: 0,
    }
}

impl Families {
    /// Families for publishing into `world`, what consumers hold of the year.
    pub(crate) fn publishing(world: World) -> Self {
        Families { world: Some(world), ..Families::default() }
    }

    /// What consumers hold of the year, publications staged so far included.
    pub(crate) fn world(&self) -> Option<&World> {
        self.world.as_ref()
    }

    /// `root` is being published: its family is audited in the world.
    pub(crate) fn begin(&mut self, root: Root) {
        self.computed.remove(&root.period);
        self.roots.insert(root.period.clone(), root);
    }

    /// `node` is staged: the next publications read it as held by consumers.
    pub(crate) fn published(&mut self, node: Published) {
        self.roots.remove(&node.period);
        if let Some(world) = &mut self.world {
            world.push(node);
        }
    }
}
