//! The update handlers: a message becomes a command reply or a question for the shared
//! `ChannelCore`, whose reply is rendered and sent (optionally streamed in by editing a preview);
//! a button press becomes feedback, always acknowledged.
//!
//! Handlers never fail and never panic outward: a failing update is logged (without the token:
//! nothing here formats the `Bot`, whose `Debug` shows it) and the user gets a short apology. A
//! panic would otherwise kill the conversation's worker and then the dispatcher itself.

use std::any::Any;
use std::collections::HashSet;
use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::FutureExt as _;
use supportbot_core::log::FeedbackKind;
use teloxide::dispatching::{UpdateFilterExt as _, UpdateHandler};
use teloxide::payloads::{AnswerCallbackQuerySetters as _, EditMessageReplyMarkupSetters as _};
use teloxide::prelude::*;
use teloxide::types::{InlineKeyboardMarkup, MessageId};
use teloxide::{ApiError, RequestError};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use super::escalate;
use super::incoming::{self, Action, Identity, Target};
use super::render::{self, Lang, Part};
use super::send::{self, Typing};
use crate::channel::{ChannelCore, Question, Reply};

/// The platform name in questions, feedback and the answer log.
pub(crate) const PLATFORM: &str = "telegram";

/// A streamed answer's preview is edited at most this often (Telegram allows about one message
/// per second per chat).
const EDIT_EVERY: Duration = Duration::from_secs(1);

/// How often the streaming loop looks whether the preview is due.
const PREVIEW_CHECK: Duration = Duration::from_millis(200);

/// The message showing a streamed answer, and when it was last changed.
#[derive(Debug, Clone, Copy)]
struct Preview {
    id: MessageId,
    at: Instant,
}

impl Preview {
    /// Waits until the message may be edited again.
    async fn pace(&self) {
        tokio::time::sleep_until((self.at + EDIT_EVERY).into()).await;
    }
}

/// What every handler needs besides the update and the bot.
pub(crate) struct Channel {
    pub core: Arc<ChannelCore>,
    pub me: Identity,
    /// Empty: every chat.
    pub allowed_chats: HashSet<i64>,
    pub stream_edits: bool,
    /// The operators' group (escalations), if configured.
    pub operator_chat: Option<ChatId>,
}

impl Channel {
    fn allows(&self, chat: ChatId) -> bool {
        self.allowed_chats.is_empty() || self.allowed_chats.contains(&chat.0)
    }
}

/// Messages and button presses; every other kind of update is not requested from Telegram.
pub(crate) fn handler_tree() -> UpdateHandler<Infallible> {
    dptree::entry()
        .branch(Update::filter_message().endpoint(on_message))
        .branch(Update::filter_callback_query().endpoint(on_callback))
}

async fn on_message(bot: Bot, msg: Message, channel: Arc<Channel>) -> Result<(), Infallible> {
    let target = Target::reply_to(&msg);
    let lang = Lang::of(msg.from.as_ref().and_then(|u| u.language_code.as_deref()));
    match AssertUnwindSafe(handle_message(&bot, &msg, &channel)).catch_unwind().await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => {
            tracing::error!(
                chat_id = target.chat.0,
                message_id = msg.id.0,
                error = format!("{e:#}"),
                "telegram: a message failed"
            )
        }
        Err(panic) => tracing::error!(
            chat_id = target.chat.0,
            message_id = msg.id.0,
            panic = panic_text(panic.as_ref()),
            "telegram: handling a message panicked"
        ),
    }
    if let Err(e) = send::send_text(&bot, &target, render::apology(lang)).await {
        tracing::warn!(chat_id = target.chat.0, error = %e, "telegram: could not send the apology either");
    }
    Ok(())
}

async fn handle_message(bot: &Bot, msg: &Message, channel: &Channel) -> anyhow::Result<()> {
    if channel.operator_chat == Some(msg.chat.id) {
        // Operators talk among themselves there; only replies to escalation posts are for users.
        if let Some(confirmation) = escalate::operator_message(&channel.core, msg, channel.me.id).await {
            send::send_text(bot, &Target::reply_to(msg), &confirmation)
                .await
                .context("confirming an operator's reply")?;
        }
        return Ok(());
    }
    if !channel.allows(msg.chat.id) {
        return Ok(());
    }
    let action = incoming::classify(msg, &channel.me);
    let target = Target::reply_to(msg);
    let from = msg.from.as_ref();
    let lang = Lang::of(from.and_then(|u| u.language_code.as_deref()));
    let user = from.map(|u| u.id.0.to_string()).unwrap_or_default();
    let username = channel.me.username.as_deref();
    let text = match action {
        Action::Ignore => return Ok(()),
        Action::Ask(question) => return answer(bot, msg, channel, question).await,
        Action::Start => render::greeting(lang, username),
        Action::Help => render::help(lang, username),
        Action::EmptyQuestion => render::empty_question(lang, username),
        Action::Human => {
            let conversation = incoming::conversation_id(msg);
            let ack = channel.core.request_human(PLATFORM, &conversation, &user).await;
            tracing::info!(chat_id = target.chat.0, recorded = ?ack.recorded, "telegram: /human");
            ack.text
        }
    };
    send::send_text(bot, &target, &text).await.context("sending a command reply")?;
    Ok(())
}

/// Asks the core and sends its reply: the answer with its keyboard, or a notice.
async fn answer(bot: &Bot, msg: &Message, channel: &Channel, text: String) -> anyhow::Result<()> {
    let target = Target::reply_to(msg);
    let question = Question {
        platform: PLATFORM,
        chat: msg.chat.id.0.to_string(),
        user: msg.from.as_ref().map(|u| u.id.0.to_string()).unwrap_or_default(),
        conversation: incoming::conversation_id(msg),
        text,
        delivery: incoming::delivery(msg),
    };
    let started = Instant::now();
    let typing = Typing::start(bot.clone(), target.chat, target.thread);
    let (reply, preview) = if channel.stream_edits {
        streamed(bot, &target, &channel.core, question).await?
    } else {
        (channel.core.ask(&question, None).await, None)
    };
    // Sending a message ends "typing…" on the client; the loop must not start it again.
    drop(typing);
    match reply {
        Reply::Answer { answer_id, answer } => {
            let parts = render::answer_parts(&answer);
            anyhow::ensure!(!parts.is_empty(), "the answer rendered to nothing");
            let markup = render::keyboard(&answer_id, &answer);
            deliver(bot, &target, &parts, &markup, preview).await.context("sending the answer")?;
            tracing::info!(
                chat_id = target.chat.0,
                answer_id = %answer_id,
                outcome = ?answer.outcome,
                parts = parts.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "telegram: answered"
            );
        }
        Reply::Notice { kind, text } => {
            tracing::info!(chat_id = target.chat.0, notice = ?kind, "telegram: notice");
            let part = Part::plain(text);
            match preview {
                Some(p) => {
                    p.pace().await;
                    send::edit_part(bot, target.chat, p.id, &part, None, true).await?
                }
                None => {
                    send::send_part(bot, &target, &part, None, true).await?;
                }
            }
        }
    }
    Ok(())
}

/// Sends the parts of an answer. After streaming, the preview message becomes the first part
/// (the checked answer replaces what was streamed) and the rest follow as new messages.
async fn deliver(
    bot: &Bot,
    target: &Target,
    parts: &[Part],
    markup: &InlineKeyboardMarkup,
    preview: Option<Preview>,
) -> Result<(), RequestError> {
    if let (Some(p), Some((first, rest))) = (preview, parts.split_first()) {
        let first_markup = if rest.is_empty() { Some(markup) } else { None };
        p.pace().await;
        match send::edit_part(bot, target.chat, p.id, first, first_markup, true).await {
            Ok(()) => return send::send_parts(bot, target, rest, Some(markup)).await.map(drop),
            // Deleted meanwhile, or too old to edit: send the answer as new messages.
            Err(e) => tracing::warn!(chat_id = target.chat.0, error = %e, "telegram: could not finish the preview"),
        }
    }
    send::send_parts(bot, target, parts, Some(markup)).await.map(drop)
}

/// Asks with streaming: the answer's pieces are shown in a preview message, edited at most once
/// per [`EDIT_EVERY`]. Returns the core's reply and the preview message, if one was sent.
/// The preview shows the text as the model writes it; the final edit replaces it with the
/// checked answer and its sources.
async fn streamed(
    bot: &Bot,
    target: &Target,
    core: &Arc<ChannelCore>,
    question: Question,
) -> anyhow::Result<(Reply, Option<Preview>)> {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let core = Arc::clone(core);
    // The answer is written in its own task, so a slow Telegram call here never holds it up.
    let mut asking = tokio::spawn(async move { core.ask(&question, Some(tx)).await });
    let mut text = String::new();
    let mut shown: Option<Part> = None;
    let mut message: Option<Preview> = None;
    let mut paused_until: Option<Instant> = None;
    let mut gave_up = false;
    let mut open = true;
    // The first preview after a second (quick answers need none), then one edit per
    // `EDIT_EVERY`, counted from when the previous edit was done.
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + EDIT_EVERY, PREVIEW_CHECK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let reply = loop {
        tokio::select! {
            joined = &mut asking => break joined,
            piece = rx.recv(), if open => match piece {
                Some(piece) => text.push_str(&piece),
                None => open = false,
            },
            _ = ticker.tick() => {
                let now = Instant::now();
                let resting = message.is_some_and(|p| now < p.at + EDIT_EVERY);
                if gave_up || resting || paused_until.is_some_and(|t| now < t) {
                    continue;
                }
                let Some(part) = render::preview(&text) else { continue };
                if shown.as_ref() == Some(&part) {
                    continue;
                }
                let result = match message {
                    None => send::send_part(bot, target, &part, None, false).await.map(|m| m.id),
                    Some(p) => send::edit_part(bot, target.chat, p.id, &part, None, false).await.map(|()| p.id),
                };
                match result {
                    Ok(id) => {
                        message = Some(Preview { id, at: Instant::now() });
                        shown = Some(part);
                    }
                    // Previews are optional: skip them while Telegram asks to wait.
                    Err(RequestError::RetryAfter(secs)) => paused_until = Some(Instant::now() + secs.duration()),
                    Err(e) => {
                        tracing::warn!(chat_id = target.chat.0, error = %e, "telegram: preview failed; waiting for the answer");
                        gave_up = true;
                    }
                }
            }
        }
    };
    let reply = reply.map_err(|e| anyhow::anyhow!("the answer task failed: {e}"))?;
    Ok((reply, message))
}

async fn on_callback(bot: Bot, q: CallbackQuery, channel: Arc<Channel>) -> Result<(), Infallible> {
    let failure = match AssertUnwindSafe(handle_callback(&bot, &q, &channel)).catch_unwind().await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => format!("{e:#}"),
        Err(panic) => format!("panicked: {}", panic_text(panic.as_ref())),
    };
    tracing::error!(error = failure, "telegram: a button press failed");
    // Stop the client's spinner whatever happened.
    if let Err(e) = bot.answer_callback_query(q.id.clone()).await {
        tracing::debug!(error = %e, "telegram: could not acknowledge the press");
    }
    Ok(())
}

async fn handle_callback(bot: &Bot, q: &CallbackQuery, channel: &Channel) -> anyhow::Result<()> {
    let data = q.data.as_deref().unwrap_or_default();
    let in_operator_chat = q.regular_message().is_some_and(|m| Some(m.chat.id) == channel.operator_chat);
    if in_operator_chat && let Some(text) = escalate::press(&channel.core, data, &q.from).await {
        send::retrying("answerCallbackQuery", bot.answer_callback_query(q.id.clone()).text(text))
            .await
            .context("acknowledging an operator's button")?;
        return Ok(());
    }
    let ack = channel.core.press(PLATFORM, &q.from.id.0.to_string(), data).await;
    send::retrying("answerCallbackQuery", bot.answer_callback_query(q.id.clone()).text(ack.text.clone()))
        .await
        .context("acknowledging a button press")?;
    tracing::info!(recorded = ?ack.recorded, "telegram: button pressed");
    // Once a person has been asked for, the button goes (for everyone in the chat), which shows
    // that the request was taken and prevents asking twice.
    if ack.recorded == Some(FeedbackKind::Human)
        && let Some(message) = q.regular_message()
        && let Some(markup) = message.reply_markup()
    {
        let trimmed = render::without_human_button(markup);
        if &trimmed != markup {
            let request = bot.edit_message_reply_markup(message.chat.id, message.id).reply_markup(trimmed);
            match send::retrying("editMessageReplyMarkup", request).await {
                Ok(_) | Err(RequestError::Api(ApiError::MessageNotModified)) => {}
                Err(e) => return Err(e).context("removing the human button"),
            }
        }
    }
    Ok(())
}

/// The message of a panic payload (a `&str` or a `String`, as `panic!` makes them).
fn panic_text(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic".to_string())
}
