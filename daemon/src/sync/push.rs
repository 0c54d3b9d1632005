//! One push session with one hub.
//!
//! Everything sent after `open` is acknowledged by the hub in order, so the session keeps a FIFO
//! of what is in flight and acts on each acknowledgement: an outbox batch advances the durable
//! checkpoint; the end of a full resend or a withdrawal clears what was owed. At most
//! [`WINDOW`] messages are in flight.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use passerelle_proto::date::now_unix_ms;
use passerelle_proto::v1::hub_sync_client::HubSyncClient;
use passerelle_proto::v1::{
    Batch, Change, DatasetDigest, PushMessage, PushOpen, SnapshotDone, change, push_message, push_reply,
};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::state::{self, PushState};
use super::{Link, SyncEngine, status_text};
use crate::error::{Error, Result};
use crate::node::Node;
use crate::node::profiles::ProfileEffect;

/// Messages in flight at most.
pub(super) const WINDOW: usize = 8;
/// Most changes in one batch.
const MAX_CHANGES: usize = 1000;
/// Most outbox entries deleted at once when idle.
const COMPACT_STEP: u64 = 5000;
/// Most bytes of changes in one batch (well under the 4 MiB default message limit).
const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// What an acknowledgement confirms.
#[derive(Debug)]
enum InFlight {
    /// Outbox entries up to this sequence number, and what they did to persons' profiles.
    Outbox(u64, Vec<ProfileEffect>),
    /// Part of a full resend, and what it did to persons' profiles.
    Snapshot(Vec<ProfileEffect>),
    /// A full resend of a dataset is complete.
    SnapshotDone(String),
    /// A dataset was withdrawn.
    Withdrawn(String),
}

/// What is in flight, oldest first, with the number of changes of each batch (`None` for a
/// message that is not a batch).
type InFlightQueue = VecDeque<(InFlight, Option<u64>)>;

pub(super) struct PushSession<'a> {
    engine: &'a SyncEngine,
    link: Arc<Link>,
    channel: Channel,
}

impl<'a> PushSession<'a> {
    pub(super) fn new(engine: &'a SyncEngine, link: Arc<Link>, channel: Channel) -> Self {
        Self { engine, link, channel }
    }

    fn node(&self) -> Arc<Node> {
        self.engine.node.clone()
    }

    async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(&Node) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let node = self.node();
        tokio::task::spawn_blocking(move || call(&node)).await?
    }

    pub(super) async fn run(self, mut stop: watch::Receiver<bool>) -> Result<()> {
        let hub = self.link.config.clone();
        let mut state = {
            let hub = hub.clone();
            self.blocking(move |node| state::reconcile(node, &hub)).await?
        };
        let digests = {
            let (datasets, skip, checkpoint, hub_id) =
                (hub.datasets.clone(), state.snapshot_pending.clone(), state.checkpoint, hub.id.clone());
            self.blocking(move |node| {
                let mut digests = Vec::new();
                for dataset in datasets {
                    // A dataset with changes not yet acknowledged legitimately differs from the
                    // hub's copy; it is compared at a later session, once caught up.
                    if skip.contains(&dataset) || node.has_pending(checkpoint, &dataset)? {
                        continue;
                    }
                    let d = node.digest(&dataset, &hub_id)?;
                    digests.push(DatasetDigest { dataset, count: d.count, hash: d.hash.to_vec() });
                }
                Ok(digests)
            })
            .await?
        };
        let node = self.node();
        let (tx, rx) = mpsc::channel::<PushMessage>(WINDOW + 2);
        let open = PushOpen {
            structure: Some(node.structure().clone()),
            epoch: node.identity().epoch.to_vec(),
            datasets: hub.datasets.clone(),
            digests,
            head_seq: node.head_seq(),
            epoch_created_at_ms: node.identity().created_at_ms,
        };
        let _ = tx.send(PushMessage { kind: Some(push_message::Kind::Open(open)) }).await;
        let mut replies = HubSyncClient::new(self.channel.clone())
            .push(ReceiverStream::new(rx))
            .await
            .map_err(|s| Error::FailedPrecondition(status_text(&s)))?
            .into_inner();
        let accepted = match replies
            .message()
            .await
            .map_err(|s| Error::FailedPrecondition(status_text(&s)))?
        {
            Some(reply) => match reply.kind {
                Some(push_reply::Kind::Accepted(accepted)) => accepted,
                _ => return Err(Error::FailedPrecondition("the hub did not accept the push session".into())),
            },
            None => return Err(Error::FailedPrecondition("the hub closed the push session".into())),
        };
        for dataset in accepted.resend {
            self.link.counters.resends_requested.fetch_add(1, Ordering::Relaxed);
            if !state.snapshot_pending.contains(&dataset) {
                tracing::info!(%dataset, "the hub asks for a full resend");
                state.snapshot_pending.push(dataset);
            }
        }
        {
            let (id, s) = (hub.id.clone(), state.clone());
            self.blocking(move |node| state::save_push(node, &id, &s)).await?;
        }
        self.engine.update(&self.link, |s| {
            s.connected = true;
            s.last_error.clear();
            s.owed = state.snapshot_pending.len() + state.withdraw_pending.len();
        });

        // Acknowledgements, in order, on their own task.
        let in_flight: Arc<Mutex<InFlightQueue>> = Arc::default();
        let window = Arc::new(Semaphore::new(WINDOW));
        let shared_state = Arc::new(Mutex::new(state.clone()));
        let acks = {
            let (in_flight, window, shared_state) = (in_flight.clone(), window.clone(), shared_state.clone());
            let (node, link, engine_progress) =
                (self.node(), self.link.clone(), self.engine.progress.clone());
            tokio::spawn(async move {
                loop {
                    let reply = match replies.message().await {
                        Ok(Some(reply)) => reply,
                        Ok(None) => {
                            return Err(Error::FailedPrecondition("the hub closed the push session".into()));
                        }
                        Err(s) => return Err(Error::FailedPrecondition(status_text(&s))),
                    };
                    if !matches!(reply.kind, Some(push_reply::Kind::Ack(_))) {
                        return Err(Error::FailedPrecondition("unexpected reply from the hub".into()));
                    }
                    let Some((item, records)) = in_flight.lock().ok().and_then(|mut q| q.pop_front()) else {
                        return Err(Error::FailedPrecondition(
                            "the hub acknowledged more than was sent".into(),
                        ));
                    };
                    if let Some(records) = records {
                        link.counters.batches_acked.fetch_add(1, Ordering::Relaxed);
                        link.counters.records_acked.fetch_add(records, Ordering::Relaxed);
                    }
                    let snapshot = {
                        let Ok(mut st) = shared_state.lock() else {
                            return Err(Error::FailedPrecondition("state lock".into()));
                        };
                        match &item {
                            InFlight::Outbox(seq, _) => st.checkpoint = st.checkpoint.max(*seq),
                            InFlight::Snapshot(_) => {}
                            InFlight::SnapshotDone(d) => st.snapshot_pending.retain(|x| x != d),
                            InFlight::Withdrawn(d) => st.withdraw_pending.retain(|x| x != d),
                        }
                        st.last_ack_at_ms = now_unix_ms();
                        st.clone()
                    };
                    window.add_permits(1);
                    if let InFlight::Outbox(_, effects) | InFlight::Snapshot(effects) = &item
                        && !effects.is_empty()
                    {
                        let (n, id, effects) = (node.clone(), link.config.id.clone(), effects.clone());
                        tokio::task::spawn_blocking(move || n.record_profile_acks(&id, &effects)).await??;
                    }
                    if matches!(item, InFlight::Snapshot(_)) {
                        continue;
                    }
                    let (n, id, s) = (node.clone(), link.config.id.clone(), snapshot.clone());
                    tokio::task::spawn_blocking(move || state::save_push_relaxed(&n, &id, &s)).await??;
                    if let Ok(mut status) = link.status.lock() {
                        status.checkpoint = snapshot.checkpoint;
                        status.owed = snapshot.snapshot_pending.len() + snapshot.withdraw_pending.len();
                        status.last_ack_at_ms = snapshot.last_ack_at_ms;
                    }
                    engine_progress.notify_waiters();
                }
            })
        };
        let sender = self.send_all(state, tx, in_flight, window, &mut stop);
        tokio::pin!(acks);
        tokio::select! {
            sent = sender => sent,
            acked = &mut acks => acked?,
        }
    }

    /// Sends withdrawals, full resends, then the outbox forever (waking on each commit).
    async fn send_all(
        &self,
        state: PushState,
        tx: mpsc::Sender<PushMessage>,
        in_flight: Arc<Mutex<InFlightQueue>>,
        window: Arc<Semaphore>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<()> {
        let hub = self.link.config.clone();
        let send = |message: push_message::Kind, item: InFlight| {
            let (tx, in_flight, window, link) =
                (tx.clone(), in_flight.clone(), window.clone(), self.link.clone());
            async move {
                let permit =
                    window.acquire().await.map_err(|_| Error::FailedPrecondition("window closed".into()))?;
                permit.forget();
                let records = match &message {
                    push_message::Kind::Batch(batch) => {
                        let records = batch.changes.len() as u64;
                        link.counters.batches_sent.fetch_add(1, Ordering::Relaxed);
                        link.counters.records_sent.fetch_add(records, Ordering::Relaxed);
                        Some(records)
                    }
                    _ => None,
                };
                if let Ok(mut q) = in_flight.lock() {
                    q.push_back((item, records));
                }
                tx.send(PushMessage { kind: Some(message) })
                    .await
                    .map_err(|_| Error::FailedPrecondition("the push stream closed".into()))
            }
        };
        let node = self.node();
        for dataset in &state.withdraw_pending {
            let change = Change {
                dataset: dataset.clone(),
                key: String::new(),
                version: 0,
                payload: Some(change::Payload::Tombstone(node.tombstone(&hub.id, "unshared"))),
                ..Default::default()
            };
            let batch = Batch { seq: 0, changes: vec![change], head_seq: node.head_seq() };
            send(push_message::Kind::Batch(batch), InFlight::Withdrawn(dataset.clone())).await?;
            tracing::info!(%dataset, "withdrawing a dataset no longer shared");
        }
        for dataset in &state.snapshot_pending {
            let changes = {
                let (dataset, hub_id) = (dataset.clone(), hub.id.clone());
                self.blocking(move |node| node.snapshot(&dataset, &hub_id)).await?
            };
            tracing::info!(%dataset, records = changes.len(), "full resend");
            for chunk in chunks(changes) {
                let effects = snapshot_effects(&node, &hub.id, &chunk);
                let batch = Batch { seq: 0, changes: chunk, head_seq: node.head_seq() };
                send(push_message::Kind::Batch(batch), InFlight::Snapshot(effects)).await?;
            }
            send(
                push_message::Kind::SnapshotDone(SnapshotDone { dataset: dataset.clone() }),
                InFlight::SnapshotDone(dataset.clone()),
            )
            .await?;
        }
        let mut head = node.watch_head();
        let mut sent = state.checkpoint;
        // Where the outbox begins (earlier entries were compacted by a previous session).
        let mut compacted = self
            .blocking(|node| Ok(node.outbox_after(0, 1)?.first().map_or(node.head_seq(), |(seq, _)| seq - 1)))
            .await?;
        loop {
            head.borrow_and_update();
            let (hub_id, datasets) = (hub.id.clone(), hub.datasets.clone());
            let page = self
                .blocking(move |node| {
                    let entries = node.outbox_after(sent, MAX_CHANGES)?;
                    let Some(&(last, _)) = entries.last() else { return Ok(None) };
                    // Several changes of one record collapse into its current state.
                    let mut latest: HashMap<(String, String), usize> = HashMap::new();
                    let mut changes: Vec<(Change, Option<ProfileEffect>)> = Vec::new();
                    for (_, entry) in entries {
                        if !datasets.contains(&entry.dataset) {
                            continue;
                        }
                        let change = if entry.dataset == passerelle_proto::datasets::Dataset::Profiles {
                            node.profile_change(&entry.key, &hub_id)?.map(|(c, e)| (c, Some(e)))
                        } else {
                            node.change_for(&entry, &hub_id)?.map(|c| (c, None))
                        };
                        let Some(change) = change else { continue };
                        match latest.get(&(entry.dataset.clone(), entry.key.clone())) {
                            Some(&i) => changes[i] = change,
                            None => {
                                latest.insert((entry.dataset, entry.key), changes.len());
                                changes.push(change);
                            }
                        }
                    }
                    Ok(Some((last, changes)))
                })
                .await?;
            match page {
                Some((last, changes)) => {
                    let mut parts = chunks_with(changes).into_iter().peekable();
                    if parts.peek().is_none() {
                        // Nothing for this hub in these entries: still move the checkpoint.
                        let batch = Batch { seq: last, changes: Vec::new(), head_seq: node.head_seq() };
                        send(push_message::Kind::Batch(batch), InFlight::Outbox(last, Vec::new())).await?;
                    }
                    while let Some((part, effects)) = parts.next() {
                        // Only the last part completes the entries up to `last`.
                        let (seq, item) = if parts.peek().is_none() {
                            (last, InFlight::Outbox(last, effects))
                        } else {
                            (0, InFlight::Snapshot(effects))
                        };
                        let batch = Batch { seq, changes: part, head_seq: node.head_seq() };
                        send(push_message::Kind::Batch(batch), item).await?;
                    }
                    sent = last;
                }
                None => {
                    // Caught up and nothing in flight: a good moment to drop, a slice at a time,
                    // entries every hub has acknowledged (during a catch-up it would compete).
                    let idle = in_flight.lock().map(|q| q.is_empty()).unwrap_or(false);
                    let floor = self.engine.min_checkpoint().min(compacted + COMPACT_STEP);
                    if idle && floor >= compacted + 1000 {
                        self.blocking(move |node| node.compact_outbox(floor)).await?;
                        compacted = floor;
                    }
                    tokio::select! {
                        changed = head.changed() => if changed.is_err() { return Ok(()) },
                        _ = stop.wait_for(|s| *s) => return Ok(()),
                    }
                }
            }
        }
    }
}

/// Splits changes with their profile effects into batches bounded in count and bytes.
fn chunks_with(changes: Vec<(Change, Option<ProfileEffect>)>) -> Vec<(Vec<Change>, Vec<ProfileEffect>)> {
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

/// The profile effects of a chunk of a full resend (the pseudonym maps back only here).
fn snapshot_effects(node: &Node, hub_id: &str, chunk: &[Change]) -> Vec<ProfileEffect> {
    if !chunk.iter().any(|c| c.dataset == passerelle_proto::datasets::Dataset::Profiles) {
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
        let len = crate::node::projection::encoded_len(&change);
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
