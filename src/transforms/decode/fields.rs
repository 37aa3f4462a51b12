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

/// A fixed list of key names, with the lengths they come in: a key of no listed length
/// is not listed, which one bit test says. Every member of every record that is not a string
/// is asked whether it is listed, and validating a record cost 2.5 % of `replay --format
/// ecs`'s instructions, most of it comparing keys with names.
pub struct Keys {
    pub names: &'static [&'static str],
    /// Bit `n` for a name `n` bytes long; bit 63 for every name of 63 bytes or more.
    lengths: u64,
}

impl Keys {
    pub const fn new(names: &'static [&'static str]) -> Keys {
        let mut lengths = 0;
        let mut at = 0;
        while at < names.len() {
            lengths |= length_bit(names[at]);
            at += 1;
        }
        Keys { names, lengths }
    }

    /// `key` is one of the names.
    pub fn contains(&self, key: &str) -> bool {
        self.lengths & length_bit(key) != 0 && self.names.iter().any(|k| same_key(k, key))
    }
}

const fn length_bit(key: &str) -> u64 {
    let n = key.len();
    1 << if n < 63 { n } else { 63 }
}

/// Check that each named field, when present and not null, is a string.
pub fn expect_strings(map: &Map<'_>, prefix: &str, keys: &Keys) -> Result<(), WrongType> {
    // One pass over the few values that are not strings answers for nearly every record,
    // where a lookup per key compared whole names all the way down the map.
    let fine = map
        .iter()
        .all(|(k, v)| matches!(v, Value::Null | Value::String(_)) || !keys.contains(k));
    if fine {
        return Ok(());
    }
    for key in keys.names {
        match map.get(key) {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(other) => return Err(wrong(prefix, key, "a string", other)),
        }
    }
    Ok(())
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
    non_empty(map.get(key))
}

/// The value when it is a non-empty string: what the readers of a record take a string
/// field to be.
pub fn non_empty<'a, 'r>(value: Option<&'a Value<'r>>) -> Option<&'a Str<'r>> {
    match value {
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
/// already canonical. Whether it found any to rename (a rename is skipped when the
/// canonical key is already taken).
pub fn canonicalize_keys(map: &mut Map<'_>, canonical: &Keys) -> bool {
    let renames: Vec<(String, &'static str)> = map
        .keys()
        .filter(|k| !canonical.contains(k))
        .filter_map(|k| {
            canonical
                .names
                .iter()
                .find(|c| c.eq_ignore_ascii_case(k))
                .filter(|c| !map.contains_key(c))
                .map(|c| (k.to_string(), *c))
        })
        .collect();
    for (from, to) in &renames {
        map.rename(from, *to);
    }
    !renames.is_empty()
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
        canonicalize_keys(&mut m, &Keys::new(&["eventName", "eventSource"]));
        assert_eq!(
            Value::Object(m).to_string(),
            r#"{"other":1,"eventName":"X","eventSource":"s"}"#
        );
    }

    /// A key is listed only when it is one of the names, whatever lengths they share; names
    /// of 63 bytes or more share one length bit and are still told apart.
    #[test]
    fn keys_tell_listed_names_from_others() {
        const LONG: &str = "a_name_of_seventy_bytes_which_shares_one_length_bit_with_all_long_name";
        let keys = Keys::new(&["arn", "eventName", LONG]);
        for listed in ["arn", "eventName", LONG] {
            assert!(keys.contains(listed), "{listed}");
        }
        let other_long = LONG.replace("seventy", "SEVENTY");
        for other in [
            "",
            "ar",
            "arm",
            "eventname",
            "eventTime",
            &other_long,
            &LONG[1..],
        ] {
            assert!(!keys.contains(other), "{other}");
        }
    }

    #[test]
    fn wrong_type_names_the_field() {
        let m = json!({"userIdentity": {"arn": 5}});
        let ui = m["userIdentity"].as_object().unwrap();
        let err = expect_strings(ui, "userIdentity", &Keys::new(&["arn"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `userIdentity.arn` must be a string, found a number"
        );
    }
}
