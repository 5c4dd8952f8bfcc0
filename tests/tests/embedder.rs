//! The real embedders (ONNX MiniLM and the multilingual model) under concurrent questions:
//! however the askers share a model, every asker must get the vector of its own question.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use supportbot_core::embed::{EmbedError, Embedder, FastEmbedder, cosine};
use supportbot_tests::{Workspace, assets_available, test_settings};

const QUESTIONS: [&str; 12] = [
    "How do I reset my password?",
    "Which ports does the server need open?",
    "Can I run it behind a corporate proxy?",
    "怎么重置密码？",
    "Where are the log files kept?",
    "How do I upgrade to the latest version without losing data?",
    "Is there a limit on the number of users?",
    "服务器需要开放哪些端口？",
    "What does error 502 mean?",
    "How can I export my data as CSV?",
    "Does it support single sign-on with SAML?",
    "How long are backups kept?",
];

#[test]
fn concurrent_questions_each_get_their_own_vector() {
    if !assets_available("concurrent_questions_each_get_their_own_vector") {
        return;
    }
    let ws = Workspace::new();
    let settings = test_settings(ws.path(), &ws.index_dir());
    let embedder = supportbot_core::wiring::embedder(&settings, None).expect("embedding model loads");
    let alone: Vec<Vec<f32>> = QUESTIONS.iter().map(|q| embedder.embed_query(q).expect("embeds")).collect();
    // Distinct questions have clearly distinct vectors, so a mix-up would be caught below.
    for (i, a) in alone.iter().enumerate() {
        for b in &alone[i + 1..] {
            assert!(cosine(a, b) < 0.99, "two test questions embed alike");
        }
    }

    for round in 0..3 {
        each_gets_its_own_vector(&embedder, &alone, &format!("round {round}"), |e, q| e.embed_query(q));
    }
}

/// Passages being embedded (an ingest, a sync) do not hold up a question: sessions are handed
/// out one batch at a time, to callers in the order they came, so a question asked during a long
/// list of passages is answered before the list ends, with the vector it gets alone, even when
/// there is one session. With `query_sessions = 2`, questions asked together build a second
/// session, never more.
#[test]
fn a_question_does_not_wait_for_passages_being_embedded() {
    if !assets_available("a_question_does_not_wait_for_passages_being_embedded") {
        return;
    }
    let ws = Workspace::new();
    let settings = test_settings(ws.path(), &ws.index_dir());
    let passages = distinct_passages(240);
    let question = "How do I restore a backup?";
    // Runs a long list of passages on one thread and asks the question on another while it
    // runs: whether the list was still being embedded when the answer came, and its vector.
    let ask_during_list = |embedder: &Arc<FastEmbedder>| {
        let list = {
            let (embedder, passages) = (embedder.clone(), passages.clone());
            std::thread::spawn(move || embedder.embed_documents(&passages).expect("passages embed"))
        };
        std::thread::sleep(Duration::from_millis(200));
        assert!(!list.is_finished(), "the list of passages should take longer than 200 ms");
        let v = embedder.embed_query(question).expect("the question embeds");
        let list_still_running = !list.is_finished();
        list.join().expect("list thread");
        (list_still_running, v)
    };

    let mut options = supportbot_core::wiring::embedder_options(&settings);
    options.threads = 1;
    options.query_sessions = 1;
    let single = Arc::new(FastEmbedder::new(&options).expect("embedding model loads"));
    let alone = single.embed_query(question).expect("embeds");
    let (list_still_running, v) = ask_during_list(&single);
    assert!(list_still_running, "the question waited for the whole list of passages, not for one batch");
    let same = cosine(&v, &alone);
    assert!(same > 0.9999, "the question asked during the list got another vector: cosine {same}");
    assert_eq!(single.sessions_built(), 1, "one thread and one session for questions: one session");

    options.query_sessions = 2;
    let embedder = Arc::new(FastEmbedder::new(&options).expect("embedding model loads"));
    embedder.embed_documents(&passages).expect("passages embed");
    assert_eq!(embedder.sessions_built(), 1, "nothing but questions asked together builds another session");
    // Questions asked together find the session busy and start building a second one.
    let dyn_embedder: Arc<dyn Embedder> = embedder.clone();
    let each_alone: Vec<Vec<f32>> = QUESTIONS.iter().map(|q| embedder.embed_query(q).expect("embeds")).collect();
    each_gets_its_own_vector(&dyn_embedder, &each_alone, "building", |e, q| e.embed_query(q));
    let deadline = Instant::now() + Duration::from_secs(60);
    while embedder.sessions_built() < 2 {
        assert!(Instant::now() < deadline, "no second session was built");
        std::thread::sleep(Duration::from_millis(20));
    }
    each_gets_its_own_vector(&dyn_embedder, &each_alone, "two sessions", |e, q| e.embed_query(q));
    let (_, v) = ask_during_list(&embedder);
    assert!(cosine(&v, &alone) > 0.9999);
    assert_eq!(embedder.sessions_built(), 2, "never more sessions than embedding.query_sessions");
}

/// With `embedding.threads = 2`, a long list of passages (an ingest) is spread over two sessions
/// and every passage still gets its own vector, in the list's order; a short list (curated
/// answers) is not worth another session's memory. Once idle, the second session is released
/// (a server goes back to its idle memory after a docs sync), and the next long list builds it
/// again.
#[test]
fn a_long_list_of_passages_is_embedded_on_as_many_sessions_as_threads() {
    if !assets_available("a_long_list_of_passages_is_embedded_on_as_many_sessions_as_threads") {
        return;
    }
    let ws = Workspace::new();
    let settings = test_settings(ws.path(), &ws.index_dir());
    let passages = distinct_passages(120);
    let mut options = supportbot_core::wiring::embedder_options(&settings);
    options.threads = 1;
    let one = FastEmbedder::new(&options).expect("embedding model loads");
    let expected = one.embed_documents(&passages).expect("passages embed");
    // Distinct passages have distinct vectors, so a mix-up would be caught below.
    assert!(cosine(&expected[0], &expected[1]) < 0.99, "two test passages embed alike");

    options.threads = 2;
    options.release_idle_after = Duration::from_millis(400);
    let two = FastEmbedder::new(&options).expect("embedding model loads");
    two.embed_documents(&passages[..4]).expect("passages embed");
    assert_eq!(two.sessions_built(), 1, "a list of four passages built another session");
    let got = two.embed_documents(&passages).expect("passages embed");
    assert_eq!(two.sessions_built(), 2, "a long list of passages was embedded on one session");
    same_vectors(&got, &expected, "on two sessions");

    let deadline = Instant::now() + Duration::from_secs(30);
    while two.sessions_held() > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(two.sessions_held(), 1, "the idle second session was kept");
    let question = "How do I restore a backup?";
    let v = two.embed_query(question).expect("a question embeds on the session left");
    assert!(cosine(&v, &one.embed_query(question).expect("embeds")) > 0.9999);
    let again = two.embed_documents(&passages).expect("passages embed");
    assert!(two.sessions_built() >= 3, "the next long list did not build the second session again");
    same_vectors(&again, &expected, "on a rebuilt second session");
}

fn same_vectors(got: &[Vec<f32>], expected: &[Vec<f32>], how: &str) {
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        let same = cosine(g, e);
        assert!(same > 0.9999, "passage {i} got another vector {how}: cosine {same}");
    }
}

/// `n` passages on varied subjects and of varied lengths, none alike.
fn distinct_passages(n: usize) -> Vec<String> {
    const SUBJECTS: [&str; 6] = [
        "restore a backup: stop the service, copy the archive back and start it again",
        "open port 8443 on the firewall for the web console",
        "rotate the log files every night and keep them for a week",
        "invite a new user from the members page of the admin panel",
        "export every table as CSV into the chosen folder",
        "set up single sign-on with SAML and the identity provider's metadata",
    ];
    (0..n)
        .map(|i| {
            let subject = SUBJECTS[i % SUBJECTS.len()];
            let detail = " Repeat this for every server in the cluster.".repeat(i % 5);
            format!("Section {i}. To {subject}.{detail}")
        })
        .collect()
}

/// A passage's vector does not depend on what it is batched with (padding is masked out of the
/// mean), text past the model's 256 tokens is cut, vectors have unit length, and a paraphrase
/// lands far closer than an unrelated sentence: with the default model and batch size, and
/// with the published float graph in batches of 8, where padding is really there to mask.
#[test]
fn vectors_ignore_padding_and_truncate_long_passages() {
    if !assets_available("vectors_ignore_padding_and_truncate_long_passages") {
        return;
    }
    let ws = Workspace::new();
    let settings = test_settings(ws.path(), &ws.index_dir());
    let mut float = settings.clone();
    float.embedding.model_dir = supportbot_tests::data_dir().join("models/all-MiniLM-L6-v2");
    float.embedding.model_id = "sentence-transformers/all-MiniLM-L6-v2@int8".into();
    float.embedding.batch_size = 8;
    for settings in [settings, float] {
        let embedder = supportbot_core::wiring::embedder(&settings, None).expect("embedding model loads");
        padding_and_truncation_leave_vectors_alone(embedder.as_ref(), &settings.embedding.model_id);
    }
}

fn padding_and_truncation_leave_vectors_alone(embedder: &dyn Embedder, model: &str) {
    let short = "Open ports 8443 and 7100 in the firewall.".to_string();
    let long: String = (1..=200).map(|i| format!("Step {i} of the upgrade keeps your data. ")).collect();
    let longer = format!("{long} The last paragraph is about something else entirely: baking bread.");

    let alone = embedder.embed_documents(std::slice::from_ref(&short)).expect("embeds");
    let batched = embedder.embed_documents(&[long.clone(), short.clone(), longer.clone()]).expect("embeds");
    assert_eq!(batched.len(), 3);
    let same = cosine(&alone[0], &batched[1]);
    assert!(same > 0.9999, "{model}: the short passage changed when batched with long ones: cosine {same}");
    for v in &batched {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "norm {norm}");
    }
    let cut = cosine(&batched[0], &batched[2]);
    assert!(cut > 0.9999, "{model}: text beyond the model's 256 tokens changed the vector: cosine {cut}");

    let question = embedder.embed_query("Which ports do I need to open on my firewall?").expect("embeds");
    let unrelated = embedder.embed_query("What is a good recipe for sourdough bread?").expect("embeds");
    let (close, far) = (cosine(&question, &alone[0]), cosine(&unrelated, &alone[0]));
    assert!(close > 0.5 && far < 0.2, "{model}: paraphrase {close}, unrelated {far}");
}

/// Asks every question of [`QUESTIONS`] at once, one thread each, and checks that each asker
/// got the vector its question has when asked `alone`.
fn each_gets_its_own_vector(
    embedder: &Arc<dyn Embedder>,
    alone: &[Vec<f32>],
    label: &str,
    ask: fn(&dyn Embedder, &str) -> Result<Vec<f32>, EmbedError>,
) {
    let barrier = Arc::new(Barrier::new(QUESTIONS.len()));
    let handles: Vec<_> = QUESTIONS
        .iter()
        .map(|q| {
            let (embedder, barrier) = (embedder.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                ask(embedder.as_ref(), q)
            })
        })
        .collect();
    for (i, handle) in handles.into_iter().enumerate() {
        let together = handle.join().expect("asker thread").expect("embeds under load");
        let similarity = cosine(&together, &alone[i]);
        assert!(
            similarity > 0.999,
            "{label}: {:?} got a vector {similarity} similar to its own when asked with others",
            QUESTIONS[i]
        );
    }
}

#[test]
fn concurrent_questions_to_the_multilingual_model_each_get_their_own_vector() {
    let test = "concurrent_questions_to_the_multilingual_model_each_get_their_own_vector";
    if !assets_available(test) || !supportbot_tests::multilingual_available(test) {
        return;
    }
    let ws = Workspace::new();
    let settings = test_settings(ws.path(), &ws.index_dir());
    let embedder = supportbot_core::wiring::embedder(&settings, None).expect("models load");
    let ask = |e: &dyn Embedder, q: &str| e.embed_multilingual_query(q).expect("multilingual model");
    let alone: Vec<Vec<f32>> = QUESTIONS.iter().map(|q| ask(embedder.as_ref(), q).expect("embeds")).collect();
    each_gets_its_own_vector(&embedder, &alone, "multilingual", ask);
}
