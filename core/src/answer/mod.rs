//! The Answerer: one service behind every channel. A question goes in; a short answer with
//! citations comes out, or an honest "I don't know". Steps: limits and intent → retrieval
//! (follow-ups use the conversation's recent turns) → curated-answer fast path → relevance gate →
//! prompt → model chain → citation check → memory.

pub mod citations;
pub mod gate;
pub mod memory;
pub mod messages;
pub mod prompt;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedSender;

use crate::document::DocKind;
use crate::lang::is_cjk_text;
use crate::llm::chain::{BackendFailure, ModelChain};
use crate::llm::extractive;
use crate::llm::{LanguageModel, Message, Prompt, PromptPassage, Role};
use crate::search::{SearchResult, Searcher};
use crate::store::SearchFilter;

pub use citations::Citation;
use memory::{ConversationMemory, Turn};
use messages::Notice;
use prompt::PromptInput;

/// A question from any channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// `cli`, `telegram`, `discord`, `web`.
    pub channel: String,
    /// Conversation id within the channel (chat, thread, or a CLI-chosen id).
    pub conversation: String,
    /// Who asked (a platform id; the review log stores it pseudonymised).
    pub user: String,
    pub text: String,
}

impl Incoming {
    pub fn new(channel: &str, conversation: &str, user: &str, text: &str) -> Self {
        Self { channel: channel.into(), conversation: conversation.into(), user: user.into(), text: text.into() }
    }
}

/// How a question was handled. The names are a public contract (`supportbot ask --json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// An FAQ or approved answer, verbatim; no model was asked.
    Curated,
    /// The first backend of the chain answered from the passages.
    Answered,
    /// An earlier backend failed and a later one answered (`backend` says which).
    Fallback,
    /// Nothing relevant (or not a support question): the bot did not answer.
    Abstained,
}

/// Why the bot abstained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AbstainReason {
    /// The relevance gate found no passage close enough to the question.
    NoRelevantPassage,
    /// Creative writing, role play, or an attempt to extract or change the instructions.
    OffTopic,
    /// A greeting or small talk.
    ChitChat,
    TooLong,
    Empty,
    /// A model read the passages and said they do not answer the question.
    ModelDeclined,
    /// An internal failure (the index could not be searched, every backend failed).
    Error,
}

/// Milliseconds spent in each stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    /// Embedding the question and searching the index.
    pub retrieval: u64,
    /// Building the prompt and checking the answer (what happens outside the model, besides retrieval).
    #[serde(skip, default)]
    pub prompt: u64,
    /// From asking the chain to its first piece of text.
    #[serde(skip, default)]
    pub first_token: Option<u64>,
    /// Asking the model chain, until its last piece of text.
    pub generation: u64,
    pub total: u64,
}

/// A passage that was retrieved for the question (kept for the review log and the console).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievedPassage {
    pub citation: String,
    pub title: String,
    pub kind: DocKind,
    pub score: f32,
    pub dense_score: Option<f32>,
    pub bm25_score: Option<f32>,
}

/// The bot's reply to one question.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub outcome: Outcome,
    /// What the user sees; citation markers `[n]` refer to `citations`.
    pub text: String,
    pub citations: Vec<Citation>,
    /// The backend that wrote the text (`None` for curated and abstained answers).
    pub backend: Option<String>,
    /// How sure the bot is that the passages answer the question (cosine similarity of the best
    /// passage, or the share of a CJK question its bigrams cover; 1.0-scale).
    pub confidence: f32,
    pub latency: Latency,
    /// Backends that failed before one answered, and why.
    pub failures: Vec<BackendFailure>,
    pub abstain_reason: Option<AbstainReason>,
    pub passages: Vec<RetrievedPassage>,
    /// Language of the question (`en`, `zh`, ...).
    pub language: String,
    /// What was searched for (the question, or the question with the previous one for follow-ups).
    pub search_query: String,
}

impl Answer {
    /// An answer of `text` alone: no citations, passages, backend, timings or reason.
    pub fn bare(outcome: Outcome, text: impl Into<String>, language: &str) -> Self {
        Self {
            outcome,
            text: text.into(),
            citations: Vec::new(),
            backend: None,
            confidence: 0.0,
            latency: Latency::default(),
            failures: Vec::new(),
            abstain_reason: None,
            passages: Vec::new(),
            language: language.to_string(),
            search_query: String::new(),
        }
    }
}

/// The knobs of the Answerer (from `[answer]` and `[llm]`).
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerConfig {
    pub min_relevance: f32,
    pub min_cjk_overlap: f32,
    pub curated_min_similarity: f32,
    pub max_passages: usize,
    pub max_question_chars: usize,
    pub max_output_tokens: u32,
    pub temperature: f32,
}

impl Default for AnswerConfig {
    fn default() -> Self {
        Self {
            min_relevance: 0.40,
            min_cjk_overlap: 0.15,
            curated_min_similarity: 0.86,
            max_passages: 5,
            max_question_chars: 1000,
            max_output_tokens: 1024,
            temperature: 0.2,
        }
    }
}

/// Backends whose requests leave the machine: personal data is redacted before them.
fn is_hosted(backend: &str) -> bool {
    matches!(backend, "gemini" | "openai")
}

/// Cosine bonus for a passage that contains most of the question's terms: exact matches of
/// setting names and error codes ("public_url", "DW-431") deserve trust even when the embedder,
/// which knows nothing of them, scores the passage low.
const COVERAGE_BONUS: f32 = 0.1;
const COVERAGE_FOR_BONUS: f32 = 0.75;

/// The score the relevance gate compares with its threshold:
/// - questions in a CJK script: the best, over the top `max_passages` passages, of the share of
///   the question's character bigrams or words found in the passage (the English embedder's
///   cosine means nothing there: it rates any two Chinese texts as near-identical);
/// - others: the best cosine similarity over the same top `max_passages` passages (those a
///   backend is shown and the extractive answer quotes from), plus a small bonus for passages
///   holding most of the question's terms.
pub fn gate_score(question: &str, results: &[SearchResult], max_passages: usize) -> f32 {
    if is_cjk_text(question) {
        results.iter().take(max_passages).map(|r| gate::cjk_relevance(question, &r.chunk.text)).fold(0.0, f32::max)
    } else {
        results
            .iter()
            .take(max_passages)
            .filter_map(|r| {
                let cos = r.dense_score?;
                let covered = gate::lexical_coverage(question, &r.chunk.text) >= COVERAGE_FOR_BONUS;
                Some(if covered { cos + COVERAGE_BONUS } else { cos })
            })
            .fold(0.0, f32::max)
    }
}

/// The sources of the passages a backend was actually shown (trimming may have dropped some).
fn shown_sources(sources: &BTreeMap<usize, Citation>, prompt: &Prompt) -> BTreeMap<usize, Citation> {
    sources.iter().filter(|(n, _)| prompt.passages.iter().any(|p| p.n == **n)).map(|(n, c)| (*n, c.clone())).collect()
}

/// Words that mark a question as continuing the previous one.
const FOLLOW_UP_STARTS: &[&str] =
    &["and ", "what about", "how about", "also ", "but ", "or ", "same ", "then ", "那", "还有", "另外", "如果"];
/// Pronouns that point back. Not "there" or "one": "Is there a size limit?" and "Can I use more
/// than one account?" stand alone, and searching them with the previous question answers them
/// from its topic.
const FOLLOW_UP_WORDS: &[&str] = &["it", "its", "that", "this", "those", "these", "them"];

/// True when a question reads as a continuation ("and on Windows?", "what about that one?").
pub fn looks_like_follow_up(question: &str) -> bool {
    let q = question.trim().to_lowercase();
    if FOLLOW_UP_STARTS.iter().any(|s| q.starts_with(s)) {
        return true;
    }
    if is_cjk_text(&q) {
        return q.chars().count() <= 6;
    }
    let words: Vec<&str> = q.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    words.len() <= 3 || (words.len() <= 8 && words.iter().any(|w| FOLLOW_UP_WORDS.contains(w)))
}

/// Answers questions for every channel.
#[derive(Clone)]
pub struct Answerer {
    searcher: Searcher,
    chain: ModelChain,
    memory: Arc<dyn ConversationMemory>,
    config: AnswerConfig,
    /// Public base URL per source root.
    root_urls: Arc<HashMap<String, String>>,
}

/// The result of the shared part of answering: either a final answer or what the model needs.
enum Prepared {
    Done(Box<Answer>),
    Generate(Box<Generation>),
}

/// Everything needed to ask the model chain.
struct Generation {
    question: String,
    language: String,
    search_query: String,
    history: Vec<Message>,
    passages: Vec<PromptPassage>,
    sources: BTreeMap<usize, Citation>,
    retrieved: Vec<RetrievedPassage>,
    confidence: f32,
    latency: Latency,
}

impl Answerer {
    pub fn new(
        searcher: Searcher,
        chain: ModelChain,
        memory: Arc<dyn ConversationMemory>,
        config: AnswerConfig,
        root_urls: HashMap<String, String>,
    ) -> Self {
        Self { searcher, chain, memory, config, root_urls: Arc::new(root_urls) }
    }

    pub fn chain(&self) -> &ModelChain {
        &self.chain
    }

    /// Answers a question with the configured chain, or only with `backend` when given.
    pub async fn answer(&self, incoming: &Incoming, backend: Option<&str>) -> Answer {
        self.run(incoming, backend, None).await
    }

    /// Like [`Answerer::answer`], sending the text to `sink` as it is generated (curated,
    /// extractive and abstained answers arrive in one piece). The returned answer holds the
    /// checked final text and its citations.
    pub async fn answer_streaming(
        &self,
        incoming: &Incoming,
        backend: Option<&str>,
        sink: UnboundedSender<String>,
    ) -> Answer {
        self.run(incoming, backend, Some(sink)).await
    }

    async fn run(&self, incoming: &Incoming, backend: Option<&str>, sink: Option<UnboundedSender<String>>) -> Answer {
        let started = Instant::now();
        let mut answer = match self.prepare(incoming, started).await {
            Prepared::Done(answer) => *answer,
            Prepared::Generate(g) => self.generate(*g, backend, sink.as_ref(), started).await,
        };
        answer.latency.total = started.elapsed().as_millis() as u64;
        if let Some(sink) = sink
            && (answer.outcome == Outcome::Abstained || answer.outcome == Outcome::Curated)
        {
            let _ = sink.send(answer.text.clone());
        }
        // Only answered turns are remembered: a refused prompt injection must not come back as
        // history in the next prompt, and a "thanks!" or an unanswerable question in between
        // must not become what the next follow-up continues.
        if answer.outcome != Outcome::Abstained {
            self.memory.record(&incoming.conversation, Turn::new(incoming.text.trim(), answer.text.clone()));
        }
        tracing::info!(
            channel = %incoming.channel,
            outcome = ?answer.outcome,
            backend = answer.backend.as_deref().unwrap_or("-"),
            total_ms = answer.latency.total,
            "answered"
        );
        answer
    }

    fn abstain(&self, reason: AbstainReason, language: &str, notice: Notice) -> Answer {
        Answer {
            abstain_reason: Some(reason),
            ..Answer::bare(Outcome::Abstained, messages::text(notice, language), language)
        }
    }

    fn citation_for(&self, r: &SearchResult, n: usize) -> Citation {
        // A curated answer cites the documentation passage it rests on, when it names one.
        if let Some(cites) = &r.chunk.cites {
            let source = cites.split('#').next().unwrap_or(cites).to_string();
            return Citation {
                n,
                citation: cites.clone(),
                title: r.chunk.title.clone(),
                source,
                url: r.chunk.url.clone(),
            };
        }
        let citation = r.chunk.citation();
        let url = r.chunk.url.clone().or_else(|| {
            self.root_urls.get(&r.chunk.root).map(|base| format!("{}/{}", base.trim_end_matches('/'), citation))
        });
        Citation { n, citation, title: r.chunk.title.clone(), source: r.chunk.source.clone(), url }
    }

    /// The searcher behind this Answerer (for the console's "test a question" and for writing
    /// curated answers into the index).
    pub fn searcher(&self) -> &Searcher {
        &self.searcher
    }

    async fn prepare(&self, incoming: &Incoming, started: Instant) -> Prepared {
        let question = incoming.text.trim().to_string();
        let language = prompt::question_language(&question);
        if question.is_empty() {
            return Prepared::Done(Box::new(self.abstain(AbstainReason::Empty, &language, Notice::Empty)));
        }
        if question.chars().count() > self.config.max_question_chars {
            return Prepared::Done(Box::new(self.abstain(AbstainReason::TooLong, &language, Notice::TooLong)));
        }
        match gate::classify(&question) {
            Some(gate::NotAQuestion::OffTopic) => {
                return Prepared::Done(Box::new(self.abstain(AbstainReason::OffTopic, &language, Notice::OffTopic)));
            }
            Some(gate::NotAQuestion::ChitChat) => {
                return Prepared::Done(Box::new(self.abstain(AbstainReason::ChitChat, &language, Notice::Greeting)));
            }
            None => {}
        }

        let turns = self.memory.recent(&incoming.conversation);
        let follow_up = !turns.is_empty() && looks_like_follow_up(&question);
        let search_query = match turns.last() {
            Some(last) if follow_up => format!("{} {}", last.question, question),
            _ => question.clone(),
        };
        let history: Vec<Message> = turns
            .iter()
            .flat_map(|t| {
                [
                    Message { role: Role::User, text: t.question.clone() },
                    Message { role: Role::Assistant, text: t.answer.clone() },
                ]
            })
            .collect();

        let limit = self.config.max_passages.max(8);
        let results = match self.searcher.search(&search_query, Some(limit), &SearchFilter::default()).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "retrieval failed");
                return Prepared::Done(Box::new(self.abstain(AbstainReason::Error, &language, Notice::Apology)));
            }
        };
        let retrieval_ms = started.elapsed().as_millis() as u64;
        let retrieved: Vec<RetrievedPassage> = results
            .iter()
            .map(|r| RetrievedPassage {
                citation: r.chunk.citation(),
                title: r.chunk.title.clone(),
                kind: r.chunk.kind,
                score: r.score,
                dense_score: r.dense_score,
                bm25_score: r.bm25_score,
            })
            .collect();
        let cjk = is_cjk_text(&question);

        // Curated fast path: an FAQ entry asking the same thing is answered verbatim.
        if !follow_up {
            let curated = results
                .iter()
                .filter(|r| r.chunk.kind == DocKind::Faq && r.chunk.answer.is_some())
                .map(|r| {
                    let similarity = if cjk {
                        gate::cjk_similarity(&question, r.chunk.question.as_deref().unwrap_or_default())
                    } else {
                        r.dense_score.unwrap_or(0.0)
                    };
                    (r, similarity)
                })
                .filter(|(_, s)| *s >= self.config.curated_min_similarity)
                .max_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((r, similarity)) = curated {
                let citation = self.citation_for(r, 1);
                return Prepared::Done(Box::new(Answer {
                    outcome: Outcome::Curated,
                    text: r.chunk.answer.clone().unwrap_or_default(),
                    citations: vec![citation],
                    backend: None,
                    confidence: similarity,
                    latency: Latency { retrieval: retrieval_ms, ..Default::default() },
                    failures: Vec::new(),
                    abstain_reason: None,
                    passages: retrieved,
                    language,
                    search_query,
                }));
            }
        }

        // Relevance gate, on a score with meaning (the fused score is relative to this question's candidates).
        let gate = gate_score(&question, &results, self.config.max_passages);
        // Reported on a 0-1 scale; the coverage bonus may take the gate's score past 1.
        let confidence = gate.min(1.0);
        let threshold = if cjk { self.config.min_cjk_overlap } else { self.config.min_relevance };
        // In a CJK question, a Latin name the documentation never mentions ("Dropbox") means it
        // is about another product: lexical overlap on the rest of the question cannot tell.
        let mut foreign_name = false;
        if cjk {
            for term in gate::name_like_terms(&question) {
                if let Ok(false) = self.searcher.has_term(&term).await {
                    foreign_name = true;
                    break;
                }
            }
        }
        if results.is_empty() || gate < threshold || foreign_name {
            let mut a = self.abstain(AbstainReason::NoRelevantPassage, &language, Notice::NoAnswer);
            a.confidence = confidence;
            a.passages = retrieved;
            a.search_query = search_query;
            a.latency.retrieval = retrieval_ms;
            return Prepared::Done(Box::new(a));
        }

        let top: Vec<&SearchResult> = results.iter().take(self.config.max_passages).collect();
        let passages: Vec<PromptPassage> = top
            .iter()
            .enumerate()
            .map(|(i, r)| PromptPassage {
                n: i + 1,
                title: r.chunk.title.clone(),
                citation: r.chunk.citation(),
                text: gate::neutralize_instructions(&r.chunk.text),
                // What the extractive backend ranks by: cosine, or lexical overlap for CJK.
                relevance: if cjk { Some(gate::cjk_relevance(&question, &r.chunk.text)) } else { r.dense_score },
            })
            .collect();
        let sources: BTreeMap<usize, Citation> =
            top.iter().enumerate().map(|(i, r)| (i + 1, self.citation_for(r, i + 1))).collect();
        Prepared::Generate(Box::new(Generation {
            question,
            language,
            search_query,
            history,
            passages,
            sources,
            retrieved,
            confidence,
            latency: Latency { retrieval: retrieval_ms, ..Default::default() },
        }))
    }

    async fn generate(
        &self,
        g: Generation,
        backend: Option<&str>,
        sink: Option<&UnboundedSender<String>>,
        started: Instant,
    ) -> Answer {
        let chain = match backend {
            Some(name) => match self.chain.only(name) {
                Some(c) => c,
                None => {
                    tracing::error!(backend = name, "requested backend is not configured");
                    return self.abstain(AbstainReason::Error, &g.language, Notice::Apology);
                }
            },
            None => self.chain.clone(),
        };
        let input = PromptInput {
            question: g.question.clone(),
            history: g.history.clone(),
            passages: g.passages.clone(),
            max_output_tokens: self.config.max_output_tokens,
            temperature: self.config.temperature,
        };
        let redacted = PromptInput {
            question: gate::redact_personal_data(&input.question),
            history: input
                .history
                .iter()
                .map(|m| Message { role: m.role, text: gate::redact_personal_data(&m.text) })
                .collect(),
            ..input.clone()
        };
        let render = |model: &dyn LanguageModel, cap: Option<usize>| -> Prompt {
            let source = if is_hosted(model.name()) { &redacted } else { &input };
            prompt::render(source, model.context_tokens(), cap)
        };
        let prompt_ms = started.elapsed().as_millis() as u64 - g.latency.retrieval;
        let asked = Instant::now();
        let mut first_token = None;

        let (text, backend_name, failures, used_prompt, generative) = match sink {
            None => match chain.generate(&render).await {
                Ok(a) => {
                    let generative = chain.backends().iter().any(|b| b.name() == a.backend && b.is_generative());
                    (a.generation.text, a.backend, a.failures, a.prompt, generative)
                }
                Err(failures) => return self.all_failed(g, failures),
            },
            Some(sink) => match chain.generate_stream(&render).await {
                Ok(mut s) => {
                    first_token = Some(asked.elapsed().as_millis() as u64);
                    let generative = chain.backends().iter().any(|b| b.name() == s.backend && b.is_generative());
                    let shown = shown_sources(&g.sources, &s.prompt);
                    let mut sanitizer = citations::StreamSanitizer::new(shown, generative);
                    let emit = |text: &str, sanitizer: &mut citations::StreamSanitizer| {
                        let safe = sanitizer.push(text);
                        if !safe.is_empty() {
                            let _ = sink.send(safe);
                        }
                    };
                    // The best passage, appended when the model's text cannot stand alone.
                    let complete = |text: &mut String, sanitizer: &mut citations::StreamSanitizer| {
                        let rest = format!("\n\n{}", extractive::extract(&s.prompt));
                        emit(&rest, sanitizer);
                        text.push_str(&rest);
                    };
                    let mut text = String::new();
                    let mut failures = s.failures;
                    // Hold text back while it could still be the "no answer" signal, which the
                    // user must not see: any short text may turn out to hold it ("<answer>
                    // NO_ANSWER", "The passages don't say. NO_ANSWER").
                    let mut held = generative;
                    while let Some(piece) = s.stream.next().await {
                        match piece {
                            Ok(piece) => {
                                text.push_str(&piece);
                                if held {
                                    let t = text.trim_start().trim_start_matches(['`', '*']);
                                    let maybe_signal = text.trim().len() < prompt::NO_ANSWER_WITHIN
                                        || t.starts_with(prompt::NO_ANSWER);
                                    if maybe_signal {
                                        continue;
                                    }
                                    held = false;
                                    emit(&text, &mut sanitizer);
                                } else {
                                    emit(&piece, &mut sanitizer);
                                }
                            }
                            Err(error) => {
                                // Too late to switch backends silently: finish with the best passage.
                                tracing::warn!(backend = %s.backend, %error, "stream broke off");
                                failures.push(BackendFailure { backend: s.backend.clone(), error });
                                if held {
                                    emit(&text, &mut sanitizer);
                                    held = false;
                                }
                                complete(&mut text, &mut sanitizer);
                                break;
                            }
                        }
                    }
                    if held && !prompt::is_no_answer(&text) {
                        emit(&text, &mut sanitizer);
                        held = false;
                    }
                    let mut backend = s.backend;
                    if generative && !held && crate::llm::is_blank_answer(&text) {
                        // A lead-in and nothing after it: the user has seen the lead-in, so
                        // the best passage completes it, as the extractive backend answers.
                        tracing::warn!(backend = %backend, "the answer stopped after its lead-in; completing it with the best passage");
                        failures.push(BackendFailure {
                            backend: std::mem::replace(&mut backend, extractive::NAME.to_string()),
                            error: crate::llm::blank_answer_error(&text),
                        });
                        complete(&mut text, &mut sanitizer);
                    }
                    let rest = sanitizer.finish();
                    if !held && !rest.is_empty() {
                        let _ = sink.send(rest);
                    }
                    (text, backend, failures, s.prompt, generative)
                }
                Err(failures) => return self.all_failed(g, failures),
            },
        };
        let generation_ms = asked.elapsed().as_millis() as u64;
        let checking = Instant::now();

        let mut latency = g.latency;
        latency.generation = generation_ms;
        latency.first_token = first_token.or(Some(generation_ms));
        if generative && prompt::is_no_answer(&text) {
            let mut a = self.abstain(AbstainReason::ModelDeclined, &g.language, Notice::NoAnswer);
            a.backend = Some(backend_name);
            a.failures = failures;
            a.passages = g.retrieved;
            a.confidence = g.confidence;
            a.search_query = g.search_query;
            a.latency = latency;
            return a;
        }
        // Citations may only point at passages the answering backend was shown.
        let checked = citations::check(&text, &shown_sources(&g.sources, &used_prompt), generative);
        latency.prompt = prompt_ms + checking.elapsed().as_millis() as u64;
        Answer {
            outcome: if failures.is_empty() { Outcome::Answered } else { Outcome::Fallback },
            text: checked.text,
            citations: checked.citations,
            backend: Some(backend_name),
            confidence: g.confidence,
            latency,
            failures,
            abstain_reason: None,
            passages: g.retrieved,
            language: g.language,
            search_query: g.search_query,
        }
    }

    fn all_failed(&self, g: Generation, failures: Vec<BackendFailure>) -> Answer {
        tracing::error!(?failures, "every backend failed");
        let mut a = self.abstain(AbstainReason::Error, &g.language, Notice::Apology);
        a.failures = failures;
        a.passages = g.retrieved;
        a.search_query = g.search_query;
        a.latency = g.latency;
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Chunk;

    fn result(rank: usize, text: &str, cosine: f32) -> SearchResult {
        let chunk = Chunk {
            id: uuid::Uuid::nil(),
            root: "docs".into(),
            source: format!("p{rank}.md"),
            chunk_index: 0,
            title: "T".into(),
            heading_path: vec![],
            anchor: None,
            kind: DocKind::Doc,
            language: "en".into(),
            tags: vec![],
            text: text.into(),
            embed_text: text.into(),
            tokens: 50,
            question: None,
            answer: None,
            url: None,
            content_hash: "h".into(),
            cites: None,
        };
        SearchResult { rank, score: 1.0 / rank as f32, dense_score: Some(cosine), bm25_score: None, chunk }
    }

    #[test]
    fn the_gate_reads_only_the_passages_an_answer_is_made_from() {
        let q = "How do I rotate the server certificate?";
        let mut results: Vec<SearchResult> =
            (1..=5).map(|i| result(i, "Unrelated text about billing.", 0.30)).collect();
        results.push(result(6, "Unrelated text about invoices.", 0.80));
        assert!((gate_score(q, &results, 5) - 0.30).abs() < 1e-6, "passage 6 is not shown, so it cannot open the gate");
        assert!((gate_score(q, &results, 6) - 0.80).abs() < 1e-6);
        // A shown passage holding most of the question's terms gets the bonus.
        results[2] = result(3, "To rotate the server certificate, run drift cert rotate.", 0.35);
        assert!((gate_score(q, &results, 5) - (0.35 + COVERAGE_BONUS)).abs() < 1e-6);
    }

    #[test]
    fn follow_ups_are_recognised() {
        for q in ["and on Windows?", "What about macOS?", "how do I change it?", "那 Windows 呢？", "macOS?"] {
            assert!(looks_like_follow_up(q), "{q}");
        }
        for q in [
            "How do I install the server on Debian?",
            "Which ports does the sync service need open?",
            "Is there a size limit?",
            "Can I use more than one account?",
        ] {
            assert!(!looks_like_follow_up(q), "{q}");
        }
    }
}
