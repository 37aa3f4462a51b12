//! The transform stage: decode → normalize → enrich → serialize, for one input unit.
//! Synchronous and CPU-bound; the pipeline runs it on blocking threads.

pub mod decode;
pub mod enrich;
pub mod normalize;
pub mod settings;

use std::sync::Arc;

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
        let dead_letters = self.process_pieces(bytes, origin, vec![|r| records.push(r)]);
        Processed {
            records,
            dead_letters,
        }
    }

    /// Hands each record to an emitter as soon as it is built, so a large file never has
    /// all its records in memory at once, and uses one thread per emitter: a unit of at
    /// least `2 × MIN_PIECE` records is cut into contiguous pieces, up to one per emitter,
    /// transformed at once. One large file (a replay, a month's export) would otherwise
    /// keep one core busy while the others idle. Each piece's records reach its emitter in
    /// input order; pieces interleave. Returns the dead letters, in input order.
    pub fn process_pieces<E: FnMut(Record) + Send>(
        &self,
        bytes: &[u8],
        origin: &Origin,
        mut emitters: Vec<E>,
    ) -> Vec<DeadLetter> {
        Metrics::add(&self.metrics.inputs, 1);
        let mut dead = Vec::new();
        let input = match framing::open(bytes, self.limits.max_decompressed_bytes) {
            Ok(input) => input,
            Err(err) => {
                let kind = match err {
                    framing::OpenError::Gzip(_) => "invalid_gzip",
                    framing::OpenError::TooLarge { .. } => "too_large",
                };
                self.dead(&mut dead, kind, err.to_string(), origin, None, bytes);
                return dead;
            }
        };
        let mut frames = framing::frames(&input);
        if frames.len() > self.limits.max_records_per_input {
            let reason = format!(
                "input holds {} records, over the limit of {} (limits.max_records_per_input)",
                frames.len(),
                self.limits.max_records_per_input
            );
            self.dead(&mut dead, "too_many_records", reason, origin, None, bytes);
            return dead;
        }
        let pieces = emitters.len().min(frames.len() / MIN_PIECE).max(1);
        let per_piece = frames.len().div_ceil(pieces);
        let mut cut = Vec::with_capacity(pieces);
        while frames.len() > per_piece {
            cut.push(frames.split_off(frames.len() - per_piece));
        }
        cut.push(frames);
        cut.reverse();
        emitters.truncate(pieces);
        let origin = Arc::new(origin.clone());
        let now = Utc::now();
        let piece = |frames: Vec<Frame<'_>>, emit: E| {
            let mut unit = Unit {
                origin: Arc::clone(&origin),
                now,
                dead: Vec::new(),
                emit,
            };
            for frame in frames {
                self.frame(frame, &mut unit);
            }
            unit.dead
        };
        let piece = &piece;
        std::thread::scope(|scope| {
            let mut work = cut.into_iter().zip(emitters);
            let first = work.next();
            let others: Vec<_> = work
                .map(|(frames, emit)| scope.spawn(move || piece(frames, emit)))
                .collect();
            if let Some((frames, emit)) = first {
                dead.extend(piece(frames, emit));
            }
            for other in others {
                // A panic is the worker's, as if it had transformed the piece itself.
                dead.extend(
                    other
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                );
            }
        });
        dead
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

/// Records below which a unit is not cut into pieces: a thread costs more than it saves.
pub const MIN_PIECE: usize = 1_000;

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
    fn a_large_unit_is_cut_into_contiguous_pieces_one_per_emitter() {
        let records = 2 * MIN_PIECE + 500;
        let bad_line = MIN_PIECE + 700;
        let text: String = (1..=records)
            .map(|n| match n {
                n if n == bad_line => "{\"eventName\": }\n".to_string(),
                n => format!("{{\"eventName\":\"A\",\"eventSource\":\"s\",\"eventID\":\"{n}\"}}\n"),
            })
            .collect();
        let (mut first, mut second, mut third) = (Vec::new(), Vec::new(), Vec::new());
        let emitters: Vec<Box<dyn FnMut(Record) + Send>> = vec![
            Box::new(|r: Record| first.push(r.id)),
            Box::new(|r: Record| second.push(r.id)),
            Box::new(|r: Record| third.push(r.id)),
        ];
        let origin = Origin::Inline {
            name: "test".into(),
        };
        let dead = transformer().process_pieces(text.as_bytes(), &origin, emitters);
        let ids = |range: std::ops::RangeInclusive<usize>| -> Vec<String> {
            range
                .filter(|n| *n != bad_line)
                .map(|n| n.to_string())
                .collect()
        };
        // Two pieces: 2,500 records make two of at least MIN_PIECE, not three.
        assert_eq!(first, ids(1..=1250));
        assert_eq!(second, ids(1251..=records));
        assert!(third.is_empty());
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].position.map(|p| p.line), Some(bad_line as u64));
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
