//! "Test a question": what the bot would retrieve (passages, citations, scores) and answer
//! (outcome, text, citations) for a question, without logging it or answering anyone.

use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use supportbot_core::review::Role;

use super::{Page, check_form, enum_name, op_failure, safe_link, score, truncate};
use crate::web::AppState;
use crate::web::auth::Operator;
use crate::web::ops;

/// Questions longer than this are not tested (the Answerer refuses long ones anyway).
const MAX_QUESTION_CHARS: usize = 4000;

#[derive(Debug, Serialize)]
struct ResultView {
    rank: usize,
    citation: String,
    title: String,
    kind: &'static str,
    fused: String,
    cosine: String,
    bm25: String,
    text: String,
}

#[derive(Debug, Serialize)]
struct CitationView {
    n: usize,
    citation: String,
    title: String,
    link: Option<String>,
}

#[derive(Debug, Serialize)]
struct AnswerView {
    outcome: String,
    text: String,
    citations: Vec<CitationView>,
    backend: Option<String>,
    confidence: String,
    abstain_reason: Option<String>,
    latency_retrieval: u64,
    latency_generation: u64,
    latency_total: u64,
}

#[derive(Debug, Default, Serialize)]
struct TestView {
    question: String,
    results: Vec<ResultView>,
    answer: Option<AnswerView>,
}

/// GET /test
pub(super) async fn page(op: Operator) -> Response {
    Page::new("test.html", "test", Some(&op), TestView::default()).into_response()
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct TestForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    q: String,
}

/// POST /test: a POST (with the CSRF token) although nothing is stored, because it may spend
/// money on a hosted model.
pub(super) async fn run(State(state): State<AppState>, op: Operator, Form(form): Form<TestForm>) -> Response {
    if let Err(refused) = check_form(&op, form.csrf.as_deref(), Role::Viewer) {
        return *refused;
    }
    let question = form.q.trim().to_string();
    let mut view = TestView { question: question.clone(), ..TestView::default() };
    if question.is_empty() || question.chars().count() > MAX_QUESTION_CHARS {
        let text = format!("Type a question of at most {MAX_QUESTION_CHARS} characters.");
        return Page::new("test.html", "test", Some(&op), view)
            .status(axum::http::StatusCode::UNPROCESSABLE_ENTITY)
            .error(Some(text))
            .into_response();
    }
    match ops::test_question(&state, &question).await {
        Ok((results, answer)) => {
            view.results = results
                .iter()
                .map(|r| ResultView {
                    rank: r.rank,
                    citation: r.chunk.citation(),
                    title: r.chunk.title.clone(),
                    kind: r.chunk.kind.as_str(),
                    fused: score(Some(r.score), 4),
                    cosine: score(r.dense_score, 3),
                    bm25: score(r.bm25_score, 2),
                    text: truncate(&r.chunk.text, 400),
                })
                .collect();
            view.answer = Some(AnswerView {
                outcome: enum_name(&answer.outcome),
                text: answer.text.clone(),
                citations: answer
                    .citations
                    .iter()
                    .map(|c| CitationView {
                        n: c.n,
                        citation: c.citation.clone(),
                        title: c.title.clone(),
                        link: safe_link(c.url.as_deref()),
                    })
                    .collect(),
                backend: answer.backend.clone(),
                confidence: format!("{:.2}", answer.confidence),
                abstain_reason: answer.abstain_reason.as_ref().map(enum_name),
                latency_retrieval: answer.latency.retrieval,
                latency_generation: answer.latency.generation,
                latency_total: answer.latency.total,
            });
            Page::new("test.html", "test", Some(&op), view).into_response()
        }
        Err(e) => {
            let (status, text) = op_failure(&e);
            Page::new("test.html", "test", Some(&op), view).status(status).error(Some(text)).into_response()
        }
    }
}
