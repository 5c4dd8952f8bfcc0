//! The Discord adapter's logic, callable without a gateway: each entry point takes serenity's
//! `Http` and one deserialised event (an `Interaction`, a `Message`, a new thread), decides
//! whether it is a question for the bot, asks the `ChannelCore` and sends the reply. Tests drive
//! these functions with JSON fixtures and an `Http` pointed at a fake REST server.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use serenity::all::{
    ChannelId, ChannelType, CommandInteraction, ComponentInteraction, CreateInteractionResponse,
    CreateInteractionResponseFollowup, CreateInteractionResponseMessage, CreateMessage, CreateThread,
    EditInteractionResponse, GuildChannel, GuildId, Interaction, Message, MessageId, MessageReference, MessageType,
    UserId,
};
use serenity::http::Http;
use supportbot_core::answer::{Answer, Outcome};

use super::DiscordOptions;
use super::commands::ASK_COMMAND;
use super::send::{APOLOGY, answer_buttons, answer_parts, no_mentions, safe_snippet, with_retry};
use crate::channel::{ChannelCore, FeedbackAck, NoticeKind, Question, Reply};

/// The platform name in questions, logs and pseudonymous user ids.
pub const PLATFORM: &str = "discord";

/// A forum post older than this is not answered when the bot learns about it (joining an old
/// thread also produces a thread-create event).
const NEW_POST_AGE: Duration = Duration::from_secs(10 * 60);

/// Discord shows "typing…" for ten seconds; refresh it a little earlier.
const TYPING_REFRESH: Duration = Duration::from_secs(8);

/// Thread names are 1–100 characters.
const THREAD_NAME_MAX: usize = 100;

const HINT: &str = "Ask me a question about the product, e.g. `/ask question: How do I reset my password?`";
const GUILD_NOT_ALLOWED: &str = "I don't answer questions in this server.";
const DMS_OFF: &str = "I only answer questions in servers, not in direct messages.";
const UNKNOWN_COMMAND: &str = "I don't know that command. Try `/ask`.";

/// What became of an event (for logs and tests).
#[derive(Debug, Clone, PartialEq)]
pub enum Handled {
    /// Not for the bot (another bot, a guild or channel it does not answer in, DMs off, …).
    Ignored(&'static str),
    /// An empty question: the user got a usage hint.
    Hint,
    /// Answered (or abstained) and delivered, buttons included.
    Answered { answer_id: String, outcome: Outcome },
    /// Rate limited or shutting down: the user got the core's notice.
    Notice(NoticeKind),
    /// A button press, recorded (or not, see `recorded`) and acknowledged.
    Pressed(FeedbackAck),
    /// Sending failed; the user got the fixed apology if Discord still took it. Details are in the log.
    Failed { answer_id: Option<String> },
    /// An operator acted from the operators' channel (a button, or a reply to a post); the
    /// text is what they were told.
    Operator(String),
}

/// Where a message was posted, as far as the gateway's cache knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageContext {
    /// The bot's own user id (mentions of it are questions; its own messages are ignored).
    pub bot_id: UserId,
    /// When the message is in a thread: the thread's parent channel. Follow-ups in threads of
    /// `answer_channels` (such as the ones `thread_per_question` opens) are answered too.
    pub thread_parent: Option<ChannelId>,
}

/// The Discord channel's logic around the one `ChannelCore`.
pub struct DiscordBot {
    core: Arc<ChannelCore>,
    options: DiscordOptions,
}

impl DiscordBot {
    pub fn new(core: Arc<ChannelCore>, options: DiscordOptions) -> Self {
        Self { core, options }
    }

    pub fn core(&self) -> &Arc<ChannelCore> {
        &self.core
    }

    pub fn options(&self) -> &DiscordOptions {
        &self.options
    }

    fn guild_allowed(&self, guild: GuildId) -> bool {
        self.options.allowed_guilds.is_empty() || self.options.allowed_guilds.contains(&guild.get())
    }

    /// Handles a slash command or a button press. Always acknowledges within Discord's three
    /// seconds (a deferral for `/ask`, an ephemeral message for everything else).
    pub async fn handle_interaction(&self, http: &Http, interaction: &Interaction) -> Handled {
        match interaction {
            Interaction::Command(command) if command.data.name == ASK_COMMAND => self.ask_command(http, command).await,
            Interaction::Command(command) => {
                tracing::info!(command = %command.data.name, "unknown Discord command");
                self.ephemeral(http, command, UNKNOWN_COMMAND).await;
                Handled::Ignored("unknown command")
            }
            Interaction::Component(component) => self.press(http, component).await,
            _ => Handled::Ignored("unsupported interaction"),
        }
    }

    async fn ask_command(&self, http: &Http, command: &CommandInteraction) -> Handled {
        match command.guild_id {
            Some(guild) if !self.guild_allowed(guild) => {
                self.ephemeral(http, command, GUILD_NOT_ALLOWED).await;
                return Handled::Ignored("guild not allowed");
            }
            None if !self.options.dms => {
                self.ephemeral(http, command, DMS_OFF).await;
                return Handled::Ignored("direct messages are off");
            }
            _ => {}
        }
        let text = command
            .data
            .options
            .iter()
            .find(|o| o.name == "question")
            .and_then(|o| o.value.as_str())
            .unwrap_or_default()
            .trim()
            .to_string();
        if text.is_empty() {
            self.ephemeral(http, command, HINT).await;
            return Handled::Hint;
        }
        // Generation can take longer than the three seconds Discord waits for a first response:
        // defer ("thinking…") now, edit the answer in later (the token lives 15 minutes).
        let retry = &self.options.retry;
        if let Err(e) = with_retry(retry, "defer", || command.defer(http)).await {
            tracing::error!(error = %e, interaction = %command.id, "could not defer /ask; the question is dropped");
            return Handled::Failed { answer_id: None };
        }
        let in_thread = command.channel.as_ref().is_some_and(|c| is_thread(c.kind));
        let thread = in_thread.then_some(command.channel_id);
        let question = Question {
            platform: PLATFORM,
            chat: command.channel_id.to_string(),
            user: command.user.id.to_string(),
            conversation: conversation(command.guild_id, command.channel_id, thread, command.user.id),
            text,
            delivery: delivery(command.channel_id, None, command.guild_id, thread, Some(&command.token)),
        };
        match self.core.ask(&question, None).await {
            Reply::Notice { kind, text } => {
                // The deferral is public; a notice should not be. Replace it by an ephemeral followup.
                if let Err(e) = with_retry(retry, "delete deferral", || command.delete_response(http)).await {
                    tracing::warn!(error = %e, "could not delete the deferred /ask response");
                }
                let followup = CreateInteractionResponseFollowup::new()
                    .content(text)
                    .ephemeral(true)
                    .allowed_mentions(no_mentions());
                if let Err(e) = with_retry(retry, "notice", || command.create_followup(http, followup.clone())).await {
                    tracing::error!(error = %e, "could not send a notice");
                }
                Handled::Notice(kind)
            }
            Reply::Answer { answer_id, answer } => {
                match self.deliver_to_interaction(http, command, &answer_id, &answer).await {
                    Ok(()) => Handled::Answered { answer_id, outcome: answer.outcome },
                    Err(e) => {
                        tracing::error!(error = %e, answer_id, "could not deliver an /ask answer");
                        let apology = EditInteractionResponse::new()
                            .content(APOLOGY)
                            .components(Vec::new())
                            .allowed_mentions(no_mentions());
                        if let Err(e) =
                            with_retry(retry, "apology", || command.edit_response(http, apology.clone())).await
                        {
                            tracing::error!(error = %e, "could not send the apology either");
                        }
                        Handled::Failed { answer_id: Some(answer_id) }
                    }
                }
            }
        }
    }

    /// The answer into the deferred response, further parts as followups, buttons on the last.
    async fn deliver_to_interaction(
        &self,
        http: &Http,
        command: &CommandInteraction,
        answer_id: &str,
        answer: &Answer,
    ) -> serenity::Result<()> {
        let retry = &self.options.retry;
        let parts = answer_parts(answer);
        let last = parts.len() - 1;
        for (i, part) in parts.into_iter().enumerate() {
            let buttons = if i == last { answer_buttons(answer_id, answer.outcome) } else { Vec::new() };
            if i == 0 {
                let edit =
                    EditInteractionResponse::new().content(part).components(buttons).allowed_mentions(no_mentions());
                with_retry(retry, "edit answer", || command.edit_response(http, edit.clone())).await?;
            } else {
                let followup = CreateInteractionResponseFollowup::new()
                    .content(part)
                    .components(buttons)
                    .allowed_mentions(no_mentions());
                with_retry(retry, "answer followup", || command.create_followup(http, followup.clone())).await?;
            }
        }
        Ok(())
    }

    /// An ephemeral reply as the first (and only) response to a command.
    async fn ephemeral(&self, http: &Http, command: &CommandInteraction, text: &str) {
        let response = CreateInteractionResponse::Message(
            CreateInteractionResponseMessage::new().content(text).ephemeral(true).allowed_mentions(no_mentions()),
        );
        if let Err(e) =
            with_retry(&self.options.retry, "ephemeral", || command.create_response(http, response.clone())).await
        {
            tracing::error!(error = %e, "could not answer a Discord command");
        }
    }

    /// An ephemeral acknowledgement of a button press.
    async fn ephemeral_to(&self, http: &Http, component: &ComponentInteraction, text: &str) {
        let response = CreateInteractionResponse::Message(
            CreateInteractionResponseMessage::new().content(text).ephemeral(true).allowed_mentions(no_mentions()),
        );
        if let Err(e) =
            with_retry(&self.options.retry, "button ack", || component.create_response(http, response.clone())).await
        {
            tracing::error!(error = %e, "could not acknowledge a button press");
        }
    }

    /// A button press: recorded by the core, acknowledged with an ephemeral message.
    async fn press(&self, http: &Http, component: &ComponentInteraction) -> Handled {
        let in_operator_channel = self.options.operator_channel == Some(component.channel_id.get());
        if in_operator_channel
            && let Some(text) = super::escalate::press(&self.core, &component.data.custom_id, &component.user).await
        {
            self.ephemeral_to(http, component, &text).await;
            return Handled::Operator(text);
        }
        let ack = self.core.press(PLATFORM, &component.user.id.to_string(), &component.data.custom_id).await;
        let response = CreateInteractionResponse::Message(
            CreateInteractionResponseMessage::new()
                .content(ack.text.clone())
                .ephemeral(true)
                .allowed_mentions(no_mentions()),
        );
        if let Err(e) =
            with_retry(&self.options.retry, "button ack", || component.create_response(http, response.clone())).await
        {
            tracing::error!(error = %e, "could not acknowledge a button press");
        }
        Handled::Pressed(ack)
    }

    /// Handles a message: answered when it is a DM (if `dms`), mentions the bot, is in one of
    /// `answer_channels` or in a thread of one. Everything else, bots included, is ignored.
    pub async fn handle_message(&self, http: &Http, message: &Message, ctx: &MessageContext) -> Handled {
        if message.author.bot || message.author.id == ctx.bot_id || message.webhook_id.is_some() {
            return Handled::Ignored("from a bot");
        }
        if self.options.operator_channel == Some(message.channel_id.get()) {
            // Operators talk among themselves there; only replies to escalation posts are for users.
            let Some(confirmation) = super::escalate::operator_message(&self.core, message, ctx.bot_id).await else {
                return Handled::Ignored("operators' conversation");
            };
            let reply = CreateMessage::new()
                .content(confirmation.clone())
                .reference_message(reply_reference(message))
                .allowed_mentions(no_mentions());
            if let Err(e) =
                with_retry(&self.options.retry, "confirm", || message.channel_id.send_message(http, reply.clone()))
                    .await
            {
                tracing::error!(error = %e, "could not confirm an operator's reply");
            }
            return Handled::Operator(confirmation);
        }
        if !matches!(message.kind, MessageType::Regular | MessageType::InlineReply) {
            return Handled::Ignored("not a user message");
        }
        match message.guild_id {
            Some(guild) if !self.guild_allowed(guild) => return Handled::Ignored("guild not allowed"),
            None if !self.options.dms => return Handled::Ignored("direct messages are off"),
            _ => {}
        }
        let dm = message.guild_id.is_none();
        let mentioned = message.mentions.iter().any(|u| u.id == ctx.bot_id);
        let channel = message.channel_id.get();
        let answer_channel = self.options.answer_channels.contains(&channel)
            || ctx.thread_parent.is_some_and(|p| self.options.answer_channels.contains(&p.get()));
        if !(dm || mentioned || answer_channel) {
            return Handled::Ignored("not addressed to the bot");
        }
        let text = strip_mention(&message.content, ctx.bot_id);
        if text.is_empty() {
            // A bare mention deserves a hint; an empty message (an image) in an answer channel does not.
            if !mentioned {
                return Handled::Ignored("empty message");
            }
            let hint = CreateMessage::new()
                .content(HINT)
                .reference_message(reply_reference(message))
                .allowed_mentions(no_mentions());
            return match with_retry(&self.options.retry, "hint", || message.channel_id.send_message(http, hint.clone()))
                .await
            {
                Ok(_) => Handled::Hint,
                Err(e) => {
                    tracing::error!(error = %e, "could not send a hint");
                    Handled::Failed { answer_id: None }
                }
            };
        }

        // Where the answer goes: a new thread for this question, the thread it was asked in, or
        // the channel as a reply.
        let mut thread = ctx.thread_parent.map(|_| message.channel_id);
        let mut reply_to = Some(message);
        if self.options.thread_per_question && !dm && thread.is_none() {
            let name = match safe_snippet(&text, THREAD_NAME_MAX) {
                s if s.is_empty() => "Question".to_string(),
                s => s,
            };
            let builder = CreateThread::new(name);
            match with_retry(&self.options.retry, "open thread", || {
                message.channel_id.create_thread_from_message(http, message.id, builder.clone())
            })
            .await
            {
                Ok(created) => {
                    thread = Some(created.id);
                    // The question is the thread's starter message; a reply across channels is not possible.
                    reply_to = None;
                }
                Err(e) => tracing::warn!(error = %e, "could not open a thread; answering in the channel"),
            }
        }
        let target = thread.unwrap_or(message.channel_id);
        let question = Question {
            platform: PLATFORM,
            chat: message.channel_id.to_string(),
            user: message.author.id.to_string(),
            conversation: conversation(message.guild_id, message.channel_id, thread, message.author.id),
            text,
            delivery: delivery(message.channel_id, Some(message.id), message.guild_id, thread, None),
        };
        self.answer_in_channel(http, &question, target, reply_to).await
    }

    /// Handles a new thread: a new post in one of `forum_channels` is answered in its thread.
    pub async fn handle_thread_create(&self, http: &Http, thread: &GuildChannel, bot_id: UserId) -> Handled {
        let Some(parent) = thread.parent_id.filter(|p| self.options.forum_channels.contains(&p.get())) else {
            return Handled::Ignored("not in a forum channel the bot answers in");
        };
        if !self.guild_allowed(thread.guild_id) {
            return Handled::Ignored("guild not allowed");
        }
        if thread.owner_id == Some(bot_id) {
            return Handled::Ignored("from a bot");
        }
        let age = chrono::Utc::now().timestamp() - thread.id.created_at().unix_timestamp();
        if age > NEW_POST_AGE.as_secs() as i64 {
            return Handled::Ignored("not a new post");
        }
        // A forum post's first message has the thread's id. Its text needs the MESSAGE_CONTENT
        // intent; without it (or if it cannot be read) the title alone is the question.
        let starter = MessageId::new(thread.id.get());
        let (author, body) = match with_retry(&self.options.retry, "starter message", || {
            thread.id.message(http, starter)
        })
        .await
        {
            Ok(m) if m.author.bot => return Handled::Ignored("from a bot"),
            Ok(m) => (Some(m.author.id), m.content),
            Err(e) => {
                tracing::info!(error = %e, thread = %thread.id, "could not read a forum post's first message; using its title");
                (None, String::new())
            }
        };
        let Some(user) = author.or(thread.owner_id) else {
            return Handled::Ignored("unknown author");
        };
        let text = [thread.name.trim(), body.trim()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("\n\n");
        if text.is_empty() {
            return Handled::Ignored("empty message");
        }
        let question = Question {
            platform: PLATFORM,
            chat: parent.to_string(),
            user: user.to_string(),
            conversation: thread.id.to_string(),
            text,
            delivery: delivery(parent, Some(starter), Some(thread.guild_id), Some(thread.id), None),
        };
        self.answer_in_channel(http, &question, thread.id, None).await
    }

    /// Asks the core (showing "typing…" meanwhile) and posts the reply in `target`, the first
    /// part as a reply to `reply_to` when given.
    async fn answer_in_channel(
        &self,
        http: &Http,
        question: &Question,
        target: ChannelId,
        reply_to: Option<&Message>,
    ) -> Handled {
        let reply = tokio::select! {
            reply = self.core.ask(question, None) => reply,
            never = keep_typing(http, target) => match never {},
        };
        let retry = &self.options.retry;
        match reply {
            Reply::Notice { kind, text } => {
                let mut notice = CreateMessage::new().content(text).allowed_mentions(no_mentions());
                if let Some(m) = reply_to {
                    notice = notice.reference_message(reply_reference(m));
                }
                if let Err(e) = with_retry(retry, "notice", || target.send_message(http, notice.clone())).await {
                    tracing::error!(error = %e, "could not send a notice");
                }
                Handled::Notice(kind)
            }
            Reply::Answer { answer_id, answer } => {
                let parts = answer_parts(&answer);
                let last = parts.len() - 1;
                for (i, part) in parts.into_iter().enumerate() {
                    let mut builder = CreateMessage::new().content(part).allowed_mentions(no_mentions());
                    if i == last {
                        builder = builder.components(answer_buttons(&answer_id, answer.outcome));
                    }
                    if let (0, Some(m)) = (i, reply_to) {
                        builder = builder.reference_message(reply_reference(m));
                    }
                    if let Err(e) = with_retry(retry, "answer", || target.send_message(http, builder.clone())).await {
                        tracing::error!(error = %e, answer_id, part = i, "could not deliver an answer");
                        let apology = CreateMessage::new().content(APOLOGY).allowed_mentions(no_mentions());
                        if let Err(e) =
                            with_retry(retry, "apology", || target.send_message(http, apology.clone())).await
                        {
                            tracing::error!(error = %e, "could not send the apology either");
                        }
                        return Handled::Failed { answer_id: Some(answer_id) };
                    }
                }
                Handled::Answered { answer_id, outcome: answer.outcome }
            }
        }
    }
}

/// Keeps "typing…" shown in `channel` until the caller stops polling this (it never ends).
/// Best effort: a failure only costs the indicator.
async fn keep_typing(http: &Http, channel: ChannelId) -> Infallible {
    loop {
        if let Err(e) = channel.broadcast_typing(http).await {
            tracing::debug!(error = %e, "typing indicator failed");
        }
        tokio::time::sleep(TYPING_REFRESH).await;
    }
}

/// A reply to `message` that still goes out as a plain message if the question was deleted in
/// the meantime (Discord would otherwise refuse it and the answer would be lost).
fn reply_reference(message: &Message) -> MessageReference {
    MessageReference::from(message).fail_if_not_exists(false)
}

fn is_thread(kind: ChannelType) -> bool {
    matches!(kind, ChannelType::PublicThread | ChannelType::PrivateThread | ChannelType::NewsThread)
}

/// The conversation a question belongs to, for follow-up context: a DM channel, a thread, or
/// one user in a shared channel (`channel:user`, so two people there do not mix contexts).
pub fn conversation(guild: Option<GuildId>, channel: ChannelId, thread: Option<ChannelId>, user: UserId) -> String {
    match (guild, thread) {
        (_, Some(thread)) => thread.to_string(),
        (None, None) => channel.to_string(),
        (Some(_), None) => format!("{channel}:{user}"),
    }
}

/// Where a person's later reply must go, kept with the exchange. Ids are strings, as Discord
/// writes snowflakes (they exceed JavaScript's safe integers). `channel_id` is where the
/// question was asked, `message_id` the question's message (none for `/ask`), `thread_id` the
/// thread the conversation continues in (if any); `interaction_token` lets `/ask` be followed
/// up for 15 minutes.
pub fn delivery(
    channel: ChannelId,
    message: Option<MessageId>,
    guild: Option<GuildId>,
    thread: Option<ChannelId>,
    interaction_token: Option<&str>,
) -> Value {
    let mut d = json!({
        "platform": PLATFORM,
        "channel_id": channel.to_string(),
        "message_id": message.map(|m| m.to_string()),
        "guild_id": guild.map(|g| g.to_string()),
        "thread_id": thread.map(|t| t.to_string()),
    });
    if let Some(token) = interaction_token {
        d["interaction_token"] = json!(token);
    }
    d
}

/// The question without the bot's mention (`<@id>` or the legacy `<@!id>`).
pub fn strip_mention(content: &str, bot: UserId) -> String {
    content.replace(&format!("<@{bot}>"), " ").replace(&format!("<@!{bot}>"), " ").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversations_follow_dms_threads_and_users() {
        let (c, u, t, g) = (ChannelId::new(10), UserId::new(20), ChannelId::new(30), GuildId::new(40));
        assert_eq!(conversation(None, c, None, u), "10");
        assert_eq!(conversation(Some(g), c, Some(t), u), "30");
        assert_eq!(conversation(Some(g), c, None, u), "10:20");
    }

    #[test]
    fn mentions_of_the_bot_are_stripped() {
        let bot = UserId::new(3003);
        assert_eq!(strip_mention("<@3003> how do I sync?", bot), "how do I sync?");
        assert_eq!(strip_mention("hey <@!3003>, help", bot), "hey  , help");
        assert_eq!(strip_mention("<@3003>", bot), "");
        assert_eq!(strip_mention("<@42> hi", bot), "<@42> hi");
    }

    #[test]
    fn delivery_has_string_ids_and_an_optional_token() {
        let d = delivery(ChannelId::new(1), Some(MessageId::new(2)), None, None, None);
        assert_eq!(
            d,
            json!({"platform": "discord", "channel_id": "1", "message_id": "2", "guild_id": null, "thread_id": null})
        );
        let d = delivery(ChannelId::new(1), None, Some(GuildId::new(3)), Some(ChannelId::new(4)), Some("tok"));
        assert_eq!(d["interaction_token"], "tok");
        assert_eq!(d["thread_id"], "4");
    }
}
