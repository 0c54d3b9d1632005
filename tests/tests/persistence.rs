//! Durability: what a node acknowledged is on disk, across clean restarts and `kill -9`; and the
//! daemon process's own contract (exclusive data directory, SIGTERM, log format).

use std::process::Command;

use passerelle_tests::{
    ChildDaemon, InProcessNode, SIRET, bin, cli, cli_async, indicators_submit_args, need_add_args,
    person_add_args, write_node_config,
};

#[tokio::test(flavor = "multi_thread")]
async fn records_survive_a_graceful_restart() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = InProcessNode::start(dir.path()).await?;
    let need = cli_async(&node.endpoint, &[&["--format", "json"], need_add_args().as_slice()].concat())
        .await
        .ok()?
        .json()?;
    let person = cli_async(&node.endpoint, &[&["--format", "json"], person_add_args().as_slice()].concat())
        .await
        .ok()?
        .json()?;
    let person_id = person["id"].as_str().unwrap_or_default().to_string();
    cli_async(
        &node.endpoint,
        &[
            "consent",
            "grant",
            "--person",
            &person_id,
            "--purpose",
            "statistics",
            "--hub",
            "coorace-pdl",
            "--text-version",
            "v1",
        ],
    )
    .await
    .ok()?;
    cli_async(&node.endpoint, &indicators_submit_args("2026-10")).await.ok()?;
    node.stop().await?;

    let node = InProcessNode::start(dir.path()).await?;
    let needs = cli_async(&node.endpoint, &["--format", "json", "need", "list"]).await.ok()?.json()?;
    assert_eq!(needs.as_array().map(Vec::len), Some(1));
    assert_eq!(needs[0], need, "the need comes back identical");
    let shown =
        cli_async(&node.endpoint, &["--format", "json", "person", "show", &person_id]).await.ok()?.json()?;
    assert_eq!(shown, person);
    let consents = cli_async(&node.endpoint, &["--format", "json", "consent", "list"]).await.ok()?.json()?;
    assert_eq!(consents[0]["person_id"], person_id.as_str());
    let reports =
        cli_async(&node.endpoint, &["--format", "json", "indicators", "list"]).await.ok()?.json()?;
    assert_eq!(reports[0]["etp"], "12.50");
    node.stop().await
}

/// A write acknowledged to the CLI is on disk even if the daemon is SIGKILLed right after: the
/// daemon is a real child process, killed with no chance to flush.
#[test]
fn acknowledged_writes_survive_kill_9() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = write_node_config(dir.path(), SIRET, "127.0.0.1:0")?;
    let mut acknowledged = Vec::new();
    for round in 0..3 {
        let daemon = ChildDaemon::spawn(&config)?;
        for _ in 0..5 {
            let out =
                cli(&daemon.endpoint, &[&["--format", "json"], need_add_args().as_slice()].concat()).ok()?;
            acknowledged.push(out.json()?["id"].as_str().unwrap_or_default().to_string());
        }
        let period: &'static str = ["2026-07", "2026-08", "2026-09"][round];
        cli(&daemon.endpoint, &indicators_submit_args(period)).ok()?;
        // The very last acknowledged write, immediately before the kill.
        let closed = cli(
            &daemon.endpoint,
            &["--format", "json", "need", "close", &acknowledged[0], "--status", "filled"],
        )
        .ok()?;
        assert_eq!(closed.json()?["status"], "filled");
        daemon.kill9()?;
    }

    let daemon = ChildDaemon::spawn(&config)?;
    let needs = cli(&daemon.endpoint, &["--format", "json", "need", "list"]).ok()?.json()?;
    let ids: Vec<&str> = needs.as_array().into_iter().flatten().filter_map(|n| n["id"].as_str()).collect();
    assert_eq!(
        ids,
        acknowledged.iter().map(String::as_str).collect::<Vec<_>>(),
        "every acknowledged need, in order, no duplicate"
    );
    assert_eq!(needs[0]["status"], "filled");
    assert_eq!(
        needs[0]["version"], 2,
        "closed once: the close acknowledged before each kill is kept, not replayed"
    );
    let reports = cli(&daemon.endpoint, &["--format", "json", "indicators", "list"]).ok()?.json()?;
    assert_eq!(reports.as_array().map(Vec::len), Some(3));
    daemon.kill9()
}

#[test]
fn a_second_daemon_on_the_same_data_dir_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = write_node_config(dir.path(), SIRET, "127.0.0.1:0")?;
    let first = ChildDaemon::spawn(&config)?;
    let second = Command::new(bin("passerelled")).args(["run", "--config"]).arg(&config).output()?;
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("in use by another process"), "{stderr}");
    // The first one is unharmed.
    cli(&first.endpoint, &["need", "list"]).ok()?;
    first.kill9()
}

#[test]
fn sigterm_stops_the_daemon_cleanly() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = write_node_config(dir.path(), SIRET, "127.0.0.1:0")?;
    let mut daemon = ChildDaemon::spawn(&config)?;
    cli(&daemon.endpoint, &need_add_args()).ok()?;
    let pid = daemon.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status()?.success());
    let status = daemon.child.wait()?;
    assert_eq!(status.code(), Some(0), "graceful stop exits 0");
    let unreachable = cli(&daemon.endpoint, &["need", "list"]);
    assert_eq!(unreachable.code, 1, "{unreachable:?}");
    assert!(
        unreachable.stderr.contains(&format!("cannot reach node at {}", daemon.endpoint)),
        "{unreachable:?}"
    );
    Ok(())
}

#[test]
fn a_data_dir_of_another_structure_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = write_node_config(dir.path(), SIRET, "127.0.0.1:0")?;
    ChildDaemon::spawn(&config)?.kill9()?;
    let other = write_node_config(dir.path(), "35600000000048", "127.0.0.1:0")?;
    let out = Command::new(bin("passerelled")).args(["run", "--config"]).arg(&other).output()?;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("belongs to node:{SIRET}")), "{stderr}");
    Ok(())
}

#[test]
fn json_logs_are_one_object_per_line() -> anyhow::Result<()> {
    use std::io::Read;
    let dir = tempfile::tempdir()?;
    let config = write_node_config(dir.path(), SIRET, "127.0.0.1:0")?;
    let mut daemon =
        ChildDaemon::spawn_with(&config, &["--log-format", "json"], "info,passerelle_daemon::authz=debug")?;
    // Every call gets its own span, naming the method and the caller.
    cli(&daemon.endpoint, &["need", "list"]).ok()?;
    assert!(Command::new("kill").args(["-TERM", &daemon.child.id().to_string()]).status()?.success());
    assert_eq!(daemon.child.wait()?.code(), Some(0));
    let mut stderr = String::new();
    daemon.child.stderr.take().ok_or_else(|| anyhow::anyhow!("no stderr"))?.read_to_string(&mut stderr)?;
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).map_err(|e| anyhow::anyhow!("not JSON ({e}): {l}")))
        .collect::<anyhow::Result<_>>()?;
    let messages: Vec<&str> = events.iter().filter_map(|e| e["fields"]["message"].as_str()).collect();
    assert!(messages.contains(&"api listening"), "{stderr}");
    assert!(messages.contains(&"stopped cleanly"), "{stderr}");
    let call = events
        .iter()
        .find(|e| e["fields"]["message"] == "call authorized")
        .ok_or_else(|| anyhow::anyhow!("no call event: {stderr}"))?;
    assert_eq!(call["span"]["name"], "rpc", "{call}");
    assert_eq!(call["span"]["method"], "/passerelle.v1.StructureService/ListNeeds", "{call}");
    assert!(call["span"]["peer"].as_str().is_some_and(|p| p.contains("operator")), "{call}");
    assert!(events.iter().all(|e| e["level"].is_string() && e["timestamp"].is_string()), "{stderr}");
    let bad = Command::new(bin("passerelled"))
        .args(["run", "--log-format", "xml", "--config"])
        .arg(&config)
        .output()?;
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("json"), "{bad:?}");
    Ok(())
}
