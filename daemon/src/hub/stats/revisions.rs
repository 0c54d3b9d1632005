//! Revisions of a closed period, as the audit of the next publication sees them.
//!
//! A closed period is published once; late or corrected reports and removals are published by
//! `passerelle hub period revise` as the period's next revision, next to the earlier ones, which
//! stay readable. An attacker holding two revisions of a table subtracts them: what changed
//! between them is the contribution of the structures that changed, and a late report by one
//! structure would be that structure's figures exactly. So each revision keeps, besides its
//! published tables, a [`Snapshot`] of what it counted (every structure's contribution per
//! finest cell, and which revision of each sub-period it summed), from which the audit knows
//! which finest cells two revisions share ([`Snapshot::fingerprints`]) and where their
//! difference is *sensitive* ([`sensitive_changes`]): made of fewer than [`MIN_STRUCTURES`]
//! structures or `min_persons` persons, or dominated by one structure — a difference the
//! attacker must not narrow past the protection range (see `stats::world`).

use std::collections::{BTreeMap, BTreeSet};

use prost::Message;

use super::aggregates::{Contribution, StatCell};
use super::catalogue::INDICATORS;
use super::disclosure::{DOMINANCE_PERCENT, MIN_STRUCTURES, pair_exceeds, top_two};
use super::family::intersects;
use super::tables::parse_period;
use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::store::keys::{CellKey, CellPeriod};
use crate::store::{StoreError, Tree, scan_prefix};

/// What one revision of a period counted: every finest cell's per-structure contributions.
/// Stored with the revision (`s/PERIOD/REVISION` in the periods tree).
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Snapshot {
    /// One per finest cell with a contribution.
    #[prost(message, repeated, tag = "1")]
    pub(crate) cells: Vec<SnapshotCell>,
    /// For a quarter or a year: the revision of each of its sub-periods (months, quarters) it
    /// is the sum of, in order. Empty for a month, and in snapshots written before it was kept
    /// (then the audit does not link the revision to its sub-periods).
    #[prost(uint32, repeated, tag = "2")]
    pub(crate) counted: Vec<u32>,
}

/// A finest cell of a [`Snapshot`].
#[derive(Clone, PartialEq, Message)]
pub(crate) struct SnapshotCell {
    /// Its coordinates over the family's dimensions (département, kind).
    #[prost(string, repeated, tag = "1")]
    pub(crate) key: Vec<String>,
    /// Its contributions.
    #[prost(message, optional, tag = "2")]
    pub(crate) cell: Option<StatCell>,
}

/// Which structures a finest cell counts with which figures: two revisions of a period with
/// equal fingerprints at a cell count it alike (the attacker is granted knowing that).
pub(super) type Fingerprint = Vec<(String, Vec<i64>, u32)>;

impl Snapshot {
    /// Per finest cell, per structure: its contribution.
    pub(super) fn by_structure(&self) -> BTreeMap<&[String], BTreeMap<&str, &Contribution>> {
        self.cells
            .iter()
            .map(|c| {
                let by = c.cell.iter().flat_map(|cell| &cell.contributions).map(|x| (x.siret.as_str(), x));
                (c.key.as_slice(), by.collect())
            })
            .collect()
    }

    /// The true value of each measure of every finest cell (as the family's `values`).
    pub(super) fn values(&self) -> BTreeMap<Vec<String>, Vec<i64>> {
        self.cells
            .iter()
            .map(|c| (c.key.clone(), c.cell.as_ref().map(|cell| cell.summary().totals).unwrap_or_default()))
            .collect()
    }

    /// Per finest cell: who it counts, with what.
    pub(super) fn fingerprints(&self) -> BTreeMap<Vec<String>, Fingerprint> {
        self.by_structure()
            .into_iter()
            .map(|(key, by)| {
                let print =
                    by.into_iter().map(|(s, c)| (s.to_string(), c.values.clone(), c.records)).collect();
                (key.to_vec(), print)
            })
            .collect()
    }

    /// Whether two snapshots count the same cells alike (whatever sub-period revisions).
    pub(crate) fn same_cells(&self, other: &Snapshot) -> bool {
        self.cells == other.cells
    }
}

/// A structure whose contribution to a finest cell changed: its SIRET, its values before and
/// after (empty when absent).
type Change<'a> = (&'a str, Vec<i64>, Vec<i64>);

/// The cells (over the family's dimensions, `*` for "all") where the difference between two
/// revisions `then` and `now` of a period is sensitive: the contribution of fewer than
/// [`MIN_STRUCTURES`] structures or `min_persons` persons, or one structure's change making most
/// of the whole change on some measure, or two making more than `100 / (1 + protection)` % of it.
pub(super) fn sensitive_changes(
    then: &Snapshot,
    now: &Snapshot,
    min_persons: i64,
    protection: u32,
) -> Vec<Vec<String>> {
    let (old, new) = (then.by_structure(), now.by_structure());
    let keys: BTreeSet<&[String]> = old.keys().chain(new.keys()).copied().collect();
    let none = BTreeMap::new();
    // Per finest cell: the structures whose contribution changed, with (before, after).
    let mut moved: BTreeMap<Vec<String>, Vec<Change<'_>>> = BTreeMap::new();
    for key in &keys {
        let (a, b) = (old.get(key).unwrap_or(&none), new.get(key).unwrap_or(&none));
        let sirets: BTreeSet<&str> = a.keys().chain(b.keys()).copied().collect();
        for siret in sirets {
            let (x, y) = (a.get(siret), b.get(siret));
            if x.map(|c| (&c.values, c.records)) != y.map(|c| (&c.values, c.records)) {
                let values = |c: Option<&&Contribution>| c.map(|c| c.values.clone()).unwrap_or_default();
                moved.entry(key.to_vec()).or_default().push((siret, values(x), values(y)));
            }
        }
    }
    let persons = INDICATORS.index(INDICATORS.persons.unwrap_or(INDICATORS.dominance));
    let mut sensitive = Vec::new();
    for at in cells_over(&keys) {
        let changes: Vec<&Change<'_>> =
            moved.iter().filter(|(k, _)| intersects(k, &at)).flat_map(|(_, v)| v).collect();
        if changes.is_empty() {
            continue;
        }
        let structures: BTreeSet<&str> = changes.iter().map(|(s, _, _)| *s).collect();
        let at_index = |v: &Vec<i64>, i: usize| v.get(i).copied().unwrap_or(0);
        let people: i64 =
            changes.iter().map(|(_, a, b)| at_index(a, persons).max(at_index(b, persons))).sum();
        // One structure's change making most of the whole change, on any measure.
        let dominated = (0..INDICATORS.measures.len()).any(|i| {
            let deltas: Vec<i64> =
                changes.iter().map(|(_, a, b)| (at_index(b, i) - at_index(a, i)).abs()).collect();
            let total: i64 = deltas.iter().sum();
            let top = top_two(deltas);
            total > 0 && top[0] * 100 > i64::from(DOMINANCE_PERCENT) * total
                // The pair rule, as for cells: two structures making nearly all of a change
                // (a small third leaving or arriving with them) are that change, bounded.
                || pair_exceeds(top, total, protection)
        });
        if structures.len() < MIN_STRUCTURES as usize || people < min_persons || dominated {
            sensitive.push(at);
        }
    }
    sensitive
}

/// Every cell of the family's tables over finest cells `keys`: the finest cells themselves,
/// their margins along each dimension, and the grand total.
fn cells_over(keys: &BTreeSet<&[String]>) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    for key in keys {
        let n = key.len();
        for mask in 0u32..1 << n {
            if mask.count_ones() as usize > 2 {
                continue;
            }
            out.insert(
                (0..n).map(|i| if mask & (1 << i) != 0 { key[i].clone() } else { "*".into() }).collect(),
            );
        }
    }
    out
}

impl Hub {
    /// What the indicators cells of `period` (a month, quarter or year) count now.
    pub(crate) fn indicator_snapshot(&self, period: &str) -> Result<Snapshot> {
        let (from, to) = parse_period(period)?;
        let prefix = CellKey::cells_of(CellPeriod::of_range(from, to));
        let mut cells = Vec::new();
        for (key, raw) in scan_prefix(self.store.as_ref(), Tree::Stats, &prefix)? {
            let Some(CellKey::Indicators { departement, kind, .. }) = CellKey::decode(&key) else { continue };
            let cell = StatCell::decode(raw.as_slice())
                .map_err(|_| Error::Store(StoreError("corrupt cell".into())))?;
            if !cell.contributions.is_empty() {
                cells.push(SnapshotCell { key: vec![departement, kind], cell: Some(cell) });
            }
        }
        Ok(Snapshot { cells, counted: Vec::new() })
    }
}
