//! Builds the core services from typed settings: the embedder, the knowledge store (embedded or
//! Qdrant server), the search parameters, the answer backends and the model chain, the answer
//! config, the conversation memory limits and the root URLs for citation links. Binaries call
//! these; nothing here reads files other than the ones the settings name, or the environment.

use std::sync::Arc;
use std::time::Duration;

use supportbot_config::{Multilingual, Settings};

use crate::embed::e5::{self, E5Embedder};
use crate::embed::{
    EmbedError, Embedder, FastEmbedOptions, FastEmbedder, WithMultilingual, is_multilingual_model_id,
    multilingual_model_id,
};
use crate::search::SearchParams;
use crate::store::{
    CHUNKER_VERSION, Compatibility, EdgeStore, KnowledgeStore, QdrantOptions, QdrantStore, StoreError, VectorLayout,
};

pub fn embedder_options(s: &Settings) -> FastEmbedOptions {
    FastEmbedOptions {
        model_dir: s.embedding.model_dir.clone(),
        onnxruntime_path: s.embedding.onnxruntime_path.clone(),
        model_id: s.embedding.model_id.clone(),
        batch_size: s.embedding.batch_size,
        threads: s.embedding.threads,
        query_sessions: s.embedding.query_sessions,
        max_tokens: s.embedding.max_tokens,
        release_idle_after: crate::embed::RELEASE_IDLE_AFTER,
    }
}

/// Loads the local embedding model named by the settings, paired with the multilingual model
/// when `embedding.multilingual` asks for it. `index_model` is the model id an existing index
/// records: under `auto` the process follows it, so an index keeps working whether or not the
/// multilingual model was installed since it was built.
pub fn embedder(s: &Settings, index_model: Option<&str>) -> Result<Arc<dyn Embedder>, EmbedError> {
    let main: Arc<dyn Embedder> = Arc::new(FastEmbedder::new(&embedder_options(s))?);
    let want = wants_multilingual(s, index_model);
    if matches!(want, Want::No) {
        return Ok(main);
    }
    match (E5Embedder::new(&s.embedding.multilingual_dir, s.embedding.threads), want) {
        (Ok(e5), _) => Ok(Arc::new(WithMultilingual::new(main, e5))),
        // Under `auto`, a model that is installed but cannot be loaded is not fatal.
        (Err(e), Want::IfLoads) => {
            tracing::warn!(error = %e, "multilingual model not loaded; going on without it");
            Ok(main)
        }
        (Err(EmbedError::Multilingual { path, reason }), Want::ForIndex) => {
            Err(EmbedError::IndexNeedsMultilingual { path, reason })
        }
        (Err(e), _) => Err(e),
    }
}

/// What the settings and the index ask of the multilingual model.
enum Want {
    No,
    /// `auto` with the model installed: use it if it loads.
    IfLoads,
    /// `on`: it must load.
    On,
    /// `auto` and the index was built with it: it must load, or the index cannot be used.
    ForIndex,
}

fn wants_multilingual(s: &Settings, index_model: Option<&str>) -> Want {
    let dir = &s.embedding.multilingual_dir;
    let with_it = multilingual_model_id(&s.embedding.model_id);
    match s.embedding.multilingual {
        Multilingual::Off => Want::No,
        Multilingual::On => Want::On,
        Multilingual::Auto if index_model == Some(with_it.as_str()) => Want::ForIndex,
        Multilingual::Auto if index_model == Some(s.embedding.model_id.as_str()) => {
            if e5::installed(dir) {
                tracing::info!(
                    "the index was built without the multilingual model: run `supportbot-ingest --rebuild` to use it \
                     for Chinese, Japanese and Korean"
                );
            }
            Want::No
        }
        Multilingual::Auto => {
            if e5::installed(dir) {
                return Want::IfLoads;
            }
            tracing::warn!(
                dir = %dir.display(),
                "multilingual model not installed (run scripts/setup): Chinese, Japanese and Korean \
                 questions rest on BM25 and the English model"
            );
            Want::No
        }
    }
}

/// The model id the index records for these settings, without loading any model.
pub fn model_id(s: &Settings, index_model: Option<&str>) -> String {
    match wants_multilingual(s, index_model) {
        Want::No => s.embedding.model_id.clone(),
        Want::IfLoads | Want::On | Want::ForIndex => multilingual_model_id(&s.embedding.model_id),
    }
}

pub fn search_params(s: &Settings) -> SearchParams {
    SearchParams {
        limit: s.search.limit,
        candidates: s.search.candidates,
        fusion: match s.search.fusion {
            supportbot_config::FusionMethod::Scores => crate::search::FusionMethod::Scores,
            supportbot_config::FusionMethod::Ranks => crate::search::FusionMethod::Ranks,
        },
        rrf_k: s.search.rrf_k,
        dense_weight: s.search.dense_weight,
        bm25_weight: s.search.bm25_weight,
        cjk_dense_weight: s.search.cjk_dense_weight,
        multilingual_weight: s.search.multilingual_weight,
        cjk_bm25_weight: s.search.cjk_bm25_weight,
        other_language_weight: s.search.other_language_weight,
        short_passage_tokens: s.search.short_passage_tokens,
        short_passage_weight: s.search.short_passage_weight,
    }
}

/// What the index must have been built with to be usable by a process with this embedder.
pub fn compatibility(model_id: &str, dimension: usize) -> Compatibility {
    Compatibility {
        embedding_model: model_id.to_string(),
        dimension,
        chunker_version: CHUNKER_VERSION,
        multilingual: is_multilingual_model_id(model_id),
    }
}

/// Human-readable location of the index, for messages.
pub fn store_location(s: &Settings) -> String {
    match &s.store.qdrant_url {
        Some(url) => format!("Qdrant collection {} at {url}", s.store.collection),
        None => s.store.path.display().to_string(),
    }
}

/// Opens the configured store. With `create`, a missing index is created with that layout;
/// without, it is [`StoreError::Missing`]. An existing index keeps its own layout.
pub async fn open_store(s: &Settings, create: Option<VectorLayout>) -> Result<Arc<dyn KnowledgeStore>, StoreError> {
    match &s.store.qdrant_url {
        Some(url) => {
            let opts = QdrantOptions {
                url: url.clone(),
                collection: s.store.collection.clone(),
                api_key: s.store.api_key.as_ref().map(|k| k.expose().to_string()),
                timeout: Duration::from_secs(30),
            };
            Ok(Arc::new(QdrantStore::connect(&opts, create).await?))
        }
        None => {
            let path = s.store.path.clone();
            let store = tokio::task::spawn_blocking(move || EdgeStore::open(&path, create))
                .await
                .map_err(|e| StoreError::Other(e.to_string()))??;
            Ok(Arc::new(store))
        }
    }
}

/// The Answerer's knobs from `[answer]` and `[llm]`.
pub fn answer_config(s: &Settings) -> crate::answer::AnswerConfig {
    crate::answer::AnswerConfig {
        min_relevance: s.answer.min_relevance,
        min_cjk_overlap: s.answer.min_cjk_overlap,
        curated_min_similarity: s.answer.curated_min_similarity,
        max_passages: s.answer.max_passages,
        max_question_chars: s.answer.max_question_chars,
        max_output_tokens: s.llm.max_output_tokens,
        temperature: s.llm.temperature,
    }
}

pub fn memory_limits(s: &Settings) -> crate::answer::memory::MemoryLimits {
    crate::answer::memory::MemoryLimits {
        max_turns: s.answer.memory_turns,
        ttl: Duration::from_secs(s.answer.memory_ttl_secs),
    }
}

fn retry_policy(s: &Settings) -> crate::llm::retry::RetryPolicy {
    crate::llm::retry::RetryPolicy {
        max_retries: s.llm.max_retries,
        backoff: Duration::from_millis(s.llm.backoff_ms),
        max_wait: Duration::from_secs(s.llm.max_retry_wait_secs),
    }
}

/// Builds one backend by name.
pub fn backend(s: &Settings, name: &str) -> Result<Arc<dyn crate::llm::LanguageModel>, crate::llm::ModelError> {
    use crate::llm::ModelError;
    let timeout = Duration::from_secs(s.llm.timeout_secs);
    match name {
        "extractive" => Ok(Arc::new(crate::llm::extractive::ExtractiveModel::new())),
        "gemini" => {
            let key =
                s.gemini.api_key.as_ref().ok_or_else(|| ModelError::Unavailable("gemini.api_key is not set".into()))?;
            let opts = crate::llm::gemini::GeminiOptions {
                base_url: s.gemini.base_url.clone(),
                api_key: key.expose().to_string(),
                model: s.gemini.model.clone(),
                timeout,
                retry: retry_policy(s),
                thinking_level: None,
                context_tokens: 1_000_000,
            };
            Ok(Arc::new(crate::llm::gemini::GeminiModel::new(opts)?))
        }
        "openai" => {
            let base_url = s
                .openai
                .base_url
                .clone()
                .ok_or_else(|| ModelError::Unavailable("openai.base_url is not set".into()))?;
            let opts = crate::llm::openai::OpenAiOptions {
                base_url,
                api_key: s.openai.api_key.as_ref().map(|k| k.expose().to_string()),
                model: s.openai.model.clone(),
                timeout,
                retry: retry_policy(s),
                context_tokens: 8192,
            };
            Ok(Arc::new(crate::llm::openai::OpenAiModel::new(opts)?))
        }
        "local" => {
            let opts = crate::llm::local::LocalOptions {
                model_path: s.local.model_path.clone(),
                context_tokens: s.local.context_tokens,
                threads: s.local.threads,
                max_concurrency: s.local.max_concurrency,
                timeout,
            };
            Ok(Arc::new(crate::llm::local::LocalModel::new(opts)?))
        }
        other => Err(ModelError::Unavailable(format!("unknown backend `{other}`"))),
    }
}

/// The model chain of the settings (`llm.chain`, or derived), plus `extra` if given and not in
/// it (for `--backend local`). A backend that cannot be built is left out with a warning, so the
/// bot still answers; the failures are returned for the caller to report.
pub fn model_chain(
    s: &Settings,
    extra: Option<&str>,
) -> (crate::llm::chain::ModelChain, Vec<(String, crate::llm::ModelError)>) {
    let mut names = s.effective_chain();
    if let Some(extra) = extra
        && !names.iter().any(|n| n == extra)
    {
        names.insert(0, extra.to_string());
    }
    let mut backends = Vec::new();
    let mut failures = Vec::new();
    for name in names {
        match backend(s, &name) {
            Ok(b) => backends.push(b),
            Err(e) => {
                tracing::warn!(backend = %name, error = %e, "backend unavailable, leaving it out of the chain");
                failures.push((name, e));
            }
        }
    }
    (crate::llm::chain::ModelChain::new(backends), failures)
}

/// Public base URL per source root: `[[sources]]` first, then what the index recorded at ingest.
pub fn root_urls(s: &Settings, meta: Option<&crate::store::IndexMeta>) -> std::collections::HashMap<String, String> {
    let mut urls = std::collections::HashMap::new();
    if let Some(meta) = meta {
        for (name, state) in &meta.roots {
            if let Some(url) = &state.url {
                urls.insert(name.clone(), url.clone());
            }
        }
    }
    for source in &s.sources {
        if let Some(url) = &source.url {
            urls.insert(source.name.clone(), url.clone());
        }
    }
    urls
}
