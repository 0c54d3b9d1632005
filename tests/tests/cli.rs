//! The `passerelle` CLI end to end against a real daemon: every command of the contract, JSON
//! output parsed, table and CSV shapes checked.

use passerelle_tests::{InProcessNode, cli_async, indicators_submit_args, need_add_args, person_add_args};
use serde_json::Value;

async fn json(endpoint: &str, args: &[&str]) -> anyhow::Result<Value> {
    cli_async(endpoint, &[&["--format", "json"], args].concat()).await.ok()?.json()
}

#[tokio::test(flavor = "multi_thread")]
async fn needs_persons_consents_indicators_round_trip() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = InProcessNode::start(dir.path()).await?;
    let ep = node.endpoint.as_str();

    let structure = json(ep, &["structure"]).await?;
    assert_eq!(structure["siret"], passerelle_tests::SIRET);
    assert_eq!(structure["kind"], "ai");

    // Needs.
    let mut args = need_add_args();
    args.extend([
        "--end",
        "2027-05-31",
        "--client",
        "Mme Dupont",
        "--description",
        "Entretien d'un jardin\nle mardi",
    ]);
    let need = json(ep, &args).await?;
    let id = need["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(id.len(), 36);
    assert_eq!(need["status"], "open");
    assert_eq!(need["contract_type"], "mise-a-disposition");
    assert_eq!(need["open_positions"], 2);
    assert_eq!(need["end_date"], "2027-05-31");
    assert_eq!(need["client"], "Mme Dupont");
    assert_eq!(json(ep, &["need", "show", &id]).await?, need);
    let second = json(ep, &need_add_args()).await?;
    assert_eq!(second["client"], Value::Null);
    let closed = json(ep, &["need", "close", &id, "--status", "cancelled"]).await?;
    assert_eq!((closed["status"].as_str(), closed["version"].as_u64()), (Some("cancelled"), Some(2)));
    let list = json(ep, &["need", "list"]).await?;
    assert_eq!(list.as_array().map(Vec::len), Some(2));
    assert_eq!(list[0]["id"], id.as_str(), "oldest first");
    let reopen = cli_async(ep, &["need", "close", &id, "--status", "filled"]).await;
    assert_eq!(reopen.code, 2, "{reopen:?}");
    assert!(reopen.stderr.contains("already cancelled"), "{reopen:?}");
    let unknown = cli_async(ep, &["need", "show", "01920000-0000-7000-8000-000000000000"]).await;
    assert_eq!(unknown.code, 2);
    assert!(unknown.stderr.contains("not found"), "{unknown:?}");

    // Persons.
    let mut args = person_add_args();
    args.extend([
        "--hours",
        "24",
        "--mobility-km",
        "15",
        "--barriers",
        "mobilite,garde-enfants",
        "--phone",
        "06 12 34 56 78",
        "--email",
        "camille@example.fr",
        "--pass-iae-end",
        "2027-06-30",
    ]);
    let person = json(ep, &args).await?;
    let pid = person["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(person["rome_codes"], serde_json::json!(["K2204", "G1602"]));
    assert_eq!(person["barriers"], serde_json::json!(["mobilite", "garde-enfants"]));
    assert_eq!(person["mobility_km"], 15);
    assert_eq!(json(ep, &["person", "show", &pid]).await?, person);
    assert_eq!(json(ep, &["person", "list"]).await?.as_array().map(Vec::len), Some(1));

    // Consents.
    let grant = |purpose: &'static str, hub: &'static str| {
        vec![
            "consent",
            "grant",
            "--person",
            Box::leak(pid.clone().into_boxed_str()),
            "--purpose",
            purpose,
            "--hub",
            hub,
            "--text-version",
            "2026-01",
            "--collected-by",
            "Accueil Angers",
        ]
    };
    let consent = json(ep, &grant("placement", "coorace-pdl")).await?;
    assert_eq!((consent["purpose"].as_str(), consent["in_force"].as_bool()), (Some("placement"), Some(true)));
    assert_eq!(consent["collected_by"], "Accueil Angers");
    json(ep, &grant("statistics", "fas-pdl")).await?;
    let twice = cli_async(ep, &grant("placement", "coorace-pdl")).await;
    assert_eq!(twice.code, 2, "{twice:?}");
    assert!(
        twice.stderr.contains("already has a placement consent in force for hub coorace-pdl"),
        "{twice:?}"
    );
    let withdrawn = json(
        ep,
        &["consent", "withdraw", "--person", &pid, "--purpose", "placement", "--hub", "coorace-pdl"],
    )
    .await?;
    assert_eq!(withdrawn["in_force"], false);
    assert!(withdrawn["withdrawn_at"].is_string());
    assert_eq!(json(ep, &["consent", "list", "--person", &pid]).await?.as_array().map(Vec::len), Some(2));

    // Erasure withdraws what is still in force and keeps the proof.
    let erased = json(ep, &["person", "delete", &pid]).await?;
    assert_eq!(erased["withdrawn_consent_ids"].as_array().map(Vec::len), Some(1));
    assert_eq!(cli_async(ep, &["person", "show", &pid]).await.code, 2);
    let proof = json(ep, &["consent", "list"]).await?;
    assert!(proof.as_array().into_iter().flatten().all(|c| c["in_force"] == false), "{proof}");

    // Indicators.
    json(ep, &indicators_submit_args("2026-09")).await?;
    let report = json(ep, &indicators_submit_args("2026-10")).await?;
    assert_eq!((report["etp"].as_str(), report["etp_hundredths"].as_u64()), (Some("12.50"), Some(1250)));
    assert_eq!(report["dynamic_exit_rate_percent"], "75.00");
    let again = json(ep, &indicators_submit_args("2026-10")).await?;
    assert_eq!(again["version"], 2, "re-submitting a period replaces it");
    let only_october = json(ep, &["indicators", "list", "--from", "2026-10", "--to", "2026-10"]).await?;
    assert_eq!(only_october.as_array().map(Vec::len), Some(1));
    assert_eq!(json(ep, &["indicators", "list"]).await?.as_array().map(Vec::len), Some(2));

    node.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn table_and_csv_formats() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = InProcessNode::start(dir.path()).await?;
    let ep = node.endpoint.as_str();

    let empty = cli_async(ep, &["need", "list"]).await.ok()?;
    assert_eq!(empty.stdout.trim(), "no needs");
    let empty_csv = cli_async(ep, &["--format", "csv", "need", "list"]).await.ok()?;
    assert!(
        empty_csv.stdout.starts_with("id,status,rome_code,"),
        "an empty CSV still has its header: {empty_csv:?}"
    );
    assert_eq!(cli_async(ep, &["--format", "json", "need", "list"]).await.ok()?.stdout.trim(), "[]");

    let mut args = need_add_args();
    args.extend(["--client", "Dupont, Marie \"la voisine\""]);
    cli_async(ep, &args).await.ok()?;
    let table = cli_async(ep, &["need", "list"]).await.ok()?;
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{table:?}");
    assert!(lines[0].starts_with("ID") && lines[0].contains("ROME_CODE"), "{table:?}");
    assert!(lines[1].contains("K2204"), "{table:?}");

    let csv = cli_async(ep, &["--format", "csv", "need", "list"]).await.ok()?;
    let mut reader = csv::Reader::from_reader(csv.stdout.as_bytes());
    let header = reader.headers()?.clone();
    let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>()?;
    assert_eq!(rows.len(), 1);
    let client = header.iter().position(|h| h == "client").map(|i| &rows[0][i]);
    assert_eq!(client, Some("Dupont, Marie \"la voisine\""), "quoted correctly");
    node.stop().await
}

/// `passerelle completions SHELL` needs no node: the script names the commands of the contract,
/// and an unknown shell is a usage error naming the accepted values.
#[test]
fn shell_completions() -> anyhow::Result<()> {
    // Nothing listens there: completions must not try to connect.
    let nowhere = "http://127.0.0.1:9";
    for (shell, marker) in
        [("bash", "complete -F"), ("zsh", "#compdef passerelle"), ("fish", "complete -c passerelle")]
    {
        let out = passerelle_tests::cli(nowhere, &["completions", shell]).ok()?;
        assert!(out.stdout.contains(marker), "{shell}: {}", out.stdout);
        for command in ["need", "indicators", "consent", "stats", "pki"] {
            assert!(out.stdout.contains(command), "{shell} completion lacks {command}");
        }
    }
    let bad = passerelle_tests::cli(nowhere, &["completions", "powershel"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("bash") && bad.stderr.contains("fish"), "{}", bad.stderr);
    Ok(())
}

/// A value a spreadsheet would run as a formula (CSV injection) comes out as text in every CSV
/// the CLI writes; plain numbers stay numbers.
#[tokio::test(flavor = "multi_thread")]
async fn csv_output_neutralises_formulas() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = InProcessNode::start(dir.path()).await?;
    let ep = node.endpoint.as_str();
    let mut args = need_add_args();
    let title = args.iter().position(|a| *a == "--title").map(|i| i + 1).unwrap_or_default();
    args[title] = "=HYPERLINK(\"http://evil.invalid\",\"x\")";
    args.extend(["--client", "@SUM(A1:A9)"]);
    cli_async(ep, &args).await.ok()?;
    let csv = cli_async(ep, &["--format", "csv", "need", "list"]).await.ok()?.stdout;
    assert!(csv.contains("\"'=HYPERLINK(\"\"http://evil.invalid\"\",\"\"x\"\")\""), "{csv}");
    assert!(csv.contains("'@SUM(A1:A9)"), "{csv}");
    assert!(!csv.contains(",=") && !csv.contains(",@"), "{csv}");
    assert!(csv.contains(",24,"), "numbers untouched: {csv}");
    Ok(())
}
