//! Helpers shared by the integration tests: the reference data in `../shared`, and the
//! checks every emitted document must pass (OCSF JSON Schema, ECS field names and types).

#![allow(dead_code)]

pub mod aws;
pub mod eventhubs;
pub mod hec;
pub mod kafka;
pub mod ocsf_rules;
pub mod pubsub;

use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use auditbridge::event::Origin;
use auditbridge::keys::inventory::KeyInventory;
use auditbridge::metrics::Metrics;
use auditbridge::record::{Format, Record};
use auditbridge::rules::RuleSet;
use auditbridge::transforms::enrich::Enrichment;
use auditbridge::transforms::normalize::OutputFormat;
use auditbridge::transforms::{Processed, Transformer};
use serde_json::Value;

pub fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The auditbridge binary, run from the repository root.
pub fn auditbridge() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_auditbridge"));
    c.current_dir(repo("."));
    c
}

/// `auditbridge run --config <config>` started in the background, its log in `log`.
pub fn spawn_run(config: &Path, log: &Path) -> std::process::Child {
    auditbridge()
        .args(["run", "--config"])
        .arg(config)
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// `auditbridge validate --check-sinks --config <path>`, run to completion.
pub fn validate_check_sinks(path: &std::path::Path) -> std::process::Output {
    auditbridge()
        .args(["validate", "--check-sinks", "--config"])
        .arg(path)
        .output()
        .unwrap()
}

/// A TCP port free on 127.0.0.1 right now (for an admin endpoint).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET `url` until its status and body satisfy `want` (or panic after `secs`); returns
/// the body.
pub async fn get_until(url: &str, secs: u64, want: impl Fn(u16, &str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut last = String::new();
    loop {
        if let Ok(r) = reqwest::get(url).await {
            let status = r.status().as_u16();
            let body = r.text().await.unwrap_or_default();
            if want(status, &body) {
                return body;
            }
            last = format!("HTTP {status}: {body}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{url} never reached the expected state; last: {last}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Poll `/health/ready` on `port` until its status and body satisfy `want`.
pub async fn readiness_until(port: u16, secs: u64, want: impl Fn(u16, &str) -> bool) -> String {
    get_until(&format!("http://127.0.0.1:{port}/health/ready"), secs, want).await
}

/// The value of one Prometheus sample line, e.g. `auditbridge_records_decoded_total`.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.split(' ').next() == Some(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A path in the shared reference data beside the checkout.
pub fn shared(path: &str) -> PathBuf {
    repo("../shared").join(path)
}

pub fn gunzip(path: &PathBuf) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_end(&mut out)
        .unwrap();
    out
}

pub fn transformer(format: OutputFormat) -> Transformer {
    Transformer::new(format, enrichment(), Arc::new(Metrics::default()))
}

pub fn builtin_rules() -> RuleSet {
    RuleSet::builtin().expect("built-in rules load")
}

/// Built-in rules, an empty key inventory and the default maximum key age.
pub fn enrichment() -> Enrichment {
    Enrichment::new(
        Arc::new(builtin_rules()),
        Arc::new(KeyInventory::new(10_000)),
        90,
    )
}

pub fn process(format: OutputFormat, bytes: &[u8]) -> Processed {
    transformer(format).process(
        bytes,
        &Origin::Inline {
            name: "test".into(),
        },
    )
}

pub fn doc(record: &Record, format: Format) -> Value {
    let out = record
        .outputs_of(format)
        .next()
        .unwrap_or_else(|| panic!("record {} has no {format:?} output", record.id));
    serde_json::from_slice(&out.body).unwrap()
}

/// Validates OCSF documents against their class schema and ECS documents against the
/// ECS field list.
pub struct Schemas {
    ocsf: HashMap<u64, jsonschema::Validator>,
    ecs: HashMap<String, String>,
}

const VENDOR_NAMESPACES: &[&str] = &["aws.cloudtrail", "azure", "gcp.audit", "auditbridge"];

/// Fields outside ECS that Elastic's integrations define in their own field lists, and that
/// Elastic's rules query, with their types: `related.entity` (the AWS integration's
/// identifiers of principals and resources, `keyword`).
const INTEGRATION_FIELDS: &[(&str, &str)] = &[("related.entity", "keyword")];

impl Schemas {
    pub fn load() -> Schemas {
        let mut ocsf = HashMap::new();
        for entry in std::fs::read_dir(repo("schemas/ocsf-1.8.0")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if !name.ends_with(".cloud-datetime.schema.json") {
                continue;
            }
            let class: u64 = name[..4].parse().unwrap();
            let schema: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            ocsf.insert(class, jsonschema::validator_for(&schema).unwrap());
        }
        let mut ecs = HashMap::new();
        let mut reader = csv::Reader::from_path(repo("schemas/ecs-9.4.0/fields.csv")).unwrap();
        for row in reader.records() {
            let row = row.unwrap();
            ecs.insert(row[3].to_string(), row[4].to_string());
        }
        for (field, ty) in INTEGRATION_FIELDS {
            ecs.insert(field.to_string(), ty.to_string());
        }
        Schemas { ocsf, ecs }
    }

    /// Every OCSF schema violation, as `path: message` lines.
    pub fn ocsf_errors(&self, doc: &Value) -> Vec<String> {
        let class = doc["class_uid"].as_u64().unwrap_or(0);
        let Some(validator) = self.ocsf.get(&class) else {
            return vec![format!("no schema for class_uid {class}")];
        };
        validator
            .iter_errors(doc)
            .map(|e| {
                let text = e.to_string();
                let short: String = text
                    .chars()
                    .rev()
                    .take(200)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                format!("{}: …{short}", e.instance_path())
            })
            .collect()
    }

    /// Every ECS field that does not exist or has a value of the wrong type.
    pub fn ecs_errors(&self, doc: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        if let Value::Object(map) = doc {
            for (k, v) in map {
                self.check_ecs(k, v, &mut errors);
            }
        }
        errors
    }

    fn check_ecs(&self, path: &str, value: &Value, errors: &mut Vec<String>) {
        if VENDOR_NAMESPACES
            .iter()
            .any(|ns| path == *ns || path.starts_with(&format!("{ns}.")))
        {
            return;
        }
        let ty = self.ecs.get(path).map(String::as_str);
        match value {
            Value::Object(map) => match ty {
                Some("object") | Some("flattened") => {}
                Some("geo_point") => {
                    if !(map.get("lat").is_some_and(Value::is_number)
                        && map.get("lon").is_some_and(Value::is_number))
                    {
                        errors.push(format!("{path}: geo_point needs numeric lat/lon"));
                    }
                }
                _ => {
                    for (k, v) in map {
                        self.check_ecs(&format!("{path}.{k}"), v, errors);
                    }
                }
            },
            Value::Array(items) => {
                for item in items {
                    self.check_ecs(path, item, errors);
                }
            }
            scalar => {
                let Some(ty) = ty else {
                    errors.push(format!("{path}: not an ECS field"));
                    return;
                };
                if !scalar_fits(ty, scalar) {
                    errors.push(format!("{path}: {scalar} is not a valid {ty}"));
                }
            }
        }
    }
}

fn scalar_fits(ty: &str, v: &Value) -> bool {
    match ty {
        "keyword" | "constant_keyword" | "wildcard" | "text" | "match_only_text" => v.is_string(),
        "long" | "integer" | "short" | "byte" | "unsigned_long" => v.is_i64() || v.is_u64(),
        "float" | "double" | "scaled_float" | "half_float" => v.is_number(),
        "boolean" => v.is_boolean(),
        "date" => v
            .as_str()
            .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
        "ip" => v.as_str().is_some_and(|s| s.parse::<IpAddr>().is_ok()),
        _ => false,
    }
}

/// The records of an input, after checking that none was dead-lettered and that every
/// document validates; `name` says which input failed.
pub fn valid_records(schemas: &Schemas, name: &str, bytes: &[u8]) -> Vec<Record> {
    let out = process(OutputFormat::Both, bytes);
    assert!(
        out.dead_letters.is_empty(),
        "{name}: {:?}",
        out.dead_letters.first()
    );
    let v = violations(schemas, &out.records);
    assert!(v.is_empty(), "{name}: {:#?}", &v[..v.len().min(10)]);
    out.records
}

/// Check every document of every record; returns the violations found.
pub fn violations(schemas: &Schemas, records: &[Record]) -> Vec<String> {
    let mut out = Vec::new();
    for r in records {
        for o in &r.outputs {
            let v: Value = serde_json::from_slice(&o.body).unwrap();
            let errs = match o.format {
                Format::Ecs => schemas.ecs_errors(&v),
                Format::Ocsf | Format::OcsfFinding => schemas.ocsf_errors(&v),
                // The vendor's own record: no schema of ours applies.
                Format::Raw => Vec::new(),
            };
            out.extend(
                errs.into_iter()
                    .map(|e| format!("{} {:?}: {e}", r.id, o.format)),
            );
        }
    }
    out
}

/// The CloudTrail corpus repeated until it holds at least `records` records, each copy
/// with its `eventID` rewritten (`<id>-<copy>-<line>`) so every record is distinct. One NDJSON
/// line per record; returns the text and the number of records.
pub fn replayed_corpus(records: usize) -> (String, usize) {
    let corpus = String::from_utf8(gunzip(&shared(
        "data/corpus/cloudtrail_real_union.ndjson.gz",
    )))
    .unwrap();
    let lines: Vec<Value> = corpus
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut out = String::new();
    let mut n = 0;
    let mut copy = 0;
    while n < records {
        for (i, line) in lines.iter().enumerate() {
            let mut v = line.clone();
            let id = v
                .get("eventID")
                .and_then(Value::as_str)
                .map_or(format!("line{i}"), str::to_string);
            v["eventID"] = Value::String(format!("{id}-{copy}-{i}"));
            out.push_str(&v.to_string());
            out.push('\n');
            n += 1;
        }
        copy += 1;
    }
    (out, n)
}

/// Run a pipeline from config text to completion; returns its metrics.
pub async fn run_pipeline(config: &str, dead_letters: &std::path::Path) -> Arc<Metrics> {
    let (metrics, result) = run_pipeline_result(config, dead_letters).await;
    result.unwrap();
    metrics
}

/// A pipeline started from config text: its metrics, the switch that stops it (like
/// SIGTERM), and the task that ends with its result.
pub struct Running {
    pub metrics: Arc<Metrics>,
    pub stop: tokio::sync::watch::Sender<bool>,
    pub task: tokio::task::JoinHandle<Result<(), auditbridge::pipeline::PipelineError>>,
}

pub fn start_pipeline(config: &str, dead_letters: &std::path::Path) -> Running {
    let config = auditbridge::config::Config::parse(config, "test").unwrap();
    let dlq = auditbridge::dead_letter::DeadLetterSink::file(dead_letters).unwrap();
    let pipeline = auditbridge::pipeline::Pipeline::new(&config, dlq).unwrap();
    let metrics = pipeline.metrics();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(pipeline.run(stop_rx));
    Running {
        metrics,
        stop,
        task,
    }
}

/// Run a pipeline from config text to completion; returns its metrics and how it ended.
pub async fn run_pipeline_result(
    config: &str,
    dead_letters: &std::path::Path,
) -> (
    Arc<Metrics>,
    Result<(), auditbridge::pipeline::PipelineError>,
) {
    let running = start_pipeline(config, dead_letters);
    let result = running.task.await.unwrap();
    (running.metrics, result)
}

/// Every vendor record in `path` (a file or a directory, read recursively), parsed
/// independently of auditbridge: a gzip or plain file holding a JSON array, a
/// `{"Records"|"records": […]}` envelope, one object, or NDJSON.
pub fn vendor_records(path: &Path) -> Vec<Value> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        return entries.iter().flat_map(|p| vendor_records(p)).collect();
    }
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        gunzip(&path.to_path_buf())
    } else {
        std::fs::read(path).unwrap()
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Array(items)) => items,
        Ok(Value::Object(mut o)) => match o.remove("Records").or_else(|| o.remove("records")) {
            Some(Value::Array(items)) => items,
            _ => vec![Value::Object(o)],
        },
        _ => String::from_utf8(bytes)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
    }
}
