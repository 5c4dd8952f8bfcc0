#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] functions
//! The operator console end to end, driven in real headless Chromium through chromedriver:
//! `supportbot serve` runs in-process (`serve::run`) over the index of `examples/` (built by the
//! real ingest binary) and a SQLite review store with one operator account. A user's question
//! the documentation cannot answer enters the queue; the operator signs in, finds it, writes a
//! correction and approves it; the bot then serves that correction (outcome `curated`, no
//! model). Along the way: pages refuse visitors without a session, a wrong password shows an
//! error and opens no session, and a form posted without the CSRF token is refused and changes
//! nothing.
//!
//! Needs Debian's `chromium` and `chromedriver` (`scripts/setup` installs them) and the model
//! assets; without them the test says it is skipped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use supportbot_bots::channel::{ChannelCore, CoreOptions, Question, Reply};
use supportbot_bots::web::auth::{SESSION_COOKIE, hash_password, token_hash};
use supportbot_config::DatabaseUrl;
use supportbot_core::answer::{Incoming, Outcome};
use supportbot_core::log::AnswerLog;
use supportbot_core::review::{Operator, QueueStatus, Role, SqlReviewStore, now_secs};
use supportbot_tests::{examples_answerer, test_settings};

const CHROMIUM: &str = "/usr/bin/chromium";
const SKIPPED: &str = "console tests skipped: chromium/chromedriver not installed (scripts/setup installs them)";

const OPERATOR: &str = "ana";
const PASSWORD: &str = "correct horse battery staple";
const TARGET_PASSWORD: &str = "a password worth guessing";

/// Nothing in `examples/` answers this (it is labelled unanswerable): the bot abstains.
const OUTLOOK: &str = "How do I export my contacts from Outlook to Gmail?";
/// Another way to ask it, added by the operator with the correction.
const OUTLOOK_VARIANT: &str = "Can I move my Outlook address book into Gmail?";
/// The operator's correction, served verbatim afterwards.
const CORRECTION: &str = "Driftwood does not move contacts between mail providers. In Outlook, choose \
     File > Open & Export > Import/Export > Export to a file (CSV), then import that CSV in Google Contacts.";

/// Generous: the first answer also waits for the ONNX model to load.
const WAIT: Duration = Duration::from_secs(60);

/// Runs a test body with a deadline, so a hang fails instead of blocking the suite.
async fn within<T>(limit: Duration, body: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, body).await.unwrap_or_else(|_| panic!("test timed out after {limit:?}"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// `name` on the PATH (or in /usr/bin), if installed.
fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).chain([PathBuf::from("/usr/bin")]).map(|d| d.join(name)).find(|p| p.is_file())
}

/// A chromedriver child process, in its own process group so the browsers it starts go with it.
struct Chromedriver {
    child: Child,
    port: u16,
}

impl Chromedriver {
    async fn start(program: &Path) -> Self {
        use std::os::unix::process::CommandExt as _;
        let port = free_port();
        let child = Command::new(program)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let driver = Self { child, port };
        let status = format!("{}/status", driver.url());
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if http.get(&status).send().await.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not answer on port {port}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        driver
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A headless Chromium session.
    async fn browser(&self) -> Client {
        let caps = serde_json::json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1024"],
            }
        });
        let serde_json::Value::Object(caps) = caps else { unreachable!() };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url())
            .await
            .expect("chromedriver starts a headless Chromium session")
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The whole group (chromedriver and any browser left behind by a failed test), by id.
        let _ =
            Command::new("kill").args(["-TERM", "--", &format!("-{}", self.child.id())]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The console as a browser sees it.
struct Console {
    browser: Client,
    base: String,
}

impl Console {
    async fn goto(&self, path: &str) {
        self.browser.goto(&format!("{}{path}", self.base)).await.unwrap_or_else(|e| panic!("opening {path}: {e}"));
    }

    async fn path(&self) -> String {
        self.browser.current_url().await.expect("current url").path().to_string()
    }

    /// Waits until the browser shows `path` (after a form's redirect).
    async fn wait_for_path(&self, path: &str) {
        let started = Instant::now();
        loop {
            let now = self.path().await;
            if now == path {
                return;
            }
            assert!(started.elapsed() < WAIT, "the browser stayed on {now}, expected {path}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait(&self, css: &str) -> fantoccini::elements::Element {
        match self.browser.wait().at_most(WAIT).for_element(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => {
                let at = self.browser.current_url().await.map(|u| u.to_string()).unwrap_or_default();
                let page = self.browser.source().await.unwrap_or_default();
                panic!("no {css} on {at}: {e}\n{page}")
            }
        }
    }

    /// The visible text of the first element matching `css` (waiting for it).
    async fn text(&self, css: &str) -> String {
        self.wait(css).await.text().await.expect("text")
    }

    async fn has(&self, css: &str) -> bool {
        !self.browser.find_all(Locator::Css(css)).await.expect("find_all").is_empty()
    }

    async fn fill(&self, css: &str, value: &str) {
        let field = self.wait(css).await;
        field.clear().await.expect("clear");
        field.send_keys(value).await.expect("type");
    }

    async fn click(&self, css: &str) {
        self.wait(css).await.click().await.unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    async fn sign_in(&self, username: &str, password: &str) {
        self.goto("/login").await;
        self.fill("#username", username).await;
        self.fill("#password", password).await;
        self.click("form.login button[type=submit]").await;
    }

    async fn session_cookie(&self) -> Option<String> {
        let cookies = self.browser.get_all_cookies().await.expect("cookies");
        cookies.iter().find(|c| c.name() == SESSION_COOKIE).map(|c| c.value().to_string())
    }

    /// Asks on the "Test a question" page; returns the outcome and the answer shown.
    async fn test_question(&self, question: &str) -> (String, String) {
        self.goto("/test").await;
        self.fill("#q", question).await;
        self.click("form[action='/test'] button[type=submit]").await;
        let outcome = self.text("#outcome").await;
        (outcome, self.text("#answer").await)
    }
}

/// A plain HTTP client that shows redirects instead of following them.
fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

fn location(r: &reqwest::Response) -> &str {
    r.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

fn telegram_question(user: &str, text: &str) -> Question {
    Question {
        platform: "telegram",
        chat: user.into(),
        user: user.into(),
        conversation: user.into(),
        text: text.into(),
        delivery: serde_json::Value::Null,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_corrects_an_abstention_in_the_browser_and_the_bot_serves_it() {
    let (Some(driver_program), true) = (program("chromedriver"), Path::new(CHROMIUM).is_file()) else {
        println!("{SKIPPED}");
        return;
    };
    within(Duration::from_secs(600), async {
        let started = Instant::now();
        let Some((ws, answerer)) = examples_answerer("console", |_| {}).await else { return };

        // The review store, with one operator account, as `supportbot operator add` leaves it.
        let db_dir = tempfile::tempdir().expect("tempdir");
        let db_url = format!("sqlite://{}", db_dir.path().join("review.sqlite").display());
        let mut settings = test_settings(ws.path(), &ws.index_dir());
        let review = Arc::new(SqlReviewStore::connect(&db_url, settings.review.low_confidence).await.expect("store"));
        review
            .put_operator(&Operator {
                username: OPERATOR.into(),
                password_hash: hash_password(PASSWORD).expect("hash"),
                role: Role::Operator,
            })
            .await
            .expect("operator");
        // An account someone will try to guess the password of.
        review
            .put_operator(&Operator {
                username: "target".into(),
                password_hash: hash_password(TARGET_PASSWORD).expect("hash"),
                role: Role::Operator,
            })
            .await
            .expect("operator");

        // `supportbot serve`, HTTP only, on a free port.
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        settings.web.listen = format!("127.0.0.1:{port}");
        settings.review.database_url = DatabaseUrl::new(db_url.clone());
        settings.telegram.token = None;
        settings.discord.token = None;
        settings.limits.shutdown_grace_secs = 5;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server_answerer = answerer.clone();
        let server = tokio::spawn(async move {
            supportbot_bots::serve::run(&settings, server_answerer, async {
                let _ = stopped.await;
            })
            .await
        });
        let http = http();
        let ready = Instant::now();
        while !http.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status() == StatusCode::OK) {
            assert!(!server.is_finished(), "serve stopped: {:?}", server.await);
            assert!(ready.elapsed() < WAIT, "the server did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // The chat side: how a Telegram user's question reaches the same review store.
        let core = ChannelCore::new(
            answerer.clone(),
            review.clone() as Arc<dyn AnswerLog>,
            CoreOptions {
                per_user_per_minute: 100,
                per_chat_per_minute: 100,
                max_concurrent_answers: 2,
                user_salt: "console-tests".into(),
            },
        );

        // Without a session, every console page sends the visitor to the sign-in page, the data
        // export included, and actions do nothing.
        for path in ["/queue", "/queue/anything", "/curated", "/curated.csv", "/test", "/dashboard"] {
            let r = http.get(format!("{base}{path}")).send().await.expect("get");
            assert!(r.status().is_redirection(), "{path}: {}", r.status());
            assert_eq!(location(&r), "/login", "{path}");
        }
        let r = http.post(format!("{base}/queue/anything/approve")).form(&[("csrf", "x")]).send().await.expect("post");
        assert_eq!((r.status().is_redirection(), location(&r)), (true, "/login"), "an action without a session");
        let r = http.get(format!("{base}/api/v1/queue")).send().await.expect("get");
        assert!(
            matches!(r.status(), StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND),
            "the API without a token: {}",
            r.status()
        );

        // Password guessing: after five wrong passwords the account is locked for a while, even
        // for the right password from elsewhere, and so is the guessing address for any account.
        // (Addresses come from X-Forwarded-For, trusted because the peer is this machine.)
        let sign_in = |user: &'static str, password: &'static str, from: &'static str| {
            let request = http
                .post(format!("{base}/login"))
                .header("x-forwarded-for", from)
                .form(&[("username", user), ("password", password)]);
            async move { request.send().await.expect("post /login").status() }
        };
        for _ in 0..5 {
            assert_eq!(sign_in("target", "guess", "203.0.113.9").await, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(sign_in("target", TARGET_PASSWORD, "198.51.100.7").await, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(sign_in(OPERATOR, PASSWORD, "203.0.113.9").await, StatusCode::TOO_MANY_REQUESTS);
        // Another address signs in to another account as usual.
        let r = sign_in(OPERATOR, PASSWORD, "198.51.100.7").await;
        assert!(r.is_redirection(), "a good sign-in elsewhere: {r}");

        // A session past its expiry opens nothing; the same cookie for a session still valid
        // opens the queue (the control).
        let queue_with_session = |token: &'static str, expires_at: i64| {
            let (review, request) = (review.clone(), http.get(format!("{base}/queue")));
            async move {
                review.create_session(&token_hash(token), OPERATOR, "csrf", expires_at).await.expect("session");
                request.header("cookie", format!("{SESSION_COOKIE}={token}")).send().await.expect("get")
            }
        };
        let r = queue_with_session("an-expired-session-token", now_secs() - 1).await;
        assert_eq!((r.status().is_redirection(), location(&r)), (true, "/login"), "an expired session");
        let r = queue_with_session("a-valid-session-token", now_secs() + 3600).await;
        assert_eq!(r.status(), StatusCode::OK, "a valid session");

        let driver = Chromedriver::start(&driver_program).await;
        let console = Console { browser: driver.browser().await, base: base.clone() };

        // Opening the queue without a session lands on the sign-in page.
        console.goto("/queue").await;
        console.wait_for_path("/login").await;
        assert_eq!(console.text("h1").await, "Sign in");
        assert_eq!(console.browser.title().await.expect("title"), "Sign in · supportbot");

        // A wrong password: a visible error, still on the sign-in page, no session.
        console.sign_in(OPERATOR, "not my password").await;
        assert_eq!(console.text("p.error").await, "Wrong username or password.");
        assert_eq!(console.path().await, "/login");
        assert_eq!(console.wait("#username").await.prop("value").await.expect("value").as_deref(), Some(OPERATOR));
        assert_eq!(console.session_cookie().await, None, "a failed sign-in sets no session cookie");
        console.goto("/queue").await;
        console.wait_for_path("/login").await;

        // Signing in: the queue, empty so far.
        console.sign_in(OPERATOR, PASSWORD).await;
        console.wait_for_path("/queue").await;
        assert_eq!(console.text("h1").await, "Review queue");
        assert_eq!(console.text(".who").await, "ana · operator");
        assert_eq!(console.text("p.empty").await, "Nothing in the queue matches these filters.");
        let cookie = console.session_cookie().await.expect("a session cookie after signing in");

        // A user asks something the documentation does not answer: the bot abstains, and the
        // exchange enters the queue.
        let Reply::Answer { answer_id, answer } = core.ask(&telegram_question("1001", OUTLOOK), None).await else {
            panic!("a notice instead of an answer")
        };
        assert_eq!(answer.outcome, Outcome::Abstained, "{answer:?}");

        console.goto("/queue").await;
        let link = console.wait("table.queue a.question").await;
        assert_eq!(link.text().await.expect("text"), OUTLOOK);
        assert_eq!(console.text("table.queue .reason-abstained").await, "abstained");
        assert_eq!(console.text("table.queue .outcome").await, "abstained");
        link.click().await.expect("open the item");
        console.wait_for_path(&format!("/queue/{answer_id}")).await;
        assert_eq!(console.text("#question").await, OUTLOOK);
        assert_eq!(console.text("#answer").await, answer.text.trim());
        assert_eq!(console.text("#status").await, "open");
        assert!(
            !console.has("form[action$='/approve']").await,
            "an abstention cannot be approved as it is, only corrected"
        );

        // Forms posted without the session's CSRF token (as another site would) are refused
        // and change nothing, even with the session cookie.
        let act = format!("{base}/queue/{answer_id}");
        let with_cookie =
            |url: String| http.post(url).header(reqwest::header::COOKIE, format!("{SESSION_COOKIE}={cookie}"));
        for (action, form) in [
            ("reject", vec![("note", "spam")]),
            ("edit", vec![("answer", "Forged answer."), ("csrf", "not-the-token")]),
        ] {
            let r = with_cookie(format!("{act}/{action}")).form(&form).send().await.expect("post");
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{action}");
            let body = r.text().await.expect("body");
            assert!(body.contains("Form refused"), "{action}: {body}");
        }
        let r = with_cookie(format!("{base}/test")).form(&[("q", OUTLOOK)]).send().await.expect("post");
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "testing a question needs the token too");
        let item = review.item(&answer_id).await.expect("item").expect("queued");
        assert_eq!(item.status, QueueStatus::Open);
        assert!(item.actions.is_empty(), "{:?}", item.actions);
        assert!(review.list_curated(false).await.expect("curated").is_empty());
        console.browser.refresh().await.expect("reload");
        assert_eq!(console.text("#status").await, "open");
        assert!(!console.has("#actions").await, "no operator action is recorded");
        let page = console.browser.source().await.expect("source");
        assert!(page.contains("No operator has acted on this yet."), "the history is empty");

        // The bot's "I don't know" is not an answer to approve: the edit form starts empty, and
        // submitting the abstention's text unchanged is refused with a visible error.
        let draft = console.wait("#edit-answer").await.prop("value").await.expect("value");
        assert_eq!(draft.as_deref(), Some(""), "the edit form of an abstention starts empty");
        console.fill("#edit-answer", &answer.text).await;
        console.click("button[value=edit]").await;
        let error = console.text("p.error").await;
        assert!(error.contains("write the answer users should get"), "{error}");
        assert_eq!(console.text("#status").await, "open");
        assert!(review.list_curated(false).await.expect("curated").is_empty(), "nothing was curated");

        // The correction, with another way users ask it, approved from the item page.
        console.fill("#edit-answer", CORRECTION).await;
        console.fill("#edit-questions", OUTLOOK_VARIANT).await;
        console.click("button[value=edit]").await;
        let notice = console.text("p.notice").await;
        assert_eq!(notice, "Corrected and approved: the correction is now a curated answer, served for this question.");
        assert_eq!(console.path().await, format!("/queue/{answer_id}"));
        assert_eq!(console.text("#status").await, "resolved");
        let history = console.text("#actions").await;
        assert!(history.contains("edit by ana") && history.contains(CORRECTION), "{history}");

        // The queue no longer lists it; the curated answers do.
        console.goto("/queue").await;
        assert_eq!(console.text("p.empty").await, "Nothing in the queue matches these filters.");
        console.goto("/curated").await;
        console.wait("article.curated").await;
        let page = console.browser.source().await.expect("source");
        assert!(
            page.contains(OUTLOOK) && page.contains(OUTLOOK_VARIANT),
            "the curated list shows the questions:\n{page}"
        );

        // See it served: the console's tester, without a model…
        for q in [OUTLOOK, OUTLOOK_VARIANT] {
            let (outcome, text) = console.test_question(q).await;
            assert_eq!((outcome.as_str(), text.as_str()), ("curated", CORRECTION), "{q}");
            let backend = console.browser.find(Locator::XPath("//dt[.='Backend']/following-sibling::dd[1]")).await;
            assert_eq!(backend.expect("backend").text().await.expect("text"), "none", "no model wrote it");
        }
        // …and a user asking again in the chat.
        let Reply::Answer { answer, .. } = core.ask(&telegram_question("1002", OUTLOOK), None).await else {
            panic!("a notice instead of an answer")
        };
        assert_eq!(
            (answer.outcome, answer.text.as_str(), answer.backend.as_deref()),
            (Outcome::Curated, CORRECTION, None)
        );
        let direct = answerer.answer(&Incoming::new("cli", "cli:console", "cli", OUTLOOK_VARIANT), None).await;
        assert_eq!((direct.outcome, direct.text.as_str()), (Outcome::Curated, CORRECTION));

        // Signing out ends the session on the server too: the old cookie no longer opens pages.
        console.goto("/queue").await;
        console.click("form.signout button[type=submit]").await;
        console.wait_for_path("/login").await;
        assert_eq!(console.session_cookie().await, None);
        console.goto("/queue").await;
        console.wait_for_path("/login").await;
        let r = http
            .get(format!("{base}/queue"))
            .header(reqwest::header::COOKIE, format!("{SESSION_COOKIE}={cookie}"))
            .send()
            .await
            .expect("get");
        assert_eq!((r.status().is_redirection(), location(&r)), (true, "/login"), "a signed-out session");

        console.browser.close().await.expect("close the browser");
        drop(driver);
        stop.send(()).expect("the server is running");
        let ended = tokio::time::timeout(Duration::from_secs(20), server).await;
        ended.expect("serve stops in time").expect("no panic").expect("serve ends without an error");
        eprintln!("console scenario took {:.1}s", started.elapsed().as_secs_f64());
    })
    .await;
}
