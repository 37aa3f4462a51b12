//! The unit sinks receive: a normalized, enriched record already serialized in every
//! requested format. Only the transform stage builds one, from a validated source record.

use chrono::{DateTime, Utc};

use crate::event::Provider;

/// The format of one serialized document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Ecs,
    Ocsf,
    /// OCSF Detection Finding (class 2004) raised for the record.
    OcsfFinding,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Ecs => "ecs",
            Format::Ocsf => "ocsf",
            Format::OcsfFinding => "ocsf_finding",
        }
    }
}

/// One serialized JSON document (no trailing newline).
#[derive(Debug, Clone)]
pub struct Output {
    pub format: Format,
    pub body: Vec<u8>,
}

/// A record ready for delivery.
#[derive(Debug, Clone)]
pub struct Record {
    /// Stable id: CloudTrail `eventID`, Entra `properties.id`, or a hash of the input.
    pub id: String,
    pub provider: Provider,
    pub time: DateTime<Utc>,
    pub outputs: Vec<Output>,
}

impl Record {
    pub fn outputs_of(&self, format: Format) -> impl Iterator<Item = &Output> {
        self.outputs.iter().filter(move |o| o.format == format)
    }
}
