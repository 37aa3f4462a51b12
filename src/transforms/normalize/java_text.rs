//! A JSON value as Elasticsearch's ingest pipelines print it: Java's `Map.toString()` of the
//! parsed document. Elastic's CloudTrail integration stores `requestParameters`,
//! `responseElements` and `additionalEventData` that way (`{userName=Bob}`), and Elastic's
//! detection rules match on that text (`*userData=*`, `principal=\*`), so the ECS string
//! forms must be written exactly so, down to the order of the keys.
//!
//! Elasticsearch parses JSON objects into `java.util.HashMap`s, whose iteration order is
//! the order of their hash buckets: a key's bucket is its `String.hashCode()`, spread by
//! `h ^ (h >>> 16)`, modulo the table size (16, doubled whenever the map grows past three
//! quarters of it). Keys in one bucket keep their insertion order, which a resize keeps.
//!
//! The decoded tree ([`java_text`]) has its keys sorted, not in the order Elasticsearch
//! inserted them, which only matters for keys that share a bucket. For those the text is
//! made from the record's own JSON ([`java_text_of`]). A record whose keys were respelled
//! (`eventname`) has such keys sorted; the text holds the same `key=value` pairs either
//! way.

use crate::transforms::decode::tape::Item;
use crate::transforms::decode::tree::Value;

/// `value` as Java prints the parsed value: maps `{k=v, k2=v2}` in `HashMap` order, lists
/// `[a, b]`, strings bare, numbers as `Integer`/`Long`/`Double` print them. Like Elastic's
/// pipeline, which first drops null and empty values recursively, those are left out; a
/// value that is nothing but those has no text.
pub fn java_text(value: &Value<'_>) -> JavaText {
    let mut out = String::new();
    let mut shared = false;
    let text = write(value, &mut out, &mut shared).then_some(out);
    if shared {
        JavaText::Sorted(text)
    } else {
        JavaText::Settled(text)
    }
}

/// The text of a decoded value.
#[derive(Debug, PartialEq)]
pub enum JavaText {
    /// What Elastic prints.
    Settled(Option<String>),
    /// Two keys of an object share a bucket, so Elastic prints them in the order the
    /// record wrote them, which the decoded tree no longer knows: here they are sorted.
    Sorted(Option<String>),
}

/// The same text, read from the record's JSON: objects iterate in `HashMap` order of their
/// keys inserted as written.
pub fn java_text_of(item: Item<'_, '_>) -> Option<String> {
    let mut out = String::new();
    write_item(item, &mut out).then_some(out)
}

/// Append `value`'s text; false (and nothing appended) for what Elastic's "drops
/// null/empty values recursively" script removes: null, `""`, and containers left empty.
/// One pass: a dropped entry is written and taken back, never checked ahead.
/// `shared` is set when two keys of an object fell into one bucket.
fn write(value: &Value<'_>, out: &mut String, shared: &mut bool) -> bool {
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
            |v, out| write(v, out, shared),
        ),
        Value::Object(map) => {
            let (ordered, same_bucket) = hash_map_order(map.iter(), map.len());
            *shared |= same_bucket;
            container(
                out,
                '{',
                '}',
                ordered.into_iter().map(|(k, v)| (Some(k), v)),
                |v, out| write(v, out, shared),
            )
        }
    }
}

/// [`write`] for a value of the record's JSON text.
fn write_item(item: Item<'_, '_>, out: &mut String) -> bool {
    if item.is_object() {
        let members: Vec<_> = item.members().collect();
        let len = members.len();
        let (ordered, _) = hash_map_order(members.into_iter(), len);
        return container(
            out,
            '{',
            '}',
            ordered.into_iter().map(|(k, v)| (Some(k), v)),
            write_item,
        );
    }
    if item.is_array() {
        return container(
            out,
            '[',
            ']',
            item.items().map(|v| (None::<&str>, v)),
            write_item,
        );
    }
    if item.is_string() {
        let s = item.str();
        out.push_str(&s);
        return !s.is_empty();
    }
    match item.text() {
        "null" => false,
        literal @ ("true" | "false") => {
            out.push_str(literal);
            true
        }
        text => {
            match text.parse::<serde_json::Number>() {
                Ok(n) => number(&n, out),
                Err(_) => out.push_str(text),
            }
            true
        }
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
/// them, and whether two of them share a bucket. Entries dropped later do not shrink the
/// table, so its size follows all of them.
fn hash_map_order<K: AsRef<str>, V>(
    entries: impl Iterator<Item = (K, V)>,
    len: usize,
) -> (Vec<(K, V)>, bool) {
    let mut capacity = 16usize;
    while len * 4 > capacity * 3 {
        capacity *= 2;
    }
    let mut keyed: Vec<(usize, usize, K, V)> = entries
        .enumerate()
        .map(|(at, (k, v))| (bucket(k.as_ref(), capacity), at, k, v))
        .collect();
    keyed.sort_unstable_by_key(|e| (e.0, e.1));
    let shared = keyed.windows(2).any(|w| w[0].0 == w[1].0);
    (
        keyed.into_iter().map(|(_, _, k, v)| (k, v)).collect(),
        shared,
    )
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
    use crate::transforms::decode::tape::Tape;
    use serde_json::json;

    /// The text of serde_json's tree, as of the record's.
    fn java_text(value: &serde_json::Value) -> JavaText {
        super::java_text(&Value::from(value.clone()))
    }

    /// The text, whether or not its order was settled.
    fn any(text: JavaText) -> Option<String> {
        match text {
            JavaText::Settled(t) | JavaText::Sorted(t) => t,
        }
    }

    #[test]
    fn elastic_s_own_expected_strings() {
        // From elastic/integrations, aws cloudtrail pipeline test
        // test-create-access-key-json.log-expected.json.
        assert_eq!(
            java_text(&json!({"userName": "Bob"})),
            JavaText::Settled(Some("{userName=Bob}".into()))
        );
        // Elastic: `{accessKey={accessKeyId=EXAMPLE_KEY_ID, userName=Bob, status=Active,
        // createDate=Jan 8, 2020 8:43:06 PM}}`. `status` and `createDate` share a bucket;
        // the record listed `status` first, the decoded tree lists keys sorted, and says so.
        assert_eq!(bucket("status", 16), bucket("createDate", 16));
        assert_eq!(
            java_text(&json!({"accessKey": {"accessKeyId": "EXAMPLE_KEY_ID", "status": "Active", "userName": "Bob", "createDate": "Jan 8, 2020 8:43:06 PM"}})),
            JavaText::Sorted(Some("{accessKey={accessKeyId=EXAMPLE_KEY_ID, userName=Bob, createDate=Jan 8, 2020 8:43:06 PM, status=Active}}".into()))
        );
        // From the record's text, the keys go in as written, and the text is Elastic's.
        let record = r#"{"accessKey": {"accessKeyId": "EXAMPLE_KEY_ID", "status": "Active", "userName": "Bob", "createDate": "Jan 8, 2020 8:43:06 PM"}}"#;
        assert_eq!(
            java_text_of(Tape::new(record).unwrap().root()).unwrap(),
            "{accessKey={accessKeyId=EXAMPLE_KEY_ID, userName=Bob, status=Active, createDate=Jan 8, 2020 8:43:06 PM}}"
        );
    }

    #[test]
    fn the_record_s_text_and_its_tree_print_alike() {
        for value in [
            json!({"userName": "Bob", "n": [1, 2.5, 1e7, 0.0001, -3], "b": [true, false]}),
            json!({"a": null, "b": "", "c": {"d": []}, "e": [null, 1], "f": "x\"y\u{e9}", "k\"q": 1}),
            json!({"a": null}),
            json!([]),
            json!("text"),
            json!(12345678901234567890u64),
        ] {
            let text = serde_json::to_string(&value).unwrap();
            let tape = Tape::new(&text).unwrap();
            assert_eq!(java_text_of(tape.root()), any(java_text(&value)), "{text}");
        }
    }

    #[test]
    fn java_s_hash_codes_and_numbers() {
        let text = |v: serde_json::Value| any(java_text(&v)).unwrap();
        // "Aa" and "BB" share Java's hash code 2112, so one bucket.
        assert_eq!(bucket("Aa", 16), bucket("BB", 16));
        assert_eq!(text(json!({"BB": 1, "Aa": 2})), "{Aa=2, BB=1}");
        // 13 keys need a table of 32, where `A` (65) and `Q` (81) no longer share a bucket.
        assert_eq!(bucket("A", 16), bucket("Q", 16));
        let wide: serde_json::Map<String, serde_json::Value> = "AQCDEFGHIJKLM"
            .chars()
            .map(|k| (k.to_string(), json!(1)))
            .collect();
        assert_eq!(
            text(serde_json::Value::Object(wide)),
            "{A=1, C=1, D=1, E=1, F=1, G=1, H=1, I=1, J=1, K=1, L=1, M=1, Q=1}"
        );
        assert_eq!(
            text(json!([1, 2.5, 1e7, 0.0001, true, "x"])),
            "[1, 2.5, 1.0E7, 1.0E-4, true, x]"
        );
    }

    #[test]
    fn null_and_empty_values_are_dropped_first() {
        assert_eq!(
            any(java_text(
                &json!({"a": null, "b": "", "c": {"d": []}, "e": [null, 1]})
            ))
            .unwrap(),
            "{e=[1]}"
        );
        assert_eq!(java_text(&json!({"a": null})), JavaText::Settled(None));
    }
}
