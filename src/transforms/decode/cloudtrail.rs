//! CloudTrail records: recognised, type-checked, and given one canonical spelling.

use super::tree::{Map, Value};
use chrono::{DateTime, Utc};

use super::fields::{
    canonicalize_keys, expect_object, expect_strings, obj_of, str_of, Keys, WrongType,
};
use super::time::{parse_time, TimeSource};

const TOP_LEVEL: Keys = Keys::new(&[
    "eventVersion",
    "userIdentity",
    "eventTime",
    "eventSource",
    "eventName",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
    "requestParameters",
    "responseElements",
    "additionalEventData",
    "requestID",
    "eventID",
    "readOnly",
    "resources",
    "eventType",
    "apiVersion",
    "managementEvent",
    "recipientAccountId",
    "sharedEventID",
    "vpcEndpointId",
    "vpcEndpointAccountId",
    "eventCategory",
    "tlsDetails",
    "sessionCredentialFromConsole",
    "errorCode",
    "errorMessage",
    "serviceEventDetails",
    "insightDetails",
]);

const IDENTITY: Keys = Keys::new(&[
    "type",
    "principalId",
    "arn",
    "accountId",
    "accessKeyId",
    "userName",
    "sessionContext",
    "invokedBy",
    "identityProvider",
    "onBehalfOf",
    "credentialId",
]);

const TOP_LEVEL_STRINGS: Keys = Keys::new(&[
    "eventVersion",
    "eventTime",
    "eventSource",
    "eventName",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
    "requestID",
    "eventID",
    "eventType",
    "recipientAccountId",
    "sharedEventID",
    "vpcEndpointId",
    "eventCategory",
    "errorCode",
    "errorMessage",
]);

const IDENTITY_STRINGS: Keys = Keys::new(&[
    "type",
    "principalId",
    "arn",
    "accountId",
    "accessKeyId",
    "userName",
    "invokedBy",
    "identityProvider",
]);

/// Does this object look like a CloudTrail record (in any key casing)?
pub fn looks_like(map: &Map<'_>) -> bool {
    ["eventName", "eventSource", "eventname", "eventsource"]
        .iter()
        .any(|k| map.contains_key(k))
}

/// Is this a CloudTrail Insight event rather than an API call?
pub fn is_insight(map: &Map<'_>) -> bool {
    map.contains_key("insightDetails")
        || map.get("eventType").and_then(Value::as_str) == Some("AwsCloudTrailInsight")
}

/// Is this a CloudTrail digest file (written beside the logs under `CloudTrail-Digest/`)?
pub fn is_digest(map: &Map<'_>) -> bool {
    map.contains_key("digestStartTime") && map.contains_key("logFiles")
}

/// The call failed: `errorCode` is set, or a console sign-in reports `Failure`.
fn failed(fields: &Map<'_>) -> bool {
    str_of(fields, "errorCode").is_some()
        || str_of(fields, "errorMessage").is_some()
        || obj_of(fields, "responseElements")
            .and_then(|r| str_of(r, "ConsoleLogin"))
            .is_some_and(|s| s.eq_ignore_ascii_case("failure"))
}

/// A CloudTrail record whose fields the normalizers read have the types they expect.
#[derive(Debug, Clone)]
pub struct CloudTrailRecord<'a> {
    fields: Map<'a>,
    time: DateTime<Utc>,
    time_source: TimeSource,
    /// Taken out of an EventBridge event's `detail`, so the input text is not the record.
    unwrapped: bool,
    /// An Insight event: CloudTrail's summary of unusual activity, not an API call.
    insight: bool,
    /// Every document asks; the answer takes three searches of the record.
    failed: bool,
}

impl<'a> CloudTrailRecord<'a> {
    /// Validate a record. `now` stands in for a missing or unreadable `eventTime`.
    pub fn new(mut fields: Map<'a>, now: DateTime<Utc>) -> Result<Self, WrongType> {
        if !fields.contains_key("eventName") || !fields.contains_key("eventSource") {
            canonicalize_keys(&mut fields, &TOP_LEVEL);
        }
        expect_strings(&fields, "", &TOP_LEVEL_STRINGS)?;
        expect_object(&fields, "", "userIdentity")?;
        expect_object(&fields, "", "tlsDetails")?;
        expect_object(&fields, "", "insightDetails")?;
        if let Some(Value::Object(identity)) = fields.get_mut("userIdentity") {
            canonicalize_keys(identity, &IDENTITY);
            expect_strings(identity, "userIdentity", &IDENTITY_STRINGS)?;
            expect_object(identity, "userIdentity", "sessionContext")?;
            if let Some(ctx) = obj_of(identity, "sessionContext") {
                expect_object(ctx, "userIdentity.sessionContext", "sessionIssuer")?;
                expect_object(ctx, "userIdentity.sessionContext", "attributes")?;
            }
        }
        // Exports that lost `eventTime` often carry the pipeline's own copy.
        let parsed = ["eventTime", "p_event_time", "@timestamp"]
            .iter()
            .find_map(|k| fields.get(k).and_then(Value::as_str).and_then(parse_time));
        let (time, time_source) = match parsed {
            Some(t) => (t, TimeSource::Event),
            None => (now, TimeSource::Ingest),
        };
        Ok(CloudTrailRecord {
            insight: is_insight(&fields),
            failed: failed(&fields),
            fields,
            time,
            time_source,
            unwrapped: false,
        })
    }

    /// The same record, owning its text.
    pub fn into_owned(self) -> CloudTrailRecord<'static> {
        CloudTrailRecord {
            fields: self.fields.into_owned(),
            ..self
        }
    }

    /// The record came as the `detail` of an EventBridge event.
    pub fn unwrapped_from_eventbridge(mut self) -> Self {
        self.unwrapped = true;
        self
    }

    pub fn is_unwrapped(&self) -> bool {
        self.unwrapped
    }

    pub fn is_insight(&self) -> bool {
        self.insight
    }

    /// `insightDetails` of an Insight event.
    pub fn insight_details(&self) -> Option<&Map<'a>> {
        obj_of(&self.fields, "insightDetails")
    }

    pub fn fields(&self) -> &Map<'a> {
        &self.fields
    }

    pub fn time(&self) -> DateTime<Utc> {
        self.time
    }

    pub fn time_source(&self) -> TimeSource {
        self.time_source
    }

    /// A non-empty top-level string field.
    pub fn str(&self, key: &str) -> Option<&str> {
        str_of(&self.fields, key)
    }

    pub fn event_name(&self) -> &str {
        self.str("eventName").unwrap_or("")
    }

    pub fn event_source(&self) -> &str {
        self.str("eventSource").unwrap_or("")
    }

    pub fn identity(&self) -> Option<&Map<'a>> {
        obj_of(&self.fields, "userIdentity")
    }

    /// The fields of `userIdentity` that normalizers and key age read.
    pub fn user_identity(&self) -> UserIdentity<'_> {
        self.identity().map(UserIdentity::of).unwrap_or_default()
    }

    pub fn request_parameters(&self) -> Option<&Map<'a>> {
        obj_of(&self.fields, "requestParameters")
    }

    pub fn response_elements(&self) -> Option<&Map<'a>> {
        obj_of(&self.fields, "responseElements")
    }

    /// The account the event was delivered to, or failing that the caller's account.
    pub fn account_id(&self) -> Option<&str> {
        self.str("recipientAccountId")
            .or_else(|| self.user_identity().account_id)
    }

    /// The call failed: `errorCode` is set, or a console sign-in reports `Failure`.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// The stable id: `eventID`, else the request id.
    pub fn id(&self) -> Option<&str> {
        self.str("eventID").or_else(|| self.str("requestID"))
    }
}

/// The fields of `userIdentity` that normalizers and key age read, found in one pass over
/// it: a lookup per field compared key names down the map each time, and a record's
/// documents read about ten of them. Strings are the non-empty ones.
#[derive(Debug, Default, Clone, Copy)]
pub struct UserIdentity<'a> {
    /// The record has a `userIdentity` object.
    pub present: bool,
    pub kind: Option<&'a str>,
    pub principal_id: Option<&'a str>,
    pub arn: Option<&'a str>,
    pub account_id: Option<&'a str>,
    pub access_key_id: Option<&'a str>,
    pub user_name: Option<&'a str>,
    pub invoked_by: Option<&'a str>,
    pub identity_provider: Option<&'a str>,
    pub on_behalf_of: Option<&'a Map<'a>>,
    /// `sessionContext.sessionIssuer`, for assumed roles.
    pub session_issuer: Option<&'a Map<'a>>,
    /// `sessionContext.attributes`.
    pub session_attributes: Option<&'a Map<'a>>,
}

impl<'a> UserIdentity<'a> {
    fn of(identity: &'a Map<'_>) -> Self {
        let mut who = UserIdentity {
            present: true,
            ..UserIdentity::default()
        };
        for (key, value) in identity {
            let text = match value {
                Value::String(s) if !s.is_empty() => Some(s.as_str()),
                _ => None,
            };
            match key.as_str() {
                "type" => who.kind = text,
                "principalId" => who.principal_id = text,
                "arn" => who.arn = text,
                "accountId" => who.account_id = text,
                "accessKeyId" => who.access_key_id = text,
                "userName" => who.user_name = text,
                "invokedBy" => who.invoked_by = text,
                "identityProvider" => who.identity_provider = text,
                "onBehalfOf" => who.on_behalf_of = value.as_object(),
                "sessionContext" => {
                    if let Some(context) = value.as_object() {
                        who.session_issuer = obj_of(context, "sessionIssuer");
                        who.session_attributes = obj_of(context, "attributes");
                    }
                }
                _ => {}
            }
        }
        who
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::decode::tree::json;

    fn record(v: Value<'static>) -> Result<CloudTrailRecord<'static>, WrongType> {
        CloudTrailRecord::new(v.as_object().cloned().unwrap(), Utc::now())
    }

    #[test]
    fn lower_cased_exports_are_canonicalised() {
        let r = record(
            json!({"eventname": "GetRecords", "eventsource": "dynamodb.amazonaws.com",
            "eventtime": "2023-01-10 21:04:02", "useridentity": {"arn": "arn:aws:test_arn"}}),
        )
        .unwrap();
        assert_eq!(r.event_name(), "GetRecords");
        assert_eq!(r.user_identity().arn, Some("arn:aws:test_arn"));
        assert_eq!(r.time_source(), TimeSource::Event);
        assert_eq!(r.time().to_rfc3339(), "2023-01-10T21:04:02+00:00");
    }

    /// The members are found whatever their order and spelling; an empty string, a wrong
    /// type or a missing member reads as absent.
    #[test]
    fn the_identity_is_read_from_its_members() {
        let r = record(
            json!({"eventName": "X", "eventSource": "s", "userIdentity": {
            "sessionContext": {"attributes": {"mfaAuthenticated": "false"},
                "sessionIssuer": {"type": "Role", "userName": "admin"}},
            "onBehalfOf": {"userId": "u-1"}, "extra": "x", "accessKeyId": "ASIAEXAMPLE",
            "arn": "arn:aws:sts::111122223333:assumed-role/admin/s", "principalId": "",
            "type": "AssumedRole", "accountId": "111122223333", "invokedBy": null}}),
        )
        .unwrap();
        let who = r.user_identity();
        assert!(who.present);
        assert_eq!(
            (who.kind, who.arn, who.account_id, who.access_key_id),
            (
                Some("AssumedRole"),
                Some("arn:aws:sts::111122223333:assumed-role/admin/s"),
                Some("111122223333"),
                Some("ASIAEXAMPLE")
            )
        );
        assert_eq!(
            (
                who.principal_id,
                who.user_name,
                who.invoked_by,
                who.identity_provider
            ),
            (None, None, None, None)
        );
        assert_eq!(str_of(who.on_behalf_of.unwrap(), "userId"), Some("u-1"));
        assert_eq!(
            str_of(who.session_issuer.unwrap(), "userName"),
            Some("admin")
        );
        assert_eq!(
            str_of(who.session_attributes.unwrap(), "mfaAuthenticated"),
            Some("false")
        );

        let lowered = record(json!({"eventname": "X", "eventsource": "s",
            "useridentity": {"username": "alice", "TYPE": "IAMUser"}}))
        .unwrap();
        let who = lowered.user_identity();
        assert_eq!((who.user_name, who.kind), (Some("alice"), Some("IAMUser")));
        let none = record(json!({"eventName": "X", "eventSource": "s"})).unwrap();
        assert!(!none.user_identity().present);
    }

    #[test]
    fn wrong_types_are_rejected_with_the_field_name() {
        let err =
            record(json!({"eventName": "X", "eventSource": "s", "eventTime": 7})).unwrap_err();
        assert_eq!(err.field, "eventTime");
        let err = record(json!({"eventName": "X", "eventSource": "s", "userIdentity": "root"}))
            .unwrap_err();
        assert_eq!(err.field, "userIdentity");
    }

    #[test]
    fn missing_time_falls_back_to_ingest_time() {
        let r = record(json!({"eventName": "X", "eventSource": "s"})).unwrap();
        assert_eq!(r.time_source(), TimeSource::Ingest);
    }
}
