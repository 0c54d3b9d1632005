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

/// A person who turns 26 in five days ("under 26" today, "26-49" then), whose profile the hub
/// `coorace-pdl` has acknowledged today.
fn shared_person_turning_26(node: &Node, today: passerelle_proto::date::Date) -> String {
    use passerelle_proto::date::Date;
    use passerelle_proto::v1::AgeBand;

    use super::profiles::ProfileEffect;

    let in_five_days = Date::from_days_since_epoch(today.days_since_epoch() + 5);
    let day = if in_five_days.month == 2 && in_five_days.day == 29 { 28 } else { in_five_days.day };
    let birth = Date { year: in_five_days.year - 26, month: in_five_days.month, day };
    let mut fields = person();
    fields.birth_date = birth.to_string();
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
        matches!(&effect, ProfileEffect::Shared { age_band, .. } if *age_band == AgeBand::Under26 as i32)
    );
    node.record_profile_acks("coorace-pdl", &[effect]).expect("ack");
    person.id
}

#[test]
fn a_birthday_that_moves_an_age_band_resends_the_profile() {
    use passerelle_proto::date::Date;

    let dir = tempfile::tempdir().expect("tempdir");
    let node = node(dir.path());
    let today = Date::today();
    shared_person_turning_26(&node, today);

    let head = node.head_seq();
    assert_eq!(node.refresh_age_bands_on(today).expect("refresh"), 0, "nothing moved today");
    assert_eq!(
        node.refresh_age_bands_on(Date::from_days_since_epoch(today.days_since_epoch() + 4))
            .expect("refresh"),
        0
    );
    assert_eq!(node.head_seq(), head, "no change logged");
    let on_birthday = Date::from_days_since_epoch(today.days_since_epoch() + 5);
    assert_eq!(node.refresh_age_bands_on(on_birthday).expect("refresh"), 1, "the birthday moves her band");
    assert_eq!(node.head_seq(), head + 1, "one profile change logged for sync, in one commit");
    let pending = node.outbox_after(head, 10).expect("outbox");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].1.dataset, passerelle_proto::datasets::Dataset::Profiles);
}

/// Several birthdays on one day: each person gets an outbox entry of their own (they once shared
/// one sequence number, so only the last person's profile was resent).
#[test]
fn several_birthdays_on_one_day_resend_every_profile() {
    use passerelle_proto::date::Date;

    let dir = tempfile::tempdir().expect("tempdir");
    let node = node(dir.path());
    let today = Date::today();
    let mut ids = vec![shared_person_turning_26(&node, today), shared_person_turning_26(&node, today)];
    let head = node.head_seq();
    let on_birthday = Date::from_days_since_epoch(today.days_since_epoch() + 5);
    assert_eq!(node.refresh_age_bands_on(on_birthday).expect("refresh"), 2);
    assert_eq!(node.head_seq(), head + 2);
    let mut logged: Vec<String> =
        node.outbox_after(head, 10).expect("outbox").into_iter().map(|(_, e)| e.key).collect();
    logged.sort();
    ids.sort();
    assert_eq!(logged, ids, "one entry per person");
    assert_eq!(node.pending_after(head), 2);
}
