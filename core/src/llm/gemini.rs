//! Google Gemini over its REST API (`generateContent`, and `streamGenerateContent?alt=sse`),
//! authenticated with the `x-goog-api-key` header; the key never appears in URLs, logs, errors or
//! `Debug` output.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::{self, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

use super::retry::{self, Failure, RetryPolicy};
use super::{FinishReason, Generation, LanguageModel, ModelError, Prompt, Role, TextStream, sse};

/// The public Gemini API endpoint (without the API version).
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";

/// How to reach a Gemini model.
#[derive(Clone)]
pub struct GeminiOptions {
    /// Base URL without the version, e.g. `https://generativelanguage.googleapis.com`.
    pub base_url: String,
    pub api_key: String,
    /// Model name, e.g. `gemini-3.5-flash-lite` (a `models/` prefix is accepted).
    pub model: String,
    /// Longest wait for a complete answer; when streaming, for the response to start and then
    /// between two chunks.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// `thinkingConfig.thinkingLevel` (`minimal`, `low`, `medium`, `high`); not sent when `None`.
    pub thinking_level: Option<String>,
    /// Context window in tokens.
    pub context_tokens: usize,
}

impl Default for GeminiOptions {
    /// Everything but the key (which [`GeminiModel::new`] requires).
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_string(),
            api_key: String::new(),
            model: "gemini-3.5-flash-lite".to_string(),
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            thinking_level: None,
            context_tokens: 1_000_000,
        }
    }
}

impl fmt::Debug for GeminiOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeminiOptions")
            .field("base_url", &self.base_url)
            .field("api_key", &"[redacted]")
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("thinking_level", &self.thinking_level)
            .field("context_tokens", &self.context_tokens)
            .finish()
    }
}

/// A Gemini model behind the REST API.
pub struct GeminiModel {
    client: reqwest::Client,
    options: GeminiOptions,
    generate_url: String,
    stream_url: String,
}

impl fmt::Debug for GeminiModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeminiModel").field("options", &self.options).finish_non_exhaustive()
    }
}

impl GeminiModel {
    /// Checks the options and builds the HTTP client. Fails with [`ModelError::Unavailable`] when
    /// the key or model is missing or the base URL is not a URL.
    pub fn new(options: GeminiOptions) -> Result<Self, ModelError> {
        if options.api_key.trim().is_empty() {
            return Err(ModelError::Unavailable("gemini: no API key configured".into()));
        }
        let model = options.model.trim().trim_start_matches("models/").to_string();
        if model.is_empty() {
            return Err(ModelError::Unavailable("gemini: no model configured".into()));
        }
        let base = options.base_url.trim().trim_end_matches('/').to_string();
        reqwest::Url::parse(&base)
            .map_err(|e| ModelError::Unavailable(format!("gemini: invalid base_url {base:?}: {e}")))?;
        let mut key = HeaderValue::from_str(options.api_key.trim()).map_err(|_| {
            ModelError::Unavailable("gemini: the API key contains characters not allowed in a header".into())
        })?;
        key.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert("x-goog-api-key", key);
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(options.timeout)
            .read_timeout(options.timeout)
            .build()
            .map_err(|e| ModelError::Unavailable(format!("gemini: cannot build the HTTP client: {e}")))?;
        let generate_url = format!("{base}/v1beta/models/{model}:generateContent");
        let stream_url = format!("{base}/v1beta/models/{model}:streamGenerateContent?alt=sse");
        Ok(Self { client, options, generate_url, stream_url })
    }

    fn request_body(&self, prompt: &Prompt) -> Result<Bytes, ModelError> {
        let text_content = |role, text| Content { role, parts: vec![Part { text }] };
        let mut contents: Vec<Content<'_>> = prompt
            .messages
            .iter()
            .map(|m| text_content(Some(if m.role == Role::User { "user" } else { "model" }), m.text.as_str()))
            .collect();
        if contents.is_empty() {
            contents.push(text_content(Some("user"), prompt.question.as_str()));
        }
        let request = GenerateRequest {
            system_instruction: (!prompt.system.is_empty()).then(|| text_content(None, prompt.system.as_str())),
            contents,
            generation_config: GenerationConfig {
                temperature: prompt.temperature,
                max_output_tokens: prompt.max_output_tokens,
                thinking_config: self
                    .options
                    .thinking_level
                    .as_deref()
                    .map(|level| ThinkingConfig { thinking_level: level }),
            },
        };
        serde_json::to_vec(&request)
            .map(Bytes::from)
            .map_err(|e| ModelError::Malformed(format!("cannot encode the request: {e}")))
    }

    fn post(&self, url: &str, body: &Bytes) -> reqwest::RequestBuilder {
        self.client.post(url).header(header::CONTENT_TYPE, "application/json").body(body.clone())
    }

    async fn generate_once(&self, body: &Bytes) -> Result<Generation, Failure> {
        let timeout = self.options.timeout;
        let response = self
            .post(&self.generate_url, body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| retry::transport_error(&e, timeout))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| retry::transport_error(&e, timeout))?;
        if !(200..300).contains(&status) {
            return Err(classify_error_body(status, &bytes));
        }
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            ModelError::Malformed(format!("gemini answered invalid JSON ({e}): {}", retry::snippet(&bytes, 200)))
        })?;
        if let Some(error) = value.get("error") {
            return Err(classify_error_value(status, error));
        }
        let response: GenerateResponse = serde_json::from_value(value)
            .map_err(|e| ModelError::Malformed(format!("unexpected gemini response: {e}")))?;
        response.into_generation().map_err(Failure::from)
    }

    async fn start_stream_once(&self, body: &Bytes) -> Result<reqwest::Response, Failure> {
        let timeout = self.options.timeout;
        let send = self.post(&self.stream_url, body).header(header::ACCEPT, "text/event-stream").send();
        let response = match tokio::time::timeout(timeout, send).await {
            Err(_) => return Err(ModelError::Timeout(timeout).into()),
            Ok(Err(e)) => return Err(retry::transport_error(&e, timeout).into()),
            Ok(Ok(response)) => response,
        };
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let bytes = response.bytes().await.map_err(|e| retry::transport_error(&e, timeout))?;
        Err(classify_error_body(status, &bytes))
    }
}

#[async_trait]
impl LanguageModel for GeminiModel {
    fn name(&self) -> &str {
        "gemini"
    }

    fn context_tokens(&self) -> usize {
        self.options.context_tokens
    }

    async fn generate(&self, prompt: &Prompt) -> Result<Generation, ModelError> {
        let body = self.request_body(prompt)?;
        tracing::debug!(model = %self.options.model, "gemini generateContent");
        // Failures are redacted before the retry loop logs them.
        let key = Some(self.options.api_key.trim());
        self.options
            .retry
            .run("gemini", || async { self.generate_once(&body).await.map_err(|f| f.redacted(key)) })
            .await
    }

    async fn generate_stream(&self, prompt: &Prompt) -> Result<TextStream, ModelError> {
        let body = self.request_body(prompt)?;
        tracing::debug!(model = %self.options.model, "gemini streamGenerateContent");
        // Retries cover the request up to the response headers only: once text may have been
        // shown, a failure is reported as an item and the caller decides.
        let key = Some(self.options.api_key.trim());
        let response = self
            .options
            .retry
            .run("gemini", || async { self.start_stream_once(&body).await.map_err(|f| f.redacted(key)) })
            .await?;
        let timeout = self.options.timeout;
        let events = sse::data_events(response.bytes_stream(), move |e| retry::transport_error(&e, timeout));
        let secret = self.options.api_key.trim().to_string();
        Ok(Box::pin(text_pieces(events).map(move |item| item.map_err(|e| retry::redact(e, Some(&secret))))))
    }
}

/// The text of a Gemini stream. Gemini has no end marker: a stream must carry text and end
/// with a `finishReason`.
fn text_pieces(
    events: impl Stream<Item = Result<String, ModelError>> + Send + 'static,
) -> impl Stream<Item = Result<String, ModelError>> + Send {
    let parse = |data: &str| {
        Ok(match parse_stream_event(data)? {
            None => sse::Piece::Nothing,
            Some(chunk) => sse::Piece::Text(chunk.text, chunk.finish),
        })
    };
    sse::text_pieces(events, parse, |saw_text, finish| match (saw_text, finish) {
        (true, Some(_)) => None,
        (true, None) => Some(ModelError::Transient("gemini stream ended before its finishReason".into())),
        (false, Some(reason)) => Some(ModelError::Malformed(format!("no text ({reason})"))),
        (false, None) => Some(ModelError::Transient("gemini stream ended without any text".into())),
    })
}

/// One event of a stream: `None` for an empty event.
fn parse_stream_event(data: &str) -> Result<Option<Chunk>, ModelError> {
    if data.trim().is_empty() || data.trim() == "[DONE]" {
        return Ok(None);
    }
    let value: serde_json::Value = serde_json::from_str(data).map_err(|e| {
        ModelError::Malformed(format!("gemini sent an invalid event ({e}): {}", retry::snippet(data.as_bytes(), 200)))
    })?;
    if let Some(error) = value.get("error") {
        return Err(classify_error_value(500, error).error);
    }
    let response: GenerateResponse = serde_json::from_value(value)
        .map_err(|e| ModelError::Malformed(format!("unexpected gemini stream event: {e}")))?;
    response.into_chunk().map(Some)
}

/// Classifies a non-2xx answer from its status and body.
fn classify_error_body(status: u16, body: &[u8]) -> Failure {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) if value.get("error").is_some_and(serde_json::Value::is_object) => {
            classify_error_value(status, &value["error"])
        }
        _ => retry::classify_http(status, &retry::snippet(body, 300), None),
    }
}

/// Classifies a Google error object (`{"code","message","status","details":[...]}`): the
/// `RetryInfo` detail gives the rate-limit delay, a per-day `QuotaFailure` means waiting will not
/// help today.
fn classify_error_value(status: u16, error: &serde_json::Value) -> Failure {
    let error: ApiError = serde_json::from_value(error.clone()).unwrap_or_default();
    let status = error.code.filter(|c| (100..600).contains(c)).unwrap_or(status);
    let message =
        if error.status.is_empty() { error.message.clone() } else { format!("{}: {}", error.status, error.message) };
    let is_type =
        |d: &serde_json::Value, name: &str| d.get("@type").and_then(|t| t.as_str()).is_some_and(|t| t.ends_with(name));
    let retry_after = error
        .details
        .iter()
        .filter(|d| is_type(d, "google.rpc.RetryInfo"))
        .find_map(|d| d.get("retryDelay").and_then(|v| v.as_str()).and_then(parse_proto_duration))
        .or_else(|| retry_in_from_message(&error.message));
    let per_day = error.details.iter().filter(|d| is_type(d, "google.rpc.QuotaFailure")).any(|d| {
        d.get("violations").and_then(|v| v.as_array()).is_some_and(|violations| {
            violations.iter().any(|v| v.get("quotaId").and_then(|q| q.as_str()).is_some_and(|q| q.contains("PerDay")))
        })
    });
    let failure = retry::classify_http(status, &message, retry_after);
    if status == 429 && per_day { Failure::permanent(failure.error) } else { failure }
}

/// Parses a protobuf JSON duration such as `"45.837906927s"`.
fn parse_proto_duration(text: &str) -> Option<Duration> {
    let seconds: f64 = text.trim().strip_suffix('s')?.parse().ok()?;
    if seconds.is_finite() && seconds >= 0.0 { Duration::try_from_secs_f64(seconds).ok() } else { None }
}

/// The delay in "... Please retry in 55.576865699s." when no `RetryInfo` came with it.
fn retry_in_from_message(message: &str) -> Option<Duration> {
    let (_, rest) = message.split_once("retry in ")?;
    let end = rest.find('s')?;
    parse_proto_duration(&rest[..=end])
}

fn is_blocking(reason: &str) -> bool {
    matches!(reason, "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "LANGUAGE")
        || ["SAFETY", "PROHIBITED", "BLOCK", "RECITATION"].iter().any(|w| reason.contains(w))
}

// Wire types (camelCase JSON); they stay inside this module.

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerateRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<Content<'a>>,
    contents: Vec<Content<'a>>,
    generation_config: GenerationConfig<'a>,
}

#[derive(Serialize)]
struct Content<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    parts: Vec<Part<'a>>,
}

#[derive(Serialize)]
struct Part<'a> {
    text: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig<'a> {
    temperature: f32,
    max_output_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_config: Option<ThinkingConfig<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ThinkingConfig<'a> {
    thinking_level: &'a str,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct GenerateResponse {
    candidates: Vec<Candidate>,
    prompt_feedback: Option<PromptFeedback>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Candidate {
    content: Option<CandidateContent>,
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CandidateContent {
    parts: Vec<ResponsePart>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ResponsePart {
    text: Option<String>,
    thought: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct PromptFeedback {
    block_reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ApiError {
    code: Option<u16>,
    message: String,
    status: String,
    details: Vec<serde_json::Value>,
}

/// The visible text and finish reason of one response (or stream event).
struct Chunk {
    text: String,
    finish: Option<String>,
}

impl GenerateResponse {
    /// Text of the first candidate without thoughts; a blocked prompt or answer is an error.
    fn into_chunk(self) -> Result<Chunk, ModelError> {
        let Some(candidate) = self.candidates.into_iter().next() else {
            return match self.prompt_feedback.and_then(|f| f.block_reason) {
                Some(reason) => Err(ModelError::Blocked(format!("prompt blocked ({reason})"))),
                None => Ok(Chunk { text: String::new(), finish: None }),
            };
        };
        let finish = candidate.finish_reason.filter(|r| !r.is_empty() && r != "FINISH_REASON_UNSPECIFIED");
        if let Some(reason) = finish.as_deref().filter(|r| is_blocking(r)) {
            return Err(ModelError::Blocked(format!("answer blocked ({reason})")));
        }
        let text = candidate
            .content
            .map(|c| c.parts.into_iter().filter(|p| !p.thought).filter_map(|p| p.text).collect())
            .unwrap_or_default();
        Ok(Chunk { text, finish })
    }

    fn into_generation(self) -> Result<Generation, ModelError> {
        let had_candidates = !self.candidates.is_empty();
        let chunk = self.into_chunk()?;
        let finish = chunk.finish.as_deref();
        if chunk.text.is_empty() {
            return Err(ModelError::Malformed(match finish {
                Some(reason) => format!("no text ({reason})"),
                None if had_candidates => "no text".to_string(),
                None => "no candidates".to_string(),
            }));
        }
        let finish = match finish {
            Some("STOP") | None => FinishReason::Stop,
            Some("MAX_TOKENS") => FinishReason::Length,
            Some(_) => FinishReason::Other,
        };
        Ok(Generation { text: chunk.text, finish })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::llm::Message;

    fn generation(v: serde_json::Value) -> Result<Generation, ModelError> {
        serde_json::from_value::<GenerateResponse>(v).unwrap().into_generation()
    }

    #[test]
    fn parses_fractional_retry_delays() {
        assert_eq!(parse_proto_duration("45.837906927s"), Some(Duration::from_secs_f64(45.837906927)));
        assert_eq!(parse_proto_duration("26s"), Some(Duration::from_secs(26)));
        assert_eq!(parse_proto_duration("0.05s"), Some(Duration::from_millis(50)));
        assert_eq!(parse_proto_duration("26"), None);
        assert_eq!(parse_proto_duration("-1s"), None);
        assert_eq!(parse_proto_duration("1e400s"), None);
        assert_eq!(
            retry_in_from_message("quota exceeded. Please retry in 55.5s."),
            Some(Duration::from_secs_f64(55.5))
        );
    }

    #[test]
    fn rate_limit_uses_retry_info() {
        let body = json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                 "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}]}});
        let f = classify_error_body(429, body.to_string().as_bytes());
        assert_eq!(f, Failure::from(ModelError::RateLimited { retry_after: Some(Duration::from_millis(1500)) }));
    }

    #[test]
    fn per_day_quota_is_permanent() {
        let body = json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                 "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3s"}]}});
        let f = classify_error_body(429, body.to_string().as_bytes());
        assert!(f.permanent);
        assert!(matches!(f.error, ModelError::RateLimited { .. }));
    }

    #[test]
    fn classifies_error_statuses() {
        let e = |status, message: &str| {
            let body = json!({"error": {"code": status, "message": message, "status": "X"}});
            classify_error_body(status, body.to_string().as_bytes()).error
        };
        assert!(matches!(e(400, "API key not valid."), ModelError::Rejected(_)));
        assert!(matches!(e(403, "denied"), ModelError::Rejected(_)));
        assert!(matches!(e(404, "models/x is not found"), ModelError::Rejected(_)));
        assert!(matches!(e(500, "internal"), ModelError::Transient(_)));
        assert!(matches!(e(503, "The model is overloaded."), ModelError::Transient(_)));
        assert!(matches!(e(504, "deadline"), ModelError::Transient(_)));
        assert!(matches!(
            e(400, "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."),
            ModelError::ContextTooLong(_)
        ));
        assert!(matches!(classify_error_body(502, b"<html>bad gateway</html>").error, ModelError::Transient(_)));
    }

    #[test]
    fn skips_thoughts_and_maps_finish_reasons() {
        let g = generation(json!({"candidates": [{"content": {"role": "model", "parts": [
            {"text": "thinking", "thought": true}, {"text": "Hello"}, {"thoughtSignature": "abc"}, {"text": " world"}]},
            "finishReason": "STOP"}]}))
        .unwrap();
        assert_eq!(g, Generation { text: "Hello world".into(), finish: FinishReason::Stop });
        let g = generation(
            json!({"candidates": [{"content": {"parts": [{"text": "cut"}]}, "finishReason": "MAX_TOKENS"}]}),
        )
        .unwrap();
        assert_eq!(g.finish, FinishReason::Length);
    }

    #[test]
    fn max_tokens_without_text_is_malformed() {
        let e = generation(json!({"candidates": [{"finishReason": "MAX_TOKENS"}]})).unwrap_err();
        assert_eq!(e, ModelError::Malformed("no text (MAX_TOKENS)".into()));
    }

    #[test]
    fn blocked_answers_and_prompts() {
        for reason in ["SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"] {
            let e = generation(json!({"candidates": [{"finishReason": reason}]})).unwrap_err();
            assert!(matches!(e, ModelError::Blocked(ref r) if r.contains(reason)), "{reason}: {e:?}");
        }
        let e = generation(json!({"promptFeedback": {"blockReason": "SAFETY"}})).unwrap_err();
        assert!(matches!(e, ModelError::Blocked(_)));
        let e = generation(json!({})).unwrap_err();
        assert!(matches!(e, ModelError::Malformed(_)));
    }

    #[test]
    fn request_body_is_camel_case_with_roles() {
        let model = GeminiModel::new(GeminiOptions {
            api_key: "k".into(),
            thinking_level: Some("low".into()),
            ..GeminiOptions::default()
        })
        .unwrap();
        let prompt = Prompt {
            system: "rules".into(),
            messages: vec![
                Message { role: Role::User, text: "hi".into() },
                Message { role: Role::Assistant, text: "hello".into() },
                Message { role: Role::User, text: "q".into() },
            ],
            passages: vec![],
            question: "q".into(),
            max_output_tokens: 100,
            temperature: 0.5,
        };
        let body: serde_json::Value = serde_json::from_slice(&model.request_body(&prompt).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({
                "systemInstruction": {"parts": [{"text": "rules"}]},
                "contents": [
                    {"role": "user", "parts": [{"text": "hi"}]},
                    {"role": "model", "parts": [{"text": "hello"}]},
                    {"role": "user", "parts": [{"text": "q"}]}],
                "generationConfig": {"temperature": 0.5, "maxOutputTokens": 100, "thinkingConfig": {"thinkingLevel": "low"}}
            })
        );
    }

    #[test]
    fn new_checks_options_and_hides_the_key() {
        assert!(matches!(GeminiModel::new(GeminiOptions::default()), Err(ModelError::Unavailable(_))));
        let bad_url = GeminiOptions { api_key: "k".into(), base_url: "not a url".into(), ..GeminiOptions::default() };
        assert!(matches!(GeminiModel::new(bad_url), Err(ModelError::Unavailable(_))));
        let m = GeminiModel::new(GeminiOptions { api_key: "secret-key-1".into(), ..GeminiOptions::default() }).unwrap();
        assert!(!format!("{m:?}").contains("secret-key-1"));
    }
}
