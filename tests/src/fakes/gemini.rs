//! A fake Gemini REST API: `POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse` (events separated by `\r\n\r\n`, as Google sends them), the
//! `x-goog-api-key` header checked, errors in Google's `{"error":{code,message,status,details}}`
//! shape.
//!
//! ```no_run
//! # async fn demo() {
//! use supportbot_tests::fakes::{Reply, gemini};
//! let server = gemini::start([gemini::internal_error(), Reply::text("Hello [1].")]).await;
//! // GeminiOptions { base_url: server.base_url.clone(), api_key: gemini::API_KEY.into(), .. }
//! # let _ = server;
//! # }
//! ```

use axum::response::Response;
use serde_json::{Value, json};

use super::{FakeServer, Finish, Protocol, Recorded, Reply, json_response, sse_response};

/// The key [`start`] expects in `x-goog-api-key`.
pub const API_KEY: &str = "fake-gemini-key-0123456789";

/// The thought summary the fake puts before every answer (a client must not show it).
pub const THOUGHT: &str = "(fake thought: the user wants a password reset)";

/// Starts a fake expecting [`API_KEY`]; base URL `http://127.0.0.1:PORT` (no version).
pub async fn start(script: impl IntoIterator<Item = Reply>) -> FakeServer {
    start_with_key(API_KEY, script).await
}

/// Starts a fake expecting `key`.
pub async fn start_with_key(key: &str, script: impl IntoIterator<Item = Reply>) -> FakeServer {
    super::spawn(Protocol { base_path: "", check, render }, Some(key.to_string()), script).await
}

/// A Google error body.
pub fn error_body(code: u16, status: &str, message: &str, details: Vec<Value>) -> Value {
    json!({"error": {"code": code, "message": message, "status": status, "details": details}})
}

fn error(code: u16, status: &str, message: &str, details: Vec<Value>) -> Reply {
    Reply::Json { status: code, body: error_body(code, status, message, details) }
}

/// 429 RESOURCE_EXHAUSTED with a per-minute `QuotaFailure` and `RetryInfo.retryDelay` set to
/// `delay` (a protobuf duration such as `"0.05s"` or `"45.837906927s"`).
pub fn rate_limited(delay: &str) -> Reply {
    error(
        429,
        "RESOURCE_EXHAUSTED",
        &format!(
            "You exceeded your current quota, please check your plan and billing details. Please retry in {delay}."
        ),
        vec![
            json!({"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                "quotaDimensions": {"location": "global", "model": "fake"}, "quotaValue": "10"}]}),
            json!({"@type": "type.googleapis.com/google.rpc.Help", "links": [{
                "description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]}),
            json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}),
        ],
    )
}

/// 429 with a per-day quota violation (waiting `delay` would not help today).
pub fn daily_quota_exhausted(delay: &str) -> Reply {
    error(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details.",
        vec![
            json!({"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier", "quotaValue": "250"}]}),
            json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}),
        ],
    )
}

/// 500 INTERNAL.
pub fn internal_error() -> Reply {
    error(
        500,
        "INTERNAL",
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
        vec![],
    )
}

/// 503 UNAVAILABLE ("The model is overloaded").
pub fn overloaded() -> Reply {
    error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.", vec![])
}

/// 400 INVALID_ARGUMENT with `message`.
pub fn invalid_argument(message: &str) -> Reply {
    error(400, "INVALID_ARGUMENT", message, vec![])
}

/// 400: the prompt exceeds the model's context window.
pub fn input_too_long() -> Reply {
    invalid_argument("The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).")
}

/// The answer is blocked (`finishReason: SAFETY`, no content).
pub fn safety_block() -> Reply {
    Reply::Answer { pieces: Vec::new(), finish: Finish::Blocked }
}

/// The prompt is blocked: no candidates, `promptFeedback.blockReason: SAFETY`.
pub fn prompt_blocked() -> Reply {
    Reply::json(
        200,
        json!({"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}]},
            "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12}, "modelVersion": "fake"}),
    )
}

/// Thinking used the whole budget: `finishReason: MAX_TOKENS` and no content.
pub fn max_tokens_without_text() -> Reply {
    Reply::Answer { pieces: Vec::new(), finish: Finish::Length }
}

/// `pieces`, then an in-band `{"error": {...}}` event (503 UNAVAILABLE).
pub fn mid_stream_error<I: IntoIterator<Item = &'static str>>(pieces: I) -> Reply {
    Reply::MidStreamError {
        pieces: pieces.into_iter().map(str::to_string).collect(),
        error: json!({"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}),
    }
}

/// A 200 whose body is not valid JSON.
pub fn malformed() -> Reply {
    Reply::Malformed
}

/// What a request asks for: (model, streaming).
fn endpoint(request: &Recorded) -> Option<(&str, bool)> {
    let path = request.path.split('?').next().unwrap_or_default();
    let (model, action) = path.strip_prefix("/v1beta/models/")?.split_once(':')?;
    match action {
        "generateContent" => Some((model, false)),
        "streamGenerateContent" => Some((model, true)),
        _ => None,
    }
}

fn check(request: &Recorded, key: Option<&str>) -> Option<Response> {
    let refuse = |code, status, message: &str| Some(json_response(code, &error_body(code, status, message, vec![])));
    let Some((_, stream)) = endpoint(request) else {
        return refuse(404, "NOT_FOUND", &format!("{} {} is not found on the fake", request.method, request.path));
    };
    if request.method != "POST" {
        return refuse(405, "INVALID_ARGUMENT", "method not allowed");
    }
    match (key, request.header("x-goog-api-key")) {
        (Some(_), None) => {
            return refuse(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
            );
        }
        (Some(expected), Some(given)) if given != expected => {
            return Some(json_response(
                400,
                &error_body(
                    400,
                    "INVALID_ARGUMENT",
                    "API key not valid. Please pass a valid API key.",
                    vec![json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com"})],
                ),
            ));
        }
        _ => {}
    }
    if stream && !request.path.contains("alt=sse") {
        return refuse(400, "INVALID_ARGUMENT", "the fake streams only with alt=sse");
    }
    let contents = request.body.get("contents").and_then(Value::as_array);
    let valid = contents.is_some_and(|c| {
        !c.is_empty()
            && c.iter().all(|m| {
                matches!(m.get("role").and_then(Value::as_str), Some("user" | "model"))
                    && m.get("parts").and_then(Value::as_array).is_some_and(|p| !p.is_empty())
            })
    });
    if !valid {
        return refuse(400, "INVALID_ARGUMENT", "contents must be a non-empty list of user/model messages with parts");
    }
    None
}

fn finish_reason(finish: Finish) -> Option<&'static str> {
    match finish {
        Finish::Stop => Some("STOP"),
        Finish::Length => Some("MAX_TOKENS"),
        Finish::Blocked => Some("SAFETY"),
        Finish::Missing => None,
    }
}

fn response(parts: Vec<Value>, finish: Option<&str>, model: &str) -> Value {
    let mut candidate = json!({"index": 0});
    if !parts.is_empty() {
        candidate["content"] = json!({"role": "model", "parts": parts});
    }
    if let Some(reason) = finish {
        candidate["finishReason"] = json!(reason);
        candidate["safetyRatings"] = json!([{"category": "HARM_CATEGORY_HARASSMENT",
            "probability": if reason == "SAFETY" { "HIGH" } else { "NEGLIGIBLE" }}]);
    }
    let mut body = json!({"candidates": [candidate], "modelVersion": model, "responseId": "fake-response"});
    if finish.is_some() {
        body["usageMetadata"] = json!({"promptTokenCount": 42, "candidatesTokenCount": 7, "thoughtsTokenCount": 5,
            "totalTokenCount": 54});
    }
    body
}

fn thought() -> Value {
    json!({"text": THOUGHT, "thought": true})
}

fn render(request: &Recorded, reply: Reply) -> Response {
    let (model, stream) = endpoint(request).unwrap_or(("unknown", false));
    match reply {
        Reply::Answer { pieces, finish } => {
            let reason = finish_reason(finish);
            if !stream {
                let mut parts = Vec::new();
                if finish != Finish::Blocked {
                    parts.push(thought());
                    if !pieces.is_empty() {
                        parts.push(json!({"text": pieces.concat()}));
                    }
                }
                if parts.len() == 1 && finish == Finish::Length {
                    parts.clear(); // MAX_TOKENS without text comes without content at all
                }
                return json_response(200, &response(parts, reason, model));
            }
            // A thinking model first sends a chunk with only a thought, then the text deltas;
            // the finish reason and usage come on the last chunk.
            let mut events = vec![response(vec![thought()], None, model)];
            for (i, piece) in pieces.iter().enumerate() {
                let last = i + 1 == pieces.len() && finish != Finish::Blocked;
                events.push(response(vec![json!({"text": piece})], if last { reason } else { None }, model));
            }
            if (pieces.is_empty() || finish == Finish::Blocked) && reason.is_some() {
                events.push(response(Vec::new(), reason, model));
            }
            sse_response(&events.iter().map(Value::to_string).collect::<Vec<_>>(), "\r\n\r\n")
        }
        Reply::MidStreamError { pieces, error } => {
            if !stream {
                let code = error.get("code").and_then(Value::as_u64).and_then(|c| u16::try_from(c).ok()).unwrap_or(500);
                return json_response(code, &json!({"error": error}));
            }
            let mut events: Vec<String> =
                pieces.iter().map(|p| response(vec![json!({"text": p})], None, model).to_string()).collect();
            events.push(json!({"error": error}).to_string());
            sse_response(&events, "\r\n\r\n")
        }
        Reply::Json { status, body } => {
            if stream && status == 200 {
                sse_response(&[body.to_string()], "\r\n\r\n")
            } else {
                json_response(status, &body)
            }
        }
        Reply::Http { status, headers, body } => super::http_response(status, &headers, body),
        Reply::Malformed => {
            if stream {
                sse_response(&["{\"candidates\": [{\"content\": {\"parts\": [{\"te".to_string()], "\r\n\r\n")
            } else {
                super::http_response(200, &[], "{\"candidates\": [{\"content\": {\"parts\": [{\"te".to_string())
            }
        }
        Reply::Slow { then, .. } | Reply::Held { then, .. } | Reply::PausedStream { then, .. } => {
            render(request, *then)
        }
    }
}
