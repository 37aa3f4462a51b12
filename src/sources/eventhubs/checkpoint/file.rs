//! A checkpoint store in local files, for a single replica: one small JSON file per
//! partition, replaced atomically (write, fsync, rename) so a crash leaves either the
//! old checkpoint or the new one. Ownership lives in memory: with one replica there is
//! nobody to share it with, and a restarted process must not wait for its previous
//! self's claims to expire.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use azure_core::error::ErrorKind;
use azure_core::http::Etag;
use azure_core::time::OffsetDateTime;
use azure_messaging_eventhubs::models::{Checkpoint, Ownership};
use azure_messaging_eventhubs::CheckpointStore;
use serde::{Deserialize, Serialize};

pub struct FileCheckpointStore {
    dir: PathBuf,
    ownerships: Mutex<HashMap<String, (Ownership, u64)>>,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    offset: Option<String>,
    sequencenumber: Option<i64>,
}

fn io_error(what: String, e: std::io::Error) -> azure_core::Error {
    azure_core::Error::with_message(ErrorKind::Io, format!("{what}: {e}"))
}

impl FileCheckpointStore {
    pub fn new(dir: PathBuf) -> Self {
        FileCheckpointStore {
            dir,
            ownerships: Mutex::new(HashMap::new()),
        }
    }

    fn path(&self, blob_name: &str) -> PathBuf {
        // `$Default` and the namespace's dots are fine in file names; nothing else needs escaping
        // because the processor builds the names from the hub's own identifiers.
        self.dir.join(format!("{blob_name}.json"))
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[async_trait]
impl CheckpointStore for FileCheckpointStore {
    async fn claim_ownership(
        &self,
        ownerships: &[Ownership],
    ) -> azure_core::Result<Vec<Ownership>> {
        let mut held = self.ownerships.lock().map_err(|_| {
            azure_core::Error::with_message(ErrorKind::Other, "ownership lock poisoned")
        })?;
        let mut claimed = Vec::new();
        for o in ownerships {
            let current = held.get(&o.partition_id);
            let expected = current.map(|(_, version)| Etag::from(version.to_string()));
            if o.etag != expected {
                continue;
            }
            let version = current.map_or(1, |(_, v)| v + 1);
            let mut won = o.clone();
            won.etag = Some(Etag::from(version.to_string()));
            won.last_modified_time = Some(OffsetDateTime::now_utc());
            held.insert(o.partition_id.clone(), (won.clone(), version));
            claimed.push(won);
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
        let dir = self.dir.join(&prefix);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(format!("reading {}", dir.display()), e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|e| io_error(format!("reading {}", dir.display()), e))?
                .path();
            let Some(partition) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            let bytes = std::fs::read(&path)
                .map_err(|e| io_error(format!("reading {}", path.display()), e))?;
            let stored: Stored = serde_json::from_slice(&bytes).map_err(|e| {
                azure_core::Error::with_message(
                    ErrorKind::DataConversion,
                    format!(
                        "checkpoint file {} is not valid ({e}); fix or delete it",
                        path.display()
                    ),
                )
            })?;
            out.push(Checkpoint {
                fully_qualified_namespace: namespace.to_string(),
                event_hub_name: event_hub_name.to_string(),
                consumer_group: consumer_group.to_string(),
                partition_id: partition.to_string(),
                offset: stored.offset,
                sequence_number: stored.sequencenumber,
            });
        }
        Ok(out)
    }

    async fn list_ownerships(
        &self,
        namespace: &str,
        event_hub_name: &str,
        consumer_group: &str,
    ) -> azure_core::Result<Vec<Ownership>> {
        let held = self.ownerships.lock().map_err(|_| {
            azure_core::Error::with_message(ErrorKind::Other, "ownership lock poisoned")
        })?;
        Ok(held
            .values()
            .map(|(o, _)| o)
            .filter(|o| {
                o.fully_qualified_namespace == namespace
                    && o.event_hub_name == event_hub_name
                    && o.consumer_group == consumer_group
            })
            .cloned()
            .collect())
    }

    async fn update_checkpoint(&self, checkpoint: Checkpoint) -> azure_core::Result<()> {
        let name = Checkpoint::get_checkpoint_blob_name(
            &checkpoint.fully_qualified_namespace,
            &checkpoint.event_hub_name,
            &checkpoint.consumer_group,
            &checkpoint.partition_id,
        )?;
        let path = self.path(&name);
        let bytes = serde_json::to_vec(&Stored {
            offset: checkpoint.offset,
            sequencenumber: checkpoint.sequence_number,
        })
        .map_err(|e| azure_core::Error::with_message(ErrorKind::DataConversion, e.to_string()))?;
        let what = format!("writing checkpoint {}", path.display());
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| azure_core::Error::with_message(ErrorKind::Other, e.to_string()))?
            .map_err(|e| io_error(what, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ownership(partition: &str, etag: Option<Etag>) -> Ownership {
        Ownership {
            fully_qualified_namespace: "ns".into(),
            event_hub_name: "hub".into(),
            consumer_group: "$Default".into(),
            partition_id: partition.into(),
            owner_id: Some("me".into()),
            etag,
            last_modified_time: None,
        }
    }

    #[tokio::test]
    async fn checkpoints_survive_a_new_store_on_the_same_dir() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpointStore::new(dir.path().to_path_buf());
        store
            .update_checkpoint(Checkpoint {
                fully_qualified_namespace: "ns".into(),
                event_hub_name: "hub".into(),
                consumer_group: "$Default".into(),
                partition_id: "1".into(),
                offset: Some("800".into()),
                sequence_number: Some(8),
            })
            .await
            .unwrap();
        let again = FileCheckpointStore::new(dir.path().to_path_buf());
        let list = again
            .list_checkpoints("ns", "hub", "$Default")
            .await
            .unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].partition_id, "1");
        assert_eq!(list[0].sequence_number, Some(8));
        assert_eq!(list[0].offset.as_deref(), Some("800"));
        assert!(again
            .list_checkpoints("ns", "other", "$Default")
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn a_claim_with_a_stale_etag_is_not_granted() {
        let store = FileCheckpointStore::new(tempfile::tempdir().unwrap().path().to_path_buf());
        let first = store
            .claim_ownership(&[ownership("0", None)])
            .await
            .unwrap();
        assert_eq!(first.len(), 1);
        assert!(store
            .claim_ownership(&[ownership("0", None)])
            .await
            .unwrap()
            .is_empty());
        let renewed = store
            .claim_ownership(&[ownership("0", first[0].etag.clone())])
            .await
            .unwrap();
        assert_eq!(renewed.len(), 1);
        assert_ne!(renewed[0].etag, first[0].etag);
    }
}
