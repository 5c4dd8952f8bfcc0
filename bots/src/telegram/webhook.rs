//! Webhook delivery: an axum route, mounted on the shared HTTP server, that accepts updates only
//! with the right `X-Telegram-Bot-Api-Secret-Token` (compared in constant time) and hands them to
//! the dispatcher through an update listener.
//!
//! Teloxide's own `webhooks::axum_no_setup` is not used: it compares the secret with `!=` (its
//! source carries a FIXME about it) and panics if an update arrives after the dispatcher is gone.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use futures::Stream;
use teloxide::stop::{StopFlag, StopToken, mk_stop_token};
use teloxide::types::Update;
use teloxide::update_listeners::{AsUpdateStream, UpdateListener};
use tokio::sync::mpsc;

/// The header Telegram echoes the webhook secret in.
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// Updates accepted but not yet taken by the dispatcher; beyond this the route answers 503 and
/// Telegram delivers the update again later.
const QUEUE: usize = 1024;

struct Shared {
    secret: Vec<u8>,
    tx: mpsc::Sender<Update>,
    stopped: StopFlag,
}

/// The listener the dispatcher reads updates from.
pub(crate) struct WebhookListener {
    rx: mpsc::Receiver<Update>,
    token: StopToken,
    flag: StopFlag,
    closed: bool,
}

/// A listener and the route (`POST path`) that feeds it.
pub(crate) fn webhook(path: &str, secret: &str) -> (WebhookListener, Router) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let (token, flag) = mk_stop_token();
    let shared = Arc::new(Shared { secret: secret.as_bytes().to_vec(), tx, stopped: flag.clone() });
    let router = Router::new().route(path, post(receive)).with_state(shared);
    (WebhookListener { rx, token, flag, closed: false }, router)
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let given = headers.get(SECRET_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
    if !constant_time_eq(given, &shared.secret) {
        tracing::warn!("telegram webhook: wrong or missing secret token; rejected");
        return StatusCode::UNAUTHORIZED;
    }
    if shared.stopped.is_stopped() {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let update: Update = match serde_json::from_slice(&body) {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "telegram webhook: the body is not an update");
            return StatusCode::BAD_REQUEST;
        }
    };
    match shared.tx.try_send(update) {
        Ok(()) => StatusCode::OK,
        Err(mpsc::error::TrySendError::Full(_)) => {
            tracing::warn!("telegram webhook: update queue full; Telegram will deliver again");
            StatusCode::SERVICE_UNAVAILABLE
        }
        Err(mpsc::error::TrySendError::Closed(_)) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Compares two byte strings in time that depends only on their lengths, so the secret cannot
/// be guessed byte by byte from response times.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keeps the optimiser from turning the fold into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

impl UpdateListener for WebhookListener {
    type Err = Infallible;

    fn stop_token(&mut self) -> StopToken {
        self.token.clone()
    }
}

impl<'a> AsUpdateStream<'a> for WebhookListener {
    type StreamErr = Infallible;
    type Stream = Pin<Box<dyn Stream<Item = Result<Update, Infallible>> + Send + 'a>>;

    fn as_stream(&'a mut self) -> Self::Stream {
        Box::pin(futures::stream::poll_fn(move |cx| {
            // Once stopped, take no more updates but hand out those already accepted, then end.
            if !self.closed && Pin::new(&mut self.flag).poll(cx).is_ready() {
                self.rx.close();
                self.closed = true;
            }
            self.rx.poll_recv(cx).map(|u| u.map(Ok))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_by_content_and_length() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
        assert!(!constant_time_eq(b"", b"s3cret"));
    }

    fn update(id: u32) -> Update {
        serde_json::from_value(serde_json::json!({"update_id": id, "message": {
            "message_id": 1, "date": 1_700_000_000, "chat": {"id": 7, "type": "private", "first_name": "A"},
            "from": {"id": 7, "is_bot": false, "first_name": "A"}, "text": "hi"}}))
        .expect("update")
    }

    #[tokio::test]
    async fn a_stopped_listener_hands_out_what_it_accepted_then_ends() {
        use futures::StreamExt as _;
        let (tx, rx) = mpsc::channel(4);
        let (token, flag) = mk_stop_token();
        let mut listener = WebhookListener { rx, token, flag, closed: false };
        tx.try_send(update(1)).expect("queued");
        listener.stop_token().stop();
        let mut stream = listener.as_stream();
        assert!(matches!(stream.next().await, Some(Ok(u)) if u.id.0 == 1), "the accepted update is delivered");
        assert!(stream.next().await.is_none(), "then the stream ends");
        drop(stream);
        assert!(tx.try_send(update(2)).is_err(), "nothing is accepted after the stop");
    }
}
