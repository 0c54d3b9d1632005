//! The local copy of the networks' views: the open needs of other structures, per hub, kept on
//! disk so they can be read offline.

use std::collections::BTreeMap;

use passerelle_proto::v1::{NetworkNeed, PooledNeed, ViewBatch};
use passerelle_proto::validate;
use prost::Message;

use super::Node;
use crate::error::Result;
use crate::store::{Tree, WriteBatch, scan_prefix};
use crate::sync::state::{ViewState, view_key};

fn entry_key(hub: &str, origin_and_need: &str) -> Vec<u8> {
    format!("{hub}/{origin_and_need}").into_bytes()
}

impl Node {
    /// Applies a batch of a hub's view, and its new position, in one commit.
    pub fn apply_view(&self, hub: &str, batch: &ViewBatch) -> Result<()> {
        let mut write = WriteBatch::new();
        if batch.reset {
            for (key, _) in scan_prefix(self.store.as_ref(), Tree::NetworkView, format!("{hub}/").as_bytes())?
            {
                write.delete(Tree::NetworkView, key);
            }
        }
        for removal in &batch.removals {
            write.delete(Tree::NetworkView, entry_key(hub, removal));
        }
        for item in &batch.upserts {
            if let Some(need) = &item.need {
                write.put(
                    Tree::NetworkView,
                    entry_key(hub, &format!("{}/{}", need.origin_siret, need.need_id)),
                    item.encode_to_vec(),
                );
            }
        }
        let state = ViewState { hub_epoch: batch.hub_epoch.clone(), position: batch.position };
        write.put(Tree::SyncState, view_key(hub), state.encode_to_vec());
        // A copy of the hub's view: if a crash loses the latest batches, they are fetched again
        // from the older position, which lands atomically with them. Sync state: its own lock.
        let _sync = self.sync_lock();
        self.store.commit_relaxed(write).map_err(Into::into)
    }

    /// How many needs of the network view are held from `hub`.
    pub fn network_needs_from(&self, hub: &str) -> Result<usize> {
        Ok(scan_prefix(self.store.as_ref(), Tree::NetworkView, format!("{hub}/").as_bytes())?.len())
    }

    /// The pooled open needs of other structures, deduplicated across hubs (the highest origin
    /// version wins), filtered by ROME prefix and département, by start date.
    pub fn list_network_needs(
        &self,
        rome_prefix: Option<&str>,
        departement: Option<&str>,
    ) -> Result<Vec<PooledNeed>> {
        if let Some(prefix) = rome_prefix {
            let valid = match prefix.len() {
                1 => prefix.as_bytes()[0].is_ascii_uppercase() && prefix <= "N",
                3 => validate::rome_domaine("rome", prefix).is_ok(),
                _ => validate::rome_code("rome", prefix).is_ok(),
            };
            if !valid {
                return Err(validate::FieldError::new(
                    "rome",
                    prefix,
                    "expected a grand domaine (K), a domaine (K22) or a fiche (K2204)",
                )
                .into());
            }
        }
        if let Some(dep) = departement {
            validate::departement("departement", dep)?;
        }
        let mut pooled: BTreeMap<String, PooledNeed> = BTreeMap::new();
        for (key, raw) in self.store.scan(Tree::NetworkView, &[], None, usize::MAX)? {
            let key = String::from_utf8_lossy(&key).into_owned();
            let Some((hub, _)) = key.split_once('/') else { continue };
            let Ok(item) = NetworkNeed::decode(raw.as_slice()) else { continue };
            let Some(need) = &item.need else { continue };
            if need.origin_siret == self.structure.siret
                || rome_prefix.is_some_and(|p| !need.rome_code.starts_with(p))
                || departement.is_some_and(|d| need.departement != d)
            {
                continue;
            }
            let id = format!("{}/{}", need.origin_siret, need.need_id);
            let entry = pooled.entry(id).or_insert_with(|| PooledNeed {
                need: item.need.clone(),
                structure_name: item.structure_name.clone(),
                structure_kind: item.structure_kind,
                hubs: Vec::new(),
            });
            if entry.need.as_ref().is_some_and(|n| n.origin_version < need.origin_version) {
                entry.need = item.need.clone();
            }
            entry.hubs.push(hub.to_string());
        }
        let mut needs: Vec<PooledNeed> = pooled.into_values().collect();
        needs.sort_by(|a, b| {
            let key = |p: &PooledNeed| {
                p.need.as_ref().map(|n| (n.start_date.clone(), n.need_id.clone())).unwrap_or_default()
            };
            key(a).cmp(&key(b))
        });
        Ok(needs)
    }
}
