//! Escalations to an operators' chat, with no platform types: the post (what was asked, what
//! the bot said, and `ref: <id>` naming the exchange, so any replica can act on it), the
//! "take over" / "approve" button payloads, and the actions behind buttons and replies, done
//! through the core's `OperatorDesk`. The Telegram and Discord adapters only send and receive.

use supportbot_core::answer::Outcome;
use supportbot_core::log::{Exchange, FeedbackKind};

use super::ChannelCore;

/// Button payloads: `op:c:<id>` takes the item over, `op:a:<id>` approves the bot's answer.
pub const TAKE_OVER: &str = "op:c:";
pub const APPROVE: &str = "op:a:";
/// How a post names its exchange (last line).
pub const REF: &str = "ref: ";
/// The question and answer are cut to this many characters in a post.
const EXCERPT: usize = 1200;

/// Cuts `text` to the excerpt length, marking the cut.
pub fn excerpt(text: &str) -> String {
    let mut cut: String = text.chars().take(EXCERPT).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

/// The parts of a post, for each platform to lay out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    pub headline: &'static str,
    pub channel: String,
    pub question: String,
    pub answer: String,
    pub outcome: String,
    pub footer: &'static str,
    pub id: String,
    /// An abstention has no answer to approve.
    pub approvable: bool,
}

pub fn post(exchange: &Exchange, why: FeedbackKind) -> Post {
    Post {
        headline: match why {
            FeedbackKind::Human => "🙋 A user asked for a person",
            FeedbackKind::Down => "👎 A user found an answer unhelpful",
            FeedbackKind::Up => "👍 Feedback",
        },
        channel: exchange.channel.clone(),
        question: excerpt(&exchange.question),
        answer: excerpt(&exchange.answer),
        outcome: serde_json::to_value(exchange.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        footer: "Reply to this message to answer the user (they see it as from our support team).",
        id: exchange.id.clone(),
        approvable: exchange.outcome != Outcome::Abstained,
    }
}

/// The exchange id in the `ref:` line of a post's text.
pub fn referenced_id(post_text: &str) -> Option<String> {
    let id = post_text.lines().rev().find_map(|l| l.trim().strip_prefix(REF))?.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')).then(|| id.to_string())
}

/// Handles an escalation button pressed by `operator`; `None` when `data` is not one.
/// Returns the acknowledgement to show.
pub async fn press(core: &ChannelCore, data: &str, operator: &str) -> Option<String> {
    let (approve, id) =
        if let Some(id) = data.strip_prefix(TAKE_OVER) { (false, id) } else { (true, data.strip_prefix(APPROVE)?) };
    let Some(desk) = core.desk() else {
        return Some("The review store is not available here.".into());
    };
    let result = if approve { desk.approve(id, operator).await } else { desk.take_over(id, operator).await };
    Some(match result {
        Ok(()) if approve => "Approved: it will be served for this question from now on.".into(),
        Ok(()) => "It's yours: reply to the post to answer the user.".into(),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "an operator action from chat failed");
            format!("Not done: {}", excerpt(&format!("{e:#}")))
        }
    })
}

/// Sends an operator's `text` (a reply to the post of exchange `id`) to the user. Returns the
/// confirmation to show in the operators' chat.
pub async fn reply(core: &ChannelCore, id: &str, operator: &str, text: &str) -> String {
    let Some(desk) = core.desk() else {
        return "The review store is not available here.".into();
    };
    match desk.reply(id, operator, text).await {
        Ok(()) => "✅ Sent to the user.".into(),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "an operator's reply from chat failed");
            format!("Not sent: {}", excerpt(&format!("{e:#}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_are_found_by_their_ref_line_only() {
        assert_eq!(referenced_id("🙋 A user asked\n\nref: 0193abcd-ef"), Some("0193abcd-ef".into()));
        assert_eq!(referenced_id("no reference here"), None);
        assert_eq!(referenced_id("ref: <script>"), None, "ids are plain");
        assert_eq!(referenced_id("ref: "), None);
    }

    #[test]
    fn excerpts_are_cut_and_marked() {
        assert_eq!(excerpt("short"), "short");
        let long = "x".repeat(2000);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), 1201);
        assert!(cut.ends_with('…'));
    }
}
