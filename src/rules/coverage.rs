//! `auditbridge rules coverage`: which founding techniques the loaded rules tag, per
//! provider.

use serde::Deserialize;

use super::model::ProviderName;
use super::sigma::SigmaSet;
use super::RuleSet;

const FOUNDING: &str = include_str!("../../config/founding-techniques.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    technique: Vec<Row>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    name: String,
    attack: String,
    aws: Observable,
    azure: Observable,
    gcp: Observable,
}

/// How a founding technique shows in a provider's logs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Observable {
    /// The API call or audit activity that reveals it.
    #[serde(default)]
    signal: Option<String>,
    /// Why no log record reveals it.
    #[serde(default)]
    not_observable: Option<String>,
}

/// Coverage of one technique on one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Covered(Vec<String>),
    /// No loaded rule tags it; the text is the signal a rule should look for.
    Missing(String),
    NotObservable(String),
}

#[derive(Debug, Clone)]
pub struct CoverageRow {
    pub name: String,
    pub attack: String,
    pub aws: Cell,
    pub azure: Cell,
    pub gcp: Cell,
}

fn founding() -> Table {
    toml::from_str(FOUNDING).expect("config/founding-techniques.toml is valid")
}

/// The founding table checked against the rule set.
pub fn coverage(set: &RuleSet) -> Vec<CoverageRow> {
    founding()
        .technique
        .into_iter()
        .map(|row| {
            let cell = |provider: ProviderName, obs: &Observable| {
                if let Some(why) = &obs.not_observable {
                    return Cell::NotObservable(why.clone());
                }
                let ids: Vec<String> = set
                    .rules()
                    .iter()
                    .filter(|r| {
                        r.provider == provider && r.techniques.iter().any(|t| t.id == row.attack)
                    })
                    .map(|r| r.id.clone())
                    .collect();
                if ids.is_empty() {
                    Cell::Missing(obs.signal.clone().unwrap_or_default())
                } else {
                    Cell::Covered(ids)
                }
            };
            CoverageRow {
                aws: cell(ProviderName::Aws, &row.aws),
                azure: cell(ProviderName::Azure, &row.azure),
                gcp: cell(ProviderName::Gcp, &row.gcp),
                name: row.name,
                attack: row.attack,
            }
        })
        .collect()
}

/// The coverage table as text.
pub fn render(rows: &[CoverageRow]) -> String {
    let cell = |c: &Cell| match c {
        Cell::Covered(ids) => ids.join(", "),
        Cell::Missing(signal) => format!("MISSING (expected a rule for: {signal})"),
        Cell::NotObservable(why) => format!("n/a ({why})"),
    };
    let mut out = String::from("technique | ATT&CK | aws | azure | gcp\n");
    for r in rows {
        out.push_str(&format!(
            "{} | {} | {} | {} | {}\n",
            r.name,
            r.attack,
            cell(&r.aws),
            cell(&r.azure),
            cell(&r.gcp)
        ));
    }
    out
}

/// What a Sigma rule set adds: how many rules loaded, which did not and why, and the
/// founding rows each loaded rule tags: with the row's technique, or apart, with its
/// parent technique.
pub fn render_sigma(set: &SigmaSet, dir: &std::path::Path) -> String {
    let mut out = format!(
        "\nsigma ({}): {} rules loaded, {} unsupported\n",
        dir.display(),
        set.rules.len(),
        set.unsupported.len()
    );
    for u in &set.unsupported {
        out.push_str(&format!("  unsupported: {u}\n"));
    }
    out.push_str("founding rows the loaded Sigma rules cover:\n");
    for row in founding().technique {
        // A rule tagged with the row's parent technique (T1098 for T1098.001) may or may
        // not detect the sub-technique: it is listed apart, so the row does not look
        // covered on its strength alone.
        let parent = row.attack.split_once('.').map(|(p, _)| p);
        let titles = |provider: ProviderName, technique: Option<&str>| {
            set.rules
                .iter()
                .filter(|r| r.scope().provider() == provider)
                .filter(|r| technique.is_some_and(|want| r.techniques.iter().any(|t| t.id == want)))
                .map(|r| r.title.as_str())
                .collect::<Vec<_>>()
        };
        let ids = |provider: ProviderName| {
            let exact = titles(provider, Some(&row.attack));
            let by_parent: Vec<&str> = titles(provider, parent)
                .into_iter()
                .filter(|t| !exact.contains(t))
                .collect();
            let mut cell = if exact.is_empty() {
                "-".to_string()
            } else {
                exact.join(", ")
            };
            if let (Some(p), false) = (parent, by_parent.is_empty()) {
                cell.push_str(&format!("; by parent {p}: {}", by_parent.join(", ")));
            }
            cell
        };
        out.push_str(&format!(
            "{} | {} | {} | {} | {}\n",
            row.name,
            row.attack,
            ids(ProviderName::Aws),
            ids(ProviderName::Azure),
            ids(ProviderName::Gcp)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_cover_every_observable_founding_technique() {
        let rows = coverage(&RuleSet::builtin().unwrap());
        assert_eq!(rows.len(), 15);
        let missing: Vec<String> = rows
            .iter()
            .flat_map(|r| {
                [("aws", &r.aws), ("azure", &r.azure), ("gcp", &r.gcp)]
                    .into_iter()
                    .filter(|(_, c)| matches!(c, Cell::Missing(_)))
                    .map(move |(p, _)| format!("{} on {p}", r.name))
            })
            .collect();
        assert!(missing.is_empty(), "{missing:?}");
        let keys = rows.iter().find(|r| r.name == "Extra access keys").unwrap();
        assert_eq!(
            keys.aws,
            Cell::Covered(vec![
                "aws-iam-access-key-created".into(),
                "aws-iam-login-profile".into(),
                "aws-sts-federation-token".into()
            ])
        );
        // The Activity Log fills the Azure column wherever an ARM event reveals the row.
        let azure_na: Vec<&str> = rows
            .iter()
            .filter(|r| matches!(r.azure, Cell::NotObservable(_)))
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(
            azure_na,
            ["Subdomain takeover", "Refresh token persistence"]
        );
        let runbook = rows
            .iter()
            .find(|r| r.name == "Automation runbook")
            .unwrap();
        assert_eq!(
            runbook.azure,
            Cell::Covered(vec!["azure-automation-runbook".into()])
        );
    }
}
