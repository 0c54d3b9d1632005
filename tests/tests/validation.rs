//! Every validation rule, one invalid input each, through gRPC (the raw stub, so the daemon's own
//! checks are what is exercised) and through the CLI (exit 2, field named), and nothing written.

use passerelle_proto::v1::structure_service_client::StructureServiceClient;
use passerelle_proto::v1::{
    AddPersonRequest, Barrier, ConsentPurpose, ContractType, CreateNeedRequest, Exits, GetNeedRequest,
    GrantConsentRequest, IndicatorFields, ListConsentsRequest, ListIndicatorsRequest, ListNeedsRequest,
    ListPersonsRequest, NeedFields, PersonFields, SubmitIndicatorsRequest,
};
use passerelle_tests::{InProcessNode, cli_async, indicators_submit_args, need_add_args, person_add_args};
use tonic::Code;
use tonic::transport::Channel;

fn need() -> NeedFields {
    NeedFields {
        rome_code: "K2204".into(),
        title: "Agent d'entretien".into(),
        contract_type: ContractType::Cddi as i32,
        open_positions: 2,
        hours_per_week: 24,
        departement: "49".into(),
        commune: "49007".into(),
        start_date: "2026-12-01".into(),
        end_date: None,
        client: None,
        description: None,
    }
}

fn person() -> PersonFields {
    PersonFields {
        first_name: "Camille".into(),
        last_name: "Martin".into(),
        birth_date: "1990-04-02".into(),
        commune: "49007".into(),
        rome_codes: vec!["K2204".into()],
        available_from: "2026-12-01".into(),
        ..Default::default()
    }
}

fn indicators() -> IndicatorFields {
    IndicatorFields {
        period: "2026-10".into(),
        etp_hundredths: 1250,
        employees_in_insertion: 20,
        hours_worked: 1700,
        hires: 3,
        exits: Some(Exits { total: 4, durable: 1, transition: 1, positive: 1, other: 1 }),
    }
}

/// (what is broken, the field the message must name, the broken need)
fn bad_needs() -> Vec<(&'static str, &'static str, NeedFields)> {
    vec![
        (
            "rome letter inside",
            "rome_code \"K22A4\": expected a letter A-N followed by 4 digits",
            NeedFields { rome_code: "K22A4".into(), ..need() },
        ),
        ("rome letter out of A-N", "rome_code", NeedFields { rome_code: "Z1234".into(), ..need() }),
        ("empty title", "title", NeedFields { title: "  ".into(), ..need() }),
        ("long title", "title", NeedFields { title: "x".repeat(201), ..need() }),
        ("unspecified contract", "contract_type", NeedFields { contract_type: 0, ..need() }),
        ("unknown contract", "contract_type", NeedFields { contract_type: 99, ..need() }),
        ("zero positions", "open_positions", NeedFields { open_positions: 0, ..need() }),
        ("zero hours", "hours_per_week", NeedFields { hours_per_week: 0, ..need() }),
        ("49 hours", "hours_per_week", NeedFields { hours_per_week: 49, ..need() }),
        (
            "département 20",
            "departement",
            NeedFields { departement: "20".into(), commune: "20004".into(), ..need() },
        ),
        ("malformed commune", "commune", NeedFields { commune: "4900".into(), ..need() }),
        (
            "commune elsewhere",
            "commune \"44109\": commune is in département 44, not in 49",
            NeedFields { commune: "44109".into(), ..need() },
        ),
        ("impossible start", "start_date", NeedFields { start_date: "2026-02-30".into(), ..need() }),
        ("end before start", "end_date", NeedFields { end_date: Some("2026-11-30".into()), ..need() }),
        ("long client", "client", NeedFields { client: Some("x".repeat(201)), ..need() }),
        ("long description", "description", NeedFields { description: Some("é".repeat(2001)), ..need() }),
    ]
}

fn bad_persons() -> Vec<(&'static str, &'static str, PersonFields)> {
    vec![
        ("empty first name", "first_name", PersonFields { first_name: String::new(), ..person() }),
        ("empty last name", "last_name", PersonFields { last_name: " ".into(), ..person() }),
        ("impossible birth date", "birth_date", PersonFields { birth_date: "1990-13-01".into(), ..person() }),
        ("future birth date", "birth_date", PersonFields { birth_date: "2199-01-01".into(), ..person() }),
        ("bad commune", "commune", PersonFields { commune: "ABCDE".into(), ..person() }),
        ("bad phone", "phone", PersonFields { phone: Some("call me".into()), ..person() }),
        ("bad email", "email", PersonFields { email: Some("camille.example.fr".into()), ..person() }),
        ("no rome code", "rome_codes", PersonFields { rome_codes: vec![], ..person() }),
        (
            "six rome codes",
            "rome_codes",
            PersonFields {
                rome_codes: ["A1101", "A1102", "A1103", "A1104", "A1105", "A1106"].map(String::from).to_vec(),
                ..person()
            },
        ),
        (
            "bad rome code",
            "rome_codes[1]",
            PersonFields { rome_codes: vec!["K2204".into(), "K22".into()], ..person() },
        ),
        (
            "duplicate rome code",
            "rome_codes[1]",
            PersonFields { rome_codes: vec!["K2204".into(), "K2204".into()], ..person() },
        ),
        ("bad available_from", "available_from", PersonFields { available_from: "soon".into(), ..person() }),
        ("zero hours", "hours_per_week", PersonFields { hours_per_week: Some(0), ..person() }),
        ("far mobility", "mobility_km", PersonFields { mobility_km: Some(501), ..person() }),
        ("unspecified barrier", "barriers[0]", PersonFields { barriers: vec![0], ..person() }),
        (
            "duplicate barrier",
            "barriers[1]",
            PersonFields { barriers: vec![Barrier::Sante as i32, Barrier::Sante as i32], ..person() },
        ),
        (
            "bad pass iae end",
            "pass_iae_end",
            PersonFields { pass_iae_end: Some("2027-02-29".into()), ..person() },
        ),
    ]
}

fn bad_reports() -> Vec<(&'static str, &'static str, IndicatorFields)> {
    vec![
        ("bad period", "period", IndicatorFields { period: "2026-13".into(), ..indicators() }),
        ("period with day", "period", IndicatorFields { period: "2026-10-01".into(), ..indicators() }),
        ("absurd etp", "etp_hundredths", IndicatorFields { etp_hundredths: 10_000_001, ..indicators() }),
        ("missing exits", "exits", IndicatorFields { exits: None, ..indicators() }),
        (
            "exits do not add up",
            "exits: durable + transition + positive + other must equal total",
            IndicatorFields {
                exits: Some(Exits { total: 5, durable: 1, transition: 1, positive: 1, other: 1 }),
                ..indicators()
            },
        ),
    ]
}

fn assert_invalid(what: &str, field: &str, result: Result<impl std::fmt::Debug, tonic::Status>) {
    match result {
        Err(status) => {
            assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
            assert!(
                status.message().contains(field),
                "{what}: message {:?} does not name {field:?}",
                status.message()
            );
        }
        Ok(reply) => panic!("{what}: accepted: {reply:?}"),
    }
}

async fn assert_nothing_written(client: &mut StructureServiceClient<Channel>) -> anyhow::Result<()> {
    assert!(client.list_needs(ListNeedsRequest::default()).await?.into_inner().needs.is_empty());
    assert!(client.list_persons(ListPersonsRequest {}).await?.into_inner().persons.is_empty());
    assert!(client.list_consents(ListConsentsRequest::default()).await?.into_inner().consents.is_empty());
    assert!(client.list_indicators(ListIndicatorsRequest::default()).await?.into_inner().reports.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_rejects_every_broken_rule_and_writes_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = InProcessNode::start(dir.path()).await?;
    let mut client = StructureServiceClient::connect(node.endpoint.clone()).await?;

    for (what, field, fields) in bad_needs() {
        assert_invalid(what, field, client.create_need(CreateNeedRequest { fields: Some(fields) }).await);
    }
    assert_invalid(
        "need without fields",
        "fields",
        client.create_need(CreateNeedRequest { fields: None }).await,
    );
    for (what, field, fields) in bad_persons() {
        assert_invalid(what, field, client.add_person(AddPersonRequest { fields: Some(fields) }).await);
    }
    for (what, field, fields) in bad_reports() {
        assert_invalid(
            what,
            field,
            client.submit_indicators(SubmitIndicatorsRequest { fields: Some(fields) }).await,
        );
    }
    assert_invalid("malformed id", "id", client.get_need(GetNeedRequest { id: "42".into() }).await);

    let grant = |person_id: &str| GrantConsentRequest {
        person_id: person_id.into(),
        purpose: ConsentPurpose::Placement as i32,
        hub_id: "coorace-pdl".into(),
        text_version: "2026-01".into(),
        collected_by: "accueil".into(),
    };
    let someone = "01920000-0000-7000-8000-000000000000";
    assert_invalid("bad person id", "person_id", client.grant_consent(grant("me")).await);
    assert_invalid(
        "no purpose",
        "purpose",
        client.grant_consent(GrantConsentRequest { purpose: 0, ..grant(someone) }).await,
    );
    assert_invalid(
        "bad hub id",
        "hub_id",
        client.grant_consent(GrantConsentRequest { hub_id: "Coorace PDL".into(), ..grant(someone) }).await,
    );
    assert_invalid(
        "no text version",
        "text_version",
        client.grant_consent(GrantConsentRequest { text_version: String::new(), ..grant(someone) }).await,
    );
    let missing = client.grant_consent(grant(someone)).await.expect_err("unknown person");
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");

    assert_nothing_written(&mut client).await?;
    node.stop().await
}

/// Every rule a CLI user can break, with the CLI flags of a valid command changed one at a time.
#[tokio::test(flavor = "multi_thread")]
async fn cli_exits_2_naming_the_field_and_writes_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = InProcessNode::start(dir.path()).await?;

    let with = |base: Vec<&'static str>, flag: &'static str, value: &'static str| {
        let mut args = base;
        match args.iter().position(|a| *a == flag) {
            Some(i) => args[i + 1] = value,
            None => args.extend([flag, value]),
        }
        args
    };
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            with(need_add_args(), "--rome", "K22A4"),
            "rome_code \"K22A4\": expected a letter A-N followed by 4 digits",
        ),
        (with(need_add_args(), "--title", ""), "title"),
        (with(need_add_args(), "--contract", "cdi"), "--contract"),
        (with(need_add_args(), "--positions", "0"), "open_positions"),
        (with(need_add_args(), "--hours", "49"), "hours_per_week"),
        (with(need_add_args(), "--departement", "20"), "departement"),
        (
            with(need_add_args(), "--commune", "44109"),
            "commune \"44109\": commune is in département 44, not in 49",
        ),
        (with(need_add_args(), "--start", "2026-02-30"), "start_date"),
        (with(need_add_args(), "--end", "2026-01-01"), "end_date"),
        (with(need_add_args(), "--description", Box::leak("d".repeat(2001).into_boxed_str())), "description"),
        (with(person_add_args(), "--first-name", ""), "first_name"),
        (with(person_add_args(), "--birth-date", "2199-01-01"), "birth_date"),
        (with(person_add_args(), "--commune", "00000"), "commune"),
        (with(person_add_args(), "--rome", "K2204,K2204"), "rome_codes[1]"),
        (with(person_add_args(), "--rome", "A1101,A1102,A1103,A1104,A1105,A1106"), "rome_codes"),
        (with(person_add_args(), "--email", "nobody"), "email"),
        (with(person_add_args(), "--phone", "12"), "phone"),
        (with(person_add_args(), "--barriers", "sante,mobilité"), "--barriers"),
        (with(person_add_args(), "--mobility-km", "900"), "mobility_km"),
        (with(indicators_submit_args("2026-10"), "--period", "2026-1"), "period"),
        (with(indicators_submit_args("2026-10"), "--etp", "12.555"), "--etp"),
        (with(indicators_submit_args("2026-10"), "--exits-total", "9"), "exits"),
        (
            with(indicators_submit_args("2026-10"), "--hours", "9223372036854775000"),
            "hours_worked \"9223372036854775000\": must be between 0 and 2210000",
        ),
        (with(indicators_submit_args("2026-10"), "--employees", "4000000000"), "employees_in_insertion"),
        (
            vec![
                "consent",
                "grant",
                "--person",
                "nobody",
                "--purpose",
                "placement",
                "--hub",
                "coorace-pdl",
                "--text-version",
                "v1",
            ],
            "person_id",
        ),
        (
            vec![
                "consent",
                "grant",
                "--person",
                "01920000-0000-7000-8000-000000000000",
                "--purpose",
                "placement",
                "--hub",
                "Coorace",
                "--text-version",
                "v1",
            ],
            "hub_id",
        ),
        (
            vec![
                "consent",
                "grant",
                "--person",
                "01920000-0000-7000-8000-000000000000",
                "--purpose",
                "everything",
                "--hub",
                "coorace-pdl",
                "--text-version",
                "v1",
            ],
            "--purpose",
        ),
        (vec!["need", "show", "42"], "id"),
        (vec!["need", "close", "01920000-0000-7000-8000-000000000000", "--status", "open"], "status"),
        (vec!["indicators", "list", "--from", "2026-10", "--to", "2026-09"], "to"),
    ];
    for (args, field) in cases {
        let out = cli_async(&node.endpoint, &args).await;
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(out.stderr.contains(field), "{args:?}: stderr {:?} does not name {field:?}", out.stderr);
        assert!(out.stdout.is_empty(), "{args:?}: printed {:?}", out.stdout);
    }

    let mut client = StructureServiceClient::connect(node.endpoint.clone()).await?;
    assert_nothing_written(&mut client).await?;
    node.stop().await
}
