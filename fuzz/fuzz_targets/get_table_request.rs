//! A `GetTableRequest` from a consumer: decoded, then its table, dimensions and period parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passerelle_proto::v1::GetTableRequest;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = GetTableRequest::decode(data) {
        let _ = passerelle_daemon::hub::stats::check_table_request(&request);
    }
});
