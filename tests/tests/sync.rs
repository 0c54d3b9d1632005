//! The sync engine end to end: real hubs and nodes over mutual TLS, real sled stores.

use std::time::{Duration, Instant};

use passerelle_client::{HubClient, NodeClient};
use passerelle_proto::v1::{ContractType, Exits, IndicatorFields, NeedFields, NeedStatus, PooledNeed};
use passerelle_tests::InProcessDaemon;
use passerelle_tests::pki::{SIRETS, TestPki};

fn need(rome: &str, dep: &str, commune: &str) -> NeedFields {
    NeedFields {
        rome_code: rome.into(),
        title: "Poste".into(),
        contract_type: ContractType::Cddi as i32,
        open_positions: 2,
        hours_per_week: 26,
        departement: dep.into(),
        commune: commune.into(),
        start_date: "2027-01-04".into(),
        client: Some("Mme Dupont".into()),
        description: Some("détails privés".into()),
        ..Default::default()
    }
}

fn report(period: &str) -> IndicatorFields {
    IndicatorFields {
        period: period.into(),
        etp_hundredths: 1250,
        employees_in_insertion: 20,
        hours_worked: 1700,
        hires: 3,
        exits: Some(Exits { total: 4, durable: 1, transition: 1, positive: 1, other: 1 }),
    }
}

/// Polls `check` until it holds or 15 s pass (sync is asynchronous by design).
async fn eventually<F, Fut>(what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if check().await? {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn network(node: &mut NodeClient) -> anyhow::Result<Vec<PooledNeed>> {
    Ok(node.network_needs(None, None).await?)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_two_hubs_converge_to_their_projections() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let coorace =
        InProcessDaemon::start_config(&pki.write_hub_config("coorace-pdl", "auto_accept = true", "")?)
            .await?;
    let fas =
        InProcessDaemon::start_config(&pki.write_hub_config("fas-pdl", "auto_accept = true", "")?).await?;

    // A is in both networks, and shares only its needs with FAS; B is in Coorace only.
    let a = InProcessDaemon::start_config(&pki.write_node_config(
        SIRETS[0],
        "49",
        &[
            ("coorace-pdl", coorace.hub_endpoint(), &["needs", "indicators"]),
            ("fas-pdl", fas.hub_endpoint(), &["needs"]),
        ],
    )?)
    .await?;
    let b = InProcessDaemon::start_config(&pki.write_node_config(
        SIRETS[1],
        "85",
        &[("coorace-pdl", coorace.hub_endpoint(), &["needs", "indicators"])],
    )?)
    .await?;
    let mut na = NodeClient::connect(&a.endpoint, None).await?;
    let mut nb = NodeClient::connect(&b.endpoint, None).await?;

    let a1 = na.create_need(need("K2204", "49", "49007")).await?;
    let a2 = na.create_need(need("N1103", "49", "49099")).await?;
    na.submit_indicators(report("2026-10")).await?;
    let b1 = nb.create_need(need("A1203", "85", "85191")).await?;
    let b2 = nb.create_need(need("F1701", "85", "85191")).await?;
    nb.submit_indicators(report("2026-10")).await?;
    nb.submit_indicators(report("2026-11")).await?;
    for node in [&mut na, &mut nb] {
        let status = node.sync_now(true, Duration::from_secs(20)).await?;
        assert!(status.hubs.iter().all(|h| h.pending == 0 && h.last_error.is_empty()), "{status:?}");
    }

    // Each hub holds exactly its projection.
    let held = |members: Vec<passerelle_proto::v1::Member>, siret: &str| {
        members.into_iter().find(|m| m.id == siret).map(|m| m.records_held)
    };
    let coorace_admin = HubClient::connect(&coorace.endpoint, None).await?;
    let fas_admin = HubClient::connect(&fas.endpoint, None).await?;
    assert_eq!(held(coorace_admin.members().await?, SIRETS[0]), Some(3), "A: 2 needs + 1 report at Coorace");
    assert_eq!(held(coorace_admin.members().await?, SIRETS[1]), Some(4), "B: 2 needs + 2 reports at Coorace");
    assert_eq!(held(fas_admin.members().await?, SIRETS[0]), Some(2), "A: needs only at FAS");
    assert_eq!(held(fas_admin.members().await?, SIRETS[1]), None, "B is not a FAS member");

    // Each node sees the other's open needs, not its own.
    eventually("A to see B's needs", || async {
        let view = NodeClient::connect(&a.endpoint, None).await?.network_needs(None, None).await?;
        Ok(view.len() == 2)
    })
    .await?;
    let view_a = network(&mut na).await?;
    let ids: Vec<&str> = view_a.iter().filter_map(|p| p.need.as_ref().map(|n| n.need_id.as_str())).collect();
    assert!(ids.contains(&b1.id.as_str()) && ids.contains(&b2.id.as_str()), "{view_a:?}");
    assert_eq!(view_a[0].structure_name, format!("Structure {}", SIRETS[1]));
    assert_eq!(view_a[0].hubs, vec!["coorace-pdl".to_string()]);
    eventually("B to see A's needs", || async {
        let view = NodeClient::connect(&b.endpoint, None).await?.network_needs(None, None).await?;
        Ok(view.len() == 2)
    })
    .await?;
    let filtered = nb.network_needs(Some("K22".into()), Some("49".into())).await?;
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0].need.as_ref().map(|n| n.need_id.clone()), Some(a1.id.clone()));
    let shared = filtered[0].need.clone().unwrap_or_default();
    assert_eq!(shared.departement, "49", "the view carries the département, never the commune");

    // A closed need and a deleted need leave the hubs' views and the other node's copy.
    nb.close_need(&b1.id, NeedStatus::Filled).await?;
    nb.delete_need(&b2.id).await?;
    na.delete_need(&a2.id).await?;
    nb.sync_now(true, Duration::from_secs(20)).await?;
    na.sync_now(true, Duration::from_secs(20)).await?;
    eventually("A's view to drop B's closed and deleted needs", || async {
        Ok(NodeClient::connect(&a.endpoint, None).await?.network_needs(None, None).await?.is_empty())
    })
    .await?;
    eventually("B's view to drop A's deleted need", || async {
        Ok(NodeClient::connect(&b.endpoint, None).await?.network_needs(None, None).await?.len() == 1)
    })
    .await?;
    assert_eq!(
        held(coorace_admin.members().await?, SIRETS[1]),
        Some(3),
        "B: 1 (filled) need + 2 reports; the deleted one is a tombstone"
    );
    assert_eq!(held(fas_admin.members().await?, SIRETS[0]), Some(1));

    let status = na.sync_status().await?;
    assert_eq!(status.hubs.len(), 2);
    assert!(status.hubs.iter().all(|h| h.connected && h.pending == 0 && h.last_ack_at_ms > 0), "{status:?}");

    for daemon in [a, b, coorace, fas] {
        daemon.stop().await?;
    }
    Ok(())
}

/// A node checks that the hub it reaches is the hub it is configured for, from the hub's
/// certificate, before sending anything.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_refuses_a_hub_that_is_not_the_one_configured() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let coorace =
        InProcessDaemon::start_config(&pki.write_hub_config("coorace-pdl", "auto_accept = true", "")?)
            .await?;
    // Configured for FAS, but the endpoint is Coorace's (a typo, or a hijacked DNS name).
    let node = InProcessDaemon::start_config(&pki.write_node_config(
        SIRETS[0],
        "49",
        &[("fas-pdl", coorace.hub_endpoint(), &["needs"])],
    )?)
    .await?;
    let mut client = NodeClient::connect(&node.endpoint, None).await?;
    client.create_need(need("K2204", "49", "49007")).await?;
    assert!(client.sync_now(true, Duration::from_secs(2)).await.is_err());
    let status = client.sync_status().await?;
    assert!(
        status.hubs[0].last_error.contains("passerelle://hub/coorace-pdl, not passerelle://hub/fas-pdl"),
        "{status:?}"
    );
    let members = HubClient::connect(&coorace.endpoint, None).await?.members().await?;
    assert!(members.is_empty(), "nothing reached the wrong hub: {members:?}");
    node.stop().await?;
    coorace.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn hub_structures_and_sync_status_through_the_cli() -> anyhow::Result<()> {
    use passerelle_tests::cli_async;
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let (hub, node) = pki.start_hub_and_member(SIRETS[1], "85", &["needs", "indicators"]).await?;
    let mut client = NodeClient::connect(&node.endpoint, None).await?;
    client.create_need(need("A1203", "85", "85191")).await?;
    client.submit_indicators(report("2026-10")).await?;

    let synced = cli_async(&node.endpoint, &["--format", "json", "sync", "now", "--wait", "--timeout", "20"])
        .await
        .ok()?
        .json()?;
    assert_eq!(synced[0]["id"], "coorace-pdl");
    assert_eq!(synced[0]["pending"], 0);
    assert_eq!(synced[0]["connected"], true);
    let status = cli_async(&node.endpoint, &["sync", "status"]).await.ok()?;
    assert!(status.stdout.contains("coorace-pdl"), "{status:?}");

    let structures =
        cli_async(&hub.endpoint, &["--format", "json", "hub", "structures"]).await.ok()?.json()?;
    assert_eq!(structures[0]["id"], SIRETS[1]);
    assert_eq!(structures[0]["records_held"], 2);
    assert_eq!(structures[0]["lag"], 0);
    assert_eq!(structures[0]["name"], format!("Structure {}", SIRETS[1]));
    let csv = cli_async(&hub.endpoint, &["--format", "csv", "hub", "structures"]).await.ok()?;
    assert!(csv.stdout.starts_with("id,name,state,last_seen"), "{csv:?}");

    let empty = cli_async(&node.endpoint, &["network", "needs", "--rome", "K22"]).await.ok()?;
    assert!(empty.stdout.starts_with("no needs"), "{empty:?}");
    let bad = cli_async(&node.endpoint, &["network", "needs", "--rome", "K2"]).await;
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("rome \"K2\""), "{bad:?}");
    node.stop().await?;
    hub.stop().await
}

/// Removing a member takes its data off the hub; once accepted again, its node resends
/// everything it shares (its store epoch is unknown to the hub again).
#[tokio::test(flavor = "multi_thread")]
async fn a_removed_member_leaves_nothing_behind_and_comes_back_whole() -> anyhow::Result<()> {
    use passerelle_tests::{ChildDaemon, cli_async, free_port, hub_records_on_disk};
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let port = free_port()?;
    let hub_config = pki.write_hub_config_on("coorace-pdl", port, "", "")?;
    let hub = ChildDaemon::spawn(&hub_config)?;
    cli_async(&hub.endpoint, &["hub", "accept", SIRETS[4]]).await.ok()?;
    let node = InProcessDaemon::start_config(&pki.write_node_config(
        SIRETS[4],
        "49",
        &[("coorace-pdl", format!("https://localhost:{port}"), &["needs", "indicators"])],
    )?)
    .await?;
    let mut client = NodeClient::connect(&node.endpoint, None).await?;
    for _ in 0..3 {
        client.create_need(need("K2204", "49", "49007")).await?;
    }
    client.submit_indicators(report("2026-10")).await?;
    client.sync_now(true, Duration::from_secs(30)).await?;

    let removed =
        cli_async(&hub.endpoint, &["--format", "json", "hub", "remove", SIRETS[4]]).await.ok()?.json()?;
    assert_eq!(removed["id"], SIRETS[4]);
    hub.kill9()?;
    assert!(hub_records_on_disk(&hub_config, SIRETS[4], "needs")?.is_empty(), "needs purged with the member");
    assert!(
        hub_records_on_disk(&hub_config, SIRETS[4], "indicators")?.is_empty(),
        "reports purged with the member"
    );

    let hub = ChildDaemon::spawn(&hub_config)?;
    cli_async(&hub.endpoint, &["hub", "accept", SIRETS[4]]).await.ok()?;
    // The next change meets the new membership; the hub asks for everything again.
    client.create_need(need("N1103", "49", "49007")).await?;
    client.sync_now(true, Duration::from_secs(30)).await?;
    hub.kill9()?;
    assert_eq!(hub_records_on_disk(&hub_config, SIRETS[4], "needs")?.len(), 4);
    assert_eq!(hub_records_on_disk(&hub_config, SIRETS[4], "indicators")?.len(), 1);
    node.stop().await
}
