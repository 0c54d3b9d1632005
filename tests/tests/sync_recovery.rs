//! Sync under failure, with real processes: `kill -9` of a hub mid-push and of a node, a hub down
//! while the node writes, a node whose data directory was wiped, and a damaged hub store. After
//! each, the hub holds exactly the node's records (counts, and digests compared through the
//! protocol), with no duplicates.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use passerelle_client::{HubClient, NodeClient};
use passerelle_proto::v1::Member;
use passerelle_tests::fixtures::{need, report};
use passerelle_tests::pki::{SIRETS, TestPki};
use passerelle_tests::{ChildDaemon, InProcessDaemon, free_port, hub_records_on_disk};

async fn member(admin_endpoint: &str, siret: &str) -> anyhow::Result<Option<Member>> {
    Ok(HubClient::connect(admin_endpoint, None).await?.members().await?.into_iter().find(|m| m.id == siret))
}

/// Creates `n` needs with 4 concurrent writers; returns their ids.
async fn create_needs(endpoint: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let mut tasks = Vec::new();
    for w in 0..4 {
        let endpoint = endpoint.to_string();
        tasks.push(tokio::spawn(async move {
            let mut node = NodeClient::connect(&endpoint, None).await?;
            let mut ids = Vec::new();
            for i in (w..n).step_by(4) {
                ids.push(node.create_need(need(i)).await?.id);
            }
            anyhow::Ok(ids)
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await??);
    }
    Ok(ids)
}

/// The node's needs are exactly the hub's live needs of that origin, each once.
fn assert_same_set(node_ids: &[String], hub: &[(String, u64, bool)]) {
    let live: Vec<&str> = hub.iter().filter(|r| r.2).map(|r| r.0.as_str()).collect();
    let unique: HashSet<&str> = live.iter().copied().collect();
    assert_eq!(unique.len(), live.len(), "duplicates at the hub");
    let expected: HashSet<&str> = node_ids.iter().map(String::as_str).collect();
    assert_eq!(unique, expected, "hub and node disagree");
}

/// A fresh push session compares digests; no mismatch means the hub holds the node's exact set.
async fn assert_digests_agree(node_endpoint: &str, hub_admin: &str, siret: &str) -> anyhow::Result<()> {
    let before = member(hub_admin, siret).await?.map(|m| m.digest_mismatches).unwrap_or_default();
    NodeClient::connect(node_endpoint, None).await?.sync_now(true, Duration::from_secs(30)).await?;
    let after = member(hub_admin, siret).await?.map(|m| m.digest_mismatches).unwrap_or_default();
    assert_eq!(before, after, "a digest mismatch was found");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn hub_killed_mid_push_then_restarted() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let port = free_port()?;
    let hub_config = pki.write_hub_config_on("coorace-pdl", port, "auto_accept = true", "")?;
    let hub = ChildDaemon::spawn(&hub_config)?;
    let endpoint = format!("https://localhost:{port}");
    let node = InProcessDaemon::start_config(&pki.write_node_config(
        SIRETS[0],
        "49",
        &[("coorace-pdl", endpoint, &["needs"])],
    )?)
    .await?;

    // Writes flow while the hub is ingesting; kill it once part of them is acknowledged.
    let writer = tokio::spawn({
        let ep = node.endpoint.clone();
        async move { create_needs(&ep, 3000).await }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let acked = member(&hub.endpoint, SIRETS[0]).await?.map(|m| m.last_acked_seq).unwrap_or_default();
        if acked >= 300 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the hub never acknowledged 300 changes");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let acked_before_kill =
        member(&hub.endpoint, SIRETS[0]).await?.map(|m| m.records_held).unwrap_or_default();
    hub.kill9()?;
    let ids = writer.await??;

    let hub = ChildDaemon::spawn(&hub_config)?;
    let status =
        NodeClient::connect(&node.endpoint, None).await?.sync_now(true, Duration::from_secs(60)).await?;
    assert!(status.hubs[0].pending == 0, "{status:?}");
    let m = member(&hub.endpoint, SIRETS[0]).await?.unwrap_or_default();
    assert!(m.records_held >= acked_before_kill, "what was acknowledged before the kill is still there");
    assert_eq!(m.records_held, 3000);
    assert_digests_agree(&node.endpoint, &hub.endpoint, SIRETS[0]).await?;
    hub.kill9()?;
    assert_same_set(&ids, &hub_records_on_disk(&hub_config, SIRETS[0], "needs")?);
    node.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn node_killed_during_push_loses_and_duplicates_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub_config = pki.write_hub_config("coorace-pdl", "auto_accept = true", "")?;
    let hub = InProcessDaemon::start_config(&hub_config).await?;
    let node_config =
        pki.write_node_config(SIRETS[1], "49", &[("coorace-pdl", hub.hub_endpoint(), &["needs"])])?;
    let node = ChildDaemon::spawn(&node_config)?;
    create_needs(&node.endpoint, 1500).await?;
    // Killed while its outbox is being pushed.
    node.kill9()?;

    let node = ChildDaemon::spawn(&node_config)?;
    let ids = create_needs(&node.endpoint, 500).await?;
    let status =
        NodeClient::connect(&node.endpoint, None).await?.sync_now(true, Duration::from_secs(60)).await?;
    assert_eq!(status.hubs[0].pending, 0, "{status:?}");
    let all: Vec<String> = NodeClient::connect(&node.endpoint, None)
        .await?
        .needs(None)
        .await?
        .into_iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(all.len(), 2000);
    assert!(ids.iter().all(|id| all.contains(id)));
    assert_eq!(member(&hub.endpoint, SIRETS[1]).await?.map(|m| m.records_held), Some(2000));
    assert_digests_agree(&node.endpoint, &hub.endpoint, SIRETS[1]).await?;
    node.kill9()?;
    hub.stop().await?;
    assert_same_set(&all, &hub_records_on_disk(&hub_config, SIRETS[1], "needs")?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backlog_written_while_the_hub_is_down_drains() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let port = free_port()?;
    let hub_config = pki.write_hub_config_on("coorace-pdl", port, "auto_accept = true", "")?;
    let endpoint = format!("https://localhost:{port}");
    let node = InProcessDaemon::start_config(&pki.write_node_config(
        SIRETS[2],
        "49",
        &[("coorace-pdl", endpoint, &["needs"])],
    )?)
    .await?;
    let ids = create_needs(&node.endpoint, 3000).await?;
    let mut client = NodeClient::connect(&node.endpoint, None).await?;
    let status = client.sync_status().await?;
    assert!(!status.hubs[0].connected && status.hubs[0].pending >= 3000, "{status:?}");
    assert!(!status.hubs[0].last_error.is_empty(), "the reason is shown: {status:?}");
    let unreachable = client.sync_now(true, Duration::from_secs(1)).await;
    assert!(unreachable.is_err(), "--wait fails while the hub is down");

    let hub = ChildDaemon::spawn(&hub_config)?;
    let status = client.sync_now(true, Duration::from_secs(60)).await?;
    assert_eq!(status.hubs[0].pending, 0);
    assert_eq!(member(&hub.endpoint, SIRETS[2]).await?.map(|m| m.records_held), Some(3000));
    hub.kill9()?;
    assert_same_set(&ids, &hub_records_on_disk(&hub_config, SIRETS[2], "needs")?);
    node.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wiped_node_re_registers_without_duplicates() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub_config = pki.write_hub_config("coorace-pdl", "auto_accept = true", "")?;
    let hub = InProcessDaemon::start_config(&hub_config).await?;
    let node_config = pki.write_node_config(
        SIRETS[3],
        "49",
        &[("coorace-pdl", hub.hub_endpoint(), &["needs", "indicators"])],
    )?;

    let node = InProcessDaemon::start_config(&node_config).await?;
    create_needs(&node.endpoint, 10).await?;
    let mut client = NodeClient::connect(&node.endpoint, None).await?;
    for _ in 0..3 {
        client.submit_indicators(report("2026-10")).await?;
    }
    client.sync_now(true, Duration::from_secs(30)).await?;
    assert_eq!(member(&hub.endpoint, SIRETS[3]).await?.map(|m| m.records_held), Some(11));
    node.stop().await?;

    std::fs::remove_dir_all(dir.path().join(format!("node-{}-data", SIRETS[3])))?;
    let node = InProcessDaemon::start_config(&node_config).await?;
    let ids = create_needs(&node.endpoint, 3).await?;
    let mut client = NodeClient::connect(&node.endpoint, None).await?;
    client.submit_indicators(report("2026-10")).await?;
    client.sync_now(true, Duration::from_secs(30)).await?;
    let m = member(&hub.endpoint, SIRETS[3]).await?.unwrap_or_default();
    assert_eq!(m.records_held, 4, "the old epoch's records are gone, the new ones are there once");
    assert_digests_agree(&node.endpoint, &hub.endpoint, SIRETS[3]).await?;
    node.stop().await?;
    hub.stop().await?;
    assert_same_set(&ids, &hub_records_on_disk(&hub_config, SIRETS[3], "needs")?);
    let reports = hub_records_on_disk(&hub_config, SIRETS[3], "indicators")?;
    assert_eq!(
        reports,
        vec![("2026-10".to_string(), 1, true)],
        "the new epoch's version 1 replaced the old version 3"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn anti_entropy_repairs_a_damaged_hub_store() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub_config = pki.write_hub_config("coorace-pdl", "auto_accept = true", "")?;
    let port_hub = InProcessDaemon::start_config(&hub_config).await?;
    let hub_endpoint = port_hub.hub_endpoint();
    let node_config =
        pki.write_node_config(SIRETS[4], "49", &[("coorace-pdl", hub_endpoint.clone(), &["needs"])])?;
    let node = InProcessDaemon::start_config(&node_config).await?;
    let ids = create_needs(&node.endpoint, 50).await?;
    NodeClient::connect(&node.endpoint, None).await?.sync_now(true, Duration::from_secs(30)).await?;
    node.stop().await?;
    port_hub.stop().await?;

    // Damage the hub's copy behind its back: drop five records.
    {
        let config = passerelle_daemon::Config::load(&hub_config)?;
        let settings = config.hub().cloned().ok_or_else(|| anyhow::anyhow!("hub config"))?;
        let hub = passerelle_daemon::hub::Hub::open(&config.data_dir, settings, Default::default())?;
        hub.damage_for_tests(SIRETS[4], passerelle_proto::datasets::Dataset::Needs, 5)?;
    }
    let hub = InProcessDaemon::start_config(&hub_config).await?;
    let node = InProcessDaemon::start_config(&pki.write_node_config(
        SIRETS[4],
        "49",
        &[("coorace-pdl", hub.hub_endpoint(), &["needs"])],
    )?)
    .await?;
    NodeClient::connect(&node.endpoint, None).await?.sync_now(true, Duration::from_secs(30)).await?;
    let m = member(&hub.endpoint, SIRETS[4]).await?.unwrap_or_default();
    assert_eq!(m.digest_mismatches, 1, "the mismatch was detected and counted");
    assert_eq!(m.records_held, 50, "and repaired");
    node.stop().await?;
    hub.stop().await?;
    assert_same_set(&ids, &hub_records_on_disk(&hub_config, SIRETS[4], "needs")?);
    Ok(())
}
