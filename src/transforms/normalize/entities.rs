//! ECS `related.entity` for CloudTrail: the identifiers of the principals and resources an
//! event touches, from the fields `config/elastic/cloudtrail-entities.toml` names.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::transforms::decode::tree::{Map, Value};
use crate::transforms::decode::CloudTrailRecord;
use serde::Deserialize;

const TABLE: &str = include_str!("../../../config/elastic/cloudtrail-entities.toml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    always: Vec<String>,
    events: HashMap<String, Vec<String>>,
}

type Path = Vec<String>;

struct Paths {
    always: Vec<Path>,
    exact: HashMap<String, Vec<Path>>,
    /// Event names given as `Prefix*`.
    prefixed: Vec<(String, Vec<Path>)>,
}

fn split(paths: Vec<String>) -> Vec<Path> {
    paths
        .iter()
        .map(|p| p.split('.').map(str::to_string).collect())
        .collect()
}

fn paths() -> &'static Paths {
    static PATHS: OnceLock<Paths> = OnceLock::new();
    PATHS.get_or_init(|| {
        let table: Table = toml::from_str(TABLE)
            .expect("config/elastic/cloudtrail-entities.toml parses (checked by its unit test)");
        let mut exact = HashMap::new();
        let mut prefixed = Vec::new();
        for (name, list) in table.events {
            match name.strip_suffix('*') {
                Some(prefix) => prefixed.push((prefix.to_string(), split(list))),
                None => {
                    exact.insert(name, split(list));
                }
            }
        }
        Paths {
            always: split(table.always),
            exact,
            prefixed,
        }
    })
}

/// The entity identifiers of a record, sorted and without duplicates, as Elastic lists them.
pub fn cloudtrail<'a>(r: &'a CloudTrailRecord<'_>) -> Vec<&'a str> {
    let paths = paths();
    let name = r.event_name();
    let event = paths.exact.get(name).or_else(|| {
        paths
            .prefixed
            .iter()
            .find(|(prefix, _)| name.starts_with(prefix.as_str()))
            .map(|(_, list)| list)
    });
    let mut out = Vec::new();
    // Paths come grouped by their first field (`userIdentity.…`, `requestParameters.…`):
    // the record's top level is searched once per group, not once per path.
    let mut top: Option<(&str, Option<&Value<'_>>)> = None;
    for path in paths.always.iter().chain(event.into_iter().flatten()) {
        let Some((first, rest)) = path.split_first() else {
            continue;
        };
        let value = match top {
            Some((name, value)) if name == first => value,
            _ => {
                let value = r.fields().get(first);
                top = Some((first, value));
                value
            }
        };
        if let Some(v) = value {
            at(v, rest, &mut out);
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn within<'a>(map: &'a Map<'a>, path: &[String], out: &mut Vec<&'a str>) {
    if let Some((first, rest)) = path.split_first() {
        if let Some(v) = map.get(first) {
            at(v, rest, out);
        }
    }
}

/// Every non-empty string at `rest` below `v`; an array on the way contributes each of its
/// elements.
fn at<'a>(v: &'a Value<'a>, rest: &[String], out: &mut Vec<&'a str>) {
    match v {
        Value::Array(items) => items.iter().for_each(|item| at(item, rest, out)),
        Value::Object(map) => within(map, rest, out),
        Value::String(s) if rest.is_empty() && !s.is_empty() => out.push(s),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::decode::tree::json;
    use chrono::Utc;

    fn entities(record: Value<'static>) -> Vec<String> {
        let r = CloudTrailRecord::new(record.as_object().cloned().unwrap(), Utc::now()).unwrap();
        cloudtrail(&r).into_iter().map(str::to_string).collect()
    }

    #[test]
    fn the_table_parses_and_every_path_starts_at_a_record_field() {
        let paths = paths();
        assert_eq!((paths.exact.len(), paths.prefixed.len()), (49, 3));
        for path in paths
            .always
            .iter()
            .chain(paths.exact.values().flatten())
            .chain(paths.prefixed.iter().flat_map(|(_, l)| l))
        {
            assert!(
                [
                    "userIdentity",
                    "resources",
                    "requestParameters",
                    "responseElements",
                    "additionalEventData",
                    "sourceIdentity"
                ]
                .contains(&path[0].as_str()),
                "{path:?}"
            );
        }
    }

    #[test]
    fn arrays_are_walked_prefixes_match_and_the_list_is_sorted_once() {
        let run = entities(json!({
            "eventName": "RunInstances", "eventSource": "ec2.amazonaws.com",
            "userIdentity": {"arn": "arn:aws:iam::1:user/a", "principalId": "AIDA1", "userName": "a"},
            "responseElements": {"instancesSet": {"items": [
                {"instanceId": "i-2", "groupSet": {"items": [{"groupId": "sg-1"}]}},
                {"instanceId": "i-1", "groupSet": {"items": [{"groupId": "sg-1"}]}}
            ]}}
        }));
        assert_eq!(
            run,
            ["AIDA1", "a", "arn:aws:iam::1:user/a", "i-1", "i-2", "sg-1"]
        );
        let lambda = entities(json!({
            "eventName": "CreateFunction20150331", "eventSource": "lambda.amazonaws.com",
            "requestParameters": {"functionName": "f"},
            "responseElements": {"role": "arn:aws:iam::1:role/r", "vpcConfig": {"subnetIds": ["s-1", ""]}}
        }));
        assert_eq!(lambda, ["arn:aws:iam::1:role/r", "f", "s-1"]);
        let other = entities(json!({
            "eventName": "ListBuckets", "eventSource": "s3.amazonaws.com",
            "requestParameters": {"bucketName": "b"}
        }));
        assert!(other.is_empty(), "{other:?}");
    }
}
