//! Where a Sigma field is found in a record, when the rule's name for it is not the
//! record's own path: the table is data, `config/sigma/fields.toml`, and its header
//! explains each kind of place.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use crate::transforms::decode::tree::{Map, Value};
use regex::Regex;
use serde::Deserialize;

use super::Scope;

const FIELDS: &str = include_str!("../../../config/sigma/fields.toml");

/// Where a field's values come from.
#[derive(Debug)]
pub enum Field {
    /// The rule's own dotted path, as written: CloudTrail and Cloud Audit Logs keys are
    /// exact.
    Path(Vec<String>),
    /// The rule's own dotted path in an Azure record: each segment matched exactly, else
    /// ignoring case (Log Analytics columns, `OperationName` for `operationName`), at the
    /// top and then under `properties`.
    AzurePath(Vec<String>),
    /// Places from the field table; the values of all of them.
    Mapped(&'static [Place]),
}

#[derive(Debug)]
pub enum Place {
    Path(Vec<String>),
    Text(Vec<String>),
    Capture(Vec<String>, Regex),
    Values {
        path: Vec<String>,
        renames: HashMap<String, String>,
        otherwise: Option<String>,
    },
    Entries {
        list: Vec<String>,
        key: String,
        name_field: String,
        value_field: String,
        json: bool,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PlaceSpec {
    Path(String),
    Text {
        text: String,
    },
    Capture {
        path: String,
        capture: String,
    },
    Values {
        path: String,
        values: BTreeMap<String, String>,
        otherwise: Option<String>,
    },
    Entries {
        entries: String,
        key: String,
        #[serde(default = "default_name")]
        name_field: String,
        #[serde(default = "default_value")]
        value_field: String,
        #[serde(default)]
        json: bool,
    },
    Unavailable {
        unavailable: String,
    },
}

fn default_name() -> String {
    "key".into()
}

fn default_value() -> String {
    "value".into()
}

/// A field's places, or why the field has none.
type Entry = Result<Vec<Place>, String>;

struct Table(HashMap<(Scope, String), Entry>);

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        Table::parse(FIELDS).unwrap_or_else(|e| panic!("config/sigma/fields.toml is built in: {e}"))
    })
}

impl Table {
    fn parse(text: &str) -> Result<Table, String> {
        type Fields = BTreeMap<String, Vec<PlaceSpec>>;
        let raw: BTreeMap<String, BTreeMap<String, Fields>> =
            toml::from_str(text).map_err(|e| e.to_string())?;
        let mut out = HashMap::new();
        for (product, service, fields) in raw
            .into_iter()
            .flat_map(|(p, services)| services.into_iter().map(move |(s, f)| (p.clone(), s, f)))
        {
            let scope = Scope::of(&product, &service)?;
            for (name, specs) in fields {
                let entry = specs
                    .into_iter()
                    .map(|s| {
                        s.compile()
                            .map_err(|e| e.map_err(|e| format!("`{name}`: {e}")))
                    })
                    .collect::<Result<Vec<_>, _>>();
                let entry = match entry {
                    Ok(places) => Ok(places),
                    Err(Ok(why)) => Err(why),
                    Err(Err(bad)) => return Err(format!("[{product}.{service}] {bad}")),
                };
                out.insert((scope, name.to_lowercase()), entry);
            }
        }
        Ok(Table(out))
    }
}

impl PlaceSpec {
    /// The place, or `Err(Ok(why))` when the field has none, `Err(Err(_))` when the entry
    /// is malformed.
    fn compile(self) -> Result<Place, Result<String, String>> {
        let path = |p: &str| p.split('.').map(str::to_string).collect::<Vec<_>>();
        Ok(match self {
            PlaceSpec::Path(p) => Place::Path(path(&p)),
            PlaceSpec::Text { text } => Place::Text(path(&text)),
            PlaceSpec::Capture { path: p, capture } => Place::Capture(
                path(&p),
                Regex::new(&capture).map_err(|e| Err(format!("bad capture: {e}")))?,
            ),
            PlaceSpec::Values {
                path: p,
                values,
                otherwise,
            } => Place::Values {
                path: path(&p),
                renames: values
                    .into_iter()
                    .map(|(k, v)| (k.to_lowercase(), v))
                    .collect(),
                otherwise,
            },
            PlaceSpec::Entries {
                entries,
                key,
                name_field,
                value_field,
                json,
            } => Place::Entries {
                list: path(&entries),
                key,
                name_field,
                value_field,
                json,
            },
            PlaceSpec::Unavailable { unavailable } => return Err(Ok(unavailable)),
        })
    }
}

/// Where `name` is found in the records of `scope`, or why it cannot be.
pub fn field(scope: Scope, name: &str) -> Result<Field, String> {
    match table().0.get(&(scope, name.to_lowercase())) {
        Some(Ok(places)) => Ok(Field::Mapped(places)),
        Some(Err(why)) => Err(why.clone()),
        None => {
            let path = name.split('.').map(str::to_string).collect();
            Ok(match scope {
                Scope::CloudTrail | Scope::GcpAudit => Field::Path(path),
                Scope::EntraAudit | Scope::EntraSignIn | Scope::AzureActivity => {
                    Field::AzurePath(path)
                }
            })
        }
    }
}

impl Field {
    /// The rule's own path, when it is one.
    pub fn path(&self) -> Option<&[String]> {
        match self {
            Field::Path(p) | Field::AzurePath(p) => Some(p),
            Field::Mapped(_) => None,
        }
    }

    /// The field's values in a record.
    pub fn values<'a>(&self, record: &'a Map<'a>) -> Vec<Cow<'a, Value<'a>>> {
        match self {
            Field::Path(p) => path_values(record, p),
            Field::AzurePath(p) => resolve(record, p).into_iter().map(Cow::Borrowed).collect(),
            Field::Mapped(places) => places.iter().flat_map(|p| p.values(record)).collect(),
        }
    }
}

impl Place {
    fn values<'a>(&self, record: &'a Map<'a>) -> Vec<Cow<'a, Value<'a>>> {
        let text = |v: &Value<'_>| match v {
            Value::String(s) => s.to_string(),
            other => other.to_string(),
        };
        match self {
            Place::Path(p) => walk(record, p).into_iter().map(Cow::Borrowed).collect(),
            Place::Text(p) => at(record, p)
                .map(|v| Cow::Owned(Value::from(v.to_string())))
                .into_iter()
                .collect(),
            Place::Capture(p, re) => walk(record, p)
                .into_iter()
                .filter_map(|v| {
                    let t = text(v);
                    let group = re.captures(&t)?.get(1)?.as_str().to_string();
                    Some(Cow::Owned(Value::from(group)))
                })
                .collect(),
            Place::Values {
                path,
                renames,
                otherwise,
            } => walk(record, path)
                .into_iter()
                .map(
                    |v| match (renames.get(&text(v).to_lowercase()), otherwise) {
                        (Some(to), _) | (None, Some(to)) => Cow::Owned(Value::from(to.clone())),
                        (None, None) => Cow::Borrowed(v),
                    },
                )
                .collect(),
            Place::Entries {
                list,
                key,
                name_field,
                value_field,
                json,
            } => walk(record, list)
                .into_iter()
                .filter_map(Value::as_object)
                .filter(|e| {
                    e.get(name_field)
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.eq_ignore_ascii_case(key))
                })
                .filter_map(|e| e.get(value_field))
                .map(|v| match (json, v) {
                    (true, Value::String(s)) => Value::parse(s)
                        .map_or(Cow::Borrowed(v), |parsed| Cow::Owned(parsed.into_owned())),
                    _ => Cow::Borrowed(v),
                })
                .collect(),
        }
    }
}

/// The values at a dotted path: each array on the way stands for its elements. A segment
/// is matched exactly, else ignoring case (Sigma's Azure rules name Log Analytics columns,
/// `OperationName` for `operationName`); a path not found at the top is looked for under
/// `properties`, where Azure records keep most of their fields.
pub fn resolve<'a>(record: &'a Map<'a>, path: &[String]) -> Vec<&'a Value<'a>> {
    let found = walk(record, path);
    if !found.is_empty() {
        return found;
    }
    match record.get("properties") {
        Some(Value::Object(props)) => walk(props, path),
        _ => Vec::new(),
    }
}

fn member<'a>(map: &'a Map<'a>, key: &str) -> Option<&'a Value<'a>> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn walk<'a>(map: &'a Map<'a>, path: &[String]) -> Vec<&'a Value<'a>> {
    let Some((first, rest)) = path.split_first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(v) = member(map, first) {
        collect(v, rest, &mut out);
    }
    out
}

fn collect<'a>(v: &'a Value<'a>, rest: &[String], out: &mut Vec<&'a Value<'a>>) {
    match (v, rest.is_empty()) {
        (Value::Array(items), _) => items.iter().for_each(|i| collect(i, rest, out)),
        (_, true) => out.push(v),
        (Value::Object(m), false) => out.extend(walk(m, rest)),
        _ => {}
    }
}

/// The values at a rule's own path, as `Field::Path` reads them.
fn path_values<'a>(record: &'a Map<'a>, path: &[String]) -> Vec<Cow<'a, Value<'a>>> {
    let mut out = Vec::new();
    each_path_value(record, path, &mut |v| out.push(Cow::Borrowed(v)));
    out
}

/// `found` for each value at a rule's own path: each array on the way stands for its
/// elements.
pub fn each_path_value<'a>(
    map: &'a Map<'a>,
    path: &[String],
    found: &mut impl FnMut(&'a Value<'a>),
) {
    fn at<'a>(v: &'a Value<'a>, rest: &[String], found: &mut impl FnMut(&'a Value<'a>)) {
        match (v, rest) {
            (Value::Array(items), _) => items.iter().for_each(|i| at(i, rest, found)),
            (_, []) => found(v),
            (Value::Object(m), _) => each_path_value(m, rest, found),
            _ => {}
        }
    }
    if let Some((first, rest)) = path.split_first() {
        if let Some(v) = map.get(first) {
            at(v, rest, found);
        }
    }
}

/// The one value at a path of objects, arrays kept whole.
fn at<'a>(map: &'a Map<'a>, path: &[String]) -> Option<&'a Value<'a>> {
    let (first, rest) = path.split_first()?;
    let v = member(map, first)?;
    match rest {
        [] => Some(v),
        _ => at(v.as_object()?, rest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::decode::tree::json;

    fn values(scope: Scope, name: &str, record: Value<'static>) -> Vec<Value<'static>> {
        let r = record.as_object().unwrap();
        field(scope, name)
            .unwrap()
            .values(r)
            .into_iter()
            .map(|v| v.into_owned().into_owned())
            .collect()
    }

    #[test]
    fn every_kind_of_place_finds_its_values() {
        let audit = json!({"category": "AuditLogs", "operationName": "Consent to application",
            "properties": {"category": "ApplicationManagement",
                "targetResources": [{"type": "ServicePrincipal", "modifiedProperties": [
                    {"displayName": "ConsentContext.IsAdminConsent", "newValue": "\"False\""}]}],
                "additionalDetails": [{"key": "AdditionalInfo", "value": "recovered"}]}});
        assert_eq!(
            values(Scope::EntraAudit, "Category", audit.clone()),
            [json!("ApplicationManagement")]
        );
        assert_eq!(
            values(Scope::EntraAudit, "properties.message", audit.clone()),
            [json!("Consent to application")]
        );
        assert_eq!(
            values(
                Scope::EntraAudit,
                "consentcontext.isadminconsent",
                audit.clone()
            ),
            [json!("False")]
        );
        assert_eq!(
            values(
                Scope::EntraAudit,
                "additionalDetails.additionalInfo",
                audit.clone()
            ),
            [json!("recovered")]
        );
        let text = values(Scope::EntraAudit, "TargetResources", audit);
        assert!(text[0]
            .as_str()
            .unwrap()
            .starts_with("[{\"modifiedProperties\""));

        let failed = json!({"resultType": "50126", "properties": {"status": {"errorCode": 50126,
            "failureReason": "Invalid username or password."}, "authenticationProtocol": "ropc"}});
        assert_eq!(
            values(Scope::EntraSignIn, "Status", failed.clone()),
            [json!("Failure"), json!("Invalid username or password.")]
        );
        assert_eq!(
            values(Scope::EntraSignIn, "properties.message", failed),
            [json!("ROPC")]
        );
        assert_eq!(
            values(
                Scope::EntraSignIn,
                "Status",
                json!({"resultType": "0", "properties": {"status": {"errorCode": 0}}})
            ),
            [json!("Success")]
        );

        let activity = json!({"resourceId": "/SUBSCRIPTIONS/X/PROVIDERS/MICROSOFT.ADHYBRIDHEALTHSERVICE/SERVICES/AdFederationService-a"});
        assert_eq!(
            values(Scope::AzureActivity, "ResourceProviderValue", activity),
            [json!("MICROSOFT.ADHYBRIDHEALTHSERVICE")]
        );
        assert!(field(Scope::EntraSignIn, "ActivityDetails")
            .unwrap_err()
            .contains("no field of sign-in records"));
    }

    #[test]
    fn a_malformed_table_says_which_entry() {
        let err = Table::parse("[azure.signinlogs]\nX = [{ path = \"a\", capture = \"(\" }]\n")
            .err()
            .unwrap();
        assert!(
            err.starts_with("[azure.signinlogs] `X`: bad capture"),
            "{err}"
        );
        assert!(Table::parse("[azure.nosuchlog]\nX = [\"a\"]\n").is_err());
    }
}
