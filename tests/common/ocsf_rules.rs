//! The OCSF server's event validation rules (`ocsf-server` `lib/schema/validator2.ex`),
//! applied with the compiled OCSF 1.8.0 schema in `schemas/ocsf-1.8.0/`: required and
//! recommended attributes, unknown attributes (profile attributes count only when the
//! event declares the profile), value types, the dictionary's regexes, lengths and
//! value lists, enum values, enum siblings, deprecations, constraints, `type_uid`,
//! `metadata.version` and observable names.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value};

use super::{gunzip, repo};

/// One finding of the validator, as the server names it (`attribute_deprecated`, …).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub warning: bool,
    pub rule: &'static str,
    pub path: String,
    pub detail: String,
}

pub struct OcsfRules {
    schema: Value,
    regexes: HashMap<String, regex::Regex>,
}

impl OcsfRules {
    pub fn load() -> OcsfRules {
        let bytes = gunzip(&repo("schemas/ocsf-1.8.0/ocsf-1.8.0-export.json.gz"));
        let schema: Value = serde_json::from_slice(&bytes).unwrap();
        let mut regexes = HashMap::new();
        for (name, t) in schema["dictionary"]["types"]["attributes"]
            .as_object()
            .unwrap()
        {
            if let Some(r) = t["regex"].as_str() {
                let compiled = regex::Regex::new(r)
                    .unwrap_or_else(|e| panic!("the regex of {name} does not compile: {e}"));
                regexes.insert(name.clone(), compiled);
            }
        }
        OcsfRules { schema, regexes }
    }

    /// Errors and warnings for one event. `recommended` turns on the warnings for missing
    /// recommended attributes (the server's `missing_recommended` option).
    pub fn validate(&self, event: &Value, recommended: bool) -> Vec<Finding> {
        let mut v = Run {
            rules: self,
            recommended,
            profiles: HashSet::new(),
            out: Vec::new(),
        };
        v.event(event);
        v.out
    }

    fn class(&self, uid: u64) -> Option<&Map<String, Value>> {
        self.schema["classes"]
            .as_object()?
            .values()
            .find(|c| c["uid"].as_u64() == Some(uid))?
            .as_object()
    }

    fn object(&self, name: &str) -> Option<&Map<String, Value>> {
        self.schema["objects"][name].as_object()
    }

    fn types(&self) -> &Map<String, Value> {
        self.schema["dictionary"]["types"]["attributes"]
            .as_object()
            .unwrap()
    }
}

struct Run<'a> {
    rules: &'a OcsfRules,
    recommended: bool,
    profiles: HashSet<String>,
    out: Vec<Finding>,
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

impl Run<'_> {
    fn error(&mut self, rule: &'static str, path: &str, detail: String) {
        self.push(false, rule, path, detail);
    }

    fn warning(&mut self, rule: &'static str, path: &str, detail: String) {
        self.push(true, rule, path, detail);
    }

    fn push(&mut self, warning: bool, rule: &'static str, path: &str, detail: String) {
        self.out.push(Finding {
            warning,
            rule,
            path: path.to_string(),
            detail,
        });
    }

    fn event(&mut self, event: &Value) {
        let Some(map) = event.as_object() else {
            return self.error("event_not_object", "", event.to_string());
        };
        let Some(uid) = map.get("class_uid").and_then(Value::as_u64) else {
            return self.error("class_uid_missing", "class_uid", String::new());
        };
        let Some(class) = self.rules.class(uid) else {
            return self.error("class_uid_unknown", "class_uid", uid.to_string());
        };
        if let Some(list) = event
            .pointer("/metadata/profiles")
            .and_then(Value::as_array)
        {
            let known = self.rules.schema["profiles"].as_object().unwrap();
            for p in list.iter().filter_map(Value::as_str) {
                if !known.contains_key(p) {
                    self.error("profile_unknown", "metadata.profiles", p.to_string());
                }
                self.profiles.insert(p.to_string());
            }
        }
        if class.contains_key("@deprecated") {
            self.warning("class_deprecated", "", uid.to_string());
        }
        self.attributes(map, "", class);
        self.constraints(map, "", class);
        match event.pointer("/metadata/version").and_then(Value::as_str) {
            Some("1.8.0") | None => {}
            Some(other) => self.warning("version_incorrect", "metadata.version", other.into()),
        }
        if let (Some(activity), Some(type_uid)) = (
            map.get("activity_id").and_then(Value::as_u64),
            map.get("type_uid").and_then(Value::as_u64),
        ) {
            if type_uid != uid * 100 + activity {
                self.error(
                    "type_uid_incorrect",
                    "type_uid",
                    format!("{type_uid}, expected {}", uid * 100 + activity),
                );
            }
        }
        if let Some(observables) = map.get("observables").and_then(Value::as_array) {
            for (i, o) in observables.iter().enumerate() {
                if let Some(name) = o["name"].as_str() {
                    if !self.refers(class, name) {
                        let path = format!("observables[{i}].name");
                        self.error("observable_name_invalid_reference", &path, name.into());
                    }
                }
            }
        }
    }

    /// The attributes of a class or object that this event may carry.
    fn allowed<'s>(&self, def: &'s Map<String, Value>) -> BTreeMap<&'s str, &'s Value> {
        def["attributes"]
            .as_object()
            .map(|attrs| {
                attrs
                    .iter()
                    .filter(|(_, a)| match a["profiles"].as_array() {
                        None => true,
                        Some(ps) => ps
                            .iter()
                            .filter_map(Value::as_str)
                            .any(|p| self.profiles.contains(p)),
                    })
                    .map(|(k, a)| (k.as_str(), a))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn refers(&self, def: &Map<String, Value>, name: &str) -> bool {
        let (first, rest) = match name.split_once('.') {
            Some((f, r)) => (f, Some(r)),
            None => (name, None),
        };
        let allowed = self.allowed(def);
        let Some(attr) = allowed.get(first) else {
            return false;
        };
        match rest {
            None => true,
            Some(rest) => attr["object_type"]
                .as_str()
                .and_then(|o| self.rules.object(o))
                .is_some_and(|o| self.refers(o, rest)),
        }
    }

    fn attributes(&mut self, item: &Map<String, Value>, parent: &str, def: &Map<String, Value>) {
        let allowed = self.allowed(def);
        for (name, attr) in &allowed {
            let path = join(parent, name);
            match item.get(*name) {
                None | Some(Value::Null) => match attr["requirement"].as_str() {
                    Some("required") => {
                        self.error("attribute_required_missing", &path, String::new())
                    }
                    Some("recommended") if self.recommended => {
                        self.warning("attribute_recommended_missing", &path, String::new())
                    }
                    _ => {}
                },
                Some(value) => {
                    if let Some(d) = attr.get("@deprecated") {
                        self.warning("attribute_deprecated", &path, d["message"].to_string());
                    }
                    if attr["is_array"].as_bool() == Some(true) {
                        match value.as_array() {
                            Some(items) => {
                                for (i, v) in items.iter().enumerate() {
                                    self.value(v, &format!("{path}[{i}]"), attr);
                                }
                            }
                            None => {
                                self.error("attribute_wrong_type", &path, "not an array".into())
                            }
                        }
                    } else {
                        self.value(value, &path, attr);
                    }
                }
            }
        }
        // An object with no attributes (`object`, used by `unmapped`) takes anything.
        if !allowed.is_empty() {
            for key in item.keys() {
                if !allowed.contains_key(key.as_str()) {
                    self.error("attribute_unknown", &join(parent, key), String::new());
                }
            }
        }
        for (name, attr) in &allowed {
            let (Some(values), Some(value)) = (attr["enum"].as_object(), item.get(*name)) else {
                continue;
            };
            let path = join(parent, name);
            let items: Vec<&Value> = match value.as_array() {
                Some(a) if attr["is_array"].as_bool() == Some(true) => a.iter().collect(),
                _ => vec![value],
            };
            for v in items {
                let key = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let Some(entry) = values.get(&key) else {
                    self.error("attribute_enum_value_unknown", &path, key);
                    continue;
                };
                if let Some(d) = entry.get("@deprecated") {
                    self.warning(
                        "attribute_enum_value_deprecated",
                        &path,
                        d["message"].to_string(),
                    );
                }
                let Some(sibling) = attr["sibling"].as_str() else {
                    continue;
                };
                let (Some(given), caption) = (item.get(sibling), &entry["caption"]) else {
                    continue;
                };
                let sibling_path = join(parent, sibling);
                if key == "99" {
                    if given == caption {
                        self.warning(
                            "attribute_enum_sibling_suspicious_other",
                            &sibling_path,
                            given.to_string(),
                        );
                    }
                } else if given != caption {
                    self.warning(
                        "attribute_enum_sibling_incorrect",
                        &sibling_path,
                        format!("{given}, expected {caption} for {name} {key}"),
                    );
                }
            }
        }
    }

    fn value(&mut self, value: &Value, path: &str, attr: &Value) {
        let kind = attr["type"].as_str().unwrap_or("");
        if kind == "object_t" {
            let name = attr["object_type"].as_str().unwrap_or("");
            let Some(def) = self.rules.object(name) else {
                return self.error("schema_object_unknown", path, name.into());
            };
            let Some(map) = value.as_object() else {
                return self.error("attribute_wrong_type", path, format!("not a {name} object"));
            };
            if def.contains_key("@deprecated") {
                self.warning("object_deprecated", path, name.into());
            }
            self.attributes(map, path, def);
            self.constraints(map, path, def);
            return;
        }
        let types = self.rules.types();
        let Some(t) = types.get(kind) else {
            return self.error("schema_type_unknown", path, kind.into());
        };
        let primitive = t["type"].as_str().unwrap_or(kind);
        let ok = match primitive {
            "boolean_t" => value.is_boolean(),
            "float_t" => value.is_f64(),
            "integer_t" | "long_t" => value.is_i64() || value.is_u64(),
            "string_t" => value.is_string(),
            "json_t" => true,
            _ => false,
        };
        if !ok {
            return self.error(
                "attribute_wrong_type",
                path,
                format!("{value} is not {kind}"),
            );
        }
        if let Some(s) = value.as_str() {
            let max = t["max_len"]
                .as_u64()
                .or_else(|| types[primitive]["max_len"].as_u64());
            if max.is_some_and(|m| s.len() as u64 > m) {
                self.error(
                    "attribute_value_exceeds_max_len",
                    path,
                    format!("{} bytes", s.len()),
                );
            }
            if let Some(r) = self.rules.regexes.get(kind) {
                if !r.is_match(s) {
                    self.error(
                        "attribute_value_regex_not_matched",
                        path,
                        format!("{s:?} for {kind}"),
                    );
                }
            }
        }
        let values = t["values"]
            .as_array()
            .or_else(|| types[primitive]["values"].as_array());
        if values.is_some_and(|vs| !vs.contains(value)) {
            self.error(
                "attribute_value_not_in_type_values",
                path,
                value.to_string(),
            );
        }
    }

    fn constraints(&mut self, item: &Map<String, Value>, path: &str, def: &Map<String, Value>) {
        let Some(constraints) = def.get("constraints").and_then(Value::as_object) else {
            return;
        };
        for (kind, keys) in constraints {
            let present = keys
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter(|k| item.get(*k).is_some_and(|v| !v.is_null()))
                .count();
            let ok = match kind.as_str() {
                "at_least_one" => present >= 1,
                "just_one" => present == 1,
                _ => false,
            };
            if !ok {
                self.error("constraint_failed", path, format!("{kind} of {keys}"));
            }
        }
    }
}

/// Findings counted by rule and path (array indexes dropped), for a report.
pub fn tally(findings: &[Finding]) -> BTreeMap<(bool, &'static str, String), usize> {
    let mut out = BTreeMap::new();
    for f in findings {
        let path: String = f
            .path
            .split('[')
            .map(|p| p.split_once(']').map_or(p, |(_, rest)| rest))
            .collect();
        *out.entry((f.warning, f.rule, path)).or_insert(0) += 1;
    }
    out
}
