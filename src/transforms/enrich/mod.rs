//! Enrichment: stages that add context to normalized records before they are serialized.
//! Each stage sees the validated source record and may add to the ECS and OCSF documents
//! or raise OCSF findings.

pub mod attack;
pub mod credential;

use std::sync::Arc;

use super::normalize::Normalized;
use crate::rules::RuleSet;

/// One enrichment stage.
pub trait Enricher: Send + Sync {
    fn enrich(&self, record: &mut Normalized);
}

/// The ordered list of stages a pipeline runs.
pub struct Enrichment {
    stages: Vec<Box<dyn Enricher>>,
}

impl Enrichment {
    /// Credential context first, so the rules can match on it, then ATT&CK tagging.
    pub fn new(rules: Arc<RuleSet>) -> Self {
        Enrichment {
            stages: vec![
                Box::new(credential::CredentialType),
                Box::new(attack::AttackTagger::new(rules)),
            ],
        }
    }

    pub fn apply(&self, record: &mut Normalized) {
        for stage in &self.stages {
            stage.enrich(record);
        }
    }
}
