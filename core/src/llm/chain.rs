//! `ModelChain`: backends tried in order. A backend that fails (rate limited, timed out,
//! blocked, rejected, unavailable) hands over to the next, and the result records which backend
//! answered and why the earlier ones did not. A prompt too long for a backend is retried once
//! with half the passages. When streaming, a backend may be abandoned only before its first
//! piece of text.

use std::sync::Arc;

use futures::StreamExt as _;

use super::{Generation, LanguageModel, ModelError, Prompt, TextStream};

/// Why a backend did not answer.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendFailure {
    pub backend: String,
    pub error: ModelError,
}

/// Renders the prompt for a backend: given the backend (for its context window) and an optional
/// cap on the number of passages.
pub type Render<'a> = dyn Fn(&dyn LanguageModel, Option<usize>) -> Prompt + Send + Sync + 'a;

/// A finished answer from the chain.
#[derive(Debug, Clone)]
pub struct ChainAnswer {
    pub generation: Generation,
    pub backend: String,
    pub failures: Vec<BackendFailure>,
    /// The prompt the answering backend saw (its passages are what citations may point to).
    pub prompt: Prompt,
}

/// A committed stream: the backend produced its first piece of text.
pub struct ChainStream {
    pub backend: String,
    pub failures: Vec<BackendFailure>,
    pub prompt: Prompt,
    pub stream: TextStream,
}

/// Backends in order of preference.
#[derive(Clone)]
pub struct ModelChain {
    backends: Vec<Arc<dyn LanguageModel>>,
}

impl std::fmt::Debug for ModelChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.backends.iter().map(|b| b.name().to_string())).finish()
    }
}

impl ModelChain {
    pub fn new(backends: Vec<Arc<dyn LanguageModel>>) -> Self {
        Self { backends }
    }

    pub fn names(&self) -> Vec<String> {
        self.backends.iter().map(|b| b.name().to_string()).collect()
    }

    pub fn backends(&self) -> &[Arc<dyn LanguageModel>] {
        &self.backends
    }

    /// The chain restricted to one backend (for `--backend NAME`), if it is configured.
    pub fn only(&self, name: &str) -> Option<ModelChain> {
        self.backends.iter().find(|b| b.name() == name).map(|b| ModelChain { backends: vec![b.clone()] })
    }

    /// Asks each backend in turn until one answers.
    pub async fn generate(&self, render: &Render<'_>) -> Result<ChainAnswer, Vec<BackendFailure>> {
        let mut failures = Vec::new();
        for backend in &self.backends {
            let mut prompt = render(backend.as_ref(), None);
            let mut result = backend.generate(&prompt).await;
            if matches!(result, Err(ModelError::ContextTooLong(_))) && prompt.passages.len() > 1 {
                prompt = render(backend.as_ref(), Some(prompt.passages.len() / 2));
                result = backend.generate(&prompt).await;
            }
            match result {
                Ok(generation) if !super::is_blank_answer(&generation.text) => {
                    return Ok(ChainAnswer { generation, backend: backend.name().to_string(), failures, prompt });
                }
                Ok(generation) => {
                    let error = super::blank_answer_error(&generation.text);
                    tracing::warn!(backend = backend.name(), %error, "backend gave no answer, trying the next one");
                    failures.push(BackendFailure { backend: backend.name().to_string(), error })
                }
                Err(error) => {
                    tracing::warn!(backend = backend.name(), %error, "backend failed, trying the next one");
                    failures.push(BackendFailure { backend: backend.name().to_string(), error });
                }
            }
        }
        Err(failures)
    }

    /// Streams from the first backend that produces text. Failures before the first piece move
    /// on to the next backend; after it, errors arrive in the stream.
    pub async fn generate_stream(&self, render: &Render<'_>) -> Result<ChainStream, Vec<BackendFailure>> {
        let mut failures = Vec::new();
        for backend in &self.backends {
            let name = backend.name().to_string();
            let mut prompt = render(backend.as_ref(), None);
            let mut attempt = first_piece(backend.as_ref(), &prompt).await;
            if matches!(attempt, Err(ModelError::ContextTooLong(_))) && prompt.passages.len() > 1 {
                prompt = render(backend.as_ref(), Some(prompt.passages.len() / 2));
                attempt = first_piece(backend.as_ref(), &prompt).await;
            }
            match attempt {
                Ok((first, rest)) => {
                    let stream: TextStream = Box::pin(futures::stream::once(async move { Ok(first) }).chain(rest));
                    return Ok(ChainStream { backend: name, failures, prompt, stream });
                }
                Err(error) => {
                    tracing::warn!(backend = %name, %error, "backend failed before its first token, trying the next one");
                    failures.push(BackendFailure { backend: name, error });
                }
            }
        }
        Err(failures)
    }
}

/// Starts a stream and waits for its first non-empty piece.
async fn first_piece(backend: &dyn LanguageModel, prompt: &Prompt) -> Result<(String, TextStream), ModelError> {
    let mut stream = backend.generate_stream(prompt).await?;
    loop {
        match stream.next().await {
            Some(Ok(piece)) if piece.is_empty() => continue,
            Some(Ok(piece)) => return Ok((piece, stream)),
            Some(Err(e)) => return Err(e),
            None => return Err(ModelError::Malformed("the stream ended without text".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::extractive::ExtractiveModel;
    use crate::llm::{FinishReason, PromptPassage};
    use async_trait::async_trait;
    use std::sync::Mutex;

    /// A backend that fails with a scripted error, recording how many passages it was shown.
    struct Failing {
        error: ModelError,
        seen: Mutex<Vec<usize>>,
    }

    #[async_trait]
    impl LanguageModel for Failing {
        fn name(&self) -> &str {
            "failing"
        }
        fn context_tokens(&self) -> usize {
            1000
        }
        async fn generate(&self, prompt: &Prompt) -> Result<Generation, ModelError> {
            self.seen.lock().unwrap().push(prompt.passages.len());
            Err(self.error.clone())
        }
    }

    fn render(passages: usize) -> impl Fn(&dyn LanguageModel, Option<usize>) -> Prompt + Send + Sync {
        move |_, cap| Prompt {
            system: String::new(),
            messages: vec![],
            passages: (1..=cap.unwrap_or(passages).min(passages))
                .map(|n| PromptPassage {
                    n,
                    title: "T".into(),
                    citation: format!("p{n}.md"),
                    text: format!("passage {n}"),
                    relevance: Some(1.0 - n as f32 / 10.0),
                })
                .collect(),
            question: "q".into(),
            max_output_tokens: 10,
            temperature: 0.0,
        }
    }

    #[tokio::test]
    async fn a_failing_backend_hands_over_and_is_recorded() {
        let failing =
            Arc::new(Failing { error: ModelError::Timeout(std::time::Duration::from_secs(1)), seen: Mutex::default() });
        let chain = ModelChain::new(vec![failing.clone(), Arc::new(ExtractiveModel)]);
        let answer = chain.generate(&render(3)).await.unwrap();
        assert_eq!(answer.backend, "extractive");
        assert_eq!(answer.failures.len(), 1);
        assert_eq!(answer.failures[0].backend, "failing");
        assert_eq!(answer.generation.finish, FinishReason::Stop);
        assert!(answer.generation.text.contains("[1]"));
    }

    #[tokio::test]
    async fn context_too_long_retries_once_with_fewer_passages() {
        let failing =
            Arc::new(Failing { error: ModelError::ContextTooLong("too long".into()), seen: Mutex::default() });
        let chain = ModelChain::new(vec![failing.clone(), Arc::new(ExtractiveModel)]);
        chain.generate(&render(4)).await.unwrap();
        assert_eq!(*failing.seen.lock().unwrap(), vec![4, 2]);
    }

    #[tokio::test]
    async fn streaming_falls_back_before_the_first_piece() {
        let failing = Arc::new(Failing { error: ModelError::Rejected("bad key".into()), seen: Mutex::default() });
        let chain = ModelChain::new(vec![failing, Arc::new(ExtractiveModel)]);
        let mut s = chain.generate_stream(&render(2)).await.unwrap();
        assert_eq!(s.backend, "extractive");
        assert_eq!(s.failures.len(), 1);
        let mut text = String::new();
        while let Some(piece) = s.stream.next().await {
            text.push_str(&piece.unwrap());
        }
        assert!(text.starts_with("passage 1"));
    }

    #[tokio::test]
    async fn all_failing_returns_every_failure() {
        let a = Arc::new(Failing { error: ModelError::Transient("503".into()), seen: Mutex::default() });
        let chain = ModelChain::new(vec![a]);
        let failures = chain.generate(&render(1)).await.unwrap_err();
        assert_eq!(failures.len(), 1);
    }
}
