//! `supportbot-ingest`: sync documentation and FAQ files into the knowledge index.

use std::process::ExitCode;

use clap::Parser as _;
use supportbot_ingest::cli;

#[tokio::main]
async fn main() -> ExitCode {
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
