//! The unit sinks receive: a normalized, enriched record already serialized in every
//! requested format. Only the transform stage builds one, from a validated source record.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::event::{Origin, Provider};

/// The format of one serialized document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Ecs,
    Ocsf,
    /// OCSF Detection Finding (class 2004) raised for the record.
    OcsfFinding,
    /// The vendor's own record as it arrived (a CloudTrail record, an Entra log record),
    /// for content built on the vendor's format such as Splunk's add-ons. Its enrichment
    /// travels beside it: HEC indexed fields, Kafka headers.
    Raw,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Ecs => "ecs",
            Format::Ocsf => "ocsf",
            Format::OcsfFinding => "ocsf_finding",
            Format::Raw => "raw",
        }
    }

    /// The schema and version a document of this format follows.
    pub fn schema(self) -> &'static str {
        match self {
            Format::Ecs => "ecs/9.4.0",
            Format::Ocsf | Format::OcsfFinding => "ocsf/1.8.0",
            Format::Raw => "vendor",
        }
    }
}

/// One serialized JSON document (no trailing newline). Shared, not copied, by the sinks
/// that hold it until their destination confirms it.
#[derive(Debug, Clone)]
pub struct Output {
    pub format: Format,
    pub body: Bytes,
}

/// A record ready for delivery.
#[derive(Debug, Clone)]
pub struct Record {
    /// Stable id: CloudTrail `eventID`, Entra `properties.id`, or a hash of the input.
    pub id: String,
    pub provider: Provider,
    /// `aws.cloudtrail`, `azure.auditlogs` or `azure.signinlogs`.
    pub dataset: &'static str,
    /// The cloud account (AWS account id, Entra tenant id), for keying and routing.
    pub account: Option<String>,
    pub time: DateTime<Utc>,
    /// ATT&CK technique ids the record was tagged with.
    pub techniques: Vec<String>,
    /// Ids of the rules that matched it.
    pub rules: Vec<String>,
    /// Age in days of the access key that signed the call, when known.
    pub key_age_days: Option<i64>,
    /// The input unit the record came from, for dead letters raised downstream.
    pub origin: Arc<Origin>,
    pub outputs: Vec<Output>,
}

impl Record {
    pub fn outputs_of(&self, format: Format) -> impl Iterator<Item = &Output> {
        self.outputs.iter().filter(move |o| o.format == format)
    }
}

#[cfg(test)]
impl Record {
    /// A CloudTrail record from `origin` with one ECS document, `ecs`, for unit tests.
    pub(crate) fn test(id: &str, origin: Origin, ecs: Option<Bytes>) -> Record {
        Record {
            id: id.into(),
            provider: Provider::Aws,
            dataset: "aws.cloudtrail",
            account: None,
            time: Utc::now(),
            techniques: Vec::new(),
            rules: Vec::new(),
            key_age_days: None,
            origin: Arc::new(origin),
            outputs: ecs
                .map(|body| Output {
                    format: Format::Ecs,
                    body,
                })
                .into_iter()
                .collect(),
        }
    }
}
