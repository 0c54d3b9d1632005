//! A network hub's own state: its identity and its members.
//!
//! Membership is the hub's decision, recorded in its store. A peer with a valid certificate that
//! is not yet a member is recorded as *pending* at its first contact and refused until an operator
//! accepts it (or the hub's config says `auto_accept = true`). Invariant: a member's key is the
//! identity of its certificate — its role and id, and the network of the trust anchor that issued
//! it (`hub/fas-pdl/fas`) — never something the peer wrote. The same id from another network's CA
//! is another member, pending until an operator accepts it, and at most one identity per role and
//! id is accepted (records are keyed by id): see `identities.rs`.

pub(crate) mod daily;
mod datasets;
mod gui_users;
mod identities;
pub mod ingest;
pub mod introductions;
pub mod periods;
pub mod profiles_view;
mod provenance;
pub mod relay;
pub mod revisions;
pub mod stats;
pub mod tombstones;
pub mod view;

use std::sync::{Arc, Mutex, MutexGuard};

use crate::store::keys::MemberKey;
use passerelle_proto::date::now_unix_ms;
use passerelle_proto::identity::Role;
use passerelle_proto::v1::{Member, MemberState, Structure};
use passerelle_proto::validate::{self, FieldError};
use prost::Message;

use crate::config::HubConfig;
use crate::error::{Error, Result};
use crate::store::{self, Identity, Store, StoreError, Tree, WriteBatch};
use crate::tls::{DenyList, Peer};

/// A hub and its members.
pub struct Hub {
    store: Arc<dyn Store>,
    config: HubConfig,
    identity: Identity,
    denied: DenyList,
    writer: Mutex<()>,
    /// The view feed's head, watched by subscribers.
    feed: tokio::sync::watch::Sender<u64>,
    /// Bumped whenever who may act here can shrink (revocation list reloaded, a member removed),
    /// so open streams re-check their peer at once instead of at their next message.
    access: tokio::sync::watch::Sender<u64>,
    /// What each relay to an upstream hub has done since start, for the metrics endpoint.
    relays: Mutex<std::collections::BTreeMap<String, Arc<relay::RelayLink>>>,
    /// Checks origin certificates (built at first use: see `provenance.rs`).
    origins: std::sync::OnceLock<crate::tls::origin::OriginVerifier>,
    /// What view subscribers share: each feed position's changes and a full view, computed once.
    view: Mutex<view::ViewCache>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("id", &self.config.id).finish_non_exhaustive()
    }
}

/// The store key of `peer`'s membership: its role, id and issuing network.
fn member_key(peer: &Peer) -> Result<Vec<u8>> {
    let network = peer.network.as_deref().ok_or_else(|| {
        Error::PermissionDenied(format!("{} has no certificate issued by a trusted network", peer.id))
    })?;
    Ok(MemberKey::new(peer.id.role, &peer.id.id, network).encode())
}

/// The store key of a member record.
fn key_of(member: &Member) -> Vec<u8> {
    let role = Role::parse(&member.role).unwrap_or(Role::Node);
    MemberKey::new(role, &member.id, &member.network).encode()
}

impl Hub {
    /// Opens the hub's store. `denied` is the revocation list shared with the TLS verifier.
    pub fn open(data_dir: &std::path::Path, config: HubConfig, denied: DenyList) -> Result<Self> {
        let (store, identity) = store::open_store(data_dir, &format!("hub:{}", config.id))?;
        set_denied(&denied, &config.denied_serials);
        let head = match store.get(Tree::Meta, view::FEED_HEAD)? {
            Some(raw) => u64::from_be_bytes(
                raw.as_slice()
                    .try_into()
                    .map_err(|_| Error::Store(StoreError("corrupt feed head".into())))?,
            ),
            None => 0,
        };
        let (feed, _) = tokio::sync::watch::channel(head);
        let (access, _) = tokio::sync::watch::channel(0);
        let hub = Self {
            store,
            config,
            identity,
            denied,
            writer: Mutex::new(()),
            feed,
            access,
            relays: Mutex::default(),
            origins: std::sync::OnceLock::new(),
            view: Mutex::default(),
        };
        hub.uncount_profiles_without_statistics()?;
        hub.rebuild_rollups_once()?;
        hub.rebuild_summaries_once()?;
        hub.bind_members_to_networks()?;
        Ok(hub)
    }

    /// A hub `coorace-pdl` of région 52 accepting members as they come, without TLS files, for
    /// tests of the store side.
    #[cfg(test)]
    pub(crate) fn for_tests(dir: &std::path::Path) -> Self {
        let config = HubConfig {
            id: "coorace-pdl".into(),
            network: "coorace".into(),
            region: "52".into(),
            listen: "127.0.0.1:0".parse().expect("addr"),
            auto_accept: true,
            denied_serials: Vec::new(),
            k_anonymity: 5,
            min_persons: 5,
            tombstone_retention: std::time::Duration::from_secs(30 * 24 * 3600),
            introduction_ttl: std::time::Duration::from_secs(30 * 24 * 3600),
            introduction_retention: std::time::Duration::from_secs(30 * 24 * 3600),
            introductions_per_day: 20,
            upstreams: Vec::new(),
            periods: periods::PeriodsConfig::default(),
            protection_percent: crate::config::DEFAULT_PROTECTION_PERCENT,
            tls: crate::tls::ServerTlsFiles {
                cert: std::path::PathBuf::new(),
                key: std::path::PathBuf::new(),
                trust: vec![crate::tls::TrustAnchor {
                    ca: std::path::PathBuf::new(),
                    network: "coorace".into(),
                    roles: Role::ALL.to_vec(),
                }],
            },
        };
        Self::open(dir, config, DenyList::default()).expect("open hub")
    }

    /// The hub's settings.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// The store's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The revocation list in force.
    pub fn denied_serials(&self) -> Vec<String> {
        let mut serials: Vec<String> =
            self.denied.read().map(|d| d.iter().cloned().collect()).unwrap_or_default();
        serials.sort();
        serials
    }

    fn write_lock(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn load(&self, key: &[u8]) -> Result<Option<Member>> {
        self.store
            .get(Tree::Members, key)?
            .map(|raw| {
                Member::decode(raw.as_slice())
                    .map_err(|e| Error::Store(StoreError(format!("corrupt member: {e}"))))
            })
            .transpose()
    }

    /// Writes a member record without waiting for the disk. Why relaxed: what `admit` records
    /// (last visit, certificate serial, structure as introduced, a first contact — pending, or
    /// accepted by `auto_accept`) is what the peer's next `Hello` records again, so a crash can
    /// only make it lag; an operator's decisions (`accept_member`, `remove_member`) and every
    /// batch (which writes the member record with its records) are durable commits. An fsync per
    /// `Hello` under the write lock was what serialised thousands of nodes arriving at once.
    fn save_relaxed(&self, member: &Member) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.put(Tree::Members, key_of(member), member.encode_to_vec());
        Ok(self.store.commit_relaxed(batch)?)
    }

    /// Checks that `peer` may sync with this hub, recording its visit. A node must introduce
    /// itself with its own SIRET; an unknown peer becomes pending; a pending one is refused.
    pub fn admit(&self, peer: &Peer, structure: Option<Structure>) -> Result<Member> {
        if peer.id.role == Role::Node {
            match &structure {
                Some(s) if s.siret != peer.id.id => {
                    return Err(Error::PermissionDenied(format!(
                        "node certificate for SIRET {} cannot act as SIRET {}",
                        peer.id.id, s.siret
                    )));
                }
                Some(s) => validate::structure(s)?,
                None => {
                    return Err(FieldError::rule("structure", "a node must introduce its structure").into());
                }
            }
        }
        let key = member_key(peer)?;
        let network = peer.network.clone().unwrap_or_default();
        let now = now_unix_ms();
        let _writer = self.write_lock();
        let mut member = match self.load(&key)? {
            Some(member) => member,
            None => {
                // Never on the strength of a namesake: the same id from another network's CA is
                // another identity, which only an operator can accept.
                let namesakes = self.namesakes(peer.id.role, &peer.id.id)?;
                let accepted = self.config.auto_accept && namesakes.is_empty();
                if namesakes.is_empty() {
                    tracing::info!(peer = %peer.id, %network, auto_accepted = accepted, "new member");
                } else {
                    let others: Vec<&str> = namesakes.iter().map(|m| m.network.as_str()).collect();
                    tracing::warn!(peer = %peer.id, %network, known_from = ?others, "a certificate of another network names a known member: pending");
                }
                Member {
                    role: peer.id.role.to_string(),
                    id: peer.id.id.clone(),
                    network,
                    state: if accepted { MemberState::Accepted } else { MemberState::Pending } as i32,
                    first_seen_at_ms: now,
                    accepted_at_ms: if accepted { now } else { 0 },
                    ..Default::default()
                }
            }
        };
        member.last_seen_at_ms = now;
        member.certificate_serial = peer.serial.clone().unwrap_or_default();
        if structure.is_some() {
            member.structure = structure;
        }
        self.save_relaxed(&member)?;
        if member.state != MemberState::Accepted as i32 {
            return Err(self.pending(peer));
        }
        Ok(member)
    }

    /// The refusal of a peer that is not an accepted member.
    fn pending(&self, peer: &Peer) -> Error {
        let what = if peer.id.role == Role::Node { "structure" } else { "hub" };
        Error::PermissionDenied(format!(
            "{what} {} is pending approval on hub {} (certificate of network {})",
            peer.id.id,
            self.config.id,
            peer.network.as_deref().unwrap_or("none")
        ))
    }

    /// Checks that `peer` is an accepted member (for calls that do not introduce it again).
    pub fn require_member(&self, peer: &Peer) -> Result<Member> {
        let member = self.load(&member_key(peer)?)?;
        match member {
            Some(m) if m.state == MemberState::Accepted as i32 => Ok(m),
            _ => Err(self.pending(peer)),
        }
    }

    /// Checks that `peer` may still act here: its certificate serial is not revoked and it is an
    /// accepted member. The authorization layer checks this when a call starts; long streams
    /// (Push, Subscribe) check it again on every message and whenever [`Hub::watch_access`]
    /// fires, so a revocation or a removal ends what is already open.
    pub fn check_access(&self, peer: &Peer) -> Result<Member> {
        if let Some(serial) = &peer.serial {
            let revoked = self.denied.read().map(|d| d.contains(serial)).unwrap_or(true);
            if revoked {
                return Err(Error::PermissionDenied(format!(
                    "certificate serial {serial} of {} is revoked",
                    peer.id
                )));
            }
        }
        self.require_member(peer)
    }

    /// Fires when access may have shrunk: see [`Hub::check_access`].
    pub fn watch_access(&self) -> tokio::sync::watch::Receiver<u64> {
        self.access.subscribe()
    }

    fn access_changed(&self) {
        self.access.send_modify(|n| *n += 1);
    }

    /// Every member, by role, id, then network.
    pub fn list_members(&self) -> Result<Vec<Member>> {
        self.store
            .scan(Tree::Members, &[], None, usize::MAX)?
            .into_iter()
            .map(|(_, raw)| {
                Member::decode(raw.as_slice())
                    .map_err(|e| Error::Store(StoreError(format!("corrupt member: {e}"))))
            })
            .collect()
    }

    /// Accepts a member by SIRET (a node) or hub id, and the network whose CA vouches for it
    /// (needed only when the id is known here from several networks, or unknown and several
    /// anchors may vouch for its role); one never seen is pre-accepted. Records are keyed by id,
    /// so an identity of another network with the same id that was accepted goes back to pending
    /// (and its open streams end): the operator has said which CA speaks for that id.
    pub fn accept_member(&self, id: &str, network: Option<&str>) -> Result<Member> {
        let role = member_role(id)?;
        let now = now_unix_ms();
        let _writer = self.write_lock();
        let network = self.resolve_network(role, id, network, true)?;
        let key = MemberKey::new(role, id, &network).encode();
        let mut member = self.load(&key)?.unwrap_or_else(|| Member {
            role: role.to_string(),
            id: id.to_string(),
            network: network.clone(),
            first_seen_at_ms: 0,
            ..Default::default()
        });
        if member.state != MemberState::Accepted as i32 {
            let mut batch = WriteBatch::new();
            for mut other in self.namesakes(role, id)? {
                if other.network != network && other.state == MemberState::Accepted as i32 {
                    tracing::warn!(role = %role, id, from = %other.network, to = %network, "accepting another network's identity: the previous one is pending again");
                    other.state = MemberState::Pending as i32;
                    other.accepted_at_ms = 0;
                    batch.put(Tree::Members, key_of(&other), other.encode_to_vec());
                }
            }
            member.state = MemberState::Accepted as i32;
            member.accepted_at_ms = now;
            batch.put(Tree::Members, key.clone(), member.encode_to_vec());
            self.store.commit(batch)?;
            self.access_changed();
            tracing::info!(role = %role, id, %network, "member accepted");
        }
        Ok(member)
    }

    /// Removes a member (named by id, and by network when several networks' identities share the
    /// id). An accepted one goes with everything the hub holds of it — records, tombstones,
    /// statistics contributions, view entries — in one commit; a pending one held nothing (records
    /// are its accepted namesake's, if any) and only its membership goes. Its next contact makes it
    /// pending again; once accepted, its store epoch is unknown here, so it resends everything it
    /// still shares.
    pub fn remove_member(&self, id: &str, network: Option<&str>) -> Result<Member> {
        let role = member_role(id)?;
        let _writer = self.write_lock();
        let network = self.resolve_network(role, id, network, false)?;
        let key = MemberKey::new(role, id, &network).encode();
        let member =
            self.load(&key)?.ok_or_else(|| Error::NotFound { what: "member", id: id.to_string() })?;
        let mut batch = WriteBatch::new();
        let mut stats = stats::StatsDelta::default();
        let mut feed = Vec::new();
        let mut purged = 0;
        if member.state == MemberState::Accepted as i32 {
            for dataset in passerelle_proto::datasets::Dataset::ALL {
                for (key, record) in self.records_of(id, dataset)? {
                    self.stage_stats(&mut stats, id, None, Some(&record), None)?;
                    let record_key = crate::store::keys::RecordKey::new(id, dataset, key);
                    batch.delete(Tree::Records, record_key.encode());
                    feed.push(record_key);
                    purged += 1;
                }
            }
            if role == Role::Hub {
                purged += self.stage_relay_purge(id, &mut batch, &mut stats, &mut feed)?;
            }
            if role == Role::Node && !self.accepted_elsewhere(role, id, &network)? {
                purged += self.stage_introductions_purge(id, &mut batch)?;
            }
        }
        batch.delete(Tree::Members, key);
        let head = self.stage_feed(&mut batch, feed);
        self.flush_stats(&mut batch, stats)?;
        self.store.commit(batch)?;
        self.publish_feed(head);
        self.access_changed();
        tracing::info!(role = %role, id, %network, purged, "member removed with its records");
        Ok(member)
    }

    /// Whether `id` stays an accepted member here under another network than `network`.
    fn accepted_elsewhere(&self, role: Role, id: &str, network: &str) -> Result<bool> {
        Ok(self.list_members()?.into_iter().any(|m| {
            m.role == role.to_string()
                && m.id == id
                && m.network != network
                && m.state == MemberState::Accepted as i32
        }))
    }

    /// Removes relaying hub `hub_id` from the sources of every record it relayed; a record no
    /// other hub relays goes, with its statistics (the same rule as a relayed tombstone). A
    /// removed network hub leaves nothing here that only it vouched for. Returns how many records
    /// went. Reads every record: removal is a rare operator action.
    fn stage_relay_purge(
        &self,
        hub_id: &str,
        batch: &mut WriteBatch,
        stats: &mut stats::StatsDelta,
        feed: &mut Vec<crate::store::keys::RecordKey>,
    ) -> Result<usize> {
        let mut gone = 0;
        for (raw_key, raw) in self.store.scan(Tree::Records, &[], None, usize::MAX)? {
            let mut record = ingest::HubRecord::decode(raw.as_slice())
                .map_err(|e| Error::Store(StoreError(format!("corrupt record: {e}"))))?;
            if !record.sources.iter().any(|s| s == hub_id) {
                continue;
            }
            let Some(key) = crate::store::keys::RecordKey::decode(&raw_key) else { continue };
            record.sources.retain(|s| s != hub_id);
            if record.sources.is_empty() {
                self.stage_stats(stats, &key.origin, None, Some(&record), None)?;
                batch.delete(Tree::Records, raw_key);
                feed.push(key);
                gone += 1;
            } else {
                batch.put(Tree::Records, raw_key, record.encode_to_vec());
            }
        }
        Ok(gone)
    }

    /// Applies the revocation list of `fresh`, the hub's settings as the config file says them
    /// now (read and validated by the caller, see [`HubConfig::reread`]). Settings for another hub
    /// change nothing.
    pub fn reload(&self, fresh: &HubConfig) -> Result<Vec<String>> {
        if fresh.id != self.config.id {
            return Err(Error::FailedPrecondition(format!("reload refused: hub.id changed to {}", fresh.id)));
        }
        set_denied(&self.denied, &fresh.denied_serials);
        let serials = self.denied_serials();
        self.access_changed();
        tracing::info!(denied = serials.len(), "revocation list reloaded");
        Ok(serials)
    }

    /// Makes everything durable; called at shutdown.
    pub fn sync(&self) -> Result<()> {
        Ok(self.store.sync()?)
    }
}

fn set_denied(denied: &DenyList, serials: &[String]) {
    if let Ok(mut set) = denied.write() {
        *set = serials.iter().cloned().collect();
    }
}

/// A member id is a SIRET (a node) or a hub id.
fn member_role(id: &str) -> Result<Role> {
    if id.bytes().all(|b| b.is_ascii_digit()) {
        validate::siret("id", id)?;
        Ok(Role::Node)
    } else {
        validate::hub_id("id", id)?;
        Ok(Role::Hub)
    }
}
