//! Relaying to consolidation hubs: this hub, as a member of each `[[upstream]]` hub (with its own
//! hub certificate), forwards its members' indicator reports and needs with their origin SIRET,
//! origin version and origin store epoch, so the upstream counts each structure once even when it
//! belongs to several networks. Withdrawals travel up as tombstones.
//!
//! The relay reads the hub's change feed from a durable position (`relay/ID` in the sync-state
//! tree) and sends the current state of each changed record; when the upstream does not know this
//! hub's store (first contact, or a reset), it sends every record first.

use std::sync::Arc;
use std::time::Duration;

use passerelle_proto::identity::Role;
use passerelle_proto::v1::hub_sync_client::HubSyncClient;
use passerelle_proto::v1::{
    Batch, Change, HelloRequest, PushMessage, PushOpen, SnapshotDone, Structure, Tombstone, change,
    push_message, push_reply,
};
use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use super::Hub;
use super::ingest::HubRecord;
use crate::config::Upstream;
use crate::error::{Error, Result};
use crate::store::keys::{FeedEntry, RecordKey};
use crate::store::{Tree, WriteBatch};

/// Most records in one relayed batch.
const BATCH: usize = 500;

/// One relay link as the metrics endpoint shows it.
#[derive(Debug, Clone, Default)]
pub struct RelayStatus {
    /// A relay session is open.
    pub connected: bool,
    /// Batches the upstream acknowledged since start.
    pub batches_acked: u64,
    /// Changes in them.
    pub records_acked: u64,
    /// Last acknowledgement, milliseconds since the epoch (0: none yet).
    pub last_ack_at_ms: i64,
    /// Feed entries (batches received from members) not yet relayed.
    pub pending_feed_entries: u64,
}

fn position_key(upstream: &str) -> Vec<u8> {
    format!("relay/{upstream}").into_bytes()
}

impl Hub {
    /// The change a record needs at an upstream hub now: its state with its origin, or a
    /// tombstone if it is deleted or gone here.
    pub fn relay_change(&self, record_key: &RecordKey, upstream: &str) -> Result<Change> {
        let RecordKey { origin, dataset, key } = record_key;
        let record: Option<HubRecord> = self
            .store
            .get(Tree::Records, &record_key.encode())?
            .and_then(|raw| HubRecord::decode(raw.as_slice()).ok());
        let structure = self
            .load(&super::member_key(Role::Node, origin))?
            .and_then(|m| m.structure)
            .unwrap_or_else(|| Structure { siret: origin.to_string(), ..Default::default() });
        let mut change = Change {
            dataset: dataset.to_string(),
            key: key.to_string(),
            origin: Some(structure),
            ..Default::default()
        };
        match record {
            Some(r) if r.is_live() => {
                change.version = r.version;
                change.origin_epoch = r.epoch;
                change.origin_epoch_created_at_ms = r.epoch_at_ms;
                change.payload = match (r.need, r.indicators) {
                    (Some(need), _) => Some(change::Payload::Need(need)),
                    (_, Some(report)) => Some(change::Payload::Indicators(report)),
                    _ => None,
                };
            }
            other => {
                change.version = other.map_or(0, |r| r.version);
                change.payload = Some(change::Payload::Tombstone(Tombstone {
                    origin_siret: origin.to_string(),
                    hub_id: upstream.to_string(),
                    reason: "no longer relayed".into(),
                }));
            }
        }
        Ok(change)
    }

    /// Every live record to relay, for a full resend.
    fn relay_all(&self, upstream: &str) -> Result<Vec<Change>> {
        let mut out = Vec::new();
        for (key, raw) in self.store.scan(Tree::Records, &[], None, usize::MAX)? {
            let Some(record_key) = RecordKey::decode(&key) else {
                continue;
            };
            if record_key.dataset.is_relayed() && HubRecord::decode(raw.as_slice()).is_ok_and(|r| r.is_live())
            {
                out.push(self.relay_change(&record_key, upstream)?);
            }
        }
        Ok(out)
    }

    /// Up to `limit` records of the change feed after `after`, and the position reached.
    fn feed_lines(&self, after: u64, limit: usize) -> Result<(Vec<RecordKey>, u64)> {
        let mut lines = Vec::new();
        let mut position = after;
        for (k, v) in self.store.scan(Tree::Feed, &FeedEntry::key(after + 1), None, 64)? {
            let Some(entry) = FeedEntry::decode(&k, &v) else { continue };
            position = entry.position;
            lines.extend(entry.records);
            if lines.len() >= limit {
                break;
            }
        }
        Ok((lines, position))
    }

    /// Every upstream relay's status (reads the relay positions).
    pub fn relay_statuses(&self) -> Result<Vec<(String, RelayStatus)>> {
        let mut out = Vec::new();
        for upstream in &self.config.upstreams {
            let id = &upstream.link.id;
            let mut status = self.relays.lock().ok().and_then(|r| r.get(id).cloned()).unwrap_or_default();
            status.pending_feed_entries = self.feed_head().saturating_sub(self.relay_position(id)?);
            out.push((id.clone(), status));
        }
        Ok(out)
    }

    fn relay_update(&self, upstream: &str, change: impl FnOnce(&mut RelayStatus)) {
        if let Ok(mut relays) = self.relays.lock() {
            change(relays.entry(upstream.to_string()).or_default());
        }
    }

    fn relay_position(&self, upstream: &str) -> Result<u64> {
        Ok(self
            .store
            .get(Tree::SyncState, &position_key(upstream))?
            .and_then(|raw| raw.as_slice().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0))
    }

    fn save_relay_position(&self, upstream: &str, position: u64) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.put(Tree::SyncState, position_key(upstream), position.to_be_bytes());
        // Losing it only makes the relay resend what the upstream already has (idempotent).
        Ok(self.store.commit_relaxed(batch)?)
    }
}

/// Starts one relay task per upstream hub; they stop when `stop` becomes `true`.
pub(crate) fn start(
    hub: Arc<Hub>,
    upstreams: Vec<Upstream>,
    stop: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for upstream in upstreams {
        let (hub, mut stop) = (hub.clone(), stop.clone());
        let span = tracing::info_span!("relay", upstream = %upstream.link.id);
        tasks.push(tokio::spawn(tracing::Instrument::instrument(
            async move {
                let mut delay = Duration::from_millis(250);
                loop {
                    let outcome = session(&hub, &upstream, stop.clone()).await;
                    hub.relay_update(&upstream.link.id, |s| s.connected = false);
                    match outcome {
                        Ok(()) => return,
                        Err(e) => tracing::warn!(error = %e, retry_in = ?delay, "relay session ended"),
                    }
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                    delay = (delay * 2).min(Duration::from_secs(60));
                }
            },
            span,
        )));
    }
    tasks
}

async fn session(hub: &Arc<Hub>, upstream: &Upstream, mut stop: watch::Receiver<bool>) -> Result<()> {
    let status = |s: tonic::Status| Error::FailedPrecondition(format!("{:?}: {}", s.code(), s.message()));
    let channel = crate::sync::connect::connect(&upstream.link, &upstream.tls).await?;
    let mut client = HubSyncClient::new(channel);
    client.hello(HelloRequest { structure: None }).await.map_err(status)?;
    let (tx, rx) = mpsc::channel::<PushMessage>(4);
    let open = PushOpen {
        structure: None,
        epoch: hub.identity().epoch.to_vec(),
        datasets: upstream.link.datasets.clone(),
        digests: Vec::new(),
        head_seq: hub.feed_head(),
        epoch_created_at_ms: hub.identity().created_at_ms,
    };
    let _ = tx.send(PushMessage { kind: Some(push_message::Kind::Open(open)) }).await;
    let mut replies = client.push(ReceiverStream::new(rx)).await.map_err(status)?.into_inner();
    let accepted = match replies.message().await.map_err(status)? {
        Some(r) => match r.kind {
            Some(push_reply::Kind::Accepted(a)) => a,
            _ => return Err(Error::FailedPrecondition("the upstream hub did not accept the relay".into())),
        },
        None => return Err(Error::FailedPrecondition("the upstream hub closed the relay".into())),
    };
    let id = upstream.link.id.clone();
    hub.relay_update(&id, |s| s.connected = true);
    let acked = |records: usize| {
        hub.relay_update(&id, |s| {
            s.batches_acked += 1;
            s.records_acked += records as u64;
            s.last_ack_at_ms = passerelle_proto::date::now_unix_ms();
        })
    };
    let send = |message: push_message::Kind| {
        let tx = tx.clone();
        async move {
            tx.send(PushMessage { kind: Some(message) })
                .await
                .map_err(|_| Error::FailedPrecondition("relay stream closed".into()))
        }
    };
    let mut position = {
        let (h, id) = (hub.clone(), id.clone());
        tokio::task::spawn_blocking(move || h.relay_position(&id)).await??
    };
    if !accepted.resend.is_empty() || position == 0 {
        let start = hub.feed_head();
        let all = {
            let (h, id) = (hub.clone(), id.clone());
            tokio::task::spawn_blocking(move || h.relay_all(&id)).await??
        };
        tracing::info!(records = all.len(), "relaying everything");
        for chunk in all.chunks(BATCH) {
            send(push_message::Kind::Batch(Batch { seq: 0, changes: chunk.to_vec(), head_seq: start }))
                .await?;
            ack(&mut replies).await?;
            acked(chunk.len());
        }
        for dataset in &upstream.link.datasets {
            send(push_message::Kind::SnapshotDone(SnapshotDone { dataset: dataset.clone() })).await?;
            ack(&mut replies).await?;
        }
        position = start;
        let (h, i) = (hub.clone(), id.clone());
        tokio::task::spawn_blocking(move || h.save_relay_position(&i, position)).await??;
    }
    let mut feed = hub.watch_feed();
    loop {
        feed.borrow_and_update();
        let (h, i) = (hub.clone(), id.clone());
        let (changes, reached) = tokio::task::spawn_blocking(move || {
            let (lines, reached) = h.feed_lines(position, BATCH)?;
            let mut seen = std::collections::HashSet::new();
            let mut changes = Vec::new();
            for line in lines {
                if !line.key.is_empty() && line.dataset.is_relayed() && seen.insert(line.clone()) {
                    changes.push(h.relay_change(&line, &i)?);
                }
            }
            Ok::<_, Error>((changes, reached))
        })
        .await??;
        if reached == position {
            tokio::select! {
                changed = feed.changed() => if changed.is_err() { return Ok(()) },
                _ = stop.wait_for(|s| *s) => return Ok(()),
            }
            continue;
        }
        let records = changes.len();
        send(push_message::Kind::Batch(Batch { seq: reached, changes, head_seq: hub.feed_head() })).await?;
        ack(&mut replies).await?;
        acked(records);
        position = reached;
        let (h, i) = (hub.clone(), id.clone());
        tokio::task::spawn_blocking(move || h.save_relay_position(&i, position)).await??;
    }
}

async fn ack(replies: &mut tonic::Streaming<passerelle_proto::v1::PushReply>) -> Result<()> {
    match replies.message().await {
        Ok(Some(r)) if matches!(r.kind, Some(push_reply::Kind::Ack(_))) => Ok(()),
        Ok(_) => Err(Error::FailedPrecondition("the upstream hub closed the relay".into())),
        Err(s) => Err(Error::FailedPrecondition(format!("{:?}: {}", s.code(), s.message()))),
    }
}
