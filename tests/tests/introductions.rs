//! Introductions end to end, with real daemons over real mutual TLS: a hub, a holder A (persons
//! with placement consent), a requester B (an open need), and C (a member whose profiles do not
//! match). The whole flow goes through the CLI; the hub's data directory is scanned for the
//! candidate's name and phone; hostile members, a hostile hub operator and a certificate of
//! another CA are tried.

use std::path::{Path, PathBuf};
use std::time::Duration;

use passerelle_client::{NodeClient, TlsFiles};
use passerelle_proto::identity::Role;
use passerelle_proto::v1::hub_sync_client::HubSyncClient;
use passerelle_proto::v1::{
    ConsentPurpose, GrantConsentRequest, HelloRequest, IntroductionAccept, IntroductionReply, MailboxRequest,
    PersonFields, ReplyIntroductionRequest, SealedFields, SendIntroductionRequest, Structure,
    introduction_reply,
};
use passerelle_tests::pki::{SIRETS, TestPki};
use passerelle_tests::{InProcessDaemon, cli_async, dir_find, need_add_args};
use serde_json::Value;

const HUB: &str = "coorace-pdl";
const PHONE: &str = "06 12 34 56 78";

/// A person the need matches: Angers (49), K2204, 24 h a week, available in December 2026.
fn candidate(first: &str, last: &str) -> PersonFields {
    PersonFields {
        first_name: first.into(),
        last_name: last.into(),
        birth_date: "1990-04-02".into(),
        commune: "49007".into(),
        phone: Some(PHONE.into()),
        email: Some(format!("{}@example.fr", first.to_lowercase())),
        rome_codes: vec!["K2204".into()],
        available_from: "2026-12-07".into(),
        hours_per_week: Some(24),
        mobility_km: Some(15),
        barriers: Vec::new(),
        pass_iae_end: None,
    }
}

async fn add_consented(node: &mut NodeClient, fields: PersonFields) -> anyhow::Result<String> {
    let person = node.add_person(fields).await?;
    node.grant_consent(GrantConsentRequest {
        person_id: person.id.clone(),
        purpose: ConsentPurpose::Placement as i32,
        hub_id: HUB.into(),
        text_version: "2026-01".into(),
        collected_by: "accueil".into(),
    })
    .await?;
    Ok(person.id)
}

/// A node config for `siret` with the given certificate files.
fn node_config(
    pki: &TestPki,
    siret: &str,
    tls: &TlsFiles,
    hub_endpoint: &str,
    share: &str,
) -> anyhow::Result<PathBuf> {
    let text = format!(
        "data_dir = \"node-{siret}-data\"\n\n[node]\nsiret = \"{siret}\"\nkind = \"ai\"\nname = \"Structure {siret}\"\ndepartement = \"49\"\n\n[api]\nlisten = \"127.0.0.1:0\"\n\n[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n\n[[hubs]]\nid = \"{HUB}\"\nendpoint = \"{hub_endpoint}\"\nshare = [\"{share}\"]\n",
        tls.ca.display(),
        tls.cert.display(),
        tls.key.display()
    );
    let path = pki.dir.join(format!("node-{siret}.toml"));
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Hub, holder A (Camille and Dominique, matching), requester B (an open need), C (a person of
/// another trade). Everything synced.
struct Federation {
    hub: InProcessDaemon,
    a: InProcessDaemon,
    b: InProcessDaemon,
    c: InProcessDaemon,
    camille: String,
    dominique: String,
    need: String,
}

/// With `vetted`, the hub accepts no newcomer by itself: A, B and C are pre-accepted by the
/// operator (so a removed member stays out).
async fn federation(pki: &TestPki, hub_extra: &str, vetted: bool) -> anyhow::Result<Federation> {
    let accept = if vetted { "" } else { "auto_accept = true" };
    let hub =
        InProcessDaemon::start_config(&pki.write_hub_config(HUB, &format!("{accept}\n{hub_extra}"), "")?)
            .await?;
    if vetted {
        for siret in &SIRETS[..3] {
            cli_async(&hub.endpoint, &["hub", "accept", siret]).await.ok()?;
        }
    }
    federation_on(pki, hub).await
}

async fn json(endpoint: &str, args: &[&str]) -> anyhow::Result<Value> {
    cli_async(endpoint, &[&["--format", "json"], args].concat()).await.ok()?.json()
}

async fn list(endpoint: &str, direction: &str) -> anyhow::Result<Vec<Value>> {
    let listed = json(endpoint, &["introductions", "list", "--direction", direction]).await?;
    Ok(listed.as_array().cloned().unwrap_or_default())
}

async fn introduce(f: &Federation) -> anyhow::Result<String> {
    let made = json(&f.b.endpoint, &["need", "introduce", &f.need]).await?;
    Ok(made["id"].as_str().unwrap_or_default().to_string())
}

fn data_dir(daemon: &InProcessDaemon) -> &Path {
    &daemon.config.data_dir
}

#[tokio::test(flavor = "multi_thread")]
async fn the_whole_flow_through_the_cli_with_ciphertext_only_at_the_hub() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let f = federation(&pki, "", false).await?;

    // B asks; `need introduce` prints the id (JSON: an object with `id`; table: the id alone).
    let id = introduce(&f).await?;
    assert_eq!(id.len(), 36, "a UUID: {id}");

    // A sees the request with B's identity, the need and its matching persons (names on A only).
    let incoming = list(&f.a.endpoint, "in").await?;
    assert_eq!(incoming.len(), 1, "{incoming:?}");
    let request = &incoming[0];
    assert_eq!(request["id"], id.as_str(), "one id everywhere");
    assert_eq!(request["structure_siret"], SIRETS[1]);
    assert_eq!(request["structure_name"], format!("Structure {}", SIRETS[1]));
    assert_eq!(request["need"]["rome_code"], "K2204");
    assert_eq!(
        request["need"]["rome_label"], "Nettoyage de locaux",
        "the fiche's label, from the ROME référentiel"
    );
    assert_eq!(request["need"]["hours_per_week"], 24);
    assert!(request["expires_at"].is_string());
    let persons = request["persons"].as_array().cloned().unwrap_or_default();
    let mut names: Vec<&str> = persons.iter().filter_map(|p| p["name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["Camille Martin", "Dominique Bernard"]);

    // C, whose person seeks another trade, receives nothing; B's own list holds its request.
    assert!(list(&f.c.endpoint, "in").await?.is_empty(), "C matched nothing");
    assert!(list(&f.b.endpoint, "in").await?.is_empty(), "B's own profiles never count");

    // Camille accepts (first name and phone), Dominique declines.
    let accepted = json(
        &f.a.endpoint,
        &[
            "introduction",
            "accept",
            &id,
            "--person",
            &f.camille,
            "--share",
            "first-name,phone",
            "--text-version",
            "v1",
        ],
    )
    .await?;
    assert_eq!(accepted["id"], id.as_str());
    json(
        &f.a.endpoint,
        &["introduction", "decline", &id, "--person", &f.dominique, "--reason", "not-available"],
    )
    .await?;
    let consents = json(&f.a.endpoint, &["consent", "list", "--person", &f.camille]).await?;
    let consent = consents
        .as_array()
        .and_then(|all| all.iter().find(|c| c["purpose"] == "introduction").cloned())
        .expect("an introduction consent");
    assert_eq!(consent["introduction_id"], id.as_str());
    assert_eq!(consent["recipient_siret"], SIRETS[1]);

    // B reads: routed, one declined (no identity), Camille's fields decrypted on B only.
    let outgoing = list(&f.b.endpoint, "out").await?;
    assert_eq!(outgoing.len(), 1);
    let out = &outgoing[0];
    assert_eq!(out["id"], id.as_str());
    assert_eq!(out["status"], "open");
    assert_eq!(out["routed"], true);
    assert_eq!(out["declined"], 1);
    let candidates = out["candidates"].as_array().cloned().unwrap_or_default();
    assert_eq!(candidates.len(), 1, "{out:?}");
    assert_eq!(candidates[0]["first_name"], "Camille");
    assert_eq!(candidates[0]["phone"], PHONE);
    assert_eq!(candidates[0]["last_name"], Value::Null, "not shared");
    assert_eq!(candidates[0]["holder_siret"], SIRETS[0]);
    assert!(!out.to_string().contains("Dominique"), "a decline carries no identity");
    let reference = candidates[0]["candidate"].as_str().unwrap_or_default().to_string();

    // B records the outcome; A sees it.
    json(&f.b.endpoint, &["introduction", "outcome", &id, "--candidate", &reference, "--outcome", "hired"])
        .await?;
    let incoming = list(&f.a.endpoint, "in").await?;
    let camille = incoming[0]["persons"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["person_id"] == f.camille.as_str()).cloned())
        .expect("Camille");
    assert_eq!(camille["state"], "accepted");
    assert_eq!(camille["outcome"], "hired");

    // Camille changes her mind: B deletes her fields and acknowledges; A's report shows it.
    json(&f.a.endpoint, &["introduction", "withdraw", &id, "--person", &f.camille]).await?;
    let outgoing = list(&f.b.endpoint, "out").await?;
    let gone = &outgoing[0]["candidates"][0];
    assert_eq!(gone["withdrawn"], true);
    assert_eq!(gone["first_name"], Value::Null, "fields deleted at B");
    assert_eq!(gone["phone"], Value::Null);
    list(&f.a.endpoint, "in").await?;
    let report = json(&f.a.endpoint, &["person", "report", &f.camille]).await?;
    let intro = &report["introductions"][0];
    assert_eq!(intro["request_id"], id.as_str());
    assert_eq!(intro["recipient_siret"], SIRETS[1]);
    assert_eq!(intro["fields"], serde_json::json!(["first-name", "phone"]));
    assert!(intro["withdrawn_at"].is_string() && intro["purged_at"].is_string(), "{intro:?}");
    let consents = json(&f.a.endpoint, &["consent", "list", "--person", &f.camille]).await?;
    assert!(
        consents
            .as_array()
            .is_some_and(|all| all.iter().any(|c| c["purpose"] == "introduction" && c["in_force"] == false)),
        "the introduction consent is withdrawn"
    );
    let audit = json(&f.a.endpoint, &["audit", "list", "--person", &f.camille]).await?;
    let kinds: Vec<&str> =
        audit.as_array().map(|a| a.iter().filter_map(|e| e["kind"].as_str()).collect()).unwrap_or_default();
    for kind in ["introduction-share", "introduction-withdraw", "introduction-purge-ack"] {
        assert!(kinds.contains(&kind), "audit has {kind}: {kinds:?}");
    }
    cli_async(&f.a.endpoint, &["audit", "verify"]).await.ok()?;

    // Consumers get the `introductions` table for closed months only.
    let consumer = pki.issue(Role::Consumer, "dreets-52")?;
    let mut flags = TestPki::cli_flags(&consumer);
    flags.extend(["--format", "json", "stats"].map(String::from));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let hub_endpoint = f.hub.hub_endpoint();
    let tables = cli_async(&hub_endpoint, &[flags.as_slice(), &["tables"]].concat()).await.ok()?.json()?;
    assert!(tables.as_array().is_some_and(|t| t.iter().any(|t| t["id"] == "introductions")), "{tables}");
    let month = passerelle_proto::periods::month_at(passerelle_proto::date::now_unix_ms()).to_string();
    let open =
        cli_async(&hub_endpoint, &[flags.as_slice(), &["introductions", "--period", &month]].concat()).await;
    assert_ne!(open.code, 0);
    assert!(open.stderr.contains("not closed yet"), "{open:?}");

    // The hub's disk never held the name or the phone.
    let hub_dir = data_dir(&f.hub).to_path_buf();
    for daemon in [f.a, f.b, f.c, f.hub] {
        daemon.stop().await?;
    }
    for needle in ["Camille", "Martin", PHONE, "camille@example.fr", "Dominique"] {
        assert_eq!(dir_find(&hub_dir, needle)?, None, "{needle} on the hub's disk");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_rate_limit_and_removed_members() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let f = federation(&pki, "introductions_per_day = 2", true).await?;
    introduce(&f).await?;
    introduce(&f).await?;
    let third = cli_async(&f.b.endpoint, &["need", "introduce", &f.need]).await;
    assert_ne!(third.code, 0);
    assert!(third.stderr.contains("at most 2 requests"), "{third:?}");

    // A need unknown to the hub, and a closed need, are refused naming why.
    let unknown =
        cli_async(&f.b.endpoint, &["need", "introduce", "0190f0c4-0000-7000-8000-000000000000"]).await;
    assert_ne!(unknown.code, 0);
    assert!(unknown.stderr.contains("not found"), "{unknown:?}");

    // A may only accept for a person the request matched.
    let id = list(&f.a.endpoint, "in").await?[0]["id"].as_str().unwrap_or_default().to_string();
    let mut na = NodeClient::connect(&f.a.endpoint, None).await?;
    let stranger = na
        .add_person(PersonFields { rome_codes: vec!["A1101".into()], ..candidate("Sacha", "Petit") })
        .await?;
    let refused = cli_async(
        &f.a.endpoint,
        &[
            "introduction",
            "accept",
            &id,
            "--person",
            &stranger.id,
            "--share",
            "first-name,phone",
            "--text-version",
            "v1",
        ],
    )
    .await;
    assert_eq!(refused.code, 2, "the caller's to fix: {refused:?}");
    assert!(refused.stderr.contains("not a person introduction"), "{refused:?}");
    let partial = cli_async(
        &f.a.endpoint,
        &[
            "introduction",
            "accept",
            &id,
            "--person",
            &f.camille,
            "--share",
            "first-name",
            "--text-version",
            "v1",
        ],
    )
    .await;
    assert_eq!(partial.code, 2, "first-name and phone are both required: {partial:?}");

    // Closing the need cancels its requests: no more answers.
    cli_async(&f.b.endpoint, &["need", "close", &f.need, "--status", "filled"]).await.ok()?;
    NodeClient::connect(&f.b.endpoint, None).await?.sync_now(true, Duration::from_secs(30)).await?;
    // A, not refreshed yet, accepts for Camille: the hub refuses, nothing was shared, and the
    // consent recorded for it is withdrawn.
    let accepted = json(
        &f.a.endpoint,
        &[
            "introduction",
            "accept",
            &id,
            "--person",
            &f.camille,
            "--share",
            "first-name,phone",
            "--text-version",
            "v1",
        ],
    )
    .await?;
    let camille = accepted["persons"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["person_id"] == f.camille.as_str()).cloned())
        .expect("Camille");
    assert_eq!(camille["state"], "refused", "{accepted:?}");
    let consents = json(&f.a.endpoint, &["consent", "list", "--person", &f.camille]).await?;
    assert!(
        consents
            .as_array()
            .is_some_and(|all| all.iter().all(|c| c["purpose"] != "introduction" || c["in_force"] == false)),
        "{consents:?}"
    );
    let report = json(&f.a.endpoint, &["person", "report", &f.camille]).await?;
    assert_eq!(report["introductions"], serde_json::json!([]), "nothing was shared");
    let incoming = list(&f.a.endpoint, "in").await?;
    assert!(incoming.iter().all(|i| i["status"] == "cancelled"), "{incoming:?}");
    let late = cli_async(
        &f.a.endpoint,
        &["introduction", "decline", &id, "--person", &f.dominique, "--reason", "other"],
    )
    .await;
    assert_ne!(late.code, 0);
    assert!(late.stderr.contains("cancelled"), "{late:?}");

    // A removed member's request is refused (its need is open and shared).
    let other = json(&f.b.endpoint, &need_add_args()).await?["id"].as_str().unwrap_or_default().to_string();
    NodeClient::connect(&f.b.endpoint, None).await?.sync_now(true, Duration::from_secs(30)).await?;
    cli_async(&f.hub.endpoint, &["hub", "remove", SIRETS[1]]).await.ok()?;
    let removed = cli_async(&f.b.endpoint, &["need", "introduce", &other]).await;
    assert_ne!(removed.code, 0, "{removed:?}");
    assert!(removed.stderr.contains("pending approval"), "{removed:?}");
    for daemon in [f.a, f.b, f.c, f.hub] {
        daemon.stop().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_member_reads_nothing_and_cannot_answer_for_others() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let f = federation(&pki, "", false).await?;
    let id = introduce(&f).await?;
    list(&f.a.endpoint, "in").await?;

    // The attacker: a member with its own valid certificate, speaking gRPC to the hub directly.
    let tls = pki.issue(Role::Node, SIRETS[3])?;
    let channel = passerelle_client::connect(&f.hub.hub_endpoint(), Some(&tls), "hub").await?;
    let mut hostile = HubSyncClient::new(channel);
    let structure = Structure {
        siret: SIRETS[3].into(),
        kind: passerelle_proto::v1::StructureKind::Ai as i32,
        name: "Intrus".into(),
        departement: "49".into(),
    };
    hostile.hello(HelloRequest { structure: Some(structure) }).await?;
    let mailbox = hostile.mailbox(MailboxRequest {}).await?.into_inner();
    assert!(mailbox.inbound.is_empty() && mailbox.outbound.is_empty(), "{mailbox:?}");

    // It learns A's pseudonyms (say, from A's mailbox on a stolen disk) and answers for them.
    let a_tls = pki.issue(Role::Node, SIRETS[0])?;
    let a_channel = passerelle_client::connect(&f.hub.hub_endpoint(), Some(&a_tls), "hub").await?;
    let a_mailbox = HubSyncClient::new(a_channel).mailbox(MailboxRequest {}).await?.into_inner();
    let pseudonym = a_mailbox.inbound[0].pseudonyms[0].clone();
    let forged =
        SealedFields { ephemeral_public_key: vec![4; 65], nonce: vec![0; 12], ciphertext: vec![0; 32] };
    let accept = IntroductionReply {
        request_id: id.clone(),
        kind: Some(introduction_reply::Kind::Accept(IntroductionAccept {
            pseudonym,
            candidate: "0190f0c4-0000-4000-8000-000000000001".into(),
            sealed: Some(forged),
        })),
    };
    let denied = hostile.reply_introduction(ReplyIntroductionRequest { replies: vec![accept] }).await;
    assert_eq!(denied.map(|_| ()).map_err(|s| s.code()), Err(tonic::Code::PermissionDenied));
    let outcome = IntroductionReply {
        request_id: id.clone(),
        kind: Some(introduction_reply::Kind::Outcome(passerelle_proto::v1::CandidateOutcome {
            candidate: "0190f0c4-0000-4000-8000-000000000001".into(),
            outcome: passerelle_proto::v1::IntroductionOutcome::Hired as i32,
        })),
    };
    let denied = hostile.reply_introduction(ReplyIntroductionRequest { replies: vec![outcome] }).await;
    assert_eq!(denied.map(|_| ()).map_err(|s| s.code()), Err(tonic::Code::PermissionDenied));

    // Nor can it ask about another structure's need.
    let stolen =
        hostile.send_introduction(SendIntroductionRequest { id: uuid(), need_id: f.need.clone() }).await;
    assert_eq!(stolen.map(|_| ()).map_err(|s| s.code()), Err(tonic::Code::FailedPrecondition));
    // Nor reuse B's request id.
    let reused =
        hostile.send_introduction(SendIntroductionRequest { id: id.clone(), need_id: f.need.clone() }).await;
    assert!(reused.is_err());

    // B never received anything from the attacker.
    assert!(list(&f.b.endpoint, "out").await?[0]["candidates"].as_array().is_some_and(Vec::is_empty));
    for daemon in [f.a, f.b, f.c, f.hub] {
        daemon.stop().await?;
    }
    Ok(())
}

fn uuid() -> String {
    "0190f0c4-1111-7000-8000-000000000002".into()
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_ciphertext_is_refused_by_the_requester() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let port = passerelle_tests::free_port()?;
    let hub_config = pki.write_hub_config_on(HUB, port, "auto_accept = true", "")?;
    let hub = InProcessDaemon::start_config(&hub_config).await?;
    let f = federation_on(&pki, hub).await?;
    let id = introduce(&f).await?;
    list(&f.a.endpoint, "in").await?;
    json(
        &f.a.endpoint,
        &[
            "introduction",
            "accept",
            &id,
            "--person",
            &f.camille,
            "--share",
            "first-name,phone",
            "--text-version",
            "v1",
        ],
    )
    .await?;

    let delivered = list(&f.a.endpoint, "in").await?;
    let camille = delivered[0]["persons"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["person_id"] == f.camille.as_str()).cloned())
        .expect("Camille");
    assert_eq!(
        (camille["state"].as_str(), camille["unsent"].as_bool()),
        (Some("accepted"), Some(false)),
        "delivered"
    );

    // A hostile hub operator flips a byte of the sealed fields it stores.
    f.hub.stop().await?;
    {
        let config = passerelle_daemon::config::Config::load(&hub_config)?;
        let settings = config.hub().expect("a hub").clone();
        let stored = passerelle_daemon::hub::Hub::open(&config.data_dir, settings, Default::default())?;
        assert_eq!(stored.tamper_introduction_for_tests(&id)?, 1);
    }
    let hub = InProcessDaemon::start_config(&hub_config).await?;
    let outgoing = list(&f.b.endpoint, "out").await?;
    assert_eq!(outgoing[0]["routed"], true);
    assert!(
        outgoing[0]["candidates"].as_array().is_some_and(Vec::is_empty),
        "a ciphertext that does not open is refused: {outgoing:?}"
    );
    for daemon in [f.a, f.b, f.c, hub] {
        daemon.stop().await?;
    }
    Ok(())
}

/// A request past its TTL takes no more answers: the holder sees it expired and its answer is
/// refused naming why; the requester sees it expired.
#[tokio::test(flavor = "multi_thread")]
async fn an_expired_request_takes_no_answers() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let port = passerelle_tests::free_port()?;
    let hub_config = pki.write_hub_config_on(HUB, port, "auto_accept = true", "")?;
    let hub = InProcessDaemon::start_config(&hub_config).await?;
    let f = federation_on(&pki, hub).await?;
    let id = introduce(&f).await?;
    assert_eq!(list(&f.a.endpoint, "in").await?[0]["status"], "open");

    // 31 days pass at the hub (the TTL is 30).
    f.hub.stop().await?;
    {
        let config = passerelle_daemon::config::Config::load(&hub_config)?;
        let settings = config.hub().expect("a hub").clone();
        let stored = passerelle_daemon::hub::Hub::open(&config.data_dir, settings, Default::default())?;
        stored.age_introduction_for_tests(&id, 31 * 24 * 3600 * 1000)?;
    }
    let hub = InProcessDaemon::start_config(&hub_config).await?;
    let incoming = list(&f.a.endpoint, "in").await?;
    assert_eq!(incoming[0]["status"], "expired", "{incoming:?}");
    let late = cli_async(
        &f.a.endpoint,
        &["introduction", "decline", &id, "--person", &f.dominique, "--reason", "not-available"],
    )
    .await;
    assert_ne!(late.code, 0, "{late:?}");
    assert!(late.stderr.contains("expired"), "{late:?}");
    let outgoing = list(&f.b.endpoint, "out").await?;
    assert_eq!(outgoing[0]["status"], "expired", "{outgoing:?}");
    for daemon in [f.a, f.b, f.c, hub] {
        daemon.stop().await?;
    }
    Ok(())
}

/// [`federation`] around a hub already started.
async fn federation_on(pki: &TestPki, hub: InProcessDaemon) -> anyhow::Result<Federation> {
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
        &[(HUB, endpoint.clone(), &["needs"])],
    )?)
    .await?;
    let c = InProcessDaemon::start_config(&pki.write_node_config(
        SIRETS[2],
        "49",
        &[(HUB, endpoint, &["profiles"])],
    )?)
    .await?;
    let mut na = NodeClient::connect(&a.endpoint, None).await?;
    let camille = add_consented(&mut na, candidate("Camille", "Martin")).await?;
    let dominique = add_consented(&mut na, candidate("Dominique", "Bernard")).await?;
    let mut nc = NodeClient::connect(&c.endpoint, None).await?;
    add_consented(&mut nc, PersonFields { rome_codes: vec!["A1101".into()], ..candidate("Alix", "Durand") })
        .await?;
    let need = cli_async(&b.endpoint, &[&["--format", "json"], need_add_args().as_slice()].concat())
        .await
        .ok()?
        .json()?;
    let need = need["id"].as_str().unwrap_or_default().to_string();
    for node in [&a, &b, &c] {
        NodeClient::connect(&node.endpoint, None).await?.sync_now(true, Duration::from_secs(30)).await?;
    }
    Ok(Federation { hub, a, b, c, camille, dominique, need })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_requester_certificate_of_another_ca_is_refused_by_the_holder() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    // The hub trusts two CAs; A trusts only its network's. B's certificate is of the other CA.
    let b_tls = pki.issue_foreign(Role::Node, SIRETS[1])?;
    let foreign_ca = pki.dir.join("foreign-ca").join("ca.pem");
    let hub_config = pki.write_hub_config(HUB, "auto_accept = true", "")?;
    let text = std::fs::read_to_string(&hub_config)?.replace(
        &format!("client_cas = [\"{}\"]", pki.ca_pem().display()),
        &format!("client_cas = [\"{}\", \"{}\"]", pki.ca_pem().display(), foreign_ca.display()),
    );
    std::fs::write(&hub_config, text)?;
    let hub = InProcessDaemon::start_config(&hub_config).await?;
    let endpoint = hub.hub_endpoint();
    let a = InProcessDaemon::start_config(&pki.write_node_config(
        SIRETS[0],
        "49",
        &[(HUB, endpoint.clone(), &["profiles"])],
    )?)
    .await?;
    let b = InProcessDaemon::start_config(&node_config(&pki, SIRETS[1], &b_tls, &endpoint, "needs")?).await?;
    let mut na = NodeClient::connect(&a.endpoint, None).await?;
    add_consented(&mut na, candidate("Camille", "Martin")).await?;
    let need = json(&b.endpoint, &need_add_args()).await?["id"].as_str().unwrap_or_default().to_string();
    for node in [&a, &b] {
        NodeClient::connect(&node.endpoint, None).await?.sync_now(true, Duration::from_secs(30)).await?;
    }
    let made = json(&b.endpoint, &["need", "introduce", &need]).await?;
    assert_eq!(made["routed"], true, "the hub routed it: {made:?}");
    assert!(list(&a.endpoint, "in").await?.is_empty(), "A does not take a request it cannot verify");
    for daemon in [a, b, hub] {
        daemon.stop().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn several_hubs_need_hub_and_an_unreachable_one_gets_the_request_once_back() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub = InProcessDaemon::start_config(&pki.write_hub_config(HUB, "auto_accept = true", "")?).await?;
    // The second hub is down when B asks.
    let port = passerelle_tests::free_port()?;
    let fas_config = pki.write_hub_config_on("fas-pdl", port, "auto_accept = true", "")?;
    let b = InProcessDaemon::start_config(&pki.write_node_config(
        SIRETS[1],
        "49",
        &[
            (HUB, hub.hub_endpoint(), &["needs"]),
            ("fas-pdl", format!("https://localhost:{port}"), &["needs"]),
        ],
    )?)
    .await?;
    let need = json(&b.endpoint, &need_add_args()).await?["id"].as_str().unwrap_or_default().to_string();

    let ambiguous = cli_async(&b.endpoint, &["need", "introduce", &need]).await;
    assert_eq!(ambiguous.code, 2, "{ambiguous:?}");
    assert!(ambiguous.stderr.contains("coorace-pdl, fas-pdl"), "{ambiguous:?}");
    let unknown = cli_async(&b.endpoint, &["need", "introduce", &need, "--hub", "other-hub"]).await;
    assert_ne!(unknown.code, 0);
    assert!(unknown.stderr.contains("not shared with this hub"), "{unknown:?}");

    // Queued while fas-pdl is down: the id is printed at once, the request goes once it is back.
    let queued =
        cli_async(&b.endpoint, &["--format", "json", "need", "introduce", &need, "--hub", "fas-pdl"])
            .await
            .ok()?;
    assert!(queued.stderr.contains("queued"), "{queued:?}");
    let queued = queued.json()?;
    assert_eq!(queued["status"], "queued");
    let id = queued["id"].as_str().unwrap_or_default().to_string();
    let table = cli_async(&b.endpoint, &["need", "introduce", &need, "--hub", HUB]).await.ok()?;
    assert_eq!(table.stdout.trim().len(), 36, "the table format prints the id alone: {table:?}");

    let fas = InProcessDaemon::start_config(&fas_config).await?;
    NodeClient::connect(&b.endpoint, None).await?.sync_now(true, Duration::from_secs(30)).await?;
    let outgoing = list(&b.endpoint, "out").await?;
    let sent = outgoing.iter().find(|i| i["id"] == id.as_str()).expect("the queued request");
    assert_eq!(sent["status"], "open", "{sent:?}");
    assert_eq!(sent["routed"], true);
    assert_eq!(sent["hub_id"], "fas-pdl");
    for daemon in [b, hub, fas] {
        daemon.stop().await?;
    }
    Ok(())
}
