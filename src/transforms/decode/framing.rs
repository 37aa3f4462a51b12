//! Splits an input unit into candidate records without building a JSON tree of the whole
//! input: gzip is detected by its magic bytes, top-level values are scanned as raw slices,
//! and `{"Records":[…]}` / `{"records":[…]}` envelopes and JSON arrays are opened one level
//! so every record is parsed on its own.

use std::borrow::Cow;
use std::io::Read;

use flate2::read::MultiGzDecoder;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::event::Position;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Why an input could not be opened at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error("gzip stream is corrupt or truncated: {0}")]
    Gzip(String),
    #[error(
        "decompressed input exceeds the limit of {limit} bytes (limits.max_decompressed_bytes); \
         raise the limit if the file is genuine"
    )]
    TooLarge { limit: u64 },
}

/// Decompress when the input starts with the gzip magic, enforcing the size cap.
pub fn open(bytes: &[u8], max_decompressed: u64) -> Result<Cow<'_, [u8]>, OpenError> {
    if !bytes.starts_with(&GZIP_MAGIC) {
        if bytes.len() as u64 > max_decompressed {
            return Err(OpenError::TooLarge {
                limit: max_decompressed,
            });
        }
        return Ok(Cow::Borrowed(bytes));
    }
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(8).min(64 << 20));
    // Read one byte past the cap so a stream of exactly the cap is accepted.
    MultiGzDecoder::new(bytes)
        .take(max_decompressed.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| OpenError::Gzip(e.to_string()))?;
    if out.len() as u64 > max_decompressed {
        return Err(OpenError::TooLarge {
            limit: max_decompressed,
        });
    }
    Ok(Cow::Owned(out))
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
            index: p.index,
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

/// Split decompressed input into frames. NDJSON, a single object, concatenated objects,
/// a JSON array and `Records`/`records` envelopes are all accepted. After a syntax error
/// the scan resumes at the next line, so one bad NDJSON line never hides the rest.
pub fn frames(input: &[u8]) -> Vec<Frame<'_>> {
    // Windows tools often write a UTF-8 byte-order mark; JSON parsers refuse it.
    let start = if input.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    ndjson_lines(input, start).unwrap_or_else(|| scan(input, start))
}

/// Like [`frames`], without the NDJSON fast path: every value is scanned and checked here.
pub fn frames_scanned(input: &[u8]) -> Vec<Frame<'_>> {
    scan(input, 0)
}

/// Plain NDJSON of objects, one per line and no envelope among them, skips the scanning
/// pass: that pass read every byte once more before the decoder parsed it.
fn ndjson_lines(input: &[u8], start: usize) -> Option<Vec<Frame<'_>>> {
    let text = std::str::from_utf8(&input[start..]).ok()?;
    if mentions_records(text) {
        return None;
    }
    let mut out = Vec::new();
    let mut offset = start;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_matches([' ', '\n', '\r', '\t']);
        if !trimmed.is_empty() {
            if !(trimmed.starts_with('{') && trimmed.ends_with('}')) {
                return None;
            }
            out.push(Frame::Line {
                text: trimmed,
                position: Position {
                    line: i as u64 + 1,
                    offset: (offset + leading_ws(line.as_bytes())) as u64,
                    index: None,
                },
            });
        }
        offset += line.len();
    }
    Some(out)
}

fn scan(input: &[u8], mut start: usize) -> Vec<Frame<'_>> {
    let mut out = Vec::new();
    let mut lines = LineCounter::default();
    while start < input.len() {
        let rest = &input[start..];
        let mut stream = serde_json::Deserializer::from_slice(rest).into_iter::<&RawValue>();
        loop {
            let before = stream.byte_offset();
            match stream.next() {
                None => {
                    start = input.len();
                    break;
                }
                Some(Ok(raw)) => {
                    let value_start = start + before + leading_ws(&rest[before..]);
                    let position = lines.position(input, value_start);
                    open_value(raw, position, &mut out);
                }
                Some(Err(err)) => {
                    let value_start = start + before + leading_ws(&rest[before..]);
                    let resume = next_line(input, value_start);
                    let bad = &input[value_start..resume];
                    out.push(Frame::Invalid {
                        bytes: bad.strip_suffix(b"\n").unwrap_or(bad),
                        position: lines.position(input, value_start),
                        reason: format!("invalid JSON: {}", describe(&err)),
                    });
                    start = resume;
                    break;
                }
            }
        }
    }
    out
}

fn mentions_records(text: &str) -> bool {
    let bytes = text.as_bytes();
    memchr::memmem::find(bytes, b"\"Records\"").is_some()
        || memchr::memmem::find(bytes, b"\"records\"").is_some()
}

fn open_value<'a>(raw: &'a RawValue, position: Position, out: &mut Vec<Frame<'a>>) {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'[') => open_array(raw, position, out),
        // Only an object that mentions the key can be an envelope: skipping the second
        // parse for the rest saves a full scan of every NDJSON record.
        Some(b'{') if !mentions_records(text) => out.push(Frame::Record { raw, position }),
        Some(b'{') => match serde_json::from_str::<Envelope<'a>>(text) {
            Ok(Envelope { upper, lower }) => match upper.or(lower) {
                Some(records) => open_array(records, position, out),
                None => out.push(Frame::Record { raw, position }),
            },
            Err(err) => out.push(Frame::Invalid {
                bytes: text.as_bytes(),
                position,
                reason: format!("invalid envelope: {}", describe(&err)),
            }),
        },
        _ => out.push(Frame::Invalid {
            bytes: text.as_bytes(),
            position,
            reason: "expected a JSON object or array at the top level".into(),
        }),
    }
}

fn open_array<'a>(raw: &'a RawValue, position: Position, out: &mut Vec<Frame<'a>>) {
    match serde_json::from_str::<Vec<&'a RawValue>>(raw.get()) {
        Ok(items) => {
            for (i, item) in items.into_iter().enumerate() {
                out.push(Frame::Record {
                    raw: item,
                    position: Position {
                        index: Some(i as u64),
                        ..position
                    },
                });
            }
        }
        Err(_) => out.push(Frame::Invalid {
            bytes: raw.get().as_bytes(),
            position,
            reason: "`Records`/`records` must be an array of records".into(),
        }),
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

fn leading_ws(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
        .count()
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

    fn summary(input: &str) -> Vec<String> {
        frames(input.as_bytes())
            .into_iter()
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
        match &frames(input.as_bytes())[1] {
            Frame::Line { position, .. } => assert_eq!(position.offset, 10),
            other => panic!("{other:?}"),
        }
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

    #[test]
    fn gzip_is_detected_by_magic_and_capped() {
        use flate2::write::GzEncoder;
        use std::io::Write;
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&[b' '; 10_000]).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(open(&gz, 10_000).unwrap().len(), 10_000);
        assert_eq!(
            open(&gz, 9_999).unwrap_err(),
            OpenError::TooLarge { limit: 9_999 }
        );
        assert!(matches!(
            open(&gz[..gz.len() / 2], 1 << 20),
            Err(OpenError::Gzip(_))
        ));
    }
}
