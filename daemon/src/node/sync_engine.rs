//! The node's sync engine: one task per configured hub that keeps a push session and a view
//! subscription open over the one sync link (`sync::link`: connection, hello, backoff with
//! jitter), with `sync now` skipping the wait.
//!
//! Push (see [`super::push`]): the outbox is sent in order, in batches, several in flight; the
//! checkpoint advances only when the hub acknowledges a batch it made durable. A new agreement,
//! a reset hub or a digest mismatch triggers a full resend of the datasets concerned; a dataset no
//! longer shared is withdrawn with a tombstone. A committed change wakes the session at once
//! (push on change, no polling).
//!
//! Pull ([`SyncEngine::pull`]): the hub's network view is streamed from the node's view
//! checkpoint and stored locally, so it can be read offline.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use passerelle_client::TlsFiles;
use passerelle_proto::datasets::Dataset;
use passerelle_proto::date::now_unix_ms;
use passerelle_proto::v1::hub_sync_client::HubSyncClient;
use passerelle_proto::v1::{HubSyncStatus, SubscribeRequest, SyncStatusResponse};
use tokio::sync::{Notify, watch};
use tonic::transport::Channel;

use super::Node;
use super::push::OutboxSource;
use crate::config::HubLink;
use crate::error::{Error, Result};
use crate::sync::link::{self, status_text};
use crate::sync::{LinkCounters, connect};

/// What the engine knows about one hub right now (the durable part is in [`state`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct LinkStatus {
    /// A push session is open.
    pub connected: bool,
    /// When the hub accepted the open push session (0: none open).
    pub connected_at_ms: i64,
    /// Highest acknowledged sequence number.
    pub checkpoint: u64,
    /// Full resends or withdrawals still owed.
    pub owed: usize,
    /// Last acknowledgement time.
    pub last_ack_at_ms: i64,
    /// Last error, empty after a successful session start.
    pub last_error: String,
}

/// One hub link as the metrics endpoint shows it.
#[derive(Debug, Clone, Default)]
pub(crate) struct LinkMetrics {
    /// The hub's id.
    pub hub: String,
    /// A push session is open.
    pub connected: bool,
    /// Changes committed but not acknowledged by the hub.
    pub pending: u64,
    /// How long the oldest of them has waited, in seconds (0 when none).
    pub lag_seconds: f64,
    /// See [`LinkCounters`], in the same order.
    pub batches_sent: u64,
    /// Changes sent.
    pub records_sent: u64,
    /// Batches acknowledged.
    pub batches_acked: u64,
    /// Changes acknowledged.
    pub records_acked: u64,
    /// Full resends the hub asked for.
    pub resends_requested: u64,
    /// Time of the last acknowledgement, milliseconds since the epoch (0: none yet).
    pub last_ack_at_ms: i64,
}

/// One hub's task handle.
#[derive(Debug)]
pub(crate) struct Link {
    pub(super) config: HubLink,
    pub(super) status: Mutex<LinkStatus>,
    /// What went through this link.
    pub(super) counters: LinkCounters,
    /// `sync now`: skip the current retry delay.
    wake: Notify,
}

/// The sync engine of a node.
#[derive(Debug)]
pub(crate) struct SyncEngine {
    pub(super) node: Arc<Node>,
    pub(super) links: Vec<Arc<Link>>,
    pub(super) tls: Option<TlsFiles>,
    /// `[node] introduction_retention_days`.
    pub(super) introduction_retention: Duration,
    /// Notified on every acknowledgement or error, for `sync now --wait`.
    pub(super) progress: Arc<Notify>,
}

impl SyncEngine {
    /// An engine for `hubs`; nothing runs until [`SyncEngine::start`].
    pub(crate) fn new(
        node: Arc<Node>,
        hubs: &[HubLink],
        tls: Option<TlsFiles>,
        introduction_retention: Duration,
    ) -> Result<Arc<Self>> {
        let mut links = Vec::new();
        for hub in hubs {
            let state = node.reconcile_push_state(hub)?;
            let status = LinkStatus {
                checkpoint: state.checkpoint,
                owed: state.owed(),
                last_ack_at_ms: state.last_ack_at_ms,
                ..Default::default()
            };
            links.push(Arc::new(Link {
                config: hub.clone(),
                status: Mutex::new(status),
                counters: LinkCounters::default(),
                wake: Notify::new(),
            }));
        }
        if links.is_empty() {
            // No hub will ever read the outbox: keep it empty.
            node.compact_outbox(node.head_seq())?;
        }
        Ok(Arc::new(Self { node, links, tls, introduction_retention, progress: Arc::new(Notify::new()) }))
    }

    /// Starts one task per hub, and the daily check of age bands; they stop when `stop` becomes
    /// `true`.
    pub(crate) fn start(self: &Arc<Self>, stop: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        let (node, mut until) = (self.node.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = node.clone();
                match tokio::task::spawn_blocking(move || n.refresh_age_bands()).await {
                    Ok(Ok(moved)) if moved > 0 => tracing::info!(moved, "age bands moved: profiles re-sent"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "age band check failed"),
                    _ => {}
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(24 * 3600)) => {}
                    _ = until.wait_for(|s| *s) => return,
                }
            }
        }));
        for link in &self.links {
            let (engine, link, stop) = (self.clone(), link.clone(), stop.clone());
            let span = tracing::info_span!("sync", hub = %link.config.id);
            tasks.push(tokio::spawn(tracing::Instrument::instrument(engine.run_link(link, stop), span)));
        }
        tasks
    }

    async fn run_link(self: Arc<Self>, link: Arc<Link>, stop: watch::Receiver<bool>) {
        let session = || {
            let (engine, link, stop) = (self.clone(), link.clone(), stop.clone());
            async move {
                let outcome = engine.session(&link, stop).await;
                engine.update(&link, |s| {
                    s.connected = false;
                    s.connected_at_ms = 0;
                });
                outcome
            }
        };
        let ended = |e: &Error, retry_in: Duration| {
            tracing::warn!(error = %e, ?retry_in, "sync session ended");
            let message = e.to_string();
            self.update(&link, |s| s.last_error = message);
            self.started_ok(&link)
        };
        link::retry(stop.clone(), Some(&link.wake), session, ended).await;
    }

    /// Whether the last session got as far as the hub accepting it.
    fn started_ok(&self, link: &Link) -> bool {
        link.status.lock().map(|s| s.last_ack_at_ms > now_unix_ms() - 60_000).unwrap_or(false)
    }

    pub(super) fn update(&self, link: &Link, change: impl FnOnce(&mut LinkStatus)) {
        if let Ok(mut status) = link.status.lock() {
            change(&mut status);
        }
        self.progress.notify_waiters();
    }

    /// One connection: hello, then push and pull until either fails or `stop`.
    async fn session(self: &Arc<Self>, link: &Arc<Link>, stop: watch::Receiver<bool>) -> Result<()> {
        let tls = self.tls.as_ref().ok_or_else(|| Error::Config("[[hubs]] needs [tls]".into()))?;
        let (channel, hello) = link::connect(&link.config, tls, Some(self.node.structure().clone())).await?;
        tracing::info!(network = %hello.network, "connected");
        if link.config.datasets.contains(&Dataset::Indicators) {
            // Reporting periods: the hub's deadline and our first sync with it (`node/missing.rs`).
            let (node, hub, day) = (self.node.clone(), link.config.id.clone(), hello.deadline_day);
            tokio::task::spawn_blocking(move || node.record_hub_periods(&hub, day, now_unix_ms())).await??;
        }
        let source = Arc::new(OutboxSource::new(self.clone(), link.clone()));
        tokio::try_join!(
            link::push(source, channel.clone(), stop.clone()),
            self.pull(link, channel.clone(), stop.clone()),
            self.exchange_loop(link, channel, stop),
        )?;
        Ok(())
    }

    pub(super) async fn connect(&self, hub: &HubLink) -> Result<Channel> {
        let tls = self.tls.as_ref().ok_or_else(|| Error::Config("[[hubs]] needs [tls]".into()))?;
        connect::connect(hub, tls).await
    }

    async fn pull(&self, link: &Link, channel: Channel, mut stop: watch::Receiver<bool>) -> Result<()> {
        let hub = link.config.id.clone();
        let node = self.node.clone();
        let view = {
            let (node, hub) = (node.clone(), hub.clone());
            tokio::task::spawn_blocking(move || node.view_state(&hub)).await??
        };
        let mut stream = HubSyncClient::new(channel)
            .subscribe(SubscribeRequest { hub_epoch: view.hub_epoch, after: view.position })
            .await
            .map_err(|s| Error::FailedPrecondition(status_text(&s)))?
            .into_inner();
        loop {
            let batch = tokio::select! {
                batch = stream.message() => batch.map_err(|s| Error::FailedPrecondition(status_text(&s)))?,
                _ = stop.wait_for(|s| *s) => return Ok(()),
            };
            let Some(batch) = batch else {
                return Err(Error::FailedPrecondition("the hub closed the view stream".into()));
            };
            let (node, hub) = (node.clone(), hub.clone());
            tokio::task::spawn_blocking(move || node.apply_view(&hub, &batch)).await??;
        }
    }

    /// Lowest checkpoint over every hub: outbox entries up to it are no longer needed.
    pub(super) fn min_checkpoint(&self) -> u64 {
        self.links.iter().filter_map(|l| l.status.lock().ok().map(|s| s.checkpoint)).min().unwrap_or(0)
    }

    /// The classes of candidates each hub publishes now (k-anonymous at the hub, without this
    /// structure's own), filtered by ROME prefix and département (a class generalised to a région
    /// matches the départements in it).
    pub(crate) async fn network_profiles(
        &self,
        rome_prefix: Option<&str>,
        departement: Option<&str>,
    ) -> Result<passerelle_proto::v1::ListNetworkProfilesResponse> {
        use passerelle_proto::v1::{ListNetworkProfilesResponse, ListProfilesRequest, NetworkClass};
        if let Some(dep) = departement {
            passerelle_proto::validate::departement("departement", dep)?;
        }
        let region = departement.and_then(passerelle_proto::geo::region_of);
        let mut out = ListNetworkProfilesResponse::default();
        for link in &self.links {
            if !link.config.datasets.contains(&passerelle_proto::datasets::Dataset::Profiles) {
                continue;
            }
            let fetched = async {
                let channel = self.connect(&link.config).await?;
                HubSyncClient::new(channel)
                    .list_profiles(ListProfilesRequest {})
                    .await
                    .map_err(|s| Error::FailedPrecondition(status_text(&s)))
            }
            .await;
            match fetched {
                Ok(reply) => {
                    for class in reply.into_inner().classes {
                        let rome_ok = rome_prefix
                            .is_none_or(|p| class.rome.starts_with(p) || p.starts_with(&class.rome));
                        let area_ok = departement.is_none_or(|d| {
                            class.area == d
                                || (class.area_level == "region" && Some(class.area.as_str()) == region)
                        });
                        if rome_ok && area_ok {
                            out.classes
                                .push(NetworkClass { hub_id: link.config.id.clone(), class: Some(class) });
                        }
                    }
                }
                Err(e) => out.unreachable.push(format!("{}: {e}", link.config.id)),
            }
        }
        Ok(out)
    }

    /// The metrics of every hub link.
    pub(crate) fn metrics(&self) -> Result<Vec<LinkMetrics>> {
        let now = passerelle_proto::date::now_unix_ms();
        let mut out = Vec::new();
        for link in &self.links {
            let status = link.status.lock().map(|s| s.clone()).unwrap_or_default();
            let pending = self.node.pending_after(status.checkpoint);
            let since =
                self.node.pending_since_ms(status.checkpoint).filter(|_| pending > 0 || status.owed > 0);
            let c = &link.counters;
            out.push(LinkMetrics {
                hub: link.config.id.clone(),
                connected: status.connected,
                pending,
                lag_seconds: since.map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0),
                batches_sent: c.batches_sent.load(Ordering::Relaxed),
                records_sent: c.records_sent.load(Ordering::Relaxed),
                batches_acked: c.batches_acked.load(Ordering::Relaxed),
                records_acked: c.records_acked.load(Ordering::Relaxed),
                resends_requested: c.resends_requested.load(Ordering::Relaxed),
                last_ack_at_ms: status.last_ack_at_ms,
            });
        }
        Ok(out)
    }

    /// The hubs configured to receive `indicators` (those whose due dates count).
    pub(crate) fn indicator_hubs(&self) -> Vec<String> {
        let shares = |l: &&Arc<Link>| l.config.datasets.contains(&Dataset::Indicators);
        self.links.iter().filter(shares).map(|l| l.config.id.clone()).collect()
    }

    /// The configured hubs' ids (what a consent may name).
    pub(crate) fn hub_ids(&self) -> Vec<String> {
        self.links.iter().map(|l| l.config.id.clone()).collect()
    }

    /// Status of every hub.
    pub(crate) fn status(&self) -> Result<SyncStatusResponse> {
        let head = self.node.head_seq();
        let mut hubs = Vec::new();
        for link in &self.links {
            let status = link.status.lock().map(|s| s.clone()).unwrap_or_default();
            let pending = self.node.pending_after(status.checkpoint);
            hubs.push(HubSyncStatus {
                hub_id: link.config.id.clone(),
                endpoint: link.config.endpoint.clone(),
                datasets: link.config.datasets.iter().map(ToString::to_string).collect(),
                connected: status.connected,
                last_ack_at_ms: status.last_ack_at_ms,
                pending,
                last_error: status.last_error,
                network_needs: self.node.network_needs_from(&link.config.id)? as u64,
                connected_at_ms: status.connected_at_ms,
            });
        }
        let overdue_months = self.node.overdue_months(&self.indicator_hubs(), now_unix_ms())?;
        Ok(SyncStatusResponse { hubs, head_seq: head, overdue_months })
    }

    /// Pushes now; with `wait`, until every hub has an accepted session and acknowledged
    /// everything committed before the call, or `timeout`.
    pub(crate) async fn sync_now(&self, wait: bool, timeout: Duration) -> Result<SyncStatusResponse> {
        let target = self.node.head_seq();
        for link in &self.links {
            link.wake.notify_one();
        }
        if wait {
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                let progress = self.progress.notified();
                let behind: Vec<(String, String)> = self
                    .links
                    .iter()
                    .filter_map(|l| {
                        let s = l.status.lock().ok()?;
                        // In sync means: a session the hub accepted (so digests were compared),
                        // nothing owed, everything up to the call acknowledged.
                        (!s.connected || s.checkpoint < target || s.owed > 0)
                            .then(|| (l.config.id.clone(), s.last_error.clone()))
                    })
                    .collect();
                if behind.is_empty() {
                    break;
                }
                if tokio::time::timeout_at(deadline, progress).await.is_err() {
                    let detail: Vec<String> = behind
                        .into_iter()
                        .map(|(hub, e)| {
                            if e.is_empty() {
                                format!("{hub}: not acknowledged yet")
                            } else {
                                format!("{hub}: {e}")
                            }
                        })
                        .collect();
                    return Err(Error::Unavailable(format!(
                        "not every hub acknowledged within {} s: {}",
                        timeout.as_secs(),
                        detail.join("; ")
                    )));
                }
            }
        }
        self.status()
    }
}
