//! The Entra ID decoder and both normalizers on any JSON object made to look like an
//! Entra diagnostic record.
#![no_main]
use libfuzzer_sys::fuzz_target;

include!("shared.rs");

fuzz_target!(|data: &[u8]| {
    decode_as(data, |map| {
        map.remove("eventName");
        map.remove("eventSource");
        map.remove("detail-type");
        map.entry("category")
            .or_insert(Value::String("AuditLogs".into()));
        map.entry("operationName")
            .or_insert(Value::String("Add member to role".into()));
    });
});
