//! The `introductions` table: requests, routed requests, accepted candidates and hires, by the
//! need's département × ROME domaine × month of the request, published monthly like indicators:
//! only for closed months, from the copy frozen when the month closed.
//!
//! Disclosure: a cell needs at least [`MIN_STRUCTURES`] requesting *and* as many holding
//! structures (holders a request was routed to); `accepted` and `hired` count persons and are
//! withheld on their own under `min_persons`; then complementary suppression along every line
//! with a published total. Every dimension set is a projection of the one table by département ×
//! domaine (its margins and grand total), so a cell shared by two tables has one status in both;
//! only months are published, so no quarter or year can be differenced against them.
//!
//! Computed from the requests themselves (`hub/introductions.rs`), not from aggregate cells:
//! their number is bounded by `introductions_per_day` × members, and a month is computed once,
//! at its closing.

use std::collections::{BTreeMap, BTreeSet};

use passerelle_proto::date::Month;
use passerelle_proto::v1::{self, Cell, GetTableRequest, IntroductionOutcome, TableDescriptor};
use passerelle_proto::validate::FieldError;
use prost::Message;

use super::disclosure::{
    DOMINANCE_PERCENT, MIN_STRUCTURES, complement, lines_of, pair_exceeds, pair_limit, secondary_suppression,
    top_two,
};
use super::family::{AuditRule, Family};
use super::tables::with_margins;
use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::hub::introductions::HubIntroduction;
use crate::store::{StoreError, Tree, WriteBatch, scan_prefix};

/// The table's name.
pub(crate) const NAME: &str = "introductions";
/// Its dimensions.
const DIMENSIONS: [&str; 2] = ["departement", "rome-domaine"];
/// Its measures, in order.
const MEASURES: [&str; 4] = ["requests", "routed", "accepted", "hired"];
/// The measures that count persons.
const PERSONS: [&str; 2] = ["accepted", "hired"];
/// The reason given to person figures hidden to protect others.
const SECONDARY_PERSONS: &str = "secondary suppression: protects other person figures";

/// Its catalogue entry.
pub(crate) fn descriptor() -> TableDescriptor {
    TableDescriptor {
        name: NAME.into(),
        description: "introduction requests between member structures, by the need's département, ROME domaine and month of the request".into(),
        dimensions: DIMENSIONS.iter().map(|d| d.to_string()).collect(),
        measures: MEASURES.iter().map(|m| m.to_string()).collect(),
    }
}

/// Checks a request for this table: dimensions, and a month (not a quarter or a year).
pub(crate) fn check(request: &GetTableRequest) -> Result<Month> {
    if request.by.len() > 2 {
        return Err(FieldError::rule("by", "at most two dimensions").into());
    }
    for (i, d) in request.by.iter().enumerate() {
        if !DIMENSIONS.contains(&d.as_str()) {
            return Err(FieldError::new("by", d, format!("expected one of {}", DIMENSIONS.join(", "))).into());
        }
        if request.by[..i].contains(d) {
            return Err(FieldError::new("by", request.by.join(","), "a dimension may be named once").into());
        }
    }
    Month::parse(&request.period).map_err(|_| {
        FieldError::new("period", &request.period, "expected a month, e.g. 2026-10 (this table is monthly)")
            .into()
    })
}

/// What a cell (or a margin) counts.
#[derive(Debug, Clone, Default)]
struct Counts {
    /// Per requesting structure: its own figures (for dominance and the pair rule).
    requesters: BTreeMap<String, [i64; 4]>,
    /// Per holding structure: the candidates it accepted and those hired (at 2 and 3, as in
    /// `values`), for the same rules on the holders' side.
    by_holder: BTreeMap<String, [i64; 4]>,
    holders: BTreeSet<String>,
    values: [i64; 4],
}

impl Counts {
    fn merge(&mut self, other: &Counts) {
        for (mine, theirs) in
            [(&mut self.requesters, &other.requesters), (&mut self.by_holder, &other.by_holder)]
        {
            for (siret, values) in theirs {
                let entry = mine.entry(siret.clone()).or_default();
                for (a, b) in entry.iter_mut().zip(values) {
                    *a += b;
                }
            }
        }
        self.holders.extend(other.holders.iter().cloned());
        for (a, b) in self.values.iter_mut().zip(other.values) {
            *a += b;
        }
    }
}

fn frozen_key(month: Month, by: &[String]) -> Vec<u8> {
    format!("i/{month}/{}", by.join(",")).into_bytes()
}

fn person_figures_hidden(cell: &Cell) -> bool {
    cell.measures.iter().any(|m| PERSONS.contains(&m.name.as_str()) && m.value.is_none())
}

fn hide_person_figures(cell: &mut Cell, reason: &str) {
    for m in cell.measures.iter_mut().filter(|m| PERSONS.contains(&m.name.as_str())) {
        m.value = None;
        if m.suppressed.is_empty() {
            m.suppressed = reason.into();
        }
    }
}

/// The first of `measures` of which one requesting structure makes more than
/// [`DOMINANCE_PERCENT`], or two more than `100 / (1 + p)` % (see `disclosure::paired`):
/// a cell of 52 requests, 50 of them one structure's, tells that structure's activity.
fn concentrated(counts: &Counts, measures: std::ops::Range<usize>, protection: u32) -> Option<String> {
    concentrated_in(counts, &counts.requesters, "requesting", measures.clone(), protection)
        .or_else(|| concentrated_in(counts, &counts.by_holder, "holding", measures, protection))
}

/// [`concentrated`] over one side's per-structure figures (`side` names it).
fn concentrated_in(
    counts: &Counts,
    by: &BTreeMap<String, [i64; 4]>,
    side: &str,
    measures: std::ops::Range<usize>,
    protection: u32,
) -> Option<String> {
    measures.into_iter().find_map(|i| {
        let total = counts.values[i];
        let top = top_two(by.values().map(|values| values[i]));
        if total > 0 && top[0] * 100 > i64::from(DOMINANCE_PERCENT) * total {
            Some(format!("one {side} structure makes more than {DOMINANCE_PERCENT} % of {}", MEASURES[i]))
        } else if pair_exceeds(top, total, protection) {
            Some(format!(
                "two {side} structures make more than {} % of {}",
                pair_limit(protection),
                MEASURES[i]
            ))
        } else {
            None
        }
    })
}

/// Primary rules, then complementary suppression of whole cells and of person figures.
fn controlled(
    entries: Vec<(Vec<String>, bool, Counts)>,
    dims: usize,
    min_persons: i64,
    protection: u32,
) -> Vec<Cell> {
    let mut cells: Vec<Cell> = entries
        .into_iter()
        .map(|(key, total, counts)| {
            let reason = if (counts.requesters.len() as u32) < MIN_STRUCTURES {
                format!("fewer than {MIN_STRUCTURES} requesting structures")
            } else if (counts.holders.len() as u32) < MIN_STRUCTURES {
                format!("fewer than {MIN_STRUCTURES} holding structures")
            } else {
                concentrated(&counts, 0..2, protection).unwrap_or_default()
            };
            let mut cell = Cell {
                key,
                total,
                structures: reason.is_empty().then_some(counts.requesters.len() as u32),
                measures: MEASURES
                    .iter()
                    .zip(counts.values)
                    .map(|(name, value)| v1::Measure {
                        name: (*name).into(),
                        value: reason.is_empty().then_some(value),
                        unit: "count".into(),
                        suppressed: reason.clone(),
                    })
                    .collect(),
                suppressed: reason.clone(),
            };
            let few = counts.values[2..].iter().any(|v| *v > 0 && *v < min_persons);
            if reason.is_empty() && few {
                hide_person_figures(&mut cell, &format!("fewer than {min_persons} persons"));
            } else if reason.is_empty()
                && let Some(why) = concentrated(&counts, 2..4, protection)
            {
                hide_person_figures(&mut cell, &why);
            }
            cell
        })
        .collect();
    secondary_suppression(&mut cells, dims);
    let lines = lines_of(&cells, dims);
    complement(
        &mut cells,
        &lines,
        person_figures_hidden,
        |c| hide_person_figures(c, SECONDARY_PERSONS),
        |c| c.measures.iter().find(|m| m.name == "accepted").and_then(|m| m.value).unwrap_or(0),
    );
    cells
}

impl Hub {
    /// The finest cells of `month`: département × domaine.
    fn introduction_counts(&self, month: Month) -> Result<BTreeMap<Vec<String>, Counts>> {
        let mut groups: BTreeMap<Vec<String>, Counts> = BTreeMap::new();
        for (_, raw) in scan_prefix(self.store.as_ref(), Tree::Introductions, b"q/")? {
            let intro = HubIntroduction::decode(raw.as_slice())
                .map_err(|e| Error::Store(StoreError(format!("corrupt introduction: {e}"))))?;
            // The month of the request as the hub's reporting periods count it (Europe/Paris).
            if passerelle_proto::periods::month_at(intro.created_at_ms) != month {
                continue;
            }
            let (Some(requester), Some(need)) = (&intro.requester, &intro.need) else { continue };
            let key = vec![need.departement.clone(), need.rome_code.chars().take(3).collect()];
            let counts = groups.entry(key).or_default();
            counts.holders.extend(intro.holders.iter().map(|h| h.siret.clone()));
            let these = [
                1,
                i64::from(!intro.holders.is_empty()),
                intro.candidates.len() as i64,
                intro.candidates.iter().filter(|c| c.outcome == IntroductionOutcome::Hired as i32).count()
                    as i64,
            ];
            let mine = counts.requesters.entry(requester.siret.clone()).or_default();
            for ((total, own), v) in counts.values.iter_mut().zip(mine.iter_mut()).zip(these) {
                *total += v;
                *own += v;
            }
            for c in &intro.candidates {
                let holder = counts.by_holder.entry(c.holder_siret.clone()).or_default();
                holder[2] += 1;
                holder[3] += i64::from(c.outcome == IntroductionOutcome::Hired as i32);
            }
        }
        Ok(groups)
    }

    /// Every dimension set of `month`'s table, projected from the one by département × domaine.
    fn introduction_tables(&self, month: Month) -> Result<Vec<(Vec<String>, v1::Table)>> {
        let full: Vec<String> = DIMENSIONS.iter().map(|d| d.to_string()).collect();
        let groups = self.introduction_counts(month)?;
        let cells = controlled(
            with_margins(&full, &groups, Counts::merge),
            2,
            i64::from(self.config.min_persons),
            self.config.protection_percent,
        );
        // Then the solver's audit, as for indicators: every withheld figure keeps its range.
        let values = groups.iter().map(|(k, c)| (k.clone(), c.values.to_vec())).collect();
        let rule = AuditRule {
            percent: self.config.protection_percent,
            flows: vec![true; MEASURES.len()],
            exits: MEASURES.iter().map(|m| PERSONS.contains(m)).collect(),
        };
        let cells = Family::audit_table(&full, cells, values, rule);
        let rules = vec![
            format!("a cell with fewer than {MIN_STRUCTURES} requesting or {MIN_STRUCTURES} holding structures is suppressed"),
            format!("accepted and hired counting fewer than {} persons are suppressed", self.config.min_persons),
            format!(
                "a figure one requesting or holding structure makes more than {DOMINANCE_PERCENT} % of, or two more than {} %, is suppressed",
                pair_limit(self.config.protection_percent)
            ),
            "suppressed cells are complemented until a solver reading every grouping narrows no suppressed figure to within the protection range".into(),
            "every grouping is a projection of the table by departement and rome-domaine: a shared cell has one status".into(),
        ];
        let table = |by: Vec<String>, cells: Vec<Cell>| v1::Table {
            table: NAME.into(),
            by,
            period: month.to_string(),
            cells,
            rules: rules.clone(),
            freshness: Vec::new(),
            revision: 0,
        };
        let mut out = Vec::new();
        for by in [vec![], vec![0], vec![1], vec![0, 1], vec![1, 0]] {
            let names: Vec<String> = by.iter().map(|&i| full[i].clone()).collect();
            let projected: Vec<Cell> = match by.as_slice() {
                [] => cells
                    .iter()
                    .filter(|c| c.key.iter().all(|k| k == "*"))
                    .map(|c| Cell { key: Vec::new(), total: true, ..c.clone() })
                    .collect(),
                [axis] => {
                    let other = 1 - axis;
                    cells
                        .iter()
                        .filter(|c| c.key[other] == "*")
                        .map(|c| Cell {
                            key: vec![c.key[*axis].clone()],
                            total: c.key[*axis] == "*",
                            ..c.clone()
                        })
                        .collect()
                }
                [0, 1] => cells.clone(),
                _ => cells
                    .iter()
                    .map(|c| Cell { key: vec![c.key[1].clone(), c.key[0].clone()], ..c.clone() })
                    .collect(),
            };
            out.push((names, table(by.iter().map(|&i| full[i].clone()).collect(), projected)));
        }
        Ok(out)
    }

    /// Stages the frozen tables of `month` in a closing's batch.
    pub(crate) fn stage_frozen_introductions(&self, write: &mut WriteBatch, month: Month) -> Result<()> {
        for (by, table) in self.introduction_tables(month)? {
            write.put(Tree::Periods, frozen_key(month, &by), table.encode_to_vec());
        }
        Ok(())
    }

    /// The published table: the copy frozen at the month's closing.
    pub(crate) fn published_introductions(&self, request: &GetTableRequest) -> Result<v1::Table> {
        let month = check(request)?;
        if self.closing(month)?.is_none() {
            return Err(Error::FailedPrecondition(format!("period {month} is not closed yet")));
        }
        let raw = self.store.get(Tree::Periods, &frozen_key(month, &request.by))?.ok_or_else(|| {
            Error::FailedPrecondition(format!("period {month} closed before introductions were counted"))
        })?;
        v1::Table::decode(raw.as_slice())
            .map_err(|e| Error::Store(StoreError(format!("corrupt frozen table: {e}"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::introductions::{Holding, HubCandidate};
    use passerelle_proto::v1::{SharedNeed, Structure};

    fn request(
        n: usize,
        requester: &str,
        holders: &[&str],
        dep: &str,
        hired: usize,
        at: i64,
    ) -> HubIntroduction {
        HubIntroduction {
            id: format!("0190f0c4-0000-7000-8000-{n:012}"),
            requester: Some(Structure { siret: requester.into(), ..Default::default() }),
            need: Some(SharedNeed {
                departement: dep.into(),
                rome_code: "K2204".into(),
                ..Default::default()
            }),
            created_at_ms: at,
            holders: holders.iter().map(|h| Holding { siret: (*h).into(), ..Default::default() }).collect(),
            candidates: (0..hired)
                .map(|i| HubCandidate {
                    candidate: format!("c{i}"),
                    // Spread over the holders, so none makes most of the cell's hires.
                    holder_siret: holders[(n + i) % holders.len()].into(),
                    outcome: IntroductionOutcome::Hired as i32,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn value(cell: &Cell, name: &str) -> Option<i64> {
        cell.measures.iter().find(|m| m.name == name).and_then(|m| m.value)
    }

    #[test]
    fn cells_need_three_requesters_and_three_holders_and_are_frozen_at_closing() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let hub = Hub::for_tests(dir.path());
        let october =
            passerelle_proto::date::Date { year: 2026, month: 10, day: 15 }.days_since_epoch() * 86_400_000;
        let mut batch = WriteBatch::new();
        let holders = ["h1", "h2", "h3"];
        let mut n = 0;
        // 49: three requesters, three holders, 6 hired. 44 and 72: three requesters, two holders.
        for (requester, dep, with) in [
            ("r1", "49", &holders[..]),
            ("r2", "49", &holders[..]),
            ("r3", "49", &holders[..]),
            ("r1", "44", &holders[..2]),
            ("r2", "44", &holders[..2]),
            ("r3", "44", &holders[..2]),
            ("r1", "72", &holders[1..]),
            ("r2", "72", &holders[1..]),
            ("r3", "72", &holders[1..]),
        ] {
            n += 1;
            let intro = request(n, requester, with, dep, if dep == "49" { 2 } else { 1 }, october);
            batch.put(Tree::Introductions, format!("q/{}", intro.id).into_bytes(), intro.encode_to_vec());
        }
        hub.store.commit(batch)?;
        let ask = |by: &[&str]| GetTableRequest {
            table: NAME.into(),
            by: by.iter().map(|s| s.to_string()).collect(),
            period: "2026-10".into(),
            ..Default::default()
        };
        let open = hub.published_introductions(&ask(&["departement"]));
        assert!(matches!(open, Err(Error::FailedPrecondition(_))), "not before the closing");
        hub.close_month(Month { year: 2026, month: 10 }, passerelle_proto::date::now_unix_ms())?;
        let by_dep = hub.published_introductions(&ask(&["departement"]))?;
        let cell = |key: &str| by_dep.cells.iter().find(|c| c.key == [key]).cloned().expect("cell");
        assert_eq!(value(&cell("49"), "requests"), Some(3));
        assert_eq!(value(&cell("49"), "hired"), Some(6));
        assert!(cell("44").suppressed.contains("holding"), "{:?}", cell("44"));
        assert!(cell("72").suppressed.contains("holding"), "{:?}", cell("72"));
        assert_eq!(value(&cell("*"), "requests"), Some(9), "44 and 72 protect each other");
        // The same cell has the same status in every grouping.
        let both = hub.published_introductions(&ask(&["departement", "rome-domaine"]))?;
        let margin = both.cells.iter().find(|c| c.key == ["44", "*"]).expect("margin");
        assert_eq!(margin.suppressed, cell("44").suppressed);
        // A request after the closing changes nothing published.
        let mut batch = WriteBatch::new();
        let late = request(99, "r4", &holders, "44", 0, october);
        batch.put(Tree::Introductions, format!("q/{}", late.id).into_bytes(), late.encode_to_vec());
        hub.store.commit(batch)?;
        assert_eq!(hub.published_introductions(&ask(&["departement"]))?, by_dep);
        let quarter = GetTableRequest { period: "2026-Q4".into(), ..ask(&[]) };
        assert!(matches!(hub.published_introductions(&quarter), Err(Error::Invalid(_))));
        Ok(())
    }

    /// A holder whose candidates are every one accepted (and hired) in a cell: its own figures
    /// would be the cell's, so they are withheld; spread over three holders, published.
    #[test]
    fn one_holder_making_every_hire_withholds_the_person_figures() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<BTreeSet<String>>();
        let each = |n: &[&str], v: [i64; 4]| n.iter().map(|s| (s.to_string(), v)).collect::<BTreeMap<_, _>>();
        let cell = |by_holder: BTreeMap<String, [i64; 4]>| {
            let counts = Counts {
                requesters: each(&["r1", "r2", "r3"], [4, 4, 3, 3]),
                holders: names(&["h1", "h2", "h3"]),
                by_holder,
                values: [12, 12, 9, 9],
            };
            let groups = BTreeMap::from([(vec!["49".to_string()], counts)]);
            let by = vec!["departement".to_string()];
            let cells = controlled(with_margins(&by, &groups, Counts::merge), 1, 5, 15);
            cells.into_iter().find(|c| c.key == ["49"]).expect("cell")
        };
        let one = cell(BTreeMap::from([("h1".to_string(), [0, 0, 9, 9])]));
        assert!(person_figures_hidden(&one), "{one:?}");
        let hired = one.measures.iter().find(|m| m.name == "hired").expect("hired");
        assert_eq!(hired.suppressed, "one holding structure makes more than 85 % of accepted");
        assert_eq!(value(&one, "requests"), Some(12), "the requests stay");
        let spread = cell(each(&["h1", "h2", "h3"], [0, 0, 3, 3]));
        assert_eq!(value(&spread, "hired"), Some(9));
    }

    #[test]
    fn few_hires_are_withheld_and_complemented() {
        // Each requester's share: the figures spread as evenly as they go.
        let counts = |r: &[&str], h: &[&str], values: [i64; 4]| Counts {
            requesters: r
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let n = r.len() as i64;
                    (s.to_string(), values.map(|v| v / n + i64::from((i as i64) < v % n)))
                })
                .collect(),
            holders: h.iter().map(|s| s.to_string()).collect(),
            by_holder: h
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let n = h.len() as i64;
                    (s.to_string(), values.map(|v| v / n + i64::from((i as i64) < v % n)))
                })
                .collect(),
            values,
        };
        let all = ["a", "b", "c"];
        let mut groups = BTreeMap::new();
        groups.insert(vec!["49".to_string()], counts(&all, &all, [10, 10, 6, 2]));
        groups.insert(vec!["44".to_string()], counts(&all, &all, [10, 10, 7, 6]));
        groups.insert(vec!["72".to_string()], counts(&all, &all, [10, 10, 8, 7]));
        let by = vec!["departement".to_string()];
        let cells = controlled(with_margins(&by, &groups, Counts::merge), 1, 5, 15);
        let hidden: Vec<&str> =
            cells.iter().filter(|c| person_figures_hidden(c)).map(|c| c.key[0].as_str()).collect();
        assert_eq!(hidden.len(), 2, "49 (2 hired) and one complement: {hidden:?}");
        assert!(hidden.contains(&"49"));
        assert!(cells.iter().all(|c| c.suppressed.is_empty()), "the cells themselves stay");
    }
}
