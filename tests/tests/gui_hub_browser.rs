//! The hub's web console in a real browser: headless Chromium over WebDriver against a real hub
//! (`close = "manual"`) fed by three real nodes, two of which report the last month. Through the
//! browser: log in, see the members, see the month's completeness with one member missing,
//! close the month, open the statistics page and find the charts' SVG and a suppressed cell.
//! A screenshot of every page goes to `target/gui-screenshots/hub-*.png` for a person to look at.
//!
//! Skipped with a message when Chromium is missing outside CI, as `gui_browser.rs`.

use std::path::PathBuf;
use std::time::Duration;

use passerelle_client::NodeClient;
use passerelle_proto::date::{Month, now_unix_ms};
use passerelle_proto::periods::month_at;
use passerelle_tests::console::{PASSWORD, add_user};
use passerelle_tests::fixtures::report;
use passerelle_tests::pki::{SIRETS, TestPki};
use passerelle_tests::webdriver::{self, Browser};
use passerelle_tests::{InProcessDaemon, cli_async, free_port, need_add_args};

const HUB: &str = "coorace-pdl";

fn screenshots() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .nth(3)
        .map(|t| t.join("gui-screenshots"))
        .unwrap_or_else(|| PathBuf::from("gui-screenshots"))
}

#[tokio::test(flavor = "multi_thread")]
async fn network_staff_use_the_hub_console_in_chromium() -> anyhow::Result<()> {
    if !webdriver::available() {
        assert!(std::env::var_os("CI").is_none(), "CI must install chromium and chromium-driver (.ci/run)");
        println!("skipped: {} or {} is missing", webdriver::CHROMIUM, webdriver::CHROMEDRIVER);
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub = InProcessDaemon::start_config(&pki.write_hub_config(
        HUB,
        "auto_accept = true",
        "\n[periods]\nclose = \"manual\"\ndeadline_day = 28\n\n[gui]\nlisten = \"127.0.0.1:0\"\n",
    )?)
    .await?;
    let base = format!("http://{}", hub.gui_addr.ok_or_else(|| anyhow::anyhow!("no console"))?);
    let last = Month::from_ordinal(month_at(now_unix_ms()).ordinal() - 1);
    let before = Month::from_ordinal(last.ordinal() - 1);
    let (last_s, before_s) = (last.to_string(), before.to_string());

    // Three structures report the month before and post a need; two report the last month.
    let mut nodes = Vec::new();
    for (i, siret) in SIRETS[..3].iter().enumerate() {
        let hubs = [(HUB, hub.hub_endpoint(), &["indicators", "needs"][..])];
        let node = InProcessDaemon::start_config(&pki.write_node_config(siret, "49", &hubs)?).await?;
        let mut client = NodeClient::connect(&node.endpoint, None).await?;
        client.submit_indicators(report(&before_s)).await?;
        if i < 2 {
            client.submit_indicators(report(&last_s)).await?;
        }
        cli_async(&node.endpoint, &need_add_args()).await.ok()?;
        client.sync_now(true, Duration::from_secs(30)).await?;
        nodes.push(node);
    }
    cli_async(&hub.endpoint, &["hub", "period", "close", &before_s]).await.ok()?;
    add_user(&hub.endpoint, "claire.reseau", "admin")?;

    let shots = screenshots();
    let browser = Browser::start(free_port()?).await?;
    browser.goto(&format!("{base}/connexion")).await?;
    browser.fill("#name", "claire.reseau").await?;
    browser.fill("#password", PASSWORD).await?;
    browser.click("button[type=submit]").await?;
    browser.find("nav a[aria-current=page][href='/membres']").await?;
    let members = browser.source().await?;
    for siret in &SIRETS[..3] {
        assert!(members.contains(siret), "{siret} in the members page");
    }
    browser.screenshot(&shots, "hub-01-membres").await?;

    // The last month: two of three reported, one missing; the admin closes it.
    browser.goto(&format!("{base}/completude?periode={last_s}")).await?;
    let summary = browser.text("p.summary").await?;
    assert!(
        summary.contains("2 rapport(s) reçu(s) sur 3 attendu(s)") && summary.contains("1 manquant"),
        "{summary}"
    );
    browser.find("svg.chart").await?;
    browser.screenshot(&shots, "hub-02-completude").await?;
    browser.click(&format!("button[aria-label='Clôturer : {last_s}']")).await?;
    assert!(browser.text(".flash").await?.starts_with("Mois clôturé"));
    browser.screenshot(&shots, "hub-03-mois-cloture").await?;
    let list = cli_async(&hub.endpoint, &["--format", "json", "hub", "period", "list"]).await.ok()?.json()?;
    let closed = list.as_array().and_then(|a| a.iter().find(|p| p["period"] == last_s.as_str())).cloned();
    assert_eq!(closed.map(|p| p["state"].clone()), Some("closed".into()), "{list}");

    // Statistics of the closed month: the charts' SVG and suppressed cells marked as such.
    browser.goto(&format!("{base}/statistiques?table=indicators&period={last_s}&by=departement")).await?;
    browser.find("svg.chart[role=img]").await?;
    let cell = browser.text("table.stats td.suppressed").await?;
    assert!(cell.contains("secret statistique"), "{cell}");
    browser.screenshot(&shots, "hub-04-statistiques").await?;
    browser
        .goto(&format!("{base}/statistiques?table=indicators&period={last_s}&by=departement#graphiques"))
        .await?;
    browser.find("svg#etp").await?;
    browser.screenshot(&shots, "hub-04b-graphiques").await?;
    browser.goto(&format!("{base}/statistiques?table=needs&by=rome-grand-domaine&by=start-month")).await?;
    browser.find("svg#besoins").await?;
    browser.screenshot(&shots, "hub-05-statistiques-besoins").await?;
    browser
        .goto(&format!("{base}/statistiques?table=needs&by=rome-grand-domaine&by=start-month#besoins"))
        .await?;
    browser.screenshot(&shots, "hub-05b-graphique-besoins").await?;
    browser.goto(&format!("{base}/synchronisation")).await?;
    browser.screenshot(&shots, "hub-06-synchronisation").await?;
    browser.quit().await?;
    println!("screenshots in {}", shots.display());
    for node in nodes {
        node.stop().await?;
    }
    hub.stop().await
}
