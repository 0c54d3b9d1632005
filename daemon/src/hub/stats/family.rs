//! Linked tables, settled together so a cell has one status wherever it shows.
//!
//! A consumer may ask for a table by any one or two of a dataset's dimensions, or by none. Those
//! tables share cells: a département's total is a row margin of the département × kind table and
//! a cell of the département table; the grand total is in all of them. Computed one by one, a
//! shared cell could be withheld in one table (to protect another cell) and published in the
//! next, which gives the protected cell back. A [`Family`] holds every such table of one period,
//! runs complementary suppression in each, spreads every withheld cell to the tables sharing it,
//! and repeats until nothing changes (suppression only grows, so this ends).

use std::collections::{BTreeMap, HashMap};

use passerelle_proto::v1::Cell;

use super::disclosure::*;
use super::tables::with_margins;
use super::world::{Context, Published};

/// Which of the family's dimensions a table has, in the family's order.
pub(super) type Shape = Vec<bool>;

/// The linked tables of one dataset and period.
#[derive(Debug, Default, Clone)]
pub(super) struct Family {
    pub(super) dims: Vec<String>,
    pub(super) tables: Vec<Linked>,
    /// The true value of each stored measure of every finest cell (keyed by every dimension):
    /// what the audit protects. Never published as such.
    pub(super) values: BTreeMap<Vec<String>, Vec<i64>>,
    /// What the audit requires.
    pub(super) rule: AuditRule,
}

/// What was published before a family's tables. The audit reads it with the family's tables;
/// only the family's tables change.
#[derive(Debug)]
pub(super) struct Before<'w> {
    /// The sub-periods (a quarter's months, a year's quarters) as published: their latest
    /// revisions, for the rule across periods.
    pub(super) subs: Vec<&'w Published>,
    /// Every published revision the audit reads with this family (see `stats::world`).
    pub(super) context: Context<'w>,
}

impl Default for Before<'_> {
    fn default() -> Self {
        Before { subs: Vec::new(), context: Context::alone() }
    }
}

/// One table of a family, with each cell's coordinates over the family's dimensions.
#[derive(Debug, Default, Clone)]
pub(super) struct Linked {
    pub(super) shape: Shape,
    pub(super) cells: Vec<Cell>,
    pub(super) coords: Vec<Vec<String>>,
}

/// What the audit of a family checks, per stored measure (in the table's stored order).
#[derive(Debug, Default, Clone)]
pub(super) struct AuditRule {
    /// The protection level, in percent.
    pub(super) percent: u32,
    /// Whether the measure is a flow, whose period value is the sum of its sub-periods'
    /// (stocks are averages: no such relation).
    pub(super) flows: Vec<bool>,
    /// Whether the measure is an exit figure (withheld on its own, with the other exit figures).
    pub(super) exits: Vec<bool>,
}

impl AuditRule {
    /// The rule for a table's measures at protection level `percent`.
    pub(super) fn of(spec: &super::catalogue::Spec, percent: u32) -> Self {
        AuditRule {
            percent,
            flows: spec.measures.iter().map(|m| m.agg() == super::catalogue::Agg::Sum).collect(),
            exits: spec.measures.iter().map(|m| m.is_exit()).collect(),
        }
    }
}

impl Family {
    /// Builds the family over `dims` from the finest groups (keyed by every dimension, in order):
    /// for each table a consumer may ask for (at most two dimensions), `primary` turns its
    /// groups with margins into cells under the primary rules; each is then checked against the
    /// same table of `before.subs` (its sub-periods, if any) before the family is settled.
    /// Then the audit: an attacker solving every published cell of the family and of every
    /// revision of its context must not narrow a withheld value (or a sensitive change between
    /// two revisions of one period) past the rule's protection range; where
    /// they can, cheap cells sharing a line with the exposed one are withheld too, until none
    /// is exposed (see [`super::audit`]).
    pub(super) fn build<T: Clone + Default>(
        dims: &[String],
        finest: &BTreeMap<Vec<String>, T>,
        merge: impl Fn(&mut T, &T) + Copy,
        primary: impl Fn(&[String], Vec<(Vec<String>, bool, T)>) -> Vec<Cell>,
        values: impl Fn(&T) -> Vec<i64>,
        before: Before<'_>,
        rule: AuditRule,
    ) -> Family {
        let mut family = Family {
            dims: dims.to_vec(),
            tables: Vec::new(),
            values: finest.iter().map(|(k, t)| (k.clone(), values(t))).collect(),
            rule,
        };
        for shape in shapes(dims.len()) {
            let by: Vec<String> =
                dims.iter().zip(&shape).filter(|(_, keep)| **keep).map(|(d, _)| d.clone()).collect();
            let mut groups: BTreeMap<Vec<String>, T> = BTreeMap::new();
            for (key, group) in finest {
                let coords =
                    key.iter().zip(&shape).filter(|(_, keep)| **keep).map(|(v, _)| v.clone()).collect();
                merge(groups.entry(coords).or_default(), group);
            }
            let mut cells = primary(&by, with_margins(&by, &groups, merge));
            let sub: Vec<&[Cell]> = before.subs.iter().map(|c| c.table(&shape)).collect();
            temporal_suppression(&mut cells, &sub);
            let at = cells.iter().map(|c| coords(c, &shape)).collect();
            family.tables.push(Linked { shape, cells, coords: at });
        }
        family.settle();
        family.audit(&before.context);
        family
    }

    /// Audits one table that already holds every cell of its linked tables (a table by every
    /// dimension with all its margins, of which the other groupings are projections): `cells`
    /// after the primary rules and the heuristic, `values` the true values of its finest cells.
    /// Returns the cells with the complements the audit adds.
    pub(super) fn audit_table(
        dims: &[String],
        cells: Vec<Cell>,
        values: BTreeMap<Vec<String>, Vec<i64>>,
        rule: AuditRule,
    ) -> Vec<Cell> {
        let shape: Shape = vec![true; dims.len()];
        let at = cells.iter().map(|c| coords(c, &shape)).collect();
        let mut family =
            Family { dims: dims.to_vec(), tables: vec![Linked { shape, cells, coords: at }], values, rule };
        family.audit(&Context::alone());
        family.tables.pop().map(|t| t.cells).unwrap_or_default()
    }

    /// Withholds cells until the attacker of [`super::audit`] narrows no withheld value past
    /// the protection range: for each exposed value, the cheapest published cell of this
    /// period (fewest structures, then smallest value), among those sharing a line with it
    /// first. Only this period's tables change: its sub-periods are published already, and
    /// withholding all of this period's cells leaves the attacker what they knew before it.
    fn audit(&mut self, context: &Context<'_>) {
        loop {
            let leaks = super::audit::attack(self, context);
            if leaks.is_empty() {
                return;
            }
            let mut victims: Vec<(usize, usize, bool)> = Vec::new();
            let mut seen: Vec<(usize, Vec<String>, bool)> = Vec::new();
            for leak in &leaks {
                let exits = self.rule.exits.get(leak.measure).copied().unwrap_or(false);
                let id = (leak.node, leak.coords.clone(), exits);
                if seen.contains(&id) {
                    continue;
                }
                seen.push(id);
                let published =
                    |cell: &Cell| cell.measures.get(leak.measure).is_some_and(|m| m.value.is_some());
                // Cells on a line through the exposed one first; else any (the relation can run
                // through a total the sub-periods publish).
                let best = self
                    .tables
                    .iter()
                    .enumerate()
                    .flat_map(|(t, table)| {
                        table.cells.iter().zip(&table.coords).enumerate().map(move |(c, cell)| (t, c, cell))
                    })
                    .filter(|(t, c, (cell, _))| {
                        published(cell) && !victims.iter().any(|v| (v.0, v.1) == (*t, *c))
                    })
                    .min_by_key(|(_, _, (cell, at))| {
                        (
                            !intersects(at, &leak.coords),
                            cell.structures.unwrap_or(u32::MAX),
                            cell.measures[leak.measure].value.unwrap_or(i64::MAX),
                        )
                    });
                if let Some((t, c, _)) = best {
                    victims.push((t, c, exits));
                }
            }
            if victims.is_empty() {
                // Exposed by sub-periods published before this one: nothing left to withhold here.
                tracing::warn!(
                    exposed = leaks.len(),
                    "statistics audit: a withheld value is exposed by published sub-periods"
                );
                return;
            }
            for (t, c, exits) in victims {
                let cell = &mut self.tables[t].cells[c];
                if exits && has_exits(cell) && !cell_hidden(cell) {
                    hide_exits(cell, SECONDARY_EXITS);
                } else {
                    hide_cell(cell, SECONDARY);
                }
            }
            self.settle();
        }
    }

    /// The table of `shape`.
    pub(super) fn table(&self, shape: &[bool]) -> &[Cell] {
        self.tables.iter().find(|t| t.shape == shape).map_or(&[], |t| t.cells.as_slice())
    }

    /// The table a consumer asked for, by `by` (which may also hold dimensions constant on this
    /// hub, outside the family): each of `keys` (the table's own keys, with their total flag)
    /// gets the family's cell at the same coordinates.
    pub(super) fn project(&self, by: &[String], keys: Vec<(Vec<String>, bool)>) -> Vec<Cell> {
        let shape: Shape = self.dims.iter().map(|d| by.contains(d)).collect();
        let table: HashMap<Vec<String>, &Cell> =
            self.table(&shape).iter().map(|c| (coords(c, &shape), c)).collect();
        keys.into_iter()
            .filter_map(|(key, total)| {
                let wanted: Vec<String> = self
                    .dims
                    .iter()
                    .map(|dim| by.iter().position(|d| d == dim).map_or("*".to_string(), |i| key[i].clone()))
                    .collect();
                let mut cell = (*table.get(&wanted)?).clone();
                cell.key = key;
                cell.total = total;
                Some(cell)
            })
            .collect()
    }

    fn settle(&mut self) {
        loop {
            for t in &mut self.tables {
                secondary_suppression(&mut t.cells, t.shape.iter().filter(|k| **k).count());
            }
            // Every coordinate's strongest status across the tables that show it.
            let mut withheld: HashMap<&[String], (Option<String>, Option<String>)> = HashMap::new();
            for t in &self.tables {
                for (cell, at) in t.cells.iter().zip(&t.coords) {
                    let entry = withheld.entry(at.as_slice()).or_default();
                    if cell_hidden(cell) && entry.0.is_none() {
                        entry.0 = Some(cell.suppressed.clone());
                    }
                    if has_exits(cell) && exits_hidden(cell) && entry.1.is_none() {
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
            let withheld: HashMap<Vec<String>, (Option<String>, Option<String>)> =
                withheld.into_iter().map(|(k, v)| (k.to_vec(), v)).collect();
            let mut changed = false;
            for t in &mut self.tables {
                for (cell, at) in t.cells.iter_mut().zip(&t.coords) {
                    let Some((whole, exits)) = withheld.get(at) else { continue };
                    if let Some(reason) = whole
                        && !cell_hidden(cell)
                    {
                        hide_cell(cell, reason);
                        changed = true;
                    } else if let Some(reason) = exits
                        && has_exits(cell)
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

/// Every table a consumer may ask for over `n` dimensions: at most two of them.
fn shapes(n: usize) -> Vec<Shape> {
    (0u32..1 << n)
        .filter(|mask| mask.count_ones() <= 2)
        .map(|mask| (0..n).map(|i| mask & (1 << i) != 0).collect())
        .collect()
}

/// Whether two cells' coordinates (`*` for "all") share a finest cell.
pub(super) fn intersects(a: &[String], b: &[String]) -> bool {
    a.iter().zip(b).all(|(x, y)| x == "*" || y == "*" || x == y)
}

/// A cell's coordinates over the family's dimensions, `*` for "all".
pub(super) fn coords(cell: &Cell, shape: &[bool]) -> Vec<String> {
    let mut values = cell.key.iter();
    shape
        .iter()
        .map(|keep| if *keep { values.next().cloned().unwrap_or_default() } else { "*".into() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_of_at_most_two_dimensions_is_in_the_family() {
        assert_eq!(shapes(2).len(), 4);
        let three = shapes(3);
        assert_eq!(three.len(), 7, "none, three single, three pairs; not the cube");
        assert!(!three.contains(&vec![true, true, true]));
    }
}
