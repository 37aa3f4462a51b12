//! The IAM API as a key source: every user's access keys with their creation time and
//! status (ListUsers + ListAccessKeys), and deactivation for `keys audit --deactivate`.

use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::inventory::{KeyInfo, KeyInventory, Learned};

/// One access key as IAM reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamKey {
    pub user: String,
    pub arn: String,
    pub key_id: String,
    pub status: String,
    pub created: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
#[error("IAM {operation} failed: {message}")]
pub struct IamError {
    pub operation: &'static str,
    pub message: String,
}

fn err<E: std::error::Error + 'static>(
    operation: &'static str,
) -> impl Fn(aws_sdk_iam::error::SdkError<E>) -> IamError {
    move |e| IamError {
        operation,
        message: aws_sdk_iam::error::DisplayErrorContext(&e).to_string(),
    }
}

/// An IAM client from the standard credential chain; `endpoint` for tests.
pub async fn client(region: Option<&str>, endpoint: Option<&str>) -> aws_sdk_iam::Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(r) = region {
        loader = loader.region(Region::new(r.to_string()));
    }
    if let Some(e) = endpoint {
        loader = loader.endpoint_url(e);
    }
    aws_sdk_iam::Client::new(&loader.load().await)
}

/// Every access key of every user.
pub async fn list_keys(iam: &aws_sdk_iam::Client) -> Result<Vec<IamKey>, IamError> {
    let mut keys = Vec::new();
    let mut users = iam.list_users().into_paginator().items().send();
    while let Some(user) = users.next().await {
        let user = user.map_err(err("ListUsers"))?;
        let mut pages = iam
            .list_access_keys()
            .user_name(&user.user_name)
            .into_paginator()
            .items()
            .send();
        while let Some(k) = pages.next().await {
            let k = k.map_err(err("ListAccessKeys"))?;
            keys.push(IamKey {
                user: user.user_name.clone(),
                arn: user.arn.clone(),
                key_id: k.access_key_id.unwrap_or_default(),
                status: k
                    .status
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|| "Unknown".into()),
                created: k
                    .create_date
                    .and_then(|d| DateTime::from_timestamp(d.secs(), d.subsec_nanos())),
            });
        }
    }
    Ok(keys)
}

/// Set a key Inactive.
pub async fn deactivate(
    iam: &aws_sdk_iam::Client,
    user: &str,
    key_id: &str,
) -> Result<(), IamError> {
    iam.update_access_key()
        .user_name(user)
        .access_key_id(key_id)
        .status(aws_sdk_iam::types::StatusType::Inactive)
        .send()
        .await
        .map_err(err("UpdateAccessKey"))?;
    Ok(())
}

/// Load every key IAM lists into the inventory; returns how many.
pub async fn refresh(
    iam: &aws_sdk_iam::Client,
    inventory: &KeyInventory,
) -> Result<usize, IamError> {
    let keys = list_keys(iam).await?;
    let n = keys.len();
    for k in keys {
        if let Some(created) = k.created {
            inventory.insert(KeyInfo {
                id: k.key_id,
                owner: Some(k.user),
                created,
                status: k.status,
                learned: Learned::Iam,
            });
        }
    }
    Ok(n)
}

/// Refresh the inventory from IAM every `interval` until `shutdown` (the first refresh
/// is the caller's, before records flow).
pub async fn poll(
    iam: aws_sdk_iam::Client,
    inventory: Arc<KeyInventory>,
    interval: Duration,
    shutdown: watch::Receiver<bool>,
) {
    super::repeat("AWS IAM", interval, shutdown, || refresh(&iam, &inventory)).await
}
