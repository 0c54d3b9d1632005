//! What the demo shows, step by step, through the same clients and rendering as the `passerelle`
//! CLI: the hubs' members, the pooled needs one structure sees, a consolidated table as the
//! state's analyst gets it, and a consent withdrawal followed to the hub's purge acknowledgement.

use std::collections::BTreeSet;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use passerelle_client::text::aligned;
use passerelle_client::{HubClient, NodeClient};
use passerelle_proto::codes::slug_of;
use passerelle_proto::date::{Month, format_unix_ms, now_unix_ms};
use passerelle_proto::v1::{
    ConsentPurpose, ContractType, GetTableRequest, HubShare, MemberState, StructureKind,
};

use super::cast::{CONSOLIDATION, STRUCTURES, WITHDRAWING, rome_label};
use super::federation::Federation;
use super::seed::grant;

/// How long the demo waits for one step of propagation before it says what is stuck.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a propagation step is re-checked.
const POLL: Duration = Duration::from_millis(50);

/// A section title.
pub(crate) fn title(text: &str) {
    println!("\n── {text} {}", "─".repeat(90usize.saturating_sub(text.chars().count() + 4)));
}

/// Asks every node to push now and waits for every hub's acknowledgement, then waits until the
/// consolidation hub has every structure's report for each of `months`.
pub(crate) async fn wait_for_sync(federation: &Federation, months: &[Month]) -> anyhow::Result<()> {
    let started = Instant::now();
    for node in &federation.nodes {
        let mut client = NodeClient::connect(&node.api, None).await?;
        client
            .sync_now(true, STEP_TIMEOUT)
            .await
            .with_context(|| format!("{} did not sync with its hubs", node.name))?;
    }
    println!("every node's changes acknowledged by its hubs after {:.1} s", started.elapsed().as_secs_f64());
    let operator = HubClient::connect(&federation.consolidation.api, None).await?;
    let deadline = Instant::now() + STEP_TIMEOUT;
    let wanted: BTreeSet<String> = months.iter().map(ToString::to_string).collect();
    loop {
        let periods = operator.periods().await?;
        let complete = periods
            .iter()
            .filter(|p| wanted.contains(&p.period) && p.reported == STRUCTURES.len() as u32)
            .count();
        if complete == wanted.len() {
            break;
        }
        if Instant::now() > deadline {
            bail!("{CONSOLIDATION} never received the {} structures' reports", STRUCTURES.len());
        }
        tokio::time::sleep(POLL).await;
    }
    println!(
        "{CONSOLIDATION} holds all {} structures' reports, relayed by both networks, after {:.1} s",
        STRUCTURES.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Closes the reported months on every hub through its operator API, as its operator would
/// once the reports are in (`passerelle hub period close`): consumers read closed months only.
pub(crate) async fn close_months(federation: &Federation, months: &[Month]) -> anyhow::Result<()> {
    title(&format!(
        "Closing the reported months on {CONSOLIDATION} and the network hubs (passerelle hub period close)"
    ));
    for hub in federation.networks.iter().chain([&federation.consolidation]) {
        let operator = HubClient::connect(&hub.api, None).await?;
        for month in months {
            operator
                .close_period(&month.to_string())
                .await
                .with_context(|| format!("closing {month} on {}", hub.name))?;
        }
    }
    let periods = HubClient::connect(&federation.consolidation.api, None).await?.periods().await?;
    let header: Vec<String> =
        ["PERIOD", "STATE", "DUE", "CLOSED_AT", "REPORTED", "EXPECTED"].map(String::from).to_vec();
    let rows: Vec<Vec<String>> = periods
        .iter()
        .map(|p| {
            let state =
                if p.state == passerelle_proto::v1::PeriodState::Closed as i32 { "closed" } else { "open" };
            vec![
                p.period.clone(),
                state.into(),
                p.due.clone(),
                if p.closed_at_ms > 0 { format_unix_ms(p.closed_at_ms) } else { String::new() },
                p.reported.to_string(),
                p.expected.to_string(),
            ]
        })
        .collect();
    aligned(&mut std::io::stdout().lock(), &header, &rows)?;
    println!(
        "each closed month's tables are frozen: a report arriving later is counted late and changes nothing published"
    );
    Ok(())
}

/// Each network hub's members, as its regional staff sees them with `passerelle hub members`.
pub(crate) async fn members(federation: &Federation) -> anyhow::Result<()> {
    for hub in federation.networks.iter().chain([&federation.consolidation]) {
        title(&format!("Members of {} (passerelle hub members)", hub.name));
        let members = HubClient::connect(&hub.api, None).await?.members().await?;
        let header: Vec<String> =
            ["ID", "STATE", "NAME", "KIND", "DEPT", "RECORDS", "ACKED"].map(String::from).to_vec();
        let rows: Vec<Vec<String>> = members
            .iter()
            .map(|m| {
                let structure = m.structure.clone().unwrap_or_default();
                vec![
                    format!("{}/{}", m.role, m.id),
                    member_state(m.state).to_string(),
                    if m.role == "hub" { "network hub".into() } else { structure.name },
                    if m.role == "hub" {
                        String::new()
                    } else {
                        slug_of::<StructureKind>(structure.kind).into()
                    },
                    structure.departement,
                    m.records_held.to_string(),
                    m.last_acked_seq.to_string(),
                ]
            })
            .collect();
        aligned(&mut std::io::stdout().lock(), &header, &rows)?;
    }
    Ok(())
}

/// The pooled needs the structure member of both networks sees (its own are not in its view).
pub(crate) async fn pooled_needs(federation: &Federation) -> anyhow::Result<()> {
    let (index, cast) =
        STRUCTURES.iter().enumerate().max_by_key(|(_, c)| c.hubs.len()).context("the demo has structures")?;
    let partners: Vec<_> = STRUCTURES
        .iter()
        .filter(|c| c.siret != cast.siret && c.hubs.iter().any(|h| cast.hubs.contains(h)))
        .collect();
    let expected: usize = partners.iter().map(|c| c.needs.len()).sum();
    title(&format!(
        "Pooled needs seen by {} ({}, {}; member of {}) — passerelle network needs",
        cast.name,
        cast.kind.to_uppercase(),
        cast.departement,
        cast.hubs.join(" and ")
    ));
    let mut client = NodeClient::connect(&federation.nodes[index].api, None).await?;
    let deadline = Instant::now() + STEP_TIMEOUT;
    let needs = loop {
        let needs = client.network_needs(None, None).await?;
        if needs.len() >= expected {
            break needs;
        }
        if Instant::now() > deadline {
            bail!("{} sees {} pooled needs, expected {expected}", cast.name, needs.len());
        }
        tokio::time::sleep(POLL).await;
    };
    let header: Vec<String> =
        ["ROME", "JOB", "CONTRACT", "POSITIONS", "H/WEEK", "DEPT", "STARTS", "STRUCTURE", "VIA"]
            .map(String::from)
            .to_vec();
    let rows: Vec<Vec<String>> = needs
        .iter()
        .filter_map(|p| {
            let n = p.need.as_ref()?;
            Some(vec![
                n.rome_code.clone(),
                rome_label(&n.rome_code).into(),
                slug_of::<ContractType>(n.contract_type).into(),
                n.open_positions.to_string(),
                n.hours_per_week.to_string(),
                n.departement.clone(),
                n.start_date.clone(),
                p.structure_name.clone(),
                p.hubs.join(","),
            ])
        })
        .collect();
    aligned(&mut std::io::stdout().lock(), &header, &rows)?;
    println!(
        "{} needs from {} structures; titles, clients, descriptions and communes stay on their nodes",
        needs.len(),
        needs
            .iter()
            .filter_map(|p| p.need.as_ref().map(|n| n.origin_siret.clone()))
            .collect::<BTreeSet<_>>()
            .len()
    );
    Ok(())
}

/// The consolidated indicators of `quarter` by département, as DREETS' analyst reads them.
pub(crate) async fn consolidated_table(federation: &Federation, quarter: &str) -> anyhow::Result<()> {
    title(&format!(
        "Indicators {quarter} by département at {CONSOLIDATION}, as the state's analyst sees them — passerelle stats indicators"
    ));
    let consumer =
        HubClient::connect(federation.consolidation.hub_endpoint()?, Some(&federation.consumer)).await?;
    let table = consumer
        .table(GetTableRequest {
            table: passerelle_proto::datasets::Dataset::Indicators.to_string(),
            by: vec!["departement".into()],
            period: quarter.into(),
            ..Default::default()
        })
        .await?;
    let mut out = std::io::stdout().lock();
    passerelle_client::text::write_table(&mut out, &table)?;
    writeln!(
        out,
        "one structure per département: each cell is suppressed (never shown as 0), the région total is published"
    )?;
    drop(out);
    // The same analyst at a network hub: refused, so no one reads the same period at two hubs
    // and differences their tables.
    let network = &federation.networks[0];
    let request = GetTableRequest {
        table: passerelle_proto::datasets::Dataset::Indicators.to_string(),
        by: vec!["departement".into()],
        period: quarter.into(),
        ..Default::default()
    };
    let refused = match HubClient::connect(network.hub_endpoint()?, Some(&federation.consumer)).await {
        Err(e) => format!("{e:#}"),
        Ok(client) => match client.table(request).await {
            Err(e) => format!("{e:#}"),
            Ok(_) => anyhow::bail!("{} served the state's consumer", network.name),
        },
    };
    println!(
        "the same analyst at {}: refused (a network hub serves its own network's consumers only): {}",
        network.name,
        refused.lines().next().unwrap_or_default()
    );
    Ok(())
}

/// A person withdraws their placement and statistics consents for a hub (either one alone leaves
/// the hub a copy for the other purpose); the demo follows the purge request to
/// the hub's acknowledgement, in the node's person report and audit log.
pub(crate) async fn withdrawal(federation: &Federation) -> anyhow::Result<()> {
    let (index, first_name) = WITHDRAWING;
    let cast = &STRUCTURES[index];
    let hub = cast.hubs[0];
    let mut client = NodeClient::connect(&federation.nodes[index].api, None).await?;
    let person = client
        .persons()
        .await?
        .into_iter()
        .find(|p| p.fields.as_ref().is_some_and(|f| f.first_name == first_name))
        .with_context(|| format!("{first_name} is not among {}'s persons", cast.name))?;
    title(&format!(
        "{first_name} (person {}) withdraws her placement and statistics consents for {hub}",
        person.id
    ));
    let purposes = [ConsentPurpose::Placement, ConsentPurpose::Statistics];
    let consents = client.consents(Some(person.id.clone())).await?;
    let missing: Vec<ConsentPurpose> = purposes
        .into_iter()
        .filter(|p| {
            !consents.iter().any(|c| c.purpose == *p as i32 && c.hub_id == hub && c.withdrawn_at_ms.is_none())
        })
        .collect();
    if !missing.is_empty() {
        // A second run on the same data: she withdrew last time; she consents again first.
        for purpose in missing {
            client.grant_consent(grant(&person.id, purpose, hub)).await?;
        }
        println!("(a previous run withdrew it: consent given again for this run)");
    }
    client.sync_now(true, STEP_TIMEOUT).await?;
    let before = share(&mut client, &person.id, hub, |s| s.held).await?;
    println!(
        "{hub} holds her anonymised profile as pseudonym {} (categories: {}), shared {}",
        before.pseudonym,
        before.categories.join(", "),
        format_unix_ms(before.last_sent_at_ms)
    );
    let withdrawn_at = now_unix_ms();
    for purpose in purposes {
        client
            .withdraw_consent(passerelle_proto::v1::WithdrawConsentRequest {
                person_id: person.id.clone(),
                purpose: purpose as i32,
                hub_id: hub.into(),
            })
            .await?;
    }
    client.sync_now(true, STEP_TIMEOUT).await?;
    let after = share(&mut client, &person.id, hub, |s| {
        !s.held && s.purge_acked_at_ms >= s.purge_requested_at_ms && s.purge_requested_at_ms >= withdrawn_at
    })
    .await?;
    let header: Vec<String> = ["+MS", "EVENT"].map(String::from).to_vec();
    let rows = vec![
        vec!["0".into(), format!("consents withdrawn at the node ({})", format_unix_ms(withdrawn_at))],
        vec![
            (after.purge_requested_at_ms - withdrawn_at).to_string(),
            format!(
                "purge of pseudonym {} requested from {hub} (a tombstone, in the same commit)",
                after.pseudonym
            ),
        ],
        vec![
            (after.purge_acked_at_ms - withdrawn_at).to_string(),
            format!("{hub} deleted the profile and acknowledged the purge"),
        ],
    ];
    aligned(&mut std::io::stdout().lock(), &header, &rows)?;
    let report = client.person_report(&person.id).await?;
    println!("her audit trail (passerelle person report {}):", person.id);
    let header: Vec<String> = ["SEQ", "AT", "KIND", "HUB"].map(String::from).to_vec();
    let rows: Vec<Vec<String>> = report
        .audit
        .iter()
        .map(|a| vec![a.seq.to_string(), format_unix_ms(a.at_ms), a.kind.clone(), a.hub_id.clone()])
        .collect();
    aligned(&mut std::io::stdout().lock(), &header, &rows)?;
    let verified = client.verify_audit().await?;
    println!(
        "audit log: {} entries, hash chain {}",
        verified.entries,
        if verified.intact { "intact" } else { "BROKEN" }
    );
    Ok(())
}

/// Waits until the person's share record for `hub` satisfies `done`.
async fn share(
    client: &mut NodeClient,
    person_id: &str,
    hub: &str,
    done: impl Fn(&HubShare) -> bool,
) -> anyhow::Result<HubShare> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let report = client.person_report(person_id).await?;
        if let Some(share) = report.shares.into_iter().find(|s| s.hub_id == hub && done(s)) {
            return Ok(share);
        }
        if Instant::now() > deadline {
            bail!("the share record of person {person_id} at {hub} did not reach the expected state");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The exact commands to explore the running federation.
pub(crate) fn commands(federation: &Federation, quarter: &str) -> anyhow::Result<()> {
    let cli = passerelle_cli();
    let node = &federation.nodes[0];
    let coorace = &federation.networks[0];
    let consumer = &federation.consumer;
    let tls = format!(
        "--endpoint {} --ca {} --cert {} --key {}",
        federation.consolidation.hub_endpoint()?,
        consumer.ca.display(),
        consumer.cert.display(),
        consumer.key.display()
    );
    title("Explore it from another terminal; the federation runs until Ctrl-C");
    if cli == "passerelle" {
        println!("(build the CLI first: cargo build --release --bin passerelle, and put it on your PATH)");
    }
    println!("# {}'s staff (structure API of its node, loopback only):", node.name);
    for command in ["need list", "network needs", "person list", "sync status", "audit verify"] {
        println!("{cli} --endpoint {} {command}", node.api);
    }
    println!("{cli} --endpoint {} indicators list --format csv", node.api);
    println!("# {}'s regional staff (operator API of the hub, loopback only):", coorace.name);
    println!("{cli} --endpoint {} hub members", coorace.api);
    println!("{cli} --endpoint {} hub info", coorace.api);
    println!("{cli} --endpoint {} hub completeness", coorace.api);
    println!("{cli} --endpoint {} hub period list", coorace.api);
    println!("# The DREETS analyst (consumer certificate, mutual TLS):");
    println!("{cli} {tls} stats tables");
    println!("{cli} {tls} stats indicators --by departement --period {quarter}");
    println!("{cli} {tls} stats indicators --by kind --period {quarter}");
    println!("{cli} {tls} stats needs --by rome-grand-domaine");
    println!("# Prometheus metrics (plain HTTP; every daemon has its own):");
    for running in [node, coorace] {
        if let Some(metrics) = &running.metrics {
            println!("curl -s {metrics} | grep -v '^#'   # {}", running.name);
        }
    }
    println!("# The daemons' configs, to run one yourself: passerelled run --config FILE");
    for running in federation.networks.iter().chain([&federation.consolidation]).chain(&federation.nodes) {
        println!("#   {:<26} {}", running.name, running.config.display());
    }
    Ok(())
}

/// The `passerelle` binary next to this one, if it is built; otherwise the name on the PATH.
fn passerelle_cli() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("passerelle")))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "passerelle".into())
}

/// A member's state as `passerelle hub members` prints it.
fn member_state(raw: i32) -> &'static str {
    match MemberState::try_from(raw) {
        Ok(MemberState::Accepted) => "accepted",
        Ok(MemberState::Pending) => "pending",
        _ => "unknown",
    }
}
