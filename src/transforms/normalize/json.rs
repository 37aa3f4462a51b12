//! JSON text written straight into a buffer. Documents are trees of borrowed pieces walked
//! once; going through serde's `Serializer` cost a state machine and an error path per
//! value, about a tenth of the time spent writing them. The text is the same byte for
//! byte: strings and numbers are formatted by the same sonic-rs formatter.

use std::mem::MaybeUninit;

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use serde_json::{Map, Number, Value};

use crate::transforms::decode::tree;
use sonic_rs::format::{CompactFormatter, Formatter};

/// `s` as a quoted JSON string. sonic-rs escapes 16 or 32 bytes at a time.
pub fn string(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = CompactFormatter.write_string_fast(out, s, true);
}

/// `s` escaped as inside a JSON string, with no quotes around it.
pub fn string_content(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = CompactFormatter.write_string_fast(out, s, false);
}

/// A record's string escaped as inside a JSON string, with no quotes around it: the input's
/// own text when it held no escapes.
pub fn record_string_content(out: &mut Vec<u8>, s: &tree::Str<'_>) {
    if s.is_verbatim() {
        out.extend_from_slice(s.as_bytes());
    } else {
        string_content(out, s);
    }
}

/// `t` as a quoted RFC 3339 time in UTC with milliseconds (`"2024-01-02T03:04:05.678Z"`),
/// the text chrono's `to_rfc3339_opts(SecondsFormat::Millis, true)` gives, written without
/// making a `String` first: every document holds two or three of them.
pub fn time(out: &mut Vec<u8>, t: DateTime<Utc>) {
    let (date, clock) = (t.date_naive(), t.time());
    let year = date.year();
    // Years past four digits and leap seconds take chrono's own spelling.
    if !(0..=9999).contains(&year) || clock.nanosecond() >= 1_000_000_000 {
        string(out, &t.to_rfc3339_opts(SecondsFormat::Millis, true));
        return;
    }
    // Placed in a fixed buffer and copied in one go: a push per byte, each checking the
    // buffer's room, cost about 90 instructions more a time (callgrind, over the corpus).
    let mut text = *b"\"0000-00-00T00:00:00.000Z\"";
    let mut digits = |at: usize, n: u32, width: u32| {
        for place in 0..width {
            text[at + place as usize] = b'0' + (n / 10u32.pow(width - 1 - place) % 10) as u8;
        }
    };
    digits(1, year as u32, 4);
    digits(6, date.month(), 2);
    digits(9, date.day(), 2);
    digits(12, clock.hour(), 2);
    digits(15, clock.minute(), 2);
    digits(18, clock.second(), 2);
    digits(21, clock.nanosecond() / 1_000_000, 3);
    out.extend_from_slice(&text);
}

/// `a`, `": "` and `b` as one quoted string; both are constants of this program's source,
/// with nothing to escape.
pub fn joined(out: &mut Vec<u8>, a: &'static str, b: &'static str) {
    debug_assert!(tree::is_plain(a) && tree::is_plain(b));
    out.reserve(a.len() + b.len() + 4);
    out.push(b'"');
    out.extend_from_slice(a.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(b.as_bytes());
    out.push(b'"');
}

/// [`string`] for a text that is short and nearly always plain: a key, a constant
/// (`event`, `source_ip_address`, `iam`). Setting up the vector escaper cost more than
/// writing such a text.
pub fn short_string(out: &mut Vec<u8>, s: &str) {
    if !plain_short(out, s.as_bytes(), b"\"") {
        string(out, s);
    }
}

/// An object's key: [`short_string`] and the colon after it, written together.
fn short_key(out: &mut Vec<u8>, key: &str) {
    if !plain_short(out, key.as_bytes(), b"\":") {
        string(out, key);
        out.push(b':');
    }
}

/// `"`, `text` and `end`, when `text` is at most 32 bytes with nothing to escape; false,
/// and nothing written, otherwise. A check of a word or two shows the text is plain, and
/// the same words are stored straight into `out`'s spare room (overlapping when the text
/// is shorter than a word pair): fixed-size stores, no copy call, and no staging buffer
/// to copy from, which with the key's colon pushed apart cost 1 % more of `replay`'s
/// instructions (callgrind, BENCHMARKS.md).
fn plain_short<const E: usize>(out: &mut Vec<u8>, text: &[u8], end: &[u8; E]) -> bool {
    short::<E, true>(out, text, end)
}

/// [`plain_short`], checking the text only when `CHECK`: a text known to be plain is
/// placed with the same fixed-size stores and no test.
#[inline(always)]
fn short<const E: usize, const CHECK: bool>(out: &mut Vec<u8>, text: &[u8], end: &[u8; E]) -> bool {
    let n = text.len();
    if n > 32 {
        return false;
    }
    out.reserve(1 + 32 + E);
    let room = &mut out.spare_capacity_mut()[..1 + 32 + E];
    match n {
        // Ids, times, addresses and ARNs' parts: two overlapping halves of 16 bytes.
        17..=32 => {
            let (head, tail) = (piece::<16>(text, 0), piece::<16>(text, n - 16));
            if CHECK && !(plain_half(head) && plain_half(tail)) {
                return false;
            }
            put(room, 1, head);
            put(room, n - 15, tail);
        }
        // Two overlapping pieces cover the text: the second is stored over the end of
        // the first.
        8..=16 => {
            let (head, tail) = (piece::<8>(text, 0), piece::<8>(text, n - 8));
            if CHECK
                && !(plain_word(u64::from_le_bytes(head)) && plain_word(u64::from_le_bytes(tail)))
            {
                return false;
            }
            put(room, 1, head);
            put(room, n - 7, tail);
        }
        4..=7 => {
            let (head, tail) = (piece::<4>(text, 0), piece::<4>(text, n - 4));
            let both =
                u64::from(u32::from_le_bytes(head)) | u64::from(u32::from_le_bytes(tail)) << 32;
            if CHECK && !plain_word(both) {
                return false;
            }
            put(room, 1, head);
            put(room, n - 3, tail);
        }
        1..=3 => {
            let (first, middle, last) = (text[0], text[n / 2], text[n - 1]);
            if CHECK
                && ![first, middle, last]
                    .iter()
                    .all(|&b| b >= 0x20 && b != b'"' && b != b'\\')
            {
                return false;
            }
            room[1].write(first);
            room[1 + n / 2].write(middle);
            room[n].write(last);
        }
        _ => {}
    }
    room[0].write(b'"');
    put(room, n + 1, *end);
    let len = out.len() + 1 + n + E;
    // SAFETY: the `1 + n + E` bytes after the length were all written above: the opening
    // quote, every byte of the text (the pieces cover it), and `end`; `reserve` made the
    // room.
    unsafe { out.set_len(len) };
    true
}

/// `bytes` stored into `room` from `at`: a fixed-size store, not a call.
fn put<const N: usize>(room: &mut [MaybeUninit<u8>], at: usize, bytes: [u8; N]) {
    for (slot, b) in room[at..at + N].iter_mut().zip(bytes) {
        slot.write(b);
    }
}

/// `N` bytes of `text` from `at`, as an array: copied with a move, not a call.
fn piece<const N: usize>(text: &[u8], at: usize) -> [u8; N] {
    let mut bytes = [0; N];
    bytes.copy_from_slice(&text[at..at + N]);
    bytes
}

/// A string of a decoded record: one read with no escapes is copied as it came, since it
/// has nothing to escape.
pub fn record_string(out: &mut Vec<u8>, s: &tree::Str<'_>) {
    if s.is_verbatim() {
        // Most of a record's strings are short enough to be placed with fixed-size stores:
        // a copy call for each was a quarter of their cost.
        if short::<1, false>(out, s.as_bytes(), b"\"") {
            return;
        }
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        string(out, s);
    }
}

pub fn int(out: &mut Vec<u8>, n: i64) {
    let _ = CompactFormatter.write_i64(out, n);
}

pub fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"null");
}

pub fn value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => null(out),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => number(out, n),
        Value::String(s) => string(out, s),
        Value::Array(items) => array(out, items),
        Value::Object(map) => object(out, map),
    }
}

pub fn array(out: &mut Vec<u8>, items: &[Value]) {
    let mut list = Array::open(out);
    for item in items {
        value(list.item(), item);
    }
    list.close();
}

pub fn object(out: &mut Vec<u8>, map: &Map<String, Value>) {
    let mut o = Object::open(out);
    for (k, v) in map {
        value(o.key(k), v);
    }
    o.close();
}

/// A value of a decoded record, as `value` writes serde_json's.
pub fn record_value(out: &mut Vec<u8>, v: &tree::Value<'_>) {
    match v {
        tree::Value::Null => null(out),
        tree::Value::Bool(true) => out.extend_from_slice(b"true"),
        tree::Value::Bool(false) => out.extend_from_slice(b"false"),
        tree::Value::Number(n) => number(out, n),
        tree::Value::String(s) => record_string(out, s),
        tree::Value::Array(items) => {
            let mut list = Array::open(out);
            for item in items {
                record_value(list.item(), item);
            }
            list.close();
        }
        tree::Value::Object(map) => record_object(out, map),
    }
}

pub fn record_object(out: &mut Vec<u8>, map: &tree::Map<'_>) {
    let mut o = Object::open(out);
    for (k, v) in map {
        record_value(o.record_key(k), v);
    }
    o.close();
}

/// [`record_value`] with the keys of every object in byte order, the order serde_json's
/// `Map` keeps them in.
pub fn sorted_record_value(out: &mut Vec<u8>, v: &tree::Value<'_>) {
    match v {
        tree::Value::Array(items) => {
            let mut list = Array::open(out);
            for item in items {
                sorted_record_value(list.item(), item);
            }
            list.close();
        }
        tree::Value::Object(map) => {
            let mut members: Vec<_> = map.members().iter().collect();
            members.sort_unstable_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
            let mut o = Object::open(out);
            for (k, v) in members {
                sorted_record_value(o.record_key(k), v);
            }
            o.close();
        }
        scalar => record_value(out, scalar),
    }
}

/// As serde_json serializes a `Number`: unsigned, then signed, then a float.
pub fn number(out: &mut Vec<u8>, n: &Number) {
    let mut f = CompactFormatter;
    let _ = if let Some(u) = n.as_u64() {
        f.write_u64(out, u)
    } else if let Some(i) = n.as_i64() {
        f.write_i64(out, i)
    } else {
        // A `Value`'s float is always finite.
        f.write_f64(out, n.as_f64().unwrap_or(0.0))
    };
}

/// No byte of `w` is below 0x20, a quote or a backslash (the exact tests of "Bit Twiddling
/// Hacks": a borrow can only spread above a byte that already matched).
fn plain_word(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGHS;
    below(w, 0x20) | below(w ^ (ONES * 0x22), 1) | below(w ^ (ONES * 0x5c), 1) == 0
}

/// [`plain_word`] of both words of a 16-byte piece.
fn plain_half(bytes: [u8; 16]) -> bool {
    let [a, b] = [0, 8].map(|at| u64::from_le_bytes(piece::<8>(&bytes, at)));
    plain_word(a) && plain_word(b)
}

/// Values between brackets, separated by commas.
struct Separated<'o> {
    out: &'o mut Vec<u8>,
    empty: bool,
}

impl<'o> Separated<'o> {
    fn open(out: &'o mut Vec<u8>, bracket: u8) -> Self {
        out.push(bracket);
        Separated { out, empty: true }
    }

    /// The buffer, after the comma that the next value needs.
    fn next(&mut self) -> &mut Vec<u8> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out
    }

    fn close(self, bracket: u8) {
        self.out.push(bracket);
    }
}

/// An object being written: `key` before each value, `close` at the end.
pub struct Object<'o>(Separated<'o>);

impl<'o> Object<'o> {
    pub fn open(out: &'o mut Vec<u8>) -> Self {
        Object(Separated::open(out, b'{'))
    }

    /// Writes `key` and returns the buffer its value goes to.
    pub fn key(&mut self, key: &str) -> &mut Vec<u8> {
        let out = self.0.next();
        short_key(out, key);
        out
    }

    /// [`key`](Self::key) for a key written in this program's source, a name with nothing
    /// to escape, so its bytes are not checked: checking cost a third of writing a key,
    /// and documents write about seventy of them each (callgrind, BENCHMARKS.md).
    #[inline(always)]
    pub fn name(&mut self, key: &'static str) -> &mut Vec<u8> {
        debug_assert!(tree::is_plain(key), "the key {key:?} needs escaping");
        let out = self.0.next();
        if !short::<2, false>(out, key.as_bytes(), b"\":") {
            out.reserve(key.len() + 3);
            out.push(b'"');
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
        }
        out
    }

    /// [`key`](Self::key) for a key of a decoded record.
    pub fn record_key(&mut self, key: &tree::Str<'_>) -> &mut Vec<u8> {
        let out = self.0.next();
        record_string(out, key);
        out.push(b':');
        out
    }

    pub fn close(self) {
        self.0.close(b'}');
    }
}

/// An array being written: `item` before each value, `close` at the end.
pub struct Array<'o>(Separated<'o>);

impl<'o> Array<'o> {
    pub fn open(out: &'o mut Vec<u8>) -> Self {
        Array(Separated::open(out, b'['))
    }

    pub fn item(&mut self) -> &mut Vec<u8> {
        self.0.next()
    }

    pub fn close(self) {
        self.0.close(b']');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_written_as_serde_writes_them() {
        let v = json!({
            "s": "q\"uote back\\slash \u{1} \u{1f} \n\t\r \u{2028} é 𝄞 </script> \u{7f}",
            "n": [0, 1, -2, 1.5e300, 0.1, -0.0, 1e-7, u64::MAX, i64::MIN, 12345678901234567890u64],
            "l": [null, true, false, [], {}, [[]], {"a": {"b": []}}],
            "": "",
            "short": ["q\"", "b\\", "\u{1}", "\u{1f}", " ", "\u{7f}", "\u{e9}", "plain", "31 bytes, one quote at the end\""],
            "k\"": "32 bytes, nothing to escape ....",
        });
        let mut out = Vec::new();
        value(&mut out, &v);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            String::from_utf8(sonic_rs::to_vec(&v).unwrap()).unwrap()
        );
    }

    #[test]
    fn keys_of_every_length_with_any_byte_are_written_as_serde_writes_them() {
        let bytes = [b'a', b'"', b'\\', 0x00, 0x1f, 0x20, 0x21, 0x7f, 0xc3, 0xa9];
        // Past 32 bytes, through both pieces of 8 and both of 16, and the escaper beyond.
        for n in 0..=40 {
            for at in 0..n.max(1) {
                for b in bytes {
                    let mut key = vec![b'k'; n];
                    if n > 0 {
                        key[at] = b;
                    }
                    // A lone 0xc3 or 0xa9 is not UTF-8: they go in as the pair é.
                    let key = String::from_utf8(key).unwrap_or_else(|_| "é".repeat(n));
                    let mut out = Vec::new();
                    let mut o = Object::open(&mut out);
                    null(o.key(&key));
                    o.close();
                    let expected = serde_json::to_string(&json!({ key.clone(): null })).unwrap();
                    assert_eq!(String::from_utf8(out).unwrap(), expected, "{key:?}");
                    // After text already in the buffer, as a value.
                    let mut out = b"[".to_vec();
                    short_string(&mut out, &key);
                    let expected = format!("[{}", serde_json::to_string(&key).unwrap());
                    assert_eq!(String::from_utf8(out).unwrap(), expected, "{key:?}");
                }
            }
        }
    }

    /// A record's strings of every length, as the input held them and after other text.
    #[test]
    fn record_strings_of_every_length_are_written_as_they_came() {
        for n in 0..=40 {
            let text: String = ('a'..='z').cycle().take(n).collect();
            let quoted = format!("\"{text}\"");
            let tree = tree::Value::parse(&quoted).unwrap();
            let tree::Value::String(s) = &tree else {
                panic!("{tree:?}")
            };
            assert!(s.is_verbatim());
            let mut out = b"[".to_vec();
            record_string(&mut out, s);
            assert_eq!(String::from_utf8(out).unwrap(), format!("[{quoted}"));
        }
    }

    #[test]
    fn names_are_written_as_checked_keys_are() {
        const NAMES: [&str; 6] = [
            "",
            "id",
            "type_uid",
            "@timestamp",
            "processed_time_dt",
            "a_name_longer_than_two_words_of_eight",
        ];
        for name in NAMES {
            let (mut named, mut keyed) = (b"[".to_vec(), b"[".to_vec());
            let mut o = Object::open(&mut named);
            null(o.name(name));
            null(o.name(name));
            o.close();
            let mut o = Object::open(&mut keyed);
            null(o.key(name));
            null(o.key(name));
            o.close();
            assert_eq!(named, keyed, "{name}");
        }
    }

    #[test]
    fn record_values_are_written_as_serde_writes_them() {
        // Strings with and without escapes in the input, keys too; keys in the order
        // serde_json's map sorts them, so the two texts can be compared.
        let text = "{\"esc\":\"q\\\"uote \\u0001 \\n \\u00e9\",\"k\\\"ey\":[1,-0.0,1e-7,{\"\":\"\",\"x\":null}],\"plain\":\"\u{e9} \u{1d11e} </script> \u{7f} \u{2028}\"}";
        let tree = tree::Value::parse(text).unwrap();
        let mut out = Vec::new();
        record_value(&mut out, &tree);
        let theirs: Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string(&theirs).unwrap()
        );
    }

    #[test]
    fn times_are_written_as_chrono_writes_them() {
        use chrono::{NaiveDate, TimeZone};
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_milli_opt(23, 59, 59, 1_500))
            .map(|t| t.and_utc());
        let times = [
            "2024-01-02T03:04:05.678Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "2020-02-29T12:00:00.0005Z",
            "1969-07-20T20:17:40.1+05:30",
        ]
        .iter()
        .map(|t| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc))
        .chain([
            Utc.timestamp_opt(0, 0).unwrap(),
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
        ])
        .chain(leap);
        for t in times {
            let mut out = Vec::new();
            time(&mut out, t);
            let expected = format!("\"{}\"", t.to_rfc3339_opts(SecondsFormat::Millis, true));
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }
}
