//! Sinks: where records leave the pipeline. A sink resolves each record's acknowledgement
//! only once the destination has accepted it.

pub mod file;
pub mod ndjson;
pub mod stdout;

use std::sync::Arc;

use crate::ack::AckToken;
use crate::record::Record;

/// Records handed to one sink, each with its own acknowledgement share
/// (`acks[i]` belongs to `records[i]`).
pub struct SinkBatch {
    pub records: Arc<[Record]>,
    pub acks: Vec<AckToken>,
}
