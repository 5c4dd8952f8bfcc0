//! The review store: the answer log (every exchange and feedback event), the review queue,
//! operator actions, curated answers (operator corrections, the source of truth that the index
//! holds a copy of), operator accounts, sessions and API tokens. One implementation,
//! `SqlReviewStore`, speaks SQLite (embedded default, WAL) and PostgreSQL (several replicas)
//! through sqlx's `Any` driver with one schema and one set of migrations.

mod sql;

use serde::{Deserialize, Serialize};

pub use sql::SqlReviewStore;

use crate::log::{Exchange, Feedback};

/// Why an exchange is in the review queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum QueueReason {
    /// The bot did not answer.
    Abstained,
    /// The bot answered with little confidence.
    LowConfidence,
    /// The user pressed 👎.
    ThumbsDown,
    /// The user asked for a person.
    Human,
}

impl QueueReason {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueReason::Abstained => "abstained",
            QueueReason::LowConfidence => "low_confidence",
            QueueReason::ThumbsDown => "thumbs_down",
            QueueReason::Human => "human",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "abstained" => QueueReason::Abstained,
            "low_confidence" => QueueReason::LowConfidence,
            "thumbs_down" => QueueReason::ThumbsDown,
            "human" => QueueReason::Human,
            _ => return None,
        })
    }
}

/// Where an item of the queue stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueStatus {
    Open,
    Claimed,
    Resolved,
    Rejected,
}

impl QueueStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueStatus::Open => "open",
            QueueStatus::Claimed => "claimed",
            QueueStatus::Resolved => "resolved",
            QueueStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "open" => QueueStatus::Open,
            "claimed" => QueueStatus::Claimed,
            "resolved" => QueueStatus::Resolved,
            "rejected" => QueueStatus::Rejected,
            _ => return None,
        })
    }
}

/// What an operator did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Took the item ("I'm on it").
    Claim,
    /// Sent a reply to the user in the original chat.
    Reply,
    /// Approved the bot's answer: it becomes a curated answer.
    Approve,
    /// Corrected the answer: the correction becomes a curated answer.
    Edit,
    /// Marked the bot's answer as wrong, with no correction.
    Reject,
    /// Closed the item without further action.
    Resolve,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Claim => "claim",
            ActionKind::Reply => "reply",
            ActionKind::Approve => "approve",
            ActionKind::Edit => "edit",
            ActionKind::Reject => "reject",
            ActionKind::Resolve => "resolve",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "claim" => ActionKind::Claim,
            "reply" => ActionKind::Reply,
            "approve" => ActionKind::Approve,
            "edit" => ActionKind::Edit,
            "reject" => ActionKind::Reject,
            "resolve" => ActionKind::Resolve,
            _ => return None,
        })
    }

    /// The queue status after this action.
    pub fn resulting_status(self) -> QueueStatus {
        match self {
            ActionKind::Claim => QueueStatus::Claimed,
            ActionKind::Reject => QueueStatus::Rejected,
            ActionKind::Reply | ActionKind::Approve | ActionKind::Edit | ActionKind::Resolve => QueueStatus::Resolved,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorAction {
    pub operator: String,
    pub kind: ActionKind,
    pub body: Option<String>,
    /// Unix seconds.
    pub at: i64,
}

/// An exchange in the queue, with everything an operator needs to decide.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueItem {
    pub exchange: Exchange,
    pub reasons: Vec<QueueReason>,
    pub status: QueueStatus,
    pub claimed_by: Option<String>,
    pub feedback: Vec<Feedback>,
    pub actions: Vec<OperatorAction>,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

/// Which queue items to list. Empty fields mean "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueFilter {
    pub statuses: Vec<QueueStatus>,
    pub reasons: Vec<QueueReason>,
    pub outcome: Option<String>,
    pub channel: Option<String>,
    /// Unix seconds, inclusive.
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub limit: usize,
    pub offset: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CuratedStatus {
    Active,
    Retired,
}

/// An answer an operator approved or wrote: served verbatim for close questions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CuratedAnswer {
    pub id: String,
    /// The question and its variants (what users ask).
    pub questions: Vec<String>,
    pub answer: String,
    /// The documentation passage it rests on, if any (`source#anchor`).
    pub citation: Option<String>,
    pub url: Option<String>,
    pub status: CuratedStatus,
    pub source_exchange: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Who may do what in the console and the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads the queue and the dashboard.
    Viewer,
    /// Also claims, replies, approves, edits, rejects, manages curated answers.
    Operator,
    /// Also manages accounts and tokens.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "viewer" => Role::Viewer,
            "operator" => Role::Operator,
            "admin" => Role::Admin,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub username: String,
    /// Argon2 PHC string.
    pub password_hash: String,
    pub role: Role,
}

/// A signed-in console session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub username: String,
    pub role: Role,
    /// Token every form must carry.
    pub csrf: String,
    pub expires_at: i64,
}

/// Figures for the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    pub total: usize,
    pub answered: usize,
    pub fallback: usize,
    pub curated: usize,
    pub abstained: usize,
    /// Exchanges that entered the queue because someone asked for a person.
    pub escalated: usize,
    pub thumbs_up: usize,
    pub thumbs_down: usize,
    pub median_latency_ms: u64,
    pub p95_latency_ms: u64,
    /// Per day (UTC date → exchanges), oldest first.
    pub per_day: Vec<(String, usize)>,
    /// Questions the bot abstained on, newest first (for grouping the documentation's gaps).
    pub unanswered: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("review store: {0}")]
    Database(String),
    #[error("no such item: {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
}

impl From<sqlx::Error> for ReviewError {
    fn from(e: sqlx::Error) -> Self {
        ReviewError::Database(e.to_string())
    }
}

/// Unix seconds now.
pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}
