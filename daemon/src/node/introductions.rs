//! Introductions on a node: the requests this structure sends (`o/ID`) and those routed to it
//! (`i/ID`), in the `introductions` tree, one [`Introduction`] record each.
//!
//! Everything owed to a hub is a flag on these records (a queued request, an answer, an outcome, a
//! purge acknowledgement), set in the same commit as the change, cleared once the hub answered:
//! the records are their own outbox, and `node/introductions_sync.rs` sends what is flagged.
//!
//! As a holder: a request's pseudonyms are mapped back to persons at receipt, after its
//! requester's certificate chain was checked against this node's CAs; accepting records a consent
//! (purpose `introduction`, per person × request, recipient the requester) and seals the chosen
//! fields to the requester's certificate key in the same commit, audited. Withdrawing (or erasing
//! the person) withdraws that consent and asks the requester, through the hub, to delete them.
//! As a requester: candidates' fields are opened on arrival and kept until
//! `[node] introduction_retention_days` after the outcome or the request's expiry; a withdrawal
//! deletes them at once and is acknowledged. Every share and purge is in the audit log.

use std::path::PathBuf;
use std::time::Duration;

use passerelle_proto::codes::{Code, slug_of};
use passerelle_proto::date::now_unix_ms;
use passerelle_proto::v1::{
    AcceptIntroductionRequest, CandidateFields, Consent, ConsentPurpose, DeclineReason, InboundIntroduction,
    Introduction, IntroductionCandidate, IntroductionOutcome, IntroductionPerson, IntroductionReply,
    IntroductionStatus, MailboxResponse, NeedStatus, OutboundIntroduction, PersonIntroduction, SharedField,
    introduction_reply,
};
use passerelle_proto::validate::{self, FieldError};
use prost::Message;
use uuid::Uuid;

use super::{Node, parse_id, sealing};
use crate::error::{Error, Result};
use crate::store::{Tree, WriteBatch, keys, scan_prefix};

/// `out` or `in`: whose request it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// This structure's own requests.
    Out,
    /// Requests routed to this structure as a holder.
    In,
}

impl Direction {
    /// Parses `in` / `out`.
    pub(crate) fn parse(field: &str, value: &str) -> Result<Self> {
        match value {
            "out" => Ok(Self::Out),
            "in" => Ok(Self::In),
            _ => Err(FieldError::new(field, value, "expected in or out").into()),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Out => "out",
            Self::In => "in",
        }
    }

    fn prefix(self) -> &'static [u8] {
        match self {
            Self::Out => b"o/",
            Self::In => b"i/",
        }
    }

    fn key(self, id: &str) -> Vec<u8> {
        [self.prefix(), id.as_bytes()].concat()
    }
}

/// What a holder's person answered, as stored in [`IntroductionPerson::state`].
const PENDING: &str = "pending";
const ACCEPTED: &str = "accepted";
const DECLINED: &str = "declined";
const WITHDRAWN: &str = "withdrawn";
/// An acceptance the hub refused (the request had expired or was cancelled): nothing was shared.
const REFUSED: &str = "refused";

/// What the node needs to take part in introductions: its CAs (to check a requester's chain) and
/// its key (to open what is sealed to it).
#[derive(Debug, Clone)]
pub(crate) struct IntroductionKeys {
    /// `[tls] ca`: one or several CA certificates.
    pub ca: PathBuf,
    /// `[tls] key`.
    pub key: PathBuf,
    /// `[node] introduction_retention_days`.
    pub retention: Duration,
}

/// One answer owed to a hub, and how to mark it sent.
#[derive(Debug, Clone)]
pub(crate) struct OwedReply {
    /// The answer.
    pub reply: IntroductionReply,
    /// The record's direction.
    direction: Direction,
}

impl Node {
    fn load_intro(&self, direction: Direction, id: &str) -> Result<Option<Introduction>> {
        self.load(Tree::Introductions, &direction.key(id))
    }

    fn put_intro(batch: &mut WriteBatch, direction: Direction, intro: &Introduction) {
        batch.put(Tree::Introductions, direction.key(&intro.id), intro.encode_to_vec());
    }

    fn intros(&self, direction: Direction) -> Result<Vec<Introduction>> {
        scan_prefix(self.store.as_ref(), Tree::Introductions, direction.prefix())?
            .into_iter()
            .map(|(_, raw)| super::decode(Tree::Introductions, &raw))
            .collect()
    }

    fn intro_or_not_found(&self, direction: Direction, id: &str) -> Result<Introduction> {
        parse_id("id", id)?;
        self.load_intro(direction, id)?
            .ok_or_else(|| Error::NotFound { what: "introduction", id: id.to_string() })
    }

    /// Records a request for candidates for `need_id`, queued for `hub_id` (the caller picked it
    /// among the hubs the need is shared with).
    pub(crate) fn create_introduction(&self, need_id: &str, hub_id: &str) -> Result<Introduction> {
        let need = self.get_need(need_id)?;
        if need.status != NeedStatus::Open as i32 {
            return Err(Error::FailedPrecondition(format!(
                "need_id \"{need_id}\": closed, only open needs can be introduced"
            )));
        }
        let now = now_unix_ms();
        let intro = Introduction {
            id: Uuid::now_v7().to_string(),
            direction: Direction::Out.as_str().into(),
            hub_id: hub_id.into(),
            status: IntroductionStatus::Queued as i32,
            requester: Some(self.structure.clone()),
            need: Some(super::projection::share_need(&self.structure.siret, &need)),
            created_at_ms: now,
            ..Default::default()
        };
        let _writer = self.write_lock();
        let mut batch = WriteBatch::new();
        Self::put_intro(&mut batch, Direction::Out, &intro);
        self.commit(batch)?;
        Ok(intro)
    }

    /// The hub routed (or already knew) a queued request.
    pub(crate) fn introduction_sent(
        &self,
        id: &str,
        status: i32,
        expires_at_ms: i64,
    ) -> Result<Introduction> {
        let _writer = self.write_lock();
        let mut intro = self.intro_or_not_found(Direction::Out, id)?;
        intro.status = status;
        intro.routed = true;
        intro.expires_at_ms = expires_at_ms;
        let mut batch = WriteBatch::new();
        Self::put_intro(&mut batch, Direction::Out, &intro);
        self.commit(batch)?;
        Ok(intro)
    }

    /// The hub refused a request: it is forgotten (`delete`, when the caller is told at once) or
    /// kept as cancelled (refused later, by sync).
    pub(crate) fn introduction_refused(&self, id: &str, delete: bool) -> Result<()> {
        let _writer = self.write_lock();
        let mut batch = WriteBatch::new();
        if delete {
            batch.delete(Tree::Introductions, Direction::Out.key(id));
        } else if let Some(mut intro) = self.load_intro(Direction::Out, id)? {
            intro.status = IntroductionStatus::Cancelled as i32;
            Self::put_intro(&mut batch, Direction::Out, &intro);
        }
        self.commit(batch)
    }

    /// Requests still waiting for `hub_id`.
    pub(crate) fn queued_introductions(&self, hub_id: &str) -> Result<Vec<Introduction>> {
        Ok(self
            .intros(Direction::Out)?
            .into_iter()
            .filter(|i| i.hub_id == hub_id && i.status == IntroductionStatus::Queued as i32)
            .collect())
    }

    /// Requests of one direction, oldest first; `in` ones with their persons' names (read now from
    /// the persons, never stored with the request).
    pub(crate) fn list_introductions(&self, direction: Direction) -> Result<Vec<Introduction>> {
        let now = now_unix_ms();
        let mut all = self.intros(direction)?;
        for intro in &mut all {
            if intro.status == IntroductionStatus::Open as i32
                && intro.expires_at_ms > 0
                && now >= intro.expires_at_ms
            {
                intro.status = IntroductionStatus::Expired as i32;
            }
            intro.requester_chain.clear();
            for person in &mut intro.persons {
                person.sealed = None;
                if let Ok(p) = self.get_person(&person.person_id) {
                    let f = p.fields.unwrap_or_default();
                    person.name = format!("{} {}", f.first_name, f.last_name);
                }
            }
        }
        Ok(all)
    }

    /// `introduction accept`: consent, sealed fields and audit entry in one commit.
    pub(crate) fn accept_introduction(&self, request: AcceptIntroductionRequest) -> Result<Introduction> {
        validate::line("text_version", &request.text_version, 1, 64)?;
        validate::line("collected_by", &request.collected_by, 0, 100)?;
        let mut share = Vec::new();
        for field in &request.share {
            validate::code::<SharedField>("share", *field)?;
            let field = SharedField::try_from(*field).unwrap_or(SharedField::Unspecified);
            if !share.contains(&field) {
                share.push(field);
            }
        }
        for required in [SharedField::FirstName, SharedField::Phone] {
            if !share.contains(&required) {
                return Err(FieldError::rule(
                    "share",
                    format!("must include first-name and phone (missing {})", required.slug()),
                )
                .into());
            }
        }
        let _writer = self.write_lock();
        let mut intro = self.intro_or_not_found(Direction::In, &request.id)?;
        open_for_answers(&intro)?;
        let person = self.get_person(&request.person_id)?;
        let fields = person.fields.unwrap_or_default();
        let mut shared = CandidateFields { first_name: fields.first_name.clone(), ..Default::default() };
        for field in &share {
            let missing =
                |what: &str| FieldError::new("share", what, "the person has no value for this field");
            match field {
                SharedField::Phone => {
                    shared.phone = Some(fields.phone.clone().ok_or_else(|| missing("phone"))?)
                }
                SharedField::Email => {
                    shared.email = Some(fields.email.clone().ok_or_else(|| missing("email"))?)
                }
                SharedField::LastName => shared.last_name = Some(fields.last_name.clone()),
                SharedField::FirstName | SharedField::Unspecified => {}
            }
        }
        let requester = intro.requester.clone().unwrap_or_default();
        let end_entity = intro.requester_chain.first().cloned().ok_or_else(|| {
            Error::FailedPrecondition(format!("introduction {}: no requester certificate", intro.id))
        })?;
        let hub_id = intro.hub_id.clone();
        let slot = pending_person(&mut intro, &request.person_id)?;
        let candidate = Uuid::new_v4().to_string();
        let sealed = sealing::seal(&end_entity, &request.id, &candidate, &shared)?;
        let now = now_unix_ms();
        let consent = Consent {
            id: Uuid::now_v7().to_string(),
            person_id: request.person_id.clone(),
            purpose: ConsentPurpose::Introduction as i32,
            hub_id: hub_id.clone(),
            text_version: request.text_version,
            collected_by: request.collected_by,
            granted_at_ms: now,
            withdrawn_at_ms: None,
            introduction_id: request.id.clone(),
            recipient_siret: requester.siret.clone(),
        };
        slot.state = ACCEPTED.into();
        slot.candidate = candidate;
        slot.shared = share.iter().map(|f| *f as i32).collect();
        slot.answered_at_ms = now;
        slot.unsent = true;
        slot.consent_id = consent.id.clone();
        slot.sealed = Some(sealed);
        let person_key = parse_id("person_id", &request.person_id)?;
        let consent_key = parse_id("consent_id", &consent.id)?;
        let mut batch = WriteBatch::new();
        batch.put(Tree::Consents, keys::id(&consent_key), consent.encode_to_vec());
        batch.put(Tree::ConsentsByPerson, keys::pair(&person_key, &consent_key), Vec::new());
        Self::put_intro(&mut batch, Direction::In, &intro);
        let detail = format!(
            "introduction {} to {} ({}): {}",
            intro.id,
            requester.siret,
            requester.name,
            share.iter().map(|f| f.slug()).collect::<Vec<_>>().join(",")
        );
        self.audit(
            &mut batch,
            vec![("introduction-share".into(), request.person_id, intro.hub_id.clone(), detail)],
        )?;
        self.commit(batch)?;
        Ok(intro)
    }

    /// `introduction decline`: counted at the requester, without identity.
    pub(crate) fn decline_introduction(
        &self,
        id: &str,
        person_id: &str,
        reason: i32,
    ) -> Result<Introduction> {
        validate::code::<DeclineReason>("reason", reason)?;
        let _writer = self.write_lock();
        let mut intro = self.intro_or_not_found(Direction::In, id)?;
        open_for_answers(&intro)?;
        let slot = pending_person(&mut intro, person_id)?;
        slot.state = DECLINED.into();
        slot.reason = reason;
        slot.answered_at_ms = now_unix_ms();
        slot.unsent = true;
        let mut batch = WriteBatch::new();
        Self::put_intro(&mut batch, Direction::In, &intro);
        self.commit(batch)?;
        Ok(intro)
    }

    /// `introduction withdraw`: the person changed their mind.
    pub(crate) fn withdraw_introduction(&self, id: &str, person_id: &str) -> Result<Introduction> {
        parse_id("person_id", person_id)?;
        let _writer = self.write_lock();
        let mut intro = self.intro_or_not_found(Direction::In, id)?;
        let mut batch = WriteBatch::new();
        let done =
            self.stage_withdrawal(&mut batch, &mut intro, person_id, "the person changed their mind")?;
        if !done {
            return Err(Error::FailedPrecondition(format!(
                "introduction {id}: person {person_id} has no accepted introduction to withdraw"
            )));
        }
        Self::put_intro(&mut batch, Direction::In, &intro);
        self.commit(batch)?;
        Ok(intro)
    }

    /// Withdraws every accepted introduction of an erased person (called in the erasure's batch).
    pub(super) fn stage_introduction_erasure(&self, batch: &mut WriteBatch, person_id: &str) -> Result<()> {
        for mut intro in self.intros(Direction::In)? {
            if self.stage_withdrawal(batch, &mut intro, person_id, "person erased")? {
                Self::put_intro(batch, Direction::In, &intro);
            }
        }
        Ok(())
    }

    /// Marks `person_id`'s acceptance in `intro` withdrawn (consent too) and owed to the hub;
    /// whether there was one.
    fn stage_withdrawal(
        &self,
        batch: &mut WriteBatch,
        intro: &mut Introduction,
        person_id: &str,
        why: &str,
    ) -> Result<bool> {
        let now = now_unix_ms();
        let Some(slot) = intro.persons.iter_mut().find(|p| p.person_id == person_id && p.state == ACCEPTED)
        else {
            return Ok(false);
        };
        slot.state = WITHDRAWN.into();
        slot.withdrawn_at_ms = now;
        // Sealed fields not yet sent never leave: nothing to withdraw at the hub then.
        slot.unsent = slot.sealed.take().is_none();
        if let Ok(consent_key) = parse_id("consent_id", &slot.consent_id)
            && let Some(mut consent) = self.load::<Consent>(Tree::Consents, &keys::id(&consent_key))?
            && consent.withdrawn_at_ms.is_none()
        {
            consent.withdrawn_at_ms = Some(now.max(consent.granted_at_ms));
            batch.put(Tree::Consents, keys::id(&consent_key), consent.encode_to_vec());
        }
        let detail = format!("introduction {}: candidate {} withdrawn ({why})", intro.id, slot.candidate);
        self.audit(
            batch,
            vec![("introduction-withdraw".into(), person_id.into(), intro.hub_id.clone(), detail)],
        )?;
        Ok(true)
    }

    /// `introduction outcome`, on the requester's node.
    pub(crate) fn record_introduction_outcome(
        &self,
        id: &str,
        candidate: &str,
        outcome: i32,
    ) -> Result<Introduction> {
        validate::code::<IntroductionOutcome>("outcome", outcome)?;
        let _writer = self.write_lock();
        let mut intro = self.intro_or_not_found(Direction::Out, id)?;
        let c = intro
            .candidates
            .iter_mut()
            .find(|c| c.candidate == candidate)
            .ok_or_else(|| Error::NotFound { what: "candidate", id: candidate.to_string() })?;
        c.outcome = outcome;
        c.outcome_at_ms = now_unix_ms();
        c.outcome_unsent = true;
        let mut batch = WriteBatch::new();
        Self::put_intro(&mut batch, Direction::Out, &intro);
        self.commit(batch)?;
        Ok(intro)
    }

    /// Every answer owed to `hub_id`.
    pub(crate) fn owed_replies(&self, hub_id: &str) -> Result<Vec<OwedReply>> {
        use introduction_reply::Kind;
        let mut owed = Vec::new();
        for intro in self.intros(Direction::In)?.into_iter().filter(|i| i.hub_id == hub_id) {
            for (person, pseudonym) in intro.persons.iter().zip(&intro.pseudonyms) {
                if !person.unsent {
                    continue;
                }
                let kind = match person.state.as_str() {
                    ACCEPTED => Kind::Accept(passerelle_proto::v1::IntroductionAccept {
                        pseudonym: pseudonym.clone(),
                        candidate: person.candidate.clone(),
                        sealed: person.sealed.clone(),
                    }),
                    DECLINED => Kind::Decline(passerelle_proto::v1::IntroductionDecline {
                        pseudonym: pseudonym.clone(),
                        reason: person.reason,
                    }),
                    WITHDRAWN => Kind::Withdraw(person.candidate.clone()),
                    _ => continue,
                };
                owed.push(OwedReply {
                    reply: IntroductionReply { request_id: intro.id.clone(), kind: Some(kind) },
                    direction: Direction::In,
                });
            }
        }
        for intro in self.intros(Direction::Out)?.into_iter().filter(|i| i.hub_id == hub_id) {
            for c in &intro.candidates {
                if c.outcome_unsent {
                    owed.push(OwedReply {
                        reply: IntroductionReply {
                            request_id: intro.id.clone(),
                            kind: Some(Kind::Outcome(passerelle_proto::v1::CandidateOutcome {
                                candidate: c.candidate.clone(),
                                outcome: c.outcome,
                            })),
                        },
                        direction: Direction::Out,
                    });
                }
                if c.purge_unsent {
                    owed.push(OwedReply {
                        reply: IntroductionReply {
                            request_id: intro.id.clone(),
                            kind: Some(Kind::Purged(c.candidate.clone())),
                        },
                        direction: Direction::Out,
                    });
                }
            }
        }
        Ok(owed)
    }

    /// The hub has `owed`, or refused it for good (`refusal`): its flag is cleared, an accepted
    /// answer's sealed copy dropped. A refused acceptance shared nothing: the person's slot says
    /// so, and the consent recorded for it is withdrawn (audited).
    pub(crate) fn reply_delivered(&self, owed: &OwedReply, refusal: Option<&str>) -> Result<()> {
        use introduction_reply::Kind;
        let _writer = self.write_lock();
        let id = &owed.reply.request_id;
        let Some(mut intro) = self.load_intro(owed.direction, id)? else { return Ok(()) };
        let mut batch = WriteBatch::new();
        match &owed.reply.kind {
            Some(Kind::Accept(a)) => {
                let hub_id = intro.hub_id.clone();
                if let Some(p) =
                    intro.persons.iter_mut().find(|p| p.candidate == a.candidate && p.state == ACCEPTED)
                {
                    p.unsent = false;
                    p.sealed = None;
                    if let Some(why) = refusal {
                        p.state = REFUSED.into();
                        if let Ok(consent_key) = parse_id("consent_id", &p.consent_id)
                            && let Some(mut consent) =
                                self.load::<Consent>(Tree::Consents, &keys::id(&consent_key))?
                            && consent.withdrawn_at_ms.is_none()
                        {
                            consent.withdrawn_at_ms = Some(now_unix_ms().max(consent.granted_at_ms));
                            batch.put(Tree::Consents, keys::id(&consent_key), consent.encode_to_vec());
                        }
                        let detail = format!("introduction {id}: nothing shared, the hub refused ({why})");
                        let entry = ("introduction-refused".into(), p.person_id.clone(), hub_id, detail);
                        self.audit(&mut batch, vec![entry])?;
                    }
                }
            }
            Some(Kind::Decline(d)) => {
                if let Some(i) = intro.pseudonyms.iter().position(|p| *p == d.pseudonym)
                    && let Some(p) = intro.persons.get_mut(i)
                {
                    p.unsent = false;
                }
            }
            Some(Kind::Withdraw(candidate)) => {
                if let Some(p) = intro.persons.iter_mut().find(|p| p.candidate == *candidate) {
                    p.unsent = false;
                }
            }
            Some(Kind::Outcome(o)) => {
                if let Some(c) = intro.candidates.iter_mut().find(|c| c.candidate == o.candidate) {
                    c.outcome_unsent = false;
                }
            }
            Some(Kind::Purged(candidate)) => {
                if let Some(c) = intro.candidates.iter_mut().find(|c| c.candidate == *candidate) {
                    c.purge_unsent = false;
                }
            }
            None => {}
        }
        Self::put_intro(&mut batch, owed.direction, &intro);
        self.commit(batch)
    }

    /// Applies a hub's mailbox in one commit: new requests routed here (checked and mapped to
    /// persons), their outcomes and purges; this structure's requests, their candidates opened,
    /// withdrawn ones deleted; then the retention sweep. Then, in a second commit, this
    /// structure's requests the hub no longer holds lose their candidates' fields
    /// ([`Node::stage_forgotten`]).
    pub(crate) fn apply_mailbox(
        &self,
        hub_id: &str,
        mailbox: MailboxResponse,
        keys: &IntroductionKeys,
        secret: &p256::SecretKey,
    ) -> Result<()> {
        let _writer = self.write_lock();
        let listed: std::collections::HashSet<String> =
            mailbox.outbound.iter().map(|o| o.id.clone()).collect();
        let mut batch = WriteBatch::new();
        let mut pseudonyms: Option<std::collections::HashMap<String, String>> = None;
        for inbound in mailbox.inbound {
            if let Some(intro) = self.apply_inbound(&mut batch, hub_id, inbound, keys, &mut pseudonyms)? {
                Self::put_intro(&mut batch, Direction::In, &intro);
            }
        }
        for outbound in mailbox.outbound {
            if let Some(intro) = self.apply_outbound(&mut batch, hub_id, outbound, secret)? {
                Self::put_intro(&mut batch, Direction::Out, &intro);
            }
        }
        self.stage_retention(&mut batch, keys.retention, now_unix_ms())?;
        self.commit(batch)?;
        // Read again after that commit, so the two stages never write one record twice.
        let mut batch = WriteBatch::new();
        self.stage_forgotten(&mut batch, hub_id, &listed, now_unix_ms())?;
        if batch.is_empty() { Ok(()) } else { self.commit(batch) }
    }

    /// Deletes the fields of candidates of this structure's requests to `hub_id` that the hub's
    /// mailbox (`listed`) no longer holds once they expired — it forgets a request `[hub]
    /// introduction_retention_days` after its expiry — and shows such a request expired. Why:
    /// a person's withdrawal travels with the request, so once the hub has forgotten it, no
    /// withdrawal can reach here any more, and fields kept longer would outlive the person's say.
    fn stage_forgotten(
        &self,
        batch: &mut WriteBatch,
        hub_id: &str,
        listed: &std::collections::HashSet<String>,
        now: i64,
    ) -> Result<usize> {
        let mut purged = 0;
        for mut intro in self.intros(Direction::Out)? {
            // Only past its expiry: a mailbox read just before the hub routed a new request
            // does not list it either.
            let expired = intro.expires_at_ms > 0 && now >= intro.expires_at_ms;
            if intro.hub_id != hub_id
                || intro.status == IntroductionStatus::Queued as i32
                || !expired
                || listed.contains(&intro.id)
            {
                continue;
            }
            let mut changed = false;
            if intro.status == IntroductionStatus::Open as i32 {
                intro.status = IntroductionStatus::Expired as i32;
                changed = true;
            }
            for c in &mut intro.candidates {
                if c.fields.take().is_some() {
                    c.purged_at_ms = now;
                    changed = true;
                    purged += 1;
                    let detail = format!(
                        "introduction {}: fields deleted (hub {hub_id} no longer holds the request, so no withdrawal could reach here)",
                        intro.id
                    );
                    self.audit(
                        batch,
                        vec![("introduction-purge".into(), c.candidate.clone(), hub_id.into(), detail)],
                    )?;
                }
            }
            if changed {
                Self::put_intro(batch, Direction::Out, &intro);
            }
        }
        Ok(purged)
    }

    fn apply_inbound(
        &self,
        batch: &mut WriteBatch,
        hub_id: &str,
        inbound: InboundIntroduction,
        keys: &IntroductionKeys,
        pseudonyms: &mut Option<std::collections::HashMap<String, String>>,
    ) -> Result<Option<Introduction>> {
        if parse_id("id", &inbound.id).is_err() {
            return Ok(None);
        }
        let mut intro = match self.load_intro(Direction::In, &inbound.id)? {
            Some(intro) if intro.hub_id == hub_id => intro,
            Some(_) => return Ok(None),
            None => {
                let requester = inbound.requester.clone().unwrap_or_default();
                if let Err(e) =
                    sealing::verify_requester_chain(&keys.ca, &inbound.requester_chain, &requester.siret)
                {
                    tracing::warn!(request = %inbound.id, error = %e, "introduction refused");
                    return Ok(None);
                }
                if pseudonyms.is_none() {
                    let mut map = std::collections::HashMap::new();
                    for person in self.list_persons()? {
                        map.insert(self.pseudonym(hub_id, &person.id)?, person.id);
                    }
                    *pseudonyms = Some(map);
                }
                let map = pseudonyms.as_ref().map_or_else(Default::default, Clone::clone);
                let mut intro = Introduction {
                    id: inbound.id.clone(),
                    direction: Direction::In.as_str().into(),
                    hub_id: hub_id.into(),
                    requester: Some(requester),
                    need: inbound.need.clone(),
                    created_at_ms: inbound.created_at_ms,
                    requester_chain: inbound.requester_chain.clone(),
                    ..Default::default()
                };
                for pseudonym in inbound.pseudonyms.iter().take(10_000) {
                    if let Some(person_id) = map.get(pseudonym) {
                        intro.pseudonyms.push(pseudonym.clone());
                        intro.persons.push(IntroductionPerson {
                            person_id: person_id.clone(),
                            state: PENDING.into(),
                            ..Default::default()
                        });
                    }
                }
                intro
            }
        };
        intro.status = inbound.status;
        intro.expires_at_ms = inbound.expires_at_ms;
        for c in inbound.candidates {
            if let Some(p) =
                intro.persons.iter_mut().find(|p| p.candidate == c.candidate && !p.candidate.is_empty())
            {
                p.outcome = c.outcome;
                if c.purged_at_ms > 0 && p.purged_at_ms == 0 {
                    p.purged_at_ms = c.purged_at_ms;
                    let detail = format!(
                        "introduction {}: candidate {} deleted by the recipient",
                        intro.id, p.candidate
                    );
                    self.audit(
                        batch,
                        vec![("introduction-purge-ack".into(), p.person_id.clone(), hub_id.into(), detail)],
                    )?;
                }
            }
        }
        Ok(Some(intro))
    }

    fn apply_outbound(
        &self,
        batch: &mut WriteBatch,
        hub_id: &str,
        outbound: OutboundIntroduction,
        secret: &p256::SecretKey,
    ) -> Result<Option<Introduction>> {
        let Some(mut intro) = self.load_intro(Direction::Out, &outbound.id)? else { return Ok(None) };
        if intro.hub_id != hub_id {
            return Ok(None);
        }
        intro.status = outbound.status;
        intro.routed = outbound.routed;
        intro.declined = outbound.declined;
        intro.expires_at_ms = outbound.expires_at_ms;
        let now = now_unix_ms();
        for c in outbound.candidates {
            let holder = c.holder.clone().unwrap_or_default();
            let known = intro.candidates.iter().position(|k| k.candidate == c.candidate);
            match (known, c.withdrawn) {
                (None, false) => {
                    let Some(sealed) = c.sealed.as_ref() else { continue };
                    match sealing::open(secret, &intro.id, &c.candidate, sealed) {
                        Ok(fields) => {
                            let detail =
                                format!("introduction {} from {} ({})", intro.id, holder.siret, holder.name);
                            self.audit(
                                batch,
                                vec![(
                                    "introduction-received".into(),
                                    c.candidate.clone(),
                                    hub_id.into(),
                                    detail,
                                )],
                            )?;
                            intro.candidates.push(IntroductionCandidate {
                                candidate: c.candidate,
                                holder_name: holder.name,
                                holder_siret: holder.siret,
                                fields: Some(fields),
                                received_at_ms: now,
                                ..Default::default()
                            });
                        }
                        Err(e) => tracing::warn!(request = %intro.id, error = %e, "candidate refused"),
                    }
                }
                (None, true) => intro.candidates.push(IntroductionCandidate {
                    candidate: c.candidate,
                    holder_name: holder.name,
                    holder_siret: holder.siret,
                    withdrawn: true,
                    purged_at_ms: now,
                    received_at_ms: now,
                    purge_unsent: true,
                    ..Default::default()
                }),
                (Some(i), true) => {
                    let k = &mut intro.candidates[i];
                    if !k.withdrawn {
                        k.withdrawn = true;
                        k.purge_unsent = true;
                        if k.fields.take().is_some() || k.purged_at_ms == 0 {
                            k.purged_at_ms = now;
                            let detail = format!(
                                "introduction {}: fields deleted (withdrawn by the person)",
                                intro.id
                            );
                            self.audit(
                                batch,
                                vec![(
                                    "introduction-purge".into(),
                                    k.candidate.clone(),
                                    hub_id.into(),
                                    detail,
                                )],
                            )?;
                        }
                    }
                }
                (Some(_), false) => {}
            }
        }
        Ok(Some(intro))
    }

    /// Deletes candidates' fields kept longer than `retention` after their outcome or their
    /// request's expiry; returns how many.
    pub(crate) fn sweep_introductions(&self, retention: Duration, now: i64) -> Result<usize> {
        let _writer = self.write_lock();
        let mut batch = WriteBatch::new();
        let purged = self.stage_retention(&mut batch, retention, now)?;
        if purged > 0 {
            self.commit(batch)?;
        }
        Ok(purged)
    }

    fn stage_retention(&self, batch: &mut WriteBatch, retention: Duration, now: i64) -> Result<usize> {
        let keep_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let mut purged = 0;
        for mut intro in self.intros(Direction::Out)? {
            let expired_at = (intro.expires_at_ms > 0).then_some(intro.expires_at_ms);
            let mut changed = false;
            for c in &mut intro.candidates {
                let outcome_at =
                    (c.outcome != IntroductionOutcome::Unspecified as i32).then_some(c.outcome_at_ms);
                let due = [outcome_at, expired_at].into_iter().flatten().min();
                if c.fields.is_some() && due.is_some_and(|at| now >= at.saturating_add(keep_ms)) {
                    c.fields = None;
                    c.purged_at_ms = now;
                    changed = true;
                    purged += 1;
                    let detail = format!("introduction {}: fields deleted (retention)", intro.id);
                    self.audit(
                        batch,
                        vec![(
                            "introduction-purge".into(),
                            c.candidate.clone(),
                            intro.hub_id.clone(),
                            detail,
                        )],
                    )?;
                }
            }
            if changed {
                Self::put_intro(batch, Direction::Out, &intro);
            }
        }
        Ok(purged)
    }

    /// Every introduction of a person, for the person's report.
    pub(crate) fn introductions_of(&self, person_id: &str) -> Result<Vec<PersonIntroduction>> {
        let mut out = Vec::new();
        for intro in self.intros(Direction::In)? {
            let requester = intro.requester.clone().unwrap_or_default();
            for p in intro
                .persons
                .iter()
                .filter(|p| p.person_id == person_id && !p.candidate.is_empty() && p.state != REFUSED)
            {
                out.push(PersonIntroduction {
                    request_id: intro.id.clone(),
                    hub_id: intro.hub_id.clone(),
                    recipient_siret: requester.siret.clone(),
                    recipient_name: requester.name.clone(),
                    shared: p.shared.clone(),
                    shared_at_ms: p.answered_at_ms,
                    withdrawn_at_ms: p.withdrawn_at_ms,
                    purged_at_ms: p.purged_at_ms,
                    outcome: p.outcome,
                });
            }
        }
        Ok(out)
    }
}

/// Answers are taken while a request is open and not past its expiry.
fn open_for_answers(intro: &Introduction) -> Result<()> {
    let expired = intro.expires_at_ms > 0 && now_unix_ms() >= intro.expires_at_ms;
    if intro.status != IntroductionStatus::Open as i32 || expired {
        let status = if expired { IntroductionStatus::Expired as i32 } else { intro.status };
        return Err(Error::FailedPrecondition(format!(
            "introduction {}: {}, no more answers",
            intro.id,
            slug_of::<IntroductionStatus>(status)
        )));
    }
    Ok(())
}

/// The slot of a person the request matched and nobody answered for yet.
fn pending_person<'a>(intro: &'a mut Introduction, person_id: &str) -> Result<&'a mut IntroductionPerson> {
    let id = intro.id.clone();
    let slot = intro.persons.iter_mut().find(|p| p.person_id == person_id).ok_or_else(|| {
        FieldError::new("person_id", person_id, format!("not a person introduction {id} matched here"))
    })?;
    if slot.state != PENDING {
        return Err(Error::FailedPrecondition(format!(
            "introduction {id}: person {person_id} already {}",
            slot.state
        )));
    }
    Ok(slot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use passerelle_proto::v1::{Structure, StructureKind};

    #[test]
    fn received_fields_are_deleted_after_the_retention() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let structure = Structure {
            siret: "44306184100047".into(),
            kind: StructureKind::Ai as i32,
            name: "Requérante".into(),
            departement: "49".into(),
        };
        let node = Node::open(dir.path(), structure)?;
        let day = 24 * 3600 * 1000;
        let (outcome_at, expires_at) = (1_000 * day, 1_020 * day);
        let candidate = |name: &str, outcome: IntroductionOutcome| IntroductionCandidate {
            candidate: name.into(),
            fields: Some(CandidateFields { first_name: "Camille".into(), ..Default::default() }),
            outcome: outcome as i32,
            outcome_at_ms: if outcome == IntroductionOutcome::Unspecified { 0 } else { outcome_at },
            ..Default::default()
        };
        let intro = Introduction {
            id: Uuid::now_v7().to_string(),
            direction: "out".into(),
            expires_at_ms: expires_at,
            candidates: vec![
                candidate("hired", IntroductionOutcome::Hired),
                candidate("waiting", IntroductionOutcome::Unspecified),
            ],
            ..Default::default()
        };
        let mut batch = WriteBatch::new();
        Node::put_intro(&mut batch, Direction::Out, &intro);
        node.commit(batch)?;
        let retention = Duration::from_secs(90 * 24 * 3600);
        let held = |node: &Node| -> anyhow::Result<Vec<bool>> {
            let intro = node.load_intro(Direction::Out, &intro.id)?.expect("kept");
            Ok(intro.candidates.iter().map(|c| c.fields.is_some()).collect())
        };
        assert_eq!(node.sweep_introductions(retention, outcome_at + 90 * day - 1)?, 0);
        assert_eq!(held(&node)?, [true, true]);
        assert_eq!(
            node.sweep_introductions(retention, outcome_at + 90 * day)?,
            1,
            "90 days after the outcome"
        );
        assert_eq!(held(&node)?, [false, true]);
        assert_eq!(
            node.sweep_introductions(retention, expires_at + 90 * day)?,
            1,
            "90 days after the expiry"
        );
        assert_eq!(held(&node)?, [false, false]);
        let purges =
            node.audit_entries(None, None)?.into_iter().filter(|e| e.kind == "introduction-purge").count();
        assert_eq!(purges, 2);
        assert!(node.verify_audit()?.broken.is_none());
        Ok(())
    }
}
