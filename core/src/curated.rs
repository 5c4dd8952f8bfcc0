//! Curated answers in the index: operator corrections live in the review store (the source of
//! truth); the index holds a copy, under the source root `curated`, that the Answerer's curated
//! fast path serves for close questions without a model. Each question variant is one FAQ-kind
//! chunk matched by its question. `sync_curated` restores the copy after `--rebuild` and keeps it
//! in step; it never touches other roots, and ordinary syncs never touch this one.

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::document::{Chunk, DocKind, chunk_id};
use crate::embed::{Embedder, multilingual_vectors};
use crate::lang::detect_language;
use crate::review::CuratedAnswer;
use crate::store::{DocRecord, KnowledgeStore, StoredChunk, now_rfc3339};

/// The source root of curated answers in the index.
pub const CURATED_ROOT: &str = "curated";
/// Title shown for a curated answer that cites no documentation page.
pub const CURATED_TITLE: &str = "Answer from the support team";

/// The index path of a curated answer.
pub fn curated_source(id: &str) -> String {
    format!("curated/{id}")
}

fn content_hash(c: &CuratedAnswer) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(&(&c.questions, &c.answer, &c.citation, &c.url)).unwrap_or_default());
    hex::encode(h.finalize())
}

/// The chunks of a curated answer: one per non-empty question variant.
pub fn chunks_for(c: &CuratedAnswer) -> Vec<Chunk> {
    let source = curated_source(&c.id);
    let hash = content_hash(c);
    c.questions
        .iter()
        .map(|q| q.trim())
        .filter(|q| !q.is_empty())
        .enumerate()
        .map(|(i, q)| Chunk {
            id: chunk_id(CURATED_ROOT, &source, i as u32),
            root: CURATED_ROOT.into(),
            source: source.clone(),
            chunk_index: i as u32,
            title: CURATED_TITLE.into(),
            heading_path: vec![q.to_string()],
            anchor: None,
            kind: DocKind::Faq,
            language: detect_language(&format!("{q} {}", c.answer)),
            tags: Vec::new(),
            text: format!("{q}\n\n{}", c.answer),
            embed_text: q.to_string(),
            tokens: 0,
            question: Some(q.to_string()),
            answer: Some(c.answer.clone()),
            url: c.url.clone(),
            content_hash: hash.clone(),
            cites: c.citation.clone(),
        })
        .collect()
}

/// Writes (or replaces) one curated answer in the index.
pub async fn index_curated(
    store: &dyn KnowledgeStore,
    embedder: &Arc<dyn Embedder>,
    c: &CuratedAnswer,
) -> anyhow::Result<usize> {
    let source = curated_source(&c.id);
    store.remove_document(CURATED_ROOT, &source).await?;
    let chunks = chunks_for(c);
    if chunks.is_empty() {
        return Ok(0);
    }
    let labelled: Vec<(String, String)> = chunks.iter().map(|c| (c.embed_text.clone(), c.language.clone())).collect();
    let e = embedder.clone();
    let (vectors, multilingual) = tokio::task::spawn_blocking(move || {
        let texts: Vec<String> = labelled.iter().map(|(t, _)| t.clone()).collect();
        Ok::<_, crate::embed::EmbedError>((e.embed_documents(&texts)?, multilingual_vectors(e.as_ref(), &labelled)?))
    })
    .await??;
    let n = chunks.len();
    let stored = chunks
        .into_iter()
        .zip(vectors)
        .zip(multilingual)
        .map(|((chunk, dense), multilingual)| StoredChunk {
            lexical_text: chunk.text.clone(),
            chunk,
            dense,
            multilingual,
        })
        .collect();
    store.upsert_chunks(stored).await?;
    store
        .complete_document(&DocRecord {
            root: CURATED_ROOT.into(),
            source,
            title: CURATED_TITLE.into(),
            kind: DocKind::Faq,
            content_hash: content_hash(c),
            chunks: n,
            indexed_at: now_rfc3339(),
        })
        .await?;
    Ok(n)
}

/// Removes a curated answer from the index.
pub async fn unindex_curated(store: &dyn KnowledgeStore, id: &str) -> anyhow::Result<()> {
    store.remove_document(CURATED_ROOT, &curated_source(id)).await?;
    Ok(())
}

/// What `sync_curated` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CuratedSync {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
    pub unchanged: usize,
}

/// Makes the index's copy of the curated answers match `active` (the review store's active ones).
pub async fn sync_curated(
    store: &dyn KnowledgeStore,
    embedder: &Arc<dyn Embedder>,
    active: &[CuratedAnswer],
) -> anyhow::Result<CuratedSync> {
    let indexed: BTreeMap<String, String> =
        store.documents(CURATED_ROOT).await?.into_iter().map(|r| (r.source, r.content_hash)).collect();
    let with_chunks = store.chunk_sources(CURATED_ROOT).await?;
    let mut out = CuratedSync::default();
    let mut wanted = std::collections::BTreeSet::new();
    for c in active {
        let source = curated_source(&c.id);
        wanted.insert(source.clone());
        match indexed.get(&source) {
            Some(hash) if *hash == content_hash(c) => out.unchanged += 1,
            Some(_) => {
                index_curated(store, embedder, c).await?;
                out.changed += 1;
            }
            None => {
                index_curated(store, embedder, c).await?;
                out.added += 1;
            }
        }
    }
    let stale: std::collections::BTreeSet<String> =
        indexed.keys().cloned().chain(with_chunks).filter(|s| !wanted.contains(s)).collect();
    for source in stale {
        store.remove_document(CURATED_ROOT, &source).await?;
        out.removed += 1;
    }
    store.flush().await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::CuratedStatus;

    #[test]
    fn one_chunk_per_question_variant_citing_the_documentation() {
        let c = CuratedAnswer {
            id: "abc".into(),
            questions: vec!["Which port does sync use?".into(), " ".into(), "sync port".into()],
            answer: "Port 7100.".into(),
            citation: Some("docs/ports.md#sync".into()),
            url: Some("https://docs.example/ports#sync".into()),
            status: CuratedStatus::Active,
            source_exchange: None,
            created_by: "ana".into(),
            created_at: 0,
            updated_at: 0,
        };
        let chunks = chunks_for(&c);
        assert_eq!(chunks.len(), 2);
        assert!(chunks.iter().all(|ch| ch.kind == DocKind::Faq && ch.answer.as_deref() == Some("Port 7100.")));
        assert_eq!(chunks[1].embed_text, "sync port");
        assert_eq!(chunks[0].cites.as_deref(), Some("docs/ports.md#sync"));
        assert_ne!(chunks[0].id, chunks[1].id);
    }
}
