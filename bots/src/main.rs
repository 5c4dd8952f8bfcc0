//! `supportbot`: search the knowledge index, check the configuration, show index status.

use std::process::ExitCode;

use clap::Parser as _;
use supportbot_bots::cli;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn,qdrant_edge=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli::run(cli::Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("supportbot: {e:#}");
            ExitCode::from(2)
        }
    }
}
