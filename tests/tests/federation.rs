//! Federation upward: network hubs relay their members' reports to a consolidation hub, which
//! counts a structure that belongs to two networks once, and forgets a withdrawn one entirely.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use passerelle_client::NodeClient;
use passerelle_proto::identity::Role;
use passerelle_tests::fixtures::report;
use passerelle_tests::pki::{SIRETS, TestPki};
use passerelle_tests::{InProcessDaemon, cli_async};

/// A hub a node syncs with: id, endpoint, datasets shared.
type HubShare<'a> = (&'a str, String, &'a [&'a str]);

#[tokio::test(flavor = "multi_thread")]
async fn a_structure_in_two_networks_counts_once_and_a_withdrawal_leaves_no_trace() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let dreets_config = pki.write_hub_config("dreets-52", "auto_accept = true", "")?;
    let dreets = InProcessDaemon::start_config(&dreets_config).await?;
    let upstream = pki.upstream_section("dreets-52", &dreets.hub_endpoint());
    let coorace = InProcessDaemon::start_config(&pki.write_hub_config(
        "coorace-pdl",
        "auto_accept = true",
        &upstream,
    )?)
    .await?;
    let fas =
        InProcessDaemon::start_config(&pki.write_hub_config("fas-pdl", "auto_accept = true", &upstream)?)
            .await?;

    // S0 in both networks; S1 in Coorace; S2 in FAS.
    let memberships: [(&str, Vec<HubShare<'_>>); 3] = [
        (
            SIRETS[0],
            vec![
                ("coorace-pdl", coorace.hub_endpoint(), &["indicators"][..]),
                ("fas-pdl", fas.hub_endpoint(), &["indicators"][..]),
            ],
        ),
        (SIRETS[1], vec![("coorace-pdl", coorace.hub_endpoint(), &["indicators"][..])]),
        (SIRETS[2], vec![("fas-pdl", fas.hub_endpoint(), &["indicators"][..])]),
    ];
    let mut nodes = Vec::new();
    for (siret, hubs) in &memberships {
        let node = InProcessDaemon::start_config(&pki.write_node_config(siret, "49", hubs)?).await?;
        let mut client = NodeClient::connect(&node.endpoint, None).await?;
        for period in ["2026-07", "2026-08", "2026-09"] {
            client.submit_indicators(report(period)).await?;
        }
        client.sync_now(true, Duration::from_secs(30)).await?;
        nodes.push(node);
    }

    // Relaying is asynchronous: wait (bounded) until the consolidation hub has every report of
    // the three structures, then close the quarter's months as its operator would.
    let operator = passerelle_client::HubClient::connect(&dreets.endpoint, None).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let periods = operator.periods().await?;
        if periods.len() == 3 && periods.iter().all(|p| p.reported == 3 && p.expected == 3) {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the consolidation hub never saw 3 structures: {periods:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let completeness = operator.completeness("2026-09").await?;
    let s0 = completeness.rows.iter().find(|r| r.member == SIRETS[0]).cloned().unwrap_or_default();
    assert_eq!(s0.networks, ["coorace-pdl", "fas-pdl"], "S0 is relayed by both networks: {completeness:?}");
    dreets.close_periods(&["2026-07", "2026-08", "2026-09"]).await?;

    let consumer = pki.issue(Role::Consumer, "dreets-52")?;
    let mut flags = TestPki::cli_flags(&consumer);
    flags.extend([
        "--format".into(),
        "json".into(),
        "stats".into(),
        "indicators".into(),
        "--period".into(),
        "2026-Q3".into(),
    ]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let published = cli_async(&dreets.hub_endpoint(), &flags).await.ok()?;
    let table = published.json()?;
    let total = table["cells"].as_array().and_then(|c| c.first()).cloned().unwrap_or_default();
    assert_eq!(total["structures"], 3, "{table}");
    assert_eq!(
        total["measures"]["hires"], 27,
        "3 structures × 3 months × 3 hires: S0 counted once, not twice"
    );
    assert_eq!(total["measures"]["employees_in_insertion"], 60);

    // S1 stops sharing its indicators with Coorace: the withdrawal travels up, and the
    // consolidation hub's cells are exactly those of S0 and S2.
    let s1 = nodes.remove(1);
    s1.stop().await?;
    let s1 = InProcessDaemon::start_config(&pki.write_node_config(
        SIRETS[1],
        "49",
        &[("coorace-pdl", coorace.hub_endpoint(), &["needs"])],
    )?)
    .await?;
    NodeClient::connect(&s1.endpoint, None).await?.sync_now(true, Duration::from_secs(30)).await?;
    // The withdrawal reaches the consolidation hub: S1's reports are no longer held there...
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let completeness = operator.completeness("2026-09").await?;
        let s1_row = completeness.rows.iter().find(|r| r.member == SIRETS[1]);
        if s1_row.is_none_or(|r| !r.reported) {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the withdrawal never reached the consolidation hub: {completeness:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ...and the published quarter, frozen at its closing, is unchanged (the purge shows in the
    // next revision, not in the frozen one).
    let after = cli_async(&dreets.hub_endpoint(), &flags).await.ok()?;
    assert_eq!(after.stdout, published.stdout, "a closed period's table does not move");
    s1.stop().await?;
    for node in nodes {
        node.stop().await?;
    }
    coorace.stop().await?;
    fas.stop().await?;
    dreets.stop().await?;

    let config = passerelle_daemon::Config::load(&dreets_config)?;
    let settings = config.hub().cloned().ok_or_else(|| anyhow::anyhow!("hub config"))?;
    let hub = passerelle_daemon::hub::Hub::open(&config.data_dir, settings, Default::default())?;
    let mut contributors = BTreeSet::new();
    for prefix in ["i/", "iq/", "iy/"] {
        for (_, cell) in hub.stat_cells(prefix)? {
            for c in cell.contributions {
                assert_eq!(
                    c.values[3],
                    if prefix == "i/" { 3 } else { 9 },
                    "each structure counted once per cell: {c:?}"
                );
                contributors.insert(c.siret);
            }
        }
    }
    assert_eq!(contributors, BTreeSet::from([SIRETS[0].to_string(), SIRETS[2].to_string()]));
    assert!(
        hub.records_of(SIRETS[1], passerelle_proto::datasets::Dataset::Indicators)?.is_empty(),
        "S1's reports are gone upstream too"
    );
    Ok(())
}
