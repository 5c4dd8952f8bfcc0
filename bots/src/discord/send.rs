//! Sending to Discord: the 429 retry wrapper every send goes through, the allowed-mentions
//! policy (nothing may ping), the answer buttons, and the answer cut into ≤ 2000-character parts.

use std::future::Future;
use std::time::Duration;

use serenity::all::{ButtonStyle, CreateActionRow, CreateAllowedMentions, CreateButton};
use serenity::http::HttpError;
use supportbot_core::answer::{Answer, Outcome};
use supportbot_core::log::FeedbackKind;

use crate::channel::{feedback, format, split};

/// Discord's limit on a message's content, in Unicode scalar values (serenity counts the same way).
pub const MESSAGE_LIMIT: usize = 2000;

/// What a user sees when something on our side failed; the details go to the log.
pub const APOLOGY: &str = "Sorry, something went wrong on my side. Please try again in a moment.";

/// How sends wait out Discord's 429 answers. serenity's own rate limiter is off whenever
/// `discord.api_url` points somewhere else (it would ignore the URL), so 429s reach us.
///
/// serenity's `ErrorResponse` keeps only `code`, `message` and `errors` of the body and drops the
/// headers, so neither the body's `retry_after` nor `Retry-After` survive into the error. The wait
/// is therefore ours: `first_wait`, doubling per retry, at most `max_wait`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    pub first_wait: Duration,
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // Discord's per-route buckets mostly reset within a second or two.
        Self { max_retries: 4, first_wait: Duration::from_secs(1), max_wait: Duration::from_secs(15) }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based).
    pub fn wait(&self, retry: u32) -> Duration {
        self.first_wait.saturating_mul(1u32 << retry.min(16)).min(self.max_wait)
    }
}

/// Whether a serenity error is Discord saying "429 Too Many Requests".
pub fn is_rate_limited(error: &serenity::Error) -> bool {
    matches!(error, serenity::Error::Http(HttpError::UnsuccessfulRequest(r)) if r.status_code.as_u16() == 429)
}

/// Runs `op` (one Discord request), retrying it when Discord answers 429. Other errors are
/// returned at once: retrying a 4xx does not help, and retrying a 5xx could post twice.
pub async fn with_retry<T, Fut>(
    policy: &RetryPolicy,
    what: &'static str,
    mut op: impl FnMut() -> Fut,
) -> serenity::Result<T>
where
    Fut: Future<Output = serenity::Result<T>>,
{
    let mut retry = 0;
    loop {
        match op().await {
            Err(e) if is_rate_limited(&e) && retry < policy.max_retries => {
                let wait = policy.wait(retry);
                tracing::warn!(request = what, wait_ms = wait.as_millis() as u64, "Discord rate limited us; waiting");
                tokio::time::sleep(wait).await;
                retry += 1;
            }
            other => return other,
        }
    }
}

/// Allowed mentions for every message the bot sends: nobody, no role, no @everyone/@here, and
/// no ping of the author a reply answers. Documents and models can write mention syntax; with
/// this Discord renders it without notifying anyone (and `format::discord_markdown` also breaks
/// the syntax itself).
pub fn no_mentions() -> CreateAllowedMentions {
    CreateAllowedMentions::new().replied_user(false)
}

/// The buttons under an answer: 👍, 👎 and "Talk to a human"; an abstention only gets the last
/// (there is nothing to rate).
pub fn answer_buttons(answer_id: &str, outcome: Outcome) -> Vec<CreateActionRow> {
    let human = CreateButton::new(feedback::encode(FeedbackKind::Human, answer_id))
        .label("Talk to a human")
        .style(ButtonStyle::Primary);
    let buttons = if outcome == Outcome::Abstained {
        vec![human]
    } else {
        vec![
            CreateButton::new(feedback::encode(FeedbackKind::Up, answer_id)).label("👍").style(ButtonStyle::Secondary),
            CreateButton::new(feedback::encode(FeedbackKind::Down, answer_id))
                .label("👎")
                .style(ButtonStyle::Secondary),
            human,
        ]
    };
    vec![CreateActionRow::Buttons(buttons)]
}

/// The answer as Discord Markdown (mentions neutralised, sources as links) in parts Discord
/// accepts, cut at paragraph and code-fence boundaries. Never empty.
pub fn answer_parts(answer: &Answer) -> Vec<String> {
    let text = format::discord_markdown(answer);
    let parts: Vec<String> =
        split::split_message(&text, MESSAGE_LIMIT).into_iter().filter(|p| !p.trim().is_empty()).collect();
    if parts.is_empty() { vec![APOLOGY.to_string()] } else { parts }
}

/// Text a user typed, made safe to show back (thread names, hints): mention syntax broken and
/// cut to `max` characters.
pub fn safe_snippet(text: &str, max: usize) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
    let line = format::neutralize_mentions(line);
    if line.chars().count() <= max {
        return line;
    }
    let mut cut: String = line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap() {
        let p = RetryPolicy {
            max_retries: 10,
            first_wait: Duration::from_millis(100),
            max_wait: Duration::from_millis(500),
        };
        assert_eq!(p.wait(0), Duration::from_millis(100));
        assert_eq!(p.wait(1), Duration::from_millis(200));
        assert_eq!(p.wait(2), Duration::from_millis(400));
        assert_eq!(p.wait(3), Duration::from_millis(500));
        assert_eq!(p.wait(40), Duration::from_millis(500));
    }

    #[test]
    fn nothing_may_be_mentioned() {
        let json = serde_json::to_value(no_mentions()).expect("serialises");
        assert_eq!(json, serde_json::json!({"parse": [], "users": [], "roles": [], "replied_user": false}));
    }

    #[test]
    fn snippets_are_short_single_lines_without_mentions() {
        assert_eq!(safe_snippet("\n  hello @everyone\nsecond", 100), "hello @\u{200b}everyone");
        let long = safe_snippet(&"x".repeat(300), 100);
        assert_eq!(long.chars().count(), 100);
        assert!(long.ends_with('…'));
        assert_eq!(safe_snippet("   ", 100), "");
    }

    #[tokio::test]
    async fn other_errors_are_not_retried() {
        let p =
            RetryPolicy { max_retries: 3, first_wait: Duration::from_millis(1), max_wait: Duration::from_millis(1) };
        let mut calls = 0;
        let result: serenity::Result<()> = with_retry(&p, "test", || {
            calls += 1;
            async { Err(serenity::Error::Other("boom")) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, 1);
    }
}
