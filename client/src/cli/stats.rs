//! Printing statistics tables: suppressed values are empty, never 0, and say why.

use std::io::Write;

use passerelle_client::text::{reason, revised, shown};
use passerelle_proto::v1::{Cell, Table};

use super::args::Format;

fn json_cell(table: &Table, cell: &Cell) -> serde_json::Value {
    let key: serde_json::Map<String, serde_json::Value> = table
        .by
        .iter()
        .zip(&cell.key)
        .map(|(d, v)| (d.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let measures: serde_json::Map<String, serde_json::Value> = cell
        .measures
        .iter()
        .map(|m| {
            let value = match m.value {
                Some(_) if m.unit != "count" => serde_json::Value::String(shown(m)),
                Some(v) => serde_json::json!(v),
                None => serde_json::Value::Null,
            };
            (m.name.clone(), value)
        })
        .collect();
    let why = reason(cell);
    serde_json::json!({
        "key": key,
        "total": cell.total,
        "structures": cell.structures,
        "measures": measures,
        "suppressed": if why.is_empty() { serde_json::Value::Null } else { serde_json::Value::String(why) },
    })
}

/// Prints a table in the chosen format. Indicators tables carry their period's revision: a
/// `revision` field (JSON), a last column (CSV), a line after the rules (table).
pub(crate) fn print(format: Format, table: &Table) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            let mut doc = serde_json::json!({
                "table": table.table,
                "by": table.by,
                "period": table.period,
                "cells": table.cells.iter().map(|c| json_cell(table, c)).collect::<Vec<_>>(),
                "rules": table.rules,
                "freshness": table.freshness,
            });
            if revised(table) {
                doc["revision"] = serde_json::json!(table.revision);
            }
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)
        }
        Format::Csv => passerelle_client::text::write_table_csv(out, table),
        Format::Table => {
            passerelle_client::text::write_table(&mut out, table)?;
            if revised(table) {
                writeln!(out, "revision: {}", table.revision)?;
            }
            Ok(())
        }
    }
}
