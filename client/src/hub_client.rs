//! [`HubClient`]: a hub's services, for operators (administration), members and consumers.

use passerelle_proto::v1::hub_admin_client::HubAdminClient;
use passerelle_proto::v1::hub_sync_client::HubSyncClient;
use passerelle_proto::v1::statistics_service_client::StatisticsServiceClient;
use passerelle_proto::v1::{
    AcceptMemberRequest, ClosePeriodRequest, Completeness, GetCompletenessRequest, GetHubRequest,
    HelloRequest, HelloResponse, HubInfo, ListMembersRequest, ListPeriodsRequest, ListTablesRequest,
    ListTablesResponse, Member, Period, ReloadRequest, RemoveMemberRequest, RevisePeriodRequest, Structure,
};
use tonic::transport::Channel;

use crate::channel::{TlsFiles, connect};
use crate::error::{Error, Result};

/// A connection to a hub (its operator API, or its mutual-TLS listener).
#[derive(Debug, Clone)]
pub struct HubClient {
    channel: Channel,
    endpoint: String,
}

impl HubClient {
    /// Connects to the hub at `endpoint`.
    pub async fn connect(endpoint: &str, tls: Option<&TlsFiles>) -> Result<Self> {
        Ok(Self { channel: connect(endpoint, tls, "hub").await?, endpoint: endpoint.to_string() })
    }

    fn status(&self, status: tonic::Status) -> Error {
        Error::from_status(status, "hub", &self.endpoint)
    }

    /// The hub's identity and settings.
    pub async fn info(&self) -> Result<HubInfo> {
        let reply = HubAdminClient::new(self.channel.clone()).get_hub(GetHubRequest {}).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// Every member.
    pub async fn members(&self) -> Result<Vec<Member>> {
        let reply = HubAdminClient::new(self.channel.clone()).list_members(ListMembersRequest {}).await;
        reply.map(|r| r.into_inner().members).map_err(|s| self.status(s))
    }

    /// Accepts a member (SIRET or hub id) known here from one network only.
    pub async fn accept(&self, id: &str) -> Result<Member> {
        self.accept_from(id, None).await
    }

    /// Accepts a member, naming the network whose CA vouches for it (`None`: the only one).
    pub async fn accept_from(&self, id: &str, network: Option<&str>) -> Result<Member> {
        let request = AcceptMemberRequest { id: id.into(), network: network.unwrap_or_default().into() };
        let reply = HubAdminClient::new(self.channel.clone()).accept_member(request).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// Removes a member known here from one network only.
    pub async fn remove(&self, id: &str) -> Result<Member> {
        self.remove_from(id, None).await
    }

    /// Removes a member, naming the network whose CA vouches for it (`None`: the only one).
    pub async fn remove_from(&self, id: &str, network: Option<&str>) -> Result<Member> {
        let request = RemoveMemberRequest { id: id.into(), network: network.unwrap_or_default().into() };
        let reply = HubAdminClient::new(self.channel.clone()).remove_member(request).await;
        reply.map(|r| r.into_inner().removed.unwrap_or_default()).map_err(|s| self.status(s))
    }

    /// Adds a web console account on the hub (the hub hashes the password).
    pub async fn add_gui_user(
        &self,
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
        let reply = HubAdminClient::new(self.channel.clone()).add_gui_user(request).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// The hub console's accounts.
    pub async fn gui_users(&self) -> Result<Vec<passerelle_proto::v1::GuiUser>> {
        let request = passerelle_proto::v1::ListGuiUsersRequest {};
        let reply = HubAdminClient::new(self.channel.clone()).list_gui_users(request).await;
        reply.map(|r| r.into_inner().users).map_err(|s| self.status(s))
    }

    /// Removes a hub console account.
    pub async fn remove_gui_user(&self, name: &str) -> Result<()> {
        let request = passerelle_proto::v1::RemoveGuiUserRequest { name: name.to_string() };
        let reply = HubAdminClient::new(self.channel.clone()).remove_gui_user(request).await;
        reply.map(|_| ()).map_err(|s| self.status(s))
    }

    /// Re-reads the hub's revocation list; returns the list now in force.
    pub async fn reload(&self) -> Result<Vec<String>> {
        let reply = HubAdminClient::new(self.channel.clone()).reload(ReloadRequest {}).await;
        reply.map(|r| r.into_inner().denied_serials).map_err(|s| self.status(s))
    }

    /// Who has reported a month (empty: the latest month whose due date has passed).
    pub async fn completeness(&self, period: &str) -> Result<Completeness> {
        let reply = HubAdminClient::new(self.channel.clone())
            .get_completeness(GetCompletenessRequest { period: period.into() })
            .await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// Every month seen, open or closed.
    pub async fn periods(&self) -> Result<Vec<Period>> {
        let reply = HubAdminClient::new(self.channel.clone()).list_periods(ListPeriodsRequest {}).await;
        reply.map(|r| r.into_inner().periods).map_err(|s| self.status(s))
    }

    /// Closes a month now (idempotent).
    pub async fn close_period(&self, period: &str) -> Result<Period> {
        let reply = HubAdminClient::new(self.channel.clone())
            .close_period(ClosePeriodRequest { period: period.into() })
            .await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// Publishes a closed month's late or corrected reports as its next revision.
    pub async fn revise_period(&self, period: &str) -> Result<Period> {
        let reply = HubAdminClient::new(self.channel.clone())
            .revise_period(RevisePeriodRequest { period: period.into() })
            .await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// As a member: introduces a structure (or, with `None`, a downstream hub).
    pub async fn hello(&self, structure: Option<Structure>) -> Result<HelloResponse> {
        let reply = HubSyncClient::new(self.channel.clone()).hello(HelloRequest { structure }).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// As a consumer: one table, through disclosure control.
    pub async fn table(
        &self,
        request: passerelle_proto::v1::GetTableRequest,
    ) -> Result<passerelle_proto::v1::Table> {
        let reply = StatisticsServiceClient::new(self.channel.clone()).get_table(request).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }

    /// As a consumer: the published tables.
    pub async fn tables(&self) -> Result<ListTablesResponse> {
        let reply =
            StatisticsServiceClient::new(self.channel.clone()).list_tables(ListTablesRequest {}).await;
        reply.map(|r| r.into_inner()).map_err(|s| self.status(s))
    }
}
