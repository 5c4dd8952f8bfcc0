//! The `/ask` slash command and its registration: per guild while developing (instant), or
//! globally in production (Discord takes a while to propagate global commands).

use serenity::all::{Command, CommandOptionType, CreateCommand, CreateCommandOption, GuildId, InteractionContext};
use serenity::http::Http;

use super::send::{RetryPolicy, with_retry};

pub const ASK_COMMAND: &str = "ask";

/// Longest question `/ask` accepts (Discord enforces it in the client).
const MAX_QUESTION_CHARS: u16 = 1000;

/// Where `/ask` was registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    Global,
    Guilds(Vec<u64>),
}

/// The `/ask question:<text>` command. `dms`: whether it is offered in direct messages with the
/// bot (only meaningful for a global command).
pub fn ask_command(dms: bool) -> CreateCommand {
    let mut contexts = vec![InteractionContext::Guild];
    if dms {
        contexts.push(InteractionContext::BotDm);
    }
    CreateCommand::new(ASK_COMMAND)
        .description("Ask the support bot a question about the product")
        .add_option(
            CreateCommandOption::new(CommandOptionType::String, "question", "Your question")
                .required(true)
                .max_length(MAX_QUESTION_CHARS),
        )
        .contexts(contexts)
}

/// Registers `/ask` (a bulk overwrite, so re-running is harmless): in each of `guilds`, or
/// globally when `guilds` is empty. Every guild is tried; the first error is returned.
pub async fn register_commands(
    http: &Http,
    guilds: &[u64],
    dms: bool,
    retry: &RetryPolicy,
) -> serenity::Result<Registration> {
    if guilds.is_empty() {
        with_retry(retry, "register global commands", || Command::set_global_commands(http, vec![ask_command(dms)]))
            .await?;
        tracing::info!("registered /ask globally");
        return Ok(Registration::Global);
    }
    let mut first_error = None;
    for &guild in guilds.iter().filter(|&&g| g != 0) {
        let result = with_retry(retry, "register guild commands", || {
            GuildId::new(guild).set_commands(http, vec![ask_command(dms)])
        })
        .await;
        match result {
            Ok(_) => tracing::info!(guild, "registered /ask in a guild"),
            Err(e) => {
                tracing::error!(guild, error = %e, "could not register /ask in a guild");
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(Registration::Guilds(guilds.to_vec())),
    }
}
