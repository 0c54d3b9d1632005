//! The fan-in benchmark's smoke run (`benches/fanin.rs` at 4,000 nodes): the same code with a
//! few nodes, so the benchmark cannot break unnoticed. A real `passerelled` hub as a child
//! process; every simulated node handshakes with its own certificate, says hello, pushes its
//! signed batch and holds its view open.

use std::time::Duration;

use passerelle_daemon::hub::view::{FEED_PAGE, VIEW_PAGE};
use passerelle_tests::fanin::{self, FanInOptions, NEEDS_PER_NODE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_nodes_are_acknowledged_and_see_each_others_needs() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let nodes = 20;
    let options = FanInOptions {
        nodes,
        concurrency: 8,
        settle: Duration::from_secs(60),
        hub_binary: None,
        subscribe: true,
    };
    let report = fanin::run(dir.path(), &options).await?;
    assert_eq!(report.errors, 0, "{:?}", report.first_errors);
    assert_eq!(report.acknowledged, nodes);
    assert_eq!(report.ack_latencies.len(), nodes);
    // Every subscriber received every other node's needs, and not its own.
    let whole = (nodes * (nodes - 1) * NEEDS_PER_NODE) as u64;
    assert!(report.view_complete.is_some(), "view not delivered: {:?} of {whole}", report.view_needs);
    assert_eq!(report.view_needs.1, whole);
    assert!(report.view_needs.0 >= whole, "{:?}", report.view_needs);
    assert_eq!(report.open_subscriptions, nodes, "every view stream still open when measured");
    assert!(report.hub_peak_rss_kb >= report.hub_idle_rss_kb && report.hub_idle_rss_kb > 0);
    // View messages stay small: what the hub holds per subscriber is a message or two, so with
    // thousands subscribed their size is what bounds its memory. A feed page reads whole entries
    // (a node's batch: 3 needs here) until it reaches `FEED_PAGE`.
    let most = (VIEW_PAGE.max(FEED_PAGE) + NEEDS_PER_NODE - 1) as u64;
    let (needs, bytes) = report.largest_view_message;
    assert!(needs > 0 && needs <= most, "a view message of {needs} needs (at most {most})");
    assert!(bytes <= 8 * 1024, "a view message of {bytes} bytes (at most 8 KiB)");
    Ok(())
}
