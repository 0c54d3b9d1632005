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
use super::outbox::{EntryRef, OutboxEntry};
use super::profiles::ProfileEffect;
use super::projection::{append_kept_change, encoded_len};
use super::sync_engine::{Link, SyncEngine};
use crate::config::HubLink;
use crate::error::{Error, Result};
use crate::store::{StoreError, Tree, WriteBatch};
use crate::sync::LinkCounters;
use crate::sync::link::{ChangeSource, Outgoing};
use crate::sync::state::{self, PushState, ViewState};
use crate::sync::wire::{EncodedBatch, EncodedChanges, WirePush};

/// Most changes in one batch.
const MAX_CHANGES: usize = 1000;
/// Most outbox entries deleted at once when idle.
const COMPACT_STEP: u64 = 5000;
/// Most bytes of changes in one batch (well under the 4 MiB default message limit).
const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// A page of the outbox as this hub's changes, encoded: each change's bytes in one buffer.
#[derive(Debug, Default)]
struct Page {
    /// The changes' encodings, one after the other (a change replaced by a later one of the
    /// same record stays here, unused).
    bytes: Vec<u8>,
    /// The changes to send, in order: where each lies in `bytes`, and what it does to a
    /// person's profile at the hub.
    changes: Vec<(std::ops::Range<usize>, Option<ProfileEffect>)>,
}

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
                    message: push_message::Kind::Batch(batch).into(),
                    ticket: Ticket::Withdrawn(dataset),
                });
            }
            return Ok(out);
        }
        if let Some(dataset) = cursor.snapshot.pop_front() {
            // Each profile with the effect of the same projection (see `snapshot_with_effects`).
            let changes = node.snapshot_with_effects(&dataset, &hub.id)?;
            tracing::info!(%dataset, records = changes.len(), "full resend");
            let mut out = Vec::new();
            for chunk in chunks(changes) {
                let (chunk, effects): (Vec<Change>, Vec<Option<ProfileEffect>>) = chunk.into_iter().unzip();
                let effects = effects.into_iter().flatten().collect();
                let batch = Batch { seq: 0, changes: chunk, head_seq: node.head_seq(), ..Default::default() };
                out.push(Outgoing {
                    message: push_message::Kind::Batch(batch).into(),
                    ticket: Ticket::Snapshot(effects),
                });
            }
            out.push(Outgoing {
                message: push_message::Kind::SnapshotDone(SnapshotDone { dataset: dataset.clone() }).into(),
                ticket: Ticket::SnapshotDone(dataset),
            });
            mark_in_flight(node, &hub.id, &out)?;
            return Ok(out);
        }
        let Some((last, page)) = node.outbox_page(hub, cursor.sent)? else {
            // Caught up and nothing in flight: a good moment to drop, a slice at a time,
            // entries every hub has acknowledged (during a catch-up it would compete).
            let floor = self.engine.min_checkpoint().min(cursor.compacted + COMPACT_STEP);
            if idle && floor >= cursor.compacted + 1000 {
                node.compact_outbox(floor)?;
                cursor.compacted = floor;
            }
            return Ok(Vec::new());
        };
        let out = page.into_messages(last, node.head_seq());
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

impl Node {
    /// Up to [`MAX_CHANGES`] outbox entries after `sent` as this hub's changes, encoded (several
    /// changes of one record collapse into its current state), and the last entry read; `None`
    /// when caught up. A change the entry keeps is sent as it is stored, fitted to the session
    /// without decoding it ([`append_kept_change`]); the others are made as before and encoded:
    /// profiles (projected now, under the consents in force now: never what was queued),
    /// tombstones (fitted to this hub), entries without a kept change.
    fn outbox_page(&self, hub: &HubLink, sent: u64) -> Result<Option<(u64, Page)>> {
        let structure = self.structure().encode_to_vec();
        // First the entries as read: a kept change is copied, fitted, into the page; the others
        // are kept to be made once the scan is over (`Err`: the entry).
        let mut read: Vec<(Dataset, String, std::result::Result<std::ops::Range<usize>, OutboxEntry>)> =
            Vec::with_capacity(MAX_CHANGES);
        let mut page = Page { bytes: Vec::with_capacity(MAX_CHANGES * 256), changes: Vec::new() };
        let mut last = None;
        self.outbox_each(sent, MAX_CHANGES, &mut |seq, entry| {
            last = Some(seq);
            let Some(dataset) = hub.datasets.iter().copied().find(|d| *entry.dataset() == *d) else {
                return Ok(());
            };
            let key = entry.key().to_string();
            let start = page.bytes.len();
            let kept = match &entry {
                EntryRef::Borrowed { change: Some(change), .. } if dataset != Dataset::Profiles => {
                    append_kept_change(change, &structure, &mut page.bytes)
                }
                _ => false,
            };
            let found = if kept {
                Ok(start..page.bytes.len())
            } else {
                Err(match entry {
                    EntryRef::Decoded(decoded) => *decoded,
                    EntryRef::Borrowed { dataset, key, change } => OutboxEntry {
                        dataset: dataset.to_string(),
                        key: key.to_string(),
                        change: change
                            .map(Change::decode)
                            .transpose()
                            .map_err(|_| Error::Store(StoreError("corrupt outbox entry".into())))?,
                    },
                })
            };
            read.push((dataset, key, found));
            Ok(())
        })?;
        let Some(last) = last else { return Ok(None) };
        // Which change of the page holds each record, by (dataset, key).
        let mut latest: HashMap<(Dataset, String), usize> = HashMap::with_capacity(read.len());
        page.changes.reserve(read.len());
        for (dataset, key, found) in read {
            let change = match found {
                Ok(range) => Some((range, None)),
                Err(entry) => {
                    let change = if dataset == Dataset::Profiles {
                        // Projected now, under the consents in force now: never what was queued.
                        self.profile_change(&entry.key, &hub.id)?.map(|(c, e)| (c, Some(e)))
                    } else {
                        self.change_to_send(entry, &hub.id)?.map(|c| (c, None))
                    };
                    change.map(|(change, effect)| {
                        let start = page.bytes.len();
                        change.encode_raw(&mut page.bytes);
                        (start..page.bytes.len(), effect)
                    })
                }
            };
            let Some(change) = change else { continue };
            match latest.entry((dataset, key)) {
                std::collections::hash_map::Entry::Occupied(i) => page.changes[*i.get()] = change,
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(page.changes.len());
                    page.changes.push(change);
                }
            }
        }
        Ok(Some((last, page)))
    }
}

impl Page {
    /// The messages sending a page of outbox entries up to `last`: its changes in batches, the
    /// last of which moves the checkpoint to `last`.
    fn into_messages(self, last: u64, head_seq: u64) -> Vec<Outgoing<Ticket>> {
        let mut out = Vec::new();
        let mut parts = self.chunks().into_iter().peekable();
        if parts.peek().is_none() {
            // Nothing for this hub in these entries: still move the checkpoint.
            let batch = EncodedBatch { seq: last, changes: EncodedChanges::default(), head_seq };
            out.push(Outgoing { message: WirePush::Batch(batch), ticket: Ticket::Outbox(last, Vec::new()) });
        }
        while let Some((part, effects)) = parts.next() {
            // Only the last part completes the entries up to `last`.
            let (seq, ticket) = if parts.peek().is_none() {
                (last, Ticket::Outbox(last, effects))
            } else {
                (0, Ticket::Snapshot(effects))
            };
            let batch = EncodedBatch { seq, changes: part, head_seq };
            out.push(Outgoing { message: WirePush::Batch(batch), ticket });
        }
        out
    }

    /// The page's changes in batches bounded in count and bytes, with their profile effects.
    fn chunks(self) -> Vec<(EncodedChanges, Vec<ProfileEffect>)> {
        let mut out = Vec::new();
        let (mut current, mut effects, mut bytes) = (EncodedChanges::default(), Vec::new(), 0);
        for (range, effect) in self.changes {
            let len = range.len();
            if !current.is_empty() && (current.len() >= MAX_CHANGES || bytes + len > MAX_BATCH_BYTES) {
                out.push((std::mem::take(&mut current), std::mem::take(&mut effects)));
                bytes = 0;
            }
            if current.is_empty() {
                current = EncodedChanges::with_capacity(MAX_BATCH_BYTES.min(self.bytes.len() + 4096));
            }
            bytes += len;
            current.push(&self.bytes[range]);
            effects.extend(effect);
        }
        if !current.is_empty() {
            out.push((current, effects));
        }
        out
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

/// Splits changes (each with its profile effect, if any) into batches bounded in count and bytes.
fn chunks<E>(changes: Vec<(Change, E)>) -> Vec<Vec<(Change, E)>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for change in changes {
        let len = encoded_len(&change.0);
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

#[cfg(test)]
mod tests {
    use passerelle_proto::v1::{
        ConsentPurpose, ContractType, Exits, GrantConsentRequest, IndicatorFields, NeedFields, PersonFields,
        PushMessage, Structure, StructureKind,
    };

    use super::*;
    use crate::tls::signing::RecordSigner;

    const HUB: &str = "coorace-pdl";

    fn structure(name: &str) -> Structure {
        Structure {
            siret: "73282932000074".into(),
            kind: StructureKind::Ai as i32,
            name: name.into(),
            departement: "49".into(),
        }
    }

    fn need(open_positions: u32) -> NeedFields {
        NeedFields {
            rome_code: "K2204".into(),
            title: "Agent d'entretien".into(),
            contract_type: ContractType::Cddi as i32,
            open_positions,
            hours_per_week: 24,
            departement: "49".into(),
            commune: "49007".into(),
            start_date: "2026-12-01".into(),
            client: Some("Mme Dupont".into()),
            ..Default::default()
        }
    }

    fn person(first_name: &str) -> PersonFields {
        PersonFields {
            first_name: first_name.into(),
            last_name: "Martin".into(),
            birth_date: "1990-04-02".into(),
            commune: "49007".into(),
            rome_codes: vec!["K2204".into()],
            available_from: "2026-12-01".into(),
            ..Default::default()
        }
    }

    fn placement(person_id: &str) -> GrantConsentRequest {
        GrantConsentRequest {
            person_id: person_id.into(),
            purpose: ConsentPurpose::Placement as i32,
            hub_id: HUB.into(),
            text_version: "v1".into(),
            collected_by: "test".into(),
        }
    }

    /// A node of `name` signing with a certificate of its own, as `[tls]` makes it.
    fn signing_node(dir: &std::path::Path, name: &str) -> Node {
        use passerelle_client::pki::{self, IssueRequest};
        use passerelle_proto::identity::{PeerId, Role};
        let (ca, out) = (dir.join("ca"), dir.join("node"));
        if !ca.exists() {
            std::fs::create_dir_all(&ca).expect("ca dir");
            std::fs::create_dir_all(&out).expect("node dir");
            pki::init("coorace", &ca).expect("ca");
            let peer = PeerId::new(Role::Node, "73282932000074").expect("peer");
            pki::issue(&ca, &IssueRequest::new(peer, 30), &out).expect("issue");
        }
        let (cert, key) = (out.join("node.pem"), out.join("node.key"));
        let signer = RecordSigner::load(&cert, &key).expect("signer");
        Node::open(&dir.join("data"), structure(name)).expect("open").with_signer(signer).expect("sign")
    }

    /// The messages of a page as catch-up made them before it sent kept changes encoded: every
    /// entry decoded, fitted by `change_to_send` (profiles projected now), collapsed per record,
    /// split by `chunks`, and encoded by prost as `PushMessage` structs.
    fn decoded_then_encoded(node: &Node, hub: &HubLink, sent: u64) -> Vec<Vec<u8>> {
        let entries = node.outbox_after(sent, MAX_CHANGES).expect("outbox");
        let Some(&(last, _)) = entries.last() else { return Vec::new() };
        let mut latest: HashMap<(Dataset, String), usize> = HashMap::new();
        let mut changes: Vec<Change> = Vec::new();
        for (_, entry) in entries {
            let Some(dataset) = hub.datasets.iter().copied().find(|d| entry.dataset == *d) else { continue };
            let key = entry.key.clone();
            let change = if dataset == Dataset::Profiles {
                node.profile_change(&entry.key, &hub.id).expect("profile").map(|(c, _)| c)
            } else {
                node.change_to_send(entry, &hub.id).expect("change")
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
        let head_seq = node.head_seq();
        let mut parts: Vec<Vec<Change>> = chunks(changes.into_iter().map(|c| (c, ())).collect())
            .into_iter()
            .map(|part| part.into_iter().map(|(c, ())| c).collect())
            .collect();
        if parts.is_empty() {
            parts.push(Vec::new());
        }
        let n = parts.len();
        parts
            .into_iter()
            .enumerate()
            .map(|(i, changes)| {
                let seq = if i + 1 == n { last } else { 0 };
                let batch = Batch { seq, changes, head_seq, ..Default::default() };
                PushMessage { kind: Some(push_message::Kind::Batch(batch)) }.encode_to_vec()
            })
            .collect()
    }

    fn encoded(node: &Node, hub: &HubLink, sent: u64) -> Vec<Vec<u8>> {
        let Some((last, page)) = node.outbox_page(hub, sent).expect("page") else { return Vec::new() };
        page.into_messages(last, node.head_seq()).into_iter().map(|o| o.message.encode_to_vec()).collect()
    }

    /// The hub receives, byte for byte, the batches it received when each kept change was
    /// decoded and encoded again: needs created, updated (collapsed into their last state),
    /// closed and deleted (a tombstone, fitted to the hub), reports, profiles projected when
    /// sent (one whose consent was withdrawn after it was queued is not sent at all), from any
    /// checkpoint; and after the structure is renamed, when the signed structure travels.
    #[test]
    fn kept_changes_sent_as_stored_are_the_bytes_decoding_them_sent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hub = HubLink {
            id: HUB.into(),
            endpoint: "https://localhost:1".into(),
            datasets: vec![Dataset::Indicators, Dataset::Needs, Dataset::Profiles],
        };
        let node = signing_node(dir.path(), "Tremplin");
        let mut needs = Vec::new();
        for i in 0..6 {
            needs.push(node.create_need(Some(need(i + 1))).expect("need"));
        }
        node.update_need(&needs[0].id, Some(need(9)), None).expect("update");
        node.close_need(&needs[1].id, passerelle_proto::v1::NeedStatus::Filled as i32).expect("close");
        node.delete_need(&needs[2].id).expect("delete");
        node.submit_indicators(Some(IndicatorFields {
            period: "2026-10".into(),
            etp_hundredths: 1250,
            employees_in_insertion: 20,
            hours_worked: 1700,
            hires: 2,
            exits: Some(Exits { total: 4, durable: 1, transition: 1, positive: 1, other: 1 }),
        }))
        .expect("report");
        let kept = node.add_person(Some(person("Camille"))).expect("person");
        node.grant_consent(placement(&kept.id)).expect("consent");
        let withdrawn = node.add_person(Some(person("Dominique"))).expect("person");
        node.grant_consent(placement(&withdrawn.id)).expect("consent");
        node.withdraw_consent(&withdrawn.id, ConsentPurpose::Placement as i32, HUB).expect("withdraw");
        node.update_need(&needs[3].id, Some(need(7)), None).expect("update");

        // The needs and the report go as stored; the deletion is decoded (its `hub_id`).
        let (mut as_stored, mut decoded) = (0, 0);
        let structure = node.structure().encode_to_vec();
        node.outbox_each(0, usize::MAX, &mut |_, entry| {
            if let EntryRef::Borrowed { change: Some(change), .. } = entry {
                if append_kept_change(change, &structure, &mut Vec::new()) {
                    as_stored += 1;
                } else {
                    decoded += 1;
                }
            }
            Ok(())
        })
        .expect("outbox");
        assert_eq!(
            (as_stored, decoded),
            (10, 1),
            "6 needs created, 3 updated or closed, a report; a deletion"
        );

        let head = node.head_seq();
        let all = encoded(&node, &hub, 0);
        assert_eq!(all.len(), 1, "one batch");
        for sent in 0..=head {
            assert_eq!(encoded(&node, &hub, sent), decoded_then_encoded(&node, &hub, sent), "from {sent}");
        }
        let batch = PushMessage::decode(all[0].as_slice()).expect("decodes");
        let Some(push_message::Kind::Batch(batch)) = batch.kind else { panic!("a batch") };
        let profiles = batch.changes.iter().filter(|c| c.dataset == Dataset::Profiles).count();
        assert_eq!(profiles, 1, "the withdrawn person's profile is not sent");
        assert!(batch.changes.iter().all(|c| c.origin.is_none()), "the session's structure: not repeated");
        assert!(
            batch
                .changes
                .iter()
                .any(|c| matches!(&c.payload, Some(change::Payload::Tombstone(t)) if t.hub_id == HUB)),
            "the deletion names the hub"
        );
        drop(node);

        // Renamed: what was signed under the old name carries its structure, and the kept bytes
        // keep it as the decoded change did.
        let node = signing_node(dir.path(), "Tremplin Travail");
        node.create_need(Some(need(3))).expect("need");
        for sent in 0..=node.head_seq() {
            assert_eq!(
                encoded(&node, &hub, sent),
                decoded_then_encoded(&node, &hub, sent),
                "renamed, from {sent}"
            );
        }
        let batch = PushMessage::decode(encoded(&node, &hub, 0)[0].as_slice()).expect("decodes");
        let Some(push_message::Kind::Batch(batch)) = batch.kind else { panic!("a batch") };
        let carried = batch.changes.iter().filter(|c| c.origin.is_some()).count();
        assert!(carried > 0 && carried < batch.changes.len(), "old records carry theirs, the new one not");
    }

    /// Batches are split as before: at most [`MAX_CHANGES`] changes and [`MAX_BATCH_BYTES`]
    /// bytes of changes each (a change larger than that goes alone), the effects with their
    /// change, and only the last batch moves the checkpoint.
    #[test]
    fn a_page_is_split_by_count_and_bytes() {
        let sizes = [400_000, 400_000, 400_000, 10, 2_000_000, 10];
        let mut page = Page::default();
        for size in sizes {
            let start = page.bytes.len();
            page.bytes.extend(std::iter::repeat_n(0x0a, 1).chain(std::iter::repeat_n(0, size - 1)));
            page.changes.push((start..page.bytes.len(), None));
        }
        let counts: Vec<usize> = page.chunks().iter().map(|(c, _)| c.len()).collect();
        assert_eq!(counts, [2, 2, 1, 1]);
        let mut page = Page::default();
        for _ in 0..2500 {
            let start = page.bytes.len();
            page.bytes.push(0x0a);
            page.bytes.push(0);
            page.changes.push((start..page.bytes.len(), None));
        }
        let messages = page.into_messages(77, 80);
        let seqs: Vec<u64> = messages
            .iter()
            .map(|o| match &o.message {
                WirePush::Batch(b) => b.seq,
                WirePush::Message(_) => u64::MAX,
            })
            .collect();
        assert_eq!(seqs, [0, 0, 77]);
        assert!(matches!(messages.last().map(|o| &o.ticket), Some(Ticket::Outbox(77, _))));
    }
}
