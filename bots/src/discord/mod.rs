//! Discord channel (serenity 0.12): `/ask`, mentions, answer channels, a thread per question,
//! forum posts and DMs, with 👍 / 👎 / "Talk to a human" buttons under each answer. A thin
//! adapter: platform-neutral behaviour (rate limits, splitting, feedback ids, the answer log)
//! lives in `crate::channel`; `bot` turns Discord events into questions and replies and is
//! testable without a gateway; this module connects it to the gateway.
//!
//! The REST base URL is `discord.api_url`. Pointed anywhere but `https://discord.com` (a test
//! fake, a shared rate-limit proxy), serenity's own rate limiter must be off, because it ignores
//! the URL; sends then wait out 429s themselves (`send::with_retry`).

mod bot;
mod commands;
mod deliver;
mod escalate;
mod send;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use futures::FutureExt as _;
use serenity::all::{
    ApplicationId, ChannelId, ClientBuilder, Context, EventHandler, GatewayIntents, GuildChannel, Interaction, Message,
    Ready,
};
use serenity::http::{Http, HttpBuilder};
use supportbot_config::DiscordSettings;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use bot::{DiscordBot, Handled, MessageContext, PLATFORM, conversation, delivery, strip_mention};
pub use commands::{ASK_COMMAND, Registration, ask_command, register_commands};
pub use deliver::{DiscordDeliverer, deliverer};
pub use send::{
    APOLOGY, MESSAGE_LIMIT, RetryPolicy, answer_buttons, answer_parts, is_rate_limited, no_mentions, with_retry,
};

use crate::channel::ChannelCore;

/// Discord's own API; any other `discord.api_url` is used through serenity's proxy setting.
pub const DEFAULT_API_URL: &str = "https://discord.com";

/// How long, after the gateway stopped, deliveries in flight may still take (serve.rs gives the
/// channel task ten seconds).
const DRAIN: Duration = Duration::from_secs(8);

/// The Discord settings the adapter needs (everything but the token).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiscordOptions {
    /// Register `/ask` in these guilds; empty registers it globally.
    pub command_guilds: Vec<u64>,
    /// Guilds answered in; empty means all.
    pub allowed_guilds: Vec<u64>,
    /// Channels where every message is a question.
    pub answer_channels: Vec<u64>,
    /// Forum channels whose new posts are answered.
    pub forum_channels: Vec<u64>,
    pub thread_per_question: bool,
    pub dms: bool,
    /// The operators' channel (escalations), if configured.
    pub operator_channel: Option<u64>,
    /// Waiting out 429s.
    pub retry: RetryPolicy,
}

impl DiscordOptions {
    pub fn from_settings(settings: &DiscordSettings) -> Self {
        Self {
            command_guilds: settings.command_guilds.clone(),
            allowed_guilds: settings.allowed_guilds.clone(),
            answer_channels: settings.answer_channels.clone(),
            forum_channels: settings.forum_channels.clone(),
            thread_per_question: settings.thread_per_question,
            dms: settings.dms,
            operator_channel: settings.operator_channel,
            retry: RetryPolicy::default(),
        }
    }

    /// The gateway intents these options need. Reading ordinary messages (answer channels, forum
    /// posts) needs the privileged MESSAGE_CONTENT intent, which must be enabled in the Developer
    /// Portal; it is only asked for when used, because asking without the portal switch makes
    /// Discord refuse the connection. Mentions and DMs carry their content without it.
    pub fn intents(&self) -> GatewayIntents {
        let mut intents = GatewayIntents::GUILDS | GatewayIntents::GUILD_MESSAGES;
        if self.dms {
            intents |= GatewayIntents::DIRECT_MESSAGES;
        }
        if !self.answer_channels.is_empty() || !self.forum_channels.is_empty() || self.operator_channel.is_some() {
            intents |= GatewayIntents::MESSAGE_CONTENT;
        }
        intents
    }
}

/// serenity's REST client for `api_url`: Discord itself with serenity's rate limiter, or another
/// base URL through serenity's proxy setting with the rate limiter off (it would send to
/// discord.com regardless). Messages default to no allowed mentions as a second line of defence.
pub fn build_http(token: &str, api_url: &str, application_id: Option<u64>) -> Http {
    let mut builder = HttpBuilder::new(token).default_allowed_mentions(no_mentions());
    let url = api_url.trim().trim_end_matches('/');
    if url != DEFAULT_API_URL {
        builder = builder.proxy(url).ratelimiter_disabled(true);
    }
    if let Some(id) = application_id.filter(|&id| id != 0) {
        builder = builder.application_id(ApplicationId::new(id));
    }
    builder.build()
}

/// Starts the Discord channel (gateway connection, `/ask`, mentions, buttons). It stops taking
/// events when `shutdown` is cancelled; the task ends once the gateway is down and the replies
/// being delivered are sent.
pub async fn start(
    core: Arc<ChannelCore>,
    settings: &DiscordSettings,
    shutdown: CancellationToken,
) -> anyhow::Result<JoinHandle<anyhow::Result<()>>> {
    let token = settings.token.as_ref().context("discord.token is not set")?;
    let http = build_http(token.expose(), &settings.api_url, settings.application_id);
    let options = DiscordOptions::from_settings(settings);
    let intents = options.intents();
    if let Some(channel) = options.operator_channel {
        let escalator = escalate::DiscordEscalator {
            http: Arc::new(build_http(token.expose(), &settings.api_url, settings.application_id)),
            channel: serenity::all::ChannelId::new(channel),
            retry: options.retry.clone(),
        };
        core.add_escalator(Arc::new(escalator));
    }
    let gateway = Gateway {
        bot: DiscordBot::new(core, options),
        registered: AtomicBool::new(false),
        busy: Arc::new(Busy::default()),
    };
    let busy = gateway.busy.clone();
    // `new_with_http` keeps the REST base URL (and rate-limiter choice) for everything the
    // client does, gateway discovery included.
    let mut client = ClientBuilder::new_with_http(http, intents)
        .event_handler(gateway)
        .await
        .context("building the Discord client")?;
    tracing::info!(api_url = %settings.api_url, ?intents, "starting the Discord channel");
    Ok(tokio::spawn(async move {
        let manager = client.shard_manager.clone();
        let run = client.start_autosharded();
        tokio::pin!(run);
        tokio::select! {
            result = &mut run => return result.context("Discord gateway"),
            () = shutdown.cancelled() => {}
        }
        // Shards may still be starting; ask until the client returns.
        tracing::info!("stopping the Discord gateway");
        let stopped = async {
            loop {
                manager.shutdown_all().await;
                if let Ok(result) = tokio::time::timeout(Duration::from_millis(250), &mut run).await {
                    return result;
                }
            }
        };
        match tokio::time::timeout(DRAIN, stopped).await {
            Ok(Err(e)) => tracing::warn!(error = %e, "the Discord gateway stopped with an error"),
            Ok(Ok(())) => {}
            Err(_) => tracing::warn!("the Discord gateway did not stop in time"),
        }
        if !busy.wait_idle(DRAIN).await {
            tracing::warn!(busy = busy.count(), "Discord replies still being delivered at shutdown");
        }
        Ok(())
    }))
}

/// Counts events being handled, so shutdown can wait for their replies to be delivered (the
/// core only counts the answering).
#[derive(Debug, Default)]
struct Busy {
    count: AtomicUsize,
    idle: Notify,
}

struct BusyGuard<'a>(&'a Busy);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Busy {
    fn enter(&self) -> BusyGuard<'_> {
        self.count.fetch_add(1, Ordering::SeqCst);
        BusyGuard(self)
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    async fn wait_idle(&self, grace: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let notified = self.idle.notified();
            if self.count() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.count() == 0;
            }
        }
    }
}

/// serenity's event handler: nothing but plumbing into `DiscordBot`.
struct Gateway {
    bot: DiscordBot,
    registered: AtomicBool,
    busy: Arc<Busy>,
}

impl Gateway {
    /// Runs one event's handling, counted for shutdown, with a panic logged instead of lost
    /// (serenity runs each event in its own task, so a panic never reaches other conversations).
    async fn run(&self, event: &'static str, work: impl Future<Output = Handled>) {
        let _busy = self.busy.enter();
        match AssertUnwindSafe(work).catch_unwind().await {
            Ok(Handled::Ignored(reason)) => tracing::trace!(event, reason, "Discord event ignored"),
            Ok(handled) => tracing::debug!(event, ?handled, "Discord event handled"),
            Err(_) => tracing::error!(event, "handling a Discord event panicked"),
        }
    }
}

/// The parent channel of the thread `channel` is, if the cache knows it as a thread.
fn thread_parent(ctx: &Context, guild: Option<serenity::all::GuildId>, channel: ChannelId) -> Option<ChannelId> {
    let guild = ctx.cache.guild(guild?)?;
    guild.threads.iter().find(|t| t.id == channel).and_then(|t| t.parent_id)
}

#[serenity::async_trait]
impl EventHandler for Gateway {
    async fn ready(&self, ctx: Context, ready: Ready) {
        tracing::info!(user = %ready.user.name, guilds = ready.guilds.len(), "Discord gateway ready");
        // READY comes again after every full reconnect; registering once per process is enough.
        if self.registered.swap(true, Ordering::SeqCst) {
            return;
        }
        let options = self.bot.options();
        if let Err(e) = register_commands(&ctx.http, &options.command_guilds, options.dms, &options.retry).await {
            tracing::error!(error = %e, "could not register /ask; it is retried at the next READY");
            self.registered.store(false, Ordering::SeqCst);
        }
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        self.run("interaction", self.bot.handle_interaction(&ctx.http, &interaction)).await;
    }

    async fn message(&self, ctx: Context, message: Message) {
        let context = MessageContext {
            bot_id: ctx.cache.current_user().id,
            thread_parent: thread_parent(&ctx, message.guild_id, message.channel_id),
        };
        self.run("message", self.bot.handle_message(&ctx.http, &message, &context)).await;
    }

    async fn thread_create(&self, ctx: Context, thread: GuildChannel) {
        let bot_id = ctx.cache.current_user().id;
        self.run("thread", self.bot.handle_thread_create(&ctx.http, &thread, bot_id)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_api_url_goes_through_the_proxy_setting_without_the_rate_limiter() {
        let discord = build_http("t", "https://discord.com/", Some(1234));
        assert!(discord.proxy.is_none() && discord.ratelimiter.is_some());
        assert_eq!(discord.application_id(), Some(ApplicationId::new(1234)));
        let proxied = build_http("t", "http://127.0.0.1:9/", None);
        assert_eq!(proxied.proxy.as_deref(), Some("http://127.0.0.1:9"));
        assert!(proxied.ratelimiter.is_none(), "serenity's rate limiter would ignore the proxy");
        assert_eq!(proxied.application_id(), None);
    }

    #[test]
    fn message_content_is_only_asked_for_when_needed() {
        let plain = DiscordOptions::default();
        assert!(!plain.intents().contains(GatewayIntents::MESSAGE_CONTENT));
        assert!(!plain.intents().contains(GatewayIntents::DIRECT_MESSAGES));
        let busy = DiscordOptions { answer_channels: vec![1], dms: true, ..DiscordOptions::default() };
        assert!(busy.intents().contains(GatewayIntents::MESSAGE_CONTENT | GatewayIntents::DIRECT_MESSAGES));
        let forum = DiscordOptions { forum_channels: vec![1], ..DiscordOptions::default() };
        assert!(forum.intents().contains(GatewayIntents::MESSAGE_CONTENT));
    }
}
