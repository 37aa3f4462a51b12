//! The sections of a document copied from the source record: ECS `aws.cloudtrail`,
//! `azure.*` and `gcp.audit`, OCSF `unmapped`, and single fields. A document only marks where each goes
//! ([`Part`]); it is written straight from the record at serialization, never cloned
//! into the document first. ECS and OCSF both use this module; it uses neither.

use std::borrow::Cow;
use std::net::IpAddr;

use crate::transforms::decode::tree::{Map, Str, Value};

use super::field::{snake_key, snake_key_alone, Field};
use super::java_text;
use super::json;
use crate::transforms::decode::{AzureRecord, CloudTrailRecord, GcpRecord, SourceRecord};

/// A section of a document taken from the source record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// A top-level field of the record, as it is.
    Field(&'static str),
    /// ECS `aws.cloudtrail.*`.
    EcsCloudTrail,
    /// ECS `azure.auditlogs.*` or `azure.signinlogs.*`.
    EcsEntra,
    /// OCSF `unmapped` of a CloudTrail record; the flags say which mapped fields found
    /// no OCSF home in this record.
    OcsfCloudTrailUnmapped {
        request_parameters: bool,
        resources: bool,
    },
    /// OCSF `unmapped` of an Entra record.
    OcsfEntraUnmapped,
    /// ECS `azure.activitylogs.*`.
    EcsActivity,
    /// OCSF `unmapped` of an Activity Log record.
    OcsfActivityUnmapped,
    /// ECS `gcp.audit.*`.
    EcsGcp,
}

impl Part {
    /// This part's JSON text, read from `source`.
    pub fn write(self, source: &SourceRecord<'_>, out: &mut Vec<u8>) {
        match (self, source) {
            (Part::Field(key), _) => match source.fields().get(key) {
                Some(v) => json::record_value(out, v),
                None => json::null(out),
            },
            (Part::EcsCloudTrail, SourceRecord::CloudTrail(r)) => {
                if !write_ecs_cloudtrail_alone(r, out) {
                    ecs_cloudtrail(r).write(out);
                }
            }
            (Part::EcsEntra, SourceRecord::Azure(r)) => ecs_entra(r).write(out),
            (
                Part::OcsfCloudTrailUnmapped {
                    request_parameters,
                    resources,
                },
                SourceRecord::CloudTrail(r),
            ) => ocsf_cloudtrail_unmapped(r, request_parameters, resources).write(out),
            (Part::OcsfEntraUnmapped, SourceRecord::Azure(r)) => ocsf_entra_unmapped(r).write(out),
            (Part::EcsActivity, SourceRecord::Azure(r)) => ecs_activity(r).write(out),
            (Part::EcsGcp, SourceRecord::Gcp(r)) => json::record_object(out, &ecs_gcp_audit(r)),
            (Part::OcsfActivityUnmapped, SourceRecord::Azure(r)) => {
                Field::Object(unmapped_activity_fields(r)).write(out)
            }
            // The normalizers only splice parts of their own provider.
            _ => json::null(out),
        }
    }
}

/// CloudTrail fields kept as objects under `aws.cloudtrail.flattened.*`, as Elastic does,
/// because their shape differs per API: the ECS name of each.
fn flattened(key: &str) -> Option<&'static str> {
    Some(match key {
        "requestParameters" => "request_parameters",
        "responseElements" => "response_elements",
        "additionalEventData" => "additional_eventdata",
        "serviceEventDetails" => "service_event_details",
        _ => return None,
    })
}

/// `aws.cloudtrail` as Elastic's integration writes it: every field of the record with its
/// key in snake_case; the per-API objects under `flattened` and again as Java prints them
/// (the text Elastic's rules match on); `user_identity.session_context` with its
/// `attributes` lifted one level; and for a console sign-in, `console_login` with its
/// `additionalEventData` answers as booleans.
pub fn ecs_cloudtrail<'a>(r: &'a CloudTrailRecord) -> Field<'a> {
    let mut entries = Vec::with_capacity(r.fields().len() + 4);
    let mut nested = Vec::new();
    for (key, value) in r.fields() {
        if let Some(name) = flattened(key) {
            if java_text::has_text(value) {
                nested.push((Cow::Borrowed(name), Field::Value(value)));
                entries.push((Cow::Borrowed(name), Field::JavaText(value)));
            }
        } else if key == "insightDetails" {
            // Elastic keeps the details only as an object, with no text form.
            nested.push((Cow::Borrowed("insight_details"), Field::Value(value)));
        } else if key == "userIdentity" {
            if let Value::Object(identity) = value {
                entries.push((Cow::Borrowed("user_identity"), user_identity(identity)));
            }
        } else {
            entries.push((snake_key(key), Field::Value(value)));
        }
    }
    if r.event_name() == "ConsoleLogin" {
        if let Some(login) = console_login(r) {
            entries.push((Cow::Borrowed("console_login"), login));
        }
    }
    if !nested.is_empty() {
        entries.push((Cow::Borrowed("flattened"), Field::object(nested)));
    }
    Field::object(entries)
}

/// The names `aws.cloudtrail` gives fields that no key of the record is renamed to.
const ECS_CLOUDTRAIL_MADE: [&str; 3] = ["additional_eventdata", "console_login", "flattened"];

/// [`ecs_cloudtrail`] written with no list of its fields made first, when each key of the
/// record and of `userIdentity` is renamed alone ([`snake_key_alone`]), as in nearly every
/// record; false, with nothing written, otherwise. The lists and their fields were a fifth
/// of the section's cost.
fn write_ecs_cloudtrail_alone(r: &CloudTrailRecord, out: &mut Vec<u8>) -> bool {
    // Fields go under `flattened` by their place in the record, a bit each.
    if r.fields().len() > 64 {
        return false;
    }
    let start = out.len();
    let written = {
        let mut object = json::Object::open(out);
        let mut nested = 0u64;
        let alone = r.fields().iter().enumerate().all(|(at, (key, value))| {
            if let Some(name) = flattened(key) {
                if java_text::has_text(value) {
                    java_text::write_json(value, object.name(name));
                    nested |= 1 << at;
                }
            } else if key == "insightDetails" {
                nested |= 1 << at;
            } else if key == "userIdentity" {
                if let Value::Object(identity) = value {
                    return write_user_identity_alone(identity, object.name("user_identity"));
                }
            } else {
                match snake_key_alone(key) {
                    Some(name) if !ECS_CLOUDTRAIL_MADE.contains(&name.as_str()) => {
                        json::record_value(name.key(&mut object), value);
                    }
                    _ => return false,
                }
            }
            true
        });
        if alone {
            if r.event_name() == "ConsoleLogin" {
                if let Some(login) = console_login(r) {
                    login.write(object.name("console_login"));
                }
            }
            if nested != 0 {
                let mut flattened_fields = json::Object::open(object.name("flattened"));
                for (at, (key, value)) in r.fields().iter().enumerate() {
                    if nested & 1 << at != 0 {
                        let name = flattened(key).unwrap_or("insight_details");
                        json::record_value(flattened_fields.name(name), value);
                    }
                }
                flattened_fields.close();
            }
            object.close();
        }
        alone
    };
    if !written {
        out.truncate(start);
    }
    written
}

/// [`user_identity`] written with no list of its fields made first, when each key is
/// renamed alone and no key of `sessionContext.attributes` is one of `sessionContext`'s
/// own; false, with whatever it wrote left for the caller to take back, otherwise.
fn write_user_identity_alone(identity: &Map<'_>, out: &mut Vec<u8>) -> bool {
    let mut object = json::Object::open(out);
    let alone = identity.iter().all(|(key, value)| {
        let (Some(name), value) = (snake_key_alone(key), value) else {
            return false;
        };
        match (key.as_str(), value) {
            ("sessionContext", Value::Object(context)) => {
                let attributes = match context.get("attributes") {
                    Some(Value::Object(attributes)) => Some(attributes),
                    _ => None,
                };
                let lifted = attributes.into_iter().flat_map(|a| a.iter());
                let mut session = json::Object::open(name.key(&mut object));
                let alone = context
                    .iter()
                    .filter(|(k, _)| k.as_str() != "attributes")
                    .map(|(k, v)| (k, snake_field(v, 2), false))
                    .chain(lifted.map(|(k, v)| (k, snake_field(v, 1), true)))
                    .all(|(k, field, lifted)| {
                        // A lifted attribute must not meet a field of the context.
                        let meets =
                            lifted && k.as_str() != "attributes" && context.get(k).is_some();
                        match snake_key_alone(k).filter(|_| !meets) {
                            Some(k) => {
                                field.write(k.key(&mut session));
                                true
                            }
                            None => false,
                        }
                    });
                if alone {
                    session.close();
                }
                alone
            }
            _ => {
                snake_field(value, 3).write(name.key(&mut object));
                true
            }
        }
    });
    if alone {
        object.close();
    }
    alone
}

fn user_identity<'a>(identity: &'a Map<'a>) -> Field<'a> {
    let entries = identity
        .iter()
        .map(|(key, value)| match (key.as_str(), value) {
            ("sessionContext", Value::Object(context)) => {
                let mut inner: Vec<_> = context
                    .iter()
                    .filter(|(k, _)| k.as_str() != "attributes")
                    .map(|(k, v)| (snake_key(k), snake_field(v, 2)))
                    .collect();
                if let Some(Value::Object(attributes)) = context.get("attributes") {
                    inner.extend(
                        attributes
                            .iter()
                            .map(|(k, v)| (snake_key(k), snake_field(v, 1))),
                    );
                }
                (Cow::Borrowed("session_context"), Field::object(inner))
            }
            _ => (snake_key(key), snake_field(value, 3)),
        })
        .collect();
    Field::object(entries)
}

fn snake_field<'a>(value: &'a Value<'a>, depth: usize) -> Field<'a> {
    match value {
        Value::Object(map) => Field::Snake(map, depth),
        other => Field::Value(other),
    }
}

/// `console_login.additional_eventdata`: `MobileVersion` and `MFAUsed` as booleans
/// (anything but "No" is true, as Elastic reads them) and `LoginTo`.
fn console_login<'a>(r: &'a CloudTrailRecord<'a>) -> Option<Field<'a>> {
    let data = r.fields().get("additionalEventData")?.as_object()?;
    let yes = |key: &str| {
        data.get(key)
            .filter(|v| !v.is_null())
            .map(|v| Field::Owned(Value::Bool(v.as_str() != Some("No"))))
    };
    let mut fields = Vec::new();
    if let Some(to) = data.get("LoginTo").filter(|v| !v.is_null()) {
        fields.push((Cow::Borrowed("login_to"), Field::Value(to)));
    }
    if let Some(mfa) = yes("MFAUsed") {
        fields.push((Cow::Borrowed("mfa_used"), mfa));
    }
    if let Some(mobile) = yes("MobileVersion") {
        fields.push((Cow::Borrowed("mobile_version"), mobile));
    }
    (!fields.is_empty()).then(|| {
        Field::Object(vec![(
            Cow::Borrowed("additional_eventdata"),
            Field::Object(fields),
        )])
    })
}

/// `azure.<dataset>` as Elastic's integration writes it: every field of the record with
/// its key in snake_case, and `properties`:
/// - sign-ins: keys in snake_case at every level (`status.error_code`,
///   `device_detail.device_id`), which Elastic's rules query;
/// - audits: keys in snake_case one level deep (`initiated_by.user.userPrincipalName` stays
///   as Azure wrote it, as in Elastic), and `target_resources` with their
///   `modified_properties` as objects keyed by position (`target_resources.0.display_name`,
///   `…modified_properties.3.new_value`), the shape Elastic's rules address.
pub fn ecs_entra<'a>(r: &'a AzureRecord<'a>) -> Field<'a> {
    let sign_in = r.kind().is_sign_in();
    let entries = r
        .fields()
        .iter()
        .filter_map(|(key, value)| match (key.as_str(), value) {
            ("properties", Value::Object(p)) if sign_in => {
                Some((Cow::Borrowed("properties"), sign_in_properties(p)))
            }
            ("properties", Value::Object(p)) => {
                Some((Cow::Borrowed("properties"), audit_properties(p)))
            }
            ("properties", _) => None,
            _ => Some((snake_key(key), Field::Value(value))),
        })
        .collect();
    Field::object(entries)
}

/// Sign-in `properties` in snake_case at every level, except three names Elastic's pipeline
/// spells its own way (and its dashboards and ML jobs read).
fn sign_in_properties<'a>(properties: &'a Map<'a>) -> Field<'a> {
    let entries = properties
        .iter()
        .map(|(key, value)| {
            let name = match key.as_str() {
                "createdDateTime" => Cow::Borrowed("created_at"),
                "processingTimeInMilliseconds" => Cow::Borrowed("processing_time_ms"),
                "riskLevelDuringSignIn" => Cow::Borrowed("risk_level_during_signin"),
                _ => snake_key(key),
            };
            let field = match value {
                Value::Object(inner) => Field::Snake(inner, 7),
                Value::Array(items) if items.iter().any(Value::is_object) => {
                    Field::SnakeList(items, 7)
                }
                other => Field::Value(other),
            };
            (name, field)
        })
        .collect();
    Field::object(entries)
}

fn audit_properties<'a>(properties: &'a Map<'a>) -> Field<'a> {
    let entries = properties
        .iter()
        .map(|(key, value)| {
            let field = match (key.as_str(), value) {
                ("targetResources", Value::Array(resources)) => indexed(resources, target_resource),
                _ => Field::Value(value),
            };
            (snake_key(key), field)
        })
        .collect();
    Field::object(entries)
}

fn target_resource<'a>(resource: &'a Map<'a>) -> Field<'a> {
    let entries = resource
        .iter()
        .map(|(key, value)| {
            let field = match (key.as_str(), value) {
                ("modifiedProperties", Value::Array(changes)) => {
                    indexed(changes, |change| Field::Snake(change, 1))
                }
                (_, Value::Object(inner)) => Field::Snake(inner, 2),
                _ => Field::Value(value),
            };
            (snake_key(key), field)
        })
        .collect();
    Field::object(entries)
}

/// An array as an object keyed by position (`"0"`, `"1"`, …), each object item through
/// `object`, anything else as it is.
fn indexed<'a>(items: &'a [Value], object: impl Fn(&'a Map<'a>) -> Field<'a>) -> Field<'a> {
    let entries = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let field = match item {
                Value::Object(map) => object(map),
                other => Field::Value(other),
            };
            (Cow::<str>::Owned(i.to_string()), field)
        })
        .collect();
    // Positions never repeat, so there is nothing to merge.
    Field::Object(entries)
}

/// `azure.activitylogs` as Elastic's integration writes it:
/// - the envelope's keys in snake_case, without those ECS holds elsewhere (`time`,
///   `resourceId`, `correlationId`, `durationMs`, `location`, `level`, and
///   `callerIpAddress` when it is an address);
/// - `operation_name` in upper case, the spelling Elastic's rules compare with (ARM
///   operation names are case-insensitive, and Azure writes both);
/// - `event_category`, and `identity_name` for an `identity` that is only a name;
/// - `identity.authorization` in snake_case, claim names with `_` for `.`, and
///   `claims_initiated_by_user` read from the claims;
/// - `properties` as written, but `status_code` and `service_request_id`, request and
///   response bodies parsed, and without `statusMessage` (ECS `message`) and
///   `eventCategory`.
pub fn ecs_activity<'a>(r: &'a AzureRecord<'a>) -> Field<'a> {
    let mut entries = Vec::with_capacity(r.fields().len() + 1);
    for (key, value) in r.fields() {
        let entry = match (key.as_str(), value) {
            (
                "time" | "resourceId" | "correlationId" | "durationMs" | "location" | "level"
                | "Level",
                _,
            ) => continue,
            ("callerIpAddress", Value::String(ip)) if ip.parse::<IpAddr>().is_ok() => continue,
            ("operationName", Value::String(op)) => (
                Cow::Borrowed("operation_name"),
                Field::Text(op.to_ascii_uppercase()),
            ),
            ("identity", Value::String(_)) => (Cow::Borrowed("identity_name"), Field::Value(value)),
            ("identity", Value::Object(identity)) => {
                (Cow::Borrowed("identity"), activity_identity(identity))
            }
            ("properties", Value::Object(p)) => {
                (Cow::Borrowed("properties"), activity_properties(p))
            }
            _ => (snake_key(key), Field::Value(value)),
        };
        entries.push(entry);
    }
    entries.push((Cow::Borrowed("event_category"), event_category(r)));
    Field::object(entries)
}

/// The Activity Log's own category of the event: `properties.eventCategory`, else
/// `Policy` for a policy evaluation, else `Administrative`, as Elastic decides it.
fn event_category<'a>(r: &'a AzureRecord<'a>) -> Field<'a> {
    let props = r.properties();
    match props.and_then(|p| p.get("eventCategory")) {
        Some(c @ Value::String(_)) => Field::Value(c),
        _ if props.is_some_and(|p| p.contains_key("policies")) => Field::Text("Policy".into()),
        _ => Field::Text("Administrative".into()),
    }
}

/// The claims Elastic lifts into `claims_initiated_by_user`, by their claim URIs.
const INITIATED_BY: &[(&str, &str)] = &[
    (
        "name",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
    ),
    (
        "givenname",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
    ),
    (
        "surname",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
    ),
    ("fullname", "name"),
];

fn activity_identity<'a>(identity: &'a Map<'a>) -> Field<'a> {
    let mut entries = Vec::with_capacity(identity.len() + 1);
    for (key, value) in identity {
        match (key.as_str(), value) {
            ("authorization", Value::Object(auth)) => {
                entries.push((Cow::Borrowed("authorization"), Field::Snake(auth, 2)));
            }
            ("claims", Value::Object(claims)) => {
                let renamed = claims
                    .iter()
                    .map(|(k, v)| {
                        let name = if k.contains('.') {
                            Cow::Owned(k.replace('.', "_"))
                        } else {
                            Cow::Borrowed(k.as_str())
                        };
                        (name, Field::Value(v))
                    })
                    .collect();
                entries.push((Cow::Borrowed("claims"), Field::object(renamed)));
                let mut by_user: Vec<(Cow<'_, str>, Field<'_>)> = INITIATED_BY
                    .iter()
                    .filter_map(|(name, claim)| {
                        claims
                            .get(claim)
                            .filter(|v| v.is_string())
                            .map(|v| (Cow::Borrowed(*name), Field::Value(v)))
                    })
                    .collect();
                if by_user.iter().any(|(k, _)| k == "name") {
                    by_user.push((
                        Cow::Borrowed("schema"),
                        Field::Text("http://schemas.xmlsoap.org/ws/2005/05/identity/claims".into()),
                    ));
                }
                if !by_user.is_empty() {
                    entries.push((
                        Cow::Borrowed("claims_initiated_by_user"),
                        Field::object(by_user),
                    ));
                }
            }
            _ => entries.push((Cow::Borrowed(key.as_str()), Field::Value(value))),
        }
    }
    Field::object(entries)
}

fn activity_properties<'a>(properties: &'a Map<'a>) -> Field<'a> {
    let entries = properties
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "statusMessage" | "eventCategory"))
        .map(|(key, value)| {
            let name = match key.as_str() {
                "statusCode" => "status_code",
                "serviceRequestId" => "service_request_id",
                other => other,
            };
            let field = match (name, value) {
                (
                    "requestbody" | "requestBody" | "responseBody" | "responsebody",
                    Value::String(text),
                ) => body(text).map_or(Field::Value(value), Field::Owned),
                _ => Field::Value(value),
            };
            (Cow::Borrowed(name), field)
        })
        .collect();
    Field::object(entries)
}

/// A request or response body Azure wrote as JSON text, as the object Elastic's pipeline
/// parses it into (rules query `properties.requestbody.properties.roleDefinitionId`).
fn body(text: &str) -> Option<Value<'_>> {
    Value::parse(text).ok().filter(Value::is_object)
}

/// Activity Log keys with an OCSF home.
fn activity_mapped(key: &str) -> bool {
    matches!(
        key,
        "time"
            | "tenantId"
            | "correlationId"
            | "operationName"
            | "callerIpAddress"
            | "resourceId"
            | "category"
            | "resultType"
    )
}

/// Does this Activity Log field belong in OCSF `unmapped`?
fn activity_unmapped(key: &str, value: &Value) -> bool {
    !value.is_null() && !activity_mapped(key)
}

/// The fields of an Activity Log record with no OCSF attribute.
fn unmapped_activity_fields<'a>(r: &'a AzureRecord<'a>) -> Vec<(Cow<'a, str>, Field<'a>)> {
    r.fields()
        .iter()
        .filter(|(k, v)| activity_unmapped(k, v))
        .map(|(k, v)| (Cow::Borrowed(k.as_str()), Field::Value(v)))
        .collect()
}

/// Does an Activity Log record have any field for OCSF `unmapped`?
pub fn has_unmapped_activity_fields<'a>(r: &'a AzureRecord<'a>) -> bool {
    r.fields().iter().any(|(k, v)| activity_unmapped(k, v))
}

/// CloudTrail keys that have an OCSF home; every other key goes to `unmapped`.
fn cloudtrail_mapped(key: &str) -> bool {
    matches!(
        key,
        "eventTime"
            | "eventSource"
            | "eventName"
            | "awsRegion"
            | "sourceIPAddress"
            | "userAgent"
            | "requestParameters"
            | "responseElements"
            | "requestID"
            | "eventID"
            | "resources"
            | "recipientAccountId"
            | "errorCode"
            | "errorMessage"
            | "userIdentity"
            | "apiVersion"
    )
}

/// Entra `properties` keys that have an OCSF home.
const ENTRA_MAPPED_PROPERTIES: &[&str] = &[
    "id",
    "correlationId",
    "userId",
    "userPrincipalName",
    "userDisplayName",
    "servicePrincipalId",
    "servicePrincipalName",
    "appId",
    "appDisplayName",
    "ipAddress",
    "userAgent",
    "resourceDisplayName",
    "resourceId",
    "activityDisplayName",
    "loggedByService",
    "initiatedBy",
];

/// The fields of a CloudTrail record with no OCSF attribute, and those mapped fields
/// that found no home in this record.
fn unmapped_cloudtrail_fields<'a>(
    r: &'a CloudTrailRecord<'a>,
    request_parameters: bool,
    resources: bool,
) -> Vec<(Cow<'a, str>, Field<'a>)> {
    r.fields()
        .iter()
        .filter(|(k, v)| unmapped_cloudtrail(k, v, request_parameters, resources))
        .map(|(k, v)| (Cow::Borrowed(k.as_str()), Field::Value(v)))
        .collect()
}

/// Does this field of a CloudTrail record belong in `unmapped`?
pub fn unmapped_cloudtrail(
    key: &str,
    value: &Value,
    request_parameters: bool,
    resources: bool,
) -> bool {
    !value.is_null()
        && (!cloudtrail_mapped(key)
            || (request_parameters && key == "requestParameters")
            || (resources && key == "resources"))
}

/// OCSF `unmapped` of a CloudTrail record.
pub fn ocsf_cloudtrail_unmapped<'a>(
    r: &'a CloudTrailRecord<'a>,
    request_parameters: bool,
    resources: bool,
) -> Field<'a> {
    Field::Object(unmapped_cloudtrail_fields(r, request_parameters, resources))
}

/// The fields of an Entra record with no OCSF attribute.
pub fn unmapped_entra_fields<'a>(r: &'a AzureRecord<'a>) -> Vec<(Cow<'a, str>, Field<'a>)> {
    let mut out = Vec::new();
    for (k, v) in r.fields() {
        match (k.as_str(), v) {
            ("properties", Value::Object(p)) => {
                let rest: Vec<_> = p
                    .iter()
                    .filter(|(k, _)| !ENTRA_MAPPED_PROPERTIES.contains(&k.as_str()))
                    .map(|(k, v)| (Cow::Borrowed(k.as_str()), Field::Value(v)))
                    .collect();
                if !rest.is_empty() {
                    out.push((Cow::Borrowed("properties"), Field::Object(rest)));
                }
            }
            ("properties", _) | ("time" | "tenantId" | "correlationId", _) => {}
            _ => out.push((Cow::Borrowed(k.as_str()), Field::Value(v))),
        }
    }
    out
}

/// OCSF `unmapped` of an Entra record.
pub fn ocsf_entra_unmapped<'a>(r: &'a AzureRecord<'a>) -> Field<'a> {
    Field::Object(unmapped_entra_fields(r))
}

/// ECS `gcp.audit.*` as Elastic's `gcp.audit` pipeline writes it: the payload's fields
/// that have no ECS home, in snake case, with `request`, `response`, `metadata` and
/// `serviceData` kept as Google wrote them (IAM policy deltas live there).
fn ecs_gcp_audit<'a>(r: &'a GcpRecord<'a>) -> Map<'a> {
    let proto = r.proto();
    let mut out = Map::new();
    let mut put = |key: &'static str, v: Option<&Value<'a>>| {
        if let Some(v) = v.filter(|v| !is_empty(v)) {
            out.insert(key, v.clone());
        }
    };
    put("type", proto.get("@type"));
    put("resource_name", proto.get("resourceName"));
    put("request", proto.get("request"));
    put("response", proto.get("response"));
    put("metadata", proto.get("metadata"));
    put("service_data", proto.get("serviceData"));
    put("labels", r.fields().get("labels"));
    if let Some(Value::Array(checks)) = proto.get("authorizationInfo") {
        let checks: Vec<Value> = checks
            .iter()
            .map(|c| match c {
                Value::Object(m) => Value::Object(
                    m.iter()
                        .filter(|(_, v)| !is_empty(v))
                        .map(|(k, v)| (Str::from(snake_key(k)), v.clone()))
                        .collect(),
                ),
                other => other.clone(),
            })
            .collect();
        out.insert("authorization_info", Value::Array(checks));
    }
    let auth = proto.get("authenticationInfo").and_then(Value::as_object);
    let delegated: Map<'a> = auth
        .into_iter()
        .flatten()
        .filter(|(k, v)| {
            !matches!(k.as_str(), "principalEmail" | "principalSubject") && !is_empty(v)
        })
        .map(|(k, v)| (Str::from(snake_key(k)), v.clone()))
        .collect();
    if !delegated.is_empty() {
        out.insert("authentication_info", Value::Object(delegated));
    }
    if let Some(locations) = proto
        .get("resourceLocation")
        .and_then(|l| l.get("currentLocations"))
        .filter(|v| !is_empty(v))
    {
        out.insert(
            "resource_location",
            Value::Object(Map::from_iter([(
                "current_locations".into(),
                locations.clone(),
            )])),
        );
    }
    if let Some(n) = proto.get("numResponseItems").and_then(|n| {
        n.as_i64()
            .or_else(|| n.as_str().and_then(|s| s.parse().ok()))
    }) {
        out.insert("num_response_items", n.into());
    }
    let mut status = Map::new();
    if let Some(code) = r.status_code() {
        status.insert("code", code.into());
    }
    if let Some(message) = r.status_message() {
        status.insert("message", message.into());
    }
    if !status.is_empty() {
        out.insert("status", Value::Object(status));
    }
    if let Some(t) = r
        .fields()
        .get("receiveTimestamp")
        .and_then(Value::as_str)
        .and_then(crate::transforms::decode::time::parse_time)
    {
        out.insert(
            "receive_timestamp",
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .into(),
        );
    }
    if let Some(kind) = r.resource_type() {
        out.insert(
            "resource",
            Value::Object(Map::from_iter([("type".into(), kind.into())])),
        );
    }
    if let Some(op) = r
        .fields()
        .get("operation")
        .and_then(|o| o.get("id"))
        .filter(|id| id.as_str() != r.id())
    {
        out.insert(
            "logentry_operation",
            Value::Object(Map::from_iter([("id".into(), op.clone())])),
        );
    }
    out
}

/// Elastic's pipeline drops null and empty values.
fn is_empty(v: &Value<'_>) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::decode::{decode, Decoded};

    /// `aws.cloudtrail.response_elements` of the record `input`.
    fn response_text(input: &str) -> serde_json::Value {
        let Ok(Decoded::Record(SourceRecord::CloudTrail(r))) =
            decode(input, 1 << 20, chrono::Utc::now())
        else {
            panic!("not a CloudTrail record: {input}")
        };
        let mut out = Vec::new();
        ecs_cloudtrail(&r).write(&mut out);
        let section: serde_json::Value = serde_json::from_slice(&out).unwrap();
        section["response_elements"].clone()
    }

    /// `aws.cloudtrail` written alone is the section its list of fields writes, and it is
    /// written alone unless two keys may meet.
    #[test]
    fn the_section_written_alone_is_the_listed_section() {
        let identity = r#""userIdentity":{"type":"AssumedRole","principalId":"AROA1:s","arn":"arn:aws:sts::1:assumed-role/r/s","sessionContext":{"sessionIssuer":{"type":"Role","userName":"r","user_name":"x"},"attributes":{"creationDate":"2024-01-01T00:00:00Z","mfaAuthenticated":"false"},"sourceIdentity":"me"}}"#;
        let cases = [
            (
                format!(
                    r#"{{"eventVersion":"1.08",{identity},"eventTime":"2024-01-02T03:04:05Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","requestParameters":null,"responseElements":{{"ConsoleLogin":"Success"}},"additionalEventData":{{"MFAUsed":"No","LoginTo":"https://console"}},"tlsDetails":{{"tlsVersion":"TLSv1.2"}},"type":"x","arn":"y","p_any":1}}"#
                ),
                true,
            ),
            (
                r#"{"eventName":"X","eventSource":"s","insightDetails":{"state":"Start"},"serviceEventDetails":{"a":[1,{"b":2}]}}"#.to_string(),
                true,
            ),
            (r#"{"eventName":"X","eventSource":"s","event_name":"Y"}"#.to_string(), false),
            (r#"{"eventName":"X","eventSource":"s","fooBar":1}"#.to_string(), false),
            (r#"{"eventName":"X","eventSource":"s","flattened":1}"#.to_string(), false),
            (
                r#"{"eventName":"X","eventSource":"s","userIdentity":{"userName":"a","user_name":"b"}}"#.to_string(),
                false,
            ),
            (
                r#"{"eventName":"X","eventSource":"s","userIdentity":{"sessionContext":{"sourceIdentity":"a","attributes":{"sourceIdentity":"b"}}}}"#.to_string(),
                false,
            ),
        ];
        for (record, alone) in cases {
            let Ok(Decoded::Record(SourceRecord::CloudTrail(r))) =
                decode(&record, 1 << 20, chrono::Utc::now())
            else {
                panic!("not a CloudTrail record: {record}")
            };
            let mut direct = b"[".to_vec();
            assert_eq!(
                write_ecs_cloudtrail_alone(&r, &mut direct),
                alone,
                "{record}"
            );
            let mut listed = b"[".to_vec();
            ecs_cloudtrail(&r).write(&mut listed);
            if alone {
                assert_eq!(
                    String::from_utf8(direct).unwrap(),
                    String::from_utf8(listed).unwrap()
                );
            } else {
                assert_eq!(direct, b"[", "{record}");
            }
        }
    }

    #[test]
    fn keys_that_share_a_bucket_keep_the_record_s_order() {
        // `status` and `createDate` share a bucket.
        let record = r#"{"eventName":"CreateAccessKey","eventSource":"iam.amazonaws.com","responseElements":{"accessKey":{"status":"Active","createDate":"Jan 8, 2020"}}}"#;
        assert_eq!(
            response_text(record),
            "{accessKey={status=Active, createDate=Jan 8, 2020}}"
        );
        let swapped = r#"{"eventName":"CreateAccessKey","eventSource":"iam.amazonaws.com","responseElements":{"accessKey":{"createDate":"Jan 8, 2020","status":"Active"}}}"#;
        assert_eq!(
            response_text(swapped),
            "{accessKey={createDate=Jan 8, 2020, status=Active}}"
        );
        // Forwarded by EventBridge, the record is the event's `detail`.
        let forwarded = format!(
            r#"{{"detail-type":"AWS API Call via CloudTrail","source":"aws.iam","detail":{record}}}"#
        );
        assert_eq!(
            response_text(&forwarded),
            "{accessKey={status=Active, createDate=Jan 8, 2020}}"
        );
    }

    #[test]
    fn a_repeated_key_prints_its_last_value_in_its_first_place() {
        // As a Java `HashMap` keeps a key put twice.
        let record = r#"{"eventName":"CreateAccessKey","eventSource":"iam.amazonaws.com","responseElements":{"accessKey":{"status":"Active","createDate":"Jan 8, 2020","status":"Inactive"}}}"#;
        assert_eq!(
            response_text(record),
            "{accessKey={status=Inactive, createDate=Jan 8, 2020}}"
        );
    }
}
