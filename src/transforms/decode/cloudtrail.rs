//! CloudTrail records: recognised, type-checked, and given one canonical spelling.

use super::tree::{Map, Str, Value};
use chrono::{DateTime, Utc};

use super::fields::{
    canonicalize_keys, expect_object, expect_strings, non_empty, obj_of, str_of, Keys, WrongType,
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
    /// Where in `userIdentity` the members documents read are.
    places: Places,
    /// Where `eventName`, `eventSource` and `userIdentity` sit among the fields
    /// ([`ABSENT`] when missing). Rules, the taxonomy, the writers and key age ask for the
    /// name and source at about sixteen places a record, and for the identity at three or
    /// four; each asking by name scanned the top-level keys (2.8 M instructions over the
    /// corpus's 3,785 records, BENCHMARKS.md).
    event_name_at: usize,
    event_source_at: usize,
    identity_at: usize,
}

impl<'a> CloudTrailRecord<'a> {
    /// Validate a record. `now` stands in for a missing or unreadable `eventTime`.
    pub fn new(mut fields: Map<'a>, now: DateTime<Utc>) -> Result<Self, WrongType> {
        let names =
            |fields: &Map<'_>| (fields.position("eventName"), fields.position("eventSource"));
        let (mut event_name_at, mut event_source_at) = names(&fields);
        if event_name_at.is_none() || event_source_at.is_none() {
            canonicalize_keys(&mut fields, &TOP_LEVEL);
            (event_name_at, event_source_at) = names(&fields);
        }
        expect_strings(&fields, "", &TOP_LEVEL_STRINGS)?;
        expect_object(&fields, "", "userIdentity")?;
        expect_object(&fields, "", "tlsDetails")?;
        expect_object(&fields, "", "insightDetails")?;
        let mut places = Places::NONE;
        let identity_at = fields.position("userIdentity").unwrap_or(ABSENT);
        if let Some(Value::Object(identity)) = fields.value_at_mut(identity_at) {
            let mut survey = Survey::of(identity);
            if survey.unlisted && canonicalize_keys(identity, &IDENTITY) {
                survey = Survey::of(identity);
            }
            if survey.mistyped {
                // The checks by name, in their order, so the error names the field it did.
                expect_strings(identity, "userIdentity", &IDENTITY_STRINGS)?;
                expect_object(identity, "userIdentity", "sessionContext")?;
                if let Some(ctx) = obj_of(identity, "sessionContext") {
                    expect_object(ctx, "userIdentity.sessionContext", "sessionIssuer")?;
                    expect_object(ctx, "userIdentity.sessionContext", "attributes")?;
                }
            }
            places = survey.places;
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
            places,
            event_name_at: event_name_at.unwrap_or(ABSENT),
            event_source_at: event_source_at.unwrap_or(ABSENT),
            identity_at,
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
        self.event_name_text().map_or("", Str::as_str)
    }

    pub fn event_source(&self) -> &str {
        self.event_source_text().map_or("", Str::as_str)
    }

    /// A non-empty `eventName`, as the record holds it, to be written as it came.
    pub fn event_name_text(&self) -> Option<&Str<'a>> {
        self.string_at(self.event_name_at)
    }

    /// A non-empty `eventSource`, as the record holds it.
    pub fn event_source_text(&self) -> Option<&Str<'a>> {
        self.string_at(self.event_source_at)
    }

    /// The non-empty string at the place `at` among the fields.
    fn string_at(&self, at: usize) -> Option<&Str<'a>> {
        non_empty(self.fields.value_at(at))
    }

    pub fn identity(&self) -> Option<&Map<'a>> {
        self.fields
            .value_at(self.identity_at)
            .and_then(Value::as_object)
    }

    /// The fields of `userIdentity` that normalizers and key age read.
    pub fn user_identity(&self) -> UserIdentity<'_> {
        self.identity()
            .map(|identity| self.places.read(identity))
            .unwrap_or_default()
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

/// The fields of `userIdentity` that normalizers and key age read. Strings are the
/// non-empty ones.
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

/// Where each member of `userIdentity` that [`UserIdentity`] reads sits among its
/// members (`sessionIssuer` and `attributes` among `sessionContext`'s), [`ABSENT`] for
/// those it lacks. Found once, while the record is validated: the ECS and OCSF writers
/// and key age each read the identity, and finding its members by name took a key
/// comparison per member each time.
#[derive(Debug, Clone, Copy)]
struct Places {
    kind: usize,
    principal_id: usize,
    arn: usize,
    account_id: usize,
    access_key_id: usize,
    user_name: usize,
    invoked_by: usize,
    identity_provider: usize,
    on_behalf_of: usize,
    session_context: usize,
    session_issuer: usize,
    session_attributes: usize,
}

/// No member's place: past the end of every object.
const ABSENT: usize = usize::MAX;

impl Places {
    const NONE: Places = Places {
        kind: ABSENT,
        principal_id: ABSENT,
        arn: ABSENT,
        account_id: ABSENT,
        access_key_id: ABSENT,
        user_name: ABSENT,
        invoked_by: ABSENT,
        identity_provider: ABSENT,
        on_behalf_of: ABSENT,
        session_context: ABSENT,
        session_issuer: ABSENT,
        session_attributes: ABSENT,
    };

    /// The members of `identity`, the object these places were found in.
    fn read<'a>(&self, identity: &'a Map<'_>) -> UserIdentity<'a> {
        let text = |at| non_empty(identity.value_at(at)).map(Str::as_str);
        let object = |at| identity.value_at(at).and_then(Value::as_object);
        let context = object(self.session_context);
        let inner = |at| {
            context
                .and_then(|c| c.value_at(at))
                .and_then(Value::as_object)
        };
        UserIdentity {
            present: true,
            kind: text(self.kind),
            principal_id: text(self.principal_id),
            arn: text(self.arn),
            account_id: text(self.account_id),
            access_key_id: text(self.access_key_id),
            user_name: text(self.user_name),
            invoked_by: text(self.invoked_by),
            identity_provider: text(self.identity_provider),
            on_behalf_of: object(self.on_behalf_of),
            session_issuer: inner(self.session_issuer),
            session_attributes: inner(self.session_attributes),
        }
    }
}

/// One pass over `userIdentity`: the places of its members, and whether the checks by
/// name are needed.
struct Survey {
    places: Places,
    /// A key is not one of [`IDENTITY`]: it may be another spelling of one.
    unlisted: bool,
    /// A member has a type other than the one its name asks for.
    mistyped: bool,
}

impl Survey {
    fn of(identity: &Map<'_>) -> Survey {
        let mut places = Places::NONE;
        let (mut unlisted, mut mistyped) = (false, false);
        for (at, (key, value)) in identity.members().iter().enumerate() {
            let text = match key.as_str() {
                "type" => &mut places.kind,
                "principalId" => &mut places.principal_id,
                "arn" => &mut places.arn,
                "accountId" => &mut places.account_id,
                "accessKeyId" => &mut places.access_key_id,
                "userName" => &mut places.user_name,
                "invokedBy" => &mut places.invoked_by,
                "identityProvider" => &mut places.identity_provider,
                "onBehalfOf" => {
                    places.on_behalf_of = at;
                    continue;
                }
                "sessionContext" => {
                    places.session_context = at;
                    match value {
                        Value::Object(context) => {
                            let mut inner = |key| {
                                let at = context.position(key)?;
                                let member = &context.members()[at].1;
                                mistyped |= !matches!(member, Value::Null | Value::Object(_));
                                Some(at)
                            };
                            places.session_issuer = inner("sessionIssuer").unwrap_or(ABSENT);
                            places.session_attributes = inner("attributes").unwrap_or(ABSENT);
                        }
                        Value::Null => {}
                        _ => mistyped = true,
                    }
                    continue;
                }
                "credentialId" => continue,
                _ => {
                    unlisted = true;
                    continue;
                }
            };
            *text = at;
            mistyped |= !matches!(value, Value::Null | Value::String(_));
        }
        Survey {
            places,
            unlisted,
            mistyped,
        }
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
        assert_eq!(r.event_source(), "dynamodb.amazonaws.com");
        assert_eq!(r.user_identity().arn, Some("arn:aws:test_arn"));
        assert_eq!(r.time_source(), TimeSource::Event);
        assert_eq!(r.time().to_rfc3339(), "2023-01-10T21:04:02+00:00");
    }

    /// The event's name and source and the identity are read by their places, found
    /// once: wherever they sit, spelled either way, and empty or null read as absent, as
    /// by name.
    #[test]
    fn the_event_name_source_and_identity_are_read_by_their_places() {
        let late = record(json!({"a": 1, "b": 2, "eventSource": "iam.amazonaws.com",
            "c": 3, "eventName": "CreateUser", "userIdentity": {"arn": "arn:aws:iam::1:user/a"}}))
        .unwrap();
        assert_eq!(
            (late.event_name(), late.event_source()),
            ("CreateUser", "iam.amazonaws.com")
        );
        assert_eq!(late.user_identity().arn, Some("arn:aws:iam::1:user/a"));
        assert_eq!(late.identity(), obj_of(late.fields(), "userIdentity"));
        let no_one =
            record(json!({"eventName": "X", "eventSource": "s", "userIdentity": null})).unwrap();
        assert!(no_one.identity().is_none());
        assert!(!no_one.user_identity().present);
        assert_eq!(
            late.event_name_text().map(Str::as_str),
            late.str("eventName")
        );
        let mixed =
            record(json!({"eventName": "ListUsers", "EventSource": "iam.amazonaws.com"})).unwrap();
        assert_eq!(
            (mixed.event_name(), mixed.event_source()),
            ("ListUsers", "iam.amazonaws.com")
        );
        for blank in [
            json!({"eventName": "", "eventSource": null}),
            json!({"eventName": "X"}),
        ] {
            let r = record(blank).unwrap();
            assert_eq!(r.event_source(), "");
            assert_eq!(r.event_source_text().map(Str::as_str), r.str("eventSource"));
        }
        let r = record(json!({"eventName": "", "eventSource": "s"})).unwrap();
        assert_eq!((r.event_name(), r.event_name_text()), ("", None));
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

    /// The survey that stands in for the checks by name must know the same names.
    #[test]
    fn the_survey_knows_the_listed_identity_members() {
        for name in IDENTITY.names {
            let identity = json!({ *name: null });
            assert!(
                !Survey::of(identity.as_object().unwrap()).unlisted,
                "{name}"
            );
        }
        for name in IDENTITY_STRINGS.names {
            let identity = json!({ *name: 1 });
            assert!(Survey::of(identity.as_object().unwrap()).mistyped, "{name}");
            let identity = json!({ *name: "x" });
            assert!(
                !Survey::of(identity.as_object().unwrap()).mistyped,
                "{name}"
            );
        }
        let unknown = json!({"UserName": "x", "extra": 1});
        let survey = Survey::of(unknown.as_object().unwrap());
        assert!(survey.unlisted && !survey.mistyped);
    }

    #[test]
    fn wrong_identity_types_name_the_field_checked_first() {
        let field = |identity| {
            record(json!({"eventName": "X", "eventSource": "s", "userIdentity": identity}))
                .unwrap_err()
                .field
        };
        assert_eq!(field(json!({"arn": 7})), "userIdentity.arn");
        assert_eq!(
            field(json!({"userName": 5, "type": 3})),
            "userIdentity.type"
        );
        assert_eq!(field(json!({"USERNAME": 5})), "userIdentity.userName");
        assert_eq!(
            field(json!({"sessionContext": "s"})),
            "userIdentity.sessionContext"
        );
        assert_eq!(
            field(json!({"sessionContext": {"attributes": {}, "sessionIssuer": 1}})),
            "userIdentity.sessionContext.sessionIssuer"
        );
        assert_eq!(
            field(json!({"sessionContext": {"attributes": []}})),
            "userIdentity.sessionContext.attributes"
        );
        let fine = json!({"eventName": "X", "eventSource": "s", "userIdentity": {
            "arn": null, "sessionContext": {"attributes": null, "sessionIssuer": null},
            "onBehalfOf": 3, "credentialId": 4}});
        let fine = record(fine).unwrap();
        let who = fine.user_identity();
        assert!(who.present);
        assert_eq!(
            (who.arn, who.session_issuer, who.on_behalf_of),
            (None, None, None)
        );
    }

    #[test]
    fn missing_time_falls_back_to_ingest_time() {
        let r = record(json!({"eventName": "X", "eventSource": "s"})).unwrap();
        assert_eq!(r.time_source(), TimeSource::Ingest);
    }
}
