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

/// Headers that let consumers filter without parsing the payload. They also carry the
/// enrichment of `raw` documents, which have no place of their own for it.
///
/// librdkafka takes a message's headers with it, so they are written anew for each try;
/// keeping them written and copying them for each try cost more than writing them.
pub struct Headers {
    format: Format,
    dataset: &'static str,
    /// Technique ids and rule ids, comma-separated, of a tagged record.
    tags: Option<(String, String)>,
    key_age_days: Option<i64>,
}

impl Headers {
    pub fn of(record: &Record, format: Format) -> Self {
        Headers {
            format,
            dataset: record.dataset,
            tags: (!record.techniques.is_empty())
                .then(|| (record.techniques.join(","), record.rules.join(","))),
            key_age_days: record.key_age_days,
        }
    }

    /// The headers as librdkafka takes them.
    pub fn owned(&self) -> OwnedHeaders {
        let mut h = OwnedHeaders::new_with_capacity(6)
            .insert(Header {
                key: "auditbridge.format",
                value: Some(self.format.as_str()),
            })
            .insert(Header {
                key: "auditbridge.schema",
                value: Some(self.format.schema()),
            })
            .insert(Header {
                key: "auditbridge.source",
                value: Some(self.dataset),
            });
        if let Some((techniques, rules)) = &self.tags {
            h = h.insert(Header {
                key: "auditbridge.techniques",
                value: Some(techniques.as_str()),
            });
            h = h.insert(Header {
                key: "auditbridge.rules",
                value: Some(rules.as_str()),
            });
        }
        if let Some(days) = self.key_age_days {
            let days = days.to_string();
            h = h.insert(Header {
                key: "auditbridge.key_age_days",
                value: Some(days.as_str()),
            });
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::Headers as _;
    use std::sync::Arc;

    fn named(h: &OwnedHeaders) -> Vec<(String, String)> {
        h.iter()
            .map(|x| {
                let value = String::from_utf8(x.value.unwrap_or_default().to_vec()).unwrap();
                (x.key.to_string(), value)
            })
            .collect()
    }

    #[test]
    fn a_raw_document_carries_the_tags_in_headers() {
        let mut record = Record {
            id: "e-1".into(),
            provider: crate::event::Provider::Aws,
            dataset: "aws.cloudtrail",
            account: None,
            time: chrono::Utc::now(),
            techniques: vec!["T1098.001".into(), "T1136.003".into()],
            rules: vec!["a".into(), "b".into()],
            key_age_days: Some(7),
            origin: Arc::new(crate::event::Origin::Inline { name: "t".into() }),
            outputs: Vec::new(),
        };
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            named(&Headers::of(&record, Format::Raw).owned()),
            [
                pair("auditbridge.format", "raw"),
                pair("auditbridge.schema", "vendor"),
                pair("auditbridge.source", "aws.cloudtrail"),
                pair("auditbridge.techniques", "T1098.001,T1136.003"),
                pair("auditbridge.rules", "a,b"),
                pair("auditbridge.key_age_days", "7"),
            ]
        );
        record.techniques.clear();
        record.rules.clear();
        record.key_age_days = None;
        assert_eq!(named(&Headers::of(&record, Format::Ecs).owned()).len(), 3);
    }
}
