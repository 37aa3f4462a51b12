//! Microsoft Entra ID records: the diagnostic-settings shape (`time`, `category`,
//! `operationName`, `properties{…}`) and the Log Analytics export dialect (PascalCase
//! columns, nested JSON inside strings), both brought to the diagnostic shape.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::fields::{
    canonicalize_keys, expect_array, expect_object, expect_strings, obj_of, str_of, WrongType,
};
use super::time::{parse_time, TimeSource};

const TOP_LEVEL: &[&str] = &[
    "time",
    "resourceId",
    "operationName",
    "operationVersion",
    "category",
    "tenantId",
    "resultType",
    "resultSignature",
    "resultDescription",
    "durationMs",
    "callerIpAddress",
    "correlationId",
    "identity",
    "Level",
    "location",
    "properties",
];

/// The keys of an audit record's target resource, as Microsoft Graph spells them.
const TARGET: &[&str] = &[
    "id",
    "displayName",
    "type",
    "userPrincipalName",
    "groupType",
    "modifiedProperties",
    "administrativeUnits",
];

const TOP_LEVEL_STRINGS: &[&str] = &[
    "time",
    "operationName",
    "category",
    "tenantId",
    "callerIpAddress",
    "correlationId",
    "identity",
];

const PROPERTY_STRINGS: &[&str] = &[
    "id",
    "activityDisplayName",
    "activityDateTime",
    "createdDateTime",
    "category",
    "result",
    "userPrincipalName",
    "userDisplayName",
    "ipAddress",
    "appDisplayName",
    "servicePrincipalName",
    "servicePrincipalCredentialKeyId",
];

/// The kind of Entra log a category names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntraKind {
    Audit,
    SignIn,
    NonInteractiveSignIn,
    ServicePrincipalSignIn,
    ManagedIdentitySignIn,
    /// A category this version does not map specifically; passed through and counted.
    Other,
}

impl EntraKind {
    fn of(category: &str) -> Self {
        match category {
            "AuditLogs" => EntraKind::Audit,
            "SignInLogs" | "SigninLogs" => EntraKind::SignIn,
            "NonInteractiveUserSignInLogs" | "AADNonInteractiveUserSignInLogs" => {
                EntraKind::NonInteractiveSignIn
            }
            "ServicePrincipalSignInLogs" | "AADServicePrincipalSignInLogs" => {
                EntraKind::ServicePrincipalSignIn
            }
            "ManagedIdentitySignInLogs" | "AADManagedIdentitySignInLogs" => {
                EntraKind::ManagedIdentitySignIn
            }
            _ => EntraKind::Other,
        }
    }

    pub fn is_sign_in(self) -> bool {
        matches!(
            self,
            EntraKind::SignIn
                | EntraKind::NonInteractiveSignIn
                | EntraKind::ServicePrincipalSignIn
                | EntraKind::ManagedIdentitySignIn
        )
    }
}

/// Does this object look like an Entra diagnostic record (any key casing)?
pub fn looks_like(map: &Map<String, Value>) -> bool {
    (map.contains_key("category") || map.contains_key("Category"))
        && ["operationName", "operationname", "properties", "time"]
            .iter()
            .any(|k| map.contains_key(*k))
}

/// Does this object look like a Log Analytics row of an Entra table?
pub fn looks_like_log_analytics(map: &Map<String, Value>) -> bool {
    map.contains_key("TimeGenerated")
        && (map.contains_key("OperationName") || map.contains_key("Type"))
}

/// Bring a Log Analytics row to the diagnostic-settings shape: the envelope columns go to
/// the top level, every other column into `properties` with a camelCase name, and columns
/// that hold JSON text are parsed.
pub fn from_log_analytics(row: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    let mut props = Map::new();
    for (key, value) in row {
        let top = match key.as_str() {
            "TimeGenerated" => Some("time"),
            "OperationName" => Some("operationName"),
            "OperationVersion" => Some("operationVersion"),
            "TenantId" => Some("tenantId"),
            "ResourceId" => Some("resourceId"),
            "ResultSignature" => Some("resultSignature"),
            "ResultType" => Some("resultType"),
            "ResultDescription" => Some("resultDescription"),
            "CorrelationId" => Some("correlationId"),
            "Identity" => Some("identity"),
            "Level" => Some("Level"),
            "DurationMs" => Some("durationMs"),
            "CallerIpAddress" => Some("callerIpAddress"),
            "Type" => Some("category"),
            _ => None,
        };
        match top {
            Some(name) => {
                out.insert(name.to_string(), value);
            }
            None => {
                let name = match key.as_str() {
                    "AADOperationType" => "operationType".to_string(),
                    "Id" => "id".to_string(),
                    other => lower_first(other),
                };
                props.insert(name, parse_embedded_json(value));
            }
        }
    }
    if let Some(Value::String(c)) = out.get("category") {
        let diagnostic = match c.as_str() {
            "SigninLogs" => Some("SignInLogs"),
            "AADNonInteractiveUserSignInLogs" => Some("NonInteractiveUserSignInLogs"),
            "AADServicePrincipalSignInLogs" => Some("ServicePrincipalSignInLogs"),
            "AADManagedIdentitySignInLogs" => Some("ManagedIdentitySignInLogs"),
            _ => None,
        };
        if let Some(d) = diagnostic {
            out.insert("category".into(), Value::String(d.into()));
        }
    }
    out.insert("properties".into(), Value::Object(props));
    out
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn parse_embedded_json(value: Value) -> Value {
    match &value {
        Value::String(s) if s.starts_with('{') || s.starts_with('[') => {
            serde_json::from_str(s).unwrap_or(value)
        }
        _ => value,
    }
}

/// An Entra record whose fields the normalizers read have the types they expect.
#[derive(Debug, Clone)]
pub struct EntraRecord {
    fields: Map<String, Value>,
    kind: EntraKind,
    time: DateTime<Utc>,
    time_source: TimeSource,
}

impl EntraRecord {
    pub fn new(mut fields: Map<String, Value>, now: DateTime<Utc>) -> Result<Self, WrongType> {
        if !fields.contains_key("operationName") || !fields.contains_key("category") {
            canonicalize_keys(&mut fields, TOP_LEVEL);
        }
        expect_strings(&fields, "", TOP_LEVEL_STRINGS)?;
        expect_object(&fields, "", "properties")?;
        if let Some(props) = obj_of(&fields, "properties") {
            expect_strings(props, "properties", PROPERTY_STRINGS)?;
            expect_object(props, "properties", "initiatedBy")?;
            expect_object(props, "properties", "status")?;
            expect_object(props, "properties", "location")?;
            expect_array(props, "properties", "targetResources")?;
        }
        // Some exports spell a target's keys in PascalCase (`Type`, `Id`); readers look
        // for one spelling.
        if let Some(Value::Array(targets)) = fields
            .get_mut("properties")
            .and_then(|p| p.get_mut("targetResources"))
        {
            for target in targets.iter_mut().filter_map(Value::as_object_mut) {
                canonicalize_keys(target, TARGET);
            }
        }
        let kind = EntraKind::of(str_of(&fields, "category").unwrap_or(""));
        let props = obj_of(&fields, "properties");
        let parsed = str_of(&fields, "time")
            .or_else(|| props.and_then(|p| str_of(p, "activityDateTime")))
            .or_else(|| props.and_then(|p| str_of(p, "createdDateTime")))
            .and_then(parse_time);
        let (time, time_source) = match parsed {
            Some(t) => (t, TimeSource::Event),
            None => (now, TimeSource::Ingest),
        };
        Ok(EntraRecord {
            fields,
            kind,
            time,
            time_source,
        })
    }

    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }

    pub fn kind(&self) -> EntraKind {
        self.kind
    }

    pub fn time(&self) -> DateTime<Utc> {
        self.time
    }

    pub fn time_source(&self) -> TimeSource {
        self.time_source
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        str_of(&self.fields, key)
    }

    pub fn properties(&self) -> Option<&Map<String, Value>> {
        obj_of(&self.fields, "properties")
    }

    /// A non-empty string in `properties`.
    pub fn prop_str(&self, key: &str) -> Option<&str> {
        self.properties().and_then(|p| str_of(p, key))
    }

    /// The first target resource of the given type (`User`, `ServicePrincipal`, …).
    pub fn first_target(&self, kind: &str) -> Option<&Map<String, Value>> {
        self.properties()?
            .get("targetResources")?
            .as_array()?
            .iter()
            .filter_map(Value::as_object)
            .find(|t| str_of(t, "type").is_some_and(|t| t.eq_ignore_ascii_case(kind)))
    }

    /// The caller's user agent: a sign-in's `userAgent`, or an audit's `User-Agent` detail.
    pub fn user_agent(&self) -> Option<&str> {
        self.prop_str("userAgent")
            .or_else(|| self.additional_detail("User-Agent"))
    }

    /// A value from the audit record's `additionalDetails` key/value list.
    pub fn additional_detail(&self, key: &str) -> Option<&str> {
        self.properties()?
            .get("additionalDetails")?
            .as_array()?
            .iter()
            .filter_map(Value::as_object)
            .find(|kv| str_of(kv, "key") == Some(key))
            .and_then(|kv| str_of(kv, "value"))
    }

    pub fn category(&self) -> &str {
        self.str("category").unwrap_or("")
    }

    /// The activity: `properties.activityDisplayName`, else `operationName`.
    pub fn activity(&self) -> &str {
        self.prop_str("activityDisplayName")
            .or_else(|| self.str("operationName"))
            .unwrap_or("")
            .trim()
    }

    /// The stable id: `properties.id`, else the correlation id.
    pub fn id(&self) -> Option<&str> {
        self.prop_str("id")
            .or_else(|| self.prop_str("correlationId"))
            .or_else(|| self.str("correlationId"))
    }

    /// Sign-ins fail on a non-zero error code; audits on a result other than success.
    pub fn failed(&self) -> bool {
        if self.kind.is_sign_in() {
            let code = self
                .properties()
                .and_then(|p| obj_of(p, "status"))
                .and_then(|s| s.get("errorCode"))
                .or_else(|| self.fields.get("resultType"));
            match code {
                Some(Value::Number(n)) => n.as_i64() != Some(0),
                Some(Value::String(s)) => s != "0" && !s.is_empty(),
                _ => false,
            }
        } else {
            self.prop_str("result")
                .is_some_and(|r| !r.eq_ignore_ascii_case("success"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn log_analytics_row_becomes_diagnostic_shape() {
        let row = json!({"TimeGenerated": "2021-08-02T13:29:25.983Z", "Type": "AuditLogs",
            "OperationName": "Update application", "Category": "ApplicationManagement",
            "Id": "Directory_1", "AADOperationType": "Update",
            "InitiatedBy": "{\"user\":{\"userPrincipalName\":\"a@b.c\"}}",
            "TargetResources": "[{\"id\":\"t1\"}]"});
        let m = from_log_analytics(row.as_object().cloned().unwrap());
        let r = EntraRecord::new(m, Utc::now()).unwrap();
        assert_eq!(r.kind(), EntraKind::Audit);
        assert_eq!(r.id(), Some("Directory_1"));
        assert_eq!(r.prop_str("operationType"), Some("Update"));
        assert_eq!(r.prop_str("category"), Some("ApplicationManagement"));
        assert_eq!(
            r.properties().unwrap()["initiatedBy"]["user"]["userPrincipalName"],
            "a@b.c"
        );
        assert_eq!(r.properties().unwrap()["targetResources"][0]["id"], "t1");
    }

    #[test]
    fn sign_in_failure_from_error_code() {
        let rec = |code: Value| {
            EntraRecord::new(
                json!({"category": "SignInLogs", "time": "2022-01-24T05:10:08Z",
                    "properties": {"status": {"errorCode": code}}})
                .as_object()
                .cloned()
                .unwrap(),
                Utc::now(),
            )
            .unwrap()
        };
        assert!(!rec(json!(0)).failed());
        assert!(rec(json!(50126)).failed());
    }
}
