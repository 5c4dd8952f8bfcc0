#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions
//! The operator and review-store commands of the real `supportbot` binary (`operator`, `token`,
//! `review`, `curated`) against a SQLite review store in a scratch directory, checked through
//! the store itself.

use std::io::Write as _;
use std::process::{Output, Stdio};

use supportbot_bots::web::auth::{token_hash, verify_password};
use supportbot_core::answer::{Citation, Latency, Outcome};
use supportbot_core::log::{AnswerLog, Exchange, Feedback, FeedbackKind, pseudonymize};
use supportbot_core::review::{CuratedAnswer, CuratedStatus, Role, SqlReviewStore, now_secs};
use supportbot_tests::{Workspace, assets_available};

const DAY: i64 = 86_400;

/// A workspace whose review store is `review.sqlite` inside it.
fn workspace() -> (Workspace, String) {
    let mut ws = Workspace::new();
    let url = format!("sqlite://{}/review.sqlite", ws.path().display());
    ws.set_env("SUPPORTBOT__REVIEW__DATABASE_URL", &url);
    (ws, url)
}

async fn store(url: &str) -> SqlReviewStore {
    SqlReviewStore::connect(url, 0.5).await.unwrap()
}

/// `supportbot ARGS…` with `stdin` piped in.
fn run_with_stdin(ws: &Workspace, args: &[&str], stdin: &str) -> Output {
    let mut child = ws
        .command("supportbot")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// `supportbot ARGS…`; panics with stderr unless it succeeds; returns stdout.
fn ok(ws: &Workspace, args: &[&str]) -> String {
    let out = ws.run("supportbot", args);
    assert!(out.status.success(), "supportbot {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn add_operator(ws: &Workspace, username: &str, password: &str, role: Option<&str>) -> Output {
    let mut args = vec!["operator", "add", username];
    if let Some(role) = role {
        args.extend(["--role", role]);
    }
    run_with_stdin(ws, &args, &format!("{password}\n"))
}

/// RFC 3339 (UTC) of Unix seconds (days-from-civil, inverted).
fn rfc3339(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(DAY), secs.rem_euclid(DAY));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+00:00", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn exchange(id: &str, user: &str, at: i64, question: &str) -> Exchange {
    Exchange {
        id: id.into(),
        channel: "telegram".into(),
        conversation: "telegram:42".into(),
        user: user.into(),
        question: question.into(),
        answer: format!("Answer to {id} [1]"),
        outcome: Outcome::Answered,
        backend: Some("extractive".into()),
        confidence: 0.9,
        citations: vec![Citation {
            n: 1,
            citation: "docs/a.md#x".into(),
            title: "A".into(),
            source: "docs/a.md".into(),
            url: None,
        }],
        passages: vec![],
        latency: Latency { retrieval: 10, generation: 20, total: 35, ..Default::default() },
        at: rfc3339(at),
        delivery: serde_json::json!({"platform": "telegram", "chat_id": 42}),
    }
}

fn feedback(id: &str, kind: FeedbackKind, user: &str) -> Feedback {
    Feedback { exchange_id: id.into(), kind, user: user.into(), at: rfc3339(now_secs()) }
}

async fn ids(store: &SqlReviewStore) -> Vec<String> {
    let mut ids: Vec<String> = store.all_exchanges().await.unwrap().into_iter().map(|(e, _)| e.id).collect();
    ids.sort();
    ids
}

#[test]
fn rfc3339_helper_is_right() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00+00:00");
    assert_eq!(rfc3339(951_782_400 + 3_723), "2000-02-29T01:02:03+00:00");
    assert_eq!(rfc3339(1_767_225_599), "2025-12-31T23:59:59+00:00");
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_are_added_listed_updated_and_removed() {
    let (ws, url) = workspace();
    let out = add_operator(&ws, "ana", "correct horse battery", None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("added operator ana (operator)"));

    let list = ok(&ws, &["operator", "list"]);
    let row = list.lines().find(|l| l.split_whitespace().next() == Some("ana")).unwrap();
    assert_eq!(row.split_whitespace().collect::<Vec<_>>(), ["ana", "operator"]);
    assert!(!list.contains("argon2") && !list.contains('$'), "the listing shows a hash: {list}");

    let s = store(&url).await;
    let ana = s.operator("ana").await.unwrap().unwrap();
    assert_eq!(ana.role, Role::Operator);
    assert!(verify_password("correct horse battery", &ana.password_hash));

    // Again: new password and role.
    let out = add_operator(&ws, "ana", "a much better password", Some("admin"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("updated operator ana (admin)"));
    let ana = s.operator("ana").await.unwrap().unwrap();
    assert_eq!(ana.role, Role::Admin);
    assert!(verify_password("a much better password", &ana.password_hash));
    assert!(!verify_password("correct horse battery", &ana.password_hash));

    let out = add_operator(&ws, "bo", "viewer's password", Some("viewer"));
    assert!(out.status.success(), "{}", stderr(&out));
    let list = ok(&ws, &["operator", "list"]);
    let rows: Vec<Vec<&str>> = list.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows, vec![vec!["ana", "admin"], vec!["bo", "viewer"]]);

    // An unknown role is refused by the command line.
    let out = add_operator(&ws, "cy", "long enough password", Some("root"));
    assert!(!out.status.success());
    assert!(s.operator("cy").await.unwrap().is_none());

    // Removal takes the account's tokens with it.
    let token = ok(&ws, &["token", "create", "ci", "--user", "bo"]).trim().to_string();
    assert!(s.api_token(&token_hash(&token)).await.unwrap().is_some());
    ok(&ws, &["operator", "remove", "bo"]);
    assert!(s.operator("bo").await.unwrap().is_none());
    assert!(s.api_token(&token_hash(&token)).await.unwrap().is_none());
    let list = ok(&ws, &["operator", "list"]);
    assert!(!list.contains("bo"), "{list}");

    let out = ws.run("supportbot", &["operator", "remove", "bo"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("no operator named bo in sqlite://"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn short_passwords_are_refused() {
    let (ws, url) = workspace();
    let out = add_operator(&ws, "ana", "short", None);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("too short") && err.contains("at least 10 characters"), "{err}");
    // Nine characters are one too few; an empty input is no password at all.
    let out = add_operator(&ws, "ana", "123456789", None);
    assert!(!out.status.success());
    let out = run_with_stdin(&ws, &["operator", "add", "ana"], "");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no password"), "{}", stderr(&out));
    assert!(store(&url).await.operator("ana").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn token_create_prints_a_token_the_store_accepts() {
    let (ws, url) = workspace();
    assert!(add_operator(&ws, "ana", "correct horse battery", Some("admin")).status.success());
    let out = ws.run("supportbot", &["token", "create", "helpdesk-sync", "--user", "ana"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "only the token goes to stdout: {stdout}");
    let token = stdout.trim();
    assert!(token.len() >= 40, "{token}");

    let s = store(&url).await;
    let op = s.api_token(&token_hash(token)).await.unwrap().unwrap();
    assert_eq!((op.username.as_str(), op.role), ("ana", Role::Admin));
    assert!(s.api_token(token).await.unwrap().is_none(), "the raw token must not be a key");
    // Only the hash is stored: the token's text is nowhere in the database files.
    for file in ["review.sqlite", "review.sqlite-wal"] {
        if let Ok(bytes) = std::fs::read(ws.path().join(file)) {
            assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()), "{file} holds the token");
        }
    }
    // A second token is another token.
    let second = ok(&ws, &["token", "create", "helpdesk-sync", "--user", "ana"]);
    assert_ne!(second.trim(), token);

    let out = ws.run("supportbot", &["token", "create", "ci", "--user", "nobody"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert!(err.contains("no operator named nobody in sqlite://"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn purge_deletes_only_old_exchanges() {
    let (ws, url) = workspace();
    let s = store(&url).await;
    let now = now_secs();
    s.record_exchange(&exchange("old1", "u_a", now - 40 * DAY, "q")).await.unwrap();
    s.record_exchange(&exchange("old2", "u_b", now - 31 * DAY, "q")).await.unwrap();
    s.record_exchange(&exchange("recent", "u_a", now - 29 * DAY, "q")).await.unwrap();
    s.record_exchange(&exchange("new", "u_b", now, "q")).await.unwrap();
    assert!(s.record_feedback(&feedback("old1", FeedbackKind::Down, "u_a")).await.unwrap());
    assert!(s.record_feedback(&feedback("new", FeedbackKind::Up, "u_b")).await.unwrap());

    let out = ok(&ws, &["review", "purge", "--older-than", "30"]);
    assert!(out.contains("deleted 2 exchanges"), "{out}");
    assert_eq!(ids(&s).await, ["new", "recent"]);
    assert!(s.item("old1").await.unwrap().is_none(), "the queue item went with its exchange");
    assert_eq!(s.feedback_for("new").await.unwrap().len(), 1);

    let out = ok(&ws, &["review", "purge", "--older-than", "30"]);
    assert!(out.contains("deleted 0 exchanges"), "{out}");
    let out = ok(&ws, &["review", "purge", "--older-than", "1"]);
    assert!(out.contains("deleted 1 exchanges"), "{out}");
    assert_eq!(ids(&s).await, ["new"]);
    let out = ws.run("supportbot", &["review", "purge", "--older-than", "-3"]);
    assert!(!out.status.success());
    assert_eq!(ids(&s).await, ["new"]);
}

/// A minimal RFC 4180 reader: records of fields, quoted fields may hold commas, quotes, newlines.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut records, mut record, mut field) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(!quoted, "unterminated quoted field");
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    records
}

#[tokio::test(flavor = "multi_thread")]
async fn export_writes_jsonl_and_csv_that_parse_back() {
    let (ws, url) = workspace();
    let s = store(&url).await;
    let now = now_secs();
    let tricky = "Port 8443, \"quoted\", and\na second line — ünïcödé 密码?";
    s.record_exchange(&exchange("e1", "u_a", now - 60, tricky)).await.unwrap();
    s.record_exchange(&exchange("e2", "u_b", now, "plain question")).await.unwrap();
    for kind in [FeedbackKind::Up, FeedbackKind::Up, FeedbackKind::Down] {
        assert!(s.record_feedback(&feedback("e1", kind, "u_c")).await.unwrap());
    }

    // JSON lines on stdout: one exchange per line, with its feedback.
    let jsonl = ok(&ws, &["review", "export"]);
    let lines: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{jsonl}");
    assert_eq!(lines[0]["id"], "e1");
    assert_eq!(lines[0]["question"], tricky);
    assert_eq!(lines[0]["user"], "u_a");
    assert_eq!(lines[0]["outcome"], "answered");
    assert_eq!(lines[0]["citations"][0]["citation"], "docs/a.md#x");
    let kinds: Vec<&str> =
        lines[0]["feedback"].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["up", "up", "down"]);
    assert_eq!(lines[1]["id"], "e2");
    assert_eq!(lines[1]["feedback"], serde_json::json!([]));
    let explicit = ok(&ws, &["review", "export", "--format", "jsonl"]);
    assert_eq!(explicit, jsonl);

    // CSV to a file: a header, then one record per exchange, quoting intact.
    let path = ws.path().join("exchanges.csv");
    let out = ok(&ws, &["review", "export", "--format", "csv", "--output", path.to_str().unwrap()]);
    assert!(out.is_empty(), "with --output nothing goes to stdout: {out}");
    let text = std::fs::read_to_string(&path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o077, 0, "exports are owner-only");
    }
    let records = parse_csv(&text);
    assert_eq!(records.len(), 3, "{text}");
    let header = &records[0];
    for column in [
        "id",
        "at",
        "channel",
        "conversation",
        "user",
        "outcome",
        "backend",
        "confidence",
        "question",
        "answer",
        "citations",
        "thumbs_up",
        "thumbs_down",
    ] {
        assert!(header.iter().any(|h| h == column), "no column {column} in {header:?}");
    }
    assert!(records.iter().all(|r| r.len() == header.len()), "ragged CSV: {records:?}");
    let col = |r: &Vec<String>, name: &str| r[header.iter().position(|h| h == name).unwrap()].clone();
    let e1 = &records[1];
    assert_eq!(col(e1, "id"), "e1");
    assert_eq!(col(e1, "question"), tricky);
    assert_eq!(col(e1, "answer"), "Answer to e1 [1]");
    assert_eq!(col(e1, "outcome"), "answered");
    assert_eq!(col(e1, "backend"), "extractive");
    assert_eq!(col(e1, "citations"), "docs/a.md#x");
    assert_eq!(col(e1, "thumbs_up"), "2");
    assert_eq!(col(e1, "thumbs_down"), "1");
    assert!((col(e1, "confidence").parse::<f32>().unwrap() - 0.9).abs() < 1e-6);
    assert_eq!(col(&records[2], "id"), "e2");
    assert_eq!(col(&records[2], "thumbs_up"), "0");

    let out = ws.run("supportbot", &["review", "export", "--format", "xml"]);
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn erase_user_removes_only_that_users_data() {
    let (mut ws, url) = workspace();
    ws.set_env("SUPPORTBOT__REVIEW__USER_SALT", "pepper");
    let s = store(&url).await;
    let now = now_secs();
    let erased = pseudonymize("pepper", "telegram", "12345");
    let other = pseudonymize("pepper", "telegram", "67890");
    // The same person under another platform, and the same number under no salt, are others.
    let discord = pseudonymize("pepper", "discord", "12345");
    let unsalted = pseudonymize("", "telegram", "12345");
    s.record_exchange(&exchange("mine1", &erased, now - 100, "q")).await.unwrap();
    s.record_exchange(&exchange("mine2", &erased, now, "q")).await.unwrap();
    // Logged while `review.raw_user_ids` was on.
    s.record_exchange(&exchange("mine-raw", "telegram:12345", now, "q")).await.unwrap();
    s.record_exchange(&exchange("theirs", &other, now, "q")).await.unwrap();
    s.record_exchange(&exchange("discord", &discord, now, "q")).await.unwrap();
    s.record_exchange(&exchange("unsalted", &unsalted, now, "q")).await.unwrap();
    assert!(s.record_feedback(&feedback("theirs", FeedbackKind::Down, &erased)).await.unwrap());
    assert!(s.record_feedback(&feedback("theirs", FeedbackKind::Up, &other)).await.unwrap());

    let out = ok(&ws, &["review", "erase-user", "telegram:12345"]);
    assert!(out.contains("erased 3 exchanges"), "{out}");
    assert_eq!(ids(&s).await, ["discord", "theirs", "unsalted"]);
    let left = s.feedback_for("theirs").await.unwrap();
    assert_eq!(left.iter().map(|f| f.user.as_str()).collect::<Vec<_>>(), [other.as_str()]);

    // By the pseudonym the console shows.
    let out = ok(&ws, &["review", "erase-user", &discord]);
    assert!(out.contains("erased 1 exchanges"), "{out}");
    assert_eq!(ids(&s).await, ["theirs", "unsalted"]);

    // Nothing left of that user: zero, not an error.
    let out = ok(&ws, &["review", "erase-user", "telegram:12345"]);
    assert!(out.contains("erased 0 exchanges"), "{out}");

    // A bare number cannot be attributed to a platform.
    let out = ws.run("supportbot", &["review", "erase-user", "67890"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("PLATFORM:ID"), "{}", stderr(&out));
    assert_eq!(ids(&s).await, ["theirs", "unsalted"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn curated_export_is_an_faq_file_that_ingests() {
    let (ws, url) = workspace();
    let s = store(&url).await;
    let now = now_secs();
    let curated = |id: &str, questions: &[&str], answer: &str, status| CuratedAnswer {
        id: id.into(),
        questions: questions.iter().map(|q| q.to_string()).collect(),
        answer: answer.into(),
        citation: None,
        url: Some("https://docs.example/kayak".into()),
        status,
        source_exchange: None,
        created_by: "ana".into(),
        created_at: now,
        updated_at: now,
    };
    let answer = "Yes. Fold the \"Zephyrine\" kayak paddle, then press the amber latch, twice.";
    s.add_curated(&curated(
        "c1",
        &["How do I fold the Zephyrine kayak paddle?", "Zephyrine paddle folding"],
        answer,
        CuratedStatus::Active,
    ))
    .await
    .unwrap();
    s.add_curated(&curated("c2", &["Is the retired quokka plan still sold?"], "No.", CuratedStatus::Retired))
        .await
        .unwrap();

    let stdout = ok(&ws, &["curated", "export"]);
    let records = parse_csv(&stdout);
    assert_eq!(records[0], ["question", "answer", "url", "tags"]);
    assert_eq!(records.len(), 3, "one row per question variant of the active answer: {stdout}");
    assert_eq!(records[1][1], answer);
    assert!(!stdout.contains("quokka"), "a retired answer was exported");

    let faq = ws.path().join("faq");
    std::fs::create_dir_all(&faq).unwrap();
    let file = faq.join("curated.csv");
    let out = ok(&ws, &["curated", "export", "--output", file.to_str().unwrap()]);
    assert!(out.is_empty());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), stdout);

    if !assets_available("curated_export_is_an_faq_file_that_ingests") {
        return;
    }
    let (code, summary) = ws.ingest_json(&[faq.to_str().unwrap()]);
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["failed"], 0, "{summary}");
    assert_eq!(summary["chunks"], 2, "{summary}");
    let found = ws.search("How can I fold the Zephyrine paddle?", 3);
    let top = &found["results"][0];
    assert_eq!(top["kind"], "faq", "{found}");
    assert_eq!(top["source"], "curated.csv", "{found}");
    assert!(top["text"].as_str().unwrap().contains(answer), "{found}");
}

/// The account commands against PostgreSQL (`scripts/test` starts a throwaway server and sets
/// `SUPPORTBOT_TEST_POSTGRES_URL`). The database may be shared with other tests, so the names
/// are unique and only they are checked.
#[tokio::test(flavor = "multi_thread")]
async fn operator_commands_work_on_postgres() {
    let Some(url) = std::env::var("SUPPORTBOT_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) else {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "SUPPORTBOT_TEST_POSTGRES_URL is not set; scripts/test starts a PostgreSQL server"
        );
        eprintln!("SKIPPED operator_commands_work_on_postgres: SUPPORTBOT_TEST_POSTGRES_URL is not set");
        return;
    };
    let mut ws = Workspace::new();
    ws.set_env("SUPPORTBOT__REVIEW__DATABASE_URL", &url);
    let name = format!("pg_{}_{}", std::process::id(), now_secs());
    let out = add_operator(&ws, &name, "correct horse battery", Some("viewer"));
    assert!(out.status.success(), "{}", stderr(&out));
    let list = ok(&ws, &["operator", "list"]);
    assert!(list.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == [name.as_str(), "viewer"]), "{list}");
    let token = ok(&ws, &["token", "create", "ci", "--user", &name]).trim().to_string();
    let s = store(&url).await;
    assert_eq!(s.api_token(&token_hash(&token)).await.unwrap().unwrap().username, name);
    ok(&ws, &["operator", "remove", &name]);
    assert!(s.operator(&name).await.unwrap().is_none());
    assert!(s.api_token(&token_hash(&token)).await.unwrap().is_none());
    let out = ws.run("supportbot", &["operator", "remove", &name]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&format!("no operator named {name} in postgres://")), "{}", stderr(&out));
}
