//! Retrying remote model requests (provider-requested waits for rate limits, exponential backoff
//! with full jitter for server errors, dropped connections and timeouts, no retry for refusals),
//! and the failure classification the Gemini and OpenAI-compatible backends share.

use std::future::Future;
use std::time::Duration;

use super::ModelError;

/// How hard a remote backend tries before the chain moves on to the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = a single attempt).
    pub max_retries: u32,
    /// Base of the exponential backoff: retry `n` (0-based) waits a random time in
    /// `0..backoff·2ⁿ` ("full jitter"), capped at `max_wait`.
    pub backoff: Duration,
    /// Longest single wait. A rate limit asking for more gives up at once with
    /// [`ModelError::RateLimited`], so the chain can answer with another backend instead.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_retries: 2, backoff: Duration::from_millis(500), max_wait: Duration::from_secs(20) }
    }
}

/// One failed attempt, as the retry loop sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub error: ModelError,
    /// The provider said waiting will not help (a Gemini per-day quota): never retried, whatever
    /// the error is.
    pub permanent: bool,
}

impl Failure {
    /// A failure that is never retried.
    pub fn permanent(error: ModelError) -> Self {
        Self { error, permanent: true }
    }
}

impl Failure {
    /// The same failure with `secret` removed from its texts (see [`redact`]).
    pub(crate) fn redacted(self, secret: Option<&str>) -> Self {
        Self { error: redact(self.error, secret), permanent: self.permanent }
    }
}

impl From<ModelError> for Failure {
    fn from(error: ModelError) -> Self {
        Self { error, permanent: false }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Wait this long, then try again.
    Retry(Duration),
    /// Return the error.
    GiveUp,
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        Self { max_retries: 0, ..Self::default() }
    }

    /// Decides what follows a failure after `retries_done` retries. `jitter` is a number in
    /// `0.0..1.0` (random in production) that scales the backoff.
    ///
    /// * rate limited with a provider delay: wait exactly that delay if it is at most `max_wait`,
    ///   otherwise give up immediately;
    /// * rate limited without a delay, transient failures and timeouts: exponential backoff;
    /// * everything else (rejected, blocked, context too long, malformed): give up.
    pub fn decide(&self, retries_done: u32, failure: &Failure, jitter: f64) -> Decision {
        if failure.permanent || retries_done >= self.max_retries {
            return Decision::GiveUp;
        }
        match &failure.error {
            ModelError::RateLimited { retry_after: Some(wait) } => {
                if *wait <= self.max_wait {
                    Decision::Retry(*wait)
                } else {
                    Decision::GiveUp
                }
            }
            ModelError::RateLimited { retry_after: None } | ModelError::Transient(_) | ModelError::Timeout(_) => {
                Decision::Retry(self.backoff_delay(retries_done, jitter))
            }
            ModelError::ContextTooLong(_)
            | ModelError::Rejected(_)
            | ModelError::Blocked(_)
            | ModelError::Malformed(_)
            | ModelError::Unavailable(_) => Decision::GiveUp,
        }
    }

    /// The backoff before retry `retry` (0-based): `jitter · min(backoff·2^retry, max_wait)`.
    pub fn backoff_delay(&self, retry: u32, jitter: f64) -> Duration {
        let ceiling = self.backoff.saturating_mul(2u32.saturating_pow(retry)).min(self.max_wait);
        let jitter = if jitter.is_finite() { jitter.clamp(0.0, 1.0) } else { 0.0 };
        ceiling.mul_f64(jitter)
    }

    /// Runs `attempt` until it succeeds or the policy gives up; `backend` names it in the logs.
    pub async fn run<T, F, Fut>(&self, backend: &str, attempt: F) -> Result<T, ModelError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        self.run_with(backend, tokio::time::sleep, attempt).await
    }

    /// [`RetryPolicy::run`] with the sleep injected, so tests can observe the waits without
    /// waiting.
    pub(crate) async fn run_with<T, F, Fut, S, SFut>(
        &self,
        backend: &str,
        mut sleep: S,
        mut attempt: F,
    ) -> Result<T, ModelError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
        S: FnMut(Duration) -> SFut,
        SFut: Future<Output = ()>,
    {
        let mut retries = 0;
        loop {
            let failure = match attempt().await {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            match self.decide(retries, &failure, rand::random::<f64>()) {
                Decision::GiveUp => {
                    tracing::debug!(backend, retries, error = %failure.error, "giving up");
                    return Err(failure.error);
                }
                Decision::Retry(wait) => {
                    retries += 1;
                    tracing::warn!(
                        backend,
                        retry = retries,
                        max_retries = self.max_retries,
                        wait_ms = wait.as_millis() as u64,
                        error = %failure.error,
                        "retrying"
                    );
                    sleep(wait).await;
                }
            }
        }
    }
}

/// Classifies an HTTP error answer of a model server, given its status, the error message from
/// its body and the delay it asked for (if any).
///
/// A message saying the prompt does not fit wins over the status (llama-server used to report
/// that with 500, LM Studio even with 200); then 429 is a rate limit, 408 and 5xx are transient,
/// other 4xx are refusals.
pub(crate) fn classify_http(status: u16, message: &str, retry_after: Option<Duration>) -> Failure {
    let described = format!("HTTP {status}: {message}");
    if looks_like_context_overflow(message) {
        return ModelError::ContextTooLong(described).into();
    }
    match status {
        429 => ModelError::RateLimited { retry_after }.into(),
        408 | 500..=599 => ModelError::Transient(described).into(),
        400..=499 => ModelError::Rejected(described).into(),
        _ => ModelError::Malformed(format!("unexpected {described}")).into(),
    }
}

/// Whether an error message says the input exceeds the model's context window (wording of
/// Gemini, OpenAI, vLLM and llama-server).
pub(crate) fn looks_like_context_overflow(message: &str) -> bool {
    const PATTERNS: [&str; 12] = [
        "input token count",
        "exceeds the maximum number of tokens",
        "maximum context length",
        "context_length_exceeded",
        "context length",
        "exceed_context_size",
        "context size",
        "context window",
        "exceeds the context",
        "prompt is too long",
        "input is too long",
        "too many tokens",
    ];
    let message = message.to_lowercase();
    PATTERNS.iter().any(|p| message.contains(p))
}

/// A transport-level failure (connection refused or reset, body cut, timeout).
pub(crate) fn transport_error(error: &reqwest::Error, timeout: Duration) -> ModelError {
    if error.is_timeout() {
        return ModelError::Timeout(timeout);
    }
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    ModelError::Transient(message)
}

/// Removes a secret from every text an error carries, in case a server echoed it back.
pub(crate) fn redact(error: ModelError, secret: Option<&str>) -> ModelError {
    let Some(secret) = secret.filter(|s| !s.is_empty()) else {
        return error;
    };
    let clean = |s: String| s.replace(secret, "[redacted]");
    match error {
        ModelError::ContextTooLong(s) => ModelError::ContextTooLong(clean(s)),
        ModelError::Transient(s) => ModelError::Transient(clean(s)),
        ModelError::Rejected(s) => ModelError::Rejected(clean(s)),
        ModelError::Blocked(s) => ModelError::Blocked(clean(s)),
        ModelError::Malformed(s) => ModelError::Malformed(clean(s)),
        ModelError::Unavailable(s) => ModelError::Unavailable(clean(s)),
        e @ (ModelError::RateLimited { .. } | ModelError::Timeout(_)) => e,
    }
}

/// At most `max` characters of a body, for error messages.
pub(crate) fn snippet(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy { max_retries: 3, backoff: Duration::from_millis(100), max_wait: Duration::from_secs(2) }
    }

    fn rate_limited(secs: f64) -> Failure {
        ModelError::RateLimited { retry_after: Some(Duration::from_secs_f64(secs)) }.into()
    }

    #[test]
    fn rate_limit_waits_what_the_provider_asked() {
        let d = policy().decide(0, &rate_limited(1.5), 0.9);
        assert_eq!(d, Decision::Retry(Duration::from_millis(1500)));
    }

    #[test]
    fn rate_limit_longer_than_max_wait_gives_up() {
        assert_eq!(policy().decide(0, &rate_limited(2.5), 0.5), Decision::GiveUp);
    }

    #[test]
    fn permanent_rate_limit_gives_up() {
        let f = Failure::permanent(ModelError::RateLimited { retry_after: Some(Duration::from_millis(10)) });
        assert_eq!(policy().decide(0, &f, 0.5), Decision::GiveUp);
    }

    #[test]
    fn rate_limit_without_delay_backs_off() {
        let f = ModelError::RateLimited { retry_after: None }.into();
        assert_eq!(policy().decide(1, &f, 0.5), Decision::Retry(Duration::from_millis(100)));
    }

    #[test]
    fn transient_and_timeout_back_off_exponentially_with_full_jitter() {
        let p = policy();
        let transient: Failure = ModelError::Transient("503".into()).into();
        let timeout: Failure = ModelError::Timeout(Duration::from_secs(1)).into();
        assert_eq!(p.decide(0, &transient, 1.0), Decision::Retry(Duration::from_millis(100)));
        assert_eq!(p.decide(1, &transient, 1.0), Decision::Retry(Duration::from_millis(200)));
        assert_eq!(p.decide(2, &timeout, 1.0), Decision::Retry(Duration::from_millis(400)));
        assert_eq!(p.decide(2, &timeout, 0.25), Decision::Retry(Duration::from_millis(100)));
        assert_eq!(p.decide(0, &transient, 0.0), Decision::Retry(Duration::ZERO));
    }

    #[test]
    fn backoff_is_capped_and_never_overflows() {
        let p = policy();
        assert_eq!(p.backoff_delay(5, 1.0), Duration::from_secs(2));
        assert_eq!(p.backoff_delay(40, 1.0), Duration::from_secs(2));
        assert_eq!(p.backoff_delay(u32::MAX, 1.0), Duration::from_secs(2));
        assert_eq!(p.backoff_delay(1, f64::NAN), Duration::ZERO);
        assert_eq!(p.backoff_delay(1, 7.0), Duration::from_millis(200));
    }

    #[test]
    fn refusals_are_never_retried() {
        let p = policy();
        for e in [
            ModelError::Rejected("400".into()),
            ModelError::ContextTooLong("too long".into()),
            ModelError::Blocked("SAFETY".into()),
            ModelError::Malformed("bad json".into()),
            ModelError::Unavailable("no key".into()),
        ] {
            assert_eq!(p.decide(0, &e.into(), 0.5), Decision::GiveUp);
        }
    }

    #[test]
    fn retries_stop_at_max_retries() {
        let p = policy();
        let f: Failure = ModelError::Transient("500".into()).into();
        assert!(matches!(p.decide(2, &f, 0.5), Decision::Retry(_)));
        assert_eq!(p.decide(3, &f, 0.5), Decision::GiveUp);
        assert_eq!(RetryPolicy::none().decide(0, &f, 0.5), Decision::GiveUp);
    }

    /// Runs `run_with` over scripted attempt results; returns the result, the attempts made and
    /// the waits requested.
    async fn drive(
        p: RetryPolicy,
        script: Vec<Result<u32, Failure>>,
    ) -> (Result<u32, ModelError>, usize, Vec<Duration>) {
        let waits = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.into_iter()));
        let attempts = Arc::new(Mutex::new(0usize));
        let result = p
            .run_with(
                "test",
                |d| {
                    waits.lock().unwrap().push(d);
                    async {}
                },
                || {
                    *attempts.lock().unwrap() += 1;
                    let next = script.lock().unwrap().next().expect("script exhausted");
                    async move { next }
                },
            )
            .await;
        let waits = waits.lock().unwrap().clone();
        let attempts = *attempts.lock().unwrap();
        (result, attempts, waits)
    }

    #[tokio::test]
    async fn run_retries_a_rate_limit_then_succeeds() {
        let (r, attempts, waits) = drive(policy(), vec![Err(rate_limited(0.05)), Ok(7)]).await;
        assert_eq!(r, Ok(7));
        assert_eq!(attempts, 2);
        assert_eq!(waits, [Duration::from_millis(50)]);
    }

    #[tokio::test]
    async fn run_gives_up_on_a_long_rate_limit_without_waiting() {
        let (r, attempts, waits) = drive(policy(), vec![Err(rate_limited(60.0))]).await;
        assert_eq!(r, Err(ModelError::RateLimited { retry_after: Some(Duration::from_secs(60)) }));
        assert_eq!(attempts, 1);
        assert!(waits.is_empty());
    }

    #[tokio::test]
    async fn run_backs_off_within_bounds_then_returns_the_last_error() {
        let e = || Err(Failure::from(ModelError::Transient("503".into())));
        let (r, attempts, waits) = drive(policy(), vec![e(), e(), e(), e()]).await;
        assert_eq!(r, Err(ModelError::Transient("503".into())));
        assert_eq!(attempts, 4);
        assert_eq!(waits.len(), 3);
        for (n, w) in waits.iter().enumerate() {
            assert!(*w < Duration::from_millis(100) * 2u32.pow(n as u32), "wait {n} = {w:?}");
        }
    }

    #[tokio::test]
    async fn run_does_not_retry_a_rejection() {
        let (r, attempts, waits) = drive(policy(), vec![Err(ModelError::Rejected("400".into()).into())]).await;
        assert_eq!(r, Err(ModelError::Rejected("400".into())));
        assert_eq!(attempts, 1);
        assert!(waits.is_empty());
    }

    /// The wait between attempts lets other work on the same thread run (a blocking sleep would
    /// stall every conversation served by that worker).
    #[tokio::test]
    async fn run_waits_without_blocking_the_thread() {
        let p = RetryPolicy { max_retries: 1, backoff: Duration::from_millis(1), max_wait: Duration::from_secs(1) };
        let ticks = std::cell::Cell::new(0u32);
        let done = std::cell::Cell::new(false);
        let mut seen = Vec::new();
        let run = async {
            let r = p
                .run("test", || {
                    seen.push(ticks.get());
                    let result = if seen.len() == 1 { Err(rate_limited(0.05)) } else { Ok(seen.len()) };
                    async move { result }
                })
                .await;
            done.set(true);
            r
        };
        // Another task's work on the same thread, counted while the retry waits.
        let ticker = async {
            while !done.get() {
                ticks.set(ticks.get() + 1);
                tokio::task::yield_now().await;
            }
        };
        let (r, ()) = tokio::join!(run, ticker);
        assert_eq!(r, Ok(2));
        assert!(seen[1] > seen[0], "nothing else ran during the wait: {seen:?}");
    }

    #[test]
    fn classifies_http_errors() {
        let c = |status, msg: &str| classify_http(status, msg, None).error;
        assert!(matches!(c(400, "API key not valid"), ModelError::Rejected(_)));
        assert!(matches!(c(404, "model not found"), ModelError::Rejected(_)));
        assert!(matches!(c(500, "internal"), ModelError::Transient(_)));
        assert!(matches!(c(503, "overloaded"), ModelError::Transient(_)));
        assert!(matches!(c(429, "quota"), ModelError::RateLimited { retry_after: None }));
        assert!(matches!(
            c(400, "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."),
            ModelError::ContextTooLong(_)
        ));
        assert!(matches!(
            c(500, "request (4390 tokens) exceeds the available context size (4096 tokens)"),
            ModelError::ContextTooLong(_)
        ));
        assert!(matches!(c(400, "This model's maximum context length is 2048 tokens."), ModelError::ContextTooLong(_)));
        // A bad generation setting mentions tokens but is not a context overflow.
        assert!(matches!(
            c(400, "maxOutputTokens value of 100000 but the supported maximum is 65536"),
            ModelError::Rejected(_)
        ));
    }

    #[test]
    fn redacts_secrets_from_error_texts() {
        let e = redact(ModelError::Rejected("bad key sk-123 given".into()), Some("sk-123"));
        assert_eq!(e, ModelError::Rejected("bad key [redacted] given".into()));
        let e = redact(ModelError::Transient("x".into()), Some(""));
        assert_eq!(e, ModelError::Transient("x".into()));
    }

    #[test]
    fn snippet_cuts_on_char_boundaries() {
        assert_eq!(snippet("  héllo wörld ".as_bytes(), 100), "héllo wörld");
        assert_eq!(snippet("héllo".as_bytes(), 2), "hé…");
    }
}
