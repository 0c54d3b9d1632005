//! The hub's services: `HubSync` (members), `StatisticsService` (consumers), `HubAdmin` (operators).
//! Who may call which is decided by `crate::authz` before any of this runs.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use passerelle_proto::v1::{
    ClosePeriodRequest, Completeness, GetCompletenessRequest, ListPeriodsRequest, ListPeriodsResponse,
    Period, RevisePeriodRequest,
};
use passerelle_proto::v1::{GetTableRequest, Table};
use passerelle_proto::v1::{
    ListProfilesRequest, ListProfilesResponse, PushMessage, PushReply, SubscribeRequest, ViewBatch,
    push_message, push_reply,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use passerelle_proto::v1::hub_admin_server::HubAdmin;
use passerelle_proto::v1::hub_sync_server::HubSync;
use passerelle_proto::v1::statistics_service_server::StatisticsService;
use passerelle_proto::v1::{
    AcceptMemberRequest, GetHubRequest, HelloRequest, HelloResponse, HubInfo, ListMembersRequest,
    ListMembersResponse, ListTablesRequest, ListTablesResponse, Member, ReloadRequest, ReloadResponse,
    RemoveMemberRequest, RemoveMemberResponse,
};
use tonic::{Request, Response, Status};

use super::blocking;
use super::view_stream::Subscription;
use crate::authz;
use crate::config::HubConfig;
use crate::hub::Hub;
use crate::hub::ingest::GROUP_COMMIT;
use crate::hub::stats::{self, DOMINANCE_PERCENT, MIN_STRUCTURES};

/// The hub's services over a [`Hub`].
#[derive(Debug, Clone)]
pub(crate) struct HubApi {
    hub: Arc<Hub>,
    /// The config file `Reload` reads again; `None` when the hub was configured in memory.
    config_file: Option<PathBuf>,
    /// Becomes `true` at shutdown: long streams end then.
    stop: watch::Receiver<bool>,
    /// View computations running at once, across every `Subscribe` stream.
    view_gate: Arc<tokio::sync::Semaphore>,
}

/// View computations at once (see `HubSync::subscribe`): about the cores of a modest machine.
const VIEW_COMPUTATIONS: usize = 2;

impl HubApi {
    /// Serves `hub`, configured from `config_file`; streams end when `stop` becomes `true`.
    pub(crate) fn new(hub: Arc<Hub>, config_file: Option<PathBuf>, stop: watch::Receiver<bool>) -> Self {
        Self { hub, config_file, stop, view_gate: Arc::new(tokio::sync::Semaphore::new(VIEW_COMPUTATIONS)) }
    }
}

type ReplyStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Runs a blocking hub call and maps its error to a status.
pub(super) async fn run_blocking<T: Send + 'static>(
    call: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(call).await.map_err(crate::Error::from)?.map_err(Status::from)
}

type Reply<T> = Result<Response<T>, Status>;

/// Resolves when a long stream of `peer` must end, with the status to end it with: the hub's
/// access changed (revocation list reloaded, member removed) and `peer` no longer passes
/// [`Hub::check_access`], or its certificate expired. Cancel-safe: a stream re-creates it on
/// each turn of its loop; `access` remembers which changes were already seen.
pub(super) async fn access_lost(
    hub: Arc<Hub>,
    peer: crate::tls::Peer,
    expires_at_s: Option<i64>,
    access: &mut watch::Receiver<u64>,
) -> Status {
    let expiry = async {
        let Some(at_s) = expires_at_s else { return std::future::pending().await };
        loop {
            let left_ms = at_s.saturating_mul(1000).saturating_sub(passerelle_proto::date::now_unix_ms());
            if left_ms <= 0 {
                return Status::unauthenticated(format!("certificate of {} expired", peer.id));
            }
            // Re-read the clock at least daily rather than trust one very long timer.
            let wait = u64::try_from(left_ms).unwrap_or(u64::MAX).min(86_400_000);
            tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        }
    };
    let changed = async {
        loop {
            if access.changed().await.is_err() {
                return std::future::pending().await;
            }
            let (hub, peer) = (hub.clone(), peer.clone());
            if let Err(status) = run_blocking(move || hub.check_access(&peer)).await {
                return status;
            }
        }
    };
    tokio::select! {
        status = expiry => status,
        status = changed => status,
    }
}

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
                deadline_day: u32::from(hub.config().periods.deadline_day),
            })
        })
        .await
    }

    type PushStream = ReplyStream<PushReply>;

    async fn push(&self, request: Request<Streaming<PushMessage>>) -> Reply<Self::PushStream> {
        let peer = authz::peer(&request)?;
        let expires_at_s = authz::expires_at_s(&request);
        let stream_peer = peer.clone();
        let mut inbound = request.into_inner();
        let open = match inbound.message().await? {
            Some(PushMessage { kind: Some(push_message::Kind::Open(open)) }) => open,
            _ => return Err(Status::invalid_argument("kind: the first message of a push must be open")),
        };
        let hub = self.hub.clone();
        let (session, accepted) = run_blocking(move || hub.open_push(&peer, open)).await?;
        let session = Arc::new(session);
        let (tx, rx) = mpsc::channel(64);
        let _ = tx.send(Ok(PushReply { kind: Some(push_reply::Kind::Accepted(accepted)) })).await;
        let hub = self.hub.clone();
        let mut stop = self.stop.clone();
        let span = tracing::info_span!("push session", origin = session.origin());
        let mut access = self.hub.watch_access();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                // A message read while gathering a group, handled at the next turn.
                let mut carried: Option<Result<Option<PushMessage>, Status>> = None;
                'session: loop {
                    let message = match carried.take() {
                        Some(message) => Ok(message),
                        None => tokio::select! {
                            message = inbound.message() => Ok(message),
                            _ = stop.wait_for(|s| *s) => break,
                            status = access_lost(hub.clone(), stream_peer.clone(), expires_at_s, &mut access) => Err(status),
                        },
                    };
                    let message = match message {
                        Ok(message) => message,
                        Err(status) => {
                            tracing::info!(%status, "push session ended: access lost");
                            let _ = tx.send(Err(status)).await;
                            break;
                        }
                    };
                    let message = match message {
                        Ok(Some(m)) => m,
                        Ok(None) => break,
                        Err(status) => {
                            // A message refused while decoding (over a bound, malformed): the
                            // peer is told why; if it hung up, the send just fails.
                            tracing::debug!(?status, "push stream ended");
                            let _ = tx.send(Err(status)).await;
                            break;
                        }
                    };
                    let (hub, session, peer) = (hub.clone(), session.clone(), stream_peer.clone());
                    let outcomes: Vec<Result<u64, Status>> = match message.kind {
                        // Every message is checked against the member's current state: a peer
                        // revoked or removed since the stream opened writes nothing more.
                        Some(push_message::Kind::Batch(batch)) => {
                            // Group commit: the batches already queued on the stream (the member
                            // keeps several in flight) are applied with this one, in one fsync.
                            let mut batches = vec![batch];
                            while batches.len() < GROUP_COMMIT {
                                match tokio::time::timeout(std::time::Duration::ZERO, inbound.message()).await
                                {
                                    Ok(Ok(Some(PushMessage {
                                        kind: Some(push_message::Kind::Batch(next)),
                                    }))) => {
                                        batches.push(next);
                                    }
                                    Ok(other) => {
                                        carried = Some(other);
                                        break;
                                    }
                                    Err(_) => break, // Nothing more queued.
                                }
                            }
                            let seqs: Vec<u64> = batches.iter().map(|b| b.seq).collect();
                            let outcomes =
                                tokio::task::spawn_blocking(move || match hub.check_access(&peer) {
                                    Ok(_) => hub.apply_batches(&session, batches),
                                    Err(e) => vec![Err(e)],
                                })
                                .await
                                .unwrap_or_else(|e| vec![Err(crate::Error::from(e))]);
                            // Each batch's own outcome, in order: acknowledged (durable) until
                            // the first refusal, which ends the stream with that batch's status.
                            outcomes
                                .into_iter()
                                .zip(seqs)
                                .map(|(o, seq)| o.map(|()| seq).map_err(Status::from))
                                .collect()
                        }
                        Some(push_message::Kind::SnapshotDone(done)) => vec![
                            run_blocking(move || {
                                hub.check_access(&peer)?;
                                hub.finish_snapshot(&session, &done.dataset)
                            })
                            .await
                            .map(|_| 0),
                        ],
                        _ => vec![Err(Status::invalid_argument(
                            "kind: expected a batch or snapshot_done after open",
                        ))],
                    };
                    for outcome in outcomes {
                        let reply = outcome.map(|seq| PushReply {
                            kind: Some(push_reply::Kind::Ack(passerelle_proto::v1::Ack { seq })),
                        });
                        let failed = reply.is_err();
                        if tx.send(reply).await.is_err() || failed {
                            break 'session;
                        }
                    }
                }
            },
            span,
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn list_profiles(&self, request: Request<ListProfilesRequest>) -> Reply<ListProfilesResponse> {
        let peer = authz::peer(&request)?;
        let hub = self.hub.clone();
        blocking(move || {
            hub.require_member(&peer)?;
            let (classes, withheld) = hub.profiles_view(&peer.id.id)?;
            Ok(ListProfilesResponse { classes, k: hub.config().k_anonymity, withheld })
        })
        .await
    }

    async fn send_introduction(
        &self,
        request: Request<passerelle_proto::v1::SendIntroductionRequest>,
    ) -> Reply<passerelle_proto::v1::SendIntroductionResponse> {
        let peer = authz::peer(&request)?;
        let chain = authz::chain(&request);
        let hub = self.hub.clone();
        let request = request.into_inner();
        blocking(move || hub.send_introduction(&peer, &chain, request)).await
    }

    async fn reply_introduction(
        &self,
        request: Request<passerelle_proto::v1::ReplyIntroductionRequest>,
    ) -> Reply<passerelle_proto::v1::ReplyIntroductionResponse> {
        let peer = authz::peer(&request)?;
        let hub = self.hub.clone();
        let replies = request.into_inner().replies;
        blocking(move || {
            hub.reply_introductions(&peer, replies)
                .map(|()| passerelle_proto::v1::ReplyIntroductionResponse {})
        })
        .await
    }

    async fn mailbox(
        &self,
        request: Request<passerelle_proto::v1::MailboxRequest>,
    ) -> Reply<passerelle_proto::v1::MailboxResponse> {
        let peer = authz::peer(&request)?;
        let hub = self.hub.clone();
        let page = request.into_inner();
        blocking(move || hub.mailbox(&peer, &page.after, page.limit)).await
    }

    type SubscribeStream = ReplyStream<ViewBatch>;

    async fn subscribe(&self, request: Request<SubscribeRequest>) -> Reply<Self::SubscribeStream> {
        let peer = authz::peer(&request)?;
        let expires_at_s = authz::expires_at_s(&request);
        let hub = self.hub.clone();
        let check = peer.clone();
        run_blocking(move || hub.check_access(&check)).await?;
        let SubscribeRequest { hub_epoch, after } = request.into_inner();
        // Lazy: a page is made when HTTP/2 asks for the next message (see `view_stream`).
        let subscription = Subscription::new(
            self.hub.clone(),
            peer,
            expires_at_s,
            hub_epoch,
            after,
            self.stop.clone(),
            self.view_gate.clone(),
        );
        Ok(Response::new(Box::pin(subscription.into_stream())))
    }
}

impl HubApi {
    /// Statistics are served to the consumers of this hub's own network (and the local
    /// operator), never to another network's: a consumer reading the same period at a network
    /// hub and at the consolidation hub could difference the tables. Config validation already
    /// keeps `consumer` off other networks' anchors; this holds whatever the anchors say.
    fn statistics_reader<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let peer = crate::authz::peer(request)?;
        let own = &self.hub.config().network;
        match &peer.network {
            Some(network) if network != own => Err(Status::permission_denied(format!(
                "statistics of hub {} are served to consumers of network {own} only, not {network}",
                self.hub.config().id
            ))),
            _ => Ok(()),
        }
    }
}

#[tonic::async_trait]
impl StatisticsService for HubApi {
    async fn list_tables(&self, request: Request<ListTablesRequest>) -> Reply<ListTablesResponse> {
        self.statistics_reader(&request)?;
        let hub = self.hub.clone();
        let periods = run_blocking(move || hub.published_periods()).await?;
        Ok(Response::new(ListTablesResponse {
            tables: stats::Table::ALL
                .into_iter()
                .map(stats::Table::descriptor)
                .chain([stats::introductions::descriptor()])
                .collect(),
            min_structures: MIN_STRUCTURES,
            min_persons: self.hub.config().min_persons,
            dominance_percent: DOMINANCE_PERCENT,
            periods,
        }))
    }

    async fn get_table(&self, request: Request<GetTableRequest>) -> Reply<Table> {
        self.statistics_reader(&request)?;
        let (hub, r) = (self.hub.clone(), request.into_inner());
        blocking(move || hub.table(&r)).await
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
        let AcceptMemberRequest { id, network } = request.into_inner();
        blocking(move || hub.accept_member(&id, Some(network.as_str()))).await
    }

    async fn remove_member(&self, request: Request<RemoveMemberRequest>) -> Reply<RemoveMemberResponse> {
        let hub = self.hub.clone();
        let RemoveMemberRequest { id, network } = request.into_inner();
        blocking(move || {
            hub.remove_member(&id, Some(network.as_str()))
                .map(|removed| RemoveMemberResponse { removed: Some(removed) })
        })
        .await
    }

    async fn reload(&self, _: Request<ReloadRequest>) -> Reply<ReloadResponse> {
        let hub = self.hub.clone();
        let config_file = self.config_file.clone();
        blocking(move || {
            let fresh = HubConfig::reread(config_file.as_deref())?;
            hub.reload(&fresh).map(|denied_serials| ReloadResponse { denied_serials })
        })
        .await
    }

    async fn get_completeness(&self, request: Request<GetCompletenessRequest>) -> Reply<Completeness> {
        let (hub, period) = (self.hub.clone(), request.into_inner().period);
        blocking(move || hub.completeness(&period)).await
    }

    async fn list_periods(&self, _: Request<ListPeriodsRequest>) -> Reply<ListPeriodsResponse> {
        let hub = self.hub.clone();
        blocking(move || hub.list_periods().map(|periods| ListPeriodsResponse { periods })).await
    }

    async fn close_period(&self, request: Request<ClosePeriodRequest>) -> Reply<Period> {
        let (hub, period) = (self.hub.clone(), request.into_inner().period);
        blocking(move || hub.close_period(&period)).await
    }

    async fn revise_period(&self, request: Request<RevisePeriodRequest>) -> Reply<Period> {
        let (hub, period) = (self.hub.clone(), request.into_inner().period);
        blocking(move || hub.revise_period(&period)).await
    }

    async fn add_gui_user(
        &self,
        request: Request<passerelle_proto::v1::AddGuiUserRequest>,
    ) -> Reply<passerelle_proto::v1::GuiUser> {
        let (hub, r) = (self.hub.clone(), request.into_inner());
        blocking(move || hub.add_gui_user(&r.name, r.role, &r.password, r.replace)).await
    }

    async fn list_gui_users(
        &self,
        _: Request<passerelle_proto::v1::ListGuiUsersRequest>,
    ) -> Reply<passerelle_proto::v1::ListGuiUsersResponse> {
        let hub = self.hub.clone();
        blocking(move || {
            hub.list_gui_users().map(|users| passerelle_proto::v1::ListGuiUsersResponse { users })
        })
        .await
    }

    async fn remove_gui_user(
        &self,
        request: Request<passerelle_proto::v1::RemoveGuiUserRequest>,
    ) -> Reply<passerelle_proto::v1::RemoveGuiUserResponse> {
        let (hub, r) = (self.hub.clone(), request.into_inner());
        blocking(move || {
            hub.remove_gui_user(&r.name)
                .map(|()| passerelle_proto::v1::RemoveGuiUserResponse { name: r.name })
        })
        .await
    }
}
