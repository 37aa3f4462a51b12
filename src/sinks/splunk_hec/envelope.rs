//! HEC event envelopes, serialized from a closed struct: Splunk silently drops events
//! after an object with an unknown top-level key, so no other key can ever be written.

use serde::Serialize;

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
}

#[derive(Serialize)]
struct Fields<'a> {
    auditbridge_format: &'a str,
    auditbridge_dataset: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    mitre_technique: &'a [String],
}

/// One document as an HEC envelope (no trailing newline).
///
/// `body` is JSON the transform stage wrote: it is spliced in as `event`, last, rather
/// than parsed again to be embedded, which cost as much as writing it.
pub fn encode(config: &SplunkHecConfig, record: &Record, format: Format, body: &[u8]) -> Vec<u8> {
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
    };
    // A struct of strings and a number always serializes, to an object with `time`
    // first; an empty envelope would be refused by HEC (code 5) and dead-lettered.
    let Ok(mut out) = serde_json::to_vec(&envelope) else {
        return Vec::new();
    };
    out.reserve(body.len() + 10);
    out.pop();
    out.extend_from_slice(b",\"event\":");
    out.extend_from_slice(body);
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::event::{Origin, Provider};

    #[test]
    fn the_document_is_the_last_key_and_nothing_else_is_added() {
        let config: SplunkHecConfig =
            toml::from_str("endpoint = \"http://127.0.0.1:1\"\nindexed_fields = true").unwrap();
        let record = Record {
            id: "e-1".into(),
            provider: Provider::Aws,
            dataset: "aws.cloudtrail",
            account: None,
            time: chrono::DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap(),
            techniques: vec!["T1098.001".into()],
            origin: Arc::new(Origin::Inline {
                name: "test".into(),
            }),
            outputs: Vec::new(),
        };
        let body = br#"{"event":{"action":"CreateAccessKey"},"tags":["a\"b"]}"#;
        let text = encode(&config, &record, Format::Ecs, body);
        assert!(text.ends_with(&[br#","event":"#.as_slice(), body, b"}"].concat()));
        let value: serde_json::Value = serde_json::from_slice(&text).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["event", "fields", "source", "sourcetype", "time"]);
        assert_eq!(value["time"], 1_700_000_000.123456);
        assert_eq!(value["event"]["tags"][0], "a\"b");
        assert_eq!(value["fields"]["mitre_technique"][0], "T1098.001");
    }
}
