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

/// Indexed fields: flat strings and lists of strings, as HEC requires.
#[derive(Serialize)]
struct Fields<'a> {
    auditbridge_format: &'a str,
    auditbridge_dataset: &'a str,
    auditbridge_tagged: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    mitre_technique: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    auditbridge_rule: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    auditbridge_key_age_days: Option<String>,
}

/// One document as an HEC envelope (no trailing newline).
///
/// `body` is JSON the transform stage wrote: it is spliced in as `event`, last, rather
/// than parsed again to be embedded, which cost as much as writing it.
pub fn encode(config: &SplunkHecConfig, record: &Record, format: Format, body: &[u8]) -> Vec<u8> {
    let micros = record.time.timestamp_micros();
    let tagged = !record.techniques.is_empty();
    let envelope = Envelope {
        time: micros as f64 / 1_000_000.0,
        host: config.host.as_deref(),
        source: &config.source,
        sourcetype: config.sourcetype(format, record.dataset),
        index: config.index(record.dataset),
        fields: (format == Format::Raw || config.indexed_fields).then(|| Fields {
            auditbridge_format: format.as_str(),
            auditbridge_dataset: record.dataset,
            auditbridge_tagged: if tagged { "true" } else { "false" },
            mitre_technique: &record.techniques,
            auditbridge_rule: &record.rules,
            auditbridge_key_age_days: record.key_age_days.map(|d| d.to_string()),
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

    fn record() -> Record {
        Record {
            id: "e-1".into(),
            provider: Provider::Aws,
            dataset: "aws.cloudtrail",
            account: None,
            time: chrono::DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap(),
            techniques: vec!["T1098.001".into()],
            rules: vec!["aws-iam-create-access-key".into()],
            key_age_days: Some(412),
            origin: Arc::new(Origin::Inline {
                name: "test".into(),
            }),
            outputs: Vec::new(),
        }
    }

    fn parsed(text: &[u8]) -> serde_json::Value {
        serde_json::from_slice(text).unwrap()
    }

    #[test]
    fn the_document_is_the_last_key_and_nothing_else_is_added() {
        let config: SplunkHecConfig =
            toml::from_str("endpoint = \"http://127.0.0.1:1\"\nindexed_fields = true").unwrap();
        let body = br#"{"event":{"action":"CreateAccessKey"},"tags":["a\"b"]}"#;
        let text = encode(&config, &record(), Format::Ecs, body);
        assert!(text.ends_with(&[br#","event":"#.as_slice(), body, b"}"].concat()));
        let value = parsed(&text);
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["event", "fields", "source", "sourcetype", "time"]);
        assert_eq!(value["time"], 1_700_000_000.123456);
        assert_eq!(value["sourcetype"], "auditbridge:ecs");
        assert_eq!(value["event"]["tags"][0], "a\"b");
        assert_eq!(value["fields"]["mitre_technique"][0], "T1098.001");
    }

    #[test]
    fn a_raw_event_goes_under_the_vendor_sourcetype_with_its_enrichment_as_fields() {
        let config: SplunkHecConfig = toml::from_str("endpoint = \"http://127.0.0.1:1\"").unwrap();
        let body = br#"{"eventName":"CreateAccessKey"}"#;
        let value = parsed(&encode(&config, &record(), Format::Raw, body));
        assert_eq!(value["sourcetype"], "aws:cloudtrail");
        assert_eq!(value["event"]["eventName"], "CreateAccessKey");
        assert_eq!(
            value["fields"],
            serde_json::json!({
                "auditbridge_format": "raw",
                "auditbridge_dataset": "aws.cloudtrail",
                "auditbridge_tagged": "true",
                "mitre_technique": ["T1098.001"],
                "auditbridge_rule": ["aws-iam-create-access-key"],
                "auditbridge_key_age_days": "412",
            })
        );
        // Documents carry their tags inside; indexed fields are asked for.
        let value = parsed(&encode(&config, &record(), Format::Ocsf, b"{}"));
        assert_eq!(value["sourcetype"], "auditbridge:ocsf");
        assert!(value.get("fields").is_none());
        let mut untagged = record();
        untagged.techniques.clear();
        untagged.rules.clear();
        untagged.key_age_days = None;
        untagged.dataset = "azure.signinlogs";
        let value = parsed(&encode(&config, &untagged, Format::Raw, b"{}"));
        assert_eq!(value["sourcetype"], "azure:monitor:aad");
        assert_eq!(
            value["fields"],
            serde_json::json!({
                "auditbridge_format": "raw",
                "auditbridge_dataset": "azure.signinlogs",
                "auditbridge_tagged": "false",
            })
        );
        untagged.dataset = "azure.activitylogs";
        let value = parsed(&encode(&config, &untagged, Format::Raw, b"{}"));
        assert_eq!(value["sourcetype"], "azure:monitor:activity");
        untagged.dataset = "gcp.audit";
        let value = parsed(&encode(&config, &untagged, Format::Raw, b"{}"));
        assert_eq!(value["sourcetype"], "google:gcp:pubsub:message");
    }
}
