//! Enrichment: stages that add context to normalized records before they are serialized.
//! Each stage sees the validated source record and may add to the ECS and OCSF documents
//! or raise OCSF findings.

pub mod credential;

use super::normalize::Normalized;

/// One enrichment stage.
pub trait Enricher: Send + Sync {
    fn enrich(&self, record: &mut Normalized);
}

/// The ordered list of stages a pipeline runs.
pub struct Enrichment {
    stages: Vec<Box<dyn Enricher>>,
}

impl Default for Enrichment {
    fn default() -> Self {
        Enrichment {
            stages: vec![Box::new(credential::CredentialType)],
        }
    }
}

impl Enrichment {
    pub fn apply(&self, record: &mut Normalized) {
        for stage in &self.stages {
            stage.enrich(record);
        }
    }
}
