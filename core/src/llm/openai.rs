//! OpenAI-compatible chat completions (`POST {base}/chat/completions`, plain or streamed as SSE)
//! as served by llama.cpp's `llama-server`, vLLM, Ollama, LM Studio and OpenAI itself, including
//! their different error shapes.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::{self, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

use super::retry::{self, Failure, RetryPolicy};
use super::{FinishReason, Generation, LanguageModel, ModelError, Prompt, Role, TextStream, sse};

/// Ollama's OpenAI-compatible endpoint on this machine.
pub const DEFAULT_BASE_URL: &str = "http://localhost:11434/v1";

/// How to reach an OpenAI-compatible server.
#[derive(Clone)]
pub struct OpenAiOptions {
    /// Base URL including `/v1`, as OpenAI's SDKs take it: `http://localhost:11434/v1`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer …` when set.
    pub api_key: Option<String>,
    pub model: String,
    /// Longest wait for a complete answer; when streaming, for the response to start and then
    /// between two chunks.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Context window in tokens (the server's `n_ctx` / `max_model_len`).
    pub context_tokens: usize,
}

impl Default for OpenAiOptions {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_string(),
            api_key: None,
            model: "default".to_string(),
            timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            context_tokens: 8192,
        }
    }
}

impl fmt::Debug for OpenAiOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiOptions")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("context_tokens", &self.context_tokens)
            .finish()
    }
}

/// A model behind an OpenAI-compatible chat-completions endpoint.
pub struct OpenAiModel {
    client: reqwest::Client,
    options: OpenAiOptions,
    url: String,
}

impl fmt::Debug for OpenAiModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiModel").field("options", &self.options).finish_non_exhaustive()
    }
}

impl OpenAiModel {
    /// Checks the options and builds the HTTP client. Fails with [`ModelError::Unavailable`] when
    /// the base URL is not a URL or the key cannot be sent in a header.
    pub fn new(options: OpenAiOptions) -> Result<Self, ModelError> {
        let base = options.base_url.trim().trim_end_matches('/').to_string();
        reqwest::Url::parse(&base)
            .map_err(|e| ModelError::Unavailable(format!("openai: invalid base_url {base:?}: {e}")))?;
        let mut headers = HeaderMap::new();
        if let Some(key) = options.api_key.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                ModelError::Unavailable("openai: the API key contains characters not allowed in a header".into())
            })?;
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(options.timeout)
            .read_timeout(options.timeout)
            .build()
            .map_err(|e| ModelError::Unavailable(format!("openai: cannot build the HTTP client: {e}")))?;
        let url = format!("{base}/chat/completions");
        Ok(Self { client, options, url })
    }

    fn request_body(&self, prompt: &Prompt, stream: bool) -> Result<Bytes, ModelError> {
        let mut messages = Vec::with_capacity(prompt.messages.len() + 1);
        if !prompt.system.is_empty() {
            messages.push(ChatMessage { role: "system", content: &prompt.system });
        }
        for m in &prompt.messages {
            let role = if m.role == Role::User { "user" } else { "assistant" };
            messages.push(ChatMessage { role, content: &m.text });
        }
        if prompt.messages.is_empty() {
            messages.push(ChatMessage { role: "user", content: &prompt.question });
        }
        let request = ChatRequest {
            model: &self.options.model,
            messages,
            max_tokens: prompt.max_output_tokens,
            temperature: prompt.temperature,
            stream,
        };
        serde_json::to_vec(&request)
            .map(Bytes::from)
            .map_err(|e| ModelError::Malformed(format!("cannot encode the request: {e}")))
    }

    fn post(&self, body: &Bytes) -> reqwest::RequestBuilder {
        self.client.post(&self.url).header(header::CONTENT_TYPE, "application/json").body(body.clone())
    }

    fn key(&self) -> Option<&str> {
        self.options.api_key.as_deref().map(str::trim)
    }

    async fn generate_once(&self, body: &Bytes) -> Result<Generation, Failure> {
        let timeout = self.options.timeout;
        let response =
            self.post(body).timeout(timeout).send().await.map_err(|e| retry::transport_error(&e, timeout))?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let bytes = response.bytes().await.map_err(|e| retry::transport_error(&e, timeout))?;
        if !(200..300).contains(&status) {
            return Err(classify_error_body(status, retry_after, &bytes));
        }
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            ModelError::Malformed(format!("server answered invalid JSON ({e}): {}", retry::snippet(&bytes, 200)))
        })?;
        // LM Studio has reported errors (context overflow) with status 200.
        if let Some(failure) = error_in(status, &value) {
            return Err(failure);
        }
        let response: ChatResponse = serde_json::from_value(value)
            .map_err(|e| ModelError::Malformed(format!("unexpected chat completion: {e}")))?;
        response.into_generation().map_err(Failure::from)
    }

    async fn start_stream_once(&self, body: &Bytes) -> Result<reqwest::Response, Failure> {
        let timeout = self.options.timeout;
        let send = self.post(body).header(header::ACCEPT, "text/event-stream").send();
        let response = match tokio::time::timeout(timeout, send).await {
            Err(_) => return Err(ModelError::Timeout(timeout).into()),
            Ok(Err(e)) => return Err(retry::transport_error(&e, timeout).into()),
            Ok(Ok(response)) => response,
        };
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let retry_after = retry_after(response.headers());
        let bytes = response.bytes().await.map_err(|e| retry::transport_error(&e, timeout))?;
        Err(classify_error_body(status, retry_after, &bytes))
    }
}

#[async_trait]
impl LanguageModel for OpenAiModel {
    fn name(&self) -> &str {
        "openai"
    }

    fn context_tokens(&self) -> usize {
        self.options.context_tokens
    }

    async fn generate(&self, prompt: &Prompt) -> Result<Generation, ModelError> {
        let body = self.request_body(prompt, false)?;
        tracing::debug!(model = %self.options.model, url = %self.url, "openai chat completion");
        // Failures are redacted before the retry loop logs them.
        self.options
            .retry
            .run("openai", || async { self.generate_once(&body).await.map_err(|f| f.redacted(self.key())) })
            .await
    }

    async fn generate_stream(&self, prompt: &Prompt) -> Result<TextStream, ModelError> {
        let body = self.request_body(prompt, true)?;
        tracing::debug!(model = %self.options.model, url = %self.url, "openai chat completion (stream)");
        // Retries cover the request up to the response headers only: once text may have been
        // shown, a failure is reported as an item and the caller decides.
        let response = self
            .options
            .retry
            .run("openai", || async { self.start_stream_once(&body).await.map_err(|f| f.redacted(self.key())) })
            .await?;
        let timeout = self.options.timeout;
        let events = sse::data_events(response.bytes_stream(), move |e| retry::transport_error(&e, timeout));
        let secret = self.key().map(str::to_string);
        Ok(Box::pin(text_pieces(events).map(move |item| item.map_err(|e| retry::redact(e, secret.as_deref())))))
    }
}

/// The text of an OpenAI-compatible stream, which ends with `data: [DONE]`.
fn text_pieces(
    events: impl Stream<Item = Result<String, ModelError>> + Send + 'static,
) -> impl Stream<Item = Result<String, ModelError>> + Send {
    let parse = |data: &str| {
        let data = data.trim();
        if data == "[DONE]" {
            return Ok(sse::Piece::End);
        }
        if data.is_empty() {
            return Ok(sse::Piece::Nothing);
        }
        let (text, finish) = parse_stream_event(data)?;
        Ok(sse::Piece::Text(text, finish))
    };
    sse::text_pieces(events, parse, |saw_text, finish| match (saw_text, finish) {
        (true, Some(_)) => None,
        (_, None) => Some(ModelError::Transient("stream ended before [DONE]".into())),
        (false, Some(reason)) => Some(ModelError::Malformed(format!("no text ({reason})"))),
    })
}

/// The content delta and finish reason of one chunk.
fn parse_stream_event(data: &str) -> Result<(String, Option<String>), ModelError> {
    let value: serde_json::Value = serde_json::from_str(data).map_err(|e| {
        ModelError::Malformed(format!("server sent an invalid event ({e}): {}", retry::snippet(data.as_bytes(), 200)))
    })?;
    if let Some(failure) = error_in(0, &value) {
        return Err(failure.error);
    }
    let chunk: ChatResponse =
        serde_json::from_value(value).map_err(|e| ModelError::Malformed(format!("unexpected stream chunk: {e}")))?;
    let Some(choice) = chunk.choices.into_iter().next() else {
        return Ok((String::new(), None)); // a usage-only chunk
    };
    if choice.finish_reason.as_deref() == Some("content_filter") {
        return Err(ModelError::Blocked("content_filter".into()));
    }
    let text = choice.delta.and_then(|d| d.content).unwrap_or_default();
    Ok((text, choice.finish_reason))
}

/// The error a body carries, in any of the shapes servers use: `{"error":{"message","type",
/// "code"}}` (OpenAI, vLLM ≥ 0.10.1, llama-server), `{"error":"text"}` (Ollama) or the flat
/// `{"object":"error","message","type","code"}` (older vLLM). `status` is used when the body
/// gives no numeric code.
fn error_in(status: u16, value: &serde_json::Value) -> Option<Failure> {
    let (message, kind, code) = match value.get("error") {
        Some(serde_json::Value::Object(e)) => (e.get("message"), e.get("type"), e.get("code")),
        Some(text @ serde_json::Value::String(_)) => (Some(text), None, None),
        Some(serde_json::Value::Null) | None if value.get("object").and_then(|o| o.as_str()) == Some("error") => {
            (value.get("message"), value.get("type"), value.get("code"))
        }
        _ => return None,
    };
    let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let (message, kind) = (text(message), text(kind));
    let code = code.and_then(|c| c.as_u64()).and_then(|c| u16::try_from(c).ok()).filter(|c| (400..600).contains(c));
    let status = if (200..300).contains(&status) || status == 0 { code.unwrap_or(500) } else { status };
    let described = if kind.is_empty() { message } else { format!("{kind}: {message}") };
    Some(retry::classify_http(status, &described, None))
}

/// Classifies a non-2xx answer from its status, `Retry-After` and body.
fn classify_error_body(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Failure {
    let failure = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| error_in(status, &value))
        .unwrap_or_else(|| retry::classify_http(status, &retry::snippet(body, 300), None));
    match failure.error {
        ModelError::RateLimited { retry_after: None } => ModelError::RateLimited { retry_after }.into(),
        _ => failure,
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not used by model servers).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: f64 = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    if seconds.is_finite() && seconds >= 0.0 { Duration::try_from_secs_f64(seconds).ok() } else { None }
}

// Wire types; they stay inside this module.

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<ChatMessage<'a>>,
    max_tokens: u32,
    temperature: f32,
    stream: bool,
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'a str,
    content: &'a str,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ChatResponse {
    choices: Vec<Choice>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Choice {
    message: Option<ChoiceMessage>,
    delta: Option<ChoiceMessage>,
    finish_reason: Option<String>,
}

/// `reasoning_content` (thinking models on llama-server/vLLM) is deliberately not read.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ChoiceMessage {
    content: Option<String>,
}

impl ChatResponse {
    fn into_generation(self) -> Result<Generation, ModelError> {
        let Some(choice) = self.choices.into_iter().next() else {
            return Err(ModelError::Malformed("no choices".into()));
        };
        let reason = choice.finish_reason.unwrap_or_default();
        if reason == "content_filter" {
            return Err(ModelError::Blocked("content_filter".into()));
        }
        let text = choice.message.and_then(|m| m.content).unwrap_or_default();
        if text.is_empty() {
            let reason = if reason.is_empty() { "no finish_reason" } else { reason.as_str() };
            return Err(ModelError::Malformed(format!("no text ({reason})")));
        }
        let finish = match reason.as_str() {
            "stop" | "" => FinishReason::Stop,
            "length" => FinishReason::Length,
            _ => FinishReason::Other,
        };
        Ok(Generation { text, finish })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::llm::Message;

    fn classify(status: u16, body: serde_json::Value) -> Failure {
        classify_error_body(status, None, body.to_string().as_bytes())
    }

    #[test]
    fn context_overflow_in_every_shape() {
        let llama = json!({"error": {"code": 400, "type": "exceed_context_size_error",
            "message": "request (4390 tokens) exceeds the available context size (4096 tokens), try increasing it",
            "n_prompt_tokens": 4390, "n_ctx": 4096}});
        assert!(matches!(classify(400, llama.clone()).error, ModelError::ContextTooLong(_)));
        assert!(matches!(classify(500, llama).error, ModelError::ContextTooLong(_)));
        let typed_only = json!({"error": {"code": 500, "type": "exceed_context_size_error", "message": "oops"}});
        assert!(matches!(classify(500, typed_only).error, ModelError::ContextTooLong(_)));
        let vllm_flat = json!({"object": "error", "type": "BadRequestError", "param": null, "code": 400,
            "message": "This model's maximum context length is 2048 tokens. However, you requested 3000 tokens."});
        assert!(matches!(classify(400, vllm_flat).error, ModelError::ContextTooLong(_)));
        let lm_studio = json!({"error": "Trying to keep the first 5000 tokens when context window overflows"});
        assert!(matches!(error_in(200, &lm_studio).map(|f| f.error), Some(ModelError::ContextTooLong(_))));
    }

    #[test]
    fn status_classes() {
        let body = |code: u16| json!({"error": {"message": "m", "type": "t", "code": code}});
        assert!(matches!(classify(400, body(400)).error, ModelError::Rejected(_)));
        assert!(matches!(classify(401, body(401)).error, ModelError::Rejected(_)));
        assert!(matches!(classify(404, json!({"error": "model 'x' not found"})).error, ModelError::Rejected(_)));
        assert!(matches!(classify(500, body(500)).error, ModelError::Transient(_)));
        assert!(matches!(classify(503, json!({"object": "error", "message": "busy"})).error, ModelError::Transient(_)));
        assert!(matches!(classify_error_body(502, None, b"Bad Gateway").error, ModelError::Transient(_)));
        let limited = classify_error_body(429, Some(Duration::from_secs(2)), b"{}");
        assert_eq!(limited.error, ModelError::RateLimited { retry_after: Some(Duration::from_secs(2)) });
    }

    #[test]
    fn retry_after_header_in_seconds() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("1.5"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn non_stream_answers() {
        let g = |v: serde_json::Value| serde_json::from_value::<ChatResponse>(v).unwrap().into_generation();
        let ok = g(json!({"choices": [{"message": {"role": "assistant", "content": "Hi", "reasoning_content": "hmm"},
            "finish_reason": "stop"}]}));
        assert_eq!(ok, Ok(Generation { text: "Hi".into(), finish: FinishReason::Stop }));
        let cut = g(json!({"choices": [{"message": {"content": "H"}, "finish_reason": "length"}]}));
        assert_eq!(cut.map(|g| g.finish), Ok(FinishReason::Length));
        let blocked = g(json!({"choices": [{"message": {"content": null}, "finish_reason": "content_filter"}]}));
        assert!(matches!(blocked, Err(ModelError::Blocked(_))));
        let empty = g(json!({"choices": [{"message": {"content": ""}, "finish_reason": "length"}]}));
        assert_eq!(empty, Err(ModelError::Malformed("no text (length)".into())));
        assert!(matches!(g(json!({"choices": []})), Err(ModelError::Malformed(_))));
    }

    #[test]
    fn stream_chunks() {
        assert_eq!(
            parse_stream_event(r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#),
            Ok((String::new(), None))
        );
        assert_eq!(parse_stream_event(r#"{"choices":[{"delta":{"content":null}}]}"#), Ok((String::new(), None)));
        assert_eq!(
            parse_stream_event(r#"{"choices":[{"delta":{"reasoning_content":"x"}}]}"#),
            Ok((String::new(), None))
        );
        assert_eq!(parse_stream_event(r#"{"choices":[{"delta":{"content":"Go"}}]}"#), Ok(("Go".into(), None)));
        assert_eq!(
            parse_stream_event(r#"{"choices":[{"delta":{},"finish_reason":"stop"}],"usage":{"total_tokens":3}}"#),
            Ok((String::new(), Some("stop".into())))
        );
        assert_eq!(parse_stream_event(r#"{"choices":[],"usage":{"total_tokens":3}}"#), Ok((String::new(), None)));
        assert!(matches!(parse_stream_event(r#"{"error":{"message":"boom"}}"#), Err(ModelError::Transient(_))));
        assert!(matches!(
            parse_stream_event(r#"{"choices":[{"delta":{},"finish_reason":"content_filter"}]}"#),
            Err(ModelError::Blocked(_))
        ));
    }

    #[test]
    fn request_body_roles_and_auth() {
        let model =
            OpenAiModel::new(OpenAiOptions { api_key: Some("sk-secret".into()), ..OpenAiOptions::default() }).unwrap();
        let prompt = Prompt {
            system: "rules".into(),
            messages: vec![
                Message { role: Role::User, text: "hi".into() },
                Message { role: Role::Assistant, text: "hello".into() },
                Message { role: Role::User, text: "q".into() },
            ],
            passages: vec![],
            question: "q".into(),
            max_output_tokens: 64,
            temperature: 0.5,
        };
        let body: serde_json::Value = serde_json::from_slice(&model.request_body(&prompt, true).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"model": "default", "messages": [
                {"role": "system", "content": "rules"}, {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"}, {"role": "user", "content": "q"}],
                "max_tokens": 64, "temperature": 0.5, "stream": true})
        );
        assert!(!format!("{model:?}").contains("sk-secret"));
    }
}
