//! Tags records that match detection rules with MITRE ATT&CK techniques: ECS `threat.*`,
//! `rule.*` and `tags`; an OCSF `enrichments[]` entry per technique; and one OCSF
//! Detection Finding (2004) per tagged record.

use std::sync::Arc;

use serde::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};

use super::Enricher;
use crate::rules::attack::{self, Tactic, Technique, ATTACK_VERSION};
use crate::rules::{Rule, RuleSet};
use crate::transforms::decode::SourceRecord;
use crate::transforms::normalize::document::{Document, Object};
use crate::transforms::normalize::ocsf::{dt, epoch_ms, OCSF_VERSION};
use crate::transforms::normalize::Normalized;

pub struct AttackTagger {
    rules: Arc<RuleSet>,
}

impl AttackTagger {
    pub fn new(rules: Arc<RuleSet>) -> Self {
        AttackTagger { rules }
    }
}

impl Enricher for AttackTagger {
    fn enrich(&self, record: &mut Normalized) {
        let matched = self.rules.evaluate(&record.source, &record.context);
        if matched.is_empty() {
            return;
        }
        let attempt = failed(&record.source);
        record.rules.extend(matched.iter().map(|r| r.id.clone()));
        for t in matched.iter().flat_map(|r| &r.techniques) {
            if !record.techniques.contains(&t.id) {
                record.techniques.push(t.id.clone());
            }
        }
        if let Some(ecs) = record.ecs.as_mut() {
            write_ecs(ecs, &matched, attempt);
        }
        if let Some(ocsf) = record.ocsf.as_mut() {
            for rule in &matched {
                for t in &rule.techniques {
                    ocsf.push(
                        "enrichments",
                        json!({
                            "name": "mitre_attack.technique",
                            "value": t.id,
                            "type": "MITRE ATT&CK",
                            "provider": "auditbridge",
                            "desc": format!("{}: {}", rule.id, rule.title),
                            "data": { "rule_id": rule.id, "technique": t.name, "attempt": attempt },
                        }),
                    );
                }
            }
            let activity = ocsf.read::<Activity>(&record.source, ACTIVITY_FIELDS);
            let finding = finding(activity, &matched, &record.id, attempt);
            record.findings.push(finding);
        }
    }
}

fn failed(source: &SourceRecord) -> bool {
    match source {
        SourceRecord::CloudTrail(r) => r.failed(),
        SourceRecord::Azure(r) => r.failed(),
        SourceRecord::Gcp(r) => r.failed(),
    }
}

/// Unique techniques, tactics and sub-techniques across the matched rules, in order.
struct Attacks {
    techniques: Vec<Technique>,
    subtechniques: Vec<Technique>,
    tactics: Vec<Tactic>,
}

fn attacks(rules: &[&Rule]) -> Attacks {
    let mut a = Attacks {
        techniques: Vec::new(),
        subtechniques: Vec::new(),
        tactics: Vec::new(),
    };
    let push = |list: &mut Vec<Technique>, t: Technique| {
        if !list.iter().any(|x| x.id == t.id) {
            list.push(t);
        }
    };
    for rule in rules {
        for t in &rule.techniques {
            match attack::parent(t) {
                Some(parent) => {
                    push(&mut a.techniques, parent);
                    push(&mut a.subtechniques, t.clone());
                }
                None => push(&mut a.techniques, t.clone()),
            }
        }
        for tac in &rule.tactics {
            if !a.tactics.contains(tac) {
                a.tactics.push(*tac);
            }
        }
    }
    a
}

fn write_ecs(doc: &mut Document, rules: &[&Rule], attempt: bool) {
    let a = attacks(rules);
    doc.put("threat.framework", "MITRE ATT&CK");
    doc.put(
        "threat.technique.id",
        a.techniques
            .iter()
            .map(|t| t.id.clone())
            .collect::<Vec<_>>(),
    );
    doc.put(
        "threat.technique.name",
        a.techniques
            .iter()
            .map(|t| t.name.clone())
            .collect::<Vec<_>>(),
    );
    doc.put(
        "threat.technique.reference",
        a.techniques
            .iter()
            .map(|t| t.url.clone())
            .collect::<Vec<_>>(),
    );
    if !a.subtechniques.is_empty() {
        doc.put(
            "threat.technique.subtechnique.id",
            a.subtechniques
                .iter()
                .map(|t| t.id.clone())
                .collect::<Vec<_>>(),
        );
        doc.put(
            "threat.technique.subtechnique.name",
            a.subtechniques
                .iter()
                .map(|t| t.name.clone())
                .collect::<Vec<_>>(),
        );
        doc.put(
            "threat.technique.subtechnique.reference",
            a.subtechniques
                .iter()
                .map(|t| t.url.clone())
                .collect::<Vec<_>>(),
        );
    }
    doc.put(
        "threat.tactic.id",
        a.tactics.iter().map(|t| t.id).collect::<Vec<_>>(),
    );
    doc.put(
        "threat.tactic.name",
        a.tactics.iter().map(|t| t.name).collect::<Vec<_>>(),
    );
    doc.put(
        "threat.tactic.reference",
        a.tactics.iter().map(Tactic::url).collect::<Vec<_>>(),
    );
    doc.put(
        "rule.id",
        rules.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
    );
    doc.put(
        "rule.name",
        rules.iter().map(|r| r.title.clone()).collect::<Vec<_>>(),
    );
    doc.put(
        "rule.description",
        rules
            .iter()
            .map(|r| r.description.clone())
            .collect::<Vec<_>>(),
    );
    let mut rulesets: Vec<&str> = Vec::new();
    for r in rules {
        if !rulesets.contains(&r.ruleset()) {
            rulesets.push(r.ruleset());
        }
    }
    match rulesets.as_slice() {
        [one] => doc.put("rule.ruleset", *one),
        many => doc.put("rule.ruleset", many.to_vec()),
    }
    let sigma_ids: Vec<&str> = rules.iter().filter_map(|r| r.sigma_id()).collect();
    if !sigma_ids.is_empty() {
        doc.put("rule.uuid", sigma_ids);
    }
    let mut tags: Vec<String> = rules
        .iter()
        .flat_map(|r| r.techniques.iter().map(|t| format!("attack.{}", t.id)))
        .collect();
    tags.dedup();
    if attempt {
        tags.push("attack.attempt".into());
    }
    doc.put("tags", tags);
}

/// What a finding repeats of its OCSF activity. Read from the text of these fields alone:
/// building the whole document as a map (its `unmapped` vendor sections are most of it)
/// and dropping it again cost more than the rest of the finding.
#[derive(Default, Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq))]
#[serde(default)]
struct Activity {
    #[serde(deserialize_with = "present")]
    time: Option<Value>,
    #[serde(deserialize_with = "present")]
    time_dt: Option<Value>,
    #[serde(deserialize_with = "present")]
    cloud: Option<Value>,
    #[serde(deserialize_with = "present")]
    api: Option<Value>,
    #[serde(deserialize_with = "present")]
    resources: Option<Value>,
    #[serde(deserialize_with = "present")]
    type_uid: Option<Value>,
    #[serde(deserialize_with = "present")]
    type_name: Option<Value>,
    #[serde(deserialize_with = "present")]
    actor: Option<Value>,
    #[serde(deserialize_with = "present")]
    src_endpoint: Option<Value>,
    metadata: ActivityMetadata,
}

/// The top-level fields of the activity that [`Activity`] reads.
const ACTIVITY_FIELDS: &[&str] = &[
    "time",
    "time_dt",
    "cloud",
    "api",
    "resources",
    "type_uid",
    "type_name",
    "actor",
    "src_endpoint",
    "metadata",
];

#[derive(Default, Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq))]
#[serde(default)]
struct ActivityMetadata {
    #[serde(deserialize_with = "present")]
    uid: Option<Value>,
}

/// A field that is there, `null` included, as a map lookup would find it (`Option`'s own
/// reading takes `null` for absent).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// The Detection Finding for a tagged record, built from its OCSF activity.
fn finding(
    activity: Activity,
    rules: &[&Rule],
    record_id: &str,
    attempt: bool,
) -> Map<String, Value> {
    let severity = rules
        .iter()
        .map(|r| r.severity)
        .max()
        .expect("at least one rule matched");
    let primary = rules
        .iter()
        .find(|r| r.severity == severity)
        .expect("the max comes from a rule");
    let mut doc = Object::new();
    doc.put("activity_id", 1);
    doc.put("activity_name", "Create");
    doc.put("category_uid", 2);
    doc.put("category_name", "Findings");
    doc.put("class_uid", 2004);
    doc.put("class_name", "Detection Finding");
    doc.put("type_uid", 200401);
    doc.put("type_name", "Detection Finding: Create");
    doc.put("severity_id", severity.ocsf_id());
    doc.put("severity", severity.name());
    doc.put("status_id", 1);
    doc.put("status", "New");
    for (key, value) in [
        ("time", activity.time),
        ("time_dt", activity.time_dt),
        ("cloud", activity.cloud),
        ("api", activity.api.clone()),
        ("resources", activity.resources),
    ] {
        doc.put_opt(key, value);
    }
    doc.put("metadata.version", OCSF_VERSION);
    doc.put("metadata.profiles", json!(["cloud", "datetime"]));
    doc.put("metadata.product.name", "auditbridge");
    doc.put("metadata.product.vendor_name", "auditbridge");
    doc.put("metadata.product.version", env!("CARGO_PKG_VERSION"));
    let rule_ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
    let uid = format!("{record_id}:{}", rule_ids.join("+"));
    doc.put("metadata.uid", uid.clone());
    let now = chrono::Utc::now();
    doc.put("metadata.processed_time", epoch_ms(now));
    doc.put("metadata.processed_time_dt", dt(now));

    let attacks: Vec<Value> = rules
        .iter()
        .flat_map(|r| {
            r.techniques.iter().flat_map(move |t| {
                r.tactics
                    .iter()
                    .filter(|tac| t.tactics.iter().any(|s| s == tac.short))
                    .map(move |tac| attack_entry(t, tac))
            })
        })
        .collect();
    doc.put("finding_info.uid", uid);
    doc.put("finding_info.title", primary.title.clone());
    doc.put("finding_info.desc", primary.description.clone());
    doc.put(
        "finding_info.types",
        json!(if attempt {
            ["MITRE ATT&CK", "Attempt"].as_slice()
        } else {
            ["MITRE ATT&CK"].as_slice()
        }),
    );
    doc.put("finding_info.attacks", attacks);
    doc.put("finding_info.analytic", analytic(primary));
    let others: Vec<Value> = rules
        .iter()
        .filter(|r| r.id != primary.id)
        .map(|r| analytic(r))
        .collect();
    if !others.is_empty() {
        doc.put("finding_info.related_analytics", others);
    }
    let mut related = Object::new();
    related.put(
        "uid",
        activity.metadata.uid.unwrap_or_else(|| json!(record_id)),
    );
    related.put_opt("type_uid", activity.type_uid);
    related.put_opt("type_name", activity.type_name);
    doc.put("finding_info.related_events", json!([related.into_map()]));
    let mut evidence = Object::new();
    evidence.put_opt("actor", activity.actor);
    evidence.put_opt("api", activity.api);
    evidence.put_opt("src_endpoint", activity.src_endpoint);
    let evidence = evidence.into_map();
    if !evidence.is_empty() {
        doc.put("evidences", json!([evidence]));
    }
    doc.into_map()
}

fn attack_entry(t: &Technique, tac: &Tactic) -> Value {
    let mut a = Object::new();
    a.put("version", ATTACK_VERSION);
    a.put(
        "tactic",
        json!({"uid": tac.id, "name": tac.name, "src_url": tac.url()}),
    );
    match attack::parent(t) {
        Some(parent) => {
            a.put(
                "technique",
                json!({"uid": parent.id, "name": parent.name, "src_url": parent.url}),
            );
            a.put(
                "sub_technique",
                json!({"uid": t.id, "name": t.name, "src_url": t.url}),
            );
        }
        None => a.put(
            "technique",
            json!({"uid": t.id, "name": t.name, "src_url": t.url}),
        ),
    }
    Value::Object(a.into_map())
}

fn analytic(rule: &Rule) -> Value {
    json!({
        "uid": rule.id,
        "name": rule.title,
        "desc": rule.description,
        "type_id": 1,
        "type": "Rule",
        "category": rule.file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A finding's reading of its activity finds what a map lookup found: `null` is there,
    /// a missing field is not, and whatever else the activity holds is skipped.
    #[test]
    fn an_activity_is_read_as_a_lookup_would_find_it() {
        let text = r#"{"unmapped":{"a":[{"b":{"c":"\u00e9"}}]},"api":null,"time":1,
            "metadata":{"version":"1.8.0","uid":"e-1"},"actor":{"user":{"name":"x"}}}"#;
        let a: Activity = serde_json::from_str(text).unwrap();
        assert_eq!(a.api, Some(Value::Null));
        assert_eq!(a.time, Some(json!(1)));
        assert_eq!(a.metadata.uid, Some(json!("e-1")));
        assert_eq!(a.actor, Some(json!({"user": {"name": "x"}})));
        assert_eq!(
            (a.cloud, a.resources, a.type_uid, a.src_endpoint),
            (None, None, None, None)
        );
    }

    /// The activity's fields that a finding reads are all written for it, and read as
    /// from the whole document.
    #[test]
    fn an_activity_is_read_from_the_fields_it_names_alone() {
        use crate::transforms::decode::CloudTrailRecord;
        use crate::transforms::normalize::{normalize, OutputFormat};
        let fields = json!({
            "eventVersion": "1.08", "eventTime": "2024-01-02T03:04:05Z",
            "eventID": "e-1", "eventName": "CreateUser", "eventSource": "iam.amazonaws.com",
            "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.7",
            "recipientAccountId": "111122223333",
            "userIdentity": {"type": "IAMUser", "userName": "alice",
                "arn": "arn:aws:iam::111122223333:user/alice", "accountId": "111122223333"},
            "requestParameters": {"userName": "backdoor"},
            "resources": [{"ARN": "arn:aws:iam::111122223333:user/backdoor",
                "accountId": "111122223333", "type": "AWS::IAM::User"}],
        });
        let now = chrono::Utc::now();
        let record =
            CloudTrailRecord::new(fields.as_object().cloned().unwrap().into(), now).unwrap();
        let n = normalize(
            SourceRecord::CloudTrail(record),
            OutputFormat::Ocsf,
            String::new,
            now,
        );
        let ocsf = n.ocsf.as_ref().unwrap();
        let read = ocsf.read::<Activity>(&n.source, ACTIVITY_FIELDS);
        let whole: Activity = serde_json::from_slice(&ocsf.to_bytes(&n.source)).unwrap();
        assert_eq!(read, whole);
        assert!(
            [
                &read.time,
                &read.time_dt,
                &read.cloud,
                &read.api,
                &read.resources,
                &read.type_uid,
                &read.type_name,
                &read.actor,
                &read.src_endpoint,
                &read.metadata.uid,
            ]
            .iter()
            .all(|f| f.as_ref().is_some_and(|v| !v.is_null())),
            "{read:?}"
        );
        assert_eq!(read.metadata.uid, Some(json!("e-1")));
    }
}
