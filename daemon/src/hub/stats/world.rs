//! What consumers already hold when a period's indicators are published: the audit's world.
//!
//! Every published revision of a month, quarter or year is a *node* with its tables and what it
//! counted ([`Published`]). An attacker reads them all and links them: a quarter's revision is
//! the sum of the month revisions it counted (its snapshot says which), a year's of its
//! quarters'; two revisions of one period count a finest cell alike where the same structures
//! contributed the same figures (one unknown; the attacker is granted knowing which). A new
//! revision — or a period's first publication — is audited in that whole system ([`Context`]):
//! none of its tables may narrow a withheld value of *any* node, nor a sensitive difference
//! between *any* two revisions of one period, past the protection range. Only the nodes
//! connected to the one being published (by sums or by revisions of one period) are read: a
//! month's first closing is connected to nothing, a year's revision to its whole year.
//!
//! A structure whose kind or département changed within a quarter or year is counted there under
//! its latest attributes, and in each sub-period under that sub-period's: the period's cells are
//! then not the sums of the same cells of its sub-periods. The attacker knows who moved (the
//! SIRET registry is public), so the links are kept exact with the mover's sub-period figures as
//! unknowns of their own ([`Move`]), which are one structure's figures and protected as such.
//!
//! A quarter or year is published only when each of its months' published revision counts what
//! the month's cells count now (`hub::periods`): otherwise the quarter would publish a late
//! report its month has not, and the quarter minus its months would be that report.

use std::collections::{BTreeMap, HashMap};

use passerelle_proto::v1;

use super::aggregates::{Contribution, StatCell};
use super::disclosure::sub_periods;
use super::family::{Linked, Shape, coords};
use super::revisions::{Fingerprint, Snapshot, sensitive_changes};
use super::tables::indicator_dims;

/// One published revision of a period's indicators.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    pub(super) period: String,
    pub(crate) revision: u32,
    /// Its family tables (by a subset of the family's dimensions, in its order).
    pub(super) tables: Vec<Linked>,
    /// What it counted, and which sub-period revisions.
    pub(crate) snapshot: Snapshot,
    /// The true value of each measure of its finest cells.
    pub(super) values: BTreeMap<Vec<String>, Vec<i64>>,
}

impl Published {
    /// Revision `revision` of `period`, published as `tables` (any dimension sets: those of the
    /// family are kept), having counted `snapshot`.
    pub(crate) fn new(period: &str, revision: u32, tables: &[v1::Table], snapshot: Snapshot) -> Self {
        let dims = indicator_dims();
        let tables = tables
            .iter()
            .filter(|t| {
                let mut at = dims.iter().filter(|d| t.by.contains(d));
                t.by.iter().all(|b| at.next() == Some(b))
            })
            .map(|t| {
                let shape: Shape = dims.iter().map(|d| t.by.contains(d)).collect();
                let coords = t.cells.iter().map(|c| coords(c, &shape)).collect();
                Linked { shape, cells: t.cells.clone(), coords }
            })
            .collect();
        Published { period: period.into(), revision, tables, values: snapshot.values(), snapshot }
    }

    /// The published table of `shape`.
    pub(super) fn table(&self, shape: &[bool]) -> &[v1::Cell] {
        self.tables.iter().find(|t| t.shape == shape).map_or(&[], |t| t.cells.as_slice())
    }
}

/// Every published revision of the periods of one year (months, quarters, the year).
#[derive(Debug, Clone, Default)]
pub(crate) struct World {
    nodes: Vec<Published>,
}

impl World {
    /// Adds a revision (at loading, and as soon as a publication stages it).
    pub(crate) fn push(&mut self, node: Published) {
        self.nodes.push(node);
    }

    /// The latest published revision of `period`.
    pub(crate) fn latest(&self, period: &str) -> Option<&Published> {
        self.nodes.iter().filter(|n| n.period == period).max_by_key(|n| n.revision)
    }

    fn find(&self, period: &str, revision: u32) -> Option<usize> {
        self.nodes.iter().position(|n| n.period == period && n.revision == revision)
    }
}

/// The revision being published, placed in the world.
#[derive(Debug, Clone)]
pub(crate) struct Root {
    pub(crate) period: String,
    pub(crate) revision: u32,
    /// What it counts (with the sub-period revisions it sums).
    pub(crate) snapshot: Snapshot,
}

/// What the audit of one publication reads besides the family's own tables: the world's nodes
/// connected to it. Node 0 is the family being published; node `i > 0` is `held[i - 1]`.
#[derive(Debug, Default)]
pub(super) struct Context<'w> {
    pub(super) held: Vec<&'w Published>,
    /// Per node: the nodes it is the sum of (empty: none, or not known).
    pub(super) kids: Vec<Vec<usize>>,
    /// Pairs of revisions of one period (older, newer), with the cells where their difference
    /// is sensitive.
    pub(super) pairs: Vec<(usize, usize, Vec<Vec<String>>)>,
    /// Per node, per finest cell: its unknown, shared by the revisions of a period that count
    /// the cell alike. Unknowns are numbered `0..classes`.
    pub(super) class: Vec<HashMap<Vec<String>, usize>>,
    pub(super) classes: usize,
    /// Structures a node counts in another finest cell than one of its sub-periods does.
    pub(super) moves: Vec<Move>,
    /// Finest cells whose revisions differ, as the structures behind them: each such class is
    /// the part no revision changed plus the changed structures' parts ([`Split`]).
    pub(super) splits: Vec<Split>,
    /// The changed structures' parts (one structure's figures each), to protect.
    pub(super) pieces: Vec<Piece>,
}

/// A class (a finest cell as some revisions count it) as the sum of the part of the structures
/// every revision of its period counts alike and one [`Piece`] per other structure it counts.
/// What the attacker who knows which structures changed has — so a late report only adds, a
/// removal only takes away, and a cell a removal emptied is 0.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Split {
    pub(super) class: usize,
    /// The unchanged structures' part (`None`: every structure of the cell changed).
    pub(super) stable: Option<usize>,
    /// Its changed structures' parts.
    pub(super) parts: Vec<usize>,
    /// The true totals of the class, of its stable part, per measure (for the residual of
    /// averaged stocks' rounding, normally 0).
    pub(super) truth: Vec<i64>,
    pub(super) stable_truth: Vec<i64>,
}

/// One structure's contribution to a finest cell in the revisions that count it alike.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Piece {
    pub(super) unknown: usize,
    pub(super) key: Vec<String>,
    /// Its figures per measure (a one-structure summary).
    pub(super) values: Vec<i64>,
}

/// A structure counted by sub-period `kid` of node `node` in the finest cell `from`, and by the
/// node in `to` (its latest attributes in the period): the node's `to` is the sum of its
/// sub-periods' `to` plus `values`, its `from` the sum of theirs minus `values`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Move {
    pub(super) node: usize,
    pub(super) kid: usize,
    pub(super) siret: String,
    pub(super) from: Vec<String>,
    pub(super) to: Vec<String>,
    /// The structure's figures in that sub-period, per measure (a one-structure summary).
    pub(super) values: Vec<i64>,
}

impl<'w> Context<'w> {
    /// Nothing published before (a table computed on its own).
    pub(super) fn alone() -> Self {
        Context { kids: vec![Vec::new()], class: vec![HashMap::new()], ..Context::default() }
    }

    /// The context of publishing `root` into `world`.
    pub(super) fn new(world: &'w World, root: &Root, min_persons: i64, protection: u32) -> Self {
        // Node 0 is the root; the world's nodes get `1 + index` — then only those connected to
        // the root are kept.
        let all = world.nodes.len() + 1;
        let period =
            |n: usize| if n == 0 { root.period.as_str() } else { world.nodes[n - 1].period.as_str() };
        let snapshot = |n: usize| if n == 0 { &root.snapshot } else { &world.nodes[n - 1].snapshot };
        let index = |p: &str, r: u32| -> Option<usize> {
            if p == root.period && r == root.revision { Some(0) } else { world.find(p, r).map(|i| i + 1) }
        };
        let kids: Vec<Vec<usize>> = (0..all)
            .map(|n| {
                let subs = sub_periods(period(n)).unwrap_or_default();
                let counted = &snapshot(n).counted;
                if subs.is_empty() || counted.len() != subs.len() {
                    return Vec::new();
                }
                let found: Vec<Option<usize>> = subs.iter().zip(counted).map(|(s, r)| index(s, *r)).collect();
                found.into_iter().collect::<Option<Vec<_>>>().unwrap_or_default()
            })
            .collect();
        // Connected to the root: through sums (either way) and revisions of one period.
        let mut keep = vec![false; all];
        keep[0] = true;
        let mut stack = vec![0usize];
        while let Some(n) = stack.pop() {
            let linked = (0..all).filter(|&m| {
                !keep[m] && (kids[n].contains(&m) || kids[m].contains(&n) || period(m) == period(n))
            });
            let next: Vec<usize> = linked.collect();
            for m in next {
                keep[m] = true;
                stack.push(m);
            }
        }
        let kept: Vec<usize> = (0..all).filter(|&n| keep[n]).collect();
        let renumber: HashMap<usize, usize> = kept.iter().enumerate().map(|(new, old)| (*old, new)).collect();
        let held = kept.iter().skip(1).map(|&n| &world.nodes[n - 1]).collect();
        let kids: Vec<Vec<usize>> =
            kept.iter().map(|&n| kids[n].iter().filter_map(|k| renumber.get(k).copied()).collect()).collect();
        // Unknowns: one per (period, finest cell, fingerprint).
        let mut classes: HashMap<(String, Vec<String>, Fingerprint), usize> = HashMap::new();
        let class: Vec<HashMap<Vec<String>, usize>> = kept
            .iter()
            .map(|&n| {
                snapshot(n)
                    .fingerprints()
                    .into_iter()
                    .map(|(key, print)| {
                        let next = classes.len();
                        let id = *classes.entry((period(n).to_string(), key.clone(), print)).or_insert(next);
                        (key, id)
                    })
                    .collect()
            })
            .collect();
        let mut classes_count = classes.len();
        let (splits, pieces) = split_changed(&kept, &period, &snapshot, &class, &mut classes_count);
        let mut moves = Vec::new();
        for (node, &n) in kept.iter().enumerate() {
            let placed: HashMap<&str, &[String]> = snapshot(n)
                .by_structure()
                .into_iter()
                .flat_map(|(key, by)| by.into_keys().map(move |siret| (siret, key)))
                .collect();
            for &kid in &kids[node] {
                for (from, by) in snapshot(kept[kid]).by_structure() {
                    for (siret, contribution) in by {
                        if let Some(to) = placed.get(siret)
                            && *to != from
                        {
                            let alone = StatCell { contributions: vec![contribution.clone()], latest_ms: 0 };
                            moves.push(Move {
                                node,
                                kid,
                                siret: siret.to_string(),
                                from: from.to_vec(),
                                to: to.to_vec(),
                                values: alone.summary().totals,
                            });
                        }
                    }
                }
            }
        }
        let mut pairs = Vec::new();
        for (a, &older) in kept.iter().enumerate() {
            for (b, &newer) in kept.iter().enumerate() {
                let revision = |n: usize| if n == 0 { root.revision } else { world.nodes[n - 1].revision };
                if a != b && period(older) == period(newer) && revision(older) < revision(newer) {
                    let cells = sensitive_changes(snapshot(older), snapshot(newer), min_persons, protection);
                    if !cells.is_empty() {
                        pairs.push((a, b, cells));
                    }
                }
            }
        }
        Context { held, kids, pairs, class, classes: classes_count, moves, splits, pieces }
    }

    /// The latest published revision of each of `period`'s sub-periods, if every one is.
    pub(super) fn sub_tables<'a>(world: &'a World, period: &str) -> Vec<&'a Published> {
        sub_periods(period).unwrap_or_default().iter().filter_map(|s| world.latest(s)).collect()
    }
}

/// Per (period, finest cell) whose kept revisions count it differently: every class split into
/// its unchanged part and its changed structures' parts. Unknowns are numbered from `*next`.
fn split_changed<'s>(
    kept: &[usize],
    period: &dyn Fn(usize) -> &'s str,
    snapshot: &dyn Fn(usize) -> &'s Snapshot,
    class: &[HashMap<Vec<String>, usize>],
    next: &mut usize,
) -> (Vec<Split>, Vec<Piece>) {
    type Print = (Vec<i64>, u32);
    /// A node's class at a cell, and its contributions there.
    type Counted = Option<(usize, BTreeMap<String, Contribution>)>;
    // Per (period, cell): each kept node's class and contributions there (absent: not counted).
    let mut cells: BTreeMap<(&str, Vec<String>), Vec<Counted>> = BTreeMap::new();
    let mut periods: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (node, &n) in kept.iter().enumerate() {
        periods.entry(period(n)).or_default().push(node);
    }
    for (p, nodes) in &periods {
        if nodes.len() < 2 {
            continue;
        }
        for (i, &node) in nodes.iter().enumerate() {
            for (key, by) in snapshot(kept[node]).by_structure() {
                let Some(&c) = class[node].get(key) else { continue };
                let entry = cells.entry((*p, key.to_vec())).or_insert_with(|| vec![None; nodes.len()]);
                entry[i] = Some((c, by.into_iter().map(|(s, x)| (s.to_string(), x.clone())).collect()));
            }
        }
    }
    let summary =
        |contributions: Vec<Contribution>| StatCell { contributions, latest_ms: 0 }.summary().totals;
    let (mut splits, mut pieces) = (Vec::new(), Vec::new());
    for ((_, key), counted) in cells {
        let classes: std::collections::BTreeSet<usize> = counted.iter().flatten().map(|(c, _)| *c).collect();
        let everywhere = counted.iter().all(Option::is_some);
        if classes.len() < 2 && everywhere {
            continue;
        }
        // Stable: counted alike by every revision of the period.
        let first = counted.iter().flatten().next().map(|(_, by)| by.clone()).unwrap_or_default();
        let stable: Vec<&Contribution> = first
            .values()
            .filter(|x| {
                counted.iter().all(|c| {
                    c.as_ref().and_then(|(_, by)| by.get(&x.siret)).map(|y| (&y.values, y.records))
                        == Some((&x.values, x.records))
                })
            })
            .collect();
        let stable_unknown = (!stable.is_empty()).then(|| {
            *next += 1;
            *next - 1
        });
        let stable_truth = summary(stable.iter().map(|x| (*x).clone()).collect());
        let stable_sirets: Vec<&str> = stable.iter().map(|x| x.siret.as_str()).collect();
        let mut ids: BTreeMap<(String, Print), usize> = BTreeMap::new();
        let mut done = std::collections::BTreeSet::new();
        for (c, by) in counted.iter().flatten() {
            if !done.insert(*c) {
                continue;
            }
            let mut parts = Vec::new();
            for x in by.values().filter(|x| !stable_sirets.contains(&x.siret.as_str())) {
                let id = *ids.entry((x.siret.clone(), (x.values.clone(), x.records))).or_insert_with(|| {
                    *next += 1;
                    pieces.push(Piece {
                        unknown: *next - 1,
                        key: key.clone(),
                        values: summary(vec![x.clone()]),
                    });
                    *next - 1
                });
                parts.push(id);
            }
            splits.push(Split {
                class: *c,
                stable: stable_unknown,
                parts,
                truth: summary(by.values().cloned().collect()),
                stable_truth: stable_truth.clone(),
            });
        }
    }
    (splits, pieces)
}
