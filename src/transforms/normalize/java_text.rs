//! A JSON value as Elasticsearch's ingest pipelines print it: Java's `Map.toString()` of the
//! parsed document. Elastic's CloudTrail integration stores `requestParameters`,
//! `responseElements` and `additionalEventData` that way (`{userName=Bob}`), and Elastic's
//! detection rules match on that text (`*userData=*`, `principal=\*`), so the ECS string
//! forms must be written exactly so, down to the order of the keys.
//!
//! Elasticsearch parses JSON objects into `java.util.HashMap`s, whose iteration order is
//! the order of their hash buckets: a key's bucket is its `String.hashCode()`, spread by
//! `h ^ (h >>> 16)`, modulo the table size (16, doubled whenever the map grows past three
//! quarters of it). Keys in one bucket keep their insertion order, which a resize keeps;
//! the decoded tree keeps the record's order, so it is the insertion order.

use crate::transforms::decode::tree::{Str, Value};

use super::json;

/// Whether `value` has a text: anything but null, `""` and containers of nothing else, which
/// Elastic's pipeline drops first, recursively ("drops null/empty values").
pub fn has_text(value: &Value<'_>) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
        Value::Array(items) => items.iter().any(has_text),
        Value::Object(map) => map.iter().any(|(_, v)| has_text(v)),
    }
}

/// `value` as Java prints the parsed value, as a JSON string: maps `{k=v, k2=v2}` in
/// `HashMap` order, lists `[a, b]`, strings bare, numbers as `Integer`/`Long`/`Double`
/// print them, null and empty values left out. `""` when it has no text ([`has_text`]).
///
/// Escaped as it is written: made as a text first, then escaped into the document, the
/// text was written twice and allocated once per section (callgrind, BENCHMARKS.md).
pub fn write_json(value: &Value<'_>, out: &mut Vec<u8>) {
    out.push(b'"');
    write(value, out);
    out.push(b'"');
}

/// Append `value`'s text, escaped for a JSON string; false (and nothing appended) for what
/// has none. One pass: a dropped entry is written and taken back, never checked ahead.
fn write(value: &Value<'_>, out: &mut Vec<u8>) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) if s.is_empty() => false,
        Value::Bool(b) => {
            out.extend_from_slice(if *b { b"true" } else { b"false" });
            true
        }
        Value::Number(n) => {
            number(n, out);
            true
        }
        Value::String(s) => {
            json::record_string_content(out, s);
            true
        }
        Value::Array(items) => {
            let mut list = Entries::open(out, b'[');
            for item in items {
                list.entry(None, item);
            }
            list.close(b']')
        }
        Value::Object(map) => {
            let members = map.members();
            let mut object = Entries::open(out, b'{');
            in_hash_map_order(members, |at| {
                let (key, value) = &members[at];
                object.entry(Some(key), value);
            });
            object.close(b'}')
        }
    }
}

/// A container's entries being written, `, `-separated, each `key=value` when keyed.
struct Entries<'o> {
    out: &'o mut Vec<u8>,
    start: usize,
    kept: usize,
}

impl<'o> Entries<'o> {
    fn open(out: &'o mut Vec<u8>, open: u8) -> Self {
        let start = out.len();
        out.push(open);
        Entries {
            out,
            start,
            kept: 0,
        }
    }

    fn entry(&mut self, key: Option<&Str<'_>>, value: &Value<'_>) {
        let before = self.out.len();
        if self.kept > 0 {
            self.out.extend_from_slice(b", ");
        }
        if let Some(key) = key {
            json::record_string_content(self.out, key);
            self.out.push(b'=');
        }
        if write(value, self.out) {
            self.kept += 1;
        } else {
            self.out.truncate(before);
        }
    }

    /// The container closed; nothing at all, and false, when every entry was dropped.
    fn close(self, close: u8) -> bool {
        if self.kept == 0 {
            self.out.truncate(self.start);
            return false;
        }
        self.out.push(close);
        true
    }
}

/// Integers print as they are; a number with a fraction or exponent is a `Double`, which
/// Java prints with at least one decimal (`1.0`) and in scientific notation outside
/// 10^-3 ≤ |x| < 10^7 (`1.0E7`).
fn number(n: &serde_json::Number, out: &mut Vec<u8>) {
    if n.is_i64() || n.is_u64() {
        json::number(out, n);
        return;
    }
    let x = n.as_f64().unwrap_or(0.0);
    let magnitude = x.abs();
    if magnitude == 0.0 || (1e-3..1e7).contains(&magnitude) {
        let text = x.to_string();
        out.extend_from_slice(text.as_bytes());
        if !text.contains('.') {
            out.extend_from_slice(b".0");
        }
    } else {
        let text = format!("{x:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        out.extend_from_slice(mantissa.as_bytes());
        if !mantissa.contains('.') {
            out.extend_from_slice(b".0");
        }
        out.push(b'E');
        out.extend_from_slice(exponent.as_bytes());
    }
}

/// Objects this small are ordered on the stack.
const SMALL_OBJECT: usize = 32;

/// `visit` each of `members` (inserted in this order) by its place, in the order a Java
/// `HashMap` holding them iterates them. Entries dropped later do not shrink the table, so
/// its size follows all of them.
fn in_hash_map_order<K: AsRef<str>, V>(members: &[(K, V)], mut visit: impl FnMut(usize)) {
    let mut capacity = 16usize;
    while members.len() * 4 > capacity * 3 {
        capacity *= 2;
    }
    // A member's bucket, then its place: the order of one bucket is the insertion order.
    let (mut small, mut large) = ([(0, 0); SMALL_OBJECT], Vec::new());
    let order = match small.get_mut(..members.len()) {
        Some(order) => order,
        None => {
            large.resize(members.len(), (0, 0));
            &mut large[..]
        }
    };
    for (at, slot) in order.iter_mut().enumerate() {
        *slot = (bucket(members[at].0.as_ref(), capacity), at);
    }
    order.sort_unstable();
    order.iter().for_each(|&(_, at)| visit(at));
}

/// The bucket of `key` in a table of `capacity`: Java's `String.hashCode()`, over UTF-16
/// units, spread by `h ^ (h >>> 16)`. An ASCII key's bytes are its units.
fn bucket(key: &str, capacity: usize) -> usize {
    let step = |h: u32, unit: u32| h.wrapping_mul(31).wrapping_add(unit);
    let h = if key.is_ascii() {
        key.bytes().fold(0, |h, b| step(h, u32::from(b)))
    } else {
        key.encode_utf16()
            .fold(0, |h, unit| step(h, u32::from(unit)))
    };
    ((h ^ (h >> 16)) as usize) & (capacity - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text of a record's JSON, read back from the JSON string it is written as.
    fn text(json: &str) -> Option<String> {
        let value = Value::parse(json).unwrap();
        let mut out = Vec::new();
        write_json(&value, &mut out);
        let text: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(has_text(&value), !text.is_empty(), "{json}");
        has_text(&value).then_some(text)
    }

    #[test]
    fn elastic_s_own_expected_strings() {
        // From elastic/integrations, aws cloudtrail pipeline test
        // test-create-access-key-json.log-expected.json.
        assert_eq!(text(r#"{"userName": "Bob"}"#).unwrap(), "{userName=Bob}");
        // `status` and `createDate` share a bucket, so they print in the record's order.
        assert_eq!(bucket("status", 16), bucket("createDate", 16));
        assert_eq!(
            text(r#"{"accessKey": {"accessKeyId": "EXAMPLE_KEY_ID", "status": "Active", "userName": "Bob", "createDate": "Jan 8, 2020 8:43:06 PM"}}"#).unwrap(),
            "{accessKey={accessKeyId=EXAMPLE_KEY_ID, userName=Bob, status=Active, createDate=Jan 8, 2020 8:43:06 PM}}"
        );
    }

    #[test]
    fn java_s_hash_codes_and_numbers() {
        // "Aa" and "BB" share Java's hash code 2112, so one bucket, in the record's order.
        assert_eq!(bucket("Aa", 16), bucket("BB", 16));
        assert_eq!(text(r#"{"BB": 1, "Aa": 2}"#).unwrap(), "{BB=1, Aa=2}");
        assert_eq!(text(r#"{"Aa": 2, "BB": 1}"#).unwrap(), "{Aa=2, BB=1}");
        // 13 keys need a table of 32, where `A` (65) and `Q` (81) no longer share a bucket.
        assert_eq!(bucket("A", 16), bucket("Q", 16));
        let wide = "AQCDEFGHIJKLM"
            .chars()
            .map(|k| format!("\"{k}\":1"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            text(&format!("{{{wide}}}")).unwrap(),
            "{A=1, C=1, D=1, E=1, F=1, G=1, H=1, I=1, J=1, K=1, L=1, M=1, Q=1}"
        );
        assert_eq!(
            text(r#"[1, 2.5, 1e7, 0.0001, -3, true, "x", 12345678901234567890]"#).unwrap(),
            "[1, 2.5, 1.0E7, 1.0E-4, -3, true, x, 12345678901234567890]"
        );
        assert_eq!(text(r#""x\"y\u00e9""#).unwrap(), "x\"y\u{e9}");
    }

    /// Keys and strings are escaped as the whole text would be: those read with escapes
    /// are escaped again, those read without are the input's own bytes.
    #[test]
    fn the_json_string_is_the_text_escaped() {
        let value =
            Value::parse(r#"{"a\"b": "c\\d\n\u0001", "plain": "é/x", "n": [1.5]}"#).unwrap();
        let mut out = Vec::new();
        write_json(&value, &mut out);
        let text = "{a\"b=c\\d\n\u{1}, plain=é/x, n=[1.5]}";
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string(text).unwrap()
        );
    }

    #[test]
    fn a_repeated_key_prints_once_in_its_first_place() {
        assert_eq!(
            text(r#"{"BB": 1, "Aa": 2, "BB": 3}"#).unwrap(),
            "{BB=3, Aa=2}"
        );
    }

    #[test]
    fn null_and_empty_values_are_dropped_first() {
        assert_eq!(
            text(r#"{"a": null, "b": "", "c": {"d": []}, "e": [null, 1]}"#).unwrap(),
            "{e=[1]}"
        );
        assert_eq!(text(r#"{"a": null}"#), None);
        assert_eq!(text("[]"), None);
    }
}
