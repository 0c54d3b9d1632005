//! Hub fan-in: thousands of member nodes meeting one hub at once, the hub a separate
//! `passerelled` process and the nodes simulated by tasks of this one.
//!
//! Each simulated node has its own certificate (minted once per run with the client PKI code,
//! before the clock starts) and does what a real node's sync engine does at first contact: a
//! mutual-TLS handshake, `Hello`, a push session (open, one batch of 12 monthly indicator
//! reports and 3 needs, each signed as a node signs them, then `SnapshotDone` for each dataset
//! the hub asks resent), and then holds its view `Subscribe` stream open, reading what the hub
//! sends. Used by `benches/fanin.rs` (4,000 nodes) and by a smoke test with a handful.
//!
//! Why in the library: the smoke test runs the very code the benchmark runs, so the benchmark
//! cannot rot unnoticed.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use passerelle_client::pki::{CertificateAuthority, IssueRequest};
use passerelle_daemon::tls::signing::RecordSigner;
use passerelle_proto::date::Month;
use passerelle_proto::identity::{PeerId, Role};
use passerelle_proto::signed::{Origin, Signed, signed_bytes};
use passerelle_proto::v1::hub_sync_client::HubSyncClient;
use passerelle_proto::v1::{
    Batch, Change, ContractType, Exits, HelloRequest, IndicatorFields, IndicatorReport, NeedStatus,
    PushMessage, PushOpen, SharedNeed, SnapshotDone, Structure, StructureKind, SubscribeRequest, change,
    push_message, push_reply,
};
use tokio::sync::Semaphore;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::ChildDaemon;
use crate::pki::TestPki;

/// The départements of région 52, where the simulated structures are.
const DEPARTEMENTS: [&str; 5] = ["44", "49", "53", "72", "85"];
/// Needs each simulated node pushes.
pub const NEEDS_PER_NODE: usize = 3;
/// Monthly reports each simulated node pushes.
pub const REPORTS_PER_NODE: usize = 12;

/// What to run.
#[derive(Debug, Clone)]
pub struct FanInOptions {
    /// Simulated nodes.
    pub nodes: usize,
    /// Nodes between their handshake and their acknowledgement at once (the others wait, as
    /// nodes whose backoff has not expired yet would).
    pub concurrency: usize,
    /// How long to wait, after the last acknowledgement, for every subscriber to have received
    /// the whole view (the idle RSS is read then).
    pub settle: Duration,
    /// Whether each node opens its view `Subscribe` after its push (as a real node does) and
    /// holds it; without, it hangs up once acknowledged (to measure ingest alone).
    pub subscribe: bool,
    /// The `passerelled` to run as the hub (`None`: the workspace's, next to this executable).
    pub hub_binary: Option<std::path::PathBuf>,
}

/// What happened.
#[derive(Debug, Clone)]
pub struct FanInReport {
    /// Simulated nodes.
    pub nodes: usize,
    /// Nodes whose batch the hub acknowledged.
    pub acknowledged: usize,
    /// From the first connection to the last acknowledgement.
    pub elapsed: Duration,
    /// Each node's TCP + TLS + HTTP/2 connection time.
    pub handshakes: Vec<Duration>,
    /// Handshakes completed per second over the storm.
    pub handshakes_per_s: f64,
    /// Each node's batch: sent → acknowledged (durable at the hub).
    pub ack_latencies: Vec<Duration>,
    /// The hub's peak resident set (VmHWM), kB.
    pub hub_peak_rss_kb: u64,
    /// The hub's resident set with every session open and idle (VmRSS), kB.
    pub hub_idle_rss_kb: u64,
    /// The hub's resident set before any node connected, kB.
    pub hub_start_rss_kb: u64,
    /// Subscribe streams still open when the idle RSS was read.
    pub open_subscriptions: usize,
    /// Needs the subscribers received in all, and how many the whole view makes.
    pub view_needs: (u64, u64),
    /// The largest view message a subscriber received: its needs (upserts and removals) and its
    /// encoded bytes. What a hub holds per subscriber is a message or two of this size.
    pub largest_view_message: (u64, u64),
    /// From the last acknowledgement until every subscriber had the whole view (`None`: not
    /// within `settle`).
    pub view_complete: Option<Duration>,
    /// A real node (`passerelled`) joining the network afterwards: its resident set once it
    /// holds the whole view, idle (kB), and the needs it holds.
    pub node_idle_rss_kb: Option<(u64, usize)>,
    /// The hub restarted on its store (every member known), idle: its resident set (kB).
    pub hub_restarted_rss_kb: u64,
    /// Nodes that failed, and the first few reasons.
    pub errors: usize,
    /// The first failures' messages.
    pub first_errors: Vec<String>,
}

/// A valid SIRET (Luhn) for simulated structure `n`.
pub fn siret(n: usize) -> String {
    let base = format!("{:013}", 1_000_000_000_000u64 + n as u64 * 7919);
    (0..10)
        .map(|d| format!("{base}{d}"))
        .find(|s| passerelle_proto::validate::siret("siret", s).is_ok())
        .unwrap_or_default()
}

/// One simulated node: its credentials and everything it will send, built (and signed) before
/// the storm.
struct SimNode {
    identity: Identity,
    structure: Structure,
    open: PushOpen,
    batch: Batch,
}

/// Mints `count` node certificates (one CA load, one key and certificate each) and prepares what
/// each node sends, signed with its own key.
fn prepare(pki: &TestPki, count: usize) -> anyhow::Result<Vec<SimNode>> {
    let ca = CertificateAuthority::load(&pki.ca_dir)?;
    let keys = pki.dir.join("sim-nodes");
    std::fs::create_dir_all(&keys)?;
    let mut nodes = Vec::with_capacity(count);
    for n in 0..count {
        let siret = siret(n);
        let issued = ca.issue(&IssueRequest::new(PeerId::new(Role::Node, &siret)?, 30))?;
        // The record signer reads files, as a node's does.
        let (cert, key) = (keys.join(format!("{n}.pem")), keys.join(format!("{n}.key")));
        std::fs::write(&cert, &issued.cert_pem)?;
        std::fs::write(&key, &issued.key_pem)?;
        let signer = RecordSigner::load(&cert, &key)?;
        let structure = Structure {
            siret: siret.clone(),
            kind: StructureKind::Aci as i32,
            name: format!("SIAE {n}"),
            departement: DEPARTEMENTS[n % DEPARTEMENTS.len()].into(),
        };
        let epoch = (n as u128 + 1).to_be_bytes().to_vec();
        let epoch_created_at_ms = 1_700_000_000_000;
        let origin = Origin { structure: &structure, epoch: &epoch, epoch_created_at_ms };
        let mut changes = Vec::with_capacity(REPORTS_PER_NODE + NEEDS_PER_NODE);
        for month in 1..=REPORTS_PER_NODE as u8 {
            let period = Month { year: 2026, month }.to_string();
            let employees = 5 + (n as u32 + u32::from(month)) % 40;
            let report = IndicatorReport {
                siret: siret.clone(),
                fields: Some(IndicatorFields {
                    period: period.clone(),
                    etp_hundredths: u64::from(employees) * 60,
                    employees_in_insertion: employees,
                    hours_worked: u64::from(employees) * 80,
                    hires: (n as u32 + u32::from(month)) % 5,
                    exits: Some(Exits { total: 1, durable: 1, ..Default::default() }),
                }),
                version: 1,
                submitted_at_ms: 0,
            };
            let bytes = signed_bytes(origin, "indicators", &period, 1, Signed::Indicators(&report));
            changes.push(Change {
                dataset: "indicators".into(),
                key: period,
                version: 1,
                payload: Some(change::Payload::Indicators(report)),
                signature: signer.sign(&bytes)?,
                certificate_fingerprint: signer.fingerprint().to_vec(),
                ..Default::default()
            });
        }
        for i in 0..NEEDS_PER_NODE {
            // A UUIDv7-shaped id, unique per node and need.
            let need_id = format!("01900000-0000-7000-8000-{:08x}{:04x}", n, i);
            let need = SharedNeed {
                origin_siret: siret.clone(),
                need_id: need_id.clone(),
                origin_version: 1,
                rome_code: format!("K{:04}", 2000 + (n * NEEDS_PER_NODE + i) % 500),
                contract_type: ContractType::Cddi as i32,
                open_positions: 1 + (i as u32 % 3),
                hours_per_week: 24,
                departement: structure.departement.clone(),
                start_date: "2027-01-04".into(),
                end_date: Some("2027-06-30".into()),
                status: NeedStatus::Open as i32,
                updated_at_ms: 1_700_000_000_000,
            };
            let bytes = signed_bytes(origin, "needs", &need_id, 1, Signed::Need(&need));
            changes.push(Change {
                dataset: "needs".into(),
                key: need_id,
                version: 1,
                payload: Some(change::Payload::Need(need)),
                signature: signer.sign(&bytes)?,
                certificate_fingerprint: signer.fingerprint().to_vec(),
                ..Default::default()
            });
        }
        let head = changes.len() as u64;
        nodes.push(SimNode {
            identity: Identity::from_pem(issued.cert_pem, issued.key_pem),
            open: PushOpen {
                structure: Some(structure.clone()),
                epoch,
                datasets: vec!["needs".into(), "indicators".into()],
                digests: Vec::new(),
                head_seq: head,
                epoch_created_at_ms,
                certificates: vec![signer.certificate().to_vec()],
            },
            structure,
            batch: Batch { seq: head, changes, head_seq: head, certificates: Vec::new() },
        });
    }
    Ok(nodes)
}

/// The hub's resident set, current and peak (kB), from `/proc/PID/status`.
pub fn rss_kb(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Option<u64> {
        status.lines().find_map(|l| l.strip_prefix(name)?.trim().strip_suffix("kB")?.trim().parse().ok())
    };
    Ok((field("VmRSS:").context("VmRSS")?, field("VmHWM:").context("VmHWM")?))
}

/// What one node's storm did.
struct Session {
    handshake: Duration,
    ack: Duration,
    /// The open view stream, read by a task until the run ends.
    reader: tokio::task::JoinHandle<()>,
}

/// Shared counters of the view readers.
#[derive(Default)]
struct ViewCounters {
    needs: AtomicU64,
    complete: AtomicU64,
    open: AtomicU64,
    largest_needs: AtomicU64,
    largest_bytes: AtomicU64,
}

async fn one_node(
    node: SimNode,
    endpoint: String,
    ca: Certificate,
    expected_view: u64,
    view: Arc<ViewCounters>,
    stop: tokio::sync::watch::Receiver<bool>,
    subscribe: bool,
) -> anyhow::Result<Session> {
    let started = Instant::now();
    let tls = ClientTlsConfig::new().ca_certificate(ca).identity(node.identity).domain_name("localhost");
    let channel = Endpoint::from_shared(endpoint)?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(60))
        .connect()
        .await
        .context("connecting")?;
    let handshake = started.elapsed();
    let mut client = HubSyncClient::new(channel);
    client.hello(HelloRequest { structure: Some(node.structure) }).await.context("hello")?;

    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(PushMessage { kind: Some(push_message::Kind::Open(node.open)) }).await?;
    let mut replies = client.push(ReceiverStream::new(rx)).await.context("push")?.into_inner();
    let resend = match replies.message().await.context("push accepted")?.and_then(|r| r.kind) {
        Some(push_reply::Kind::Accepted(accepted)) => accepted.resend,
        other => bail!("expected accepted, got {other:?}"),
    };
    let seq = node.batch.seq;
    let sent = Instant::now();
    tx.send(PushMessage { kind: Some(push_message::Kind::Batch(node.batch)) }).await?;
    match replies.message().await.context("batch ack")?.and_then(|r| r.kind) {
        Some(push_reply::Kind::Ack(ack)) if ack.seq == seq => {}
        other => bail!("expected the batch's ack, got {other:?}"),
    }
    let ack = sent.elapsed();
    for dataset in resend {
        tx.send(PushMessage { kind: Some(push_message::Kind::SnapshotDone(SnapshotDone { dataset })) })
            .await?;
        match replies.message().await.context("snapshot ack")?.and_then(|r| r.kind) {
            Some(push_reply::Kind::Ack(_)) => {}
            other => bail!("expected a snapshot ack, got {other:?}"),
        }
    }
    drop(tx);
    while replies.message().await.context("push end")?.is_some() {}
    if !subscribe {
        return Ok(Session { handshake, ack, reader: tokio::spawn(async {}) });
    }

    let mut stream = client
        .subscribe(SubscribeRequest { hub_epoch: Vec::new(), after: 0 })
        .await
        .context("subscribe")?
        .into_inner();
    view.open.fetch_add(1, Ordering::Relaxed);
    let mut stop = stop;
    let reader = tokio::spawn(async move {
        let mut received = 0u64;
        loop {
            let batch = tokio::select! {
                batch = stream.message() => batch,
                _ = stop.wait_for(|s| *s) => break,
            };
            let Ok(Some(batch)) = batch else { break };
            let upserts = batch.upserts.len() as u64;
            let needs = upserts + batch.removals.len() as u64;
            view.largest_needs.fetch_max(needs, Ordering::Relaxed);
            view.largest_bytes.fetch_max(prost::Message::encoded_len(&batch) as u64, Ordering::Relaxed);
            view.needs.fetch_add(upserts, Ordering::Relaxed);
            let before = received;
            received += upserts;
            if before < expected_view && received >= expected_view {
                view.complete.fetch_add(1, Ordering::Relaxed);
            }
        }
        view.open.fetch_sub(1, Ordering::Relaxed);
        drop(client);
    });
    Ok(Session { handshake, ack, reader })
}

/// Starts the hub (the workspace's `passerelled`, as a child process, its data and PKI in `dir`)
/// and runs the storm. The hub's logs go to `dir/hub.log`.
pub async fn run(dir: &Path, options: &FanInOptions) -> anyhow::Result<FanInReport> {
    let pki = TestPki::new(dir)?;
    let config = pki.write_hub_config("coorace-pdl", "auto_accept = true", "")?;
    let nodes = {
        let (pki_dir, count) = (pki.dir.clone(), options.nodes);
        tokio::task::spawn_blocking(move || {
            let pki = TestPki { ca_dir: pki_dir.join("ca"), dir: pki_dir };
            prepare(&pki, count)
        })
        .await??
    };
    let binary = options.hub_binary.clone().unwrap_or_else(|| crate::bin("passerelled"));
    let mut hub = ChildDaemon::spawn_binary(&binary, &config, &[], "warn")?;
    // Drain its logs to a file, so a chatty hub never blocks on a full pipe.
    if let Some(mut stderr) = hub.child.stderr.take() {
        let mut log = std::fs::File::create(dir.join("hub.log"))?;
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut log));
    }
    let pid = hub.child.id();
    let port = hub.hub_addr.as_deref().and_then(|a| a.rsplit(':').next()).context("hub address")?.to_string();
    let endpoint = format!("https://localhost:{port}");
    let ca = Certificate::from_pem(std::fs::read(pki.ca_pem())?);
    let (hub_start_rss_kb, _) = rss_kb(pid)?;

    let total = nodes.len();
    let expected_view = ((total.saturating_sub(1)) * NEEDS_PER_NODE) as u64;
    let view = Arc::new(ViewCounters::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let gate = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    let subscribe = options.subscribe;
    for node in nodes {
        let (gate, endpoint, ca, view, stop) =
            (gate.clone(), endpoint.clone(), ca.clone(), view.clone(), stop_rx.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let done = one_node(node, endpoint, ca, expected_view, view, stop, subscribe).await;
            done.map(|session| (session, started.elapsed()))
        }));
    }
    let (mut handshakes, mut acks, mut readers, mut errors, mut first_errors) =
        (Vec::new(), Vec::new(), Vec::new(), 0, Vec::new());
    let mut last_ack = Duration::ZERO;
    for task in tasks {
        match task.await.map_err(anyhow::Error::from).and_then(|r| r) {
            Ok((session, at)) => {
                handshakes.push(session.handshake);
                acks.push(session.ack);
                readers.push(session.reader);
                last_ack = last_ack.max(at);
            }
            Err(e) => {
                errors += 1;
                if first_errors.len() < 5 {
                    first_errors.push(format!("{e:#}"));
                }
            }
        }
    }
    let elapsed = last_ack;
    let acknowledged = acks.len();
    let (_, hub_peak_rss_kb) = rss_kb(pid)?;
    // Settle: every subscriber reads the whole view (every other node's needs).
    let settle_start = Instant::now();
    let mut view_complete = None;
    while subscribe && settle_start.elapsed() < options.settle {
        if view.complete.load(Ordering::Relaxed) as usize >= acknowledged {
            view_complete = Some(settle_start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let open_subscriptions = view.open.load(Ordering::Relaxed) as usize;
    let (hub_idle_rss_kb, peak_after) = rss_kb(pid)?;
    let node_idle_rss_kb = if subscribe {
        let whole = total * NEEDS_PER_NODE;
        Some(idle_node_rss(&pki, &binary, &endpoint, whole, options.settle).await?)
    } else {
        None
    };
    let _ = stop_tx.send(true);
    for reader in readers {
        let _ = reader.await;
    }
    hub.child.kill()?;
    hub.child.wait()?;
    drop(hub);
    let restarted = ChildDaemon::spawn_binary(&binary, &config, &[], "warn")?;
    let (hub_restarted_rss_kb, _) = rss_kb(restarted.child.id())?;
    drop(restarted);
    let handshakes_per_s = handshakes.len() as f64 / elapsed.as_secs_f64().max(1e-9);
    Ok(FanInReport {
        nodes: total,
        acknowledged,
        elapsed,
        handshakes,
        handshakes_per_s,
        ack_latencies: acks,
        hub_peak_rss_kb: hub_peak_rss_kb.max(peak_after),
        hub_idle_rss_kb,
        hub_start_rss_kb,
        open_subscriptions,
        node_idle_rss_kb,
        hub_restarted_rss_kb,
        view_needs: (view.needs.load(Ordering::Relaxed), expected_view * acknowledged as u64),
        view_complete,
        largest_view_message: (
            view.largest_needs.load(Ordering::Relaxed),
            view.largest_bytes.load(Ordering::Relaxed),
        ),
        errors,
        first_errors,
    })
}

/// Starts a real node (`binary`) of a new structure syncing with the hub at `endpoint`, waits
/// until it holds the `whole` view (polling its API), and returns its resident set then (kB)
/// and the needs it holds.
async fn idle_node_rss(
    pki: &TestPki,
    binary: &Path,
    endpoint: &str,
    whole: usize,
    within: Duration,
) -> anyhow::Result<(u64, usize)> {
    let config = pki.write_node_config(
        crate::SIRET,
        "49",
        &[("coorace-pdl", endpoint.to_string(), &["needs", "indicators"])],
    )?;
    let node = ChildDaemon::spawn_binary(binary, &config, &[], "warn")?;
    let mut client = passerelle_client::NodeClient::connect(&node.endpoint, None).await?;
    client.sync_now(true, Duration::from_secs(60)).await?;
    let deadline = Instant::now() + within;
    let mut held = 0;
    while Instant::now() < deadline {
        held = client.network_needs(None, None).await?.len();
        if held >= whole {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (rss, _) = rss_kb(node.child.id())?;
    Ok((rss, held))
}

/// The `p`-th percentile (0..=1) of `values` (zero if empty).
pub fn percentile(values: &[Duration], p: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}
