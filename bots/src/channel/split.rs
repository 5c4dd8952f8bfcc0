//! Splitting long answers into messages a platform accepts (Discord: 2000 characters, Telegram:
//! 4096): at paragraph breaks first, then line breaks, then spaces, never inside a word when
//! avoidable, and never leaving a code fence open: a fence cut in two is closed at the end of
//! one part and reopened (with its language) at the start of the next. No text is lost.

/// Splits `text` into parts of at most `limit` characters (Unicode scalar values).
pub fn split_message(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(32);
    if text.chars().count() <= limit {
        return vec![text.to_string()];
    }
    let mut parts: Vec<String> = Vec::new();
    let mut rest: String = text.to_string();
    // The fence opened in an earlier part that this part must reopen.
    let mut reopen: Option<String> = None;
    while !rest.is_empty() {
        let prefix = reopen.as_ref().map(|f| format!("{f}\n")).unwrap_or_default();
        let candidate = format!("{prefix}{rest}");
        if candidate.chars().count() <= limit {
            parts.push(candidate.trim_end().to_string());
            break;
        }
        // Room for the body, keeping space to close a fence ("\n```"). The reopened fence line is
        // capped (see `open_fence`), so this leaves at least half the limit.
        let budget = limit.saturating_sub(prefix.chars().count() + 4).max(limit / 2);
        let body: String = rest.chars().take(budget).collect();
        let cut = best_cut(&body);
        let (head, tail) = rest.split_at(byte_index(&rest, cut));
        let mut part = format!("{prefix}{}", head.trim_end());
        let open = open_fence(&part);
        if let Some(fence) = &open {
            part.push_str("\n```");
            reopen = Some(fence.clone());
        } else {
            reopen = None;
        }
        parts.push(part);
        rest = tail.trim_start_matches([' ', '\n']).to_string();
        if open.is_some() && rest.starts_with("```") && !rest.starts_with("````") {
            // The cut fell just before the closing fence: drop it instead of reopening.
            rest = rest.trim_start_matches("```").trim_start_matches('\n').to_string();
            reopen = None;
        }
    }
    parts.retain(|p| !p.trim().is_empty());
    parts
}

/// Character position to cut `body` at: the last paragraph break, else line break, else space,
/// in its second half; else the whole body (a very long word).
fn best_cut(body: &str) -> usize {
    let chars: Vec<char> = body.chars().collect();
    let half = chars.len() / 2;
    let find_last = |pred: &dyn Fn(usize) -> bool| (half..chars.len()).rev().find(|&i| pred(i));
    find_last(&|i| chars[i] == '\n' && i > 0 && chars[i - 1] == '\n')
        .or_else(|| find_last(&|i| chars[i] == '\n'))
        .or_else(|| find_last(&|i| chars[i] == ' '))
        .unwrap_or(chars.len())
}

fn byte_index(s: &str, chars: usize) -> usize {
    s.char_indices().nth(chars).map_or(s.len(), |(i, _)| i)
}

/// The opening of a code fence left open at the end of `text` (```` ```rust ````), if any: the
/// backticks and a short language tag only (a model may write anything after the backticks).
fn open_fence(text: &str) -> Option<String> {
    let mut open: Option<String> = None;
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(after) = t.strip_prefix("```") {
            open = match open {
                Some(_) => None,
                None => {
                    let lang: String =
                        after.chars().take_while(|c| c.is_alphanumeric() || *c == '-' || *c == '+').take(20).collect();
                    Some(format!("```{lang}"))
                }
            };
        }
    }
    open
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().filter(|w| !w.starts_with("```")).map(str::to_string).collect()
    }

    #[test]
    fn short_text_is_one_part() {
        assert_eq!(split_message("hello", 2000), vec!["hello"]);
    }

    #[test]
    fn parts_respect_the_limit_and_lose_nothing() {
        let para = "Driftwood keeps thirty versions of every file for ninety days. ".repeat(12);
        let text = [para.as_str(); 8].join("\n\n");
        let parts = split_message(&text, 2000);
        assert!(parts.len() >= 3);
        for p in &parts {
            assert!(p.chars().count() <= 2000, "part of {} chars", p.chars().count());
        }
        assert_eq!(words(&parts.join(" ")), words(&text));
        assert!(parts.iter().all(|p| !p.starts_with(' ') && !p.ends_with(' ')));
    }

    #[test]
    fn words_are_not_cut_and_counting_is_by_characters() {
        let text = "密码 ".repeat(3000);
        let parts = split_message(&text, 4096);
        for p in &parts {
            assert!(p.chars().count() <= 4096);
            assert!(p.split(' ').all(|w| w.is_empty() || w == "密码"), "a word was cut");
        }
        assert_eq!(parts.concat().matches("密码").count(), 3000);
    }

    #[test]
    fn a_code_fence_cut_in_two_is_closed_and_reopened() {
        let code: String = (0..200).map(|i| format!("drift sync --folder /data/{i}\n")).collect();
        let text = format!("Run these:\n\n```bash\n{code}```\n\nThen check the status.");
        let parts = split_message(&text, 2000);
        assert!(parts.len() >= 3);
        for p in &parts {
            assert_eq!(p.matches("```").count() % 2, 0, "unbalanced fence in part:\n{p}");
            assert!(p.chars().count() <= 2000);
        }
        assert!(parts[1].starts_with("```bash\n"), "{}", parts[1]);
        let lines: usize = parts.iter().map(|p| p.matches("drift sync").count()).sum();
        assert_eq!(lines, 200);
        assert!(parts.last().is_some_and(|p| p.contains("Then check the status.")));
    }

    #[test]
    fn a_fence_with_a_very_long_opening_line_does_not_break_splitting() {
        let text = format!("```{}\n{}\n```", "x".repeat(3000), "code line\n".repeat(400));
        let parts = split_message(&text, 2000);
        assert!(parts.iter().all(|p| p.chars().count() <= 2000));
        assert!(parts.len() >= 2);
    }

    #[test]
    fn a_huge_word_is_cut_rather_than_looping() {
        let text = "x".repeat(5000);
        let parts = split_message(&text, 2000);
        assert_eq!(parts.concat().len(), 5000);
        assert!(parts.iter().all(|p| p.len() <= 2000));
    }
}
