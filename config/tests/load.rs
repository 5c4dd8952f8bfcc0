//! End-to-end tests of `load`: real files in temporary directories, injected environments.

use std::fs;
use std::path::{Path, PathBuf};

use supportbot_config::{ConfigError, LoadContext, Loaded, Origin, Settings, load};
use tempfile::TempDir;

struct Fixture {
    dir: TempDir,
    env: Vec<(String, String)>,
    explicit_file: Option<PathBuf>,
}

impl Fixture {
    fn new() -> Self {
        Fixture { dir: tempfile::tempdir().expect("tempdir"), env: Vec::new(), explicit_file: None }
    }

    fn cwd(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("share/supportbot")
    }

    /// Writes `rel` (relative to cwd), creating parent directories; returns its path.
    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, text).expect("write");
        path
    }

    fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    fn explicit(mut self, path: &str) -> Self {
        self.explicit_file = Some(path.into());
        self
    }

    fn ctx(&self) -> LoadContext {
        LoadContext {
            cwd: self.cwd(),
            data_dir: self.data_dir(),
            env: self.env.clone(),
            explicit_file: self.explicit_file.clone(),
        }
    }

    fn load(&self) -> Loaded {
        match load(&self.ctx()) {
            Ok(loaded) => loaded,
            Err(e) => panic!("load failed: {e}"),
        }
    }

    fn settings(&self) -> Settings {
        self.load().settings
    }

    fn error(&self) -> ConfigError {
        match load(&self.ctx()) {
            Ok(loaded) => panic!("load unexpectedly succeeded: {:?}", loaded.settings),
            Err(e) => e,
        }
    }
}

fn assert_contains(haystack: &str, needles: &[&str]) {
    for needle in needles {
        assert!(haystack.contains(needle), "expected {needle:?} in:\n{haystack}");
    }
}

#[test]
fn defaults_when_no_file() {
    let f = Fixture::new();
    let loaded = f.load();
    assert_eq!(loaded.file, None);
    let s = loaded.settings;
    assert_eq!(s, Settings::defaults(&f.cwd(), &f.data_dir()));
    assert_eq!(s.store.path, f.cwd().join(".supportbot/index"));
    assert_eq!(s.embedding.model_dir, f.data_dir().join("models/all-MiniLM-L6-v2-int8-dynamic"));
    assert_eq!(s.embedding.onnxruntime_path, f.data_dir().join("onnxruntime/libonnxruntime.so.1.31.1"));
    assert_eq!(s.local.model_path, f.data_dir().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    assert_eq!(s.store.collection, "supportbot");
    assert_eq!(s.embedding.model_id, "sentence-transformers/all-MiniLM-L6-v2@int8-dynamic");
    assert_eq!((s.embedding.batch_size, s.embedding.threads, s.embedding.max_tokens), (1, 2, 256));
    assert_eq!(s.embedding.multilingual, supportbot_config::Multilingual::Auto);
    assert_eq!(s.embedding.multilingual_dir, f.data_dir().join("models/multilingual-e5-small"));
    assert_eq!((s.ingest.chunk_tokens, s.ingest.max_file_bytes), (200, 20_000_000));
    assert_eq!((s.search.limit, s.search.candidates), (5, 40));
    assert_eq!(s.search.fusion, supportbot_config::FusionMethod::Scores);
    assert_eq!((s.search.bm25_weight, s.search.cjk_bm25_weight), (0.5, 0.75));
    assert_eq!(s.search.rrf_k, 60.0);
    assert_eq!(s.search.cjk_dense_weight, 0.25);
    assert_eq!(s.llm.chain, None);
    assert_eq!(s.llm.timeout_secs, 30);
    assert_eq!(s.gemini.model, "gemini-3.5-flash-lite");
    assert_eq!(s.openai.model, "default");
    assert_eq!(s.telegram.api_url, "https://api.telegram.org");
    assert_eq!(s.discord.api_url, "https://discord.com");
    assert_eq!(s.review.database_url.expose(), "sqlite://.supportbot/review.sqlite");
    assert_eq!(s.web.listen, "127.0.0.1:8080");
    assert!(s.sources.is_empty());
    assert_eq!(s.effective_chain(), ["extractive"]);
}

#[test]
fn file_in_cwd_is_read() {
    let f = Fixture::new();
    let path = f.write(
        "supportbot.toml",
        r#"
        [store]
        collection = "kb"
        [search]
        limit = 9
        dense_weight = 0.5
        [[sources]]
        name = "docs"
        path = "/srv/docs"
        url = "https://example.com/docs"
        "#,
    );
    let loaded = f.load();
    assert_eq!(loaded.file, Some(path));
    let s = loaded.settings;
    assert_eq!(s.store.collection, "kb");
    assert_eq!(s.search.limit, 9);
    assert_eq!(s.search.dense_weight, 0.5);
    // Untouched keys of a section keep their defaults.
    assert_eq!(s.search.candidates, 40);
    assert_eq!(s.sources.len(), 1);
    assert_eq!(s.sources[0].path, Path::new("/srv/docs"));
    assert!(s.sources[0].tags.is_empty());
}

#[test]
fn file_in_parent_directory_is_not_searched() {
    let f = Fixture::new();
    f.write("supportbot.toml", "[search]\nlimit = 9\n");
    let sub = f.cwd().join("sub");
    fs::create_dir_all(&sub).expect("mkdir");
    let ctx = LoadContext { cwd: sub, ..f.ctx() };
    let loaded = load(&ctx).expect("load");
    assert_eq!(loaded.file, None);
    assert_eq!(loaded.settings.search.limit, 5);
}

#[test]
fn env_overrides_file() {
    let f = Fixture::new()
        .env("SUPPORTBOT__SEARCH__LIMIT", "3")
        .env("SUPPORTBOT__Search__Candidates", "7")
        .env("SUPPORTBOT__GEMINI__MODEL", "gemini-pro")
        .env("UNRELATED", "x")
        .env("SUPPORTBOT_SINGLE_UNDERSCORE", "ignored");
    f.write("supportbot.toml", "[search]\nlimit = 9\ncandidates = 80\nbm25_weight = 2.0\n");
    let s = f.settings();
    assert_eq!(s.search.limit, 3);
    assert_eq!(s.search.candidates, 7);
    assert_eq!(s.search.bm25_weight, 2.0);
    assert_eq!(s.gemini.model, "gemini-pro");
}

#[test]
fn array_via_env() {
    let f = Fixture::new()
        .env("SUPPORTBOT__LLM__CHAIN", r#"["gemini", "extractive"]"#)
        .env("SUPPORTBOT__GEMINI__API_KEY", "k");
    f.write("supportbot.toml", "[llm]\nchain = [\"local\"]\n");
    let s = f.settings();
    assert_eq!(s.llm.chain.as_deref(), Some(&["gemini".to_owned(), "extractive".to_owned()][..]));
    assert_eq!(s.effective_chain(), ["gemini", "extractive"]);
}

#[test]
fn env_values_that_look_like_numbers_still_fill_string_keys() {
    let f = Fixture::new()
        .env("SUPPORTBOT__OPENAI__MODEL", "7")
        .env("SUPPORTBOT__TELEGRAM__TOKEN", "123456")
        .env("SUPPORTBOT__DISCORD__APPLICATION_ID", "1234567890")
        .env("SUPPORTBOT__SEARCH__RRF_K", "10")
        .env("SUPPORTBOT__STORE__COLLECTION", "true");
    let s = f.settings();
    assert_eq!(s.openai.model, "7");
    assert_eq!(s.telegram.token.as_ref().map(|t| t.expose()), Some("123456"));
    assert_eq!(s.discord.application_id, Some(1_234_567_890));
    assert_eq!(s.search.rrf_k, 10.0);
    assert_eq!(s.store.collection, "true");
}

#[test]
fn relative_paths_resolve_against_file_dir_in_file_and_cwd_in_env() {
    let f = Fixture::new().explicit("conf/sb.toml");
    let file = f.write(
        "conf/sb.toml",
        r#"
        [store]
        path = "index"
        [embedding]
        model_dir = "../models/minilm"
        [[sources]]
        name = "docs"
        path = "docs"
        "#,
    );
    let conf = f.cwd().join("conf");
    let loaded = f.load();
    assert_eq!(loaded.file, Some(file));
    let s = loaded.settings;
    assert_eq!(s.store.path, conf.join("index"));
    assert_eq!(s.embedding.model_dir, conf.join("../models/minilm"));
    assert_eq!(s.sources[0].path, conf.join("docs"));
    // Not set anywhere: defaults.
    assert_eq!(s.local.model_path, f.data_dir().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"));

    let f = f
        .env("SUPPORTBOT__STORE__PATH", "index")
        .env("SUPPORTBOT__LOCAL__MODEL_PATH", "m/model.gguf")
        .env("SUPPORTBOT__SOURCES", r#"[{name = "env-docs", path = "docs"}]"#);
    let s = f.settings();
    assert_eq!(s.store.path, f.cwd().join("index"));
    assert_eq!(s.local.model_path, f.cwd().join("m/model.gguf"));
    assert_eq!(s.sources[0].name, "env-docs");
    assert_eq!(s.sources[0].path, f.cwd().join("docs"));
    // The file value still applies where the environment is silent.
    assert_eq!(s.embedding.model_dir, conf.join("../models/minilm"));
    for path in [&s.store.path, &s.embedding.model_dir, &s.local.model_path] {
        assert!(path.is_absolute(), "{}", path.display());
    }
}

#[test]
fn unknown_key_in_file_names_key_and_file() {
    let f = Fixture::new();
    let path = f.write("supportbot.toml", "[store]\npathh = \"/x\"\n");
    let err = f.error();
    let msg = err.to_string();
    assert_contains(&msg, &["store.pathh", &path.display().to_string(), "path"]);
    let [e] = err.key_errors() else { panic!("{err:?}") };
    assert_eq!(e.key, "store.pathh");
    assert_eq!(e.origin, Origin::File(path));
}

#[test]
fn unknown_section_in_file() {
    let f = Fixture::new();
    f.write("supportbot.toml", "[stores]\npath = \"/x\"\n");
    assert_contains(&f.error().to_string(), &["stores", "unknown key", "store"]);
}

#[test]
fn unknown_key_via_env_names_variable() {
    let f = Fixture::new().env("SUPPORTBOT__STORE__PATHH", "/x");
    // A file that also has a [store] table must not get the blame.
    f.write("supportbot.toml", "[store]\ncollection = \"kb\"\n");
    let err = f.error();
    assert_contains(&err.to_string(), &["store.pathh", "environment variable SUPPORTBOT__STORE__PATHH"]);
    assert!(!err.to_string().contains("supportbot.toml"), "{err}");
    assert_eq!(err.key_errors()[0].origin, Origin::Env("SUPPORTBOT__STORE__PATHH".into()));
}

#[test]
fn malformed_env_name_is_an_error() {
    let f = Fixture::new().env("SUPPORTBOT__STORE__", "/x");
    assert_contains(&f.error().to_string(), &["SUPPORTBOT__STORE__", "malformed"]);
}

#[test]
fn wrong_type_names_key_and_expected_type() {
    let f = Fixture::new();
    let path = f.write("supportbot.toml", "[search]\ndense_weight = \"heavy\"\n");
    assert_contains(&f.error().to_string(), &["search.dense_weight", "f32", "heavy", &path.display().to_string()]);

    let f = Fixture::new().env("SUPPORTBOT__SEARCH__LIMIT", "many");
    assert_contains(&f.error().to_string(), &["search.limit", "usize", "SUPPORTBOT__SEARCH__LIMIT"]);

    let f = Fixture::new().env("SUPPORTBOT__LLM__CHAIN", "gemini");
    assert_contains(&f.error().to_string(), &["llm.chain", "sequence", "SUPPORTBOT__LLM__CHAIN"]);

    // An unknown fusion method names the key and the two it accepts.
    let f = Fixture::new().env("SUPPORTBOT__SEARCH__FUSION", "average");
    assert_contains(&f.error().to_string(), &["search.fusion", "average", "scores", "ranks"]);
}

#[test]
fn reciprocal_rank_fusion_can_be_chosen_back() {
    let f = Fixture::new();
    f.write("supportbot.toml", "[search]\nfusion = \"ranks\"\nbm25_weight = 0.5\n");
    let s = f.settings();
    assert_eq!(s.search.fusion, supportbot_config::FusionMethod::Ranks);
    assert_eq!(s.search.bm25_weight, 0.5);
    let f = Fixture::new().env("SUPPORTBOT__SEARCH__FUSION", "ranks");
    assert_eq!(f.settings().search.fusion, supportbot_config::FusionMethod::Ranks);
}

#[test]
fn missing_source_field_names_it() {
    let f = Fixture::new();
    f.write("supportbot.toml", "[[sources]]\nname = \"docs\"\n");
    assert_contains(&f.error().to_string(), &["sources[0].path", "missing required key"]);
}

#[test]
fn errors_from_several_layers_are_all_reported() {
    let f = Fixture::new().env("SUPPORTBOT__WEB__LISTENN", "x");
    f.write("supportbot.toml", "[ingest]\nchunk_tokens = -1\n");
    let err = f.error();
    let keys: Vec<&str> = err.key_errors().iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["ingest.chunk_tokens", "web.listenn"], "{err}");
}

#[test]
fn missing_explicit_file_names_path() {
    let f = Fixture::new().explicit("nope/sb.toml");
    let err = f.error();
    let expected = f.cwd().join("nope/sb.toml");
    assert!(matches!(&err, ConfigError::FileNotFound { path } if *path == expected), "{err:?}");
    assert_contains(&err.to_string(), &[&expected.display().to_string()]);
}

#[test]
fn syntax_error_names_file_and_line_but_not_the_line_text() {
    let f = Fixture::new();
    let path = f.write(
        "supportbot.toml",
        "[telegram]\napi_url = \"https://api.telegram.org\"\ntoken = \"sekrit-unterminated\n",
    );
    let msg = f.error().to_string();
    assert_contains(&msg, &[&path.display().to_string(), "line 3"]);
    assert!(!msg.contains("sekrit"), "{msg}");
}

#[test]
fn invalid_url_names_key_and_origin() {
    let f = Fixture::new();
    let path = f.write("supportbot.toml", "[gemini]\nbase_url = \"not a url\"\n");
    assert_contains(&f.error().to_string(), &["gemini.base_url", &path.display().to_string(), "URL"]);

    let f = Fixture::new().env("SUPPORTBOT__STORE__QDRANT_URL", "localhost:6334");
    assert_contains(&f.error().to_string(), &["store.qdrant_url", "SUPPORTBOT__STORE__QDRANT_URL", "scheme"]);

    let f = Fixture::new();
    f.write(
        "supportbot.toml",
        "[[sources]]\nname = \"a\"\npath = \"a\"\n[[sources]]\nname = \"b\"\npath = \"b\"\nurl = \"::\"\n",
    );
    assert_contains(&f.error().to_string(), &["sources[1].url"]);
}

#[test]
fn semantic_errors_name_keys() {
    let f = Fixture::new().env("SUPPORTBOT__WEB__LISTEN", "localhost").env("SUPPORTBOT__SEARCH__LIMIT", "0");
    let path = f.write(
        "supportbot.toml",
        r#"
        [llm]
        chain = ["gemini", "gpt-5"]
        [search]
        cjk_dense_weight = -1.0
        [[sources]]
        name = "docs"
        path = "a"
        [[sources]]
        name = "docs"
        path = "b"
        "#,
    );
    let err = f.error();
    let found: Vec<(String, Origin)> = err.key_errors().iter().map(|e| (e.key.clone(), e.origin.clone())).collect();
    let file = Origin::File(path);
    assert_eq!(
        found,
        [
            ("llm.chain[1]".to_owned(), file.clone()),
            ("search.cjk_dense_weight".to_owned(), file.clone()),
            ("search.limit".to_owned(), Origin::Env("SUPPORTBOT__SEARCH__LIMIT".into())),
            ("sources[1].name".to_owned(), file),
            ("web.listen".to_owned(), Origin::Env("SUPPORTBOT__WEB__LISTEN".into())),
        ],
        "{err}"
    );
    assert_contains(&err.to_string(), &["gpt-5", "duplicate source name `docs`"]);
}

const SECRETS: [&str; 8] = [
    "store-key-0001",
    "gemini-key-0002",
    "openai-key-0003",
    "telegram-token-0004",
    "webhook-secret-0005",
    "discord-token-0006",
    "metrics-token-0007",
    "user-salt-0008",
];

fn fixture_with_all_secrets() -> Fixture {
    let f = Fixture::new()
        .env("SUPPORTBOT__TELEGRAM__TOKEN", SECRETS[3])
        .env("SUPPORTBOT__TELEGRAM__WEBHOOK_SECRET", SECRETS[4])
        .env("SUPPORTBOT__DISCORD__TOKEN", SECRETS[5])
        .env("SUPPORTBOT__WEB__METRICS_TOKEN", SECRETS[6])
        .env("SUPPORTBOT__REVIEW__USER_SALT", SECRETS[7]);
    f.write(
        "supportbot.toml",
        &format!(
            r#"
            [store]
            qdrant_url = "http://localhost:6334"
            api_key = "{}"
            [gemini]
            api_key = "{}"
            [openai]
            base_url = "http://localhost:11434/v1"
            api_key = "{}"
            [review]
            database_url = "postgres://bot:db-password-0009@db.internal:5432/review"
            "#,
            SECRETS[0], SECRETS[1], SECRETS[2]
        ),
    );
    f
}

#[test]
fn secrets_are_loaded_but_not_in_debug() {
    let loaded = fixture_with_all_secrets().load();
    let s = &loaded.settings;
    let exposed = [
        s.store.api_key.as_ref(),
        s.gemini.api_key.as_ref(),
        s.openai.api_key.as_ref(),
        s.telegram.token.as_ref(),
        s.telegram.webhook_secret.as_ref(),
        s.discord.token.as_ref(),
        s.web.metrics_token.as_ref(),
        s.review.user_salt.as_ref(),
    ]
    .map(|secret| secret.map(|x| x.expose().to_owned()).unwrap_or_default());
    assert_eq!(exposed, SECRETS);
    assert_eq!(s.review.database_url.expose(), "postgres://bot:db-password-0009@db.internal:5432/review");

    for debug in [format!("{s:?}"), format!("{s:#?}"), format!("{loaded:?}")] {
        for secret in SECRETS.iter().chain(&["db-password-0009"]) {
            assert!(!debug.contains(secret), "{secret} leaked into Debug");
        }
        assert_contains(&debug, &["[redacted]", "bot:[redacted]@db.internal"]);
    }
    assert_eq!(s.effective_chain(), ["gemini", "openai", "extractive"]);
}

#[test]
fn redacted_toml_hides_secrets() {
    let s = fixture_with_all_secrets().settings();
    let out = s.to_redacted_toml();
    for secret in SECRETS.iter().chain(&["db-password-0009"]) {
        assert!(!out.contains(secret), "{secret} leaked into:\n{out}");
    }
    assert_contains(
        &out,
        &[
            "api_key = \"[redacted]\"",
            "token = \"[redacted]\"",
            "postgres://bot:[redacted]@db.internal:5432/review",
            "qdrant_url = \"http://localhost:6334\"",
        ],
    );
    // It is valid TOML with the effective values.
    let table: toml::Table = toml::from_str(&out).expect("valid TOML");
    assert_eq!(table["search"]["limit"].as_integer(), Some(5));
}

#[test]
fn redacted_toml_omits_unset_secrets() {
    let f = Fixture::new();
    let out = f.settings().to_redacted_toml();
    assert!(!out.contains("api_key"), "{out}");
    assert!(!out.contains("[redacted]"), "{out}");
    assert_contains(&out, &["[store]", "[web]", "listen = \"127.0.0.1:8080\"", "sqlite://.supportbot/review.sqlite"]);
}

#[test]
fn database_url_password_is_redacted_everywhere() {
    let f =
        Fixture::new().env("SUPPORTBOT__REVIEW__DATABASE_URL", "postgres://bot:pw-xyz-42@db/review?sslmode=require");
    let s = f.settings();
    assert_eq!(s.review.database_url.expose(), "postgres://bot:pw-xyz-42@db/review?sslmode=require");
    let debug = format!("{s:?}");
    let toml = s.to_redacted_toml();
    for out in [&debug, &toml, &s.review.database_url.to_string()] {
        assert!(!out.contains("pw-xyz-42"), "{out}");
        assert_contains(out, &["postgres://bot:[redacted]@db/review?sslmode=require"]);
    }
}

#[test]
fn wrongly_typed_secrets_are_not_echoed_in_errors() {
    let cases = [
        ("[telegram]\ntoken = 987654321\n", "telegram.token", "987654321"),
        ("[review]\nuser_salt = [\"salty-0010\"]\n", "review.user_salt", "salty-0010"),
        ("[review]\ndatabase_url = 31337\n", "review.database_url", "31337"),
        ("[web]\nmetrics_token = 2.71828\n", "web.metrics_token", "2.71828"),
    ];
    for (text, key, secret) in cases {
        let f = Fixture::new();
        f.write("supportbot.toml", text);
        let err = f.error();
        let msg = format!("{err} {err:?}");
        assert_contains(&msg, &[key, "expected a string", "redacted"]);
        assert!(!msg.contains(secret), "{secret} leaked into: {msg}");
    }
}

#[test]
fn effective_chain_follows_configuration() {
    let chain = |f: Fixture| f.settings().effective_chain();
    assert_eq!(chain(Fixture::new()), ["extractive"]);
    assert_eq!(chain(Fixture::new().env("SUPPORTBOT__GEMINI__API_KEY", "k")), ["gemini", "extractive"]);
    assert_eq!(
        chain(Fixture::new().env("SUPPORTBOT__OPENAI__BASE_URL", "http://localhost:11434/v1")),
        ["openai", "extractive"]
    );
    assert_eq!(
        chain(Fixture::new().env("SUPPORTBOT__GEMINI__API_KEY", "k").env("SUPPORTBOT__LLM__CHAIN", r#"["local"]"#)),
        ["local", "extractive"]
    );
    assert_eq!(
        chain(Fixture::new().env("SUPPORTBOT__LLM__CHAIN", r#"["extractive", "local"]"#)),
        ["extractive", "local"]
    );
}
