//! The extractive backend: no model at all. It answers with the most relevant passage verbatim
//! (and a second one when it is nearly as relevant), marked with its citation number. It cannot
//! fail, so it always closes the chain.

use async_trait::async_trait;

use super::{FinishReason, Generation, LanguageModel, ModelError, Prompt, PromptPassage};

/// A second passage is quoted when its relevance is within this of the best one.
const SECOND_PASSAGE_MARGIN: f32 = 0.03;

/// Quotes the best passages.
#[derive(Debug, Clone, Default)]
pub struct ExtractiveModel;

impl ExtractiveModel {
    pub fn new() -> Self {
        Self
    }
}

fn best_passages(passages: &[PromptPassage]) -> Vec<&PromptPassage> {
    // Passages arrive in retrieval order; relevance (cosine) refines it when known.
    let Some(first) = passages.first() else { return Vec::new() };
    let best = passages
        .iter()
        .filter(|p| p.relevance.is_some())
        .max_by(|a, b| a.relevance.unwrap_or(0.0).total_cmp(&b.relevance.unwrap_or(0.0)))
        .unwrap_or(first);
    let mut out = vec![best];
    if let Some(best_score) = best.relevance
        && let Some(second) = passages
            .iter()
            .filter(|p| p.n != best.n && p.citation != best.citation)
            .filter(|p| p.relevance.is_some_and(|r| r >= best_score - SECOND_PASSAGE_MARGIN))
            .max_by(|a, b| a.relevance.unwrap_or(0.0).total_cmp(&b.relevance.unwrap_or(0.0)))
    {
        out.push(second);
    }
    out
}

/// The backend's name in configuration and answers.
pub const NAME: &str = "extractive";

/// The extractive answer for a prompt's passages: each chosen passage verbatim, followed by its
/// citation marker.
pub fn extract(prompt: &Prompt) -> String {
    best_passages(&prompt.passages)
        .iter()
        .map(|p| format!("{} [{}]", p.text.trim(), p.n))
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[async_trait]
impl LanguageModel for ExtractiveModel {
    fn name(&self) -> &str {
        NAME
    }

    fn context_tokens(&self) -> usize {
        usize::MAX
    }

    fn is_generative(&self) -> bool {
        false
    }

    async fn generate(&self, prompt: &Prompt) -> Result<Generation, ModelError> {
        let text = extract(prompt);
        if text.is_empty() {
            // Only reachable when the answerer passes no passages, which it does not do.
            return Err(ModelError::Unavailable("no passages to quote".into()));
        }
        Ok(Generation { text, finish: FinishReason::Stop })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passage(n: usize, citation: &str, relevance: f32) -> PromptPassage {
        PromptPassage {
            n,
            title: "T".into(),
            citation: citation.into(),
            text: format!("text of {citation}"),
            relevance: Some(relevance),
        }
    }

    fn prompt(passages: Vec<PromptPassage>) -> Prompt {
        Prompt {
            system: String::new(),
            messages: vec![],
            passages,
            question: "q".into(),
            max_output_tokens: 100,
            temperature: 0.0,
        }
    }

    #[tokio::test]
    async fn quotes_the_most_relevant_passage_with_its_marker() {
        let p = prompt(vec![passage(1, "a.md#x", 0.5), passage(2, "b.md#y", 0.7), passage(3, "c.md", 0.2)]);
        let g = ExtractiveModel.generate(&p).await.unwrap();
        assert_eq!(g.text, "text of b.md#y [2]");
    }

    #[tokio::test]
    async fn adds_a_second_passage_only_when_nearly_as_relevant() {
        let p = prompt(vec![passage(1, "a.md#x", 0.69), passage(2, "b.md#y", 0.7)]);
        let g = ExtractiveModel.generate(&p).await.unwrap();
        assert_eq!(g.text, "text of b.md#y [2]\n\ntext of a.md#x [1]");
    }
}
