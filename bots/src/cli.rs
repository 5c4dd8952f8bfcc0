//! The `supportbot` command line: `ask`, `chat`, `search`, `serve`, `eval`, `status`, `config check`
//! and the operator commands (`operator`, `token`, `review`, `curated`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use serde::Serialize;
use supportbot_config::Settings;
use supportbot_core::answer::memory::{ConversationMemory, FileMemory, InMemoryMemory};
use supportbot_core::answer::{Answer, Answerer, Incoming, Outcome};
use supportbot_core::document::{DocKind, citation};
use supportbot_core::embed::Embedder;
use supportbot_core::search::{SearchResult, Searcher};
use supportbot_core::store::{IndexMeta, KnowledgeStore, SearchFilter, StoreError};
use supportbot_core::wiring;

#[derive(Debug, Parser)]
#[command(name = "supportbot", version, about = "A self-hosted support bot that answers from your docs")]
pub struct Cli {
    /// Configuration file (default: supportbot.toml in the working directory, if present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Answer a question from the index, with citations (or say it cannot).
    Ask(AskArgs),
    /// An interactive conversation in the terminal; answers stream in as they are generated.
    Chat(ChatArgs),
    /// Run the configured chat channels (Telegram, Discord) and the HTTP server until stopped.
    Serve,
    /// Show the passages the index returns for a question.
    Search(SearchArgs),
    /// Measure retrieval and answers on a labelled question set (JSON lines).
    Eval(EvalArgs),
    /// Show what is indexed: documents, chunks, model, last sync.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Accounts of the operator console and the API: add, list, remove.
    Operator {
        #[command(subcommand)]
        command: crate::admin::OperatorCommand,
    },
    /// API tokens for the JSON API.
    Token {
        #[command(subcommand)]
        command: crate::admin::TokenCommand,
    },
    /// The answer log: purge old exchanges, export them, erase one user's data.
    Review {
        #[command(subcommand)]
        command: crate::admin::ReviewCommand,
    },
    /// Curated answers: export them as an FAQ file for `supportbot-ingest`.
    Curated {
        #[command(subcommand)]
        command: crate::admin::CuratedCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print it as it takes effect (secrets redacted).
    Check,
}

#[derive(Debug, clap::Args)]
pub struct AskArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Continue a conversation: follow-up questions use its recent turns (kept beside the index).
    #[arg(long, value_name = "ID")]
    pub conversation: Option<String>,
    /// Answer with this backend only (`gemini`, `openai`, `local`, `extractive`).
    #[arg(long, value_name = "NAME", value_parser = ["gemini", "openai", "local", "extractive"])]
    pub backend: Option<String>,
    /// The question.
    #[arg(required = true, num_args = 1.., value_name = "QUESTION")]
    pub question: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    /// Answer with this backend only (`gemini`, `openai`, `local`, `extractive`).
    #[arg(long, value_name = "NAME", value_parser = ["gemini", "openai", "local", "extractive"])]
    pub backend: Option<String>,
}

/// One source as `supportbot ask --json` prints it (a public contract).
#[derive(Debug, Serialize)]
pub struct AskCitation {
    pub n: usize,
    pub citation: String,
    pub title: String,
    pub source: String,
    pub url: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct AskLatency {
    pub retrieval: u64,
    pub generation: u64,
    pub total: u64,
}

/// `supportbot ask --json` (a public contract).
#[derive(Debug, Serialize)]
pub struct AskOutput {
    pub question: String,
    pub outcome: Outcome,
    pub answer: String,
    pub citations: Vec<AskCitation>,
    pub backend: Option<String>,
    pub latency_ms: AskLatency,
}

impl AskOutput {
    pub fn new(question: &str, a: &Answer) -> Self {
        AskOutput {
            question: question.to_string(),
            outcome: a.outcome,
            answer: a.text.clone(),
            citations: a
                .citations
                .iter()
                .map(|c| AskCitation {
                    n: c.n,
                    citation: c.citation.clone(),
                    title: c.title.clone(),
                    source: c.source.clone(),
                    url: c.url.clone(),
                })
                .collect(),
            backend: a.backend.clone(),
            latency_ms: AskLatency {
                retrieval: a.latency.retrieval,
                generation: a.latency.generation,
                total: a.latency.total,
            },
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Print the report as JSON (with every question's result), alone: not with the extras
    /// printed after the table.
    #[arg(long, conflicts_with_all = ["sweep", "misses", "baseline"])]
    pub json: bool,
    /// Also show how the relevance gate would behave at other thresholds (calibration).
    #[arg(long)]
    pub sweep: bool,
    /// Also list the questions to look at: expected page not first, answerable ones that
    /// abstained, unanswerable ones that were answered (with their lines).
    #[arg(long)]
    pub misses: bool,
    /// Also write the JSON report (every question's result) to this file, beside the table.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Compare with a report written earlier (`--report FILE`): each figure's change, and the
    /// questions ranked higher or lower, or whose abstention became right or wrong.
    #[arg(long, value_name = "REPORT")]
    pub baseline: Option<PathBuf>,
    /// Answer with this backend only.
    #[arg(long, value_name = "NAME", value_parser = ["gemini", "openai", "local", "extractive"])]
    pub backend: Option<String>,
    /// Fail (exit 1) when a figure is below a floor: `SCOPE.METRIC=VALUE`, SCOPE being
    /// `overall` or a language (`en.hit_at_5=0.9`). Repeatable; a regression gate for CI.
    #[arg(long = "min", value_name = "SCOPE.METRIC=VALUE")]
    pub min: Vec<String>,
    /// Fail (exit 1) when a figure is above a ceiling (`overall.abstain_answerable=0.05`).
    #[arg(long = "max", value_name = "SCOPE.METRIC=VALUE")]
    pub max: Vec<String>,
    /// The question set: one `{"q": ..., "expect": [...]}` or `{"q": ..., "unanswerable": true}` per line.
    /// Several files make one set (one per language, say); questions are named by file and line.
    #[arg(value_name = "FILE", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Number of passages (default: search.limit).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Only passages with this tag (repeatable: any of them).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Only passages in this language, e.g. `en` or `zh` (repeatable).
    #[arg(long = "lang")]
    pub languages: Vec<String>,
    /// Only `doc` or `faq` passages.
    #[arg(long, value_parser = ["doc", "faq"])]
    pub kind: Option<String>,
    /// Only this source root (repeatable).
    #[arg(long = "root")]
    pub roots: Vec<String>,
    /// The question.
    #[arg(required = true, num_args = 1.., value_name = "QUESTION")]
    pub question: Vec<String>,
}

/// One passage as `supportbot search --json` prints it (a public contract).
#[derive(Debug, Serialize)]
pub struct SearchHit {
    pub rank: usize,
    pub score: f32,
    pub dense_score: Option<f32>,
    pub bm25_score: Option<f32>,
    pub citation: String,
    pub source: String,
    pub anchor: Option<String>,
    pub title: String,
    pub text: String,
    pub kind: DocKind,
}

#[derive(Debug, Serialize)]
pub struct SearchOutput {
    pub query: String,
    pub results: Vec<SearchHit>,
}

impl From<SearchResult> for SearchHit {
    fn from(r: SearchResult) -> Self {
        SearchHit {
            rank: r.rank,
            score: r.score,
            dense_score: r.dense_score,
            bm25_score: r.bm25_score,
            citation: citation(&r.chunk.source, r.chunk.anchor.as_deref()),
            source: r.chunk.source,
            anchor: r.chunk.anchor,
            title: r.chunk.title,
            text: r.chunk.text,
            kind: r.chunk.kind,
        }
    }
}

fn load_settings(explicit: Option<&std::path::Path>) -> anyhow::Result<supportbot_config::Loaded> {
    let ctx = supportbot_config::LoadContext {
        cwd: std::env::current_dir().context("reading the working directory")?,
        data_dir: supportbot_config::data_dir(|k| std::env::var_os(k)),
        env: std::env::vars().collect(),
        explicit_file: explicit.map(std::path::Path::to_path_buf),
    };
    Ok(supportbot_config::load(&ctx)?)
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let loaded = load_settings(cli.config.as_deref())?;
    match cli.command {
        Command::Config { command: ConfigCommand::Check } => {
            match &loaded.file {
                Some(f) => eprintln!("configuration OK: {} plus SUPPORTBOT__* overrides", f.display()),
                None => {
                    eprintln!("configuration OK: built-in defaults plus SUPPORTBOT__* overrides (no supportbot.toml)")
                }
            }
            print!("{}", loaded.settings.to_redacted_toml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { json } => status(&loaded.settings, json).await,
        Command::Search(args) => search(&loaded.settings, args).await,
        Command::Ask(args) => ask(&loaded.settings, args).await,
        Command::Serve => serve(&loaded.settings).await,
        Command::Eval(args) => eval(&loaded.settings, args).await,
        Command::Chat(args) => chat(&loaded.settings, args).await,
        Command::Operator { command } => crate::admin::operator(&loaded.settings, command).await,
        Command::Token { command } => crate::admin::token(&loaded.settings, command).await,
        Command::Review { command } => crate::admin::review(&loaded.settings, command).await,
        Command::Curated { command } => crate::admin::curated(&loaded.settings, command).await,
    }
}

async fn open_for_reading(settings: &Settings) -> anyhow::Result<Arc<dyn KnowledgeStore>> {
    wiring::open_store(settings, None).await.map_err(|e| match e {
        StoreError::Missing(_) => {
            anyhow::anyhow!("no index at {}: run `supportbot-ingest PATH` first", wiring::store_location(settings))
        }
        other => anyhow::Error::new(other).context(format!("opening the index ({})", wiring::store_location(settings))),
    })
}

/// The index, checked against the models that will search it (those the index was built with,
/// under `embedding.multilingual = auto`).
async fn open_searcher(settings: &Settings) -> anyhow::Result<(Searcher, IndexMeta)> {
    let store = open_for_reading(settings).await?;
    let meta = store.meta().await?.context("the index is empty: run `supportbot-ingest PATH` first")?;
    let (s, recorded) = (settings.clone(), meta.embedding_model.clone());
    let embedder: Arc<dyn Embedder> =
        tokio::task::spawn_blocking(move || wiring::embedder(&s, Some(&recorded))).await??;
    wiring::compatibility(embedder.model_id(), embedder.dimension()).check(&meta)?;
    Ok((Searcher::new(store, embedder, wiring::search_params(settings)), meta))
}

async fn search(settings: &Settings, args: SearchArgs) -> anyhow::Result<ExitCode> {
    let question = args.question.join(" ");
    let (searcher, _) = open_searcher(settings).await?;
    let filter = SearchFilter {
        roots: args.roots,
        tags: args.tags,
        languages: args.languages,
        kinds: match args.kind.as_deref() {
            Some("faq") => vec![DocKind::Faq],
            Some(_) => vec![DocKind::Doc],
            None => vec![],
        },
    };
    let results = searcher.search(&question, args.limit, &filter).await?;
    let output = SearchOutput { query: question, results: results.into_iter().map(SearchHit::from).collect() };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&output)?);
    } else if output.results.is_empty() {
        println!("No passages found for {:?}.", output.query);
    } else {
        for r in &output.results {
            let scores = [("cosine", r.dense_score), ("bm25", r.bm25_score)]
                .iter()
                .filter_map(|(n, v)| v.map(|v| format!("{n} {v:.3}")))
                .collect::<Vec<_>>()
                .join(", ");
            println!("{}. {} — {} [{}]", r.rank, r.citation, r.title, scores);
            println!("   {}", snippet(&r.text, 280).replace('\n', "\n   "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The first `max` characters of `text`, cut at a word boundary.
fn snippet(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    let cut = match cut.rfind(char::is_whitespace) {
        Some(i) if i > max / 2 => &cut[..i],
        _ => &cut,
    };
    format!("{cut}…")
}

#[derive(Debug, Serialize)]
struct StatusOutput {
    location: String,
    /// `None` until a first ingest has initialised the index.
    embedding_model: Option<String>,
    dimension: Option<usize>,
    chunker_version: Option<u32>,
    created_at: Option<String>,
    /// Bits per vector component (16 in new embedded indexes); `None` on a Qdrant server.
    vector_bits: Option<u32>,
    documents: usize,
    chunks: usize,
    roots: Vec<RootStatus>,
}

#[derive(Debug, Serialize)]
struct RootStatus {
    name: String,
    path: String,
    url: Option<String>,
    documents: usize,
    chunks: usize,
    last_sync: Option<String>,
}

async fn status(settings: &Settings, json: bool) -> anyhow::Result<ExitCode> {
    let store = open_for_reading(settings).await?;
    let meta = store.meta().await?;
    let stats = store.stats().await?;
    let (embedding_model, dimension, chunker_version, created_at) = match &meta {
        Some(m) => {
            (Some(m.embedding_model.clone()), Some(m.dimension), Some(m.chunker_version), Some(m.created_at.clone()))
        }
        None => (None, None, None, None),
    };
    let meta = meta.unwrap_or_else(|| IndexMeta {
        embedding_model: String::new(),
        dimension: 0,
        chunker_version: 0,
        created_at: String::new(),
        roots: Default::default(),
    });
    let mut names: Vec<&String> = meta.roots.keys().chain(stats.roots.keys()).collect();
    names.sort();
    names.dedup();
    let roots = names
        .into_iter()
        .map(|name| {
            let state = meta.roots.get(name).cloned().unwrap_or_default();
            let counts = stats.roots.get(name).cloned().unwrap_or_default();
            RootStatus {
                name: name.clone(),
                path: state.path,
                url: state.url,
                documents: counts.documents,
                chunks: counts.chunks,
                last_sync: state.last_sync,
            }
        })
        .collect();
    let out = StatusOutput {
        location: wiring::store_location(settings),
        embedding_model,
        dimension,
        chunker_version,
        created_at,
        vector_bits: store.vector_bits(),
        documents: stats.documents,
        chunks: stats.chunks,
        roots,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("index:     {}", out.location);
        match (&out.embedding_model, out.dimension, out.chunker_version, &out.created_at) {
            (Some(model), Some(dim), Some(chunker), Some(created)) => {
                println!("model:     {model} ({dim} dimensions), chunker v{chunker}");
                println!("created:   {created}");
            }
            _ => println!("model:     none yet: the index is empty (run `supportbot-ingest PATH`)"),
        }
        match out.vector_bits {
            Some(32) => println!(
                "vectors:   32-bit floats (`supportbot-ingest --rebuild` stores them in half the memory and disk)"
            ),
            Some(bits) => println!("vectors:   {bits}-bit floats"),
            None => {}
        }
        println!("contents:  {} documents, {} chunks", out.documents, out.chunks);
        for r in &out.roots {
            println!(
                "  {:<16} {:>5} documents {:>6} chunks  last sync {}  ({})",
                r.name,
                r.documents,
                r.chunks,
                r.last_sync.as_deref().unwrap_or("never"),
                r.path
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens the index and the embedder, checks they belong together, and builds the Answerer.
async fn open_answerer(
    settings: &Settings,
    backend: Option<&str>,
    memory: Arc<dyn ConversationMemory>,
) -> anyhow::Result<Answerer> {
    Ok(open_services(settings, backend, memory).await?.1)
}

/// The searcher and the Answerer around it.
async fn open_services(
    settings: &Settings,
    backend: Option<&str>,
    memory: Arc<dyn ConversationMemory>,
) -> anyhow::Result<(Searcher, Answerer)> {
    let (searcher, meta) = open_searcher(settings).await?;
    let (chain, unavailable) = wiring::model_chain(settings, backend);
    if let Some(name) = backend
        && let Some((_, error)) = unavailable.iter().find(|(n, _)| n == name)
    {
        anyhow::bail!("backend `{name}` is not usable: {error}");
    }
    for (name, error) in &unavailable {
        eprintln!("note: backend `{name}` left out of the chain: {error}");
    }
    let answerer = Answerer::new(
        searcher.clone(),
        chain,
        memory,
        wiring::answer_config(settings),
        wiring::root_urls(settings, Some(&meta)),
    );
    Ok((searcher, answerer))
}

async fn eval(settings: &Settings, args: EvalArgs) -> anyhow::Result<ExitCode> {
    let cases = crate::eval::read_cases(&args.files)?;
    let limits = crate::eval::parse_limits(&args.min, &args.max, &cases)?;
    let baseline = args.baseline.as_deref().map(crate::eval::read_baseline).transpose()?;
    if let Some(path) = &args.report {
        crate::eval::check_writable(path)?;
    }
    let memory: Arc<dyn ConversationMemory> = Arc::new(InMemoryMemory::new(wiring::memory_limits(settings)));
    let (searcher, answerer) = open_services(settings, args.backend.as_deref(), memory).await?;
    let pages = crate::eval::indexed_pages(searcher.store().as_ref()).await?;
    let unindexed = crate::eval::unindexed(&cases, pages.iter().map(String::as_str));
    for warning in crate::eval::unindexed_warnings(&unindexed) {
        eprintln!("{warning}");
    }
    let results =
        crate::eval::run(&cases, &searcher, &answerer, args.backend.as_deref(), settings.answer.max_passages).await?;
    let report = crate::eval::report(results, unindexed);
    if report.overall.failed > 0 {
        eprintln!("eval: warning: {}", crate::eval::failed_summary(&report));
    }
    let json = if args.json || args.report.is_some() { Some(serde_json::to_string_pretty(&report)?) } else { None };
    if let (true, Some(json)) = (args.json, &json) {
        println!("{json}");
    } else {
        crate::eval::print_table(&report);
        if args.sweep {
            crate::eval::print_sweep(&report.cases);
        }
        if args.misses {
            println!();
            print!("{}", crate::eval::misses(&report));
        }
        if let Some(baseline) = &baseline {
            println!();
            print!("{}", crate::eval::compare(&report, baseline));
        }
    }
    // Written after the table, so a report that cannot be written loses nothing on screen.
    if let (Some(path), Some(json)) = (&args.report, &json) {
        std::fs::write(path, json).map_err(|e| anyhow::anyhow!("writing the report to {}: {e}", path.display()))?;
    }
    let failures = crate::eval::check_limits(&report, &limits)?;
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("eval: {f}");
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints an answer for a person: the text, then its sources.
fn print_answer(a: &Answer) {
    println!("{}", a.text);
    print_sources(a);
}

fn print_sources(a: &Answer) {
    if a.citations.is_empty() {
        return;
    }
    println!();
    println!("Sources:");
    for c in &a.citations {
        let link = c.url.as_deref().unwrap_or(&c.citation);
        println!("  [{}] {} — {}", c.n, c.title, link);
    }
}

async fn ask(settings: &Settings, args: AskArgs) -> anyhow::Result<ExitCode> {
    let question = args.question.join(" ");
    let (memory, conversation): (Arc<dyn ConversationMemory>, String) = match &args.conversation {
        Some(id) => {
            let dir = settings.store.path.parent().unwrap_or(&settings.store.path).join("conversations");
            (Arc::new(FileMemory::new(dir, wiring::memory_limits(settings))), id.clone())
        }
        None => (Arc::new(InMemoryMemory::new(wiring::memory_limits(settings))), "cli".to_string()),
    };
    let answerer = open_answerer(settings, args.backend.as_deref(), memory).await?;
    let answer = answerer.answer(&Incoming::new("cli", &conversation, "cli", &question), args.backend.as_deref()).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&AskOutput::new(&question, &answer))?);
    } else {
        print_answer(&answer);
        if let Some(backend) = &answer.backend {
            eprintln!("({:?} by {backend} in {} ms)", answer.outcome, answer.latency.total);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn chat(settings: &Settings, args: ChatArgs) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    let memory: Arc<dyn ConversationMemory> = Arc::new(InMemoryMemory::new(wiring::memory_limits(settings)));
    let answerer = open_answerer(settings, args.backend.as_deref(), memory).await?;
    let conversation = format!("chat-{}", std::process::id());
    eprintln!("Ask a question (empty line or Ctrl-D to quit). Backends: {}", answerer.chain().names().join(" → "));
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(tokio::io::stdin()));
    loop {
        eprint!("> ");
        let _ = std::io::stderr().flush();
        let Some(line) = lines.next_line().await? else { break };
        let question = line.trim();
        if question.is_empty() || question == "/quit" {
            break;
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let printer = tokio::spawn(async move {
            let mut out = std::io::stdout();
            while let Some(piece) = rx.recv().await {
                let _ = out.write_all(piece.as_bytes());
                let _ = out.flush();
            }
        });
        let incoming = Incoming::new("cli", &conversation, "cli", question);
        let answer = answerer.answer_streaming(&incoming, args.backend.as_deref(), tx).await;
        let _ = printer.await;
        println!();
        print_sources(&answer);
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve(settings: &Settings) -> anyhow::Result<ExitCode> {
    let memory: Arc<dyn ConversationMemory> = Arc::new(InMemoryMemory::new(wiring::memory_limits(settings)));
    let answerer = open_answerer(settings, None, memory).await?;
    crate::serve::run(settings, answerer, crate::serve::stop_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
