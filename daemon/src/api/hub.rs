//! The hub's services: `HubSync` (members), `StatisticsService` (consumers), `HubAdmin` (operators).
//! Who may call which is decided by `crate::authz` before any of this runs.

use std::sync::Arc;

use passerelle_proto::v1::hub_admin_server::HubAdmin;
use passerelle_proto::v1::hub_sync_server::HubSync;
use passerelle_proto::v1::statistics_service_server::StatisticsService;
use passerelle_proto::v1::{
    AcceptMemberRequest, GetHubRequest, HelloRequest, HelloResponse, HubInfo, ListMembersRequest,
    ListMembersResponse, ListTablesRequest, ListTablesResponse, Member, ReloadRequest, ReloadResponse,
    RemoveMemberRequest, RemoveMemberResponse, TableDescriptor,
};
use tonic::{Request, Response, Status};

use super::blocking;
use crate::authz;
use crate::hub::Hub;

/// Structures a published statistics cell needs at least.
pub const MIN_STRUCTURES: u32 = 3;
/// Persons a published count needs at least (a hub may raise it).
pub const MIN_PERSONS: u32 = 5;
/// Largest share of a cell one structure may contribute, in percent.
pub const DOMINANCE_PERCENT: u32 = 85;

/// The hub's services over a [`Hub`].
#[derive(Debug, Clone)]
pub struct HubApi {
    hub: Arc<Hub>,
}

impl HubApi {
    /// Serves `hub`.
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl HubSync for HubApi {
    async fn hello(&self, request: Request<HelloRequest>) -> Reply<HelloResponse> {
        let peer = authz::peer(&request)?;
        let hub = self.hub.clone();
        let structure = request.into_inner().structure;
        blocking(move || {
            hub.admit(&peer, structure).map(|member| HelloResponse {
                hub_id: hub.config().id.clone(),
                network: hub.config().network.clone(),
                region: hub.config().region.clone(),
                state: member.state,
            })
        })
        .await
    }
}

#[tonic::async_trait]
impl StatisticsService for HubApi {
    async fn list_tables(&self, _: Request<ListTablesRequest>) -> Reply<ListTablesResponse> {
        let table = |name: &str, description: &str, dimensions: &[&str], measures: &[&str]| TableDescriptor {
            name: name.into(),
            description: description.into(),
            dimensions: dimensions.iter().map(|d| d.to_string()).collect(),
            measures: measures.iter().map(|m| m.to_string()).collect(),
        };
        Ok(Response::new(ListTablesResponse {
            tables: vec![
                table(
                    "indicators",
                    "monthly indicators of member structures, by period",
                    &["period", "departement", "region", "kind", "network"],
                    &[
                        "structures",
                        "etp",
                        "employees_in_insertion",
                        "hours_worked",
                        "hires",
                        "exits",
                        "dynamic_exit_rate",
                    ],
                ),
                table(
                    "needs",
                    "open recruitment needs of member structures",
                    &["rome-grand-domaine", "rome-domaine", "rome", "departement", "start-month", "contract"],
                    &["needs", "open_positions"],
                ),
                table(
                    "profiles",
                    "available anonymised profiles shared under consent",
                    &["rome-domaine", "departement", "age-band"],
                    &["profiles"],
                ),
            ],
            min_structures: MIN_STRUCTURES,
            min_persons: MIN_PERSONS,
            dominance_percent: DOMINANCE_PERCENT,
        }))
    }
}

#[tonic::async_trait]
impl HubAdmin for HubApi {
    async fn get_hub(&self, _: Request<GetHubRequest>) -> Reply<HubInfo> {
        let c = self.hub.config();
        Ok(Response::new(HubInfo {
            id: c.id.clone(),
            network: c.network.clone(),
            region: c.region.clone(),
            auto_accept: c.auto_accept,
            denied_serials: self.hub.denied_serials(),
        }))
    }

    async fn list_members(&self, _: Request<ListMembersRequest>) -> Reply<ListMembersResponse> {
        let hub = self.hub.clone();
        blocking(move || hub.list_members().map(|members| ListMembersResponse { members })).await
    }

    async fn accept_member(&self, request: Request<AcceptMemberRequest>) -> Reply<Member> {
        let hub = self.hub.clone();
        let id = request.into_inner().id;
        blocking(move || hub.accept_member(&id)).await
    }

    async fn remove_member(&self, request: Request<RemoveMemberRequest>) -> Reply<RemoveMemberResponse> {
        let hub = self.hub.clone();
        let id = request.into_inner().id;
        blocking(move || {
            hub.remove_member(&id).map(|removed| RemoveMemberResponse { removed: Some(removed) })
        })
        .await
    }

    async fn reload(&self, _: Request<ReloadRequest>) -> Reply<ReloadResponse> {
        let hub = self.hub.clone();
        blocking(move || hub.reload().map(|denied_serials| ReloadResponse { denied_serials })).await
    }
}
