//! Consents: one record per grant, kept after withdrawal as proof.

use passerelle_proto::date::now_unix_ms;
use passerelle_proto::v1::{Consent, ConsentPurpose, GrantConsentRequest};
use passerelle_proto::validate;
use prost::Message;
use uuid::Uuid;

use super::{Node, parse_id};
use crate::error::{Error, Result};
use crate::store::{Tree, WriteBatch, keys, scan_prefix};

impl Node {
    /// Records a consent. At most one consent per person × purpose × hub is in force at a time.
    pub fn grant_consent(&self, request: GrantConsentRequest) -> Result<Consent> {
        validate::grant_consent(&request)?;
        refuse_introduction(request.purpose)?;
        let person = parse_id("person_id", &request.person_id)?;
        let _writer = self.write_lock();
        if self.store.get(Tree::Persons, &keys::id(&person))?.is_none() {
            return Err(super::persons::not_found(&request.person_id));
        }
        if self.in_force(&person, request.purpose, &request.hub_id)?.is_some() {
            return Err(Error::AlreadyExists(format!(
                "person {} already has a {} consent in force for hub {}",
                request.person_id,
                passerelle_proto::codes::slug_of::<ConsentPurpose>(request.purpose),
                request.hub_id
            )));
        }
        let id = Uuid::now_v7();
        let consent = Consent {
            id: id.to_string(),
            person_id: request.person_id,
            purpose: request.purpose,
            hub_id: request.hub_id,
            text_version: request.text_version,
            collected_by: request.collected_by,
            granted_at_ms: now_unix_ms(),
            withdrawn_at_ms: None,
            ..Default::default()
        };
        let mut batch = WriteBatch::new();
        batch.put(Tree::Consents, keys::id(&id), consent.encode_to_vec());
        batch.put(Tree::ConsentsByPerson, keys::pair(&person, &id), Vec::new());
        if affects_profiles(consent.purpose) {
            let seq = self.bump_profile(&mut batch, &consent.person_id)?;
            self.commit_change(batch, seq)?;
        } else {
            self.commit(batch)?;
        }
        Ok(consent)
    }

    /// Withdraws the consent in force for a person × purpose × hub.
    pub fn withdraw_consent(&self, person_id: &str, purpose: i32, hub_id: &str) -> Result<Consent> {
        let person = parse_id("person_id", person_id)?;
        validate::code::<ConsentPurpose>("purpose", purpose)?;
        refuse_introduction(purpose)?;
        validate::hub_id("hub_id", hub_id)?;
        let _writer = self.write_lock();
        let mut consent = self.in_force(&person, purpose, hub_id)?.ok_or_else(|| Error::NotFound {
            what: "consent in force for",
            id: format!(
                "person {person_id}, purpose {}, hub {hub_id}",
                passerelle_proto::codes::slug_of::<ConsentPurpose>(purpose)
            ),
        })?;
        consent.withdrawn_at_ms = Some(now_unix_ms().max(consent.granted_at_ms));
        let key = parse_id("consent_id", &consent.id)?;
        let mut batch = WriteBatch::new();
        batch.put(Tree::Consents, keys::id(&key), consent.encode_to_vec());
        if affects_profiles(purpose) {
            // The hub keeps a copy while placement or statistics is still in force (then for that
            // purpose only); withdrawing the last of them asks for the purge.
            let sends =
                purpose == ConsentPurpose::Placement as i32 || purpose == ConsentPurpose::Statistics as i32;
            if sends && self.sending_purposes(&person, hub_id)?.iter().all(|p| *p as i32 == purpose) {
                let reason = format!(
                    "{} consent withdrawn",
                    passerelle_proto::codes::slug_of::<ConsentPurpose>(purpose)
                );
                self.request_purges(&mut batch, person_id, Some(hub_id), &reason)?;
            }
            let seq = self.bump_profile(&mut batch, person_id)?;
            self.commit_change(batch, seq)?;
        } else {
            self.commit(batch)?;
        }
        Ok(consent)
    }

    /// Lists consents, oldest first, optionally only one person's.
    pub fn list_consents(&self, person_id: Option<&str>) -> Result<Vec<Consent>> {
        match person_id {
            Some(id) => self.consents_of(&parse_id("person_id", id)?),
            None => self.load_all(Tree::Consents),
        }
    }

    /// Every consent record of a person, oldest first.
    pub(super) fn consents_of(&self, person: &Uuid) -> Result<Vec<Consent>> {
        let mut consents = Vec::new();
        for (key, _) in scan_prefix(self.store.as_ref(), Tree::ConsentsByPerson, person.as_bytes())? {
            if let Some(consent) = self.load(Tree::Consents, &key[16..])? {
                consents.push(consent);
            }
        }
        Ok(consents)
    }

    fn in_force(&self, person: &Uuid, purpose: i32, hub_id: &str) -> Result<Option<Consent>> {
        Ok(self
            .consents_of(person)?
            .into_iter()
            .find(|c| c.purpose == purpose && c.hub_id == hub_id && c.withdrawn_at_ms.is_none()))
    }
}

/// Every purpose changes what hubs receive of a person: placement and statistics whether a profile
/// goes at all (and which purposes it is flagged with), placement-sensitive its barriers.
fn affects_profiles(purpose: i32) -> bool {
    purpose == ConsentPurpose::Placement as i32
        || purpose == ConsentPurpose::PlacementSensitive as i32
        || purpose == ConsentPurpose::Statistics as i32
}

/// Introduction consents are per person × request: `introduction accept` and `introduction
/// withdraw` record them, with the request and recipient they are for.
fn refuse_introduction(purpose: i32) -> Result<()> {
    if purpose == ConsentPurpose::Introduction as i32 {
        return Err(passerelle_proto::validate::FieldError::new(
            "purpose",
            "introduction",
            "recorded by `introduction accept` and withdrawn by `introduction withdraw`",
        )
        .into());
    }
    Ok(())
}
