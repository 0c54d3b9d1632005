//! Plain-text rendering shared by the `passerelle` CLI and `passerelled demo`: aligned columns,
//! and statistics tables whose suppressed values are empty, never 0, and say why.

use std::io::Write;

use passerelle_proto::v1::{Cell, Measure, Table};

/// A measure as printed: empty when suppressed, hundredths with two decimals.
pub fn shown(m: &Measure) -> String {
    match (m.value, m.unit.as_str()) {
        (None, _) => String::new(),
        (Some(v), "hundredths") => format!("{}.{:02}", v / 100, v % 100),
        (Some(v), "percent-hundredths") => format!("{}.{:02}", v / 100, v % 100),
        (Some(v), _) => v.to_string(),
    }
}

/// Why a cell (or some of its measures) is not published, in one string.
pub fn reason(cell: &Cell) -> String {
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

/// Writes a header and rows as columns aligned on the widest cell.
pub fn aligned(out: &mut impl Write, header: &[String], rows: &[Vec<String>]) -> std::io::Result<()> {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter().map(|r| r[i].chars().count()).chain([header[i].chars().count()]).max().unwrap_or(0)
        })
        .collect();
    for row in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    Ok(())
}

/// Writes a statistics table as aligned columns (the key, structures, each measure and
/// the suppression reason), then the rules applied and the freshness of its data.
pub fn write_table(out: &mut impl Write, table: &Table) -> std::io::Result<()> {
    // For people, margins say "all" in their key instead of a `total` column of booleans.
    let margin = table.by.len();
    let mut header = header(table);
    header.remove(margin);
    let rows: Vec<Vec<String>> = rows(table)
        .into_iter()
        .map(|mut row| {
            row.remove(margin);
            for key in &mut row[..margin] {
                if key == "*" {
                    *key = "all".into();
                }
            }
            row
        })
        .collect();
    if table.cells.is_empty() {
        writeln!(out, "no data for this table and period")?;
    } else {
        aligned(out, &header, &rows)?;
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

/// The column names of [`rows`].
pub fn header(table: &Table) -> Vec<String> {
    let names: Vec<String> =
        table.cells.first().map(|c| c.measures.iter().map(|m| m.name.clone()).collect()).unwrap_or_default();
    table
        .by
        .iter()
        .cloned()
        .chain(["total".into(), "structures".into()])
        .chain(names.iter().cloned())
        .chain(["suppressed".into()])
        .collect()
}

/// The table's cells as text rows, in the column order of [`write_table`].
pub fn rows(table: &Table) -> Vec<Vec<String>> {
    table
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
        .collect()
}
