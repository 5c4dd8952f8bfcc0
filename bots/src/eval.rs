//! `supportbot eval FILE.jsonl`: measures retrieval and answering on a labelled question set.
//! Each line is `{"q": ..., "expect": [citation, ...]}` or `{"q": ..., "unanswerable": true}`,
//! with an optional `"lang"`. Reports hit@1, hit@5 and MRR of the expected citations in search
//! results, how often unanswerable questions abstain and answerable ones wrongly do, whether
//! answers cite an expected source, and whether every citation points at a retrieved passage,
//! broken down by language. `--sweep` shows the relevance gate at other thresholds, which is how
//! `answer.min_relevance` and `answer.min_cjk_overlap` are calibrated. The set and the limits
//! are checked before any question is asked, and expected pages the index lacks are named.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use supportbot_core::answer::{AbstainReason, Answerer, Incoming, Outcome, gate_score};
use supportbot_core::lang::{detect_language, is_cjk_text};
use supportbot_core::search::Searcher;
use supportbot_core::store::{KnowledgeStore, SearchFilter};

/// One labelled question.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub q: String,
    #[serde(default)]
    pub expect: Vec<String>,
    #[serde(default)]
    pub unanswerable: bool,
    #[serde(default)]
    pub lang: Option<String>,
    /// The 1-based line of the question set it came from.
    #[serde(skip)]
    pub line: usize,
    /// The question set it came from, as given.
    #[serde(skip)]
    pub file: String,
}

impl Case {
    /// Whether `citation` is one of the expected ones. An expected citation without `#anchor`
    /// names a whole page: any passage of that page counts.
    pub fn expects(&self, citation: &str) -> bool {
        self.expect
            .iter()
            .any(|e| if e.contains('#') { e == citation } else { citation.split('#').next() == Some(e.as_str()) })
    }

    /// The group the question is counted in: its `lang` (lower case, without a region: `zh-CN`
    /// counts as `zh`), or by its script: `zh`, `ja` or `ko` for CJK text, otherwise `en`.
    pub fn language(&self) -> String {
        match &self.lang {
            Some(lang) => lang.split(['-', '_']).next().unwrap_or(lang).trim().to_lowercase(),
            None if is_cjk_text(&self.q) => detect_language(&self.q),
            None => "en".into(),
        }
    }
}

/// The most entries a list of problems shows (bad lines, unindexed pages).
const LISTED: usize = 10;

/// The first [`LISTED`] of `lines`, then `more(n)` for the `n` left out, if any.
fn first_listed(lines: Vec<String>, more: impl Fn(usize) -> String) -> Vec<String> {
    let left = lines.len().saturating_sub(LISTED);
    let mut shown: Vec<String> = lines.into_iter().take(LISTED).collect();
    if left > 0 {
        shown.push(more(left));
    }
    shown
}

/// Reads question sets (one or several files, one set). Every bad entry is named by its file
/// and line (the first ten, and how many more): a line that is not a JSON object of the known
/// fields, an empty question, one with neither `expect` nor `"unanswerable": true`, or with
/// both. A set without questions is an error too, rather than a report of zeros.
pub fn read_cases(paths: &[impl AsRef<Path>]) -> anyhow::Result<Vec<Case>> {
    let mut cases = Vec::new();
    let mut bad = Vec::new();
    for path in paths {
        read_file(path.as_ref(), &mut cases, &mut bad)?;
    }
    if !bad.is_empty() {
        anyhow::bail!(first_listed(bad, |more| format!("(and {more} more bad lines)")).join("\n"));
    }
    if cases.is_empty() {
        let names: Vec<String> = paths.iter().map(|p| p.as_ref().display().to_string()).collect();
        anyhow::bail!(
            "{} {} no questions (one JSON object per line: {{\"q\": ..., \"expect\": [...]}})",
            names.join(", "),
            if names.len() == 1 { "holds" } else { "hold" }
        );
    }
    Ok(cases)
}

/// The questions of one file into `cases`, its bad lines into `bad`.
fn read_file(path: &Path, cases: &mut Vec<Case>, bad: &mut Vec<String>) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    // Editors on Windows may start the file with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.trim_start().starts_with("//") {
            continue;
        }
        let problem = match serde_json::from_str::<Case>(line) {
            Err(e) => Some(format!("not a question entry: {e}")),
            Ok(case) if case.q.trim().is_empty() => Some("the question `q` is empty".into()),
            Ok(case) if case.unanswerable && !case.expect.is_empty() => {
                Some("`expect` and `\"unanswerable\": true` contradict each other; keep one".into())
            }
            Ok(case) if !case.unanswerable && case.expect.is_empty() => {
                Some("give `expect` citations or `\"unanswerable\": true`".into())
            }
            Ok(case) => {
                cases.push(Case { line: i + 1, file: path.display().to_string(), ..case });
                None
            }
        };
        bad.extend(problem.map(|p| format!("{} line {}: {p}", path.display(), i + 1)));
    }
    Ok(())
}

/// Where a question is, for a person: `line 12`, or `zh.jsonl line 12` when the set spans
/// several files (the file's name only).
fn place(file: &str, line: usize, many_files: bool) -> String {
    if many_files {
        let name = Path::new(file).file_name().map_or(file.into(), |n| n.to_string_lossy());
        format!("{name} line {line}")
    } else {
        format!("line {line}")
    }
}

/// Whether the results come from more than one file.
fn many_files(cases: &[CaseResult]) -> bool {
    cases.iter().any(|c| c.file != cases[0].file)
}

/// Refuses, before any question is asked, a `--report` path that could not be written: its
/// folder missing, or a folder in its place. (An hour of model answers is not lost to a typo.)
pub fn check_writable(path: &Path) -> anyhow::Result<()> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !folder.is_dir() {
        anyhow::bail!("cannot write the report to {}: no folder {}", path.display(), folder.display());
    }
    if path.is_dir() {
        anyhow::bail!("cannot write the report to {}: it is a folder", path.display());
    }
    Ok(())
}

/// An expected citation whose page the index does not hold: its question can only count as a
/// miss (a typo, or a page not ingested).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unindexed {
    pub file: String,
    pub line: usize,
    pub citation: String,
}

/// The expected citations of `cases` whose page (`source`, the part before `#`) is not among
/// `pages`, the sources of the indexed documents that have passages. Anchors are not checked.
pub fn unindexed<'a>(cases: &[Case], pages: impl IntoIterator<Item = &'a str>) -> Vec<Unindexed> {
    let pages: std::collections::HashSet<&str> = pages.into_iter().collect();
    cases
        .iter()
        .flat_map(|c| c.expect.iter().map(move |e| (c, e)))
        .filter(|(_, e)| !pages.contains(e.split('#').next().unwrap_or(e)))
        .map(|(c, e)| Unindexed { file: c.file.clone(), line: c.line, citation: e.clone() })
        .collect()
}

/// The warnings for `unindexed` citations, for a person: one per citation with its file and
/// line, the first ten, then how many more.
pub fn unindexed_warnings(unindexed: &[Unindexed]) -> Vec<String> {
    let each = unindexed.iter().map(|u| {
        format!(
            "eval: warning: {} line {}: the index holds no page {} (a typo, or not ingested?); \
             this question can only count as a miss",
            u.file, u.line, u.citation
        )
    });
    first_listed(each.collect(), |more| {
        format!("eval: warning: and {more} more expected citations naming pages not in the index")
    })
}

/// The pages (sources) of every indexed document that has passages, over all roots.
pub async fn indexed_pages(store: &dyn KnowledgeStore) -> anyhow::Result<Vec<String>> {
    let mut pages = Vec::new();
    for root in store.stats().await?.roots.keys() {
        pages.extend(store.documents(root).await?.into_iter().filter(|d| d.chunks > 0).map(|d| d.source));
    }
    Ok(pages)
}

/// What happened to one question.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// The question set (file) and line the question is on.
    pub file: String,
    pub line: usize,
    pub q: String,
    /// The expected citations (empty for an unanswerable question).
    pub expect: Vec<String>,
    pub lang: String,
    pub unanswerable: bool,
    /// 1-based rank of the first expected citation in the search results (None: not in the top 10).
    pub rank: Option<usize>,
    pub outcome: Outcome,
    /// The answer cites one of the expected citations.
    pub cited_expected: bool,
    /// Every citation of the answer points at a retrieved passage.
    pub citations_valid: bool,
    /// The score the relevance gate compared with its threshold.
    pub gate_score: f32,
    /// Best cosine similarity among the results.
    pub cosine: f32,
    /// Best share of the question's terms found in one of the top passages.
    pub coverage: f32,
    /// Name-like words of the question that no passage contains.
    pub unknown_terms: Vec<String>,
    /// Why no answer could be made, when every backend asked failed (a timeout, a rate limit,
    /// a server down): such a question is counted apart, not as an abstention.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// Where the time of the answer went.
    pub latency: LatencyRecord,
    pub top_citations: Vec<String>,
}

/// Milliseconds of one answer, by stage.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct LatencyRecord {
    pub retrieval: u64,
    /// Prompt building and the citation check.
    pub prompt: u64,
    /// From asking the model chain to its first piece of text (0 when no model was asked).
    pub first_token: u64,
    pub generation: u64,
    pub total: u64,
    /// Everything but the model: total − generation.
    pub outside_model: u64,
}

/// p50 and p95 of one stage.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub p50: u64,
    pub p95: u64,
}

/// Nearest-rank percentile of a list of values.
pub fn percentile(values: &[u64], p: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Figures for one language (or all). A figure over no questions (hit@1 of a group with only
/// unanswerable questions) is `None`: `null` in JSON, `–` in the table.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Metrics {
    pub answerable: usize,
    pub unanswerable: usize,
    /// Questions without an answer because every backend asked failed; they count in no share
    /// below.
    pub failed: usize,
    pub hit_at_1: Option<f64>,
    pub hit_at_5: Option<f64>,
    pub mrr: Option<f64>,
    /// Share of unanswerable questions that abstained.
    pub abstain_unanswerable: Option<f64>,
    /// Share of answerable questions that wrongly abstained.
    pub abstain_answerable: Option<f64>,
    /// Among answered answerable questions: share whose answer cites an expected source.
    pub answer_cites_expected: Option<f64>,
    /// Among all answers with citations: share whose citations all point at retrieved passages.
    pub citation_validity: Option<f64>,
}

/// The names of the figures that are shares (what `--min` and `--max` bound).
const SHARES: [&str; 7] = [
    "hit_at_1",
    "hit_at_5",
    "mrr",
    "abstain_unanswerable",
    "abstain_answerable",
    "answer_cites_expected",
    "citation_validity",
];

fn share(n: usize, d: usize) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

pub fn metrics<'a>(results: impl IntoIterator<Item = &'a CaseResult>) -> Metrics {
    let results: Vec<&CaseResult> = results.into_iter().collect();
    let answerable: Vec<&&CaseResult> = results.iter().filter(|r| !r.unanswerable).collect();
    let unanswerable: Vec<&&CaseResult> = results.iter().filter(|r| r.unanswerable).collect();
    // Retrieval is measured on every question; what the answer did, only where one was made.
    let (answerable_run, unanswerable_run): (Vec<&&CaseResult>, Vec<&&CaseResult>) =
        results.iter().filter(|r| r.failed.is_none()).partition(|r| !r.unanswerable);
    let answered: Vec<&&CaseResult> =
        answerable_run.iter().copied().filter(|r| r.outcome != Outcome::Abstained).collect();
    let with_citations: Vec<&&CaseResult> = results.iter().filter(|r| r.outcome != Outcome::Abstained).collect();
    Metrics {
        answerable: answerable.len(),
        unanswerable: unanswerable.len(),
        failed: results.iter().filter(|r| r.failed.is_some()).count(),
        hit_at_1: share(answerable.iter().filter(|r| r.rank == Some(1)).count(), answerable.len()),
        hit_at_5: share(answerable.iter().filter(|r| r.rank.is_some_and(|k| k <= 5)).count(), answerable.len()),
        mrr: (!answerable.is_empty()).then(|| {
            answerable.iter().map(|r| r.rank.map_or(0.0, |k| 1.0 / k as f64)).sum::<f64>() / answerable.len() as f64
        }),
        abstain_unanswerable: share(
            unanswerable_run.iter().filter(|r| r.outcome == Outcome::Abstained).count(),
            unanswerable_run.len(),
        ),
        abstain_answerable: share(
            answerable_run.iter().filter(|r| r.outcome == Outcome::Abstained).count(),
            answerable_run.len(),
        ),
        answer_cites_expected: share(answered.iter().filter(|r| r.cited_expected).count(), answered.len()),
        citation_validity: share(with_citations.iter().filter(|r| r.citations_valid).count(), with_citations.len()),
    }
}

/// One bound on a figure: `SCOPE.METRIC=VALUE`.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    /// As given, for messages.
    pub text: String,
    /// `overall` or a language.
    pub scope: String,
    pub metric: String,
    pub bound: f64,
    /// A floor (`--min`) or a ceiling (`--max`).
    pub floor: bool,
}

/// The counts a limit may also bound (`overall.failed=0`).
const COUNTS: [&str; 3] = ["answerable", "unanswerable", "failed"];

/// Parses floors (`min`) and ceilings (`max`) written `SCOPE.METRIC=VALUE` (`en.hit_at_5=0.95`,
/// `overall.abstain_answerable=0.05`) for the question set `cases`, before any question is
/// asked. An error: a malformed limit, an unknown metric, a share bounded outside 0–1, a
/// language none of the questions is in, or a figure the set cannot measure (hit@5 of a
/// language with only unanswerable questions).
pub fn parse_limits(min: &[String], max: &[String], cases: &[Case]) -> anyhow::Result<Vec<Limit>> {
    let mut languages: Vec<String> = cases.iter().map(Case::language).collect();
    languages.sort();
    languages.dedup();
    let names: Vec<&str> = SHARES.iter().chain(&COUNTS).copied().collect();
    let mut limits = Vec::new();
    for (given, floor) in min.iter().map(|l| (l, true)).chain(max.iter().map(|l| (l, false))) {
        let malformed = || format!("limit {given:?}: expected SCOPE.METRIC=VALUE");
        let (key, value) = given.split_once('=').with_context(malformed)?;
        let (scope, metric) = key.split_once('.').with_context(malformed)?;
        let (scope, metric) = (scope.trim(), metric.trim());
        let bound: f64 = value.trim().parse().with_context(|| format!("limit {given:?}: {value:?} is not a number"))?;
        if !names.contains(&metric) {
            anyhow::bail!("limit {given:?}: unknown metric {metric:?} (have: {})", names.join(", "));
        }
        if SHARES.contains(&metric) && !(0.0..=1.0).contains(&bound) {
            anyhow::bail!("limit {given:?}: {metric} is a share from 0 to 1 (0.95, not 95)");
        }
        if !bound.is_finite() || bound < 0.0 {
            anyhow::bail!("limit {given:?}: {value:?} is not a count");
        }
        if scope != "overall" && !languages.iter().any(|l| l == scope) {
            anyhow::bail!(
                "limit {given:?}: no questions in language {scope:?} (have: overall, {})",
                languages.join(", ")
            );
        }
        let in_scope = || cases.iter().filter(|c| scope == "overall" || c.language() == scope);
        let needs = match metric {
            "abstain_unanswerable" => Some((true, "unanswerable")),
            "hit_at_1" | "hit_at_5" | "mrr" | "abstain_answerable" | "answer_cites_expected" => {
                Some((false, "answerable"))
            }
            _ => None,
        };
        if let Some((unanswerable, kind)) = needs
            && !in_scope().any(|c| c.unanswerable == unanswerable)
        {
            anyhow::bail!("limit {given:?}: {scope} has no {kind} questions to measure {metric} on");
        }
        limits.push(Limit { text: given.clone(), scope: scope.into(), metric: metric.into(), bound, floor });
    }
    Ok(limits)
}

/// Checks the report against `limits` (from [`parse_limits`]). Returns what is out of bounds,
/// a figure that could not be measured, and, when there are limits at all, questions whose
/// answer failed: a gate must not pass on a run whose model was down.
pub fn check_limits(report: &Report, limits: &[Limit]) -> anyhow::Result<Vec<String>> {
    let mut failures = Vec::new();
    if !limits.is_empty() && report.overall.failed > 0 {
        failures.push(failed_summary(report));
    }
    for limit in limits {
        let Limit { text, scope, metric, bound, floor } = limit;
        let metrics = if scope == "overall" {
            &report.overall
        } else {
            report.by_language.get(scope).with_context(|| {
                format!("limit {text:?}: no questions in language {scope:?} (have: overall, {})", {
                    report.by_language.keys().cloned().collect::<Vec<_>>().join(", ")
                })
            })?
        };
        let value = serde_json::to_value(metrics)?;
        let value = value.get(metric).with_context(|| format!("limit {text:?}: unknown metric {metric:?}"))?;
        let Some(actual) = value.as_f64() else {
            failures.push(format!("{scope}.{metric}: no questions to measure it on (no answers with citations?)"));
            continue;
        };
        if (*floor && actual < *bound) || (!*floor && actual > *bound) {
            let relation = if *floor { "below the floor" } else { "above the ceiling" };
            failures.push(format!("{scope}.{metric} = {actual:.3}, {relation} {bound}"));
        }
    }
    Ok(failures)
}

/// How many questions got no answer because every backend failed, and the first reason.
pub fn failed_summary(report: &Report) -> String {
    let failed: Vec<&CaseResult> = report.cases.iter().filter(|c| c.failed.is_some()).collect();
    let first = failed.first().map_or(String::new(), |c| {
        format!(
            " (first: {}: {})",
            place(&c.file, c.line, many_files(&report.cases)),
            c.failed.as_deref().unwrap_or_default()
        )
    });
    format!(
        "{} of {} questions got no answer because every backend asked failed{first}; \
         they count in no share of answers",
        failed.len(),
        report.cases.len()
    )
}

/// A latency stage: its name and how to read it from a record.
type Stage = (&'static str, fn(&LatencyRecord) -> u64);

/// The full report: overall and per language.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub overall: Metrics,
    /// Latency by stage over the questions a model was asked (answered or fallback).
    pub latency_ms: BTreeMap<String, Percentiles>,
    pub by_language: BTreeMap<String, Metrics>,
    /// Expected citations naming a page the index does not hold.
    pub unindexed: Vec<Unindexed>,
    pub cases: Vec<CaseResult>,
}

pub fn report(cases: Vec<CaseResult>, unindexed: Vec<Unindexed>) -> Report {
    let mut langs: BTreeMap<String, Vec<&CaseResult>> = BTreeMap::new();
    for c in &cases {
        langs.entry(c.lang.clone()).or_default().push(c);
    }
    let by_language = langs.into_iter().map(|(l, rs)| (l, metrics(rs))).collect();
    let generated: Vec<&LatencyRecord> = cases
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Answered | Outcome::Fallback))
        .map(|c| &c.latency)
        .collect();
    let stages: [Stage; 6] = [
        ("retrieval", |l| l.retrieval),
        ("prompt", |l| l.prompt),
        ("first_token", |l| l.first_token),
        ("generation", |l| l.generation),
        ("total", |l| l.total),
        ("outside_model", |l| l.outside_model),
    ];
    let latency_ms = stages
        .iter()
        .map(|(name, f)| {
            let values: Vec<u64> = generated.iter().map(|l| f(l)).collect();
            (name.to_string(), Percentiles { p50: percentile(&values, 50.0), p95: percentile(&values, 95.0) })
        })
        .collect();
    Report { overall: metrics(&cases), latency_ms, by_language, unindexed, cases }
}

/// 1-based rank of the first expected citation among the results. When every expectation
/// names a whole page, the results are counted by page (several passages of one page are one
/// rank), as page-level relevance is usually measured.
pub fn rank_of_expected(case: &Case, citations: &[String]) -> Option<usize> {
    if case.expect.iter().all(|e| !e.contains('#')) {
        let mut pages: Vec<&str> = Vec::new();
        for c in citations {
            let page = c.split('#').next().unwrap_or(c);
            if !pages.contains(&page) {
                pages.push(page);
            }
        }
        pages.iter().position(|p| case.expects(p)).map(|p| p + 1)
    } else {
        citations.iter().position(|c| case.expects(c)).map(|p| p + 1)
    }
}

/// Runs every case: a search for the retrieval figures, then a full answer. A progress bar on
/// stderr (drawn only on a terminal) counts the questions and keeps the running hit@1 and
/// abstentions, since a model backend takes seconds per question.
pub async fn run(
    cases: &[Case],
    searcher: &Searcher,
    answerer: &Answerer,
    backend: Option<&str>,
    max_passages: usize,
) -> anyhow::Result<Vec<CaseResult>> {
    let mut out: Vec<CaseResult> = Vec::with_capacity(cases.len());
    let bar = ProgressBar::new(cases.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("eval [{bar:20}] {pos}/{len} questions, {msg}, eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    for (i, case) in cases.iter().enumerate() {
        let results = searcher.search(&case.q, Some(10), &SearchFilter::default()).await?;
        let citations: Vec<String> = results.iter().map(|r| r.chunk.citation()).collect();
        let rank = rank_of_expected(case, &citations);
        let score = gate_score(&case.q, &results, max_passages);
        let cosine = results.iter().filter_map(|r| r.dense_score).fold(0.0, f32::max);
        let coverage = results
            .iter()
            .take(max_passages)
            .map(|r| supportbot_core::answer::gate::lexical_coverage(&case.q, &r.chunk.text))
            .fold(0.0, f32::max);
        let mut unknown_terms = Vec::new();
        for term in supportbot_core::answer::gate::name_like_terms(&case.q) {
            if !searcher.has_term(&term).await? {
                unknown_terms.push(term);
            }
        }
        // A fresh conversation per question: no follow-up context leaks between cases.
        let answer = answerer.answer(&Incoming::new("eval", &format!("eval-{i}"), "eval", &case.q), backend).await;
        // A citation is valid when it names a retrieved passage, or the page a retrieved curated
        // answer rests on (which it cites instead of itself).
        let mut retrieved: Vec<&str> = answer.passages.iter().map(|p| p.citation.as_str()).collect();
        retrieved.extend(
            results
                .iter()
                .filter(|r| retrieved.contains(&r.chunk.citation().as_str()))
                .filter_map(|r| r.chunk.cites.as_deref())
                .collect::<Vec<_>>(),
        );
        let failed = (answer.abstain_reason == Some(AbstainReason::Error)).then(|| {
            let reasons: Vec<String> = answer.failures.iter().map(|f| format!("{}: {}", f.backend, f.error)).collect();
            if reasons.is_empty() { "an internal error (see the log)".to_string() } else { reasons.join("; ") }
        });
        out.push(CaseResult {
            file: case.file.clone(),
            line: case.line,
            q: case.q.clone(),
            expect: case.expect.clone(),
            lang: case.language(),
            unanswerable: case.unanswerable,
            rank,
            outcome: answer.outcome,
            cited_expected: answer.citations.iter().any(|c| case.expects(&c.citation)),
            citations_valid: answer.citations.iter().all(|c| retrieved.contains(&c.citation.as_str())),
            gate_score: score,
            cosine,
            coverage,
            unknown_terms,
            failed,
            latency: LatencyRecord {
                retrieval: answer.latency.retrieval,
                prompt: answer.latency.prompt,
                first_token: answer.latency.first_token.unwrap_or(0),
                generation: answer.latency.generation,
                total: answer.latency.total,
                outside_model: answer.latency.total.saturating_sub(answer.latency.generation),
            },
            top_citations: citations.into_iter().take(5).collect(),
        });
        bar.set_message(running_figures(&out));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// The figures so far, for the progress bar: "hit@1 0.74, 3 abstained".
fn running_figures(results: &[CaseResult]) -> String {
    let answerable = results.iter().filter(|r| !r.unanswerable).count();
    let first = results.iter().filter(|r| !r.unanswerable && r.rank == Some(1)).count();
    let abstained = results.iter().filter(|r| r.outcome == Outcome::Abstained && r.failed.is_none()).count();
    let failed = results.iter().filter(|r| r.failed.is_some()).count();
    let hit = if answerable == 0 { String::new() } else { format!("hit@1 {:.2}, ", first as f64 / answerable as f64) };
    let failed = if failed == 0 { String::new() } else { format!(", {failed} failed") };
    format!("{hit}{abstained} abstained{failed}")
}

pub fn print_table(r: &Report) {
    println!(
        "{:<8} {:>5} {:>5} {:>6} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "lang", "ans", "unans", "hit@1", "hit@5", "MRR", "abst(un)", "abst(ans)", "cites-exp", "cit-valid"
    );
    let row = |name: &str, m: &Metrics| {
        let f = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.2}"));
        println!(
            "{:<8} {:>5} {:>5} {:>6} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9}",
            name,
            m.answerable,
            m.unanswerable,
            f(m.hit_at_1),
            f(m.hit_at_5),
            f(m.mrr),
            f(m.abstain_unanswerable),
            f(m.abstain_answerable),
            f(m.answer_cites_expected),
            f(m.citation_validity)
        )
    };
    for (lang, m) in &r.by_language {
        row(lang, m);
    }
    row("all", &r.overall);
    if r.overall.failed > 0 {
        println!();
        println!("{}", failed_summary(r));
    }
    if !r.latency_ms.is_empty() {
        println!();
        println!("latency of model answers (ms): stage p50/p95");
        let line: Vec<String> = ["retrieval", "prompt", "first_token", "generation", "total", "outside_model"]
            .iter()
            .filter_map(|k| r.latency_ms.get(*k).map(|p| format!("{k} {}/{}", p.p50, p.p95)))
            .collect();
        println!("  {}", line.join(", "));
    }
}

/// The questions to look at, for a person: answerable ones whose expected page is not first
/// (with its rank and what came first), answerable ones that abstained, and unanswerable ones
/// that were answered. Each names its line in the question set.
pub fn misses(r: &Report) -> String {
    let mut out = String::new();
    let many = many_files(&r.cases);
    let clip = |q: &str| {
        let q: String = q.chars().take(100).collect();
        if q.chars().count() < 100 { q } else { format!("{q}…") }
    };
    let section = |out: &mut String, title: &str, cases: Vec<&CaseResult>, detail: &dyn Fn(&CaseResult) -> String| {
        out.push_str(&format!("{title}: {}\n", cases.len()));
        for c in cases {
            let at = place(&c.file, c.line, many);
            out.push_str(&format!("  {at} [{}] {}\n      {}\n", c.lang, clip(&c.q), detail(c)));
        }
    };
    let first = |c: &CaseResult| c.top_citations.first().map_or("nothing".to_string(), |f| f.clone());
    let answerable = || r.cases.iter().filter(|c| !c.unanswerable);
    section(&mut out, "expected page not first", answerable().filter(|c| c.rank != Some(1)).collect(), &|c| {
        let rank = c.rank.map_or("not in the top 10".to_string(), |k| format!("rank {k}"));
        format!("{rank}; expected {}; first: {}", c.expect.join(", "), first(c))
    });
    section(
        &mut out,
        "answerable but abstained",
        answerable().filter(|c| c.outcome == Outcome::Abstained && c.failed.is_none()).collect(),
        &|c| format!("gate score {:.2}", c.gate_score),
    );
    let failed: Vec<&CaseResult> = r.cases.iter().filter(|c| c.failed.is_some()).collect();
    if !failed.is_empty() {
        section(&mut out, "no answer: every backend asked failed", failed, &|c| c.failed.clone().unwrap_or_default());
    }
    section(
        &mut out,
        "unanswerable but answered",
        r.cases.iter().filter(|c| c.unanswerable && c.outcome != Outcome::Abstained).collect(),
        &|c| format!("gate score {:.2}; first: {}", c.gate_score, first(c)),
    );
    out
}

/// A report written earlier (`--report`, `--json`), as far as `--baseline` reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct Baseline {
    pub overall: Metrics,
    #[serde(default)]
    pub by_language: BTreeMap<String, Metrics>,
    pub cases: Vec<BaselineCase>,
}

/// One question of a [`Baseline`].
#[derive(Debug, Clone, Deserialize)]
pub struct BaselineCase {
    pub q: String,
    pub unanswerable: bool,
    pub rank: Option<usize>,
    pub outcome: Outcome,
}

/// Reads a report written by an earlier `supportbot eval --report FILE` (or `--json`).
pub fn read_baseline(path: &Path) -> anyhow::Result<Baseline> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the baseline {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!("{}: not an eval report (one written by `supportbot eval --report FILE` or --json)", path.display())
    })
}

/// Whether the question was handled as it should be: answerable ones answered, unanswerable
/// ones abstained.
fn abstention_right(unanswerable: bool, outcome: Outcome) -> bool {
    unanswerable == (outcome == Outcome::Abstained)
}

/// What changed against `base`, for a person: every figure with its change, then the questions
/// (matched by their text) ranked higher or lower, and those whose abstention became right or
/// wrong, each with its line.
pub fn compare(r: &Report, base: &Baseline) -> String {
    let mut out = String::from("against the baseline: now (change)\n");
    out.push_str(&format!(
        "{:<8} {:>13} {:>13} {:>13} {:>13} {:>13}\n",
        "lang", "hit@1", "hit@5", "MRR", "abst(un)", "abst(ans)"
    ));
    let cell = |now: Option<f64>, was: Option<f64>| match (now, was) {
        // A change that rounds to nothing shows as +0.00, never -0.00 (a figure read back from
        // JSON may differ from the same one computed by its last bit).
        (Some(now), Some(was)) => format!("{now:.2} ({:+.2})", if (now - was).abs() < 0.005 { 0.0 } else { now - was }),
        (Some(now), None) => format!("{now:.2} (new)"),
        (None, _) => "–".to_string(),
    };
    let row = |out: &mut String, name: &str, m: &Metrics, b: Option<&Metrics>| {
        let f = |get: fn(&Metrics) -> Option<f64>| cell(get(m), b.and_then(get));
        out.push_str(&format!(
            "{:<8} {:>13} {:>13} {:>13} {:>13} {:>13}\n",
            name,
            f(|m| m.hit_at_1),
            f(|m| m.hit_at_5),
            f(|m| m.mrr),
            f(|m| m.abstain_unanswerable),
            f(|m| m.abstain_answerable)
        ));
    };
    for (lang, m) in &r.by_language {
        row(&mut out, lang, m, base.by_language.get(lang));
    }
    row(&mut out, "all", &r.overall, Some(&base.overall));

    // Questions are matched by their text and, for a text asked more than once, by which
    // occurrence it is.
    let before: std::collections::HashMap<(&str, usize), &BaselineCase> =
        occurrences(base.cases.iter().map(|c| c.q.as_str())).zip(&base.cases).collect();
    let rank = |k: Option<usize>| k.map_or("-".to_string(), |k| k.to_string());
    let many = many_files(&r.cases);
    // A question not in the top 10 ranks below every one that is.
    let depth = |k: Option<usize>| k.unwrap_or(usize::MAX);
    let (mut higher, mut lower, mut right, mut wrong, mut new) = (vec![], vec![], vec![], vec![], 0);
    let keys: Vec<(&str, usize)> = occurrences(r.cases.iter().map(|c| c.q.as_str())).collect();
    for (c, key) in r.cases.iter().zip(&keys) {
        let Some(b) = before.get(key) else {
            new += 1;
            continue;
        };
        let at = place(&c.file, c.line, many);
        let line = format!("  {at} [{}] {} → {}  {}", c.lang, rank(b.rank), rank(c.rank), c.q);
        if !c.unanswerable && depth(c.rank) < depth(b.rank) {
            higher.push(line);
        } else if !c.unanswerable && depth(c.rank) > depth(b.rank) {
            lower.push(line);
        }
        let (was, now) = (abstention_right(b.unanswerable, b.outcome), abstention_right(c.unanswerable, c.outcome));
        if was != now {
            let kind = if c.unanswerable { "unanswerable" } else { "answerable" };
            let outcome = |o: Outcome| serde_json::to_value(o).ok().and_then(|v| v.as_str().map(String::from));
            let entry = format!(
                "  {at} [{}] {kind}: {} → {}  {}",
                c.lang,
                outcome(b.outcome).unwrap_or_default(),
                outcome(c.outcome).unwrap_or_default(),
                c.q
            );
            if now { right.push(entry) } else { wrong.push(entry) }
        }
    }
    let now: std::collections::HashSet<&(&str, usize)> = keys.iter().collect();
    let gone = before.keys().filter(|k| !now.contains(k)).count();
    out.push_str(&format!(
        "questions: {} ranked higher, {} lower; abstention now right on {}, now wrong on {}; \
         {new} not in the baseline, {gone} of the baseline not asked\n",
        higher.len(),
        lower.len(),
        right.len(),
        wrong.len()
    ));
    for (title, lines) in [
        ("ranked higher (rank before → now)", higher),
        ("ranked lower", lower),
        ("abstention now right", right),
        ("abstention now wrong", wrong),
    ] {
        if !lines.is_empty() {
            out.push_str(&format!("{title}:\n{}\n", lines.join("\n")));
        }
    }
    out
}

/// Each text with how many times it came before: `a, b, a` → `(a, 0), (b, 0), (a, 1)`.
fn occurrences<'a>(texts: impl Iterator<Item = &'a str>) -> impl Iterator<Item = (&'a str, usize)> {
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    texts.map(move |t| {
        let n = seen.entry(t).or_default();
        *n += 1;
        (t, *n - 1)
    })
}

/// Abstention shares if the gate threshold were `t`, per script group: (threshold,
/// unanswerable abstaining, answerable abstaining).
pub fn sweep(results: &[CaseResult], cjk: bool) -> Vec<(f32, f64, f64)> {
    let group: Vec<&CaseResult> = results.iter().filter(|r| is_cjk_text(&r.q) == cjk).collect();
    let (un, an): (Vec<&&CaseResult>, Vec<&&CaseResult>) = group.iter().partition(|r| r.unanswerable);
    (0..=40)
        .map(|i| 0.1 + i as f32 * 0.02)
        .map(|t| {
            (
                t,
                share(un.iter().filter(|r| r.gate_score < t).count(), un.len()).unwrap_or(0.0),
                share(an.iter().filter(|r| r.gate_score < t).count(), an.len()).unwrap_or(0.0),
            )
        })
        .collect()
}

pub fn print_sweep(results: &[CaseResult]) {
    for (cjk, key) in [(false, "answer.min_relevance (cosine)"), (true, "answer.min_cjk_overlap (character coverage)")]
    {
        let rows = sweep(results, cjk);
        if rows.iter().all(|(_, u, a)| *u == 0.0 && *a == 0.0) {
            continue;
        }
        println!();
        println!("{key}: threshold → abstaining unanswerable / answerable");
        for (t, u, a) in rows {
            println!("  {t:.2}  {u:>5.2}  {a:>5.2}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_flag_figures_out_of_bounds_and_reject_unknown_names() {
        let rep = report(
            vec![
                result(false, Some(1), Outcome::Answered),
                result(false, Some(7), Outcome::Abstained),
                result(true, None, Outcome::Abstained),
            ],
            Vec::new(),
        );
        let strs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases = [
            Case {
                q: "how do I print?".into(),
                expect: vec![],
                unanswerable: true,
                lang: None,
                line: 1,
                file: String::new(),
            },
            Case {
                q: "how do I save?".into(),
                expect: vec!["p.html".into()],
                unanswerable: false,
                lang: None,
                line: 2,
                file: String::new(),
            },
        ];
        let check = |min: &[&str], max: &[&str]| check_limits(&rep, &parse_limits(&strs(min), &strs(max), &cases)?);
        let ok = check(&["en.hit_at_1=0.5", "overall.abstain_unanswerable=1"], &[]).unwrap();
        assert!(ok.is_empty(), "{ok:?}");
        let failed = check(&["en.hit_at_5=0.9"], &["overall.abstain_answerable=0.05"]).unwrap();
        assert_eq!(failed.len(), 2, "{failed:?}");
        assert!(failed[0].contains("en.hit_at_5 = 0.500, below the floor 0.9"), "{failed:?}");
        // Malformed limits, unknown metrics and languages without questions are refused before
        // any question is asked.
        let parse_error = |l: &str| parse_limits(&strs(&[l]), &[], &cases).unwrap_err().to_string();
        assert!(parse_error("fr.hit_at_5=0.9").contains("no questions in language \"fr\" (have: overall, en)"));
        assert!(
            parse_error("en.hit_at_9=0.9").contains("unknown metric \"hit_at_9\""),
            "{}",
            parse_error("en.hit_at_9=0.9")
        );
        assert!(parse_error("en.hit_at_5").contains("SCOPE.METRIC=VALUE"));
        assert!(parse_error("en.hit_at_5=high").contains("not a number"));
        assert!(parse_error("en.hit_at_5=95").contains("hit_at_5 is a share from 0 to 1 (0.95, not 95)"));
        assert!(parse_error("en.hit_at_5=NaN").contains("share from 0 to 1"), "a NaN floor would never fail");
        assert!(parse_error("overall.failed=-1").contains("not a count"));
        let spaced = parse_limits(&strs(&["en. hit_at_5 =0.9"]), &[], &cases).unwrap();
        assert_eq!((spaced[0].scope.as_str(), spaced[0].metric.as_str(), spaced[0].bound), ("en", "hit_at_5", 0.9));
    }

    #[test]
    fn the_progress_bar_keeps_the_running_hit_rate_and_abstentions() {
        let so_far = [
            result(false, Some(1), Outcome::Answered),
            result(false, Some(3), Outcome::Answered),
            result(true, None, Outcome::Abstained),
        ];
        assert_eq!(running_figures(&so_far), "hit@1 0.50, 1 abstained");
        assert_eq!(running_figures(&so_far[2..]), "1 abstained", "no hit rate before an answerable question");
    }

    #[test]
    fn page_level_expectations_match_any_anchor_of_the_page() {
        let case = Case {
            q: "q".into(),
            expect: vec!["en-US/text/a.html".into(), "docs/b.md#setup".into()],
            unanswerable: false,
            lang: None,
            line: 1,
            file: String::new(),
        };
        assert!(case.expects("en-US/text/a.html#hd_id1"));
        assert!(case.expects("en-US/text/a.html"));
        assert!(!case.expects("en-US/text/a.html.bak#x"));
        assert!(case.expects("docs/b.md#setup"));
        assert!(!case.expects("docs/b.md#other"), "an anchored expectation stays exact");
        let page_case = Case { expect: vec!["p/c.html".into()], ..case.clone() };
        let results: Vec<String> = ["p/a.html#1", "p/a.html#2", "p/b.html", "p/c.html#x"].map(String::from).to_vec();
        assert_eq!(rank_of_expected(&page_case, &results), Some(3), "pages are ranked, not passages");
    }

    fn result(unanswerable: bool, rank: Option<usize>, outcome: Outcome) -> CaseResult {
        CaseResult {
            file: "set.jsonl".into(),
            line: 1,
            q: "q".into(),
            expect: if unanswerable { vec![] } else { vec!["p.html".into()] },
            lang: "en".into(),
            unanswerable,
            rank,
            outcome,
            cited_expected: rank == Some(1),
            citations_valid: true,
            gate_score: if unanswerable { 0.2 } else { 0.6 },
            cosine: 0.0,
            coverage: 0.0,
            unknown_terms: vec![],
            failed: None,
            latency: LatencyRecord::default(),
            top_citations: vec![],
        }
    }

    #[test]
    fn answers_that_failed_count_apart_and_fail_a_gate() {
        let mut down = result(true, None, Outcome::Abstained);
        down.line = 4;
        down.failed = Some("gemini: 429 Too Many Requests".into());
        let mut down_too = result(false, Some(1), Outcome::Abstained);
        down_too.failed = down.failed.clone();
        let rep = report(vec![result(true, None, Outcome::Abstained), down, down_too], vec![]);
        let m = &rep.overall;
        assert_eq!(m.failed, 2);
        assert_eq!(m.hit_at_1, Some(1.0), "retrieval is measured on every question");
        assert_eq!(m.abstain_unanswerable, Some(1.0), "of the one question whose answer was made");
        assert_eq!(m.abstain_answerable, None, "no answerable question got an answer made");
        let none = parse_limits(&[], &[], &[]).unwrap();
        assert!(check_limits(&rep, &none).unwrap().is_empty(), "no limits, no gate");
        let cases =
            [Case { q: "q".into(), expect: vec![], unanswerable: true, lang: None, line: 1, file: String::new() }];
        let gate = parse_limits(&["overall.abstain_unanswerable=0.9".into()], &[], &cases).unwrap();
        let failures = check_limits(&rep, &gate).unwrap();
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(
            failures[0].starts_with(
                "2 of 3 questions got no answer because every backend asked failed \
                 (first: line 4: gemini: 429 Too Many Requests)"
            ),
            "{failures:?}"
        );
        assert!(misses(&rep).contains("no answer: every backend asked failed: 2\n  line 4 "), "{}", misses(&rep));
    }

    #[test]
    fn a_figure_over_no_questions_is_absent_and_cannot_be_bounded() {
        let rep = report(vec![result(true, None, Outcome::Abstained)], vec![]);
        assert_eq!(rep.overall.hit_at_1, None);
        assert_eq!(serde_json::to_value(&rep.overall).unwrap()["mrr"], serde_json::Value::Null);
        let only_unanswerable =
            [Case { q: "q".into(), expect: vec![], unanswerable: true, lang: None, line: 1, file: String::new() }];
        let err = parse_limits(&["en.hit_at_5=0.9".into()], &[], &only_unanswerable).unwrap_err().to_string();
        assert!(err.contains("en has no answerable questions to measure hit_at_5 on"), "{err}");
        // Every answer abstained: no answers with citations to judge.
        let gate = parse_limits(&["overall.citation_validity=1".into()], &[], &only_unanswerable).unwrap();
        let failures = check_limits(&rep, &gate).unwrap();
        assert_eq!(failures, ["overall.citation_validity: no questions to measure it on (no answers with citations?)"]);
    }

    #[test]
    fn questions_are_grouped_by_their_language() {
        let case = |q: &str, lang: Option<&str>| Case {
            q: q.into(),
            expect: vec!["p".into()],
            unanswerable: false,
            lang: lang.map(String::from),
            line: 1,
            file: String::new(),
        };
        assert_eq!(case("如何重置密码？", None).language(), "zh");
        assert_eq!(case("パスワードをリセットするには？", None).language(), "ja");
        assert_eq!(case("비밀번호를 재설정하려면?", None).language(), "ko");
        assert_eq!(case("how do I reset my password?", None).language(), "en");
        assert_eq!(case("如何重置密码？", Some("zh-CN")).language(), "zh", "a region counts as its language");
        assert_eq!(case("Wie setze ich mein Passwort zurück?", Some("DE")).language(), "de");
    }

    #[test]
    fn misses_list_the_questions_to_look_at_with_their_lines() {
        let mut second = result(false, Some(3), Outcome::Answered);
        second.line = 7;
        second.top_citations = vec!["other.html#a".into(), "p.html#b".into()];
        let mut missing = result(false, None, Outcome::Abstained);
        missing.line = 9;
        let mut leaked = result(true, None, Outcome::Answered);
        leaked.line = 12;
        leaked.top_citations = vec!["x.html".into()];
        let rep = report(vec![result(false, Some(1), Outcome::Answered), second, missing, leaked], vec![]);
        let text = misses(&rep);
        assert!(text.contains("expected page not first: 2\n"), "{text}");
        assert!(text.contains("line 7 [en] q\n      rank 3; expected p.html; first: other.html#a"), "{text}");
        assert!(text.contains("line 9 [en] q\n      not in the top 10; expected p.html; first: nothing"), "{text}");
        assert!(text.contains("answerable but abstained: 1\n  line 9 "), "{text}");
        assert!(text.contains("unanswerable but answered: 1\n  line 12 [en] q\n      gate score 0.20; first: x.html"));
        assert!(!text.contains("line 1 "), "a question answered right is not listed: {text}");
    }

    #[test]
    fn a_baseline_comparison_shows_figure_changes_and_the_questions_that_moved() {
        let case = |q: &str, unanswerable: bool, rank: Option<usize>, outcome: Outcome| CaseResult {
            q: q.into(),
            ..result(unanswerable, rank, outcome)
        };
        let before = report(
            vec![
                case("up", false, Some(3), Outcome::Answered),
                case("down", false, Some(1), Outcome::Answered),
                case("same", false, Some(2), Outcome::Answered),
                case("found", false, None, Outcome::Abstained),
                case("leak", true, None, Outcome::Abstained),
                case("dropped", false, Some(1), Outcome::Answered),
            ],
            vec![],
        );
        // Written and read back as a user would (`--report`, then `--baseline`).
        let base: Baseline = serde_json::from_value(serde_json::to_value(&before).unwrap()).unwrap();
        let mut now = vec![
            case("up", false, Some(1), Outcome::Answered),
            case("down", false, Some(4), Outcome::Answered),
            case("same", false, Some(2), Outcome::Answered),
            case("found", false, Some(5), Outcome::Answered),
            case("leak", true, None, Outcome::Answered),
            case("added", false, Some(1), Outcome::Answered),
        ];
        for (i, c) in now.iter_mut().enumerate() {
            c.line = i + 1;
        }
        let text = compare(&report(now, vec![]), &base);
        assert!(
            text.contains(
                "questions: 2 ranked higher, 1 lower; abstention now right on 1, now wrong on 1; \
                           1 not in the baseline, 1 of the baseline not asked"
            ),
            "{text}"
        );
        assert!(
            text.contains("ranked higher (rank before → now):\n  line 1 [en] 3 → 1  up\n  line 4 [en] - → 5  found")
        );
        assert!(text.contains("ranked lower:\n  line 2 [en] 1 → 4  down\n"), "{text}");
        assert!(text.contains("abstention now right:\n  line 4 [en] answerable: abstained → answered  found"));
        assert!(text.contains("abstention now wrong:\n  line 5 [en] unanswerable: abstained → answered  leak"));
        assert!(!text.contains("same"), "an unchanged question is not listed: {text}");
        // hit@1: 2 of 5 answerable before (down, dropped), 2 of 5 now (up, added); hit@5: 4 of
        // 5 before, 5 of 5 now; unanswerable abstaining: 1.00 before, 0.00 now.
        let all = text.lines().find(|l| l.starts_with("all ")).expect("an `all` row");
        let cells: Vec<&str> = all.split(')').map(|c| c.trim()).collect();
        assert_eq!(&cells[..2], ["all       0.40 (+0.00", "1.00 (+0.20"], "{text}");
        assert_eq!(cells[3], "0.00 (-1.00", "{text}");
        // Something that is not a report is refused with its name.
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("r.json");
        std::fs::write(&f, "{\"hit_at_1\": 0.5}").unwrap();
        assert!(read_baseline(&f).unwrap_err().to_string().contains("not an eval report"));
    }

    #[test]
    fn a_question_asked_twice_is_compared_with_the_same_occurrence() {
        let case = |rank: Option<usize>| CaseResult { q: "twice".into(), ..result(false, rank, Outcome::Answered) };
        let before = report(vec![case(Some(1)), case(Some(5))], vec![]);
        let base: Baseline = serde_json::from_value(serde_json::to_value(&before).unwrap()).unwrap();
        let text = compare(&report(vec![case(Some(1)), case(Some(5))], vec![]), &base);
        assert!(text.contains("questions: 0 ranked higher, 0 lower;"), "{text}");
        assert!(text.contains("0 not in the baseline, 0 of the baseline not asked"), "{text}");
    }

    #[test]
    fn metrics_count_ranks_and_abstentions() {
        let rs = vec![
            result(false, Some(1), Outcome::Answered),
            result(false, Some(3), Outcome::Answered),
            result(false, None, Outcome::Abstained),
            result(true, None, Outcome::Abstained),
            result(true, None, Outcome::Answered),
        ];
        let m = metrics(&rs);
        assert_eq!((m.answerable, m.unanswerable, m.failed), (3, 2, 0));
        let near = |v: Option<f64>, want: f64| v.is_some_and(|v| (v - want).abs() < 1e-9);
        assert!(near(m.hit_at_1, 1.0 / 3.0));
        assert!(near(m.hit_at_5, 2.0 / 3.0));
        assert!(near(m.mrr, (1.0 + 1.0 / 3.0) / 3.0));
        assert!(near(m.abstain_unanswerable, 0.5));
        assert!(near(m.abstain_answerable, 1.0 / 3.0));
        assert!(near(m.answer_cites_expected, 0.5));
    }

    #[test]
    fn sweep_separates_by_gate_score() {
        let rs = vec![result(false, Some(1), Outcome::Answered), result(true, None, Outcome::Abstained)];
        let rows = sweep(&rs, false);
        let at = |t: f32| rows.iter().find(|(x, _, _)| (x - t).abs() < 1e-3).copied().unwrap();
        assert_eq!((at(0.3).1, at(0.3).2), (1.0, 0.0));
        assert_eq!((at(0.7).1, at(0.7).2), (1.0, 1.0));
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!((percentile(&v, 50.0), percentile(&v, 95.0)), (50, 95));
        assert_eq!(percentile(&[7], 95.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("q.jsonl");
        let read = |text: &str| {
            std::fs::write(&f, text).unwrap();
            read_cases(std::slice::from_ref(&f))
        };
        let err = |text: &str| read(text).unwrap_err().to_string();
        let good = "{\"q\": \"a\", \"expect\": [\"x\"]}";
        assert!(err(&format!("{good}\n{{\"q\": \"b\"}}\n")).contains("line 2: give `expect`"));
        // Every bad line is named at once, not only the first.
        let all = err(&format!(
            "{good}\n{{\"q\": \"b\", \"expct\": [\"y\"]}}\n{good}\n{{\"q\": \" \", \"expect\": [\"x\"]}}\n\
             {{\"q\": \"c\", \"expect\": [\"x\"], \"unanswerable\": true}}\n{{\"q\": \"d\"\n"
        ));
        assert!(all.contains("line 2: not a question entry: unknown field `expct`"), "{all}");
        assert!(all.contains("line 4: the question `q` is empty"), "{all}");
        assert!(all.contains("line 5: `expect` and `\"unanswerable\": true` contradict"), "{all}");
        assert!(all.contains("line 6: not a question entry"), "{all}");
        assert!(!all.contains("line 1:") && !all.contains("line 3:"), "{all}");
        // A long list is cut, saying how many more.
        let many = err(&"{\"q\": \"b\"}\n".repeat(25));
        assert!(many.contains("line 10:") && !many.contains("line 11:") && many.contains("(and 15 more bad lines)"));
        // No questions at all is an error, not a report of zeros.
        assert!(err("\n// only a comment\n").contains("holds no questions"));
        // Good lines keep their line numbers.
        let cases = read(&format!("// a comment\n\n{good}\n")).unwrap();
        assert_eq!(cases.iter().map(|c| c.line).collect::<Vec<_>>(), [3]);
        // A byte-order mark does not spoil the first line.
        assert_eq!(read(&format!("\u{feff}{good}\n")).unwrap().len(), 1);
        // Several files make one set; each question keeps its own file and line, and a bad line
        // is named by its file.
        let other = dir.path().join("zh.jsonl");
        std::fs::write(&other, format!("\n{good}\n{{\"q\": \"b\"}}\n")).unwrap();
        let err = read_cases(&[f.clone(), other.clone()]).unwrap_err().to_string();
        assert!(err.contains(&format!("{} line 3: give `expect`", other.display())), "{err}");
        std::fs::write(&other, format!("\n{good}\n")).unwrap();
        let both = read_cases(&[f.clone(), other.clone()]).unwrap();
        let places: Vec<(String, usize)> = both.iter().map(|c| (c.file.clone(), c.line)).collect();
        assert_eq!(places, [(f.display().to_string(), 1), (other.display().to_string(), 2)]);
    }

    #[test]
    fn questions_from_several_files_are_named_by_file() {
        let mut zh = result(false, Some(2), Outcome::Answered);
        (zh.file, zh.line) = ("sets/zh.jsonl".into(), 3);
        let text = misses(&report(vec![result(false, Some(1), Outcome::Answered), zh.clone()], vec![]));
        assert!(text.contains("  zh.jsonl line 3 [en] q\n"), "{text}");
        let text = misses(&report(vec![zh], vec![]));
        assert!(text.contains("  line 3 [en] q\n"), "one file: lines alone: {text}");
    }

    #[test]
    fn expected_pages_missing_from_the_index_are_listed_with_their_line() {
        let case = |line: usize, expect: &[&str]| Case {
            q: "q".into(),
            expect: expect.iter().map(|e| e.to_string()).collect(),
            unanswerable: false,
            lang: None,
            line,
            file: "mine.jsonl".into(),
        };
        let cases = [
            case(1, &["guide/proxy.html#trusted-proxies", "guide/tls.html"]),
            case(2, &["guide/prxy.html"]),
            case(4, &["faq/general.yaml#gone"]),
        ];
        let missing = unindexed(&cases, ["guide/proxy.html", "guide/tls.html", "faq/general.yaml"]);
        assert_eq!(missing, [Unindexed { file: "mine.jsonl".into(), line: 2, citation: "guide/prxy.html".into() }]);
        let warnings = unindexed_warnings(&missing);
        assert!(warnings[0].starts_with("eval: warning: mine.jsonl line 2: the index holds no page guide/prxy.html"));
        assert_eq!(unindexed(&cases, []).len(), 4);
    }
}
