//! Sync throughput and latency, against a bare baseline measured in the same run.
//!
//! Run: `cargo bench -p passerelle-tests --bench sync` (env `BENCH_RECORDS`, default 50000;
//! `BENCH_RUNS`, default 3; `BENCH_SPLIT=1`: node and hub as separate `passerelled` processes,
//! the release build next to this bench, `cargo build --release -p passerelle-daemon` first).
//! Prints a Markdown table for BENCHMARKS.md.
//!
//! - (a) baseline: a tonic mutual-TLS bidirectional stream of batches of 1,000 records into sled,
//!   `apply_batch` + `flush` + `fdatasync` per batch, then ack; 8 batches in flight; no product logic.
//! - (b) Passerelle: a node whose outbox holds the same records catches up with a real hub, in
//!   this process or (`BENCH_SPLIT=1`) each in its own process (TLS
//!   handshake, hello, session, projection from the store, validation, last-writer-wins, feed,
//!   member stats, durable commit per batch, ack-driven durable checkpoints).
//! - latency: a need written at a node, until a subscriber of the hub's view receives it.
//!
//! Each run also says where its catch-up time went (a line `run N phases`): the node's start-up
//! (its store opened and serving: the daemon's `ready`), the connection, `Hello` and `PushOpen`
//! until the hub accepted the push session (the node's `connected_at_ms`), and the streaming
//! from there until every change was acknowledged. The three add up to the catch-up time.
//!
//! The process allocates with jemalloc, as `passerelled` does (see `daemon/src/main.rs`): the
//! in-process figures then describe the daemon as shipped, and the baseline, in the same
//! process, gets the same allocator.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use passerelle_client::NodeClient;
use passerelle_daemon::node::Node;
use passerelle_proto::identity::Role;
use passerelle_proto::v1::hub_sync_client::HubSyncClient;
use passerelle_proto::v1::hub_sync_server::{HubSync, HubSyncServer};
use passerelle_proto::v1::{
    Ack, Batch, Change, HelloRequest, HelloResponse, NeedRow, PushMessage, PushReply, Structure,
    StructureKind, SubscribeRequest, ViewBatch, push_message, push_reply,
};
use passerelle_tests::fixtures::need;
use passerelle_tests::pki::{SIRETS, TestPki};
use passerelle_tests::{ChildDaemon, InProcessDaemon, free_port};
use prost::Message;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};

/// The daemon binary's allocator (see the module documentation).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const WINDOW: usize = 8;
const BATCH: usize = 1000;

/// The bare baseline server: batches into sled, durable, then ack.
struct Baseline {
    db: sled::Db,
    tree: sled::Tree,
    file: Arc<std::fs::File>,
}

type Stream<T> = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl HubSync for Baseline {
    async fn hello(&self, _: Request<HelloRequest>) -> Result<Response<HelloResponse>, Status> {
        Err(Status::unimplemented("baseline"))
    }

    type PushStream = Stream<PushReply>;

    async fn push(
        &self,
        request: Request<Streaming<PushMessage>>,
    ) -> Result<Response<Self::PushStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let (db, tree, file) = (self.db.clone(), self.tree.clone(), self.file.clone());
        tokio::spawn(async move {
            while let Ok(Some(message)) = inbound.message().await {
                let Some(push_message::Kind::Batch(batch)) = message.kind else { continue };
                let (db, tree, file) = (db.clone(), tree.clone(), file.clone());
                let seq = batch.seq;
                let done = tokio::task::spawn_blocking(move || {
                    let mut write = sled::Batch::default();
                    for change in batch.changes {
                        write.insert(change.key.as_bytes(), change.encode_to_vec());
                    }
                    tree.apply_batch(write)?;
                    db.flush()?;
                    file.sync_data()?;
                    anyhow::Ok(())
                })
                .await;
                if !matches!(done, Ok(Ok(()))) {
                    return;
                }
                let ack = PushReply { kind: Some(push_reply::Kind::Ack(Ack { seq })) };
                if tx.send(Ok(ack)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn list_profiles(
        &self,
        _: Request<passerelle_proto::v1::ListProfilesRequest>,
    ) -> Result<Response<passerelle_proto::v1::ListProfilesResponse>, Status> {
        Err(Status::unimplemented("baseline"))
    }

    async fn send_introduction(
        &self,
        _: Request<passerelle_proto::v1::SendIntroductionRequest>,
    ) -> Result<Response<passerelle_proto::v1::SendIntroductionResponse>, Status> {
        Err(Status::unimplemented("baseline"))
    }

    async fn reply_introduction(
        &self,
        _: Request<passerelle_proto::v1::ReplyIntroductionRequest>,
    ) -> Result<Response<passerelle_proto::v1::ReplyIntroductionResponse>, Status> {
        Err(Status::unimplemented("baseline"))
    }

    async fn mailbox(
        &self,
        _: Request<passerelle_proto::v1::MailboxRequest>,
    ) -> Result<Response<passerelle_proto::v1::MailboxResponse>, Status> {
        Err(Status::unimplemented("baseline"))
    }

    type SubscribeStream = Stream<ViewBatch>;

    async fn subscribe(
        &self,
        _: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        Err(Status::unimplemented("baseline"))
    }
}

async fn baseline(pki: &TestPki, dir: &Path, changes: &[Change]) -> anyhow::Result<Duration> {
    let hub = pki.issue(Role::Hub, "baseline-hub")?;
    let node = pki.issue(Role::Node, SIRETS[0])?;
    let db = sled::open(dir)?;
    let tree = db.open_tree("records")?;
    let file = Arc::new(std::fs::File::open(dir.join("db"))?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(std::fs::read(&hub.cert)?, std::fs::read(&hub.key)?))
        .client_ca_root(Certificate::from_pem(std::fs::read(pki.ca_pem())?));
    let server = tokio::spawn(
        Server::builder()
            .tls_config(tls)?
            .add_service(HubSyncServer::new(Baseline { db, tree, file }))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let channel = Endpoint::from_shared(format!("https://localhost:{port}"))?
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(std::fs::read(&node.ca)?))
                .identity(Identity::from_pem(std::fs::read(&node.cert)?, std::fs::read(&node.key)?))
                .domain_name("localhost"),
        )?
        .connect()
        .await?;
    let batches: Vec<Batch> = changes
        .chunks(BATCH)
        .enumerate()
        .map(|(i, c)| Batch { seq: i as u64 + 1, changes: c.to_vec(), head_seq: 0, ..Default::default() })
        .collect();
    let started = Instant::now();
    let (tx, rx) = tokio::sync::mpsc::channel(WINDOW + 1);
    let mut replies = HubSyncClient::new(channel).push(ReceiverStream::new(rx)).await?.into_inner();
    let mut in_flight = VecDeque::new();
    let mut pending = batches.into_iter();
    let mut done = 0;
    let total = changes.len().div_ceil(BATCH);
    while done < total {
        while in_flight.len() < WINDOW {
            let Some(batch) = pending.next() else { break };
            in_flight.push_back(batch.seq);
            tx.send(PushMessage { kind: Some(push_message::Kind::Batch(batch)) }).await?;
        }
        replies.message().await?.ok_or_else(|| anyhow::anyhow!("baseline closed"))?;
        in_flight.pop_front();
        done += 1;
    }
    let elapsed = started.elapsed();
    server.abort();
    Ok(elapsed)
}

struct PasserelleRun {
    catch_up: Duration,
    phases: Phases,
    latencies: Vec<Duration>,
    record_bytes: usize,
    changes: Vec<Change>,
}

/// Where one catch-up's time went, from the node's start (they add up to the catch-up time).
#[derive(Clone, Copy)]
struct Phases {
    /// Until the node's store is open and it serves (its sync engine starts then).
    start_up: Duration,
    /// Until its local API answered a connection (included in what follows, not added).
    api: Duration,
    /// From serving until the hub accepted the push session: TLS, `Hello`, `PushOpen`.
    open: Duration,
    /// From the accepted session until every change was acknowledged.
    streaming: Duration,
}

/// A daemon of the bench: in this process, or a `passerelled` child process.
enum Daemon {
    InProcess(Box<InProcessDaemon>),
    Child(ChildDaemon),
}

impl Daemon {
    async fn start(config: &Path, split: bool) -> anyhow::Result<Self> {
        Ok(if split {
            let binary = passerelle_tests::bin("passerelled");
            let config = config.to_path_buf();
            let child =
                tokio::task::spawn_blocking(move || ChildDaemon::spawn_binary(&binary, &config, &[], "warn"))
                    .await??;
            Daemon::Child(child)
        } else {
            Daemon::InProcess(Box::new(InProcessDaemon::start_config(config).await?))
        })
    }

    fn endpoint(&self) -> &str {
        match self {
            Daemon::InProcess(d) => &d.endpoint,
            Daemon::Child(d) => &d.endpoint,
        }
    }

    async fn stop(self) -> anyhow::Result<()> {
        match self {
            Daemon::InProcess(d) => d.stop().await,
            Daemon::Child(d) => tokio::task::spawn_blocking(move || d.terminate()).await?,
        }
    }
}

async fn passerelle(
    pki: &TestPki,
    records: usize,
    measure_latency: bool,
    split: bool,
) -> anyhow::Result<PasserelleRun> {
    let port = free_port()?;
    let hub_config = pki.write_hub_config_on("coorace-pdl", port, "auto_accept = true", "")?;
    let hub = Daemon::start(&hub_config, split).await?;
    let hub_endpoint = format!("https://localhost:{port}");
    let node_config =
        pki.write_node_config(SIRETS[1], "49", &[("coorace-pdl", hub_endpoint.clone(), &["needs"])])?;
    // First start registers the hub (its checkpoint starts at the empty outbox).
    let node = Daemon::start(&node_config, split).await?;
    NodeClient::connect(node.endpoint(), None).await?.sync_now(true, Duration::from_secs(30)).await?;
    node.stop().await?;
    let config = passerelle_daemon::config::Config::load(&node_config)?;
    let data_dir = config.data_dir.clone();
    let structure = config.node().map(|n| n.structure.clone()).unwrap_or_default();

    // The backlog: written while the node is offline, in bulk.
    let files = pki.issue(Role::Node, SIRETS[1])?;
    let changes = tokio::task::spawn_blocking(move || {
        // Signed at commit, as the node does (not by the migration at its next start).
        let signer = passerelle_daemon::tls::signing::RecordSigner::load(&files.cert, &files.key)?;
        let node = Node::open(&data_dir, structure)?.with_signer(signer)?;
        for start in (0..records).step_by(10_000) {
            node.import_needs(
                (start..(start + 10_000).min(records))
                    .map(|i| NeedRow { line: 0, fields: Some(need(i)) })
                    .collect(),
            )?;
        }
        anyhow::Ok(node.snapshot("needs", "coorace-pdl")?)
    })
    .await??;
    let record_bytes = changes.iter().map(|c| c.encoded_len()).sum::<usize>() / changes.len().max(1);

    let started = Instant::now();
    let started_ms = unix_ms();
    let node = Daemon::start(&node_config, split).await?;
    let start_up = started.elapsed();
    let mut client = NodeClient::connect(node.endpoint(), None).await?;
    let api = started.elapsed();
    let status = client.sync_now(true, Duration::from_secs(600)).await?;
    let catch_up = started.elapsed();
    // The node's clock and this process's are the same machine's: milliseconds since the start.
    let accepted = status.hubs.first().map_or(0, |h| h.connected_at_ms) - started_ms;
    let accepted = Duration::from_millis(u64::try_from(accepted).unwrap_or(0)).clamp(start_up, catch_up);
    let phases = Phases { start_up, api, open: accepted - start_up, streaming: catch_up - accepted };

    let mut latencies = Vec::new();
    if measure_latency {
        let watcher = pki.issue(Role::Node, SIRETS[2])?;
        let channel = passerelle_client::connect(&hub_endpoint, Some(&watcher), "hub").await?;
        let mut sync = HubSyncClient::new(channel);
        let me = Structure {
            siret: SIRETS[2].into(),
            kind: StructureKind::Ai as i32,
            name: "Observateur".into(),
            departement: "49".into(),
        };
        sync.hello(HelloRequest { structure: Some(me) }).await?;
        let mut view =
            sync.subscribe(SubscribeRequest { hub_epoch: Vec::new(), after: 0 }).await?.into_inner();
        view.message().await?; // The initial full view.
        for i in 0..200 {
            let t0 = Instant::now();
            let created = client.create_need(need(records + i)).await?;
            loop {
                let batch = view.message().await?.ok_or_else(|| anyhow::anyhow!("view closed"))?;
                if batch.upserts.iter().any(|u| u.need.as_ref().is_some_and(|n| n.need_id == created.id)) {
                    break;
                }
            }
            latencies.push(t0.elapsed());
        }
    }
    node.stop().await?;
    hub.stop().await?;
    Ok(PasserelleRun { catch_up, phases, latencies, record_bytes, changes })
}

/// Milliseconds since the Unix epoch, as the node dates its events.
fn unix_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn percentile(values: &[Duration], p: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let records: usize = std::env::var("BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000);
    let runs: usize = std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let split = std::env::var("BENCH_SPLIT").is_ok_and(|v| v == "1");
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let (mut base, mut ours, mut ratios, mut latencies, mut bytes) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), 0);
        let mut phases: Vec<Phases> = Vec::new();
        for run in 0..runs {
            let dir = tempfile::tempdir()?;
            let pki = TestPki::new(dir.path())?;
            // The records come from a Passerelle node; the baseline runs before or after the
            // Passerelle catch-up, alternately, so neither always gets the quieter disk.
            let mut result = passerelle(&pki, records, run == 0, split).await?;
            let baseline_first = run % 2 == 1;
            let b = baseline(&pki, &dir.path().join("baseline"), &result.changes).await?;
            if baseline_first {
                let again = tempfile::tempdir()?;
                let pki2 = TestPki::new(again.path())?;
                result = passerelle(&pki2, records, false, split).await?;
            }
            bytes = result.record_bytes;
            let (rb, rp) = (records as f64 / b.as_secs_f64(), records as f64 / result.catch_up.as_secs_f64());
            eprintln!(
                "run {}: baseline {:.0} records/s, passerelle {:.0} records/s (catch-up {:.2} s), ratio {:.2}",
                run + 1,
                rb,
                rp,
                result.catch_up.as_secs_f64(),
                rp / rb
            );
            let p = result.phases;
            eprintln!(
                "run {} phases: node start-up {:.3} s (store open, serving; its API answered at {:.3} s), connection + hello + open {:.3} s, streaming {:.3} s (accepted → all acknowledged), catch-up {:.3} s",
                run + 1,
                p.start_up.as_secs_f64(),
                p.api.as_secs_f64(),
                p.open.as_secs_f64(),
                p.streaming.as_secs_f64(),
                result.catch_up.as_secs_f64()
            );
            phases.push(p);
            base.push(rb);
            ours.push(rp);
            ratios.push(rp / rb);
            latencies.extend(result.latencies);
        }
        let (b, p, ratio) = (median(base), median(ours), median(ratios));
        println!("| measure | value |");
        println!("|---|---|");
        println!("| records | {records} needs, {bytes} bytes each on the wire (a `Change` with its `SharedNeed`) |");
        println!("| (a) baseline: mTLS stream → sled apply_batch + flush + fdatasync, 1,000/batch, 8 in flight (median of {runs}) | {b:.0} records/s |");
        let mode = if split { "node and hub as separate `passerelled` processes" } else { "in one process" };
        println!("| (b) Passerelle node → hub catch-up of a {records}-change backlog, {mode} (median of {runs}) | {p:.0} records/s |");
        println!("| ratio (b) / (a), median of per-run ratios | {ratio:.2} |");
        println!("| catch-up time for the {records}-change backlog (median of {runs}) | {:.2} s |", records as f64 / p);
        let phase = |f: fn(&Phases) -> Duration| median(phases.iter().map(|p| f(p).as_secs_f64()).collect());
        println!(
            "| of which (medians of {runs}): node start-up / connection + hello + open / streaming | {:.3} s / {:.3} s / {:.3} s |",
            phase(|p| p.start_up),
            phase(|p| p.open),
            phase(|p| p.streaming)
        );
        if !latencies.is_empty() {
            println!(
                "| write at node → visible in the hub's view, push on change ({} writes) | p50 {:.1} ms, p99 {:.1} ms |",
                latencies.len(),
                percentile(&latencies, 0.5).as_secs_f64() * 1e3,
                percentile(&latencies, 0.99).as_secs_f64() * 1e3
            );
        }
        anyhow::Ok(())
    })
}
