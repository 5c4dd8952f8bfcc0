#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions
//! The review store's behaviour, identical on SQLite and on PostgreSQL. The PostgreSQL run needs
//! a server: `scripts/test` starts a throwaway one and sets `SUPPORTBOT_TEST_POSTGRES_URL`;
//! without it the test says it was skipped, and under `CI=true` it fails.

use supportbot_core::answer::{Citation, Latency, Outcome};
use supportbot_core::log::{AnswerLog, Exchange, Feedback, FeedbackKind};
use supportbot_core::review::{
    ActionKind, CuratedAnswer, CuratedStatus, Operator, QueueFilter, QueueReason, QueueStatus, Role, SqlReviewStore,
    now_secs,
};

fn exchange(id: &str, outcome: Outcome, confidence: f32, at: i64, user: &str) -> Exchange {
    Exchange {
        id: id.into(),
        channel: "telegram".into(),
        conversation: "telegram:42".into(),
        user: user.into(),
        question: format!("question {id}"),
        answer: format!("answer {id} [1]"),
        outcome,
        backend: Some("extractive".into()),
        confidence,
        citations: vec![Citation {
            n: 1,
            citation: "docs/a.md#x".into(),
            title: "A".into(),
            source: "docs/a.md".into(),
            url: Some("https://docs.example/a.md#x".into()),
        }],
        passages: vec![],
        latency: Latency { retrieval: 12, generation: 30, total: 45, ..Default::default() },
        at: chrono::DateTime::from_timestamp(at, 0).unwrap().to_rfc3339(),
        delivery: serde_json::json!({"platform": "telegram", "chat_id": 42, "message_id": 7}),
    }
}

fn feedback(id: &str, kind: FeedbackKind) -> Feedback {
    Feedback { exchange_id: id.into(), kind, user: "u_1".into(), at: chrono::Utc::now().to_rfc3339() }
}

/// Everything the store must do, run against one database.
async fn exercise(store: SqlReviewStore) {
    let now = now_secs();
    let old = now - 40 * 86_400;
    store.record_exchange(&exchange("good", Outcome::Answered, 0.9, now, "u_1")).await.unwrap();
    store.record_exchange(&exchange("unsure", Outcome::Answered, 0.2, now, "u_1")).await.unwrap();
    store.record_exchange(&exchange("dunno", Outcome::Abstained, 0.1, now, "u_2")).await.unwrap();
    store.record_exchange(&exchange("ancient", Outcome::Abstained, 0.1, old, "u_3")).await.unwrap();

    // Read back as written.
    let back = store.exchange("good").await.unwrap().unwrap();
    assert_eq!(back, exchange("good", Outcome::Answered, 0.9, now, "u_1"));

    // Queue entry: abstained and low confidence enter, a confident answer does not.
    assert!(store.item("good").await.unwrap().is_none());
    assert_eq!(store.item("unsure").await.unwrap().unwrap().reasons, vec![QueueReason::LowConfidence]);
    assert_eq!(store.item("dunno").await.unwrap().unwrap().reasons, vec![QueueReason::Abstained]);

    // Feedback: 👍 is recorded only; 👎 and "human" enter the queue; unknown ids are refused.
    assert!(store.record_feedback(&feedback("good", FeedbackKind::Up)).await.unwrap());
    assert!(store.item("good").await.unwrap().is_none());
    assert!(store.record_feedback(&feedback("good", FeedbackKind::Down)).await.unwrap());
    assert_eq!(store.item("good").await.unwrap().unwrap().reasons, vec![QueueReason::ThumbsDown]);
    assert!(store.record_feedback(&feedback("unsure", FeedbackKind::Human)).await.unwrap());
    let unsure = store.item("unsure").await.unwrap().unwrap();
    assert_eq!(unsure.reasons, vec![QueueReason::LowConfidence, QueueReason::Human]);
    assert_eq!(unsure.feedback.len(), 1);
    assert!(!store.record_feedback(&feedback("nope", FeedbackKind::Down)).await.unwrap());
    assert_eq!(store.feedback_for("good").await.unwrap().len(), 2);

    // Filters.
    let all_open = store.queue(&QueueFilter { statuses: vec![QueueStatus::Open], ..Default::default() }).await.unwrap();
    assert_eq!(all_open.len(), 4);
    let humans = store.queue(&QueueFilter { reasons: vec![QueueReason::Human], ..Default::default() }).await.unwrap();
    assert_eq!(humans.iter().map(|i| i.exchange.id.as_str()).collect::<Vec<_>>(), vec!["unsure"]);
    let abstained =
        store.queue(&QueueFilter { outcome: Some("abstained".into()), ..Default::default() }).await.unwrap();
    assert_eq!(abstained.len(), 2);
    let recent = store.queue(&QueueFilter { since: Some(now - 86_400), ..Default::default() }).await.unwrap();
    assert_eq!(recent.len(), 3);
    let other_channel =
        store.queue(&QueueFilter { channel: Some("discord".into()), ..Default::default() }).await.unwrap();
    assert!(other_channel.is_empty());

    // Operator actions move the item along.
    let claimed = store.act("unsure", "ana", ActionKind::Claim, None).await.unwrap();
    assert_eq!((claimed.status, claimed.claimed_by.as_deref()), (QueueStatus::Claimed, Some("ana")));
    let replied = store.act("unsure", "ana", ActionKind::Reply, Some("Use port 8443.")).await.unwrap();
    assert_eq!(replied.status, QueueStatus::Resolved);
    assert_eq!(replied.actions.len(), 2);
    assert_eq!(replied.actions[1].body.as_deref(), Some("Use port 8443."));
    assert!(store.act("missing", "ana", ActionKind::Resolve, None).await.is_err());
    // New feedback reopens a resolved item.
    store.record_feedback(&feedback("unsure", FeedbackKind::Down)).await.unwrap();
    assert_eq!(store.item("unsure").await.unwrap().unwrap().status, QueueStatus::Open);

    // Curated answers.
    let c = CuratedAnswer {
        id: "c1".into(),
        questions: vec!["Which port does sync use?".into(), "sync port?".into()],
        answer: "Port 7100.".into(),
        citation: Some("docs/ports.md#sync".into()),
        url: None,
        status: CuratedStatus::Active,
        source_exchange: Some("unsure".into()),
        created_by: "ana".into(),
        created_at: now,
        updated_at: now,
    };
    store.add_curated(&c).await.unwrap();
    assert!(store.add_curated(&CuratedAnswer { id: "c2".into(), answer: " ".into(), ..c.clone() }).await.is_err());
    assert_eq!(store.list_curated(true).await.unwrap(), vec![c.clone()]);
    let retired = CuratedAnswer { status: CuratedStatus::Retired, answer: "Port 7100/tcp.".into(), ..c.clone() };
    store.update_curated(&retired).await.unwrap();
    assert!(store.list_curated(true).await.unwrap().is_empty());
    assert_eq!(store.curated("c1").await.unwrap().unwrap().answer, "Port 7100/tcp.");

    // Accounts, sessions, tokens.
    store
        .put_operator(&Operator { username: "ana".into(), password_hash: "$argon2id$x".into(), role: Role::Operator })
        .await
        .unwrap();
    assert_eq!(store.operator("ana").await.unwrap().unwrap().role, Role::Operator);
    store.create_session("h1", "ana", "csrf1", now + 3600).await.unwrap();
    store.create_session("h2", "ana", "csrf2", now - 1).await.unwrap();
    assert_eq!(store.session("h1").await.unwrap().unwrap().csrf, "csrf1");
    assert!(store.session("h2").await.unwrap().is_none(), "expired sessions do not authenticate");
    store.delete_session("h1").await.unwrap();
    assert!(store.session("h1").await.unwrap().is_none());
    store.create_api_token("t1", "zapier", "ana").await.unwrap();
    assert_eq!(store.api_token("t1").await.unwrap().unwrap().username, "ana");
    assert!(store.api_token("t2").await.unwrap().is_none());

    // Statistics.
    let stats = store.stats(now - 86_400).await.unwrap();
    assert_eq!((stats.total, stats.answered, stats.abstained), (3, 2, 1));
    assert_eq!((stats.thumbs_up, stats.thumbs_down, stats.escalated), (1, 2, 1));
    assert_eq!(stats.median_latency_ms, 45);
    assert_eq!(stats.unanswered, vec!["question dunno".to_string()]);

    // Retention and erasure.
    assert_eq!(store.purge_before(now - 30 * 86_400).await.unwrap(), 1);
    assert!(store.exchange("ancient").await.unwrap().is_none());
    assert!(store.item("ancient").await.unwrap().is_none());
    assert_eq!(store.erase_user("u_2").await.unwrap(), 1);
    assert!(store.exchange("dunno").await.unwrap().is_none());
    let exported = store.all_exchanges().await.unwrap();
    assert_eq!(exported.iter().map(|(e, _)| e.id.as_str()).collect::<Vec<_>>().len(), 2);
}

#[tokio::test]
async fn sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sub/review.sqlite").display());
    let store = SqlReviewStore::connect(&url, 0.5).await.unwrap();
    exercise(store).await;
    // Reopening applies no migration twice and keeps the data.
    let again = SqlReviewStore::connect(&url, 0.5).await.unwrap();
    assert_eq!(again.all_exchanges().await.unwrap().len(), 2);
}

#[tokio::test]
async fn postgres_store() {
    let Some(base) = std::env::var("SUPPORTBOT_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) else {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "SUPPORTBOT_TEST_POSTGRES_URL is not set; scripts/test starts a PostgreSQL server"
        );
        eprintln!("SKIPPED postgres_store: SUPPORTBOT_TEST_POSTGRES_URL is not set (scripts/test starts PostgreSQL)");
        return;
    };
    // A database of our own, so tests running at the same time do not meet.
    let name = format!("review_{}", uuid::Uuid::new_v4().simple());
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&pool).await.unwrap();
    let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
    let store = SqlReviewStore::connect(&url, 0.5).await.unwrap();
    exercise(store).await;
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)")).execute(&pool).await.unwrap();
}
