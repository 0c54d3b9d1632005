//! The network view a hub serves to its members: every open need of every member, with the
//! owning structure's name, as a checkpointed change feed.
//!
//! Each applied batch appends one feed entry listing the `origin/dataset/key` it changed, in the
//! same commit (the view reads the needs; an upstream relay reads needs and indicators); a subscriber reads the feed after its position and gets each need's *current* state (open: an
//! upsert; closed, deleted or withdrawn: a removal). A subscriber from another hub epoch, or ahead
//! of the feed, gets a reset and the full view.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use passerelle_proto::datasets::Dataset;
use passerelle_proto::identity::Role;
use passerelle_proto::v1::{Member, MemberState, NeedStatus, NetworkNeed, Structure, ViewBatch};

use super::Hub;
use super::ingest::HubRecord;
use crate::error::Result;
use crate::store::keys::{FeedEntry, MemberKey, RecordKey};
use crate::store::{Tree, WriteBatch, scan_prefix};

/// Meta key of the feed's last position.
pub(super) const FEED_HEAD: &[u8] = b"feed_head";

/// Most changed needs one `ViewBatch` covers (feed entries are read whole until this is reached,
/// so a page may exceed it by one entry's needs less one). Small, like [`VIEW_PAGE`]: a hub holds
/// what it has not yet written to each subscriber, and with thousands subscribed the size of a
/// message is what bounds the hub's memory.
pub const FEED_PAGE: usize = 32;
/// Most needs in one page of a full view. A need is about 200 bytes, so a page (about 6.5 kB)
/// is one HTTP/2 message on its own (`passerelle_proto::codec::ENCODE_YIELD_BYTES`): each
/// subscriber holds one page being written and one buffered. With 128 needs a page was 25 kB,
/// grown into every stream's encode buffer.
pub const VIEW_PAGE: usize = 32;
/// Feed positions whose view changes are kept in memory (a few needs each).
const MAX_CACHED_POSITIONS: usize = 8192;
/// How far behind the feed's head a cached full view may be and still be served (the subscriber
/// then catches up through the cached changes).
const FULL_VIEW_STALENESS: u64 = 1024;

/// One need changed at a feed position, as every viewer but its owner sees it.
#[derive(Debug)]
struct ViewChange {
    /// The owner's SIRET (its own needs are not in its view).
    origin: String,
    /// `origin/need_id`, as removals name it.
    id: String,
    /// The need now, or `None` if it left the view (closed, deleted, withdrawn).
    need: Option<NetworkNeed>,
}

/// What subscribers share (see [`Hub::view_update`]).
#[derive(Debug, Default)]
pub(super) struct ViewCache {
    /// Recent feed positions' changes.
    deltas: BTreeMap<u64, Arc<[ViewChange]>>,
    /// The last full view read, and its position.
    full: Option<(u64, Arc<[NetworkNeed]>)>,
}

/// What a subscriber is sent next.
#[derive(Debug)]
pub enum ViewUpdate {
    /// The changes after its position.
    Batch(ViewBatch),
    /// A full view (it was from another epoch, or ahead of the feed).
    Full(FullView),
}

/// A full view for one viewer, paged lazily so a slow subscriber holds one page, not the view.
#[derive(Debug)]
pub struct FullView {
    epoch: Vec<u8>,
    position: u64,
    needs: Arc<[NetworkNeed]>,
    viewer: String,
}

impl FullView {
    /// The page starting at index `from` of the shared view, and where the next one starts
    /// (`None`: this was the last). Only the first page says `reset`; only the last carries the
    /// epoch and position, so a subscriber cut off mid-way gets a new reset.
    pub fn page(&self, from: usize) -> (ViewBatch, Option<usize>) {
        let mut upserts = Vec::new();
        let mut at = from;
        while at < self.needs.len() && upserts.len() < VIEW_PAGE {
            let need = &self.needs[at];
            if need.need.as_ref().is_some_and(|n| n.origin_siret != self.viewer) {
                upserts.push(need.clone());
            }
            at += 1;
        }
        let last = at >= self.needs.len();
        let batch = ViewBatch {
            hub_epoch: if last { self.epoch.clone() } else { Vec::new() },
            reset: from == 0,
            upserts,
            removals: Vec::new(),
            position: if last { self.position } else { 0 },
        };
        (batch, (!last).then_some(at))
    }
}

/// A record as the view shows it, if it is an open need.
fn view_need(record: HubRecord, names: &HashMap<String, Structure>) -> Option<NetworkNeed> {
    let need = record.need.filter(|n| !record.deleted && n.status == NeedStatus::Open as i32)?;
    let structure = names.get(&need.origin_siret).cloned().unwrap_or_default();
    Some(NetworkNeed { need: Some(need), structure_name: structure.name, structure_kind: structure.kind })
}

impl Hub {
    /// Appends one feed entry listing `keys` to `batch` (one per applied batch, not per change);
    /// returns the new head to publish after the commit.
    pub(super) fn stage_feed(&self, batch: &mut WriteBatch, keys: Vec<RecordKey>) -> Option<u64> {
        if keys.is_empty() {
            return None;
        }
        let head = self.feed_head() + 1;
        batch.put(Tree::Feed, FeedEntry::key(head), FeedEntry::encode_records(&keys));
        batch.put(Tree::Meta, FEED_HEAD, head.to_be_bytes());
        Some(head)
    }

    /// [`Hub::stage_feed`] for several batches committed together: one entry each, at
    /// consecutive positions (an entry per group would grow past sled's inline limit, 128 KiB,
    /// and be written as a blob file with its own fsync). Returns the new head.
    pub(super) fn stage_feeds(&self, batch: &mut WriteBatch, entries: Vec<Vec<RecordKey>>) -> Option<u64> {
        let mut head = self.feed_head();
        let mut staged = None;
        for keys in entries.into_iter().filter(|keys| !keys.is_empty()) {
            head += 1;
            batch.put(Tree::Feed, FeedEntry::key(head), FeedEntry::encode_records(&keys));
            staged = Some(head);
        }
        if let Some(head) = staged {
            batch.put(Tree::Meta, FEED_HEAD, head.to_be_bytes());
        }
        staged
    }

    /// Wakes subscribers after a commit that staged feed entries.
    pub(super) fn publish_feed(&self, head: Option<u64>) {
        if let Some(head) = head {
            self.feed.send_replace(head);
        }
    }

    /// The feed's last position.
    pub fn feed_head(&self) -> u64 {
        *self.feed.borrow()
    }

    /// A receiver that wakes when the view changes.
    pub fn watch_feed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.feed.subscribe()
    }

    /// The next changes of the view for a subscriber at `after` in epoch `hub_epoch`: the
    /// changes after its position (at most about [`FEED_PAGE`] needs), or, from another hub
    /// epoch or ahead of the feed, a full view to page through ([`FullView::page`]).
    ///
    /// Why a shared cache ([`ViewCache`]): every subscriber reads the same feed entries and
    /// the same full view. With thousands of members subscribed, computing them per subscriber
    /// (a store read and a decode per need per viewer, a scan of every record per reset) made
    /// the hub's work grow with members × changes; now each position's changes and each full
    /// view are computed once and each viewer only filters out its own needs.
    pub fn view_update(&self, hub_epoch: &[u8], after: u64, viewer: &str) -> Result<ViewUpdate> {
        let head = self.feed_head();
        let epoch = self.identity.epoch.to_vec();
        if hub_epoch != epoch.as_slice() || after > head {
            let (position, needs) = self.full_view(head)?;
            return Ok(ViewUpdate::Full(FullView { epoch, position, needs, viewer: viewer.to_string() }));
        }
        let mut changes = Vec::new();
        let (mut position, mut count) = (after, 0);
        while position < head && count < FEED_PAGE {
            position += 1;
            let delta = if self.feed_is_only_of(position, viewer)? {
                // Nothing the viewer sees (its own catch-up, typically): no record read.
                Arc::from(Vec::new())
            } else {
                self.view_delta(position)?
            };
            count += delta.len();
            changes.push(delta);
        }
        // The latest state of each need wins; a need changed twice is sent once.
        let mut latest: HashMap<&str, &ViewChange> = HashMap::new();
        let mut order = Vec::new();
        for change in changes.iter().flat_map(|d| d.iter()) {
            if change.origin == viewer {
                continue;
            }
            if latest.insert(change.id.as_str(), change).is_none() {
                order.push(change.id.as_str());
            }
        }
        let (mut upserts, mut removals) = (Vec::new(), Vec::new());
        for id in order {
            match latest.get(id).and_then(|c| c.need.as_ref()) {
                Some(need) => upserts.push(need.clone()),
                None => removals.push(id.to_string()),
            }
        }
        Ok(ViewUpdate::Batch(ViewBatch { hub_epoch: epoch, reset: false, upserts, removals, position }))
    }

    /// The next changes of the view as batches, a full view paged (tests; the `Subscribe`
    /// stream pages lazily through [`Hub::view_update`]).
    pub fn view_batches(&self, hub_epoch: &[u8], after: u64, viewer: &str) -> Result<Vec<ViewBatch>> {
        Ok(match self.view_update(hub_epoch, after, viewer)? {
            ViewUpdate::Batch(batch) => vec![batch],
            ViewUpdate::Full(full) => {
                let mut pages = Vec::new();
                let mut from = Some(0);
                while let Some(at) = from {
                    let (page, next) = full.page(at);
                    pages.push(page);
                    from = next;
                }
                pages
            }
        })
    }

    /// Whether every need of the feed entry at `position` is `viewer`'s own (what it never sees
    /// in its view), read from the entry's keys without the records: a member catching up reads
    /// its own view while it pushes, and would otherwise pay a read of each record it sent. The
    /// shared cache is consulted first; an entry it holds is used from there.
    fn feed_is_only_of(&self, position: u64, viewer: &str) -> Result<bool> {
        if self.view_cache().deltas.contains_key(&position) {
            return Ok(false);
        }
        let key = FeedEntry::key(position);
        let Some(raw) = self.store.get(Tree::Feed, &key)? else { return Ok(false) };
        let Some(entry) = FeedEntry::decode(&key, &raw) else { return Ok(false) };
        Ok(entry.records.iter().all(|r| r.dataset != Dataset::Needs || r.origin == viewer))
    }

    /// The view's changes at feed position `position`, computed once and shared.
    fn view_delta(&self, position: u64) -> Result<Arc<[ViewChange]>> {
        if let Some(delta) = self.view_cache().deltas.get(&position) {
            return Ok(delta.clone());
        }
        let mut changes = Vec::new();
        if let Some(raw) = self.store.get(Tree::Feed, &FeedEntry::key(position))?
            && let Some(entry) = FeedEntry::decode(&FeedEntry::key(position), &raw)
        {
            let mut seen = HashSet::new();
            let mut names: HashMap<String, Structure> = HashMap::new();
            for record_key in entry.records {
                // The view is about needs.
                if record_key.dataset != Dataset::Needs || !seen.insert(record_key.clone()) {
                    continue;
                }
                let id = format!("{}/{}", record_key.origin, record_key.key);
                let record = match self.store.get(Tree::Records, &record_key.encode())? {
                    Some(raw) => <HubRecord as prost::Message>::decode(raw.as_slice()).ok(),
                    None => None,
                };
                if !names.contains_key(&record_key.origin) {
                    let structure = self.view_structure_of(&record_key.origin)?.unwrap_or_default();
                    names.insert(record_key.origin.clone(), structure);
                }
                let need = record.and_then(|r| view_need(r, &names));
                changes.push(ViewChange { origin: record_key.origin, id, need });
            }
        }
        let delta: Arc<[ViewChange]> = changes.into();
        let mut cache = self.view_cache();
        cache.deltas.insert(position, delta.clone());
        while cache.deltas.len() > MAX_CACHED_POSITIONS {
            cache.deltas.pop_first();
        }
        Ok(delta)
    }

    /// A full view (every open need, the viewer's own included) and the feed position it is
    /// as of: the cached one if it is recent, so a subscriber catches up from it with shared
    /// changes, else read from the store once for everyone.
    fn full_view(&self, head: u64) -> Result<(u64, Arc<[NetworkNeed]>)> {
        if let Some((position, needs)) = &self.view_cache().full
            && *position <= head
            && head - *position <= FULL_VIEW_STALENESS
        {
            return Ok((*position, needs.clone()));
        }
        let names = self.structures()?;
        let mut needs = Vec::new();
        for (_, raw) in self.store.scan(Tree::Records, &[], None, usize::MAX)? {
            if let Ok(record) = <HubRecord as prost::Message>::decode(raw.as_slice())
                && let Some(need) = view_need(record, &names)
            {
                needs.push(need);
            }
        }
        let needs: Arc<[NetworkNeed]> = needs.into();
        self.view_cache().full = Some((head, needs.clone()));
        Ok((head, needs))
    }

    fn view_cache(&self) -> std::sync::MutexGuard<'_, ViewCache> {
        self.view.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A node member's public identity (an accepted identity's first, when several networks
    /// know the SIRET).
    fn view_structure_of(&self, siret: &str) -> Result<Option<Structure>> {
        let prefix = MemberKey::prefix(Role::Node, siret);
        let mut found = None;
        for (_, raw) in scan_prefix(self.store.as_ref(), Tree::Members, &prefix)? {
            let Ok(member) = <Member as prost::Message>::decode(raw.as_slice()) else { continue };
            let accepted = member.state == MemberState::Accepted as i32;
            if let Some(structure) = member.structure
                && (accepted || found.is_none())
            {
                found = Some(structure);
                if accepted {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// Each node member's public identity, by SIRET.
    fn structures(&self) -> Result<HashMap<String, Structure>> {
        Ok(self
            .list_members()?
            .into_iter()
            .filter(|m| m.role == Role::Node.as_str())
            .filter_map(|m| m.structure.map(|s| (m.id, s)))
            .collect())
    }
}
