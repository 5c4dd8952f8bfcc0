//! The hand-off on Telegram: an operator's reply goes to the chat (and forum topic) the question
//! was asked in, as a reply to the question's message, so Telegram notifies the asker.

use anyhow::Context as _;
use serde_json::Value;
use teloxide::prelude::*;
use teloxide::types::{MessageId, ThreadId};

use super::incoming::Target;
use super::send::send_text;
use crate::channel::{Deliverer, split};

/// Plain-text budget of one message (Telegram's limit is 4096, counted in UTF-16 units).
const PART: usize = 3500;

/// Delivers operators' replies on Telegram.
pub struct TelegramDeliverer {
    bot: Bot,
}

impl TelegramDeliverer {
    pub fn new(bot: Bot) -> Self {
        Self { bot }
    }
}

#[async_trait::async_trait]
impl Deliverer for TelegramDeliverer {
    fn platform(&self) -> &'static str {
        "telegram"
    }

    async fn deliver(&self, delivery: &Value, text: &str) -> anyhow::Result<()> {
        let chat = delivery.get("chat_id").and_then(Value::as_i64).context("the exchange has no Telegram chat")?;
        let reply_to = delivery.get("message_id").and_then(Value::as_i64).map(|m| MessageId(m as i32));
        let thread = delivery.get("thread_id").and_then(Value::as_i64).map(|t| ThreadId(MessageId(t as i32)));
        let mut target = Target { chat: ChatId(chat), reply_to, thread };
        for part in split::split_message(text, PART) {
            send_text(&self.bot, &target, &part).await.context("sending the reply on Telegram")?;
            // Only the first part is a reply; the rest follow it.
            target.reply_to = None;
        }
        Ok(())
    }
}
