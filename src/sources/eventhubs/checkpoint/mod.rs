//! Checkpoint stores behind the Event Hubs processor's `CheckpointStore` trait.

pub mod blob;
pub mod file;
