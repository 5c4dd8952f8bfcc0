//! A fake OpenAI-compatible server (`POST /v1/chat/completions`, plain JSON or SSE ending with
//! `data: [DONE]`), behaving like llama-server: `reasoning_content` next to the answer, usage on
//! the finishing chunk, `exceed_context_size_error`; vLLM's flat error shape is available too.
//!
//! ```no_run
//! # async fn demo() {
//! use supportbot_tests::fakes::{Reply, openai};
//! let server = openai::start([openai::context_too_long(), Reply::text("Hello [1].")]).await;
//! // OpenAiOptions { base_url: server.base_url.clone(), api_key: Some(openai::API_KEY.into()), .. }
//! # let _ = server;
//! # }
//! ```

use axum::response::Response;
use serde_json::{Value, json};

use super::{FakeServer, Finish, Protocol, Recorded, Reply, json_response, sse_response};

/// The key [`start`] expects as `Authorization: Bearer …`.
pub const API_KEY: &str = "sk-fake-openai-key-0123456789";

/// The reasoning the fake puts in `reasoning_content` (a client must not show it).
pub const REASONING: &str = "(fake reasoning: the user wants a password reset)";

/// Starts a fake expecting `Authorization: Bearer API_KEY`; base URL `http://127.0.0.1:PORT/v1`.
pub async fn start(script: impl IntoIterator<Item = Reply>) -> FakeServer {
    start_with_key(Some(API_KEY), script).await
}

/// Starts a fake expecting `key`, or accepting any request when `None` (like Ollama).
pub async fn start_with_key(key: Option<&str>, script: impl IntoIterator<Item = Reply>) -> FakeServer {
    super::spawn(Protocol { base_path: "/v1", check, render }, key.map(str::to_string), script).await
}

/// An error in the OpenAI shape `{"error": {"message", "type", "param", "code"}}`.
pub fn error(status: u16, kind: &str, message: &str) -> Reply {
    Reply::json(status, json!({"error": {"message": message, "type": kind, "param": null, "code": status}}))
}

/// 429 with `Retry-After: retry_after` (seconds, e.g. `"0.05"` or `"30"`).
pub fn rate_limited(retry_after: &str) -> Reply {
    Reply::Http {
        status: 429,
        headers: vec![("retry-after".into(), retry_after.into())],
        body: json!({"error": {"message": "Rate limit reached for requests", "type": "rate_limit_error",
            "param": null, "code": 429}})
        .to_string(),
    }
}

/// 500 `server_error`.
pub fn server_error() -> Reply {
    error(500, "server_error", "Internal server error")
}

/// 503 with vLLM's flat shape.
pub fn unavailable_flat() -> Reply {
    Reply::json(
        503,
        json!({"object": "error", "message": "The server is overloaded", "type": "ServiceUnavailable",
        "param": null, "code": 503}),
    )
}

/// 400 `invalid_request_error` with `message`.
pub fn bad_request(message: &str) -> Reply {
    error(400, "invalid_request_error", message)
}

/// 400 in vLLM's old flat shape `{"object":"error","message",...}`.
pub fn bad_request_flat(message: &str) -> Reply {
    Reply::json(
        400,
        json!({"object": "error", "message": message, "type": "BadRequestError", "param": null,
        "code": 400}),
    )
}

/// llama-server's context overflow: 400 `exceed_context_size_error`.
pub fn context_too_long() -> Reply {
    context_too_long_with_status(400)
}

/// The same with another status (older llama-server builds used 500).
pub fn context_too_long_with_status(status: u16) -> Reply {
    Reply::json(
        status,
        json!({"error": {"code": status, "type": "exceed_context_size_error",
        "message": "request (4390 tokens) exceeds the available context size (4096 tokens), try increasing it",
        "n_prompt_tokens": 4390, "n_ctx": 4096}}),
    )
}

/// vLLM's context overflow in its flat error shape.
pub fn context_too_long_vllm() -> Reply {
    bad_request_flat(
        "This model's maximum context length is 2048 tokens. However, you requested 4390 tokens (4390 in the messages, 0 in the completion). Please reduce the length of the messages or completion.",
    )
}

/// The answer is filtered (`finish_reason: content_filter`, no content).
pub fn content_filter() -> Reply {
    Reply::Answer { pieces: Vec::new(), finish: Finish::Blocked }
}

/// `pieces`, then an in-band `{"error": {...}}` chunk (status stays 200).
pub fn mid_stream_error<I: IntoIterator<Item = &'static str>>(pieces: I) -> Reply {
    Reply::MidStreamError {
        pieces: pieces.into_iter().map(str::to_string).collect(),
        error: json!({"code": 500, "message": "an error was encountered while running the model", "type": "server_error"}),
    }
}

/// A 200 whose body is not valid JSON.
pub fn malformed() -> Reply {
    Reply::Malformed
}

fn check(request: &Recorded, key: Option<&str>) -> Option<Response> {
    let refuse = |status: u16, kind: &str, message: &str| {
        Some(json_response(status, &json!({"error": {"code": status, "message": message, "type": kind}})))
    };
    if request.path.split('?').next() != Some("/v1/chat/completions") {
        return refuse(404, "not_found_error", &format!("File Not Found: {}", request.path));
    }
    if request.method != "POST" {
        return refuse(405, "invalid_request_error", "method not allowed");
    }
    if let Some(expected) = key
        && request.header("authorization") != Some(format!("Bearer {expected}").as_str())
    {
        return refuse(401, "authentication_error", "Invalid API Key");
    }
    let messages = request.body.get("messages").and_then(Value::as_array);
    let valid = messages.is_some_and(|m| {
        !m.is_empty()
            && m.iter().all(|m| {
                matches!(m.get("role").and_then(Value::as_str), Some("system" | "user" | "assistant"))
                    && m.get("content").is_some_and(Value::is_string)
            })
    });
    if !valid {
        return refuse(400, "invalid_request_error", "'messages' must be a non-empty list of {role, content}");
    }
    None
}

fn finish_reason(finish: Finish) -> Option<&'static str> {
    match finish {
        Finish::Stop => Some("stop"),
        Finish::Length => Some("length"),
        Finish::Blocked => Some("content_filter"),
        Finish::Missing => None,
    }
}

fn chunk(model: &str, delta: Value, finish: Option<&str>) -> String {
    let mut chunk = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000,
        "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    if finish.is_some() {
        // llama-server puts usage (and timings) on the finishing chunk.
        chunk["usage"] = json!({"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49});
    }
    chunk.to_string()
}

fn render(request: &Recorded, reply: Reply) -> Response {
    let model = request.body.get("model").and_then(Value::as_str).unwrap_or("fake-model");
    let stream = request.body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    match reply {
        Reply::Answer { pieces, finish } => {
            let reason = finish_reason(finish);
            if !stream {
                let content = if finish == Finish::Blocked { Value::Null } else { json!(pieces.concat()) };
                return json_response(
                    200,
                    &json!({"id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000,
                        "model": model, "choices": [{"index": 0, "finish_reason": reason,
                        "message": {"role": "assistant", "content": content, "reasoning_content": REASONING}}],
                        "usage": {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49}}),
                );
            }
            let mut events = vec![
                chunk(model, json!({"role": "assistant", "content": ""}), None),
                chunk(model, json!({"reasoning_content": REASONING}), None),
                chunk(model, json!({"content": null}), None),
            ];
            events.extend(pieces.iter().map(|p| chunk(model, json!({"content": p}), None)));
            if let Some(reason) = reason {
                events.push(chunk(model, json!({}), Some(reason)));
                events.push("[DONE]".to_string());
            }
            sse_response(&events, "\n\n")
        }
        Reply::MidStreamError { pieces, error } => {
            if !stream {
                let code = error.get("code").and_then(Value::as_u64).and_then(|c| u16::try_from(c).ok()).unwrap_or(500);
                return json_response(code, &json!({"error": error}));
            }
            let mut events: Vec<String> = pieces.iter().map(|p| chunk(model, json!({"content": p}), None)).collect();
            events.push(json!({"error": error}).to_string());
            sse_response(&events, "\n\n")
        }
        Reply::Json { status, body } => {
            if stream && status == 200 {
                sse_response(&[body.to_string(), "[DONE]".to_string()], "\n\n")
            } else {
                json_response(status, &body)
            }
        }
        Reply::Http { status, headers, body } => super::http_response(status, &headers, body),
        Reply::Malformed => {
            if stream {
                sse_response(&["{\"choices\": [{\"delta\": {\"content\": \"Go".to_string()], "\n\n")
            } else {
                super::http_response(200, &[], "{\"choices\": [{\"message\": ".to_string())
            }
        }
        Reply::Slow { then, .. } | Reply::Held { then, .. } | Reply::PausedStream { then, .. } => {
            render(request, *then)
        }
    }
}
