//! The in-process llama.cpp backend against the real SmolLM2-135M-Instruct GGUF that
//! `scripts/setup` installs: generation and its finish reason, streaming equal to a plain run at
//! temperature 0, the context-window check, a missing model file, and queued concurrent calls.
//! Without the model file the tests print SKIPPED (and fail under `CI=true`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use supportbot_core::llm::local::{LocalModel, LocalOptions};
use supportbot_core::llm::{FinishReason, LanguageModel, Message, ModelError, Prompt, Role};
use supportbot_tests::data_dir;

const MODEL_FILE: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// The installed GGUF, or `None` (after saying why) when it is missing outside CI.
fn model_path(test: &str) -> Option<PathBuf> {
    let path = data_dir().join(MODEL_FILE);
    if path.is_file() {
        return Some(path);
    }
    let msg = format!("{test}: model {} is missing; run scripts/setup", path.display());
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED {msg}");
    None
}

/// One thread each: the tests run in parallel, and llama.cpp's worker threads spin-wait for
/// each other, which collapses throughput when there are more threads than free cores.
fn options(path: PathBuf) -> LocalOptions {
    LocalOptions {
        model_path: path,
        context_tokens: 2048,
        threads: 1,
        max_concurrency: 1,
        timeout: Duration::from_secs(60),
    }
}

fn prompt(question: &str, max_output_tokens: u32, temperature: f32) -> Prompt {
    Prompt {
        system: "You are a helpful support assistant. Answer from the passages.".into(),
        messages: vec![Message {
            role: Role::User,
            text: format!(
                "<passages>[1] To keep apt from upgrading a package, run `apt-mark hold package_name`.</passages>\n\
                 QUESTION: {question}"
            ),
        }],
        passages: Vec::new(),
        question: question.into(),
        max_output_tokens,
        temperature,
    }
}

const QUESTION: &str = "Explain in detail how to stop apt from upgrading a package.";

#[tokio::test]
async fn generates_text_and_reports_the_length_cap() {
    let Some(path) = model_path("generates_text_and_reports_the_length_cap") else { return };
    let model = LocalModel::new(options(path)).expect("model loads");

    let g = model.generate(&prompt(QUESTION, 24, 0.0)).await.expect("generation");
    assert!(!g.text.trim().is_empty(), "empty answer");
    assert_eq!(g.finish, FinishReason::Length, "a detailed explanation does not fit 24 tokens: {:?}", g.text);

    // A short answer ends on the model's end-of-turn token.
    let mut hello = prompt("Say hello.", 64, 0.0);
    hello.system = "Reply as briefly as possible.".into();
    hello.messages = vec![Message { role: Role::User, text: "Say hello.".into() }];
    let g = model.generate(&hello).await.expect("generation");
    assert_eq!(g.finish, FinishReason::Stop, "{:?}", g.text);
    assert!(!g.text.trim().is_empty() && !g.text.contains("<|im_end|>"), "{:?}", g.text);

    // Sampling at a temperature is seeded: the same prompt gives the same answer.
    let warm = prompt(QUESTION, 12, 0.8);
    let a = model.generate(&warm).await.expect("sampled generation");
    let b = model.generate(&warm).await.expect("sampled generation");
    assert_eq!(a, b);
}

#[tokio::test]
async fn streaming_matches_plain_generation_at_temperature_zero() {
    let Some(path) = model_path("streaming_matches_plain_generation_at_temperature_zero") else { return };
    let model = LocalModel::new(options(path)).expect("model loads");
    let p = prompt(QUESTION, 24, 0.0);

    let plain = model.generate(&p).await.expect("generation");
    let mut stream = model.generate_stream(&p).await.expect("stream starts");
    let mut pieces = Vec::new();
    while let Some(piece) = stream.next().await {
        pieces.push(piece.expect("stream item"));
    }
    assert!(pieces.len() >= 2, "expected several pieces, got {pieces:?}");
    assert_eq!(pieces.concat(), plain.text);

    // Dropping a stream early stops that generation: the single slot frees up for the next call.
    let mut stream = model.generate_stream(&prompt(QUESTION, 1900, 0.0)).await.expect("stream starts");
    stream.next().await.expect("a first piece").expect("no error");
    drop(stream);
    let next = tokio::time::timeout(Duration::from_secs(30), model.generate(&prompt(QUESTION, 4, 0.0)))
        .await
        .expect("the dropped stream released its slot");
    next.expect("generation after a dropped stream");
}

#[tokio::test]
async fn prompt_beyond_the_context_window_is_refused() {
    let Some(path) = model_path("prompt_beyond_the_context_window_is_refused") else { return };
    let model = LocalModel::new(LocalOptions { context_tokens: 256, ..options(path) }).expect("model loads");
    assert_eq!(model.context_tokens(), 256);

    let long = "The quick brown fox jumps over the lazy dog. ".repeat(40);
    let err = model.generate(&prompt(&long, 24, 0.0)).await.expect_err("too long");
    assert!(matches!(err, ModelError::ContextTooLong(_)), "{err:?}");
    let err = model.generate_stream(&prompt(&long, 24, 0.0)).await.err().expect("too long");
    assert!(matches!(err, ModelError::ContextTooLong(_)), "{err:?}");

    // A short prompt whose answer budget overflows the window is refused as well.
    let err = model.generate(&prompt("Why?", 250, 0.0)).await.expect_err("too long");
    assert!(matches!(err, ModelError::ContextTooLong(_)), "{err:?}");
}

#[test]
fn missing_model_file_is_unavailable_and_names_the_path() {
    let path = std::env::temp_dir().join("supportbot-no-such-dir/missing-model.gguf");
    let err = LocalModel::new(options(path.clone())).expect_err("no model file");
    let ModelError::Unavailable(msg) = err else { panic!("expected Unavailable, got {err:?}") };
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("scripts/setup"), "{msg}");
}

/// Two questions at once each get the answer they get alone (greedy decoding is repeatable):
/// the single generation slot keeps one question's context out of the other's.
#[tokio::test]
async fn concurrent_generations_each_get_their_own_answer() {
    let Some(path) = model_path("concurrent_generations_each_get_their_own_answer") else { return };
    let model = LocalModel::new(options(path)).expect("model loads");
    let (first, second) = (prompt(QUESTION, 24, 0.0), prompt("How do I undo a hold?", 24, 0.0));
    let alone_a = model.generate(&first).await.expect("first alone").text;
    let alone_b = model.generate(&second).await.expect("second alone").text;
    assert_ne!(alone_a, alone_b, "two different questions");
    let (a, b) = tokio::join!(model.generate(&first), model.generate(&second));
    let (a, b) = (a.expect("first generation"), b.expect("second generation"));
    assert_eq!(a.text, alone_a, "the first answer changed when asked beside another");
    assert_eq!(b.text, alone_b, "the second answer changed when asked beside another");
}

#[tokio::test]
async fn overall_time_limit_gives_timeout() {
    let Some(path) = model_path("overall_time_limit_gives_timeout") else { return };
    let model =
        LocalModel::new(LocalOptions { timeout: Duration::from_millis(1), ..options(path) }).expect("model loads");
    let err = model.generate(&prompt(QUESTION, 64, 0.0)).await.expect_err("cannot finish in 1 ms");
    assert!(matches!(err, ModelError::Timeout(_)), "{err:?}");
}

/// Figures for the documentation: load time, prompt evaluation, generation speed, memory.
/// `cargo test -p supportbot-tests --test llm_local -- --ignored --nocapture` (`MEASURE_THREADS`
/// sets the thread count, default 1).
#[tokio::test]
#[ignore = "measurement, prints figures"]
async fn measure() {
    let Some(path) = model_path("measure") else { return };
    let started = Instant::now();
    let threads = std::env::var("MEASURE_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(1);
    let model = LocalModel::new(LocalOptions { threads, ..options(path) }).expect("model loads");
    let load = started.elapsed();

    // About 200 prompt tokens.
    let question = format!("{} {QUESTION}", "Some background about package managers and upgrades. ".repeat(18));
    // The context check reports the prompt's token count.
    let too_long = model.generate(&prompt(&question, 4096, 0.0)).await.expect_err("context check");
    println!("{too_long}");
    let _warm_up = model.generate(&prompt("Hi", 1, 0.0)).await.expect("generation");
    let t = Instant::now();
    model.generate(&prompt(&question, 1, 0.0)).await.expect("generation");
    let prompt_eval = t.elapsed();
    let n = 64;
    let t = Instant::now();
    let g = model.generate(&prompt(&question, n, 0.0)).await.expect("generation");
    let total = t.elapsed();
    let tokens_per_s = f64::from(n - 1) / (total - prompt_eval).as_secs_f64();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mem: Vec<&str> = status.lines().filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM")).collect();
    println!(
        "threads {threads}: load {load:?}; prompt + 1 token {prompt_eval:?}; prompt + {n} tokens {total:?} \
         ({tokens_per_s:.1} tokens/s, {:?}); {mem:?}\n{}",
        g.finish, g.text
    );
}
