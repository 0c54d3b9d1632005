//! The web console in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) driven over WebDriver against real daemons — a hub, a holder node with the
//! console, and a requester node. Through the browser: log in, add a need (first with a bad ROME
//! code, whose message must show beside the field), grant a consent, accept an introduction;
//! then the CLI checks that each happened. A screenshot of every page goes to
//! `target/gui-screenshots/` for a person to look at.
//!
//! Outside CI, a machine without Chromium skips this test (and says so); in CI (`CI` set) a
//! missing browser fails it, since `.ci/run` installs it.

use std::path::PathBuf;
use std::time::Duration;

use passerelle_client::NodeClient;
use passerelle_proto::v1::PersonFields;
use passerelle_tests::console::{PASSWORD, add_user};
use passerelle_tests::pki::{SIRETS, TestPki};
use passerelle_tests::webdriver::{self, Browser};
use passerelle_tests::{InProcessDaemon, cli_async, free_port, need_add_args};
use serde_json::Value;

const HUB: &str = "coorace-pdl";

fn screenshots() -> PathBuf {
    // target/<profile>/deps/<test> → target/gui-screenshots
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .nth(3)
        .map(|t| t.join("gui-screenshots"))
        .unwrap_or_else(|| PathBuf::from("gui-screenshots"))
}

async fn json(endpoint: &str, args: &[&str]) -> anyhow::Result<Value> {
    cli_async(endpoint, &[&["--format", "json"], args].concat()).await.ok()?.json()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_counsellor_works_through_the_console_in_chromium() -> anyhow::Result<()> {
    if !webdriver::available() {
        assert!(std::env::var_os("CI").is_none(), "CI must install chromium and chromium-driver (.ci/run)");
        println!(
            "skipped: {} or {} is missing (apt-get install chromium chromium-driver)",
            webdriver::CHROMIUM,
            webdriver::CHROMEDRIVER
        );
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub = InProcessDaemon::start_config(&pki.write_hub_config(HUB, "auto_accept = true", "")?).await?;
    // A: the holder, with the console; B: the requester.
    let a_config =
        pki.write_node_config(SIRETS[0], "49", &[(HUB, hub.hub_endpoint(), &["profiles", "needs"])])?;
    let mut text = std::fs::read_to_string(&a_config)?;
    text.push_str("\n[gui]\nlisten = \"127.0.0.1:0\"\n");
    std::fs::write(&a_config, text)?;
    let a = InProcessDaemon::start_config(&a_config).await?;
    let b = InProcessDaemon::start_config(&pki.write_node_config(
        SIRETS[1],
        "49",
        &[(HUB, hub.hub_endpoint(), &["needs"])],
    )?)
    .await?;
    let gui = a.gui_addr.ok_or_else(|| anyhow::anyhow!("no console"))?;
    let base = format!("http://{gui}");
    add_user(&a.endpoint, "camille.cip", "admin")?;
    let mut na = NodeClient::connect(&a.endpoint, None).await?;
    let person = na
        .add_person(PersonFields {
            first_name: "Ysaline".into(),
            last_name: "Quenouille".into(),
            birth_date: "1990-04-02".into(),
            commune: "49007".into(),
            phone: Some("06 98 76 54 32".into()),
            email: Some("ysaline@example.fr".into()),
            rome_codes: vec!["K2204".into()],
            available_from: "2026-12-07".into(),
            hours_per_week: Some(24),
            mobility_km: Some(15),
            barriers: Vec::new(),
            pass_iae_end: None,
        })
        .await?;
    let shots = screenshots();
    let browser = Browser::start(free_port()?).await?;

    // Log in (the keyboard alone reaches the fields: Tab from the name to the password).
    browser.goto(&format!("{base}/connexion")).await?;
    browser.screenshot(&shots, "01-connexion").await?;
    browser.fill("#name", "camille.cip").await?;
    browser.keys("\u{E004}").await?;
    assert_eq!(browser.focused().await?, "password", "Tab goes from the name to the password");
    browser.fill("#password", PASSWORD).await?;
    browser.click("button[type=submit]").await?;
    // The dashboard's title (the login page has no navigation: finding it waits for the load).
    browser.find("nav a[aria-current=page][href='/tableau-de-bord']").await?;
    assert!(browser.url().await?.ends_with("/tableau-de-bord"), "{}", browser.source().await?);
    browser.screenshot(&shots, "02-tableau-de-bord").await?;

    // A need with a bad ROME code: the node's message beside the field; then fixed and saved.
    browser.goto(&format!("{base}/besoins/nouveau")).await?;
    for (field, value) in [
        ("#rome_code", "K22A4"),
        ("#title", "Agent d'entretien des espaces verts"),
        ("#open_positions", "2"),
        ("#hours_per_week", "24"),
        ("#departement", "49"),
        ("#commune", "49007"),
    ] {
        browser.fill(field, value).await?;
    }
    // The date through the keyboard, as typed in Chromium's date field (whose order of day and
    // month follows the browser's locale: what it made of the keys is read back).
    browser.click("#start_date").await?;
    browser.keys("01122026").await?;
    let start = browser.value("#start_date").await?;
    assert!(start == "2026-12-01" || start == "2026-01-12", "{start}");
    browser.click("#contract_type option[value=cddi]").await?;
    browser.click("form.card button[type=submit]").await?;
    let message = browser.text("#rome_code-erreur").await?;
    assert!(message.contains("expected a letter A-N followed by 4 digits"), "{message}");
    browser.screenshot(&shots, "03-besoin-erreur").await?;
    browser.fill("#rome_code", "K2204").await?;
    browser.click("form.card button[type=submit]").await?;
    assert_eq!(browser.text(".flash").await?, "Besoin enregistré.");
    assert!(browser.url().await?.ends_with("/besoins"), "{}", browser.url().await?);
    let needs = json(&a.endpoint, &["need", "list"]).await?;
    assert_eq!(needs[0]["rome_code"], "K2204", "{needs}");
    assert_eq!(needs[0]["start_date"], start.as_str(), "{needs}");
    browser.screenshot(&shots, "04-besoins").await?;

    // Grant the placement consent for the hub on the person's page.
    browser.goto(&format!("{base}/personnes")).await?;
    browser.screenshot(&shots, "05-personnes").await?;
    browser.click(&format!("a[href='/personnes/fiche?id={}']", person.id)).await?;
    browser.click("#purpose option[value=placement]").await?;
    browser.click(&format!("#hub_id option[value={HUB}]")).await?;
    browser.fill("#text_version", "2026-01").await?;
    browser.click("form[action='/consentements/accorder'] button").await?;
    assert_eq!(browser.text(".flash").await?, "Consentement enregistré.");
    browser.screenshot(&shots, "06-fiche-personne").await?;
    let consents = json(&a.endpoint, &["consent", "list", "--person", &person.id]).await?;
    assert_eq!(consents[0]["collected_by"], "camille.cip", "{consents}");
    browser.goto(&format!("{base}/personnes/rapport?id={}", person.id)).await?;
    browser.screenshot(&shots, "07-rapport").await?;

    // The profile reaches the hub; B asks for candidates for its need.
    na.sync_now(true, Duration::from_secs(30)).await?;
    let need = json(&b.endpoint, &need_add_args()).await?;
    let need_id = need["id"].as_str().unwrap_or_default().to_string();
    NodeClient::connect(&b.endpoint, None).await?.sync_now(true, Duration::from_secs(30)).await?;
    let request = json(&b.endpoint, &["need", "introduce", &need_id]).await?;
    let request_id = request["id"].as_str().unwrap_or_default().to_string();

    // A's counsellor accepts for the person, sharing the last name too.
    browser.goto(&format!("{base}/mises-en-relation")).await?;
    let suffix = format!("{request_id}-{}", person.id);
    browser.click(&format!("#share-last-{suffix}")).await?;
    browser.fill(&format!("#text_version-{suffix}"), "2026-01").await?;
    browser.screenshot(&shots, "08-mises-en-relation").await?;
    browser.click("form[action='/mises-en-relation/accepter'] button").await?;
    assert_eq!(browser.text(".flash").await?, "Acceptation enregistrée et transmise.");
    browser.screenshot(&shots, "09-mise-en-relation-acceptee").await?;

    // B receives the candidate's fields.
    let out = json(&b.endpoint, &["introductions", "list", "--direction", "out"]).await?;
    let text = out.to_string();
    assert!(
        text.contains("Ysaline") && text.contains("Quenouille") && text.contains("06 98 76 54 32"),
        "{out}"
    );

    for (path, name) in [("/indicateurs", "10-indicateurs"), ("/reseau", "11-reseau")] {
        browser.goto(&format!("{base}{path}")).await?;
        browser.screenshot(&shots, name).await?;
    }
    browser.quit().await?;
    println!("screenshots in {}", shots.display());
    for daemon in [a, b, hub] {
        daemon.stop().await?;
    }
    Ok(())
}
