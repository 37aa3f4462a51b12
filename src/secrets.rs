//! Secrets read from the environment (interpolated into the config) or from files
//! (mounted secrets), one or the other, held in a [`Secret`] that cannot be printed.

use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The value of `name` in an Azure connection string (`Key=Value;…`, keys compared
/// without case), trimmed.
pub fn connection_string_field<'a>(connection_string: &'a str, name: &str) -> Option<&'a str> {
    connection_string.split(';').find_map(|part| {
        let (key, value) = part.split_once('=')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// A token, key, password or connection string. `Debug` and `Display` print
/// `[redacted]`, so configs that hold one derive `Debug` safely; the memory is wiped
/// on drop. The value comes out only through [`Secret::expose`], where a request or a
/// client is built.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(SecretString);

impl Secret {
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value.into())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A secret setting given neither way, both ways, or in a file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "`{field}` needs exactly one of `{field}` (put `${{ENV_VAR}}` in it) or `{field}_file`"
    )]
    Choice { field: &'static str },
    #[error("cannot read `{field}_file` {path}: {source}")]
    File {
        field: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A secret given either inline (interpolated from the environment) or in a file, such
/// as a mounted Kubernetes secret. Errors name the setting, never the value.
pub fn secret(
    value: Option<&Secret>,
    file: Option<&Path>,
    field: &'static str,
) -> Result<Secret, SecretError> {
    match (value, file) {
        (Some(v), None) if !v.expose().is_empty() => Ok(v.clone()),
        (None, Some(path)) => read(path).map_err(|source| SecretError::File {
            field,
            path: path.to_path_buf(),
            source,
        }),
        _ => Err(SecretError::Choice { field }),
    }
}

/// A mounted secret: the file's text without the line ending editors and `kubectl`
/// leave. The buffer it was read into is wiped too.
pub fn read(path: &Path) -> std::io::Result<Secret> {
    let text = secrecy::zeroize::Zeroizing::new(std::fs::read_to_string(path)?);
    Ok(Secret::from(
        text.trim_end_matches(['\r', '\n']).to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_string_fields_ignore_case_and_spaces_and_keep_equals_signs() {
        let cs = "Endpoint=sb://ns.servicebus.windows.net/; sharedaccesskey = a2V5== ;EntityPath=h";
        assert_eq!(
            connection_string_field(cs, "endpoint"),
            Some("sb://ns.servicebus.windows.net/")
        );
        assert_eq!(
            connection_string_field(cs, "SharedAccessKey"),
            Some("a2V5==")
        );
        assert_eq!(connection_string_field(cs, "AccountName"), None);
    }

    #[test]
    fn prints_redacted_both_ways_and_exposes_on_request() {
        let s = Secret::from("hec-0123".to_string());
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some([redacted])");
        assert_eq!(s.expose(), "hec-0123");
    }

    #[test]
    fn a_file_secret_loses_its_line_ending_and_an_empty_value_is_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc\r\n").unwrap();
        assert_eq!(secret(None, Some(&path), "token").unwrap().expose(), "abc");
        let empty = Secret::from(String::new());
        assert!(matches!(
            secret(Some(&empty), None, "token"),
            Err(SecretError::Choice { field: "token" })
        ));
    }
}
