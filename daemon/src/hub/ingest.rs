//! Applying members' pushes: sessions, batches, full resends, and the view feed.
//!
//! Invariants:
//! - a record is keyed by (origin SIRET, dataset, key), all three from the certificate and the
//!   change's routing keys, checked against each other;
//! - a change is applied only if it is newer: another epoch of the origin (its store was reset,
//!   and the new epoch is authoritative), or a higher version in the same epoch. Applying the same
//!   change twice, or an older one after a newer one, changes nothing;
//! - a batch is one durable commit, with the member's stats and the feed entries it causes, and
//!   is acknowledged only after it;
//! - a tombstone drops the payload at once; the tombstone itself is kept so an older version
//!   arriving late cannot resurrect the record, until a full resend of the dataset sweeps it.

use std::collections::{HashMap, HashSet};

use passerelle_proto::datasets::{Dataset, Digest};
use passerelle_proto::date::now_unix_ms;
use passerelle_proto::identity::Role;
use passerelle_proto::v1::{
    AnonymizedProfile, Batch, Change, IndicatorReport, Member, PushAccepted, PushOpen, SharedNeed, Structure,
    change,
};
use passerelle_proto::validate::{self, FieldError};
use prost::Message;

use super::provenance::{Floor, Provenance, SessionCertificates, SignerCheck, check_signer};
use super::stats::StatsDelta;
use super::{Hub, member_key};
use crate::error::{Error, Result};
use crate::store::keys::RecordKey;
use crate::store::{StoreError, Tree, WriteBatch, scan_prefix};
use crate::tls::Peer;

/// A record as the hub holds it.
#[derive(Clone, PartialEq, Message)]
pub struct HubRecord {
    /// Origin version.
    #[prost(uint64, tag = "1")]
    pub version: u64,
    /// The origin's store epoch the version belongs to.
    #[prost(bytes = "vec", tag = "2")]
    pub epoch: Vec<u8>,
    /// The push session that last wrote or confirmed it (for the sweep after a full resend).
    #[prost(uint64, tag = "3")]
    pub session: u64,
    /// The need, for the `needs` dataset.
    #[prost(message, optional, tag = "4")]
    pub need: Option<SharedNeed>,
    /// The report, for the `indicators` dataset.
    #[prost(message, optional, tag = "5")]
    pub indicators: Option<IndicatorReport>,
    /// A tombstone: no payload.
    #[prost(bool, tag = "6")]
    pub deleted: bool,
    /// When the hub applied it.
    #[prost(int64, tag = "7")]
    pub received_at_ms: i64,
    /// The profile, for the `profiles` dataset.
    #[prost(message, optional, tag = "8")]
    pub profile: Option<AnonymizedProfile>,
    /// The statistics cell the record is counted in (empty: none), so it is uncounted from the
    /// same cell even if its structure's attributes change later.
    #[prost(bytes = "vec", tag = "9")]
    pub stat_key: Vec<u8>,
    /// When the origin's store (of `epoch`) was created: a later store outranks an earlier one.
    #[prost(int64, tag = "10")]
    pub epoch_at_ms: i64,
    /// On an upstream hub: the downstream hubs relaying this record. It goes when none does.
    #[prost(string, repeated, tag = "11")]
    pub sources: Vec<String>,
    /// The origin's signature of this version (empty: sent unsigned, never relayed).
    #[prost(bytes = "vec", tag = "12")]
    pub signature: Vec<u8>,
    /// The fingerprint of the certificate whose key made it (`certificates` tree).
    #[prost(bytes = "vec", tag = "13")]
    pub certificate_fingerprint: Vec<u8>,
    /// The origin structure as signed.
    #[prost(message, optional, tag = "14")]
    pub origin: Option<Structure>,
    /// Whether `signature` was verified (on receipt by a hub with upstreams, or before it was
    /// first relayed); an unverified one is verified before this hub vouches for it.
    #[prost(bool, tag = "15")]
    pub signature_verified: bool,
}

impl HubRecord {
    /// Whether the record is live (not a tombstone).
    pub fn is_live(&self) -> bool {
        !self.deleted
    }

    /// The floor a record held from before floors were kept stands for.
    fn floor(&self) -> Floor {
        Floor {
            epoch_at_ms: self.epoch_at_ms,
            epoch: self.epoch.clone(),
            version: self.version,
            deleted: self.deleted,
        }
    }
}

/// An open push session.
#[derive(Debug)]
pub struct PushSession {
    peer: Peer,
    epoch: Vec<u8>,
    /// When the member's store was created.
    epoch_at_ms: i64,
    datasets: HashSet<Dataset>,
    /// Random id stamped on every record this session writes or confirms.
    id: u64,
    /// A downstream hub relaying its members' records (origins come from each change).
    relay: bool,
    /// A node's structure as it introduced itself at open (what its records are signed with
    /// unless a change names another).
    structure: Option<Structure>,
    /// Origin certificates offered in this session, by fingerprint.
    certificates: std::sync::Mutex<SessionCertificates>,
    /// Whether unsigned relayed records are applied: never in production, only by unit tests of
    /// the statistics apply path, which relay records without a node to sign them.
    unsigned_relays: bool,
}

impl PushSession {
    /// The origin (the member's id).
    pub fn origin(&self) -> &str {
        &self.peer.id.id
    }

    /// Whether a downstream hub relays through this session.
    pub(crate) fn relay(&self) -> bool {
        self.relay
    }

    /// The epoch and creation time of a node's store (a relay's records carry their own).
    pub(crate) fn epoch(&self) -> (&[u8], i64) {
        (&self.epoch, self.epoch_at_ms)
    }

    /// A node's structure as introduced at open.
    pub(crate) fn structure(&self) -> Option<&Structure> {
        self.structure.as_ref()
    }

    /// The origin certificates offered in this session.
    pub(crate) fn certificates(&self) -> std::sync::MutexGuard<'_, SessionCertificates> {
        self.certificates.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Most batches of a session applied in one durable commit: half the member's window of 8
/// batches in flight, so the other half travels and is prepared while a group commits (a
/// group of the whole window would leave the member waiting for acknowledgements, the hub for
/// batches, in turn).
pub(crate) const GROUP_COMMIT: usize = 4;

/// A batch whose changes passed every check that needs no store write.
struct CheckedBatch {
    batch: Batch,
    /// Each change's dataset, parsed.
    datasets: Vec<Dataset>,
    /// Each change's provenance.
    verified: Vec<super::provenance::Verified>,
}

/// What a group of batches changes, staged for its one commit.
#[derive(Default)]
struct Group {
    member: Member,
    floors: HashMap<Vec<u8>, Floor>,
    pending: HashMap<Vec<u8>, Option<HubRecord>>,
    /// The feed's record keys, one list per batch (one feed entry each).
    logs: Vec<Vec<RecordKey>>,
    stats: StatsDelta,
    received: Vec<super::periods::Received>,
    /// Origins first signed for in this group: SIRET → network of the signing certificate.
    pins: HashMap<String, String>,
    /// Origins whose newest signing certificate this group moves (see `NewestSigner`).
    newest_signers: HashMap<String, super::provenance::NewestSigner>,
    bounds: KeyBounds,
}

/// The greatest key the store holds per (tree, origin, dataset), read from the store at first
/// use under the write lock, for one group only: a key above it has no record (nor floor) to
/// read, which is every new record of a catch-up. Never kept across groups, so no write
/// elsewhere (a purge, another session, a restart) can leave it stale; keys written by the
/// group itself are in its `pending` map, looked up first.
#[derive(Default)]
struct KeyBounds {
    /// (tree, origin, dataset, greatest key): a handful per group (one origin for a node's
    /// session), searched in place so a lookup allocates nothing (it runs for every change).
    last: Vec<(Tree, String, Dataset, Option<Vec<u8>>)>,
}

impl KeyBounds {
    /// Whether `key` (of `origin`'s `dataset`) is above every key `tree` holds for them.
    fn above(&mut self, hub: &Hub, tree: Tree, origin: &str, dataset: Dataset, key: &[u8]) -> Result<bool> {
        let found = self.last.iter().position(|(t, o, d, _)| *t == tree && *d == dataset && o == origin);
        let index = match found {
            Some(index) => index,
            None => {
                let prefix = RecordKey::prefix(origin, dataset);
                let last = crate::store::last_key_with_prefix(hub.store.as_ref(), tree, &prefix)?;
                self.last.push((tree, origin.to_string(), dataset, last));
                self.last.len() - 1
            }
        };
        Ok(self.last[index].3.as_deref().is_none_or(|last| key > last))
    }
}

fn corrupt(what: &str) -> Error {
    Error::Store(StoreError(format!("corrupt {what}")))
}

impl Hub {
    fn load_record(&self, key: &[u8]) -> Result<Option<HubRecord>> {
        self.store
            .get(Tree::Records, key)?
            .map(|raw| HubRecord::decode(raw.as_slice()).map_err(|_| corrupt("record")))
            .transpose()
    }

    /// Records (live and tombstones) of one origin's dataset, as (key, record).
    pub fn records_of(&self, origin: &str, dataset: Dataset) -> Result<Vec<(String, HubRecord)>> {
        let prefix = RecordKey::prefix(origin, dataset);
        scan_prefix(self.store.as_ref(), Tree::Records, &prefix)?
            .into_iter()
            .map(|(k, v)| {
                let key = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                Ok((key, HubRecord::decode(v.as_slice()).map_err(|_| corrupt("record"))?))
            })
            .collect()
    }

    /// Live records held, by dataset (for the metrics endpoint: reads every record).
    pub fn records_by_dataset(&self) -> Result<std::collections::BTreeMap<String, u64>> {
        let mut counts: std::collections::BTreeMap<String, u64> =
            Dataset::ALL.iter().map(|d| (d.to_string(), 0)).collect();
        for (key, raw) in self.store.scan(Tree::Records, &[], None, usize::MAX)? {
            let record = HubRecord::decode(raw.as_slice()).map_err(|_| corrupt("record"))?;
            let key = RecordKey::decode(&key).ok_or_else(|| corrupt("record key"))?;
            if record.is_live() {
                *counts.entry(key.dataset.to_string()).or_default() += 1;
            }
        }
        Ok(counts)
    }

    fn member_for(&self, peer: &Peer) -> Result<Member> {
        let key = member_key(peer)?;
        self.load(&key)?.ok_or_else(|| {
            Error::PermissionDenied(format!("{} is not a member of hub {}", peer.id, self.config.id))
        })
    }

    /// Opens a push session: checks membership, the epoch and the digests, and says which
    /// datasets the member must resend in full.
    pub fn open_push(&self, peer: &Peer, open: PushOpen) -> Result<(PushSession, PushAccepted)> {
        let relay = peer.id.role == Role::Hub;
        if !relay && peer.id.role != Role::Node {
            return Err(Error::PermissionDenied(format!(
                "role {} cannot push records to hub {}",
                peer.id.role, self.config.id
            )));
        }
        if let Some(kept) = relay.then(|| open.datasets.iter().find(|d| **d == Dataset::Profiles)).flatten() {
            return Err(FieldError::new("datasets", kept, "profiles are never relayed upstream").into());
        }
        self.admit(peer, if relay { None } else { open.structure.clone() })?;
        let declared =
            open.datasets.iter().map(|d| Dataset::parse("datasets", d)).collect::<Result<HashSet<_>, _>>()?;
        if open.epoch.len() != 16 {
            return Err(FieldError::rule("epoch", "expected 16 bytes").into());
        }
        // Certificate chains are checked before the write lock: they need no store write, and
        // with thousands of nodes opening sessions at once they must not queue behind it.
        let certificates = if relay {
            SessionCertificates::new()
        } else {
            self.verify_node_certificates(peer, &open.certificates)?
        };
        let _writer = self.write_lock();
        let mut batch = WriteBatch::new();
        self.stage_new_certificates(&certificates, &open.certificates, &mut batch)?;
        let mut member = self.member_for(peer)?;
        let known_epoch = hex(&open.epoch) == member.epoch;
        let mut resend: Vec<String> = Vec::new();
        if !known_epoch {
            if !member.epoch.is_empty() {
                tracing::warn!(peer = %peer.id, old = %member.epoch, new = %hex(&open.epoch), "member store was reset: full resend");
            }
            resend.extend(open.datasets.iter().cloned());
            member.epoch = hex(&open.epoch);
            member.last_acked_seq = 0;
        } else {
            for digest in &open.digests {
                let Some(dataset) = declared.iter().copied().find(|d| digest.dataset == *d) else {
                    continue;
                };
                let mut ours = Digest::default();
                // Copies held unsigned (sent before the node signed) are asked again once it signs,
                // so they can be relayed.
                let mut unsigned = false;
                for (key, record) in self.records_of(&peer.id.id, dataset)? {
                    if record.is_live() {
                        ours.add(&key, record.version);
                        unsigned |= record.signature.is_empty() && dataset.is_relayed();
                    }
                }
                if unsigned && !certificates.is_empty() {
                    tracing::info!(peer = %peer.id, %dataset, "copies held unsigned: full resend");
                    resend.push(digest.dataset.clone());
                } else if ours.count != digest.count || ours.hash.as_slice() != digest.hash.as_slice() {
                    tracing::warn!(
                        peer = %peer.id, dataset = %digest.dataset, ours = ours.count, theirs = digest.count,
                        "digest mismatch: full resend of the dataset"
                    );
                    member.digest_mismatches += 1;
                    resend.push(digest.dataset.clone());
                }
            }
        }
        member.head_seq = open.head_seq;
        batch.put(Tree::Members, member_key(peer)?, member.encode_to_vec());
        // Relaxed: nothing here is acknowledged. Lost in a crash, the member's epoch and head
        // are what its next `PushOpen` says again (at worst a full resend), and the
        // certificates are durable before any record they signed is acknowledged (the batch's
        // durable commit comes later in the same log).
        self.store.commit_relaxed(batch)?;
        let session = PushSession {
            relay,
            epoch_at_ms: open.epoch_created_at_ms,
            peer: peer.clone(),
            epoch: open.epoch,
            datasets: declared,
            id: u64::from_be_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap_or_default()),
            structure: if relay { None } else { open.structure },
            certificates: std::sync::Mutex::new(certificates),
            unsigned_relays: false,
        };
        Ok((session, PushAccepted { resend, last_acked_seq: member.last_acked_seq }))
    }

    /// Applies a batch in one durable commit; returns once it is durable.
    pub fn apply_batch(&self, session: &PushSession, batch: Batch) -> Result<()> {
        self.apply_batches(session, vec![batch]).pop().unwrap_or(Ok(()))
    }

    /// Applies a session's queued batches, in order, in **one** durable commit (group commit:
    /// one fsync for up to [`GROUP_COMMIT`] batches), and returns each batch's outcome once the
    /// commit is durable. Each batch is checked (routing keys, payloads, signatures) before the
    /// write lock; one that fails is refused alone, with its own status, and nothing of it is
    /// written, while the batches around it are applied. A failure of the store itself fails
    /// every batch of the group (nothing is committed).
    pub fn apply_batches(&self, session: &PushSession, batches: Vec<Batch>) -> Vec<Result<()>> {
        let now = now_unix_ms();
        let mut outcomes: Vec<Result<()>> = Vec::with_capacity(batches.len());
        let mut checked = Vec::with_capacity(batches.len());
        for batch in batches {
            match self.check_batch(session, batch) {
                Ok(batch) => {
                    checked.push((outcomes.len(), batch));
                    outcomes.push(Ok(()));
                }
                Err(e) => outcomes.push(Err(e)),
            }
        }
        if checked.is_empty() {
            return outcomes;
        }
        let applied: Vec<usize> = checked.iter().map(|(i, _)| *i).collect();
        let result = {
            let _writer = self.write_lock();
            self.commit_group(session, checked.into_iter().map(|(_, c)| c), now)
        };
        if let Err(e) = result {
            // Nothing was committed: every batch of the group is refused with the cause.
            let message = e.to_string();
            for (n, i) in applied.into_iter().enumerate() {
                outcomes[i] = Err(if n == 0 {
                    Error::Unavailable(message.clone())
                } else {
                    Error::Unavailable(format!("not applied with its group: {message}"))
                });
            }
        }
        outcomes
    }

    /// Everything about a batch that needs no store write: its certificates (relays), each
    /// change's routing keys, dataset and payload, and signatures. Runs before the write lock.
    fn check_batch(&self, session: &PushSession, batch: Batch) -> Result<CheckedBatch> {
        if session.relay {
            self.learn_relayed_certificates(session, &batch.certificates)?;
        }
        // Signatures are the costly part of a batch; they need no store read.
        let verified = self.verify_batch(session, &batch.changes)?;
        let mut datasets = Vec::with_capacity(batch.changes.len());
        for (change, verified) in batch.changes.iter().zip(&verified) {
            let dataset = self.check_change(session, change)?;
            let deletion = matches!(change.payload, Some(change::Payload::Tombstone(_)));
            if session.relay
                && !session.unsigned_relays
                && verified.provenance == Provenance::Unsigned
                && !deletion
            {
                let origin = change.origin.as_ref().map(|o| o.siret.as_str()).unwrap_or_default();
                return Err(Error::PermissionDenied(format!(
                    "signature: {dataset} {} of {origin} is relayed without its origin's signature",
                    change.key
                )));
            }
            datasets.push(dataset);
        }
        Ok(CheckedBatch { batch, datasets, verified })
    }

    /// Applies checked batches in order and commits them once, durably. Call under the write
    /// lock.
    fn commit_group(
        &self,
        session: &PushSession,
        batches: impl Iterator<Item = CheckedBatch>,
        now: i64,
    ) -> Result<()> {
        let batches: Vec<CheckedBatch> = batches.collect();
        let changes = batches.iter().map(|b| b.batch.changes.len()).sum();
        let mut group = Group {
            member: self.member_for(&session.peer)?,
            pending: HashMap::with_capacity(changes),
            logs: Vec::with_capacity(batches.len()),
            ..Group::default()
        };
        for checked in batches {
            self.stage_batch(session, &mut group, checked, now)?;
        }
        let Group { mut member, floors, pending, logs, stats, received, pins, newest_signers, bounds: _ } =
            group;
        let mut write = WriteBatch::new();
        for (key, floor) in floors {
            write.put(Tree::Floors, key, floor.encode_to_vec());
        }
        for (origin, network) in pins {
            write.put(Tree::Meta, super::provenance::origin_network_key(&origin), network.into_bytes());
        }
        for (origin, marker) in newest_signers {
            write.put(Tree::Meta, super::provenance::newest_signer_key(&origin), marker.encode_to_vec());
        }
        for (key, record) in pending {
            match record {
                Some(record) => write.put(Tree::Records, key, record.encode_to_vec()),
                None => write.delete(Tree::Records, key),
            }
        }
        let head = self.stage_feeds(&mut write, logs);
        self.flush_stats(&mut write, stats)?;
        self.stage_receipts(&mut write, &received, now)?;
        member.last_sync_at_ms = now;
        write.put(Tree::Members, member_key(&session.peer)?, member.encode_to_vec());
        // Durable before any batch of the group is acknowledged.
        self.store.commit(write)?;
        self.publish_feed(head);
        Ok(())
    }

    /// Stages one checked batch into `group` (last writer by origin version, the member's
    /// stats and counts, the feed). Fails only on a store error.
    fn stage_batch(
        &self,
        session: &PushSession,
        group: &mut Group,
        checked: CheckedBatch,
        now: i64,
    ) -> Result<()> {
        let Group { member, floors, pending, logs, stats, received, pins, newest_signers, bounds } = group;
        let mut log = Vec::with_capacity(checked.batch.changes.len());
        let (seq, head_seq) = (checked.batch.seq, checked.batch.head_seq);
        let member_structure = member.structure.clone();
        for ((mut change, dataset), verified) in
            checked.batch.changes.into_iter().zip(checked.datasets).zip(checked.verified)
        {
            let (provenance, signed_structure) = (verified.provenance, verified.structure);
            let signer_network = verified.network;
            // A node's records are its own; a relaying hub says, per change, whose they are.
            // Borrowed, not cloned per change: a catch-up applies tens of thousands of them
            // (issue 18), and the session's origin, structure and epoch are the same for each.
            let relayed = session.relay.then(|| {
                (change.origin.take().unwrap_or_default(), std::mem::take(&mut change.origin_epoch))
            });
            let (origin, structure, epoch, epoch_at_ms): (&str, Option<&Structure>, &[u8], i64) =
                match &relayed {
                    Some((origin, epoch)) => (
                        origin.siret.as_str(),
                        Some(origin),
                        epoch.as_slice(),
                        change.origin_epoch_created_at_ms,
                    ),
                    None => (
                        session.origin(),
                        member_structure.as_ref(),
                        session.epoch.as_slice(),
                        session.epoch_at_ms,
                    ),
                };
            if change.key.is_empty() {
                // A whole dataset withdrawn (no longer shared): drop every record of it; it logs
                // each record it drops, never an empty key.
                for (key, record) in self.records_of(origin, dataset)? {
                    let record_key = RecordKey::new(origin, dataset, key);
                    let rk = record_key.encode();
                    let current = pending.get(&rk).cloned().unwrap_or(Some(record));
                    if current.as_ref().is_some_and(HubRecord::is_live) {
                        member.records_held = member.records_held.saturating_sub(1);
                    }
                    log.push(record_key);
                    self.stage_stats(stats, origin, structure, current.as_ref(), None)?;
                    pending.insert(rk, None);
                }
                continue;
            }
            // Encoded once, for the pending map and the feed's log alike; the key moves into the
            // log (not cloned) and is read from there.
            let record_key = RecordKey::new(origin, dataset, std::mem::take(&mut change.key));
            let rk = record_key.encode();
            log.push(record_key);
            let key = log.last().map_or("", |k| k.key.as_str());
            let existing = match pending.get(&rk) {
                Some(staged) => staged.clone(),
                // Above every key the store holds for this origin's dataset: nothing to read.
                None if bounds.above(self, Tree::Records, origin, dataset, &rk)? => None,
                None => self.load_record(&rk)?,
            };
            let deletion = matches!(change.payload, Some(change::Payload::Tombstone(_)));
            if session.relay {
                let source = session.peer.id.id.clone();
                match provenance {
                    Provenance::Untrusted => continue,
                    Provenance::Unsigned if deletion => {
                        // A relayed withdrawal: this hub no longer relays the record; it goes when
                        // no hub does (the structure may still share it through another network).
                        // Only a hub that relays the record can withdraw it: a record a node pushed
                        // here has no sources, and an unsigned word from a relay never deletes it.
                        if let Some(mut old) = existing.filter(|old| old.sources.contains(&source)) {
                            old.sources.retain(|s| *s != source);
                            if old.sources.is_empty() {
                                if old.is_live() {
                                    member.records_held = member.records_held.saturating_sub(1);
                                }
                                self.stage_stats(stats, origin, structure, Some(&old), None)?;
                                pending.insert(rk, None);
                            } else {
                                pending.insert(rk, Some(old));
                            }
                        }
                        continue;
                    }
                    Provenance::Unsigned | Provenance::Signed => {}
                }
                // An origin is the structure *as certified by one network*: the first network
                // whose certificate signs for a SIRET here holds it, and another network's CA
                // minting a namesake certificate signs nothing for it (ignored, like any
                // certificate this hub does not trust for that origin).
                if provenance == Provenance::Signed
                    && let Some(network) = &signer_network
                {
                    let pinned = match pins.get(origin) {
                        Some(pinned) => Some(pinned.clone()),
                        None => self
                            .store
                            .get(Tree::Meta, &super::provenance::origin_network_key(origin))?
                            .map(|v| String::from_utf8_lossy(&v).into_owned()),
                    };
                    match pinned {
                        Some(pinned) if pinned != *network => {
                            tracing::warn!(
                                relay = %source, %origin, signed_by = %network, held_by = %pinned,
                                "ignoring a record signed for an origin by another network's CA"
                            );
                            continue;
                        }
                        Some(_) => {}
                        None => {
                            pins.insert(origin.to_string(), network.clone());
                        }
                    }
                }
                if provenance == Provenance::Signed
                    && let Some(not_before) = verified.signed_since
                {
                    let newest = match newest_signers.get(origin) {
                        Some(newest) => Some(newest.clone()),
                        None => self.newest_signer(origin)?,
                    };
                    match check_signer(newest.as_ref(), not_before, epoch_at_ms, epoch, change.version) {
                        SignerCheck::Stale => {
                            tracing::warn!(
                                relay = %source, %origin, dataset = %dataset, key = %key,
                                "ignoring a record an older certificate signed above its successor's records"
                            );
                            continue;
                        }
                        SignerCheck::Accept(Some(marker)) => {
                            newest_signers.insert(origin.to_string(), marker);
                        }
                        SignerCheck::Accept(None) => {}
                    }
                }
                if provenance == Provenance::Signed {
                    // Signed: nothing at or below the floor comes back (a deletion's floor is final).
                    let floor = match floors.get(&rk) {
                        Some(floor) => Some(floor.clone()),
                        None if bounds.above(self, Tree::Floors, origin, dataset, &rk)? => {
                            existing.as_ref().map(HubRecord::floor)
                        }
                        None => self.floor_of(&rk)?.or_else(|| existing.as_ref().map(HubRecord::floor)),
                    };
                    let position = floor.as_ref().map(|f| f.cmp_position(epoch_at_ms, epoch, change.version));
                    let at_floor_deleted = floor.as_ref().is_some_and(|f| f.deleted);
                    match position {
                        Some(std::cmp::Ordering::Less) => {
                            // An older genuine copy (a lagging relay): it still carries the record.
                            if let Some(mut old) = existing
                                && old.is_live()
                                && !deletion
                                && !old.sources.contains(&source)
                            {
                                old.sources.push(source);
                                pending.insert(rk, Some(old));
                            }
                            continue;
                        }
                        Some(std::cmp::Ordering::Equal) if at_floor_deleted || deletion => continue,
                        Some(std::cmp::Ordering::Equal) => {}
                        _ => {
                            let floor = Floor {
                                epoch_at_ms,
                                epoch: epoch.to_vec(),
                                version: change.version,
                                deleted: deletion,
                            };
                            floors.insert(rk.clone(), floor);
                        }
                    }
                    if deletion {
                        // Deleted at the origin: gone whoever relays it.
                        if let Some(old) = existing {
                            if old.is_live() {
                                member.records_held = member.records_held.saturating_sub(1);
                            }
                            self.stage_stats(stats, origin, structure, Some(&old), None)?;
                            pending.insert(rk, None);
                        }
                        continue;
                    }
                }
            }
            let newer = match &existing {
                None => true,
                Some(old) if session.relay => {
                    (epoch_at_ms, epoch, change.version)
                        > (old.epoch_at_ms, old.epoch.as_slice(), old.version)
                }
                Some(old) if old.epoch != epoch => true,
                Some(old) => change.version > old.version,
            };
            if !newer {
                // Same or older: nothing changes but the confirmation stamp (and, relayed, who
                // relays it).
                if let Some(mut old) = existing {
                    let mut touched = false;
                    if old.version == change.version && old.session != session.id {
                        old.session = session.id;
                        touched = true;
                    }
                    if session.relay && !old.sources.contains(&session.peer.id.id) {
                        old.sources.push(session.peer.id.id.clone());
                        touched = true;
                    }
                    if touched {
                        pending.insert(rk, Some(old));
                    }
                }
                continue;
            }
            let was_live = existing.as_ref().is_some_and(HubRecord::is_live);
            let mut record = HubRecord {
                version: change.version,
                epoch: epoch.to_vec(),
                epoch_at_ms,
                session: session.id,
                received_at_ms: now,
                sources: existing.as_ref().map(|o| o.sources.clone()).unwrap_or_default(),
                signature: std::mem::take(&mut change.signature),
                certificate_fingerprint: std::mem::take(&mut change.certificate_fingerprint),
                origin: signed_structure,
                signature_verified: verified.checked,
                ..Default::default()
            };
            if session.relay && !record.sources.contains(&session.peer.id.id) {
                record.sources.push(session.peer.id.id.clone());
            }
            if let Some(change::Payload::Indicators(report)) = &change.payload {
                // Reporting periods: when this month's report arrived (see `hub/periods.rs`).
                received.push(super::periods::Received {
                    origin: origin.to_string(),
                    period: key.to_string(),
                    structure: structure.cloned(),
                    source: session.relay.then(|| session.peer.id.id.clone()),
                    changed: existing.as_ref().and_then(|o| o.indicators.as_ref()) != Some(report),
                });
            }
            record.set_payload(change.payload);
            match (was_live, record.is_live()) {
                (false, true) => member.records_held += 1,
                (true, false) => member.records_held = member.records_held.saturating_sub(1),
                _ => {}
            }
            self.stage_stats(stats, origin, structure, existing.as_ref(), Some(&mut record))?;
            pending.insert(rk, Some(record));
        }
        logs.push(log);
        if seq > member.last_acked_seq {
            member.last_acked_seq = seq;
        }
        member.head_seq = member.head_seq.max(head_seq);
        Ok(())
    }

    /// Ends a full resend: records of the dataset this session neither wrote nor confirmed are
    /// stale (the member no longer has them) and are removed.
    pub fn finish_snapshot(&self, session: &PushSession, dataset: &str) -> Result<usize> {
        let declared = Dataset::parse("dataset", dataset).ok().filter(|d| session.datasets.contains(d));
        let Some(dataset) = declared else {
            return Err(FieldError::new("dataset", dataset, "not declared when the session opened").into());
        };
        if session.relay {
            // Several hubs may relay one record: a relay's resend says nothing of the others'.
            return Ok(0);
        }
        let origin = session.origin().to_string();
        let _writer = self.write_lock();
        let mut member = self.member_for(&session.peer)?;
        let mut write = WriteBatch::new();
        let mut feed = Vec::new();
        let mut swept = 0;
        let mut stats = StatsDelta::default();
        let structure = member.structure.clone();
        for (key, record) in self.records_of(&origin, dataset)? {
            if record.session != session.id {
                self.stage_stats(&mut stats, &origin, structure.as_ref(), Some(&record), None)?;
                if record.is_live() {
                    member.records_held = member.records_held.saturating_sub(1);
                }
                let record_key = RecordKey::new(origin.clone(), dataset, key);
                write.delete(Tree::Records, record_key.encode());
                feed.push(record_key);
                swept += 1;
            }
        }
        if swept > 0 {
            tracing::info!(origin, %dataset, swept, "full resend complete: stale records removed");
        }
        // A full resend is also when the incremental count is made exact again.
        let mut live = 0;
        for name in Dataset::ALL {
            live += self
                .records_of(&origin, name)?
                .iter()
                .filter(|(key, r)| {
                    r.is_live() && !(name == dataset && r.session != session.id && !key.is_empty())
                })
                .count() as u64;
        }
        member.records_held = live;
        write.put(Tree::Members, member_key(&session.peer)?, member.encode_to_vec());
        let head = self.stage_feed(&mut write, feed);
        self.flush_stats(&mut write, stats)?;
        if swept > 0 {
            self.store.commit(write)?;
        } else {
            // Nothing removed: only the member's record count, made exact again, is written; it
            // is recounted at the next full resend if a crash loses it. No fsync for it.
            self.store.commit_relaxed(write)?;
        }
        self.publish_feed(head);
        Ok(swept)
    }

    /// A change must be for a dataset declared at open, and its routing keys must be the
    /// session's origin and this hub; its payload must be valid and match its dataset. Returns
    /// the dataset, parsed.
    fn check_change(&self, session: &PushSession, change: &Change) -> Result<Dataset> {
        let relayed_origin;
        let origin = if session.relay {
            let structure = change
                .origin
                .as_ref()
                .ok_or_else(|| FieldError::rule("origin", "a relayed change names its origin structure"))?;
            // What the relaying hub says of the origin is checked with the node's rules.
            validate::structure(structure)?;
            if change.key.is_empty() {
                return Err(FieldError::rule("key", "relays send one tombstone per record").into());
            }
            relayed_origin = structure.siret.clone();
            relayed_origin.as_str()
        } else {
            session.origin()
        };
        let withdrawal =
            change.key.is_empty() && matches!(change.payload, Some(change::Payload::Tombstone(_)));
        let dataset = change.dataset.parse::<Dataset>().ok();
        let dataset = match dataset {
            None if withdrawal => {
                return Err(FieldError::new("dataset", &change.dataset, "unknown dataset").into());
            }
            Some(d) if withdrawal || session.datasets.contains(&d) => d,
            _ => {
                return Err(FieldError::new(
                    "dataset",
                    &change.dataset,
                    "not declared when the session opened",
                )
                .into());
            }
        };
        match &change.payload {
            None => return Err(FieldError::rule("payload", "is required").into()),
            Some(change::Payload::Tombstone(t)) => {
                if t.origin_siret != origin {
                    return Err(super::datasets::impersonation(origin, &t.origin_siret));
                }
                if t.hub_id != self.config.id {
                    return Err(FieldError::new(
                        "hub_id",
                        &t.hub_id,
                        format!("this is hub {}", self.config.id),
                    )
                    .into());
                }
                if !withdrawal {
                    validate::record_key(dataset, "key", &change.key)?;
                }
            }
            Some(payload) => super::datasets::check(dataset, payload, change, origin)?,
        }
        Ok(dataset)
    }
}

#[cfg(test)]
impl PushSession {
    /// A relay session from a downstream hub, for tests of the apply path.
    pub(crate) fn for_tests_relay(hub_id: &str, id: u64) -> Self {
        let peer = Peer::certified(
            "coorace",
            passerelle_proto::identity::PeerId { role: Role::Hub, id: hub_id.into() },
            None,
        );
        Self {
            peer,
            epoch: vec![9; 16],
            epoch_at_ms: 0,
            datasets: Dataset::ALL.into_iter().filter(|d| d.is_relayed()).collect(),
            id,
            relay: true,
            structure: None,
            certificates: std::sync::Mutex::default(),
            unsigned_relays: true,
        }
    }

    /// A session as `open_push` would make it, for tests of the apply path.
    pub(crate) fn for_tests(peer: Peer, epoch: Vec<u8>, datasets: &[Dataset], id: u64) -> Self {
        Self {
            peer,
            epoch,
            epoch_at_ms: 0,
            datasets: datasets.iter().copied().collect(),
            id,
            relay: false,
            structure: None,
            certificates: std::sync::Mutex::default(),
            unsigned_relays: false,
        }
    }
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Hub {
    /// Deletes `count` live records of an origin's dataset without telling anyone, to simulate a
    /// damaged or partially restored store. For anti-entropy tests only.
    #[doc(hidden)]
    pub fn damage_for_tests(&self, origin: &str, dataset: Dataset, count: usize) -> Result<()> {
        let mut batch = WriteBatch::new();
        for (key, _) in self.records_of(origin, dataset)?.into_iter().filter(|(_, r)| r.is_live()).take(count)
        {
            batch.delete(Tree::Records, RecordKey::new(origin, dataset, key).encode());
        }
        Ok(self.store.commit(batch)?)
    }
}

#[cfg(test)]
#[path = "ingest_tests.rs"]
mod tests;
