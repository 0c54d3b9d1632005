//! `passerelle.v1.StructureService`: the structure's local API.

use passerelle_proto::date::now_unix_ms;
use std::sync::Arc;
use std::time::Duration;

use passerelle_proto::v1::{
    DeleteNeedRequest, DeleteNeedResponse, ListNetworkNeedsRequest, ListNetworkNeedsResponse, SyncNowRequest,
    SyncStatusRequest, SyncStatusResponse,
};
use passerelle_proto::v1::{ImportIndicatorsRequest, ImportNeedsRequest, ImportResponse};
use passerelle_proto::v1::{
    ListAuditRequest, ListAuditResponse, PersonReportRequest, PersonReportResponse, VerifyAuditRequest,
    VerifyAuditResponse,
};
use passerelle_proto::v1::{ListNetworkProfilesRequest, ListNetworkProfilesResponse};
use passerelle_proto::validate::{FieldError, MAX_IMPORT_ROWS};

use passerelle_proto::v1::structure_service_server::StructureService;
use passerelle_proto::v1::{
    AddPersonRequest, CloseNeedRequest, Consent, CreateNeedRequest, DeletePersonRequest,
    DeletePersonResponse, GetNeedRequest, GetPersonRequest, GetStructureRequest, GrantConsentRequest,
    IndicatorReport, ListConsentsRequest, ListConsentsResponse, ListIndicatorsRequest,
    ListIndicatorsResponse, ListMissingIndicatorsRequest, ListMissingIndicatorsResponse, ListNeedsRequest,
    ListNeedsResponse, ListPersonsRequest, ListPersonsResponse, Person, RecruitmentNeed, Structure,
    SubmitIndicatorsRequest, UpdateNeedRequest, UpdatePersonRequest, WithdrawConsentRequest,
};
use tonic::{Request, Response, Status, Streaming};

use super::blocking;
use crate::node::Node;
use crate::node::introductions::Direction;

/// Requests `introductions list` shows by default, the newest.
const DEFAULT_LIST_LIMIT: usize = 200;
/// Most requests one `ListIntroductions` answer may carry (each up to a few KB with its persons).
const MAX_LIST_LIMIT: usize = 500;
use crate::node::sync_engine::SyncEngine;

/// The implementation of `StructureService` over a [`Node`] and its sync engine.
#[derive(Debug, Clone)]
pub(crate) struct StructureApi {
    node: Arc<Node>,
    sync: Arc<SyncEngine>,
}

impl StructureApi {
    /// Serves `node`'s records and the state of its sync with hubs.
    pub(crate) fn new(node: Arc<Node>, sync: Arc<SyncEngine>) -> Self {
        Self { node, sync }
    }
}

/// How long `sync now --wait` waits by default.
const DEFAULT_SYNC_WAIT: Duration = Duration::from_secs(30);

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl StructureService for StructureApi {
    async fn get_structure(&self, _: Request<GetStructureRequest>) -> Reply<Structure> {
        Ok(Response::new(self.node.structure().clone()))
    }

    async fn create_need(&self, request: Request<CreateNeedRequest>) -> Reply<RecruitmentNeed> {
        let (node, r) = (self.node.clone(), request.into_inner());
        blocking(move || node.create_need(r.fields)).await
    }

    async fn update_need(&self, request: Request<UpdateNeedRequest>) -> Reply<RecruitmentNeed> {
        let (node, r) = (self.node.clone(), request.into_inner());
        blocking(move || node.update_need(&r.id, r.fields, r.expected_version)).await
    }

    async fn close_need(&self, request: Request<CloseNeedRequest>) -> Reply<RecruitmentNeed> {
        let (node, r) = (self.node.clone(), request.into_inner());
        blocking(move || node.close_need(&r.id, r.status)).await
    }

    async fn get_need(&self, request: Request<GetNeedRequest>) -> Reply<RecruitmentNeed> {
        let (node, r) = (self.node.clone(), request.into_inner());
        blocking(move || node.get_need(&r.id)).await
    }

    async fn list_needs(&self, request: Request<ListNeedsRequest>) -> Reply<ListNeedsResponse> {
        let (node, r) = (self.node.clone(), request.into_inner());
        blocking(move || node.list_needs(r.status).map(|needs| ListNeedsResponse { needs })).await
    }

    async fn delete_need(&self, request: Request<DeleteNeedRequest>) -> Reply<DeleteNeedResponse> {
        let (node, r) = (self.node.clone(), request.into_inner());
        blocking(move || node.delete_need(&r.id).map(|()| DeleteNeedResponse { id: r.id })).await
    }

    async fn sync_status(&self, _: Request<SyncStatusRequest>) -> Reply<SyncStatusResponse> {
        let sync = self.sync.clone();
        blocking(move || sync.status()).await
    }

    async fn sync_now(&self, request: Request<SyncNowRequest>) -> Reply<SyncStatusResponse> {
        let r = request.into_inner();
        let timeout = if r.timeout_ms == 0 { DEFAULT_SYNC_WAIT } else { Duration::from_millis(r.timeout_ms) };
        let status = self.sync.sync_now(r.wait, timeout).await.map_err(Status::from)?;
        Ok(Response::new(status))
    }

    async fn list_network_needs(
        &self,
        request: Request<ListNetworkNeedsRequest>,
    ) -> Reply<ListNetworkNeedsResponse> {
        let (node, r) = (self.node.clone(), request.into_inner());
        blocking(move || {
            node.list_network_needs(r.rome_prefix.as_deref(), r.departement.as_deref())
                .map(|needs| ListNetworkNeedsResponse { needs })
        })
        .await
    }

    async fn list_network_profiles(
        &self,
        request: Request<ListNetworkProfilesRequest>,
    ) -> Reply<ListNetworkProfilesResponse> {
        let r = request.into_inner();
        let profiles = self
            .sync
            .network_profiles(r.rome_prefix.as_deref(), r.departement.as_deref())
            .await
            .map_err(Status::from)?;
        Ok(Response::new(profiles))
    }

    async fn introduce_need(
        &self,
        request: Request<passerelle_proto::v1::IntroduceNeedRequest>,
    ) -> Reply<passerelle_proto::v1::Introduction> {
        let r = request.into_inner();
        let intro = self.sync.introduce(&r.need_id, r.hub_id.as_deref()).await.map_err(Status::from)?;
        Ok(Response::new(intro))
    }

    async fn list_introductions(
        &self,
        request: Request<passerelle_proto::v1::ListIntroductionsRequest>,
    ) -> Reply<passerelle_proto::v1::ListIntroductionsResponse> {
        let r = request.into_inner();
        let direction = Direction::parse("direction", &r.direction).map_err(Status::from)?;
        let limit = match r.limit {
            0 => DEFAULT_LIST_LIMIT,
            n if n as usize > MAX_LIST_LIMIT => {
                return Err(Status::from(crate::Error::from(FieldError::new(
                    "limit",
                    n.to_string(),
                    format!("must be at most {MAX_LIST_LIMIT}"),
                ))));
            }
            n => n as usize,
        };
        let unreachable = self.sync.refresh_introductions().await;
        let node = self.node.clone();
        blocking(move || {
            node.list_introductions(direction).map(|mut introductions| {
                // Oldest first: the newest `limit` are the tail.
                let more = introductions.len().saturating_sub(limit);
                introductions.drain(..more);
                passerelle_proto::v1::ListIntroductionsResponse {
                    introductions,
                    unreachable,
                    more: u32::try_from(more).unwrap_or(u32::MAX),
                }
            })
        })
        .await
    }

    async fn accept_introduction(
        &self,
        request: Request<passerelle_proto::v1::AcceptIntroductionRequest>,
    ) -> Reply<passerelle_proto::v1::Introduction> {
        let (node, r) = (self.node.clone(), request.into_inner());
        let intro = run(move || node.accept_introduction(r)).await?;
        self.sync.deliver(&intro.hub_id).await;
        self.reread(Direction::In, intro).await
    }

    async fn decline_introduction(
        &self,
        request: Request<passerelle_proto::v1::DeclineIntroductionRequest>,
    ) -> Reply<passerelle_proto::v1::Introduction> {
        let (node, r) = (self.node.clone(), request.into_inner());
        let intro = run(move || node.decline_introduction(&r.id, &r.person_id, r.reason)).await?;
        self.sync.deliver(&intro.hub_id).await;
        self.reread(Direction::In, intro).await
    }

    async fn withdraw_introduction(
        &self,
        request: Request<passerelle_proto::v1::WithdrawIntroductionRequest>,
    ) -> Reply<passerelle_proto::v1::Introduction> {
        let (node, r) = (self.node.clone(), request.into_inner());
        let intro = run(move || node.withdraw_introduction(&r.id, &r.person_id)).await?;
        self.sync.deliver(&intro.hub_id).await;
        self.reread(Direction::In, intro).await
    }

    async fn record_introduction_outcome(
        &self,
        request: Request<passerelle_proto::v1::RecordIntroductionOutcomeRequest>,
    ) -> Reply<passerelle_proto::v1::Introduction> {
        let (node, r) = (self.node.clone(), request.into_inner());
        let intro = run(move || node.record_introduction_outcome(&r.id, &r.candidate, r.outcome)).await?;
        self.sync.deliver(&intro.hub_id).await;
        self.reread(Direction::Out, intro).await
    }

    async fn person_report(&self, request: Request<PersonReportRequest>) -> Reply<PersonReportResponse> {
        let (node, r) = (self.node.clone(), request.into_inner());
        blocking(move || node.person_report(&r.person_id)).await
    }

    async fn verify_audit(&self, _: Request<VerifyAuditRequest>) -> Reply<VerifyAuditResponse> {
        let node = self.node.clone();
        blocking(move || {
            node.verify_audit().map(|check| VerifyAuditResponse {
                entries: check.entries,
                intact: check.broken.is_none(),
                broken_at: check.broken.as_ref().map_or(0, |b| b.0),
                problem: check.broken.map(|b| b.1).unwrap_or_default(),
            })
        })
        .await
    }

    async fn list_audit(&self, request: Request<ListAuditRequest>) -> Reply<ListAuditResponse> {
        let (node, r) = (self.node.clone(), request.into_inner());
        blocking(move || {
            if let Some(id) = &r.person_id {
                passerelle_proto::validate::record_id("person", id)?;
            }
            let since = r
                .since
                .as_deref()
                .map(|d| {
                    passerelle_proto::validate::date("since", d).map(|d| d.days_since_epoch() * 86_400_000)
                })
                .transpose()?;
            let entries = node.audit_entries(r.person_id.as_deref(), since)?;
            Ok(ListAuditResponse { entries: entries.into_iter().map(Into::into).collect() })
        })
        .await
    }

    async fn add_person(&self, request: Request<AddPersonRequest>) -> Reply<Person> {
        let (node, r) = (self.node.clone(), request.into_inner());
        blocking(move || node.add_person(r.fields)).await
    }

    async fn update_person(&self, request: Request<UpdatePersonRequest>) -> Reply<Person> {
        let (node, r) = (self.node.clone(), request.into_inner());
        blocking(move || node.update_person(&r.id, r.fields, r.expected_version)).await
    }

    async fn get_person(&self, request: Request<GetPersonRequest>) -> Reply<Person> {
        let (node, r) = (self.node.clone(), request.into_inner());
        blocking(move || node.get_person(&r.id)).await
    }

    async fn list_persons(&self, _: Request<ListPersonsRequest>) -> Reply<ListPersonsResponse> {
        let node = self.node.clone();
        blocking(move || node.list_persons().map(|persons| ListPersonsResponse { persons })).await
    }

    async fn delete_person(&self, request: Request<DeletePersonRequest>) -> Reply<DeletePersonResponse> {
        let (node, r) = (self.node.clone(), request.into_inner());
        blocking(move || {
            node.delete_person(&r.id)
                .map(|withdrawn_consents| DeletePersonResponse { id: r.id, withdrawn_consents })
        })
        .await
    }

    async fn grant_consent(&self, request: Request<GrantConsentRequest>) -> Reply<Consent> {
        let (node, r) = (self.node.clone(), request.into_inner());
        blocking(move || node.grant_consent(r)).await
    }

    async fn withdraw_consent(&self, request: Request<WithdrawConsentRequest>) -> Reply<Consent> {
        let (node, r) = (self.node.clone(), request.into_inner());
        blocking(move || node.withdraw_consent(&r.person_id, r.purpose, &r.hub_id)).await
    }

    async fn list_consents(&self, request: Request<ListConsentsRequest>) -> Reply<ListConsentsResponse> {
        let (node, r) = (self.node.clone(), request.into_inner());
        blocking(move || {
            node.list_consents(r.person_id.as_deref()).map(|consents| ListConsentsResponse { consents })
        })
        .await
    }

    async fn submit_indicators(&self, request: Request<SubmitIndicatorsRequest>) -> Reply<IndicatorReport> {
        let (node, r) = (self.node.clone(), request.into_inner());
        blocking(move || node.submit_indicators(r.fields)).await
    }

    async fn import_needs(&self, request: Request<Streaming<ImportNeedsRequest>>) -> Reply<ImportResponse> {
        let rows = collect_rows(request.into_inner(), |m| m.rows).await?;
        let node = self.node.clone();
        blocking(move || node.import_needs(rows)).await
    }

    async fn import_indicators(
        &self,
        request: Request<Streaming<ImportIndicatorsRequest>>,
    ) -> Reply<ImportResponse> {
        let rows = collect_rows(request.into_inner(), |m| m.rows).await?;
        let node = self.node.clone();
        blocking(move || node.import_indicators(rows)).await
    }

    async fn list_indicators(
        &self,
        request: Request<ListIndicatorsRequest>,
    ) -> Reply<ListIndicatorsResponse> {
        let (node, r) = (self.node.clone(), request.into_inner());
        blocking(move || {
            node.list_indicators(r.from.as_deref(), r.to.as_deref())
                .map(|reports| ListIndicatorsResponse { reports })
        })
        .await
    }

    async fn add_gui_user(
        &self,
        request: Request<passerelle_proto::v1::AddGuiUserRequest>,
    ) -> Reply<passerelle_proto::v1::GuiUser> {
        let (node, r) = (self.node.clone(), request.into_inner());
        blocking(move || node.add_gui_user(&r.name, r.role, &r.password, r.replace)).await
    }

    async fn list_gui_users(
        &self,
        _: Request<passerelle_proto::v1::ListGuiUsersRequest>,
    ) -> Reply<passerelle_proto::v1::ListGuiUsersResponse> {
        let node = self.node.clone();
        blocking(move || {
            node.list_gui_users().map(|users| passerelle_proto::v1::ListGuiUsersResponse { users })
        })
        .await
    }

    async fn remove_gui_user(
        &self,
        request: Request<passerelle_proto::v1::RemoveGuiUserRequest>,
    ) -> Reply<passerelle_proto::v1::RemoveGuiUserResponse> {
        let (node, r) = (self.node.clone(), request.into_inner());
        blocking(move || {
            node.remove_gui_user(&r.name)
                .map(|()| passerelle_proto::v1::RemoveGuiUserResponse { name: r.name })
        })
        .await
    }

    async fn list_missing_indicators(
        &self,
        _: Request<ListMissingIndicatorsRequest>,
    ) -> Reply<ListMissingIndicatorsResponse> {
        let (node, hubs) = (self.node.clone(), self.sync.indicator_hubs());
        blocking(move || {
            node.missing_indicators(&hubs, now_unix_ms())
                .map(|missing| ListMissingIndicatorsResponse { missing })
        })
        .await
    }
}

/// Gathers an import's rows from its messages, refusing it as soon as it passes
/// [`MAX_IMPORT_ROWS`] (the node holds an import in memory until it commits it whole).
async fn collect_rows<M, R>(
    mut stream: Streaming<M>,
    rows_of: impl Fn(M) -> Vec<R>,
) -> Result<Vec<R>, Status> {
    let mut rows = Vec::new();
    while let Some(message) = stream.message().await? {
        rows.extend(rows_of(message));
        if rows.len() > MAX_IMPORT_ROWS {
            let error = FieldError::rule("rows", format!("at most {MAX_IMPORT_ROWS} rows per import"));
            return Err(crate::Error::from(error).into());
        }
    }
    Ok(rows)
}

/// Runs a blocking node call and maps its error to a status.
async fn run<T: Send + 'static>(
    call: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(call).await.map_err(crate::Error::from)?.map_err(Status::from)
}

impl StructureApi {
    /// The request as stored after a delivery attempt (what was sent is no longer flagged).
    async fn reread(
        &self,
        direction: Direction,
        intro: passerelle_proto::v1::Introduction,
    ) -> Reply<passerelle_proto::v1::Introduction> {
        let node = self.node.clone();
        blocking(move || {
            let all = node.list_introductions(direction)?;
            Ok(all.into_iter().find(|i| i.id == intro.id).unwrap_or(intro))
        })
        .await
    }
}
