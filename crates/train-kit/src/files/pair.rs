//! Several files of one directory replaced together: after a crash, a reader finds either
//! every old version or every new one, never a mix (e.g. a model's configuration beside
//! another model's weights).
//!
//! How: every new file is written to a temporary sibling and flushed; a journal naming
//! them is then written atomically (the commit point); the temporary files are renamed into
//! place and the journal removed. [`recover_files`] finishes a commit that a crash
//! interrupted (the journal exists: the renames are redone) or discards one that never
//! committed (no journal: temporary files are removed). Readers call it first.

use std::fs;
use std::path::{Path, PathBuf};

use super::file::{sync_dir, write_atomic};
use crate::error::TrainKitError;

/// The journal of a commit in progress in a directory.
const JOURNAL: &str = ".replace-files.journal";

/// The temporary sibling of file `name` in `dir`.
fn staged(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.staged"))
}

/// Replaces the files `names` of `dir` (created if needed) together: `write` receives one
/// temporary path per name, in order, and fills each (a file, created or overwritten by
/// `write`); see the module docs for the crash guarantee. Names are plain file names (no
/// separator). Also finishes or discards an interrupted earlier call first.
pub fn replace_files<E: From<TrainKitError>>(
    dir: &Path,
    names: &[&str],
    write: impl FnOnce(&[PathBuf]) -> Result<(), E>,
) -> Result<(), E> {
    fs::create_dir_all(dir).map_err(|e| TrainKitError::io(dir, e))?;
    recover_files(dir)?;
    let staged_paths: Vec<PathBuf> = names.iter().map(|name| staged(dir, name)).collect();
    let written = write(&staged_paths);
    if let Err(e) = written {
        for path in &staged_paths {
            let _ = fs::remove_file(path);
        }
        return Err(e);
    }
    for path in &staged_paths {
        fs::File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(|e| TrainKitError::io(path, e))?;
    }
    write_atomic(&dir.join(JOURNAL), (names.join("\n") + "\n").as_bytes())?;
    recover_files(dir)?;
    Ok(())
}

/// Finishes a [`replace_files`] that committed (its journal exists) but was interrupted
/// before every file was in place, or removes the temporary files of one that never
/// committed. Does nothing in a directory without either.
pub fn recover_files(dir: &Path) -> Result<(), TrainKitError> {
    let journal = dir.join(JOURNAL);
    match fs::read_to_string(&journal) {
        Ok(text) => {
            for name in text.lines().filter(|l| !l.is_empty()) {
                let from = staged(dir, name);
                if from.exists() {
                    let to = dir.join(name);
                    fs::rename(&from, &to).map_err(|e| TrainKitError::io(&to, e))?;
                }
            }
            sync_dir(dir)?;
            fs::remove_file(&journal).map_err(|e| TrainKitError::io(&journal, e))?;
            sync_dir(dir)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let Ok(entries) = fs::read_dir(dir) else {
                return Ok(());
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') && name.ends_with(".staged") {
                    let _ = fs::remove_file(entry.path());
                }
            }
            Ok(())
        }
        Err(e) => Err(TrainKitError::io(&journal, e)),
    }
}
