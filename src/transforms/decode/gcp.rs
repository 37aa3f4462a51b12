//! Google Cloud Audit Logs: a `LogEntry` whose `protoPayload` is an `AuditLog`, as a Log
//! Router sink publishes it to Pub/Sub, a GCS export writes it, or `gcloud logging read
//! --format=json` prints it.

use super::tree::{Map, Value};
use chrono::{DateTime, Utc};

use super::fields::{expect_array, expect_object, expect_strings, obj_of, str_of, Keys, WrongType};
use super::time::{parse_time, TimeSource};

/// The `@type` of a Cloud Audit Logs payload.
pub const AUDIT_LOG_TYPE: &str = "type.googleapis.com/google.cloud.audit.AuditLog";

/// Is this a `LogEntry` with a proto payload (of any type: the decoder refuses the types
/// it does not read, with their name, rather than calling them unrecognised)?
pub fn looks_like(map: &Map<'_>) -> bool {
    map.get("protoPayload").is_some_and(Value::is_object)
        && (map.contains_key("logName") || map.contains_key("insertId"))
}

/// The payload type of a `LogEntry` that is not an audit log.
pub fn payload_type<'m>(map: &'m Map<'_>) -> Option<&'m str> {
    let t = obj_of(map, "protoPayload").and_then(|p| str_of(p, "@type"));
    match t {
        Some(AUDIT_LOG_TYPE) => None,
        Some(other) => Some(other),
        None => Some("(none)"),
    }
}

/// A validated Cloud Audit Logs entry.
#[derive(Debug, Clone)]
pub struct GcpRecord<'a> {
    fields: Map<'a>,
    time: DateTime<Utc>,
    time_source: TimeSource,
}

impl<'a> GcpRecord<'a> {
    /// The same record, owning its text.
    pub fn into_owned(self) -> GcpRecord<'static> {
        GcpRecord {
            fields: self.fields.into_owned(),
            ..self
        }
    }

    pub fn new(fields: Map<'a>, now: DateTime<Utc>) -> Result<Self, WrongType> {
        expect_strings(
            &fields,
            "",
            const {
                &Keys::new(&[
                    "insertId",
                    "logName",
                    "timestamp",
                    "receiveTimestamp",
                    "severity",
                ])
            },
        )?;
        expect_object(&fields, "", "resource")?;
        if let Some(resource) = obj_of(&fields, "resource") {
            expect_strings(resource, "resource", const { &Keys::new(&["type"]) })?;
            expect_object(resource, "resource", "labels")?;
        }
        let proto = obj_of(&fields, "protoPayload").expect("checked by looks_like");
        expect_strings(
            proto,
            "protoPayload",
            const { &Keys::new(&["methodName", "serviceName", "resourceName"]) },
        )?;
        for key in ["authenticationInfo", "requestMetadata", "status"] {
            expect_object(proto, "protoPayload", key)?;
        }
        expect_array(proto, "protoPayload", "authorizationInfo")?;
        if let Some(auth) = obj_of(proto, "authenticationInfo") {
            expect_strings(
                auth,
                "protoPayload.authenticationInfo",
                const { &Keys::new(&["principalEmail", "principalSubject"]) },
            )?;
        }
        if let Some(meta) = obj_of(proto, "requestMetadata") {
            expect_strings(
                meta,
                "protoPayload.requestMetadata",
                const { &Keys::new(&["callerIp", "callerSuppliedUserAgent"]) },
            )?;
        }
        let (time, time_source) = match str_of(&fields, "timestamp").and_then(parse_time) {
            Some(t) => (t, TimeSource::Event),
            None => (now, TimeSource::Ingest),
        };
        Ok(GcpRecord {
            fields,
            time,
            time_source,
        })
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

    /// The audit log payload.
    pub fn proto(&self) -> &Map<'a> {
        obj_of(&self.fields, "protoPayload").expect("checked by looks_like")
    }

    fn proto_str(&self, key: &str) -> Option<&str> {
        str_of(self.proto(), key)
    }

    pub fn id(&self) -> Option<&str> {
        str_of(&self.fields, "insertId").filter(|s| !s.is_empty())
    }

    /// `google.iam.admin.v1.CreateServiceAccountKey`, `v1.compute.instances.setMetadata`.
    pub fn method(&self) -> &str {
        self.proto_str("methodName").unwrap_or("")
    }

    /// `iam.googleapis.com`.
    pub fn service(&self) -> &str {
        self.proto_str("serviceName").unwrap_or("")
    }

    /// The monitored resource's type (`service_account`, `gce_instance`, `k8s_cluster`).
    pub fn resource_type(&self) -> Option<&str> {
        obj_of(&self.fields, "resource").and_then(|r| str_of(r, "type"))
    }

    /// One of the monitored resource's labels (`project_id`, `instance_id`).
    pub fn resource_label(&self, key: &str) -> Option<&str> {
        obj_of(&self.fields, "resource")
            .and_then(|r| obj_of(r, "labels"))
            .and_then(|l| str_of(l, key))
            .filter(|s| !s.is_empty())
    }

    pub fn resource_name(&self) -> Option<&str> {
        self.proto_str("resourceName").filter(|s| !s.is_empty())
    }

    /// A non-empty text of one of the payload's objects (`authenticationInfo`,
    /// `requestMetadata`, `status`).
    fn payload_str(&self, object: &str, key: &str) -> Option<&str> {
        obj_of(self.proto(), object)
            .and_then(|o| str_of(o, key))
            .filter(|s| !s.is_empty())
    }

    pub fn principal_email(&self) -> Option<&str> {
        self.payload_str("authenticationInfo", "principalEmail")
    }

    /// `user:alice@example.com`, `serviceAccount:…`, `principal://…`.
    pub fn principal_subject(&self) -> Option<&str> {
        self.payload_str("authenticationInfo", "principalSubject")
    }

    /// The caller's address as written: an IP, or `private` / `gce-internal-ip`.
    pub fn caller_ip(&self) -> Option<&str> {
        self.payload_str("requestMetadata", "callerIp")
    }

    pub fn user_agent(&self) -> Option<&str> {
        self.payload_str("requestMetadata", "callerSuppliedUserAgent")
    }

    /// The project the entry was logged in: the resource's `project_id` label, else the
    /// project in `logName`.
    pub fn project_id(&self) -> Option<&str> {
        self.resource_label("project_id").or_else(|| {
            str_of(&self.fields, "logName")?
                .strip_prefix("projects/")?
                .split('/')
                .next()
        })
    }

    /// The audit log's kind, from `logName`: `activity`, `data_access`, `system_event` or
    /// `policy` (Elastic's `event.provider`).
    pub fn log_type(&self) -> Option<&str> {
        let name = str_of(&self.fields, "logName")?;
        let (_, kind) = name
            .rsplit_once("%2F")
            .or_else(|| name.rsplit_once("/cloudaudit.googleapis.com/"))?;
        Some(kind).filter(|k| !k.is_empty())
    }

    /// `protoPayload.status.code` (a `google.rpc.Code`; 0 is OK), when written.
    pub fn status_code(&self) -> Option<i64> {
        let code = obj_of(self.proto(), "status")?.get("code")?;
        code.as_i64()
            .or_else(|| code.as_str().and_then(|s| s.parse().ok()))
    }

    pub fn status_message(&self) -> Option<&str> {
        self.payload_str("status", "message")
    }

    /// The single authorization check's `granted`, when there is exactly one.
    pub fn single_grant(&self) -> Option<bool> {
        match self
            .proto()
            .get("authorizationInfo")?
            .as_array()?
            .as_slice()
        {
            [only] => only.get("granted")?.as_bool(),
            _ => None,
        }
    }

    /// Did the call succeed? The status code decides; without one, a single
    /// authorization check's `granted`; without either, nobody knows (`None`).
    pub fn outcome(&self) -> Option<bool> {
        match self.status_code() {
            Some(code) => Some(code == 0),
            None => self.single_grant(),
        }
    }

    pub fn failed(&self) -> bool {
        self.outcome() == Some(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::decode::tree::json;

    fn record(v: Value<'static>) -> GcpRecord<'static> {
        GcpRecord::new(v.as_object().cloned().unwrap(), Utc::now()).unwrap()
    }

    #[test]
    fn the_entry_reads_as_elastic_reads_it() {
        let r = record(json!({
            "insertId": "x1", "logName": "projects/p1/logs/cloudaudit.googleapis.com%2Factivity",
            "timestamp": "2024-11-06T10:00:00.000000Z",
            "resource": {"type": "service_account", "labels": {"project_id": "p1"}},
            "protoPayload": {"@type": AUDIT_LOG_TYPE, "methodName": "google.iam.admin.v1.CreateServiceAccountKey",
                "serviceName": "iam.googleapis.com",
                "authenticationInfo": {"principalEmail": "a@example.com", "principalSubject": "user:a@example.com"},
                "authorizationInfo": [{"granted": true, "permission": "iam.serviceAccountKeys.create"}],
                "requestMetadata": {"callerIp": "203.0.113.1", "callerSuppliedUserAgent": "gcloud"},
                "status": {}}
        }));
        assert_eq!(r.method(), "google.iam.admin.v1.CreateServiceAccountKey");
        assert_eq!(r.log_type(), Some("activity"));
        assert_eq!(r.project_id(), Some("p1"));
        assert_eq!(r.outcome(), Some(true), "granted, no status code");
        assert_eq!(r.time_source(), TimeSource::Event);
        let denied = record(
            json!({"insertId": "x2", "logName": "projects/p2/logs/cloudaudit.googleapis.com%2Fdata_access",
            "protoPayload": {"@type": AUDIT_LOG_TYPE, "status": {"code": 7, "message": "PERMISSION_DENIED"}}}),
        );
        assert_eq!(denied.outcome(), Some(false));
        assert_eq!(denied.project_id(), Some("p2"), "from logName");
        assert_eq!(denied.status_message(), Some("PERMISSION_DENIED"));
    }

    #[test]
    fn wrong_types_are_named() {
        let err = GcpRecord::new(
            json!({"insertId": "x", "protoPayload": {"methodName": 5}})
                .as_object()
                .cloned()
                .unwrap(),
            Utc::now(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `protoPayload.methodName` must be a string, found a number"
        );
    }
}
