//! The payload schema shared by both store backends: how chunks, document records and the
//! index metadata are written as JSON payloads, and filters as backend-neutral conditions.

use serde_json::{Map, Value, json};

use super::{DocRecord, IndexMeta, SearchFilter, StoreError};
use crate::document::{Chunk, DocKind, ID_NAMESPACE, document_id};

/// Payload field telling what a point is: `chunk`, `document` (sync record) or `meta`.
pub const RECORD: &str = "record";
pub const RECORD_CHUNK: &str = "chunk";
pub const RECORD_DOCUMENT: &str = "document";
pub const RECORD_META: &str = "meta";

/// Keyword fields that get a payload index.
pub const INDEXED_FIELDS: &[&str] = &[RECORD, "root", "source", "doc_id", "kind", "language", "tags"];

/// Id of the single metadata point.
pub fn meta_id() -> uuid::Uuid {
    uuid::Uuid::new_v5(&ID_NAMESPACE, b"meta")
}

/// Id of a document's completion record (distinct from its `doc_id`, which chunks carry).
pub fn record_id(root: &str, source: &str) -> uuid::Uuid {
    uuid::Uuid::new_v5(&ID_NAMESPACE, format!("record\0{root}\0{source}").as_bytes())
}

pub fn chunk_payload(c: &Chunk) -> Value {
    json!({
        RECORD: RECORD_CHUNK,
        "root": c.root,
        "source": c.source,
        "doc_id": document_id(&c.root, &c.source).to_string(),
        "chunk_index": c.chunk_index,
        "title": c.title,
        "heading_path": c.heading_path,
        "anchor": c.anchor,
        "citation": c.citation(),
        "kind": c.kind.as_str(),
        "language": c.language,
        "tags": c.tags,
        "text": c.text,
        "tokens": c.tokens,
        "question": c.question,
        "answer": c.answer,
        "url": c.url,
        "content_hash": c.content_hash,
        "cites": c.cites,
    })
}

fn str_field(p: &Map<String, Value>, key: &str) -> Result<String, StoreError> {
    p.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| StoreError::Other(format!("stored point lacks `{key}`")))
}

fn opt_str(p: &Map<String, Value>, key: &str) -> Option<String> {
    p.get(key).and_then(Value::as_str).map(str::to_string)
}

fn str_list(p: &Map<String, Value>, key: &str) -> Vec<String> {
    p.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn kind(p: &Map<String, Value>) -> DocKind {
    match p.get("kind").and_then(Value::as_str) {
        Some("faq") => DocKind::Faq,
        _ => DocKind::Doc,
    }
}

pub fn chunk_from_payload(id: uuid::Uuid, p: &Map<String, Value>) -> Result<Chunk, StoreError> {
    Ok(Chunk {
        id,
        root: str_field(p, "root")?,
        source: str_field(p, "source")?,
        chunk_index: p.get("chunk_index").and_then(Value::as_u64).unwrap_or(0) as u32,
        title: opt_str(p, "title").unwrap_or_default(),
        heading_path: str_list(p, "heading_path"),
        anchor: opt_str(p, "anchor"),
        kind: kind(p),
        language: opt_str(p, "language").unwrap_or_else(|| "und".into()),
        tags: str_list(p, "tags"),
        text: opt_str(p, "text").unwrap_or_default(),
        embed_text: String::new(),
        tokens: p.get("tokens").and_then(Value::as_u64).unwrap_or(0) as u32,
        question: opt_str(p, "question"),
        answer: opt_str(p, "answer"),
        url: opt_str(p, "url"),
        content_hash: opt_str(p, "content_hash").unwrap_or_default(),
        cites: opt_str(p, "cites"),
    })
}

pub fn record_payload(r: &DocRecord) -> Value {
    json!({
        RECORD: RECORD_DOCUMENT,
        "root": r.root,
        "source": r.source,
        "title": r.title,
        "kind": r.kind.as_str(),
        "content_hash": r.content_hash,
        "chunks": r.chunks,
        "indexed_at": r.indexed_at,
    })
}

pub fn record_from_payload(p: &Map<String, Value>) -> Result<DocRecord, StoreError> {
    Ok(DocRecord {
        root: str_field(p, "root")?,
        source: str_field(p, "source")?,
        title: opt_str(p, "title").unwrap_or_default(),
        kind: kind(p),
        content_hash: str_field(p, "content_hash")?,
        chunks: p.get("chunks").and_then(Value::as_u64).unwrap_or(0) as usize,
        indexed_at: opt_str(p, "indexed_at").unwrap_or_default(),
    })
}

pub fn meta_payload(m: &IndexMeta) -> Value {
    json!({ RECORD: RECORD_META, "meta": m })
}

pub fn meta_from_payload(p: &Map<String, Value>) -> Result<IndexMeta, StoreError> {
    let m = p.get("meta").ok_or_else(|| StoreError::Other("metadata point lacks `meta`".into()))?;
    serde_json::from_value(m.clone()).map_err(|e| StoreError::Other(format!("unreadable index metadata: {e}")))
}

/// A backend-neutral conjunction of "field matches any of these values" conditions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions(pub Vec<(&'static str, Vec<String>)>);

impl Conditions {
    pub fn with(mut self, field: &'static str, values: Vec<String>) -> Self {
        if !values.is_empty() {
            self.0.push((field, values));
        }
        self
    }

    /// Chunks only, restricted by the search filter.
    pub fn chunks(filter: &SearchFilter) -> Self {
        Conditions::default()
            .with(RECORD, vec![RECORD_CHUNK.into()])
            .with("root", filter.roots.clone())
            .with("tags", filter.tags.clone())
            .with("language", filter.languages.clone())
            .with("kind", filter.kinds.iter().map(|k| k.as_str().to_string()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Chunk {
        Chunk {
            id: crate::document::chunk_id("docs", "guide/a.md", 3),
            root: "docs".into(),
            source: "guide/a.md".into(),
            chunk_index: 3,
            title: "A".into(),
            heading_path: vec!["A".into(), "Proxy".into()],
            anchor: Some("proxy".into()),
            kind: DocKind::Doc,
            language: "en".into(),
            tags: vec!["server".into()],
            text: "Set HTTPS_PROXY.".into(),
            embed_text: "A > Proxy\nSet HTTPS_PROXY.".into(),
            tokens: 7,
            question: None,
            answer: None,
            url: None,
            content_hash: "abc".into(),
            cites: None,
        }
    }

    #[test]
    fn chunk_payload_round_trips_and_carries_citation() {
        let c = sample();
        let Value::Object(p) = chunk_payload(&c) else { panic!("payload must be an object") };
        assert_eq!(p["citation"], "guide/a.md#proxy");
        let back = chunk_from_payload(c.id, &p).unwrap();
        assert_eq!(back, Chunk { embed_text: String::new(), ..c });
    }

    #[test]
    fn filter_conditions_skip_empty_lists() {
        let f = SearchFilter { languages: vec!["zh".into()], ..Default::default() };
        let c = Conditions::chunks(&f);
        assert_eq!(c.0, vec![(RECORD, vec!["chunk".to_string()]), ("language", vec!["zh".to_string()])]);
    }
}
