//! Rule files as written: TOML, one `[[rule]]` table per rule, unknown keys rejected.

use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    #[serde(default)]
    pub rule: Vec<RuleSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// OCSF `severity_id`.
    pub fn ocsf_id(self) -> u8 {
        match self {
            Severity::Informational => 1,
            Severity::Low => 2,
            Severity::Medium => 3,
            Severity::High => 4,
            Severity::Critical => 5,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Severity::Informational => "Informational",
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
            Severity::Critical => "Critical",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderName {
    Aws,
    Azure,
    /// Cloud Audit Logs: `event_source` is the service, `event_name` the method.
    Gcp,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub id: Spanned<String>,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    pub provider: ProviderName,
    /// ATT&CK technique or sub-technique ids.
    pub techniques: Vec<Spanned<String>>,
    /// Tactic short names or ids; default: every tactic of the techniques.
    #[serde(default)]
    pub tactics: Vec<Spanned<String>>,
    #[serde(rename = "match")]
    pub matcher: MatchSpec,
    #[serde(default)]
    pub tests: Vec<TestSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// AWS: `eventSource` patterns (`*` and `?` wildcards); GCP: `serviceName`.
    #[serde(default)]
    pub event_source: Vec<Spanned<String>>,
    /// AWS: `eventName` patterns, e.g. `CreateFunction*`; GCP: `methodName`.
    #[serde(default)]
    pub event_name: Vec<Spanned<String>>,
    /// Entra: log category patterns (`AuditLogs`, `SignInLogs`, …).
    #[serde(default)]
    pub category: Vec<Spanned<String>>,
    /// Entra: activity display name / operation name patterns, case-insensitive.
    #[serde(default)]
    pub activity: Vec<Spanned<String>>,
    /// Every condition must hold.
    #[serde(default)]
    pub all: Vec<ConditionSpec>,
    /// At least one condition must hold (when any are given).
    #[serde(default)]
    pub any: Vec<ConditionSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Equals,
    NotEquals,
    In,
    Glob,
    Contains,
    Exists,
    Missing,
    Gt,
    Gte,
    Lt,
    Lte,
    /// A policy document in the field grants a principal outside the event's own account
    /// (or everyone).
    ForeignPrincipal,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionSpec {
    /// Dotted path into the record (`requestParameters.userData`), arrays matched
    /// element-wise; `context.…` reads enrichment context such as key age.
    pub field: Spanned<String>,
    pub op: Op,
    #[serde(default)]
    pub value: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    pub name: String,
    /// Whether the rule must match this event.
    pub expect: bool,
    /// The event as JSON text.
    #[serde(default)]
    pub event: Option<String>,
    /// Or a file holding the event, relative to the rule file.
    #[serde(default)]
    pub path: Option<String>,
    /// Enrichment context the event is evaluated with (e.g. `{ key = { age_days = 200 } }`).
    #[serde(default)]
    pub context: Option<toml::Table>,
}

/// Convert a TOML value to JSON for comparisons.
pub fn to_json(v: &toml::Value) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}
