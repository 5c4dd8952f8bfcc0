//! The `KnowledgeStore` capability: chunks with a dense and a BM25 vector (and, for CJK passages
//! when the multilingual model is in use, a multilingual one, `dense_ml`), per-document sync
//! records and collection metadata. Two vendors share one schema: `EdgeStore` (embedded
//! qdrant-edge on disk, the default) and `QdrantStore` (a Qdrant server or cluster).

mod bm25;
mod edge;
mod payload;
mod qdrant;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::document::{Chunk, DocKind};

pub use bm25::Bm25Encoder;
pub use edge::EdgeStore;
pub use qdrant::{QdrantOptions, QdrantStore};

/// Name of the dense vector in every collection.
pub const DENSE_VECTOR: &str = "dense";
/// Name of the multilingual dense vector, held by CJK passages when the multilingual model is in
/// use.
pub const MULTILINGUAL_VECTOR: &str = "dense_ml";
/// Name of the sparse BM25 vector (IDF modifier) in every collection.
pub const SPARSE_VECTOR: &str = "bm25";

/// Bumped whenever chunking or the BM25 tokenization changes in a way that makes old chunks
/// incomparable (6: CJK bigrams instead of dictionary segmentation; 7: script-picked
/// alternatives hidden in HTML are kept); stored with the
/// index and checked at startup.
pub const CHUNKER_VERSION: u32 = 7;

/// What the index was built with. Opening it with anything else is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexMeta {
    pub embedding_model: String,
    pub dimension: usize,
    pub chunker_version: u32,
    /// RFC 3339 time the index was created.
    pub created_at: String,
    /// Per-root sync state.
    #[serde(default)]
    pub roots: BTreeMap<String, RootState>,
}

/// What the index knows of one source root.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RootState {
    /// Where the root was read from at the last sync (for display only).
    pub path: String,
    /// Public base URL of the root's pages, if configured.
    pub url: Option<String>,
    /// RFC 3339 time of the last completed sync.
    pub last_sync: Option<String>,
}

/// The vectors of a new index: the dense vector's size, and whether it also holds the
/// multilingual vector. An index built without the multilingual model has no `dense_ml` vector
/// at all: it would otherwise keep an empty slot of [`crate::embed::e5::E5_DIMENSION`] floats
/// for every point, on disk and in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VectorLayout {
    pub dimension: usize,
    pub multilingual: bool,
}

/// The model and chunker a process is about to use with an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compatibility {
    pub embedding_model: String,
    pub dimension: usize,
    pub chunker_version: u32,
    /// Whether the model includes the multilingual one (its vectors need `dense_ml`).
    pub multilingual: bool,
}

impl Compatibility {
    /// The vectors an index built for this model holds.
    pub fn layout(&self) -> VectorLayout {
        VectorLayout { dimension: self.dimension, multilingual: self.multilingual }
    }

    /// Checks an existing index against this process's model and chunker.
    pub fn check(&self, meta: &IndexMeta) -> Result<(), StoreError> {
        if meta.embedding_model != self.embedding_model
            || meta.dimension != self.dimension
            || meta.chunker_version != self.chunker_version
        {
            return Err(StoreError::Incompatible {
                index: format!(
                    "model {} ({} dimensions), chunker v{}",
                    meta.embedding_model, meta.dimension, meta.chunker_version
                ),
                wanted: format!(
                    "model {} ({} dimensions), chunker v{}",
                    self.embedding_model, self.dimension, self.chunker_version
                ),
            });
        }
        Ok(())
    }
}

/// A document whose chunks are all in the index (written only after the last chunk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocRecord {
    pub root: String,
    pub source: String,
    pub title: String,
    pub kind: DocKind,
    pub content_hash: String,
    pub chunks: usize,
    /// RFC 3339 time it was indexed.
    pub indexed_at: String,
}

/// A chunk with its dense vector, ready to store. The store computes the BM25 vector itself so
/// that both backends tokenise identically.
#[derive(Debug, Clone)]
pub struct StoredChunk {
    pub chunk: Chunk,
    pub dense: Vec<f32>,
    /// The multilingual model's vector, for CJK passages when that model is in use.
    pub multilingual: Option<Vec<f32>>,
    /// Text for the BM25 vector.
    pub lexical_text: String,
}

/// A retrieved chunk and its score under one retriever (cosine for dense, BM25 for sparse).
#[derive(Debug, Clone)]
pub struct Hit {
    pub chunk: Chunk,
    pub score: f32,
}

/// A point of a ranking: its id and score under one retriever, and its chunk where the store
/// read it anyway (the server's answer carries it; the embedded index leaves it to
/// [`KnowledgeStore::chunks`], so that fusion reads only the passages it keeps).
#[derive(Debug, Clone)]
pub struct Ranked {
    pub id: uuid::Uuid,
    pub score: f32,
    pub chunk: Option<Chunk>,
}

impl From<Hit> for Ranked {
    fn from(hit: Hit) -> Self {
        Self { id: hit.chunk.id, score: hit.score, chunk: Some(hit.chunk) }
    }
}

fn ranked(hits: Vec<Hit>) -> Vec<Ranked> {
    hits.into_iter().map(Ranked::from).collect()
}

/// Restricts a search to part of the index. Empty lists mean "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchFilter {
    pub roots: Vec<String>,
    /// Any of these tags (product tags from `[[sources]]` or FAQ entries).
    pub tags: Vec<String>,
    pub languages: Vec<String>,
    pub kinds: Vec<DocKind>,
}

/// Counts for `supportbot status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    pub documents: usize,
    pub chunks: usize,
    pub roots: BTreeMap<String, RootStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RootStats {
    pub documents: usize,
    pub chunks: usize,
}

/// Failures a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The index was built with another model or chunker.
    #[error(
        "the index was built with {index}, but this configuration uses {wanted}; \
         rebuild it with `supportbot-ingest --rebuild`"
    )]
    Incompatible { index: String, wanted: String },
    /// Another process holds the embedded index.
    #[error("{0}")]
    Locked(String),
    /// The index does not exist yet.
    #[error("no index at {0}: run `supportbot-ingest PATH` first")]
    Missing(String),
    /// The server could not be reached or failed; worth retrying later.
    #[error("knowledge store unavailable: {0}")]
    Unavailable(String),
    /// Anything else (corrupt files, invalid data).
    #[error("knowledge store: {0}")]
    Other(String),
}

/// Storage of chunks for retrieval. Both vendors implement the same schema: a named dense
/// vector (`dense`, cosine), a sparse BM25 vector (`bm25`, IDF modifier) and the payload written
/// by the `payload` module; sync records and the metadata are points of their own.
#[async_trait]
pub trait KnowledgeStore: Send + Sync {
    /// Metadata of the index, `None` if it is empty (never initialised).
    async fn meta(&self) -> Result<Option<IndexMeta>, StoreError>;
    /// Writes the metadata (creating the collection if needed).
    async fn put_meta(&self, meta: &IndexMeta) -> Result<(), StoreError>;
    /// Completed documents of one root.
    async fn documents(&self, root: &str) -> Result<Vec<DocRecord>, StoreError>;
    /// Sources of one root that have chunks in the index, complete or not (finds the leftovers
    /// of an interrupted run).
    async fn chunk_sources(&self, root: &str) -> Result<Vec<String>, StoreError>;
    /// Removes a document: its completion record first, then its chunks.
    async fn remove_document(&self, root: &str, source: &str) -> Result<(), StoreError>;
    /// Inserts or replaces chunks.
    async fn upsert_chunks(&self, chunks: Vec<StoredChunk>) -> Result<(), StoreError>;
    /// Marks a document complete (call after all its chunks are written).
    async fn complete_document(&self, record: &DocRecord) -> Result<(), StoreError>;
    /// Nearest chunks by cosine similarity of the dense vector.
    async fn dense_search(&self, vector: &[f32], limit: usize, filter: &SearchFilter) -> Result<Vec<Hit>, StoreError>;
    /// Nearest chunks by the multilingual vector. Stores without one (built without the
    /// multilingual model) find nothing, and search falls back to the other retrievers.
    async fn multilingual_search(
        &self,
        vector: &[f32],
        limit: usize,
        filter: &SearchFilter,
    ) -> Result<Vec<Hit>, StoreError> {
        let _ = (vector, limit, filter);
        Ok(Vec::new())
    }
    /// Best chunks by BM25 of the query text.
    async fn sparse_search(&self, query: &str, limit: usize, filter: &SearchFilter) -> Result<Vec<Hit>, StoreError>;
    /// [`dense_search`](Self::dense_search) as a ranking, for fusion: a store may leave the
    /// chunks out (reading a passage costs more than finding it) and serve them from
    /// [`chunks`](Self::chunks). By default, the hits with their chunks.
    async fn dense_ranking(
        &self,
        vector: &[f32],
        limit: usize,
        filter: &SearchFilter,
    ) -> Result<Vec<Ranked>, StoreError> {
        Ok(ranked(self.dense_search(vector, limit, filter).await?))
    }
    /// [`multilingual_search`](Self::multilingual_search) as a ranking (see `dense_ranking`).
    async fn multilingual_ranking(
        &self,
        vector: &[f32],
        limit: usize,
        filter: &SearchFilter,
    ) -> Result<Vec<Ranked>, StoreError> {
        Ok(ranked(self.multilingual_search(vector, limit, filter).await?))
    }
    /// [`sparse_search`](Self::sparse_search) as a ranking (see `dense_ranking`).
    async fn sparse_ranking(
        &self,
        query: &str,
        limit: usize,
        filter: &SearchFilter,
    ) -> Result<Vec<Ranked>, StoreError> {
        Ok(ranked(self.sparse_search(query, limit, filter).await?))
    }
    /// The chunks with these ids, in any order; ids no longer in the index are left out.
    async fn chunks(&self, ids: &[uuid::Uuid]) -> Result<Vec<Chunk>, StoreError>;
    async fn stats(&self) -> Result<StoreStats, StoreError>;
    /// Makes everything written so far durable.
    async fn flush(&self) -> Result<(), StoreError>;
    /// Deletes everything and recreates the index with `layout` (for `--rebuild`, which may
    /// change the model).
    async fn clear(&self, layout: VectorLayout) -> Result<(), StoreError>;
    /// Reorganises the index for fast search after large writes (merges segments, builds the
    /// vector index). A Qdrant server does this by itself: the default does nothing.
    async fn compact(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Bits per vector component the index stores, where the store decides it (the embedded
    /// index: 16, or 32 in indexes built before); `None` where the server's collection does.
    fn vector_bits(&self) -> Option<u32> {
        None
    }
}

/// RFC 3339 UTC timestamp of now.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
