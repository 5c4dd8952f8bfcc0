//! What every chat channel shares, with no Discord or Telegram types: the `ChannelCore` that
//! admits a question (rate limits, shutdown), asks the one Answerer, logs the exchange and
//! handles button presses; message splitting (`split`), rendering (`format`), button payloads
//! (`feedback`), rate limiting (`ratelimit`) and escalations to an operators' chat
//! (`escalation`). Platform adapters only translate events and replies.

pub mod escalation;
pub mod feedback;
pub mod format;
pub mod ratelimit;
pub mod split;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use supportbot_core::answer::prompt::question_language;
use supportbot_core::answer::{Answer, Answerer, Incoming};
use supportbot_core::log::{AnswerLog, Exchange, Feedback, FeedbackKind, new_answer_id, pseudonymize};
use tokio::sync::{Notify, Semaphore, mpsc::UnboundedSender};

use ratelimit::{Admission, RateLimiter};

/// A question arriving from a platform.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    /// `telegram` or `discord`.
    pub platform: &'static str,
    /// The chat, group or channel it was asked in (platform id as text).
    pub chat: String,
    /// Who asked (platform id as text; stored pseudonymised).
    pub user: String,
    /// Conversation for follow-up context: a private chat, a forum topic, a thread.
    pub conversation: String,
    pub text: String,
    /// Where a later reply from a person must go (platform ids), kept with the exchange.
    pub delivery: serde_json::Value,
}

/// Why the bot replied with a notice instead of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    RateLimited { retry_after: Duration },
    ShuttingDown,
}

/// What to send back.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// An answer (or an abstention) to render with its buttons.
    Answer { answer_id: String, answer: Box<Answer> },
    /// A fixed notice, without buttons.
    Notice { kind: NoticeKind, text: String },
}

/// How to acknowledge a button press.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackAck {
    /// Short text for the platform's acknowledgement (toast or ephemeral message).
    pub text: String,
    /// What was recorded, if the payload was valid and the answer known.
    pub recorded: Option<FeedbackKind>,
}

/// Sends a person's reply into the chat an exchange came from (the hand-off). Implemented by
/// each platform adapter; `delivery` is the JSON the adapter stored with the exchange.
#[async_trait::async_trait]
pub trait Deliverer: Send + Sync {
    /// The platform this deliverer serves (`telegram`, `discord`), matching `Question::platform`.
    fn platform(&self) -> &'static str;
    /// Replies to the asker with `text`, marked as coming from a person.
    async fn deliver(&self, delivery: &serde_json::Value, text: &str) -> anyhow::Result<()>;
}

/// Posts escalations (a user asked for a person, or pressed 👎) where operators live in chat:
/// an operators' Telegram group. Implemented by platform adapters.
#[async_trait::async_trait]
pub trait Escalator: Send + Sync {
    async fn escalate(&self, exchange: &Exchange, why: FeedbackKind) -> anyhow::Result<()>;
}

/// What operators can do from a chat (the buttons and replies of an escalation post): the same
/// actions as the console and the API. Implemented by `web::ops` over the review store.
#[async_trait::async_trait]
pub trait OperatorDesk: Send + Sync {
    /// Claims the item for `operator`.
    async fn take_over(&self, id: &str, operator: &str) -> anyhow::Result<()>;
    /// Approves the bot's answer: it becomes a curated answer.
    async fn approve(&self, id: &str, operator: &str) -> anyhow::Result<()>;
    /// Sends `text` to the user in the original chat, marked as coming from a person.
    async fn reply(&self, id: &str, operator: &str, text: &str) -> anyhow::Result<()>;
}

/// How a person's reply is introduced in the chat, so users know it is not the bot.
pub fn from_a_person(text: &str, language: &str) -> String {
    match language {
        "zh" => format!("👤 人工客服回复：\n\n{}", text.trim()),
        _ => format!("👤 Reply from our support team:\n\n{}", text.trim()),
    }
}

/// Limits of the core.
#[derive(Debug, Clone)]
pub struct CoreOptions {
    pub per_user_per_minute: u32,
    pub per_chat_per_minute: u32,
    pub max_concurrent_answers: usize,
    /// Salt of pseudonymous user ids (`review.user_salt`).
    pub user_salt: String,
}

/// The platform-neutral part of every channel.
pub struct ChannelCore {
    answerer: Answerer,
    log: Arc<dyn AnswerLog>,
    limiter: RateLimiter,
    permits: Semaphore,
    salt: String,
    raw_user_ids: bool,
    accepting: AtomicBool,
    in_flight: AtomicUsize,
    idle: Notify,
    /// Last answer id per conversation, for `/human` without a button.
    last_answer: Mutex<HashMap<String, String>>,
    metrics: Mutex<Metrics>,
    escalators: RwLock<Vec<Arc<dyn Escalator>>>,
    /// Weak: the desk holds the web state, which holds this core.
    desk: RwLock<Option<Weak<dyn OperatorDesk>>>,
}

/// Counters for `/metrics` (this process only).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// Answers by platform and outcome (`answered`, `curated`, `fallback`, `abstained`).
    pub answers: std::collections::BTreeMap<(String, String), u64>,
    /// Questions refused by the rate limits, by platform.
    pub rate_limited: std::collections::BTreeMap<String, u64>,
    /// Button presses by kind (`up`, `down`, `human`).
    pub feedback: std::collections::BTreeMap<String, u64>,
    /// Total answer latency, milliseconds, with the count, for an average.
    pub latency_ms_sum: u64,
    pub latency_count: u64,
    /// Histogram of answer latency: upper bounds in milliseconds → cumulative counts.
    pub latency_buckets: Vec<(u64, u64)>,
}

/// Upper bounds (ms) of the latency histogram.
pub const LATENCY_BUCKETS_MS: [u64; 10] = [25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000];

/// Counts work in flight (answering, and sending the answer) until dropped, so that a graceful
/// shutdown waits for it (`ChannelCore::wait_idle`).
pub struct InFlight<'a>(&'a ChannelCore);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

fn rate_limited_text(language: &str, wait: Duration) -> String {
    let secs = wait.as_secs().max(1);
    match language {
        "zh" => format!("您提问太快了，请等 {secs} 秒后再问。"),
        _ => format!("You're asking faster than I can answer. Please try again in {secs} seconds."),
    }
}

fn shutting_down_text(language: &str) -> &'static str {
    match language {
        "zh" => "我正在重启，请稍后再问一次。",
        _ => "I'm restarting right now. Please ask again in a minute.",
    }
}

impl ChannelCore {
    pub fn new(answerer: Answerer, log: Arc<dyn AnswerLog>, opts: CoreOptions) -> Self {
        Self {
            answerer,
            log,
            limiter: RateLimiter::new(opts.per_user_per_minute, opts.per_chat_per_minute),
            permits: Semaphore::new(opts.max_concurrent_answers.max(1)),
            salt: opts.user_salt,
            raw_user_ids: false,
            accepting: AtomicBool::new(true),
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
            last_answer: Mutex::default(),
            metrics: Mutex::new(Metrics {
                latency_buckets: LATENCY_BUCKETS_MS.iter().map(|b| (*b, 0)).collect(),
                ..Metrics::default()
            }),
            escalators: RwLock::default(),
            desk: RwLock::default(),
        }
    }

    /// Escalations (requests for a person, 👎) are also posted through `e`.
    pub fn add_escalator(&self, e: Arc<dyn Escalator>) {
        if let Ok(mut v) = self.escalators.write() {
            v.push(e);
        }
    }

    /// Operators' actions from chat go to `desk` (kept alive by the caller).
    pub fn set_desk(&self, desk: &Arc<dyn OperatorDesk>) {
        if let Ok(mut d) = self.desk.write() {
            *d = Some(Arc::downgrade(desk));
        }
    }

    /// The operator desk, when `serve` set one up.
    pub fn desk(&self) -> Option<Arc<dyn OperatorDesk>> {
        self.desk.read().ok().and_then(|d| d.as_ref().and_then(Weak::upgrade))
    }

    /// Posts an escalation through every escalator, in the background.
    async fn escalate(&self, id: &str, why: FeedbackKind) {
        let escalators = self.escalators.read().map(|v| v.clone()).unwrap_or_default();
        if escalators.is_empty() {
            return;
        }
        let exchange = match self.log.exchange(id).await {
            Ok(Some(e)) => e,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "could not read the exchange to escalate");
                return;
            }
        };
        for e in escalators {
            let exchange = exchange.clone();
            tokio::spawn(async move {
                if let Err(err) = e.escalate(&exchange, why).await {
                    tracing::error!(error = %format!("{err:#}"), "could not post an escalation");
                }
            });
        }
    }

    /// Log platform user ids as they are instead of pseudonyms (`review.raw_user_ids`).
    pub fn with_raw_user_ids(mut self, raw: bool) -> Self {
        self.raw_user_ids = raw;
        self
    }

    pub fn log(&self) -> &Arc<dyn AnswerLog> {
        &self.log
    }

    /// The id under which a platform user is logged: pseudonymous unless raw ids are configured.
    pub fn user_id(&self, platform: &str, user: &str) -> String {
        if self.raw_user_ids { format!("{platform}:{user}") } else { pseudonymize(&self.salt, platform, user) }
    }

    /// Answers a question: admission (shutdown, rate limits), the Answerer (streaming to
    /// `stream` if given), the answer log. Never fails: problems become notices or the
    /// Answerer's fixed apology.
    pub async fn ask(&self, q: &Question, stream: Option<UnboundedSender<String>>) -> Reply {
        if let Some(notice) = self.admit(q) {
            return notice;
        }
        self.answer_admitted(q, stream).await
    }

    /// The admission check alone (counts the question against the rate limits): `Some(notice)`
    /// when the question must not be answered. For adapters that must decide before showing
    /// anything (a public "thinking…", a new thread); follow with [`ChannelCore::answer_admitted`].
    pub fn admit(&self, q: &Question) -> Option<Reply> {
        let language = question_language(&q.text);
        if !self.accepting.load(Ordering::SeqCst) {
            return Some(Reply::Notice { kind: NoticeKind::ShuttingDown, text: shutting_down_text(&language).into() });
        }
        let user_key = format!("{}:{}", q.platform, q.user);
        let chat_key = format!("{}:{}", q.platform, q.chat);
        if let Admission::Limited { retry_after } = self.limiter.admit(&user_key, &chat_key) {
            tracing::info!(platform = q.platform, "rate limited");
            if let Ok(mut m) = self.metrics.lock() {
                *m.rate_limited.entry(q.platform.to_string()).or_default() += 1;
            }
            return Some(Reply::Notice {
                kind: NoticeKind::RateLimited { retry_after },
                text: rate_limited_text(&language, retry_after),
            });
        }
        None
    }

    /// Marks work in flight (e.g. sending an answer) until the guard is dropped.
    pub fn work(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self)
    }

    /// Records where a person's later reply must go once the answer's message is known.
    pub async fn set_delivery(&self, answer_id: &str, delivery: &serde_json::Value) {
        if let Err(e) = self.log.update_delivery(answer_id, delivery).await {
            tracing::error!(error = %e, "could not update the delivery of an exchange");
        }
    }

    /// Answers a question that passed [`ChannelCore::admit`].
    pub async fn answer_admitted(&self, q: &Question, stream: Option<UnboundedSender<String>>) -> Reply {
        let _guard = self.work();
        let _permit = self.permits.acquire().await.ok();
        let conversation = format!("{}:{}", q.platform, q.conversation);
        let user = self.user_id(q.platform, &q.user);
        let incoming = Incoming::new(q.platform, &conversation, &user, &q.text);
        let answer = match stream {
            Some(sink) => self.answerer.answer_streaming(&incoming, None, sink).await,
            None => self.answerer.answer(&incoming, None).await,
        };
        if let Ok(mut m) = self.metrics.lock() {
            let outcome = serde_json::to_value(answer.outcome).ok().and_then(|v| v.as_str().map(str::to_string));
            *m.answers.entry((q.platform.to_string(), outcome.unwrap_or_default())).or_default() += 1;
            m.latency_ms_sum += answer.latency.total;
            m.latency_count += 1;
            for (bound, count) in m.latency_buckets.iter_mut() {
                if answer.latency.total <= *bound {
                    *count += 1;
                }
            }
        }
        let answer_id = new_answer_id();
        let mut exchange = Exchange::new(answer_id.clone(), q.platform, &conversation, user, &q.text, &answer);
        exchange.delivery = q.delivery.clone();
        if let Err(e) = self.log.record_exchange(&exchange).await {
            tracing::error!(error = %e, "could not log the exchange");
        }
        if let Ok(mut last) = self.last_answer.lock() {
            if last.len() > 100_000 {
                last.clear();
            }
            last.insert(conversation, answer_id.clone());
        }
        Reply::Answer { answer_id, answer: Box::new(answer) }
    }

    /// Handles a button press (`data` is the payload) by `user` of `platform`.
    pub async fn press(&self, platform: &str, user: &str, data: &str) -> FeedbackAck {
        let Some((kind, id)) = feedback::decode(data) else {
            return FeedbackAck { text: "This button is not mine.".into(), recorded: None };
        };
        let fb = Feedback {
            exchange_id: id,
            kind,
            user: self.user_id(platform, user),
            at: supportbot_core::store::now_rfc3339(),
        };
        match self.log.record_feedback(&fb).await {
            Ok(true) => {
                if let Ok(mut m) = self.metrics.lock() {
                    let k = match kind {
                        FeedbackKind::Up => "up",
                        FeedbackKind::Down => "down",
                        FeedbackKind::Human => "human",
                    };
                    *m.feedback.entry(k.to_string()).or_default() += 1;
                }
                if kind != FeedbackKind::Up {
                    self.escalate(&fb.exchange_id, kind).await;
                }
                FeedbackAck { text: ack_text(kind).into(), recorded: Some(kind) }
            }
            Ok(false) => FeedbackAck { text: "This answer is too old for feedback, sorry.".into(), recorded: None },
            Err(e) => {
                tracing::error!(error = %e, "could not record feedback");
                FeedbackAck { text: "Sorry, I could not record that. Please try again.".into(), recorded: None }
            }
        }
    }

    /// `/human`: asks for a person about the latest answer of this conversation.
    pub async fn request_human(&self, platform: &str, conversation: &str, user: &str) -> FeedbackAck {
        let key = format!("{platform}:{conversation}");
        let last = self.last_answer.lock().ok().and_then(|m| m.get(&key).cloned());
        match last {
            Some(id) => self.press(platform, user, &feedback::encode(FeedbackKind::Human, &id)).await,
            None => FeedbackAck {
                text: "Ask your question first, then I can pass it to a person if I can't help.".into(),
                recorded: None,
            },
        }
    }

    /// Stops admitting new questions (they get a notice); answers in flight continue.
    pub fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::SeqCst);
    }

    /// A copy of the counters.
    pub fn metrics(&self) -> Metrics {
        self.metrics.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Waits until no answer is in flight, or `grace` has passed. Returns whether it is idle.
    pub async fn wait_idle(&self, grace: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let notified = self.idle.notified();
            if self.in_flight() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.in_flight() == 0;
            }
        }
    }
}

fn ack_text(kind: FeedbackKind) -> &'static str {
    match kind {
        FeedbackKind::Up => "Thanks for the feedback!",
        FeedbackKind::Down => "Thanks — this answer will be reviewed.",
        FeedbackKind::Human => "OK — I've asked a person from the team to look at this. They'll reply here.",
    }
}
