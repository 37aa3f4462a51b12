//! A normalized document: the fields the normalizer and the enrichers wrote, plus the
//! sections copied from the source record, which are written straight from the record at
//! serialization instead of being cloned into the document first.

use std::borrow::Cow;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use super::{ecs, ocsf};
use crate::transforms::decode::SourceRecord;

/// A section of a document taken from the source record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// A top-level field of the record, as it is.
    Field(&'static str),
    /// ECS `aws.cloudtrail.*`.
    EcsCloudTrail,
    /// ECS `azure.auditlogs.*` or `azure.signinlogs.*`.
    EcsEntra,
    /// OCSF `unmapped` of a CloudTrail record; the flags say which mapped fields found
    /// no OCSF home in this record.
    OcsfCloudTrailUnmapped {
        request_parameters: bool,
        resources: bool,
    },
    /// OCSF `unmapped` of an Entra record.
    OcsfEntraUnmapped,
}

impl Part {
    fn write<S: Serializer>(self, source: &SourceRecord, s: S) -> Result<S::Ok, S::Error> {
        match (self, source) {
            (Part::Field(key), _) => source.fields().get(key).serialize(s),
            (Part::EcsCloudTrail, SourceRecord::CloudTrail(r)) => {
                ecs::cloudtrail_vendor(r).serialize(s)
            }
            (Part::EcsEntra, SourceRecord::Entra(r)) => ecs::entra_vendor(r).serialize(s),
            (
                Part::OcsfCloudTrailUnmapped {
                    request_parameters,
                    resources,
                },
                SourceRecord::CloudTrail(r),
            ) => ocsf::cloudtrail_unmapped(r, request_parameters, resources).serialize(s),
            (Part::OcsfEntraUnmapped, SourceRecord::Entra(r)) => {
                ocsf::entra_unmapped(r).serialize(s)
            }
            // The normalizers only splice parts of their own provider.
            _ => s.serialize_none(),
        }
    }
}

/// An ECS or OCSF document under construction.
///
/// The normalizer's fields are kept as a flat list of dotted paths and only nested as they
/// are serialized: building a tree of maps for them, and dropping it again, was a fifth
/// of the transform stage's work.
#[derive(Debug, Clone, Default)]
pub struct Document {
    /// What enrichers add or append to (`enrichments`, `auditbridge`, `threat` …); merged
    /// with the flat fields at serialization, object by object.
    pub fields: Map<String, Value>,
    /// `(dotted path, value)` in the order written; a later write to a path wins.
    flat: Vec<(Cow<'static, str>, Value)>,
    /// Dotted paths where a section of the source record goes.
    parts: Vec<(&'static str, Part)>,
}

impl Document {
    /// Set `path` (dot-separated) to `value`.
    pub fn put(&mut self, path: impl Into<Cow<'static, str>>, value: impl Into<Value>) {
        self.flat.push((path.into(), value.into()));
    }

    /// Set `path` when `value` is present.
    pub fn put_opt<V: Into<Value>>(&mut self, path: &'static str, value: Option<V>) {
        if let Some(v) = value {
            self.put(path, v);
        }
    }

    /// Set a non-empty list of strings.
    pub fn put_list(&mut self, path: &'static str, values: &[&str]) {
        if !values.is_empty() {
            let list: Vec<Value> = values.iter().map(|s| Value::from(*s)).collect();
            self.put(path, list);
        }
    }

    /// Write `part` of the source record at `path` when the document is serialized. It
    /// replaces a field of the same path.
    pub fn splice(&mut self, path: &'static str, part: Part) {
        self.parts.push((path, part));
    }

    /// The JSON text of the document for `source`, the record it was built from.
    pub fn to_vec(&self, source: &SourceRecord) -> Vec<u8> {
        // A few hundred bytes of headroom: ECS and OCSF add names to every field.
        let mut out = Vec::with_capacity(1024);
        // Writing into a Vec fails only on a non-string key, which a `Map` cannot hold.
        let _ = serde_json::to_writer(&mut out, &self.view(source));
        out
    }

    /// The whole document as a map, sections included, for enrichers that copy parts of
    /// it (a finding repeats its activity's `api`, `actor` …).
    pub fn materialize(&self, source: &SourceRecord) -> Map<String, Value> {
        match serde_json::to_value(self.view(source)) {
            Ok(Value::Object(map)) => map,
            _ => self.fields.clone(),
        }
    }

    fn view<'a>(&'a self, source: &'a SourceRecord) -> Level<'a> {
        let mut flat: Vec<Flat<'a>> = self
            .flat
            .iter()
            .enumerate()
            .map(|(order, (path, value))| Flat {
                path: path.as_ref(),
                order,
                value,
            })
            .collect();
        // Sorted segment by segment, the fields of one object lie side by side at every
        // level, in the order of their keys.
        flat.sort_by(|a, b| segment_order(a.path, b.path).then(a.order.cmp(&b.order)));
        Level {
            maps: vec![&self.fields],
            flat,
            parts: self.parts.clone(),
            source,
        }
    }
}

/// A flat field seen from one object level: its path below that level.
#[derive(Debug, Clone, Copy)]
struct Flat<'a> {
    path: &'a str,
    order: usize,
    value: &'a Value,
}

/// Dotted paths compared segment by segment (`a.x` before `a-b`, as `a` is before `a-b`).
fn segment_order(a: &str, b: &str) -> std::cmp::Ordering {
    let key = |c: u8| if c == b'.' { 0 } else { c };
    a.bytes().map(key).cmp(b.bytes().map(key))
}

fn split(path: &str) -> (&str, Option<&str>) {
    match path.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (path, None),
    }
}

/// One object level of a document being serialized: the maps merged into it, the flat
/// fields and the parts that fall inside it (paths relative to this level).
struct Level<'a> {
    maps: Vec<&'a Map<String, Value>>,
    flat: Vec<Flat<'a>>,
    parts: Vec<(&'static str, Part)>,
    source: &'a SourceRecord,
}

struct PartView<'a>(Part, &'a SourceRecord);

impl Serialize for PartView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.write(self.1, s)
    }
}

impl Level<'_> {
    /// The flat fields whose first segment is `key`: the contiguous run in sorted order.
    fn flat_under(&self, key: &str) -> &[Flat<'_>] {
        let start = self.flat.partition_point(|f| split(f.path).0 < key);
        let len = self.flat[start..]
            .iter()
            .take_while(|f| split(f.path).0 == key)
            .count();
        &self.flat[start..start + len]
    }
}

impl Serialize for Level<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut keys: Vec<&str> = Vec::with_capacity(self.flat.len() + self.parts.len());
        for map in &self.maps {
            keys.extend(map.keys().map(String::as_str));
        }
        keys.extend(self.flat.iter().map(|f| split(f.path).0));
        keys.extend(self.parts.iter().map(|(p, _)| split(p).0));
        keys.sort_unstable();
        keys.dedup();
        let mut out = s.serialize_map(Some(keys.len()))?;
        for key in keys {
            if let Some((_, part)) = self.parts.iter().rev().find(|(p, _)| *p == key) {
                out.serialize_entry(key, &PartView(*part, self.source))?;
                continue;
            }
            let from_maps: Vec<&Value> = self.maps.iter().filter_map(|m| m.get(key)).collect();
            // What an enricher set to a plain value is the last word.
            if let Some(v) = from_maps.iter().rev().find(|v| !v.is_object()) {
                out.serialize_entry(key, v)?;
                continue;
            }
            let under = self.flat_under(key);
            let leaf = under
                .iter()
                .filter(|f| f.path == key)
                .max_by_key(|f| f.order);
            // Writes below the key before a write of the key itself were overwritten.
            let since = leaf.map_or(0, |l| l.order + 1);
            let nested: Vec<Flat<'_>> = under
                .iter()
                .filter(|f| f.order >= since)
                .filter_map(|f| {
                    Some(Flat {
                        path: split(f.path).1?,
                        ..*f
                    })
                })
                .collect();
            let parts: Vec<(&'static str, Part)> = self
                .parts
                .iter()
                .filter_map(|(p, part)| match split(p) {
                    (head, Some(rest)) if head == key => Some((rest, *part)),
                    _ => None,
                })
                .collect();
            let mut maps: Vec<&Map<String, Value>> =
                from_maps.iter().filter_map(|v| v.as_object()).collect();
            match leaf.map(|l| l.value) {
                Some(Value::Object(obj)) => maps.insert(0, obj),
                Some(v) if nested.is_empty() && parts.is_empty() && maps.is_empty() => {
                    out.serialize_entry(key, v)?;
                    continue;
                }
                _ => {}
            }
            out.serialize_entry(
                key,
                &Level {
                    maps,
                    flat: nested,
                    parts,
                    source: self.source,
                },
            )?;
        }
        out.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::decode::CloudTrailRecord;
    use chrono::Utc;
    use serde_json::json;

    fn record() -> SourceRecord {
        let fields = json!({"eventName": "CreateUser", "eventSource": "iam.amazonaws.com",
            "requestParameters": {"userName": "backdoor"}})
        .as_object()
        .cloned()
        .unwrap();
        SourceRecord::CloudTrail(CloudTrailRecord::new(fields, Utc::now()).unwrap())
    }

    #[test]
    fn parts_are_written_at_their_paths_beside_existing_fields() {
        let source = record();
        let mut doc = Document::default();
        doc.put("api.operation", "CreateUser");
        doc.put("b", 1);
        doc.put("data", "replaced");
        doc.splice("api.request.data", Part::Field("requestParameters"));
        doc.splice("x.y", Part::Field("eventName"));
        doc.splice("data", Part::Field("eventSource"));
        let expected = json!({
            "api": {"operation": "CreateUser", "request": {"data": {"userName": "backdoor"}}},
            "b": 1,
            "x": {"y": "CreateUser"},
            "data": "iam.amazonaws.com",
        });
        let text: Value = serde_json::from_slice(&doc.to_vec(&source)).unwrap();
        assert_eq!(text, expected);
        assert_eq!(Value::Object(doc.materialize(&source)), expected);
    }

    #[test]
    fn flat_fields_nest_like_writes_into_a_map() {
        let source = record();
        let mut doc = Document::default();
        doc.put("event.action", "CreateUser");
        doc.put("user.name", "first");
        doc.put("event.kind", "event");
        doc.put("user.name", "second");
        doc.put("geo", json!({"lat": 1}));
        doc.put("geo.lon", 2);
        doc.put("gone.inner", 1);
        doc.put("gone", "scalar");
        doc.put("auditbridge.time_source", "ingest");
        doc.fields.insert(
            "auditbridge".into(),
            json!({"credential": {"type": "temporary"}}),
        );
        doc.fields.insert("tags".into(), json!(["attack.T1136"]));
        let text: Value = serde_json::from_slice(&doc.to_vec(&source)).unwrap();
        assert_eq!(
            text,
            json!({
                "auditbridge": {"credential": {"type": "temporary"}, "time_source": "ingest"},
                "event": {"action": "CreateUser", "kind": "event"},
                "geo": {"lat": 1, "lon": 2},
                "gone": "scalar",
                "tags": ["attack.T1136"],
                "user": {"name": "second"},
            })
        );
    }
}
