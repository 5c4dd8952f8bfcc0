//! What the bot writes in Telegram: an answer as HTML messages within Telegram's length limit
//! (with a plain-text twin of each for when Telegram rejects the entities), the feedback keyboard,
//! the preview shown while an answer streams in, and the fixed texts (/start, /help, apology).
//!
//! Splitting happens on the answer's Markdown, before rendering, so every part is rendered on its
//! own and no tag, code block or link ever crosses two messages.

use supportbot_core::answer::{Answer, Outcome};
use supportbot_core::log::FeedbackKind;
use teloxide::types::{InlineKeyboardButton, InlineKeyboardButtonKind, InlineKeyboardMarkup};

use crate::channel::{feedback, format, split};

/// Telegram's limit on a message's text after entity parsing (counted here in UTF-16 code
/// units, as Telegram counts entity offsets, which is never less than characters).
pub(crate) const TEXT_LIMIT: usize = 4096;

/// Characters of Markdown per part: well under the limit, leaving room for the sources and for
/// what rendering adds (list bullets, link targets in the plain-text twin).
const PART_BUDGET: usize = 3500;

/// Below this the budget is not halved further; an oversized part is then sent as plain text.
const MIN_BUDGET: usize = 500;

/// One message of an answer: HTML (`parse_mode=HTML`), and the same as plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    /// `None` when only plain text fits (a pathological answer).
    pub html: Option<String>,
    pub plain: String,
}

impl Part {
    fn fits(&self) -> bool {
        utf16_len(&self.plain) <= TEXT_LIMIT && self.html.as_deref().is_none_or(|h| visible_len(h) <= TEXT_LIMIT)
    }

    /// A plain message (notices, greetings).
    pub fn plain(text: impl Into<String>) -> Self {
        Self { html: None, plain: text.into() }
    }
}

/// The messages of an answer, in order; the sources come with the last one.
pub(crate) fn answer_parts(answer: &Answer) -> Vec<Part> {
    let mut budget = PART_BUDGET;
    loop {
        let parts = render_parts(answer, budget);
        if parts.iter().all(Part::fits) || budget <= MIN_BUDGET {
            return parts.into_iter().flat_map(force_fit).collect();
        }
        budget /= 2;
    }
}

fn render_parts(answer: &Answer, budget: usize) -> Vec<Part> {
    let bodies: Vec<String> =
        split::split_message(answer.text.trim(), budget).into_iter().filter(|b| !b.trim().is_empty()).collect();
    let mut parts = Vec::with_capacity(bodies.len() + 1);
    for (i, body) in bodies.iter().enumerate() {
        let last = i + 1 == bodies.len();
        if !last || answer.citations.is_empty() {
            parts.push(render(answer, body, false));
            continue;
        }
        let with_sources = render(answer, body, true);
        if with_sources.fits() {
            parts.push(with_sources);
        } else {
            // The sources get a message of their own rather than pushing the text over the limit.
            parts.push(render(answer, body, false));
            parts.push(render(answer, "", true));
        }
    }
    if bodies.is_empty() && !answer.citations.is_empty() {
        parts.push(render(answer, "", true));
    }
    parts
}

fn render(answer: &Answer, body: &str, sources: bool) -> Part {
    let piece = Answer {
        text: body.to_string(),
        citations: if sources { answer.citations.clone() } else { Vec::new() },
        ..answer.clone()
    };
    Part {
        html: Some(format::telegram_html(&piece).trim().to_string()),
        plain: format::plain_text(&piece).trim().to_string(),
    }
}

/// A part that still does not fit goes out as plain text in pieces that do.
fn force_fit(part: Part) -> Vec<Part> {
    if part.fits() {
        return vec![part];
    }
    // Characters are at most two UTF-16 units each.
    split::split_message(&part.plain, TEXT_LIMIT / 2).into_iter().map(Part::plain).collect()
}

/// What the user sees of `html`: tags removed, each character reference counted once.
pub(crate) fn visible_len(html: &str) -> usize {
    let mut n = 0;
    let mut in_tag = false;
    let mut in_entity = false;
    for c in html.chars() {
        match c {
            '<' if !in_entity => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if in_tag => {}
            '&' => {
                in_entity = true;
                n += 1;
            }
            ';' if in_entity => in_entity = false,
            _ if in_entity => {}
            c => n += c.len_utf16(),
        }
    }
    n
}

fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// The preview of an answer that is still being written: its first part (Markdown rendered on
/// its own, so a half-written answer is still valid HTML), marked as unfinished if more follows.
pub(crate) fn preview(markdown: &str) -> Option<Part> {
    let text = markdown.trim();
    if text.is_empty() {
        return None;
    }
    let mut parts = split::split_message(text, PART_BUDGET).into_iter();
    let first = parts.next()?;
    let more = if parts.next().is_some() { " …" } else { "" };
    Some(Part {
        html: Some(format!("{}{more}", format::markdown_to_telegram_html(&first))),
        plain: format!("{}{more}", format::markdown_to_plain(&first)),
    })
}

/// The buttons under an answer: 👍, 👎 and "Talk to a human"; an abstention gets only the last.
pub(crate) fn keyboard(answer_id: &str, answer: &Answer) -> InlineKeyboardMarkup {
    let button = |label: &str, kind| InlineKeyboardButton::callback(label, feedback::encode(kind, answer_id));
    let human = vec![button(human_label(&answer.language), FeedbackKind::Human)];
    if answer.outcome == Outcome::Abstained {
        return InlineKeyboardMarkup::new(vec![human]);
    }
    InlineKeyboardMarkup::new(vec![vec![button("👍", FeedbackKind::Up), button("👎", FeedbackKind::Down)], human])
}

fn human_label(language: &str) -> &'static str {
    match language {
        "zh" => "联系人工客服",
        _ => "Talk to a human",
    }
}

/// The keyboard once a person has been asked for: the same without "Talk to a human".
pub(crate) fn without_human_button(markup: &InlineKeyboardMarkup) -> InlineKeyboardMarkup {
    let is_human = |b: &InlineKeyboardButton| match &b.kind {
        InlineKeyboardButtonKind::CallbackData(data) => {
            feedback::decode(data).is_some_and(|(kind, _)| kind == FeedbackKind::Human)
        }
        _ => false,
    };
    let rows = markup
        .inline_keyboard
        .iter()
        .map(|row| row.iter().filter(|b| !is_human(b)).cloned().collect::<Vec<_>>())
        .filter(|row| !row.is_empty())
        .collect::<Vec<_>>();
    InlineKeyboardMarkup::new(rows)
}

/// Language of the fixed texts, from the user's Telegram client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    En,
    Zh,
}

impl Lang {
    pub fn of(language_code: Option<&str>) -> Self {
        match language_code {
            Some(code) if code.starts_with("zh") => Self::Zh,
            _ => Self::En,
        }
    }
}

fn at(username: Option<&str>) -> String {
    username.map_or_else(|| "me".to_string(), |u| format!("@{u}"))
}

/// `/start`.
pub(crate) fn greeting(lang: Lang, username: Option<&str>) -> String {
    let me = at(username);
    match lang {
        Lang::Zh => format!(
            "你好！我是支持助手，根据我们的文档回答问题，并附上所用的来源。\n\n\
             直接把问题发给我即可。在群组中，请提及我（{me}）、回复我的消息，或发送 /ask 加上你的问题。\n\n\
             如果回答没有帮助，请点回答下方的“联系人工客服”或发送 /human，团队成员会在这里回复你。"
        ),
        Lang::En => format!(
            "Hi! I'm the support assistant. I answer questions from our documentation and show the sources I used.\n\n\
             Just send me your question. In a group, mention me ({me}), reply to one of my messages, or write \
             /ask followed by your question.\n\n\
             If an answer doesn't help, press “Talk to a human” under it or send /human, and a person from the \
             team will reply here."
        ),
    }
}

/// `/help`.
pub(crate) fn help(lang: Lang, username: Option<&str>) -> String {
    let me = at(username);
    match lang {
        Lang::Zh => format!(
            "/ask 问题 — 提问（私聊中直接发送问题即可；群组中也可以提及 {me}）\n\
             /human — 请团队成员查看我上一个回答\n\
             /help — 显示本说明\n\n\
             每个回答下方：👍 / 👎 告诉我们是否有帮助；“联系人工客服”请一位同事来回答。"
        ),
        Lang::En => format!(
            "/ask QUESTION — ask a question (in a private chat, just write it; in a group you can also mention {me})\n\
             /human — ask a person from the team to look at my last answer\n\
             /help — this message\n\n\
             Under each answer: 👍 / 👎 tell us whether it helped; “Talk to a human” asks a person."
        ),
    }
}

/// `/ask` or a mention without a question.
pub(crate) fn empty_question(lang: Lang, username: Option<&str>) -> String {
    let me = at(username);
    match lang {
        Lang::Zh => format!("请在命令后写下你的问题，例如：/ask 如何重置密码？（或：{me} 如何重置密码？）"),
        Lang::En => {
            format!(
                "Please add your question, e.g. /ask How do I reset my password? (or: {me} how do I reset my password?)"
            )
        }
    }
}

/// What a user sees when something went wrong on our side; details go to the log.
pub(crate) fn apology(lang: Lang) -> &'static str {
    match lang {
        Lang::Zh => "抱歉，我这边出了点问题。请稍后再试。",
        Lang::En => "Sorry, something went wrong on my side. Please try again in a moment.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use supportbot_core::answer::Citation;

    fn answer(text: &str, outcome: Outcome, citations: usize) -> Answer {
        let citations = (1..=citations)
            .map(|n| Citation {
                n,
                citation: format!("docs/guide-{n}.md#setup"),
                title: format!("Guide {n} & more"),
                source: format!("docs/guide-{n}.md"),
                url: Some(format!("https://docs.example.com/guide-{n}.html#setup")),
            })
            .collect();
        let mut a = blank();
        a.text = text.to_string();
        a.outcome = outcome;
        a.citations = citations;
        a
    }

    fn blank() -> Answer {
        Answer {
            backend: Some("extractive".into()),
            confidence: 0.8,
            ..Answer::bare(Outcome::Answered, String::new(), "en")
        }
    }

    /// Tags of Telegram's HTML subset are balanced (open/close in stack order).
    fn balanced(html: &str) -> bool {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = html;
        while let Some(i) = rest.find('<') {
            let Some(j) = rest[i..].find('>') else { return false };
            let tag = &rest[i + 1..i + j];
            if let Some(name) = tag.strip_prefix('/') {
                if stack.pop().as_deref() != Some(name) {
                    return false;
                }
            } else {
                stack.push(tag.split_whitespace().next().unwrap_or("").to_string());
            }
            rest = &rest[i + j + 1..];
        }
        stack.is_empty()
    }

    #[test]
    fn a_short_answer_is_one_part_with_its_sources() {
        let parts = answer_parts(&answer("Open **port 443** & 80 [1].", Outcome::Answered, 2));
        assert_eq!(parts.len(), 1);
        let html = parts[0].html.as_deref().expect("html");
        assert!(html.starts_with("Open <b>port 443</b> &amp; 80 [1]."), "{html}");
        assert!(
            html.contains("<a href=\"https://docs.example.com/guide-2.html#setup\">Guide 2 &amp; more</a>"),
            "{html}"
        );
        assert!(parts[0].plain.contains("Guide 1 & more — https://docs.example.com/guide-1.html#setup"));
    }

    #[test]
    fn a_long_answer_splits_into_balanced_parts_within_the_limit() {
        let para = "Driftwood keeps **thirty versions** of every file for *ninety days* & more. ".repeat(12);
        let code: String = (0..60).map(|i| format!("drift restore --version {i} <file>\n")).collect();
        let text = format!("{para}\n\n```bash\n{code}```\n\n{para}\n\n- one\n- two\n\n{para}\n\n{para}\n\n{para}");
        assert!(text.chars().count() > 6000);
        let parts = answer_parts(&answer(&text, Outcome::Answered, 3));
        assert!(parts.len() >= 2, "{} parts", parts.len());
        for p in &parts {
            let html = p.html.as_deref().expect("html");
            assert!(visible_len(html) <= TEXT_LIMIT && utf16_len(&p.plain) <= TEXT_LIMIT);
            assert!(balanced(html), "unbalanced part:\n{html}");
        }
        let last = parts.last().and_then(|p| p.html.as_deref()).expect("last");
        assert!(last.contains("<b>Sources</b>"));
        assert!(parts[..parts.len() - 1].iter().all(|p| !p.plain.contains("Sources")));
        let restores: usize = parts.iter().map(|p| p.plain.matches("drift restore").count()).sum();
        assert_eq!(restores, 60, "no line of the code block is lost");
    }

    #[test]
    fn astral_characters_count_twice() {
        let text = "😀 ".repeat(3000);
        let parts = answer_parts(&answer(&text, Outcome::Answered, 0));
        assert!(parts.len() >= 2);
        assert!(parts.iter().all(Part::fits));
        assert_eq!(parts.iter().map(|p| p.plain.matches('😀').count()).sum::<usize>(), 3000);
    }

    #[test]
    fn visible_length_ignores_tags_and_counts_entities_once() {
        assert_eq!(visible_len("<b>a &amp; b</b> <a href=\"https://x.y/?a=1&amp;b=2\">link</a>"), 10);
    }

    #[test]
    fn abstentions_only_offer_a_human_and_the_human_button_can_be_removed() {
        let answered = keyboard("abc123", &answer("x", Outcome::Answered, 1));
        let data: Vec<String> = answered
            .inline_keyboard
            .iter()
            .flatten()
            .filter_map(|b| match &b.kind {
                InlineKeyboardButtonKind::CallbackData(d) => Some(d.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(data, ["fb:u:abc123", "fb:d:abc123", "fb:h:abc123"]);
        let abstained = keyboard("abc123", &answer("x", Outcome::Abstained, 0));
        assert_eq!(abstained.inline_keyboard.len(), 1);
        assert_eq!(abstained.inline_keyboard[0].len(), 1);
        assert_eq!(without_human_button(&answered).inline_keyboard.concat().len(), 2);
        assert!(without_human_button(&abstained).inline_keyboard.is_empty());
    }

    #[test]
    fn previews_are_valid_html_of_a_half_written_answer() {
        let p = preview("Run **`drift sync` and <then").expect("preview");
        let html = p.html.expect("html");
        assert!(balanced(&html), "{html}");
        assert!(html.contains("&lt;then"));
        let long = "word ".repeat(2000);
        let p = preview(&long).expect("preview");
        assert!(p.plain.ends_with(" …") && p.plain.chars().count() <= PART_BUDGET + 2);
        assert!(preview("  ").is_none());
    }
}
