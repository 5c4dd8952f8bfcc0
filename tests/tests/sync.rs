//! Sync semantics end to end: unchanged files are not re-embedded, changed files are replaced
//! without duplicates, removed files disappear, `--dry-run` writes nothing, `--rebuild` starts
//! over, and another model is refused.

use std::fs;

use supportbot_tests::{Workspace, assets_available, copy_dir, examples_dir};

fn kb_copy(ws: &Workspace) -> std::path::PathBuf {
    let kb = ws.path().join("kb");
    copy_dir(&examples_dir(), &kb);
    kb
}

fn count(summary: &serde_json::Value, key: &str) -> u64 {
    summary[key].as_u64().unwrap_or_else(|| panic!("summary lacks integer {key}: {summary}"))
}

#[test]
fn second_run_changes_nothing_then_edits_and_removals_sync() {
    if !assets_available("sync") {
        return;
    }
    let ws = Workspace::new();
    let kb = kb_copy(&ws);
    let kb_arg = kb.to_str().expect("utf-8");
    let (_, first) = ws.ingest_json(&[kb_arg]);
    let total = count(&first, "added");
    assert!(total >= 15, "{first}");
    assert!(count(&first, "chunks") > total);

    let (_, again) = ws.ingest_json(&[kb_arg]);
    assert_eq!(
        (count(&again, "added"), count(&again, "changed"), count(&again, "removed"), count(&again, "unchanged")),
        (0, 0, 0, total)
    );
    assert_eq!(count(&again, "chunks"), 0, "nothing re-embedded: {again}");

    // Edit one page: a fact moves from one phrase to another.
    let page = kb.join("docs/guide/upgrade.md");
    let mut text = fs::read_to_string(&page).expect("upgrade.md exists in examples");
    text.push_str("\n\n## Zebra mode\n\nThe quasar flag enables zebra mode for upgrades of pelican clusters.\n");
    fs::write(&page, text).expect("write");
    // Remove another.
    fs::remove_file(kb.join("docs/troubleshooting/ports.md")).expect("ports.md exists in examples");

    let (_, third) = ws.ingest_json(&[kb_arg]);
    assert_eq!((count(&third, "changed"), count(&third, "removed")), (1, 1), "{third}");
    assert_eq!(count(&third, "unchanged"), total - 2);

    let hits = ws.search("quasar flag zebra mode pelican", 3);
    let top = &hits["results"][0];
    assert_eq!(top["citation"], "docs/guide/upgrade.md#zebra-mode", "{hits}");
    assert!(
        ws.citations("which ports does Driftwood use", 10)
            .iter()
            .all(|c| !c.starts_with("docs/troubleshooting/ports.md")),
        "removed file still searchable"
    );

    // No duplicates: the same chunk appears once, and totals agree with a fresh ingest.
    let status: serde_json::Value =
        serde_json::from_slice(&ws.run("supportbot", &["status", "--json"]).stdout).expect("status json");
    let fresh = Workspace::new();
    let (_, fresh_summary) = fresh.ingest_json(&[kb_arg]);
    assert_eq!(status["chunks"].as_u64(), Some(count(&fresh_summary, "chunks")), "index has leftovers: {status}");
    assert_eq!(status["documents"].as_u64(), Some(total - 1));
}

#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    if !assets_available("dry_run") {
        return;
    }
    let ws = Workspace::new();
    let kb = kb_copy(&ws);
    let kb_arg = kb.to_str().expect("utf-8");
    let (_, plan) = ws.ingest_json(&["--dry-run", kb_arg]);
    assert!(count(&plan, "added") >= 15);
    assert_eq!(count(&plan, "chunks"), 0);
    assert!(!ws.index_dir().join("shard").exists(), "a dry run created the index");

    ws.ingest_json(&[kb_arg]);
    fs::remove_file(kb.join("faq/billing.json")).expect("billing.json exists");
    let out = ws.run("supportbot-ingest", &["--dry-run", kb_arg]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("remove") && text.contains("faq/billing.json"), "{text}");
    // Still there: the dry run removed nothing.
    let (_, plan) = ws.ingest_json(&["--dry-run", kb_arg]);
    assert_eq!(count(&plan, "removed"), 1);
}

#[test]
fn another_model_is_refused_until_rebuild() {
    if !assets_available("rebuild") {
        return;
    }
    let mut ws = Workspace::new();
    let kb = kb_copy(&ws);
    let kb_arg = kb.to_str().expect("utf-8");
    ws.ingest_json(&[kb_arg]);
    ws.set_env("SUPPORTBOT__EMBEDDING__MODEL_ID", "some-other-model");
    let out = ws.run("supportbot-ingest", &[kb_arg]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--rebuild") && err.contains("some-other-model"), "{err}");
    let search = ws.run("supportbot", &["search", "password"]);
    assert!(!search.status.success());
    assert!(String::from_utf8_lossy(&search.stderr).contains("--rebuild"));

    let (code, rebuilt) = ws.ingest_json(&["--rebuild", kb_arg]);
    assert_eq!(code, 0);
    assert!(count(&rebuilt, "added") >= 15, "{rebuilt}");
    assert!(ws.search("password", 1)["results"].as_array().is_some_and(|r| r.len() == 1));
}
