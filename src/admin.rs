//! The admin HTTP endpoint: `/health/live`, `/health/ready` and `/metrics` (Prometheus
//! text). Readiness is the conjunction of what every source and sink last reported.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::sync::watch;

use crate::metrics::Metrics;

/// The paths the admin endpoint serves. Probes and scrapers name them (the Dockerfile's
/// health check, `deploy/kubernetes/`), and a test holds those to these.
pub const LIVE_PATH: &str = "/health/live";
pub const READY_PATH: &str = "/health/ready";
pub const METRICS_PATH: &str = "/metrics";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Where to listen, e.g. `0.0.0.0:9464`.
    pub address: SocketAddr,
}

/// What one component last said about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Ok,
    /// Working, but slowed by something transient (retries, a busy collector): still ready.
    Degraded(String),
    /// Not doing its job (starting, faulted, disconnected): not ready.
    Down(String),
}

/// What each component last said about itself: `source.<name>`, `sink.<name>`.
#[derive(Debug, Default)]
pub struct Health {
    components: Mutex<BTreeMap<String, State>>,
}

/// One component's handle on its health.
#[derive(Debug, Clone)]
pub struct Reporter {
    health: Arc<Health>,
    component: String,
}

impl Reporter {
    pub fn ok(&self) {
        self.health.set(&self.component, State::Ok);
    }

    pub fn degraded(&self, why: impl std::fmt::Display) {
        self.health
            .set(&self.component, State::Degraded(why.to_string()));
    }

    pub fn failed(&self, why: impl std::fmt::Display) {
        self.health
            .set(&self.component, State::Down(why.to_string()));
    }
}

impl Health {
    /// A reporter for `component`, which starts out not ready (`starting`).
    pub fn reporter(self: &Arc<Self>, component: String) -> Reporter {
        self.set(&component, State::Down("starting".into()));
        Reporter {
            health: Arc::clone(self),
            component,
        }
    }

    pub fn set(&self, component: &str, state: State) {
        if let Ok(mut c) = self.components.lock() {
            c.insert(component.to_string(), state);
        }
    }

    /// Ready when at least one component reported and none is down. The detail names
    /// every component with `ok`, `degraded: <why>` or its reason for being down.
    pub fn ready(&self) -> (bool, serde_json::Value) {
        let Ok(c) = self.components.lock() else {
            return (false, serde_json::json!({}));
        };
        let ready = !c.is_empty() && c.values().all(|s| !matches!(s, State::Down(_)));
        let detail = c
            .iter()
            .map(|(k, v)| {
                let state = match v {
                    State::Ok => "ok".to_string(),
                    State::Degraded(why) => format!("degraded: {why}"),
                    State::Down(why) => why.clone(),
                };
                (k.clone(), serde_json::Value::String(state))
            })
            .collect::<serde_json::Map<_, _>>();
        (ready, serde_json::Value::Object(detail))
    }
}

/// Serve until `stop` turns true. Binding errors are returned at once.
pub async fn serve(
    address: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stop.changed() => return,
            };
            let Ok((stream, _)) = accepted else { continue };
            let (metrics, health) = (Arc::clone(&metrics), Arc::clone(&health));
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let response = route(&req, &metrics, &health);
                    async move { Ok::<_, std::convert::Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(bound)
}

fn route<B>(req: &Request<B>, metrics: &Metrics, health: &Health) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, kind: &str, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", kind)
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    };
    match req.uri().path() {
        LIVE_PATH => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        READY_PATH => {
            let (ready, detail) = health.ready();
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            reply(status, "application/json", format!("{detail}\n"))
        }
        METRICS_PATH => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics.prometheus(),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /health/live, /health/ready or /metrics\n".into(),
        ),
    }
}
