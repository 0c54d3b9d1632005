//! Revisions against the attacker who holds every revision of a period (test-only module): a
//! late report by one structure in a closed month, published next to the month as closed, must
//! not give that structure's figures away by subtraction — nor its quarter's.

use std::collections::BTreeMap;

use passerelle_proto::codes::slug_of;
use passerelle_proto::date::Month;
use passerelle_proto::v1::{GetTableRequest, StructureKind, Table};
use proptest::prelude::*;

use super::audit::{System, Term, protects};
use super::audit_tests::{Reporter, coords, matches, one_month, publish, push, read_all, report};
use super::catalogue::INDICATORS;
use crate::error::Error;
use crate::hub::Hub;
use crate::hub::periods::indicator_dimension_sets;

/// The attacker: reads every dimension set of each revision in `revisions` (oldest first), is
/// told which finest cells changed between them (`changed`: elsewhere both revisions count the
/// same structures with the same figures, one unknown), and solves, per measure, for what
/// changed there — `truth(measure)` in fact. Returns each measure narrowed past 15 %.
fn difference_attack(
    revisions: &[Vec<Table>],
    changed: &[[String; 2]],
    truth: impl Fn(usize) -> i64,
) -> anyhow::Result<Vec<String>> {
    difference_attack_at(revisions, changed, changed, truth)
}

/// [`difference_attack`], solving for what changed in the cells `target` only.
fn difference_attack_at(
    revisions: &[Vec<Table>],
    changed: &[[String; 2]],
    target: &[[String; 2]],
    truth: impl Fn(usize) -> i64,
) -> anyhow::Result<Vec<String>> {
    let mut exposed = Vec::new();
    for (measure, m) in INDICATORS.measures.iter().enumerate() {
        let value = truth(measure);
        if value <= 0 {
            continue;
        }
        let mut system = System::default();
        let mut unknowns: Vec<BTreeMap<[String; 2], usize>> = Vec::new();
        for tables in revisions {
            let finest = tables
                .iter()
                .find(|t| t.by == ["departement", "kind"])
                .ok_or_else(|| anyhow::anyhow!("no département × kind table"))?;
            let mut these = BTreeMap::new();
            for cell in finest.cells.iter().filter(|c| !c.total) {
                let at = coords(finest, &cell.key);
                let shared = unknowns.first().and_then(|u| u.get(&at)).filter(|_| !changed.contains(&at));
                these.insert(at, shared.copied().unwrap_or_else(|| system.unknown()));
            }
            unknowns.push(these);
        }
        for (r, tables) in revisions.iter().enumerate() {
            for table in tables {
                for cell in &table.cells {
                    let at = coords(table, &cell.key);
                    let Some(v) = cell.measures.iter().find(|x| x.name == m.name()).and_then(|x| x.value)
                    else {
                        continue;
                    };
                    let terms: Vec<Term> =
                        unknowns[r].iter().filter(|(k, _)| matches(k, &at)).map(|(_, x)| (*x, 1.0)).collect();
                    system.equal(terms, v as f64);
                }
            }
        }
        // What changed: the latest revision's changed cells minus the first's.
        let (first, last) = (&unknowns[0], &unknowns[unknowns.len() - 1]);
        let mut objective: Vec<Term> = Vec::new();
        for at in target {
            objective.extend(last.get(at).map(|x| (*x, 1.0)));
            objective.extend(first.get(at).map(|x| (*x, -1.0)));
        }
        let interval =
            system.range(&objective).map_err(|_| anyhow::anyhow!("published revisions are inconsistent"))?;
        if !protects(value, interval, 15) {
            exposed.push(format!(
                "{} = {value}, narrowed to [{:.2}, {:.2}]",
                m.name(),
                interval.low,
                interval.high
            ));
        }
    }
    Ok(exposed)
}

fn jan() -> Month {
    Month { year: 2026, month: 1 }
}

/// Nine structures in January (44 × ACI ×3, 44 × AI ×3, 53 × ACI ×3), every month of the
/// quarter closed; then a late report by a tenth, 44 × ACI.
fn late_report(dir: &std::path::Path) -> anyhow::Result<(Hub, Reporter)> {
    use StructureKind::{Aci, Ai};
    let mut layout = Vec::new();
    for (i, (dep, kind)) in [("44", Aci), ("44", Ai), ("53", Aci)].into_iter().enumerate() {
        for j in 0..3 {
            let n = (i * 3 + j) as i64;
            layout.push(one_month(dep, kind, report(8 + n, 1200 + 37 * n, 2 + n % 3, [1, 1, n % 2, 1])));
        }
    }
    let hub = publish(dir, &layout, 15)?;
    let late = one_month("44", Aci, report(9, 1310, 3, [2, 1, 1, 0]));
    push(&hub, layout.len(), layout.len(), &late, 1)?;
    Ok((hub, late))
}

/// What a consumer reads of `period` at `revision`.
pub(super) fn read_revision(hub: &Hub, period: &str, revision: u32) -> anyhow::Result<Vec<Table>> {
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

/// The attack, first on naive revisions (the period's tables computed again from the current
/// cells, audited on their own): the late structure's figures come out exactly. Then on the
/// revisions `hub period revise` publishes: nothing comes out, for the month or its quarter.
#[test]
fn the_difference_of_two_revisions_gives_no_late_report_away() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (hub, late) = late_report(dir.path())?;
    let cell = [["44".to_string(), "aci".to_string()]];
    let truth = |measure: usize| late.months[&jan()][measure];
    let closed = read_all(&hub, "2026-01")?;
    assert!(closed.iter().all(|t| t.revision == 0));

    let naive: Vec<Table> = indicator_dimension_sets()
        .into_iter()
        .map(|by| {
            Ok(hub.compute_table(&GetTableRequest {
                table: "indicators".into(),
                by,
                period: "2026-01".into(),
                ..Default::default()
            })?)
        })
        .collect::<anyhow::Result<_>>()?;
    let exposed = difference_attack(&[closed.clone(), naive], &cell, truth)?;
    assert!(
        exposed.iter().any(|e| e.starts_with("hours_worked = 1310, narrowed to [1310.00, 1310.00]")),
        "naive revisions give the late report away: {exposed:#?}"
    );

    assert_eq!(hub.revise_month(jan())?, 1);
    let revised = read_all(&hub, "2026-01")?;
    assert!(revised.iter().all(|t| t.revision == 1), "the latest revision is read by default");
    assert_eq!(read_revision(&hub, "2026-01", 1)?, revised);
    assert_eq!(read_revision(&hub, "2026-01", 0)?, closed, "revision 0 is still readable, as it was");
    let exposed = difference_attack(&[closed, revised], &cell, truth)?;
    assert!(exposed.is_empty(), "the month's revisions give the late report away: {exposed:#?}");

    // Its quarter counts its own revisions: revised with its month, 0 still readable.
    let q0 = read_revision(&hub, "2026-Q1", 0)?;
    let q1 = read_all(&hub, "2026-Q1")?;
    assert!(q0.iter().all(|t| t.revision == 0) && q1.iter().all(|t| t.revision == 1));
    // The late structure reported January only: its quarter is its January, stocks included.
    let exposed = difference_attack(&[q0, q1], &cell, truth)?;
    assert!(exposed.is_empty(), "the quarter's revisions give the late report away: {exposed:#?}");
    Ok(())
}

#[test]
fn only_a_closed_month_with_something_new_is_revised() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (hub, _) = late_report(dir.path())?;
    let open = Month { year: 2026, month: 4 };
    let err = hub.revise_month(open).expect_err("an open month");
    assert!(matches!(&err, Error::FailedPrecondition(m) if m.contains("2026-04 is open")), "{err}");
    assert_eq!(hub.revise_month(jan())?, 1);
    let err = hub.revise_month(jan()).expect_err("nothing new");
    assert!(
        matches!(&err, Error::FailedPrecondition(m) if m.contains("nothing to revise") && m.contains("revision 1")),
        "{err}"
    );
    let err = read_revision(&hub, "2026-01", 2).expect_err("no revision 2");
    let err = err.downcast::<Error>()?;
    assert!(
        matches!(&err, Error::NotFound { what: "revision", id } if id.starts_with("2 of period 2026-01")),
        "{err}"
    );
    assert_eq!(tonic::Status::from(err).code(), tonic::Code::NotFound);
    let periods = hub.list_periods()?;
    let january =
        periods.iter().find(|p| p.period == "2026-01").ok_or_else(|| anyhow::anyhow!("no 2026-01"))?;
    assert_eq!(january.revisions, 1);
    // Only indicators have revisions: asking another table for one is refused, not ignored.
    for table in ["needs", "profiles", "introductions"] {
        let asked = GetTableRequest { table: table.into(), revision: Some(0), ..Default::default() };
        let err = hub.table(&asked).expect_err("no revisions");
        assert!(err.to_string().contains("only indicators tables have revisions"), "{table}: {err}");
        assert!(super::check_table_request(&asked).is_err(), "{table}");
    }
    // Months of the quarter not revised keep revision 0.
    assert!(read_all(&hub, "2026-02")?.iter().all(|t| t.revision == 0));
    Ok(())
}

/// A random layout of one month (1 to 20 structures over 4 départements × 3 kinds), and one or
/// two late structures.
fn late_layout() -> impl Strategy<Value = (Vec<Reporter>, Vec<Reporter>)> {
    let reporter = (0..4usize, 0..3usize, 3..30i64, 200..3000i64, 0..6i64, prop::array::uniform4(0..4i64));
    (prop::collection::vec(reporter.clone(), 1..=20), prop::collection::vec(reporter, 1..=2)).prop_map(
        |(on_time, late)| {
            let deps = ["44", "49", "53", "72"];
            let kinds = [StructureKind::Ai, StructureKind::Aci, StructureKind::Ei];
            let to_reporter =
                |(d, k, employees, hours, hires, exits): (usize, usize, i64, i64, i64, [i64; 4])| {
                    one_month(deps[d], kinds[k], report(employees, hours, hires, exits))
                };
            (on_time.into_iter().map(to_reporter).collect(), late.into_iter().map(to_reporter).collect())
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// Whatever the layout, one or two late reports published as revision 1 next to revision 0:
    /// the attacker holding both, told which cells changed, narrows what changed — in each
    /// changed cell, and in all of them together — to no interval tighter than ±15 %.
    #[test]
    fn no_late_report_is_isolated_by_two_revisions((on_time, late) in late_layout()) {
        let fail = |e: anyhow::Error| TestCaseError::fail(e.to_string());
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let hub = publish(dir.path(), &on_time, 15).map_err(fail)?;
        for (i, r) in late.iter().enumerate() {
            push(&hub, on_time.len() + i, on_time.len() + i, r, 1).map_err(fail)?;
        }
        let closed = read_all(&hub, "2026-01").map_err(fail)?;
        hub.revise_month(jan()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let revised = read_all(&hub, "2026-01").map_err(fail)?;
        let at = |r: &Reporter| [r.departement.clone(), slug_of::<StructureKind>(r.kind).to_string()];
        let mut changed: Vec<[String; 2]> = late.iter().map(at).collect();
        changed.sort();
        changed.dedup();
        let sum = |cells: &[[String; 2]], measure: usize| -> i64 {
            late.iter().filter(|r| cells.contains(&at(r))).map(|r| r.months[&jan()][measure]).sum()
        };
        let revisions = [closed, revised];
        let exposed = difference_attack(&revisions, &changed, |m| sum(&changed, m)).map_err(fail)?;
        prop_assert!(exposed.is_empty(), "all changed cells: {exposed:#?}");
        for cell in &changed {
            let one = std::slice::from_ref(cell);
            let exposed = difference_attack_at(&revisions, &changed, one, |m| sum(one, m)).map_err(fail)?;
            prop_assert!(exposed.is_empty(), "{cell:?}: {exposed:#?}");
        }
    }
}

/// A member removed after the closing takes its report out of the cells; the revision that
/// publishes it must not give that report away by subtraction either (the difference is minus
/// its figures).
#[test]
fn a_removed_report_is_not_given_away_by_two_revisions() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (hub, _) = late_report(dir.path())?;
    // Publish the late report first (revision 1), then remove one of the nine (revision 2).
    assert_eq!(hub.revise_month(jan())?, 1);
    let before = read_all(&hub, "2026-01")?;
    let gone = 4usize; // 44 × AI, the second of three there
    hub.remove_member(&super::cells_tests::siret(1000 + gone), None)?;
    assert_eq!(hub.revise_month(jan())?, 2);
    let after = read_all(&hub, "2026-01")?;
    let cell = [["44".to_string(), "ai".to_string()]];
    let n = gone as i64;
    let removed = report(8 + n, 1200 + 37 * n, 2 + n % 3, [1, 1, n % 2, 1]);
    // What changed is minus its figures: the attacker solves for what left.
    let exposed = difference_attack(&[after, before], &cell, |m| removed[m])?;
    assert!(exposed.is_empty(), "the revisions give the removed report away: {exposed:#?}");
    assert_eq!(read_revision(&hub, "2026-01", 1)?.len(), indicator_dimension_sets().len());
    Ok(())
}

/// A late report for a closed month, arriving before its quarter closes: the quarter counts it,
/// the month as published does not. The quarter minus its months as published is that report.
#[test]
fn a_quarter_publishes_no_late_report_its_months_left_out() -> anyhow::Result<()> {
    use StructureKind::{Aci, Ai};
    let dir = tempfile::tempdir()?;
    let mut hub = Hub::for_tests(dir.path());
    hub.config.protection_percent = 15;
    let mut layout = Vec::new();
    for (i, (dep, kind)) in [("44", Aci), ("44", Ai), ("53", Aci)].into_iter().enumerate() {
        for j in 0..3 {
            let n = (i * 3 + j) as i64;
            layout.push(one_month(dep, kind, report(8 + n, 1200 + 37 * n, 2 + n % 3, [1, 1, n % 2, 1])));
        }
    }
    for (i, r) in layout.iter().enumerate() {
        push(&hub, i, i, r, 1)?;
    }
    hub.close_month(jan(), i64::MAX / 2)?;
    let late = one_month("44", Aci, report(9, 1310, 3, [2, 1, 1, 0]));
    push(&hub, layout.len(), layout.len(), &late, 1)?;
    for month in [2, 3] {
        hub.close_month(Month { year: 2026, month }, i64::MAX / 2)?;
    }
    // The quarter waits for its month: published now, it would count what January does not.
    let err = read_all(&hub, "2026-Q1").expect_err("the quarter waits for January's revision");
    let err = err.downcast::<Error>()?;
    assert!(
        matches!(&err, Error::FailedPrecondition(m) if m.contains("passerelle hub period revise 2026-01")),
        "{err}"
    );
    assert!(!hub.published_periods()?.contains(&"2026-Q1".to_string()));
    let january = read_all(&hub, "2026-01")?;
    assert_eq!(hub.revise_month(jan())?, 1);
    let revised = read_all(&hub, "2026-01")?;
    let quarter = read_all(&hub, "2026-Q1")?;
    assert!(quarter.iter().all(|t| t.revision == 0), "the quarter's first publication");
    assert!(hub.published_periods()?.contains(&"2026-Q1".to_string()));
    // Nothing else reported in the quarter: its cells are January's, the late report included.
    let cell = [["44".to_string(), "aci".to_string()]];
    let truth = |m: usize| late.months[&jan()][m];
    let exposed = difference_attack(&[january.clone(), quarter], &cell, truth)?;
    assert!(
        exposed.is_empty(),
        "the quarter minus January as closed gives the late report away: {exposed:#?}"
    );
    let exposed = difference_attack(&[january, revised], &cell, truth)?;
    assert!(exposed.is_empty(), "January's revisions give the late report away: {exposed:#?}");
    Ok(())
}

/// A published revision as the joint attacker holds it: its period and its tables.
type Held = (String, Vec<Table>);

/// The attacker holding every revision of a quarter and of its months at once: nodes `held`,
/// a quarter revision the sum of the month revisions it counted (`sums`: node, its parts —
/// flows only, which add up exactly), the revisions of one period sharing every finest cell but
/// those in `changed`. Solves, per flow measure, for `newer − older` at `cell`, whose truth is
/// `truth(measure)`; returns the measures narrowed past 15 %.
fn joint_attack(
    held: &[Held],
    sums: &[(usize, Vec<usize>)],
    changed: &[[String; 2]],
    (newer, older): (usize, usize),
    cell: &[String; 2],
    truth: impl Fn(usize) -> i64,
) -> anyhow::Result<Vec<String>> {
    use super::catalogue::Agg;
    let mut exposed = Vec::new();
    for (measure, m) in INDICATORS.measures.iter().enumerate() {
        let value = truth(measure);
        if value <= 0 || m.agg() != Agg::Sum {
            continue;
        }
        let mut system = System::default();
        let mut unknowns: Vec<BTreeMap<[String; 2], usize>> = Vec::new();
        for (n, (period, tables)) in held.iter().enumerate() {
            let finest = tables
                .iter()
                .find(|t| t.by == ["departement", "kind"])
                .ok_or_else(|| anyhow::anyhow!("no département × kind table"))?;
            let first = held.iter().position(|(p, _)| p == period).filter(|&f| f < n);
            let mut these = BTreeMap::new();
            for c in finest.cells.iter().filter(|c| !c.total) {
                let at = coords(finest, &c.key);
                let shared = first.and_then(|f| unknowns[f].get(&at)).filter(|_| !changed.contains(&at));
                these.insert(at, shared.copied().unwrap_or_else(|| system.unknown()));
            }
            unknowns.push(these);
        }
        for (n, (_, tables)) in held.iter().enumerate() {
            for table in tables {
                for c in &table.cells {
                    let at = coords(table, &c.key);
                    let Some(v) = c.measures.iter().find(|x| x.name == m.name()).and_then(|x| x.value) else {
                        continue;
                    };
                    let terms: Vec<Term> =
                        unknowns[n].iter().filter(|(k, _)| matches(k, &at)).map(|(_, x)| (*x, 1.0)).collect();
                    system.equal(terms, v as f64);
                }
            }
        }
        for (whole, parts) in sums {
            let mut keys: Vec<&[String; 2]> = unknowns[*whole].keys().collect();
            keys.extend(parts.iter().flat_map(|p| unknowns[*p].keys()));
            keys.sort();
            keys.dedup();
            for key in keys {
                let mut terms: Vec<Term> =
                    parts.iter().filter_map(|p| unknowns[*p].get(key).map(|x| (*x, 1.0))).collect();
                terms.extend(unknowns[*whole].get(key).map(|x| (*x, -1.0)));
                system.equal(terms, 0.0);
            }
        }
        let mut objective: Vec<Term> = Vec::new();
        objective.extend(unknowns[newer].get(cell).map(|x| (*x, 1.0)));
        objective.extend(unknowns[older].get(cell).map(|x| (*x, -1.0)));
        let interval =
            system.range(&objective).map_err(|_| anyhow::anyhow!("published revisions are inconsistent"))?;
        if !protects(value, interval, 15) {
            exposed.push(format!(
                "{} = {value}, narrowed to [{:.2}, {:.2}]",
                m.name(),
                interval.low,
                interval.high
            ));
        }
    }
    Ok(exposed)
}

/// Reporters spread over the quarter's three months (each reports every month).
fn quarter_layout() -> Vec<Reporter> {
    use StructureKind::{Aci, Ai};
    let mut layout = Vec::new();
    for (i, (dep, kind)) in [("44", Aci), ("44", Ai), ("53", Aci)].into_iter().enumerate() {
        for j in 0..3 {
            let n = (i * 3 + j) as i64;
            let months = (1..=3)
                .map(|m| {
                    let v = report(8 + n, 1200 + 37 * n + 11 * m, 2 + (n + m) % 3, [1, 1, (n + m) % 2, 1]);
                    (Month { year: 2026, month: m as u8 }, v)
                })
                .collect();
            layout.push(Reporter { departement: dep.into(), kind: kind as i32, months });
        }
    }
    layout
}

/// The quarter's revision with its months' revisions, all held at once: a late report in
/// January after the quarter was published (January r0, r1; the quarter r0, r1), then another
/// in February, revised while March has a third one waiting — the quarter waits for March.
/// Whatever the attacker combines, no late report comes out.
#[test]
fn a_quarter_and_its_months_revisions_held_together_give_no_late_report_away() -> anyhow::Result<()> {
    use StructureKind::Aci;
    let dir = tempfile::tempdir()?;
    let layout = quarter_layout();
    let hub = publish(dir.path(), &layout, 15)?;
    let cell = ["44".to_string(), "aci".to_string()];
    let read = |period: &str, r: u32| -> anyhow::Result<Held> {
        Ok((period.to_string(), read_revision(&hub, period, r)?))
    };
    let month = |m: u8| Month { year: 2026, month: m };
    let late = |m: u8, i: usize| {
        let v = report(9 + i as i64, 1310 + 7 * i as i64, 3, [2, 1, 1, 0]);
        Reporter { departement: "44".into(), kind: Aci as i32, months: BTreeMap::from([(month(m), v)]) }
    };
    let (jan0, feb0, mar0, q0) =
        (read("2026-01", 0)?, read("2026-02", 0)?, read("2026-03", 0)?, read("2026-Q1", 0)?);

    // A late report in January: January r1 and the quarter r1.
    let first = late(1, 0);
    push(&hub, 100, 100, &first, 1)?;
    assert_eq!(hub.revise_month(month(1))?, 1);
    let (jan1, q1) = (read("2026-01", 1)?, read("2026-Q1", 1)?);
    let held = [jan0.clone(), jan1.clone(), feb0.clone(), mar0.clone(), q0.clone(), q1.clone()];
    let sums = [(4, vec![0, 2, 3]), (5, vec![1, 2, 3])];
    let changed = [cell.clone()];
    fn truth(r: &Reporter, m: u8) -> impl Fn(usize) -> i64 + '_ {
        move |measure| r.months[&Month { year: 2026, month: m }][measure]
    }
    for target in [(1, 0), (5, 4)] {
        let exposed = joint_attack(&held, &sums, &changed, target, &cell, truth(&first, 1))?;
        assert!(exposed.is_empty(), "{target:?}: January's late report comes out: {exposed:#?}");
    }

    // Late reports in February and March; February revised first: the quarter waits.
    let (second, third) = (late(2, 1), late(3, 2));
    push(&hub, 101, 101, &second, 1)?;
    push(&hub, 102, 102, &third, 1)?;
    assert_eq!(hub.revise_month(month(2))?, 1);
    assert!(read_revision(&hub, "2026-Q1", 2).is_err(), "the quarter waits for March");
    assert!(read_all(&hub, "2026-Q1")?.iter().all(|t| t.revision == 1), "revision 1 still stands");
    let feb1 = read("2026-02", 1)?;
    assert_eq!(hub.revise_month(month(3))?, 1);
    let (mar1, q2) = (read("2026-03", 1)?, read("2026-Q1", 2)?);
    let held = [jan0, jan1, feb0, feb1, mar0, mar1, q0, q1, q2];
    let sums = [(6, vec![0, 2, 4]), (7, vec![1, 2, 4]), (8, vec![1, 3, 5])];
    for (target, who, m) in [((3, 2), &second, 2), ((5, 4), &third, 3), ((1, 0), &first, 1)] {
        let exposed = joint_attack(&held, &sums, &changed, target, &cell, truth(who, m))?;
        assert!(exposed.is_empty(), "{target:?}: a late report comes out: {exposed:#?}");
    }
    // The quarter's last difference is February's and March's late reports together (two
    // structures: fewer than three, protected as one change).
    let both = |measure: usize| second.months[&month(2)][measure] + third.months[&month(3)][measure];
    let exposed = joint_attack(&held, &sums, &changed, (8, 7), &cell, both)?;
    assert!(exposed.is_empty(), "the quarter's r2 − r1 comes out: {exposed:#?}");
    Ok(())
}

/// A random quarter (2 to 12 structures over 2 départements × 2 kinds, each reporting some of
/// the three months), and 1 to 3 late reports, each in a month of its own choosing.
fn quarter_late_layout() -> impl Strategy<Value = (Vec<Reporter>, Vec<(u8, Reporter)>)> {
    let reporter = (0..2usize, 0..2usize, 3..30i64, 200..3000i64, 0..6i64, 1..8u8);
    let late = (1..=3u8, 0..2usize, 0..2usize, 3..30i64, 200..3000i64, 0..6i64);
    (prop::collection::vec(reporter, 2..=12), prop::collection::vec(late, 1..=3)).prop_map(
        |(on_time, late)| {
            let deps = ["44", "53"];
            let kinds = [StructureKind::Ai, StructureKind::Aci];
            let on_time = on_time
                .into_iter()
                .map(|(d, k, employees, hours, hires, months)| {
                    let months = (1..=3u8)
                        .filter(|m| months & (1 << (m - 1)) != 0)
                        .map(|m| {
                            let v = report(employees, hours + 13 * i64::from(m), hires, [1, 0, 1, 0]);
                            (Month { year: 2026, month: m }, v)
                        })
                        .collect();
                    Reporter { departement: deps[d].into(), kind: kinds[k] as i32, months }
                })
                .collect();
            let late = late
                .into_iter()
                .map(|(m, d, k, employees, hours, hires)| {
                    let v = report(employees, hours, hires, [1, 1, 0, 0]);
                    let months = BTreeMap::from([(Month { year: 2026, month: m }, v)]);
                    (m, Reporter { departement: deps[d].into(), kind: kinds[k] as i32, months })
                })
                .collect();
            (on_time, late)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    /// Late reports after a quarter is published, their months revised one by one: the
    /// attacker holding every revision of the quarter and of its months, with the sums
    /// linking them, isolates no late report (each month's difference, where it is one
    /// structure's), whatever the layout.
    #[test]
    fn the_quarter_and_its_months_revisions_together_isolate_no_late_report(
        (on_time, late) in quarter_late_layout()
    ) {
        let fail = |e: anyhow::Error| TestCaseError::fail(e.to_string());
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let hub = publish(dir.path(), &on_time, 15).map_err(fail)?;
        let base = on_time.len();
        for (i, (_, r)) in late.iter().enumerate() {
            push(&hub, base + i, base + i, r, 1).map_err(fail)?;
        }
        // Revise each late month (once), in order; track every node and the quarter's sums.
        let mut held: Vec<Held> = Vec::new();
        let mut latest: BTreeMap<String, (u32, usize)> = BTreeMap::new();
        let mut sums: Vec<(usize, Vec<usize>)> = Vec::new();
        let periods = ["2026-01", "2026-02", "2026-03", "2026-Q1"];
        let take = |held: &mut Vec<Held>, latest: &mut BTreeMap<String, (u32, usize)>| -> anyhow::Result<bool> {
            let mut quarter_new = false;
            for p in periods {
                let r = read_all(&hub, p)?.first().map(|t| t.revision).unwrap_or(0);
                if latest.get(p).map(|(known, _)| *known) != Some(r) {
                    held.push((p.to_string(), read_revision(&hub, p, r)?));
                    latest.insert(p.to_string(), (r, held.len() - 1));
                    quarter_new |= p == "2026-Q1";
                }
            }
            Ok(quarter_new)
        };
        take(&mut held, &mut latest).map_err(fail)?;
        let parts = |latest: &BTreeMap<String, (u32, usize)>| periods[..3].iter().map(|p| latest[*p].1).collect::<Vec<_>>();
        sums.push((latest["2026-Q1"].1, parts(&latest)));
        let mut months: Vec<u8> = late.iter().map(|(m, _)| *m).collect();
        months.sort();
        months.dedup();
        let mut before_revision: BTreeMap<u8, usize> = BTreeMap::new();
        for m in &months {
            before_revision.insert(*m, latest[&format!("2026-0{m}")].1);
            hub.revise_month(Month { year: 2026, month: *m }).map_err(|e| TestCaseError::fail(e.to_string()))?;
            if take(&mut held, &mut latest).map_err(fail)? {
                sums.push((latest["2026-Q1"].1, parts(&latest)));
            }
        }
        let at = |r: &Reporter| [r.departement.clone(), slug_of::<StructureKind>(r.kind).to_string()];
        let mut changed: Vec<[String; 2]> = late.iter().map(|(_, r)| at(r)).collect();
        changed.sort();
        changed.dedup();
        for m in &months {
            let newer = latest[&format!("2026-0{m}")].1;
            let older = before_revision[m];
            for cell in &changed {
                // The rule protects the change of fewer than three structures: three late
                // reports in one cell are an aggregate the hub may publish like any other.
                let movers = late.iter().filter(|(lm, r)| lm == m && at(r) == *cell).count();
                if movers >= 3 {
                    continue;
                }
                let truth = |measure: usize| -> i64 {
                    late.iter().filter(|(lm, r)| lm == m && at(r) == *cell).map(|(_, r)| r.months[&Month { year: 2026, month: *m }][measure]).sum()
                };
                let exposed = joint_attack(&held, &sums, &changed, (newer, older), cell, truth).map_err(fail)?;
                prop_assert!(exposed.is_empty(), "2026-0{m} {cell:?}: {exposed:#?}");
            }
        }
    }
}
