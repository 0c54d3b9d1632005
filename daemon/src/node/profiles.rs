//! Anonymised profiles: what a hub may learn about a person, only under that person's consent for
//! that hub, and the record of what each hub received.
//!
//! - A person's profile goes to hub H only while a `placement` or a `statistics` consent for H is
//!   in force, flagged with those purposes: the hub shows it in the pooled view only for
//!   `placement`, counts it in published tables only for `statistics`. The barriers `sante` and
//!   `justice` go only while `placement` and `placement-sensitive` consents for H are both in force.
//! - Age band and PASS IAE validity are computed as of the first day of the month, and the refresh
//!   moves everyone whose band or validity changed in one batch on the first run of a month: the
//!   hub's receive time says the month, never the day of a birthday or of a PASS's end.
//! - [`AnonymizedProfile`] is built field by field from bands and codes: no name, contact, birth
//!   date, commune or free text can be copied into it, because it has no field to hold them.
//! - Its key at the hub is a pseudonym: HMAC-SHA-256 of (hub id, person id) under a secret made at
//!   the store's first open and never exported — different per hub, reversible only here.
//! - Every event that can change a hub's copy (person added, changed or erased; consent granted or
//!   withdrawn; age band moved) bumps the person's profile version and logs an outbox entry. When
//!   consent is gone, a hub that received the profile gets a tombstone for its pseudonym; a hub
//!   that never did gets nothing.
//! - Acknowledged shares and purges update the person × hub share record and the audit log.

use hmac::{Hmac, KeyInit, Mac};
use passerelle_proto::codes::Code;
use passerelle_proto::datasets::Dataset;
use passerelle_proto::date::{Date, now_unix_ms};
use passerelle_proto::v1::{
    AgeBand, AnonymizedProfile, Barrier, Change, ConsentPurpose, HoursBand, MobilityBand, Person,
    PersonFields, change,
};
use passerelle_proto::validate;
use prost::Message;
use sha2::Sha256;

use super::Node;
use crate::error::{Error, Result};
use crate::store::keys::tombstone as tombstone_key;
use crate::store::{StoreError, Tree, WriteBatch, keys, scan_prefix};

/// Meta key of the pseudonym secret.
pub(super) const PSEUDONYM_KEY: &[u8] = b"pseudonym_key";

/// What one hub received of one person.
#[derive(Clone, PartialEq, Message)]
pub struct ShareRecord {
    /// The person's pseudonym at that hub.
    #[prost(string, tag = "1")]
    pub pseudonym: String,
    /// First acknowledged share, milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub first_sent_at_ms: i64,
    /// Last acknowledged share.
    #[prost(int64, tag = "3")]
    pub last_sent_at_ms: i64,
    /// What the last share contained.
    #[prost(string, repeated, tag = "4")]
    pub categories: Vec<String>,
    /// When a purge was requested (consent withdrawn, person erased); 0 if none pending.
    #[prost(int64, tag = "5")]
    pub purge_requested_at_ms: i64,
    /// When the hub acknowledged the purge; 0 if not (yet).
    #[prost(int64, tag = "6")]
    pub purge_acked_at_ms: i64,
    /// The age band last sent, to notice birthdays that move it.
    #[prost(int32, tag = "7")]
    pub age_band: i32,
    /// When a version of the profile went into a batch for this hub and no acknowledgement has
    /// come since (0: none). Written durably *before* the batch is sent: from then on the hub may
    /// hold the profile whether or not its acknowledgement ever arrives, so a withdrawal or an
    /// erasure must send it a tombstone. (Records written before this field read 0.)
    #[prost(int64, tag = "8")]
    pub in_flight_since_ms: i64,
    /// The PASS IAE validity last sent, to notice a PASS that lapsed (`None`: a record written
    /// before it was kept; such a record is compared on its age band only).
    #[prost(bool, optional, tag = "16")]
    pub pass_iae_valid: Option<bool>,
}

impl ShareRecord {
    /// Whether the hub may hold the profile: it acknowledged a share, or one is in flight, and no
    /// purge has been acknowledged since.
    pub fn held(&self) -> bool {
        (self.last_sent_at_ms > 0 || self.in_flight_since_ms > 0) && self.purge_acked_at_ms == 0
    }
}

/// What an acknowledged change did to a person's profile at a hub.
#[derive(Debug, Clone)]
pub enum ProfileEffect {
    /// The profile was shared with these categories and age band.
    Shared {
        /// The person.
        person_id: String,
        /// What was shared.
        categories: Vec<String>,
        /// The age band sent.
        age_band: i32,
        /// The PASS IAE validity sent.
        pass_iae_valid: bool,
    },
    /// The hub purged the profile.
    Purged {
        /// The person.
        person_id: String,
    },
}

fn share_key(person_id: &str, hub_id: &str) -> Vec<u8> {
    format!("{person_id}/{hub_id}").into_bytes()
}

/// The age band of someone born on `birth` on `today`.
pub fn age_band(birth: Date, today: Date) -> AgeBand {
    match birth.age_on(today) {
        ..=25 => AgeBand::Under26,
        26..=49 => AgeBand::AgeBand2649,
        _ => AgeBand::AgeBand50Plus,
    }
}

fn hours_band(hours: Option<u32>) -> HoursBand {
    match hours {
        None => HoursBand::Unspecified,
        Some(..=20) => HoursBand::UpTo20,
        Some(21..=34) => HoursBand::HoursBand2134,
        Some(_) => HoursBand::HoursBand35Plus,
    }
}

fn mobility_band(km: Option<u32>) -> MobilityBand {
    match km {
        None => MobilityBand::Unspecified,
        Some(..=10) => MobilityBand::UpTo10Km,
        Some(11..=30) => MobilityBand::MobilityBand1130Km,
        Some(_) => MobilityBand::Over30Km,
    }
}

/// The age band and PASS IAE validity of a person as of the first day of `today`'s month: what
/// a profile sent any day of that month says, so a change shows only at a month's start.
pub fn monthly_bands(fields: &PersonFields, today: Date) -> (AgeBand, bool) {
    let as_of = today.first_of_month();
    let birth = Date::parse(&fields.birth_date).unwrap_or(as_of);
    let pass_valid =
        fields.pass_iae_end.as_deref().and_then(|d| Date::parse(d).ok()).is_some_and(|end| end >= as_of);
    (age_band(birth, as_of), pass_valid)
}

/// Builds the anonymised profile of `person` for one hub, sent for `purposes` (`placement`,
/// `statistics`). Every field is derived (a band, a month, a département, a code); bands are as of
/// the first of `today`'s month ([`monthly_bands`]); `sensitive` says whether `sante` and
/// `justice` may be included.
pub fn anonymize(
    person: &Person,
    pseudonym: String,
    holding_siret: &str,
    version: u64,
    sensitive: bool,
    purposes: &[ConsentPurpose],
    today: Date,
) -> AnonymizedProfile {
    let f = person.fields.clone().unwrap_or_default();
    let (age_band, pass_iae_valid) = monthly_bands(&f, today);
    let barriers = f
        .barriers
        .iter()
        .copied()
        .filter(|b| sensitive || !matches!(Barrier::try_from(*b), Ok(Barrier::Sante | Barrier::Justice)))
        .collect();
    AnonymizedProfile {
        pseudonym,
        holding_siret: holding_siret.to_string(),
        origin_version: version,
        age_band: age_band as i32,
        departement: validate::departement_of_commune(&f.commune).unwrap_or_default().to_string(),
        rome_codes: f.rome_codes,
        available_from: Date::parse(&f.available_from).map(|d| d.month_of().to_string()).unwrap_or_default(),
        hours_band: hours_band(f.hours_per_week) as i32,
        mobility_band: mobility_band(f.mobility_km) as i32,
        pass_iae_valid,
        barriers,
        purposes: purposes.iter().map(|p| *p as i32).collect(),
    }
}

/// The categories of personal information a profile discloses, for the person's report.
pub fn categories(profile: &AnonymizedProfile) -> Vec<String> {
    let mut out = vec![
        "age band".to_string(),
        "département".into(),
        "sought ROME codes".into(),
        "month available".into(),
    ];
    if profile.hours_band != 0 {
        out.push("hours band".into());
    }
    if profile.mobility_band != 0 {
        out.push("mobility band".into());
    }
    out.push("PASS IAE validity".into());
    for b in &profile.barriers {
        out.push(format!("barrier {}", passerelle_proto::codes::slug_of::<Barrier>(*b)));
    }
    out
}

impl Node {
    /// Creates the pseudonym secret if the store has none yet (first open).
    pub(super) fn ensure_pseudonym_key(store: &dyn crate::store::Store) -> Result<()> {
        if store.get(Tree::Meta, PSEUDONYM_KEY)?.is_none() {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key)
                .map_err(|e| Error::Store(StoreError(format!("no randomness for the pseudonym key: {e}"))))?;
            let mut batch = WriteBatch::new();
            batch.put(Tree::Meta, PSEUDONYM_KEY, key.to_vec());
            store.commit(batch)?;
        }
        Ok(())
    }

    /// The pseudonym of a person at a hub.
    pub fn pseudonym(&self, hub_id: &str, person_id: &str) -> Result<String> {
        let key = self
            .store
            .get(Tree::Meta, PSEUDONYM_KEY)?
            .ok_or_else(|| Error::Store(StoreError("missing pseudonym key".into())))?;
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key)
            .map_err(|_| Error::Store(StoreError("bad pseudonym key".into())))?;
        mac.update(hub_id.as_bytes());
        mac.update(&[0]);
        mac.update(person_id.as_bytes());
        let digest = mac.finalize().into_bytes();
        Ok(digest[..16].iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The current profile version of a person (0: none yet).
    pub(super) fn profile_version(&self, person_id: &str) -> Result<u64> {
        Ok(self
            .store
            .get(Tree::ProfileVersions, person_id.as_bytes())?
            .and_then(|raw| raw.as_slice().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0))
    }

    /// Bumps a person's profile version and logs the change, in `batch` (under the write lock).
    /// Returns the outbox sequence number.
    pub(super) fn bump_profile(&self, batch: &mut WriteBatch, person_id: &str) -> Result<u64> {
        self.bump_profile_at(batch, person_id, self.head_seq() + 1)
    }

    /// [`Node::bump_profile`] with an explicit sequence number, for several persons in one
    /// commit (each needs its own number, or their outbox entries overwrite one another).
    fn bump_profile_at(&self, batch: &mut WriteBatch, person_id: &str, seq: u64) -> Result<u64> {
        let version = self.profile_version(person_id)? + 1;
        batch.put(Tree::ProfileVersions, person_id.as_bytes().to_vec(), version.to_be_bytes());
        Ok(self.log_change_at(batch, seq, Dataset::Profiles, person_id))
    }

    /// Marks a purge as requested at every hub holding the person's profile (all hubs, or one),
    /// with audit entries, in `batch`.
    pub(super) fn request_purges(
        &self,
        batch: &mut WriteBatch,
        person_id: &str,
        only_hub: Option<&str>,
        reason: &str,
    ) -> Result<()> {
        let now = now_unix_ms();
        let mut entries = Vec::new();
        for (hub, mut share) in self.shares_of(person_id)? {
            if only_hub.is_some_and(|h| h != hub) || !share.held() || share.purge_requested_at_ms > 0 {
                continue;
            }
            share.purge_requested_at_ms = now;
            batch.put(Tree::Shares, share_key(person_id, &hub), share.encode_to_vec());
            entries.push(("purge-request".to_string(), person_id.to_string(), hub, reason.to_string()));
        }
        self.audit(batch, entries)
    }

    /// What each hub received of a person, by hub id.
    pub fn shares_of(&self, person_id: &str) -> Result<Vec<(String, ShareRecord)>> {
        let prefix = format!("{person_id}/");
        scan_prefix(self.store.as_ref(), Tree::Shares, prefix.as_bytes())?
            .into_iter()
            .map(|(k, v)| {
                let hub = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                Ok((
                    hub,
                    ShareRecord::decode(v.as_slice())
                        .map_err(|_| Error::Store(StoreError("corrupt share record".into())))?,
                ))
            })
            .collect()
    }

    /// Whether a consent for `purpose` and `hub_id` is in force for a person.
    fn consent_in_force(&self, person: &uuid::Uuid, purpose: ConsentPurpose, hub_id: &str) -> Result<bool> {
        Ok(self
            .consents_of(person)?
            .iter()
            .any(|c| c.purpose == purpose as i32 && c.hub_id == hub_id && c.withdrawn_at_ms.is_none()))
    }

    /// The purposes a person's profile is sent to `hub_id` for: `placement` and `statistics`, those
    /// whose consent is in force (empty: nothing may be sent).
    pub(super) fn sending_purposes(&self, person: &uuid::Uuid, hub_id: &str) -> Result<Vec<ConsentPurpose>> {
        let mut out = Vec::new();
        for purpose in [ConsentPurpose::Placement, ConsentPurpose::Statistics] {
            if self.consent_in_force(person, purpose, hub_id)? {
                out.push(purpose);
            }
        }
        Ok(out)
    }

    /// The change a hub must receive for a person's profile now: the profile under consent, a
    /// tombstone if the hub holds it without consent (or the person was erased), or nothing.
    pub fn profile_change(&self, person_id: &str, hub_id: &str) -> Result<Option<(Change, ProfileEffect)>> {
        let id = super::parse_id("key", person_id)?;
        // The version is read *before* the consents: sync reads without the writer lock, and a
        // withdrawal committed between two reads must not give the profile the version of its
        // own tombstone (the hub would then keep the profile, the tombstone being no newer).
        let version_before = self.profile_version(person_id)?;
        let pseudonym = self.pseudonym(hub_id, person_id)?;
        let held = self
            .store
            .get(Tree::Shares, &share_key(person_id, hub_id))?
            .and_then(|raw| ShareRecord::decode(raw.as_slice()).ok())
            .is_some_and(|s| s.held());
        let person: Option<Person> = self.load(Tree::Persons, &keys::id(&id))?;
        let purposes = match person {
            Some(_) => self.sending_purposes(&id, hub_id)?,
            None => Vec::new(),
        };
        if let (Some(person), false) = (&person, purposes.is_empty()) {
            let version = version_before;
            let sensitive = purposes.contains(&ConsentPurpose::Placement)
                && self.consent_in_force(&id, ConsentPurpose::PlacementSensitive, hub_id)?;
            let profile = anonymize(
                person,
                pseudonym.clone(),
                &self.structure.siret,
                version,
                sensitive,
                &purposes,
                Date::today(),
            );
            let effect = ProfileEffect::Shared {
                person_id: person_id.to_string(),
                categories: categories(&profile),
                age_band: profile.age_band,
                pass_iae_valid: profile.pass_iae_valid,
            };
            let change = Change {
                dataset: Dataset::Profiles.to_string(),
                key: pseudonym,
                version,
                payload: Some(change::Payload::Profile(profile)),
                ..Default::default()
            };
            return Ok(Some((change, effect)));
        }
        if !held {
            return Ok(None);
        }
        let version = match person {
            Some(_) => self.profile_version(person_id)?,
            None => self
                .store
                .get(Tree::Tombstones, &tombstone_key(Dataset::Profiles, person_id))?
                .and_then(|raw| raw.as_slice().try_into().ok().map(u64::from_be_bytes))
                .unwrap_or_else(|| self.profile_version(person_id).unwrap_or(0) + 1),
        };
        let reason = if person.is_some() { "withdrawn" } else { "erased" };
        let change = Change {
            dataset: Dataset::Profiles.to_string(),
            key: pseudonym,
            version,
            payload: Some(change::Payload::Tombstone(self.tombstone(hub_id, reason))),
            ..Default::default()
        };
        Ok(Some((change, ProfileEffect::Purged { person_id: person_id.to_string() })))
    }

    /// Marks the profiles of `person_ids` as possibly held by `hub_id`, durably, before the batch
    /// carrying them is sent (see [`ShareRecord::in_flight_since_ms`]).
    pub(crate) fn record_profiles_in_flight(&self, hub_id: &str, person_ids: &[String]) -> Result<()> {
        if person_ids.is_empty() {
            return Ok(());
        }
        let now = now_unix_ms();
        let _writer = self.write_lock();
        let mut batch = WriteBatch::new();
        for person_id in person_ids {
            let key = share_key(person_id, hub_id);
            let mut share = match self.store.get(Tree::Shares, &key)? {
                Some(raw) => ShareRecord::decode(raw.as_slice()).unwrap_or_default(),
                None => ShareRecord { pseudonym: self.pseudonym(hub_id, person_id)?, ..Default::default() },
            };
            if share.in_flight_since_ms > 0 && share.purge_acked_at_ms == 0 {
                continue;
            }
            share.in_flight_since_ms = now;
            if share.purge_acked_at_ms > 0 {
                // A new share after an acknowledged purge: held again until purged again.
                share.purge_requested_at_ms = 0;
                share.purge_acked_at_ms = 0;
            }
            batch.put(Tree::Shares, key, share.encode_to_vec());
        }
        self.commit(batch)
    }

    /// Records what a hub acknowledged: share records and audit entries, durably.
    pub fn record_profile_acks(&self, hub_id: &str, effects: &[ProfileEffect]) -> Result<()> {
        if effects.is_empty() {
            return Ok(());
        }
        let now = now_unix_ms();
        let _writer = self.write_lock();
        let mut batch = WriteBatch::new();
        let mut entries = Vec::new();
        for effect in effects {
            match effect {
                ProfileEffect::Shared { person_id, categories, age_band, pass_iae_valid } => {
                    let key = share_key(person_id, hub_id);
                    let mut share = match self.store.get(Tree::Shares, &key)? {
                        Some(raw) => ShareRecord::decode(raw.as_slice()).unwrap_or_default(),
                        None => ShareRecord {
                            pseudonym: self.pseudonym(hub_id, person_id)?,
                            first_sent_at_ms: now,
                            ..Default::default()
                        },
                    };
                    share.last_sent_at_ms = now;
                    share.in_flight_since_ms = 0;
                    share.categories.clone_from(categories);
                    share.age_band = *age_band;
                    share.pass_iae_valid = Some(*pass_iae_valid);
                    share.purge_requested_at_ms = 0;
                    share.purge_acked_at_ms = 0;
                    batch.put(Tree::Shares, key, share.encode_to_vec());
                    entries.push((
                        "share".into(),
                        person_id.clone(),
                        hub_id.to_string(),
                        categories.join(", "),
                    ));
                }
                ProfileEffect::Purged { person_id } => {
                    let key = share_key(person_id, hub_id);
                    if let Some(raw) = self.store.get(Tree::Shares, &key)? {
                        let mut share = ShareRecord::decode(raw.as_slice()).unwrap_or_default();
                        // A share put in flight after this purge was requested is not covered
                        // by its acknowledgement: the profile may be back at the hub.
                        let newer_in_flight = share.in_flight_since_ms > share.purge_requested_at_ms
                            && share.purge_requested_at_ms > 0;
                        if share.purge_acked_at_ms == 0 && !newer_in_flight {
                            if share.purge_requested_at_ms == 0 {
                                share.purge_requested_at_ms = now;
                            }
                            share.purge_acked_at_ms = now;
                            batch.put(Tree::Shares, key, share.encode_to_vec());
                            entries.push((
                                "purge-ack".into(),
                                person_id.clone(),
                                hub_id.to_string(),
                                String::new(),
                            ));
                        }
                    }
                }
            }
        }
        self.audit(&mut batch, entries)?;
        self.commit(batch)
    }

    /// Re-logs the profiles whose age band or PASS IAE validity as of the first of this month
    /// differs from what was sent; returns how many. Run at start and daily: only the first run of
    /// a month finds anything, and moves everyone of that month in one batch.
    pub fn refresh_age_bands(&self) -> Result<usize> {
        self.refresh_age_bands_on(Date::today())
    }

    /// [`Node::refresh_age_bands`] as of `today` (tests move the calendar).
    pub(crate) fn refresh_age_bands_on(&self, today: Date) -> Result<usize> {
        let mut moved = Vec::new();
        for (key, raw) in self.store.scan(Tree::Shares, &[], None, usize::MAX)? {
            let Ok(share) = ShareRecord::decode(raw.as_slice()) else { continue };
            if !share.held() {
                continue;
            }
            let key = String::from_utf8_lossy(&key).into_owned();
            let Some((person_id, _)) = key.split_once('/') else { continue };
            let Ok(id) = super::parse_id("person_id", person_id) else { continue };
            let Some(person) = self.load::<Person>(Tree::Persons, &keys::id(&id))? else { continue };
            let Some(fields) = person.fields.as_ref() else { continue };
            let (band, pass_valid) = monthly_bands(fields, today);
            let changed =
                band as i32 != share.age_band || share.pass_iae_valid.is_some_and(|sent| sent != pass_valid);
            if changed && !moved.contains(&person_id.to_string()) {
                moved.push(person_id.to_string());
            }
        }
        if moved.is_empty() {
            return Ok(0);
        }
        let _writer = self.write_lock();
        let mut batch = WriteBatch::new();
        let mut seq = self.head_seq();
        for person_id in &moved {
            seq = self.bump_profile_at(&mut batch, person_id, seq + 1)?;
        }
        self.commit_change(batch, seq)?;
        Ok(moved.len())
    }

    /// Every person id with a profile history (live persons and erased ones).
    pub fn profile_person_ids(&self) -> Result<Vec<String>> {
        self.profile_keys()
    }

    /// Every person id with a profile history (live persons and erased ones), for a full resend.
    pub(super) fn profile_keys(&self) -> Result<Vec<String>> {
        let mut ids: Vec<String> =
            self.load_all::<Person>(Tree::Persons)?.into_iter().map(|p| p.id).collect();
        let prefix = tombstone_key(Dataset::Profiles, "");
        for (key, _) in scan_prefix(self.store.as_ref(), Tree::Tombstones, &prefix)? {
            ids.push(String::from_utf8_lossy(&key[prefix.len()..]).into_owned());
        }
        Ok(ids)
    }

    /// (pseudonym, version) of every profile hub `hub_id` should hold, for the digest.
    pub(super) fn profile_digest_keys(&self, hub_id: &str) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        for person in self.load_all::<Person>(Tree::Persons)? {
            let id = super::parse_id("person_id", &person.id)?;
            if !self.sending_purposes(&id, hub_id)?.is_empty() {
                out.push((self.pseudonym(hub_id, &person.id)?, self.profile_version(&person.id)?));
            }
        }
        Ok(out)
    }
}

/// The slug of an age band, for display.
pub fn age_band_slug(band: i32) -> &'static str {
    AgeBand::try_from(band).map(Code::slug).unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;
    use passerelle_proto::v1::PersonFields;
    use proptest::prelude::*;

    fn contains(haystack: &[u8], needle: &str) -> bool {
        !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    proptest! {
        /// Whatever a person's details, the bytes of their anonymised profile contain none of
        /// their name, birth date, phone, e-mail or commune code.
        #[test]
        fn profile_bytes_never_carry_personal_data(
            first in "[A-Za-zéèçÉ' -]{3,30}",
            last in "[A-Za-zéèçÉ' -]{3,30}",
            year in 1940i32..2008,
            month in 1u8..=12,
            day in 1u8..=28,
            dep in prop::sample::select(vec!["49", "44", "85", "2A", "971", "13"]),
            suffix in 0u32..1000,
            phone in "0[1-9]( [0-9]{2}){4}",
            email_user in "[a-z]{3,12}",
            barriers in prop::collection::vec(1i32..=9, 0..5),
            hours in prop::option::of(1u32..=48),
            km in prop::option::of(0u32..=500),
            sensitive in any::<bool>(),
        ) {
            let commune = if dep.len() == 3 { format!("{dep}{:02}", suffix % 100) } else { format!("{dep}{suffix:03}") };
            let birth = format!("{year:04}-{month:02}-{day:02}");
            let email = format!("{email_user}@example.fr");
            let mut unique = barriers.clone();
            unique.sort_unstable();
            unique.dedup();
            let person = Person {
                id: "01920000-0000-7000-8000-000000000000".into(),
                fields: Some(PersonFields {
                    first_name: first.clone(),
                    last_name: last.clone(),
                    birth_date: birth.clone(),
                    commune: commune.clone(),
                    phone: Some(phone.clone()),
                    email: Some(email.clone()),
                    rome_codes: vec!["K2204".into()],
                    available_from: "2027-01-04".into(),
                    hours_per_week: hours,
                    mobility_km: km,
                    barriers: unique,
                    pass_iae_end: Some("2027-06-30".into()),
                }),
                ..Default::default()
            };
            let today = Date::parse("2026-11-22").map_err(|e| TestCaseError::fail(e.0))?;
            // Digits and "f" only: no generated name or e-mail user can occur in it by chance.
            let profile = anonymize(
                &person,
                "0f".repeat(16),
                "73282932000074",
                1,
                sensitive,
                &[ConsentPurpose::Placement],
                today,
            );
            let bytes = profile.encode_to_vec();
            for secret in [first.trim(), last.trim(), &birth, &commune, &phone, &email, email_user.as_str()] {
                if secret.len() >= 3 {
                    prop_assert!(!contains(&bytes, secret), "{secret:?} leaked");
                }
            }
            prop_assert_eq!(profile.departement, dep);
            let has_sensitive = profile.barriers.iter().any(|b| *b == Barrier::Sante as i32 || *b == Barrier::Justice as i32);
            prop_assert!(sensitive || !has_sensitive, "sensitive barriers need their own consent");
        }
    }

    #[test]
    fn bands() {
        let today = Date { year: 2026, month: 11, day: 22 };
        assert_eq!(
            age_band(Date { year: 2000, month: 11, day: 23 }, today),
            AgeBand::Under26,
            "25 the day before"
        );
        assert_eq!(
            age_band(Date { year: 2000, month: 11, day: 22 }, today),
            AgeBand::AgeBand2649,
            "26 on the day"
        );
        assert_eq!(age_band(Date { year: 1976, month: 11, day: 22 }, today), AgeBand::AgeBand50Plus);
        assert_eq!(hours_band(Some(20)), HoursBand::UpTo20);
        assert_eq!(mobility_band(Some(31)), MobilityBand::Over30Km);
    }
}
