//! The `LanguageModel` capability (prompt → text, plus streaming) and its vendors: Gemini's REST
//! API, OpenAI-compatible chat completions (llama.cpp server, vLLM, Ollama, LM Studio),
//! in-process llama.cpp for GGUF files, and the extractive backend that needs no model and never
//! fails. `ModelChain` tries them in order.

pub mod chain;
pub mod extractive;
pub mod gemini;
pub mod local;
pub mod openai;
pub mod retry;
mod sse;

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use futures::Stream;
use serde::{Deserialize, Serialize};

/// Who said a message of the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub text: String,
}

/// A retrieved passage as the model sees it: numbered from 1, with where it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptPassage {
    /// 1-based number the answer cites as `[n]`.
    pub n: usize,
    pub title: String,
    pub citation: String,
    pub text: String,
    /// Cosine similarity of the passage to the question, when known (the extractive backend
    /// uses it to pick what to quote).
    pub relevance: Option<f32>,
}

/// Everything a backend needs to answer. Vendors render it into their own wire format; the
/// passages are already inside `messages` (delimited as untrusted data) and are repeated in
/// `passages` for backends that do not generate text (extractive).
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// The rules: answer only from the passages, cite them, abstain otherwise, language.
    pub system: String,
    /// Earlier turns, then the final user message holding passages and question.
    pub messages: Vec<Message>,
    pub passages: Vec<PromptPassage>,
    /// The user's question alone.
    pub question: String,
    pub max_output_tokens: u32,
    pub temperature: f32,
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    /// Output hit `max_output_tokens`; the text may be cut.
    Length,
    Other,
}

/// A finished generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub text: String,
    pub finish: FinishReason,
}

/// Whether a generated text holds no answer: empty, or only a lead-in that announces one and
/// stops ("The answer to this question is:", "Here are the steps:", "步骤如下："), as small models
/// do. The chain treats such a text as a failed generation, and a stream that ends so is
/// completed with the best passage.
pub fn is_blank_answer(text: &str) -> bool {
    let t = text.trim().trim_end_matches(['*', '`', '_']).trim_end();
    let Some(lead) = t.strip_suffix([':', '：']) else { return t.is_empty() };
    // One short sentence: no line break, no sentence ending before the colon, no citation.
    let ends_sentence = lead.contains(['。', '！', '？'])
        || lead.as_bytes().windows(2).any(|w| matches!(w[0], b'.' | b'!' | b'?') && w[1].is_ascii_whitespace());
    let cites = lead.as_bytes().windows(3).any(|w| w[0] == b'[' && w[1].is_ascii_digit());
    !lead.contains('\n') && !ends_sentence && !cites && lead.split_whitespace().count() <= 20
}

/// Why a blank answer (see [`is_blank_answer`]) counts as a failed generation.
pub fn blank_answer_error(text: &str) -> ModelError {
    ModelError::Malformed(if text.trim().is_empty() { "empty answer" } else { "a lead-in and no answer" }.into())
}

/// Failures a caller branches on. Every variant lets the chain move to the next backend.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// Quota or rate limit; `retry_after` is what the server asked for.
    #[error("rate limited{}", .retry_after.map(|d| format!(" (retry after {:.1} s)", d.as_secs_f64())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    /// The prompt does not fit the model's context window.
    #[error("prompt too long for the model's context window: {0}")]
    ContextTooLong(String),
    /// A server error or dropped connection that may succeed later.
    #[error("transient failure: {0}")]
    Transient(String),
    /// No answer in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The request was refused as invalid (bad key, unknown model, malformed request): retrying
    /// will not help.
    #[error("request rejected: {0}")]
    Rejected(String),
    /// The provider blocked the prompt or the answer (safety, recitation, policy).
    #[error("blocked by the provider: {0}")]
    Blocked(String),
    /// The response could not be understood.
    #[error("malformed response: {0}")]
    Malformed(String),
    /// The backend is not usable here (not configured, model file missing).
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Text pieces as they are generated.
pub type TextStream = Pin<Box<dyn Stream<Item = Result<String, ModelError>> + Send>>;

/// Generates text from a prompt.
#[async_trait]
pub trait LanguageModel: Send + Sync {
    /// Short backend name used in configuration and in answers (`gemini`, `openai`, `local`,
    /// `extractive`).
    fn name(&self) -> &str;
    /// Size of the context window in tokens, used to trim passages so the prompt fits.
    fn context_tokens(&self) -> usize;
    /// Whether the backend writes its own text (false for extractive, whose "answer" is quoted
    /// passages).
    fn is_generative(&self) -> bool {
        true
    }
    async fn generate(&self, prompt: &Prompt) -> Result<Generation, ModelError>;
    /// Streams the answer. The default implementation yields the whole generation at once.
    async fn generate_stream(&self, prompt: &Prompt) -> Result<TextStream, ModelError> {
        let g = self.generate(prompt).await?;
        Ok(Box::pin(futures::stream::once(async move { Ok(g.text) })))
    }
}

#[cfg(test)]
mod tests {
    use super::is_blank_answer;

    #[test]
    fn a_lead_in_without_an_answer_is_blank() {
        for text in ["", "  \n", "The answer to this question is:", "Here are the steps: ", "**Answer:**", "步骤如下："]
        {
            assert!(is_blank_answer(text), "{text:?}");
        }
        for text in [
            "Open Tools > Options [1].",
            "Do this:\n1. Open the Format menu [1].",
            "Choose Format - Page Style. Then:",
            "In short: use the Page Style dialog [2]",
            "Use the Page Style dialog [2]:",
        ] {
            assert!(!is_blank_answer(text), "{text:?}");
        }
    }
}
