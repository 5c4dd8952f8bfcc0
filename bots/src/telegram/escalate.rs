//! Escalations to an operators' Telegram group (`telegram.operator_chat`): a request for a
//! person or a 👎 is posted there with the question, the bot's answer and "Take over" /
//! "Approve" buttons; an operator's reply to that post goes to the user in the original chat.
//! The post names the exchange (`ref: <id>`), so any replica can handle the buttons and replies.

use anyhow::Context as _;
use supportbot_core::answer::Outcome;
use supportbot_core::log::{Exchange, FeedbackKind};
use teloxide::prelude::*;
use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup, User};

use super::incoming::Target;
use super::render::Part;
use super::send::send_part;
use crate::channel::{ChannelCore, Escalator, format::escape_html};

/// Callback data of the escalation buttons: `op:c:<id>` (take over), `op:a:<id>` (approve).
const TAKE_OVER: &str = "op:c:";
const APPROVE: &str = "op:a:";
/// Where the post names its exchange.
const REF: &str = "ref: ";
/// The question and answer are cut to this many characters in the post.
const EXCERPT: usize = 1200;

/// Posts escalations to the operators' group.
pub struct TelegramEscalator {
    pub bot: Bot,
    pub chat: ChatId,
}

fn excerpt(text: &str) -> String {
    let mut cut: String = text.chars().take(EXCERPT).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

/// The post: HTML and its plain twin.
pub(crate) fn post(exchange: &Exchange, why: FeedbackKind) -> Part {
    let headline = match why {
        FeedbackKind::Human => "🙋 A user asked for a person",
        FeedbackKind::Down => "👎 A user found an answer unhelpful",
        FeedbackKind::Up => "👍 Feedback",
    };
    let outcome =
        serde_json::to_value(exchange.outcome).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let footer = "Reply to this message to answer the user (they see it as from our support team).";
    let html = format!(
        "<b>{headline}</b> ({channel})\n\n<b>Question</b>\n{q}\n\n<b>Bot's answer</b> ({outcome})\n{a}\n\n<i>{footer}</i>\n{REF}<code>{id}</code>",
        channel = escape_html(&exchange.channel),
        q = escape_html(&excerpt(&exchange.question)),
        a = escape_html(&excerpt(&exchange.answer)),
        id = escape_html(&exchange.id),
    );
    let plain = format!(
        "{headline} ({})\n\nQuestion\n{}\n\nBot's answer ({outcome})\n{}\n\n{footer}\n{REF}{}",
        exchange.channel,
        excerpt(&exchange.question),
        excerpt(&exchange.answer),
        exchange.id
    );
    Part { html: Some(html), plain }
}

pub(crate) fn buttons(exchange: &Exchange) -> InlineKeyboardMarkup {
    let mut row = vec![InlineKeyboardButton::callback("🙋 Take over", format!("{TAKE_OVER}{}", exchange.id))];
    // An abstention has nothing to approve.
    if exchange.outcome != Outcome::Abstained {
        row.push(InlineKeyboardButton::callback("✅ Approve answer", format!("{APPROVE}{}", exchange.id)));
    }
    InlineKeyboardMarkup::new(vec![row])
}

#[async_trait::async_trait]
impl Escalator for TelegramEscalator {
    async fn escalate(&self, exchange: &Exchange, why: FeedbackKind) -> anyhow::Result<()> {
        let target = Target { chat: self.chat, reply_to: None, thread: None };
        send_part(&self.bot, &target, &post(exchange, why), Some(&buttons(exchange)), true)
            .await
            .context("posting to telegram.operator_chat")?;
        Ok(())
    }
}

/// How an operator is named in the review log.
pub(crate) fn operator_name(user: &User) -> String {
    match &user.username {
        Some(u) => format!("telegram:@{u}"),
        None => format!("telegram:{}", user.id.0),
    }
}

/// The exchange a message of the operators' group refers to: the `ref:` line of the post it
/// replies to, if that post is the bot's.
pub(crate) fn referenced_exchange(msg: &Message, bot_id: UserId) -> Option<String> {
    let post = msg.reply_to_message()?;
    if post.from.as_ref().map(|u| u.id) != Some(bot_id) {
        return None;
    }
    let text = post.text()?;
    let id = text.lines().rev().find_map(|l| l.trim().strip_prefix(REF))?.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')).then(|| id.to_string())
}

/// Handles an escalation button; returns the acknowledgement text, or `None` when `data` is
/// not an escalation button.
pub(crate) async fn press(core: &ChannelCore, data: &str, user: &User) -> Option<String> {
    let (approve, id) =
        if let Some(id) = data.strip_prefix(TAKE_OVER) { (false, id) } else { (true, data.strip_prefix(APPROVE)?) };
    let Some(desk) = core.desk() else {
        return Some("The review store is not available here.".into());
    };
    let operator = operator_name(user);
    let result = if approve { desk.approve(id, &operator).await } else { desk.take_over(id, &operator).await };
    Some(match result {
        Ok(()) if approve => "Approved: it will be served for this question from now on.".into(),
        Ok(()) => "It's yours: reply to the post to answer the user.".into(),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "telegram: an operator action failed");
            format!("Not done: {}", excerpt(&format!("{e:#}")))
        }
    })
}

/// A message in the operators' group: a reply to an escalation post is sent to the user;
/// anything else is the operators' own conversation and is ignored. Returns the confirmation.
pub(crate) async fn operator_message(core: &ChannelCore, msg: &Message, bot_id: UserId) -> Option<String> {
    let id = referenced_exchange(msg, bot_id)?;
    let text = msg.text()?.trim();
    if text.is_empty() {
        return None;
    }
    let operator = msg.from.as_ref().map(operator_name).unwrap_or_else(|| "telegram:?".into());
    let Some(desk) = core.desk() else {
        return Some("The review store is not available here.".into());
    };
    Some(match desk.reply(&id, &operator, text).await {
        Ok(()) => "✅ Sent to the user.".into(),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "telegram: an operator's reply failed");
            format!("Not sent: {}", excerpt(&format!("{e:#}")))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use supportbot_core::answer::Answer;

    fn exchange(outcome: Outcome) -> Exchange {
        let a = Answer {
            outcome,
            text: "Use <b>port</b> 443 & 80".into(),
            citations: Vec::new(),
            backend: None,
            confidence: 0.5,
            latency: Default::default(),
            failures: Vec::new(),
            abstain_reason: None,
            passages: Vec::new(),
            language: "en".into(),
            search_query: String::new(),
        };
        Exchange::new("0193abcd".into(), "discord", "c", "u".into(), "Which <ports>?", &a)
    }

    #[test]
    fn posts_escape_what_users_wrote_and_name_the_exchange() {
        let p = post(&exchange(Outcome::Answered), FeedbackKind::Human);
        let html = p.html.unwrap();
        assert!(html.contains("Which &lt;ports&gt;?"), "{html}");
        assert!(html.contains("Use &lt;b&gt;port&lt;/b&gt; 443 &amp; 80"), "{html}");
        assert!(html.ends_with("ref: <code>0193abcd</code>"));
        assert!(p.plain.ends_with("ref: 0193abcd"));
    }

    #[test]
    fn abstentions_cannot_be_approved_from_chat() {
        let data = |m: InlineKeyboardMarkup| m.inline_keyboard.concat().len();
        assert_eq!(data(buttons(&exchange(Outcome::Answered))), 2);
        assert_eq!(data(buttons(&exchange(Outcome::Abstained))), 1);
    }
}
