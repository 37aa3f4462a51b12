//! Azure Monitor records: Microsoft Entra ID logs (audits, sign-ins) and the Azure
//! Activity Log (control-plane operations on subscriptions). Azure streams both in one
//! envelope (`time`, `category`, `operationName`, `resourceId`, `properties{…}`), and one
//! hub may carry them mixed, so one record type holds both and the category tells them
//! apart. Log Analytics exports (PascalCase columns, nested JSON inside strings; the
//! `AzureActivity` table with its own column names) are brought to the diagnostic shape.

use super::tree::{Map, Value};
use chrono::{DateTime, Utc};

use super::fields::{
    canonicalize_keys, expect_array, expect_object, expect_strings, obj_of, str_of, Keys, WrongType,
};
use super::time::{parse_time, TimeSource};

const TOP_LEVEL: Keys = Keys::new(&[
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
    "level",
    "location",
    "properties",
]);

/// The keys of an audit record's target resource, as Microsoft Graph spells them.
const TARGET: Keys = Keys::new(&[
    "id",
    "displayName",
    "type",
    "userPrincipalName",
    "groupType",
    "modifiedProperties",
    "administrativeUnits",
]);

const TOP_LEVEL_STRINGS: Keys = Keys::new(&[
    "time",
    "operationName",
    "category",
    "tenantId",
    "callerIpAddress",
    "correlationId",
    "identity",
]);

const ACTIVITY_STRINGS: Keys = Keys::new(&[
    "time",
    "operationName",
    "category",
    "tenantId",
    "callerIpAddress",
    "correlationId",
    "resourceId",
    "resultType",
    "resultSignature",
]);

const PROPERTY_STRINGS: Keys = Keys::new(&[
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
]);

/// The Azure log a category names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AzureLog {
    Audit,
    SignIn,
    NonInteractiveSignIn,
    ServicePrincipalSignIn,
    ManagedIdentitySignIn,
    /// The Activity Log: an operation on a subscription's resources.
    Activity,
    /// A category this version does not map specifically; passed through and counted.
    Other,
}

/// The Activity Log's categories, with the `Write`/`Delete`/`Action` of its older
/// schema.
const ACTIVITY_CATEGORIES: &[&str] = &[
    "Administrative",
    "Security",
    "ServiceHealth",
    "ResourceHealth",
    "Alert",
    "Autoscale",
    "Recommendation",
    "Policy",
    "Write",
    "Delete",
    "Action",
];

impl AzureLog {
    /// The log a record belongs to. Entra audits may also carry the category `Policy`,
    /// but name their operation in words ("Authentication Methods Policy Update"); an
    /// Activity Log operation is always `{namespace}/{type…}/{verb}`.
    fn of(category: &str, operation: Option<&str>) -> Self {
        if ACTIVITY_CATEGORIES
            .iter()
            .any(|c| c.eq_ignore_ascii_case(category))
            && operation.is_none_or(|op| op.contains('/'))
        {
            return AzureLog::Activity;
        }
        match category {
            "AuditLogs" => AzureLog::Audit,
            "SignInLogs" | "SigninLogs" => AzureLog::SignIn,
            "NonInteractiveUserSignInLogs" | "AADNonInteractiveUserSignInLogs" => {
                AzureLog::NonInteractiveSignIn
            }
            "ServicePrincipalSignInLogs" | "AADServicePrincipalSignInLogs" => {
                AzureLog::ServicePrincipalSignIn
            }
            "ManagedIdentitySignInLogs" | "AADManagedIdentitySignInLogs" => {
                AzureLog::ManagedIdentitySignIn
            }
            _ => AzureLog::Other,
        }
    }

    pub fn is_sign_in(self) -> bool {
        matches!(
            self,
            AzureLog::SignIn
                | AzureLog::NonInteractiveSignIn
                | AzureLog::ServicePrincipalSignIn
                | AzureLog::ManagedIdentitySignIn
        )
    }
}

/// Does this object look like an Entra diagnostic record (any key casing)?
pub fn looks_like(map: &Map<'_>) -> bool {
    (map.contains_key("category") || map.contains_key("Category"))
        && ["operationName", "operationname", "properties", "time"]
            .iter()
            .any(|k| map.contains_key(k))
}

/// Does this object look like a Log Analytics row of an Entra table?
pub fn looks_like_log_analytics(map: &Map<'_>) -> bool {
    map.contains_key("TimeGenerated")
        && (map.contains_key("OperationName") || map.contains_key("Type"))
}

/// Is this Log Analytics row from the `AzureActivity` table?
pub fn is_azure_activity_row(map: &Map<'_>) -> bool {
    map.get("Type").and_then(Value::as_str) == Some("AzureActivity")
        || map.contains_key("OperationNameValue")
}

/// Bring an `AzureActivity` row to the diagnostic-settings shape: its `…Value` columns
/// hold what the diagnostic record names without the suffix, `Authorization` and
/// `Claims` become `identity`, and every other column goes into `properties` with a
/// camelCase name. The `_d` columns are the parsed forms of the JSON-text columns.
pub fn from_azure_activity(row: Map<'_>) -> Map<'_> {
    let mut out = Map::new();
    let mut props = Map::new();
    let mut identity = Map::new();
    let mut parsed_properties = None;
    for (key, value) in row {
        let top = match key.as_str() {
            "TimeGenerated" => "time",
            "OperationNameValue" => "operationName",
            "CategoryValue" => "category",
            "ActivityStatusValue" => "resultType",
            "ActivitySubstatusValue" => "resultSignature",
            "CallerIpAddress" => "callerIpAddress",
            "CorrelationId" => "correlationId",
            "_ResourceId" => "resourceId",
            "TenantId" => "tenantId",
            "Level" => "level",
            "Authorization" | "Authorization_d" => {
                identity.insert("authorization", parse_embedded_json(value));
                continue;
            }
            "Claims" | "Claims_d" => {
                identity.insert("claims", parse_embedded_json(value));
                continue;
            }
            "Properties_d" => {
                parsed_properties = Some(value);
                continue;
            }
            "Properties" => {
                parsed_properties.get_or_insert_with(|| parse_embedded_json(value));
                continue;
            }
            // The resource id again, in the table's older column, and the `Type` of
            // every row.
            "ResourceId" | "Type" => continue,
            other => {
                props.insert(lower_first(other), parse_embedded_json(value));
                continue;
            }
        };
        out.insert(top.to_string(), value);
    }
    if let Some(Value::Object(parsed)) = parsed_properties {
        for (k, v) in parsed {
            if !props.contains_key(&k) {
                props.insert(k, v);
            }
        }
    }
    if !identity.is_empty() {
        out.insert("identity", Value::Object(identity));
    }
    out.insert("properties", Value::Object(props));
    out
}

/// Bring a Log Analytics row to the diagnostic-settings shape: the envelope columns go to
/// the top level, every other column into `properties` with a camelCase name, and columns
/// that hold JSON text are parsed.
pub fn from_log_analytics(row: Map<'_>) -> Map<'_> {
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
            out.insert("category", Value::from(d));
        }
    }
    out.insert("properties", Value::Object(props));
    out
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn parse_embedded_json(value: Value<'_>) -> Value<'_> {
    match &value {
        Value::String(s) if s.starts_with('{') || s.starts_with('[') => {
            // The tree would borrow from `value`, which it replaces: it owns its strings.
            Value::parse(s).map(Value::into_owned).unwrap_or(value)
        }
        _ => value,
    }
}

/// An Entra log record: the fields its readers take as text are text, and its sections
/// are objects and arrays.
fn validate_entra(fields: &mut Map<'_>) -> Result<(), WrongType> {
    expect_strings(fields, "", &TOP_LEVEL_STRINGS)?;
    expect_object(fields, "", "properties")?;
    if let Some(props) = obj_of(fields, "properties") {
        expect_strings(props, "properties", &PROPERTY_STRINGS)?;
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
            canonicalize_keys(target, &TARGET);
        }
    }
    Ok(())
}

/// An Activity Log record. Its `identity` is an object of claims, or in some exports the
/// caller's name; `properties` sometimes arrives as JSON text, which is parsed as
/// Elastic's pipeline parses it.
fn validate_activity(fields: &mut Map<'_>) -> Result<(), WrongType> {
    expect_strings(fields, "", &ACTIVITY_STRINGS)?;
    if let Some(props) = fields.get_mut("properties") {
        if props.is_string() {
            *props = parse_embedded_json(props.take());
        }
    }
    expect_object(fields, "", "properties")?;
    if let Some(Value::Object(identity)) = fields.get("identity") {
        expect_object(identity, "identity", "authorization")?;
        expect_object(identity, "identity", "claims")?;
    }
    Ok(())
}

/// A role assignment's principal and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAssignment {
    pub principal_id: String,
    pub principal_type: Option<String>,
    pub role_definition_id: Option<String>,
}

fn get_ignoring_case<'a, 'r>(map: &'a Map<'r>, key: &str) -> Option<&'a Value<'r>> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// An Azure record whose fields the normalizers read have the types they expect.
#[derive(Debug, Clone)]
pub struct AzureRecord<'a> {
    fields: Map<'a>,
    kind: AzureLog,
    time: DateTime<Utc>,
    time_source: TimeSource,
}

impl<'a> AzureRecord<'a> {
    /// The same record, owning its text.
    pub fn into_owned(self) -> AzureRecord<'static> {
        AzureRecord {
            fields: self.fields.into_owned(),
            ..self
        }
    }

    pub fn new(mut fields: Map<'a>, now: DateTime<Utc>) -> Result<Self, WrongType> {
        if !fields.contains_key("operationName") || !fields.contains_key("category") {
            canonicalize_keys(&mut fields, &TOP_LEVEL);
        }
        let kind = AzureLog::of(
            str_of(&fields, "category").unwrap_or(""),
            str_of(&fields, "operationName"),
        );
        if kind == AzureLog::Activity {
            validate_activity(&mut fields)?;
        } else {
            validate_entra(&mut fields)?;
        }
        let props = obj_of(&fields, "properties");
        let parsed = str_of(&fields, "time")
            .or_else(|| props.and_then(|p| str_of(p, "activityDateTime")))
            .or_else(|| props.and_then(|p| str_of(p, "createdDateTime")))
            .and_then(parse_time);
        let (time, time_source) = match parsed {
            Some(t) => (t, TimeSource::Event),
            None => (now, TimeSource::Ingest),
        };
        Ok(AzureRecord {
            fields,
            kind,
            time,
            time_source,
        })
    }

    pub fn fields(&self) -> &Map<'a> {
        &self.fields
    }

    pub fn kind(&self) -> AzureLog {
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

    pub fn properties(&self) -> Option<&Map<'a>> {
        obj_of(&self.fields, "properties")
    }

    /// A non-empty string in `properties`.
    pub fn prop_str(&self, key: &str) -> Option<&str> {
        self.properties().and_then(|p| str_of(p, key))
    }

    /// The first target resource of the given type (`User`, `ServicePrincipal`, …).
    pub fn first_target(&self, kind: &str) -> Option<&Map<'a>> {
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

    /// The Elastic dataset of this log.
    pub fn dataset(&self) -> &'static str {
        match self.kind {
            AzureLog::Activity => "azure.activitylogs",
            k if k.is_sign_in() => "azure.signinlogs",
            _ => "azure.auditlogs",
        }
    }

    /// The account the record belongs to: an Activity Log record's subscription, else the
    /// tenant.
    pub fn account(&self) -> Option<&str> {
        match self.kind {
            AzureLog::Activity => self.subscription_id().or_else(|| self.str("tenantId")),
            _ => self.str("tenantId"),
        }
    }

    /// The subscription named in `resourceId` (`/subscriptions/{id}/…`, any case).
    pub fn subscription_id(&self) -> Option<&str> {
        let mut parts = self.str("resourceId")?.split('/').filter(|p| !p.is_empty());
        parts.find(|p| p.eq_ignore_ascii_case("subscriptions"))?;
        parts.next()
    }

    /// An Activity Log record's caller claims (`identity.claims`).
    pub fn claims(&self) -> Option<&Map<'a>> {
        obj_of(self.fields.get("identity")?.as_object()?, "claims")
    }

    /// Who called an Activity Log operation: the `name` claim (a user principal name), else
    /// the `upn` claim, else a Log Analytics row's `Caller`.
    pub fn caller_name(&self) -> Option<&str> {
        let claim = |name: &str| self.claims().and_then(|c| str_of(c, name));
        claim("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name")
            .or_else(|| claim("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"))
            .or_else(|| self.prop_str("caller"))
    }

    /// The caller's Entra object id, from its `objectidentifier` claim.
    pub fn caller_object_id(&self) -> Option<&str> {
        self.claims().and_then(|c| {
            str_of(
                c,
                "http://schemas.microsoft.com/identity/claims/objectidentifier",
            )
        })
    }

    /// An Activity Log record's `identity.authorization`.
    pub fn authorization(&self) -> Option<&Map<'a>> {
        obj_of(self.fields.get("identity")?.as_object()?, "authorization")
    }

    /// Whom a role assignment gives which role, read from the request or the response
    /// body (JSON text or an object, its keys capitalised or not).
    pub fn role_assignment(&self) -> Option<RoleAssignment> {
        let props = self.properties()?;
        ["requestbody", "responseBody"].iter().find_map(|name| {
            let body = get_ignoring_case(props, name)?;
            let parsed;
            let body = match body {
                Value::String(text) => {
                    parsed = Value::parse(text).ok()?;
                    &parsed
                }
                other => other,
            };
            let inner = get_ignoring_case(body.as_object()?, "properties")?.as_object()?;
            let text = |key: &str| {
                get_ignoring_case(inner, key)
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            Some(RoleAssignment {
                principal_id: text("principalId")?,
                principal_type: text("principalType"),
                role_definition_id: text("roleDefinitionId"),
            })
        })
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

    /// The stable id: `properties.id`, else the correlation id. An Activity Log record has
    /// one only in exports that carry `eventDataId`: its correlation id is shared by the
    /// start and the end of one operation.
    pub fn id(&self) -> Option<&str> {
        if self.kind == AzureLog::Activity {
            return self
                .prop_str("eventDataId")
                .or_else(|| self.str("eventDataId"));
        }
        self.prop_str("id")
            .or_else(|| self.prop_str("correlationId"))
            .or_else(|| self.str("correlationId"))
    }

    /// Sign-ins fail on a non-zero error code; audits on a result other than success;
    /// Activity Log operations on a `Failure` result.
    pub fn failed(&self) -> bool {
        if self.kind == AzureLog::Activity {
            return self.str("resultType").is_some_and(|r| {
                r.eq_ignore_ascii_case("failure") || r.eq_ignore_ascii_case("failed")
            });
        }
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
    use crate::transforms::decode::tree::json;

    #[test]
    fn log_analytics_row_becomes_diagnostic_shape() {
        let row = json!({"TimeGenerated": "2021-08-02T13:29:25.983Z", "Type": "AuditLogs",
            "OperationName": "Update application", "Category": "ApplicationManagement",
            "Id": "Directory_1", "AADOperationType": "Update",
            "InitiatedBy": "{\"user\":{\"userPrincipalName\":\"a@b.c\"}}",
            "TargetResources": "[{\"id\":\"t1\"}]"});
        let m = from_log_analytics(row.as_object().cloned().unwrap());
        let r = AzureRecord::new(m, Utc::now()).unwrap();
        assert_eq!(r.kind(), AzureLog::Audit);
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
    fn activity_log_is_told_from_entra_by_category_and_operation() {
        let kind = |category: &str, operation: Option<&str>| {
            let mut record = json!({"time": "2024-01-01T00:00:00Z", "category": category});
            if let Some(op) = operation {
                record
                    .as_object_mut()
                    .unwrap()
                    .insert("operationName", json!(op));
            }
            AzureRecord::new(record.as_object().cloned().unwrap(), Utc::now())
                .unwrap()
                .kind()
        };
        assert_eq!(
            kind(
                "Administrative",
                Some("MICROSOFT.COMPUTE/VIRTUALMACHINES/WRITE")
            ),
            AzureLog::Activity
        );
        assert_eq!(
            kind(
                "Policy",
                Some("Microsoft.Authorization/policies/audit/action")
            ),
            AzureLog::Activity
        );
        assert_eq!(kind("Administrative", None), AzureLog::Activity);
        assert_eq!(
            kind("Policy", Some("Authentication Methods Policy Update")),
            AzureLog::Other
        );
        assert_eq!(kind("AuditLogs", Some("Add user")), AzureLog::Audit);
    }

    #[test]
    fn sign_in_failure_from_error_code() {
        let rec = |code: Value| {
            AzureRecord::new(
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
