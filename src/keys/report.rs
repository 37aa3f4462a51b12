//! The IAM credential report (CSV, as `aws iam get-credential-report` returns it
//! base64-decoded): per user, whether each of the two access-key slots is active and
//! when it was last rotated. It names no key ids.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::inventory::{KeyInfo, Learned};

/// One access-key slot of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportKey {
    /// 1 or 2.
    pub slot: u8,
    pub active: bool,
    pub last_rotated: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportUser {
    pub user: String,
    pub arn: String,
    pub keys: Vec<ReportKey>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("credential report is not CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("credential report lacks the column `{0}`; pass the CSV `aws iam get-credential-report` returns")]
    MissingColumn(&'static str),
}

/// Parse a credential report.
pub fn parse(text: &str) -> Result<Vec<ReportUser>, ReportError> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers()?.clone();
    let col = |name: &'static str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or(ReportError::MissingColumn(name))
    };
    let user = col("user")?;
    let arn = col("arn")?;
    let slots = [
        (
            1u8,
            col("access_key_1_active")?,
            col("access_key_1_last_rotated")?,
        ),
        (
            2u8,
            col("access_key_2_active")?,
            col("access_key_2_last_rotated")?,
        ),
    ];
    let mut out = Vec::new();
    for row in reader.records() {
        let row = row?;
        let keys = slots
            .iter()
            .map(|&(slot, active, rotated)| ReportKey {
                slot,
                active: row
                    .get(active)
                    .is_some_and(|v| v.eq_ignore_ascii_case("true")),
                last_rotated: row
                    .get(rotated)
                    .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
                    .map(|t| t.with_timezone(&Utc)),
            })
            .collect();
        out.push(ReportUser {
            user: row.get(user).unwrap_or("").to_string(),
            arn: row.get(arn).unwrap_or("").to_string(),
            keys,
        });
    }
    Ok(out)
}

/// Active keys per user, for the inventory.
pub fn active_keys_by_user(users: &[ReportUser]) -> HashMap<String, Vec<KeyInfo>> {
    users
        .iter()
        .map(|u| {
            let keys = u
                .keys
                .iter()
                .filter(|k| k.active)
                .filter_map(|k| {
                    Some(KeyInfo {
                        id: format!("access_key_{}", k.slot),
                        owner: Some(u.user.clone()),
                        created: k.last_rotated?,
                        status: "Active".into(),
                        learned: Learned::CredentialReport,
                    })
                })
                .collect();
            (u.user.clone(), keys)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const SAMPLE: &str = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated
<root_account>,arn:aws:iam::123456789012:root,2019-01-01T00:00:00+00:00,not_supported,2023-01-01T00:00:00+00:00,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A
alice,arn:aws:iam::123456789012:user/alice,2020-01-01T00:00:00+00:00,true,N/A,N/A,N/A,false,true,2020-01-08T20:43:06+00:00,2023-07-01T00:00:00+00:00,us-east-1,iam,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A
";

    #[test]
    fn parses_slots() {
        let users = parse(SAMPLE).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[1].user, "alice");
        assert_eq!(
            users[1].keys[0],
            ReportKey {
                slot: 1,
                active: true,
                last_rotated: Some("2020-01-08T20:43:06Z".parse().unwrap())
            }
        );
        assert!(!users[1].keys[1].active);
        let by_user = active_keys_by_user(&users);
        assert_eq!(by_user["alice"].len(), 1);
        assert!(by_user["<root_account>"].is_empty());
    }

    #[test]
    fn wrong_file_names_the_missing_column() {
        let err = parse("a,b\n1,2\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "credential report lacks the column `user`; pass the CSV `aws iam get-credential-report` returns"
        );
    }
}
