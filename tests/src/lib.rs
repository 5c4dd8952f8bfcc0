//! supportbot-tests: end-to-end tests across crates, and helpers shared by them: locating the
//! built binaries and the model assets, and running commands in a scratch working directory.

pub mod fakes;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Root of the repository. Cargo sets `CARGO_MANIFEST_DIR` when it runs a test, and that is read
/// first: cargo reuses a test binary built in another checkout sharing the target directory, and
/// the path compiled in would then point into that other checkout.
pub fn repo_root() -> PathBuf {
    let dir =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    dir.parent().expect("tests/ has a parent").to_path_buf()
}

/// The sample knowledge base.
pub fn examples_dir() -> PathBuf {
    repo_root().join("examples")
}

/// Where `scripts/setup` puts model assets (same rule as the binaries).
pub fn data_dir() -> PathBuf {
    supportbot_config::data_dir(|k| std::env::var_os(k))
}

/// True when the embedding model and ONNX Runtime are installed. When they are not, a test
/// that needs them prints why it is skipped, except under `CI=true`, where it fails.
pub fn assets_available(test: &str) -> bool {
    let d = data_dir();
    files_available(
        test,
        "model asset",
        &[d.join("models/all-MiniLM-L6-v2-int8-dynamic/model.onnx"), d.join("onnxruntime/libonnxruntime.so.1.31.1")],
    )
}

/// True when the multilingual model (`scripts/setup` builds it on AVX2 machines) is installed;
/// like [`assets_available`], a missing one skips the test, or fails it under `CI=true`.
pub fn multilingual_available(test: &str) -> bool {
    let dir = data_dir().join("models/multilingual-e5-small");
    files_available(test, "multilingual model file", &[dir.join("libe5.so"), dir.join("e5-small-q4.bin")])
}

/// Whether every file in `needed` exists; a missing one (a `what`) skips `test` with a message,
/// or fails it under `CI=true`.
fn files_available(test: &str, what: &str, needed: &[PathBuf]) -> bool {
    let Some(missing) = needed.iter().find(|p| !p.is_file()) else { return true };
    let msg = format!("{test}: {what} {} is missing; run scripts/setup", missing.display());
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED {msg}");
    false
}

/// Path of a workspace binary (`supportbot`, `supportbot-ingest`). `cargo test --workspace` builds
/// them because their packages have integration tests (`bots/tests`, `ingest/tests`).
pub fn bin(name: &str) -> PathBuf {
    // Test executables live in <target>/<profile>/deps; binaries one level up.
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target profile dir");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built; run the suite with `cargo test --workspace` (scripts/test)",
        path.display()
    );
    path
}

/// A scratch working directory with its own index; commands run inside it.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Default for Workspace {
    fn default() -> Self {
        Self::new()
    }
}

impl Workspace {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self { dir, env: Vec::new() }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The embedded index directory (default `store.path`).
    pub fn index_dir(&self) -> PathBuf {
        self.path().join(".supportbot/index")
    }

    /// Sets a `SUPPORTBOT__…` override for every later command.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_string(), value.to_string()));
    }

    /// A command for a workspace binary, in this directory, with a clean `SUPPORTBOT__*` environment.
    pub fn command(&self, binary: &str) -> Command {
        let mut cmd = Command::new(bin(binary));
        cmd.current_dir(self.path());
        for (k, _) in std::env::vars() {
            if k.starts_with("SUPPORTBOT__") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd
    }

    /// Runs a binary with arguments and returns its output.
    pub fn run(&self, binary: &str, args: &[&str]) -> Output {
        self.command(binary).args(args).output().expect("spawn")
    }

    /// `supportbot-ingest --json ARGS…`, parsed; panics with stderr on a fatal error (exit 2).
    pub fn ingest_json(&self, args: &[&str]) -> (i32, serde_json::Value) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run("supportbot-ingest", &all);
        let code = out.status.code().unwrap_or(-1);
        assert!(code == 0 || code == 1, "ingest failed ({code}): {}", String::from_utf8_lossy(&out.stderr));
        let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("ingest --json printed invalid JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))
        });
        (code, json)
    }

    /// The questions none of whose expected citations is in the top `k` results, one line each
    /// with what came instead.
    pub fn misses(&self, questions: &[LabelledQuestion], k: usize) -> Vec<String> {
        let mut misses = Vec::new();
        for q in questions {
            let got = self.citations(&q.q, k);
            if !got.iter().any(|c| q.expect.contains(c)) {
                misses.push(format!("{:?}: expected {:?}, got {:?}", q.q, q.expect, got));
            }
        }
        misses
    }

    /// `supportbot search --json QUESTION`, parsed.
    pub fn search(&self, question: &str, limit: usize) -> serde_json::Value {
        let out = self.run("supportbot", &["search", "--json", "--limit", &limit.to_string(), question]);
        assert!(out.status.success(), "search failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("search --json prints JSON")
    }

    /// Citations of a search, best first.
    pub fn citations(&self, question: &str, limit: usize) -> Vec<String> {
        self.search(question, limit)["results"]
            .as_array()
            .expect("results array")
            .iter()
            .map(|r| r["citation"].as_str().expect("citation").to_string())
            .collect()
    }
}

/// Copies a directory tree (for tests that edit a knowledge base).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// One line of `examples/questions.jsonl`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct LabelledQuestion {
    pub q: String,
    #[serde(default)]
    pub expect: Vec<String>,
    #[serde(default)]
    pub unanswerable: bool,
    #[serde(default)]
    pub lang: Option<String>,
}

/// The labelled questions in `lang` that the examples answer.
pub fn answerable_in(lang: &str) -> Vec<LabelledQuestion> {
    labelled_questions().into_iter().filter(|q| q.lang.as_deref() == Some(lang) && !q.unanswerable).collect()
}

pub fn labelled_questions() -> Vec<LabelledQuestion> {
    let text = std::fs::read_to_string(examples_dir().join("questions.jsonl")).expect("examples/questions.jsonl");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l}: {e}")))
        .collect()
}

/// Settings for in-process tests: built-in defaults with the model assets of `scripts/setup`,
/// the index in `index_dir`, and the working directory `cwd`.
pub fn test_settings(cwd: &Path, index_dir: &Path) -> supportbot_config::Settings {
    let mut s = supportbot_config::Settings::defaults(cwd, &data_dir());
    s.store.path = index_dir.to_path_buf();
    s
}

/// The SQLite review store `supportbot serve` logs exchanges and feedback to, in a fresh file
/// under `dir`, with the default low-confidence threshold.
pub async fn review_store(dir: &Path) -> supportbot_core::review::SqlReviewStore {
    let url = format!("sqlite://{}", dir.join("review.sqlite").display());
    let low_confidence = supportbot_config::Settings::defaults(dir, &data_dir()).review.low_confidence;
    supportbot_core::review::SqlReviewStore::connect(&url, low_confidence).await.expect("review store")
}

/// An index of `examples/` (ingested by the real binary into a scratch directory) and an
/// in-process Answerer over it, with the default chain (extractive) unless `settings` says
/// otherwise. The returned `Workspace` keeps the index alive. `None` when the model assets are
/// missing (and not under `CI=true`, where that panics).
pub async fn examples_answerer(
    test: &str,
    configure: impl FnOnce(&mut supportbot_config::Settings),
) -> Option<(Workspace, supportbot_core::answer::Answerer)> {
    if !assets_available(test) {
        return None;
    }
    let ws = Workspace::new();
    let examples = examples_dir();
    let (code, summary) = ws.ingest_json(&[examples.to_str().expect("utf-8 path")]);
    assert_eq!(code, 0, "{summary}");
    let answerer = open_answerer(&ws, configure).await;
    Some((ws, answerer))
}

/// The in-process Answerer over the index of `workspace` (its settings from [`test_settings`],
/// then `configure`), wired as `supportbot serve` wires it.
pub async fn open_answerer(
    workspace: &Workspace,
    configure: impl FnOnce(&mut supportbot_config::Settings),
) -> supportbot_core::answer::Answerer {
    use std::sync::Arc;
    use supportbot_core::answer::memory::InMemoryMemory;
    use supportbot_core::wiring;

    let mut settings = test_settings(workspace.path(), &workspace.index_dir());
    configure(&mut settings);
    // As `serve` does: the index is opened for reading (it knows its own dimension), and the
    // model it records decides the models under `auto`.
    let store = wiring::open_store(&settings, None).await.expect("index");
    let meta = store.meta().await.expect("meta");
    let (s, recorded) = (settings.clone(), meta.as_ref().map(|m| m.embedding_model.clone()));
    let embedder = tokio::task::spawn_blocking(move || wiring::embedder(&s, recorded.as_deref()))
        .await
        .expect("join")
        .expect("embedder");
    if let Some(meta) = &meta {
        wiring::compatibility(embedder.model_id(), embedder.dimension()).check(meta).expect("compatible index");
    }
    let searcher = supportbot_core::search::Searcher::new(store, embedder, wiring::search_params(&settings));
    let (chain, unavailable) = wiring::model_chain(&settings, None);
    assert!(unavailable.is_empty(), "backends unavailable: {unavailable:?}");
    let memory = Arc::new(InMemoryMemory::new(wiring::memory_limits(&settings)));
    supportbot_core::answer::Answerer::new(
        searcher,
        chain,
        memory,
        wiring::answer_config(&settings),
        wiring::root_urls(&settings, meta.as_ref()),
    )
}
