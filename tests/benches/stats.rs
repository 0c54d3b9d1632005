//! Statistics: ingest all SIAE in France for five years, close the months of a quarter (the
//! audit included), then read the closed quarter × département × kind table; compared in the
//! same run with DuckDB running the equivalent GROUP BY on the same rows. Then a late report
//! revises a month (and its quarter), and both revisions of the quarter are read.
//!
//! Run: `cargo bench -p passerelle-tests --bench stats` (env `BENCH_STRUCTURES`, default 4000;
//! `BENCH_MONTHS`, default 60; `BENCH_QUERIES`, default 100). Installs DuckDB from PyPI
//! (`python3 -m pip install duckdb`) if it is missing. Prints a Markdown table for BENCHMARKS.md.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use passerelle_daemon::config::HubConfig;
use passerelle_daemon::hub::Hub;
use passerelle_daemon::tls::Peer;
use passerelle_daemon::tls::ServerTlsFiles;
use passerelle_proto::date::Month;
use passerelle_proto::identity::{PeerId, Role};
use passerelle_proto::v1::{
    Batch, Change, Exits, GetTableRequest, IndicatorFields, IndicatorReport, PushOpen, Structure, change,
};

const DEPARTEMENTS: [&str; 12] = ["44", "49", "53", "72", "85", "31", "34", "13", "69", "59", "75", "33"];
const KINDS: [&str; 5] = ["ai", "aci", "ei", "etti", "eiti"];

/// A valid SIRET (Luhn) for structure `n`.
fn siret(n: usize) -> String {
    let base = format!("{:013}", 1_000_000_000_000u64 + n as u64 * 7919);
    (0..10)
        .map(|d| format!("{base}{d}"))
        .find(|s| passerelle_proto::validate::siret("siret", s).is_ok())
        .unwrap_or_default()
}

fn percentile(values: &mut [Duration], p: f64) -> Duration {
    values.sort();
    values[((values.len() as f64 - 1.0) * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let structures: usize =
        std::env::var("BENCH_STRUCTURES").ok().and_then(|v| v.parse().ok()).unwrap_or(4000);
    let months: u32 = std::env::var("BENCH_MONTHS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let queries: usize = std::env::var("BENCH_QUERIES").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let dir = tempfile::tempdir()?;
    let config = HubConfig {
        id: "dreets-52".into(),
        network: "consolidation".into(),
        region: "52".into(),
        listen: "127.0.0.1:0".parse()?,
        auto_accept: true,
        denied_serials: Vec::new(),
        k_anonymity: 5,
        min_persons: 11,
        tombstone_retention: Duration::from_secs(30 * 24 * 3600),
        introduction_ttl: Duration::from_secs(30 * 24 * 3600),
        introduction_retention: Duration::from_secs(30 * 24 * 3600),
        introductions_per_day: 20,
        upstreams: Vec::new(),
        periods: Default::default(),
        protection_percent: passerelle_daemon::config::DEFAULT_PROTECTION_PERCENT,
        tls: ServerTlsFiles { cert: PathBuf::new(), key: PathBuf::new(), trust: Vec::new() },
    };
    let hub = Hub::open(&dir.path().join("hub"), config, Default::default())?;
    let csv_path = dir.path().join("reports.csv");
    let mut csv = std::io::BufWriter::new(std::fs::File::create(&csv_path)?);
    writeln!(
        csv,
        "siret,period,departement,kind,etp_hundredths,employees,hours,hires,exits_total,exits_durable,exits_transition,exits_positive,exits_other"
    )?;
    let first = Month { year: 2027 - (months.div_ceil(12)) as i32, month: 1 };

    // Ingest through the hub's real path: one push session per structure, its reports in one
    // durable batch.
    let started = Instant::now();
    for n in 0..structures {
        let siret = siret(n);
        let (dep, kind) = (DEPARTEMENTS[n % DEPARTEMENTS.len()], KINDS[(n / 3) % KINDS.len()]);
        let structure = Structure {
            siret: siret.clone(),
            kind: passerelle_proto::codes::Code::from_slug(kind)
                .map(|k: passerelle_proto::v1::StructureKind| k as i32)
                .unwrap_or(1),
            name: format!("SIAE {n}"),
            departement: dep.into(),
        };
        let peer = Peer {
            id: PeerId { role: Role::Node, id: siret.clone() },
            serial: None,
            network: Some("coorace".into()),
        };
        let open = PushOpen {
            structure: Some(structure),
            epoch: uuid_bytes(n),
            datasets: vec!["indicators".into()],
            digests: Vec::new(),
            head_seq: u64::from(months),
            epoch_created_at_ms: 0,
            ..Default::default()
        };
        let (session, _) = hub.open_push(&peer, open)?;
        let mut changes = Vec::with_capacity(months as usize);
        for m in 0..months {
            let period = Month::from_ordinal(first.ordinal() + m).to_string();
            let employees = 5 + (n as u32 * 7 + m) % 40;
            let total = (n as u32 + m) % 6;
            let durable = total / 3;
            let transition = total / 3;
            let fields = IndicatorFields {
                period: period.clone(),
                etp_hundredths: u64::from(employees) * 60,
                employees_in_insertion: employees,
                hours_worked: u64::from(employees) * 80,
                hires: (n as u32 + 2 * m) % 5,
                exits: Some(Exits {
                    total,
                    durable,
                    transition,
                    positive: 0,
                    other: total - durable - transition,
                }),
            };
            writeln!(
                csv,
                "{siret},{period},{dep},{kind},{},{employees},{},{},{total},{durable},{transition},0,{}",
                fields.etp_hundredths,
                fields.hours_worked,
                fields.hires,
                total - durable - transition
            )?;
            let report = IndicatorReport {
                siret: siret.clone(),
                fields: Some(fields),
                version: 1,
                submitted_at_ms: 0,
            };
            changes.push(Change {
                dataset: "indicators".into(),
                key: period,
                version: 1,
                payload: Some(change::Payload::Indicators(report)),
                ..Default::default()
            });
        }
        hub.apply_batch(
            &session,
            Batch { seq: u64::from(months), changes, head_seq: u64::from(months), ..Default::default() },
        )?;
    }
    let ingest = started.elapsed();
    csv.flush()?;
    drop(csv);

    let request = GetTableRequest {
        table: "indicators".into(),
        by: vec!["departement".into(), "kind".into()],
        period: "2026-Q3".into(),
        ..Default::default()
    };
    // Closing the quarter's months: each freezes every dimension set of its tables, settled and
    // audited (the last one also the quarter's, audited with its months).
    let mut closings = Vec::new();
    for month in ["2026-07", "2026-08", "2026-09"] {
        let t0 = Instant::now();
        hub.close_period(month)?;
        closings.push((month, t0.elapsed()));
    }
    // Consumers read the frozen bytes: a lookup.
    let cells = hub.table(&request)?.cells.len();
    let mut times = Vec::with_capacity(queries);
    for _ in 0..queries {
        let t0 = Instant::now();
        let table = hub.table(&request)?;
        times.push(t0.elapsed());
        assert_eq!(table.cells.len(), cells);
    }
    let (p50, p99) = (percentile(&mut times, 0.5), percentile(&mut times, 0.99));

    // A late report for 2026-08 (a structure new to the hub), published by revising the month:
    // the month's and the quarter's next revision, each audited with the revisions before it.
    let late = siret(structures);
    let peer = Peer {
        id: PeerId { role: Role::Node, id: late.clone() },
        serial: None,
        network: Some("coorace".into()),
    };
    let open = PushOpen {
        structure: Some(Structure {
            siret: late.clone(),
            kind: passerelle_proto::v1::StructureKind::Ai as i32,
            name: "SIAE late".into(),
            departement: "44".into(),
        }),
        epoch: uuid_bytes(structures),
        datasets: vec!["indicators".into()],
        head_seq: 1,
        ..Default::default()
    };
    let (session, _) = hub.open_push(&peer, open)?;
    let fields = IndicatorFields {
        period: "2026-08".into(),
        etp_hundredths: 1200,
        employees_in_insertion: 20,
        hours_worked: 1600,
        hires: 2,
        exits: Some(Exits { total: 3, durable: 1, transition: 1, positive: 0, other: 1 }),
    };
    let report =
        IndicatorReport { siret: late.clone(), fields: Some(fields), version: 1, submitted_at_ms: 0 };
    let change = Change {
        dataset: "indicators".into(),
        key: "2026-08".into(),
        version: 1,
        payload: Some(change::Payload::Indicators(report)),
        ..Default::default()
    };
    hub.apply_batch(&session, Batch { seq: 1, changes: vec![change], head_seq: 1, ..Default::default() })?;
    let t0 = Instant::now();
    hub.revise_period("2026-08")?;
    let revise = t0.elapsed();
    let read = |revision: Option<u32>| -> anyhow::Result<(Duration, Duration)> {
        let request = GetTableRequest { revision, ..request.clone() };
        let mut times = Vec::with_capacity(queries);
        for _ in 0..queries {
            let t0 = Instant::now();
            let table = hub.table(&request)?;
            times.push(t0.elapsed());
            assert_eq!(table.revision, revision.unwrap_or(1));
        }
        Ok((percentile(&mut times, 0.5), percentile(&mut times, 0.99)))
    };
    let (latest, first) = (read(None)?, read(Some(0))?);

    // DuckDB, same rows, same question.
    if Command::new("python3")
        .args(["-c", "import duckdb"])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        eprintln!("installing duckdb from PyPI");
        let status = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "duckdb"])
            .status()?;
        anyhow::ensure!(status.success(), "pip install duckdb failed");
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/duckdb_query.py");
    let out = Command::new("python3").arg(script).arg(&csv_path).arg(queries.to_string()).output()?;
    anyhow::ensure!(out.status.success(), "duckdb: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let parts: Vec<f64> = text.split_whitespace().filter_map(|p| p.parse().ok()).collect();
    let (d50, d99) = (parts.first().copied().unwrap_or(f64::NAN), parts.get(1).copied().unwrap_or(f64::NAN));

    let rows = structures * months as usize;
    println!("| measure | value |");
    println!("|---|---|");
    println!("| data | {structures} structures × {months} months = {rows} indicator reports |");
    println!(
        "| ingest through the hub (one push session and one durable batch per structure) | {:.1} s ({:.0} reports/s) |",
        ingest.as_secs_f64(),
        rows as f64 / ingest.as_secs_f64()
    );
    for (month, took) in &closings {
        let what = if *month == "2026-09" { " and its quarter 2026-Q3" } else { "" };
        println!(
            "| closing {month}{what}: every dimension set settled, audited by LP and frozen | {:.2} s |",
            took.as_secs_f64()
        );
    }
    println!(
        "| Passerelle: closed quarter × département × kind table, as consumers read it ({cells} cells incl. totals, {queries} queries) | p50 {:.3} ms, p99 {:.3} ms |",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    println!(
        "| DuckDB {}: the equivalent GROUP BY over the same rows in memory ({queries} queries) | p50 {d50:.3} ms, p99 {d99:.3} ms |",
        duckdb_version()
    );
    println!("| ratio DuckDB p50 / Passerelle p50 | {:.1}× |", d50 / (p50.as_secs_f64() * 1e3));
    println!(
        "| revising 2026-08 after one late report: revision 1 of the month and of 2026-Q3, audited with revision 0 and frozen | {:.2} s |",
        revise.as_secs_f64()
    );
    for (what, (p50, p99)) in
        [("revision 1 (the latest, default)", latest), ("revision 0 (`--revision 0`)", first)]
    {
        println!(
            "| Passerelle: the quarter × département × kind table, {what} ({queries} queries) | p50 {:.3} ms, p99 {:.3} ms |",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
    Ok(())
}

fn uuid_bytes(n: usize) -> Vec<u8> {
    let mut epoch = vec![0u8; 16];
    epoch[..8].copy_from_slice(&(n as u64 + 1).to_be_bytes());
    epoch
}

fn duckdb_version() -> String {
    Command::new("python3")
        .args(["-c", "import duckdb; print(duckdb.__version__)"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
