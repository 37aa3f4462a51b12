//! What an SQS message from a CloudTrail pipeline says, in every shape AWS delivers:
//! S3 event notifications (direct, or wrapped in SNS with raw delivery off), S3 "Object
//! Created" events from EventBridge, CloudTrail's own SNS delivery notifications,
//! CloudTrail records forwarded by EventBridge, and S3 test events. The shape is read
//! from the body, never guessed from the queue.

use percent_encoding::percent_decode_str;
use serde_json::Value;

use crate::transforms::decode::CLOUDTRAIL_DETAIL_TYPES;

/// An S3 object a notification points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
    /// Another spelling of the key to try when `key` is not found (EventBridge keys are
    /// documented inconsistently as raw or form-encoded).
    pub fallback_key: Option<String>,
}

/// The meaning of one message body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// Fetch these objects and decode them.
    Objects(Vec<ObjectRef>),
    /// The body is a CloudTrail record (EventBridge): decode it as is, no fetch. The
    /// accounts it names (the event's `account`, the record's `recipientAccountId`) are
    /// checked against `account_allowlist` first.
    Record { accounts: Vec<String> },
    /// `s3:TestEvent`, sent when a notification is configured: nothing to do.
    TestEvent,
    /// Not a shape auditbridge knows.
    Unknown(String),
}

/// Read a message body.
pub fn parse(body: &str) -> Notification {
    match serde_json::from_str::<Value>(body) {
        Ok(v) => classify(&v, 0),
        Err(e) => Notification::Unknown(format!("message body is not JSON: {e}")),
    }
}

fn classify(v: &Value, depth: u8) -> Notification {
    let Some(obj) = v.as_object() else {
        return Notification::Unknown("message body is not a JSON object".into());
    };
    if obj.get("Type").and_then(Value::as_str) == Some("Notification")
        && obj.contains_key("Message")
    {
        let Some(inner) = obj.get("Message").and_then(Value::as_str) else {
            return Notification::Unknown("SNS envelope whose Message is not a string".into());
        };
        if depth > 0 {
            return Notification::Unknown("SNS envelope nested in another envelope".into());
        }
        return match serde_json::from_str::<Value>(inner) {
            Ok(m) => classify(&m, depth + 1),
            Err(_) => Notification::Unknown("SNS envelope whose Message is not JSON".into()),
        };
    }
    if obj.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Notification::TestEvent;
    }
    if let Some(records) = obj.get("Records").and_then(Value::as_array) {
        if records.iter().any(|r| r.get("s3").is_some()) {
            return s3_event(records);
        }
        return Notification::Unknown("`Records` without S3 entries".into());
    }
    if let (Some(bucket), Some(keys)) = (
        obj.get("s3Bucket").and_then(Value::as_str),
        obj.get("s3ObjectKey").and_then(Value::as_array),
    ) {
        let objects: Vec<ObjectRef> = keys
            .iter()
            .filter_map(Value::as_str)
            .map(|k| ObjectRef {
                bucket: bucket.to_string(),
                key: k.to_string(),
                fallback_key: None,
            })
            .collect();
        return if objects.is_empty() {
            Notification::Unknown("CloudTrail notification without object keys".into())
        } else {
            Notification::Objects(objects)
        };
    }
    if let Some(detail_type) = obj.get("detail-type").and_then(Value::as_str) {
        if CLOUDTRAIL_DETAIL_TYPES.contains(&detail_type) {
            let mut accounts: Vec<String> = [
                obj.get("account"),
                obj.get("detail").and_then(|d| d.get("recipientAccountId")),
            ]
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
            accounts.dedup();
            return Notification::Record { accounts };
        }
        if detail_type == "Object Created" {
            let detail = obj.get("detail");
            let bucket = detail
                .and_then(|d| d.pointer("/bucket/name"))
                .and_then(Value::as_str);
            let key = detail
                .and_then(|d| d.pointer("/object/key"))
                .and_then(Value::as_str);
            return match (bucket, key) {
                (Some(b), Some(k)) => {
                    let decoded = decode_key(k);
                    Notification::Objects(vec![ObjectRef {
                        bucket: b.to_string(),
                        fallback_key: (decoded != k).then_some(decoded),
                        key: k.to_string(),
                    }])
                }
                _ => {
                    Notification::Unknown("EventBridge Object Created without bucket or key".into())
                }
            };
        }
        return Notification::Unknown(format!(
            "EventBridge detail-type `{detail_type}` is neither CloudTrail nor S3 Object Created"
        ));
    }
    Notification::Unknown("neither an S3, SNS, EventBridge nor CloudTrail notification".into())
}

fn s3_event(records: &[Value]) -> Notification {
    let mut objects = Vec::new();
    for r in records {
        let Some(s3) = r.get("s3") else { continue };
        let event = r.get("eventName").and_then(Value::as_str).unwrap_or("");
        if !event.is_empty() && !event.starts_with("ObjectCreated") {
            continue;
        }
        match (
            s3.pointer("/bucket/name").and_then(Value::as_str),
            s3.pointer("/object/key").and_then(Value::as_str),
        ) {
            (Some(bucket), Some(key)) => objects.push(ObjectRef {
                bucket: bucket.to_string(),
                key: decode_key(key),
                fallback_key: None,
            }),
            _ => {
                return Notification::Unknown("S3 notification record without bucket or key".into())
            }
        }
    }
    if objects.is_empty() {
        Notification::Unknown("S3 notification without ObjectCreated records".into())
    } else {
        Notification::Objects(objects)
    }
}

/// S3 writes keys in notifications form-encoded: `+` for space, then percent escapes.
pub fn decode_key(key: &str) -> String {
    let spaced = key.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// What kind of CloudTrail object a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Log,
    Digest,
    Insight,
    /// A "folder" placeholder (`…/`): nothing to read.
    Folder,
}

pub fn key_kind(key: &str) -> KeyKind {
    if key.ends_with('/') {
        KeyKind::Folder
    } else if key.contains("/CloudTrail-Digest/") || key.starts_with("CloudTrail-Digest/") {
        KeyKind::Digest
    } else if key.contains("/CloudTrail-Insight/") || key.starts_with("CloudTrail-Insight/") {
        KeyKind::Insight
    } else {
        KeyKind::Log
    }
}

/// The account a CloudTrail key belongs to: `…AWSLogs/[o-org/]<account>/…`.
pub fn key_account(key: &str) -> Option<&str> {
    let mut parts = key.split('/').skip_while(|p| *p != "AWSLogs").skip(1);
    let first = parts.next()?;
    let account = if first.starts_with("o-") {
        parts.next()?
    } else {
        first
    };
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then_some(account)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(n: Notification) -> Vec<(String, String)> {
        match n {
            Notification::Objects(o) => o.into_iter().map(|o| (o.bucket, o.key)).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn s3_notification_keys_are_decoded() {
        let body = r#"{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"trail"},"object":{"key":"AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/01/my+file%C3%A9%2Bx.json.gz","size":10}}}]}"#;
        assert_eq!(
            objects(parse(body)),
            vec![(
                "trail".into(),
                "AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/01/my fileé+x.json.gz".into()
            )]
        );
    }

    #[test]
    fn sns_wrapped_and_cloudtrail_notifications() {
        let inner = r#"{"s3Bucket":"trail","s3ObjectKey":["AWSLogs/111122223333/CloudTrail/a.json.gz","AWSLogs/111122223333/CloudTrail/b.json.gz"]}"#;
        let body = serde_json::json!({"Type": "Notification", "MessageId": "m", "Message": inner})
            .to_string();
        assert_eq!(objects(parse(&body)).len(), 2);
        let bad = serde_json::json!({"Type": "Notification", "Message": "not json"}).to_string();
        assert_eq!(
            parse(&bad),
            Notification::Unknown("SNS envelope whose Message is not JSON".into())
        );
    }

    #[test]
    fn eventbridge_shapes() {
        let created = r#"{"version":"0","detail-type":"Object Created","source":"aws.s3","detail":{"bucket":{"name":"trail"},"object":{"key":"a b+c.json","size":1}}}"#;
        match parse(created) {
            Notification::Objects(o) => {
                assert_eq!(o[0].key, "a b+c.json");
                assert_eq!(o[0].fallback_key.as_deref(), Some("a b c.json"));
            }
            other => panic!("{other:?}"),
        }
        let record = r#"{"version":"0","detail-type":"AWS API Call via CloudTrail","source":"aws.iam","detail":{"eventName":"CreateUser"}}"#;
        assert_eq!(parse(record), Notification::Record { accounts: vec![] });
        let named = r#"{"version":"0","detail-type":"AWS API Call via CloudTrail","account":"111122223333","detail":{"eventName":"CreateUser","recipientAccountId":"444455556666"}}"#;
        assert_eq!(
            parse(named),
            Notification::Record {
                accounts: vec!["111122223333".into(), "444455556666".into()]
            }
        );
    }

    #[test]
    fn test_event_and_unknown() {
        assert_eq!(
            parse(r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"trail"}"#),
            Notification::TestEvent
        );
        assert!(matches!(parse(r#"{"hello":1}"#), Notification::Unknown(_)));
        assert!(matches!(parse("nope"), Notification::Unknown(_)));
    }

    #[test]
    fn key_kinds_and_accounts() {
        assert_eq!(
            key_kind("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/x.json.gz"),
            KeyKind::Digest
        );
        assert_eq!(
            key_kind("p/AWSLogs/111122223333/CloudTrail-Insight/us-east-1/x.json.gz"),
            KeyKind::Insight
        );
        assert_eq!(
            key_kind("AWSLogs/111122223333/CloudTrail/"),
            KeyKind::Folder
        );
        assert_eq!(
            key_account("prefix/AWSLogs/111122223333/CloudTrail/x"),
            Some("111122223333")
        );
        assert_eq!(
            key_account("AWSLogs/o-abc123/111122223333/CloudTrail/x"),
            Some("111122223333")
        );
        assert_eq!(key_account("other/x"), None);
    }
}
