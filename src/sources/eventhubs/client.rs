//! Opening the Event Hubs consumer client and the checkpoint store from the settings,
//! with the secrets read once at startup.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use azure_core_amqp::AmqpTransport;
use azure_identity::{
    ClientSecretCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential,
};
use azure_messaging_eventhubs::{CheckpointStore, ConsumerClient};

use super::checkpoint::blob::{self, BlobAuth, BlobCheckpointStore};
use super::checkpoint::file::FileCheckpointStore;
use super::config::{CheckpointStoreConfig, EventHubsAuth, EventHubsSourceConfig, Transport};
use crate::secrets::{secret, Secret, SecretError};

#[derive(Debug, thiserror::Error)]
pub enum EventHubsSetupError {
    #[error("eventhubs: {0}")]
    Secret(#[from] SecretError),
    #[error("eventhubs: `namespace` and `event_hub` are required with `{0}` authentication")]
    Names(&'static str),
    #[error("eventhubs: cannot create the {what} credential: {source}")]
    Credential {
        what: &'static str,
        source: azure_core::Error,
    },
    #[error("eventhubs checkpoint store: {0}")]
    Blob(#[from] blob::BlobConfigError),
    #[error("eventhubs checkpoint store: `account_url` needs an Entra identity in `auth`; with a connection string, give the store a storage `connection_string`")]
    BlobIdentity,
    #[error("eventhubs checkpoint store: give exactly one of `connection_string`, `connection_string_file` or `account_url`")]
    BlobChoice,
}

/// How the client proves who it is.
enum Auth {
    ConnectionString(Secret),
    Entra(Arc<dyn TokenCredential>),
}

/// Everything needed to (re)open the client, prepared once.
pub struct Prepared {
    pub config: EventHubsSourceConfig,
    auth: Auth,
    pub store: Arc<dyn CheckpointStore + Send + Sync>,
    pub blob: Option<Arc<BlobCheckpointStore>>,
}

impl Prepared {
    pub fn new(config: &EventHubsSourceConfig) -> Result<Self, EventHubsSetupError> {
        let auth = match &config.auth {
            EventHubsAuth::ConnectionString {
                connection_string,
                connection_string_file,
            } => Auth::ConnectionString(secret(
                connection_string.as_ref(),
                connection_string_file.as_deref(),
                "auth.connection_string",
            )?),
            EventHubsAuth::ManagedIdentity { client_id } => Auth::Entra(made(
                "managed identity",
                ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                    ..Default::default()
                })),
            )?),
            EventHubsAuth::WorkloadIdentity => Auth::Entra(made(
                "workload identity",
                WorkloadIdentityCredential::new(None),
            )?),
            EventHubsAuth::ClientSecret {
                tenant_id,
                client_id,
                client_secret,
                client_secret_file,
            } => {
                let s = secret(
                    client_secret.as_ref(),
                    client_secret_file.as_deref(),
                    "auth.client_secret",
                )?;
                Auth::Entra(made(
                    "client secret",
                    ClientSecretCredential::new(
                        tenant_id,
                        client_id.clone(),
                        azure_core::credentials::Secret::new(s.expose().to_string()),
                        None,
                    ),
                )?)
            }
        };
        let credential = match &auth {
            Auth::Entra(c) => Some(Arc::clone(c)),
            Auth::ConnectionString(_) => None,
        };
        if credential.is_some() && (config.namespace.is_none() || config.event_hub.is_none()) {
            return Err(EventHubsSetupError::Names("Entra ID"));
        }
        let (store, blob): (Arc<dyn CheckpointStore + Send + Sync>, _) =
            match &config.checkpoint_store {
                CheckpointStoreConfig::File { dir } => {
                    (Arc::new(FileCheckpointStore::new(dir.clone())), None)
                }
                CheckpointStoreConfig::Blob(b) => {
                    let (endpoint, auth) = match (
                        &b.connection_string,
                        &b.connection_string_file,
                        &b.account_url,
                    ) {
                        (None, None, Some(url)) => {
                            let credential = credential
                                .clone()
                                .ok_or(EventHubsSetupError::BlobIdentity)?;
                            (url.clone(), BlobAuth::Token(credential))
                        }
                        (cs, file, None) if cs.is_some() || file.is_some() => {
                            let cs = secret(
                                cs.as_ref(),
                                file.as_deref(),
                                "checkpoint_store.connection_string",
                            )?;
                            blob::from_connection_string(cs.expose())?
                        }
                        _ => return Err(EventHubsSetupError::BlobChoice),
                    };
                    let store = Arc::new(BlobCheckpointStore::new(
                        endpoint,
                        b.container.clone(),
                        auth,
                        Duration::from_secs(b.request_timeout_secs.max(1)),
                    ));
                    (store.clone(), Some(store))
                }
            };
        Ok(Prepared {
            config: config.clone(),
            auth,
            store,
            blob,
        })
    }

    /// The fully qualified namespace, as the client library names it in ownership and
    /// checkpoint blobs: the configured one, or the host of the connection string's
    /// `Endpoint`.
    pub fn namespace(&self) -> Option<String> {
        if let Some(namespace) = &self.config.namespace {
            return Some(namespace.clone());
        }
        let Auth::ConnectionString(cs) = &self.auth else {
            return None;
        };
        let endpoint = crate::secrets::connection_string_field(cs.expose(), "Endpoint")?;
        let host = endpoint
            .split_once("://")
            .map_or(endpoint, |(_, rest)| rest);
        Some(host.trim_end_matches('/').to_string())
    }

    /// The connection's application id is what the processor writes as the owner of
    /// its partitions, so it must be this replica's own.
    pub async fn open(&self, owner_id: &str) -> azure_messaging_eventhubs::Result<ConsumerClient> {
        let c = &self.config;
        let mut builder = ConsumerClient::builder()
            .with_consumer_group(c.consumer_group.clone())
            .with_application_id(owner_id.to_string());
        if let Some(endpoint) = &c.custom_endpoint {
            builder = builder.with_custom_endpoint(endpoint.clone());
        }
        if c.transport == Transport::Websocket {
            builder = builder.with_transport(AmqpTransport::WebSocket);
        }
        match &self.auth {
            Auth::ConnectionString(cs) => {
                builder
                    .open_with_connection_string(cs.expose(), c.event_hub.as_deref())
                    .await
            }
            Auth::Entra(credential) => {
                builder
                    .open(
                        c.namespace.as_deref().unwrap_or_default(),
                        c.event_hub.clone().unwrap_or_default(),
                        Arc::clone(credential),
                    )
                    .await
            }
        }
    }
}

/// A credential, or the error that names which one could not be created.
fn made<C: TokenCredential + 'static>(
    what: &'static str,
    credential: azure_core::Result<Arc<C>>,
) -> Result<Arc<dyn TokenCredential>, EventHubsSetupError> {
    credential
        .map(|c| c as Arc<dyn TokenCredential>)
        .map_err(|source| EventHubsSetupError::Credential { what, source })
}
