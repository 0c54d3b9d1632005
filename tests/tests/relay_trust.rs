//! A relaying hub can withhold a record, never create, alter, re-date or resurrect one: records
//! are signed by their origin node, and the consolidation hub keeps a floor per record.
//!
//! The attacker is `evil-pdl`, a network hub the consolidation hub accepted as a member, with a
//! valid hub certificate. It first runs as a real hub that structure S0 shares with (so it holds
//! S0's genuine records, as a malicious network would), then speaks the wire protocol itself: a
//! tonic client in this crate relaying forged, altered, re-dated and resurrected records.

use std::time::{Duration, Instant};

use passerelle_client::{HubClient, NodeClient, TlsFiles};
use passerelle_proto::datasets::Dataset;
use passerelle_proto::identity::Role;
use passerelle_proto::v1::{Change, StructureKind, change};
use passerelle_tests::InProcessDaemon;
use passerelle_tests::fixtures::{need, report};
use passerelle_tests::hostile::relay_as;
use passerelle_tests::pki::{SIRETS, TestPki};

/// Waits (bounded) until the consolidation hub holds `count` live records relayed by `relay`.
async fn wait_relayed(operator: &HubClient, relay: &str, count: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let members = operator.members().await?;
        let held = members.iter().find(|m| m.id == relay).map(|m| m.records_held);
        if held == Some(count) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{relay} never held {count} records upstream: {held:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_relay_cannot_forge_alter_redate_or_resurrect_records() -> anyhow::Result<()> {
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
    let evil_config = pki.write_hub_config("evil-pdl", "auto_accept = true", "")?;
    let evil = InProcessDaemon::start_config(&evil_config).await?;
    let operator = HubClient::connect(&dreets.endpoint, None).await?;

    // S0 shares its needs and reports with Coorace (which relays them) and with evil-pdl.
    let shared: &[&str] = &["indicators", "needs"];
    let s0_config = pki.write_node_config(
        SIRETS[0],
        "49",
        &[("coorace-pdl", coorace.hub_endpoint(), shared), ("evil-pdl", evil.hub_endpoint(), shared)],
    )?;
    let s0 = InProcessDaemon::start_config(&s0_config).await?;
    let mut client = NodeClient::connect(&s0.endpoint, None).await?;
    let need_id = client.create_need(need(0)).await?.id;
    for period in ["2026-07", "2026-08", "2026-09"] {
        client.submit_indicators(report(period)).await?;
    }
    client.sync_now(true, Duration::from_secs(30)).await?;
    wait_relayed(&operator, "coorace-pdl", 4).await?;

    // What evil-pdl holds of S0, exactly as it would relay it.
    s0.stop().await?;
    evil.stop().await?;
    let captured = {
        let config = passerelle_daemon::Config::load(&evil_config)?;
        let settings = config.hub().cloned().ok_or_else(|| anyhow::anyhow!("hub config"))?;
        let hub = passerelle_daemon::hub::Hub::open(&config.data_dir, settings, Default::default())?;
        let mut captured = Vec::new();
        for (dataset, key) in [
            (Dataset::Needs, need_id.as_str()),
            (Dataset::Indicators, "2026-07"),
            (Dataset::Indicators, "2026-08"),
            (Dataset::Indicators, "2026-09"),
        ] {
            let change = hub.relayed(SIRETS[0], dataset, key, "dreets-52")?;
            captured.push(change.ok_or_else(|| anyhow::anyhow!("evil-pdl holds no {dataset} {key}"))?);
        }
        captured
    };
    let [captured_need, july, august, september] =
        <[Change; 4]>::try_from(captured).map_err(|_| anyhow::anyhow!("four records captured"))?;
    let evil_tls = pki.issue(Role::Hub, "evil-pdl")?;
    // S0's certificate, which signed its records (a relay sends it with them).
    let s0_cert: Vec<Vec<u8>> = passerelle_daemon::tls::load_certs(&pki.issue(Role::Node, SIRETS[0])?.cert)?
        .into_iter()
        .map(|c| c.to_vec())
        .collect();
    let endpoint = dreets.hub_endpoint();
    let figures = |change: &mut Change, hires: u32| {
        if let Some(change::Payload::Indicators(r)) = &mut change.payload
            && let Some(fields) = &mut r.fields
        {
            fields.hires = hires;
        }
    };

    // 1. A record for a structure that is no member of evil-pdl's (it never shared anything).
    let mut forged = july.clone();
    if let Some(origin) = &mut forged.origin {
        origin.siret = SIRETS[3].into();
    }
    if let Some(change::Payload::Indicators(r)) = &mut forged.payload {
        r.siret = SIRETS[3].into();
    }
    let forged_outcome = relay_as(&evil_tls, &endpoint, vec![forged], &s0_cert).await?;

    // 2. S0's July report with altered figures, as a later version.
    let mut altered = july.clone();
    altered.version += 1;
    figures(&mut altered, 99);
    if let Some(change::Payload::Indicators(r)) = &mut altered.payload {
        r.version += 1;
    }
    let altered_outcome = relay_as(&evil_tls, &endpoint, vec![altered], &s0_cert).await?;

    // 3. S0's August report re-dated into a store "created" at the end of time, which would
    //    outrank every genuine later version.
    let mut redated = august.clone();
    redated.origin_epoch = vec![0xee; 16];
    redated.origin_epoch_created_at_ms = i64::MAX;
    let redated_outcome = relay_as(&evil_tls, &endpoint, vec![redated], &s0_cert).await?;

    // 4. S0's September report with its structure moved to another département and kind.
    let mut moved = september.clone();
    if let Some(origin) = &mut moved.origin {
        origin.departement = "72".into();
        origin.kind = StructureKind::Ei as i32;
    }
    let moved_outcome = relay_as(&evil_tls, &endpoint, vec![moved], &s0_cert).await?;

    // S0 leaves evil-pdl, deletes its need, resubmits July and August (version 2, 5 hires) and
    // reports October.
    let s0 = InProcessDaemon::start_config(&pki.write_node_config(
        SIRETS[0],
        "49",
        &[("coorace-pdl", coorace.hub_endpoint(), shared)],
    )?)
    .await?;
    let mut client = NodeClient::connect(&s0.endpoint, None).await?;
    client.delete_need(&need_id).await?;
    for (period, hires) in [("2026-07", 5), ("2026-08", 5), ("2026-10", 1)] {
        let mut fields = report(period);
        fields.hires = hires;
        client.submit_indicators(fields).await?;
    }
    client.sync_now(true, Duration::from_secs(30)).await?;
    // Coorace relays in order: once October is upstream, so is the deletion.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !operator.periods().await?.iter().any(|p| p.period == "2026-10" && p.reported == 1) {
        anyhow::ensure!(Instant::now() < deadline, "October never reached the consolidation hub");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // 5. evil-pdl resurrects the deleted need from its copy.
    let resurrected_outcome = relay_as(&evil_tls, &endpoint, vec![captured_need], &s0_cert).await?;

    s0.stop().await?;
    coorace.stop().await?;
    dreets.stop().await?;

    let config = passerelle_daemon::Config::load(&dreets_config)?;
    let settings = config.hub().cloned().ok_or_else(|| anyhow::anyhow!("hub config"))?;
    let hub = passerelle_daemon::hub::Hub::open(&config.data_dir, settings, Default::default())?;
    let mut failures = Vec::new();
    for (attack, outcome) in [
        ("forged record for a non-member", &forged_outcome),
        ("altered figures", &altered_outcome),
        ("re-dated epoch", &redated_outcome),
        ("moved structure", &moved_outcome),
    ] {
        match outcome {
            Ok(()) => failures.push(format!("{attack}: acknowledged")),
            // A creation time in the future is refused as invalid before any signature is
            // looked at; the rest as not the origin's signature.
            Err(status) if attack == "re-dated epoch" && status.code() == tonic::Code::InvalidArgument => {
                assert!(status.message().contains("origin_epoch_created_at_ms"), "{attack}: {status:?}");
            }
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::PermissionDenied, "{attack}: {status:?}");
                assert!(status.message().contains("signature"), "{attack}: {status:?}");
            }
        }
    }
    if !hub.records_of(SIRETS[3], Dataset::Indicators)?.is_empty() {
        failures.push("the forged structure has records upstream".into());
    }
    for (key, record) in hub.records_of(SIRETS[0], Dataset::Indicators)? {
        let hires = record.indicators.as_ref().and_then(|r| r.fields.as_ref()).map(|f| f.hires);
        let expected = match key.as_str() {
            "2026-07" | "2026-08" => Some(5),
            "2026-09" => Some(3),
            _ => Some(1),
        };
        if hires != expected || !record.sources.iter().all(|s| s == "coorace-pdl") {
            failures.push(format!("S0's {key}: {hires:?} hires from {:?}", record.sources));
        }
    }
    // The resurrected need is a genuine copy, signed by S0: indistinguishable from a late relay,
    // so it may be acknowledged, but it stays below the floor its deletion left.
    let _ = resurrected_outcome;
    if hub.records_of(SIRETS[0], Dataset::Needs)?.iter().any(|(_, r)| r.is_live()) {
        failures.push("S0's deleted need is live upstream".into());
    }
    for (key, cell) in hub.stat_cells("i/")? {
        let key = String::from_utf8_lossy(&key).into_owned();
        for c in &cell.contributions {
            if c.siret != SIRETS[0] || !key.ends_with("/49/aci") || c.values[3] > 5 {
                failures.push(format!("counted: {} in {key}: {:?}", c.siret, c.values));
            }
        }
    }
    for (key, cell) in hub.stat_cells("n/")? {
        if !cell.contributions.is_empty() {
            failures.push(format!("a need is counted in {}", String::from_utf8_lossy(&key)));
        }
    }
    assert!(failures.is_empty(), "the hostile relay got through:\n{}", failures.join("\n"));
    Ok(())
}

/// Waits (bounded) until the consolidation hub counts `count` structures' reports for `period`.
async fn wait_reported(operator: &HubClient, period: &str, count: u32) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let periods = operator.periods().await?;
        if periods.iter().any(|p| p.period == period && p.reported == count) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{period} never had {count} reports: {periods:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The certificates (DER) of a PEM file.
fn der_of(files: &TlsFiles) -> anyhow::Result<Vec<Vec<u8>>> {
    Ok(passerelle_daemon::tls::load_certs(&files.cert)?.into_iter().map(|c| c.to_vec()).collect())
}

/// The relayed form of a node's report for `period`, as a network hub holding it would send it.
fn relayed_report(node: &passerelle_daemon::node::Node, period: &str) -> anyhow::Result<Change> {
    let entry = passerelle_daemon::node::outbox::OutboxEntry {
        dataset: "indicators".into(),
        key: period.into(),
        change: None,
    };
    let mut change = node.change_for(&entry, "dreets-52")?.ok_or_else(|| anyhow::anyhow!("no {period}"))?;
    anyhow::ensure!(!change.signature.is_empty(), "the node signed its report");
    change.origin = Some(node.structure().clone());
    change.origin_epoch = node.identity().epoch.to_vec();
    change.origin_epoch_created_at_ms = node.identity().created_at_ms;
    Ok(change)
}

/// A renewed certificate keeps the identity and history: records signed by the old one stay, new
/// ones are signed by the new one. A record signed while its certificate was valid is accepted
/// after it expired; once its serial is denied, what it signs is not counted.
#[tokio::test(flavor = "multi_thread")]
async fn signatures_outlive_renewal_and_expiry_but_not_revocation() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let dreets_config = pki.write_hub_config("dreets-52", "auto_accept = true\ndenied_serials = []", "")?;
    let dreets = InProcessDaemon::start_config(&dreets_config).await?;
    let upstream = pki.upstream_section("dreets-52", &dreets.hub_endpoint());
    let coorace = InProcessDaemon::start_config(&pki.write_hub_config(
        "coorace-pdl",
        "auto_accept = true",
        &upstream,
    )?)
    .await?;
    let operator = HubClient::connect(&dreets.endpoint, None).await?;
    let hubs = [("coorace-pdl", coorace.hub_endpoint(), &["indicators"][..])];

    // S0 reports July with its first certificate, then August with a renewed one.
    let s0 = InProcessDaemon::start_config(&pki.write_node_config(SIRETS[0], "49", &hubs)?).await?;
    NodeClient::connect(&s0.endpoint, None).await?.submit_indicators(report("2026-07")).await?;
    NodeClient::connect(&s0.endpoint, None).await?.sync_now(true, Duration::from_secs(30)).await?;
    wait_reported(&operator, "2026-07", 1).await?;
    s0.stop().await?;
    let renewed = pki.renew(Role::Node, SIRETS[0])?;
    let s0 =
        InProcessDaemon::start_config(&pki.write_node_config_with(&renewed, SIRETS[0], "49", &hubs)?).await?;
    let mut client = NodeClient::connect(&s0.endpoint, None).await?;
    client.submit_indicators(report("2026-08")).await?;
    client.sync_now(true, Duration::from_secs(30)).await?;
    wait_reported(&operator, "2026-08", 1).await?;

    // S3 signs July and August while its certificate is valid; it expires; a network hub
    // relays July now.
    let (expiring, not_after) = pki.issue_expiring(Role::Node, SIRETS[3], 2)?;
    let structure = passerelle_proto::v1::Structure {
        siret: SIRETS[3].into(),
        kind: StructureKind::Ei as i32,
        name: "Structure S3".into(),
        departement: "44".into(),
    };
    let s3 = passerelle_daemon::node::Node::open(&dir.path().join("s3-data"), structure)?
        .with_signer(passerelle_daemon::tls::signing::RecordSigner::load(&expiring.cert, &expiring.key)?)?;
    s3.submit_indicators(Some(report("2026-07")))?;
    s3.submit_indicators(Some(report("2026-08")))?;
    let (july, august) = (relayed_report(&s3, "2026-07")?, relayed_report(&s3, "2026-08")?);
    TestPki::until_expired(not_after).await;
    let mut september = report("2026-09");
    september.hires = 1;
    s3.submit_indicators(Some(september))?;
    let unsigned = s3.signature_of(Dataset::Indicators, "2026-09")?;
    assert!(unsigned.is_none(), "a node signs nothing with an expired certificate: {unsigned:?}");
    let relay = pki.issue(Role::Hub, "fas-pdl")?;
    let endpoint = dreets.hub_endpoint();
    let july = relay_as(&relay, &endpoint, vec![july], &der_of(&expiring)?).await?;
    assert!(july.is_ok(), "a record signed while its certificate was valid: {july:?}");
    wait_reported(&operator, "2026-07", 2).await?;

    // S3's certificate is revoked: what it signed is no longer taken.
    let serial = TestPki::serial(&expiring)?;
    let text = std::fs::read_to_string(&dreets_config)?;
    std::fs::write(
        &dreets_config,
        text.replace("denied_serials = []", &format!("denied_serials = [\"{serial}\"]")),
    )?;
    operator.reload().await?;
    let august = relay_as(&relay, &endpoint, vec![august], &der_of(&expiring)?).await?;
    drop(s3);

    s0.stop().await?;
    coorace.stop().await?;
    dreets.stop().await?;
    let config = passerelle_daemon::Config::load(&dreets_config)?;
    let settings = config.hub().cloned().ok_or_else(|| anyhow::anyhow!("hub config"))?;
    let hub = passerelle_daemon::hub::Hub::open(&config.data_dir, settings, Default::default())?;
    let s0_records = hub.records_of(SIRETS[0], Dataset::Indicators)?;
    let fingerprints: std::collections::BTreeSet<Vec<u8>> = s0_records
        .iter()
        .filter(|(_, r)| r.is_live())
        .map(|(_, r)| r.certificate_fingerprint.clone())
        .collect();
    assert_eq!(s0_records.len(), 2, "July (old certificate) and August (renewed) are both held");
    assert_eq!(fingerprints.len(), 2, "each signed by the certificate of its commit");
    let s3_records: Vec<String> =
        hub.records_of(SIRETS[3], Dataset::Indicators)?.into_iter().map(|(key, _)| key).collect();
    assert_eq!(s3_records, ["2026-07"], "August, signed by a denied serial, is not taken: {august:?}");
    let s3_cells = hub
        .stat_cells("i/")?
        .values()
        .flat_map(|cell| cell.contributions.iter())
        .filter(|c| c.siret == SIRETS[3])
        .count();
    assert_eq!(s3_cells, 1, "S3 counted for July only");
    Ok(())
}

/// `hub remove` of a relaying hub purges it from every record's sources: what only it relayed
/// goes with its statistics, what another hub relays stays; and a hub no longer accepted
/// relays nothing.
#[tokio::test(flavor = "multi_thread")]
async fn removing_a_relaying_hub_purges_what_only_it_relayed() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let dreets_config = pki.write_hub_config("dreets-52", "", "")?;
    let dreets = InProcessDaemon::start_config(&dreets_config).await?;
    let operator = HubClient::connect(&dreets.endpoint, None).await?;
    operator.accept("coorace-pdl").await?;
    operator.accept("evil-pdl").await?;
    let upstream = pki.upstream_section("dreets-52", &dreets.hub_endpoint());
    let coorace = InProcessDaemon::start_config(&pki.write_hub_config(
        "coorace-pdl",
        "auto_accept = true",
        &upstream,
    )?)
    .await?;
    let evil_config = pki.write_hub_config("evil-pdl", "auto_accept = true", "")?;
    let evil = InProcessDaemon::start_config(&evil_config).await?;

    // S0 is in both networks; S1 only in evil-pdl's.
    let shared: &[&str] = &["indicators"];
    let s0 = InProcessDaemon::start_config(&pki.write_node_config(
        SIRETS[0],
        "49",
        &[("coorace-pdl", coorace.hub_endpoint(), shared), ("evil-pdl", evil.hub_endpoint(), shared)],
    )?)
    .await?;
    let s1 = InProcessDaemon::start_config(&pki.write_node_config(
        SIRETS[1],
        "49",
        &[("evil-pdl", evil.hub_endpoint(), shared)],
    )?)
    .await?;
    for node in [&s0, &s1] {
        let mut client = NodeClient::connect(&node.endpoint, None).await?;
        client.submit_indicators(report("2026-07")).await?;
        client.sync_now(true, Duration::from_secs(30)).await?;
    }
    wait_reported(&operator, "2026-07", 1).await?;
    s0.stop().await?;
    s1.stop().await?;
    evil.stop().await?;
    let captured = {
        let config = passerelle_daemon::Config::load(&evil_config)?;
        let settings = config.hub().cloned().ok_or_else(|| anyhow::anyhow!("hub config"))?;
        let hub = passerelle_daemon::hub::Hub::open(&config.data_dir, settings, Default::default())?;
        let mut out = Vec::new();
        for siret in [SIRETS[0], SIRETS[1]] {
            let change = hub.relayed(siret, Dataset::Indicators, "2026-07", "dreets-52")?;
            out.push(change.ok_or_else(|| anyhow::anyhow!("evil-pdl holds {siret}'s July"))?);
        }
        out
    };
    let mut certificates = der_of(&pki.issue(Role::Node, SIRETS[0])?)?;
    certificates.extend(der_of(&pki.issue(Role::Node, SIRETS[1])?)?);
    let evil_tls = pki.issue(Role::Hub, "evil-pdl")?;
    let endpoint = dreets.hub_endpoint();
    let relayed = relay_as(&evil_tls, &endpoint, captured.clone(), &certificates).await?;
    assert!(relayed.is_ok(), "genuine records from an accepted hub: {relayed:?}");
    wait_reported(&operator, "2026-07", 2).await?;

    operator.remove("evil-pdl").await?;
    wait_reported(&operator, "2026-07", 1).await?;
    let again = relay_as(&evil_tls, &endpoint, captured, &certificates).await?;
    assert!(
        matches!(&again, Err(status) if status.code() == tonic::Code::PermissionDenied),
        "a removed hub relays nothing: {again:?}"
    );

    coorace.stop().await?;
    dreets.stop().await?;
    let config = passerelle_daemon::Config::load(&dreets_config)?;
    let settings = config.hub().cloned().ok_or_else(|| anyhow::anyhow!("hub config"))?;
    let hub = passerelle_daemon::hub::Hub::open(&config.data_dir, settings, Default::default())?;
    assert!(hub.records_of(SIRETS[1], Dataset::Indicators)?.is_empty(), "only evil-pdl relayed S1");
    let s0_sources: Vec<Vec<String>> =
        hub.records_of(SIRETS[0], Dataset::Indicators)?.into_iter().map(|(_, r)| r.sources).collect();
    assert_eq!(s0_sources, [vec!["coorace-pdl".to_string()]]);
    for cell in hub.stat_cells("i/")?.values() {
        assert!(cell.contributions.iter().all(|c| c.siret == SIRETS[0]), "{cell:?}");
    }
    Ok(())
}

/// A node store written before signatures opens: its records are signed at start, and they are
/// relayed (a hub relays no unsigned record) and counted upstream.
#[tokio::test(flavor = "multi_thread")]
async fn a_store_from_before_signatures_is_signed_at_start() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let dreets =
        InProcessDaemon::start_config(&pki.write_hub_config("dreets-52", "auto_accept = true", "")?).await?;
    let upstream = pki.upstream_section("dreets-52", &dreets.hub_endpoint());
    let coorace = InProcessDaemon::start_config(&pki.write_hub_config(
        "coorace-pdl",
        "auto_accept = true",
        &upstream,
    )?)
    .await?;
    let config = pki.write_node_config(
        SIRETS[0],
        "49",
        &[("coorace-pdl", coorace.hub_endpoint(), &["indicators"][..])],
    )?;
    {
        // The store as an older node left it: a report committed without any signature.
        let valid = passerelle_daemon::Config::load(&config)?;
        let structure = match &valid.role {
            passerelle_daemon::RoleConfig::Node(node) => node.structure.clone(),
            passerelle_daemon::RoleConfig::Hub(_) => anyhow::bail!("a node config"),
        };
        let node = passerelle_daemon::node::Node::open(&valid.data_dir, structure)?;
        node.submit_indicators(Some(report("2026-07")))?;
        anyhow::ensure!(node.signature_of(Dataset::Indicators, "2026-07")?.is_none(), "unsigned");
    }
    let s0 = InProcessDaemon::start_config(&config).await?;
    NodeClient::connect(&s0.endpoint, None).await?.sync_now(true, Duration::from_secs(30)).await?;
    let operator = HubClient::connect(&dreets.endpoint, None).await?;
    wait_reported(&operator, "2026-07", 1).await?;
    s0.stop().await?;
    coorace.stop().await?;
    dreets.stop().await
}
