//! Atomic files and directories: contents, owner-only permissions, no temporary file left,
//! a failed write keeps the old version, and a multi-file replace survives a crash at its
//! commit point either way.

use std::fs;
use std::path::{Path, PathBuf};

use train_kit::TrainKitError;
use train_kit::files::{
    readable_dir, recover_files, replace_dir, replace_files, write_atomic, write_atomic_with,
};

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_file_is_replaced_whole_owner_only_and_without_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    write_atomic(&path, b"old").unwrap();
    write_atomic(&path, b"new contents").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"new contents");
    assert_eq!(names(dir.path()), ["report.json"]);
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn a_failed_write_keeps_the_old_file_and_removes_the_temporary_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    write_atomic(&path, b"good").unwrap();
    let err = write_atomic_with(&path, |tmp: &Path| -> Result<(), TrainKitError> {
        fs::write(tmp, b"half").unwrap();
        Err(TrainKitError::io(
            tmp,
            std::io::Error::other("disk full (simulated)"),
        ))
    })
    .unwrap_err();
    assert!(err.to_string().contains("disk full"), "{err}");
    assert_eq!(fs::read(&path).unwrap(), b"good");
    assert_eq!(names(dir.path()), ["model.safetensors"]);
}

/// Writes `a` and `b` into `dir` together.
fn pair(dir: &Path, a: &str, b: &str) {
    replace_files(dir, &["a.json", "b.bin"], |staged: &[PathBuf]| {
        fs::write(&staged[0], a).map_err(|e| TrainKitError::io(&staged[0], e))?;
        fs::write(&staged[1], b).map_err(|e| TrainKitError::io(&staged[1], e))
    })
    .unwrap();
}

fn read_pair(dir: &Path) -> (String, String) {
    recover_files(dir).unwrap();
    (
        fs::read_to_string(dir.join("a.json")).unwrap(),
        fs::read_to_string(dir.join("b.bin")).unwrap(),
    )
}

#[test]
fn files_replaced_together_are_read_together_after_a_crash_at_either_side_of_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("ckpt");
    pair(&d, "config 1", "weights 1");
    assert_eq!(read_pair(&d), ("config 1".into(), "weights 1".into()));
    assert_eq!(names(&d), ["a.json", "b.bin"]);

    // a crash before the commit point: staged files, no journal -> the old pair
    fs::write(d.join(".a.json.staged"), "config 2").unwrap();
    fs::write(d.join(".b.bin.staged"), "weights 2").unwrap();
    assert_eq!(read_pair(&d), ("config 1".into(), "weights 1".into()));
    assert_eq!(names(&d), ["a.json", "b.bin"]);

    // a crash after the commit point, one file already renamed: the new pair
    fs::write(d.join(".b.bin.staged"), "weights 3").unwrap();
    fs::write(d.join("a.json"), "config 3").unwrap();
    fs::write(d.join(".replace-files.journal"), "a.json\nb.bin\n").unwrap();
    assert_eq!(read_pair(&d), ("config 3".into(), "weights 3".into()));
    assert_eq!(names(&d), ["a.json", "b.bin"]);

    // a failing writer leaves the pair as it was
    let err = replace_files(&d, &["a.json", "b.bin"], |staged: &[PathBuf]| {
        fs::write(&staged[0], "config 4").unwrap();
        Err(TrainKitError::io(
            &staged[1],
            std::io::Error::other("simulated"),
        ))
    })
    .unwrap_err();
    assert!(err.to_string().contains("simulated"));
    assert_eq!(read_pair(&d), ("config 3".into(), "weights 3".into()));
    assert_eq!(names(&d), ["a.json", "b.bin"]);
}

#[test]
fn a_directory_is_replaced_whole_and_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("checkpoint");
    for version in ["1", "2"] {
        replace_dir(&d, |partial: &Path| -> Result<(), TrainKitError> {
            fs::write(partial.join("state.json"), version)
                .map_err(|e| TrainKitError::io(partial, e))
        })
        .unwrap();
    }
    assert_eq!(fs::read_to_string(d.join("state.json")).unwrap(), "2");
    assert_eq!(readable_dir(&d, "state.json"), Some(d.clone()));
    assert_eq!(names(dir.path()), ["checkpoint"]);
    #[cfg(unix)]
    {
        assert_eq!(mode(&d), 0o700);
        assert_eq!(mode(&d.join("state.json")), 0o600);
    }
}
