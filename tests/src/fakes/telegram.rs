//! A fake Telegram Bot API server: `POST /bot<token>/<method>` with JSON bodies, as teloxide and
//! every other client speak it, on `127.0.0.1:0`. It keeps the state a bot sees (pending updates
//! with `getUpdates` offset semantics and long polling, the chats, the messages of users and of
//! the bot, open callback queries, the webhook) and records every call.
//!
//! It checks requests the way Telegram does and answers with Telegram's errors: unknown chats,
//! replies to missing messages, HTML that is not Telegram's subset or not balanced ("can't
//! parse entities"), texts over 4096 characters after entity parsing, callback data over 64
//! bytes, unknown or already answered callback queries, edits that change nothing. Tests can
//! script failures for the next matching call (`429` with `retry_after`, a rejected HTML). It
//! never answers 5xx: teloxide sleeps 10 s on those.
//!
//! ```no_run
//! # async fn demo() {
//! use supportbot_tests::fakes::telegram::{Chat, Failure, FakeTelegram, NewMessage, User};
//! let tg = FakeTelegram::start().await;
//! // Point the bot at it: telegram.api_url = tg.api_url, telegram.token = telegram::TOKEN.
//! let ann = User::new(1001, "Ann");
//! tg.fail_next("sendMessage", Failure::retry_after(1));
//! let asked = tg.post(NewMessage::new(&Chat::private(&ann), &ann, "How do I reset my password?"));
//! let replies = tg.wait_replies(&asked, 1, std::time::Duration::from_secs(30)).await;
//! assert!(replies[0].callback_data().iter().any(|d| d.starts_with("fb:d:")));
//! // A person's reply delivered later: any client sending `sendMessage` with
//! // `reply_parameters.message_id = asked.message_id` shows up in `tg.replies_to(&asked)`.
//! # }
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::Notify;

/// The token [`FakeTelegram::start`] accepts (shaped like a real one: teloxide recognises it and
/// redacts it from the URLs in its network errors).
pub const TOKEN: &str = "7000000001:AAF-fake_telegram-token-for-tests-01";
/// The bot's user id (the part of the token before `:`).
pub const BOT_ID: i64 = 7_000_000_001;
/// The bot's username, without `@`.
pub const BOT_USERNAME: &str = "driftwood_support_bot";

/// Telegram's limit on a message's text after entity parsing.
pub const TEXT_LIMIT: usize = 4096;

/// Chat actions Telegram knows.
const CHAT_ACTIONS: [&str; 10] = [
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "upload_video_note",
];

/// A Telegram user (a person writing to the bot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub first_name: String,
    pub username: Option<String>,
    pub language_code: Option<String>,
}

impl User {
    pub fn new(id: i64, first_name: &str) -> Self {
        Self { id, first_name: first_name.into(), username: None, language_code: Some("en".into()) }
    }

    pub fn json(&self) -> Value {
        let mut v = json!({"id": self.id, "is_bot": false, "first_name": self.first_name});
        if let Some(u) = &self.username {
            v["username"] = json!(u);
        }
        if let Some(l) = &self.language_code {
            v["language_code"] = json!(l);
        }
        v
    }
}

/// What kind of chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatKind {
    Private,
    Group,
    Supergroup,
    /// A supergroup with topics.
    Forum,
}

/// A chat the bot is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chat {
    pub id: i64,
    pub kind: ChatKind,
    /// Group title, or the person's first name for a private chat.
    pub title: String,
}

impl Chat {
    /// The private chat with `user` (its id is the user's id, as in Telegram).
    pub fn private(user: &User) -> Self {
        Self { id: user.id, kind: ChatKind::Private, title: user.first_name.clone() }
    }

    /// A basic group (ids are negative).
    pub fn group(id: i64, title: &str) -> Self {
        Self { id, kind: ChatKind::Group, title: title.into() }
    }

    /// A supergroup (ids look like `-100…`).
    pub fn supergroup(id: i64, title: &str) -> Self {
        Self { id, kind: ChatKind::Supergroup, title: title.into() }
    }

    /// A supergroup with forum topics.
    pub fn forum(id: i64, title: &str) -> Self {
        Self { id, kind: ChatKind::Forum, title: title.into() }
    }

    pub fn json(&self) -> Value {
        match self.kind {
            ChatKind::Private => json!({"id": self.id, "type": "private", "first_name": self.title}),
            ChatKind::Group => json!({"id": self.id, "type": "group", "title": self.title}),
            ChatKind::Supergroup => json!({"id": self.id, "type": "supergroup", "title": self.title}),
            ChatKind::Forum => json!({"id": self.id, "type": "supergroup", "title": self.title, "is_forum": true}),
        }
    }
}

/// A message a user sends (see [`FakeTelegram::post`]).
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub chat: Chat,
    pub from: User,
    pub text: String,
    /// Explicit reply to this message of the chat (the user's or the bot's).
    pub reply_to: Option<i64>,
    /// Forum topic (thread id = the topic's creation message).
    pub topic: Option<i64>,
}

impl NewMessage {
    pub fn new(chat: &Chat, from: &User, text: &str) -> Self {
        Self { chat: chat.clone(), from: from.clone(), text: text.into(), reply_to: None, topic: None }
    }

    pub fn reply_to(mut self, message_id: i64) -> Self {
        self.reply_to = Some(message_id);
        self
    }

    pub fn in_topic(mut self, thread_id: i64) -> Self {
        self.topic = Some(thread_id);
        self
    }
}

/// Where a posted message landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posted {
    /// `0` for a message built with [`FakeTelegram::message_update`] and not queued.
    pub update_id: i64,
    pub chat_id: i64,
    pub message_id: i64,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub body: Value,
    pub at: Instant,
    /// What the fake answered (`{"ok": …}`).
    pub response: Value,
}

impl Call {
    pub fn ok(&self) -> bool {
        self.response["ok"] == true
    }

    pub fn chat_id(&self) -> Option<i64> {
        self.body.get("chat_id").and_then(Value::as_i64)
    }

    pub fn text(&self) -> Option<&str> {
        self.body.get("text").and_then(Value::as_str)
    }

    pub fn parse_mode(&self) -> Option<&str> {
        self.body.get("parse_mode").and_then(Value::as_str)
    }

    /// `reply_parameters.message_id`.
    pub fn reply_to(&self) -> Option<i64> {
        self.body.pointer("/reply_parameters/message_id").and_then(Value::as_i64)
    }

    pub fn thread_id(&self) -> Option<i64> {
        self.body.get("message_thread_id").and_then(Value::as_i64)
    }

    /// Callback data of the inline keyboard sent, row by row.
    pub fn callback_data(&self) -> Vec<String> {
        callback_data(self.body.get("reply_markup"))
    }
}

/// A message the bot sent, as it stands now (after edits).
#[derive(Debug, Clone, PartialEq)]
pub struct BotMessage {
    pub chat_id: i64,
    pub message_id: i64,
    pub thread_id: Option<i64>,
    /// The message it replies to (`reply_parameters.message_id`).
    pub reply_to: Option<i64>,
    /// The text as sent (HTML source when `parse_mode` is `HTML`).
    pub text: String,
    pub parse_mode: Option<String>,
    /// The inline keyboard (`None` when there is none or it was removed).
    pub reply_markup: Option<Value>,
    /// `editMessageText` calls that changed it.
    pub edits: u32,
    pub sent_at: Instant,
}

impl BotMessage {
    /// What the user sees (tags removed, entities decoded).
    pub fn visible_text(&self) -> String {
        if self.parse_mode.as_deref() == Some("HTML") {
            parse_html(&self.text).unwrap_or_else(|_| self.text.clone())
        } else {
            self.text.clone()
        }
    }

    pub fn callback_data(&self) -> Vec<String> {
        callback_data(self.reply_markup.as_ref())
    }
}

fn callback_data(markup: Option<&Value>) -> Vec<String> {
    markup
        .and_then(|m| m.get("inline_keyboard"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|b| b.get("callback_data").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// A scripted error answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub status: u16,
    pub description: String,
    pub retry_after: Option<u64>,
}

impl Failure {
    pub fn new(status: u16, description: &str) -> Self {
        Self { status, description: description.into(), retry_after: None }
    }

    /// Flood control: `429 Too Many Requests: retry after N` with `parameters.retry_after`.
    pub fn retry_after(secs: u64) -> Self {
        Self { status: 429, description: format!("Too Many Requests: retry after {secs}"), retry_after: Some(secs) }
    }

    /// Telegram refusing a message's HTML.
    pub fn cant_parse_entities() -> Self {
        Self::new(400, "Bad Request: can't parse entities: Unsupported start tag \"sup\" at byte offset 12")
    }

    /// The user blocked the bot.
    pub fn blocked() -> Self {
        Self::new(403, "Forbidden: bot was blocked by the user")
    }

    fn body(&self) -> Value {
        let mut v = json!({"ok": false, "error_code": self.status, "description": self.description});
        if let Some(secs) = self.retry_after {
            v["parameters"] = json!({"retry_after": secs});
        }
        v
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Matcher {
    Any,
    Html,
}

#[derive(Default)]
struct Inner {
    next_update_id: i64,
    next_message_id: HashMap<i64, i64>,
    next_callback: u64,
    /// Updates not yet confirmed by an offset.
    pending: VecDeque<Value>,
    chats: HashMap<i64, Chat>,
    /// Every message in every chat by (chat, message id): users', the bot's, service messages.
    messages: HashMap<(i64, i64), Value>,
    bot_messages: Vec<BotMessage>,
    /// Open callback queries (id → answered).
    callbacks: HashMap<String, bool>,
    calls: Vec<Call>,
    failures: Vec<(String, Matcher, Failure)>,
    /// `setWebhook`: url and secret.
    webhook: Option<(String, Option<String>)>,
}

struct Shared {
    token: String,
    inner: Mutex<Inner>,
    /// Wakes held `getUpdates` calls.
    updates: Notify,
    /// Wakes tests waiting for calls.
    called: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running fake Bot API; the server stops when this is dropped.
pub struct FakeTelegram {
    /// What to configure as `telegram.api_url` (`http://127.0.0.1:PORT`).
    pub api_url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FakeTelegram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeTelegram").field("api_url", &self.api_url).finish_non_exhaustive()
    }
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeTelegram {
    /// Starts a fake accepting [`TOKEN`].
    pub async fn start() -> Self {
        Self::start_with_token(TOKEN).await
    }

    /// Starts a fake accepting only `token` (others get `401 Unauthorized`).
    pub async fn start_with_token(token: &str) -> Self {
        let shared = Arc::new(Shared {
            token: token.into(),
            inner: Mutex::new(Inner { next_update_id: 1000, ..Inner::default() }),
            updates: Notify::new(),
            called: Notify::new(),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("fake Telegram stopped: {e}");
            }
        });
        Self { api_url: format!("http://{addr}"), shared, task }
    }

    // ----- what users do -----

    /// Makes a chat known (as when the bot is added to it); posting in it does this too.
    pub fn add_chat(&self, chat: &Chat) {
        self.shared.lock().chats.insert(chat.id, chat.clone());
    }

    /// A user sends a message: it is queued as an update for `getUpdates`.
    pub fn post(&self, message: NewMessage) -> Posted {
        let (update, mut posted) = self.message_update(message);
        posted.update_id = self.push_update(update);
        posted
    }

    /// The update for a user's message, registered (so replies to it are valid) but not queued:
    /// for webhook tests, which deliver it themselves. Its `update_id` is assigned here.
    pub fn message_update(&self, m: NewMessage) -> (Value, Posted) {
        let mut inner = self.shared.lock();
        inner.chats.insert(m.chat.id, m.chat.clone());
        let message_id = next_message_id(&mut inner, m.chat.id);
        let mut message = json!({
            "message_id": message_id,
            "date": unix_now(),
            "chat": m.chat.json(),
            "from": m.from.json(),
            "text": m.text,
        });
        let entities = auto_entities(&m.text);
        if !entities.is_empty() {
            message["entities"] = json!(entities);
        }
        if let Some(thread) = m.topic {
            message["message_thread_id"] = json!(thread);
            message["is_topic_message"] = json!(true);
        }
        // An explicit reply, or (in a topic) Telegram's link to the topic's creation message.
        if let Some(target) = m.reply_to.or(m.topic)
            && let Some(original) = inner.messages.get(&(m.chat.id, target))
        {
            message["reply_to_message"] = original.clone();
        }
        inner.messages.insert((m.chat.id, message_id), message.clone());
        inner.next_update_id += 1;
        let update_id = inner.next_update_id;
        let posted = Posted { update_id, chat_id: m.chat.id, message_id };
        (json!({"update_id": update_id, "message": message}), posted)
    }

    /// Creates a forum topic (its creation message is also delivered, as Telegram does);
    /// returns its thread id.
    pub fn create_topic(&self, chat: &Chat, creator: &User, name: &str) -> i64 {
        let update = {
            let mut inner = self.shared.lock();
            inner.chats.insert(chat.id, chat.clone());
            let id = next_message_id(&mut inner, chat.id);
            let message = json!({
                "message_id": id, "date": unix_now(), "chat": chat.json(), "from": creator.json(),
                "message_thread_id": id, "is_topic_message": true,
                "forum_topic_created": {"name": name, "icon_color": 7_322_096},
            });
            inner.messages.insert((chat.id, id), message.clone());
            json!({"message": message})
        };
        let thread = update["message"]["message_id"].as_i64().unwrap_or_default();
        self.push_update(update);
        thread
    }

    /// A user presses an inline button of one of the bot's messages; returns the callback id.
    pub fn press(&self, from: &User, chat_id: i64, message_id: i64, data: &str) -> String {
        let update = {
            let mut inner = self.shared.lock();
            let message = inner
                .messages
                .get(&(chat_id, message_id))
                .cloned()
                .unwrap_or_else(|| panic!("no message {message_id} in chat {chat_id} to press a button of"));
            inner.next_callback += 1;
            let id = format!("cbq-{}", inner.next_callback);
            inner.callbacks.insert(id.clone(), false);
            json!({"callback_query": {"id": id, "from": from.json(), "chat_instance": format!("ci{chat_id}"),
                "data": data, "message": message}})
        };
        let id = update["callback_query"]["id"].as_str().unwrap_or_default().to_string();
        self.push_update(update);
        id
    }

    /// Queues a raw update (an `update_id` is added when missing); returns its id.
    pub fn push_update(&self, mut update: Value) -> i64 {
        let id = {
            let mut inner = self.shared.lock();
            let id = match update.get("update_id").and_then(Value::as_i64) {
                Some(id) => id,
                None => {
                    inner.next_update_id += 1;
                    update["update_id"] = json!(inner.next_update_id);
                    inner.next_update_id
                }
            };
            inner.pending.push_back(update);
            id
        };
        self.shared.updates.notify_waiters();
        id
    }

    // ----- scripting -----

    /// The next call of `method` fails with `failure` (scripts are used in order).
    pub fn fail_next(&self, method: &str, failure: Failure) {
        self.shared.lock().failures.push((method.into(), Matcher::Any, failure));
    }

    /// The next call of `method` with `parse_mode: HTML` fails with `failure`.
    pub fn fail_next_html(&self, method: &str, failure: Failure) {
        self.shared.lock().failures.push((method.into(), Matcher::Html, failure));
    }

    // ----- what the bot did -----

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    /// Calls of one method.
    pub fn calls_to(&self, method: &str) -> Vec<Call> {
        self.shared.lock().calls.iter().filter(|c| c.method == method).cloned().collect()
    }

    /// Every message the bot sent, in order, as they stand now.
    pub fn bot_messages(&self) -> Vec<BotMessage> {
        self.shared.lock().bot_messages.clone()
    }

    /// The bot's messages replying to a posted message, in order.
    pub fn replies_to(&self, posted: &Posted) -> Vec<BotMessage> {
        self.bot_messages()
            .into_iter()
            .filter(|m| m.chat_id == posted.chat_id && m.reply_to == Some(posted.message_id))
            .collect()
    }

    /// Updates not yet confirmed by the bot.
    pub fn pending_updates(&self) -> usize {
        self.shared.lock().pending.len()
    }

    /// The webhook set with `setWebhook` (url, secret).
    pub fn webhook(&self) -> Option<(String, Option<String>)> {
        self.shared.lock().webhook.clone()
    }

    /// Waits until `done` holds (checked after every call, and every 50 ms); panics after
    /// `timeout` with `what` and the calls received.
    pub async fn wait_until(&self, timeout: Duration, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let called = self.shared.called.notified();
            if done(self) {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("timed out waiting for {what}; calls:\n{}", self.summary());
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), called).await;
        }
    }

    /// Waits for `n` replies to a posted message (the bot's messages replying to it).
    pub async fn wait_replies(&self, posted: &Posted, n: usize, timeout: Duration) -> Vec<BotMessage> {
        let what = format!("{n} replies to message {} in chat {}", posted.message_id, posted.chat_id);
        self.wait_until(timeout, &what, |tg| tg.replies_to(posted).len() >= n).await;
        self.replies_to(posted)
    }

    /// One line per call (method, ok, chat, the start of the text), for failure messages.
    pub fn summary(&self) -> String {
        self.calls()
            .iter()
            .filter(|c| c.method != "getUpdates")
            .map(|c| {
                let text: String = c.text().unwrap_or_default().chars().take(60).collect();
                format!("  {} ok={} chat={:?} {:?} {}", c.method, c.ok(), c.chat_id(), text, c.response["description"])
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn next_message_id(inner: &mut Inner, chat: i64) -> i64 {
    let next = inner.next_message_id.entry(chat).or_insert(100);
    *next += 1;
    *next
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(1_700_000_000, |d| d.as_secs())
}

/// The entities Telegram adds by itself: `@mentions`, and a `/command` at the start. Offsets and
/// lengths are in UTF-16 code units.
fn auto_entities(text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut offsets = Vec::with_capacity(chars.len() + 1);
    let mut pos = 0;
    for c in &chars {
        offsets.push(pos);
        pos += c.len_utf16();
    }
    offsets.push(pos);
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut i = 0;
    while i < chars.len() {
        let command = chars[i] == '/' && i == 0;
        let mention = chars[i] == '@' && (i == 0 || !word(chars[i - 1]));
        if command || mention {
            let mut j = i + 1;
            while j < chars.len() && (word(chars[j]) || (command && chars[j] == '@')) {
                j += 1;
            }
            if j > i + 1 {
                let kind = if command { "bot_command" } else { "mention" };
                out.push(json!({"type": kind, "offset": offsets[i], "length": offsets[j] - offsets[i]}));
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// Parses Telegram's HTML subset; returns the visible text, or why Telegram would refuse it.
pub fn parse_html(html: &str) -> Result<String, String> {
    const TAGS: [&str; 15] = [
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "code",
        "pre",
        "blockquote",
    ];
    let mut visible = String::new();
    let mut stack: Vec<String> = Vec::new();
    let mut i = 0;
    while i < html.len() {
        let rest = &html[i..];
        let Some(c) = rest.chars().next() else { break };
        match c {
            '<' => {
                let end = rest.find('>').ok_or_else(|| format!("Unclosed start tag at byte offset {i}"))?;
                let inner = &rest[1..end];
                if let Some(name) = inner.strip_prefix('/') {
                    let name = name.trim().to_ascii_lowercase();
                    match stack.pop() {
                        Some(open) if open == name => {}
                        Some(open) => {
                            return Err(format!(
                                "Can't find end tag corresponding to start tag \"{open}\" (found \"</{name}>\" at byte offset {i})"
                            ));
                        }
                        None => return Err(format!("Unexpected end tag at byte offset {i}")),
                    }
                } else {
                    let name = inner.split_whitespace().next().unwrap_or_default().to_ascii_lowercase();
                    if !TAGS.contains(&name.as_str()) {
                        return Err(format!("Unsupported start tag \"{name}\" at byte offset {i}"));
                    }
                    if name == "a" && !inner.contains("href=\"") {
                        return Err(format!("Can't find href of the link at byte offset {i}"));
                    }
                    if name == "span" && !inner.contains("class=\"tg-spoiler\"") {
                        return Err(format!("Tag \"span\" must have class \"tg-spoiler\" at byte offset {i}"));
                    }
                    stack.push(name);
                }
                i += end + 1;
            }
            '&' => {
                let end = rest
                    .find(';')
                    .filter(|&e| e <= 10)
                    .ok_or_else(|| format!("Character entity expected at byte offset {i} (an unescaped \"&\")"))?;
                let entity = &rest[1..end];
                let decoded = match entity {
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "amp" => Some('&'),
                    "quot" => Some('"'),
                    e => e
                        .strip_prefix("#x")
                        .map(|h| u32::from_str_radix(h, 16))
                        .or_else(|| e.strip_prefix('#').map(str::parse::<u32>))
                        .and_then(Result::ok)
                        .and_then(char::from_u32),
                };
                visible
                    .push(decoded.ok_or_else(|| format!("Unsupported HTML entity \"&{entity};\" at byte offset {i}"))?);
                i += end + 1;
            }
            c => {
                visible.push(c);
                i += c.len_utf8();
            }
        }
    }
    if let Some(open) = stack.pop() {
        return Err(format!("Can't find end tag corresponding to start tag \"{open}\""));
    }
    Ok(visible)
}

fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// A JSON answer: `{"ok": true, "result": …}` or an error with Telegram's status code.
fn answer(response: &Value) -> Response {
    let status = match response["ok"].as_bool() {
        Some(true) => StatusCode::OK,
        _ => response["error_code"]
            .as_u64()
            .and_then(|c| u16::try_from(c).ok())
            .and_then(|c| StatusCode::from_u16(c).ok())
            // Never a 5xx: teloxide sleeps 10 s on those.
            .filter(|s| !s.is_server_error())
            .unwrap_or(StatusCode::BAD_REQUEST),
    };
    (status, [("content-type", "application/json")], response.to_string()).into_response()
}

fn ok(result: Value) -> Value {
    json!({"ok": true, "result": result})
}

fn error(status: u16, description: &str) -> Value {
    json!({"ok": false, "error_code": status, "description": description})
}

/// Methods the fake implements, as the Bot API documents them.
const METHODS: [&str; 11] = [
    "getMe",
    "getWebhookInfo",
    "setWebhook",
    "deleteWebhook",
    "getUpdates",
    "getChat",
    "sendChatAction",
    "sendMessage",
    "editMessageText",
    "editMessageReplyMarkup",
    "answerCallbackQuery",
];

/// Method names are case-insensitive in the Bot API (teloxide sends `GetMe`); calls are recorded
/// under the documented spelling.
fn canonical(method: &str) -> String {
    METHODS.iter().find(|m| m.eq_ignore_ascii_case(method)).map_or_else(|| method.to_string(), |m| (*m).to_string())
}

/// A `multipart/form-data` body as JSON (teloxide sends `setWebhook` that way, as it may carry a
/// certificate): text fields become strings, JSON arrays, objects and booleans are parsed.
fn multipart_json(boundary: &str, body: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(body).ok()?;
    let delimiter = format!("--{boundary}");
    let mut fields = serde_json::Map::new();
    for part in text.split(delimiter.as_str()).skip(1) {
        if part.starts_with("--") {
            break;
        }
        let (head, value) = part.trim_start_matches("\r\n").split_once("\r\n\r\n")?;
        let name = head.split("name=\"").nth(1)?.split('"').next()?;
        let value = value.strip_suffix("\r\n").unwrap_or(value);
        let parsed = match value.chars().next() {
            Some('[' | '{') => serde_json::from_str(value).unwrap_or_else(|_| json!(value)),
            _ if value == "true" || value == "false" => json!(value == "true"),
            _ => json!(value),
        };
        fields.insert(name.to_string(), parsed);
    }
    Some(Value::Object(fields))
}

async fn handle(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().trim_start_matches('/');
    let (token, method) = match path.split_once('/') {
        Some((t, m)) => (t.strip_prefix("bot").unwrap_or_default(), canonical(m)),
        None => ("", String::new()),
    };
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let boundary = content_type
        .strip_prefix("multipart/form-data")
        .and_then(|rest| rest.split("boundary=").nth(1))
        .map(|b| b.trim_matches('"').to_string());
    let parsed = match boundary {
        _ if body.is_empty() => Some(json!({})),
        Some(boundary) => multipart_json(&boundary, &body),
        None => serde_json::from_slice(&body).ok(),
    };
    let Some(body) = parsed else {
        return answer(&error(400, "Bad Request: the fake Bot API accepts JSON and multipart bodies only"));
    };
    let response = if token != shared.token {
        error(401, "Unauthorized")
    } else if method == "getUpdates" {
        get_updates(&shared, &body).await
    } else {
        let scripted = {
            let mut inner = shared.lock();
            let html = body.get("parse_mode").and_then(Value::as_str) == Some("HTML");
            let hit = inner.failures.iter().position(|(m, when, _)| *m == method && (*when == Matcher::Any || html));
            hit.map(|i| inner.failures.remove(i).2)
        };
        match scripted {
            Some(failure) => failure.body(),
            None => call(&shared, &method, &body),
        }
    };
    shared.lock().calls.push(Call { method, body, at: Instant::now(), response: response.clone() });
    shared.called.notify_waiters();
    answer(&response)
}

/// `getUpdates`: drops what `offset` confirms, returns what is left (up to `limit`), holding the
/// request up to `timeout` seconds while there is nothing.
async fn get_updates(shared: &Shared, body: &Value) -> Value {
    let offset = body.get("offset").and_then(Value::as_i64).unwrap_or(0);
    let limit = body.get("limit").and_then(Value::as_u64).unwrap_or(100).clamp(1, 100) as usize;
    let timeout = Duration::from_secs(body.get("timeout").and_then(Value::as_u64).unwrap_or(0).min(50));
    {
        let mut inner = shared.lock();
        if inner.webhook.is_some() {
            return error(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
            );
        }
        if offset > 0 {
            inner.pending.retain(|u| u["update_id"].as_i64().is_some_and(|id| id >= offset));
        } else if offset < 0 {
            // A negative offset keeps only the last |offset| updates.
            let keep = usize::try_from(offset.unsigned_abs()).unwrap_or(usize::MAX);
            let drop = inner.pending.len().saturating_sub(keep);
            inner.pending.drain(..drop);
        }
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let arrived = shared.updates.notified();
        let batch: Vec<Value> = shared.lock().pending.iter().take(limit).cloned().collect();
        if !batch.is_empty() {
            return ok(json!(batch));
        }
        if tokio::time::timeout_at(deadline, arrived).await.is_err() {
            return ok(json!([]));
        }
    }
}

/// Every other method.
fn call(shared: &Shared, method: &str, body: &Value) -> Value {
    let mut inner = shared.lock();
    let inner = &mut *inner;
    match method {
        "getMe" => {
            ok(json!({"id": BOT_ID, "is_bot": true, "first_name": "Driftwood Support", "username": BOT_USERNAME,
            "can_join_groups": true, "can_read_all_group_messages": false, "supports_inline_queries": false,
            "can_connect_to_business": false, "has_main_web_app": false}))
        }
        "getWebhookInfo" => {
            let url = inner.webhook.as_ref().map(|(u, _)| u.clone()).unwrap_or_default();
            ok(json!({"url": url, "has_custom_certificate": false, "pending_update_count": inner.pending.len()}))
        }
        "setWebhook" => {
            let Some(url) = body.get("url").and_then(Value::as_str).filter(|u| !u.is_empty()) else {
                return error(400, "Bad Request: bad webhook: an HTTPS URL must be provided for webhook");
            };
            let secret = body.get("secret_token").and_then(Value::as_str).map(str::to_string);
            if let Some(s) = &secret
                && (s.is_empty()
                    || s.len() > 256
                    || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            {
                return error(400, "Bad Request: secret token contains unallowed characters");
            }
            inner.webhook = Some((url.to_string(), secret));
            ok(json!(true))
        }
        "deleteWebhook" => {
            inner.webhook = None;
            if body.get("drop_pending_updates") == Some(&json!(true)) {
                inner.pending.clear();
            }
            ok(json!(true))
        }
        "getChat" => match body.get("chat_id").and_then(Value::as_i64).and_then(|id| inner.chats.get(&id)) {
            Some(chat) => ok(chat.json()),
            None => error(400, "Bad Request: chat not found"),
        },
        "sendChatAction" => {
            if let Err(e) = known_chat(inner, body) {
                return e;
            }
            match body.get("action").and_then(Value::as_str) {
                Some(a) if CHAT_ACTIONS.contains(&a) => ok(json!(true)),
                _ => error(400, "Bad Request: wrong parameter action in request"),
            }
        }
        "sendMessage" => send_message(inner, body),
        "editMessageText" => edit_message(inner, body, true),
        "editMessageReplyMarkup" => edit_message(inner, body, false),
        "answerCallbackQuery" => {
            let id = body.get("callback_query_id").and_then(Value::as_str).unwrap_or_default();
            if body.get("text").and_then(Value::as_str).is_some_and(|t| t.chars().count() > 200) {
                return error(400, "Bad Request: MESSAGE_TOO_LONG");
            }
            match inner.callbacks.get_mut(id) {
                Some(answered) if !*answered => {
                    *answered = true;
                    ok(json!(true))
                }
                _ => error(400, "Bad Request: query is too old and response timeout expired or query ID is invalid"),
            }
        }
        _ => error(404, "Not Found"),
    }
}

fn known_chat<'a>(inner: &'a Inner, body: &Value) -> Result<&'a Chat, Value> {
    body.get("chat_id")
        .and_then(Value::as_i64)
        .and_then(|id| inner.chats.get(&id))
        .ok_or_else(|| error(400, "Bad Request: chat not found"))
}

/// Checks a text the way Telegram does; returns the visible text.
fn check_text(body: &Value) -> Result<String, Value> {
    let text = body.get("text").and_then(Value::as_str).unwrap_or_default();
    let visible = match body.get("parse_mode").and_then(Value::as_str) {
        None => text.to_string(),
        Some("HTML") => parse_html(text).map_err(|e| error(400, &format!("Bad Request: can't parse entities: {e}")))?,
        Some(other) => return Err(error(400, &format!("Bad Request: unsupported parse_mode {other} in the fake"))),
    };
    if visible.trim().is_empty() {
        return Err(error(400, "Bad Request: message text is empty"));
    }
    if utf16_len(&visible) > TEXT_LIMIT {
        return Err(error(400, "Bad Request: message is too long"));
    }
    Ok(visible)
}

/// Checks an inline keyboard; `Ok(None)` when there is none (or it is empty).
fn check_markup(body: &Value) -> Result<Option<Value>, Value> {
    let Some(markup) = body.get("reply_markup") else { return Ok(None) };
    let rows = markup
        .get("inline_keyboard")
        .and_then(Value::as_array)
        .ok_or_else(|| error(400, "Bad Request: the fake supports inline keyboards only"))?;
    for button in rows.iter().filter_map(Value::as_array).flatten() {
        if button.get("text").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(error(400, "Bad Request: BUTTON_TEXT_EMPTY"));
        }
        match button.get("callback_data").and_then(Value::as_str) {
            Some(d) if d.is_empty() || d.len() > 64 => return Err(error(400, "Bad Request: BUTTON_DATA_INVALID")),
            Some(_) => {}
            None if button.get("url").is_some() => {}
            None => return Err(error(400, "Bad Request: BUTTON_TYPE_INVALID")),
        }
    }
    let empty = rows.iter().all(|r| r.as_array().is_none_or(Vec::is_empty));
    Ok(if empty { None } else { Some(markup.clone()) })
}

fn bot_message_json(chat: &Chat, m: &BotMessage, visible: &str) -> Value {
    let mut v = json!({
        "message_id": m.message_id,
        "date": unix_now(),
        "chat": chat.json(),
        "from": {"id": BOT_ID, "is_bot": true, "first_name": "Driftwood Support", "username": BOT_USERNAME},
        "text": visible,
    });
    if let Some(t) = m.thread_id {
        v["message_thread_id"] = json!(t);
        v["is_topic_message"] = json!(true);
    }
    if let Some(markup) = &m.reply_markup {
        v["reply_markup"] = markup.clone();
    }
    v
}

fn send_message(inner: &mut Inner, body: &Value) -> Value {
    let chat = match known_chat(inner, body) {
        Ok(c) => c.clone(),
        Err(e) => return e,
    };
    let visible = match check_text(body) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let markup = match check_markup(body) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let thread_id = body.get("message_thread_id").and_then(Value::as_i64);
    if let Some(t) = thread_id
        && (chat.kind != ChatKind::Forum || !inner.messages.contains_key(&(chat.id, t)))
    {
        return error(400, "Bad Request: message thread not found");
    }
    let reply_to = body.pointer("/reply_parameters/message_id").and_then(Value::as_i64);
    let lenient = body.pointer("/reply_parameters/allow_sending_without_reply") == Some(&json!(true));
    if let Some(r) = reply_to
        && !inner.messages.contains_key(&(chat.id, r))
        && !lenient
    {
        return error(400, "Bad Request: message to be replied not found");
    }
    let message_id = next_message_id(inner, chat.id);
    let m = BotMessage {
        chat_id: chat.id,
        message_id,
        thread_id,
        reply_to,
        text: body.get("text").and_then(Value::as_str).unwrap_or_default().to_string(),
        parse_mode: body.get("parse_mode").and_then(Value::as_str).map(str::to_string),
        reply_markup: markup,
        edits: 0,
        sent_at: Instant::now(),
    };
    let json = bot_message_json(&chat, &m, &visible);
    inner.messages.insert((chat.id, message_id), json.clone());
    inner.bot_messages.push(m);
    ok(json)
}

/// `editMessageText` (`text` true) or `editMessageReplyMarkup`.
fn edit_message(inner: &mut Inner, body: &Value, text: bool) -> Value {
    let chat = match known_chat(inner, body) {
        Ok(c) => c.clone(),
        Err(e) => return e,
    };
    let message_id = body.get("message_id").and_then(Value::as_i64).unwrap_or_default();
    let Some(index) = inner.bot_messages.iter().position(|m| m.chat_id == chat.id && m.message_id == message_id) else {
        return error(400, "Bad Request: message to edit not found");
    };
    let markup = match check_markup(body) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let current = inner.bot_messages[index].clone();
    let mut next = current.clone();
    next.reply_markup = markup;
    if text {
        if let Err(e) = check_text(body) {
            return e;
        }
        next.text = body.get("text").and_then(Value::as_str).unwrap_or_default().to_string();
        next.parse_mode = body.get("parse_mode").and_then(Value::as_str).map(str::to_string);
    }
    if next.visible_text() == current.visible_text() && next.reply_markup == current.reply_markup {
        return error(
            400,
            "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
        );
    }
    if text {
        next.edits += 1;
    }
    let json = bot_message_json(&chat, &next, &next.visible_text());
    inner.messages.insert((chat.id, message_id), json.clone());
    inner.bot_messages[index] = next;
    ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_checked_like_telegram() {
        assert_eq!(parse_html("<b>a &amp; b</b> <a href=\"https://x.y/?a=1&amp;b=2\">l</a>").as_deref(), Ok("a & b l"));
        assert_eq!(parse_html("<pre><code class=\"language-rust\">x &lt; 1</code></pre>").as_deref(), Ok("x < 1"));
        assert!(parse_html("<b>open").is_err());
        assert!(parse_html("<b><i>x</b></i>").is_err());
        assert!(parse_html("<sup>1</sup>").is_err());
        assert!(parse_html("fish & chips").is_err());
        assert!(parse_html("1 < 2").is_err());
    }

    #[test]
    fn multipart_fields_become_json() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"url\"\r\n\r\nhttps://bot.example.com/tg\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"allowed_updates\"\r\n\r\n[\"message\"]\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"secret_token\"\r\n\r\n12345\r\n--XyZ--\r\n";
        let v = multipart_json("XyZ", body.as_bytes()).expect("parsed");
        assert_eq!(
            v,
            json!({"url": "https://bot.example.com/tg", "allowed_updates": ["message"], "secret_token": "12345"})
        );
    }

    #[test]
    fn mentions_and_commands_get_entities_in_utf16() {
        let e = auto_entities("/ask@bot 😀 hi @Support_Bot, a@b");
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(e[0], json!({"type": "bot_command", "offset": 0, "length": 8}));
        assert_eq!(e[1], json!({"type": "mention", "offset": 15, "length": 12}));
    }
}
