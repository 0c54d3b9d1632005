//! The node's audit log of what left it about people: every profile share, purge request and purge
//! acknowledgement, append-only and hash-chained.
//!
//! Entry `n` stores the hash of entry `n - 1`, and its own hash covers its content and that link;
//! the head (last sequence number and hash) is kept apart in the meta tree. `verify` recomputes the
//! chain: altering an entry breaks its hash, removing one breaks the sequence or the link, and
//! removing the last ones no longer matches the head.

use passerelle_proto::date::now_unix_ms;
use prost::Message;
use sha2::{Digest as _, Sha256};

use super::Node;
use crate::error::{Error, Result};
use crate::store::{StoreError, Tree, WriteBatch};

const HEAD_KEY: &[u8] = b"audit_head";

/// One audit entry.
#[derive(Clone, PartialEq, Message)]
pub struct AuditEntry {
    /// Position in the log, from 1.
    #[prost(uint64, tag = "1")]
    pub seq: u64,
    /// When, milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub at_ms: i64,
    /// `share`, `purge-request` or `purge-ack`.
    #[prost(string, tag = "3")]
    pub kind: String,
    /// The person concerned (pseudonymous id).
    #[prost(string, tag = "4")]
    pub person_id: String,
    /// The hub concerned.
    #[prost(string, tag = "5")]
    pub hub_id: String,
    /// What was shared (categories) or why a purge was requested.
    #[prost(string, tag = "6")]
    pub detail: String,
    /// Hash of the previous entry (32 zero bytes for the first).
    #[prost(bytes = "vec", tag = "7")]
    pub prev_hash: Vec<u8>,
    /// SHA-256 over the fields above.
    #[prost(bytes = "vec", tag = "8")]
    pub hash: Vec<u8>,
}

/// The head of the log: last sequence number and hash.
#[derive(Clone, PartialEq, Message)]
struct AuditHead {
    #[prost(uint64, tag = "1")]
    seq: u64,
    #[prost(bytes = "vec", tag = "2")]
    hash: Vec<u8>,
}

fn entry_hash(e: &AuditEntry) -> Vec<u8> {
    let mut h = Sha256::new();
    for part in [
        e.kind.as_bytes(),
        e.person_id.as_bytes(),
        e.hub_id.as_bytes(),
        e.detail.as_bytes(),
        e.prev_hash.as_slice(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.update(e.seq.to_be_bytes());
    h.update(e.at_ms.to_be_bytes());
    h.finalize().to_vec()
}

/// What `audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCheck {
    /// Entries checked.
    pub entries: u64,
    /// The first problem, if any: (sequence number, what is wrong).
    pub broken: Option<(u64, String)>,
}

impl Node {
    fn audit_head(&self) -> Result<AuditHead> {
        Ok(match self.store.get(Tree::Meta, HEAD_KEY)? {
            Some(raw) => AuditHead::decode(raw.as_slice())
                .map_err(|_| Error::Store(StoreError("corrupt audit head".into())))?,
            None => AuditHead { seq: 0, hash: vec![0; 32] },
        })
    }

    /// Appends entries to `batch` (call under the write lock; they land with the batch).
    pub(super) fn audit(
        &self,
        batch: &mut WriteBatch,
        entries: Vec<(String, String, String, String)>,
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        // A batch may already append entries (several steps of one change): continue from its
        // head, not the stored one, or two entries would share a sequence number.
        let staged = batch.ops().iter().rev().find(|(tree, key, _)| *tree == Tree::Meta && key == HEAD_KEY);
        let mut head = match staged {
            Some((_, _, Some(raw))) => AuditHead::decode(raw.as_slice())
                .map_err(|_| Error::Store(StoreError("corrupt audit head".into())))?,
            _ => self.audit_head()?,
        };
        let now = now_unix_ms();
        for (kind, person_id, hub_id, detail) in entries {
            let mut entry = AuditEntry {
                seq: head.seq + 1,
                at_ms: now,
                kind,
                person_id,
                hub_id,
                detail,
                prev_hash: head.hash.clone(),
                hash: Vec::new(),
            };
            entry.hash = entry_hash(&entry);
            batch.put(Tree::Audit, entry.seq.to_be_bytes(), entry.encode_to_vec());
            head = AuditHead { seq: entry.seq, hash: entry.hash };
        }
        batch.put(Tree::Meta, HEAD_KEY, head.encode_to_vec());
        Ok(())
    }

    /// Entries, oldest first, optionally one person's and from an instant on.
    pub fn audit_entries(&self, person_id: Option<&str>, since_ms: Option<i64>) -> Result<Vec<AuditEntry>> {
        let mut out = Vec::new();
        for (_, raw) in self.store.scan(Tree::Audit, &[], None, usize::MAX)? {
            let entry = AuditEntry::decode(raw.as_slice())
                .map_err(|_| Error::Store(StoreError("corrupt audit entry".into())))?;
            if person_id.is_some_and(|p| p != entry.person_id) || since_ms.is_some_and(|s| entry.at_ms < s) {
                continue;
            }
            out.push(entry);
        }
        Ok(out)
    }

    /// Recomputes the chain.
    pub fn verify_audit(&self) -> Result<AuditCheck> {
        let head = self.audit_head()?;
        let mut prev = vec![0u8; 32];
        let mut expected = 1;
        for (key, raw) in self.store.scan(Tree::Audit, &[], None, usize::MAX)? {
            let seq = key.as_slice().try_into().map(u64::from_be_bytes).unwrap_or(0);
            let broken =
                |why: &str| Ok(AuditCheck { entries: expected - 1, broken: Some((seq, why.to_string())) });
            let Ok(entry) = AuditEntry::decode(raw.as_slice()) else { return broken("unreadable entry") };
            if seq != expected || entry.seq != seq {
                return broken(&format!("expected entry {expected}: an entry was removed or moved"));
            }
            if entry.prev_hash != prev {
                return broken(
                    "its link to the previous entry does not match: an earlier entry was altered or removed",
                );
            }
            if entry_hash(&entry) != entry.hash {
                return broken("its content does not match its hash: the entry was altered");
            }
            prev = entry.hash;
            expected += 1;
        }
        if expected - 1 != head.seq || prev != head.hash {
            return Ok(AuditCheck {
                entries: expected - 1,
                broken: Some((
                    expected,
                    format!(
                        "the log ends at entry {} but its head says {}: entries were removed",
                        expected - 1,
                        head.seq
                    ),
                )),
            });
        }
        Ok(AuditCheck { entries: head.seq, broken: None })
    }
}

impl From<AuditEntry> for passerelle_proto::v1::AuditEntry {
    fn from(e: AuditEntry) -> Self {
        Self {
            seq: e.seq,
            at_ms: e.at_ms,
            kind: e.kind,
            person_id: e.person_id,
            hub_id: e.hub_id,
            detail: e.detail,
            hash: e.hash.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

impl Node {
    /// A person's report: consents, shares per hub, audit entries.
    pub fn person_report(&self, person_id: &str) -> Result<passerelle_proto::v1::PersonReportResponse> {
        let id = super::parse_id("person_id", person_id)?;
        let erased = self.store.get(Tree::Persons, &crate::store::keys::id(&id))?.is_none();
        let consents = self.consents_of(&id)?;
        let shares = self.shares_of(person_id)?;
        if erased && consents.is_empty() && shares.is_empty() {
            return Err(Error::NotFound { what: "person", id: person_id.to_string() });
        }
        Ok(passerelle_proto::v1::PersonReportResponse {
            person_id: person_id.to_string(),
            erased,
            consents,
            shares: shares
                .into_iter()
                .map(|(hub_id, s)| passerelle_proto::v1::HubShare {
                    held: s.held(),
                    hub_id,
                    pseudonym: s.pseudonym,
                    first_sent_at_ms: s.first_sent_at_ms,
                    last_sent_at_ms: s.last_sent_at_ms,
                    categories: s.categories,
                    purge_requested_at_ms: s.purge_requested_at_ms,
                    purge_acked_at_ms: s.purge_acked_at_ms,
                })
                .collect(),
            audit: self.audit_entries(Some(person_id), None)?.into_iter().map(Into::into).collect(),
            introductions: self.introductions_of(person_id)?,
        })
    }

    /// Alters one stored audit entry, to prove `verify` notices. For tests only.
    #[doc(hidden)]
    pub fn tamper_audit_for_tests(&self, seq: u64) -> Result<()> {
        let raw = self
            .store
            .get(Tree::Audit, &seq.to_be_bytes())?
            .ok_or_else(|| Error::NotFound { what: "audit entry", id: seq.to_string() })?;
        let mut entry = AuditEntry::decode(raw.as_slice())
            .map_err(|_| Error::Store(StoreError("corrupt audit entry".into())))?;
        entry.detail.push_str(" (edited)");
        let mut batch = WriteBatch::new();
        batch.put(Tree::Audit, seq.to_be_bytes(), entry.encode_to_vec());
        self.commit(batch)
    }
}
