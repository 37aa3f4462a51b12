//! A checkpoint store on Azure Blob Storage, in the layout every Event Hubs SDK uses:
//! `<namespace>/<hub>/<consumer group>/checkpoint/<partition>` with metadata `offset`
//! and `sequencenumber`, and `…/ownership/<partition>` with metadata `ownerid`. A Java,
//! .NET or Go processor pointed at the same container takes over our checkpoints.
//!
//! Ownership claims are conditional writes (`If-Match` on the ETag the claimant saw, or
//! `If-None-Match: *` for a partition nobody claimed yet); losing that race is the normal
//! way a claim fails, so it is "not claimed", never an error.
//!
//! It speaks the Blob REST API with reqwest: the azure storage crate has no release that
//! resolves beside the Event Hubs crate.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::http::Etag;
use azure_core::time::OffsetDateTime;
use azure_messaging_eventhubs::models::{Checkpoint, Ownership};
use azure_messaging_eventhubs::CheckpointStore;
use base64::Engine;
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

const API_VERSION: &str = "2021-08-06";
const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

/// Characters kept as they are in a blob path (`/` separates the virtual folders).
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'$');
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub enum BlobAuth {
    SharedKey {
        account: String,
        key: SecretSlice<u8>,
    },
    Token(Arc<dyn TokenCredential>),
}

pub struct BlobCheckpointStore {
    http: reqwest::Client,
    /// `https://<account>.blob.core.windows.net` or a path-style endpoint (Azurite).
    endpoint: String,
    container: String,
    auth: BlobAuth,
}

#[derive(Debug, thiserror::Error)]
pub enum BlobConfigError {
    #[error("the storage connection string has no {0}; it needs AccountName and AccountKey (and BlobEndpoint or EndpointSuffix)")]
    Missing(&'static str),
    #[error("the storage connection string's AccountKey is not base64")]
    Key,
}

/// Settings of a storage connection string (`Key=Value;…`).
pub fn from_connection_string(
    connection_string: &str,
) -> Result<(String, BlobAuth), BlobConfigError> {
    let get = |name: &str| {
        crate::secrets::connection_string_field(connection_string, name).map(str::to_string)
    };
    let account = get("AccountName").ok_or(BlobConfigError::Missing("AccountName"))?;
    let key = get("AccountKey").ok_or(BlobConfigError::Missing("AccountKey"))?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_err(|_| BlobConfigError::Key)?;
    let endpoint = match get("BlobEndpoint") {
        Some(e) => e.trim_end_matches('/').to_string(),
        None => {
            let protocol = get("DefaultEndpointsProtocol").unwrap_or_else(|| "https".into());
            let suffix = get("EndpointSuffix").unwrap_or_else(|| "core.windows.net".into());
            format!("{protocol}://{account}.blob.{suffix}")
        }
    };
    Ok((
        endpoint,
        BlobAuth::SharedKey {
            account,
            key: key.into(),
        },
    ))
}

fn storage_error(message: String) -> azure_core::Error {
    azure_core::Error::with_message(ErrorKind::Io, message)
}

struct Listed {
    name: String,
    etag: Option<String>,
    last_modified: Option<String>,
    metadata: Vec<(String, String)>,
}

impl BlobCheckpointStore {
    /// A store whose every request ends within `timeout`.
    pub fn new(endpoint: String, container: String, auth: BlobAuth, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()
            .unwrap_or_default();
        BlobCheckpointStore {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            container,
            auth,
        }
    }

    /// Create the container unless it exists; also proves the credentials work.
    pub async fn ensure_container(&self) -> azure_core::Result<()> {
        let response = self
            .send(Method::PUT, "", &[("restype", "container".into())], &[])
            .await?;
        match response.status() {
            s if s.is_success() || s == StatusCode::CONFLICT => Ok(()),
            s => Err(storage_error(format!(
                "creating blob container `{}` at {} failed: HTTP {s}: {}",
                self.container,
                self.endpoint,
                response.text().await.unwrap_or_default()
            ))),
        }
    }

    async fn send(
        &self,
        method: Method,
        blob: &str,
        query: &[(&str, String)],
        headers: &[(&str, String)],
    ) -> azure_core::Result<reqwest::Response> {
        let mut path = format!("/{}", self.container);
        if !blob.is_empty() {
            path.push('/');
            path.push_str(&utf8_percent_encode(blob, PATH).to_string());
        }
        let mut url = format!("{}{}", self.endpoint, path);
        for (i, (k, v)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(k);
            url.push('=');
            url.push_str(&utf8_percent_encode(v, QUERY).to_string());
        }
        let date = azure_core::time::to_rfc7231(&OffsetDateTime::now_utc());
        let mut all: Vec<(String, String)> = vec![
            ("x-ms-date".into(), date),
            ("x-ms-version".into(), API_VERSION.into()),
        ];
        all.extend(headers.iter().map(|(k, v)| ((*k).to_string(), v.clone())));
        let authorization = match &self.auth {
            BlobAuth::SharedKey { account, key } => {
                let endpoint_path = reqwest::Url::parse(&self.endpoint)
                    .map(|u| u.path().trim_end_matches('/').to_string())
                    .unwrap_or_default();
                let resource = format!("/{account}{endpoint_path}{path}");
                let signature = sign(
                    key.expose_secret(),
                    &string_to_sign(&method, &all, &resource, query),
                );
                format!("SharedKey {account}:{signature}")
            }
            BlobAuth::Token(credential) => {
                let token = credential.get_token(&[STORAGE_SCOPE], None).await?;
                format!("Bearer {}", token.token.secret())
            }
        };
        let mut request = self
            .http
            .request(method, &url)
            .header("Authorization", authorization);
        for (k, v) in &all {
            request = request.header(k.as_str(), v.as_str());
        }
        if !headers.iter().any(|(k, _)| *k == "Content-Length") {
            request = request.header("Content-Length", "0");
        }
        request
            .send()
            .await
            .map_err(|e| storage_error(format!("blob request to {url} failed: {e}")))
    }

    async fn list(&self, prefix: &str) -> azure_core::Result<Vec<Listed>> {
        let mut out = Vec::new();
        let mut marker = String::new();
        loop {
            let mut query = vec![
                ("comp", "list".to_string()),
                ("include", "metadata".to_string()),
            ];
            if !marker.is_empty() {
                query.push(("marker", marker.clone()));
            }
            query.push(("prefix", prefix.to_string()));
            query.push(("restype", "container".to_string()));
            let response = self.send(Method::GET, "", &query, &[]).await?;
            let status = response.status();
            let body = response
                .text()
                .await
                .map_err(|e| storage_error(format!("reading a blob listing: {e}")))?;
            if !status.is_success() {
                return Err(storage_error(format!(
                    "listing blobs `{prefix}` in `{}` failed: HTTP {status}: {body}",
                    self.container
                )));
            }
            let (mut blobs, next) = parse_listing(&body)?;
            out.append(&mut blobs);
            match next {
                Some(m) if !m.is_empty() => marker = m,
                _ => return Ok(out),
            }
        }
    }
}

fn string_to_sign(
    method: &Method,
    headers: &[(String, String)],
    resource: &str,
    query: &[(&str, String)],
) -> String {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let length = match header("Content-Length") {
        "0" => "",
        other => other,
    };
    let mut s = format!(
        "{method}\n\n\n{length}\n\n{}\n\n\n{}\n{}\n\n\n",
        header("Content-Type"),
        header("If-Match"),
        header("If-None-Match"),
    );
    let mut ms: Vec<(String, &str)> = headers
        .iter()
        .filter(|(k, _)| k.to_ascii_lowercase().starts_with("x-ms-"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
        .collect();
    ms.sort();
    for (k, v) in ms {
        s.push_str(&format!("{k}:{}\n", v.trim()));
    }
    s.push_str(resource);
    let mut params: Vec<(String, &str)> = query
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
        .collect();
    params.sort();
    for (k, v) in params {
        s.push_str(&format!("\n{k}:{v}"));
    }
    s
}

fn sign(key: &[u8], text: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(text.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The blobs of a `List Blobs` answer, and its `NextMarker`.
fn parse_listing(xml: &str) -> azure_core::Result<(Vec<Listed>, Option<String>)> {
    let mut blobs = Vec::new();
    let mut next = None;
    let mut path: Vec<String> = Vec::new();
    let mut current: Option<Listed> = None;
    for token in xmlparser::Tokenizer::from(xml) {
        let token = token.map_err(|e| storage_error(format!("blob listing is not XML: {e}")))?;
        match token {
            xmlparser::Token::ElementStart { local, .. } => {
                path.push(local.as_str().to_string());
                if local.as_str() == "Blob" {
                    current = Some(Listed {
                        name: String::new(),
                        etag: None,
                        last_modified: None,
                        metadata: Vec::new(),
                    });
                }
            }
            xmlparser::Token::ElementEnd { end, .. } => {
                if matches!(
                    end,
                    xmlparser::ElementEnd::Close(..) | xmlparser::ElementEnd::Empty
                ) {
                    if path.last().is_some_and(|p| p == "Blob") {
                        blobs.extend(current.take());
                    }
                    path.pop();
                }
            }
            xmlparser::Token::Text { text } => {
                let value = unescape(text.as_str());
                let n = path.len();
                let (parent, leaf) = match n {
                    0 => continue,
                    1 => ("", path[0].as_str()),
                    _ => (path[n - 2].as_str(), path[n - 1].as_str()),
                };
                match (parent, leaf, current.as_mut()) {
                    ("EnumerationResults", "NextMarker", _) => next = Some(value),
                    ("Blob", "Name", Some(b)) => b.name = value,
                    ("Properties", "Etag", Some(b)) => b.etag = Some(value),
                    ("Properties", "Last-Modified", Some(b)) => b.last_modified = Some(value),
                    ("Metadata", key, Some(b)) => {
                        b.metadata.push((key.to_ascii_lowercase(), value))
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    Ok((blobs, next))
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn meta<'a>(blob: &'a Listed, key: &str) -> Option<&'a str> {
    blob.metadata
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn partition_of(name: &str) -> String {
    name.rsplit('/').next().unwrap_or_default().to_string()
}

#[async_trait]
impl CheckpointStore for BlobCheckpointStore {
    async fn claim_ownership(
        &self,
        ownerships: &[Ownership],
    ) -> azure_core::Result<Vec<Ownership>> {
        let mut claimed = Vec::new();
        for o in ownerships {
            let name = Ownership::get_ownership_name(
                &o.fully_qualified_namespace,
                &o.event_hub_name,
                &o.consumer_group,
                &o.partition_id,
            )?;
            let condition = match &o.etag {
                Some(etag) => ("If-Match", etag.to_string()),
                None => ("If-None-Match", "*".to_string()),
            };
            let headers = [
                ("x-ms-blob-type", "BlockBlob".to_string()),
                ("x-ms-meta-ownerid", o.owner_id.clone().unwrap_or_default()),
                condition,
            ];
            let response = self.send(Method::PUT, &name, &[], &headers).await?;
            match response.status() {
                s if s.is_success() => {
                    let header = |h: &str| {
                        response
                            .headers()
                            .get(h)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string)
                    };
                    let mut won = o.clone();
                    won.etag = header("etag").map(Etag::from);
                    won.last_modified_time = header("last-modified")
                        .and_then(|t| azure_core::time::parse_rfc7231(&t).ok());
                    claimed.push(won);
                }
                StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT => {
                    tracing::debug!(partition = %o.partition_id, "ownership claim lost to another replica");
                }
                s => {
                    return Err(storage_error(format!(
                        "claiming partition {} in blob `{name}` failed: HTTP {s}: {}",
                        o.partition_id,
                        response.text().await.unwrap_or_default()
                    )))
                }
            }
        }
        Ok(claimed)
    }

    async fn list_checkpoints(
        &self,
        namespace: &str,
        event_hub_name: &str,
        consumer_group: &str,
    ) -> azure_core::Result<Vec<Checkpoint>> {
        let prefix =
            Checkpoint::get_checkpoint_blob_prefix_name(namespace, event_hub_name, consumer_group)?;
        Ok(self
            .list(&prefix)
            .await?
            .iter()
            .map(|b| Checkpoint {
                fully_qualified_namespace: namespace.to_string(),
                event_hub_name: event_hub_name.to_string(),
                consumer_group: consumer_group.to_string(),
                partition_id: partition_of(&b.name),
                offset: meta(b, "offset").map(str::to_string),
                sequence_number: meta(b, "sequencenumber").and_then(|s| s.parse().ok()),
            })
            .collect())
    }

    async fn list_ownerships(
        &self,
        namespace: &str,
        event_hub_name: &str,
        consumer_group: &str,
    ) -> azure_core::Result<Vec<Ownership>> {
        let prefix =
            Ownership::get_ownership_prefix_name(namespace, event_hub_name, consumer_group)?;
        Ok(self
            .list(&prefix)
            .await?
            .into_iter()
            .map(|b| Ownership {
                fully_qualified_namespace: namespace.to_string(),
                event_hub_name: event_hub_name.to_string(),
                consumer_group: consumer_group.to_string(),
                partition_id: partition_of(&b.name),
                // An empty owner is a partition given up (by us at shutdown, or by a
                // .NET or Java processor): unowned, free to claim at once.
                owner_id: meta(&b, "ownerid")
                    .filter(|owner| !owner.is_empty())
                    .map(str::to_string),
                etag: b.etag.clone().map(Etag::from),
                last_modified_time: b
                    .last_modified
                    .as_deref()
                    .and_then(|t| azure_core::time::parse_rfc7231(t).ok()),
            })
            .collect())
    }

    async fn update_checkpoint(&self, checkpoint: Checkpoint) -> azure_core::Result<()> {
        let name = Checkpoint::get_checkpoint_blob_name(
            &checkpoint.fully_qualified_namespace,
            &checkpoint.event_hub_name,
            &checkpoint.consumer_group,
            &checkpoint.partition_id,
        )?;
        // Read, compare, write only if nobody wrote in between: a stale owner's last
        // checkpoint, written after another replica took the partition over and moved
        // on, must not move the shared checkpoint backwards.
        for _ in 0..3 {
            let current = self.send(Method::HEAD, &name, &[], &[]).await?;
            let header = |key: &str| {
                current
                    .headers()
                    .get(key)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let condition = match current.status() {
                s if s.is_success() => {
                    let stored =
                        header("x-ms-meta-sequencenumber").and_then(|v| v.parse::<i64>().ok());
                    if let (Some(stored), Some(new)) = (stored, checkpoint.sequence_number) {
                        if stored >= new {
                            return Ok(());
                        }
                    }
                    ("If-Match", header("etag").unwrap_or_default())
                }
                StatusCode::NOT_FOUND => ("If-None-Match", "*".to_string()),
                s => {
                    return Err(storage_error(format!(
                        "reading checkpoint blob `{name}` failed: HTTP {s}"
                    )))
                }
            };
            let mut headers = vec![("x-ms-blob-type", "BlockBlob".to_string()), condition];
            if let Some(offset) = &checkpoint.offset {
                headers.push(("x-ms-meta-offset", offset.clone()));
            }
            if let Some(seq) = checkpoint.sequence_number {
                headers.push(("x-ms-meta-sequencenumber", seq.to_string()));
            }
            let response = self.send(Method::PUT, &name, &[], &headers).await?;
            match response.status() {
                s if s.is_success() => return Ok(()),
                // Written by someone else since it was read: read it again.
                StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT => continue,
                s => {
                    return Err(storage_error(format!(
                        "writing checkpoint blob `{name}` failed: HTTP {s}: {}",
                        response.text().await.unwrap_or_default()
                    )))
                }
            }
        }
        Err(storage_error(format!(
            "checkpoint blob `{name}` kept changing while it was written; retried at the next interval"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_yields_names_etags_and_metadata() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="http://127.0.0.1:10000/devstoreaccount1" ContainerName="c"><Prefix>ns/hub/$Default/checkpoint/</Prefix><Blobs><Blob><Name>ns/hub/$Default/checkpoint/0</Name><Properties><Last-Modified>Fri, 27 Nov 2026 07:00:00 GMT</Last-Modified><Etag>"0x8D"</Etag></Properties><Metadata><offset>4096</offset><sequencenumber>41</sequencenumber></Metadata></Blob><Blob><Name>ns/hub/$Default/checkpoint/1</Name><Properties><Etag>0x9</Etag></Properties><Metadata/></Blob></Blobs><NextMarker/></EnumerationResults>"#;
        let (blobs, next) = parse_listing(xml).unwrap();
        assert_eq!(blobs.len(), 2);
        assert_eq!(blobs[0].name, "ns/hub/$Default/checkpoint/0");
        assert_eq!(blobs[0].etag.as_deref(), Some("\"0x8D\""));
        assert_eq!(meta(&blobs[0], "sequencenumber"), Some("41"));
        assert_eq!(meta(&blobs[0], "offset"), Some("4096"));
        assert_eq!(partition_of(&blobs[1].name), "1");
        assert!(blobs[1].metadata.is_empty());
        assert_eq!(next, None);
    }

    #[test]
    fn connection_string_gives_endpoint_and_key() {
        let (endpoint, auth) = from_connection_string(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net",
        )
        .unwrap();
        assert_eq!(endpoint, "https://acct.blob.core.windows.net");
        assert!(
            matches!(auth, BlobAuth::SharedKey { account, key } if account == "acct" && key.expose_secret() == b"key")
        );
        assert!(matches!(
            from_connection_string("AccountName=a"),
            Err(BlobConfigError::Missing("AccountKey"))
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_storage_account_that_never_answers_fails_the_request_in_time() {
        // Accepts connections and never answers on them.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}/acct", listener.local_addr().unwrap());
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let store = BlobCheckpointStore::new(
            endpoint,
            "c".into(),
            BlobAuth::SharedKey {
                account: "acct".into(),
                key: b"key".to_vec().into(),
            },
            Duration::from_secs(1),
        );
        let started = std::time::Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(20), store.ensure_container())
            .await
            .expect("the store's own timeout ends the request");
        assert!(answer.is_err());
        assert!(started.elapsed() < Duration::from_secs(5));
        held.abort();
    }
}
