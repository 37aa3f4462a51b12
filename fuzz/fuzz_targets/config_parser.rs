//! The config parser: TOML, the schema, `${ENV}` interpolation and the checks.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = auditbridge::config::Config::parse(text, "fuzz");
    }
});
