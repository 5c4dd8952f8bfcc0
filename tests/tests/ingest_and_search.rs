//! End to end through the real binaries, the real ONNX model and the embedded index: ingest the
//! sample knowledge base, then ask it questions whose answers are known.

use supportbot_tests::{Workspace, answerable_in, assets_available, examples_dir, labelled_questions};

fn ingested_examples() -> Option<Workspace> {
    if !assets_available("ingest_and_search") {
        return None;
    }
    let ws = Workspace::new();
    let (code, summary) = ws.ingest_json(&[examples_dir().to_str().expect("utf-8 path")]);
    assert_eq!(code, 0, "examples/ must ingest cleanly: {summary}");
    Some(ws)
}

#[test]
fn sample_questions_find_their_citations() {
    let Some(ws) = ingested_examples() else { return };
    let answerable: Vec<_> = labelled_questions().into_iter().filter(|q| !q.unanswerable).collect();
    assert!(answerable.len() >= 20, "the labelled set is too small to mean anything");
    let (mut top1, mut top5, mut misses) = (0, 0, Vec::new());
    for q in &answerable {
        let got = ws.citations(&q.q, 5);
        if got.first().is_some_and(|c| q.expect.contains(c)) {
            top1 += 1;
        }
        if got.iter().any(|c| q.expect.contains(c)) {
            top5 += 1;
        } else {
            misses.push(format!("{:?}: expected {:?}, got {:?}", q.q, q.expect, got));
        }
    }
    let n = answerable.len() as f64;
    eprintln!("hit@1 {:.2}, hit@5 {:.2} over {} questions", top1 as f64 / n, top5 as f64 / n, answerable.len());
    assert!(top5 as f64 / n >= 0.9, "hit@5 {top5}/{n} below 0.9; misses:\n{}", misses.join("\n"));
    assert!(top1 as f64 / n >= 0.7, "hit@1 {top1}/{n} below 0.7; misses:\n{}", misses.join("\n"));
}

#[test]
fn chinese_questions_find_chinese_passages() {
    let Some(ws) = ingested_examples() else { return };
    let chinese = answerable_in("zh");
    assert!(chinese.len() >= 4, "need Chinese questions in examples/questions.jsonl");
    let misses = ws.misses(&chinese, 5);
    assert!(misses.len() <= chinese.len() / 5, "Chinese misses:\n{}", misses.join("\n"));
}

#[test]
fn search_json_has_the_documented_shape() {
    let Some(ws) = ingested_examples() else { return };
    let out = ws.search("How do I reset my password?", 3);
    assert_eq!(out["query"], "How do I reset my password?");
    let results = out["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    let mut keys: Vec<&str> = results[0].as_object().expect("object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["anchor", "bm25_score", "citation", "dense_score", "kind", "rank", "score", "source", "text", "title"]
    );
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["rank"], i + 1);
        let source = r["source"].as_str().expect("source");
        let citation = r["citation"].as_str().expect("citation");
        match r["anchor"].as_str() {
            Some(anchor) => assert_eq!(citation, format!("{source}#{anchor}")),
            None => assert_eq!(citation, source),
        }
        assert!(["doc", "faq"].contains(&r["kind"].as_str().expect("kind")));
        assert!(!source.starts_with('/'), "source is relative to its root: {source}");
    }
    let scores: Vec<f64> = results.iter().map(|r| r["score"].as_f64().expect("score")).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "ranked by score: {scores:?}");
}

#[test]
fn filters_restrict_results() {
    let Some(ws) = ingested_examples() else { return };
    let out = ws.run("supportbot", &["search", "--json", "--kind", "faq", "--limit", "5", "password"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let results = json["results"].as_array().expect("results");
    assert!(!results.is_empty());
    assert!(results.iter().all(|r| r["kind"] == "faq"), "{json}");
}

#[test]
fn status_reports_what_is_indexed() {
    let Some(ws) = ingested_examples() else { return };
    let out = ws.run("supportbot", &["status", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(s["dimension"], 384);
    assert_eq!(s["vector_bits"], 16, "new indexes store half-precision vectors: {s}");
    assert!(s["documents"].as_u64().expect("documents") >= 15, "{s}");
    assert!(s["chunks"].as_u64().expect("chunks") > s["documents"].as_u64().expect("documents"));
    let root = &s["roots"][0];
    assert_eq!(root["name"], "examples");
    assert!(root["last_sync"].is_string(), "{s}");
}

/// An options reference lists each setting as a sentence under its own heading; such a passage is
/// mostly heading and loosely matches many questions. The task page that walks through the job
/// should come first, and it does because the index records each passage's length.
#[test]
fn a_task_page_outranks_a_one_line_option_about_the_same_thing() {
    if !assets_available("a_task_page_outranks_a_one_line_option_about_the_same_thing") {
        return;
    }
    let mut ws = Workspace::new();
    let docs = ws.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("print-options.md"),
        "# Print Options\n\n## Grayscale\n\nPrints all colors as grayscale.\n\n\
         ## Paper tray\n\nUses the paper tray set in the printer settings.\n\n\
         ## Brochure\n\nPrints the document in brochure format.\n",
    )
    .unwrap();
    std::fs::write(
        docs.join("printing-grey.md"),
        "# Printing in Black and White\n\nWhen your color ink runs low, or a draft does not need color, \
         you can print a document in black and white. Choose File - Print to open the Print dialog. \
         On the General tab, choose the printer, then open its Properties and look for the black and \
         white setting; the name depends on the printer driver. Alternatively, open Tools - Options - \
         Print and mark the option to convert colors, which applies to every document you print \
         afterwards. Click Print. Remember to switch the option off again when you want to print in \
         color.\n",
    )
    .unwrap();
    let (code, summary) = ws.ingest_json(&["docs"]);
    assert_eq!(code, 0, "{summary}");
    let question = "can I print in grayscale to save colour ink?";
    let demoted = ws.citations(question, 3);
    assert_eq!(
        demoted.first().map(String::as_str),
        Some("printing-grey.md#printing-in-black-and-white"),
        "got {demoted:?}"
    );
    // Turning the demotion off shows what it changed: the one-line option first.
    ws.set_env("SUPPORTBOT__SEARCH__SHORT_PASSAGE_WEIGHT", "1.0");
    let plain = ws.citations(question, 3);
    assert_eq!(plain.first().map(String::as_str), Some("print-options.md#grayscale"), "got {plain:?}");
}

/// ONNX Runtime's Microsoft builds queue a usage report for Microsoft in every process that loads
/// them, unless `ORT_DISABLE_TELEMETRY` says no; the binaries say no unless the operator chose.
#[test]
fn the_onnx_runtime_queues_no_usage_report() {
    if !assets_available("the_onnx_runtime_queues_no_usage_report") {
        return;
    }
    let ws = Workspace::new();
    let docs = ws.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("reset.md"), "# Resetting a password\n\nOpen Settings, then Account, then Reset.\n")
        .unwrap();
    // A home of its own, so the report (if any) lands where this test looks; the models from
    // the real data directory.
    let home = ws.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let reports = home.join(".cache/Microsoft/DeveloperTools/.onnxruntime");
    let run = |binary: &str, args: &[&str], opt_out: Option<&str>| {
        let mut cmd = ws.command(binary);
        cmd.env("HOME", &home).env("SUPPORTBOT_DATA", supportbot_tests::data_dir()).env_remove("XDG_CACHE_HOME");
        // The library reports nothing when `CI` is set, as under scripts/test, which would hide
        // the reports this test looks for.
        cmd.env_remove("CI");
        match opt_out {
            Some(v) => cmd.env("ORT_DISABLE_TELEMETRY", v),
            None => cmd.env_remove("ORT_DISABLE_TELEMETRY"),
        };
        let out = cmd.args(args).output().expect("spawn");
        assert!(out.status.success(), "{binary} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run("supportbot-ingest", &["docs"], None);
    run("supportbot", &["search", "how do I reset my password"], None);
    assert!(!reports.exists(), "ONNX Runtime queued a usage report in {}", reports.display());
    // An operator who wants the reports can have them: the check above would see them.
    run("supportbot", &["search", "how do I reset my password"], Some("0"));
    assert!(reports.exists(), "with ORT_DISABLE_TELEMETRY=0 the library should have written {}", reports.display());
}
