//! The sync planner: compares what a source root holds now with what the index holds for it,
//! and decides what to add, replace, delete and leave alone.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use supportbot_core::store::DocRecord;

/// A file found in a root, identified by its path and the hash of its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanned {
    pub source: String,
    pub content_hash: String,
}

/// What one sync of one root will do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// New files.
    pub added: Vec<String>,
    /// Files whose content changed since they were indexed, or whose indexing was interrupted.
    pub changed: Vec<String>,
    /// Files that are gone (their chunks are deleted), including leftovers of an interrupted
    /// run for files that no longer exist.
    pub removed: Vec<String>,
    pub unchanged: Vec<String>,
}

/// Plans a sync.
/// - `scanned`: files that loaded (or are about to be loaded) from the root now;
/// - `failed`: files present in the root that could not be read or parsed: whatever the index
///   holds for them is kept (a broken edit must not delete the last good version);
/// - `indexed`: completion records of the root;
/// - `with_chunks`: sources that have chunks in the index, complete or not.
pub fn plan(scanned: &[Scanned], failed: &BTreeSet<String>, indexed: &[DocRecord], with_chunks: &[String]) -> Plan {
    let indexed: BTreeMap<&str, &DocRecord> = indexed.iter().map(|r| (r.source.as_str(), r)).collect();
    let present: BTreeSet<&str> =
        scanned.iter().map(|s| s.source.as_str()).chain(failed.iter().map(String::as_str)).collect();
    let with_chunks: BTreeSet<&str> = with_chunks.iter().map(String::as_str).collect();
    let mut plan = Plan::default();
    for s in scanned {
        match indexed.get(s.source.as_str()) {
            Some(r) if r.content_hash == s.content_hash => plan.unchanged.push(s.source.clone()),
            Some(_) => plan.changed.push(s.source.clone()),
            // Chunks without a completion record: an earlier run died while writing this file.
            None if with_chunks.contains(s.source.as_str()) => plan.changed.push(s.source.clone()),
            None => plan.added.push(s.source.clone()),
        }
    }
    let gone: BTreeSet<&str> =
        indexed.keys().copied().chain(with_chunks.iter().copied()).filter(|s| !present.contains(s)).collect();
    plan.removed = gone.into_iter().map(str::to_string).collect();
    plan.added.sort();
    plan.changed.sort();
    plan.unchanged.sort();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use supportbot_core::document::DocKind;

    fn scanned(source: &str, hash: &str) -> Scanned {
        Scanned { source: source.into(), content_hash: hash.into() }
    }

    fn record(source: &str, hash: &str) -> DocRecord {
        DocRecord {
            root: "docs".into(),
            source: source.into(),
            title: String::new(),
            kind: DocKind::Doc,
            content_hash: hash.into(),
            chunks: 1,
            indexed_at: String::new(),
        }
    }

    #[test]
    fn classifies_added_changed_removed_unchanged() {
        let p = plan(
            &[scanned("a.md", "1"), scanned("b.md", "2"), scanned("new.md", "3")],
            &BTreeSet::new(),
            &[record("a.md", "1"), record("b.md", "old"), record("gone.md", "4")],
            &["a.md".into(), "b.md".into(), "gone.md".into()],
        );
        assert_eq!(p.added, vec!["new.md"]);
        assert_eq!(p.changed, vec!["b.md"]);
        assert_eq!(p.removed, vec!["gone.md"]);
        assert_eq!(p.unchanged, vec!["a.md"]);
    }

    #[test]
    fn interrupted_documents_are_redone_or_cleaned_up() {
        // half.md has chunks but no record (killed mid-write) and still exists: redo it.
        // orphan.md has chunks, no record, and is gone: delete its chunks.
        let p = plan(&[scanned("half.md", "1")], &BTreeSet::new(), &[], &["half.md".into(), "orphan.md".into()]);
        assert_eq!(p.changed, vec!["half.md"]);
        assert_eq!(p.removed, vec!["orphan.md"]);
        assert!(p.added.is_empty());
    }

    #[test]
    fn a_file_that_now_fails_to_load_keeps_its_indexed_version() {
        let failed: BTreeSet<String> = ["broken.md".to_string()].into();
        let p = plan(&[], &failed, &[record("broken.md", "1")], &["broken.md".into()]);
        assert_eq!(p, Plan::default());
    }
}
