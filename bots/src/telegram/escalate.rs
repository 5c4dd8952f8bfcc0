//! Escalations to an operators' Telegram group (`telegram.operator_chat`): a request for a
//! person or a 👎 is posted there with the question, the bot's answer and "Take over" /
//! "Approve" buttons; an operator's reply to that post goes to the user in the original chat.
//! The post names the exchange (`ref: <id>`), so any replica can handle the buttons and replies.

use anyhow::Context as _;
use supportbot_core::log::{Exchange, FeedbackKind};
use teloxide::prelude::*;
use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup, User};

use super::incoming::Target;
use super::render::Part;
use super::send::send_part;
use crate::channel::escalation::{self, APPROVE, REF, TAKE_OVER};
use crate::channel::{ChannelCore, Escalator, format::escape_html};

/// Posts escalations to the operators' group.
pub struct TelegramEscalator {
    pub bot: Bot,
    pub chat: ChatId,
}

/// The post: HTML and its plain twin.
pub(crate) fn post(exchange: &Exchange, why: FeedbackKind) -> Part {
    let p = escalation::post(exchange, why);
    let html = format!(
        "<b>{}</b> ({})\n\n<b>Question</b>\n{}\n\n<b>Bot's answer</b> ({})\n{}\n\n<i>{}</i>\n{REF}<code>{}</code>",
        p.headline,
        escape_html(&p.channel),
        escape_html(&p.question),
        escape_html(&p.outcome),
        escape_html(&p.answer),
        p.footer,
        escape_html(&p.id),
    );
    let plain = format!(
        "{} ({})\n\nQuestion\n{}\n\nBot's answer ({})\n{}\n\n{}\n{REF}{}",
        p.headline, p.channel, p.question, p.outcome, p.answer, p.footer, p.id
    );
    Part { html: Some(html), plain }
}

pub(crate) fn buttons(exchange: &Exchange) -> InlineKeyboardMarkup {
    let mut row = vec![InlineKeyboardButton::callback("🙋 Take over", format!("{TAKE_OVER}{}", exchange.id))];
    if escalation::post(exchange, FeedbackKind::Human).approvable {
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

/// Handles an escalation button; `None` when `data` is not one.
pub(crate) async fn press(core: &ChannelCore, data: &str, user: &User) -> Option<String> {
    escalation::press(core, data, &operator_name(user)).await
}

/// A message in the operators' group: a reply to one of the bot's escalation posts is sent to
/// the user; anything else is the operators' own conversation and is ignored. Returns the
/// confirmation.
pub(crate) async fn operator_message(core: &ChannelCore, msg: &Message, bot_id: UserId) -> Option<String> {
    let post = msg.reply_to_message()?;
    if post.from.as_ref().map(|u| u.id) != Some(bot_id) {
        return None;
    }
    let id = escalation::referenced_id(post.text()?)?;
    let text = msg.text()?.trim();
    if text.is_empty() {
        return None;
    }
    let operator = msg.from.as_ref().map(operator_name).unwrap_or_else(|| "telegram:?".into());
    Some(escalation::reply(core, &id, &operator, text).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use supportbot_core::answer::{Answer, Outcome};

    fn exchange(outcome: Outcome) -> Exchange {
        let a = Answer { confidence: 0.5, ..Answer::bare(outcome, "Use <b>port</b> 443 & 80", "en") };
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
