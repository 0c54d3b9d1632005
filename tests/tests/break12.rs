//! Attacks on issue 12 (records signed at their origin, identities bound to their CA), as a
//! member holding valid certificates would try them: hostile tonic clients speaking the wire
//! protocol to real daemons over mutual TLS.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use passerelle_client::{HubClient, NodeClient, TlsFiles};
use passerelle_daemon::tls::signing::RecordSigner;
use passerelle_proto::identity::Role;
use passerelle_proto::signed::{Origin, Signed, signed_bytes};
use passerelle_proto::v1::hub_sync_client::HubSyncClient;
use passerelle_proto::v1::push_message::Kind;
use passerelle_proto::v1::{
    Batch, Change, HelloRequest, IndicatorReport, PushMessage, PushOpen, Structure, StructureKind, Tombstone,
    change, push_reply,
};
use passerelle_tests::fixtures::{need, report};
use passerelle_tests::hostile::relay_as;
use passerelle_tests::pki::{SIRETS, TestPki};
use passerelle_tests::{InProcessDaemon, hub_records_on_disk};

fn structure(siret: &str) -> Structure {
    Structure {
        siret: siret.into(),
        kind: StructureKind::Aci as i32,
        name: "S".into(),
        departement: "49".into(),
    }
}

/// A July report of `siret` signed with the key of `node` (a node certificate and its key), as
/// its relayed form: the change and the signing certificate (DER).
fn signed_report(
    node: &TlsFiles,
    siret: &str,
    epoch: &[u8],
    epoch_at_ms: i64,
    version: u64,
    hires: u32,
) -> anyhow::Result<(Change, Vec<u8>)> {
    signed_report_for(node, "2026-07", siret, epoch, epoch_at_ms, version, hires)
}

/// The report of `period`, as [`signed_report`].
fn signed_report_for(
    node: &TlsFiles,
    period: &str,
    siret: &str,
    epoch: &[u8],
    epoch_at_ms: i64,
    version: u64,
    hires: u32,
) -> anyhow::Result<(Change, Vec<u8>)> {
    let signer = RecordSigner::load(&node.cert, &node.key)?;
    let mut fields = report(period);
    fields.hires = hires;
    let report = IndicatorReport { siret: siret.into(), fields: Some(fields), version, submitted_at_ms: 1 };
    let origin = structure(siret);
    let bytes = signed_bytes(
        Origin { structure: &origin, epoch, epoch_created_at_ms: epoch_at_ms },
        "indicators",
        period,
        version,
        Signed::Indicators(&report),
    );
    let change = Change {
        dataset: "indicators".into(),
        key: period.into(),
        version,
        payload: Some(change::Payload::Indicators(report)),
        origin: Some(origin),
        origin_epoch: epoch.to_vec(),
        origin_epoch_created_at_ms: epoch_at_ms,
        signature: signer.sign(&bytes)?,
        certificate_fingerprint: signer.fingerprint().to_vec(),
    };
    Ok((change, signer.certificate().to_vec()))
}

/// A consolidation hub `dreets-52` (state CA) trusting the CAs of `fas` and `coorace` for nodes
/// and hubs, as `[[hub.trust]]` anchors; returns its config path.
fn consolidation(dir: &Path, state: &TestPki, fas: &TestPki, coorace: &TestPki) -> anyhow::Result<PathBuf> {
    let own = state.issue(Role::Hub, "dreets-52")?;
    let path = dir.join("dreets-52.toml");
    std::fs::write(
        &path,
        format!(
            "data_dir = \"dreets-data\"\n\n[hub]\nid = \"dreets-52\"\nnetwork = \"dreets\"\nregion = \"52\"\nlisten = \"127.0.0.1:0\"\nauto_accept = true\n\n[hub.tls]\ncert = \"{}\"\nkey = \"{}\"\n\n[[hub.trust]]\nca = \"{}\"\nnetwork = \"dreets\"\nroles = [\"consumer\", \"operator\"]\n\n[[hub.trust]]\nca = \"{}\"\nnetwork = \"fas\"\nroles = [\"node\", \"hub\"]\n\n[[hub.trust]]\nca = \"{}\"\nnetwork = \"coorace\"\nroles = [\"node\", \"hub\"]\n\n[api]\nlisten = \"127.0.0.1:0\"\n",
            own.cert.display(),
            own.key.display(),
            state.ca_pem().display(),
            fas.ca_pem().display(),
            coorace.ca_pem().display(),
        ),
    )?;
    Ok(path)
}

/// Attack: coorace's network hub (whose CA the consolidation hub trusts for coorace's nodes and
/// hub) mints with its own CA a node certificate naming a structure of *fas*, signs a report of
/// that structure dated into a store "created" at the end of time, and relays it. Fas relays the
/// structure's genuine versions. Origin certificates are checked against the union of every
/// anchor's CA, never against the relaying hub's network, so coorace's forgery is taken and its
/// floor hides every genuine later version.
#[tokio::test(flavor = "multi_thread")]
async fn a_network_cannot_sign_for_another_networks_structure() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let state = TestPki::for_network(&dir.path().join("state"), "dreets")?;
    let fas = TestPki::for_network(&dir.path().join("fas"), "fas")?;
    let coorace = TestPki::for_network(&dir.path().join("coorace"), "coorace")?;
    let config = consolidation(dir.path(), &state, &fas, &coorace)?;
    let dreets = InProcessDaemon::start_config(&config).await?;
    let endpoint = dreets.hub_endpoint();
    let client = |pki: &TestPki, role, id: &str| -> anyhow::Result<TlsFiles> {
        Ok(TlsFiles { ca: state.ca_pem(), ..pki.issue(role, id)? })
    };
    let fas_pdl = client(&fas, Role::Hub, "fas-pdl")?;
    let coorace_pdl = client(&coorace, Role::Hub, "coorace-pdl")?;
    // S0 is a fas structure: its genuine certificate is fas's.
    let genuine = fas.issue(Role::Node, SIRETS[0])?;
    let minted = coorace.issue(Role::Node, SIRETS[0])?;

    let (v1, cert) = signed_report(&genuine, SIRETS[0], &[1; 16], 1_000, 1, 3)?;
    relay_as(&fas_pdl, &endpoint, vec![v1], std::slice::from_ref(&cert))
        .await?
        .map_err(anyhow::Error::from)?;
    let (forged, minted_cert) = signed_report(&minted, SIRETS[0], &[0xee; 16], i64::MAX, 1, 99)?;
    let forged_outcome = relay_as(&coorace_pdl, &endpoint, vec![forged], &[minted_cert]).await?;
    let (v2, _) = signed_report(&genuine, SIRETS[0], &[1; 16], 1_000, 2, 5)?;
    relay_as(&fas_pdl, &endpoint, vec![v2], &[cert]).await?.map_err(anyhow::Error::from)?;
    dreets.stop().await?;

    let held = hub_records_on_disk(&config, SIRETS[0], "indicators")?;
    // The origin is pinned to fas (the network that first signed for it here): coorace's namesake
    // certificate signs nothing for it — the record is ignored, like any record signed by a
    // certificate this hub does not trust for that origin, and sets no floor.
    let _ = forged_outcome;
    assert_eq!(held, vec![("2026-07".to_string(), 2, true)], "the genuine version 2 is held");
    Ok(())
}

/// Waits (bounded) until the hub's member `id` holds `count` live records.
async fn wait_held(operator: &HubClient, id: &str, count: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let held = operator.members().await?.iter().find(|m| m.id == id).map(|m| m.records_held);
        if held == Some(count) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{id} never held {count} records: {held:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Attack: a hub that both serves nodes directly and takes relays from hubs. A relaying member
/// sends an *unsigned* tombstone ("I no longer relay this record") for a need a node pushed
/// directly. Such a record has no relay sources, so "no source left" held and the hub deleted
/// it (before the fix): a relay withdrew a record it never carried, without any signature.
#[tokio::test(flavor = "multi_thread")]
async fn a_relay_cannot_withdraw_a_record_it_never_relayed() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let config = pki.write_hub_config("dreets-52", "auto_accept = true", "")?;
    let dreets = InProcessDaemon::start_config(&config).await?;
    let operator = HubClient::connect(&dreets.endpoint, None).await?;
    let s0 = InProcessDaemon::start_config(&pki.write_node_config(
        SIRETS[0],
        "49",
        &[("dreets-52", dreets.hub_endpoint(), &["needs"][..])],
    )?)
    .await?;
    let mut node = NodeClient::connect(&s0.endpoint, None).await?;
    let need_id = node.create_need(need(0)).await?.id;
    node.sync_now(true, Duration::from_secs(30)).await?;
    wait_held(&operator, SIRETS[0], 1).await?;
    s0.stop().await?;

    let evil = pki.issue(Role::Hub, "evil-pdl")?;
    let withdrawal = Change {
        dataset: "needs".into(),
        key: need_id.clone(),
        version: 1,
        payload: Some(change::Payload::Tombstone(Tombstone {
            origin_siret: SIRETS[0].into(),
            hub_id: "dreets-52".into(),
            reason: String::new(),
        })),
        origin: Some(structure(SIRETS[0])),
        origin_epoch: vec![0xe1; 16],
        origin_epoch_created_at_ms: 1,
        ..Default::default()
    };
    let outcome = relay_as(&evil, &dreets.hub_endpoint(), vec![withdrawal], &[]).await?;
    dreets.stop().await?;

    let held = hub_records_on_disk(&config, SIRETS[0], "needs")?;
    assert!(
        held.iter().any(|(key, _, live)| *key == need_id && *live),
        "S0's directly pushed need is gone after evil-pdl's unsigned withdrawal ({outcome:?}): {held:?}"
    );
    Ok(())
}

/// Attack: with the `client_cas` shorthand, a further CA's network is read from its own subject.
/// A hostile network that named its CA `Passerelle CA fas` got its certificates taken as fas's
/// (before the fix): its `passerelle://hub/fas-pdl` was the accepted fas member. Now the config
/// is refused, naming the field and the line.
#[tokio::test(flavor = "multi_thread")]
async fn a_ca_named_like_another_network_does_not_speak_for_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let state = TestPki::for_network(&dir.path().join("state"), "dreets")?;
    let fas = TestPki::for_network(&dir.path().join("fas"), "fas")?;
    // Coorace's CA, which its operator named after fas.
    let hostile = TestPki::for_network(&dir.path().join("coorace"), "fas")?;
    let own = state.issue(Role::Hub, "dreets-52")?;
    let config = dir.path().join("dreets-52.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"dreets-data\"\n\n[hub]\nid = \"dreets-52\"\nnetwork = \"dreets\"\nregion = \"52\"\nlisten = \"127.0.0.1:0\"\nauto_accept = true\n\n[hub.tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_cas = [\"{}\", \"{}\", \"{}\"]\n\n[api]\nlisten = \"127.0.0.1:0\"\n",
            own.cert.display(),
            own.key.display(),
            state.ca_pem().display(),
            fas.ca_pem().display(),
            hostile.ca_pem().display(),
        ),
    )?;
    // The hub refuses the ambiguous config (or, failing that, the impostor).
    if let Err(err) = passerelle_daemon::Config::load(&config) {
        let err = err.to_string();
        assert!(err.contains("hub.tls.client_cas") && err.contains("names network fas"), "{err}");
        return Ok(());
    }
    let hub = InProcessDaemon::start_config(&config).await?;
    let client = |pki: &TestPki, id: &str| -> anyhow::Result<TlsFiles> {
        Ok(TlsFiles { ca: state.ca_pem(), ..pki.issue(Role::Hub, id)? })
    };
    let genuine = HubClient::connect(&hub.hub_endpoint(), Some(&client(&fas, "fas-pdl")?)).await?;
    genuine.hello(None).await?;
    let impostor = HubClient::connect(&hub.hub_endpoint(), Some(&client(&hostile, "fas-pdl")?)).await?;
    let outcome = impostor.hello(None).await;
    hub.stop().await?;
    assert!(outcome.is_err(), "coorace's fas-pdl passed for fas's accepted fas-pdl");
    Ok(())
}

/// Attack: a relay keeps one push stream open while the operator denies a structure's serial and
/// reloads. The origin certificates a session learnt were cached with it, so records the revoked
/// key signed kept being taken on that stream (before the fix).
#[tokio::test(flavor = "multi_thread")]
async fn a_serial_denied_mid_stream_signs_nothing_more() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let config = pki.write_hub_config("dreets-52", "auto_accept = true\ndenied_serials = []", "")?;
    let dreets = InProcessDaemon::start_config(&config).await?;
    let operator = HubClient::connect(&dreets.endpoint, None).await?;
    let s3 = pki.issue(Role::Node, SIRETS[3])?;
    let relay = pki.issue(Role::Hub, "fas-pdl")?;

    let channel = passerelle_client::connect(&dreets.hub_endpoint(), Some(&relay), "hub").await?;
    let mut client = HubSyncClient::new(channel);
    client.hello(HelloRequest { structure: None }).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(PushMessage {
        kind: Some(Kind::Open(PushOpen {
            epoch: vec![0xe1; 16],
            datasets: vec!["indicators".into()],
            epoch_created_at_ms: 1,
            head_seq: 2,
            ..Default::default()
        })),
    })
    .await?;
    let mut replies = client.push(tokio_stream::wrappers::ReceiverStream::new(rx)).await?.into_inner();
    let ack = async |replies: &mut tonic::Streaming<passerelle_proto::v1::PushReply>, seq: u64| {
        loop {
            match replies.message().await {
                Ok(Some(reply)) => {
                    if let Some(push_reply::Kind::Ack(ack)) = reply.kind
                        && ack.seq == seq
                    {
                        return Ok(());
                    }
                }
                Ok(None) => return Err(tonic::Status::aborted("stream ended")),
                Err(status) => return Err(status),
            }
        }
    };
    let (july, cert) = signed_report_for(&s3, "2026-07", SIRETS[3], &[3; 16], 1_000, 1, 3)?;
    tx.send(PushMessage {
        kind: Some(Kind::Batch(Batch { seq: 1, changes: vec![july], head_seq: 2, certificates: vec![cert] })),
    })
    .await?;
    ack(&mut replies, 1).await?;

    let serial = TestPki::serial(&s3)?;
    let text = std::fs::read_to_string(&config)?;
    std::fs::write(
        &config,
        text.replace("denied_serials = []", &format!("denied_serials = [\"{serial}\"]")),
    )?;
    operator.reload().await?;

    let (august, cert) = signed_report_for(&s3, "2026-08", SIRETS[3], &[3; 16], 1_000, 2, 3)?;
    let sent = tx
        .send(PushMessage {
            kind: Some(Kind::Batch(Batch {
                seq: 2,
                changes: vec![august],
                head_seq: 2,
                certificates: vec![cert],
            })),
        })
        .await;
    let outcome = match sent {
        Ok(()) => ack(&mut replies, 2).await,
        Err(_) => Err(tonic::Status::aborted("stream closed")),
    };
    drop(tx);
    dreets.stop().await?;
    let keys: Vec<String> =
        hub_records_on_disk(&config, SIRETS[3], "indicators")?.into_iter().map(|(k, _, _)| k).collect();
    assert_eq!(keys, ["2026-07"], "August, signed by a denied serial, was taken ({outcome:?})");
    Ok(())
}

/// Attack: the key of a node certificate that expired (nobody revokes an expired certificate;
/// it may sit on a decommissioned machine) signs, through a relay, a report dated into a store
/// "created" after that certificate expired — at the end of time, or just now. Expiry is no
/// reason to refuse a signature, so without a bound on the signed creation time the forgery
/// outranks every version the structure signs with its current certificate. The end of time is
/// refused (no store is created after now); a store dated after the signing certificate's
/// expiry is ignored (`signed::signable_by`); and within its validity the old key signs nothing
/// above what its successor signed (a store dated at its expiry, an inflated version).
#[tokio::test(flavor = "multi_thread")]
async fn an_expired_key_cannot_date_a_store_after_its_expiry() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let config = pki.write_hub_config("dreets-52", "auto_accept = true", "")?;
    let dreets = InProcessDaemon::start_config(&config).await?;
    let endpoint = dreets.hub_endpoint();
    let relay = pki.issue(Role::Hub, "fas-pdl")?;
    let old = pki.issue_expired(Role::Node, SIRETS[3])?;
    let current = pki.issue(Role::Node, SIRETS[3])?;

    // The genuine store was created 20 days ago, while the old certificate was valid; the
    // current certificate signs its version 5.
    let now = passerelle_proto::date::now_unix_ms();
    let created = now - 20 * 86_400_000;
    let (genuine, cert) = signed_report(&current, SIRETS[3], &[3; 16], created, 5, 3)?;
    relay_as(&relay, &endpoint, vec![genuine], &[cert]).await?.map_err(anyhow::Error::from)?;
    let (end_of_time, old_cert) = signed_report(&old, SIRETS[3], &[0xee; 16], i64::MAX, 1, 99)?;
    let end_of_time = relay_as(&relay, &endpoint, vec![end_of_time], std::slice::from_ref(&old_cert)).await?;
    assert!(end_of_time.is_err(), "a store created at the end of time is refused");
    let (dated_now, _) = signed_report(&old, SIRETS[3], &[0xee; 16], now - 1_000, 1, 99)?;
    let forged_outcome =
        relay_as(&relay, &endpoint, vec![dated_now], std::slice::from_ref(&old_cert)).await?;
    // Within its validity: a store dated just before its expiry (after the genuine store's
    // creation), and an inflated version of the genuine store. Both above what the current
    // certificate signed: ignored.
    let (at_expiry, _) = signed_report(&old, SIRETS[3], &[0xef; 16], now - 86_400_000 - 5_000, 1, 98)?;
    let (inflated, _) = signed_report(&old, SIRETS[3], &[3; 16], created, 1_000_000, 97)?;
    let within = relay_as(&relay, &endpoint, vec![at_expiry, inflated], &[old_cert]).await?;
    dreets.stop().await?;

    let config = passerelle_daemon::Config::load(&config)?;
    let settings = config.hub().cloned().ok_or_else(|| anyhow::anyhow!("hub config"))?;
    let hub = passerelle_daemon::hub::Hub::open(&config.data_dir, settings, Default::default())?;
    let held: Vec<(String, i64, u64)> = hub
        .records_of(SIRETS[3], "indicators".parse()?)?
        .into_iter()
        .map(|(k, r)| (k, r.epoch_at_ms, r.version))
        .collect();
    assert_eq!(held, vec![("2026-07".to_string(), created, 5)], "forgery: {forged_outcome:?} {within:?}");
    Ok(())
}
