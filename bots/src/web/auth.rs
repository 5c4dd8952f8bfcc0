//! Operator authentication for the console and the JSON API: argon2 password hashes, session
//! cookies (HttpOnly, SameSite=Strict, Secure behind TLS) with a CSRF token per session, bearer
//! API tokens, and a limit on sign-in attempts. Only hashes of session and API tokens are stored.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, password_hash::rand_core::OsRng};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;
use supportbot_core::review::Role;

use super::AppState;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "sb_session";
/// How long a console session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// An argon2id hash (PHC string) of a password.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))
}

/// Checks a password against a stored hash (constant time inside argon2).
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A fresh random token (256 bits, URL-safe base64).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What the database keeps of a token: its SHA-256.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time comparison of two secrets.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The session cookie to set after signing in. `secure` when the request came over TLS.
pub fn session_cookie(token: &str, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The cookie that signs out.
pub fn clear_cookie(secure: bool) -> String {
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}", if secure { "; Secure" } else { "" })
}

/// Whether the request reached us over TLS (directly, or through a proxy that says so).
pub fn is_tls(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

/// How a request was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Session,
    Token,
}

/// A signed-in operator (console session or API token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub username: String,
    pub role: Role,
    /// The session's CSRF token (sessions only): every form must carry it.
    pub csrf: Option<String>,
    pub via: Via,
}

impl Operator {
    /// Refuses operators below `role`.
    pub fn require(&self, role: Role) -> Result<(), AuthError> {
        if self.role >= role { Ok(()) } else { Err(AuthError::Forbidden) }
    }

    /// Checks a form's CSRF token. API tokens need none (no cookie is involved).
    pub fn check_csrf(&self, submitted: Option<&str>) -> Result<(), AuthError> {
        match (&self.csrf, self.via) {
            (_, Via::Token) => Ok(()),
            (Some(expected), Via::Session) if submitted.is_some_and(|s| secrets_equal(s, expected)) => Ok(()),
            _ => Err(AuthError::Csrf),
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No valid session or token: pages redirect to the sign-in page, the API answers 401.
    Unauthenticated { api: bool },
    /// Signed in, but the role does not allow it.
    Forbidden,
    /// A form without the session's CSRF token.
    Csrf,
    /// The review store failed.
    Unavailable,
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        match self {
            AuthError::Unauthenticated { api: false } => Redirect::to("/login").into_response(),
            AuthError::Unauthenticated { api: true } => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                axum::Json(error_body("unauthorized")),
            )
                .into_response(),
            AuthError::Forbidden => (StatusCode::FORBIDDEN, axum::Json(error_body("forbidden"))).into_response(),
            AuthError::Csrf => {
                (StatusCode::FORBIDDEN, axum::Json(error_body("missing or invalid CSRF token"))).into_response()
            }
            AuthError::Unavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, axum::Json(error_body("review store unavailable"))).into_response()
            }
        }
    }
}

fn error_body(message: &str) -> serde_json::Value {
    serde_json::json!({ "error": message })
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let api = parts.uri.path().starts_with("/api/");
        if let Some(token) = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            return match state.review.api_token(&token_hash(token.trim())).await {
                Ok(Some(op)) => Ok(Operator { username: op.username, role: op.role, csrf: None, via: Via::Token }),
                Ok(None) => Err(AuthError::Unauthenticated { api }),
                Err(e) => {
                    tracing::error!(error = %e, "checking an API token");
                    Err(AuthError::Unavailable)
                }
            };
        }
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(AuthError::Unauthenticated { api });
        };
        match state.review.session(&token_hash(&token)).await {
            Ok(Some(s)) => Ok(Operator { username: s.username, role: s.role, csrf: Some(s.csrf), via: Via::Session }),
            Ok(None) => Err(AuthError::Unauthenticated { api }),
            Err(e) => {
                tracing::error!(error = %e, "checking a session");
                Err(AuthError::Unavailable)
            }
        }
    }
}

/// Keys (accounts, addresses) the sign-in limiter keeps counters for before it prunes.
const MAX_TRACKED_KEYS: usize = 50_000;

/// Limits sign-in attempts per account and per client address (sliding window).
#[derive(Debug)]
pub struct LoginLimiter {
    max: usize,
    window: Duration,
    attempts: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    pub fn new(max: usize, window: Duration) -> Self {
        Self { max, window, attempts: Mutex::default() }
    }

    /// Counts a failed attempt for each key.
    pub fn failed(&self, keys: &[&str]) {
        let now = Instant::now();
        if let Ok(mut a) = self.attempts.lock() {
            if a.len() > MAX_TRACKED_KEYS {
                // Bounded memory: forget expired counters, then those that block nobody yet. A
                // flood of guesses at many names must not reset the accounts it has locked.
                a.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) <= self.window));
                if a.len() > MAX_TRACKED_KEYS {
                    a.retain(|_, q| q.len() >= self.max);
                }
                // Only more than MAX_TRACKED_KEYS locked keys within one window (each lock costs
                // `max` password checks) get here; the bound wins.
                if a.len() > MAX_TRACKED_KEYS {
                    a.clear();
                }
            }
            for k in keys {
                a.entry((*k).to_string()).or_default().push_back(now);
            }
        }
    }

    /// Whether any key is over the limit.
    pub fn blocked(&self, keys: &[&str]) -> bool {
        let now = Instant::now();
        let Ok(mut a) = self.attempts.lock() else { return false };
        keys.iter().any(|k| {
            let q = a.entry((*k).to_string()).or_default();
            while q.front().is_some_and(|t| now.duration_since(*t) > self.window) {
                q.pop_front();
            }
            q.len() >= self.max
        })
    }

    pub fn clear(&self, keys: &[&str]) {
        if let Ok(mut a) = self.attempts.lock() {
            for k in keys {
                a.remove(*k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn tokens_are_random_and_stored_as_hashes() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_ne!(token_hash(&a), a);
        assert_eq!(token_hash(&a), token_hash(&a));
    }

    #[test]
    fn session_cookies_are_strict_and_http_only() {
        let c = session_cookie("tok", true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
        assert!(!session_cookie("tok", false).contains("Secure"));
    }

    #[test]
    fn csrf_is_required_for_sessions_only() {
        let s = Operator { username: "a".into(), role: Role::Operator, csrf: Some("x".into()), via: Via::Session };
        assert_eq!(s.check_csrf(None), Err(AuthError::Csrf));
        assert_eq!(s.check_csrf(Some("y")), Err(AuthError::Csrf));
        assert_eq!(s.check_csrf(Some("x")), Ok(()));
        let t = Operator { username: "a".into(), role: Role::Viewer, csrf: None, via: Via::Token };
        assert_eq!(t.check_csrf(None), Ok(()));
        assert_eq!(t.require(Role::Operator), Err(AuthError::Forbidden));
    }

    #[test]
    fn sign_in_attempts_are_limited() {
        let l = LoginLimiter::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(!l.blocked(&["user:ana"]));
            l.failed(&["user:ana", "ip:1.2.3.4"]);
        }
        assert!(l.blocked(&["user:ana"]));
        assert!(l.blocked(&["ip:1.2.3.4"]));
        assert!(!l.blocked(&["user:bob"]));
    }

    #[test]
    fn a_flood_of_other_names_does_not_unlock_an_account() {
        let l = LoginLimiter::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            l.failed(&["user:ana"]);
        }
        for i in 0..=MAX_TRACKED_KEYS {
            l.failed(&[format!("user:guess{i}").as_str()]);
        }
        assert!(l.blocked(&["user:ana"]), "the locked account was reset by the flood");
        assert!(l.attempts.lock().unwrap().len() <= MAX_TRACKED_KEYS, "memory stays bounded");
    }
}
