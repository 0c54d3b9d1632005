//! The `passerelle` command line: parse, call the node, print.

pub(crate) mod args;
mod render;
mod views;

use args::{Cli, Command, ConsentCommand, IndicatorsCommand, NeedCommand, PersonCommand};
use passerelle_client::{Error, NodeClient};
use passerelle_proto::v1::{
    Exits, GrantConsentRequest, IndicatorFields, NeedFields, PersonFields, WithdrawConsentRequest,
};
use views::{ConsentView, ErasureView, IndicatorView, NeedView, PersonView, StructureView};

/// Runs one command against the node at `cli.endpoint`.
pub(crate) async fn run(cli: Cli) -> Result<(), Error> {
    let format = cli.format;
    let mut node = NodeClient::connect(&cli.endpoint).await?;
    let printed = match cli.command {
        Command::Structure => render::one(format, &StructureView::from(node.structure().await?)),
        Command::Need(command) => match command {
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
                render::list(format, &needs.into_iter().map(NeedView::from).collect::<Vec<_>>())
            }
            NeedCommand::Show { id } => render::one(format, &NeedView::from(node.need(&id).await?)),
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
                render::list(format, &persons.into_iter().map(PersonView::from).collect::<Vec<_>>())
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
                render::list(format, &consents.into_iter().map(ConsentView::from).collect::<Vec<_>>())
            }
        },
        Command::Indicators(command) => match command {
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
                render::list(format, &reports.into_iter().map(IndicatorView::from).collect::<Vec<_>>())
            }
        },
    };
    // A closed pipe (`passerelle need list | head`) is not an error worth reporting.
    if let Err(e) = printed
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("error: writing output: {e}");
    }
    Ok(())
}

/// Who collected a consent when `--collected-by` is not given: the logged-in user.
fn current_user() -> String {
    std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "passerelle-cli".into())
}
