//! Catch-up after issue 18's changes, on the real path: the change an outbox entry keeps is the
//! one the node would compute afresh; profiles queued offline are still consent-checked when
//! sent; a hub refuses one bad batch among good ones with its own status.

use std::collections::BTreeMap;
use std::time::Duration;

use passerelle_client::NodeClient;
use passerelle_daemon::node::Node;
use passerelle_daemon::tls::signing::RecordSigner;
use passerelle_proto::identity::Role;
use passerelle_proto::signed::{Origin, Signed, signed_bytes};
use passerelle_proto::v1::hub_sync_client::HubSyncClient;
use passerelle_proto::v1::{
    Barrier, Batch, Change, ConsentPurpose, ContractType, Exits, GrantConsentRequest, HelloRequest,
    IndicatorFields, NeedFields, NeedStatus, PersonFields, PushMessage, PushOpen, SharedNeed, Structure,
    StructureKind, WithdrawConsentRequest, change, push_message, push_reply,
};
use passerelle_tests::pki::{SIRETS, TestPki};
use passerelle_tests::{InProcessDaemon, free_port, hub_profiles_on_disk, hub_records_on_disk};
use tokio_stream::wrappers::ReceiverStream;

fn need(rome: &str, open_positions: u32) -> NeedFields {
    NeedFields {
        rome_code: rome.into(),
        title: "Poste".into(),
        contract_type: ContractType::Cddi as i32,
        open_positions,
        hours_per_week: 26,
        departement: "49".into(),
        commune: "49007".into(),
        start_date: "2027-01-04".into(),
        client: Some("Mme Dupont".into()),
        ..Default::default()
    }
}

fn report(period: &str, hires: u32) -> IndicatorFields {
    IndicatorFields {
        period: period.into(),
        etp_hundredths: 1250,
        employees_in_insertion: 20,
        hours_worked: 1700,
        hires,
        exits: Some(Exits { total: 4, durable: 1, transition: 1, positive: 1, other: 1 }),
    }
}

fn structure(name: &str) -> Structure {
    Structure {
        siret: SIRETS[0].into(),
        kind: StructureKind::Ai as i32,
        name: name.into(),
        departement: "49".into(),
    }
}

/// Every record's last outbox entry: the change it keeps, fitted to the hub, is the change the
/// node computes afresh from its store (needs created, updated, closed, deleted; reports
/// submitted and corrected), and it still is after the structure's name changes (the signed
/// structure then travels with the change).
#[test]
fn the_kept_change_is_what_the_node_would_compute_afresh() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let files = pki.issue(Role::Node, SIRETS[0])?;
    let data = dir.path().join("data");
    let node = Node::open(&data, structure("Tremplin"))?
        .with_signer(RecordSigner::load(&files.cert, &files.key)?)?;
    let a = node.create_need(Some(need("K2204", 1)))?;
    let b = node.create_need(Some(need("G1602", 2)))?;
    let c = node.create_need(Some(need("N1103", 3)))?;
    node.update_need(&a.id, Some(need("K2204", 4)), None)?;
    node.close_need(&b.id, NeedStatus::Filled as i32)?;
    node.delete_need(&c.id)?;
    node.submit_indicators(Some(report("2026-10", 1)))?;
    node.submit_indicators(Some(report("2026-11", 2)))?;
    node.submit_indicators(Some(report("2026-10", 3)))?;

    let check = |node: &Node, origin_expected: bool| -> anyhow::Result<usize> {
        let mut last = BTreeMap::new();
        for (_, entry) in node.outbox_after(0, usize::MAX)? {
            last.insert((entry.dataset.clone(), entry.key.clone()), entry);
        }
        for entry in last.values() {
            anyhow::ensure!(entry.change.is_some(), "{} {}: no change kept", entry.dataset, entry.key);
            let kept = node.change_to_send(entry.clone(), "coorace-pdl")?;
            let fresh = node.change_for(entry, "coorace-pdl")?;
            assert_eq!(kept, fresh, "{} {}", entry.dataset, entry.key);
            let kept = kept.ok_or_else(|| anyhow::anyhow!("no change"))?;
            assert!(!kept.signature.is_empty(), "{} {}: signed", entry.dataset, entry.key);
            assert_eq!(kept.origin.is_some(), origin_expected, "{} {}", entry.dataset, entry.key);
            if let Some(change::Payload::Tombstone(t)) = &kept.payload {
                assert_eq!(t.hub_id, "coorace-pdl", "a tombstone names the hub it is sent to");
            }
        }
        Ok(last.len())
    };
    assert_eq!(check(&node, false)?, 5, "three needs and two months");
    drop(node);
    // Renamed: what was signed under the old name carries it.
    let node = Node::open(&data, structure("Tremplin Travail"))?
        .with_signer(RecordSigner::load(&files.cert, &files.key)?)?;
    assert_eq!(check(&node, true)?, 5);
    Ok(())
}

fn person(first: &str, rome: &str) -> PersonFields {
    PersonFields {
        first_name: first.into(),
        last_name: "Martin".into(),
        birth_date: "1990-04-02".into(),
        commune: "49007".into(),
        rome_codes: vec![rome.into()],
        available_from: "2026-12-07".into(),
        hours_per_week: Some(24),
        mobility_km: Some(15),
        barriers: vec![Barrier::Mobilite as i32],
        ..Default::default()
    }
}

fn grant(person_id: &str) -> GrantConsentRequest {
    GrantConsentRequest {
        person_id: person_id.into(),
        purpose: ConsentPurpose::Placement as i32,
        hub_id: "coorace-pdl".into(),
        text_version: "2026-01".into(),
        collected_by: "accueil".into(),
    }
}

/// A profile change queued while the hub is down, then its consent withdrawn before the node
/// reconnects: the hub never receives that profile (consent is checked when sending, not when
/// queueing), while a person whose consent stands arrives, and so do the needs queued with them.
#[tokio::test(flavor = "multi_thread")]
async fn consent_withdrawn_after_a_profile_was_queued_offline_wins() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let port = free_port()?;
    let hub_config = pki.write_hub_config_on("coorace-pdl", port, "auto_accept = true", "")?;
    let hub = InProcessDaemon::start_config(&hub_config).await?;
    let node = InProcessDaemon::start_config(&pki.write_node_config(
        SIRETS[0],
        "49",
        &[("coorace-pdl", format!("https://localhost:{port}"), &["needs", "profiles"])],
    )?)
    .await?;
    let mut n = NodeClient::connect(&node.endpoint, None).await?;
    n.sync_now(true, Duration::from_secs(30)).await?;
    hub.stop().await?;

    // Offline: both persons' profiles are queued; one consent is then withdrawn.
    let withdrawn = n.add_person(person("Camille", "K2204")).await?;
    let kept = n.add_person(person("Dominique", "G1602")).await?;
    n.grant_consent(grant(&withdrawn.id)).await?;
    n.grant_consent(grant(&kept.id)).await?;
    let queued = n.create_need(need("N1103", 1)).await?;
    n.withdraw_consent(WithdrawConsentRequest {
        person_id: withdrawn.id.clone(),
        purpose: ConsentPurpose::Placement as i32,
        hub_id: "coorace-pdl".into(),
    })
    .await?;

    let hub = InProcessDaemon::start_config(&hub_config).await?;
    n.sync_now(true, Duration::from_secs(30)).await?;
    node.stop().await?;
    hub.stop().await?;
    let profiles = hub_profiles_on_disk(&hub_config, SIRETS[0])?;
    let codes: Vec<&str> = profiles.iter().flat_map(|p| p.rome_codes.iter().map(String::as_str)).collect();
    assert_eq!(codes, ["G1602"], "only the profile whose consent stands reached the hub");
    let records = hub_records_on_disk(&hub_config, SIRETS[0], "profiles")?;
    assert_eq!(records.len(), 1, "not even a copy of the withdrawn profile: {records:?}");
    let needs = hub_records_on_disk(&hub_config, SIRETS[0], "needs")?;
    assert!(needs.iter().any(|(key, _, live)| *key == queued.id && *live), "the queued need arrived");
    Ok(())
}

/// A member pushing [good, bad, good] back to back: the first is acknowledged, the bad one ends
/// the stream with its own status (`INVALID_ARGUMENT`, naming the field), and the hub holds
/// the good batch whole and nothing of the bad one (not even its valid change).
#[tokio::test(flavor = "multi_thread")]
async fn a_bad_batch_between_good_ones_is_refused_alone() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub_config = pki.write_hub_config("coorace-pdl", "auto_accept = true", "")?;
    let hub = InProcessDaemon::start_config(&hub_config).await?;
    let files = pki.issue(Role::Node, SIRETS[0])?;
    let signer = RecordSigner::load(&files.cert, &files.key)?;
    let me = structure("Tremplin");
    let epoch = vec![7; 16];
    let origin = Origin { structure: &me, epoch: &epoch, epoch_created_at_ms: 1 };
    let change = |n: u32, rome: &str| -> anyhow::Result<Change> {
        let key = format!("01920000-0000-7000-8000-{n:012}");
        let need = SharedNeed {
            origin_siret: SIRETS[0].into(),
            need_id: key.clone(),
            origin_version: 1,
            rome_code: rome.into(),
            contract_type: ContractType::Cddi as i32,
            open_positions: 1,
            hours_per_week: 24,
            departement: "49".into(),
            start_date: "2027-01-04".into(),
            status: NeedStatus::Open as i32,
            ..Default::default()
        };
        let signature = signer.sign(&signed_bytes(origin, "needs", &key, 1, Signed::Need(&need)))?;
        Ok(Change {
            dataset: "needs".into(),
            key,
            version: 1,
            payload: Some(change::Payload::Need(need)),
            signature,
            certificate_fingerprint: signer.fingerprint().to_vec(),
            ..Default::default()
        })
    };
    let batches = [
        Batch {
            seq: 2,
            changes: vec![change(1, "K2204")?, change(2, "K2204")?],
            head_seq: 6,
            ..Default::default()
        },
        Batch {
            seq: 4,
            changes: vec![change(3, "K2204")?, change(4, "K22")?],
            head_seq: 6,
            ..Default::default()
        },
        Batch {
            seq: 6,
            changes: vec![change(5, "K2204")?, change(6, "K2204")?],
            head_seq: 6,
            ..Default::default()
        },
    ];
    let channel = passerelle_client::connect(&hub.hub_endpoint(), Some(&files), "hub").await?;
    let mut client = HubSyncClient::new(channel);
    client.hello(HelloRequest { structure: Some(me.clone()) }).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let open = PushOpen {
        structure: Some(me.clone()),
        epoch: epoch.clone(),
        datasets: vec!["needs".into()],
        head_seq: 6,
        epoch_created_at_ms: 1,
        certificates: vec![signer.certificate().to_vec()],
        ..Default::default()
    };
    tx.send(PushMessage { kind: Some(push_message::Kind::Open(open)) }).await?;
    let mut replies = client.push(ReceiverStream::new(rx)).await?.into_inner();
    anyhow::ensure!(
        matches!(replies.message().await?.and_then(|r| r.kind), Some(push_reply::Kind::Accepted(_))),
        "the session is accepted"
    );
    for batch in batches {
        tx.send(PushMessage { kind: Some(push_message::Kind::Batch(batch)) }).await?;
    }
    match replies.message().await?.and_then(|r| r.kind) {
        Some(push_reply::Kind::Ack(ack)) => assert_eq!(ack.seq, 2, "the first batch is acknowledged"),
        other => anyhow::bail!("expected the first batch's ack, got {other:?}"),
    }
    let status = match replies.message().await {
        Err(status) => status,
        Ok(other) => anyhow::bail!("expected the bad batch's refusal, got {other:?}"),
    };
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("rome_code"), "{status:?}");
    drop(tx);
    hub.stop().await?;
    let held: BTreeMap<String, u64> = hub_records_on_disk(&hub_config, SIRETS[0], "needs")?
        .into_iter()
        .map(|(key, version, _)| (key, version))
        .collect();
    let key = |n: u32| format!("01920000-0000-7000-8000-{n:012}");
    assert!(held.contains_key(&key(1)) && held.contains_key(&key(2)), "the good batch, whole: {held:?}");
    assert!(!held.contains_key(&key(3)) && !held.contains_key(&key(4)), "nothing of the bad one: {held:?}");
    Ok(())
}
