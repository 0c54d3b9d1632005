//! Interoperability with a gRPC stack nobody here wrote: Python's `grpcio`, installed from PyPI
//! into a venv (`tests/interop/setup.sh`), generates its stubs from the repository's `proto/`
//! and, with a consumer certificate over mutual TLS, calls a real hub's health service and a
//! statistics table. The answer must match what the Rust client reads, cell for cell — so the
//! protocol is plain standard gRPC, suppression included.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use passerelle_client::NodeClient;
use passerelle_proto::identity::Role;
use passerelle_proto::v1::GetTableRequest;
use passerelle_proto::v1::statistics_service_client::StatisticsServiceClient;
use passerelle_tests::InProcessDaemon;
use passerelle_tests::fixtures::report;
use passerelle_tests::pki::{SIRETS, TestPki};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The venv's Python, created (once per target directory) by the same script `.ci/run` uses.
fn interop_python() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test> → target/
    let target = exe.ancestors().nth(3).context("target directory")?;
    let venv = target.join("interop-venv");
    let setup = Command::new("bash")
        .arg(repo().join("tests/interop/setup.sh"))
        .arg(&venv)
        .output()
        .context("running tests/interop/setup.sh")?;
    if !setup.status.success() {
        bail!(
            "cannot set up the Python interop venv (needs python3 with venv and access to PyPI): {}{}",
            String::from_utf8_lossy(&setup.stdout),
            String::from_utf8_lossy(&setup.stderr)
        );
    }
    Ok(venv.join("bin/python"))
}

/// A cell as both sides describe it: key, total flag, suppression, measures (None = suppressed).
fn cell_signature(cell: &Value) -> String {
    let measures = cell["measures"].as_object().map(|m| {
        let mut pairs: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.sort();
        pairs.join(",")
    });
    format!(
        "{}|{}|{}|{}|{}",
        cell["key"],
        cell["total"],
        cell["structures"],
        cell["suppressed"],
        measures.unwrap_or_default()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn python_grpcio_consumer_reads_health_and_a_suppressed_table() -> anyhow::Result<()> {
    let python = tokio::task::spawn_blocking(interop_python).await??;

    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub =
        InProcessDaemon::start_config(&pki.write_hub_config("coorace-pdl", "auto_accept = true", "")?)
            .await?;
    // Three structures in 49, one in 85: 85 is suppressed (one structure), and 49 too (secondary
    // suppression: with the total published, 49 would give 85 away by subtraction).
    let mut nodes = Vec::new();
    for (i, dep) in [(0, "49"), (1, "49"), (2, "49"), (3, "85")] {
        let hubs = [("coorace-pdl", hub.hub_endpoint(), &["indicators"][..])];
        let node = InProcessDaemon::start_config(&pki.write_node_config(SIRETS[i], dep, &hubs)?).await?;
        let mut client = NodeClient::connect(&node.endpoint, None).await?;
        for period in ["2026-07", "2026-08", "2026-09"] {
            client.submit_indicators(report(period)).await?;
        }
        client.sync_now(true, Duration::from_secs(30)).await?;
        nodes.push(node);
    }
    // Consumers read closed periods: the operator closes the quarter's months.
    hub.close_periods(&["2026-07", "2026-08", "2026-09"]).await?;
    let consumer = pki.issue(Role::Consumer, "dreets-52")?;

    // The same table through the Rust client, as the reference.
    let channel = passerelle_client::connect(&hub.hub_endpoint(), Some(&consumer), "hub").await?;
    let request = GetTableRequest {
        table: "indicators".into(),
        by: vec!["departement".into()],
        period: "2026-Q3".into(),
        from: None,
        to: None,
        revision: None,
    };
    let reference = StatisticsServiceClient::new(channel).get_table(request).await?.into_inner();

    let port = hub.hub_endpoint().rsplit(':').next().unwrap_or_default().to_string();
    let args = [
        repo().join("tests/interop/consumer.py").display().to_string(),
        "--target".into(),
        format!("localhost:{port}"),
        "--ca".into(),
        consumer.ca.display().to_string(),
        "--cert".into(),
        consumer.cert.display().to_string(),
        "--key".into(),
        consumer.key.display().to_string(),
        "--proto-dir".into(),
        repo().join("proto").display().to_string(),
        "--table".into(),
        "indicators".into(),
        "--by".into(),
        "departement".into(),
        "--period".into(),
        "2026-Q3".into(),
    ];
    let output = tokio::task::spawn_blocking(move || Command::new(python).args(args).output()).await??;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "consumer.py failed: {stderr}");
    let answer: Value =
        serde_json::from_slice(&output.stdout).with_context(|| format!("stdout: {stderr}"))?;

    assert_eq!(answer["health"][""], "SERVING", "{answer}");
    assert_eq!(answer["health"]["passerelle.v1.StatisticsService"], "SERVING", "{answer}");
    let table = &answer["table"];
    assert_eq!(table["table"], "indicators");
    assert_eq!(table["by"], serde_json::json!(["departement"]));
    assert_eq!(table["rules"].as_array().map(Vec::len), Some(reference.rules.len()), "{table}");

    let cells = table["cells"].as_array().cloned().unwrap_or_default();
    let find = |dep: &str| cells.iter().find(|c| c["key"] == serde_json::json!([dep]) && c["total"] == false);
    let total = cells.iter().find(|c| c["total"] == true).context("no total")?;
    assert_eq!(total["suppressed"], "", "{total}");
    assert_eq!(total["structures"], 4, "{total}");
    assert_eq!(total["measures"]["employees_in_insertion"], 80, "{total}");
    for (dep, rule) in [("85", "structures"), ("49", "secondary suppression")] {
        let cell = find(dep).with_context(|| format!("no cell for {dep}"))?;
        assert!(cell["suppressed"].as_str().is_some_and(|s| s.contains(rule)), "{dep}: {cell}");
        assert!(
            cell["measures"].as_object().is_none_or(|m| m.values().all(Value::is_null)),
            "a suppressed cell carries no value: {cell}"
        );
    }

    // Cell for cell, what Python decoded is what the Rust client decoded.
    let mut python_cells: Vec<String> = cells.iter().map(cell_signature).collect();
    let mut rust_cells: Vec<String> = reference
        .cells
        .iter()
        .map(|c| {
            let measures: serde_json::Map<String, Value> =
                c.measures.iter().map(|m| (m.name.clone(), serde_json::json!(m.value))).collect();
            cell_signature(&serde_json::json!({
                "key": c.key, "total": c.total, "structures": c.structures,
                "suppressed": c.suppressed, "measures": measures,
            }))
        })
        .collect();
    python_cells.sort();
    rust_cells.sort();
    assert_eq!(python_cells, rust_cells);

    for node in nodes {
        node.stop().await?;
    }
    hub.stop().await
}
