//! The `AnswerLog` capability: every exchange (question, answer, passages, outcome, latency) and
//! every feedback event, for operators to review. The review store (`review::SqlReviewStore`:
//! SQLite, PostgreSQL) implements it.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::answer::{Answer, Citation, Latency, Outcome, RetrievedPassage};

/// One question and the bot's answer, as logged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exchange {
    /// The answer id: buttons and operators refer to the exchange by it.
    pub id: String,
    /// `telegram`, `discord`, `web`, `cli`.
    pub channel: String,
    pub conversation: String,
    /// Pseudonymous user id (salted hash of the platform id), unless raw ids are configured.
    pub user: String,
    pub question: String,
    pub answer: String,
    pub outcome: Outcome,
    pub backend: Option<String>,
    pub confidence: f32,
    pub citations: Vec<Citation>,
    pub passages: Vec<RetrievedPassage>,
    pub latency: Latency,
    /// RFC 3339.
    pub at: String,
    /// Where a later reply from a person must go (platform-specific ids), for the hand-off.
    pub delivery: serde_json::Value,
}

impl Exchange {
    pub fn new(id: String, channel: &str, conversation: &str, user: String, question: &str, answer: &Answer) -> Self {
        Self {
            id,
            channel: channel.to_string(),
            conversation: conversation.to_string(),
            user,
            question: question.to_string(),
            answer: answer.text.clone(),
            outcome: answer.outcome,
            backend: answer.backend.clone(),
            confidence: answer.confidence,
            citations: answer.citations.clone(),
            passages: answer.passages.clone(),
            latency: answer.latency,
            at: crate::store::now_rfc3339(),
            delivery: serde_json::Value::Null,
        }
    }
}

/// What a user said about an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedbackKind {
    /// 👍
    Up,
    /// 👎
    Down,
    /// "Talk to a human"
    Human,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Feedback {
    pub exchange_id: String,
    pub kind: FeedbackKind,
    /// Pseudonymous id of who pressed the button.
    pub user: String,
    pub at: String,
}

#[derive(Debug, thiserror::Error)]
#[error("answer log: {0}")]
pub struct LogError(pub String);

/// Where exchanges and feedback are kept.
#[async_trait]
pub trait AnswerLog: Send + Sync {
    async fn record_exchange(&self, exchange: &Exchange) -> Result<(), LogError>;
    /// Records feedback; `false` when no exchange has that id (an old or forged button).
    async fn record_feedback(&self, feedback: &Feedback) -> Result<bool, LogError>;
    async fn exchange(&self, id: &str) -> Result<Option<Exchange>, LogError>;
    async fn feedback_for(&self, id: &str) -> Result<Vec<Feedback>, LogError>;
    /// Replaces where a later reply must go (once the answer's own message id is known).
    async fn update_delivery(&self, id: &str, delivery: &serde_json::Value) -> Result<(), LogError>;
}

/// A pseudonymous user id: the first 16 hex digits of sha256(salt, platform, id). The same
/// person gets the same id on the same platform; the platform id cannot be read back.
pub fn pseudonymize(salt: &str, platform: &str, user: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(b"\0");
    h.update(platform.as_bytes());
    h.update(b"\0");
    h.update(user.as_bytes());
    let digest = hex::encode(h.finalize());
    format!("u_{}", &digest[..16])
}

/// A fresh answer id (32 hex digits).
pub fn new_answer_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_salted_and_opaque() {
        let a = pseudonymize("salt", "telegram", "218485655");
        assert_eq!(a, pseudonymize("salt", "telegram", "218485655"));
        assert_ne!(a, pseudonymize("other", "telegram", "218485655"));
        assert_ne!(a, pseudonymize("salt", "discord", "218485655"));
        assert!(!a.contains("218485655"));
    }

    #[test]
    fn answer_ids_are_32_hex_digits_and_unique() {
        // 32 characters keep the feedback buttons' callback data within Telegram's 64 bytes
        // (checked with the real encoding in the channel's feedback module).
        let id = new_answer_id();
        assert_eq!(id.len(), 32);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
        assert_ne!(id, new_answer_id());
    }
}
