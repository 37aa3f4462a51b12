//! Says how old the credential behind an action is. AWS access keys are classified by
//! prefix (`AKIA…` long-term, `ASIA…` temporary); long-term keys are looked up in the key
//! inventory for creation time and status; temporary keys get their session's age. Entra
//! service-principal credentials and GCP service-account keys are remembered when added
//! and aged when used.
//!
//! The result goes to ECS `auditbridge.credential.*` / `auditbridge.session.*`, to an
//! OCSF `enrichments[]` entry, and, for records a rule that reads it is tried on, to the
//! rule context (`context.key.*`, `context.session.*`) so rules can match on key age.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::transforms::decode::tree;

use super::Enricher;
use crate::keys::inventory::{KeyInfo, KeyInventory, Learned};
use crate::keys::{age_days, key_type, parse_create_date};
use crate::rules::RuleSet;
use crate::transforms::decode::fields::{obj_of, str_of};
use crate::transforms::decode::time::parse_time;
use crate::transforms::decode::{AzureRecord, CloudTrailRecord, GcpRecord, SourceRecord};
use crate::transforms::normalize::document::Head;
use crate::transforms::normalize::Normalized;

pub struct KeyAge {
    inventory: Arc<KeyInventory>,
    max_age_days: i64,
    /// The rules that read the context.
    rules: Arc<RuleSet>,
}

impl KeyAge {
    pub fn new(inventory: Arc<KeyInventory>, max_age_days: i64, rules: Arc<RuleSet>) -> Self {
        KeyAge {
            inventory,
            max_age_days,
            rules,
        }
    }

    /// What the inventory says of a known credential, at the time of the event.
    fn aged(&self, info: KeyInfo, at: DateTime<Utc>) -> Aged {
        let age_days = age_days(info.created, at);
        Aged {
            created: ts(info.created),
            age_days,
            status: info.status,
            over_max_age: age_days > self.max_age_days,
            max_age_days: self.max_age_days,
            source: match info.learned {
                Learned::Stream => "stream",
                Learned::CredentialReport => "credential_report",
                Learned::Iam => "iam",
            },
            owner: info.owner,
        }
    }

    fn cloudtrail<'r>(&self, r: &'r CloudTrailRecord, out: &mut Context<'r>) {
        self.learn_aws(r);
        let at = r.time();
        let who = r.user_identity();
        let kind = who
            .access_key_id
            .and_then(|key| Some((key, key_type(key)?)));
        if let Some((key, kind)) = kind {
            let known = match kind {
                "long-term" => self.inventory.get(key, who.user_name),
                _ => None,
            };
            out.credential = Some(Credential {
                id_key: "access_key_id",
                id: key,
                kind,
                owner: None,
                aged: known.map(|info| self.aged(info, at)),
            });
        }
        let session_created = match kind {
            Some((_, "temporary")) => who
                .session_attributes
                .and_then(|a| str_of(a, "creationDate"))
                .and_then(parse_time),
            _ => None,
        };
        if let Some(created) = session_created {
            out.session = Some(Session {
                created: ts(created),
                age_seconds: (at - created).num_seconds().max(0),
            });
        }
        if r.event_name() == "CreateAccessKey" && !r.failed() {
            if let Some(k) = new_access_key(r) {
                out.created = Some(
                    json!({"access_key_id": k.id, "created": ts(k.created), "owner": k.owner}),
                );
            }
        }
    }

    /// Keep the inventory current from IAM key lifecycle events.
    fn learn_aws(&self, r: &CloudTrailRecord) {
        if r.event_source() != "iam.amazonaws.com" || r.failed() {
            return;
        }
        let param = |k: &str| r.request_parameters().and_then(|p| str_of(p, k));
        match r.event_name() {
            "CreateAccessKey" => {
                if let Some(k) = new_access_key(r) {
                    self.inventory.insert(k);
                }
            }
            "UpdateAccessKey" => {
                if let (Some(id), Some(status)) = (param("accessKeyId"), param("status")) {
                    self.inventory.set_status(id, status);
                }
            }
            "DeleteAccessKey" => {
                if let Some(id) = param("accessKeyId") {
                    self.inventory.remove(id);
                }
            }
            _ => {}
        }
    }

    fn entra<'r>(&self, r: &'r AzureRecord, out: &mut Context<'r>) {
        for id in added_credentials(r) {
            self.inventory.insert(KeyInfo {
                id,
                owner: first_target_id(r),
                created: r.time(),
                status: "Active".into(),
                learned: Learned::Stream,
            });
        }
        if let Some(key) = r.prop_str("servicePrincipalCredentialKeyId") {
            out.credential = Some(Credential {
                id_key: "key_id",
                id: key,
                kind: "service-principal-credential",
                owner: None,
                aged: self
                    .inventory
                    .get(key, None)
                    .map(|info| self.aged(info, r.time())),
            });
        }
    }
}

impl KeyAge {
    fn gcp<'r>(&self, r: &'r GcpRecord, out: &mut Context<'r>) {
        let key_name = r
            .resource_name()
            .filter(|n| n.contains("/keys/"))
            .or_else(|| {
                r.proto()
                    .get("request")
                    .and_then(|q| q.get("name"))
                    .and_then(tree::Value::as_str)
            })
            .and_then(service_account_key);
        if r.service() == "iam.googleapis.com" && !r.failed() {
            let method = r.method();
            let verb = method.rsplit('.').next().unwrap_or(method);
            match verb {
                "CreateServiceAccountKey" | "UploadServiceAccountKey" => {
                    if let Some(k) = new_service_account_key(r) {
                        out.created = Some(json!({
                            "key_id": k.id, "created": ts(k.created), "owner": k.owner,
                        }));
                        self.inventory.insert(k);
                    }
                }
                "DeleteServiceAccountKey" => {
                    if let Some((_, id)) = key_name {
                        self.inventory.remove(id);
                    }
                }
                "DisableServiceAccountKey" | "EnableServiceAccountKey" => {
                    if let Some((_, id)) = key_name {
                        let status = if verb.starts_with("Disable") {
                            "Inactive"
                        } else {
                            "Active"
                        };
                        self.inventory.set_status(id, status);
                    }
                }
                _ => {}
            }
        }
        // A call made with a service-account key names the key it was signed with.
        let used = obj_of(r.proto(), "authenticationInfo")
            .and_then(|a| str_of(a, "serviceAccountKeyName"))
            .and_then(service_account_key);
        if let Some((owner, id)) = used {
            out.credential = Some(Credential {
                id_key: "key_id",
                id,
                kind: "service-account-key",
                owner: Some(owner),
                aged: self
                    .inventory
                    .get(id, None)
                    .map(|info| self.aged(info, r.time())),
            });
        }
    }
}

/// The service account and key id of a key's resource name
/// (`[//iam.googleapis.com/]projects/P/serviceAccounts/SA/keys/ID`).
fn service_account_key(name: &str) -> Option<(&str, &str)> {
    let (account, id) = name
        .split_once("/serviceAccounts/")?
        .1
        .split_once("/keys/")?;
    Some((account, id)).filter(|(a, i)| !a.is_empty() && !i.is_empty() && !i.contains('/'))
}

/// The key a CreateServiceAccountKey (or Upload) call returned, created at its
/// `valid_after_time`, else at the call.
fn new_service_account_key(r: &GcpRecord) -> Option<KeyInfo> {
    let response = r.proto().get("response")?;
    let (account, id) = response
        .get("name")
        .and_then(tree::Value::as_str)
        .and_then(service_account_key)?;
    let valid_after = response
        .get("valid_after_time")
        .or_else(|| response.get("validAfterTime"));
    let seconds = valid_after.and_then(|v| v.get("seconds")).and_then(|s| {
        s.as_i64()
            .or_else(|| s.as_str().and_then(|t| t.parse().ok()))
    });
    let created = match (seconds, valid_after.and_then(tree::Value::as_str)) {
        (Some(secs), _) => DateTime::from_timestamp(secs, 0),
        (None, Some(text)) => parse_time(text),
        (None, None) => None,
    };
    Some(KeyInfo {
        id: id.to_string(),
        owner: Some(account.to_string()),
        created: created.unwrap_or(r.time()),
        status: "Active".into(),
        learned: Learned::Stream,
    })
}

/// What the enricher found for one record.
#[derive(Default)]
struct Context<'r> {
    credential: Option<Credential<'r>>,
    session: Option<Session>,
    created: Option<Value>,
}

/// The credential behind an action. It goes to ECS, to OCSF and to the rule context as
/// the same fields: built as typed fields, not as a map cloned for each.
struct Credential<'r> {
    /// `access_key_id` for an AWS key, `key_id` for Entra and GCP credentials.
    id_key: &'static str,
    id: &'r str,
    kind: &'static str,
    /// The service account a GCP key belongs to, as the key's name says.
    owner: Option<&'r str>,
    /// Known to the inventory.
    aged: Option<Aged>,
}

struct Aged {
    created: String,
    age_days: i64,
    status: String,
    over_max_age: bool,
    max_age_days: i64,
    source: &'static str,
    owner: Option<String>,
}

/// The session a temporary key belongs to.
struct Session {
    created: String,
    age_seconds: i64,
}

/// One field of a credential or session.
#[derive(Clone, Copy)]
enum Scalar<'a> {
    Text(&'a str),
    Constant(&'static str),
    Int(i64),
    Bool(bool),
}

impl Scalar<'_> {
    fn tree(self) -> tree::Value<'static> {
        match self {
            Scalar::Text(s) => tree::Value::from(s.to_string()),
            Scalar::Constant(s) => tree::Value::from(s),
            Scalar::Int(n) => tree::Value::from(n),
            Scalar::Bool(b) => tree::Value::Bool(b),
        }
    }
}

/// The fields of an object in key order, as a map writes them.
type Fields<'a> = Vec<(&'static str, Scalar<'a>)>;

impl Credential<'_> {
    fn fields(&self) -> Fields<'_> {
        // Room for every field a known key has: grown from two, the list was copied twice.
        let mut f = Vec::with_capacity(9);
        f.extend([
            (self.id_key, Scalar::Text(self.id)),
            ("type", Scalar::Constant(self.kind)),
        ]);
        let known = self.aged.as_ref();
        // The inventory's owner wins over the one the key's name gives.
        if let Some(owner) = known.and_then(|a| a.owner.as_deref()).or(self.owner) {
            f.push(("owner", Scalar::Text(owner)));
        }
        if let Some(a) = known {
            f.extend([
                ("created", Scalar::Text(&a.created)),
                ("age_days", Scalar::Int(a.age_days)),
                ("status", Scalar::Text(&a.status)),
                ("over_max_age", Scalar::Bool(a.over_max_age)),
                ("max_age_days", Scalar::Int(a.max_age_days)),
                ("source", Scalar::Constant(a.source)),
            ]);
        }
        f.sort_unstable_by_key(|(k, _)| *k);
        f
    }

    /// The enrichment's value: the key's age, or its type when the age is not known.
    fn summary(&self) -> String {
        match &self.aged {
            Some(a) => format!("{} days", a.age_days),
            None => self.kind.to_string(),
        }
    }
}

impl Session {
    fn fields(&self) -> Fields<'_> {
        vec![
            ("age_seconds", Scalar::Int(self.age_seconds)),
            ("created", Scalar::Text(&self.created)),
        ]
    }
}

fn head(fields: &Fields) -> Head {
    let mut h = Head::with_capacity(fields.len());
    for &(k, v) in fields {
        match v {
            Scalar::Text(s) => h.put(k, s),
            Scalar::Constant(s) => h.put_static(k, s),
            Scalar::Int(n) => h.put(k, n),
            Scalar::Bool(b) => h.put(k, b),
        }
    }
    h
}

fn tree_map(fields: &Fields) -> tree::Value<'static> {
    tree::Value::Object(tree::Map::from_iter(
        fields.iter().map(|&(k, v)| (tree::Str::from(k), v.tree())),
    ))
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The key a CreateAccessKey call returned.
fn new_access_key(r: &CloudTrailRecord) -> Option<KeyInfo> {
    let k = r.response_elements().and_then(|e| obj_of(e, "accessKey"))?;
    let id = str_of(k, "accessKeyId")?;
    Some(KeyInfo {
        id: id.to_string(),
        owner: str_of(k, "userName").map(str::to_string),
        created: str_of(k, "createDate")
            .and_then(parse_create_date)
            .unwrap_or(r.time()),
        status: str_of(k, "status").unwrap_or("Active").to_string(),
        learned: Learned::Stream,
    })
}

/// Key identifiers that a credential-adding audit record's `KeyDescription` lists in its
/// new value but not in its old one.
fn added_credentials(r: &AzureRecord) -> Vec<String> {
    let activity = r.activity().to_ascii_lowercase().replace('\u{2013}', "-");
    if !(activity.starts_with("add service principal credentials")
        || activity.starts_with("update application - certificates and secrets"))
    {
        return Vec::new();
    }
    let mut added = Vec::new();
    let targets = r
        .properties()
        .and_then(|p| p.get("targetResources"))
        .and_then(tree::Value::as_array);
    for t in targets.into_iter().flatten() {
        let modified = t.get("modifiedProperties").and_then(tree::Value::as_array);
        for m in modified.into_iter().flatten() {
            if m.get("displayName").and_then(tree::Value::as_str) != Some("KeyDescription") {
                continue;
            }
            let old = key_identifiers(m.get("oldValue"));
            for id in key_identifiers(m.get("newValue")) {
                if !old.contains(&id) && !added.contains(&id) {
                    added.push(id);
                }
            }
        }
    }
    added
}

/// `KeyIdentifier=…` values in a `KeyDescription` value.
fn key_identifiers(v: Option<&tree::Value<'_>>) -> Vec<String> {
    let Some(text) = v.and_then(tree::Value::as_str) else {
        return Vec::new();
    };
    text.split("KeyIdentifier=")
        .skip(1)
        .filter_map(|rest| rest.split([',', ']', '"']).next())
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .collect()
}

fn first_target_id(r: &AzureRecord) -> Option<String> {
    r.properties()?
        .get("targetResources")?
        .as_array()?
        .first()?
        .get("id")?
        .as_str()
        .map(str::to_string)
}

impl Enricher for KeyAge {
    fn enrich(&self, record: &mut Normalized) {
        let mut found = Context::default();
        match &record.source {
            SourceRecord::CloudTrail(r) => self.cloudtrail(r, &mut found),
            SourceRecord::Azure(r) => self.entra(r, &mut found),
            SourceRecord::Gcp(r) => self.gcp(r, &mut found),
        }
        let credential = found.credential.as_ref().map(|c| (c, c.fields()));
        let session = found.session.as_ref().map(Session::fields);
        if let Some(ecs) = record.ecs.as_mut() {
            if let Some((_, fields)) = &credential {
                ecs.put_object("auditbridge.credential", head(fields));
            }
            if let Some(fields) = &session {
                ecs.put_object("auditbridge.session", head(fields));
            }
            if let Some(c) = found.created {
                ecs.put("auditbridge.created_credential", c);
            }
        }
        if let (Some(ocsf), Some((c, fields))) = (record.ocsf.as_mut(), &credential) {
            // Placed as a head, keys in the order a map sorts them: a map made per record,
            // written and dropped again cost more than the rest of the enrichment.
            let mut enrichment = Head::with_capacity(5);
            enrichment.put_object("data", head(fields));
            enrichment.put_static("name", "credential.age");
            enrichment.put_static("provider", "auditbridge");
            enrichment.put_static("type", "credential");
            enrichment.put("value", c.summary());
            ocsf.push_object("enrichments", enrichment);
        }
        record.key_age_days = found
            .credential
            .as_ref()
            .and_then(|c| c.aged.as_ref())
            .map(|a| a.age_days);
        if (credential.is_some() || session.is_some())
            && self.rules.may_read_context(&record.source)
        {
            if let Some((_, fields)) = &credential {
                record.context.insert("key", tree_map(fields));
            }
            if let Some(fields) = &session {
                record.context.insert("session", tree_map(fields));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::decode::tree::json;

    #[test]
    fn key_identifiers_from_key_description() {
        let v = json!("[\"[KeyIdentifier=7dffcdc5-f2d5-43ae-86f1-682561befd4b,KeyType=AsymmetricX509Cert,KeyUsage=Verify,DisplayName=CN=a]\",\"[KeyIdentifier=c9c0b961-a80a-4a71-9c3a-b67b33edf874,KeyType=Password]\"]");
        assert_eq!(
            key_identifiers(Some(&v)),
            vec![
                "7dffcdc5-f2d5-43ae-86f1-682561befd4b",
                "c9c0b961-a80a-4a71-9c3a-b67b33edf874"
            ]
        );
        assert!(key_identifiers(Some(&json!("[]"))).is_empty());
    }
}
