//! auditbridge: AWS CloudTrail, Microsoft Entra ID, Azure Activity Log and Google Cloud
//! audit logs → ECS and OCSF, tagged with MITRE ATT&CK, delivered at least once.
//!
//! Data flows `sources` → `transforms` (decode, normalize, enrich) → `sinks`; `pipeline`
//! wires them together and `ack` carries each input's acknowledgement along.

pub mod ack;
pub mod admin;
#[cfg(not(fuzzing))]
mod allocator;
pub mod budget;
#[cfg(not(fuzzing))]
pub use allocator::configure as configure_memory;
pub mod cleartext;
pub mod config;
pub mod dead_letter;
pub mod dedup;
pub mod event;
pub mod google_auth;
pub mod keys;
pub mod metrics;
pub mod pipeline;
pub mod record;
pub mod rules;
pub mod secrets;
pub mod sinks;
pub mod sources;
pub mod supervisor;
pub mod telemetry;
pub mod transforms;

// The transform stage allocates and frees many small strings per record; mimalloc does
// that in a fraction of glibc's instructions (see BENCHMARKS.md). Declared here so the
// binary, the tests and the benchmarks all run on it; fuzz builds keep the sanitizer's
// allocator.
#[cfg(not(fuzzing))]
#[global_allocator]
static ALLOCATOR: allocator::Allocator = allocator::Allocator;
