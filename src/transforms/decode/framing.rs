//! Splits an input unit into candidate records without building a JSON tree of the whole
//! input: gzip is detected by its magic bytes, top-level values are scanned as raw slices,
//! and `{"Records":[…]}` / `{"records":[…]}` envelopes and JSON arrays are opened one level
//! so every record is parsed on its own.

use std::sync::LazyLock;

use memchr::memmem;
use serde::Deserialize;
use serde_json::de::SliceRead;
use serde_json::value::RawValue;
use serde_json::StreamDeserializer;

use super::cutter::Span;
use crate::event::Position;

pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Why an input could not be read through.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error("gzip stream is corrupt or truncated: {0}")]
    Gzip(String),
    #[error(
        "decompressed input exceeds the limit of {limit} bytes (limits.max_decompressed_bytes): \
         the records wholly before it were processed, the rest was not read; raise the limit \
         if the input is genuine"
    )]
    TooLarge { limit: u64 },
}

/// The room to reserve for the decompressed input. A gzip member ends with its size
/// (modulo 4 GiB), which for the one-member files CloudTrail writes is the whole size:
/// reserving it once spares the doublings of a growing buffer, whose freed copies the
/// allocator keeps (a 120 MB input peaked at 450 MB). It is only a hint, from untrusted
/// bytes: capped at the limit, and the buffer still grows past it if needed.
pub fn decompressed_size_hint(gzip: &[u8], max_decompressed: u64) -> usize {
    let trailer = gzip
        .len()
        .checked_sub(4)
        .and_then(|at| gzip.get(at..))
        .and_then(|t| <[u8; 4]>::try_from(t).ok())
        .map_or(0, u32::from_le_bytes);
    let cap = usize::try_from(max_decompressed.saturating_add(1)).unwrap_or(usize::MAX);
    (trailer as usize).min(cap)
}

/// A piece of the input: a candidate record, or bytes that are not valid JSON.
#[derive(Debug)]
pub enum Frame<'a> {
    Record {
        raw: &'a RawValue,
        position: Position,
    },
    /// An NDJSON line that looks like one object and is left for the decoder to parse in
    /// its single pass; should it not parse, [`frames_scanned`] splits it the slow way.
    Line { text: &'a str, position: Position },
    Invalid {
        bytes: &'a [u8],
        position: Position,
        reason: String,
    },
}

impl Frame<'_> {
    /// A frame found by scanning one line on its own, placed where that line is.
    pub fn shifted(self, line: Position) -> Self {
        let shift = |p: Position| Position {
            line: line.line + p.line - 1,
            offset: line.offset + p.offset,
            index: p.index.or(line.index),
        };
        match self {
            Frame::Record { raw, position } => Frame::Record {
                raw,
                position: shift(position),
            },
            Frame::Line { text, position } => Frame::Line {
                text,
                position: shift(position),
            },
            Frame::Invalid {
                bytes,
                position,
                reason,
            } => Frame::Invalid {
                bytes,
                position: shift(position),
                reason,
            },
        }
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "Records", borrow, default)]
    upper: Option<&'a RawValue>,
    #[serde(rename = "records", borrow, default)]
    lower: Option<&'a RawValue>,
}

/// The frames of decompressed input, found one at a time as they are asked for. NDJSON, a
/// single object, concatenated objects, a JSON array and `Records`/`records` envelopes
/// are all accepted; arrays and envelopes are opened one level, lazily, so an envelope of
/// a million records holds nothing but its position. After a syntax error the scan
/// resumes at the next line, so one bad NDJSON line never hides the rest.
pub struct Frames<'a> {
    input: &'a [u8],
    mode: Mode<'a>,
}

enum Mode<'a> {
    /// Plain NDJSON of objects, one per line, checked up front (UTF-8 included): each
    /// line is left to the decoder, which parses it once. `text` begins `base` bytes into
    /// the input.
    Lines {
        text: &'a str,
        base: usize,
        offset: usize,
        line: u64,
    },
    Scan(Scan<'a>),
    /// Items of an array, where a [`Cutter`](super::cutter::Cutter) found them.
    Spans(std::vec::IntoIter<Span>),
}

/// Value by value through input of any other shape.
struct Scan<'a> {
    /// Where the current stream of values began.
    start: usize,
    stream: Option<StreamDeserializer<'a, SliceRead<'a>, &'a RawValue>>,
    lines: LineCounter,
    /// The array being opened, if any.
    items: Option<Items<'a>>,
}

/// Split decompressed input into frames, lazily.
pub fn frames(input: &[u8]) -> Frames<'_> {
    // Windows tools often write a UTF-8 byte-order mark; JSON parsers refuse it.
    let start = if input.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    let mode = match plain_ndjson(&input[start..]) {
        Some(text) => Mode::Lines {
            text,
            base: start,
            offset: 0,
            line: 0,
        },
        None => Mode::Scan(Scan::new(start)),
    };
    Frames { input, mode }
}

/// The lines of text [`plain_ndjson`] already found plain, framed without checking again.
pub fn checked_ndjson(text: &str) -> Frames<'_> {
    Frames {
        input: text.as_bytes(),
        mode: Mode::Lines {
            text,
            base: 0,
            offset: 0,
            line: 0,
        },
    }
}

/// Like [`frames`], without the NDJSON fast path: every value is scanned and checked here.
pub fn frames_scanned(input: &[u8]) -> Frames<'_> {
    Frames {
        input,
        mode: Mode::Scan(Scan::new(0)),
    }
}

/// The items a [`Cutter`](super::cutter::Cutter) found in `input`. An object is left to
/// the decoder, which parses it once; anything else is not a record.
pub fn spans(input: &[u8], spans: Vec<Span>) -> Frames<'_> {
    Frames {
        input,
        mode: Mode::Spans(spans.into_iter()),
    }
}

/// Plain NDJSON of objects, one per line and no envelope among them, skips the scanning
/// pass: that pass read every byte once more before the decoder parsed it. Checking it
/// reads the input without keeping anything; the input as text when it is plain.
pub fn plain_ndjson(input: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(input).ok()?;
    // Lines found with the memchr crate's vector search: `str::split` searched with
    // core's, at a third of the speed.
    let mut start = 0;
    (!mentions_records(text)
        && memchr::memchr_iter(b'\n', input)
            .chain([input.len()])
            .all(|end| {
                let line = &input[start..end];
                start = end + 1;
                let trimmed = &line[leading_ws(line)..];
                let trimmed = &trimmed[..trimmed.len() - trailing_ws(trimmed)];
                trimmed.is_empty() || (trimmed[0] == b'{' && trimmed[trimmed.len() - 1] == b'}')
            }))
    .then_some(text)
}

const WS: [char; 4] = [' ', '\n', '\r', '\t'];

impl<'a> Iterator for Frames<'a> {
    type Item = Frame<'a>;

    fn next(&mut self) -> Option<Frame<'a>> {
        let input = self.input;
        match &mut self.mode {
            Mode::Lines {
                text,
                base,
                offset,
                line,
            } => loop {
                if *offset >= text.len() {
                    return None;
                }
                let end = memchr::memchr(b'\n', &text.as_bytes()[*offset..])
                    .map_or(text.len(), |i| *offset + i + 1);
                // A newline is never inside a character, so this slice never fails.
                let raw = text.get(*offset..end).unwrap_or_default();
                let at = *base + *offset;
                *offset = end;
                *line += 1;
                let trimmed = raw.trim_matches(WS);
                if !trimmed.is_empty() {
                    return Some(Frame::Line {
                        text: trimmed,
                        position: Position {
                            line: *line,
                            offset: (at + leading_ws(raw.as_bytes())) as u64,
                            index: None,
                        },
                    });
                }
            },
            Mode::Scan(scan) => scan.next(input),
            Mode::Spans(spans) => spans.next().map(|span| {
                let bytes = &input[span.start..span.end];
                let position = Position {
                    line: span.line,
                    offset: span.start as u64,
                    index: Some(span.index),
                };
                match std::str::from_utf8(bytes) {
                    Ok(text) if text.starts_with('{') => Frame::Line { text, position },
                    Ok(_) => Frame::Invalid {
                        bytes,
                        position,
                        reason: "an item of a `Records`/`records` array or of a top-level array must be a JSON object".into(),
                    },
                    Err(e) => Frame::Invalid {
                        bytes,
                        position,
                        reason: format!("invalid JSON: {e}"),
                    },
                }
            }),
        }
    }
}

impl<'a> Scan<'a> {
    fn new(start: usize) -> Self {
        Scan {
            start,
            stream: None,
            lines: LineCounter::default(),
            items: None,
        }
    }

    fn next(&mut self, input: &'a [u8]) -> Option<Frame<'a>> {
        loop {
            if let Some(items) = &mut self.items {
                match items.next() {
                    Some(frame) => return Some(frame),
                    None => self.items = None,
                }
            }
            if self.start >= input.len() {
                return None;
            }
            let start = self.start;
            let stream = self.stream.get_or_insert_with(|| {
                serde_json::Deserializer::from_slice(&input[start..]).into_iter::<&RawValue>()
            });
            let rest = &input[start..];
            let before = stream.byte_offset();
            let value_start = start + before + leading_ws(&rest[before..]);
            match stream.next() {
                None => {
                    self.start = input.len();
                    self.stream = None;
                    return None;
                }
                Some(Ok(raw)) => {
                    let position = self.lines.position(input, value_start);
                    match open_value(raw, position) {
                        Opened::Frame(frame) => return Some(frame),
                        Opened::Items(items) => self.items = Some(items),
                    }
                }
                Some(Err(err)) => {
                    let resume = next_line(input, value_start);
                    let bad = &input[value_start..resume];
                    let frame = Frame::Invalid {
                        bytes: bad.strip_suffix(b"\n").unwrap_or(bad),
                        position: self.lines.position(input, value_start),
                        reason: format!("invalid JSON: {}", describe(&err)),
                    };
                    self.start = resume;
                    self.stream = None;
                    return Some(frame);
                }
            }
        }
    }
}

/// Whether `"Records"` or `"records"` is in `text`: one scan for their shared tail, with
/// a searcher made once. Two searches, each making its searcher, were half the cost of
/// framing a line.
fn mentions_records(text: &str) -> bool {
    static TAIL: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(b"ecords\""));
    let bytes = text.as_bytes();
    TAIL.find_iter(bytes)
        .any(|at| at >= 2 && bytes[at - 2] == b'"' && matches!(bytes[at - 1], b'R' | b'r'))
}

/// A top-level value: one frame, or the items of an array or envelope to come.
enum Opened<'a> {
    Frame(Frame<'a>),
    Items(Items<'a>),
}

fn open_value(raw: &RawValue, position: Position) -> Opened<'_> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'[') => Opened::Items(Items::new(text, position)),
        // Only an object that mentions the key can be an envelope: skipping the second
        // parse for the rest saves a full scan of every NDJSON record.
        Some(b'{') if !mentions_records(text) => Opened::Frame(Frame::Record { raw, position }),
        Some(b'{') => match serde_json::from_str::<Envelope<'_>>(text) {
            Ok(Envelope { upper, lower }) => match upper.or(lower) {
                Some(records) if records.get().starts_with('[') => {
                    Opened::Items(Items::new(records.get(), position))
                }
                Some(records) => Opened::Frame(Frame::Invalid {
                    bytes: records.get().as_bytes(),
                    position,
                    reason: "`Records`/`records` must be an array of records".into(),
                }),
                None => Opened::Frame(Frame::Record { raw, position }),
            },
            Err(err) => Opened::Frame(Frame::Invalid {
                bytes: text.as_bytes(),
                position,
                reason: format!("invalid envelope: {}", describe(&err)),
            }),
        },
        _ => Opened::Frame(Frame::Invalid {
            bytes: text.as_bytes(),
            position,
            reason: "expected a JSON object or array at the top level".into(),
        }),
    }
}

/// The items of a JSON array already checked as JSON, one at a time.
struct Items<'a> {
    text: &'a str,
    /// Just past the `[`, then past each item.
    at: usize,
    index: u64,
    position: Position,
}

impl<'a> Items<'a> {
    fn new(text: &'a str, position: Position) -> Self {
        Items {
            text,
            at: 1,
            index: 0,
            position,
        }
    }
}

impl<'a> Iterator for Items<'a> {
    type Item = Frame<'a>;

    fn next(&mut self) -> Option<Frame<'a>> {
        let mut rest = self.text.get(self.at..)?.trim_start_matches(WS);
        if let Some(after) = rest.strip_prefix(',') {
            rest = after.trim_start_matches(WS);
        }
        if rest.is_empty() || rest.starts_with(']') {
            self.at = self.text.len() + 1;
            return None;
        }
        let skipped = self.text.len() - self.at - rest.len();
        let mut one = serde_json::Deserializer::from_str(rest).into_iter::<&RawValue>();
        let position = Position {
            index: Some(self.index),
            ..self.position
        };
        self.index += 1;
        match one.next() {
            Some(Ok(raw)) => {
                self.at += skipped + one.byte_offset();
                Some(Frame::Record { raw, position })
            }
            // The array parsed as JSON as a whole; an item that does not is beyond repair.
            _ => {
                self.at = self.text.len() + 1;
                Some(Frame::Invalid {
                    bytes: rest.as_bytes(),
                    position,
                    reason: "`Records`/`records` must be an array of records".into(),
                })
            }
        }
    }
}

fn describe(err: &serde_json::Error) -> String {
    // serde_json reports positions relative to the slice it was given; our Position says
    // where the value starts, so keep only the message.
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// JSON's four whitespace bytes ([`WS`]); a form feed, which `trim_ascii` would take, is
/// not one of them.
fn is_ws(b: &&u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

fn leading_ws(bytes: &[u8]) -> usize {
    bytes.iter().take_while(is_ws).count()
}

fn trailing_ws(bytes: &[u8]) -> usize {
    bytes.iter().rev().take_while(is_ws).count()
}

fn next_line(input: &[u8], from: usize) -> usize {
    match memchr::memchr(b'\n', &input[from..]) {
        Some(i) => from + i + 1,
        None => input.len(),
    }
}

/// Counts newlines incrementally: positions are asked for in increasing order.
#[derive(Default)]
struct LineCounter {
    offset: usize,
    newlines: u64,
}

impl LineCounter {
    fn position(&mut self, input: &[u8], offset: usize) -> Position {
        self.newlines += memchr::memchr_iter(b'\n', &input[self.offset..offset]).count() as u64;
        self.offset = offset;
        Position {
            line: self.newlines + 1,
            offset: offset as u64,
            index: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_quoted_records_key_in_either_case_is_mentioned() {
        for (text, mentioned) in [
            (r#"{"Records":[]}"#, true),
            (r#"{"a":1,"records":[]}"#, true),
            (r#"{"ecords":1}"#, false),
            (r#"{"xRecords":1}"#, false),
            (r#"{"RECORDS":1}"#, false),
            (r#"{"a":"Records"}"#, true),
            (r#"ecords""#, false),
            (r#"{"eventName":"GetRecords"}"#, false),
        ] {
            assert_eq!(mentions_records(text), mentioned, "{text}");
        }
    }

    fn summary(input: &str) -> Vec<String> {
        frames(input.as_bytes())
            .map(|f| match f {
                Frame::Record { raw, position } => format!("R{}:{}", position.line, raw.get()),
                Frame::Line { text, position } => format!("L{}:{text}", position.line),
                Frame::Invalid { position, .. } => format!("X{}", position.line),
            })
            .collect()
    }

    #[test]
    fn ndjson_with_a_bad_line_keeps_the_rest() {
        assert_eq!(
            summary("{\"a\":1}\n{\"b\":\n{\"c\":3}\n"),
            vec!["R1:{\"a\":1}", "X2", "R3:{\"c\":3}"]
        );
    }

    #[test]
    fn plain_ndjson_lines_are_left_to_the_decoder() {
        assert_eq!(
            summary("{\"a\":1}\r\n\n  {\"b\": 2}\n"),
            vec!["L1:{\"a\":1}", "L3:{\"b\": 2}"]
        );
        let input = "{\"a\":1}\n  {\"b\": 2}";
        match &frames(input.as_bytes()).nth(1).unwrap() {
            Frame::Line { position, .. } => assert_eq!(position.offset, 10),
            other => panic!("{other:?}"),
        }
        // After a byte-order mark, offsets still count from the input's first byte.
        let marked = format!("\u{feff}{input}");
        let offsets: Vec<u64> = frames(marked.as_bytes())
            .map(|f| match f {
                Frame::Line { position, .. } => position.offset,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(offsets, [3, 13]);
        // A line of nothing but JSON's whitespace is skipped; a form feed is not JSON's.
        assert_eq!(
            summary("{\"a\":1}\n \t \r\n{\"b\":2}"),
            vec!["L1:{\"a\":1}", "L3:{\"b\":2}"]
        );
        assert!(plain_ndjson(b" \n\t\n").is_some());
        assert!(plain_ndjson(b"{\"a\":1}\n\x0c{\"b\":2}").is_none());
        // Pretty-printed JSON and envelopes take the scanning path.
        assert_eq!(summary("{\n\"a\": 1\n}\n"), vec!["R1:{\n\"a\": 1\n}"]);
        assert_eq!(summary("{\"Records\":[{\"x\":1}]}\n"), vec!["R1:{\"x\":1}"]);
    }

    #[test]
    fn records_envelope_and_arrays_are_opened() {
        assert_eq!(
            summary("{\"Records\":[{\"x\":1},{\"y\":2}]}"),
            vec!["R1:{\"x\":1}", "R1:{\"y\":2}"]
        );
        assert_eq!(summary("[{\"x\":1}]"), vec!["R1:{\"x\":1}"]);
        assert_eq!(summary("{\"records\":\"x\"}"), vec!["X1"]);
    }
}
