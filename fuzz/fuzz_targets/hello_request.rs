//! A `HelloRequest`: decoded, then the structure it describes validated as a hub does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passerelle_proto::v1::HelloRequest;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(hello) = HelloRequest::decode(data) {
        if let Some(structure) = &hello.structure {
            let _ = passerelle_proto::validate::structure(structure);
        }
    }
});
