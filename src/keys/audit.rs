//! `auditbridge keys audit`: the founding rotation check as a command. Lists each user's
//! active access keys with their age and flags those over the maximum age.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::age_days;
use super::iam::IamKey;
use super::report::ReportUser;

/// One active access key of one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRow {
    pub user: String,
    pub arn: String,
    /// The key id when the source names it (IAM); the slot (`access_key_1`) otherwise.
    pub key: String,
    /// Creation time (IAM) or last rotation (credential report).
    pub created: Option<String>,
    pub age_days: Option<i64>,
    pub over_max_age: bool,
}

/// Audit the active keys of a credential report at `at`.
pub fn from_report(users: &[ReportUser], at: DateTime<Utc>, max_age_days: i64) -> Vec<AuditRow> {
    let mut rows = Vec::new();
    for u in users {
        for k in u.keys.iter().filter(|k| k.active) {
            let age = k.last_rotated.map(|t| age_days(t, at));
            rows.push(AuditRow {
                user: u.user.clone(),
                arn: u.arn.clone(),
                key: format!("access_key_{}", k.slot),
                created: k
                    .last_rotated
                    .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
                age_days: age,
                over_max_age: age.is_some_and(|a| a > max_age_days),
            });
        }
    }
    rows
}

/// Audit the active keys IAM lists at `at`.
pub fn from_iam(keys: &[IamKey], at: DateTime<Utc>, max_age_days: i64) -> Vec<AuditRow> {
    keys.iter()
        .filter(|k| k.status == "Active")
        .map(|k| {
            let age = k.created.map(|t| age_days(t, at));
            AuditRow {
                user: k.user.clone(),
                arn: k.arn.clone(),
                key: k.key_id.clone(),
                created: k
                    .created
                    .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
                age_days: age,
                over_max_age: age.is_some_and(|a| a > max_age_days),
            }
        })
        .collect()
}

/// The rows as an aligned text table.
pub fn render_table(rows: &[AuditRow], max_age_days: i64) -> String {
    let mut out = format!(
        "{:<24} {:<22} {:<22} {:>8}  {}\n",
        "USER", "KEY", "CREATED/ROTATED", "AGE (d)", "STATUS"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<24} {:<22} {:<22} {:>8}  {}\n",
            r.user,
            r.key,
            r.created.as_deref().unwrap_or("unknown"),
            r.age_days.map_or("?".to_string(), |a| a.to_string()),
            if r.over_max_age {
                format!("OVER {max_age_days} DAYS")
            } else {
                "ok".into()
            }
        ));
    }
    let flagged = rows.iter().filter(|r| r.over_max_age).count();
    out.push_str(&format!(
        "{} active keys, {flagged} over {max_age_days} days\n",
        rows.len()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::report::parse;

    #[test]
    fn flags_old_keys() {
        let csv = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/samples/keys/credential-report.csv"
        ))
        .unwrap();
        let users = parse(&csv).unwrap();
        let at: DateTime<Utc> = "2023-07-10T12:00:00Z".parse().unwrap();
        let rows = from_report(&users, at, 90);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (
                rows[0].user.as_str(),
                rows[0].age_days,
                rows[0].over_max_age
            ),
            ("bert-jan", Some(221), true)
        );
        assert_eq!(
            (
                rows[1].user.as_str(),
                rows[1].age_days,
                rows[1].over_max_age
            ),
            ("benjamin", Some(69), false)
        );
        let table = render_table(&rows, 90);
        assert!(
            table.ends_with("2 active keys, 1 over 90 days\n"),
            "{table}"
        );
    }
}
