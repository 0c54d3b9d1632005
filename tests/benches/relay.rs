//! Relay throughput: a network hub relaying its members' monthly indicator reports to a
//! consolidation hub, through the real path (mutual TLS, hello, push session, the upstream's
//! validation, last-writer-wins by origin, statistics, durable commit per batch, acks).
//!
//! Run: `cargo bench -p passerelle-tests --bench relay` (env `BENCH_STRUCTURES`, default 2000;
//! each structure has 12 monthly reports per phase). Prints a Markdown table for BENCHMARKS.md.
//!
//! - first contact: the network hub holds the backlog before it ever meets the consolidation
//!   hub, and relays everything (its full-resend path);
//! - catch-up: the network hub is stopped, a second year of reports arrives at it, and on restart
//!   it relays them from its change feed (its steady-state path: one feed entry per member batch).
//!
//! Both are timed from the network hub's start until its relay metrics show every record
//! acknowledged by the consolidation hub and no feed entry pending.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use passerelle_client::TlsFiles;
use passerelle_daemon::hub::Hub;
use passerelle_daemon::tls::Peer;
use passerelle_daemon::tls::signing::RecordSigner;
use passerelle_proto::date::Month;
use passerelle_proto::identity::{PeerId, Role};
use passerelle_proto::signed::{Origin, Signed, signed_bytes};
use passerelle_proto::v1::{
    Batch, Change, Exits, IndicatorFields, IndicatorReport, PushOpen, Structure, StructureKind, change,
};
use passerelle_tests::InProcessDaemon;
use passerelle_tests::pki::TestPki;

const DEPARTEMENTS: [&str; 5] = ["44", "49", "53", "72", "85"];
const METRICS: &str = "\n[metrics]\nlisten = \"127.0.0.1:0\"\n";
const LABEL: &str = "{upstream=\"dreets-52\"}";

/// A valid SIRET (Luhn) for structure `n`.
fn siret(n: usize) -> String {
    let base = format!("{:013}", 1_000_000_000_000u64 + n as u64 * 7919);
    (0..10)
        .map(|d| format!("{base}{d}"))
        .find(|s| passerelle_proto::validate::siret("siret", s).is_ok())
        .unwrap_or_default()
}

/// Writes 12 monthly reports of `year` per structure (one per node certificate of `nodes`) into
/// the (stopped) hub whose config is at `config`, through the hub's own ingest path: one push
/// session and one batch per structure, each report signed by its node as a node signs it.
fn ingest(config: &Path, nodes: &[TlsFiles], year: i32) -> anyhow::Result<()> {
    let config = passerelle_daemon::Config::load(config)?;
    let settings = config.hub().cloned().context("hub config")?;
    let hub = Hub::open(&config.data_dir, settings, Default::default())?;
    for (n, files) in nodes.iter().enumerate() {
        let siret = siret(n);
        let signer = RecordSigner::load(&files.cert, &files.key)?;
        let structure = Structure {
            siret: siret.clone(),
            kind: StructureKind::Aci as i32,
            name: format!("SIAE {n}"),
            departement: DEPARTEMENTS[n % DEPARTEMENTS.len()].into(),
        };
        let peer = Peer {
            id: PeerId { role: Role::Node, id: siret.clone() },
            serial: None,
            network: Some("coorace".into()),
        };
        let epoch = (n as u128 + 1).to_be_bytes().to_vec();
        let head = u64::from((year - 2025) as u32 * 12);
        let open = PushOpen {
            structure: Some(structure.clone()),
            epoch: epoch.clone(),
            datasets: vec!["indicators".into()],
            digests: Vec::new(),
            head_seq: head,
            epoch_created_at_ms: 1,
            certificates: vec![signer.certificate().to_vec()],
        };
        let (session, _) = hub.open_push(&peer, open)?;
        let changes = (1..=12)
            .map(|month: u8| {
                let period = Month { year, month }.to_string();
                let month = u32::from(month);
                let employees = 5 + (n as u32 + month) % 40;
                let report = IndicatorReport {
                    siret: siret.clone(),
                    fields: Some(IndicatorFields {
                        period: period.clone(),
                        etp_hundredths: u64::from(employees) * 60,
                        employees_in_insertion: employees,
                        hours_worked: u64::from(employees) * 80,
                        hires: (n as u32 + month) % 5,
                        exits: Some(Exits { total: 1, durable: 1, ..Default::default() }),
                    }),
                    version: 1,
                    submitted_at_ms: 0,
                };
                let origin = Origin { structure: &structure, epoch: &epoch, epoch_created_at_ms: 1 };
                let bytes = signed_bytes(origin, "indicators", &period, 1, Signed::Indicators(&report));
                Ok(Change {
                    dataset: "indicators".into(),
                    key: period,
                    version: 1,
                    payload: Some(change::Payload::Indicators(report)),
                    signature: signer.sign(&bytes)?,
                    certificate_fingerprint: signer.fingerprint().to_vec(),
                    ..Default::default()
                })
            })
            .collect::<anyhow::Result<_>>()?;
        hub.apply_batch(&session, Batch { seq: head, changes, head_seq: head, ..Default::default() })?;
    }
    Ok(())
}

/// `GET /metrics` over plain HTTP/1.1.
fn scrape(addr: SocketAddr) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

fn value(page: &str, name: &str) -> Option<f64> {
    page.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(LABEL)?.strip_prefix(' ')?.parse().ok())
}

/// Starts the network hub and times it until `records` relayed records are acknowledged.
async fn relay(config: &Path, records: u64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let hub = InProcessDaemon::start_config(config).await?;
    let addr = hub.metrics_addr.context("metrics listener")?;
    let deadline = started + Duration::from_secs(600);
    loop {
        let page = tokio::task::spawn_blocking(move || scrape(addr)).await??;
        let acked = value(&page, "passerelle_relay_records_acked_total").unwrap_or_default();
        let pending = value(&page, "passerelle_relay_pending_feed_entries");
        if acked >= records as f64 && pending == Some(0.0) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the relay never caught up: {acked} of {records}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    hub.stop().await?;
    Ok(elapsed)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let structures: usize =
        std::env::var("BENCH_STRUCTURES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let records = structures as u64 * 12;
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let dreets =
        InProcessDaemon::start_config(&pki.write_hub_config("dreets-52", "auto_accept = true", "")?).await?;
    let tail = pki.upstream_section("dreets-52", &dreets.hub_endpoint()) + METRICS;
    let coorace = pki.write_hub_config("coorace-pdl", "auto_accept = true", &tail)?;
    let nodes: Vec<TlsFiles> =
        (0..structures).map(|n| pki.issue(Role::Node, &siret(n))).collect::<anyhow::Result<_>>()?;
    let nodes = std::sync::Arc::new(nodes);

    let setup = {
        let (coorace, nodes) = (coorace.clone(), nodes.clone());
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            ingest(&coorace, &nodes, 2026).map(|()| started.elapsed())
        })
    };
    let direct_first = setup.await??;
    let first = relay(&coorace, records).await?;

    let setup = {
        let coorace = coorace.clone();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            ingest(&coorace, &nodes, 2027).map(|()| started.elapsed())
        })
    };
    let direct_catch_up = setup.await??;
    let catch_up = relay(&coorace, records).await?;
    dreets.stop().await?;

    let rate = |d: Duration| records as f64 / d.as_secs_f64();
    println!("| phase | records | time | records/s |");
    println!("|---|---|---|---|");
    println!(
        "| first contact (everything) | {records} | {:.2} s | {:.0} |",
        first.as_secs_f64(),
        rate(first)
    );
    println!(
        "| catch-up from the change feed | {records} | {:.2} s | {:.0} |",
        catch_up.as_secs_f64(),
        rate(catch_up)
    );
    println!(
        "| direct path, same run: the network hub's own ingest of the first year (one push session and one durable batch per structure, signatures verified) | {records} | {:.2} s | {:.0} |",
        direct_first.as_secs_f64(),
        rate(direct_first)
    );
    println!(
        "| direct path, second year | {records} | {:.2} s | {:.0} |",
        direct_catch_up.as_secs_f64(),
        rate(direct_catch_up)
    );
    Ok(())
}
