//! Sigma rules, loaded from a directory and evaluated on the vendor's own record (Sigma
//! field names are the vendor's: `eventName`, `requestParameters.*`, `operationName`,
//! with Log Analytics and Elastic names found through `config/sigma/fields.toml`). A rule for a log auditbridge does not read, a correlation rule or a
//! detection this evaluator cannot compile is reported with its file, line and reason,
//! never silently left out.

pub mod condition;
pub mod detection;
mod fields;

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::attack::{self, Tactic, Technique};
use super::model::{ProviderName, Severity};
use crate::transforms::decode::{AzureLog, SourceRecord};
use condition::Condition;
use detection::Search;

/// The logs a Sigma rule's `logsource` names, among those auditbridge reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    CloudTrail,
    EntraAudit,
    EntraSignIn,
    AzureActivity,
    GcpAudit,
}

impl Scope {
    fn of(product: &str, service: &str) -> Result<Scope, String> {
        match (product, service) {
            ("aws", "cloudtrail") => Ok(Scope::CloudTrail),
            ("azure", "auditlogs") => Ok(Scope::EntraAudit),
            ("azure", "signinlogs") => Ok(Scope::EntraSignIn),
            ("azure", "activitylogs") => Ok(Scope::AzureActivity),
            ("gcp", "gcp.audit") => Ok(Scope::GcpAudit),
            (p, s) => Err(format!(
                "logsource product `{p}`, service `{s}`: not a log auditbridge reads"
            )),
        }
    }

    pub fn provider(self) -> ProviderName {
        match self {
            Scope::CloudTrail => ProviderName::Aws,
            Scope::GcpAudit => ProviderName::Gcp,
            _ => ProviderName::Azure,
        }
    }

    fn covers(self, record: &SourceRecord) -> bool {
        match (self, record) {
            (Scope::CloudTrail, SourceRecord::CloudTrail(_)) => true,
            (Scope::EntraAudit, SourceRecord::Azure(r)) => r.kind() == AzureLog::Audit,
            (Scope::EntraSignIn, SourceRecord::Azure(r)) => r.kind().is_sign_in(),
            (Scope::AzureActivity, SourceRecord::Azure(r)) => r.kind() == AzureLog::Activity,
            (Scope::GcpAudit, SourceRecord::Gcp(_)) => true,
            _ => false,
        }
    }
}

/// A loaded Sigma rule.
#[derive(Debug)]
pub struct SigmaRule {
    /// The Sigma `id` (a UUID), or the file name when the rule has none.
    pub id: String,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    /// The ATT&CK techniques of its `attack.t…` tags that ATT&CK v18.1 still lists.
    pub techniques: Vec<Technique>,
    /// Every tactic of those techniques, as our rules default to.
    pub tactics: Vec<Tactic>,
    pub file: PathBuf,
    /// Test events from the set's `tests/` folder: (name, expected match, vendor record).
    pub tests: Vec<(String, bool, String)>,
    pub detection: Detection,
}

impl SigmaRule {
    pub fn scope(&self) -> Scope {
        self.detection.scope
    }

    pub fn matches(&self, record: &SourceRecord) -> bool {
        self.detection.matches(record)
    }

    pub fn event_names(&self) -> Option<Vec<String>> {
        self.detection.event_names()
    }
}

/// What a Sigma rule matches: its log, its searches and its condition, compiled.
#[derive(Debug)]
pub struct Detection {
    scope: Scope,
    searches: Vec<Search>,
    condition: Condition,
}

impl Detection {
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// The CloudTrail event names (lower case) the rule can match at all, when its
    /// condition requires a search that tests `eventName` against plain values: the
    /// rule set indexes it by them instead of trying it on every record.
    pub fn event_names(&self) -> Option<Vec<String>> {
        if self.scope != Scope::CloudTrail {
            return None;
        }
        let required = match &self.condition {
            Condition::Search(i) => vec![*i],
            Condition::And(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    Condition::Search(i) => Some(*i),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        required
            .into_iter()
            .find_map(|i| self.searches[i].literals("eventName"))
    }

    /// Does the rule match this record?
    pub fn matches(&self, record: &SourceRecord) -> bool {
        if !self.scope.covers(record) {
            return false;
        }
        let fields: &Map<String, Value> = record.fields();
        let mut memo: Vec<Option<bool>> = vec![None; self.searches.len()];
        self.condition
            .eval(&mut |i| *memo[i].get_or_insert_with(|| self.searches[i].matches(fields)))
    }
}

/// A rule file that could not be loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    pub file: PathBuf,
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.reason)
    }
}

/// The Sigma rules of a directory tree (`*.yml`, `*.yaml`), and those it could not load.
///
/// Test events live in a `tests/` folder at the top of the tree: `<rule id>.match.ndjson`
/// holds vendor records the rule must match, `<rule id>.no_match.ndjson` records it must
/// not, one per line.
#[derive(Debug, Default)]
pub struct SigmaSet {
    pub rules: Vec<SigmaRule>,
    pub unsupported: Vec<Unsupported>,
}

impl SigmaSet {
    pub fn load(dir: &Path) -> Result<SigmaSet, std::io::Error> {
        let mut files = Vec::new();
        yaml_files(dir, &mut files)?;
        files.sort();
        let mut set = SigmaSet::default();
        for file in files {
            let text = std::fs::read_to_string(&file)?;
            match compile(&text, &file) {
                Ok(rule) => set.rules.push(rule),
                Err((line, reason)) => set.unsupported.push(Unsupported { file, line, reason }),
            }
        }
        set.attach_tests(&dir.join("tests"))?;
        Ok(set)
    }

    fn attach_tests(&mut self, tests: &Path) -> Result<(), std::io::Error> {
        if !tests.is_dir() {
            return Ok(());
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(tests)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        files.sort();
        for file in files {
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let (id, expect) = match (
                name.strip_suffix(".no_match.ndjson"),
                name.strip_suffix(".match.ndjson"),
            ) {
                (Some(id), _) => (id, false),
                (None, Some(id)) => (id, true),
                (None, None) => continue,
            };
            let Some(rule) = self.rules.iter_mut().find(|r| r.id == id) else {
                self.unsupported.push(Unsupported {
                    file: file.clone(),
                    line: 0,
                    reason: format!("test events for `{id}`, which is no loaded rule"),
                });
                continue;
            };
            let text = std::fs::read_to_string(&file)?;
            for (i, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                rule.tests
                    .push((format!("{name}:{}", i + 1), expect, line.to_string()));
            }
        }
        Ok(())
    }

    /// The rules that match a record, in load order.
    pub fn evaluate(&self, record: &SourceRecord) -> Vec<&SigmaRule> {
        self.rules.iter().filter(|r| r.matches(record)).collect()
    }
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), std::io::Error> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            yaml_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            out.push(path);
        }
    }
    Ok(())
}

/// The 1-based line of the first line that starts (after indentation) with `key`.
fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| l.trim_start().starts_with(key))
        .map_or(0, |i| i + 1)
}

fn compile(text: &str, file: &Path) -> Result<SigmaRule, (usize, String)> {
    let doc: Value = serde_norway::from_str(text).map_err(|e| {
        (
            e.location().map_or(0, |l| l.line()),
            format!("not a YAML rule: {e}"),
        )
    })?;
    let at = |key: &str| line_of(text, key);
    let str_of = |key: &str| doc.get(key).and_then(Value::as_str).unwrap_or_default();
    if doc.get("correlation").is_some() {
        return Err((
            at("correlation:"),
            "correlation rules are not supported".into(),
        ));
    }
    let logsource = doc.get("logsource").cloned().unwrap_or(Value::Null);
    let part = |k: &str| logsource.get(k).and_then(Value::as_str).unwrap_or_default();
    let scope = Scope::of(part("product"), part("service")).map_err(|e| (at("logsource:"), e))?;
    let Some(Value::Object(detection)) = doc.get("detection") else {
        return Err((at("detection:"), "no `detection` map".into()));
    };
    if detection.contains_key("timeframe") {
        return Err((
            at("timeframe:"),
            "`timeframe` needs events over time: not supported".into(),
        ));
    }
    let mut names = Vec::new();
    let mut searches = Vec::new();
    for (name, value) in detection.iter().filter(|(k, _)| *k != "condition") {
        let search = Search::compile(value, scope).map_err(|e| {
            // The message names the offending `field|modifier` key first, where it can.
            let key = e.split('`').nth(1).filter(|k| !k.is_empty());
            let line = key.map_or(0, &at);
            (
                if line > 0 {
                    line
                } else {
                    at(&format!("{name}:"))
                },
                e,
            )
        })?;
        names.push(name.clone());
        searches.push(search);
    }
    let condition = match detection.get("condition") {
        Some(Value::String(c)) => condition::parse(c, &names),
        Some(Value::Array(list)) => list
            .iter()
            .map(|c| condition::parse(c.as_str().unwrap_or_default(), &names))
            .collect::<Result<Vec<_>, _>>()
            .map(Condition::Or),
        _ => Err("no `condition`".into()),
    }
    .map_err(|e| (at("condition:"), e))?;
    let techniques: Vec<Technique> = doc
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|t| t.strip_prefix("attack.t"))
        .filter_map(|t| attack::technique(&format!("T{}", t.to_ascii_uppercase())).ok())
        .collect();
    let mut tactics: Vec<Tactic> = Vec::new();
    for short in techniques.iter().flat_map(|t| &t.tactics) {
        if let Some(tac) = attack::tactic(short) {
            if !tactics.contains(&tac) {
                tactics.push(tac);
            }
        }
    }
    let severity = match str_of("level") {
        "informational" => Severity::Informational,
        "low" => Severity::Low,
        "high" => Severity::High,
        "critical" => Severity::Critical,
        _ => Severity::Medium,
    };
    let id = match str_of("id") {
        "" => file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        id => id.to_string(),
    };
    Ok(SigmaRule {
        id,
        title: str_of("title").to_string(),
        description: str_of("description").to_string(),
        severity,
        techniques,
        tactics,
        file: file.to_path_buf(),
        tests: Vec::new(),
        detection: Detection {
            scope,
            searches,
            condition,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn rule(yaml: &str) -> Result<SigmaRule, (usize, String)> {
        compile(yaml, Path::new("rule.yml"))
    }

    const ROOT_KEY: &str = "title: Root access key created
id: 00000000-0000-4000-8000-000000000001
status: test
description: An access key for the root user.
tags:
    - attack.persistence
    - attack.t1098.001
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventSource: iam.amazonaws.com
        eventName: CreateAccessKey
        userIdentity.type: Root
    filter:
        errorCode|exists: true
    condition: selection and not filter
level: high
";

    fn cloudtrail(v: Value) -> SourceRecord {
        let text = v.to_string();
        match crate::transforms::decode::decode(&text, 1 << 20, Utc::now()).unwrap() {
            crate::transforms::decode::Decoded::Record(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_rule_loads_and_matches_the_vendor_record() {
        let r = rule(ROOT_KEY).unwrap();
        assert_eq!(r.id, "00000000-0000-4000-8000-000000000001");
        assert_eq!(r.severity, Severity::High);
        assert_eq!(r.scope(), Scope::CloudTrail);
        assert_eq!(
            r.techniques
                .iter()
                .map(|t| t.id.as_str())
                .collect::<Vec<_>>(),
            ["T1098.001"]
        );
        let event = serde_json::json!({"eventTime": "2024-01-01T00:00:00Z", "eventSource": "iam.amazonaws.com",
            "eventName": "CreateAccessKey", "userIdentity": {"type": "Root"}});
        assert!(r.matches(&cloudtrail(event.clone())));
        let mut failed = event;
        failed["errorCode"] = "AccessDenied".into();
        assert!(!r.matches(&cloudtrail(failed)));
    }

    #[test]
    fn a_list_of_conditions_matches_when_any_does() {
        let list = ROOT_KEY.replace(
            "condition: selection and not filter",
            "condition:\n        - filter\n        - selection and not filter",
        );
        let r = rule(&list).unwrap();
        let event = serde_json::json!({"eventTime": "2024-01-01T00:00:00Z", "eventSource": "iam.amazonaws.com",
            "eventName": "CreateAccessKey", "userIdentity": {"type": "Root"}, "errorCode": "AccessDenied"});
        assert!(r.matches(&cloudtrail(event)), "the first condition holds");
        let other = serde_json::json!({"eventTime": "2024-01-01T00:00:00Z", "eventSource": "iam.amazonaws.com",
            "eventName": "DeleteUser", "userIdentity": {"type": "Root"}});
        assert!(!r.matches(&cloudtrail(other)));
    }

    #[test]
    fn what_cannot_load_says_where_and_why() {
        let windows = ROOT_KEY
            .replace("product: aws", "product: windows")
            .replace("service: cloudtrail", "service: security");
        assert_eq!(
            rule(&windows).unwrap_err(),
            (
                8,
                "logsource product `windows`, service `security`: not a log auditbridge reads"
                    .into()
            )
        );
        let bad = ROOT_KEY.replace(
            "eventName: CreateAccessKey",
            "eventName|near: CreateAccessKey",
        );
        let (line, reason) = rule(&bad).unwrap_err();
        assert_eq!(line, 14);
        assert!(reason.contains("unknown modifier `near`"), "{reason}");
        let count = ROOT_KEY.replace(
            "condition: selection and not filter",
            "condition: selection | count() by userIdentity.arn > 3",
        );
        assert_eq!(rule(&count).unwrap_err().0, 18);
    }
}
