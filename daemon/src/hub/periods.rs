//! Reporting periods: when a month's indicator reports are due, who has sent theirs, and the
//! closing that settles a month and freezes its published tables.
//!
//! - **Due date**: a month's reports are due on `[periods] deadline_day` of the following month,
//!   Europe/Paris; the due *instant* is the end of that day (midnight at its close, Paris time).
//!   Paris is UTC+1, or UTC+2 from the last Sunday of March to the last Sunday of October (the
//!   switch happens at 01:00 UTC, so a local midnight is never ambiguous): computed in
//!   `passerelle_proto::periods`, no time-zone database, so nodes compute the same dates.
//! - **Receipts** (`r/MONTH/SIRET` in [`Tree::Periods`]): when the hub first and last received a
//!   structure's report for a month, whether it changed after the closing, the structure's
//!   identity and the hubs relaying it. Written in the same commit as the report.
//! - **Closing** (`c/MONTH`): when the month closed and how many revisions followed (0: only the
//!   closing). At the closing, under the write lock, the month's published indicators tables —
//!   every dimension set a consumer may ask — are computed once and stored (`f/PERIOD/BY`); so
//!   are a quarter's and a year's once all their months are closed. Consumers read only those
//!   frozen bytes: a report arriving later is stored and counted late, and changes no published
//!   table.
//! - **When a month closes** (`close = "deadline"`): at its due instant; but a month whose due
//!   instant had passed when the hub received its first report for it (history fed to a new hub)
//!   closes `history_grace_days` after that first report, so its backlog is not frozen empty.
//!   With `close = "manual"`, only `passerelle hub period close` closes a month.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use passerelle_proto::date::{Month, now_unix_ms};
use passerelle_proto::periods::{DAY_MS, HOUR_MS, due_date, due_instant_ms, month_at, month_end_ms};
use passerelle_proto::v1::{
    Completeness, CompletenessRow, GetTableRequest, MemberState, Period, PeriodState, Structure, Table,
};
use passerelle_proto::validate::FieldError;
use prost::Message;
use tokio::sync::watch;

use super::Hub;
use super::stats::{Families, Published, Root, Snapshot, World};
use crate::error::{Error, Result};
use crate::store::{StoreError, Tree, WriteBatch, scan_prefix};

/// Default of `[periods] deadline_day`.
pub const DEFAULT_DEADLINE_DAY: u8 = 15;
/// Default of `[periods] history_grace_days`.
pub const DEFAULT_HISTORY_GRACE_DAYS: u32 = 7;

/// How months close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseRule {
    /// At the due instant (or after the grace period for history months), by a background task.
    Deadline,
    /// Only when an operator runs `passerelle hub period close`.
    Manual,
}

impl CloseRule {
    /// Parses the config value `deadline` or `manual`.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "deadline" => Some(Self::Deadline),
            "manual" => Some(Self::Manual),
            _ => None,
        }
    }
}

/// A hub's `[periods]` settings, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeriodsConfig {
    /// Day of the following month a month's reports are due (1–28).
    pub deadline_day: u8,
    /// How months close.
    pub close: CloseRule,
    /// Days a history month stays open after its first report.
    pub history_grace_days: u32,
}

impl Default for PeriodsConfig {
    fn default() -> Self {
        Self {
            deadline_day: DEFAULT_DEADLINE_DAY,
            close: CloseRule::Deadline,
            history_grace_days: DEFAULT_HISTORY_GRACE_DAYS,
        }
    }
}

/// When a month closes under `close = "deadline"`: its due instant, or, when its first report
/// arrived after that (history), `grace_days` after that first report.
pub fn closing_instant_ms(month: Month, first_report_ms: i64, config: &PeriodsConfig) -> i64 {
    let due = due_instant_ms(month, config.deadline_day);
    if first_report_ms > due { first_report_ms + i64::from(config.history_grace_days) * DAY_MS } else { due }
}

/// A structure's report for a month, as the hub received it.
#[derive(Clone, PartialEq, Message)]
pub struct Receipt {
    /// First received, ms since the Unix epoch.
    #[prost(int64, tag = "1")]
    pub first_at_ms: i64,
    /// Last received with a change, ms since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub last_at_ms: i64,
    /// Whether it arrived or changed after the month closed.
    #[prost(bool, tag = "3")]
    pub after_closing: bool,
    /// The structure, as last known.
    #[prost(message, optional, tag = "4")]
    pub structure: Option<Structure>,
    /// On an upstream hub: the hubs that relayed it.
    #[prost(string, repeated, tag = "5")]
    pub sources: Vec<String>,
}

/// A closed month.
#[derive(Clone, PartialEq, Message)]
pub struct Closing {
    /// When it closed, ms since the Unix epoch.
    #[prost(int64, tag = "1")]
    pub closed_at_ms: i64,
    /// Revisions published since (0: the closing only).
    #[prost(uint32, tag = "2")]
    pub revisions: u32,
}

/// A report applied by a batch, for its receipt.
#[derive(Debug, Clone)]
pub(super) struct Received {
    /// The structure's SIRET.
    pub(super) origin: String,
    /// The month.
    pub(super) period: String,
    /// The structure's identity, when known.
    pub(super) structure: Option<Structure>,
    /// The relaying hub, on an upstream hub.
    pub(super) source: Option<String>,
    /// Whether the report's content changed (a resend of the same report is not a change).
    pub(super) changed: bool,
}

fn receipt_key(month: Month, siret: &str) -> Vec<u8> {
    format!("r/{:08}/{siret}", month.ordinal()).into_bytes()
}

pub(super) fn closing_key(month: Month) -> Vec<u8> {
    format!("c/{:08}", month.ordinal()).into_bytes()
}

/// The latest revision of a period's published table by `by`.
pub(super) fn frozen_key(period: &str, by: &[String]) -> Vec<u8> {
    format!("f/{period}/{}", by.join(",")).into_bytes()
}

/// An earlier revision of a period's published table by `by` (once a later one is published).
pub(super) fn revision_key(period: &str, revision: u32, by: &[String]) -> Vec<u8> {
    format!("v/{period}/{revision:08}/{}", by.join(",")).into_bytes()
}

/// What revision `revision` of a period counted ([`super::stats::Snapshot`]).
pub(super) fn snapshot_key(period: &str, revision: u32) -> Vec<u8> {
    format!("s/{period}/{revision:08}").into_bytes()
}

pub(super) fn corrupt(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Store(StoreError(format!("corrupt {what}: {e}")))
}

/// The dimension sets a consumer may ask an indicators table by: none, one, or two distinct
/// ones in either order.
pub(super) fn indicator_dimension_sets() -> Vec<Vec<String>> {
    let dims = ["departement", "region", "kind", "network"];
    let mut sets = vec![Vec::new()];
    sets.extend(dims.iter().map(|d| vec![d.to_string()]));
    for a in dims {
        for b in dims {
            if a != b {
                sets.push(vec![a.to_string(), b.to_string()]);
            }
        }
    }
    sets
}

/// The family tables an audit reads of each published revision (the others are projections).
pub(super) fn family_sets() -> Vec<Vec<String>> {
    vec![vec![], vec!["departement".into()], vec!["kind".into()], vec!["departement".into(), "kind".into()]]
}

/// The months of a period label (`2026-10`, `2026-Q3`, `2026`).
pub(super) fn months_of(period: &str) -> Result<Vec<Month>> {
    let (from, to) = super::stats::parse_period(period)?;
    Ok((from.ordinal()..=to.ordinal()).map(Month::from_ordinal).collect())
}

/// A structure expected to report: its identity as last known, and the hubs relaying it.
type Reporting = (Option<Structure>, Vec<String>);

/// Per structure: its receipts by month.
type ByStructure = BTreeMap<String, BTreeMap<Month, Receipt>>;

impl Hub {
    /// The `[periods]` settings.
    fn periods_config(&self) -> &PeriodsConfig {
        &self.config.periods
    }

    /// Stages the receipts of the reports a batch applies (called under the write lock).
    pub(super) fn stage_receipts(
        &self,
        write: &mut WriteBatch,
        received: &[Received],
        now: i64,
    ) -> Result<()> {
        let mut staged: BTreeMap<Vec<u8>, Receipt> = BTreeMap::new();
        for r in received {
            let Ok(month) = Month::parse(&r.period) else { continue };
            let key = receipt_key(month, &r.origin);
            let existing = match staged.remove(&key) {
                Some(receipt) => Some(receipt),
                None => self
                    .store
                    .get(Tree::Periods, &key)?
                    .map(|raw| Receipt::decode(raw.as_slice()).map_err(|e| corrupt("receipt", e)))
                    .transpose()?,
            };
            if existing.is_some() && !r.changed && r.source.is_none() {
                continue;
            }
            let closed = self.closing(month)?.is_some();
            let mut receipt = existing.clone().unwrap_or(Receipt { first_at_ms: now, ..Default::default() });
            if existing.is_none() || r.changed {
                receipt.last_at_ms = now;
                receipt.after_closing |= closed;
            }
            if r.structure.is_some() {
                receipt.structure = r.structure.clone();
            }
            if let Some(source) = r.source.as_ref().filter(|s| !receipt.sources.contains(s)) {
                receipt.sources.push(source.clone());
            }
            if existing.as_ref() != Some(&receipt) {
                staged.insert(key, receipt);
            }
        }
        for (key, receipt) in staged {
            write.put(Tree::Periods, key, receipt.encode_to_vec());
        }
        Ok(())
    }

    /// The closing of `month`, if it is closed.
    pub fn closing(&self, month: Month) -> Result<Option<Closing>> {
        self.store
            .get(Tree::Periods, &closing_key(month))?
            .map(|raw| Closing::decode(raw.as_slice()).map_err(|e| corrupt("closing", e)))
            .transpose()
    }

    /// Every receipt, by structure and month; with `held_only`, only those of reports the hub
    /// still holds (a withdrawn or purged report no longer counts as received).
    fn receipts(&self, held_only: bool) -> Result<ByStructure> {
        let mut by: ByStructure = BTreeMap::new();
        for (key, raw) in scan_prefix(self.store.as_ref(), Tree::Periods, b"r/")? {
            let key = String::from_utf8_lossy(&key).into_owned();
            let mut parts = key.splitn(3, '/').skip(1);
            let (Some(ord), Some(siret)) = (parts.next(), parts.next()) else { continue };
            let Ok(ord) = ord.parse::<u32>() else { continue };
            let mut receipt = Receipt::decode(raw.as_slice()).map_err(|e| corrupt("receipt", e))?;
            if held_only {
                let month = Month::from_ordinal(ord);
                let key = crate::store::keys::RecordKey::new(
                    siret,
                    passerelle_proto::datasets::Dataset::Indicators,
                    month.to_string(),
                )
                .encode();
                let record = self
                    .store
                    .get(Tree::Records, &key)?
                    .map(|raw| {
                        super::ingest::HubRecord::decode(raw.as_slice()).map_err(|e| corrupt("record", e))
                    })
                    .transpose()?;
                match record {
                    // The hubs relaying it now (a resend through a second network changes no
                    // report, so the record, not the receipt, knows them all).
                    Some(record) if record.is_live() => receipt.sources = record.sources,
                    _ => continue,
                }
            }
            by.entry(siret.to_string()).or_default().insert(Month::from_ordinal(ord), receipt);
        }
        Ok(by)
    }

    /// The structures this hub expects reports from, with their identity: its accepted member
    /// nodes, and the structures relayed to it by accepted member hubs.
    fn reporting_structures(&self, receipts: &ByStructure) -> Result<BTreeMap<String, Reporting>> {
        let members = self.list_members()?;
        let accepted_hubs: BTreeSet<&str> = members
            .iter()
            .filter(|m| m.role == "hub" && m.state == MemberState::Accepted as i32)
            .map(|m| m.id.as_str())
            .collect();
        let mut out = BTreeMap::new();
        for m in &members {
            if m.role == "node" && m.state == MemberState::Accepted as i32 {
                out.insert(m.id.clone(), (m.structure.clone(), Vec::new()));
            }
        }
        for (siret, months) in receipts {
            let sources: BTreeSet<&String> = months.values().flat_map(|r| &r.sources).collect();
            let relayed: Vec<String> =
                sources.into_iter().filter(|s| accepted_hubs.contains(s.as_str())).cloned().collect();
            if !relayed.is_empty() {
                let structure = months.values().rev().find_map(|r| r.structure.clone());
                let entry = out.entry(siret.clone()).or_insert((structure, Vec::new()));
                entry.1 = relayed;
            }
        }
        Ok(out)
    }

    /// Whether a receipt counts as late, and by how many days.
    fn days_late(&self, month: Month, receipt: &Receipt, closing: Option<&Closing>) -> u32 {
        let due = due_instant_ms(month, self.periods_config().deadline_day);
        let at = if receipt.after_closing { receipt.last_at_ms } else { receipt.first_at_ms };
        let after_closing =
            receipt.after_closing || closing.is_some_and(|c| receipt.first_at_ms > c.closed_at_ms);
        if at <= due && !after_closing {
            return 0;
        }
        let days = ((at - due).max(0) + DAY_MS - 1) / DAY_MS;
        u32::try_from(days).unwrap_or(u32::MAX).max(1)
    }

    /// The latest month whose due instant has passed at `now`.
    fn latest_due_month(&self, now: i64) -> Month {
        let mut month = month_at(now);
        while due_instant_ms(month, self.periods_config().deadline_day) > now {
            month = Month::from_ordinal(month.ordinal() - 1);
        }
        month
    }

    /// Who has reported `period` (default: the latest month whose due date has passed).
    pub fn completeness(&self, period: &str) -> Result<Completeness> {
        let month = if period.is_empty() {
            self.latest_due_month(now_unix_ms())
        } else {
            passerelle_proto::validate::month("period", period)?
        };
        let receipts = self.receipts(true)?;
        let structures = self.reporting_structures(&receipts)?;
        let closing = self.closing(month)?;
        let mut out = Completeness {
            period: month.to_string(),
            due: due_date(month, self.periods_config().deadline_day).to_string(),
            ..Default::default()
        };
        let none = BTreeMap::new();
        for (siret, (structure, networks)) in structures {
            let months = receipts.get(&siret).unwrap_or(&none);
            let first = months.keys().next().copied();
            let expected = first.is_some_and(|f| f <= month);
            let receipt = months.get(&month);
            let missing_months = match first {
                Some(f) if f <= month => (f.ordinal()..=month.ordinal())
                    .filter(|o| !months.contains_key(&Month::from_ordinal(*o)))
                    .count(),
                _ => 0,
            };
            let days_late = receipt.map(|r| self.days_late(month, r, closing.as_ref()));
            if expected {
                out.expected += 1;
                match days_late {
                    Some(0) => out.on_time += 1,
                    Some(_) => out.late += 1,
                    None => out.missing += 1,
                }
                if receipt.is_some() {
                    out.reported += 1;
                }
            }
            let structure = structure.unwrap_or_default();
            out.rows.push(CompletenessRow {
                member: siret,
                name: structure.name,
                kind: structure.kind,
                departement: structure.departement,
                reported: receipt.is_some(),
                reported_at_ms: receipt.map_or(0, |r| r.first_at_ms),
                days_late,
                last_period: months.keys().next_back().map(ToString::to_string).unwrap_or_default(),
                months_missing: u32::try_from(missing_months).unwrap_or(u32::MAX),
                networks,
                expected,
            });
        }
        Ok(out)
    }

    /// Every month seen (a report received, or closed), oldest first.
    pub fn list_periods(&self) -> Result<Vec<Period>> {
        let receipts = self.receipts(true)?;
        let structures = self.reporting_structures(&receipts)?;
        let mut months: BTreeSet<Month> = receipts.values().flat_map(|m| m.keys().copied()).collect();
        for (key, _) in scan_prefix(self.store.as_ref(), Tree::Periods, b"c/")? {
            if let Some(ord) = std::str::from_utf8(&key[2..]).ok().and_then(|s| s.parse::<u32>().ok()) {
                months.insert(Month::from_ordinal(ord));
            }
        }
        let firsts: Vec<(Option<Month>, &BTreeMap<Month, Receipt>)> = structures
            .keys()
            .filter_map(|s| receipts.get(s))
            .map(|m| (m.keys().next().copied(), m))
            .collect();
        months
            .into_iter()
            .map(|month| {
                let closing = self.closing(month)?;
                let expected = firsts.iter().filter(|(f, _)| f.is_some_and(|f| f <= month)).count();
                let reported = firsts
                    .iter()
                    .filter(|(f, m)| f.is_some_and(|f| f <= month) && m.contains_key(&month))
                    .count();
                Ok(Period {
                    period: month.to_string(),
                    state: if closing.is_some() { PeriodState::Closed } else { PeriodState::Open } as i32,
                    due: due_date(month, self.periods_config().deadline_day).to_string(),
                    closed_at_ms: closing.as_ref().map_or(0, |c| c.closed_at_ms),
                    reported: u32::try_from(reported).unwrap_or(u32::MAX),
                    expected: u32::try_from(expected).unwrap_or(u32::MAX),
                    revisions: closing.as_ref().map_or(0, |c| c.revisions),
                })
            })
            .collect()
    }

    /// Closes `period` now (idempotent): freezes its published tables, and those of its quarter
    /// and year once all their months are closed. A month not yet ended is refused.
    pub fn close_period(&self, period: &str) -> Result<Period> {
        let month = passerelle_proto::validate::month("period", period)?;
        self.close_month(month, now_unix_ms())?;
        self.list_periods()?
            .into_iter()
            .find(|p| p.period == month.to_string())
            .ok_or_else(|| corrupt("periods", "a closed month is missing from the list"))
    }

    /// Closes `month` at `now` unless it is closed already; returns whether it closed now.
    pub(crate) fn close_month(&self, month: Month, now: i64) -> Result<bool> {
        if now < month_end_ms(month) {
            return Err(Error::FailedPrecondition(format!("period {month} has not ended yet")));
        }
        let _writer = self.write_lock();
        if self.closing(month)?.is_some() {
            return Ok(false);
        }
        let mut write = WriteBatch::new();
        let mut families = Families::publishing(self.published_world(month.year)?);
        self.stage_frozen(&mut write, &month.to_string(), 0, &mut families)?;
        self.stage_frozen_introductions(&mut write, month)?;
        write.put(
            Tree::Periods,
            closing_key(month),
            Closing { closed_at_ms: now, revisions: 0 }.encode_to_vec(),
        );
        // The quarter and the year, once every month of theirs is closed (this one included)
        // and published as it counts now.
        let quarter = format!("{}-Q{}", month.year, (month.month - 1) / 3 + 1);
        for wider in [quarter, month.year.to_string()] {
            self.stage_wider(&mut write, &wider, Some(month), &mut families)?;
        }
        self.store.commit(write)?;
        tracing::info!(period = %month, "period closed, tables frozen");
        Ok(true)
    }

    /// Computes and stages the published indicators tables of `period`, every dimension set, as
    /// its revision `revision` (the latest), with what they count (the next publications'
    /// audits read it), audited in `families`' world.
    pub(super) fn stage_frozen(
        &self,
        write: &mut WriteBatch,
        period: &str,
        revision: u32,
        families: &mut Families,
    ) -> Result<()> {
        let mut snapshot = self.indicator_snapshot(period)?;
        if let Some(world) = families.world() {
            // The revision of each sub-period it sums: the latest, which counts what it counts.
            let subs = super::stats::sub_periods(period)?;
            let counted: Option<Vec<u32>> =
                subs.iter().map(|s| world.latest(s).map(|p| p.revision)).collect();
            snapshot.counted = counted.unwrap_or_default();
        }
        families.begin(Root { period: period.into(), revision, snapshot: snapshot.clone() });
        let mut tables = Vec::new();
        for by in indicator_dimension_sets() {
            let mut table = self.compute_table_with(
                &GetTableRequest {
                    table: super::stats::Table::Indicators.as_str().into(),
                    by: by.clone(),
                    period: period.into(),
                    from: None,
                    to: None,
                    revision: None,
                },
                families,
            )?;
            table.revision = revision;
            write.put(Tree::Periods, frozen_key(period, &by), table.encode_to_vec());
            tables.push(table);
        }
        write.put(Tree::Periods, snapshot_key(period, revision), snapshot.encode_to_vec());
        families.published(Published::new(period, revision, &tables, snapshot));
        Ok(())
    }

    /// Stages the next revision of `wider` (a quarter or year), its first at its closing, when
    /// every month of it is closed (`closing` may be closing in this very commit) and published
    /// as it counts now — a month with unpublished changes would make the quarter publish them
    /// first, and the quarter minus its months give them away. Returns whether it was staged.
    pub(super) fn stage_wider(
        &self,
        write: &mut WriteBatch,
        wider: &str,
        closing: Option<Month>,
        families: &mut Families,
    ) -> Result<bool> {
        let mut unpublished = Vec::new();
        for m in months_of(wider)? {
            if Some(m) != closing && self.closing(m)?.is_none() {
                return Ok(false);
            }
            let label = m.to_string();
            let held = families.world().and_then(|w| w.latest(&label)).map(|p| p.snapshot.clone());
            // A month published before snapshots were kept cannot be checked: taken as it is.
            if let Some(held) = held
                && !held.same_cells(&self.indicator_snapshot(&label)?)
            {
                unpublished.push(label);
            }
        }
        if !unpublished.is_empty() {
            tracing::warn!(
                period = wider,
                months = %unpublished.join(", "),
                "period not published: a month of it has reports its published revision does not count; `passerelle hub period revise` each of them publishes it"
            );
            return Ok(false);
        }
        let latest = families.world().and_then(|w| w.latest(wider)).map(|p| (p.revision, p.snapshot.clone()));
        let revision = match latest {
            None => 0,
            Some((r, held)) => {
                let now = self.indicator_snapshot(wider)?;
                let counted: Vec<u32> = super::stats::sub_periods(wider)?
                    .iter()
                    .filter_map(|s| families.world().and_then(|w| w.latest(s)).map(|p| p.revision))
                    .collect();
                if held.same_cells(&now) && held.counted == counted {
                    return Ok(false);
                }
                r + 1
            }
        };
        if revision > 0 {
            // The latest revision's tables move to their revision's keys; the next replaces them.
            for by in indicator_dimension_sets() {
                if let Some(raw) = self.store.get(Tree::Periods, &frozen_key(wider, &by))? {
                    write.put(Tree::Periods, revision_key(wider, revision - 1, &by), raw);
                }
            }
        }
        self.stage_frozen(write, wider, revision, families)?;
        Ok(true)
    }

    /// Every published revision of the periods of `year` (what consumers hold), for the audit
    /// of the next publication. A revision published before snapshots were kept is left out.
    pub(super) fn published_world(&self, year: i32) -> Result<World> {
        let mut world = World::default();
        let mut periods: Vec<String> = (1..=12).map(|m| Month { year, month: m }.to_string()).collect();
        periods.extend((1..=4).map(|q| format!("{year}-Q{q}")));
        periods.push(year.to_string());
        for period in periods {
            let Some(raw) = self.store.get(Tree::Periods, &frozen_key(&period, &[]))? else { continue };
            let latest = Table::decode(raw.as_slice()).map_err(|e| corrupt("frozen table", e))?.revision;
            for revision in 0..=latest {
                let Some(raw) = self.store.get(Tree::Periods, &snapshot_key(&period, revision))? else {
                    continue;
                };
                let snapshot = Snapshot::decode(raw.as_slice()).map_err(|e| corrupt("snapshot", e))?;
                let mut tables = Vec::new();
                for by in family_sets() {
                    let key = if revision == latest {
                        frozen_key(&period, &by)
                    } else {
                        revision_key(&period, revision, &by)
                    };
                    if let Some(raw) = self.store.get(Tree::Periods, &key)? {
                        tables.push(Table::decode(raw.as_slice()).map_err(|e| corrupt("frozen table", e))?);
                    }
                }
                world.push(Published::new(&period, revision, &tables, snapshot));
            }
        }
        Ok(world)
    }

    /// The first month of `period` that is not closed, with its due date, if any.
    fn first_open_month(&self, period: &str) -> Result<Option<Month>> {
        for month in months_of(period)? {
            if self.closing(month)?.is_none() {
                return Ok(Some(month));
            }
        }
        Ok(None)
    }

    /// The published indicators table of a closed period: its frozen bytes, of the revision
    /// asked (default: the latest). `FAILED_PRECONDITION` while a month of it is open;
    /// `NOT_FOUND` naming the revision when the period has none such.
    pub(super) fn published_indicators(&self, request: &GetTableRequest) -> Result<Table> {
        if let Some(open) = self.first_open_month(&request.period)? {
            return Err(Error::FailedPrecondition(format!(
                "period {open} is not closed yet (due {})",
                due_date(open, self.periods_config().deadline_day)
            )));
        }
        if self.store.get(Tree::Periods, &frozen_key(&request.period, &[]))?.is_none() {
            return Err(self.unpublished(&request.period)?);
        }
        let key = frozen_key(&request.period, &request.by);
        let Some(raw) = self.store.get(Tree::Periods, &key)? else {
            return Err(FieldError::new("by", request.by.join(","), "a dimension may be named once").into());
        };
        let latest = Table::decode(raw.as_slice()).map_err(|e| corrupt("frozen table", e))?;
        match request.revision {
            None => Ok(latest),
            Some(n) if n == latest.revision => Ok(latest),
            Some(n) => {
                let missing = || Error::NotFound {
                    what: "revision",
                    id: format!("{n} of period {} (latest: {})", request.period, latest.revision),
                };
                if n > latest.revision {
                    return Err(missing());
                }
                let raw = self
                    .store
                    .get(Tree::Periods, &revision_key(&request.period, n, &request.by))?
                    .ok_or_else(missing)?;
                Table::decode(raw.as_slice()).map_err(|e| corrupt("frozen table", e))
            }
        }
    }

    /// Why `period`, every month of it closed, has no published tables: a month of it has
    /// reports its published revision does not count (see [`Hub::stage_wider`]).
    fn unpublished(&self, period: &str) -> Result<Error> {
        let (from, _) = super::stats::parse_period(period)?;
        let world = self.published_world(from.year)?;
        let mut waiting = Vec::new();
        for m in months_of(period)? {
            let label = m.to_string();
            if let Some(held) = world.latest(&label)
                && !held.snapshot.same_cells(&self.indicator_snapshot(&label)?)
            {
                waiting.push(format!("passerelle hub period revise {label}"));
            }
        }
        Ok(Error::FailedPrecondition(if waiting.is_empty() {
            format!("period {period} is not published yet")
        } else {
            format!(
                "period {period} is not published yet: reports arrived, changed or were removed after a month of it closed; publish them first ({})",
                waiting.join("; ")
            )
        }))
    }

    /// The periods a consumer may ask indicators tables for: closed months, and quarters and
    /// years published (every month closed, and published as it counts).
    pub fn published_periods(&self) -> Result<Vec<String>> {
        let mut closed = BTreeSet::new();
        for (key, _) in scan_prefix(self.store.as_ref(), Tree::Periods, b"c/")? {
            if let Some(ord) = std::str::from_utf8(&key[2..]).ok().and_then(|s| s.parse::<u32>().ok()) {
                closed.insert(Month::from_ordinal(ord));
            }
        }
        let all_closed = |months: Vec<Month>| months.iter().all(|m| closed.contains(m));
        let mut out = Vec::new();
        for month in &closed {
            out.push(month.to_string());
            if month.month % 3 == 0 {
                let quarter = format!("{}-Q{}", month.year, month.month / 3);
                if all_closed(months_of(&quarter)?) && self.is_published(&quarter)? {
                    out.push(quarter);
                }
            }
            let year = month.year.to_string();
            if month.month == 12 && all_closed(months_of(&year)?) && self.is_published(&year)? {
                out.push(year);
            }
        }
        Ok(out)
    }

    /// Whether `period` has published indicators tables.
    fn is_published(&self, period: &str) -> Result<bool> {
        Ok(self.store.get(Tree::Periods, &frozen_key(period, &[]))?.is_some())
    }

    /// When the next month closes by itself (`close = "deadline"`), and the months already due.
    fn closing_schedule(&self, now: i64) -> Result<(Vec<Month>, Option<i64>)> {
        let config = *self.periods_config();
        let mut first_report: BTreeMap<Month, i64> = BTreeMap::new();
        for months in self.receipts(false)?.values() {
            for (month, receipt) in months {
                let at = first_report.entry(*month).or_insert(receipt.first_at_ms);
                *at = (*at).min(receipt.first_at_ms);
            }
        }
        let (mut due, mut next) = (Vec::new(), None::<i64>);
        for (month, first) in first_report {
            if self.closing(month)?.is_some() {
                continue;
            }
            let at = closing_instant_ms(month, first, &config).max(month_end_ms(month));
            if at <= now {
                due.push(month);
            } else {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        Ok((due, next))
    }

    /// Closes the months whose closing instant has passed; returns when the next one is due.
    pub fn close_due_months(&self, now: i64) -> Result<Option<i64>> {
        let (due, next) = self.closing_schedule(now)?;
        for month in due {
            self.close_month(month, now)?;
        }
        Ok(next)
    }
}

/// How soon after its last look the closing task looks again when reports arrive.
const RESCHEDULE_AFTER_REPORTS: Duration = Duration::from_secs(60);

/// With `close = "deadline"`: closes due months at start, then sleeps until the next closing
/// instant — waking earlier when reports arrive (they may open a history month) — until `stop`.
pub fn start(hub: Arc<Hub>, mut stop: watch::Receiver<bool>) -> Option<tokio::task::JoinHandle<()>> {
    if hub.periods_config().close != CloseRule::Deadline {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut feed = hub.watch_feed();
        loop {
            feed.borrow_and_update();
            let ran_at = tokio::time::Instant::now();
            let h = hub.clone();
            let next = match tokio::task::spawn_blocking(move || h.close_due_months(now_unix_ms())).await {
                Ok(Ok(next)) => next,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "closing due periods failed");
                    Some(now_unix_ms() + HOUR_MS)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "period task failed");
                    Some(now_unix_ms() + HOUR_MS)
                }
            };
            // Without a pending month, only a report can start one: wait for it (a day at most).
            let wait = next.map_or(DAY_MS, |at| (at - now_unix_ms()).clamp(0, DAY_MS));
            let due = ran_at + Duration::from_millis(u64::try_from(wait).unwrap_or(0));
            let reported = tokio::select! {
                () = tokio::time::sleep_until(due) => false,
                changed = feed.changed() => if changed.is_err() { return } else { true },
                _ = stop.wait_for(|s| *s) => return,
            };
            if reported {
                // A report can open a month, whose closing is at least a day away (grace days
                // are ≥ 1), so reports are looked at once a minute at most, not per batch: the
                // schedule reads every receipt, and a hub taking thousands of members' batches
                // at once would read them all per batch.
                let soonest = (ran_at + RESCHEDULE_AFTER_REPORTS).min(due);
                tokio::select! {
                    () = tokio::time::sleep_until(soonest) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use passerelle_proto::date::Date;

    use super::*;

    fn month(s: &str) -> Month {
        Month::parse(s).expect("month")
    }

    fn instant(s: &str) -> i64 {
        // `YYYY-MM-DDTHH:MM` in UTC.
        let (date, time) = s.split_once('T').expect("T");
        let (h, m) = time.split_once(':').expect(":");
        Date::parse(date).expect("date").days_since_epoch() * DAY_MS
            + h.parse::<i64>().expect("h") * HOUR_MS
            + m.parse::<i64>().expect("m") * 60_000
    }

    #[test]
    fn history_months_close_after_the_grace_period() {
        let config = PeriodsConfig::default();
        let due = due_instant_ms(month("2026-09"), 15);
        // Reported before the due date: closes at the due date.
        assert_eq!(closing_instant_ms(month("2026-09"), due - DAY_MS, &config), due);
        assert_eq!(closing_instant_ms(month("2026-09"), due, &config), due);
        // First report after the due date (a backlog): seven days after that report.
        let late = instant("2026-11-20T10:00");
        assert_eq!(closing_instant_ms(month("2026-09"), late, &config), late + 7 * DAY_MS);
        let config = PeriodsConfig { history_grace_days: 2, ..config };
        assert_eq!(closing_instant_ms(month("2026-09"), late, &config), late + 2 * DAY_MS);
    }

    #[test]
    fn the_deadline_task_closes_history_months_only_after_the_grace_period() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let hub = Hub::for_tests(dir.path());
        let first = instant("2026-11-20T10:00");
        let received = Received {
            origin: "12345678901234".into(),
            period: "2026-09".into(),
            structure: None,
            source: None,
            changed: true,
        };
        let mut write = WriteBatch::new();
        hub.stage_receipts(&mut write, &[received], first)?;
        hub.store.commit(write)?;
        let grace = 7 * DAY_MS;
        assert_eq!(hub.close_due_months(first + grace - 1)?, Some(first + grace));
        assert!(hub.closing(month("2026-09"))?.is_none(), "still within the grace period");
        assert_eq!(hub.close_due_months(first + grace)?, None);
        let closing = hub.closing(month("2026-09"))?.ok_or_else(|| anyhow::anyhow!("not closed"))?;
        assert_eq!(closing.closed_at_ms, first + grace);
        Ok(())
    }

    #[test]
    fn a_month_not_yet_ended_is_refused_and_closing_is_idempotent() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let hub = Hub::for_tests(dir.path());
        let end = month_end_ms(month("2026-11"));
        assert!(matches!(hub.close_month(month("2026-11"), end - 1), Err(Error::FailedPrecondition(_))));
        assert!(hub.close_month(month("2026-11"), end)?);
        assert!(!hub.close_month(month("2026-11"), end + 5)?);
        assert_eq!(hub.closing(month("2026-11"))?.map(|c| c.closed_at_ms), Some(end));
        assert_eq!(hub.published_periods()?, vec!["2026-11".to_string()]);
        Ok(())
    }
}
