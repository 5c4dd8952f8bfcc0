//! Escalations to an operators' Discord channel (`discord.operator_channel`): a request for a
//! person or a 👎 is posted there with the question, the bot's answer and "Take over" /
//! "Approve" buttons; an operator's reply to that post goes to the user where they asked.
//! The post pings nobody, and its last line names the exchange (`ref: <id>`).

use std::sync::Arc;

use anyhow::Context as _;
use serenity::all::{ButtonStyle, ChannelId, CreateActionRow, CreateButton, CreateMessage, Message, User, UserId};
use serenity::http::Http;
use supportbot_core::log::{Exchange, FeedbackKind};

use super::send::{MESSAGE_LIMIT, RetryPolicy, no_mentions, with_retry};
use crate::channel::escalation::{self, APPROVE, REF, TAKE_OVER};
use crate::channel::{ChannelCore, Escalator, format::neutralize_mentions};

/// Posts escalations to the operators' channel.
pub struct DiscordEscalator {
    pub http: Arc<Http>,
    pub channel: ChannelId,
    pub retry: RetryPolicy,
}

/// The post's text (Discord Markdown, mentions neutralised, within the message limit).
pub(crate) fn post_text(exchange: &Exchange, why: FeedbackKind) -> String {
    let p = escalation::post(exchange, why);
    let body = |s: &str| neutralize_mentions(s).replace("```", "'''");
    let text = format!(
        "**{}** ({})\n\n**Question**\n{}\n\n**Bot's answer** ({})\n{}\n\n*{}*\n{REF}{}",
        p.headline,
        p.channel,
        body(&p.question),
        p.outcome,
        body(&p.answer),
        p.footer,
        p.id
    );
    if text.chars().count() <= MESSAGE_LIMIT {
        return text;
    }
    // Only the answer can be long enough to matter; keep the ref line whatever happens.
    let short: String = body(&p.answer).chars().take(400).collect();
    format!(
        "**{}** ({})\n\n**Question**\n{}\n\n**Bot's answer** ({})\n{short}…\n\n*{}*\n{REF}{}",
        p.headline,
        p.channel,
        body(&p.question).chars().take(600).collect::<String>(),
        p.outcome,
        p.footer,
        p.id
    )
}

pub(crate) fn buttons(exchange: &Exchange) -> Vec<CreateActionRow> {
    let mut row = vec![
        CreateButton::new(format!("{TAKE_OVER}{}", exchange.id)).label("🙋 Take over").style(ButtonStyle::Primary),
    ];
    if escalation::post(exchange, FeedbackKind::Human).approvable {
        row.push(
            CreateButton::new(format!("{APPROVE}{}", exchange.id))
                .label("✅ Approve answer")
                .style(ButtonStyle::Success),
        );
    }
    vec![CreateActionRow::Buttons(row)]
}

#[async_trait::async_trait]
impl Escalator for DiscordEscalator {
    async fn escalate(&self, exchange: &Exchange, why: FeedbackKind) -> anyhow::Result<()> {
        let message = CreateMessage::new()
            .content(post_text(exchange, why))
            .components(buttons(exchange))
            .allowed_mentions(no_mentions());
        with_retry(&self.retry, "post an escalation", || self.channel.send_message(&self.http, message.clone()))
            .await
            .context("posting to discord.operator_channel")?;
        Ok(())
    }
}

/// How an operator is named in the review log.
pub(crate) fn operator_name(user: &User) -> String {
    format!("discord:{}", user.name)
}

/// Handles an escalation button; `None` when `custom_id` is not one.
pub(crate) async fn press(core: &ChannelCore, custom_id: &str, user: &User) -> Option<String> {
    escalation::press(core, custom_id, &operator_name(user)).await
}

/// A message in the operators' channel: a reply to one of the bot's posts goes to the user;
/// anything else is the operators' own conversation. Returns the confirmation.
pub(crate) async fn operator_message(core: &ChannelCore, message: &Message, bot_id: UserId) -> Option<String> {
    let post = message.referenced_message.as_deref()?;
    if post.author.id != bot_id {
        return None;
    }
    let id = escalation::referenced_id(&post.content)?;
    let text = message.content.trim();
    if text.is_empty() {
        return None;
    }
    Some(escalation::reply(core, &id, &operator_name(&message.author), text).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use supportbot_core::answer::{Answer, Outcome};

    fn exchange(outcome: Outcome, answer: &str) -> Exchange {
        let a = Answer { confidence: 0.5, ..Answer::bare(outcome, answer, "en") };
        Exchange::new("0193abcd".into(), "telegram", "c", "u".into(), "Ping @everyone?", &a)
    }

    #[test]
    fn posts_ping_nobody_fit_the_limit_and_keep_their_ref() {
        let text = post_text(&exchange(Outcome::Answered, "Use <@123> and @here"), FeedbackKind::Down);
        assert!(!text.contains("@everyone") && !text.contains("@here") && !text.contains("<@123>"), "{text}");
        assert!(text.ends_with("ref: 0193abcd"));
        let long = post_text(&exchange(Outcome::Answered, &"word ".repeat(2000)), FeedbackKind::Human);
        assert!(long.chars().count() <= MESSAGE_LIMIT);
        assert_eq!(escalation::referenced_id(&long), Some("0193abcd".into()));
        assert_eq!(buttons(&exchange(Outcome::Abstained, "no")).len(), 1);
    }
}
