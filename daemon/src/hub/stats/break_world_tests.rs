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
use crate::hub::Hub;
use crate::hub::periods::indicator_dimension_sets;

/// A finest cell: (département, kind).
type At = [String; 2];

fn at(departement: &str, kind: &str) -> At {
    [departement.to_string(), kind.to_string()]
}

fn month(m: u8) -> Month {
    Month { year: 2026, month: m }
}

/// What a consumer reads of `period` at `revision`: every dimension set.
fn read_revision(hub: &Hub, period: &str, revision: u32) -> anyhow::Result<Vec<Table>> {
    indicator_dimension_sets()
        .into_iter()
        .map(|by| {
            Ok(hub.table(&GetTableRequest {
                table: "indicators".into(),
                by,
                period: period.into(),
                revision: Some(revision),
                ..Default::default()
            })?)
        })
        .collect()
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
    /// coefficient) for measure `measure`.
    fn range(
        &self,
        measure: usize,
        objective: &[(usize, At, f64)],
        moved: &[usize],
    ) -> anyhow::Result<Interval> {
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
        let mut terms: Vec<Term> = Vec::new();
        for (n, cell, c) in objective {
            terms.extend(members(*n, cell).into_iter().map(|(x, k)| (x, k * c)));
        }
        terms.extend(moved.iter().map(|i| (y[*i], 1.0)));
        system.range(&terms).map_err(|_| anyhow::anyhow!("published cells are inconsistent"))
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

/// **Leak: a removal only takes away.** 44 × ACI counts three structures in January (hours
/// 600, 500 and 60): published at revision 0 (1,160 hours, 16 employees, 1,120 ETP
/// hundredths). The small one is removed; revision 1 withholds 44 × ACI (two structures left:
/// 1,100 hours) and, since every other finest cell is unchanged and was published, every
/// margin through it. The audit's model gives 44 × ACI at revision 1 an unknown of its own
/// (`stats::revisions`: "the exact projection of unchanged part + each revision's changed
/// part, all ≥ 0") — but a removed structure's part in the new revision is *0*, not free: the
/// attacker who knows the structure left (it is no longer a member; that it changed is granted
/// by the design) has `cell(r1) ≤ cell(r0)` on every measure, so:
///
/// - hours = 1,100, narrowed to [0, 1,160] (needs ≥ 1,265),
/// - employees = 15, narrowed to [0, 16] (needs ≥ 17.25),
/// - etp (hundredths) = 1,050, narrowed to [0, 1,120] (needs ≥ 1,207.5),
/// - exits (total) = 6, narrowed to [0, 7] (needs ≥ 6.9); exits to positive = 2 in [0, 3]? no:
///   the figures the test prints are authoritative.
#[test]
#[ignore = "leak: a removal bounds the withheld cell by its published earlier revision"]
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

/// **Leak: a late report only adds.** 44 × ACI counts two structures in January (hours 600 and
/// 500): withheld at revision 0. A third, small, reports late (hours 60); revision 1 counts
/// three structures there and publishes 44 × ACI (1,160 hours) — its difference with revision
/// 0 is protected, since revision 0's 44 × ACI is an unknown of its own in the audit's model.
/// But the late structure was absent from revision 0: its part there is 0, and the attacker has
/// `cell(r0) ≤ cell(r1)` on every measure — revision 0's primary-withheld 44 × ACI (1,100
/// hours, 15 employees, 1,050 ETP hundredths) is narrowed to at most revision 1's published
/// figures (1,160, 16, 1,120), under the 1,265, 17.25 and 1,207.5 the range needs.
#[test]
#[ignore = "leak: a late report bounds the earlier withheld cell by the revision's published one"]
fn a_late_report_bounds_the_earlier_withheld_cell_by_the_revision() -> anyhow::Result<()> {
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
