//! What a hub receives of the node's records: one projection per dataset.
//!
//! A dataset is a function from a record's current state to a [`Change`]: adding a dataset
//! (profiles, with the consent issue) is adding a projection here, not a new engine. The
//! projections are where local-only fields are left behind: a `SharedNeed` is built field by
//! field from the structured fields of a need, so the client, the description and the title
//! cannot travel, and the commune becomes its département.

use passerelle_proto::datasets::{Dataset, Digest};
use passerelle_proto::v1::{Change, Tombstone};
use passerelle_proto::v1::{IndicatorReport, RecruitmentNeed, SharedNeed, change};
use prost::Message;

use super::Node;
use super::outbox::OutboxEntry;
use super::profiles::ProfileEffect;
use crate::error::{Error, Result};
use crate::store::{StoreError, Tree, keys};

/// The shared, anonymised shape of a need.
pub fn share_need(origin_siret: &str, need: &RecruitmentNeed) -> SharedNeed {
    let fields = need.fields.clone().unwrap_or_default();
    SharedNeed {
        origin_siret: origin_siret.to_string(),
        need_id: need.id.clone(),
        origin_version: need.version,
        rome_code: fields.rome_code,
        contract_type: fields.contract_type,
        open_positions: fields.open_positions,
        hours_per_week: fields.hours_per_week,
        departement: fields.departement,
        start_date: fields.start_date,
        end_date: fields.end_date,
        status: need.status,
        updated_at_ms: need.updated_at_ms,
    }
}

impl Node {
    /// The change a hub must receive for an outbox entry: the record's current state, or its
    /// tombstone. `None` if the entry's dataset is unknown to this binary (the outbox is read
    /// here: its dataset is parsed once, here).
    pub fn change_for(&self, entry: &OutboxEntry, hub_id: &str) -> Result<Option<Change>> {
        let Ok(dataset) = entry.dataset.parse::<Dataset>() else {
            return Ok(None);
        };
        let siret = &self.structure.siret;
        let payload = match dataset {
            Dataset::Needs => {
                let id = super::parse_id("key", &entry.key)?;
                self.load::<RecruitmentNeed>(Tree::Needs, &keys::id(&id))?
                    .map(|need| (need.version, change::Payload::Need(share_need(siret, &need))))
            }
            Dataset::Profiles => {
                // A profile leaves only with its `ProfileEffect` (`profile_change`, or
                // `snapshot_with_effects`), which marks it in flight: a change without it would be
                // one the node does not know the hub holds.
                return Err(Error::Internal(format!(
                    "dataset \"profiles\": profile {} must be sent with its effect",
                    entry.key
                )));
            }
            Dataset::Indicators => {
                let month = passerelle_proto::validate::month("key", &entry.key)?;
                self.load::<IndicatorReport>(Tree::Indicators, &keys::month(month))?
                    .map(|report| (report.version, change::Payload::Indicators(report)))
            }
        };
        let (version, payload) = match payload {
            Some(found) => found,
            None => {
                let version = self
                    .store
                    .get(Tree::Tombstones, &keys::tombstone(dataset, &entry.key))?
                    .and_then(|raw| raw.as_slice().try_into().ok().map(u64::from_be_bytes))
                    .ok_or_else(|| {
                        Error::Store(StoreError(format!(
                            "{} {} has neither record nor tombstone",
                            dataset, entry.key
                        )))
                    })?;
                (version, change::Payload::Tombstone(self.tombstone(hub_id, "deleted")))
            }
        };
        let mut change = Change {
            dataset: dataset.to_string(),
            key: entry.key.clone(),
            version,
            payload: Some(payload),
            ..Default::default()
        };
        self.attach_signature(&mut change, dataset)?;
        Ok(Some(change))
    }

    /// The change to send a hub for an outbox entry: the change kept in the entry when it has
    /// one (fitted to this hub and to the session's structure), else [`Node::change_for`].
    /// Profiles are always projected now, consents checked: what was queued never bypasses a
    /// withdrawal.
    pub fn change_to_send(&self, entry: OutboxEntry, hub_id: &str) -> Result<Option<Change>> {
        match entry.change {
            Some(mut change) if entry.dataset != Dataset::Profiles => {
                if let Some(change::Payload::Tombstone(tombstone)) = &mut change.payload {
                    tombstone.hub_id = hub_id.to_string();
                }
                // As `attach_signature`: the structure signed travels only when it differs from
                // the session's.
                if change.origin.as_ref() == Some(&self.structure) {
                    change.origin = None;
                }
                Ok(Some(change))
            }
            _ => self.change_for(&entry, hub_id),
        }
    }

    /// A tombstone with this node's routing keys.
    pub fn tombstone(&self, hub_id: &str, reason: &str) -> Tombstone {
        Tombstone {
            origin_siret: self.structure.siret.clone(),
            hub_id: hub_id.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Every record of a dataset as changes (live records and tombstones), for a full resend.
    /// An unknown dataset has none.
    pub fn snapshot(&self, dataset: &str, hub_id: &str) -> Result<Vec<Change>> {
        Ok(self.snapshot_with_effects(dataset, hub_id)?.into_iter().map(|(change, _)| change).collect())
    }

    /// [`Node::snapshot`], each profile change with what its acknowledgement means
    /// ([`ProfileEffect`]), both from the **same** projection.
    ///
    /// Why one projection: a consent withdrawn between projecting a profile and working out its
    /// effect again made a full resend carry the profile while its effect said it was not
    /// shared, so the profile was never marked in flight, the withdrawal sent no tombstone, and
    /// the hub kept it for good (the grant-then-withdraw race test caught it under load).
    pub(crate) fn snapshot_with_effects(
        &self,
        dataset: &str,
        hub_id: &str,
    ) -> Result<Vec<(Change, Option<ProfileEffect>)>> {
        let Ok(dataset) = dataset.parse::<Dataset>() else {
            return Ok(Vec::new());
        };
        if dataset == Dataset::Profiles {
            let mut changes = Vec::new();
            for person_id in self.profile_keys()? {
                if let Some((change, effect)) = self.profile_change(&person_id, hub_id)? {
                    changes.push((change, Some(effect)));
                }
            }
            return Ok(changes);
        }
        let mut entries: Vec<OutboxEntry> = self
            .keys_of(dataset)?
            .into_iter()
            .map(|(key, _)| OutboxEntry { dataset: dataset.to_string(), key, change: None })
            .collect();
        let prefix = keys::tombstone(dataset, "");
        for (key, _) in crate::store::scan_prefix(self.store.as_ref(), Tree::Tombstones, &prefix)? {
            let key = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            entries.push(OutboxEntry { dataset: dataset.to_string(), key, change: None });
        }
        let mut changes = Vec::with_capacity(entries.len());
        for entry in &entries {
            if let Some(change) = self.change_for(entry, hub_id)? {
                changes.push((change, None));
            }
        }
        Ok(changes)
    }

    /// The digest of a dataset's live records: what hub `hub_id`, if up to date, holds of this node.
    pub fn digest(&self, dataset: &str, hub_id: &str) -> Result<Digest> {
        let mut digest = Digest::default();
        let keys = match dataset.parse::<Dataset>() {
            Ok(Dataset::Profiles) => self.profile_digest_keys(hub_id)?,
            Ok(dataset) => self.keys_of(dataset)?,
            Err(_) => Vec::new(),
        };
        for (key, version) in keys {
            digest.add(&key, version);
        }
        Ok(digest)
    }

    /// (key, version) of every live record of a dataset (profiles: see `profile_digest_keys`).
    fn keys_of(&self, dataset: Dataset) -> Result<Vec<(String, u64)>> {
        Ok(match dataset {
            Dataset::Needs => self
                .load_all::<RecruitmentNeed>(Tree::Needs)?
                .into_iter()
                .map(|n| (n.id, n.version))
                .collect(),
            Dataset::Indicators => self
                .load_all::<IndicatorReport>(Tree::Indicators)?
                .into_iter()
                .map(|r| (r.fields.map(|f| f.period).unwrap_or_default(), r.version))
                .collect(),
            Dataset::Profiles => Vec::new(),
        })
    }
}

/// Appends to `out` the encoded change an outbox entry keeps (`OutboxEntry.change`, as prost
/// encoded it at commit), fitted to a session as [`Node::change_to_send`] fits it, without
/// decoding it: the signed structure (`Change.origin`) is left out when its bytes are
/// `structure`'s (the session's, encoded). The result is the bytes `change_to_send` would make
/// prost write, so a hub receives the same bytes either way (tested).
///
/// Returns `false`, appending nothing, for what only decoding fits or proves canonical: a
/// tombstone (its `hub_id` is the session's hub, written inside it), and any field this binary
/// does not know, out of tag order, repeated, or written otherwise than prost writes it (a
/// default value, a longer varint): prost would drop or rewrite it.
pub(super) fn append_kept_change(change: &[u8], structure: &[u8], out: &mut Vec<u8>) -> bool {
    use crate::sync::wire::{FieldValue, each_field};
    let (mut last, mut payloads, mut origin) = (0, 0, None);
    let canonical = each_field(change, |field| {
        let in_order = field.number > last;
        last = field.number;
        let shaped = match (field.number, field.value) {
            // Change: dataset, key; origin epoch, signature, certificate fingerprint (strings
            // and bytes: never written empty); version, origin epoch creation (never zero).
            (1 | 2 | 9 | 11 | 12, FieldValue::Bytes(b)) => !b.is_empty(),
            (3 | 10, FieldValue::Varint(v, shortest)) => v != 0 && shortest,
            // The payload (need, indicators, profile; a tombstone is fitted by decoding it).
            (4 | 5 | 7, FieldValue::Bytes(_)) => {
                payloads += 1;
                true
            }
            (8, FieldValue::Bytes(b)) => {
                origin = Some((field.span, b == structure));
                true
            }
            _ => false,
        };
        in_order && shaped
    });
    if !canonical || payloads > 1 {
        return false;
    }
    match origin {
        Some(((start, end), true)) => {
            out.extend_from_slice(&change[..start]);
            out.extend_from_slice(&change[end..]);
        }
        _ => out.extend_from_slice(change),
    }
    true
}

/// The size a change takes on the wire, for batching.
pub fn encoded_len(change: &Change) -> usize {
    change.encoded_len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use passerelle_proto::v1::{NeedFields, NeedStatus};

    /// What only decoding fits or proves canonical is left to it: a tombstone, a field out of
    /// order, repeated or unknown, a default value written out, a longer varint.
    #[test]
    fn kept_bytes_not_as_prost_writes_them_are_decoded_instead() {
        let structure =
            passerelle_proto::v1::Structure { siret: "73282932000074".into(), ..Default::default() };
        let need = Change {
            dataset: "needs".into(),
            key: "k".into(),
            version: 2,
            payload: Some(change::Payload::Need(SharedNeed {
                rome_code: "K2204".into(),
                ..Default::default()
            })),
            origin: Some(structure.clone()),
            signature: vec![1; 64],
            ..Default::default()
        };
        let bytes = need.encode_to_vec();
        let mut out = Vec::new();
        assert!(append_kept_change(&bytes, &structure.encode_to_vec(), &mut out));
        assert_eq!(out, Change { origin: None, ..need.clone() }.encode_to_vec(), "the session's: left out");
        out.clear();
        assert!(append_kept_change(&bytes, b"another", &mut out));
        assert_eq!(out, bytes, "another structure: kept");
        let tombstone = Change {
            payload: Some(change::Payload::Tombstone(Tombstone {
                reason: "deleted".into(),
                ..Default::default()
            })),
            ..need.clone()
        };
        // `origin_epoch_created_at_ms` (10) after the origin (8), in order: zero, then 2 in two bytes.
        let unsigned = Change { signature: Vec::new(), ..need.clone() }.encode_to_vec();
        let zero_version = [&unsigned[..], &[0x50, 0x00]].concat();
        let long_version = [&unsigned[..], &[0x50, 0x82, 0x00]].concat();
        assert!(append_kept_change(&[&unsigned[..], &[0x50, 0x02]].concat(), b"", &mut Vec::new()));
        let unknown = [&bytes[..], &[0x68, 0x01]].concat();
        let out_of_order = [&[0x18, 0x01][..], &bytes].concat();
        // The dataset (field 1, `needs`: 0x0a 0x05) with its key, then its length, in two bytes:
        // prost reads the same change from them and writes it back shorter.
        assert_eq!(bytes[..2], [0x0a, 0x05]);
        let long_key = [&[0x8a, 0x00][..], &bytes[1..]].concat();
        let long_length = [&[0x0a, 0x85, 0x00][..], &bytes[2..]].concat();
        for long in [&long_key, &long_length] {
            assert_eq!(Change::decode(long.as_slice()).expect("prost reads it"), need);
        }
        for (what, bytes) in [
            ("tombstone", tombstone.encode_to_vec()),
            ("zero", zero_version),
            ("long varint", long_version),
            ("long key", long_key),
            ("long length", long_length),
            ("unknown field", unknown),
            ("out of order", out_of_order),
            ("truncated", bytes[..bytes.len() - 1].to_vec()),
        ] {
            let mut out = Vec::new();
            assert!(!append_kept_change(&bytes, &structure.encode_to_vec(), &mut out), "{what}");
            assert!(out.is_empty(), "{what}: nothing appended");
        }
    }

    /// The shared shape cannot carry the local-only fields: they are not copied, and the encoded
    /// bytes contain none of them.
    #[test]
    fn shared_need_leaves_local_fields_behind() {
        let need = RecruitmentNeed {
            id: "01920000-0000-7000-8000-000000000000".into(),
            fields: Some(NeedFields {
                rome_code: "K2204".into(),
                title: "Ménage chez Mme Dupont".into(),
                commune: "49007".into(),
                departement: "49".into(),
                client: Some("Mme Dupont, 3 rue des Lilas".into()),
                description: Some("Le mardi, clés chez la voisine".into()),
                ..Default::default()
            }),
            status: NeedStatus::Open as i32,
            version: 3,
            ..Default::default()
        };
        let shared = share_need("73282932000074", &need);
        let bytes = shared.encode_to_vec();
        for secret in ["Dupont", "Lilas", "voisine", "49007", "Ménage"] {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} leaked");
        }
        assert_eq!((shared.departement.as_str(), shared.origin_version), ("49", 3));
    }
}
