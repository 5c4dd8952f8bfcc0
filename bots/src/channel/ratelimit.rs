//! Per-user and per-chat rate limits (sliding one-minute windows), shared by every channel of a
//! process. Across replicas, limits need a shared store (see the scale-out notes).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

/// Whether a question may be answered now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// Over the limit; the earliest moment a new question would be accepted.
    Limited {
        retry_after: Duration,
    },
}

/// Sliding-window counters.
#[derive(Debug)]
pub struct RateLimiter {
    per_user: usize,
    per_chat: usize,
    hits: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new(per_user_per_minute: u32, per_chat_per_minute: u32) -> Self {
        Self { per_user: per_user_per_minute as usize, per_chat: per_chat_per_minute as usize, hits: Mutex::default() }
    }

    /// Counts a question from `user` in `chat` (keys should include the platform), unless a limit
    /// is reached, in which case nothing is counted.
    pub fn admit(&self, user: &str, chat: &str) -> Admission {
        self.admit_at(user, chat, Instant::now())
    }

    fn admit_at(&self, user: &str, chat: &str, now: Instant) -> Admission {
        let Ok(mut hits) = self.hits.lock() else { return Admission::Allowed };
        if hits.len() > 100_000 {
            hits.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        let user_key = format!("u:{user}");
        let chat_key = format!("c:{chat}");
        let mut wait = Duration::ZERO;
        for (key, limit) in [(&user_key, self.per_user), (&chat_key, self.per_chat)] {
            let q = hits.entry(key.clone()).or_default();
            while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
                q.pop_front();
            }
            if q.len() >= limit
                && let Some(oldest) = q.front()
            {
                wait = wait.max(WINDOW - now.duration_since(*oldest));
            }
        }
        if wait > Duration::ZERO {
            return Admission::Limited { retry_after: wait };
        }
        for key in [user_key, chat_key] {
            hits.entry(key).or_default().push_back(now);
        }
        Admission::Allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_over_the_limit_waits_and_others_are_unaffected() {
        let l = RateLimiter::new(2, 100);
        let t0 = Instant::now();
        assert_eq!(l.admit_at("alice", "c1", t0), Admission::Allowed);
        assert_eq!(l.admit_at("alice", "c1", t0 + Duration::from_secs(10)), Admission::Allowed);
        match l.admit_at("alice", "c1", t0 + Duration::from_secs(20)) {
            Admission::Limited { retry_after } => assert_eq!(retry_after, Duration::from_secs(40)),
            other => panic!("expected a limit, got {other:?}"),
        }
        assert_eq!(l.admit_at("bob", "c1", t0 + Duration::from_secs(20)), Admission::Allowed);
        assert_eq!(l.admit_at("alice", "c1", t0 + Duration::from_secs(61)), Admission::Allowed);
    }

    #[test]
    fn a_busy_chat_is_limited_as_a_whole() {
        let l = RateLimiter::new(100, 3);
        let t0 = Instant::now();
        for u in ["a", "b", "c"] {
            assert_eq!(l.admit_at(u, "group", t0), Admission::Allowed);
        }
        assert!(matches!(l.admit_at("d", "group", t0), Admission::Limited { .. }));
        assert_eq!(l.admit_at("d", "other", t0), Admission::Allowed);
    }
}
