//! BM25 sparse vectors computed with qdrant-edge's `EdgeBm25`: words split at non-alphanumeric
//! characters, lowercased, English stop words dropped and stemmed; numbers alone dropped; runs
//! of Chinese, Japanese or Korean characters become overlapping character bigrams, so no
//! dictionary-based segmenter (jieba, about 47 MB resident) is ever loaded. Both store backends
//! use it, so the embedded shard and a Qdrant server collection hold the same token ids; the IDF
//! part is applied by the store (`Modifier::Idf`).

use irg_kvariants::KVARIANTS;
use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};
use qdrant_edge::external::ordered_float::NotNan;
use qdrant_edge::{SparseVector, TokenizerType};

use super::StoreError;
use crate::lang::script_runs;

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
            tokenizer: TokenizerType::Word,
            avg_len: NotNan::new(AVG_LEN).map_err(|e| StoreError::Other(e.to_string()))?,
            ..Default::default()
        };
        let inner = EdgeBm25::new(config).map_err(|e| StoreError::Other(format!("BM25 model: {e}")))?;
        Ok(Self { inner })
    }

    pub fn document(&self, text: &str) -> SparseVector {
        self.inner.embed_document(&bm25_text(text))
    }

    pub fn query(&self, text: &str) -> SparseVector {
        self.inner.embed_query(&bm25_text(text))
    }
}

/// The text the BM25 tokenizer sees: the words of `text` that hold a letter (numbers alone are
/// dropped, as before), and every run of CJK characters as its overlapping character bigrams
/// ("重置密码" → "重置 置密 密码"; a run of one character stays as it is). Chinese character
/// variants are folded first (traditional and simplified forms match), as charabia did.
fn bm25_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for (cjk, part) in script_runs(text) {
        if cjk {
            let run: Vec<char> =
                part.chars().map(|c| KVARIANTS.get(&c).map_or(c, |v| v.destination_ideograph)).collect();
            if run.len() == 1 {
                out.push(run[0]);
                out.push(' ');
            }
            for pair in run.windows(2) {
                out.push(pair[0]);
                out.push(pair[1]);
                out.push(' ');
            }
        } else {
            for word in part.split(|c: char| !c.is_alphanumeric()).filter(|w| w.chars().any(char::is_alphabetic)) {
                out.push_str(word);
                out.push(' ');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_text_becomes_overlapping_bigrams_and_numbers_are_dropped() {
        let words = |t: &str| bm25_text(t).split_whitespace().map(str::to_string).collect::<Vec<_>>();
        // Variants are folded (码 and 碼 are one character to BM25).
        assert_eq!(words("重置密码"), words("重置密碼"));
        let cut = words("重置密码");
        assert_eq!(cut.len(), 3);
        assert_eq!(cut[0], "重置");
        assert!(cut[1].starts_with('置') && cut[2].starts_with('密'));
        let mixed = words("打开 Writer，点击文件");
        assert_eq!(mixed.len(), 5);
        assert_eq!(mixed[1], "Writer");
        assert_eq!(words("第3章"), ["第", "章"]);
        assert_eq!(
            words("Move slide 5 to position 2, error E404"),
            ["Move", "slide", "to", "position", "error", "E404"]
        );
    }

    #[test]
    fn traditional_and_simplified_characters_match() {
        let bm25 = Bm25Encoder::new().unwrap();
        let q = bm25.query("設定");
        let d = bm25.document("设定");
        assert!(!q.indices.is_empty());
        assert_eq!(q.indices, d.indices);
    }

    #[test]
    fn a_chinese_question_matches_a_passage_that_words_it_differently() {
        let bm25 = Bm25Encoder::new().unwrap();
        let q = bm25.query("如何重置我的密码");
        let d = bm25.document("在设置页面可以重置密码。");
        let shared = q.indices.iter().filter(|i| d.indices.contains(i)).count();
        // 重置 and 密码 are shared; 如何, 何重, 置我, 我的 and 的密 are not.
        assert_eq!(shared, 2, "query {:?}, document {:?}", q.indices, d.indices);
    }

    #[test]
    fn english_stemming_makes_inflections_match() {
        let bm25 = Bm25Encoder::new().unwrap();
        let q = bm25.query("syncing");
        let d = bm25.document("sync");
        assert_eq!(q.indices, d.indices);
    }

    #[test]
    fn english_stop_words_are_dropped_and_case_is_folded() {
        let bm25 = Bm25Encoder::new().unwrap();
        let q = bm25.query("How do I export the Spreadsheet?");
        let d = bm25.document("export spreadsheet");
        assert_eq!(q.indices.len(), 2, "{:?}", q.indices);
        let mut qi = q.indices.clone();
        let mut di = d.indices.clone();
        qi.sort_unstable();
        di.sort_unstable();
        assert_eq!(qi, di);
    }
}
