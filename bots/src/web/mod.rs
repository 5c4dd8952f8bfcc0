//! The HTTP side of `supportbot serve`: the operator console (server-rendered pages), the JSON
//! API under `/api/v1/` with its OpenAPI document, `/healthz`, `/readyz` and `/metrics`.
//! Without a session or an API token only `/login`, `/healthz`, `/readyz`, static assets and
//! the platform webhooks answer.

pub mod api;
pub mod auth;
pub mod console;
pub mod metrics;
pub mod ops;

use std::sync::Arc;

use supportbot_core::answer::Answerer;
use supportbot_core::review::SqlReviewStore;

use crate::channel::{ChannelCore, Deliverer};

/// Everything the handlers need.
#[derive(Clone)]
pub struct AppState {
    pub core: Arc<ChannelCore>,
    pub answerer: Answerer,
    pub review: Arc<SqlReviewStore>,
    pub login_limiter: Arc<auth::LoginLimiter>,
    pub metrics_token: Option<String>,
    /// One per running chat channel, for operators' replies.
    pub deliverers: Vec<Arc<dyn Deliverer>>,
}

/// Every HTTP route of `supportbot serve` except the platform webhooks (merged in by `serve`).
pub fn router(state: AppState) -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::metrics))
        .merge(console::routes())
        .merge(api::routes())
        .with_state(state)
}

/// Ready when the index and the review store answer.
async fn readyz(axum::extract::State(state): axum::extract::State<AppState>) -> (axum::http::StatusCode, &'static str) {
    let index = state.answerer.searcher().store().meta().await.is_ok();
    let review = state.review.operator("").await.is_ok();
    if index && review {
        (axum::http::StatusCode::OK, "ready")
    } else {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}
