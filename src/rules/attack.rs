//! The MITRE ATT&CK Enterprise catalogue (v18.1) the rules may name.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;

pub const ATTACK_VERSION: &str = "18.1";

const CATALOGUE: &str = include_str!("../../config/attack/attack-enterprise-v18.1-techniques.json");

#[derive(Debug, Deserialize)]
struct Catalogue {
    techniques: Vec<Entry>,
}

#[derive(Debug, Clone, Deserialize)]
struct Entry {
    external_id: String,
    name: String,
    tactics: Vec<String>,
    url: String,
    revoked: bool,
    deprecated: bool,
}

/// A technique or sub-technique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Technique {
    pub id: String,
    pub name: String,
    pub url: String,
    /// Tactic short names, e.g. `persistence`.
    pub tactics: Vec<String>,
}

/// An ATT&CK Enterprise tactic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tactic {
    pub id: &'static str,
    pub name: &'static str,
    pub short: &'static str,
}

impl Tactic {
    pub fn url(&self) -> String {
        format!("https://attack.mitre.org/tactics/{}/", self.id)
    }
}

const TACTICS: &[Tactic] = &[
    Tactic {
        id: "TA0043",
        name: "Reconnaissance",
        short: "reconnaissance",
    },
    Tactic {
        id: "TA0042",
        name: "Resource Development",
        short: "resource-development",
    },
    Tactic {
        id: "TA0001",
        name: "Initial Access",
        short: "initial-access",
    },
    Tactic {
        id: "TA0002",
        name: "Execution",
        short: "execution",
    },
    Tactic {
        id: "TA0003",
        name: "Persistence",
        short: "persistence",
    },
    Tactic {
        id: "TA0004",
        name: "Privilege Escalation",
        short: "privilege-escalation",
    },
    Tactic {
        id: "TA0005",
        name: "Defense Evasion",
        short: "defense-evasion",
    },
    Tactic {
        id: "TA0006",
        name: "Credential Access",
        short: "credential-access",
    },
    Tactic {
        id: "TA0007",
        name: "Discovery",
        short: "discovery",
    },
    Tactic {
        id: "TA0008",
        name: "Lateral Movement",
        short: "lateral-movement",
    },
    Tactic {
        id: "TA0009",
        name: "Collection",
        short: "collection",
    },
    Tactic {
        id: "TA0011",
        name: "Command and Control",
        short: "command-and-control",
    },
    Tactic {
        id: "TA0010",
        name: "Exfiltration",
        short: "exfiltration",
    },
    Tactic {
        id: "TA0040",
        name: "Impact",
        short: "impact",
    },
];

/// A tactic by short name (`persistence`) or id (`TA0003`).
pub fn tactic(name_or_id: &str) -> Option<Tactic> {
    TACTICS
        .iter()
        .find(|t| t.short == name_or_id || t.id == name_or_id)
        .copied()
}

fn index() -> &'static HashMap<String, Entry> {
    static INDEX: OnceLock<HashMap<String, Entry>> = OnceLock::new();
    INDEX.get_or_init(|| {
        let cat: Catalogue =
            serde_json::from_str(CATALOGUE).expect("the embedded ATT&CK catalogue is valid JSON");
        cat.techniques
            .into_iter()
            .map(|e| (e.external_id.clone(), e))
            .collect()
    })
}

/// Why a technique id cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TechniqueError {
    #[error("`{0}` is not an ATT&CK Enterprise v18.1 technique id")]
    Unknown(String),
    #[error("`{0}` is revoked or deprecated in ATT&CK v18.1; use its replacement")]
    Retired(String),
}

/// Look up a current technique or sub-technique.
pub fn technique(id: &str) -> Result<Technique, TechniqueError> {
    let e = index()
        .get(id)
        .ok_or_else(|| TechniqueError::Unknown(id.to_string()))?;
    if e.revoked || e.deprecated {
        return Err(TechniqueError::Retired(id.to_string()));
    }
    Ok(Technique {
        id: e.external_id.clone(),
        name: e.name.clone(),
        url: e.url.clone(),
        tactics: e.tactics.clone(),
    })
}

/// The parent technique of a sub-technique (`T1098` for `T1098.001`).
pub fn parent(sub: &Technique) -> Option<Technique> {
    let (base, _) = sub.id.split_once('.')?;
    technique(base).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        let t = technique("T1098.001").unwrap();
        assert_eq!(t.name, "Additional Cloud Credentials");
        assert_eq!(parent(&t).unwrap().name, "Account Manipulation");
        assert_eq!(
            technique("T9999"),
            Err(TechniqueError::Unknown("T9999".into()))
        );
        assert!(matches!(
            technique("T1108"),
            Err(TechniqueError::Retired(_))
        ));
        assert_eq!(tactic("persistence").unwrap().id, "TA0003");
    }
}
