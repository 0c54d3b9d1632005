//! The network view a hub serves to its members: every open need of every member, with the
//! owning structure's name, as a checkpointed change feed.
//!
//! Each applied batch appends one feed entry listing the `origin/dataset/key` it changed, in the
//! same commit (the view reads the needs; an upstream relay reads needs and indicators); a subscriber reads the feed after its position and gets each need's *current* state (open: an
//! upsert; closed, deleted or withdrawn: a removal). A subscriber from another hub epoch, or ahead
//! of the feed, gets a reset and the full view.

use std::collections::{HashMap, HashSet};

use passerelle_proto::datasets::Dataset;
use passerelle_proto::identity::Role;
use passerelle_proto::v1::{NeedStatus, NetworkNeed, Structure, ViewBatch};

use super::Hub;
use super::ingest::HubRecord;
use crate::error::Result;
use crate::store::keys::{FeedEntry, RecordKey};
use crate::store::{Tree, WriteBatch};

/// Meta key of the feed's last position.
pub(super) const FEED_HEAD: &[u8] = b"feed_head";

/// Most changed needs one `ViewBatch` covers (feed entries are read whole until this is reached).
const FEED_PAGE: usize = 2000;
/// Most needs in one page of a full view (a need is ~200 bytes: pages stay far below 4 MiB).
const VIEW_PAGE: usize = 2000;

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

    /// The next changes of the view for a subscriber at `after` in epoch `hub_epoch`, as one or
    /// more batches. A reset (full view) is paged: only the first page says `reset`, and only the
    /// last carries the epoch and position, so a subscriber cut off mid-way gets a new reset.
    pub fn view_batches(&self, hub_epoch: &[u8], after: u64, viewer: &str) -> Result<Vec<ViewBatch>> {
        let batch = self.view_batch(hub_epoch, after, viewer)?;
        if !batch.reset || batch.upserts.len() <= VIEW_PAGE {
            return Ok(vec![batch]);
        }
        let ViewBatch { hub_epoch, upserts, position, .. } = batch;
        let pages: Vec<Vec<NetworkNeed>> = upserts.chunks(VIEW_PAGE).map(<[NetworkNeed]>::to_vec).collect();
        let last = pages.len() - 1;
        Ok(pages
            .into_iter()
            .enumerate()
            .map(|(i, upserts)| ViewBatch {
                hub_epoch: if i == last { hub_epoch.clone() } else { Vec::new() },
                reset: i == 0,
                upserts,
                removals: Vec::new(),
                position: if i == last { position } else { 0 },
            })
            .collect())
    }

    /// The next changes of the view, unpaged (see [`Hub::view_batches`]).
    /// A member's own needs are not part of its view: it has them.
    fn view_batch(&self, hub_epoch: &[u8], after: u64, viewer: &str) -> Result<ViewBatch> {
        let head = self.feed_head();
        let names = self.structures()?;
        let view_need = |record: HubRecord| -> Option<NetworkNeed> {
            let need = record.need.filter(|n| {
                !record.deleted && n.status == NeedStatus::Open as i32 && n.origin_siret != viewer
            })?;
            let structure = names.get(&need.origin_siret).cloned().unwrap_or_default();
            Some(NetworkNeed {
                need: Some(need),
                structure_name: structure.name,
                structure_kind: structure.kind,
            })
        };
        let epoch = self.identity.epoch.to_vec();
        if hub_epoch != epoch.as_slice() || after > head {
            let mut upserts = Vec::new();
            for (_, raw) in self.store.scan(Tree::Records, &[], None, usize::MAX)? {
                if let Ok(record) = <HubRecord as prost::Message>::decode(raw.as_slice())
                    && let Some(need) = view_need(record)
                {
                    upserts.push(need);
                }
            }
            return Ok(ViewBatch {
                hub_epoch: epoch,
                reset: true,
                upserts,
                removals: Vec::new(),
                position: head,
            });
        }
        let (keys, position) = self.feed_records(after, FEED_PAGE)?;
        let mut seen = HashSet::new();
        let (mut upserts, mut removals) = (Vec::new(), Vec::new());
        for record_key in keys {
            // The view is about needs.
            if record_key.dataset != Dataset::Needs
                || record_key.origin == viewer
                || !seen.insert(record_key.clone())
            {
                continue;
            }
            let key = format!("{}/{}", record_key.origin, record_key.key);
            match self.store.get(Tree::Records, &record_key.encode())? {
                Some(raw) => {
                    match <HubRecord as prost::Message>::decode(raw.as_slice()).ok().and_then(&view_need) {
                        Some(need) => upserts.push(need),
                        None => removals.push(key),
                    }
                }
                None => removals.push(key),
            }
        }
        Ok(ViewBatch { hub_epoch: epoch, reset: false, upserts, removals, position })
    }

    /// The records changed after feed position `after`, whole entries until at least `limit`
    /// records (or the head) are reached, and the position reached.
    pub(super) fn feed_records(&self, after: u64, limit: usize) -> Result<(Vec<RecordKey>, u64)> {
        let mut keys = Vec::new();
        let mut position = after;
        while keys.len() < limit {
            let entries = self.store.scan(Tree::Feed, &FeedEntry::key(position + 1), None, 16)?;
            if entries.is_empty() {
                break;
            }
            for (k, value) in entries {
                let Some(entry) = FeedEntry::decode(&k, &value) else { continue };
                position = entry.position;
                keys.extend(entry.records);
                if keys.len() >= limit {
                    break;
                }
            }
        }
        Ok((keys, position))
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
