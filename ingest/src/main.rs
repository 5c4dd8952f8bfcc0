//! `supportbot-ingest`: sync documentation and FAQ files into the knowledge index.

use std::process::ExitCode;

use clap::Parser as _;
use supportbot_ingest::cli;

fn main() -> ExitCode {
    // Before any thread starts.
    supportbot_ingest::memory::limit_malloc_arenas();
    supportbot_core::program::run("supportbot-ingest", cli::EXIT_FAILED, || cli::run(cli::Args::parse()))
}
