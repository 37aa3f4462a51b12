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

use crate::transforms::decode::tree::Value;

/// `value` as Java prints the parsed value: maps `{k=v, k2=v2}` in `HashMap` order, lists
/// `[a, b]`, strings bare, numbers as `Integer`/`Long`/`Double` print them. Like Elastic's
/// pipeline, which first drops null and empty values recursively, those are left out; a
/// value that is nothing but those has no text.
pub fn java_text(value: &Value<'_>) -> Option<String> {
    // Nine texts in ten of the corpus are under 256 bytes (the median is 101); grown from
    // empty, a median text was reallocated four times.
    let mut out = String::with_capacity(256);
    write(value, &mut out).then_some(out)
}

/// Append `value`'s text; false (and nothing appended) for what Elastic's "drops
/// null/empty values recursively" script removes: null, `""`, and containers left empty.
/// One pass: a dropped entry is written and taken back, never checked ahead.
fn write(value: &Value<'_>, out: &mut String) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) if s.is_empty() => false,
        Value::Bool(b) => {
            out.push_str(if *b { "true" } else { "false" });
            true
        }
        Value::Number(n) => {
            number(n, out);
            true
        }
        Value::String(s) => {
            out.push_str(s);
            true
        }
        Value::Array(items) => container(
            out,
            '[',
            ']',
            items.iter().map(|v| (None::<&str>, v)),
            write,
        ),
        Value::Object(map) => container(
            out,
            '{',
            '}',
            hash_map_order(map.iter(), map.len())
                .into_iter()
                .map(|(k, v)| (Some(k), v)),
            write,
        ),
    }
}

/// `open` entries `, `-separated `close`, each `key=value` when keyed; nothing at all when
/// every entry is dropped.
fn container<K: AsRef<str>, V>(
    out: &mut String,
    open: char,
    close: char,
    entries: impl Iterator<Item = (Option<K>, V)>,
    mut write: impl FnMut(V, &mut String) -> bool,
) -> bool {
    let start = out.len();
    out.push(open);
    let mut kept = 0;
    for (key, value) in entries {
        let before = out.len();
        if kept > 0 {
            out.push_str(", ");
        }
        if let Some(key) = key {
            out.push_str(key.as_ref());
            out.push('=');
        }
        if write(value, out) {
            kept += 1;
        } else {
            out.truncate(before);
        }
    }
    if kept == 0 {
        out.truncate(start);
        return false;
    }
    out.push(close);
    true
}

/// Integers print as they are; a number with a fraction or exponent is a `Double`, which
/// Java prints with at least one decimal (`1.0`) and in scientific notation outside
/// 10^-3 ≤ |x| < 10^7 (`1.0E7`).
fn number(n: &serde_json::Number, out: &mut String) {
    if n.is_i64() || n.is_u64() {
        out.push_str(&n.to_string());
        return;
    }
    let x = n.as_f64().unwrap_or(0.0);
    let magnitude = x.abs();
    if magnitude == 0.0 || (1e-3..1e7).contains(&magnitude) {
        let text = x.to_string();
        out.push_str(&text);
        if !text.contains('.') {
            out.push_str(".0");
        }
    } else {
        let text = format!("{x:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        out.push_str(mantissa);
        if !mantissa.contains('.') {
            out.push_str(".0");
        }
        out.push('E');
        out.push_str(exponent);
    }
}

/// `entries` (inserted in this order) in the order a Java `HashMap` holding them iterates
/// them. Entries dropped later do not shrink the table, so its size follows all of them.
fn hash_map_order<K: AsRef<str>, V>(
    entries: impl Iterator<Item = (K, V)>,
    len: usize,
) -> Vec<(K, V)> {
    let mut capacity = 16usize;
    while len * 4 > capacity * 3 {
        capacity *= 2;
    }
    let mut keyed: Vec<(usize, usize, K, V)> = entries
        .enumerate()
        .map(|(at, (k, v))| (bucket(k.as_ref(), capacity), at, k, v))
        .collect();
    keyed.sort_unstable_by_key(|e| (e.0, e.1));
    keyed.into_iter().map(|(_, _, k, v)| (k, v)).collect()
}

fn bucket(key: &str, capacity: usize) -> usize {
    let h = key.encode_utf16().fold(0u32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(u32::from(unit))
    });
    ((h ^ (h >> 16)) as usize) & (capacity - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text of a record's JSON.
    fn text(json: &str) -> Option<String> {
        java_text(&Value::parse(json).unwrap())
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
