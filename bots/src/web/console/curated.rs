//! Curated answers: the list (active and retired), adding one, editing one, retiring and
//! reactivating, and the export as an FAQ CSV that `supportbot-ingest` reads back.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use supportbot_core::review::{CuratedAnswer, CuratedStatus, Role};

use super::{Page, check_form, encode_component, format_time, lines, message, op_failure, safe_link, unavailable};
use crate::web::AppState;
use crate::web::auth::Operator;
use crate::web::ops::{self, OpError};

#[derive(Debug, Clone, Default, Serialize)]
struct Draft {
    questions: String,
    answer: String,
    citation: String,
    url: String,
}

#[derive(Debug, Serialize)]
struct CuratedView {
    id: String,
    questions: Vec<String>,
    answer: String,
    citation: Option<String>,
    link: Option<String>,
    source_exchange: Option<String>,
    created_by: String,
    created_at: String,
    updated_at: String,
    /// What the edit form shows (the stored values, or what was submitted when saving failed).
    draft: Draft,
    /// The edit form starts open (saving it failed).
    open: bool,
}

fn view(c: &CuratedAnswer) -> CuratedView {
    CuratedView {
        id: c.id.clone(),
        questions: c.questions.clone(),
        answer: c.answer.clone(),
        citation: c.citation.clone(),
        link: safe_link(c.url.as_deref()),
        source_exchange: c.source_exchange.clone(),
        created_by: c.created_by.clone(),
        created_at: format_time(c.created_at),
        updated_at: format_time(c.updated_at),
        draft: Draft {
            questions: c.questions.join("\n"),
            answer: c.answer.clone(),
            citation: c.citation.clone().unwrap_or_default(),
            url: c.url.clone().unwrap_or_default(),
        },
        open: false,
    }
}

#[derive(Debug, Serialize)]
struct ListView {
    active: Vec<CuratedView>,
    retired: Vec<CuratedView>,
    /// The add form's contents.
    add: Draft,
}

/// Which form failed, to show what was typed in it again.
enum Failed {
    Add(Draft),
    Edit(String, Draft),
}

async fn list_page(
    state: &AppState,
    op: &Operator,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
    failed: Option<Failed>,
) -> Response {
    let all = match state.review.list_curated(false).await {
        Ok(all) => all,
        Err(e) => return unavailable(op, "listing curated answers", e),
    };
    let mut views: Vec<CuratedView> = all.iter().map(view).collect();
    let mut add = Draft::default();
    match failed {
        Some(Failed::Add(d)) => add = d,
        Some(Failed::Edit(id, d)) => {
            if let Some(v) = views.iter_mut().find(|v| v.id == id) {
                v.draft = d;
                v.open = true;
            }
        }
        None => {}
    }
    let (active, retired): (Vec<_>, Vec<_>) =
        views.into_iter().zip(&all).partition(|(_, c)| c.status == CuratedStatus::Active);
    let data = ListView {
        active: active.into_iter().map(|(v, _)| v).collect(),
        retired: retired.into_iter().map(|(v, _)| v).collect(),
        add,
    };
    Page::new("curated.html", "curated", Some(op), data).status(status).notice(notice).error(error).into_response()
}

fn done_notice(done: &str) -> Option<&'static str> {
    Some(match done {
        "added" => "Added: the answer is served from now on for these questions.",
        "saved" => "Saved.",
        "retired" => "Retired: it is no longer served.",
        "reactivated" => "Reactivated: it is served again.",
        _ => return None,
    })
}

/// GET /curated
pub(super) async fn list(
    State(state): State<AppState>,
    op: Operator,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let notice = q.get("done").and_then(|d| done_notice(d)).map(str::to_string);
    list_page(&state, &op, StatusCode::OK, notice, None, None).await
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct CuratedForm {
    #[serde(default)]
    csrf: Option<String>,
    /// The question and its variants, one per line.
    #[serde(default)]
    questions: String,
    #[serde(default)]
    answer: String,
    #[serde(default)]
    citation: String,
    #[serde(default)]
    url: String,
}

impl CuratedForm {
    fn draft(&self) -> Draft {
        Draft {
            questions: self.questions.clone(),
            answer: self.answer.clone(),
            citation: self.citation.clone(),
            url: self.url.clone(),
        }
    }

    /// The link, if any; only web links (it is shown to users under the answer).
    fn url(&self) -> Result<Option<String>, OpError> {
        let url = self.url.trim();
        if url.is_empty() {
            return Ok(None);
        }
        safe_link(Some(url))
            .map(Some)
            .ok_or_else(|| OpError::Invalid("the link must be a web address starting with https:// or http://".into()))
    }

    fn citation(&self) -> Option<String> {
        Some(self.citation.trim().to_string()).filter(|c| !c.is_empty())
    }
}

fn back(done: &str, id: &str) -> Response {
    Redirect::to(&format!("/curated?done={done}#c-{}", encode_component(id))).into_response()
}

/// POST /curated: a new curated answer.
pub(super) async fn add(State(state): State<AppState>, op: Operator, Form(form): Form<CuratedForm>) -> Response {
    if let Err(refused) = check_form(&op, form.csrf.as_deref(), Role::Operator) {
        return *refused;
    }
    let result = match form.url() {
        Ok(url) => {
            ops::add_curated(
                &state,
                &op.username,
                lines(Some(&form.questions)),
                form.answer.clone(),
                form.citation(),
                url,
            )
            .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(c) => {
            tracing::info!(operator = %op.username, curated = %c.id, "curated answer added");
            back("added", &c.id)
        }
        Err(e) => {
            let (status, text) = op_failure(&e);
            list_page(&state, &op, status, None, Some(text), Some(Failed::Add(form.draft()))).await
        }
    }
}

/// POST /curated/{id}: saves an edited curated answer.
pub(super) async fn edit(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
    Form(form): Form<CuratedForm>,
) -> Response {
    if let Err(refused) = check_form(&op, form.csrf.as_deref(), Role::Operator) {
        return *refused;
    }
    let result = match form.url() {
        Ok(url) => {
            ops::edit_curated(&state, &id, lines(Some(&form.questions)), form.answer.clone(), form.citation(), url)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(c) => {
            tracing::info!(operator = %op.username, curated = %c.id, "curated answer edited");
            back("saved", &c.id)
        }
        Err(e) => {
            let (status, text) = op_failure(&e);
            list_page(&state, &op, status, None, Some(text), Some(Failed::Edit(id, form.draft()))).await
        }
    }
}

/// POST /curated/{id}/retire and /curated/{id}/reactivate
pub(super) async fn set_active(
    State(state): State<AppState>,
    op: Operator,
    Path((id, change)): Path<(String, String)>,
    Form(form): Form<CuratedForm>,
) -> Response {
    if let Err(refused) = check_form(&op, form.csrf.as_deref(), Role::Operator) {
        return *refused;
    }
    let (active, done) = match change.as_str() {
        "retire" => (false, "retired"),
        "reactivate" => (true, "reactivated"),
        _ => return message(Some(&op), StatusCode::NOT_FOUND, "Not found", "There is no such action."),
    };
    match ops::set_curated_active(&state, &id, active).await {
        Ok(c) => {
            tracing::info!(operator = %op.username, curated = %c.id, done, "curated answer status changed");
            back(done, &c.id)
        }
        Err(e) => {
            let (status, text) = op_failure(&e);
            list_page(&state, &op, status, None, Some(text), None).await
        }
    }
}

/// GET /curated.csv: the active curated answers as an FAQ CSV (one row per question variant).
pub(super) async fn csv(State(state): State<AppState>, op: Operator) -> Response {
    match state.review.list_curated(true).await {
        Ok(list) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"curated.csv\""),
            ],
            ops::curated_csv(&list),
        )
            .into_response(),
        Err(e) => unavailable(&op, "exporting curated answers", e),
    }
}
