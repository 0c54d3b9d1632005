//! The network view a hub serves to its members: every open need of every member, with the
//! owning structure's name, as a checkpointed change feed.
//!
//! Each applied change to a need appends `origin/need_id` to the feed in the same commit; a
//! subscriber reads the feed after its position and gets each need's *current* state (open: an
//! upsert; closed, deleted or withdrawn: a removal). A subscriber from another hub epoch, or ahead
//! of the feed, gets a reset and the full view.

use std::collections::{HashMap, HashSet};

use passerelle_proto::datasets;
use passerelle_proto::identity::Role;
use passerelle_proto::v1::{NeedStatus, NetworkNeed, Structure, ViewBatch};

use super::Hub;
use super::ingest::{HubRecord, record_key};
use crate::error::Result;
use crate::store::{Tree, WriteBatch};

/// Meta key of the feed's last position.
pub(super) const FEED_HEAD: &[u8] = b"feed_head";

/// Most feed entries one `ViewBatch` covers.
const FEED_PAGE: usize = 1000;

impl Hub {
    /// Appends feed entries to `batch`; returns the new head to publish after the commit.
    pub(super) fn stage_feed(&self, batch: &mut WriteBatch, keys: Vec<String>) -> Option<u64> {
        if keys.is_empty() {
            return None;
        }
        let mut head = self.feed_head();
        for key in keys {
            head += 1;
            batch.put(Tree::Feed, head.to_be_bytes(), key.into_bytes());
        }
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

    /// The next changes of the view for a subscriber at `after` in epoch `hub_epoch`.
    pub fn view_batch(&self, hub_epoch: &[u8], after: u64) -> Result<ViewBatch> {
        let head = self.feed_head();
        let names = self.structures()?;
        let view_need = |record: HubRecord| -> Option<NetworkNeed> {
            let need = record.need.filter(|n| !record.deleted && n.status == NeedStatus::Open as i32)?;
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
        let entries = self.store.scan(Tree::Feed, &(after + 1).to_be_bytes(), None, FEED_PAGE)?;
        let position = entries
            .last()
            .and_then(|(k, _)| k.as_slice().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(after);
        let mut seen = HashSet::new();
        let (mut upserts, mut removals) = (Vec::new(), Vec::new());
        for (_, value) in entries {
            let key = String::from_utf8_lossy(&value).into_owned();
            if !seen.insert(key.clone()) {
                continue;
            }
            let Some((origin, need_id)) = key.split_once('/') else { continue };
            match self.store.get(Tree::Records, &record_key(origin, datasets::NEEDS, need_id))? {
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
