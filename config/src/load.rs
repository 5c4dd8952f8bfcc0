//! Layered loading: built-in defaults, then the TOML file, then `SUPPORTBOT__*` variables.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use figment::providers::Serialized;
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};

use crate::error::{ConfigError, KeyError, Origin, from_figment};
use crate::settings::Settings;
use crate::validate::validate;

/// The file read from the working directory when no `--config` is given.
pub const DEFAULT_FILE_NAME: &str = "supportbot.toml";

/// Prefix of the environment variables that override settings:
/// `SUPPORTBOT__<SECTION>__<KEY>`.
pub const ENV_PREFIX: &str = "SUPPORTBOT__";

/// Everything [`load`] needs from the process; the library reads neither the
/// environment nor the working directory itself.
#[derive(Clone, Debug, Default)]
pub struct LoadContext {
    /// The working directory (absolute). `supportbot.toml` is looked up here, and
    /// relative paths from variables and defaults resolve against it.
    pub cwd: PathBuf,
    /// Where `scripts/setup` puts model assets; see [`data_dir`].
    pub data_dir: PathBuf,
    /// The process environment. Only `SUPPORTBOT__*` variables are used.
    pub env: Vec<(String, String)>,
    /// The file given with `--config`, if any (relative to `cwd`). It must exist.
    pub explicit_file: Option<PathBuf>,
}

/// Where `scripts/setup` installs model assets, by the same rule as the script:
/// `$SUPPORTBOT_DATA`, else `$XDG_DATA_HOME/supportbot`, else `$HOME/.local/share/supportbot`
/// (empty variables count as unset). `var` reads one environment variable, e.g.
/// `|k| std::env::var_os(k)`.
pub fn data_dir(var: impl Fn(&str) -> Option<OsString>) -> PathBuf {
    let set = |k: &str| var(k).filter(|v| !v.is_empty());
    if let Some(d) = set("SUPPORTBOT_DATA") {
        return PathBuf::from(d);
    }
    // The XDG rules ignore a relative XDG_DATA_HOME, as scripts/setup does.
    match set("XDG_DATA_HOME").filter(|d| Path::new(d).is_absolute()) {
        Some(d) => PathBuf::from(d).join("supportbot"),
        None => PathBuf::from(var("HOME").unwrap_or_default()).join(".local/share/supportbot"),
    }
}

/// The result of [`load`].
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The effective, validated settings; all paths are absolute.
    pub settings: Settings,
    /// The (absolute) config file that was read, if any.
    pub file: Option<PathBuf>,
}

/// Loads settings: built-in defaults, overridden by the config file, overridden
/// by `SUPPORTBOT__<SECTION>__<KEY>` variables; then validates them.
///
/// The file is `ctx.explicit_file` if given (an error if it does not exist),
/// else `<cwd>/supportbot.toml` if it exists. Variable values are parsed as
/// TOML-like literals (`8`, `0.5`, `true`, `["a", "b"]`), falling back to the
/// plain text when the key expects a string. Relative paths in the file
/// resolve against the file's directory; those from variables and defaults
/// against `ctx.cwd`.
pub fn load(ctx: &LoadContext) -> Result<Loaded, ConfigError> {
    let defaults = Serialized::defaults(Settings::defaults(&ctx.cwd, &ctx.data_dir));
    let file = read_file(ctx)?;
    let mut errors: Vec<KeyError> = Vec::new();

    // Check each layer on its own (over the defaults) first, so every error is
    // attributed to exactly the file or variable that caused it.
    if let Some(file) = &file
        && let Err(e) = Figment::from(&defaults).merge(file).extract::<Settings>()
    {
        errors.extend(from_figment(e));
    }
    let mut env_layers = Vec::new();
    for (name, value) in env_vars(&ctx.env) {
        match env_layer(&defaults, name, value) {
            Ok(layer) => env_layers.push(layer),
            Err(e) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        return Err(ConfigError::Invalid(errors));
    }

    let mut figment = Figment::from(&defaults);
    if let Some(file) = &file {
        figment = figment.merge(file);
    }
    for layer in &env_layers {
        figment = figment.merge(layer);
    }
    let mut settings: Settings = figment.extract().map_err(|e| ConfigError::Invalid(from_figment(e)))?;

    for path in settings.paths_mut() {
        if path.is_relative() {
            *path = ctx.cwd.join(&*path);
        }
    }

    let errors = validate(&settings, |key| Origin::from_metadata(figment.find_metadata(key)));
    if !errors.is_empty() {
        return Err(ConfigError::Invalid(errors));
    }

    Ok(Loaded { settings, file: file.map(|f| f.path) })
}

/// One source of values: the file, or a single environment variable.
struct Layer {
    metadata: Metadata,
    dict: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// The parsed config file.
struct FileLayer {
    path: PathBuf,
    layer: Layer,
}

impl Provider for FileLayer {
    fn metadata(&self) -> Metadata {
        self.layer.metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.layer.data()
    }
}

/// Reads and parses the config file, if there is one.
///
/// The file is parsed here rather than by figment's `Toml` provider so that
/// (a) figment does not search parent directories, and (b) syntax errors are
/// reported without the offending source line, which could hold a secret.
fn read_file(ctx: &LoadContext) -> Result<Option<FileLayer>, ConfigError> {
    let (path, required) = match &ctx.explicit_file {
        Some(p) => (ctx.cwd.join(p), true),
        None => (ctx.cwd.join(DEFAULT_FILE_NAME), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound && required => {
            return Err(ConfigError::FileNotFound { path });
        }
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ConfigError::ReadFile { path, source }),
    };
    let dict: Dict = toml::from_str(&text).map_err(|e| {
        let (line, column) = e.span().map(|span| line_column(&text, span.start)).unwrap_or((1, 1));
        ConfigError::Syntax { path: path.clone(), line, column, message: e.message().trim().replace('\n', "; ") }
    })?;
    let metadata = Metadata::from("config file", Source::File(path.clone()));
    Ok(Some(FileLayer { path, layer: Layer { metadata, dict } }))
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The `SUPPORTBOT__*` variables, sorted by name so that overlapping ones
/// (`SUPPORTBOT__STORE` and `SUPPORTBOT__STORE__PATH`) apply in a fixed order,
/// the more specific last.
fn env_vars(env: &[(String, String)]) -> Vec<(&str, &str)> {
    let mut vars: Vec<(&str, &str)> =
        env.iter().filter(|(name, _)| name.starts_with(ENV_PREFIX)).map(|(n, v)| (n.as_str(), v.as_str())).collect();
    vars.sort();
    vars
}

/// Turns one variable into a layer, checking it against the settings schema
/// on its own.
///
/// The value is first parsed as a literal (`8`, `true`, `["a", "b"]`); if the
/// result does not fit the key but the plain text does (a numeric-looking
/// token for a string key, say), the plain text is used.
fn env_layer(defaults: &Serialized<Settings>, name: &str, raw: &str) -> Result<Layer, Vec<KeyError>> {
    let origin = || Origin::Env(name.to_owned());
    let rest = &name[ENV_PREFIX.len()..];
    let segments: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
    if segments.iter().any(String::is_empty) {
        return Err(vec![KeyError {
            key: segments.join("."),
            origin: origin(),
            message: format!("malformed variable name, expected {ENV_PREFIX}<SECTION>__<KEY>"),
        }]);
    }

    let metadata = Metadata::from(format!("environment variable {name}"), Source::Custom(name.to_owned()));
    let layer = |value: Value| Layer { metadata: metadata.clone(), dict: nest(&segments, value) };
    let check =
        |layer: &Layer| Figment::from(defaults).merge(layer).extract::<Settings>().map(|_| ()).map_err(from_figment);

    let Ok(parsed) = raw.parse::<Value>();
    let is_plain_text = matches!(&parsed, Value::String(_, s) if s == raw);
    let first = layer(parsed);
    match check(&first) {
        Ok(()) => Ok(first),
        Err(errors) => {
            if !is_plain_text {
                let text = layer(Value::from(raw.to_owned()));
                if check(&text).is_ok() {
                    return Ok(text);
                }
            }
            Err(errors)
        }
    }
}

/// `["store", "path"]`, `v` → `{store = {path = v}}`.
fn nest(segments: &[String], value: Value) -> Dict {
    let mut value = value;
    for key in segments.iter().skip(1).rev() {
        let mut dict = Dict::new();
        dict.insert(key.clone(), value);
        value = Value::from(dict);
    }
    let mut root = Dict::new();
    if let Some(first) = segments.first() {
        root.insert(first.clone(), value);
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example_path() -> PathBuf {
        // Read at run time: cargo reuses a test binary built in another checkout of the same
        // target directory, and a path compiled in would point into that checkout.
        let dir =
            std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from);
        dir.join("supportbot.example.toml")
    }

    #[test]
    fn data_dir_follows_the_setup_script() {
        fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
            move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| OsString::from(v))
        }
        let home = [("HOME", "/home/a")];
        assert_eq!(data_dir(vars(&home)), Path::new("/home/a/.local/share/supportbot"));
        let xdg = [("HOME", "/home/a"), ("XDG_DATA_HOME", "/xdg")];
        assert_eq!(data_dir(vars(&xdg)), Path::new("/xdg/supportbot"));
        let chosen = [("HOME", "/home/a"), ("XDG_DATA_HOME", "/xdg"), ("SUPPORTBOT_DATA", "/opt/sb")];
        assert_eq!(data_dir(vars(&chosen)), Path::new("/opt/sb"), "SUPPORTBOT_DATA wins, as in scripts/setup");
        let relative = [("HOME", "/home/a"), ("XDG_DATA_HOME", "share")];
        assert_eq!(data_dir(vars(&relative)), Path::new("/home/a/.local/share/supportbot"), "relative is ignored");
        let empty = [("HOME", "/home/a"), ("XDG_DATA_HOME", ""), ("SUPPORTBOT_DATA", "")];
        assert_eq!(data_dir(vars(&empty)), Path::new("/home/a/.local/share/supportbot"), "empty means unset");
    }

    fn ctx_for(cwd: &Path, file: PathBuf) -> LoadContext {
        LoadContext { cwd: cwd.to_path_buf(), data_dir: cwd.join("share"), env: Vec::new(), explicit_file: Some(file) }
    }

    #[test]
    fn example_file_loads_and_matches_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let example = example_path();
        let loaded = match load(&ctx_for(dir.path(), example.clone())) {
            Ok(loaded) => loaded,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(loaded.file.as_deref(), Some(example.as_path()));
        // Apart from the sample source and the store path (relative to the
        // example's directory), the example shows the defaults.
        let mut settings = loaded.settings;
        assert_eq!(settings.sources.len(), 1);
        assert_eq!(settings.store.path, example.with_file_name(".supportbot/index"));
        settings.sources.clear();
        settings.store.path = dir.path().join(".supportbot/index");
        assert_eq!(settings, Settings::defaults(dir.path(), &dir.path().join("share")));
    }

    /// Every key is documented: uncommenting every `# key = value` line still
    /// loads, and then every optional key is set.
    #[test]
    fn example_file_with_everything_uncommented_loads() {
        let text = std::fs::read_to_string(example_path()).expect("example");
        let uncommented: String = text
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest)
                    if rest.split_once(" = ").is_some_and(|(k, _)| {
                        !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    }) =>
                {
                    rest
                }
                _ => line,
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("full.toml");
        std::fs::write(&file, uncommented).expect("write");
        let s = match load(&ctx_for(dir.path(), file)) {
            Ok(loaded) => loaded.settings,
            Err(e) => panic!("{e}"),
        };
        assert!(s.store.qdrant_url.is_some() && s.store.api_key.is_some());
        assert!(s.llm.chain.is_some());
        assert!(s.gemini.api_key.is_some());
        assert!(s.openai.base_url.is_some() && s.openai.api_key.is_some());
        assert!(s.telegram.token.is_some());
        assert!(s.telegram.webhook_url.is_some() && s.telegram.webhook_secret.is_some());
        assert!(s.discord.token.is_some() && s.discord.application_id.is_some());
        assert!(s.review.user_salt.is_some());
        assert!(s.web.metrics_token.is_some());
        assert!(s.sources.iter().all(|src| src.url.is_some() && !src.tags.is_empty()));
        assert_eq!(s.embedding.model_dir, Path::new("/opt/supportbot/models/all-MiniLM-L6-v2-int8-dynamic"));
        assert_eq!(s.local.model_path, Path::new("/opt/supportbot/models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    }

    #[test]
    fn line_column_counts_chars() {
        let text = "a = 1\nbé = x\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, text.find('x').unwrap_or(0)), (2, 6));
    }

    #[test]
    fn nest_builds_tables() {
        let dict = nest(&["a".into(), "b".into()], Value::from(1u8));
        let value = Value::from(dict);
        assert_eq!(value.find("a.b").and_then(|v| v.to_u128()), Some(1));
    }
}
