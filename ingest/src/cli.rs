//! The `supportbot-ingest` command line: arguments, settings, and the printed summary.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use supportbot_config::Settings;
use supportbot_core::embed::Embedder;
use supportbot_core::store::StoreError;
use supportbot_core::wiring;

use crate::chunker::Chunker;
use crate::pipeline::{self, IngestOptions, RootSpec, Services, Summary};

/// Sync documentation and FAQ files into the supportbot knowledge index.
#[derive(Debug, Parser)]
#[command(name = "supportbot-ingest", version)]
pub struct Args {
    /// Configuration file (default: supportbot.toml in the working directory, if present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the plan (added, changed, removed, unchanged) without writing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Empty the whole index and ingest from scratch (needed after changing the embedding model).
    #[arg(long)]
    pub rebuild: bool,
    /// Print a machine-readable JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write the chunks that would be embedded to FILE as JSON lines and exit, without touching
    /// the index (for benchmarks, and to inspect how documents are cut).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["dry_run", "rebuild"])]
    pub export_chunks: Option<PathBuf>,
    /// Directories or files to ingest; each is one source root. Default: every configured [[sources]].
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// Exit codes: 0 all went well, 1 some files were skipped, 2 the run failed.
pub const EXIT_SKIPPED: u8 = 1;
pub const EXIT_FAILED: u8 = 2;

/// Loads settings the way every supportbot binary does: working directory, environment, `--config`.
pub fn load_settings(explicit: Option<&Path>) -> anyhow::Result<Settings> {
    let ctx = supportbot_config::LoadContext {
        cwd: std::env::current_dir().context("reading the working directory")?,
        data_dir: supportbot_config::data_dir(|k| std::env::var_os(k)),
        env: std::env::vars().collect(),
        explicit_file: explicit.map(Path::to_path_buf),
    };
    Ok(supportbot_config::load(&ctx)?.settings)
}

/// Names each PATH: the `[[sources]]` entry with the same path, else the directory name.
pub fn resolve_roots(settings: &Settings, paths: &[PathBuf]) -> anyhow::Result<Vec<RootSpec>> {
    if paths.is_empty() {
        if settings.sources.is_empty() {
            anyhow::bail!("nothing to ingest: give a PATH, or configure [[sources]] in supportbot.toml");
        }
        return Ok(settings
            .sources
            .iter()
            .map(|s| RootSpec { name: s.name.clone(), path: s.path.clone(), url: s.url.clone(), tags: s.tags.clone() })
            .collect());
    }
    let mut roots: Vec<RootSpec> = Vec::new();
    for path in paths {
        let canonical = std::fs::canonicalize(path).with_context(|| format!("source path {}", path.display()))?;
        let configured = settings.sources.iter().find(|s| std::fs::canonicalize(&s.path).is_ok_and(|p| p == canonical));
        let root = match configured {
            Some(s) => RootSpec { name: s.name.clone(), path: canonical, url: s.url.clone(), tags: s.tags.clone() },
            None => {
                let name = canonical
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .filter(|n| !n.is_empty())
                    .with_context(|| {
                        format!("cannot name the source root {}; configure it in [[sources]]", path.display())
                    })?;
                RootSpec { name, path: canonical, url: None, tags: Vec::new() }
            }
        };
        if let Some(other) = roots.iter().find(|r| r.name == root.name) {
            anyhow::bail!(
                "{} and {} would both be the source root named {:?}; give them names in [[sources]]",
                other.path.display(),
                root.path.display(),
                root.name
            );
        }
        roots.push(root);
    }
    Ok(roots)
}

/// Runs the command; `main` only reports.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = load_settings(args.config.as_deref())?;
    let roots = resolve_roots(&settings, &args.paths)?;
    let opts = IngestOptions {
        dry_run: args.dry_run,
        rebuild: args.rebuild,
        max_file_bytes: settings.ingest.max_file_bytes,
        progress: !args.json && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };

    if let Some(file) = &args.export_chunks {
        let chunker = Chunker::from_model_dir(&settings.embedding.model_dir, settings.ingest.chunk_tokens)?;
        let (chunks, failures) = pipeline::export_chunks(&roots, &chunker, settings.ingest.max_file_bytes)?;
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(file).with_context(|| format!("creating {}", file.display()))?,
        );
        for c in &chunks {
            serde_json::to_writer(&mut out, c)?;
            std::io::Write::write_all(&mut out, b"\n")?;
        }
        std::io::Write::flush(&mut out)?;
        for f in &failures {
            eprintln!("skipped {}/{}: {}", f.root, f.path, f.reason);
        }
        let tokens: usize = chunks.iter().map(|c| c.tokens).sum();
        eprintln!("wrote {} chunks ({tokens} tokens) to {}", chunks.len(), file.display());
        return Ok(if failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_SKIPPED) });
    }

    let summary = if args.dry_run {
        // A dry run needs neither the model nor a writable index.
        let store = match wiring::open_store(&settings, None).await {
            Ok(s) => Some(s),
            Err(StoreError::Missing(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let recorded = match (&store, args.rebuild) {
            (Some(store), false) => store.meta().await?.map(|m| m.embedding_model),
            _ => None,
        };
        let model_id = wiring::model_id(&settings, recorded.as_deref());
        let compatibility = Some(wiring::compatibility(&model_id, embedding_dimension(&settings)));
        pipeline::ingest(&roots, Services { store, embedder: None, chunker: None, compatibility }, &opts).await?
    } else {
        let chunker = Chunker::from_model_dir(&settings.embedding.model_dir, settings.ingest.chunk_tokens)?;
        let location = || format!("opening the index ({})", wiring::store_location(&settings));
        // An existing index is opened once, before the models: under `auto` they follow it.
        let existing = match wiring::open_store(&settings, None).await {
            Ok(store) => Some(store),
            Err(StoreError::Missing(_)) => None,
            Err(e) => return Err(anyhow::Error::new(e).context(location())),
        };
        let recorded = match (&existing, args.rebuild) {
            (Some(store), false) => store.meta().await?.map(|m| m.embedding_model),
            _ => None,
        };
        let s = settings.clone();
        let embedder: Arc<dyn Embedder> =
            tokio::task::spawn_blocking(move || wiring::embedder(&s, recorded.as_deref())).await??;
        let compatibility = wiring::compatibility(embedder.model_id(), embedder.dimension());
        let store = match existing {
            Some(store) => store,
            None => wiring::open_store(&settings, Some(compatibility.layout())).await.with_context(location)?,
        };
        let services = Services {
            store: Some(store),
            embedder: Some(embedder),
            chunker: Some(&chunker),
            compatibility: Some(compatibility),
        };
        pipeline::ingest(&roots, services, &opts).await?
    };

    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(if summary.failed > 0 { ExitCode::from(EXIT_SKIPPED) } else { ExitCode::SUCCESS })
}

/// Dimension declared by the model's `config.json` (384 when it cannot be read): a dry run
/// checks compatibility without loading the model.
fn embedding_dimension(settings: &Settings) -> usize {
    std::fs::read(settings.embedding.model_dir.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("hidden_size").and_then(|h| h.as_u64()))
        .map_or(384, |h| h as usize)
}

fn print_summary(s: &Summary) {
    for root in &s.roots {
        let p = &root.plan;
        if s.dry_run {
            println!("{} ({}): plan", root.name, root.path);
            for (label, list) in [("add", &p.added), ("change", &p.changed), ("remove", &p.removed)] {
                for source in list {
                    println!("  {label:<7}{source}");
                }
            }
            println!("  {} unchanged", p.unchanged.len());
        }
    }
    for f in &s.failures {
        eprintln!("skipped {}/{}: {}", f.root, f.path, f.reason);
    }
    let verb = if s.dry_run { "would sync" } else { "synced" };
    println!(
        "{verb} {} root(s): {} added, {} changed, {} removed, {} unchanged, {} failed",
        s.roots.len(),
        s.added,
        s.changed,
        s.removed,
        s.unchanged,
        s.failed
    );
    if !s.dry_run {
        let docs = s.added + s.changed;
        let rate = |n: usize| if s.seconds > 0.0 { n as f64 / s.seconds } else { 0.0 };
        println!(
            "{} documents, {} chunks, {} tokens embedded in {:.1} s ({:.1} chunks/s, {:.0} tokens/s; embedding {:.1} s)",
            docs,
            s.chunks,
            s.tokens,
            s.seconds,
            rate(s.chunks),
            rate(s.tokens),
            s.embed_seconds
        );
    }
}
