//! A fake of Discord: the REST routes a bot uses (interaction callbacks, webhook edits and
//! followups, channel messages, threads, typing, command registration, gateway discovery) on
//! `127.0.0.1:0`, and a websocket gateway that says Hello, answers Identify with READY,
//! acknowledges heartbeats and dispatches events the test pushes. Every request is recorded;
//! the next request to a route can be scripted to fail (a 429 like Discord's, or any error).
//!
//! ```no_run
//! # async fn demo() {
//! use supportbot_tests::fakes::discord::{self, FakeDiscord};
//! let fake = FakeDiscord::start().await;
//! // serenity: HttpBuilder::new(discord::TOKEN).proxy(&fake.base_url).ratelimiter_disabled(true)
//! //     .application_id(ApplicationId::new(discord::APPLICATION_ID)).build()
//! fake.rate_limit_next("POST", "/messages", 0.2); // the next message send gets a 429
//! // ... drive the bot, then:
//! let sent = fake.messages_in(2002); // what the bot posted in channel 2002, as Discord stored it
//! # let _ = sent;
//! # }
//! ```
//!
//! Messages the bot creates are stored as Discord would return them, with mentions resolved the
//! way Discord resolves them: `mention_everyone` and `mentions` are only set for mention syntax
//! that `allowed_mentions` permits (everything, when a request leaves it out). That lets a test
//! check that nothing in an answer would have pinged anyone.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request as AxumRequest, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// The bot token the fake accepts (serenity sends `Authorization: Bot <token>`).
pub const TOKEN: &str = "fake-discord-token.0123456789";
pub const APPLICATION_ID: u64 = 1234;
/// The bot's own user.
pub const BOT_USER_ID: u64 = 3003;
pub const BOT_USERNAME: &str = "supportbot";
/// The guild a channel belongs to when the fake was not told otherwise.
pub const DEFAULT_GUILD_ID: u64 = 4004;

/// A request as the fake received it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, e.g. `/api/v10/channels/2002/messages`.
    pub path: String,
    /// The JSON body (`Value::Null` when empty, a `Value::String` when not JSON).
    pub body: Value,
    pub authorization: Option<String>,
    pub at: Instant,
}

impl Request {
    /// Whether this is `method` on a path containing `fragment`.
    pub fn is(&self, method: &str, fragment: &str) -> bool {
        self.method == method && self.path.contains(fragment)
    }
}

/// A failure scripted for the next request that matches.
#[derive(Debug, Clone)]
struct Failure {
    method: String,
    fragment: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Request>>,
    failures: Mutex<Vec<Failure>>,
    /// Messages by id (what the bot sent, and what tests seeded), as Discord returns them.
    messages: Mutex<Vec<Value>>,
    /// Guild of each channel the fake knows (threads it created, channels tests added).
    channel_guilds: Mutex<HashMap<u64, u64>>,
    /// Identify payloads received on the gateway.
    identifies: Mutex<Vec<Value>>,
    next_id: AtomicU64,
    gateway_url: Mutex<String>,
}

impl Shared {
    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::SeqCst)
    }

    fn guild_of(&self, channel: u64) -> u64 {
        lock(&self.channel_guilds).get(&channel).copied().unwrap_or(DEFAULT_GUILD_ID)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running fake Discord; its servers stop when this is dropped.
pub struct FakeDiscord {
    /// The REST base URL to give serenity's `HttpBuilder::proxy` (`http://127.0.0.1:PORT`).
    pub base_url: String,
    /// The websocket gateway (`ws://127.0.0.1:PORT`), also returned by `GET /api/v10/gateway`.
    pub gateway_url: String,
    shared: Arc<Shared>,
    events: broadcast::Sender<(String, Value)>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for FakeDiscord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeDiscord").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

impl Drop for FakeDiscord {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl FakeDiscord {
    /// Starts the REST server and the gateway on ephemeral loopback ports.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared { next_id: AtomicU64::new(900_000_000_000_000_001), ..Shared::default() });
        let (events, _) = broadcast::channel(64);

        let gateway = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let gateway_url = format!("ws://{}", gateway.local_addr().expect("local addr"));
        *lock(&shared.gateway_url) = gateway_url.clone();
        let gateway_task = tokio::spawn(serve_gateway(gateway, shared.clone(), events.clone()));

        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr: SocketAddr = listener.local_addr().expect("local addr");
        let rest_task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("fake Discord stopped: {e}");
            }
        });
        Self { base_url: format!("http://{addr}"), gateway_url, shared, events, tasks: vec![gateway_task, rest_task] }
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.requests).clone()
    }

    /// The requests with `method` on a path containing `fragment`.
    pub fn requests_to(&self, method: &str, fragment: &str) -> Vec<Request> {
        self.requests().into_iter().filter(|r| r.is(method, fragment)).collect()
    }

    /// Waits until `count` requests match `method` and `fragment`, or `within` passes; returns them.
    pub async fn wait_for(&self, method: &str, fragment: &str, count: usize, within: Duration) -> Vec<Request> {
        let deadline = Instant::now() + within;
        loop {
            let found = self.requests_to(method, fragment);
            if found.len() >= count || Instant::now() >= deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Scripts the next request with `method` on a path containing `fragment` to get `status`
    /// with `body` (JSON, e.g. `{"code": 50013, "message": "Missing Permissions"}`).
    pub fn fail_next(&self, method: &str, fragment: &str, status: u16, body: Value) {
        lock(&self.shared.failures).push(Failure {
            method: method.into(),
            fragment: fragment.into(),
            status,
            headers: Vec::new(),
            body,
        });
    }

    /// Scripts a 429 for the next matching request, as Discord sends it: the body
    /// `{"message": "You are being rate limited.", "retry_after": …, "global": false}` and the
    /// `Retry-After` and `X-RateLimit-*` headers.
    pub fn rate_limit_next(&self, method: &str, fragment: &str, retry_after: f64) {
        lock(&self.shared.failures).push(Failure {
            method: method.into(),
            fragment: fragment.into(),
            status: 429,
            headers: vec![
                ("retry-after".into(), format!("{}", retry_after.ceil() as u64)),
                ("x-ratelimit-limit".into(), "5".into()),
                ("x-ratelimit-remaining".into(), "0".into()),
                ("x-ratelimit-reset-after".into(), format!("{retry_after:.3}")),
                ("x-ratelimit-scope".into(), "user".into()),
            ],
            body: json!({"message": "You are being rate limited.", "retry_after": retry_after, "global": false}),
        });
    }

    /// Adds a message (Discord's Message JSON) that `GET /channels/{c}/messages/{m}` returns.
    pub fn add_message(&self, message: Value) {
        lock(&self.shared.messages).push(message);
    }

    /// Records that `channel` (or thread) belongs to `guild` (the default is [`DEFAULT_GUILD_ID`]).
    pub fn add_channel(&self, channel: u64, guild: u64) {
        lock(&self.shared.channel_guilds).insert(channel, guild);
    }

    /// The messages the bot created in `channel` (a channel or thread), oldest first, as stored:
    /// the request's fields plus Discord's (`id`, `author`, resolved `mention_everyone`, `mentions`).
    pub fn messages_in(&self, channel: u64) -> Vec<Value> {
        let channel = channel.to_string();
        lock(&self.shared.messages)
            .iter()
            .filter(|m| m["channel_id"] == channel.as_str() && m["author"]["id"] == BOT_USER_ID.to_string().as_str())
            .cloned()
            .collect()
    }

    /// Every message the bot created or edited (channel messages, interaction responses and
    /// followups), oldest first.
    pub fn bot_messages(&self) -> Vec<Value> {
        lock(&self.shared.messages)
            .iter()
            .filter(|m| m["author"]["id"] == BOT_USER_ID.to_string().as_str())
            .cloned()
            .collect()
    }

    /// The messages of the interaction with `token`: the original response first (if any), then
    /// the followups, oldest first.
    pub fn interaction_messages(&self, token: &str) -> Vec<Value> {
        let mut found: Vec<Value> =
            lock(&self.shared.messages).iter().filter(|m| m["interaction_token"] == token).cloned().collect();
        found.sort_by_key(|m| m["original"] != true);
        found
    }

    /// Sends a gateway dispatch (`INTERACTION_CREATE`, `MESSAGE_CREATE`, …) to every connected
    /// session that has identified.
    pub fn dispatch(&self, event: &str, data: Value) {
        let _ = self.events.send((event.to_string(), data));
    }

    /// The Identify payloads received (`d` of op 2), oldest first.
    pub fn identifies(&self) -> Vec<Value> {
        lock(&self.shared.identifies).clone()
    }

    /// Waits until a session has identified (and got READY), or `within` passes.
    pub async fn wait_for_identify(&self, within: Duration) -> Option<Value> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(identify) = self.identifies().into_iter().next() {
                return Some(identify);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The bot's user object.
pub fn bot_user() -> Value {
    json!({"id": BOT_USER_ID.to_string(), "username": BOT_USERNAME, "discriminator": "0", "global_name": null,
        "avatar": null, "bot": true, "verified": true, "mfa_enabled": false, "flags": 0})
}

/// RFC 3339 "now" (UTC) without a date library.
fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.000000+00:00")
}

/// What Discord would ping for `content` under `allowed` (absent: Discord's default, everything).
fn resolve_mentions(content: &str, allowed: Option<&Value>) -> (bool, Vec<Value>, Vec<Value>) {
    let parse: Vec<&str> = match allowed {
        None => vec!["everyone", "users", "roles"],
        Some(a) => a["parse"].as_array().map(|p| p.iter().filter_map(Value::as_str).collect()).unwrap_or_default(),
    };
    let listed = |key: &str, id: &str| {
        allowed.and_then(|a| a[key].as_array()).is_some_and(|ids| ids.iter().any(|v| v.as_str() == Some(id)))
    };
    let everyone = parse.contains(&"everyone") && (content.contains("@everyone") || content.contains("@here"));
    let mut users = Vec::new();
    let mut roles = Vec::new();
    let mut rest = content;
    while let Some(start) = rest.find("<@") {
        rest = &rest[start + 2..];
        let (is_role, body) = match rest.strip_prefix('&') {
            Some(b) => (true, b),
            None => (false, rest.strip_prefix('!').unwrap_or(rest)),
        };
        let id: String = body.chars().take_while(char::is_ascii_digit).collect();
        if id.is_empty() || !body[id.len()..].starts_with('>') {
            continue;
        }
        if is_role && (parse.contains(&"roles") || listed("roles", &id)) {
            roles.push(json!(id));
        } else if !is_role && (parse.contains(&"users") || listed("users", &id)) {
            users.push(json!({"id": id, "username": "someone"}));
        }
    }
    (everyone, users, roles)
}

impl Shared {
    /// Stores a message the bot sends (`body` is the request) and returns it as Discord would.
    fn create_message(&self, channel: u64, id: Option<u64>, body: &Value) -> Value {
        let content = body["content"].as_str().unwrap_or_default();
        let (everyone, users, roles) = resolve_mentions(content, body.get("allowed_mentions"));
        let id = id.unwrap_or_else(|| self.id());
        let reply = body.get("message_reference").is_some_and(|r| !r.is_null());
        let message = json!({
            "id": id.to_string(), "channel_id": channel.to_string(), "author": bot_user(),
            "content": content, "timestamp": now_rfc3339(), "edited_timestamp": null, "tts": false,
            "mention_everyone": everyone, "mentions": users, "mention_roles": roles, "attachments": [],
            "embeds": [], "pinned": false, "type": if reply { 19 } else { 0 },
            "flags": body.get("flags").cloned().unwrap_or(json!(0)),
            "message_reference": body.get("message_reference").cloned().unwrap_or(Value::Null),
        });
        let mut stored = message.clone();
        // Keep what the bot asked for too (buttons, allowed mentions) for assertions.
        stored["components"] = body.get("components").cloned().unwrap_or(json!([]));
        stored["allowed_mentions"] = body.get("allowed_mentions").cloned().unwrap_or(Value::Null);
        for key in ["interaction_token", "original"] {
            if let Some(v) = body.get(key) {
                stored[key] = v.clone();
            }
        }
        let mut messages = lock(&self.messages);
        messages.retain(|m| m["id"] != stored["id"]);
        messages.push(stored);
        message
    }

    fn thread(&self, id: u64, parent: u64, kind: u64, name: &str) -> Value {
        let guild = self.guild_of(parent);
        lock(&self.channel_guilds).insert(id, guild);
        json!({"id": id.to_string(), "type": kind, "guild_id": guild.to_string(), "parent_id": parent.to_string(),
            "owner_id": BOT_USER_ID.to_string(), "name": name, "message_count": 0, "member_count": 1,
            "rate_limit_per_user": 0, "flags": 0,
            "thread_metadata": {"archived": false, "auto_archive_duration": 1440, "locked": false,
                "archive_timestamp": now_rfc3339(), "create_timestamp": now_rfc3339()}})
    }
}

fn json_response(status: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn not_found(code: u32, message: &str) -> Response {
    json_response(404, &json!({"code": code, "message": message}))
}

async fn handle(State(shared): State<Arc<Shared>>, request: AxumRequest) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 16 << 20).await.unwrap_or_default();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    let recorded = Request {
        method: parts.method.to_string(),
        path: parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_string(), |p| p.to_string()),
        body,
        authorization: parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string),
        at: Instant::now(),
    };
    lock(&shared.requests).push(recorded.clone());

    let scripted = {
        let mut failures = lock(&shared.failures);
        let i = failures.iter().position(|f| recorded.is(&f.method, &f.fragment));
        i.map(|i| failures.remove(i))
    };
    if let Some(f) = scripted {
        let mut response = json_response(f.status, &f.body);
        for (name, value) in &f.headers {
            if let (Ok(name), Ok(value)) =
                (header::HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value))
            {
                response.headers_mut().insert(name, value);
            }
        }
        return response;
    }
    route(&shared, &recorded)
}

fn route(shared: &Shared, r: &Request) -> Response {
    let path = r.path.split('?').next().unwrap_or_default();
    let Some(rest) = path.strip_prefix("/api/v10/") else {
        return not_found(0, "404: Not Found");
    };
    let seg: Vec<&str> = rest.split('/').collect();
    let num = |s: &str| s.parse::<u64>().ok();
    // Interaction callbacks and webhook routes are authorised by their token; the rest by the bot token.
    let bot_route = !matches!(seg.first(), Some(&"interactions") | Some(&"webhooks"));
    if bot_route && r.authorization.as_deref() != Some(format!("Bot {TOKEN}").as_str()) {
        return json_response(401, &json!({"code": 0, "message": "401: Unauthorized"}));
    }
    match (r.method.as_str(), seg.as_slice()) {
        ("GET", ["gateway"]) => json_response(200, &json!({"url": lock(&shared.gateway_url).clone()})),
        ("GET", ["gateway", "bot"]) => json_response(
            200,
            &json!({"url": lock(&shared.gateway_url).clone(), "shards": 1,
                "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}}),
        ),
        ("GET", ["users", "@me"]) => json_response(200, &bot_user()),
        ("POST", ["interactions", _id, _token, "callback"]) => {
            // A type-4 response (an immediate message) becomes the original response message.
            if r.body["type"] == 4
                && let Some(token) = seg.get(2)
            {
                shared.create_message(1, None, &tagged(&r.body["data"], token, true));
            }
            no_content()
        }
        ("PATCH", ["webhooks", _app, token, "messages", "@original"]) => {
            let existing = original_id(shared, token);
            let message = shared.create_message(1, existing, &tagged(&r.body, token, true));
            json_response(200, &message)
        }
        ("GET", ["webhooks", _app, token, "messages", "@original"]) => {
            match lock(&shared.messages).iter().find(|m| m["interaction_token"] == *token && m["original"] == true) {
                Some(m) => json_response(200, m),
                None => not_found(10008, "Unknown Message"),
            }
        }
        ("DELETE", ["webhooks", _app, token, "messages", "@original"]) => {
            lock(&shared.messages).retain(|m| !(m["interaction_token"] == *token && m["original"] == true));
            no_content()
        }
        ("POST", ["webhooks", _app, token]) => {
            let message = shared.create_message(1, None, &tagged(&r.body, token, false));
            json_response(200, &message)
        }
        ("PATCH", ["webhooks", _app, token, "messages", id]) => {
            let message = shared.create_message(1, num(id), &tagged(&r.body, token, false));
            json_response(200, &message)
        }
        ("POST", ["channels", channel, "messages"]) => match num(channel) {
            Some(channel) => json_response(200, &shared.create_message(channel, None, &r.body)),
            None => not_found(10003, "Unknown Channel"),
        },
        ("GET", ["channels", channel, "messages", id]) => {
            let found = lock(&shared.messages).iter().find(|m| m["channel_id"] == *channel && m["id"] == *id).cloned();
            match found {
                Some(m) => json_response(200, &m),
                None => not_found(10008, "Unknown Message"),
            }
        }
        ("POST", ["channels", _channel, "typing"]) => no_content(),
        ("POST", ["channels", channel, "messages", message, "threads"]) => match (num(channel), num(message)) {
            // A thread started from a message has the message's id.
            (Some(channel), Some(message)) => {
                let name = r.body["name"].as_str().unwrap_or("thread");
                json_response(201, &shared.thread(message, channel, 11, name))
            }
            _ => not_found(10003, "Unknown Channel"),
        },
        ("POST", ["channels", channel, "threads"]) => match num(channel) {
            Some(channel) => {
                let id = shared.id();
                let name = r.body["name"].as_str().unwrap_or("thread");
                let kind = r.body["type"].as_u64().unwrap_or(11);
                let mut thread = shared.thread(id, channel, kind, name);
                // A forum post carries its first message, which has the thread's id.
                if let Some(first) = r.body.get("message") {
                    thread["message"] = shared.create_message(id, Some(id), first);
                }
                json_response(201, &thread)
            }
            None => not_found(10003, "Unknown Channel"),
        },
        ("PUT", ["applications", app, "commands"]) | ("PUT", ["applications", app, "guilds", _, "commands"]) => {
            let guild = seg.get(3).filter(|_| seg.len() == 5).map(|g| g.to_string());
            let commands: Vec<Value> = r.body.as_array().cloned().unwrap_or_default();
            let out: Vec<Value> = commands
                .into_iter()
                .map(|mut c| {
                    c["id"] = json!(shared.id().to_string());
                    c["application_id"] = json!(app);
                    c["version"] = json!(shared.id().to_string());
                    c["type"] = c.get("type").cloned().unwrap_or(json!(1));
                    c["default_member_permissions"] = Value::Null;
                    if let Some(g) = &guild {
                        c["guild_id"] = json!(g);
                    }
                    c
                })
                .collect();
            json_response(200, &Value::Array(out))
        }
        _ => not_found(0, "404: Not Found"),
    }
}

/// A webhook message body tagged with its interaction token (and whether it is the original
/// response) so later requests with the same token find it.
fn tagged(body: &Value, token: &str, original: bool) -> Value {
    let mut b = if body.is_object() { body.clone() } else { json!({}) };
    b["interaction_token"] = json!(token);
    b["original"] = json!(original);
    b
}

fn original_id(shared: &Shared, token: &str) -> Option<u64> {
    lock(&shared.messages)
        .iter()
        .find(|m| m["interaction_token"] == token && m["original"] == true)
        .and_then(|m| m["id"].as_str().and_then(|s| s.parse().ok()))
}

async fn serve_gateway(listener: TcpListener, shared: Arc<Shared>, events: broadcast::Sender<(String, Value)>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { return };
        let shared = shared.clone();
        let events = events.subscribe();
        tokio::spawn(async move {
            if let Err(e) = gateway_session(stream, shared, events).await {
                eprintln!("fake Discord gateway session ended: {e}");
            }
        });
    }
}

/// One gateway connection: Hello, then READY after Identify, heartbeat ACKs, and the pushed
/// dispatches with increasing sequence numbers.
async fn gateway_session(
    stream: tokio::net::TcpStream,
    shared: Arc<Shared>,
    mut events: broadcast::Receiver<(String, Value)>,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let ws = tokio_tungstenite::accept_async(stream).await?;
    let (mut tx, mut rx) = ws.split();
    let send = |v: Value| WsMessage::Text(v.to_string());
    tx.send(send(json!({"op": 10, "d": {"heartbeat_interval": 41_250}}))).await?;
    let mut seq = 0u64;
    let mut identified = false;
    loop {
        tokio::select! {
            incoming = rx.next() => {
                let Some(incoming) = incoming else { return Ok(()) };
                let text = match incoming? {
                    WsMessage::Text(t) => t,
                    WsMessage::Close(_) => return Ok(()),
                    _ => continue,
                };
                let Ok(payload) = serde_json::from_str::<Value>(&text) else { continue };
                match payload["op"].as_u64() {
                    Some(1) => tx.send(send(json!({"op": 11}))).await?,
                    Some(2) => {
                        lock(&shared.identifies).push(payload["d"].clone());
                        identified = true;
                        seq += 1;
                        let gateway_url = lock(&shared.gateway_url).clone();
                        let ready = json!({"v": 10, "user": bot_user(), "guilds": [], "session_id": "fake-session",
                            "resume_gateway_url": gateway_url, "shard": [0, 1],
                            "application": {"id": APPLICATION_ID.to_string(), "flags": 0}});
                        tx.send(send(json!({"op": 0, "t": "READY", "s": seq, "d": ready}))).await?;
                    }
                    _ => {}
                }
            }
            event = events.recv() => {
                let Ok((name, data)) = event else { continue };
                if identified {
                    seq += 1;
                    tx.send(send(json!({"op": 0, "t": name, "s": seq, "d": data}))).await?;
                }
            }
        }
    }
}

/// A Discord snowflake for an object created `ago` before now (for fixtures whose age matters).
pub fn snowflake_ago(ago: Duration) -> u64 {
    const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let ms = now.saturating_sub(ago).as_millis() as u64;
    (ms.saturating_sub(DISCORD_EPOCH_MS)) << 22 | 1
}
