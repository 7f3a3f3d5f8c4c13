//! The complete lines of a JSONL file written line by line (the corpus, its drop log), whose
//! last line an interruption may have cut short.

use std::fs::File;
use std::io::{BufRead, ErrorKind};
use std::path::Path;

use crate::error::SynthGenError;
use crate::output::io;

/// Calls `each` on every complete line of `reader` (newline included) and returns their
/// length in bytes; a last line without its newline (cut short by a kill) is left out. An
/// error of `each` is reported at `path` and the line's 1-based number.
pub(crate) fn complete_lines<R: BufRead>(
    mut reader: R,
    path: &Path,
    mut each: impl FnMut(&str) -> Result<(), String>,
) -> Result<u64, SynthGenError> {
    let (mut complete, mut number) = (0u64, 0usize);
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).map_err(|e| io(path, e))?;
        if n == 0 || !line.ends_with('\n') {
            return Ok(complete);
        }
        number += 1;
        each(&line).map_err(|e| io(path, format!("line {number}: {e}")))?;
        complete += n as u64;
    }
}

/// `path` opened for reading, or `None` when it does not exist.
pub(crate) fn open_if_exists(path: &Path) -> Result<Option<File>, SynthGenError> {
    match File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path, e)),
    }
}
