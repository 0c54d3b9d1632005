//! A spreadsheet's CSV export, as `need import` and `indicators import` read it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = passerelle_client::import::needs(data);
    let _ = passerelle_client::import::indicators(data);
});
