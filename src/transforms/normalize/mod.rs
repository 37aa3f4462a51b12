//! Normalization: one pass per record into ECS and/or OCSF documents.

pub mod document;
pub mod ecs;
pub mod entities;
pub mod field;
pub mod java_text;
pub mod json;
pub mod ocsf;
pub mod sections;
pub mod taxonomy;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::transforms::decode::{tree, AzureLog, SourceRecord};
use document::Document;

/// Which documents to build for every record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    Ecs,
    Ocsf,
    Both,
    /// Neither: only the vendor's record, with its tags.
    Raw,
}

impl OutputFormat {
    pub fn ecs(self) -> bool {
        matches!(self, OutputFormat::Ecs | OutputFormat::Both)
    }

    pub fn ocsf(self) -> bool {
        matches!(self, OutputFormat::Ocsf | OutputFormat::Both)
    }
}

/// A validated record with its documents under construction; enrichers add to them.
#[derive(Debug)]
pub struct Normalized<'a> {
    pub source: SourceRecord<'a>,
    pub id: String,
    pub ecs: Option<Document>,
    pub ocsf: Option<Document>,
    /// OCSF Detection Findings (class 2004) raised by enrichers for this record, as JSON
    /// text.
    pub findings: Vec<Bytes>,
    /// Context enrichers learn about the record (credential type, key age), which rules
    /// read as `context.…`, as they read the record. Made only for records a rule that
    /// reads it is tried on ([`RuleSet::may_read_context`](crate::rules::RuleSet::may_read_context)).
    pub context: tree::Map<'static>,
    /// The age of the credential behind the action, when the key inventory knows it.
    pub key_age_days: Option<i64>,
    /// ATT&CK technique ids the record was tagged with.
    pub techniques: Vec<String>,
    /// Ids of the rules that matched.
    pub rules: Vec<String>,
    pub now: DateTime<Utc>,
}

/// Build the requested documents for one record. `fallback_id` is asked for an id only
/// when the record carries none of its own.
pub fn normalize(
    source: SourceRecord<'_>,
    format: OutputFormat,
    fallback_id: impl FnOnce() -> String,
    now: DateTime<Utc>,
) -> Normalized<'_> {
    let (ecs, ocsf) = match &source {
        SourceRecord::CloudTrail(r) if r.is_insight() => (
            format.ecs().then(|| ecs::cloudtrail_insight(now)),
            format.ocsf().then(|| ocsf::cloudtrail_insight(now)),
        ),
        SourceRecord::CloudTrail(r) => {
            let tax = taxonomy::cloudtrail(r);
            (
                format.ecs().then(|| ecs::cloudtrail(r, &tax, now)),
                format.ocsf().then(|| ocsf::cloudtrail(&tax, now)),
            )
        }
        SourceRecord::Azure(r) if r.kind() == AzureLog::Activity => {
            let tax = taxonomy::activity(r);
            (
                format.ecs().then(|| ecs::azure_activity(r, &tax, now)),
                format.ocsf().then(|| ocsf::azure_activity(r, &tax, now)),
            )
        }
        SourceRecord::Azure(r) => {
            let tax = taxonomy::entra(r);
            (
                format.ecs().then(|| ecs::entra(r, &tax, now)),
                format.ocsf().then(|| ocsf::entra(r, &tax, now)),
            )
        }
        SourceRecord::Gcp(r) => (
            format.ecs().then(|| ecs::gcp_audit(r, now)),
            format
                .ocsf()
                .then(|| ocsf::gcp_audit(r, taxonomy::gcp(r), now)),
        ),
    };
    let id = source.id().map_or_else(fallback_id, str::to_string);
    Normalized {
        source,
        id,
        ecs,
        ocsf,
        findings: Vec::new(),
        context: tree::Map::new(),
        key_age_days: None,
        techniques: Vec::new(),
        rules: Vec::new(),
        now,
    }
}
