//! Structure-aware chunking: a document is cut at its headings first, then each section by size
//! with `text-splitter`, measured in the embedder's own tokens. Every chunk keeps its heading path
//! and nearest anchor, so that its citation points into the page.

use std::path::Path;

use supportbot_core::document::{Body, Chunk, DocKind, Document, chunk_id};
use supportbot_core::lang::{detect_language, is_cjk_language, is_cjk_text, passage_language};
use text_splitter::{ChunkConfig, TextSplitter};
use tokenizers::Tokenizer;

/// Never let the body of a chunk shrink below this many tokens because of a long header.
const MIN_BODY_TOKENS: usize = 64;

/// Cuts documents into chunks.
pub struct Chunker {
    tokenizer: Tokenizer,
    chunk_tokens: usize,
}

impl std::fmt::Debug for Chunker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunker").field("chunk_tokens", &self.chunk_tokens).finish()
    }
}

/// A chunk plus the text its BM25 vector is computed from.
#[derive(Debug, Clone)]
pub struct PreparedChunk {
    pub chunk: Chunk,
    pub lexical_text: String,
}

impl PreparedChunk {
    /// Tokens the embedder will see (for throughput figures and for sorting batches).
    pub fn tokens(&self) -> usize {
        self.chunk.tokens as usize
    }
}

impl Chunker {
    /// Loads the embedder's tokenizer (`tokenizer.json` in the model directory).
    pub fn from_model_dir(model_dir: &Path, chunk_tokens: usize) -> anyhow::Result<Self> {
        let path = model_dir.join("tokenizer.json");
        let tokenizer = Tokenizer::from_file(&path)
            .map_err(|e| anyhow::anyhow!("loading tokenizer {}: {e} (run scripts/setup)", path.display()))?;
        Ok(Self::new(tokenizer, chunk_tokens))
    }

    pub fn new(mut tokenizer: Tokenizer, chunk_tokens: usize) -> Self {
        // Count every token: the file may configure truncation and padding for inference.
        tokenizer.with_padding(None);
        let _ = tokenizer.with_truncation(None);
        Self { tokenizer, chunk_tokens: chunk_tokens.max(MIN_BODY_TOKENS) }
    }

    /// Number of model tokens in `text` (without special tokens).
    pub fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer.encode(text, false).map(|e| e.len()).unwrap_or_else(|_| text.split_whitespace().count())
    }

    /// Chunks of `doc`, which belongs to `root` and carries `tags`; `content_hash` identifies the
    /// version of the file.
    pub fn chunk(&self, root: &str, doc: &Document, tags: &[String], content_hash: &str) -> Vec<PreparedChunk> {
        let mut out = Vec::new();
        match &doc.body {
            Body::Sections(sections) => {
                let all_text: String = sections.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join("\n");
                let declared = doc.language.as_deref();
                let doc_language = declared.map_or_else(|| detect_language(&all_text), str::to_string);
                let doc_is_cjk = declared.map_or_else(|| is_cjk_text(&all_text), is_cjk_language);
                for section in sections {
                    let header = header(&doc.title, &section.heading_path, &doc.keywords);
                    let budget = self.chunk_tokens.saturating_sub(self.count_tokens(&header)).max(MIN_BODY_TOKENS);
                    let splitter = TextSplitter::new(ChunkConfig::new(budget).with_sizer(&self.tokenizer));
                    for piece in splitter.chunks(&section.text) {
                        let piece = piece.trim();
                        if piece.is_empty() {
                            continue;
                        }
                        let embed_text =
                            if header.is_empty() { piece.to_string() } else { format!("{header}\n{piece}") };
                        // Judged with the page title and headings the passage is indexed with: an
                        // untranslated paragraph of a translated page sends its reader to that page.
                        let language = passage_language(&embed_text, &doc_language, doc_is_cjk, declared.is_some());
                        let index = out.len() as u32;
                        let tokens = self.count_tokens(&embed_text);
                        out.push(PreparedChunk {
                            lexical_text: embed_text.clone(),
                            chunk: Chunk {
                                id: chunk_id(root, &doc.source, index),
                                root: root.to_string(),
                                source: doc.source.clone(),
                                chunk_index: index,
                                title: doc.title.clone(),
                                heading_path: section.heading_path.clone(),
                                anchor: section.anchor.clone(),
                                kind: DocKind::Doc,
                                language,
                                tags: tags.to_vec(),
                                text: piece.to_string(),
                                embed_text,
                                tokens: tokens as u32,
                                question: None,
                                answer: None,
                                url: None,
                                content_hash: content_hash.to_string(),
                                cites: None,
                            },
                        });
                    }
                }
            }
            Body::Faq(entries) => {
                for (i, entry) in entries.iter().enumerate() {
                    let mut entry_tags = tags.to_vec();
                    for t in &entry.tags {
                        if !entry_tags.contains(t) {
                            entry_tags.push(t.clone());
                        }
                    }
                    let text = format!("{}\n\n{}", entry.question, entry.answer);
                    let index = i as u32;
                    let question_tokens = self.count_tokens(&entry.question);
                    out.push(PreparedChunk {
                        lexical_text: text.clone(),
                        chunk: Chunk {
                            id: chunk_id(root, &doc.source, index),
                            root: root.to_string(),
                            source: doc.source.clone(),
                            chunk_index: index,
                            title: doc.title.clone(),
                            heading_path: vec![entry.question.clone()],
                            anchor: Some(entry.anchor.clone()),
                            kind: DocKind::Faq,
                            language: detect_language(&text),
                            tags: entry_tags,
                            text,
                            // The question is what gets matched by meaning; the answer's words
                            // still help the lexical retriever.
                            embed_text: entry.question.clone(),
                            tokens: question_tokens as u32,
                            question: Some(entry.question.clone()),
                            answer: Some(entry.answer.clone()),
                            url: entry.url.clone(),
                            content_hash: content_hash.to_string(),
                            cites: None,
                        },
                    });
                }
            }
        }
        out
    }
}

/// The contextual header embedded with each passage: the title and the headings above it
/// ("Installing > Behind a proxy"), without repeating the title when the first heading is it,
/// then the page's keywords, if it declares any.
fn header(title: &str, heading_path: &[String], keywords: &[String]) -> String {
    let mut parts: Vec<&str> = Vec::new();
    if !title.is_empty() {
        parts.push(title);
    }
    for h in heading_path {
        if parts.last().is_none_or(|last| !last.eq_ignore_ascii_case(h)) {
            parts.push(h);
        }
    }
    let path = parts.join(" > ");
    match (path.is_empty(), keywords.is_empty()) {
        (_, true) => path,
        (true, false) => format!("({})", keywords.join("; ")),
        (false, false) => format!("{path}\n({})", keywords.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use supportbot_core::document::{FaqEntry, Section};
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::Whitespace;

    /// A word-per-token tokenizer: the chunker's logic does not depend on the real vocabulary
    /// (the integration tests use the real one).
    fn word_tokenizer() -> Tokenizer {
        let model =
            WordLevel::builder().unk_token("[UNK]".into()).vocab([("[UNK]".to_string(), 0)].into()).build().unwrap();
        let mut t = Tokenizer::new(model);
        t.with_pre_tokenizer(Some(Whitespace {}));
        t
    }

    #[test]
    fn headers_carry_the_path_and_the_pages_keywords() {
        let kw = vec!["words; counting".to_string(), "word count".to_string()];
        assert_eq!(header("Counting Words", &["Counting Words".into()], &[]), "Counting Words");
        assert_eq!(
            header("Counting Words", &["Extended".into()], &kw),
            "Counting Words > Extended\n(words; counting; word count)"
        );
        assert_eq!(header("", &[], &kw), "(words; counting; word count)");
    }

    fn doc(sections: Vec<Section>) -> Document {
        Document {
            source: "guide/install.md".into(),
            title: "Installing".into(),
            keywords: Vec::new(),
            language: None,
            body: Body::Sections(sections),
        }
    }

    #[test]
    fn long_sections_split_by_size_and_keep_heading_and_anchor() {
        let sentence = "Driftwood listens on port 7443 by default. ";
        let chunker = Chunker::new(word_tokenizer(), 100);
        let d = doc(vec![Section {
            heading_path: vec!["Installing".into(), "Behind a proxy".into()],
            anchor: Some("behind-a-proxy".into()),
            text: sentence.repeat(40),
        }]);
        let chunks = chunker.chunk("docs", &d, &[], "h");
        assert!(chunks.len() > 3, "360 tokens must not fit one 100-token chunk");
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c.chunk.chunk_index as usize, i);
            assert_eq!(c.chunk.citation(), "guide/install.md#behind-a-proxy");
            assert!(c.chunk.embed_text.starts_with("Installing > Behind a proxy\n"), "{}", c.chunk.embed_text);
            assert!(c.tokens() <= 100, "chunk of {} tokens", c.tokens());
            // The index keeps each passage's length, heading included, which search uses to
            // demote short ones.
            assert_eq!(c.chunk.tokens as usize, chunker.count_tokens(&c.chunk.embed_text));
            assert!(c.chunk.tokens as usize > chunker.count_tokens(&c.chunk.text), "the heading counts");
        }
        let rejoined: String = chunks.iter().map(|c| c.chunk.text.as_str()).collect::<Vec<_>>().join(" ");
        assert_eq!(rejoined.split_whitespace().count(), sentence.repeat(40).split_whitespace().count(), "no text lost");
    }

    #[test]
    fn ids_are_deterministic_and_differ_by_root() {
        let chunker = Chunker::new(word_tokenizer(), 200);
        let d = doc(vec![Section { heading_path: vec![], anchor: None, text: "Hello there.".into() }]);
        let a = chunker.chunk("docs", &d, &[], "h");
        let b = chunker.chunk("docs", &d, &[], "h");
        let c = chunker.chunk("other", &d, &[], "h");
        assert_eq!(a[0].chunk.id, b[0].chunk.id);
        assert_ne!(a[0].chunk.id, c[0].chunk.id);
        assert_eq!(a[0].chunk.embed_text, "Installing\nHello there.");
    }

    #[test]
    fn faq_entries_become_one_chunk_each_matched_by_question() {
        let chunker = Chunker::new(word_tokenizer(), 200);
        let d = Document {
            source: "faq/general.csv".into(),
            title: "general".into(),
            keywords: Vec::new(),
            language: None,
            body: Body::Faq(vec![FaqEntry {
                question: "How do I reset my password?".into(),
                answer: "Open Settings, then Security.".into(),
                url: None,
                tags: vec!["accounts".into()],
                anchor: "how-do-i-reset-my-password".into(),
            }]),
        };
        let chunks = chunker.chunk("examples", &d, &["driftwood".to_string()], "h");
        assert_eq!(chunks.len(), 1);
        let c = &chunks[0].chunk;
        assert_eq!(c.kind, DocKind::Faq);
        assert_eq!(c.embed_text, "How do I reset my password?");
        assert_eq!(c.tokens, 7, "the question's words and the question mark");
        assert_eq!(c.answer.as_deref(), Some("Open Settings, then Security."));
        assert_eq!(c.tags, vec!["driftwood".to_string(), "accounts".to_string()]);
        assert_eq!(c.citation(), "faq/general.csv#how-do-i-reset-my-password");
    }

    #[test]
    fn chinese_sections_are_tagged_zh() {
        let chunker = Chunker::new(word_tokenizer(), 200);
        let d = doc(vec![Section {
            heading_path: vec!["安装".into()],
            anchor: Some("安装".into()),
            text: "运行安装程序并输入服务器地址。".into(),
        }]);
        assert_eq!(chunker.chunk("docs", &d, &[], "h")[0].chunk.language, "zh");
    }
}
