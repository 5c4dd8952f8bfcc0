//! The citation check: markers in an answer may only point at passages that were retrieved and
//! shown to the model. Markers to passages that do not exist are dropped, duplicates of the same
//! source are merged, the cited sources are listed, and links that are not among the citations
//! and prompt delimiters a model echoed are removed from the text.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// A source listed under an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Citation {
    /// The marker number used in the answer text (`[n]`).
    pub n: usize,
    /// `source#anchor`, relative to the source root.
    pub citation: String,
    pub title: String,
    /// Path relative to the source root.
    pub source: String,
    /// Public link, when the root has a `url` (or the FAQ entry names one).
    pub url: Option<String>,
}

/// An answer text with its verified citations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub text: String,
    pub citations: Vec<Citation>,
}

/// A run of citation markers: `[1]`, `[1, 2]`, `[1][3]`, `【1】`.
static MARKER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\s?(?:[\[【]\s*\d+(?:\s*[,，、]\s*\d+)*\s*[\]】])+").expect("valid marker regex"));
static NUMBER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\d+").expect("valid number regex"));
static MARKDOWN_LINK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[([^\]\n]*)\]\((https?://[^)\s]+)\)").expect("valid link regex"));
static BARE_URL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"https?://[^\s<>()\[\]]+").expect("valid url regex"));
/// The delimiters the prompt wraps passages and the question in (`answer::prompt`), and the
/// `<answer>` a model sometimes adds. Small models echo them; in a chat they are noise.
const PROMPT_TAG_NAMES: &[&str] = &["passages", "passage", "question", "answer"];
static PROMPT_TAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"</?(?:{})(?:\s[^<>\n]*)?>[ \t]*\n?", PROMPT_TAG_NAMES.join("|"))).expect("valid tag regex")
});

/// Whether `text[i..]` starts (or, cut short, could start) one of the prompt's delimiters.
fn prompt_tag_at(text: &str, i: usize) -> bool {
    let rest = text[i..].strip_prefix('<').unwrap_or_default();
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let name: String = rest.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    if name.len() == rest.len() {
        // The text ends inside the name: it may still become a delimiter.
        return PROMPT_TAG_NAMES.iter().any(|t| t.starts_with(name.as_str()));
    }
    PROMPT_TAG_NAMES.contains(&name.as_str())
}

fn allowed(url: &str, allowed_urls: &[String]) -> bool {
    let url = url.trim_end_matches(['.', ',', ';', ':', '!', '?', '\'', '"']);
    allowed_urls.iter().any(|a| a == url || a.split('#').next() == Some(url))
}

/// Removes links that are not among `allowed_urls` (a Markdown link keeps its text).
pub fn strip_unknown_links(text: &str, allowed_urls: &[String]) -> String {
    let text =
        MARKDOWN_LINK.replace_all(
            text,
            |c: &regex::Captures<'_>| {
                if allowed(&c[2], allowed_urls) { c[0].to_string() } else { c[1].to_string() }
            },
        );
    BARE_URL
        .replace_all(
            &text,
            |c: &regex::Captures<'_>| {
                if allowed(&c[0], allowed_urls) { c[0].to_string() } else { "[link removed]".to_string() }
            },
        )
        .into_owned()
}

/// Rewrites the markers of `text` (drops those to passages that do not exist, merges duplicates
/// of one source into its first number) and, with `strip_links` (a model's text), removes
/// unknown links and echoed prompt delimiters. Without it (quoted documentation), a bracketed
/// number that names no passage is the document's own text and stays. Returns
/// the text and the cited numbers in order of appearance.
fn rewrite(text: &str, sources: &BTreeMap<usize, Citation>, strip_links: bool, cited: &mut Vec<usize>) -> String {
    // Several passages can come from the same place: cite each place once, by its first number.
    let mut canonical: HashMap<&str, usize> = HashMap::new();
    for (n, c) in sources {
        canonical.entry(c.citation.as_str()).or_insert(*n);
    }
    let text = MARKER.replace_all(text, |caps: &regex::Captures<'_>| {
        let leading_space = caps[0].starts_with(char::is_whitespace);
        // Quoted documentation keeps its own brackets (`ports = [80, 443]`, `arr[0]`): there
        // only a group whose every number names a passage is a marker.
        let quoted_text = !strip_links
            && NUMBER
                .find_iter(&caps[0])
                .any(|n| n.as_str().parse::<usize>().map_or(true, |n| !sources.contains_key(&n)));
        if quoted_text {
            return caps[0].to_string();
        }
        let mut numbers: Vec<usize> = Vec::new();
        for part in NUMBER.find_iter(&caps[0]) {
            let Ok(n) = part.as_str().parse::<usize>() else { continue };
            let Some(source) = sources.get(&n) else { continue };
            let n = canonical[source.citation.as_str()];
            if !numbers.contains(&n) {
                numbers.push(n);
            }
        }
        if numbers.is_empty() {
            return String::new();
        }
        for n in &numbers {
            if !cited.contains(n) {
                cited.push(*n);
            }
        }
        let markers: String = numbers.iter().map(|n| format!("[{n}]")).collect();
        if leading_space { format!(" {markers}") } else { markers }
    });
    if strip_links {
        let allowed: Vec<String> = sources.values().filter_map(|c| c.url.clone()).collect();
        let text = PROMPT_TAG.replace_all(&text, "");
        strip_unknown_links(&text, &allowed)
    } else {
        text.into_owned()
    }
}

/// Checks the markers of `text` against `sources` (passage number → its citation). With
/// `strip_links`, links the model wrote that are not among the retrieved sources are removed.
/// When the text cites nothing, the first source is listed (the answer came from the passages).
pub fn check(text: &str, sources: &BTreeMap<usize, Citation>, strip_links: bool) -> Checked {
    let mut cited: Vec<usize> = Vec::new();
    let text = rewrite(text, sources, strip_links, &mut cited).trim().to_string();
    if cited.is_empty()
        && let Some((n, _)) = sources.iter().next()
    {
        cited.push(*n);
    }
    cited.sort_unstable();
    let citations: Vec<Citation> = cited.iter().filter_map(|n| sources.get(n).cloned()).collect();
    Checked { text, citations }
}

/// Applies the same checks to a stream of text pieces: text is released up to the last
/// whitespace outside brackets and prompt delimiters (markers and links never contain an
/// unbracketed space), so a marker, a link or a delimiter is never emitted before it is complete
/// and checked.
#[derive(Debug)]
pub struct StreamSanitizer {
    sources: BTreeMap<usize, Citation>,
    strip_links: bool,
    pending: String,
}

impl StreamSanitizer {
    pub fn new(sources: BTreeMap<usize, Citation>, strip_links: bool) -> Self {
        Self { sources, strip_links, pending: String::new() }
    }

    /// Adds a piece; returns the text that is safe to show now.
    pub fn push(&mut self, piece: &str) -> String {
        self.pending.push_str(piece);
        let mut depth = 0i32;
        // Inside a prompt delimiter, which holds spaces ("<passage n=\"1\" …>"), nothing is cut.
        let mut in_tag = false;
        let mut cut = None;
        for (i, c) in self.pending.char_indices() {
            match c {
                '<' if self.strip_links && prompt_tag_at(&self.pending, i) => {
                    in_tag = true;
                    // Up to here is safe whatever the tag turns out to be.
                    if depth == 0 {
                        cut = Some(i);
                    }
                }
                '>' => in_tag = false,
                // A delimiter never spans lines: a "<passage" left open ends at the line's end.
                '\n' if in_tag => {
                    in_tag = false;
                    if depth == 0 {
                        cut = Some(i);
                    }
                }
                '[' | '【' | '(' => depth += 1,
                ']' | '】' | ')' => depth = (depth - 1).max(0),
                c if c.is_whitespace() && depth == 0 && !in_tag => cut = Some(i),
                _ => {}
            }
        }
        let Some(cut) = cut else { return String::new() };
        let ready: String = self.pending.drain(..cut).collect();
        rewrite(&ready, &self.sources, self.strip_links, &mut Vec::new())
    }

    /// The rest of the text at the end of the stream.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        rewrite(&rest, &self.sources, self.strip_links, &mut Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources() -> BTreeMap<usize, Citation> {
        let mk = |n: usize, citation: &str, url: Option<&str>| Citation {
            n,
            citation: citation.into(),
            title: format!("T{n}"),
            source: citation.split('#').next().unwrap().into(),
            url: url.map(str::to_string),
        };
        BTreeMap::from([
            (1, mk(1, "guide/install.md#proxy", Some("https://docs.acme.com/guide/install.md#proxy"))),
            (2, mk(2, "faq.csv#reset", None)),
            (3, mk(3, "guide/install.md#proxy", Some("https://docs.acme.com/guide/install.md#proxy"))),
        ])
    }

    #[test]
    fn markers_to_missing_passages_are_dropped() {
        let c = check("Set HTTPS_PROXY [1]. Restart it [7]. Done [2, 9].", &sources(), true);
        assert_eq!(c.text, "Set HTTPS_PROXY [1]. Restart it. Done [2].");
        assert_eq!(c.citations.iter().map(|c| c.n).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn quoted_documentation_keeps_its_own_brackets() {
        let quote = "Set ports = [80, 443], [2, 9] and read arr[0] first. [1]";
        let c = check(quote, &sources(), false);
        assert_eq!(c.text, quote);
        assert_eq!(c.citations.iter().map(|c| c.n).collect::<Vec<_>>(), vec![1]);
        // A model's text loses the markers that point nowhere.
        assert_eq!(check(quote, &sources(), true).text, "Set ports =, [2] and read arr first. [1]");
    }

    #[test]
    fn duplicates_of_one_source_merge_into_its_first_number() {
        let c = check("A [3]. B [1][3].", &sources(), false);
        assert_eq!(c.text, "A [1]. B [1].");
        assert_eq!(c.citations.len(), 1);
        assert_eq!(c.citations[0].citation, "guide/install.md#proxy");
    }

    #[test]
    fn uncited_answers_list_the_top_passage() {
        let c = check("Set HTTPS_PROXY.", &sources(), false);
        assert_eq!(c.citations.iter().map(|c| c.n).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn links_not_among_the_citations_are_removed() {
        let text = "See [the guide](https://docs.acme.com/guide/install.md#proxy) [1], or https://evil.example/phish and [here](http://x.y/z).";
        let c = check(text, &sources(), true);
        assert!(c.text.contains("(https://docs.acme.com/guide/install.md#proxy)"), "{}", c.text);
        assert!(!c.text.contains("evil.example") && !c.text.contains("x.y/z"), "{}", c.text);
        assert!(c.text.contains("or [link removed] and here."), "{}", c.text);
    }

    #[test]
    fn streamed_text_is_checked_before_it_is_shown() {
        let mut s = StreamSanitizer::new(sources(), true);
        let mut shown = String::new();
        for piece in ["Set HTTPS", "_PROXY [", "7] and see https://ev", "il.example/x now [1", "]."] {
            shown.push_str(&s.push(piece));
            assert!(!shown.contains("[7") && !shown.contains("evil"), "{shown}");
        }
        shown.push_str(&s.finish());
        assert_eq!(shown, "Set HTTPS_PROXY and see [link removed] now [1].");
    }

    /// What SmolLM2-135M answered on the LibreOffice help: the prompt's own markup, echoed.
    const ECHOED: &str = "The passage is:\n<passage n=\"1\" title=\"Proxy settings\" source=\"guide/install.md#proxy\">\nSet HTTPS_PROXY [1].\n</passage>\n</passages>\n\nThe answer is:\n<answer>\nRestart the agent.\n</answer>";

    #[test]
    fn echoed_prompt_delimiters_are_removed_from_model_answers() {
        let c = check(ECHOED, &sources(), true);
        assert!(!c.text.contains('<') && !c.text.contains('>'), "{}", c.text);
        assert_eq!(c.text, "The passage is:\nSet HTTPS_PROXY [1].\n\nThe answer is:\nRestart the agent.");
        // Text that is not a delimiter stays, and extractive answers (documentation) are verbatim.
        assert_eq!(check("Use a <passageway> if a < b.", &sources(), true).text, "Use a <passageway> if a < b.");
        assert!(check(ECHOED, &sources(), false).text.contains("<answer>"));
    }

    #[test]
    fn streamed_delimiters_are_removed_even_when_split_across_pieces() {
        let mut s = StreamSanitizer::new(sources(), true);
        let mut shown = String::new();
        let chars: Vec<char> = ECHOED.chars().collect();
        for piece in chars.chunks(3) {
            shown.push_str(&s.push(&piece.iter().collect::<String>()));
            assert!(!shown.contains("<passage") && !shown.contains("<answer"), "{shown}");
        }
        shown.push_str(&s.finish());
        assert!(!shown.contains('<') && !shown.contains('>'), "{shown}");
        assert!(shown.contains("Set HTTPS_PROXY [1].") && shown.contains("Restart the agent."), "{shown}");
        // A lone "<" is not held back, nor the rest of a line after a "<question" left open.
        let mut s = StreamSanitizer::new(sources(), true);
        assert_eq!(s.push("if a < b then "), "if a < b then");
        let mut s = StreamSanitizer::new(sources(), true);
        assert_eq!(s.push("see <question n=\n1 and more text "), "see <question n=\n1 and more text");
    }

    #[test]
    fn fullwidth_and_chinese_comma_markers_are_understood() {
        let c = check("设置代理【1】。重置密码[2，3]。", &sources(), false);
        assert_eq!(c.text, "设置代理[1]。重置密码[2][1]。");
        assert_eq!(c.citations.len(), 2);
    }
}
