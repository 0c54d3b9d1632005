//! [`NodeClient`]: one typed method per `StructureService` RPC.

use passerelle_proto::v1::structure_service_client::StructureServiceClient;
use passerelle_proto::v1::{
    AddPersonRequest, CloseNeedRequest, Consent, CreateNeedRequest, DeletePersonRequest,
    DeletePersonResponse, GetNeedRequest, GetPersonRequest, GetStructureRequest, GrantConsentRequest,
    IndicatorFields, IndicatorReport, ListConsentsRequest, ListIndicatorsRequest, ListNeedsRequest,
    ListPersonsRequest, NeedFields, NeedStatus, Person, PersonFields, RecruitmentNeed, Structure,
    SubmitIndicatorsRequest, WithdrawConsentRequest,
};
use passerelle_proto::v1::{
    AuditEntry, ListAuditRequest, PersonReportRequest, PersonReportResponse, VerifyAuditRequest,
    VerifyAuditResponse,
};
use passerelle_proto::v1::{
    DeleteNeedRequest, ListNetworkNeedsRequest, PooledNeed, SyncNowRequest, SyncStatusRequest,
    SyncStatusResponse,
};
use passerelle_proto::v1::{
    ImportIndicatorsRequest, ImportNeedsRequest, ImportResponse, IndicatorRow, NeedRow,
};
use passerelle_proto::v1::{ListMissingIndicatorsRequest, MissingIndicators};
use tonic::transport::Channel;

use crate::channel::{TlsFiles, connect};
use crate::error::{Error, Result};

/// A connection to a node's local API.
#[derive(Debug, Clone)]
pub struct NodeClient {
    inner: StructureServiceClient<Channel>,
    endpoint: String,
}

impl NodeClient {
    /// Connects to the node at `endpoint` (`http://127.0.0.1:7401`; `https://` needs `tls`).
    pub async fn connect(endpoint: &str, tls: Option<&TlsFiles>) -> Result<Self> {
        let channel = connect(endpoint, tls, "node").await?;
        Ok(Self { inner: StructureServiceClient::new(channel), endpoint: endpoint.to_string() })
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn status(&self, status: tonic::Status) -> Error {
        Error::from_status(status, "node", &self.endpoint)
    }

    /// The structure this node belongs to.
    pub async fn structure(&mut self) -> Result<Structure> {
        let reply = self.inner.get_structure(GetStructureRequest {}).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// Records a new need.
    pub async fn create_need(&mut self, fields: NeedFields) -> Result<RecruitmentNeed> {
        passerelle_proto::validate::need_fields(&fields)?;
        let reply = self.inner.create_need(CreateNeedRequest { fields: Some(fields) }).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// Closes a need as filled or cancelled.
    pub async fn close_need(&mut self, id: &str, status: NeedStatus) -> Result<RecruitmentNeed> {
        let reply =
            self.inner.close_need(CloseNeedRequest { id: id.to_string(), status: status as i32 }).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// One need.
    pub async fn need(&mut self, id: &str) -> Result<RecruitmentNeed> {
        let reply = self.inner.get_need(GetNeedRequest { id: id.to_string() }).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// Every need, oldest first; `status` filters when given.
    pub async fn needs(&mut self, status: Option<NeedStatus>) -> Result<Vec<RecruitmentNeed>> {
        let request = ListNeedsRequest { status: status.map_or(0, |s| s as i32) };
        let reply = self.inner.list_needs(request).await;
        reply.map(|r| r.into_inner().needs).map_err(|s| self.status(s))
    }

    /// Deletes a need.
    pub async fn delete_need(&mut self, id: &str) -> Result<()> {
        let reply = self.inner.delete_need(DeleteNeedRequest { id: id.to_string() }).await;
        reply.map(|_| ()).map_err(|s| self.status(s))
    }

    /// Where sync with each hub stands.
    pub async fn sync_status(&mut self) -> Result<SyncStatusResponse> {
        let reply = self.inner.sync_status(SyncStatusRequest {}).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// Pushes now; with `wait`, until every hub acknowledged everything (or `timeout`).
    pub async fn sync_now(&mut self, wait: bool, timeout: std::time::Duration) -> Result<SyncStatusResponse> {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let mut request = tonic::Request::new(SyncNowRequest { wait, timeout_ms });
        request.set_timeout(timeout + std::time::Duration::from_secs(5));
        let reply = self.inner.sync_now(request).await;
        match reply {
            Ok(r) => Ok(r.into_inner()),
            // The node answered that a hub did not acknowledge: report the node's reason as is.
            Err(s) if s.code() == tonic::Code::Unavailable && std::error::Error::source(&s).is_none() => {
                Err(Error::Status(s))
            }
            Err(s) => Err(self.status(s)),
        }
    }

    /// The pooled open needs of the networks (from the node's local copy).
    pub async fn network_needs(
        &mut self,
        rome_prefix: Option<String>,
        departement: Option<String>,
    ) -> Result<Vec<PooledNeed>> {
        let reply = self.inner.list_network_needs(ListNetworkNeedsRequest { rome_prefix, departement }).await;
        reply.map(|r| r.into_inner().needs).map_err(|s| self.status(s))
    }

    /// The classes of candidates of the networks (k-anonymous, without our own), asked of each hub now.
    pub async fn network_profiles(
        &mut self,
        rome_prefix: Option<String>,
        departement: Option<String>,
    ) -> Result<passerelle_proto::v1::ListNetworkProfilesResponse> {
        let request = passerelle_proto::v1::ListNetworkProfilesRequest { rome_prefix, departement };
        let reply = self.inner.list_network_profiles(request).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// `need introduce`: asks a hub for candidates for a need.
    pub async fn introduce_need(
        &mut self,
        need_id: &str,
        hub_id: Option<String>,
    ) -> Result<passerelle_proto::v1::Introduction> {
        let request = passerelle_proto::v1::IntroduceNeedRequest { need_id: need_id.into(), hub_id };
        let reply = self.inner.introduce_need(request).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// Introduction requests of one direction (`in`, `out`), refreshed from the hubs.
    pub async fn introductions(
        &mut self,
        direction: &str,
        limit: u32,
    ) -> Result<passerelle_proto::v1::ListIntroductionsResponse> {
        let request = passerelle_proto::v1::ListIntroductionsRequest { direction: direction.into(), limit };
        let reply = self.inner.list_introductions(request).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// `introduction accept`.
    pub async fn accept_introduction(
        &mut self,
        request: passerelle_proto::v1::AcceptIntroductionRequest,
    ) -> Result<passerelle_proto::v1::Introduction> {
        let reply = self.inner.accept_introduction(request).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// `introduction decline`.
    pub async fn decline_introduction(
        &mut self,
        request: passerelle_proto::v1::DeclineIntroductionRequest,
    ) -> Result<passerelle_proto::v1::Introduction> {
        let reply = self.inner.decline_introduction(request).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// `introduction withdraw`.
    pub async fn withdraw_introduction(
        &mut self,
        id: &str,
        person_id: &str,
    ) -> Result<passerelle_proto::v1::Introduction> {
        let request =
            passerelle_proto::v1::WithdrawIntroductionRequest { id: id.into(), person_id: person_id.into() };
        let reply = self.inner.withdraw_introduction(request).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// `introduction outcome`.
    pub async fn record_introduction_outcome(
        &mut self,
        request: passerelle_proto::v1::RecordIntroductionOutcomeRequest,
    ) -> Result<passerelle_proto::v1::Introduction> {
        let reply = self.inner.record_introduction_outcome(request).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// A person's report: consents, what each hub received, the audit entries.
    pub async fn person_report(&mut self, person_id: &str) -> Result<PersonReportResponse> {
        let reply = self.inner.person_report(PersonReportRequest { person_id: person_id.into() }).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// Recomputes the audit log's hash chain.
    pub async fn verify_audit(&mut self) -> Result<VerifyAuditResponse> {
        let reply = self.inner.verify_audit(VerifyAuditRequest {}).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// Audit entries, optionally one person's, from a day (`YYYY-MM-DD`) on.
    pub async fn audit(
        &mut self,
        person_id: Option<String>,
        since: Option<String>,
    ) -> Result<Vec<AuditEntry>> {
        let reply = self.inner.list_audit(ListAuditRequest { person_id, since }).await;
        reply.map(|r| r.into_inner().entries).map_err(|s| self.status(s))
    }

    /// Records a new person.
    pub async fn add_person(&mut self, fields: PersonFields) -> Result<Person> {
        passerelle_proto::validate::person_fields(&fields, passerelle_proto::date::Date::today())?;
        let reply = self.inner.add_person(AddPersonRequest { fields: Some(fields) }).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// One person.
    pub async fn person(&mut self, id: &str) -> Result<Person> {
        let reply = self.inner.get_person(GetPersonRequest { id: id.to_string() }).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// Every person, oldest first.
    pub async fn persons(&mut self) -> Result<Vec<Person>> {
        let reply = self.inner.list_persons(ListPersonsRequest {}).await;
        reply.map(|r| r.into_inner().persons).map_err(|s| self.status(s))
    }

    /// Erases a person; returns the consents the erasure withdrew.
    pub async fn delete_person(&mut self, id: &str) -> Result<DeletePersonResponse> {
        let reply = self.inner.delete_person(DeletePersonRequest { id: id.to_string() }).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// Imports needs all or nothing, streaming them in parts; `sent` is told how many rows have
    /// gone so far (for a progress bar). The node validates every row again and writes them in
    /// one commit, or refuses the whole import listing every bad row.
    pub async fn import_needs(
        &mut self,
        rows: Vec<NeedRow>,
        sent: impl FnMut(usize) + Send + 'static,
    ) -> Result<ImportResponse> {
        let parts = in_parts(rows, sent, |rows| ImportNeedsRequest { rows });
        let reply = self.inner.import_needs(parts).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// Imports monthly indicator reports all or nothing, like [`NodeClient::import_needs`].
    pub async fn import_indicators(
        &mut self,
        rows: Vec<IndicatorRow>,
        sent: impl FnMut(usize) + Send + 'static,
    ) -> Result<ImportResponse> {
        let parts = in_parts(rows, sent, |rows| ImportIndicatorsRequest { rows });
        let reply = self.inner.import_indicators(parts).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// Records a consent.
    pub async fn grant_consent(&mut self, request: GrantConsentRequest) -> Result<Consent> {
        passerelle_proto::validate::grant_consent(&request)?;
        let reply = self.inner.grant_consent(request).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// Withdraws the consent in force for a person × purpose × hub.
    pub async fn withdraw_consent(&mut self, request: WithdrawConsentRequest) -> Result<Consent> {
        let reply = self.inner.withdraw_consent(request).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// Consents, optionally one person's.
    pub async fn consents(&mut self, person_id: Option<String>) -> Result<Vec<Consent>> {
        let reply = self.inner.list_consents(ListConsentsRequest { person_id }).await;
        reply.map(|r| r.into_inner().consents).map_err(|s| self.status(s))
    }

    /// Records a month's indicator report.
    pub async fn submit_indicators(&mut self, fields: IndicatorFields) -> Result<IndicatorReport> {
        passerelle_proto::validate::indicator_fields(&fields)?;
        let reply = self.inner.submit_indicators(SubmitIndicatorsRequest { fields: Some(fields) }).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// Indicator reports in `from..=to` (months `YYYY-MM`).
    pub async fn indicators(
        &mut self,
        from: Option<String>,
        to: Option<String>,
    ) -> Result<Vec<IndicatorReport>> {
        let reply = self.inner.list_indicators(ListIndicatorsRequest { from, to }).await;
        reply.map(|r| r.into_inner().reports).map_err(|s| self.status(s))
    }

    /// Adds a web console account (the node hashes the password).
    pub async fn add_gui_user(
        &mut self,
        name: &str,
        role: passerelle_proto::v1::GuiRole,
        password: &str,
        replace: bool,
    ) -> Result<passerelle_proto::v1::GuiUser> {
        passerelle_proto::validate::gui_user_name("name", name)?;
        passerelle_proto::validate::gui_password("password", password)?;
        let request = passerelle_proto::v1::AddGuiUserRequest {
            name: name.to_string(),
            role: role as i32,
            password: password.to_string(),
            replace,
        };
        let reply = self.inner.add_gui_user(request).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// The web console's accounts.
    pub async fn gui_users(&mut self) -> Result<Vec<passerelle_proto::v1::GuiUser>> {
        let reply = self.inner.list_gui_users(passerelle_proto::v1::ListGuiUsersRequest {}).await;
        reply.map(|r| r.into_inner().users).map_err(|s| self.status(s))
    }

    /// Removes a web console account.
    pub async fn remove_gui_user(&mut self, name: &str) -> Result<()> {
        let request = passerelle_proto::v1::RemoveGuiUserRequest { name: name.to_string() };
        let reply = self.inner.remove_gui_user(request).await;
        reply.map(|_| ()).map_err(|s| self.status(s))
    }

    /// The months not reported, per hub receiving `indicators`, with their due dates.
    pub async fn missing_indicators(&mut self) -> Result<Vec<MissingIndicators>> {
        let reply = self.inner.list_missing_indicators(ListMissingIndicatorsRequest {}).await;
        reply.map(|r| r.into_inner().missing).map_err(|s| self.status(s))
    }
}

/// Rows per message of an import: well under the message size limit for the largest rows.
const IMPORT_PART_ROWS: usize = 500;

/// The rows as a stream of messages, telling `sent` the running count as each part is taken.
fn in_parts<R: Send + 'static, M>(
    rows: Vec<R>,
    mut sent: impl FnMut(usize) + Send + 'static,
    message: impl Fn(Vec<R>) -> M + Send + 'static,
) -> impl tokio_stream::Stream<Item = M> + Send + 'static {
    let mut rows = rows.into_iter().peekable();
    let mut count = 0;
    let parts = std::iter::from_fn(move || {
        rows.peek()?;
        let part: Vec<R> = rows.by_ref().take(IMPORT_PART_ROWS).collect();
        count += part.len();
        sent(count);
        Some(message(part))
    });
    tokio_stream::iter(parts)
}
