//! Classifies the access key behind a CloudTrail call: `AKIA…` keys are long-term IAM
//! user keys, `ASIA…` keys are temporary STS credentials.

use serde_json::{json, Value};

use super::Enricher;
use crate::transforms::decode::SourceRecord;
use crate::transforms::normalize::Normalized;

pub struct CredentialType;

/// The kind of an AWS access key id, from its prefix.
pub fn key_type(access_key_id: &str) -> Option<&'static str> {
    match access_key_id.get(..4) {
        Some("AKIA") => Some("long-term"),
        Some("ASIA") => Some("temporary"),
        _ => None,
    }
}

impl Enricher for CredentialType {
    fn enrich(&self, record: &mut Normalized) {
        let SourceRecord::CloudTrail(r) = &record.source else {
            return;
        };
        let Some(key) = r.identity_str("accessKeyId") else {
            return;
        };
        let Some(kind) = key_type(key) else { return };
        if let Some(ecs) = record.ecs.as_mut() {
            let ns = ecs
                .entry("auditbridge")
                .or_insert_with(|| Value::Object(Default::default()));
            ns["credential"] = json!({ "access_key_id": key, "type": kind });
        }
        if let Some(ocsf) = record.ocsf.as_mut() {
            let list = ocsf
                .entry("enrichments")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(items) = list {
                items.push(json!({
                    "name": "credential.type",
                    "value": kind,
                    "type": "credential",
                    "provider": "auditbridge",
                    "data": { "access_key_id": key },
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(key_type("AKIATFQZ7NSC8Q4X21BJ"), Some("long-term"));
        assert_eq!(key_type("ASIATFQR7NSCTM3XVF6B"), Some("temporary"));
        assert_eq!(key_type("AIDA"), None);
        assert_eq!(key_type(""), None);
    }
}
