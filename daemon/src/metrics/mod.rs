//! Prometheus metrics on an optional plain-HTTP listener (`[metrics] listen`): `GET /metrics`.
//!
//! Counters that only the running daemon can know (calls by method and code, batches and records
//! sent and acknowledged per hub) are kept in memory from start-up, as Prometheus expects of
//! counters. Everything else is read from the source of truth at scrape time — sync status,
//! members, record counts — so a gauge can never drift from what `passerelle sync status` or
//! `passerelle hub members` say. Scrapes that read many records are cached briefly.
//!
//! Metrics never carry personal data: labels are hub ids, SIRETs, dataset and method names.

mod exposition;
mod http;
mod rpc;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) use http::serve;
pub(crate) use rpc::{RpcMetrics, RpcMetricsLayer};

use exposition::{Kind, Page};
use passerelle_proto::v1::MemberState;

use crate::error::Result;
use crate::hub::Hub;
use crate::node::Node;
use crate::node::sync_engine::SyncEngine;

/// How long the hub's per-dataset record counts (a full read of its records) are reused.
const RECORD_COUNT_TTL: Duration = Duration::from_secs(30);

/// What a scrape reads.
#[derive(Debug, Clone)]
pub(crate) struct Scrape {
    rpc: Arc<RpcMetrics>,
    source: Source,
    started_at: f64,
}

#[derive(Debug, Clone)]
enum Source {
    Node(Arc<Node>, Arc<SyncEngine>),
    Hub(Arc<Hub>, Arc<RecordCountCache>),
}

/// The hub's last per-dataset record counts and when they were read.
type RecordCountCache = Mutex<Option<(Instant, Vec<(String, u64)>)>>;

/// A metric family of one value per hub link: name, help, how to read it.
type LinkFamily<T> = (&'static str, &'static str, fn(&crate::node::sync_engine::LinkMetrics) -> T);

/// A metric family of one value per item (a member, a relay): name, kind, help, how to read it.
type Family<T> = (&'static str, Kind, &'static str, fn(&T) -> f64);

impl Scrape {
    /// A node's metrics.
    pub(crate) fn node(rpc: Arc<RpcMetrics>, node: Arc<Node>, engine: Arc<SyncEngine>) -> Self {
        Self { rpc, source: Source::Node(node, engine), started_at: now_seconds() }
    }

    /// A hub's metrics.
    pub(crate) fn hub(rpc: Arc<RpcMetrics>, hub: Arc<Hub>) -> Self {
        Self { rpc, source: Source::Hub(hub, Arc::default()), started_at: now_seconds() }
    }

    /// The metrics page (reads the store: run it off the async workers).
    pub(crate) fn render(&self) -> Result<String> {
        let mut page = Page::default();
        let version = env!("CARGO_PKG_VERSION");
        page.family("passerelle_build_info", Kind::Gauge, "The daemon's version and role (always 1)");
        match &self.source {
            Source::Node(node, engine) => {
                page.sample(
                    "passerelle_build_info",
                    &[("version", version), ("role", "node"), ("id", &node.structure().siret)],
                    1.0,
                );
                write_node(&mut page, node, engine)?;
            }
            Source::Hub(hub, cache) => {
                page.sample(
                    "passerelle_build_info",
                    &[("version", version), ("role", "hub"), ("id", &hub.config().id)],
                    1.0,
                );
                write_hub(&mut page, hub, cache)?;
            }
        }
        page.single(
            "passerelle_start_time_seconds",
            Kind::Gauge,
            "When the daemon started, seconds since the Unix epoch",
            self.started_at,
        );
        self.rpc.write(&mut page);
        Ok(page.finish())
    }
}

fn now_seconds() -> f64 {
    now_ms() as f64 / 1000.0
}

fn now_ms() -> i64 {
    passerelle_proto::date::now_unix_ms()
}

fn write_node(page: &mut Page, node: &Node, engine: &SyncEngine) -> Result<()> {
    let links = engine.metrics()?;
    let gauges: [LinkFamily<f64>; 4] = [
        ("passerelle_sync_connected", "Whether a push session with the hub is open (1) or not (0)", |l| {
            f64::from(u8::from(l.connected))
        }),
        (
            "passerelle_sync_pending_changes",
            "Changes committed on this node that the hub has not acknowledged",
            |l| l.pending as f64,
        ),
        (
            "passerelle_sync_lag_seconds",
            "How long the oldest change the hub has not acknowledged has waited (0 when caught up)",
            |l| l.lag_seconds,
        ),
        (
            "passerelle_sync_last_ack_timestamp_seconds",
            "When the hub last acknowledged a batch (0: never)",
            |l| l.last_ack_at_ms as f64 / 1000.0,
        ),
    ];
    for (name, help, value) in gauges {
        page.family(name, Kind::Gauge, help);
        for link in &links {
            page.sample(name, &[("hub", &link.hub)], value(link));
        }
    }
    let counters: [LinkFamily<u64>; 5] = [
        ("passerelle_sync_batches_sent_total", "Batches sent to the hub since start", |l| l.batches_sent),
        ("passerelle_sync_batches_acked_total", "Batches the hub acknowledged since start", |l| {
            l.batches_acked
        }),
        ("passerelle_sync_records_sent_total", "Changes sent to the hub since start", |l| l.records_sent),
        ("passerelle_sync_records_acked_total", "Changes the hub acknowledged since start", |l| {
            l.records_acked
        }),
        (
            "passerelle_sync_digest_mismatches_total",
            "Datasets the hub asked to be resent in full at a session start (its digest differed or it lost its copy)",
            |l| l.resends_requested,
        ),
    ];
    for (name, help, value) in counters {
        page.family(name, Kind::Counter, help);
        for link in &links {
            page.sample(name, &[("hub", &link.hub)], value(link) as f64);
        }
    }
    page.single(
        "passerelle_outbox_head",
        Kind::Gauge,
        "Sequence number of the last committed change",
        node.head_seq() as f64,
    );
    page.family("passerelle_records", Kind::Gauge, "Records held by this node, by dataset");
    for (dataset, count) in node.record_counts()? {
        page.sample("passerelle_records", &[("dataset", dataset)], count as f64);
    }
    page.single(
        "passerelle_indicators_overdue_months",
        Kind::Gauge,
        "Months not reported whose due date has passed at one hub at least (passerelle indicators missing)",
        f64::from(node.overdue_months(&engine.indicator_hubs(), now_ms())?),
    );
    Ok(())
}

fn write_hub(page: &mut Page, hub: &Hub, cache: &RecordCountCache) -> Result<()> {
    let members = hub.list_members()?;
    page.family("passerelle_hub_members", Kind::Gauge, "Members of this hub, by role and state");
    for role in ["node", "hub"] {
        for (state, label) in [(MemberState::Accepted, "accepted"), (MemberState::Pending, "pending")] {
            let count = members.iter().filter(|m| m.role == role && m.state == state as i32).count();
            page.sample("passerelle_hub_members", &[("role", role), ("state", label)], count as f64);
        }
    }
    let per_member: [Family<passerelle_proto::v1::Member>; 4] = [
        ("passerelle_hub_member_records", Kind::Gauge, "Live records held for a member", |m| {
            m.records_held as f64
        }),
        (
            "passerelle_hub_member_pending_changes",
            Kind::Gauge,
            "Changes a member announced (its head) beyond what it pushed and the hub acknowledged",
            |m| m.head_seq.saturating_sub(m.last_acked_seq) as f64,
        ),
        (
            "passerelle_hub_member_last_seen_timestamp_seconds",
            Kind::Gauge,
            "When the member last connected",
            |m| m.last_seen_at_ms as f64 / 1000.0,
        ),
        (
            "passerelle_hub_digest_mismatches_total",
            Kind::Counter,
            "Session starts where the member's digest differed from the hub's copy (a full resend followed)",
            |m| m.digest_mismatches as f64,
        ),
    ];
    for (name, kind, help, value) in per_member {
        page.family(name, kind, help);
        for m in members.iter().filter(|m| m.state == MemberState::Accepted as i32) {
            page.sample(name, &[("member", &m.id), ("role", &m.role)], value(m));
        }
    }
    let relays = hub.relay_statuses()?;
    let relay_families: [Family<crate::hub::relay::RelayStatus>; 5] = [
        (
            "passerelle_relay_connected",
            Kind::Gauge,
            "Whether the relay session to the upstream hub is open",
            |r| f64::from(u8::from(r.connected)),
        ),
        (
            "passerelle_relay_pending_feed_entries",
            Kind::Gauge,
            "Batches received from members that are not yet relayed to the upstream hub",
            |r| r.pending_feed_entries as f64,
        ),
        (
            "passerelle_relay_batches_acked_total",
            Kind::Counter,
            "Relayed batches the upstream acknowledged",
            |r| r.batches_acked as f64,
        ),
        (
            "passerelle_relay_records_acked_total",
            Kind::Counter,
            "Relayed changes the upstream acknowledged",
            |r| r.records_acked as f64,
        ),
        (
            "passerelle_relay_last_ack_timestamp_seconds",
            Kind::Gauge,
            "When the upstream last acknowledged",
            |r| r.last_ack_at_ms as f64 / 1000.0,
        ),
    ];
    for (name, kind, help, value) in relay_families {
        page.family(name, kind, help);
        for (upstream, status) in &relays {
            page.sample(name, &[("upstream", upstream)], value(status));
        }
    }
    let counts = {
        let cached =
            cache.lock().ok().and_then(|c| c.clone()).filter(|(at, _)| at.elapsed() < RECORD_COUNT_TTL);
        match cached {
            Some((_, counts)) => counts,
            None => {
                let counts: Vec<(String, u64)> = hub.records_by_dataset()?.into_iter().collect();
                if let Ok(mut c) = cache.lock() {
                    *c = Some((Instant::now(), counts.clone()));
                }
                counts
            }
        }
    };
    page.family(
        "passerelle_records",
        Kind::Gauge,
        "Live records held by this hub, by dataset (refreshed every 30 s at most)",
    );
    for (dataset, count) in counts {
        page.sample("passerelle_records", &[("dataset", &dataset)], count as f64);
    }
    let periods = hub.list_periods()?;
    let period_families: [Family<passerelle_proto::v1::Period>; 2] = [
        (
            "passerelle_hub_period_reported",
            Kind::Gauge,
            "Structures that reported the month, among those expected (as in hub period list)",
            |p| f64::from(p.reported),
        ),
        (
            "passerelle_hub_period_expected",
            Kind::Gauge,
            "Structures expected to report the month: first report at or before it (as in hub period list)",
            |p| f64::from(p.expected),
        ),
    ];
    for (name, kind, help, value) in period_families {
        page.family(name, kind, help);
        for p in &periods {
            page.sample(name, &[("period", &p.period)], value(p));
        }
    }
    Ok(())
}
