//! What the command-line tests share.

use std::process::Command;

/// `distil-dp` with the given arguments: (success, stdout, stderr).
pub fn distil_dp(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_distil-dp"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
