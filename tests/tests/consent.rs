//! Consent and anonymised profiles end to end: what leaves a node, to which hub, and how it is
//! taken back. Hubs' stores are checked on disk, not only through their APIs.

use std::path::PathBuf;
use std::time::Duration;

use passerelle_client::NodeClient;
use passerelle_proto::v1::{
    Barrier, ConsentPurpose, GrantConsentRequest, PersonFields, WithdrawConsentRequest,
};
use passerelle_tests::pki::{SIRETS, TestPki};
use passerelle_tests::{
    ChildDaemon, InProcessDaemon, cli_async, dir_contains, free_port, hub_profiles_on_disk,
    hub_records_on_disk,
};

fn person(first: &str, last: &str, barriers: &[Barrier]) -> PersonFields {
    PersonFields {
        first_name: first.into(),
        last_name: last.into(),
        birth_date: "1990-04-02".into(),
        commune: "49007".into(),
        phone: Some("06 12 34 56 78".into()),
        email: Some(format!("{}@example.fr", first.to_lowercase())),
        rome_codes: vec!["K2204".into(), "G1602".into()],
        available_from: "2026-12-07".into(),
        hours_per_week: Some(24),
        mobility_km: Some(15),
        barriers: barriers.iter().map(|b| *b as i32).collect(),
        pass_iae_end: Some("2027-06-30".into()),
    }
}

fn grant(person_id: &str, purpose: ConsentPurpose, hub: &str) -> GrantConsentRequest {
    GrantConsentRequest {
        person_id: person_id.into(),
        purpose: purpose as i32,
        hub_id: hub.into(),
        text_version: "2026-01".into(),
        collected_by: "accueil".into(),
    }
}

struct Hubs {
    a: (PathBuf, ChildDaemon),
    b: (PathBuf, ChildDaemon),
}

impl Hubs {
    /// Stops both hubs (SIGKILL: what is acknowledged is on disk), runs `check`, restarts them.
    fn inspect(self, check: impl FnOnce(&PathBuf, &PathBuf) -> anyhow::Result<()>) -> anyhow::Result<Self> {
        let (a_config, a) = self.a;
        let (b_config, b) = self.b;
        a.kill9()?;
        b.kill9()?;
        check(&a_config, &b_config)?;
        Ok(Self {
            a: (a_config.clone(), ChildDaemon::spawn(&a_config)?),
            b: (b_config.clone(), ChildDaemon::spawn(&b_config)?),
        })
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn profiles_follow_consent_per_hub_and_are_purged_on_withdrawal() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let (port_a, port_b) = (free_port()?, free_port()?);
    let a_config = pki.write_hub_config_on("coorace-pdl", port_a, "auto_accept = true", "")?;
    let b_config = pki.write_hub_config_on("fas-pdl", port_b, "auto_accept = true", "")?;
    let mut hubs = Hubs {
        a: (a_config.clone(), ChildDaemon::spawn(&a_config)?),
        b: (b_config.clone(), ChildDaemon::spawn(&b_config)?),
    };
    let node = InProcessDaemon::start_config(&pki.write_node_config(
        SIRETS[0],
        "49",
        &[
            ("coorace-pdl", format!("https://localhost:{port_a}"), &["needs", "profiles"]),
            ("fas-pdl", format!("https://localhost:{port_b}"), &["profiles"]),
        ],
    )?)
    .await?;
    let mut n = NodeClient::connect(&node.endpoint, None).await?;

    let camille = n.add_person(person("Camille", "Martin", &[Barrier::Mobilite, Barrier::Sante])).await?;
    let dominique = n.add_person(person("Dominique", "Bernard", &[])).await?;
    let sacha = n
        .add_person(person("Sacha", "Petit", &[Barrier::Sante, Barrier::Justice, Barrier::Logement]))
        .await?;
    let _alix = n.add_person(person("Alix", "Durand", &[])).await?;
    n.grant_consent(grant(&camille.id, ConsentPurpose::Placement, "coorace-pdl")).await?;
    n.grant_consent(grant(&dominique.id, ConsentPurpose::Statistics, "coorace-pdl")).await?;
    n.grant_consent(grant(&sacha.id, ConsentPurpose::Placement, "coorace-pdl")).await?;
    n.grant_consent(grant(&sacha.id, ConsentPurpose::PlacementSensitive, "coorace-pdl")).await?;
    n.sync_now(true, Duration::from_secs(30)).await?;

    let mut coorace_keys = Vec::new();
    hubs = hubs.inspect(|a, b| {
        let all = hub_profiles_on_disk(a, SIRETS[0])?;
        let placement = ConsentPurpose::Placement as i32;
        let (profiles, statistics_only): (Vec<_>, Vec<_>) =
            all.into_iter().partition(|p| p.purposes.contains(&placement));
        assert_eq!(
            profiles.len(),
            2,
            "placement consent for Coorace: Camille and Sacha only (not statistics, not none)"
        );
        assert_eq!(
            statistics_only.iter().map(|p| p.purposes.clone()).collect::<Vec<_>>(),
            vec![vec![ConsentPurpose::Statistics as i32]],
            "Dominique's statistics consent: a profile flagged statistics-only, never in the view"
        );
        let sensitive = |p: &passerelle_proto::v1::AnonymizedProfile| {
            p.barriers.iter().any(|b| *b == Barrier::Sante as i32 || *b == Barrier::Justice as i32)
        };
        assert_eq!(
            profiles.iter().filter(|p| sensitive(p)).count(),
            1,
            "only Sacha's, who gave placement-sensitive"
        );
        assert!(
            profiles.iter().all(|p| p.departement == "49"
                && p.available_from == "2026-12"
                && p.holding_siret == SIRETS[0])
        );
        assert!(hub_profiles_on_disk(b, SIRETS[0])?.is_empty(), "no consent for FAS: FAS receives nothing");
        assert!(hub_records_on_disk(b, SIRETS[0], "profiles")?.is_empty(), "not even a tombstone");
        let data = a.parent().unwrap_or(a).join("coorace-pdl-data");
        for secret in [
            "Camille",
            "Martin",
            "Sacha",
            "Petit",
            "1990-04-02",
            "06 12 34 56 78",
            "camille@example.fr",
            "49007",
        ] {
            assert!(!dir_contains(&data, secret)?, "{secret} is in the hub's files");
        }
        coorace_keys = hub_records_on_disk(a, SIRETS[0], "profiles")?.into_iter().map(|r| r.0).collect();
        Ok(())
    })?;

    // The same person at a second hub gets another pseudonym.
    n.grant_consent(grant(&camille.id, ConsentPurpose::Placement, "fas-pdl")).await?;
    n.sync_now(true, Duration::from_secs(30)).await?;
    hubs = hubs.inspect(|_, b| {
        let fas: Vec<String> =
            hub_records_on_disk(b, SIRETS[0], "profiles")?.into_iter().map(|r| r.0).collect();
        assert_eq!(fas.len(), 1);
        assert!(!coorace_keys.contains(&fas[0]), "two hubs cannot link their copies");
        Ok(())
    })?;

    // Withdrawal: Coorace purges Camille's profile; FAS keeps its own. Erasure: Sacha is purged.
    n.withdraw_consent(WithdrawConsentRequest {
        person_id: camille.id.clone(),
        purpose: ConsentPurpose::Placement as i32,
        hub_id: "coorace-pdl".into(),
    })
    .await?;
    n.delete_person(&sacha.id).await?;
    n.sync_now(true, Duration::from_secs(30)).await?;
    hubs = hubs.inspect(|a, b| {
        let left = hub_profiles_on_disk(a, SIRETS[0])?;
        assert_eq!(
            left.iter().map(|p| p.purposes.clone()).collect::<Vec<_>>(),
            vec![vec![ConsentPurpose::Statistics as i32]],
            "withdrawn and erased: nothing left at Coorace but Dominique's statistics-only profile"
        );
        let records = hub_records_on_disk(a, SIRETS[0], "profiles")?;
        assert_eq!(records.len(), 3);
        assert_eq!(records.iter().filter(|r| !r.2).count(), 2, "two tombstones, no payload");
        assert_eq!(
            hub_profiles_on_disk(b, SIRETS[0])?.len(),
            1,
            "FAS still has Camille under its own consent"
        );
        Ok(())
    })?;

    // The person's report answers an access request, and the audit log is intact.
    let report = cli_async(&node.endpoint, &["--format", "json", "person", "report", &camille.id])
        .await
        .ok()?
        .json()?;
    let shares = report["shares"].as_array().cloned().unwrap_or_default();
    let coorace = shares.iter().find(|s| s["id"] == "coorace-pdl").cloned().unwrap_or_default();
    assert_eq!(coorace["held"], false);
    assert!(coorace["purge_requested"].is_string() && coorace["purge_acknowledged"].is_string(), "{coorace}");
    assert!(
        coorace["categories"].as_array().is_some_and(|c| !c.iter().any(|x| x == "barrier sante")),
        "{coorace}"
    );
    let fas = shares.iter().find(|s| s["id"] == "fas-pdl").cloned().unwrap_or_default();
    assert_eq!(fas["held"], true);
    assert_eq!(report["consents"].as_array().map(Vec::len), Some(2));
    let kinds: Vec<String> = report["audit"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["kind"].as_str().map(String::from))
        .collect();
    assert!(
        kinds.contains(&"share".into())
            && kinds.contains(&"purge-request".into())
            && kinds.contains(&"purge-ack".into()),
        "{kinds:?}"
    );
    let table = cli_async(&node.endpoint, &["person", "report", &camille.id]).await.ok()?;
    assert!(table.stdout.contains("hubs that received the profile"), "{table:?}");

    let verify = cli_async(&node.endpoint, &["audit", "verify"]).await;
    assert_eq!(verify.code, 0, "{verify:?}");
    let listed = cli_async(&node.endpoint, &["--format", "json", "audit", "list", "--person", &sacha.id])
        .await
        .ok()?
        .json()?;
    assert!(listed.as_array().is_some_and(|l| l.iter().any(|e| e["kind"] == "purge-ack")), "{listed}");

    drop(hubs);
    let config = node.config.clone();
    node.stop().await?;

    // Altering one stored entry makes `audit verify` fail.
    {
        let structure = config.node().map(|n| n.structure.clone()).unwrap_or_default();
        let node = passerelle_daemon::node::Node::open(&config.data_dir, structure)?;
        node.tamper_audit_for_tests(2)?;
    }
    let node = InProcessDaemon::start_config(config.source.as_deref().unwrap_or(&PathBuf::new())).await?;
    let verify = cli_async(&node.endpoint, &["audit", "verify"]).await;
    assert_eq!(verify.code, 3, "{verify:?}");
    assert!(verify.stderr.contains("broken at entry 2"), "{verify:?}");
    node.stop().await
}

/// The pooled view another structure sees is k-anonymous classes: a class smaller than k is
/// generalised (département → région, then domaine → grand domaine) or withheld, each profile
/// counts in one class only, and sensitive barriers show only where a class is l-diverse.
#[tokio::test(flavor = "multi_thread")]
async fn the_network_view_of_profiles_is_k_anonymous() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub = InProcessDaemon::start_config(&pki.write_hub_config(
        "coorace-pdl",
        "auto_accept = true\nk_anonymity = 3",
        "",
    )?)
    .await?;
    let holder = InProcessDaemon::start_config(&pki.write_node_config(
        SIRETS[0],
        "49",
        &[("coorace-pdl", hub.hub_endpoint(), &["profiles"])],
    )?)
    .await?;
    let viewer = InProcessDaemon::start_config(&pki.write_node_config(
        SIRETS[1],
        "44",
        &[("coorace-pdl", hub.hub_endpoint(), &["profiles"])],
    )?)
    .await?;
    let mut n = NodeClient::connect(&holder.endpoint, None).await?;

    let add =
        |birth: &'static str, commune: &'static str, rome: &'static str, barriers: &'static [Barrier]| {
            let mut fields = person("Prénom", "Nom", barriers);
            fields.birth_date = birth.into();
            fields.commune = commune.into();
            fields.rome_codes = vec![rome.into()];
            fields
        };
    let people = vec![
        add("1990-04-02", "49007", "K2204", &[Barrier::Sante]),
        add("1985-01-10", "49007", "K2201", &[Barrier::Sante]),
        add("1979-07-21", "49099", "K2204", &[Barrier::Sante]),
        add("1992-03-03", "44109", "K2204", &[Barrier::Mobilite]),
        add("1988-12-12", "44109", "K2202", &[Barrier::Mobilite]),
        add("1987-02-02", "85191", "K2202", &[Barrier::Mobilite]),
        add("1960-05-05", "85191", "N1103", &[]),
    ];
    for fields in people {
        let p = n.add_person(fields).await?;
        n.grant_consent(grant(&p.id, ConsentPurpose::Placement, "coorace-pdl")).await?;
        n.grant_consent(grant(&p.id, ConsentPurpose::PlacementSensitive, "coorace-pdl")).await?;
    }
    n.sync_now(true, Duration::from_secs(30)).await?;
    NodeClient::connect(&viewer.endpoint, None).await?.sync_now(true, Duration::from_secs(30)).await?;

    let seen =
        cli_async(&viewer.endpoint, &["--format", "json", "network", "profiles"]).await.ok()?.json()?;
    let seen = seen.as_array().cloned().unwrap_or_default();
    assert_eq!(seen.len(), 2, "the only 50+ profile cannot reach k = 3 even generalised: withheld: {seen:?}");
    let at = |area: &str| seen.iter().find(|c| c["area"] == area).cloned().unwrap_or_default();
    assert_eq!(at("49")["count"], 3, "three 26-49 in 49 / K22: published at département level");
    assert_eq!(at("49")["area_level"], "departement");
    assert_eq!(at("52")["count"], 3, "two in 44 and one in 85 / K22: one class of the région");
    assert_eq!(at("52")["area_level"], "region");
    assert!(seen.iter().all(|c| c["rome"] == "K22" && c["age_band"] == "26-49"));
    let text = serde_json::to_string(&seen)?;
    for absent in ["holding", "pseudonym", SIRETS[0]] {
        assert!(!text.contains(absent), "no holding structure, no row per person: {absent} in {text}");
    }
    assert_eq!(at("49")["barriers"], serde_json::json!({}), "sante in every profile of 49 is not l-diverse");
    assert_eq!(at("52")["barriers"]["mobilite"], 3);
    assert_eq!(at("49")["hours_band"]["21-34h"], 3, "a breakdown whose every part reaches k is shown");

    let nantes =
        cli_async(&viewer.endpoint, &["--format", "json", "network", "profiles", "--departement", "44"])
            .await
            .ok()?
            .json()?;
    assert_eq!(
        nantes.as_array().map(|a| a.iter().map(|c| c["area"].clone()).collect::<Vec<_>>()),
        Some(vec![serde_json::json!("52")]),
        "région-level classes match a département of the région"
    );
    let own = cli_async(&holder.endpoint, &["--format", "json", "network", "profiles"]).await.ok()?.json()?;
    assert_eq!(
        own.as_array().map(Vec::len),
        Some(0),
        "a structure does not see its own people in the network view"
    );

    for daemon in [viewer, holder, hub] {
        daemon.stop().await?;
    }
    Ok(())
}

/// Arbitrary persons (generated by proptest, fixed seed) go through a real node to a real hub
/// under consent; afterwards no file of the hub's data directory contains any of their names,
/// birth dates, phones, e-mails or commune codes.
#[tokio::test(flavor = "multi_thread")]
async fn arbitrary_persons_leave_no_personal_data_at_the_hub() -> anyhow::Result<()> {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::{Config as ProptestConfig, TestRunner};

    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub_config = pki.write_hub_config("coorace-pdl", "auto_accept = true", "")?;
    let hub = InProcessDaemon::start_config(&hub_config).await?;
    let node = InProcessDaemon::start_config(&pki.write_node_config(
        SIRETS[2],
        "49",
        &[("coorace-pdl", hub.hub_endpoint(), &["profiles"])],
    )?)
    .await?;
    let mut n = NodeClient::connect(&node.endpoint, None).await?;

    let strategy = (
        "[A-Z][a-zéèç]{3,12}",
        "[A-Z][a-zéèç]{3,15}",
        1945i32..2006,
        1u8..=12,
        1u8..=28,
        proptest::sample::select(vec!["49", "44", "72", "85", "53"]),
        0u32..1000,
        "0[67]( [0-9]{2}){4}",
        "[a-z]{4,10}",
    );
    let mut runner = TestRunner::new(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(20261122),
        ..ProptestConfig::default()
    });
    let mut secrets = Vec::new();
    for _ in 0..30 {
        let (first, last, year, month, day, dep, suffix, phone, user) =
            strategy.new_tree(&mut runner).map_err(|e| anyhow::anyhow!("{e}"))?.current();
        let commune = format!("{dep}{:03}", 1 + suffix % 300);
        let birth = format!("{year:04}-{month:02}-{day:02}");
        let email = format!("{user}@example.fr");
        let mut fields = person(&first, &last, &[Barrier::Mobilite, Barrier::Sante]);
        fields.birth_date = birth.clone();
        fields.commune = commune.clone();
        fields.phone = Some(phone.clone());
        fields.email = Some(email.clone());
        let p = n.add_person(fields).await?;
        n.grant_consent(grant(&p.id, ConsentPurpose::Placement, "coorace-pdl")).await?;
        n.grant_consent(grant(&p.id, ConsentPurpose::PlacementSensitive, "coorace-pdl")).await?;
        secrets.extend([first, last, birth, commune, phone, email]);
    }
    n.sync_now(true, Duration::from_secs(30)).await?;
    node.stop().await?;
    hub.stop().await?;
    assert_eq!(hub_profiles_on_disk(&hub_config, SIRETS[2])?.len(), 30, "every profile arrived");
    let data = hub_config.parent().unwrap_or(&hub_config).join("coorace-pdl-data");
    for secret in &secrets {
        let found = passerelle_tests::dir_find(&data, secret)?;
        assert!(found.is_none(), "{secret:?} reached the hub's disk: {found:?}");
    }
    Ok(())
}

/// The race of issue 13: 100 persons granted then at once withdrawn placement consent through
/// the API while sync runs. A profile counts as possibly held from the moment it enters a batch,
/// so each withdrawal sends a tombstone to the hub whether the share's acknowledgement came back
/// or not: once sync settles, the hub's store (opened after it stops) holds none of them, and
/// every person report says whether a purge was needed and acknowledged.
#[tokio::test(flavor = "multi_thread")]
async fn grant_then_withdraw_races_leave_no_profile_at_the_hub() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub_config = pki.write_hub_config("coorace-pdl", "auto_accept = true", "")?;
    let hub = InProcessDaemon::start_config(&hub_config).await?;
    let node = InProcessDaemon::start_config(&pki.write_node_config(
        SIRETS[2],
        "49",
        &[("coorace-pdl", hub.hub_endpoint(), &["profiles"])],
    )?)
    .await?;
    let mut n = NodeClient::connect(&node.endpoint, None).await?;
    let mut ids = Vec::new();
    for i in 0..100 {
        let p = n.add_person(person(&format!("Race{i:03}"), "Martin", &[])).await?;
        n.grant_consent(grant(&p.id, ConsentPurpose::Placement, "coorace-pdl")).await?;
        if i % 3 == 0 {
            // Let some shares reach the hub (and maybe their acks) before the withdrawal.
            tokio::task::yield_now().await;
        }
        n.withdraw_consent(WithdrawConsentRequest {
            person_id: p.id.clone(),
            purpose: ConsentPurpose::Placement as i32,
            hub_id: "coorace-pdl".into(),
        })
        .await?;
        ids.push(p.id);
    }
    n.sync_now(true, Duration::from_secs(60)).await?;
    let mut reports = Vec::new();
    for id in &ids {
        let report = n.person_report(id).await?;
        for share in &report.shares {
            assert!(!share.held, "{id}: still held at {}: {share:?}", share.hub_id);
            if share.purge_requested_at_ms > 0 {
                assert!(share.purge_acked_at_ms > 0, "{id}: purge requested, never acknowledged: {share:?}");
            }
        }
        reports.push(report);
    }
    node.stop().await?;
    hub.stop().await?;
    let left = hub_profiles_on_disk(&hub_config, SIRETS[2])?;
    // On failure, say whose profile is left and what the node recorded of it (a race is rare
    // and must be diagnosable from one failing run).
    let diagnosis: Vec<String> = left
        .iter()
        .map(|profile| {
            let report = reports.iter().find(|r| r.shares.iter().any(|s| s.pseudonym == profile.pseudonym));
            format!(
                "left at the hub: version {} of {}; the node recorded: {report:#?}",
                profile.origin_version, profile.pseudonym
            )
        })
        .collect();
    assert!(
        left.is_empty(),
        "{} profiles of withdrawn persons still at the hub:\n{}",
        left.len(),
        diagnosis.join("\n")
    );
    Ok(())
}
