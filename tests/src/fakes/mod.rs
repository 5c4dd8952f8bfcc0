//! Wire-level fakes of the remote services that cannot run here: the language-model APIs (Gemini
//! and OpenAI-compatible servers) and the Telegram Bot API and Discord (`telegram`, `discord`):
//! real HTTP servers on `127.0.0.1:0` that answer from a script and record every request.
//!
//! ```no_run
//! # async fn demo() {
//! use supportbot_tests::fakes::{Reply, gemini};
//! // First request: a 429 asking to wait 50 ms; second: an answer (streamed or not, whatever the
//! // client asks for); later requests repeat the last reply.
//! let server = gemini::start([gemini::rate_limited("0.05s"), Reply::text("Reset it in Settings [1].")]).await;
//! // Point the client at `server.base_url` with `gemini::API_KEY`, run it, then:
//! assert_eq!(server.request_count(), 2);
//! let body = &server.requests()[0].body; // the JSON the client sent
//! # let _ = body;
//! # }
//! ```
//!
//! A [`Reply`] describes behaviour, not bytes: each fake renders it in its own wire format, as
//! one JSON body for a plain request or as server-sent events for a streaming one. Streamed
//! events go out as several body chunks a few milliseconds apart, each event cut in two and its
//! separator split across writes, to catch clients that parse per chunk.

pub mod discord;
pub mod gemini;
pub mod openai;
pub mod telegram;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::Value;

/// Text of the reply given when a script is empty.
pub const DEFAULT_ANSWER: &str = "This is the fake model's answer.";

/// Pause between two body chunks of a streamed reply.
const CHUNK_DELAY: Duration = Duration::from_millis(3);

/// One scripted reply of a fake server.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A successful answer. Streamed: one event per piece, then the finish; plain: the pieces
    /// concatenated.
    Answer { pieces: Vec<String>, finish: Finish },
    /// A 200 answer that stops after `pieces` with an in-band error event (`{"error": error}`);
    /// a plain request gets the error as an HTTP 500 body instead.
    MidStreamError { pieces: Vec<String>, error: Value },
    /// This status and JSON body, whatever the request; a 200 to a streaming request becomes a
    /// single event carrying `body`.
    Json { status: u16, body: Value },
    /// A raw HTTP answer (any status, headers and body), whatever the request.
    Http { status: u16, headers: Vec<(String, String)>, body: String },
    /// A 200 whose body (or first event) is not valid JSON.
    Malformed,
    /// Waits `delay` before giving `then` (longer than the client's timeout to test timeouts).
    Slow { delay: Duration, then: Box<Reply> },
    /// Waits until the test opens `gate`, then gives `then`: for checking what a client does
    /// while the model has not answered yet, without guessing how long that takes.
    Held { gate: Gate, then: Box<Reply> },
    /// Streams the first `events` events of `then` (to a streaming request), then waits until
    /// `gate` opens before sending the rest: for checking that a client hands out pieces as
    /// they arrive.
    PausedStream { events: usize, gate: Gate, then: Box<Reply> },
}

tokio::task_local! {
    /// The pause of a [`Reply::PausedStream`] being rendered: (events before it, gate).
    static PAUSE: Option<(usize, Gate)>;
}

/// Opened once by the test; every [`Reply::Held`] and [`Reply::PausedStream`] behind it waits
/// until then.
#[derive(Debug, Clone)]
pub struct Gate(Arc<tokio::sync::watch::Sender<bool>>);

impl Default for Gate {
    fn default() -> Self {
        Self(Arc::new(tokio::sync::watch::channel(false).0))
    }
}

impl Gate {
    /// Lets every held reply go (now and later).
    pub fn open(&self) {
        self.0.send_replace(true);
    }

    async fn opened(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|open| *open).await;
    }
}

impl PartialEq for Gate {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// How a scripted answer ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Normal end (Gemini `STOP`, OpenAI `stop`).
    Stop,
    /// Output limit reached (Gemini `MAX_TOKENS`, OpenAI `length`); with no pieces this is the
    /// "thinking used up the budget, no text" case.
    Length,
    /// The provider blocks the answer (Gemini `SAFETY`, OpenAI `content_filter`).
    Blocked,
    /// No finish at all: a stream cut by a dropped connection (no `finishReason`, no `[DONE]`).
    Missing,
}

impl Reply {
    /// A normal answer; streamed word by word (each piece keeps its leading space).
    pub fn text(text: &str) -> Self {
        Self::Answer { pieces: split_words(text), finish: Finish::Stop }
    }

    /// A normal answer streamed as exactly these pieces.
    pub fn pieces<I, S>(pieces: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::Answer { pieces: pieces.into_iter().map(Into::into).collect(), finish: Finish::Stop }
    }

    /// `then`, after waiting `delay`.
    pub fn slow(delay: Duration, then: Reply) -> Self {
        Self::Slow { delay, then: Box::new(then) }
    }

    /// `then`, once `gate` is opened.
    pub fn held(gate: &Gate, then: Reply) -> Self {
        Self::Held { gate: gate.clone(), then: Box::new(then) }
    }

    /// `then` streamed up to `events` events, the rest once `gate` is opened.
    pub fn paused_stream(events: usize, gate: &Gate, then: Reply) -> Self {
        Self::PausedStream { events, gate: gate.clone(), then: Box::new(then) }
    }

    /// An HTTP answer with a JSON body.
    pub fn json(status: u16, body: Value) -> Self {
        Self::Json { status, body }
    }
}

/// Splits text before each run of whitespace, so the pieces concatenate back to the text.
fn split_words(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut previous_was_space = false;
    for c in text.chars() {
        if c.is_whitespace() && !previous_was_space && !current.is_empty() {
            pieces.push(std::mem::take(&mut current));
        }
        previous_was_space = c.is_whitespace();
        current.push(c);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// A request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, e.g. `/v1beta/models/m:streamGenerateContent?alt=sse`.
    pub path: String,
    pub headers: HeaderMap,
    /// The JSON body (`Value::Null` when empty, a `Value::String` when not JSON).
    pub body: Value,
}

impl Recorded {
    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A running fake; the server stops when this is dropped.
pub struct FakeServer {
    /// What to configure as the client's base URL (`http://127.0.0.1:PORT` for Gemini,
    /// `http://127.0.0.1:PORT/v1` for OpenAI-compatible).
    pub base_url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeServer {
    /// Every request received so far, in order (including rejected ones).
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    pub fn request_count(&self) -> usize {
        lock(&self.shared.requests).len()
    }

    /// Appends replies to the script.
    pub fn push(&self, reply: Reply) {
        lock(&self.shared.script).push_back(reply);
    }
}

impl std::fmt::Debug for FakeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeServer")
            .field("base_url", &self.base_url)
            .field("requests", &self.request_count())
            .finish_non_exhaustive()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How one protocol checks credentials and renders replies.
pub(crate) struct Protocol {
    /// Path prefix of the base URL (`""` or `"/v1"`).
    pub base_path: &'static str,
    /// `None` when the request may proceed, or the error to answer instead (the script is not
    /// consumed).
    pub check: fn(&Recorded, Option<&str>) -> Option<Response>,
    /// Renders a reply for a request.
    pub render: fn(&Recorded, Reply) -> Response,
}

struct Shared {
    protocol: Protocol,
    expected_key: Option<String>,
    script: Mutex<VecDeque<Reply>>,
    last: Mutex<Option<Reply>>,
    requests: Mutex<Vec<Recorded>>,
}

impl Shared {
    fn next_reply(&self) -> Reply {
        let mut last = lock(&self.last);
        match lock(&self.script).pop_front() {
            Some(reply) => {
                *last = Some(reply.clone());
                reply
            }
            None => last.clone().unwrap_or_else(|| Reply::text(DEFAULT_ANSWER)),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts a fake of `protocol` on an ephemeral loopback port.
pub(crate) async fn spawn(
    protocol: Protocol,
    expected_key: Option<String>,
    script: impl IntoIterator<Item = Reply>,
) -> FakeServer {
    let base_path = protocol.base_path;
    let shared = Arc::new(Shared {
        protocol,
        expected_key,
        script: Mutex::new(script.into_iter().collect()),
        last: Mutex::new(None),
        requests: Mutex::new(Vec::new()),
    });
    let app = Router::new().fallback(handle).with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("fake server stopped: {e}");
        }
    });
    FakeServer { base_url: format!("http://{addr}{base_path}"), shared, task }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 20).await.unwrap_or_default();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    let recorded = Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_string(), |p| p.to_string()),
        headers: parts.headers,
        body,
    };
    lock(&shared.requests).push(recorded.clone());
    if let Some(refusal) = (shared.protocol.check)(&recorded, shared.expected_key.as_deref()) {
        return refusal;
    }
    let mut reply = shared.next_reply();
    let mut pause = None;
    let reply = loop {
        reply = match reply {
            Reply::PausedStream { events, gate, then } => {
                pause = Some((events, gate));
                *then
            }
            Reply::Slow { delay, then } => {
                tokio::time::sleep(delay).await;
                *then
            }
            Reply::Held { gate, then } => {
                gate.opened().await;
                *then
            }
            ready => break ready,
        };
    };
    PAUSE.sync_scope(pause, || (shared.protocol.render)(&recorded, reply))
}

/// A JSON response.
pub(crate) fn json_response(status: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// A raw response with extra headers.
pub(crate) fn http_response(status: u16, headers: &[(String, String)], body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (header::HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            response.headers_mut().append(name, value);
        }
    }
    if !response.headers().contains_key(header::CONTENT_TYPE) {
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    response
}

/// A 200 `text/event-stream` response sending each of `events` as `data: …` followed by
/// `separator`. Each event is written in pieces with a short pause between writes: cut in the
/// middle (possibly inside a UTF-8 character) and with part of its separator held back until the
/// next write.
pub(crate) fn sse_response(events: &[String], separator: &str) -> Response {
    let pause = PAUSE.try_with(Clone::clone).ok().flatten();
    let (chunks, pause_at) = sse_chunks(events, separator, pause.as_ref().map(|(n, _)| *n));
    let gate = pause.map(|(_, gate)| gate);
    let stream = futures::stream::iter(chunks.into_iter().enumerate()).then(move |(i, chunk)| {
        let gate = gate.clone().filter(|_| Some(i) == pause_at);
        async move {
            if let Some(gate) = gate {
                gate.opened().await;
            }
            tokio::time::sleep(CHUNK_DELAY).await;
            Ok::<_, Infallible>(chunk)
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The chunks of an SSE body, and with `pause_before` = Some(n), the index of the first chunk
/// after the n-th event is complete (separator included), where a paused stream waits.
fn sse_chunks(events: &[String], separator: &str, pause_before: Option<usize>) -> (Vec<Bytes>, Option<usize>) {
    if let Some(n) = pause_before {
        // A pause after the last event would never hold anything back: a test bug.
        assert!(n < events.len(), "a paused stream of {} events cannot pause after {n}", events.len());
    }
    let mut chunks = Vec::new();
    let mut carry: Vec<u8> = Vec::new();
    let mut pause_at = None;
    for (i, event) in events.iter().enumerate() {
        if pause_before == Some(i) {
            if !carry.is_empty() {
                chunks.push(Bytes::from(std::mem::take(&mut carry)));
            }
            pause_at = Some(chunks.len());
        }
        let full = format!("data: {event}{separator}").into_bytes();
        // Hold back 1..len-1 bytes of the separator (rotating), so "\r\n\r\n" is cut after its
        // first, second or third byte.
        let hold = 1 + i % separator.len().saturating_sub(1).max(1);
        let split_end = full.len() - hold.min(separator.len());
        let middle = (split_end / 2).max(1);
        let mut first = std::mem::take(&mut carry);
        first.extend_from_slice(&full[..middle]);
        chunks.push(Bytes::from(first));
        chunks.push(Bytes::copy_from_slice(&full[middle..split_end]));
        carry = full[split_end..].to_vec();
    }
    if !carry.is_empty() {
        chunks.push(Bytes::from(carry));
    }
    (chunks, pause_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_concatenate_back() {
        let text = "Go to  Settings → Security, then\nreset.";
        let pieces = split_words(text);
        assert_eq!(pieces.concat(), text);
        assert_eq!(pieces[0], "Go");
        assert!(pieces.len() >= 5);
        assert_eq!(split_words("one"), ["one"]);
        assert!(split_words("").is_empty());
    }

    #[test]
    fn sse_chunks_split_events_and_separators() {
        let events = vec!["{\"a\":\"é\"}".to_string(), "{\"b\":2}".to_string(), "{\"c\":3}".to_string()];
        let (chunks, pause) = sse_chunks(&events, "\r\n\r\n", None);
        assert_eq!(pause, None);
        let joined: Vec<u8> = chunks.iter().flat_map(|c| c.to_vec()).collect();
        assert_eq!(joined, b"data: {\"a\":\"\xC3\xA9\"}\r\n\r\ndata: {\"b\":2}\r\n\r\ndata: {\"c\":3}\r\n\r\n");
        assert!(chunks.len() >= 6);
        // No chunk but the last ends with a complete separator.
        assert!(chunks[..chunks.len() - 1].iter().all(|c| !c.ends_with(b"\r\n\r\n")));

        // A pause before the second event comes after the first one's whole separator.
        let (paused, at) = sse_chunks(&events, "\r\n\r\n", Some(1));
        let before: Vec<u8> = paused[..at.expect("a pause")].iter().flat_map(|c| c.to_vec()).collect();
        assert_eq!(before, b"data: {\"a\":\"\xC3\xA9\"}\r\n\r\n");
        assert_eq!(paused.iter().flat_map(|c| c.to_vec()).collect::<Vec<u8>>(), joined);
    }
}
