//! Prometheus metrics through the real path: a node and a hub with `[metrics] listen`, scraped
//! over HTTP while they sync; the figures must match what happened.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use passerelle_client::NodeClient;
use passerelle_tests::fixtures::need;
use passerelle_tests::pki::{SIRETS, TestPki};
use passerelle_tests::{InProcessDaemon, free_port};

const METRICS: &str = "\n[metrics]\nlisten = \"127.0.0.1:0\"\n";

/// `GET path` over plain HTTP/1.1: (status, body).
fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("status line")?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// The value of the sample `name{labels}` exactly as written on the page.
fn value(page: &str, sample: &str) -> Option<f64> {
    page.lines().find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

fn scrape(addr: Option<SocketAddr>) -> anyhow::Result<String> {
    let (status, body) = get(addr.context("no metrics listener")?, "/metrics")?;
    anyhow::ensure!(status == 200, "status {status}: {body}");
    Ok(body)
}

#[tokio::test(flavor = "multi_thread")]
async fn node_and_hub_metrics_follow_sync_and_calls() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub_port = free_port()?;
    let hub_config = pki.write_hub_config_on("coorace-pdl", hub_port, "auto_accept = true", METRICS)?;
    let hub = InProcessDaemon::start_config(&hub_config).await?;
    let node_config =
        pki.write_node_config(SIRETS[0], "49", &[("coorace-pdl", hub.hub_endpoint(), &["needs"])])?;
    std::fs::write(&node_config, std::fs::read_to_string(&node_config)? + METRICS)?;
    let node = InProcessDaemon::start_config(&node_config).await?;
    let mut client = NodeClient::connect(&node.endpoint, None).await?;
    for i in 0..5 {
        client.create_need(need(i)).await?;
    }
    let mut bad = need(9);
    bad.rome_code = "K22A4".into();
    // Sent around the client's own validation, so the node refuses it.
    let refused = passerelle_proto::v1::structure_service_client::StructureServiceClient::connect(
        node.endpoint.clone(),
    )
    .await?
    .create_need(passerelle_proto::v1::CreateNeedRequest { fields: Some(bad) })
    .await;
    assert_eq!(refused.map_err(|s| s.code()).err(), Some(tonic::Code::InvalidArgument));
    client.sync_now(true, Duration::from_secs(30)).await?;

    let page = scrape(node.metrics_addr)?;
    let hub_label = "{hub=\"coorace-pdl\"}";
    assert_eq!(value(&page, &format!("passerelle_sync_pending_changes{hub_label}")), Some(0.0), "{page}");
    assert_eq!(value(&page, &format!("passerelle_sync_lag_seconds{hub_label}")), Some(0.0));
    assert_eq!(value(&page, &format!("passerelle_sync_connected{hub_label}")), Some(1.0));
    // A first session may send a record twice (in the initial full resend of a newly shared
    // dataset, and again from the outbox): every record sent was acknowledged, none is missing.
    let records_sent =
        value(&page, &format!("passerelle_sync_records_sent_total{hub_label}")).unwrap_or_default();
    let records_acked =
        value(&page, &format!("passerelle_sync_records_acked_total{hub_label}")).unwrap_or_default();
    assert!(
        records_acked >= 5.0 && records_acked == records_sent,
        "records sent {records_sent}, acked {records_acked}"
    );
    let sent = value(&page, &format!("passerelle_sync_batches_sent_total{hub_label}")).unwrap_or_default();
    let acked = value(&page, &format!("passerelle_sync_batches_acked_total{hub_label}")).unwrap_or_default();
    assert!(sent >= 1.0 && acked == sent, "batches sent {sent}, acked {acked}");
    assert_eq!(value(&page, "passerelle_records{dataset=\"needs\"}"), Some(5.0));
    assert_eq!(value(&page, "passerelle_outbox_head"), Some(5.0));
    let create = "method=\"passerelle.v1.StructureService/CreateNeed\"";
    assert_eq!(value(&page, &format!("passerelle_rpc_requests_total{{{create},code=\"OK\"}}")), Some(5.0));
    assert_eq!(
        value(&page, &format!("passerelle_rpc_requests_total{{{create},code=\"INVALID_ARGUMENT\"}}")),
        Some(1.0)
    );
    assert_eq!(
        value(&page, &format!("passerelle_rpc_duration_seconds_count{{{create},code=\"OK\"}}")),
        Some(5.0)
    );
    assert!(page.contains("# TYPE passerelle_rpc_duration_seconds histogram"));

    let hub_page = scrape(hub.metrics_addr)?;
    assert_eq!(
        value(&hub_page, "passerelle_hub_members{role=\"node\",state=\"accepted\"}"),
        Some(1.0),
        "{hub_page}"
    );
    let member = format!("{{member=\"{}\",role=\"node\"}}", SIRETS[0]);
    assert_eq!(value(&hub_page, &format!("passerelle_hub_member_records{member}")), Some(5.0));
    assert_eq!(value(&hub_page, &format!("passerelle_hub_member_pending_changes{member}")), Some(0.0));
    assert_eq!(value(&hub_page, &format!("passerelle_hub_digest_mismatches_total{member}")), Some(0.0));
    assert_eq!(value(&hub_page, "passerelle_records{dataset=\"needs\"}"), Some(5.0));
    // The push session is still open: it shows as in flight, and counts once it ends.
    assert_eq!(
        value(&hub_page, "passerelle_rpc_in_flight{method=\"passerelle.v1.HubSync/Push\"}"),
        Some(1.0),
        "{hub_page}"
    );
    let hello = "passerelle_rpc_requests_total{method=\"passerelle.v1.HubSync/Hello\",code=\"OK\"}";
    assert!(value(&hub_page, hello).unwrap_or_default() >= 1.0, "{hub_page}");
    assert_eq!(get(hub.metrics_addr.context("hub metrics")?, "/")?.0, 404);

    // The hub goes away: new changes pile up and their wait shows as lag.
    hub.stop().await?;
    for i in 5..8 {
        client.create_need(need(i)).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page = scrape(node.metrics_addr)?;
        let pending = value(&page, &format!("passerelle_sync_pending_changes{hub_label}"));
        let lag = value(&page, &format!("passerelle_sync_lag_seconds{hub_label}")).unwrap_or_default();
        if pending == Some(3.0) && lag > 0.0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("pending {pending:?}, lag {lag}: {page}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // It comes back: the backlog drains and the lag returns to 0.
    let hub = InProcessDaemon::start_config(&hub_config).await?;
    client.sync_now(true, Duration::from_secs(30)).await?;
    let page = scrape(node.metrics_addr)?;
    assert_eq!(value(&page, &format!("passerelle_sync_pending_changes{hub_label}")), Some(0.0));
    assert_eq!(value(&page, &format!("passerelle_sync_lag_seconds{hub_label}")), Some(0.0));
    let acked_now =
        value(&page, &format!("passerelle_sync_records_acked_total{hub_label}")).unwrap_or_default();
    assert!(acked_now >= records_acked + 3.0, "the 3 new needs were acknowledged: {acked_now}");
    // A scraper's kept-alive connection does not hold the shutdown open.
    let mut kept = TcpStream::connect(node.metrics_addr.context("node metrics")?)?;
    write!(kept, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
    let mut first = [0u8; 12];
    kept.read_exact(&mut first)?;
    assert_eq!(&first, b"HTTP/1.1 200");
    let stopping = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), node.stop()).await??;
    assert!(stopping.elapsed() < Duration::from_secs(5));
    hub.stop().await
}

/// A network hub's relay to its consolidation hub shows in its metrics.
#[tokio::test(flavor = "multi_thread")]
async fn a_network_hub_reports_its_relay_to_the_consolidation_hub() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let dreets =
        InProcessDaemon::start_config(&pki.write_hub_config("dreets-52", "auto_accept = true", "")?).await?;
    let upstream = pki.upstream_section("dreets-52", &dreets.hub_endpoint()) + METRICS;
    let coorace = InProcessDaemon::start_config(&pki.write_hub_config(
        "coorace-pdl",
        "auto_accept = true",
        &upstream,
    )?)
    .await?;
    let node = InProcessDaemon::start_config(&pki.write_node_config(
        SIRETS[0],
        "49",
        &[("coorace-pdl", coorace.hub_endpoint(), &["indicators"])],
    )?)
    .await?;
    let mut client = NodeClient::connect(&node.endpoint, None).await?;
    for period in ["2026-07", "2026-08", "2026-09"] {
        client.submit_indicators(passerelle_tests::fixtures::report(period)).await?;
    }
    client.sync_now(true, Duration::from_secs(30)).await?;
    let label = "{upstream=\"dreets-52\"}";
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page = scrape(coorace.metrics_addr)?;
        let records =
            value(&page, &format!("passerelle_relay_records_acked_total{label}")).unwrap_or_default();
        let pending = value(&page, &format!("passerelle_relay_pending_feed_entries{label}"));
        if records >= 3.0 && pending == Some(0.0) {
            assert_eq!(value(&page, &format!("passerelle_relay_connected{label}")), Some(1.0), "{page}");
            assert!(
                value(&page, &format!("passerelle_relay_last_ack_timestamp_seconds{label}"))
                    .unwrap_or_default()
                    > 0.0
            );
            break;
        }
        if Instant::now() > deadline {
            bail!("the relay never caught up: records {records}, pending {pending:?}\n{page}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.stop().await?;
    coorace.stop().await?;
    dreets.stop().await
}

/// Reporting periods: a node's overdue months, a hub's reported and expected structures per
/// month, as `indicators missing` and `hub period list` say.
#[tokio::test(flavor = "multi_thread")]
async fn period_metrics_follow_reports() -> anyhow::Result<()> {
    use passerelle_proto::date::{Month, now_unix_ms};
    use passerelle_proto::periods::{due_instant_ms, month_at};
    use passerelle_tests::fixtures::report;

    const DEADLINE_DAY: u8 = 28;
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let periods = format!("{METRICS}\n[periods]\nclose = \"manual\"\ndeadline_day = {DEADLINE_DAY}\n");
    let hub = InProcessDaemon::start_config(&pki.write_hub_config(
        "coorace-pdl",
        "auto_accept = true",
        &periods,
    )?)
    .await?;
    let last = Month::from_ordinal(month_at(now_unix_ms()).ordinal() - 1);
    let gap = Month::from_ordinal(last.ordinal() - 1);
    let old = Month::from_ordinal(gap.ordinal() - 1);
    // The first node reports the old month only; the second the old month and last month.
    let mut nodes = Vec::new();
    for (siret, months) in [(SIRETS[0], &[old][..]), (SIRETS[1], &[old, last][..])] {
        let config =
            pki.write_node_config(siret, "49", &[("coorace-pdl", hub.hub_endpoint(), &["indicators"])])?;
        std::fs::write(&config, std::fs::read_to_string(&config)? + METRICS)?;
        let node = InProcessDaemon::start_config(&config).await?;
        let mut client = NodeClient::connect(&node.endpoint, None).await?;
        for month in months {
            client.submit_indicators(report(&month.to_string())).await?;
        }
        client.sync_now(true, Duration::from_secs(30)).await?;
        nodes.push(node);
    }

    // The gap is overdue for both (due 28 of last month); last month only for the first, and only
    // once its due date has passed.
    let last_overdue = now_unix_ms() > due_instant_ms(last, DEADLINE_DAY);
    let first = scrape(nodes[0].metrics_addr)?;
    let overdue = "passerelle_indicators_overdue_months";
    assert_eq!(value(&first, overdue), Some(1.0 + f64::from(u8::from(last_overdue))), "{first}");
    assert_eq!(value(&scrape(nodes[1].metrics_addr)?, overdue), Some(1.0));

    let page = scrape(hub.metrics_addr)?;
    let sample = |name: &str, month: Month| value(&page, &format!("{name}{{period=\"{month}\"}}"));
    assert_eq!(sample("passerelle_hub_period_reported", old), Some(2.0), "{page}");
    assert_eq!(sample("passerelle_hub_period_expected", old), Some(2.0), "{page}");
    assert_eq!(sample("passerelle_hub_period_reported", last), Some(1.0), "{page}");
    assert_eq!(sample("passerelle_hub_period_expected", last), Some(2.0), "{page}");
    // A month nobody reported is not seen by the hub (as in `hub period list`).
    assert_eq!(sample("passerelle_hub_period_expected", gap), None, "{page}");

    for node in nodes {
        node.stop().await?;
    }
    hub.stop().await
}
