//! Which months the structure has not reported, as its hubs expect them.
//!
//! Each hub receiving `indicators` tells its `deadline_day` in its `Hello` answer; the sync
//! session hands it here ([`Node::record_hub_periods`]), with the time of the first such
//! answer, under `periods/HUB` in the sync state tree. A month is expected from the structure's
//! first report, or from the month before its first sync with such a hub (the last month ended
//! when it joined: a structure joining in December owes November, due in December), whichever
//! is earlier, up to last month (Europe/Paris). A month with a report on the node is not missing,
//! sent or not: unsent changes are `sync status`'s business. A hub that never answered a `Hello`
//! (or answered without a valid `deadline_day`) has no due dates to give and is left out.

use std::collections::BTreeSet;

use passerelle_proto::date::Month;
use passerelle_proto::periods::{due_date, due_instant_ms, month_at, previous_month};
use passerelle_proto::v1::MissingIndicators;
use prost::Message;

use super::Node;
use crate::error::Result;
use crate::store::{Tree, WriteBatch};

/// What a node keeps of a hub's reporting periods.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct HubPeriods {
    /// The hub's `[periods] deadline_day`, as its last `Hello` answer said.
    #[prost(uint32, tag = "1")]
    pub deadline_day: u32,
    /// The first `Hello` answer from this hub while it received `indicators`, ms since the epoch.
    #[prost(int64, tag = "2")]
    pub first_sync_at_ms: i64,
}

fn key(hub: &str) -> Vec<u8> {
    format!("periods/{hub}").into_bytes()
}

impl Node {
    /// Records what a hub receiving `indicators` said of its periods in its `Hello` answer;
    /// writes only when something changed (the first sync, or a new `deadline_day`).
    pub(crate) fn record_hub_periods(&self, hub: &str, deadline_day: u32, now: i64) -> Result<()> {
        let _writer = self.write_lock();
        let known: Option<HubPeriods> = self.load(Tree::SyncState, &key(hub))?;
        let first_sync_at_ms = known.as_ref().map_or(now, |k| k.first_sync_at_ms);
        let periods = HubPeriods { deadline_day, first_sync_at_ms };
        if known.as_ref() == Some(&periods) {
            return Ok(());
        }
        let mut batch = WriteBatch::new();
        batch.put(Tree::SyncState, key(hub), periods.encode_to_vec());
        self.store.commit(batch)?;
        Ok(())
    }

    /// The months not reported at `now`, per hub of `hubs` (those configured to receive
    /// `indicators`) that told its deadline, by month then hub.
    pub(crate) fn missing_indicators(&self, hubs: &[String], now: i64) -> Result<Vec<MissingIndicators>> {
        let mut known = Vec::new();
        for hub in hubs {
            if let Some(p) = self.load::<HubPeriods>(Tree::SyncState, &key(hub))?
                && let Ok(day) = u8::try_from(p.deadline_day)
                && (1..=28).contains(&day)
            {
                known.push((hub, day, p.first_sync_at_ms));
            }
        }
        let Some(first_sync) = known.iter().map(|(_, _, at)| previous_month(month_at(*at))).min() else {
            return Ok(Vec::new());
        };
        let reported: BTreeSet<Month> = self
            .list_indicators(None, None)?
            .iter()
            .filter_map(|r| r.fields.as_ref().and_then(|f| Month::parse(&f.period).ok()))
            .collect();
        let start = reported.first().copied().map_or(first_sync, |first| first.min(first_sync));
        let last = previous_month(month_at(now));
        let mut out = Vec::new();
        for month in (start.ordinal()..=last.ordinal()).map(Month::from_ordinal) {
            if reported.contains(&month) {
                continue;
            }
            for (hub, day, _) in &known {
                out.push(MissingIndicators {
                    period: month.to_string(),
                    hub_id: (*hub).clone(),
                    due: due_date(month, *day).to_string(),
                    overdue: now > due_instant_ms(month, *day),
                });
            }
        }
        Ok(out)
    }

    /// How many months are missing and overdue at one hub at least, at `now`.
    pub(crate) fn overdue_months(&self, hubs: &[String], now: i64) -> Result<u32> {
        let overdue: BTreeSet<String> =
            self.missing_indicators(hubs, now)?.into_iter().filter(|m| m.overdue).map(|m| m.period).collect();
        Ok(u32::try_from(overdue.len()).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use passerelle_proto::date::Date;
    use passerelle_proto::periods::{DAY_MS, paris_midnight_ms};
    use passerelle_proto::v1::{Exits, IndicatorFields, Structure, StructureKind};

    use super::*;

    fn node(dir: &std::path::Path) -> Node {
        let structure = Structure {
            siret: "73282932000074".into(),
            kind: StructureKind::Ai as i32,
            name: "Tremplin Travail".into(),
            departement: "49".into(),
        };
        Node::open(dir, structure).expect("open node")
    }

    fn at(date: &str) -> i64 {
        // Noon, Paris time, that day.
        paris_midnight_ms(Date::parse(date).expect("date")) + DAY_MS / 2
    }

    fn report(period: &str) -> IndicatorFields {
        IndicatorFields {
            period: period.into(),
            etp_hundredths: 1250,
            employees_in_insertion: 20,
            hours_worked: 1700,
            hires: 1,
            exits: Some(Exits { total: 4, durable: 1, transition: 1, positive: 1, other: 1 }),
        }
    }

    fn rows(missing: &[MissingIndicators]) -> Vec<(&str, &str, &str, bool)> {
        missing.iter().map(|m| (m.period.as_str(), m.hub_id.as_str(), m.due.as_str(), m.overdue)).collect()
    }

    #[test]
    fn months_from_the_first_report_or_sync_to_last_month_per_hub() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let node = node(dir.path());
        let hubs = ["a".to_string(), "b".to_string(), "never-synced".to_string()];
        let now = at("2026-12-02");
        // No hub has answered yet: nothing is expected.
        assert!(node.missing_indicators(&hubs, now)?.is_empty());

        // Joined in November: October is owed (due 15 November, overdue), then November.
        node.record_hub_periods("a", 15, at("2026-11-05"))?;
        assert_eq!(
            rows(&node.missing_indicators(&hubs, now)?),
            [("2026-10", "a", "2026-11-15", true), ("2026-11", "a", "2026-12-15", false)]
        );
        assert_eq!(node.overdue_months(&hubs, now)?, 1);

        // A report from August pulls the start back; a second hub with its own deadline; a hub
        // not configured for indicators any more is left out.
        node.submit_indicators(Some(report("2026-08")))?;
        node.submit_indicators(Some(report("2026-10")))?;
        node.record_hub_periods("b", 28, at("2026-11-20"))?;
        node.record_hub_periods("gone", 10, at("2026-01-20"))?;
        assert_eq!(
            rows(&node.missing_indicators(&hubs, now)?),
            [
                ("2026-09", "a", "2026-10-15", true),
                ("2026-09", "b", "2026-10-28", true),
                ("2026-11", "a", "2026-12-15", false),
                ("2026-11", "b", "2026-12-28", false),
            ]
        );
        assert_eq!(node.overdue_months(&hubs, now)?, 1);
        // December → January: on 16 January, November and December are both overdue at `a`.
        assert_eq!(node.overdue_months(&hubs, at("2027-01-16"))?, 3);
        Ok(())
    }

    #[test]
    fn a_new_deadline_keeps_the_first_sync() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let node = node(dir.path());
        node.record_hub_periods("a", 15, at("2026-11-05"))?;
        node.record_hub_periods("a", 20, at("2026-12-01"))?;
        let hubs = ["a".to_string()];
        assert_eq!(
            rows(&node.missing_indicators(&hubs, at("2026-12-02"))?),
            [("2026-10", "a", "2026-11-20", true), ("2026-11", "a", "2026-12-20", false)]
        );
        // A hub that gives no valid deadline (an older hub) has no due dates to give.
        node.record_hub_periods("a", 0, at("2026-12-01"))?;
        assert!(node.missing_indicators(&hubs, at("2026-12-02"))?.is_empty());
        Ok(())
    }
}
