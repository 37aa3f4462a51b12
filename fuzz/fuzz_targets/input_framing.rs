//! A whole input unit through the transform stage: gzip detection and caps, envelopes,
//! NDJSON and arrays, both decoders, normalization and enrichment.
#![no_main]
use std::sync::{Arc, OnceLock};

use auditbridge::event::Origin;
use auditbridge::keys::inventory::KeyInventory;
use auditbridge::metrics::Metrics;
use auditbridge::rules::RuleSet;
use auditbridge::transforms::enrich::Enrichment;
use auditbridge::transforms::normalize::OutputFormat;
use auditbridge::transforms::Transformer;
use libfuzzer_sys::fuzz_target;

fn transformer() -> &'static Transformer {
    static T: OnceLock<Transformer> = OnceLock::new();
    T.get_or_init(|| {
        let rules = Arc::new(RuleSet::builtin().expect("built-in rules load"));
        let enrichment = Enrichment::new(rules, Arc::new(KeyInventory::new(1000)), 90);
        let mut t = Transformer::new(OutputFormat::Both, enrichment, Arc::new(Metrics::default()));
        t.limits.max_decompressed_bytes = 8 << 20;
        t
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = transformer().process(
        data,
        &Origin::Inline {
            name: "fuzz".into(),
        },
    );
});
