//! HTML loader (scraper): drops page chrome, splits sections at h1–h6, anchors from element ids.

use scraper::{ElementRef, Html, Node};
use supportbot_core::document::{Body, Document, Section};

use super::{LoadError, TextBuf, collapse_ws, file_stem};

pub(super) fn load(source: &str, text: &str) -> Result<Document, LoadError> {
    let doc = Html::parse_document(text);
    let body = first_element(&doc, |e| e.value().name() == "body");
    let root = content_root(&doc).or(body).unwrap_or_else(|| doc.root_element());

    let mut page = render(root);
    if page.sections.is_empty()
        && let Some(body) = body
        && body != root
    {
        // An empty <main> (a JavaScript shell, say): fall back to the whole body.
        page = render(body);
    }
    if page.sections.is_empty() {
        return Err(LoadError::Empty);
    }
    let title = page_title(&doc, &page.h1s).unwrap_or_else(|| file_stem(source));
    let keywords = page_keywords(&doc);
    let language = declared_language(&doc);
    Ok(Document { source: source.to_owned(), title, keywords, language, body: Body::Sections(page.sections) })
}

/// The page's `<html lang>`, reduced to its primary subtag (`zh-CN` → `zh`).
fn declared_language(doc: &Html) -> Option<String> {
    let lang = doc.root_element().value().attr("lang")?;
    let primary = lang.split(['-', '_']).next()?.trim().to_ascii_lowercase();
    (primary.len() >= 2 && primary.len() <= 3 && primary.chars().all(|c| c.is_ascii_alphabetic())).then_some(primary)
}

/// At most this many keyword entries per page are kept.
const MAX_KEYWORDS: usize = 24;

/// The page's declared index terms: `<meta name="keywords">` and schema.org microdata
/// `<meta itemprop="keywords">` (help systems such as LibreOffice's put their index there),
/// in order, without duplicates.
fn page_keywords(doc: &Html) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in doc.root_element().descendent_elements().filter(|e| e.value().name() == "meta") {
        let v = e.value();
        let is_keywords = v.attr("name").is_some_and(|n| n.eq_ignore_ascii_case("keywords"))
            || v.attr("itemprop").is_some_and(|n| n.eq_ignore_ascii_case("keywords"));
        if !is_keywords {
            continue;
        }
        let content = collapse_ws(v.attr("content").unwrap_or_default());
        if !content.is_empty() && !out.contains(&content) && out.len() < MAX_KEYWORDS {
            out.push(content);
        }
    }
    out
}

/// Plain text of an HTML fragment (used for HTML blocks inside Markdown): same chrome
/// removal and block rules as pages, headings become ordinary lines.
pub(super) fn fragment_text(html: &str) -> String {
    let frag = Html::parse_fragment(html);
    let mut w = Walker::new(frag.root_element(), false);
    w.walk();
    w.buf.finish()
}

/// Sections of one page and the texts of the h1 headings seen.
struct Page {
    sections: Vec<Section>,
    h1s: Vec<String>,
}

fn render(root: ElementRef<'_>) -> Page {
    let mut w = Walker::new(root, true);
    w.walk();
    w.flush();
    // Sections that are nothing but links ("Related topics", breadcrumbs, link lists) are
    // navigation; drop them unless the page has nothing else.
    let has_prose = w.sections.iter().any(|(_, link_only)| !link_only);
    let sections = w.sections.into_iter().filter(|(_, link_only)| !has_prose || !link_only).map(|(s, _)| s).collect();
    Page { sections, h1s: w.h1s }
}

fn first_element<'a>(doc: &'a Html, pred: impl Fn(&ElementRef<'a>) -> bool) -> Option<ElementRef<'a>> {
    doc.root_element().descendent_elements().find(|e| pred(e))
}

/// `main`, else `article`, else `[role=main]`, else `[itemprop=articleBody]`; never one that
/// sits inside page chrome (an `article` teaser inside an `aside`, a hidden `main`).
fn content_root(doc: &Html) -> Option<ElementRef<'_>> {
    let preds: [fn(&ElementRef<'_>) -> bool; 4] = [
        |e| e.value().name() == "main",
        |e| e.value().name() == "article",
        |e| attr_is(e, "role", "main"),
        |e| {
            e.value()
                .attr("itemprop")
                .is_some_and(|v| v.split_whitespace().any(|t| t.eq_ignore_ascii_case("articleBody")))
        },
    ];
    preds.iter().find_map(|pred| {
        doc.root_element().descendent_elements().find(|e| pred(e) && !is_chrome(*e) && !inside_chrome(*e))
    })
}

fn attr_is(e: &ElementRef<'_>, attr: &str, value: &str) -> bool {
    e.value().attr(attr).is_some_and(|v| v.trim().eq_ignore_ascii_case(value))
}

fn inside_chrome(e: ElementRef<'_>) -> bool {
    e.ancestors().filter_map(ElementRef::wrap).any(is_chrome)
}

/// Elements always dropped, by tag name: site chrome, scripts, embedded media and form controls.
const CHROME_TAGS: &[&str] = &[
    "nav", "script", "style", "noscript", "footer", "aside", "form", "template", "svg", "iframe", "button", "input",
    "select", "textarea", "label", "object", "embed", "canvas", "audio", "video", "map", "dialog", "head", "title",
    "meta", "link",
];

/// ARIA landmark roles of site chrome.
const CHROME_ROLES: &[&str] =
    &["navigation", "search", "banner", "contentinfo", "complementary", "menu", "menubar", "toolbar"];

/// Class names (lowercase, `-` and `_` removed) that mark chrome on common doc generators:
/// permalink markers inside headings, breadcrumbs, tables of contents, related-topic lists,
/// search boxes, sidebars, pagers, cookie banners, "edit this page" links.
const CHROME_CLASSES: &[&str] = &[
    "headerlink",
    "anchorlink",
    "hashlink",
    "headeranchor",
    "anchorjslink",
    "breadcrumb",
    "breadcrumbs",
    "skiplink",
    "skiptocontent",
    "toc",
    "tableofcontents",
    "related",
    "relatedtopics",
    "relatedlinks",
    "relatedarticles",
    "search",
    "searchbox",
    "searchbar",
    "searchform",
    "sidebar",
    "navbar",
    "pagination",
    "pager",
    "cookiebanner",
    "cookieconsent",
    "editpage",
    "editthispage",
];

/// Whether an element is page chrome to be dropped with everything inside it.
fn is_chrome(el: ElementRef<'_>) -> bool {
    let e = el.value();
    let name = e.name();
    if CHROME_TAGS.contains(&name) {
        return true;
    }
    if name == "header" {
        // A page banner, unless it is the header of the article itself (title, byline).
        let in_content = el
            .ancestors()
            .filter_map(ElementRef::wrap)
            .any(|a| matches!(a.value().name(), "article" | "main" | "section") || attr_is(&a, "role", "main"));
        if !in_content {
            return true;
        }
    }
    if let Some(role) = e.attr("role")
        && role.split_whitespace().any(|r| CHROME_ROLES.iter().any(|c| r.eq_ignore_ascii_case(c)))
    {
        return true;
    }
    if attr_is(&el, "aria-hidden", "true") || (e.attr("hidden").is_some() && !is_hidden_alternative(el)) {
        return true;
    }
    if let Some(style) = e.attr("style") {
        let style: String = style.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
        if style.contains("display:none") || style.contains("visibility:hidden") {
            return true;
        }
    }
    e.classes().any(|class| {
        let norm: String = class.chars().filter(|c| *c != '-' && *c != '_').collect::<String>().to_ascii_lowercase();
        CHROME_CLASSES.contains(&norm.as_str())
    })
}

/// An element hidden until a script picks one of its siblings: it and every other element child
/// of its parent carry `hidden`, and the parent holds no text of its own. LibreOffice's help
/// marks the macOS and the default key names and menu paths this way ("Press Command / Ctrl +
/// Enter"), for a script to show one: dropping them all would leave "Press +Enter". They are
/// all kept, separated by " / ".
fn is_hidden_alternative(el: ElementRef<'_>) -> bool {
    if el.value().attr("hidden").is_none() {
        return false;
    }
    let Some(parent) = el.parent().and_then(ElementRef::wrap) else {
        return false;
    };
    let mut alternatives = 0;
    for child in parent.children() {
        match child.value() {
            Node::Text(t) if !t.trim().is_empty() => return false,
            Node::Element(e) if e.attr("hidden").is_none() => return false,
            Node::Element(_) => alternatives += 1,
            _ => {}
        }
    }
    alternatives >= 2
}

fn heading_level(name: &str) -> Option<usize> {
    match name {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    }
}

fn clean_id(id: Option<&str>) -> Option<String> {
    id.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// The anchor a link to this heading should use: the heading's `id`; else an `id` (or an
/// `<a name>`) inside it; else an empty `<a id|name>` right before it; else the `id` of the
/// nearest enclosing element, but only if this heading is that element's first heading (so
/// the anchor lands on this heading, not an earlier one). Otherwise `None`.
fn heading_anchor(h: ElementRef<'_>, root: ElementRef<'_>) -> Option<String> {
    if let Some(id) = clean_id(h.value().id()) {
        return Some(id);
    }
    for d in h.descendent_elements().skip(1) {
        if let Some(id) = clean_id(d.value().id()) {
            return Some(id);
        }
        if d.value().name() == "a"
            && let Some(name) = clean_id(d.value().attr("name"))
        {
            return Some(name);
        }
    }
    let mut prev = h.prev_sibling();
    while let Some(node) = prev {
        match node.value() {
            Node::Text(t) if t.trim().is_empty() => prev = node.prev_sibling(),
            Node::Comment(_) => prev = node.prev_sibling(),
            Node::Element(e) => {
                if e.name() == "a"
                    && let Some(a) = ElementRef::wrap(node)
                    && a.text().all(|t| t.trim().is_empty())
                    && let Some(id) = clean_id(e.id()).or_else(|| clean_id(e.attr("name")))
                {
                    return Some(id);
                }
                break;
            }
            _ => break,
        }
    }
    for ancestor in h.ancestors() {
        let Some(el) = ElementRef::wrap(ancestor) else {
            break;
        };
        if el == root {
            break;
        }
        if let Some(id) = clean_id(el.value().id()) {
            let first = el.descendent_elements().find(|d| heading_level(d.value().name()).is_some());
            return (first == Some(h)).then_some(id);
        }
    }
    None
}

enum Step<'a> {
    Enter(ElementRef<'a>),
    Exit(ElementRef<'a>),
    Text(&'a str),
}

/// Counts to tell navigation (all links) from prose.
#[derive(Default)]
struct LinkStats {
    chars: usize,
    link_chars: usize,
    links: usize,
}

impl LinkStats {
    fn link_only(&self) -> bool {
        self.links >= 2 && self.link_chars * 5 >= self.chars * 4
    }
}

/// The heading being read.
struct OpenHeading<'a> {
    el: ElementRef<'a>,
    level: usize,
    anchor: Option<String>,
    text: TextBuf,
}

/// Walks the tree iteratively (deeply nested markup cannot overflow the stack).
struct Walker<'a> {
    root: ElementRef<'a>,
    split: bool,
    sections: Vec<(Section, bool)>,
    path: Vec<(usize, String)>,
    anchor: Option<String>,
    buf: TextBuf,
    heading: Option<OpenHeading<'a>>,
    h1s: Vec<String>,
    pre: usize,
    lists: Vec<Option<u64>>,
    link_depth: usize,
    stats: LinkStats,
    tables: Vec<Table>,
}

/// An open table. Data tables render one line per row with cells joined by ` | `; layout
/// tables (with headings or nested tables in them) flow like ordinary blocks.
struct Table {
    data: bool,
    /// Cells seen so far in the current row.
    cells: usize,
}

/// A table holding headings or other tables is page layout, not data.
fn is_data_table(table: ElementRef<'_>) -> bool {
    !table.descendent_elements().skip(1).any(|d| {
        let name = d.value().name();
        name == "table" || heading_level(name).is_some()
    })
}

impl<'a> Walker<'a> {
    fn new(root: ElementRef<'a>, split: bool) -> Self {
        Self {
            root,
            split,
            sections: Vec::new(),
            path: Vec::new(),
            anchor: None,
            buf: TextBuf::new(),
            heading: None,
            h1s: Vec::new(),
            pre: 0,
            lists: Vec::new(),
            link_depth: 0,
            stats: LinkStats::default(),
            tables: Vec::new(),
        }
    }

    fn out(&mut self) -> &mut TextBuf {
        match &mut self.heading {
            Some(h) => &mut h.text,
            None => &mut self.buf,
        }
    }

    fn walk(&mut self) {
        let mut stack = Vec::new();
        push_children(self.root, &mut stack);
        while let Some(step) = stack.pop() {
            match step {
                Step::Text(t) => self.text(t),
                Step::Enter(el) => {
                    if is_hidden_alternative(el) && el.prev_siblings().any(|n| n.value().is_element()) {
                        self.text(" / ");
                    }
                    if !is_chrome(el) && self.enter(el) {
                        stack.push(Step::Exit(el));
                        push_children(el, &mut stack);
                    }
                }
                Step::Exit(el) => self.exit(el),
            }
        }
    }

    fn text(&mut self, t: &str) {
        if self.pre > 0 {
            self.out().push(t);
        } else {
            self.out().push_collapsed(t);
        }
        if self.heading.is_none() {
            let n = t.chars().filter(|c| !c.is_whitespace()).count();
            self.stats.chars += n;
            if self.link_depth > 0 {
                self.stats.link_chars += n;
            }
        }
    }

    /// Opens an element; returns whether to descend into it.
    fn enter(&mut self, el: ElementRef<'a>) -> bool {
        let e = el.value();
        let name = e.name();
        if let Some(level) = heading_level(name) {
            if self.split && self.heading.is_none() {
                let anchor = heading_anchor(el, self.root);
                self.heading = Some(OpenHeading { el, level, anchor, text: TextBuf::inline() });
            } else {
                self.out().para();
            }
            return true;
        }
        match name {
            "br" => {
                self.out().line();
                return false;
            }
            "hr" => {
                self.out().para();
                return false;
            }
            "img" | "picture" | "source" | "track" | "area" => return false,
            "pre" | "listing" | "xmp" | "plaintext" => {
                self.out().para();
                self.pre += 1;
            }
            "ul" | "ol" | "menu" => {
                if self.lists.is_empty() {
                    self.out().para();
                } else {
                    self.out().line();
                }
                let start =
                    (name == "ol").then(|| e.attr("start").and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(1));
                self.lists.push(start);
            }
            "li" => {
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
            "table" => {
                self.out().para();
                self.tables.push(Table { data: is_data_table(el), cells: 0 });
            }
            "tr" => {
                if let Some(t) = self.tables.last_mut() {
                    t.cells = 0;
                }
                self.out().line();
            }
            "td" | "th" => {
                let (data, first) = match self.tables.last_mut() {
                    Some(t) => {
                        t.cells += 1;
                        (t.data, t.cells == 1)
                    }
                    None => (false, true),
                };
                if data {
                    if !first {
                        self.out().cell_now();
                    }
                    // Paragraphs and line breaks inside a data cell stay on the row's line.
                    self.buf.inline_only = true;
                } else {
                    self.out().cell();
                }
            }
            "a" => {
                self.link_depth += 1;
                if e.attr("href").is_some() && self.heading.is_none() {
                    self.stats.links += 1;
                }
            }
            _ if is_para_block(name) => self.out().para(),
            _ if is_line_block(name) => self.out().line(),
            _ => {}
        }
        true
    }

    fn exit(&mut self, el: ElementRef<'a>) {
        let name = el.value().name();
        if heading_level(name).is_some() {
            if self.heading.as_ref().is_some_and(|h| h.el == el) {
                self.end_heading();
            } else {
                self.out().para();
            }
            return;
        }
        match name {
            "pre" | "listing" | "xmp" | "plaintext" => {
                self.pre = self.pre.saturating_sub(1);
                self.out().para();
            }
            "ul" | "ol" | "menu" => {
                self.lists.pop();
                if self.lists.is_empty() {
                    self.out().para();
                } else {
                    self.out().line();
                }
            }
            "li" | "tr" => self.out().line(),
            "td" | "th" => self.buf.inline_only = false,
            "table" => {
                self.tables.pop();
                self.out().para();
            }
            "a" => self.link_depth = self.link_depth.saturating_sub(1),
            _ if is_para_block(name) => self.out().para(),
            _ if is_line_block(name) => self.out().line(),
            _ => {}
        }
    }

    fn end_heading(&mut self) {
        let Some(h) = self.heading.take() else {
            return;
        };
        let text = h.text.finish();
        if text.is_empty() {
            return; // an empty heading (an icon, say) does not start a section
        }
        self.flush();
        while self.path.last().is_some_and(|(l, _)| *l >= h.level) {
            self.path.pop();
        }
        if h.level == 1 {
            self.h1s.push(text.clone());
        }
        self.path.push((h.level, text));
        self.anchor = h.anchor;
    }

    fn flush(&mut self) {
        let buf = std::mem::replace(&mut self.buf, TextBuf::new());
        let stats = std::mem::take(&mut self.stats);
        if buf.is_empty() {
            return;
        }
        let section = Section {
            heading_path: self.path.iter().map(|(_, t)| t.clone()).collect(),
            anchor: self.anchor.clone(),
            text: buf.finish(),
        };
        self.sections.push((section, stats.link_only()));
    }
}

/// Blocks separated from their neighbours by a blank line.
fn is_para_block(name: &str) -> bool {
    matches!(
        name,
        "p" | "blockquote"
            | "table"
            | "figure"
            | "section"
            | "article"
            | "main"
            | "details"
            | "address"
            | "fieldset"
            | "dl"
            | "header"
            | "hgroup"
            | "center"
    )
}

/// Blocks that start on a new line.
fn is_line_block(name: &str) -> bool {
    matches!(
        name,
        "div" | "dd" | "dt" | "summary" | "caption" | "figcaption" | "legend" | "thead" | "tbody" | "tfoot" | "body"
    )
}

fn push_children<'a>(el: ElementRef<'a>, stack: &mut Vec<Step<'a>>) {
    let children: Vec<_> = el.children().collect();
    for child in children.into_iter().rev() {
        match child.value() {
            Node::Text(t) => stack.push(Step::Text(t)),
            Node::Element(_) => {
                if let Some(e) = ElementRef::wrap(child) {
                    stack.push(Step::Enter(e));
                }
            }
            _ => {}
        }
    }
}

/// `<title>` without a trailing " - Site" / " | Site" suffix when the part before it is
/// exactly an h1 of the page; else the first h1; else `None`.
fn page_title(doc: &Html, h1s_seen: &[String]) -> Option<String> {
    let mut h1s: Vec<String> = h1s_seen.to_vec();
    h1s.extend(
        doc.root_element()
            .descendent_elements()
            .filter(|e| e.value().name() == "h1")
            .map(|e| collapse_ws(&e.text().collect::<String>())),
    );
    let title = doc
        .root_element()
        .descendent_elements()
        .find(|e| {
            e.value().name() == "title"
                && !e.ancestors().filter_map(ElementRef::wrap).any(|a| a.value().name() == "svg")
        })
        .map(|e| collapse_ws(&e.text().collect::<String>()))
        .filter(|t| !t.is_empty());
    match title {
        Some(t) => Some(strip_site_suffix(&t, &h1s)),
        None => h1s_seen.first().cloned().or_else(|| h1s.into_iter().find(|h| !h.is_empty())),
    }
}

fn strip_site_suffix(title: &str, h1s: &[String]) -> String {
    const SEPARATORS: &[&str] = &[" - ", " | ", " – ", " — ", " · ", " :: "];
    let mut cuts: Vec<usize> = SEPARATORS.iter().flat_map(|sep| title.match_indices(sep).map(|(i, _)| i)).collect();
    cuts.sort_unstable_by(|a, b| b.cmp(a)); // shortest suffix first
    for cut in cuts {
        let prefix = title[..cut].trim();
        if !prefix.is_empty() && h1s.iter().any(|h| h.eq_ignore_ascii_case(prefix)) {
            return prefix.to_owned();
        }
    }
    title.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(html: &str) -> Document {
        load("help/page.html", html).unwrap()
    }

    fn sections(html: &str) -> Vec<Section> {
        match doc(html).body {
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
    fn chrome_is_stripped_and_main_is_the_root() {
        let html = r#"<!doctype html><html><head><title>Install</title>
            <style>body { color: red }</style><script>var x = "Home Docs";</script></head>
            <body>
            <header class="site"><a href="/">Acme Docs</a></header>
            <nav><ul><li><a href="/">Home</a></li></ul></nav>
            <div role="navigation">Prev | Next</div>
            <main>
              <h1>Install</h1>
              <p>Download   the
                 installer.</p>
              <noscript>Enable JavaScript</noscript>
              <span aria-hidden="true">★</span>
              <div hidden>secret</div>
              <p style="display: none">invisible</p>
              <form><input value="q"><button>Search</button></form>
              <svg><title>icon</title><text>svg text</text></svg>
              <template><p>tpl</p></template>
              <iframe src="x">frame</iframe>
            </main>
            <aside>Sidebar</aside>
            <footer>© Acme</footer>
            </body></html>"#;
        let d = doc(html);
        assert_eq!(d.title, "Install");
        assert_eq!(d.body, Body::Sections(vec![sec(&["Install"], None, "Download the installer.")]));
    }

    #[test]
    fn content_root_fallbacks() {
        let article = "<body><div>menu text</div><article><h2>A</h2><p>in article</p></article></body>";
        assert_eq!(sections(article), vec![sec(&["A"], None, "in article")]);
        let role = r#"<body><div>chrome</div><div role="main"><p>in role main</p></div></body>"#;
        assert_eq!(sections(role), vec![sec(&[], None, "in role main")]);
        let body = "<body><p>just body</p></body>";
        assert_eq!(sections(body), vec![sec(&[], None, "just body")]);
        let teaser = "<body><aside><article><p>teaser</p></article></aside><p>real</p></body>";
        assert_eq!(sections(teaser), vec![sec(&[], None, "real")]);
        let shell = "<body><main></main><p>outside main</p></body>";
        assert_eq!(sections(shell), vec![sec(&[], None, "outside main")]);
    }

    #[test]
    fn sections_and_heading_paths() {
        let html = "<main><p>lead</p><h1>Guide</h1><p>g</p><h2>Setup</h2><p>s</p>\
                    <h3>Linux</h3><p>l</p><h2>Use</h2><p>u</p><h2>Empty</h2><h3>Child</h3><p>c</p></main>";
        assert_eq!(
            sections(html),
            vec![
                sec(&[], None, "lead"),
                sec(&["Guide"], None, "g"),
                sec(&["Guide", "Setup"], None, "s"),
                sec(&["Guide", "Setup", "Linux"], None, "l"),
                sec(&["Guide", "Use"], None, "u"),
                sec(&["Guide", "Empty", "Child"], None, "c"),
            ]
        );
    }

    #[test]
    fn anchors() {
        let html = r#"<main>
            <h1 id="top">Proxy</h1><p>intro</p>
            <h2><a id="proxy-auth"></a>Letting the proxy sign in</h2><p>a</p>
            <h2><a name="legacy">Legacy name</a></h2><p>b</p>
            <h2>With <span id="inner">span id</span></h2><p>b2</p>
            <section id="nginx-example"><h2>Example nginx</h2><p>c</p>
              <h3>Second in section</h3><p>d</p></section>
            <h2>No anchor</h2><p>e</p>
            <a name="bm_1"></a>
            <h2>After bookmark</h2><p>f</p>
            <div id="wrapper"><p>text first</p><h2>First heading in div</h2><p>g</p></div>
          </main>"#;
        let anchors: Vec<_> = sections(html)
            .into_iter()
            .map(|s| (s.heading_path.last().cloned().unwrap_or_default(), s.anchor))
            .collect();
        let expect = |h: &str, a: Option<&str>| (h.to_owned(), a.map(str::to_owned));
        assert_eq!(
            anchors,
            vec![
                expect("Proxy", Some("top")),
                expect("Letting the proxy sign in", Some("proxy-auth")),
                expect("Legacy name", Some("legacy")),
                expect("With span id", Some("inner")),
                expect("Example nginx", Some("nginx-example")),
                expect("Second in section", None),
                expect("No anchor", None),
                expect("After bookmark", Some("bm_1")),
                expect("First heading in div", Some("wrapper")),
            ]
        );
    }

    #[test]
    fn title_rules() {
        let t = |html: &str| doc(html).title;
        assert_eq!(t("<title> Install - Acme Docs </title><h1>Install</h1><p>x</p>"), "Install");
        assert_eq!(t("<title>Backup | Admin | Acme</title><h1>Backup</h1><p>x</p>"), "Backup");
        assert_eq!(t("<title>Install - Acme Docs</title><h1>Installing</h1><p>x</p>"), "Install - Acme Docs");
        assert_eq!(t("<title>A - B</title><p>x</p>"), "A - B");
        assert_eq!(t("<title> </title><h1>Heading <b>one</b></h1><p>x</p>"), "Heading one");
        assert_eq!(t("<p>x</p>"), "page");
    }

    #[test]
    fn text_rendering() {
        let html = "<main>\
            <p>Some   <b>bold</b>\n text &amp; entities&nbsp;&lt;ok&gt;.<br>After break.</p>\
            <ul><li>one</li><li>two<ul><li>nested</li></ul></li></ul>\
            <ol start=\"3\"><li>three</li><li>four</li></ol>\
            <pre><code>line 1\n    indented\n\nline 4</code></pre>\
            <table><thead><tr><th>Port</th><th>Use</th></tr></thead>\
            <tbody><tr><td>7100</td><td>sync</td></tr><tr><td>8443</td><td><a href=\"x\">web</a> UI</td></tr></tbody></table>\
            <dl><dt>Term</dt><dd>Definition</dd></dl>\
            <div>Block <span>inline</span></div><div>Next div</div>\
            <blockquote>Quote</blockquote>\
            <p>Image <img src=\"a.png\" alt=\"alt text\"> dropped.</p>\
            </main>";
        assert_eq!(
            sections(html)[0].text,
            "Some bold text & entities <ok>.\nAfter break.\n\n\
             - one\n- two\n  - nested\n\n\
             3. three\n4. four\n\n\
             line 1\n    indented\n\nline 4\n\n\
             Port | Use\n7100 | sync\n8443 | web UI\n\n\
             Term\nDefinition\n\n\
             Block inline\nNext div\n\n\
             Quote\n\n\
             Image dropped."
        );
    }

    #[test]
    fn alternatives_hidden_for_a_script_to_pick_are_all_kept() {
        // LibreOffice's help: the macOS and the default key name, both hidden until a script
        // shows one. A lone hidden element beside visible text stays dropped.
        let html = "<main><p>Press <span class=\"switchinline\">\
            <span hidden=\"true\" class=\"MAC\"><span class=\"keycode\">Command</span></span>\
            <span hidden=\"true\"><span class=\"keycode\">Ctrl</span></span></span>\
            <span class=\"keycode\">+Enter</span>.</p>\
            <p>Shown <span hidden>not shown</span> text.</p></main>";
        assert_eq!(sections(html)[0].text, "Press Command / Ctrl+Enter.\n\nShown text.");
    }

    #[test]
    fn tables_keep_empty_cells_and_layout_tables_flow() {
        let data = "<main><table><tr><th></th><th>Team</th><th>Business</th></tr>\
            <tr><th>Price</th><td><p>$6</p></td><td>$12<br>per user</td></tr>\
            <tr><td>SSO</td><td></td><td>Yes</td></tr></table></main>";
        assert_eq!(sections(data)[0].text, "| Team | Business\nPrice | $6 | $12 per user\nSSO |  | Yes");
        let layout =
            "<body><table><tr><td><p>Menu</p></td><td><h1>Guide</h1><p>One.</p><p>Two.</p></td></tr></table></body>";
        assert_eq!(sections(layout), vec![sec(&[], None, "Menu"), sec(&["Guide"], None, "One.\n\nTwo.")]);
    }

    #[test]
    fn permalink_markers_are_not_heading_text() {
        let html = r##"<main><h2 id="setup">Setup<a class="headerlink" href="#setup">¶</a></h2><p>x</p>
            <h2 id="run">Run<a class="hash-link" href="#run">&#8203;</a></h2><p>y</p></main>"##;
        assert_eq!(sections(html), vec![sec(&["Setup"], Some("setup"), "x"), sec(&["Run"], Some("run"), "y")]);
    }

    #[test]
    fn article_header_keeps_its_heading() {
        let html = "<body><header>Site banner</header><article><header><h1>Post</h1><p>by me</p></header><p>Body.</p></article></body>";
        assert_eq!(sections(html), vec![sec(&["Post"], None, "by me\n\nBody.")]);
    }

    #[test]
    fn link_only_sections_are_navigation() {
        let html = r#"<main>
            <p><a href="/">Home</a> › <a href="/docs">Docs</a></p>
            <h1>Page</h1><p>Real content with a <a href="x">link</a>.</p>
            <h2>Related Topics</h2><ul><li><a href="a">Alpha topic</a></li><li><a href="b">Beta topic</a></li></ul>
          </main>"#;
        assert_eq!(sections(html), vec![sec(&["Page"], None, "Real content with a link.")]);
        // A page that is only links keeps them.
        let index = r#"<main><ul><li><a href="a">Alpha</a></li><li><a href="b">Beta</a></li></ul></main>"#;
        assert_eq!(sections(index), vec![sec(&[], None, "- Alpha\n- Beta")]);
    }

    #[test]
    fn the_declared_language_is_the_primary_subtag_of_html_lang() {
        let lang = |html: &str| doc(html).language;
        assert_eq!(
            lang(r#"<html lang="zh-CN"><body><p>Removing Duplicate Values</p></body></html>"#).as_deref(),
            Some("zh")
        );
        assert_eq!(lang("<html><body><p>No declaration here.</p></body></html>"), None);
        assert_eq!(lang(r#"<html lang="{{lang}}"><body><p>A template left unfilled.</p></body></html>"#), None);
    }

    /// The shape of LibreOffice's online help pages: no main/article, lots of div chrome, an
    /// embedded search box, a "Related Topics" block, bookmarks as empty `<a name>`.
    #[test]
    fn help_page_with_div_chrome() {
        let html = r#"<!DOCTYPE html><html lang="en-US"><head><title>Inserting Page Breaks</title>
            <script src="help.js"></script></head>
            <body itemscope="true" itemtype="http://schema.org/TechArticle">
            <meta itemprop="version" content="25.2">
            <div class="header-extrawurst">
              <header><div class="logo-container"><a class="logo" href="x"><p>LibreOffice Help</p></a></div></header>
              <div class="modules"><input id="modules" type="checkbox"><label for="modules">Module</label><nav id="modules-nav"></nav></div>
            </div>
            <aside class="rightside"><label for="accordion-1">Contents</label><div id="Contents"></div></aside>
            <aside class="leftside"><div id="Index"><div class="index-label">Index</div>
              <input id="search-bar" type="text" class="search" placeholder="Search"><nav class="index"></nav></div></aside>
            <div id="DisplayArea" itemprop="articleBody">
              <meta itemprop="keywords" content="page breaks">
              <a name="bm_id3155183"></a>
              <h1 id="hd_id3155183">Inserting Page Breaks</h1>
              <p id="par_id3146969" class="paragraph">To insert a page break, choose <span class="menuitem">Insert - More Breaks - Manual Break</span>.</p>
              <div class="note"><div class="noteicon"><img src="note.svg" alt="note"></div>
                <div class="notetext"><p>Page breaks are shown as a blue line.</p></div></div><br>
              <div class="relatedtopics"><p class="related" itemprop="mentions"><a name="related"></a><strong>Related Topics</strong></p>
                <div class="relatedbody" itemprop="mentions"><p><a href="a.html">Deleting Page Breaks</a></p></div></div>
            </div>
            <div class="google-donation"><div class="donation"><p><a href="d">Please support us!</a></p></div></div>
            <footer><h3 class="bug">Help content debug info:</h3><p>This page is: x</p></footer>
            </body></html>"#;
        let d = doc(html);
        assert_eq!(d.title, "Inserting Page Breaks");
        assert_eq!(d.keywords, ["page breaks"], "schema.org keywords are the page's index terms");
        assert_eq!(d.language.as_deref(), Some("en"), "<html lang=\"en-US\"> declares the language");
        assert_eq!(
            d.body,
            Body::Sections(vec![sec(
                &["Inserting Page Breaks"],
                Some("hd_id3155183"),
                "To insert a page break, choose Insert - More Breaks - Manual Break.\n\n\
                 Page breaks are shown as a blue line."
            )])
        );
    }

    #[test]
    fn markup_only_is_empty() {
        assert_eq!(
            load("x.html", "<html><head><title>T</title></head><body><nav>n</nav><img src=a></body></html>"),
            Err(LoadError::Empty)
        );
        assert_eq!(load("x.html", "<!-- only a comment -->"), Err(LoadError::Empty));
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let html = format!("{}deep{}", "<div>".repeat(20_000), "</div>".repeat(20_000));
        assert_eq!(sections(&html), vec![sec(&[], None, "deep")]);
    }

    #[test]
    fn fragments_render_headings_as_lines() {
        assert_eq!(fragment_text("<h3>Note</h3><p>Text <em>here</em></p><script>x()</script>"), "Note\n\nText here");
    }
}
