//! `supportbot-ingest`: sync documentation and FAQ files into the knowledge index.

use std::process::ExitCode;

use clap::Parser as _;
use supportbot_ingest::cli;

fn main() -> ExitCode {
    // Before tokio starts its threads.
    supportbot_ingest::memory::limit_malloc_arenas();
    supportbot_core::embed::opt_out_of_runtime_telemetry();
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("supportbot-ingest: cannot start the async runtime: {e}");
            ExitCode::from(cli::EXIT_FAILED)
        }
    }
}

async fn run() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn,qdrant_edge=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli::run(cli::Args::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("supportbot-ingest: {e:#}");
            ExitCode::from(cli::EXIT_FAILED)
        }
    }
}
