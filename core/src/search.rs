//! Hybrid retrieval: dense (embedder + cosine) and lexical (BM25) candidates fused by a weighted
//! sum of their normalised scores (or, configurably, by weighted reciprocal rank fusion), with the
//! weights chosen by the script of the question, because the English-only embedder is close to
//! blind on Chinese, Japanese and Korean text. Passages in
//! another language than the question's are demoted, so a bilingual corpus answers each asker in
//! their own language while a question asked in a language the docs lack still finds them.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::document::{Chunk, DocKind};
use crate::embed::{EmbedError, Embedder};
use crate::lang::QuestionLanguage;
use crate::store::{Hit, KnowledgeStore, Ranked, SearchFilter, StoreError};

/// Retrieval knobs (from the `[search]` configuration section).
#[derive(Debug, Clone, PartialEq)]
pub struct SearchParams {
    /// Results returned by default.
    pub limit: usize,
    /// Candidates taken from each retriever before fusion.
    pub candidates: usize,
    /// How the two rankings are combined.
    pub fusion: FusionMethod,
    /// RRF constant (`FusionMethod::Ranks` only): larger flattens the difference between ranks.
    pub rrf_k: f32,
    pub dense_weight: f32,
    pub bm25_weight: f32,
    /// Weights used instead when the question is written in a CJK script.
    pub cjk_dense_weight: f32,
    /// Weight of the multilingual model's ranking, which replaces the dense one for CJK
    /// questions when that model is in use.
    pub multilingual_weight: f32,
    pub cjk_bm25_weight: f32,
    /// Factor on the fused score of passages in another language than the question's (1.0: no
    /// preference). Nothing is demoted when no passage is in the question's language.
    pub other_language_weight: f32,
    /// Documentation passages of fewer tokens than this (header included) are short; 0: none.
    pub short_passage_tokens: u32,
    /// Factor on the fused score of short documentation passages (1.0: no demotion).
    pub short_passage_weight: f32,
}

impl Default for SearchParams {
    fn default() -> Self {
        Self {
            limit: 5,
            candidates: 40,
            fusion: FusionMethod::Scores,
            rrf_k: 60.0,
            dense_weight: 1.0,
            bm25_weight: 0.5,
            cjk_dense_weight: 0.25,
            multilingual_weight: 1.0,
            cjk_bm25_weight: 0.75,
            other_language_weight: 0.5,
            short_passage_tokens: 45,
            short_passage_weight: 0.4,
        }
    }
}

impl SearchParams {
    /// The fusion for a question in `language` whose dense ranking weighs `dense_weight` (which
    /// depends on the model that ranked it, see `Searcher::dense_candidates`).
    pub fn fusion_for<'a>(&self, language: &'a QuestionLanguage, dense_weight: f32) -> Fusion<'a> {
        Fusion {
            method: self.fusion,
            dense_weight,
            bm25_weight: if language.cjk { self.cjk_bm25_weight } else { self.bm25_weight },
            k: self.rrf_k,
            language: Some((language, self.other_language_weight)),
            short_passage: (self.short_passage_tokens, self.short_passage_weight),
        }
    }
}

/// One ranked passage with the scores behind its rank.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResult {
    /// 1-based rank after fusion.
    pub rank: usize,
    /// Fused score (see [`FusionMethod`]); only its order is meaningful.
    pub score: f32,
    /// Cosine similarity to the question, if the passage was among the dense candidates.
    pub dense_score: Option<f32>,
    /// BM25 score, if the passage was among the lexical candidates.
    pub bm25_score: Option<f32>,
    #[serde(skip)]
    pub chunk: Chunk,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Answers "which passages are about this?" over a knowledge store.
#[derive(Clone)]
pub struct Searcher {
    store: Arc<dyn KnowledgeStore>,
    embedder: Arc<dyn Embedder>,
    params: SearchParams,
}

impl Searcher {
    pub fn new(store: Arc<dyn KnowledgeStore>, embedder: Arc<dyn Embedder>, params: SearchParams) -> Self {
        Self { store, embedder, params }
    }

    pub fn params(&self) -> &SearchParams {
        &self.params
    }

    pub fn store(&self) -> &Arc<dyn KnowledgeStore> {
        &self.store
    }

    pub fn embedder(&self) -> &Arc<dyn Embedder> {
        &self.embedder
    }

    /// Whether any passage contains `term` (as the BM25 tokenizer sees it).
    pub async fn has_term(&self, term: &str) -> Result<bool, SearchError> {
        Ok(!self.store.sparse_search(term, 1, &SearchFilter::default()).await?.is_empty())
    }

    /// The `limit` best passages for `query` (the configured limit when `None`).
    pub async fn search(
        &self,
        query: &str,
        limit: Option<usize>,
        filter: &SearchFilter,
    ) -> Result<Vec<SearchResult>, SearchError> {
        let limit = limit.unwrap_or(self.params.limit).max(1);
        let candidates = self.params.candidates.max(limit);
        let language = QuestionLanguage::of(query);
        let (dense, sparse) = tokio::try_join!(self.dense_candidates(query, &language, candidates, filter), async {
            Ok(self.store.sparse_ranking(query, candidates, filter).await?)
        },)?;
        let (dense, dense_weight) = dense;
        let fusion = self.params.fusion_for(&language, dense_weight);
        self.fuse_rankings(dense, sparse, &fusion, limit).await
    }

    /// [`fuse`] for rankings whose passages may not be read yet: reads them from the store
    /// only as far as needed to decide the top `limit` (see `settled`).
    pub async fn fuse_rankings(
        &self,
        dense: Vec<Ranked>,
        sparse: Vec<Ranked>,
        fusion: &Fusion<'_>,
        limit: usize,
    ) -> Result<Vec<SearchResult>, SearchError> {
        let mut reading = Reading::new(rank(dense, sparse, fusion), fusion, limit);
        while let Some(wanted) = reading.wanted() {
            let chunks = self.store.chunks(&wanted).await?;
            reading.fill(&wanted, chunks);
        }
        Ok(reading.finish())
    }
}

impl Searcher {
    /// Dense candidates and their weight in the fusion. A CJK question is embedded by the
    /// multilingual model when there is one and searched among the passages it embedded; when
    /// that finds nothing (no such passages), by the default model like any other question.
    async fn dense_candidates(
        &self,
        query: &str,
        language: &QuestionLanguage,
        candidates: usize,
        filter: &SearchFilter,
    ) -> Result<(Vec<Ranked>, f32), SearchError> {
        let failed = |e: tokio::task::JoinError| EmbedError::Inference(format!("embedding task failed: {e}"));
        if language.cjk && self.embedder.has_multilingual() {
            let (embedder, text) = (self.embedder.clone(), query.to_string());
            let vector =
                tokio::task::spawn_blocking(move || embedder.embed_multilingual_query(&text)).await.map_err(failed)?;
            match vector {
                Some(Ok(vector)) => {
                    let hits = self.store.multilingual_ranking(&vector, candidates, filter).await?;
                    if !hits.is_empty() {
                        return Ok((hits, self.params.multilingual_weight));
                    }
                }
                // The default model still gives an answer a chance.
                Some(Err(e)) => tracing::warn!(error = %e, "multilingual model failed; searching with the default one"),
                None => {}
            }
        }
        let (embedder, text) = (self.embedder.clone(), query.to_string());
        let vector = tokio::task::spawn_blocking(move || embedder.embed_query(&text)).await.map_err(failed)??;
        let hits = self.store.dense_ranking(&vector, candidates, filter).await?;
        let weight = if language.cjk { self.params.cjk_dense_weight } else { self.params.dense_weight };
        Ok((hits, weight))
    }
}

/// How the dense and the BM25 ranking are combined into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FusionMethod {
    /// The weighted sum of each retriever's scores, each min-max normalised over that
    /// retriever's candidates (the best 1, the last 0; a passage one retriever did not find
    /// gets 0 from it). Keeps how far ahead a candidate is, which ranks lose: on the LibreOffice
    /// help (BENCHMARKS.md, section 5) English hit@1 went from 0.69 with ranks to 0.74 on the
    /// task pages and from 0.54 to 0.59 on the whole help.
    #[default]
    Scores,
    /// Weighted reciprocal rank fusion: `Σ wᵢ / (k + rankᵢ)` with 1-based ranks.
    Ranks,
}

/// How two rankings are fused and which passages are demoted.
#[derive(Debug, Clone, Copy)]
pub struct Fusion<'a> {
    pub method: FusionMethod,
    /// Weight of the dense (embedding) ranking.
    pub dense_weight: f32,
    /// Weight of the BM25 ranking.
    pub bm25_weight: f32,
    /// The RRF constant (`FusionMethod::Ranks`).
    pub k: f32,
    /// The question's language and the factor for passages in another one.
    pub language: Option<(&'a QuestionLanguage, f32)>,
    /// Documentation passages of fewer tokens than `.0` (when known) get the factor `.1`.
    pub short_passage: (u32, f32),
}

impl Fusion<'_> {
    /// Plain weighted RRF: no language preference, no demotion of short passages.
    pub fn weights(dense_weight: f32, bm25_weight: f32, k: f32) -> Self {
        Self { method: FusionMethod::Ranks, dense_weight, bm25_weight, k, language: None, short_passage: (0, 1.0) }
    }

    /// A plain weighted sum of normalised scores: no language preference, no demotion.
    pub fn scores(dense_weight: f32, bm25_weight: f32) -> Self {
        Self { method: FusionMethod::Scores, ..Self::weights(dense_weight, bm25_weight, 60.0) }
    }
}

/// The fused score of each candidate (see [`FusionMethod`]), times the language factor for
/// passages not in the question's language and the short-passage factor for documentation
/// passages shorter than the limit. Ties keep the dense order first.
pub fn fuse(dense: Vec<Hit>, sparse: Vec<Hit>, fusion: &Fusion<'_>, limit: usize) -> Vec<SearchResult> {
    let ranked = |hits: Vec<Hit>| hits.into_iter().map(Ranked::from).collect();
    finish(rank(ranked(dense), ranked(sparse), fusion), fusion, limit)
}

/// A passage found by either retriever, before the factors.
#[derive(Debug)]
struct Candidate {
    id: uuid::Uuid,
    /// The fused score before the factors: an upper bound of the final one, as the factors are
    /// at most 1.
    unscaled: f32,
    /// Whether a retriever of non-zero weight found it.
    weighted: bool,
    dense: Option<f32>,
    bm25: Option<f32>,
    first_seen: usize,
    /// `None` until read from the store.
    chunk: Option<Chunk>,
}

/// The candidates of both rankings by fused score, best first (ties: first seen, dense first).
/// Passages only a zero-weight retriever found are left out.
fn rank(dense: Vec<Ranked>, sparse: Vec<Ranked>, fusion: &Fusion<'_>) -> Vec<Candidate> {
    let mut all: Vec<Candidate> = Vec::new();
    let mut index: HashMap<uuid::Uuid, usize> = HashMap::new();
    for (list, weight, is_dense) in [(dense, fusion.dense_weight, true), (sparse, fusion.bm25_weight, false)] {
        let (lo, hi) =
            list.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), h| (lo.min(h.score), hi.max(h.score)));
        for (i, hit) in list.into_iter().enumerate() {
            let contribution = match fusion.method {
                _ if weight <= 0.0 => 0.0,
                FusionMethod::Ranks => weight / (fusion.k + (i + 1) as f32),
                // All candidates equal (or only one): each counts fully.
                FusionMethod::Scores if hi > lo => weight * (hit.score - lo) / (hi - lo),
                FusionMethod::Scores => weight,
            };
            let at = *index.entry(hit.id).or_insert_with(|| {
                all.push(Candidate {
                    id: hit.id,
                    unscaled: 0.0,
                    weighted: false,
                    dense: None,
                    bm25: None,
                    first_seen: all.len(),
                    chunk: None,
                });
                all.len() - 1
            });
            let c = &mut all[at];
            c.unscaled += contribution;
            c.weighted |= weight > 0.0;
            if c.chunk.is_none() {
                c.chunk = hit.chunk;
            }
            if is_dense {
                c.dense = Some(hit.score);
            } else {
                c.bm25 = Some(hit.score);
            }
        }
    }
    all.retain(|c| c.weighted);
    // Stable: equal scores keep the order first seen.
    all.sort_by(|a, b| b.unscaled.total_cmp(&a.unscaled));
    all
}

/// Whether the language factor applies: only when some passage is known to be in the
/// question's language; otherwise every passage stays as ranked (undecided ones included).
fn prefers_language(known: &[Candidate], fusion: &Fusion<'_>) -> bool {
    fusion.language.is_some_and(|(question, _)| {
        known.iter().filter_map(|c| c.chunk.as_ref()).any(|c| c.language != "und" && question.matches(&c.language))
    })
}

/// The product of the factors that apply to `chunk`.
fn factor(chunk: &Chunk, fusion: &Fusion<'_>, prefer_language: bool) -> f32 {
    let mut f = 1.0;
    if let Some((question, factor)) = fusion.language
        && prefer_language
        && !question.matches(&chunk.language)
    {
        f *= factor;
    }
    let (short, factor) = fusion.short_passage;
    if chunk.kind == DocKind::Doc && chunk.tokens > 0 && chunk.tokens < short {
        f *= factor;
    }
    f
}

/// Whether the first `known` candidates, read, decide the top `limit` whatever the passages
/// not read yet hold. A passage's fused score is at most its unscaled one, so once the language
/// preference is settled, the rest cannot enter when the `limit`-th best fused score of those
/// read beats the next unscaled score. Until a passage in the question's language is seen, it is
/// not settled, since one would demote the others.
fn settled(candidates: &[Candidate], known: usize, fusion: &Fusion<'_>, limit: usize) -> bool {
    if known >= candidates.len() {
        return true;
    }
    let read = &candidates[..known];
    if known < limit || (fusion.language.is_some() && !prefers_language(read, fusion)) {
        return false;
    }
    let mut fused: Vec<f32> =
        read.iter().filter_map(|c| c.chunk.as_ref().map(|chunk| c.unscaled * factor(chunk, fusion, true))).collect();
    if fused.len() < limit {
        return false;
    }
    let (_, kth, _) = fused.select_nth_unstable_by(limit - 1, |a, b| b.total_cmp(a));
    *kth > candidates[known].unscaled
}

/// The reading of a fusion's passages: best-first, `limit` at first and twice as many each
/// round after, until the factors can no longer change which ones make the top `limit`
/// (`settled`). Without demotions the first `limit` decide it; when none is in the question's
/// language, all are read, in a few rounds.
struct Reading<'r, 'a> {
    candidates: Vec<Candidate>,
    fusion: &'r Fusion<'a>,
    limit: usize,
    batch: usize,
}

impl<'r, 'a> Reading<'r, 'a> {
    fn new(candidates: Vec<Candidate>, fusion: &'r Fusion<'a>, limit: usize) -> Self {
        Self { candidates, fusion, limit, batch: limit }
    }

    /// The ids of the passages to read next, or `None` once the top `limit` is decided.
    fn wanted(&mut self) -> Option<Vec<uuid::Uuid>> {
        let known = self.candidates.iter().take_while(|c| c.chunk.is_some()).count();
        if settled(&self.candidates, known, self.fusion, self.limit) {
            return None;
        }
        let wanted =
            self.candidates[known..].iter().filter(|c| c.chunk.is_none()).take(self.batch).map(|c| c.id).collect();
        self.batch *= 2;
        Some(wanted)
    }

    /// Takes the passages read for `wanted`. One not found (removed since it was ranked, by a
    /// sync running meanwhile) drops out.
    fn fill(&mut self, wanted: &[uuid::Uuid], chunks: Vec<Chunk>) {
        let mut read: HashMap<uuid::Uuid, Chunk> = chunks.into_iter().map(|c| (c.id, c)).collect();
        for c in self.candidates.iter_mut().filter(|c| c.chunk.is_none()) {
            c.chunk = read.remove(&c.id);
        }
        self.candidates.retain(|c| c.chunk.is_some() || !wanted.contains(&c.id));
    }

    fn finish(self) -> Vec<SearchResult> {
        finish(self.candidates, self.fusion, self.limit)
    }
}

/// The top `limit` of the candidates read, by fused score (ties: first seen).
fn finish(candidates: Vec<Candidate>, fusion: &Fusion<'_>, limit: usize) -> Vec<SearchResult> {
    let prefer = prefers_language(&candidates, fusion);
    let mut all: Vec<(f32, Candidate, Chunk)> = candidates
        .into_iter()
        .filter_map(|mut c| {
            let chunk = c.chunk.take()?;
            Some((c.unscaled * factor(&chunk, fusion, prefer), c, chunk))
        })
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.first_seen.cmp(&b.1.first_seen)));
    all.into_iter()
        .take(limit)
        .enumerate()
        .map(|(i, (score, c, chunk))| SearchResult {
            rank: i + 1,
            score,
            dense_score: c.dense,
            bm25_score: c.bm25,
            chunk,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{DocKind, chunk_id};

    fn hit(name: &str, score: f32) -> Hit {
        hit_in(name, "en", score)
    }

    fn hit_in(name: &str, language: &str, score: f32) -> Hit {
        Hit {
            chunk: Chunk {
                id: chunk_id("r", name, 0),
                root: "r".into(),
                source: name.into(),
                chunk_index: 0,
                title: String::new(),
                heading_path: vec![],
                anchor: None,
                kind: DocKind::Doc,
                language: language.into(),
                tags: vec![],
                text: String::new(),
                embed_text: String::new(),
                tokens: 0,
                question: None,
                answer: None,
                url: None,
                content_hash: String::new(),
                cites: None,
            },
            score,
        }
    }

    #[test]
    fn a_passage_found_by_both_retrievers_wins() {
        let out = fuse(
            vec![hit("a", 0.9), hit("b", 0.8)],
            vec![hit("b", 7.0), hit("c", 5.0)],
            &Fusion::weights(1.0, 1.0, 60.0),
            10,
        );
        let order: Vec<_> = out.iter().map(|r| r.chunk.source.as_str()).collect();
        assert_eq!(order, vec!["b", "a", "c"]);
        assert_eq!(out[0].dense_score, Some(0.8));
        assert_eq!(out[0].bm25_score, Some(7.0));
        assert_eq!(out[1].bm25_score, None);
        assert!((out[0].score - (1.0 / 62.0 + 1.0 / 61.0)).abs() < 1e-6);
    }

    #[test]
    fn weights_decide_between_retrievers_and_zero_weight_drops_one() {
        let dense = vec![hit("a", 0.9)];
        let sparse = vec![hit("z", 3.0)];
        let lexical_first = fuse(dense.clone(), sparse.clone(), &Fusion::weights(0.25, 1.0, 60.0), 10);
        assert_eq!(lexical_first[0].chunk.source, "z");
        let dense_only = fuse(dense, sparse, &Fusion::weights(1.0, 0.0, 60.0), 10);
        assert_eq!(dense_only.len(), 1);
        assert_eq!(dense_only[0].chunk.source, "a");
    }

    fn preferring<'a>(question: &'a QuestionLanguage, factor: f32) -> Fusion<'a> {
        Fusion { language: Some((question, factor)), ..Fusion::weights(1.0, 0.5, 60.0) }
    }

    #[test]
    fn passages_in_the_question_language_come_first_unless_there_are_none() {
        let english = QuestionLanguage::of("how do I make a hanging indent for my list of references?");
        let dense = vec![hit_in("zh-page", "zh", 0.7), hit_in("en-page", "en", 0.6)];
        let sparse = vec![hit_in("zh-page", "zh", 9.0), hit_in("en-page", "en", 8.0)];
        let order = |out: Vec<SearchResult>| out.into_iter().map(|r| r.chunk.source).collect::<Vec<_>>();
        let preferred = fuse(dense.clone(), sparse.clone(), &preferring(&english, 0.5), 10);
        assert_eq!(order(preferred), ["en-page", "zh-page"]);
        let neutral = fuse(dense, sparse, &preferring(&english, 1.0), 10);
        assert_eq!(order(neutral), ["zh-page", "en-page"]);
        // A Chinese question over English-only docs keeps the retrievers' order, even where an
        // undecided passage (not demoted) is among them.
        let chinese = QuestionLanguage::of("怎么做悬挂缩进？");
        let dense = vec![hit_in("a", "en", 0.5), hit_in("b", "und", 0.4)];
        let out = fuse(
            dense,
            vec![hit_in("c", "en", 3.0)],
            &Fusion { language: Some((&chinese, 0.5)), ..Fusion::weights(0.25, 1.0, 60.0) },
            10,
        );
        assert_eq!(order(out), ["c", "a", "b"]);
    }

    #[test]
    fn short_documentation_passages_are_demoted_but_not_faq_entries_or_unknown_lengths() {
        let sized = |name: &str, kind: DocKind, tokens: u32| {
            let mut h = hit(name, 0.0);
            h.chunk.kind = kind;
            h.chunk.tokens = tokens;
            h
        };
        let order = |out: Vec<SearchResult>| out.into_iter().map(|r| r.chunk.source).collect::<Vec<_>>();
        let fusion = Fusion { short_passage: (45, 0.85), ..Fusion::weights(1.0, 0.5, 60.0) };
        // A one-line option (20 tokens) ranked first by the embedder falls behind the task
        // passage ranked just under it; with the demotion off it stays first.
        let dense = vec![sized("option", DocKind::Doc, 20), sized("task", DocKind::Doc, 150)];
        assert_eq!(order(fuse(dense.clone(), vec![], &fusion, 10)), ["task", "option"]);
        assert_eq!(order(fuse(dense, vec![], &Fusion::weights(1.0, 0.5, 60.0), 10)), ["option", "task"]);
        // An FAQ entry is short by nature, and a passage whose length was not counted is left
        // as ranked.
        for first in [sized("faq", DocKind::Faq, 12), sized("uncounted", DocKind::Doc, 0)] {
            let name = first.chunk.source.clone();
            let out = fuse(vec![first, sized("task", DocKind::Doc, 150)], vec![], &fusion, 10);
            assert_eq!(order(out), [name.as_str(), "task"]);
        }
        // The limit is exclusive, and either setting alone turns the demotion off.
        let at_limit = vec![sized("option", DocKind::Doc, 45), sized("task", DocKind::Doc, 150)];
        assert_eq!(order(fuse(at_limit, vec![], &fusion, 10)), ["option", "task"]);
        for off in [(0, 0.85), (45, 1.0)] {
            let dense = vec![sized("option", DocKind::Doc, 20), sized("task", DocKind::Doc, 150)];
            let out = fuse(dense, vec![], &Fusion { short_passage: off, ..fusion }, 10);
            assert_eq!(order(out), ["option", "task"], "{off:?}");
        }
        // Far ahead in both rankings, a short passage still wins: it is demoted, not dropped.
        let dense =
            vec![sized("option", DocKind::Doc, 20), sized("a", DocKind::Doc, 90), sized("task", DocKind::Doc, 150)];
        let sparse = vec![sized("option", DocKind::Doc, 20)];
        assert_eq!(order(fuse(dense, sparse, &fusion, 10))[0], "option");
    }

    #[test]
    fn score_fusion_keeps_a_clear_lead_that_rank_fusion_gives_away() {
        let names = |out: Vec<SearchResult>| out.into_iter().map(|r| r.chunk.source).collect::<Vec<_>>();
        // The embedder is sure of "a" (0.80 against 0.50 for the next); BM25 did not find it and
        // has "b" and "c" nearly tied on top.
        let dense = |lead: f32| vec![hit("a", lead), hit("b", 0.50), hit("c", 0.48), hit("d", 0.30)];
        let sparse = vec![hit("b", 9.0), hit("c", 8.9), hit("d", 2.0)];
        let ranks = Fusion::weights(1.0, 0.5, 60.0);
        let scores = Fusion::scores(1.0, 0.5);
        // Ranks only know that "b" is second and first: it wins.
        assert_eq!(names(fuse(dense(0.80), sparse.clone(), &ranks, 10))[0], "b");
        // Scores know how far ahead "a" is: it stays first.
        assert_eq!(names(fuse(dense(0.80), sparse.clone(), &scores, 10)), ["a", "b", "c", "d"]);
        // A lead of a hair is no lead: BM25's preference decides.
        assert_eq!(names(fuse(dense(0.51), sparse.clone(), &scores, 10))[0], "b");
        // The last candidate of a list (normalised to 0) is still a candidate, and a zero
        // weight leaves out what only that retriever found.
        let out = fuse(vec![hit("a", 0.9), hit("z", 0.1)], vec![hit("a", 3.0)], &scores, 10);
        assert_eq!(names(out), ["a", "z"]);
        let out = fuse(vec![hit("a", 0.9)], vec![hit("a", 3.0), hit("y", 1.0)], &Fusion::scores(1.0, 0.0), 10);
        assert_eq!(names(out), ["a"]);
        // One candidate alone, or all equal, count fully.
        let out = fuse(vec![hit("a", 0.4)], vec![hit("b", 5.0), hit("c", 5.0)], &Fusion::scores(1.0, 0.5), 10);
        assert_eq!(out.iter().map(|r| r.score).collect::<Vec<_>>(), [1.0, 0.5, 0.5]);
    }

    /// `Searcher::fuse_rankings` against a store that is a map. Returns the results and how
    /// many passages were read.
    fn fuse_lazily(dense: &[Hit], sparse: &[Hit], fusion: &Fusion<'_>, limit: usize) -> (Vec<SearchResult>, usize) {
        fuse_lazily_without(dense, sparse, fusion, limit, &[])
    }

    /// [`fuse_lazily`] where the passages named in `removed` are gone from the store by the
    /// time they are read (a sync removed them after the rankings were taken).
    fn fuse_lazily_without(
        dense: &[Hit],
        sparse: &[Hit],
        fusion: &Fusion<'_>,
        limit: usize,
        removed: &[&str],
    ) -> (Vec<SearchResult>, usize) {
        let store: HashMap<uuid::Uuid, Chunk> = dense
            .iter()
            .chain(sparse)
            .filter(|h| !removed.contains(&h.chunk.source.as_str()))
            .map(|h| (h.chunk.id, h.chunk.clone()))
            .collect();
        let bare = |hits: &[Hit]| hits.iter().map(|h| Ranked { id: h.chunk.id, score: h.score, chunk: None }).collect();
        let mut reading = Reading::new(rank(bare(dense), bare(sparse), fusion), fusion, limit);
        let mut reads = 0;
        while let Some(wanted) = reading.wanted() {
            reads += wanted.len();
            let chunks = wanted.iter().filter_map(|id| store.get(id).cloned()).collect();
            reading.fill(&wanted, chunks);
        }
        (reading.finish(), reads)
    }

    #[test]
    fn reading_only_the_deciding_passages_gives_the_full_fusion() {
        let english = QuestionLanguage::of("how do I insert a page number in the footer of my document?");
        let chinese = QuestionLanguage::of("如何在页脚中插入页码？");
        // 40 dense and 40 BM25 candidates overlapping in part, in both languages and lengths;
        // a pseudo-random mix, fixed by the seed.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let pool: Vec<Hit> = (0..120)
            .map(|i| {
                let r = next();
                let mut h = hit_in(&format!("p{i}"), if r % 5 == 0 { "zh" } else { "en" }, 0.0);
                h.chunk.tokens = if r % 7 == 0 { 20 } else { 200 };
                h
            })
            .collect();
        let mut tried = 0;
        let mut fewer = 0;
        for round in 0..200 {
            let mut pick = || {
                let mut hits: Vec<Hit> = Vec::new();
                while hits.len() < 40 {
                    let h = &pool[(next() % pool.len() as u64) as usize];
                    if hits.iter().all(|x| x.chunk.id != h.chunk.id) {
                        hits.push(h.clone());
                    }
                }
                // Scores falling down the list by uneven steps, as a retriever returns them.
                let mut score = 1.0;
                for h in &mut hits {
                    h.score = score;
                    score -= (next() % 100) as f32 / 2000.0;
                }
                hits
            };
            let (mut dense, mut sparse) = (pick(), pick());
            // Every fifth round a Chinese question, every seventh an index with no English.
            let question = if round % 5 == 0 { &chinese } else { &english };
            if round % 7 == 0 {
                for h in dense.iter_mut().chain(sparse.iter_mut()) {
                    h.chunk.language = "zh".into();
                }
            }
            for (limit, method) in
                [1, 5, 10].into_iter().flat_map(|l| [(l, FusionMethod::Ranks), (l, FusionMethod::Scores)])
            {
                let fusion = Fusion { method, short_passage: (45, 0.85), ..preferring(question, 0.5) };
                let full = fuse(dense.clone(), sparse.clone(), &fusion, limit);
                let (lazy, reads) = fuse_lazily(&dense, &sparse, &fusion, limit);
                let view = |out: &[SearchResult]| {
                    out.iter()
                        .map(|r| (r.chunk.source.clone(), r.score, r.dense_score, r.bm25_score))
                        .collect::<Vec<_>>()
                };
                assert_eq!(view(&lazy), view(&full), "round {round}, limit {limit}");
                tried += 1;
                let total =
                    dense.iter().chain(&sparse).map(|h| h.chunk.id).collect::<std::collections::HashSet<_>>().len();
                if reads < total {
                    fewer += 1;
                }
            }
        }
        // Most fusions decide their top early: far fewer passages are read than found.
        assert!(fewer * 10 > tried * 7, "read fewer than all in only {fewer} of {tried} fusions");
    }

    #[test]
    fn passages_removed_between_ranking_and_reading_drop_out_and_the_next_ones_move_up() {
        // Ten passages, ranked the same by both retrievers; a sync removes the first and the
        // third after the rankings were taken, before their text is read.
        let hits: Vec<Hit> = (0..10).map(|i| hit(&format!("p{i}"), 1.0 - i as f32 / 10.0)).collect();
        let names = |out: &[SearchResult]| out.iter().map(|r| r.chunk.source.clone()).collect::<Vec<_>>();
        for fusion in [Fusion::weights(1.0, 0.5, 60.0), Fusion::scores(1.0, 0.5)] {
            let (out, _) = fuse_lazily_without(&hits, &hits, &fusion, 3, &["p0", "p2"]);
            // Still three results, the survivors in their order, ranked from 1 again.
            assert_eq!(names(&out), ["p1", "p3", "p4"], "{:?}", fusion.method);
            assert_eq!(out.iter().map(|r| r.rank).collect::<Vec<_>>(), [1, 2, 3]);
            // Their scores are those of the full fusion: the removed passages do not reorder
            // the rest.
            let full = fuse(hits.clone(), hits.clone(), &fusion, 10);
            for r in &out {
                let same = full.iter().find(|f| f.chunk.source == r.chunk.source).expect("in the full fusion");
                assert_eq!(r.score, same.score, "{}", r.chunk.source);
            }
            // When everything found is gone, the search finds nothing rather than failing or
            // looping.
            let all: Vec<String> = (0..10).map(|i| format!("p{i}")).collect();
            let all: Vec<&str> = all.iter().map(String::as_str).collect();
            assert!(fuse_lazily_without(&hits, &hits, &fusion, 3, &all).0.is_empty());
        }
    }
}
