//! Button payloads: `fb:u:<answer id>` (👍), `fb:d:<answer id>` (👎), `fb:h:<answer id>` (talk to a
//! human). Stateless, so any replica can handle a press; at most 37 bytes, within Telegram's 64
//! for callback data and Discord's 100 for custom ids.

use supportbot_core::log::FeedbackKind;

/// The payload of a button.
pub fn encode(kind: FeedbackKind, answer_id: &str) -> String {
    let k = match kind {
        FeedbackKind::Up => 'u',
        FeedbackKind::Down => 'd',
        FeedbackKind::Human => 'h',
    };
    format!("fb:{k}:{answer_id}")
}

/// Reads a payload back; `None` for anything that is not one of ours.
pub fn decode(data: &str) -> Option<(FeedbackKind, String)> {
    let rest = data.strip_prefix("fb:")?;
    let (k, id) = rest.split_once(':')?;
    let kind = match k {
        "u" => FeedbackKind::Up,
        "d" => FeedbackKind::Down,
        "h" => FeedbackKind::Human,
        _ => return None,
    };
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return None;
    }
    Some((kind, id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_fits_the_limits() {
        let id = supportbot_core::log::new_answer_id();
        for kind in [FeedbackKind::Up, FeedbackKind::Down, FeedbackKind::Human] {
            let data = encode(kind, &id);
            assert!(data.len() <= 64);
            assert_eq!(decode(&data), Some((kind, id.clone())));
        }
    }

    #[test]
    fn foreign_or_forged_payloads_are_rejected() {
        for bad in ["", "fb:x:abc", "fb:u:", "other:u:abc", "fb:u:abc def", "fb:u:<script>"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
