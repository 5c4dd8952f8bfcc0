//! `supportbot`: the entry point of the answering side (ask, chat, search, serve the chat channels
//! and the operator console, eval, status, config and review commands); see `cli`.

use std::process::ExitCode;

use clap::Parser as _;
use supportbot_bots::cli;

fn main() -> ExitCode {
    // Before tokio starts its threads.
    supportbot_core::embed::opt_out_of_runtime_telemetry();
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("supportbot: cannot start the async runtime: {e}");
            ExitCode::from(2)
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
    match cli::run(cli::Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("supportbot: {e:#}");
            ExitCode::from(2)
        }
    }
}
