//! Credentials for Google Cloud APIs (Pub/Sub, IAM): none for an emulator, a
//! service-account key file, or Application Default Credentials.

use std::path::{Path, PathBuf};

use google_cloud_auth::credentials::{anonymous, service_account, Builder, Credentials};

/// Why no credentials or client could be built. Never holds a key file's content.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read credentials file {path}: {source}; check the path and that auditbridge may read it")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("credentials file {path} is not a usable service-account key: a JSON key as `gcloud iam service-accounts keys create` writes it is expected (type, client_email, private_key)")]
    Key { path: PathBuf },
    #[error("no Google credentials: {message}; set the credentials file or GOOGLE_APPLICATION_CREDENTIALS, or run where a metadata server gives them (GCE, GKE Workload Identity)")]
    Adc { message: String },
    #[error("cannot build the Google client for {endpoint}: {message}")]
    Client { endpoint: String, message: String },
}

/// The credentials: none for a plaintext (emulator, test) endpoint, which must never be
/// sent a token; the key file when one is given; otherwise Application Default
/// Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's login, the metadata server).
pub fn credentials(
    key_file: Option<&Path>,
    endpoint: Option<&str>,
) -> Result<Credentials, AuthError> {
    if endpoint.is_some_and(|e| e.starts_with("http://")) {
        return Ok(anonymous::Builder::new().build());
    }
    match key_file {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|source| AuthError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let key = serde_json::from_slice(&bytes).map_err(|_| AuthError::Key {
                path: path.to_path_buf(),
            })?;
            service_account::Builder::new(key)
                .build()
                .map_err(|_| AuthError::Key {
                    path: path.to_path_buf(),
                })
        }
        None => Builder::default().build().map_err(|e| AuthError::Adc {
            message: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_that_is_no_key_is_named_without_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.json");
        std::fs::write(&path, "-----BEGIN PRIVATE KEY----- s3cr3t-material").unwrap();
        let err = credentials(Some(&path), None).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("not a usable service-account key"), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
        let err = credentials(Some(Path::new("/nonexistent/key.json")), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cannot read credentials file /nonexistent/key.json"),
            "{err}"
        );
    }

    #[test]
    fn a_plaintext_endpoint_is_sent_no_credentials() {
        // The key file is not even read: an emulator must never be handed a token.
        let missing = Some(Path::new("/nonexistent/key.json"));
        assert!(credentials(missing, Some("http://127.0.0.1:8085")).is_ok());
        assert!(credentials(missing, Some("https://pubsub.example")).is_err());
    }
}
