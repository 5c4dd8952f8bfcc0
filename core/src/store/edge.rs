//! `EdgeStore`: the embedded knowledge index, a qdrant-edge shard in a directory, owned by one
//! process at a time (an exclusive lock file beside the shard).

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use qdrant_edge::external::serde_json::{Map, Value};
use qdrant_edge::{
    AnyVariants, Condition, CountRequest, CreateIndex, Distance, EdgeConfigBuilder, EdgeShard, EdgeSparseVectorParams,
    EdgeVectorParams, FieldCondition, FieldIndexOperations, Filter, JsonPath, Match, Modifier, NamedQuery,
    PayloadFieldSchema, PayloadSchemaType, PointId, PointInsertOperations, PointOperations, PointStruct, QueryEnum,
    QueryRequest, ScoringQuery, ScrollRequest, UpdateOperation, ValueVariants, Vector, VectorInternal,
    VectorStorageDatatype, Vectors, WalOptions, WithPayloadInterface, WithVector,
};

use super::payload::{self, Conditions, RECORD, RECORD_CHUNK, RECORD_DOCUMENT};
use super::{
    Bm25Encoder, DENSE_VECTOR, DocRecord, Hit, IndexMeta, KnowledgeStore, MULTILINGUAL_VECTOR, Ranked, RootStats,
    SPARSE_VECTOR, SearchFilter, StoreError, StoreStats, StoredChunk, VectorLayout,
};
use crate::document::{Chunk, document_id};
use crate::embed::e5::E5_DIMENSION;

const SHARD_DIR: &str = "shard";
const LOCK_FILE: &str = "LOCK";
/// The shard's write-ahead log, inside `SHARD_DIR`.
const WAL_DIR: &str = "wal";
/// Bytes per write-ahead-log segment of a new index (qdrant-edge's default is 32 MiB). The log
/// keeps the newest closed segment and the open ones (see [`trim_wal`]), so this bounds it.
const WAL_SEGMENT_BYTES: usize = 4 << 20;
/// Points per scroll page.
const PAGE: usize = 1000;

struct Inner {
    dir: PathBuf,
    /// `None` only transiently while `clear` recreates the shard. Writes take the write lock:
    /// qdrant-edge's `flush` expects no concurrent update.
    shard: RwLock<Option<EdgeShard>>,
    bm25: Bm25Encoder,
    /// Write-ahead-log segment size of shards this store creates.
    wal_segment_bytes: usize,
    _lock: File,
}

/// The embedded index (qdrant-edge) in `store.path`.
#[derive(Clone)]
pub struct EdgeStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EdgeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeStore").field("dir", &self.inner.dir).finish()
    }
}

fn other(e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(e.to_string())
}

/// Parameters of a dense vector in a new shard. Its components are stored as 16-bit floats: half
/// the memory and disk of 32-bit ones (the index's largest part; the whole LibreOffice help's
/// ingest peaks 114 MB lower), while the LibreOffice evaluation's rankings stay the same
/// (BENCHMARKS.md, sections 1 and 5). Shards created before keep the 32-bit vectors their
/// saved config names.
fn dense_params(dimension: usize) -> EdgeVectorParams {
    EdgeVectorParams::builder(dimension, Distance::Cosine).datatype(VectorStorageDatatype::Float16).build()
}

fn shard_config(layout: VectorLayout, wal_segment_bytes: usize) -> qdrant_edge::EdgeConfig {
    let wal = WalOptions { segment_capacity: wal_segment_bytes, ..WalOptions::default() };
    let mut config = EdgeConfigBuilder::new()
        .vector(DENSE_VECTOR, dense_params(layout.dimension))
        .sparse_vector(SPARSE_VECTOR, EdgeSparseVectorParams::builder().modifier(Modifier::Idf).build())
        .wal_options(wal);
    if layout.multilingual {
        config = config.vector(MULTILINGUAL_VECTOR, dense_params(E5_DIMENSION));
    }
    config.build()
}

fn create_shard(dir: &Path, layout: VectorLayout, wal_segment_bytes: usize) -> Result<EdgeShard, StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| other(format!("creating {}: {e}", dir.display())))?;
    let shard = EdgeShard::new(dir, shard_config(layout, wal_segment_bytes)).map_err(other)?;
    for field in payload::INDEXED_FIELDS {
        let op = UpdateOperation::FieldIndexOperation(FieldIndexOperations::CreateIndex(CreateIndex {
            field_name: json_path(field),
            field_schema: Some(PayloadFieldSchema::FieldType(PayloadSchemaType::Keyword)),
        }));
        shard.update(op).map_err(other)?;
    }
    Ok(shard)
}

/// Opens an existing shard, first trimming its write-ahead log.
fn load_shard(dir: &Path) -> Result<EdgeShard, StoreError> {
    let freed = trim_wal(&dir.join(WAL_DIR))?;
    if freed > 0 {
        tracing::info!(bytes = freed, "trimmed the index's write-ahead log");
    }
    EdgeShard::load(dir, None).map_err(|e| other(format!("opening {}: {e}", dir.display())))
}

/// qdrant-edge 0.7.2 writes every update to the shard's write-ahead log but never reads the log
/// back (a shard loads from its flushed segments) and never truncates it, so the log would keep
/// every write the index ever took: each sync would add its passages and vectors to it for good.
/// With the shard closed, this deletes the log's closed segments (`closed-<first entry>`) except
/// the newest, oldest first, as qdrant's own truncation would. The newest must stay: the log's
/// numbering continues from it, and updates are ordered against the version each point was
/// written at by that number (a log restarted at 0 would have later deletes and overwrites of
/// existing points ignored). Returns the bytes freed.
fn trim_wal(wal_dir: &Path) -> Result<u64, StoreError> {
    let Ok(entries) = std::fs::read_dir(wal_dir) else {
        return Ok(0);
    };
    let mut closed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| other(format!("reading {}: {e}", wal_dir.display())))?;
        let name = entry.file_name();
        let Some(first) = name.to_str().and_then(|n| n.strip_prefix("closed-")).and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        closed.push((first, entry.path(), entry.metadata().map_or(0, |m| m.len())));
    }
    closed.sort_unstable_by_key(|c| c.0);
    closed.pop();
    let mut freed = 0;
    for (_, path, bytes) in closed {
        std::fs::remove_file(&path).map_err(|e| other(format!("removing {}: {e}", path.display())))?;
        freed += bytes;
    }
    Ok(freed)
}

fn json_path(field: &str) -> JsonPath {
    // Our field names are plain keys, always valid paths.
    JsonPath::try_from(field).expect("payload field names are valid JSON paths")
}

fn to_filter(c: &Conditions) -> Option<Filter> {
    if c.0.is_empty() {
        return None;
    }
    let must =
        c.0.iter()
            .map(|(field, values)| {
                let m = if values.len() == 1 {
                    Match::new_value(ValueVariants::String(values[0].clone()))
                } else {
                    Match::new_any(AnyVariants::Strings(values.iter().cloned().collect()))
                };
                Condition::Field(FieldCondition::new_match(json_path(field), m))
            })
            .collect();
    Some(Filter { must: Some(must), ..Filter::new() })
}

fn uuid_of(id: &PointId) -> Result<uuid::Uuid, StoreError> {
    match id {
        PointId::Uuid(u) => Ok(*u),
        PointId::NumId(n) => Err(other(format!("unexpected numeric point id {n}"))),
    }
}

/// What a search looks for, in which of a point's vectors.
enum Probe {
    Dense(Vec<f32>),
    Multilingual(Vec<f32>),
    /// Text, turned into BM25 terms.
    Lexical(String),
}

/// The hits of a ranking read with its passages.
fn hits(ranked: Vec<Ranked>) -> Vec<Hit> {
    ranked.into_iter().filter_map(|r| r.chunk.map(|chunk| Hit { chunk, score: r.score })).collect()
}

fn payload_map(p: Option<qdrant_edge::Payload>) -> Map<String, Value> {
    p.map(|p| p.0).unwrap_or_default()
}

impl EdgeStore {
    /// Opens the index in `dir`. With `create`, a missing index is created with that layout
    /// (for ingest); without, it is [`StoreError::Missing`]. An existing index keeps its own
    /// layout. Another process holding the index is [`StoreError::Locked`].
    pub fn open(dir: &Path, create: Option<VectorLayout>) -> Result<Self, StoreError> {
        Self::open_with(dir, create, WAL_SEGMENT_BYTES)
    }

    fn open_with(dir: &Path, create: Option<VectorLayout>, wal_segment_bytes: usize) -> Result<Self, StoreError> {
        let shard_dir = dir.join(SHARD_DIR);
        let exists = shard_dir.join("edge_config.json").is_file();
        if !exists && create.is_none() {
            return Err(StoreError::Missing(dir.display().to_string()));
        }
        std::fs::create_dir_all(dir).map_err(|e| other(format!("creating {}: {e}", dir.display())))?;
        let lock_path = dir.join(LOCK_FILE);
        let mut lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(|e| other(format!("opening {}: {e}", lock_path.display())))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(_) => {
                let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
                let holder = holder.trim();
                return Err(StoreError::Locked(format!(
                    "the index at {} is in use by another supportbot process{}; \
                     stop it or wait for it to finish",
                    dir.display(),
                    if holder.is_empty() { String::new() } else { format!(" (pid {holder})") }
                )));
            }
        }
        // Record our pid for the error message a second process will print.
        let _ = lock.set_len(0).and_then(|_| write!(lock, "{}", std::process::id()));
        let shard = match create {
            Some(layout) if !exists => create_shard(&shard_dir, layout, wal_segment_bytes)?,
            _ => load_shard(&shard_dir)?,
        };
        let bm25 = Bm25Encoder::new()?;
        Ok(Self {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                shard: RwLock::new(Some(shard)),
                bm25,
                wal_segment_bytes,
                _lock: lock,
            }),
        })
    }

    /// Runs blocking shard work off the async runtime.
    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner)).await.map_err(|e| other(format!("store task failed: {e}")))?
    }

    /// The nearest chunks to `probe`, with their passages when `with_passages`. An index
    /// without the multilingual vector, or a text without a single BM25 term, finds nothing.
    async fn rank(
        &self,
        probe: Probe,
        limit: usize,
        filter: &SearchFilter,
        with_passages: bool,
    ) -> Result<Vec<Ranked>, StoreError> {
        let filter = filter.clone();
        self.blocking(move |inner| {
            let (query, using) = match probe {
                Probe::Dense(vector) => (VectorInternal::Dense(vector), DENSE_VECTOR),
                Probe::Multilingual(vector) => {
                    if !inner.layout()?.multilingual {
                        return Ok(Vec::new());
                    }
                    (VectorInternal::Dense(vector), MULTILINGUAL_VECTOR)
                }
                Probe::Lexical(text) => {
                    let sparse = inner.bm25.query(&text);
                    if sparse.indices.is_empty() {
                        return Ok(Vec::new());
                    }
                    (VectorInternal::Sparse(sparse), SPARSE_VECTOR)
                }
            };
            inner.query(query, using, limit, &filter, with_passages)
        })
        .await
    }

    /// The vectors this index holds.
    pub fn layout(&self) -> Result<VectorLayout, StoreError> {
        self.inner.layout()
    }

    /// Merges segments and builds the vector indexes; worth doing after a large ingest.
    pub async fn optimize(&self) -> Result<(), StoreError> {
        self.blocking(|inner| inner.write(|s| s.optimize().map(|_| ()).map_err(other))).await
    }
}

/// Whether a shard stores its dense vectors as 16-bit floats (see [`dense_params`]); indexes
/// built before that was the default store 32-bit ones.
fn half_precision(shard: &EdgeShard) -> bool {
    shard.config().vectors.get(DENSE_VECTOR).is_some_and(|v| v.datatype == Some(VectorStorageDatatype::Float16))
}

/// What a shard holds, as its configuration says. Indexes built before the layout was chosen
/// per model all have the multilingual vector.
fn layout_of(shard: &EdgeShard) -> VectorLayout {
    let vectors = &shard.config().vectors;
    VectorLayout {
        dimension: vectors.get(DENSE_VECTOR).map_or(0, |v| v.size),
        multilingual: vectors.contains_key(MULTILINGUAL_VECTOR),
    }
}

impl Inner {
    fn layout(&self) -> Result<VectorLayout, StoreError> {
        self.read(|s| Ok(layout_of(s)))
    }

    fn read<T>(&self, f: impl FnOnce(&EdgeShard) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let guard = self.shard.read().map_err(|_| other("index lock poisoned"))?;
        f(guard.as_ref().ok_or_else(|| other("index is being recreated"))?)
    }

    fn write<T>(&self, f: impl FnOnce(&EdgeShard) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let guard = self.shard.write().map_err(|_| other("index lock poisoned"))?;
        f(guard.as_ref().ok_or_else(|| other("index is being recreated"))?)
    }

    fn update(&self, op: UpdateOperation) -> Result<(), StoreError> {
        self.write(|s| s.update(op).map_err(other))
    }

    fn upsert_raw(&self, id: uuid::Uuid, vectors: Vectors, payload: Value) -> Result<(), StoreError> {
        let point = PointStruct::new(PointId::Uuid(id), vectors, payload);
        self.update(UpdateOperation::PointOperation(PointOperations::UpsertPoints(PointInsertOperations::PointsList(
            vec![point.into()],
        ))))
    }

    /// All points matching `conditions`, page by page.
    fn scroll_all(&self, conditions: &Conditions) -> Result<Vec<Map<String, Value>>, StoreError> {
        let filter = to_filter(conditions);
        let mut out = Vec::new();
        let mut offset = None;
        loop {
            let request = ScrollRequest {
                offset,
                limit: Some(PAGE),
                filter: filter.clone(),
                with_payload: Some(WithPayloadInterface::Bool(true)),
                with_vector: WithVector::Bool(false),
                order_by: None,
            };
            let (records, next) = self.read(|s| s.scroll(request).map_err(other))?;
            out.extend(records.into_iter().map(|r| payload_map(r.payload)));
            match next {
                Some(n) => offset = Some(n),
                None => break,
            }
        }
        Ok(out)
    }

    /// The nearest chunks to `query` in the vector `using`, with their passages when
    /// `with_passages`: reading a point's payload costs more than finding it (about 25 µs
    /// against 10 µs per candidate of 40 at 1k chunks), so fusion ranks without them.
    fn query(
        &self,
        query: VectorInternal,
        using: &str,
        limit: usize,
        filter: &SearchFilter,
        with_passages: bool,
    ) -> Result<Vec<Ranked>, StoreError> {
        let request = QueryRequest {
            prefetches: Vec::new(),
            query: Some(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery { query, using: Some(using.into()) }))),
            filter: to_filter(&Conditions::chunks(filter)),
            score_threshold: None,
            limit,
            offset: 0,
            params: None,
            with_vector: WithVector::Bool(false),
            with_payload: WithPayloadInterface::Bool(with_passages),
        };
        let points = self.read(|s| s.query(request).map_err(other))?;
        points
            .into_iter()
            .map(|p| {
                let id = uuid_of(&p.id)?;
                let chunk =
                    if with_passages { Some(payload::chunk_from_payload(id, &payload_map(p.payload))?) } else { None };
                Ok(Ranked { id, score: p.score, chunk })
            })
            .collect()
    }
}

#[async_trait]
impl KnowledgeStore for EdgeStore {
    fn vector_bits(&self) -> Option<u32> {
        self.inner.read(|s| Ok(if half_precision(s) { 16 } else { 32 })).ok()
    }

    async fn meta(&self) -> Result<Option<IndexMeta>, StoreError> {
        self.blocking(|inner| {
            let records = inner.read(|s| {
                s.retrieve(&[PointId::Uuid(payload::meta_id())], Some(WithPayloadInterface::Bool(true)), None)
                    .map_err(other)
            })?;
            match records.into_iter().next() {
                None => Ok(None),
                Some(r) => payload::meta_from_payload(&payload_map(r.payload)).map(Some),
            }
        })
        .await
    }

    async fn put_meta(&self, meta: &IndexMeta) -> Result<(), StoreError> {
        let value = payload::meta_payload(meta);
        self.blocking(move |inner| {
            inner.upsert_raw(payload::meta_id(), Vectors::new_named(Vec::<(String, Vector)>::new()), value)
        })
        .await
    }

    async fn documents(&self, root: &str) -> Result<Vec<DocRecord>, StoreError> {
        let conditions =
            Conditions::default().with(RECORD, vec![RECORD_DOCUMENT.into()]).with("root", vec![root.into()]);
        self.blocking(move |inner| inner.scroll_all(&conditions)?.iter().map(payload::record_from_payload).collect())
            .await
    }

    async fn chunk_sources(&self, root: &str) -> Result<Vec<String>, StoreError> {
        let conditions = Conditions::default().with(RECORD, vec![RECORD_CHUNK.into()]).with("root", vec![root.into()]);
        self.blocking(move |inner| {
            let mut sources: Vec<String> = inner
                .scroll_all(&conditions)?
                .iter()
                .filter_map(|p| p.get("source").and_then(Value::as_str).map(str::to_string))
                .collect();
            sources.sort();
            sources.dedup();
            Ok(sources)
        })
        .await
    }

    async fn remove_document(&self, root: &str, source: &str) -> Result<(), StoreError> {
        let record = payload::record_id(root, source);
        let doc = Conditions::default().with("doc_id", vec![document_id(root, source).to_string()]);
        self.blocking(move |inner| {
            // The record goes first: if we die in between, the document reads as incomplete and
            // the next run finishes the job.
            inner.update(UpdateOperation::PointOperation(PointOperations::DeletePoints {
                ids: vec![PointId::Uuid(record)],
            }))?;
            if let Some(filter) = to_filter(&doc) {
                inner.update(UpdateOperation::PointOperation(PointOperations::DeletePointsByFilter(filter)))?;
            }
            Ok(())
        })
        .await
    }

    async fn upsert_chunks(&self, chunks: Vec<StoredChunk>) -> Result<(), StoreError> {
        if chunks.is_empty() {
            return Ok(());
        }
        self.blocking(move |inner| {
            let layout = inner.layout()?;
            let mut points = Vec::with_capacity(chunks.len());
            for c in &chunks {
                if c.dense.len() != layout.dimension {
                    return Err(other(format!(
                        "vector of {} dimensions for an index of {}",
                        c.dense.len(),
                        layout.dimension
                    )));
                }
                let mut named = vec![
                    (DENSE_VECTOR.to_string(), Vector::new_dense(c.dense.clone())),
                    (SPARSE_VECTOR.to_string(), Vector::from(inner.bm25.document(&c.lexical_text))),
                ];
                if let Some(v) = &c.multilingual {
                    if !layout.multilingual {
                        return Err(StoreError::Incompatible {
                            index: format!("an index ({}) without the multilingual vector", inner.dir.display()),
                            wanted: "the multilingual model".into(),
                        });
                    }
                    if v.len() != E5_DIMENSION {
                        return Err(other(format!(
                            "multilingual vector of {} dimensions, expected {E5_DIMENSION}",
                            v.len()
                        )));
                    }
                    named.push((MULTILINGUAL_VECTOR.to_string(), Vector::new_dense(v.clone())));
                }
                let vectors = Vectors::new_named(named);
                points.push(
                    PointStruct::new(PointId::Uuid(c.chunk.id), vectors, payload::chunk_payload(&c.chunk)).into(),
                );
            }
            inner.update(UpdateOperation::PointOperation(PointOperations::UpsertPoints(
                PointInsertOperations::PointsList(points),
            )))
        })
        .await
    }

    async fn complete_document(&self, record: &DocRecord) -> Result<(), StoreError> {
        let id = payload::record_id(&record.root, &record.source);
        let value = payload::record_payload(record);
        self.blocking(move |inner| inner.upsert_raw(id, Vectors::new_named(Vec::<(String, Vector)>::new()), value))
            .await
    }

    async fn dense_search(&self, vector: &[f32], limit: usize, filter: &SearchFilter) -> Result<Vec<Hit>, StoreError> {
        self.rank(Probe::Dense(vector.to_vec()), limit, filter, true).await.map(hits)
    }

    async fn multilingual_search(
        &self,
        vector: &[f32],
        limit: usize,
        filter: &SearchFilter,
    ) -> Result<Vec<Hit>, StoreError> {
        self.rank(Probe::Multilingual(vector.to_vec()), limit, filter, true).await.map(hits)
    }

    async fn sparse_search(&self, query: &str, limit: usize, filter: &SearchFilter) -> Result<Vec<Hit>, StoreError> {
        self.rank(Probe::Lexical(query.to_string()), limit, filter, true).await.map(hits)
    }

    async fn dense_ranking(
        &self,
        vector: &[f32],
        limit: usize,
        filter: &SearchFilter,
    ) -> Result<Vec<Ranked>, StoreError> {
        self.rank(Probe::Dense(vector.to_vec()), limit, filter, false).await
    }

    async fn multilingual_ranking(
        &self,
        vector: &[f32],
        limit: usize,
        filter: &SearchFilter,
    ) -> Result<Vec<Ranked>, StoreError> {
        self.rank(Probe::Multilingual(vector.to_vec()), limit, filter, false).await
    }

    async fn sparse_ranking(
        &self,
        query: &str,
        limit: usize,
        filter: &SearchFilter,
    ) -> Result<Vec<Ranked>, StoreError> {
        self.rank(Probe::Lexical(query.to_string()), limit, filter, false).await
    }

    async fn chunks(&self, ids: &[uuid::Uuid]) -> Result<Vec<Chunk>, StoreError> {
        let ids: Vec<PointId> = ids.iter().map(|id| PointId::Uuid(*id)).collect();
        self.blocking(move |inner| {
            let records =
                inner.read(|s| s.retrieve(&ids, Some(WithPayloadInterface::Bool(true)), None).map_err(other))?;
            records.into_iter().map(|r| payload::chunk_from_payload(uuid_of(&r.id)?, &payload_map(r.payload))).collect()
        })
        .await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        self.blocking(|inner| {
            let mut stats = StoreStats::default();
            let records = inner.scroll_all(&Conditions::default().with(RECORD, vec![RECORD_DOCUMENT.into()]))?;
            for p in &records {
                let r = payload::record_from_payload(p)?;
                let root: &mut RootStats = stats.roots.entry(r.root.clone()).or_default();
                root.documents += 1;
                root.chunks += r.chunks;
                stats.documents += 1;
            }
            let chunk_filter = to_filter(&Conditions::default().with(RECORD, vec![RECORD_CHUNK.into()]));
            stats.chunks =
                inner.read(|s| s.count(CountRequest { filter: chunk_filter, exact: true }).map_err(other))?;
            Ok(stats)
        })
        .await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.blocking(|inner| {
            inner.write(|s| {
                s.flush();
                Ok(())
            })
        })
        .await
    }

    async fn compact(&self) -> Result<(), StoreError> {
        // Without it a large index is searched exhaustively: at 100k chunks search p50 drops from
        // 17 to 7 ms once optimised (BENCHMARKS.md, section 6).
        EdgeStore::optimize(self).await?;
        self.flush().await?;
        // Reopened, the shard's log is trimmed now rather than at the next open: an ingest ends
        // with an index whose size on disk is what it holds.
        self.blocking(|inner| {
            let mut guard = inner.shard.write().map_err(|_| other("index lock poisoned"))?;
            guard.take();
            *guard = Some(load_shard(&inner.dir.join(SHARD_DIR))?);
            Ok(())
        })
        .await
    }

    async fn clear(&self, layout: VectorLayout) -> Result<(), StoreError> {
        self.blocking(move |inner| {
            let mut guard = inner.shard.write().map_err(|_| other("index lock poisoned"))?;
            // Drop the shard before deleting its files.
            guard.take();
            let shard_dir = inner.dir.join(SHARD_DIR);
            if shard_dir.exists() {
                std::fs::remove_dir_all(&shard_dir)
                    .map_err(|e| other(format!("removing {}: {e}", shard_dir.display())))?;
            }
            *guard = Some(create_shard(&shard_dir, layout, inner.wal_segment_bytes)?);
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{Chunk, DocKind, chunk_id};
    use crate::embed::{cosine, normalize};
    use rand::{Rng as _, SeedableRng as _};

    const LAYOUT: VectorLayout = VectorLayout { dimension: 4, multilingual: false };

    fn chunk(source: &str, i: u32, text: &str) -> StoredChunk {
        let mut dense = vec![0.0f32; 4];
        dense[i as usize % 4] = 1.0;
        StoredChunk {
            chunk: Chunk {
                id: chunk_id("docs", source, i),
                root: "docs".into(),
                source: source.into(),
                chunk_index: i,
                title: "T".into(),
                heading_path: vec![],
                anchor: None,
                kind: DocKind::Doc,
                language: "en".into(),
                tags: vec![],
                text: text.into(),
                embed_text: text.into(),
                tokens: text.split_whitespace().count() as u32,
                question: None,
                answer: None,
                url: None,
                content_hash: "h".into(),
                cites: None,
            },
            dense,
            multilingual: None,
            lexical_text: text.into(),
        }
    }

    fn record(source: &str, chunks: usize) -> DocRecord {
        DocRecord {
            root: "docs".into(),
            source: source.into(),
            title: "T".into(),
            kind: DocKind::Doc,
            content_hash: "h".into(),
            chunks,
            indexed_at: super::super::now_rfc3339(),
        }
    }

    #[tokio::test]
    async fn stores_searches_removes_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = EdgeStore::open(dir.path(), Some(LAYOUT)).unwrap();
        store
            .upsert_chunks(vec![chunk("a.md", 0, "reset your password in settings"), chunk("b.md", 1, "refund policy")])
            .await
            .unwrap();
        store.complete_document(&record("a.md", 1)).await.unwrap();
        store.complete_document(&record("b.md", 1)).await.unwrap();

        let dense = store.dense_search(&[1.0, 0.0, 0.0, 0.0], 5, &SearchFilter::default()).await.unwrap();
        assert_eq!(dense[0].chunk.source, "a.md");
        assert!((dense[0].score - 1.0).abs() < 1e-5, "cosine of identical vectors is 1");
        let sparse = store.sparse_search("password", 5, &SearchFilter::default()).await.unwrap();
        assert_eq!(sparse.len(), 1, "records and unrelated chunks are not returned");
        assert_eq!(sparse[0].chunk.source, "a.md");
        assert_eq!(sparse[0].chunk.tokens, 5, "the passage length survives the round trip");
        // The rankings fusion uses: the same points and scores, the passages read on demand.
        let ranking = store.dense_ranking(&[1.0, 0.0, 0.0, 0.0], 5, &SearchFilter::default()).await.unwrap();
        let ids: Vec<_> = ranking.iter().map(|r| r.id).collect();
        assert_eq!(ids, dense.iter().map(|h| h.chunk.id).collect::<Vec<_>>());
        assert!(ranking.iter().zip(&dense).all(|(r, h)| r.chunk.is_none() && r.score == h.score));
        let sparse_ranking = store.sparse_ranking("password", 5, &SearchFilter::default()).await.unwrap();
        assert_eq!(sparse_ranking.iter().map(|r| r.id).collect::<Vec<_>>(), [sparse[0].chunk.id]);
        let gone = uuid::Uuid::from_u128(7);
        let read = store.chunks(&[ids[1], gone, ids[0]]).await.unwrap();
        assert_eq!(read.len(), 2, "an id no longer in the index is left out");
        assert!(
            read.iter().any(|c| c.source == "a.md" && c.text == "reset your password in settings" && c.tokens == 5)
        );

        store.remove_document("docs", "a.md").await.unwrap();
        store.flush().await.unwrap();
        drop(store);

        // Reopened without the caller knowing the dimension (as `supportbot serve` opens it), it
        // keeps its own and still takes writes (curated answers).
        let store = EdgeStore::open(dir.path(), None).unwrap();
        let docs = store.documents("docs").await.unwrap();
        assert_eq!(docs.iter().map(|d| d.source.as_str()).collect::<Vec<_>>(), vec!["b.md"]);
        assert_eq!(store.chunk_sources("docs").await.unwrap(), vec!["b.md".to_string()]);
        let stats = store.stats().await.unwrap();
        assert_eq!((stats.documents, stats.chunks), (1, 1));
        store.upsert_chunks(vec![chunk("c.md", 2, "curated answer")]).await.unwrap();
        let dense = store.dense_search(&[0.0, 0.0, 1.0, 0.0], 1, &SearchFilter::default()).await.unwrap();
        assert_eq!(dense[0].chunk.source, "c.md");
    }

    #[tokio::test]
    async fn the_write_ahead_log_is_trimmed_and_later_updates_still_apply() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join(SHARD_DIR).join(WAL_DIR);
        let closed_segments = || {
            std::fs::read_dir(&wal)
                .unwrap()
                .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("closed-"))
                .count()
        };
        // Small log segments, so that a few writes roll the log over several times.
        let store = EdgeStore::open_with(dir.path(), Some(LAYOUT), 16 << 10).unwrap();
        let filler = "lorem ipsum ".repeat(200);
        for _ in 0..4 {
            // The index holds these 20 passages once; the log holds every write of them.
            let chunks = (0..20).map(|i| chunk("a.md", i, &format!("{filler} {i}"))).collect();
            store.upsert_chunks(chunks).await.unwrap();
        }
        store.complete_document(&record("a.md", 20)).await.unwrap();
        store.upsert_chunks(vec![chunk("b.md", 100, "refund policy")]).await.unwrap();
        store.complete_document(&record("b.md", 1)).await.unwrap();
        store.flush().await.unwrap();
        drop(store);
        let before = closed_segments();
        assert!(before > 2, "the log rolled over several times: {before} closed segments");

        let store = EdgeStore::open(dir.path(), None).unwrap();
        assert_eq!(closed_segments(), 1, "only the newest closed segment is kept");
        // Deleting and overwriting points written before the trim still works: the log's
        // numbering, which orders writes against the points' versions, did not restart.
        store.remove_document("docs", "a.md").await.unwrap();
        store.upsert_chunks(vec![chunk("b.md", 100, "refunds within 30 days")]).await.unwrap();
        store.flush().await.unwrap();
        drop(store);

        let store = EdgeStore::open(dir.path(), None).unwrap();
        let lorem = store.sparse_search("lorem", 5, &SearchFilter::default()).await.unwrap();
        assert!(lorem.is_empty(), "the deleted passages are gone: {:?}", lorem.len());
        let refund = store.sparse_search("refunds", 5, &SearchFilter::default()).await.unwrap();
        assert_eq!(refund.len(), 1);
        assert_eq!(refund[0].chunk.text, "refunds within 30 days", "the overwrite holds");
        let docs = store.documents("docs").await.unwrap();
        assert_eq!(docs.iter().map(|d| d.source.as_str()).collect::<Vec<_>>(), vec!["b.md"]);

        // An ingest that wrote ends with `compact`, which trims what it logged there and then.
        for _ in 0..4 {
            let chunks = (0..20).map(|i| chunk("c.md", i, &format!("{filler} {i}"))).collect();
            store.upsert_chunks(chunks).await.unwrap();
        }
        assert!(closed_segments() > 1);
        store.compact().await.unwrap();
        assert_eq!(closed_segments(), 1);
        let lorem = store.sparse_search("lorem", 50, &SearchFilter::default()).await.unwrap();
        assert_eq!(lorem.len(), 20, "the reopened index serves what was written");
    }

    #[test]
    fn a_second_opener_gets_a_clear_lock_error() {
        let dir = tempfile::tempdir().unwrap();
        let _first = EdgeStore::open(dir.path(), Some(LAYOUT)).unwrap();
        let err = EdgeStore::open(dir.path(), None).unwrap_err();
        assert!(matches!(err, StoreError::Locked(_)), "{err}");
        assert!(err.to_string().contains("in use by another supportbot process"), "{err}");
    }

    #[test]
    fn opening_a_missing_index_for_reading_says_to_ingest() {
        let dir = tempfile::tempdir().unwrap();
        let err = EdgeStore::open(&dir.path().join("nope"), None).unwrap_err();
        assert!(err.to_string().contains("supportbot-ingest"), "{err}");
    }

    /// A unit vector along `axis` of the multilingual model's space.
    fn e5_unit(axis: usize) -> Vec<f32> {
        let mut v = vec![0.0; E5_DIMENSION];
        v[axis] = 1.0;
        v
    }

    #[tokio::test]
    async fn the_multilingual_vector_exists_only_in_indexes_built_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = EdgeStore::open(dir.path(), Some(LAYOUT)).unwrap();
        store.upsert_chunks(vec![chunk("a.md", 0, "reset your password")]).await.unwrap();
        let found = store.multilingual_search(&e5_unit(1), 5, &SearchFilter::default()).await.unwrap();
        assert!(found.is_empty(), "no multilingual vector, nothing found by it");
        let zh = StoredChunk { multilingual: Some(e5_unit(1)), ..chunk("b.md", 1, "如何重置密码") };
        let err = store.upsert_chunks(vec![zh.clone()]).await.unwrap_err();
        assert!(matches!(err, StoreError::Incompatible { .. }), "{err}");
        assert!(err.to_string().contains("--rebuild"), "{err}");
        store.flush().await.unwrap();
        drop(store);

        // Reopened, it keeps its layout whatever the opener would create.
        let with_it = VectorLayout { dimension: 4, multilingual: true };
        let store = EdgeStore::open(dir.path(), Some(with_it)).unwrap();
        assert_eq!(store.layout().unwrap(), LAYOUT);

        // A rebuild for the multilingual model recreates it with the vector.
        store.clear(with_it).await.unwrap();
        assert_eq!(store.layout().unwrap(), with_it);
        store.upsert_chunks(vec![zh, chunk("a.md", 0, "reset your password")]).await.unwrap();
        store.flush().await.unwrap();
        drop(store);
        let store = EdgeStore::open(dir.path(), None).unwrap();
        assert_eq!(store.layout().unwrap(), with_it);
        let found = store.multilingual_search(&e5_unit(1), 5, &SearchFilter::default()).await.unwrap();
        assert_eq!(found.iter().map(|h| h.chunk.source.as_str()).collect::<Vec<_>>(), vec!["b.md"]);
    }

    /// A random unit vector, from a seeded generator so that the test is repeatable.
    fn unit(rng: &mut rand::rngs::StdRng, dimension: usize) -> Vec<f32> {
        normalize((0..dimension).map(|_| rng.random::<f32>() - 0.5).collect())
    }

    #[tokio::test]
    async fn half_precision_vectors_keep_cosines_and_nearest_passages() {
        const DIM: usize = 384;
        let dir = tempfile::tempdir().unwrap();
        let store = EdgeStore::open(dir.path(), Some(VectorLayout { dimension: DIM, multilingual: false })).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x9e37_79b9_7f4a_7c15);
        let vectors: Vec<Vec<f32>> = (0..600).map(|_| unit(&mut rng, DIM)).collect();
        let chunks = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| StoredChunk { dense: v.clone(), ..chunk(&format!("{i}.md"), i as u32, "text") })
            .collect();
        store.upsert_chunks(chunks).await.unwrap();
        store.compact().await.unwrap();

        for (target, v) in vectors.iter().enumerate().step_by(37) {
            // A question close to one passage (cosine about 0.9), as a paraphrase is.
            let noise = unit(&mut rng, DIM);
            let query = normalize(v.iter().zip(&noise).map(|(a, b)| a + 0.5 * b).collect());

            let hits = store.dense_search(&query, 10, &SearchFilter::default()).await.unwrap();
            assert_eq!(hits[0].chunk.source, format!("{target}.md"), "the nearest passage comes first");
            for hit in &hits {
                let i: usize = hit.chunk.source.trim_end_matches(".md").parse().unwrap();
                let exact = cosine(&vectors[i], &query);
                assert!((hit.score - exact).abs() < 1e-3, "passage {i}: score {} against cosine {exact}", hit.score);
            }
        }
    }

    #[tokio::test]
    async fn an_index_with_32_bit_vectors_still_serves_and_a_rebuild_halves_them() {
        let dir = tempfile::tempdir().unwrap();
        // A shard as versions before the 16-bit vectors created it: today's config, 32-bit.
        let mut old = shard_config(LAYOUT, WAL_SEGMENT_BYTES);
        old.vectors.get_mut(DENSE_VECTOR).unwrap().datatype = None;
        let shard_dir = dir.path().join(SHARD_DIR);
        std::fs::create_dir_all(&shard_dir).unwrap();
        drop(EdgeShard::new(&shard_dir, old).unwrap());

        let store = EdgeStore::open(dir.path(), Some(LAYOUT)).unwrap();
        assert_eq!(store.vector_bits(), Some(32), "opening does not convert an index");
        store.upsert_chunks(vec![chunk("a.md", 0, "reset your password")]).await.unwrap();
        let hits = store.dense_search(&[1.0, 0.0, 0.0, 0.0], 1, &SearchFilter::default()).await.unwrap();
        assert_eq!(hits[0].chunk.source, "a.md");
        assert!((hits[0].score - 1.0).abs() < 1e-6);

        store.clear(LAYOUT).await.unwrap();
        assert_eq!(store.vector_bits(), Some(16), "a rebuilt index stores 16-bit vectors");
    }

    #[tokio::test]
    async fn a_rebuild_takes_the_new_models_dimension() {
        let dir = tempfile::tempdir().unwrap();
        let store = EdgeStore::open(dir.path(), Some(LAYOUT)).unwrap();
        store.upsert_chunks(vec![chunk("a.md", 0, "old model")]).await.unwrap();
        store.clear(VectorLayout { dimension: 8, multilingual: false }).await.unwrap();
        let mut c = chunk("a.md", 0, "new model");
        c.dense = vec![0.0; 8];
        c.dense[5] = 1.0;
        store.upsert_chunks(vec![c]).await.unwrap();
        let mut query = vec![0.0; 8];
        query[5] = 1.0;
        let hits = store.dense_search(&query, 5, &SearchFilter::default()).await.unwrap();
        assert_eq!(hits.len(), 1, "the old model's chunk is gone");
        assert_eq!(hits[0].chunk.text, "new model");
    }
}
