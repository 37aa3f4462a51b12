//! The `raw` document: the vendor's record as it arrived, kept to one line.

use super::decode::SourceRecord;

/// The record's own JSON text. `text` is what the input held for it: kept byte for byte
/// unless it spans lines (a pretty-printed file), which NDJSON sinks cannot carry. A
/// CloudTrail record that came as an EventBridge event's `detail` is written from its
/// fields: JSON-equal to the `detail`, without the envelope.
pub fn body(source: &SourceRecord, text: &str) -> Vec<u8> {
    if let SourceRecord::CloudTrail(r) = source {
        if r.is_unwrapped() {
            // Serializing a map of JSON values cannot fail.
            return serde_json::to_vec(r.fields()).unwrap_or_default();
        }
    }
    let text = text.trim();
    // A search for either byte at once: `contains` with a list of chars went char by char.
    if memchr::memchr2(b'\n', b'\r', text.as_bytes()).is_some() {
        compact(text)
    } else {
        text.as_bytes().to_vec()
    }
}

/// `text` without the whitespace between tokens. Whitespace inside strings stays; a
/// line break cannot be there, as JSON escapes it.
fn compact(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in text.as_bytes() {
        if in_string {
            out.push(b);
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            in_string = b == b'"';
            out.push(b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_printed_text_loses_only_the_whitespace_between_tokens() {
        let text = "{\n  \"a b\": \"x \\\" \\\\\",\n\t\"c\" : [1, 2]\r\n}\n";
        assert_eq!(
            String::from_utf8(compact(text)).unwrap(),
            r#"{"a b":"x \" \\","c":[1,2]}"#
        );
        let value: serde_json::Value = serde_json::from_slice(&compact(text)).unwrap();
        assert_eq!(
            value,
            serde_json::from_str::<serde_json::Value>(text).unwrap()
        );
    }
}
