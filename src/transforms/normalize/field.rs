//! JSON fields borrowed from a source record and written with their keys in snake_case.

use std::borrow::Cow;

use crate::transforms::decode::tree::{last_wins, Map, Value};

use super::java_text;
use super::json;

/// `camelCase`/`PascalCase` → `snake_case`, keeping acronyms together
/// (`sourceIPAddress` → `source_ip_address`, `requestID` → `request_id`).
pub fn snake_case(s: &str) -> String {
    if !s.bytes().any(|b| b.is_ascii_uppercase()) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 4);
    let mut prev: Option<char> = None;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_uppercase() {
            let boundary = match prev {
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_ascii_uppercase() => {
                    chars.peek().is_some_and(|n| n.is_ascii_lowercase())
                }
                _ => false,
            };
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
        prev = Some(c);
    }
    out
}

/// The snake_case names of the CloudTrail and Entra keys seen in every record, looked up
/// instead of computed: renaming keys was 3 % of the transform stage.
macro_rules! known_snake_names {
    ($($camel:literal => $snake:literal,)*) => {
        fn known_snake(s: &str) -> Option<&'static str> {
            Some(match s {
                $($camel => $snake,)*
                _ => return None,
            })
        }

        /// Whether `s` is what a known key is renamed to.
        fn is_known_snake(s: &str) -> bool {
            matches!(s, $($snake)|*)
        }

        #[cfg(test)]
        const KNOWN_SNAKE: &[(&str, &str)] = &[$(($camel, $snake)),*];
    };
}

known_snake_names! {
    "eventVersion" => "event_version",
    "userIdentity" => "user_identity",
    "eventTime" => "event_time",
    "eventSource" => "event_source",
    "eventName" => "event_name",
    "awsRegion" => "aws_region",
    "sourceIPAddress" => "source_ip_address",
    "userAgent" => "user_agent",
    "requestParameters" => "request_parameters",
    "responseElements" => "response_elements",
    "additionalEventData" => "additional_event_data",
    "requestID" => "request_id",
    "eventID" => "event_id",
    "readOnly" => "read_only",
    "eventType" => "event_type",
    "apiVersion" => "api_version",
    "managementEvent" => "management_event",
    "recipientAccountId" => "recipient_account_id",
    "sharedEventID" => "shared_event_id",
    "vpcEndpointId" => "vpc_endpoint_id",
    "vpcEndpointAccountId" => "vpc_endpoint_account_id",
    "eventCategory" => "event_category",
    "tlsDetails" => "tls_details",
    "sessionCredentialFromConsole" => "session_credential_from_console",
    "errorCode" => "error_code",
    "errorMessage" => "error_message",
    "serviceEventDetails" => "service_event_details",
    "insightDetails" => "insight_details",
    "principalId" => "principal_id",
    "accountId" => "account_id",
    "accessKeyId" => "access_key_id",
    "userName" => "user_name",
    "sessionContext" => "session_context",
    "invokedBy" => "invoked_by",
    "identityProvider" => "identity_provider",
    "onBehalfOf" => "on_behalf_of",
    "credentialId" => "credential_id",
    "resourceId" => "resource_id",
    "operationName" => "operation_name",
    "operationVersion" => "operation_version",
    "tenantId" => "tenant_id",
    "resultType" => "result_type",
    "resultSignature" => "result_signature",
    "resultDescription" => "result_description",
    "durationMs" => "duration_ms",
    "callerIpAddress" => "caller_ip_address",
    "correlationId" => "correlation_id",
    "Level" => "level",
    "activityDisplayName" => "activity_display_name",
    "activityDateTime" => "activity_date_time",
    "createdDateTime" => "created_date_time",
    "userPrincipalName" => "user_principal_name",
    "userDisplayName" => "user_display_name",
    "ipAddress" => "ip_address",
    "appDisplayName" => "app_display_name",
    "servicePrincipalName" => "service_principal_name",
    "servicePrincipalCredentialKeyId" => "service_principal_credential_key_id",
    "sessionIssuer" => "session_issuer",
    "creationDate" => "creation_date",
    "mfaAuthenticated" => "mfa_authenticated",
    "webIdFederationData" => "web_id_federation_data",
    "sourceIdentity" => "source_identity",
    "ec2RoleDelivery" => "ec2_role_delivery",
    "assumedRoot" => "assumed_root",
    "tlsVersion" => "tls_version",
    "cipherSuite" => "cipher_suite",
    "clientProvidedHostHeader" => "client_provided_host_header",
    "userId" => "user_id",
    "identityStoreArn" => "identity_store_arn",
    "loggedByService" => "logged_by_service",
    "initiatedBy" => "initiated_by",
    "targetResources" => "target_resources",
    "additionalDetails" => "additional_details",
    "operationType" => "operation_type",
    "resultReason" => "result_reason",
    "conditionalAccessStatus" => "conditional_access_status",
    "appId" => "app_id",
    "clientAppUsed" => "client_app_used",
    "deviceDetail" => "device_detail",
    "isInteractive" => "is_interactive",
    "riskDetail" => "risk_detail",
    "riskLevelAggregated" => "risk_level_aggregated",
    "riskLevelDuringSignIn" => "risk_level_during_sign_in",
    "riskState" => "risk_state",
    "resourceDisplayName" => "resource_display_name",
    "servicePrincipalId" => "service_principal_id",
    "userType" => "user_type",
    "authenticationRequirement" => "authentication_requirement",
    "tokenIssuerType" => "token_issuer_type",
    "homeTenantId" => "home_tenant_id",
    "crossTenantAccessType" => "cross_tenant_access_type",
    "networkLocationDetails" => "network_location_details",
    "authenticationDetails" => "authentication_details",
    "appliedConditionalAccessPolicies" => "applied_conditional_access_policies",
    "originalRequestId" => "original_request_id",
    "processingTimeInMilliseconds" => "processing_time_in_milliseconds",
    "mfaDetail" => "mfa_detail",
    "uniqueTokenIdentifier" => "unique_token_identifier",
    "flaggedForReview" => "flagged_for_review",
    "incomingTokenType" => "incoming_token_type",
    "authenticationProtocol" => "authentication_protocol",
    "signInEventTypes" => "sign_in_event_types",
}

/// `snake_case` without an allocation for known keys and keys already in lower case.
pub fn snake_key(s: &str) -> Cow<'_, str> {
    if let Some(known) = known_snake(s) {
        return Cow::Borrowed(known);
    }
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(snake_case(s))
    } else {
        Cow::Borrowed(s)
    }
}

/// `s` in snake_case when no other key of an object can be renamed to the same: the name
/// of a known key (no two known keys share one), or a key with nothing to rename that no
/// known key is renamed to. None for a key that may meet another (`userName` beside
/// `user_name`), or that is unknown and needs renaming.
pub fn snake_key_alone(s: &str) -> Option<Snake<'_>> {
    match known_snake(s) {
        Some(known) => Some(Snake::Known(known)),
        None => (!s.bytes().any(|b| b.is_ascii_uppercase()) && !is_known_snake(s))
            .then_some(Snake::Same(s)),
    }
}

/// A key's snake_case name, as [`snake_key_alone`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snake<'a> {
    /// A known key's name, from this program's source: nothing in it to escape.
    Known(&'static str),
    /// The key itself, with nothing to rename.
    Same(&'a str),
}

impl Snake<'_> {
    pub fn as_str(&self) -> &str {
        match self {
            Snake::Known(name) => name,
            Snake::Same(key) => key,
        }
    }

    /// This key, in `object`: a known name written unchecked, as most keys are.
    pub fn key<'o>(self, object: &'o mut json::Object<'_>) -> &'o mut Vec<u8> {
        match self {
            Snake::Known(name) => object.name(name),
            Snake::Same(key) => object.key(key),
        }
    }
}

/// A JSON value borrowed from a source record, written as it is serialized: the vendor
/// sections of ECS and OCSF documents are views of the record, never copies of it.
#[derive(Debug)]
pub enum Field<'a> {
    Value(&'a Value<'a>),
    /// A text made from the record.
    Text(String),
    /// The value's text as Java prints it ([`java_text`]).
    JavaText(&'a Value<'a>),
    /// A value made from the record.
    Owned(Value<'a>),
    /// An object with its keys in snake_case, `depth` levels deep (objects in arrays
    /// included).
    Snake(&'a Map<'a>, usize),
    /// An array whose objects have their keys in snake_case, `depth` levels deep.
    SnakeList(&'a [Value<'a>], usize),
    /// An object of named fields in their order, each key once.
    Object(Vec<(Cow<'a, str>, Field<'a>)>),
}

impl<'a> Field<'a> {
    /// An object of `entries`, where two renamed keys may meet: the later field wins, in
    /// the earlier one's place, as it would on insertion into a map.
    pub fn object(mut entries: Vec<(Cow<'a, str>, Field<'a>)>) -> Field<'a> {
        last_wins(&mut entries);
        Field::Object(entries)
    }
}

impl Field<'_> {
    /// The field's JSON text.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Field::Value(v) => json::record_value(out, v),
            Field::Text(t) => json::string(out, t),
            Field::JavaText(v) => java_text::write_json(v, out),
            Field::Owned(v) => json::record_value(out, v),
            Field::Snake(map, depth) => {
                if write_snake_alone(map, *depth, out) {
                    return;
                }
                let entries = map
                    .iter()
                    .map(|(k, v)| (snake_key(k), snake_value(v, *depth)))
                    .collect();
                Field::object(entries).write(out);
            }
            Field::SnakeList(items, depth) => {
                let mut list = json::Array::open(out);
                for item in *items {
                    match item {
                        Value::Object(map) => Field::Snake(map, *depth).write(list.item()),
                        other => json::record_value(list.item(), other),
                    }
                }
                list.close();
            }
            Field::Object(entries) => {
                let mut object = json::Object::open(out);
                for (k, v) in entries {
                    v.write(object.key(k));
                }
                object.close();
            }
        }
    }
}

/// `Field::Snake(map, depth)` written with no list of its fields made first, when each key
/// is renamed alone ([`snake_key_alone`]); false, with nothing written, otherwise.
fn write_snake_alone(map: &Map<'_>, depth: usize, out: &mut Vec<u8>) -> bool {
    let start = out.len();
    let written = {
        let mut object = json::Object::open(out);
        let alone = map.iter().all(|(key, value)| {
            let Some(key) = snake_key_alone(key) else {
                return false;
            };
            snake_value(value, depth).write(key.key(&mut object));
            true
        });
        if alone {
            object.close();
        }
        alone
    };
    if !written {
        out.truncate(start);
    }
    written
}

/// A field of an object whose keys are in snake_case `depth` levels deep.
fn snake_value<'a>(value: &'a Value<'a>, depth: usize) -> Field<'a> {
    match value {
        Value::Object(inner) if depth > 1 => Field::Snake(inner, depth - 1),
        Value::Array(items) if depth > 1 && items.iter().any(Value::is_object) => {
            Field::SnakeList(items, depth - 1)
        }
        other => Field::Value(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_keeps_acronyms() {
        assert_eq!(snake_case("sourceIPAddress"), "source_ip_address");
        assert_eq!(snake_case("requestID"), "request_id");
        assert_eq!(snake_case("eventVersion"), "event_version");
        assert_eq!(snake_case("MFAUsed"), "mfa_used");
        assert_eq!(snake_case("p_event_time"), "p_event_time");
    }

    #[test]
    fn known_snake_names_are_what_snake_case_computes() {
        for (camel, snake) in KNOWN_SNAKE {
            assert_eq!(snake_case(camel), *snake, "{camel}");
        }
    }

    /// A snake view written alone is what its list of fields writes, and it is written
    /// alone unless two keys may meet.
    #[test]
    fn a_snake_view_written_alone_is_the_listed_view() {
        for (text, alone) in [
            (
                r#"{"userName":"a","type":"t","arn":"x","sessionContext":{"webIdFederationData":{"federatedProvider":"p"}},"list":[{"mfaAuthenticated":"true"},2],"é":1}"#,
                true,
            ),
            (r#"{"userName":"a","user_name":"b"}"#, false),
            (r#"{"fooBar":1}"#, false),
        ] {
            let record = Value::parse(text).unwrap();
            let map = record.as_object().unwrap();
            let mut direct = b"[".to_vec();
            assert_eq!(write_snake_alone(map, 3, &mut direct), alone, "{text}");
            let mut listed = b"[".to_vec();
            let entries = map
                .iter()
                .map(|(k, v)| (snake_key(k), snake_value(v, 3)))
                .collect();
            Field::object(entries).write(&mut listed);
            if alone {
                assert_eq!(
                    String::from_utf8(direct).unwrap(),
                    String::from_utf8(listed).unwrap()
                );
            } else {
                assert_eq!(direct, b"[", "{text}");
            }
        }
    }

    /// What [`snake_key_alone`] relies on: no two known keys are renamed to the same name,
    /// and no known key is a name another is renamed to.
    #[test]
    fn known_names_are_no_known_key() {
        let mut names: Vec<&str> = KNOWN_SNAKE.iter().map(|(_, snake)| *snake).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KNOWN_SNAKE.len());
        for (camel, snake) in KNOWN_SNAKE {
            assert!(is_known_snake(snake) && !is_known_snake(camel), "{camel}");
            assert_eq!(snake_key_alone(camel), Some(Snake::Known(snake)));
            assert_eq!(snake_key_alone(snake), None);
        }
        assert_eq!(snake_key_alone("type"), Some(Snake::Same("type")));
        assert_eq!(snake_key_alone("fooBar"), None);
    }

    #[test]
    fn snake_views_keep_the_later_of_two_keys_that_meet() {
        let record = Value::parse(
            r#"{"event_name":"b","userIdentity":{"sessionContext":{"mfaAuthenticated":"true"}},"eventName":"a"}"#,
        )
        .unwrap();
        let mut out = Vec::new();
        Field::Snake(record.as_object().unwrap(), 2).write(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"event_name":"a","user_identity":{"session_context":{"mfaAuthenticated":"true"}}}"#
        );
    }
}
