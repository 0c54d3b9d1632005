//! Printing views as a table, one JSON document, or CSV.

use std::io::Write;

use serde_json::Value;

use super::args::Format;
use super::views::Record;
use passerelle_client::text::aligned;

/// Prints one record: a JSON object, a CSV header and row, or `field  value` lines.
pub(crate) fn one<R: Record>(format: Format, record: &R) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let fields = fields(record);
    match format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(record)?),
        Format::Csv => write_csv(
            &mut out,
            &fields.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            &[cells(&fields)],
        ),
        Format::Table => {
            let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            for (key, value) in &fields {
                writeln!(out, "{key:<width$}  {}", text(value))?;
            }
            Ok(())
        }
    }
}

/// Prints a list: a JSON array, CSV with a header row, or an aligned table of `R::TABLE` columns.
pub(crate) fn list<R: Record>(format: Format, records: &[R]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(records)?),
        Format::Csv => {
            // The header comes from the view's shape, so an empty list is still a valid CSV file.
            let header: Vec<String> = fields(&R::default()).into_iter().map(|(k, _)| k).collect();
            let rows: Vec<Vec<String>> = records.iter().map(|r| cells(&fields(r))).collect();
            write_csv(&mut out, &header.iter().map(String::as_str).collect::<Vec<_>>(), &rows)
        }
        Format::Table => {
            if records.is_empty() {
                return writeln!(out, "no {}", R::PLURAL);
            }
            let rows: Vec<Vec<String>> = records
                .iter()
                .map(|r| {
                    let all = fields(r);
                    R::TABLE
                        .iter()
                        .map(|col| {
                            all.iter().find(|(k, _)| k == col).map(|(_, v)| text(v)).unwrap_or_default()
                        })
                        .collect()
                })
                .collect();
            let header: Vec<String> = R::TABLE.iter().map(|c| c.to_uppercase()).collect();
            aligned(&mut out, &header, &rows)
        }
    }
}

/// Prints a list of protocol messages through their view.
pub(crate) fn list_of<T, R: Record + From<T>>(format: Format, items: Vec<T>) -> std::io::Result<()> {
    list(format, &items.into_iter().map(R::from).collect::<Vec<R>>())
}

/// The record's fields in declaration order, as JSON values.
fn fields<R: Record>(record: &R) -> Vec<(String, Value)> {
    match serde_json::to_value(record) {
        Ok(Value::Object(map)) => map.into_iter().collect(),
        _ => Vec::new(),
    }
}

fn cells(fields: &[(String, Value)]) -> Vec<String> {
    fields.iter().map(|(_, v)| text(v)).collect()
}

/// A JSON value as a cell: nothing for null, lists joined with commas, maps as `key:value` pairs
/// joined with commas.
fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        Value::Object(map) => {
            map.iter().map(|(k, v)| format!("{k}:{}", text(v))).collect::<Vec<_>>().join(",")
        }
        other => other.to_string(),
    }
}

fn write_csv(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    passerelle_client::text::write_csv(out, &header, rows)
}
