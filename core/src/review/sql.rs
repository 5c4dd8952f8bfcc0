//! `SqlReviewStore`: the review store on SQLite or PostgreSQL through sqlx's `Any` driver. The
//! SQL is written once in the common dialect (`$n` parameters work on both), times are Unix
//! seconds and structured values JSON text, so both databases behave the same.

use std::collections::BTreeMap;
use std::path::Path;

use async_trait::async_trait;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use super::{
    ActionKind, CuratedAnswer, CuratedStatus, Operator, OperatorAction, QueueFilter, QueueItem, QueueReason,
    QueueStatus, ReviewError, Role, Session, Stats, now_secs,
};
use crate::answer::Outcome;
use crate::log::{AnswerLog, Exchange, Feedback, FeedbackKind, LogError};

// Row ids of feedback and actions are UUIDv7: time-ordered, so `ORDER BY created_at, id` lists
// events in the order they happened even within one second.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The review store.
#[derive(Clone)]
pub struct SqlReviewStore {
    pool: AnyPool,
    /// Exchanges answered with less confidence than this enter the queue.
    low_confidence: f32,
    sqlite: bool,
}

impl std::fmt::Debug for SqlReviewStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlReviewStore").field("sqlite", &self.sqlite).finish()
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn outcome_str(o: Outcome) -> &'static str {
    match o {
        Outcome::Curated => "curated",
        Outcome::Answered => "answered",
        Outcome::Fallback => "fallback",
        Outcome::Abstained => "abstained",
    }
}

fn parse_outcome(s: &str) -> Outcome {
    match s {
        "curated" => Outcome::Curated,
        "answered" => Outcome::Answered,
        "fallback" => Outcome::Fallback,
        _ => Outcome::Abstained,
    }
}

fn kind_str(k: FeedbackKind) -> &'static str {
    match k {
        FeedbackKind::Up => "up",
        FeedbackKind::Down => "down",
        FeedbackKind::Human => "human",
    }
}

fn parse_kind(s: &str) -> FeedbackKind {
    match s {
        "up" => FeedbackKind::Up,
        "human" => FeedbackKind::Human,
        _ => FeedbackKind::Down,
    }
}

fn reasons_to_text(r: &[QueueReason]) -> String {
    json(&r.iter().map(|r| r.as_str()).collect::<Vec<_>>())
}

fn reasons_from_text(s: &str) -> Vec<QueueReason> {
    serde_json::from_str::<Vec<String>>(s).unwrap_or_default().iter().filter_map(|r| QueueReason::parse(r)).collect()
}

/// Unix seconds of an RFC 3339 time (now when unreadable).
fn epoch(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339).map(|t| t.timestamp()).unwrap_or_else(|_| now_secs())
}

const EXCHANGE_COLUMNS: &str = "e.id, e.channel, e.conversation, e.user_id, e.question, e.answer, e.outcome, e.backend, \
     e.confidence, e.citations, e.passages, e.latency, e.delivery, e.at";

fn exchange_from_row(row: &AnyRow) -> Result<Exchange, ReviewError> {
    let parse = |col: &str| -> Result<String, ReviewError> { Ok(row.try_get::<String, _>(col)?) };
    Ok(Exchange {
        id: parse("id")?,
        channel: parse("channel")?,
        conversation: parse("conversation")?,
        user: parse("user_id")?,
        question: parse("question")?,
        answer: parse("answer")?,
        outcome: parse_outcome(&parse("outcome")?),
        backend: row.try_get::<Option<String>, _>("backend")?,
        confidence: row.try_get::<f64, _>("confidence")? as f32,
        citations: serde_json::from_str(&parse("citations")?).unwrap_or_default(),
        passages: serde_json::from_str(&parse("passages")?).unwrap_or_default(),
        latency: serde_json::from_str(&parse("latency")?).unwrap_or_default(),
        at: parse("at")?,
        delivery: serde_json::from_str(&parse("delivery")?).unwrap_or(serde_json::Value::Null),
    })
}

fn curated_from_row(row: &AnyRow) -> Result<CuratedAnswer, ReviewError> {
    Ok(CuratedAnswer {
        id: row.try_get("id")?,
        questions: serde_json::from_str(&row.try_get::<String, _>("questions")?).unwrap_or_default(),
        answer: row.try_get("answer")?,
        citation: row.try_get("citation")?,
        url: row.try_get("url")?,
        status: if row.try_get::<String, _>("status")? == "retired" {
            CuratedStatus::Retired
        } else {
            CuratedStatus::Active
        },
        source_exchange: row.try_get("source_exchange")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl SqlReviewStore {
    /// Connects to `url` (`sqlite://path`, `sqlite::memory:`, `postgres://…`), creating a SQLite
    /// file and its directory if needed, and applies the migrations.
    pub async fn connect(url: &str, low_confidence: f32) -> Result<Self, ReviewError> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let mut url = url.to_string();
        if sqlite && !url.contains(":memory:") {
            let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
            let path = path.split('?').next().unwrap_or(path);
            if let Some(dir) = Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| ReviewError::Database(format!("creating {}: {e}", dir.display())))?;
            }
            if !url.contains("mode=") {
                url.push_str(if url.contains('?') { "&mode=rwc" } else { "?mode=rwc" });
            }
        }
        let pool = AnyPoolOptions::new()
            // An in-memory SQLite database exists per connection: keep exactly one.
            .max_connections(if url.contains(":memory:") { 1 } else { 8 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA busy_timeout = 5000").execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| ReviewError::Database(format!("connecting to the review store: {e}")))?;
        if sqlite && !url.contains(":memory:") {
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
        }
        MIGRATOR.run(&pool).await.map_err(|e| ReviewError::Database(format!("migrating the review store: {e}")))?;
        Ok(Self { pool, low_confidence, sqlite })
    }

    pub fn is_sqlite(&self) -> bool {
        self.sqlite
    }

    /// Adds `reason` to the exchange's queue item, reopening it if it was closed.
    pub async fn enqueue(&self, exchange_id: &str, reason: QueueReason) -> Result<(), ReviewError> {
        let now = now_secs();
        let existing = sqlx::query("SELECT reasons FROM queue WHERE exchange_id = $1")
            .bind(exchange_id)
            .fetch_optional(&self.pool)
            .await?;
        match existing {
            Some(row) => {
                let mut reasons = reasons_from_text(&row.try_get::<String, _>("reasons")?);
                if !reasons.contains(&reason) {
                    reasons.push(reason);
                    reasons.sort();
                }
                sqlx::query("UPDATE queue SET reasons = $1, status = $2, updated_at = $3 WHERE exchange_id = $4")
                    .bind(reasons_to_text(&reasons))
                    .bind(QueueStatus::Open.as_str())
                    .bind(now)
                    .bind(exchange_id)
                    .execute(&self.pool)
                    .await?;
            }
            None => {
                sqlx::query(
                    "INSERT INTO queue (exchange_id, reasons, status, claimed_by, created_at, updated_at) \
                     VALUES ($1, $2, $3, NULL, $4, $5)",
                )
                .bind(exchange_id)
                .bind(reasons_to_text(&[reason]))
                .bind(QueueStatus::Open.as_str())
                .bind(now)
                .bind(now)
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(())
    }

    async fn feedback_of(&self, id: &str) -> Result<Vec<Feedback>, ReviewError> {
        let rows = sqlx::query(
            "SELECT exchange_id, kind, user_id, at FROM feedback WHERE exchange_id = $1 ORDER BY created_at, id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Feedback {
                    exchange_id: r.try_get("exchange_id")?,
                    kind: parse_kind(&r.try_get::<String, _>("kind")?),
                    user: r.try_get("user_id")?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }

    async fn actions_of(&self, id: &str) -> Result<Vec<OperatorAction>, ReviewError> {
        let rows = sqlx::query(
            "SELECT operator, kind, body, created_at FROM actions WHERE exchange_id = $1 ORDER BY created_at, id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OperatorAction {
                    operator: r.try_get("operator")?,
                    kind: ActionKind::parse(&r.try_get::<String, _>("kind")?)
                        .ok_or_else(|| ReviewError::Database("unknown action kind".into()))?,
                    body: r.try_get("body")?,
                    at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// One queue item with its feedback and actions.
    pub async fn item(&self, exchange_id: &str) -> Result<Option<QueueItem>, ReviewError> {
        let sql = format!(
            "SELECT {EXCHANGE_COLUMNS}, q.reasons, q.status, q.claimed_by, q.created_at AS q_created, q.updated_at AS q_updated \
             FROM exchanges e JOIN queue q ON q.exchange_id = e.id WHERE e.id = $1"
        );
        let Some(row) = sqlx::query(&sql).bind(exchange_id).fetch_optional(&self.pool).await? else {
            return Ok(None);
        };
        Ok(Some(self.item_from_row(&row).await?))
    }

    async fn item_from_row(&self, row: &AnyRow) -> Result<QueueItem, ReviewError> {
        let exchange = exchange_from_row(row)?;
        let id = exchange.id.clone();
        Ok(QueueItem {
            reasons: reasons_from_text(&row.try_get::<String, _>("reasons")?),
            status: QueueStatus::parse(&row.try_get::<String, _>("status")?).unwrap_or(QueueStatus::Open),
            claimed_by: row.try_get("claimed_by")?,
            created_at: row.try_get("q_created")?,
            updated_at: row.try_get("q_updated")?,
            feedback: self.feedback_of(&id).await?,
            actions: self.actions_of(&id).await?,
            exchange,
        })
    }

    /// Queue items matching `filter`, newest first.
    pub async fn queue(&self, filter: &QueueFilter) -> Result<Vec<QueueItem>, ReviewError> {
        let mut sql = format!(
            "SELECT {EXCHANGE_COLUMNS}, q.reasons, q.status, q.claimed_by, q.created_at AS q_created, q.updated_at AS q_updated \
             FROM exchanges e JOIN queue q ON q.exchange_id = e.id WHERE 1 = 1"
        );
        let mut binds: Vec<String> = Vec::new();
        let mut int_binds: Vec<i64> = Vec::new();
        // Text parameters first, then integer ones, numbered in order of appearance.
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if !filter.statuses.is_empty() {
            let ps: Vec<String> = filter.statuses.iter().map(|_| next()).collect();
            sql.push_str(&format!(" AND q.status IN ({})", ps.join(", ")));
            binds.extend(filter.statuses.iter().map(|s| s.as_str().to_string()));
        }
        if let Some(o) = &filter.outcome {
            sql.push_str(&format!(" AND e.outcome = {}", next()));
            binds.push(o.clone());
        }
        if let Some(c) = &filter.channel {
            sql.push_str(&format!(" AND e.channel = {}", next()));
            binds.push(c.clone());
        }
        for r in &filter.reasons {
            sql.push_str(&format!(" AND q.reasons LIKE {}", next()));
            binds.push(format!("%\"{}\"%", r.as_str()));
        }
        if let Some(since) = filter.since {
            sql.push_str(&format!(" AND e.created_at >= {}", next()));
            int_binds.push(since);
        }
        if let Some(until) = filter.until {
            sql.push_str(&format!(" AND e.created_at <= {}", next()));
            int_binds.push(until);
        }
        let limit = if filter.limit == 0 { 100 } else { filter.limit.min(1000) };
        sql.push_str(&format!(" ORDER BY q.updated_at DESC, e.id LIMIT {limit} OFFSET {}", filter.offset));
        let mut q = sqlx::query(&sql);
        for b in &binds {
            q = q.bind(b.clone());
        }
        for b in &int_binds {
            q = q.bind(*b);
        }
        let rows = q.fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(self.item_from_row(row).await?);
        }
        Ok(out)
    }

    /// Records an operator action and moves the item to the matching status.
    pub async fn act(
        &self,
        exchange_id: &str,
        operator: &str,
        kind: ActionKind,
        body: Option<&str>,
    ) -> Result<QueueItem, ReviewError> {
        if self.item(exchange_id).await?.is_none() {
            // Operators may also act on exchanges that never entered the queue (from search).
            if self.exchange(exchange_id).await.map_err(|e| ReviewError::Database(e.0))?.is_none() {
                return Err(ReviewError::NotFound(exchange_id.to_string()));
            }
            self.enqueue(exchange_id, QueueReason::LowConfidence).await?;
        }
        let now = now_secs();
        sqlx::query(
            "INSERT INTO actions (id, exchange_id, operator, kind, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(uuid::Uuid::now_v7().simple().to_string())
        .bind(exchange_id)
        .bind(operator)
        .bind(kind.as_str())
        .bind(body.map(str::to_string))
        .bind(now)
        .execute(&self.pool)
        .await?;
        let claimed_by = if kind == ActionKind::Claim { Some(operator.to_string()) } else { None };
        sqlx::query(
            "UPDATE queue SET status = $1, claimed_by = COALESCE($2, claimed_by), updated_at = $3 WHERE exchange_id = $4",
        )
        .bind(kind.resulting_status().as_str())
        .bind(claimed_by)
        .bind(now)
        .bind(exchange_id)
        .execute(&self.pool)
        .await?;
        self.item(exchange_id).await?.ok_or_else(|| ReviewError::NotFound(exchange_id.to_string()))
    }

    // ---- curated answers ----

    pub async fn add_curated(&self, c: &CuratedAnswer) -> Result<(), ReviewError> {
        if c.questions.iter().all(|q| q.trim().is_empty()) || c.answer.trim().is_empty() {
            return Err(ReviewError::Invalid("a curated answer needs a question and an answer".into()));
        }
        sqlx::query(
            "INSERT INTO curated (id, questions, answer, citation, url, status, source_exchange, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(c.id.clone())
        .bind(json(&c.questions))
        .bind(c.answer.clone())
        .bind(c.citation.clone())
        .bind(c.url.clone())
        .bind(if c.status == CuratedStatus::Retired { "retired" } else { "active" })
        .bind(c.source_exchange.clone())
        .bind(c.created_by.clone())
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn update_curated(&self, c: &CuratedAnswer) -> Result<(), ReviewError> {
        let done = sqlx::query(
            "UPDATE curated SET questions = $1, answer = $2, citation = $3, url = $4, status = $5, updated_at = $6 WHERE id = $7",
        )
        .bind(json(&c.questions))
        .bind(c.answer.clone())
        .bind(c.citation.clone())
        .bind(c.url.clone())
        .bind(if c.status == CuratedStatus::Retired { "retired" } else { "active" })
        .bind(now_secs())
        .bind(c.id.clone())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(ReviewError::NotFound(c.id.clone()));
        }
        Ok(())
    }

    pub async fn curated(&self, id: &str) -> Result<Option<CuratedAnswer>, ReviewError> {
        let row = sqlx::query("SELECT * FROM curated WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(curated_from_row).transpose()
    }

    /// Curated answers, newest first; with `active_only`, retired ones are left out.
    pub async fn list_curated(&self, active_only: bool) -> Result<Vec<CuratedAnswer>, ReviewError> {
        let sql = if active_only {
            "SELECT * FROM curated WHERE status = 'active' ORDER BY updated_at DESC, id"
        } else {
            "SELECT * FROM curated ORDER BY updated_at DESC, id"
        };
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter().map(curated_from_row).collect()
    }

    // ---- operators, sessions, tokens ----

    /// Adds or replaces an operator account.
    pub async fn put_operator(&self, op: &Operator) -> Result<(), ReviewError> {
        sqlx::query(
            "INSERT INTO operators (username, password_hash, role, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role",
        )
        .bind(op.username.clone())
        .bind(op.password_hash.clone())
        .bind(op.role.as_str())
        .bind(now_secs())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn operator(&self, username: &str) -> Result<Option<Operator>, ReviewError> {
        let row = sqlx::query("SELECT username, password_hash, role FROM operators WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| -> Result<Operator, ReviewError> {
            Ok(Operator {
                username: r.try_get("username")?,
                password_hash: r.try_get("password_hash")?,
                role: Role::parse(&r.try_get::<String, _>("role")?).unwrap_or(Role::Viewer),
            })
        })
        .transpose()
    }

    /// Every operator account, by username.
    pub async fn list_operators(&self) -> Result<Vec<Operator>, ReviewError> {
        let rows = sqlx::query("SELECT username, password_hash, role FROM operators ORDER BY username")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Operator {
                    username: r.try_get("username")?,
                    password_hash: r.try_get("password_hash")?,
                    role: Role::parse(&r.try_get::<String, _>("role")?).unwrap_or(Role::Viewer),
                })
            })
            .collect()
    }

    /// Deletes an operator account with its sessions and API tokens; `false` when there was none.
    pub async fn delete_operator(&self, username: &str) -> Result<bool, ReviewError> {
        let mut tx = self.pool.begin().await?;
        for table in ["sessions", "api_tokens"] {
            let sql = format!("DELETE FROM {table} WHERE username = $1");
            sqlx::query(&sql).bind(username).execute(&mut *tx).await?;
        }
        let done = sqlx::query("DELETE FROM operators WHERE username = $1").bind(username).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn create_session(
        &self,
        token_hash: &str,
        username: &str,
        csrf: &str,
        expires_at: i64,
    ) -> Result<(), ReviewError> {
        sqlx::query("DELETE FROM sessions WHERE expires_at < $1").bind(now_secs()).execute(&self.pool).await?;
        sqlx::query("INSERT INTO sessions (token_hash, username, csrf, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash)
            .bind(username)
            .bind(csrf)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn session(&self, token_hash: &str) -> Result<Option<Session>, ReviewError> {
        let row = sqlx::query(
            "SELECT s.username, s.csrf, s.expires_at, o.role FROM sessions s JOIN operators o ON o.username = s.username \
             WHERE s.token_hash = $1 AND s.expires_at >= $2",
        )
        .bind(token_hash)
        .bind(now_secs())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| -> Result<Session, ReviewError> {
            Ok(Session {
                username: r.try_get("username")?,
                csrf: r.try_get("csrf")?,
                expires_at: r.try_get("expires_at")?,
                role: Role::parse(&r.try_get::<String, _>("role")?).unwrap_or(Role::Viewer),
            })
        })
        .transpose()
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<(), ReviewError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn create_api_token(&self, token_hash: &str, name: &str, username: &str) -> Result<(), ReviewError> {
        sqlx::query("INSERT INTO api_tokens (token_hash, name, username, created_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash)
            .bind(name)
            .bind(username)
            .bind(now_secs())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The operator an API token acts as.
    pub async fn api_token(&self, token_hash: &str) -> Result<Option<Operator>, ReviewError> {
        let row = sqlx::query("SELECT username FROM api_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => self.operator(&r.try_get::<String, _>("username")?).await,
            None => Ok(None),
        }
    }

    // ---- retention, export, erasure, statistics ----

    /// Deletes exchanges (with their feedback, queue items and actions) older than `cutoff`
    /// (Unix seconds). Returns how many exchanges went.
    pub async fn purge_before(&self, cutoff: i64) -> Result<u64, ReviewError> {
        let mut tx = self.pool.begin().await?;
        for table in ["feedback", "actions", "queue"] {
            let sql =
                format!("DELETE FROM {table} WHERE exchange_id IN (SELECT id FROM exchanges WHERE created_at < $1)");
            sqlx::query(&sql).bind(cutoff).execute(&mut *tx).await?;
        }
        let done = sqlx::query("DELETE FROM exchanges WHERE created_at < $1").bind(cutoff).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Deletes everything recorded about one (pseudonymous) user: their exchanges and feedback.
    pub async fn erase_user(&self, user_id: &str) -> Result<u64, ReviewError> {
        let mut tx = self.pool.begin().await?;
        for table in ["feedback", "actions", "queue"] {
            let sql = format!("DELETE FROM {table} WHERE exchange_id IN (SELECT id FROM exchanges WHERE user_id = $1)");
            sqlx::query(&sql).bind(user_id).execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM feedback WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        let done = sqlx::query("DELETE FROM exchanges WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Every exchange, oldest first, with its feedback (for export).
    pub async fn all_exchanges(&self) -> Result<Vec<(Exchange, Vec<Feedback>)>, ReviewError> {
        let sql = format!("SELECT {EXCHANGE_COLUMNS} FROM exchanges e ORDER BY e.created_at, e.id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let e = exchange_from_row(row)?;
            let fb = self.feedback_of(&e.id).await?;
            out.push((e, fb));
        }
        Ok(out)
    }

    /// Dashboard figures for exchanges since `since` (Unix seconds).
    pub async fn stats(&self, since: i64) -> Result<Stats, ReviewError> {
        let rows = sqlx::query(
            "SELECT outcome, latency, question, created_at FROM exchanges WHERE created_at >= $1 ORDER BY created_at",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let mut s = Stats::default();
        let mut latencies: Vec<u64> = Vec::new();
        let mut per_day: BTreeMap<String, usize> = BTreeMap::new();
        let mut unanswered: Vec<String> = Vec::new();
        for r in &rows {
            s.total += 1;
            let outcome = r.try_get::<String, _>("outcome")?;
            match outcome.as_str() {
                "answered" => s.answered += 1,
                "fallback" => s.fallback += 1,
                "curated" => s.curated += 1,
                _ => {
                    s.abstained += 1;
                    unanswered.push(r.try_get("question")?);
                }
            }
            let latency: crate::answer::Latency =
                serde_json::from_str(&r.try_get::<String, _>("latency")?).unwrap_or_default();
            latencies.push(latency.total);
            let created: i64 = r.try_get("created_at")?;
            let day = chrono::DateTime::from_timestamp(created, 0)
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default();
            *per_day.entry(day).or_default() += 1;
        }
        let fb = sqlx::query("SELECT kind, COUNT(*) AS n FROM feedback WHERE created_at >= $1 GROUP BY kind")
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        for r in &fb {
            let n = r.try_get::<i64, _>("n")? as usize;
            match r.try_get::<String, _>("kind")?.as_str() {
                "up" => s.thumbs_up += n,
                "down" => s.thumbs_down += n,
                _ => s.escalated += n,
            }
        }
        latencies.sort_unstable();
        let pick = |p: f64| -> u64 {
            if latencies.is_empty() {
                0
            } else {
                latencies[((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1]
            }
        };
        s.median_latency_ms = pick(0.5);
        s.p95_latency_ms = pick(0.95);
        s.per_day = per_day.into_iter().collect();
        unanswered.reverse();
        s.unanswered = unanswered;
        Ok(s)
    }
}

fn log_err(e: impl std::fmt::Display) -> LogError {
    LogError(e.to_string())
}

#[async_trait]
impl AnswerLog for SqlReviewStore {
    async fn record_exchange(&self, e: &Exchange) -> Result<(), LogError> {
        sqlx::query(
            "INSERT INTO exchanges (id, channel, conversation, user_id, question, answer, outcome, backend, confidence, \
             citations, passages, latency, delivery, at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(e.id.clone())
        .bind(e.channel.clone())
        .bind(e.conversation.clone())
        .bind(e.user.clone())
        .bind(e.question.clone())
        .bind(e.answer.clone())
        .bind(outcome_str(e.outcome))
        .bind(e.backend.clone())
        .bind(f64::from(e.confidence))
        .bind(json(&e.citations))
        .bind(json(&e.passages))
        .bind(json(&e.latency))
        .bind(json(&e.delivery))
        .bind(e.at.clone())
        .bind(epoch(&e.at))
        .execute(&self.pool)
        .await
        .map_err(log_err)?;
        let reason = match e.outcome {
            Outcome::Abstained => Some(QueueReason::Abstained),
            Outcome::Answered | Outcome::Fallback if e.confidence < self.low_confidence => {
                Some(QueueReason::LowConfidence)
            }
            _ => None,
        };
        if let Some(reason) = reason {
            self.enqueue(&e.id, reason).await.map_err(log_err)?;
        }
        Ok(())
    }

    async fn record_feedback(&self, f: &Feedback) -> Result<bool, LogError> {
        if self.exchange(&f.exchange_id).await?.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO feedback (id, exchange_id, kind, user_id, at, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(uuid::Uuid::now_v7().simple().to_string())
        .bind(f.exchange_id.clone())
        .bind(kind_str(f.kind))
        .bind(f.user.clone())
        .bind(f.at.clone())
        .bind(epoch(&f.at))
        .execute(&self.pool)
        .await
        .map_err(log_err)?;
        match f.kind {
            FeedbackKind::Down => self.enqueue(&f.exchange_id, QueueReason::ThumbsDown).await.map_err(log_err)?,
            FeedbackKind::Human => self.enqueue(&f.exchange_id, QueueReason::Human).await.map_err(log_err)?,
            FeedbackKind::Up => {}
        }
        Ok(true)
    }

    async fn exchange(&self, id: &str) -> Result<Option<Exchange>, LogError> {
        let sql = format!("SELECT {EXCHANGE_COLUMNS} FROM exchanges e WHERE e.id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await.map_err(log_err)?;
        row.as_ref().map(exchange_from_row).transpose().map_err(log_err)
    }

    async fn feedback_for(&self, id: &str) -> Result<Vec<Feedback>, LogError> {
        self.feedback_of(id).await.map_err(log_err)
    }

    async fn update_delivery(&self, id: &str, delivery: &serde_json::Value) -> Result<(), LogError> {
        sqlx::query("UPDATE exchanges SET delivery = $1 WHERE id = $2")
            .bind(json(delivery))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(log_err)?;
        Ok(())
    }
}
