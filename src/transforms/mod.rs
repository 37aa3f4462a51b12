//! The transform stage: decode → normalize → enrich → serialize, for one input unit.
//! Synchronous and CPU-bound; the pipeline runs it on blocking threads.

pub mod decode;
pub mod enrich;
pub mod normalize;
mod raw;
pub mod settings;

use std::io::{BufRead, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::Utc;

use crate::dead_letter::{DeadLetter, Whole};
use crate::event::{Body, Origin, Position};
use crate::metrics::Metrics;
use crate::record::{Format, Output, Record};
use decode::cutter::{Cutter, Piece};
use decode::framing::{self, Frame};
use decode::{AzureLog, DecodeError, Decoded, SourceRecord, Special};
use enrich::Enrichment;
use flate2::read::MultiGzDecoder;
use normalize::document::Document;
use normalize::{Normalized, OutputFormat};
use settings::{InsightRoute, Limits, SpecialRoute};

/// What came out of one input unit.
#[derive(Debug, Default)]
pub struct Processed {
    pub records: Vec<Record>,
    pub dead_letters: Vec<DeadLetter>,
}

/// Everything the transform stage needs, shared by all workers.
pub struct Transformer {
    pub format: OutputFormat,
    /// Also write each record's vendor text (the `raw` format).
    pub raw: bool,
    pub limits: Limits,
    pub digest: SpecialRoute,
    pub insight: InsightRoute,
    pub enrichment: Enrichment,
    pub metrics: Arc<Metrics>,
    /// Bytes of a streaming input read at once ([`BLOCK`]).
    pub block: usize,
}

impl Transformer {
    pub fn new(format: OutputFormat, enrichment: Enrichment, metrics: Arc<Metrics>) -> Self {
        Transformer {
            format,
            raw: format == OutputFormat::Raw,
            limits: Limits::default(),
            digest: SpecialRoute::Skip,
            insight: InsightRoute::Normalize,
            enrichment,
            metrics,
            block: BLOCK,
        }
    }

    /// Turn one input unit into records and dead letters, on this thread. Never panics on
    /// bad input.
    pub fn process(&self, bytes: &[u8], origin: &Origin) -> Processed {
        let mut records = Vec::new();
        let dead_letters = Mutex::new(Vec::new());
        let read = self.process_pieces(
            Input::Bytes(bytes),
            origin,
            vec![|r| records.push(r)],
            &|letters| {
                if let Ok(mut all) = dead_letters.lock() {
                    all.extend(letters);
                }
            },
        );
        debug_assert!(read.is_ok(), "bytes in memory always read");
        Processed {
            records,
            dead_letters: dead_letters.into_inner().unwrap_or_default(),
        }
    }

    /// Transform one input, handing each record to an emitter as soon as it is built and
    /// each few hundred dead letters to `dead`: no input is ever whole in memory here.
    ///
    /// - **Streaming.** The input is read (and gunzipped) in blocks of [`BLOCK`] bytes.
    ///   NDJSON is framed block by block, each cut at its last newline. Once a block is
    ///   not plain NDJSON, a [`Cutter`] finds where values (and the items of an envelope
    ///   or array) end, and only the one crossing a block's end is carried over.
    /// - **Limits while framing.** Past `max_decompressed_bytes`, `max_records_per_input`
    ///   frames or `max_invalid_records_per_input` dead letters, the rest is not read and
    ///   the input is dead-lettered with the limit's name; what came before stays
    ///   delivered.
    /// - **Threads.** A block of more than one [`CHUNK`] of frames is shared by one thread
    ///   per emitter: one large file would otherwise keep one core busy while the others
    ///   idle. Each chunk's records reach one emitter in input order; chunks interleave.
    ///
    /// `Err` is an input that could not be read (a file gone or unreadable): not bad
    /// input, so nothing is dead-lettered and the caller leaves it unacknowledged.
    pub fn process_pieces<E: FnMut(Record) + Send>(
        &self,
        input: Input<'_>,
        origin: &Origin,
        mut emitters: Vec<E>,
        dead: &(dyn Fn(Vec<DeadLetter>) + Sync),
    ) -> std::io::Result<()> {
        Metrics::add(&self.metrics.inputs, 1);
        let letter = |kind: &'static str, reason: String| {
            self.metrics.dead_letter(kind);
            dead(vec![input.letter(kind, reason, origin)]);
        };
        let limit = self.limits.max_decompressed_bytes;
        let mut progress = Progress {
            taken: 0,
            over: false,
            invalid: AtomicUsize::new(0),
            crossed: AtomicUsize::new(usize::MAX),
            origin: Arc::new(origin.clone()),
            now: Utc::now(),
        };
        let start = Position {
            line: 1,
            offset: 0,
            index: None,
        };
        if let Input::Bytes(bytes) = input {
            // Already in memory and not compressed: framed where it is, not copied.
            if !bytes.starts_with(&framing::GZIP_MAGIC) {
                if bytes.len() as u64 > limit {
                    letter(
                        "too_large",
                        framing::OpenError::TooLarge { limit }.to_string(),
                    );
                    return Ok(());
                }
                let frames = framing::frames(bytes);
                self.frame_block(frames, start, &mut emitters, &mut progress, dead);
                self.limit_letters(&progress, letter);
                return Ok(());
            }
        }
        let mut raw = std::io::BufReader::with_capacity(1 << 16, input.reader()?);
        let gzip = raw.fill_buf()?.starts_with(&framing::GZIP_MAGIC);
        let mut decoded: Box<dyn Read + '_> = if gzip {
            Box::new(MultiGzDecoder::new(raw))
        } else {
            Box::new(raw)
        };
        let block = self.block.max(1);
        let mut buf = Vec::with_capacity(input.size_hint(limit, block));
        // Where `buf` starts in the decompressed input, while it is plain NDJSON.
        let mut base = start;
        // Set once the input is found not to be plain NDJSON.
        let mut cutter: Option<Cutter> = None;
        let mut read = 0u64;
        loop {
            // A record carried over from the last block is kept, and a block read on.
            let want = match cutter {
                None => block,
                Some(_) => {
                    // Grown once, exactly: a buffer that grows by doubling leaves its
                    // freed copies with the allocator.
                    let want = buf.len() + block;
                    buf.reserve_exact(want - buf.len());
                    want
                }
            };
            let eof = match fill(&mut decoded, &mut buf, want, limit, &mut read) {
                Ok(eof) => eof,
                // What flate2 says of a corrupt or cut stream; other errors are the
                // file's, not the input's, and leave it unacknowledged.
                Err(e)
                    if gzip
                        && matches!(
                            e.kind(),
                            std::io::ErrorKind::InvalidInput
                                | std::io::ErrorKind::InvalidData
                                | std::io::ErrorKind::UnexpectedEof
                        ) =>
                {
                    letter(
                        "invalid_gzip",
                        framing::OpenError::Gzip(e.to_string()).to_string(),
                    );
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            // Past the cap, what came before it is framed as if more were to come: the
            // records wholly inside it are delivered, the one it cuts is not.
            let capped = read > limit;
            if capped {
                let past = usize::try_from(read - limit).unwrap_or(usize::MAX);
                buf.truncate(buf.len().saturating_sub(past));
            }
            let last = eof && !capped;
            if cutter.is_none() {
                let plain = if last {
                    // The last block (often the only one) is framed whole, any shape.
                    Some((buf.len(), None))
                } else {
                    memchr::memrchr(b'\n', &buf).and_then(|newline| {
                        framing::plain_ndjson(&buf[..newline + 1])
                            .map(|text| (newline + 1, Some(text)))
                    })
                };
                match plain {
                    Some((cut, checked)) => {
                        // A block found plain NDJSON just above is not checked again.
                        let frames = match checked {
                            Some(text) => framing::checked_ndjson(text),
                            None => framing::frames(&buf[..cut]),
                        };
                        self.frame_block(frames, base, &mut emitters, &mut progress, dead);
                        if self.stopped(&progress) || eof || capped {
                            break;
                        }
                        base.line += memchr::memchr_iter(b'\n', &buf[..cut]).count() as u64;
                        base.offset += cut as u64;
                        buf.drain(..cut);
                        continue;
                    }
                    // Not NDJSON, or a line longer than a block (a one-line
                    // `{"Records":[…]}` file): cut where values end from here on.
                    None => cutter = Some(Cutter::new(base, self.limits.max_record_bytes)),
                }
            }
            let Some(cut) = cutter.as_mut() else {
                break;
            };
            let pieces = if last {
                cut.finish(&buf)
            } else {
                cut.scan(&buf)
            };
            for piece in pieces {
                self.piece(piece, &buf, &mut emitters, &mut progress, dead);
                if self.stopped(&progress) {
                    break;
                }
            }
            if self.stopped(&progress) || eof || capped {
                break;
            }
            let done = cut.consume();
            buf.drain(..done);
        }
        if read > limit && !self.stopped(&progress) {
            letter(
                "too_large",
                framing::OpenError::TooLarge { limit }.to_string(),
            );
            return Ok(());
        }
        self.limit_letters(&progress, letter);
        Ok(())
    }

    /// Frame one piece a [`Cutter`] found in `buf`.
    fn piece<E: FnMut(Record) + Send>(
        &self,
        piece: Piece,
        buf: &[u8],
        emitters: &mut [E],
        progress: &mut Progress,
        dead: &(dyn Fn(Vec<DeadLetter>) + Sync),
    ) {
        match piece {
            Piece::Values { range, position } => {
                let frames = framing::frames(&buf[range]);
                self.frame_block(frames, position, emitters, progress, dead);
            }
            Piece::Items {
                range,
                position,
                spans,
            } => {
                let frames = framing::spans(&buf[range], spans);
                self.frame_block(frames, position, emitters, progress, dead);
            }
            Piece::Cut(cut) => {
                self.metrics.dead_letter(cut.kind);
                progress.count_invalid(
                    1,
                    progress.taken,
                    self.limits.max_invalid_records_per_input,
                );
                dead(vec![DeadLetter {
                    kind: cut.kind,
                    reason: cut.reason,
                    origin: progress.origin.as_ref().clone(),
                    position: Some(cut.position),
                    bytes: cut.kept,
                    whole: cut.whole.map(|(size, sha256)| Whole { size, sha256 }),
                }]);
            }
        }
    }

    /// Past a limit on records or dead letters: the rest of the input is not read.
    fn stopped(&self, progress: &Progress) -> bool {
        progress.over || progress.too_many_invalid()
    }

    /// The dead letter of an input cut at a limit on its records, if it was.
    fn limit_letters(&self, progress: &Progress, letter: impl Fn(&'static str, String)) {
        if progress.over {
            letter(
                "too_many_records",
                format!(
                    "input holds more than {} records (limits.max_records_per_input); those before the limit were processed, the rest was not read",
                    self.limits.max_records_per_input
                ),
            );
        } else if progress.too_many_invalid() {
            letter(
                "too_many_invalid_records",
                format!(
                    "input holds more than {} records that cannot be delivered (limits.max_invalid_records_per_input); those up to there were processed and dead-lettered, the rest was not read",
                    self.limits.max_invalid_records_per_input
                ),
            );
        }
    }

    /// Transform the frames of one block of the input, whose first byte is at `base`.
    fn frame_block<E: FnMut(Record) + Send>(
        &self,
        frames: framing::Frames<'_>,
        base: Position,
        emitters: &mut [E],
        progress: &mut Progress,
        dead: &(dyn Fn(Vec<DeadLetter>) + Sync),
    ) {
        let mut chunks = Chunks {
            frames,
            base,
            taken: progress.taken,
            limit: self.limits.max_records_per_input,
            over: false,
        };
        let shared: &Progress = progress;
        let limit = self.limits.max_invalid_records_per_input;
        let work = |(start, chunk): (usize, Vec<Frame<'_>>), unit: &mut Unit<&mut E>| {
            let mut frames = (start..).zip(chunk);
            let mut group = Vec::with_capacity(GROUP);
            let mut pending = Vec::with_capacity(GROUP);
            loop {
                group.extend(
                    frames
                        .by_ref()
                        .take(GROUP)
                        .take_while(|(seq, _)| !shared.cut_before(*seq))
                        .map(|(seq, frame)| (seq, self.decode(frame, unit.now))),
                );
                if group.is_empty() {
                    break;
                }
                for (seq, decoded) in group.drain(..) {
                    if shared.cut_before(seq) {
                        break;
                    }
                    let before = unit.dead.len();
                    self.finish_frame(decoded, unit, &mut pending);
                    shared.count_invalid(unit.dead.len() - before, seq, limit);
                }
                self.enrich(&mut pending);
                emit_group(&mut pending, unit);
            }
            if unit.dead.len() >= DEAD_LETTER_FLUSH {
                dead(std::mem::take(&mut unit.dead));
            }
        };
        let unit = |emit| Unit {
            origin: Arc::clone(&shared.origin),
            now: shared.now,
            dead: Vec::new(),
            emit,
        };
        let too_many_invalid = || shared.too_many_invalid();
        let first = chunks.next().unwrap_or_default();
        if first.1.len() < CHUNK || emitters.len() < 2 {
            let Some(emit) = emitters.first_mut() else {
                return;
            };
            let mut one = unit(emit);
            work(first, &mut one);
            while !too_many_invalid() {
                let Some(chunk) = chunks.next() else { break };
                work(chunk, &mut one);
            }
            dead(one.dead);
        } else {
            let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Vec<Frame<'_>>)>(emitters.len());
            // Shared by the workers and dropped with the last of them, so the producer
            // never waits on workers that are gone.
            let rx = Arc::new(Mutex::new(rx));
            std::thread::scope(|scope| {
                let workers: Vec<_> = emitters
                    .iter_mut()
                    .map(|emit| {
                        let rx = Arc::clone(&rx);
                        let (work, unit) = (&work, &unit);
                        scope.spawn(move || {
                            let mut piece = unit(emit);
                            loop {
                                let next = match rx.lock() {
                                    Ok(rx) => rx.recv(),
                                    Err(_) => break,
                                };
                                let Ok(chunk) = next else { break };
                                work(chunk, &mut piece);
                            }
                            piece.dead
                        })
                    })
                    .collect();
                drop(rx);
                let mut next = Some(first);
                while let Some(chunk) = next {
                    if tx.send(chunk).is_err() || too_many_invalid() {
                        break;
                    }
                    next = chunks.next();
                }
                drop(tx);
                for worker in workers {
                    // A panic is the worker's, as if it had transformed the piece itself.
                    let rest = worker
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                    dead(rest);
                }
            });
        }
        progress.taken = chunks.taken;
        progress.over = chunks.over;
    }

    fn frame<'a>(
        &self,
        frame: Frame<'a>,
        unit: &mut Unit<impl FnMut(Record)>,
        pending: &mut Vec<Pending<'a>>,
    ) {
        let decoded = self.decode(frame, unit.now);
        self.finish_frame(decoded, unit, pending);
    }

    /// The first stage of a frame: its record decoded. A group of frames goes through
    /// each stage before the next (decoding; normalizing; each enricher; writing each
    /// format), so the code of one stage stays in the instruction cache across the group:
    /// taken one frame at a time, parsing, normalizing and writing a record took more code
    /// than the cache holds (cachegrind, BENCHMARKS.md).
    /// The third stage: the group's records enriched, one enricher at a time.
    fn enrich(&self, pending: &mut [Pending<'_>]) {
        self.enrichment.apply(pending, |(normalized, _)| normalized);
    }

    fn decode<'a>(&self, frame: Frame<'a>, now: chrono::DateTime<Utc>) -> Staged<'a> {
        match frame {
            Frame::Invalid {
                bytes,
                position,
                reason,
            } => Staged::Invalid {
                bytes,
                position,
                reason,
            },
            Frame::Record { raw, position } => Staged::Decoded {
                decoded: decode::decode(raw.get(), self.limits.max_record_bytes, now),
                text: raw.get(),
                position,
            },
            Frame::Line { text, position } => {
                match decode::decode(text, self.limits.max_record_bytes, now) {
                    Err(DecodeError::Json(_)) => Staged::Rescan { text, position },
                    decoded => Staged::Decoded {
                        decoded,
                        text,
                        position,
                    },
                }
            }
        }
    }

    /// The second stage of a frame, after [`decode`](Self::decode): its record normalized
    /// into `pending`, for [`enrich`](Self::enrich) and [`emit_group`]; or dead-lettered.
    fn finish_frame<'a>(
        &self,
        staged: Staged<'a>,
        unit: &mut Unit<impl FnMut(Record)>,
        pending: &mut Vec<Pending<'a>>,
    ) {
        match staged {
            Staged::Invalid {
                bytes,
                position,
                reason,
            } => self.dead(
                &mut unit.dead,
                "invalid_json",
                reason,
                &unit.origin,
                Some(position),
                bytes,
            ),
            Staged::Decoded {
                decoded,
                text,
                position,
            } => self.decoded(decoded, text, position, unit, pending),
            // Not one object after all (two on a line, a syntax error): the scanner says
            // exactly what is there.
            Staged::Rescan { text, position } => {
                for frame in framing::frames_scanned(text.as_bytes()) {
                    self.frame(frame.shifted(position), unit, pending);
                }
            }
        }
    }

    fn decoded<'a>(
        &self,
        decoded: Result<Decoded<'a>, DecodeError>,
        text: &'a str,
        position: Position,
        unit: &mut Unit<impl FnMut(Record)>,
        pending: &mut Vec<Pending<'a>>,
    ) {
        match decoded {
            Ok(Decoded::Record(SourceRecord::CloudTrail(r)))
                if r.is_insight() && self.insight != InsightRoute::Normalize =>
            {
                let route = match self.insight {
                    InsightRoute::DeadLetter => SpecialRoute::DeadLetter,
                    _ => SpecialRoute::Skip,
                };
                self.special(
                    &mut unit.dead,
                    Special::Insight,
                    route,
                    &unit.origin,
                    position,
                    text,
                )
            }
            Ok(Decoded::Record(source)) => {
                pending.push(self.normalized(source, text, unit.now, &unit.origin));
            }
            Ok(Decoded::Special(special)) => self.special(
                &mut unit.dead,
                special,
                self.digest,
                &unit.origin,
                position,
                text,
            ),
            Err(err) => self.dead(
                &mut unit.dead,
                err.kind(),
                err.to_string(),
                &unit.origin,
                Some(position),
                text.as_bytes(),
            ),
        }
    }

    fn normalized<'a>(
        &self,
        source: SourceRecord<'a>,
        raw: &str,
        now: chrono::DateTime<Utc>,
        origin: &Arc<Origin>,
    ) -> Pending<'a> {
        Metrics::add(&self.metrics.records_decoded, 1);
        if let Origin::EventHubs { hub, partition, .. } = origin.as_ref() {
            self.metrics.count_labeled(
                "eventhubs_records_decoded",
                &format!("{hub}/{partition}"),
                1,
            );
        }
        if source.time_source() == decode::time::TimeSource::Ingest {
            Metrics::add(&self.metrics.records_time_from_ingest, 1);
        }
        if let SourceRecord::Azure(e) = &source {
            if e.kind() == AzureLog::Other {
                Metrics::add(&self.metrics.records_other_category, 1);
            }
        }
        let raw_body = self.raw.then(|| raw::body(&source, raw));
        let normalized = normalize::normalize(source, self.format, || fallback_id(raw), now);
        (normalized, raw_body)
    }

    fn special(
        &self,
        out: &mut Vec<DeadLetter>,
        special: Special,
        route: SpecialRoute,
        origin: &Origin,
        position: Position,
        raw: &str,
    ) {
        match route {
            SpecialRoute::Skip => self.metrics.skipped(special.as_str()),
            SpecialRoute::DeadLetter => self.dead(
                out,
                special.as_str(),
                format!(
                    "{} routed to the dead-letter destination by configuration",
                    special.as_str()
                ),
                origin,
                Some(position),
                raw.as_bytes(),
            ),
        }
    }

    fn dead(
        &self,
        out: &mut Vec<DeadLetter>,
        kind: &'static str,
        reason: String,
        origin: &Origin,
        position: Option<Position>,
        bytes: &[u8],
    ) {
        self.metrics.dead_letter(kind);
        out.push(match position {
            Some(_) => DeadLetter::record(
                kind,
                reason,
                origin.clone(),
                position,
                bytes,
                self.limits.max_record_bytes,
            ),
            None => DeadLetter::input(kind, reason, origin.clone(), bytes),
        });
    }
}

/// Frames handed to a piece at once; a unit of one chunk or less stays on its thread,
/// where a thread would cost more than it saves.
pub const CHUNK: usize = 1_000;

/// Dead letters a piece gathers before handing them on.
const DEAD_LETTER_FLUSH: usize = 256;

/// Bytes of the input read at once when it streams.
pub const BLOCK: usize = 8 << 20;

/// An input as the transform reads it.
#[derive(Clone, Copy)]
pub enum Input<'b> {
    Bytes(&'b [u8]),
    File(&'b std::path::Path),
}

impl<'b> Input<'b> {
    pub fn of(body: &'b Body) -> Self {
        match body {
            Body::Bytes(bytes) => Input::Bytes(bytes),
            Body::File(path) => Input::File(path),
            Body::Spooled(path) => Input::File(path),
        }
    }

    fn reader(self) -> std::io::Result<Box<dyn Read + 'b>> {
        Ok(match self {
            Input::Bytes(bytes) => Box::new(bytes),
            Input::File(path) => Box::new(std::fs::File::open(path)?),
        })
    }

    /// Room to reserve for the decompressed input: a block, or less when the input is
    /// known to be smaller.
    fn size_hint(self, limit: u64, block: usize) -> usize {
        match self {
            Input::Bytes(bytes) if bytes.starts_with(&framing::GZIP_MAGIC) => {
                framing::decompressed_size_hint(bytes, limit).min(block)
            }
            Input::Bytes(_) => block,
            // A small file needs a small buffer: every transform thread reserves one.
            Input::File(path) => std::fs::metadata(path)
                .map_or(block, |m| usize::try_from(m.len()).unwrap_or(block))
                .min(block),
        }
    }

    /// A dead letter for the whole input.
    fn letter(self, kind: &'static str, reason: String, origin: &Origin) -> DeadLetter {
        match self {
            Input::Bytes(bytes) => DeadLetter::input(kind, reason, origin.clone(), bytes),
            Input::File(path) => DeadLetter::of_file(kind, reason, origin.clone(), path),
        }
    }
}

/// Read from `from` into `buf` until it holds `want` bytes or the input ends; true at
/// the end. Stops one byte past `limit` in all (`read` counts), so a cap is noticed. The
/// buffer grows only when it is full and more is there: an input that ends exactly at
/// its capacity must not double it (a 250 MB file would hold 500 MB).
fn fill(
    from: &mut dyn Read,
    buf: &mut Vec<u8>,
    want: usize,
    limit: u64,
    read: &mut u64,
) -> std::io::Result<bool> {
    let mut probe = [0u8; 8192];
    while buf.len() < want {
        let room =
            usize::try_from(limit.saturating_add(1).saturating_sub(*read)).unwrap_or(usize::MAX);
        if room == 0 {
            return Ok(false);
        }
        let n = if buf.len() == buf.capacity() {
            let take = room.min(probe.len());
            let n = read_some(from, &mut probe[..take])?;
            buf.extend_from_slice(&probe[..n]);
            n
        } else {
            let step = (want - buf.len())
                .min(buf.capacity() - buf.len())
                .min(1 << 20)
                .min(room);
            // Into the spare capacity as it is: zeroing it first cost as much as
            // splitting the input into lines. Reading stops at `step`, within the
            // capacity, so the buffer does not grow.
            let at = buf.len();
            Read::take(&mut *from, step as u64)
                .read_to_end(buf)
                .inspect_err(|_| buf.truncate(at))?
        };
        *read += n as u64;
        if n == 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// One `read`, retried when interrupted.
fn read_some(from: &mut dyn Read, into: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match from.read(into) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// What the blocks of one input share.
struct Progress {
    /// Frames taken so far.
    taken: usize,
    /// The input holds more frames than the limit.
    over: bool,
    /// Dead letters made so far.
    invalid: AtomicUsize,
    /// The frame (counted in input order) whose dead letters crossed
    /// `max_invalid_records_per_input`; `usize::MAX` while none has.
    crossed: AtomicUsize,
    origin: Arc<Origin>,
    now: chrono::DateTime<Utc>,
}

impl Progress {
    /// Count the `n` dead letters frame `seq` made. Threads work on chunks side by side,
    /// so the limit is placed where it was crossed: frames before it are still
    /// transformed (a good record early in the input is delivered however fast another
    /// thread met bad ones), frames after it are not.
    fn count_invalid(&self, n: usize, seq: usize, limit: usize) {
        if n > 0 && self.invalid.fetch_add(n, Ordering::Relaxed) + n > limit {
            self.crossed.fetch_min(seq, Ordering::Relaxed);
        }
    }

    fn cut_before(&self, seq: usize) -> bool {
        self.crossed.load(Ordering::Relaxed) < seq
    }

    fn too_many_invalid(&self) -> bool {
        self.crossed.load(Ordering::Relaxed) != usize::MAX
    }
}

/// Takes a block's frames in chunks, each with the number of its first frame in the input,
/// placed in the whole input, and stops at the record limit.
struct Chunks<'a> {
    frames: framing::Frames<'a>,
    /// Where the block starts in the input.
    base: Position,
    taken: usize,
    limit: usize,
    over: bool,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = (usize, Vec<Frame<'a>>);

    fn next(&mut self) -> Option<(usize, Vec<Frame<'a>>)> {
        let start = self.taken;
        let mut chunk = Vec::with_capacity(CHUNK);
        while chunk.len() < CHUNK && !self.over {
            let Some(frame) = self.frames.next() else {
                break;
            };
            if self.taken == self.limit {
                self.over = true;
                break;
            }
            self.taken += 1;
            chunk.push(if self.base.offset == 0 {
                frame
            } else {
                frame.shifted(self.base)
            });
        }
        (!chunk.is_empty()).then_some((start, chunk))
    }
}

/// A frame after its first stage ([`Transformer::decode`]).
enum Staged<'a> {
    Invalid {
        bytes: &'a [u8],
        position: Position,
        reason: String,
    },
    Decoded {
        decoded: Result<Decoded<'a>, DecodeError>,
        text: &'a str,
        position: Position,
    },
    /// A line that did not parse as one value, to be scanned for what it holds.
    Rescan { text: &'a str, position: Position },
}

/// A record normalized, with its raw document when one is asked for, waiting for its
/// group to be enriched and written ([`emit_group`]).
type Pending<'a> = (Normalized<'a>, Option<Vec<u8>>);

/// The group's records written and emitted in order, one format at a time across the
/// group: the ECS writer's code, then the OCSF writer's, each stays in the instruction
/// cache for the whole group (see [`Transformer::decode`]).
fn emit_group(pending: &mut Vec<Pending<'_>>, unit: &mut Unit<impl FnMut(Record)>) {
    let write = |doc: for<'n> fn(&'n Normalized<'_>) -> Option<&'n Document>| {
        pending
            .iter()
            .map(|(n, _)| doc(n).map(|d| d.to_bytes(&n.source)))
            .collect::<Vec<_>>()
    };
    let ecs = write(|n| n.ecs.as_ref());
    let ocsf = write(|n| n.ocsf.as_ref());
    for (((n, raw), ecs), ocsf) in pending.drain(..).zip(ecs).zip(ocsf) {
        (unit.emit)(serialize(n, raw, ecs, ocsf, Arc::clone(&unit.origin)));
    }
}

/// Frames taken through each stage together (see [`Transformer::decode`]).
const GROUP: usize = 16;

/// One input unit (or a piece of one) on its way through: where it came from, and where its records and dead
/// letters go.
struct Unit<E> {
    origin: Arc<Origin>,
    now: chrono::DateTime<Utc>,
    dead: Vec<DeadLetter>,
    emit: E,
}

/// A stable id for records that carry none: the same input always gets the same id,
/// so downstream deduplication still works.
fn fallback_id(raw: &str) -> String {
    // FNV-1a: a fixed algorithm, so ids do not change with the Rust release.
    let hash = raw.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("auditbridge-{hash:016x}")
}

/// The record of `n`, whose ECS and OCSF documents were written already.
fn serialize(
    n: Normalized,
    raw: Option<Vec<u8>>,
    ecs: Option<Bytes>,
    ocsf: Option<Bytes>,
    origin: Arc<Origin>,
) -> Record {
    let mut outputs = Vec::with_capacity(3 + n.findings.len());
    if let Some(body) = raw {
        outputs.push(Output {
            format: Format::Raw,
            body: body.into(),
        });
    }
    if let Some(body) = ecs {
        outputs.push(Output {
            format: Format::Ecs,
            body,
        });
    }
    if let Some(body) = ocsf {
        outputs.push(Output {
            format: Format::Ocsf,
            body,
        });
    }
    outputs.extend(n.findings.into_iter().map(|body| Output {
        format: Format::OcsfFinding,
        body,
    }));
    let (dataset, account) = match &n.source {
        SourceRecord::CloudTrail(r) => ("aws.cloudtrail", r.account_id()),
        SourceRecord::Azure(r) => (r.dataset(), r.account()),
        SourceRecord::Gcp(r) => ("gcp.audit", r.project_id()),
    };
    Record {
        id: n.id,
        provider: n.source.provider(),
        dataset,
        account: account.map(str::to_string),
        time: n.source.time(),
        techniques: n.techniques,
        rules: n.rules,
        key_age_days: n.key_age_days,
        origin,
        outputs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::inventory::KeyInventory;
    use crate::rules::RuleSet;

    fn transformer() -> Transformer {
        let enrichment = Enrichment::new(
            Arc::new(RuleSet::builtin().unwrap()),
            Arc::new(KeyInventory::new(10)),
            90,
        );
        Transformer::new(OutputFormat::Ecs, enrichment, Arc::new(Metrics::default()))
    }

    #[test]
    fn a_large_unit_is_shared_by_the_emitters_in_chunks_each_in_order() {
        let records = 2 * CHUNK + 500;
        let bad_line = CHUNK + 700;
        let text: String = (1..=records)
            .map(|n| match n {
                n if n == bad_line => "{\"eventName\": }\n".to_string(),
                n => format!("{{\"eventName\":\"A\",\"eventSource\":\"s\",\"eventID\":\"{n}\"}}\n"),
            })
            .collect();
        let (mut first, mut second) = (Vec::new(), Vec::new());
        let emitters: Vec<Box<dyn FnMut(Record) + Send>> = vec![
            Box::new(|r: Record| first.push(r.id.parse::<usize>().unwrap())),
            Box::new(|r: Record| second.push(r.id.parse::<usize>().unwrap())),
        ];
        let origin = Origin::Inline {
            name: "test".into(),
        };
        let dead = Mutex::new(Vec::new());
        transformer()
            .process_pieces(Input::Bytes(text.as_bytes()), &origin, emitters, &|l| {
                dead.lock().unwrap().extend(l)
            })
            .unwrap();
        assert!(
            first.is_sorted() && second.is_sorted(),
            "each emitter in input order"
        );
        let mut all: Vec<usize> = first.iter().chain(&second).copied().collect();
        all.sort_unstable();
        let expected: Vec<usize> = (1..=records).filter(|n| *n != bad_line).collect();
        assert_eq!(all, expected, "every record once");
        let dead = dead.into_inner().unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].position.map(|p| p.line), Some(bad_line as u64));
    }

    #[test]
    fn frames_past_the_record_limit_are_not_read_and_the_input_says_why() {
        let mut t = transformer();
        t.limits.max_records_per_input = 2_500;
        let text: String = (1..=10_000)
            .map(|n| format!("{{\"eventName\":\"A\",\"eventSource\":\"s\",\"eventID\":\"{n}\"}}\n"))
            .collect();
        let out = t.process(text.as_bytes(), &Origin::Inline { name: "big".into() });
        let ids: Vec<String> = out.records.iter().map(|r| r.id.clone()).collect();
        let expected: Vec<String> = (1..=2_500).map(|n| n.to_string()).collect();
        assert_eq!(ids, expected, "the records before the limit, once each");
        assert_eq!(out.dead_letters.len(), 1);
        let letter = out.dead_letters[0].to_json();
        assert_eq!(letter["kind"], "too_many_records");
        assert!(letter["reason"]
            .as_str()
            .unwrap()
            .contains("more than 2500 records (limits.max_records_per_input)"));
        assert_eq!(letter["size"], text.len() as u64);
        assert_eq!(
            letter["original"].as_str().unwrap().len(),
            crate::dead_letter::INPUT_EXCERPT
        );
    }

    fn ndjson(n: usize, bad: usize) -> String {
        (1..=n)
            .map(|i| match i {
                i if i == bad => "{\"eventName\": }\n".to_string(),
                i => format!("{{\"eventName\":\"A\",\"eventSource\":\"s\",\"eventID\":\"{i}\"}}\n"),
            })
            .collect()
    }

    /// What the transform makes of `bytes` read from a file, as the file source has it.
    fn from_file(t: &Transformer, bytes: &[u8]) -> Processed {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        let mut records = Vec::new();
        let letters = Mutex::new(Vec::new());
        t.process_pieces(
            Input::File(file.path()),
            &Origin::Inline { name: "t".into() },
            vec![|r| records.push(r)],
            &|l| letters.lock().unwrap().extend(l),
        )
        .unwrap();
        Processed {
            records,
            dead_letters: letters.into_inner().unwrap(),
        }
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn ndjson_streams_in_blocks_with_every_record_once_and_positions_in_the_whole_input() {
        let mut t = transformer();
        t.block = 4096;
        let text = ndjson(3_000, 2_500);
        let bad_offset = text.find("{\"eventName\": }").unwrap() as u64;
        for input in [text.as_bytes().to_vec(), gz(text.as_bytes())] {
            let out = from_file(&t, &input);
            let mut ids: Vec<usize> = out.records.iter().map(|r| r.id.parse().unwrap()).collect();
            ids.sort_unstable();
            let expected: Vec<usize> = (1..=3_000).filter(|i| *i != 2_500).collect();
            assert_eq!(ids, expected);
            assert_eq!(out.dead_letters.len(), 1);
            let position = out.dead_letters[0].position.unwrap();
            assert_eq!((position.line, position.offset), (2_500, bad_offset));
        }
    }

    #[test]
    fn an_envelope_longer_than_a_block_streams_item_by_item() {
        let mut t = transformer();
        t.block = 4096;
        t.limits.max_record_bytes = 2_000;
        let mut records: Vec<String> = ndjson(3_000, 0).lines().map(str::to_string).collect();
        let long = format!(
            "{{\"eventName\":\"A\",\"eventSource\":\"s\",\"eventID\":\"{}\"}}",
            "x".repeat(10_000)
        );
        records[1_500] = long.clone();
        let envelope = format!("{{\"Records\":[{}]}}", records.join(",\n"));
        let long_at = envelope.find(&long).unwrap() as u64;
        for input in [envelope.as_bytes().to_vec(), gz(envelope.as_bytes())] {
            let out = from_file(&t, &input);
            let ids: Vec<usize> = out.records.iter().map(|r| r.id.parse().unwrap()).collect();
            let expected: Vec<usize> = (1..=3_000).filter(|i| *i != 1_501).collect();
            assert_eq!(ids, expected, "every other record once, in order");
            assert_eq!(out.dead_letters.len(), 1);
            let letter = &out.dead_letters[0];
            assert_eq!(letter.kind, "too_large");
            assert_eq!(
                letter.position,
                Some(Position {
                    line: 1_501,
                    offset: long_at,
                    index: Some(1_500)
                })
            );
            assert_eq!(letter.bytes, long.as_bytes()[..2_000]);
            let whole = letter.whole.as_ref().unwrap();
            assert_eq!(whole.size, long.len() as u64);
            use sha2::Digest;
            assert_eq!(
                whole.sha256,
                format!("{:x}", sha2::Sha256::digest(long.as_bytes()))
            );
        }

        t.limits.max_records_per_input = 1_000;
        let out = from_file(&t, envelope.as_bytes());
        assert_eq!(out.records.len(), 1_000);
        let kinds: Vec<&str> = out.dead_letters.iter().map(|l| l.kind).collect();
        assert_eq!(kinds, ["too_many_records"]);
    }

    #[test]
    fn pretty_printed_input_longer_than_a_block_keeps_every_record_and_every_error() {
        let mut t = transformer();
        t.block = 4096;
        let mut text = String::new();
        for i in 1..=500 {
            if i == 250 {
                text.push_str("{\n  \"eventName\": \n}\n");
            } else {
                text.push_str(&format!(
                    "{{\n  \"eventName\": \"A\",\n  \"eventSource\": \"s\",\n  \"eventID\": \"{i}\"\n}}\n"
                ));
            }
        }
        let out = from_file(&t, text.as_bytes());
        let ids: Vec<usize> = out.records.iter().map(|r| r.id.parse().unwrap()).collect();
        let expected: Vec<usize> = (1..=500).filter(|i| *i != 250).collect();
        assert_eq!(ids, expected);
        let letters: Vec<(&str, u64)> = out
            .dead_letters
            .iter()
            .map(|l| (l.kind, l.position.unwrap().line))
            .collect();
        // The scan resumes line by line after a syntax error, so the lines of the broken
        // value are dead-lettered where they are, and the next record is whole.
        let first = 249 * 5 + 1;
        assert_eq!(
            letters,
            [
                ("invalid_json", first),
                ("invalid_json", first + 1),
                ("invalid_json", first + 1),
                ("invalid_json", first + 2)
            ]
        );
    }

    #[test]
    fn a_cap_or_a_broken_gzip_midway_keeps_what_came_before_and_says_why() {
        let mut t = transformer();
        t.block = 4096;
        t.limits.max_decompressed_bytes = 100_000;
        let text = ndjson(3_000, 0);
        let out = t.process(&gz(text.as_bytes()), &Origin::Inline { name: "t".into() });
        let kinds: Vec<&str> = out.dead_letters.iter().map(|l| l.kind).collect();
        assert_eq!(kinds, ["too_large"]);
        let delivered: Vec<usize> = out.records.iter().map(|r| r.id.parse().unwrap()).collect();
        let within = text[..100_000].matches('\n').count();
        let expected: Vec<usize> = (1..=within).collect();
        assert_eq!(
            delivered, expected,
            "every record wholly inside the cap, once"
        );

        let mut t = transformer();
        t.block = 4096;
        let whole = gz(text.as_bytes());
        let cut = &whole[..whole.len() * 2 / 3];
        let out = t.process(cut, &Origin::Inline { name: "t".into() });
        let kinds: Vec<&str> = out.dead_letters.iter().map(|l| l.kind).collect();
        assert_eq!(kinds.last(), Some(&"invalid_gzip"));
        assert!(!out.records.is_empty());
    }

    #[test]
    fn an_input_of_nothing_but_bad_records_stops_at_the_invalid_limit() {
        let mut t = transformer();
        t.limits.max_invalid_records_per_input = 1_000;
        let text = "{}\n".repeat(1_000_000);
        let out = t.process(
            text.as_bytes(),
            &Origin::Inline {
                name: "bomb".into(),
            },
        );
        assert!(out.records.is_empty());
        let kinds: Vec<&str> = out.dead_letters.iter().map(|l| l.kind).collect();
        assert_eq!(kinds.last(), Some(&"too_many_invalid_records"));
        assert!(
            out.dead_letters.len() < 1_000 + 2 * CHUNK,
            "{} dead letters: the rest was not read",
            out.dead_letters.len()
        );
    }

    #[test]
    fn a_line_that_is_not_one_object_goes_through_the_scanner() {
        let t = transformer();
        let input = concat!(
            r#"{"eventName":"A","eventSource":"s","eventID":"1"}"#,
            r#"{"eventName":"B","eventSource":"s","eventID":"2"}"#,
            "\n",
            r#"{"eventName": }"#,
            "\n",
            r#"{"eventName":"C","eventSource":"s","eventID":"3"}"#,
            "\n"
        );
        let out = t.process(
            input.as_bytes(),
            &Origin::Inline {
                name: "test".into(),
            },
        );
        let ids: Vec<&str> = out.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["1", "2", "3"]);
        assert_eq!(out.dead_letters.len(), 1);
        let letter = &out.dead_letters[0];
        assert_eq!(letter.kind, "invalid_json");
        assert_eq!(letter.position.map(|p| p.line), Some(2));
        assert_eq!(letter.bytes, br#"{"eventName": }"#);
    }

    /// Hands out `chunk` bytes a read, then fails when `fail` is set.
    struct Trickle<'a> {
        data: &'a [u8],
        chunk: usize,
        fail: bool,
    }

    fn trickle(data: &[u8], chunk: usize, fail: bool) -> Trickle<'_> {
        Trickle { data, chunk, fail }
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, into: &mut [u8]) -> std::io::Result<usize> {
            if self.data.is_empty() && self.fail {
                return Err(std::io::Error::other("the disk went away"));
            }
            let n = self.chunk.min(into.len()).min(self.data.len());
            into[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn fill_reads_to_the_capacity_without_growing_and_keeps_nothing_of_a_failed_read() {
        let data: Vec<u8> = (0..100u8).collect();
        let mut buf = Vec::with_capacity(100);
        let mut read = 0;
        let mut from = trickle(&data, 7, false);
        // The input ends exactly at the capacity: the buffer holds it all and stays.
        assert!(fill(&mut from, &mut buf, 1000, 1 << 20, &mut read).unwrap());
        assert_eq!(
            (buf.as_slice(), buf.capacity(), read),
            (data.as_slice(), 100, 100)
        );

        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(b"kept");
        let mut read = 4;
        let mut from = trickle(&data[..30], 7, true);
        let err = fill(&mut from, &mut buf, 64, 1 << 20, &mut read).unwrap_err();
        assert_eq!(err.to_string(), "the disk went away");
        assert_eq!((buf.as_slice(), read), (b"kept".as_slice(), 4));

        // Short reads are gathered until `want`, and more than the capacity grows it.
        let mut buf = Vec::with_capacity(10);
        let mut read = 0;
        let mut from = trickle(&data, 3, false);
        assert!(!fill(&mut from, &mut buf, 50, 1 << 20, &mut read).unwrap());
        assert!(buf.len() >= 50 && data.starts_with(&buf) && read == buf.len() as u64);
    }
}
