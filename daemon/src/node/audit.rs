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
        let mut head = self.audit_head()?;
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
