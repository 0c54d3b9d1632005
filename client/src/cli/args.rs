//! The command line, as clap parses it. This is a contract: acceptance tests and users' scripts
//! drive exactly these commands and flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use passerelle_proto::codes::Code;
use passerelle_proto::v1::{
    Barrier, ConsentPurpose, ContractType, DeclineReason, GuiRole, IntroductionOutcome, NeedStatus,
    SharedField,
};

/// Passerelle: a structure's recruitment needs, people, consents and indicators, synced with its
/// networks.
#[derive(Debug, Parser)]
#[command(name = "passerelle", version, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    /// URL of the node's local API.
    #[arg(long, global = true, env = "PASSERELLE_ENDPOINT", default_value = "http://127.0.0.1:7401")]
    pub(crate) endpoint: String,

    /// CA certificate(s) the server must chain to, for https:// endpoints.
    #[arg(long, global = true, env = "PASSERELLE_CA")]
    pub(crate) ca: Option<PathBuf>,

    /// Your certificate (from `passerelle pki issue`), for https:// endpoints.
    #[arg(long, global = true, env = "PASSERELLE_CERT")]
    pub(crate) cert: Option<PathBuf>,

    /// Your private key, for https:// endpoints.
    #[arg(long, global = true, env = "PASSERELLE_KEY")]
    pub(crate) key: Option<PathBuf>,

    /// Output format: an aligned table, one JSON document, or CSV with a header row.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Aligned columns for people.
    Table,
    /// One JSON document: an object for one record, an array for a list.
    Json,
    /// A header row then one row per record.
    Csv,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Show the structure this node belongs to.
    Structure,
    /// Recruitment needs.
    #[command(subcommand)]
    Need(NeedCommand),
    /// People the structure supports (personal data: stays on this node).
    #[command(subcommand)]
    Person(PersonCommand),
    /// Consents given by people, per purpose and per hub.
    #[command(subcommand)]
    Consent(ConsentCommand),
    /// Monthly indicator reports.
    #[command(subcommand)]
    Indicators(IndicatorsCommand),
    /// Sync with the network hubs this node is configured for.
    #[command(subcommand)]
    Sync(SyncCommand),
    /// What the networks share: the pooled needs of other structures.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Introductions ("mise en relation"): ask a hub for candidates for a need, answer for the
    /// persons a request matched here, record outcomes.
    #[command(subcommand, name = "introductions", visible_alias = "introduction")]
    Introductions(IntroductionCommand),
    /// The node's hash-chained log of profile shares and purges.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Consolidated statistics from a hub (consumer certificate: --endpoint https://HUB --ca --cert --key).
    #[command(subcommand)]
    Stats(StatsCommand),
    /// A network's certificates: create its CA, issue certificates, inspect them.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// Administer a hub (over its operator API: --endpoint http://127.0.0.1:7502).
    #[command(subcommand)]
    Hub(HubCommand),
    /// The node's web console (`[gui]` in its config): its staff accounts.
    #[command(subcommand)]
    Gui(GuiCommand),
    /// Print a shell completion script, e.g. `passerelle completions bash > /etc/bash_completion.d/passerelle`.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum GuiCommand {
    /// The web console's accounts (one per person: consents collected there name it).
    #[command(subcommand)]
    User(GuiUserCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum GuiUserCommand {
    /// Add an account; the password is read on standard input (asked twice on a terminal, at
    /// least 12 characters) and stored as an Argon2id hash by the node.
    Add {
        /// The login name: lowercase letters, digits, '.', '_', '-'.
        name: String,
        /// `admin` reads and changes; `viewer` only reads.
        #[arg(long, value_parser = code::<GuiRole>())]
        role: GuiRole,
        /// Replace the password and role of an existing account.
        #[arg(long)]
        replace: bool,
    },
    /// List the accounts.
    List,
    /// Remove an account (its sessions end at their next request).
    Remove {
        /// The login name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum StatsCommand {
    /// The tables the hub publishes, their dimensions and the disclosure rules in force.
    Tables,
    /// Indicators of member structures for a period.
    Indicators {
        /// Up to two of: departement, region, kind, network (comma-separated).
        #[arg(long, value_delimiter = ',')]
        by: Vec<String>,
        /// A month (2026-10), a quarter (2026-Q3) or a year (2026).
        #[arg(long)]
        period: String,
        /// The period's revision to read (0: as closed); default: the latest.
        #[arg(long)]
        revision: Option<u32>,
    },
    /// Open recruitment needs by start month (recruitment outlook).
    Needs {
        /// Up to two of: rome-grand-domaine, rome-domaine, rome, departement, start-month, contract.
        #[arg(long, value_delimiter = ',')]
        by: Vec<String>,
        /// First month of start, YYYY-MM.
        #[arg(long)]
        from: Option<String>,
        /// Last month of start, YYYY-MM.
        #[arg(long)]
        to: Option<String>,
    },
    /// Introduction requests, routed, accepted and hired, for a closed month.
    Introductions {
        /// Up to two of: departement, rome-domaine (comma-separated).
        #[arg(long, value_delimiter = ',')]
        by: Vec<String>,
        /// A closed month, YYYY-MM.
        #[arg(long)]
        period: String,
    },
    /// Available anonymised profiles.
    Profiles {
        /// Up to two of: rome-domaine, departement, age-band.
        #[arg(long, value_delimiter = ',')]
        by: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Recompute the hash chain; exit 3 if any entry was altered or removed.
    Verify,
    /// List entries, oldest first.
    List {
        /// Only this person's entries.
        #[arg(long)]
        person: Option<String>,
        /// Only entries from this day on, YYYY-MM-DD.
        #[arg(long)]
        since: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SyncCommand {
    /// Per hub: connected or not, last acknowledgement, pending changes, last error.
    Status,
    /// Push now, skipping any retry delay.
    Now {
        /// Return only when every hub has acknowledged everything pending (exit 1 otherwise).
        #[arg(long)]
        wait: bool,
        /// How long --wait waits, in seconds (`30` or `30s`).
        #[arg(long, default_value = "30", value_parser = seconds)]
        timeout: std::time::Duration,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum NetworkCommand {
    /// Classes of candidates other structures support (age band, area, ROME, how many; breakdowns
    /// shown whole or not at all), k-anonymous without your own, asked of each hub now.
    Profiles {
        /// Only this ROME grand domaine (K) or domaine (K22).
        #[arg(long)]
        rome: Option<String>,
        /// Only this département (a class generalised to its région matches too).
        #[arg(long)]
        departement: Option<String>,
    },
    /// The open needs of other structures, pooled from every hub, readable offline.
    Needs {
        /// Only this ROME grand domaine (K), domaine (K22) or fiche (K2204).
        #[arg(long)]
        rome: Option<String>,
        /// Only this département.
        #[arg(long)]
        departement: Option<String>,
    },
}

/// Parses `30` or `30s`.
fn seconds(text: &str) -> Result<std::time::Duration, String> {
    text.trim_end_matches('s')
        .parse::<u64>()
        .ok()
        .filter(|s| *s > 0)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| "expected a number of seconds, e.g. 30".to_string())
}

#[derive(Debug, Subcommand)]
pub(crate) enum PkiCommand {
    /// Create a network CA (ca.pem, ca.key) in DIR; refuses to overwrite one.
    Init {
        /// The network, e.g. coorace-pdl.
        #[arg(long)]
        network: String,
        /// Directory to write ca.pem and ca.key into.
        #[arg(long)]
        out: PathBuf,
    },
    /// Issue a key and certificate signed by a CA, into DIR/ROLE.pem and DIR/ROLE.key.
    Issue {
        /// The CA directory (from `pki init`).
        #[arg(long)]
        ca: PathBuf,
        /// What the certificate is for.
        #[arg(long, value_parser = ["node", "hub", "consumer", "operator"])]
        role: String,
        /// Who: a SIRET for a node, the hub id for a hub, an organisation id (dreets-52) for a consumer.
        #[arg(long)]
        id: String,
        /// Directory to write the key, the certificate and a copy of ca.pem into.
        #[arg(long)]
        out: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = passerelle_client::pki::DEFAULT_VALIDITY_DAYS,
              value_parser = clap::value_parser!(u32).range(1..=i64::from(passerelle_client::pki::MAX_VALIDITY_DAYS)))]
        days: u32,
        /// DNS name the server answers to (hub and node certificates; default localhost).
        #[arg(long)]
        dns: Vec<String>,
        /// IP address the server answers on (hub and node certificates; default 127.0.0.1).
        #[arg(long)]
        ip: Vec<std::net::IpAddr>,
    },
    /// Print a certificate's role, id, serial, validity and issuer.
    Show {
        /// A PEM certificate file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum HubCommand {
    /// The hub's identity and settings.
    Info,
    /// List members, pending and accepted.
    Members,
    /// Member structures with their sync state: last seen, lag, records held.
    Structures,
    /// Accept a member: a SIRET (a structure's node) or a hub id.
    Accept {
        /// SIRET or hub id.
        id: String,
        /// The network whose CA issued its certificate (as `hub members` shows it); needed when
        /// the id is known from several networks.
        #[arg(long)]
        network: Option<String>,
    },
    /// Remove a member; its next contact makes it pending again.
    Remove {
        /// SIRET or hub id.
        id: String,
        /// The network whose CA issued its certificate; needed when the id is known from several
        /// networks.
        #[arg(long)]
        network: Option<String>,
    },
    /// Re-read the hub's revocation list (denied_serials) from its config file.
    Reload,
    /// Who has reported a month's indicators: on time, late, missing.
    Completeness {
        /// The month, YYYY-MM (default: the latest month whose due date has passed).
        #[arg(long)]
        period: Option<String>,
    },
    /// Reporting periods: list them, close one.
    #[command(subcommand)]
    Period(PeriodCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum PeriodCommand {
    /// Every month seen: state, due date, closing, reported of expected.
    List,
    /// Close a month now and freeze its published tables (idempotent; a month not yet ended is refused).
    Close {
        /// The month, YYYY-MM.
        period: String,
    },
    /// Publish a closed month's late or corrected reports and removals as its next revision
    /// (and its quarter's and year's, when published); refused for an open month or when
    /// nothing changed.
    Revise {
        /// The month, YYYY-MM.
        period: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum NeedCommand {
    /// Import needs from a CSV file, all or nothing (columns: see README, "Importing from a
    /// spreadsheet"): rome_code, title, contract_type, open_positions, hours_per_week,
    /// departement, commune, start_date, and optionally end_date, client, description.
    Import(ImportArgs),
    /// Record a new recruitment need (open).
    Add(NeedAdd),
    /// List needs, oldest first.
    List {
        /// Only needs with this status.
        #[arg(long, value_parser = code::<NeedStatus>())]
        status: Option<NeedStatus>,
    },
    /// Show one need.
    Show {
        /// The need's id.
        id: String,
    },
    /// Delete a need (hubs that received it are told to drop it).
    Delete {
        /// The need's id.
        id: String,
    },
    /// Ask a hub for candidates that other structures support (prints the request's id).
    Introduce {
        /// The need's id (open, shared with the hub).
        id: String,
        /// The hub; required when the need is shared with several.
        #[arg(long)]
        hub: Option<String>,
    },
    /// Close a need as filled or cancelled.
    Close {
        /// The need's id.
        id: String,
        /// How the need ended: filled or cancelled.
        #[arg(long, value_parser = code::<NeedStatus>())]
        status: NeedStatus,
    },
}

#[derive(Debug, Args)]
pub(crate) struct NeedAdd {
    /// ROME fiche code, e.g. K2204.
    #[arg(long)]
    pub(crate) rome: String,
    /// Short job title (stays on this node).
    #[arg(long)]
    pub(crate) title: String,
    /// Contract offered.
    #[arg(long, value_parser = code::<ContractType>())]
    pub(crate) contract: ContractType,
    /// Number of open positions (at least 1).
    #[arg(long)]
    pub(crate) positions: u32,
    /// Hours per week (1 to 48).
    #[arg(long)]
    pub(crate) hours: u32,
    /// Département of the workplace, e.g. 49.
    #[arg(long)]
    pub(crate) departement: String,
    /// INSEE code of the workplace's commune, e.g. 49007.
    #[arg(long)]
    pub(crate) commune: String,
    /// First day of work, YYYY-MM-DD.
    #[arg(long)]
    pub(crate) start: String,
    /// Last day of work for a fixed-term need, YYYY-MM-DD.
    #[arg(long)]
    pub(crate) end: Option<String>,
    /// Client or employer where the work happens (stays on this node: may be a household).
    #[arg(long)]
    pub(crate) client: Option<String>,
    /// Free-text description, up to 2,000 characters (stays on this node).
    #[arg(long)]
    pub(crate) description: Option<String>,
}

// Parsed once per process: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum PersonCommand {
    /// Record a person the structure supports.
    Add(PersonAdd),
    /// List persons, oldest first.
    List,
    /// Show one person.
    Show {
        /// The person's id.
        id: String,
    },
    /// Everything about a person's data: consents, which hubs received their profile, what and
    /// when, and whether purges were acknowledged (for access requests, GDPR art. 15 and 19).
    Report {
        /// The person's id.
        id: String,
    },
    /// Erase a person's personal data (their consents in force are withdrawn).
    Delete {
        /// The person's id.
        id: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct PersonAdd {
    /// First name.
    #[arg(long)]
    pub(crate) first_name: String,
    /// Last name.
    #[arg(long)]
    pub(crate) last_name: String,
    /// Birth date, YYYY-MM-DD.
    #[arg(long)]
    pub(crate) birth_date: String,
    /// INSEE code of the commune of residence.
    #[arg(long)]
    pub(crate) commune: String,
    /// ROME codes sought, comma-separated (1 to 5), e.g. K2204,G1602.
    #[arg(long, value_delimiter = ',', required = true)]
    pub(crate) rome: Vec<String>,
    /// First day the person can start, YYYY-MM-DD.
    #[arg(long)]
    pub(crate) available_from: String,
    /// Hours per week wanted (1 to 48).
    #[arg(long)]
    pub(crate) hours: Option<u32>,
    /// How far the person can travel to work, in km.
    #[arg(long)]
    pub(crate) mobility_km: Option<u32>,
    /// Barriers to employment, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = code::<Barrier>())]
    pub(crate) barriers: Vec<Barrier>,
    /// Last day of the person's PASS IAE, YYYY-MM-DD.
    #[arg(long)]
    pub(crate) pass_iae_end: Option<String>,
    /// Phone number.
    #[arg(long)]
    pub(crate) phone: Option<String>,
    /// E-mail address.
    #[arg(long)]
    pub(crate) email: Option<String>,
}

/// Which requests `introductions list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum IntroductionDirection {
    /// Requests routed to this structure, with its matching persons.
    In,
    /// This structure's own requests, with accepted candidates.
    Out,
}

#[derive(Debug, Subcommand)]
pub(crate) enum IntroductionCommand {
    /// List requests, refreshed from the hubs first.
    List {
        /// `in`: routed here; `out`: this structure's own.
        #[arg(long, value_enum)]
        direction: IntroductionDirection,
        /// Most requests listed, the newest (1 to 500); how many older ones are not is said on
        /// stderr.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: u32,
    },
    /// The person agreed: record their consent and send the chosen fields, sealed to the
    /// requesting structure.
    Accept {
        /// The request's id.
        id: String,
        /// The person's id (one the request matched).
        #[arg(long)]
        person: String,
        /// Fields shared: first-name and phone, optionally last-name and email.
        #[arg(long, value_delimiter = ',', value_parser = code::<SharedField>())]
        share: Vec<SharedField>,
        /// Version of the consent text the person was shown.
        #[arg(long)]
        text_version: String,
        /// Who collected the consent (defaults to the current user).
        #[arg(long)]
        collected_by: Option<String>,
    },
    /// The person declined (counted, without identity).
    Decline {
        /// The request's id.
        id: String,
        /// The person's id.
        #[arg(long)]
        person: String,
        /// Why.
        #[arg(long, value_parser = code::<DeclineReason>())]
        reason: DeclineReason,
    },
    /// The person changed their mind: the requesting structure deletes the fields.
    Withdraw {
        /// The request's id.
        id: String,
        /// The person's id.
        #[arg(long)]
        person: String,
    },
    /// Record what became of a candidate of one of this structure's requests.
    Outcome {
        /// The request's id.
        id: String,
        /// The candidate reference.
        #[arg(long)]
        candidate: String,
        /// hired or not-hired.
        #[arg(long, value_parser = code::<IntroductionOutcome>())]
        outcome: IntroductionOutcome,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConsentCommand {
    /// Record a person's consent for one purpose and one hub.
    Grant {
        /// The person's id.
        #[arg(long)]
        person: String,
        /// What the consent allows.
        #[arg(long, value_parser = code::<ConsentPurpose>())]
        purpose: ConsentPurpose,
        /// The hub that may receive the data, e.g. coorace-pdl.
        #[arg(long)]
        hub: String,
        /// Version of the consent text the person was shown.
        #[arg(long)]
        text_version: String,
        /// Who collected the consent (defaults to the current user).
        #[arg(long)]
        collected_by: Option<String>,
    },
    /// Withdraw the consent in force for a person, purpose and hub.
    Withdraw {
        /// The person's id.
        #[arg(long)]
        person: String,
        /// The purpose withdrawn.
        #[arg(long, value_parser = code::<ConsentPurpose>())]
        purpose: ConsentPurpose,
        /// The hub.
        #[arg(long)]
        hub: String,
    },
    /// List consents, in force and withdrawn.
    List {
        /// Only this person's consents.
        #[arg(long)]
        person: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum IndicatorsCommand {
    /// Import monthly reports from a CSV file, all or nothing (columns: period, etp,
    /// employees_in_insertion, hours_worked, hires, exits_total, exits_durable,
    /// exits_transition, exits_positive, exits_other). A month already reported is replaced.
    Import(ImportArgs),
    /// Submit (or re-submit) the indicator report of a month.
    Submit(IndicatorsSubmit),
    /// List reports by period.
    List {
        /// First month, YYYY-MM.
        #[arg(long)]
        from: Option<String>,
        /// Last month included, YYYY-MM.
        #[arg(long)]
        to: Option<String>,
    },
    /// Months not reported yet, from the first report (or the first sync with a hub receiving
    /// indicators) to last month, with each hub's due date and whether it has passed.
    Missing,
}

#[derive(Debug, Args)]
pub(crate) struct IndicatorsSubmit {
    /// The month reported, YYYY-MM.
    #[arg(long)]
    pub(crate) period: String,
    /// Full-time equivalents, with at most 2 decimals, e.g. 12.5.
    #[arg(long, value_parser = hundredths)]
    pub(crate) etp: u64,
    /// Employees in insertion during the month.
    #[arg(long)]
    pub(crate) employees: u32,
    /// Hours worked during the month.
    #[arg(long)]
    pub(crate) hours: u64,
    /// Hires during the month.
    #[arg(long)]
    pub(crate) hires: u32,
    /// Exits examined during the month.
    #[arg(long)]
    pub(crate) exits_total: u32,
    /// Exits to durable employment.
    #[arg(long)]
    pub(crate) exits_durable: u32,
    /// Exits to transition employment.
    #[arg(long)]
    pub(crate) exits_transition: u32,
    /// Positive exits (training, hire by another SIAE).
    #[arg(long)]
    pub(crate) exits_positive: u32,
    /// Other exits.
    #[arg(long)]
    pub(crate) exits_other: u32,
}

/// `need import` and `indicators import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The CSV file: UTF-8 (with or without BOM), `,` or `;` separated, a header row naming the
    /// columns. If any row is invalid nothing is imported and every bad row is listed.
    pub(crate) file: PathBuf,
    /// Check every row and report, without importing anything (works without a node).
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// A parser for the slugs of one of the protocol's enums; `--help` and errors list the choices.
fn code<T: Code + Clone + Send + Sync>() -> impl clap::builder::TypedValueParser<Value = T> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(T::ALL.iter().map(|(_, slug)| *slug))
        // Every possible value is a slug of `T`, so the lookup cannot miss.
        .map(|slug| T::from_slug(&slug).unwrap_or(T::ALL[0].0))
}

/// Parses a decimal with at most 2 decimals into hundredths, exactly (never through a float).
pub(crate) fn hundredths(text: &str) -> Result<u64, String> {
    let err = || "expected a number with at most 2 decimals, e.g. 12.5".to_string();
    let (whole, frac) = text.split_once(['.', ',']).unwrap_or((text, ""));
    if whole.is_empty()
        || frac.len() > 2
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(err());
    }
    let whole: u64 = whole.parse().map_err(|_| err())?;
    let frac: u64 = format!("{frac:0<2}").parse().map_err(|_| err())?;
    whole.checked_mul(100).and_then(|w| w.checked_add(frac)).ok_or_else(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hundredths_are_exact() {
        assert_eq!(hundredths("12.5"), Ok(1250));
        assert_eq!(hundredths("12,05"), Ok(1205));
        assert_eq!(hundredths("0.07"), Ok(7));
        assert_eq!(hundredths("3"), Ok(300));
        for bad in ["", ".5", "1.234", "-1", "1e3", "12.5.1", "abc"] {
            assert!(hundredths(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
