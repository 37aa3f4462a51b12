//! HEC event envelopes, serialized from a closed struct: Splunk silently drops events
//! after an object with an unknown top-level key, so no other key can ever be written.

use serde::Serialize;
use serde_json::value::RawValue;

use super::config::SplunkHecConfig;
use crate::record::{Format, Record};

#[derive(Serialize)]
struct Envelope<'a> {
    /// Epoch seconds with at most 6 decimals, from the event's own time.
    time: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<&'a str>,
    source: &'a str,
    sourcetype: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<Fields<'a>>,
    event: &'a RawValue,
}

#[derive(Serialize)]
struct Fields<'a> {
    auditbridge_format: &'a str,
    auditbridge_dataset: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    mitre_technique: &'a [String],
}

/// One document as an HEC envelope (no trailing newline).
pub fn encode(config: &SplunkHecConfig, record: &Record, format: Format, body: &[u8]) -> Vec<u8> {
    // Bodies are JSON the transform stage serialized; a failure here means a bug, and an
    // empty envelope would be refused by HEC (code 5) and dead-lettered, never dropped.
    let Ok(event) = serde_json::from_slice::<&RawValue>(body) else {
        return Vec::new();
    };
    let micros = record.time.timestamp_micros();
    let sourcetype = config.sourcetype(record.dataset);
    let envelope = Envelope {
        time: micros as f64 / 1_000_000.0,
        host: config.host.as_deref(),
        source: &config.source,
        sourcetype: &sourcetype,
        index: config.index(record.dataset),
        fields: config.indexed_fields.then_some(Fields {
            auditbridge_format: format.as_str(),
            auditbridge_dataset: record.dataset,
            mitre_technique: &record.techniques,
        }),
        event,
    };
    serde_json::to_vec(&envelope).unwrap_or_default()
}
