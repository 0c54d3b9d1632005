//! The statistics audit against the attacker of the acceptance rule (test-only module): a
//! consumer reads every published indicators table of a period (every dimension set) and of
//! its months, writes the linear system they imply — published cells, additivity of margins
//! and of periods, non-negativity — and solves it with [`System`] for every withheld value.
//! The layouts are real hub stores: structures admitted, reports pushed, months closed.

use std::collections::{BTreeMap, BTreeSet};

use passerelle_proto::codes::slug_of;
use passerelle_proto::date::Month;
use passerelle_proto::identity::{PeerId, Role};
use passerelle_proto::v1::{
    Batch, Change, Exits, GetTableRequest, IndicatorFields, IndicatorReport, Structure, StructureKind, change,
};
use proptest::prelude::*;

use super::audit::{System, Term, keeps, protects};
use super::catalogue::*;
use super::disclosure::is_primary;
use crate::hub::Hub;
use crate::hub::ingest::PushSession;
use crate::hub::periods::indicator_dimension_sets;
use crate::tls::Peer;
use passerelle_proto::datasets::Dataset;

/// One structure: département, kind, and its reports by month (stored measure order).
#[derive(Debug, Clone)]
pub(super) struct Reporter {
    pub(super) departement: String,
    pub(super) kind: i32,
    pub(super) months: BTreeMap<Month, [i64; 9]>,
}

/// A report's values: etp (hundredths), employees, hours, hires, exits (total, durable,
/// transition, positive, other).
pub(super) fn report(employees: i64, hours: i64, hires: i64, exits: [i64; 4]) -> [i64; 9] {
    let total = exits.iter().sum();
    [employees * 70, employees, hours, hires, total, exits[0], exits[1], exits[2], exits[3]]
}

/// A hub holding the layout's reports, every month closed (so its quarter and year freeze).
pub(super) fn publish(dir: &std::path::Path, layout: &[Reporter], protection: u32) -> anyhow::Result<Hub> {
    publish_as(dir, layout, protection, |i| i)
}

/// [`publish`], the `i`-th reporter being structure `same(i)`: two reporters of one structure
/// are one structure that moved (admitted again with its new attributes before its later
/// months are pushed).
pub(super) fn publish_as(
    dir: &std::path::Path,
    layout: &[Reporter],
    protection: u32,
    same: impl Fn(usize) -> usize,
) -> anyhow::Result<Hub> {
    let mut hub = Hub::for_tests(dir);
    hub.config.protection_percent = protection;
    let mut months = BTreeSet::new();
    for (i, r) in layout.iter().enumerate() {
        push(&hub, i, same(i), r, 1)?;
        months.extend(r.months.keys().copied());
    }
    // Every month of the quarters touched, in order, so quarters freeze after their months.
    let quarters: BTreeSet<(i32, u8)> = months.iter().map(|m| (m.year, (m.month - 1) / 3)).collect();
    for (year, q) in quarters {
        for m in 1..=3 {
            hub.close_month(Month { year, month: q * 3 + m }, i64::MAX / 2)?;
        }
    }
    Ok(hub)
}

/// Pushes reporter `i`'s reports (as structure `structure`, at `version`) to `hub`: admitted
/// with its attributes, one push session, one batch.
pub(super) fn push(hub: &Hub, i: usize, structure: usize, r: &Reporter, version: u64) -> anyhow::Result<()> {
    let siret = super::cells_tests::siret(1000 + structure);
    let peer = Peer {
        id: PeerId { role: Role::Node, id: siret.clone() },
        serial: None,
        network: Some("coorace".into()),
    };
    let structure = Structure {
        siret: siret.clone(),
        kind: r.kind,
        name: format!("S{i}"),
        departement: r.departement.clone(),
    };
    hub.admit(&peer, Some(structure))?;
    let session = PushSession::for_tests(peer, vec![i as u8; 16], &[Dataset::Indicators], i as u64 + 1);
    let changes = r
        .months
        .iter()
        .map(|(month, v)| Change {
            dataset: "indicators".into(),
            key: month.to_string(),
            version,
            payload: Some(change::Payload::Indicators(IndicatorReport {
                siret: siret.clone(),
                fields: Some(IndicatorFields {
                    period: month.to_string(),
                    etp_hundredths: v[0] as u64,
                    employees_in_insertion: v[1] as u32,
                    hours_worked: v[2] as u64,
                    hires: v[3] as u32,
                    exits: Some(Exits {
                        total: v[4] as u32,
                        durable: v[5] as u32,
                        transition: v[6] as u32,
                        positive: v[7] as u32,
                        other: v[8] as u32,
                    }),
                }),
                version,
                submitted_at_ms: 0,
            })),
            ..Default::default()
        })
        .collect();
    hub.apply_batch(&session, Batch { seq: version, changes, head_seq: version, ..Default::default() })?;
    Ok(())
}

/// What a consumer reads: every dimension set of `period`'s indicators table.
pub(super) fn read_all(hub: &Hub, period: &str) -> anyhow::Result<Vec<passerelle_proto::v1::Table>> {
    indicator_dimension_sets()
        .into_iter()
        .map(|by| {
            Ok(hub.table(&GetTableRequest {
                table: "indicators".into(),
                by,
                period: period.into(),
                from: None,
                to: None,
                revision: None,
            })?)
        })
        .collect()
}

/// A published cell's coordinates over (département, kind), `*` for "all"; région and network
/// are constant on a regional hub.
pub(super) fn coords(table: &passerelle_proto::v1::Table, key: &[String]) -> [String; 2] {
    let mut at = ["*".to_string(), "*".to_string()];
    for (dim, value) in table.by.iter().zip(key) {
        match dim.as_str() {
            "departement" if value != "*" => at[0].clone_from(value),
            "kind" if value != "*" => at[1].clone_from(value),
            _ => {}
        }
    }
    at
}

pub(super) fn matches(finest: &[String; 2], at: &[String; 2]) -> bool {
    finest.iter().zip(at).all(|(f, a)| a == "*" || f == a)
}

/// The true value of a measure for the structures at `at` over `months`: flows summed, stocks
/// averaged per structure over the months it reported (rounded as published).
fn truth(layout: &[Reporter], months: &[Month], at: &[String; 2], measure: usize) -> i64 {
    let stock = INDICATORS.measures[measure].agg() == Agg::MonthlyAverage;
    layout
        .iter()
        .filter(|r| matches(&[r.departement.clone(), slug_of::<StructureKind>(r.kind).to_string()], at))
        .map(|r| {
            let values: Vec<i64> =
                months.iter().filter_map(|m| r.months.get(m).map(|v| v[measure])).collect();
            let sum: i64 = values.iter().sum();
            if stock { (sum + values.len() as i64 / 2) / (values.len() as i64).max(1) } else { sum }
        })
        .sum()
}

/// A withheld value the attacker narrowed past the protection range, described.
type Exposed = Vec<String>;

/// Reads every published table of `periods` (a quarter after its months, if any) and solves,
/// per measure, for every withheld value; flows link a quarter to its months.
fn attack(hub: &Hub, layout: &[Reporter], periods: &[&str], percent: u32) -> anyhow::Result<Exposed> {
    attack_linking(hub, layout, periods, percent, |_| true)
}

/// [`attack`], linking a quarter to its months only at the finest cells `link` accepts (the
/// attacker leaves out those a structure moved in or out of, which the published structure
/// counts show).
fn attack_linking(
    hub: &Hub,
    layout: &[Reporter],
    periods: &[&str],
    percent: u32,
    link: impl Fn(&[String; 2]) -> bool,
) -> anyhow::Result<Exposed> {
    let mut exposed = Vec::new();
    let tables: Vec<(String, Vec<Month>, Vec<passerelle_proto::v1::Table>)> = periods
        .iter()
        .map(|p| {
            let (from, to) = super::tables::parse_period(p)?;
            let months = (from.ordinal()..=to.ordinal()).map(Month::from_ordinal).collect();
            Ok((p.to_string(), months, read_all(hub, p)?))
        })
        .collect::<anyhow::Result<_>>()?;
    for (measure, m) in INDICATORS.measures.iter().enumerate() {
        let mut system = System::default();
        // Unknowns: each period's finest cells (the département × kind table lists them all,
        // withheld or not).
        let mut unknowns: Vec<BTreeMap<[String; 2], usize>> = Vec::new();
        for (_, _, tables) in &tables {
            let finest = tables
                .iter()
                .find(|t| t.by == ["departement", "kind"])
                .ok_or_else(|| anyhow::anyhow!("no département × kind table"))?;
            unknowns.push(
                finest
                    .cells
                    .iter()
                    .filter(|c| !c.total)
                    .map(|c| (coords(finest, &c.key), system.unknown()))
                    .collect(),
            );
        }
        // Flows: a quarter's cell is the sum of its months' (the quarter is last in `periods`).
        if m.agg() == Agg::Sum && tables.len() > 1 {
            let (last, months) = unknowns.split_last().expect("several");
            for (key, q) in last.iter().filter(|(key, _)| link(key)) {
                let mut terms: Vec<Term> =
                    months.iter().filter_map(|u| u.get(key).map(|x| (*x, 1.0))).collect();
                terms.push((*q, -1.0));
                system.equal(terms, 0.0);
            }
        }
        // What the months had published before their quarter (the quarter is last).
        let mut before = system.clone();
        let last = tables.len() - 1;
        let mut withheld = Vec::new();
        for (p, (_, months, period_tables)) in tables.iter().enumerate() {
            for table in period_tables {
                for cell in &table.cells {
                    let at = coords(table, &cell.key);
                    let terms: Vec<Term> =
                        unknowns[p].iter().filter(|(k, _)| matches(k, &at)).map(|(_, x)| (*x, 1.0)).collect();
                    let Some(shown) = cell.measures.iter().find(|x| x.name == m.name()) else { continue };
                    match shown.value {
                        Some(v) => {
                            if p != last || last == 0 {
                                before.equal(terms.clone(), v as f64);
                            }
                            system.equal(terms, v as f64);
                        }
                        // Primary suppressions must be protected (complements protect them).
                        None if is_primary(&shown.suppressed) => {
                            withheld.push((p, months.clone(), at, terms))
                        }
                        None => {}
                    }
                }
            }
        }
        let prepared = system.prepare().map_err(|_| anyhow::anyhow!("published cells are inconsistent"))?;
        for (p, months, at, terms) in withheld {
            let value = truth(layout, &months, &at, measure);
            if prepared.protects(&terms, value, percent) {
                continue;
            }
            let interval =
                prepared.range(&terms).map_err(|_| anyhow::anyhow!("published cells are inconsistent"))?;
            assert!(
                !protects(value, interval, percent),
                "the fast check agrees with the interval: {interval:?}"
            );
            let prior = if last > 0 {
                before.range(&terms).map_err(|_| anyhow::anyhow!("published months are inconsistent"))?
            } else {
                super::audit::Interval { low: 0.0, high: f64::INFINITY }
            };
            if !keeps(value, interval, prior, percent) {
                exposed.push(format!(
                    "{} {} {:?} = {value}, narrowed to [{:.2}, {:.2}]",
                    tables[p].0,
                    m.name(),
                    at,
                    interval.low,
                    interval.high
                ));
            }
        }
    }
    exposed.sort();
    exposed.dedup();
    if !exposed.is_empty() && std::env::var("AUDIT_DEBUG").is_ok() {
        for (p, _, ts) in &tables {
            for t in ts.iter().filter(|t| !t.by.iter().any(|d| d == "region" || d == "network")) {
                for c in &t.cells {
                    let h = c.measures.iter().find(|m| m.name == "hires").expect("hires");
                    eprintln!("{p} {:?} {:?} hires={:?} {}", t.by, c.key, h.value, h.suppressed);
                }
            }
        }
    }
    Ok(exposed)
}

pub(super) fn one_month(departement: &str, kind: StructureKind, v: [i64; 9]) -> Reporter {
    Reporter {
        departement: departement.into(),
        kind: kind as i32,
        months: BTreeMap::from([(Month { year: 2026, month: 1 }, v)]),
    }
}

/// "A margin that is also a cell": eight structures in one month (44 × ACI ×2, 44 × AI,
/// 44 × EI ×3, 53 × ACI, 53 × AI). The EI total equals the 44 × EI cell (there is no 53 × EI);
/// withheld in one place and published in the other, it gives the AI total away through the
/// grand total.
#[test]
fn a_margin_that_is_also_a_cell_gives_nothing_away() -> anyhow::Result<()> {
    use StructureKind::{Aci, Ai, Ei};
    let layout = vec![
        one_month("44", Aci, report(8, 1200, 2, [1, 1, 0, 1])),
        one_month("44", Aci, report(9, 1300, 1, [1, 0, 1, 0])),
        one_month("44", Ai, report(12, 1500, 3, [2, 1, 0, 1])),
        one_month("44", Ei, report(6, 900, 1, [1, 1, 1, 0])),
        one_month("44", Ei, report(7, 950, 2, [0, 1, 1, 1])),
        one_month("44", Ei, report(6, 1000, 1, [1, 0, 1, 1])),
        one_month("53", Aci, report(10, 1400, 2, [1, 1, 1, 0])),
        one_month("53", Ai, report(11, 1350, 2, [1, 0, 0, 1])),
    ];
    let dir = tempfile::tempdir()?;
    let hub = publish(dir.path(), &layout, 15)?;
    let exposed = attack(&hub, &layout, &["2026-01"], 15)?;
    assert!(exposed.is_empty(), "exposed: {exposed:#?}");
    Ok(())
}

/// "Dominance on one measure only": a cell whose hours are spread but whose hires are all one
/// structure's is withheld; a cell whose exits in one category are all one structure's withholds
/// its exit figures and the dynamic-exit rate. (One cell per hub, so nothing else is withheld.)
#[test]
fn dominance_applies_to_every_measure() -> anyhow::Result<()> {
    use StructureKind::{Aci, Ai};
    let cell = |layout: &[Reporter]| -> anyhow::Result<passerelle_proto::v1::Cell> {
        let dir = tempfile::tempdir()?;
        let hub = publish(dir.path(), layout, 15)?;
        let table = hub.table(&GetTableRequest {
            table: "indicators".into(),
            by: vec!["departement".into(), "kind".into()],
            period: "2026-01".into(),
            from: None,
            to: None,
            revision: None,
        })?;
        table.cells.into_iter().find(|c| !c.total).ok_or_else(|| anyhow::anyhow!("no cell"))
    };
    // Hours spread, hires all the first structure's.
    let hires = cell(&[
        one_month("49", Ai, report(10, 1000, 9, [2, 2, 2, 2])),
        one_month("49", Ai, report(10, 1000, 0, [2, 2, 2, 2])),
        one_month("49", Ai, report(10, 1000, 0, [2, 2, 2, 2])),
        one_month("49", Ai, report(10, 1000, 1, [2, 2, 2, 2])),
    ])?;
    assert_eq!(hires.suppressed, "one structure contributes more than 85 % of hires");
    // Everything spread but exits to transition, all one structure's.
    let exits = cell(&[
        one_month("49", Aci, report(10, 1000, 2, [2, 9, 2, 2])),
        one_month("49", Aci, report(10, 1000, 2, [2, 0, 2, 2])),
        one_month("49", Aci, report(10, 1000, 2, [2, 0, 2, 2])),
        one_month("49", Aci, report(10, 1000, 2, [2, 1, 2, 2])),
    ])?;
    assert_eq!(exits.suppressed, "", "the cell itself is published: {exits:?}");
    for m in &exits.measures {
        let exit = m.name.starts_with("exits_") || m.name == "dynamic_exit_rate";
        assert_eq!(m.value.is_none(), exit, "{m:?}");
        if exit {
            assert_eq!(m.suppressed, "one structure contributes more than 85 % of exits_transition");
        }
    }
    Ok(())
}

/// "Two lines together": 62 structures over 5 départements × 5 kinds, laid out as in the issue's
/// reproduction — the sum of two row totals minus two columns' visible parts gave a suppressed
/// single-structure cell exactly under the line-by-line rule.
#[test]
fn two_lines_together_give_nothing_away() -> anyhow::Result<()> {
    let deps = ["44", "49", "53", "72", "85"];
    let kinds =
        [StructureKind::Ai, StructureKind::Aci, StructureKind::Ei, StructureKind::Etti, StructureKind::Eiti];
    // Structures per cell: a few singletons and pairs among well-populated cells.
    let counts = [[4, 3, 1, 2, 3], [3, 4, 3, 1, 2], [2, 3, 4, 3, 1], [1, 2, 3, 4, 3], [3, 1, 2, 3, 1]];
    let mut layout = Vec::new();
    for (d, row) in counts.iter().enumerate() {
        for (k, n) in row.iter().enumerate() {
            for i in 0..*n {
                let seed = (d * 31 + k * 7 + i as usize * 3) as i64;
                layout.push(one_month(
                    deps[d],
                    kinds[k],
                    report(6 + seed % 5, 800 + 37 * seed % 400, 1 + seed % 3, [seed % 2, 1, seed % 3, 1]),
                ));
            }
        }
    }
    assert_eq!(layout.len(), 62);
    let dir = tempfile::tempdir()?;
    let hub = publish(dir.path(), &layout, 15)?;
    let exposed = attack(&hub, &layout, &["2026-01"], 15)?;
    assert!(exposed.is_empty(), "exposed: {exposed:#?}");
    Ok(())
}

/// The most structures in a random layout: 25 in the suite; a longer run sets
/// `PASSERELLE_AUDIT_STRUCTURES=60` (and `PROPTEST_CASES`), see BENCHMARKS.md.
fn max_structures() -> usize {
    std::env::var("PASSERELLE_AUDIT_STRUCTURES").ok().and_then(|v| v.parse().ok()).unwrap_or(25)
}

/// A random layout: 1 to 25 structures over up to 4 départements × 3 kinds, reporting one
/// month, or (one layout in four) the three months of a quarter.
fn layout() -> impl Strategy<Value = (Vec<Reporter>, bool)> {
    let reporter = (0..4usize, 0..3usize, 3..30i64, 200..3000i64, 0..6i64, prop::array::uniform4(0..4i64));
    let most = max_structures();
    (
        prop::collection::vec(reporter, 1..=most),
        prop::bool::weighted(0.25),
        prop::collection::vec(0..3u8, most),
    )
        .prop_map(|(rows, quarter, skip)| {
            let deps = ["44", "49", "53", "72"];
            let kinds = [StructureKind::Ai, StructureKind::Aci, StructureKind::Ei];
            let rows = rows
                .into_iter()
                .enumerate()
                .map(|(i, (d, k, employees, hours, hires, exits))| {
                    let months: BTreeMap<Month, [i64; 9]> = if quarter {
                        // Each structure misses at most one of the three months.
                        (1..=3u8)
                            .filter(|m| *m != skip[i] + 1 || i % 2 == 0)
                            .map(|m| {
                                let drift = i64::from(m) * 7;
                                (
                                    Month { year: 2026, month: m },
                                    report(employees, hours + drift, hires, exits),
                                )
                            })
                            .collect()
                    } else {
                        BTreeMap::from([(
                            Month { year: 2026, month: 1 },
                            report(employees, hours, hires, exits),
                        )])
                    };
                    Reporter { departement: deps[d].into(), kind: kinds[k] as i32, months }
                })
                .collect();
            (rows, quarter)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    /// Whatever the layout, an attacker reading every published table of a month (or of a
    /// quarter and its three months) narrows no withheld value past the protection range.
    #[test]
    fn no_layout_lets_a_solver_narrow_a_withheld_value((layout, quarter) in layout()) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let started = std::time::Instant::now();
        let hub = publish(dir.path(), &layout, 15).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let published = started.elapsed();
        let periods: &[&str] = if quarter { &["2026-01", "2026-02", "2026-03", "2026-Q1"] } else { &["2026-01"] };
        let exposed = attack(&hub, &layout, periods, 15).map_err(|e| TestCaseError::fail(e.to_string()))?;
        if std::env::var("AUDIT_DEBUG").is_ok() {
            eprintln!("{} structures, quarter {quarter}: published in {published:?}, attacked in {:?}", layout.len(), started.elapsed() - published);
        }
        prop_assert!(exposed.is_empty(), "exposed: {:#?}", exposed);
    }
}

/// A structure reporting the same values in each of `months` (of 2026).
pub(super) fn steady(departement: &str, kind: StructureKind, months: &[u8], v: [i64; 9]) -> Reporter {
    Reporter {
        departement: departement.into(),
        kind: kind as i32,
        months: months.iter().map(|m| (Month { year: 2026, month: *m }, v)).collect(),
    }
}

/// The cell of `table` at (département, kind) coordinates `at`.
fn cell_at<'t>(
    table: &'t passerelle_proto::v1::Table,
    at: &[&str; 2],
) -> Option<&'t passerelle_proto::v1::Cell> {
    table.cells.iter().find(|c| {
        let xy = coords(table, &c.key);
        xy[0] == at[0] && xy[1] == at[1]
    })
}

fn value_of(cell: &passerelle_proto::v1::Cell, measure: &str) -> Option<i64> {
    cell.measures.iter().find(|m| m.name == measure).and_then(|m| m.value)
}

/// Attack on stocks (monthly averages per structure), which the audit does not link to their
/// months: a quarter's complement that every month publishes is known to the attacker anyway.
/// When a cell's `structures` count is the same in the quarter and in each month, the same
/// structures reported every month, so the quarter's average is the mean of the months' cells
/// within ±½ per structure (rounding). Layout: row 44 holds X (2 structures, primary
/// everywhere), Y (3 structures a month, different ones each month: 9 in the quarter) and Z
/// (4 steady structures); row 53 the same pattern with bigger values. The months pick Y as
/// X's complement (3 < 4 structures), the quarter picks Z (4 < 9) — which the months publish.
/// X's structures report no hours, hires or exits that quarter (staff on leave), so its flows
/// need no protection and the flow audit, which links periods, has nothing to say.
#[test]
fn a_quarters_stock_complement_is_not_recomputed_from_its_months() -> anyhow::Result<()> {
    use StructureKind::{Aci, Ai, Ei};
    let all = [1, 2, 3];
    let mut layout = vec![
        steady("44", Ai, &all, report(20, 0, 0, [0, 0, 0, 0])),
        steady("44", Ai, &all, report(25, 0, 0, [0, 0, 0, 0])),
    ];
    for m in 1..=3u8 {
        for _ in 0..3 {
            layout.push(steady("44", Aci, &[m], report(12, 100 * 12, 1, [1, 0, 0, 0])));
            layout.push(steady("53", Aci, &[m], report(30, 100 * 30, 1, [1, 0, 0, 0])));
        }
    }
    for _ in 0..4 {
        layout.push(steady("44", Ei, &all, report(10, 100 * 10, 1, [1, 0, 0, 0])));
        layout.push(steady("53", Ai, &all, report(40, 100 * 40, 1, [1, 0, 0, 0])));
    }
    for _ in 0..5 {
        layout.push(steady("53", Ei, &all, report(35, 100 * 35, 1, [1, 0, 0, 0])));
    }
    let dir = tempfile::tempdir()?;
    let hub = publish(dir.path(), &layout, 15)?;
    let measure = "employees_in_insertion";
    let (quarter, months) = q1_grids(&hub, measure)?;
    let x = ["44", "ai"];
    let truth = value_of(cell_at(&quarter, &x).expect("X listed"), measure);
    assert_eq!(truth, None, "X is withheld in the quarter");
    // Where the row, a cell or a count the attack needs is withheld, the attack fails.
    let Some(row) = value_of(cell_at(&quarter, &["44", "*"]).expect("row"), measure) else { return Ok(()) };
    // Every other cell of the row: published in the quarter, or recomputed from the months.
    let (mut low, mut high) = (row as f64, row as f64);
    for kind in ["aci", "ei"] {
        let at = ["44", kind];
        let q = cell_at(&quarter, &at).expect("listed");
        if let Some(v) = value_of(q, measure) {
            low -= v as f64;
            high -= v as f64;
            continue;
        }
        // Same count every month, and the quarter's column count leaves no room for structures
        // that came and went: the column's cells in every month hold the column's structures
        // of the quarter, so each reported every month (and the quarter's average of each is
        // the mean of its months, within ½).
        let monthly: Vec<_> = months.iter().filter_map(|t| cell_at(t, &at)).collect();
        let values: Vec<i64> = monthly.iter().filter_map(|c| value_of(c, measure)).collect();
        if values.len() != 3 {
            return Ok(());
        }
        let k = monthly[0].structures.unwrap_or(0);
        if !monthly.iter().all(|c| c.structures == Some(k)) {
            return Ok(());
        }
        let column = cell_at(&quarter, &["*", kind]).and_then(|c| c.structures);
        for t in &months {
            let cells: Option<u32> =
                ["44", "53"].iter().map(|d| cell_at(t, &[d, kind]).and_then(|c| c.structures)).sum();
            if cells.is_none() || cells != column {
                return Ok(());
            }
        }
        let k = f64::from(k);
        let mean = values.iter().sum::<i64>() as f64 / 3.0;
        low -= mean + k / 2.0;
        high -= mean - k / 2.0;
    }
    let value = 45; // 20 + 25
    let interval = super::audit::Interval { low: low.max(0.0), high };
    assert!(protects(value, interval, 15), "X = {value} narrowed to {interval:?}");
    Ok(())
}

/// Attack on the audit's fallback: when a structure changes kind within a quarter, its quarter
/// is counted under its latest month's kind, the published months no longer add up to the
/// quarter, and the audit drops the link between periods for every flow — of every cell, not
/// only the mover's. The attacker still knows that an unmoved cell's quarter is the sum of its
/// months. Layout: the stock attack's rows 44 and 53 with hours, and a row 72 where one
/// structure moves from ACI to EI in March.
#[test]
fn a_structure_changing_kind_does_not_unlink_the_other_cells() -> anyhow::Result<()> {
    use StructureKind::{Aci, Ai, Ei};
    let all = [1, 2, 3];
    let flows = |employees: i64| report(employees, 100 * employees, 1, [1, 0, 0, 0]);
    let mut layout = vec![
        // The mover: reporters 0 and 1 are one structure.
        steady("72", Aci, &[1, 2], flows(11)),
        steady("72", Ei, &[3], flows(11)),
        steady("44", Ai, &all, flows(20)),
        steady("44", Ai, &all, flows(25)),
    ];
    for m in 1..=3u8 {
        for _ in 0..3 {
            layout.push(steady("44", Aci, &[m], flows(12)));
            layout.push(steady("53", Aci, &[m], flows(30)));
        }
    }
    for _ in 0..3 {
        layout.push(steady("72", Aci, &all, flows(10)));
        layout.push(steady("72", Ei, &all, flows(10)));
    }
    for _ in 0..4 {
        layout.push(steady("44", Ei, &all, flows(10)));
        layout.push(steady("53", Ai, &all, flows(40)));
    }
    for _ in 0..5 {
        layout.push(steady("53", Ei, &all, flows(35)));
    }
    let dir = tempfile::tempdir()?;
    let hub = publish_as(dir.path(), &layout, 15, |i| if i == 1 { 0 } else { i })?;
    let measure = "hours_worked";
    let (quarter, _months) = q1_grids(&hub, measure)?;
    let x = cell_at(&quarter, &["44", "ai"]).expect("X listed");
    assert!(is_primary(&x.suppressed), "X is withheld in the quarter: {x:?}");
    // The mover's row is left unlinked (and out of the verdict: `truth` counts a reporter's
    // months under its own attributes, not its latest).
    let periods = ["2026-01", "2026-02", "2026-03", "2026-Q1"];
    let exposed: Vec<String> = attack_linking(&hub, &layout, &periods, 15, |at| at[0] != "72")?
        .into_iter()
        .filter(|e| !e.contains("\"72\""))
        .collect();
    assert!(exposed.is_empty(), "exposed: {exposed:#?}");
    Ok(())
}

/// The mover itself, as an attacker who knows it moved (the SIRET registry is public): its
/// January and February are counted in the months under 72 × ACI and in the quarter under
/// 72 × EI, so the quarter's 72 × EI is its months' plus the mover's January and February, and
/// its 72 × ACI its months' minus them. The attacker links every cell with those parts as
/// unknowns (each at most its month's cell) and solves for them: they must stay within the
/// protection range of the mover's true figures (hours: 2,200).
#[test]
fn a_structure_changing_kind_is_not_the_quarter_minus_its_months() -> anyhow::Result<()> {
    use StructureKind::{Aci, Ai, Ei};
    let all = [1, 2, 3];
    let flows = |employees: i64| report(employees, 100 * employees, 1, [1, 0, 0, 0]);
    let mut layout = vec![steady("72", Aci, &[1, 2], flows(11)), steady("72", Ei, &[3], flows(11))];
    for _ in 0..3 {
        layout.push(steady("72", Aci, &all, flows(10)));
        layout.push(steady("72", Ei, &all, flows(10)));
        layout.push(steady("44", Ai, &all, flows(20)));
        layout.push(steady("44", Aci, &all, flows(12)));
    }
    let dir = tempfile::tempdir()?;
    let hub = publish_as(dir.path(), &layout, 15, |i| if i == 1 { 0 } else { i })?;
    let periods = ["2026-01", "2026-02", "2026-03", "2026-Q1"];
    let tables: Vec<Vec<passerelle_proto::v1::Table>> =
        periods.iter().map(|p| read_all(&hub, p)).collect::<anyhow::Result<_>>()?;
    let (from, to) = (["72".to_string(), "aci".to_string()], ["72".to_string(), "ei".to_string()]);
    let mut exposed = Vec::new();
    for (measure, m) in INDICATORS.measures.iter().enumerate() {
        let mover: i64 = [1u8, 2]
            .iter()
            .map(|month| layout[0].months[&Month { year: 2026, month: *month }][measure])
            .sum();
        if m.agg() != Agg::Sum || mover <= 0 {
            continue;
        }
        let mut system = System::default();
        let mut unknowns: Vec<BTreeMap<[String; 2], usize>> = Vec::new();
        for period_tables in &tables {
            let finest = period_tables
                .iter()
                .find(|t| t.by == ["departement", "kind"])
                .ok_or_else(|| anyhow::anyhow!("no département × kind table"))?;
            unknowns.push(
                finest
                    .cells
                    .iter()
                    .filter(|c| !c.total)
                    .map(|c| (coords(finest, &c.key), system.unknown()))
                    .collect(),
            );
        }
        // The mover's January and February, each at most its month's 72 × ACI cell.
        let parts: Vec<usize> = (0..2).map(|_| system.unknown()).collect();
        for (month, part) in parts.iter().enumerate() {
            let cell = *unknowns[month].get(&from).ok_or_else(|| anyhow::anyhow!("72 × aci listed"))?;
            let rest = system.unknown();
            system.equal(vec![(cell, 1.0), (*part, -1.0), (rest, -1.0)], 0.0);
        }
        let (quarter, months) = unknowns.split_last().expect("four periods");
        for (key, q) in quarter {
            let mut terms: Vec<Term> = months.iter().filter_map(|u| u.get(key).map(|x| (*x, 1.0))).collect();
            let sign = if *key == from {
                -1.0
            } else if *key == to {
                1.0
            } else {
                0.0
            };
            terms.extend(parts.iter().filter(|_| sign != 0.0).map(|p| (*p, sign)));
            terms.push((*q, -1.0));
            system.equal(terms, 0.0);
        }
        for (p, period_tables) in tables.iter().enumerate() {
            for table in period_tables {
                for cell in &table.cells {
                    let at = coords(table, &cell.key);
                    let Some(v) = cell.measures.iter().find(|x| x.name == m.name()).and_then(|x| x.value)
                    else {
                        continue;
                    };
                    let terms: Vec<Term> =
                        unknowns[p].iter().filter(|(k, _)| matches(k, &at)).map(|(_, x)| (*x, 1.0)).collect();
                    system.equal(terms, v as f64);
                }
            }
        }
        let objective: Vec<Term> = parts.iter().map(|p| (*p, 1.0)).collect();
        let interval =
            system.range(&objective).map_err(|_| anyhow::anyhow!("published cells are inconsistent"))?;
        if !protects(mover, interval, 15) {
            exposed.push(format!(
                "{} = {mover}, narrowed to [{:.2}, {:.2}]",
                m.name(),
                interval.low,
                interval.high
            ));
        }
    }
    assert!(exposed.is_empty(), "the mover's January and February: {exposed:#?}");
    // Protected by withholding, not by leaving the quarter out: it is published (its total),
    // and a cell of the mover's row is withheld though every cell of the row has six
    // structures. (On a layout this small, the greedy complements withhold every other cell.)
    let (quarter, _) = q1_grids(&hub, "hours_worked")?;
    let shown = |at: &[&str; 2]| cell_at(&quarter, at).and_then(|c| value_of(c, "hours_worked"));
    assert_eq!(shown(&["*", "*"]), Some(50_100), "the quarter is published: {quarter:?}");
    assert!(shown(&["72", "aci"]).is_none() || shown(&["72", "ei"]).is_none(), "{quarter:?}");
    Ok(())
}

/// The département × kind tables of 2026-Q1 and of its three months, as a consumer reads them
/// (printed with `measure` under `AUDIT_DEBUG`).
fn q1_grids(
    hub: &Hub,
    measure: &str,
) -> anyhow::Result<(passerelle_proto::v1::Table, Vec<passerelle_proto::v1::Table>)> {
    let grid = |period: &str| -> anyhow::Result<passerelle_proto::v1::Table> {
        Ok(hub.table(&GetTableRequest {
            table: "indicators".into(),
            by: vec!["departement".into(), "kind".into()],
            period: period.into(),
            from: None,
            to: None,
            revision: None,
        })?)
    };
    let quarter = grid("2026-Q1")?;
    let months: Vec<_> =
        ["2026-01", "2026-02", "2026-03"].iter().map(|p| grid(p)).collect::<anyhow::Result<_>>()?;
    if std::env::var("AUDIT_DEBUG").is_ok() {
        for (p, t) in ["Q", "m1", "m2", "m3"].iter().zip(std::iter::once(&quarter).chain(&months)) {
            for c in &t.cells {
                eprintln!(
                    "{p} {:?} n={:?} {measure}={:?} {}",
                    c.key,
                    c.structures,
                    value_of(c, measure),
                    c.suppressed
                );
            }
        }
    }
    Ok((quarter, months))
}

/// A hub spanning two régions: a région minus its published départements must not give a
/// withheld département. Pays de la Loire = 44 (three structures) + 49 (one structure, withheld);
/// Île-de-France = 75 (four structures). Every published région cell sums published
/// département cells only.
#[test]
fn a_region_table_reveals_no_withheld_departement() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let month = Month { year: 2026, month: 7 };
    let reporter = |departement: &str, kind: StructureKind, hours: i64| Reporter {
        departement: departement.into(),
        kind: kind as i32,
        months: [(month, report(8, hours, 2, [1, 1, 0, 0]))].into_iter().collect(),
    };
    let layout = vec![
        reporter("44", StructureKind::Aci, 1200),
        reporter("44", StructureKind::Aci, 1300),
        reporter("44", StructureKind::Ai, 1400),
        reporter("49", StructureKind::Ei, 5000),
        reporter("75", StructureKind::Aci, 1000),
        reporter("75", StructureKind::Ai, 1100),
        reporter("75", StructureKind::Ei, 1150),
        reporter("75", StructureKind::Ei, 1250),
    ];
    let hub = publish(dir.path(), &layout, 15)?;
    let table = |by: &[&str]| {
        hub.table(&GetTableRequest {
            table: "indicators".into(),
            by: by.iter().map(|d| d.to_string()).collect(),
            period: "2026-07".into(),
            from: None,
            to: None,
            revision: None,
        })
    };
    for (by_region, by_dep) in
        [(&["region"][..], &["departement"][..]), (&["region", "kind"], &["departement", "kind"])]
    {
        let regions = table(by_region)?;
        let deps = table(by_dep)?;
        for cell in regions.cells.iter().filter(|c| c.suppressed.is_empty()) {
            let parts: Vec<_> = deps
                .cells
                .iter()
                .filter(|d| {
                    d.key.iter().zip(&cell.key).enumerate().all(|(i, (dk, rk))| match i {
                        0 if rk == "*" => dk == "*",
                        0 => dk != "*" && passerelle_proto::geo::region_of(dk) == Some(rk.as_str()),
                        _ => dk == rk,
                    })
                })
                .collect();
            assert!(!parts.is_empty(), "{by_region:?} {:?}", cell.key);
            assert!(
                parts.iter().all(|d| d.suppressed.is_empty()),
                "{by_region:?} {:?} is published but sums a withheld département: {parts:?}",
                cell.key
            );
        }
        let pdl = regions.cells.iter().find(|c| c.key.first().map(String::as_str) == Some("52"));
        if by_region.len() == 1 {
            assert!(
                pdl.is_some_and(|c| !c.suppressed.is_empty()),
                "Pays de la Loire minus 44 is 49: {pdl:?}"
            );
        }
    }
    Ok(())
}
