//! Reporting periods on a hub: `hub completeness` and `hub period list|close`.

use std::io::Write;

use passerelle_proto::codes::slug_of;
use passerelle_proto::date::format_unix_ms;
use passerelle_proto::v1::{Completeness, CompletenessRow, Period, PeriodState, StructureKind};
use serde::Serialize;

use super::args::Format;
use super::render;
use super::views::Record;

/// One structure's standing for a month.
#[derive(Debug, Default, Serialize)]
pub(crate) struct CompletenessView {
    member: String,
    name: String,
    kind: &'static str,
    departement: String,
    reported: bool,
    reported_at: Option<String>,
    days_late: Option<u32>,
    last_period: Option<String>,
    months_missing: u32,
    /// On a consolidation hub: the hubs relaying the structure.
    networks: Vec<String>,
    /// Whether the month is expected from it (its first report is at or before it).
    expected: bool,
}

impl Record for CompletenessView {
    const PLURAL: &'static str = "structures";
    const TABLE: &'static [&'static str] = &[
        "member",
        "name",
        "kind",
        "departement",
        "reported",
        "reported_at",
        "days_late",
        "last_period",
        "months_missing",
        "networks",
    ];
}

impl From<CompletenessRow> for CompletenessView {
    fn from(r: CompletenessRow) -> Self {
        Self {
            member: r.member,
            name: r.name,
            kind: slug_of::<StructureKind>(r.kind),
            departement: r.departement,
            reported: r.reported,
            reported_at: (r.reported_at_ms > 0).then(|| format_unix_ms(r.reported_at_ms)),
            days_late: r.days_late,
            last_period: (!r.last_period.is_empty()).then_some(r.last_period),
            months_missing: r.months_missing,
            networks: r.networks,
            expected: r.expected,
        }
    }
}

/// The summary line of a completeness report.
fn summary(c: &Completeness) -> String {
    format!(
        "{}: reported {} of {} (due {}): {} on time, {} late, {} missing",
        c.period, c.reported, c.expected, c.due, c.on_time, c.late, c.missing
    )
}

/// Prints a completeness report: rows, then the summary (JSON: one object; CSV: the rows only,
/// the summary being their count).
pub(crate) fn print_completeness(format: Format, c: &Completeness) -> std::io::Result<()> {
    let rows: Vec<CompletenessView> = c.rows.iter().cloned().map(CompletenessView::from).collect();
    match format {
        Format::Json => {
            let doc = serde_json::json!({
                "period": c.period,
                "due": c.due,
                "reported": c.reported,
                "expected": c.expected,
                "on_time": c.on_time,
                "late": c.late,
                "missing": c.missing,
                "rows": rows,
            });
            writeln!(std::io::stdout().lock(), "{}", serde_json::to_string_pretty(&doc)?)
        }
        Format::Csv => render::list(format, &rows),
        Format::Table => {
            render::list(format, &rows)?;
            writeln!(std::io::stdout().lock(), "\n{}", summary(c))
        }
    }
}

/// A month of reporting.
#[derive(Debug, Default, Serialize)]
pub(crate) struct PeriodView {
    period: String,
    state: &'static str,
    due: String,
    closed_at: Option<String>,
    reported: u32,
    expected: u32,
    revisions: u32,
}

impl Record for PeriodView {
    const PLURAL: &'static str = "periods";
    const TABLE: &'static [&'static str] =
        &["period", "state", "due", "closed_at", "reported", "expected", "revisions"];
}

impl From<Period> for PeriodView {
    fn from(p: Period) -> Self {
        let state = match PeriodState::try_from(p.state) {
            Ok(PeriodState::Closed) => "closed",
            Ok(PeriodState::Open) => "open",
            _ => "unknown",
        };
        Self {
            period: p.period,
            state,
            due: p.due,
            closed_at: (p.closed_at_ms > 0).then(|| format_unix_ms(p.closed_at_ms)),
            reported: p.reported,
            expected: p.expected,
            revisions: p.revisions,
        }
    }
}
