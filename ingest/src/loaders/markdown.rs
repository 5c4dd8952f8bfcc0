//! Markdown loader (pulldown-cmark): one section per heading, GitHub-style anchors, front matter title.

use pulldown_cmark::{BlockQuoteKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use supportbot_core::document::{Body, Document, Section};

use super::{LoadError, Slugger, TextBuf, file_stem};

pub(super) fn load(source: &str, text: &str) -> Result<Document, LoadError> {
    let (front_title, body) = split_front_matter(text);
    let mut r = Renderer::new();
    for event in Parser::new_ext(body, options()) {
        r.event(event);
    }
    r.flush();
    if r.sections.is_empty() {
        return Err(LoadError::Empty);
    }
    let title = front_title.or(r.first_h1).unwrap_or_else(|| file_stem(source));
    Ok(Document {
        source: source.to_owned(),
        title,
        keywords: Vec::new(),
        language: None,
        body: Body::Sections(r.sections),
    })
}

fn options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_HEADING_ATTRIBUTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_GFM
}

/// Splits off YAML (`---`) or TOML (`+++`) front matter; returns its `title` and the rest.
/// Text that opens with `---` but whose block is not a YAML mapping is left alone (it is a
/// thematic break, not front matter).
fn split_front_matter(text: &str) -> (Option<String>, &str) {
    let Some((first, rest)) = text.split_once('\n') else {
        return (None, text);
    };
    let yaml = match first.trim_end() {
        "---" => true,
        "+++" => false,
        _ => return (None, text),
    };
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        let l = line.trim_end();
        let closes = if yaml { l == "---" || l == "..." } else { l == "+++" };
        if closes {
            let block = &rest[..offset];
            let after = &rest[offset + line.len()..];
            return if yaml {
                match yaml_title(block) {
                    Some(title) => (title, after),
                    None => (None, text),
                }
            } else {
                (toml_title(block), after)
            };
        }
        offset += line.len();
    }
    (None, text)
}

/// `None` if the block is not a YAML mapping (so not front matter); `Some(title)` otherwise.
fn yaml_title(block: &str) -> Option<Option<String>> {
    if block.trim().is_empty() {
        return Some(None);
    }
    let value: serde_norway::Value = serde_norway::from_str(block).ok()?;
    let map = value.as_mapping()?;
    let title = map.get("title").and_then(|t| match t {
        serde_norway::Value::String(s) => Some(s.clone()),
        serde_norway::Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    Some(title.map(|t| super::collapse_ws(&t)).filter(|t| !t.is_empty()))
}

/// `title = "..."` from TOML front matter (top-level key only).
fn toml_title(block: &str) -> Option<String> {
    for line in block.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            break; // tables start; top-level keys are over
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.trim() != "title" {
            continue;
        }
        let v = value.trim();
        let unquoted = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(v);
        let t = super::collapse_ws(unquoted);
        return (!t.is_empty()).then_some(t);
    }
    None
}

struct Renderer {
    sections: Vec<Section>,
    /// Headings above the current position: (level, text).
    path: Vec<(HeadingLevel, String)>,
    anchor: Option<String>,
    buf: TextBuf,
    /// The heading being read: level, explicit `{#id}`, text so far.
    heading: Option<(HeadingLevel, Option<String>, TextBuf)>,
    slugger: Slugger,
    first_h1: Option<String>,
    /// Open lists; `Some(n)` is an ordered list whose next item is number `n`.
    lists: Vec<Option<u64>>,
    image_depth: usize,
    code: Option<String>,
    html: Option<String>,
    /// Cells seen so far in the current table row.
    cells: usize,
}

impl Renderer {
    fn new() -> Self {
        Self {
            sections: Vec::new(),
            path: Vec::new(),
            anchor: None,
            buf: TextBuf::new(),
            heading: None,
            slugger: Slugger::default(),
            first_h1: None,
            lists: Vec::new(),
            image_depth: 0,
            code: None,
            html: None,
            cells: 0,
        }
    }

    fn out(&mut self) -> &mut TextBuf {
        match &mut self.heading {
            Some((_, _, b)) => b,
            None => &mut self.buf,
        }
    }

    /// Block break: a blank line between blocks, a line break inside lists.
    fn block(&mut self) {
        if self.lists.is_empty() {
            self.out().para();
        } else {
            self.out().line();
        }
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(t) => {
                if let Some(code) = &mut self.code {
                    code.push_str(&t);
                } else if let Some(html) = &mut self.html {
                    html.push_str(&t);
                } else if self.image_depth == 0 {
                    self.out().push(&t);
                }
            }
            Event::Code(t) | Event::InlineMath(t) | Event::DisplayMath(t) => {
                if self.image_depth == 0 {
                    self.out().push(&t);
                }
            }
            Event::Html(t) => {
                if let Some(html) = &mut self.html {
                    html.push_str(&t);
                }
            }
            Event::InlineHtml(t) => {
                let tag = t.trim_start_matches('<').to_ascii_lowercase();
                if tag.starts_with("br") {
                    self.out().line();
                }
            }
            Event::FootnoteReference(label) => {
                let s = format!("[{label}]");
                self.out().push(&s);
            }
            Event::SoftBreak => self.out().space(),
            Event::HardBreak => self.out().line(),
            Event::Rule => self.out().para(),
            Event::TaskListMarker(done) => self.out().push(if done { "[x] " } else { "[ ] " }),
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Heading { level, id, .. } => {
                let id = id.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
                self.heading = Some((level, id, TextBuf::inline()));
            }
            Tag::Paragraph => self.block(),
            Tag::BlockQuote(kind) => {
                self.block();
                if let Some(kind) = kind {
                    let label = match kind {
                        BlockQuoteKind::Note => "Note: ",
                        BlockQuoteKind::Tip => "Tip: ",
                        BlockQuoteKind::Important => "Important: ",
                        BlockQuoteKind::Warning => "Warning: ",
                        BlockQuoteKind::Caution => "Caution: ",
                    };
                    self.out().set_prefix(label.to_owned());
                }
            }
            Tag::CodeBlock(_) => {
                self.block();
                self.code = Some(String::new());
            }
            Tag::HtmlBlock => self.html = Some(String::new()),
            Tag::List(start) => {
                if self.lists.is_empty() {
                    self.out().para();
                } else {
                    self.out().line();
                }
                self.lists.push(start);
            }
            Tag::Item => {
                let depth = self.lists.len().max(1);
                let marker = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        let m = format!("{n}. ");
                        *n += 1;
                        m
                    }
                    _ => "- ".to_owned(),
                };
                let prefix = format!("{}{marker}", "  ".repeat(depth - 1));
                self.out().set_prefix(prefix);
            }
            Tag::FootnoteDefinition(label) => {
                self.out().para();
                self.out().set_prefix(format!("[{label}]: "));
            }
            Tag::Table(_) => self.out().para(),
            Tag::TableHead | Tag::TableRow => {
                self.cells = 0;
                self.out().line();
            }
            Tag::TableCell => {
                if self.cells > 0 {
                    self.out().cell_now();
                }
                self.cells += 1;
            }
            Tag::Image { .. } => self.image_depth += 1,
            Tag::DefinitionList => self.out().para(),
            Tag::DefinitionListTitle | Tag::DefinitionListDefinition => self.out().line(),
            Tag::Emphasis
            | Tag::Strong
            | Tag::Strikethrough
            | Tag::Superscript
            | Tag::Subscript
            | Tag::Link { .. }
            | Tag::MetadataBlock(_) => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Heading(_) => self.end_heading(),
            TagEnd::Paragraph | TagEnd::BlockQuote(_) => self.block(),
            TagEnd::CodeBlock => {
                let code = self.code.take().unwrap_or_default();
                let code = code.trim_end_matches('\n');
                if !code.trim().is_empty() {
                    self.out().push(code);
                }
                self.block();
            }
            TagEnd::HtmlBlock => {
                let html = self.html.take().unwrap_or_default();
                let text = super::html::fragment_text(&html);
                if !text.is_empty() {
                    self.block();
                    self.out().push(&text);
                    self.block();
                }
            }
            TagEnd::List(_) => {
                self.lists.pop();
                self.block();
            }
            TagEnd::Item => self.out().line(),
            TagEnd::FootnoteDefinition | TagEnd::Table | TagEnd::DefinitionList => self.out().para(),
            TagEnd::TableHead | TagEnd::TableRow | TagEnd::DefinitionListTitle | TagEnd::DefinitionListDefinition => {
                self.out().line()
            }
            TagEnd::Image => self.image_depth = self.image_depth.saturating_sub(1),
            TagEnd::TableCell
            | TagEnd::Emphasis
            | TagEnd::Strong
            | TagEnd::Strikethrough
            | TagEnd::Superscript
            | TagEnd::Subscript
            | TagEnd::Link
            | TagEnd::MetadataBlock(_) => {}
        }
    }

    fn end_heading(&mut self) {
        let Some((level, id, buf)) = self.heading.take() else {
            return;
        };
        let text = buf.finish();
        self.flush();
        while self.path.last().is_some_and(|(l, _)| *l >= level) {
            self.path.pop();
        }
        self.anchor = match id {
            Some(id) => Some(self.slugger.reserve(&id)),
            None => self.slugger.slug(&text),
        };
        if level == HeadingLevel::H1 && self.first_h1.is_none() && !text.is_empty() {
            self.first_h1 = Some(text.clone());
        }
        self.path.push((level, text));
    }

    /// Ends the current section; it is kept only if it has text.
    fn flush(&mut self) {
        let buf = std::mem::replace(&mut self.buf, TextBuf::new());
        let text = buf.finish();
        if text.is_empty() {
            return;
        }
        self.sections.push(Section {
            heading_path: self.path.iter().filter(|(_, t)| !t.is_empty()).map(|(_, t)| t.clone()).collect(),
            anchor: self.anchor.clone(),
            text,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sections(md: &str) -> Vec<Section> {
        match load("docs/page.md", md).unwrap().body {
            Body::Sections(s) => s,
            Body::Faq(_) => panic!("not sections"),
        }
    }

    fn sec(path: &[&str], anchor: Option<&str>, text: &str) -> Section {
        Section {
            heading_path: path.iter().map(|s| s.to_string()).collect(),
            anchor: anchor.map(str::to_owned),
            text: text.to_owned(),
        }
    }

    #[test]
    fn heading_paths_and_sections() {
        let md = "Intro text.\n\n# Guide\n\nWelcome.\n\n## Install\n\nRun it.\n\n### On Linux\n\nUse apt.\n\n## Configure\n\nEdit the file.\n\n# Other\n\nMore.\n";
        assert_eq!(
            sections(md),
            vec![
                sec(&[], None, "Intro text."),
                sec(&["Guide"], Some("guide"), "Welcome."),
                sec(&["Guide", "Install"], Some("install"), "Run it."),
                sec(&["Guide", "Install", "On Linux"], Some("on-linux"), "Use apt."),
                sec(&["Guide", "Configure"], Some("configure"), "Edit the file."),
                sec(&["Other"], Some("other"), "More."),
            ]
        );
    }

    #[test]
    fn empty_sections_are_dropped_but_stay_in_the_path() {
        let md = "# Title\n\n## Empty\n\n### Child\n\nText.\n";
        assert_eq!(sections(md), vec![sec(&["Title", "Empty", "Child"], Some("child"), "Text.")]);
    }

    #[test]
    fn skipped_levels_and_setext_headings() {
        let md = "Top\n===\n\n#### Deep\n\nd\n\nSecond\n------\n\ns\n";
        assert_eq!(
            sections(md),
            vec![sec(&["Top", "Deep"], Some("deep"), "d"), sec(&["Top", "Second"], Some("second"), "s"),]
        );
    }

    #[test]
    fn anchors_explicit_slug_and_dedupe() {
        let md = "# Tool\n\n## Usage\n\na\n\n## Usage\n\nb\n\n## Usage\n\nc\n\n## Proxy settings {#proxy}\n\nd\n\n## What's new in `2.0`?\n\ne\n\n## Proxy\n\nf\n";
        let s = sections(md);
        let anchors: Vec<_> = s.iter().map(|s| s.anchor.as_deref()).collect();
        assert_eq!(
            anchors,
            vec![
                Some("usage"),
                Some("usage-1"),
                Some("usage-2"),
                Some("proxy"),
                Some("whats-new-in-20"),
                Some("proxy-1"),
            ]
        );
        assert_eq!(s[3].heading_path, vec!["Tool", "Proxy settings"]);
        assert_eq!(s[4].heading_path, vec!["Tool", "What's new in 2.0?"]);
    }

    #[test]
    fn title_rules() {
        let with_fm = "---\ntitle: \"Install Guide\"\nweight: 3\n---\n# Installing\n\nText.\n";
        let doc = load("guide/install.md", with_fm).unwrap();
        assert_eq!(doc.title, "Install Guide");
        assert_eq!(doc.body, Body::Sections(vec![sec(&["Installing"], Some("installing"), "Text.")]));

        let doc = load("guide/install.md", "Intro\n\n## Sub\n\nx\n\n# First H1\n\ny\n").unwrap();
        assert_eq!(doc.title, "First H1");

        let doc = load("guide/install.md", "## Only H2\n\nx\n").unwrap();
        assert_eq!(doc.title, "install");

        let toml = "+++\ntitle = 'From TOML'\n[extra]\ntitle = 'no'\n+++\nBody.\n";
        let doc = load("a.md", toml).unwrap();
        assert_eq!(doc.title, "From TOML");
        assert_eq!(doc.body, Body::Sections(vec![sec(&[], None, "Body.")]));
    }

    #[test]
    fn front_matter_without_title_is_still_skipped() {
        let doc = load("notes.md", "---\nlayout: page\ntags: [a, b]\n---\n\nHello.\n").unwrap();
        assert_eq!(doc.title, "notes");
        assert_eq!(doc.body, Body::Sections(vec![sec(&[], None, "Hello.")]));
    }

    #[test]
    fn leading_rule_is_not_front_matter() {
        let s = sections("---\n\nJust text, not YAML: [\n\n---\n\nMore.\n");
        assert_eq!(s.len(), 1);
        assert!(s[0].text.contains("Just text, not YAML: ["), "{}", s[0].text);
        assert!(s[0].text.contains("More."));
    }

    #[test]
    fn text_rendering() {
        let md = "\
# Page

First *para* with `inline code` and a [link](https://example.com/x) and ![logo](logo.png).
Soft wrapped line.

- one
- two
  - nested
- three

1. first
2. second

```sh
driftctl start \\
  --port 7100

echo done
```

| Port | Use | Note |
|------|-----|------|
| 7100 | sync | |
|      | https | `8443` |

> Quoted text.

Line one  
line two
";
        let s = sections(md);
        assert_eq!(s.len(), 1);
        assert_eq!(
            s[0].text,
            "First para with inline code and a link and . Soft wrapped line.\n\n\
             - one\n- two\n  - nested\n- three\n\n\
             1. first\n2. second\n\n\
             driftctl start \\\n  --port 7100\n\necho done\n\n\
             Port | Use | Note\n7100 | sync |\n| https | 8443\n\n\
             Quoted text.\n\n\
             Line one\nline two"
        );
    }

    #[test]
    fn loose_lists_and_task_lists() {
        let md = "- a\n\n- b\n\n  continued\n\n- [x] done\n- [ ] todo\n";
        assert_eq!(sections(md)[0].text, "- a\n- b\ncontinued\n- [x] done\n- [ ] todo");
    }

    #[test]
    fn html_blocks_are_reduced_to_text() {
        let md = "# T\n\n<!-- hidden\ncomment -->\n\n<div class=\"note\">\n<p>Be <b>careful</b>.</p>\n</div>\n\nAfter <kbd>Ctrl</kbd>.\n";
        assert_eq!(sections(md)[0].text, "Be careful.\n\nAfter Ctrl.");
    }

    #[test]
    fn gfm_alerts_get_a_label() {
        let md = "> [!WARNING]\n> Back up first.\n";
        assert_eq!(sections(md)[0].text, "Warning: Back up first.");
    }

    #[test]
    fn markup_only_is_empty() {
        assert_eq!(load("x.md", "# \n\n---\n\n![img](a.png)\n"), Err(LoadError::Empty));
        assert_eq!(load("x.md", "<!-- nothing -->\n"), Err(LoadError::Empty));
    }

    #[test]
    fn heading_with_only_punctuation_has_no_anchor() {
        let s = sections("## ???\n\ntext\n");
        assert_eq!(s, vec![sec(&["???"], None, "text")]);
    }

    #[test]
    fn unicode_headings() {
        let s = sections("# 安装 指南\n\n内容\n");
        assert_eq!(s, vec![sec(&["安装 指南"], Some("安装-指南"), "内容")]);
    }
}
