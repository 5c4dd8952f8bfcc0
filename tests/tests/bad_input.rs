//! Bad input is skipped with its path and reason, the run goes on, the exit code says so, and a
//! killed ingest leaves an index that opens and a rerun that completes.

use std::time::Instant;

use supportbot_tests::{Workspace, assets_available, copy_dir, examples_dir, repo_root};

#[test]
fn broken_files_are_skipped_with_reasons_and_good_ones_land() {
    if !assets_available("bad_input") {
        return;
    }
    let ws = Workspace::new();
    let bad = ws.path().join("bad");
    copy_dir(&repo_root().join("tests/fixtures/bad"), &bad);
    // An oversized file, made here rather than committed.
    let mut ws_limits = Workspace::new();
    ws_limits.set_env("SUPPORTBOT__INGEST__MAX_FILE_BYTES", "100000");
    std::fs::write(bad.join("huge.txt"), "word ".repeat(50_000)).expect("write");

    let out = ws_limits.run("supportbot-ingest", &["--json", bad.to_str().expect("utf-8")]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit code 1 means files were skipped: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let failures = summary["failures"].as_array().expect("failures");
    let reason_of = |name: &str| -> String {
        failures
            .iter()
            .find(|f| f["path"] == name)
            .map(|f| f["reason"].as_str().unwrap_or_default().to_lowercase())
            .unwrap_or_else(|| panic!("{name} was not reported as skipped: {summary}"))
    };
    assert!(reason_of("binary.md").contains("binary"));
    assert!(reason_of("empty.md").contains("empty") || reason_of("empty.md").contains("no text"));
    assert!(reason_of("whitespace.txt").contains("empty") || reason_of("whitespace.txt").contains("no text"));
    assert!(reason_of("bad-quoting.csv").contains("csv"));
    assert!(reason_of("invalid.json").contains("json"));
    assert!(reason_of("invalid.yaml").contains("yaml"));
    assert!(reason_of("broken.pdf").contains("pdf"));
    assert!(reason_of("missing-columns.csv").contains("question"));
    assert!(reason_of("huge.txt").contains("max_file_bytes"));
    assert_eq!(summary["failed"].as_u64(), Some(failures.len() as u64));
    assert!(summary["added"].as_u64().expect("added") >= 1, "good.md must land: {summary}");

    // Human output names each skipped file on stderr.
    let out = ws.run("supportbot-ingest", &[bad.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid.json") && err.contains("broken.pdf"), "{err}");
}

fn status(ws: &Workspace) -> serde_json::Value {
    let out = ws.run("supportbot", &["status", "--json"]);
    assert!(out.status.success(), "index does not open: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("status json")
}

#[test]
fn kill_9_mid_ingest_leaves_an_index_that_opens_and_a_rerun_completes() {
    if !assets_available("kill_9") {
        return;
    }
    // A corpus large enough to be killed in the middle: the examples, eight times over.
    let ws = Workspace::new();
    let kb = ws.path().join("kb");
    for i in 0..8 {
        copy_dir(&examples_dir(), &kb.join(format!("copy{i}")));
    }
    let kb_arg = kb.to_str().expect("utf-8");
    let reference = Workspace::new();
    let started = Instant::now();
    let (_, clean) = reference.ingest_json(&[kb_arg]);
    // Kill points as shares of a whole run on this machine: half-way into the first run, then a
    // quarter into the rerun, which resumes where the first stopped.
    let whole = started.elapsed();

    for first_share in [2u32, 4] {
        // A run faster than the timed one (that one may have shared the CPU) can end before the
        // kill point: then start over from an empty index, killing earlier.
        let mut share = first_share;
        loop {
            let mut child = ws.command("supportbot-ingest").arg(kb_arg).spawn().expect("spawn");
            std::thread::sleep(whole / share);
            if child.try_wait().expect("poll the ingest").is_none() {
                child.kill().expect("SIGKILL");
                let _ = child.wait();
                break;
            }
            assert!(share < 64, "every ingest ended before its kill point: nothing was killed mid-run");
            std::fs::remove_dir_all(ws.index_dir()).expect("start over");
            share *= 2;
        }
        // Whatever state the kill left, the index opens (or was never created).
        if ws.index_dir().join("shard").exists() {
            status(&ws);
        }
    }
    let (code, rerun) = ws.ingest_json(&[kb_arg]);
    assert_eq!(code, 0, "{rerun}");
    let after = status(&ws);
    assert_eq!(after["documents"].as_u64(), clean["added"].as_u64(), "{after}");
    assert_eq!(after["chunks"].as_u64(), clean["chunks"].as_u64(), "leftover or missing chunks: {after}");
    // And a further run has nothing to do.
    let (_, idle) = ws.ingest_json(&[kb_arg]);
    assert_eq!(idle["chunks"].as_u64(), Some(0), "{idle}");
}
