//! What a source hands to the pipeline: raw bytes, where they came from, and the
//! acknowledgement share that lets the source learn their fate.

use std::fmt;
use std::path::PathBuf;

use crate::ack::AckToken;

/// The cloud a record comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Aws,
    Azure,
    Gcp,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Aws => "aws",
            Provider::Azure => "azure",
            Provider::Gcp => "gcp",
        }
    }
}

/// Where a unit of input came from, precise enough for an operator to find it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File {
        path: PathBuf,
    },
    /// An object fetched because SQS message `message_id` pointed at it.
    S3 {
        bucket: String,
        key: String,
        message_id: String,
    },
    /// The body of an SQS message itself.
    Sqs {
        queue: String,
        message_id: String,
    },
    /// A Pub/Sub message.
    PubSub {
        subscription: String,
        message_id: String,
    },
    Inline {
        name: String,
    },
    EventHubs {
        hub: String,
        partition: String,
        sequence_number: i64,
        offset: String,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path } => write!(f, "file {}", path.display()),
            Origin::S3 {
                bucket,
                key,
                message_id,
            } => write!(f, "s3://{bucket}/{key} (sqs message {message_id})"),
            Origin::Sqs { queue, message_id } => write!(f, "sqs message {message_id} on {queue}"),
            Origin::PubSub {
                subscription,
                message_id,
            } => write!(f, "pub/sub message {message_id} on {subscription}"),
            Origin::Inline { name } => write!(f, "{name}"),
            Origin::EventHubs {
                hub,
                partition,
                sequence_number,
                offset,
            } => write!(
                f,
                "event hub {hub} partition {partition} sequence number {sequence_number} (offset {offset})"
            ),
        }
    }
}

/// Position of a record inside one input unit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    /// 1-based line where the top-level JSON value starts.
    pub line: u64,
    /// Byte offset (in the decompressed input) where the top-level JSON value starts.
    pub offset: u64,
    /// Index inside a `Records`/`records` array or a top-level array, when there is one.
    pub index: Option<u64>,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} (byte {})", self.line, self.offset)?;
        if let Some(i) = self.index {
            write!(f, ", record #{i}")?;
        }
        Ok(())
    }
}

/// One redeliverable unit of input (a file, a queue message, an event-hub event, a Pub/Sub
/// message).
#[derive(Debug)]
pub struct RawInput {
    pub origin: Origin,
    pub body: Body,
    pub ack: AckToken,
}

/// What an input holds.
#[derive(Debug)]
pub enum Body {
    /// Bytes already in memory (a queue message, a fetched object, an event).
    Bytes(Vec<u8>),
    /// A file, read piece by piece as it is transformed, never whole.
    File(PathBuf),
    /// A file a source wrote (an object too large to hold in memory), read like
    /// [`Body::File`] and removed when the input is dropped.
    Spooled(tempfile::TempPath),
}
