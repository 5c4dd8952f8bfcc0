//! Domain types that flow through ingest: a loaded `Document`, its `Section`s or FAQ entries,
//! and the `Chunk`s cut from it that the index stores.

use serde::{Deserialize, Serialize};

/// What kind of knowledge a document or chunk holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocKind {
    /// Prose documentation (Markdown, HTML, text, PDF).
    Doc,
    /// A question-answer pair from an FAQ file; the answer is served verbatim.
    Faq,
}

impl DocKind {
    /// The lowercase name used in payloads and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Doc => "doc",
            DocKind::Faq => "faq",
        }
    }
}

/// One part of a document under a heading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    /// Headings from the top of the document down to this section (may be empty for text
    /// that precedes the first heading).
    pub heading_path: Vec<String>,
    /// The nearest anchor a link can point to: an HTML `id`, or the slug of a Markdown heading.
    pub anchor: Option<String>,
    /// Plain text of the section (markup removed, paragraphs separated by blank lines).
    pub text: String,
}

/// One question-answer pair from an FAQ file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaqEntry {
    pub question: String,
    /// Kept verbatim: it is what the bot will say.
    pub answer: String,
    /// Where the answer is published, if the FAQ file says so.
    pub url: Option<String>,
    pub tags: Vec<String>,
    /// Stable anchor for the citation (`faq.csv#reset-my-password`).
    pub anchor: String,
}

/// The content of a loaded document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    Sections(Vec<Section>),
    Faq(Vec<FaqEntry>),
}

/// A file turned into structured text by a loader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// Path relative to its source root, with `/` separators (`guide/install.html`).
    pub source: String,
    pub title: String,
    /// Index terms the page declares (`<meta name="keywords">`, schema.org `keywords`): they
    /// are embedded and indexed with every passage of the page, not shown.
    pub keywords: Vec<String>,
    /// The language the document declares (`<html lang="zh-CN">`), as an ISO 639-1 code
    /// (`zh`); when absent, the language is detected from the text.
    pub language: Option<String>,
    pub body: Body,
}

impl Document {
    pub fn kind(&self) -> DocKind {
        match self.body {
            Body::Sections(_) => DocKind::Doc,
            Body::Faq(_) => DocKind::Faq,
        }
    }
}

/// Slug of a heading as GitHub renders Markdown anchors: lowercase, spaces to `-`,
/// punctuation dropped, letters of every script kept.
pub fn slugify(heading: &str) -> String {
    let mut out = String::with_capacity(heading.len());
    for c in heading.trim().chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if c == ' ' || c == '-' || c == '_' {
            out.push(if c == '_' { '_' } else { '-' });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_github_style() {
        assert_eq!(slugify("Installing behind a proxy"), "installing-behind-a-proxy");
        assert_eq!(slugify("What's new in 2.0?"), "whats-new-in-20");
        assert_eq!(slugify("安装 指南"), "安装-指南");
    }
}

/// A piece of a document small enough to embed, with everything needed to cite it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// UUIDv5 of (root, source, chunk index): re-ingesting the same file yields the same ids.
    pub id: uuid::Uuid,
    /// Name of the source root the document belongs to.
    pub root: String,
    /// Path relative to the root (`guide/install.html`).
    pub source: String,
    pub chunk_index: u32,
    pub title: String,
    pub heading_path: Vec<String>,
    pub anchor: Option<String>,
    pub kind: DocKind,
    /// Language code of the chunk text (`en`, `zh`, ...), or `und` when unknown.
    pub language: String,
    pub tags: Vec<String>,
    /// What is shown and quoted: the passage (for an FAQ entry, the question and the answer).
    pub text: String,
    /// What the dense embedder sees: the passage under a contextual header (title and
    /// headings), or the question alone for an FAQ entry.
    pub embed_text: String,
    /// Tokens of `embed_text` as the default embedder's tokenizer counts them (0 where not
    /// counted: curated answers); search demotes short documentation passages.
    #[serde(default)]
    pub tokens: u32,
    /// The FAQ question and verbatim answer, for FAQ chunks.
    pub question: Option<String>,
    pub answer: Option<String>,
    /// Where an FAQ entry is published, if its file said so.
    pub url: Option<String>,
    /// sha256 of the whole source document: unchanged documents are not re-embedded.
    pub content_hash: String,
    /// For a curated answer: the documentation passage it rests on (`source#anchor`), which is
    /// what the answer cites.
    #[serde(default)]
    pub cites: Option<String>,
}

impl Chunk {
    /// `source#anchor`, or `source` when there is no anchor.
    pub fn citation(&self) -> String {
        citation(&self.source, self.anchor.as_deref())
    }
}

/// `source#anchor`, or `source` when there is no anchor.
pub fn citation(source: &str, anchor: Option<&str>) -> String {
    match anchor {
        Some(a) if !a.is_empty() => format!("{source}#{a}"),
        _ => source.to_string(),
    }
}

/// Namespace of all supportbot UUIDv5 ids.
pub const ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x5b0c_2f1e_8a4d_4c3b_9e6f_2d7a_1c0e_5f42);

/// Deterministic chunk id: UUIDv5 of (root name, relative path, chunk index).
pub fn chunk_id(root: &str, source: &str, index: u32) -> uuid::Uuid {
    uuid::Uuid::new_v5(&ID_NAMESPACE, format!("chunk\0{root}\0{source}\0{index}").as_bytes())
}

/// Deterministic document id: UUIDv5 of (root name, relative path).
pub fn document_id(root: &str, source: &str) -> uuid::Uuid {
    uuid::Uuid::new_v5(&ID_NAMESPACE, format!("doc\0{root}\0{source}").as_bytes())
}
