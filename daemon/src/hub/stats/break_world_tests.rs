//! Attacks on the audited world (test-only module): a consumer holding every revision of every
//! period, or a member planting reports, against the acceptance rule of issue 14. Each attack
//! that succeeds is kept `#[ignore]`d with the figures it recovers; each the defence withstands
//! is a plain test.
//!
//! The attacker here is [`Attacker`]: every table of every node it is given (a node is one
//! revision of one period), one unknown per finest cell per node, shared between two revisions
//! of one period outside the cells the attacker knows changed, quarters the sums of their
//! months (flows), and — what the audit's model leaves out — *orders*: where the attacker knows
//! a change only added (a late report) or only took away (a removal), the finest cell of one
//! revision is at most the same cell of the other, on every measure (the change is a
//! structure's figures, all ≥ 0).

use std::collections::BTreeMap;

use passerelle_proto::date::Month;
use passerelle_proto::v1::{GetTableRequest, StructureKind, Table};

use super::audit::{Interval, System, Term, protects};
use super::audit_tests::{Reporter, coords, matches, one_month, publish, push, read_all, report};
use super::catalogue::{Agg, INDICATORS};
use super::revision_tests::read_revision;
use crate::hub::Hub;

/// A finest cell: (département, kind).
type At = [String; 2];

fn at(departement: &str, kind: &str) -> At {
    [departement.to_string(), kind.to_string()]
}

fn month(m: u8) -> Month {
    Month { year: 2026, month: m }
}

/// The attacker holding `nodes` (each every table of one revision of one period).
#[derive(Default)]
struct Attacker {
    nodes: Vec<Vec<Table>>,
    /// (older, newer, changed): `newer` counts every finest cell but `changed` as `older` does.
    shares: Vec<(usize, usize, Vec<At>)>,
    /// (whole, parts): a quarter's revision as the sum of the month revisions it counted
    /// (flows only).
    sums: Vec<(usize, Vec<usize>)>,
    /// (lower, higher, cell): the cell of node `lower` is at most the same cell of `higher`,
    /// on every measure (a change the attacker knows only added, or only took away).
    orders: Vec<(usize, usize, At)>,
    /// (whole, kid, from, to): a structure counted by sub-period `kid` at `from` and by `whole`
    /// at `to` (it moved within the period): its figures there are an unknown of their own, at
    /// most `kid`'s cell, taken out of `from` and put into `to` in the sum (flows only).
    moves: Vec<(usize, usize, At, At)>,
    /// (newer, older, cell, move): what changed at `cell` between two revisions is that
    /// mover's figures (the attacker knows who reported late).
    links: Vec<(usize, usize, At, usize)>,
}

impl Attacker {
    fn node(&mut self, tables: Vec<Table>) -> usize {
        self.nodes.push(tables);
        self.nodes.len() - 1
    }

    /// The interval of `Σ coefficient × cell` over `objective` (node, cell or margin,
    /// coefficient) and movers' parts `moved`, for measure `measure`.
    fn range(
        &self,
        measure: usize,
        objective: &[(usize, At, f64)],
        moved: &[usize],
    ) -> anyhow::Result<Interval> {
        self.solved(measure)?.range(objective, moved)
    }

    /// The system of measure `measure`, solved once (questions are then warm starts).
    fn solved(&self, measure: usize) -> anyhow::Result<Solved> {
        let m = &INDICATORS.measures[measure];
        let mut system = System::default();
        let mut unknowns: Vec<BTreeMap<At, usize>> = Vec::new();
        for (n, tables) in self.nodes.iter().enumerate() {
            let finest = tables
                .iter()
                .find(|t| t.by == ["departement", "kind"])
                .ok_or_else(|| anyhow::anyhow!("no département × kind table"))?;
            let mut these = BTreeMap::new();
            for cell in finest.cells.iter().filter(|c| !c.total) {
                let here = coords(finest, &cell.key);
                let shared = self
                    .shares
                    .iter()
                    .filter(|(older, newer, changed)| *newer == n && *older < n && !changed.contains(&here))
                    .find_map(|(older, _, _)| unknowns[*older].get(&here).copied());
                these.insert(here, shared.unwrap_or_else(|| system.unknown()));
            }
            unknowns.push(these);
        }
        let members = |n: usize, cell: &At| -> Vec<Term> {
            unknowns[n].iter().filter(|(k, _)| matches(k, cell)).map(|(_, x)| (*x, 1.0)).collect()
        };
        for (n, tables) in self.nodes.iter().enumerate() {
            for table in tables {
                for cell in &table.cells {
                    let Some(v) = cell.measures.iter().find(|x| x.name == m.name()).and_then(|x| x.value)
                    else {
                        continue;
                    };
                    system.equal(members(n, &coords(table, &cell.key)), v as f64);
                }
            }
        }
        let flow = m.agg() == Agg::Sum;
        let y: Vec<usize> = self.moves.iter().map(|_| system.unknown()).collect();
        if flow {
            for (i, (_, kid, from, _)) in self.moves.iter().enumerate() {
                let cell = *unknowns[*kid].get(from).ok_or_else(|| anyhow::anyhow!("{from:?} listed"))?;
                let rest = system.unknown();
                system.equal(vec![(cell, 1.0), (y[i], -1.0), (rest, -1.0)], 0.0);
            }
            for (newer, older, cell, i) in &self.links {
                let mut terms: Vec<Term> =
                    unknowns[*newer].get(cell).map(|x| (*x, 1.0)).into_iter().collect();
                terms.extend(unknowns[*older].get(cell).map(|x| (*x, -1.0)));
                terms.push((y[*i], -1.0));
                system.equal(terms, 0.0);
            }
        }
        if flow {
            for (whole, parts) in &self.sums {
                let mut keys: Vec<&At> = unknowns[*whole].keys().collect();
                keys.extend(parts.iter().flat_map(|p| unknowns[*p].keys()));
                keys.sort();
                keys.dedup();
                for key in keys {
                    let mut terms: Vec<Term> =
                        parts.iter().filter_map(|p| unknowns[*p].get(key).map(|x| (*x, 1.0))).collect();
                    terms.extend(unknowns[*whole].get(key).map(|x| (*x, -1.0)));
                    for (i, (w, kid, from, to)) in self.moves.iter().enumerate() {
                        if w == whole && parts.contains(kid) {
                            if key == to {
                                terms.push((y[i], 1.0));
                            } else if key == from {
                                terms.push((y[i], -1.0));
                            }
                        }
                    }
                    system.equal(terms, 0.0);
                }
            }
        }
        for (lower, higher, cell) in &self.orders {
            // higher − lower − slack = 0, slack ≥ 0 (a missing cell is 0).
            let mut terms: Vec<Term> = unknowns[*higher].get(cell).map(|x| (*x, 1.0)).into_iter().collect();
            terms.extend(unknowns[*lower].get(cell).map(|x| (*x, -1.0)));
            terms.push((system.unknown(), -1.0));
            system.equal(terms, 0.0);
        }
        let prepared = system.prepare().map_err(|_| anyhow::anyhow!("published cells are inconsistent"))?;
        Ok(Solved { prepared, unknowns, y })
    }

    /// Every measure whose true value `truth(measure)` (of `objective`) is narrowed past 15 %,
    /// described.
    fn exposed(
        &self,
        objective: &[(usize, At, f64)],
        truth: impl Fn(usize) -> i64,
    ) -> anyhow::Result<Vec<String>> {
        self.exposed_moved(objective, &[], truth)
    }

    /// [`Attacker::exposed`], the objective including movers' parts `moved`.
    fn exposed_moved(
        &self,
        objective: &[(usize, At, f64)],
        moved: &[usize],
        truth: impl Fn(usize) -> i64,
    ) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        for (measure, m) in INDICATORS.measures.iter().enumerate() {
            let value = truth(measure);
            if value <= 0 {
                continue;
            }
            let interval = self.range(measure, objective, moved)?;
            if !protects(value, interval, 15) {
                out.push(format!(
                    "{} = {value}, narrowed to [{:.2}, {:.2}]",
                    m.name(),
                    interval.low,
                    interval.high
                ));
            }
        }
        Ok(out)
    }
}

/// An attacker's system for one measure, solved.
struct Solved {
    prepared: super::audit::Prepared,
    unknowns: Vec<BTreeMap<At, usize>>,
    y: Vec<usize>,
}

impl Solved {
    fn terms(&self, objective: &[(usize, At, f64)], moved: &[usize]) -> Vec<Term> {
        let mut terms: Vec<Term> = Vec::new();
        for (n, cell, c) in objective {
            let members = self.unknowns[*n].iter().filter(|(k, _)| matches(k, cell));
            terms.extend(members.map(|(_, x)| (*x, *c)));
        }
        terms.extend(moved.iter().map(|i| (self.y[*i], 1.0)));
        terms
    }

    fn range(&self, objective: &[(usize, At, f64)], moved: &[usize]) -> anyhow::Result<Interval> {
        let terms = self.terms(objective, moved);
        self.prepared.range(&terms).map_err(|_| anyhow::anyhow!("published cells are inconsistent"))
    }

    /// Whether `value` keeps its range (the audit's fast check).
    fn protects(&self, objective: &[(usize, At, f64)], moved: &[usize], value: i64) -> bool {
        self.prepared.protects(&self.terms(objective, moved), value, 15)
    }
}

/// Three structures per cell at 44 × AI, 53 × ACI and 53 × AI (every rule met), January only.
fn background() -> Vec<Reporter> {
    use StructureKind::{Aci, Ai};
    let mut layout = Vec::new();
    for (i, (dep, kind)) in [("44", Ai), ("53", Aci), ("53", Ai)].into_iter().enumerate() {
        for j in 0..3 {
            let n = (i * 3 + j) as i64;
            layout.push(one_month(dep, kind, report(8 + n, 1200 + 37 * n, 2 + n % 3, [1, 1, n % 2, 1])));
        }
    }
    layout
}

/// Two structures at 44 × ACI (hours 600 and 500) and a small third one (hours 60).
fn two_and_a_small_one() -> (Reporter, Reporter, Reporter) {
    use StructureKind::Aci;
    (
        one_month("44", Aci, report(8, 600, 2, [1, 1, 0, 1])),
        one_month("44", Aci, report(7, 500, 2, [1, 0, 1, 1])),
        one_month("44", Aci, report(1, 60, 1, [0, 0, 0, 1])),
    )
}

/// **Was a leak (fixed: revisions modelled as structures, `world::Split`, and the pair
/// rule): a removal only takes away.** 44 × ACI counts three structures in January (hours
/// 600, 500 and 60): published at revision 0 (1,160 hours, 16 employees, 1,120 ETP
/// hundredths). The small one is removed; revision 1 withholds 44 × ACI (two structures left:
/// 1,100 hours, 15 employees, 1,050 ETP hundredths) and, since every other finest cell is
/// unchanged and was published, every margin through it. The audit's model gives 44 × ACI at
/// revision 1 an unknown of its own (`stats::revisions`: "the exact projection of unchanged
/// part + each revision's changed part, all ≥ 0") — but a removed structure's part in the new
/// revision is *0*, not free: the attacker who knows the structure left (that it changed is
/// granted by the design; a member's removal is no secret) has `cell(r1) ≤ cell(r0)` on every
/// measure. Recovered, for the month and for its quarter (revision 1 of each):
///
/// - hours = 1,100, narrowed to [0, 1,160] (the range needs 1,265),
/// - employees = 15, narrowed to [0, 16] (needs 17.25),
/// - ETP hundredths = 1,050, narrowed to [0, 1,120] (needs 1,207.5).
///
/// (Without the order, the audit's model, nothing comes out: the test checks that first.)
#[test]
fn a_removal_bounds_the_withheld_cell_by_its_earlier_revision() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (a, b, small) = two_and_a_small_one();
    let mut layout = background();
    let gone = layout.len() + 2;
    layout.extend([a.clone(), b.clone(), small.clone()]);
    let hub = publish(dir.path(), &layout, 15)?;
    let cell = at("44", "aci");
    let mut attacker = Attacker::default();
    let r0 = attacker.node(read_revision(&hub, "2026-01", 0)?);
    hub.remove_member(&super::cells_tests::siret(1000 + gone), None)?;
    assert_eq!(hub.revise_month(month(1))?, 1);
    let r1 = attacker.node(read_revision(&hub, "2026-01", 1)?);
    attacker.shares.push((r0, r1, vec![cell.clone()]));
    let truth = |m: usize| a.months[&month(1)][m] + b.months[&month(1)][m];
    // Without the order, the audit's own model: nothing comes out.
    let exposed = attacker.exposed(&[(r1, cell.clone(), 1.0)], truth)?;
    assert!(exposed.is_empty(), "the audit's model itself: {exposed:#?}");
    attacker.orders.push((r1, r0, cell.clone()));
    let mut exposed = attacker.exposed(&[(r1, cell.clone(), 1.0)], truth)?;
    // The quarter (January only here) the same, revision 1 against revision 0.
    let mut quarter = Attacker::default();
    let q0 = quarter.node(read_revision(&hub, "2026-Q1", 0)?);
    let q1 = quarter.node(read_revision(&hub, "2026-Q1", 1)?);
    quarter.shares.push((q0, q1, vec![cell.clone()]));
    quarter.orders.push((q1, q0, cell.clone()));
    exposed.extend(quarter.exposed(&[(q1, cell, 1.0)], truth)?.into_iter().map(|e| format!("2026-Q1 {e}")));
    assert!(exposed.is_empty(), "44 × ACI at revision 1, bounded by revision 0: {exposed:#?}");
    Ok(())
}

/// A late report only adds: 44 × ACI counts two structures in January (hours 600 and 500),
/// withheld at revision 0; a third, small, reports late (hours 60). Had revision 1 published
/// 44 × ACI (three structures, 1,160 hours), the attacker who knows the late structure was
/// absent from revision 0 would have `cell(r0) ≤ cell(r1)` and revision 0's 1,100 hours
/// narrowed to [0, 1,160]. Holds here: the audit's greedy complements withhold the revised
/// 44 × ACI first (fewest structures), and then every margin through it. Where they cannot,
/// it leaks: see `a_late_report_with_no_hires_bounds_the_earlier_withheld_hires`.
#[test]
fn a_late_report_into_a_withheld_cell_is_withheld_with_its_margins() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (a, b, small) = two_and_a_small_one();
    let mut layout = background();
    layout.extend([a.clone(), b.clone()]);
    let hub = publish(dir.path(), &layout, 15)?;
    let cell = at("44", "aci");
    let mut attacker = Attacker::default();
    let r0 = attacker.node(read_revision(&hub, "2026-01", 0)?);
    push(&hub, 50, 50, &small, 1)?;
    assert_eq!(hub.revise_month(month(1))?, 1);
    let r1 = attacker.node(read_revision(&hub, "2026-01", 1)?);
    attacker.shares.push((r0, r1, vec![cell.clone()]));
    let truth = |m: usize| a.months[&month(1)][m] + b.months[&month(1)][m];
    let exposed = attacker.exposed(&[(r0, cell.clone(), 1.0)], truth)?;
    assert!(exposed.is_empty(), "the audit's model itself: {exposed:#?}");
    attacker.orders.push((r0, r1, cell.clone()));
    let exposed = attacker.exposed(&[(r0, cell, 1.0)], truth)?;
    assert!(exposed.is_empty(), "44 × ACI at revision 0, bounded by revision 1: {exposed:#?}");
    Ok(())
}

/// Prints the département × kind table of `tables` for `measure` (under `AUDIT_DEBUG`).
fn debug(label: &str, tables: &[Table], measure: &str) {
    if std::env::var("AUDIT_DEBUG").is_err() {
        return;
    }
    for t in tables.iter().filter(|t| {
        t.by.is_empty() || t.by == ["departement", "kind"] || t.by == ["departement"] || t.by == ["kind"]
    }) {
        for c in &t.cells {
            let v = c.measures.iter().find(|m| m.name == measure).and_then(|m| m.value);
            eprintln!("{label} {:?} {:?} n={:?} {measure}={v:?} {}", t.by, c.key, c.structures, c.suppressed);
        }
    }
}

/// The late-report order attack again, 44 × ACI's two structures large (hours 5,000 each)
/// next to cells of about 1,200, so the greedy complements prefer other cells to the revised
/// 44 × ACI (three structures, 10,060 hours) when protecting the difference.
#[test]
fn a_late_report_next_to_a_large_withheld_cell() -> anyhow::Result<()> {
    use StructureKind::Aci;
    let dir = tempfile::tempdir()?;
    let a = one_month("44", Aci, report(30, 5000, 3, [2, 1, 1, 1]));
    let b = one_month("44", Aci, report(28, 5000, 3, [1, 2, 1, 1]));
    let small = one_month("44", Aci, report(1, 60, 1, [0, 0, 0, 1]));
    let mut layout = background();
    layout.extend([a.clone(), b.clone()]);
    let hub = publish(dir.path(), &layout, 15)?;
    let cell = at("44", "aci");
    let mut attacker = Attacker::default();
    let r0 = attacker.node(read_revision(&hub, "2026-01", 0)?);
    push(&hub, 50, 50, &small, 1)?;
    assert_eq!(hub.revise_month(month(1))?, 1);
    let r1 = attacker.node(read_revision(&hub, "2026-01", 1)?);
    debug("r0", &attacker.nodes[r0], "hours_worked");
    debug("r1", &attacker.nodes[r1], "hours_worked");
    attacker.shares.push((r0, r1, vec![cell.clone()]));
    attacker.orders.push((r0, r1, cell.clone()));
    let truth = |m: usize| a.months[&month(1)][m] + b.months[&month(1)][m];
    let exposed = attacker.exposed(&[(r0, cell.clone(), 1.0)], truth)?;
    assert!(exposed.is_empty(), "44 × ACI at revision 0, bounded by revision 1: {exposed:#?}");
    let late = |m: usize| small.months[&month(1)][m];
    let exposed = attacker.exposed(&[(r1, cell.clone(), 1.0), (r0, cell, -1.0)], late)?;
    assert!(exposed.is_empty(), "the late report: {exposed:#?}");
    Ok(())
}

/// The decrease to 0: the only structure of 44 × EI (withheld at revision 0) is removed, so
/// revision 1 has no 44 × EI and every remaining cell meets the rules. Whatever revision 1
/// publishes, the attacker holding both (and the quarter's two revisions) must not get the
/// removed structure's figures back as revision 0's margins minus revision 1's.
#[test]
fn a_cell_emptied_by_a_removal_gives_its_structure_away_nowhere() -> anyhow::Result<()> {
    use StructureKind::Ei;
    let dir = tempfile::tempdir()?;
    let (a, b, small) = two_and_a_small_one();
    let alone = one_month("44", Ei, report(9, 900, 2, [1, 1, 1, 1]));
    let mut layout = background();
    let gone = layout.len() + 3;
    layout.extend([a, b, small, alone.clone()]);
    let hub = publish(dir.path(), &layout, 15)?;
    hub.remove_member(&super::cells_tests::siret(1000 + gone), None)?;
    assert_eq!(hub.revise_month(month(1))?, 1);
    let cell = at("44", "ei");
    let truth = |m: usize| alone.months[&month(1)][m];
    let mut exposed = Vec::new();
    for period in ["2026-01", "2026-Q1"] {
        let mut attacker = Attacker::default();
        let r0 = attacker.node(read_revision(&hub, period, 0)?);
        let r1 = attacker.node(read_revision(&hub, period, 1)?);
        debug(&format!("{period} r0"), &attacker.nodes[r0], "hours_worked");
        debug(&format!("{period} r1"), &attacker.nodes[r1], "hours_worked");
        attacker.shares.push((r0, r1, vec![cell.clone()]));
        attacker.orders.push((r1, r0, cell.clone()));
        for e in attacker.exposed(&[(r0, cell.clone(), 1.0)], truth)? {
            exposed.push(format!("{period} {e}"));
        }
    }
    assert!(exposed.is_empty(), "the removed structure: {exposed:#?}");
    Ok(())
}

/// Flows of a steady structure: `employees`, 100 hours each, one hire, one exit.
fn flows(employees: i64) -> [i64; 9] {
    report(employees, 100 * employees, 1, [1, 0, 0, 0])
}

/// The moves of the mover (structure 0) in January and February, from 72 × ACI to 44 × ACI.
fn moved_layout() -> Vec<Reporter> {
    use super::audit_tests::steady;
    use StructureKind::{Aci, Ai, Ei};
    let all = [1, 2, 3];
    let mut layout = vec![steady("72", Aci, &[1, 2], flows(11)), steady("44", Aci, &[3], flows(11))];
    for _ in 0..3 {
        layout.push(steady("72", Aci, &all, flows(10)));
        layout.push(steady("72", Ei, &all, flows(10)));
        layout.push(steady("44", Ai, &all, flows(20)));
        layout.push(steady("44", Aci, &all, flows(12)));
    }
    layout
}

/// A structure changing *département* within the quarter (72 × ACI in January and February,
/// 44 × ACI in March; the recent fix was tested on a change of kind): the quarter counts its
/// January and February under 44, its months under 72. The attacker who knows it moved links
/// every cell with its parts as unknowns and solves for them: its January, its February, both.
#[test]
fn a_structure_changing_departement_is_not_the_quarter_minus_its_months() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let layout = moved_layout();
    let hub = super::audit_tests::publish_as(dir.path(), &layout, 15, |i| if i == 1 { 0 } else { i })?;
    let mut attacker = Attacker::default();
    let months: Vec<usize> = ["2026-01", "2026-02", "2026-03"]
        .iter()
        .map(|p| Ok(attacker.node(read_all(&hub, p)?)))
        .collect::<anyhow::Result<_>>()?;
    let q = attacker.node(read_all(&hub, "2026-Q1")?);
    debug("Q", &attacker.nodes[q], "hours_worked");
    attacker.sums.push((q, months.clone()));
    let (from, to) = (at("72", "aci"), at("44", "aci"));
    for &m in &months[..2] {
        attacker.moves.push((q, m, from.clone(), to.clone()));
    }
    let part = |m: u8, measure: usize| {
        if INDICATORS.measures[measure].agg() == Agg::Sum { layout[0].months[&month(m)][measure] } else { 0 }
    };
    let mut exposed = Vec::new();
    for (moved, label) in [(vec![0, 1], "January + February"), (vec![0], "January"), (vec![1], "February")] {
        let truth = |measure: usize| moved.iter().map(|&i| part(i as u8 + 1, measure)).sum();
        for e in attacker.exposed_moved(&[], &moved, truth)? {
            exposed.push(format!("{label}: {e}"));
        }
    }
    assert!(exposed.is_empty(), "the mover's months: {exposed:#?}");
    // Published, not withheld whole.
    let quarter = &attacker.nodes[q];
    assert!(
        quarter.iter().any(|t| t.by.is_empty() && t.cells.iter().all(|c| c.suppressed.is_empty())),
        "the quarter's grand total is published"
    );
    Ok(())
}

/// A mover whose January report is late: January closes without it (revision 0), the quarter
/// waits for January's revision 1, which counts it under 72 × ACI while the quarter counts it
/// under 44 × ACI (its March). The attacker knows January's change at 72 × ACI *is* the mover's
/// January (it reported late), links it to the quarter's move, and solves for it.
#[test]
fn a_mover_reporting_late_is_not_its_revision_nor_the_quarter_minus_its_months() -> anyhow::Result<()> {
    use super::audit_tests::steady;
    use StructureKind::Aci;
    let dir = tempfile::tempdir()?;
    let layout = moved_layout();
    let mut hub = Hub::for_tests(dir.path());
    hub.config.protection_percent = 15;
    // Everyone's reports but the mover's January (reporter 0 reports February only at first).
    let mut early = layout.clone();
    early[0].months.remove(&month(1));
    for (i, r) in early.iter().enumerate() {
        push(&hub, i, if i == 1 { 0 } else { i }, r, 1)?;
    }
    hub.close_month(month(1), i64::MAX / 2)?;
    let late = steady("72", Aci, &[1], layout[0].months[&month(1)]);
    push(&hub, 0, 0, &late, 2)?;
    for m in [2, 3] {
        hub.close_month(month(m), i64::MAX / 2)?;
    }
    assert_eq!(hub.revise_month(month(1))?, 1);
    let mut attacker = Attacker::default();
    let jan0 = attacker.node(read_revision(&hub, "2026-01", 0)?);
    let jan1 = attacker.node(read_revision(&hub, "2026-01", 1)?);
    let feb = attacker.node(read_all(&hub, "2026-02")?);
    let mar = attacker.node(read_all(&hub, "2026-03")?);
    let q = attacker.node(read_all(&hub, "2026-Q1")?);
    assert!(attacker.nodes[q].iter().all(|t| t.revision == 0), "the quarter's first publication");
    debug("jan0", &attacker.nodes[jan0], "hours_worked");
    debug("jan1", &attacker.nodes[jan1], "hours_worked");
    debug("Q", &attacker.nodes[q], "hours_worked");
    let (from, to) = (at("72", "aci"), at("44", "aci"));
    attacker.shares.push((jan0, jan1, vec![from.clone()]));
    attacker.orders.push((jan0, jan1, from.clone()));
    attacker.sums.push((q, vec![jan1, feb, mar]));
    attacker.moves.push((q, jan1, from.clone(), to.clone()));
    attacker.moves.push((q, feb, from.clone(), to.clone()));
    attacker.links.push((jan1, jan0, from.clone(), 0));
    let part = |m: u8, measure: usize| {
        if INDICATORS.measures[measure].agg() == Agg::Sum { layout[0].months[&month(m)][measure] } else { 0 }
    };
    let mut exposed = Vec::new();
    for e in attacker.exposed_moved(&[], &[0], |x| part(1, x))? {
        exposed.push(format!("January: {e}"));
    }
    for e in attacker.exposed_moved(&[], &[1], |x| part(2, x))? {
        exposed.push(format!("February: {e}"));
    }
    for e in attacker.exposed_moved(&[], &[0, 1], |x| part(1, x) + part(2, x))? {
        exposed.push(format!("January + February: {e}"));
    }
    assert!(exposed.is_empty(), "the late mover: {exposed:#?}");
    Ok(())
}

/// What happens to a month after it closed.
#[derive(Debug, Clone)]
enum Event {
    /// A new structure reports late.
    Late(Reporter),
    /// Structure `i` is removed (its report leaves the cells).
    Remove(usize),
    /// Structure `i` corrects its report to these figures.
    Correct(usize, [i64; 9]),
}

/// A small deterministic generator (xorshift), so a found layout is reproducible by its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A random January: 3 to 14 structures over 2 départements × 3 kinds, and 1 or 2 events.
fn random_case(seed: u64) -> (Vec<Reporter>, Vec<Event>) {
    use StructureKind::{Aci, Ai, Ei};
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let deps = ["44", "53"];
    let kinds = [Ai, Aci, Ei];
    let reporter = |rng: &mut Rng| {
        let exits = [0, 0, 0, 0].map(|_: i64| rng.below(3) as i64);
        let v = report(2 + rng.below(20) as i64, 100 + rng.below(3000) as i64, rng.below(5) as i64, exits);
        one_month(deps[rng.below(2) as usize], kinds[rng.below(3) as usize], v)
    };
    let n = 3 + rng.below(12) as usize;
    let layout: Vec<Reporter> = (0..n).map(|_| reporter(&mut rng)).collect();
    let events = (0..1 + rng.below(2))
        .map(|_| match rng.below(4) {
            0 | 1 => Event::Late(reporter(&mut rng)),
            2 => Event::Remove(rng.below(n as u64) as usize),
            _ => {
                let i = rng.below(n as u64) as usize;
                let mut v = layout[i].months[&month(1)];
                // One measure, a small change (hires or hours), never below 0.
                let m = if rng.below(2) == 0 { 3 } else { 2 };
                v[m] = (v[m] + 1 + rng.below(3) as i64).max(0);
                Event::Correct(i, v)
            }
        })
        .collect::<Vec<_>>();
    // One event per structure (a removed structure corrects nothing).
    let mut seen = std::collections::BTreeSet::new();
    let events = events
        .into_iter()
        .filter(|e| match e {
            Event::Remove(i) | Event::Correct(i, _) => seen.insert(*i),
            Event::Late(_) => true,
        })
        .collect();
    (layout, events)
}

/// Plays `events` on a hub publishing `layout`, revises January, and attacks revision 0 and
/// revision 1 together: every primary-withheld value of either, and every change of one or two
/// structures (at a finest cell, a margin or the total). With `orders`, the attacker also uses
/// that a cell only late reports changed only grew, and one only removals changed only shrank.
/// With `excuse`, a value is not counted when revision 0 (with the orders) already narrowed it
/// as much — the audit's own excuse (`audit::keeps`).
fn attack_case(
    layout: &[Reporter],
    events: &[Event],
    orders: bool,
    excuse: bool,
) -> anyhow::Result<Vec<String>> {
    use super::audit::keeps;
    use super::disclosure::is_primary;
    use passerelle_proto::codes::slug_of;
    let dir = tempfile::tempdir()?;
    let hub = publish(dir.path(), layout, 15)?;
    let place = |r: &Reporter| at(&r.departement, slug_of::<StructureKind>(r.kind));
    // (id, cell, values) before and after.
    let before: Vec<(usize, At, [i64; 9])> =
        layout.iter().enumerate().map(|(i, r)| (i, place(r), r.months[&month(1)])).collect();
    let mut after = before.clone();
    // Per finest cell: (structures changed, only late, only removals).
    let mut changed: BTreeMap<At, (Vec<usize>, bool, bool)> = BTreeMap::new();
    for (e, event) in events.iter().enumerate() {
        match event {
            Event::Late(r) => {
                let id = 100 + e;
                push(&hub, id, id, r, 1)?;
                after.push((id, place(r), r.months[&month(1)]));
                let c = changed.entry(place(r)).or_insert((Vec::new(), true, true));
                c.0.push(id);
                c.2 = false;
            }
            Event::Remove(i) => {
                hub.remove_member(&super::cells_tests::siret(1000 + i), None)?;
                after.retain(|(id, _, _)| id != i);
                let c = changed.entry(place(&layout[*i])).or_insert((Vec::new(), true, true));
                c.0.push(*i);
                c.1 = false;
            }
            Event::Correct(i, v) => {
                let mut r = layout[*i].clone();
                r.months.insert(month(1), *v);
                push(&hub, *i, *i, &r, 2)?;
                for x in after.iter_mut().filter(|(id, _, _)| id == i) {
                    x.2 = *v;
                }
                let c = changed.entry(place(&r)).or_insert((Vec::new(), true, true));
                c.0.push(*i);
                c.1 = false;
                c.2 = false;
            }
        }
    }
    if hub.revise_month(month(1)).is_err() {
        return Ok(Vec::new()); // nothing changed (a correction to the same figures)
    }
    let mut attacker = Attacker::default();
    let r0 = attacker.node(read_revision(&hub, "2026-01", 0)?);
    let r1 = attacker.node(read_revision(&hub, "2026-01", 1)?);
    attacker.shares.push((r0, r1, changed.keys().cloned().collect()));
    if orders {
        for (cell, (_, late, removed)) in &changed {
            if *late {
                attacker.orders.push((r0, r1, cell.clone()));
            } else if *removed {
                attacker.orders.push((r1, r0, cell.clone()));
            }
        }
    }
    let mut prior = Attacker {
        nodes: attacker.nodes.clone(),
        shares: attacker.shares.clone(),
        orders: attacker.orders.clone(),
        ..Attacker::default()
    };
    for t in &mut prior.nodes[r1] {
        for c in &mut t.cells {
            for m in &mut c.measures {
                m.value = None;
            }
        }
    }
    let excused =
        |m: usize, objective: &[(usize, At, f64)], value: i64, interval: Interval| -> anyhow::Result<bool> {
            Ok(excuse && keeps(value, interval, prior.range(m, objective, &[])?, 15))
        };
    let truth = |rows: &[(usize, At, [i64; 9])], cell: &At, m: usize| -> i64 {
        rows.iter().filter(|(_, c, _)| matches(c, cell)).map(|(_, _, v)| v[m]).sum()
    };
    let mut exposed = Vec::new();
    for (measure, m) in INDICATORS.measures.iter().enumerate() {
        let mut asked: Vec<(usize, At)> = Vec::new();
        for (n, rows) in [(r0, &before), (r1, &after)] {
            for table in &attacker.nodes[n] {
                for cell in &table.cells {
                    let here = coords(table, &cell.key);
                    let Some(shown) = cell.measures.iter().find(|x| x.name == m.name()) else { continue };
                    if shown.value.is_some()
                        || !is_primary(&shown.suppressed)
                        || asked.contains(&(n, here.clone()))
                    {
                        continue;
                    }
                    asked.push((n, here.clone()));
                    let value = truth(rows, &here, measure);
                    if value <= 0 {
                        continue;
                    }
                    let objective = [(n, here.clone(), 1.0)];
                    let interval = attacker.range(measure, &objective, &[])?;
                    if !protects(value, interval, 15) && !excused(measure, &objective, value, interval)? {
                        exposed.push(format!(
                            "r{n} {here:?} {} = {value}, narrowed to [{:.2}, {:.2}]",
                            m.name(),
                            interval.low,
                            interval.high
                        ));
                    }
                }
            }
        }
        // Changes of one or two structures, wherever they add up.
        let mut cells: Vec<At> = Vec::new();
        for key in changed.keys() {
            for c in [key.clone(), at(&key[0], "*"), at("*", &key[1]), at("*", "*")] {
                if !cells.contains(&c) {
                    cells.push(c);
                }
            }
        }
        for cell in cells {
            let who: std::collections::BTreeSet<usize> =
                changed.iter().filter(|(k, _)| matches(k, &cell)).flat_map(|(_, c)| c.0.clone()).collect();
            if who.len() >= 3 {
                continue;
            }
            let delta = truth(&after, &cell, measure) - truth(&before, &cell, measure);
            if delta == 0 {
                continue;
            }
            let sign = delta.signum() as f64;
            let objective = [(r1, cell.clone(), sign), (r0, cell.clone(), -sign)];
            let interval = attacker.range(measure, &objective, &[])?;
            if !protects(delta.abs(), interval, 15) && !excused(measure, &objective, delta.abs(), interval)? {
                exposed.push(format!(
                    "r1 − r0 {cell:?} {} = {delta}, narrowed to [{:.2}, {:.2}] (sign-adjusted)",
                    m.name(),
                    interval.low,
                    interval.high
                ));
            }
        }
    }
    Ok(exposed)
}

/// Runs `attack_case` on seeds `BREAK_FROM..BREAK_FROM + BREAK_CASES` (default `0..cases`).
fn search(cases: u64, orders: bool, excuse: bool) -> anyhow::Result<()> {
    let cases: u64 = std::env::var("BREAK_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(cases);
    let from: u64 = std::env::var("BREAK_FROM").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut found = Vec::new();
    for seed in from..from + cases {
        let (layout, events) = random_case(seed);
        let exposed = attack_case(&layout, &events, orders, excuse)?;
        if !exposed.is_empty() {
            found.push(format!("seed {seed}: {layout:?} {events:?}\n{exposed:#?}"));
        }
    }
    anyhow::ensure!(found.is_empty(), "{} of {cases} leak:\n{}", found.len(), found.join("\n"));
    Ok(())
}

/// Random search, the audit's own model and its own excuse (`keeps`): late reports, removals
/// and small corrections of one measure in a closed month, revision 1 held with revision 0
/// (seeds 0 to 699 were run this way: none leaks; `BREAK_CASES`, `BREAK_FROM` for more).
#[test]
fn random_revisions_isolate_nothing_in_the_audits_model() -> anyhow::Result<()> {
    search(4, false, true)
}

/// Random search, the audit's model without its excuse: 4 of 700 seeds leak, every time a
/// published cell of revision 0 bounding what two structures make (see
/// `two_removals_from_a_published_cell_bound_their_joint_contribution`).
#[test]
#[ignore = "slow search (~80 s); the seeds it finds are revisions bounded by an earlier revision published before the change (audit::keeps), see ARCHITECTURE"]
fn random_revisions_isolate_nothing_without_the_excuse() -> anyhow::Result<()> {
    search(200, false, false)
}

/// Random search, the attacker who knows a late report only adds and a removal only takes
/// away: 8 of 200 seeds leak (seeds 34, 88, 89, 94, 132, 148, 159, 174).
#[test]
#[ignore = "slow search (~80 s); the seeds it finds are revisions bounded by an earlier revision published before the change (audit::keeps), see ARCHITECTURE"]
fn random_revisions_isolate_nothing_with_orders() -> anyhow::Result<()> {
    search(200, true, false)
}

/// **Was a leak (fixed by the pair rule at revision 0): two removals from a published cell.** Seed 148 of the
/// random search: 44 × EI counts three structures in January (hours 231, 2,821 and 2,271; ETP
/// hundredths 140, 1,400, 840; employees 2, 20, 12), published at revision 0 (5,323 hours; no
/// structure over 85 %). The two large ones are removed; revision 1 withholds 44 × EI (one
/// structure). What changed — the two removed structures' joint contribution, a change of
/// fewer than three structures — is at most revision 0's cell, since revision 1's is ≥ 0:
///
/// - hours: 5,092, narrowed to [−∞, 5,323] (the range needs 5,855.8),
/// - ETP hundredths: 2,240, narrowed to [−∞, 2,380] (needs 2,576),
/// - employees: 32, narrowed to [−∞, 34] (needs 36.8),
///
/// and the same at 44 × * and * × EI. The audit computes that interval, then lets it pass
/// through `audit::keeps`: the "before" system (every node but revision 1's cells) already
/// bounds the difference by revision 0's cell, so the revision is not blamed — but nothing can
/// be withheld in revision 1 to reopen it. The bound is revision 0's: a published cell whose
/// two largest contributors make more than 1 / 1.15 ≈ 87 % of it gives their joint
/// contribution within the range as soon as they leave (or are known to be the two largest).
#[test]
fn two_removals_from_a_published_cell_bound_their_joint_contribution() -> anyhow::Result<()> {
    let (layout, events) = random_case(148);
    assert!(matches!(events.as_slice(), [Event::Remove(3), Event::Remove(2)]), "{events:?}");
    let exposed = attack_case(&layout, &events, false, false)?;
    assert!(exposed.is_empty(), "{exposed:#?}");
    Ok(())
}

/// **Was a leak (fixed: `world::Split` makes a late report only add): a late report with no
/// hires.** Seed 174 of the random search, the order-aware
/// attacker: at revision 0, * × EI (two structures: hires 2 and 1) is withheld; a third EI
/// structure (44) reports late with 0 hires, and revision 1 publishes * × EI's hires: 3. The
/// late report only added (≥ 0 on every measure), so revision 0's withheld hires are at most
/// 3 — narrowed to [0, 3], the range needing 3.45: the upper end is the exact value.
#[test]
fn a_late_report_with_no_hires_bounds_the_earlier_withheld_hires() -> anyhow::Result<()> {
    let (layout, events) = random_case(174);
    assert!(matches!(events.as_slice(), [Event::Late(_)]), "{events:?}");
    assert!(attack_case(&layout, &events, false, false)?.is_empty(), "the audit's model itself");
    let exposed = attack_case(&layout, &events, true, false)?;
    assert!(exposed.is_empty(), "{exposed:#?}");
    Ok(())
}

/// A chain of revisions of one month, each with one late report in 44 × ACI (three structures
/// at revision 0, published), every revision of the month and of its quarter held, the
/// attacker knowing each change only added: no single late report comes out — neither when
/// the three spread (400, 300 and 320 hours: the last revision minus the first is three
/// structures', publishable) nor when one makes most of them (1,000, 10, 10: that difference
/// is dominated, so protected too).
#[test]
fn a_chain_of_late_reports_gives_none_away() -> anyhow::Result<()> {
    use StructureKind::Aci;
    let mut exposed = Vec::new();
    for hours in [[400, 300, 320], [1000, 10, 10]] {
        let dir = tempfile::tempdir()?;
        let (a, b, c) = two_and_a_small_one();
        let mut layout = background();
        layout.extend([a, b, c]);
        let hub = publish(dir.path(), &layout, 15)?;
        let cell = at("44", "aci");
        let mut attacker = Attacker::default();
        let mut jan = vec![attacker.node(read_revision(&hub, "2026-01", 0)?)];
        let feb = attacker.node(read_all(&hub, "2026-02")?);
        let mar = attacker.node(read_all(&hub, "2026-03")?);
        let mut quarter = vec![attacker.node(read_revision(&hub, "2026-Q1", 0)?)];
        let mut late = Vec::new();
        for (i, h) in hours.iter().enumerate() {
            let r = one_month("44", Aci, report(3 + i as i64, *h, 1, [1, 0, 0, 0]));
            push(&hub, 60 + i, 60 + i, &r, 1)?;
            assert_eq!(hub.revise_month(month(1))?, i as u32 + 1);
            late.push(r);
            jan.push(attacker.node(read_revision(&hub, "2026-01", i as u32 + 1)?));
            quarter.push(attacker.node(read_revision(&hub, "2026-Q1", i as u32 + 1)?));
        }
        for i in 0..hours.len() {
            attacker.shares.push((jan[i], jan[i + 1], vec![cell.clone()]));
            attacker.shares.push((quarter[i], quarter[i + 1], vec![cell.clone()]));
            attacker.orders.push((jan[i], jan[i + 1], cell.clone()));
        }
        for i in 0..=hours.len() {
            attacker.sums.push((quarter[i], vec![jan[i], feb, mar]));
        }
        for (i, r) in late.iter().enumerate() {
            let truth = |m: usize| r.months[&month(1)][m];
            for nodes in [&jan, &quarter] {
                let objective = [(nodes[i + 1], cell.clone(), 1.0), (nodes[i], cell.clone(), -1.0)];
                for e in attacker.exposed(&objective, truth)? {
                    exposed.push(format!("{hours:?} late report {i}: {e}"));
                }
            }
        }
    }
    assert!(exposed.is_empty(), "{exposed:#?}");
    Ok(())
}

/// **Was a leak (fixed by the pair rule at revision 0): a removal leaves two structures under a
/// published
/// margin.** Seed 569 of the random search: three structures in January, one per finest cell
/// (53 × EI: 387 hours, 53 × ACI: 2,333, 44 × AI: 828); revision 0 publishes the grand total
/// (3,548 hours, three structures, none over 85 %). The 53 × EI one is removed: revision 1's
/// grand total (two structures, 3,161 hours) is withheld — but it is revision 0's total minus
/// the removed cell, so at most 3,548: narrowed to [0, 3,548], the range needing 3,635.15.
/// The audit sees it and `audit::keeps` excuses it (the bound was there "before"); as with
/// two removals, the bound is revision 0's three-structure figure of which two structures
/// make more than 1 / 1.15 ≈ 87 %.
#[test]
fn a_removal_leaves_two_structures_bounded_by_the_earlier_total() -> anyhow::Result<()> {
    let (layout, events) = random_case(569);
    assert!(matches!(events.as_slice(), [Event::Remove(0)]), "{events:?}");
    let exposed = attack_case(&layout, &events, false, false)?;
    assert!(exposed.is_empty(), "{exposed:#?}");
    Ok(())
}

/// One structure of a random quarter: its reports by month, each under that month's
/// attributes (a mover has two), and whether it was removed.
#[derive(Debug, Clone)]
struct Member {
    id: usize,
    months: BTreeMap<u8, (At, [i64; 9])>,
    removed: bool,
}

/// What changes after the quarter closed: (month, event) rounds, each followed by revising
/// the months it touched.
#[derive(Debug, Clone)]
enum QEvent {
    /// A new structure reports month `m` late (as a member of id `id`).
    Late(u8, At, [i64; 9]),
    /// Member `i` is removed (every month of its leaves).
    Remove(usize),
    /// Member `i` corrects its month `m` report: hires or hours up by `by`.
    Correct(usize, u8, usize, i64),
    /// Member `i` reports month `m` late under attributes `at` (a late report by a member that
    /// may have moved).
    LateOwn(usize, u8, At),
}

/// A random quarter: 3 to 10 members over 2 départements × 2 kinds, each reporting some
/// months, one in five moving (its March under other attributes), then 1 to 3 rounds of 1 or
/// 2 events.
fn random_quarter(seed: u64) -> (Vec<Member>, Vec<Vec<QEvent>>) {
    let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
    let cells = [at("44", "ai"), at("44", "aci"), at("53", "ai"), at("53", "aci")];
    let values = |rng: &mut Rng| {
        let exits = [0, 0, 0, 0].map(|_: i64| rng.below(3) as i64);
        report(2 + rng.below(15) as i64, 100 + rng.below(2500) as i64, rng.below(4) as i64, exits)
    };
    let n = 3 + rng.below(8) as usize;
    let mut members = Vec::new();
    for id in 0..n {
        let home = cells[rng.below(4) as usize].clone();
        let moves = rng.below(5) == 0;
        let mut months = BTreeMap::new();
        let mask = 1 + rng.below(7);
        for m in 1..=3u8 {
            if mask & (1 << (m - 1)) != 0 {
                let here = if moves && m == 3 { cells[rng.below(4) as usize].clone() } else { home.clone() };
                months.insert(m, (here, values(&mut rng)));
            }
        }
        members.push(Member { id, months, removed: false });
    }
    let rounds = (0..1 + rng.below(3))
        .map(|_| {
            (0..1 + rng.below(2))
                .map(|_| match rng.below(5) {
                    0 | 1 => QEvent::Late(
                        1 + rng.below(3) as u8,
                        cells[rng.below(4) as usize].clone(),
                        values(&mut rng),
                    ),
                    2 => QEvent::Remove(rng.below(n as u64) as usize),
                    3 => {
                        let m = if rng.below(2) == 0 { 3 } else { 2 };
                        QEvent::Correct(
                            rng.below(n as u64) as usize,
                            1 + rng.below(3) as u8,
                            m,
                            1 + rng.below(3) as i64,
                        )
                    }
                    _ => QEvent::LateOwn(
                        rng.below(n as u64) as usize,
                        1 + rng.below(3) as u8,
                        cells[rng.below(4) as usize].clone(),
                    ),
                })
                .collect()
        })
        .collect();
    (members, rounds)
}

/// Pushes member `member`'s months (in order, admitted again with each month's attributes).
fn push_member(hub: &Hub, member: &Member, version: u64) -> anyhow::Result<()> {
    use StructureKind::{Aci, Ai};
    for (m, (place, v)) in &member.months {
        let kind = if place[1] == "ai" { Ai } else { Aci };
        anyhow::ensure!(place[1] == "ai" || place[1] == "aci", "kind {place:?}");
        let r = Reporter {
            departement: place[0].clone(),
            kind: kind as i32,
            months: BTreeMap::from([(month(*m), *v)]),
        };
        push(hub, member.id, member.id, &r, version)?;
    }
    Ok(())
}

/// A node as the model has it: per finest cell, per member, the values (month: its report;
/// quarter: its months summed, stocks averaged as published) — the true values and the
/// fingerprints the attacker is granted.
type Truth = BTreeMap<At, BTreeMap<usize, Vec<i64>>>;

fn truth_of(members: &[Member], period: &str) -> Truth {
    let mut out: Truth = BTreeMap::new();
    for member in members.iter().filter(|m| !m.removed) {
        let months: Vec<(&u8, &(At, [i64; 9]))> = match period {
            "2026-Q1" => member.months.iter().collect(),
            p => member.months.iter().filter(|(m, _)| format!("2026-{m:02}") == p).collect(),
        };
        let Some((_, (place, _))) = months.last() else { continue };
        let values = (0..INDICATORS.measures.len())
            .map(|i| {
                let sum: i64 = months.iter().map(|(_, (_, v))| v[i]).sum();
                let k = months.len() as i64;
                if INDICATORS.measures[i].agg() == Agg::Sum { sum } else { (sum + k / 2) / k }
            })
            .collect();
        out.entry(place.clone()).or_default().insert(member.id, values);
    }
    out
}

/// The random quarter played on a hub, every publication held, and the audit's own model of
/// the attacker (no orders) solving for every primary-withheld value of every node, every
/// change of one or two structures between two revisions of a period, and every mover's
/// month figures; a value a node's own publication did not narrow further than the others
/// had (`keeps`, design call 3) is not counted.
fn attack_quarter(mut members: Vec<Member>, rounds: &[Vec<QEvent>]) -> anyhow::Result<Vec<String>> {
    use super::audit::keeps;
    use super::disclosure::is_primary;
    let dir = tempfile::tempdir()?;
    let mut hub = Hub::for_tests(dir.path());
    hub.config.protection_percent = 15;
    for member in &members {
        push_member(&hub, member, 1)?;
    }
    for m in 1..=3 {
        hub.close_month(month(m), i64::MAX / 2)?;
    }
    let periods = ["2026-01", "2026-02", "2026-03", "2026-Q1"];
    let mut attacker = Attacker::default();
    // Per node: its period and truth; per period: its latest node and revision.
    let mut held: Vec<(String, Truth)> = Vec::new();
    let mut latest: BTreeMap<&str, (u32, usize)> = BTreeMap::new();
    let mut version = 1;
    let take = |attacker: &mut Attacker,
                held: &mut Vec<(String, Truth)>,
                latest: &mut BTreeMap<&'static str, (u32, usize)>,
                members: &[Member]|
     -> anyhow::Result<()> {
        for p in periods {
            let Ok(tables) = read_all(&hub, p) else { continue };
            let r = tables.first().map(|t| t.revision).unwrap_or(0);
            if latest.get(p).map(|(known, _)| *known) == Some(r) {
                continue;
            }
            let n = attacker.node(tables);
            let truth = truth_of(members, p);
            if let Some((_, older)) = latest.get(p) {
                let changed: Vec<At> = held[*older]
                    .1
                    .keys()
                    .chain(truth.keys())
                    .filter(|k| held[*older].1.get(*k) != truth.get(*k))
                    .cloned()
                    .collect();
                attacker.shares.push((*older, n, changed));
            }
            if p == "2026-Q1" {
                let parts: Vec<usize> =
                    periods[..3].iter().filter_map(|q| latest.get(q).map(|(_, i)| *i)).collect();
                anyhow::ensure!(parts.len() == 3, "a quarter is published after its months");
                for (k, &part) in parts.iter().enumerate() {
                    for member in members.iter().filter(|m| !m.removed) {
                        let (Some((_, (to, _))), Some((from, _))) =
                            (member.months.iter().last(), member.months.get(&(k as u8 + 1)))
                        else {
                            continue;
                        };
                        if to != from {
                            attacker.moves.push((n, part, from.clone(), to.clone()));
                        }
                    }
                }
                attacker.sums.push((n, parts));
            }
            held.push((p.to_string(), truth));
            latest.insert(p, (r, n));
        }
        Ok(())
    };
    take(&mut attacker, &mut held, &mut latest, &members)?;
    for round in rounds {
        let mut touched = std::collections::BTreeSet::new();
        version += 1;
        for event in round {
            match event {
                QEvent::Late(m, place, v) => {
                    let id = 100 + members.len();
                    let member =
                        Member { id, months: BTreeMap::from([(*m, (place.clone(), *v))]), removed: false };
                    push_member(&hub, &member, 1)?;
                    members.push(member);
                    touched.insert(*m);
                }
                QEvent::Remove(i) => {
                    if members[*i].removed {
                        continue;
                    }
                    hub.remove_member(&super::cells_tests::siret(1000 + members[*i].id), None)?;
                    members[*i].removed = true;
                    touched.extend(members[*i].months.keys().copied());
                }
                QEvent::Correct(i, m, measure, by) => {
                    let member = &mut members[*i];
                    let Some((place, v)) = member.months.get(m).cloned() else { continue };
                    if member.removed {
                        continue;
                    }
                    let mut v = v;
                    v[*measure] += by;
                    let one = Member {
                        id: member.id,
                        months: BTreeMap::from([(*m, (place.clone(), v))]),
                        removed: false,
                    };
                    member.months.insert(*m, (place, v));
                    push_member(&hub, &one, version)?;
                    touched.insert(*m);
                }
                QEvent::LateOwn(i, m, place) => {
                    let member = &mut members[*i];
                    if member.removed || member.months.contains_key(m) {
                        continue;
                    }
                    let v = report(4, 500, 1, [1, 0, 0, 0]);
                    // A month counts under the attributes the member has when it is counted:
                    // its latest month's (the hub has them), whatever `place` says.
                    let now =
                        member.months.iter().last().map(|(_, (p, _))| p.clone()).unwrap_or(place.clone());
                    member.months.insert(*m, (now.clone(), v));
                    let one =
                        Member { id: member.id, months: BTreeMap::from([(*m, (now, v))]), removed: false };
                    push_member(&hub, &one, version)?;
                    touched.insert(*m);
                }
            }
        }
        for m in touched {
            let _ = hub.revise_month(month(m));
        }
        take(&mut attacker, &mut held, &mut latest, &members)?;
    }
    if std::env::var("BREAK_VERBOSE").is_ok() {
        let periods: Vec<&str> = held.iter().map(|(p, _)| p.as_str()).collect();
        eprintln!("nodes {periods:?}, moves {}, shares {}", attacker.moves.len(), attacker.shares.len());
    }
    // The targets.
    let mut exposed = Vec::new();
    let without = |n: usize| -> Attacker {
        let mut other = Attacker {
            nodes: attacker.nodes.clone(),
            shares: attacker.shares.clone(),
            sums: attacker.sums.clone(),
            orders: Vec::new(),
            moves: attacker.moves.clone(),
            links: Vec::new(),
        };
        for t in &mut other.nodes[n] {
            for c in &mut t.cells {
                for m in &mut c.measures {
                    m.value = None;
                }
            }
        }
        other
    };
    let value_at = |truth: &Truth, cell: &At, m: usize| -> i64 {
        truth.iter().filter(|(k, _)| matches(k, cell)).flat_map(|(_, by)| by.values()).map(|v| v[m]).sum()
    };
    let mut solved: BTreeMap<usize, Solved> = BTreeMap::new();
    let mut check = |label: String,
                     n: usize,
                     objective: &[(usize, At, f64)],
                     moved: &[usize],
                     m: usize,
                     value: i64|
     -> anyhow::Result<()> {
        if value <= 0 {
            return Ok(());
        }
        let here = match solved.entry(m) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => e.insert(attacker.solved(m)?),
        };
        if here.protects(objective, moved, value) {
            return Ok(());
        }
        let interval = here.range(objective, moved)?;
        if protects(value, interval, 15) {
            return Ok(());
        }
        let prior = without(n).range(m, objective, moved)?;
        if !keeps(value, interval, prior, 15) {
            exposed.push(format!(
                "{label} {} = {value}, narrowed to [{:.2}, {:.2}] (before: [{:.2}, {:.2}])",
                INDICATORS.measures[m].name(),
                interval.low,
                interval.high,
                prior.low,
                prior.high
            ));
        }
        Ok(())
    };
    for (n, (period, truth)) in held.iter().enumerate() {
        for table in &attacker.nodes[n] {
            for cell in &table.cells {
                let here = coords(table, &cell.key);
                for (m, measure) in INDICATORS.measures.iter().enumerate() {
                    let Some(shown) = cell.measures.iter().find(|x| x.name == measure.name()) else {
                        continue;
                    };
                    if shown.value.is_none() && is_primary(&shown.suppressed) {
                        let value = value_at(truth, &here, m);
                        check(
                            format!("node {n} ({period}) {here:?}"),
                            n,
                            &[(n, here.clone(), 1.0)],
                            &[],
                            m,
                            value,
                        )?;
                    }
                }
            }
        }
    }
    // Changes of one or two structures between two revisions of a period.
    for (a, (pa, ta)) in held.iter().enumerate() {
        for (b, (pb, tb)) in held.iter().enumerate().skip(a + 1) {
            if pa != pb {
                continue;
            }
            let keys: Vec<&At> = ta.keys().chain(tb.keys()).collect();
            let mut cells: Vec<At> = Vec::new();
            for key in keys {
                for c in [key.clone(), at(&key[0], "*"), at("*", &key[1]), at("*", "*")] {
                    if !cells.contains(&c) {
                        cells.push(c);
                    }
                }
            }
            for cell in cells {
                let mut who = std::collections::BTreeSet::new();
                for (k, _) in ta.iter().chain(tb.iter()).filter(|(k, _)| matches(k, &cell)) {
                    let (x, y) = (ta.get(k), tb.get(k));
                    let ids: Vec<usize> =
                        x.iter().chain(y.iter()).flat_map(|by| by.keys().copied()).collect();
                    for id in ids {
                        if x.and_then(|by| by.get(&id)) != y.and_then(|by| by.get(&id)) {
                            who.insert(id);
                        }
                    }
                }
                if who.is_empty() || who.len() >= 3 {
                    continue;
                }
                for m in 0..INDICATORS.measures.len() {
                    let delta = value_at(tb, &cell, m) - value_at(ta, &cell, m);
                    if delta == 0 {
                        continue;
                    }
                    let s = delta.signum() as f64;
                    let objective = [(b, cell.clone(), s), (a, cell.clone(), -s)];
                    check(format!("{pa} node {b} − node {a} {cell:?}"), b, &objective, &[], m, delta.abs())?;
                }
            }
        }
    }
    // Movers' months (flows): each move's figures.
    for (i, (q, kid, from, _)) in attacker.moves.clone().iter().enumerate() {
        let Some(month_truth) = held[*kid].1.get(from) else { continue };
        let quarter = &held[*q].1;
        // The member counted at `from` in the month and elsewhere in the quarter.
        let Some(id) =
            month_truth.keys().find(|id| quarter.iter().any(|(k, by)| k != from && by.contains_key(id)))
        else {
            continue;
        };
        for (m, value) in month_truth[id].iter().enumerate() {
            if INDICATORS.measures[m].agg() != Agg::Sum {
                continue;
            }
            check(format!("mover {id} in node {kid}"), *q, &[], &[i], m, *value)?;
        }
    }
    Ok(exposed)
}

/// Random quarters with late reports, removals, corrections, late reports by members that
/// moved, over rounds of revisions: the audit's own model of the attacker, every revision of
/// every month and of the quarter held, narrows nothing past the range that its publication
/// opened (seeds 0 to 375 were run: none leaks; `BREAK_CASES`, `BREAK_FROM` for more).
#[test]
fn random_quarters_with_revisions_isolate_nothing_in_the_audits_model() -> anyhow::Result<()> {
    let cases: u64 = std::env::var("BREAK_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let from: u64 = std::env::var("BREAK_FROM").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut found = Vec::new();
    for seed in from..from + cases {
        let (members, rounds) = random_quarter(seed);
        let exposed = attack_quarter(members.clone(), &rounds)?;
        if !exposed.is_empty() {
            found.push(format!("seed {seed}: {members:?} {rounds:?}\n{exposed:#?}"));
        }
    }
    assert!(found.is_empty(), "{} of {cases} leak:\n{}", found.len(), found.join("\n"));
    Ok(())
}

/// **Was a leak (fixed by the pair rule): an insider subtracts its own report.** 44 × ACI counts three
/// structures in January: the victim (800 hours, 10 employees, 700 ETP hundredths), a tiny one
/// (10 hours, 1 employee, 70) and the attacker, a member whose figures are its own (190 hours,
/// 4 employees, 280). No structure makes 85 % of any measure but exits (withheld on their own),
/// so the cell is published: 1,000 hours, 15 employees, 1,050 ETP hundredths. The attacker
/// knows the other two make 810 hours, 11 employees and 770 ETP hundredths, every part ≥ 0:
/// the victim is narrowed to [0, 810] hours (the range needs 920), [0, 11] employees (11.5) and
/// [0, 770] ETP hundredths (805). A member in the victim's département and kind planting its
/// report is what turns a withheld two-structure cell into this (the (1, 85 %) dominance rule
/// does not protect the largest contributor from the second largest, nor from any insider
/// when the third is small).
#[test]
fn an_insider_subtracting_its_own_report_bounds_the_largest_contributor() -> anyhow::Result<()> {
    use StructureKind::Aci;
    let dir = tempfile::tempdir()?;
    let victim = one_month("44", Aci, report(10, 800, 2, [1, 1, 0, 1]));
    let tiny = one_month("44", Aci, report(1, 10, 1, [0, 0, 1, 0]));
    let insider = one_month("44", Aci, report(4, 190, 1, [1, 0, 0, 0]));
    let mut layout = background();
    layout.extend([victim.clone(), tiny, insider.clone()]);
    let hub = publish(dir.path(), &layout, 15)?;
    let tables = read_all(&hub, "2026-01")?;
    let grid =
        tables.iter().find(|t| t.by == ["departement", "kind"]).ok_or_else(|| anyhow::anyhow!("grid"))?;
    let cell = grid
        .cells
        .iter()
        .find(|c| coords(grid, &c.key) == at("44", "aci"))
        .ok_or_else(|| anyhow::anyhow!("44 × aci listed"))?;
    let mut exposed = Vec::new();
    for (measure, m) in INDICATORS.measures.iter().enumerate() {
        let Some(shown) = cell.measures.iter().find(|x| x.name == m.name()).and_then(|x| x.value) else {
            continue;
        };
        let value = victim.months[&month(1)][measure];
        let interval = Interval { low: 0.0, high: (shown - insider.months[&month(1)][measure]) as f64 };
        if !protects(value, interval, 15) {
            exposed.push(format!("{} = {value}, narrowed to [0, {}]", m.name(), interval.high));
        }
    }
    assert!(exposed.is_empty(), "the victim, by the insider: {exposed:#?}");
    Ok(())
}

/// **Leak: two overlapping ranges of the needs table.** Needs are read live over any range of
/// start months (`from`, `to`) and protected table by table. Four structures of 44 each hold
/// one open need (K2204, 3 positions): three starting in January, one in February. The table
/// by département from 2026-01 to 2026-01 (three structures) and the one from 2026-01 to
/// 2026-02 (four) are both published; their difference is the February structure's need,
/// exactly: 1 need, 5 open positions.
#[test]
#[ignore = "open leak: needs tables are live over any range and not audited together (issue 14 note)"]
fn two_overlapping_needs_ranges_give_one_structure_away() -> anyhow::Result<()> {
    use crate::hub::ingest::PushSession;
    use crate::tls::Peer;
    use passerelle_proto::datasets::Dataset;
    use passerelle_proto::identity::{PeerId, Role};
    use passerelle_proto::v1::{Batch, Change, SharedNeed, Structure, change};
    let dir = tempfile::tempdir()?;
    let hub = Hub::for_tests(dir.path());
    for (i, start) in ["2026-01-12", "2026-01-13", "2026-01-14", "2026-02-09"].into_iter().enumerate() {
        let siret = super::cells_tests::siret(3000 + i);
        let peer = Peer {
            id: PeerId { role: Role::Node, id: siret.clone() },
            serial: None,
            network: Some("coorace".into()),
        };
        let structure = Structure {
            siret: siret.clone(),
            kind: StructureKind::Aci as i32,
            name: format!("N{i}"),
            departement: "44".into(),
        };
        hub.admit(&peer, Some(structure))?;
        let session = PushSession::for_tests(peer, vec![i as u8 + 40; 16], &[Dataset::Needs], i as u64 + 40);
        let key = format!("01920000-0000-7000-8000-0000000000{i:02}");
        let need = SharedNeed {
            origin_siret: siret.clone(),
            need_id: key.clone(),
            origin_version: 1,
            rome_code: "K2204".into(),
            contract_type: 1,
            open_positions: if i == 3 { 5 } else { 3 },
            hours_per_week: 20,
            departement: "44".into(),
            start_date: start.into(),
            status: 1,
            ..Default::default()
        };
        let change = Change {
            dataset: "needs".into(),
            key,
            version: 1,
            payload: Some(change::Payload::Need(need)),
            ..Default::default()
        };
        hub.apply_batch(
            &session,
            Batch { seq: 1, changes: vec![change], head_seq: 1, ..Default::default() },
        )?;
    }
    let range = |to: &str| -> anyhow::Result<Table> {
        Ok(hub.table(&GetTableRequest {
            table: "needs".into(),
            by: vec!["departement".into()],
            from: Some("2026-01".into()),
            to: Some(to.into()),
            ..Default::default()
        })?)
    };
    let (january, both) = (range("2026-01")?, range("2026-02")?);
    let cell = |t: &Table| t.cells.iter().find(|c| c.key == ["44"]).cloned();
    let (a, b) = (cell(&january), cell(&both));
    let mut exposed = Vec::new();
    if let (Some(a), Some(b)) = (a, b) {
        for (x, y) in a.measures.iter().zip(&b.measures) {
            if let (Some(u), Some(v)) = (x.value, y.value) {
                exposed.push(format!("{}: {} − {} = {} (one structure's)", x.name, v, u, v - u));
            }
        }
    }
    assert!(exposed.is_empty(), "February's one structure: {exposed:#?}");
    Ok(())
}

/// The year against its quarters' and months' revisions: reports in January and April (two
/// quarters), every month of the year closed (the year published), then a late report in
/// January revising January, Q1 and the year. The attacker holds every node, each quarter the
/// sum of its months and the year of its quarters, and solves for the late report as each
/// period's difference — at the cell, its margins and the total.
#[test]
fn the_year_and_its_quarters_revisions_give_no_late_report_away() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (a, b, small) = two_and_a_small_one();
    let mut layout = background();
    layout.extend([a, b]);
    for r in &mut layout {
        let v = r.months[&month(1)];
        r.months.insert(month(4), v);
    }
    let hub = publish(dir.path(), &layout, 15)?;
    for m in 7..=12 {
        hub.close_month(month(m), i64::MAX / 2)?;
    }
    let read = |p: &str, r: u32| read_revision(&hub, p, r);
    let mut attacker = Attacker::default();
    let months: Vec<usize> = (1..=12u8)
        .map(|m| Ok(attacker.node(read(&format!("2026-{m:02}"), 0)?)))
        .collect::<anyhow::Result<_>>()?;
    let quarters: Vec<usize> = (1..=4u8)
        .map(|q| Ok(attacker.node(read(&format!("2026-Q{q}"), 0)?)))
        .collect::<anyhow::Result<_>>()?;
    let year0 = attacker.node(read("2026", 0)?);
    push(&hub, 50, 50, &small, 1)?;
    assert_eq!(hub.revise_month(month(1))?, 1);
    let jan1 = attacker.node(read("2026-01", 1)?);
    let q1 = attacker.node(read("2026-Q1", 1)?);
    let year1 = attacker.node(read("2026", 1)?);
    let cell = at("44", "aci");
    for (older, newer) in [(months[0], jan1), (quarters[0], q1), (year0, year1)] {
        attacker.shares.push((older, newer, vec![cell.clone()]));
    }
    for (q, first) in quarters.iter().zip([0, 3, 6, 9]) {
        attacker.sums.push((*q, months[first..first + 3].to_vec()));
    }
    attacker.sums.push((q1, vec![jan1, months[1], months[2]]));
    attacker.sums.push((year0, quarters.clone()));
    attacker.sums.push((year1, vec![q1, quarters[1], quarters[2], quarters[3]]));
    let truth = |m: usize| small.months[&month(1)][m];
    let mut exposed = Vec::new();
    for (label, older, newer) in
        [("2026-01", months[0], jan1), ("2026-Q1", quarters[0], q1), ("2026", year0, year1)]
    {
        for margin in [cell.clone(), at("44", "*"), at("*", "aci"), at("*", "*")] {
            let objective = [(newer, margin.clone(), 1.0), (older, margin.clone(), -1.0)];
            for e in attacker.exposed(&objective, truth)? {
                exposed.push(format!("{label} {margin:?}: {e}"));
            }
        }
    }
    assert!(exposed.is_empty(), "the late report: {exposed:#?}");
    Ok(())
}

/// **Was a leak (fixed: dominance and the pair rule over requesters): the introductions table
/// had no dominance rule.** A cell of the introductions table
/// needs three requesting and three holding structures, and withholds few persons — but one
/// requester may make almost every request. 49 × K22 in October: requester A makes 50
/// requests, B and C one each, to the same three holders; the cell is published (52 requests,
/// 3 requesting structures). Each requester made at least one, so A made at most 50 — narrowed
/// to [1, 50] (the range needs 57.5; with non-negativity alone, [0, 52], still under it).
#[test]
fn one_requester_dominating_an_introductions_cell_is_bounded() -> anyhow::Result<()> {
    use crate::hub::introductions::{Holding, HubIntroduction};
    use crate::store::{Tree, WriteBatch};
    use passerelle_proto::v1::{SharedNeed, Structure};
    use prost::Message;
    let dir = tempfile::tempdir()?;
    let hub = Hub::for_tests(dir.path());
    let october =
        passerelle_proto::date::Date { year: 2026, month: 10, day: 15 }.days_since_epoch() * 86_400_000;
    let holders = ["h1", "h2", "h3"];
    let mut batch = WriteBatch::new();
    let mut n = 0;
    for (requester, count) in [("ra", 50), ("rb", 1), ("rc", 1)] {
        for _ in 0..count {
            n += 1;
            let intro = HubIntroduction {
                id: format!("0190f0c4-0000-7000-8000-{n:012}"),
                requester: Some(Structure { siret: requester.into(), ..Default::default() }),
                need: Some(SharedNeed {
                    departement: "49".into(),
                    rome_code: "K2204".into(),
                    ..Default::default()
                }),
                created_at_ms: october,
                holders: holders
                    .iter()
                    .map(|h| Holding { siret: (*h).into(), ..Default::default() })
                    .collect(),
                ..Default::default()
            };
            batch.put(Tree::Introductions, format!("q/{}", intro.id).into_bytes(), intro.encode_to_vec());
        }
    }
    hub.store.commit(batch)?;
    hub.close_month(month(10), passerelle_proto::date::now_unix_ms())?;
    let table = hub.table(&GetTableRequest {
        table: "introductions".into(),
        by: vec!["departement".into()],
        period: "2026-10".into(),
        ..Default::default()
    })?;
    let cell = table.cells.iter().find(|c| c.key == ["49"]).ok_or_else(|| anyhow::anyhow!("49 listed"))?;
    let requests = cell.measures.iter().find(|m| m.name == "requests").and_then(|m| m.value);
    let mut exposed = Vec::new();
    if let (Some(total), Some(k)) = (requests, cell.structures) {
        let interval = Interval { low: 1.0, high: (total - i64::from(k) + 1) as f64 };
        if !protects(50, interval, 15) {
            exposed.push(format!("requester A's requests = 50, narrowed to [1, {}]", interval.high));
        }
    }
    assert!(exposed.is_empty(), "{exposed:#?}");
    Ok(())
}
