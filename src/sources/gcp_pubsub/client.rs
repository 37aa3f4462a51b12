//! The Pub/Sub client of a `gcp_pubsub` source: its endpoint and credentials.

use std::path::PathBuf;

use google_cloud_auth::credentials::{anonymous, service_account, Builder, Credentials};
use google_cloud_pubsub::client::Subscriber;

use super::GcpPubsubSourceConfig;

/// Why the client could not be built. Never holds the key file's content.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read credentials_file {path}: {source}; check the path and that auditbridge may read it")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("credentials_file {path} is not a usable service-account key: a JSON key as `gcloud iam service-accounts keys create` writes it is expected (type, client_email, private_key)")]
    Key { path: PathBuf },
    #[error("no Google credentials: {message}; set credentials_file or GOOGLE_APPLICATION_CREDENTIALS, or run where a metadata server gives them (GCE, GKE Workload Identity)")]
    Adc { message: String },
    #[error("cannot build the Pub/Sub client for {endpoint}: {message}")]
    Client { endpoint: String, message: String },
}

/// The endpoint to use, if not Google's: the setting, else `PUBSUB_EMULATOR_HOST`.
pub fn endpoint(config: &GcpPubsubSourceConfig) -> Option<String> {
    config.endpoint.clone().or_else(|| {
        std::env::var("PUBSUB_EMULATOR_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .map(|h| format!("http://{h}"))
    })
}

/// The credentials: none for a plaintext (emulator) endpoint, which must never be sent
/// a token; the key file when one is given; otherwise Application Default Credentials.
pub fn credentials(
    config: &GcpPubsubSourceConfig,
    endpoint: Option<&str>,
) -> Result<Credentials, ClientError> {
    if endpoint.is_some_and(|e| e.starts_with("http://")) {
        return Ok(anonymous::Builder::new().build());
    }
    match &config.credentials_file {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|source| ClientError::Read {
                path: path.clone(),
                source,
            })?;
            let key = serde_json::from_slice(&bytes)
                .map_err(|_| ClientError::Key { path: path.clone() })?;
            service_account::Builder::new(key)
                .build()
                .map_err(|_| ClientError::Key { path: path.clone() })
        }
        None => Builder::default().build().map_err(|e| ClientError::Adc {
            message: e.to_string(),
        }),
    }
}

/// A subscriber client with one gRPC channel per stream.
pub async fn build(config: &GcpPubsubSourceConfig) -> Result<Subscriber, ClientError> {
    let endpoint = endpoint(config);
    let credentials = credentials(config, endpoint.as_deref())?;
    let mut builder = Subscriber::builder()
        .with_credentials(credentials)
        .with_grpc_subchannel_count(config.streams.max(1));
    if let Some(e) = &endpoint {
        builder = builder.with_endpoint(e.clone());
    }
    builder.build().await.map_err(|e| ClientError::Client {
        endpoint: endpoint.unwrap_or_else(|| "pubsub.googleapis.com".into()),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml_text: &str) -> GcpPubsubSourceConfig {
        toml::from_str(&format!(
            "subscription = \"projects/p/subscriptions/s\"\n{toml_text}"
        ))
        .unwrap()
    }

    #[test]
    fn a_key_file_that_is_no_key_is_named_without_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.json");
        std::fs::write(&path, "-----BEGIN PRIVATE KEY----- s3cr3t-material").unwrap();
        let c = config(&format!("credentials_file = \"{}\"", path.display()));
        let err = credentials(&c, None).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("not a usable service-account key"), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
        let missing = config("credentials_file = \"/nonexistent/key.json\"");
        let err = credentials(&missing, None).unwrap_err().to_string();
        assert!(
            err.starts_with("cannot read credentials_file /nonexistent/key.json"),
            "{err}"
        );
    }

    #[test]
    fn a_plaintext_endpoint_is_sent_no_credentials() {
        // The key file is not even read: an emulator must never be handed a token.
        let c = config("credentials_file = \"/nonexistent/key.json\"");
        assert!(credentials(&c, Some("http://127.0.0.1:8085")).is_ok());
        assert!(credentials(&c, Some("https://pubsub.example")).is_err());
    }
}
