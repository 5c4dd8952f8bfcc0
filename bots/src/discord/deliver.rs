//! The hand-off on Discord: an operator's reply goes to the channel or thread the question was
//! asked in, as a reply to the question's message. That reply may ping the asker — the one
//! mention the bot ever makes — and nothing else (no users, roles, @everyone or @here).

use std::sync::Arc;

use anyhow::Context as _;
use serde_json::Value;
use serenity::all::{ChannelId, CreateAllowedMentions, CreateMessage, MessageId, MessageReference};
use serenity::http::Http;

use super::send::{MESSAGE_LIMIT, RetryPolicy, with_retry};
use crate::channel::{Deliverer, format, split};

/// Delivers operators' replies on Discord.
pub struct DiscordDeliverer {
    http: Arc<Http>,
    retry: RetryPolicy,
}

impl DiscordDeliverer {
    pub fn new(http: Arc<Http>, retry: RetryPolicy) -> Self {
        Self { http, retry }
    }
}

fn id(v: &Value, key: &str) -> Option<u64> {
    match v.get(key)? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

#[async_trait::async_trait]
impl Deliverer for DiscordDeliverer {
    fn platform(&self) -> &'static str {
        super::PLATFORM
    }

    async fn deliver(&self, delivery: &Value, text: &str) -> anyhow::Result<()> {
        let channel = id(delivery, "channel_id").context("the exchange has no Discord channel to reply in")?;
        let thread = id(delivery, "thread_id");
        let message = id(delivery, "message_id");
        // The conversation continues in its thread when there is one.
        let target = ChannelId::new(thread.unwrap_or(channel));
        let parts = split::split_message(&format::neutralize_mentions(text), MESSAGE_LIMIT);
        for (i, part) in parts.iter().enumerate() {
            let mut msg = CreateMessage::new().content(part.clone());
            // Reply (and ping the asker) with the first part only, and only to a message that
            // lives where we post.
            if i == 0
                && let Some(m) = message.filter(|_| thread.is_none() || thread == Some(channel))
            {
                msg = msg
                    .reference_message(
                        MessageReference::from((ChannelId::new(channel), MessageId::new(m))).fail_if_not_exists(false),
                    )
                    .allowed_mentions(CreateAllowedMentions::new().replied_user(true));
            } else {
                msg = msg.allowed_mentions(CreateAllowedMentions::new().replied_user(false));
            }
            with_retry(&self.retry, "deliver an operator's reply", || target.send_message(&self.http, msg.clone()))
                .await
                .context("sending the reply on Discord")?;
        }
        Ok(())
    }
}

/// A deliverer for the configured bot (its own REST client; same token and base URL).
pub fn deliverer(settings: &supportbot_config::DiscordSettings) -> anyhow::Result<Arc<dyn Deliverer>> {
    let token = settings.token.as_ref().context("discord.token is not set")?;
    let http = Arc::new(super::build_http(token.expose(), &settings.api_url, settings.application_id));
    Ok(Arc::new(DiscordDeliverer::new(http, RetryPolicy::default())))
}
