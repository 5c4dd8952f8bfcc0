//! The review queue: the filtered, paginated list, one exchange with everything an operator
//! needs to decide (answer, citations, retrieved passages and their scores, feedback, history),
//! and the actions on it (claim, reply, approve, edit and approve, reject, resolve).

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use supportbot_core::answer::Outcome;
use supportbot_core::log::{AnswerLog as _, Exchange, Feedback, FeedbackKind};
use supportbot_core::review::{QueueFilter, QueueItem, QueueReason, QueueStatus, Role};

use super::{
    Page, check_form, encode_component, enum_name, format_rfc3339, format_time, lines, message, op_failure,
    query_string, safe_link, score, truncate, unavailable,
};
use crate::web::AppState;
use crate::web::auth::Operator;
use crate::web::ops;

/// Items per page of the queue.
const PAGE_SIZE: usize = 25;

/// A choice in a filter's drop-down.
#[derive(Debug, Serialize)]
struct Choice {
    value: &'static str,
    label: &'static str,
}

const fn choice(value: &'static str, label: &'static str) -> Choice {
    Choice { value, label }
}

const STATUS_CHOICES: &[Choice] = &[
    choice("active", "open or claimed"),
    choice("open", "open"),
    choice("claimed", "claimed"),
    choice("resolved", "resolved"),
    choice("rejected", "rejected"),
    choice("all", "any"),
];
const REASON_CHOICES: &[Choice] = &[
    choice("", "any"),
    choice("abstained", "abstained"),
    choice("low_confidence", "low confidence"),
    choice("thumbs_down", "👎"),
    choice("human", "asked for a person"),
];
const OUTCOME_CHOICES: &[Choice] = &[
    choice("", "any"),
    choice("answered", "answered"),
    choice("curated", "curated"),
    choice("fallback", "fallback"),
    choice("abstained", "abstained"),
];
const CHANNEL_CHOICES: &[Choice] =
    &[choice("", "any"), choice("telegram", "Telegram"), choice("discord", "Discord"), choice("web", "web")];

/// The filters as read from the query string (unknown values are ignored, not errors).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
struct Filters {
    status: String,
    reason: String,
    outcome: String,
    channel: String,
    from: String,
    to: String,
    page: usize,
}

fn known(value: Option<&String>, choices: &[Choice]) -> String {
    value.filter(|v| choices.iter().any(|c| c.value == v.as_str())).cloned().unwrap_or_default()
}

fn date(value: Option<&String>) -> String {
    value.filter(|v| NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok()).cloned().unwrap_or_default()
}

impl Filters {
    fn parse(q: &HashMap<String, String>) -> Self {
        let status = known(q.get("status"), STATUS_CHOICES);
        Self {
            status: if status.is_empty() { "active".into() } else { status },
            reason: known(q.get("reason"), REASON_CHOICES),
            outcome: known(q.get("outcome"), OUTCOME_CHOICES),
            channel: known(q.get("channel"), CHANNEL_CHOICES),
            from: date(q.get("from")),
            to: date(q.get("to")),
            page: q.get("page").and_then(|p| p.parse().ok()).filter(|p| *p >= 1).unwrap_or(1),
        }
    }

    /// The store's filter, asking for one item more than a page to know whether another follows.
    fn to_store(&self) -> QueueFilter {
        let statuses = match self.status.as_str() {
            "all" => Vec::new(),
            "active" => vec![QueueStatus::Open, QueueStatus::Claimed],
            s => QueueStatus::parse(s).into_iter().collect(),
        };
        let day = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok();
        QueueFilter {
            statuses,
            reasons: QueueReason::parse(&self.reason).into_iter().collect(),
            outcome: Some(self.outcome.clone()).filter(|o| !o.is_empty()),
            channel: Some(self.channel.clone()).filter(|c| !c.is_empty()),
            since: day(&self.from).and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc().timestamp()),
            until: day(&self.to).and_then(|d| d.and_hms_opt(23, 59, 59)).map(|t| t.and_utc().timestamp()),
            limit: PAGE_SIZE + 1,
            offset: (self.page - 1) * PAGE_SIZE,
        }
    }

    /// The query string of these filters on another page.
    fn query(&self, page: usize) -> String {
        query_string(&[
            ("status", self.status.clone()),
            ("reason", self.reason.clone()),
            ("outcome", self.outcome.clone()),
            ("channel", self.channel.clone()),
            ("from", self.from.clone()),
            ("to", self.to.clone()),
            ("page", page.to_string()),
        ])
    }
}

#[derive(Debug, Serialize)]
struct Row {
    id: String,
    at: String,
    channel: String,
    question: String,
    outcome: String,
    reasons: Vec<&'static str>,
    status: &'static str,
    claimed_by: Option<String>,
}

fn row(i: &QueueItem) -> Row {
    Row {
        id: i.exchange.id.clone(),
        at: format_rfc3339(&i.exchange.at),
        channel: i.exchange.channel.clone(),
        question: truncate(&i.exchange.question, 140),
        outcome: enum_name(&i.exchange.outcome),
        reasons: i.reasons.iter().map(|r| r.as_str()).collect(),
        status: i.status.as_str(),
        claimed_by: i.claimed_by.clone(),
    }
}

#[derive(Debug, Serialize)]
struct QueueView {
    rows: Vec<Row>,
    filters: Filters,
    statuses: &'static [Choice],
    reasons: &'static [Choice],
    outcomes: &'static [Choice],
    channels: &'static [Choice],
    prev: Option<String>,
    next: Option<String>,
}

/// GET /queue
pub(super) async fn list(
    State(state): State<AppState>,
    op: Operator,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let filters = Filters::parse(&q);
    let mut items = match state.review.queue(&filters.to_store()).await {
        Ok(items) => items,
        Err(e) => return unavailable(&op, "listing the queue", e),
    };
    let more = items.len() > PAGE_SIZE;
    items.truncate(PAGE_SIZE);
    let view = QueueView {
        rows: items.iter().map(row).collect(),
        prev: (filters.page > 1).then(|| filters.query(filters.page - 1)),
        next: more.then(|| filters.query(filters.page + 1)),
        filters,
        statuses: STATUS_CHOICES,
        reasons: REASON_CHOICES,
        outcomes: OUTCOME_CHOICES,
        channels: CHANNEL_CHOICES,
    };
    Page::new("queue.html", "queue", Some(&op), view).into_response()
}

#[derive(Debug, Serialize)]
struct CitationView {
    n: usize,
    citation: String,
    title: String,
    link: Option<String>,
}

#[derive(Debug, Serialize)]
struct PassageView {
    rank: usize,
    citation: String,
    title: String,
    kind: String,
    fused: String,
    cosine: String,
    bm25: String,
    link: Option<String>,
}

#[derive(Debug, Serialize)]
struct FeedbackView {
    kind: &'static str,
    user: String,
    at: String,
}

#[derive(Debug, Serialize)]
struct ActionView {
    at: String,
    operator: String,
    kind: &'static str,
    body: Option<String>,
}

/// What the operator typed into the forms, kept when an action fails so nothing is lost.
#[derive(Debug, Clone, Default, Serialize)]
struct Drafts {
    reply: String,
    answer: String,
    questions: String,
    note: String,
}

#[derive(Debug, Serialize)]
struct ItemView {
    id: String,
    question: String,
    answer: String,
    outcome: String,
    backend: Option<String>,
    confidence: String,
    latency_retrieval: u64,
    latency_generation: u64,
    latency_total: u64,
    at: String,
    channel: String,
    conversation: String,
    user: String,
    /// `None` for an exchange that never entered the queue.
    status: Option<&'static str>,
    reasons: Vec<&'static str>,
    claimed_by: Option<String>,
    citations: Vec<CitationView>,
    passages: Vec<PassageView>,
    feedback: Vec<FeedbackView>,
    actions: Vec<ActionView>,
    /// An abstention has no answer to approve as it is: only a correction can be approved.
    approvable: bool,
    drafts: Drafts,
}

fn feedback_label(kind: FeedbackKind) -> &'static str {
    match kind {
        FeedbackKind::Up => "👍",
        FeedbackKind::Down => "👎",
        FeedbackKind::Human => "asked for a person",
    }
}

fn item_view(e: &Exchange, queued: Option<&QueueItem>, feedback: &[Feedback], drafts: Option<Drafts>) -> ItemView {
    let citations: Vec<CitationView> = e
        .citations
        .iter()
        .map(|c| CitationView {
            n: c.n,
            citation: c.citation.clone(),
            title: c.title.clone(),
            link: safe_link(c.url.as_deref()),
        })
        .collect();
    let passages = e
        .passages
        .iter()
        .enumerate()
        .map(|(i, p)| PassageView {
            rank: i + 1,
            citation: p.citation.clone(),
            title: p.title.clone(),
            kind: p.kind.as_str().to_string(),
            fused: score(Some(p.score), 4),
            cosine: score(p.dense_score, 3),
            bm25: score(p.bm25_score, 2),
            // Passages carry no link of their own; a cited one has its citation's.
            link: citations.iter().find(|c| c.citation == p.citation).and_then(|c| c.link.clone()),
        })
        .collect();
    let mut drafts = drafts.unwrap_or_default();
    // The edit form starts from the bot's answer (also after another form failed); after an
    // abstention it starts empty: the bot's "I don't know" is no draft of an answer.
    if drafts.answer.trim().is_empty() && e.outcome != Outcome::Abstained {
        drafts.answer = e.answer.clone();
    }
    ItemView {
        id: e.id.clone(),
        question: e.question.clone(),
        answer: e.answer.clone(),
        outcome: enum_name(&e.outcome),
        backend: e.backend.clone(),
        confidence: format!("{:.2}", e.confidence),
        latency_retrieval: e.latency.retrieval,
        latency_generation: e.latency.generation,
        latency_total: e.latency.total,
        at: format_rfc3339(&e.at),
        channel: e.channel.clone(),
        conversation: e.conversation.clone(),
        user: e.user.clone(),
        status: queued.map(|q| q.status.as_str()),
        reasons: queued.map(|q| q.reasons.iter().map(|r| r.as_str()).collect()).unwrap_or_default(),
        claimed_by: queued.and_then(|q| q.claimed_by.clone()),
        citations,
        passages,
        feedback: feedback
            .iter()
            .map(|f| FeedbackView { kind: feedback_label(f.kind), user: f.user.clone(), at: format_rfc3339(&f.at) })
            .collect(),
        actions: queued
            .map(|q| {
                q.actions
                    .iter()
                    .map(|a| ActionView {
                        at: format_time(a.at),
                        operator: a.operator.clone(),
                        kind: a.kind.as_str(),
                        body: a.body.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        approvable: e.outcome != Outcome::Abstained,
        drafts,
    }
}

/// What a successful action says on the page it returns to (fixed texts: nothing from the
/// query string is shown).
fn done_notice(action: &str) -> Option<&'static str> {
    Some(match action {
        "claim" => "You claimed this item.",
        "reply" => "Your reply was delivered to the user in their chat.",
        "approve" => "Approved: the answer is now a curated answer.",
        "edit" => "Corrected and approved: the correction is now a curated answer, served for this question.",
        "reject" => "Marked as rejected.",
        "resolve" => "Resolved.",
        _ => return None,
    })
}

/// Renders one exchange (queued or not), with an optional notice or error.
async fn item_page(
    state: &AppState,
    op: &Operator,
    id: &str,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
    drafts: Option<Drafts>,
) -> Response {
    let queued = match state.review.item(id).await {
        Ok(q) => q,
        Err(e) => return unavailable(op, "reading a queue item", e),
    };
    let (exchange, feedback) = match &queued {
        Some(q) => (q.exchange.clone(), q.feedback.clone()),
        None => match state.review.exchange(id).await {
            Ok(Some(e)) => {
                let fb = state.review.feedback_for(id).await.unwrap_or_default();
                (e, fb)
            }
            Ok(None) => {
                return message(Some(op), StatusCode::NOT_FOUND, "Not found", "There is no exchange with this id.");
            }
            Err(e) => return unavailable(op, "reading an exchange", e),
        },
    };
    let view = item_view(&exchange, queued.as_ref(), &feedback, drafts);
    Page::new("item.html", "queue", Some(op), view).status(status).notice(notice).error(error).into_response()
}

/// GET /queue/{id}
pub(super) async fn show(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let notice = q.get("done").and_then(|d| done_notice(d)).map(str::to_string);
    item_page(&state, &op, &id, StatusCode::OK, notice, None, None).await
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ActionForm {
    #[serde(default)]
    csrf: Option<String>,
    /// The reply to the user.
    #[serde(default)]
    text: Option<String>,
    /// The corrected answer.
    #[serde(default)]
    answer: Option<String>,
    /// More ways users ask the question, one per line.
    #[serde(default)]
    questions: Option<String>,
    /// Why it was rejected or resolved.
    #[serde(default)]
    note: Option<String>,
}

/// POST /queue/{id}/{action}: `claim`, `reply`, `approve`, `edit`, `reject`, `resolve`.
pub(super) async fn act(
    State(state): State<AppState>,
    op: Operator,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Err(refused) = check_form(&op, form.csrf.as_deref(), Role::Operator) {
        return *refused;
    }
    let who = op.username.as_str();
    let note = form.note.as_deref().map(str::trim).filter(|n| !n.is_empty());
    let result = match action.as_str() {
        "claim" => ops::claim(&state, &id, who).await.map(drop),
        "reply" => ops::reply(&state, &id, who, form.text.as_deref().unwrap_or_default()).await.map(drop),
        "approve" => match state.review.exchange(&id).await {
            // Approving an abstention as it is would serve "I don't know" as the curated answer.
            Ok(Some(e)) if e.outcome == Outcome::Abstained => Err(ops::OpError::Invalid(
                "the bot did not answer this question: write the answer in the edit form and approve that".into(),
            )),
            _ => ops::approve(&state, &id, who, None, &[]).await.map(drop),
        },
        "edit" => {
            let answer = form.answer.as_deref().unwrap_or_default();
            match state.review.exchange(&id).await {
                // The same guard as `approve`: the abstention's own text submitted as the correction.
                Ok(Some(e)) if e.outcome == Outcome::Abstained && answer.trim() == e.answer.trim() => {
                    Err(ops::OpError::Invalid(
                        "this is the bot's own \"I don't know\": write the answer users should get".into(),
                    ))
                }
                _ => ops::approve(&state, &id, who, Some(answer), &lines(form.questions.as_deref())).await.map(drop),
            }
        }
        "reject" => ops::reject(&state, &id, who, note).await.map(drop),
        "resolve" => ops::resolve(&state, &id, who, note).await.map(drop),
        _ => return message(Some(&op), StatusCode::NOT_FOUND, "Not found", "There is no such action."),
    };
    match result {
        Ok(()) => {
            tracing::info!(operator = who, action = action.as_str(), exchange = id.as_str(), "operator action");
            Redirect::to(&format!("/queue/{}?done={action}", encode_component(&id))).into_response()
        }
        Err(e) => {
            let (status, text) = op_failure(&e);
            let drafts = Drafts {
                reply: form.text.unwrap_or_default(),
                answer: form.answer.unwrap_or_default(),
                questions: form.questions.unwrap_or_default(),
                note: form.note.unwrap_or_default(),
            };
            item_page(&state, &op, &id, status, None, Some(text), Some(drafts)).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn filters_read_known_values_and_ignore_the_rest() {
        let f = Filters::parse(&q(&[
            ("status", "resolved"),
            ("reason", "thumbs_down"),
            ("outcome", "bogus"),
            ("channel", "telegram"),
            ("from", "2026-01-02"),
            ("to", "not a date"),
            ("page", "3"),
        ]));
        assert_eq!(f.status, "resolved");
        assert_eq!(f.outcome, "");
        assert_eq!(f.to, "");
        let s = f.to_store();
        assert_eq!(s.statuses, vec![QueueStatus::Resolved]);
        assert_eq!(s.reasons, vec![QueueReason::ThumbsDown]);
        assert_eq!(s.outcome, None);
        assert_eq!(s.channel.as_deref(), Some("telegram"));
        assert_eq!(s.since, Some(1_767_312_000));
        assert_eq!(s.until, None);
        assert_eq!((s.limit, s.offset), (PAGE_SIZE + 1, 2 * PAGE_SIZE));
        assert_eq!(f.query(4), "status=resolved&reason=thumbs_down&channel=telegram&from=2026-01-02&page=4");
    }

    #[test]
    fn the_default_shows_open_and_claimed_items() {
        let f = Filters::parse(&HashMap::new());
        assert_eq!(f.page, 1);
        assert_eq!(f.to_store().statuses, vec![QueueStatus::Open, QueueStatus::Claimed]);
        assert!(Filters::parse(&q(&[("status", "all")])).to_store().statuses.is_empty());
        let to = Filters::parse(&q(&[("to", "2026-01-02")])).to_store().until;
        assert_eq!(to, Some(1_767_398_399));
    }
}
