//! Consolidated statistics end to end: nodes report, hubs aggregate, a consumer reads safe tables
//! over mutual TLS with its own certificate.

use std::time::Duration;

use passerelle_client::NodeClient;
use passerelle_proto::identity::Role;
use passerelle_tests::fixtures::report;
use passerelle_tests::pki::{SIRETS, TestPki};
use passerelle_tests::{InProcessDaemon, cli_async};

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_reads_suppressed_tables_and_cannot_isolate_a_structure() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let a = InProcessDaemon::start_config(&pki.write_hub_config("coorace-pdl", "auto_accept = true", "")?)
        .await?;
    let b =
        InProcessDaemon::start_config(&pki.write_hub_config("fas-pdl", "auto_accept = true", "")?).await?;
    // S1, S2 in both networks; S3 (49) and S4 (85) in Coorace only.
    let mut nodes = Vec::new();
    for (i, dep) in [(0, "49"), (1, "49"), (2, "49"), (3, "85")] {
        let mut hubs = vec![("coorace-pdl", a.hub_endpoint(), &["indicators", "needs"][..])];
        if i < 2 {
            hubs.push(("fas-pdl", b.hub_endpoint(), &["indicators"][..]));
        }
        let node = InProcessDaemon::start_config(&pki.write_node_config(SIRETS[i], dep, &hubs)?).await?;
        let mut client = NodeClient::connect(&node.endpoint, None).await?;
        for period in ["2026-07", "2026-08", "2026-09"] {
            client.submit_indicators(report(period)).await?;
        }
        client.create_need(passerelle_tests::fixtures::need(i)).await?;
        client.sync_now(true, Duration::from_secs(30)).await?;
        nodes.push(node);
    }

    // The third quarter is published once its months are closed.
    let consumer = pki.issue(Role::Consumer, "dreets-52")?;
    let tls_flags = TestPki::cli_flags(&consumer);
    let mut args: Vec<String> = tls_flags.clone();
    args.extend(["stats", "indicators", "--period", "2026-Q3"].map(String::from));
    let refused = cli_async(&a.hub_endpoint(), &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(refused.stderr.contains("period 2026-07 is not closed yet (due 2026-08-15)"), "{refused:?}");
    for hub in [&a, &b] {
        hub.close_periods(&["2026-07", "2026-08", "2026-09"]).await?;
    }

    let run = |endpoint: String, extra: &[&str]| {
        let args: Vec<String> =
            tls_flags.iter().cloned().chain(extra.iter().map(|s| s.to_string())).collect();
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            cli_async(&endpoint, &refs).await
        }
    };
    let by_dep = run(
        a.hub_endpoint(),
        &["--format", "json", "stats", "indicators", "--by", "departement", "--period", "2026-Q3"],
    )
    .await;
    assert_eq!(by_dep.code, 0, "{by_dep:?}");
    let table = by_dep.json()?;
    let cells = table["cells"].as_array().cloned().unwrap_or_default();
    let cell = |dep: &str| {
        cells
            .iter()
            .find(|c| c["key"]["departement"] == dep && c["total"] == false)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(cell("85")["suppressed"], "fewer than 3 structures", "{table}");
    assert!(
        cell("49")["suppressed"].as_str().is_some_and(|s| s.starts_with("secondary suppression")),
        "49 would give 85 away through the total: {table}"
    );
    let total = cells.iter().find(|c| c["total"] == true).cloned().unwrap_or_default();
    assert_eq!(total["structures"], 4);
    assert_eq!(
        total["measures"]["employees_in_insertion"], 80,
        "4 structures × 20 employees, averaged over the quarter"
    );
    assert_eq!(total["measures"]["hires"], 36, "4 structures × 3 months × 3 hires");
    assert!(cells.iter().all(|c| c["suppressed"].is_null()
        || c["measures"].as_object().is_some_and(|m| m.values().all(|v| v.is_null()))));
    assert!(table["rules"].as_array().is_some_and(|r| r.len() >= 3));
    let freshness = table["freshness"].as_array().cloned().unwrap_or_default();
    assert!(
        freshness.len() == 1 && freshness[0].as_str().is_some_and(|f| f.starts_with("2026-Q3=2026-")),
        "{freshness:?}"
    );

    let csv = run(
        a.hub_endpoint(),
        &["--format", "csv", "stats", "indicators", "--by", "departement", "--period", "2026-Q3"],
    )
    .await;
    let mut reader = csv::Reader::from_reader(csv.stdout.as_bytes());
    let header = reader.headers()?.clone();
    assert_eq!(&header[0], "departement");
    // The reason, then (appended, so existing columns keep their place) the period's revision.
    let last: Vec<&str> = header.iter().skip(header.len() - 2).collect();
    assert_eq!(last, ["suppressed", "revision"]);
    let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>()?;
    assert!(rows.iter().all(|r| &r[header.len() - 1] == "0"), "revision 0, as closed");
    let hires = header.iter().position(|h| h == "hires").unwrap_or(0);
    let suppressed = header.len() - 2;
    for row in &rows {
        if !row[suppressed].is_empty() {
            assert_eq!(&row[hires], "", "a suppressed value is empty, never 0: {row:?}");
        }
    }

    // Differencing: B = {S1, S2}, A = {S1, S2, S3, S4}. B's total covers two structures:
    // suppressed, so A − B never isolates anyone.
    let totals_b = run(b.hub_endpoint(), &["--format", "json", "stats", "indicators", "--period", "2026-Q3"])
        .await
        .ok()?
        .json()?;
    let grand_b = totals_b["cells"].as_array().and_then(|c| c.first()).cloned().unwrap_or_default();
    assert_eq!(grand_b["suppressed"], "fewer than 3 structures", "{totals_b}");

    // The recruitment outlook: 4 structures with one open need each in K2x, starting 2027-01.
    let outlook = run(
        a.hub_endpoint(),
        &[
            "--format",
            "json",
            "stats",
            "needs",
            "--by",
            "rome-grand-domaine",
            "--from",
            "2027-01",
            "--to",
            "2027-03",
        ],
    )
    .await
    .ok()?
    .json()?;
    let k = outlook["cells"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["key"]["rome-grand-domaine"] == "K").cloned())
        .unwrap_or_default();
    assert_eq!(k["structures"], 4, "{outlook}");
    assert_eq!(k["measures"]["needs"], 4);
    let none = run(
        a.hub_endpoint(),
        &["--format", "json", "stats", "needs", "--by", "rome-domaine", "--from", "2027-02"],
    )
    .await
    .ok()?
    .json()?;
    assert_eq!(none["cells"].as_array().map(Vec::len), Some(0), "no need starts after January: {none}");

    // The other tables answer, and only consumers may ask.
    let tables = run(a.hub_endpoint(), &["stats", "tables"]).await.ok()?;
    assert!(tables.stdout.contains("indicators") && tables.stdout.contains("profiles"), "{tables:?}");
    let listed = run(a.hub_endpoint(), &["--format", "json", "stats", "tables"]).await.ok()?.json()?;
    let indicators = listed.as_array().and_then(|t| t.iter().find(|t| t["id"] == "indicators")).cloned();
    assert_eq!(
        indicators.map(|t| t["periods"].clone()),
        Some(serde_json::json!(["2026-07", "2026-08", "2026-09", "2026-Q3"])),
        "the closed months and their quarter: {listed}"
    );
    let bad = run(a.hub_endpoint(), &["stats", "indicators", "--by", "commune", "--period", "2026-Q3"]).await;
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("by \"commune\""), "{bad:?}");

    for node in nodes {
        node.stop().await?;
    }
    a.stop().await?;
    b.stop().await
}
