//! supportbot-bots: the channels that carry questions to the core (command line today; Discord,
//! Telegram and the web console as they land) and the `supportbot` binary's commands.

pub mod cli;
pub mod eval;
