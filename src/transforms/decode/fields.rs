//! Typed access to the fields of a decoded JSON record, with errors that name the field.

use super::tree::{same_key, Map, Str, Value};

/// A field holds a value of the wrong JSON type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}` must be {expected}, found {found}")]
pub struct WrongType {
    pub field: String,
    pub expected: &'static str,
    pub found: &'static str,
}

pub fn type_name(v: &Value<'_>) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Check that each named field, when present and not null, is a string.
pub fn expect_strings(map: &Map<'_>, prefix: &str, keys: &[&str]) -> Result<(), WrongType> {
    // One pass over the few values that are not strings answers for nearly every record,
    // where a lookup per key compared whole names all the way down the map.
    let fine = map
        .iter()
        .all(|(k, v)| matches!(v, Value::Null | Value::String(_)) || !listed(keys, k));
    if fine {
        return Ok(());
    }
    for key in keys {
        match map.get(key) {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(other) => return Err(wrong(prefix, key, "a string", other)),
        }
    }
    Ok(())
}

/// `key` is one of `keys`: asked of every member of every record, where `contains` called
/// `memcmp` for each name of the same length.
fn listed(keys: &[&str], key: &str) -> bool {
    keys.iter().any(|k| same_key(k, key))
}

/// Check that the named field, when present and not null, is an object.
pub fn expect_object(map: &Map<'_>, prefix: &str, key: &str) -> Result<(), WrongType> {
    match map.get(key) {
        None | Some(Value::Null) | Some(Value::Object(_)) => Ok(()),
        Some(other) => Err(wrong(prefix, key, "an object", other)),
    }
}

/// Check that the named field, when present and not null, is an array.
pub fn expect_array(map: &Map<'_>, prefix: &str, key: &str) -> Result<(), WrongType> {
    match map.get(key) {
        None | Some(Value::Null) | Some(Value::Array(_)) => Ok(()),
        Some(other) => Err(wrong(prefix, key, "an array", other)),
    }
}

fn wrong(prefix: &str, key: &str, expected: &'static str, found: &Value<'_>) -> WrongType {
    WrongType {
        field: if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        },
        expected,
        found: type_name(found),
    }
}

/// A non-empty string field.
pub fn str_of<'a>(map: &'a Map<'_>, key: &str) -> Option<&'a str> {
    string_of(map, key).map(|s| s.as_str())
}

/// [`str_of`] as the record holds the string, to be written as it came.
pub fn string_of<'a, 'r>(map: &'a Map<'r>, key: &str) -> Option<&'a Str<'r>> {
    match map.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// An object field.
pub fn obj_of<'a, 'r>(map: &'a Map<'r>, key: &str) -> Option<&'a Map<'r>> {
    map.get(key).and_then(Value::as_object)
}

/// Rename keys that differ from the canonical spelling only by case (exports that
/// lower-case every column, e.g. `eventname`), in their places, without touching keys
/// already canonical.
pub fn canonicalize_keys(map: &mut Map<'_>, canonical: &[&'static str]) {
    let renames: Vec<(String, &'static str)> = map
        .keys()
        .filter(|k| !listed(canonical, k))
        .filter_map(|k| {
            canonical
                .iter()
                .find(|c| c.eq_ignore_ascii_case(k))
                .filter(|c| !map.contains_key(c))
                .map(|c| (k.to_string(), *c))
        })
        .collect();
    for (from, to) in renames {
        map.rename(&from, to);
    }
}

/// Split a user principal name or e-mail-shaped name into (local part, domain).
pub fn split_email(s: &str) -> Option<(&str, &str)> {
    let (local, domain) = s.split_once('@')?;
    (!local.is_empty() && domain.contains('.') && !domain.contains('@')).then_some((local, domain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::decode::tree::json;

    #[test]
    fn canonicalize_renames_only_case_variants_in_their_places() {
        let mut m = Value::parse(r#"{"other":1,"eventname":"X","eventSource":"s"}"#)
            .unwrap()
            .as_object()
            .cloned()
            .unwrap();
        canonicalize_keys(&mut m, &["eventName", "eventSource"]);
        assert_eq!(
            Value::Object(m).to_string(),
            r#"{"other":1,"eventName":"X","eventSource":"s"}"#
        );
    }

    #[test]
    fn wrong_type_names_the_field() {
        let m = json!({"userIdentity": {"arn": 5}});
        let ui = m["userIdentity"].as_object().unwrap();
        let err = expect_strings(ui, "userIdentity", &["arn"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `userIdentity.arn` must be a string, found a number"
        );
    }
}
