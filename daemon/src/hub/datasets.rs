//! What each dataset is on a hub, in one place: how a change of it is checked, which field of a
//! [`HubRecord`] holds it, and (in `stats/tables.rs`, [`super::stats::Table::of`]) the statistics
//! table it is counted in. A new dataset adds an arm to each `match` here, which the compiler
//! asks for.

use passerelle_proto::datasets::Dataset;
use passerelle_proto::v1::{Change, change};
use passerelle_proto::validate::{self, FieldError};

use super::ingest::HubRecord;
use crate::error::{Error, Result};

/// A member claiming records of another structure.
pub(super) fn impersonation(origin: &str, claimed: &str) -> Error {
    Error::PermissionDenied(format!("node certificate for SIRET {origin} cannot act as SIRET {claimed}"))
}

/// Checks a change's payload (not a tombstone) against its dataset: the payload's kind, its
/// routing key (the origin's SIRET), its key and version against the change's, and its fields.
pub(super) fn check(
    dataset: Dataset,
    payload: &change::Payload,
    change: &Change,
    origin: &str,
) -> Result<()> {
    match (dataset, payload) {
        (Dataset::Needs, change::Payload::Need(need)) => {
            if need.origin_siret != origin {
                return Err(impersonation(origin, &need.origin_siret));
            }
            if need.need_id != change.key || need.origin_version != change.version {
                return Err(FieldError::rule(
                    "need",
                    "need_id and origin_version must match the change's key and version",
                )
                .into());
            }
            // Every field, with the node's rules: a modified node cannot plant free text in a
            // date, an unknown contract or zero positions.
            validate::shared_need(need)?;
        }
        (Dataset::Indicators, change::Payload::Indicators(report)) => {
            if report.siret != origin {
                return Err(impersonation(origin, &report.siret));
            }
            let fields = report.fields.as_ref().ok_or_else(|| FieldError::rule("fields", "is required"))?;
            validate::indicator_fields(fields)?;
            if fields.period != change.key || report.version != change.version {
                return Err(FieldError::rule(
                    "period",
                    "period and version must match the change's key and version",
                )
                .into());
            }
        }
        (Dataset::Profiles, change::Payload::Profile(profile)) => {
            if profile.holding_siret != origin {
                return Err(impersonation(origin, &profile.holding_siret));
            }
            if profile.pseudonym != change.key || profile.origin_version != change.version {
                return Err(FieldError::rule(
                    "profile",
                    "pseudonym and origin_version must match the change's key and version",
                )
                .into());
            }
            validate::anonymized_profile(profile)?;
        }
        (dataset, _) => {
            return Err(FieldError::new(
                "dataset",
                dataset.as_str(),
                "payload does not belong to this dataset",
            )
            .into());
        }
    }
    Ok(())
}

impl HubRecord {
    /// Stores a checked payload in the record's field for its dataset; a tombstone (or nothing)
    /// makes the record a tombstone.
    pub(super) fn set_payload(&mut self, payload: Option<change::Payload>) {
        match payload {
            Some(change::Payload::Need(need)) => self.need = Some(need),
            Some(change::Payload::Indicators(report)) => self.indicators = Some(report),
            Some(change::Payload::Profile(profile)) => self.profile = Some(profile),
            Some(change::Payload::Tombstone(_)) | None => self.deleted = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use passerelle_proto::v1::{ContractType, NeedStatus, SharedNeed};

    use super::*;

    /// A modified node sending a need whose fields the node's own rules refuse gets
    /// `INVALID_ARGUMENT` naming the field.
    #[test]
    fn a_hub_checks_every_field_of_a_need() {
        let siret = "73282932000074";
        let good = SharedNeed {
            origin_siret: siret.into(),
            need_id: "01920000-0000-7000-8000-000000000001".into(),
            origin_version: 1,
            rome_code: "K2204".into(),
            contract_type: ContractType::Cddi as i32,
            open_positions: 2,
            hours_per_week: 24,
            departement: "49".into(),
            start_date: "2026-12-01".into(),
            end_date: None,
            status: NeedStatus::Open as i32,
            updated_at_ms: 1,
        };
        let change_of = |need: &SharedNeed| Change {
            dataset: Dataset::Needs.to_string(),
            key: need.need_id.clone(),
            version: 1,
            payload: Some(change::Payload::Need(need.clone())),
            ..Default::default()
        };
        let run = |need: SharedNeed| {
            let change = change_of(&need);
            let payload = change.payload.clone().expect("payload");
            check(Dataset::Needs, &payload, &change, siret)
        };
        assert!(run(good.clone()).is_ok());
        for (field, need) in [
            ("end_date", SharedNeed { end_date: Some("appeler le 06 12 34 56 78".into()), ..good.clone() }),
            ("contract_type", SharedNeed { contract_type: 42, ..good.clone() }),
            ("open_positions", SharedNeed { open_positions: 0, ..good.clone() }),
        ] {
            let status = tonic::Status::from(run(need).expect_err(field));
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            assert!(status.message().starts_with(field), "{field}: {}", status.message());
        }
    }
}
