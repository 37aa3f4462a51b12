//! Where records begin and end in input that arrives block by block, found by a byte scan
//! that knows strings, escapes and nesting but parses nothing. Each block's complete
//! values are handed out and only an incomplete one is carried into the next block, so
//! memory holds a block and at most one record, whatever the input's shape:
//! - a `{"Records":[…]}` / `{"records":[…]}` envelope or a top-level array is opened, and
//!   its items are handed out one by one as they complete;
//! - other top-level values (objects on one line or pretty-printed, and whatever is not
//!   JSON) are handed out in runs, for [`super::framing::frames`] to frame;
//! - a value still open past the record limit is not kept: its first bytes are, the rest
//!   is hashed on the way to its end, and it is handed out as a [`Piece::Cut`].

use std::ops::Range;

use sha2::{Digest, Sha256};

use crate::event::Position;

/// What a scan found in the buffer, in input order. Ranges are indexes into the buffer
/// the scan was given; positions are in the whole input.
#[derive(Debug)]
pub enum Piece {
    /// Top-level values (and anything between them), for [`super::framing::frames`].
    Values {
        range: Range<usize>,
        position: Position,
    },
    /// Items of an envelope's array or of a top-level array. Spans are relative to the
    /// range, positions to its start.
    Items {
        range: Range<usize>,
        position: Position,
        spans: Vec<Span>,
    },
    /// A value that is not handed out whole.
    Cut(Cut),
}

/// One item of an array, relative to the [`Piece::Items`] it is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    /// 1-based, from the start of the piece.
    pub line: u64,
    pub index: u64,
}

/// A value left out, for a dead letter.
#[derive(Debug)]
pub struct Cut {
    pub kind: &'static str,
    pub reason: String,
    pub position: Position,
    /// The value's first bytes, up to the record limit.
    pub kept: Vec<u8>,
    /// The size and SHA-256 of the whole value, when `kept` is only its beginning.
    pub whole: Option<(u64, String)>,
}

/// A place in the buffer, with the input line it is on.
#[derive(Debug, Clone, Copy)]
struct Mark {
    at: usize,
    line: u64,
}

/// The top-level value being read.
#[derive(Debug)]
enum Top {
    /// Between values, or in a top-level array (read item by item).
    None,
    /// An object, watched at its first level for a `Records`/`records` key whose value
    /// is an array.
    Object {
        expect_key: bool,
        key: Option<usize>,
        records_key: bool,
    },
    /// An envelope: its array is read item by item, the rest of it is not read.
    Envelope,
}

/// The array whose items are handed out.
#[derive(Debug)]
struct Items {
    /// The nesting depth inside the array.
    depth: usize,
    /// The index of the next item.
    index: u64,
    /// The item not yet complete.
    open: Option<Mark>,
    done: Vec<(Mark, usize, u64)>,
}

/// A value over the record limit, on its way to its end.
struct Skip {
    kept: Vec<u8>,
    hasher: Sha256,
    size: u64,
    /// Bytes of the buffer from here on are not hashed yet.
    from: usize,
    position: Position,
}

/// Finds the values of one input. Feed it the buffer with [`Cutter::scan`] (or
/// [`Cutter::finish`] at the end of the input), frame the pieces, then drop the bytes
/// [`Cutter::consume`] says are done with.
pub struct Cutter {
    /// Where the buffer starts in the input.
    offset: u64,
    /// The input line at `scanned`.
    line: u64,
    scanned: usize,
    depth: usize,
    string: bool,
    escape: bool,
    top: Top,
    /// Where top-level material not handed out yet starts; none inside an array that is
    /// read item by item, or after it in its envelope.
    run: Option<Mark>,
    /// A top-level value not complete yet.
    open: Option<Mark>,
    items: Option<Items>,
    skip: Option<Skip>,
    /// `limits.max_record_bytes`.
    cap: usize,
    /// The bytes before this are handed out.
    consumed: usize,
}

impl Cutter {
    /// A cutter for input whose next byte is at `position` (at a value boundary).
    pub fn new(position: Position, cap: usize) -> Self {
        Cutter {
            offset: position.offset,
            line: position.line,
            scanned: 0,
            depth: 0,
            string: false,
            escape: false,
            top: Top::None,
            run: Some(Mark {
                at: 0,
                line: position.line,
            }),
            open: None,
            items: None,
            skip: None,
            cap,
            consumed: 0,
        }
    }

    /// The pieces complete in `buf`, which holds what it held at the last scan (less what
    /// was consumed) and more.
    pub fn scan(&mut self, buf: &[u8]) -> Vec<Piece> {
        let mut pieces = Vec::new();
        self.walk(buf, &mut pieces);
        let n = buf.len();
        if let Some(skip) = &mut self.skip {
            skip.hash(buf, n);
            self.consumed = n;
            return pieces;
        }
        let open = if self.items.is_some() {
            self.flush_items(&mut pieces);
            self.items.as_ref().and_then(|items| items.open)
        } else if self.run.is_some() {
            let open = self.open;
            self.flush_values(open.unwrap_or(self.mark(n)), &mut pieces);
            open
        } else {
            None
        };
        self.consumed = open.map_or(n, |o| o.at);
        if let Some(open) = open.filter(|o| n - o.at > self.cap) {
            self.start_skip(buf, open);
            self.consumed = n;
        }
        pieces
    }

    /// The pieces left at the end of the input.
    pub fn finish(&mut self, buf: &[u8]) -> Vec<Piece> {
        let mut pieces = Vec::new();
        self.walk(buf, &mut pieces);
        let n = buf.len();
        if let Some(mut skip) = self.skip.take() {
            skip.hash(buf, n);
            pieces.push(Piece::Cut(
                skip.cut(self.cap, "the input ended before it did"),
            ));
        } else if let Some(items) = &mut self.items {
            let truncated = items.open.take();
            if let Some(open) = truncated {
                // Handed out as it is, so its dead letter says how it ends.
                items.done.push((open, n, items.index));
            }
            let index = items.index;
            self.flush_items(&mut pieces);
            if truncated.is_none() {
                let end = self.mark(n);
                pieces.push(Piece::Cut(Cut {
                    kind: "invalid_json",
                    reason: "the input ended inside an array of records: the records before it were processed".into(),
                    position: self.position(end, Some(index)),
                    kept: Vec::new(),
                    whole: None,
                }));
            }
        } else if self.run.is_some() {
            self.flush_values(self.mark(n), &mut pieces);
        }
        self.consumed = n;
        pieces
    }

    /// How many bytes at the start of the buffer are done with: drop them before the next
    /// scan.
    pub fn consume(&mut self) -> usize {
        let n = std::mem::take(&mut self.consumed);
        self.offset += n as u64;
        self.scanned -= n;
        let back = |m: &mut Mark| m.at = m.at.saturating_sub(n);
        if let Some(run) = &mut self.run {
            back(run);
        }
        if let Some(open) = &mut self.open {
            back(open);
        }
        if let Some(open) = self.items.as_mut().and_then(|i| i.open.as_mut()) {
            back(open);
        }
        if let Top::Object { key: Some(key), .. } = &mut self.top {
            *key = key.saturating_sub(n);
        }
        if let Some(skip) = &mut self.skip {
            skip.from = skip.from.saturating_sub(n);
        }
        n
    }

    fn walk(&mut self, buf: &[u8], pieces: &mut Vec<Piece>) {
        let n = buf.len();
        let mut i = self.scanned;
        while i < n {
            if self.string {
                if self.escape {
                    self.escape = false;
                    i += 1;
                    continue;
                }
                let Some(k) = memchr::memchr2(b'"', b'\\', &buf[i..]) else {
                    break;
                };
                i += k;
                if buf[i] == b'\\' {
                    self.escape = true;
                } else {
                    self.string = false;
                    self.string_closed(buf, i, pieces);
                }
                i += 1;
                continue;
            }
            match buf[i] {
                b'"' => {
                    self.string = true;
                    self.string_opened(i);
                }
                b @ (b'{' | b'[') => self.opened(b, i, pieces),
                b'}' | b']' => self.closed(buf, i, pieces),
                b'\n' => {
                    self.scalar_ends(buf, i, pieces);
                    self.line += 1;
                }
                b' ' | b'\t' | b'\r' => self.scalar_ends(buf, i, pieces),
                b',' => self.comma(buf, i, pieces),
                b':' => {}
                _ => self.scalar(i),
            }
            i += 1;
        }
        self.scanned = n;
    }

    fn mark(&self, at: usize) -> Mark {
        Mark {
            at,
            line: self.line,
        }
    }

    fn position(&self, mark: Mark, index: Option<u64>) -> Position {
        Position {
            line: mark.line,
            offset: self.offset + mark.at as u64,
            index,
        }
    }

    fn in_items(&self) -> Option<&Items> {
        self.items.as_ref().filter(|i| i.depth == self.depth)
    }

    fn opened(&mut self, b: u8, i: usize, pieces: &mut Vec<Piece>) {
        let depth = self.depth;
        self.depth += 1;
        if let Some(items) = &mut self.items {
            if depth == items.depth {
                items.open = Some(Mark {
                    at: i,
                    line: self.line,
                });
            }
            return;
        }
        match (depth, &mut self.top) {
            (0, _) if b == b'[' => {
                self.flush_values(self.mark(i), pieces);
                // A top-level array: `items` alone says where its items are.
                self.run = None;
                self.top = Top::None;
                self.items = Some(Items::new(1));
            }
            (0, _) => {
                self.top = Top::Object {
                    expect_key: true,
                    key: None,
                    records_key: false,
                };
                self.open = Some(self.mark(i));
            }
            (1, Top::Object { records_key, .. }) => {
                if b == b'[' && *records_key && self.skip.is_none() {
                    if let Some(open) = self.open.take() {
                        self.flush_values(open, pieces);
                    }
                    self.run = None;
                    self.top = Top::Envelope;
                    self.items = Some(Items::new(2));
                } else {
                    *records_key = false;
                }
            }
            _ => {}
        }
    }

    fn closed(&mut self, buf: &[u8], i: usize, pieces: &mut Vec<Piece>) {
        if self.depth == 0 {
            // A stray closer: not JSON, framed with what is around it.
            return;
        }
        self.depth -= 1;
        let depth = self.depth;
        let end = i + 1;
        if let Some(items) = &self.items {
            if depth == items.depth {
                self.item_done(buf, end, pieces);
            } else if depth + 1 == items.depth {
                self.item_done(buf, i, pieces);
                self.flush_items(pieces);
                self.items = None;
                if depth == 0 {
                    self.top = Top::None;
                    self.run = Some(self.mark(end));
                }
            }
            return;
        }
        match (depth, &mut self.top) {
            (0, Top::Envelope) => {
                self.top = Top::None;
                self.run = Some(self.mark(end));
            }
            (0, _) => {
                self.top = Top::None;
                self.value_done(buf, end, pieces);
            }
            (1, Top::Object { records_key, .. }) => *records_key = false,
            _ => {}
        }
    }

    fn string_opened(&mut self, i: usize) {
        if self.items.is_some() {
            if self.in_items().is_some() {
                self.item_opened(i);
            }
            return;
        }
        match (self.depth, &mut self.top) {
            (0, _) => self.open = Some(self.mark(i)),
            (
                1,
                Top::Object {
                    expect_key,
                    key,
                    records_key,
                },
            ) => {
                if *expect_key {
                    *expect_key = false;
                    *key = Some(i + 1);
                } else {
                    *records_key = false;
                }
            }
            _ => {}
        }
    }

    fn string_closed(&mut self, buf: &[u8], i: usize, pieces: &mut Vec<Piece>) {
        if self.items.is_some() {
            if self.in_items().is_some() {
                self.item_done(buf, i + 1, pieces);
            }
            return;
        }
        match (self.depth, &mut self.top) {
            (0, _) => self.value_done(buf, i + 1, pieces),
            (
                1,
                Top::Object {
                    key, records_key, ..
                },
            ) => {
                if let Some(k) = key.take() {
                    let name = &buf[k.min(i)..i];
                    *records_key = name == b"Records" || name == b"records";
                }
            }
            _ => {}
        }
    }

    fn comma(&mut self, buf: &[u8], i: usize, pieces: &mut Vec<Piece>) {
        if self.items.is_some() {
            self.scalar_ends(buf, i, pieces);
            return;
        }
        if let (
            1,
            Top::Object {
                expect_key,
                records_key,
                ..
            },
        ) = (self.depth, &mut self.top)
        {
            *expect_key = true;
            *records_key = false;
        }
    }

    fn scalar(&mut self, i: usize) {
        if self.items.is_some() {
            if self.in_items().is_some_and(|items| items.open.is_none()) {
                self.item_opened(i);
            }
            return;
        }
        if let (1, Top::Object { records_key, .. }) = (self.depth, &mut self.top) {
            *records_key = false;
        }
    }

    /// A scalar item ends at a separator.
    fn scalar_ends(&mut self, buf: &[u8], i: usize, pieces: &mut Vec<Piece>) {
        if self.in_items().is_some_and(|items| items.open.is_some()) {
            self.item_done(buf, i, pieces);
        }
    }

    fn item_opened(&mut self, i: usize) {
        let line = self.line;
        if let Some(items) = &mut self.items {
            items.open = Some(Mark { at: i, line });
        }
    }

    fn item_done(&mut self, buf: &[u8], end: usize, pieces: &mut Vec<Piece>) {
        let Some(items) = &mut self.items else {
            return;
        };
        let Some(open) = items.open.take() else {
            return;
        };
        let index = items.index;
        items.index += 1;
        match self.skip.take() {
            Some(mut skip) => {
                skip.hash(buf, end);
                pieces.push(Piece::Cut(skip.cut(self.cap, "it was skipped to its end")));
            }
            None => items.done.push((open, end, index)),
        }
    }

    fn value_done(&mut self, buf: &[u8], end: usize, pieces: &mut Vec<Piece>) {
        self.open = None;
        if let Some(mut skip) = self.skip.take() {
            skip.hash(buf, end);
            pieces.push(Piece::Cut(skip.cut(self.cap, "it was skipped to its end")));
            self.run = Some(self.mark(end));
        }
    }

    /// Hands out the top-level run up to `to`.
    fn flush_values(&mut self, to: Mark, pieces: &mut Vec<Piece>) {
        let Some(run) = self.run else {
            return;
        };
        if to.at > run.at {
            pieces.push(Piece::Values {
                range: run.at..to.at,
                position: self.position(run, None),
            });
        }
        self.run = Some(to);
    }

    fn flush_items(&mut self, pieces: &mut Vec<Piece>) {
        let Some(items) = &mut self.items else {
            return;
        };
        let done = std::mem::take(&mut items.done);
        let (Some(first), Some(last)) = (done.first(), done.last()) else {
            return;
        };
        let (base, end) = (first.0, last.1);
        let spans = done
            .iter()
            .map(|(mark, end, index)| Span {
                start: mark.at - base.at,
                end: end - base.at,
                line: mark.line - base.line + 1,
                index: *index,
            })
            .collect();
        pieces.push(Piece::Items {
            range: base.at..end,
            position: self.position(base, None),
            spans,
        });
    }

    fn start_skip(&mut self, buf: &[u8], open: Mark) {
        let index = self.items.as_ref().map(|items| items.index);
        let mut skip = Skip {
            kept: buf[open.at..open.at + self.cap].to_vec(),
            hasher: Sha256::new(),
            size: 0,
            from: open.at,
            position: self.position(open, index),
        };
        skip.hash(buf, buf.len());
        self.skip = Some(skip);
    }
}

impl Items {
    fn new(depth: usize) -> Self {
        Items {
            depth,
            index: 0,
            open: None,
            done: Vec::new(),
        }
    }
}

impl Skip {
    fn hash(&mut self, buf: &[u8], to: usize) {
        let bytes = &buf[self.from.min(to)..to];
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        self.from = to;
    }

    fn cut(self, cap: usize, end: &str) -> Cut {
        Cut {
            kind: "too_large",
            reason: format!(
                "record is larger than limits.max_record_bytes ({cap} bytes): its first {cap} bytes are kept here, and {end}"
            ),
            position: self.position,
            kept: self.kept,
            whole: Some((self.size, format!("{:x}", self.hasher.finalize()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text of every piece, cut from `input` fed `block` bytes at a time.
    fn pieces(input: &str, block: usize, cap: usize) -> Vec<String> {
        let input = input.as_bytes();
        let mut cutter = Cutter::new(
            Position {
                line: 1,
                offset: 0,
                index: None,
            },
            cap,
        );
        let mut buf = Vec::new();
        let mut out = Vec::new();
        let mut fed = 0;
        loop {
            let take = block.min(input.len() - fed);
            buf.extend_from_slice(&input[fed..fed + take]);
            fed += take;
            let eof = fed == input.len();
            let found = if eof {
                cutter.finish(&buf)
            } else {
                cutter.scan(&buf)
            };
            for piece in found {
                out.extend(describe(&piece, &buf));
            }
            if eof {
                return out;
            }
            let n = cutter.consume();
            buf.drain(..n);
        }
    }

    fn describe(piece: &Piece, buf: &[u8]) -> Vec<String> {
        let text = |r: Range<usize>| String::from_utf8_lossy(&buf[r]).into_owned();
        match piece {
            Piece::Values { range, position } => vec![format!(
                "V{}@{}:{}",
                position.line,
                position.offset,
                text(range.clone())
            )],
            Piece::Items {
                range,
                position,
                spans,
            } => spans
                .iter()
                .map(|s| {
                    format!(
                        "I{}#{}@{}:{}",
                        position.line + s.line - 1,
                        s.index,
                        position.offset + s.start as u64,
                        text(range.start + s.start..range.start + s.end)
                    )
                })
                .collect(),
            Piece::Cut(cut) => vec![format!(
                "C{}@{}#{:?}:{}:{}",
                cut.position.line,
                cut.position.offset,
                cut.position.index,
                String::from_utf8_lossy(&cut.kept),
                cut.whole.as_ref().map_or(0, |w| w.0)
            )],
        }
    }

    /// Every block size gives the same items and cuts, and the same top-level text.
    fn same_at_every_block(input: &str, cap: usize) -> Vec<String> {
        let whole = pieces(input, input.len().max(1), cap);
        let split = |p: &[String]| {
            let (values, other): (Vec<&String>, Vec<&String>) =
                p.iter().partition(|s| s.starts_with('V'));
            let text: String = values
                .iter()
                .map(|v| v.split_once(':').map_or("", |(_, t)| t))
                .collect();
            (text, other.into_iter().cloned().collect::<Vec<_>>())
        };
        for block in 1..input.len() {
            assert_eq!(
                split(&pieces(input, block, cap)),
                split(&whole),
                "block {block}"
            );
        }
        whole
    }

    #[test]
    fn envelope_items_come_out_one_by_one() {
        let input = "{\"Records\":[{\"a\":\"x]}\\\"\"},\n {\"b\":[1,{}]} ,7,\"s\"]}\n";
        assert_eq!(
            same_at_every_block(input, 1000),
            vec![
                "I1#0@12:{\"a\":\"x]}\\\"\"}",
                "I2#1@28:{\"b\":[1,{}]}",
                "I2#2@42:7",
                "I2#3@44:\"s\"",
                "V2@49:\n"
            ]
        );
        let lower = "\u{feff}[{\"a\":1}, {\"b\":2}]";
        same_at_every_block(&lower[3..], 1000);
        assert_eq!(
            pieces(lower, lower.len(), 1000),
            vec!["V1@0:\u{feff}", "I1#0@4:{\"a\":1}", "I1#1@13:{\"b\":2}"]
        );
    }

    #[test]
    fn other_top_level_values_come_out_in_runs() {
        let input = "{\"a\":1}\n{\n \"records\": 3\n}\n{\"Records\":[{\"x\":1}]}{\"c\":[]}";
        let found = pieces(input, input.len(), 1000);
        assert_eq!(
            found,
            vec![
                "V1@0:{\"a\":1}\n{\n \"records\": 3\n}\n",
                "I5#0@38:{\"x\":1}",
                "V5@47:{\"c\":[]}"
            ]
        );
        same_at_every_block(input, 1000);
    }

    #[test]
    fn a_value_over_the_cap_is_cut_and_the_rest_goes_on() {
        let input = "{\"Records\":[{\"a\":1},{\"long\":\"0123456789\"},{\"b\":2}]}";
        assert_eq!(
            pieces(input, 8, 12),
            vec![
                "I1#0@12:{\"a\":1}",
                "C1@20#Some(1):{\"long\":\"012:21",
                "I1#2@42:{\"b\":2}"
            ]
        );
        assert_eq!(
            pieces("{\"a\":\"0123456789\"}\n{\"b\":2}\n", 4, 8),
            vec!["C1@0#None:{\"a\":\"01:18", "V1@18:\n", "V2@19:{\"b\":2}\n"]
        );
    }

    #[test]
    fn a_truncated_input_says_where_it_ends() {
        assert_eq!(
            pieces("{\"Records\":[{\"a\":1},{\"b\"", 5, 100),
            vec!["I1#0@12:{\"a\":1}", "I1#1@20:{\"b\""]
        );
        let ended = pieces("{\"Records\":[{\"a\":1},", 5, 100);
        assert_eq!(ended[0], "I1#0@12:{\"a\":1}");
        assert!(ended[1].starts_with("C1@20#Some(1)"), "{ended:?}");
        assert_eq!(
            pieces("{\"b\":\n{\"c\":3}\n", 3, 100),
            vec!["V1@0:{\"b\":\n{\"c\":3}\n"]
        );
    }

    #[test]
    fn whitespace_and_junk_never_accumulate() {
        let spaces = " ".repeat(10_000);
        let mut cutter = Cutter::new(
            Position {
                line: 1,
                offset: 0,
                index: None,
            },
            16,
        );
        let found = cutter.scan(spaces.as_bytes());
        assert_eq!(cutter.consume(), 10_000);
        assert_eq!(found.len(), 1);
    }
}
