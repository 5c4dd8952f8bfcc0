//! BM25 sparse vectors computed with qdrant-edge's `EdgeBm25` (multilingual tokenizer: Chinese
//! and Japanese are segmented into words). Both store backends use it, so the embedded shard and a
//! Qdrant server collection hold the same token ids; the IDF part is applied by the store
//! (`Modifier::Idf`).

use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};
use qdrant_edge::external::ordered_float::NotNan;
use qdrant_edge::{SparseVector, TokenizerType};

use super::StoreError;

/// Average chunk length in BM25 tokens (stop words removed), for length normalisation.
/// Chunks are cut at about 200 model tokens, which leaves roughly 100 BM25 terms.
const AVG_LEN: f64 = 100.0;

/// Encodes documents and queries into BM25 sparse vectors.
#[derive(Debug)]
pub struct Bm25Encoder {
    inner: EdgeBm25,
}

impl Bm25Encoder {
    pub fn new() -> Result<Self, StoreError> {
        let config = EdgeBm25Config {
            tokenizer: TokenizerType::Multilingual,
            avg_len: NotNan::new(AVG_LEN).map_err(|e| StoreError::Other(e.to_string()))?,
            ..Default::default()
        };
        let inner = EdgeBm25::new(config).map_err(|e| StoreError::Other(format!("BM25 model: {e}")))?;
        Ok(Self { inner })
    }

    pub fn document(&self, text: &str) -> SparseVector {
        self.inner.embed_document(text)
    }

    pub fn query(&self, text: &str) -> SparseVector {
        self.inner.embed_query(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_text_is_segmented_into_several_terms() {
        let bm25 = Bm25Encoder::new().unwrap();
        let v = bm25.document("如何重置我的密码");
        assert!(v.indices.len() >= 2, "expected word segmentation, got {:?}", v.indices);
    }

    #[test]
    fn english_stemming_makes_inflections_match() {
        let bm25 = Bm25Encoder::new().unwrap();
        let q = bm25.query("syncing");
        let d = bm25.document("sync");
        assert_eq!(q.indices, d.indices);
    }
}
