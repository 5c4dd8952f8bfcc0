//! The JSON API under `/api/v1/` for integrations: ask a question, read the review queue and
//! act on it (claim, reply, approve, edit, reject, resolve), manage curated answers, read the
//! dashboard figures. Bearer API tokens (`supportbot token create`) or a console session (then
//! writes need the session's CSRF token in `X-CSRF-Token`). Described by `openapi.json`, served
//! at `/api/v1/openapi.json`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use supportbot_core::log::AnswerLog as _;
use supportbot_core::review::{QueueFilter, QueueReason, QueueStatus, Role, now_secs};

use super::AppState;
use super::auth::Operator;
use super::ops::{self, OpError};
use crate::channel::{Question, Reply};
use crate::cli::AskOutput;

/// The OpenAPI 3.1 description of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The most a queue listing returns at once.
const MAX_LIMIT: usize = 200;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/ask", post(ask))
        .route("/api/v1/queue", get(queue))
        .route("/api/v1/queue/{id}", get(item))
        .route("/api/v1/queue/{id}/{action}", post(act))
        .route("/api/v1/curated", get(curated).post(add_curated))
        .route("/api/v1/curated/{id}", get(one_curated).put(edit_curated))
        .route("/api/v1/curated/{id}/{change}", post(set_curated))
        .route("/api/v1/stats", get(stats))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
}

/// `{"error": "..."}` with a status.
fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn op_error(e: OpError) -> Response {
    match &e {
        OpError::NotFound(_) => error(StatusCode::NOT_FOUND, &e.to_string()),
        OpError::Invalid(_) => error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
        OpError::Delivery(_) => error(StatusCode::BAD_GATEWAY, &e.to_string()),
        OpError::Internal(m) => {
            tracing::error!(error = %m, "API operation failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error (see the server log)")
        }
    }
}

/// Role check, plus the CSRF header when the caller is a browser session.
fn check_write(op: &Operator, headers: &HeaderMap, role: Role) -> Result<(), Box<Response>> {
    let csrf = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
    op.check_csrf(csrf).map_err(|e| Box::new(e.into_response()))?;
    op.require(role).map_err(|e| Box::new(e.into_response()))
}

async fn openapi(_op: Operator) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

#[derive(Debug, Deserialize)]
struct AskBody {
    question: String,
    /// Keeps follow-up context between calls with the same id.
    conversation: Option<String>,
}

#[derive(Debug, Serialize)]
struct AskResponse {
    /// Refer to the exchange with this id in the queue endpoints.
    answer_id: String,
    #[serde(flatten)]
    answer: AskOutput,
}

async fn ask(State(state): State<AppState>, op: Operator, headers: HeaderMap, Json(body): Json<AskBody>) -> Response {
    if let Err(refused) = check_write(&op, &headers, Role::Viewer) {
        return *refused;
    }
    let text = body.question.trim();
    if text.is_empty() {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "the question is empty");
    }
    if text.chars().count() > 4000 {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "the question is longer than 4000 characters");
    }
    let conversation = body.conversation.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let q = Question {
        platform: "api",
        chat: op.username.clone(),
        user: op.username.clone(),
        conversation: format!("{}:{conversation}", op.username),
        text: text.to_string(),
        delivery: serde_json::Value::Null,
    };
    match state.core.ask(&q, None).await {
        Reply::Answer { answer_id, answer } => {
            Json(AskResponse { answer_id, answer: AskOutput::new(text, &answer) }).into_response()
        }
        Reply::Notice { kind, text } => {
            let mut res = error(StatusCode::TOO_MANY_REQUESTS, &text);
            if let crate::channel::NoticeKind::RateLimited { retry_after } = kind {
                let secs = retry_after.as_secs().max(1).to_string();
                if let Ok(v) = secs.parse() {
                    res.headers_mut().insert(header::RETRY_AFTER, v);
                }
            } else {
                *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            }
            res
        }
    }
}

/// Parses the queue listing's query: `status`, `reason` (comma-separated), `outcome`,
/// `channel`, `since`/`until` (Unix seconds), `limit`, `offset`.
fn queue_filter(q: &HashMap<String, String>) -> Result<QueueFilter, String> {
    let mut f = QueueFilter { limit: 50, ..Default::default() };
    if let Some(s) = q.get("status").filter(|s| !s.is_empty()) {
        for part in s.split(',') {
            f.statuses.push(QueueStatus::parse(part.trim()).ok_or_else(|| format!("unknown status {part:?}"))?);
        }
    }
    if let Some(s) = q.get("reason").filter(|s| !s.is_empty()) {
        for part in s.split(',') {
            f.reasons.push(QueueReason::parse(part.trim()).ok_or_else(|| format!("unknown reason {part:?}"))?);
        }
    }
    f.outcome = q.get("outcome").filter(|s| !s.is_empty()).cloned();
    f.channel = q.get("channel").filter(|s| !s.is_empty()).cloned();
    let int = |key: &str| -> Result<Option<i64>, String> {
        q.get(key)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<i64>().map_err(|_| format!("{key} must be an integer")))
            .transpose()
    };
    f.since = int("since")?;
    f.until = int("until")?;
    if let Some(l) = int("limit")? {
        f.limit = usize::try_from(l).map_err(|_| "limit must be positive".to_string())?.clamp(1, MAX_LIMIT);
    }
    if let Some(o) = int("offset")? {
        f.offset = usize::try_from(o).map_err(|_| "offset must be positive".to_string())?;
    }
    Ok(f)
}

async fn queue(State(state): State<AppState>, _op: Operator, Query(q): Query<HashMap<String, String>>) -> Response {
    let filter = match queue_filter(&q) {
        Ok(f) => f,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    match state.review.queue(&filter).await {
        Ok(items) => Json(json!({ "items": items })).into_response(),
        Err(e) => op_error(e.into()),
    }
}

async fn item(State(state): State<AppState>, _op: Operator, Path(id): Path<String>) -> Response {
    match state.review.item(&id).await {
        Ok(Some(i)) => Json(i).into_response(),
        Ok(None) => match state.review.exchange(&id).await {
            Ok(Some(e)) => Json(json!({ "exchange": e, "status": null })).into_response(),
            Ok(None) => error(StatusCode::NOT_FOUND, &format!("no such item: {id}")),
            Err(e) => op_error(OpError::Internal(e.to_string())),
        },
        Err(e) => op_error(e.into()),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActBody {
    /// `reply`: the message for the user.
    text: Option<String>,
    /// `approve`: a corrected answer (then recorded as an edit).
    answer: Option<String>,
    /// `approve`: more phrasings of the question that the curated answer should match.
    #[serde(default)]
    questions: Vec<String>,
    /// `reject` / `resolve`: a note for the log.
    note: Option<String>,
}

async fn act(
    State(state): State<AppState>,
    op: Operator,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Option<Json<ActBody>>,
) -> Response {
    if let Err(refused) = check_write(&op, &headers, Role::Operator) {
        return *refused;
    }
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let who = op.username.as_str();
    let result = match action.as_str() {
        "claim" => ops::claim(&state, &id, who).await.map(|i| json!({ "item": i })),
        "reply" => match body.text.as_deref() {
            Some(t) => ops::reply(&state, &id, who, t).await.map(|i| json!({ "item": i })),
            None => Err(OpError::Invalid("reply needs \"text\"".into())),
        },
        "approve" | "edit" => {
            let correction = body.answer.as_deref().filter(|a| !a.trim().is_empty());
            if action == "edit" && correction.is_none() {
                Err(OpError::Invalid("edit needs \"answer\"".into()))
            } else {
                ops::approve(&state, &id, who, correction, &body.questions)
                    .await
                    .map(|(i, c)| json!({ "item": i, "curated": c }))
            }
        }
        "reject" => ops::reject(&state, &id, who, body.note.as_deref()).await.map(|i| json!({ "item": i })),
        "resolve" => ops::resolve(&state, &id, who, body.note.as_deref()).await.map(|i| json!({ "item": i })),
        other => return error(StatusCode::NOT_FOUND, &format!("unknown action {other:?}")),
    };
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => op_error(e),
    }
}

async fn curated(State(state): State<AppState>, _op: Operator, Query(q): Query<HashMap<String, String>>) -> Response {
    let active_only = q.get("all").is_none_or(|v| v != "true" && v != "1");
    match state.review.list_curated(active_only).await {
        Ok(list) => Json(json!({ "curated": list })).into_response(),
        Err(e) => op_error(e.into()),
    }
}

async fn one_curated(State(state): State<AppState>, _op: Operator, Path(id): Path<String>) -> Response {
    match state.review.curated(&id).await {
        Ok(Some(c)) => Json(c).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, &format!("no such curated answer: {id}")),
        Err(e) => op_error(e.into()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CuratedBody {
    questions: Vec<String>,
    answer: String,
    citation: Option<String>,
    url: Option<String>,
}

async fn add_curated(
    State(state): State<AppState>,
    op: Operator,
    headers: HeaderMap,
    Json(b): Json<CuratedBody>,
) -> Response {
    if let Err(refused) = check_write(&op, &headers, Role::Operator) {
        return *refused;
    }
    match ops::add_curated(&state, &op.username, b.questions, b.answer, b.citation, b.url).await {
        Ok(c) => (StatusCode::CREATED, Json(c)).into_response(),
        Err(e) => op_error(e),
    }
}

async fn edit_curated(
    State(state): State<AppState>,
    op: Operator,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(b): Json<CuratedBody>,
) -> Response {
    if let Err(refused) = check_write(&op, &headers, Role::Operator) {
        return *refused;
    }
    match ops::edit_curated(&state, &id, b.questions, b.answer, b.citation, b.url).await {
        Ok(c) => Json(c).into_response(),
        Err(e) => op_error(e),
    }
}

async fn set_curated(
    State(state): State<AppState>,
    op: Operator,
    headers: HeaderMap,
    Path((id, change)): Path<(String, String)>,
) -> Response {
    if let Err(refused) = check_write(&op, &headers, Role::Operator) {
        return *refused;
    }
    let active = match change.as_str() {
        "retire" => false,
        "activate" => true,
        other => return error(StatusCode::NOT_FOUND, &format!("unknown change {other:?} (retire, activate)")),
    };
    match ops::set_curated_active(&state, &id, active).await {
        Ok(c) => Json(c).into_response(),
        Err(e) => op_error(e),
    }
}

async fn stats(State(state): State<AppState>, _op: Operator, Query(q): Query<HashMap<String, String>>) -> Response {
    let days = match q.get("days").map(|d| d.parse::<i64>()) {
        None => 30,
        Some(Ok(d)) if (1..=3650).contains(&d) => d,
        Some(_) => return error(StatusCode::BAD_REQUEST, "days must be between 1 and 3650"),
    };
    match state.review.stats(now_secs() - days * 86_400).await {
        Ok(s) => Json(json!({ "days": days, "stats": s })).into_response(),
        Err(e) => op_error(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_is_valid_json_and_lists_every_route() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let paths = doc["paths"].as_object().unwrap();
        for p in [
            "/api/v1/ask",
            "/api/v1/queue",
            "/api/v1/queue/{id}",
            "/api/v1/queue/{id}/{action}",
            "/api/v1/curated",
            "/api/v1/curated/{id}",
            "/api/v1/curated/{id}/{change}",
            "/api/v1/stats",
        ] {
            assert!(paths.contains_key(p), "{p} is not documented");
        }
    }

    #[test]
    fn queue_filters_parse_and_reject_unknown_values() {
        let q: HashMap<String, String> =
            [("status", "open,claimed"), ("reason", "human"), ("limit", "5000"), ("since", "10")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let f = queue_filter(&q).unwrap();
        assert_eq!(f.statuses, vec![QueueStatus::Open, QueueStatus::Claimed]);
        assert_eq!(f.reasons, vec![QueueReason::Human]);
        assert_eq!(f.limit, MAX_LIMIT);
        assert_eq!(f.since, Some(10));
        let bad: HashMap<String, String> = [("status".to_string(), "pending".to_string())].into_iter().collect();
        assert!(queue_filter(&bad).unwrap_err().contains("pending"));
    }
}
