//! The transform stage's settings: how much one input may hold, and where inputs that are
//! recognised but are not activity records go.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest input after decompression (gzip bombs stop here).
    pub max_decompressed_bytes: u64,
    /// Largest single record.
    pub max_record_bytes: usize,
    /// Most records one input (file, object, message) may hold.
    pub max_records_per_input: usize,
    /// Most records of one input that may be dead-lettered: past it the rest of the input
    /// is not read, so a small object of a million bad lines cannot become a million dead
    /// letters.
    pub max_invalid_records_per_input: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_decompressed_bytes: 1 << 30,
            max_record_bytes: 4 << 20,
            max_records_per_input: 5_000_000,
            max_invalid_records_per_input: 100_000,
        }
    }
}

/// What to do with inputs that are recognised but are not activity records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpecialRoute {
    /// Count and drop.
    Skip,
    /// Write to the dead-letter destination with the reason.
    DeadLetter,
}

/// What to do with CloudTrail Insight events: anomaly summaries CloudTrail writes about
/// unusual API call or error rates, not API calls themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InsightRoute {
    /// Build documents for them (ECS as Elastic indexes them, an OCSF Detection Finding).
    #[default]
    Normalize,
    /// Count and drop.
    Skip,
    /// Write to the dead-letter destination with the reason.
    DeadLetter,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Routing {
    /// CloudTrail digest files.
    pub digest: SpecialRoute,
    /// CloudTrail Insight events.
    pub insight: InsightRoute,
}

impl Default for Routing {
    fn default() -> Self {
        Routing {
            digest: SpecialRoute::Skip,
            insight: InsightRoute::Normalize,
        }
    }
}
