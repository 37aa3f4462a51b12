//! The Pub/Sub client of a `gcp_pubsub` source: its endpoint and credentials.

use google_cloud_pubsub::client::Subscriber;

use super::GcpPubsubSourceConfig;
use crate::google_auth::{self, AuthError};

/// The endpoint to use, if not Google's: the setting, else `PUBSUB_EMULATOR_HOST`.
pub fn endpoint(config: &GcpPubsubSourceConfig) -> Option<String> {
    config.endpoint.clone().or_else(|| {
        std::env::var("PUBSUB_EMULATOR_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .map(|h| format!("http://{h}"))
    })
}

/// A subscriber client with one gRPC channel per stream.
pub async fn build(config: &GcpPubsubSourceConfig) -> Result<Subscriber, AuthError> {
    let endpoint = endpoint(config);
    let credentials =
        google_auth::credentials(config.credentials_file.as_deref(), endpoint.as_deref())?;
    let mut builder = Subscriber::builder()
        .with_credentials(credentials)
        .with_grpc_subchannel_count(config.streams.max(1));
    if let Some(e) = &endpoint {
        builder = builder.with_endpoint(e.clone());
    }
    builder.build().await.map_err(|e| AuthError::Client {
        endpoint: endpoint.unwrap_or_else(|| "pubsub.googleapis.com".into()),
        message: e.to_string(),
    })
}
