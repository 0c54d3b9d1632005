//! What each dataset is on a hub, in one place: how a change of it is checked, which field of a
//! [`HubRecord`] holds it, and (in `stats/tables.rs`, [`super::stats::Table::of`]) the statistics
//! table it is counted in. A new dataset adds an arm to each `match` here, which the compiler
//! asks for.

use passerelle_proto::datasets::Dataset;
use passerelle_proto::v1::{Change, NeedStatus, change};
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
            validate::record_id("need_id", &need.need_id)?;
            validate::rome_code("rome_code", &need.rome_code)?;
            validate::departement("departement", &need.departement)?;
            validate::date("start_date", &need.start_date)?;
            validate::code::<NeedStatus>("status", need.status)?;
        }
        (Dataset::Indicators, change::Payload::Indicators(report)) => {
            if report.siret != origin {
                return Err(impersonation(origin, &report.siret));
            }
            let fields = report.fields.as_ref().ok_or_else(|| FieldError::rule("fields", "is required"))?;
            validate::indicator_fields(fields)?;
            if fields.period != change.key || report.version != change.version {
                return Err(FieldError::rule(
                    "indicators",
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
