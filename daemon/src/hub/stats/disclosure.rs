//! What a table may show: primary rules per cell, complementary suppression within a table,
//! and the rule across periods.

use std::collections::HashMap;

use passerelle_proto::date::Month;
use passerelle_proto::v1::{self, Cell};

use super::aggregates::*;
use super::catalogue::*;
use super::tables::parse_period;
use crate::error::Result;

/// A cell must have at least this many contributing structures (the value `ListTables` reports).
pub(crate) const MIN_STRUCTURES: u32 = 3;
/// No structure may contribute more than this share of a cell's value, in percent (the value
/// `ListTables` reports).
pub(crate) const DOMINANCE_PERCENT: u32 = 85;

/// Primary disclosure control of every interior cell and total.
pub(super) fn disclose(
    spec: &Spec,
    entries: Vec<(Vec<String>, bool, Summary)>,
    min_persons: i64,
    protection: u32,
) -> Vec<Cell> {
    entries
        .into_iter()
        .map(|(key, total, summary)| {
            let values = summary.totals.clone();
            let value = |m: Measure| spec.total(&values, m);
            let structures = summary.structures;
            let reason = if structures < MIN_STRUCTURES {
                format!("fewer than {MIN_STRUCTURES} structures")
            } else if spec.persons.is_some_and(|p| value(p) < min_persons) {
                format!("fewer than {min_persons} persons")
            } else if let Some(m) = dominated(spec, &summary, false) {
                format!("one structure contributes more than {DOMINANCE_PERCENT} % of {}", m.name())
            } else if let Some(m) = paired(spec, &summary, false, protection) {
                pair_reason(m, protection)
            } else {
                String::new()
            };
            let mut measures: Vec<v1::Measure> = spec
                .measures
                .iter()
                .map(|m| v1::Measure {
                    name: m.name().into(),
                    value: reason.is_empty().then_some(value(*m)),
                    unit: m.unit().into(),
                    suppressed: reason.clone(),
                })
                .collect();
            measures.extend(spec.derived.iter().map(|d| v1::Measure {
                name: d.name().into(),
                value: if reason.is_empty() { d.value(spec, &values) } else { None },
                unit: d.unit().into(),
                suppressed: reason.clone(),
            }));
            let exits = value(Measure::ExitsTotal);
            let exits_reason = if !spec.exits_rule || !reason.is_empty() {
                None
            } else if exits > 0 && exits < min_persons {
                Some(format!("fewer than {min_persons} exits"))
            } else {
                // The exit figures add up (total = the four categories), so they are withheld
                // together, and the dynamic-exit rate with them.
                dominated(spec, &summary, true)
                    .map(|m| {
                        format!("one structure contributes more than {DOMINANCE_PERCENT} % of {}", m.name())
                    })
                    .or_else(|| paired(spec, &summary, true, protection).map(|m| pair_reason(m, protection)))
            };
            if let Some(why) = exits_reason {
                for m in measures.iter_mut().filter(|m| is_exit_figure(&m.name)) {
                    m.value = None;
                    m.suppressed.clone_from(&why);
                }
            }
            Cell {
                key,
                total,
                structures: reason.is_empty().then_some(structures),
                measures,
                suppressed: reason,
            }
        })
        .collect()
}

/// The first of the table's measures (its exit figures, or the others) of which one structure
/// contributes more than [`DOMINANCE_PERCENT`] of a positive total. Every additive measure is
/// looked at: a cell can be one structure's hires while its hours are spread.
fn dominated(spec: &Spec, summary: &Summary, exits: bool) -> Option<Measure> {
    spec.measures.iter().enumerate().filter(|(_, m)| m.is_exit() == exits).find_map(|(i, m)| {
        let total = spec.total(&summary.totals, *m);
        // Summaries from before per-measure maxima only knew the dominance measure's.
        let largest = summary.maxima.get(i).copied().unwrap_or(if *m == spec.dominance {
            summary.dominance_max
        } else {
            0
        });
        (total > 0 && largest * 100 > i64::from(DOMINANCE_PERCENT) * total).then_some(*m)
    })
}

/// The share of a cell two structures may make at most at protection level `protection`,
/// as the rules print it: `100 / (1 + p)` % truncated to hundredths ("86.95" at 15 %).
pub(crate) fn pair_limit(protection: u32) -> String {
    let hundredths = 1_000_000 / (100 + i64::from(protection));
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

/// The two largest of `values` (0 where there are fewer), for dominance and the pair rule.
pub(crate) fn top_two(values: impl IntoIterator<Item = i64>) -> [i64; 2] {
    let mut top = [0i64; 2];
    for x in values {
        if x > top[0] {
            top = [x, top[0]];
        } else if x > top[1] {
            top[1] = x;
        }
    }
    top
}

/// Whether `top` (the two largest contributions) makes more than [`pair_limit`] of `total`.
pub(crate) fn pair_exceeds(top: [i64; 2], total: i64, protection: u32) -> bool {
    total > 0 && (top[0] + top[1]) * (100 + i64::from(protection)) > 100 * total
}

/// The pair rule (the p % rule for the two largest): the rest of a cell must be at least
/// `p` × what its two largest structures make, on every measure. Otherwise one of those two,
/// knowing its own figure, bounds the other's within the protection range by the cell
/// alone — and so does a consumer once the two leave (a revision without them bounds their
/// joint figures by the cell published before). `(1, 85 %)` dominance does not cover it: two
/// structures at 60 % and 35 % pass it. `None` for summaries from before the second largest
/// was kept (rebuilt at open).
fn paired(spec: &Spec, summary: &Summary, exits: bool, protection: u32) -> Option<Measure> {
    spec.measures.iter().enumerate().filter(|(_, m)| m.is_exit() == exits).find_map(|(i, m)| {
        let total = spec.total(&summary.totals, *m);
        let top = [summary.maxima.get(i).copied().unwrap_or(0), summary.seconds.get(i).copied().unwrap_or(0)];
        pair_exceeds(top, total, protection).then_some(*m)
    })
}

fn pair_reason(m: Measure, protection: u32) -> String {
    format!("two structures contribute more than {} % of {}", pair_limit(protection), m.name())
}

/// Primary rules, then complementary suppression: the cells of a table without periods.
pub(super) fn controlled(
    spec: &Spec,
    entries: Vec<(Vec<String>, bool, Summary)>,
    by: &[String],
    min_persons: i64,
    protection: u32,
) -> Vec<Cell> {
    let mut cells = disclose(spec, entries, min_persons, protection);
    secondary_suppression(&mut cells, by.len());
    cells
}

/// The reason given to a cell hidden to protect another one.
pub(super) const SECONDARY: &str = "secondary suppression: protects another suppressed cell";
/// The reason given to exit figures hidden to protect other exit figures.
pub(super) const SECONDARY_EXITS: &str = "secondary suppression: protects other exit figures";
/// The reason given to a period cell hidden to protect one of its months or quarters.
pub(super) const SECONDARY_PERIOD: &str = "secondary suppression: protects a suppressed month or quarter";

/// Whether a suppression reason is a primary rule's (the cell or figure is sensitive itself), not
/// a complement's: the audit protects primary suppressions, as τ-ARGUS does. A complement is
/// withheld only so that a primary value cannot be recomputed; what the attacker learns about it
/// (e.g. a quarter at least the sum of its published months) matters only through the primary
/// values it protects, which are audited.
pub(super) fn is_primary(reason: &str) -> bool {
    !reason.is_empty() && !reason.starts_with("secondary suppression")
}

/// Whether the whole cell is withheld.
pub(super) fn cell_hidden(cell: &Cell) -> bool {
    !cell.suppressed.is_empty()
}

/// Whether a measure of a disclosed cell, by its name, is an exit figure.
fn is_exit_figure(name: &str) -> bool {
    INDICATORS.measures.iter().any(|m| m.is_exit() && m.name() == name)
        || INDICATORS.derived.iter().any(|d| d.is_exit() && d.name() == name)
}

/// Whether the cell has exit figures (indicators tables).
pub(super) fn has_exits(cell: &Cell) -> bool {
    cell.measures.iter().any(|m| m.name == Measure::ExitsTotal.name())
}

/// Whether the cell's exit figures are withheld (with the cell, or on their own).
pub(super) fn exits_hidden(cell: &Cell) -> bool {
    cell_hidden(cell)
        || cell.measures.iter().any(|m| m.name == Measure::ExitsTotal.name() && m.value.is_none())
}

pub(super) fn hide_cell(cell: &mut Cell, reason: &str) {
    cell.suppressed = reason.into();
    cell.structures = None;
    for m in &mut cell.measures {
        m.value = None;
        m.suppressed = reason.into();
    }
}

pub(super) fn hide_exits(cell: &mut Cell, reason: &str) {
    for m in cell.measures.iter_mut().filter(|m| is_exit_figure(&m.name)) {
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
pub(super) fn temporal_suppression<C: AsRef<[Cell]>>(cells: &mut [Cell], children: &[C]) {
    if children.is_empty() {
        return;
    }
    let by_key: Vec<HashMap<&[String], &Cell>> =
        children.iter().map(|child| child.as_ref().iter().map(|c| (c.key.as_slice(), c)).collect()).collect();
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
pub(crate) fn sub_periods(period: &str) -> Result<Vec<String>> {
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
pub(super) fn lines_of(cells: &[Cell], dims: usize) -> Vec<(Vec<usize>, usize)> {
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
pub(super) fn secondary_suppression(cells: &mut [Cell], dims: usize) {
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
pub(super) fn complement(
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
