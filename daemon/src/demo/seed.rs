//! Fills the structures' nodes through their own API, as a structure's staff would: needs,
//! persons with their consents, and twelve monthly indicator reports.

use passerelle_client::NodeClient;
use passerelle_proto::date::Date;
use passerelle_proto::v1::{ConsentPurpose, GrantConsentRequest};

use super::cast::{Cast, STRUCTURES, last_twelve_months};
use super::federation::Federation;

/// The consent text version the demo's structures show.
pub(crate) const CONSENT_TEXT: &str = "demo-2026-01";

/// What was written.
#[derive(Debug, Default)]
pub(crate) struct Seeded {
    pub(crate) needs: usize,
    pub(crate) persons: usize,
    pub(crate) consents: usize,
    pub(crate) reports: usize,
}

/// Writes the cast's records into every node.
pub(crate) async fn seed(federation: &Federation, today: Date) -> anyhow::Result<Seeded> {
    let mut seeded = Seeded::default();
    for (cast, node) in STRUCTURES.iter().zip(&federation.nodes) {
        let mut client = NodeClient::connect(&node.api, None).await?;
        for need in cast.needs {
            client.create_need(cast.need(need, today)).await?;
            seeded.needs += 1;
        }
        for person in cast.persons {
            let created = client.add_person(Cast::person(person, today)).await?;
            seeded.persons += 1;
            let consents_to_placement = person.6;
            let purposes: &[ConsentPurpose] = if consents_to_placement {
                &[ConsentPurpose::Placement, ConsentPurpose::Statistics]
            } else {
                &[ConsentPurpose::Statistics]
            };
            for hub in cast.hubs {
                for purpose in purposes {
                    client.grant_consent(grant(&created.id, *purpose, hub)).await?;
                    seeded.consents += 1;
                }
            }
        }
        for month in last_twelve_months(today) {
            client.submit_indicators(cast.report(month)).await?;
            seeded.reports += 1;
        }
    }
    Ok(seeded)
}

/// A consent collected by the structure's staff.
pub(crate) fn grant(person_id: &str, purpose: ConsentPurpose, hub: &str) -> GrantConsentRequest {
    GrantConsentRequest {
        person_id: person_id.into(),
        purpose: purpose as i32,
        hub_id: hub.into(),
        text_version: CONSENT_TEXT.into(),
        collected_by: "conseillère en insertion".into(),
    }
}
