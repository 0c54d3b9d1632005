//! The `passerelle` command line: parse, call the node, print.

pub(crate) mod args;
mod gui;
mod import;
mod periods;
mod progress;
mod render;
mod stats;
mod views;

use args::{
    AuditCommand, Cli, Command, ConsentCommand, HubCommand, IndicatorsCommand, IntroductionCommand,
    NeedCommand, NetworkCommand, PersonCommand, PkiCommand, SyncCommand,
};
use std::io::Write as _;

use passerelle_client::pki::{self, IssueRequest};
use passerelle_client::{Error, HubClient, NodeClient, TlsFiles};
use passerelle_proto::identity::{PeerId, Role};
use passerelle_proto::v1::{
    Exits, GrantConsentRequest, IndicatorFields, NeedFields, PersonFields, WithdrawConsentRequest,
};
use views::{
    AuditCheckView, AuditView, DeletedView, IntroductionView, PersonReportView, PooledNeedView,
    StructureSyncView, SyncHubView,
};
use views::{
    CertificateView, ConsentView, ErasureView, HubView, IndicatorView, MemberView, MissingView, NeedView,
    PersonView, StructureView, WrittenView,
};

/// Runs one command: PKI commands work on files, the others call the node or hub at `cli.endpoint`.
pub(crate) async fn run(cli: Cli) -> Result<(), Error> {
    let format = cli.format;
    // `pki` works on files only (and its `issue --ca DIR` is the CA directory, not a TLS flag).
    if let Command::Pki(command) = cli.command {
        return report(pki_command(format, command)?);
    }
    let tls = match (cli.ca, cli.cert, cli.key) {
        (Some(ca), Some(cert), Some(key)) => Some(TlsFiles { ca, cert, key }),
        (None, None, None) => None,
        _ => {
            return Err(Error::InvalidEndpoint {
                endpoint: cli.endpoint,
                reason: "--ca, --cert and --key go together".into(),
            });
        }
    };
    let printed = match cli.command {
        Command::Hub(command) => hub_command(format, command, &cli.endpoint, tls.as_ref()).await?,
        Command::Stats(command) => stats_command(format, command, &cli.endpoint, tls.as_ref()).await?,
        Command::Gui(command) => gui::run(format, command, &cli.endpoint, tls.as_ref()).await?,
        // Imports read and check the file before (and, with --dry-run, without) reaching the node.
        Command::Need(NeedCommand::Import(args)) => {
            import::run(format, import::Kind::Needs, args, &cli.endpoint, tls.as_ref()).await?
        }
        Command::Indicators(IndicatorsCommand::Import(args)) => {
            import::run(format, import::Kind::Indicators, args, &cli.endpoint, tls.as_ref()).await?
        }
        command => node_command(format, command, &cli.endpoint, tls.as_ref()).await?,
    };
    report(printed)
}

/// Reports an output failure; a closed pipe (`passerelle need list | head`) is not worth one.
fn report(printed: std::io::Result<()>) -> Result<(), Error> {
    if let Err(e) = printed
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("error: writing output: {e}");
    }
    Ok(())
}

fn pki_command(format: args::Format, command: PkiCommand) -> Result<std::io::Result<()>, Error> {
    Ok(match command {
        PkiCommand::Init { network, out } => {
            let written = pki::init(&network, &out)?;
            eprintln!(
                "created the CA of network {network}: keep {} secret and offline",
                written.key.display()
            );
            render::one(format, &written_view(&network, written))
        }
        PkiCommand::Issue { ca, role, id, out, days, dns, ip } => {
            let role = Role::parse(&role).ok_or_else(|| {
                passerelle_proto::validate::FieldError::new(
                    "role",
                    &role,
                    "expected node, hub, consumer or operator",
                )
            })?;
            let peer = PeerId::new(role, &id).map_err(pki::PkiError::from)?;
            let mut request = IssueRequest::new(peer.clone(), days);
            request.dns = dns;
            request.ips = ip;
            let written = pki::issue(&ca, &request, &out)?;
            render::one(format, &written_view(&peer.uri(), written))
        }
        PkiCommand::Show { file } => render::one(format, &CertificateView::from(pki::show(&file)?)),
    })
}

fn written_view(id: &str, written: pki::Written) -> WrittenView {
    WrittenView {
        id: id.into(),
        certificate: written.cert.display().to_string(),
        key: written.key.display().to_string(),
    }
}

async fn stats_command(
    format: args::Format,
    command: args::StatsCommand,
    endpoint: &str,
    tls: Option<&TlsFiles>,
) -> Result<std::io::Result<()>, Error> {
    use passerelle_proto::v1::GetTableRequest;
    let hub = HubClient::connect(endpoint, tls).await?;
    let request = match command {
        args::StatsCommand::Tables => {
            let tables = hub.tables().await?;
            let periods = tables.periods;
            let rows: Vec<views::TableInfoView> =
                tables.tables.into_iter().map(|t| views::TableInfoView::with_periods(t, &periods)).collect();
            return Ok(render::list(format, &rows));
        }
        args::StatsCommand::Indicators { by, period, revision } => {
            GetTableRequest { table: "indicators".into(), by, period, revision, ..Default::default() }
        }
        args::StatsCommand::Needs { by, from, to } => {
            GetTableRequest { table: "needs".into(), by, from, to, ..Default::default() }
        }
        args::StatsCommand::Introductions { by, period } => {
            GetTableRequest { table: "introductions".into(), by, period, ..Default::default() }
        }
        args::StatsCommand::Profiles { by } => {
            GetTableRequest { table: "profiles".into(), by, ..Default::default() }
        }
    };
    let table = hub.table(request).await?;
    Ok(stats::print(format, &table))
}

async fn hub_command(
    format: args::Format,
    command: HubCommand,
    endpoint: &str,
    tls: Option<&TlsFiles>,
) -> Result<std::io::Result<()>, Error> {
    let hub = HubClient::connect(endpoint, tls).await?;
    Ok(match command {
        HubCommand::Info => render::one(format, &HubView::from(hub.info().await?)),
        HubCommand::Structures => {
            let members = hub.members().await?;
            let structures: Vec<StructureSyncView> =
                members.into_iter().filter(|m| m.role == "node").map(StructureSyncView::from).collect();
            render::list(format, &structures)
        }
        HubCommand::Members => {
            let members = hub.members().await?;
            render::list_of::<_, MemberView>(format, members)
        }
        HubCommand::Accept { id, network } => {
            render::one(format, &MemberView::from(hub.accept_from(&id, network.as_deref()).await?))
        }
        HubCommand::Remove { id, network } => {
            render::one(format, &MemberView::from(hub.remove_from(&id, network.as_deref()).await?))
        }
        HubCommand::Reload => {
            let serials = hub.reload().await?;
            render::one(format, &HubView { denied_serials: serials, ..HubView::from(hub.info().await?) })
        }
        HubCommand::Completeness { period } => {
            periods::print_completeness(format, &hub.completeness(period.as_deref().unwrap_or("")).await?)
        }
        HubCommand::Period(args::PeriodCommand::List) => {
            render::list_of::<_, periods::PeriodView>(format, hub.periods().await?)
        }
        HubCommand::Period(args::PeriodCommand::Close { period }) => {
            render::one(format, &periods::PeriodView::from(hub.close_period(&period).await?))
        }
        HubCommand::Period(args::PeriodCommand::Revise { period }) => {
            render::one(format, &periods::PeriodView::from(hub.revise_period(&period).await?))
        }
    })
}

async fn node_command(
    format: args::Format,
    command: Command,
    endpoint: &str,
    tls: Option<&TlsFiles>,
) -> Result<std::io::Result<()>, Error> {
    let mut node = NodeClient::connect(endpoint, tls).await?;
    Ok(match command {
        Command::Pki(_)
        | Command::Hub(_)
        | Command::Stats(_)
        | Command::Gui(_)
        | Command::Completions { .. } => unreachable_command(),
        Command::Audit(AuditCommand::Verify) => {
            let check = node.verify_audit().await?;
            let view = AuditCheckView {
                id: "audit".into(),
                entries: check.entries,
                intact: check.intact,
                broken_at: (!check.intact).then_some(check.broken_at),
                problem: (!check.intact).then_some(check.problem.clone()),
            };
            let printed = render::one(format, &view);
            if !check.intact {
                return Err(Error::AuditBroken(format!(
                    "audit log broken at entry {}: {}",
                    check.broken_at, check.problem
                )));
            }
            printed
        }
        Command::Audit(AuditCommand::List { person, since }) => {
            render::list_of::<_, AuditView>(format, node.audit(person, since).await?)
        }
        Command::Sync(SyncCommand::Status) => {
            let status = node.sync_status().await?;
            render::list_of::<_, SyncHubView>(format, status.hubs)
                .and_then(|()| print_overdue(format, status.overdue_months))
        }
        Command::Sync(SyncCommand::Now { wait, timeout }) => {
            let status = node.sync_now(wait, timeout).await?;
            render::list_of::<_, SyncHubView>(format, status.hubs)
        }
        Command::Network(NetworkCommand::Profiles { rome, departement }) => {
            let reply = node.network_profiles(rome, departement).await?;
            for hub in &reply.unreachable {
                eprintln!("warning: not asked: {hub}");
            }
            render::list_of::<_, views::NetworkClassView>(format, reply.classes)
        }
        Command::Network(NetworkCommand::Needs { rome, departement }) => {
            let needs = node.network_needs(rome, departement).await?;
            render::list_of::<_, PooledNeedView>(format, needs)
        }
        Command::Introductions(command) => introduction_command(format, command, &mut node).await?,
        Command::Structure => render::one(format, &StructureView::from(node.structure().await?)),
        Command::Need(command) => match command {
            NeedCommand::Import(_) => unreachable_command(),
            NeedCommand::Add(a) => {
                let fields = NeedFields {
                    rome_code: a.rome,
                    title: a.title,
                    contract_type: a.contract as i32,
                    open_positions: a.positions,
                    hours_per_week: a.hours,
                    departement: a.departement,
                    commune: a.commune,
                    start_date: a.start,
                    end_date: a.end,
                    client: a.client,
                    description: a.description,
                };
                render::one(format, &NeedView::from(node.create_need(fields).await?))
            }
            NeedCommand::List { status } => {
                let needs = node.needs(status).await?;
                render::list_of::<_, NeedView>(format, needs)
            }
            NeedCommand::Show { id } => render::one(format, &NeedView::from(node.need(&id).await?)),
            NeedCommand::Delete { id } => {
                node.delete_need(&id).await?;
                render::one(format, &DeletedView { id, deleted: true })
            }
            NeedCommand::Introduce { id, hub } => {
                let intro = node.introduce_need(&id, hub).await?;
                if intro.status == passerelle_proto::v1::IntroductionStatus::Queued as i32 {
                    eprintln!(
                        "hub {} unreachable: the request is queued and will be sent by sync",
                        intro.hub_id
                    );
                }
                match format {
                    args::Format::Table => writeln!(std::io::stdout().lock(), "{}", intro.id),
                    _ => render::one(format, &IntroductionView::from(intro)),
                }
            }
            NeedCommand::Close { id, status } => {
                render::one(format, &NeedView::from(node.close_need(&id, status).await?))
            }
        },
        Command::Person(command) => match command {
            PersonCommand::Add(a) => {
                let fields = PersonFields {
                    first_name: a.first_name,
                    last_name: a.last_name,
                    birth_date: a.birth_date,
                    commune: a.commune,
                    phone: a.phone,
                    email: a.email,
                    rome_codes: a.rome,
                    available_from: a.available_from,
                    hours_per_week: a.hours,
                    mobility_km: a.mobility_km,
                    barriers: a.barriers.into_iter().map(|b| b as i32).collect(),
                    pass_iae_end: a.pass_iae_end,
                };
                render::one(format, &PersonView::from(node.add_person(fields).await?))
            }
            PersonCommand::List => {
                let persons = node.persons().await?;
                render::list_of::<_, PersonView>(format, persons)
            }
            PersonCommand::Report { id } => {
                let report = PersonReportView::from(node.person_report(&id).await?);
                match format {
                    args::Format::Json => render::one(format, &report),
                    args::Format::Csv => render::list(format, &report.shares),
                    args::Format::Table => (|| {
                        println!("person {}{}", report.id, if report.erased { " (erased)" } else { "" });
                        println!("\nconsents:");
                        render::list(format, &report.consents)?;
                        println!("\nhubs that received the profile:");
                        render::list(format, &report.shares)?;
                        println!("\naudit entries:");
                        render::list(format, &report.audit)
                    })(),
                }
            }
            PersonCommand::Show { id } => render::one(format, &PersonView::from(node.person(&id).await?)),
            PersonCommand::Delete { id } => {
                let erased = node.delete_person(&id).await?;
                let view = ErasureView {
                    id: erased.id,
                    erased: true,
                    withdrawn_consent_ids: erased.withdrawn_consents.into_iter().map(|c| c.id).collect(),
                };
                render::one(format, &view)
            }
        },
        Command::Consent(command) => match command {
            ConsentCommand::Grant { person, purpose, hub, text_version, collected_by } => {
                let request = GrantConsentRequest {
                    person_id: person,
                    purpose: purpose as i32,
                    hub_id: hub,
                    text_version,
                    collected_by: collected_by.unwrap_or_else(current_user),
                };
                render::one(format, &ConsentView::from(node.grant_consent(request).await?))
            }
            ConsentCommand::Withdraw { person, purpose, hub } => {
                let request =
                    WithdrawConsentRequest { person_id: person, purpose: purpose as i32, hub_id: hub };
                render::one(format, &ConsentView::from(node.withdraw_consent(request).await?))
            }
            ConsentCommand::List { person } => {
                let consents = node.consents(person).await?;
                render::list_of::<_, ConsentView>(format, consents)
            }
        },
        Command::Indicators(command) => match command {
            IndicatorsCommand::Import(_) => unreachable_command(),
            IndicatorsCommand::Submit(s) => {
                let fields = IndicatorFields {
                    period: s.period,
                    etp_hundredths: s.etp,
                    employees_in_insertion: s.employees,
                    hours_worked: s.hours,
                    hires: s.hires,
                    exits: Some(Exits {
                        total: s.exits_total,
                        durable: s.exits_durable,
                        transition: s.exits_transition,
                        positive: s.exits_positive,
                        other: s.exits_other,
                    }),
                };
                render::one(format, &IndicatorView::from(node.submit_indicators(fields).await?))
            }
            IndicatorsCommand::List { from, to } => {
                let reports = node.indicators(from, to).await?;
                render::list_of::<_, IndicatorView>(format, reports)
            }
            IndicatorsCommand::Missing => {
                render::list_of::<_, MissingView>(format, node.missing_indicators().await?)
            }
        },
    })
}

async fn introduction_command(
    format: args::Format,
    command: IntroductionCommand,
    node: &mut NodeClient,
) -> Result<std::io::Result<()>, Error> {
    use passerelle_proto::v1::{
        AcceptIntroductionRequest, DeclineIntroductionRequest, RecordIntroductionOutcomeRequest,
    };
    let one = |intro| render::one(format, &IntroductionView::from(intro));
    Ok(match command {
        IntroductionCommand::List { direction, limit } => {
            let direction = match direction {
                args::IntroductionDirection::In => "in",
                args::IntroductionDirection::Out => "out",
            };
            let reply = node.introductions(direction, limit).await?;
            for hub in &reply.unreachable {
                eprintln!("warning: not refreshed: {hub}");
            }
            if reply.more > 0 {
                eprintln!("note: {} older requests not listed (--limit {limit})", reply.more);
            }
            render::list_of::<_, IntroductionView>(format, reply.introductions)
        }
        IntroductionCommand::Accept { id, person, share, text_version, collected_by } => one(node
            .accept_introduction(AcceptIntroductionRequest {
                id,
                person_id: person,
                share: share.into_iter().map(|f| f as i32).collect(),
                text_version,
                collected_by: collected_by.unwrap_or_else(current_user),
            })
            .await?),
        IntroductionCommand::Decline { id, person, reason } => one(node
            .decline_introduction(DeclineIntroductionRequest { id, person_id: person, reason: reason as i32 })
            .await?),
        IntroductionCommand::Withdraw { id, person } => one(node.withdraw_introduction(&id, &person).await?),
        IntroductionCommand::Outcome { id, candidate, outcome } => one(node
            .record_introduction_outcome(RecordIntroductionOutcomeRequest {
                id,
                candidate,
                outcome: outcome as i32,
            })
            .await?),
    })
}

/// `run` dispatches PKI and hub commands before connecting to a node.
fn unreachable_command() -> std::io::Result<()> {
    Err(std::io::Error::other("internal: command dispatched to the wrong handler"))
}

/// Who collected a consent when `--collected-by` is not given: the logged-in user.
fn current_user() -> String {
    std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "passerelle-cli".into())
}

/// After `sync status`: "N months overdue" when there are any — below the table, or on stderr
/// for JSON and CSV so their output stays one document.
fn print_overdue(format: args::Format, months: u32) -> std::io::Result<()> {
    if months == 0 {
        return Ok(());
    }
    let line = format!(
        "{months} month{} overdue (passerelle indicators missing)",
        if months == 1 { "" } else { "s" }
    );
    match format {
        args::Format::Table => writeln!(std::io::stdout().lock(), "\n{line}"),
        args::Format::Json | args::Format::Csv => writeln!(std::io::stderr().lock(), "{line}"),
    }
}
