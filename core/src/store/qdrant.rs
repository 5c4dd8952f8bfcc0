//! `QdrantStore`: the same schema in a Qdrant server or cluster, through qdrant-client (gRPC).
//! BM25 vectors are computed client-side with the same `Bm25Encoder` as the embedded store, and
//! CJK passages carry the multilingual model's vector (`dense_ml`) as they do there.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder, DeletePointsBuilder,
    Distance, FieldType, Filter, GetPointsBuilder, Modifier, PointId, PointStruct, PointsIdsList, Query,
    QueryPointsBuilder, ScrollPointsBuilder, SparseVectorParamsBuilder, SparseVectorsConfigBuilder,
    UpsertPointsBuilder, Value as QValue, Vector, VectorParamsBuilder, VectorsConfigBuilder, point_id::PointIdOptions,
    vectors_config,
};
use qdrant_client::{Payload, Qdrant};
use serde_json::{Map, Value};

use super::payload::{self, Conditions, RECORD, RECORD_CHUNK, RECORD_DOCUMENT};
use super::{
    Bm25Encoder, DENSE_VECTOR, DocRecord, Hit, IndexMeta, KnowledgeStore, MULTILINGUAL_VECTOR, RootStats,
    SPARSE_VECTOR, SearchFilter, StoreError, StoreStats, StoredChunk, VectorLayout,
};
use crate::document::{Chunk, document_id};
use crate::embed::e5::E5_DIMENSION;

/// Connection settings for a Qdrant server.
#[derive(Clone)]
pub struct QdrantOptions {
    /// gRPC URL, e.g. `http://localhost:6334`.
    pub url: String,
    pub collection: String,
    pub api_key: Option<String>,
    pub timeout: std::time::Duration,
}

impl std::fmt::Debug for QdrantOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QdrantOptions")
            .field("url", &self.url)
            .field("collection", &self.collection)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// A collection in a Qdrant server or cluster.
pub struct QdrantStore {
    client: Qdrant,
    collection: String,
    /// The dense vector's size; changes only when `clear` recreates the collection.
    dimension: AtomicUsize,
    bm25: Bm25Encoder,
    /// Whether the collection has the multilingual vector: only collections built for the
    /// multilingual model do.
    multilingual: AtomicBool,
}

impl std::fmt::Debug for QdrantStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QdrantStore").field("collection", &self.collection).finish()
    }
}

const PAGE: u32 = 1000;

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn filter(c: &Conditions) -> Option<Filter> {
    if c.0.is_empty() {
        return None;
    }
    Some(Filter::must(c.0.iter().map(|(field, values)| Condition::matches(*field, values.clone()))))
}

fn to_json(payload: HashMap<String, QValue>) -> Map<String, Value> {
    payload.into_iter().map(|(k, v)| (k, Value::from(v))).collect()
}

fn point_uuid(id: Option<PointId>) -> Result<uuid::Uuid, StoreError> {
    match id.and_then(|p| p.point_id_options) {
        Some(PointIdOptions::Uuid(s)) => s.parse().map_err(|e| StoreError::Other(format!("point id {s}: {e}"))),
        other => Err(StoreError::Other(format!("unexpected point id {other:?}"))),
    }
}

fn pid(id: uuid::Uuid) -> PointId {
    PointId::from(id.to_string())
}

fn json_payload(v: Value) -> Result<Payload, StoreError> {
    Payload::try_from(v).map_err(|e| StoreError::Other(e.to_string()))
}

impl QdrantStore {
    /// Connects and, with `create`, creates the collection (and its payload indexes) with that
    /// layout if absent. An existing collection keeps its own layout.
    pub async fn connect(opts: &QdrantOptions, create: Option<VectorLayout>) -> Result<Self, StoreError> {
        let client = Qdrant::from_url(&opts.url)
            .api_key(opts.api_key.clone())
            .timeout(opts.timeout)
            .build()
            .map_err(unavailable)?;
        let exists = client.collection_exists(&opts.collection).await.map_err(unavailable)?;
        let layout = if exists {
            let vectors = Self::vector_sizes(&client, &opts.collection).await?;
            VectorLayout {
                dimension: vectors.get(DENSE_VECTOR).copied().unwrap_or(0),
                multilingual: vectors.contains_key(MULTILINGUAL_VECTOR),
            }
        } else {
            let Some(layout) = create else {
                return Err(StoreError::Missing(format!("collection {} at {}", opts.collection, opts.url)));
            };
            Self::create(&client, &opts.collection, layout).await?;
            layout
        };
        Ok(Self {
            client,
            collection: opts.collection.clone(),
            dimension: AtomicUsize::new(layout.dimension),
            bm25: Bm25Encoder::new()?,
            multilingual: AtomicBool::new(layout.multilingual),
        })
    }

    /// The collection's named dense vectors and their sizes.
    async fn vector_sizes(client: &Qdrant, collection: &str) -> Result<HashMap<String, usize>, StoreError> {
        let info = client.collection_info(collection).await.map_err(unavailable)?;
        let config = info.result.and_then(|i| i.config).and_then(|c| c.params).and_then(|p| p.vectors_config);
        Ok(match config.and_then(|v| v.config) {
            Some(vectors_config::Config::ParamsMap(m)) => {
                m.map.into_iter().map(|(name, params)| (name, params.size as usize)).collect()
            }
            _ => HashMap::new(),
        })
    }

    async fn create(client: &Qdrant, collection: &str, layout: VectorLayout) -> Result<(), StoreError> {
        let mut vectors = VectorsConfigBuilder::default();
        vectors
            .add_named_vector_params(DENSE_VECTOR, VectorParamsBuilder::new(layout.dimension as u64, Distance::Cosine));
        // Only CJK passages carry it, and only when the multilingual model is in use.
        if layout.multilingual {
            vectors.add_named_vector_params(
                MULTILINGUAL_VECTOR,
                VectorParamsBuilder::new(E5_DIMENSION as u64, Distance::Cosine),
            );
        }
        let mut sparse = SparseVectorsConfigBuilder::default();
        sparse.add_named_vector_params(SPARSE_VECTOR, SparseVectorParamsBuilder::default().modifier(Modifier::Idf));
        client
            .create_collection(
                CreateCollectionBuilder::new(collection).vectors_config(vectors).sparse_vectors_config(sparse),
            )
            .await
            .map_err(unavailable)?;
        for field in payload::INDEXED_FIELDS {
            client
                .create_field_index(
                    CreateFieldIndexCollectionBuilder::new(collection, *field, FieldType::Keyword).wait(true),
                )
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    async fn scroll_all(&self, conditions: &Conditions) -> Result<Vec<Map<String, Value>>, StoreError> {
        let mut out = Vec::new();
        let mut offset: Option<PointId> = None;
        loop {
            let mut req = ScrollPointsBuilder::new(&self.collection).limit(PAGE).with_payload(true).with_vectors(false);
            if let Some(f) = filter(conditions) {
                req = req.filter(f);
            }
            if let Some(o) = offset.take() {
                req = req.offset(o);
            }
            let resp = self.client.scroll(req).await.map_err(unavailable)?;
            out.extend(resp.result.into_iter().map(|p| to_json(p.payload)));
            match resp.next_page_offset {
                Some(next) => offset = Some(next),
                None => break,
            }
        }
        Ok(out)
    }

    async fn upsert_raw(&self, id: uuid::Uuid, payload: Value) -> Result<(), StoreError> {
        let point = PointStruct::new(pid(id), HashMap::<String, Vector>::new(), json_payload(payload)?);
        self.client
            .upsert_points(UpsertPointsBuilder::new(&self.collection, vec![point]).wait(true))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn query(&self, query: Query, using: &str, limit: usize, f: &SearchFilter) -> Result<Vec<Hit>, StoreError> {
        let mut req =
            QueryPointsBuilder::new(&self.collection).query(query).using(using).limit(limit as u64).with_payload(true);
        if let Some(f) = filter(&Conditions::chunks(f)) {
            req = req.filter(f);
        }
        let resp = self.client.query(req).await.map_err(unavailable)?;
        resp.result
            .into_iter()
            .map(|p| {
                let id = point_uuid(p.id)?;
                let chunk = payload::chunk_from_payload(id, &to_json(p.payload))?;
                Ok(Hit { chunk, score: p.score })
            })
            .collect()
    }
}

#[async_trait]
impl KnowledgeStore for QdrantStore {
    async fn meta(&self) -> Result<Option<IndexMeta>, StoreError> {
        let resp = self
            .client
            .get_points(GetPointsBuilder::new(&self.collection, vec![pid(payload::meta_id())]).with_payload(true))
            .await
            .map_err(unavailable)?;
        match resp.result.into_iter().next() {
            None => Ok(None),
            Some(p) => payload::meta_from_payload(&to_json(p.payload)).map(Some),
        }
    }

    async fn chunks(&self, ids: &[uuid::Uuid]) -> Result<Vec<Chunk>, StoreError> {
        let ids: Vec<PointId> = ids.iter().map(|id| pid(*id)).collect();
        let resp = self
            .client
            .get_points(GetPointsBuilder::new(&self.collection, ids).with_payload(true))
            .await
            .map_err(unavailable)?;
        resp.result
            .into_iter()
            .map(|p| {
                let id = point_uuid(p.id)?;
                payload::chunk_from_payload(id, &to_json(p.payload))
            })
            .collect()
    }

    async fn put_meta(&self, meta: &IndexMeta) -> Result<(), StoreError> {
        self.upsert_raw(payload::meta_id(), payload::meta_payload(meta)).await
    }

    async fn documents(&self, root: &str) -> Result<Vec<DocRecord>, StoreError> {
        let c = Conditions::default().with(RECORD, vec![RECORD_DOCUMENT.into()]).with("root", vec![root.into()]);
        self.scroll_all(&c).await?.iter().map(payload::record_from_payload).collect()
    }

    async fn chunk_sources(&self, root: &str) -> Result<Vec<String>, StoreError> {
        let c = Conditions::default().with(RECORD, vec![RECORD_CHUNK.into()]).with("root", vec![root.into()]);
        let mut sources: Vec<String> = self
            .scroll_all(&c)
            .await?
            .iter()
            .filter_map(|p| p.get("source").and_then(Value::as_str).map(str::to_string))
            .collect();
        sources.sort();
        sources.dedup();
        Ok(sources)
    }

    async fn remove_document(&self, root: &str, source: &str) -> Result<(), StoreError> {
        self.client
            .delete_points(
                DeletePointsBuilder::new(&self.collection)
                    .points(PointsIdsList { ids: vec![pid(payload::record_id(root, source))] })
                    .wait(true),
            )
            .await
            .map_err(unavailable)?;
        let c = Conditions::default().with("doc_id", vec![document_id(root, source).to_string()]);
        if let Some(f) = filter(&c) {
            self.client
                .delete_points(DeletePointsBuilder::new(&self.collection).points(f).wait(true))
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    async fn upsert_chunks(&self, chunks: Vec<StoredChunk>) -> Result<(), StoreError> {
        if chunks.is_empty() {
            return Ok(());
        }
        let mut points = Vec::with_capacity(chunks.len());
        let dimension = self.dimension.load(Ordering::Relaxed);
        for c in chunks {
            if c.dense.len() != dimension {
                return Err(StoreError::Other(format!(
                    "vector of {} dimensions for an index of {dimension}",
                    c.dense.len()
                )));
            }
            let sparse = self.bm25.document(&c.lexical_text);
            let mut vectors: HashMap<String, Vector> = HashMap::new();
            vectors.insert(DENSE_VECTOR.into(), Vector::new_dense(c.dense));
            vectors.insert(SPARSE_VECTOR.into(), Vector::new_sparse(sparse.indices, sparse.values));
            if let Some(v) = c.multilingual {
                if !self.multilingual.load(Ordering::Relaxed) {
                    return Err(StoreError::Incompatible {
                        index: format!("a Qdrant collection ({}) without the multilingual vector", self.collection),
                        wanted: "the multilingual model".into(),
                    });
                }
                if v.len() != E5_DIMENSION {
                    return Err(StoreError::Other(format!(
                        "multilingual vector of {} dimensions, expected {E5_DIMENSION}",
                        v.len()
                    )));
                }
                vectors.insert(MULTILINGUAL_VECTOR.into(), Vector::new_dense(v));
            }
            points.push(PointStruct::new(pid(c.chunk.id), vectors, json_payload(payload::chunk_payload(&c.chunk))?));
        }
        self.client
            .upsert_points(UpsertPointsBuilder::new(&self.collection, points).wait(true))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn complete_document(&self, record: &DocRecord) -> Result<(), StoreError> {
        self.upsert_raw(payload::record_id(&record.root, &record.source), payload::record_payload(record)).await
    }

    async fn dense_search(&self, vector: &[f32], limit: usize, filter: &SearchFilter) -> Result<Vec<Hit>, StoreError> {
        self.query(Query::new_nearest(vector.to_vec()), DENSE_VECTOR, limit, filter).await
    }

    async fn multilingual_search(
        &self,
        vector: &[f32],
        limit: usize,
        filter: &SearchFilter,
    ) -> Result<Vec<Hit>, StoreError> {
        if !self.multilingual.load(Ordering::Relaxed) {
            return Ok(Vec::new());
        }
        self.query(Query::new_nearest(vector.to_vec()), MULTILINGUAL_VECTOR, limit, filter).await
    }

    async fn sparse_search(&self, query: &str, limit: usize, filter: &SearchFilter) -> Result<Vec<Hit>, StoreError> {
        let sparse = self.bm25.query(query);
        if sparse.indices.is_empty() {
            return Ok(Vec::new());
        }
        let input = qdrant_client::qdrant::VectorInput::new_sparse(sparse.indices, sparse.values);
        self.query(Query::new_nearest(input), SPARSE_VECTOR, limit, filter).await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let mut stats = StoreStats::default();
        for p in self.scroll_all(&Conditions::default().with(RECORD, vec![RECORD_DOCUMENT.into()])).await? {
            let r = payload::record_from_payload(&p)?;
            let root: &mut RootStats = stats.roots.entry(r.root.clone()).or_default();
            root.documents += 1;
            root.chunks += r.chunks;
            stats.documents += 1;
        }
        let mut req = CountPointsBuilder::new(&self.collection).exact(true);
        if let Some(f) = filter(&Conditions::default().with(RECORD, vec![RECORD_CHUNK.into()])) {
            req = req.filter(f);
        }
        let resp = self.client.count(req).await.map_err(unavailable)?;
        stats.chunks = resp.result.map_or(0, |r| r.count as usize);
        Ok(stats)
    }

    async fn flush(&self) -> Result<(), StoreError> {
        // Every write waits for the server to apply it (`wait(true)`).
        Ok(())
    }

    async fn clear(&self, layout: VectorLayout) -> Result<(), StoreError> {
        self.client.delete_collection(&self.collection).await.map_err(unavailable)?;
        Self::create(&self.client, &self.collection, layout).await?;
        self.dimension.store(layout.dimension, Ordering::Relaxed);
        self.multilingual.store(layout.multilingual, Ordering::Relaxed);
        Ok(())
    }
}
