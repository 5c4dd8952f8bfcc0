//! Query latency benchmark (`harness = false`): search and ask (extractive backend) over embedded
//! indexes of N chunks, sequentially and under concurrent askers. Driven by `scripts/bench/query`,
//! which runs the Python reference (`scripts/bench/query_reference.py`) on the same vectors and
//! questions and prints both side by side; see BENCHMARKS.md, "Query latency".
//!
//! The pool of real chunks comes from `supportbot-ingest --export-chunks` (JSON lines with
//! `citation`, `language`, `kind`, `embed_text`). It is embedded once with the configured model
//! (optionally cached in `--pool-cache`). For every size N an `EdgeStore` is built in a temporary
//! directory: below the pool size a spread sample of the pool, above it the pool replicated, each
//! copy with its own ids and its dense vector perturbed by a little noise (re-normalised), so that
//! no two points are identical. The BM25 text of a point is the chunk's text, as in ingest.
//!
//! Per size and index variant (`plain`: as `supportbot-ingest` leaves it, appendable segments
//! searched exhaustively; `optimized`: after `EdgeStore::optimize`, HNSW over the dense vectors)
//! it times, over every question (after a short warm-up):
//!
//! - `search`: `Searcher::search`, the real query path (embed the question, dense + BM25
//!   candidates, weighted RRF);
//! - `dense`: embed the question + `dense_ranking` top 10 (ids and scores, no passages), the
//!   like-for-like of the reference;
//! - with `--parts`, for one asker: `parts`, the steps of `search` one after another, each timed
//!   (embedding the question, the dense and the BM25 ranking of the configured candidates, the
//!   fusion with the reading of the passages it keeps); and `read-all`, `search` as it was before
//!   fusion read passages on demand (every candidate's passage read with its ranking);
//! - `answer`: `Answerer::answer` with the extractive backend (retrieval, gate, prompt, quote,
//!   citation check);
//! - optionally `local`: the in-process GGUF backend on a few questions (`--local K`);
//!
//! each sequentially (`--rounds` passes over the questions) and with `--concurrency` tasks at once
//! (`--concurrent-rounds` passes, shared among the tasks). Results go to `OUT/rust-N.json`; with
//! vectors enabled, `OUT/vectors-N.npy` (little-endian f32, N × dim, unit length) holds the
//! dense vectors of the index and `OUT/manifest.json` the model settings and the questions.
//!
//! ```text
//! cargo bench --workspace --bench query -- --chunks FILE --questions FILE --out DIR [options]
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use supportbot_core::answer::memory::InMemoryMemory;
use supportbot_core::answer::{Answerer, Incoming};
use supportbot_core::document::{Chunk, DocKind, chunk_id};
use supportbot_core::embed::Embedder;
use supportbot_core::lang::QuestionLanguage;
use supportbot_core::llm::chain::ModelChain;
use supportbot_core::search::{Fusion, SearchParams, Searcher, fuse};
use supportbot_core::store::{EdgeStore, IndexMeta, KnowledgeStore, SearchFilter, StoredChunk, now_rfc3339};
use supportbot_core::wiring;

const USAGE: &str = "\
Usage: query --chunks FILE --questions FILE [--questions FILE ...] --out DIR [options]

  --chunks FILE             chunks from `supportbot-ingest --export-chunks` (the real pool)
  --questions FILE          JSON lines with a `q` field (repeatable)
  --out DIR                 where rust-N.json, vectors-N.npy and manifest.json go
  --sizes LIST              index sizes (default 1000,10000,100000)
  --index plain|optimized|both
                            plain = as ingest leaves it; optimized = after EdgeStore::optimize
                            (HNSW); default both
  --rounds N                sequential passes over the questions (default 2)
  --concurrency N           concurrent askers (default 50)
  --concurrent-rounds N     passes over the questions shared by the askers (default 2)
  --pool-limit N            use only the first N chunks of the pool (default: all)
  --pool-cache FILE         raw f32 vectors of the pool: read if it matches, else written
  --no-answer               skip the Answerer timings
  --parts                   also, for one asker: the steps of `search` one after another
                            (embedding, dense and BM25 rankings, fusion), and `search` reading
                            every candidate's passage as before 2026-12-02 (`read-all`)
  --local K                 also time K questions through the local GGUF backend (default 0)
  --no-vectors              do not write vectors-N.npy
Settings: built-in defaults and SUPPORTBOT__* variables (model assets as installed by scripts/setup).";

/// Unmeasured queries before every timed pass.
const WARMUP: usize = 8;
/// Points per upsert call while building an index.
const UPSERT_BATCH: usize = 256;
/// Dense candidates of the like-for-like `dense` mode (the reference's top k).
const DENSE_TOP_K: usize = 10;
/// Root name of every point.
const ROOT: &str = "libreoffice";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Plain,
    Optimized,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Plain => "plain",
            Variant::Optimized => "optimized",
        }
    }
}

#[derive(Debug)]
struct Args {
    chunks: PathBuf,
    questions: Vec<PathBuf>,
    out: PathBuf,
    sizes: Vec<usize>,
    variants: Vec<Variant>,
    rounds: usize,
    concurrency: usize,
    concurrent_rounds: usize,
    pool_limit: usize,
    pool_cache: Option<PathBuf>,
    answer: bool,
    /// Also time the steps of `search` one by one (`parts`).
    parts: bool,
    local: usize,
    vectors: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        chunks: PathBuf::new(),
        questions: Vec::new(),
        out: PathBuf::new(),
        sizes: vec![1_000, 10_000, 100_000],
        variants: vec![Variant::Plain, Variant::Optimized],
        rounds: 2,
        concurrency: 50,
        concurrent_rounds: 2,
        pool_limit: 0,
        pool_cache: None,
        answer: true,
        parts: false,
        local: 0,
        vectors: true,
    };
    let mut it = std::env::args().skip(1);
    let number = |v: Option<String>, name: &str| -> anyhow::Result<usize> {
        let v = v.with_context(|| format!("{name} needs a value"))?;
        v.parse().with_context(|| format!("{name}: `{v}` is not a number"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            // Passed by `cargo bench`.
            "--bench" => {}
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--chunks" => args.chunks = it.next().context("--chunks needs a value")?.into(),
            "--questions" => args.questions.push(it.next().context("--questions needs a value")?.into()),
            "--out" => args.out = it.next().context("--out needs a value")?.into(),
            "--sizes" => {
                let v = it.next().context("--sizes needs a value")?;
                args.sizes = v
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| s.trim().replace('_', "").parse::<usize>())
                    .collect::<Result<_, _>>()
                    .with_context(|| format!("--sizes: `{v}` is not a list of numbers"))?;
            }
            "--index" => {
                args.variants = match it.next().as_deref() {
                    Some("plain") => vec![Variant::Plain],
                    Some("optimized") => vec![Variant::Optimized],
                    Some("both") => vec![Variant::Plain, Variant::Optimized],
                    other => bail!("--index: plain, optimized or both, not {other:?}"),
                }
            }
            "--rounds" => args.rounds = number(it.next(), "--rounds")?,
            "--concurrency" => args.concurrency = number(it.next(), "--concurrency")?,
            "--concurrent-rounds" => args.concurrent_rounds = number(it.next(), "--concurrent-rounds")?,
            "--pool-limit" => args.pool_limit = number(it.next(), "--pool-limit")?,
            "--pool-cache" => args.pool_cache = Some(it.next().context("--pool-cache needs a value")?.into()),
            "--no-answer" => args.answer = false,
            "--parts" => args.parts = true,
            "--local" => args.local = number(it.next(), "--local")?,
            "--no-vectors" => args.vectors = false,
            other => bail!("unknown argument `{other}`\n\n{USAGE}"),
        }
    }
    if args.chunks.as_os_str().is_empty() || args.questions.is_empty() || args.out.as_os_str().is_empty() {
        bail!("--chunks, --questions and --out are required\n\n{USAGE}");
    }
    if args.sizes.is_empty() || args.sizes.contains(&0) {
        bail!("--sizes must list positive sizes");
    }
    args.rounds = args.rounds.max(1);
    args.concurrency = args.concurrency.max(1);
    args.concurrent_rounds = args.concurrent_rounds.max(1);
    Ok(args)
}

/// One chunk of the real pool.
#[derive(Debug, Clone, serde::Deserialize)]
struct PoolChunk {
    citation: String,
    #[serde(default)]
    language: String,
    #[serde(default)]
    kind: String,
    embed_text: String,
    #[serde(default)]
    tokens: u32,
}

fn read_pool(path: &Path, limit: usize) -> anyhow::Result<Vec<PoolChunk>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut pool = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let c: PoolChunk = serde_json::from_str(line).with_context(|| format!("{}: line {}", path.display(), i + 1))?;
        if !c.embed_text.trim().is_empty() {
            pool.push(c);
        }
        if limit > 0 && pool.len() == limit {
            break;
        }
    }
    if pool.is_empty() {
        bail!("{}: no chunks", path.display());
    }
    Ok(pool)
}

fn read_questions(paths: &[PathBuf]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).with_context(|| format!("{}: line {}", path.display(), i + 1))?;
            let q = v["q"].as_str().with_context(|| format!("{}: line {} has no `q`", path.display(), i + 1))?;
            out.push(q.to_string());
        }
    }
    if out.is_empty() {
        bail!("no questions");
    }
    Ok(out)
}

/// Small deterministic generator (splitmix64): the noise only has to differ between copies.
struct Noise(u64);

impl Noise {
    fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // Uniform in [-1, 1).
        ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// Half-width of the uniform noise added to every component of a copy. For 384 unit-length
/// dimensions this keeps a copy at a cosine of about 0.995 to its original.
const NOISE: f32 = 0.009;

fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Point `k` of an index of `n` over a pool of `pool` chunks: (pool index, copy number).
fn source_of(k: usize, n: usize, pool: usize) -> (usize, usize) {
    if n <= pool { (k * pool / n, 0) } else { (k % pool, k / pool) }
}

fn stored_chunk(k: usize, n: usize, pool: &[PoolChunk], vectors: &[Vec<f32>], noise: &mut Noise) -> StoredChunk {
    let (i, copy) = source_of(k, n, pool.len());
    let p = &pool[i];
    let (source, anchor) = match p.citation.split_once('#') {
        Some((s, a)) => (s.to_string(), Some(a.to_string())),
        None => (p.citation.clone(), None),
    };
    let source = if copy == 0 { source } else { format!("copy{copy}/{source}") };
    let mut dense = vectors[i].clone();
    if copy > 0 {
        dense.iter_mut().for_each(|x| *x += NOISE * noise.next_f32());
    }
    normalize(&mut dense);
    let header = p.embed_text.lines().next().unwrap_or_default();
    let mut path = header.split(" > ").map(str::to_string);
    let title = path.next().unwrap_or_default();
    let heading_path: Vec<String> = path.collect();
    let kind = if p.kind == "faq" { DocKind::Faq } else { DocKind::Doc };
    StoredChunk {
        chunk: Chunk {
            id: chunk_id(ROOT, &source, k as u32),
            root: ROOT.into(),
            source,
            chunk_index: i as u32,
            title,
            heading_path,
            anchor,
            kind,
            language: if p.language.is_empty() { "und".into() } else { p.language.clone() },
            tags: Vec::new(),
            text: p.embed_text.clone(),
            embed_text: p.embed_text.clone(),
            tokens: p.tokens,
            question: None,
            answer: None,
            url: None,
            content_hash: "bench".into(),
            cites: None,
        },
        dense,
        multilingual: None,
        lexical_text: p.embed_text.clone(),
    }
}

/// Writes a little-endian f32 `.npy` (format 1.0) header for an `rows × cols` C-order array.
fn npy_header(rows: usize, cols: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let unpadded = 10 + dict.len() + 1;
    let padding = (64 - unpadded % 64) % 64;
    let header = format!("{dict}{}\n", " ".repeat(padding));
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out
}

fn write_f32s(w: &mut impl std::io::Write, v: &[f32]) -> std::io::Result<()> {
    for x in v {
        w.write_all(&x.to_le_bytes())?;
    }
    Ok(())
}

/// Embeds the pool, or reads it from the cache file when that holds exactly this many vectors.
fn pool_vectors(
    embedder: &dyn Embedder,
    pool: &[PoolChunk],
    cache: Option<&Path>,
) -> anyhow::Result<(Vec<Vec<f32>>, Value)> {
    let dim = embedder.dimension();
    if let Some(cache) = cache
        && let Ok(bytes) = std::fs::read(cache)
        && bytes.len() == pool.len() * dim * 4
    {
        let floats: Vec<f32> =
            bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect();
        eprintln!("query: pool vectors read from {}", cache.display());
        return Ok((floats.chunks(dim).map(<[f32]>::to_vec).collect(), json!({"cached": true})));
    }
    let started = Instant::now();
    let mut vectors = Vec::with_capacity(pool.len());
    for group in pool.chunks(512) {
        let texts: Vec<String> = group.iter().map(|c| c.embed_text.clone()).collect();
        vectors.extend(embedder.embed_documents(&texts)?);
        eprintln!(
            "query: embedded {}/{} pool chunks ({:.0} s)",
            vectors.len(),
            pool.len(),
            started.elapsed().as_secs_f64()
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    if let Some(cache) = cache {
        let mut w =
            BufWriter::new(std::fs::File::create(cache).with_context(|| format!("creating {}", cache.display()))?);
        for v in &vectors {
            write_f32s(&mut w, v)?;
        }
        w.flush()?;
    }
    Ok((vectors, json!({"cached": false, "embed_seconds": seconds, "chunks_per_second": pool.len() as f64 / seconds})))
}

/// CPU accounting over a timed pass: how many CPUs' worth of time other processes used.
struct CpuWatch {
    wall: Instant,
    busy: u64,
    own: u64,
    load1: f64,
}

fn busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal
    [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| fields.get(i)).sum()
}

fn own_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields.get(11).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0)
}

fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|f| f.parse().ok()))
        .unwrap_or(0.0)
}

/// Linux reports both files in USER_HZ, which is 100.
const TICKS_PER_SECOND: f64 = 100.0;

impl CpuWatch {
    fn start() -> Self {
        Self { wall: Instant::now(), busy: busy_ticks(), own: own_ticks(), load1: load1() }
    }

    fn stop(&self) -> Value {
        let wall = self.wall.elapsed().as_secs_f64();
        let busy = busy_ticks().saturating_sub(self.busy) as f64 / TICKS_PER_SECOND;
        let own = own_ticks().saturating_sub(self.own) as f64 / TICKS_PER_SECOND;
        json!({
            "background_cpus": round2(((busy - own) / wall).max(0.0)),
            "own_cpus": round2(own / wall),
            "load1_before": self.load1,
            "load1_after": load1(),
        })
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(ms: &[f64]) -> Value {
    let mut sorted = ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mean = if sorted.is_empty() { f64::NAN } else { sorted.iter().sum::<f64>() / sorted.len() as f64 };
    json!({
        "p50_ms": round3(percentile(&sorted, 50.0)),
        "p95_ms": round3(percentile(&sorted, 95.0)),
        "p99_ms": round3(percentile(&sorted, 99.0)),
        "mean_ms": round3(mean),
        "max_ms": round3(sorted.last().copied().unwrap_or(f64::NAN)),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Search,
    Dense,
    Parts,
    ReadAll,
    Answer,
    Local,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Search => "search",
            Mode::Dense => "dense",
            Mode::Parts => "parts",
            Mode::ReadAll => "read-all",
            Mode::Answer => "answer",
            Mode::Local => "local",
        }
    }
}

/// What one timed request measured.
#[derive(Debug, Default, Clone)]
struct Sample {
    total_ms: f64,
    /// `dense` and `parts` modes: embedding the question, and the dense index search.
    embed_ms: Option<f64>,
    search_ms: Option<f64>,
    /// `parts` mode: the BM25 ranking, and the fusion with the reading of the passages.
    sparse_ms: Option<f64>,
    fuse_ms: Option<f64>,
    outcome: Option<String>,
}

#[derive(Clone)]
struct Target {
    searcher: Searcher,
    store: Arc<dyn KnowledgeStore>,
    embedder: Arc<dyn Embedder>,
    answerer: Option<Answerer>,
    local: Option<Answerer>,
}

/// The fusion `Searcher::search` uses for `language` (without the multilingual model).
fn fusion_for<'a>(params: &SearchParams, language: &'a QuestionLanguage) -> Fusion<'a> {
    params.fusion_for(language, if language.cjk { params.cjk_dense_weight } else { params.dense_weight })
}

static CONVERSATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

async fn one(target: &Target, mode: Mode, question: &str) -> anyhow::Result<Sample> {
    let started = Instant::now();
    let mut sample = Sample::default();
    match mode {
        Mode::Search => {
            let results = target.searcher.search(question, None, &SearchFilter::default()).await?;
            std::hint::black_box(results);
        }
        Mode::Dense => {
            let embedder = target.embedder.clone();
            let text = question.to_string();
            let vector = tokio::task::spawn_blocking(move || embedder.embed_query(&text)).await??;
            let embedded = Instant::now();
            // Ids and scores, as the reference returns row indices and scores (since 2026-12-02;
            // before, the 10 passages were read too).
            let hits = target.store.dense_ranking(&vector, DENSE_TOP_K, &SearchFilter::default()).await?;
            std::hint::black_box(hits);
            sample.embed_ms = Some((embedded - started).as_secs_f64() * 1000.0);
            sample.search_ms = Some(embedded.elapsed().as_secs_f64() * 1000.0);
        }
        Mode::Parts => {
            let params = target.searcher.params();
            let embedder = target.embedder.clone();
            let text = question.to_string();
            let vector = tokio::task::spawn_blocking(move || embedder.embed_query(&text)).await??;
            let embedded = Instant::now();
            let filter = SearchFilter::default();
            let dense = target.store.dense_ranking(&vector, params.candidates, &filter).await?;
            let searched = Instant::now();
            let sparse = target.store.sparse_ranking(question, params.candidates, &filter).await?;
            let sparsed = Instant::now();
            let language = QuestionLanguage::of(question);
            let fusion = fusion_for(params, &language);
            std::hint::black_box(target.searcher.fuse_rankings(dense, sparse, &fusion, params.limit).await?);
            let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1000.0;
            sample.embed_ms = Some(ms(started, embedded));
            sample.search_ms = Some(ms(embedded, searched));
            sample.sparse_ms = Some(ms(searched, sparsed));
            sample.fuse_ms = Some(sparsed.elapsed().as_secs_f64() * 1000.0);
        }
        Mode::ReadAll => {
            // `Searcher::search` as it was before fusion read passages on demand: the same
            // steps, concurrency and fusion, with every candidate's passage read.
            let params = target.searcher.params();
            let filter = SearchFilter::default();
            let embedder = target.embedder.clone();
            let text = question.to_string();
            let (dense, sparse) = tokio::try_join!(
                async {
                    let vector = tokio::task::spawn_blocking(move || embedder.embed_query(&text)).await??;
                    anyhow::Ok(target.store.dense_search(&vector, params.candidates, &filter).await?)
                },
                async { anyhow::Ok(target.store.sparse_search(question, params.candidates, &filter).await?) },
            )?;
            let language = QuestionLanguage::of(question);
            std::hint::black_box(fuse(dense, sparse, &fusion_for(params, &language), params.limit));
        }
        Mode::Answer | Mode::Local => {
            let answerer = if mode == Mode::Answer { &target.answerer } else { &target.local };
            let answerer = answerer.as_ref().context("no answerer")?;
            // A new conversation each time: no question is taken for a follow-up.
            let n = CONVERSATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let incoming = Incoming::new("bench", &format!("bench-{n}"), "bench", question);
            let answer = answerer.answer(&incoming, None).await;
            let outcome = serde_json::to_value(answer.outcome)?.as_str().unwrap_or("?").to_string();
            sample.outcome = Some(match &answer.backend {
                Some(b) if mode == Mode::Local => format!("{outcome}:{b}"),
                _ => outcome,
            });
        }
    }
    sample.total_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(sample)
}

fn pass_result(mode: Mode, concurrency: usize, samples: &[Sample], wall: f64, cpu: Value) -> Value {
    let total: Vec<f64> = samples.iter().map(|s| s.total_ms).collect();
    let mut out = json!({
        "mode": mode.name(),
        "concurrency": concurrency,
        "requests": samples.len(),
        "wall_seconds": round3(wall),
        "throughput_qps": round2(samples.len() as f64 / wall),
    });
    let obj = out.as_object_mut().expect("object");
    for (k, v) in summary(&total).as_object().expect("object") {
        obj.insert(k.clone(), v.clone());
    }
    let embed: Vec<f64> = samples.iter().filter_map(|s| s.embed_ms).collect();
    if !embed.is_empty() {
        obj.insert("embed".into(), summary(&embed));
        let search: Vec<f64> = samples.iter().filter_map(|s| s.search_ms).collect();
        obj.insert("index_search".into(), summary(&search));
    }
    for (name, part) in [
        ("sparse_search", samples.iter().map(|s| s.sparse_ms).collect::<Vec<_>>()),
        ("fuse", samples.iter().map(|s| s.fuse_ms).collect()),
    ] {
        let part: Vec<f64> = part.into_iter().flatten().collect();
        if !part.is_empty() {
            obj.insert(name.into(), summary(&part));
        }
    }
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for o in samples.iter().filter_map(|s| s.outcome.clone()) {
        *outcomes.entry(o).or_default() += 1;
    }
    if !outcomes.is_empty() {
        obj.insert("outcomes".into(), json!(outcomes));
    }
    for (k, v) in cpu.as_object().expect("object") {
        obj.insert(k.clone(), v.clone());
    }
    obj.insert("latencies_ms".into(), json!(total.iter().map(|x| round3(*x)).collect::<Vec<_>>()));
    out
}

async fn sequential(target: &Target, mode: Mode, questions: &[String], rounds: usize) -> anyhow::Result<Value> {
    for q in questions.iter().cycle().take(WARMUP.min(questions.len())) {
        one(target, mode, q).await?;
    }
    let cpu = CpuWatch::start();
    let started = Instant::now();
    let mut samples = Vec::with_capacity(questions.len() * rounds);
    for _ in 0..rounds {
        for q in questions {
            samples.push(one(target, mode, q).await?);
        }
    }
    let wall = started.elapsed().as_secs_f64();
    Ok(pass_result(mode, 1, &samples, wall, cpu.stop()))
}

async fn concurrent(
    target: &Target,
    mode: Mode,
    questions: &[String],
    rounds: usize,
    concurrency: usize,
) -> anyhow::Result<Value> {
    for q in questions.iter().take(WARMUP) {
        one(target, mode, q).await?;
    }
    // Request i goes to task i % concurrency; each task asks its share in a loop.
    let all: Vec<String> = (0..rounds).flat_map(|_| questions.iter().cloned()).collect();
    let shares: Vec<Vec<String>> = (0..concurrency)
        .map(|t| all.iter().skip(t).step_by(concurrency).cloned().collect())
        .filter(|s: &Vec<String>| !s.is_empty())
        .collect();
    let cpu = CpuWatch::start();
    let started = Instant::now();
    let barrier = Arc::new(tokio::sync::Barrier::new(shares.len()));
    let mut tasks = tokio::task::JoinSet::new();
    for share in shares {
        let target = target.clone();
        let barrier = barrier.clone();
        tasks.spawn(async move {
            barrier.wait().await;
            let mut samples = Vec::with_capacity(share.len());
            for q in &share {
                samples.push(one(&target, mode, q).await?);
            }
            anyhow::Ok(samples)
        });
    }
    let mut samples = Vec::with_capacity(all.len());
    while let Some(r) = tasks.join_next().await {
        samples.extend(r??);
    }
    let wall = started.elapsed().as_secs_f64();
    Ok(pass_result(mode, concurrency, &samples, wall, cpu.stop()))
}

fn answerer(
    settings: &supportbot_config::Settings,
    searcher: &Searcher,
    backends: &[&str],
) -> anyhow::Result<Answerer> {
    let backends = backends
        .iter()
        .map(|b| wiring::backend(settings, b).map_err(|e| anyhow::anyhow!("backend {b}: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Answerer::new(
        searcher.clone(),
        ModelChain::new(backends),
        Arc::new(InMemoryMemory::new(wiring::memory_limits(settings))),
        wiring::answer_config(settings),
        Default::default(),
    ))
}

fn data_dir() -> PathBuf {
    supportbot_config::data_dir(|k| std::env::var_os(k))
}

fn write_json(path: &Path, value: &Value) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(value)?).with_context(|| format!("writing {}", path.display()))
}

async fn run(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let out = std::fs::canonicalize(&args.out)?;
    // Defaults plus SUPPORTBOT__* variables; no supportbot.toml is read (`out` has none).
    let ctx = supportbot_config::LoadContext {
        cwd: out.clone(),
        data_dir: data_dir(),
        env: std::env::vars().filter(|(k, _)| k.starts_with("SUPPORTBOT__")).collect(),
        explicit_file: None,
    };
    let mut settings = supportbot_config::load(&ctx)?.settings;
    // Like for like with the Python reference: one model (the multilingual one would embed the
    // Chinese questions a second time; see BENCHMARKS.md, section 8).
    settings.embedding.multilingual = supportbot_config::Multilingual::Off;
    let profile = if cfg!(debug_assertions) { "dev" } else { "release" };

    let pool = read_pool(&args.chunks, args.pool_limit)?;
    let questions = read_questions(&args.questions)?;
    let s = settings.clone();
    let embedder: Arc<dyn Embedder> = tokio::task::spawn_blocking(move || wiring::embedder(&s, None)).await??;
    let dim = embedder.dimension();
    eprintln!(
        "query: {profile} build; {} pool chunks, {} questions, model {} ({dim} dimensions, {} threads)",
        pool.len(),
        questions.len(),
        embedder.model_id(),
        settings.embedding.threads
    );
    let (vectors, pool_info) = {
        let embedder = embedder.clone();
        let pool = pool.clone();
        let cache = args.pool_cache.clone();
        tokio::task::spawn_blocking(move || pool_vectors(embedder.as_ref(), &pool, cache.as_deref())).await??
    };

    let manifest = json!({
        "model_dir": settings.embedding.model_dir,
        "onnxruntime_path": settings.embedding.onnxruntime_path,
        "model_id": embedder.model_id(),
        "dimension": dim,
        "threads": settings.embedding.threads,
        "max_tokens": settings.embedding.max_tokens,
        "questions": questions,
        "pool_chunks": pool.len(),
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "concurrent_rounds": args.concurrent_rounds,
        "dense_top_k": DENSE_TOP_K,
        "warmup": WARMUP,
    });
    write_json(&out.join("manifest.json"), &manifest)?;

    for &n in &args.sizes {
        let dir = tempfile::Builder::new().prefix("query-index-").tempdir_in(&out)?;
        let compat = wiring::compatibility(embedder.model_id(), dim);
        let store = EdgeStore::open(dir.path(), Some(compat.layout()))?;
        store
            .put_meta(&IndexMeta {
                embedding_model: compat.embedding_model,
                dimension: compat.dimension,
                chunker_version: compat.chunker_version,
                created_at: now_rfc3339(),
                roots: Default::default(),
            })
            .await?;

        // Build the index, streaming the vectors to the .npy file as they are made.
        let npy_path = out.join(format!("vectors-{n}.npy"));
        let mut npy = if args.vectors {
            let mut w = BufWriter::new(std::fs::File::create(&npy_path)?);
            w.write_all(&npy_header(n, dim))?;
            Some(w)
        } else {
            None
        };
        let build_started = Instant::now();
        let mut noise = Noise(0x5eed_0000 ^ n as u64);
        let mut k = 0;
        while k < n {
            let end = (k + UPSERT_BATCH).min(n);
            let batch: Vec<StoredChunk> = (k..end).map(|i| stored_chunk(i, n, &pool, &vectors, &mut noise)).collect();
            if let Some(w) = npy.as_mut() {
                for c in &batch {
                    write_f32s(w, &c.dense)?;
                }
            }
            store.upsert_chunks(batch).await?;
            k = end;
            if k % 20_000 == 0 {
                eprintln!("query: N={n}: {k} points upserted ({:.0} s)", build_started.elapsed().as_secs_f64());
            }
        }
        store.flush().await?;
        if let Some(mut w) = npy.take() {
            w.flush()?;
        }
        let build_seconds = build_started.elapsed().as_secs_f64();
        let stats = store.stats().await?;
        eprintln!("query: N={n}: index built in {build_seconds:.1} s ({} chunks)", stats.chunks);

        let store_arc: Arc<dyn KnowledgeStore> = Arc::new(store.clone());
        let searcher = Searcher::new(store_arc.clone(), embedder.clone(), wiring::search_params(&settings));
        let target = Target {
            searcher: searcher.clone(),
            store: store_arc,
            embedder: embedder.clone(),
            answerer: if args.answer { Some(answerer(&settings, &searcher, &["extractive"])?) } else { None },
            local: if args.local > 0 { Some(answerer(&settings, &searcher, &["local", "extractive"])?) } else { None },
        };

        let mut variants = Vec::new();
        for &variant in &args.variants {
            let mut info = json!({"variant": variant.name()});
            if variant == Variant::Optimized {
                let started = Instant::now();
                store.optimize().await?;
                let secs = started.elapsed().as_secs_f64();
                eprintln!("query: N={n}: optimized in {secs:.1} s");
                info["optimize_seconds"] = json!(round3(secs));
            }
            let mut passes = Vec::new();
            let mut modes = vec![Mode::Search, Mode::Dense];
            if args.parts {
                modes.extend([Mode::Parts, Mode::ReadAll]);
            }
            if args.answer {
                modes.push(Mode::Answer);
            }
            for &mode in &modes {
                let seq = sequential(&target, mode, &questions, args.rounds).await?;
                eprintln!("query: N={n} {} {:<6} sequential: {}", variant.name(), mode.name(), brief(&seq));
                passes.push(seq);
                if matches!(mode, Mode::Parts | Mode::ReadAll) {
                    // Diagnostics for one asker.
                    continue;
                }
                let conc = concurrent(&target, mode, &questions, args.concurrent_rounds, args.concurrency).await?;
                eprintln!(
                    "query: N={n} {} {:<6} x{:<4}     : {}",
                    variant.name(),
                    mode.name(),
                    args.concurrency,
                    brief(&conc)
                );
                passes.push(conc);
            }
            if args.local > 0 {
                let few: Vec<String> = questions.iter().take(args.local).cloned().collect();
                let seq = sequential(&target, Mode::Local, &few, 1).await?;
                eprintln!("query: N={n} {} local  sequential: {}", variant.name(), brief(&seq));
                passes.push(seq);
            }
            info["passes"] = json!(passes);
            variants.push(info);
        }
        let result = json!({
            "side": "rust",
            "profile": profile,
            "size": n,
            "pool_chunks": pool.len(),
            "pool": pool_info,
            "questions": questions.len(),
            "build_seconds": round3(build_seconds),
            "build_points_per_second": round2(n as f64 / build_seconds),
            "index_chunks": stats.chunks,
            "embedding_threads": settings.embedding.threads,
            "search": {"limit": settings.search.limit, "candidates": settings.search.candidates},
            "variants": variants,
        });
        write_json(&out.join(format!("rust-{n}.json")), &result)?;
        // Every handle on the shard goes before its directory: the last one flushes on drop.
        drop(target);
        drop(searcher);
        drop(store);
        dir.close()?;
    }
    Ok(())
}

fn brief(pass: &Value) -> String {
    format!(
        "p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, {:.1} q/s (background CPUs {})",
        pass["p50_ms"].as_f64().unwrap_or(f64::NAN),
        pass["p95_ms"].as_f64().unwrap_or(f64::NAN),
        pass["p99_ms"].as_f64().unwrap_or(f64::NAN),
        pass["throughput_qps"].as_f64().unwrap_or(f64::NAN),
        pass["background_cpus"]
    )
}

fn main() -> anyhow::Result<()> {
    supportbot_core::embed::opt_out_of_runtime_telemetry();
    let args = parse_args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(args))
}
