//! The sections of a document copied from the source record: ECS `aws.cloudtrail` and
//! `azure.*`, OCSF `unmapped`, and single fields. A document only marks where each goes
//! ([`Part`]); it is written straight from the record at serialization, never cloned
//! into the document first. ECS and OCSF both use this module; it uses neither.

use std::borrow::Cow;

use serde::ser::{Serialize, Serializer};
use serde_json::Value;

use super::field::{snake_key, Field};
use crate::transforms::decode::{CloudTrailRecord, EntraRecord, SourceRecord};

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
}

impl Part {
    pub fn write<S: Serializer>(self, source: &SourceRecord, s: S) -> Result<S::Ok, S::Error> {
        match (self, source) {
            (Part::Field(key), _) => source.fields().get(key).serialize(s),
            (Part::EcsCloudTrail, SourceRecord::CloudTrail(r)) => ecs_cloudtrail(r).serialize(s),
            (Part::EcsEntra, SourceRecord::Entra(r)) => ecs_entra(r).serialize(s),
            (
                Part::OcsfCloudTrailUnmapped {
                    request_parameters,
                    resources,
                },
                SourceRecord::CloudTrail(r),
            ) => ocsf_cloudtrail_unmapped(r, request_parameters, resources).serialize(s),
            (Part::OcsfEntraUnmapped, SourceRecord::Entra(r)) => {
                ocsf_entra_unmapped(r).serialize(s)
            }
            // The normalizers only splice parts of their own provider.
            _ => s.serialize_none(),
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

/// `aws.cloudtrail`: every field of the record with its key in snake_case, the per-API
/// objects under `flattened`.
pub fn ecs_cloudtrail(r: &CloudTrailRecord) -> Field<'_> {
    let mut entries = Vec::with_capacity(r.fields().len() + 1);
    let mut nested = Vec::new();
    for (key, value) in r.fields() {
        if let Some(name) = flattened(key) {
            if !value.is_null() {
                nested.push((Cow::Borrowed(name), Field::Value(value)));
            }
        } else if key == "userIdentity" {
            if let Value::Object(identity) = value {
                entries.push((Cow::Borrowed("user_identity"), Field::Snake(identity, 4)));
            }
        } else {
            entries.push((snake_key(key), Field::Value(value)));
        }
    }
    if !nested.is_empty() {
        // At its sorted place, so the (usually sorted) entries need no sort.
        let at = entries.partition_point(|(k, _)| k.as_ref() < "flattened");
        entries.insert(at, (Cow::Borrowed("flattened"), Field::object(nested)));
    }
    Field::object(entries)
}

/// `azure.<dataset>`: every field of the record with its key in snake_case, and those of
/// `properties` one level deep.
pub fn ecs_entra(r: &EntraRecord) -> Field<'_> {
    let entries = r
        .fields()
        .iter()
        .filter_map(|(key, value)| match (key.as_str(), value) {
            ("properties", Value::Object(p)) => {
                Some((Cow::Borrowed("properties"), Field::Snake(p, 1)))
            }
            ("properties", _) => None,
            _ => Some((snake_key(key), Field::Value(value))),
        })
        .collect();
    Field::object(entries)
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
fn unmapped_cloudtrail_fields(
    r: &CloudTrailRecord,
    request_parameters: bool,
    resources: bool,
) -> Vec<(Cow<'_, str>, Field<'_>)> {
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
pub fn ocsf_cloudtrail_unmapped(
    r: &CloudTrailRecord,
    request_parameters: bool,
    resources: bool,
) -> Field<'_> {
    Field::Object(unmapped_cloudtrail_fields(r, request_parameters, resources))
}

/// The fields of an Entra record with no OCSF attribute.
pub fn unmapped_entra_fields(r: &EntraRecord) -> Vec<(Cow<'_, str>, Field<'_>)> {
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
pub fn ocsf_entra_unmapped(r: &EntraRecord) -> Field<'_> {
    Field::Object(unmapped_entra_fields(r))
}
