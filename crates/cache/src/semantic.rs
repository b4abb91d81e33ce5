//! The semantic tier's decision: a candidate entry answers a new question when the final user
//! messages are similar enough by meaning *and* the structural guard finds nothing that changes
//! the answer.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::Key;
use crate::embed::cosine;
use crate::guard::{self, Veto};

/// The similarity at or above which a guarded candidate is served, for the default model
/// (potion-base-8M). Calibrated with `reprise eval` (README); each model needs its own.
pub const DEFAULT_THRESHOLD: f32 = 0.80;

/// What the semantic tier concluded about one candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub similarity: f32,
    pub veto: Option<Veto>,
    pub serve: bool,
}

/// Decides whether the answer cached for `cached` may answer `asked`.
pub fn decide(
    asked: &str,
    asked_embedding: &[f32],
    cached: &str,
    cached_embedding: &[f32],
    threshold: f32,
) -> Decision {
    let similarity = cosine(asked_embedding, cached_embedding);
    if similarity < threshold {
        return Decision {
            similarity,
            veto: None,
            serve: false,
        };
    }
    let veto = guard::check(asked, cached).err();
    Decision {
        similarity,
        veto,
        serve: veto.is_none(),
    }
}

/// How many of the most similar candidates the guard examines at most.
pub const GUARDED_CANDIDATES: usize = 8;

/// The questions of one scope, vectors stored contiguously for a fast scan.
#[derive(Debug, Default)]
struct Scope {
    dim: usize,
    vectors: Vec<f32>,
    keys: Vec<Key>,
    texts: Vec<String>,
    position: HashMap<Key, usize>,
}

impl Scope {
    fn push(&mut self, key: Key, embedding: &[f32], text: String) {
        self.dim = embedding.len();
        self.vectors.extend_from_slice(embedding);
        self.position.insert(key, self.keys.len());
        self.keys.push(key);
        self.texts.push(text);
    }

    fn remove(&mut self, key: &Key) {
        let Some(i) = self.position.remove(key) else {
            return;
        };
        self.keys.swap_remove(i);
        self.texts.swap_remove(i);
        let last = self.keys.len();
        if i != last {
            let (head, tail) = self.vectors.split_at_mut(last * self.dim);
            head[i * self.dim..(i + 1) * self.dim].copy_from_slice(&tail[..self.dim]);
            self.position.insert(self.keys[i], i);
        }
        self.vectors.truncate(last * self.dim);
    }
}

/// Dot product in eight independent lanes, which the compiler turns into SIMD (a plain
/// iterator sum is sequential: floating-point addition does not reassociate).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// The semantic tier's index: question vectors by scope, so a question is only ever compared
/// with entries of its own scope. Each scope is scanned linearly (embeddings are unit vectors, so
/// a dot product is the cosine); see the README's cache benchmarks for what that costs.
#[derive(Debug, Default)]
pub struct ScopeIndex {
    scopes: RwLock<HashMap<Key, Scope>>,
}

impl ScopeIndex {
    /// Adds (or replaces) the question of entry `key` in `scope`.
    pub fn insert(&self, scope: Key, key: Key, embedding: &[f32], text: String) {
        let mut scopes = self.scopes.write().unwrap_or_else(|p| p.into_inner());
        let s = scopes.entry(scope).or_default();
        s.remove(&key);
        s.push(key, embedding, text);
    }

    pub fn remove(&self, scope: &Key, key: &Key) {
        let mut scopes = self.scopes.write().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = scopes.get_mut(scope) {
            s.remove(key);
            if s.keys.is_empty() {
                scopes.remove(scope);
            }
        }
    }

    /// Entries of `scope` whose question is at least `threshold` similar to `text` and passes
    /// the guard, best first, with their similarity.
    pub fn find(
        &self,
        scope: &Key,
        text: &str,
        embedding: &[f32],
        threshold: f32,
    ) -> Vec<(Key, f32)> {
        let scopes = self.scopes.read().unwrap_or_else(|p| p.into_inner());
        let Some(s) = scopes.get(scope) else {
            return Vec::new();
        };
        if s.dim != embedding.len() || s.dim == 0 {
            return Vec::new();
        }
        let mut above: Vec<(usize, f32)> = s
            .vectors
            .chunks_exact(s.dim)
            .map(|v| dot(v, embedding))
            .enumerate()
            .filter(|(_, sim)| *sim >= threshold)
            .collect();
        // Only the most similar few go to the guard: templated questions ("... case 1", "... case
        // 2") can put thousands above the threshold, and a veto of the best few means a miss.
        if above.len() > GUARDED_CANDIDATES {
            above.select_nth_unstable_by(GUARDED_CANDIDATES - 1, |a, b| b.1.total_cmp(&a.1));
            above.truncate(GUARDED_CANDIDATES);
        }
        above.sort_by(|a, b| b.1.total_cmp(&a.1));
        above
            .into_iter()
            .filter(|(i, _)| guard::check(text, &s.texts[*i]).is_ok())
            .map(|(i, sim)| (s.keys[i], sim))
            .collect()
    }

    /// How many questions the index holds.
    pub fn len(&self) -> usize {
        let scopes = self.scopes.read().unwrap_or_else(|p| p.into_inner());
        scopes.values().map(|s| s.keys.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn finds_within_a_scope_only_and_forgets_removed_entries() {
        let index = ScopeIndex::default();
        let (s1, s2) = (Key([1; 32]), Key([2; 32]));
        index.insert(
            s1,
            Key([10; 32]),
            &unit(&[1.0, 0.0, 0.0]),
            "Is that pig on the table?".into(),
        );
        index.insert(
            s1,
            Key([11; 32]),
            &unit(&[0.0, 1.0, 0.0]),
            "Something else entirely".into(),
        );
        index.insert(
            s2,
            Key([12; 32]),
            &unit(&[1.0, 0.0, 0.0]),
            "Is that pig on the table?".into(),
        );
        let q = unit(&[0.9, 0.1, 0.0]);
        let found = index.find(&s1, "Is that pig really on the table?", &q, 0.8);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, Key([10; 32]));
        // The guard still applies: a changed number is not served.
        assert!(
            index
                .find(&s1, "Is that pig on table 2?", &q, 0.8)
                .is_empty()
        );
        index.remove(&s1, &Key([10; 32]));
        assert!(
            index
                .find(&s1, "Is that pig really on the table?", &q, 0.8)
                .is_empty()
        );
        assert_eq!(index.len(), 2);
        // Swap-removal kept the other vector intact.
        let found = index.find(
            &s1,
            "Something else entirely",
            &unit(&[0.0, 1.0, 0.0]),
            0.99,
        );
        assert_eq!(found[0].0, Key([11; 32]));
    }
}
