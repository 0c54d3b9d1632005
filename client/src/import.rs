//! Reading needs and indicator reports from a spreadsheet's CSV export, for `passerelle need
//! import` and `passerelle indicators import`.
//!
//! Files are header-driven: columns are found by name (case, spaces and accents of the header
//! ignored; the protocol's field names and the CLI's flag names are both accepted), in any order.
//! UTF-8 with or without a byte-order mark; `,` or `;` separators (the header line decides).
//! French spreadsheet habits are accepted where unambiguous: `DD/MM/YYYY` dates, decimal commas,
//! spaces as thousands separators. Every row is checked with the protocol's validation module —
//! the rules the node applies — and *every* broken rule is reported with its line and column, so
//! a file is fixed in one pass.

use std::collections::HashMap;
use std::fmt;

use passerelle_proto::codes::Code;
use passerelle_proto::v1::{ContractType, Exits, IndicatorFields, IndicatorRow, NeedFields, NeedRow};
use passerelle_proto::validate::{self, FieldError, MAX_IMPORT_ROWS};

/// One problem in a file: where (line and, when it is about one cell, column) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Line in the file (the header is line 1).
    pub line: u32,
    /// The column as the file's header names it, when the problem is about one cell.
    pub column: Option<String>,
    /// The offending value, when showing it helps.
    pub value: Option<String>,
    /// The rule broken.
    pub rule: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(column) = &self.column {
            write!(f, ", column {column}")?;
        }
        if let Some(value) = &self.value {
            write!(f, ": {value:?}")?;
        }
        write!(f, ": {}", self.rule)
    }
}

/// A column of an import: its canonical name (the protocol's field), the other names accepted,
/// and whether every row must fill it.
struct Column {
    name: &'static str,
    aliases: &'static [&'static str],
    required: bool,
}

const fn col(name: &'static str, aliases: &'static [&'static str], required: bool) -> Column {
    Column { name, aliases, required }
}

/// The columns of a needs file (the flag names of `passerelle need add` are accepted too).
const NEED_COLUMNS: &[Column] = &[
    col("rome_code", &["rome"], true),
    col("title", &["intitule"], true),
    col("contract_type", &["contract", "contrat"], true),
    col("open_positions", &["positions", "postes"], true),
    col("hours_per_week", &["hours", "heures"], true),
    col("departement", &[], true),
    col("commune", &[], true),
    col("start_date", &["start", "debut"], true),
    col("end_date", &["end", "fin"], false),
    col("client", &[], false),
    col("description", &[], false),
];

/// The columns of an indicators file (the flag names of `passerelle indicators submit` too).
const INDICATOR_COLUMNS: &[Column] = &[
    col("period", &["periode", "mois"], true),
    col("etp", &["etp_hundredths"], true),
    col("employees_in_insertion", &["employees", "salaries"], true),
    col("hours_worked", &["hours", "heures"], true),
    col("hires", &["embauches"], true),
    col("exits_total", &[], true),
    col("exits_durable", &[], true),
    col("exits_transition", &[], true),
    col("exits_positive", &[], true),
    col("exits_other", &[], true),
];

/// The documented column names, for help texts and error messages.
pub fn need_columns() -> Vec<&'static str> {
    NEED_COLUMNS.iter().map(|c| c.name).collect()
}

/// The documented column names of an indicators file.
pub fn indicator_columns() -> Vec<&'static str> {
    INDICATOR_COLUMNS.iter().map(|c| c.name).collect()
}

/// Reads a needs file. `Err` lists every problem (none of the rows is usable then).
pub fn needs(bytes: &[u8]) -> Result<Vec<NeedRow>, Vec<Problem>> {
    let table = Table::read(bytes, NEED_COLUMNS)?;
    let (rows, problems) = table.rows(
        |cells| NeedFields {
            rome_code: cells.text("rome_code"),
            title: cells.text("title"),
            contract_type: cells.code::<ContractType>("contract_type"),
            open_positions: cells.number("open_positions"),
            hours_per_week: cells.number("hours_per_week"),
            departement: cells.text("departement"),
            commune: cells.text("commune"),
            start_date: cells.date("start_date"),
            end_date: cells.optional("end_date").map(|_| cells.date("end_date")),
            client: cells.optional("client"),
            description: cells.optional("description"),
        },
        validate::need_fields,
    );
    finish(rows.into_iter().map(|(line, fields)| NeedRow { line, fields: Some(fields) }).collect(), problems)
}

/// Reads an indicators file. `Err` lists every problem.
pub fn indicators(bytes: &[u8]) -> Result<Vec<IndicatorRow>, Vec<Problem>> {
    let table = Table::read(bytes, INDICATOR_COLUMNS)?;
    let (rows, mut problems) = table.rows(
        |cells| IndicatorFields {
            period: cells.text("period"),
            etp_hundredths: cells.hundredths("etp"),
            employees_in_insertion: cells.number("employees_in_insertion"),
            hours_worked: cells.number("hours_worked"),
            hires: cells.number("hires"),
            exits: Some(Exits {
                total: cells.number("exits_total"),
                durable: cells.number("exits_durable"),
                transition: cells.number("exits_transition"),
                positive: cells.number("exits_positive"),
                other: cells.number("exits_other"),
            }),
        },
        validate::indicator_fields,
    );
    let rows: Vec<IndicatorRow> =
        rows.into_iter().map(|(line, fields)| IndicatorRow { line, fields: Some(fields) }).collect();
    for e in validate::distinct_periods(
        rows.iter().map(|r| (r.line, r.fields.as_ref().map(|f| f.period.as_str()).unwrap_or_default())),
    ) {
        problems.push(Problem {
            line: e.line,
            column: table.header_name("period"),
            value: e.error.value,
            rule: e.error.rule,
        });
    }
    finish(rows, problems)
}

fn finish<R>(rows: Vec<R>, mut problems: Vec<Problem>) -> Result<Vec<R>, Vec<Problem>> {
    if problems.is_empty() {
        Ok(rows)
    } else {
        problems.sort_by_key(|p| p.line);
        Err(problems)
    }
}

/// One data line of the file.
struct Record {
    line: u32,
    cells: Vec<String>,
}

/// The file: which canonical column sits at which position, and its data lines.
struct Table {
    /// Canonical name → (position, the header's own spelling).
    positions: HashMap<&'static str, (usize, String)>,
    width: usize,
    records: Vec<Record>,
}

impl Table {
    fn read(bytes: &[u8], columns: &[Column]) -> Result<Self, Vec<Problem>> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let line = bytes[..e.valid_up_to()].iter().filter(|b| **b == b'\n').count() + 1;
            vec![Problem {
                line: line as u32,
                column: None,
                value: None,
                rule: "the file is not UTF-8: export it as \"CSV UTF-8\" from the spreadsheet".into(),
            }]
        })?;
        // The csv crate numbers CRLF-terminated records one line short; Windows exports are CRLF.
        let text = text.replace("\r\n", "\n");
        let header_line = text.lines().next().unwrap_or_default();
        if header_line.trim().is_empty() {
            return Err(vec![problem(1, None, "the file is empty: the first line must name the columns")]);
        }
        // The header decides the separator: French spreadsheets export `;`, others `,`.
        let delimiter =
            if header_line.matches(';').count() > header_line.matches(',').count() { b';' } else { b',' };
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes());
        let mut records = reader.records();
        let header = match records.next() {
            Some(Ok(header)) => header,
            Some(Err(e)) => return Err(vec![problem(1, None, &e.to_string())]),
            None => return Err(vec![problem(1, None, "the file is empty")]),
        };
        let mut problems = Vec::new();
        let mut positions = HashMap::new();
        for (position, raw) in header.iter().enumerate() {
            let key = normalise(raw);
            if key.is_empty() {
                continue;
            }
            match columns.iter().find(|c| c.name == key || c.aliases.contains(&key.as_str())) {
                Some(column) => {
                    if positions.insert(column.name, (position, raw.trim().to_string())).is_some() {
                        problems.push(problem(1, Some(raw.trim()), "this column appears twice"));
                    }
                }
                None => problems.push(problem(
                    1,
                    Some(raw.trim()),
                    &format!(
                        "unknown column; expected {}",
                        columns.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
                    ),
                )),
            }
        }
        for column in columns.iter().filter(|c| c.required && !positions.contains_key(c.name)) {
            problems.push(problem(1, Some(column.name), "required column missing from the header"));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut data = Vec::new();
        for result in records {
            let record = result.map_err(|e| vec![problem(1, None, &e.to_string())])?;
            let line = record.position().map_or(0, |p| p.line()) as u32;
            if record.iter().all(|c| c.trim().is_empty()) {
                continue; // A blank line, common at the end of exports.
            }
            if data.len() == MAX_IMPORT_ROWS {
                return Err(vec![problem(line, None, &format!("at most {MAX_IMPORT_ROWS} rows per import"))]);
            }
            data.push(Record { line, cells: record.iter().map(|c| c.trim().to_string()).collect() });
        }
        Ok(Self { positions, width: header.len(), records: data })
    }

    /// Reads every data line with `read`, checks what could be read with `check` (the protocol's
    /// rule), and returns the good rows with their line and every problem met.
    fn rows<F>(
        &self,
        read: impl Fn(&mut Cells<'_>) -> F,
        check: impl Fn(&F) -> Result<(), FieldError>,
    ) -> (Vec<(u32, F)>, Vec<Problem>) {
        let mut rows = Vec::new();
        let mut problems = Vec::new();
        for record in &self.records {
            let mut cells = self.cells(record, &mut problems);
            let fields = read(&mut cells);
            if cells.parsed {
                cells.check(check(&fields));
            }
            if cells.parsed && cells.valid {
                rows.push((record.line, fields));
            }
        }
        (rows, problems)
    }

    fn header_name(&self, column: &str) -> Option<String> {
        self.positions.get(column).map(|(_, name)| name.clone())
    }

    fn cells<'a>(&'a self, record: &'a Record, problems: &'a mut Vec<Problem>) -> Cells<'a> {
        let mut parsed = true;
        if record.cells.len() != self.width {
            problems.push(problem(
                record.line,
                None,
                &format!(
                    "{} cells, the header has {} (a separator inside an unquoted cell?)",
                    record.cells.len(),
                    self.width
                ),
            ));
            parsed = false;
        }
        Cells { table: self, record, problems, parsed, valid: true }
    }
}

/// The cells of one row, read by canonical column name; parse failures are recorded.
struct Cells<'a> {
    table: &'a Table,
    record: &'a Record,
    problems: &'a mut Vec<Problem>,
    /// Every cell could be read as its type.
    parsed: bool,
    /// The row passed the protocol's rules.
    valid: bool,
}

impl Cells<'_> {
    fn raw(&self, column: &str) -> &str {
        self.table
            .positions
            .get(column)
            .and_then(|(i, _)| self.record.cells.get(*i))
            .map_or("", String::as_str)
    }

    fn fail(&mut self, column: &str, value: &str, rule: &str) {
        self.problems.push(Problem {
            line: self.record.line,
            column: self.table.header_name(column).or_else(|| Some(column.to_string())),
            value: (!value.is_empty()).then(|| value.to_string()),
            rule: rule.to_string(),
        });
        self.parsed = false;
    }

    fn text(&mut self, column: &str) -> String {
        self.raw(column).to_string()
    }

    fn optional(&mut self, column: &str) -> Option<String> {
        Some(self.raw(column).to_string()).filter(|v| !v.is_empty())
    }

    /// A whole number; spaces (also non-breaking ones) as thousands separators are fine.
    fn number<T: TryFrom<u64> + Default>(&mut self, column: &str) -> T {
        let raw = self.raw(column).to_string();
        let digits: String = raw.chars().filter(|c| !matches!(c, ' ' | '\u{a0}' | '\u{202f}')).collect();
        let parsed = digits.parse::<u64>().ok().and_then(|n| T::try_from(n).ok());
        match parsed {
            Some(n) => n,
            None => {
                let rule = if raw.is_empty() { "required" } else { "expected a whole number" };
                self.fail(column, &raw, rule);
                T::default()
            }
        }
    }

    /// A decimal with at most two decimals (`.` or `,`), in hundredths.
    fn hundredths(&mut self, column: &str) -> u64 {
        let raw = self.raw(column).to_string();
        let digits: String = raw.chars().filter(|c| !matches!(c, ' ' | '\u{a0}' | '\u{202f}')).collect();
        let (whole, frac) = digits.split_once(['.', ',']).unwrap_or((&digits, ""));
        let ok = !whole.is_empty()
            && frac.len() <= 2
            && whole.bytes().all(|b| b.is_ascii_digit())
            && frac.bytes().all(|b| b.is_ascii_digit());
        let value = ok
            .then(|| {
                Some(
                    whole.parse::<u64>().ok()?.checked_mul(100)?
                        + format!("{frac:0<2}").parse::<u64>().ok()?,
                )
            })
            .flatten();
        value.unwrap_or_else(|| {
            self.fail(column, &raw, "expected a number with at most 2 decimals, e.g. 12.5 or 12,5");
            0
        })
    }

    /// A date as `YYYY-MM-DD`, or `DD/MM/YYYY` as French spreadsheets write it.
    fn date(&mut self, column: &str) -> String {
        let raw = self.raw(column).to_string();
        let parts: Vec<&str> = raw.split('/').collect();
        match parts.as_slice() {
            [d, m, y] if d.len() <= 2 && m.len() <= 2 && y.len() == 4 => format!("{y}-{m:0>2}-{d:0>2}"),
            _ => raw,
        }
    }

    /// One of a protocol enum's slugs (`cddi`, `mise-a-disposition`…).
    fn code<T: Code + Into<i32> + Copy>(&mut self, column: &str) -> i32 {
        let raw = self.raw(column).to_string();
        match T::from_slug(&raw.to_lowercase()) {
            Some(code) => code.into(),
            None => {
                let choices: Vec<&str> = T::ALL.iter().map(|(_, slug)| *slug).collect();
                self.fail(column, &raw, &format!("expected one of {}", choices.join(", ")));
                0
            }
        }
    }

    /// Records the protocol's verdict on the row, naming the file's column.
    fn check(&mut self, verdict: Result<(), FieldError>) {
        if let Err(e) = verdict {
            // `exits` is checked as a whole; other fields are named as the protocol names them.
            let column = e.field.split(['[', '.']).next().unwrap_or_default().to_string();
            let column = match column.as_str() {
                "etp_hundredths" => "etp".to_string(),
                other => other.to_string(),
            };
            self.problems.push(Problem {
                line: self.record.line,
                column: self.table.header_name(&column).or(Some(column)),
                value: e.value,
                rule: e.rule,
            });
            self.valid = false;
        }
    }
}

fn problem(line: u32, column: Option<&str>, rule: &str) -> Problem {
    Problem { line, column: column.map(str::to_string), value: None, rule: rule.to_string() }
}

/// A header cell as a column key: lowercase, accents folded, spaces and dashes as `_`.
fn normalise(raw: &str) -> String {
    raw.trim()
        .to_lowercase()
        .chars()
        .map(|c| match c {
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'à' | 'â' => 'a',
            'î' | 'ï' => 'i',
            'ô' => 'o',
            'ù' | 'û' | 'ü' => 'u',
            'ç' => 'c',
            ' ' | '-' => '_',
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEEDS_HEADER: &str =
        "rome_code,title,contract_type,open_positions,hours_per_week,departement,commune,start_date,end_date";

    fn lines(problems: &[Problem]) -> Vec<String> {
        problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn french_exports_are_read_as_written() {
        let file = "\u{feff}ROME;Intitulé;Contrat;Postes;Heures;Département;Commune;Début;Fin;Client\r\n\
                    K2204;Agent d'entretien;mise-a-disposition;2;24;49;49007;04/01/2027;30/06/2027;\r\n\
                    K1304;Aide ménagère;mise-a-disposition;1;12;49;49099;04/01/2027;;\r\n\
                    \r\n";
        let rows = needs(file.as_bytes()).expect("valid");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].line, 3, "CRLF lines are numbered like the spreadsheet shows them");
        let need = rows[0].fields.clone().unwrap_or_default();
        assert_eq!(rows[0].line, 2);
        assert_eq!(need.start_date, "2027-01-04");
        assert_eq!(need.end_date.as_deref(), Some("2027-06-30"));
        assert_eq!(need.contract_type, ContractType::MiseADisposition as i32);
        assert_eq!(need.client, None, "an empty optional cell is absent, not empty");
    }

    #[test]
    fn every_bad_row_is_reported_with_line_column_and_rule() {
        let file = format!(
            "{NEEDS_HEADER}\n\
             K2204,Agent,cddi,2,24,49,49007,2027-01-04,\n\
             K22A4,Agent,cddi,2,24,49,49007,2027-01-04,\n\
             K2204,Agent,cdi,deux,24,49,49007,2027-01-04,\n\
             K2204,Agent,cddi,2,24,49,49007\n\
             K2204,Agent,cddi,2,24,49,49007,2027-01-04,2026-12-01\n"
        );
        let problems = needs(file.as_bytes()).expect_err("invalid rows");
        assert_eq!(
            lines(&problems),
            [
                "line 3, column rome_code: \"K22A4\": expected a letter A-N followed by 4 digits",
                "line 4, column contract_type: \"cdi\": expected one of cddi, cdd-usage, interim, contrat-pro, creation-entreprise, mise-a-disposition, autre",
                "line 4, column open_positions: \"deux\": expected a whole number",
                "line 5: 7 cells, the header has 9 (a separator inside an unquoted cell?)",
                "line 6, column end_date: \"2026-12-01\": must not be before start_date 2027-01-04",
            ]
        );
    }

    #[test]
    fn a_file_over_the_row_limit_is_refused_whole() {
        let row = "K2204,Agent,cddi,2,24,49,49007,2027-01-04,\n";
        let file = format!("{NEEDS_HEADER}\n{}", row.repeat(MAX_IMPORT_ROWS + 1));
        let problems = needs(file.as_bytes()).expect_err("too many rows");
        assert_eq!(
            lines(&problems),
            [format!("line {}: at most {MAX_IMPORT_ROWS} rows per import", MAX_IMPORT_ROWS + 2)]
        );
        let file = format!("{NEEDS_HEADER}\n{}", row.repeat(MAX_IMPORT_ROWS));
        assert_eq!(needs(file.as_bytes()).map(|r| r.len()), Ok(MAX_IMPORT_ROWS));
    }

    #[test]
    fn the_header_is_checked_first() {
        let problems = needs(b"rome;titre;contract\nK2204;x;cddi\n").expect_err("bad header");
        let text = lines(&problems).join("\n");
        assert!(text.contains("line 1, column titre: unknown column; expected rome_code, title"), "{text}");
        assert!(
            text.contains("line 1, column open_positions: required column missing from the header"),
            "{text}"
        );
        assert!(needs(b"").is_err());
        let latin1 = b"rome_code,title\nK2204,Agent d'\xe9tage\n";
        let problems = needs(latin1).expect_err("not utf-8");
        assert_eq!(problems[0].line, 2);
        assert!(problems[0].rule.contains("not UTF-8"), "{:?}", problems[0]);
    }

    #[test]
    fn indicators_accept_decimal_commas_and_refuse_a_month_twice() {
        let header = "period,etp,employees,hours,hires,exits_total,exits_durable,exits_transition,exits_positive,exits_other";
        let ok = format!("{header}\n2026-09,\"12,5\",20,1 700,3,4,1,1,1,1\n");
        let rows = indicators(ok.as_bytes()).expect("valid");
        let fields = rows[0].fields.clone().unwrap_or_default();
        assert_eq!((fields.etp_hundredths, fields.hours_worked), (1250, 1700));
        let twice = format!(
            "{header}\n2026-09,12.5,20,1700,3,4,1,1,1,1\n2026-10,12,20,1700,3,4,1,1,1,1\n2026-09,13,20,1700,3,4,1,1,1,1\n"
        );
        assert_eq!(
            lines(&indicators(twice.as_bytes()).expect_err("month twice")),
            ["line 4, column period: \"2026-09\": already on line 2: one row per month"]
        );
        let sum = format!("{header}\n2026-09,12.5,20,1700,3,4,1,1,1,2\n");
        let text = lines(&indicators(sum.as_bytes()).expect_err("exits")).join("");
        assert!(
            text.starts_with(
                "line 2, column exits: durable + transition + positive + other must equal total"
            ),
            "{text}"
        );
    }
}
