//! Configuration errors: each names the key, where its value came from, and what was expected.

use std::fmt;
use std::path::PathBuf;

use figment::error::{Actual, Kind};
use figment::{Metadata, Source};

/// Keys whose values are secrets: never echoed in error messages.
pub(crate) const SECRET_KEYS: [&str; 9] = [
    "store.api_key",
    "gemini.api_key",
    "openai.api_key",
    "telegram.token",
    "telegram.webhook_secret",
    "discord.token",
    "web.metrics_token",
    "review.user_salt",
    "review.database_url",
];

/// Where a configuration value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The TOML file at this path.
    File(PathBuf),
    /// The named environment variable.
    Env(String),
    /// The built-in defaults.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "config file {}", path.display()),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Default => f.write_str("built-in defaults"),
        }
    }
}

impl Origin {
    /// The origin recorded in a figment provider's metadata (see `crate::load`):
    /// files carry [`Source::File`], environment variables [`Source::Custom`]
    /// with the variable name, and the defaults no source at all.
    pub(crate) fn from_metadata(metadata: Option<&Metadata>) -> Origin {
        match metadata.and_then(|m| m.source.as_ref()) {
            Some(Source::File(path)) => Origin::File(path.clone()),
            Some(Source::Custom(var)) => Origin::Env(var.clone()),
            _ => Origin::Default,
        }
    }
}

/// A problem with one configuration key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyError {
    /// Full path of the key, e.g. `store.path` or `sources[1].url`.
    pub key: String,
    /// Where the offending value came from.
    pub origin: Origin,
    /// What is wrong and what was expected. Never contains a secret value.
    pub message: String,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` (from {}): {}", self.key, self.origin, self.message)
    }
}

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file given with `--config` does not exist.
    #[error("config file {} does not exist", path.display())]
    FileNotFound {
        /// The path as resolved against the working directory.
        path: PathBuf,
    },
    /// The config file exists but could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML.
    #[error("config file {}: invalid TOML at line {line}, column {column}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column (in characters) of the error.
        column: usize,
        /// The parser's description (without the offending source line).
        message: String,
    },
    /// One or more keys are unknown, of the wrong type, or have invalid values.
    #[error("{}", display_key_errors(.0))]
    Invalid(Vec<KeyError>),
}

impl ConfigError {
    /// The per-key problems, if this is [`ConfigError::Invalid`].
    pub fn key_errors(&self) -> &[KeyError] {
        match self {
            ConfigError::Invalid(errors) => errors,
            _ => &[],
        }
    }
}

fn display_key_errors(errors: &[KeyError]) -> String {
    match errors {
        [single] => format!("invalid configuration: {single}"),
        _ => {
            let mut out = format!("invalid configuration ({} problems):", errors.len());
            for e in errors {
                out.push_str("\n  - ");
                out.push_str(&e.to_string());
            }
            out
        }
    }
}

/// Is `key` a secret, or inside one (e.g. an element of a mis-typed secret)?
pub(crate) fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS.iter().any(|s| key == *s || key.strip_prefix(s).is_some_and(|rest| rest.starts_with(['.', '['])))
}

/// Renders figment's path segments as `a.b[3].c`.
fn render_path<S: AsRef<str>>(segments: &[S]) -> String {
    let mut out = String::new();
    for segment in segments {
        let segment = segment.as_ref();
        if !out.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(segment);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

/// Converts every error in a figment error chain into [`KeyError`]s,
/// re-rendering messages so secret values are never echoed.
pub(crate) fn from_figment(error: figment::Error) -> Vec<KeyError> {
    error.into_iter().map(convert_one).collect()
}

fn convert_one(error: figment::Error) -> KeyError {
    let origin = Origin::from_metadata(error.metadata.as_ref());
    let mut path = error.path.clone();
    // For a missing field, figment's path is the containing table.
    if let Kind::MissingField(field) = &error.kind {
        path.push(field.to_string());
    }
    let key = render_path(&path);
    let key = if key.is_empty() { "<root>".to_owned() } else { key };
    let secret = is_secret_key(&key);
    let message = describe(&error.kind, secret);
    KeyError { key, origin, message }
}

fn describe(kind: &Kind, secret: bool) -> String {
    let actual = |a: &Actual| describe_actual(a, secret);
    match kind {
        // A custom message at a secret key might quote the value: keep none of it.
        Kind::Message(_) if secret => "invalid value (details withheld because the value is secret)".to_owned(),
        Kind::Message(msg) => msg.clone(),
        Kind::InvalidType(a, expected) => {
            format!("expected {}, found {}", expected_type(expected), actual(a))
        }
        Kind::InvalidValue(a, expected) => {
            format!("invalid value {}, expected {expected}", actual(a))
        }
        Kind::InvalidLength(len, expected) => {
            format!("invalid length {len}, expected {expected}")
        }
        Kind::UnknownVariant(v, expected) => {
            format!("unknown value `{v}`, expected one of {}", one_of(expected))
        }
        Kind::UnknownField(_, expected) => {
            format!("unknown key, expected one of {}", one_of(expected))
        }
        Kind::MissingField(_) => "missing required key".to_owned(),
        Kind::DuplicateField(_) => "key given more than once".to_owned(),
        Kind::ISizeOutOfRange(_) | Kind::USizeOutOfRange(_) => "integer out of range".to_owned(),
        Kind::Unsupported(a) => format!("unsupported value {}", actual(a)),
        Kind::UnsupportedKey(a, expected) => {
            format!("unsupported key type {}, expected {expected}", actual(a))
        }
    }
}

/// serde names tables after the Rust struct (`struct StoreSettings`): say "a table".
fn expected_type(expected: &str) -> &str {
    if expected.starts_with("struct ") { "a table" } else { expected }
}

fn one_of(expected: &[&str]) -> String {
    if expected.is_empty() {
        return "(none: this table takes no keys)".to_owned();
    }
    expected.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ")
}

fn describe_actual(actual: &Actual, secret: bool) -> String {
    if !secret {
        return actual.to_string();
    }
    let kind = match actual {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a float",
        Actual::Char(_) | Actual::Str(_) => "a string",
        Actual::Bytes(_) => "bytes",
        Actual::Seq => "an array",
        Actual::Map => "a table",
        _ => "a value",
    };
    format!("{kind} (value redacted)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_with_indices() {
        assert_eq!(render_path(&["store", "path"]), "store.path");
        assert_eq!(render_path(&["sources", "1", "url"]), "sources[1].url");
        assert_eq!(render_path::<&str>(&[]), "");
    }

    #[test]
    fn secret_keys() {
        assert!(is_secret_key("gemini.api_key"));
        assert!(is_secret_key("review.database_url"));
        assert!(is_secret_key("telegram.token[0]"));
        assert!(!is_secret_key("gemini.api_keys"));
        assert!(!is_secret_key("gemini.base_url"));
    }

    #[test]
    fn secret_values_are_not_described() {
        let kind = Kind::InvalidType(Actual::Str("hunter2".into()), "a string".into());
        let msg = describe(&kind, true);
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(msg.contains("expected a string"), "{msg}");
        assert!(describe(&kind, false).contains("hunter2"));
    }
}
