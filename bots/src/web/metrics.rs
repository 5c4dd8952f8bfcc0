//! `/metrics` in the Prometheus text format: answers by channel and outcome, rate-limited
//! questions, button presses, answers in flight and the answer-latency histogram of this
//! process. Off unless `web.metrics_token` is set; scrapers send it as a bearer token.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::auth::secrets_equal;
use crate::channel::Metrics;

pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(expected) = state.metrics_token.as_deref() else {
        return (StatusCode::NOT_FOUND, "metrics are off (set web.metrics_token)").into_response();
    };
    let given =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if !given.is_some_and(|g| secrets_equal(g.trim(), expected)) {
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "unauthorized").into_response();
    }
    let body = render(&state.core.metrics(), state.core.in_flight());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

/// Label values are escaped as the text format requires.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The exposition text.
pub fn render(m: &Metrics, in_flight: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# HELP supportbot_answers_total Answers sent, by channel and outcome.");
    let _ = writeln!(out, "# TYPE supportbot_answers_total counter");
    for ((channel, outcome), n) in &m.answers {
        let _ = writeln!(
            out,
            "supportbot_answers_total{{channel=\"{}\",outcome=\"{}\"}} {n}",
            label(channel),
            label(outcome)
        );
    }
    let _ = writeln!(out, "# HELP supportbot_rate_limited_total Questions refused by the rate limits, by channel.");
    let _ = writeln!(out, "# TYPE supportbot_rate_limited_total counter");
    for (channel, n) in &m.rate_limited {
        let _ = writeln!(out, "supportbot_rate_limited_total{{channel=\"{}\"}} {n}", label(channel));
    }
    let _ = writeln!(out, "# HELP supportbot_feedback_total Button presses recorded, by kind (up, down, human).");
    let _ = writeln!(out, "# TYPE supportbot_feedback_total counter");
    for (kind, n) in &m.feedback {
        let _ = writeln!(out, "supportbot_feedback_total{{kind=\"{}\"}} {n}", label(kind));
    }
    let _ = writeln!(out, "# HELP supportbot_in_flight Answers being generated or sent right now.");
    let _ = writeln!(out, "# TYPE supportbot_in_flight gauge");
    let _ = writeln!(out, "supportbot_in_flight {in_flight}");
    let _ = writeln!(out, "# HELP supportbot_answer_seconds Time from question to answer.");
    let _ = writeln!(out, "# TYPE supportbot_answer_seconds histogram");
    for (bound, count) in &m.latency_buckets {
        let _ = writeln!(out, "supportbot_answer_seconds_bucket{{le=\"{}\"}} {count}", *bound as f64 / 1000.0);
    }
    let _ = writeln!(out, "supportbot_answer_seconds_bucket{{le=\"+Inf\"}} {}", m.latency_count);
    let _ = writeln!(out, "supportbot_answer_seconds_sum {}", m.latency_ms_sum as f64 / 1000.0);
    let _ = writeln!(out, "supportbot_answer_seconds_count {}", m.latency_count);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_counters_histogram_and_escaped_labels() {
        let mut m = Metrics::default();
        m.answers.insert(("telegram".into(), "answered".into()), 3);
        m.answers.insert(("di\"scord".into(), "abstained".into()), 1);
        m.latency_buckets = vec![(25, 1), (50, 4)];
        m.latency_count = 4;
        m.latency_ms_sum = 130;
        let text = render(&m, 2);
        assert!(text.contains("supportbot_answers_total{channel=\"telegram\",outcome=\"answered\"} 3"));
        assert!(text.contains("channel=\"di\\\"scord\""));
        assert!(text.contains("supportbot_answer_seconds_bucket{le=\"0.05\"} 4"));
        assert!(text.contains("supportbot_answer_seconds_bucket{le=\"+Inf\"} 4"));
        assert!(text.contains("supportbot_answer_seconds_sum 0.13"));
        assert!(text.contains("supportbot_in_flight 2"));
    }
}
