//! The in-memory index of stored entries, by exact key. The store (`reprise-storage`) keeps the
//! same entries durably; the index is reloaded from it on start.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::Key;
use crate::stored::Stored;

/// One cached answer.
#[derive(Debug)]
pub struct Entry {
    pub exact: Key,
    pub scope: Key,
    pub namespace: String,
    pub model: String,
    /// The target that produced the answer.
    pub provider: String,
    /// The final user message it answers, when the semantic tier may compare against it.
    pub prompt: Option<String>,
    /// The stored answer (a `chat.completion`, a response or an input's embedding; served with
    /// a fresh id and creation time).
    pub completion: Stored,
    /// Its serialised size, what the byte bound counts.
    pub bytes: u64,
    /// Unix milliseconds.
    pub created_ms: u64,
    pub expires_ms: u64,
    pub hits: AtomicU64,
}

impl Entry {
    pub fn age_secs(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.created_ms) / 1000
    }

    pub fn is_fresh(&self, now_ms: u64) -> bool {
        now_ms < self.expires_ms
    }

    /// Token counts of the stored answer, from its `usage` (a chat completion's
    /// `prompt_tokens` and `completion_tokens`, a response's `input_tokens` and `output_tokens`).
    pub fn tokens(&self) -> (u64, u64) {
        self.completion.tokens()
    }
}

/// Bounds of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub max_entries: usize,
    pub max_bytes: u64,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            max_bytes: 1024 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Key, Arc<Entry>>,
    bytes: u64,
}

/// Entries by exact key. Reads take a shared lock for a hash lookup; writes are rare.
#[derive(Debug, Default)]
pub struct ExactIndex {
    inner: RwLock<Inner>,
    bounds: Bounds,
}

impl ExactIndex {
    pub fn new(bounds: Bounds) -> Self {
        Self {
            inner: RwLock::default(),
            bounds,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The fresh entry for `key`, younger than `max_age_secs` when given. Counts the hit.
    pub fn get(&self, key: &Key, now_ms: u64, max_age_secs: Option<u64>) -> Option<Arc<Entry>> {
        let entry = self.read().entries.get(key).cloned()?;
        if !entry.is_fresh(now_ms) || max_age_secs.is_some_and(|m| entry.age_secs(now_ms) >= m) {
            return None;
        }
        entry.hits.fetch_add(1, Ordering::Relaxed);
        Some(entry)
    }

    /// Whether an entry for `key` is held (fresh or not).
    pub fn contains(&self, key: &Key) -> bool {
        self.read().entries.contains_key(key)
    }

    /// Adds (or replaces) an entry, then evicts until within bounds. Returns the entries
    /// evicted (expired first, then the least valuable), for the store and the semantic index to
    /// drop too.
    pub fn insert(&self, entry: Arc<Entry>, now_ms: u64) -> Vec<Arc<Entry>> {
        let mut inner = self.write();
        inner.bytes += entry.bytes;
        if let Some(old) = inner.entries.insert(entry.exact, entry) {
            inner.bytes -= old.bytes;
        }
        let mut evicted = Vec::new();
        if inner.entries.len() > self.bounds.max_entries || inner.bytes > self.bounds.max_bytes {
            // Expired entries go first; then the least valuable: fewest hits, fewest tokens
            // saved per hit, oldest.
            let mut candidates: Vec<(bool, u64, u64, u64, Key)> = inner
                .entries
                .values()
                .map(|e| {
                    let (p, c) = e.tokens();
                    (
                        e.is_fresh(now_ms),
                        e.hits.load(Ordering::Relaxed),
                        p + c,
                        e.created_ms,
                        e.exact,
                    )
                })
                .collect();
            candidates.sort_unstable();
            for (_, _, _, _, key) in candidates {
                if inner.entries.len() <= self.bounds.max_entries
                    && inner.bytes <= self.bounds.max_bytes
                {
                    break;
                }
                if let Some(e) = inner.entries.remove(&key) {
                    inner.bytes -= e.bytes;
                    evicted.push(e);
                }
            }
        }
        evicted
    }

    /// Removes every entry `matches` selects; returns them.
    pub fn remove_where(&self, matches: impl Fn(&Entry) -> bool) -> Vec<Arc<Entry>> {
        let mut inner = self.write();
        let keys: Vec<Key> = inner
            .entries
            .values()
            .filter(|e| matches(e))
            .map(|e| e.exact)
            .collect();
        let mut removed = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(e) = inner.entries.remove(&key) {
                inner.bytes -= e.bytes;
                removed.push(e);
            }
        }
        removed
    }

    pub fn remove(&self, key: &Key) -> Option<Arc<Entry>> {
        let mut inner = self.write();
        let removed = inner.entries.remove(key)?;
        inner.bytes -= removed.bytes;
        Some(removed)
    }

    /// Removes expired entries; returns them.
    pub fn expire(&self, now_ms: u64) -> Vec<Arc<Entry>> {
        let mut inner = self.write();
        let keys: Vec<Key> = inner
            .entries
            .values()
            .filter(|e| !e.is_fresh(now_ms))
            .map(|e| e.exact)
            .collect();
        let mut expired = Vec::with_capacity(keys.len());
        for key in &keys {
            if let Some(e) = inner.entries.remove(key) {
                inner.bytes -= e.bytes;
                expired.push(e);
            }
        }
        expired
    }

    pub fn len(&self) -> usize {
        self.read().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bytes(&self) -> u64 {
        self.read().bytes
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn keys(entries: Vec<Arc<Entry>>) -> Vec<Key> {
        entries.iter().map(|e| e.exact).collect()
    }

    fn entry(n: u8, created_ms: u64, ttl_ms: u64, tokens: u64) -> Arc<Entry> {
        let completion =
            Stored::compact(&json!({"usage": {"prompt_tokens": tokens, "completion_tokens": 0}}));
        Arc::new(Entry {
            exact: Key([n; 32]),
            scope: Key([0; 32]),
            namespace: String::new(),
            model: "m".into(),
            provider: "openai".into(),
            prompt: None,
            bytes: 100,
            completion,
            created_ms,
            expires_ms: created_ms + ttl_ms,
            hits: AtomicU64::new(0),
        })
    }

    #[test]
    fn expired_and_too_old_entries_are_not_served() {
        let index = ExactIndex::new(Bounds::default());
        index.insert(entry(1, 1_000, 10_000, 1), 1_000);
        assert!(index.get(&Key([1; 32]), 5_000, None).is_some());
        assert!(
            index.get(&Key([1; 32]), 5_000, Some(3)).is_none(),
            "4 s old, max-age 3"
        );
        assert!(index.get(&Key([1; 32]), 5_000, Some(5)).is_some());
        assert!(index.get(&Key([1; 32]), 11_000, None).is_none(), "expired");
        assert_eq!(keys(index.expire(11_000)), vec![Key([1; 32])]);
        assert!(index.is_empty());
        assert_eq!(index.bytes(), 0);
    }

    #[test]
    fn eviction_removes_the_least_valuable_first() {
        let index = ExactIndex::new(Bounds {
            max_entries: 3,
            max_bytes: u64::MAX,
        });
        index.insert(entry(1, 1, 1_000_000, 500), 10);
        index.insert(entry(2, 2, 1_000_000, 10), 10);
        index.insert(entry(3, 3, 5, 900), 10); // already expired at t=10
        // Entry 1 is popular.
        index.get(&Key([1; 32]), 10, None);
        let evicted = keys(index.insert(entry(4, 4, 1_000_000, 50), 10));
        assert_eq!(evicted, vec![Key([3; 32])], "expired first");
        let evicted = keys(index.insert(entry(5, 5, 1_000_000, 50), 10));
        assert_eq!(
            evicted,
            vec![Key([2; 32])],
            "no hits and cheapest to recompute"
        );
        assert_eq!(index.len(), 3);
        assert_eq!(index.bytes(), 300);
    }
}
