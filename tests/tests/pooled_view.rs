//! The pooled view of profiles attacked by a member: a structure that plants fake persons in a
//! class must learn nothing of the one real person another structure holds there. Real daemons,
//! the attacker using only the CLI and its own node's API.

use std::time::Duration;

use passerelle_client::NodeClient;
use passerelle_proto::v1::{Barrier, ConsentPurpose, GrantConsentRequest, PersonFields};
use passerelle_tests::pki::{SIRETS, TestPki};
use passerelle_tests::{InProcessDaemon, cli_async};

/// A person of the class the attacker targets: 26-49, Angers (49), K2204, available March 2027,
/// 24 h, 15 km.
fn target(first: &str, barriers: &[Barrier]) -> PersonFields {
    PersonFields {
        first_name: first.into(),
        last_name: "Nom".into(),
        birth_date: "1990-04-02".into(),
        commune: "49007".into(),
        phone: None,
        email: None,
        rome_codes: vec!["K2204".into()],
        available_from: "2027-03-01".into(),
        hours_per_week: Some(24),
        mobility_km: Some(15),
        barriers: barriers.iter().map(|b| *b as i32).collect(),
        pass_iae_end: Some("2027-06-30".into()),
    }
}

/// A person of another class: under 26, Nantes (44), N1103.
fn elsewhere(first: &str) -> PersonFields {
    PersonFields {
        birth_date: "2005-06-01".into(),
        commune: "44109".into(),
        rome_codes: vec!["N1103".into()],
        available_from: "2027-01-04".into(),
        hours_per_week: Some(35),
        mobility_km: Some(5),
        barriers: Vec::new(),
        ..target(first, &[])
    }
}

async fn add_consented(node: &mut NodeClient, fields: PersonFields, sensitive: bool) -> anyhow::Result<()> {
    let p = node.add_person(fields).await?;
    let mut purposes = vec![ConsentPurpose::Placement];
    if sensitive {
        purposes.push(ConsentPurpose::PlacementSensitive);
    }
    for purpose in purposes {
        node.grant_consent(GrantConsentRequest {
            person_id: p.id.clone(),
            purpose: purpose as i32,
            hub_id: "coorace-pdl".into(),
            text_version: "2026-01".into(),
            collected_by: "accueil".into(),
        })
        .await?;
    }
    Ok(())
}

/// The victim structure holds one real person in the target class (with `victim_barriers`) and
/// five persons of another class; the attacker plants four fakes in the target class (two of them
/// with `sante`, so the class looks l-diverse). Returns what the attacker's `network profiles`
/// prints as JSON.
async fn attack(victim_barriers: &[Barrier]) -> anyhow::Result<Vec<serde_json::Value>> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub = InProcessDaemon::start_config(&pki.write_hub_config(
        "coorace-pdl",
        "auto_accept = true\nk_anonymity = 5",
        "",
    )?)
    .await?;
    let share = |siret: &str, dep: &str| {
        pki.write_node_config(siret, dep, &[("coorace-pdl", hub.hub_endpoint(), &["profiles"])])
    };
    let victim = InProcessDaemon::start_config(&share(SIRETS[0], "49")?).await?;
    let attacker = InProcessDaemon::start_config(&share(SIRETS[1], "49")?).await?;

    let mut v = NodeClient::connect(&victim.endpoint, None).await?;
    add_consented(&mut v, target("Réelle", victim_barriers), true).await?;
    for i in 0..5 {
        add_consented(&mut v, elsewhere(&format!("Autre{i}")), false).await?;
    }
    let mut a = NodeClient::connect(&attacker.endpoint, None).await?;
    for i in 0..4 {
        let barriers: &[Barrier] = if i < 2 { &[Barrier::Sante] } else { &[] };
        add_consented(&mut a, target(&format!("Fausse{i}"), barriers), true).await?;
    }
    v.sync_now(true, Duration::from_secs(30)).await?;
    a.sync_now(true, Duration::from_secs(30)).await?;

    let seen =
        cli_async(&attacker.endpoint, &["--format", "json", "network", "profiles"]).await.ok()?.json()?;
    for daemon in [attacker, victim, hub] {
        daemon.stop().await?;
    }
    Ok(seen.as_array().cloned().unwrap_or_default())
}

/// Nothing of the target class (26-49, at any level of generalisation) reaches the attacker, and
/// the other structure's class of five is still published, as one class of five.
fn assert_target_hidden(seen: &[serde_json::Value]) {
    let target: Vec<_> = seen.iter().filter(|c| c["age_band"] == "26-49").collect();
    assert!(target.is_empty(), "the attacker's fakes made the real person visible: {target:?}");
    let text = serde_json::to_string(seen).unwrap_or_default();
    assert!(!text.contains("2027-03"), "the real person's month leaked: {text}");
    assert!(!text.contains("holding"), "no holding structure is published: {text}");
    assert_eq!(seen.len(), 1, "one class: the five under-26 of Nantes: {seen:?}");
    assert_eq!(seen[0]["count"], 5, "{seen:?}");
    assert_eq!((seen[0]["area"].as_str(), seen[0]["rome"].as_str()), (Some("44"), Some("N11")));
}

/// Four fakes next to one real person: the class counts one (the viewer's own never count), so it
/// is withheld.
#[tokio::test(flavor = "multi_thread")]
async fn planted_fakes_do_not_reveal_another_structures_person() -> anyhow::Result<()> {
    let seen = attack(&[Barrier::Mobilite]).await?;
    assert_target_hidden(&seen);
    Ok(())
}

/// The same with a sensitive barrier (`justice`, GDPR art. 10) that the fakes' `sante` would make
/// look l-diverse.
#[tokio::test(flavor = "multi_thread")]
async fn planted_fakes_do_not_reveal_a_sensitive_barrier() -> anyhow::Result<()> {
    let seen = attack(&[Barrier::Justice]).await?;
    assert_target_hidden(&seen);
    let text = serde_json::to_string(&seen).unwrap_or_default();
    assert!(!text.contains("justice"), "{text}");
    Ok(())
}

/// Purposes at the hub: `stats profiles` counts only persons with a `statistics` consent for that
/// hub (placement alone never puts a person in a published table), and a person with `statistics`
/// and no `placement` is sent flagged statistics-only and never appears in the pooled view.
#[tokio::test(flavor = "multi_thread")]
async fn statistics_count_only_statistics_consents_and_the_view_only_placement() -> anyhow::Result<()> {
    use passerelle_proto::identity::Role;
    use passerelle_tests::hub_profiles_on_disk;

    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub_config = pki.write_hub_config("coorace-pdl", "auto_accept = true\nk_anonymity = 5", "")?;
    let hub = InProcessDaemon::start_config(&hub_config).await?;
    let mut nodes = Vec::new();
    // Three structures of 49, two persons with both consents each: a publishable cell of six.
    // Structure 0 adds five with placement only, structure 1 one with statistics only.
    for (i, placement_only, statistics_only) in [(0, 5, 0), (1, 0, 1), (2, 0, 0)] {
        let node = InProcessDaemon::start_config(&pki.write_node_config(
            SIRETS[i],
            "49",
            &[("coorace-pdl", hub.hub_endpoint(), &["profiles"])],
        )?)
        .await?;
        let mut client = NodeClient::connect(&node.endpoint, None).await?;
        let plan = [
            (2, &[ConsentPurpose::Placement, ConsentPurpose::Statistics][..]),
            (placement_only, &[ConsentPurpose::Placement][..]),
            (statistics_only, &[ConsentPurpose::Statistics][..]),
        ];
        for (n, purposes) in plan {
            for j in 0..n {
                let p = client.add_person(target(&format!("P{i}x{j}"), &[])).await?;
                for purpose in purposes {
                    client
                        .grant_consent(GrantConsentRequest {
                            person_id: p.id.clone(),
                            purpose: *purpose as i32,
                            hub_id: "coorace-pdl".into(),
                            text_version: "2026-01".into(),
                            collected_by: "accueil".into(),
                        })
                        .await?;
                }
            }
        }
        client.sync_now(true, Duration::from_secs(30)).await?;
        nodes.push(node);
    }

    let consumer = pki.issue(Role::Consumer, "dreets-52")?;
    let mut args = TestPki::cli_flags(&consumer);
    args.extend(["--format", "json", "stats", "profiles", "--by", "departement"].map(String::from));
    let table = cli_async(&hub.hub_endpoint(), &args.iter().map(String::as_str).collect::<Vec<_>>())
        .await
        .ok()?
        .json()?;
    let total = table["cells"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["total"] == true).cloned())
        .unwrap_or_default();
    assert_eq!(
        total["measures"]["profiles"], 7,
        "six with both consents and one statistics-only; the five placement-only are not counted: {table}"
    );

    let view =
        cli_async(&nodes[2].endpoint, &["--format", "json", "network", "profiles"]).await.ok()?.json()?;
    assert_eq!(
        view.as_array().map(|a| a.iter().map(|c| c["count"].clone()).collect::<Vec<_>>()),
        Some(vec![serde_json::json!(9)]),
        "structures 0 and 1: 2 + 5 + 2 placement profiles, not the statistics-only one: {view}"
    );
    for node in nodes {
        node.stop().await?;
    }
    hub.stop().await?;
    let held = hub_profiles_on_disk(&hub_config, SIRETS[1])?;
    let statistics_only: Vec<_> =
        held.iter().filter(|p| p.purposes == [ConsentPurpose::Statistics as i32]).collect();
    assert_eq!((held.len(), statistics_only.len()), (3, 1), "sent, flagged statistics-only: {held:?}");
    assert!(statistics_only[0].barriers.is_empty());
    Ok(())
}
