//! The transform stage: decode → normalize → enrich → serialize, for one input unit.
//! Synchronous and CPU-bound; the pipeline runs it on blocking threads.

pub mod decode;
pub mod enrich;
pub mod normalize;
pub mod settings;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;

use crate::dead_letter::DeadLetter;
use crate::event::{Origin, Position};
use crate::metrics::Metrics;
use crate::record::{Format, Output, Record};
use decode::framing::{self, Frame};
use decode::{DecodeError, Decoded, EntraKind, SourceRecord, Special};
use enrich::Enrichment;
use normalize::{Normalized, OutputFormat};
use settings::{Limits, SpecialRoute};

/// What came out of one input unit.
#[derive(Debug, Default)]
pub struct Processed {
    pub records: Vec<Record>,
    pub dead_letters: Vec<DeadLetter>,
}

/// Everything the transform stage needs, shared by all workers.
pub struct Transformer {
    pub format: OutputFormat,
    pub limits: Limits,
    pub digest: SpecialRoute,
    pub insight: SpecialRoute,
    pub enrichment: Enrichment,
    pub metrics: Arc<Metrics>,
}

impl Transformer {
    pub fn new(format: OutputFormat, enrichment: Enrichment, metrics: Arc<Metrics>) -> Self {
        Transformer {
            format,
            limits: Limits::default(),
            digest: SpecialRoute::Skip,
            insight: SpecialRoute::Skip,
            enrichment,
            metrics,
        }
    }

    /// Turn one input unit into records and dead letters, on this thread. Never panics on
    /// bad input.
    pub fn process(&self, bytes: &[u8], origin: &Origin) -> Processed {
        let mut records = Vec::new();
        let dead_letters = Mutex::new(Vec::new());
        self.process_pieces(bytes, origin, vec![|r| records.push(r)], &|letters| {
            if let Ok(mut all) = dead_letters.lock() {
                all.extend(letters);
            }
        });
        Processed {
            records,
            dead_letters: dead_letters.into_inner().unwrap_or_default(),
        }
    }

    /// Hands each record to an emitter as soon as it is built, and each few hundred dead
    /// letters to `dead`, so neither ever gathers a whole input in memory. Frames are found
    /// as they are needed, [`CHUNK`] at a time, and the limits on one input apply while
    /// they are: past `max_records_per_input` frames, or `max_invalid_records_per_input`
    /// dead letters, the rest of the input is not read and the input is dead-lettered with
    /// the limit's name (what came before stays delivered). A unit of more than one chunk
    /// uses one thread per emitter: one large file (a replay, a month's export) would
    /// otherwise keep one core busy while the others idle. Each chunk's records reach one
    /// emitter in input order; chunks interleave.
    pub fn process_pieces<E: FnMut(Record) + Send>(
        &self,
        bytes: &[u8],
        origin: &Origin,
        mut emitters: Vec<E>,
        dead: &(dyn Fn(Vec<DeadLetter>) + Sync),
    ) {
        Metrics::add(&self.metrics.inputs, 1);
        let input = match framing::open(bytes, self.limits.max_decompressed_bytes) {
            Ok(input) => input,
            Err(err) => {
                let kind = match err {
                    framing::OpenError::Gzip(_) => "invalid_gzip",
                    framing::OpenError::TooLarge { .. } => "too_large",
                };
                let mut letters = Vec::new();
                self.dead(&mut letters, kind, err.to_string(), origin, None, bytes);
                dead(letters);
                return;
            }
        };
        let mut chunks = Chunks {
            frames: framing::frames(&input),
            taken: 0,
            limit: self.limits.max_records_per_input,
            over: false,
        };
        let invalid = AtomicUsize::new(0);
        let origin = Arc::new(origin.clone());
        let now = Utc::now();
        let work = |chunk: Vec<Frame<'_>>, unit: &mut Unit<E>| {
            for frame in chunk {
                self.frame(frame, unit);
            }
            if unit.dead.len() >= DEAD_LETTER_FLUSH {
                invalid.fetch_add(unit.dead.len(), Ordering::Relaxed);
                dead(std::mem::take(&mut unit.dead));
            }
        };
        let unit = |emit: E| Unit {
            origin: Arc::clone(&origin),
            now,
            dead: Vec::new(),
            emit,
        };
        let too_many_invalid =
            || invalid.load(Ordering::Relaxed) > self.limits.max_invalid_records_per_input;
        let first = chunks.next().unwrap_or_default();
        if first.len() < CHUNK || emitters.len() < 2 {
            let Some(emit) = emitters.into_iter().next() else {
                return;
            };
            let mut one = unit(emit);
            work(first, &mut one);
            while !too_many_invalid() {
                let Some(chunk) = chunks.next() else { break };
                work(chunk, &mut one);
            }
            invalid.fetch_add(one.dead.len(), Ordering::Relaxed);
            dead(one.dead);
        } else {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Frame<'_>>>(emitters.len());
            // Shared by the workers and dropped with the last of them, so a producer
            // never waits on workers that are gone.
            let rx = Arc::new(Mutex::new(rx));
            std::thread::scope(|scope| {
                let workers: Vec<_> = emitters
                    .drain(..)
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
                    invalid.fetch_add(rest.len(), Ordering::Relaxed);
                    dead(rest);
                }
            });
        }
        let cut = if chunks.over {
            Some((
                "too_many_records",
                format!(
                    "input holds more than {} records (limits.max_records_per_input); those before the limit were processed, the rest was not read",
                    self.limits.max_records_per_input
                ),
            ))
        } else if too_many_invalid() {
            Some((
                "too_many_invalid_records",
                format!(
                    "input holds more than {} records that cannot be delivered (limits.max_invalid_records_per_input); those up to there were processed and dead-lettered, the rest was not read",
                    self.limits.max_invalid_records_per_input
                ),
            ))
        } else {
            None
        };
        if let Some((kind, reason)) = cut {
            let mut letters = Vec::new();
            self.dead(&mut letters, kind, reason, &origin, None, bytes);
            dead(letters);
        }
    }

    fn frame(&self, frame: Frame<'_>, unit: &mut Unit<impl FnMut(Record)>) {
        match frame {
            Frame::Invalid {
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
            Frame::Record { raw, position } => {
                let decoded = decode::decode(raw.get(), self.limits.max_record_bytes, unit.now);
                self.decoded(decoded, raw.get(), position, unit)
            }
            Frame::Line { text, position } => {
                match decode::decode(text, self.limits.max_record_bytes, unit.now) {
                    // Not one object after all (two on a line, a syntax error): the
                    // scanner says exactly what is there.
                    Err(DecodeError::Json(_)) => {
                        for frame in framing::frames_scanned(text.as_bytes()) {
                            self.frame(frame.shifted(position), unit);
                        }
                    }
                    decoded => self.decoded(decoded, text, position, unit),
                }
            }
        }
    }

    fn decoded(
        &self,
        decoded: Result<Decoded, DecodeError>,
        text: &str,
        position: Position,
        unit: &mut Unit<impl FnMut(Record)>,
    ) {
        match decoded {
            Ok(Decoded::Record(source)) => {
                let record = self.finish(source, text, unit.now, &unit.origin);
                (unit.emit)(record)
            }
            Ok(Decoded::Special(special)) => {
                self.special(&mut unit.dead, special, &unit.origin, position, text)
            }
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

    fn finish(
        &self,
        source: SourceRecord,
        raw: &str,
        now: chrono::DateTime<Utc>,
        origin: &Arc<Origin>,
    ) -> Record {
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
        if let SourceRecord::Entra(e) = &source {
            if e.kind() == EntraKind::Other {
                Metrics::add(&self.metrics.records_other_category, 1);
            }
        }
        let mut normalized = normalize::normalize(source, self.format, || fallback_id(raw), now);
        self.enrichment.apply(&mut normalized);
        serialize(normalized, Arc::clone(origin))
    }

    fn special(
        &self,
        out: &mut Vec<DeadLetter>,
        special: Special,
        origin: &Origin,
        position: Position,
        raw: &str,
    ) {
        let route = match special {
            Special::Digest => self.digest,
            Special::Insight => self.insight,
        };
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

/// Takes frames in chunks, and stops at the record limit.
struct Chunks<'a> {
    frames: framing::Frames<'a>,
    taken: usize,
    limit: usize,
    /// The input holds more frames than the limit.
    over: bool,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = Vec<Frame<'a>>;

    fn next(&mut self) -> Option<Vec<Frame<'a>>> {
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
            chunk.push(frame);
        }
        (!chunk.is_empty()).then_some(chunk)
    }
}

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

fn serialize(n: Normalized, origin: Arc<Origin>) -> Record {
    let mut outputs = Vec::with_capacity(2 + n.findings.len());
    if let Some(ecs) = &n.ecs {
        outputs.push(Output {
            format: Format::Ecs,
            body: ecs.to_vec(&n.source),
        });
    }
    if let Some(ocsf) = &n.ocsf {
        outputs.push(Output {
            format: Format::Ocsf,
            body: ocsf.to_vec(&n.source),
        });
    }
    for finding in &n.findings {
        outputs.push(Output {
            format: Format::OcsfFinding,
            // Serializing a map of JSON values cannot fail.
            body: serde_json::to_vec(finding).unwrap_or_default(),
        });
    }
    let (dataset, account) = match &n.source {
        SourceRecord::CloudTrail(r) => ("aws.cloudtrail", r.account_id()),
        SourceRecord::Entra(r) if r.kind().is_sign_in() => ("azure.signinlogs", r.str("tenantId")),
        SourceRecord::Entra(r) => ("azure.auditlogs", r.str("tenantId")),
    };
    Record {
        id: n.id,
        provider: n.source.provider(),
        dataset,
        account: account.map(str::to_string),
        time: n.source.time(),
        techniques: n.techniques,
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
        transformer().process_pieces(text.as_bytes(), &origin, emitters, &|l| {
            dead.lock().unwrap().extend(l)
        });
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
}
