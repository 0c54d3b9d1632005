//! Tests of the cells on a real hub store (test-only module): cells kept incrementally equal a
//! recomputation, relays are reference-counted, periods freeze, linked tables hold against an attacker.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use passerelle_proto::identity::{PeerId, Role};
use passerelle_proto::v1::{
    Batch, Change, Exits, GetTableRequest, IndicatorFields, IndicatorReport, SharedNeed, Structure,
    Tombstone, change,
};
use proptest::prelude::*;
use prost::Message;

use super::aggregates::*;
use super::catalogue::*;
use super::disclosure::*;
use super::family::*;
use super::tables::*;
use crate::hub::Hub;
use crate::hub::ingest::PushSession;
use crate::store::Tree;
use crate::store::keys::{CellKey, CellPeriod};
use crate::tls::Peer;
use passerelle_proto::datasets::Dataset;

/// Cell key → structure → (values, records).
type Cells = BTreeMap<Vec<u8>, BTreeMap<String, (Vec<i64>, u32)>>;

/// A structure's rollup in the model: (latest month, attributes, values, months).
type ModelRollup = (u32, (String, i32), Vec<i64>, u32);

/// Rollup cells by key: (structure, values, records) per contribution.
type RollupCells = BTreeMap<Vec<u8>, BTreeSet<(String, Vec<i64>, u32)>>;

const ORIGINS: [(&str, &str, i32); 3] =
    [("73282932000074", "49", 1), ("44306184100047", "44", 2), ("52104378900010", "49", 1)];

fn hub(dir: &std::path::Path) -> Hub {
    Hub::for_tests(dir)
}

/// (origin, what, key, value): what 0 = report, 1 = report withdrawn, 2 = open need,
/// 3 = filled need, 4 = need withdrawn, 5 = the structure's kind (key % 2 == 0) or département
/// changes (its `Hello` says so).
fn op() -> impl Strategy<Value = (usize, u8, u8, u32)> {
    (0..3usize, 0..6u8, 0..4u8, 1..50u32)
}

/// Reports of 2026 for three structures of 49: A and B every month, C all but February and
/// the third quarter. Each sub-period table alone is correct; together, published periods
/// must not give a withheld one away by subtraction.
#[test]
fn no_withheld_month_or_quarter_can_be_recomputed_from_other_periods() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let hub = hub(dir.path());
    hub.admit(
        &Peer {
            id: PeerId { role: Role::Hub, id: "coorace-pdl".into() },
            serial: None,
            network: Some("coorace".into()),
        },
        None,
    )?;
    let session = PushSession::for_tests_relay("coorace-pdl", 1);
    let mut changes = Vec::new();
    for (i, (siret, _, _)) in ORIGINS.iter().enumerate() {
        let origin =
            Structure { siret: (*siret).into(), kind: 1, name: format!("S{i}"), departement: "49".into() };
        for month in 1..=12u8 {
            if i == 2 && (month == 2 || (7..=9).contains(&month)) {
                continue;
            }
            let period = format!("2026-{month:02}");
            let report = IndicatorReport {
                siret: (*siret).into(),
                fields: Some(IndicatorFields {
                    period: period.clone(),
                    etp_hundredths: 500,
                    employees_in_insertion: 10,
                    hours_worked: 1000 + 100 * i as u64 + u64::from(month),
                    hires: 1,
                    exits: Some(Exits { total: 6, durable: 2, transition: 1, positive: 1, other: 2 }),
                }),
                version: 1,
                submitted_at_ms: 0,
            };
            changes.push(Change {
                dataset: "indicators".into(),
                key: period,
                version: 1,
                payload: Some(change::Payload::Indicators(report)),
                origin: Some(origin.clone()),
                origin_epoch: vec![1; 16],
                origin_epoch_created_at_ms: 1,
                ..Default::default()
            });
        }
    }
    hub.apply_batch(&session, Batch { seq: 1, changes, head_seq: 1, ..Default::default() })?;
    // Consumers read closed periods only.
    for m in 1..=12 {
        let month = passerelle_proto::date::Month { year: 2026, month: m };
        hub.close_month(month, passerelle_proto::periods::month_end_ms(month))?;
    }

    let months: Vec<String> = (1..=12).map(|m| format!("2026-{m:02}")).collect();
    let quarters: Vec<String> = (1..=4).map(|q| format!("2026-Q{q}")).collect();
    let periods: Vec<String> = months.iter().chain(&quarters).cloned().chain(["2026".to_string()]).collect();
    // Each period's total of hours, as a consumer reads it (None: withheld).
    let read = |naive: bool| -> anyhow::Result<BTreeMap<String, Option<i64>>> {
        periods
            .iter()
            .map(|p| {
                let cells = if naive {
                    let (summaries, _) = hub.indicator_summaries(p, &[])?;
                    controlled(&INDICATORS, with_margins(&[], &summaries, Summary::merge), &[], 5, 15)
                } else {
                    hub.table(&GetTableRequest {
                        table: "indicators".into(),
                        period: p.clone(),
                        ..Default::default()
                    })?
                    .cells
                };
                let hours =
                    cells.first().and_then(|c| c.measures.iter().find(|m| m.name == "hours_worked")?.value);
                Ok((p.clone(), hours))
            })
            .collect()
    };
    // The attacker: a period is the sum of its sub-periods; solve every relation with one unknown.
    let relations: Vec<(String, Vec<String>)> = (0..4)
        .map(|q| (quarters[q].clone(), months[q * 3..q * 3 + 3].to_vec()))
        .chain([("2026".to_string(), quarters.clone()), ("2026".to_string(), months.clone())])
        .collect();
    let attack = |published: &BTreeMap<String, Option<i64>>| -> Vec<String> {
        let mut known: BTreeMap<String, i64> =
            published.iter().filter_map(|(p, v)| v.map(|v| (p.clone(), v))).collect();
        let mut recovered = Vec::new();
        loop {
            let mut progress = false;
            for (total, parts) in &relations {
                let unknown: Vec<&String> = parts.iter().filter(|p| !known.contains_key(*p)).collect();
                if let (Some(t), [one]) = (known.get(total).copied(), unknown.as_slice()) {
                    let sum: i64 = parts.iter().filter_map(|p| known.get(p)).sum();
                    known.insert((*one).clone(), t - sum);
                    recovered.push((*one).clone());
                    progress = true;
                }
            }
            if !progress {
                return recovered;
            }
        }
    };
    let naive = read(true)?;
    assert_eq!(naive["2026-02"], None, "February has 2 structures: withheld");
    assert!(naive["2026-Q1"].is_some(), "the first quarter alone has 3: published");
    assert!(attack(&naive).contains(&"2026-02".to_string()), "Q1 − January − March gives February away");

    let published = read(false)?;
    assert_eq!(attack(&published), Vec::<String>::new(), "{published:?}");
    assert_eq!(published["2026-Q1"], None, "Q1 is withheld to protect February");
    assert_eq!(published["2026-Q3"], None, "Q3 has 2 structures");
    assert!(published["2026"].is_some(), "two withheld quarters reveal only their sum: the year stays");
    let q1 = hub.table(&GetTableRequest {
        table: "indicators".into(),
        period: "2026-Q1".into(),
        ..Default::default()
    })?;
    assert_eq!(q1.cells[0].suppressed, SECONDARY_PERIOD);
    assert!(q1.rules.iter().any(|r| r.contains("exactly one of its months or quarters")));
    Ok(())
}

/// A valid SIRET (Luhn) for structure `n`.
pub(super) fn siret(n: usize) -> String {
    let base = format!("{:013}", 1_000_000_000_000u64 + n as u64 * 7919);
    (0..10)
        .map(|d| format!("{base}{d}"))
        .find(|s| passerelle_proto::validate::siret("siret", s).is_ok())
        .unwrap_or_default()
}

/// A cell's (département, kind) coordinates, `*` for all.
type Coords = (String, String);
/// A cell's coordinates and its published hours (None: withheld).
type Seen = (Coords, Option<i64>);

/// The four linked tables of one month — by nothing, département, kind, département × kind
/// — read together: built so that, computed one by one, the kind table publishes ETTI's
/// figure which the département × kind table withheld to protect 49 × ACI (2 structures).
#[test]
fn linked_tables_share_one_suppression_and_give_nothing_away_together() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let hub = hub(dir.path());
    hub.admit(
        &Peer {
            id: PeerId { role: Role::Hub, id: "coorace-pdl".into() },
            serial: None,
            network: Some("coorace".into()),
        },
        None,
    )?;
    // (département, kind, structures, employees each, hours each)
    let groups: [(&str, i32, usize, u32, u64); 5] = [
        ("49", 1, 3, 10, 1200), // AI
        ("49", 2, 2, 10, 1000), // ACI: fewer than 3 structures
        ("49", 4, 3, 6, 500),   // ETTI, only in 49
        ("44", 1, 3, 12, 1500), // AI
        ("44", 3, 3, 5, 300),   // EI, only in 44, the smallest kind
    ];
    let mut changes = Vec::new();
    let mut n = 0;
    for (dep, kind, count, employees, hours) in groups {
        for _ in 0..count {
            n += 1;
            let siret = siret(n);
            let origin =
                Structure { siret: siret.clone(), kind, name: format!("S{n}"), departement: dep.into() };
            let report = IndicatorReport {
                siret,
                fields: Some(IndicatorFields {
                    period: "2026-10".into(),
                    etp_hundredths: hours * 100 / 134,
                    employees_in_insertion: employees,
                    hours_worked: hours,
                    hires: 1,
                    exits: Some(Exits { total: 6, durable: 2, transition: 1, positive: 1, other: 2 }),
                }),
                version: 1,
                submitted_at_ms: 0,
            };
            changes.push(Change {
                dataset: "indicators".into(),
                key: "2026-10".into(),
                version: 1,
                payload: Some(change::Payload::Indicators(report)),
                origin: Some(origin),
                origin_epoch: vec![1; 16],
                origin_epoch_created_at_ms: 1,
                ..Default::default()
            });
        }
    }
    hub.apply_batch(
        &PushSession::for_tests_relay("coorace-pdl", 1),
        Batch { seq: 1, changes, head_seq: 1, ..Default::default() },
    )?;
    let october = passerelle_proto::date::Month { year: 2026, month: 10 };
    hub.close_month(october, passerelle_proto::periods::month_end_ms(october))?;

    let shapes: [Vec<String>; 4] =
        [vec![], vec!["departement".into()], vec!["kind".into()], vec!["departement".into(), "kind".into()]];
    // Every cell of every table, by its (département, kind) coordinates.
    let read = |naive: bool| -> anyhow::Result<Vec<Seen>> {
        let mut all = Vec::new();
        for by in &shapes {
            let cells = if naive {
                let (summaries, _) = hub.indicator_summaries("2026-10", by)?;
                controlled(&INDICATORS, with_margins(by, &summaries, Summary::merge), by, 5, 15)
            } else {
                hub.table(&GetTableRequest {
                    table: "indicators".into(),
                    by: by.clone(),
                    period: "2026-10".into(),
                    ..Default::default()
                })?
                .cells
            };
            let shape = [by.iter().any(|d| d == "departement"), by.iter().any(|d| d == "kind")];
            for c in cells {
                let hours = c.measures.iter().find(|m| m.name == "hours_worked").and_then(|m| m.value);
                let xy = coords(&c, &shape);
                all.push(((xy[0].clone(), xy[1].clone()), hours));
            }
        }
        Ok(all)
    };
    // The attacker: every row, column and margin relation, with all tables' published values.
    let attack = |cells: &[Seen]| -> Vec<(String, String)> {
        let mut known: HashMap<(String, String), i64> =
            cells.iter().filter_map(|(k, v)| v.map(|v| (k.clone(), v))).collect();
        let all: BTreeSet<(String, String)> = cells.iter().map(|(k, _)| k.clone()).collect();
        let star = || "*".to_string();
        let mut relations: Vec<(Coords, Vec<Coords>)> = Vec::new();
        let interior: Vec<&(String, String)> = all.iter().filter(|(d, k)| d != "*" && k != "*").collect();
        let deps: BTreeSet<&String> = interior.iter().map(|(d, _)| d).collect();
        let kinds: BTreeSet<&String> = interior.iter().map(|(_, k)| k).collect();
        for d in &deps {
            relations.push((
                (d.to_string(), star()),
                interior.iter().filter(|(x, _)| x == *d).map(|c| (*c).clone()).collect(),
            ));
        }
        for k in &kinds {
            relations.push((
                (star(), k.to_string()),
                interior.iter().filter(|(_, x)| x == *k).map(|c| (*c).clone()).collect(),
            ));
        }
        relations.push(((star(), star()), deps.iter().map(|d| (d.to_string(), star())).collect()));
        relations.push(((star(), star()), kinds.iter().map(|k| (star(), k.to_string())).collect()));
        let mut recovered = Vec::new();
        loop {
            let mut progress = false;
            for (total, parts) in &relations {
                let unknown: Vec<&(String, String)> =
                    parts.iter().filter(|p| !known.contains_key(*p)).collect();
                if let (Some(t), [one]) = (known.get(total).copied(), unknown.as_slice()) {
                    let sum: i64 = parts.iter().filter_map(|p| known.get(p)).sum();
                    known.insert((*one).clone(), t - sum);
                    recovered.push((*one).clone());
                    progress = true;
                }
            }
            if !progress {
                return recovered;
            }
        }
    };
    let aci_49 = ("49".to_string(), "aci".to_string());
    let naive = read(true)?;
    assert!(attack(&naive).contains(&aci_49), "tables computed one by one give 49 × ACI away: {naive:?}");

    let linked = read(false)?;
    assert_eq!(attack(&linked), Vec::<(String, String)>::new(), "{linked:?}");
    // And a cell has one status wherever it shows.
    let mut status: HashMap<(String, String), bool> = HashMap::new();
    for (coords, value) in &linked {
        let published = value.is_some();
        assert_eq!(*status.entry(coords.clone()).or_insert(published), published, "{coords:?} in {linked:?}");
    }
    Ok(())
}

/// A record relayed by two network hubs stays until neither relays it; counted once.
#[test]
fn relayed_records_are_reference_counted() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let hub = hub(dir.path());
    let (siret, dep, kind) = ORIGINS[0];
    let origin = Structure { siret: siret.into(), kind, name: "S".into(), departement: dep.into() };
    for relay in ["coorace-pdl", "fas-pdl"] {
        hub.admit(
            &Peer {
                id: PeerId { role: Role::Hub, id: relay.into() },
                serial: None,
                network: Some("coorace".into()),
            },
            None,
        )?;
    }
    let report = IndicatorReport {
        siret: siret.into(),
        fields: Some(IndicatorFields {
            period: "2026-10".into(),
            etp_hundredths: 100,
            employees_in_insertion: 10,
            hours_worked: 1000,
            hires: 2,
            exits: Some(Exits::default()),
        }),
        version: 2,
        submitted_at_ms: 0,
    };
    let change = |payload| Change {
        dataset: "indicators".into(),
        key: "2026-10".into(),
        version: 2,
        payload: Some(payload),
        origin: Some(origin.clone()),
        origin_epoch: vec![1; 16],
        origin_epoch_created_at_ms: 1,
        ..Default::default()
    };
    let tombstone = || {
        change::Payload::Tombstone(Tombstone {
            origin_siret: siret.into(),
            hub_id: "coorace-pdl".into(),
            reason: "no longer relayed".into(),
        })
    };
    let coorace = PushSession::for_tests_relay("coorace-pdl", 1);
    let fas = PushSession::for_tests_relay("fas-pdl", 2);
    for session in [&coorace, &fas] {
        hub.apply_batch(
            session,
            Batch {
                seq: 1,
                changes: vec![change(change::Payload::Indicators(report.clone()))],
                head_seq: 1,
                ..Default::default()
            },
        )?;
    }
    let cells = hub.stat_cells("i/")?;
    assert_eq!(cells.values().map(|c| c.contributions.len()).sum::<usize>(), 1, "counted once");
    let sources = |hub: &Hub| -> anyhow::Result<Option<Vec<String>>> {
        Ok(hub.records_of(siret, Dataset::Indicators)?.first().map(|(_, r)| r.sources.clone()))
    };
    assert_eq!(sources(&hub)?, Some(vec!["coorace-pdl".to_string(), "fas-pdl".to_string()]));

    hub.apply_batch(
        &fas,
        Batch { seq: 2, changes: vec![change(tombstone())], head_seq: 2, ..Default::default() },
    )?;
    assert_eq!(sources(&hub)?, Some(vec!["coorace-pdl".to_string()]), "still relayed by Coorace");
    assert_eq!(hub.stat_cells("i/")?.len(), 1, "still counted");

    hub.apply_batch(
        &coorace,
        Batch { seq: 2, changes: vec![change(tombstone())], head_seq: 2, ..Default::default() },
    )?;
    assert_eq!(sources(&hub)?, None, "no hub relays it: gone");
    assert!(
        hub.stat_cells("i/")?.is_empty() && hub.stat_cells("iq/")?.is_empty(),
        "and uncounted everywhere"
    );
    Ok(())
}

/// `hub remove` of a relaying hub purges it from every relayed record's sources: a record only it
/// relayed goes with its statistics, one another network also relays stays, counted once.
#[test]
fn removing_a_relaying_hub_purges_what_only_it_relayed() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let hub = hub(dir.path());
    for relay in ["coorace-pdl", "fas-pdl"] {
        hub.admit(
            &Peer {
                id: PeerId { role: Role::Hub, id: relay.into() },
                serial: None,
                network: Some("coorace".into()),
            },
            None,
        )?;
        hub.accept_member(relay, None)?;
    }
    let change = |n: usize| {
        let (siret, dep, kind) = ORIGINS[n];
        Change {
            dataset: "indicators".into(),
            key: "2026-10".into(),
            version: 1,
            payload: Some(change::Payload::Indicators(IndicatorReport {
                siret: siret.into(),
                fields: Some(IndicatorFields {
                    period: "2026-10".into(),
                    etp_hundredths: 100,
                    employees_in_insertion: 10,
                    hours_worked: 1000,
                    hires: 2,
                    exits: Some(Exits::default()),
                }),
                version: 1,
                submitted_at_ms: 0,
            })),
            origin: Some(Structure { siret: siret.into(), kind, name: "S".into(), departement: dep.into() }),
            origin_epoch: vec![1; 16],
            origin_epoch_created_at_ms: 1,
            ..Default::default()
        }
    };
    let coorace = PushSession::for_tests_relay("coorace-pdl", 1);
    let fas = PushSession::for_tests_relay("fas-pdl", 2);
    hub.apply_batch(
        &coorace,
        Batch { seq: 1, changes: vec![change(0), change(1)], head_seq: 1, ..Default::default() },
    )?;
    hub.apply_batch(&fas, Batch { seq: 1, changes: vec![change(0)], head_seq: 1, ..Default::default() })?;
    let contributions = |hub: &Hub| -> anyhow::Result<usize> {
        Ok(hub.stat_cells("i/")?.values().map(|c| c.contributions.len()).sum())
    };
    assert_eq!(contributions(&hub)?, 2);

    hub.remove_member("coorace-pdl", None)?;
    let (both, only_coorace) = (ORIGINS[0].0, ORIGINS[1].0);
    assert!(hub.records_of(only_coorace, Dataset::Indicators)?.is_empty(), "relayed by coorace alone: gone");
    let kept = hub.records_of(both, Dataset::Indicators)?;
    assert_eq!(kept.first().map(|(_, r)| r.sources.clone()), Some(vec!["fas-pdl".to_string()]));
    assert_eq!(contributions(&hub)?, 1, "its statistics went with it");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]
    #[test]
    fn incremental_cells_equal_a_full_recomputation(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let hub = hub(dir.path());
        let mut sessions = Vec::new();
        for (i, (siret, dep, kind)) in ORIGINS.iter().enumerate() {
            let peer = Peer { id: PeerId { role: Role::Node, id: (*siret).into() }, serial: None, network: Some("coorace".into()) };
            let structure = Structure { siret: (*siret).into(), kind: *kind, name: format!("S{i}"), departement: (*dep).into() };
            hub.admit(&peer, Some(structure)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            sessions.push(PushSession::for_tests(peer, vec![i as u8; 16], &[Dataset::Needs, Dataset::Indicators], i as u64 + 1));
        }
        let mut versions: HashMap<(usize, String), u64> = HashMap::new();
        // The model: each structure's attributes today, and those each live month counts under
        // (today's when it was first counted).
        let mut attributes: Vec<(String, i32)> = ORIGINS.iter().map(|(_, d, k)| ((*d).to_string(), *k)).collect();
        let mut counted_as: BTreeMap<(usize, String), (String, i32)> = BTreeMap::new();
        for (seq, (origin, what, key, value)) in ops.into_iter().enumerate() {
            let siret = ORIGINS[origin].0;
            if what == 5 {
                let (dep, kind) = &mut attributes[origin];
                if key % 2 == 0 { *kind = 1 + *kind % 3 } else { *dep = if dep == "49" { "44".into() } else { "49".into() } }
                let peer = Peer { id: PeerId { role: Role::Node, id: siret.into() }, serial: None, network: Some("coorace".into()) };
                let structure = Structure { siret: siret.into(), kind: *kind, name: format!("S{origin}"), departement: dep.clone() };
                hub.admit(&peer, Some(structure)).map_err(|e| TestCaseError::fail(e.to_string()))?;
                continue;
            }
            // Reports span two years, so quarters and years both roll up.
            let month_key = format!("{}-{:02}", 2026 + i32::from(key / 2), 1 + 5 * u32::from(key % 2) + value % 3);
            match what {
                0 => { counted_as.entry((origin, month_key.clone())).or_insert_with(|| attributes[origin].clone()); }
                1 => { counted_as.remove(&(origin, month_key.clone())); }
                _ => {}
            }
            let (dataset, key) = if what < 2 {
                ("indicators", month_key)
            } else {
                ("needs", format!("01920000-0000-7000-8000-00000000000{key}"))
            };
            let version = versions.entry((origin, key.clone())).or_default();
            *version += 1;
            let tombstone = Some(change::Payload::Tombstone(Tombstone { origin_siret: siret.into(), hub_id: "coorace-pdl".into(), reason: "deleted".into() }));
            let payload = match what {
                0 => Some(change::Payload::Indicators(IndicatorReport {
                    siret: siret.into(),
                    fields: Some(IndicatorFields {
                        period: key.clone(),
                        etp_hundredths: u64::from(value) * 10,
                        employees_in_insertion: value,
                        hours_worked: u64::from(value) * 100,
                        hires: value % 3,
                        exits: Some(Exits { total: value % 4, durable: value % 4, ..Default::default() }),
                    }),
                    version: *version,
                    submitted_at_ms: 0,
                })),
                2 | 3 => Some(change::Payload::Need(SharedNeed {
                    origin_siret: siret.into(),
                    need_id: key.clone(),
                    origin_version: *version,
                    rome_code: format!("K22{:02}", value % 5),
                    contract_type: 1,
                    open_positions: value,
                    hours_per_week: 20,
                    departement: "49".into(),
                    start_date: "2027-01-04".into(),
                    status: if what == 2 { 1 } else { 2 },
                    ..Default::default()
                })),
                _ => tombstone,
            };
            let batch = Batch { seq: seq as u64 + 1, changes: vec![Change { dataset: dataset.into(), key, version: *version, payload, ..Default::default() }], head_seq: 0, ..Default::default() };
            hub.apply_batch(&sessions[origin], batch).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        // Recompute every cell from the live records: a month under the attributes the model
        // says; a quarter and a year under those of the structure's latest month in it.
        let mut expected: Cells = BTreeMap::new();
        let mut add = |key: Vec<u8>, siret: &str, values: &[i64], records: u32| {
            let entry = expected.entry(key).or_default().entry(siret.to_string()).or_insert_with(|| (vec![0; values.len()], 0));
            for (a, v) in entry.0.iter_mut().zip(values) {
                *a += v;
            }
            entry.1 += records;
        };
        for (origin, (siret, _, _)) in ORIGINS.iter().enumerate() {
            for (_, record) in hub.records_of(siret, Dataset::Needs).map_err(|e| TestCaseError::fail(e.to_string()))? {
                if let Some((key, values)) = contribution(&record, None, None) {
                    add(key, siret, &values, 1);
                }
            }
            // Per rollup cell of this structure: (latest month, attributes, values, months).
            let mut rollups: BTreeMap<CellPeriod, ModelRollup> = BTreeMap::new();
            for (month_key, record) in hub.records_of(siret, Dataset::Indicators).map_err(|e| TestCaseError::fail(e.to_string()))? {
                let Some(values) = values_of(&record) else { continue };
                let attrs = counted_as[&(origin, month_key.clone())].clone();
                let month = passerelle_proto::date::Month::parse(&month_key).map_err(|e| TestCaseError::fail(e.0))?;
                let cell = |period| CellKey::Indicators { period, departement: attrs.0.clone(), kind: passerelle_proto::codes::slug_of::<passerelle_proto::v1::StructureKind>(attrs.1).to_string() };
                add(cell(CellPeriod::Month(month.ordinal())).encode(), siret, &values, 1);
                for period in [CellPeriod::Quarter(month.year as u32 * 4 + u32::from(month.month - 1) / 3), CellPeriod::Year(month.year as u32)] {
                    let entry = rollups.entry(period).or_insert_with(|| (0, attrs.clone(), vec![0; values.len()], 0));
                    if month.ordinal() >= entry.0 {
                        entry.0 = month.ordinal();
                        entry.1 = attrs.clone();
                    }
                    for (a, v) in entry.2.iter_mut().zip(&values) {
                        *a += v;
                    }
                    entry.3 += 1;
                }
            }
            for (period, (_, attrs, values, months)) in rollups {
                let kind = passerelle_proto::codes::slug_of::<passerelle_proto::v1::StructureKind>(attrs.1).to_string();
                add(CellKey::Indicators { period, departement: attrs.0, kind }.encode(), siret, &values, months);
            }
        }
        let mut actual: Cells = BTreeMap::new();
        for prefix in ["i/", "iq/", "iy/", "n/"] {
            for (k, cell) in hub.stat_cells(prefix).map_err(|e| TestCaseError::fail(e.to_string()))? {
                actual.insert(k, cell.contributions.into_iter().map(|c| (c.siret, (c.values, c.records))).collect());
            }
        }
        prop_assert_eq!(&actual, &expected);
        // Every indicators cell has a summary equal to one computed afresh.
        let stored = hub.store.scan(Tree::Stats, b"z/", Some(b"z0"), usize::MAX).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let indicator_cells = expected.keys().filter(|k| !k.starts_with(b"n/")).count();
        prop_assert_eq!(stored.len(), indicator_cells);
        for (key, raw) in stored {
            let summary = Summary::decode(raw.as_slice()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut group = Group::default();
            for (siret, (values, records)) in &expected[&key[2..]] {
                group.add(&Contribution { siret: siret.clone(), values: values.clone(), records: *records });
            }
            let fresh = summarize(&INDICATORS, &group);
            prop_assert_eq!((summary.structures, summary.totals, summary.dominance_max), (fresh.structures, fresh.totals, fresh.dominance_max));
        }

    }
}

/// Profiles (persons) by any one or two of domaine, département and age band: the seven tables
/// a consumer may read share their margins; read together, every shared cell has one status and
/// solving every relation between them recovers no withheld count.
#[test]
fn linked_profile_tables_share_one_suppression() -> anyhow::Result<()> {
    use passerelle_proto::v1::{AgeBand, AnonymizedProfile};
    let dir = tempfile::tempdir()?;
    let hub = hub(dir.path());
    let domaines = ["K2204", "N1103", "A1203"];
    let bands = [AgeBand::Under26, AgeBand::AgeBand2649, AgeBand::AgeBand50Plus];
    let mut pseudonym = 0u64;
    for s in 0..6usize {
        let siret = siret(100 + s);
        let dep = if s < 4 { "49" } else { "44" };
        let peer = Peer {
            id: PeerId { role: Role::Node, id: siret.clone() },
            serial: None,
            network: Some("coorace".into()),
        };
        hub.admit(
            &peer,
            Some(Structure { siret: siret.clone(), kind: 1, name: format!("S{s}"), departement: dep.into() }),
        )?;
        let session = PushSession::for_tests(peer, vec![1; 16], &[Dataset::Profiles], s as u64 + 1);
        // Uneven on purpose: some cells are small, some are not.
        let changes = (0..(3 + s * 2))
            .map(|i| {
                pseudonym += 1;
                let key = format!("{pseudonym:032x}");
                let profile = AnonymizedProfile {
                    pseudonym: key.clone(),
                    holding_siret: siret.clone(),
                    origin_version: 1,
                    age_band: bands[(i + s) % 3] as i32,
                    departement: dep.into(),
                    rome_codes: vec![domaines[(i * 7 + s) % 3].into()],
                    available_from: "2026-12".into(),
                    purposes: vec![passerelle_proto::v1::ConsentPurpose::Statistics as i32],
                    ..Default::default()
                };
                Change {
                    dataset: "profiles".into(),
                    key,
                    version: 1,
                    payload: Some(change::Payload::Profile(profile)),
                    ..Default::default()
                }
            })
            .collect();
        hub.apply_batch(&session, Batch { seq: 1, changes, head_seq: 1, ..Default::default() })?;
    }
    let dims = profile_dims();
    let mut seen: HashMap<Vec<String>, Option<i64>> = HashMap::new();
    let mut hidden_somewhere = 0;
    for by in [
        vec![],
        vec![dims[0].clone()],
        vec![dims[1].clone()],
        vec![dims[2].clone()],
        vec![dims[0].clone(), dims[1].clone()],
        vec![dims[2].clone(), dims[0].clone()],
        vec![dims[1].clone(), dims[2].clone()],
    ] {
        let table =
            hub.table(&GetTableRequest { table: "profiles".into(), by: by.clone(), ..Default::default() })?;
        for cell in table.cells {
            let xyz: Vec<String> = dims
                .iter()
                .map(|d| by.iter().position(|b| b == d).map_or("*".to_string(), |i| cell.key[i].clone()))
                .collect();
            let value = cell.measures.first().and_then(|m| m.value);
            hidden_somewhere += usize::from(value.is_none());
            let previous = *seen.entry(xyz.clone()).or_insert(value);
            assert_eq!(previous.is_some(), value.is_some(), "{xyz:?} has two statuses across tables");
        }
    }
    assert!(hidden_somewhere > 0, "the data must exercise suppression");
    // The attacker: a coordinate with "*" in dimension i is the sum over i's values.
    let mut known: HashMap<Vec<String>, i64> =
        seen.iter().filter_map(|(k, v)| v.map(|v| (k.clone(), v))).collect();
    let all: Vec<Vec<String>> = seen.keys().cloned().collect();
    let mut recovered = Vec::new();
    loop {
        let mut progress = false;
        for parent in &all {
            for i in 0..3 {
                if parent[i] != "*" {
                    continue;
                }
                let parts: Vec<&Vec<String>> = all
                    .iter()
                    .filter(|c| c[i] != "*" && (0..3).all(|j| j == i || c[j] == parent[j]))
                    .collect();
                let unknown: Vec<&&Vec<String>> = parts.iter().filter(|c| !known.contains_key(**c)).collect();
                if let (Some(total), [one]) = (known.get(parent).copied(), unknown.as_slice()) {
                    let sum: i64 = parts.iter().filter_map(|c| known.get(*c)).sum();
                    known.insert((**one).clone(), total - sum);
                    recovered.push((**one).clone());
                    progress = true;
                }
            }
        }
        if !progress {
            break;
        }
    }
    assert_eq!(recovered, Vec::<Vec<String>>::new());
    Ok(())
}

/// A hub store written before profiles carried purposes counted every profile in the statistics.
/// At open, the ones no `statistics` consent covers are taken out of their cells (once), and a
/// later change of such a record uncounts it from the cell it was counted in.
#[test]
fn profiles_counted_before_purposes_are_uncounted_at_open() -> anyhow::Result<()> {
    use passerelle_proto::v1::{AgeBand, AnonymizedProfile, ConsentPurpose};

    use crate::hub::ingest::HubRecord;
    use crate::store::WriteBatch;
    use crate::store::keys::RecordKey;

    let dir = tempfile::tempdir()?;
    let hub = hub(dir.path());
    let siret = siret(200);
    let peer = Peer {
        id: PeerId { role: Role::Node, id: siret.clone() },
        serial: None,
        network: Some("coorace".into()),
    };
    hub.admit(
        &peer,
        Some(Structure { siret: siret.clone(), kind: 1, name: "S".into(), departement: "49".into() }),
    )?;
    let session = PushSession::for_tests(peer, vec![1; 16], &[Dataset::Profiles], 1);
    let changes = (0..3u64)
        .map(|i| {
            let key = format!("{i:032x}");
            Change {
                dataset: "profiles".into(),
                key: key.clone(),
                version: 1,
                payload: Some(change::Payload::Profile(AnonymizedProfile {
                    pseudonym: key,
                    holding_siret: siret.clone(),
                    origin_version: 1,
                    age_band: AgeBand::Under26 as i32,
                    departement: "49".into(),
                    rome_codes: vec!["K2204".into()],
                    available_from: "2026-12".into(),
                    purposes: vec![ConsentPurpose::Statistics as i32],
                    ..Default::default()
                })),
                ..Default::default()
            }
        })
        .collect();
    hub.apply_batch(&session, Batch { seq: 1, changes, head_seq: 1, ..Default::default() })?;
    let counted = |hub: &Hub| -> anyhow::Result<u32> {
        Ok(hub.stat_cells("p/")?.values().flat_map(|c| c.contributions.iter().map(|c| c.records)).sum())
    };
    assert_eq!(counted(&hub)?, 3);

    // Two of them as an older hub stored them: counted, without purposes (placement only).
    let mut batch = WriteBatch::new();
    for i in 0..2u64 {
        let key = RecordKey::new(siret.clone(), Dataset::Profiles, format!("{i:032x}")).encode();
        let raw = hub.store.get(Tree::Records, &key)?.ok_or_else(|| anyhow::anyhow!("record"))?;
        let mut record = HubRecord::decode(raw.as_slice())?;
        assert!(!record.stat_key.is_empty());
        if let Some(p) = record.profile.as_mut() {
            p.purposes.clear();
        }
        batch.put(Tree::Records, key, record.encode_to_vec());
    }
    hub.store.commit(batch)?;
    assert_eq!(counted(&hub)?, 3, "an older store: still counted");
    assert_eq!(hub.uncount_profiles_without_statistics()?, 2);
    assert_eq!(counted(&hub)?, 1, "only the statistics one is left");
    assert_eq!(hub.uncount_profiles_without_statistics()?, 0, "once");
    Ok(())
}

/// A store written when each month rolled up under its own attributes (a structure that moved
/// département counted twice in its quarter and year) has its quarters and years rebuilt when
/// the hub opens, once, to what incremental counting keeps today.
#[test]
fn rollups_of_older_stores_are_rebuilt_at_open() -> anyhow::Result<()> {
    use crate::store::WriteBatch;

    let dir = tempfile::tempdir()?;
    let siret = siret(300);
    let peer = Peer {
        id: PeerId { role: Role::Node, id: siret.clone() },
        serial: None,
        network: Some("coorace".into()),
    };
    let report = |month: &str, hours: u64| Change {
        dataset: "indicators".into(),
        key: month.into(),
        version: 1,
        payload: Some(change::Payload::Indicators(IndicatorReport {
            siret: siret.clone(),
            fields: Some(IndicatorFields {
                period: month.into(),
                etp_hundredths: 1000,
                employees_in_insertion: 10,
                hours_worked: hours,
                hires: 1,
                exits: Some(Exits { total: 1, durable: 1, ..Default::default() }),
            }),
            version: 1,
            submitted_at_ms: 0,
        })),
        ..Default::default()
    };
    let rollups = |hub: &Hub| -> anyhow::Result<RollupCells> {
        let mut out = BTreeMap::new();
        for prefix in ["iq/", "iy/"] {
            for (key, cell) in hub.stat_cells(prefix)? {
                out.insert(
                    key,
                    cell.contributions.into_iter().map(|c| (c.siret, c.values, c.records)).collect(),
                );
            }
        }
        Ok(out)
    };
    let summaries = |hub: &Hub| -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(hub.store.scan(Tree::Stats, b"z/iq/", Some(b"z/iz"), usize::MAX)?)
    };
    let (today, today_summaries) = {
        let hub = hub(dir.path());
        let structure = |dep: &str| Structure {
            siret: siret.clone(),
            kind: 1,
            name: "S".into(),
            departement: dep.into(),
        };
        hub.admit(&peer, Some(structure("49")))?;
        let session = PushSession::for_tests(peer.clone(), vec![3; 16], &[Dataset::Indicators], 1);
        hub.apply_batch(
            &session,
            Batch { seq: 1, changes: vec![report("2026-01", 1500)], head_seq: 1, ..Default::default() },
        )?;
        hub.admit(&peer, Some(structure("44")))?;
        hub.apply_batch(
            &session,
            Batch { seq: 2, changes: vec![report("2026-02", 1600)], head_seq: 2, ..Default::default() },
        )?;
        let today = rollups(&hub)?;
        assert_eq!(today.len(), 2, "one quarter and one year, under 44: {today:?}");
        assert!(today.keys().all(|k| k.ends_with(b"/44/ai")), "{today:?}");
        let today_summaries = summaries(&hub)?;
        assert_eq!(today_summaries.len(), 2);

        // Rewrite them as an older hub kept them: every month under its own attributes.
        let mut old: HashMap<Vec<u8>, StatCell> = HashMap::new();
        for (_, record) in hub.records_of(&siret, Dataset::Indicators)? {
            let values = values_of(&record).ok_or_else(|| anyhow::anyhow!("counted"))?;
            for key in CellKey::decode(&record.stat_key).ok_or_else(|| anyhow::anyhow!("key"))?.rollups() {
                old.entry(key.encode()).or_default().apply(&siret, &values, 1, record.received_at_ms);
            }
        }
        let mut batch = WriteBatch::new();
        for key in today.keys() {
            batch.delete(Tree::Stats, key.clone());
        }
        for (key, cell) in &old {
            batch.put(Tree::Stats, key.clone(), cell.encode_to_vec());
            batch.put(Tree::Stats, [&b"z/"[..], key].concat(), Summary::default().encode_to_vec());
        }
        batch.delete(Tree::Meta, &b"stats/rollups-by-latest-month"[..]);
        hub.store.commit(batch)?;
        assert_eq!(rollups(&hub)?.len(), 4, "the older layout: the structure in 49 and in 44");
        (today, today_summaries)
    };
    let hub = hub(dir.path());
    assert_eq!(rollups(&hub)?, today, "rebuilt at open");
    assert_eq!(summaries(&hub)?, today_summaries);
    assert_eq!(hub.rebuild_rollups_once()?, 0, "once");
    Ok(())
}
