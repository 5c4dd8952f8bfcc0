//! supportbot-bots: the channels that carry questions to the core (command line, Discord,
//! Telegram), the operator console and API, and the `supportbot` binary's commands.

pub mod admin;
pub mod channel;
pub mod cli;
pub mod discord;
pub mod eval;
pub mod serve;
pub mod telegram;
pub mod web;
