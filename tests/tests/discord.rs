//! The Discord channel against a fake Discord: the real Answerer over the real index of
//! `examples/` (ingested once by the real binary, copied per test) and the real ONNX model, the real `ChannelCore`, serenity's real `Http` (pointed at
//! the fake REST server through its proxy setting) fed with interactions and messages
//! deserialised from JSON fixtures, and, in one test, serenity's real gateway client connected to
//! the fake's websocket gateway. Every test runs under a timeout, so a hang fails fast.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};
use serenity::all::{ChannelId, GuildChannel, Interaction, Message, UserId};
use serenity::http::Http;
use supportbot_bots::channel::{ChannelCore, CoreOptions, NoticeKind};
use supportbot_bots::discord::{
    self, APOLOGY, DiscordBot, DiscordOptions, Handled, MESSAGE_LIMIT, MessageContext, Registration, RetryPolicy,
};
use supportbot_config::{Secret, Settings};
use supportbot_core::answer::{Answerer, Outcome};
use supportbot_core::log::{AnswerLog, FeedbackKind};
use supportbot_core::review::SqlReviewStore;
use supportbot_tests::fakes::discord::{self as fake, FakeDiscord};
use supportbot_tests::fakes::{self, openai};
use supportbot_tests::{Workspace, assets_available, copy_dir, examples_dir, open_answerer, repo_root, review_store};

/// Generous: the first test of a run also waits for the ingest of `examples/`.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Retries fast enough for tests; the 429 test checks this wait.
const RETRY_WAIT: Duration = Duration::from_millis(250);

const BOT: UserId = UserId::new(fake::BOT_USER_ID);

async fn within<F: Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_TIMEOUT, test).await.expect("the test timed out");
}

fn fixture(name: &str) -> Value {
    let path = repo_root().join("tests/fixtures/discord").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn interaction(json: Value) -> Interaction {
    serde_json::from_value(json).expect("an interaction serenity accepts")
}

fn message(json: Value) -> Message {
    serde_json::from_value(json).expect("a message serenity accepts")
}

/// The `/ask` fixture with another interaction id, token and question.
fn ask(id: u64, question: &str) -> (Interaction, String) {
    let mut json = fixture("ask_command");
    let token = format!("tok-ask-{id}");
    json["id"] = json!(id.to_string());
    json["token"] = json!(token);
    json["data"]["options"][0]["value"] = json!(question);
    (interaction(json), token)
}

fn press(custom_id: &str, token: &str) -> Interaction {
    let mut json = fixture("button_press");
    json["token"] = json!(token);
    json["data"]["custom_id"] = json!(custom_id);
    interaction(json)
}

fn options() -> DiscordOptions {
    DiscordOptions {
        retry: RetryPolicy { max_retries: 3, first_wait: RETRY_WAIT, max_wait: Duration::from_secs(1) },
        ..DiscordOptions::default()
    }
}

fn core_options(per_user: u32) -> CoreOptions {
    CoreOptions {
        per_user_per_minute: per_user,
        per_chat_per_minute: 1000,
        max_concurrent_answers: 4,
        user_salt: "discord-tests".into(),
    }
}

fn in_channel() -> MessageContext {
    MessageContext { bot_id: BOT, thread_parent: None }
}

/// Everything a test drives: the fake, serenity's `Http` pointed at it, the core and its log.
struct Harness {
    fake: FakeDiscord,
    http: Arc<Http>,
    core: Arc<ChannelCore>,
    /// The review store `supportbot serve` logs to (SQLite in the workspace).
    log: Arc<SqlReviewStore>,
    /// Last: the index directory must outlive the store in the core, which flushes on drop.
    _workspace: Workspace,
}

impl Harness {
    fn bot(&self, options: DiscordOptions) -> DiscordBot {
        DiscordBot::new(self.core.clone(), options)
    }
}

async fn harness_with(workspace: Workspace, answerer: Answerer, core: CoreOptions) -> Harness {
    let fake = FakeDiscord::start().await;
    // The production constructor: proxy to the fake, serenity's rate limiter off.
    let http = Arc::new(discord::build_http(fake::TOKEN, &fake.base_url, Some(fake::APPLICATION_ID)));
    let log = Arc::new(review_store(workspace.path()).await);
    let core = Arc::new(ChannelCore::new(answerer, log.clone(), core));
    Harness { _workspace: workspace, fake, http, core, log }
}

/// A harness over the examples with the default chain (extractive). `None`: assets missing.
async fn harness(test: &str) -> Option<Harness> {
    let (workspace, answerer) = examples(test, |_| {}).await?;
    Some(harness_with(workspace, answerer, core_options(1000)).await)
}

/// `examples/` ingested once per test process by the real `supportbot-ingest` (what
/// `examples_answerer` does for every call, about ten seconds in a debug build); each test then
/// opens its own copy of the index, so tests stay independent. The shared copy lives in the
/// target's tmp directory; copies older than an hour (from earlier runs) are removed.
fn examples_index(test: &str) -> Option<PathBuf> {
    static INDEX: OnceLock<Option<PathBuf>> = OnceLock::new();
    INDEX
        .get_or_init(|| {
            if !assets_available(test) {
                return None;
            }
            let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
            for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
                let stale = entry.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
                if entry.file_name().to_string_lossy().starts_with("discord-examples-")
                    && stale.is_some_and(|age| age > Duration::from_secs(3600))
                {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
            let scratch = Workspace::new();
            let (code, summary) = scratch.ingest_json(&[examples_dir().to_str().expect("utf-8 path")]);
            assert_eq!(code, 0, "{summary}");
            let index = root.join(format!("discord-examples-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&index);
            copy_dir(&scratch.index_dir(), &index);
            Some(index)
        })
        .clone()
}

/// An Answerer over a copy of the examples' index, configured like `examples_answerer`.
async fn examples(test: &str, configure: impl FnOnce(&mut Settings)) -> Option<(Workspace, Answerer)> {
    let index = examples_index(test)?;
    let workspace = Workspace::new();
    copy_dir(&index, &workspace.index_dir());
    let answerer = open_answerer(&workspace, configure).await;
    Some((workspace, answerer))
}

/// An Answerer over a knowledge base of our own (`docs`).
async fn answerer_over(test: &str, docs: &Path) -> Option<(Workspace, Answerer)> {
    if !assets_available(test) {
        return None;
    }
    let workspace = Workspace::new();
    let (code, summary) = workspace.ingest_json(&[docs.to_str().expect("utf-8 path")]);
    assert_eq!(code, 0, "{summary}");
    let answerer = open_answerer(&workspace, |_| {}).await;
    Some((workspace, answerer))
}

/// The allowed mentions of a message body permit nothing: no parse, no users, no roles, and a
/// reply does not ping its author. This is what serenity sends for `no_mentions()`.
#[track_caller]
fn assert_no_mentions_allowed(body: &Value) {
    let allowed = &body["allowed_mentions"];
    assert_eq!(
        allowed,
        &json!({"parse": [], "users": [], "roles": [], "replied_user": false}),
        "allowed_mentions of {body}"
    );
}

/// Discord resolved no mention in a message the bot sent (the fake resolves them as Discord does).
#[track_caller]
fn assert_pings_nobody(message: &Value) {
    assert_eq!(message["mention_everyone"], false, "{message}");
    assert_eq!(message["mentions"], json!([]), "{message}");
    assert_eq!(message["mention_roles"], json!([]), "{message}");
}

/// The custom ids of the buttons of a message body.
fn buttons(body: &Value) -> Vec<String> {
    body["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .filter_map(|b| b["custom_id"].as_str().map(str::to_string))
        .collect()
}

fn answered(handled: &Handled) -> (String, Outcome) {
    match handled {
        Handled::Answered { answer_id, outcome } => (answer_id.clone(), *outcome),
        other => panic!("expected an answer, got {other:?}"),
    }
}

fn content(body: &Value) -> String {
    body["content"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn ask_defers_then_edits_in_the_answer_with_three_buttons() {
    within(async {
        let Some(h) = harness("ask_defers_then_edits_in_the_answer_with_three_buttons").await else { return };
        let bot = h.bot(options());
        let handled = bot.handle_interaction(&h.http, &interaction(fixture("ask_command"))).await;
        let (answer_id, outcome) = answered(&handled);
        assert_ne!(outcome, Outcome::Abstained);

        let requests = h.fake.requests();
        let defer = requests.iter().position(|r| r.is("POST", "/interactions/9001/tok-ask-9001/callback"));
        let edit = requests.iter().position(|r| r.is("PATCH", "/webhooks/1234/tok-ask-9001/messages/@original"));
        let (Some(defer), Some(edit)) = (defer, edit) else { panic!("no deferral or no edit: {requests:#?}") };
        assert!(defer < edit, "the deferral must come first");
        assert_eq!(requests[defer].body["type"], 5, "a deferred channel message: {}", requests[defer].body);
        assert_eq!(requests.iter().filter(|r| r.path.contains("/webhooks/")).count(), 1, "one part, no followups");

        let body = &requests[edit].body;
        let text = content(body);
        assert!(text.contains("Sources"), "{text}");
        assert!(text.chars().count() <= MESSAGE_LIMIT);
        assert_eq!(
            buttons(body),
            [format!("fb:u:{answer_id}"), format!("fb:d:{answer_id}"), format!("fb:h:{answer_id}")]
        );
        let labels: Vec<&str> = body["components"][0]["components"]
            .as_array()
            .expect("buttons")
            .iter()
            .filter_map(|b| b["label"].as_str())
            .collect();
        assert_eq!(labels, ["👍", "👎", "Talk to a human"]);
        assert_no_mentions_allowed(body);

        // The exchange is logged with where a person's reply must go.
        let exchange = h.log.exchange(&answer_id).await.expect("log").expect("logged");
        assert_eq!(exchange.channel, "discord");
        assert_eq!(exchange.conversation, "discord:2002:5005");
        assert_eq!(exchange.question, "How much memory does the server need at minimum?");
        assert_eq!(
            exchange.delivery,
            json!({"platform": "discord", "channel_id": "2002", "message_id": null, "guild_id": "4004",
                "thread_id": null, "interaction_token": "tok-ask-9001"})
        );
        assert!(!exchange.user.contains("5005"), "user ids are pseudonymous: {}", exchange.user);

        // An abstention offers only a person.
        let (off_topic, token) = ask(9003, "What is the best pizza topping in Naples?");
        let handled = bot.handle_interaction(&h.http, &off_topic).await;
        let (abstained_id, outcome) = answered(&handled);
        assert_eq!(outcome, Outcome::Abstained);
        let edit = h.fake.requests_to("PATCH", &format!("/{token}/messages/@original"));
        assert_eq!(buttons(&edit[0].body), [format!("fb:h:{abstained_id}")]);
    })
    .await;
}

#[tokio::test]
async fn button_presses_are_recorded_and_acknowledged_ephemerally() {
    within(async {
        let Some(h) = harness("button_presses_are_recorded_and_acknowledged_ephemerally").await else { return };
        let bot = h.bot(options());
        let (answer_id, _) = answered(&bot.handle_interaction(&h.http, &interaction(fixture("ask_command"))).await);

        for (n, (prefix, kind)) in [("u", FeedbackKind::Up), ("h", FeedbackKind::Human)].into_iter().enumerate() {
            let token = format!("tok-press-{n}");
            let handled = bot.handle_interaction(&h.http, &press(&format!("fb:{prefix}:{answer_id}"), &token)).await;
            let Handled::Pressed(ack) = handled else { panic!("expected a press, got {handled:?}") };
            assert_eq!(ack.recorded, Some(kind));
            let callback = h.fake.requests_to("POST", &format!("/interactions/9101/{token}/callback"));
            assert_eq!(callback.len(), 1, "acknowledged once");
            let body = &callback[0].body;
            assert_eq!(body["type"], 4, "a message response: {body}");
            assert_eq!(body["data"]["flags"], 64, "ephemeral: {body}");
            assert_eq!(content(&body["data"]), ack.text);
            assert_no_mentions_allowed(&body["data"]);
        }
        let feedback = h.log.feedback_for(&answer_id).await.expect("log");
        let kinds: Vec<FeedbackKind> = feedback.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, [FeedbackKind::Up, FeedbackKind::Human]);
        assert!(feedback.iter().all(|f| f.user == h.core.user_id("discord", "5005")));

        // Forged or foreign buttons are acknowledged too, and record nothing.
        for (n, forged) in ["fb:d:0000000000000000000000000000dead", "someone-elses-button"].into_iter().enumerate() {
            let token = format!("tok-forged-{n}");
            let Handled::Pressed(ack) = bot.handle_interaction(&h.http, &press(forged, &token)).await else {
                panic!("a press")
            };
            assert_eq!(ack.recorded, None);
            assert_eq!(h.fake.requests_to("POST", &format!("/{token}/callback")).len(), 1);
        }
        assert_eq!(h.log.feedback_for(&answer_id).await.expect("log").len(), 2);
    })
    .await;
}

/// A long answer written by a model (through the OpenAI-compatible fake), with a code block
/// and mention syntax in it.
fn long_answer() -> String {
    let para = "Driftwood needs at least 2 GB of memory for the server process and its caches [1]. ";
    let code: String = (0..60).map(|i| format!("drift config set cache.segment.{i} 64MiB\n")).collect();
    format!(
        "{p}\n\n{p}{p}\n\n@everyone and @here: tune these <@&4242> <@5005>\n\n```bash\n{code}```\n\n{p}\n\n{p}{p}{p}\n\n{p}{p}{p}{p}\n\nDone.",
        p = para.repeat(3)
    )
}

#[tokio::test]
async fn long_answers_split_and_the_deferral_comes_before_a_slow_model() {
    within(async {
        let test = "long_answers_split_and_the_deferral_comes_before_a_slow_model";
        let text = long_answer();
        assert!(text.chars().count() > 2 * MESSAGE_LIMIT);
        // The model does not answer until the test has seen the deferral.
        let gate = fakes::Gate::default();
        let model = openai::start([fakes::Reply::held(&gate, fakes::Reply::text(&text))]).await;
        let Some((workspace, answerer)) = examples(test, |s: &mut Settings| {
            s.openai.base_url = Some(model.base_url.clone());
            s.openai.api_key = Some(Secret::new(openai::API_KEY));
        })
        .await
        else {
            return;
        };
        let h = harness_with(workspace, answerer, core_options(1000)).await;
        let bot = Arc::new(h.bot(options()));
        let (slow_ask, token) = ask(9010, "How much memory does the server need at minimum?");
        let task = {
            let (bot, http) = (bot.clone(), h.http.clone());
            tokio::spawn(async move { bot.handle_interaction(&http, &slow_ask).await })
        };
        // The deferral goes out before the model's answer (Discord allows 3 s for it): here the
        // model answers only once the deferral has been seen.
        let deferral = h.fake.wait_for("POST", &format!("/{token}/callback"), 1, Duration::from_secs(20)).await;
        assert_eq!(deferral.len(), 1, "no deferral while the model was still thinking");
        gate.open();
        let handled = task.await.expect("join");
        let (answer_id, outcome) = answered(&handled);
        assert_eq!(outcome, Outcome::Answered);
        assert_eq!(model.request_count(), 1);

        // The original response, then followups: each within the limit, fences balanced,
        // buttons on the last part only, no mention allowed or resolved anywhere.
        let parts = h.fake.interaction_messages(&token);
        assert!(parts.len() >= 3, "{} parts", parts.len());
        check_parts(&parts, &answer_id);
        let joined: String = parts.iter().map(content).collect::<Vec<_>>().join("\n");
        assert_eq!(joined.matches("drift config set cache.segment.").count(), 60, "a code line was lost");
        assert!(sources_come_last(&joined), "{joined}");

        // The same answer in a channel: replies to the question first, then plain messages.
        let handled = bot.handle_message(&h.http, &message(fixture("message_mention")), &in_channel()).await;
        let (answer_id, _) = answered(&handled);
        let parts = h.fake.messages_in(2002);
        assert!(parts.len() >= 3);
        check_parts(&parts, &answer_id);
        assert_eq!(parts[0]["message_reference"]["message_id"], "1101");
        assert!(parts[1..].iter().all(|p| p["message_reference"].is_null()));
    })
    .await;
}

/// The sources come last, after the whole text (which ends with "Done.").
fn sources_come_last(text: &str) -> bool {
    text.rfind("**Sources**").is_some_and(|s| text.rfind("Done.").is_some_and(|d| d < s))
}

#[track_caller]
fn check_parts(parts: &[Value], answer_id: &str) {
    let last = parts.len() - 1;
    for (i, part) in parts.iter().enumerate() {
        let text = content(part);
        assert!(text.chars().count() <= MESSAGE_LIMIT, "part {i} has {} chars", text.chars().count());
        assert_eq!(text.matches("```").count() % 2, 0, "unbalanced code fence in part {i}:\n{text}");
        assert!(!text.contains("@everyone") && !text.contains("@here"), "live mention syntax in part {i}");
        assert!(!text.contains("<@&") && !text.contains("<@5005>"), "live mention syntax in part {i}");
        assert_no_mentions_allowed(part);
        assert_pings_nobody(part);
        if i == last {
            assert_eq!(buttons(part).len(), 3, "buttons on the last part");
            assert!(buttons(part).iter().all(|b| b.ends_with(answer_id)));
        } else {
            assert!(buttons(part).is_empty(), "buttons on part {i}");
        }
    }
}

#[tokio::test]
async fn a_document_that_says_everyone_pings_nobody() {
    within(async {
        let test = "a_document_that_says_everyone_pings_nobody";
        let docs = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            docs.path().join("maintenance.md"),
            "# Maintenance window @here\n\n## Weekly maintenance\n\n@everyone: the Driftwood cloud service is down for \
             maintenance every Sunday from 02:00 to 04:00 UTC. Questions go to <@&4242> or <@5005>. Sync resumes \
             automatically when the maintenance window ends.\n",
        )
        .expect("write doc");
        let Some((workspace, answerer)) = answerer_over(test, docs.path()).await else { return };
        let h = harness_with(workspace, answerer, core_options(1000)).await;
        let bot = h.bot(options());
        let (question, token) = ask(9020, "When is the weekly maintenance window of the Driftwood cloud service?");
        let (answer_id, outcome) = answered(&bot.handle_interaction(&h.http, &question).await);
        assert_ne!(outcome, Outcome::Abstained);
        let exchange = h.log.exchange(&answer_id).await.expect("log").expect("logged");
        assert!(exchange.answer.contains("@everyone"), "the answer quotes the document: {}", exchange.answer);

        let sent = h.fake.interaction_messages(&token);
        assert_eq!(sent.len(), 1);
        let text = content(&sent[0]);
        assert!(text.contains("@\u{200b}everyone"), "{text}");
        assert!(!text.contains("@everyone") && !text.contains("@here") && !text.contains("<@"), "{text}");
        assert_no_mentions_allowed(&sent[0]);
        assert_pings_nobody(&sent[0]);

        // The same through a mention in a channel, answered as a reply.
        let mut json = fixture("message_mention");
        json["content"] = json!("<@3003> When is the weekly maintenance window of the Driftwood cloud service?");
        answered(&bot.handle_message(&h.http, &message(json), &in_channel()).await);
        let sent = h.fake.messages_in(2002);
        assert_eq!(sent.len(), 1);
        assert!(!content(&sent[0]).contains("@everyone"));
        assert_no_mentions_allowed(&sent[0]);
        assert_pings_nobody(&sent[0]);
    })
    .await;
}

#[tokio::test]
async fn a_mention_is_answered_as_a_reply_and_other_messages_are_ignored() {
    within(async {
        let Some(h) = harness("a_mention_is_answered_as_a_reply_and_other_messages_are_ignored").await else { return };
        let bot = h.bot(DiscordOptions { allowed_guilds: vec![4004], ..options() });

        // Ignored: another bot, the bot itself, a guild not allowed, a message not addressed to
        // the bot, a DM while DMs are off, a system message. None of them sends anything.
        let mut own = fixture("message_mention");
        own["author"] = fake::bot_user();
        let mut other_guild = fixture("message_mention");
        other_guild["guild_id"] = json!("9999");
        let mut unaddressed = fixture("message_mention");
        unaddressed["content"] = json!("How much memory does the server need at minimum?");
        unaddressed["mentions"] = json!([]);
        let mut system = fixture("message_mention");
        system["type"] = json!(7);
        for (json, reason) in [
            (fixture("message_from_bot"), "from a bot"),
            (own, "from a bot"),
            (other_guild, "guild not allowed"),
            (unaddressed, "not addressed to the bot"),
            (fixture("message_dm"), "direct messages are off"),
            (system, "not a user message"),
        ] {
            assert_eq!(bot.handle_message(&h.http, &message(json), &in_channel()).await, Handled::Ignored(reason));
        }
        assert!(h.fake.requests().is_empty(), "ignored messages caused requests: {:#?}", h.fake.requests());
        assert!(h.log.all_exchanges().await.expect("log").is_empty());

        // A mention: a reply to the question that pings nobody, not even the asker.
        let (answer_id, _) = answered(&bot.handle_message(&h.http, &message(fixture("message_mention")), &in_channel()).await);
        assert!(!h.fake.requests_to("POST", "/channels/2002/typing").is_empty(), "typing… while answering");
        let sent = h.fake.requests_to("POST", "/channels/2002/messages");
        assert_eq!(sent.len(), 1);
        let body = &sent[0].body;
        assert_eq!(body["message_reference"]["message_id"], "1101");
        assert_eq!(body["message_reference"]["fail_if_not_exists"], false, "a deleted question still gets its answer");
        assert_no_mentions_allowed(body);
        assert_eq!(buttons(body).len(), 3);
        assert_eq!(sent[0].authorization.as_deref(), Some(format!("Bot {}", fake::TOKEN).as_str()));
        assert_pings_nobody(&h.fake.messages_in(2002)[0]);
        let exchange = h.log.exchange(&answer_id).await.expect("log").expect("logged");
        assert_eq!(exchange.question, "How much memory does the server need at minimum?", "the mention is stripped");
        assert_eq!(exchange.conversation, "discord:2002:5005");
        assert_eq!(
            exchange.delivery,
            json!({"platform": "discord", "channel_id": "2002", "message_id": "1101", "guild_id": "4004", "thread_id": null})
        );

        // A bare mention gets a hint, not an answer.
        let mut bare = fixture("message_mention");
        bare["content"] = json!("<@3003>");
        assert_eq!(bot.handle_message(&h.http, &message(bare), &in_channel()).await, Handled::Hint);

        // /ask in a guild that is not allowed is refused, ephemerally.
        let mut elsewhere = fixture("ask_command");
        elsewhere["guild_id"] = json!("9999");
        assert_eq!(bot.handle_interaction(&h.http, &interaction(elsewhere)).await, Handled::Ignored("guild not allowed"));
        let refusal = h.fake.requests_to("POST", "/tok-ask-9001/callback");
        assert_eq!(refusal[0].body["data"]["flags"], 64);

        // With DMs on, a DM is answered in the DM channel, which is the conversation.
        let dms = h.bot(DiscordOptions { dms: true, ..options() });
        let (answer_id, _) = answered(&dms.handle_message(&h.http, &message(fixture("message_dm")), &in_channel()).await);
        assert_eq!(h.fake.messages_in(8008).len(), 1);
        let exchange = h.log.exchange(&answer_id).await.expect("log").expect("logged");
        assert_eq!(exchange.conversation, "discord:8008");
        assert_eq!(exchange.delivery["guild_id"], Value::Null);
        // ... and /ask in a DM too.
        let (answer_id, _) = answered(&dms.handle_interaction(&h.http, &interaction(fixture("ask_command_dm"))).await);
        let exchange = h.log.exchange(&answer_id).await.expect("log").expect("logged");
        assert_eq!(exchange.conversation, "discord:8008");
    })
    .await;
}

#[tokio::test]
async fn answer_channels_open_a_thread_per_question_and_follow_ups_stay_in_it() {
    within(async {
        let Some(h) = harness("answer_channels_open_a_thread_per_question_and_follow_ups_stay_in_it").await else {
            return;
        };
        let bot = h.bot(DiscordOptions { answer_channels: vec![2102], thread_per_question: true, ..options() });
        let question = message(fixture("message_plain"));
        let (answer_id, _) = answered(&bot.handle_message(&h.http, &question, &in_channel()).await);

        let opened = h.fake.requests_to("POST", "/channels/2102/messages/1102/threads");
        assert_eq!(opened.len(), 1, "a thread from the question");
        let name = opened[0].body["name"].as_str().expect("thread name");
        assert!(name.starts_with("Uploads through nginx fail") && name.chars().count() <= 100, "{name}");
        // A thread started from a message has the message's id.
        let sent = h.fake.messages_in(1102);
        assert_eq!(sent.len(), 1, "the answer goes into the thread");
        assert!(sent[0]["message_reference"].is_null());
        assert_eq!(buttons(&sent[0]).len(), 3);
        assert!(h.fake.messages_in(2102).is_empty(), "nothing in the channel itself");
        let exchange = h.log.exchange(&answer_id).await.expect("log").expect("logged");
        assert_eq!(exchange.conversation, "discord:1102");
        assert_eq!(exchange.delivery["thread_id"], "1102");
        assert_eq!(exchange.delivery["channel_id"], "2102");
        assert_eq!(exchange.delivery["message_id"], "1102");

        // A follow-up in that thread (no mention needed) stays in it, in the same conversation.
        let mut follow_up = fixture("message_plain");
        follow_up["id"] = json!("1105");
        follow_up["channel_id"] = json!("1102");
        follow_up["content"] = json!("And what should client_max_body_size be set to?");
        let ctx = MessageContext { bot_id: BOT, thread_parent: Some(ChannelId::new(2102)) };
        let (answer_id, _) = answered(&bot.handle_message(&h.http, &message(follow_up), &ctx).await);
        assert_eq!(h.fake.requests_to("POST", "/threads").len(), 1, "no second thread");
        let sent = h.fake.messages_in(1102);
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[1]["message_reference"]["message_id"], "1105", "a reply inside the thread");
        let exchange = h.log.exchange(&answer_id).await.expect("log").expect("logged");
        assert_eq!(exchange.conversation, "discord:1102");
    })
    .await;
}

fn forum_thread(created: Duration, parent: u64) -> GuildChannel {
    let mut json = fixture("forum_thread");
    json["id"] = json!(fake::snowflake_ago(created).to_string());
    json["parent_id"] = json!(parent.to_string());
    serde_json::from_value(json).expect("a thread serenity accepts")
}

#[tokio::test]
async fn a_new_forum_post_is_answered_in_its_thread() {
    within(async {
        let Some(h) = harness("a_new_forum_post_is_answered_in_its_thread").await else { return };
        let bot = h.bot(DiscordOptions { forum_channels: vec![6006], ..options() });
        let thread = forum_thread(Duration::from_secs(2), 6006);
        let id = thread.id.to_string();
        let mut starter = fixture("forum_starter_message");
        starter["id"] = json!(id);
        starter["channel_id"] = json!(id);
        h.fake.add_message(starter);

        let (answer_id, _) = answered(&bot.handle_thread_create(&h.http, &thread, BOT).await);
        assert_eq!(h.fake.requests_to("GET", &format!("/channels/{id}/messages/{id}")).len(), 1);
        let sent = h.fake.messages_in(thread.id.get());
        assert_eq!(sent.len(), 1);
        assert_eq!(buttons(&sent[0]).len(), 3);
        assert_no_mentions_allowed(&sent[0]);
        let exchange = h.log.exchange(&answer_id).await.expect("log").expect("logged");
        assert_eq!(
            exchange.question,
            "Uploads through nginx fail with 413 Request Entity Too Large\n\nWhat body size limit does Driftwood need behind nginx?"
        );
        assert_eq!(exchange.conversation, format!("discord:{id}"));
        assert_eq!(exchange.delivery["thread_id"], json!(id));
        assert_eq!(exchange.delivery["channel_id"], "6006");

        // Old threads (the bot joining one) and threads of other channels are left alone.
        let old = forum_thread(Duration::from_secs(3600), 6006);
        assert_eq!(bot.handle_thread_create(&h.http, &old, BOT).await, Handled::Ignored("not a new post"));
        let elsewhere = forum_thread(Duration::from_secs(2), 6007);
        assert!(matches!(bot.handle_thread_create(&h.http, &elsewhere, BOT).await, Handled::Ignored(_)));
        assert_eq!(h.log.all_exchanges().await.expect("log").len(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_429_is_waited_out_and_a_failed_send_ends_in_an_apology() {
    within(async {
        let Some(h) = harness("a_429_is_waited_out_and_a_failed_send_ends_in_an_apology").await else { return };
        let bot = h.bot(options());
        h.fake.rate_limit_next("POST", "/channels/2002/messages", 0.2);
        answered(&bot.handle_message(&h.http, &message(fixture("message_mention")), &in_channel()).await);
        let attempts = h.fake.requests_to("POST", "/channels/2002/messages");
        assert_eq!(attempts.len(), 2, "one 429, one retry");
        let waited = attempts[1].at.duration_since(attempts[0].at);
        assert!(waited >= RETRY_WAIT, "retried after {waited:?}");
        assert_eq!(attempts[0].body, attempts[1].body, "the same message again");
        assert_eq!(h.fake.messages_in(2002).len(), 1, "the message arrived once");

        // Discord refuses the answer: the user gets the fixed apology instead; nothing else leaks.
        h.fake.fail_next(
            "PATCH",
            "/tok-ask-9001/messages/@original",
            400,
            json!({"code": 50035, "message": "Invalid Form Body", "errors": {}}),
        );
        let handled = bot.handle_interaction(&h.http, &interaction(fixture("ask_command"))).await;
        assert!(matches!(handled, Handled::Failed { answer_id: Some(_) }), "{handled:?}");
        let edits = h.fake.requests_to("PATCH", "/tok-ask-9001/messages/@original");
        assert_eq!(edits.len(), 2);
        assert_eq!(content(&edits[1].body), APOLOGY);
        assert!(buttons(&edits[1].body).is_empty());
    })
    .await;
}

#[tokio::test]
async fn rate_limited_users_get_a_notice_ephemeral_for_ask() {
    within(async {
        let test = "rate_limited_users_get_a_notice_ephemeral_for_ask";
        let Some((workspace, answerer)) = examples(test, |_| {}).await else { return };
        let h = harness_with(workspace, answerer, core_options(1)).await;
        let bot = h.bot(options());
        answered(&bot.handle_interaction(&h.http, &interaction(fixture("ask_command"))).await);

        let (again, token) = ask(9030, "And how much disk space?");
        let handled = bot.handle_interaction(&h.http, &again).await;
        assert!(matches!(handled, Handled::Notice(NoticeKind::RateLimited { .. })), "{handled:?}");
        // The public "thinking…" is removed and the notice goes to the asker only.
        assert_eq!(h.fake.requests_to("DELETE", &format!("/{token}/messages/@original")).len(), 1);
        let notice = h.fake.requests_to("POST", &format!("/webhooks/1234/{token}"));
        assert_eq!(notice.len(), 1);
        assert_eq!(notice[0].body["flags"], 64, "ephemeral: {}", notice[0].body);
        assert!(content(&notice[0].body).contains("try again in"), "{}", notice[0].body);
        assert_no_mentions_allowed(&notice[0].body);

        // In a channel the notice is a reply.
        let handled = bot.handle_message(&h.http, &message(fixture("message_mention")), &in_channel()).await;
        assert!(matches!(handled, Handled::Notice(NoticeKind::RateLimited { .. })));
        let sent = h.fake.messages_in(2002);
        assert_eq!(sent.len(), 1);
        assert!(buttons(&sent[0]).is_empty());
        assert_eq!(h.log.all_exchanges().await.expect("log").len(), 1, "notices are not exchanges");
    })
    .await;
}

#[tokio::test]
async fn slash_commands_register_per_guild_or_globally() {
    within(async {
        let fake = FakeDiscord::start().await;
        let http = discord::build_http(fake::TOKEN, &fake.base_url, Some(fake::APPLICATION_ID));
        let retry = options().retry;

        let registered = discord::register_commands(&http, &[4004, 4005], false, &retry).await.expect("register");
        assert_eq!(registered, Registration::Guilds(vec![4004, 4005]));
        for guild in [4004, 4005] {
            let put = fake.requests_to("PUT", &format!("/api/v10/applications/1234/guilds/{guild}/commands"));
            assert_eq!(put.len(), 1, "guild {guild}");
            let command = &put[0].body[0];
            assert_eq!(command["name"], "ask");
            assert_eq!(command["options"][0]["name"], "question");
            assert_eq!(command["options"][0]["type"], 3);
            assert_eq!(command["options"][0]["required"], true);
            assert_eq!(put[0].authorization.as_deref(), Some(format!("Bot {}", fake::TOKEN).as_str()));
        }
        assert!(fake.requests_to("PUT", "/api/v10/applications/1234/commands").is_empty());

        let registered = discord::register_commands(&http, &[], true, &retry).await.expect("register");
        assert_eq!(registered, Registration::Global);
        let put = fake.requests_to("PUT", "/api/v10/applications/1234/commands");
        assert_eq!(put.len(), 1);
        assert_eq!(put[0].body[0]["contexts"], json!([0, 1]), "offered in guilds and DMs with the bot");
    })
    .await;
}

#[tokio::test]
async fn the_gateway_delivers_events_end_to_end_and_shuts_down() {
    within(async {
        let Some(h) = harness("the_gateway_delivers_events_end_to_end_and_shuts_down").await else { return };
        let mut settings = Settings::defaults(Path::new("."), Path::new(".")).discord;
        settings.token = Some(Secret::new(fake::TOKEN));
        settings.api_url = h.fake.base_url.clone();
        settings.application_id = None; // learnt from READY
        settings.command_guilds = vec![4004];
        settings.dms = true;
        let shutdown = tokio_util::sync::CancellationToken::new();
        let task = discord::start(h.core.clone(), &settings, shutdown.clone()).await.expect("start");

        let identify = h.fake.wait_for_identify(Duration::from_secs(10)).await.expect("the client identified");
        assert_eq!(identify["token"], format!("Bot {}", fake::TOKEN), "the token from the settings");
        // GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES; no privileged MESSAGE_CONTENT without
        // answer or forum channels.
        assert_eq!(identify["intents"], 1 | 1 << 9 | 1 << 12);
        let put = h.fake.wait_for("PUT", "/applications/1234/guilds/4004/commands", 1, Duration::from_secs(10)).await;
        assert_eq!(put.len(), 1, "/ask registered on READY");

        let mut json = fixture("ask_command");
        json["token"] = json!("tok-gateway");
        h.fake.dispatch("INTERACTION_CREATE", json);
        let edit = h.fake.wait_for("PATCH", "/tok-gateway/messages/@original", 1, Duration::from_secs(20)).await;
        assert_eq!(edit.len(), 1, "the answer was edited in");
        assert_eq!(buttons(&edit[0].body).len(), 3);

        // A mention arrives as MESSAGE_CREATE; the bot knows its own id from READY.
        h.fake.dispatch("MESSAGE_CREATE", fixture("message_mention"));
        let sent = h.fake.wait_for("POST", "/channels/2002/messages", 1, Duration::from_secs(20)).await;
        assert_eq!(sent.len(), 1);
        // Its own message, echoed back by the gateway, is ignored, even where it mentions the
        // bot (an answer quoting the question would). A user's next mention is answered.
        let mut echo = h.fake.messages_in(2002)[0].clone();
        echo["content"] = json!(format!("<@3003> {}", echo["content"].as_str().unwrap_or_default()));
        echo["mentions"] =
            json!([{"id": "3003", "username": "supportbot", "discriminator": "0", "avatar": null, "bot": true}]);
        h.fake.dispatch("MESSAGE_CREATE", echo);
        let mut next = fixture("message_mention");
        next["id"] = json!("1102");
        h.fake.dispatch("MESSAGE_CREATE", next);
        let sent = h.fake.wait_for("POST", "/channels/2002/messages", 2, Duration::from_secs(20)).await;
        assert_eq!(sent.len(), 2, "the next mention was answered");
        // Give a wrongly handled echo the time its answer would take.
        let sent = h.fake.wait_for("POST", "/channels/2002/messages", 3, Duration::from_secs(2)).await;
        assert_eq!(sent.len(), 2, "the bot answered its own message");

        shutdown.cancel();
        let stopped = tokio::time::timeout(Duration::from_secs(15), task).await.expect("stopped in time");
        stopped.expect("join").expect("the channel stopped cleanly");
        assert_eq!(h.log.all_exchanges().await.expect("log").len(), 3, "the /ask and the two mentions; not the echo");
    })
    .await;
}
