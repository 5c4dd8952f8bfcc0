//! File loaders, one per format: they turn the bytes of one file into a [`Document`].
//!
//! [`format_for`] picks a format from a file extension, [`load`] decodes and parses. Every
//! loader is total: any input gives either a document or a [`LoadError`] that says what is
//! wrong and where, never a panic (a panic inside a parser is caught and reported as
//! [`LoadError::Malformed`]).

mod faq;
mod html;
mod markdown;
mod pdf;
mod text;

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use supportbot_core::document::{Document, slugify};

/// The file formats the loaders understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Markdown,
    Html,
    Text,
    Pdf,
    FaqCsv,
    FaqJson,
    FaqJsonl,
    FaqYaml,
}

impl Format {
    /// Whether files of this format hold question-answer pairs (`Body::Faq`).
    pub fn is_faq(self) -> bool {
        matches!(self, Format::FaqCsv | Format::FaqJson | Format::FaqJsonl | Format::FaqYaml)
    }

    /// A short lowercase name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Format::Markdown => "markdown",
            Format::Html => "html",
            Format::Text => "text",
            Format::Pdf => "pdf",
            Format::FaqCsv => "faq-csv",
            Format::FaqJson => "faq-json",
            Format::FaqJsonl => "faq-jsonl",
            Format::FaqYaml => "faq-yaml",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The format of a file, chosen by its extension (case-insensitive); `None` for files the
/// walker should ignore.
pub fn format_for(path: &Path) -> Option<Format> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "md" | "markdown" => Format::Markdown,
        "html" | "htm" => Format::Html,
        "txt" => Format::Text,
        "pdf" => Format::Pdf,
        "csv" => Format::FaqCsv,
        "json" => Format::FaqJson,
        "jsonl" => Format::FaqJsonl,
        "yaml" | "yml" => Format::FaqYaml,
        _ => return None,
    })
}

/// Why a file could not be turned into a document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// NUL bytes in the first 8 KB: not a text file.
    #[error("file contains NUL bytes: looks binary")]
    Binary,
    /// Nothing left to index: an empty file, only whitespace, or no text after removing markup.
    #[error("no text: the file is empty or nothing is left after removing markup")]
    Empty,
    /// Too much of the file is not valid UTF-8 to repair it.
    #[error(
        "not valid UTF-8: first invalid byte at offset {offset}, and at least 1% of the text \
         would be replaced (save the file as UTF-8)"
    )]
    NotUtf8 { offset: usize },
    /// The file's structure is broken; the message says what and where.
    #[error("{0}")]
    Malformed(String),
}

/// Loads one file. `source` is its path relative to the source root with `/` separators; it
/// becomes [`Document::source`] and provides the fallback title (the file stem).
pub fn load(source: &str, format: Format, bytes: &[u8]) -> Result<Document, LoadError> {
    if format == Format::Pdf {
        // pdf::load also guards pdf-extract itself, with a more specific message.
        return guard("reading the PDF", || pdf::load(source, bytes));
    }
    let decoded = decode(bytes)?;
    if decoded.trim().is_empty() {
        return Err(LoadError::Empty);
    }
    guard("parsing", || match format {
        Format::Markdown => markdown::load(source, &decoded),
        Format::Html => html::load(source, &decoded),
        Format::Text => text::load(source, &decoded),
        Format::FaqCsv => faq::load_csv(source, &decoded),
        Format::FaqJson => faq::load_json(source, &decoded),
        Format::FaqJsonl => faq::load_jsonl(source, &decoded),
        Format::FaqYaml => faq::load_yaml(source, &decoded),
        Format::Pdf => pdf::load(source, bytes),
    })
}

/// Runs `f`, turning a panic into `Malformed("internal error while {what}: ...")`.
fn guard<T>(what: &str, f: impl FnOnce() -> Result<T, LoadError>) -> Result<T, LoadError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        Err(LoadError::Malformed(format!("internal error while {what}: {}", panic_message(payload.as_ref()))))
    })
}

/// The message of a caught panic payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// How far into the file [`decode`] looks for NUL bytes.
const BINARY_SNIFF_LEN: usize = 8 * 1024;

/// Bytes to text: rejects binaries, decodes UTF-8 (repairing a few invalid bytes) or UTF-16
/// with a byte-order mark, strips a BOM and normalises line endings to `\n`.
fn decode(bytes: &[u8]) -> Result<String, LoadError> {
    let text = if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        decode_utf16(rest, u16::from_le_bytes, 2)?
    } else if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        decode_utf16(rest, u16::from_be_bytes, 2)?
    } else {
        let head = &bytes[..bytes.len().min(BINARY_SNIFF_LEN)];
        if head.contains(&0) {
            return Err(LoadError::Binary);
        }
        let (body, bom_len) = match bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
            Some(rest) => (rest, 3),
            None => (bytes, 0),
        };
        match std::str::from_utf8(body) {
            Ok(s) => s.to_owned(),
            Err(e) => {
                let lossy = String::from_utf8_lossy(body);
                if too_many_replacements(&lossy) {
                    return Err(LoadError::NotUtf8 { offset: bom_len + e.valid_up_to() });
                }
                tracing::debug!(offset = bom_len + e.valid_up_to(), "repaired a few invalid UTF-8 bytes");
                lossy.into_owned()
            }
        }
    };
    Ok(normalize_newlines(&text))
}

/// Decodes UTF-16 code units (after the BOM), with the same 1% repair rule as UTF-8.
fn decode_utf16(body: &[u8], unit: fn([u8; 2]) -> u16, bom_len: usize) -> Result<String, LoadError> {
    let units = body.chunks(2).map(|c| match c {
        [a, b] => unit([*a, *b]),
        _ => 0xFFFF, // odd trailing byte: force a replacement character
    });
    let mut out = String::with_capacity(body.len() / 2);
    let mut first_bad: Option<usize> = None;
    for (i, r) in char::decode_utf16(units).enumerate() {
        match r {
            Ok('\u{FFFF}') | Err(_) => {
                first_bad.get_or_insert(bom_len + 2 * i);
                out.push(char::REPLACEMENT_CHARACTER);
            }
            Ok(c) => out.push(c),
        }
    }
    if let Some(offset) = first_bad
        && too_many_replacements(&out)
    {
        return Err(LoadError::NotUtf8 { offset });
    }
    if out.contains('\0') {
        return Err(LoadError::Binary);
    }
    Ok(out)
}

/// True when at least 1% of the characters are U+FFFD.
fn too_many_replacements(s: &str) -> bool {
    let mut total = 0usize;
    let mut bad = 0usize;
    for c in s.chars() {
        total += 1;
        if c == char::REPLACEMENT_CHARACTER {
            bad += 1;
        }
    }
    bad * 100 >= total.max(1)
}

/// CRLF and lone CR become LF.
fn normalize_newlines(s: &str) -> String {
    if !s.contains('\r') {
        return s.to_owned();
    }
    s.replace("\r\n", "\n").replace('\r', "\n")
}

/// The file stem of a `/`-separated source path (`guide/install.md` → `install`).
fn file_stem(source: &str) -> String {
    let name = source.rsplit(['/', '\\']).next().unwrap_or(source);
    Path::new(name).file_stem().and_then(|s| s.to_str()).filter(|s| !s.is_empty()).unwrap_or(name).to_owned()
}

/// Collapses every run of whitespace to one space and trims.
fn collapse_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Tidies section text: no trailing spaces on lines, at most one blank line in a row, no
/// leading or trailing blank lines.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_run > 0 { "\n\n" } else { "\n" });
        }
        blank_run = 0;
        out.push_str(line);
    }
    out
}

/// GitHub-style anchor allocation: the first "Usage" is `usage`, the next `usage-1`, then
/// `usage-2`; a generated slug never collides with an anchor already handed out.
#[derive(Debug, Default)]
struct Slugger {
    seen: HashMap<String, usize>,
}

impl Slugger {
    /// A unique anchor for a heading; `None` if the heading has no letters or digits at all.
    fn slug(&mut self, heading: &str) -> Option<String> {
        let base = slugify(heading);
        if base.is_empty() {
            return None;
        }
        Some(self.unique(base))
    }

    /// Makes `base` unique within the document and records it.
    fn unique(&mut self, base: String) -> String {
        let mut candidate = base.clone();
        while self.seen.contains_key(&candidate) {
            let n = self.seen.entry(base.clone()).or_insert(0);
            *n += 1;
            candidate = format!("{base}-{n}");
        }
        self.seen.insert(candidate.clone(), 0);
        candidate
    }

    /// Records an explicit anchor (`{#id}`) so later slugs avoid it; returns it unchanged.
    fn reserve(&mut self, id: &str) -> String {
        self.seen.entry(id.to_owned()).or_insert(0);
        id.to_owned()
    }
}

/// Separator waiting to be written before the next piece of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Sep {
    None,
    Space,
    Cell,
    Line,
    Para,
}

/// Builds plain text from a stream of inline text and block boundaries. Separators are
/// lazy: they are written only when more text follows, so there is never trailing
/// whitespace, and the strongest separator requested wins (`para` beats `line` beats
/// `cell` beats `space`).
#[derive(Debug)]
struct TextBuf {
    out: String,
    sep: Sep,
    /// Written at the start of the next line that gets text (list markers).
    prefix: Option<String>,
    /// Line and paragraph breaks become spaces (heading text, table cells of a heading).
    inline_only: bool,
}

impl TextBuf {
    fn new() -> Self {
        Self { out: String::new(), sep: Sep::None, prefix: None, inline_only: false }
    }

    fn inline() -> Self {
        Self { inline_only: true, ..Self::new() }
    }

    fn request(&mut self, sep: Sep) {
        let sep = if self.inline_only && sep > Sep::Space { Sep::Space } else { sep };
        self.sep = self.sep.max(sep);
    }

    fn space(&mut self) {
        self.request(Sep::Space);
    }
    fn cell(&mut self) {
        self.request(Sep::Cell);
    }
    fn line(&mut self) {
        self.request(Sep::Line);
    }

    /// A table cell separator written now, so empty cells keep their place:
    /// `| b` for an empty first cell, `a |  | c` for an empty middle one.
    fn cell_now(&mut self) {
        if self.inline_only {
            self.space();
            return;
        }
        if self.sep == Sep::Space {
            self.sep = Sep::None; // the separator brings its own spaces
        }
        self.flush_sep();
        self.out.push_str(if self.at_line_start() { "| " } else { " | " });
    }
    fn para(&mut self) {
        self.request(Sep::Para);
    }

    /// Sets the marker written before the next text (after a line break).
    fn set_prefix(&mut self, prefix: String) {
        if self.inline_only {
            self.space();
        } else {
            self.line();
            self.prefix = Some(prefix);
        }
    }

    fn at_line_start(&self) -> bool {
        self.out.is_empty() || self.out.ends_with('\n')
    }

    /// Writes the pending separator and prefix.
    fn flush_sep(&mut self) {
        let sep = std::mem::replace(&mut self.sep, Sep::None);
        if !self.out.is_empty() {
            match sep {
                Sep::None => {}
                Sep::Space => {
                    if !self.out.ends_with(char::is_whitespace) {
                        self.out.push(' ');
                    }
                }
                Sep::Cell => {
                    if !self.at_line_start() {
                        self.out.push_str(" | ");
                    }
                }
                Sep::Line => self.ensure_newlines(1),
                Sep::Para => self.ensure_newlines(2),
            }
        }
        if let Some(prefix) = self.prefix.take() {
            if self.at_line_start() {
                self.out.push_str(&prefix);
            } else {
                self.prefix = Some(prefix);
            }
        }
    }

    fn ensure_newlines(&mut self, n: usize) {
        let have = self.out.len() - self.out.trim_end_matches('\n').len();
        for _ in have..n {
            self.out.push('\n');
        }
    }

    /// Appends text as is (inline Markdown text, `pre` contents).
    fn push(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        self.flush_sep();
        self.out.push_str(s);
    }

    /// Appends HTML-style text: whitespace runs collapse to one space, invisible
    /// characters (zero-width spaces, soft hyphens) are dropped.
    fn push_collapsed(&mut self, s: &str) {
        for c in s.chars() {
            if matches!(c, '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{FEFF}' | '\u{AD}') {
                continue;
            }
            if c.is_whitespace() {
                self.space();
            } else {
                self.flush_sep();
                self.out.push(c);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.out.trim().is_empty()
    }

    /// The finished text, tidied.
    fn finish(self) -> String {
        tidy(&self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use supportbot_core::document::Body;

    #[test]
    fn formats_by_extension() {
        let f = |p: &str| format_for(Path::new(p));
        assert_eq!(f("a/b.md"), Some(Format::Markdown));
        assert_eq!(f("README.MD"), Some(Format::Markdown));
        assert_eq!(f("x.markdown"), Some(Format::Markdown));
        assert_eq!(f("x.html"), Some(Format::Html));
        assert_eq!(f("x.HTM"), Some(Format::Html));
        assert_eq!(f("x.txt"), Some(Format::Text));
        assert_eq!(f("x.pdf"), Some(Format::Pdf));
        assert_eq!(f("faq.csv"), Some(Format::FaqCsv));
        assert_eq!(f("faq.json"), Some(Format::FaqJson));
        assert_eq!(f("faq.jsonl"), Some(Format::FaqJsonl));
        assert_eq!(f("faq.yaml"), Some(Format::FaqYaml));
        assert_eq!(f("faq.yml"), Some(Format::FaqYaml));
        assert_eq!(f("logo.png"), None);
        assert_eq!(f("Makefile"), None);
        assert_eq!(f(".gitignore"), None);
        assert!(Format::FaqYaml.is_faq());
        assert!(!Format::Html.is_faq());
    }

    #[test]
    fn binary_is_rejected_for_text_formats() {
        let bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        for format in [Format::Markdown, Format::Html, Format::Text, Format::FaqCsv] {
            let err = load("logo.md", format, bytes).unwrap_err();
            assert_eq!(err, LoadError::Binary);
            assert_eq!(err.to_string(), "file contains NUL bytes: looks binary");
        }
    }

    #[test]
    fn nul_after_first_8k_is_not_sniffed() {
        let mut bytes = vec![b'a'; BINARY_SNIFF_LEN];
        bytes.push(0);
        assert!(decode(&bytes).is_ok());
    }

    #[test]
    fn empty_and_blank_files_are_empty() {
        for format in [
            Format::Markdown,
            Format::Html,
            Format::Text,
            Format::FaqCsv,
            Format::FaqJson,
            Format::FaqJsonl,
            Format::FaqYaml,
            Format::Pdf,
        ] {
            assert_eq!(load("x", format, b""), Err(LoadError::Empty), "{format:?}");
        }
        assert_eq!(load("x.md", Format::Markdown, b" \n\t\r\n"), Err(LoadError::Empty));
        assert_eq!(load("x.md", Format::Markdown, b"\xEF\xBB\xBF\n"), Err(LoadError::Empty));
    }

    #[test]
    fn bom_is_stripped_and_crlf_normalised() {
        let doc = load("a/note.txt", Format::Text, b"\xEF\xBB\xBFline one\r\nline two\r\n").unwrap();
        assert_eq!(doc.title, "note");
        let Body::Sections(s) = doc.body else { panic!("sections") };
        assert_eq!(s[0].text, "line one\nline two");
    }

    #[test]
    fn a_few_invalid_bytes_are_repaired() {
        let mut bytes = b"Caf\xE9 au lait. ".to_vec();
        bytes.extend(std::iter::repeat_n(b'x', 200));
        let text = decode(&bytes).unwrap();
        assert!(text.starts_with("Caf\u{FFFD} au lait."));
    }

    #[test]
    fn mostly_invalid_utf8_names_the_offset() {
        let bytes = b"ok: \xE9\xE8\xE0\xF9 caf\xE9";
        let err = decode(bytes).unwrap_err();
        assert_eq!(err, LoadError::NotUtf8 { offset: 4 });
        assert!(err.to_string().contains("offset 4"), "{err}");
        // The offset counts the BOM.
        let err = decode(b"\xEF\xBB\xBFab\xFF\xFF").unwrap_err();
        assert_eq!(err, LoadError::NotUtf8 { offset: 5 });
    }

    #[test]
    fn utf16_with_bom_is_decoded() {
        let mut bytes = vec![0xFF, 0xFE];
        for u in "question,answer\r\nHi?,Hello\r\n".encode_utf16() {
            bytes.extend(u.to_le_bytes());
        }
        assert_eq!(decode(&bytes).unwrap(), "question,answer\nHi?,Hello\n");
        let mut be = vec![0xFE, 0xFF];
        for u in "héllo".encode_utf16() {
            be.extend(u.to_be_bytes());
        }
        assert_eq!(decode(&be).unwrap(), "héllo");
    }

    #[test]
    fn lone_cr_is_a_newline() {
        assert_eq!(decode(b"a\rb\r\nc").unwrap(), "a\nb\nc");
    }

    #[test]
    fn stems() {
        assert_eq!(file_stem("guide/install.md"), "install");
        assert_eq!(file_stem("general.csv"), "general");
        assert_eq!(file_stem("noext"), "noext");
        assert_eq!(file_stem("a.b/c.tar.gz"), "c.tar");
    }

    #[test]
    fn slugger_dedupes_like_github() {
        let mut s = Slugger::default();
        assert_eq!(s.slug("Usage").as_deref(), Some("usage"));
        assert_eq!(s.slug("Usage").as_deref(), Some("usage-1"));
        assert_eq!(s.slug("Usage").as_deref(), Some("usage-2"));
        assert_eq!(s.slug("Usage 1").as_deref(), Some("usage-1-1"));
        assert_eq!(s.reserve("custom"), "custom");
        assert_eq!(s.slug("Custom").as_deref(), Some("custom-1"));
        assert_eq!(s.slug("???"), None);
    }

    #[test]
    fn textbuf_separators_are_lazy() {
        let mut b = TextBuf::new();
        b.para();
        b.push("a");
        b.space();
        b.line();
        b.push("b");
        b.para();
        b.set_prefix("- ".into());
        b.push("item");
        b.para();
        b.cell();
        assert_eq!(b.finish(), "a\nb\n\n- item");
        let mut t = TextBuf::new();
        t.line();
        t.cell_now();
        t.push("b");
        t.cell_now();
        t.cell_now();
        t.push("d");
        t.line();
        t.push("x");
        assert_eq!(t.finish(), "| b |  | d\nx");
        let mut h = TextBuf::inline();
        h.push_collapsed("  Hello\n ");
        h.para();
        h.push_collapsed("\u{200B}world ");
        assert_eq!(h.finish(), "Hello world");
    }

    #[test]
    fn guard_turns_panics_into_errors() {
        let r: Result<(), LoadError> = guard("testing", || panic!("boom"));
        assert_eq!(r, Err(LoadError::Malformed("internal error while testing: boom".into())));
    }

    /// Deterministic xorshift bytes for the robustness test.
    fn noise(seed: &mut u64, len: usize, alphabet: &[u8]) -> Vec<u8> {
        (0..len)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                alphabet[(*seed % alphabet.len() as u64) as usize]
            })
            .collect()
    }

    #[test]
    fn no_input_makes_a_loader_panic() {
        let formats = [
            Format::Markdown,
            Format::Html,
            Format::Text,
            Format::Pdf,
            Format::FaqCsv,
            Format::FaqJson,
            Format::FaqJsonl,
            Format::FaqYaml,
        ];
        let markup: &[u8] = b"<>/=\"' \n\t#-*_`[](){}|:;,!?&amp;abcXYZ019%PDF-\x0c\xe4\xbd\xa0";
        let all: Vec<u8> = (1..=255).collect();
        let mut inputs: Vec<Vec<u8>> = vec![
            ">".repeat(20_000).into_bytes(),
            "- ".repeat(5_000).into_bytes(),
            "[".repeat(20_000).into_bytes(),
            "*".repeat(20_000).into_bytes(),
            "<ul><li>".repeat(5_000).into_bytes(),
            "[".repeat(5_000).into_bytes(),
            "- ".repeat(5_000).into_bytes(),
            "\"".repeat(1_001).into_bytes(),
        ];
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        for len in [1, 2, 7, 64, 500, 4_000] {
            for _ in 0..6 {
                inputs.push(noise(&mut seed, len, markup));
                inputs.push(noise(&mut seed, len, &all));
                let mut pdf = b"%PDF-1.4\n".to_vec();
                pdf.extend(noise(&mut seed, len, markup));
                inputs.push(pdf);
            }
        }
        for input in &inputs {
            for format in formats {
                if let Err(LoadError::Malformed(m)) = load("fuzz/x", format, input) {
                    assert!(!m.starts_with("internal error"), "{format:?}: {m}");
                }
            }
        }
    }

    /// All files below `dir`, sorted, as paths relative to `dir` with `/` separators.
    fn files_under(dir: &Path) -> Vec<(String, PathBuf)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(rel) = path.strip_prefix(dir) {
                    let rel = rel
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join("/");
                    out.push((rel, path));
                }
            }
        }
        out.sort();
        out
    }

    fn repo_dir(rel: &str) -> PathBuf {
        // Read at run time: cargo reuses a test binary built in another checkout of the same
        // target directory, and a path compiled in would point into that checkout.
        let dir =
            std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from);
        dir.join("..").join(rel)
    }

    /// Every file of the example knowledge base loads. The source roots are the
    /// subdirectories of examples/ (`docs/`, `faq/`); files directly in examples/ (its
    /// README, the labelled question set) are not knowledge.
    #[test]
    fn every_example_loads() {
        let dir = repo_dir("examples");
        assert!(dir.is_dir(), "examples/ is missing");
        let mut loaded = 0;
        for (rel, path) in files_under(&dir) {
            if !rel.contains('/') {
                continue;
            }
            let Some(format) = format_for(&path) else {
                continue;
            };
            let bytes = std::fs::read(&path).unwrap();
            let doc = load(&rel, format, &bytes).unwrap_or_else(|e| panic!("examples/{rel} failed to load: {e}"));
            assert_eq!(doc.source, rel);
            assert!(!doc.title.trim().is_empty(), "{rel}: empty title");
            match &doc.body {
                Body::Sections(s) => {
                    assert!(!s.is_empty(), "{rel}: no sections");
                    assert!(s.iter().all(|s| !s.text.trim().is_empty()), "{rel}");
                }
                Body::Faq(e) => assert!(!e.is_empty(), "{rel}: no entries"),
            }
            loaded += 1;
        }
        assert!(loaded > 0, "no loadable files under examples/");
    }

    /// The citations that examples/questions.jsonl expects (`path#anchor`, relative to
    /// examples/) exist among the anchors the loaders produce.
    #[test]
    fn expected_citations_exist() {
        let dir = repo_dir("examples");
        let questions = std::fs::read_to_string(dir.join("questions.jsonl")).expect("examples/questions.jsonl");
        let mut missing = Vec::new();
        let mut docs: HashMap<String, Option<Document>> = HashMap::new();
        for line in questions.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let expects = v["expect"].as_array().cloned().unwrap_or_default();
            for cite in expects.iter().filter_map(|c| c.as_str()) {
                let (path, anchor) = match cite.split_once('#') {
                    Some((p, a)) => (p, Some(a)),
                    None => (cite, None),
                };
                let doc = docs.entry(path.to_owned()).or_insert_with(|| {
                    let p = dir.join(path);
                    let bytes = std::fs::read(&p).ok()?;
                    load(path, format_for(&p)?, &bytes).ok()
                });
                let Some(doc) = doc else {
                    missing.push(format!("{cite}: document missing or unloadable"));
                    continue;
                };
                let Some(anchor) = anchor else {
                    continue;
                };
                let found = match &doc.body {
                    Body::Sections(s) => s.iter().any(|s| s.anchor.as_deref() == Some(anchor)),
                    Body::Faq(e) => e.iter().any(|e| e.anchor == anchor),
                };
                if !found {
                    missing.push(format!("{cite}: no section with that anchor"));
                }
            }
        }
        missing.sort();
        missing.dedup();
        assert!(missing.is_empty(), "unmatched citations:\n{}", missing.join("\n"));
    }

    #[test]
    fn every_bad_fixture_fails_with_a_message() {
        let dir = repo_dir("tests/fixtures/bad");
        for (rel, path) in files_under(&dir) {
            let Some(format) = format_for(&path) else {
                continue;
            };
            let bytes = std::fs::read(&path).unwrap();
            let result = load(&rel, format, &bytes);
            // good.md is the valid control file; the README documents the fixtures.
            if rel == "good.md" || rel == "README.md" {
                let doc = result.unwrap_or_else(|e| panic!("{rel} should load: {e}"));
                if rel == "good.md" {
                    let Body::Sections(s) = doc.body else { panic!("good.md: not sections") };
                    let anchors: Vec<_> = s.iter().filter_map(|s| s.anchor.as_deref()).collect();
                    for want in ["from-the-tray-icon", "from-the-command-line"] {
                        assert!(anchors.contains(&want), "good.md: no #{want} in {anchors:?}");
                    }
                }
                continue;
            }
            match result {
                Ok(doc) => panic!("tests/fixtures/bad/{rel} loaded but should fail: {doc:?}"),
                Err(e) => {
                    // The reason names the problem, not just "failed".
                    let reason = e.to_string().to_lowercase();
                    let names_it = match rel.as_str() {
                        "binary.md" => reason.contains("binary"),
                        "empty.md" | "whitespace.txt" => reason.contains("empty") || reason.contains("no text"),
                        "not-utf8.md" => reason.contains("utf-8") || reason.contains("binary"),
                        "bad-quoting.csv" => reason.contains("csv"),
                        "missing-columns.csv" => reason.contains("question"),
                        "invalid.json" => reason.contains("json"),
                        "invalid.yaml" => reason.contains("yaml"),
                        "broken.pdf" => reason.contains("pdf"),
                        other => panic!("tests/fixtures/bad/{other}: add what its error must name"),
                    };
                    assert!(names_it, "tests/fixtures/bad/{rel}: the error does not name the problem: {e}");
                }
            }
        }
    }
}
