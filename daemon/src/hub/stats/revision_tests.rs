//! Revisions against the attacker who holds every revision of a period (test-only module): a
//! late report by one structure in a closed month, published next to the month as closed, must
//! not give that structure's figures away by subtraction — nor its quarter's.

use std::collections::BTreeMap;

use passerelle_proto::date::Month;
use passerelle_proto::v1::{GetTableRequest, StructureKind, Table};

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
        for at in changed {
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
    // Months of the quarter not revised keep revision 0.
    assert!(read_all(&hub, "2026-02")?.iter().all(|t| t.revision == 0));
    Ok(())
}
