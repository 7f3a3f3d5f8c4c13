//! Replacing a checkpoint directory atomically and durably, owner-only, and finding it again
//! after a crash.

use std::fs;
use std::path::{Path, PathBuf};

use super::file::{create_private_dir, parent_of, set_mode, sibling, sync_dir};
use crate::error::TrainKitError;

fn io(path: &Path, e: std::io::Error) -> TrainKitError {
    TrainKitError::io(path, e)
}

/// Makes everything under `dir` owner-only (directories `0700`, files `0600` on unix) and
/// flushes every file and directory to disk.
fn seal(dir: &Path) -> Result<(), TrainKitError> {
    for entry in fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let path = entry.map_err(|e| io(dir, e))?.path();
        let meta = fs::symlink_metadata(&path).map_err(|e| io(&path, e))?;
        if meta.is_dir() {
            set_mode(&path, 0o700)?;
            seal(&path)?;
        } else if meta.is_file() {
            set_mode(&path, 0o600)?;
            fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| io(&path, e))?;
        }
    }
    sync_dir(dir)
}

/// Writes a new version of the directory `dir`: `write` fills a fresh `dir.partial`, which
/// then replaces `dir` by renames (`dir` → `dir.previous`, `dir.partial` → `dir`, the
/// previous version removed). A crash at any point leaves a complete version readable
/// through [`readable_dir`].
///
/// Permissions and durability: `dir.partial` is created owner-only (mode `0700` on unix,
/// from its creation on); once `write` returns, every file in it is made owner-only (`0600`)
/// and flushed to disk (`fsync`), then the directory itself; the parent directory is flushed
/// after the renames and after the previous version's removal. Files that `write` creates
/// are never readable by others, since the directory holding them is not (on unix); use
/// [`super::write_private`] for files that must be owner-only on their own too.
///
/// After a successful return, neither `dir.partial` nor `dir.previous` exists: nothing of
/// the previous version is kept. (A crash between the renames and that removal can leave
/// `dir.previous` behind until the next call; removal unlinks files, it does not scrub the
/// disk.)
pub fn replace_dir<E: From<TrainKitError>>(
    dir: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let partial = sibling(dir, "partial");
    let previous = sibling(dir, "previous");
    if partial.exists() {
        fs::remove_dir_all(&partial).map_err(|e| io(&partial, e))?;
    }
    create_private_dir(&partial)?;
    write(&partial)?;
    seal(&partial)?;
    let parent = parent_of(dir);
    if dir.exists() {
        if previous.exists() {
            fs::remove_dir_all(&previous).map_err(|e| io(&previous, e))?;
        }
        fs::rename(dir, &previous).map_err(|e| io(dir, e))?;
    }
    fs::rename(&partial, dir).map_err(|e| io(dir, e))?;
    sync_dir(parent)?;
    if previous.exists() {
        fs::remove_dir_all(&previous).map_err(|e| io(&previous, e))?;
        sync_dir(parent)?;
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
