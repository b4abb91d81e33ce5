//! The in-memory index of stored entries, by exact key. The store (`reprise-storage`) keeps the
//! same entries durably; the index is reloaded from it on start.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

impl Bounds {
    fn exceeded(&self, entries: usize, bytes: u64) -> bool {
        entries > self.max_entries || bytes > self.max_bytes
    }

    /// What eviction brings a full index down to: a hundredth below each bound (the bound
    /// itself when that is less than one entry), so that a full cache chooses what to evict
    /// once per batch, not for every insert.
    pub fn low_water(&self) -> (usize, u64) {
        (
            self.max_entries - self.max_entries / 100,
            self.max_bytes - self.max_bytes / 100,
        )
    }
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
    /// Set while an insert chooses what to evict.
    evicting: AtomicBool,
}

impl ExactIndex {
    pub fn new(bounds: Bounds) -> Self {
        Self {
            inner: RwLock::default(),
            bounds,
            evicting: AtomicBool::new(false),
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

    /// Whether this very entry is held under its key (not removed, nor replaced by another).
    pub fn holds(&self, entry: &Arc<Entry>) -> bool {
        self.read()
            .entries
            .get(&entry.exact)
            .is_some_and(|held| Arc::ptr_eq(held, entry))
    }

    /// Adds (or replaces) an entry, then, when that takes the index over a bound, evicts the
    /// least valuable entries (expired first; then fewest hits, fewest tokens saved per hit,
    /// oldest) down to [`Bounds::low_water`]. Returns the entries evicted, for the store and
    /// the semantic index to drop too.
    ///
    /// Choosing what to evict reads every entry, so it is done for a batch at a time (a
    /// hundredth of the bound) rather than for each insert into a full cache, and under the
    /// shared lock, so that lookups go on meanwhile; one caller at a time does it.
    pub fn insert(&self, entry: Arc<Entry>, now_ms: u64) -> Vec<Arc<Entry>> {
        {
            let mut inner = self.write();
            inner.bytes += entry.bytes;
            if let Some(old) = inner.entries.insert(entry.exact, entry) {
                inner.bytes -= old.bytes;
            }
            if !self.bounds.exceeded(inner.entries.len(), inner.bytes) {
                return Vec::new();
            }
        }
        if self
            .evicting
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            // Another insert is choosing a batch; this entry is over the bound until then.
            return Vec::new();
        }
        let evicted = self.evict(now_ms);
        self.evicting.store(false, Ordering::Release);
        evicted
    }

    fn evict(&self, now_ms: u64) -> Vec<Arc<Entry>> {
        let (low_entries, low_bytes) = self.bounds.low_water();
        let (mut candidates, over_entries, over_bytes, mean_bytes) = {
            let inner = self.read();
            let candidates: Vec<(bool, u64, u64, u64, Key)> = inner
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
            let held = inner.entries.len().max(1) as u64;
            (
                candidates,
                inner.entries.len().saturating_sub(low_entries),
                inner.bytes.saturating_sub(low_bytes),
                (inner.bytes / held).max(1),
            )
        };
        // The batch is most likely the first `batch` candidates in order of value: put those
        // in order and the rest after them unsorted, sorted only if the batch falls short
        // (larger entries than the mean over the byte bound, or entries inserted meanwhile).
        let batch = over_entries
            .max(over_bytes.div_ceil(mean_bytes) as usize)
            .clamp(1, candidates.len().max(1));
        if batch < candidates.len() {
            candidates.select_nth_unstable(batch - 1);
        }
        let split = batch.min(candidates.len());
        candidates[..split].sort_unstable();
        let mut inner = self.write();
        let mut evicted = Vec::with_capacity(batch);
        for i in 0..candidates.len() {
            if inner.entries.len() <= low_entries && inner.bytes <= low_bytes {
                break;
            }
            if i == split {
                candidates[split..].sort_unstable();
            }
            let (_, _, _, created_ms, key) = candidates[i];
            // Stored again since it was read: the new entry is not the one chosen.
            if inner
                .entries
                .get(&key)
                .is_none_or(|e| e.created_ms != created_ms)
            {
                continue;
            }
            if let Some(e) = inner.entries.remove(&key) {
                inner.bytes -= e.bytes;
                evicted.push(e);
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

    /// Removes expired entries; returns them. They are found under the shared lock (lookups
    /// go on while every entry is read), then removed under the exclusive one.
    pub fn expire(&self, now_ms: u64) -> Vec<Arc<Entry>> {
        let keys: Vec<Key> = self
            .read()
            .entries
            .values()
            .filter(|e| !e.is_fresh(now_ms))
            .map(|e| e.exact)
            .collect();
        if keys.is_empty() {
            return Vec::new();
        }
        let mut inner = self.write();
        let mut expired = Vec::with_capacity(keys.len());
        for key in &keys {
            // Stored again meanwhile: the new entry stays.
            if inner.entries.get(key).is_some_and(|e| e.is_fresh(now_ms)) {
                continue;
            }
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

    fn numbered(i: u32, created_ms: u64, bytes: u64, tokens: u64) -> Arc<Entry> {
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(&i.to_le_bytes());
        let entry = entry(0, created_ms, 1_000_000, tokens);
        Arc::new(Entry {
            exact: Key(key),
            bytes,
            ..Arc::into_inner(entry).expect("one owner")
        })
    }

    #[test]
    fn a_full_index_evicts_a_batch_of_the_least_valuable_then_has_room_again() {
        let index = ExactIndex::new(Bounds {
            max_entries: 1_000,
            max_bytes: u64::MAX,
        });
        // Entries 0..1000; the even ones were hit, so the odd ones go first, oldest first.
        for i in 0..1_000 {
            index.insert(numbered(i, u64::from(i), 10, 5), 0);
        }
        for i in (0..1_000).step_by(2) {
            index.get(&numbered(i, 0, 0, 0).exact, 0, None);
        }
        let evicted = index.insert(numbered(1_000, 1_000, 10, 5), 0);
        // Down to a hundredth below the bound: 990 held, 11 evicted.
        assert_eq!(index.len(), 990);
        let expected: Vec<Key> = (0..11)
            .map(|i| numbered(2 * i + 1, 0, 0, 0).exact)
            .collect();
        assert_eq!(keys(evicted), expected);
        assert_eq!(index.bytes(), 9_900);
        // Room for ten more without choosing again.
        for i in 1_001..1_011 {
            assert!(index.insert(numbered(i, u64::from(i), 10, 5), 0).is_empty());
        }
        assert_eq!(index.insert(numbered(1_011, 1_011, 10, 5), 0).len(), 11);
    }

    #[test]
    fn the_byte_bound_evicts_until_within_it_whatever_the_entries_sizes() {
        let index = ExactIndex::new(Bounds {
            max_entries: usize::MAX,
            max_bytes: 10_000,
        });
        // Small entries, the oldest cheapest; then one large entry pushes the index over.
        for i in 0..100 {
            index.insert(numbered(i, u64::from(i), 90, 1), 0);
        }
        let evicted = index.insert(numbered(100, 100, 5_000, 1), 0);
        // 14,000 bytes held; 9,900 is the low-water mark: 46 small entries go, oldest first.
        assert_eq!(evicted.len(), 46);
        assert!(
            keys(evicted)
                .iter()
                .zip(0..)
                .all(|(k, i)| *k == numbered(i, 0, 0, 0).exact)
        );
        assert_eq!(index.bytes(), 9_860);
    }

    #[test]
    fn concurrent_inserts_keep_the_books_and_the_bound() {
        let index = Arc::new(ExactIndex::new(Bounds {
            max_entries: 500,
            max_bytes: u64::MAX,
        }));
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let index = Arc::clone(&index);
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        let n = t * 10_000 + i;
                        index.insert(numbered(n, u64::from(n), 7, 3), u64::from(n));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("an inserting thread panicked");
        }
        // One more insert once no other is choosing: within the bound, bytes counted right.
        index.insert(numbered(99_999, 99_999, 7, 3), 99_999);
        assert!(index.len() <= 500, "{} held", index.len());
        assert_eq!(index.bytes(), 7 * index.len() as u64);
    }
}
