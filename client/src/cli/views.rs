//! What the CLI prints: flat, human-named views of the protocol's messages.
//!
//! A view is serialised once with serde: JSON output is that serialisation, and table and CSV
//! cells are read off it in field order, so the three formats can never disagree.

use passerelle_proto::codes::{Code, slug_of};
use passerelle_proto::date::format_unix_ms;
use passerelle_proto::v1::{
    Barrier, Consent, ConsentPurpose, ContractType, DeclineReason, IndicatorReport, IntroductionOutcome,
    IntroductionStatus, NeedStatus, Person, RecruitmentNeed, SharedField, Structure, StructureKind,
};
use std::collections::BTreeMap;

use serde::Serialize;

/// A view the renderer can print.
pub(crate) trait Record: Serialize + Default {
    /// What a list of these is called, for the empty-list message.
    const PLURAL: &'static str;
    /// The columns a table shows (CSV and JSON show every field).
    const TABLE: &'static [&'static str];
}

/// The structure a node belongs to.
#[derive(Debug, Default, Serialize)]
pub(crate) struct StructureView {
    id: String,
    siret: String,
    kind: &'static str,
    name: String,
    departement: String,
}

impl Record for StructureView {
    const PLURAL: &'static str = "structures";
    const TABLE: &'static [&'static str] = &["siret", "kind", "name", "departement"];
}

impl From<Structure> for StructureView {
    fn from(s: Structure) -> Self {
        Self {
            id: s.siret.clone(),
            siret: s.siret,
            kind: slug_of::<StructureKind>(s.kind),
            name: s.name,
            departement: s.departement,
        }
    }
}

/// A recruitment need.
#[derive(Debug, Default, Serialize)]
pub(crate) struct NeedView {
    id: String,
    status: &'static str,
    rome_code: String,
    title: String,
    contract_type: &'static str,
    open_positions: u32,
    hours_per_week: u32,
    departement: String,
    commune: String,
    start_date: String,
    end_date: Option<String>,
    client: Option<String>,
    description: Option<String>,
    version: u64,
    created_at: String,
    updated_at: String,
}

impl Record for NeedView {
    const PLURAL: &'static str = "needs";
    const TABLE: &'static [&'static str] = &[
        "id",
        "status",
        "rome_code",
        "title",
        "contract_type",
        "open_positions",
        "hours_per_week",
        "commune",
        "start_date",
    ];
}

impl From<RecruitmentNeed> for NeedView {
    fn from(n: RecruitmentNeed) -> Self {
        let f = n.fields.unwrap_or_default();
        Self {
            id: n.id,
            status: slug_of::<NeedStatus>(n.status),
            rome_code: f.rome_code,
            title: f.title,
            contract_type: slug_of::<ContractType>(f.contract_type),
            open_positions: f.open_positions,
            hours_per_week: f.hours_per_week,
            departement: f.departement,
            commune: f.commune,
            start_date: f.start_date,
            end_date: f.end_date,
            client: f.client,
            description: f.description,
            version: n.version,
            created_at: format_unix_ms(n.created_at_ms),
            updated_at: format_unix_ms(n.updated_at_ms),
        }
    }
}

/// A supported person.
#[derive(Debug, Default, Serialize)]
pub(crate) struct PersonView {
    id: String,
    first_name: String,
    last_name: String,
    birth_date: String,
    commune: String,
    phone: Option<String>,
    email: Option<String>,
    rome_codes: Vec<String>,
    available_from: String,
    hours_per_week: Option<u32>,
    mobility_km: Option<u32>,
    barriers: Vec<&'static str>,
    pass_iae_end: Option<String>,
    version: u64,
    created_at: String,
    updated_at: String,
}

impl Record for PersonView {
    const PLURAL: &'static str = "persons";
    const TABLE: &'static [&'static str] = &[
        "id",
        "first_name",
        "last_name",
        "birth_date",
        "commune",
        "rome_codes",
        "available_from",
        "barriers",
    ];
}

impl From<Person> for PersonView {
    fn from(p: Person) -> Self {
        let f = p.fields.unwrap_or_default();
        Self {
            id: p.id,
            first_name: f.first_name,
            last_name: f.last_name,
            birth_date: f.birth_date,
            commune: f.commune,
            phone: f.phone,
            email: f.email,
            rome_codes: f.rome_codes,
            available_from: f.available_from,
            hours_per_week: f.hours_per_week,
            mobility_km: f.mobility_km,
            barriers: f.barriers.iter().map(|b| slug_of::<Barrier>(*b)).collect(),
            pass_iae_end: f.pass_iae_end,
            version: p.version,
            created_at: format_unix_ms(p.created_at_ms),
            updated_at: format_unix_ms(p.updated_at_ms),
        }
    }
}

/// A consent record.
#[derive(Debug, Default, Serialize)]
pub(crate) struct ConsentView {
    id: String,
    person_id: String,
    purpose: &'static str,
    hub_id: String,
    in_force: bool,
    text_version: String,
    collected_by: String,
    granted_at: String,
    withdrawn_at: Option<String>,
    /// Purpose `introduction`: the request and the recipient structure.
    #[serde(skip_serializing_if = "Option::is_none")]
    introduction_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recipient_siret: Option<String>,
}

impl Record for ConsentView {
    const PLURAL: &'static str = "consents";
    const TABLE: &'static [&'static str] =
        &["id", "person_id", "purpose", "hub_id", "in_force", "text_version", "granted_at", "withdrawn_at"];
}

impl From<Consent> for ConsentView {
    fn from(c: Consent) -> Self {
        Self {
            id: c.id,
            person_id: c.person_id,
            purpose: ConsentPurpose::try_from(c.purpose).map(Code::slug).unwrap_or("unknown"),
            hub_id: c.hub_id,
            in_force: c.withdrawn_at_ms.is_none(),
            text_version: c.text_version,
            collected_by: c.collected_by,
            granted_at: format_unix_ms(c.granted_at_ms),
            withdrawn_at: c.withdrawn_at_ms.map(format_unix_ms),
            introduction_id: Some(c.introduction_id).filter(|s| !s.is_empty()),
            recipient_siret: Some(c.recipient_siret).filter(|s| !s.is_empty()),
        }
    }
}

/// The outcome of erasing a person.
#[derive(Debug, Default, Serialize)]
pub(crate) struct ErasureView {
    pub(crate) id: String,
    pub(crate) erased: bool,
    pub(crate) withdrawn_consent_ids: Vec<String>,
}

impl Record for ErasureView {
    const PLURAL: &'static str = "erasures";
    const TABLE: &'static [&'static str] = &["id", "erased", "withdrawn_consent_ids"];
}

/// A month not reported, as one hub expects it.
#[derive(Debug, Default, Serialize)]
pub(crate) struct MissingView {
    period: String,
    hub: String,
    due: String,
    overdue: bool,
}

impl Record for MissingView {
    const PLURAL: &'static str = "months missing";
    const TABLE: &'static [&'static str] = &["period", "hub", "due", "overdue"];
}

impl From<passerelle_proto::v1::MissingIndicators> for MissingView {
    fn from(m: passerelle_proto::v1::MissingIndicators) -> Self {
        Self { period: m.period, hub: m.hub_id, due: m.due, overdue: m.overdue }
    }
}

/// A monthly indicator report. Its `id` is its period: there is one report per month.
#[derive(Debug, Default, Serialize)]
pub(crate) struct IndicatorView {
    id: String,
    period: String,
    siret: String,
    etp: String,
    etp_hundredths: u64,
    employees_in_insertion: u32,
    hours_worked: u64,
    hires: u32,
    exits_total: u32,
    exits_durable: u32,
    exits_transition: u32,
    exits_positive: u32,
    exits_other: u32,
    dynamic_exit_rate_percent: Option<String>,
    version: u64,
    submitted_at: String,
}

impl Record for IndicatorView {
    const PLURAL: &'static str = "indicator reports";
    const TABLE: &'static [&'static str] = &[
        "period",
        "etp",
        "employees_in_insertion",
        "hours_worked",
        "hires",
        "exits_total",
        "exits_durable",
        "exits_transition",
        "exits_positive",
        "exits_other",
        "dynamic_exit_rate_percent",
        "version",
    ];
}

/// Formats hundredths as a decimal with two places, exactly.
pub(crate) fn decimal2(hundredths: u64) -> String {
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

impl From<IndicatorReport> for IndicatorView {
    fn from(r: IndicatorReport) -> Self {
        let f = r.fields.unwrap_or_default();
        let e = f.exits.unwrap_or_default();
        let dynamic = u64::from(e.durable) + u64::from(e.transition) + u64::from(e.positive);
        // Rounded to the nearest hundredth of a percent, in integers.
        let rate = (e.total > 0).then(|| decimal2((dynamic * 20_000 / u64::from(e.total)).div_ceil(2)));
        Self {
            id: f.period.clone(),
            period: f.period,
            siret: r.siret,
            etp: decimal2(f.etp_hundredths),
            etp_hundredths: f.etp_hundredths,
            employees_in_insertion: f.employees_in_insertion,
            hours_worked: f.hours_worked,
            hires: f.hires,
            exits_total: e.total,
            exits_durable: e.durable,
            exits_transition: e.transition,
            exits_positive: e.positive,
            exits_other: e.other,
            dynamic_exit_rate_percent: rate,
            version: r.version,
            submitted_at: format_unix_ms(r.submitted_at_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use passerelle_proto::v1::{Exits, IndicatorFields};

    #[test]
    fn dynamic_exit_rate_is_exact_and_rounded() {
        let view = |durable, total| {
            IndicatorView::from(IndicatorReport {
                fields: Some(IndicatorFields {
                    exits: Some(Exits { total, durable, other: total - durable, ..Default::default() }),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .dynamic_exit_rate_percent
        };
        assert_eq!(view(1, 3).as_deref(), Some("33.33"));
        assert_eq!(view(2, 3).as_deref(), Some("66.67"));
        assert_eq!(view(3, 3).as_deref(), Some("100.00"));
        assert_eq!(view(0, 0), None);
        assert_eq!(decimal2(1205), "12.05");
    }
}

/// A certificate, as `pki show` prints it.
#[derive(Debug, Default, Serialize)]
pub(crate) struct CertificateView {
    pub(crate) id: String,
    pub(crate) role: String,
    pub(crate) identity_error: Option<String>,
    pub(crate) serial: String,
    pub(crate) not_before: String,
    pub(crate) not_after: String,
    pub(crate) expired: bool,
    pub(crate) issuer: String,
    pub(crate) subject: String,
    pub(crate) is_ca: bool,
    pub(crate) dns_names: Vec<String>,
    pub(crate) ip_addresses: Vec<String>,
}

impl Record for CertificateView {
    const PLURAL: &'static str = "certificates";
    const TABLE: &'static [&'static str] = &["role", "id", "serial", "not_before", "not_after", "issuer"];
}

impl From<passerelle_proto::identity::CertificateInfo> for CertificateView {
    fn from(c: passerelle_proto::identity::CertificateInfo) -> Self {
        let (role, id, identity_error) = match c.peer {
            Ok(peer) => (peer.role.to_string(), peer.id, None),
            Err(e) => (String::new(), String::new(), Some(e)),
        };
        let now = passerelle_proto::date::now_unix_ms() / 1000;
        Self {
            id,
            role,
            identity_error,
            serial: c.serial,
            not_before: format_unix_ms(c.not_before.saturating_mul(1000)),
            not_after: format_unix_ms(c.not_after.saturating_mul(1000)),
            expired: c.not_after < now,
            issuer: c.issuer,
            subject: c.subject,
            is_ca: c.is_ca,
            dns_names: c.dns_names,
            ip_addresses: c.ip_addresses,
        }
    }
}

/// A hub member.
#[derive(Debug, Default, Serialize)]
pub(crate) struct MemberView {
    id: String,
    role: String,
    /// The network whose CA issued the member's certificate: with the role and id, its identity.
    network: String,
    state: &'static str,
    name: Option<String>,
    kind: Option<&'static str>,
    departement: Option<String>,
    first_seen: Option<String>,
    last_seen: Option<String>,
    accepted_at: Option<String>,
    certificate_serial: String,
}

impl Record for MemberView {
    const PLURAL: &'static str = "members";
    const TABLE: &'static [&'static str] =
        &["network", "role", "id", "state", "name", "departement", "last_seen", "accepted_at"];
}

impl From<passerelle_proto::v1::Member> for MemberView {
    fn from(m: passerelle_proto::v1::Member) -> Self {
        use passerelle_proto::v1::MemberState;
        let when = |ms: i64| (ms > 0).then(|| format_unix_ms(ms));
        let state = match MemberState::try_from(m.state) {
            Ok(MemberState::Accepted) => "accepted",
            Ok(MemberState::Pending) => "pending",
            _ => "unknown",
        };
        Self {
            id: m.id,
            role: m.role,
            network: m.network,
            state,
            name: m.structure.as_ref().map(|s| s.name.clone()),
            kind: m.structure.as_ref().map(|s| slug_of::<StructureKind>(s.kind)),
            departement: m.structure.as_ref().map(|s| s.departement.clone()),
            first_seen: when(m.first_seen_at_ms),
            last_seen: when(m.last_seen_at_ms),
            accepted_at: when(m.accepted_at_ms),
            certificate_serial: m.certificate_serial,
        }
    }
}

/// A hub's identity and settings.
#[derive(Debug, Default, Serialize)]
pub(crate) struct HubView {
    pub(crate) id: String,
    pub(crate) network: String,
    pub(crate) region: String,
    pub(crate) auto_accept: bool,
    pub(crate) denied_serials: Vec<String>,
}

impl From<passerelle_proto::v1::HubInfo> for HubView {
    fn from(info: passerelle_proto::v1::HubInfo) -> Self {
        Self {
            id: info.id,
            network: info.network,
            region: info.region,
            auto_accept: info.auto_accept,
            denied_serials: info.denied_serials,
        }
    }
}

impl Record for HubView {
    const PLURAL: &'static str = "hubs";
    const TABLE: &'static [&'static str] = &["id", "network", "region", "auto_accept"];
}

/// Files written by `pki init` / `pki issue`.
#[derive(Debug, Default, Serialize)]
pub(crate) struct WrittenView {
    pub(crate) id: String,
    pub(crate) certificate: String,
    pub(crate) key: String,
}

impl Record for WrittenView {
    const PLURAL: &'static str = "files";
    const TABLE: &'static [&'static str] = &["id", "certificate", "key"];
}

/// Sync with one hub, as the node sees it.
#[derive(Debug, Default, Serialize)]
pub(crate) struct SyncHubView {
    pub(crate) id: String,
    pub(crate) endpoint: String,
    pub(crate) datasets: Vec<String>,
    pub(crate) connected: bool,
    pub(crate) last_ack_at: Option<String>,
    pub(crate) pending: u64,
    pub(crate) last_error: Option<String>,
    pub(crate) network_needs: u64,
}

impl Record for SyncHubView {
    const PLURAL: &'static str = "hubs configured (add [[hubs]] to the node's config)";
    const TABLE: &'static [&'static str] =
        &["id", "connected", "last_ack_at", "pending", "network_needs", "last_error"];
}

impl From<passerelle_proto::v1::HubSyncStatus> for SyncHubView {
    fn from(h: passerelle_proto::v1::HubSyncStatus) -> Self {
        Self {
            id: h.hub_id,
            endpoint: h.endpoint,
            datasets: h.datasets,
            connected: h.connected,
            last_ack_at: (h.last_ack_at_ms > 0).then(|| format_unix_ms(h.last_ack_at_ms)),
            pending: h.pending,
            last_error: (!h.last_error.is_empty()).then_some(h.last_error),
            network_needs: h.network_needs,
        }
    }
}

/// A need of another structure, pooled from the networks.
#[derive(Debug, Default, Serialize)]
pub(crate) struct PooledNeedView {
    id: String,
    structure_name: String,
    structure_kind: &'static str,
    origin_siret: String,
    rome_code: String,
    contract_type: &'static str,
    open_positions: u32,
    hours_per_week: u32,
    departement: String,
    start_date: String,
    end_date: Option<String>,
    hubs: Vec<String>,
}

impl Record for PooledNeedView {
    const PLURAL: &'static str = "needs in the network view (yet)";
    const TABLE: &'static [&'static str] = &[
        "structure_name",
        "rome_code",
        "contract_type",
        "open_positions",
        "hours_per_week",
        "departement",
        "start_date",
        "hubs",
    ];
}

impl From<passerelle_proto::v1::PooledNeed> for PooledNeedView {
    fn from(p: passerelle_proto::v1::PooledNeed) -> Self {
        let n = p.need.unwrap_or_default();
        Self {
            id: format!("{}/{}", n.origin_siret, n.need_id),
            structure_name: p.structure_name,
            structure_kind: slug_of::<StructureKind>(p.structure_kind),
            origin_siret: n.origin_siret,
            rome_code: n.rome_code,
            contract_type: slug_of::<ContractType>(n.contract_type),
            open_positions: n.open_positions,
            hours_per_week: n.hours_per_week,
            departement: n.departement,
            start_date: n.start_date,
            end_date: n.end_date,
            hubs: p.hubs,
        }
    }
}

/// A member structure with its sync state, as a hub sees it.
#[derive(Debug, Default, Serialize)]
pub(crate) struct StructureSyncView {
    id: String,
    name: Option<String>,
    state: &'static str,
    last_seen: Option<String>,
    last_sync: Option<String>,
    lag: u64,
    records_held: u64,
    last_acked_seq: u64,
    head_seq: u64,
    digest_mismatches: u64,
    epoch: String,
}

impl Record for StructureSyncView {
    const PLURAL: &'static str = "member structures";
    const TABLE: &'static [&'static str] =
        &["id", "name", "state", "last_seen", "lag", "records_held", "digest_mismatches"];
}

impl From<passerelle_proto::v1::Member> for StructureSyncView {
    fn from(m: passerelle_proto::v1::Member) -> Self {
        let when = |ms: i64| (ms > 0).then(|| format_unix_ms(ms));
        let state = if m.state == passerelle_proto::v1::MemberState::Accepted as i32 {
            "accepted"
        } else {
            "pending"
        };
        Self {
            id: m.id,
            name: m.structure.map(|s| s.name),
            state,
            last_seen: when(m.last_seen_at_ms),
            last_sync: when(m.last_sync_at_ms),
            lag: m.head_seq.saturating_sub(m.last_acked_seq),
            records_held: m.records_held,
            last_acked_seq: m.last_acked_seq,
            head_seq: m.head_seq,
            digest_mismatches: m.digest_mismatches,
            epoch: m.epoch,
        }
    }
}

/// A deleted record.
#[derive(Debug, Default, Serialize)]
pub(crate) struct DeletedView {
    pub(crate) id: String,
    pub(crate) deleted: bool,
}

impl Record for DeletedView {
    const PLURAL: &'static str = "deletions";
    const TABLE: &'static [&'static str] = &["id", "deleted"];
}

/// What one hub received of one person.
#[derive(Debug, Default, Serialize)]
pub(crate) struct HubShareView {
    id: String,
    pseudonym: String,
    held: bool,
    first_sent: Option<String>,
    last_sent: Option<String>,
    categories: Vec<String>,
    purge_requested: Option<String>,
    purge_acknowledged: Option<String>,
}

impl Record for HubShareView {
    const PLURAL: &'static str = "hubs that received this person's profile";
    const TABLE: &'static [&'static str] =
        &["id", "held", "first_sent", "last_sent", "purge_requested", "purge_acknowledged", "categories"];
}

impl From<passerelle_proto::v1::HubShare> for HubShareView {
    fn from(s: passerelle_proto::v1::HubShare) -> Self {
        let when = |ms: i64| (ms > 0).then(|| format_unix_ms(ms));
        Self {
            id: s.hub_id,
            pseudonym: s.pseudonym,
            held: s.held,
            first_sent: when(s.first_sent_at_ms),
            last_sent: when(s.last_sent_at_ms),
            categories: s.categories,
            purge_requested: when(s.purge_requested_at_ms),
            purge_acknowledged: when(s.purge_acked_at_ms),
        }
    }
}

/// An audit entry.
#[derive(Debug, Default, Serialize)]
pub(crate) struct AuditView {
    id: u64,
    at: String,
    kind: String,
    person_id: String,
    hub_id: String,
    detail: String,
    hash: String,
}

impl Record for AuditView {
    const PLURAL: &'static str = "audit entries";
    const TABLE: &'static [&'static str] = &["id", "at", "kind", "person_id", "hub_id", "detail"];
}

impl From<passerelle_proto::v1::AuditEntry> for AuditView {
    fn from(e: passerelle_proto::v1::AuditEntry) -> Self {
        Self {
            id: e.seq,
            at: format_unix_ms(e.at_ms),
            kind: e.kind,
            person_id: e.person_id,
            hub_id: e.hub_id,
            detail: e.detail,
            hash: e.hash,
        }
    }
}

/// A person's report, as one JSON document.
#[derive(Debug, Default, Serialize)]
pub(crate) struct PersonReportView {
    pub(crate) id: String,
    pub(crate) erased: bool,
    pub(crate) consents: Vec<ConsentView>,
    pub(crate) shares: Vec<HubShareView>,
    pub(crate) audit: Vec<AuditView>,
    pub(crate) introductions: Vec<PersonIntroductionView>,
}

impl Record for PersonReportView {
    const PLURAL: &'static str = "reports";
    const TABLE: &'static [&'static str] = &["id", "erased"];
}

impl From<passerelle_proto::v1::PersonReportResponse> for PersonReportView {
    fn from(r: passerelle_proto::v1::PersonReportResponse) -> Self {
        Self {
            id: r.person_id,
            erased: r.erased,
            consents: r.consents.into_iter().map(ConsentView::from).collect(),
            shares: r.shares.into_iter().map(HubShareView::from).collect(),
            audit: r.audit.into_iter().map(AuditView::from).collect(),
            introductions: r.introductions.into_iter().map(PersonIntroductionView::from).collect(),
        }
    }
}

/// The outcome of `audit verify`.
#[derive(Debug, Default, Serialize)]
pub(crate) struct AuditCheckView {
    pub(crate) id: String,
    pub(crate) entries: u64,
    pub(crate) intact: bool,
    pub(crate) broken_at: Option<u64>,
    pub(crate) problem: Option<String>,
}

impl Record for AuditCheckView {
    const PLURAL: &'static str = "checks";
    const TABLE: &'static [&'static str] = &["entries", "intact", "broken_at", "problem"];
}

/// A class of candidates in the network view: how many persons other structures hold with these
/// generalised traits. A breakdown is `null` when the hub withheld it (some part under k).
#[derive(Debug, Default, Serialize)]
pub(crate) struct NetworkClassView {
    id: String,
    hub_id: String,
    age_band: &'static str,
    area: String,
    area_level: String,
    rome: String,
    count: u32,
    available_from: Option<BTreeMap<String, u32>>,
    hours_band: Option<BTreeMap<String, u32>>,
    mobility_band: Option<BTreeMap<String, u32>>,
    pass_iae_valid: Option<BTreeMap<String, u32>>,
    barriers: BTreeMap<String, u32>,
}

impl Record for NetworkClassView {
    const PLURAL: &'static str = "classes of candidates in the network view";
    const TABLE: &'static [&'static str] = &[
        "hub_id",
        "age_band",
        "area",
        "rome",
        "count",
        "available_from",
        "hours_band",
        "mobility_band",
        "pass_iae_valid",
        "barriers",
    ];
}

/// A breakdown as value → count; `None` when the hub sent none (withheld).
fn breakdown(counts: Vec<passerelle_proto::v1::ClassCount>) -> Option<BTreeMap<String, u32>> {
    (!counts.is_empty()).then(|| counts.into_iter().map(|c| (c.value, c.count)).collect())
}

impl From<passerelle_proto::v1::NetworkClass> for NetworkClassView {
    fn from(n: passerelle_proto::v1::NetworkClass) -> Self {
        use passerelle_proto::v1::AgeBand;
        let c = n.class.unwrap_or_default();
        let age_band = slug_of::<AgeBand>(c.age_band);
        Self {
            id: format!("{}/{age_band}/{}/{}", n.hub_id, c.area, c.rome),
            hub_id: n.hub_id,
            age_band,
            area: c.area,
            area_level: c.area_level,
            rome: c.rome,
            count: c.count,
            available_from: breakdown(c.available_from),
            hours_band: breakdown(c.hours_band),
            mobility_band: breakdown(c.mobility_band),
            pass_iae_valid: breakdown(c.pass_iae_valid),
            barriers: c.barriers.into_iter().map(|b| (b.value, b.count)).collect(),
        }
    }
}

/// A table a hub publishes.
#[derive(Debug, Default, Serialize)]
pub(crate) struct TableInfoView {
    id: String,
    description: String,
    dimensions: Vec<String>,
    measures: Vec<String>,
    /// The periods published (closed ones), or `live` for tables of the current state.
    periods: Vec<String>,
}

impl Record for TableInfoView {
    const PLURAL: &'static str = "tables";
    const TABLE: &'static [&'static str] = &["id", "dimensions", "periods", "description"];
}

impl TableInfoView {
    /// The table, with the periods published: the monthly `indicators` table is published per
    /// closed period; the others describe the current state.
    pub(crate) fn with_periods(t: passerelle_proto::v1::TableDescriptor, periods: &[String]) -> Self {
        let periods = match t.name.as_str() {
            "indicators" => periods.to_vec(),
            // Monthly: the closed months only (no quarter or year).
            "introductions" => periods.iter().filter(|p| p.len() == 7 && !p.contains('Q')).cloned().collect(),
            _ => vec!["live".into()],
        };
        Self {
            id: t.name,
            description: t.description,
            dimensions: t.dimensions,
            measures: t.measures,
            periods,
        }
    }
}

fn when(ms: i64) -> Option<String> {
    (ms > 0).then(|| format_unix_ms(ms))
}

fn slugs<T: Code + TryFrom<i32>>(values: &[i32]) -> Vec<&'static str> {
    values.iter().map(|v| slug_of::<T>(*v)).collect()
}

/// An introduction of a person, in the person's report.
#[derive(Debug, Default, Serialize)]
pub(crate) struct PersonIntroductionView {
    request_id: String,
    hub_id: String,
    recipient_siret: String,
    recipient_name: String,
    fields: Vec<&'static str>,
    shared_at: Option<String>,
    withdrawn_at: Option<String>,
    purged_at: Option<String>,
    outcome: Option<&'static str>,
}

impl Record for PersonIntroductionView {
    const PLURAL: &'static str = "introductions";
    const TABLE: &'static [&'static str] =
        &["request_id", "recipient_name", "fields", "shared_at", "withdrawn_at", "purged_at", "outcome"];
}

impl From<passerelle_proto::v1::PersonIntroduction> for PersonIntroductionView {
    fn from(p: passerelle_proto::v1::PersonIntroduction) -> Self {
        Self {
            request_id: p.request_id,
            hub_id: p.hub_id,
            recipient_siret: p.recipient_siret,
            recipient_name: p.recipient_name,
            fields: slugs::<SharedField>(&p.shared),
            shared_at: when(p.shared_at_ms),
            withdrawn_at: when(p.withdrawn_at_ms),
            purged_at: when(p.purged_at_ms),
            outcome: (p.outcome != 0).then(|| slug_of::<IntroductionOutcome>(p.outcome)),
        }
    }
}

/// The need of an introduction request, as shared.
#[derive(Debug, Default, Serialize)]
pub(crate) struct IntroductionNeedView {
    id: String,
    rome_code: String,
    /// The fiche's label (France Travail's ROME référentiel); null for a code it does not list.
    rome_label: Option<&'static str>,
    contract_type: &'static str,
    hours_per_week: u32,
    open_positions: u32,
    start_date: String,
    departement: String,
}

/// A person an incoming request matched (on the holder's node only).
#[derive(Debug, Default, Serialize)]
pub(crate) struct IntroductionPersonView {
    person_id: String,
    name: String,
    state: String,
    candidate: Option<String>,
    fields: Vec<&'static str>,
    reason: Option<&'static str>,
    outcome: Option<&'static str>,
    withdrawn_at: Option<String>,
    purged_at: Option<String>,
    unsent: bool,
}

/// An accepted candidate of an outgoing request (decrypted on the requester's node only).
#[derive(Debug, Default, Serialize)]
pub(crate) struct IntroductionCandidateView {
    candidate: String,
    holder_name: String,
    holder_siret: String,
    first_name: Option<String>,
    last_name: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    outcome: Option<&'static str>,
    withdrawn: bool,
    purged_at: Option<String>,
}

/// An introduction request: `in` (routed here) or `out` (this structure's).
#[derive(Debug, Default, Serialize)]
pub(crate) struct IntroductionView {
    id: String,
    direction: String,
    hub_id: String,
    status: &'static str,
    structure_name: String,
    structure_siret: String,
    structure_kind: &'static str,
    structure_departement: String,
    need: IntroductionNeedView,
    expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    routed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    declined: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    persons: Option<Vec<IntroductionPersonView>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    candidates: Option<Vec<IntroductionCandidateView>>,
}

impl Record for IntroductionView {
    const PLURAL: &'static str = "introductions";
    const TABLE: &'static [&'static str] = &[
        "id",
        "status",
        "structure_name",
        "need",
        "expires_at",
        "routed",
        "declined",
        "persons",
        "candidates",
    ];
}

impl From<passerelle_proto::v1::Introduction> for IntroductionView {
    fn from(i: passerelle_proto::v1::Introduction) -> Self {
        let out = i.direction == "out";
        let structure = i.requester.unwrap_or_default();
        let need = i.need.unwrap_or_default();
        Self {
            id: i.id,
            direction: i.direction,
            hub_id: i.hub_id,
            status: slug_of::<IntroductionStatus>(i.status),
            structure_name: structure.name,
            structure_siret: structure.siret,
            structure_kind: slug_of::<StructureKind>(structure.kind),
            structure_departement: structure.departement,
            need: IntroductionNeedView {
                id: need.need_id,
                rome_label: passerelle_proto::rome::label(&need.rome_code),
                rome_code: need.rome_code,
                contract_type: slug_of::<ContractType>(need.contract_type),
                hours_per_week: need.hours_per_week,
                open_positions: need.open_positions,
                start_date: need.start_date,
                departement: need.departement,
            },
            expires_at: when(i.expires_at_ms),
            routed: out.then_some(i.routed),
            declined: out.then_some(i.declined),
            persons: (!out).then(|| {
                i.persons
                    .into_iter()
                    .map(|p| IntroductionPersonView {
                        person_id: p.person_id,
                        name: p.name,
                        state: p.state,
                        candidate: Some(p.candidate).filter(|c| !c.is_empty()),
                        fields: slugs::<SharedField>(&p.shared),
                        reason: (p.reason != 0).then(|| slug_of::<DeclineReason>(p.reason)),
                        outcome: (p.outcome != 0).then(|| slug_of::<IntroductionOutcome>(p.outcome)),
                        withdrawn_at: when(p.withdrawn_at_ms),
                        purged_at: when(p.purged_at_ms),
                        unsent: p.unsent,
                    })
                    .collect()
            }),
            candidates: out.then(|| {
                i.candidates
                    .into_iter()
                    .map(|c| {
                        let f = c.fields.unwrap_or_default();
                        let held = !f.first_name.is_empty();
                        IntroductionCandidateView {
                            candidate: c.candidate,
                            holder_name: c.holder_name,
                            holder_siret: c.holder_siret,
                            first_name: held.then_some(f.first_name),
                            last_name: f.last_name,
                            phone: f.phone,
                            email: f.email,
                            outcome: (c.outcome != 0).then(|| slug_of::<IntroductionOutcome>(c.outcome)),
                            withdrawn: c.withdrawn,
                            purged_at: when(c.purged_at_ms),
                        }
                    })
                    .collect()
            }),
        }
    }
}
