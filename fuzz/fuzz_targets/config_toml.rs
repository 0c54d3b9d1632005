//! A daemon config file: parsed and validated (every error must carry a line, none may panic).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = std::path::Path::new("/nonexistent/fuzz.toml");
    if let Ok(config) = passerelle_daemon::config::Config::parse(text, path) {
        let _ = config.validate(text, path);
    }
});
