//! The extractive backend: no model at all. It answers with the first passage of the retrieval
//! order verbatim (and a second one when that is nearly as relevant to the question, or more),
//! marked with its citation number. It cannot fail, so it always closes the chain.

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
    // Passages arrive in retrieval order, which fuses the embedding, BM25 and the language and
    // length preferences: the first is the best guess. Relevance alone (the cosine, or for CJK
    // the characters shared with the question) picked the wrong page far more often: on the
    // LibreOffice help, Chinese answers cited an expected page 0.57 of the time that way and
    // 0.83 this way (BENCHMARKS.md, section 5).
    let Some(best) = passages.first() else { return Vec::new() };
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
    async fn quotes_the_first_passage_of_the_ranking_with_its_marker() {
        let p = prompt(vec![passage(1, "a.md#x", 0.7), passage(2, "b.md#y", 0.5), passage(3, "c.md", 0.2)]);
        let g = ExtractiveModel.generate(&p).await.unwrap();
        assert_eq!(g.text, "text of a.md#x [1]");
    }

    #[tokio::test]
    async fn adds_a_second_passage_only_when_nearly_as_relevant_or_more() {
        let p = prompt(vec![passage(1, "a.md#x", 0.71), passage(2, "b.md#y", 0.69), passage(3, "c.md", 0.6)]);
        let g = ExtractiveModel.generate(&p).await.unwrap();
        assert_eq!(g.text, "text of a.md#x [1]\n\ntext of b.md#y [2]");
        // A passage the embedder likes better does not replace the ranking's first; it joins it.
        let p = prompt(vec![passage(1, "a.md#x", 0.5), passage(2, "b.md#y", 0.7)]);
        let g = ExtractiveModel.generate(&p).await.unwrap();
        assert_eq!(g.text, "text of a.md#x [1]\n\ntext of b.md#y [2]");
        // Another passage of the same section is not quoted twice.
        let p = prompt(vec![passage(1, "a.md#x", 0.7), passage(2, "a.md#x", 0.7)]);
        let g = ExtractiveModel.generate(&p).await.unwrap();
        assert_eq!(g.text, "text of a.md#x [1]");
    }
}
