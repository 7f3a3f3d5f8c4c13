//! Replacing a checkpoint directory atomically and durably, owner-only, and finding it again
//! after a crash.

use std::fs;
use std::io::Write;
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

/// Creates the directory `dir` (its parents as usual) readable by its owner only: mode
/// `0700` on unix, from its creation on (elsewhere: the platform's default permissions).
fn create_private_dir(dir: &Path) -> Result<(), DpOptimError> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    }
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| io(dir, e))?;
    // the umask can only have removed bits; make it exactly owner-only
    set_mode(dir, 0o700)
}

/// Sets the unix permission bits of `path` (nothing elsewhere).
fn set_mode(path: &Path, mode: u32) -> Result<(), DpOptimError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| io(path, e))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// Flushes the directory entry list of `dir` to disk (unix; elsewhere a no-op), so that
/// files created, renamed or removed in it survive a power loss.
fn sync_dir(dir: &Path) -> Result<(), DpOptimError> {
    #[cfg(unix)]
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The directory holding `path` (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes everything under `dir` owner-only (directories `0700`, files `0600` on unix) and
/// flushes every file and directory to disk.
fn seal(dir: &Path) -> Result<(), DpOptimError> {
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

/// Writes `bytes` to a new file `path` that is owner-only from its creation on (mode `0600`
/// on unix: the data is never readable by others, not even briefly) and flushes it to disk.
/// An existing file is replaced (removed first, so that its old permissions do not carry
/// over).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), DpOptimError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(path, e)),
        _ => {}
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| io(path, e))?;
    set_mode(path, 0o600)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io(path, e))
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
/// [`write_private`] for files that must be owner-only on their own too.
///
/// After a successful return, neither `dir.partial` nor `dir.previous` exists: nothing of
/// the previous version is kept. (A crash between the renames and that removal can leave
/// `dir.previous` behind until the next call; removal unlinks files, it does not scrub the
/// disk.)
pub fn replace_dir<E: From<DpOptimError>>(
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
