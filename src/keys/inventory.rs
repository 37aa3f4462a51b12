//! A bounded, shared inventory of credentials and when they were created.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where the inventory learned about a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Learned {
    /// A CreateAccessKey / credential-addition record in the stream.
    Stream,
    /// An IAM credential report.
    CredentialReport,
    /// A cloud's IAM API: AWS ListAccessKeys, Google's serviceAccounts.keys.list.
    Iam,
}

/// What is known about one credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub id: String,
    pub owner: Option<String>,
    pub created: DateTime<Utc>,
    /// `Active` or `Inactive`, as IAM reports it.
    pub status: String,
    pub learned: Learned,
}

#[derive(Default, Serialize, Deserialize)]
struct State {
    keys: HashMap<String, KeyInfo>,
    /// Insertion order, for evicting the oldest entry when full.
    order: VecDeque<String>,
    /// Active keys per user from a credential report (which names no key ids):
    /// used when a user has exactly one active key.
    report_users: HashMap<String, Vec<KeyInfo>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read the key inventory state {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("key inventory state {path} is not valid JSON; move it away to start empty")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("cannot write the key inventory state {path}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// Credentials by id, at most `capacity` of them; shared by all transform workers.
pub struct KeyInventory {
    capacity: usize,
    state: Mutex<State>,
}

impl KeyInventory {
    pub fn new(capacity: usize) -> Self {
        KeyInventory {
            capacity: capacity.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// Record a credential (replacing what was known about the same id).
    pub fn insert(&self, info: KeyInfo) {
        let Ok(mut s) = self.state.lock() else { return };
        if s.keys.insert(info.id.clone(), info.clone()).is_none() {
            s.order.push_back(info.id);
        }
        while s.keys.len() > self.capacity {
            match s.order.pop_front() {
                Some(oldest) => {
                    s.keys.remove(&oldest);
                }
                None => break,
            }
        }
    }

    pub fn set_status(&self, id: &str, status: &str) {
        if let Ok(mut s) = self.state.lock() {
            if let Some(k) = s.keys.get_mut(id) {
                k.status = status.to_string();
            }
        }
    }

    pub fn remove(&self, id: &str) {
        if let Ok(mut s) = self.state.lock() {
            if s.keys.remove(id).is_some() {
                s.order.retain(|k| k != id);
            }
        }
    }

    /// What is known about a key: by id, or, for a user whose credential report lists a
    /// single active key, that key.
    pub fn get(&self, id: &str, owner: Option<&str>) -> Option<KeyInfo> {
        let s = self.state.lock().ok()?;
        if let Some(k) = s.keys.get(id) {
            return Some(k.clone());
        }
        let active = s.report_users.get(owner?)?;
        match active.as_slice() {
            [only] => Some(KeyInfo {
                id: id.to_string(),
                ..only.clone()
            }),
            _ => None,
        }
    }

    /// Replace what a credential report says about users' active keys.
    pub fn load_report_users(&self, users: HashMap<String, Vec<KeyInfo>>) {
        if let Ok(mut s) = self.state.lock() {
            s.report_users = users;
        }
    }

    pub fn len(&self) -> usize {
        self.state.lock().map_or(0, |s| s.keys.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Load a saved inventory; a missing file is an empty inventory.
    pub fn load(path: &Path, capacity: usize) -> Result<Self, StateError> {
        let inv = KeyInventory::new(capacity);
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(inv),
            Err(source) => {
                return Err(StateError::Read {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        let state: State = serde_json::from_str(&text).map_err(|source| StateError::Parse {
            path: path.display().to_string(),
            source,
        })?;
        for id in &state.order {
            if let Some(k) = state.keys.get(id) {
                inv.insert(k.clone());
            }
        }
        inv.load_report_users(state.report_users);
        Ok(inv)
    }

    /// Save atomically (write a temporary file, then rename), so a crash never leaves a
    /// half-written state.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let err = |source| StateError::Write {
            path: path.display().to_string(),
            source,
        };
        let text = {
            let s = self
                .state
                .lock()
                .map_err(|_| err(std::io::Error::other("inventory lock poisoned")))?;
            serde_json::to_vec(&*s).map_err(|e| err(std::io::Error::other(e)))?
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> KeyInfo {
        KeyInfo {
            id: id.into(),
            owner: Some("u".into()),
            created: "2023-01-01T00:00:00Z".parse().unwrap(),
            status: "Active".into(),
            learned: Learned::Stream,
        }
    }

    #[test]
    fn bounded_oldest_evicted() {
        let inv = KeyInventory::new(2);
        inv.insert(key("a"));
        inv.insert(key("b"));
        inv.insert(key("c"));
        assert_eq!(inv.len(), 2);
        assert!(inv.get("a", None).is_none());
        assert!(inv.get("c", None).is_some());
    }

    #[test]
    fn survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/keys.json");
        let inv = KeyInventory::new(10);
        inv.insert(key("AKIA1"));
        inv.set_status("AKIA1", "Inactive");
        inv.save(&path).unwrap();
        let back = KeyInventory::load(&path, 10).unwrap();
        assert_eq!(back.get("AKIA1", None).unwrap().status, "Inactive");
    }

    #[test]
    fn report_users_with_one_active_key() {
        let inv = KeyInventory::new(10);
        inv.load_report_users(HashMap::from([
            ("alice".to_string(), vec![key("slot-1")]),
            ("bob".to_string(), vec![key("slot-1"), key("slot-2")]),
        ]));
        assert_eq!(inv.get("AKIAALICE", Some("alice")).unwrap().id, "AKIAALICE");
        assert!(
            inv.get("AKIABOB", Some("bob")).is_none(),
            "two active keys: ambiguous"
        );
    }
}
