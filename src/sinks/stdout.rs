//! The `stdout` sink: NDJSON on standard output.

use std::io::{self, Write};

use super::ndjson::Target;

pub struct Stdout;

impl Target for Stdout {
    fn write(&mut self, lines: &[Vec<u8>]) -> io::Result<()> {
        let mut out = io::stdout().lock();
        for line in lines {
            out.write_all(line)?;
        }
        out.flush()
    }

    fn describe(&self) -> String {
        "standard output".into()
    }
}
