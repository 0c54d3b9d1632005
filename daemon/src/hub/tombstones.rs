//! Forgetting old deletions. A hub keeps a tombstone (routing keys and version, no payload) for a
//! deleted record so that an older copy arriving late — a relay that lagged, a batch resent after
//! a crash — cannot bring the record back. After `[hub] tombstone_retention_days` no such copy
//! can still be on its way, and the tombstone only costs space: the daily task (`daily.rs`)
//! removes it.

use prost::Message;

use super::Hub;
use super::ingest::HubRecord;
use crate::error::Result;
use crate::store::{Tree, WriteBatch};

/// Tombstones removed per commit, so a large clean-up never builds one huge batch.
const PER_COMMIT: usize = 10_000;

impl Hub {
    /// Removes the tombstones received before `before_ms`; returns how many. Live records are
    /// never touched.
    pub fn forget_tombstones(&self, before_ms: i64) -> Result<usize> {
        let mut forgotten = 0;
        let mut start: Vec<u8> = Vec::new();
        loop {
            let page = self.store.scan(Tree::Records, &start, None, PER_COMMIT + 1)?;
            let more = page.len() > PER_COMMIT;
            let _writer = self.write_lock();
            let mut batch = WriteBatch::new();
            for (key, raw) in page.iter().take(PER_COMMIT) {
                // Read again under the write lock: a record may have come back to life since.
                let Some(current) = self.store.get(Tree::Records, key)? else { continue };
                let Ok(record) = HubRecord::decode(current.as_slice()) else { continue };
                if record.deleted && record.received_at_ms < before_ms && current == *raw {
                    batch.delete(Tree::Records, key.clone());
                    forgotten += 1;
                }
            }
            if !batch.is_empty() {
                self.store.commit(batch)?;
            }
            match (more, page.get(PER_COMMIT)) {
                (true, Some((next, _))) => start = next.clone(),
                _ => return Ok(forgotten),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use passerelle_proto::identity::{PeerId, Role};
    use passerelle_proto::v1::{Batch, Change, SharedNeed, Structure, Tombstone, change};

    use super::*;
    use crate::hub::ingest::PushSession;
    use crate::tls::Peer;
    use passerelle_proto::datasets::Dataset;

    const SIRET: &str = "73282932000074";

    fn change(key: &str, version: u64, payload: change::Payload) -> Change {
        Change {
            dataset: "needs".into(),
            key: key.into(),
            version,
            payload: Some(payload),
            ..Default::default()
        }
    }

    fn need(key: &str) -> change::Payload {
        change::Payload::Need(SharedNeed {
            origin_siret: SIRET.into(),
            need_id: key.into(),
            origin_version: 1,
            rome_code: "K2204".into(),
            contract_type: 1,
            open_positions: 1,
            hours_per_week: 24,
            departement: "49".into(),
            start_date: "2027-01-04".into(),
            status: 1,
            ..Default::default()
        })
    }

    #[test]
    fn expired_tombstones_go_and_everything_else_stays() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let hub = Hub::for_tests(dir.path());
        let peer = Peer {
            id: PeerId { role: Role::Node, id: SIRET.into() },
            serial: None,
            network: Some("coorace".into()),
        };
        let structure =
            Structure { siret: SIRET.into(), kind: 1, name: "S".into(), departement: "49".into() };
        hub.admit(&peer, Some(structure))?;
        let session = PushSession::for_tests(peer, vec![1; 16], &[Dataset::Needs], 1);
        let (a, b) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
        let tombstone = || {
            change::Payload::Tombstone(Tombstone {
                origin_siret: SIRET.into(),
                hub_id: "coorace-pdl".into(),
                reason: "deleted".into(),
            })
        };
        hub.apply_batch(
            &session,
            Batch {
                seq: 1,
                changes: vec![change(&a, 1, need(&a)), change(&b, 1, need(&b))],
                head_seq: 1,
                ..Default::default()
            },
        )?;
        // The structure deletes need b: the hub keeps a tombstone for it; a stays live.
        hub.apply_batch(
            &session,
            Batch { seq: 2, changes: vec![change(&b, 2, tombstone())], head_seq: 2, ..Default::default() },
        )?;
        let keys = |hub: &Hub| -> anyhow::Result<Vec<(String, bool)>> {
            Ok(hub
                .store
                .scan(Tree::Records, &[], None, usize::MAX)?
                .into_iter()
                .filter_map(|(k, v)| {
                    let r = HubRecord::decode(v.as_slice()).ok()?;
                    Some((String::from_utf8_lossy(&k).into_owned(), r.deleted))
                })
                .collect())
        };
        let before = keys(&hub)?;
        assert_eq!(before.iter().filter(|(_, deleted)| *deleted).count(), 1, "{before:?}");
        let now = passerelle_proto::date::now_unix_ms();
        assert_eq!(hub.forget_tombstones(now - 60_000)?, 0, "a fresh tombstone is kept");
        assert_eq!(keys(&hub)?, before);
        assert_eq!(hub.forget_tombstones(now + 60_000)?, before.iter().filter(|(_, d)| *d).count());
        let after = keys(&hub)?;
        assert!(after.iter().all(|(_, deleted)| !deleted), "no tombstone left: {after:?}");
        assert_eq!(
            after.len(),
            before.iter().filter(|(_, d)| !*d).count(),
            "live records untouched: {after:?}"
        );
        Ok(())
    }
}
