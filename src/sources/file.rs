//! The `file` source: files, directories (recursively) and glob patterns, read once.
//! CloudTrail vs Entra and gzip vs plain are detected from the content, not the name.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::task::JoinSet;

use crate::ack::{self, BatchStatus};
use crate::event::{Body, Origin, RawInput};
use crate::metrics::Metrics;
use crate::sources::{Source, SourceContext};

#[derive(Debug, thiserror::Error)]
pub enum FileSourceError {
    #[error("invalid glob pattern `{pattern}`: {message}")]
    Pattern { pattern: String, message: String },
    #[error("`{0}` does not exist: give a file, a directory or a glob pattern")]
    Missing(String),
    #[error("cannot list {path}")]
    List {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Files read so far (for the progress line), and files not fully delivered (nothing
/// redelivers a file: the run must end non-zero).
#[derive(Debug, Default)]
pub struct FileProgress {
    pub files: AtomicU64,
    pub failed: AtomicU64,
}

/// Expand the configured paths into a sorted, de-duplicated list of files.
pub fn expand(paths: &[String]) -> Result<Vec<PathBuf>, FileSourceError> {
    let mut out = Vec::new();
    for p in paths {
        let path = Path::new(p);
        if path.is_dir() {
            walk(path, &mut out)?;
        } else if path.exists() {
            out.push(path.to_path_buf());
        } else if p.contains(['*', '?', '[']) {
            let matches = glob::glob(p).map_err(|e| FileSourceError::Pattern {
                pattern: p.clone(),
                message: e.to_string(),
            })?;
            for m in matches.flatten() {
                if m.is_dir() {
                    walk(&m, &mut out)?;
                } else {
                    out.push(m);
                }
            }
        } else {
            return Err(FileSourceError::Missing(p.clone()));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), FileSourceError> {
    let entries = std::fs::read_dir(dir).map_err(|source| FileSourceError::List {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if is_log_file(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// Inside directories only log-like files are read (READMEs and licences are not);
/// a file named explicitly is always read.
fn is_log_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    [
        ".json",
        ".json.gz",
        ".ndjson",
        ".ndjson.gz",
        ".jsonl",
        ".log",
        ".gz",
    ]
    .iter()
    .any(|ext| name.ends_with(ext))
}

/// The files of a `file` source, found when it was built.
pub struct Files(Vec<PathBuf>);

impl Files {
    pub fn new(files: Vec<PathBuf>) -> Self {
        Files(files)
    }
}

impl Source for Files {
    fn run(self: Box<Self>, ctx: SourceContext) -> BoxFuture<'static, ()> {
        ctx.health.ok();
        Box::pin(run(self.0, ctx))
    }
}

/// Read every file once, sending each as one input and waiting for its acknowledgement.
/// A sink fault pauses the reading between files.
async fn run(files: Vec<PathBuf>, ctx: SourceContext) {
    let SourceContext {
        out,
        mut shutdown,
        mut intake,
        metrics,
        progress,
        ..
    } = ctx;
    let mut pending = JoinSet::new();
    for path in files {
        tokio::select! {
            () = intake.open() => {}
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
        // Read as it is transformed, never whole; a file that cannot even be opened is
        // skipped here, with a clear reason.
        if let Err(e) = tokio::fs::File::open(&path).await {
            tracing::error!(path = %path.display(), error = %e, "cannot read input file; skipped");
            Metrics::add(&metrics.batches_nacked, 1);
            progress.failed.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let origin = Origin::File { path: path.clone() };
        let (token, receiver) = ack::input("file", &origin, &metrics);
        let input = RawInput {
            origin,
            body: Body::File(path.clone()),
            ack: token,
        };
        tokio::select! {
            sent = out.send(input) => if sent.is_err() { break },
            _ = shutdown.changed() => break,
        }
        progress.files.fetch_add(1, Ordering::Relaxed);
        let metrics = Arc::clone(&metrics);
        let progress = Arc::clone(&progress);
        pending.spawn(async move {
            match receiver.wait().await {
                BatchStatus::Delivered => Metrics::add(&metrics.batches_acked, 1),
                status => {
                    Metrics::add(&metrics.batches_nacked, 1);
                    progress.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(path = %path.display(), ?status, "file was not fully delivered");
                }
            }
        });
    }
    drop(out);
    while pending.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_path_is_an_error_that_says_what_to_give() {
        let err = expand(&["/nonexistent/x.json".into()]).unwrap_err();
        assert!(err
            .to_string()
            .contains("give a file, a directory or a glob"));
    }
}
