//! Replacing a checkpoint directory atomically, and finding it again after a crash.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::DpOptimError;

/// `dir` with `.suffix` appended to its last component.
fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    dir.with_file_name(name)
}

fn io(path: &Path, e: std::io::Error) -> DpOptimError {
    DpOptimError::Checkpoint {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Writes a new version of the directory `dir`: `write` fills a fresh `dir.partial`, which
/// then replaces `dir` by renames (`dir` → `dir.previous`, `dir.partial` → `dir`, the
/// previous version removed). A crash at any point leaves a complete version readable
/// through [`readable_dir`].
pub fn replace_dir<E: From<DpOptimError>>(
    dir: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let partial = sibling(dir, "partial");
    let previous = sibling(dir, "previous");
    if partial.exists() {
        fs::remove_dir_all(&partial).map_err(|e| io(&partial, e))?;
    }
    fs::create_dir_all(&partial).map_err(|e| io(&partial, e))?;
    write(&partial)?;
    if dir.exists() {
        if previous.exists() {
            fs::remove_dir_all(&previous).map_err(|e| io(&previous, e))?;
        }
        fs::rename(dir, &previous).map_err(|e| io(dir, e))?;
    }
    fs::rename(&partial, dir).map_err(|e| io(dir, e))?;
    if previous.exists() {
        fs::remove_dir_all(&previous).map_err(|e| io(&previous, e))?;
    }
    Ok(())
}

/// The complete version of a directory written by [`replace_dir`] that holds `marker` (a file
/// written last-but-not-least by every version): `dir` itself, or `dir.previous` when a crash
/// came between the two renames; `None` when there is none.
pub fn readable_dir(dir: &Path, marker: &str) -> Option<PathBuf> {
    if dir.join(marker).exists() {
        return Some(dir.to_path_buf());
    }
    let previous = sibling(dir, "previous");
    previous.join(marker).exists().then_some(previous)
}
