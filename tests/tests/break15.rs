//! Attacks on issue 15 (introductions) and on issue 12's newest fix (an expired certificate signs
//! nothing), as a member node, a hub operator or a holder of a retired key would try them: real
//! daemons over real mutual TLS, hostile tonic clients where the honest code would not go.

use std::path::PathBuf;
use std::time::Duration;

use passerelle_client::NodeClient;
use passerelle_proto::identity::Role;
use passerelle_proto::v1::hub_sync_client::HubSyncClient;
use passerelle_proto::v1::{
    ConsentPurpose, GrantConsentRequest, MailboxRequest, PersonFields, SendIntroductionRequest,
};
use passerelle_tests::hostile::{relay_as, signed_report};
use passerelle_tests::pki::{SIRETS, TestPki};
use passerelle_tests::{InProcessDaemon, cli_async, need_add_args};
use prost::Message;
use serde_json::Value;

const HUB: &str = "coorace-pdl";
const DAY_MS: i64 = 24 * 3600 * 1000;

/// A person B's need matches: Angers (49), K2204, 24 h a week, available in December 2026.
fn candidate(first: &str) -> PersonFields {
    PersonFields {
        first_name: first.into(),
        last_name: "Martin".into(),
        birth_date: "1990-04-02".into(),
        commune: "49007".into(),
        phone: Some("06 12 34 56 78".into()),
        email: None,
        rome_codes: vec!["K2204".into()],
        available_from: "2026-12-07".into(),
        hours_per_week: Some(24),
        mobility_km: Some(15),
        barriers: Vec::new(),
        pass_iae_end: None,
    }
}

/// A hub on a fixed port (so it can be stopped, edited on disk and restarted), holder A with
/// `persons` matching persons (placement consent), requester B with one open need; all synced.
struct Federation {
    hub_config: PathBuf,
    hub: InProcessDaemon,
    a: InProcessDaemon,
    b: InProcessDaemon,
    persons: Vec<String>,
    need: String,
}

async fn federation(pki: &TestPki, hub_extra: &str, persons: usize) -> anyhow::Result<Federation> {
    let port = passerelle_tests::free_port()?;
    let hub_config = pki.write_hub_config_on(HUB, port, &format!("auto_accept = true\n{hub_extra}"), "")?;
    let hub = InProcessDaemon::start_config(&hub_config).await?;
    let endpoint = hub.hub_endpoint();
    let a = InProcessDaemon::start_config(&pki.write_node_config(
        SIRETS[0],
        "49",
        &[(HUB, endpoint.clone(), &["profiles"])],
    )?)
    .await?;
    let b = InProcessDaemon::start_config(&pki.write_node_config(
        SIRETS[1],
        "49",
        &[(HUB, endpoint, &["needs"])],
    )?)
    .await?;
    let mut na = NodeClient::connect(&a.endpoint, None).await?;
    let mut ids = Vec::new();
    for i in 0..persons {
        let person = na.add_person(candidate(&format!("Camille{i}"))).await?;
        na.grant_consent(GrantConsentRequest {
            person_id: person.id.clone(),
            purpose: ConsentPurpose::Placement as i32,
            hub_id: HUB.into(),
            text_version: "2026-01".into(),
            collected_by: "accueil".into(),
        })
        .await?;
        ids.push(person.id);
    }
    let need = json(&b.endpoint, &need_add_args()).await?["id"].as_str().unwrap_or_default().to_string();
    for node in [&a, &b] {
        NodeClient::connect(&node.endpoint, None).await?.sync_now(true, Duration::from_secs(30)).await?;
    }
    Ok(Federation { hub_config, hub, a, b, persons: ids, need })
}

async fn json(endpoint: &str, args: &[&str]) -> anyhow::Result<Value> {
    cli_async(endpoint, &[&["--format", "json"], args].concat()).await.ok()?.json()
}

async fn list(endpoint: &str, direction: &str) -> anyhow::Result<Vec<Value>> {
    let listed = json(endpoint, &["introductions", "list", "--direction", direction]).await?;
    Ok(listed.as_array().cloned().unwrap_or_default())
}

/// Opens the stopped hub's store, for what a hub's own clock and daily task would do to it.
fn with_stopped_hub(
    config: &std::path::Path,
    edit: impl FnOnce(&passerelle_daemon::hub::Hub) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let config = passerelle_daemon::config::Config::load(config)?;
    let settings = config.hub().cloned().ok_or_else(|| anyhow::anyhow!("a hub config"))?;
    let hub = passerelle_daemon::hub::Hub::open(&config.data_dir, settings, Default::default())?;
    edit(&hub)
}

/// Attack (withdrawal not reaching the requester): B recorded Camille as hired, so it keeps her
/// fields `[node] introduction_retention_days` (90) after that. The hub forgets the request
/// `[hub] introduction_retention_days` (30) after its expiry (30): from day 60 on, Camille's
/// withdrawal has no request to travel with. A's node takes the withdrawal, the hub answers
/// NOT_FOUND, A settles it as refused for good — and B keeps her name and phone for another month,
/// with nothing on either side saying so (before the fix). Now the hub keeps an expired request
/// until the requester acknowledged deleting every candidate's fields, so the withdrawal travels;
/// and, should a hub forget a request anyway, B deletes its candidates' fields.
#[tokio::test(flavor = "multi_thread")]
async fn a_withdrawal_reaches_the_requester_after_the_hub_forgot_the_request() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let f = federation(&pki, "", 1).await?;
    let camille = f.persons[0].clone();
    let id = json(&f.b.endpoint, &["need", "introduce", &f.need]).await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    list(&f.a.endpoint, "in").await?;
    json(
        &f.a.endpoint,
        &[
            "introduction",
            "accept",
            &id,
            "--person",
            &camille,
            "--share",
            "first-name,phone",
            "--text-version",
            "v1",
        ],
    )
    .await?;
    let outgoing = list(&f.b.endpoint, "out").await?;
    let reference = outgoing[0]["candidates"][0]["candidate"].as_str().unwrap_or_default().to_string();
    assert_eq!(outgoing[0]["candidates"][0]["first_name"], "Camille0", "{outgoing:?}");
    json(&f.b.endpoint, &["introduction", "outcome", &id, "--candidate", &reference, "--outcome", "hired"])
        .await?;

    // 31 days pass at the hub: the request expired (TTL 30), as both nodes see.
    f.hub.stop().await?;
    with_stopped_hub(&f.hub_config, |hub| Ok(hub.age_introduction_for_tests(&id, 31 * DAY_MS)?))?;
    let hub = InProcessDaemon::start_config(&f.hub_config).await?;
    assert_eq!(list(&f.b.endpoint, "out").await?[0]["status"], "expired");
    assert_eq!(list(&f.a.endpoint, "in").await?[0]["status"], "expired");
    // 30 more: the hub's retention after the expiry is over, but B has not deleted Camille's
    // fields: the hub keeps the request, so a withdrawal can still reach B.
    hub.stop().await?;
    with_stopped_hub(&f.hub_config, |hub| {
        hub.age_introduction_for_tests(&id, 30 * DAY_MS)?;
        let forgotten = hub.forget_introductions(passerelle_proto::date::now_unix_ms() - 30 * DAY_MS)?;
        anyhow::ensure!(forgotten == 0, "forgotten while B may hold fields: {forgotten}");
        Ok(())
    })?;
    let hub = InProcessDaemon::start_config(&f.hub_config).await?;

    // Camille changes her mind (day 61: within B's 90 days after the outcome).
    let withdrawn = cli_async(&f.a.endpoint, &["introduction", "withdraw", &id, "--person", &camille]).await;
    let outgoing = list(&f.b.endpoint, "out").await?;
    let held = &outgoing[0]["candidates"][0];
    let report = json(&f.a.endpoint, &["person", "report", &camille]).await?;
    for daemon in [f.a, f.b, hub] {
        daemon.stop().await?;
    }
    assert_eq!(outgoing[0]["status"], "expired");
    assert!(
        held["first_name"].is_null() && held["phone"].is_null() && held["purged_at"].is_string(),
        "B still holds Camille's fields after her withdrawal ({withdrawn:?}); A's report: {}; B: {held}",
        report["introductions"]
    );
    Ok(())
}

/// Attack (unbounded mailbox): one member sends requests for its open need, each routed to A with
/// every matching pseudonym and the requester's certificate chain. The hub answers `Mailbox` with
/// every request routed to A, unpaged; past the 4 MiB a gRPC client decodes, A's node cannot
/// read its mailbox any more — no introduction reaches it, from anyone, until the hub forgets the
/// flood (TTL + retention: 60 days). The rate limit is per requester per day (20 by default), so
/// the figures below say how many days one member (or a few) needs; the test raises the limit to
/// send them in one go. Now the mailbox is read in pages of at most 200 requests
/// (`MailboxRequest.after`/`limit`): the flood slows A's exchange but cuts nothing off.
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_requests_does_not_cut_a_holder_off() -> anyhow::Result<()> {
    const PERSONS: usize = 40;
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let f = federation(&pki, "introductions_per_day = 10000", PERSONS).await?;
    let endpoint = f.hub.hub_endpoint();
    let hostile_channel =
        passerelle_client::connect(&endpoint, Some(&pki.issue(Role::Node, SIRETS[1])?), "hub").await?;
    let mut hostile = HubSyncClient::new(hostile_channel);
    let a_channel =
        passerelle_client::connect(&endpoint, Some(&pki.issue(Role::Node, SIRETS[0])?), "hub").await?;
    let mut a_view = HubSyncClient::new(a_channel).max_decoding_message_size(256 << 20);

    let limit = 4 << 20;
    let mut sent = 0u32;
    let mut size = 0usize;
    let mut per_request = 0usize;
    while size <= limit + (limit / 8) && sent < 6_000 {
        for _ in 0..100 {
            sent += 1;
            let id = format!("0190f0c4-2222-7000-8000-{sent:012x}");
            hostile.send_introduction(SendIntroductionRequest { id, need_id: f.need.clone() }).await?;
        }
        // The whole mailbox in one answer (a node older than paging), to measure it.
        let mailbox = a_view.mailbox(MailboxRequest::default()).await?.into_inner();
        size = mailbox.encoded_len();
        per_request = size / mailbox.inbound.len().max(1);
    }
    eprintln!(
        "{sent} requests with {PERSONS} matching persons each: A's mailbox is {size} bytes ({per_request} per request); at 20 a day, {} days for one member",
        (limit / per_request.max(1)).div_ceil(20)
    );
    // A fresh request, after the flood, still reaches A.
    let fresh = json(&f.b.endpoint, &["need", "introduce", &f.need]).await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let incoming = list(&f.a.endpoint, "in").await?;
    // The list shows the newest 200 and says how many older ones it leaves out.
    let listed =
        cli_async(&f.a.endpoint, &["--format", "json", "introductions", "list", "--direction", "in"]).await;
    let too_many =
        cli_async(&f.a.endpoint, &["introductions", "list", "--direction", "in", "--limit", "501"]).await;
    for daemon in [f.a, f.b, f.hub] {
        daemon.stop().await?;
    }
    assert_eq!(incoming.len(), 200, "the newest 200 by default");
    assert!(listed.stderr.contains("older requests not listed (--limit 200)"), "{}", listed.stderr);
    assert_eq!(too_many.code, 2, "--limit is at most 500: {too_many:?}");
    assert!(
        incoming.iter().any(|r| r["id"] == fresh.as_str()),
        "after {sent} routed requests ({size} bytes), A receives nothing: {} requests on A's node",
        incoming.len()
    );
    Ok(())
}

/// Attack on issue 12's fix: the key of an expired, never-revoked node certificate (a
/// decommissioned machine) signs a report in a store it "created" at the last second of its own
/// validity. `signable_by` lets that date pass (the certificate was valid then). But the
/// structure's genuine store was created *before* that moment — it is the store the old
/// certificate signed for, renewed since — so ordered by (store creation, epoch, version) the
/// forgery outranks every version the structure signs with its current certificate, exactly as
/// the "dated now" forgery did before the fix.
#[tokio::test(flavor = "multi_thread")]
async fn an_expired_key_cannot_outrank_the_store_it_used_to_sign_for() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let config = pki.write_hub_config("dreets-52", "auto_accept = true", "")?;
    let dreets = InProcessDaemon::start_config(&config).await?;
    let endpoint = dreets.hub_endpoint();
    let relay = pki.issue(Role::Hub, "fas-pdl")?;
    // Valid from yesterday until an hour ago.
    let (old, old_not_after) = pki.issue_expiring(Role::Node, SIRETS[3], -3600)?;
    let current = pki.renew(Role::Node, SIRETS[3])?;

    // The structure's store, created two days ago (the old certificate signed its first records).
    let now = passerelle_proto::date::now_unix_ms();
    let created = now - 2 * DAY_MS;
    let (v1, cert) = signed_report(&current, SIRETS[3], &[3; 16], created, 1, 3)?;
    relay_as(&relay, &endpoint, vec![v1], std::slice::from_ref(&cert)).await?.map_err(anyhow::Error::from)?;
    // The forgery: a store "created" at the old certificate's last valid millisecond.
    let (forged, old_cert) = signed_report(&old, SIRETS[3], &[0xee; 16], old_not_after * 1000, 1, 99)?;
    let forged_outcome = relay_as(&relay, &endpoint, vec![forged], &[old_cert]).await?;
    // The structure's next genuine version, signed with its current certificate.
    let (v2, _) = signed_report(&current, SIRETS[3], &[3; 16], created, 2, 5)?;
    let v2_outcome = relay_as(&relay, &endpoint, vec![v2], &[cert]).await?;
    dreets.stop().await?;

    let config = passerelle_daemon::Config::load(&config)?;
    let settings = config.hub().cloned().ok_or_else(|| anyhow::anyhow!("hub config"))?;
    let hub = passerelle_daemon::hub::Hub::open(&config.data_dir, settings, Default::default())?;
    let held: Vec<(String, i64, u64)> = hub
        .records_of(SIRETS[3], "indicators".parse()?)?
        .into_iter()
        .map(|(k, r)| (k, r.epoch_at_ms, r.version))
        .collect();
    assert_eq!(
        held,
        vec![("2026-07".to_string(), created, 2)],
        "the genuine version 2 is held (forgery: {forged_outcome:?}, v2: {v2_outcome:?})"
    );
    Ok(())
}
