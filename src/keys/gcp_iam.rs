//! Google Cloud's IAM API as a key source: the user-managed keys of every service account
//! of the configured projects, with the time each became valid and whether it is
//! disabled (projects.serviceAccounts.list + projects.serviceAccounts.keys.list).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use google_cloud_gax::paginator::ItemPaginator as _;
use google_cloud_iam_admin_v1::client::Iam;
use google_cloud_iam_admin_v1::model::list_service_account_keys_request::KeyType;
use tokio::sync::watch;

use super::inventory::{KeyInfo, KeyInventory, Learned};
use super::KeysConfig;
use crate::google_auth;

/// One service-account key as IAM reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountKey {
    /// The service account's email.
    pub account: String,
    pub key_id: String,
    pub valid_after: DateTime<Utc>,
    pub disabled: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum GcpIamError {
    #[error(transparent)]
    Auth(#[from] google_auth::AuthError),
    #[error("Google IAM {operation} on {resource} failed: {message}; the identity needs roles/iam.serviceAccountKeyAdmin or roles/iam.securityReviewer (iam.serviceAccounts.list, iam.serviceAccountKeys.list) on the project")]
    Call {
        operation: &'static str,
        resource: String,
        message: String,
    },
}

/// An IAM client: `keys.gcp_iam_endpoint` (tests) or Google's, with the credentials of
/// `keys.gcp_credentials_file` or Application Default Credentials.
pub async fn client(config: &KeysConfig) -> Result<Iam, GcpIamError> {
    let endpoint = config.gcp_iam_endpoint.as_deref();
    let credentials = google_auth::credentials(config.gcp_credentials_file.as_deref(), endpoint)?;
    let mut builder = Iam::builder().with_credentials(credentials);
    if let Some(e) = endpoint {
        builder = builder.with_endpoint(e);
    }
    builder.build().await.map_err(|e| {
        GcpIamError::Auth(google_auth::AuthError::Client {
            endpoint: endpoint.unwrap_or("iam.googleapis.com").to_string(),
            message: e.to_string(),
        })
    })
}

/// Every user-managed key of every service account of `project`.
pub async fn list_keys(iam: &Iam, project: &str) -> Result<Vec<ServiceAccountKey>, GcpIamError> {
    let call = |operation: &'static str, resource: &str| {
        let resource = resource.to_string();
        move |e: google_cloud_iam_admin_v1::Error| GcpIamError::Call {
            operation,
            resource,
            message: e.to_string(),
        }
    };
    let parent = format!("projects/{project}");
    let mut accounts = iam.list_service_accounts().set_name(&parent).by_item();
    let mut keys = Vec::new();
    while let Some(account) = accounts.next().await {
        let account = account.map_err(call("serviceAccounts.list", &parent))?;
        let listed = iam
            .list_service_account_keys()
            .set_name(&account.name)
            .set_key_types([KeyType::UserManaged])
            .send()
            .await
            .map_err(call("serviceAccounts.keys.list", &account.name))?;
        for key in listed.keys {
            let Some(id) = key.name.rsplit_once("/keys/").map(|(_, id)| id.to_string()) else {
                continue;
            };
            let Some(valid_after) = key
                .valid_after_time
                .and_then(|t| DateTime::from_timestamp(t.seconds(), t.nanos() as u32))
            else {
                continue;
            };
            keys.push(ServiceAccountKey {
                account: account.email.clone(),
                key_id: id,
                valid_after,
                disabled: key.disabled,
            });
        }
    }
    Ok(keys)
}

/// Load the keys of every project into the inventory; returns how many.
pub async fn refresh(
    iam: &Iam,
    projects: &[String],
    inventory: &KeyInventory,
) -> Result<usize, GcpIamError> {
    let mut n = 0;
    for project in projects {
        for k in list_keys(iam, project).await? {
            inventory.insert(KeyInfo {
                id: k.key_id,
                owner: Some(k.account),
                created: k.valid_after,
                status: if k.disabled { "Inactive" } else { "Active" }.into(),
                learned: Learned::Iam,
            });
            n += 1;
        }
    }
    Ok(n)
}

/// Load the keys of `config.gcp_projects` into `inventory` now, then refresh them every
/// `gcp_poll_interval_secs` on a task of their own until `shutdown`. A failure is logged
/// and leaves key ages to what the stream shows.
pub async fn start(
    config: &KeysConfig,
    inventory: &Arc<KeyInventory>,
    shutdown: &watch::Receiver<bool>,
) {
    let iam = match client(config).await {
        Ok(iam) => iam,
        Err(e) => {
            tracing::warn!(error = %e, "Google IAM client not built; service-account key ages use what the stream shows");
            return;
        }
    };
    match refresh(&iam, &config.gcp_projects, inventory).await {
        Ok(n) => tracing::info!(keys = n, "key inventory loaded from Google IAM"),
        Err(e) => {
            tracing::warn!(error = %e, "Google IAM key poll failed; service-account key ages use what the stream shows")
        }
    }
    tokio::spawn(poll(
        iam,
        config.gcp_projects.clone(),
        Arc::clone(inventory),
        Duration::from_secs(config.gcp_poll_interval_secs.max(1)),
        shutdown.clone(),
    ));
}

/// Refresh the inventory every `interval` until `shutdown` (the first refresh is the
/// caller's, before records flow).
async fn poll(
    iam: Iam,
    projects: Vec<String>,
    inventory: Arc<KeyInventory>,
    interval: Duration,
    shutdown: watch::Receiver<bool>,
) {
    super::repeat("Google IAM", interval, shutdown, || {
        refresh(&iam, &projects, &inventory)
    })
    .await
}
