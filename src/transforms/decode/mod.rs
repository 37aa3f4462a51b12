//! Decoding: from raw input bytes to validated CloudTrail, Azure and GCP audit records.
//!
//! `framing` splits the input into candidate records; this module recognises what each
//! one is (a CloudTrail record, one wrapped in EventBridge, an Entra record in either
//! dialect, an Activity Log record, a Cloud Audit Logs entry, a digest, an Insight event)
//! and validates it.

pub mod azure;
pub mod cloudtrail;
pub mod cutter;
pub mod fields;
pub mod framing;
pub mod gcp;
pub mod time;
pub mod tree;

use chrono::{DateTime, Utc};
use tree::{Map, Value};

pub use azure::{AzureLog, AzureRecord, RoleAssignment};
pub use cloudtrail::{CloudTrailRecord, UserIdentity};
pub use fields::WrongType;
pub use gcp::GcpRecord;

use crate::event::Provider;

/// Detail types EventBridge uses for records it forwards from CloudTrail.
pub const CLOUDTRAIL_DETAIL_TYPES: &[&str] = &[
    "AWS API Call via CloudTrail",
    "AWS Console Sign In via CloudTrail",
    "AWS Console Action via CloudTrail",
    "AWS Service Event via CloudTrail",
    "AWS Insight via CloudTrail",
];

/// A validated record from one of the supported logs.
#[derive(Debug, Clone)]
pub enum SourceRecord<'a> {
    CloudTrail(CloudTrailRecord<'a>),
    Azure(AzureRecord<'a>),
    Gcp(GcpRecord<'a>),
}

impl<'a> SourceRecord<'a> {
    /// The same record, owning its text: for one that outlives the input it was read from.
    pub fn into_owned(self) -> SourceRecord<'static> {
        match self {
            SourceRecord::CloudTrail(r) => SourceRecord::CloudTrail(r.into_owned()),
            SourceRecord::Azure(r) => SourceRecord::Azure(r.into_owned()),
            SourceRecord::Gcp(r) => SourceRecord::Gcp(r.into_owned()),
        }
    }

    pub fn provider(&self) -> Provider {
        match self {
            SourceRecord::CloudTrail(_) => Provider::Aws,
            SourceRecord::Azure(_) => Provider::Azure,
            SourceRecord::Gcp(_) => Provider::Gcp,
        }
    }

    pub fn time(&self) -> DateTime<Utc> {
        match self {
            SourceRecord::CloudTrail(r) => r.time(),
            SourceRecord::Azure(r) => r.time(),
            SourceRecord::Gcp(r) => r.time(),
        }
    }

    pub fn time_source(&self) -> time::TimeSource {
        match self {
            SourceRecord::CloudTrail(r) => r.time_source(),
            SourceRecord::Azure(r) => r.time_source(),
            SourceRecord::Gcp(r) => r.time_source(),
        }
    }

    /// The record's own stable id, when it has one.
    pub fn id(&self) -> Option<&str> {
        match self {
            SourceRecord::CloudTrail(r) => r.id(),
            SourceRecord::Azure(r) => r.id(),
            SourceRecord::Gcp(r) => r.id(),
        }
    }

    /// The caller's user agent, as the log wrote it.
    pub fn user_agent(&self) -> Option<&str> {
        match self {
            SourceRecord::CloudTrail(r) => r.str("userAgent"),
            SourceRecord::Azure(r) => r.user_agent(),
            SourceRecord::Gcp(r) => r.user_agent(),
        }
    }

    pub fn fields(&self) -> &Map<'a> {
        match self {
            SourceRecord::CloudTrail(r) => r.fields(),
            SourceRecord::Azure(r) => r.fields(),
            SourceRecord::Gcp(r) => r.fields(),
        }
    }
}

/// Inputs that are recognised but are not activity records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// A CloudTrail digest file: integrity hashes of log files, no events.
    Digest,
    /// A CloudTrail Insight event: an anomaly summary, not an API call.
    Insight,
}

impl Special {
    pub fn as_str(self) -> &'static str {
        match self {
            Special::Digest => "cloudtrail_digest",
            Special::Insight => "cloudtrail_insight",
        }
    }
}

/// What one candidate record turned out to be.
#[derive(Debug)]
pub enum Decoded<'a> {
    Record(SourceRecord<'a>),
    Special(Special),
}

/// Why a candidate record was refused. Each becomes a dead letter with this text.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("record is {size} bytes, over the limit of {limit} (limits.max_record_bytes)")]
    TooLarge { size: usize, limit: usize },
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("expected a JSON object, found {0}")]
    NotAnObject(&'static str),
    #[error(
        "unrecognised record: neither CloudTrail (eventName/eventSource) nor an Azure \
         Entra ID or Activity Log record (category with operationName/properties/time) \
         nor a Log Analytics row nor a GCP LogEntry (logName/insertId with protoPayload)"
    )]
    Unrecognised,
    #[error(
        "GCP LogEntry whose protoPayload is `{0}`, not a Cloud Audit Logs AuditLog \
         (type.googleapis.com/google.cloud.audit.AuditLog): route only audit logs to \
         this subscription"
    )]
    NotAuditLog(String),
    #[error("EventBridge event of detail-type `{0}` does not carry a CloudTrail record")]
    NotCloudTrailDetail(String),
    #[error("EventBridge event has no `detail` object")]
    MissingDetail,
    #[error("{0}")]
    WrongType(#[from] WrongType),
}

impl DecodeError {
    /// A short, stable label for counters.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::Json(_) => "invalid_json",
            DecodeError::NotAnObject(_) => "not_an_object",
            DecodeError::Unrecognised => "unrecognised",
            DecodeError::NotAuditLog(_) => "gcp_not_audit_log",
            DecodeError::NotCloudTrailDetail(_) | DecodeError::MissingDetail => {
                "eventbridge_not_cloudtrail"
            }
            DecodeError::WrongType(_) => "wrong_type",
        }
    }
}

/// Decode one candidate record (the JSON text of one value). `now` stands in for a
/// missing event time.
pub fn decode<'a>(
    text: &'a str,
    max_record_bytes: usize,
    now: DateTime<Utc>,
) -> Result<Decoded<'a>, DecodeError> {
    if text.len() > max_record_bytes {
        return Err(DecodeError::TooLarge {
            size: text.len(),
            limit: max_record_bytes,
        });
    }
    let value = Value::parse(text).map_err(|e| DecodeError::Json(e.to_string()))?;
    let map = match value {
        Value::Object(m) => m,
        other => return Err(DecodeError::NotAnObject(fields::type_name(&other))),
    };
    classify(map, now)
}

fn classify(mut map: Map<'_>, now: DateTime<Utc>) -> Result<Decoded<'_>, DecodeError> {
    if let Some(detail_type) = map.get("detail-type").and_then(Value::as_str) {
        if !CLOUDTRAIL_DETAIL_TYPES.contains(&detail_type) {
            return Err(DecodeError::NotCloudTrailDetail(detail_type.to_string()));
        }
        return match map.remove("detail") {
            Some(Value::Object(detail)) => match classify_cloudtrail(detail, now)? {
                Decoded::Record(SourceRecord::CloudTrail(r)) => Ok(Decoded::Record(
                    SourceRecord::CloudTrail(r.unwrapped_from_eventbridge()),
                )),
                other => Ok(other),
            },
            _ => Err(DecodeError::MissingDetail),
        };
    }
    if cloudtrail::is_digest(&map) {
        return Ok(Decoded::Special(Special::Digest));
    }
    // An Insight event names its API only inside `insightDetails`.
    if cloudtrail::looks_like(&map) || cloudtrail::is_insight(&map) {
        return classify_cloudtrail(map, now);
    }
    if azure::is_azure_activity_row(&map) {
        let map = azure::from_azure_activity(map);
        return Ok(Decoded::Record(SourceRecord::Azure(AzureRecord::new(
            map, now,
        )?)));
    }
    if azure::looks_like_log_analytics(&map) {
        let map = azure::from_log_analytics(map);
        return Ok(Decoded::Record(SourceRecord::Azure(AzureRecord::new(
            map, now,
        )?)));
    }
    if azure::looks_like(&map) {
        return Ok(Decoded::Record(SourceRecord::Azure(AzureRecord::new(
            map, now,
        )?)));
    }
    if gcp::looks_like(&map) {
        if let Some(other) = gcp::payload_type(&map) {
            return Err(DecodeError::NotAuditLog(other.to_string()));
        }
        return Ok(Decoded::Record(SourceRecord::Gcp(GcpRecord::new(
            map, now,
        )?)));
    }
    Err(DecodeError::Unrecognised)
}

fn classify_cloudtrail(map: Map<'_>, now: DateTime<Utc>) -> Result<Decoded<'_>, DecodeError> {
    Ok(Decoded::Record(SourceRecord::CloudTrail(
        CloudTrailRecord::new(map, now)?,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Result<Decoded<'_>, DecodeError> {
        decode(text, 1 << 20, Utc::now())
    }

    #[test]
    fn eventbridge_wrapper_is_unwrapped() {
        let d = run(r#"{"version":"0","detail-type":"AWS API Call via CloudTrail","source":"aws.iam",
            "detail":{"eventName":"CreateUser","eventSource":"iam.amazonaws.com","eventTime":"2024-01-01T00:00:00Z"}}"#)
        .unwrap();
        match d {
            Decoded::Record(SourceRecord::CloudTrail(r)) => {
                assert_eq!(r.event_name(), "CreateUser")
            }
            other => panic!("{other:?}"),
        }
        let err = run(r#"{"detail-type":"Object Created","detail":{}}"#).unwrap_err();
        assert_eq!(err.kind(), "eventbridge_not_cloudtrail");
    }

    #[test]
    fn digest_and_insight_are_recognised() {
        assert!(matches!(
            run(r#"{"awsAccountId":"1","digestStartTime":"x","digestEndTime":"y","logFiles":[]}"#)
                .unwrap(),
            Decoded::Special(Special::Digest)
        ));
        // As AWS writes them: no top-level eventName or eventSource.
        match run(r#"{"eventVersion":"1.07","eventTime":"2019-10-17T10:05:00Z","eventType":"AwsCloudTrailInsight","eventID":"e","insightDetails":{"state":"Start","eventSource":"ssm.amazonaws.com","eventName":"UpdateInstanceAssociationStatus"},"eventCategory":"Insight"}"#).unwrap() {
            Decoded::Record(SourceRecord::CloudTrail(r)) => assert!(r.is_insight()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_objects_and_scalars_are_refused() {
        assert_eq!(
            run(r#"{"hello":"world"}"#).unwrap_err().kind(),
            "unrecognised"
        );
        assert_eq!(run("42").unwrap_err().kind(), "not_an_object");
    }
}
