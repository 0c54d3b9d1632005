//! Reporting periods end to end: a hub with four member structures and `close = "manual"`;
//! completeness before and after reports, statistics refused while a month is open and answered
//! once it is closed, and a report arriving after the closing that changes nothing published.

use std::time::Duration;

use passerelle_client::NodeClient;
use passerelle_proto::date::{Month, now_unix_ms};
use passerelle_proto::identity::Role;
use passerelle_proto::periods::{due_date, due_instant_ms, month_at};
use passerelle_tests::fixtures::report;
use passerelle_tests::pki::{SIRETS, TestPki};
use passerelle_tests::{InProcessDaemon, cli_async};

const DEADLINE_DAY: u8 = 28;

#[tokio::test(flavor = "multi_thread")]
async fn completeness_closing_and_frozen_tables() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub = InProcessDaemon::start_config(&pki.write_hub_config(
        "coorace-pdl",
        "auto_accept = true",
        &format!("\n[periods]\nclose = \"manual\"\ndeadline_day = {DEADLINE_DAY}\n"),
    )?)
    .await?;
    // The last month that has ended (the one reports are now being sent for), and the one before.
    let now = now_unix_ms();
    let current = month_at(now);
    let last = Month::from_ordinal(current.ordinal() - 1);
    let before = Month::from_ordinal(last.ordinal() - 1);
    let (last_s, before_s) = (last.to_string(), before.to_string());
    let due = due_date(last, DEADLINE_DAY).to_string();

    // Four structures in 49, each with its report for the month before.
    let mut nodes = Vec::new();
    for siret in &SIRETS[..4] {
        let hubs = [("coorace-pdl", hub.hub_endpoint(), &["indicators"][..])];
        let node = InProcessDaemon::start_config(&pki.write_node_config(siret, "49", &hubs)?).await?;
        let mut client = NodeClient::connect(&node.endpoint, None).await?;
        client.submit_indicators(report(&before_s)).await?;
        client.sync_now(true, Duration::from_secs(30)).await?;
        nodes.push((node, client));
    }
    let operator = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let endpoint = hub.endpoint.clone();
        async move { cli_async(&endpoint, &args.iter().map(String::as_str).collect::<Vec<_>>()).await }
    };

    // Before any report for the last month: all four expected, none reported.
    let c = operator(&["--format", "json", "hub", "completeness", "--period", &last_s]).await.ok()?.json()?;
    assert_eq!(
        (c["expected"].as_u64(), c["reported"].as_u64(), c["missing"].as_u64()),
        (Some(4), Some(0), Some(4)),
        "{c}"
    );
    assert_eq!(c["due"], due.as_str());

    // Three report on time (if the due date has not passed yet); the fourth does not.
    for (_, client) in &mut nodes[..3] {
        client.submit_indicators(report(&last_s)).await?;
        client.sync_now(true, Duration::from_secs(30)).await?;
    }
    let before_due = now_unix_ms() <= due_instant_ms(last, DEADLINE_DAY);
    let c = operator(&["--format", "json", "hub", "completeness", "--period", &last_s]).await.ok()?.json()?;
    assert_eq!(
        (c["expected"].as_u64(), c["reported"].as_u64(), c["missing"].as_u64()),
        (Some(4), Some(3), Some(1)),
        "{c}"
    );
    assert_eq!(c["on_time"].as_u64(), Some(if before_due { 3 } else { 0 }), "{c}");
    let rows = c["rows"].as_array().cloned().unwrap_or_default();
    let row = |siret: &str| rows.iter().find(|r| r["member"] == siret).cloned().unwrap_or_default();
    let missing = row(SIRETS[3]);
    assert_eq!(missing["reported"], false, "the missing member is named: {c}");
    assert!(missing["days_late"].is_null(), "{c}");
    assert_eq!(missing["last_period"], before_s.as_str());
    assert_eq!(missing["months_missing"], 1);
    assert_eq!(row(SIRETS[0])["reported"], true);
    assert_eq!(row(SIRETS[0])["last_period"], last_s.as_str());
    let table = operator(&["hub", "completeness", "--period", &last_s]).await.ok()?;
    assert!(table.stdout.contains(&format!("{last_s}: reported 3 of 4 (due {due})")), "{table:?}");
    assert!(table.stdout.contains("1 missing"), "{table:?}");
    let csv = operator(&["--format", "csv", "hub", "completeness", "--period", &last_s]).await.ok()?;
    assert!(
        csv.stdout.starts_with(
            "member,name,kind,departement,reported,reported_at,days_late,last_period,months_missing"
        ),
        "{csv:?}"
    );

    // The fourth node lists the month it owes, with the hub's due date.
    let missing =
        cli_async(&nodes[3].0.endpoint, &["--format", "json", "indicators", "missing"]).await.ok()?.json()?;
    let overdue = now_unix_ms() > due_instant_ms(last, DEADLINE_DAY);
    assert_eq!(
        missing,
        serde_json::json!([{ "period": last_s, "hub": "coorace-pdl", "due": due, "overdue": overdue }]),
        "the node that did not report sees its month"
    );
    let reported =
        cli_async(&nodes[0].0.endpoint, &["--format", "json", "indicators", "missing"]).await.ok()?.json()?;
    assert_eq!(reported, serde_json::json!([]), "a node that reported owes nothing");

    // A consumer is refused the open month (exit 2, with its due date), and its quarter.
    let consumer = pki.issue(Role::Consumer, "dreets-52")?;
    let consumer_flags = TestPki::cli_flags(&consumer);
    let consume = |args: &[&str]| {
        let args: Vec<String> =
            consumer_flags.iter().cloned().chain(args.iter().map(|s| s.to_string())).collect();
        let endpoint = hub.hub_endpoint();
        async move { cli_async(&endpoint, &args.iter().map(String::as_str).collect::<Vec<_>>()).await }
    };
    let refused = consume(&["stats", "indicators", "--by", "kind", "--period", &last_s]).await;
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused.stderr.contains(&format!("period {last_s} is not closed yet (due {due})")),
        "{refused:?}"
    );

    // The operator closes it; a month not yet ended is refused; closing again changes nothing.
    let not_ended = operator(&["hub", "period", "close", &current.to_string()]).await;
    assert_eq!(not_ended.code, 2, "{not_ended:?}");
    assert!(not_ended.stderr.contains("has not ended yet"), "{not_ended:?}");
    let closed = operator(&["--format", "json", "hub", "period", "close", &last_s]).await.ok()?.json()?;
    assert_eq!(closed["state"], "closed", "{closed}");
    assert_eq!((closed["reported"].as_u64(), closed["expected"].as_u64()), (Some(3), Some(4)));
    assert_eq!(closed["revisions"], 0);
    let again = operator(&["--format", "json", "hub", "period", "close", &last_s]).await.ok()?.json()?;
    assert_eq!(again["closed_at"], closed["closed_at"], "closing is idempotent");

    // Now answered: three structures; and `stats tables` lists the month.
    let published =
        consume(&["--format", "json", "stats", "indicators", "--by", "kind", "--period", &last_s])
            .await
            .ok()?;
    let total = published.json()?["cells"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["total"] == true).cloned())
        .unwrap_or_default();
    assert_eq!(total["structures"], 3, "{published:?}");
    let tables = consume(&["--format", "json", "stats", "tables"]).await.ok()?.json()?;
    let periods = |name: &str| {
        tables.as_array().and_then(|t| t.iter().find(|t| t["id"] == name)).map(|t| t["periods"].clone())
    };
    assert_eq!(periods("indicators"), Some(serde_json::json!([last_s])), "{tables}");
    assert_eq!(periods("needs"), Some(serde_json::json!(["live"])), "{tables}");

    // The fourth report arrives after the closing: stored, counted late, and the published table
    // stays byte for byte the same (still three structures).
    let (_, late_client) = &mut nodes[3];
    late_client.submit_indicators(report(&last_s)).await?;
    late_client.sync_now(true, Duration::from_secs(30)).await?;
    let c = operator(&["--format", "json", "hub", "completeness", "--period", &last_s]).await.ok()?.json()?;
    assert_eq!((c["reported"].as_u64(), c["missing"].as_u64()), (Some(4), Some(0)), "{c}");
    assert_eq!(c["late"].as_u64(), Some(if before_due { 1 } else { 4 }), "{c}");
    let rows = c["rows"].as_array().cloned().unwrap_or_default();
    let late = rows.iter().find(|r| r["member"] == SIRETS[3]).cloned().unwrap_or_default();
    assert!(late["days_late"].as_u64().is_some_and(|d| d >= 1), "a report after the closing is late: {c}");
    let after = consume(&["--format", "json", "stats", "indicators", "--by", "kind", "--period", &last_s])
        .await
        .ok()?;
    assert_eq!(after.stdout, published.stdout, "a closed month's table does not move");
    let channel = passerelle_client::connect(&hub.hub_endpoint(), Some(&consumer), "hub").await?;
    let request = passerelle_proto::v1::GetTableRequest {
        table: "indicators".into(),
        by: vec!["kind".into()],
        period: last_s.clone(),
        from: None,
        to: None,
        revision: None,
    };
    let mut stats = passerelle_proto::v1::statistics_service_client::StatisticsServiceClient::new(channel);
    let first = prost::Message::encode_to_vec(&stats.get_table(request.clone()).await?.into_inner());
    let second = prost::Message::encode_to_vec(&stats.get_table(request).await?.into_inner());
    assert_eq!(first, second);
    let list = operator(&["--format", "json", "hub", "period", "list"]).await.ok()?.json()?;
    let listed: Vec<(String, String, u64, u64)> = list
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            (
                p["period"].as_str().unwrap_or_default().to_string(),
                p["state"].as_str().unwrap_or_default().to_string(),
                p["reported"].as_u64().unwrap_or_default(),
                p["expected"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![(before_s.clone(), "open".into(), 4, 4), (last_s.clone(), "closed".into(), 4, 4)],
        "{list}"
    );

    for (node, _) in nodes {
        node.stop().await?;
    }
    hub.stop().await
}

/// A node that skipped a month: `indicators missing` lists it with its due date as overdue,
/// `sync status` says so, and reporting it clears it.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_sees_the_months_it_owes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub = InProcessDaemon::start_config(&pki.write_hub_config(
        "coorace-pdl",
        "auto_accept = true",
        &format!("\n[periods]\nclose = \"manual\"\ndeadline_day = {DEADLINE_DAY}\n"),
    )?)
    .await?;
    let now = now_unix_ms();
    let last = Month::from_ordinal(month_at(now).ordinal() - 1);
    let gap = Month::from_ordinal(last.ordinal() - 1);
    let old = Month::from_ordinal(gap.ordinal() - 1);
    let hubs = [("coorace-pdl", hub.hub_endpoint(), &["indicators"][..])];
    let node = InProcessDaemon::start_config(&pki.write_node_config(SIRETS[0], "49", &hubs)?).await?;
    let mut client = NodeClient::connect(&node.endpoint, None).await?;

    // Joined this month, never reported: last month is owed, with the hub's due date.
    client.sync_now(true, Duration::from_secs(30)).await?;
    let last_overdue = now_unix_ms() > due_instant_ms(last, DEADLINE_DAY);
    let missing =
        cli_async(&node.endpoint, &["--format", "json", "indicators", "missing"]).await.ok()?.json()?;
    assert_eq!(
        missing,
        serde_json::json!([{ "period": last.to_string(), "hub": "coorace-pdl",
              "due": due_date(last, DEADLINE_DAY).to_string(), "overdue": last_overdue }])
    );

    // A report from three months ago: the month since (due 28 of last month, passed) is owed too.
    client.submit_indicators(report(&old.to_string())).await?;
    let missing =
        cli_async(&node.endpoint, &["--format", "json", "indicators", "missing"]).await.ok()?.json()?;
    assert_eq!(
        missing,
        serde_json::json!([
            { "period": gap.to_string(), "hub": "coorace-pdl",
              "due": due_date(gap, DEADLINE_DAY).to_string(), "overdue": true },
            { "period": last.to_string(), "hub": "coorace-pdl",
              "due": due_date(last, DEADLINE_DAY).to_string(), "overdue": last_overdue },
        ])
    );
    let table = cli_async(&node.endpoint, &["indicators", "missing"]).await.ok()?;
    assert!(table.stdout.contains(&gap.to_string()) && table.stdout.contains("true"), "{table:?}");
    let csv = cli_async(&node.endpoint, &["--format", "csv", "indicators", "missing"]).await.ok()?;
    assert!(csv.stdout.starts_with("period,hub,due,overdue\n"), "{csv:?}");

    let overdue = 1 + u32::from(last_overdue);
    assert_eq!(client.sync_status().await?.overdue_months, overdue);
    let status = cli_async(&node.endpoint, &["sync", "status"]).await.ok()?;
    let line = if overdue == 1 { "1 month overdue".to_string() } else { format!("{overdue} months overdue") };
    assert!(status.stdout.contains(&line), "{status:?}");
    let json = cli_async(&node.endpoint, &["--format", "json", "sync", "status"]).await.ok()?;
    assert!(json.json()?.is_array(), "JSON stays one document: {json:?}");
    assert!(json.stderr.contains(&line), "{json:?}");

    // Reporting the gap (and last month) clears them.
    client.submit_indicators(report(&gap.to_string())).await?;
    client.submit_indicators(report(&last.to_string())).await?;
    let missing =
        cli_async(&node.endpoint, &["--format", "json", "indicators", "missing"]).await.ok()?.json()?;
    assert_eq!(missing, serde_json::json!([]));
    let status = cli_async(&node.endpoint, &["sync", "status"]).await.ok()?;
    assert!(!status.stdout.contains("overdue"), "{status:?}");

    node.stop().await?;
    hub.stop().await
}

/// A report arriving after the closing is published by `hub period revise` as revision 1;
/// revision 0 stays readable with `--revision 0`, JSON and CSV say which revision they are, and
/// the difference of the two revisions does not give the late structure's figures: three
/// structures in one cell at the closing, four in revision 1, so revision 1 withholds the cell
/// wherever it shows (every table of this hub is that one cell).
#[tokio::test(flavor = "multi_thread")]
async fn a_late_report_is_published_as_a_revision() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::new(dir.path())?;
    let hub = InProcessDaemon::start_config(&pki.write_hub_config(
        "coorace-pdl",
        "auto_accept = true",
        &format!("\n[periods]\nclose = \"manual\"\ndeadline_day = {DEADLINE_DAY}\n"),
    )?)
    .await?;
    let last = Month::from_ordinal(month_at(now_unix_ms()).ordinal() - 1);
    let last_s = last.to_string();
    let mut nodes = Vec::new();
    for siret in &SIRETS[..4] {
        let hubs = [("coorace-pdl", hub.hub_endpoint(), &["indicators"][..])];
        let node = InProcessDaemon::start_config(&pki.write_node_config(siret, "49", &hubs)?).await?;
        let client = NodeClient::connect(&node.endpoint, None).await?;
        nodes.push((node, client));
    }
    for (_, client) in &mut nodes[..3] {
        client.submit_indicators(report(&last_s)).await?;
        client.sync_now(true, Duration::from_secs(30)).await?;
    }
    let operator = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let endpoint = hub.endpoint.clone();
        async move { cli_async(&endpoint, &args.iter().map(String::as_str).collect::<Vec<_>>()).await }
    };
    let consumer = pki.issue(Role::Consumer, "dreets-52")?;
    let consumer_flags = TestPki::cli_flags(&consumer);
    let consume = |args: &[&str]| {
        let args: Vec<String> =
            consumer_flags.iter().cloned().chain(args.iter().map(|s| s.to_string())).collect();
        let endpoint = hub.hub_endpoint();
        async move { cli_async(&endpoint, &args.iter().map(String::as_str).collect::<Vec<_>>()).await }
    };

    // An open month is not revised.
    let open = operator(&["hub", "period", "revise", &last_s]).await;
    assert_eq!(open.code, 2, "{open:?}");
    assert!(open.stderr.contains(&format!("period {last_s} is open")), "{open:?}");
    operator(&["hub", "period", "close", &last_s]).await.ok()?;
    let nothing = operator(&["hub", "period", "revise", &last_s]).await;
    assert_eq!(nothing.code, 2, "{nothing:?}");
    assert!(nothing.stderr.contains("nothing to revise"), "{nothing:?}");
    let by_kind = |revision: Option<&str>| {
        let mut args = vec!["--format", "json", "stats", "indicators", "--by", "kind", "--period", &last_s];
        args.extend(revision.map(|r| ["--revision", r]).into_iter().flatten());
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        let consume = &consume;
        async move { consume(&args.iter().map(String::as_str).collect::<Vec<_>>()).await }
    };
    let closed = by_kind(None).await.ok()?;
    let closed_json = closed.json()?;
    assert_eq!(closed_json["revision"], 0, "{closed_json}");
    let grand = |table: &serde_json::Value| {
        table["cells"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["total"] == true).cloned())
            .unwrap_or_default()
    };
    assert_eq!(grand(&closed_json)["structures"], 3, "{closed_json}");
    assert_eq!(grand(&closed_json)["measures"]["hours_worked"], 3 * 1700, "{closed_json}");

    // The late report, then the revision.
    let (_, late) = &mut nodes[3];
    late.submit_indicators(report(&last_s)).await?;
    late.sync_now(true, Duration::from_secs(30)).await?;
    assert_eq!(by_kind(None).await.ok()?.stdout, closed.stdout, "nothing moves before the revision");
    let revised = operator(&["--format", "json", "hub", "period", "revise", &last_s]).await.ok()?.json()?;
    assert_eq!(revised["revisions"], 1, "{revised}");
    let again = operator(&["hub", "period", "revise", &last_s]).await;
    assert!(again.stderr.contains("nothing to revise") && again.stderr.contains("revision 1"), "{again:?}");

    // Revision 1 by default; revision 0 as it was; revision 2 does not exist.
    let latest = by_kind(None).await.ok()?.json()?;
    assert_eq!(latest["revision"], 1, "{latest}");
    assert_eq!(by_kind(Some("1")).await.ok()?.json()?, latest);
    assert_eq!(by_kind(Some("0")).await.ok()?.stdout, closed.stdout, "revision 0 is still readable");
    let missing = by_kind(Some("2")).await;
    assert_eq!(missing.code, 2, "{missing:?}");
    assert!(
        missing.stderr.contains(&format!("revision 2 of period {last_s} (latest: 1) not found")),
        "{missing:?}"
    );
    let csv = consume(&["--format", "csv", "stats", "indicators", "--by", "kind", "--period", &last_s])
        .await
        .ok()?;
    let mut lines = csv.stdout.lines();
    assert!(lines.next().is_some_and(|h| h.ends_with(",suppressed,revision")), "{csv:?}");
    assert!(lines.all(|l| l.ends_with(",1")), "{csv:?}");
    let csv0 = consume(&[
        "--format",
        "csv",
        "stats",
        "indicators",
        "--by",
        "kind",
        "--period",
        &last_s,
        "--revision",
        "0",
    ])
    .await
    .ok()?;
    assert!(csv0.stdout.lines().skip(1).all(|l| l.ends_with(",0")), "{csv0:?}");

    // The difference attack: revision 0 publishes the three structures' total; revision 1
    // must not publish the four's, in any table (they are all this one cell).
    for by in ["", "kind", "departement", "departement,kind"] {
        let mut args = vec!["--format", "json", "stats", "indicators", "--period", &last_s];
        if !by.is_empty() {
            args.extend(["--by", by]);
        }
        let table = consume(&args).await.ok()?.json()?;
        for cell in table["cells"].as_array().cloned().unwrap_or_default() {
            assert!(cell["structures"].is_null(), "revision 1 gives the late report away: {table}");
            let measures = cell["measures"].as_object().cloned().unwrap_or_default();
            assert!(measures.values().all(serde_json::Value::is_null), "{table}");
        }
    }
    for (node, _) in nodes {
        node.stop().await?;
    }
    hub.stop().await
}
