//! Secrets read from the environment (interpolated into the config) or from files
//! (mounted secrets), one or the other.

use std::path::{Path, PathBuf};

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
    value: Option<&str>,
    file: Option<&Path>,
    field: &'static str,
) -> Result<String, SecretError> {
    match (value, file) {
        (Some(v), None) if !v.is_empty() => Ok(v.to_string()),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
            .map_err(|source| SecretError::File {
                field,
                path: path.to_path_buf(),
                source,
            }),
        _ => Err(SecretError::Choice { field }),
    }
}
