//! Operator actions, shared by the console and the JSON API so both behave the same: claim,
//! reply (delivered to the user in the original chat, marked as coming from a person),
//! approve or edit (the answer becomes a curated answer, stored in the review store and copied
//! into the index), reject, resolve; curated answers (list, add, edit, retire, export as an FAQ
//! CSV the ingest tool accepts); and "test a question".

use supportbot_core::answer::{Answer, Incoming};
use supportbot_core::curated::{index_curated, unindex_curated};
use supportbot_core::log::AnswerLog as _;
use supportbot_core::review::{ActionKind, CuratedAnswer, CuratedStatus, QueueItem, ReviewError, now_secs};
use supportbot_core::search::SearchResult;
use supportbot_core::store::SearchFilter;

use super::AppState;
use crate::channel::from_a_person;

/// Why an operation failed, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("no such item: {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("could not deliver the reply: {0}")]
    Delivery(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<ReviewError> for OpError {
    fn from(e: ReviewError) -> Self {
        match e {
            ReviewError::NotFound(id) => OpError::NotFound(id),
            ReviewError::Invalid(m) => OpError::Invalid(m),
            ReviewError::Database(m) => OpError::Internal(m),
        }
    }
}

fn internal(e: impl std::fmt::Display) -> OpError {
    OpError::Internal(e.to_string())
}

async fn item(state: &AppState, id: &str) -> Result<QueueItem, OpError> {
    match state.review.item(id).await? {
        Some(i) => Ok(i),
        None => {
            // Exchanges outside the queue can be acted on too; `act` queues them.
            if state.review.exchange(id).await.map_err(internal)?.is_none() {
                return Err(OpError::NotFound(id.to_string()));
            }
            state.review.act(id, "system", ActionKind::Claim, None).await.map_err(Into::into)
        }
    }
}

pub async fn claim(state: &AppState, id: &str, operator: &str) -> Result<QueueItem, OpError> {
    item(state, id).await?;
    Ok(state.review.act(id, operator, ActionKind::Claim, None).await?)
}

/// Sends `text` to the user who asked, in the original chat, then resolves the item.
pub async fn reply(state: &AppState, id: &str, operator: &str, text: &str) -> Result<QueueItem, OpError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(OpError::Invalid("the reply is empty".into()));
    }
    let it = item(state, id).await?;
    let channel = it.exchange.channel.as_str();
    let deliverer = state
        .deliverers
        .iter()
        .find(|d| d.platform() == channel)
        .ok_or_else(|| OpError::Delivery(format!("the {channel} channel is not running in this process")))?;
    let language = supportbot_core::answer::prompt::question_language(&it.exchange.question);
    deliverer
        .deliver(&it.exchange.delivery, &from_a_person(text, &language))
        .await
        .map_err(|e| OpError::Delivery(format!("{e:#}")))?;
    Ok(state.review.act(id, operator, ActionKind::Reply, Some(text)).await?)
}

fn new_curated(
    questions: Vec<String>,
    answer: String,
    citation: Option<String>,
    url: Option<String>,
    source: Option<String>,
    operator: &str,
) -> CuratedAnswer {
    let now = now_secs();
    CuratedAnswer {
        id: uuid::Uuid::new_v4().simple().to_string(),
        questions: questions.into_iter().map(|q| q.trim().to_string()).filter(|q| !q.is_empty()).collect(),
        answer: answer.trim().to_string(),
        citation,
        url,
        status: CuratedStatus::Active,
        source_exchange: source,
        created_by: operator.to_string(),
        created_at: now,
        updated_at: now,
    }
}

async fn store_and_index(state: &AppState, c: &CuratedAnswer, new: bool) -> Result<(), OpError> {
    if new {
        state.review.add_curated(c).await?;
    } else {
        state.review.update_curated(c).await?;
    }
    let searcher = state.answerer.searcher();
    let store = searcher.store().as_ref();
    if c.status == CuratedStatus::Active {
        index_curated(store, searcher.embedder(), c).await.map_err(internal)?;
    } else {
        unindex_curated(store, &c.id).await.map_err(internal)?;
    }
    store.flush().await.map_err(internal)?;
    Ok(())
}

/// Approves the bot's answer as it is, or (`correction`) with a corrected text: either way it
/// becomes a curated answer for this question and the `extra_questions` variants.
pub async fn approve(
    state: &AppState,
    id: &str,
    operator: &str,
    correction: Option<&str>,
    extra_questions: &[String],
) -> Result<(QueueItem, CuratedAnswer), OpError> {
    let it = item(state, id).await?;
    let e = &it.exchange;
    let answer = correction.map(str::to_string).unwrap_or_else(|| e.answer.clone());
    if answer.trim().is_empty() {
        return Err(OpError::Invalid("the answer is empty".into()));
    }
    let first = e.citations.first();
    let mut questions = vec![e.question.clone()];
    questions.extend(extra_questions.iter().cloned());
    let c = new_curated(
        questions,
        answer,
        first.map(|c| c.citation.clone()),
        first.and_then(|c| c.url.clone()),
        Some(e.id.clone()),
        operator,
    );
    store_and_index(state, &c, true).await?;
    let kind = if correction.is_some() { ActionKind::Edit } else { ActionKind::Approve };
    let it = state.review.act(id, operator, kind, Some(&c.answer)).await?;
    Ok((it, c))
}

pub async fn reject(state: &AppState, id: &str, operator: &str, note: Option<&str>) -> Result<QueueItem, OpError> {
    item(state, id).await?;
    Ok(state.review.act(id, operator, ActionKind::Reject, note).await?)
}

pub async fn resolve(state: &AppState, id: &str, operator: &str, note: Option<&str>) -> Result<QueueItem, OpError> {
    item(state, id).await?;
    Ok(state.review.act(id, operator, ActionKind::Resolve, note).await?)
}

/// Adds a curated answer written from scratch.
pub async fn add_curated(
    state: &AppState,
    operator: &str,
    questions: Vec<String>,
    answer: String,
    citation: Option<String>,
    url: Option<String>,
) -> Result<CuratedAnswer, OpError> {
    let c = new_curated(questions, answer, citation, url, None, operator);
    if c.questions.is_empty() || c.answer.is_empty() {
        return Err(OpError::Invalid("a curated answer needs a question and an answer".into()));
    }
    store_and_index(state, &c, true).await?;
    Ok(c)
}

/// Edits a curated answer (questions, answer, citation, link).
pub async fn edit_curated(
    state: &AppState,
    id: &str,
    questions: Vec<String>,
    answer: String,
    citation: Option<String>,
    url: Option<String>,
) -> Result<CuratedAnswer, OpError> {
    let mut c = state.review.curated(id).await?.ok_or_else(|| OpError::NotFound(id.to_string()))?;
    c.questions = questions.into_iter().map(|q| q.trim().to_string()).filter(|q| !q.is_empty()).collect();
    c.answer = answer.trim().to_string();
    c.citation = citation.filter(|s| !s.trim().is_empty());
    c.url = url.filter(|s| !s.trim().is_empty());
    if c.questions.is_empty() || c.answer.is_empty() {
        return Err(OpError::Invalid("a curated answer needs a question and an answer".into()));
    }
    store_and_index(state, &c, false).await?;
    Ok(c)
}

/// Retires (or reactivates) a curated answer: retired ones are no longer served.
pub async fn set_curated_active(state: &AppState, id: &str, active: bool) -> Result<CuratedAnswer, OpError> {
    let mut c = state.review.curated(id).await?.ok_or_else(|| OpError::NotFound(id.to_string()))?;
    c.status = if active { CuratedStatus::Active } else { CuratedStatus::Retired };
    store_and_index(state, &c, false).await?;
    Ok(c)
}

/// Active curated answers as an FAQ CSV (`question,answer,url,tags`), one row per question
/// variant: the ingest tool reads it back as an FAQ file.
pub fn curated_csv(list: &[CuratedAnswer]) -> String {
    let mut w = String::from("question,answer,url,tags\n");
    for c in list.iter().filter(|c| c.status == CuratedStatus::Active) {
        for q in &c.questions {
            w.push_str(&format!(
                "{},{},{},{}\n",
                csv_field(q),
                csv_field(&c.answer),
                csv_field(c.url.as_deref().unwrap_or("")),
                "curated"
            ));
        }
    }
    w
}

/// RFC 4180 quoting of one field (also used by `review export --format csv`).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// What the bot would retrieve and answer for `question` (nothing is logged).
pub async fn test_question(state: &AppState, question: &str) -> Result<(Vec<SearchResult>, Answer), OpError> {
    let results =
        state.answerer.searcher().search(question, Some(8), &SearchFilter::default()).await.map_err(internal)?;
    let incoming =
        Incoming::new("console", &format!("console-test-{}", uuid::Uuid::new_v4().simple()), "console", question);
    let answer = state.answerer.answer(&incoming, None).await;
    Ok((results, answer))
}

/// The operator desk behind escalation posts in chat: the same actions as the console.
pub struct Desk(pub AppState);

#[async_trait::async_trait]
impl crate::channel::OperatorDesk for Desk {
    async fn take_over(&self, id: &str, operator: &str) -> anyhow::Result<()> {
        claim(&self.0, id, operator).await?;
        Ok(())
    }

    async fn approve(&self, id: &str, operator: &str) -> anyhow::Result<()> {
        let e = self.0.review.exchange(id).await.map_err(internal)?.ok_or_else(|| OpError::NotFound(id.to_string()))?;
        if e.outcome == supportbot_core::answer::Outcome::Abstained {
            return Err(OpError::Invalid(
                "the bot did not answer: reply to the post, or correct it in the console".into(),
            )
            .into());
        }
        approve(&self.0, id, operator, None, &[]).await?;
        Ok(())
    }

    async fn reply(&self, id: &str, operator: &str, text: &str) -> anyhow::Result<()> {
        reply(&self.0, id, operator, text).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curated_csv_quotes_fields_and_lists_every_variant() {
        let c = CuratedAnswer {
            id: "a".into(),
            questions: vec!["How, exactly?".into(), "and \"why\"".into()],
            answer: "Line 1\nLine 2".into(),
            citation: None,
            url: Some("https://x.y/z".into()),
            status: CuratedStatus::Active,
            source_exchange: None,
            created_by: "ana".into(),
            created_at: 0,
            updated_at: 0,
        };
        let retired = CuratedAnswer { id: "b".into(), status: CuratedStatus::Retired, ..c.clone() };
        let csv = curated_csv(&[c, retired]);
        assert_eq!(
            csv,
            "question,answer,url,tags\n\"How, exactly?\",\"Line 1\nLine 2\",https://x.y/z,curated\n\"and \"\"why\"\"\",\"Line 1\nLine 2\",https://x.y/z,curated\n"
        );
    }
}
