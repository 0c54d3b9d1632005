//! Records shared by the sync tests and benchmarks.

use passerelle_proto::v1::{ContractType, Exits, IndicatorFields, NeedFields};

/// The `i`-th of a family of valid needs in Angers (49), with local-only fields filled in.
pub fn need(i: usize) -> NeedFields {
    NeedFields {
        rome_code: format!("K{:04}", 2000 + i % 500),
        title: format!("Agent polyvalent {i}"),
        contract_type: ContractType::Cddi as i32,
        open_positions: 1 + (i % 3) as u32,
        hours_per_week: 20 + (i % 15) as u32,
        departement: "49".into(),
        commune: "49007".into(),
        start_date: "2027-01-04".into(),
        end_date: Some("2027-06-30".into()),
        client: Some("Client local".into()),
        description: Some("Description locale qui ne quitte pas le nœud".into()),
    }
}

/// A valid monthly report whose exits add up.
pub fn report(period: &str) -> IndicatorFields {
    IndicatorFields {
        period: period.into(),
        etp_hundredths: 1250,
        employees_in_insertion: 20,
        hours_worked: 1700,
        hires: 3,
        exits: Some(Exits { total: 4, durable: 1, transition: 1, positive: 1, other: 1 }),
    }
}
