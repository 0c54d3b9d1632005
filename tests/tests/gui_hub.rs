//! The hub's web console over real HTTP against a real in-process hub fed by real nodes: the
//! same gate as the node's console (setup page, login, CSRF, foreign `Host`, viewer read-only),
//! accounts created with `passerelle gui user add` against the hub's operator API, the members
//! page, the completeness of a month with one member missing, and closing it.

use std::time::Duration;

use passerelle_client::NodeClient;
use passerelle_proto::date::{Month, now_unix_ms};
use passerelle_proto::identity::Role;
use passerelle_proto::periods::month_at;
use passerelle_tests::console::{Console, PASSWORD, add_user};
use passerelle_tests::fixtures::report;
use passerelle_tests::http::request;
use passerelle_tests::pki::{SIRETS, TestPki};
use passerelle_tests::{InProcessDaemon, cli_async};

#[tokio::test(flavor = "multi_thread")]
async fn hub_console_gate_members_completeness_and_closing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub = InProcessDaemon::start_config(&pki.write_hub_config(
        "coorace-pdl",
        "auto_accept = true",
        "\n[periods]\nclose = \"manual\"\ndeadline_day = 28\n\n[gui]\nlisten = \"127.0.0.1:0\"\n",
    )?)
    .await?;
    let addr = hub.gui_addr.ok_or_else(|| anyhow::anyhow!("no gui listener on the hub"))?;
    let last = Month::from_ordinal(month_at(now_unix_ms()).ordinal() - 1);
    let before = Month::from_ordinal(last.ordinal() - 1);
    let (last_s, before_s) = (last.to_string(), before.to_string());

    // Two structures report the month before; only the first reports the last month.
    let mut nodes = Vec::new();
    for (i, siret) in SIRETS[..2].iter().enumerate() {
        let hubs = [("coorace-pdl", hub.hub_endpoint(), &["indicators"][..])];
        let node = InProcessDaemon::start_config(&pki.write_node_config(siret, "49", &hubs)?).await?;
        let mut client = NodeClient::connect(&node.endpoint, None).await?;
        client.submit_indicators(report(&before_s)).await?;
        if i == 0 {
            client.submit_indicators(report(&last_s)).await?;
        }
        client.sync_now(true, Duration::from_secs(30)).await?;
        nodes.push(node);
    }

    // No account yet: the setup page names the hub and the command.
    let mut admin = Console::new(addr);
    let setup = admin.get("/membres").await?;
    assert_eq!(setup.status, 503, "{setup:?}");
    assert!(setup.body.contains("machine du hub") && setup.body.contains("passerelle gui user add"));

    // Accounts through the real CLI against the hub's operator API; the hash never leaves it.
    add_user(&hub.endpoint, "camille", "admin")?;
    add_user(&hub.endpoint, "dominique", "viewer")?;
    let users = cli_async(&hub.endpoint, &["--format", "json", "gui", "user", "list"]).await.ok()?;
    assert!(users.stdout.contains("camille") && users.stdout.contains("dominique"), "{users:?}");
    assert!(!users.stdout.contains("argon2"), "{users:?}");

    // Login required; a foreign Host is refused before anything else.
    let anonymous = admin.get("/completude").await?;
    assert_eq!((anonymous.status, anonymous.header("location")), (303, Some("/connexion")));
    let foreign = request(addr, "GET", "/connexion", "evil.example:80", &[], b"").await?;
    assert_eq!(foreign.status, 421, "{foreign:?}");
    assert_eq!(admin.login("camille", "not the password").await?.status, 401);
    let logged = admin.login("camille", PASSWORD).await?;
    assert_eq!((logged.status, logged.header("location")), (303, Some("/membres")));

    // Members: both structures, accepted, with their issuing network and records held.
    let members = admin.get("/membres").await?;
    assert_eq!(members.status, 200, "{members:?}");
    for siret in &SIRETS[..2] {
        assert!(members.body.contains(siret), "{siret} listed: {}", members.body);
    }
    assert!(members.body.contains("coorace") && members.body.contains("accepté"), "{}", members.body);
    let csp = members.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("default-src 'self'"), "{csp}");

    // The removal confirmation says what it purges.
    let confirm = admin.get(&format!("/membres/retirer?id={}&network=coorace", SIRETS[1])).await?;
    assert!(confirm.body.contains("efface du hub"), "{}", confirm.body);

    // Completeness of the last month: one reported, one missing; the month is open.
    let month = admin.get(&format!("/completude?periode={last_s}")).await?;
    assert_eq!(month.status, 200, "{month:?}");
    assert!(month.body.contains("1 rapport(s) reçu(s) sur 2 attendu(s)"), "{}", month.body);
    assert!(month.body.contains("manquant"), "{}", month.body);
    assert!(month.body.contains("Clôturer"), "a close button on a manual hub: {}", month.body);

    // A POST without the CSRF token is refused and closes nothing.
    let forged = admin.post_raw("/completude/cloturer", &format!("periode={last_s}")).await?;
    assert_eq!(forged.status, 403, "{forged:?}");

    // A viewer reads every page but may not close: no button, and the POST is refused.
    let mut viewer = Console::new(addr);
    viewer.login("dominique", PASSWORD).await?;
    let seen = viewer.get(&format!("/completude?periode={last_s}")).await?;
    assert_eq!(seen.status, 200);
    assert!(!seen.body.contains("Clôturer"), "{}", seen.body);
    let refused = viewer.post("/completude/cloturer", &[("periode", &last_s)]).await?;
    assert_eq!(refused.status, 403, "{refused:?}");
    let open = cli_async(&hub.endpoint, &["--format", "json", "hub", "period", "list"]).await.ok()?.json()?;
    assert!(!open.to_string().contains("\"closed\""), "still open: {open}");

    // The admin closes it: the CLI sees it closed, the page says so.
    let closed = admin.post("/completude/cloturer", &[("periode", &last_s)]).await?;
    assert_eq!(closed.status, 303, "{closed:?}");
    let list = cli_async(&hub.endpoint, &["--format", "json", "hub", "period", "list"]).await.ok()?.json()?;
    let row = list.as_array().and_then(|a| a.iter().find(|p| p["period"] == last_s.as_str())).cloned();
    assert_eq!(row.as_ref().map(|p| p["state"].clone()), Some("closed".into()), "{list}");
    let after = admin.get(&format!("/completude?periode={last_s}")).await?;
    assert!(after.body.contains("Mois clôturé") && after.body.contains("clôturé"), "{}", after.body);

    // Statistics: with two structures every cell of the closed month is suppressed — shown as
    // such with its reason, never 0 — and the page carries the charts' SVG.
    let query = format!("table=indicators&period={last_s}&by=departement");
    let stats = viewer.get(&format!("/statistiques?{query}")).await?;
    assert_eq!(stats.status, 200, "{stats:?}");
    assert!(
        stats.body.contains("class=\"suppressed\"") && stats.body.contains("secret statistique"),
        "{}",
        stats.body
    );
    assert!(stats.body.contains("<svg") && stats.body.contains("role=\"img\""), "{}", stats.body);
    assert!(!stats.body.contains("style="), "no inline style");

    // The CSV download is byte for byte what a consumer's `passerelle stats … --format csv` prints.
    let download = viewer.get(&format!("/statistiques.csv?{query}")).await?;
    assert_eq!(download.status, 200, "{download:?}");
    assert!(download.header("content-type").unwrap_or_default().starts_with("text/csv"));
    let consumer = pki.issue(Role::Consumer, "dreets-52")?;
    let mut args = TestPki::cli_flags(&consumer);
    args.extend(
        ["--format", "csv", "stats", "indicators", "--by", "departement", "--period", &last_s]
            .map(String::from),
    );
    let cli =
        cli_async(&hub.hub_endpoint(), &args.iter().map(String::as_str).collect::<Vec<_>>()).await.ok()?;
    assert_eq!(download.body, cli.stdout);
    assert!(cli.stdout.lines().count() >= 2, "a header and cells: {}", cli.stdout);

    // Synchronisation: no upstream configured, said plainly.
    let sync = admin.get("/synchronisation").await?;
    assert!(sync.body.contains("aucun hub amont"), "{}", sync.body);

    // Removing an account ends its sessions.
    cli_async(&hub.endpoint, &["gui", "user", "remove", "dominique"]).await.ok()?;
    assert_eq!(viewer.get("/membres").await?.status, 303);

    for node in nodes {
        node.stop().await?;
    }
    hub.stop().await
}
