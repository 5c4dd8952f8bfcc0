//! `supportbot serve`: every configured channel in one process around one Answerer, plus the
//! HTTP server (`/healthz`, `/readyz`, the Telegram webhook in webhook mode). SIGTERM or Ctrl-C
//! stops taking new questions and lets the answers in flight finish (`limits.shutdown_grace_secs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use supportbot_config::Settings;
use supportbot_core::log::AnswerLog;
use supportbot_core::review::SqlReviewStore;
use tokio_util::sync::CancellationToken;

use crate::channel::{ChannelCore, CoreOptions};

/// Options of the core from the settings.
pub fn core_options(settings: &Settings) -> CoreOptions {
    CoreOptions {
        per_user_per_minute: settings.limits.per_user_per_minute,
        per_chat_per_minute: settings.limits.per_chat_per_minute,
        max_concurrent_answers: settings.limits.max_concurrent_answers,
        user_salt: settings.review.user_salt.as_ref().map(|s| s.expose().to_string()).unwrap_or_default(),
    }
}

/// Resolves when the process is asked to stop (SIGTERM, or Ctrl-C).
pub async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Runs the channels until `stop` resolves, then shuts down gracefully.
pub async fn run(
    settings: &Settings,
    answerer: supportbot_core::answer::Answerer,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let review = Arc::new(
        SqlReviewStore::connect(settings.review.database_url.expose(), settings.review.low_confidence)
            .await
            .with_context(|| format!("opening the review store {}", settings.review.database_url.redacted()))?,
    );
    // The index holds a copy of the curated answers; the review store is the source of truth.
    let active = review.list_curated(true).await?;
    let searcher = answerer.searcher();
    let synced = supportbot_core::curated::sync_curated(searcher.store().as_ref(), searcher.embedder(), &active)
        .await
        .context("restoring curated answers into the index")?;
    tracing::info!(?synced, "curated answers in the index");
    let log: Arc<dyn AnswerLog> = review.clone();
    let core = Arc::new(
        ChannelCore::new(answerer.clone(), log, core_options(settings)).with_raw_user_ids(settings.review.raw_user_ids),
    );
    let shutdown = CancellationToken::new();
    let mut deliverers: Vec<Arc<dyn crate::channel::Deliverer>> = Vec::new();
    let mut tasks = Vec::new();
    let mut webhooks: Vec<axum::Router> = Vec::new();
    if settings.telegram.token.is_some() {
        let handle = crate::telegram::start(core.clone(), &settings.telegram, shutdown.clone())
            .await
            .context("starting the Telegram channel")?;
        if let Some(router) = handle.router {
            webhooks.push(router);
        }
        tasks.push(("telegram", handle.task));
        deliverers.push(crate::telegram::deliverer(&settings.telegram)?);
    }
    if settings.discord.token.is_some() {
        let task = crate::discord::start(core.clone(), &settings.discord, shutdown.clone())
            .await
            .context("starting the Discord channel")?;
        tasks.push(("discord", task));
        deliverers.push(crate::discord::deliverer(&settings.discord)?);
    }
    if tasks.is_empty() {
        tracing::warn!("no chat channel configured (telegram.token, discord.token); serving HTTP only");
    }
    let state = crate::web::AppState {
        core: core.clone(),
        answerer,
        review,
        login_limiter: Arc::new(crate::web::auth::LoginLimiter::new(5, Duration::from_secs(300))),
        metrics_token: settings.web.metrics_token.as_ref().map(|t| t.expose().to_string()),
        deliverers,
    };
    // Operators' buttons and replies in chat act through the same operations as the console.
    let desk: Arc<dyn crate::channel::OperatorDesk> = Arc::new(crate::web::ops::Desk(state.clone()));
    core.set_desk(&desk);
    let mut app = crate::web::router(state);
    for w in webhooks {
        app = app.merge(w);
    }
    let addr: SocketAddr = settings.web.listen.parse().context("web.listen")?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listening on {addr}"))?;
    tracing::info!(%addr, channels = ?tasks.iter().map(|(n, _)| *n).collect::<Vec<_>>(), "serving");
    eprintln!("supportbot: serving on http://{addr}");
    let http_shutdown = shutdown.clone();
    let http = tokio::spawn(async move {
        // The peer address feeds the per-address limit on sign-in attempts.
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move { http_shutdown.cancelled().await })
            .await
    });

    stop.await;
    tracing::info!("stopping: no new questions; finishing the answers in flight");
    core.stop_accepting();
    shutdown.cancel();
    let grace = Duration::from_secs(settings.limits.shutdown_grace_secs);
    if !core.wait_idle(grace).await {
        tracing::warn!(in_flight = core.in_flight(), "grace period over; stopping with answers in flight");
    }
    for (name, task) in tasks {
        match tokio::time::timeout(Duration::from_secs(10), task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(channel = name, error = %e, "channel stopped with an error"),
            Ok(Err(e)) => tracing::error!(channel = name, error = %e, "channel task failed"),
            Err(_) => tracing::warn!(channel = name, "channel did not stop in time"),
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), http).await;
    drop(desk);
    Ok(())
}
