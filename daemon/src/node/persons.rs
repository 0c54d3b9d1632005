//! Supported persons (personal data): add, update, read, erase.

use passerelle_proto::date::{Date, now_unix_ms};
use passerelle_proto::v1::{Consent, Person, PersonFields};
use passerelle_proto::validate;
use prost::Message;

use super::{Node, none_if_empty, parse_id, required};
use crate::error::{Error, Result};
use crate::store::{Tree, WriteBatch, keys};

impl Node {
    /// Records a new person.
    pub fn add_person(&self, fields: Option<PersonFields>) -> Result<Person> {
        let fields = clean(required("fields", fields)?)?;
        let now = now_unix_ms();
        let id = uuid::Uuid::now_v7();
        let person = Person {
            id: id.to_string(),
            fields: Some(fields),
            created_at_ms: now,
            updated_at_ms: now,
            version: 1,
        };
        let _writer = self.write_lock();
        let mut batch = WriteBatch::new();
        batch.put(Tree::Persons, keys::id(&id), person.encode_to_vec());
        let seq = self.bump_profile(&mut batch, &person.id)?;
        self.commit_change(batch, seq)?;
        Ok(person)
    }

    /// Replaces a person's fields, optionally only if still at `expected_version`.
    pub fn update_person(
        &self,
        id: &str,
        fields: Option<PersonFields>,
        expected_version: Option<u64>,
    ) -> Result<Person> {
        let key = parse_id("id", id)?;
        let fields = clean(required("fields", fields)?)?;
        let _writer = self.write_lock();
        let mut person: Person = self.load(Tree::Persons, &keys::id(&key))?.ok_or_else(|| not_found(id))?;
        if let Some(expected) = expected_version.filter(|v| *v != person.version) {
            return Err(Error::VersionConflict {
                what: "person",
                id: id.to_string(),
                expected,
                actual: person.version,
            });
        }
        person.fields = Some(fields);
        person.version += 1;
        person.updated_at_ms = now_unix_ms().max(person.updated_at_ms);
        let mut batch = WriteBatch::new();
        batch.put(Tree::Persons, keys::id(&key), person.encode_to_vec());
        let seq = self.bump_profile(&mut batch, id)?;
        self.commit_change(batch, seq)?;
        Ok(person)
    }

    /// Returns one person.
    pub fn get_person(&self, id: &str) -> Result<Person> {
        let key = parse_id("id", id)?;
        self.load(Tree::Persons, &keys::id(&key))?.ok_or_else(|| not_found(id))
    }

    /// Lists persons, oldest first.
    pub fn list_persons(&self) -> Result<Vec<Person>> {
        self.load_all(Tree::Persons)
    }

    /// Erases a person's record. In the same commit, every consent of theirs still in force is
    /// withdrawn; the consent records themselves stay, as proof, and hold no personal data.
    pub fn delete_person(&self, id: &str) -> Result<Vec<Consent>> {
        let key = parse_id("id", id)?;
        let _writer = self.write_lock();
        if self.store.get(Tree::Persons, &keys::id(&key))?.is_none() {
            return Err(not_found(id));
        }
        let now = now_unix_ms();
        let mut batch = WriteBatch::new();
        batch.delete(Tree::Persons, keys::id(&key));
        let mut withdrawn = Vec::new();
        for mut consent in self.consents_of(&key)? {
            if consent.withdrawn_at_ms.is_none() {
                consent.withdrawn_at_ms = Some(now.max(consent.granted_at_ms));
                let consent_key = parse_id("consent_id", &consent.id)?;
                batch.put(Tree::Consents, keys::id(&consent_key), consent.encode_to_vec());
                withdrawn.push(consent);
            }
        }
        // Every hub that holds the profile gets a tombstone; the version outranks all it has seen.
        let version = self.profile_version(id)? + 1;
        batch.put(Tree::ProfileVersions, id.as_bytes().to_vec(), version.to_be_bytes());
        batch.put(
            Tree::Tombstones,
            crate::store::keys::tombstone(passerelle_proto::datasets::Dataset::Profiles, id),
            version.to_be_bytes(),
        );
        self.request_purges(&mut batch, id, None, "person erased")?;
        self.stage_introduction_erasure(&mut batch, id)?;
        let seq = self.log_change(&mut batch, passerelle_proto::datasets::Dataset::Profiles, id);
        self.commit_change(batch, seq)?;
        Ok(withdrawn)
    }
}

fn clean(mut fields: PersonFields) -> Result<PersonFields> {
    none_if_empty(&mut fields.phone);
    none_if_empty(&mut fields.email);
    none_if_empty(&mut fields.pass_iae_end);
    validate::person_fields(&fields, Date::today())?;
    Ok(fields)
}

pub(super) fn not_found(id: &str) -> Error {
    Error::NotFound { what: "person", id: id.to_string() }
}
