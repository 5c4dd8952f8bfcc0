//! The `supportbot` command line: `search`, `status` and `config check`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use serde::Serialize;
use supportbot_config::Settings;
use supportbot_core::document::{DocKind, citation};
use supportbot_core::embed::Embedder;
use supportbot_core::search::{SearchResult, Searcher};
use supportbot_core::store::{KnowledgeStore, SearchFilter, StoreError};
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
    /// Show the passages the index returns for a question.
    Search(SearchArgs),
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
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print it as it takes effect (secrets redacted).
    Check,
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

/// Where `scripts/setup` installs model assets: `$XDG_DATA_HOME/supportbot`, else
/// `$HOME/.local/share/supportbot`.
fn default_data_dir() -> PathBuf {
    match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d).join("supportbot"),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/share/supportbot"),
    }
}

fn load_settings(explicit: Option<&std::path::Path>) -> anyhow::Result<supportbot_config::Loaded> {
    let ctx = supportbot_config::LoadContext {
        cwd: std::env::current_dir().context("reading the working directory")?,
        data_dir: default_data_dir(),
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
    }
}

async fn open_for_reading(settings: &Settings) -> anyhow::Result<Arc<dyn KnowledgeStore>> {
    wiring::open_store(settings, 0, false).await.map_err(|e| match e {
        StoreError::Missing(_) => {
            anyhow::anyhow!("no index at {}: run `supportbot-ingest PATH` first", wiring::store_location(settings))
        }
        other => anyhow::Error::new(other).context(format!("opening the index ({})", wiring::store_location(settings))),
    })
}

async fn search(settings: &Settings, args: SearchArgs) -> anyhow::Result<ExitCode> {
    let question = args.question.join(" ");
    let store = open_for_reading(settings).await?;
    let s = settings.clone();
    let embedder: Arc<dyn Embedder> = tokio::task::spawn_blocking(move || wiring::embedder(&s)).await??;
    let meta = store.meta().await?.context("the index is empty: run `supportbot-ingest PATH` first")?;
    wiring::compatibility(embedder.model_id(), embedder.dimension()).check(&meta)?;
    let searcher = Searcher::new(store, embedder, wiring::search_params(settings));
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
    let meta = meta.unwrap_or_else(|| supportbot_core::store::IndexMeta {
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
