//! The null-sink baseline the Kafka and HEC benches share.

/// The pipeline text for `input` → ECS → a sink that costs nothing (the `file` sink on
/// /dev/null, a device, so nothing is synced): the baseline a sink's own cost is measured
/// against.
pub fn pipeline(input: &std::path::Path) -> String {
    format!(
        "[pipeline]\nformat = \"ecs\"\n[sources.in]\ntype = \"file\"\npaths = [\"{}\"]\n[sinks.null]\ntype = \"file\"\npath = \"/dev/null\"\n",
        input.display()
    )
}
