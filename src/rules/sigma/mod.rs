//! Sigma rules, loaded from a directory and evaluated on the vendor's own record (Sigma
//! field names are the vendor's: `eventName`, `requestParameters.*`, `operationName`,
//! with Log Analytics and Elastic names found through `config/sigma/fields.toml`). A rule for a log auditbridge does not read, a correlation rule or a
//! detection this evaluator cannot compile is reported with its file, line and reason,
//! never silently left out.

pub mod condition;
pub mod detection;
mod fields;

use rustc_hash::FxHashMap as HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::transforms::decode::tree;

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

    pub fn matches(&self, record: &SourceRecord<'_>) -> bool {
        self.detection.matches(record)
    }

    pub fn index_key(&self) -> Option<IndexKey> {
        self.detection.index_key()
    }
}

/// A field and the whole values (lower case) one of which it must hold for a rule to
/// match. Looked up in a record as the rule's own test reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexKey {
    pub path: Vec<String>,
    pub values: Vec<String>,
}

/// The rules indexed by one field: which need which of its values.
#[derive(Debug, Clone, Default)]
pub struct ValueIndex {
    /// By the value's bytes: a record's value is looked up lower-cased in a buffer, which
    /// would have to be checked as UTF-8 again to be looked up as text.
    rules: HashMap<Vec<u8>, Vec<usize>>,
    /// The longest value: a longer one in a record needs no lookup.
    longest: usize,
}

impl ValueIndex {
    pub fn add(&mut self, values: Vec<String>, rule: usize) {
        for value in values {
            self.longest = self.longest.max(value.len());
            self.rules.entry(value.into_bytes()).or_default().push(rule);
        }
    }

    /// `found` for the rules that the record's values of `path` admit. A rule's whole
    /// value is ASCII and compared ignoring ASCII case (or not at all ignoring case), so
    /// only an ASCII value of the same letters can match it; numbers and booleans are
    /// compared as their text.
    pub fn lookup<'s>(
        &'s self,
        path: &[String],
        record: &tree::Map<'_>,
        found: &mut impl FnMut(&'s [usize]),
    ) {
        let mut look = |text: &str| {
            if text.len() > self.longest || !text.is_ascii() {
                return;
            }
            let mut buf = [0u8; 64];
            let hit = match buf.get_mut(..text.len()) {
                Some(lower) => {
                    lower.copy_from_slice(text.as_bytes());
                    lower.make_ascii_lowercase();
                    self.rules.get(&*lower)
                }
                None => self.rules.get(text.to_ascii_lowercase().as_bytes()),
            };
            if let Some(rules) = hit {
                found(rules);
            }
        };
        fields::each_path_value(record, path, &mut |v| match v {
            tree::Value::String(s) => look(s),
            tree::Value::Number(_) | tree::Value::Bool(_) => look(&v.to_string()),
            _ => {}
        });
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

    /// A CloudTrail field the rule can match only when it holds one of a few whole
    /// values: the rule set looks the rule up by the record's value instead of trying it
    /// on every record. `eventName` when the rule tests it so, as it splits rules finest.
    pub fn index_key(&self) -> Option<IndexKey> {
        if self.scope != Scope::CloudTrail {
            return None;
        }
        let mut keys = self.required(&self.condition);
        // Case is folded byte by byte only for ASCII; other text is left to the rule.
        keys.retain(|(_, values)| values.iter().all(|v| v.is_ascii()));
        let at = keys
            .iter()
            .position(|(path, _)| *path == ["eventName"])
            .unwrap_or(0);
        (at < keys.len()).then(|| {
            let (path, values) = keys.swap_remove(at);
            IndexKey {
                path: path.to_vec(),
                values,
            }
        })
    }

    /// Fields with the whole values one of which a record must hold for `condition` to
    /// hold: those of every search it requires, and those common to all alternatives of
    /// an `or` (their values joined).
    fn required<'a>(&'a self, condition: &Condition) -> Vec<(&'a [String], Vec<String>)> {
        match condition {
            Condition::Search(i) => self.searches[*i].literal_fields(),
            Condition::And(parts) => parts.iter().flat_map(|p| self.required(p)).collect(),
            Condition::Or(parts) => {
                let mut alternatives = parts.iter().map(|p| self.required(p));
                let Some(first) = alternatives.next() else {
                    return Vec::new();
                };
                let rest: Vec<_> = alternatives.collect();
                first
                    .into_iter()
                    .filter_map(|(path, mut values)| {
                        for alternative in &rest {
                            let (_, more) = alternative.iter().find(|(p, _)| *p == path)?;
                            values.extend(more.iter().cloned());
                        }
                        Some((path, values))
                    })
                    .collect()
            }
            Condition::Not(_) => Vec::new(),
        }
    }

    /// Does the rule match this record?
    pub fn matches(&self, record: &SourceRecord<'_>) -> bool {
        if !self.scope.covers(record) {
            return false;
        }
        let fields = record.fields();
        // Rules have a few searches, and a rule found by the scan list is tried on every
        // record: its answers are kept on the stack, not in a list allocated per record.
        let mut few = [None; 16];
        let mut many = Vec::new();
        let memo: &mut [Option<bool>] = match few.get_mut(..self.searches.len()) {
            Some(memo) => memo,
            None => {
                many.resize(self.searches.len(), None);
                &mut many
            }
        };
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

    fn cloudtrail(v: Value) -> SourceRecord<'static> {
        let text = v.to_string();
        match crate::transforms::decode::decode(&text, 1 << 20, Utc::now()).unwrap() {
            crate::transforms::decode::Decoded::Record(r) => r.into_owned(),
            other => panic!("{other:?}"),
        }
    }

    /// `ROOT_KEY` with another detection.
    fn with_detection(detection: &str) -> SigmaRule {
        let head = &ROOT_KEY[..ROOT_KEY.find("detection:").unwrap()];
        rule(&format!("{head}detection:\n{detection}level: high\n")).unwrap()
    }

    fn key(path: &str, values: &[&str]) -> Option<IndexKey> {
        Some(IndexKey {
            path: path.split('.').map(str::to_string).collect(),
            values: values.iter().map(|v| v.to_string()).collect(),
        })
    }

    #[test]
    fn a_rule_is_indexed_by_a_field_every_match_needs_event_name_first() {
        assert_eq!(
            rule(ROOT_KEY).unwrap().index_key(),
            key("eventName", &["createaccesskey"])
        );
        let root = with_detection(
            "    user:\n        userIdentity.type: Root\n    service:\n        eventType: AwsServiceEvent\n    condition: user and not service\n",
        );
        assert_eq!(root.index_key(), key("userIdentity.type", &["root"]));
        // The alternatives of an `or` all test `eventName`: their names joined.
        let either = with_detection(
            "    sts:\n        eventSource: sts.amazonaws.com\n        eventName: AssumeRoleWithSAML\n    iam:\n        eventSource: iam.amazonaws.com\n        eventName:\n            - UpdateSAMLProvider\n            - CreateSAMLProvider\n    condition: 1 of sts or iam\n",
        );
        assert_eq!(
            either.index_key(),
            key(
                "eventName",
                &[
                    "assumerolewithsaml",
                    "updatesamlprovider",
                    "createsamlprovider"
                ]
            )
        );
        for detection in [
            // No whole value: a wildcard, a modifier, a regular expression.
            "    s:\n        userAgent: '*TruffleHog*'\n    condition: s\n",
            "    s:\n        eventName|startswith: Create\n    condition: s\n",
            "    s:\n        userIdentity.arn|re: '.+:assumed-role/aws:.+'\n    condition: s\n",
            // Only under `not`, or in one alternative only.
            "    s:\n        eventName: X\n    condition: not s\n",
            "    a:\n        eventName: X\n    b:\n        eventSource: y\n    condition: a or b\n",
            // Not ASCII: the rule's own test folds case beyond ASCII.
            "    s:\n        userName: Jürgen\n    condition: s\n",
        ] {
            assert_eq!(with_detection(detection).index_key(), None, "{detection}");
        }
    }

    #[test]
    fn the_value_index_admits_what_a_whole_value_test_can_match() {
        let mut index = ValueIndex::default();
        index.add(vec!["root".into(), "42".into()], 1);
        index.add(vec!["assumedrole".into()], 2);
        let path = ["userIdentity".to_string(), "type".to_string()];
        let admitted = |identity: Value| {
            let record = tree::json!({ "userIdentity": identity });
            let mut rules = Vec::new();
            index.lookup(&path, record.as_object().unwrap(), &mut |r| {
                rules.extend_from_slice(r)
            });
            rules
        };
        assert_eq!(admitted(serde_json::json!({"type": "ROOT"})), [1]);
        assert_eq!(admitted(serde_json::json!({"type": 42})), [1]);
        assert_eq!(
            admitted(serde_json::json!([{"type": "Root"}, {"type": "AssumedRole"}])),
            [1, 2]
        );
        let nothing: [usize; 0] = [];
        assert_eq!(
            admitted(serde_json::json!({"type": "R\u{00f6}ot"})),
            nothing
        );
        assert_eq!(
            admitted(serde_json::json!({"type": "root-and-more"})),
            nothing
        );
        assert_eq!(admitted(serde_json::json!({"kind": "root"})), nothing);
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
