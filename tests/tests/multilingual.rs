//! The multilingual model for Chinese, Japanese and Korean, through the real binaries: Chinese
//! questions are matched by meaning, the index records the model pair, and a required but
//! missing model is a clear error while `auto` carries on without it.

use supportbot_tests::{Workspace, answerable_in, assets_available, examples_dir, multilingual_available};

fn examples() -> String {
    examples_dir().to_str().expect("utf-8 path").to_string()
}

#[test]
fn chinese_questions_are_matched_by_meaning() {
    if !assets_available("chinese_questions_are_matched_by_meaning")
        || !multilingual_available("chinese_questions_are_matched_by_meaning")
    {
        return;
    }
    let ws = Workspace::new();
    let (code, summary) = ws.ingest_json(&[&examples()]);
    assert_eq!(code, 0, "{summary}");

    let out = ws.run("supportbot", &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json");
    let model = status["embedding_model"].as_str().unwrap_or_default();
    assert!(model.contains("multilingual-e5-small"), "index should record the multilingual model: {status}");

    let chinese = answerable_in("zh");
    let misses = ws.misses(&chinese, 1);
    assert!(misses.len() <= chinese.len() / 10, "Chinese hit@1 misses:\n{}", misses.join("\n"));

    // "Does it work on an Apple laptop?" shares no keyword with the section on installing the
    // desktop client (which names macOS): only the meaning can find it.
    let out = ws.search("跟苹果笔记本兼容吗？", 3);
    let results = out["results"].as_array().expect("results");
    let found = results.iter().find(|r| r["citation"] == "docs/zh/quickstart.md#安装桌面客户端");
    let found = found.unwrap_or_else(|| panic!("not in the top 3: {out}"));
    assert!(found["bm25_score"].is_null(), "expected a match by meaning alone: {found}");
}

#[test]
fn a_required_multilingual_model_that_is_missing_is_a_clear_error() {
    if !assets_available("a_required_multilingual_model_that_is_missing_is_a_clear_error") {
        return;
    }
    let mut ws = Workspace::new();
    let missing = ws.path().join("no-such-model");
    ws.set_env("SUPPORTBOT__EMBEDDING__MULTILINGUAL_DIR", missing.to_str().expect("utf-8"));
    ws.set_env("SUPPORTBOT__EMBEDDING__MULTILINGUAL", "on");
    let out = ws.run("supportbot-ingest", &[&examples()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("libe5.so") && err.contains("scripts/setup"), "unhelpful error: {err}");

    // `auto` (the default) carries on with the default model alone.
    ws.set_env("SUPPORTBOT__EMBEDDING__MULTILINGUAL", "auto");
    let (code, summary) = ws.ingest_json(&[&examples()]);
    assert_eq!(code, 0, "{summary}");
    let out = ws.run("supportbot", &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json");
    assert!(!status["embedding_model"].as_str().unwrap_or_default().contains("e5"), "{status}");
    let got = ws.citations("服务器最少需要多少内存？", 5);
    assert!(got.iter().any(|c| c == "docs/zh/quickstart.md#系统要求"), "keyword search still finds it: {got:?}");
}

#[tokio::test]
async fn a_chinese_curated_answer_is_found_by_meaning() {
    if !assets_available("a_chinese_curated_answer_is_found_by_meaning")
        || !multilingual_available("a_chinese_curated_answer_is_found_by_meaning")
    {
        return;
    }
    use supportbot_core::review::{CuratedAnswer, CuratedStatus};
    use supportbot_core::store::SearchFilter;
    use supportbot_core::wiring;

    let ws = Workspace::new();
    let settings = supportbot_tests::test_settings(ws.path(), &ws.index_dir());
    let s = settings.clone();
    let embedder =
        tokio::task::spawn_blocking(move || wiring::embedder(&s, None)).await.expect("join").expect("models");
    assert!(embedder.has_multilingual());
    let store =
        wiring::open_store(&settings, Some(wiring::compatibility(embedder.model_id(), embedder.dimension()).layout()))
            .await
            .expect("index");
    let curated = CuratedAnswer {
        id: "c1".into(),
        questions: vec!["如何重置管理员密码？".into()],
        answer: "在服务器上运行 driftwood-admin reset-password，然后用新密码登录。".into(),
        citation: None,
        url: None,
        status: CuratedStatus::Active,
        source_exchange: None,
        created_by: "op".into(),
        created_at: 0,
        updated_at: 0,
    };
    supportbot_core::curated::index_curated(store.as_ref(), &embedder, &curated).await.expect("indexed");

    // "I forgot the admin login code, what now?" shares no word with the curated question.
    let e = embedder.clone();
    let q = tokio::task::spawn_blocking(move || e.embed_multilingual_query("管理员的登录口令忘了怎么办"))
        .await
        .expect("join")
        .expect("multilingual model")
        .expect("embeds");
    let hits = store.multilingual_search(&q, 3, &SearchFilter::default()).await.expect("search");
    assert!(
        hits.first().is_some_and(|h| h.chunk.source.contains("c1")),
        "the curated answer carries the multilingual vector: {:?}",
        hits.iter().map(|h| &h.chunk.source).collect::<Vec<_>>()
    );
}

#[test]
fn under_auto_a_process_follows_the_model_the_index_was_built_with() {
    let test = "under_auto_a_process_follows_the_model_the_index_was_built_with";
    if !assets_available(test) || !multilingual_available(test) {
        return;
    }
    let mut ws = Workspace::new();
    let recorded = |ws: &Workspace| {
        let out = ws.run("supportbot", &["status", "--json"]);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json");
        status["embedding_model"].as_str().unwrap_or_default().to_string()
    };

    // Built without the model, then the model is installed (`auto` finds it): the index keeps
    // answering and syncing as it was built, until a rebuild adds the model.
    ws.set_env("SUPPORTBOT__EMBEDDING__MULTILINGUAL", "off");
    let (code, summary) = ws.ingest_json(&[&examples()]);
    assert_eq!(code, 0, "{summary}");
    ws.set_env("SUPPORTBOT__EMBEDDING__MULTILINGUAL", "auto");
    let got = ws.citations("服务器最少需要多少内存？", 5);
    assert!(got.iter().any(|c| c == "docs/zh/quickstart.md#系统要求"), "search on the old index: {got:?}");
    let (code, summary) = ws.ingest_json(&[&examples()]);
    assert_eq!(code, 0, "a sync must not ask for a rebuild: {summary}");
    assert!(!recorded(&ws).contains("e5"), "{}", recorded(&ws));
    let (code, summary) = ws.ingest_json(&["--rebuild", &examples()]);
    assert_eq!(code, 0, "{summary}");
    assert!(recorded(&ws).contains("multilingual-e5-small"), "{}", recorded(&ws));
    // The rebuilt index has the multilingual vector it lacked, and its passages are found.
    let got = ws.citations("服务器最少需要多少内存？", 5);
    assert!(got.iter().any(|c| c == "docs/zh/quickstart.md#系统要求"), "search on the rebuilt index: {got:?}");

    // Built with the model, which then goes missing: a clear error says why and what to do.
    let missing = ws.path().join("no-such-model");
    ws.set_env("SUPPORTBOT__EMBEDDING__MULTILINGUAL_DIR", missing.to_str().expect("utf-8"));
    let out = ws.run("supportbot", &["search", "服务器最少需要多少内存？"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("libe5.so")
            && err.contains("index was built with the multilingual model")
            && err.contains("--rebuild"),
        "unhelpful error: {err}"
    );
}
