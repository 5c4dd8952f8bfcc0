//! Rendering an answer for a chat platform, with no platform types: Markdown (what models write)
//! to Telegram's HTML subset with correct escaping, to plain text (Telegram's fallback when it
//! rejects the entities), and to Discord Markdown with mentions neutralised. Each adds the
//! sources, as links when the source root has a public URL.

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use supportbot_core::answer::{Answer, Citation};

/// Escapes text for Telegram HTML (only `&`, `<`, `>` need it; quotes too inside attributes).
pub fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn escape_attr(text: &str) -> String {
    escape_html(text).replace('"', "&quot;")
}

/// Only http(s) links become links; anything else stays text.
fn safe_url(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

/// Markdown → Telegram HTML (`<b> <i> <s> <code> <pre> <a> <blockquote>`). Unsupported
/// constructs degrade to text; nothing the model wrote is passed through as markup.
pub fn markdown_to_telegram_html(markdown: &str) -> String {
    render(markdown, true)
}

/// Markdown → plain text (links as `text (url)`).
pub fn markdown_to_plain(markdown: &str) -> String {
    render(markdown, false)
}

fn render(markdown: &str, html: bool) -> String {
    let mut out = String::new();
    let mut list_stack: Vec<Option<u64>> = Vec::new();
    let mut link_stack: Vec<String> = Vec::new();
    let tag = |out: &mut String, t: &str| {
        if html {
            out.push_str(t);
        }
    };
    let text = |out: &mut String, t: &str| {
        if html {
            out.push_str(&escape_html(t));
        } else {
            out.push_str(t);
        }
    };
    let parser = Parser::new_ext(markdown, Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES);
    for event in parser {
        match event {
            Event::Start(Tag::Paragraph) => {}
            Event::End(TagEnd::Paragraph) => out.push_str("\n\n"),
            Event::Start(Tag::Heading { .. }) => tag(&mut out, "<b>"),
            Event::End(TagEnd::Heading(level)) => {
                tag(&mut out, "</b>");
                out.push_str(if level == HeadingLevel::H1 { "\n\n" } else { "\n" });
            }
            Event::Start(Tag::Strong) => tag(&mut out, "<b>"),
            Event::End(TagEnd::Strong) => tag(&mut out, "</b>"),
            Event::Start(Tag::Emphasis) => tag(&mut out, "<i>"),
            Event::End(TagEnd::Emphasis) => tag(&mut out, "</i>"),
            Event::Start(Tag::Strikethrough) => tag(&mut out, "<s>"),
            Event::End(TagEnd::Strikethrough) => tag(&mut out, "</s>"),
            Event::Start(Tag::BlockQuote(_)) => tag(&mut out, "<blockquote>"),
            Event::End(TagEnd::BlockQuote(_)) => {
                while out.ends_with('\n') {
                    out.pop();
                }
                tag(&mut out, "</blockquote>");
                out.push_str("\n\n");
            }
            Event::Start(Tag::CodeBlock(kind)) => {
                let lang = match kind {
                    CodeBlockKind::Fenced(l) if !l.is_empty() => {
                        Some(l.split_whitespace().next().unwrap_or("").to_string())
                    }
                    _ => None,
                };
                match lang {
                    Some(l) if html && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '+') => {
                        out.push_str(&format!("<pre><code class=\"language-{l}\">"))
                    }
                    _ => tag(&mut out, "<pre>"),
                }
            }
            Event::End(TagEnd::CodeBlock) => {
                while out.ends_with('\n') {
                    out.pop();
                }
                if html {
                    if out.rfind("<pre><code").is_some_and(|i| out.rfind("<pre>").is_some_and(|j| i == j)) {
                        out.push_str("</code></pre>");
                    } else {
                        out.push_str("</pre>");
                    }
                }
                out.push_str("\n\n");
            }
            Event::Start(Tag::List(start)) => list_stack.push(start),
            Event::End(TagEnd::List(_)) => {
                list_stack.pop();
                if list_stack.is_empty() {
                    out.push('\n');
                }
            }
            Event::Start(Tag::Item) => {
                let depth = list_stack.len().saturating_sub(1);
                out.push_str(&"  ".repeat(depth));
                match list_stack.last_mut() {
                    Some(Some(n)) => {
                        out.push_str(&format!("{n}. "));
                        *n += 1;
                    }
                    _ => out.push_str("• "),
                }
            }
            Event::End(TagEnd::Item) => {
                while out.ends_with('\n') {
                    out.pop();
                }
                out.push('\n');
            }
            Event::Start(Tag::Link { dest_url, .. }) => {
                let url = dest_url.to_string();
                if html && safe_url(&url) {
                    out.push_str(&format!("<a href=\"{}\">", escape_attr(&url)));
                }
                link_stack.push(url);
            }
            Event::End(TagEnd::Link) => {
                let url = link_stack.pop().unwrap_or_default();
                if html && safe_url(&url) {
                    out.push_str("</a>");
                } else if !html && safe_url(&url) {
                    out.push_str(&format!(" ({url})"));
                }
            }
            Event::Start(Tag::Image { .. }) | Event::End(TagEnd::Image) => {}
            Event::Start(Tag::TableCell) => {}
            Event::End(TagEnd::TableCell) => out.push_str(" | "),
            Event::End(TagEnd::TableRow) | Event::End(TagEnd::TableHead) => {
                while out.ends_with(' ') || out.ends_with('|') {
                    out.pop();
                }
                out.push('\n');
            }
            Event::Text(t) => text(&mut out, &t),
            Event::Code(c) => {
                tag(&mut out, "<code>");
                text(&mut out, &c);
                tag(&mut out, "</code>");
            }
            Event::Html(h) | Event::InlineHtml(h) => text(&mut out, &h),
            Event::SoftBreak | Event::HardBreak => out.push('\n'),
            Event::Rule => out.push_str("———\n\n"),
            _ => {}
        }
    }
    out.trim_end().to_string()
}

fn source_line_html(c: &Citation) -> String {
    match &c.url {
        Some(url) if safe_url(url) => {
            format!("[{}] <a href=\"{}\">{}</a>", c.n, escape_attr(url), escape_html(&c.title))
        }
        _ => format!("[{}] {} — <code>{}</code>", c.n, escape_html(&c.title), escape_html(&c.citation)),
    }
}

/// The whole answer for Telegram: the text as HTML, then its sources.
pub fn telegram_html(answer: &Answer) -> String {
    let mut out = markdown_to_telegram_html(&answer.text);
    if !answer.citations.is_empty() {
        out.push_str("\n\n<b>Sources</b>\n");
        out.push_str(&answer.citations.iter().map(source_line_html).collect::<Vec<_>>().join("\n"));
    }
    out
}

/// The whole answer as plain text (Telegram's fallback).
pub fn plain_text(answer: &Answer) -> String {
    let mut out = markdown_to_plain(&answer.text);
    if !answer.citations.is_empty() {
        out.push_str("\n\nSources\n");
        let lines: Vec<String> = answer
            .citations
            .iter()
            .map(|c| format!("[{}] {} — {}", c.n, c.title, c.url.as_deref().unwrap_or(&c.citation)))
            .collect();
        out.push_str(&lines.join("\n"));
    }
    out
}

/// Neutralises Discord mention syntax (`@everyone`, `@here`, `<@id>`, `<@&role>`, `<#channel>`) by
/// inserting a zero-width space, so nothing a document or a model wrote can ping anyone even if
/// allowed mentions were misconfigured.
pub fn neutralize_mentions(text: &str) -> String {
    text.replace("@everyone", "@\u{200b}everyone")
        .replace("@here", "@\u{200b}here")
        .replace("<@", "<\u{200b}@")
        .replace("<#", "<\u{200b}#")
}

/// The whole answer for Discord: Markdown as written (mentions neutralised), then the sources,
/// with links wrapped in `<…>` so Discord does not unfurl them.
pub fn discord_markdown(answer: &Answer) -> String {
    let mut out = neutralize_mentions(answer.text.trim());
    if !answer.citations.is_empty() {
        out.push_str("\n\n**Sources**\n");
        let lines: Vec<String> = answer
            .citations
            .iter()
            .map(|c| match &c.url {
                Some(url) if safe_url(url) => format!("[{}] [{}](<{}>)", c.n, neutralize_mentions(&c.title), url),
                _ => format!("[{}] {} — `{}`", c.n, neutralize_mentions(&c.title), c.citation),
            })
            .collect();
        out.push_str(&lines.join("\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_becomes_telegram_html_with_escaping() {
        let md = "Run **`drift sync`** if x < 3 & y > 2, see [the guide](https://docs.acme.com/a?b=1&c=\"2\").\n\n- one\n- two\n\n```bash\necho <hi>\n```";
        let html = markdown_to_telegram_html(md);
        assert!(html.contains("<b><code>drift sync</code></b>"), "{html}");
        assert!(html.contains("x &lt; 3 &amp; y &gt; 2"), "{html}");
        assert!(html.contains("<a href=\"https://docs.acme.com/a?b=1&amp;c=&quot;2&quot;\">the guide</a>"), "{html}");
        assert!(html.contains("• one\n• two"), "{html}");
        assert!(html.contains("<pre><code class=\"language-bash\">echo &lt;hi&gt;</code></pre>"), "{html}");
    }

    #[test]
    fn raw_html_and_unsafe_links_do_not_become_markup() {
        let html = markdown_to_telegram_html("<b onclick=x>hi</b> [x](javascript:alert(1)) <script>");
        assert!(!html.contains("<b onclick"), "{html}");
        assert!(!html.contains("javascript:") || !html.contains("href"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
    }

    #[test]
    fn plain_text_keeps_link_targets() {
        assert_eq!(markdown_to_plain("See [docs](https://x.y/z) **now**."), "See docs (https://x.y/z) now.");
    }

    #[test]
    fn discord_mentions_are_neutralised() {
        let out = neutralize_mentions("hey @everyone and @here and <@123> <@&456> <#789>");
        assert!(!out.contains("@everyone") && !out.contains("@here"));
        assert!(!out.contains("<@") && !out.contains("<#"));
    }
}
