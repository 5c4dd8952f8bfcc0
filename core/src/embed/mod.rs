//! The `Embedder` capability (texts → vectors) and its local implementation, `FastEmbedder`,
//! which runs an ONNX sentence-embedding model through ONNX Runtime.
//! `WithMultilingual` adds a second, multilingual model (`e5`) for CJK passages and questions.

pub mod e5;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::lang::is_cjk_language;
use tokenizers::{AddedToken, PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// Why embedding could not be done.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A model file is missing or unreadable; the message names the file and suggests setup.
    #[error("embedding model file {path}: {reason} (run scripts/setup, or set embedding.model_dir)")]
    MissingFile { path: PathBuf, reason: String },
    /// ONNX Runtime could not be loaded from the configured library path.
    #[error("cannot load ONNX Runtime from {path}: {reason} (run scripts/setup, or set embedding.onnxruntime_path)")]
    Runtime { path: PathBuf, reason: String },
    /// The multilingual model or its engine is missing or cannot be loaded.
    #[error(
        "multilingual model {path}: {reason} (run scripts/setup, set embedding.multilingual_dir, or set embedding.multilingual = \"off\")"
    )]
    Multilingual { path: PathBuf, reason: String },
    /// The index was built with the multilingual model, which cannot be loaded here.
    #[error(
        "the index was built with the multilingual model, which cannot be loaded here: {path}: {reason} \
         (run scripts/setup, set embedding.multilingual_dir, or rebuild the index without it: \
         embedding.multilingual = \"off\" and supportbot-ingest --rebuild)"
    )]
    IndexNeedsMultilingual { path: PathBuf, reason: String },
    /// The model failed while running.
    #[error("embedding failed: {0}")]
    Inference(String),
}

/// Turns texts into fixed-size vectors. Implementations are CPU- or network-bound; callers on an
/// async runtime run `embed` on a blocking thread.
pub trait Embedder: Send + Sync {
    /// Embeds documents (passages) for indexing, in order.
    fn embed_documents(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
    /// Embeds documents whose token counts are known (`tokens[i]` for `texts[i]`, by the
    /// model's tokenizer): batching inputs of equal length wastes no compute on padding.
    fn embed_documents_sized(&self, texts: &[String], tokens: &[usize]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let _ = tokens;
        self.embed_documents(texts)
    }
    /// Embeds one search query.
    fn embed_query(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let mut v = self.embed_documents(&[text.to_string()])?;
        v.pop().ok_or_else(|| EmbedError::Inference("no vector returned".into()))
    }
    /// Length of every vector.
    fn dimension(&self) -> usize;
    /// Identifies the model (and its quantisation); stored with the index so that a different
    /// model is detected instead of silently producing garbage scores.
    fn model_id(&self) -> &str;
    /// Whether a second, multilingual model embeds CJK passages and questions (its vectors have
    /// [`e5::E5_DIMENSION`] dimensions and go to their own vector of the index).
    fn has_multilingual(&self) -> bool {
        false
    }
    /// Embeds passages with the multilingual model (`None` without one).
    fn embed_multilingual_documents(&self, texts: &[String]) -> Option<Result<Vec<Vec<f32>>, EmbedError>> {
        let _ = texts;
        None
    }
    /// Embeds a question with the multilingual model (`None` without one).
    fn embed_multilingual_query(&self, text: &str) -> Option<Result<Vec<f32>, EmbedError>> {
        let _ = text;
        None
    }
}

/// The multilingual model's vectors for the CJK texts among `texts` (each with its language
/// code), in order: `None` for the others, and for all of them without a multilingual model.
/// Blocking, like every embedder call.
pub fn multilingual_vectors(
    embedder: &dyn Embedder,
    texts: &[(String, String)],
) -> Result<Vec<Option<Vec<f32>>>, EmbedError> {
    let mut out = vec![None; texts.len()];
    let picked: Vec<usize> = (0..texts.len()).filter(|&i| is_cjk_language(&texts[i].1)).collect();
    if picked.is_empty() || !embedder.has_multilingual() {
        return Ok(out);
    }
    let inputs: Vec<String> = picked.iter().map(|&i| texts[i].0.clone()).collect();
    let Some(vectors) = embedder.embed_multilingual_documents(&inputs) else { return Ok(out) };
    let vectors = vectors?;
    if vectors.len() != picked.len() {
        return Err(EmbedError::Inference(format!(
            "multilingual model returned {} vectors for {} texts",
            vectors.len(),
            picked.len()
        )));
    }
    for (i, v) in picked.into_iter().zip(vectors) {
        out[i] = Some(v);
    }
    Ok(out)
}

/// The default embedder plus a multilingual one for Chinese, Japanese and Korean text.
pub struct WithMultilingual {
    main: Arc<dyn Embedder>,
    multilingual: e5::E5Embedder,
    model_id: String,
}

impl WithMultilingual {
    pub fn new(main: Arc<dyn Embedder>, multilingual: e5::E5Embedder) -> Self {
        let model_id = multilingual_model_id(main.model_id());
        Self { main, multilingual, model_id }
    }
}

/// The id an index records when `main` is paired with the multilingual model.
pub fn multilingual_model_id(main: &str) -> String {
    format!("{main}+{}", e5::E5_MODEL_ID)
}

/// Whether a model id (as an index records it) includes the multilingual model.
pub fn is_multilingual_model_id(id: &str) -> bool {
    id.strip_suffix(e5::E5_MODEL_ID).is_some_and(|main| main.ends_with('+'))
}

impl Embedder for WithMultilingual {
    fn embed_documents(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.main.embed_documents(texts)
    }
    fn embed_documents_sized(&self, texts: &[String], tokens: &[usize]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.main.embed_documents_sized(texts, tokens)
    }
    fn embed_query(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        self.main.embed_query(text)
    }
    fn dimension(&self) -> usize {
        self.main.dimension()
    }
    fn model_id(&self) -> &str {
        &self.model_id
    }
    fn has_multilingual(&self) -> bool {
        true
    }
    fn embed_multilingual_documents(&self, texts: &[String]) -> Option<Result<Vec<Vec<f32>>, EmbedError>> {
        Some(self.multilingual.embed(texts, false))
    }
    fn embed_multilingual_query(&self, text: &str) -> Option<Result<Vec<f32>, EmbedError>> {
        Some(
            self.multilingual
                .embed(&[text.to_string()], true)
                .and_then(|mut v| v.pop().ok_or_else(|| EmbedError::Inference("no vector returned".into()))),
        )
    }
}

/// How to build a [`FastEmbedder`].
#[derive(Debug, Clone)]
pub struct FastEmbedOptions {
    /// Directory holding `model.onnx`, `tokenizer.json`, `config.json`,
    /// `special_tokens_map.json` and `tokenizer_config.json`.
    pub model_dir: PathBuf,
    /// The ONNX Runtime shared library (`libonnxruntime.so.*`).
    pub onnxruntime_path: PathBuf,
    pub model_id: String,
    /// Texts per inference call (default 1; BENCHMARKS.md, section 1, has the measurements).
    pub batch_size: usize,
    /// Sessions that embed a list of passages at the same time, one CPU thread each.
    pub threads: usize,
    /// Sessions that questions may have built (default 1): when a question finds every session
    /// busy and there are fewer, it starts building one more.
    pub query_sessions: usize,
    /// Longer inputs are truncated to this many tokens.
    pub max_tokens: usize,
    /// Sessions beyond the first that no caller has taken for this long are released, with
    /// their memory; a later list of passages or burst of questions builds them again.
    pub release_idle_after: Duration,
}

/// What [`FastEmbedOptions::release_idle_after`] is unless a caller says otherwise: long enough
/// that an ingest, which comes back every few seconds, keeps its sessions.
pub const RELEASE_IDLE_AFTER: Duration = Duration::from_secs(60);

/// Dimension of all-MiniLM-L6-v2; other models report theirs through `config.json`.
const DEFAULT_DIMENSION: usize = 384;

/// A list of passages gets one more session for every this many batches, up to `threads`.
const BATCHES_PER_WORKER: usize = 8;

/// The batches a worker embedded: each batch's index and its vectors.
type BatchesDone = Vec<(usize, Vec<Vec<f32>>)>;

/// Local sentence embeddings: the model's tokenizer and an ONNX Runtime session (the library
/// loaded dynamically from the configured path, never from `ORT_DYLIB_PATH`), mean pooling
/// and L2 normalisation, as sentence-transformers computes them.
///
/// Every session computes on one CPU thread: a batch of one short question or one passage is too
/// small to share between threads, whose hand-offs after every operator cost more than they
/// save (BENCHMARKS.md, section 1). Parallelism comes from sessions instead:
/// - a long list of passages is spread over up to `threads` sessions, each embedding whole
///   batches, built the first time a list is long enough;
/// - with `query_sessions` above 1, questions that find every session busy start building more,
///   in the background.
///
/// Callers take a session for one batch at a time and, when every session is busy, wait in line
/// and are served in the order they came: a question asked while passages are embedded waits
/// for one batch, not for the list. Each session holds its own copy of the weights and working
/// memory: about 60 MB of resident memory with the default 8-bit model, 100–190 MB with the
/// float graph, whose 8-bit weights ONNX Runtime widens to 32-bit floats (BENCHMARKS.md,
/// section 9). So sessions beyond the first are released once idle for `release_idle_after`:
/// a server goes back to its idle memory after a docs sync or a burst of questions.
pub struct FastEmbedder {
    sessions: Arc<Sessions>,
    model_id: String,
    dimension: usize,
    batch_size: usize,
}

/// The embedder's sessions: those not in use, the callers waiting for one (served in the order
/// they came, so that no question waits behind many later ones), and how to build one more.
struct Sessions {
    state: Mutex<SessionsState>,
    /// The most sessions that questions, and that lists of passages, may have built.
    most_for_questions: usize,
    most_for_passages: usize,
    /// What building another session needs.
    recipe: SessionRecipe,
    /// Sessions beyond the first, idle this long, are released.
    release_after: Duration,
}

/// Who takes a session; each may have its own number of sessions built.
#[derive(Clone, Copy)]
enum Caller {
    Question,
    Passages,
}

struct SessionsState {
    /// Sessions not in use, each with when it came back; the most recent last.
    idle: Vec<(OnnxModel, Instant)>,
    waiting: VecDeque<Arc<Waiter>>,
    /// Sessions built or being built, and not released.
    made: usize,
    /// Sessions built and not released.
    built: usize,
    /// Sessions built, counting those released since.
    ever_built: usize,
    /// Whether a thread is waiting to release idle sessions.
    releasing: bool,
}

/// A caller waiting for a session: the session is handed to it directly.
#[derive(Default)]
struct Waiter {
    slot: Mutex<Option<OnnxModel>>,
    handed: Condvar,
}

/// What a session is built from: the model file, the runtime and the tokenizer.
struct SessionRecipe {
    model_dir: PathBuf,
    environment: ort::environment::Environment,
    tokenizer: Tokenizer,
}

/// A session taken from [`Sessions`]; it goes back when dropped, even after a panic.
struct Lease<'a> {
    sessions: &'a Sessions,
    model: Option<OnnxModel>,
}

impl std::ops::Deref for Lease<'_> {
    type Target = OnnxModel;
    fn deref(&self) -> &OnnxModel {
        self.model.as_ref().expect("a lease holds its session until dropped")
    }
}

impl std::ops::DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut OnnxModel {
        self.model.as_mut().expect("a lease holds its session until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(model) = self.model.take() {
            self.sessions.give_back(model);
        }
    }
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, SessionsState> {
        // The state (idle sessions, the line, two counts) is consistent between statements: a
        // panic elsewhere while it was held leaves nothing half-done.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Hands a session to the longest-waiting caller, or puts it with the idle ones.
    fn give_back(&self, model: OnnxModel) {
        let mut state = self.lock();
        let Some(waiter) = state.waiting.pop_front() else {
            state.idle.push((model, Instant::now()));
            return;
        };
        drop(state);
        *waiter.slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(model);
        waiter.handed.notify_one();
    }

    /// Takes an idle session or waits in line for one. A caller that finds every session busy
    /// starts building another, if its kind may have more built.
    fn take(self: &Arc<Self>, caller: Caller) -> Lease<'_> {
        let mut state = self.lock();
        if state.waiting.is_empty()
            && let Some((model, _)) = state.idle.pop()
        {
            return Lease { sessions: self, model: Some(model) };
        }
        let most = match caller {
            Caller::Question => self.most_for_questions,
            Caller::Passages => self.most_for_passages,
        };
        let build = state.made < most;
        if build {
            state.made += 1;
        }
        // In line before a new session can come back, so that it is handed over.
        let waiter = Arc::new(Waiter::default());
        state.waiting.push_back(Arc::clone(&waiter));
        drop(state);
        if build {
            self.build_in_background();
        }
        let mut slot = waiter.slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        loop {
            if let Some(model) = slot.take() {
                return Lease { sessions: self, model: Some(model) };
            }
            slot = waiter.handed.wait(slot).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Builds a session on its own thread and adds it to the idle ones; meanwhile the caller
    /// waits for whichever session comes back first.
    fn build_in_background(self: &Arc<Self>) {
        let sessions = Arc::clone(self);
        let spawned = std::thread::Builder::new().name("embedder-session".into()).spawn(move || {
            match OnnxModel::build(&sessions.recipe) {
                Ok(model) => {
                    let release = {
                        let mut state = sessions.lock();
                        state.built += 1;
                        state.ever_built += 1;
                        !std::mem::replace(&mut state.releasing, true)
                    };
                    sessions.give_back(model);
                    tracing::debug!("built another embedding session");
                    if release {
                        sessions.release_when_idle();
                    }
                }
                Err(e) => {
                    // Callers keep the sessions there are; do not try again.
                    tracing::warn!(error = %e, "could not build another embedding session; callers share the ones there are");
                    sessions.lock().made = usize::MAX;
                }
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start a thread to build another embedding session");
            self.lock().made = usize::MAX;
        }
    }

    /// Runs on the thread that built a session beyond the first, until only one is left:
    /// releases those that stayed idle for `release_after`, with their memory.
    fn release_when_idle(&self) {
        loop {
            std::thread::sleep(self.release_after / 4);
            let mut state = self.lock();
            let mut released = Vec::new();
            // The longest idle first; the first session always stays.
            while state.built > 1 && state.idle.first().is_some_and(|(_, since)| since.elapsed() >= self.release_after)
            {
                released.push(state.idle.remove(0));
                state.built -= 1;
                // After a failed build `made` stays at its maximum: no more are built.
                if state.made != usize::MAX {
                    state.made -= 1;
                }
            }
            // Done when one is left and none is being built (or none can be, after a failure).
            let done = state.built <= 1 && (state.made <= 1 || state.made == usize::MAX);
            if done {
                state.releasing = false;
            }
            drop(state);
            if !released.is_empty() {
                drop(released);
                return_freed_memory();
                tracing::debug!("released idle embedding sessions");
            }
            if done {
                return;
            }
        }
    }
}

/// Hands memory freed in the process's allocator back to the system. A session's weights and
/// working memory are allocated on the threads that built and ran it, in glibc's per-thread
/// arenas, which keep what is freed for later allocations: without this, releasing a session
/// leaves the process as large as before.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn return_freed_memory() {
    unsafe extern "C" {
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: glibc's `malloc_trim` takes a byte count, touches only the allocator's own free
    // lists (under their locks), and may be called from any thread at any time.
    unsafe {
        malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_freed_memory() {}

/// The session and the tokenizer that feeds it.
struct OnnxModel {
    session: ort::session::Session,
    tokenizer: Tokenizer,
    /// BERT-style graphs take `token_type_ids`; others do not.
    token_type_ids: bool,
}

impl std::fmt::Debug for FastEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastEmbedder").field("model_id", &self.model_id).field("dimension", &self.dimension).finish()
    }
}

/// The variable that stops ONNX Runtime's usage reports.
pub const RUNTIME_TELEMETRY_OPT_OUT: &str = "ORT_DISABLE_TELEMETRY";

/// Turns off the usage reports of Microsoft's ONNX Runtime builds (the PyPI wheel's library is
/// one). Unless told otherwise, each process that loads one queues a device and process report
/// under `~/.cache/Microsoft/DeveloperTools/.onnxruntime/` for Microsoft's collector, before any
/// session exists, so `with_telemetry(false)` on the environment comes too late. The library reads
/// [`RUNTIME_TELEMETRY_OPT_OUT`] when it loads. Call this first thing in `main`, before any
/// thread starts; an operator's own value of the variable is kept.
#[allow(unsafe_code)]
pub fn opt_out_of_runtime_telemetry() {
    if std::env::var_os(RUNTIME_TELEMETRY_OPT_OUT).is_none() {
        // SAFETY: called at the start of `main`, while the process has one thread, so nothing
        // reads the environment concurrently.
        unsafe { std::env::set_var(RUNTIME_TELEMETRY_OPT_OUT, "1") };
    }
}

/// The ONNX Runtime library can be loaded once per process; remember which one.
/// The environment is kept for the life of the process (ONNX Runtime holds it weakly).
static RUNTIME: OnceLock<Result<(PathBuf, ort::environment::Environment), String>> = OnceLock::new();

fn init_runtime(path: &Path) -> Result<ort::environment::Environment, EmbedError> {
    let loaded = RUNTIME.get_or_init(|| {
        if !path.is_file() {
            return Err("file not found".to_string());
        }
        let env = ort::init_from(path)
            .map_err(|e| e.to_string())?
            .with_name("supportbot")
            // Also off for the sessions' events (see `opt_out_of_runtime_telemetry`).
            .with_telemetry(false)
            .build()
            .map_err(|e| e.to_string())?;
        Ok((path.to_path_buf(), env))
    });
    match loaded {
        Ok((p, env)) if p == path => Ok(env.clone()),
        Ok((p, _)) => Err(EmbedError::Runtime {
            path: path.to_path_buf(),
            reason: format!("this process already loaded ONNX Runtime from {}", p.display()),
        }),
        Err(reason) => Err(EmbedError::Runtime { path: path.to_path_buf(), reason: reason.clone() }),
    }
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>, EmbedError> {
    let path = dir.join(name);
    std::fs::read(&path).map_err(|e| EmbedError::MissingFile { path, reason: e.to_string() })
}

fn read_json(dir: &Path, name: &str) -> Result<serde_json::Value, EmbedError> {
    let bytes = read(dir, name)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| EmbedError::MissingFile { path: dir.join(name), reason: format!("not valid JSON: {e}") })
}

/// The model's tokenizer (`config` is the model's `config.json`), truncating at `max_tokens` (or
/// the model's own limit, if lower) and padding each batch to its longest input with the model's
/// pad token.
fn load_tokenizer(dir: &Path, config: &serde_json::Value, max_tokens: usize) -> Result<Tokenizer, EmbedError> {
    let tokenizer_config = read_json(dir, "tokenizer_config.json")?;
    let special_tokens = read_json(dir, "special_tokens_map.json")?;
    let path = dir.join("tokenizer.json");
    let bad = |reason: String| EmbedError::MissingFile { path: path.clone(), reason };
    let mut tokenizer = Tokenizer::from_bytes(read(dir, "tokenizer.json")?).map_err(|e| bad(e.to_string()))?;
    let model_max = tokenizer_config.get("model_max_length").and_then(|m| m.as_f64()).unwrap_or(f64::MAX);
    let max_length = if model_max < max_tokens as f64 { model_max as usize } else { max_tokens };
    let pad = &tokenizer_config["pad_token"];
    let pad_token = pad.as_str().or_else(|| pad["content"].as_str()).unwrap_or("[PAD]").to_string();
    let pad_id =
        config["pad_token_id"].as_u64().map(|id| id as u32).or_else(|| tokenizer.token_to_id(&pad_token)).unwrap_or(0);
    tokenizer
        .with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_token,
            pad_id,
            ..Default::default()
        }))
        .with_truncation(Some(TruncationParams { max_length, ..Default::default() }))
        .map_err(|e| bad(e.to_string()))?;
    // The special tokens as fastembed registers them, so that vectors match indexes it built.
    if let serde_json::Value::Object(map) = special_tokens {
        let tokens: Vec<AddedToken> = map
            .values()
            .filter_map(|v| match v {
                serde_json::Value::String(content) => {
                    Some(AddedToken { content: content.clone(), special: true, ..Default::default() })
                }
                serde_json::Value::Object(o) => Some(AddedToken {
                    content: o.get("content")?.as_str()?.to_string(),
                    special: true,
                    single_word: o.get("single_word")?.as_bool()?,
                    lstrip: o.get("lstrip")?.as_bool()?,
                    rstrip: o.get("rstrip")?.as_bool()?,
                    normalized: o.get("normalized")?.as_bool()?,
                }),
                _ => None,
            })
            .collect();
        tokenizer.add_special_tokens(tokens).map_err(|e| bad(e.to_string()))?;
    }
    Ok(tokenizer)
}

impl FastEmbedder {
    pub fn new(opts: &FastEmbedOptions) -> Result<Self, EmbedError> {
        // Read the files first: a missing model is the likelier mistake and deserves its own message.
        let config = read_json(&opts.model_dir, "config.json")?;
        let tokenizer = load_tokenizer(&opts.model_dir, &config, opts.max_tokens)?;
        let dimension = config.get("hidden_size").and_then(|h| h.as_u64()).map_or(DEFAULT_DIMENSION, |h| h as usize);
        let onnx = opts.model_dir.join("model.onnx");
        std::fs::File::open(&onnx).map_err(|e| EmbedError::MissingFile { path: onnx, reason: e.to_string() })?;
        let environment = init_runtime(&opts.onnxruntime_path)?;
        let recipe = SessionRecipe { model_dir: opts.model_dir.clone(), environment, tokenizer };
        let first = OnnxModel::build(&recipe)?;
        let sessions = Sessions {
            state: Mutex::new(SessionsState {
                idle: vec![(first, Instant::now())],
                waiting: VecDeque::new(),
                made: 1,
                built: 1,
                ever_built: 1,
                releasing: false,
            }),
            most_for_questions: opts.query_sessions.max(1),
            most_for_passages: opts.threads.max(1),
            recipe,
            release_after: opts.release_idle_after,
        };
        Ok(Self {
            sessions: Arc::new(sessions),
            model_id: opts.model_id.clone(),
            dimension,
            batch_size: opts.batch_size.max(1),
        })
    }

    /// Sessions built so far, counting those released since.
    pub fn sessions_built(&self) -> usize {
        self.sessions.lock().ever_built
    }

    /// Sessions there are now: built and not released.
    pub fn sessions_held(&self) -> usize {
        self.sessions.lock().built
    }
}

impl OnnxModel {
    /// An ONNX Runtime session of the model, computing on one thread.
    fn build(recipe: &SessionRecipe) -> Result<Self, EmbedError> {
        let onnx = read(&recipe.model_dir, "model.onnx")?;
        let loading = |e: String| EmbedError::Inference(format!("loading {}: {e}", recipe.model_dir.display()));
        let builder = ort::session::Session::builder(&recipe.environment).map_err(|e| loading(e.to_string()))?;
        let built =
            |r: Result<_, ort::Error<ort::session::builder::SessionBuilder>>| r.map_err(|e| loading(e.to_string()));
        let builder = built(builder.with_optimization_level(ort::session::builder::GraphOptimizationLevel::Level3))?;
        // One thread: no thread pool whose workers wait for each operator (section 1).
        let builder = built(builder.with_intra_threads(1))?;
        // Memory patterns plan each input shape's buffers ahead; batches of passages come in
        // many shapes, so they only cost memory (BENCHMARKS.md, section 1).
        let mut builder = built(builder.with_memory_pattern(false))?;
        let session = builder.commit_from_memory(&onnx).map_err(|e| loading(e.to_string()))?;
        let token_type_ids = session.inputs().iter().any(|input| input.name() == "token_type_ids");
        Ok(Self { session, tokenizer: recipe.tokenizer.clone(), token_type_ids })
    }
}

impl OnnxModel {
    /// One batch: tokenise (padded to the longest input), run the model, average the token
    /// vectors under the attention mask and normalise.
    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let failed = |e: String| EmbedError::Inference(e);
        let encodings = self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| failed(e.to_string()))?;
        let rows = encodings.len();
        let len = encodings.first().map_or(0, |e| e.len());
        let mut ids = Vec::with_capacity(rows * len);
        let mut mask = Vec::with_capacity(rows * len);
        let mut types = Vec::with_capacity(rows * len);
        for e in &encodings {
            ids.extend(e.get_ids().iter().map(|&x| x as i64));
            mask.extend(e.get_attention_mask().iter().map(|&x| x as i64));
            types.extend(e.get_type_ids().iter().map(|&x| x as i64));
        }
        if ids.len() != rows * len {
            return Err(failed("the tokenizer returned inputs of different lengths".into()));
        }
        let shape = [rows, len];
        let tensor = |data: Vec<i64>| ort::value::Tensor::from_array((shape, data)).map_err(|e| failed(e.to_string()));
        let mut inputs = ort::inputs!["input_ids" => tensor(ids)?, "attention_mask" => tensor(mask.clone())?];
        if self.token_type_ids {
            inputs.push(("token_type_ids".into(), tensor(types)?.into()));
        }
        let outputs = self.session.run(inputs).map_err(|e| failed(e.to_string()))?;
        let output = if outputs.len() == 1 {
            &outputs[0]
        } else {
            outputs
                .get("last_hidden_state")
                .ok_or_else(|| failed("the model has no last_hidden_state output".into()))?
        };
        let (out_shape, values) = output.try_extract_tensor::<f32>().map_err(|e| failed(e.to_string()))?;
        let dims: &[i64] = out_shape;
        let vectors = match *dims {
            // Token vectors: mean over the tokens the attention mask keeps.
            [b, t, d] if b as usize == rows && t as usize == len => {
                let (t, d) = (t as usize, d as usize);
                (0..rows)
                    .map(|r| {
                        let mut sum = vec![0f32; d];
                        let mut kept = 0f32;
                        for (k, &m) in mask[r * t..(r + 1) * t].iter().enumerate() {
                            if m != 0 {
                                kept += 1.0;
                                let token = &values[(r * t + k) * d..(r * t + k + 1) * d];
                                sum.iter_mut().zip(token).for_each(|(s, v)| *s += v);
                            }
                        }
                        let kept = if kept == 0.0 { 1.0 } else { kept };
                        sum.iter_mut().for_each(|s| *s /= kept);
                        sum
                    })
                    .collect::<Vec<_>>()
            }
            // Already pooled by the graph.
            [b, d] if b as usize == rows => values.chunks(d as usize).map(<[f32]>::to_vec).collect(),
            _ => return Err(failed(format!("unexpected output shape {dims:?} for {rows} inputs of {len} tokens"))),
        };
        Ok(vectors.into_iter().map(normalize).collect())
    }
}

/// L2-normalises a vector (a zero vector stays zero).
pub(crate) fn normalize(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm + 1e-12);
    v
}

impl FastEmbedder {
    /// Embeds `texts` in batches taken in order of `key` (a length): a batch is padded to its
    /// longest input, so batching inputs of similar length wastes little compute on padding. A
    /// long list is spread over up to `threads` sessions, each taking the next batch in turn.
    fn embed_by<K: Ord>(&self, texts: &[String], key: impl Fn(usize) -> K) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| key(i));
        let batches: Vec<&[usize]> = order.chunks(self.batch_size).collect();
        // Another session is built for a list long enough to repay its build (about a tenth of
        // a second) and its memory.
        let workers = self.sessions.most_for_passages.min(batches.len().div_ceil(BATCHES_PER_WORKER)).max(1);
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let work = || -> Result<BatchesDone, EmbedError> {
            let mut done = Vec::new();
            while !failed.load(Ordering::Relaxed) {
                let b = next.fetch_add(1, Ordering::Relaxed);
                let Some(batch) = batches.get(b) else { break };
                let inputs: Vec<&str> = batch.iter().map(|&i| texts[i].as_str()).collect();
                // One batch per turn: a question waiting in line is served next.
                let embedded = self.sessions.take(Caller::Passages).embed(&inputs);
                match embedded {
                    Ok(vectors) => done.push((b, vectors)),
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                }
            }
            Ok(done)
        };
        let outcomes: Vec<Result<_, EmbedError>> = std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..workers).map(|_| scope.spawn(work)).collect();
            let mut outcomes = vec![work()];
            outcomes.extend(helpers.into_iter().map(|h| {
                h.join().unwrap_or_else(|_| Err(EmbedError::Inference("an embedding thread panicked".into())))
            }));
            outcomes
        });
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for outcome in outcomes {
            for (b, embedded) in outcome? {
                for (&i, v) in batches[b].iter().zip(embedded) {
                    vectors[i] = Some(v);
                }
            }
        }
        vectors
            .into_iter()
            .map(|v| v.ok_or_else(|| EmbedError::Inference("missing vector in batch output".into())))
            .collect()
    }
}

impl Embedder for FastEmbedder {
    fn embed_documents(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        // Characters approximate tokens far better than bytes once CJK text is mixed in.
        self.embed_by(texts, |i| texts[i].chars().count())
    }

    fn embed_documents_sized(&self, texts: &[String], tokens: &[usize]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if tokens.len() != texts.len() {
            return self.embed_documents(texts);
        }
        self.embed_by(texts, |i| tokens[i])
    }

    fn embed_query(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let mut model = self.sessions.take(Caller::Question);
        let mut v = model.embed(&[text])?;
        drop(model);
        v.pop().ok_or_else(|| EmbedError::Inference("no vector returned".into()))
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn model_id(&self) -> &str {
        &self.model_id
    }
}

/// Cosine similarity of two vectors (not assumed normalised).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 { 0.0 } else { dot / (na.sqrt() * nb.sqrt()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_id_says_whether_the_multilingual_model_is_in_it() {
        let main = "sentence-transformers/all-MiniLM-L6-v2";
        assert!(is_multilingual_model_id(&multilingual_model_id(main)));
        assert!(!is_multilingual_model_id(main));
        assert!(!is_multilingual_model_id(e5::E5_MODEL_ID), "the suffix alone is not a pair");
    }
}
