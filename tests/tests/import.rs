//! CSV import end to end: the `passerelle` CLI reads a spreadsheet's export and a real node
//! writes it in one commit — or, if any row is wrong, writes nothing and every bad row is named.

use std::time::Duration;

use passerelle_client::NodeClient;
use passerelle_proto::v1::{IndicatorRow, NeedRow};
use passerelle_tests::fixtures::{need, report};
use passerelle_tests::pki::{SIRETS, TestPki};
use passerelle_tests::{InProcessNode, cli_async};
use serde_json::Value;

async fn json(endpoint: &str, args: &[&str]) -> anyhow::Result<Value> {
    cli_async(endpoint, &[&["--format", "json"], args].concat()).await.ok()?.json()
}

async fn count(endpoint: &str, what: &str) -> anyhow::Result<usize> {
    Ok(json(endpoint, &[what, "list"]).await?.as_array().map_or(0, Vec::len))
}

/// A needs file as a French spreadsheet exports it: BOM, `;`, CRLF, accented header names,
/// DD/MM/YYYY dates, an empty optional column and a blank last line.
fn french_needs(rows: usize) -> String {
    french_needs_described(rows, "")
}

/// [`french_needs`] with a description (which stays on the node) on every row.
fn french_needs_described(rows: usize, description: &str) -> String {
    let mut file = String::from(
        "\u{feff}ROME;Intitulé;Contrat;Postes;Heures;Département;Commune;Début;Fin;Client;Description\r\n",
    );
    for i in 0..rows {
        file.push_str(&format!(
            "K22{:02};\"Agent d'entretien; équipe {i}\";mise-a-disposition;{};24;49;49007;04/01/2027;30/06/2027;;{description}\r\n",
            i % 100,
            1 + i % 3
        ));
    }
    file.push_str("\r\n");
    file
}

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_file_is_imported_whole_and_an_invalid_one_not_at_all() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = InProcessNode::start(dir.path()).await?;
    let ep = node.endpoint.as_str();

    let good = dir.path().join("besoins.csv");
    std::fs::write(&good, french_needs(12))?;
    let path = good.display().to_string();

    // --dry-run checks and imports nothing; it works without a node.
    let dry = cli_async("http://127.0.0.1:9", &["need", "import", &path, "--dry-run"]).await.ok()?;
    assert!(dry.stdout.contains("12 needs checked, all valid; nothing imported (--dry-run)"), "{dry:?}");
    assert_eq!(count(ep, "need").await?, 0);

    let imported = json(ep, &["need", "import", &path]).await?;
    assert_eq!(imported["rows"], 12);
    assert_eq!(imported["created"], 12);
    let needs = json(ep, &["need", "list"]).await?;
    let needs = needs.as_array().cloned().unwrap_or_default();
    assert_eq!(needs.len(), 12);
    let ids: Vec<&str> = needs.iter().filter_map(|n| n["id"].as_str()).collect();
    let keys: Vec<&str> =
        imported["keys"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    assert_eq!(ids, keys, "the node lists exactly the imported needs, in file order");
    assert_eq!(needs[5]["title"], "Agent d'entretien; équipe 5", "a quoted separator stays in its cell");
    assert_eq!(needs[5]["start_date"], "2027-01-04");
    assert_eq!(needs[5]["client"], Value::Null);

    // One bad row among good ones: nothing is written, every bad row is named.
    let mut file = french_needs(6);
    file = file.replacen("K2202;", "K22A2;", 1).replacen(
        ";49;49007;04/01/2027;30/06/2027",
        ";49;44109;04/01/2027;30/06/2027",
        1,
    );
    file = file.replace(
        "K2205;\"Agent d'entretien; équipe 5\";mise-a-disposition;3",
        "K2205;\"Agent d'entretien; équipe 5\";cdi;trois",
    );
    let bad = dir.path().join("erreurs.csv");
    std::fs::write(&bad, &file)?;
    let refused = cli_async(ep, &["need", "import", &bad.display().to_string()]).await;
    assert_eq!(refused.code, 2, "{refused:?}");
    let lines: Vec<&str> = refused.stderr.lines().collect();
    assert_eq!(
        lines,
        [
            format!("error: {}: 4 problem(s) on 3 line(s), nothing imported", bad.display()).as_str(),
            "  line 2, column Commune: \"44109\": commune is in département 44, not in 49",
            "  line 4, column ROME: \"K22A2\": expected a letter A-N followed by 4 digits",
            "  line 7, column Contrat: \"cdi\": expected one of cddi, cdd-usage, interim, contrat-pro, creation-entreprise, mise-a-disposition, autre",
            "  line 7, column Postes: \"trois\": expected a whole number",
        ],
        "{}",
        refused.stderr
    );
    assert_eq!(count(ep, "need").await?, 12, "nothing of the refused file was written");

    // The node is the edge: rows sent around the CLI are checked there, all or nothing too.
    let mut client = NodeClient::connect(ep, None).await?;
    let mut broken = need(1);
    broken.hours_per_week = 60;
    let rows = vec![
        NeedRow { line: 2, fields: Some(need(0)) },
        NeedRow { line: 3, fields: Some(broken) },
        NeedRow { line: 4, fields: None },
    ];
    let err = client.import_needs(rows, |_| {}).await.expect_err("refused");
    assert_eq!(err.code(), Some(tonic::Code::InvalidArgument));
    assert_eq!(
        err.to_string(),
        "2 invalid row(s), nothing imported; line 3: hours_per_week \"60\": must be between 1 and 48; line 4: fields: is required"
    );
    assert_eq!(count(ep, "need").await?, 12);
    node.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn indicators_import_replaces_reported_months_and_refuses_a_month_twice() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = InProcessNode::start(dir.path()).await?;
    let ep = node.endpoint.as_str();
    let header = "period,etp,employees_in_insertion,hours_worked,hires,exits_total,exits_durable,exits_transition,exits_positive,exits_other\n";
    let file = dir.path().join("indicateurs.csv");
    let months: String = (1..=12).map(|m| format!("2025-{m:02},\"12,5\",20,1 700,3,4,1,1,1,1\n")).collect();
    std::fs::write(&file, format!("{header}{months}"))?;
    let path = file.display().to_string();
    let out = cli_async(ep, &["indicators", "import", &path]).await.ok()?;
    assert!(
        out.stdout.contains("12 monthly reports imported in one commit (12 created, 0 replaced)"),
        "{out:?}"
    );
    let reports = json(ep, &["indicators", "list"]).await?;
    assert_eq!(reports.as_array().map(Vec::len), Some(12));
    assert_eq!(reports[0]["etp"], "12.50");
    assert_eq!(reports[0]["hours_worked"], 1700);

    // Re-importing a corrected month replaces it (version 2), next to a new month.
    std::fs::write(
        &file,
        format!("{header}2025-03,13,21,1800,2,2,1,0,0,1\n2026-01,12,20,1700,3,4,1,1,1,1\n"),
    )?;
    let again = json(ep, &["indicators", "import", &path]).await?;
    assert_eq!((again["created"].as_u64(), again["replaced"].as_u64()), (Some(1), Some(1)));
    let reports = json(ep, &["indicators", "list", "--from", "2025-03", "--to", "2025-03"]).await?;
    assert_eq!(reports[0]["version"], 2);
    assert_eq!(reports[0]["employees_in_insertion"], 21);

    // The same month twice in a file is refused before anything is sent; at the node as well.
    std::fs::write(
        &file,
        format!("{header}2025-04,13,21,1800,2,2,1,0,0,1\n2025-04,14,21,1800,2,2,1,0,0,1\n"),
    )?;
    let refused = cli_async(ep, &["indicators", "import", &path]).await;
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("line 3, column period: \"2025-04\": already on line 2: one row per month"),
        "{refused:?}"
    );
    let rows = vec![
        IndicatorRow { line: 2, fields: Some(report("2025-05")) },
        IndicatorRow { line: 3, fields: Some(report("2025-05")) },
    ];
    let err = NodeClient::connect(ep, None).await?.import_indicators(rows, |_| {}).await.expect_err("twice");
    assert!(err.to_string().contains("line 3: period \"2025-05\": already on line 2"), "{err}");
    assert_eq!(json(ep, &["indicators", "list"]).await?.as_array().map(Vec::len), Some(13));
    node.stop().await
}

/// A file bigger than one gRPC message travels in parts, is committed once, and syncs to the hub
/// like any other change.
#[tokio::test(flavor = "multi_thread")]
async fn a_large_import_streams_in_parts_and_syncs() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let (hub, node) = pki.start_hub_and_member(SIRETS[0], "49", &["needs"]).await?;
    let rows = 12_000;
    let file = dir.path().join("gros.csv");
    let description = "Entretien des parties communes, vitrerie, sortie des conteneurs. ".repeat(5);
    std::fs::write(&file, french_needs_described(rows, &description))?;
    assert!(std::fs::metadata(&file)?.len() > 4 * 1024 * 1024, "bigger than the 4 MiB message limit");
    let out = cli_async(&node.endpoint, &["need", "import", &file.display().to_string()]).await.ok()?;
    assert!(out.stdout.contains(&format!("{rows} needs imported in one commit")), "{out:?}");
    let mut client = NodeClient::connect(&node.endpoint, None).await?;
    let status = client.sync_now(true, Duration::from_secs(60)).await?;
    let hub_status = status.hubs.first().cloned().unwrap_or_default();
    assert_eq!(hub_status.pending, 0, "{hub_status:?}");
    let members = passerelle_client::HubClient::connect(&hub.endpoint, None).await?.members().await?;
    assert_eq!(members.first().map(|m| m.records_held), Some(rows as u64));
    node.stop().await?;
    hub.stop().await
}
