//! Single files written atomically (a temporary sibling persisted over the target) and
//! durably (the file and then its directory flushed), owner-only from their creation on.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::TrainKitError;

/// The directory holding `path` (`.` for a bare name).
pub(crate) fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Sets the unix permission bits of `path` (nothing elsewhere).
pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<(), TrainKitError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| TrainKitError::io(path, e))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// Flushes the directory entry list of `dir` to disk (unix; elsewhere a no-op), so that
/// files created, renamed or removed in it survive a power loss.
pub fn sync_dir(dir: &Path) -> Result<(), TrainKitError> {
    #[cfg(unix)]
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| TrainKitError::io(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Creates `dir` (its parents as usual; an existing `dir` is kept) and makes it readable by
/// its owner only: mode `0700` on unix, from its creation on (elsewhere: the platform's
/// default permissions).
pub fn create_private_dir(dir: &Path) -> Result<(), TrainKitError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| TrainKitError::io(dir, e))?;
    // the umask can only have removed bits, and an existing directory keeps its own: make it
    // exactly owner-only
    set_mode(dir, 0o700)
}

/// Writes `contents` to `path` atomically and durably: see [`write_atomic_with`].
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), TrainKitError> {
    write_atomic_with(path, |tmp| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(tmp)
            .map_err(|e| TrainKitError::io(tmp, e))?;
        file.write_all(contents)
            .map_err(|e| TrainKitError::io(tmp, e))
    })
}

/// Writes `path` through `write`, which fills a temporary file in the same directory (given
/// by its path, already created, owner-only: mode `0600` on unix); the temporary file is
/// then flushed to disk, renamed over `path` (`tempfile`'s persist) and the directory
/// flushed. A kill at any point leaves either the old or the new version of `path`, never a
/// part; an error removes the temporary file. Temporary names are unique, so processes that
/// write the same file never rename each other's.
pub fn write_atomic_with<E: From<TrainKitError>>(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let dir = parent_of(path);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        .tempfile_in(dir)
        .map_err(|e| TrainKitError::io(dir, e))?;
    write(tmp.path())?;
    persist(tmp, path)?;
    Ok(())
}

/// Flushes `tmp` (reopened by path: `write` may have replaced the file) and renames it over
/// `path`, then flushes the directory.
fn persist(tmp: NamedTempFile, path: &Path) -> Result<(), TrainKitError> {
    fs::File::open(tmp.path())
        .and_then(|f| f.sync_all())
        .map_err(|e| TrainKitError::io(tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| TrainKitError::io(path, e.error))?;
    sync_dir(parent_of(path))
}

/// Writes `bytes` to a new file `path` that is owner-only from its creation on (mode `0600`
/// on unix: the data is never readable by others, not even briefly) and flushes it to disk.
/// An existing file is replaced (removed first, so that its old permissions do not carry
/// over). Not atomic: use it inside a directory written by [`crate::files::replace_dir`].
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TrainKitError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(TrainKitError::io(path, e));
        }
        _ => {}
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| TrainKitError::io(path, e))?;
    set_mode(path, 0o600)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| TrainKitError::io(path, e))
}

/// `path` with `.suffix` appended to its last component.
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}
