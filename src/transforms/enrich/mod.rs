//! Enrichment: stages that add context to normalized records before they are serialized.
//! Each stage sees the validated source record and may add to the ECS and OCSF documents
//! or raise OCSF findings.

pub mod attack;
pub mod geoip;
pub mod key_age;
pub mod user_agent;

use std::sync::Arc;

use super::normalize::Normalized;
use crate::keys::inventory::KeyInventory;
use crate::rules::RuleSet;

/// The `[enrich]` settings: enrichment that costs enough to be asked for.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrichConfig {
    /// Parse user agents into `user_agent.name`, `.version`, `.os.*`, `.device.name`.
    pub user_agent: bool,
    /// A GeoLite2/GeoIP2 City database (`.mmdb`) for `source.geo.*`.
    pub geoip_city: Option<std::path::PathBuf>,
    /// A GeoLite2/GeoIP2 ASN database (`.mmdb`) for `source.as.*`.
    pub geoip_asn: Option<std::path::PathBuf>,
}

/// One enrichment stage.
pub trait Enricher: Send + Sync {
    fn enrich(&self, record: &mut Normalized);
}

/// The ordered list of stages a pipeline runs.
pub struct Enrichment {
    stages: Vec<Box<dyn Enricher>>,
}

impl Enrichment {
    /// Key age first, so the rules can match on it, then ATT&CK tagging.
    pub fn new(rules: Arc<RuleSet>, keys: Arc<KeyInventory>, max_key_age_days: i64) -> Self {
        Enrichment {
            stages: vec![
                Box::new(key_age::KeyAge::new(
                    keys,
                    max_key_age_days,
                    Arc::clone(&rules),
                )),
                Box::new(attack::AttackTagger::new(rules)),
            ],
        }
    }

    /// Also parse user agents (`enrich.user_agent`).
    pub fn with_user_agent(mut self) -> Self {
        self.stages.push(Box::new(user_agent::UserAgent::build()));
        self
    }

    /// Also add location and network owner of the source address.
    pub fn with_geoip(mut self, geoip: geoip::GeoIp) -> Self {
        self.stages.push(Box::new(geoip));
        self
    }

    /// Every stage over each of `group`'s records, one stage at a time across the group,
    /// in the group's order: a stage's code stays in the instruction cache for the whole
    /// group, as the writers' does. A record's stages still run in order, and a stage
    /// sees the records in the order they came (key age learns keys from earlier records).
    /// `record` finds the record in each of the group's items.
    pub fn apply<'a, T>(
        &self,
        group: &mut [T],
        record: for<'x> fn(&'x mut T) -> &'x mut Normalized<'a>,
    ) {
        for stage in &self.stages {
            for item in group.iter_mut() {
                stage.enrich(record(item));
            }
        }
    }
}
