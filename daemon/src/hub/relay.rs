//! Relaying to consolidation hubs: this hub, as a member of each `[[upstream]]` hub (with its own
//! hub certificate), forwards its members' indicator reports and needs with their origin SIRET,
//! origin version and origin store epoch, so the upstream counts each structure once even when it
//! belongs to several networks. Withdrawals travel up as tombstones.
//!
//! A relay is the hub's side of the one sync link (`sync::link`, the same connection, backoff
//! with jitter and window of batches in flight as a node's): [`RelaySource`] reads the hub's
//! change feed from a durable position (`relay/ID` in the sync-state tree) and sends the current
//! state of each changed record; its tickets are feed positions, saved as they are acknowledged.
//! When the upstream does not know this hub's store (first contact, or a reset), it sends every
//! record first, then a `SnapshotDone` per dataset.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use passerelle_client::TlsFiles;
use passerelle_proto::codec::MAX_CHANGES_PER_BATCH;
use passerelle_proto::datasets::Dataset;
use passerelle_proto::identity::Role;
use passerelle_proto::v1::{
    Batch, Change, PushOpen, SnapshotDone, Structure, Tombstone, change, push_message,
};
use prost::Message;
use tokio::sync::watch;

use super::Hub;
use super::ingest::HubRecord;
use crate::config::{HubLink, Upstream};
use crate::error::{Error, Result};
use crate::store::keys::{FeedEntry, RecordKey};
use crate::store::{Tree, WriteBatch};
use crate::sync::LinkCounters;
use crate::sync::link::{self, ChangeSource, Outgoing};

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

/// What a relay to one upstream has done since start (kept across its sessions).
#[derive(Debug, Default)]
pub(super) struct RelayLink {
    connected: AtomicBool,
    last_ack_at_ms: AtomicI64,
    counters: LinkCounters,
}

fn position_key(upstream: &str) -> Vec<u8> {
    format!("relay/{upstream}").into_bytes()
}

impl Hub {
    /// The change a record needs at an upstream hub now: its state with its origin and the
    /// origin's signature, the origin's signed deletion, or an unsigned tombstone if it is gone
    /// here (this hub no longer carries it). `None` for a record held unsigned (from a node older
    /// than signatures): an upstream would refuse it, so it waits for the node's signed resend.
    pub fn relay_change(&self, record_key: &RecordKey, upstream: &str) -> Result<Option<Change>> {
        let RecordKey { origin, dataset, key } = record_key;
        let record: Option<HubRecord> = self
            .store
            .get(Tree::Records, &record_key.encode())?
            .and_then(|raw| HubRecord::decode(raw.as_slice()).ok());
        let structure = match record.as_ref().and_then(|r| r.origin.clone()) {
            Some(signed) => signed,
            None => self
                .accepted_member(Role::Node, origin)?
                .and_then(|m| m.structure)
                .unwrap_or_else(|| Structure { siret: origin.to_string(), ..Default::default() }),
        };
        let mut change = Change {
            dataset: dataset.to_string(),
            key: key.to_string(),
            origin: Some(structure),
            ..Default::default()
        };
        let tombstone = |reason: &str| {
            Some(change::Payload::Tombstone(Tombstone {
                origin_siret: origin.to_string(),
                hub_id: upstream.to_string(),
                reason: reason.into(),
            }))
        };
        match record {
            Some(r) if r.signature.is_empty() && r.is_live() => return Ok(None),
            Some(r)
                if !r.signature.is_empty()
                    && !r.signature_verified
                    && !self.verify_stored(origin, dataset.as_str(), key, &r)? =>
            {
                tracing::warn!(%origin, %dataset, key, "withholding a record whose signature does not verify");
                return Ok(None);
            }
            Some(r) if !r.signature.is_empty() => {
                change.payload = match (r.deleted, r.need, r.indicators) {
                    (true, _, _) => tombstone("deleted"),
                    (_, Some(need), _) => Some(change::Payload::Need(need)),
                    (_, _, Some(report)) => Some(change::Payload::Indicators(report)),
                    _ => return Ok(None),
                };
                change.version = r.version;
                change.origin_epoch = r.epoch;
                change.origin_epoch_created_at_ms = r.epoch_at_ms;
                change.signature = r.signature;
                change.certificate_fingerprint = r.certificate_fingerprint;
            }
            other => {
                change.version = other.map_or(0, |r| r.version);
                change.payload = tombstone("no longer relayed");
            }
        }
        Ok(Some(change))
    }

    /// The certificates (DER) of `changes`' signatures not in `sent`, which it then holds. A
    /// change whose certificate this hub lacks is dropped (withheld), not sent to be refused.
    fn certificates_for(
        &self,
        changes: &mut Vec<Change>,
        sent: &mut HashSet<Vec<u8>>,
    ) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut missing = HashSet::new();
        for change in changes.iter() {
            let fingerprint = &change.certificate_fingerprint;
            if fingerprint.is_empty() || sent.contains(fingerprint) || missing.contains(fingerprint) {
                continue;
            }
            match self.store.get(Tree::Certificates, fingerprint)? {
                Some(der) => {
                    sent.insert(fingerprint.clone());
                    out.push(der);
                }
                None => {
                    missing.insert(fingerprint.clone());
                }
            }
        }
        if !missing.is_empty() {
            tracing::warn!(certificates = missing.len(), "withholding records whose certificate is not held");
            changes.retain(|c| !missing.contains(&c.certificate_fingerprint));
        }
        Ok(out)
    }

    /// What this hub would relay of `origin`'s record `dataset`/`key` to `upstream` (for tests and
    /// tools that inspect a relay from outside the crate).
    pub fn relayed(
        &self,
        origin: &str,
        dataset: Dataset,
        key: &str,
        upstream: &str,
    ) -> Result<Option<Change>> {
        self.relay_change(&RecordKey::new(origin, dataset, key), upstream)
    }

    /// Every live record to relay, for a full resend.
    fn relay_all(&self, upstream: &str) -> Result<Vec<Change>> {
        let mut out = Vec::new();
        for (key, raw) in self.store.scan(Tree::Records, &[], None, usize::MAX)? {
            let Some(record_key) = RecordKey::decode(&key) else {
                continue;
            };
            if record_key.dataset.is_relayed()
                && HubRecord::decode(raw.as_slice()).is_ok_and(|r| r.is_live())
                && let Some(change) = self.relay_change(&record_key, upstream)?
            {
                out.push(change);
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
            let link = self.relay_link(id);
            out.push((
                id.clone(),
                RelayStatus {
                    connected: link.connected.load(Ordering::Relaxed),
                    batches_acked: link.counters.batches_acked.load(Ordering::Relaxed),
                    records_acked: link.counters.records_acked.load(Ordering::Relaxed),
                    last_ack_at_ms: link.last_ack_at_ms.load(Ordering::Relaxed),
                    pending_feed_entries: self.feed_head().saturating_sub(self.relay_position(id)?),
                },
            ));
        }
        Ok(out)
    }

    /// The live state of the relay to `upstream` (created at first use).
    fn relay_link(&self, upstream: &str) -> Arc<RelayLink> {
        match self.relays.lock() {
            Ok(mut relays) => relays.entry(upstream.to_string()).or_default().clone(),
            Err(_) => Arc::default(),
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
        let (hub, stop) = (hub.clone(), stop.clone());
        let span = tracing::info_span!("relay", upstream = %upstream.link.id);
        tasks.push(tokio::spawn(tracing::Instrument::instrument(
            async move {
                let relay = hub.relay_link(&upstream.link.id);
                let session = || {
                    let (hub, upstream, relay, stop) =
                        (hub.clone(), upstream.clone(), relay.clone(), stop.clone());
                    async move {
                        let outcome = session(hub, &upstream.link, &upstream.tls, relay.clone(), stop).await;
                        relay.connected.store(false, Ordering::Relaxed);
                        outcome
                    }
                };
                let ended = |e: &Error, retry_in| {
                    tracing::warn!(error = %e, ?retry_in, "relay session ended");
                    false
                };
                link::retry(stop.clone(), None, session, ended).await;
            },
            span,
        )));
    }
    tasks
}

async fn session(
    hub: Arc<Hub>,
    upstream: &HubLink,
    tls: &TlsFiles,
    relay: Arc<RelayLink>,
    stop: watch::Receiver<bool>,
) -> Result<()> {
    let (channel, _) = link::connect(upstream, tls, None).await?;
    let source = RelaySource {
        hub,
        upstream: upstream.id.clone(),
        datasets: upstream.datasets.clone(),
        relay,
        sent: Mutex::default(),
    };
    link::push(Arc::new(source), channel, stop).await
}

/// One relay session's source: the hub's change feed towards one upstream.
#[derive(Debug)]
struct RelaySource {
    hub: Arc<Hub>,
    upstream: String,
    /// The datasets relayed.
    datasets: Vec<Dataset>,
    relay: Arc<RelayLink>,
    /// Fingerprints of the origin certificates sent in this session (each goes once).
    sent: Mutex<HashSet<Vec<u8>>>,
}

/// Where a relay session stands.
#[derive(Debug)]
enum Cursor {
    /// Everything is still to send (the upstream does not know this hub's store).
    Everything,
    /// The change feed after this position.
    Feed(u64),
}

/// What an acknowledgement confirms.
#[derive(Debug)]
enum Ticket {
    /// A batch of a full resend.
    Everything,
    /// The end of a full resend of a dataset, and the feed position it reached if it is the
    /// last one.
    Done(Option<u64>),
    /// Feed entries up to this position.
    Feed(u64),
}

impl RelaySource {
    fn sent(&self) -> std::sync::MutexGuard<'_, HashSet<Vec<u8>>> {
        self.sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn acked_batch(&self) {
        self.relay.last_ack_at_ms.store(passerelle_proto::date::now_unix_ms(), Ordering::Relaxed);
    }
}

impl ChangeSource for RelaySource {
    type Ticket = Ticket;
    type Cursor = Cursor;

    fn open(&self) -> Result<PushOpen> {
        Ok(PushOpen {
            structure: None,
            epoch: self.hub.identity().epoch.to_vec(),
            datasets: self.datasets.iter().map(ToString::to_string).collect(),
            digests: Vec::new(),
            head_seq: self.hub.feed_head(),
            epoch_created_at_ms: self.hub.identity().created_at_ms,
            certificates: Vec::new(),
        })
    }

    fn accepted(&self, resend: Vec<String>) -> Result<Cursor> {
        self.relay.connected.store(true, Ordering::Relaxed);
        let position = self.hub.relay_position(&self.upstream)?;
        Ok(if !resend.is_empty() || position == 0 { Cursor::Everything } else { Cursor::Feed(position) })
    }

    fn next(&self, cursor: &mut Cursor, _idle: bool) -> Result<Vec<Outgoing<Ticket>>> {
        let hub = &self.hub;
        let position = match *cursor {
            Cursor::Everything => {
                let start = hub.feed_head();
                let all = hub.relay_all(&self.upstream)?;
                tracing::info!(records = all.len(), "relaying everything");
                let mut out: Vec<Outgoing<Ticket>> = Vec::new();
                for chunk in all.chunks(BATCH) {
                    let mut changes = chunk.to_vec();
                    let certificates = hub.certificates_for(&mut changes, &mut self.sent())?;
                    out.push(Outgoing {
                        message: push_message::Kind::Batch(Batch {
                            seq: 0,
                            changes,
                            head_seq: start,
                            certificates,
                        })
                        .into(),
                        ticket: Ticket::Everything,
                    });
                }
                for (i, dataset) in self.datasets.iter().enumerate() {
                    let last = i + 1 == self.datasets.len();
                    out.push(Outgoing {
                        message: push_message::Kind::SnapshotDone(SnapshotDone {
                            dataset: dataset.to_string(),
                        })
                        .into(),
                        ticket: Ticket::Done(last.then_some(start)),
                    });
                }
                *cursor = Cursor::Feed(start);
                return Ok(out);
            }
            Cursor::Feed(position) => position,
        };
        let (lines, reached) = hub.feed_lines(position, BATCH)?;
        if reached == position {
            return Ok(Vec::new());
        }
        let mut seen = std::collections::HashSet::new();
        let mut changes = Vec::new();
        for line in lines {
            if !line.key.is_empty()
                && line.dataset.is_relayed()
                && seen.insert(line.clone())
                && let Some(change) = hub.relay_change(&line, &self.upstream)?
            {
                changes.push(change);
            }
        }
        *cursor = Cursor::Feed(reached);
        // One feed entry can hold many records (a member's removal): batches stay within what an
        // upstream decodes (`codec::MAX_CHANGES_PER_BATCH`); only the last one moves the position.
        let head = hub.feed_head();
        let mut chunks: Vec<Vec<Change>> =
            changes.chunks(MAX_CHANGES_PER_BATCH).map(<[Change]>::to_vec).collect();
        if chunks.is_empty() {
            chunks.push(Vec::new());
        }
        let last = chunks.len() - 1;
        let mut out = Vec::with_capacity(chunks.len());
        for (i, mut changes) in chunks.into_iter().enumerate() {
            let certificates = hub.certificates_for(&mut changes, &mut self.sent())?;
            out.push(Outgoing {
                message: push_message::Kind::Batch(Batch {
                    seq: reached,
                    changes,
                    head_seq: head,
                    certificates,
                })
                .into(),
                ticket: if i == last { Ticket::Feed(reached) } else { Ticket::Everything },
            });
        }
        Ok(out)
    }

    fn acked(&self, ticket: Ticket) -> Result<()> {
        match ticket {
            Ticket::Everything => self.acked_batch(),
            Ticket::Done(None) => {}
            Ticket::Done(Some(position)) => self.hub.save_relay_position(&self.upstream, position)?,
            Ticket::Feed(position) => {
                self.acked_batch();
                self.hub.save_relay_position(&self.upstream, position)?;
            }
        }
        Ok(())
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.hub.watch_feed()
    }

    fn counters(&self) -> &LinkCounters {
        &self.relay.counters
    }
}
