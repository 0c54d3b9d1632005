//! `passerelle need import` and `passerelle indicators import`: read and check a whole CSV file
//! here (every problem reported at once), then stream it to the node, which checks it again and
//! writes it in one commit — or nothing.

use std::sync::{Arc, Mutex};

use passerelle_client::{Error, NodeClient, TlsFiles, import};
use serde::Serialize;

use super::args::{Format, ImportArgs};
use super::progress::Progress;
use super::render;
use super::views::Record;

/// What is imported.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// Recruitment needs.
    Needs,
    /// Monthly indicator reports.
    Indicators,
}

/// What an import did (or, with `--dry-run`, would do).
#[derive(Debug, Default, Serialize)]
struct ImportView {
    file: String,
    rows: usize,
    dry_run: bool,
    created: u64,
    replaced: u64,
    /// Need ids or report periods, in row order.
    keys: Vec<String>,
}

impl Record for ImportView {
    const PLURAL: &'static str = "imports";
    const TABLE: &'static [&'static str] = &["file", "rows", "dry_run", "created", "replaced"];
}

/// Runs one import command.
pub(crate) async fn run(
    format: Format,
    kind: Kind,
    args: ImportArgs,
    endpoint: &str,
    tls: Option<&TlsFiles>,
) -> Result<std::io::Result<()>, Error> {
    let path = args.file.display().to_string();
    let bytes = std::fs::read(&args.file).map_err(|source| Error::File { path: path.clone(), source })?;
    let invalid = |problems| Error::InvalidFile { path: path.clone(), problems };
    let (rows, what) = match kind {
        Kind::Needs => (Rows::Needs(import::needs(&bytes).map_err(invalid)?), "needs"),
        Kind::Indicators => {
            (Rows::Indicators(import::indicators(&bytes).map_err(invalid)?), "monthly reports")
        }
    };
    let count = rows.len();
    let mut view =
        ImportView { file: path.clone(), rows: count, dry_run: args.dry_run, ..Default::default() };
    if !args.dry_run {
        let mut node = NodeClient::connect(endpoint, tls).await?;
        let progress = Arc::new(Mutex::new(Progress::new(format!("importing {path}"), count)));
        let bar = progress.clone();
        let sent = move |n: usize| {
            if let Ok(mut bar) = bar.lock() {
                bar.set(n);
                if n == count {
                    bar.then("the node is checking and committing");
                }
            }
        };
        let reply = match rows {
            Rows::Needs(rows) => node.import_needs(rows, sent).await,
            Rows::Indicators(rows) => node.import_indicators(rows, sent).await,
        };
        if let Ok(mut bar) = progress.lock() {
            bar.finish();
        }
        let reply = reply?;
        view.created = reply.created;
        view.replaced = reply.replaced;
        view.keys = reply.keys;
    }
    Ok(match format {
        Format::Table => {
            if args.dry_run {
                println!("{path}: {count} {what} checked, all valid; nothing imported (--dry-run)");
            } else {
                println!(
                    "{path}: {count} {what} imported in one commit ({} created, {} replaced)",
                    view.created, view.replaced
                );
            }
            Ok(())
        }
        _ => render::one(format, &view),
    })
}

/// Parsed rows of either kind.
enum Rows {
    Needs(Vec<passerelle_proto::v1::NeedRow>),
    Indicators(Vec<passerelle_proto::v1::IndicatorRow>),
}

impl Rows {
    fn len(&self) -> usize {
        match self {
            Rows::Needs(r) => r.len(),
            Rows::Indicators(r) => r.len(),
        }
    }
}
