//! Introductions on a hub: matching a member's need against the profiles the *other* accepted
//! members hold, routing the request to each holder's mailbox with the pseudonyms that matched
//! there, and carrying the answers back. The hub sees pseudonyms, counts and ciphertext only: the
//! fields a person agrees to share are sealed by the holder to the requester's certificate key
//! (`node/sealing.rs`), and nothing here can open them.
//!
//! Store layout (tree `introductions`): `q/ID` the request ([`HubIntroduction`]); `s/SIRET/ID`
//! (value: creation time) the requests a member sent, read by the rate limit and its mailbox;
//! `m/SIRET/ID` the requests routed to a holder. A request's status is computed when read: expired
//! after `[hub] introduction_ttl_days`, cancelled once its need is no longer open here (closed,
//! deleted or withdrawn), so nothing has to chase those events. A daily task (`hub/daily.rs`)
//! forgets a request `[hub] introduction_retention_days` after its expiry, and removing a node
//! member forgets the requests it sent and its routing as a holder.

use std::collections::BTreeMap;

use passerelle_proto::datasets::Dataset;
use passerelle_proto::date::now_unix_ms;
use passerelle_proto::identity::Role;
use passerelle_proto::v1::{
    AnonymizedProfile, ConsentPurpose, HolderCandidate, HoursBand, InboundIntroduction, IntroductionOutcome,
    IntroductionReply, IntroductionStatus, MailboxResponse, MemberState, MobilityBand, NeedStatus,
    OutboundIntroduction, RequesterCandidate, SealedFields, SendIntroductionRequest,
    SendIntroductionResponse, SharedNeed, Structure, introduction_reply,
};
use passerelle_proto::validate::{self, FieldError};
use prost::Message;

use super::Hub;
use super::ingest::HubRecord;
use crate::error::{Error, Result};
use crate::store::keys::{MemberKey, RecordKey};
use crate::store::{StoreError, Tree, WriteBatch, scan_prefix};
use crate::tls::Peer;

/// Most requests in one `Mailbox` page: each carries a certificate chain and pseudonyms (about
/// 2 KB), so a page stays far below the message limit however many requests a holder gets.
pub(crate) const MAILBOX_PAGE: usize = 200;
/// Most answers in one `ReplyIntroduction` call.
pub(crate) const MAX_REPLIES: usize = 100;
/// Longest certificate chain forwarded with a request.
const MAX_CHAIN: usize = 8;

/// A request as the hub keeps it.
#[derive(Clone, PartialEq, Message)]
pub struct HubIntroduction {
    /// The request's id.
    #[prost(string, tag = "1")]
    pub id: String,
    /// The requesting structure (as it last introduced itself).
    #[prost(message, optional, tag = "2")]
    pub requester: Option<Structure>,
    /// The need, as held when the request arrived.
    #[prost(message, optional, tag = "3")]
    pub need: Option<SharedNeed>,
    /// The requester's certificate chain as verified at its handshake (DER, end entity first).
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub requester_chain: Vec<Vec<u8>>,
    /// When the hub received it.
    #[prost(int64, tag = "5")]
    pub created_at_ms: i64,
    /// When it expires.
    #[prost(int64, tag = "6")]
    pub expires_at_ms: i64,
    /// Per holder, the pseudonyms matched and those answered.
    #[prost(message, repeated, tag = "7")]
    pub holders: Vec<Holding>,
    /// Accepted candidates.
    #[prost(message, repeated, tag = "8")]
    pub candidates: Vec<HubCandidate>,
    /// Persons declined.
    #[prost(uint32, tag = "9")]
    pub declined: u32,
    /// The network whose CA issued the requester's certificate (with its SIRET, its identity).
    #[prost(string, tag = "10")]
    pub requester_network: String,
}

/// What a request matched at one holder.
#[derive(Clone, PartialEq, Message)]
pub struct Holding {
    /// The holder's SIRET.
    #[prost(string, tag = "1")]
    pub siret: String,
    /// Its pseudonyms that matched.
    #[prost(string, repeated, tag = "2")]
    pub pseudonyms: Vec<String>,
    /// Those already answered (accepted or declined): each is answered once.
    #[prost(string, repeated, tag = "3")]
    pub answered: Vec<String>,
}

/// An accepted candidate: sealed fields and what became of them.
#[derive(Clone, PartialEq, Message)]
pub struct HubCandidate {
    /// The candidate reference (random, chosen by the holder).
    #[prost(string, tag = "1")]
    pub candidate: String,
    /// The holder's SIRET.
    #[prost(string, tag = "2")]
    pub holder_siret: String,
    /// The sealed fields; dropped at withdrawal.
    #[prost(message, optional, tag = "3")]
    pub sealed: Option<SealedFields>,
    /// When accepted.
    #[prost(int64, tag = "4")]
    pub accepted_at_ms: i64,
    /// When withdrawn (0: not).
    #[prost(int64, tag = "5")]
    pub withdrawn_at_ms: i64,
    /// The requester's outcome.
    #[prost(enumeration = "IntroductionOutcome", tag = "6")]
    pub outcome: i32,
    /// When the requester acknowledged deleting the fields (0: not yet).
    #[prost(int64, tag = "7")]
    pub purged_at_ms: i64,
}

fn request_key(id: &str) -> Vec<u8> {
    format!("q/{id}").into_bytes()
}

fn sent_key(siret: &str, id: &str) -> Vec<u8> {
    format!("s/{siret}/{id}").into_bytes()
}

fn mailbox_key(siret: &str, id: &str) -> Vec<u8> {
    format!("m/{siret}/{id}").into_bytes()
}

/// Stages the deletion of a request and of every key that routes it.
fn stage_forget(batch: &mut WriteBatch, intro: &HubIntroduction) {
    batch.delete(Tree::Introductions, request_key(&intro.id));
    if let Some(requester) = &intro.requester {
        batch.delete(Tree::Introductions, sent_key(&requester.siret, &intro.id));
    }
    for holding in &intro.holders {
        batch.delete(Tree::Introductions, mailbox_key(&holding.siret, &intro.id));
    }
}

/// The ROME domaine of a code: its letter and two digits (`K22` of `K2204`).
fn domaine(rome: &str) -> Option<&str> {
    rome.get(..3)
}

/// Whether the need's weekly hours fall inside the profile's hours band (a band not said matches
/// nothing: the hub does not guess).
fn hours_fit(band: i32, hours: u32) -> bool {
    match HoursBand::try_from(band) {
        Ok(HoursBand::UpTo20) => hours <= 20,
        Ok(HoursBand::HoursBand2134) => (21..=34).contains(&hours),
        Ok(HoursBand::HoursBand35Plus) => hours >= 35,
        _ => false,
    }
}

/// The matching rules of an introduction: same ROME domaine as one of the codes sought; same
/// département, or the same région when the profile's mobility is more than 30 km; the need's
/// hours inside the profile's band; available by the need's start month; placement consent.
pub(crate) fn matches(need: &SharedNeed, p: &AnonymizedProfile) -> bool {
    let same_domaine =
        domaine(&need.rome_code).is_some_and(|d| p.rome_codes.iter().any(|c| domaine(c) == Some(d)));
    let region = |dep: &str| passerelle_proto::geo::region_of(dep);
    let area = p.departement == need.departement
        || (p.mobility_band == MobilityBand::Over30Km as i32
            && region(&p.departement).is_some()
            && region(&p.departement) == region(&need.departement));
    let start_month = need.start_date.get(..7).unwrap_or_default();
    let available = !p.available_from.is_empty() && p.available_from.as_str() <= start_month;
    same_domaine
        && area
        && hours_fit(p.hours_band, need.hours_per_week)
        && available
        && super::profiles_view::serves(p, ConsentPurpose::Placement)
}

fn node_only(peer: &Peer) -> Result<()> {
    if peer.id.role == Role::Node {
        Ok(())
    } else {
        Err(Error::PermissionDenied(format!("{}: introductions are between structures' nodes", peer.id)))
    }
}

fn decode_intro(raw: &[u8]) -> Result<HubIntroduction> {
    HubIntroduction::decode(raw).map_err(|e| Error::Store(StoreError(format!("corrupt introduction: {e}"))))
}

impl Hub {
    fn load_intro(&self, id: &str) -> Result<Option<HubIntroduction>> {
        self.store.get(Tree::Introductions, &request_key(id))?.map(|raw| decode_intro(&raw)).transpose()
    }

    /// The need as held from its origin, if live.
    fn held_need(&self, origin: &str, need_id: &str) -> Result<Option<SharedNeed>> {
        let key = RecordKey::new(origin, Dataset::Needs, need_id).encode();
        Ok(self
            .store
            .get(Tree::Records, &key)?
            .and_then(|raw| HubRecord::decode(raw.as_slice()).ok())
            .filter(HubRecord::is_live)
            .and_then(|r| r.need))
    }

    /// A request's status now: cancelled once its need is not open here or its requester is no
    /// longer an accepted member, expired after its TTL.
    fn status_of(&self, intro: &HubIntroduction, now: i64) -> Result<IntroductionStatus> {
        let (origin, need_id) = match (&intro.requester, &intro.need) {
            (Some(r), Some(n)) => (r.siret.as_str(), n.need_id.as_str()),
            _ => return Ok(IntroductionStatus::Cancelled),
        };
        let open = self.held_need(origin, need_id)?.is_some_and(|n| n.status == NeedStatus::Open as i32);
        // A requester removed (or pending again) receives nothing: its requests take no answers.
        let key = MemberKey::new(Role::Node, origin, &intro.requester_network).encode();
        let member = self.load(&key)?;
        let open = open && member.is_some_and(|m| m.state == MemberState::Accepted as i32);
        Ok(if !open {
            IntroductionStatus::Cancelled
        } else if now >= intro.expires_at_ms {
            IntroductionStatus::Expired
        } else {
            IntroductionStatus::Open
        })
    }

    /// The accepted node members other than `siret`, with their structures.
    fn other_accepted_nodes(&self, siret: &str) -> Result<Vec<String>> {
        Ok(self
            .list_members()?
            .into_iter()
            .filter(|m| {
                m.role == Role::Node.to_string() && m.state == MemberState::Accepted as i32 && m.id != siret
            })
            .map(|m| m.id)
            .collect())
    }

    /// The structure a node member last introduced itself as (under any network it is accepted by).
    fn structure_of(&self, siret: &str) -> Result<Structure> {
        let member = self.list_members()?.into_iter().find(|m| {
            m.role == Role::Node.to_string()
                && m.id == siret
                && m.state == MemberState::Accepted as i32
                && m.structure.is_some()
        });
        Ok(member
            .and_then(|m| m.structure)
            .unwrap_or_else(|| Structure { siret: siret.into(), ..Default::default() }))
    }

    /// `SendIntroduction`: matches the caller's need and routes the request. `chain` is the
    /// caller's certificate chain as its handshake verified it.
    pub fn send_introduction(
        &self,
        peer: &Peer,
        chain: &[Vec<u8>],
        request: SendIntroductionRequest,
    ) -> Result<SendIntroductionResponse> {
        node_only(peer)?;
        validate::record_id("id", &request.id)?;
        validate::record_id("need_id", &request.need_id)?;
        if chain.is_empty() || chain.len() > MAX_CHAIN {
            return Err(Error::PermissionDenied("introductions need the caller's certificate chain".into()));
        }
        let siret = peer.id.id.as_str();
        let now = now_unix_ms();
        let _writer = self.write_lock();
        self.check_access(peer)?;
        if let Some(existing) = self.load_intro(&request.id)? {
            // A retry of a request already routed: the same answer, nothing routed twice.
            if existing.requester.as_ref().map(|r| r.siret.as_str()) != Some(siret) {
                return Err(Error::AlreadyExists(format!("introduction {} exists", request.id)));
            }
            return Ok(SendIntroductionResponse {
                status: self.status_of(&existing, now)? as i32,
                routed: true,
                expires_at_ms: existing.expires_at_ms,
                created_at_ms: existing.created_at_ms,
            });
        }
        let need = self.held_need(siret, &request.need_id)?.ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "need_id \"{}\": not shared with hub {} (share `needs` with it and sync first)",
                request.need_id, self.config.id
            ))
        })?;
        if need.status != NeedStatus::Open as i32 {
            return Err(Error::FailedPrecondition(format!(
                "need_id \"{}\": closed, only open needs can be introduced",
                request.need_id
            )));
        }
        let day_ago = now - 24 * 3600 * 1000;
        let sent_today =
            scan_prefix(self.store.as_ref(), Tree::Introductions, format!("s/{siret}/").as_bytes())?
                .into_iter()
                .filter(|(_, v)| v.as_slice().try_into().map(i64::from_be_bytes).is_ok_and(|at| at > day_ago))
                .count();
        let limit = self.config.introductions_per_day;
        if sent_today >= limit as usize {
            return Err(Error::ResourceExhausted(format!(
                "introductions: at most {limit} requests per structure per 24 hours on hub {} (introductions_per_day)",
                self.config.id
            )));
        }
        let mut holders = Vec::new();
        for holder in self.other_accepted_nodes(siret)? {
            let prefix = RecordKey::prefix(&holder, Dataset::Profiles);
            let mut pseudonyms = Vec::new();
            for (_, raw) in scan_prefix(self.store.as_ref(), Tree::Records, &prefix)? {
                if let Ok(record) = HubRecord::decode(raw.as_slice())
                    && record.is_live()
                    && let Some(profile) = record.profile
                    && matches(&need, &profile)
                {
                    pseudonyms.push(profile.pseudonym);
                }
            }
            if !pseudonyms.is_empty() {
                holders.push(Holding { siret: holder, pseudonyms, answered: Vec::new() });
            }
        }
        let ttl_ms = i64::try_from(self.config.introduction_ttl.as_millis()).unwrap_or(i64::MAX);
        let intro = HubIntroduction {
            id: request.id.clone(),
            requester: Some(self.structure_of(siret)?),
            need: Some(need),
            requester_chain: chain.to_vec(),
            created_at_ms: now,
            expires_at_ms: now.saturating_add(ttl_ms),
            holders,
            candidates: Vec::new(),
            declined: 0,
            requester_network: peer.network.clone().unwrap_or_default(),
        };
        let mut batch = WriteBatch::new();
        batch.put(Tree::Introductions, request_key(&intro.id), intro.encode_to_vec());
        batch.put(Tree::Introductions, sent_key(siret, &intro.id), now.to_be_bytes().to_vec());
        for holding in &intro.holders {
            batch.put(Tree::Introductions, mailbox_key(&holding.siret, &intro.id), Vec::new());
        }
        self.store.commit(batch)?;
        tracing::info!(request = %intro.id, holders = intro.holders.len(), "introduction routed");
        Ok(SendIntroductionResponse {
            status: IntroductionStatus::Open as i32,
            routed: true,
            expires_at_ms: intro.expires_at_ms,
            created_at_ms: now,
        })
    }

    /// `ReplyIntroduction`: every answer checked against the caller's part in its request, then
    /// all applied in one commit.
    pub fn reply_introductions(&self, peer: &Peer, replies: Vec<IntroductionReply>) -> Result<()> {
        node_only(peer)?;
        if replies.len() > MAX_REPLIES {
            return Err(FieldError::rule("replies", format!("at most {MAX_REPLIES} per call")).into());
        }
        let siret = peer.id.id.as_str();
        let now = now_unix_ms();
        let _writer = self.write_lock();
        self.check_access(peer)?;
        let mut touched: BTreeMap<String, HubIntroduction> = BTreeMap::new();
        for reply in replies {
            validate::record_id("request_id", &reply.request_id)?;
            let mut intro = match touched.remove(&reply.request_id) {
                Some(intro) => intro,
                None => self
                    .load_intro(&reply.request_id)?
                    .ok_or_else(|| Error::NotFound { what: "introduction", id: reply.request_id.clone() })?,
            };
            let kind = reply.kind.ok_or_else(|| FieldError::rule("kind", "is required"))?;
            self.apply_reply(&mut intro, siret, kind, now)?;
            touched.insert(reply.request_id, intro);
        }
        let mut batch = WriteBatch::new();
        for intro in touched.values() {
            batch.put(Tree::Introductions, request_key(&intro.id), intro.encode_to_vec());
        }
        self.store.commit(batch)?;
        Ok(())
    }

    fn apply_reply(
        &self,
        intro: &mut HubIntroduction,
        siret: &str,
        kind: introduction_reply::Kind,
        now: i64,
    ) -> Result<()> {
        use introduction_reply::Kind;
        let requester = intro.requester.as_ref().map(|r| r.siret.clone()).unwrap_or_default();
        let not_yours =
            || Error::PermissionDenied(format!("introduction {}: not routed to {siret}", intro.id));
        match kind {
            Kind::Accept(accept) => {
                let pseudonym = accept.pseudonym.clone();
                let same = intro.candidates.iter().any(|c| c.candidate == accept.candidate);
                let Some(holding) = self.answerable(intro, siret, &pseudonym, same, now)? else {
                    return Ok(());
                };
                validate::record_id("candidate", &accept.candidate)?;
                let sealed = accept.sealed.ok_or_else(|| FieldError::rule("sealed", "is required"))?;
                validate::sealed_fields("sealed", &sealed)?;
                if same {
                    return Err(Error::AlreadyExists(format!("candidate {}", accept.candidate)));
                }
                intro.holders[holding].answered.push(pseudonym);
                intro.candidates.push(HubCandidate {
                    candidate: accept.candidate,
                    holder_siret: siret.to_string(),
                    sealed: Some(sealed),
                    accepted_at_ms: now,
                    ..Default::default()
                });
            }
            Kind::Decline(decline) => {
                let Some(holding) = self.answerable(intro, siret, &decline.pseudonym, true, now)? else {
                    return Ok(());
                };
                validate::code::<passerelle_proto::v1::DeclineReason>("reason", decline.reason)?;
                intro.holders[holding].answered.push(decline.pseudonym);
                intro.declined += 1;
            }
            Kind::Withdraw(candidate) => {
                let c = intro
                    .candidates
                    .iter_mut()
                    .find(|c| c.candidate == candidate && c.holder_siret == siret)
                    .ok_or_else(not_yours)?;
                c.sealed = None;
                if c.withdrawn_at_ms == 0 {
                    c.withdrawn_at_ms = now;
                }
            }
            Kind::Outcome(outcome) => {
                if requester != siret {
                    return Err(not_yours());
                }
                validate::code::<IntroductionOutcome>("outcome", outcome.outcome)?;
                let c =
                    intro.candidates.iter_mut().find(|c| c.candidate == outcome.candidate).ok_or_else(
                        || Error::NotFound { what: "candidate", id: outcome.candidate.clone() },
                    )?;
                c.outcome = outcome.outcome;
            }
            Kind::Purged(candidate) => {
                if requester != siret {
                    return Err(not_yours());
                }
                let c = intro
                    .candidates
                    .iter_mut()
                    .find(|c| c.candidate == candidate)
                    .ok_or_else(|| Error::NotFound { what: "candidate", id: candidate.clone() })?;
                c.sealed = None;
                if c.purged_at_ms == 0 {
                    c.purged_at_ms = now;
                }
            }
        }
        Ok(())
    }

    /// Which holding of `intro` lets `siret` answer for `pseudonym`: `None` when that person was
    /// already answered for and `retry` says this is the same answer again (applied once).
    fn answerable(
        &self,
        intro: &HubIntroduction,
        siret: &str,
        pseudonym: &str,
        retry: bool,
        now: i64,
    ) -> Result<Option<usize>> {
        let holding = intro
            .holders
            .iter()
            .position(|h| h.siret == siret && h.pseudonyms.iter().any(|p| p == pseudonym))
            .ok_or_else(|| {
                Error::PermissionDenied(format!("introduction {}: not routed to {siret}", intro.id))
            })?;
        if intro.holders[holding].answered.iter().any(|p| p == pseudonym) {
            return if retry {
                Ok(None)
            } else {
                Err(Error::FailedPrecondition(format!(
                    "introduction {}: this person was already answered for",
                    intro.id
                )))
            };
        }
        let status = self.status_of(intro, now)?;
        if status != IntroductionStatus::Open {
            return Err(Error::FailedPrecondition(format!(
                "introduction {}: {}, no more answers",
                intro.id,
                passerelle_proto::codes::slug_of::<IntroductionStatus>(status as i32)
            )));
        }
        Ok(Some(holding))
    }

    /// `Mailbox`: the requests routed to the caller and its own, each as the caller may see it,
    /// a page of at most `limit` requests (capped at [`MAILBOX_PAGE`]; 0, from a node older than
    /// paging: all of them) after the cursor `after`. The cursor is the last key served
    /// (`m/…` then `s/…`, the caller's own keys only), so pages never overlap or skip.
    pub fn mailbox(&self, peer: &Peer, after: &str, limit: u32) -> Result<MailboxResponse> {
        node_only(peer)?;
        self.check_access(peer)?;
        let siret = peer.id.id.as_str();
        let now = now_unix_ms();
        let limit = match limit {
            0 => usize::MAX,
            n => (n as usize).min(MAILBOX_PAGE),
        };
        let (inbox, sent) = (mailbox_key(siret, ""), sent_key(siret, ""));
        if !after.is_empty() && !after.as_bytes().starts_with(&inbox) && !after.as_bytes().starts_with(&sent)
        {
            return Err(FieldError::new("after", after, "is not a cursor of this caller's mailbox").into());
        }
        let mut out = MailboxResponse::default();
        // The caller's keys in cursor order (`m/` sorts before `s/`), after the cursor.
        let mut keys = Vec::new();
        for prefix in [&inbox, &sent] {
            for (key, _) in scan_prefix(self.store.as_ref(), Tree::Introductions, prefix)? {
                if key.as_slice() > after.as_bytes() {
                    keys.push(key);
                }
            }
        }
        if keys.len() > limit {
            keys.truncate(limit);
            out.next = keys.last().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
        }
        let id_of = |key: &[u8], prefix: &[u8]| {
            key.strip_prefix(prefix).and_then(|id| String::from_utf8(id.to_vec()).ok())
        };
        let inbound_ids: Vec<String> = keys.iter().filter_map(|k| id_of(k, &inbox)).collect();
        let sent_ids: Vec<String> = keys.iter().filter_map(|k| id_of(k, &sent)).collect();
        for id in inbound_ids {
            let Some(intro) = self.load_intro(&id)? else { continue };
            let Some(holding) = intro.holders.iter().find(|h| h.siret == siret) else { continue };
            out.inbound.push(InboundIntroduction {
                id: intro.id.clone(),
                requester: intro.requester.clone(),
                need: intro.need.clone(),
                pseudonyms: holding.pseudonyms.clone(),
                requester_chain: intro.requester_chain.clone(),
                created_at_ms: intro.created_at_ms,
                expires_at_ms: intro.expires_at_ms,
                status: self.status_of(&intro, now)? as i32,
                candidates: intro
                    .candidates
                    .iter()
                    .filter(|c| c.holder_siret == siret)
                    .map(|c| HolderCandidate {
                        candidate: c.candidate.clone(),
                        outcome: c.outcome,
                        withdrawn: c.withdrawn_at_ms > 0,
                        purged_at_ms: c.purged_at_ms,
                    })
                    .collect(),
            });
        }
        for id in sent_ids {
            let Some(intro) = self.load_intro(&id)? else { continue };
            let mut candidates = Vec::new();
            for c in &intro.candidates {
                candidates.push(RequesterCandidate {
                    candidate: c.candidate.clone(),
                    holder: Some(self.structure_of(&c.holder_siret)?),
                    sealed: c.sealed.clone(),
                    withdrawn: c.withdrawn_at_ms > 0,
                    outcome: c.outcome,
                    accepted_at_ms: c.accepted_at_ms,
                });
            }
            out.outbound.push(OutboundIntroduction {
                id: intro.id.clone(),
                need_id: intro.need.as_ref().map(|n| n.need_id.clone()).unwrap_or_default(),
                status: self.status_of(&intro, now)? as i32,
                routed: true,
                declined: intro.declined,
                candidates,
                expires_at_ms: intro.expires_at_ms,
            });
        }
        Ok(out)
    }
}

/// Requests examined per commit when forgetting, so a large clean-up never builds one huge batch.
const FORGET_PER_COMMIT: usize = 1_000;

impl Hub {
    /// Deletes every request that expired before `before_ms` (now minus `[hub]
    /// introduction_retention_days`) and whose accepted candidates' fields the requester has
    /// acknowledged deleting: the request, its routing to each holder and any sealed fields still
    /// held. Returns how many went. Requests still open or recently ended stay, so nodes can fetch
    /// their final state; so do those whose candidates' fields may still be held by the requester,
    /// so a withdrawal can reach it (the requester's removal purges them).
    pub fn forget_introductions(&self, before_ms: i64) -> Result<usize> {
        let mut forgotten = 0;
        let mut start = request_key("");
        loop {
            let page = self.store.scan(Tree::Introductions, &start, None, FORGET_PER_COMMIT + 1)?;
            let requests: Vec<_> = page.iter().take_while(|(k, _)| k.starts_with(b"q/")).collect();
            let more = requests.len() > FORGET_PER_COMMIT;
            let _writer = self.write_lock();
            let mut batch = WriteBatch::new();
            for (key, _) in requests.iter().take(FORGET_PER_COMMIT) {
                // Read again under the write lock: the request may have changed since the scan.
                let Some(raw) = self.store.get(Tree::Introductions, key)? else { continue };
                let intro = decode_intro(&raw)?;
                // A candidate's fields may still be on the requester's node (it keeps them up to
                // its own `introduction_retention_days`): the request stays routable until the
                // requester has acknowledged deleting every one, so a withdrawal still reaches it.
                let settled = intro.candidates.iter().all(|c| c.purged_at_ms > 0);
                if intro.expires_at_ms < before_ms && settled {
                    stage_forget(&mut batch, &intro);
                    forgotten += 1;
                }
            }
            if !batch.is_empty() {
                self.store.commit(batch)?;
            }
            match requests.get(FORGET_PER_COMMIT) {
                Some((next, _)) if more => start = next.clone(),
                _ => return Ok(forgotten),
            }
        }
    }

    /// Stages, for a node member that goes (`hub remove`, and no other network's accepted
    /// identity has its SIRET), the deletion of the requests it sent — with the sealed fields
    /// addressed to it, which no one else can open — and of its routing as a holder (the request
    /// stays with its requester; what it accepted before stays accepted). Returns how many requests
    /// went.
    pub(super) fn stage_introductions_purge(&self, siret: &str, batch: &mut WriteBatch) -> Result<usize> {
        let mut gone = 0;
        for (key, _) in scan_prefix(self.store.as_ref(), Tree::Introductions, &sent_key(siret, ""))? {
            let id = String::from_utf8_lossy(&key[sent_key(siret, "").len()..]).into_owned();
            match self.load_intro(&id)? {
                Some(intro) => stage_forget(batch, &intro),
                None => batch.delete(Tree::Introductions, key),
            }
            gone += 1;
        }
        for (key, _) in scan_prefix(self.store.as_ref(), Tree::Introductions, &mailbox_key(siret, ""))? {
            batch.delete(Tree::Introductions, key.clone());
            let id = String::from_utf8_lossy(&key[mailbox_key(siret, "").len()..]).into_owned();
            if let Some(mut intro) = self.load_intro(&id)?
                && intro.requester.as_ref().is_none_or(|r| r.siret != siret)
            {
                intro.holders.retain(|h| h.siret != siret);
                batch.put(Tree::Introductions, request_key(&id), intro.encode_to_vec());
            }
        }
        Ok(gone)
    }

    /// Moves a request `by_ms` into the past (its creation and expiry): how tests see a request
    /// expire without waiting `introduction_ttl_days`. For tests only.
    #[doc(hidden)]
    pub fn age_introduction_for_tests(&self, id: &str, by_ms: i64) -> Result<()> {
        let mut intro =
            self.load_intro(id)?.ok_or_else(|| Error::NotFound { what: "introduction", id: id.into() })?;
        intro.created_at_ms -= by_ms;
        intro.expires_at_ms -= by_ms;
        let mut batch = WriteBatch::new();
        batch.put(Tree::Introductions, request_key(id), intro.encode_to_vec());
        Ok(self.store.commit(batch)?)
    }

    /// Flips one byte of every sealed payload of a request, as a hostile hub operator could. For
    /// tests only.
    #[doc(hidden)]
    pub fn tamper_introduction_for_tests(&self, id: &str) -> Result<usize> {
        let mut intro =
            self.load_intro(id)?.ok_or_else(|| Error::NotFound { what: "introduction", id: id.into() })?;
        let mut flipped = 0;
        for sealed in intro.candidates.iter_mut().filter_map(|c| c.sealed.as_mut()) {
            if let Some(byte) = sealed.ciphertext.first_mut() {
                *byte ^= 1;
                flipped += 1;
            }
        }
        let mut batch = WriteBatch::new();
        batch.put(Tree::Introductions, request_key(id), intro.encode_to_vec());
        self.store.commit(batch)?;
        Ok(flipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need() -> SharedNeed {
        SharedNeed {
            rome_code: "K2204".into(),
            hours_per_week: 24,
            departement: "49".into(),
            start_date: "2027-01-04".into(),
            ..Default::default()
        }
    }

    fn profile() -> AnonymizedProfile {
        AnonymizedProfile {
            rome_codes: vec!["G1602".into(), "K2201".into()],
            departement: "49".into(),
            hours_band: HoursBand::HoursBand2134 as i32,
            mobility_band: MobilityBand::UpTo10Km as i32,
            available_from: "2026-12".into(),
            purposes: vec![ConsentPurpose::Placement as i32],
            ..Default::default()
        }
    }

    /// A request of B's routed to A's pseudonym `p1`, created `age_ms` ago, its need `status`.
    fn stored(hub: &Hub, age_ms: i64, ttl_ms: i64, status: NeedStatus) -> anyhow::Result<(Peer, String)> {
        let (a, b) = ("73282932000074", "44306184100047");
        for siret in [a, b] {
            hub.accept_member(siret, Some("coorace"))?;
        }
        let need = SharedNeed {
            origin_siret: b.into(),
            need_id: "0190f0c4-0000-7000-8000-000000000001".into(),
            status: status as i32,
            ..need()
        };
        let record = HubRecord { version: 1, need: Some(need.clone()), ..Default::default() };
        let now = now_unix_ms();
        let intro = HubIntroduction {
            id: "0190f0c4-0000-7000-8000-0000000000aa".into(),
            requester: Some(Structure { siret: b.into(), ..Default::default() }),
            need: Some(need.clone()),
            created_at_ms: now - age_ms,
            expires_at_ms: now - age_ms + ttl_ms,
            holders: vec![Holding {
                siret: a.into(),
                pseudonyms: vec!["p1".into(), "p2".into()],
                answered: vec![],
            }],
            requester_network: "coorace".into(),
            ..Default::default()
        };
        let mut batch = WriteBatch::new();
        batch.put(
            Tree::Records,
            RecordKey::new(b, Dataset::Needs, &need.need_id).encode(),
            record.encode_to_vec(),
        );
        batch.put(Tree::Introductions, request_key(&intro.id), intro.encode_to_vec());
        batch.put(Tree::Introductions, mailbox_key(a, &intro.id), Vec::new());
        hub.store.commit(batch)?;
        let peer = Peer {
            id: passerelle_proto::identity::PeerId { role: Role::Node, id: a.into() },
            serial: None,
            network: Some("coorace".into()),
        };
        Ok((peer, intro.id))
    }

    fn decline(id: &str, pseudonym: &str) -> IntroductionReply {
        IntroductionReply {
            request_id: id.into(),
            kind: Some(introduction_reply::Kind::Decline(passerelle_proto::v1::IntroductionDecline {
                pseudonym: pseudonym.into(),
                reason: passerelle_proto::v1::DeclineReason::Other as i32,
            })),
        }
    }

    #[test]
    fn a_request_takes_answers_until_it_expires_or_its_need_closes() -> anyhow::Result<()> {
        let day = 24 * 3600 * 1000;
        for (age, status, expected) in [
            (day, NeedStatus::Open, IntroductionStatus::Open),
            (31 * day, NeedStatus::Open, IntroductionStatus::Expired),
            (day, NeedStatus::Filled, IntroductionStatus::Cancelled),
        ] {
            let dir = tempfile::tempdir()?;
            let hub = Hub::for_tests(dir.path());
            let (holder, id) = stored(&hub, age, 30 * day, status)?;
            let mailbox = hub.mailbox(&holder, "", 0)?;
            assert_eq!(mailbox.inbound[0].status, expected as i32);
            let answered = hub.reply_introductions(&holder, vec![decline(&id, "p1")]);
            if expected == IntroductionStatus::Open {
                answered?;
                // Answered once: a retry is a no-op, the count stays.
                hub.reply_introductions(&holder, vec![decline(&id, "p1")])?;
                assert_eq!(hub.load_intro(&id)?.map(|i| i.declined), Some(1));
                let unknown = hub.reply_introductions(&holder, vec![decline(&id, "p9")]);
                assert!(matches!(unknown, Err(Error::PermissionDenied(_))), "not a matched pseudonym");
            } else {
                let err = answered.expect_err("no more answers");
                assert!(
                    err.to_string()
                        .contains(passerelle_proto::codes::slug_of::<IntroductionStatus>(expected as i32))
                );
            }
        }
        Ok(())
    }

    /// The keys of the `introductions` tree.
    fn keys(hub: &Hub) -> anyhow::Result<Vec<String>> {
        Ok(hub
            .store
            .scan(Tree::Introductions, &[], None, usize::MAX)?
            .into_iter()
            .map(|(k, _)| String::from_utf8_lossy(&k).into_owned())
            .collect())
    }

    #[test]
    fn a_request_is_forgotten_after_its_retention() -> anyhow::Result<()> {
        let day = 24 * 3600 * 1000;
        let dir = tempfile::tempdir()?;
        let hub = Hub::for_tests(dir.path());
        // Expired 5 days ago.
        let (holder, id) = stored(&hub, 35 * day, 30 * day, NeedStatus::Open)?;
        let now = now_unix_ms();
        assert_eq!(hub.forget_introductions(now - 10 * day)?, 0, "within its retention: kept");
        assert_eq!(hub.mailbox(&holder, "", 0)?.inbound.len(), 1);
        assert_eq!(hub.forget_introductions(now - 4 * day)?, 1, "past its retention: forgotten");
        assert!(hub.load_intro(&id)?.is_none());
        assert!(hub.mailbox(&holder, "", 0)?.inbound.is_empty(), "no routing left");
        assert_eq!(keys(&hub)?, Vec::<String>::new());

        // An accepted candidate whose fields the requester has not acknowledged deleting keeps
        // the request: a withdrawal must still reach the requester.
        let (_, id) = stored(&hub, 35 * day, 30 * day, NeedStatus::Open)?;
        let mut intro = hub.load_intro(&id)?.expect("stored");
        intro.candidates.push(HubCandidate {
            candidate: "c1".into(),
            holder_siret: "73282932000074".into(),
            accepted_at_ms: now,
            ..Default::default()
        });
        let mut batch = WriteBatch::new();
        batch.put(Tree::Introductions, request_key(&id), intro.encode_to_vec());
        hub.store.commit(batch)?;
        assert_eq!(hub.forget_introductions(now)?, 0, "fields maybe still held by the requester");
        intro.candidates[0].purged_at_ms = now;
        let mut batch = WriteBatch::new();
        batch.put(Tree::Introductions, request_key(&id), intro.encode_to_vec());
        hub.store.commit(batch)?;
        assert_eq!(hub.forget_introductions(now)?, 1, "the requester deleted them: forgotten");
        Ok(())
    }

    #[test]
    fn a_removed_member_takes_its_requests_and_routing_with_it() -> anyhow::Result<()> {
        let day = 24 * 3600 * 1000;
        // The requester goes: its request, routing and sent key go.
        let dir = tempfile::tempdir()?;
        let hub = Hub::for_tests(dir.path());
        let (holder, id) = stored(&hub, day, 30 * day, NeedStatus::Open)?;
        let mut batch = WriteBatch::new();
        batch.put(Tree::Introductions, sent_key("44306184100047", &id), now_unix_ms().to_be_bytes().to_vec());
        hub.store.commit(batch)?;
        hub.remove_member("44306184100047", Some("coorace"))?;
        assert_eq!(keys(&hub)?, Vec::<String>::new(), "nothing of the request is left");
        assert!(hub.mailbox(&holder, "", 0)?.inbound.is_empty());

        // The holder goes: its routing goes, the request stays with its requester.
        let dir = tempfile::tempdir()?;
        let hub = Hub::for_tests(dir.path());
        let (holder, id) = stored(&hub, day, 30 * day, NeedStatus::Open)?;
        hub.remove_member(&holder.id.id, Some("coorace"))?;
        assert_eq!(keys(&hub)?, vec![format!("q/{id}")]);
        assert!(hub.load_intro(&id)?.is_some_and(|i| i.holders.is_empty()));
        Ok(())
    }

    #[test]
    fn a_mailbox_is_read_in_pages_that_never_overlap() -> anyhow::Result<()> {
        let day = 24 * 3600 * 1000;
        let dir = tempfile::tempdir()?;
        let hub = Hub::for_tests(dir.path());
        let (holder, id) = stored(&hub, day, 30 * day, NeedStatus::Open)?;
        let intro = hub.load_intro(&id)?.expect("stored");
        let mut batch = WriteBatch::new();
        for n in 0..(MAILBOX_PAGE + 4) {
            let copy = HubIntroduction { id: format!("0190f0c4-0000-7000-8000-{n:012}"), ..intro.clone() };
            batch.put(Tree::Introductions, request_key(&copy.id), copy.encode_to_vec());
            batch.put(Tree::Introductions, mailbox_key(&holder.id.id, &copy.id), Vec::new());
        }
        hub.store.commit(batch)?;
        let total = MAILBOX_PAGE + 5;
        // A page is capped whatever the caller asks; the pages cover every request once.
        let first = hub.mailbox(&holder, "", 10_000)?;
        assert_eq!(first.inbound.len(), MAILBOX_PAGE);
        assert!(!first.next.is_empty());
        let second = hub.mailbox(&holder, &first.next, 10_000)?;
        assert!(second.next.is_empty(), "the last page");
        let mut ids: Vec<String> =
            first.inbound.iter().chain(&second.inbound).map(|i| i.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), total);
        // Without a limit (a node older than paging): everything at once.
        assert_eq!(hub.mailbox(&holder, "", 0)?.inbound.len(), total);
        Ok(())
    }

    #[test]
    fn matching_rules() {
        assert!(
            matches(&need(), &profile()),
            "domaine K22 of a second code, 49, 24 h in 21-34, available before"
        );
        let with = |f: fn(&mut AnonymizedProfile)| {
            let mut p = profile();
            f(&mut p);
            matches(&need(), &p)
        };
        assert!(!with(|p| p.rome_codes = vec!["K2301".into()]), "another domaine");
        assert!(!with(|p| p.departement = "44".into()), "another département, short mobility");
        assert!(
            with(|p| {
                p.departement = "44".into();
                p.mobility_band = MobilityBand::Over30Km as i32;
            }),
            "same région, mobility over 30 km"
        );
        assert!(
            !with(|p| {
                p.departement = "75".into();
                p.mobility_band = MobilityBand::Over30Km as i32;
            }),
            "another région"
        );
        assert!(!with(|p| p.hours_band = HoursBand::HoursBand35Plus as i32), "hours outside the band");
        assert!(!with(|p| p.hours_band = HoursBand::Unspecified as i32), "band not said");
        assert!(with(|p| p.available_from = "2027-01".into()), "available the start month");
        assert!(!with(|p| p.available_from = "2027-02".into()), "available after the start month");
        assert!(!with(|p| p.purposes = vec![ConsentPurpose::Statistics as i32]), "statistics only");
    }
}
