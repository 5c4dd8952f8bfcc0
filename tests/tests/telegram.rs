//! The Telegram channel end to end: teloxide's real dispatcher and the real Answerer (the index of
//! `examples/` built by the real ingest binary, the ONNX model, the extractive backend or an
//! OpenAI-compatible fake) against a fake Bot API on 127.0.0.1 that checks requests like
//! Telegram does (HTML subset, 4096-character limit, known chats and messages).
//!
//! Load numbers: `cargo test --workspace --test telegram -- --nocapture load` prints them.

use std::io::Write as _;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use supportbot_bots::channel::{ChannelCore, CoreOptions};
use supportbot_bots::telegram::{self, TelegramHandle, WEBHOOK_SECRET_HEADER};
use supportbot_config::{Secret, SourceSettings, TelegramSettings};
use supportbot_core::log::{AnswerLog, FeedbackKind};
use supportbot_core::review::SqlReviewStore;
use supportbot_tests::fakes::telegram::{
    BOT_USERNAME, BotMessage, Chat, Failure, FakeTelegram, NewMessage, Posted, TEXT_LIMIT, TOKEN, User, parse_html,
};
use supportbot_tests::fakes::{FakeServer, Reply, openai};
use supportbot_tests::{Workspace, examples_answerer, examples_dir, labelled_questions, review_store, test_settings};
use tokio_util::sync::CancellationToken;

/// A question the examples answer from the docs (not from the FAQ).
const PORTS: &str = "Which ports do I have to open in the firewall?";
const RESET: &str = "How do I reset my password?";
const DOCS_URL: &str = "https://docs.driftwood.example/";

/// Generous: the first test to run also waits for the ONNX model to load.
const WAIT: Duration = Duration::from_secs(60);

/// Runs a test body with a deadline, so a hang fails instead of blocking the suite.
async fn within<T>(limit: Duration, body: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, body).await.unwrap_or_else(|_| panic!("test timed out after {limit:?}"))
}

#[derive(Default)]
struct Options {
    /// Answer with an OpenAI-compatible fake giving this reply (else the extractive backend).
    model: Option<Reply>,
    stream_edits: bool,
    /// `Some(secret)`: webhook mode.
    webhook_secret: Option<&'static str>,
    per_user_per_minute: Option<u32>,
    allowed_chats: Vec<i64>,
}

/// A running Telegram channel against a fake Bot API.
struct Harness {
    tg: FakeTelegram,
    core: Arc<ChannelCore>,
    /// The review store `supportbot serve` logs to (SQLite in the workspace).
    log: Arc<SqlReviewStore>,
    handle: Option<TelegramHandle>,
    shutdown: CancellationToken,
    _model: Option<FakeServer>,
    ws: Workspace,
}

const WEBHOOK_URL: &str = "https://bot.example.com/telegram/webhook";

async fn harness(test: &str, opts: Options) -> Option<Harness> {
    let model = match opts.model.clone() {
        Some(reply) => Some(openai::start([reply]).await),
        None => None,
    };
    let base_url = model.as_ref().map(|m| m.base_url.clone());
    let (ws, answerer) = examples_answerer(test, |s| {
        s.sources.push(SourceSettings {
            name: "examples".into(),
            path: examples_dir(),
            url: Some(DOCS_URL.into()),
            tags: Vec::new(),
        });
        if let Some(url) = base_url {
            s.openai.base_url = Some(url);
            s.openai.api_key = Some(Secret::new(openai::API_KEY));
        }
    })
    .await?;
    let log = Arc::new(review_store(ws.path()).await);
    let shared_log: Arc<dyn AnswerLog> = log.clone();
    let core = Arc::new(ChannelCore::new(
        answerer,
        shared_log,
        CoreOptions {
            per_user_per_minute: opts.per_user_per_minute.unwrap_or(1000),
            per_chat_per_minute: 1000,
            max_concurrent_answers: 8,
            user_salt: "telegram-tests".into(),
        },
    ));
    let tg = FakeTelegram::start().await;
    let mut settings = test_settings(ws.path(), &ws.index_dir()).telegram;
    settings.token = Some(Secret::new(TOKEN));
    settings.api_url = tg.api_url.clone();
    settings.stream_edits = opts.stream_edits;
    settings.allowed_chats = opts.allowed_chats.clone();
    if let Some(secret) = opts.webhook_secret {
        settings.webhook_url = Some(WEBHOOK_URL.into());
        settings.webhook_secret = Some(Secret::new(secret));
    }
    let shutdown = CancellationToken::new();
    let handle = telegram::start(core.clone(), &settings, shutdown.clone()).await.expect("the channel starts");
    Some(Harness { tg, core, log, handle: Some(handle), shutdown, _model: model, ws })
}

impl Harness {
    /// Stops as `supportbot serve` does and checks the channel ends cleanly.
    async fn stop(mut self) {
        self.core.stop_accepting();
        self.shutdown.cancel();
        let handle = self.handle.take().expect("running");
        let ended = tokio::time::timeout(Duration::from_secs(20), handle.task).await;
        ended.expect("the channel stops in time").expect("no panic").expect("no error");
    }

    /// The answer id behind a reply's buttons.
    fn answer_id(reply: &BotMessage) -> String {
        let data = reply.callback_data();
        let human = data.iter().find(|d| d.starts_with("fb:h:")).unwrap_or_else(|| panic!("no buttons: {reply:?}"));
        human.trim_start_matches("fb:h:").to_string()
    }
}

fn private(id: i64, name: &str) -> (User, Chat) {
    let user = User::new(id, name);
    let chat = Chat::private(&user);
    (user, chat)
}

fn mention(text: &str) -> String {
    format!("@{BOT_USERNAME} {text}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_private_question_gets_a_cited_html_answer_with_buttons() {
    within(Duration::from_secs(180), async {
        let Some(h) = harness("tg_private", Options::default()).await else { return };
        let (ann, chat) = private(1001, "Ann");
        let asked = h.tg.post(NewMessage::new(&chat, &ann, PORTS));
        let replies = h.tg.wait_replies(&asked, 1, WAIT).await;
        let reply = &replies[0];
        assert_eq!(reply.parse_mode.as_deref(), Some("HTML"));
        assert!(reply.text.contains("<b>Sources</b>"), "{}", reply.text);
        assert!(reply.text.contains(&format!("<a href=\"{DOCS_URL}")), "sources are links: {}", reply.text);
        parse_html(&reply.text).expect("valid Telegram HTML");
        let id = Harness::answer_id(reply);
        assert_eq!(reply.callback_data(), [format!("fb:u:{id}"), format!("fb:d:{id}"), format!("fb:h:{id}")]);

        let calls = h.tg.calls();
        let send = calls.iter().find(|c| c.method == "sendMessage").expect("sent");
        assert_eq!(send.body["link_preview_options"]["is_disabled"], true, "no link previews");
        assert_eq!(send.reply_to(), Some(asked.message_id));
        let typing = calls.iter().position(|c| c.method == "sendChatAction" && c.body["action"] == "typing");
        let sent = calls.iter().position(|c| c.method == "sendMessage");
        assert!(typing.is_some() && typing < sent, "typing… shown before the answer");

        let exchange = h.log.exchange(&id).await.expect("log").expect("the exchange is logged");
        assert_eq!(exchange.channel, "telegram");
        assert_eq!(exchange.conversation, "telegram:1001");
        assert_eq!(exchange.question, PORTS);
        assert_eq!(
            exchange.delivery,
            json!({"platform": "telegram", "chat_id": 1001, "message_id": asked.message_id, "thread_id": null})
        );
        assert!(!exchange.user.contains("1001"), "user ids are pseudonymous");
        h.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_are_answered_only_when_the_bot_is_addressed() {
    within(Duration::from_secs(180), async {
        let Some(h) = harness("tg_groups", Options::default()).await else { return };
        let bob = User::new(2002, "Bob");
        let group = Chat::supergroup(-100_200, "Driftwood users");
        let post = |text: &str| h.tg.post(NewMessage::new(&group, &bob, text));

        let ignored = post(RESET);
        let mentioned = post(&mention(RESET));
        let asked = post(&format!("/ask {PORTS}"));
        let mentioned_reply = h.tg.wait_replies(&mentioned, 1, WAIT).await;
        h.tg.wait_replies(&asked, 1, WAIT).await;
        let follow_up = h.tg.post(
            NewMessage::new(&group, &bob, "and which one does the desktop app need?")
                .reply_to(mentioned_reply[0].message_id),
        );
        let other_bot = post(&format!("/ask@some_other_bot {RESET}"));
        let sentinel = post(&format!("/ask@{BOT_USERNAME} {PORTS}"));
        h.tg.wait_replies(&follow_up, 1, WAIT).await;
        h.tg.wait_replies(&sentinel, 1, WAIT).await;
        // One person's messages are handled in order, so by now the others were seen and skipped.
        assert!(h.tg.replies_to(&ignored).is_empty(), "a group message without a mention is not answered");
        assert!(h.tg.replies_to(&other_bot).is_empty(), "a command for another bot is not answered");

        let id = Harness::answer_id(&mentioned_reply[0]);
        let exchange = h.log.exchange(&id).await.expect("log").expect("logged");
        assert_eq!(exchange.question, RESET, "the mention is not part of the question");
        assert_eq!(exchange.conversation, "telegram:-100200:2002", "group members have their own context");
        assert_eq!(h.log.all_exchanges().await.expect("log").len(), 4);

        // Forum topics: answered in the topic; the topic is the conversation.
        let carol = User::new(3003, "Carol");
        let forum = Chat::forum(-100_300, "Driftwood forum");
        let topic = h.tg.create_topic(&forum, &bob, "Firewall");
        let chatter = h.tg.post(NewMessage::new(&forum, &carol, "thanks everyone").in_topic(topic));
        let question = h.tg.post(NewMessage::new(&forum, &carol, &mention(PORTS)).in_topic(topic));
        let replies = h.tg.wait_replies(&question, 1, WAIT).await;
        assert_eq!(replies[0].thread_id, Some(topic), "answered in the topic");
        assert!(h.tg.replies_to(&chatter).is_empty(), "Telegram's link to the topic is not a reply to the bot");
        let exchange = h.log.exchange(&Harness::answer_id(&replies[0])).await.expect("log").expect("logged");
        assert_eq!(exchange.conversation, format!("telegram:-100300:{topic}"));
        assert_eq!(exchange.delivery["thread_id"], topic);
        h.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn button_presses_are_recorded_and_acknowledged() {
    within(Duration::from_secs(180), async {
        let Some(h) = harness("tg_buttons", Options::default()).await else { return };
        let (ann, chat) = private(1001, "Ann");
        let asked = h.tg.post(NewMessage::new(&chat, &ann, PORTS));
        let reply = h.tg.wait_replies(&asked, 1, WAIT).await.remove(0);
        let id = Harness::answer_id(&reply);

        let acknowledged = |callback: String| {
            move |tg: &FakeTelegram| {
                tg.calls_to("answerCallbackQuery").iter().any(|c| c.body["callback_query_id"] == callback && c.ok())
            }
        };
        let down = h.tg.press(&ann, chat.id, reply.message_id, &format!("fb:d:{id}"));
        h.tg.wait_until(WAIT, "the 👎 acknowledged", acknowledged(down.clone())).await;
        let ack = h.tg.calls_to("answerCallbackQuery").into_iter().find(|c| c.body["callback_query_id"] == down);
        assert!(ack.and_then(|c| c.body["text"].as_str().map(str::to_string)).is_some_and(|t| !t.is_empty()));
        let feedback = h.log.feedback_for(&id).await.expect("log");
        assert_eq!(feedback.iter().map(|f| f.kind).collect::<Vec<_>>(), [FeedbackKind::Down]);
        assert!(!feedback[0].user.contains("1001"));

        // "Talk to a human": recorded, and the button goes.
        let human = h.tg.press(&ann, chat.id, reply.message_id, &format!("fb:h:{id}"));
        h.tg.wait_until(WAIT, "the human request acknowledged", acknowledged(human)).await;
        h.tg.wait_until(WAIT, "the human button removed", |tg| {
            tg.bot_messages().iter().any(|m| m.message_id == reply.message_id && m.callback_data().len() == 2)
        })
        .await;
        let kinds: Vec<_> = h.log.feedback_for(&id).await.expect("log").iter().map(|f| f.kind).collect();
        assert_eq!(kinds, [FeedbackKind::Down, FeedbackKind::Human]);

        // Forged or stale buttons are acknowledged too, and record nothing.
        let forged = h.tg.press(&ann, chat.id, reply.message_id, "fb:u:0123456789abcdef0123456789abcdef");
        let foreign = h.tg.press(&ann, chat.id, reply.message_id, "rm -rf /");
        h.tg.wait_until(WAIT, "the forged press acknowledged", acknowledged(forged)).await;
        h.tg.wait_until(WAIT, "the foreign press acknowledged", acknowledged(foreign)).await;
        assert_eq!(h.log.feedback_for(&id).await.expect("log").len(), 2);
        h.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn human_command_asks_for_a_person_about_the_last_answer() {
    within(Duration::from_secs(180), async {
        let Some(h) = harness("tg_human", Options::default()).await else { return };
        let (ann, chat) = private(1001, "Ann");
        let early = h.tg.post(NewMessage::new(&chat, &ann, "/human"));
        let asked = h.tg.post(NewMessage::new(&chat, &ann, PORTS));
        let human = h.tg.post(NewMessage::new(&chat, &ann, "/human"));
        let early_reply = h.tg.wait_replies(&early, 1, WAIT).await;
        assert!(early_reply[0].text.contains("Ask your question first"), "{}", early_reply[0].text);
        let id = Harness::answer_id(&h.tg.wait_replies(&asked, 1, WAIT).await[0]);
        let ack = h.tg.wait_replies(&human, 1, WAIT).await;
        assert!(ack[0].text.contains("person"), "{}", ack[0].text);
        let kinds: Vec<_> = h.log.feedback_for(&id).await.expect("log").iter().map(|f| f.kind).collect();
        assert_eq!(kinds, [FeedbackKind::Human]);

        let start = h.tg.post(NewMessage::new(&chat, &ann, "/start"));
        let greeting = h.tg.wait_replies(&start, 1, WAIT).await;
        assert!(greeting[0].text.contains(&format!("@{BOT_USERNAME}")) && greeting[0].text.contains("/ask"));
        h.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn flood_control_is_waited_out_and_the_answer_still_arrives() {
    within(Duration::from_secs(180), async {
        let Some(h) = harness("tg_429", Options::default()).await else { return };
        let (ann, chat) = private(1001, "Ann");
        h.tg.fail_next("sendMessage", Failure::retry_after(1));
        let asked = h.tg.post(NewMessage::new(&chat, &ann, PORTS));
        let replies = h.tg.wait_replies(&asked, 1, WAIT).await;
        assert!(replies[0].callback_data().len() == 3, "the full answer arrived");
        let sends = h.tg.calls_to("sendMessage");
        assert_eq!(sends.len(), 2, "{}", h.tg.summary());
        assert_eq!(sends[0].response["error_code"], 429);
        let waited = sends[1].at.duration_since(sends[0].at);
        assert!(waited >= Duration::from_millis(990), "retried after {waited:?}, before retry_after");
        h.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn html_that_telegram_rejects_is_resent_as_plain_text() {
    within(Duration::from_secs(180), async {
        let Some(h) = harness("tg_plain", Options::default()).await else { return };
        let (ann, chat) = private(1001, "Ann");
        h.tg.fail_next_html("sendMessage", Failure::cant_parse_entities());
        let asked = h.tg.post(NewMessage::new(&chat, &ann, PORTS));
        let reply = h.tg.wait_replies(&asked, 1, WAIT).await.remove(0);
        assert_eq!(reply.parse_mode, None);
        assert!(!reply.text.contains("<b>") && reply.text.contains("Sources"), "{}", reply.text);
        assert!(reply.text.contains(DOCS_URL), "plain sources keep their links: {}", reply.text);
        assert_eq!(reply.callback_data().len(), 3, "the buttons stay");
        let sends = h.tg.calls_to("sendMessage");
        assert_eq!(sends.len(), 2);
        assert_eq!(sends[0].parse_mode(), Some("HTML"));
        assert!(!sends[0].ok());
        h.stop().await;
    })
    .await;
}

/// A ~6,000-character Markdown answer with the constructs that break naive splitting.
fn long_answer() -> String {
    let mut text = String::new();
    for step in 1..=15 {
        text.push_str(&format!(
            "## Step {step}: check the firewall\n\nDriftwood's **sync service** talks to the relay on port 443 and \
             to peers on port 21027 [1]. If `drift status` shows *offline*, open the ports & retry; rules such as \
             `allow out 443 < any` are common. Keep the *defaults* unless your admin says otherwise.\n\n"
        ));
        if step == 7 {
            text.push_str("```bash\n");
            for i in 0..25 {
                text.push_str(&format!("sudo ufw allow {} # rule {i} <peer> & relay\n", 21000 + i));
            }
            text.push_str("```\n\n");
        }
        text.push_str("- the relay\n- the peers\n- the *update server*\n\n");
    }
    text.push_str("That is all [1].");
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_answer_arrives_as_valid_parts_with_the_keyboard_on_the_last() {
    within(Duration::from_secs(180), async {
        let text = long_answer();
        assert!(text.chars().count() >= 6000, "{}", text.chars().count());
        let opts = Options { model: Some(Reply::text(&text)), ..Options::default() };
        let Some(h) = harness("tg_long", opts).await else { return };
        let (ann, chat) = private(1001, "Ann");
        let asked = h.tg.post(NewMessage::new(&chat, &ann, PORTS));
        h.tg.wait_until(WAIT, "the last part (with the keyboard)", |tg| {
            tg.replies_to(&asked).iter().any(|m| !m.callback_data().is_empty())
        })
        .await;
        let parts = h.tg.replies_to(&asked);
        assert!(parts.len() >= 2, "{} parts", parts.len());
        for (i, part) in parts.iter().enumerate() {
            assert_eq!(part.parse_mode.as_deref(), Some("HTML"), "part {i}");
            let visible =
                parse_html(&part.text).unwrap_or_else(|e| panic!("part {i} is not valid HTML ({e}):\n{}", part.text));
            assert!(visible.encode_utf16().count() <= TEXT_LIMIT, "part {i} too long");
            let last = i + 1 == parts.len();
            assert_eq!(!part.callback_data().is_empty(), last, "keyboard only on the last part ({i})");
        }
        let visible: Vec<String> = parts.iter().map(BotMessage::visible_text).collect();
        let all = visible.join("\n");
        let positions: Vec<usize> =
            (1..=15).map(|s| all.find(&format!("Step {s}:")).unwrap_or_else(|| panic!("step {s} lost"))).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "parts arrive in order");
        assert_eq!(all.matches("sudo ufw allow").count(), 25, "no line of the code block is lost");
        assert!(visible.last().is_some_and(|v| v.contains("Sources")));
        let exchange =
            h.log.exchange(&Harness::answer_id(&parts[parts.len() - 1])).await.expect("log").expect("logged");
        assert_eq!(exchange.backend.as_deref(), Some("openai"));
        h.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn streamed_answers_grow_by_edits_at_most_once_a_second() {
    within(Duration::from_secs(180), async {
        let opts = Options { model: Some(Reply::text(&long_answer())), stream_edits: true, ..Options::default() };
        let Some(h) = harness("tg_stream", opts).await else { return };
        let (ann, chat) = private(1001, "Ann");
        let asked = h.tg.post(NewMessage::new(&chat, &ann, PORTS));
        h.tg.wait_until(WAIT, "the last part (with the keyboard)", |tg| {
            tg.replies_to(&asked).iter().any(|m| !m.callback_data().is_empty())
        })
        .await;
        let parts = h.tg.replies_to(&asked);
        let first = &parts[0];
        assert!(first.edits >= 2, "the preview was edited as the answer grew ({} edits)", first.edits);
        let sends = h.tg.calls_to("sendMessage");
        assert!(sends[0].callback_data().is_empty(), "the preview has no buttons");
        let edits: Vec<Instant> =
            h.tg.calls_to("editMessageText")
                .iter()
                .filter(|c| c.body["message_id"] == first.message_id)
                .map(|c| c.at)
                .collect();
        let mut times = vec![sends[0].at];
        times.extend(edits);
        for pair in times.windows(2) {
            let gap = pair[1].duration_since(pair[0]);
            assert!(gap >= Duration::from_millis(990), "edits {gap:?} apart");
        }
        // "typing…" is renewed while the answer is written (it fades after about 5 s).
        let typing: Vec<Instant> = h.tg.calls_to("sendChatAction").iter().map(|c| c.at).collect();
        assert!(typing.len() >= 2, "typing… renewed during a {:?} answer", parts[0].sent_at.elapsed());
        assert!(typing.windows(2).all(|w| w[1].duration_since(w[0]) >= Duration::from_millis(3900)));
        // The final state is the checked answer, in valid parts, buttons on the last.
        for part in &parts {
            parse_html(&part.text).expect("valid HTML");
        }
        assert_eq!(parts.iter().filter(|p| !p.callback_data().is_empty()).count(), 1);
        assert!(parts.last().is_some_and(|p| p.visible_text().contains("Sources")));
        h.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_over_the_rate_limit_gets_the_notice() {
    within(Duration::from_secs(180), async {
        let opts = Options { per_user_per_minute: Some(2), ..Options::default() };
        let Some(h) = harness("tg_rate", opts).await else { return };
        let (ann, chat) = private(1001, "Ann");
        let asked: Vec<Posted> = (0..3).map(|_| h.tg.post(NewMessage::new(&chat, &ann, PORTS))).collect();
        let third = h.tg.wait_replies(&asked[2], 1, WAIT).await.remove(0);
        assert!(third.text.contains("faster than I can answer"), "{}", third.text);
        assert!(third.callback_data().is_empty() && third.parse_mode.is_none());
        for a in &asked[..2] {
            assert_eq!(h.tg.replies_to(a)[0].callback_data().len(), 3);
        }
        assert_eq!(h.log.all_exchanges().await.expect("log").len(), 2, "a refused question is not an exchange");
        h.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_webhook_route_checks_the_secret() {
    within(Duration::from_secs(180), async {
        const SECRET: &str = "s3cret-Webhook_token";
        let opts = Options { webhook_secret: Some(SECRET), ..Options::default() };
        let Some(mut h) = harness("tg_webhook", opts).await else { return };
        assert_eq!(h.tg.webhook(), Some((WEBHOOK_URL.to_string(), Some(SECRET.to_string()))));
        let router = h.handle.as_mut().and_then(|handle| handle.router.take()).expect("a route in webhook mode");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/telegram/webhook", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move { axum::serve(listener, router).await });

        let (ann, chat) = private(1001, "Ann");
        let (update, asked) = h.tg.message_update(NewMessage::new(&chat, &ann, PORTS));
        let client = reqwest::Client::new();
        let post = |secret: Option<&str>, body: String| {
            let mut r = client.post(&url).header("content-type", "application/json").body(body);
            if let Some(s) = secret {
                r = r.header(WEBHOOK_SECRET_HEADER, s);
            }
            async move { r.send().await.expect("the route answers").status().as_u16() }
        };
        assert_eq!(post(None, update.to_string()).await, 401);
        assert_eq!(post(Some("s3cret-Webhook_tokeN"), update.to_string()).await, 401);
        assert_eq!(post(Some("s3cret"), update.to_string()).await, 401);
        assert_eq!(post(Some(SECRET), "{not json".into()).await, 400);
        assert_eq!(post(Some(SECRET), update.to_string()).await, 200);
        let reply = h.tg.wait_replies(&asked, 1, WAIT).await;
        assert_eq!(reply.len(), 1, "answered once, only for the right secret");
        assert!(h.tg.calls_to("getUpdates").is_empty(), "no polling in webhook mode");

        h.core.stop_accepting();
        h.shutdown.cancel();
        let task = h.handle.take().expect("running").task;
        tokio::time::timeout(Duration::from_secs(20), task).await.expect("stops").expect("no panic").expect("ok");
        assert_eq!(post(Some(SECRET), update.to_string()).await, 503, "no updates taken after shutdown");
        server.abort();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_finishes_the_answer_in_flight_and_takes_nothing_new() {
    within(Duration::from_secs(180), async {
        let slow = Reply::slow(Duration::from_millis(1500), Reply::text("Open ports 443 and 21027 [1]."));
        let opts = Options { model: Some(slow), ..Options::default() };
        let Some(mut h) = harness("tg_shutdown", opts).await else { return };
        let (ann, chat) = private(1001, "Ann");
        let asked = h.tg.post(NewMessage::new(&chat, &ann, PORTS));
        let core = h.core.clone();
        h.tg.wait_until(WAIT, "the answer being written", |_| core.in_flight() == 1).await;
        let stopped_at = Instant::now();
        h.core.stop_accepting();
        h.shutdown.cancel();
        let task = h.handle.take().expect("running").task;
        tokio::time::timeout(Duration::from_secs(30), task).await.expect("stops").expect("no panic").expect("ok");
        let reply = h.tg.replies_to(&asked);
        assert_eq!(reply.len(), 1, "the answer in flight was delivered before the channel ended");
        assert!(reply[0].sent_at > stopped_at);
        let last_poll = h.tg.calls_to("getUpdates").pop().expect("polled");
        assert_eq!(last_poll.body["timeout"], 0, "the last getUpdates only confirms the offset");

        let late = h.tg.post(NewMessage::new(&chat, &ann, PORTS));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(h.tg.replies_to(&late).is_empty());
        assert_eq!(h.tg.pending_updates(), 1, "the late question stays with Telegram for the next start");
    })
    .await;
}

/// Everything logged by this test binary (tracing, and teloxide's `log` records through it).
static CAPTURED: LazyLock<Arc<Mutex<Vec<u8>>>> = LazyLock::new(|| {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = buffer.clone();
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::DEBUG)
        .with_ansi(false)
        .with_writer(move || Capture(sink.clone()))
        .try_init();
    buffer
});

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_never_shows_in_errors_or_logs() {
    within(Duration::from_secs(180), async {
        let captured = CAPTURED.clone();
        let secret_part = TOKEN.split_once(':').map(|(_, s)| s).expect("token shape");
        let leaks = |text: &str| text.contains(TOKEN) || text.contains(secret_part);
        let Some(h) = harness("tg_token", Options::default()).await else { return };

        // Telegram refuses the token.
        let other = FakeTelegram::start_with_token("1:another-token").await;
        let mut settings = test_settings(h.ws.path(), &h.ws.index_dir()).telegram;
        settings.token = Some(Secret::new(TOKEN));
        settings.api_url = other.api_url.clone();
        let refused = start_error(&h, &settings).await;
        assert!(refused.contains("Invalid bot token"), "{refused}");
        assert!(!leaks(&refused), "{refused}");

        // Telegram cannot be reached.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        settings.api_url = format!("http://{}", closed.local_addr().expect("addr"));
        drop(closed);
        let unreachable = start_error(&h, &settings).await;
        assert!(!leaks(&unreachable), "{unreachable}");

        // A send fails: the user gets the fixed apology, the log the details.
        let (ann, chat) = private(1001, "Ann");
        h.tg.fail_next("sendMessage", Failure::blocked());
        let asked = h.tg.post(NewMessage::new(&chat, &ann, PORTS));
        let apology = h.tg.wait_replies(&asked, 1, WAIT).await.remove(0);
        assert!(apology.text.starts_with("Sorry, something went wrong"), "{}", apology.text);
        assert!(!apology.text.contains("Forbidden"), "no internal error reaches the user");
        h.stop().await;

        let _ = std::io::stderr().flush();
        let log =
            String::from_utf8_lossy(&captured.lock().unwrap_or_else(std::sync::PoisonError::into_inner)).into_owned();
        assert!(log.contains("telegram: a message failed"), "the failure is logged:\n{log}");
        assert!(log.contains("blocked by the user"), "with its details");
        assert!(!leaks(&log), "the token leaked into the log");
    })
    .await;
}

/// `telegram::start` with `settings`, expected to fail; the error in every format.
async fn start_error(h: &Harness, settings: &TelegramSettings) -> String {
    match telegram::start(h.core.clone(), settings, CancellationToken::new()).await {
        Ok(_) => panic!("start should fail"),
        Err(e) => format!("{e}\n{e:#}\n{e:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn load_fifty_chats_at_once_and_order_within_a_chat() {
    within(Duration::from_secs(300), async {
        let Some(h) = harness("tg_load", Options::default()).await else { return };
        let questions: Vec<String> =
            labelled_questions().into_iter().filter(|q| !q.unanswerable).map(|q| q.q).collect();
        assert!(!questions.is_empty());
        // Warm up (the first question pays for lazy initialisation), then measure.
        let (warm, warm_chat) = private(5000, "Warm");
        let w = h.tg.post(NewMessage::new(&warm_chat, &warm, PORTS));
        h.tg.wait_replies(&w, 1, WAIT).await;

        let started = Instant::now();
        let asked: Vec<(Posted, Instant)> = (0..50)
            .map(|i| {
                let (user, chat) = private(6000 + i, "Load");
                let q = &questions[i as usize % questions.len()];
                (h.tg.post(NewMessage::new(&chat, &user, q)), Instant::now())
            })
            .collect();
        h.tg.wait_until(Duration::from_secs(240), "50 answers", |tg| {
            asked.iter().all(|(p, _)| !tg.replies_to(p).is_empty())
        })
        .await;
        let total = started.elapsed();
        let mut latencies: Vec<Duration> = asked
            .iter()
            .map(|(p, at)| {
                let replies = h.tg.replies_to(p);
                assert_eq!(replies.len(), 1, "exactly one answer per question");
                assert!(!replies[0].callback_data().is_empty(), "an answer, not a notice: {}", replies[0].text);
                replies[0].sent_at.duration_since(*at)
            })
            .collect();
        latencies.sort();
        let answers = h.tg.calls_to("sendMessage").iter().filter(|c| c.ok()).count();
        assert_eq!(answers, 51, "50 answers (and the warm-up), none lost or doubled");
        eprintln!(
            "telegram load: 50 questions from 50 chats in {:.2} s = {:.1} answers/s; median {} ms, p95 {} ms, slowest {} ms",
            total.as_secs_f64(),
            50.0 / total.as_secs_f64(),
            latencies[24].as_millis(),
            latencies[47].as_millis(),
            latencies[49].as_millis(),
        );

        // One chat, three questions at once: answered in order.
        let (ann, chat) = private(1001, "Ann");
        let three: Vec<Posted> = [PORTS, RESET, "How long are old file versions kept?"]
            .iter()
            .map(|q| h.tg.post(NewMessage::new(&chat, &ann, q)))
            .collect();
        h.tg.wait_until(WAIT, "three answers in one chat", |tg| three.iter().all(|p| !tg.replies_to(p).is_empty()))
            .await;
        let order: Vec<Option<i64>> =
            h.tg.bot_messages().iter().filter(|m| m.chat_id == chat.id).map(|m| m.reply_to).collect();
        assert_eq!(order, three.iter().map(|p| Some(p.message_id)).collect::<Vec<_>>(), "replies in question order");
        assert_eq!(h.log.all_exchanges().await.expect("log").len(), 54);
        h.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn chats_outside_allowed_chats_are_ignored() {
    within(Duration::from_secs(180), async {
        let opts = Options { allowed_chats: vec![1001], ..Options::default() };
        let Some(h) = harness("tg_allowed", opts).await else { return };
        let (eve, eve_chat) = private(6666, "Eve");
        let (ann, chat) = private(1001, "Ann");
        let refused = h.tg.post(NewMessage::new(&eve_chat, &eve, PORTS));
        let allowed = h.tg.post(NewMessage::new(&chat, &ann, PORTS));
        h.tg.wait_replies(&allowed, 1, WAIT).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(h.tg.replies_to(&refused).is_empty());
        assert_eq!(h.tg.pending_updates(), 0, "the ignored update is still confirmed");
        h.stop().await;
    })
    .await;
}
