//! OpenTelemetry export over OTLP/HTTP: the metric contract (the same samples `/metrics`
//! serves, under dotted names) and one span per input unit, from its receipt to its
//! acknowledgement (`ack.rs` opens and ends it).
//!
//! Endpoint and protocol come from `[telemetry]` or, when absent there, from the standard
//! `OTEL_EXPORTER_OTLP_*` environment variables.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::metrics::MeterProvider;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{MetricExporter, Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use serde::Deserialize;

use crate::metrics::{Metrics, Sample, CONTRACT};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// OTLP/HTTP base URL, e.g. `http://otel-collector:4318` (signal paths are appended).
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// `http/protobuf` (default) or `http/json`.
    #[serde(default)]
    pub otlp_protocol: Option<String>,
    /// Seconds between metric exports.
    #[serde(default)]
    pub export_interval_secs: Option<u64>,
    /// Send `OTEL_EXPORTER_OTLP_HEADERS` (often an API key) over `http://` to a collector
    /// that is not this machine. Refused otherwise; logged loudly at every start when set.
    #[serde(default)]
    pub allow_cleartext_headers: bool,
}

impl TelemetryConfig {
    /// Whether OTLP export is wanted, by config or by the standard environment.
    pub fn otlp_enabled(&self) -> bool {
        self.otlp_endpoint.is_some()
            || std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
            || std::env::var_os("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT").is_some()
            || std::env::var_os("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
    }

    /// The OTLP export that would send headers without TLS to another machine, if any.
    pub fn cleartext(&self) -> Option<crate::cleartext::Cleartext> {
        let headers = std::env::var("OTEL_EXPORTER_OTLP_HEADERS").unwrap_or_default();
        if headers.trim().is_empty() {
            return None;
        }
        let endpoint = self
            .otlp_endpoint
            .clone()
            .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok())?;
        crate::cleartext::url(&endpoint, "http", "OTLP headers")
    }

    fn protocol(&self) -> Result<Option<Protocol>, TelemetryError> {
        match self.otlp_protocol.as_deref() {
            None => Ok(None),
            Some("http/protobuf") => Ok(Some(Protocol::HttpBinary)),
            Some("http/json") => Ok(Some(Protocol::HttpJson)),
            Some(other) => Err(TelemetryError::Protocol(other.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("telemetry.otlp_protocol `{0}` is not supported: use `http/protobuf` or `http/json`")]
    Protocol(String),
    #[error("cannot build the OTLP {signal} exporter: {message}")]
    Exporter {
        signal: &'static str,
        message: String,
    },
}

/// Running exporters; `shutdown` flushes what is pending.
pub struct Telemetry {
    meters: SdkMeterProvider,
    tracer: SdkTracerProvider,
}

impl Telemetry {
    pub fn start(config: &TelemetryConfig, metrics: Arc<Metrics>) -> Result<Self, TelemetryError> {
        let protocol = config.protocol()?;
        let endpoint = |path: &str| {
            config
                .otlp_endpoint
                .as_ref()
                .map(|e| format!("{}/{path}", e.trim_end_matches('/')))
        };
        let mut metric_exporter = MetricExporter::builder().with_http();
        let mut span_exporter = SpanExporter::builder().with_http();
        if let Some(p) = protocol {
            metric_exporter = metric_exporter.with_protocol(p);
            span_exporter = span_exporter.with_protocol(p);
        }
        if let Some(e) = endpoint("v1/metrics") {
            metric_exporter = metric_exporter.with_endpoint(e);
        }
        if let Some(e) = endpoint("v1/traces") {
            span_exporter = span_exporter.with_endpoint(e);
        }
        let metric_exporter = metric_exporter
            .build()
            .map_err(|e| TelemetryError::Exporter {
                signal: "metrics",
                message: e.to_string(),
            })?;
        let span_exporter = span_exporter
            .build()
            .map_err(|e| TelemetryError::Exporter {
                signal: "traces",
                message: e.to_string(),
            })?;
        let resource = Resource::builder()
            .with_service_name("auditbridge")
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let reader = PeriodicReader::builder(metric_exporter)
            .with_interval(Duration::from_secs(
                config.export_interval_secs.unwrap_or(10).max(1),
            ))
            .build();
        let meters = SdkMeterProvider::builder()
            .with_reader(reader)
            .with_resource(resource.clone())
            .build();
        register(&meters, &metrics);
        let tracer = SdkTracerProvider::builder()
            .with_batch_exporter(span_exporter)
            .with_resource(resource)
            .build();
        opentelemetry::global::set_tracer_provider(tracer.clone());
        Ok(Telemetry { meters, tracer })
    }

    /// Export what is pending and stop.
    pub fn shutdown(self) {
        if let Err(e) = self.tracer.force_flush() {
            tracing::warn!(error = %e, "flushing spans failed");
        }
        if let Err(e) = self.meters.force_flush() {
            tracing::warn!(error = %e, "flushing metrics failed");
        }
        let _ = self.tracer.shutdown();
        let _ = self.meters.shutdown();
    }
}

fn attributes(sample: &Sample) -> Vec<KeyValue> {
    sample
        .labels
        .iter()
        .map(|(k, v)| KeyValue::new(*k, v.clone()))
        .collect()
}

/// One observable instrument per name of the contract, reading the shared counters at
/// each export.
fn register(provider: &SdkMeterProvider, metrics: &Arc<Metrics>) {
    let meter = provider.meter("auditbridge");
    for (name, gauge) in CONTRACT {
        let otel_name = format!("auditbridge.{}", name.replace('_', "."));
        let m = Arc::clone(metrics);
        let observe = move |name: &str| -> Vec<(u64, Vec<KeyValue>)> {
            m.samples()
                .into_iter()
                .filter(|s| s.name == name)
                .map(|s| (s.value, attributes(&s)))
                .collect()
        };
        if gauge {
            meter
                .u64_observable_gauge(otel_name)
                .with_callback(move |o| {
                    for (v, attrs) in observe(name) {
                        o.observe(v, &attrs);
                    }
                })
                .build();
        } else {
            meter
                .u64_observable_counter(otel_name)
                .with_callback(move |o| {
                    for (v, attrs) in observe(name) {
                        o.observe(v, &attrs);
                    }
                })
                .build();
        }
    }
    let m = Arc::clone(metrics);
    meter
        .f64_observable_gauge("auditbridge.end_to_end.latency.seconds.mean")
        .with_description("mean seconds from event time to acknowledgement by every sink")
        .with_callback(move |o| {
            let (_, count, sum) = m.latency.snapshot();
            if count > 0 {
                o.observe(sum / count as f64, &[]);
            }
        })
        .build();
}
