//! PDF loader (pdf-extract): the text layer, one section per page, panics in the parser contained.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use supportbot_core::document::{Body, Document, Section};

use super::{LoadError, file_stem, panic_message, tidy};

/// Longest title taken from the first line of a PDF.
const MAX_TITLE_CHARS: usize = 120;

pub(super) fn load(source: &str, bytes: &[u8]) -> Result<Document, LoadError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(LoadError::Empty);
    }
    let head = &bytes[..bytes.len().min(1024)];
    if !head.windows(5).any(|w| w == b"%PDF-") {
        return Err(LoadError::Malformed("not a PDF: no `%PDF-` header in the first 1024 bytes".to_owned()));
    }
    let raw = extract(bytes)?;
    let pages: Vec<String> = raw.iter().map(|p| normalize_page(p)).collect();
    let pages = strip_running_lines(pages);
    let sections: Vec<Section> = pages
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(|text| Section { heading_path: Vec::new(), anchor: None, text })
        .collect();
    let Some(first) = sections.first() else {
        return Err(LoadError::Malformed("PDF has no text layer (scanned?)".to_owned()));
    };
    let title = first
        .text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(shorten_title)
        .unwrap_or_else(|| file_stem(source));
    Ok(Document {
        source: source.to_owned(),
        title,
        keywords: Vec::new(),
        language: None,
        body: Body::Sections(sections),
    })
}

fn unreadable(why: impl std::fmt::Display) -> LoadError {
    LoadError::Malformed(format!("unreadable PDF: {why}"))
}

/// Text of each page. pdf-extract panics on some broken files; a panic is caught and
/// reported as an error (the default panic hook still prints it to stderr).
fn extract(bytes: &[u8]) -> Result<Vec<String>, LoadError> {
    match catch_unwind(AssertUnwindSafe(|| pdf_extract::extract_text_from_mem_by_pages(bytes))) {
        Ok(Ok(pages)) if pages.iter().any(|p| !p.trim().is_empty()) => return Ok(pages),
        // No page yielded text (or page 1 failed, which ends the per-page loop silently):
        // the whole-document extractor reports the real error, if there is one.
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(unreadable(e)),
        Err(payload) => return Err(unreadable(panic_message(payload.as_ref()))),
    }
    match catch_unwind(AssertUnwindSafe(|| pdf_extract::extract_text_from_mem(bytes))) {
        Ok(Ok(text)) => Ok(text.split('\u{c}').map(str::to_owned).collect()),
        Ok(Err(e)) => Err(unreadable(e)),
        Err(payload) => Err(unreadable(panic_message(payload.as_ref()))),
    }
}

/// Whitespace normalised: control characters dropped, runs of spaces collapsed, lines
/// trimmed, a word hyphenated across a line break joined again, at most one blank line.
fn normalize_page(raw: &str) -> String {
    let cleaned = super::text::clean_controls(raw);
    let lines: Vec<String> = cleaned.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        let mut line = lines[i].clone();
        // "configu-" + "ration" → "configuration"
        while let Some(next) = lines.get(i + 1)
            && is_hyphen_break(&line, next)
        {
            line.pop();
            let (word, rest) = next.split_once(' ').unwrap_or((next, ""));
            line.push_str(word);
            i += 1;
            if !rest.is_empty() {
                out.push(line);
                line = rest.to_owned();
            }
        }
        out.push(line);
        i += 1;
    }
    tidy(&out.join("\n"))
}

fn is_hyphen_break(line: &str, next: &str) -> bool {
    let mut rev = line.chars().rev();
    rev.next() == Some('-')
        && rev.next().is_some_and(char::is_alphabetic)
        && next.chars().next().is_some_and(char::is_lowercase)
}

/// Drops running headers and footers: a first or last line that recurs (digits aside) on
/// more than half of the pages, when there are at least two pages.
fn strip_running_lines(pages: Vec<String>) -> Vec<String> {
    let with_text = pages.iter().filter(|p| !p.is_empty()).count();
    if with_text < 2 {
        return pages;
    }
    let key = |l: &str| -> String {
        l.chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).collect::<String>().to_lowercase()
    };
    let mut counts: HashMap<String, usize> = HashMap::new();
    for page in &pages {
        let lines: Vec<&str> = page.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut edge: Vec<String> = Vec::new();
        if let Some(first) = lines.first() {
            edge.push(key(first));
        }
        if lines.len() > 1
            && let Some(last) = lines.last()
        {
            edge.push(key(last));
        }
        edge.dedup();
        for k in edge {
            *counts.entry(k).or_default() += 1;
        }
    }
    let running = |l: &str| counts.get(&key(l)).is_some_and(|&n| n >= 2 && n * 2 > with_text);
    pages
        .into_iter()
        .map(|page| {
            let mut lines: Vec<&str> = page.lines().collect();
            while lines.first().is_some_and(|l| l.trim().is_empty() || running(l)) {
                lines.remove(0);
            }
            while lines.last().is_some_and(|l| l.trim().is_empty() || running(l)) {
                lines.pop();
            }
            lines.join("\n")
        })
        .collect()
}

fn shorten_title(line: &str) -> String {
    if line.chars().count() <= MAX_TITLE_CHARS {
        return line.to_owned();
    }
    let cut: String = line.chars().take(MAX_TITLE_CHARS).collect();
    match cut.rfind(' ') {
        Some(i) if i > MAX_TITLE_CHARS / 2 => cut[..i].trim_end().to_owned(),
        _ => cut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal valid PDF: one page per entry, each line drawn in Helvetica 12 pt, 16 pt
    /// apart; blank lines leave a paragraph gap. The xref table has exact byte offsets.
    fn make_pdf(pages: &[&[&str]]) -> Vec<u8> {
        let n = pages.len();
        let mut objects: Vec<Vec<u8>> = Vec::new();
        let kids: Vec<String> = (0..n).map(|i| format!("{} 0 R", 4 + 2 * i)).collect();
        objects.push(b"<< /Type /Catalog /Pages 2 0 R >>".to_vec());
        objects.push(format!("<< /Type /Pages /Kids [{}] /Count {n} >>", kids.join(" ")).into_bytes());
        objects.push(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_vec());
        for (i, lines) in pages.iter().enumerate() {
            let mut ops = String::new();
            let mut y = 720;
            for line in lines.iter() {
                if !line.is_empty() {
                    let escaped = line.replace('\\', "\\\\").replace('(', "\\(").replace(')', "\\)");
                    ops.push_str(&format!("BT /F1 12 Tf 72 {y} Td ({escaped}) Tj ET\n"));
                    y -= 16;
                } else {
                    y -= 24;
                }
            }
            objects.push(
                format!(
                    "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
                     /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
                    5 + 2 * i
                )
                .into_bytes(),
            );
            let mut stream = format!("<< /Length {} >>\nstream\n", ops.len()).into_bytes();
            stream.extend(ops.as_bytes());
            stream.extend(b"\nendstream");
            objects.push(stream);
        }
        let mut out = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
        let mut offsets = Vec::new();
        for (i, obj) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend(format!("{} 0 obj\n", i + 1).as_bytes());
            out.extend(obj);
            out.extend(b"\nendobj\n");
        }
        let xref = out.len();
        out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
        for off in offsets {
            out.extend(format!("{off:010} 00000 n \n").as_bytes());
        }
        out.extend(
            format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes(),
        );
        out
    }

    fn texts(doc: &Document) -> Vec<String> {
        match &doc.body {
            Body::Sections(s) => s.iter().map(|s| s.text.clone()).collect(),
            Body::Faq(_) => panic!("not sections"),
        }
    }

    #[test]
    fn pages_become_sections() {
        let pdf = make_pdf(&[
            &["Driftwood Manual", "", "Install the server first.", "Acme - page 1"],
            &["Chapter two text.", "Acme - page 2"],
        ]);
        let doc = load("manuals/driftwood.pdf", &pdf).unwrap();
        assert_eq!(doc.title, "Driftwood Manual");
        let t = texts(&doc);
        assert_eq!(t.len(), 2, "{t:?}");
        assert!(t[0].starts_with("Driftwood Manual"), "{t:?}");
        assert!(t[0].contains("Install the server first."), "{t:?}");
        assert!(t[1].contains("Chapter two text."), "{t:?}");
        // The running footer is gone.
        assert!(t.iter().all(|p| !p.contains("Acme - page")), "{t:?}");
        match &doc.body {
            Body::Sections(s) => assert!(s.iter().all(|s| s.anchor.is_none())),
            Body::Faq(_) => unreachable!(),
        }
    }

    #[test]
    fn through_the_public_api() {
        let pdf = make_pdf(&[&["Hello PDF"]]);
        let doc = crate::loaders::load("x.pdf", crate::loaders::Format::Pdf, &pdf).unwrap();
        assert_eq!(doc.title, "Hello PDF");
        assert_eq!(texts(&doc), vec!["Hello PDF"]);
    }

    #[test]
    fn no_text_layer() {
        let pdf = make_pdf(&[&[], &[]]);
        let err = load("scan.pdf", &pdf).unwrap_err();
        assert_eq!(err, LoadError::Malformed("PDF has no text layer (scanned?)".into()));
    }

    #[test]
    fn broken_pdf_is_an_error_not_a_panic() {
        for bytes in [
            b"%PDF-1.4\ngarbage garbage \x01\x02\x03 endobj trailer".as_slice(),
            b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\nxref\n0 2\n0000000000 65535 f \n0000000009 00000 n \ntrailer\n<< /Size 2 /Root 1 0 R >>\nstartxref\n45\n%%EOF\n",
        ] {
            let err = load("broken.pdf", bytes).unwrap_err();
            match &err {
                LoadError::Malformed(m) => assert!(
                    m.starts_with("unreadable PDF: ") || m.starts_with("PDF has no text layer"),
                    "{m}"
                ),
                other => panic!("unexpected {other:?}"),
            }
        }
        // Truncated copies of a valid file must not panic either: each is refused with a
        // reason naming the PDF, or still yields the text it holds.
        let pdf = make_pdf(&[&["Some text here"]]);
        for cut in [20, pdf.len() / 3, pdf.len() / 2, pdf.len() - 30] {
            match load("cut.pdf", &pdf[..cut]) {
                Err(LoadError::Malformed(m)) => {
                    assert!(m.starts_with("unreadable PDF: ") || m.starts_with("PDF has no text layer"), "{m}")
                }
                Err(other) => panic!("cut at {cut}: unexpected {other:?}"),
                Ok(doc) => {
                    let Body::Sections(s) = doc.body else { panic!("cut at {cut}: not sections") };
                    assert!(s.iter().any(|s| s.text.contains("Some text here")), "cut at {cut}: {s:?}");
                }
            }
        }
    }

    #[test]
    fn a_panic_inside_pdf_extract_is_contained() {
        // Blank out /MediaBox (same length, so the xref offsets stay right): pdf-extract
        // 0.10 then panics with `expect("MediaBox")`.
        let pdf = make_pdf(&[&["Text"]]);
        let needle = b"/MediaBox [0 0 612 792]";
        let at = pdf.windows(needle.len()).position(|w| w == needle).unwrap();
        let mut broken = pdf.clone();
        broken[at..at + needle.len()].fill(b' ');
        let err = load("nobox.pdf", &broken).unwrap_err();
        match err {
            LoadError::Malformed(m) => assert!(m.starts_with("unreadable PDF: "), "{m}"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn not_a_pdf() {
        let err = load("fake.pdf", b"<html>not a pdf</html>").unwrap_err();
        assert_eq!(err.to_string(), "not a PDF: no `%PDF-` header in the first 1024 bytes");
    }

    #[test]
    fn normalisation() {
        assert_eq!(
            normalize_page("  Config-\nuration  is   done.\n\n\n\nNext\x07 para-\nGraph"),
            "Configuration\nis done.\n\nNext para-\nGraph"
        );
        assert_eq!(normalize_page("a hyphen-\nated\nword"), "a hyphenated\nword");
    }

    #[test]
    fn long_first_line_is_shortened() {
        let line = "word ".repeat(40);
        let t = shorten_title(line.trim());
        assert!(t.chars().count() <= MAX_TITLE_CHARS);
        assert!(t.ends_with("word"));
    }
}
