//! The remote language-model backends (Gemini REST, OpenAI-compatible chat completions) against
//! wire-level fakes: answers, streaming, retries, and how every failure is classified.

use std::future::Future;
use std::time::{Duration, Instant};

use futures::StreamExt;
use supportbot_core::llm::gemini::{GeminiModel, GeminiOptions};
use supportbot_core::llm::openai::{OpenAiModel, OpenAiOptions};
use supportbot_core::llm::retry::RetryPolicy;
use supportbot_core::llm::{FinishReason, LanguageModel, Message, ModelError, Prompt, Role};
use supportbot_tests::fakes::{self, FakeServer, Finish, Reply, gemini, openai};

const ANSWER: &str = "Open Settings → Security and choose “Reset password” [1].";

/// Fails a test that hangs instead of blocking the suite.
async fn within<F: Future>(test: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), test).await.expect("test timed out")
}

fn prompt() -> Prompt {
    Prompt {
        system: "Answer only from the passages and cite them as [n].".into(),
        messages: vec![
            Message { role: Role::User, text: "Hi".into() },
            Message { role: Role::Assistant, text: "Hello! How can I help?".into() },
            Message {
                role: Role::User,
                text: "<passages>[1] Passwords: reset in Settings.</passages>\nQUESTION: How do I reset my password?"
                    .into(),
            },
        ],
        passages: Vec::new(),
        question: "How do I reset my password?".into(),
        max_output_tokens: 512,
        temperature: 0.2,
    }
}

/// Fast retries: waits of a few milliseconds, at most 1 s.
fn fast_retry() -> RetryPolicy {
    RetryPolicy { max_retries: 2, backoff: Duration::from_millis(5), max_wait: Duration::from_secs(1) }
}

fn gemini_model(server: &FakeServer) -> GeminiModel {
    gemini_model_with(server, fast_retry(), Duration::from_secs(5))
}

fn gemini_model_with(server: &FakeServer, retry: RetryPolicy, timeout: Duration) -> GeminiModel {
    GeminiModel::new(GeminiOptions {
        base_url: server.base_url.clone(),
        api_key: gemini::API_KEY.into(),
        model: "gemini-test-flash".into(),
        timeout,
        retry,
        thinking_level: Some("low".into()),
        context_tokens: 1_000_000,
    })
    .expect("gemini model")
}

fn openai_model(server: &FakeServer) -> OpenAiModel {
    openai_model_with(server, fast_retry(), Duration::from_secs(5))
}

fn openai_model_with(server: &FakeServer, retry: RetryPolicy, timeout: Duration) -> OpenAiModel {
    OpenAiModel::new(OpenAiOptions {
        base_url: server.base_url.clone(),
        api_key: Some(openai::API_KEY.into()),
        model: "qwen-test".into(),
        timeout,
        retry,
        context_tokens: 4096,
    })
    .expect("openai model")
}

/// Collects a stream: the pieces before the first error, and that error.
async fn collect(model: &dyn LanguageModel) -> (Vec<String>, Option<ModelError>) {
    let mut stream = model.generate_stream(&prompt()).await.expect("stream starts");
    let mut pieces = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(piece) => pieces.push(piece),
            Err(e) => {
                assert!(stream.next().await.is_none(), "the stream ends after an error");
                return (pieces, Some(e));
            }
        }
    }
    (pieces, None)
}

// ---------------------------------------------------------------------------------------------
// Gemini

#[tokio::test]
async fn gemini_answers_with_the_documented_request() {
    within(async {
        let server = gemini::start([Reply::text(ANSWER)]).await;
        let model = gemini_model(&server);
        assert_eq!(model.name(), "gemini");
        let g = model.generate(&prompt()).await.expect("answer");
        assert_eq!(g.text, ANSWER, "the thought part is skipped");
        assert_eq!(g.finish, FinishReason::Stop);

        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        let r = &requests[0];
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/v1beta/models/gemini-test-flash:generateContent");
        assert_eq!(r.header("x-goog-api-key"), Some(gemini::API_KEY));
        assert!(!r.path.contains("key="), "the key never goes in the URL");
        assert_eq!(r.body["systemInstruction"]["parts"][0]["text"], prompt().system);
        let roles: Vec<_> = r.body["contents"].as_array().unwrap().iter().map(|c| c["role"].clone()).collect();
        assert_eq!(roles, ["user", "model", "user"]);
        assert_eq!(r.body["contents"][2]["parts"][0]["text"], prompt().messages[2].text);
        assert_eq!(r.body["generationConfig"]["maxOutputTokens"], 512);
        assert!((r.body["generationConfig"]["temperature"].as_f64().unwrap() - 0.2).abs() < 1e-6);
        assert_eq!(r.body["generationConfig"]["thinkingConfig"]["thinkingLevel"], "low");
    })
    .await;
}

#[tokio::test]
async fn gemini_sends_no_thinking_config_unless_configured() {
    within(async {
        let server = gemini::start([Reply::text("ok")]).await;
        let model = GeminiModel::new(GeminiOptions {
            base_url: server.base_url.clone(),
            api_key: gemini::API_KEY.into(),
            model: "models/gemini-test-flash".into(),
            ..GeminiOptions::default()
        })
        .unwrap();
        model.generate(&prompt()).await.expect("answer");
        let r = &server.requests()[0];
        assert_eq!(r.path, "/v1beta/models/gemini-test-flash:generateContent");
        assert!(r.body["generationConfig"].get("thinkingConfig").is_none());
    })
    .await;
}

#[tokio::test]
async fn gemini_streams_pieces_in_order() {
    within(async {
        let pieces = ["To reset", " your password,", " open Settings", " → Security [1]."];
        let server = gemini::start([Reply::pieces(pieces)]).await;
        let model = gemini_model(&server);
        let mut stream = model.generate_stream(&prompt()).await.expect("stream");
        let mut got = Vec::new();
        while let Some(item) = stream.next().await {
            got.push(item.expect("piece"));
        }
        assert_eq!(got, pieces, "one item per event, in order, thoughts skipped");
        let r = &server.requests()[0];
        assert_eq!(r.path, "/v1beta/models/gemini-test-flash:streamGenerateContent?alt=sse");
        assert_eq!(r.header("x-goog-api-key"), Some(gemini::API_KEY));
    })
    .await;
}

#[tokio::test]
async fn gemini_stream_yields_before_the_end() {
    within(async {
        // The server sends the thought-only event and the first text event, then waits until the
        // test has read that text: a client that waited for the whole body would never hand
        // out the first piece.
        let gate = fakes::Gate::default();
        let server =
            gemini::start([Reply::paused_stream(2, &gate, Reply::text("one two three four five six seven eight"))])
                .await;
        let model = gemini_model(&server);
        let mut stream = model.generate_stream(&prompt()).await.expect("stream");
        let first = stream.next().await.expect("an item").expect("a piece");
        assert_eq!(first, "one");
        gate.open();
        let rest: Vec<String> = stream.map(|i| i.expect("piece")).collect().await;
        assert!(rest.len() >= 2);
        assert_eq!(format!("{first}{}", rest.concat()), "one two three four five six seven eight");
    })
    .await;
}

#[tokio::test]
async fn gemini_retries_a_rate_limit_after_the_requested_delay() {
    within(async {
        let server = gemini::start([gemini::rate_limited("0.05s"), Reply::text(ANSWER)]).await;
        let model = gemini_model(&server);
        let started = Instant::now();
        let g = model.generate(&prompt()).await.expect("answer after one retry");
        assert_eq!(g.text, ANSWER);
        assert_eq!(server.request_count(), 2);
        assert!(started.elapsed() >= Duration::from_millis(50), "waited the RetryInfo delay");
    })
    .await;
}

#[tokio::test]
async fn gemini_stream_retries_the_initial_request() {
    within(async {
        let server = gemini::start([gemini::rate_limited("0.01s"), gemini::overloaded(), Reply::text(ANSWER)]).await;
        let (pieces, error) = collect(&gemini_model(&server)).await;
        assert_eq!(error, None);
        assert_eq!(pieces.concat(), ANSWER);
        assert_eq!(server.request_count(), 3);
    })
    .await;
}

#[tokio::test]
async fn gemini_does_not_retry_a_rate_limit_longer_than_max_wait() {
    within(async {
        let server = gemini::start([gemini::rate_limited("30s"), Reply::text(ANSWER)]).await;
        let model = gemini_model(&server);
        // Waiting the 30 s would outlast `within`; one request means it did not retry either.
        let e = model.generate(&prompt()).await.unwrap_err();
        assert_eq!(e, ModelError::RateLimited { retry_after: Some(Duration::from_secs(30)) });
        assert_eq!(server.request_count(), 1);
    })
    .await;
}

#[tokio::test]
async fn gemini_gives_up_at_once_on_a_daily_quota() {
    within(async {
        let server = gemini::start([gemini::daily_quota_exhausted("0.01s"), Reply::text(ANSWER)]).await;
        let e = gemini_model(&server).generate(&prompt()).await.unwrap_err();
        assert!(matches!(e, ModelError::RateLimited { .. }), "{e:?}");
        assert_eq!(server.request_count(), 1);
    })
    .await;
}

#[tokio::test]
async fn gemini_retries_server_errors() {
    within(async {
        let server = gemini::start([gemini::internal_error(), Reply::text(ANSWER)]).await;
        let g = gemini_model(&server).generate(&prompt()).await.expect("answer after a retry");
        assert_eq!(g.text, ANSWER);
        assert_eq!(server.request_count(), 2);

        let server = gemini::start([gemini::overloaded()]).await;
        let e = gemini_model(&server).generate(&prompt()).await.unwrap_err();
        assert!(matches!(e, ModelError::Transient(_)), "{e:?}");
        assert_eq!(server.request_count(), 3, "first attempt + max_retries");
    })
    .await;
}

#[tokio::test]
async fn gemini_bad_request_is_rejected_without_retry() {
    within(async {
        let server =
            gemini::start([gemini::invalid_argument("Invalid value at 'generation_config'"), Reply::text("x")]).await;
        let e = gemini_model(&server).generate(&prompt()).await.unwrap_err();
        assert!(matches!(e, ModelError::Rejected(ref m) if m.contains("generation_config")), "{e:?}");
        assert_eq!(server.request_count(), 1);
    })
    .await;
}

#[tokio::test]
async fn gemini_wrong_key_is_rejected() {
    within(async {
        let server = gemini::start_with_key("another-key", [Reply::text("x")]).await;
        let e = gemini_model(&server).generate(&prompt()).await.unwrap_err();
        assert!(matches!(e, ModelError::Rejected(ref m) if m.contains("API key not valid")), "{e:?}");
        assert_eq!(server.request_count(), 1);
    })
    .await;
}

#[tokio::test]
async fn gemini_safety_blocks() {
    within(async {
        for reply in [gemini::safety_block(), gemini::prompt_blocked()] {
            let server = gemini::start([reply.clone()]).await;
            let e = gemini_model(&server).generate(&prompt()).await.unwrap_err();
            assert!(matches!(e, ModelError::Blocked(ref r) if r.contains("SAFETY")), "{reply:?}: {e:?}");
            assert_eq!(server.request_count(), 1);

            let (pieces, error) = collect(&gemini_model(&server)).await;
            assert!(pieces.is_empty());
            assert!(matches!(error, Some(ModelError::Blocked(_))), "stream {reply:?}: {error:?}");
        }
        // Blocked after some text: the pieces come, then the error.
        let server =
            gemini::start([Reply::Answer { pieces: vec!["Well,".into(), " you".into()], finish: Finish::Blocked }])
                .await;
        let (pieces, error) = collect(&gemini_model(&server)).await;
        assert_eq!(pieces, ["Well,", " you"]);
        assert!(matches!(error, Some(ModelError::Blocked(_))), "{error:?}");
    })
    .await;
}

#[tokio::test]
async fn gemini_max_tokens_without_text_is_an_error() {
    within(async {
        let server = gemini::start([gemini::max_tokens_without_text()]).await;
        let e = gemini_model(&server).generate(&prompt()).await.unwrap_err();
        assert_eq!(e, ModelError::Malformed("no text (MAX_TOKENS)".into()));
        let (pieces, error) = collect(&gemini_model(&server)).await;
        assert!(pieces.is_empty());
        assert_eq!(error, Some(ModelError::Malformed("no text (MAX_TOKENS)".into())));

        let server =
            gemini::start([Reply::Answer { pieces: vec!["Cut".into(), " short".into()], finish: Finish::Length }])
                .await;
        let g = gemini_model(&server).generate(&prompt()).await.expect("text");
        assert_eq!((g.text.as_str(), g.finish), ("Cut short", FinishReason::Length));
    })
    .await;
}

#[tokio::test]
async fn gemini_malformed_body() {
    within(async {
        let server = gemini::start([gemini::malformed()]).await;
        let e = gemini_model(&server).generate(&prompt()).await.unwrap_err();
        assert!(matches!(e, ModelError::Malformed(_)), "{e:?}");
        assert_eq!(server.request_count(), 1);
        let (_, error) = collect(&gemini_model(&server)).await;
        assert!(matches!(error, Some(ModelError::Malformed(_))), "{error:?}");
    })
    .await;
}

#[tokio::test]
async fn gemini_slow_server_times_out() {
    within(async {
        let retry = RetryPolicy { max_retries: 1, ..fast_retry() };
        let timeout = Duration::from_millis(200);
        let server = gemini::start([Reply::slow(Duration::from_secs(3), Reply::text(ANSWER))]).await;
        let e = gemini_model_with(&server, retry, timeout).generate(&prompt()).await.unwrap_err();
        assert_eq!(e, ModelError::Timeout(timeout));
        assert_eq!(server.request_count(), 2, "a timeout is retried");

        let e = gemini_model_with(&server, RetryPolicy::none(), timeout).generate_stream(&prompt()).await.err();
        assert_eq!(e, Some(ModelError::Timeout(timeout)));
    })
    .await;
}

#[tokio::test]
async fn gemini_context_too_long() {
    within(async {
        let server = gemini::start([gemini::input_too_long(), Reply::text("x")]).await;
        let e = gemini_model(&server).generate(&prompt()).await.unwrap_err();
        assert!(matches!(e, ModelError::ContextTooLong(_)), "{e:?}");
        assert_eq!(server.request_count(), 1);
    })
    .await;
}

#[tokio::test]
async fn gemini_mid_stream_error_and_cut_stream() {
    within(async {
        let server = gemini::start([gemini::mid_stream_error(["Open", " Settings"])]).await;
        let (pieces, error) = collect(&gemini_model(&server)).await;
        assert_eq!(pieces, ["Open", " Settings"]);
        assert!(matches!(error, Some(ModelError::Transient(ref m)) if m.contains("overloaded")), "{error:?}");
        assert_eq!(server.request_count(), 1, "never retried after text was yielded");

        let server =
            gemini::start([Reply::Answer { pieces: vec!["Open".into(), " Sett".into()], finish: Finish::Missing }])
                .await;
        let (pieces, error) = collect(&gemini_model(&server)).await;
        assert_eq!(pieces, ["Open", " Sett"]);
        assert!(matches!(error, Some(ModelError::Transient(_))), "{error:?}");
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// OpenAI-compatible

#[tokio::test]
async fn openai_answers_with_the_documented_request() {
    within(async {
        let server = openai::start([Reply::text(ANSWER)]).await;
        let model = openai_model(&server);
        assert_eq!(model.name(), "openai");
        let g = model.generate(&prompt()).await.expect("answer");
        assert_eq!(g.text, ANSWER, "reasoning_content is ignored");
        assert_eq!(g.finish, FinishReason::Stop);

        let r = &server.requests()[0];
        assert_eq!(r.path, "/v1/chat/completions");
        assert_eq!(r.header("authorization").map(str::to_string), Some(format!("Bearer {}", openai::API_KEY)));
        assert_eq!(r.body["model"], "qwen-test");
        assert_eq!(r.body["stream"], false);
        assert_eq!(r.body["max_tokens"], 512);
        let roles: Vec<_> = r.body["messages"].as_array().unwrap().iter().map(|m| m["role"].clone()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        assert_eq!(r.body["messages"][0]["content"], prompt().system);
    })
    .await;
}

#[tokio::test]
async fn openai_without_key_sends_no_authorization() {
    within(async {
        let server = openai::start_with_key(None, [Reply::text("ok")]).await;
        let model = OpenAiModel::new(OpenAiOptions {
            base_url: format!("{}/", server.base_url),
            model: "llama".into(),
            ..OpenAiOptions::default()
        })
        .unwrap();
        assert_eq!(model.generate(&prompt()).await.expect("answer").text, "ok");
        let r = &server.requests()[0];
        assert_eq!(r.path, "/v1/chat/completions");
        assert_eq!(r.header("authorization"), None);
    })
    .await;
}

#[tokio::test]
async fn openai_streams_pieces_in_order() {
    within(async {
        let pieces = ["To reset", " your password,", " open Settings", " → Security [1]."];
        let server = openai::start([Reply::pieces(pieces)]).await;
        let model = openai_model(&server);
        let mut stream = model.generate_stream(&prompt()).await.expect("stream");
        let first = stream.next().await.expect("an item").expect("a piece");
        let mut got = vec![first];
        while let Some(item) = stream.next().await {
            got.push(item.expect("piece"));
        }
        assert_eq!(got, pieces, "role-only, reasoning and null chunks yield nothing");
        let r = &server.requests()[0];
        assert_eq!(r.body["stream"], true);
        assert_eq!(r.header("authorization").map(str::to_string), Some(format!("Bearer {}", openai::API_KEY)));
    })
    .await;
}

#[tokio::test]
async fn openai_retries_a_rate_limit_after_retry_after() {
    within(async {
        let server = openai::start([openai::rate_limited("0.05"), Reply::text(ANSWER)]).await;
        let started = Instant::now();
        let g = openai_model(&server).generate(&prompt()).await.expect("answer after one retry");
        assert_eq!(g.text, ANSWER);
        assert_eq!(server.request_count(), 2);
        assert!(started.elapsed() >= Duration::from_millis(50), "waited Retry-After");
    })
    .await;
}

#[tokio::test]
async fn openai_does_not_retry_a_rate_limit_longer_than_max_wait() {
    within(async {
        let server = openai::start([openai::rate_limited("30"), Reply::text(ANSWER)]).await;
        // Waiting the 30 s would outlast `within`; one request means it did not retry either.
        let e = openai_model(&server).generate(&prompt()).await.unwrap_err();
        assert_eq!(e, ModelError::RateLimited { retry_after: Some(Duration::from_secs(30)) });
        assert_eq!(server.request_count(), 1);
    })
    .await;
}

#[tokio::test]
async fn openai_retries_server_errors() {
    within(async {
        let server = openai::start([openai::server_error(), openai::unavailable_flat(), Reply::text(ANSWER)]).await;
        let g = openai_model(&server).generate(&prompt()).await.expect("answer after two retries");
        assert_eq!(g.text, ANSWER);
        assert_eq!(server.request_count(), 3);

        let server = openai::start([openai::server_error(), Reply::text(ANSWER)]).await;
        let (pieces, error) = collect(&openai_model(&server)).await;
        assert_eq!((pieces.concat(), error), (ANSWER.to_string(), None));
        assert_eq!(server.request_count(), 2);
    })
    .await;
}

#[tokio::test]
async fn openai_bad_request_is_rejected_without_retry() {
    within(async {
        for reply in [openai::bad_request("temperature must be <= 2"), openai::bad_request_flat("unknown model")] {
            let server = openai::start([reply, Reply::text("x")]).await;
            let e = openai_model(&server).generate(&prompt()).await.unwrap_err();
            assert!(matches!(e, ModelError::Rejected(_)), "{e:?}");
            assert_eq!(server.request_count(), 1);
        }
        let server = openai::start_with_key(Some("another"), [Reply::text("x")]).await;
        let e = openai_model(&server).generate(&prompt()).await.unwrap_err();
        assert!(matches!(e, ModelError::Rejected(ref m) if m.contains("Invalid API Key")), "{e:?}");
    })
    .await;
}

#[tokio::test]
async fn openai_content_filter_is_blocked() {
    within(async {
        let server = openai::start([openai::content_filter()]).await;
        let e = openai_model(&server).generate(&prompt()).await.unwrap_err();
        assert!(matches!(e, ModelError::Blocked(_)), "{e:?}");
        let (pieces, error) = collect(&openai_model(&server)).await;
        assert!(pieces.is_empty());
        assert!(matches!(error, Some(ModelError::Blocked(_))), "{error:?}");
    })
    .await;
}

#[tokio::test]
async fn openai_malformed_body() {
    within(async {
        let server = openai::start([openai::malformed()]).await;
        let e = openai_model(&server).generate(&prompt()).await.unwrap_err();
        assert!(matches!(e, ModelError::Malformed(_)), "{e:?}");
        assert_eq!(server.request_count(), 1);
        let (_, error) = collect(&openai_model(&server)).await;
        assert!(matches!(error, Some(ModelError::Malformed(_))), "{error:?}");
    })
    .await;
}

#[tokio::test]
async fn openai_slow_server_times_out() {
    within(async {
        let timeout = Duration::from_millis(200);
        let server = openai::start([Reply::slow(Duration::from_secs(3), Reply::text(ANSWER))]).await;
        let e = openai_model_with(&server, RetryPolicy::none(), timeout).generate(&prompt()).await.unwrap_err();
        assert_eq!(e, ModelError::Timeout(timeout));
        assert_eq!(server.request_count(), 1);
        let e = openai_model_with(&server, RetryPolicy::none(), timeout).generate_stream(&prompt()).await.err();
        assert_eq!(e, Some(ModelError::Timeout(timeout)));
    })
    .await;
}

#[tokio::test]
async fn openai_context_too_long_in_every_server_dialect() {
    within(async {
        for reply in
            [openai::context_too_long(), openai::context_too_long_with_status(500), openai::context_too_long_vllm()]
        {
            let server = openai::start([reply.clone()]).await;
            let e = openai_model(&server).generate(&prompt()).await.unwrap_err();
            assert!(matches!(e, ModelError::ContextTooLong(_)), "{reply:?}: {e:?}");
            assert_eq!(server.request_count(), 1, "not retried: {reply:?}");
            let e = openai_model(&server).generate_stream(&prompt()).await.err();
            assert!(matches!(e, Some(ModelError::ContextTooLong(_))), "stream {reply:?}: {e:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn openai_mid_stream_error_and_cut_stream() {
    within(async {
        let server = openai::start([openai::mid_stream_error(["Open", " Settings"])]).await;
        let (pieces, error) = collect(&openai_model(&server)).await;
        assert_eq!(pieces, ["Open", " Settings"]);
        assert!(matches!(error, Some(ModelError::Transient(_))), "{error:?}");
        assert_eq!(server.request_count(), 1);

        let server =
            openai::start([Reply::Answer { pieces: vec!["Open".into(), " Sett".into()], finish: Finish::Missing }])
                .await;
        let (pieces, error) = collect(&openai_model(&server)).await;
        assert_eq!(pieces, ["Open", " Sett"]);
        assert!(matches!(error, Some(ModelError::Transient(_))), "no [DONE], no finish_reason: {error:?}");

        let server = openai::start([Reply::Answer { pieces: vec!["Cut".into()], finish: Finish::Length }]).await;
        let (pieces, error) = collect(&openai_model(&server)).await;
        assert_eq!((pieces, error), (vec!["Cut".to_string()], None));
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Secrets

#[tokio::test]
async fn api_keys_never_appear_in_errors_or_debug_output() {
    within(async {
        let timeout = Duration::from_millis(200);
        let no_retry = RetryPolicy::none();
        let gemini_replies = [
            gemini::rate_limited("30s"),
            gemini::internal_error(),
            gemini::invalid_argument(&format!("API key {} not valid", gemini::API_KEY)),
            gemini::safety_block(),
            gemini::malformed(),
            gemini::input_too_long(),
            Reply::slow(Duration::from_secs(2), Reply::text("late")),
        ];
        let mut errors = Vec::new();
        for reply in gemini_replies {
            let server = gemini::start([reply]).await;
            let model = gemini_model_with(&server, no_retry, timeout);
            errors.push(model.generate(&prompt()).await.unwrap_err());
            assert!(!format!("{model:?}").contains(gemini::API_KEY));
        }
        let server = gemini::start([gemini::mid_stream_error(["a", "b"])]).await;
        errors.extend(collect(&gemini_model(&server)).await.1);
        let server = gemini::start_with_key("another", []).await;
        errors.push(gemini_model(&server).generate(&prompt()).await.unwrap_err());

        let openai_replies = [
            openai::rate_limited("30"),
            openai::server_error(),
            openai::bad_request(&format!("Incorrect API key provided: {}", openai::API_KEY)),
            openai::content_filter(),
            openai::malformed(),
            openai::context_too_long(),
            Reply::slow(Duration::from_secs(2), Reply::text("late")),
        ];
        for reply in openai_replies {
            let server = openai::start([reply]).await;
            let model = openai_model_with(&server, no_retry, timeout);
            errors.push(model.generate(&prompt()).await.unwrap_err());
            assert!(!format!("{model:?}").contains(openai::API_KEY));
        }
        let server = openai::start([openai::mid_stream_error(["a"])]).await;
        errors.extend(collect(&openai_model(&server)).await.1);
        // A server that does not answer at all.
        let closed = openai::start([]).await;
        let url = closed.base_url.clone();
        drop(closed);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let model = OpenAiModel::new(OpenAiOptions {
            base_url: url,
            api_key: Some(openai::API_KEY.into()),
            timeout,
            retry: no_retry,
            ..OpenAiOptions::default()
        })
        .unwrap();
        errors.push(model.generate(&prompt()).await.unwrap_err());

        assert!(errors.len() >= 17);
        let echoed = errors.iter().filter(|e| format!("{e}").contains("[redacted]")).count();
        assert_eq!(echoed, 2, "the echoed keys were redacted: {errors:#?}");
        for e in &errors {
            for text in [format!("{e}"), format!("{e:?}")] {
                assert!(!text.contains(gemini::API_KEY) && !text.contains(openai::API_KEY), "key leaked: {text}");
            }
        }
        let options = GeminiOptions { api_key: gemini::API_KEY.into(), ..GeminiOptions::default() };
        assert!(!format!("{options:?}").contains(gemini::API_KEY));
        let options = OpenAiOptions { api_key: Some(openai::API_KEY.into()), ..OpenAiOptions::default() };
        assert!(!format!("{options:?}").contains(openai::API_KEY));
    })
    .await;
}
