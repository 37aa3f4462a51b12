//! Configuration: TOML, unknown keys rejected, `${ENV_VAR}` interpolation in strings.
//!
//! The file is checked twice: first as written (so errors point at a line and never
//! contain an interpolated secret), then after interpolation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::admin::AdminConfig;
pub use crate::dead_letter::DeadLetterConfig;
use crate::dedup::DedupConfig;
pub use crate::keys::KeysConfig;
pub use crate::pipeline::PipelineConfig;
use crate::record::Format;
pub use crate::rules::RulesConfig;
use crate::sinks::kafka::KafkaSinkConfig;
use crate::sinks::splunk_hec::SplunkHecConfig;
use crate::sources::eventhubs::EventHubsSourceConfig;
use crate::sources::gcp_pubsub::GcpPubsubSourceConfig;
use crate::sources::sqs::SqsSourceConfig;
use crate::telemetry::TelemetryConfig;
pub use crate::transforms::enrich::EnrichConfig;
use crate::transforms::normalize::OutputFormat;
pub use crate::transforms::settings::{InsightRoute, Limits, Routing, SpecialRoute};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {origin} is invalid: {message}")]
    Parse { origin: String, message: String },
    #[error(
        "config {origin}: `{key}` refers to environment variable `{var}`, which is not set; \
         export it or give a default with `${{{var}:-default}}`"
    )]
    MissingEnv {
        origin: String,
        key: String,
        var: String,
    },
    #[error("config {origin}: `{key}` {message}")]
    Invalid {
        origin: String,
        key: String,
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub pipeline: PipelineConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub routing: Routing,
    #[serde(default)]
    pub dead_letter: DeadLetterConfig,
    #[serde(default)]
    pub rules: RulesConfig,
    #[serde(default)]
    pub keys: KeysConfig,
    #[serde(default)]
    pub enrich: EnrichConfig,
    #[serde(default)]
    pub dedup: DedupConfig,
    /// The admin HTTP endpoint (health, Prometheus metrics); off when absent.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// Logs, and OpenTelemetry export over OTLP.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    pub sources: BTreeMap<String, SourceConfig>,
    pub sinks: BTreeMap<String, SinkConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// Files, directories (read recursively) and glob patterns.
    File { paths: Vec<String> },
    /// CloudTrail through an SQS queue (S3, SNS and EventBridge notifications).
    Sqs(SqsSourceConfig),
    /// Entra ID logs from an Azure Event Hub (diagnostic settings).
    Eventhubs(Box<EventHubsSourceConfig>),
    /// Cloud Audit Logs from a Pub/Sub subscription (a Log Router sink's topic).
    GcpPubsub(GcpPubsubSourceConfig),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    /// NDJSON on standard output.
    Stdout {
        #[serde(default)]
        formats: Option<Vec<Format>>,
    },
    /// NDJSON appended to a file.
    File {
        path: PathBuf,
        #[serde(default)]
        formats: Option<Vec<Format>>,
    },
    /// Apache Kafka (or a compatible broker).
    Kafka(KafkaSinkConfig),
    /// Splunk HTTP Event Collector.
    SplunkHec(SplunkHecConfig),
}

impl SinkConfig {
    fn formats(&self) -> Option<&[Format]> {
        match self {
            SinkConfig::Stdout { formats } | SinkConfig::File { formats, .. } => formats.as_deref(),
            SinkConfig::Kafka(k) => k.formats.as_deref(),
            SinkConfig::SplunkHec(h) => h.formats.as_deref(),
        }
    }
}

/// The formats a sink receives: the configured ones, or else everything the pipeline
/// builds. Splunk HEC gets the vendor's record by default: the sourcetypes Splunk's
/// add-ons extract fields from (`aws:cloudtrail`, `azure:monitor:aad`) expect it.
pub fn sink_formats(sink: &SinkConfig, produced: OutputFormat) -> Vec<Format> {
    match sink.formats() {
        Some(f) => f.to_vec(),
        None if matches!(sink, SinkConfig::SplunkHec(_)) => vec![Format::Raw],
        None => {
            let mut all = Vec::new();
            if produced == OutputFormat::Raw {
                all.push(Format::Raw);
            }
            if produced.ecs() {
                all.push(Format::Ecs);
            }
            if produced.ocsf() {
                all.push(Format::Ocsf);
                all.push(Format::OcsfFinding);
            }
            all
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let parse_err = |e: toml::de::Error| ConfigError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        };
        // Checked as written first: precise messages, and no secret can be in them.
        toml::from_str::<Config>(text).map_err(parse_err)?;
        let mut table: toml::Table = toml::from_str(text).map_err(parse_err)?;
        interpolate_table(&mut table, "", origin)?;
        let config: Config = table.try_into().map_err(|_| ConfigError::Parse {
            origin: origin.to_string(),
            message: "a value taken from the environment has the wrong type for its key".into(),
        })?;
        config.check(origin)?;
        Ok(config)
    }

    fn check(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            origin: origin.to_string(),
            key: key.to_string(),
            message,
        };
        if self.sources.is_empty() {
            return Err(invalid(
                "sources",
                "needs at least one source, e.g. [sources.logs] type = \"file\"".into(),
            ));
        }
        if self.sinks.is_empty() {
            return Err(invalid(
                "sinks",
                "needs at least one sink, e.g. [sinks.out] type = \"stdout\"".into(),
            ));
        }
        if self.pipeline.workers == 0 {
            return Err(invalid("pipeline.workers", "must be at least 1".into()));
        }
        if self.pipeline.batch_size == 0 {
            return Err(invalid("pipeline.batch_size", "must be at least 1".into()));
        }
        if self.pipeline.max_in_flight_batches == 0 {
            return Err(invalid(
                "pipeline.max_in_flight_batches",
                "must be at least 1".into(),
            ));
        }
        if self.pipeline.max_in_flight_bytes == 0 {
            return Err(invalid(
                "pipeline.max_in_flight_bytes",
                "must be at least 1".into(),
            ));
        }
        for (name, source) in &self.sources {
            match source {
                SourceConfig::File { paths } if paths.is_empty() => {
                    return Err(invalid(
                        &format!("sources.{name}.paths"),
                        "must name at least one file, directory or glob".into(),
                    ));
                }
                SourceConfig::Sqs(s) if !(1..=10).contains(&s.max_messages) => {
                    return Err(invalid(
                        &format!("sources.{name}.max_messages"),
                        "must be between 1 and 10 (the SQS limit)".into(),
                    ));
                }
                SourceConfig::Sqs(s) if s.visibility_timeout_secs < 2 => {
                    return Err(invalid(
                        &format!("sources.{name}.visibility_timeout_secs"),
                        "must be at least 2".into(),
                    ));
                }
                SourceConfig::Eventhubs(e) => {
                    if let Err((key, message)) = e.check() {
                        return Err(invalid(&format!("sources.{name}.{key}"), message));
                    }
                }
                SourceConfig::GcpPubsub(p) => {
                    if let Err((key, message)) = p.check() {
                        return Err(invalid(&format!("sources.{name}.{key}"), message));
                    }
                }
                _ => {}
            }
        }
        for (key, cleartext, opted_in) in self.cleartext_connections() {
            if !opted_in {
                let (fix, opt_in) = cleartext_fix(&key);
                return Err(invalid(&key, cleartext.refusal(fix, &opt_in)));
            }
        }
        if self.dead_letter.is_stdout() {
            if let Some(name) = self
                .sinks
                .iter()
                .find_map(|(name, sink)| matches!(sink, SinkConfig::Stdout { .. }).then_some(name))
            {
                return Err(invalid(
                    "dead_letter.path",
                    format!(
                        "is `-` (standard output), which sink `{name}` writes records to; \
                         give the dead letters a file, or the records another sink"
                    ),
                ));
            }
        }
        let produced = self.pipeline.format;
        for (name, sink) in &self.sinks {
            for f in sink.formats().unwrap_or(&[]) {
                let ok = match f {
                    Format::Ecs => produced.ecs(),
                    Format::Ocsf | Format::OcsfFinding => produced.ocsf(),
                    // Built whenever a sink asks for it.
                    Format::Raw => true,
                };
                if !ok {
                    return Err(invalid(
                        &format!("sinks.{name}.formats"),
                        format!(
                            "asks for `{}`, which pipeline.format = {:?} does not build",
                            f.as_str(),
                            produced
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Config {
    /// Connections that send a secret without TLS to another machine, with the key that
    /// sets each and whether the user opted in to it.
    fn cleartext_connections(&self) -> Vec<(String, crate::cleartext::Cleartext, bool)> {
        use crate::cleartext;
        use crate::sources::eventhubs::config::CheckpointStoreConfig;
        let mut found = Vec::new();
        for (name, sink) in &self.sinks {
            match sink {
                SinkConfig::SplunkHec(h) => {
                    if let Some(c) = cleartext::url(&h.endpoint, "http", "HEC token") {
                        found.push((format!("sinks.{name}.endpoint"), c, h.allow_cleartext_token));
                    }
                }
                SinkConfig::Kafka(k) => {
                    let protocol = k.properties.get("security.protocol");
                    if let Some(c) = cleartext::kafka(protocol, &k.brokers) {
                        found.push((
                            format!("sinks.{name}.properties.security.protocol"),
                            c,
                            k.allow_cleartext_credentials,
                        ));
                    }
                }
                _ => {}
            }
        }
        for (name, source) in &self.sources {
            if let SourceConfig::Eventhubs(e) = source {
                if let CheckpointStoreConfig::Blob(b) = &e.checkpoint_store {
                    if let Some(c) = b.cleartext() {
                        found.push((
                            format!("sources.{name}.checkpoint_store"),
                            c,
                            b.allow_cleartext_key,
                        ));
                    }
                }
            }
        }
        if let Some(c) = self.telemetry.cleartext() {
            found.push((
                "telemetry.otlp_endpoint".into(),
                c,
                self.telemetry.allow_cleartext_headers,
            ));
        }
        found
    }

    /// What the user allowed to go in cleartext, one line each: logged at every start.
    pub fn cleartext_opt_ins(&self) -> Vec<String> {
        self.cleartext_connections()
            .into_iter()
            .filter(|(_, _, opted_in)| *opted_in)
            .map(|(key, c, _)| {
                format!(
                    "{key}: the {} goes in cleartext to {} (allowed by configuration); anyone on the network path can read it",
                    c.secret, c.host
                )
            })
            .collect()
    }
}

/// How to fix a refused cleartext connection set at `key`, and the opt-in that allows it.
fn cleartext_fix(key: &str) -> (&'static str, String) {
    let component = |suffix: &str| key.strip_suffix(suffix).unwrap_or(key).to_string();
    if key.ends_with(".endpoint") && key.starts_with("sinks.") {
        (
            "use an https:// endpoint",
            format!("{}.allow_cleartext_token", component(".endpoint")),
        )
    } else if key.ends_with(".properties.security.protocol") {
        (
            "use security.protocol = SASL_SSL",
            format!(
                "{}.allow_cleartext_credentials",
                component(".properties.security.protocol")
            ),
        )
    } else if key.ends_with(".checkpoint_store") {
        (
            "use DefaultEndpointsProtocol=https (or an https:// account_url)",
            format!("{key}.allow_cleartext_key"),
        )
    } else {
        (
            "use an https:// collector",
            "telemetry.allow_cleartext_headers".into(),
        )
    }
}

fn interpolate_table(
    table: &mut toml::Table,
    prefix: &str,
    origin: &str,
) -> Result<(), ConfigError> {
    for (key, value) in table.iter_mut() {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        interpolate_value(value, &path, origin)?;
    }
    Ok(())
}

fn interpolate_value(value: &mut toml::Value, path: &str, origin: &str) -> Result<(), ConfigError> {
    match value {
        toml::Value::String(s) => *s = interpolate(s, path, origin)?,
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_value(item, &format!("{path}[{i}]"), origin)?;
            }
        }
        toml::Value::Table(t) => interpolate_table(t, path, origin)?,
        _ => {}
    }
    Ok(())
}

/// Replace `${NAME}` and `${NAME:-default}`; `$$` stands for a literal `$`.
pub fn interpolate(s: &str, key: &str, origin: &str) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                out.push_str(&rest[i..]);
                return Ok(out);
            };
            let expr = &body[..end];
            let (var, default) = match expr.split_once(":-") {
                Some((v, d)) => (v, Some(d)),
                None => (expr, None),
            };
            match (std::env::var(var), default) {
                (Ok(v), _) => out.push_str(&v),
                (Err(_), Some(d)) => out.push_str(d),
                (Err(_), None) => {
                    return Err(ConfigError::MissingEnv {
                        origin: origin.to_string(),
                        key: key.to_string(),
                        var: var.to_string(),
                    })
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str =
        "[sources.in]\ntype = \"file\"\npaths = [\"samples\"]\n[sinks.out]\ntype = \"stdout\"\n";

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::parse(MINIMAL, "test").unwrap();
        assert_eq!(c.pipeline.format, OutputFormat::Both);
        assert_eq!(c.routing.digest, SpecialRoute::Skip);
        assert_eq!(c.routing.insight, InsightRoute::Normalize);
        assert_eq!(c.limits.max_decompressed_bytes, 1 << 30);
        assert_eq!(c.pipeline.max_in_flight_bytes, 32 << 20);
    }

    #[test]
    fn a_byte_budget_of_nothing_is_refused() {
        let text = format!("[pipeline]\nmax_in_flight_bytes = 0\n{MINIMAL}");
        let err = Config::parse(&text, "test").unwrap_err().to_string();
        assert!(
            err.contains("pipeline.max_in_flight_bytes") && err.contains("must be at least 1"),
            "{err}"
        );
    }

    #[test]
    fn secrets_in_cleartext_to_another_machine_are_refused_unless_allowed() {
        let source = "[sources.in]\ntype = \"file\"\npaths = [\"samples\"]\n";
        let hec = |endpoint: &str, extra: &str| {
            format!("{source}[sinks.hec]\ntype = \"splunk_hec\"\nendpoint = \"{endpoint}\"\ntoken = \"t\"\n{extra}")
        };
        let err = Config::parse(&hec("http://splunk.example.com:8088", ""), "test")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "config test: `sinks.hec.endpoint` sends the HEC token in cleartext to splunk.example.com, where anyone on the network path can read it and use it; use an https:// endpoint, or set sinks.hec.allow_cleartext_token = true if that network is trusted (it is then logged at every start)"
        );
        assert!(Config::parse(&hec("http://127.0.0.1:8088", ""), "test").is_ok());
        assert!(Config::parse(&hec("https://splunk.example.com:8088", ""), "test").is_ok());
        let allowed = Config::parse(
            &hec(
                "http://splunk.example.com:8088",
                "allow_cleartext_token = true\n",
            ),
            "test",
        )
        .unwrap();
        assert_eq!(
            allowed.cleartext_opt_ins(),
            ["sinks.hec.endpoint: the HEC token goes in cleartext to splunk.example.com (allowed by configuration); anyone on the network path can read it"]
        );

        let kafka = |brokers: &str, extra: &str| {
            format!("{source}[sinks.k]\ntype = \"kafka\"\nbrokers = \"{brokers}\"\n{extra}[sinks.k.properties]\n\"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.mechanisms\" = \"PLAIN\"\n")
        };
        let err = Config::parse(&kafka("kafka-1.internal:9092", ""), "test")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("config test: `sinks.k.properties.security.protocol` sends the SASL credentials in cleartext to kafka-1.internal"),
            "{err}"
        );
        assert!(err.contains("use security.protocol = SASL_SSL, or set sinks.k.allow_cleartext_credentials = true"), "{err}");
        assert!(Config::parse(&kafka("localhost:9092", ""), "test").is_ok());
        assert!(Config::parse(
            &kafka(
                "kafka-1.internal:9092",
                "allow_cleartext_credentials = true\n"
            ),
            "test"
        )
        .is_ok());

        let blob = |connection: &str, extra: &str| {
            format!("[sources.eh]\ntype = \"eventhubs\"\nnamespace = \"ns.servicebus.windows.net\"\nevent_hub = \"h\"\n[sources.eh.auth]\nmethod = \"connection_string\"\nconnection_string = \"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=s\"\n[sources.eh.checkpoint_store]\ntype = \"blob\"\ncontainer = \"c\"\nconnection_string = \"{connection}\"\n{extra}[sinks.out]\ntype = \"stdout\"\n")
        };
        let err = Config::parse(
            &blob(
                "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=k",
                "",
            ),
            "test",
        );
        match err {
            Err(e) => {
                let e = e.to_string();
                assert!(e.starts_with("config test: `sources.eh.checkpoint_store` sends the storage account's signed requests in cleartext to acct.blob.core.windows.net"), "{e}");
                assert!(
                    e.contains("sources.eh.checkpoint_store.allow_cleartext_key = true"),
                    "{e}"
                );
                assert!(!e.contains("AccountKey"), "no secret in the message: {e}");
            }
            Ok(_) => panic!("an http storage account was accepted"),
        }
        assert!(Config::parse(
            &blob(
                "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=k",
                "allow_cleartext_key = true\n"
            ),
            "test"
        )
        .is_ok());
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let text = format!("{MINIMAL}[pipeline]\nfromat = \"ecs\"\n");
        let err = Config::parse(&text, "test").unwrap_err().to_string();
        assert!(err.contains("unknown field `fromat`"), "{err}");
        assert!(err.contains("line 7"), "{err}");
    }

    #[test]
    fn env_interpolation_and_missing_variable() {
        std::env::set_var("AUDITBRIDGE_TEST_DLQ", "/tmp/dlq.ndjson");
        let text = format!("{MINIMAL}[dead_letter]\npath = \"${{AUDITBRIDGE_TEST_DLQ}}\"\n");
        let c = Config::parse(&text, "test").unwrap();
        assert_eq!(c.dead_letter.path, PathBuf::from("/tmp/dlq.ndjson"));
        let text = format!("{MINIMAL}[dead_letter]\npath = \"${{AUDITBRIDGE_TEST_UNSET_VAR}}\"\n");
        let err = Config::parse(&text, "test").unwrap_err().to_string();
        assert!(
            err.contains("`dead_letter.path`") && err.contains("AUDITBRIDGE_TEST_UNSET_VAR"),
            "{err}"
        );
        assert_eq!(
            interpolate("a$$b${AUDITBRIDGE_TEST_UNSET_VAR:-x}", "k", "t").unwrap(),
            "a$bx"
        );
    }

    #[test]
    fn sink_format_must_be_built() {
        let text = "[pipeline]\nformat = \"ecs\"\n[sources.in]\ntype = \"file\"\npaths = [\"x\"]\n[sinks.out]\ntype = \"stdout\"\nformats = [\"ocsf\"]\n";
        let err = Config::parse(text, "test").unwrap_err().to_string();
        assert!(err.contains("sinks.out.formats"), "{err}");
    }

    #[test]
    fn dead_letters_on_stdout_cannot_share_it_with_a_stdout_sink() {
        let sources = "[sources.in]\ntype = \"file\"\npaths = [\"x\"]\n";
        let text =
            format!("[dead_letter]\npath = \"-\"\n{sources}[sinks.out]\ntype = \"stdout\"\n");
        let err = Config::parse(&text, "test").unwrap_err().to_string();
        assert_eq!(
            err,
            "config test: `dead_letter.path` is `-` (standard output), which sink `out` writes \
             records to; give the dead letters a file, or the records another sink"
        );
        let text = format!(
            "[dead_letter]\npath = \"-\"\n{sources}[sinks.out]\ntype = \"file\"\npath = \"o\"\n"
        );
        assert!(Config::parse(&text, "test")
            .unwrap()
            .dead_letter
            .is_stdout());
    }
}
