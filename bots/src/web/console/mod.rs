//! The operator console: server-rendered pages (minijinja templates embedded in the binary,
//! auto-escaped) for signing in, the review queue, curated answers, testing a question and the
//! dashboard. No JavaScript: every action is a POST form carrying the session's CSRF token, and
//! every page is sent with a strict Content-Security-Policy.

mod curated;
mod dashboard;
mod queue;
mod session;
mod tester;

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::map_response;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::{AutoEscape, Environment, UndefinedBehavior, context};
use serde::Serialize;
use supportbot_core::review::Role;

use super::AppState;
use super::auth::{AuthError, Operator};
use super::ops::OpError;

/// Every page may load resources from this origin only; no inline script or style can run, so
/// even a rendering mistake cannot execute what a user, a model or a document wrote.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes (merged into `web::router`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/queue") }))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/queue", get(queue::list))
        .route("/queue/{id}", get(queue::show))
        .route("/queue/{id}/{action}", post(queue::act))
        .route("/curated", get(curated::list).post(curated::add))
        .route("/curated.csv", get(curated::csv))
        .route("/curated/{id}", post(curated::edit))
        .route("/curated/{id}/{change}", post(curated::set_active))
        .route("/test", get(tester::page).post(tester::run))
        .route("/dashboard", get(dashboard::page))
        .route("/static/console.css", get(stylesheet))
        .layer(map_response(security_headers))
}

/// Headers every console response carries (pages, redirects, the stylesheet, the CSV).
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Pages show personal data (questions users asked): keep them out of shared caches and the
    // browser's history cache.
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

const STYLESHEET: &str = include_str!("../../../templates/console.css");

async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")], STYLESHEET)
        .into_response()
}

/// The templates, by name. Names end in `.html`, which turns on HTML auto-escaping.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../../templates/base.html")),
    ("login.html", include_str!("../../../templates/login.html")),
    ("queue.html", include_str!("../../../templates/queue.html")),
    ("item.html", include_str!("../../../templates/item.html")),
    ("curated.html", include_str!("../../../templates/curated.html")),
    ("test.html", include_str!("../../../templates/test.html")),
    ("dashboard.html", include_str!("../../../templates/dashboard.html")),
    ("message.html", include_str!("../../../templates/message.html")),
];

fn environment() -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    // Explicit rather than relying on the default callback: every `.html` template escapes
    // every value it prints. The templates never use the `safe` filter (a unit test checks).
    env.set_auto_escape_callback(|name| if name.ends_with(".html") { AutoEscape::Html } else { AutoEscape::None });
    // A misspelt variable is an error (caught by the tests), not an empty string on a page.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    for (name, source) in TEMPLATES {
        env.add_template(name, source)?;
    }
    Ok(env)
}

static ENV: LazyLock<Result<Environment<'static>, minijinja::Error>> = LazyLock::new(environment);

/// Who is looking at a page, for the header and the forms.
#[derive(Debug, Clone, Serialize)]
struct Viewer {
    name: String,
    role: &'static str,
    /// Whether the role may act (claim, approve, edit curated answers…): viewers only read.
    can_act: bool,
    /// The session's CSRF token, put in every form.
    csrf: String,
}

impl Viewer {
    fn of(op: &Operator) -> Self {
        Self {
            name: op.username.clone(),
            role: op.role.as_str(),
            can_act: op.role >= Role::Operator,
            csrf: op.csrf.clone().unwrap_or_default(),
        }
    }
}

/// A page to render: template, status and the page's own data (`page` in the template).
struct Page<T: Serialize> {
    template: &'static str,
    status: StatusCode,
    /// Which navigation link is current.
    nav: &'static str,
    viewer: Option<Viewer>,
    notice: Option<String>,
    error: Option<String>,
    data: T,
}

impl<T: Serialize> Page<T> {
    fn new(template: &'static str, nav: &'static str, op: Option<&Operator>, data: T) -> Self {
        Self { template, status: StatusCode::OK, nav, viewer: op.map(Viewer::of), notice: None, error: None, data }
    }

    fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    fn notice(mut self, notice: Option<String>) -> Self {
        self.notice = notice;
        self
    }

    fn error(mut self, error: Option<String>) -> Self {
        self.error = error;
        self
    }
}

impl<T: Serialize> IntoResponse for Page<T> {
    fn into_response(self) -> Response {
        match render(self.template, self.nav, self.viewer, self.notice, self.error, &self.data) {
            Ok(html) => (self.status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
            Err(e) => {
                tracing::error!(error = %e, template = self.template, "rendering a console page");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The page could not be rendered; the details are in the server log.",
                )
                    .into_response()
            }
        }
    }
}

fn render(
    template: &str,
    nav: &str,
    viewer: Option<Viewer>,
    notice: Option<String>,
    error: Option<String>,
    data: &impl Serialize,
) -> Result<String, String> {
    let env = ENV.as_ref().map_err(|e| format!("loading the templates: {e:#}"))?;
    let tmpl = env.get_template(template).map_err(|e| format!("{e:#}"))?;
    tmpl.render(context! { nav, viewer, notice, error, page => minijinja::Value::from_serialize(data) })
        .map_err(|e| format!("{e:#}"))
}

/// A page with only a title and a message (refusals, missing items).
#[derive(Debug, Serialize)]
struct Message {
    title: String,
    text: String,
}

fn message(op: Option<&Operator>, status: StatusCode, title: &str, text: &str) -> Response {
    Page::new("message.html", "", op, Message { title: title.into(), text: text.into() }).status(status).into_response()
}

/// The refusal page for a form that fails the CSRF check or a role that may not act. The
/// extractor's own rejections (no session: redirect to `/login`) are left to `auth`.
fn refusal(op: &Operator, e: AuthError) -> Response {
    match e {
        AuthError::Csrf => message(
            Some(op),
            StatusCode::FORBIDDEN,
            "Form refused",
            "This form did not carry a valid security token (it may have come from another site, or your \
             session changed). Reload the page and try again.",
        ),
        AuthError::Forbidden => message(
            Some(op),
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Your account can read the console but not act on it. Ask an administrator for the operator role.",
        ),
        other => other.into_response(),
    }
}

/// Checks a POST form: the CSRF token first (nothing acts without it), then the role.
fn check_form(op: &Operator, csrf: Option<&str>, role: Role) -> Result<(), Box<Response>> {
    op.check_csrf(csrf).map_err(|e| Box::new(refusal(op, e)))?;
    op.require(role).map_err(|e| Box::new(refusal(op, e)))
}

/// What an operation's failure looks like to the operator: a message on the page and a status
/// that says which kind of failure it was. Internal details stay in the log.
fn op_failure(e: &OpError) -> (StatusCode, String) {
    match e {
        OpError::NotFound(_) => (StatusCode::NOT_FOUND, e.to_string()),
        OpError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        OpError::Delivery(_) => (StatusCode::BAD_GATEWAY, e.to_string()),
        OpError::Internal(_) => {
            tracing::error!(error = %e, "console operation failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on the server and nothing was changed; the details are in the server log."
                    .to_string(),
            )
        }
    }
}

/// A review-store failure while reading a page.
fn unavailable(op: &Operator, what: &str, e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "{what}");
    message(
        Some(op),
        StatusCode::SERVICE_UNAVAILABLE,
        "Review store unavailable",
        "The review store could not be read; the details are in the server log. Try again in a moment.",
    )
}

/// Only absolute http(s) links are rendered as links: a `javascript:` or `data:` URL written
/// into a document or FAQ file must not become clickable in an operator's browser.
fn safe_link(url: Option<&str>) -> Option<String> {
    let url = url?.trim();
    let lower = url.to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://")).then(|| url.to_string())
}

/// Percent-encodes a query-string component (everything but RFC 3986 unreserved characters).
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `k=v&k=v` with encoded values, skipping empty ones.
fn query_string(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode_component(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Unix seconds as `2026-11-01 14:05 UTC`.
fn format_time(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default()
}

/// An RFC 3339 time as `2026-11-01 14:05 UTC` (as stored when unreadable).
fn format_rfc3339(t: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|t| t.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|_| t.to_string())
}

/// An optional score with `digits` decimals, or a dash.
fn score(v: Option<f32>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}")).unwrap_or_else(|| "–".into())
}

/// The first `max` characters of `s`, with an ellipsis when cut.
fn truncate(s: &str, max: usize) -> String {
    let s = s.trim();
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Non-empty trimmed lines of a textarea.
fn lines(s: Option<&str>) -> Vec<String> {
    s.unwrap_or_default().lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
}

/// A lowercase name from a serde enum (`Outcome`, `AbstainReason`…).
fn enum_name(v: &impl Serialize) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_load_and_never_opt_out_of_escaping() {
        assert!(ENV.as_ref().is_ok(), "{:?}", ENV.as_ref().err());
        for (name, source) in TEMPLATES {
            assert!(!source.contains("|safe") && !source.contains("| safe"), "{name} uses the safe filter");
            assert!(!source.contains("autoescape false"), "{name} turns escaping off");
            assert!(!source.contains("<script"), "{name} has a script");
            assert!(!source.contains("style="), "{name} has an inline style (blocked by the CSP)");
        }
    }

    #[test]
    fn every_post_form_carries_the_csrf_token() {
        for (name, source) in TEMPLATES {
            let mut rest = *source;
            while let Some(start) = rest.find("<form") {
                let end = rest[start..].find("</form>").map(|e| start + e).unwrap_or(rest.len());
                let form = &rest[start..end];
                if form.contains("method=\"post\"") && !form.contains("action=\"/login\"") {
                    assert!(form.contains("name=\"csrf\" value=\"{{ viewer.csrf }}\""), "{name}: {form}");
                }
                rest = &rest[end..];
            }
        }
    }

    #[test]
    fn values_are_escaped() {
        let data = Message { title: "<b>t</b>".into(), text: "<script>alert(\"x\")</script> & 'q'".into() };
        let html = render("message.html", "", None, None, Some("<img src=x onerror=y>".into()), &data).unwrap();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;&#x2f;script&gt; &amp; &#x27;q&#x27;"), "{html}");
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(!html.contains("<b>t</b>"), "{html}");
    }

    #[test]
    fn only_web_links_become_links() {
        assert_eq!(safe_link(Some("https://docs.example/a#b")).as_deref(), Some("https://docs.example/a#b"));
        assert_eq!(safe_link(Some("HTTP://x")).as_deref(), Some("HTTP://x"));
        assert_eq!(safe_link(Some("javascript:alert(1)")), None);
        assert_eq!(safe_link(Some(" data:text/html,x")), None);
        assert_eq!(safe_link(Some("guide/install.html")), None);
        assert_eq!(safe_link(None), None);
    }

    #[test]
    fn query_strings_are_encoded() {
        assert_eq!(
            query_string(&[("status", "open".into()), ("q", "a b&c=d/é".into()), ("empty", String::new())]),
            "status=open&q=a%20b%26c%3Dd%2F%C3%A9"
        );
    }

    #[test]
    fn helpers_format_for_people() {
        assert_eq!(format_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_rfc3339("2026-11-01T14:05:09+02:00"), "2026-11-01 12:05 UTC");
        assert_eq!(score(Some(0.12345), 3), "0.123");
        assert_eq!(score(None, 3), "–");
        assert_eq!(truncate("héllo world", 5), "héllo…");
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(lines(Some(" a \n\n b\r\n")), vec!["a", "b"]);
    }
}
