//! Hub fan-in: `BENCH_NODES` member nodes (default 4,000, about every SIAE in France) meet one
//! hub at once. The hub is a separate `passerelled` process (build it first:
//! `cargo build --release -p passerelle-daemon`); this process simulates the nodes, each with its
//! own certificate: mutual-TLS handshake, `Hello`, a push of 12 monthly reports and 3 needs
//! (signed), then its view `Subscribe` held open. See `passerelle_tests::fanin`.
//!
//! Run: `cargo build --release -p passerelle-daemon && cargo bench -p passerelle-tests --bench fanin`
//! (env `BENCH_NODES`, default 4000; `BENCH_CONCURRENCY`, nodes between handshake and
//! acknowledgement at once, default 256; `BENCH_SETTLE_SECS`, how long to wait for every view
//! to be delivered before reading the idle RSS, default 120; `BENCH_HUB_BIN`, another
//! `passerelled` to run as the hub, to compare two builds in one session; `BENCH_SUBSCRIBE=0`:
//! nodes hang up once acknowledged, to measure ingest without the view).
//!
//! The last line printed is exactly
//! `fan-in: N nodes acknowledged in X s, hub peak RSS Y MB, errors E`.

use std::time::Duration;

use passerelle_tests::fanin::{self, FanInOptions, percentile};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    passerelle_daemon::raise_open_file_limit();
    let options = FanInOptions {
        nodes: env("BENCH_NODES", 4000),
        concurrency: env("BENCH_CONCURRENCY", 256),
        settle: Duration::from_secs(env("BENCH_SETTLE_SECS", 120) as u64),
        hub_binary: std::env::var_os("BENCH_HUB_BIN").map(Into::into),
        subscribe: env("BENCH_SUBSCRIBE", 1) != 0,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let dir = tempfile::tempdir()?;
    let report = runtime.block_on(fanin::run(dir.path(), &options))?;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mb = |kb: u64| kb as f64 / 1024.0;
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| nodes (at most {} between handshake and ack at once) | {} |",
        options.concurrency, report.nodes
    );
    println!("| all acknowledged after | {:.2} s |", report.elapsed.as_secs_f64());
    println!(
        "| handshakes/s (TCP + TLS 1.3 mutual + HTTP/2, over the storm) | {:.0} |",
        report.handshakes_per_s
    );
    println!(
        "| handshake p50 / p99 | {:.1} ms / {:.1} ms |",
        ms(percentile(&report.handshakes, 0.5)),
        ms(percentile(&report.handshakes, 0.99))
    );
    println!(
        "| ack latency (batch sent → durable ack) p50 / p99 | {:.1} ms / {:.1} ms |",
        ms(percentile(&report.ack_latencies, 0.5)),
        ms(percentile(&report.ack_latencies, 0.99))
    );
    println!(
        "| view: needs delivered to subscribers / the whole view | {} / {} ({}) |",
        report.view_needs.0,
        report.view_needs.1,
        match report.view_complete {
            Some(d) => format!("complete {:.1} s after the last ack", d.as_secs_f64()),
            None => format!("not complete within {} s", options.settle.as_secs()),
        }
    );
    println!(
        "| largest view message: needs / encoded bytes | {} / {} |",
        report.largest_view_message.0, report.largest_view_message.1
    );
    println!("| hub RSS at start | {:.1} MB |", mb(report.hub_start_rss_kb));
    println!("| hub peak RSS (VmHWM) | {:.1} MB |", mb(report.hub_peak_rss_kb));
    println!(
        "| hub RSS, {} subscriptions open and idle | {:.1} MB |",
        report.open_subscriptions,
        mb(report.hub_idle_rss_kb)
    );
    if let Some((rss, held)) = report.node_idle_rss_kb {
        println!(
            "| a real node joining afterwards, idle, holding the view of {held} needs: RSS | {:.1} MB |",
            mb(rss)
        );
    }
    println!(
        "| hub restarted on its store ({} members), idle: RSS | {:.1} MB |",
        report.acknowledged,
        mb(report.hub_restarted_rss_kb)
    );
    println!("| errors | {} |", report.errors);
    for error in &report.first_errors {
        println!("error: {error}");
    }
    println!(
        "fan-in: {} nodes acknowledged in {:.1} s, hub peak RSS {:.0} MB, errors {}",
        report.acknowledged,
        report.elapsed.as_secs_f64(),
        mb(report.hub_peak_rss_kb),
        report.errors
    );
    Ok(())
}
