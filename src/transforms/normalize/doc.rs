//! A small builder for nested JSON documents addressed by dotted paths.

use serde_json::{Map, Value};

/// A JSON object under construction.
#[derive(Debug, Default, Clone)]
pub struct Doc(pub Map<String, Value>);

impl Doc {
    pub fn new() -> Self {
        Doc(Map::new())
    }

    /// Set `path` (dot-separated) to `value`, creating intermediate objects.
    pub fn put(&mut self, path: &str, value: impl Into<Value>) {
        let mut map = &mut self.0;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                map.insert(part.to_string(), value.into());
                return;
            }
            let entry = map
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            map = entry.as_object_mut().expect("just made an object");
        }
    }

    /// Set `path` when `value` is present.
    pub fn put_opt<V: Into<Value>>(&mut self, path: &str, value: Option<V>) {
        if let Some(v) = value {
            self.put(path, v);
        }
    }

    /// Set a non-empty list of strings.
    pub fn put_list(&mut self, path: &str, values: &[&str]) {
        if !values.is_empty() {
            self.put(
                path,
                Value::Array(
                    values
                        .iter()
                        .map(|s| Value::String((*s).to_string()))
                        .collect(),
                ),
            );
        }
    }

    pub fn get(&self, path: &str) -> Option<&Value> {
        let mut parts = path.split('.');
        let mut cur = self.0.get(parts.next()?)?;
        for p in parts {
            cur = cur.get(p)?;
        }
        Some(cur)
    }

    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }
}

/// `camelCase`/`PascalCase` → `snake_case`, keeping acronyms together
/// (`sourceIPAddress` → `source_ip_address`, `requestID` → `request_id`).
pub fn snake_case(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev = i.checked_sub(1).map(|j| chars[j]);
            let next = chars.get(i + 1);
            let boundary = match prev {
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_ascii_uppercase() => next.is_some_and(|n| n.is_ascii_lowercase()),
                _ => false,
            };
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Copy an object with its keys in snake_case, `depth` levels deep.
pub fn snake_keys(map: &Map<String, Value>, depth: usize) -> Map<String, Value> {
    map.iter()
        .map(|(k, v)| {
            let v = match v {
                Value::Object(inner) if depth > 1 => Value::Object(snake_keys(inner, depth - 1)),
                other => other.clone(),
            };
            (snake_case(k), v)
        })
        .collect()
}

/// Split a user principal name or e-mail-shaped name into (local part, domain).
pub fn split_email(s: &str) -> Option<(&str, &str)> {
    let (local, domain) = s.split_once('@')?;
    (!local.is_empty() && domain.contains('.') && !domain.contains('@')).then_some((local, domain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn snake_case_keeps_acronyms() {
        assert_eq!(snake_case("sourceIPAddress"), "source_ip_address");
        assert_eq!(snake_case("requestID"), "request_id");
        assert_eq!(snake_case("eventVersion"), "event_version");
        assert_eq!(snake_case("MFAUsed"), "mfa_used");
        assert_eq!(snake_case("p_event_time"), "p_event_time");
    }

    #[test]
    fn put_builds_nested_objects() {
        let mut d = Doc::new();
        d.put("event.action", "X");
        d.put("event.kind", "event");
        d.put_opt::<&str>("user.name", None);
        assert_eq!(
            Value::Object(d.into_map()),
            json!({"event": {"action": "X", "kind": "event"}})
        );
    }
}
