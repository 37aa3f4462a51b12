//! The CloudTrail decoder and both normalizers on any JSON object made to look like a
//! CloudTrail record.
#![no_main]
use libfuzzer_sys::fuzz_target;

include!("shared.rs");

fuzz_target!(|data: &[u8]| {
    decode_as(data, |map| {
        map.entry("eventName")
            .or_insert(Value::String("CreateUser".into()));
        map.entry("eventSource")
            .or_insert(Value::String("iam.amazonaws.com".into()));
    });
});
