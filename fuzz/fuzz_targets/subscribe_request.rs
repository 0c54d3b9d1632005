//! A `SubscribeRequest`: decoded as a hub does before streaming its view.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passerelle_proto::v1::SubscribeRequest;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let _ = SubscribeRequest::decode(data);
});
