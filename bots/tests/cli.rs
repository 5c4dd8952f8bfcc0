//! The `supportbot` binary as a user runs it. Having an integration test here also makes
//! `cargo test --workspace` build the binary, which the end-to-end suite (`tests/`) runs.

use std::process::Command;

/// The binary in a scratch directory, with no `SUPPORTBOT__*` overrides from the caller.
fn supportbot(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_supportbot"));
    cmd.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("SUPPORTBOT__") {
            cmd.env_remove(k);
        }
    }
    cmd
}

#[test]
fn config_check_redacts_secrets_and_names_bad_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = supportbot(dir.path())
        .args(["config", "check"])
        .env("SUPPORTBOT__GEMINI__API_KEY", "sk-very-secret-value")
        .output()
        .expect("spawn");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("sk-very-secret-value"), "secret leaked: {text}");
    assert!(text.contains("[redacted]"));

    std::fs::write(dir.path().join("supportbot.toml"), "[store]\npathh = \"x\"\n").expect("write");
    let out = supportbot(dir.path()).args(["config", "check"]).output().expect("spawn");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("store.pathh") && err.contains("supportbot.toml"), "{err}");
}
