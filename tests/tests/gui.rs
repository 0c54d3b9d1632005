//! The web console over real HTTP against a real in-process node: the gate (setup page, login,
//! wrong password, rate limit, CSRF, foreign `Host`, viewer), the forms writing through the same
//! node calls as the CLI (checked back through the CLI), the all-or-nothing CSV upload, and no
//! personal data in any URL the console sends a browser to.

use std::path::{Path, PathBuf};

use passerelle_tests::console::{Console, PASSWORD, add_user};
use passerelle_tests::http::request;
use passerelle_tests::{InProcessDaemon, SIRET, cli_async, write_node_config};
use serde_json::Value;

/// A node config with the console on a free loopback port.
fn console_config(dir: &Path) -> anyhow::Result<PathBuf> {
    let path = write_node_config(dir, SIRET, "127.0.0.1:0")?;
    let mut text = std::fs::read_to_string(&path)?;
    text.push_str("\n[gui]\nlisten = \"127.0.0.1:0\"\n");
    std::fs::write(&path, text)?;
    Ok(path)
}

async fn start(dir: &Path) -> anyhow::Result<(InProcessDaemon, Console)> {
    let node = InProcessDaemon::start_config(&console_config(dir)?).await?;
    let addr = node.gui_addr.ok_or_else(|| anyhow::anyhow!("no gui listener"))?;
    Ok((node, Console::new(addr)))
}

async fn json(endpoint: &str, args: &[&str]) -> anyhow::Result<Value> {
    cli_async(endpoint, &[&["--format", "json"], args].concat()).await.ok()?.json()
}

async fn needs(endpoint: &str) -> anyhow::Result<Vec<Value>> {
    Ok(json(endpoint, &["need", "list"]).await?.as_array().cloned().unwrap_or_default())
}

const NEED: [(&str, &str); 8] = [
    ("rome_code", "K2204"),
    ("title", "Agent d'entretien"),
    ("contract_type", "cddi"),
    ("open_positions", "2"),
    ("hours_per_week", "24"),
    ("departement", "49"),
    ("commune", "49007"),
    ("start_date", "2026-12-01"),
];

#[tokio::test(flavor = "multi_thread")]
async fn the_gate_setup_login_rate_limit_csrf_host_and_viewer() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (node, mut admin) = start(dir.path()).await?;

    // No account yet: every page says how to create one, and nothing else.
    let setup = admin.get("/besoins").await?;
    assert_eq!(setup.status, 503, "{setup:?}");
    assert!(setup.body.contains("passerelle gui user add"), "{}", setup.body);

    // The CLI refuses a short password (read on stdin) and creates accounts.
    let short = short_password(&node.endpoint)?;
    assert!(short.contains("password: must have 12 to 1024 characters, got 5"), "{short}");
    add_user(&node.endpoint, "camille", "admin")?;
    add_user(&node.endpoint, "dominique", "viewer")?;
    let users = json(&node.endpoint, &["gui", "user", "list"]).await?;
    assert_eq!(users.as_array().map(Vec::len), Some(2), "{users}");
    assert_eq!(users[0]["name"], "camille");
    assert_eq!(users[0]["role"], "admin");
    assert!(!users.to_string().contains("argon2"), "the hash never leaves the node: {users}");

    // Login required: pages redirect to the login form.
    let anonymous = admin.get("/besoins").await?;
    assert_eq!(anonymous.status, 303);
    assert_eq!(anonymous.header("location"), Some("/connexion"));

    // Every answer carries the strict CSP and no-store.
    let form = admin.get("/connexion").await?;
    assert_eq!(form.status, 200);
    let csp = form.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!form.body.contains("<script") && !form.body.contains("style="), "no inline script or style");
    assert_eq!(form.header("x-frame-options"), Some("DENY"));

    // The login form's own token is required (login CSRF).
    let forged = admin.post_raw("/connexion", "csrf=0000&name=camille&password=x").await?;
    assert_eq!(forged.status, 403, "{forged:?}");

    // The right password opens a session (cookie HttpOnly, SameSite=Strict).
    let ok = admin.login("camille", PASSWORD).await?;
    assert_eq!(ok.status, 303, "{ok:?}");
    let cookie = ok
        .headers_all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("passerelle_session="))
        .unwrap_or_default();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "no Secure without TLS (the browser would drop it)");
    let dashboard = admin.get("/tableau-de-bord").await?;
    assert_eq!(dashboard.status, 200);
    assert!(dashboard.body.contains("camille (administration)"), "{}", dashboard.body);

    // A foreign Host (DNS rebinding) is refused, even with a valid session.
    let mut rebound = admin.clone();
    rebound.host = format!("evil.example:{}", admin.addr.port());
    assert_eq!(rebound.get("/tableau-de-bord").await?.status, 421);
    let bare = request(admin.addr, "GET", "/connexion", "attacker.example", &[], b"").await?;
    assert_eq!(bare.status, 421, "{bare:?}");
    // localhost:PORT is the listen address by another name.
    let mut local = admin.clone();
    local.host = format!("localhost:{}", admin.addr.port());
    assert_eq!(local.get("/tableau-de-bord").await?.status, 200);

    // CSRF: a POST without the session's token changes nothing.
    admin.get("/besoins/nouveau").await?;
    let token = admin.csrf.clone();
    admin.csrf = "f".repeat(64);
    let refused = admin.post("/besoins/nouveau", &NEED).await?;
    assert_eq!(refused.status, 403, "{refused:?}");
    admin.csrf.clear();
    assert_eq!(admin.post("/besoins/nouveau", &NEED).await?.status, 403);
    assert!(needs(&node.endpoint).await?.is_empty(), "nothing written without the token");
    admin.csrf = token;
    let created = admin.post("/besoins/nouveau", &NEED).await?;
    assert_eq!(created.status, 303, "{created:?}");
    assert_eq!(needs(&node.endpoint).await?.len(), 1);

    // A viewer reads but cannot change.
    let mut viewer = Console::new(admin.addr);
    assert_eq!(viewer.login("dominique", PASSWORD).await?.status, 303);
    let list = viewer.get("/besoins").await?;
    assert!(list.body.contains("Agent d&#39;entretien"), "{}", list.body);
    assert!(!list.body.contains("/besoins/supprimer"), "no change buttons for a viewer");
    let denied = viewer.post("/besoins/nouveau", &NEED).await?;
    assert_eq!(denied.status, 403, "{denied:?}");
    assert_eq!(needs(&node.endpoint).await?.len(), 1, "the viewer's POST wrote nothing");

    // Logging out ends the session; removing an account ends its sessions too.
    assert_eq!(viewer.post("/deconnexion", &[]).await?.status, 303);
    assert_eq!(viewer.get("/besoins").await?.status, 303);
    cli_async(&node.endpoint, &["gui", "user", "remove", "camille"]).await.ok()?;
    let gone = admin.get("/besoins").await?;
    assert_eq!(gone.status, 303, "a removed account's session is over");

    // Wrong password: 401, and the 6th attempt within the minute is 429 even with the right one.
    let mut attacker = Console::new(admin.addr);
    for attempt in 0..5 {
        let wrong = attacker.login("dominique", "not the password").await?;
        assert_eq!(wrong.status, 401, "attempt {attempt}: {wrong:?}");
        assert!(wrong.body.contains("incorrect"));
    }
    let limited = attacker.login("dominique", PASSWORD).await?;
    assert_eq!(limited.status, 429, "{limited:?}");
    assert!(limited.header("set-cookie").is_none_or(|c| !c.contains("passerelle_session=")));

    node.stop().await
}

/// `gui user add` with a 5-character password on stdin: its stderr.
fn short_password(endpoint: &str) -> anyhow::Result<String> {
    use std::io::Write as _;
    let mut child = std::process::Command::new(passerelle_tests::bin("passerelle"))
        .args(["--endpoint", endpoint, "gui", "user", "add", "eve", "--role", "admin"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    child.stdin.take().ok_or_else(|| anyhow::anyhow!("stdin"))?.write_all(b"short\n")?;
    let output = child.wait_with_output()?;
    assert_eq!(output.status.code(), Some(2), "a rule the caller must fix");
    Ok(String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn forms_write_through_the_node_and_urls_carry_no_personal_data() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (node, mut admin) = start(dir.path()).await?;
    add_user(&node.endpoint, "camille.accueil", "admin")?;
    assert_eq!(admin.login("camille.accueil", PASSWORD).await?.status, 303);

    // A bad ROME code: the node's message beside the field, the values kept, nothing written.
    admin.get("/besoins/nouveau").await?;
    let mut bad = NEED.to_vec();
    bad[0] = ("rome_code", "K22A4");
    let refused = admin.post("/besoins/nouveau", &bad).await?;
    assert_eq!(refused.status, 422);
    assert!(
        refused.body.contains("<p class=\"error\" id=\"rome_code-erreur\">rome_code &quot;K22A4&quot;: expected a letter A-N followed by 4 digits</p>"),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("aria-describedby=\"rome_code-erreur\""));
    assert!(refused.body.contains("value=\"Agent d&#39;entretien\""), "what was typed is kept");
    assert!(needs(&node.endpoint).await?.is_empty());
    assert_eq!(admin.post("/besoins/nouveau", &NEED).await?.status, 303);
    let listed = needs(&node.endpoint).await?;
    assert_eq!(listed[0]["rome_code"], "K2204");
    let need_id = listed[0]["id"].as_str().unwrap_or_default().to_string();

    // Close it as filled through its button.
    admin.get("/besoins").await?;
    assert_eq!(admin.post("/besoins/cloturer", &[("id", &need_id), ("status", "filled")]).await?.status, 303);
    assert_eq!(needs(&node.endpoint).await?[0]["status"], "filled");
    let all = admin.get("/besoins?statut=tous").await?;
    assert!(
        all.body.contains("aria-label=\"Supprimer : Agent d&#39;entretien\">Supprimer</button>"),
        "each row's buttons say which need they act on: {}",
        all.body
    );

    // CSV upload: a bad row refuses the whole file with its line, nothing written.
    let header =
        "rome_code;title;contract_type;open_positions;hours_per_week;departement;commune;start_date\n";
    let bad_csv = format!(
        "{header}K2204;Agent;cddi;1;24;49;49007;2026-12-01\nK22A4;Agent;cddi;1;24;49;49007;2026-12-01\n"
    );
    admin.get("/besoins").await?;
    let upload = admin.upload("/besoins/importer", "fichier", "besoins.csv", bad_csv.as_bytes()).await?;
    assert_eq!(upload.status, 422, "{upload:?}");
    assert!(upload.body.contains("line 3"), "{}", upload.body);
    assert!(upload.body.contains("rien n'a été enregistré"), "{}", upload.body);
    assert_eq!(needs(&node.endpoint).await?.len(), 1, "nothing written");
    let good_csv = format!(
        "{header}K2204;Agent;cddi;1;24;49;49007;2026-12-01\nG1602;Cuisinier;cddi;1;30;49;49007;2027-01-04\n"
    );
    admin.get("/besoins").await?;
    let upload = admin.upload("/besoins/importer", "fichier", "besoins.csv", good_csv.as_bytes()).await?;
    assert_eq!(upload.status, 303, "{upload:?}");
    assert_eq!(needs(&node.endpoint).await?.len(), 3);

    // A person, then a consent collected by the logged-in user.
    admin.get("/personnes/nouvelle").await?;
    let person = [
        ("first_name", "Ysaline"),
        ("last_name", "Quenouille"),
        ("birth_date", "1990-04-02"),
        ("commune", "49007"),
        ("phone", "06 98 76 54 32"),
        ("email", "ysaline.quenouille@example.fr"),
        ("rome_codes", "K2204, g1602"),
        ("available_from", "2026-12-01"),
        ("barriers", "mobilite"),
    ];
    let added = admin.post("/personnes/nouvelle", &person).await?;
    assert_eq!(added.status, 303, "{added:?}");
    let fiche = added.header("location").unwrap_or_default().to_string();
    let page = admin.get(&fiche).await?;
    assert!(page.body.contains("Ysaline Quenouille"));
    let persons = json(&node.endpoint, &["person", "list"]).await?;
    let person_id = persons[0]["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(persons[0]["rome_codes"], serde_json::json!(["K2204", "G1602"]), "{persons}");
    let granted = admin
        .post(
            "/consentements/accorder",
            &[
                ("person_id", &person_id),
                ("purpose", "placement"),
                ("hub_id", "coorace-pdl"),
                ("text_version", "2026-01"),
            ],
        )
        .await?;
    assert_eq!(granted.status, 303);
    let consents = json(&node.endpoint, &["consent", "list", "--person", &person_id]).await?;
    assert_eq!(consents[0]["collected_by"], "camille.accueil", "{consents}");
    assert_eq!(consents[0]["purpose"], "placement");

    // Indicators: exits that do not add up are refused beside the exits.
    admin.get("/indicateurs").await?;
    let mut month = vec![
        ("period", "2026-10"),
        ("etp", "12,5"),
        ("employees_in_insertion", "20"),
        ("hours_worked", "2400"),
        ("hires", "3"),
        ("exits_total", "5"),
        ("exits_durable", "1"),
        ("exits_transition", "1"),
        ("exits_positive", "1"),
        ("exits_other", "1"),
    ];
    let wrong = admin.post("/indicateurs", &month).await?;
    assert_eq!(wrong.status, 422);
    assert!(
        wrong
            .body
            .contains("id=\"exits-erreur\">exits: durable + transition + positive + other must equal total"),
        "{}",
        wrong.body
    );
    month[9] = ("exits_other", "2");
    assert_eq!(admin.post("/indicateurs", &month).await?.status, 303);
    let page = admin.get("/indicateurs").await?;
    assert!(page.body.contains("60,00 %"), "3 dynamic exits of 5: {}", page.body);
    let reports = json(&node.endpoint, &["indicators", "list"]).await?;
    assert_eq!(reports[0]["etp"], "12.50", "{reports}");

    // Every page, then: no URL the console sent or offered carries the person's data.
    for path in [
        "/tableau-de-bord",
        "/besoins",
        "/besoins?statut=tous",
        "/personnes",
        "/indicateurs",
        "/mises-en-relation",
        "/reseau",
    ] {
        assert_eq!(admin.get(path).await?.status, 200, "{path}");
    }
    admin.get(&format!("/personnes/rapport?id={person_id}")).await?;
    admin.get(&format!("/personnes/modifier?id={person_id}")).await?;
    assert!(admin.urls_seen.len() > 50, "{:?}", admin.urls_seen);
    for url in &admin.urls_seen {
        for secret in ["Ysaline", "Quenouille", "1990-04-02", "06 98", "06+98", "example.fr", "%40"] {
            assert!(!url.contains(secret), "{secret} in URL {url}");
        }
    }
    node.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn edits_erasure_withdrawal_and_no_personal_data_in_the_logs() -> anyhow::Result<()> {
    // The real binary with debug logs, so every log line the console writes can be read.
    let dir = tempfile::tempdir()?;
    let config = console_config(dir.path())?;
    let mut daemon = passerelle_tests::ChildDaemon::spawn_with(&config, &[], "debug")?;
    let url = daemon.gui_url.clone().ok_or_else(|| anyhow::anyhow!("no gui line on stdout"))?;
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse()?;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let endpoint = daemon.endpoint.clone();
    add_user(&endpoint, "camille", "admin")?;
    let mut admin = Console::new(addr);
    assert_eq!(admin.login("camille", PASSWORD).await?.status, 303);
    // A failed login naming a person must not put that name in the logs either.
    assert_eq!(Console::new(addr).login("Zephyrine", "Vandermolen-Quist").await?.status, 401);

    // A need, edited (the version guards against a concurrent change), then deleted.
    admin.get("/besoins/nouveau").await?;
    assert_eq!(admin.post("/besoins/nouveau", &NEED).await?.status, 303);
    let id = needs(&endpoint).await?[0]["id"].as_str().unwrap_or_default().to_string();
    let form = admin.get(&format!("/besoins/modifier?id={id}")).await?;
    assert!(form.body.contains("name=\"version\" value=\"1\""), "{}", form.body);
    let mut edited = NEED.to_vec();
    edited[3] = ("open_positions", "5");
    let mut with_id = vec![("id", id.as_str()), ("version", "1")];
    with_id.extend(edited.iter().copied());
    assert_eq!(admin.post("/besoins/modifier", &with_id).await?.status, 303);
    assert_eq!(needs(&endpoint).await?[0]["open_positions"], 5);
    let stale = admin.post("/besoins/modifier", &with_id).await?;
    assert_eq!(stale.status, 422, "version 1 is gone");
    assert!(stale.body.contains("is at version 2, not 1"), "{}", stale.body);
    admin.get("/besoins").await?;
    assert_eq!(admin.post("/besoins/supprimer", &[("id", &id)]).await?.status, 303);
    assert!(needs(&endpoint).await?.is_empty());

    // A person with a consent, the consent withdrawn, then the person erased.
    admin.get("/personnes/nouvelle").await?;
    let person = [
        ("first_name", "Zephyrine"),
        ("last_name", "Vandermolen"),
        ("birth_date", "1988-11-23"),
        ("commune", "49007"),
        ("rome_codes", "K2204"),
        ("available_from", "2026-12-01"),
    ];
    assert_eq!(admin.post("/personnes/nouvelle", &person).await?.status, 303);
    let person_id =
        json(&endpoint, &["person", "list"]).await?[0]["id"].as_str().unwrap_or_default().to_string();
    let fields = [("person_id", person_id.as_str()), ("purpose", "statistics"), ("hub_id", "coorace-pdl")];
    let mut grant = fields.to_vec();
    grant.push(("text_version", "2026-01"));
    assert_eq!(admin.post("/consentements/accorder", &grant).await?.status, 303);
    let again = admin.post("/consentements/accorder", &grant).await?;
    let page = admin.get(again.header("location").unwrap_or("/personnes")).await?;
    assert!(
        page.body.contains("Refusé : person"),
        "one consent in force per person × purpose × hub: {}",
        page.body
    );
    assert_eq!(admin.post("/consentements/retirer", &fields).await?.status, 303);
    let consents = json(&endpoint, &["consent", "list", "--person", &person_id]).await?;
    assert!(consents[0]["withdrawn_at"].is_string(), "{consents}");
    let report = admin.get(&format!("/personnes/rapport?id={person_id}")).await?;
    assert!(report.body.contains("Vandermolen") && report.body.contains("Statistiques"), "{}", report.body);
    assert_eq!(admin.post("/personnes/supprimer", &[("id", &person_id)]).await?.status, 303);
    assert_eq!(json(&endpoint, &["person", "list"]).await?, serde_json::json!([]));
    let erased = admin.get(&format!("/personnes/rapport?id={person_id}")).await?;
    assert!(erased.body.contains("Personne effacée"), "the report outlives the person: {}", erased.body);

    // Stop, then read every log line: requests are logged, the person never is.
    let _ = std::process::Command::new("kill").arg(daemon.child.id().to_string()).status()?;
    daemon.child.wait()?;
    let mut logs = String::new();
    if let Some(mut stderr) = daemon.child.stderr.take() {
        std::io::Read::read_to_string(&mut stderr, &mut logs)?;
    }
    assert!(logs.contains("gui request"), "the console logs its requests: {logs}");
    for secret in ["Zephyrine", "Vandermolen", "1988-11-23", "Quist"] {
        assert!(!logs.contains(secret), "{secret} in the logs");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn under_tls_the_console_is_https_and_its_cookies_secure() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = passerelle_tests::pki::TestPki::new(dir.path())?;
    // A certificate for `localhost` (what `pki issue` names by default), served on loopback.
    let files = pki.issue(passerelle_proto::identity::Role::Node, SIRET)?;
    let config = console_config(dir.path())?;
    let mut text = std::fs::read_to_string(&config)?;
    text.push_str(&format!(
        "[gui.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        files.cert.display(),
        files.key.display()
    ));
    std::fs::write(&config, text)?;
    let daemon = passerelle_tests::ChildDaemon::spawn(&config)?;
    let url = daemon.gui_url.clone().ok_or_else(|| anyhow::anyhow!("no gui line on stdout"))?;
    assert!(url.starts_with("https://127.0.0.1:"), "the start line says https: {url}");
    let addr: std::net::SocketAddr = url.trim_start_matches("https://").parse()?;
    let get = |path: &'static str| {
        passerelle_tests::http::request_tls(addr, &files.ca, "localhost", "GET", path, &[])
    };
    add_user(&daemon.endpoint, "camille", "admin")?;
    let form = get("/connexion").await?;
    assert_eq!(form.status, 200, "{form:?}");
    let cookie = form.header("set-cookie").unwrap_or_default();
    assert!(cookie.contains("; Secure") && cookie.contains("HttpOnly"), "{cookie}");
    assert!(form.header("strict-transport-security").is_some(), "HSTS under TLS");
    // Plain HTTP on the TLS port gets no page.
    let plain = request(addr, "GET", "/connexion", &format!("localhost:{}", addr.port()), &[], b"").await;
    assert!(plain.is_err() || plain.is_ok_and(|r| r.status != 200), "no plaintext page on the TLS port");
    Ok(())
}
