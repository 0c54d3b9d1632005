//! Revisions of closed months: `passerelle hub period revise YYYY-MM`.
//!
//! A closed month's tables are frozen (see `hub::periods`): reports that arrive, change or leave
//! after the closing are counted but published only when an operator revises the month. The
//! revision `n + 1` is computed from the current cells and audited with every earlier revision's
//! published cells (`stats::revisions`: the difference of two revisions must isolate no
//! structure), then frozen like the closing: consumers read it by lookup, and `--revision N`
//! reads an earlier one. Months, quarters and years count their own revisions: revising a month
//! also publishes the next revision of its quarter and year (or their first) once every month
//! of theirs is closed and published as it counts now (`Hub::stage_wider`).
//!
//! Keys (in the periods tree): `f/PERIOD/BY` holds the latest revision of each table (what a
//! read without `--revision` looks up, as before revisions existed); `v/PERIOD/REVISION/BY` the
//! earlier ones, moved there when the next is published; `s/PERIOD/REVISION` what each revision
//! counted (every structure's contribution per finest cell), written with it.

use passerelle_proto::date::Month;
use passerelle_proto::v1::Period;
use prost::Message;

use super::Hub;
use super::periods::{closing_key, corrupt, frozen_key, indicator_dimension_sets, revision_key};
use super::stats::Families;
use crate::error::{Error, Result};
use crate::store::{Tree, WriteBatch};

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

    /// Publishes the next revision of `month` and, when every month of theirs is closed and
    /// published as it counts now, the next revision (or the first) of its quarter and year;
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
        let world = self.published_world(month.year)?;
        let Some(held) = world.latest(&label) else {
            return Err(Error::FailedPrecondition(format!(
                "period {month} was published before revisions were recorded: what its revision {} counted is unknown, so a revision could not be audited against it",
                closing.revisions
            )));
        };
        if held.snapshot.same_cells(&self.indicator_snapshot(&label)?) {
            return Err(Error::FailedPrecondition(format!(
                "period {month} has nothing to revise: no report arrived, changed or was removed since revision {}",
                closing.revisions
            )));
        }
        let mut write = WriteBatch::new();
        let mut families = Families::publishing(world);
        // The latest revision's tables move to their revision's keys; the next replaces them.
        let latest = closing.revisions;
        for by in indicator_dimension_sets() {
            if let Some(raw) = self.store.get(Tree::Periods, &frozen_key(&label, &by))? {
                write.put(Tree::Periods, revision_key(&label, latest, &by), raw);
            }
        }
        // The month first: its quarter's audit reads the month as revised.
        self.stage_frozen(&mut write, &label, latest + 1, &mut families)?;
        let quarter = format!("{}-Q{}", month.year, (month.month - 1) / 3 + 1);
        for wider in [quarter, month.year.to_string()] {
            self.stage_wider(&mut write, &wider, None, &mut families)?;
        }
        closing.revisions += 1;
        write.put(Tree::Periods, closing_key(month), closing.encode_to_vec());
        self.store.commit(write)?;
        tracing::info!(period = %month, revision = closing.revisions, "period revised, tables frozen");
        Ok(closing.revisions)
    }
}
