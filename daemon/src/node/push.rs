//! The node's side of a push session: its outbox as a [`ChangeSource`] for the sync link.
//!
//! After `open`, it sends the withdrawals owed, then the full resends owed (each ended by a
//! `SnapshotDone`), then the outbox from the checkpoint, forever. Each message carries a
//! [`Ticket`] saying what its acknowledgement confirms: an outbox batch advances the checkpoint;
//! the end of a full resend or a withdrawal clears what was owed; profile batches record which
//! hub now holds which profile. The push state is written under the node's sync lock, never the
//! writer's: checkpoints are relaxed commits that may lag, and must not queue behind an fsync.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};

use passerelle_proto::datasets::Dataset;
use passerelle_proto::date::now_unix_ms;
use passerelle_proto::v1::{Batch, Change, DatasetDigest, PushOpen, SnapshotDone, change, push_message};
use prost::Message;
use tokio::sync::watch;

use super::Node;
use super::profiles::ProfileEffect;
use super::projection::encoded_len;
use super::sync_engine::{Link, SyncEngine};
use crate::config::HubLink;
use crate::error::{Error, Result};
use crate::store::{StoreError, Tree, WriteBatch};
use crate::sync::LinkCounters;
use crate::sync::link::{ChangeSource, Outgoing};
use crate::sync::state::{self, PushState, ViewState};

/// Most changes in one batch.
const MAX_CHANGES: usize = 1000;
/// Most outbox entries deleted at once when idle.
const COMPACT_STEP: u64 = 5000;
/// Most bytes of changes in one batch (well under the 4 MiB default message limit).
const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// A change to send, and what it does to a person's profile at the hub.
type Pending = (Change, Option<ProfileEffect>);

/// What an acknowledgement confirms.
#[derive(Debug)]
pub(super) enum Ticket {
    /// Outbox entries up to this sequence number, and what they did to persons' profiles.
    Outbox(u64, Vec<ProfileEffect>),
    /// Part of a full resend, and what it did to persons' profiles.
    Snapshot(Vec<ProfileEffect>),
    /// A full resend of a dataset is complete.
    SnapshotDone(String),
    /// A dataset was withdrawn.
    Withdrawn(String),
}

/// Where the sending side of a session stands.
#[derive(Debug)]
pub(super) struct Cursor {
    /// Withdrawals still to send (all at once, first).
    withdraw: Vec<String>,
    /// Full resends still to send, one dataset per step.
    snapshot: VecDeque<String>,
    /// Last outbox entry sent.
    sent: u64,
    /// Where the outbox begins (earlier entries were compacted).
    compacted: u64,
}

/// One push session's source: the node's outbox towards one hub.
#[derive(Debug)]
pub(super) struct OutboxSource {
    engine: Arc<SyncEngine>,
    link: Arc<Link>,
    /// The push state as acknowledged so far.
    state: std::sync::Mutex<PushState>,
}

impl OutboxSource {
    pub(super) fn new(engine: Arc<SyncEngine>, link: Arc<Link>) -> Self {
        Self { engine, link, state: Default::default() }
    }

    fn node(&self) -> &Node {
        &self.engine.node
    }

    fn state(&self) -> Result<MutexGuard<'_, PushState>> {
        self.state.lock().map_err(|_| Error::FailedPrecondition("state lock".into()))
    }
}

impl ChangeSource for OutboxSource {
    type Ticket = Ticket;
    type Cursor = Cursor;

    fn open(&self) -> Result<PushOpen> {
        let node = self.node();
        let hub = &self.link.config;
        let state = node.reconcile_push_state(hub)?;
        let mut digests = Vec::new();
        for dataset in &hub.datasets {
            let dataset = dataset.to_string();
            // A dataset with changes not yet acknowledged legitimately differs from the hub's
            // copy; it is compared at a later session, once caught up.
            if state.snapshot_pending.contains(&dataset) || node.has_pending(state.checkpoint, &dataset)? {
                continue;
            }
            let d = node.digest(&dataset, &hub.id)?;
            digests.push(DatasetDigest { dataset, count: d.count, hash: d.hash.to_vec() });
        }
        *self.state()? = state;
        Ok(PushOpen {
            structure: Some(node.structure().clone()),
            epoch: node.identity().epoch.to_vec(),
            datasets: hub.datasets.iter().map(ToString::to_string).collect(),
            digests,
            head_seq: node.head_seq(),
            epoch_created_at_ms: node.identity().created_at_ms,
            certificates: node.signing_certificates()?,
        })
    }

    fn accepted(&self, resend: Vec<String>) -> Result<Cursor> {
        let node = self.node();
        let mut state = self.state()?;
        for dataset in resend {
            self.link.counters.resends_requested.fetch_add(1, Ordering::Relaxed);
            if !state.snapshot_pending.contains(&dataset) {
                tracing::info!(%dataset, "the hub asks for a full resend");
                state.snapshot_pending.push(dataset);
            }
        }
        node.save_push_state(&self.link.config.id, &state, true)?;
        let owed = state.owed();
        self.engine.update(&self.link, |s| {
            s.connected = true;
            s.connected_at_ms = now_unix_ms();
            s.last_error.clear();
            s.owed = owed;
        });
        let compacted = node.outbox_after(0, 1)?.first().map_or(node.head_seq(), |(seq, _)| seq - 1);
        Ok(Cursor {
            withdraw: state.withdraw_pending.clone(),
            snapshot: state.snapshot_pending.iter().cloned().collect(),
            sent: state.checkpoint,
            compacted,
        })
    }

    fn next(&self, cursor: &mut Cursor, idle: bool) -> Result<Vec<Outgoing<Ticket>>> {
        let node = self.node();
        let hub = &self.link.config;
        if !cursor.withdraw.is_empty() {
            let mut out = Vec::new();
            for dataset in std::mem::take(&mut cursor.withdraw) {
                let change = Change {
                    dataset: dataset.clone(),
                    key: String::new(),
                    version: 0,
                    payload: Some(change::Payload::Tombstone(node.tombstone(&hub.id, "unshared"))),
                    ..Default::default()
                };
                let batch =
                    Batch { seq: 0, changes: vec![change], head_seq: node.head_seq(), ..Default::default() };
                tracing::info!(%dataset, "withdrawing a dataset no longer shared");
                out.push(Outgoing {
                    message: push_message::Kind::Batch(batch),
                    ticket: Ticket::Withdrawn(dataset),
                });
            }
            return Ok(out);
        }
        if let Some(dataset) = cursor.snapshot.pop_front() {
            let changes = node.snapshot(&dataset, &hub.id)?;
            tracing::info!(%dataset, records = changes.len(), "full resend");
            let mut out = Vec::new();
            for chunk in chunks(changes) {
                let effects = snapshot_effects(node, &hub.id, &chunk);
                let batch = Batch { seq: 0, changes: chunk, head_seq: node.head_seq(), ..Default::default() };
                out.push(Outgoing {
                    message: push_message::Kind::Batch(batch),
                    ticket: Ticket::Snapshot(effects),
                });
            }
            out.push(Outgoing {
                message: push_message::Kind::SnapshotDone(SnapshotDone { dataset: dataset.clone() }),
                ticket: Ticket::SnapshotDone(dataset),
            });
            mark_in_flight(node, &hub.id, &out)?;
            return Ok(out);
        }
        let Some((last, changes)) = self.outbox_page(cursor.sent)? else {
            // Caught up and nothing in flight: a good moment to drop, a slice at a time,
            // entries every hub has acknowledged (during a catch-up it would compete).
            let floor = self.engine.min_checkpoint().min(cursor.compacted + COMPACT_STEP);
            if idle && floor >= cursor.compacted + 1000 {
                node.compact_outbox(floor)?;
                cursor.compacted = floor;
            }
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut parts = chunks_with(changes).into_iter().peekable();
        if parts.peek().is_none() {
            // Nothing for this hub in these entries: still move the checkpoint.
            let batch =
                Batch { seq: last, changes: Vec::new(), head_seq: node.head_seq(), ..Default::default() };
            out.push(Outgoing {
                message: push_message::Kind::Batch(batch),
                ticket: Ticket::Outbox(last, Vec::new()),
            });
        }
        while let Some((part, effects)) = parts.next() {
            // Only the last part completes the entries up to `last`.
            let (seq, ticket) = if parts.peek().is_none() {
                (last, Ticket::Outbox(last, effects))
            } else {
                (0, Ticket::Snapshot(effects))
            };
            let batch = Batch { seq, changes: part, head_seq: node.head_seq(), ..Default::default() };
            out.push(Outgoing { message: push_message::Kind::Batch(batch), ticket });
        }
        cursor.sent = last;
        mark_in_flight(node, &hub.id, &out)?;
        Ok(out)
    }

    fn acked(&self, ticket: Ticket) -> Result<()> {
        let node = self.node();
        let hub = &self.link.config.id;
        let snapshot = {
            let mut st = self.state()?;
            match &ticket {
                Ticket::Outbox(seq, _) => st.checkpoint = st.checkpoint.max(*seq),
                Ticket::Snapshot(_) => {}
                Ticket::SnapshotDone(d) => st.snapshot_pending.retain(|x| x != d),
                Ticket::Withdrawn(d) => st.withdraw_pending.retain(|x| x != d),
            }
            st.last_ack_at_ms = now_unix_ms();
            st.clone()
        };
        if let Ticket::Outbox(_, effects) | Ticket::Snapshot(effects) = &ticket
            && !effects.is_empty()
        {
            node.record_profile_acks(hub, effects)?;
        }
        if matches!(ticket, Ticket::Snapshot(_)) {
            return Ok(());
        }
        node.save_push_state(hub, &snapshot, false)?;
        if let Ok(mut status) = self.link.status.lock() {
            status.checkpoint = snapshot.checkpoint;
            status.owed = snapshot.owed();
            status.last_ack_at_ms = snapshot.last_ack_at_ms;
        }
        self.engine.progress.notify_waiters();
        Ok(())
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.node().watch_head()
    }

    fn counters(&self) -> &LinkCounters {
        &self.link.counters
    }
}

impl OutboxSource {
    /// Up to [`MAX_CHANGES`] outbox entries after `sent` as this hub's changes (several changes
    /// of one record collapse into its current state), and the last entry read; `None` when
    /// caught up.
    fn outbox_page(&self, sent: u64) -> Result<Option<(u64, Vec<Pending>)>> {
        let node = self.node();
        let hub = &self.link.config;
        let entries = node.outbox_after(sent, MAX_CHANGES)?;
        let Some(&(last, _)) = entries.last() else { return Ok(None) };
        // Which change of `changes` holds each record, by (dataset, key): one key copy per
        // entry, the dataset parsed once (a catch-up pages through tens of thousands).
        let mut latest: HashMap<(Dataset, String), usize> = HashMap::with_capacity(entries.len());
        let mut changes: Vec<Pending> = Vec::with_capacity(entries.len());
        for (_, entry) in entries {
            let Some(dataset) = hub.datasets.iter().copied().find(|d| entry.dataset == *d) else {
                continue;
            };
            let key = entry.key.clone();
            let change = if dataset == Dataset::Profiles {
                // Projected now, under the consents in force now: never what was queued.
                node.profile_change(&entry.key, &hub.id)?.map(|(c, e)| (c, Some(e)))
            } else {
                node.change_to_send(entry, &hub.id)?.map(|c| (c, None))
            };
            let Some(change) = change else { continue };
            match latest.entry((dataset, key)) {
                std::collections::hash_map::Entry::Occupied(i) => changes[*i.get()] = change,
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(changes.len());
                    changes.push(change);
                }
            }
        }
        Ok(Some((last, changes)))
    }
}

impl Node {
    /// Serialises the reads and writes of sync state. Not the writer lock: sync state may lag,
    /// so its commits are relaxed and must never wait behind a record write's fsync.
    pub(super) fn sync_lock(&self) -> MutexGuard<'_, ()> {
        // The guarded value is `()`: a panic elsewhere cannot leave it inconsistent.
        self.sync_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A hub's push state, reconciled with the configured agreement (saved durably if that
    /// changed it).
    pub(super) fn reconcile_push_state(&self, link: &HubLink) -> Result<PushState> {
        let _sync = self.sync_lock();
        let stored = self
            .store
            .get(Tree::SyncState, &state::push_key(&link.id))?
            .map(|raw| decode(&raw))
            .transpose()?;
        let (state, changed) = state::reconcile(stored, &link.id, &link.datasets, self.head_seq());
        if changed {
            self.put_sync_state(state::push_key(&link.id), &state, true)?;
        }
        Ok(state)
    }

    /// Saves a hub's push state: durably for agreement changes and owed resends; relaxed after
    /// an acknowledgement, because a checkpoint lost in a crash only lags behind the hub's, and
    /// resending what the hub already has changes nothing there (idempotent apply). It never
    /// runs ahead of an acknowledgement.
    pub(super) fn save_push_state(&self, hub: &str, state: &PushState, durable: bool) -> Result<()> {
        let _sync = self.sync_lock();
        self.put_sync_state(state::push_key(hub), state, durable)
    }

    /// A hub's view state (where the local copy of its view stands).
    pub(super) fn view_state(&self, hub: &str) -> Result<ViewState> {
        let _sync = self.sync_lock();
        Ok(match self.store.get(Tree::SyncState, &state::view_key(hub))? {
            Some(raw) => decode(&raw)?,
            None => ViewState::default(),
        })
    }

    fn put_sync_state(&self, key: Vec<u8>, state: &impl Message, durable: bool) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.put(Tree::SyncState, key, state.encode_to_vec());
        if durable { Ok(self.store.commit(batch)?) } else { Ok(self.store.commit_relaxed(batch)?) }
    }
}

fn decode<M: Message + Default>(raw: &[u8]) -> Result<M> {
    M::decode(raw).map_err(|_| Error::Store(StoreError("corrupt sync state".into())))
}

/// Splits changes with their profile effects into batches bounded in count and bytes.
fn chunks_with(changes: Vec<Pending>) -> Vec<(Vec<Change>, Vec<ProfileEffect>)> {
    let mut effects_of: HashMap<String, ProfileEffect> = HashMap::new();
    let mut plain = Vec::with_capacity(changes.len());
    for (change, effect) in changes {
        if let Some(effect) = effect {
            effects_of.insert(change.key.clone(), effect);
        }
        plain.push(change);
    }
    chunks(plain)
        .into_iter()
        .map(|chunk| {
            let effects = chunk.iter().filter_map(|c| effects_of.remove(&c.key)).collect();
            (chunk, effects)
        })
        .collect()
}

/// Records, durably and before anything is sent, that the profiles these batches share may be
/// held by the hub from now on — so a withdrawal racing with the batch (or a lost ack) still
/// sends the hub a tombstone.
fn mark_in_flight(node: &Node, hub_id: &str, out: &[Outgoing<Ticket>]) -> Result<()> {
    let shared: Vec<String> = out
        .iter()
        .filter_map(|o| match &o.ticket {
            Ticket::Outbox(_, effects) | Ticket::Snapshot(effects) => Some(effects),
            _ => None,
        })
        .flatten()
        .filter_map(|e| match e {
            ProfileEffect::Shared { person_id, .. } => Some(person_id.clone()),
            ProfileEffect::Purged { .. } => None,
        })
        .collect();
    node.record_profiles_in_flight(hub_id, &shared)
}

/// The profile effects of a chunk of a full resend (the pseudonym maps back only here).
fn snapshot_effects(node: &Node, hub_id: &str, chunk: &[Change]) -> Vec<ProfileEffect> {
    if !chunk.iter().any(|c| c.dataset == Dataset::Profiles) {
        return Vec::new();
    }
    let Ok(ids) = node.profile_person_ids() else { return Vec::new() };
    let mut out = Vec::new();
    for id in ids {
        let Ok(pseudonym) = node.pseudonym(hub_id, &id) else { continue };
        if chunk.iter().any(|c| c.key == pseudonym)
            && let Ok(Some((_, effect))) = node.profile_change(&id, hub_id)
        {
            out.push(effect);
        }
    }
    out
}

/// Splits changes into batches bounded in count and bytes.
fn chunks(changes: Vec<Change>) -> Vec<Vec<Change>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for change in changes {
        let len = encoded_len(&change);
        if !current.is_empty() && (current.len() >= MAX_CHANGES || bytes + len > MAX_BATCH_BYTES) {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += len;
        current.push(change);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}
