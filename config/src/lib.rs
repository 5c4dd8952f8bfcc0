//! Typed supportbot settings: layered loading (defaults, TOML file, environment), validation, redaction.
//!
//! The binary builds a [`LoadContext`] from the process (working directory,
//! data directory, environment, `--config`) and calls [`load`]:
//!
//! ```no_run
//! # fn main() -> Result<(), supportbot_config::ConfigError> {
//! use supportbot_config::{LoadContext, load};
//! let ctx = LoadContext {
//!     cwd: std::env::current_dir().expect("cwd"),
//!     data_dir: "/home/me/.local/share/supportbot".into(),
//!     env: std::env::vars().collect(),
//!     explicit_file: None,
//! };
//! let loaded = load(&ctx)?;
//! println!("{}", loaded.settings.to_redacted_toml());
//! # Ok(())
//! # }
//! ```

mod error;
mod load;
mod secret;
mod settings;
mod validate;

pub use error::{ConfigError, KeyError, Origin};
pub use load::{DEFAULT_FILE_NAME, ENV_PREFIX, LoadContext, Loaded, data_dir, load};
pub use secret::{DatabaseUrl, REDACTED, Secret};
pub use settings::{
    AnswerSettings, DiscordSettings, EXTRACTIVE, EmbeddingSettings, FusionMethod, GeminiSettings, IngestSettings,
    KNOWN_BACKENDS, LimitSettings, LlmSettings, LocalSettings, Multilingual, OpenAiSettings, ReviewSettings,
    SearchSettings, Settings, SourceSettings, StoreSettings, TelegramSettings, WebSettings,
};
