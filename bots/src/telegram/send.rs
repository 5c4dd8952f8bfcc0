//! Talking to the Bot API from handlers: every call honours Telegram's flood control (a 429's
//! `retry_after` is waited out and the call repeated), HTML that Telegram refuses ("can't parse
//! entities") is sent again as plain text, and "typing…" is kept up while an answer is written.
//!
//! Teloxide's `Throttle` adaptor is not used: it needs a cargo feature this build does not enable,
//! and it only spaces requests out; a 429 can still happen (other processes, a server-side limit
//! change), so handlers need this retry anyway. Polling itself already sleeps on `retry_after`.

use std::time::Duration;

use teloxide::payloads::{EditMessageTextSetters as _, SendChatActionSetters as _, SendMessageSetters as _};
use teloxide::prelude::*;
use teloxide::requests::Output;
use teloxide::types::{
    ChatAction, InlineKeyboardMarkup, LinkPreviewOptions, MessageId, ParseMode, ReplyParameters, ThreadId,
};
use teloxide::{ApiError, RequestError};

use super::incoming::Target;
use super::render::Part;

/// How often a request is repeated after a 429 before giving up.
const MAX_RETRIES: u32 = 5;

/// A 429 asking for a longer wait than this is not waited out (the conversation's worker would
/// be stuck, and the user has long gone).
const MAX_RETRY_WAIT: Duration = Duration::from_secs(120);

/// Telegram shows "typing…" for about 5 s; it is renewed a little before it fades.
pub(crate) const TYPING_EVERY: Duration = Duration::from_secs(4);

/// Sends `request`, waiting out flood control (`RetryAfter`) and retrying a connection that
/// could not be established (nothing reached Telegram, so nothing can be sent twice).
pub(crate) async fn retrying<R>(method: &'static str, request: R) -> Result<Output<R>, RequestError>
where
    R: Request<Err = RequestError>,
{
    let mut attempt = 0;
    loop {
        let error = match request.send_ref().await {
            Ok(output) => return Ok(output),
            Err(e) => e,
        };
        let wait = match &error {
            RequestError::RetryAfter(secs) if secs.duration() <= MAX_RETRY_WAIT => secs.duration(),
            RequestError::Network(e) if e.is_connect() && attempt < 2 => Duration::from_millis(500 << attempt),
            _ => return Err(error),
        };
        if attempt >= MAX_RETRIES {
            return Err(error);
        }
        tracing::info!(method, wait_ms = wait.as_millis() as u64, attempt, "Telegram asked to wait; retrying");
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

/// Sends `request` once, or with [`retrying`]. Streaming previews use a single attempt: waiting
/// out a 429 there would hold back the final answer.
async fn send<R>(method: &'static str, request: R, retry: bool) -> Result<Output<R>, RequestError>
where
    R: Request<Err = RequestError>,
{
    if retry { retrying(method, request).await } else { request.send().await }
}

fn no_preview() -> LinkPreviewOptions {
    LinkPreviewOptions {
        is_disabled: true,
        url: None,
        prefer_small_media: false,
        prefer_large_media: false,
        show_above_text: false,
    }
}

/// Whether Telegram refused the message's HTML.
fn rejected_entities(error: &RequestError) -> bool {
    matches!(error, RequestError::Api(ApiError::CantParseEntities(_)))
}

/// Sends one message to `target`: HTML when the part has it, plain text if Telegram rejects the
/// HTML (or there is none).
pub(crate) async fn send_part(
    bot: &Bot,
    target: &Target,
    part: &Part,
    markup: Option<&InlineKeyboardMarkup>,
    retry: bool,
) -> Result<Message, RequestError> {
    let request = |text: &str, html: bool| {
        let mut r = bot.send_message(target.chat, text).link_preview_options(no_preview());
        if html {
            r = r.parse_mode(ParseMode::Html);
        }
        if let Some(id) = target.reply_to {
            // A deleted question must not cost the asker the answer.
            r = r.reply_parameters(ReplyParameters::new(id).allow_sending_without_reply());
        }
        if let Some(thread) = target.thread {
            r = r.message_thread_id(thread);
        }
        if let Some(m) = markup {
            r = r.reply_markup(m.clone());
        }
        r
    };
    if let Some(html) = &part.html {
        match send("sendMessage", request(html, true), retry).await {
            Err(e) if rejected_entities(&e) => {
                tracing::warn!(chat_id = target.chat.0, error = %e, "Telegram rejected the HTML; sending plain text");
            }
            other => return other,
        }
    }
    send("sendMessage", request(&part.plain, false), retry).await
}

/// Sends every part, the keyboard under the last one.
pub(crate) async fn send_parts(
    bot: &Bot,
    target: &Target,
    parts: &[Part],
    markup: Option<&InlineKeyboardMarkup>,
) -> Result<Vec<Message>, RequestError> {
    let mut sent = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        sent.push(send_part(bot, target, part, if last { markup } else { None }, true).await?);
    }
    Ok(sent)
}

/// Sends a plain text (a notice, a greeting) to `target`.
pub(crate) async fn send_text(bot: &Bot, target: &Target, text: &str) -> Result<Message, RequestError> {
    send_part(bot, target, &Part::plain(text), None, true).await
}

/// Replaces the text of one of the bot's messages (HTML, falling back to plain text). A "message
/// is not modified" refusal means it already shows that text: success.
pub(crate) async fn edit_part(
    bot: &Bot,
    chat: ChatId,
    message: MessageId,
    part: &Part,
    markup: Option<&InlineKeyboardMarkup>,
    retry: bool,
) -> Result<(), RequestError> {
    let request = |text: &str, html: bool| {
        let mut r = bot.edit_message_text(chat, message, text).link_preview_options(no_preview());
        if html {
            r = r.parse_mode(ParseMode::Html);
        }
        if let Some(m) = markup {
            r = r.reply_markup(m.clone());
        }
        r
    };
    let result = match &part.html {
        Some(html) => match send("editMessageText", request(html, true), retry).await {
            Err(e) if rejected_entities(&e) => {
                tracing::warn!(chat_id = chat.0, error = %e, "Telegram rejected the HTML; editing as plain text");
                send("editMessageText", request(&part.plain, false), retry).await
            }
            other => other,
        },
        None => send("editMessageText", request(&part.plain, false), retry).await,
    };
    match result {
        Ok(_) | Err(RequestError::Api(ApiError::MessageNotModified)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Keeps "typing…" up in a chat until dropped.
pub(crate) struct Typing(tokio::task::JoinHandle<()>);

impl Typing {
    pub fn start(bot: Bot, chat: ChatId, thread: Option<ThreadId>) -> Self {
        Self(tokio::spawn(async move {
            loop {
                let mut r = bot.send_chat_action(chat, ChatAction::Typing);
                if let Some(t) = thread {
                    r = r.message_thread_id(t);
                }
                // Best effort: a lost "typing…" is not worth a retry or a warning.
                let pause = match r.await {
                    Ok(_) => TYPING_EVERY,
                    Err(RequestError::RetryAfter(secs)) => secs.duration().max(TYPING_EVERY),
                    Err(e) => {
                        tracing::debug!(chat_id = chat.0, error = %e, "sendChatAction failed");
                        TYPING_EVERY
                    }
                };
                tokio::time::sleep(pause).await;
            }
        }))
    }
}

impl Drop for Typing {
    fn drop(&mut self) {
        self.0.abort();
    }
}
