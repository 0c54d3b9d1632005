//! Recruitment needs: create, update, close, read.

use passerelle_proto::datasets::Dataset;
use passerelle_proto::date::now_unix_ms;
use passerelle_proto::v1::{ImportResponse, NeedFields, NeedRow, NeedStatus, RecruitmentNeed};
use passerelle_proto::validate::{self, RowError};
use prost::Message;

use super::{Node, check_size, none_if_empty, parse_id, required, row_line};
use crate::error::{Error, Result};
use crate::store::{Tree, WriteBatch, keys};

impl Node {
    /// Records a new, open need.
    pub fn create_need(&self, fields: Option<NeedFields>) -> Result<RecruitmentNeed> {
        let fields = clean(required("fields", fields)?)?;
        let (id, need) = new_need(fields, now_unix_ms());
        let _writer = self.write_lock();
        let mut batch = WriteBatch::new();
        batch.put(Tree::Needs, keys::id(&id), need.encode_to_vec());
        let seq = self.log_change(&mut batch, Dataset::Needs, &need.id);
        self.commit_change(batch, seq)?;
        Ok(need)
    }

    /// Records many open needs in one atomic, durable commit: all of them or none. Every invalid
    /// row is reported (with its line), not only the first. Used by imports and the benchmarks.
    pub fn import_needs(&self, rows: Vec<NeedRow>) -> Result<ImportResponse> {
        check_size(rows.len())?;
        let mut cleaned = Vec::with_capacity(rows.len());
        let mut errors = Vec::new();
        for (i, row) in rows.into_iter().enumerate() {
            let line = row.line;
            match required("fields", row.fields).and_then(clean) {
                Ok(fields) => cleaned.push(fields),
                Err(Error::Invalid(error)) => errors.push(RowError { line: row_line(line, i), error }),
                Err(other) => return Err(other),
            }
        }
        if !errors.is_empty() {
            return Err(Error::InvalidRows(errors));
        }
        let now = now_unix_ms();
        let _writer = self.write_lock();
        let mut batch = WriteBatch::new();
        let mut keys = Vec::with_capacity(cleaned.len());
        let mut last_seq = self.head_seq();
        for fields in cleaned {
            let (id, need) = new_need(fields, now);
            batch.put(Tree::Needs, keys::id(&id), need.encode_to_vec());
            last_seq = self.log_change_at(&mut batch, last_seq + 1, Dataset::Needs, &need.id);
            keys.push(need.id);
        }
        if !keys.is_empty() {
            self.commit_change(batch, last_seq)?;
        }
        Ok(ImportResponse { created: keys.len() as u64, replaced: 0, keys })
    }

    /// Replaces a need's fields, optionally only if it is still at `expected_version`.
    pub fn update_need(
        &self,
        id: &str,
        fields: Option<NeedFields>,
        expected_version: Option<u64>,
    ) -> Result<RecruitmentNeed> {
        let key = parse_id("id", id)?;
        let fields = clean(required("fields", fields)?)?;
        let _writer = self.write_lock();
        let mut need = self.need_for_change(&key, id, expected_version)?;
        need.fields = Some(fields);
        self.save_change(&key, &mut need)?;
        Ok(need)
    }

    /// Marks a need filled or cancelled. Closing it again with the same status changes nothing.
    pub fn close_need(&self, id: &str, status: i32) -> Result<RecruitmentNeed> {
        let key = parse_id("id", id)?;
        let status = validate::closing_status(status)?;
        let _writer = self.write_lock();
        let mut need = self.need_for_change(&key, id, None)?;
        if need.status == status as i32 {
            return Ok(need);
        }
        if need.status != NeedStatus::Open as i32 {
            return Err(Error::FailedPrecondition(format!(
                "need {id} is already {}; record a new need instead of reopening it",
                passerelle_proto::codes::slug_of::<NeedStatus>(need.status)
            )));
        }
        need.status = status as i32;
        self.save_change(&key, &mut need)?;
        Ok(need)
    }

    /// Returns one need.
    pub fn get_need(&self, id: &str) -> Result<RecruitmentNeed> {
        let key = parse_id("id", id)?;
        self.load(Tree::Needs, &keys::id(&key))?.ok_or_else(|| not_found(id))
    }

    /// Lists needs, oldest first, optionally only those with `status` (0: all).
    pub fn list_needs(&self, status: i32) -> Result<Vec<RecruitmentNeed>> {
        if status != NeedStatus::Unspecified as i32 {
            validate::code::<NeedStatus>("status", status)?;
        }
        let mut needs: Vec<RecruitmentNeed> = self.load_all(Tree::Needs)?;
        if status != NeedStatus::Unspecified as i32 {
            needs.retain(|n| n.status == status);
        }
        Ok(needs)
    }

    fn need_for_change(&self, key: &uuid::Uuid, id: &str, expected: Option<u64>) -> Result<RecruitmentNeed> {
        let need: RecruitmentNeed = self.load(Tree::Needs, &keys::id(key))?.ok_or_else(|| not_found(id))?;
        if let Some(expected) = expected.filter(|v| *v != need.version) {
            return Err(Error::VersionConflict {
                what: "need",
                id: id.to_string(),
                expected,
                actual: need.version,
            });
        }
        Ok(need)
    }

    fn save_change(&self, key: &uuid::Uuid, need: &mut RecruitmentNeed) -> Result<()> {
        need.version += 1;
        need.updated_at_ms = now_unix_ms().max(need.updated_at_ms);
        let mut batch = WriteBatch::new();
        batch.put(Tree::Needs, keys::id(key), need.encode_to_vec());
        let seq = self.log_change(&mut batch, Dataset::Needs, &need.id);
        self.commit_change(batch, seq)
    }

    /// Deletes a need. Its last version + 1 is kept as a tombstone, so hubs that received it
    /// get a deletion that outranks every version they may hold.
    pub fn delete_need(&self, id: &str) -> Result<()> {
        let key = parse_id("id", id)?;
        let _writer = self.write_lock();
        let need = self.need_for_change(&key, id, None)?;
        let mut batch = WriteBatch::new();
        batch.delete(Tree::Needs, keys::id(&key));
        batch.put(
            Tree::Tombstones,
            crate::store::keys::tombstone(Dataset::Needs, id),
            (need.version + 1).to_be_bytes(),
        );
        let seq = self.log_change(&mut batch, Dataset::Needs, id);
        self.commit_change(batch, seq)
    }
}

/// A new open need at version 1, with a time-ordered id.
fn new_need(fields: NeedFields, now: i64) -> (uuid::Uuid, RecruitmentNeed) {
    let id = uuid::Uuid::now_v7();
    let need = RecruitmentNeed {
        id: id.to_string(),
        fields: Some(fields),
        status: NeedStatus::Open as i32,
        created_at_ms: now,
        updated_at_ms: now,
        version: 1,
    };
    (id, need)
}

fn clean(mut fields: NeedFields) -> Result<NeedFields> {
    none_if_empty(&mut fields.client);
    none_if_empty(&mut fields.description);
    validate::need_fields(&fields)?;
    Ok(fields)
}

fn not_found(id: &str) -> Error {
    Error::NotFound { what: "need", id: id.to_string() }
}
