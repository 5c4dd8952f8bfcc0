//! The ingest run: scan each source root, plan the sync against the index, then stream what is
//! new or changed through load, chunk, embed (in groups, off the async runtime) and write, so that
//! memory stays bounded by a group rather than the root, and a crash at any point leaves an index
//! that opens and a rerun that completes the job.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use sha2::{Digest, Sha256};
use supportbot_core::document::Document;
use supportbot_core::embed::{Embedder, multilingual_vectors};
use supportbot_core::store::{
    Compatibility, DocRecord, IndexMeta, KnowledgeStore, RootState, StoredChunk, now_rfc3339,
};

use crate::chunker::{Chunker, PreparedChunk};
use crate::loaders;
use crate::sync::{self, Plan, Scanned};

/// Chunks embedded together. The embedder sorts a group by token count before cutting it into
/// batches, and a batch is padded to its longest input: the larger the group, the less compute
/// goes to padding (on the LibreOffice task pages, in batches of 16: 5.6% of the padded tokens
/// with groups of 64, 0.9% with 512; sorting by bytes instead of tokens: 9%). A group is also the
/// unit of memory: files are read and parsed only when their group is being filled. Documents are
/// still written, and completed, one by one after their group is embedded.
const GROUP_CHUNKS: usize = 512;

/// A named root of documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootSpec {
    pub name: String,
    /// A directory, or a single file.
    pub path: PathBuf,
    /// Public base URL of the pages, if any.
    pub url: Option<String>,
    /// Tags given to every chunk of the root.
    pub tags: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub dry_run: bool,
    pub rebuild: bool,
    pub max_file_bytes: u64,
    /// Show a progress bar.
    pub progress: bool,
}

/// A file that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub root: String,
    pub path: String,
    pub reason: String,
}

/// What a run did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
    pub unchanged: usize,
    pub failed: usize,
    /// Chunks written.
    pub chunks: usize,
    /// Model tokens embedded.
    pub tokens: usize,
    pub seconds: f64,
    /// Of `seconds`, the time spent computing embeddings.
    pub embed_seconds: f64,
    pub dry_run: bool,
    pub roots: Vec<RootSummary>,
    pub failures: Vec<Failure>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RootSummary {
    pub name: String,
    pub path: String,
    pub plan: Plan,
}

/// The services a run writes with. `None` store means the index does not exist yet (dry run).
pub struct Services<'a> {
    pub store: Option<Arc<dyn KnowledgeStore>>,
    pub embedder: Option<Arc<dyn Embedder>>,
    pub chunker: Option<&'a Chunker>,
    pub compatibility: Option<Compatibility>,
}

/// A file of a root that was hashed. Its bytes are not kept: they are read again when (and if)
/// the file is loaded.
struct FileEntry {
    source: String,
    path: PathBuf,
    format: loaders::Format,
    hash: String,
}

/// Name of the file, in a root or any folder below it, listing paths the ingest tool must skip
/// (gitignore syntax).
pub const IGNORE_FILE: &str = ".supportbotignore";

/// Lists the files of a root that some loader accepts, with their root-relative path.
/// Hidden files and directories (`.git`, `.supportbot`) and paths listed in a
/// `.supportbotignore` are skipped; symlinks are not followed.
pub fn list_files(root: &Path) -> Result<Vec<(String, PathBuf)>, std::io::Error> {
    let meta = std::fs::metadata(root)?;
    if meta.is_file() {
        let name = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        return Ok(if loaders::format_for(root).is_some() { vec![(name, root.to_path_buf())] } else { vec![] });
    }
    let walker = ignore::WalkBuilder::new(root)
        .standard_filters(false)
        .hidden(true)
        .follow_links(false)
        .add_custom_ignore_filename(IGNORE_FILE)
        .sort_by_file_name(|a, b| a.cmp(b))
        .build();
    let mut out = Vec::new();
    for entry in walker {
        let entry = entry.map_err(std::io::Error::other)?;
        if !entry.file_type().is_some_and(|t| t.is_file()) || loaders::format_for(entry.path()).is_none() {
            continue;
        }
        let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
        let source =
            rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/");
        out.push((source, entry.path().to_path_buf()));
    }
    Ok(out)
}

/// Content hash of a file as indexed: its bytes and the tags its chunks will carry.
pub fn content_hash(bytes: &[u8], tags: &[String]) -> String {
    let mut h = Sha256::new();
    h.update(bytes);
    h.update(b"\0tags:");
    h.update(tags.join("\x1f").as_bytes());
    hex::encode(h.finalize())
}

fn scan(root: &RootSpec, max_bytes: u64, failures: &mut Vec<Failure>) -> anyhow::Result<Vec<FileEntry>> {
    let files = list_files(&root.path)
        .map_err(|e| anyhow::anyhow!("cannot read source root {} ({}): {e}", root.name, root.path.display()))?;
    let mut out = Vec::new();
    for (source, path) in files {
        let fail = |reason: String| Failure { root: root.name.clone(), path: source.clone(), reason };
        let Some(format) = loaders::format_for(&path) else { continue };
        match std::fs::metadata(&path) {
            Ok(m) if m.len() > max_bytes => {
                failures.push(fail(format!(
                    "file is {} bytes, over the limit of {max_bytes} (ingest.max_file_bytes)",
                    m.len()
                )));
                continue;
            }
            Err(e) => {
                failures.push(fail(format!("unreadable: {e}")));
                continue;
            }
            Ok(_) => {}
        }
        match std::fs::read(&path) {
            Ok(bytes) => {
                let hash = content_hash(&bytes, &root.tags);
                out.push(FileEntry { source, path, format, hash });
            }
            Err(e) => failures.push(fail(format!("unreadable: {e}"))),
        }
    }
    Ok(out)
}

/// Reads and parses a scanned file. The hash returned is that of the bytes parsed: if the file
/// changed since the scan, the index records what it actually holds, and the next run syncs again.
fn load_file(root: &RootSpec, f: &FileEntry) -> Result<(Document, String), String> {
    let bytes = std::fs::read(&f.path).map_err(|e| format!("unreadable: {e}"))?;
    let hash = content_hash(&bytes, &root.tags);
    let doc = loaders::load(&f.source, f.format, &bytes).map_err(|e| e.to_string())?;
    Ok((doc, hash))
}

/// Checks the index against the model and chunker in use, initialising an empty index.
/// With `rebuild`, empties the index first.
pub async fn prepare_index(
    store: &dyn KnowledgeStore,
    compat: &Compatibility,
    rebuild: bool,
) -> anyhow::Result<IndexMeta> {
    if rebuild {
        store.clear(compat.layout()).await?;
    }
    match store.meta().await? {
        Some(meta) => {
            compat.check(&meta)?;
            Ok(meta)
        }
        None => {
            let meta = IndexMeta {
                embedding_model: compat.embedding_model.clone(),
                dimension: compat.dimension,
                chunker_version: compat.chunker_version,
                created_at: now_rfc3339(),
                roots: Default::default(),
            };
            store.put_meta(&meta).await?;
            Ok(meta)
        }
    }
}

/// One line of `--export-chunks`: exactly what the embedder would see.
#[derive(Debug, Serialize)]
pub struct ExportedChunk {
    pub root: String,
    pub citation: String,
    pub kind: &'static str,
    pub language: String,
    /// The text the dense embedder sees (contextual header + passage, or the FAQ question).
    pub embed_text: String,
    pub tokens: usize,
}

/// Loads and chunks every file of `roots` without touching the index (for benchmarks and for
/// inspecting how documents are cut). Returns the chunks and the files that failed.
pub fn export_chunks(
    roots: &[RootSpec],
    chunker: &Chunker,
    max_file_bytes: u64,
) -> anyhow::Result<(Vec<ExportedChunk>, Vec<Failure>)> {
    let mut out = Vec::new();
    let mut failures = Vec::new();
    for root in roots {
        for f in scan(root, max_file_bytes, &mut failures)? {
            match load_file(root, &f) {
                Ok((doc, hash)) => {
                    out.extend(chunker.chunk(&root.name, &doc, &root.tags, &hash).into_iter().map(|c| ExportedChunk {
                        root: root.name.clone(),
                        citation: c.chunk.citation(),
                        kind: c.chunk.kind.as_str(),
                        language: c.chunk.language,
                        embed_text: c.chunk.embed_text,
                        tokens: c.chunk.tokens as usize,
                    }))
                }
                Err(reason) => failures.push(Failure { root: root.name.clone(), path: f.source.clone(), reason }),
            }
        }
    }
    Ok((out, failures))
}

/// A document ready to embed.
struct Pending {
    doc: Document,
    hash: String,
    chunks: Vec<PreparedChunk>,
    replace: bool,
}

/// Runs a sync of `roots`.
pub async fn ingest(roots: &[RootSpec], mut services: Services<'_>, opts: &IngestOptions) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let mut summary = Summary { dry_run: opts.dry_run, ..Default::default() };
    let mut meta = match (&services.store, &services.compatibility, opts.dry_run) {
        (Some(store), Some(compat), false) => Some(prepare_index(store.as_ref(), compat, opts.rebuild).await?),
        (Some(store), Some(compat), true) => match store.meta().await? {
            Some(m) => {
                compat.check(&m)?;
                Some(m)
            }
            None => None,
        },
        _ => None,
    };

    for (i, root) in roots.iter().enumerate() {
        let last_root = i + 1 == roots.len();
        let mut failures = Vec::new();
        let files = scan(root, opts.max_file_bytes, &mut failures)?;
        let failed_sources: BTreeSet<String> = failures.iter().map(|f| f.path.clone()).collect();
        let (indexed, with_chunks) = match (&services.store, opts.rebuild && opts.dry_run) {
            (Some(store), false) => (store.documents(&root.name).await?, store.chunk_sources(&root.name).await?),
            _ => (Vec::new(), Vec::new()),
        };
        let scanned: Vec<Scanned> =
            files.iter().map(|f| Scanned { source: f.source.clone(), content_hash: f.hash.clone() }).collect();
        let mut plan = sync::plan(&scanned, &failed_sources, &indexed, &with_chunks);

        // Stream what is new or changed through load, chunk, embed and write; a file that fails
        // keeps whatever the index holds.
        let to_load: Vec<&FileEntry> = {
            let wanted: BTreeSet<&str> = plan.added.iter().chain(&plan.changed).map(String::as_str).collect();
            files.iter().filter(|f| wanted.contains(f.source.as_str())).collect()
        };
        let changed: BTreeSet<&str> = plan.changed.iter().map(String::as_str).collect();
        let mut writer = if opts.dry_run {
            None
        } else {
            let store = services.store.clone().ok_or_else(|| anyhow::anyhow!("no index to write to"))?;
            let embedder = services.embedder.clone().ok_or_else(|| anyhow::anyhow!("no embedder"))?;
            for source in &plan.removed {
                store.remove_document(&root.name, source).await?;
            }
            Some(GroupWriter::new(store, embedder, &root.name, to_load.len(), opts.progress))
        };
        for f in to_load {
            let fail = |reason: String| Failure { root: root.name.clone(), path: f.source.clone(), reason };
            let (doc, hash) = match load_file(root, f) {
                Ok(loaded) => loaded,
                Err(reason) => {
                    failures.push(fail(reason));
                    continue;
                }
            };
            let chunks = match services.chunker {
                Some(c) => c.chunk(&root.name, &doc, &root.tags, &hash),
                None => Vec::new(),
            };
            if services.chunker.is_some() && chunks.is_empty() {
                failures.push(fail("no text to index".into()));
                continue;
            }
            if let Some(w) = writer.as_mut() {
                let replace = changed.contains(f.source.as_str());
                w.push(Pending { doc, hash, chunks, replace }).await?;
            }
        }
        drop(changed);
        let failed_now: BTreeSet<&str> = failures.iter().map(|f| f.path.as_str()).collect();
        plan.added.retain(|s| !failed_now.contains(s.as_str()));
        plan.changed.retain(|s| !failed_now.contains(s.as_str()));

        if let Some(writer) = writer {
            let store = writer.store.clone();
            let written = writer.finish().await?;
            if last_root {
                // Nothing is embedded after this: the models' memory (weights, ONNX Runtime's
                // working memory) goes back to the system before the index is flushed and
                // optimised, steps that need memory of their own (BENCHMARKS.md, section 1).
                drop(services.embedder.take());
                crate::memory::release_free_memory();
            }
            summary.chunks += written.chunks;
            summary.tokens += written.tokens;
            summary.embed_seconds += written.embed_seconds;
            if let Some(meta) = meta.as_mut() {
                meta.roots.insert(
                    root.name.clone(),
                    RootState {
                        path: root.path.display().to_string(),
                        url: root.url.clone(),
                        last_sync: Some(now_rfc3339()),
                    },
                );
                store.put_meta(meta).await?;
            }
            store.flush().await?;
        }

        for f in &failures {
            tracing::info!(root = %f.root, path = %f.path, reason = %f.reason, "skipped");
        }
        summary.added += plan.added.len();
        summary.changed += plan.changed.len();
        summary.removed += plan.removed.len();
        summary.unchanged += plan.unchanged.len();
        summary.failed += failures.len();
        summary.failures.extend(failures);
        summary.roots.push(RootSummary { name: root.name.clone(), path: root.path.display().to_string(), plan });
    }
    if !opts.dry_run && (summary.chunks > 0 || summary.removed > 0 || summary.changed > 0) {
        // Every document is complete by now: an interrupted optimisation loses nothing.
        if let Some(store) = services.store.as_ref() {
            let optimizing = Instant::now();
            store.compact().await?;
            tracing::info!(seconds = optimizing.elapsed().as_secs_f64(), "index optimised for search");
        }
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// What a `GroupWriter` wrote.
struct Written {
    chunks: usize,
    tokens: usize,
    embed_seconds: f64,
}

/// Collects documents of one root into groups of about `GROUP_CHUNKS` chunks, and embeds and
/// writes each group as soon as it is full.
struct GroupWriter {
    store: Arc<dyn KnowledgeStore>,
    embedder: Arc<dyn Embedder>,
    root: String,
    group: Vec<Pending>,
    group_chunks: usize,
    bar: ProgressBar,
    written: Written,
}

impl GroupWriter {
    /// A writer for `documents` documents of `root`.
    fn new(
        store: Arc<dyn KnowledgeStore>,
        embedder: Arc<dyn Embedder>,
        root: &str,
        documents: usize,
        progress: bool,
    ) -> Self {
        let bar = if progress && documents > 0 {
            let bar = ProgressBar::new(documents as u64);
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} documents, eta {eta} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(root.to_string());
            bar
        } else {
            ProgressBar::hidden()
        };
        GroupWriter {
            store,
            embedder,
            root: root.to_string(),
            group: Vec::new(),
            group_chunks: 0,
            bar,
            written: Written { chunks: 0, tokens: 0, embed_seconds: 0.0 },
        }
    }

    /// Adds a document; writes the group when it is full.
    async fn push(&mut self, p: Pending) -> anyhow::Result<()> {
        self.group_chunks += p.chunks.len();
        self.group.push(p);
        if self.group_chunks >= GROUP_CHUNKS {
            self.write_group().await?;
        }
        Ok(())
    }

    /// Writes what is left and reports what was written.
    async fn finish(mut self) -> anyhow::Result<Written> {
        self.write_group().await?;
        self.bar.finish_and_clear();
        Ok(self.written)
    }

    /// Embeds the group, then writes and completes its documents one by one.
    async fn write_group(&mut self) -> anyhow::Result<()> {
        if self.group.is_empty() {
            return Ok(());
        }
        let group = std::mem::take(&mut self.group);
        self.group_chunks = 0;
        let texts: Vec<String> =
            group.iter().flat_map(|p| p.chunks.iter().map(|c| c.chunk.embed_text.clone())).collect();
        let sizes: Vec<usize> = group.iter().flat_map(|p| p.chunks.iter().map(PreparedChunk::tokens)).collect();
        let e = self.embedder.clone();
        let embed_started = Instant::now();
        let vectors = tokio::task::spawn_blocking(move || e.embed_documents_sized(&texts, &sizes)).await??;
        // CJK passages also get the multilingual model's vector, when there is one.
        let labelled: Vec<(String, String)> = group
            .iter()
            .flat_map(|p| p.chunks.iter().map(|c| (c.chunk.embed_text.clone(), c.chunk.language.clone())))
            .collect();
        let e = self.embedder.clone();
        let mut multilingual =
            tokio::task::spawn_blocking(move || multilingual_vectors(e.as_ref(), &labelled)).await??.into_iter();
        self.written.embed_seconds += embed_started.elapsed().as_secs_f64();
        let mut vectors = vectors.into_iter();
        let root = self.root.as_str();
        for p in group {
            self.bar.set_message(p.doc.source.clone());
            if p.replace {
                self.store.remove_document(root, &p.doc.source).await?;
            }
            let n = p.chunks.len();
            let mut stored = Vec::with_capacity(n);
            for c in p.chunks {
                let dense = vectors.next().ok_or_else(|| anyhow::anyhow!("embedder returned too few vectors"))?;
                self.written.tokens += c.tokens();
                let multilingual = multilingual.next().flatten();
                stored.push(StoredChunk { chunk: c.chunk, dense, multilingual, lexical_text: c.lexical_text });
            }
            self.store.upsert_chunks(stored).await?;
            // Only now is the document complete: a crash before this line makes the next run redo it.
            self.store
                .complete_document(&DocRecord {
                    root: root.to_string(),
                    source: p.doc.source.clone(),
                    title: p.doc.title.clone(),
                    kind: p.doc.kind(),
                    content_hash: p.hash,
                    chunks: n,
                    indexed_at: now_rfc3339(),
                })
                .await?;
            self.written.chunks += n;
            self.bar.inc(1);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_skips_hidden_ignored_and_unknown_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir_all(p.join("guide")).unwrap();
        std::fs::create_dir_all(p.join(".git")).unwrap();
        std::fs::write(p.join("guide/install.md"), "# Install").unwrap();
        std::fs::write(p.join("guide/draft.md"), "# Draft").unwrap();
        std::fs::write(p.join("logo.png"), [0u8, 1, 2]).unwrap();
        std::fs::write(p.join(".git/notes.md"), "# hidden").unwrap();
        std::fs::write(p.join(IGNORE_FILE), "guide/draft.md\n").unwrap();
        std::fs::write(p.join("faq.csv"), "question,answer\nq,a\n").unwrap();
        let listed: Vec<String> = list_files(p).unwrap().into_iter().map(|(s, _)| s).collect();
        assert_eq!(listed, vec!["faq.csv", "guide/install.md"]);
    }

    #[test]
    fn a_single_file_is_a_root_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("faq.yaml");
        std::fs::write(&f, "- question: q\n  answer: a\n").unwrap();
        let listed = list_files(&f).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].0, "faq.yaml");
    }

    #[test]
    fn content_hash_changes_with_tags() {
        assert_ne!(content_hash(b"x", &[]), content_hash(b"x", &["server".into()]));
        assert_eq!(content_hash(b"x", &[]), content_hash(b"x", &[]));
    }
}
