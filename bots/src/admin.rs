//! Operator and review-store commands of `supportbot`: console accounts (`operator add|list|remove`),
//! API tokens (`token create`), retention, export and erasure in the answer log
//! (`review purge|export|erase-user`) and the curated answers as an FAQ file (`curated export`).

use std::io::{BufRead as _, IsTerminal as _, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};
use serde::Serialize;
use supportbot_config::Settings;
use supportbot_core::log::{Exchange, Feedback, FeedbackKind, pseudonymize};
use supportbot_core::review::{Operator, Role, SqlReviewStore, now_secs};

use crate::web::auth::{hash_password, new_token, token_hash};
use crate::web::ops::csv_field;

/// The shortest password `operator add` accepts, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Add an account, or give an existing one a new password and role.
    ///
    /// The password (at least 10 characters) is read from standard input (one line) or, on a
    /// terminal, prompted for twice without echo.
    Add {
        /// The name to sign in with.
        username: String,
        /// `viewer` (reads the queue and dashboard), `operator` (also acts on the queue and curated
        /// answers) or `admin` (also manages accounts and tokens).
        #[arg(long, default_value = "operator", value_parser = parse_role)]
        role: Role,
    },
    /// List the accounts with their roles.
    List,
    /// Delete an account with its sessions and API tokens.
    Remove {
        /// The account to delete.
        username: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token acting as an operator; it is printed once and only its hash is stored.
    Create {
        /// What the token is for (e.g. `ci` or `helpdesk-sync`).
        name: String,
        /// The operator the token acts as (with that operator's role).
        #[arg(long = "user", value_name = "USERNAME")]
        user: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// Delete exchanges (with their feedback, queue items and operator actions) older than DAYS.
    Purge {
        /// Age in days; exchanges logged before now minus DAYS go.
        #[arg(long = "older-than", value_name = "DAYS")]
        older_than: u32,
    },
    /// Write every exchange with its feedback (JSON lines, or CSV with a header).
    Export {
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        /// Write to FILE (created with owner-only permissions) instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Delete everything logged about one user: their exchanges and their feedback.
    EraseUser {
        /// `PLATFORM:ID` as the platform knows the user (e.g. `telegram:218485655`,
        /// `discord:80351110224678912`), or a pseudonymous id `u_…` as the console shows it.
        user_id: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line: the exchange with a `feedback` array.
    Jsonl,
    /// RFC 4180 CSV with a header row.
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum CuratedCommand {
    /// Write the active curated answers as an FAQ CSV (`question,answer,url,tags`) that
    /// `supportbot-ingest` reads.
    Export {
        /// Write to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("unknown role `{s}`: use viewer, operator or admin"))
}

/// The review store of the settings, and where it is (password redacted) for messages.
async fn open(settings: &Settings) -> anyhow::Result<(SqlReviewStore, String)> {
    let location = settings.review.database_url.redacted();
    let store = SqlReviewStore::connect(settings.review.database_url.expose(), settings.review.low_confidence)
        .await
        .with_context(|| format!("opening the review store {location} (review.database_url)"))?;
    Ok((store, location))
}

pub async fn operator(settings: &Settings, command: OperatorCommand) -> anyhow::Result<ExitCode> {
    match command {
        OperatorCommand::Add { username, role } => {
            check_username(&username)?;
            let password = read_password(&username).await?;
            check_password(&password)?;
            let (store, location) = open(settings).await?;
            let existed = store.operator(&username).await?.is_some();
            let password_hash = hash_password(&password)?;
            store
                .put_operator(&Operator { username: username.clone(), password_hash, role })
                .await
                .with_context(|| format!("saving operator {username} in {location}"))?;
            let verb = if existed { "updated" } else { "added" };
            println!("{verb} operator {username} ({}) in {location}", role.as_str());
        }
        OperatorCommand::List => {
            let (store, location) = open(settings).await?;
            let operators = store.list_operators().await?;
            if operators.is_empty() {
                eprintln!("no operators in {location}: add one with `supportbot operator add USERNAME`");
            } else {
                let width = operators.iter().map(|o| o.username.chars().count()).max().unwrap_or(0).max(8);
                println!("{:<width$}  ROLE", "USERNAME");
                for o in &operators {
                    println!("{:<width$}  {}", o.username, o.role.as_str());
                }
            }
        }
        OperatorCommand::Remove { username } => {
            let (store, location) = open(settings).await?;
            if !store.delete_operator(&username).await? {
                anyhow::bail!("no operator named {username} in {location}");
            }
            println!("removed operator {username} (with their sessions and API tokens) from {location}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn token(settings: &Settings, command: TokenCommand) -> anyhow::Result<ExitCode> {
    let TokenCommand::Create { name, user } = command;
    if name.trim().is_empty() {
        anyhow::bail!("a token needs a name (what it is for)");
    }
    let (store, location) = open(settings).await?;
    let Some(op) = store.operator(&user).await? else {
        anyhow::bail!("no operator named {user} in {location}: add one first with `supportbot operator add {user}`");
    };
    let token = new_token();
    store
        .create_api_token(&token_hash(&token), &name, &op.username)
        .await
        .with_context(|| format!("saving the token in {location}"))?;
    println!("{token}");
    eprintln!(
        "API token {name:?} acts as {} ({}). It is shown only this once: keep it now. \
         Send it as `Authorization: Bearer TOKEN`.",
        op.username,
        op.role.as_str()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn review(settings: &Settings, command: ReviewCommand) -> anyhow::Result<ExitCode> {
    match command {
        ReviewCommand::Purge { older_than } => {
            let (store, location) = open(settings).await?;
            let cutoff = now_secs() - i64::from(older_than) * 86_400;
            let deleted = store.purge_before(cutoff).await.with_context(|| format!("purging {location}"))?;
            println!("deleted {deleted} exchanges older than {older_than} days from {location}");
        }
        ReviewCommand::Export { format, output } => {
            let (store, location) = open(settings).await?;
            let all = store.all_exchanges().await.with_context(|| format!("reading the exchanges in {location}"))?;
            let text = match format {
                ExportFormat::Jsonl => exchanges_jsonl(&all)?,
                ExportFormat::Csv => exchanges_csv(&all),
            };
            write_output(output.as_deref(), &text)?;
            if let Some(path) = &output {
                eprintln!("exported {} exchanges from {location} to {}", all.len(), path.display());
            }
        }
        ReviewCommand::EraseUser { user_id } => {
            let ids =
                stored_user_ids(settings.review.user_salt.as_ref().map(|s| s.expose()).unwrap_or_default(), &user_id)?;
            let (store, location) = open(settings).await?;
            let mut erased = 0;
            for id in &ids {
                erased += store.erase_user(id).await.with_context(|| format!("erasing {user_id} in {location}"))?;
            }
            println!("erased {erased} exchanges of {user_id} (and their feedback) from {location}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn curated(settings: &Settings, command: CuratedCommand) -> anyhow::Result<ExitCode> {
    let CuratedCommand::Export { output } = command;
    let (store, location) = open(settings).await?;
    let active = store.list_curated(true).await.with_context(|| format!("reading curated answers in {location}"))?;
    write_output(output.as_deref(), &crate::web::ops::curated_csv(&active))?;
    let questions: usize = active.iter().map(|c| c.questions.len()).sum();
    eprintln!("exported {} active curated answers ({questions} questions) from {location}", active.len());
    Ok(ExitCode::SUCCESS)
}

fn check_username(username: &str) -> anyhow::Result<()> {
    if username.is_empty() || username.chars().count() > 64 {
        anyhow::bail!("a username must be 1 to 64 characters long");
    }
    if username.chars().any(|c| c.is_whitespace() || c.is_control()) {
        anyhow::bail!("a username must not contain spaces or control characters: {username:?}");
    }
    Ok(())
}

fn check_password(password: &str) -> anyhow::Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        anyhow::bail!("the password is too short: use at least {MIN_PASSWORD_CHARS} characters (nothing was changed)");
    }
    Ok(())
}

/// A line without its line ending.
fn strip_line_ending(mut line: String) -> String {
    while line.ends_with(['\n', '\r']) {
        line.pop();
    }
    line
}

/// The new password: one line of standard input, or on a terminal two prompts without echo.
async fn read_password(username: &str) -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        let mut line = String::new();
        let n = std::io::stdin().lock().read_line(&mut line).context("reading the password from standard input")?;
        if n == 0 {
            anyhow::bail!("no password on standard input (give it as one line)");
        }
        return Ok(strip_line_ending(line));
    }
    let echo_off = EchoOff::new();
    if !echo_off.active() {
        eprintln!("note: could not turn off terminal echo (`stty` failed): the password will show as you type");
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let user = username.to_string();
    let hidden = echo_off.active();
    // A plain thread, not the blocking pool: if Ctrl-C interrupts the prompt, the process can
    // exit without waiting for the read to return.
    std::thread::spawn(move || {
        let _ = tx.send(prompt_twice(&user, hidden));
    });
    let result = tokio::select! {
        r = rx => r.map_err(|_| anyhow::anyhow!("reading the password failed"))?,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted; nothing was changed")),
    };
    drop(echo_off);
    result
}

fn prompt_twice(username: &str, hidden: bool) -> anyhow::Result<String> {
    let read = |prompt: &str| -> anyhow::Result<String> {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        let n = std::io::stdin().lock().read_line(&mut line).context("reading the password")?;
        if hidden {
            eprintln!();
        }
        if n == 0 {
            anyhow::bail!("no password given");
        }
        Ok(strip_line_ending(line))
    };
    let first = read(&format!("New password for {username}: "))?;
    check_password(&first)?;
    let second = read("Repeat it: ")?;
    if first != second {
        anyhow::bail!("the two passwords differ; nothing was changed");
    }
    Ok(first)
}

/// Terminal echo turned off with `stty` (no extra dependency, no unsafe code) until dropped.
struct EchoOff(bool);

impl EchoOff {
    fn new() -> Self {
        Self(stty("-echo"))
    }

    fn active(&self) -> bool {
        self.0
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if self.0 {
            stty("echo");
        }
    }
}

/// Runs `stty ARG` on the terminal of standard input; `true` when it worked.
fn stty(arg: &str) -> bool {
    std::process::Command::new("stty")
        .arg(arg)
        .stdin(std::process::Stdio::inherit())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The ids under which the review store may hold a user: for `PLATFORM:ID`, the salted pseudonym
/// (the default) and the raw form (`review.raw_user_ids`), so that erasure also catches what was
/// logged while the other setting was in effect; a pseudonym `u_…` stands for itself.
pub fn stored_user_ids(salt: &str, given: &str) -> anyhow::Result<Vec<String>> {
    let given = given.trim();
    if is_pseudonym(given) {
        return Ok(vec![given.to_string()]);
    }
    match given.split_once(':') {
        Some((platform, id)) if !platform.is_empty() && !id.is_empty() => {
            let platform = platform.to_lowercase();
            Ok(vec![pseudonymize(salt, &platform, id), format!("{platform}:{id}")])
        }
        _ => anyhow::bail!(
            "cannot tell whose data {given:?} is: give PLATFORM:ID as the platform knows the user \
             (e.g. telegram:218485655 or discord:80351110224678912), or a pseudonymous id u_… as the console shows it"
        ),
    }
}

/// `u_` and 16 hex digits: what [`pseudonymize`] produces.
fn is_pseudonym(s: &str) -> bool {
    s.strip_prefix("u_").is_some_and(|h| h.len() == 16 && h.chars().all(|c| c.is_ascii_hexdigit()))
}

/// One line of `review export --format jsonl`.
#[derive(Serialize)]
struct ExportLine<'a> {
    #[serde(flatten)]
    exchange: &'a Exchange,
    feedback: &'a [Feedback],
}

fn exchanges_jsonl(all: &[(Exchange, Vec<Feedback>)]) -> anyhow::Result<String> {
    let mut out = String::new();
    for (exchange, feedback) in all {
        out.push_str(&serde_json::to_string(&ExportLine { exchange, feedback })?);
        out.push('\n');
    }
    Ok(out)
}

/// The header of `review export --format csv`.
pub const CSV_COLUMNS: [&str; 15] = [
    "id",
    "at",
    "channel",
    "conversation",
    "user",
    "outcome",
    "backend",
    "confidence",
    "question",
    "answer",
    "citations",
    "thumbs_up",
    "thumbs_down",
    "human_requests",
    "latency_ms",
];

fn exchanges_csv(all: &[(Exchange, Vec<Feedback>)]) -> String {
    let mut out = csv_row(CSV_COLUMNS.iter().map(|c| c.to_string()));
    for (e, feedback) in all {
        let count = |kind: FeedbackKind| feedback.iter().filter(|f| f.kind == kind).count().to_string();
        let outcome = serde_json::to_value(e.outcome).ok().and_then(|v| v.as_str().map(str::to_string));
        out.push_str(&csv_row([
            e.id.clone(),
            e.at.clone(),
            e.channel.clone(),
            e.conversation.clone(),
            e.user.clone(),
            outcome.unwrap_or_default(),
            e.backend.clone().unwrap_or_default(),
            e.confidence.to_string(),
            e.question.clone(),
            e.answer.clone(),
            e.citations.iter().map(|c| c.citation.as_str()).collect::<Vec<_>>().join(" "),
            count(FeedbackKind::Up),
            count(FeedbackKind::Down),
            count(FeedbackKind::Human),
            e.latency.total.to_string(),
        ]));
    }
    out
}

/// One CSV record, RFC 4180: fields with a comma, quote, CR or LF are quoted, quotes doubled,
/// records end with CRLF.
fn csv_row(fields: impl IntoIterator<Item = String>) -> String {
    let mut row = fields.into_iter().map(|f| csv_field(&f)).collect::<Vec<_>>().join(",");
    row.push_str("\r\n");
    row
}

/// Writes `text` to `path` (owner-only permissions: exports hold what users asked), or to
/// standard output.
fn write_output(path: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match path {
        Some(path) => {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).with_context(|| format!("creating {}", path.display()))?;
            file.write_all(text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
            file.sync_all().with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).context("writing to standard output")?;
            out.flush().context("writing to standard output")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_per_rfc_4180() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_row(["a".to_string(), "b,c".to_string(), String::new()]), "a,\"b,c\",\r\n");
    }

    #[test]
    fn user_ids_resolve_to_pseudonym_and_raw_form() {
        let ids = stored_user_ids("pepper", "Telegram:12345").unwrap_or_default();
        assert_eq!(ids, vec![pseudonymize("pepper", "telegram", "12345"), "telegram:12345".to_string()]);
        let pseudonym = pseudonymize("pepper", "discord", "42");
        assert_eq!(stored_user_ids("pepper", &pseudonym).unwrap_or_default(), vec![pseudonym]);
        assert!(stored_user_ids("pepper", "12345").is_err());
        assert!(stored_user_ids("pepper", "telegram:").is_err());
        assert!(stored_user_ids("pepper", ":12345").is_err());
    }

    #[test]
    fn passwords_and_usernames_are_checked() {
        assert!(check_password("123456789").is_err());
        assert!(check_password("1234567890").is_ok());
        // Characters, not bytes.
        assert!(check_password("ééééééééé").is_err());
        assert!(check_username("ana").is_ok());
        assert!(check_username("").is_err());
        assert!(check_username("ana smith").is_err());
        assert_eq!(strip_line_ending("secret pw \r\n".into()), "secret pw ");
    }
}
