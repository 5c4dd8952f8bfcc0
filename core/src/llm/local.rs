//! In-process llama.cpp (through the `llama-cpp-2` crate) for GGUF models: the `local` backend.
//!
//! The GGUF file is loaded once (memory-mapped) and shared; each generation gets its own llama.cpp
//! context on a blocking thread, and a semaphore bounds how many run at once. The prompt is
//! rendered with the chat template stored in the GGUF. Sampling is greedy at temperature 0 and
//! seeded otherwise, so answers are reproducible. llama.cpp's own log lines go to `tracing` at
//! debug level (target `llama.cpp`; its errors at warn).
//!
//! Without the `local-llm` cargo feature (which needs cmake, a C++ compiler and libclang to
//! build), the types still exist and [`LocalModel::new`] reports the backend as unavailable.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

use super::{Generation, LanguageModel, ModelError, Prompt, TextStream};

/// Backend name in configuration and answers.
pub const NAME: &str = "local";

/// How to run a GGUF model in-process.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalOptions {
    /// The GGUF file (`scripts/setup` installs SmolLM2-135M-Instruct under the data dir).
    pub model_path: PathBuf,
    /// Context window in tokens (prompt + answer). Capped at the window the model was trained with.
    pub context_tokens: u32,
    /// CPU threads per generation; 0 means all available cores.
    pub threads: u32,
    /// Generations running at the same time; further ones wait for a free slot.
    pub max_concurrency: usize,
    /// Longest time for a whole generation, waiting for a slot included.
    pub timeout: Duration,
}

impl LocalOptions {
    /// Options for `model_path` with the defaults of the `[local]` settings: a 2048-token window,
    /// 2 threads, one generation at a time, two minutes per generation.
    pub fn new(model_path: impl Into<PathBuf>) -> Self {
        Self {
            model_path: model_path.into(),
            context_tokens: 2048,
            threads: 2,
            max_concurrency: 1,
            timeout: Duration::from_secs(120),
        }
    }
}

#[cfg(feature = "local-llm")]
pub use engine::LocalModel;

#[cfg(not(feature = "local-llm"))]
pub use disabled::LocalModel;

#[cfg(not(feature = "local-llm"))]
mod disabled {
    use super::*;

    /// The in-process backend, absent from this build (compiled without the `local-llm` feature).
    #[derive(Debug)]
    pub struct LocalModel {
        _private: (),
    }

    impl LocalModel {
        /// Always fails: this build has no llama.cpp.
        pub fn new(_opts: LocalOptions) -> Result<Self, ModelError> {
            Err(unavailable())
        }
    }

    fn unavailable() -> ModelError {
        ModelError::Unavailable("built without the local-llm feature".to_string())
    }

    #[async_trait]
    impl LanguageModel for LocalModel {
        fn name(&self) -> &str {
            NAME
        }

        fn context_tokens(&self) -> usize {
            0
        }

        async fn generate(&self, _prompt: &Prompt) -> Result<Generation, ModelError> {
            Err(unavailable())
        }

        async fn generate_stream(&self, _prompt: &Prompt) -> Result<TextStream, ModelError> {
            Err(unavailable())
        }
    }
}

#[cfg(feature = "local-llm")]
mod engine {
    use std::ffi::{CStr, c_char, c_void};
    use std::fmt;
    use std::num::NonZeroU32;
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::sync::{Arc, Mutex, OnceLock, PoisonError};
    use std::time::Instant;

    use llama_cpp_2::DecodeError;
    use llama_cpp_2::context::params::LlamaContextParams;
    use llama_cpp_2::llama_backend::LlamaBackend;
    use llama_cpp_2::llama_batch::LlamaBatch;
    use llama_cpp_2::model::params::LlamaModelParams;
    use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
    use llama_cpp_2::sampling::LlamaSampler;
    use llama_cpp_sys_2 as sys;
    use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

    use super::*;
    use crate::llm::{FinishReason, Role};

    /// Seed of the sampler when the temperature is above 0: the same prompt gives the same answer.
    const SEED: u32 = 1_234;
    /// llama.cpp allocates the KV cache in multiples of this many tokens.
    const CONTEXT_GRANULARITY: u32 = 256;
    /// Template used when the GGUF has none, or one llama.cpp cannot apply.
    const FALLBACK_TEMPLATE: &str = "chatml";

    /// The process-wide llama.cpp backend. `LlamaBackend::init` succeeds once per process, so the
    /// result (or why it failed) is kept for every later model.
    fn backend() -> Result<&'static LlamaBackend, ModelError> {
        static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
        BACKEND
            .get_or_init(|| {
                // Before init, so that nothing reaches stderr.
                route_logs_to_tracing();
                LlamaBackend::init().map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| ModelError::Unavailable(format!("llama.cpp backend could not start: {e}")))
    }

    /// Level of the last llama.cpp log line, for its continuation lines (`GGML_LOG_LEVEL_CONT`).
    static LAST_LOG_LEVEL: AtomicU32 = AtomicU32::new(sys::GGML_LOG_LEVEL_DEBUG);

    /// llama.cpp and ggml log through this hook instead of stderr. They write dozens of info and
    /// warning lines per model load and per context (one per generation here), which are routine:
    /// they become `debug` events of target `llama.cpp`; errors become `warn` events.
    /// (`llama_cpp_2::send_logs_to_tracing` keeps llama.cpp's levels, flooding an `info` log.)
    #[allow(unsafe_code)] // FFI callback: see the SAFETY notes inside.
    extern "C" fn log_to_tracing(level: sys::ggml_log_level, text: *const c_char, _user: *mut c_void) {
        if text.is_null() {
            return;
        }
        // SAFETY: llama.cpp passes a NUL-terminated string that stays valid during the call; it
        // is only read here and not kept.
        let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
        let level = if level == sys::GGML_LOG_LEVEL_CONT {
            LAST_LOG_LEVEL.load(Ordering::Relaxed)
        } else {
            LAST_LOG_LEVEL.store(level, Ordering::Relaxed);
            level
        };
        let text = text.trim_end();
        // Progress dots while loading a model carry nothing.
        if text.trim_matches('.').is_empty() {
            return;
        }
        if level == sys::GGML_LOG_LEVEL_ERROR {
            tracing::warn!(target: "llama.cpp", "{text}");
        } else {
            tracing::debug!(target: "llama.cpp", "{text}");
        }
    }

    #[allow(unsafe_code)] // Installs the FFI log hook: see the SAFETY note.
    fn route_logs_to_tracing() {
        // SAFETY: `log_to_tracing` matches `ggml_log_callback`, is a plain function living for the
        // whole program, ignores its (null) user data, and does not unwind (tracing does not
        // panic; a panic would abort at the `extern "C"` boundary). llama.cpp forwards the hook to
        // ggml as well.
        unsafe { sys::llama_log_set(Some(log_to_tracing), std::ptr::null_mut()) };
    }

    /// The loaded model, shared by all generations.
    struct Engine {
        backend: &'static LlamaBackend,
        model: LlamaModel,
        template: LlamaChatTemplate,
        path: PathBuf,
        /// Effective context window.
        n_ctx: u32,
        threads: i32,
        /// `LlamaModel::new_context` must not run concurrently (llama.cpp may write to the model
        /// while creating a context; llama-cpp-2 documents it as unsound), so contexts are created
        /// one at a time. Decoding in separate contexts runs in parallel.
        context_lock: Mutex<()>,
    }

    /// A GGUF model run in-process by llama.cpp.
    pub struct LocalModel {
        engine: Arc<Engine>,
        permits: Arc<Semaphore>,
        max_concurrency: usize,
        timeout: Duration,
    }

    impl fmt::Debug for LocalModel {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("LocalModel")
                .field("model_path", &self.engine.path)
                .field("context_tokens", &self.engine.n_ctx)
                .field("threads", &self.engine.threads)
                .field("max_concurrency", &self.max_concurrency)
                .field("timeout", &self.timeout)
                .finish_non_exhaustive()
        }
    }

    impl LocalModel {
        /// Loads the GGUF file (memory-mapped; ~0.1 s for a 100 MB model). Blocks the calling
        /// thread while loading. A missing or unreadable file gives `ModelError::Unavailable`.
        pub fn new(opts: LocalOptions) -> Result<Self, ModelError> {
            let path = opts.model_path;
            if !path.is_file() {
                return Err(ModelError::Unavailable(format!(
                    "GGUF model file {} not found; run scripts/setup to install the default model \
                     (SmolLM2-135M-Instruct), or point [local] model_path at a GGUF file",
                    path.display()
                )));
            }
            if opts.context_tokens == 0 {
                return Err(ModelError::Unavailable("local model: context_tokens must be at least 1".into()));
            }
            if opts.max_concurrency == 0 {
                return Err(ModelError::Unavailable("local model: max_concurrency must be at least 1".into()));
            }
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let threads = match opts.threads {
                0 => cores,
                n => n as usize,
            };
            if threads.saturating_mul(opts.max_concurrency) > cores {
                // ggml's worker threads spin on barriers: one preempted thread stalls the others
                // for a whole time slice, many times per token (measured 25x slower).
                tracing::warn!(
                    threads,
                    max_concurrency = opts.max_concurrency,
                    cores,
                    "local model: threads x max_concurrency exceeds the CPU cores; generation will crawl \
                     whenever the generations overlap"
                );
            }
            let threads = i32::try_from(threads).unwrap_or(i32::MAX);

            let backend = backend()?;
            let started = Instant::now();
            let model = LlamaModel::load_from_file(backend, &path, &LlamaModelParams::default())
                .map_err(|e| ModelError::Unavailable(format!("could not load GGUF model {}: {e}", path.display())))?;
            let trained = model.n_ctx_train();
            let n_ctx = if trained > 0 && opts.context_tokens > trained {
                tracing::warn!(
                    requested = opts.context_tokens,
                    trained,
                    "local model: context window capped at the model's training context"
                );
                trained
            } else {
                opts.context_tokens
            };
            let template = chat_template(&model, &path);
            tracing::info!(
                model = %path.display(),
                params = model.n_params(),
                n_ctx,
                threads,
                load_ms = started.elapsed().as_millis() as u64,
                "local model loaded"
            );
            Ok(Self {
                engine: Arc::new(Engine {
                    backend,
                    model,
                    template,
                    path,
                    n_ctx,
                    threads,
                    context_lock: Mutex::new(()),
                }),
                permits: Arc::new(Semaphore::new(opts.max_concurrency)),
                max_concurrency: opts.max_concurrency,
                timeout: opts.timeout,
            })
        }

        /// Waits for a generation slot, within the overall deadline.
        async fn permit(&self, deadline: Instant) -> Result<OwnedSemaphorePermit, ModelError> {
            let acquire = Arc::clone(&self.permits).acquire_owned();
            match tokio::time::timeout_at(deadline.into(), acquire).await {
                Ok(Ok(permit)) => Ok(permit),
                Ok(Err(_closed)) => Err(ModelError::Unavailable("local model is shutting down".into())),
                Err(_elapsed) => Err(ModelError::Timeout(self.timeout)),
            }
        }
    }

    /// The GGUF's own chat template when llama.cpp can apply it, otherwise ChatML.
    fn chat_template(model: &LlamaModel, path: &Path) -> LlamaChatTemplate {
        let probe = |t: &LlamaChatTemplate| {
            let msg = LlamaChatMessage::new("user".into(), "hi".into());
            msg.is_ok_and(|m| model.apply_chat_template(t, &[m], true).is_ok())
        };
        match model.chat_template(None) {
            Ok(t) if probe(&t) => return t,
            Ok(_) => tracing::warn!(
                model = %path.display(),
                "llama.cpp does not support the GGUF's chat template; using {FALLBACK_TEMPLATE}"
            ),
            Err(e) => {
                tracing::warn!(model = %path.display(), "GGUF has no usable chat template ({e}); using {FALLBACK_TEMPLATE}")
            }
        }
        match LlamaChatTemplate::new(FALLBACK_TEMPLATE) {
            Ok(t) => t,
            Err(_) => unreachable!("the fallback template name has no NUL byte"),
        }
    }

    impl Engine {
        /// The prompt in the model's chat format, ending with the opening of the assistant turn.
        fn render(&self, prompt: &Prompt) -> Result<String, ModelError> {
            // NUL bytes cannot cross into C strings; they carry no meaning in a chat anyway.
            let message = |role: &str, text: &str| {
                LlamaChatMessage::new(role.to_string(), text.replace('\0', ""))
                    .map_err(|e| ModelError::Rejected(format!("chat message: {e}")))
            };
            let mut chat = Vec::with_capacity(prompt.messages.len() + 2);
            if !prompt.system.trim().is_empty() {
                chat.push(message("system", &prompt.system)?);
            }
            for m in &prompt.messages {
                let role = match m.role {
                    Role::User => "user",
                    Role::Assistant => "assistant",
                };
                chat.push(message(role, &m.text)?);
            }
            if prompt.messages.is_empty() {
                chat.push(message("user", &prompt.question)?);
            }
            self.model
                .apply_chat_template(&self.template, &chat, true)
                .map_err(|e| ModelError::Rejected(format!("chat template could not be applied: {e}")))
        }
    }

    /// Where a running generation delivers its text.
    trait Sink {
        /// The prompt is evaluated: generation starts.
        fn ready(&mut self) {}
        fn piece(&mut self, text: &str);
        /// Nobody waits for the result any more.
        fn cancelled(&self) -> bool;
    }

    /// Collects the text for [`LanguageModel::generate`].
    struct Collect {
        text: String,
        cancelled: Arc<AtomicBool>,
    }

    impl Sink for Collect {
        fn piece(&mut self, text: &str) {
            self.text.push_str(text);
        }

        fn cancelled(&self) -> bool {
            self.cancelled.load(Ordering::Relaxed)
        }
    }

    /// Sends the text to a [`TextStream`].
    struct Channel {
        ready: Option<oneshot::Sender<Result<(), ModelError>>>,
        tx: mpsc::UnboundedSender<Result<String, ModelError>>,
    }

    impl Sink for Channel {
        fn ready(&mut self) {
            if let Some(ready) = self.ready.take() {
                let _ = ready.send(Ok(()));
            }
        }

        fn piece(&mut self, text: &str) {
            let _ = self.tx.send(Ok(text.to_string()));
        }

        fn cancelled(&self) -> bool {
            // Dropping the stream drops the receiver; before the stream exists, the caller
            // waits on `ready` (and drops it when it gives up).
            self.tx.is_closed() || self.ready.as_ref().is_some_and(|r| r.is_closed())
        }
    }

    impl Channel {
        /// Reports a failure: as the result of `generate_stream` when generation had not started,
        /// as the last item of the stream otherwise.
        fn fail(&mut self, error: ModelError) {
            match self.ready.take() {
                Some(ready) => {
                    let _ = ready.send(Err(error));
                }
                None => {
                    let _ = self.tx.send(Err(error));
                }
            }
        }
    }

    /// Sets the flag when the waiting future goes away (dropped or timed out).
    struct CancelOnDrop(Arc<AtomicBool>);

    impl Drop for CancelOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }

    /// Bytes of token pieces turned into text: a character split across tokens is held back
    /// until its last byte arrives; invalid bytes become U+FFFD.
    #[derive(Default)]
    struct Utf8Pieces {
        pending: Vec<u8>,
    }

    impl Utf8Pieces {
        fn push(&mut self, bytes: &[u8]) -> String {
            self.pending.extend_from_slice(bytes);
            let mut out = String::new();
            loop {
                match std::str::from_utf8(&self.pending) {
                    Ok(s) => {
                        out.push_str(s);
                        self.pending.clear();
                        return out;
                    }
                    Err(e) => {
                        let valid = e.valid_up_to();
                        out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                        match e.error_len() {
                            // An incomplete character at the end: wait for the next piece.
                            None => {
                                self.pending.drain(..valid);
                                return out;
                            }
                            Some(bad) => {
                                out.push(char::REPLACEMENT_CHARACTER);
                                self.pending.drain(..valid + bad);
                            }
                        }
                    }
                }
            }
        }

        /// Whatever is left when generation ends (a character cut by the end of generation).
        fn finish(&mut self) -> String {
            let rest = String::from_utf8_lossy(&self.pending).into_owned();
            self.pending.clear();
            rest
        }
    }

    fn sampler(temperature: f32) -> LlamaSampler {
        if temperature.is_nan() || temperature <= 0.0 {
            return LlamaSampler::greedy();
        }
        // llama.cpp's default filters, then the temperature, then a seeded draw.
        LlamaSampler::chain_simple([
            LlamaSampler::top_k(40),
            LlamaSampler::top_p(0.95, 1),
            LlamaSampler::min_p(0.05, 1),
            LlamaSampler::temp(temperature),
            LlamaSampler::dist(SEED),
        ])
    }

    fn decode_error(e: DecodeError) -> ModelError {
        match e {
            DecodeError::NoKvCacheSlot => ModelError::ContextTooLong(format!("llama.cpp: {e}")),
            _ => ModelError::Transient(format!("llama.cpp decode failed: {e}")),
        }
    }

    /// One generation, on a blocking thread.
    fn run(
        engine: &Engine,
        prompt: &Prompt,
        deadline: Instant,
        timeout: Duration,
        sink: &mut impl Sink,
    ) -> Result<FinishReason, ModelError> {
        let started = Instant::now();
        let text = engine.render(prompt)?;
        let vocab = engine.model.vocab();
        let tokens = vocab.tokenize(text.as_bytes(), true, true);
        let n_prompt = tokens.len();
        let max_output = prompt.max_output_tokens as usize;
        let n_ctx = engine.n_ctx as usize;
        if n_prompt + max_output > n_ctx {
            return Err(ModelError::ContextTooLong(format!(
                "{n_prompt} prompt tokens + {max_output} answer tokens exceed the local model's \
                 {n_ctx}-token context window"
            )));
        }
        if n_prompt == 0 {
            return Err(ModelError::Rejected("empty prompt".into()));
        }

        // The KV cache only needs room for this prompt and its answer.
        let needed = u32::try_from(n_prompt + max_output).unwrap_or(u32::MAX);
        let ctx_size = needed.div_ceil(CONTEXT_GRANULARITY).saturating_mul(CONTEXT_GRANULARITY).min(engine.n_ctx);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(ctx_size))
            .with_n_batch(ctx_size)
            .with_n_threads(engine.threads)
            .with_n_threads_batch(engine.threads);
        if Instant::now() >= deadline {
            return Err(ModelError::Timeout(timeout));
        }
        let mut ctx = {
            let _one_at_a_time = engine.context_lock.lock().unwrap_or_else(PoisonError::into_inner);
            engine
                .model
                .new_context(engine.backend, params)
                .map_err(|e| ModelError::Transient(format!("llama.cpp context ({ctx_size} tokens): {e}")))?
        };

        let mut batch = LlamaBatch::new(ctx_size as usize, 1);
        batch.add_sequence(&tokens, 0, false).map_err(|e| ModelError::ContextTooLong(format!("prompt batch: {e}")))?;
        ctx.decode(&mut batch).map_err(decode_error)?;
        let prompt_done = Instant::now();
        sink.ready();

        let mut sampler = sampler(prompt.temperature);
        let mut utf8 = Utf8Pieces::default();
        let mut logits_at = batch.n_tokens() - 1;
        let mut position = i32::try_from(n_prompt).unwrap_or(i32::MAX);
        let mut generated = 0usize;
        let finish = loop {
            if generated >= max_output {
                break FinishReason::Length;
            }
            if sink.cancelled() {
                tracing::debug!(generated, "local generation abandoned by the caller");
                return Ok(FinishReason::Other);
            }
            if Instant::now() >= deadline {
                return Err(ModelError::Timeout(timeout));
            }
            // Samples and accepts the token into the sampler's state.
            let token = sampler.sample(&ctx, logits_at);
            if vocab.is_eog(token) {
                break FinishReason::Stop;
            }
            generated += 1;
            let piece = utf8.push(&vocab.token_to_piece(token, false, None));
            if !piece.is_empty() {
                sink.piece(&piece);
            }
            if generated >= max_output {
                break FinishReason::Length;
            }
            batch.clear();
            batch
                .add(token, position, &[0], true)
                .map_err(|e| ModelError::Transient(format!("llama.cpp batch: {e}")))?;
            position += 1;
            ctx.decode(&mut batch).map_err(decode_error)?;
            logits_at = 0;
        };
        let rest = utf8.finish();
        if !rest.is_empty() {
            sink.piece(&rest);
        }

        let gen_secs = prompt_done.elapsed().as_secs_f64();
        tracing::debug!(
            prompt_tokens = n_prompt,
            prompt_ms = (prompt_done - started).as_millis() as u64,
            generated,
            tokens_per_s = if gen_secs > 0.0 { generated as f64 / gen_secs } else { 0.0 },
            ?finish,
            "local generation"
        );
        Ok(finish)
    }

    #[async_trait]
    impl LanguageModel for LocalModel {
        fn name(&self) -> &str {
            NAME
        }

        fn context_tokens(&self) -> usize {
            self.engine.n_ctx as usize
        }

        async fn generate(&self, prompt: &Prompt) -> Result<Generation, ModelError> {
            let deadline = Instant::now() + self.timeout;
            let permit = self.permit(deadline).await?;
            let engine = Arc::clone(&self.engine);
            let prompt = prompt.clone();
            let timeout = self.timeout;
            let cancelled = Arc::new(AtomicBool::new(false));
            // Stops the thread when this future is dropped or gives up.
            let _cancel = CancelOnDrop(Arc::clone(&cancelled));
            let task = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let mut sink = Collect { text: String::new(), cancelled };
                let finish = run(&engine, &prompt, deadline, timeout, &mut sink)?;
                Ok(Generation { text: sink.text, finish })
            });
            match tokio::time::timeout_at(deadline.into(), task).await {
                Ok(Ok(result)) => result,
                Ok(Err(e)) => Err(ModelError::Transient(format!("local generation thread failed: {e}"))),
                Err(_elapsed) => Err(ModelError::Timeout(timeout)),
            }
        }

        async fn generate_stream(&self, prompt: &Prompt) -> Result<TextStream, ModelError> {
            let deadline = Instant::now() + self.timeout;
            let permit = self.permit(deadline).await?;
            let engine = Arc::clone(&self.engine);
            let prompt = prompt.clone();
            let timeout = self.timeout;
            let (ready_tx, ready_rx) = oneshot::channel();
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let mut sink = Channel { ready: Some(ready_tx), tx };
                if let Err(e) = run(&engine, &prompt, deadline, timeout, &mut sink) {
                    sink.fail(e);
                }
            });
            // Errors before the first token (prompt too long, …) are the call's result, so that
            // a caller can still fall back to another backend.
            match tokio::time::timeout_at(deadline.into(), ready_rx).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => return Err(e),
                Ok(Err(_)) => return Err(ModelError::Transient("local generation thread failed".into())),
                Err(_elapsed) => return Err(ModelError::Timeout(timeout)),
            }
            let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
            Ok(Box::pin(stream))
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn utf8_pieces_hold_back_split_characters() {
            let mut u = Utf8Pieces::default();
            let crab = "🦀".as_bytes();
            assert_eq!(u.push(b"a"), "a");
            assert_eq!(u.push(&crab[..1]), "");
            assert_eq!(u.push(&crab[1..3]), "");
            assert_eq!(u.push(&[crab[3], b'b']), "🦀b");
            assert_eq!(u.finish(), "");
        }

        #[test]
        fn utf8_pieces_replace_invalid_bytes() {
            let mut u = Utf8Pieces::default();
            assert_eq!(u.push(&[b'x', 0xff, b'y']), "x\u{fffd}y");
            assert_eq!(u.push(&"é".as_bytes()[..1]), "");
            assert_eq!(u.finish(), "\u{fffd}");
        }
    }
}
