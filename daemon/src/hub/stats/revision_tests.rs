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
