//! The `supportbot-ingest` binary as a user runs it. Having an integration test here also makes
//! `cargo test --workspace` build the binary, which the end-to-end suite (`tests/`) runs.

use std::process::Command;

/// The binary in a scratch directory, with no `SUPPORTBOT__*` overrides from the caller.
fn ingest(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_supportbot-ingest"));
    cmd.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("SUPPORTBOT__") {
            cmd.env_remove(k);
        }
    }
    cmd
}

#[test]
fn a_missing_path_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = ingest(dir.path()).arg("no/such/dir").output().expect("spawn");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such/dir"));
}
