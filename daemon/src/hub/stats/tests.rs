//! Disclosure control on hand-built groups.

use std::collections::{BTreeMap, HashMap};

use passerelle_proto::date::Month;
use passerelle_proto::v1::Cell;

use super::aggregates::*;
use super::catalogue::*;
use super::disclosure::*;
use super::tables::*;

/// A group from (siret, [etp, employees, hours, hires, exits…], months).
fn group(rows: &[(&str, [i64; 9])]) -> Group {
    let mut g = Group::default();
    for (siret, values) in rows {
        g.add(&Contribution { siret: (*siret).into(), values: values.to_vec(), records: 1 });
    }
    g
}

fn v(employees: i64, hours: i64, exits: [i64; 5]) -> [i64; 9] {
    [employees * 80, employees, hours, 2, exits[0], exits[1], exits[2], exits[3], exits[4]]
}

fn value(cell: &Cell, name: &str) -> Option<i64> {
    cell.measures.iter().find(|m| m.name == name).and_then(|m| m.value)
}

/// Tries to recompute suppressed interior cells of `measure` from published totals, line by
/// line, as an attacker would; returns the cells it could recover.
fn recoverable(cells: &[Cell], measure: &str) -> Vec<Vec<String>> {
    let mut known: HashMap<Vec<String>, i64> =
        cells.iter().filter_map(|c| value(c, measure).map(|v| (c.key.clone(), v))).collect();
    let mut recovered = Vec::new();
    loop {
        let mut progress = false;
        for axis in 0..2 {
            let mut lines: BTreeMap<String, Vec<&Cell>> = BTreeMap::new();
            for c in cells.iter().filter(|c| !c.total) {
                lines.entry(c.key[axis].clone()).or_default().push(c);
            }
            for (v, members) in lines {
                let mut total_key = vec!["*".to_string(), "*".to_string()];
                total_key[axis] = v;
                let Some(total) = known.get(&total_key).copied() else { continue };
                let unknown: Vec<&&Cell> = members.iter().filter(|c| !known.contains_key(&c.key)).collect();
                if unknown.len() == 1 {
                    let sum: i64 = members.iter().filter_map(|c| known.get(&c.key)).sum();
                    known.insert(unknown[0].key.clone(), total - sum);
                    recovered.push(unknown[0].key.clone());
                    progress = true;
                }
            }
        }
        if !progress {
            return recovered;
        }
    }
}

/// A dozen structures over two départements × two kinds, built so that each primary rule
/// triggers somewhere, checked by hand.
fn twelve() -> BTreeMap<Vec<String>, Group> {
    let k = |a: &str, b: &str| vec![a.to_string(), b.to_string()];
    BTreeMap::from([
        // 49 × ai: 4 structures, 40 employees, balanced: published.
        (
            k("49", "ai"),
            group(&[
                ("s01", v(10, 1000, [2, 1, 0, 1, 0])),
                ("s02", v(10, 1000, [2, 1, 0, 1, 0])),
                ("s03", v(10, 1000, [2, 1, 0, 1, 0])),
                ("s04", v(10, 1000, [2, 1, 0, 1, 0])),
            ]),
        ),
        // 49 × aci: 2 structures: fewer than 3 structures.
        (k("49", "aci"), group(&[("s05", v(20, 2000, [0; 5])), ("s06", v(20, 2000, [0; 5]))])),
        // 44 × ai: 3 structures but one has 90 % of the hours: dominance.
        (
            k("44", "ai"),
            group(&[("s07", v(30, 9000, [0; 5])), ("s08", v(5, 500, [0; 5])), ("s09", v(5, 500, [0; 5]))]),
        ),
        // 44 × aci: 3 structures, 4 employees: fewer than 5 persons.
        (
            k("44", "aci"),
            group(&[("s10", v(2, 500, [0; 5])), ("s11", v(1, 400, [0; 5])), ("s12", v(1, 300, [0; 5]))]),
        ),
    ])
}

#[test]
fn each_primary_rule_triggers_and_nothing_is_shown_as_zero() {
    let by = vec!["departement".to_string(), "kind".to_string()];
    let cells = disclose_groups(&INDICATORS, &by, &twelve(), 5);
    let cell = |a: &str, b: &str| cells.iter().find(|c| c.key == [a, b]).cloned().expect("cell");
    assert_eq!(cell("49", "ai").suppressed, "");
    assert_eq!(value(&cell("49", "ai"), "employees_in_insertion"), Some(40));
    assert_eq!(value(&cell("49", "ai"), "hours_worked"), Some(4000));
    assert_eq!(cell("49", "ai").structures, Some(4));
    assert_eq!(value(&cell("49", "ai"), "exits_total"), Some(8));
    assert_eq!(value(&cell("49", "ai"), "dynamic_exit_rate"), Some(10000), "8 dynamic of 8: 100 %");
    assert_eq!(cell("49", "aci").suppressed, "fewer than 3 structures");
    assert_eq!(cell("44", "ai").suppressed, "one structure contributes more than 85 % of hours_worked");
    assert_eq!(cell("44", "aci").suppressed, "fewer than 5 persons");
    for c in &cells {
        if !c.suppressed.is_empty() {
            assert!(
                c.structures.is_none()
                    && c.measures.iter().all(|m| m.value.is_none() && !m.suppressed.is_empty()),
                "{c:?}"
            );
        }
    }
    // With 11 as the threshold (state consumers), the 44 × ai cell (40 persons) stays published
    // on that rule but 49 × ai's 8 exits become too few to show.
    let strict = disclose_groups(&INDICATORS, &by, &twelve(), 11);
    let c = strict.iter().find(|c| c.key == ["49", "ai"]).cloned().expect("cell");
    assert_eq!(value(&c, "exits_total"), None);
    assert!(c.measures.iter().any(|m| m.suppressed == "fewer than 11 exits"));
    assert_eq!(value(&c, "employees_in_insertion"), Some(40));
}

/// The pair rule: three structures, none over 85 %, but two of them make 95 % of the hours:
/// either of the two, knowing its own figure, would bound the other's within 15 % by the cell
/// alone. Exit figures spread over only two structures are withheld on their own.
#[test]
fn two_structures_making_nearly_all_of_a_cell_withhold_it() {
    let by = vec!["departement".to_string()];
    let groups = BTreeMap::from([(
        vec!["44".to_string()],
        group(&[
            ("s01", v(8, 600, [1, 1, 0, 0, 0])),
            ("s02", v(7, 500, [1, 0, 1, 0, 0])),
            ("s03", v(6, 60, [0; 5])),
        ]),
    )]);
    let cells = disclose_groups(&INDICATORS, &by, &groups, 5);
    let cell = cells.iter().find(|c| c.key == ["44"]).expect("cell");
    assert_eq!(cell.suppressed, "two structures contribute more than 86.95 % of hours_worked");
    assert!(cell.measures.iter().all(|m| m.value.is_none()));
    let spread = BTreeMap::from([(
        vec!["44".to_string()],
        group(&[
            ("s01", v(8, 600, [3, 1, 1, 1, 0])),
            ("s02", v(7, 500, [3, 1, 1, 1, 0])),
            ("s03", v(6, 400, [2, 1, 0, 1, 0])),
        ]),
    )]);
    let cells = disclose_groups(&INDICATORS, &by, &spread, 5);
    let cell = cells.iter().find(|c| c.key == ["44"]).expect("cell");
    assert_eq!(cell.suppressed, "");
    assert_eq!(value(cell, "hours_worked"), Some(1500));
    let exits = cell.measures.iter().find(|m| m.name == "exits_total").expect("exits");
    assert_eq!(exits.value, None, "transition exits are two structures'");
    assert!(exits.suppressed.starts_with("two structures contribute more than 86.95 %"), "{exits:?}");
}

#[test]
fn no_suppressed_cell_can_be_recovered_from_published_totals() {
    let by = vec!["departement".to_string(), "kind".to_string()];
    let mut cells = disclose_groups(&INDICATORS, &by, &twelve(), 5);
    // Without complementary suppression the attack works (the test can fail)…
    let naive = recoverable(&cells, "hours_worked");
    assert!(
        naive.contains(&vec!["49".to_string(), "aci".to_string()]),
        "the row total gives 49 × aci away: {naive:?}"
    );
    // …with it, nothing is recoverable.
    secondary_suppression(&mut cells, 2);
    for measure in ["hours_worked", "employees_in_insertion", "etp"] {
        assert!(
            recoverable(&cells, measure).is_empty(),
            "{measure}: recovered {:?}",
            recoverable(&cells, measure)
        );
    }
    assert!(cells.iter().any(|c| c.suppressed.starts_with("secondary suppression")));
}

#[test]
fn a_one_dimension_table_with_a_single_suppressed_cell_gets_a_complement() {
    let by = vec!["departement".to_string()];
    let mut groups: BTreeMap<Vec<String>, Group> = BTreeMap::new();
    for (k, g) in twelve() {
        groups.entry(vec![k[0].clone()]).or_default().merge(&g);
    }
    groups.insert(vec!["85".into()], group(&[("s13", v(10, 100, [0; 5]))]));
    let mut cells = disclose_groups(&INDICATORS, &by, &groups, 5);
    secondary_suppression(&mut cells, 1);
    let hidden = cells.iter().filter(|c| !c.total && !c.suppressed.is_empty()).count();
    assert!(hidden != 1, "a single suppressed cell next to a published total is recoverable");
}

#[test]
fn exit_figures_withheld_on_their_own_get_a_complement_too() {
    let k = |a: &str, b: &str| vec![a.to_string(), b.to_string()];
    let three = |exits: [i64; 5]| {
        group(&[("a", v(10, 1000, exits)), ("b", v(10, 1000, exits)), ("c", v(10, 1000, exits))])
    };
    let groups = BTreeMap::from([
        (k("49", "ai"), three([5, 2, 1, 1, 1])),
        (k("49", "aci"), three([2, 1, 0, 0, 1])), // 6 exits: fewer than 11, withheld alone.
        (k("44", "ai"), three([5, 2, 1, 1, 1])),
        (k("44", "aci"), three([5, 2, 1, 1, 1])),
    ]);
    let by = vec!["departement".to_string(), "kind".to_string()];
    let naive = disclose_groups(&INDICATORS, &by, &groups, 11);
    assert!(
        recoverable(&naive, "exits_total").contains(&k("49", "aci")),
        "without a complement the row total gives 49 × aci's exits away"
    );
    let mut cells = naive.clone();
    secondary_suppression(&mut cells, 2);
    assert!(recoverable(&cells, "exits_total").is_empty(), "{:?}", recoverable(&cells, "exits_total"));
    assert!(cells.iter().all(|c| c.suppressed.is_empty()), "whole cells stay published");
    assert!(cells.iter().any(|c| c.measures.iter().any(|m| m.suppressed == SECONDARY_EXITS)));
}

#[test]
fn periods() -> anyhow::Result<()> {
    assert_eq!(parse_period("2026-Q3")?, (Month { year: 2026, month: 7 }, Month { year: 2026, month: 9 }));
    assert_eq!(parse_period("2026")?, (Month { year: 2026, month: 1 }, Month { year: 2026, month: 12 }));
    assert_eq!(parse_period("2026-10")?, (Month { year: 2026, month: 10 }, Month { year: 2026, month: 10 }));
    assert!(parse_period("2026-Q5").is_err() && parse_period("Q3").is_err());
    Ok(())
}
