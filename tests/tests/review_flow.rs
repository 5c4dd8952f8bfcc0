//! The operator loop through `supportbot serve` as a whole, in one process: the Telegram and
//! Discord channels against their fakes, the real Answerer over `examples/` (an
//! OpenAI-compatible fake as its model, to count model calls), the SQLite review store and the
//! HTTP server with the JSON API and `/metrics`. A user's question enters the review queue, an
//! operator's reply reaches the user in the original chat marked as coming from a person, and a
//! correction is served on the next close question without calling the model.

#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::time::Duration;

use serde_json::{Value, json};
use supportbot_bots::web::auth::{hash_password, new_token, token_hash};
use supportbot_config::{Secret, SourceSettings};
use supportbot_core::review::{Operator, Role, SqlReviewStore};
use supportbot_tests::fakes::discord::{self as fake_discord, FakeDiscord};
use supportbot_tests::fakes::telegram::{self as fake_tg, Chat, FakeTelegram, NewMessage, User};
use supportbot_tests::fakes::{Reply, openai};
use supportbot_tests::{examples_answerer, examples_dir, repo_root, test_settings};

const WAIT: Duration = Duration::from_secs(60);
/// Nothing in `examples/` answers this: the bot abstains.
const OUTLOOK: &str = "How do I export my contacts from Outlook to Gmail?";
const OUTLOOK_AGAIN: &str = "how do i export my contacts from outlook to gmail";
const CORRECTION: &str =
    "Driftwood does not read Outlook: export the contacts from Outlook as CSV and import them in Gmail.";
const METRICS_TOKEN: &str = "metrics-token-for-tests";
/// The operators' Discord channel.
const OPS_CHANNEL: u64 = 9009;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn within<T>(body: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(300), body).await.expect("the test timed out")
}

fn discord_fixture(name: &str) -> Value {
    let path = repo_root().join("tests/fixtures/discord").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Polls `f` until it returns `Some`.
async fn eventually<T, F: Future<Output = Option<T>>>(what: &str, mut f: impl FnMut() -> F) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn questions_enter_the_queue_replies_reach_the_chat_and_corrections_are_served() {
    within(async {
        let model = openai::start([Reply::text("A model answer [1].")]).await;
        let model_url = model.base_url.clone();
        let Some((ws, answerer)) = examples_answerer("review_flow", |s| {
            s.sources.push(SourceSettings {
                name: "examples".into(),
                path: examples_dir(),
                url: Some("https://docs.driftwood.example/".into()),
                tags: Vec::new(),
            });
            s.openai.base_url = Some(model_url);
            s.openai.api_key = Some(Secret::new(openai::API_KEY));
        })
        .await
        else {
            return;
        };

        // The review store, with an operator and an API token for the integration.
        let db = format!("sqlite://{}", ws.path().join("review.sqlite").display());
        let store = SqlReviewStore::connect(&db, 0.5).await.unwrap();
        let password_hash = hash_password("correct horse battery").unwrap();
        store.put_operator(&Operator { username: "ana".into(), password_hash, role: Role::Operator }).await.unwrap();
        let token = new_token();
        store.create_api_token(&token_hash(&token), "tests", "ana").await.unwrap();
        let viewer_hash = hash_password("viewer password 1").unwrap();
        store
            .put_operator(&Operator { username: "vic".into(), password_hash: viewer_hash, role: Role::Viewer })
            .await
            .unwrap();
        let viewer_token = new_token();
        store.create_api_token(&token_hash(&viewer_token), "tests", "vic").await.unwrap();

        let tg = FakeTelegram::start().await;
        let discord = FakeDiscord::start().await;
        let port = free_port();
        let mut settings = test_settings(ws.path(), &ws.index_dir());
        settings.sources.push(SourceSettings {
            name: "examples".into(),
            path: examples_dir(),
            url: Some("https://docs.driftwood.example/".into()),
            tags: Vec::new(),
        });
        settings.review.database_url = supportbot_config::DatabaseUrl::new(db.clone());
        settings.review.user_salt = Some(Secret::new("review-flow-salt"));
        settings.web.listen = format!("127.0.0.1:{port}");
        settings.web.metrics_token = Some(Secret::new(METRICS_TOKEN));
        settings.telegram.token = Some(Secret::new(fake_tg::TOKEN));
        settings.telegram.api_url = tg.api_url.clone();
        let ops = Chat::supergroup(-1_001_500, "Driftwood support team");
        tg.add_chat(&ops);
        settings.telegram.operator_chat = Some(ops.id);
        settings.discord.token = Some(Secret::new(fake_discord::TOKEN));
        settings.discord.api_url = discord.base_url.clone();
        settings.discord.application_id = None;
        discord.add_channel(OPS_CHANNEL, 4004);
        settings.discord.operator_channel = Some(OPS_CHANNEL);

        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let serve_settings = settings.clone();
        let server = tokio::spawn(async move {
            supportbot_bots::serve::run(&serve_settings, answerer, async move {
                let _ = stop_rx.await;
            })
            .await
        });
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        eventually("the HTTP server", || {
            let (http, url) = (http.clone(), format!("{base}/readyz"));
            async move { http.get(url).send().await.ok().filter(|r| r.status().is_success()) }
        })
        .await;

        // The API refuses callers without a token, and with a wrong one.
        let unauth = http.get(format!("{base}/api/v1/queue")).send().await.unwrap();
        assert_eq!(unauth.status(), 401);
        let wrong = http.get(format!("{base}/api/v1/queue")).bearer_auth("nope").send().await.unwrap();
        assert_eq!(wrong.status(), 401);
        let metrics = http.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(metrics.status(), 401, "metrics need their token");
        let openapi = http.get(format!("{base}/api/v1/openapi.json")).send().await.unwrap();
        assert_eq!(openapi.status(), 401);
        let openapi: Value = http
            .get(format!("{base}/api/v1/openapi.json"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(openapi["paths"]["/api/v1/queue/{id}/{action}"]["post"].is_object(), "the API is described");

        // A Telegram user asks what the docs do not cover: the bot abstains and offers a human.
        let ann = User::new(1001, "Ann");
        let chat = Chat::private(&ann);
        let asked = tg.post(NewMessage::new(&chat, &ann, OUTLOOK));
        let reply = tg.wait_replies(&asked, 1, WAIT).await.remove(0);
        let data = reply.callback_data();
        let human = data.iter().find(|d| d.starts_with("fb:h:")).expect("a talk-to-a-human button").clone();
        let id = human.trim_start_matches("fb:h:").to_string();
        // ... and asks for a person.
        tg.press(&ann, chat.id, reply.message_id, &human);
        let api = |path: &str| http.get(format!("{base}/api/v1{path}")).bearer_auth(&token);
        // POSTs `body` to the API and reads the JSON answer.
        let post_api = |path: &str, body: Value| {
            let request = http.post(format!("{base}/api/v1{path}")).bearer_auth(&token).json(&body);
            async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
        };
        let ask_api = |question: &str| post_api("/ask", json!({ "question": question }));

        // The exchange is in the queue, for abstaining and for the request for a human.
        let item: Value = eventually("the human request in the queue", || {
            let req = api(&format!("/queue/{id}"));
            async move {
                let v: Value = req.send().await.ok()?.json().await.ok()?;
                let reasons = v["reasons"].as_array()?.clone();
                (reasons.contains(&json!("abstained")) && reasons.contains(&json!("human"))).then_some(v)
            }
        })
        .await;
        assert_eq!(item["exchange"]["question"], OUTLOOK);
        assert_eq!(item["exchange"]["outcome"], "abstained");
        assert_eq!(item["status"], "open");
        assert!(!item["exchange"]["user"].as_str().unwrap().contains("1001"), "the user id is pseudonymous");
        let listed: Value = api("/queue?status=open&reason=human").send().await.unwrap().json().await.unwrap();
        assert!(listed["items"].as_array().unwrap().iter().any(|i| i["exchange"]["id"] == id));
        let unanswered: Value =
            api("/queue?status=open&reason=thumbs_down").send().await.unwrap().json().await.unwrap();
        assert!(unanswered["items"].as_array().unwrap().iter().all(|i| i["exchange"]["id"] != id), "filters apply");

        // A viewer may read but not act.
        let as_viewer = http
            .post(format!("{base}/api/v1/queue/{id}/reply"))
            .bearer_auth(&viewer_token)
            .json(&json!({ "text": "hi" }))
            .send()
            .await
            .unwrap();
        assert_eq!(as_viewer.status(), 403);

        // The request is posted to the operators' group, with the question and a way to take over.
        let olga = User::new(5005, "Olga");
        tg.wait_until(WAIT, "the escalation in the operators' group", |t| {
            t.bot_messages().iter().any(|m| m.chat_id == ops.id && m.visible_text().contains(&id))
        })
        .await;
        let post = tg.bot_messages().into_iter().find(|m| m.chat_id == ops.id).unwrap();
        assert!(post.visible_text().contains("asked for a person"), "{}", post.visible_text());
        assert!(post.visible_text().contains(OUTLOOK));
        assert_eq!(post.callback_data(), [format!("op:c:{id}")], "an abstention can be taken over, not approved");
        let pressed = tg.press(&olga, ops.id, post.message_id, &format!("op:c:{id}"));
        tg.wait_until(WAIT, "the take-over acknowledged", |t| {
            t.calls_to("answerCallbackQuery").iter().any(|c| c.body["callback_query_id"] == pressed)
        })
        .await;
        let claimed: Value = api(&format!("/queue/{id}")).send().await.unwrap().json().await.unwrap();
        assert_eq!(claimed["status"], "claimed");
        assert_eq!(claimed["claimed_by"], "telegram:5005");
        // Operators chatting among themselves reach nobody.
        let sent_before = tg.bot_messages().len();
        tg.post(NewMessage::new(&ops, &olga, "I'll take this one"));

        // Olga answers by replying to the post: the user gets it in the same chat, as a reply
        // to the question, marked as coming from a person; the group gets a confirmation.
        let answered =
            tg.post(NewMessage::new(&ops, &olga, "Hi Ann, use the .ics export for now.").reply_to(post.message_id));
        tg.wait_until(WAIT, "the operator's reply in the user's chat", |t| {
            t.bot_messages().iter().skip(sent_before).any(|m| m.chat_id == chat.id)
        })
        .await;
        let person = tg.bot_messages().into_iter().skip(sent_before).find(|m| m.chat_id == chat.id).unwrap();
        assert!(person.visible_text().contains("support team"), "marked as from a person: {}", person.visible_text());
        assert!(person.visible_text().contains("use the .ics export"));
        assert!(person.callback_data().is_empty(), "a person's reply has no feedback buttons");
        assert_eq!(person.reply_to, Some(asked.message_id), "a reply to the user's question");
        let confirmations = tg.wait_replies(&answered, 1, WAIT).await;
        assert!(confirmations[0].visible_text().contains("Sent to the user"));
        let resolved: Value = api(&format!("/queue/{id}")).send().await.unwrap().json().await.unwrap();
        assert_eq!(resolved["status"], "resolved");
        let last = resolved["actions"].as_array().unwrap().last().unwrap().clone();
        assert_eq!((last["kind"].as_str(), last["operator"].as_str()), (Some("reply"), Some("telegram:5005")));
        let chatter = tg.bot_messages().iter().skip(sent_before).filter(|m| m.chat_id == ops.id).count();
        assert_eq!(chatter, 1, "only the confirmation was posted in the group");

        // The operator also corrects the answer: it becomes a curated answer...
        let approved = http
            .post(format!("{base}/api/v1/queue/{id}/edit"))
            .bearer_auth(&token)
            .json(&json!({ "answer": CORRECTION, "questions": ["Can I move my Outlook contacts to Gmail?"] }))
            .send()
            .await
            .unwrap();
        assert_eq!(approved.status(), 200);
        let approved: Value = approved.json().await.unwrap();
        assert_eq!(approved["curated"]["answer"], CORRECTION);
        let curated: Value = api("/curated").send().await.unwrap().json().await.unwrap();
        assert_eq!(curated["curated"].as_array().unwrap().len(), 1);

        // ... served verbatim on the next close question, without calling the model.
        let model_calls = model.requests().len();
        let bob = User::new(1002, "Bob");
        let bob_chat = Chat::private(&bob);
        let again = tg.post(NewMessage::new(&bob_chat, &bob, OUTLOOK_AGAIN));
        let served = tg.wait_replies(&again, 1, WAIT).await.remove(0);
        assert!(served.visible_text().contains(CORRECTION), "the correction is served: {}", served.visible_text());
        assert_eq!(model.requests().len(), model_calls, "no model call for a curated answer");
        // The same through the API's ask, with the outcome spelled out.
        let asked_api = ask_api("Can I move my Outlook contacts to Gmail?").await;
        assert_eq!(asked_api["outcome"], "curated");
        assert_eq!(asked_api["answer"], CORRECTION);
        assert_eq!(model.requests().len(), model_calls, "still no model call");

        // Retired, it is no longer served.
        let cid = approved["curated"]["id"].as_str().unwrap();
        let retired =
            http.post(format!("{base}/api/v1/curated/{cid}/retire")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(retired.status(), 200);
        let after = ask_api(OUTLOOK).await;
        assert_ne!(after["outcome"], "curated", "a retired curated answer is not served: {after}");

        // Discord: a mention is answered; the operator's reply goes to the same channel as a
        // reply to the user's message, pinging nobody else.
        discord.wait_for_identify(WAIT).await.expect("the Discord client connected");
        discord.dispatch("MESSAGE_CREATE", discord_fixture("message_mention"));
        let answered = discord.wait_for("POST", "/channels/2002/messages", 1, WAIT).await;
        let dc_id = answered[0].body["components"][0]["components"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|b| b["custom_id"].as_str())
            .find_map(|c| c.strip_prefix("fb:h:"))
            .expect("buttons with the answer id")
            .to_string();
        // The user presses 👎: the exchange is posted to the operators' channel, pinging nobody,
        // with Take over and Approve buttons.
        let mut press = discord_fixture("button_press");
        press["data"]["custom_id"] = json!(format!("fb:d:{dc_id}"));
        discord.dispatch("INTERACTION_CREATE", press);
        // (The Telegram user's request was posted here too: every operators' chat sees every
        // escalation.)
        let ops_path = format!("/channels/{OPS_CHANNEL}/messages");
        let posted = discord.wait_for("POST", &ops_path, 2, WAIT).await;
        assert!(posted[0].body["content"].as_str().unwrap().ends_with(&format!("ref: {id}")));
        let post = &posted[1].body;
        assert!(post["content"].as_str().unwrap().contains("unhelpful"), "{post}");
        assert!(post["content"].as_str().unwrap().ends_with(&format!("ref: {dc_id}")), "{post}");
        assert_eq!(post["allowed_mentions"]["parse"], json!([]), "{post}");
        let ops_buttons: Vec<&str> = post["components"][0]["components"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|b| b["custom_id"].as_str())
            .collect();
        assert_eq!(ops_buttons, [format!("op:c:{dc_id}"), format!("op:a:{dc_id}")]);

        // An operator takes it over from the channel...
        let mut take = discord_fixture("button_press");
        take["token"] = json!("tok-take-over");
        take["channel_id"] = json!(OPS_CHANNEL.to_string());
        take["channel"]["id"] = json!(OPS_CHANNEL.to_string());
        take["member"]["user"] =
            json!({"id": "6006", "username": "olga", "discriminator": "0", "global_name": "Olga", "avatar": null});
        take["data"]["custom_id"] = json!(format!("op:c:{dc_id}"));
        discord.dispatch("INTERACTION_CREATE", take);
        let ack = discord.wait_for("POST", "/tok-take-over/callback", 1, WAIT).await;
        assert!(ack[0].body["data"]["content"].as_str().unwrap().contains("yours"), "{}", ack[0].body);
        let claimed: Value = api(&format!("/queue/{dc_id}")).send().await.unwrap().json().await.unwrap();
        assert_eq!(
            (claimed["status"].as_str(), claimed["claimed_by"].as_str()),
            (Some("claimed"), Some("discord:olga"))
        );

        // ... and answers by replying to the post: the user gets it in their channel, as a reply
        // to their question.
        let bot_post = discord
            .messages_in(OPS_CHANNEL)
            .into_iter()
            .find(|m| m["content"].as_str().is_some_and(|c| c.ends_with(&format!("ref: {dc_id}"))))
            .unwrap();
        let mut answer = discord_fixture("message_mention");
        answer["id"] = json!("7707");
        answer["channel_id"] = json!(OPS_CHANNEL.to_string());
        answer["author"] =
            json!({"id": "6006", "username": "olga", "discriminator": "0", "global_name": "Olga", "avatar": null});
        answer["content"] = json!("At least 2 GB; 4 GB with the search add-on.");
        answer["mentions"] = json!([]);
        answer["type"] = json!(19);
        answer["message_reference"] = json!({"message_id": bot_post["id"], "channel_id": OPS_CHANNEL.to_string()});
        answer["referenced_message"] = bot_post.clone();
        discord.dispatch("MESSAGE_CREATE", answer);
        let posts = discord.wait_for("POST", "/channels/2002/messages", 2, WAIT).await;
        let person = &posts[1].body;
        assert!(person["content"].as_str().unwrap().contains("support team"), "{person}");
        assert!(person["content"].as_str().unwrap().contains("4 GB with the search add-on"), "{person}");
        assert_eq!(person["message_reference"]["message_id"], "1101", "a reply to the question");
        assert_eq!(person["allowed_mentions"]["parse"], json!([]), "pings nobody but the asker: {person}");
        let confirmations = discord.wait_for("POST", &ops_path, 3, WAIT).await;
        assert!(confirmations[2].body["content"].as_str().unwrap().contains("Sent to the user"));
        assert_eq!(confirmations[2].body["message_reference"]["message_id"], "7707");
        let resolved: Value = api(&format!("/queue/{dc_id}")).send().await.unwrap().json().await.unwrap();
        assert_eq!(resolved["status"], "resolved");

        // Approving a bot answer as it stands makes it a curated answer, served verbatim from then
        // on; rejecting one curates nothing.
        let curated_count = || {
            let request = api("/curated");
            async move {
                let all: Value = request.send().await.unwrap().json().await.unwrap();
                all["curated"].as_array().unwrap().len()
            }
        };
        let before = curated_count().await;
        let ports = ask_api("Which ports must be open for the Driftwood server?").await;
        assert_eq!(ports["outcome"], "answered", "{ports}");
        let wrong = ask_api("How do I clear the desktop client's cache?").await;
        assert_eq!(wrong["outcome"], "answered", "{wrong}");
        let (ports_id, wrong_id) = (ports["answer_id"].as_str().unwrap(), wrong["answer_id"].as_str().unwrap());
        let approved = post_api(&format!("/queue/{ports_id}/approve"), json!({})).await;
        assert_eq!(approved["curated"]["answer"], ports["answer"], "approved as it stands: {approved}");
        assert_eq!(approved["item"]["status"], "resolved");
        let rejected = post_api(&format!("/queue/{wrong_id}/reject"), json!({ "note": "cites the wrong page" })).await;
        assert_eq!(rejected["item"]["status"], "rejected", "{rejected}");
        assert_eq!(curated_count().await, before + 1, "only the approved answer was curated");
        let model_calls = model.requests().len();
        let again = ask_api("Which ports must be open for the Driftwood server?").await;
        assert_eq!((again["outcome"].as_str(), &again["answer"]), (Some("curated"), &ports["answer"]), "{again}");
        assert_eq!(model.requests().len(), model_calls, "no model call for a curated answer");

        // /metrics counts what happened.
        let text =
            http.get(format!("{base}/metrics")).bearer_auth(METRICS_TOKEN).send().await.unwrap().text().await.unwrap();
        assert!(text.contains("supportbot_answers_total{channel=\"telegram\",outcome=\"abstained\"} 1"), "{text}");
        assert!(text.contains("supportbot_answers_total{channel=\"telegram\",outcome=\"curated\"} 1"), "{text}");
        assert!(text.contains("supportbot_feedback_total{kind=\"human\"} 1"), "{text}");
        assert!(text.contains("supportbot_feedback_total{kind=\"down\"} 1"), "{text}");

        let _ = stop_tx.send(());
        let stopped = tokio::time::timeout(Duration::from_secs(30), server).await.expect("serve stops in time");
        stopped.unwrap().expect("serve ends cleanly");
    })
    .await;
}
