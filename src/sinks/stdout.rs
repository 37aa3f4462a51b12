//! The `stdout` sink: NDJSON on standard output.

use std::io;

use bytes::Bytes;

use super::ndjson::{write_lines, Target};

pub struct Stdout;

impl Target for Stdout {
    /// Standard output is line-buffered: a vectored write of whole lines goes past its
    /// buffer in one call, where `write_all` of each line would make a call per line.
    fn write(&mut self, docs: &[Bytes]) -> io::Result<()> {
        write_lines(&mut io::stdout().lock(), docs)
    }

    fn describe(&self) -> String {
        "standard output".into()
    }
}
