//! Printing statistics tables: suppressed values are empty, never 0, and say why.

use std::io::Write;

use passerelle_proto::v1::{Cell, Measure, Table};

use super::args::Format;

fn shown(m: &Measure) -> String {
    match (m.value, m.unit.as_str()) {
        (None, _) => String::new(),
        (Some(v), "hundredths") => format!("{}.{:02}", v / 100, v % 100),
        (Some(v), "percent-hundredths") => format!("{}.{:02}", v / 100, v % 100),
        (Some(v), _) => v.to_string(),
    }
}

/// Why a cell (or some of its measures) is not published, in one string.
fn reason(cell: &Cell) -> String {
    if !cell.suppressed.is_empty() {
        return cell.suppressed.clone();
    }
    let mut reasons: Vec<String> = Vec::new();
    for m in &cell.measures {
        if !m.suppressed.is_empty() && !reasons.iter().any(|r| r.ends_with(&m.suppressed)) {
            reasons.push(format!("exit figures: {}", m.suppressed));
        }
    }
    reasons.join("; ")
}

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

/// Prints a table in the chosen format.
pub(crate) fn print(format: Format, table: &Table) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let names: Vec<String> =
        table.cells.first().map(|c| c.measures.iter().map(|m| m.name.clone()).collect()).unwrap_or_default();
    let header: Vec<String> = table
        .by
        .iter()
        .cloned()
        .chain(["total".into(), "structures".into()])
        .chain(names.iter().cloned())
        .chain(["suppressed".into()])
        .collect();
    let rows: Vec<Vec<String>> = table
        .cells
        .iter()
        .map(|c| {
            c.key
                .iter()
                .cloned()
                .chain([c.total.to_string(), c.structures.map(|s| s.to_string()).unwrap_or_default()])
                .chain(c.measures.iter().map(shown))
                .chain([reason(c)])
                .collect()
        })
        .collect();
    match format {
        Format::Json => {
            let doc = serde_json::json!({
                "table": table.table,
                "by": table.by,
                "period": table.period,
                "cells": table.cells.iter().map(|c| json_cell(table, c)).collect::<Vec<_>>(),
                "rules": table.rules,
                "freshness": table.freshness,
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)
        }
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(out);
            writer.write_record(&header)?;
            for row in rows {
                writer.write_record(row)?;
            }
            writer.flush()
        }
        Format::Table => {
            if table.cells.is_empty() {
                writeln!(out, "no data for this table and period")?;
            } else {
                super::render::aligned(&mut out, &header, &rows)?;
            }
            writeln!(out)?;
            for rule in &table.rules {
                writeln!(out, "rule: {rule}")?;
            }
            for f in &table.freshness {
                writeln!(out, "latest report: {f}")?;
            }
            Ok(())
        }
    }
}
