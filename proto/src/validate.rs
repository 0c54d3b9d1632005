//! Domain validation of wire values: the one place where Passerelle's rules live.
//!
//! The daemon calls these functions on every request before touching its store, and maps a
//! [`FieldError`] to `INVALID_ARGUMENT`; the client calls the same functions to fail fast with the
//! same message. A message always names the field, the offending value when there is one, and the
//! rule, e.g. `rome_code "K22A4": expected a letter A-N followed by 4 digits`.

use std::fmt;

use crate::codes::Code;
use crate::date::{Date, Month};
use crate::v1::{
    Barrier, ConsentPurpose, ContractType, Exits, GrantConsentRequest, IndicatorFields, NeedFields,
    NeedStatus, PersonFields, Structure, StructureKind,
};

/// A rule that a field's value breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field, as named in the protocol (`rome_code`, `rome_codes[1]`, `exits`).
    pub field: String,
    /// The offending value, when showing it helps.
    pub value: Option<String>,
    /// The rule, lowercase, without a trailing period.
    pub rule: String,
}

impl FieldError {
    /// A rule broken by a value.
    pub fn new(field: impl Into<String>, value: impl Into<String>, rule: impl Into<String>) -> Self {
        Self { field: field.into(), value: Some(value.into()), rule: rule.into() }
    }

    /// A rule broken by a field as a whole (a missing value, an invariant between sub-fields).
    pub fn rule(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self { field: field.into(), value: None, rule: rule.into() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{} {:?}: {}", self.field, value, self.rule),
            None => write!(f, "{}: {}", self.field, self.rule),
        }
    }
}

impl std::error::Error for FieldError {}

/// The outcome of a validation.
pub type Result<T = ()> = std::result::Result<T, FieldError>;

/// Longest need title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest need description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
/// Longest client name, in characters.
pub const MAX_CLIENT_CHARS: usize = 200;
/// Longest first or last name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Most positions in one need.
pub const MAX_POSITIONS: u32 = 1000;
/// Most hours per week (the legal maximum).
pub const MAX_HOURS_PER_WEEK: u32 = 48;
/// Longest mobility radius, in km.
pub const MAX_MOBILITY_KM: u32 = 500;
/// Most ROME codes a person may seek.
pub const MAX_SOUGHT_ROME_CODES: usize = 5;

// ---------------------------------------------------------------------------------------------
// Identifiers and codes.
// ---------------------------------------------------------------------------------------------

/// La Poste's SIREN: its establishments' SIRETs use a digit sum divisible by 5 instead of Luhn.
const LA_POSTE_SIREN: &str = "356000000";

/// Checks a SIRET: 14 digits with a valid Luhn checksum (La Poste's exception accepted).
pub fn siret(field: &str, value: &str) -> Result {
    if value.len() != 14 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FieldError::new(field, value, "expected 14 digits"));
    }
    let digits: Vec<u32> = value.bytes().map(|b| u32::from(b - b'0')).collect();
    let luhn: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| if i % 2 == 1 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d })
        .sum();
    let la_poste = value.starts_with(LA_POSTE_SIREN) && digits.iter().sum::<u32>() % 5 == 0;
    if !luhn.is_multiple_of(10) && !la_poste {
        return Err(FieldError::new(field, value, "Luhn checksum fails (check for a typing error)"));
    }
    Ok(())
}

/// Checks a ROME fiche code: a letter A-N followed by 4 digits.
pub fn rome_code(field: &str, value: &str) -> Result {
    let b = value.as_bytes();
    let ok = b.len() == 5 && (b'A'..=b'N').contains(&b[0]) && b[1..].iter().all(u8::is_ascii_digit);
    if ok { Ok(()) } else { Err(FieldError::new(field, value, "expected a letter A-N followed by 4 digits")) }
}

/// Checks a ROME domaine professionnel: a letter A-N followed by 2 digits (`K22`).
pub fn rome_domaine(field: &str, value: &str) -> Result {
    let b = value.as_bytes();
    let ok = b.len() == 3 && (b'A'..=b'N').contains(&b[0]) && b[1..].iter().all(u8::is_ascii_digit);
    if ok { Ok(()) } else { Err(FieldError::new(field, value, "expected a letter A-N followed by 2 digits")) }
}

/// Whether a code names a French département: 01-19, 2A, 2B, 21-95, 971-976.
pub fn is_departement(value: &str) -> bool {
    match value {
        "2A" | "2B" => true,
        _ if value.len() == 2 && value.bytes().all(|b| b.is_ascii_digit()) => {
            matches!(value.parse::<u8>(), Ok(1..=19 | 21..=95))
        }
        _ if value.len() == 3 && value.bytes().all(|b| b.is_ascii_digit()) => {
            matches!(value.parse::<u16>(), Ok(971..=976))
        }
        _ => false,
    }
}

/// Checks a département code.
pub fn departement(field: &str, value: &str) -> Result {
    if is_departement(value) {
        Ok(())
    } else {
        Err(FieldError::new(field, value, "expected a département: 01-19, 2A, 2B, 21-95 or 971-976"))
    }
}

/// The département an INSEE commune code belongs to, if the code is well formed.
pub fn departement_of_commune(commune: &str) -> Option<&str> {
    if commune.len() != 5 || !commune.is_ascii() {
        return None;
    }
    let dep_len = if commune.starts_with("97") { 3 } else { 2 };
    let (dep, rest) = commune.split_at(dep_len);
    (is_departement(dep) && rest.bytes().all(|b| b.is_ascii_digit())).then_some(dep)
}

/// Checks an INSEE commune code and, if given, that it lies in `in_departement`.
pub fn commune(field: &str, value: &str, in_departement: Option<&str>) -> Result {
    let dep = departement_of_commune(value).ok_or_else(|| {
        FieldError::new(
            field,
            value,
            "expected an INSEE commune code: 5 characters starting with a département, e.g. 49007",
        )
    })?;
    match in_departement {
        Some(expected) if expected != dep => {
            Err(FieldError::new(field, value, format!("commune is in département {dep}, not in {expected}")))
        }
        _ => Ok(()),
    }
}

/// Checks a hub id: lowercase ASCII letters, digits and `-`, 2 to 63 characters, starting with a
/// letter and not ending with `-` (so it is safe in URLs, file names and certificate SANs).
pub fn hub_id(field: &str, value: &str) -> Result {
    let b = value.as_bytes();
    let ok = (2..=63).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.last() != Some(&b'-');
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            value,
            "expected 2-63 lowercase letters, digits or '-', starting with a letter",
        ))
    }
}

/// Checks a record id as the node assigns them: a UUID in its canonical hyphenated form.
pub fn record_id(field: &str, value: &str) -> Result {
    let b = value.as_bytes();
    let ok = b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        });
    if ok { Ok(()) } else { Err(FieldError::new(field, value, "expected a record id (a UUID)")) }
}

// ---------------------------------------------------------------------------------------------
// Scalars.
// ---------------------------------------------------------------------------------------------

/// Checks a date `YYYY-MM-DD`.
pub fn date(field: &str, value: &str) -> Result<Date> {
    Date::parse(value).map_err(|e| FieldError::new(field, value, e.0))
}

/// Checks a month `YYYY-MM`.
pub fn month(field: &str, value: &str) -> Result<Month> {
    Month::parse(value).map_err(|e| FieldError::new(field, value, e.0))
}

/// Checks a one-line text: trimmed length between `min` and `max` characters, no control
/// characters.
pub fn line(field: &str, value: &str, min: usize, max: usize) -> Result {
    text(field, value, min, max, false)
}

/// Checks a multi-line text: at most `max` characters; tabs and newlines allowed, other control
/// characters refused.
pub fn paragraph(field: &str, value: &str, max: usize) -> Result {
    text(field, value, 0, max, true)
}

fn text(field: &str, value: &str, min: usize, max: usize, multiline: bool) -> Result {
    let chars = value.chars().count();
    if chars > max {
        return Err(FieldError::rule(field, format!("at most {max} characters, got {chars}")));
    }
    if value.trim().chars().count() < min {
        return Err(FieldError::rule(
            field,
            if min == 1 { "must not be empty".to_string() } else { format!("at least {min} characters") },
        ));
    }
    let bad = value.chars().any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')));
    if bad {
        return Err(FieldError::rule(field, "must not contain control characters"));
    }
    Ok(())
}

/// Checks that an integer lies in `min..=max`.
pub fn in_range<T: PartialOrd + fmt::Display + Copy>(field: &str, value: T, min: T, max: T) -> Result {
    if value < min || value > max {
        return Err(FieldError::new(field, value.to_string(), format!("must be between {min} and {max}")));
    }
    Ok(())
}

/// Checks that a raw enum number names a meaningful value of `T` and returns it.
pub fn code<T: Code + TryFrom<i32> + PartialEq>(field: &str, raw: i32) -> Result<T> {
    match T::try_from(raw) {
        Ok(v) if v.slug() != "unspecified" => Ok(v),
        Ok(_) => Err(FieldError::rule(field, format!("a {} is required ({})", T::WHAT, T::choices()))),
        Err(_) => {
            Err(FieldError::new(field, raw.to_string(), format!("unknown {} ({})", T::WHAT, T::choices())))
        }
    }
}

/// Checks a phone number: digits, spaces and `+ . - ( )`, with 6 to 15 digits.
pub fn phone(field: &str, value: &str) -> Result {
    let allowed = value.chars().all(|c| c.is_ascii_digit() || " +.-()".contains(c));
    let digits = value.chars().filter(char::is_ascii_digit).count();
    if !allowed || !(6..=15).contains(&digits) {
        return Err(FieldError::new(
            field,
            value,
            "expected a phone number: 6 to 15 digits, spaces and + . - ( )",
        ));
    }
    Ok(())
}

/// Checks an e-mail address (one `@`, a non-empty local part, a dotted domain, no spaces).
pub fn email(field: &str, value: &str) -> Result {
    let ok = value.len() <= 254
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        && match value.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }
            None => false,
        };
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(field, value, "expected an e-mail address like name@example.fr"))
    }
}

// ---------------------------------------------------------------------------------------------
// Messages.
// ---------------------------------------------------------------------------------------------

/// Checks a structure identity.
pub fn structure(s: &Structure) -> Result {
    siret("siret", &s.siret)?;
    code::<StructureKind>("kind", s.kind)?;
    line("name", &s.name, 1, 200)?;
    departement("departement", &s.departement)
}

/// Checks the user-written fields of a recruitment need.
pub fn need_fields(n: &NeedFields) -> Result {
    rome_code("rome_code", &n.rome_code)?;
    line("title", &n.title, 1, MAX_TITLE_CHARS)?;
    code::<ContractType>("contract_type", n.contract_type)?;
    in_range("open_positions", n.open_positions, 1, MAX_POSITIONS)?;
    in_range("hours_per_week", n.hours_per_week, 1, MAX_HOURS_PER_WEEK)?;
    departement("departement", &n.departement)?;
    commune("commune", &n.commune, Some(&n.departement))?;
    let start = date("start_date", &n.start_date)?;
    if let Some(end) = &n.end_date {
        let end_date = date("end_date", end)?;
        if end_date < start {
            return Err(FieldError::new("end_date", end, format!("must not be before start_date {start}")));
        }
    }
    if let Some(client) = &n.client {
        line("client", client, 0, MAX_CLIENT_CHARS)?;
    }
    if let Some(description) = &n.description {
        paragraph("description", description, MAX_DESCRIPTION_CHARS)?;
    }
    Ok(())
}

/// Checks a need as a hub receives it: every field with the same rule the node applied to the
/// need it was projected from, so a modified node (or a relay) cannot plant free text in a date,
/// an unknown contract or zero positions. The origin and key are the caller's to check against
/// the session.
pub fn shared_need(n: &crate::v1::SharedNeed) -> Result {
    siret("origin_siret", &n.origin_siret)?;
    record_id("need_id", &n.need_id)?;
    if n.origin_version == 0 {
        return Err(FieldError::new("origin_version", "0", "versions start at 1"));
    }
    rome_code("rome_code", &n.rome_code)?;
    code::<ContractType>("contract_type", n.contract_type)?;
    in_range("open_positions", n.open_positions, 1, MAX_POSITIONS)?;
    in_range("hours_per_week", n.hours_per_week, 1, MAX_HOURS_PER_WEEK)?;
    departement("departement", &n.departement)?;
    let start = date("start_date", &n.start_date)?;
    if let Some(end) = &n.end_date {
        let end_date = date("end_date", end)?;
        if end_date < start {
            return Err(FieldError::new("end_date", end, format!("must not be before start_date {start}")));
        }
    }
    code::<NeedStatus>("status", n.status)?;
    Ok(())
}

/// Checks the status a need is closed with: filled or cancelled.
pub fn closing_status(raw: i32) -> Result<NeedStatus> {
    match code::<NeedStatus>("status", raw)? {
        NeedStatus::Open => Err(FieldError::new("status", "open", "a need is closed as filled or cancelled")),
        status => Ok(status),
    }
}

/// Checks the user-written fields of a person, `today` bounding the birth date.
pub fn person_fields(p: &PersonFields, today: Date) -> Result {
    line("first_name", &p.first_name, 1, MAX_NAME_CHARS)?;
    line("last_name", &p.last_name, 1, MAX_NAME_CHARS)?;
    let birth = date("birth_date", &p.birth_date)?;
    if birth >= today {
        return Err(FieldError::new("birth_date", &p.birth_date, "must be in the past"));
    }
    commune("commune", &p.commune, None)?;
    if let Some(phone_number) = &p.phone {
        phone("phone", phone_number)?;
    }
    if let Some(address) = &p.email {
        email("email", address)?;
    }
    if p.rome_codes.is_empty() || p.rome_codes.len() > MAX_SOUGHT_ROME_CODES {
        return Err(FieldError::rule(
            "rome_codes",
            format!("expected 1 to {MAX_SOUGHT_ROME_CODES} ROME codes, got {}", p.rome_codes.len()),
        ));
    }
    for (i, code) in p.rome_codes.iter().enumerate() {
        let field = format!("rome_codes[{i}]");
        rome_code(&field, code)?;
        if p.rome_codes[..i].contains(code) {
            return Err(FieldError::new(field, code, "listed twice"));
        }
    }
    date("available_from", &p.available_from)?;
    if let Some(hours) = p.hours_per_week {
        in_range("hours_per_week", hours, 1, MAX_HOURS_PER_WEEK)?;
    }
    if let Some(km) = p.mobility_km {
        in_range("mobility_km", km, 0, MAX_MOBILITY_KM)?;
    }
    for (i, &raw) in p.barriers.iter().enumerate() {
        let field = format!("barriers[{i}]");
        let barrier = code::<Barrier>(&field, raw)?;
        if p.barriers[..i].contains(&raw) {
            return Err(FieldError::new(field, barrier.slug(), "listed twice"));
        }
    }
    if let Some(end) = &p.pass_iae_end {
        date("pass_iae_end", end)?;
    }
    Ok(())
}

/// Checks a consent grant request's own fields (whether the person exists is the store's job).
pub fn grant_consent(r: &GrantConsentRequest) -> Result {
    record_id("person_id", &r.person_id)?;
    code::<ConsentPurpose>("purpose", r.purpose)?;
    hub_id("hub_id", &r.hub_id)?;
    line("text_version", &r.text_version, 1, 64)?;
    line("collected_by", &r.collected_by, 0, 100)
}

/// Shortest web console password, in characters.
pub const MIN_GUI_PASSWORD_CHARS: usize = 12;
/// Longest web console password, in characters (hashing cost is bounded by it too).
pub const MAX_GUI_PASSWORD_CHARS: usize = 1024;

/// Checks a web console login name: 1 to 64 of lowercase letters, digits, `.`, `_`, `-`, so it
/// reads the same in the audit of consents (`collected_by`) as it was typed.
pub fn gui_user_name(field: &str, value: &str) -> Result {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !ok {
        return Err(FieldError::new(
            field,
            value,
            "expected 1 to 64 lowercase letters, digits, '.', '_' or '-'",
        ));
    }
    Ok(())
}

/// Checks a web console password's length (never echoes the value).
pub fn gui_password(field: &str, value: &str) -> Result {
    let n = value.chars().count();
    if !(MIN_GUI_PASSWORD_CHARS..=MAX_GUI_PASSWORD_CHARS).contains(&n) {
        return Err(FieldError::rule(
            field,
            format!("must have {MIN_GUI_PASSWORD_CHARS} to {MAX_GUI_PASSWORD_CHARS} characters, got {n}"),
        ));
    }
    Ok(())
}

/// Checks a profile pseudonym: 32 lowercase hex characters (a truncated HMAC).
pub fn pseudonym(field: &str, value: &str) -> Result {
    let hex = value.len() == 32 && value.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex {
        return Err(FieldError::new(field, value, "expected 32 lowercase hex characters"));
    }
    Ok(())
}

/// Checks the key of one record of `dataset` (a tombstone carries nothing else): a need id, a
/// month, or a pseudonym.
pub fn record_key(dataset: crate::datasets::Dataset, field: &str, key: &str) -> Result {
    use crate::datasets::Dataset;
    match dataset {
        Dataset::Needs => record_id(field, key),
        Dataset::Indicators => month(field, key).map(|_| ()),
        Dataset::Profiles => pseudonym(field, key),
    }
}

/// Checks an anonymised profile as a hub receives it: only codes and bands, each valid.
pub fn anonymized_profile(p: &crate::v1::AnonymizedProfile) -> Result {
    use crate::v1::{AgeBand, HoursBand, MobilityBand};
    pseudonym("pseudonym", &p.pseudonym)?;
    siret("holding_siret", &p.holding_siret)?;
    code::<AgeBand>("age_band", p.age_band)?;
    departement("departement", &p.departement)?;
    if p.rome_codes.is_empty() || p.rome_codes.len() > MAX_SOUGHT_ROME_CODES {
        return Err(FieldError::rule(
            "rome_codes",
            format!("expected 1 to {MAX_SOUGHT_ROME_CODES} ROME codes"),
        ));
    }
    for (i, c) in p.rome_codes.iter().enumerate() {
        rome_code(&format!("rome_codes[{i}]"), c)?;
    }
    month("available_from", &p.available_from)?;
    if p.hours_band != 0 {
        code::<HoursBand>("hours_band", p.hours_band)?;
    }
    if p.mobility_band != 0 {
        code::<MobilityBand>("mobility_band", p.mobility_band)?;
    }
    for (i, &b) in p.barriers.iter().enumerate() {
        code::<Barrier>(&format!("barriers[{i}]"), b)?;
    }
    profile_purposes(&p.purposes)
}

/// The purposes a profile is sent under: `placement` and/or `statistics`, each at most once
/// (empty: a node older than the field, placement only). `placement-sensitive` is carried by the
/// barriers themselves, not here.
fn profile_purposes(purposes: &[i32]) -> Result {
    use crate::v1::ConsentPurpose;
    for (i, &p) in purposes.iter().enumerate() {
        let field = format!("purposes[{i}]");
        code::<ConsentPurpose>(&field, p)?;
        if p != ConsentPurpose::Placement as i32 && p != ConsentPurpose::Statistics as i32 {
            return Err(FieldError::new(
                field,
                crate::codes::slug_of::<ConsentPurpose>(p),
                "expected placement or statistics",
            ));
        }
        if purposes[..i].contains(&p) {
            return Err(FieldError::new(
                field,
                crate::codes::slug_of::<ConsentPurpose>(p),
                "a purpose may be named once",
            ));
        }
    }
    Ok(())
}

/// Most employees in insertion one structure may report for a month. The largest SIAE (big
/// ETTI and ACI groups) employ a few thousand people over a month; 10,000 leaves headroom while
/// keeping every sum a hub computes far from overflow (see [`MAX_HOURS_WORKED`]).
pub const MAX_EMPLOYEES: u32 = 10_000;
/// Most hours one employee can work in a month: 48 h a week (the legal maximum) over the 4.6
/// weeks of the longest month, rounded up.
pub const MAX_HOURS_PER_EMPLOYEE_MONTH: u64 = 221;
/// Most hours worked one structure may report for a month: [`MAX_EMPLOYEES`] working
/// [`MAX_HOURS_PER_EMPLOYEE_MONTH`] each. With 4,000 structures × 12 months a year's total stays
/// under 2^37, so aggregates cannot wrap whatever a peer sends.
pub const MAX_HOURS_WORKED: u64 = MAX_EMPLOYEES as u64 * MAX_HOURS_PER_EMPLOYEE_MONTH;
/// Largest ETP a single structure may report, in hundredths: every employee full time.
pub const MAX_ETP_HUNDREDTHS: u64 = MAX_EMPLOYEES as u64 * 100;
/// Most hires, and most exits, one structure may report for a month.
pub const MAX_MOVES: u32 = MAX_EMPLOYEES;

/// Checks an indicator report: a real month, bounded figures, and the exits invariant
/// durable + transition + positive + other = total.
///
/// The bounds are absolute, not cross-field (hours ≤ employees × 221 would be true of a correct
/// report, but a structure correcting one figure at a time must not be blocked by another).
pub fn indicator_fields(r: &IndicatorFields) -> Result {
    month("period", &r.period)?;
    in_range("etp_hundredths", r.etp_hundredths, 0, MAX_ETP_HUNDREDTHS)?;
    in_range("employees_in_insertion", r.employees_in_insertion, 0, MAX_EMPLOYEES)?;
    in_range("hours_worked", r.hours_worked, 0, MAX_HOURS_WORKED)?;
    in_range("hires", r.hires, 0, MAX_MOVES)?;
    let Some(exits) = &r.exits else {
        return Err(FieldError::rule("exits", "exit figures are required"));
    };
    exits_sum(exits)?;
    in_range("exits.total", exits.total, 0, MAX_MOVES)
}

/// The dynamic-exit rate (ASP's "taux de sorties dynamiques"), in hundredths of a percent,
/// rounded half up: (durable + transition + positive) / total. `None` without exits. The one
/// definition: the hub's statistics and the node's console both call it.
pub fn dynamic_exit_rate(durable: i64, transition: i64, positive: i64, total: i64) -> Option<i64> {
    (total > 0).then(|| ((durable + transition + positive) * 20_000 / total + 1) / 2)
}

fn exits_sum(e: &Exits) -> Result {
    let sum = u64::from(e.durable) + u64::from(e.transition) + u64::from(e.positive) + u64::from(e.other);
    if sum != u64::from(e.total) {
        return Err(FieldError::rule(
            "exits",
            format!(
                "durable + transition + positive + other must equal total: {} + {} + {} + {} = {sum}, total is {}",
                e.durable, e.transition, e.positive, e.other, e.total
            ),
        ));
    }
    Ok(())
}

/// The most rows one import may carry: a structure's spreadsheet is far smaller, and the node
/// holds an import in memory until it commits it whole.
pub const MAX_IMPORT_ROWS: usize = 100_000;

/// A rule broken by one row of an imported file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The row's line in the file (the header is line 1).
    pub line: u32,
    /// What is wrong, naming the field.
    pub error: FieldError,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.error)
    }
}

/// Every month that appears on more than one row, reported on each repeat: an import must not
/// carry two versions of the same month (which one would win is not for the node to guess).
pub fn distinct_periods<'a>(rows: impl IntoIterator<Item = (u32, &'a str)>) -> Vec<RowError> {
    let mut first_line: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
    let mut errors = Vec::new();
    for (line, period) in rows {
        match first_line.get(period) {
            Some(first) => errors.push(RowError {
                line,
                error: FieldError::new(
                    "period",
                    period,
                    format!("already on line {first}: one row per month"),
                ),
            }),
            None => {
                first_line.insert(period, line);
            }
        }
    }
    errors
}

/// Largest sealed payload of an introduction (a few short fields, with room to spare).
pub const MAX_SEALED_BYTES: usize = 2048;

/// Checks the shape of introduction fields sealed to a requester: a SEC1 uncompressed P-256 point,
/// a 12-byte AES-GCM nonce, a ciphertext with its 16-byte tag and at most [`MAX_SEALED_BYTES`].
/// Only the shape: nobody but the requester can check the content.
pub fn sealed_fields(field: &str, sealed: &crate::v1::SealedFields) -> Result {
    if sealed.ephemeral_public_key.len() != 65 || sealed.nonce.len() != 12 {
        return Err(FieldError::rule(field, "expected a 65-byte ephemeral key and a 12-byte nonce"));
    }
    if !(16..=MAX_SEALED_BYTES).contains(&sealed.ciphertext.len()) {
        return Err(FieldError::rule(field, format!("ciphertext between 16 and {MAX_SEALED_BYTES} bytes")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siret_rules() {
        assert!(siret("siret", "73282932000074").is_ok());
        assert!(siret("siret", "35600000000048").is_ok(), "La Poste's exception");
        let err = siret("siret", "73282932000075").expect_err("bad checksum");
        assert_eq!(
            err.to_string(),
            "siret \"73282932000075\": Luhn checksum fails (check for a typing error)"
        );
        assert!(siret("siret", "7328293200007").is_err());
        assert!(siret("siret", "7328293200007a").is_err());
    }

    #[test]
    fn rome_message_matches_the_contract() {
        let err = rome_code("rome_code", "K22A4").expect_err("letter inside");
        assert_eq!(err.to_string(), "rome_code \"K22A4\": expected a letter A-N followed by 4 digits");
        assert!(rome_code("rome_code", "O1234").is_err());
        assert!(rome_code("rome_code", "k2204").is_err());
        assert!(rome_code("rome_code", "N1103").is_ok());
    }

    #[test]
    fn departements_and_communes() {
        for ok in ["01", "19", "2A", "2B", "21", "95", "971", "976"] {
            assert!(is_departement(ok), "{ok}");
        }
        for bad in ["00", "20", "96", "970", "977", "2C", "1", "", "049"] {
            assert!(!is_departement(bad), "{bad}");
        }
        assert!(commune("commune", "49007", Some("49")).is_ok());
        assert!(commune("commune", "2A004", Some("2A")).is_ok());
        assert!(commune("commune", "97411", Some("974")).is_ok());
        let err = commune("commune", "44109", Some("49")).expect_err("wrong département");
        assert_eq!(err.to_string(), "commune \"44109\": commune is in département 44, not in 49");
        assert!(commune("commune", "20004", None).is_err());
        assert!(commune("commune", "4900", None).is_err());
    }

    #[test]
    fn hub_ids() {
        assert!(hub_id("hub_id", "coorace-pdl").is_ok());
        for bad in ["C", "Coorace", "-x", "x-", "a b", "é-x"] {
            assert!(hub_id("hub_id", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn exits_invariant_names_the_sum() {
        let e = Exits { total: 5, durable: 1, transition: 1, positive: 1, other: 1 };
        let err = exits_sum(&e).expect_err("4 != 5");
        assert!(
            err.to_string().starts_with("exits: durable + transition + positive + other must equal total")
        );
    }

    #[test]
    fn tombstone_keys_are_checked_per_dataset() {
        use crate::datasets::Dataset;
        assert_eq!(record_key(Dataset::Needs, "key", "01920000-0000-7000-8000-000000000001"), Ok(()));
        assert_eq!(record_key(Dataset::Indicators, "key", "2026-01"), Ok(()));
        assert_eq!(record_key(Dataset::Profiles, "key", &"a".repeat(32)), Ok(()));
        for (dataset, key) in [
            (Dataset::Needs, "../../etc"),
            (Dataset::Indicators, "2026-13"),
            (Dataset::Profiles, "Camille Martin"),
            (Dataset::Needs, ""),
        ] {
            assert_eq!(record_key(dataset, "key", key).map_err(|e| e.field), Err("key".to_string()));
        }
    }

    #[test]
    fn a_shared_need_is_checked_field_by_field() {
        let good = crate::v1::SharedNeed {
            origin_siret: "73282932000074".into(),
            need_id: "01920000-0000-7000-8000-000000000001".into(),
            origin_version: 1,
            rome_code: "K2204".into(),
            contract_type: ContractType::Cddi as i32,
            open_positions: 2,
            hours_per_week: 24,
            departement: "49".into(),
            start_date: "2026-12-01".into(),
            end_date: Some("2027-05-31".into()),
            status: NeedStatus::Open as i32,
            updated_at_ms: 1,
        };
        assert_eq!(shared_need(&good), Ok(()));
        type Spoil = fn(&mut crate::v1::SharedNeed);
        let cases: [(&str, Spoil); 7] = [
            ("end_date", |n| n.end_date = Some("call 06 12 34 56 78".into())),
            ("end_date", |n| n.end_date = Some("2026-01-01".into())),
            ("contract_type", |n| n.contract_type = 99),
            ("open_positions", |n| n.open_positions = 0),
            ("hours_per_week", |n| n.hours_per_week = 0),
            ("departement", |n| n.departement = "Maine-et-Loire".into()),
            ("status", |n| n.status = 0),
        ];
        for (field, spoil) in cases {
            let mut bad = good.clone();
            spoil(&mut bad);
            assert_eq!(shared_need(&bad).map_err(|e| e.field), Err(field.to_string()));
        }
    }

    #[test]
    fn indicator_figures_are_bounded_so_no_sum_can_wrap() {
        let ok = IndicatorFields {
            period: "2026-01".into(),
            etp_hundredths: MAX_ETP_HUNDREDTHS,
            employees_in_insertion: MAX_EMPLOYEES,
            hours_worked: MAX_HOURS_WORKED,
            hires: MAX_MOVES,
            exits: Some(Exits { total: MAX_MOVES, durable: MAX_MOVES, ..Default::default() }),
        };
        assert_eq!(indicator_fields(&ok), Ok(()));
        type Spoil = fn(&mut IndicatorFields);
        let cases: [(&str, Spoil); 5] = [
            ("hours_worked", |r| r.hours_worked = 9_223_372_036_854_775_000),
            ("employees_in_insertion", |r| r.employees_in_insertion = u32::MAX),
            ("etp_hundredths", |r| r.etp_hundredths = u64::MAX),
            ("hires", |r| r.hires = MAX_MOVES + 1),
            ("exits.total", |r| {
                r.exits = Some(Exits { total: u32::MAX, other: u32::MAX, ..Default::default() })
            }),
        ];
        for (field, spoil) in cases {
            let mut bad = ok.clone();
            spoil(&mut bad);
            let err = indicator_fields(&bad).expect_err(field);
            assert_eq!(err.field, field, "{err}");
            assert!(err.rule.starts_with("must be between 0 and"), "{err}");
        }
        // 4,000 structures × 12 months of the largest reports still fit, with room to spare.
        let year: u64 = MAX_HOURS_WORKED * 4_000 * 12;
        assert!(year < 1 << 40);
    }

    #[test]
    fn text_limits_count_characters_not_bytes() {
        let accented = "é".repeat(MAX_DESCRIPTION_CHARS);
        assert!(paragraph("description", &accented, MAX_DESCRIPTION_CHARS).is_ok());
        assert!(paragraph("description", &format!("{accented}é"), MAX_DESCRIPTION_CHARS).is_err());
        assert!(line("title", "   ", 1, 10).is_err());
        assert!(line("title", "a\u{7}", 1, 10).is_err());
        assert!(paragraph("description", "a\nb", 10).is_ok());
    }

    #[test]
    fn a_profile_names_placement_or_statistics_once() {
        use crate::v1::ConsentPurpose as P;
        assert!(profile_purposes(&[]).is_ok(), "an older node: placement only");
        assert!(profile_purposes(&[P::Statistics as i32, P::Placement as i32]).is_ok());
        let err = profile_purposes(&[P::PlacementSensitive as i32]).expect_err("not a profile purpose");
        assert_eq!(err.to_string(), r#"purposes[0] "placement-sensitive": expected placement or statistics"#);
        let err = profile_purposes(&[P::Statistics as i32, P::Statistics as i32]).expect_err("twice");
        assert_eq!(err.field, "purposes[1]");
        assert!(profile_purposes(&[0]).is_err(), "unspecified is always rejected");
    }
}
