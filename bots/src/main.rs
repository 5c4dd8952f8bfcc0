//! `supportbot`: the entry point of the answering side (ask, chat, search, serve the chat channels
//! and the operator console, eval, status, config and review commands); see `cli`.

use std::process::ExitCode;

use clap::Parser as _;
use supportbot_bots::cli;

fn main() -> ExitCode {
    supportbot_core::program::run("supportbot", 2, || cli::run(cli::Cli::parse()))
}
