//! Revisions of closed months: `passerelle hub period revise YYYY-MM`.
//!
//! A closed month's tables are frozen (see `hub::periods`): reports that arrive, change or leave
//! after the closing are counted but published only when an operator revises the month. The
//! revision `n + 1` is computed from the current cells and audited with every earlier revision's
//! published cells (`stats::revisions`: the difference of two revisions must isolate no
//! structure), then frozen like the closing: consumers read it by lookup, and `--revision N`
//! reads an earlier one. Months, quarters and years count their own revisions: revising a month
//! also publishes the next revision of its quarter and year when those are published (all their
//! months closed).
//!
//! Keys (in the periods tree): `f/PERIOD/BY` holds the latest revision of each table (what a
//! read without `--revision` looks up, as before revisions existed); `v/PERIOD/REVISION/BY` the
//! earlier ones, moved there when the next is published; `s/PERIOD/REVISION` what each revision
//! counted (every structure's contribution per finest cell), written with it.

use passerelle_proto::date::Month;
use passerelle_proto::v1::{Period, Table};
use prost::Message;

use super::Hub;
use super::periods::{
    closing_key, corrupt, frozen_key, indicator_dimension_sets, months_of, revision_key, snapshot_key,
};
use super::stats::{Families, Snapshot};
use crate::error::{Error, Result};
use crate::store::{Tree, WriteBatch};

/// Family tables a revision's audit reads of each earlier revision (the others are projections).
fn family_sets() -> Vec<Vec<String>> {
    vec![vec![], vec!["departement".into()], vec!["kind".into()], vec!["departement".into(), "kind".into()]]
}

impl Hub {
    /// Publishes the next revision of `period`, a closed month (see the module's doc).
    pub fn revise_period(&self, period: &str) -> Result<Period> {
        let month = passerelle_proto::validate::month("period", period)?;
        self.revise_month(month)?;
        self.list_periods()?
            .into_iter()
            .find(|p| p.period == month.to_string())
            .ok_or_else(|| corrupt("periods", "a revised month is missing from the list"))
    }

    /// Publishes the next revision of `month` and, when published, of its quarter and year;
    /// returns the month's new revision. `FAILED_PRECONDITION` for a month not closed, one
    /// closed before revisions were recorded, or one where nothing changed since its latest
    /// revision (an identical revision would only make readers compare two equal tables).
    pub(crate) fn revise_month(&self, month: Month) -> Result<u32> {
        let _writer = self.write_lock();
        let Some(mut closing) = self.closing(month)? else {
            return Err(Error::FailedPrecondition(format!(
                "period {month} is open: only a closed month is revised (its reports are published when it closes)"
            )));
        };
        let label = month.to_string();
        let now = self.indicator_snapshot(&label)?;
        if self.snapshot(&label, closing.revisions)? == now {
            return Err(Error::FailedPrecondition(format!(
                "period {month} has nothing to revise: no report arrived, changed or was removed since revision {}",
                closing.revisions
            )));
        }
        let mut write = WriteBatch::new();
        let mut families = Families::default();
        let min_persons = i64::from(self.config.min_persons);
        let quarter = format!("{}-Q{}", month.year, (month.month - 1) / 3 + 1);
        // The month first: its quarter's family reads the month's (revised) family.
        for period in [label.clone(), quarter, month.year.to_string()] {
            let Some(latest) = self.latest_revision(&period)? else { continue };
            if period != label && !self.all_closed(&period)? {
                continue;
            }
            let now = if period == label { now.clone() } else { self.indicator_snapshot(&period)? };
            let earlier = (0..=latest)
                .map(|r| Ok((self.snapshot(&period, r)?, self.revision_tables(&period, r, latest)?)))
                .collect::<Result<Vec<_>>>()?;
            families.revising(&period, &earlier, &now, min_persons);
            // The latest revision's tables move to their revision's keys; the next replaces them.
            for by in indicator_dimension_sets() {
                if let Some(raw) = self.store.get(Tree::Periods, &frozen_key(&period, &by))? {
                    write.put(Tree::Periods, revision_key(&period, latest, &by), raw);
                }
            }
            self.stage_frozen(&mut write, &period, latest + 1, &mut families)?;
        }
        closing.revisions += 1;
        write.put(Tree::Periods, closing_key(month), closing.encode_to_vec());
        self.store.commit(write)?;
        tracing::info!(period = %month, revision = closing.revisions, "period revised, tables frozen");
        Ok(closing.revisions)
    }

    /// The latest published revision of `period`, if its tables are published.
    fn latest_revision(&self, period: &str) -> Result<Option<u32>> {
        self.store
            .get(Tree::Periods, &frozen_key(period, &[]))?
            .map(|raw| {
                Table::decode(raw.as_slice()).map(|t| t.revision).map_err(|e| corrupt("frozen table", e))
            })
            .transpose()
    }

    fn all_closed(&self, period: &str) -> Result<bool> {
        for m in months_of(period)? {
            if self.closing(m)?.is_none() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// What revision `revision` of `period` counted.
    fn snapshot(&self, period: &str, revision: u32) -> Result<Snapshot> {
        let raw = self.store.get(Tree::Periods, &snapshot_key(period, revision))?.ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "period {period} was published before revisions were recorded: what its revision {revision} counted is unknown, so a revision could not be audited against it"
            ))
        })?;
        Snapshot::decode(raw.as_slice()).map_err(|e| corrupt("snapshot", e))
    }

    /// The family tables of revision `revision` of `period`, whose latest is `latest`.
    fn revision_tables(&self, period: &str, revision: u32, latest: u32) -> Result<Vec<Table>> {
        family_sets()
            .into_iter()
            .filter_map(|by| {
                let key = if revision == latest {
                    frozen_key(period, &by)
                } else {
                    revision_key(period, revision, &by)
                };
                self.store.get(Tree::Periods, &key).transpose()
            })
            .map(|raw| Table::decode(raw?.as_slice()).map_err(|e| corrupt("frozen table", e)))
            .collect()
    }
}
