//! The dashboard: volume, outcomes, escalations, 👍/👎, latency percentiles, a per-day bar chart
//! drawn on the server as inline SVG (no JavaScript), and the questions the bot could not
//! answer grouped by meaning: the gaps in the documentation, most frequent first.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, NaiveDate, Utc};
use serde::Serialize;
use supportbot_core::embed::{Embedder, cosine};
use supportbot_core::review::Stats;

use super::{Page, unavailable};
use crate::web::AppState;
use crate::web::auth::Operator;

/// Periods offered, in days.
const PERIODS: [u32; 4] = [7, 30, 90, 365];
/// Two unanswered questions this similar (cosine of their embeddings) ask the same thing.
const SAME_QUESTION: f32 = 0.75;
/// At most this many distinct unanswered questions (the newest) are embedded per page view.
const MAX_UNANSWERED: usize = 500;
/// Groups shown.
const SHOWN_GROUPS: usize = 15;
/// Variants shown under a group's representative.
const SHOWN_VARIANTS: usize = 3;

/// Unanswered questions that ask the same thing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct Group {
    /// The most frequent wording (the newest among equally frequent ones).
    pub representative: String,
    /// How many times the question was asked, all wordings together.
    pub count: usize,
    /// Other wordings, most frequent first (at most `SHOWN_VARIANTS`).
    pub variants: Vec<String>,
    /// How many other wordings there are in all.
    pub variant_count: usize,
}

/// Distinct questions (ignoring case and spacing) with how often each was asked, in the order
/// first seen (the store lists the newest first).
fn distinct(questions: &[String]) -> Vec<(String, usize)> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<(String, usize)> = Vec::new();
    for q in questions {
        let key = q.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
        if key.is_empty() {
            continue;
        }
        match index.get(&key) {
            Some(&i) => out[i].1 += 1,
            None => {
                index.insert(key, out.len());
                out.push((q.trim().to_string(), 1));
            }
        }
    }
    out
}

/// Greedy clustering: questions are taken most frequent first; each joins the group whose
/// representative is most similar if that similarity reaches `threshold`, else starts a group.
/// Groups come out largest first. `vectors[i]` embeds `questions[i].0`.
pub(super) fn cluster(questions: &[(String, usize)], vectors: &[Vec<f32>], threshold: f32) -> Vec<Group> {
    let mut order: Vec<usize> = (0..questions.len()).collect();
    // Stable: among equally frequent questions the newest comes first.
    order.sort_by_key(|&i| std::cmp::Reverse(questions[i].1));
    // Each group: its representative's index and its members' indices.
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for i in order {
        let best = groups
            .iter_mut()
            .map(|g| {
                let s = cosine(&vectors[i], &vectors[g.0]);
                (g, s)
            })
            .filter(|(_, s)| *s >= threshold)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((g, _)) => g.1.push(i),
            None => groups.push((i, vec![i])),
        }
    }
    let mut out: Vec<Group> = groups
        .into_iter()
        .map(|(rep, members)| Group {
            representative: questions[rep].0.clone(),
            count: members.iter().map(|&m| questions[m].1).sum(),
            variants: members.iter().skip(1).take(SHOWN_VARIANTS).map(|&m| questions[m].0.clone()).collect(),
            variant_count: members.len() - 1,
        })
        .collect();
    out.sort_by_key(|g| std::cmp::Reverse(g.count));
    out
}

/// Groups the unanswered questions by meaning with the index's embedder (on a blocking
/// thread: embedding is CPU work). If embedding fails, identical questions are still grouped;
/// the second value says whether grouping was by meaning.
async fn group_unanswered(embedder: Arc<dyn Embedder>, questions: &[String]) -> (Vec<Group>, bool) {
    let mut items = distinct(questions);
    items.truncate(MAX_UNANSWERED);
    if items.is_empty() {
        return (Vec::new(), true);
    }
    let texts: Vec<String> = items.iter().map(|(q, _)| q.clone()).collect();
    match tokio::task::spawn_blocking(move || embedder.embed_documents(&texts)).await {
        Ok(Ok(vectors)) if vectors.len() == items.len() => (cluster(&items, &vectors, SAME_QUESTION), true),
        other => {
            let why = match other {
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
                Ok(Ok(_)) => "wrong number of vectors".into(),
            };
            tracing::warn!(error = %why, "could not embed unanswered questions; grouping identical ones only");
            let mut groups: Vec<Group> = items
                .into_iter()
                .map(|(q, n)| Group { representative: q, count: n, variants: Vec::new(), variant_count: 0 })
                .collect();
            groups.sort_by_key(|g| std::cmp::Reverse(g.count));
            (groups, false)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct Bar {
    pub x: String,
    pub y: String,
    pub width: String,
    pub height: String,
    pub day: String,
    pub count: usize,
}

/// A bar chart as numbers for the SVG in the template: drawing needs no script.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct Chart {
    pub width: u32,
    pub height: u32,
    /// Where the plot area ends (date labels go below).
    pub baseline: u32,
    pub bars: Vec<Bar>,
    pub max: usize,
    pub first_day: String,
    pub last_day: String,
}

const CHART_WIDTH: u32 = 720;
const CHART_TOP: u32 = 18;
const CHART_PLOT: u32 = 140;
const CHART_HEIGHT: u32 = CHART_TOP + CHART_PLOT + 20;

/// One bar per day from `first` to `last` (days without exchanges are zero).
pub(super) fn chart(per_day: &[(String, usize)], first: NaiveDate, last: NaiveDate) -> Chart {
    let counts: HashMap<&str, usize> = per_day.iter().map(|(d, n)| (d.as_str(), *n)).collect();
    let mut days = Vec::new();
    let mut d = first;
    while d <= last {
        let key = d.format("%Y-%m-%d").to_string();
        let n = counts.get(key.as_str()).copied().unwrap_or(0);
        days.push((key, n));
        d += Duration::days(1);
    }
    let max = days.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let slot = CHART_WIDTH as f32 / days.len().max(1) as f32;
    let bar_width = (slot * 0.8).max(1.0);
    let bars = days
        .iter()
        .enumerate()
        .map(|(i, (day, n))| {
            let h = if max == 0 { 0.0 } else { CHART_PLOT as f32 * *n as f32 / max as f32 };
            Bar {
                x: format!("{:.1}", i as f32 * slot + (slot - bar_width) / 2.0),
                y: format!("{:.1}", (CHART_TOP + CHART_PLOT) as f32 - h),
                width: format!("{bar_width:.1}"),
                height: format!("{h:.1}"),
                day: day.clone(),
                count: *n,
            }
        })
        .collect();
    Chart {
        width: CHART_WIDTH,
        height: CHART_HEIGHT,
        baseline: CHART_TOP + CHART_PLOT,
        bars,
        max,
        first_day: days.first().map(|d| d.0.clone()).unwrap_or_default(),
        last_day: days.last().map(|d| d.0.clone()).unwrap_or_default(),
    }
}

/// `n` as a share of `of`, or a dash when there is nothing to share.
fn percent(n: usize, of: usize) -> String {
    if of == 0 { "–".into() } else { format!("{:.0}%", 100.0 * n as f64 / of as f64) }
}

#[derive(Debug, Serialize)]
struct Figure {
    label: &'static str,
    value: String,
    share: String,
}

#[derive(Debug, Serialize)]
struct DashboardView {
    days: u32,
    periods: [u32; 4],
    since: String,
    figures: Vec<Figure>,
    thumbs_up: usize,
    thumbs_down: usize,
    thumbs_up_rate: String,
    median_latency_ms: u64,
    p95_latency_ms: u64,
    chart: Chart,
    groups: Vec<Group>,
    grouped_by_meaning: bool,
    unanswered: usize,
}

fn figures(s: &Stats) -> Vec<Figure> {
    let f = |label, n: usize| Figure { label, value: n.to_string(), share: percent(n, s.total) };
    vec![
        Figure { label: "questions", value: s.total.to_string(), share: String::new() },
        f("answered", s.answered),
        f("curated", s.curated),
        f("fallback", s.fallback),
        f("abstained", s.abstained),
        f("escalated to a person", s.escalated),
    ]
}

/// GET /dashboard?days=N
pub(super) async fn page(
    State(state): State<AppState>,
    op: Operator,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let days = q.get("days").and_then(|d| d.parse::<u32>().ok()).filter(|d| (1..=366).contains(d)).unwrap_or(30);
    let today = Utc::now().date_naive();
    let first = today - Duration::days(i64::from(days) - 1);
    let since = first.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp()).unwrap_or_default();
    let stats = match state.review.stats(since).await {
        Ok(s) => s,
        Err(e) => return unavailable(&op, "reading statistics", e),
    };
    let embedder = state.answerer.searcher().embedder().clone();
    let (mut groups, grouped_by_meaning) = group_unanswered(embedder, &stats.unanswered).await;
    groups.truncate(SHOWN_GROUPS);
    let view = DashboardView {
        days,
        periods: PERIODS,
        since: first.format("%Y-%m-%d").to_string(),
        figures: figures(&stats),
        thumbs_up: stats.thumbs_up,
        thumbs_down: stats.thumbs_down,
        thumbs_up_rate: percent(stats.thumbs_up, stats.thumbs_up + stats.thumbs_down),
        median_latency_ms: stats.median_latency_ms,
        p95_latency_ms: stats.p95_latency_ms,
        chart: chart(&stats.per_day, first, today),
        groups,
        grouped_by_meaning,
        unanswered: stats.unanswered.len(),
    };
    Page::new("dashboard.html", "dashboard", Some(&op), view).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qs(items: &[(&str, usize)]) -> Vec<(String, usize)> {
        items.iter().map(|(q, n)| (q.to_string(), *n)).collect()
    }

    #[test]
    fn identical_questions_are_counted_once_ignoring_case_and_spacing() {
        let asked: Vec<String> =
            ["Salesforce?", "salesforce? ", "SSO  setup", "sso setup", "salesforce?", " "].map(String::from).to_vec();
        assert_eq!(distinct(&asked), qs(&[("Salesforce?", 3), ("SSO  setup", 2)]));
    }

    #[test]
    fn similar_questions_form_one_group_largest_first() {
        let items = qs(&[("sso a", 1), ("price", 1), ("sso b", 3), ("sso c", 1), ("weather", 2)]);
        let v = vec![
            vec![1.0, 0.1, 0.0],
            vec![0.0, 1.0, 0.0],
            vec![1.0, 0.0, 0.0],
            vec![0.9, 0.2, 0.0],
            vec![0.0, 0.0, 1.0],
        ];
        let groups = cluster(&items, &v, 0.75);
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0].representative, "sso b");
        assert_eq!(groups[0].count, 5);
        assert_eq!(groups[0].variants, vec!["sso a", "sso c"]);
        assert_eq!(groups[0].variant_count, 2);
        assert_eq!((groups[1].representative.as_str(), groups[1].count), ("weather", 2));
        assert_eq!((groups[2].representative.as_str(), groups[2].count), ("price", 1));
    }

    #[test]
    fn the_chart_has_a_bar_per_day_scaled_to_the_busiest() {
        let first = NaiveDate::from_ymd_opt(2026, 1, 30).unwrap();
        let last = NaiveDate::from_ymd_opt(2026, 2, 2).unwrap();
        let c = chart(&[("2026-01-31".into(), 4), ("2026-02-02".into(), 2)], first, last);
        assert_eq!(c.bars.len(), 4);
        assert_eq!(c.max, 4);
        assert_eq!((c.first_day.as_str(), c.last_day.as_str()), ("2026-01-30", "2026-02-02"));
        let heights: Vec<&str> = c.bars.iter().map(|b| b.height.as_str()).collect();
        assert_eq!(heights, vec!["0.0", "140.0", "0.0", "70.0"]);
        assert_eq!(c.bars[1].y, format!("{:.1}", CHART_TOP as f32));
        let empty = chart(&[], first, first);
        assert_eq!((empty.bars.len(), empty.max, empty.bars[0].height.as_str()), (1, 0, "0.0"));
    }

    #[test]
    fn shares_are_percentages() {
        assert_eq!(percent(1, 3), "33%");
        assert_eq!(percent(0, 0), "–");
    }
}
