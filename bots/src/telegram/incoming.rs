//! Which Telegram messages are questions, and where their answers go: private chats ask with every
//! message, groups only by mentioning the bot, replying to it or with `/ask`; the conversation id
//! that keeps follow-up context apart; the delivery ids a person needs to reply later; and the
//! dispatcher's distribution key (one conversation at a time, in order).
//!
//! Everything here is a pure function of the update, so it is tested without a server. Entity
//! offsets are converted by hand (UTF-16 → UTF-8) instead of with teloxide's parser, which asserts
//! on offsets that do not fall on character boundaries: a malformed update must not panic.

use std::ops::Range;

use teloxide::types::{
    CallbackQuery, ChatId, Message, MessageEntity, MessageEntityKind, MessageId, MessageKind, ThreadId, Update,
    UpdateKind, UserId,
};

/// Who the bot is, from `getMe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub id: UserId,
    /// Without the `@`.
    pub username: Option<String>,
}

impl Identity {
    fn is_me(&self, name: &str) -> bool {
        self.username.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(name))
    }
}

/// What to do with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Not for the bot (another bot's command, a group message that does not address it, a
    /// service message, a sticker).
    Ignore,
    /// `/start`: greeting and how to use the bot.
    Start,
    /// `/help`, or an unknown command in a private chat.
    Help,
    /// A question, with the command or mention removed.
    Ask(String),
    /// `/ask` or a mention with nothing after it.
    EmptyQuestion,
    /// `/human`: ask for a person.
    Human,
}

/// Decides what a message asks of the bot.
pub(crate) fn classify(msg: &Message, me: &Identity) -> Action {
    let Some(from) = msg.from.as_ref() else { return Action::Ignore };
    // Other bots (including this one's own messages echoed back) never ask questions.
    if from.is_bot || !msg.chat.is_chat() {
        return Action::Ignore;
    }
    let Some((text, entities)) = text_and_entities(msg) else { return Action::Ignore };
    let private = msg.chat.is_private();

    if let Some((command, addressee, rest)) = parse_command(text) {
        // A command for another bot in the same group.
        if addressee.is_some_and(|a| !me.is_me(a)) {
            return Action::Ignore;
        }
        let rest = without_mentions(rest, &mention_ranges(rest, &[], me)).trim().to_string();
        return match command.to_ascii_lowercase().as_str() {
            "start" => Action::Start,
            "help" => Action::Help,
            "human" => Action::Human,
            "ask" if rest.is_empty() => Action::EmptyQuestion,
            "ask" => Action::Ask(rest),
            _ if private => Action::Help,
            // Commands of other bots (or typos) in a group are none of our business.
            _ => Action::Ignore,
        };
    }

    if private {
        let question = text.trim();
        return if question.is_empty() { Action::Ignore } else { Action::Ask(question.to_string()) };
    }

    let mentions = mention_ranges(text, entities, me);
    if mentions.is_empty() && !replies_to_me(msg, me) {
        return Action::Ignore;
    }
    let question = without_mentions(text, &mentions);
    let question = question.trim().trim_start_matches([',', ':', ';']).trim();
    if question.is_empty() { Action::EmptyQuestion } else { Action::Ask(question.to_string()) }
}

/// The text of a message (or the caption of a photo or document) and its entities.
fn text_and_entities(msg: &Message) -> Option<(&str, &[MessageEntity])> {
    if let Some(text) = msg.text() {
        return Some((text, msg.entities().unwrap_or_default()));
    }
    msg.caption().map(|c| (c, msg.caption_entities().unwrap_or_default()))
}

/// `/cmd@bot rest` → (`cmd`, `Some("bot")`, `rest`), when the message starts with a command.
fn parse_command(text: &str) -> Option<(&str, Option<&str>, &str)> {
    let body = text.strip_prefix('/')?;
    let end = body.find(char::is_whitespace).unwrap_or(body.len());
    let (token, rest) = body.split_at(end);
    let (command, addressee) = match token.split_once('@') {
        Some((c, a)) => (c, Some(a)),
        None => (token, None),
    };
    if command.is_empty() || !command.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    Some((command, addressee, rest))
}

/// Byte ranges of the mentions of this bot: `@username` (by entity, or by text when the
/// entities are missing, as in the rest of a command) and text mentions of its user id.
fn mention_ranges(text: &str, entities: &[MessageEntity], me: &Identity) -> Vec<Range<usize>> {
    let mut ranges: Vec<Range<usize>> = entities
        .iter()
        .filter_map(|e| {
            let range = utf16_to_byte_range(text, e.offset, e.length)?;
            let hit = match &e.kind {
                MessageEntityKind::Mention => text[range.clone()].strip_prefix('@').is_some_and(|n| me.is_me(n)),
                MessageEntityKind::TextMention { user } => user.id == me.id,
                _ => false,
            };
            hit.then_some(range)
        })
        .collect();
    if entities.is_empty()
        && let Some(name) = me.username.as_deref()
    {
        let lower = text.to_ascii_lowercase();
        let needle = format!("@{}", name.to_ascii_lowercase());
        let mut from = 0;
        while let Some(i) = lower[from..].find(&needle) {
            let start = from + i;
            let end = start + needle.len();
            // `@name` must end there (`@support_bot2` is someone else).
            let boundary = !lower[end..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
            if boundary {
                ranges.push(start..end);
            }
            from = end;
        }
    }
    ranges.sort_by_key(|r| r.start);
    ranges
}

/// `text` without the given (sorted, non-overlapping) byte ranges.
fn without_mentions(text: &str, ranges: &[Range<usize>]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for r in ranges {
        if r.start < at || r.end > text.len() {
            continue;
        }
        out.push_str(&text[at..r.start]);
        at = r.end;
    }
    out.push_str(&text[at..]);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Converts a UTF-16 offset and length (Telegram's entity units) to a byte range of `text`, or
/// `None` if they do not fall on character boundaries inside it.
fn utf16_to_byte_range(text: &str, offset: usize, length: usize) -> Option<Range<usize>> {
    let end16 = offset.checked_add(length)?;
    let mut pos16 = 0;
    let mut start = None;
    for (byte, c) in text.char_indices().map(|(b, c)| (b, Some(c))).chain(std::iter::once((text.len(), None))) {
        if pos16 == offset {
            start = Some(byte);
        }
        if pos16 == end16 {
            return start.map(|s| s..byte);
        }
        if pos16 > end16 {
            return None;
        }
        pos16 += c.map_or(1, char::len_utf16);
    }
    None
}

/// Whether the message replies to one of the bot's messages. In forum topics every message
/// "replies" to the topic's creation message; that is not a reply to the bot.
fn replies_to_me(msg: &Message, me: &Identity) -> bool {
    msg.reply_to_message().is_some_and(|r| {
        r.from.as_ref().is_some_and(|u| u.id == me.id) && !matches!(r.kind, MessageKind::ForumTopicCreated(_))
    })
}

/// The forum topic of a message, if it was posted in one (answers go to the same topic).
pub(crate) fn topic(msg: &Message) -> Option<ThreadId> {
    if msg.is_topic_message { msg.thread_id } else { None }
}

/// Conversation id for follow-up context: the private chat, the forum topic, or the person in
/// a group (two people in one group do not share context).
pub(crate) fn conversation_id(msg: &Message) -> String {
    let chat = msg.chat.id.0;
    if msg.chat.is_private() {
        return chat.to_string();
    }
    match (topic(msg), msg.from.as_ref()) {
        (Some(ThreadId(MessageId(thread))), _) => format!("{chat}:{thread}"),
        (None, Some(user)) => format!("{chat}:{}", user.id.0),
        (None, None) => chat.to_string(),
    }
}

/// Where a person's later reply must go: the chat, the question's message and its topic.
pub(crate) fn delivery(msg: &Message) -> serde_json::Value {
    serde_json::json!({
        "platform": "telegram",
        "chat_id": msg.chat.id.0,
        "message_id": msg.id.0,
        "thread_id": topic(msg).map(|ThreadId(MessageId(t))| t),
    })
}

/// Where a reply to a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target {
    pub chat: ChatId,
    /// The message answered (`None` for messages that are not replies).
    pub reply_to: Option<MessageId>,
    pub thread: Option<ThreadId>,
}

impl Target {
    pub fn reply_to(msg: &Message) -> Self {
        Self { chat: msg.chat.id, reply_to: Some(msg.id), thread: topic(msg) }
    }
}

/// The dispatcher's distribution key: updates with the same key are handled one after the other,
/// different keys in parallel. Messages are keyed by conversation, so a private chat or one
/// person in a group gets answers in the order of the questions while a busy group still answers
/// several people at once; button presses get keys of their own, so an acknowledgement never
/// waits behind an answer being written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Lane {
    Conversation(i64, i64),
    Buttons(i64, u64),
    Chat(i64),
}

pub(crate) fn lane(update: &Update) -> Option<Lane> {
    match &update.kind {
        UpdateKind::Message(msg) => Some(message_lane(msg)),
        UpdateKind::CallbackQuery(q) => Some(button_lane(q)),
        _ => update.chat().map(|c| Lane::Chat(c.id.0)),
    }
}

fn message_lane(msg: &Message) -> Lane {
    let chat = msg.chat.id.0;
    if msg.chat.is_private() {
        return Lane::Conversation(chat, 0);
    }
    match (topic(msg), msg.from.as_ref()) {
        (Some(ThreadId(MessageId(thread))), _) => Lane::Conversation(chat, i64::from(thread)),
        (None, Some(user)) => Lane::Conversation(chat, i64::try_from(user.id.0).unwrap_or(i64::MAX)),
        (None, None) => Lane::Chat(chat),
    }
}

fn button_lane(q: &CallbackQuery) -> Lane {
    let chat = q.message.as_ref().map_or(0, |m| m.chat().id.0);
    Lane::Buttons(chat, q.from.id.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const BOT: u64 = 4242;

    fn me() -> Identity {
        Identity { id: UserId(BOT), username: Some("Support_Bot".into()) }
    }

    fn user(id: u64) -> Value {
        json!({"id": id, "is_bot": false, "first_name": "Ann"})
    }

    fn private_chat(id: i64) -> Value {
        json!({"id": id, "type": "private", "first_name": "Ann"})
    }

    fn group_chat(id: i64) -> Value {
        json!({"id": id, "type": "supergroup", "title": "Driftwood users", "is_forum": true})
    }

    /// A message as Telegram would send it, with `@mentions` and a leading `/command` marked as
    /// entities (offsets in UTF-16).
    fn message(chat: Value, from: Value, text: &str) -> Value {
        let mut entities = Vec::new();
        let mut pos16 = 0;
        let mut current: Option<(usize, usize, &str)> = None;
        let flush = |cur: &mut Option<(usize, usize, &str)>, entities: &mut Vec<Value>| {
            if let Some((start, len, kind)) = cur.take()
                && len > 1
            {
                entities.push(json!({"type": kind, "offset": start, "length": len}));
            }
        };
        for (i, c) in text.char_indices() {
            if c == '@' || (c == '/' && i == 0) {
                flush(&mut current, &mut entities);
                current = Some((pos16, 1, if c == '@' { "mention" } else { "bot_command" }));
            } else if let Some((_, len, _)) = current.as_mut() {
                if c.is_alphanumeric() || c == '_' {
                    *len += c.len_utf16();
                } else {
                    flush(&mut current, &mut entities);
                }
            }
            pos16 += c.len_utf16();
        }
        flush(&mut current, &mut entities);
        json!({"message_id": 10, "date": 1_700_000_000, "chat": chat, "from": from, "text": text, "entities": entities})
    }

    fn parse(v: Value) -> Message {
        serde_json::from_value(v).expect("a valid message")
    }

    #[test]
    fn every_private_message_is_a_question() {
        let m = parse(message(private_chat(7), user(7), "  How do I reset my password? "));
        assert_eq!(classify(&m, &me()), Action::Ask("How do I reset my password?".into()));
        assert_eq!(conversation_id(&m), "7");
    }

    #[test]
    fn commands_are_recognised_with_or_without_the_bot_name() {
        let cases = [
            ("/start", Action::Start),
            ("/start@support_bot", Action::Start),
            ("/help", Action::Help),
            ("/human", Action::Human),
            ("/ask", Action::EmptyQuestion),
            ("/ask@Support_Bot   ", Action::EmptyQuestion),
            ("/ask How do I sync?", Action::Ask("How do I sync?".into())),
            ("/ASK@support_bot How do I sync?", Action::Ask("How do I sync?".into())),
            ("/whatever", Action::Help),
        ];
        for (text, expected) in cases {
            let m = parse(message(private_chat(7), user(7), text));
            assert_eq!(classify(&m, &me()), expected, "{text}");
        }
        let m = parse(message(private_chat(7), user(7), "/ask@other_bot How do I sync?"));
        assert_eq!(classify(&m, &me()), Action::Ignore, "a command for another bot");
    }

    #[test]
    fn groups_need_a_mention_a_reply_or_ask() {
        let g = || group_chat(-100_123);
        let m = parse(message(g(), user(7), "How do I reset my password?"));
        assert_eq!(classify(&m, &me()), Action::Ignore);
        let m = parse(message(g(), user(7), "@support_bot, how do I reset my password?"));
        assert_eq!(classify(&m, &me()), Action::Ask("how do I reset my password?".into()));
        let m = parse(message(g(), user(7), "How do I 🔑 reset it @Support_Bot please"));
        assert_eq!(classify(&m, &me()), Action::Ask("How do I 🔑 reset it please".into()));
        let m = parse(message(g(), user(7), "@support_bot2 how do I reset my password?"));
        assert_eq!(classify(&m, &me()), Action::Ignore, "a different bot");
        let m = parse(message(g(), user(7), "@support_bot"));
        assert_eq!(classify(&m, &me()), Action::EmptyQuestion);
        let m = parse(message(g(), user(7), "/ask where are my backups?"));
        assert_eq!(classify(&m, &me()), Action::Ask("where are my backups?".into()));
        let m = parse(message(g(), user(7), "/ban someone"));
        assert_eq!(classify(&m, &me()), Action::Ignore, "another bot's command in a group");

        let mut reply = message(g(), user(7), "and on Linux?");
        reply["reply_to_message"] = json!({"message_id": 5, "date": 1_700_000_000, "chat": g(),
            "from": {"id": BOT, "is_bot": true, "first_name": "Support", "username": "Support_Bot"}, "text": "Answer"});
        assert_eq!(classify(&parse(reply), &me()), Action::Ask("and on Linux?".into()));
    }

    #[test]
    fn a_text_mention_of_the_bot_counts() {
        let mut v = message(group_chat(-100_123), user(7), "Support where are my backups?");
        v["entities"] = json!([{"type": "text_mention", "offset": 0, "length": 7,
            "user": {"id": BOT, "is_bot": true, "first_name": "Support"}}]);
        assert_eq!(classify(&parse(v), &me()), Action::Ask("where are my backups?".into()));
    }

    #[test]
    fn bots_service_messages_and_bad_entities_are_ignored_without_panicking() {
        let bot_user = json!({"id": 99, "is_bot": true, "first_name": "Other"});
        assert_eq!(classify(&parse(message(private_chat(7), bot_user, "hello")), &me()), Action::Ignore);
        let mut v = message(group_chat(-100_123), user(7), "é @support_bot");
        v["entities"] = json!([{"type": "mention", "offset": 1, "length": 400}]);
        assert_eq!(classify(&parse(v), &me()), Action::Ignore, "an entity outside the text is not a mention");
        let sticker = json!({"message_id": 10, "date": 1_700_000_000, "chat": private_chat(7), "from": user(7),
            "sticker": {"file_id": "f", "file_unique_id": "u", "type": "regular", "width": 512, "height": 512,
                "is_animated": false, "is_video": false}});
        assert_eq!(classify(&parse(sticker), &me()), Action::Ignore);
    }

    #[test]
    fn forum_topics_are_one_conversation_and_group_members_are_apart() {
        let mut v = message(group_chat(-100_123), user(7), "@support_bot where are my backups?");
        v["message_thread_id"] = json!(77);
        v["is_topic_message"] = json!(true);
        // Telegram links every topic message to the topic's creation message.
        v["reply_to_message"] = json!({"message_id": 77, "date": 1_700_000_000, "chat": group_chat(-100_123),
            "from": user(8), "forum_topic_created": {"name": "Backups", "icon_color": 7322096},
            "message_thread_id": 77, "is_topic_message": true});
        let m = parse(v);
        assert_eq!(conversation_id(&m), "-100123:77");
        assert_eq!(topic(&m), Some(ThreadId(MessageId(77))));
        assert_eq!(
            delivery(&m),
            json!({"platform": "telegram", "chat_id": -100_123, "message_id": 10, "thread_id": 77})
        );
        assert_eq!(message_lane(&m), Lane::Conversation(-100_123, 77));

        // In a topic the bot created, every message links to the bot's creation message; that
        // link is not a reply to the bot, so a message without a mention is ignored.
        let mut in_bots_topic = message(group_chat(-100_123), user(8), "hi all");
        in_bots_topic["message_thread_id"] = json!(78);
        in_bots_topic["is_topic_message"] = json!(true);
        in_bots_topic["reply_to_message"] = json!({"message_id": 78, "date": 1_700_000_000,
            "chat": group_chat(-100_123),
            "from": {"id": BOT, "is_bot": true, "first_name": "Support", "username": "Support_Bot"},
            "forum_topic_created": {"name": "Ask here", "icon_color": 7322096},
            "message_thread_id": 78, "is_topic_message": true});
        assert_eq!(classify(&parse(in_bots_topic), &me()), Action::Ignore, "the topic link is not a reply to the bot");

        let plain = parse(message(group_chat(-100_123), user(8), "hi"));
        assert_eq!(conversation_id(&plain), "-100123:8");
        assert_eq!(delivery(&plain)["thread_id"], Value::Null);
        assert_eq!(message_lane(&plain), Lane::Conversation(-100_123, 8));
    }

    #[test]
    fn utf16_ranges_convert_or_refuse() {
        let text = "a😀b@x";
        assert_eq!(utf16_to_byte_range(text, 4, 2), Some(6..8));
        assert_eq!(utf16_to_byte_range(text, 2, 1), None, "inside a surrogate pair");
        assert_eq!(utf16_to_byte_range(text, 0, 99), None);
        assert_eq!(utf16_to_byte_range(text, usize::MAX, 2), None);
    }
}
