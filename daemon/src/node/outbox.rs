//! The outbox: every change to a shared record gets the next sequence number, in the same commit
//! as the record itself. Sync reads it in order; nothing is found by scanning records for changes.
//!
//! Invariant: entries are written only under the node's write lock, so sequence numbers are
//! strictly increasing and `head` is the highest committed one. An entry says *which* record
//! changed (dataset, key) and, for needs and indicators committed with a signer, keeps the change
//! as a hub receives it (projected and signed at commit), so catch-up sends it without reading
//! the record or its signature again. Profiles keep nothing: they are projected, and their
//! consents checked, when they are sent (a consent withdrawn after the change was queued wins).
//! Within one page, several changes to one record collapse into the last.

use passerelle_proto::datasets::Dataset;
use passerelle_proto::v1::Change;
use prost::Message;

use super::Node;
use crate::error::Result;
use crate::store::{StoreError, Tree, WriteBatch};

/// Meta key of the highest committed sequence number.
pub(super) const HEAD_KEY: &[u8] = b"outbox_head";

/// One outbox entry.
#[derive(Clone, PartialEq, Message)]
pub struct OutboxEntry {
    /// The dataset of the changed record.
    #[prost(string, tag = "1")]
    pub dataset: String,
    /// The record's key in its dataset.
    #[prost(string, tag = "2")]
    pub key: String,
    /// The change as every hub receives it, projected and signed at commit (needs and
    /// indicators only, and only when the node signs): a tombstone's `hub_id` is empty and the
    /// signed `origin` is always set, both fitted to the session when sent. `None`: read the
    /// record when sending (profiles always; entries from before this field; no signer).
    #[prost(message, optional, tag = "3")]
    pub change: Option<Change>,
}

impl Node {
    /// Adds an outbox entry for a change of `dataset`/`key` to `batch`; returns its sequence
    /// number. Call under the write lock and pass the number to [`Node::commit_change`].
    pub(super) fn log_change(&self, batch: &mut WriteBatch, dataset: Dataset, key: &str) -> u64 {
        self.log_change_at(batch, self.head_seq() + 1, dataset, key)
    }

    /// [`Node::log_change`] with an explicit number, for several changes in one commit.
    pub(super) fn log_change_at(&self, batch: &mut WriteBatch, seq: u64, dataset: Dataset, key: &str) -> u64 {
        // The change itself is added by `commit_change`, once the batch's records are final.
        let entry = OutboxEntry { dataset: dataset.to_string(), key: key.to_string(), change: None };
        batch.put(Tree::Outbox, seq.to_be_bytes(), entry.encode_to_vec());
        seq
    }

    /// Commits a batch holding outbox entries up to `seq` (the head is recorded once, here, not
    /// per entry), then tells sync tasks (push on change).
    pub(super) fn commit_change(&self, mut batch: WriteBatch, seq: u64) -> Result<()> {
        batch.put(Tree::Meta, HEAD_KEY, seq.to_be_bytes());
        self.sign_logged(&mut batch)?;
        self.commit(batch)?;
        if let Ok(mut times) = self.commit_times.lock() {
            times.record(seq, passerelle_proto::date::now_unix_ms());
        }
        self.head.send_replace(seq);
        Ok(())
    }

    /// How many changes were committed after `checkpoint`. Sequence numbers are consecutive and
    /// the outbox is only compacted below every hub's checkpoint, so this is a subtraction, not
    /// a read of the backlog.
    pub fn pending_after(&self, checkpoint: u64) -> u64 {
        self.head_seq().saturating_sub(checkpoint)
    }

    /// When the oldest change after `checkpoint` was committed, if any is (a lower bound when it
    /// predates what is remembered: the daemon's start, or the oldest forgotten commit).
    pub fn pending_since_ms(&self, checkpoint: u64) -> Option<i64> {
        if checkpoint >= self.head_seq() {
            return None;
        }
        self.commit_times.lock().ok().map(|times| times.committed_at(checkpoint + 1))
    }

    /// The highest committed sequence number.
    pub fn head_seq(&self) -> u64 {
        *self.head.borrow()
    }

    /// A receiver that wakes whenever a change is committed.
    pub fn watch_head(&self) -> tokio::sync::watch::Receiver<u64> {
        self.head.subscribe()
    }

    /// Up to `limit` entries after `after`, in order.
    pub fn outbox_after(&self, after: u64, limit: usize) -> Result<Vec<(u64, OutboxEntry)>> {
        let start = (after.saturating_add(1)).to_be_bytes();
        // Decoded from the store's own bytes: catch-up reads tens of thousands of entries, and
        // copying each key and value out first cost as much as decoding them (issue 18).
        let mut entries = Vec::with_capacity(limit.min(1024));
        self.store.scan_each(Tree::Outbox, &start, None, limit, &mut |k, v| {
            let seq = u64::from_be_bytes(k.try_into().map_err(|_| corrupt_entry())?);
            entries.push((seq, OutboxEntry::decode(v).map_err(|_| corrupt_entry())?));
            Ok(())
        })?;
        Ok(entries)
    }

    /// Calls `visit` with up to `limit` entries after `after`, in order, each borrowed from the
    /// store's bytes ([`EntryRef::Borrowed`]) when they are the shape this binary writes, else
    /// decoded. Catch-up reads the kept change's bytes this way, to send them as they are.
    pub(super) fn outbox_each(
        &self,
        after: u64,
        limit: usize,
        visit: &mut dyn FnMut(u64, EntryRef<'_>) -> Result<()>,
    ) -> Result<()> {
        let start = (after.saturating_add(1)).to_be_bytes();
        let mut failed = None;
        let scanned = self.store.scan_each(Tree::Outbox, &start, None, limit, &mut |k, v| {
            let seq = u64::from_be_bytes(k.try_into().map_err(|_| corrupt_entry())?);
            let entry = match EntryRef::borrow(v) {
                Some(entry) => entry,
                None => EntryRef::Decoded(Box::new(OutboxEntry::decode(v).map_err(|_| corrupt_entry())?)),
            };
            // The visitor's error is the daemon's, the scan's the store's: kept aside.
            visit(seq, entry).map_err(|e| {
                failed = Some(e);
                StoreError("outbox visit failed".into())
            })
        });
        match failed {
            Some(e) => Err(e),
            None => Ok(scanned?),
        }
    }

    /// Deletes entries up to `upto` included (every hub has acknowledged them).
    pub fn compact_outbox(&self, upto: u64) -> Result<usize> {
        let entries =
            self.store.scan(Tree::Outbox, &[], Some(&(upto.saturating_add(1)).to_be_bytes()), usize::MAX)?;
        if entries.is_empty() {
            return Ok(0);
        }
        let mut batch = WriteBatch::new();
        for (key, _) in &entries {
            batch.delete(Tree::Outbox, key.clone());
        }
        self.commit(batch)?;
        Ok(entries.len())
    }

    /// Whether any entry after `after` concerns `dataset`.
    pub fn has_pending(&self, after: u64, dataset: &str) -> Result<bool> {
        let mut cursor = after;
        loop {
            let page = self.outbox_after(cursor, 1024)?;
            let Some((last, _)) = page.last() else { return Ok(false) };
            if page.iter().any(|(_, e)| e.dataset == dataset) {
                return Ok(true);
            }
            cursor = *last;
        }
    }
}

/// An outbox entry as [`Node::outbox_each`] reads it.
#[derive(Debug)]
pub(super) enum EntryRef<'a> {
    /// Its fields, borrowed from the stored bytes: `change` is the kept change's encoding.
    Borrowed { dataset: &'a str, key: &'a str, change: Option<&'a [u8]> },
    /// Decoded by prost (bytes of another shape, such as fields this binary does not know).
    Decoded(Box<OutboxEntry>),
}

impl<'a> EntryRef<'a> {
    /// The fields of an entry as this binary writes them (dataset, key, then the change if any,
    /// each once), borrowed; `None` for any other shape.
    fn borrow(bytes: &'a [u8]) -> Option<Self> {
        use crate::sync::wire::{FieldValue, each_field};
        let (mut dataset, mut key, mut change, mut last) = (None, None, None, 0);
        let known = each_field(bytes, |field| {
            let in_order = field.number > last;
            last = field.number;
            // Invalid UTF-8 is for prost to refuse.
            match (field.number, field.value) {
                (1, FieldValue::Bytes(b)) => match std::str::from_utf8(b) {
                    Ok(text) => dataset = Some(text),
                    Err(_) => return false,
                },
                (2, FieldValue::Bytes(b)) => match std::str::from_utf8(b) {
                    Ok(text) => key = Some(text),
                    Err(_) => return false,
                },
                (3, FieldValue::Bytes(b)) => change = Some(b),
                _ => return false,
            }
            in_order
        });
        if !known {
            return None;
        }
        // prost omits empty strings: a missing dataset or key is an empty one.
        Some(Self::Borrowed { dataset: dataset.unwrap_or_default(), key: key.unwrap_or_default(), change })
    }

    /// The dataset named.
    pub(super) fn dataset(&self) -> &str {
        match self {
            Self::Borrowed { dataset, .. } => dataset,
            Self::Decoded(entry) => &entry.dataset,
        }
    }

    /// The record's key.
    pub(super) fn key(&self) -> &str {
        match self {
            Self::Borrowed { key, .. } => key,
            Self::Decoded(entry) => &entry.key,
        }
    }
}

fn corrupt_entry() -> StoreError {
    StoreError("corrupt outbox entry".into())
}

/// How many recent commits [`CommitTimes`] remembers.
const COMMIT_TIMES_KEPT: usize = 4096;

/// The commit time of recent outbox sequence numbers, in memory: what the sync lag metric
/// needs (how long the oldest unacknowledged change has waited) without a timestamp on disk.
#[derive(Debug)]
pub(super) struct CommitTimes {
    /// `(last sequence number of a commit, its time)`, oldest first.
    recent: std::collections::VecDeque<(u64, i64)>,
    /// Every sequence number up to `floor.0` was committed at `floor.1` or earlier.
    floor: (u64, i64),
}

impl CommitTimes {
    /// Remembers nothing yet: changes up to `head` were committed before `now_ms`.
    pub(super) fn new(head: u64, now_ms: i64) -> Self {
        Self { recent: std::collections::VecDeque::new(), floor: (head, now_ms) }
    }

    /// Notes that changes up to `seq` were committed at `at_ms`.
    pub(super) fn record(&mut self, seq: u64, at_ms: i64) {
        if self.recent.len() == COMMIT_TIMES_KEPT
            && let Some(forgotten) = self.recent.pop_front()
        {
            self.floor = forgotten;
        }
        self.recent.push_back((seq, at_ms));
    }

    /// When change `seq` was committed (or the latest time it can have been).
    pub(super) fn committed_at(&self, seq: u64) -> i64 {
        if seq <= self.floor.0 {
            return self.floor.1;
        }
        let i = self.recent.partition_point(|(last, _)| *last < seq);
        self.recent.get(i).map_or(self.floor.1, |(_, at)| *at)
    }
}

#[cfg(test)]
mod commit_time_tests {
    use super::*;

    #[test]
    fn a_change_is_dated_by_the_commit_that_holds_it() {
        let mut times = CommitTimes::new(10, 1_000);
        assert_eq!(times.committed_at(7), 1_000, "before this process: its start bounds it");
        times.record(12, 2_000); // Changes 11 and 12 in one commit.
        times.record(13, 3_000);
        assert_eq!(times.committed_at(11), 2_000);
        assert_eq!(times.committed_at(12), 2_000);
        assert_eq!(times.committed_at(13), 3_000);
        for i in 0..COMMIT_TIMES_KEPT as u64 {
            times.record(14 + i, 4_000 + i as i64);
        }
        assert_eq!(times.committed_at(12), 3_000, "forgotten: the latest forgotten time bounds it");
    }
}
