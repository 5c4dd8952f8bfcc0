//! Telegram channel (teloxide): long polling, or a webhook route on the shared HTTP server when
//! `telegram.webhook_url` is set; questions from private chats, mentions, replies and `/ask` in
//! groups (forum topics answered in their topic); answers as HTML with sources and feedback
//! buttons; `/start`, `/help`, `/human`. Platform-neutral behaviour (rate limits, logging,
//! feedback, splitting, rendering) comes from [`crate::channel`].
//!
//! Map: `incoming` decides what a message asks and where the answer goes; `render` turns answers
//! into messages and keyboards; `send` talks to the Bot API (flood control, HTML fallback,
//! "typing…"); `handlers` ties them to the dispatcher; `webhook` is the secret-checked route;
//! `escalate` posts to the operators' group and handles its buttons and replies; `deliver` sends
//! an operator's reply to the chat (and forum topic) the question was asked in.
//!
//! The token only ever reaches teloxide: nothing here formats the `Bot` (its `Debug` shows the
//! token), and teloxide removes the token from the URLs in its network errors.

mod deliver;
mod escalate;
mod handlers;
mod incoming;
mod render;
mod send;
mod webhook;

use std::convert::Infallible;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use supportbot_config::TelegramSettings;
use teloxide::dispatching::Dispatcher;
use teloxide::error_handlers::LoggingErrorHandler;
use teloxide::payloads::SetWebhookSetters as _;
use teloxide::prelude::*;
use teloxide::stop::StopToken;
use teloxide::types::AllowedUpdate;
use teloxide::update_listeners::{Polling, UpdateListener};
use tokio_util::sync::CancellationToken;

use crate::channel::ChannelCore;
use handlers::Channel;
use incoming::{Identity, Lane};

pub use webhook::SECRET_HEADER as WEBHOOK_SECRET_HEADER;

/// How long one `getUpdates` waits for updates; below reqwest's 17 s timeout in teloxide's client.
const POLL_TIMEOUT: Duration = Duration::from_secs(10);

/// A running Telegram channel: its task, and in webhook mode the route to mount on the web server.
pub struct TelegramHandle {
    /// `POST <path of telegram.webhook_url>` in webhook mode; `None` when long polling.
    pub router: Option<axum::Router>,
    /// Ends after `shutdown` once the updates already taken are handled; an error if Telegram
    /// refused the bot at start (`getMe`).
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Starts the Telegram channel (long polling, or a webhook route when `webhook_url` is set).
/// It stops taking updates when `shutdown` is cancelled.
///
/// Fails when the settings are incomplete (no token; a webhook URL without a secret or without
/// a path) or Telegram refuses the token (`getMe`), or in webhook mode when `setWebhook` fails.
pub async fn start(
    core: Arc<ChannelCore>,
    settings: &TelegramSettings,
    shutdown: CancellationToken,
) -> anyhow::Result<TelegramHandle> {
    let token = settings
        .token
        .as_ref()
        .map(|t| t.expose().trim())
        .filter(|t| !t.is_empty())
        .context("telegram.token is not set")?;
    let api_url = api_url(&settings.api_url)?;
    let client = teloxide::net::default_reqwest_settings().build().context("building the HTTP client for Telegram")?;
    let bot = Bot::with_client(token, client).set_api_url(api_url);
    let me = bot.get_me().await.context("telegram: getMe failed (check telegram.token and telegram.api_url)")?;
    let username = me.user.username.clone();
    let channel = Arc::new(Channel {
        core,
        me: Identity { id: me.id, username: username.clone() },
        allowed_chats: settings.allowed_chats.iter().copied().collect(),
        stream_edits: settings.stream_edits,
        operator_chat: settings.operator_chat.map(ChatId),
    });
    if let Some(chat) = settings.operator_chat {
        channel.core.add_escalator(Arc::new(escalate::TelegramEscalator { bot: bot.clone(), chat: ChatId(chat) }));
    }
    let dispatcher = Dispatcher::builder(bot.clone(), handlers::handler_tree())
        .dependencies(dptree::deps![channel])
        .distribution_function(incoming::lane)
        // Other update kinds are not requested; should one arrive, it is not logged (it may
        // carry personal data).
        .default_handler(|_| async {})
        .build();

    let Some(url) = settings.webhook_url.as_deref() else {
        let mut listener = Polling::builder(bot).timeout(POLL_TIMEOUT).delete_webhook().await.build();
        let stop = listener.stop_token();
        tracing::info!(bot = username.as_deref().unwrap_or("?"), "telegram: long polling");
        let task = tokio::spawn(run(dispatcher, listener, stop, shutdown));
        return Ok(TelegramHandle { router: None, task });
    };

    let secret = settings.webhook_secret.as_ref().map(|s| s.expose()).filter(|s| !s.is_empty()).context(
        "telegram.webhook_secret must be set with telegram.webhook_url: without it anyone could post updates",
    )?;
    let url = reqwest::Url::parse(url).context("telegram.webhook_url is not a URL")?;
    let path = webhook_path(&url)?;
    bot.set_webhook(url.clone())
        .secret_token(secret.to_string())
        .allowed_updates([AllowedUpdate::Message, AllowedUpdate::CallbackQuery])
        .await
        .context("telegram: setWebhook failed")?;
    let (mut listener, router) = webhook::webhook(&path, secret);
    let stop = listener.stop_token();
    tracing::info!(bot = username.as_deref().unwrap_or("?"), %path, "telegram: webhook");
    let task = tokio::spawn(run(dispatcher, listener, stop, shutdown));
    Ok(TelegramHandle { router: Some(router), task })
}

/// Runs the dispatcher until `shutdown`: then the listener stops (polling commits its offset,
/// the webhook route answers 503) and the dispatcher returns once every update it took has
/// been handled.
async fn run<L>(
    mut dispatcher: Dispatcher<Bot, Infallible, Lane>,
    listener: L,
    stop: StopToken,
    shutdown: CancellationToken,
) -> anyhow::Result<()>
where
    L: UpdateListener + Send,
    L::Err: Debug,
{
    // The listener's own stop token rather than the dispatcher's shutdown token: the latter
    // refuses to work before dispatching has started (`IdleShutdownError`), which would lose a
    // shutdown arriving during the dispatcher's `getMe`.
    let watcher = tokio::spawn(async move {
        shutdown.cancelled().await;
        stop.stop();
    });
    let errors = LoggingErrorHandler::with_custom_text("telegram: getting updates failed");
    let result = dispatcher.try_dispatch_with_listener(listener, errors).await;
    watcher.abort();
    result.context("telegram: getMe failed")?;
    tracing::info!("telegram: stopped");
    Ok(())
}

/// A deliverer of operators' replies for the configured bot (same token and base URL).
pub fn deliverer(settings: &TelegramSettings) -> anyhow::Result<Arc<dyn crate::channel::Deliverer>> {
    let token = settings
        .token
        .as_ref()
        .map(|t| t.expose().trim())
        .filter(|t| !t.is_empty())
        .context("telegram.token is not set")?;
    let client = teloxide::net::default_reqwest_settings().build().context("building the HTTP client for Telegram")?;
    let bot = Bot::with_client(token, client).set_api_url(api_url(&settings.api_url)?);
    Ok(Arc::new(deliver::TelegramDeliverer::new(bot)))
}

/// `telegram.api_url` as teloxide's base URL (without a trailing slash, which would double the
/// slash before `bot<token>`).
fn api_url(configured: &str) -> anyhow::Result<reqwest::Url> {
    let mut url = reqwest::Url::parse(configured).context("telegram.api_url is not a URL")?;
    anyhow::ensure!(
        matches!(url.scheme(), "http" | "https") && !url.cannot_be_a_base(),
        "telegram.api_url must be an http(s) URL, e.g. https://api.telegram.org"
    );
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty();
    }
    Ok(url)
}

/// The route of the webhook: the path of its public URL.
fn webhook_path(url: &reqwest::Url) -> anyhow::Result<String> {
    let path = url.path();
    let valid = path.len() > 1
        && path.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.' | '~' | '%'))
        && !path.contains("//");
    anyhow::ensure!(
        valid,
        "telegram.webhook_url needs a path of letters, digits and -_.~ (e.g. https://bot.example.com/telegram/webhook): \
         it is also the route on this server, and `/` belongs to the console"
    );
    Ok(path.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_urls_lose_the_trailing_slash_and_webhook_paths_are_checked() {
        assert_eq!(api_url("https://api.telegram.org").expect("ok").as_str(), "https://api.telegram.org/");
        assert_eq!(api_url("http://127.0.0.1:9/tg/").expect("ok").path(), "/tg");
        assert!(api_url("mailto:bot@example.com").is_err());
        let path = |u: &str| webhook_path(&reqwest::Url::parse(u).expect("url"));
        assert_eq!(path("https://bot.example.com/telegram/webhook").expect("ok"), "/telegram/webhook");
        assert!(path("https://bot.example.com/").is_err());
        assert!(path("https://bot.example.com/a/*rest").is_err());
    }
}
