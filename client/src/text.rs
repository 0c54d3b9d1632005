//! Plain-text rendering shared by the `passerelle` CLI and `passerelled demo`: aligned columns,
//! and statistics tables whose suppressed values are empty, never 0, and say why.

use std::io::Write;

use passerelle_proto::v1::{Cell, Measure, Table};

/// Writes CSV rows (the header first) with every cell passed through [`csv_cell`], so a file
/// opened in a spreadsheet never runs a value as a formula. The one CSV writer of the client.
pub fn write_csv<W: Write>(out: W, header: &[String], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(header.iter().map(|h| csv_cell(h).into_owned()))?;
    for row in rows {
        writer.write_record(row.iter().map(|c| csv_cell(c).into_owned()))?;
    }
    writer.flush()
}

/// A cell made safe for spreadsheets (CSV injection, OWASP): a value that a spreadsheet would
/// evaluate — it starts with `=`, `+`, `-`, `@`, a tab or a carriage return — gets a leading `'`,
/// which spreadsheets show as text. Plain numbers (`-3`, `+12.5`) are left alone: a spreadsheet
/// reads them as numbers, never as formulas, and scripts reading our CSV keep their values.
///
/// Values a peer controls reach our CSV (structure names, free text entered on another node), so
/// this applies to every cell, header included.
pub fn csv_cell(value: &str) -> std::borrow::Cow<'_, str> {
    let risky = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && !is_plain_number(value) {
        std::borrow::Cow::Owned(format!("'{value}"))
    } else {
        std::borrow::Cow::Borrowed(value)
    }
}

/// `[+-]digits[.digits]`, nothing else.
fn is_plain_number(value: &str) -> bool {
    let unsigned = value.strip_prefix(['+', '-']).unwrap_or(value);
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

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

/// Whether a table is of a period with revisions (indicators): its outputs say which.
pub fn revised(table: &Table) -> bool {
    table.table == "indicators"
}

/// Writes a statistics table as CSV: [`header`] and [`rows`], plus a last `revision` column for
/// an indicators table. The one CSV form of a table, written by `passerelle stats … --format
/// csv` and downloaded from the hub's web console alike.
pub fn write_table_csv<W: Write>(out: W, table: &Table) -> std::io::Result<()> {
    let mut header = header(table);
    let mut rows = rows(table);
    if revised(table) {
        header.push("revision".into());
        for row in &mut rows {
            row.push(table.revision.to_string());
        }
    }
    write_csv(out, &header, &rows)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_numbers_are_not() {
        for risky in ["=1+1", "+1+1", "-2+3", "@SUM(A1)", "=HYPERLINK(\"http://x\")", "\tx", "\r=1", "-", "+"]
        {
            assert_eq!(csv_cell(risky), format!("'{risky}"), "{risky:?}");
        }
        for plain in ["-3", "+12.5", "0", "12.50", "Agent d'entretien", "", "2026-01", "a=b"] {
            assert_eq!(csv_cell(plain), plain, "{plain:?}");
        }
    }

    #[test]
    fn written_csv_neutralises_every_cell() {
        let mut out = Vec::new();
        let rows = vec![vec!["=cmd|' /C calc'!A0".to_string(), "-7".to_string()]];
        write_csv(&mut out, &["name".to_string(), "@n".to_string()], &rows).expect("in memory");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(text, "name,'@n\n'=cmd|' /C calc'!A0,-7\n");
    }
}
