//! Sources: where raw input enters the pipeline, each with its own acknowledgement.

pub mod file;
pub mod sqs;
