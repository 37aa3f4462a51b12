//! A normalized document: the fields the normalizer and the enrichers wrote, plus the
//! sections copied from the source record, which are written straight from the record at
//! serialization instead of being cloned into the document first.

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
#[derive(Debug, Clone, Default)]
pub struct Document {
    /// What the normalizer and the enrichers wrote.
    pub fields: Map<String, Value>,
    /// Dotted paths where a section of the source record goes.
    parts: Vec<(&'static str, Part)>,
}

impl Document {
    pub fn new(fields: Map<String, Value>) -> Self {
        Document {
            fields,
            parts: Vec::new(),
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
        Level {
            map: Some(&self.fields),
            parts: self.parts.clone(),
            source,
        }
    }
}

/// One object level of a document being serialized, with the parts that fall inside it
/// (their paths relative to this level).
struct Level<'a> {
    map: Option<&'a Map<String, Value>>,
    parts: Vec<(&'static str, Part)>,
    source: &'a SourceRecord,
}

impl Level<'_> {
    fn below(&self, key: &str) -> Vec<(&'static str, Part)> {
        self.parts
            .iter()
            .filter_map(|(path, part)| {
                let rest = path.strip_prefix(key)?.strip_prefix('.')?;
                Some((rest, *part))
            })
            .collect()
    }
}

struct PartView<'a>(Part, &'a SourceRecord);

impl Serialize for PartView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.write(self.1, s)
    }
}

impl Serialize for Level<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_map(None)?;
        for (key, value) in self.map.into_iter().flatten() {
            if self.parts.iter().any(|(path, _)| path == key) {
                continue;
            }
            let nested = self.below(key);
            match value {
                Value::Object(inner) if !nested.is_empty() => out.serialize_entry(
                    key,
                    &Level {
                        map: Some(inner),
                        parts: nested,
                        source: self.source,
                    },
                )?,
                _ => out.serialize_entry(key, value)?,
            }
        }
        let mut opened: Vec<&str> = Vec::new();
        for (path, part) in &self.parts {
            let head = path.split('.').next().unwrap_or(path);
            if head == *path {
                out.serialize_entry(head, &PartView(*part, self.source))?;
                continue;
            }
            // Written above, inside the object of that name, or as one object already.
            let in_map = self.map.is_some_and(|m| m.contains_key(head));
            if in_map || opened.contains(&head) {
                continue;
            }
            opened.push(head);
            out.serialize_entry(
                head,
                &Level {
                    map: None,
                    parts: self.below(head),
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
        let mut doc = Document::new(
            json!({"api": {"operation": "CreateUser"}, "b": 1, "data": "replaced"})
                .as_object()
                .cloned()
                .unwrap(),
        );
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
}
