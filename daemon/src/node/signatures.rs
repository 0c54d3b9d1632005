//! Signing shared records at their origin, when they are committed.
//!
//! Every commit that logs a change to a needs or indicators record also stores, in the same
//! batch, the node's signature of that record's new state (or of its deletion) over
//! `passerelle_proto::signed`'s canonical bytes, made with the key of the node's own
//! certificate. Sync and catch-up read it with the record and pay nothing more; a hub relays it
//! unchanged, and an upstream hub checks it against the certificate, so no relaying hub can
//! create, alter or re-date a record.
//!
//! Profiles are not signed: they go to one hub only (their pseudonyms differ per hub) and are
//! never relayed, and the hub receiving them knows their origin from TLS. A record stays signed
//! by the certificate of its commit: renewing the certificate signs new versions with the new key
//! and keeps the old certificate in the `certificates` tree, sent at every push session.

use std::collections::{BTreeSet, HashMap};

use passerelle_proto::datasets::Dataset;
use passerelle_proto::signed::{self, Origin, Signed};
use passerelle_proto::v1::{Change, IndicatorReport, RecruitmentNeed, SharedNeed, Structure, change};
use prost::Message;

use super::Node;
use super::outbox::OutboxEntry;
use super::projection::share_need;
use crate::error::Result;
use crate::store::{Tree, WriteBatch, keys, scan_prefix};
use crate::tls::signing::RecordSigner;

/// The signature of one version of a record, as the node stores it.
#[derive(Clone, PartialEq, Message)]
pub struct RecordSignature {
    /// The version signed.
    #[prost(uint64, tag = "1")]
    pub version: u64,
    /// The fingerprint of the certificate whose key signed.
    #[prost(bytes = "vec", tag = "2")]
    pub fingerprint: Vec<u8>,
    /// ECDSA P-256, `r ‖ s`.
    #[prost(bytes = "vec", tag = "3")]
    pub signature: Vec<u8>,
    /// The structure signed (the node's when it committed the version).
    #[prost(message, optional, tag = "4")]
    pub structure: Option<Structure>,
}

/// A record's state as signed.
enum State {
    Need(SharedNeed),
    Indicators(IndicatorReport),
    Deleted,
}

impl State {
    fn signed(&self) -> Signed<'_> {
        match self {
            State::Need(need) => Signed::Need(need),
            State::Indicators(report) => Signed::Indicators(report),
            State::Deleted => Signed::Deleted,
        }
    }
}

/// Meta key present while every needs and indicators record has a signature of its version.
const ALL_SIGNED: &[u8] = b"all_signed";

/// A batch's last write per (tree, key): `Some` a value, `None` a removal.
type Staged<'a> = std::collections::HashMap<(Tree, &'a [u8]), Option<&'a [u8]>>;

/// The key of a record in its node tree (`None`: not a key of that dataset).
fn record_key(dataset: Dataset, key: &str) -> Option<(Tree, Vec<u8>)> {
    match dataset {
        Dataset::Needs => uuid::Uuid::parse_str(key).ok().map(|id| (Tree::Needs, keys::id(&id).to_vec())),
        Dataset::Indicators => passerelle_proto::validate::month("key", key)
            .ok()
            .map(|month| (Tree::Indicators, keys::month(month).to_vec())),
        Dataset::Profiles => None,
    }
}

impl Node {
    /// Signs with `signer` from now on; signs, in one commit, every record the store holds
    /// without a signature of its current version (a store from before signatures, or records
    /// committed while no certificate was configured), and keeps the certificate.
    pub fn with_signer(mut self, signer: RecordSigner) -> Result<Self> {
        if !signer.is_valid_now() {
            tracing::warn!(
                "the node's certificate has expired: records are committed unsigned (and not \
                 relayed upstream) until a renewed certificate signs them"
            );
        }
        self.signer = Some(signer);
        let _writer = self.write_lock();
        let mut batch = WriteBatch::new();
        let mut signed = 0;
        // Every record is signed unless something was committed without a signer since the last
        // pass (that commit removed the marker): the usual start reads one key, not the store.
        let datasets = if self.signer().is_none() || self.store.get(Tree::Meta, ALL_SIGNED)?.is_some() {
            Vec::new()
        } else {
            vec![Dataset::Needs, Dataset::Indicators]
        };
        for dataset in datasets {
            let mut keys: BTreeSet<String> = BTreeSet::new();
            keys.extend(self.live_keys(dataset)?);
            let prefix = keys::tombstone(dataset, "");
            for (key, _) in scan_prefix(self.store.as_ref(), Tree::Tombstones, &prefix)? {
                keys.insert(String::from_utf8_lossy(&key[prefix.len()..]).into_owned());
            }
            for key in keys {
                let Some((version, state)) = self.state_of(None, dataset, &key)? else { continue };
                let current = self.signature_of(dataset, &key)?;
                if current.is_none_or(|s| s.version != version) {
                    self.stage_signature(&mut batch, dataset, &key, version, &state)?;
                    signed += 1;
                }
            }
        }
        if let Some(signer) = &self.signer
            && self.store.get(Tree::Certificates, signer.fingerprint())?.is_none()
        {
            batch.put(Tree::Certificates, signer.fingerprint(), signer.certificate());
        }
        if self.signer().is_some() && self.store.get(Tree::Meta, ALL_SIGNED)?.is_none() {
            batch.put(Tree::Meta, ALL_SIGNED, [1]);
        }
        if !batch.is_empty() {
            self.commit(batch)?;
        }
        if signed > 0 {
            tracing::info!(signed, "signed the records held without a signature");
        }
        drop(_writer);
        Ok(self)
    }

    /// Adds to `batch` the signature of every needs or indicators record it logs a change of,
    /// as the batch leaves it, and completes those outbox entries with the change itself
    /// (projected and signed), so catch-up sends it without reading the record again. Called
    /// by `commit_change`, under the write lock.
    pub(super) fn sign_logged(&self, batch: &mut WriteBatch) -> Result<()> {
        if self.signer().is_none() {
            // Unsigned records now exist: the next `with_signer` looks for them.
            batch.delete(Tree::Meta, ALL_SIGNED);
            return Ok(());
        }
        // Outbox entries to complete: (position in the batch, entry).
        let mut logged: Vec<(usize, Dataset, OutboxEntry)> = Vec::new();
        for (i, (tree, _, value)) in batch.ops().iter().enumerate() {
            if *tree != Tree::Outbox {
                continue;
            }
            let Some(entry) = value.as_deref().and_then(|v| OutboxEntry::decode(v).ok()) else { continue };
            if let Ok(dataset) = entry.dataset.parse::<Dataset>()
                && dataset != Dataset::Profiles
            {
                logged.push((i, dataset, entry));
            }
        }
        if logged.is_empty() {
            return Ok(());
        }
        // One change per record, as the batch leaves it (an import logs thousands).
        let mut changes: HashMap<(Dataset, String), Change> = HashMap::with_capacity(logged.len());
        let mut signatures = Vec::with_capacity(logged.len());
        {
            // The batch's last write per key, looked up once per record.
            let staged: Staged<'_> = batch
                .ops()
                .iter()
                .map(|(tree, key, value)| ((*tree, key.as_slice()), value.as_deref()))
                .collect();
            for (_, dataset, entry) in &logged {
                let id = (*dataset, entry.key.clone());
                if changes.contains_key(&id) {
                    continue;
                }
                let Some((version, state)) = self.state_of(Some(&staged), *dataset, &entry.key)? else {
                    continue;
                };
                let Some((key, signature)) = self.signature(*dataset, &entry.key, version, &state)? else {
                    continue;
                };
                changes.insert(id, self.kept_change(*dataset, &entry.key, version, state, &signature));
                signatures.push((key, signature.encode_to_vec()));
            }
        }
        let ops = batch.ops_mut();
        for (i, dataset, mut entry) in logged {
            let Some(change) = changes.get(&(dataset, entry.key.clone())) else { continue };
            entry.change = Some(change.clone());
            if let Some(op) = ops.get_mut(i) {
                op.2 = Some(entry.encode_to_vec());
            }
        }
        for (key, signature) in signatures {
            batch.put(Tree::Signatures, key, signature);
        }
        Ok(())
    }

    /// The change every hub receives for a record's signed state, as an outbox entry keeps it
    /// (see `OutboxEntry::change`): the same as `change_for` computes from the store, but for
    /// a tombstone's `hub_id` (empty) and the signed structure (always set).
    fn kept_change(
        &self,
        dataset: Dataset,
        key: &str,
        version: u64,
        state: State,
        signature: &RecordSignature,
    ) -> Change {
        let payload = match state {
            State::Need(need) => change::Payload::Need(need),
            State::Indicators(report) => change::Payload::Indicators(report),
            State::Deleted => change::Payload::Tombstone(self.tombstone("", "deleted")),
        };
        Change {
            dataset: dataset.to_string(),
            key: key.to_string(),
            version,
            payload: Some(payload),
            origin: signature.structure.clone(),
            signature: signature.signature.clone(),
            certificate_fingerprint: signature.fingerprint.clone(),
            ..Default::default()
        }
    }

    /// The state of a record once the writes `staged` (if any) are applied: its version and
    /// payload, or its deletion.
    fn state_of(
        &self,
        staged: Option<&Staged<'_>>,
        dataset: Dataset,
        key: &str,
    ) -> Result<Option<(u64, State)>> {
        let Some((tree, record)) = record_key(dataset, key) else { return Ok(None) };
        let tombstone = keys::tombstone(dataset, key);
        let read = |tree: Tree, k: &[u8]| -> Result<Option<Vec<u8>>> {
            match staged.and_then(|s| s.get(&(tree, k))) {
                Some(value) => Ok(value.map(<[u8]>::to_vec)),
                None => Ok(self.store.get(tree, k)?),
            }
        };
        if let Some(raw) = read(tree, &record)? {
            return Ok(Some(match dataset {
                Dataset::Needs => {
                    let need: RecruitmentNeed = super::decode(tree, &raw)?;
                    (need.version, State::Need(share_need(&self.structure.siret, &need)))
                }
                _ => {
                    let report: IndicatorReport = super::decode(tree, &raw)?;
                    (report.version, State::Indicators(report))
                }
            }));
        }
        Ok(read(Tree::Tombstones, &tombstone)?
            .and_then(|raw| raw.as_slice().try_into().ok().map(u64::from_be_bytes))
            .map(|v| (v, State::Deleted)))
    }

    fn stage_signature(
        &self,
        batch: &mut WriteBatch,
        dataset: Dataset,
        key: &str,
        version: u64,
        state: &State,
    ) -> Result<()> {
        if let Some((key, signature)) = self.signature(dataset, key, version, state)? {
            batch.put(Tree::Signatures, key, signature.encode_to_vec());
        }
        Ok(())
    }

    /// The `signatures` entry for a record's state, key and value (`None`: no signer).
    fn signature(
        &self,
        dataset: Dataset,
        key: &str,
        version: u64,
        state: &State,
    ) -> Result<Option<(Vec<u8>, RecordSignature)>> {
        let Some(signer) = self.signer() else { return Ok(None) };
        let origin = Origin {
            structure: &self.structure,
            epoch: &self.identity.epoch,
            epoch_created_at_ms: self.identity.created_at_ms,
        };
        let bytes = signed::signed_bytes(origin, dataset.as_str(), key, version, state.signed());
        let signature = RecordSignature {
            version,
            fingerprint: signer.fingerprint().to_vec(),
            signature: signer.sign(&bytes)?,
            structure: Some(self.structure.clone()),
        };
        Ok(Some((keys::tombstone(dataset, key), signature)))
    }

    /// The signer, while its certificate is valid: a node signs nothing with an expired one.
    fn signer(&self) -> Option<&RecordSigner> {
        self.signer.as_ref().filter(|s| s.is_valid_now())
    }

    /// The stored signature of a record, whatever version it is of.
    pub fn signature_of(&self, dataset: Dataset, key: &str) -> Result<Option<RecordSignature>> {
        self.load(Tree::Signatures, &keys::tombstone(dataset, key))
    }

    /// Fills in a change's signature (and its structure, when it was signed under another one
    /// than the session's) if the node holds one for that very version.
    pub(super) fn attach_signature(&self, change: &mut Change, dataset: Dataset) -> Result<()> {
        if dataset == Dataset::Profiles {
            return Ok(());
        }
        let Some(stored) = self.signature_of(dataset, &change.key)? else { return Ok(()) };
        if stored.version != change.version {
            return Ok(());
        }
        if stored.structure.as_ref() != Some(&self.structure) {
            change.origin = stored.structure;
        }
        change.signature = stored.signature;
        change.certificate_fingerprint = stored.fingerprint;
        Ok(())
    }

    /// The certificates whose keys signed this node's records, the current one first (at most
    /// `codec::MAX_CERTIFICATES_PER_OPEN`).
    pub fn signing_certificates(&self) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        if let Some(signer) = &self.signer {
            out.push(signer.certificate().to_vec());
        }
        for (_, der) in self.store.scan(Tree::Certificates, &[], None, usize::MAX)? {
            if !out.contains(&der) {
                out.push(der);
            }
        }
        out.truncate(passerelle_proto::codec::MAX_CERTIFICATES_PER_OPEN);
        Ok(out)
    }

    /// Keys of a dataset's live records.
    fn live_keys(&self, dataset: Dataset) -> Result<Vec<String>> {
        Ok(match dataset {
            Dataset::Needs => {
                self.load_all::<RecruitmentNeed>(Tree::Needs)?.into_iter().map(|n| n.id).collect()
            }
            Dataset::Indicators => self
                .load_all::<IndicatorReport>(Tree::Indicators)?
                .into_iter()
                .filter_map(|r| r.fields.map(|f| f.period))
                .collect(),
            Dataset::Profiles => Vec::new(),
        })
    }
}
