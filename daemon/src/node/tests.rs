//! Domain rules that need state: versions, closing, consents in force, erasure.

use passerelle_proto::v1::{
    ConsentPurpose, ContractType, Exits, GrantConsentRequest, IndicatorFields, NeedFields, NeedStatus,
    PersonFields, Structure, StructureKind,
};

use super::Node;
use crate::error::Error;

fn node(dir: &std::path::Path) -> Node {
    let structure = Structure {
        siret: "73282932000074".into(),
        kind: StructureKind::Ai as i32,
        name: "Tremplin Travail".into(),
        departement: "49".into(),
    };
    Node::open(dir, structure).expect("open node")
}

fn need() -> NeedFields {
    NeedFields {
        rome_code: "K2204".into(),
        title: "Agent d'entretien".into(),
        contract_type: ContractType::MiseADisposition as i32,
        open_positions: 2,
        hours_per_week: 24,
        departement: "49".into(),
        commune: "49007".into(),
        start_date: "2026-12-01".into(),
        end_date: None,
        client: Some(String::new()),
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

#[test]
fn need_versions_and_closing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = node(dir.path());
    let created = node.create_need(Some(need()))?;
    assert_eq!(created.version, 1);
    assert_eq!(created.fields.as_ref().and_then(|f| f.client.clone()), None, "empty client is absent");

    let err = node.update_need(&created.id, Some(need()), Some(7)).expect_err("stale version");
    assert!(matches!(err, Error::VersionConflict { actual: 1, .. }));
    let updated = node.update_need(&created.id, Some(NeedFields { open_positions: 3, ..need() }), Some(1))?;
    assert_eq!(updated.version, 2);

    let closed = node.close_need(&created.id, NeedStatus::Filled as i32)?;
    assert_eq!((closed.status, closed.version), (NeedStatus::Filled as i32, 3));
    assert_eq!(node.close_need(&created.id, NeedStatus::Filled as i32)?.version, 3, "idempotent");
    assert!(matches!(
        node.close_need(&created.id, NeedStatus::Cancelled as i32),
        Err(Error::FailedPrecondition(_))
    ));
    assert!(matches!(node.close_need(&created.id, NeedStatus::Open as i32), Err(Error::Invalid(_))));

    assert_eq!(node.list_needs(NeedStatus::Open as i32)?.len(), 0);
    assert_eq!(node.list_needs(0)?.len(), 1);
    Ok(())
}

#[test]
fn one_consent_in_force_per_person_purpose_hub() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = node(dir.path());
    let p = node.add_person(Some(person()))?;
    let grant = |purpose: ConsentPurpose, hub: &str| GrantConsentRequest {
        person_id: p.id.clone(),
        purpose: purpose as i32,
        hub_id: hub.into(),
        text_version: "2026-01".into(),
        collected_by: "accueil".into(),
    };
    node.grant_consent(grant(ConsentPurpose::Placement, "coorace-pdl"))?;
    node.grant_consent(grant(ConsentPurpose::Placement, "fas-pdl"))?;
    node.grant_consent(grant(ConsentPurpose::Statistics, "coorace-pdl"))?;
    let dup = node.grant_consent(grant(ConsentPurpose::Placement, "coorace-pdl")).expect_err("in force");
    assert!(matches!(dup, Error::AlreadyExists(_)), "{dup}");

    let withdrawn = node.withdraw_consent(&p.id, ConsentPurpose::Placement as i32, "coorace-pdl")?;
    assert!(withdrawn.withdrawn_at_ms.is_some());
    assert!(matches!(
        node.withdraw_consent(&p.id, ConsentPurpose::Placement as i32, "coorace-pdl"),
        Err(Error::NotFound { .. })
    ));
    node.grant_consent(grant(ConsentPurpose::Placement, "coorace-pdl"))?;
    assert_eq!(node.list_consents(Some(&p.id))?.len(), 4, "withdrawn record kept, regrant is new");

    let unknown = uuid::Uuid::now_v7().to_string();
    let err = node
        .grant_consent(GrantConsentRequest {
            person_id: unknown,
            ..grant(ConsentPurpose::Placement, "x-hub")
        })
        .expect_err("no such person");
    assert!(matches!(err, Error::NotFound { what: "person", .. }));
    Ok(())
}

#[test]
fn erasing_a_person_withdraws_consents_and_keeps_the_proof() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = node(dir.path());
    let p = node.add_person(Some(person()))?;
    node.grant_consent(GrantConsentRequest {
        person_id: p.id.clone(),
        purpose: ConsentPurpose::Placement as i32,
        hub_id: "coorace-pdl".into(),
        text_version: "v1".into(),
        collected_by: String::new(),
    })?;
    let withdrawn = node.delete_person(&p.id)?;
    assert_eq!(withdrawn.len(), 1);
    assert!(matches!(node.get_person(&p.id), Err(Error::NotFound { .. })));
    let kept = node.list_consents(Some(&p.id))?;
    assert_eq!(kept.len(), 1);
    assert!(kept[0].withdrawn_at_ms.is_some());
    assert!(matches!(node.delete_person(&p.id), Err(Error::NotFound { .. })));
    Ok(())
}

#[test]
fn indicator_resubmission_replaces_and_ranges_filter() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = node(dir.path());
    let report = |period: &str, hires: u32| IndicatorFields {
        period: period.into(),
        etp_hundredths: 1250,
        employees_in_insertion: 20,
        hours_worked: 1700,
        hires,
        exits: Some(Exits { total: 4, durable: 1, transition: 1, positive: 1, other: 1 }),
    };
    node.submit_indicators(Some(report("2026-09", 1)))?;
    node.submit_indicators(Some(report("2026-10", 2)))?;
    let again = node.submit_indicators(Some(report("2026-09", 5)))?;
    assert_eq!(again.version, 2);
    let all = node.list_indicators(None, None)?;
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].fields.as_ref().map(|f| f.hires), Some(5));
    assert_eq!(node.list_indicators(Some("2026-10"), Some("2026-10"))?.len(), 1);
    assert_eq!(node.list_indicators(None, Some("2026-09"))?.len(), 1);
    assert!(matches!(node.list_indicators(Some("2026-10"), Some("2026-09")), Err(Error::Invalid(_))));
    Ok(())
}

#[test]
fn an_import_is_bounded_and_its_refusal_lists_rows_then_counts_the_rest() {
    use passerelle_proto::v1::NeedRow;
    use passerelle_proto::validate::MAX_IMPORT_ROWS;
    let dir = tempfile::tempdir().expect("tempdir");
    let node = node(dir.path());
    let too_many = vec![NeedRow::default(); MAX_IMPORT_ROWS + 1];
    let err = node.import_needs(too_many).expect_err("too many rows");
    assert_eq!(
        err.to_string(),
        format!("rows: at most {MAX_IMPORT_ROWS} rows per import, got {}", MAX_IMPORT_ROWS + 1)
    );

    // 60 bad rows among good ones: the message names the first 50 and counts the other 10.
    let rows: Vec<NeedRow> =
        (0..120).map(|i| NeedRow { line: i + 2, fields: (i % 2 == 0).then(need) }).collect();
    let err = node.import_needs(rows).expect_err("bad rows");
    let text = err.to_string();
    assert!(
        text.starts_with("60 invalid row(s), nothing imported; line 3: fields: is required; line 5:"),
        "{text}"
    );
    assert_eq!(text.matches("fields: is required").count(), 50, "{text}");
    assert!(text.ends_with("; and 10 more"), "{text}");
    assert!(matches!(err, Error::InvalidRows(ref rows) if rows.len() == 60));
    assert!(node.list_needs(0).expect("list").is_empty(), "nothing written");
}

/// The first day of the month `n` months after `day`'s.
fn first_of_month_after(day: passerelle_proto::date::Date, n: i32) -> passerelle_proto::date::Date {
    let months = day.year * 12 + i32::from(day.month) - 1 + n;
    passerelle_proto::date::Date {
        year: months.div_euclid(12),
        month: (months.rem_euclid(12) + 1) as u8,
        day: 1,
    }
}

/// A person born on `birth` whose PASS IAE ends on `pass_end`, whose profile the hub
/// `coorace-pdl` has acknowledged today with `band` and a valid PASS.
fn shared_person(
    node: &Node,
    birth: passerelle_proto::date::Date,
    pass_end: passerelle_proto::date::Date,
    band: passerelle_proto::v1::AgeBand,
) -> String {
    use super::profiles::ProfileEffect;

    let mut fields = person();
    fields.birth_date = birth.to_string();
    fields.pass_iae_end = Some(pass_end.to_string());
    let person = node.add_person(Some(fields)).expect("person");
    node.grant_consent(GrantConsentRequest {
        person_id: person.id.clone(),
        purpose: ConsentPurpose::Placement as i32,
        hub_id: "coorace-pdl".into(),
        text_version: "v1".into(),
        collected_by: "test".into(),
    })
    .expect("consent");
    let (_, effect) = node.profile_change(&person.id, "coorace-pdl").expect("change").expect("shared");
    assert!(
        matches!(&effect, ProfileEffect::Shared { age_band, pass_iae_valid: true, .. } if *age_band == band as i32),
        "{effect:?}"
    );
    node.record_profile_acks("coorace-pdl", &[effect]).expect("ack");
    person.id
}

/// A person who turns 26 on `day` of next month, shared and acknowledged today as under 26.
fn shared_person_turning_26_next_month(node: &Node, today: passerelle_proto::date::Date, day: u8) -> String {
    use passerelle_proto::date::Date;
    use passerelle_proto::v1::AgeBand;

    let next = first_of_month_after(today, 1);
    let birth = Date { year: next.year - 26, month: next.month, day };
    shared_person(node, birth, Date { year: today.year + 2, ..next }, AgeBand::Under26)
}

/// A birthday in the middle of a month moves no profile on that day nor on any other day of the
/// month (bands are as of the first of the month): the hub's receive time would give the birth
/// date. The move comes on the first of the next month.
#[test]
fn a_birthday_mid_month_moves_no_profile_until_the_first_of_the_next_month() {
    use passerelle_proto::date::Date;

    let dir = tempfile::tempdir().expect("tempdir");
    let node = node(dir.path());
    let today = Date::today();
    shared_person_turning_26_next_month(&node, today, 15);

    let head = node.head_seq();
    let after_next = first_of_month_after(today, 2);
    for day in today.days_since_epoch()..after_next.days_since_epoch() {
        let on = Date::from_days_since_epoch(day);
        assert_eq!(node.refresh_age_bands_on(on).expect("refresh"), 0, "nothing moves on {on}");
    }
    assert_eq!(node.head_seq(), head, "no change logged");
    assert_eq!(node.refresh_age_bands_on(after_next).expect("refresh"), 1, "the first of the next month");
    assert_eq!(node.head_seq(), head + 1, "one profile change logged for sync, in one commit");
    let pending = node.outbox_after(head, 10).expect("outbox");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].1.dataset, passerelle_proto::datasets::Dataset::Profiles);
}

/// Several birthdays in one month move together on the first of the next, each person with an
/// outbox entry of their own (they once shared one sequence number, so only the last person's
/// profile was resent).
#[test]
fn birthdays_of_one_month_move_in_one_batch() {
    use passerelle_proto::date::Date;

    let dir = tempfile::tempdir().expect("tempdir");
    let node = node(dir.path());
    let today = Date::today();
    let mut ids = vec![
        shared_person_turning_26_next_month(&node, today, 3),
        shared_person_turning_26_next_month(&node, today, 20),
    ];
    let head = node.head_seq();
    let next = first_of_month_after(today, 1);
    assert_eq!(node.refresh_age_bands_on(Date { day: 21, ..next }).expect("refresh"), 0);
    assert_eq!(node.refresh_age_bands_on(first_of_month_after(today, 2)).expect("refresh"), 2);
    assert_eq!(node.head_seq(), head + 2);
    let mut logged: Vec<String> =
        node.outbox_after(head, 10).expect("outbox").into_iter().map(|(_, e)| e.key).collect();
    logged.sort();
    ids.sort();
    assert_eq!(logged, ids, "one entry per person");
    assert_eq!(node.pending_after(head), 2);
}

/// A PASS IAE that ends mid-month is valid, as sent, until the first of the next month, when the
/// profile moves.
#[test]
fn a_pass_iae_ending_mid_month_moves_the_profile_on_the_first_of_the_next() {
    use passerelle_proto::date::Date;
    use passerelle_proto::v1::AgeBand;

    let dir = tempfile::tempdir().expect("tempdir");
    let node = node(dir.path());
    let today = Date::today();
    let next = first_of_month_after(today, 1);
    shared_person(
        &node,
        Date { year: 1990, month: 4, day: 2 },
        Date { day: 10, ..next },
        AgeBand::AgeBand2649,
    );
    let head = node.head_seq();
    assert_eq!(node.refresh_age_bands_on(Date { day: 11, ..next }).expect("refresh"), 0, "lapsed mid-month");
    assert_eq!(node.head_seq(), head);
    assert_eq!(node.refresh_age_bands_on(first_of_month_after(today, 2)).expect("refresh"), 1);
    assert_eq!(node.head_seq(), head + 1);
}

/// A full resend pairs each profile change with the effect of the *same* projection: a profile
/// sent is a `Shared` effect (so it is marked in flight before it leaves), a tombstone a
/// `Purged` one. Before, the effects were worked out by projecting again, and a consent
/// withdrawn in between sent a profile with no `Shared` effect: never marked in flight, no
/// tombstone at the withdrawal, kept by the hub (the grant-then-withdraw race test, under load).
#[test]
fn a_full_resend_pairs_each_profile_with_its_own_effect() {
    use super::profiles::ProfileEffect;
    use passerelle_proto::v1::change;

    let dir = tempfile::tempdir().expect("tempdir");
    let node = node(dir.path());
    let birth = passerelle_proto::date::Date { year: 1990, month: 4, day: 2 };
    let pass_end = passerelle_proto::date::Date { year: 2099, month: 1, day: 1 };
    let shared = shared_person(&node, birth, pass_end, passerelle_proto::v1::AgeBand::AgeBand2649);
    let withdrawn = shared_person(&node, birth, pass_end, passerelle_proto::v1::AgeBand::AgeBand2649);
    node.withdraw_consent(&withdrawn, ConsentPurpose::Placement as i32, "coorace-pdl").expect("withdraw");
    let changes = node.snapshot_with_effects("profiles", "coorace-pdl").expect("snapshot");
    assert_eq!(changes.len(), 2, "{changes:?}");
    for (change, effect) in &changes {
        let person = if change.key == node.pseudonym("coorace-pdl", &shared).expect("pseudonym") {
            &shared
        } else {
            &withdrawn
        };
        match (&change.payload, effect) {
            (Some(change::Payload::Profile(_)), Some(ProfileEffect::Shared { person_id, .. }))
            | (Some(change::Payload::Tombstone(_)), Some(ProfileEffect::Purged { person_id })) => {
                assert_eq!(person_id, person, "an effect names the person of its own change");
            }
            other => panic!("a profile change without its own effect: {other:?}"),
        }
    }
    assert!(
        changes.iter().any(|(c, _)| matches!(c.payload, Some(change::Payload::Tombstone(_)))),
        "the withdrawn person's profile is a tombstone"
    );
}
