//! Builds the core services from typed settings: the embedder, the knowledge store (embedded or
//! Qdrant server) and the search parameters. Binaries call these; nothing here reads files other
//! than the ones the settings name, or the environment.

use std::sync::Arc;
use std::time::Duration;

use supportbot_config::Settings;

use crate::embed::{EmbedError, FastEmbedOptions, FastEmbedder};
use crate::search::SearchParams;
use crate::store::{CHUNKER_VERSION, Compatibility, EdgeStore, KnowledgeStore, QdrantOptions, QdrantStore, StoreError};

pub fn embedder_options(s: &Settings) -> FastEmbedOptions {
    FastEmbedOptions {
        model_dir: s.embedding.model_dir.clone(),
        onnxruntime_path: s.embedding.onnxruntime_path.clone(),
        model_id: s.embedding.model_id.clone(),
        batch_size: s.embedding.batch_size,
        threads: s.embedding.threads,
        max_tokens: s.embedding.max_tokens,
    }
}

/// Loads the local embedding model named by the settings.
pub fn embedder(s: &Settings) -> Result<Arc<FastEmbedder>, EmbedError> {
    FastEmbedder::new(&embedder_options(s)).map(Arc::new)
}

pub fn search_params(s: &Settings) -> SearchParams {
    SearchParams {
        limit: s.search.limit,
        candidates: s.search.candidates,
        rrf_k: s.search.rrf_k,
        dense_weight: s.search.dense_weight,
        bm25_weight: s.search.bm25_weight,
        cjk_dense_weight: s.search.cjk_dense_weight,
        cjk_bm25_weight: s.search.cjk_bm25_weight,
    }
}

/// What the index must have been built with to be usable by a process with this embedder.
pub fn compatibility(model_id: &str, dimension: usize) -> Compatibility {
    Compatibility { embedding_model: model_id.to_string(), dimension, chunker_version: CHUNKER_VERSION }
}

/// Human-readable location of the index, for messages.
pub fn store_location(s: &Settings) -> String {
    match &s.store.qdrant_url {
        Some(url) => format!("Qdrant collection {} at {url}", s.store.collection),
        None => s.store.path.display().to_string(),
    }
}

/// Opens the configured store. With `create`, a missing index is created with vectors of
/// `dimension`; without, it is [`StoreError::Missing`].
pub async fn open_store(s: &Settings, dimension: usize, create: bool) -> Result<Arc<dyn KnowledgeStore>, StoreError> {
    match &s.store.qdrant_url {
        Some(url) => {
            let opts = QdrantOptions {
                url: url.clone(),
                collection: s.store.collection.clone(),
                api_key: s.store.api_key.as_ref().map(|k| k.expose().to_string()),
                timeout: Duration::from_secs(30),
            };
            Ok(Arc::new(QdrantStore::connect(&opts, dimension, create).await?))
        }
        None => {
            let path = s.store.path.clone();
            let store = tokio::task::spawn_blocking(move || EdgeStore::open(&path, dimension, create))
                .await
                .map_err(|e| StoreError::Other(e.to_string()))??;
            Ok(Arc::new(store))
        }
    }
}
