//! Tags records that match detection rules with MITRE ATT&CK techniques: ECS `threat.*`,
//! `rule.*` and `tags`; an OCSF `enrichments[]` entry per technique; and one OCSF
//! Detection Finding (2004) per tagged record.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use rustc_hash::FxHashMap;

use super::Enricher;
use crate::rules::attack::{self, Tactic, Technique, ATTACK_VERSION};
use crate::rules::{Rule, RuleSet};
use crate::transforms::decode::{tree, SourceRecord};
use crate::transforms::normalize::document::Head;
use crate::transforms::normalize::json;
use crate::transforms::normalize::ocsf::{epoch_ms, OCSF_VERSION};
use crate::transforms::normalize::Normalized;

pub struct AttackTagger {
    rules: Arc<RuleSet>,
    /// The ECS fields of each set of matched rules met so far, by the rules' places and
    /// whether the call failed. They are the same for every record a set matches: built
    /// per record (a `String` per technique's id, name and URL and per rule's title and
    /// description), they cost more than matching SigmaHQ's rules.
    ecs: Mutex<FxHashMap<(Vec<usize>, bool), EcsText>>,
}

/// How many sets of matched rules keep their ECS text. The corpus with every SigmaHQ
/// cloud rule makes 84 sets, 2.1 KB at most, but nothing else bounds them; this keeps the
/// texts to a few MB. Past it, a set's text is made for each record.
const ECS_SETS_KEPT: usize = 1024;

/// The ECS `threat`, `rule` and `tags` of one set of matched rules, as JSON text.
#[derive(Clone)]
struct EcsText {
    threat: Bytes,
    rule: Bytes,
    tags: Bytes,
}

impl AttackTagger {
    pub fn new(rules: Arc<RuleSet>) -> Self {
        AttackTagger {
            rules,
            ecs: Mutex::default(),
        }
    }

    fn ecs_text(
        &self,
        hits: Vec<usize>,
        attempt: bool,
        matched: &[&Rule],
        source: &SourceRecord,
    ) -> EcsText {
        let key = (hits, attempt);
        if let Some(text) = self.kept().get(&key) {
            return text.clone();
        }
        let text = build_ecs_text(matched, attempt, source);
        let mut kept = self.kept();
        if kept.len() < ECS_SETS_KEPT {
            kept.insert(key, text.clone());
        }
        text
    }

    fn kept(&self) -> MutexGuard<'_, FxHashMap<(Vec<usize>, bool), EcsText>> {
        // The map holds finished texts only, so a panic elsewhere cannot leave it torn.
        self.ecs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Enricher for AttackTagger {
    fn enrich(&self, record: &mut Normalized) {
        let hits = self.rules.matching(&record.source, &record.context);
        if hits.is_empty() {
            return;
        }
        let matched: Vec<&Rule> = hits.iter().map(|&i| &self.rules.rules()[i]).collect();
        let attempt = failed(&record.source);
        record.rules.extend(matched.iter().map(|r| r.id.clone()));
        for t in matched.iter().flat_map(|r| &r.techniques) {
            if !record.techniques.contains(&t.id) {
                record.techniques.push(t.id.clone());
            }
        }
        if let Some(ecs) = record.ecs.as_mut() {
            let text = self.ecs_text(hits, attempt, &matched, &record.source);
            ecs.put_text("threat", text.threat);
            ecs.put_text("rule", text.rule);
            ecs.put_text("tags", text.tags);
        }
        if let Some(ocsf) = record.ocsf.as_mut() {
            for rule in &matched {
                for t in &rule.techniques {
                    ocsf.push_object("enrichments", enrichment(rule, t, attempt));
                }
            }
            let finding = ocsf.read(&record.source, ACTIVITY_FIELDS, |activity| {
                finding(activity, &matched, &record.id, attempt)
            });
            record.findings.push(finding);
        }
    }
}

/// The OCSF `enrichments[]` entry of one technique, placed as a head, keys in the order a
/// map sorts them: a map made per entry, written and dropped again, cost more.
fn enrichment(rule: &Rule, t: &Technique, attempt: bool) -> Head {
    let mut data = Head::with_capacity(3);
    data.put("attempt", attempt);
    data.put("rule_id", rule.id.as_str());
    data.put("technique", t.name.as_str());
    let mut entry = Head::with_capacity(6);
    entry.put_object("data", data);
    entry.put("desc", format!("{}: {}", rule.id, rule.title));
    entry.put_static("name", "mitre_attack.technique");
    entry.put_static("provider", "auditbridge");
    entry.put_static("type", "MITRE ATT&CK");
    entry.put("value", t.id.as_str());
    entry
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

/// ECS `threat`, `rule` and `tags` of the rules a record matched, each object built as a
/// [`Head`] and written as the document would write it.
fn build_ecs_text(rules: &[&Rule], attempt: bool, source: &SourceRecord) -> EcsText {
    let a = attacks(rules);
    let mut technique = techniques_head(&a.techniques, 4);
    if !a.subtechniques.is_empty() {
        technique.put_object("subtechnique", techniques_head(&a.subtechniques, 3));
    }
    let mut tactic = Head::with_capacity(3);
    tactic.put("id", a.tactics.iter().map(|t| t.id).collect::<Vec<_>>());
    tactic.put("name", a.tactics.iter().map(|t| t.name).collect::<Vec<_>>());
    tactic.put(
        "reference",
        a.tactics.iter().map(Tactic::url).collect::<Vec<_>>(),
    );
    let mut threat = Head::with_capacity(3);
    threat.put_static("framework", "MITRE ATT&CK");
    threat.put_object("technique", technique);
    threat.put_object("tactic", tactic);

    let mut rule = Head::with_capacity(5);
    rule.put("id", rules.iter().map(|r| r.id.clone()).collect::<Vec<_>>());
    rule.put(
        "name",
        rules.iter().map(|r| r.title.clone()).collect::<Vec<_>>(),
    );
    rule.put(
        "description",
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
        [one] => rule.put("ruleset", *one),
        many => rule.put("ruleset", many.to_vec()),
    }
    let sigma_ids: Vec<&str> = rules.iter().filter_map(|r| r.sigma_id()).collect();
    if !sigma_ids.is_empty() {
        rule.put("uuid", sigma_ids);
    }

    let mut tags: Vec<String> = rules
        .iter()
        .flat_map(|r| r.techniques.iter().map(|t| format!("attack.{}", t.id)))
        .collect();
    tags.dedup();
    if attempt {
        tags.push("attack.attempt".into());
    }
    let mut tags_text = Vec::new();
    json::value(&mut tags_text, &tags.into());
    EcsText {
        threat: threat.to_text(source),
        rule: rule.to_text(source),
        tags: tags_text.into(),
    }
}

/// ECS `id`, `name` and `reference` lists of `list`, with room for `fields` in all.
fn techniques_head(list: &[Technique], fields: usize) -> Head {
    let mut head = Head::with_capacity(fields);
    head.put("id", list.iter().map(|t| t.id.clone()).collect::<Vec<_>>());
    head.put(
        "name",
        list.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
    );
    head.put(
        "reference",
        list.iter().map(|t| t.url.clone()).collect::<Vec<_>>(),
    );
    head
}

/// The top-level fields of its OCSF activity that a finding repeats. Only these are
/// written for it: the activity's `unmapped` vendor sections are most of its text.
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

/// The Detection Finding for a tagged record, as JSON text, from its OCSF `activity`.
///
/// The keys of every object are in byte order, as a map orders them: written in that
/// order here, and the activity's parts sorted as they are copied. Building the finding
/// as a map, with a `String` per key and the activity's parts parsed into maps, then
/// writing and dropping it, cost more than the rest of the OCSF enrichment.
fn finding(activity: &tree::Map<'_>, rules: &[&Rule], record_id: &str, attempt: bool) -> Bytes {
    let severity = rules
        .iter()
        .map(|r| r.severity)
        .max()
        .expect("at least one rule matched");
    let primary = rules
        .iter()
        .find(|r| r.severity == severity)
        .expect("the max comes from a rule");
    let rule_ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
    let uid = format!("{record_id}:{}", rule_ids.join("+"));
    let copy = |object: &mut json::Object<'_>, key| repeat(object, activity, key);

    // A finding of the corpus is 3.8 KB on average (11.9 KB at most): grown from empty,
    // the text was copied about nine times.
    let mut out = Vec::with_capacity(4096);
    let mut doc = json::Object::open(&mut out);
    json::int(doc.name("activity_id"), 1);
    json::short_string(doc.name("activity_name"), "Create");
    copy(&mut doc, "api");
    json::short_string(doc.name("category_name"), "Findings");
    json::int(doc.name("category_uid"), 2);
    json::short_string(doc.name("class_name"), "Detection Finding");
    json::int(doc.name("class_uid"), 2004);
    copy(&mut doc, "cloud");
    let evidence = ["actor", "api", "src_endpoint"];
    if evidence.iter().any(|key| activity.contains_key(key)) {
        let mut list = json::Array::open(doc.name("evidences"));
        let mut item = json::Object::open(list.item());
        for key in evidence {
            copy(&mut item, key);
        }
        item.close();
        list.close();
    }
    finding_info(
        doc.name("finding_info"),
        activity,
        rules,
        primary,
        record_id,
        &uid,
        attempt,
    );
    let mut metadata = json::Object::open(doc.name("metadata"));
    let now = chrono::Utc::now();
    json::int(metadata.name("processed_time"), epoch_ms(now));
    json::time(metadata.name("processed_time_dt"), now);
    let mut product = json::Object::open(metadata.name("product"));
    json::short_string(product.name("name"), "auditbridge");
    json::short_string(product.name("vendor_name"), "auditbridge");
    json::short_string(product.name("version"), env!("CARGO_PKG_VERSION"));
    product.close();
    strings(metadata.name("profiles"), &["cloud", "datetime"]);
    json::string(metadata.name("uid"), &uid);
    json::short_string(metadata.name("version"), OCSF_VERSION);
    metadata.close();
    copy(&mut doc, "resources");
    json::short_string(doc.name("severity"), severity.name());
    json::int(doc.name("severity_id"), i64::from(severity.ocsf_id()));
    json::short_string(doc.name("status"), "New");
    json::int(doc.name("status_id"), 1);
    copy(&mut doc, "time");
    copy(&mut doc, "time_dt");
    json::short_string(doc.name("type_name"), "Detection Finding: Create");
    json::int(doc.name("type_uid"), 200401);
    doc.close();
    out.into()
}

/// A finding's `finding_info`, keys in byte order.
fn finding_info(
    out: &mut Vec<u8>,
    activity: &tree::Map<'_>,
    rules: &[&Rule],
    primary: &Rule,
    record_id: &str,
    uid: &str,
    attempt: bool,
) {
    let mut info = json::Object::open(out);
    analytic(info.name("analytic"), primary);
    let mut attacks = json::Array::open(info.name("attacks"));
    for r in rules {
        for t in &r.techniques {
            for tac in r
                .tactics
                .iter()
                .filter(|tac| t.tactics.iter().any(|s| s == tac.short))
            {
                attack_entry(attacks.item(), t, tac);
            }
        }
    }
    attacks.close();
    json::string(info.name("desc"), &primary.description);
    let mut others = rules.iter().filter(|r| r.id != primary.id).peekable();
    if others.peek().is_some() {
        let mut list = json::Array::open(info.name("related_analytics"));
        for r in others {
            analytic(list.item(), r);
        }
        list.close();
    }
    let mut events = json::Array::open(info.name("related_events"));
    let mut related = json::Object::open(events.item());
    for key in ["type_name", "type_uid"] {
        repeat(&mut related, activity, key);
    }
    match activity.get("metadata").and_then(|m| m.get("uid")) {
        Some(event) => json::sorted_record_value(related.name("uid"), event),
        None => json::string(related.name("uid"), record_id),
    }
    related.close();
    events.close();
    json::string(info.name("title"), &primary.title);
    let types: &[&str] = if attempt {
        &["MITRE ATT&CK", "Attempt"]
    } else {
        &["MITRE ATT&CK"]
    };
    strings(info.name("types"), types);
    json::string(info.name("uid"), uid);
    info.close();
}

/// The activity's field `key` at `key` of `object`, keys sorted, when the activity has it.
fn repeat(object: &mut json::Object<'_>, activity: &tree::Map<'_>, key: &'static str) {
    if let Some(part) = activity.get(key) {
        json::sorted_record_value(object.name(key), part);
    }
}

fn strings(out: &mut Vec<u8>, texts: &[&str]) {
    let mut list = json::Array::open(out);
    for text in texts {
        json::short_string(list.item(), text);
    }
    list.close();
}

/// An OCSF ATT&CK entry: the technique, or its parent and the sub-technique, under one
/// tactic.
fn attack_entry(out: &mut Vec<u8>, t: &Technique, tac: &Tactic) {
    let mut a = json::Object::open(out);
    let parent = attack::parent(t);
    if parent.is_some() {
        reference(a.name("sub_technique"), &t.id, &t.name, &t.url);
    }
    reference(a.name("tactic"), tac.id, tac.name, &tac.url());
    match &parent {
        Some(p) => reference(a.name("technique"), &p.id, &p.name, &p.url),
        None => reference(a.name("technique"), &t.id, &t.name, &t.url),
    }
    json::short_string(a.name("version"), ATTACK_VERSION);
    a.close();
}

/// An ATT&CK tactic, technique or sub-technique as OCSF names one.
fn reference(out: &mut Vec<u8>, uid: &str, name: &str, url: &str) {
    let mut o = json::Object::open(out);
    json::string(o.name("name"), name);
    json::string(o.name("src_url"), url);
    json::string(o.name("uid"), uid);
    o.close();
}

fn analytic(out: &mut Vec<u8>, rule: &Rule) {
    let mut o = json::Object::open(out);
    json::string(o.name("category"), &rule.file);
    json::string(o.name("desc"), &rule.description);
    json::string(o.name("name"), &rule.title);
    json::short_string(o.name("type"), "Rule");
    json::int(o.name("type_id"), 1);
    json::string(o.name("uid"), &rule.id);
    o.close();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::decode::CloudTrailRecord;
    use crate::transforms::normalize::{normalize, OutputFormat};
    use serde_json::{json, Value};

    /// JSON text as serde_json writes it: keys in byte order at every level, no spaces.
    fn canonical(text: &[u8]) -> Vec<u8> {
        serde_json::to_vec(&serde_json::from_slice::<Value>(text).unwrap()).unwrap()
    }

    /// The Stratus Red Team `iam-backdoor-role` record of the shared CloudTrail corpus,
    /// which two rules match: a trust policy changed, naming another account.
    fn backdoor_role() -> Value {
        json!({"eventVersion": "1.08", "userIdentity": {"type": "IAMUser",
            "principalId": "AIDATFQR7NSC5AU2ZV3IE",
            "arn": "arn:aws:iam::123837392027:user/bert-jan", "accountId": "123837392027",
            "accessKeyId": "AKIATFQR7NSC8Q4X20BJ", "userName": "bert-jan"},
            "eventTime": "2023-07-10T12:24:11Z", "eventSource": "iam.amazonaws.com",
            "eventName": "UpdateAssumeRolePolicy", "awsRegion": "us-east-1",
            "sourceIPAddress": "192.168.10.20", "userAgent": "stratus-red-team_8f96a106",
            "requestParameters": {"roleName": "stratus-red-team-backdoor-r-role",
                "policyDocument": "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"arn:aws:iam::193672423079:root\"},\"Action\":\"sts:AssumeRole\"}]}"},
            "responseElements": null, "requestID": "6939adf6-87c7-4d2d-9f1c-dd673960a5e6",
            "eventID": "d96d75c7-e715-44ff-9735-9dc51afbd774", "readOnly": false,
            "eventType": "AwsApiCall", "managementEvent": true,
            "recipientAccountId": "123837392027", "eventCategory": "Management"})
    }

    /// The ECS fields of a set of matched rules are made once and shared by the records it
    /// matches; a failed call has its own, with `attack.attempt`.
    #[test]
    fn records_matching_the_same_rules_share_their_ecs_text() {
        let tagger = AttackTagger::new(Arc::new(RuleSet::builtin().unwrap()));
        let now = chrono::Utc::now();
        let mut failed = backdoor_role();
        failed["errorCode"] = json!("AccessDenied");
        let tagged: Vec<Value> = [backdoor_role(), failed, backdoor_role()]
            .into_iter()
            .map(|fields| {
                let record =
                    CloudTrailRecord::new(fields.as_object().cloned().unwrap().into(), now);
                let mut n = normalize(
                    SourceRecord::CloudTrail(record.unwrap()),
                    OutputFormat::Ecs,
                    String::new,
                    now,
                );
                tagger.enrich(&mut n);
                serde_json::from_slice(&n.ecs.unwrap().to_bytes(&n.source)).unwrap()
            })
            .collect();
        assert_eq!(tagger.kept().len(), 2);
        for key in ["threat", "rule"] {
            assert_eq!(tagged[0][key], tagged[1][key], "{key}");
            assert_eq!(tagged[0][key], tagged[2][key], "{key}");
        }
        assert_eq!(
            tagged[0]["rule"]["id"],
            json!([
                "aws-iam-trust-policy-updated",
                "aws-iam-cross-account-grant"
            ])
        );
        assert_eq!(
            tagged[0]["threat"]["technique"]["subtechnique"]["id"],
            json!(["T1484.002", "T1098.003"])
        );
        assert_eq!(
            tagged[0]["tags"],
            json!(["attack.T1484.002", "attack.T1098.003"])
        );
        assert_eq!(
            tagged[1]["tags"],
            json!(["attack.T1484.002", "attack.T1098.003", "attack.attempt"])
        );
        assert_eq!(tagged[2]["tags"], tagged[0]["tags"]);
    }

    /// A finding repeats its activity's parts, sorted, and carries every rule that matched,
    /// with its keys in map order at every level.
    #[test]
    fn a_finding_repeats_its_activity_and_names_every_rule() {
        let now = chrono::Utc::now();
        let fields = backdoor_role().as_object().cloned().unwrap().into();
        let record = CloudTrailRecord::new(fields, now).unwrap();
        let mut n = normalize(
            SourceRecord::CloudTrail(record),
            OutputFormat::Ocsf,
            String::new,
            now,
        );
        AttackTagger::new(Arc::new(RuleSet::builtin().unwrap())).enrich(&mut n);
        let activity: Value =
            serde_json::from_slice(&n.ocsf.as_ref().unwrap().to_bytes(&n.source)).unwrap();
        assert_eq!(n.findings.len(), 1);
        let text = &n.findings[0];
        assert_eq!(
            String::from_utf8_lossy(&canonical(text)),
            String::from_utf8_lossy(text)
        );
        let f: Value = serde_json::from_slice(text).unwrap();

        let uid = "d96d75c7-e715-44ff-9735-9dc51afbd774:\
            aws-iam-trust-policy-updated+aws-iam-cross-account-grant";
        assert_eq!(f["metadata"]["uid"], uid);
        assert_eq!(f["finding_info"]["uid"], uid);
        assert_eq!(
            f["finding_info"]["analytic"]["uid"],
            "aws-iam-trust-policy-updated"
        );
        assert_eq!(
            f["finding_info"]["related_analytics"][0]["uid"],
            "aws-iam-cross-account-grant"
        );
        assert_eq!(
            f["finding_info"]["related_analytics"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(f["finding_info"]["types"], json!(["MITRE ATT&CK"]));
        assert_eq!(
            f["finding_info"]["related_events"],
            json!([{"type_name": "Account Change: Other", "type_uid": 300199,
                "uid": "d96d75c7-e715-44ff-9735-9dc51afbd774"}])
        );
        let attacks: Vec<[&str; 3]> = f["finding_info"]["attacks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                assert_eq!(a["version"], ATTACK_VERSION);
                let uid = |key: &str| a[key]["uid"].as_str().unwrap();
                [uid("tactic"), uid("technique"), uid("sub_technique")]
            })
            .collect();
        assert_eq!(
            attacks,
            [
                ["TA0005", "T1484", "T1484.002"],
                ["TA0004", "T1484", "T1484.002"],
                ["TA0004", "T1098", "T1098.003"],
                ["TA0003", "T1098", "T1098.003"],
                ["TA0003", "T1098", "T1098.003"],
                ["TA0004", "T1098", "T1098.003"],
            ]
        );
        for key in ["api", "cloud", "time", "time_dt"] {
            assert!(!activity[key].is_null(), "{key}");
            assert_eq!(f[key], activity[key], "{key}");
        }
        assert_eq!(
            f["evidences"],
            json!([{"actor": activity["actor"], "api": activity["api"],
                "src_endpoint": activity["src_endpoint"]}])
        );
        assert_eq!(
            (
                &f["class_uid"],
                &f["type_uid"],
                &f["severity"],
                &f["severity_id"]
            ),
            (&json!(2004), &json!(200401), &json!("High"), &json!(4))
        );

        let written = n.ocsf.as_ref().unwrap().to_bytes(&n.source);
        let entry = r#"{"data":{"attempt":false,"rule_id":"aws-iam-cross-account-grant","technique":"Additional Cloud Roles"},"desc":"aws-iam-cross-account-grant: Policy grants a principal outside the account","name":"mitre_attack.technique","provider":"auditbridge","type":"MITRE ATT&CK","value":"T1098.003"}]"#;
        assert!(
            String::from_utf8_lossy(&written).contains(entry),
            "{written:?}"
        );
        let enrichments = activity["enrichments"].as_array().unwrap();
        assert_eq!(enrichments.len(), 3);
        assert_eq!(
            enrichments[2],
            json!({"name": "mitre_attack.technique", "value": "T1098.003",
                "type": "MITRE ATT&CK", "provider": "auditbridge",
                "desc": "aws-iam-cross-account-grant: Policy grants a principal outside the account",
                "data": {"rule_id": "aws-iam-cross-account-grant",
                    "technique": "Additional Cloud Roles", "attempt": false}})
        );
    }

    /// What the activity lacks, the finding lacks; a `null` it has, the finding repeats;
    /// with no event uid the record's id stands in.
    #[test]
    fn a_finding_keeps_what_its_activity_has_and_no_more() {
        let rules = RuleSet::builtin().unwrap();
        let rule = rules
            .rules()
            .iter()
            .find(|r| r.id == "aws-iam-cross-account-grant")
            .unwrap();
        let text = r#"{"api":null,"metadata":{"version":"1.8.0"},"type_uid":{"b":1,"a":[{"d":2,"c":"\u00e9\n"}]}}"#;
        let tree::Value::Object(activity) = tree::Value::parse_written(text).unwrap() else {
            unreachable!("an object")
        };
        let text = finding(&activity, &[rule], "rec-1", true);
        assert_eq!(
            String::from_utf8_lossy(&canonical(&text)),
            String::from_utf8_lossy(&text)
        );
        let f: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(f["api"], Value::Null);
        assert_eq!(f["evidences"], json!([{"api": null}]));
        assert_eq!(
            f["finding_info"]["related_events"],
            json!([{"type_uid": {"a": [{"c": "é\n", "d": 2}], "b": 1}, "uid": "rec-1"}])
        );
        assert_eq!(
            f["finding_info"]["types"],
            json!(["MITRE ATT&CK", "Attempt"])
        );
        assert_eq!(
            f["finding_info"]["uid"],
            "rec-1:aws-iam-cross-account-grant"
        );
        for key in ["cloud", "resources", "time", "time_dt"] {
            assert!(f.get(key).is_none(), "{key}");
        }
        assert!(f["finding_info"].get("related_analytics").is_none());

        let bare = finding(&tree::Map::new(), &[rule], "rec-1", false);
        let f: Value = serde_json::from_slice(&bare).unwrap();
        assert!(f.get("evidences").is_none());
        assert_eq!(
            f["finding_info"]["related_events"],
            json!([{"uid": "rec-1"}])
        );
    }

    /// The activity's fields that a finding reads are all written for it, and read as
    /// from the whole document.
    #[test]
    fn an_activity_is_read_from_the_fields_it_names_alone() {
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
        let read = ocsf.read(&n.source, ACTIVITY_FIELDS, |t| t.to_json());
        let mut whole: serde_json::Map<String, Value> =
            serde_json::from_slice(&ocsf.to_bytes(&n.source)).unwrap();
        whole.retain(|k, _| ACTIVITY_FIELDS.contains(&k.as_str()));
        assert_eq!(read, whole);
        for key in ACTIVITY_FIELDS {
            assert!(
                read.get(*key).is_some_and(|v| !v.is_null()),
                "{key}: {read:?}"
            );
        }
        assert_eq!(read["metadata"]["uid"], "e-1");
    }
}
