//! Says how old the credential behind an action is. AWS access keys are classified by
//! prefix (`AKIA…` long-term, `ASIA…` temporary); long-term keys are looked up in the key
//! inventory for creation time and status; temporary keys get their session's age. Entra
//! service-principal credentials and GCP service-account keys are remembered when added
//! and aged when used.
//!
//! The result goes to ECS `auditbridge.credential.*` / `auditbridge.session.*`, to an
//! OCSF `enrichments[]` entry, and to the rule context (`context.key.*`,
//! `context.session.*`) so rules can match on key age.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::transforms::decode::tree;

use super::Enricher;
use crate::keys::inventory::{KeyInfo, KeyInventory, Learned};
use crate::keys::{age_days, key_type, parse_create_date};
use crate::transforms::decode::fields::{obj_of, str_of};
use crate::transforms::decode::time::parse_time;
use crate::transforms::decode::{AzureRecord, CloudTrailRecord, GcpRecord, SourceRecord};
use crate::transforms::normalize::Normalized;

pub struct KeyAge {
    inventory: Arc<KeyInventory>,
    max_age_days: i64,
}

impl KeyAge {
    pub fn new(inventory: Arc<KeyInventory>, max_age_days: i64) -> Self {
        KeyAge {
            inventory,
            max_age_days,
        }
    }

    /// Age fields for a known credential, at the time of the event.
    fn aged(&self, cred: &mut Map<String, Value>, info: &KeyInfo, at: DateTime<Utc>) {
        let days = age_days(info.created, at);
        cred.insert("created".into(), json!(ts(info.created)));
        cred.insert("age_days".into(), json!(days));
        cred.insert("status".into(), json!(info.status));
        cred.insert("over_max_age".into(), json!(days > self.max_age_days));
        cred.insert("max_age_days".into(), json!(self.max_age_days));
        cred.insert(
            "source".into(),
            json!(match info.learned {
                Learned::Stream => "stream",
                Learned::CredentialReport => "credential_report",
                Learned::Iam => "iam",
            }),
        );
        if let Some(owner) = &info.owner {
            cred.insert("owner".into(), json!(owner));
        }
    }

    fn cloudtrail(&self, r: &CloudTrailRecord, out: &mut Context) {
        self.learn_aws(r);
        let at = r.time();
        let who = r.user_identity();
        let kind = who
            .access_key_id
            .and_then(|key| Some((key, key_type(key)?)));
        if let Some((key, kind)) = kind {
            let mut cred = Map::new();
            cred.insert("access_key_id".into(), json!(key));
            cred.insert("type".into(), json!(kind));
            if kind == "long-term" {
                if let Some(info) = self.inventory.get(key, who.user_name) {
                    self.aged(&mut cred, &info, at);
                }
            }
            out.credential = Some(cred);
        }
        let session_created = match kind {
            Some((_, "temporary")) => who
                .session_attributes
                .and_then(|a| str_of(a, "creationDate"))
                .and_then(parse_time),
            _ => None,
        };
        if let Some(created) = session_created {
            out.session = Some(json!({
                "created": ts(created),
                "age_seconds": (at - created).num_seconds().max(0),
            }));
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

    fn entra(&self, r: &AzureRecord, out: &mut Context) {
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
            let mut cred = Map::new();
            cred.insert("key_id".into(), json!(key));
            cred.insert("type".into(), json!("service-principal-credential"));
            if let Some(info) = self.inventory.get(key, None) {
                self.aged(&mut cred, &info, r.time());
            }
            out.credential = Some(cred);
        }
    }
}

impl KeyAge {
    fn gcp(&self, r: &GcpRecord, out: &mut Context) {
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
            let mut cred = Map::new();
            cred.insert("key_id".into(), json!(id));
            cred.insert("type".into(), json!("service-account-key"));
            cred.insert("owner".into(), json!(owner));
            if let Some(info) = self.inventory.get(id, None) {
                self.aged(&mut cred, &info, r.time());
            }
            out.credential = Some(cred);
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
struct Context {
    credential: Option<Map<String, Value>>,
    session: Option<Value>,
    created: Option<Value>,
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
        if let Some(ecs) = record.ecs.as_mut() {
            if let Some(c) = &found.credential {
                ecs.put("auditbridge.credential", Value::Object(c.clone()));
            }
            if let Some(s) = &found.session {
                ecs.put("auditbridge.session", s.clone());
            }
            if let Some(c) = &found.created {
                ecs.put("auditbridge.created_credential", c.clone());
            }
        }
        if let (Some(ocsf), Some(c)) = (record.ocsf.as_mut(), &found.credential) {
            let value = match c.get("age_days") {
                Some(days) => format!("{} days", days),
                None => c
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_string(),
            };
            ocsf.push(
                "enrichments",
                json!({
                    "name": "credential.age",
                    "value": value,
                    "type": "credential",
                    "provider": "auditbridge",
                    "data": c,
                }),
            );
        }
        if let Some(c) = found.credential {
            record
                .context
                .insert("key", tree::Value::from(Value::Object(c)));
        }
        if let Some(s) = found.session {
            record.context.insert("session", tree::Value::from(s));
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
