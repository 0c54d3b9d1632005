//! CSV import: a spreadsheet of needs read, checked and written in one commit, compared in the
//! same run with the baseline a script would use without it — one `CreateNeed` call (one durable
//! commit) per row.
//!
//! Run: `cargo bench -p passerelle-tests --bench import` (env `BENCH_ROWS`, default 100000;
//! `BENCH_BASELINE_ROWS`, default 2000; `BENCH_RUNS`, default 3). The import goes through the
//! same library calls as `passerelle need import` (parse and check, then the streamed
//! `ImportNeeds` RPC) against a real node on loopback with its sled store on disk.

use std::time::{Duration, Instant};

use passerelle_client::NodeClient;
use passerelle_tests::InProcessNode;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A needs file as a structure's spreadsheet exports it (`;`, accented header, French dates).
fn spreadsheet(rows: usize) -> String {
    let mut file = String::from("ROME;Intitulé;Contrat;Postes;Heures;Département;Commune;Début;Fin;Client\n");
    for i in 0..rows {
        file.push_str(&format!(
            "K22{:02};Agent d'entretien {i};mise-a-disposition;{};24;49;49007;04/01/2027;30/06/2027;Client {i}\n",
            i % 100,
            1 + i % 3
        ));
    }
    file
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rows = env("BENCH_ROWS", 100_000);
    let baseline_rows = env("BENCH_BASELINE_ROWS", 2_000);
    let runs = env("BENCH_RUNS", 3).max(1);
    let file = spreadsheet(rows);
    let (mut parse, mut import, mut baseline) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let dir = tempfile::tempdir()?;
        let node = InProcessNode::start(dir.path()).await?;
        let mut client = NodeClient::connect(&node.endpoint, None).await?;

        let started = Instant::now();
        let parsed = passerelle_client::import::needs(file.as_bytes())
            .map_err(|p| anyhow::anyhow!("{} problems, first {}", p.len(), p[0]))?;
        parse.push(started.elapsed());
        let reply = client.import_needs(parsed, |_| {}).await?;
        import.push(started.elapsed());
        anyhow::ensure!(reply.created as usize == rows, "imported {}", reply.created);

        let one_by_one = passerelle_client::import::needs(spreadsheet(baseline_rows).as_bytes())
            .map_err(|p| anyhow::anyhow!("{} problems", p.len()))?;
        let started = Instant::now();
        for row in one_by_one {
            client.create_need(row.fields.unwrap_or_default()).await?;
        }
        baseline.push(started.elapsed());
        node.stop().await?;
    }
    let (parse, import, baseline) = (median(parse), median(import), median(baseline));
    let import_rate = rows as f64 / import.as_secs_f64();
    let baseline_rate = baseline_rows as f64 / baseline.as_secs_f64();
    println!("| what | rows | median time | rows/s |");
    println!("|---|---|---|---|");
    println!(
        "| read + check the CSV (client) | {rows} | {:.0} ms | {:.0} |",
        parse.as_secs_f64() * 1e3,
        rows as f64 / parse.as_secs_f64()
    );
    println!(
        "| `need import`: read, check, stream, node re-checks, one commit | {rows} | {:.2} s | {import_rate:.0} |",
        import.as_secs_f64()
    );
    println!(
        "| baseline: one `CreateNeed` (one durable commit) per row | {baseline_rows} | {:.2} s | {baseline_rate:.0} |",
        baseline.as_secs_f64()
    );
    println!("\nimport / baseline throughput: {:.1}× (median of {runs} runs)", import_rate / baseline_rate);
    Ok(())
}
