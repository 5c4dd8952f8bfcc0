//! `ConversationMemory`: the bounded recent turns of each conversation, forgotten after a time
//! to live, used to understand follow-up questions ("and on Windows?"). `InMemoryMemory` serves
//! one process; `FileMemory` keeps conversations across command-line invocations
//! (`supportbot ask --conversation ID`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// One question and the answer it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    pub question: String,
    pub answer: String,
    /// Seconds since the Unix epoch.
    pub at: u64,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Turn {
    pub fn new(question: impl Into<String>, answer: impl Into<String>) -> Self {
        Self { question: question.into(), answer: answer.into(), at: now_secs() }
    }
}

/// Recent turns per conversation.
pub trait ConversationMemory: Send + Sync {
    /// The remembered turns of a conversation, oldest first (expired ones are gone).
    fn recent(&self, conversation: &str) -> Vec<Turn>;
    fn record(&self, conversation: &str, turn: Turn);
    /// Forgets a conversation.
    fn forget(&self, conversation: &str);
}

/// Limits shared by the implementations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimits {
    pub max_turns: usize,
    pub ttl: Duration,
}

fn prune(turns: &mut Vec<Turn>, limits: MemoryLimits) {
    let now = now_secs();
    // A conversation idle for longer than the TTL is forgotten as a whole.
    if turns.last().is_some_and(|t| now.saturating_sub(t.at) > limits.ttl.as_secs()) {
        turns.clear();
    }
    let excess = turns.len().saturating_sub(limits.max_turns);
    turns.drain(..excess);
}

/// Conversations in this process's memory.
#[derive(Debug)]
pub struct InMemoryMemory {
    limits: MemoryLimits,
    conversations: Mutex<HashMap<String, Vec<Turn>>>,
}

impl InMemoryMemory {
    pub fn new(limits: MemoryLimits) -> Self {
        Self { limits, conversations: Mutex::default() }
    }
}

impl ConversationMemory for InMemoryMemory {
    fn recent(&self, conversation: &str) -> Vec<Turn> {
        let Ok(mut all) = self.conversations.lock() else { return Vec::new() };
        let Some(turns) = all.get_mut(conversation) else { return Vec::new() };
        prune(turns, self.limits);
        let out = turns.clone();
        if out.is_empty() {
            all.remove(conversation);
        }
        out
    }

    fn record(&self, conversation: &str, turn: Turn) {
        if let Ok(mut all) = self.conversations.lock() {
            // Drop expired conversations now and then, so memory stays bounded.
            if all.len() > 10_000 {
                let ttl = self.limits.ttl.as_secs();
                let now = now_secs();
                all.retain(|_, t| t.last().is_some_and(|t| now.saturating_sub(t.at) <= ttl));
            }
            let turns = all.entry(conversation.to_string()).or_default();
            turns.push(turn);
            prune(turns, self.limits);
        }
    }

    fn forget(&self, conversation: &str) {
        if let Ok(mut all) = self.conversations.lock() {
            all.remove(conversation);
        }
    }
}

/// Conversations as small JSON files in a directory (one per conversation id).
#[derive(Debug)]
pub struct FileMemory {
    dir: PathBuf,
    limits: MemoryLimits,
}

impl FileMemory {
    pub fn new(dir: impl Into<PathBuf>, limits: MemoryLimits) -> Self {
        Self { dir: dir.into(), limits }
    }

    fn path(&self, conversation: &str) -> PathBuf {
        // Ids come from users: hash them into safe file names.
        let id = uuid::Uuid::new_v5(&crate::document::ID_NAMESPACE, conversation.as_bytes());
        self.dir.join(format!("{id}.json"))
    }
}

impl ConversationMemory for FileMemory {
    fn recent(&self, conversation: &str) -> Vec<Turn> {
        let Ok(bytes) = std::fs::read(self.path(conversation)) else { return Vec::new() };
        let mut turns: Vec<Turn> = serde_json::from_slice(&bytes).unwrap_or_default();
        prune(&mut turns, self.limits);
        turns
    }

    fn record(&self, conversation: &str, turn: Turn) {
        let mut turns = self.recent(conversation);
        turns.push(turn);
        prune(&mut turns, self.limits);
        let path = self.path(conversation);
        let write = std::fs::create_dir_all(&self.dir).and_then(|_| {
            let tmp = path.with_extension("json.tmp");
            std::fs::write(&tmp, serde_json::to_vec(&turns).unwrap_or_default())?;
            std::fs::rename(&tmp, &path)
        });
        if let Err(e) = write {
            tracing::warn!(error = %e, "could not save the conversation");
        }
    }

    fn forget(&self, conversation: &str) {
        let _ = std::fs::remove_file(self.path(conversation));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(turns: usize, ttl: u64) -> MemoryLimits {
        MemoryLimits { max_turns: turns, ttl: Duration::from_secs(ttl) }
    }

    #[test]
    fn keeps_only_the_latest_turns_per_conversation() {
        let m = InMemoryMemory::new(limits(2, 60));
        for i in 0..3 {
            m.record("c1", Turn::new(format!("q{i}"), "a"));
        }
        m.record("c2", Turn::new("other", "a"));
        let qs: Vec<_> = m.recent("c1").into_iter().map(|t| t.question).collect();
        assert_eq!(qs, vec!["q1", "q2"]);
        assert_eq!(m.recent("c2").len(), 1);
    }

    #[test]
    fn idle_conversations_expire() {
        let m = InMemoryMemory::new(limits(5, 60));
        m.record("c", Turn { question: "old".into(), answer: "a".into(), at: now_secs() - 120 });
        assert!(m.recent("c").is_empty());
    }

    #[test]
    fn file_memory_survives_a_new_instance() {
        let dir = tempfile::tempdir().unwrap();
        FileMemory::new(dir.path(), limits(4, 60)).record("../../etc/passwd", Turn::new("q", "a"));
        let again = FileMemory::new(dir.path(), limits(4, 60));
        assert_eq!(again.recent("../../etc/passwd").len(), 1);
        assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| e.unwrap().path().starts_with(dir.path())));
        again.forget("../../etc/passwd");
        assert!(again.recent("../../etc/passwd").is_empty());
    }
}
