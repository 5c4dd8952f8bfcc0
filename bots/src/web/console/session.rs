//! Signing in and out: the sign-in form, password checks limited per account and per client
//! address, the session cookie, and signing out (a POST with the CSRF token).

use std::net::{IpAddr, SocketAddr};
use std::sync::LazyLock;

use axum::Form;
use axum::extract::{ConnectInfo, State};
use axum::http::{Extensions, HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use supportbot_core::review::{Role, now_secs};

use super::{Page, check_form, message};
use crate::web::AppState;
use crate::web::auth::{self, Operator, SESSION_COOKIE};

#[derive(Debug, Default, Serialize)]
struct LoginView {
    username: String,
}

/// GET /login
pub(super) async fn login_page() -> Response {
    Page::new("login.html", "", None, LoginView::default()).into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// A hash to check passwords against when the account does not exist, so that a wrong
/// username takes as long as a wrong password (no probing for account names by timing).
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| auth::hash_password("no such account").unwrap_or_default());

/// POST /login
pub(super) async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: Extensions,
    Form(form): Form<LoginForm>,
) -> Response {
    // A sign-in posted from another site (login CSRF: signing the victim into the attacker's
    // account) is refused; browsers say where a request comes from in Sec-Fetch-Site.
    if headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site")) {
        return message(None, StatusCode::FORBIDDEN, "Sign-in refused", "Sign in from the console's own page.");
    }
    let username = form.username.trim().to_string();
    let user_key = format!("user:{}", username.to_lowercase());
    let addr = client_address(&headers, &extensions);
    // Without a known address there is no per-address limit: one shared "unknown" key would let
    // anyone lock every operator out.
    let addr_key = format!("addr:{}", addr.as_deref().unwrap_or("unknown"));
    let keys: Vec<&str> =
        if addr.is_some() { vec![user_key.as_str(), addr_key.as_str()] } else { vec![user_key.as_str()] };
    let refuse = |status: StatusCode, text: &str| {
        Page::new("login.html", "", None, LoginView { username: username.clone() })
            .status(status)
            .error(Some(text.to_string()))
            .into_response()
    };
    if state.login_limiter.blocked(&keys) {
        tracing::warn!(key = %addr_key, "sign-in refused: too many failed attempts");
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed sign-in attempts. Wait a few minutes before trying again.",
        );
    }
    let account = match state.review.operator(&username).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "reading an operator account");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "Signing in is not possible right now; try again shortly.");
        }
    };
    let hash = account.as_ref().map(|a| a.password_hash.clone()).unwrap_or_else(|| DUMMY_HASH.clone());
    let password = form.password;
    // argon2 takes tens of milliseconds of CPU on purpose: off the async runtime.
    let verified = tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash)).await.unwrap_or(false);
    let Some(account) = account.filter(|_| verified) else {
        state.login_limiter.failed(&keys);
        tracing::info!(key = %addr_key, "failed sign-in");
        // The same words whether the account exists or not.
        return refuse(StatusCode::UNAUTHORIZED, "Wrong username or password.");
    };
    // Only the account's counter: a valid account must not reset the counter of an address
    // that is guessing other accounts' passwords.
    state.login_limiter.clear(&[user_key.as_str()]);
    let token = auth::new_token();
    let csrf = auth::new_token();
    let expires_at = now_secs() + auth::SESSION_TTL.as_secs() as i64;
    if let Err(e) = state.review.create_session(&auth::token_hash(&token), &account.username, &csrf, expires_at).await {
        tracing::error!(error = %e, "creating a session");
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "Signing in is not possible right now; try again shortly.");
    }
    tracing::info!(operator = %account.username, "signed in");
    let cookie = auth::session_cookie(&token, auth::is_tls(&headers));
    ([(header::SET_COOKIE, cookie)], Redirect::to("/queue")).into_response()
}

/// Who is signing in, for the per-address limit: the peer address, or, when the peer is a
/// proxy on this machine or the private network, the address it appended to X-Forwarded-For
/// (the last entry: earlier ones are whatever the client claimed). Without `ConnectInfo`
/// (`into_make_service_with_connect_info`), only a proxy's header is available.
fn client_address(headers: &HeaderMap, extensions: &Extensions) -> Option<String> {
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .next_back();
    let peer = extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    match (peer, forwarded) {
        (Some(peer), Some(forwarded)) if is_local(peer) => Some(forwarded.to_string()),
        (Some(peer), _) => Some(peer.to_string()),
        (None, forwarded) => forwarded.map(|f| f.to_string()),
    }
}

fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
                || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback() || v4.is_private())
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: Option<String>,
}

/// POST /logout
pub(super) async fn logout(
    State(state): State<AppState>,
    op: Operator,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refused) = check_form(&op, form.csrf.as_deref(), Role::Viewer) {
        return *refused;
    }
    if let Some(token) = session_token(&headers)
        && let Err(e) = state.review.delete_session(&auth::token_hash(&token)).await
    {
        tracing::error!(error = %e, "deleting a session");
    }
    tracing::info!(operator = %op.username, "signed out");
    ([(header::SET_COOKIE, auth::clear_cookie(auth::is_tls(&headers)))], Redirect::to("/login")).into_response()
}

/// The session token from the request's cookies.
fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('=').map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn peer(addr: &str) -> Extensions {
        let mut e = Extensions::new();
        e.insert(ConnectInfo(addr.parse::<SocketAddr>().unwrap()));
        e
    }

    #[test]
    fn the_client_address_trusts_forwarding_only_from_a_local_proxy() {
        let fwd = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.9")]);
        let addr = |h: &HeaderMap, e: &Extensions| client_address(h, e).unwrap_or_default();
        assert_eq!(addr(&fwd, &peer("127.0.0.1:5000")), "203.0.113.9");
        assert_eq!(addr(&fwd, &peer("10.0.0.2:5000")), "203.0.113.9");
        assert_eq!(addr(&fwd, &peer("198.51.100.7:5000")), "198.51.100.7");
        assert_eq!(addr(&HeaderMap::new(), &peer("[::1]:5000")), "::1");
        assert_eq!(addr(&fwd, &Extensions::new()), "203.0.113.9");
        assert_eq!(client_address(&HeaderMap::new(), &Extensions::new()), None);
    }

    #[test]
    fn the_session_token_is_read_from_the_cookie_header() {
        let h = headers(&[("cookie", "a=b; sb_session=tok123; c=d")]);
        assert_eq!(session_token(&h).as_deref(), Some("tok123"));
        assert_eq!(session_token(&headers(&[("cookie", "sb_sessionx=1")])), None);
        assert_eq!(session_token(&HeaderMap::new()), None);
    }
}
