//! Where each document goes: topic, key and headers.

use rdkafka::message::{Header, OwnedHeaders};

use super::config::{KafkaSinkConfig, KeyField};
use crate::record::{Format, Record};

/// The topic for one document of a record.
pub fn topic(config: &KafkaSinkConfig, record: &Record, format: Format) -> String {
    if !record.techniques.is_empty() {
        if let Some(t) = &config.tagged_topic {
            return t.clone();
        }
    }
    if let Some(t) = config.topics.get(&format) {
        return t.clone();
    }
    config
        .topic
        .replace("{format}", format.as_str())
        .replace("{provider}", record.provider.as_str())
        .replace("{dataset}", record.dataset)
}

/// The message key, if any.
pub fn key<'a>(config: &KafkaSinkConfig, record: &'a Record) -> Option<&'a str> {
    match config.key {
        KeyField::Id => Some(record.id.as_str()),
        KeyField::Account => record.account.as_deref(),
        KeyField::None => None,
    }
}

/// Headers that let consumers filter without parsing the payload.
pub fn headers(record: &Record, format: Format) -> OwnedHeaders {
    let mut h = OwnedHeaders::new_with_capacity(5)
        .insert(Header {
            key: "auditbridge.format",
            value: Some(format.as_str()),
        })
        .insert(Header {
            key: "auditbridge.schema",
            value: Some(format.schema()),
        })
        .insert(Header {
            key: "auditbridge.source",
            value: Some(record.dataset),
        });
    if !record.techniques.is_empty() {
        let ids = record.techniques.join(",");
        h = h.insert(Header {
            key: "auditbridge.techniques",
            value: Some(ids.as_str()),
        });
    }
    h
}
