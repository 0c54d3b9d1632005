//! A `PushMessage` as a member or a relaying hub may send it: decoded, then every payload run
//! through the checks a hub applies before anything is written.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passerelle_proto::v1::{PushMessage, change, push_message};
use passerelle_proto::validate;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = PushMessage::decode(data) else { return };
    match message.kind {
        Some(push_message::Kind::Open(open)) => {
            if let Some(structure) = &open.structure {
                let _ = validate::structure(structure);
            }
            for dataset in &open.datasets {
                let _ = dataset.parse::<passerelle_proto::datasets::Dataset>();
            }
        }
        Some(push_message::Kind::Batch(batch)) => {
            for c in &batch.changes {
                let _ = c.dataset.parse::<passerelle_proto::datasets::Dataset>();
                match &c.payload {
                    Some(change::Payload::Need(need)) => {
                        let _ = validate::shared_need(need);
                    }
                    Some(change::Payload::Indicators(report)) => {
                        if let Some(fields) = &report.fields {
                            let _ = validate::indicator_fields(fields);
                        }
                    }
                    Some(change::Payload::Profile(profile)) => {
                        let _ = validate::anonymized_profile(profile);
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
});
