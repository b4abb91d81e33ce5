//! The semantic tier's decision: a candidate entry answers a new question when the final user
//! messages are similar enough by meaning *and* the structural guard finds nothing that changes
//! the answer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use rustc_hash::FxHashMap;

use crate::Key;
use crate::embed::{Embedder, cosine};
use crate::guard::{self, Closeness, Veto};

/// The similarity at or above which a guarded candidate is served, for the default model
/// (potion-base-8M). Calibrated with `reprise eval` (README); each model needs its own.
pub const DEFAULT_THRESHOLD: f32 = 0.80;

/// How much more similar than every other guarded candidate the served one must be (see
/// [`ScopeIndex::serve`]). Calibrated with `reprise eval` (README).
pub const DEFAULT_MARGIN: f32 = 0.015;

/// A question put to the semantic tier: its text, its embedding, and the guard's reading of it,
/// made the first time a lookup needs it (when it finds candidates) and kept for the insert of
/// its answer (see [`ScopeIndex::insert_analysed_if`]).
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    pub text: &'a str,
    pub embedding: &'a [f32],
    pub analysis: &'a OnceLock<guard::Analysis>,
}

/// How the semantic tier picks the entry it serves (see [`ScopeIndex::serve`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Matching {
    /// The similarity at or above which a guarded candidate may be served.
    pub threshold: f32,
    /// How far ahead of every other guarded candidate the served one must be.
    pub margin: f32,
}

impl Default for Matching {
    fn default() -> Self {
        Self {
            threshold: DEFAULT_THRESHOLD,
            margin: DEFAULT_MARGIN,
        }
    }
}

/// Why a lookup that found candidates served none of them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Nothing refused (no candidate, or one was served).
    #[default]
    None,
    /// The guard vetoed the most similar question.
    Vetoed,
    /// Another guarded question came within the margin of the most similar one.
    Ambiguous,
}

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
    let veto = guard::check(asked, cached, Closeness::of(similarity, threshold)).err();
    Decision {
        similarity,
        veto,
        serve: veto.is_none(),
    }
}

/// How many of the most similar candidates the guard examines at most.
pub const GUARDED_CANDIDATES: usize = 8;

/// Scopes up to this many questions are scanned exactly (about 50 µs); a scope that grows past
/// it moves to an approximate nearest-neighbour graph (HNSW, `usearch`), whose lookups cost a
/// few tenths of a millisecond at 100k entries (README). The graph may miss a neighbour now and
/// then; that costs a cache miss, never a wrong answer (the threshold and the guard still apply).
pub const EXACT_SCAN_LIMIT: usize = 1024;

/// How many threads may search one graph at once; a search beyond that finds nothing (a miss).
const GRAPH_THREADS: usize = 64;

/// A scope's approximate nearest-neighbour graph (HNSW, `usearch`), built once the scope
/// outgrows [`EXACT_SCAN_LIMIT`]. Its vectors are quantised to 8 bits (a quarter of the memory
/// and of the bandwidth a search spends); it only proposes candidates, which are then scored
/// exactly against the scope's full-precision vectors.
struct Graph(usearch::Index);

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Graph({} vectors)", self.0.size())
    }
}

/// The index refused an operation (out of memory, or a vector of the wrong size).
#[derive(Debug, thiserror::Error)]
#[error("semantic index: {0}")]
pub struct IndexError(String);

fn graph_error(e: impl std::fmt::Display) -> IndexError {
    IndexError(e.to_string())
}

fn new_graph(dim: usize, capacity: usize) -> Result<usearch::Index, IndexError> {
    let options = usearch::IndexOptions {
        dimensions: dim,
        // Embeddings are unit vectors (the gateway normalises remote ones), so the inner
        // product ranks as the cosine does, and the graph only ranks (exact scores come from
        // the f32 copies): 8-bit inner products are enough. They cost less than 8-bit cosines,
        // which also compute both norms each time: in a one-off trial (100k questions of random
        // words, 8-bit, SIMD) inserts took about a third less time and searches 15 to 35 %
        // less, finding the nearest question as often.
        metric: usearch::MetricKind::IP,
        quantization: usearch::ScalarKind::I8,
        // The library's default connectivity and insert breadth gave the same recall with ~2x
        // slower inserts. The search breadth grows with the scope (see `search_breadth`).
        connectivity: 16,
        expansion_add: 64,
        expansion_search: search_breadth(0),
        multi: false,
    };
    let graph = usearch::Index::new(&options).map_err(graph_error)?;
    graph
        .reserve_capacity_and_threads(capacity, GRAPH_THREADS)
        .map_err(graph_error)?;
    Ok(graph)
}

/// The graph's search breadth (HNSW's `ef`) for a scope of `n` questions. 24 up to 100k: in a
/// one-off trial on QQP's 73k questions (a stand-alone usearch program, 8-bit, SIMD) it found the
/// nearest question about as often as 40 did (98.3 % against 98.8 %) in three quarters of the
/// time, and `reprise-bench cache` finds 94 % of random-word questions at 100k. A graph of a
/// given breadth finds less as it grows: in a one-off trial at 1M random-word questions, 24 found
/// 72 % (0.29 ms p50), 48 found 86 % (0.47 ms), 64 found 89 % (0.63 ms), 96 found 93 % (0.86 ms).
/// A question the graph misses costs an upstream call (hundreds of milliseconds), so past 100k the
/// breadth widens with the scope's size: 24 + 40 log10(n / 100k), 43 at 300k, 64 at 1M.
fn search_breadth(n: usize) -> usize {
    const BASE: usize = 24;
    if n <= 100_000 {
        return BASE;
    }
    BASE + (40.0 * (n as f64 / 100_000.0).log10()).round() as usize
}

/// Sets `graph`'s search breadth for a scope of `n` questions (see [`search_breadth`]). Only
/// with no search under way (the scope's lock held for writing): the breadth is a plain field of
/// the graph.
fn fit_breadth(graph: &usearch::Index, n: usize) {
    let breadth = search_breadth(n);
    if graph.expansion_search() != breadth {
        graph.change_expansion_search(breadth);
    }
}

/// The next label a vector takes in a graph. Labels are unique in the process and never reused,
/// so a label handed out before its vector reaches the graph (see [`Scope::push`]) names no other
/// entry when it gets there, even in a scope rebuilt meanwhile (see [`ScopeIndex::load`]).
static NEXT_LABEL: AtomicU64 = AtomicU64::new(0);

/// The questions of one scope. Keys, texts and vectors are kept dense (position `i` in each is
/// one entry); removal moves the last entry into the hole. The graph names entries by label,
/// which stays with an entry as it moves.
#[derive(Debug, Default)]
struct Scope {
    dim: usize,
    /// Every vector, contiguous, full precision: scanned exactly while the scope is small,
    /// and the exact scores of the graph's candidates once it is large.
    flat: Vec<f32>,
    graph: Option<Graph>,
    keys: Vec<Key>,
    /// Each question as the guard reads it, analysed once when stored: a lookup guards up to
    /// [`GUARDED_CANDIDATES`] of them, and re-reading each text was most of a hit's guard cost.
    analyses: Vec<guard::Analysis>,
    /// Each entry's label in the graph (see [`NEXT_LABEL`]).
    labels: Vec<u64>,
    position: HashMap<Key, usize>,
    /// The position of each label's entry.
    by_label: FxHashMap<u64, usize>,
}

impl Scope {
    /// Adds an entry. A small scope is scanned exactly, so that is all; the entry that takes it
    /// past [`EXACT_SCAN_LIMIT`] builds the graph of every vector. Past that, returns the label
    /// under which its vector is still to be added to the graph ([`Scope::add_to_graph`]),
    /// which the caller does with the scope shared rather than exclusive (the graph takes adds
    /// alongside searches), so lookups go on meanwhile.
    fn push(
        &mut self,
        key: Key,
        embedding: &[f32],
        analysis: guard::Analysis,
    ) -> Result<Option<u64>, IndexError> {
        if self.keys.is_empty() {
            self.dim = embedding.len();
        } else if embedding.len() != self.dim {
            return Err(IndexError(format!(
                "a {}-dimension vector in a scope of {} dimensions",
                embedding.len(),
                self.dim
            )));
        }
        let label = self.append(key, embedding, analysis);
        let n = self.keys.len();
        // Whether the vector is still to be added: not when the graph is built with it.
        let pending = match &self.graph {
            None => self.build_graph(1).map(|()| false),
            // Room for every entry, those whose vectors are still on their way in included.
            Some(Graph(graph)) if n >= graph.capacity() => graph
                .reserve_capacity_and_threads(2 * n, GRAPH_THREADS)
                .map_err(graph_error)
                .map(|()| true),
            Some(_) => Ok(true),
        };
        let pending = match pending {
            Ok(pending) => pending,
            Err(err) => {
                // Left out of the semantic tier altogether, as the caller is told.
                self.remove(&key)?;
                return Err(err);
            }
        };
        let Some(Graph(graph)) = &self.graph else {
            return Ok(None);
        };
        fit_breadth(graph, n);
        Ok(pending.then_some(label))
    }

    /// Adds the vector of the entry [`Scope::push`] gave `label` to the graph, unless that entry
    /// was removed meanwhile. Needs the scope only shared: the graph takes adds alongside
    /// searches (removals, which it does not, need the scope exclusive).
    fn add_to_graph(&self, label: u64, embedding: &[f32]) -> Result<(), IndexError> {
        match &self.graph {
            Some(Graph(graph)) if self.by_label.contains_key(&label) => {
                graph.add(label, embedding).map_err(graph_error)
            }
            _ => Ok(()),
        }
    }

    /// [`Scope::push`], its vector added to the graph at once (the scope held exclusively).
    fn push_now(
        &mut self,
        key: Key,
        embedding: &[f32],
        analysis: guard::Analysis,
    ) -> Result<(), IndexError> {
        match self.push(key, embedding, analysis)? {
            Some(label) => self.add_to_graph(label, embedding),
            None => Ok(()),
        }
    }

    /// Adds an entry to the dense columns (not to the graph); returns its label.
    fn append(&mut self, key: Key, embedding: &[f32], analysis: guard::Analysis) -> u64 {
        let label = NEXT_LABEL.fetch_add(1, Ordering::Relaxed);
        self.position.insert(key, self.keys.len());
        self.by_label.insert(label, self.keys.len());
        self.keys.push(key);
        self.labels.push(label);
        self.flat.extend_from_slice(embedding);
        self.analyses.push(analysis);
        label
    }

    /// Builds the graph of a scope past [`EXACT_SCAN_LIMIT`] that has none (filled in bulk, or
    /// just grown past it), adding its vectors on `threads` threads at once (the graph takes
    /// concurrent inserts).
    fn build_graph(&mut self, threads: usize) -> Result<(), IndexError> {
        let n = self.keys.len();
        if n <= EXACT_SCAN_LIMIT || self.graph.is_some() {
            return Ok(());
        }
        let graph = new_graph(self.dim, 2 * n)?;
        let (dim, flat, labels) = (self.dim, &self.flat, &self.labels);
        let failed = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let graph = &graph;
                    s.spawn(move || {
                        (t..n)
                            .step_by(threads)
                            .try_for_each(|i| graph.add(labels[i], &flat[i * dim..(i + 1) * dim]))
                            .err()
                            .map(|e| e.to_string())
                    })
                })
                .collect();
            workers.into_iter().find_map(|w| {
                w.join()
                    .unwrap_or_else(|_| Some("a graph builder panicked".into()))
            })
        });
        if let Some(err) = failed {
            return Err(IndexError(err));
        }
        fit_breadth(&graph, n);
        self.graph = Some(Graph(graph));
        Ok(())
    }

    fn remove(&mut self, key: &Key) -> Result<(), IndexError> {
        let Some(i) = self.position.remove(key) else {
            return Ok(());
        };
        self.keys.swap_remove(i);
        self.analyses.swap_remove(i);
        let label = self.labels.swap_remove(i);
        self.by_label.remove(&label);
        let last = self.keys.len();
        if i != last {
            let (head, tail) = self.flat.split_at_mut(last * self.dim);
            head[i * self.dim..(i + 1) * self.dim].copy_from_slice(&tail[..self.dim]);
            self.position.insert(self.keys[i], i);
            self.by_label.insert(self.labels[i], i);
        }
        self.flat.truncate(last * self.dim);
        if let Some(Graph(graph)) = &self.graph {
            // A label whose vector has not reached the graph yet is not in it: nothing to do.
            graph.remove(label).map_err(graph_error)?;
            fit_breadth(graph, last);
        }
        Ok(())
    }

    /// Whether the guard lets the question at position `i`, `similarity` similar, answer
    /// `asked`.
    fn passes(&self, asked: &guard::Analysis, i: usize, similarity: f32, threshold: f32) -> bool {
        let closeness = Closeness::of(similarity, threshold);
        guard::check_analysed(asked, &self.analyses[i], closeness).is_ok()
    }

    /// The positions of the (at most `count`) most similar questions at or above `threshold`,
    /// best first.
    fn nearest(&self, embedding: &[f32], threshold: f32, count: usize) -> Vec<(usize, f32)> {
        let exact = |i: usize| dot(&self.flat[i * self.dim..(i + 1) * self.dim], embedding);
        let mut above: Vec<(usize, f32)> = match &self.graph {
            None => (0..self.keys.len())
                .map(|i| (i, exact(i)))
                .filter(|(_, sim)| *sim >= threshold)
                .collect(),
            // The graph's candidates, scored exactly. A failed search (every search thread
            // busy) is a miss.
            Some(Graph(graph)) => match graph.search(embedding, count) {
                Ok(found) => found
                    .keys
                    .iter()
                    .filter_map(|label| self.by_label.get(label).copied())
                    .map(|i| (i, exact(i)))
                    .filter(|(_, sim)| *sim >= threshold)
                    .collect(),
                Err(_) => Vec::new(),
            },
        };
        if above.len() > count {
            above.select_nth_unstable_by(count - 1, |a, b| b.1.total_cmp(&a.1));
            above.truncate(count);
        }
        above.sort_by(|a, b| b.1.total_cmp(&a.1));
        above
    }
}

/// `f` applied to every item, on `threads` threads (contiguous chunks), in order.
fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let chunk = items.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let f = &f;
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Dot product in eight independent lanes, which the compiler turns into SIMD (a plain
/// iterator sum is sequential: floating-point addition does not reassociate).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
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
/// with entries of its own scope. Small scopes are scanned exactly (embeddings are unit vectors,
/// so a dot product is the cosine); large ones are searched through an HNSW graph (see
/// [`EXACT_SCAN_LIMIT`] and the README's cache benchmarks).
#[derive(Debug, Default)]
pub struct ScopeIndex {
    /// Each scope behind its own lock. An insert holds it exclusively only to append to the
    /// scope's columns (microseconds); its vector goes into the graph, most of its time, with
    /// the lock shared, so lookups of the scope go on meanwhile.
    scopes: RwLock<HashMap<Key, Arc<RwLock<Scope>>>>,
}

impl ScopeIndex {
    /// Adds (or replaces) the question of entry `key` in `scope`. An error leaves the entry out
    /// of the semantic tier (it can still be served by the exact tier).
    pub fn insert(
        &self,
        scope: Key,
        key: Key,
        embedding: &[f32],
        text: &str,
    ) -> Result<(), IndexError> {
        self.insert_if(scope, key, embedding, text, || true)
            .map(|_| ())
    }

    /// [`ScopeIndex::insert`] if `wanted()`, asked with the scope locked: a caller keeping the
    /// tier in line with another index (see [`ScopeIndex::remove_unless`]) asks it whether the
    /// entry is still there, and no removal of the scope can come between its answer and the
    /// insert. Returns whether it was wanted.
    pub fn insert_if(
        &self,
        scope: Key,
        key: Key,
        embedding: &[f32],
        text: &str,
        wanted: impl FnOnce() -> bool,
    ) -> Result<bool, IndexError> {
        // Analysed before taking any lock.
        self.insert_analysed_if(scope, key, embedding, guard::Analysis::of(text), wanted)
    }

    /// [`ScopeIndex::insert_if`] for a question the guard has read already (its lookup did).
    pub fn insert_analysed_if(
        &self,
        scope: Key,
        key: Key,
        embedding: &[f32],
        analysis: guard::Analysis,
        wanted: impl FnOnce() -> bool,
    ) -> Result<bool, IndexError> {
        let (scope_key, scope) = {
            let mut scopes = self.scopes.write().unwrap_or_else(|p| p.into_inner());
            (scope, scopes.entry(scope).or_default().clone())
        };
        let pending = {
            let mut s = scope.write().unwrap_or_else(|p| p.into_inner());
            if !wanted() {
                let empty = s.keys.is_empty();
                drop(s);
                drop(scope);
                // A scope made for this question alone goes again.
                if empty {
                    self.drop_if_idle(&scope_key);
                }
                return Ok(false);
            }
            s.remove(&key)?;
            s.push(key, embedding, analysis)?
        };
        // Into the graph (most of an insert's time at 100k entries) with lookups going on.
        if let Some(label) = pending {
            scope
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .add_to_graph(label, embedding)?;
        }
        Ok(true)
    }

    pub fn remove(&self, scope: &Key, key: &Key) -> Result<(), IndexError> {
        self.remove_unless(scope, key, || false)
    }

    /// Drops `scope` from the map if it holds no question and no call holds it.
    fn drop_if_idle(&self, scope: &Key) {
        let mut scopes = self.scopes.write().unwrap_or_else(|p| p.into_inner());
        let idle = scopes.get(scope).is_some_and(|shared| {
            Arc::strong_count(shared) == 1
                && shared
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .keys
                    .is_empty()
        });
        if idle {
            scopes.remove(scope);
        }
    }

    /// [`ScopeIndex::remove`] unless `kept()`, asked with the scope locked: a caller whose
    /// entries live in another index too asks it whether the key was stored again since it
    /// left. As long as that caller adds to the other index before this one (and asks
    /// [`ScopeIndex::insert_if`] whether the entry is still there), the last of its inserts and
    /// removals of a key sees the other index's final word on it, whatever order they run in.
    pub fn remove_unless(
        &self,
        scope: &Key,
        key: &Key,
        kept: impl FnOnce() -> bool,
    ) -> Result<(), IndexError> {
        let mut scopes = self.scopes.write().unwrap_or_else(|p| p.into_inner());
        if let Some(shared) = scopes.get(scope) {
            let mut s = shared.write().unwrap_or_else(|p| p.into_inner());
            if kept() {
                return Ok(());
            }
            let removed = s.remove(key);
            // An empty scope is dropped unless another call holds it (an insert may be about
            // to fill it; no new holder can appear while the map is locked for writing).
            if s.keys.is_empty() && Arc::strong_count(shared) == 1 {
                drop(s);
                scopes.remove(scope);
            }
            removed?;
        }
        Ok(())
    }

    /// Entries of `scope` whose question is at least `threshold` similar to `text` and passes
    /// the guard, best first, with their similarity (of the [`GUARDED_CANDIDATES`] most similar).
    pub fn find(
        &self,
        scope: &Key,
        text: &str,
        embedding: &[f32],
        threshold: f32,
    ) -> Vec<(Key, f32)> {
        let analysis = OnceLock::new();
        let asked = Asked {
            text,
            embedding,
            analysis: &analysis,
        };
        self.with_candidates(scope, asked, threshold, |s, asked, candidates| {
            candidates
                .iter()
                .filter(|&&(i, similarity)| s.passes(asked, i, similarity, threshold))
                .map(|&(i, similarity)| (s.keys[i], similarity))
                .collect()
        })
        .unwrap_or_default()
    }

    /// The entry the semantic tier serves for `text`, if any: the most similar question, when
    /// it is at or above the threshold and passes the guard, unless another question that
    /// passes it too comes within the margin of its similarity. Two cached questions the new
    /// one resembles about equally are two possible answers, and the cache cannot tell which
    /// was meant, so that is a miss.
    pub fn serve(
        &self,
        scope: &Key,
        text: &str,
        embedding: &[f32],
        matching: Matching,
    ) -> Option<(Key, f32)> {
        let analysis = OnceLock::new();
        let asked = Asked {
            text,
            embedding,
            analysis: &analysis,
        };
        self.find_first(scope, asked, matching, &mut Refusal::None, |k, s| {
            Some((k, s))
        })
    }

    /// Offers `accept` the entry [`ScopeIndex::serve`] would choose, and the next ones if it
    /// declines (an entry expired meanwhile): a hit guards only the candidates it needs.
    /// `refusal` says why nothing was served when candidates were found.
    pub fn find_first<T>(
        &self,
        scope: &Key,
        asked: Asked<'_>,
        Matching { threshold, margin }: Matching,
        refusal: &mut Refusal,
        mut accept: impl FnMut(Key, f32) -> Option<T>,
    ) -> Option<T> {
        self.with_candidates(scope, asked, threshold, |s, asked, candidates| {
            for (n, &(i, similarity)) in candidates.iter().enumerate() {
                // A veto of the most similar question is a miss, not a reason to serve the
                // next: the new question resembles that one most and differs from it in
                // something that changes the answer, so a less similar entry answering it
                // would be a guess (on gptcache-mock.json this fall-through made most of the
                // wrong hits). Only an entry that expired meanwhile passes the turn on.
                if !s.passes(asked, i, similarity, threshold) {
                    *refusal = Refusal::Vetoed;
                    return None;
                }
                let rival = candidates[n + 1..]
                    .iter()
                    .take_while(|&&(_, other)| similarity - other < margin)
                    .any(|&(j, other)| s.passes(asked, j, other, threshold));
                if rival {
                    *refusal = Refusal::Ambiguous;
                    return None;
                }
                if let Some(found) = accept(s.keys[i], similarity) {
                    return Some(found);
                }
            }
            None
        })
        .flatten()
    }

    /// Runs `f` on the scope, the asked question's analysis (made now if not yet) and the
    /// positions and similarities of the most similar questions at or above `threshold`, best
    /// first (none: `None`).
    fn with_candidates<R>(
        &self,
        scope: &Key,
        Asked {
            text,
            embedding,
            analysis,
        }: Asked<'_>,
        threshold: f32,
        f: impl FnOnce(&Scope, &guard::Analysis, &[(usize, f32)]) -> R,
    ) -> Option<R> {
        let shared = self
            .scopes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(scope)
            .cloned()?;
        let s = shared.read().unwrap_or_else(|p| p.into_inner());
        if s.dim != embedding.len() || s.dim == 0 {
            return None;
        }
        // Only the most similar few go to the guard: templated questions ("... case 1", "... case
        // 2") can put thousands above the threshold, and a veto of the best few means a miss.
        let candidates = s.nearest(embedding, threshold, GUARDED_CANDIDATES);
        if candidates.is_empty() {
            return None;
        }
        let asked = analysis.get_or_init(|| guard::Analysis::of(text));
        Some(f(&s, asked, &candidates))
    }

    /// Adds many questions at once (the stored entries, on start): each is embedded with
    /// `embedder` and read by the guard, and each scope's graph is built, on `threads` threads,
    /// away from the live index, which goes on serving meanwhile; then the built scopes join it.
    /// A scope that gained entries in the meantime keeps them. Returns how many were added;
    /// a question whose vector has another size than its scope's is left out, and a scope whose
    /// graph cannot be built is left out (the first such error is returned once the others are
    /// in).
    pub fn load(
        &self,
        questions: Vec<(Key, Key, String)>,
        embedder: &dyn Embedder,
        threads: usize,
    ) -> Result<usize, IndexError> {
        let threads = threads.max(1);
        let read: Vec<(Vec<f32>, guard::Analysis)> = parallel_map(&questions, threads, |q| {
            (embedder.embed_question(&q.2), guard::Analysis::of(&q.2))
        });
        type Read = (Key, Vec<f32>, guard::Analysis);
        let mut by_scope: HashMap<Key, Vec<Read>> = HashMap::new();
        for ((scope, key, _), (embedding, analysis)) in questions.iter().zip(read) {
            by_scope
                .entry(*scope)
                .or_default()
                .push((*key, embedding, analysis));
        }
        let (mut added, mut failed) = (0, None);
        for (scope_key, members) in by_scope {
            let mut built = Scope::default();
            for (key, embedding, analysis) in members {
                if built.keys.is_empty() {
                    built.dim = embedding.len();
                }
                if embedding.len() != built.dim || built.position.contains_key(&key) {
                    continue;
                }
                built.append(key, &embedding, analysis);
            }
            // A scope that fails is left out; the others are still loaded.
            let n = built.keys.len();
            match built
                .build_graph(threads)
                .and_then(|()| self.join(scope_key, built))
            {
                Ok(()) => added += n,
                Err(err) => failed = failed.or(Some(err)),
            }
        }
        match failed {
            Some(err) => Err(err),
            None => Ok(added),
        }
    }

    /// Puts a scope built by [`ScopeIndex::load`] in place, with the entries its live
    /// counterpart gained meanwhile.
    fn join(&self, scope_key: Key, mut built: Scope) -> Result<(), IndexError> {
        let mut scopes = self.scopes.write().unwrap_or_else(|p| p.into_inner());
        let Some(live) = scopes.get(&scope_key) else {
            scopes.insert(scope_key, Arc::new(RwLock::new(built)));
            return Ok(());
        };
        let mut live = live.write().unwrap_or_else(|p| p.into_inner());
        if live.dim != built.dim && !live.keys.is_empty() {
            // A model change between runs cannot happen within one; keep what serves now.
            return Err(IndexError(format!(
                "stored questions of {} dimensions for a scope of {}",
                built.dim, live.dim
            )));
        }
        let Scope {
            dim,
            flat,
            keys,
            analyses,
            ..
        } = std::mem::take(&mut *live);
        let moved = || {
            for ((i, key), analysis) in keys.iter().enumerate().zip(analyses) {
                built.remove(key)?;
                built.push_now(*key, &flat[i * dim..(i + 1) * dim], analysis)?;
            }
            Ok(())
        };
        let result = moved();
        *live = built;
        result
    }

    /// How many questions the index holds.
    pub fn len(&self) -> usize {
        let scopes = self.scopes.read().unwrap_or_else(|p| p.into_inner());
        scopes
            .values()
            .map(|s| s.read().unwrap_or_else(|p| p.into_inner()).keys.len())
            .sum()
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
    fn the_search_widens_past_100k_questions() {
        assert_eq!(search_breadth(0), 24);
        assert_eq!(search_breadth(100_000), 24);
        assert_eq!(search_breadth(300_000), 43);
        assert_eq!(search_breadth(1_000_000), 64);
        let widths: Vec<usize> = (1..=40).map(|k| search_breadth(k * 50_000)).collect();
        assert!(widths.windows(2).all(|w| w[0] <= w[1]), "{widths:?}");
        assert!(search_breadth(usize::MAX) >= GUARDED_CANDIDATES);
    }

    #[test]
    fn finds_within_a_scope_only_and_forgets_removed_entries() {
        let index = ScopeIndex::default();
        let (s1, s2) = (Key([1; 32]), Key([2; 32]));
        for (scope, key, vector, text) in [
            (s1, 10, [1.0, 0.0, 0.0], "Is that pig on the table?"),
            (s1, 11, [0.0, 1.0, 0.0], "Something else entirely"),
            (s2, 12, [1.0, 0.0, 0.0], "Is that pig on the table?"),
        ] {
            index
                .insert(scope, Key([key; 32]), &unit(&vector), text)
                .unwrap();
        }
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
        index.remove(&s1, &Key([10; 32])).unwrap();
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

    #[test]
    fn only_the_most_similar_question_is_served_and_only_when_it_stands_out() {
        let index = ScopeIndex::default();
        let insert = |scope: u8, key: u8, vector: [f32; 3], text: &str| {
            index
                .insert(Key([scope; 32]), Key([key; 32]), &unit(&vector), text)
                .unwrap();
        };
        // The most similar question is vetoed (another number); the next one passes the guard
        // but is not served in its place.
        insert(1, 1, [1.0, 0.0, 0.0], "How many moons does planet 7 have?");
        insert(1, 2, [0.9, 0.3, 0.0], "How many moons has planet 8?");
        let (scope, asked) = (Key([1; 32]), "How many moons does planet 8 have?");
        let q = unit(&[1.0, 0.05, 0.0]);
        assert_eq!(index.find(&scope, asked, &q, 0.8).len(), 1);
        let matching = |margin| Matching {
            threshold: 0.8,
            margin,
        };
        assert_eq!(index.serve(&scope, asked, &q, matching(0.0)), None);
        let mut refusal = Refusal::None;
        let analysis = OnceLock::new();
        let question = Asked {
            text: asked,
            embedding: &q,
            analysis: &analysis,
        };
        let served = index.find_first(&scope, question, matching(0.0), &mut refusal, |k, _| {
            Some(k)
        });
        assert_eq!((served, refusal), (None, Refusal::Vetoed));
        // The lookup kept its reading of the question, for the insert of its answer; one that
        // found no candidate did not need one.
        let kept = analysis.get().map(|a| format!("{a:?}"));
        assert_eq!(kept, Some(format!("{:?}", guard::Analysis::of(asked))));
        let far = OnceLock::new();
        let nowhere = Asked {
            text: asked,
            embedding: &unit(&[0.0, 0.0, 1.0]),
            analysis: &far,
        };
        let found = index.find_first(&scope, nowhere, matching(0.0), &mut refusal, |k, _| Some(k));
        assert!(found.is_none() && far.get().is_none());
        // Two questions that pass the guard and are about as similar: ambiguous, a miss,
        // unless one stands out by the margin.
        insert(
            2,
            3,
            [1.0, 0.0, 0.1],
            "How many moons does the planet have?",
        );
        insert(
            2,
            4,
            [1.0, 0.1, 0.0],
            "How many moons does this planet have?",
        );
        let (scope, asked) = (Key([2; 32]), "How many moons does that planet have?");
        let q = unit(&[0.95, 0.1, 0.12]);
        let found = index.find(&scope, asked, &q, 0.8);
        assert_eq!(found.len(), 2, "{found:?}");
        let gap = found[0].1 - found[1].1;
        assert!(gap > 0.0);
        assert_eq!(index.serve(&scope, asked, &q, matching(gap + 0.001)), None);
        let mut refusal = Refusal::None;
        let question = Asked {
            text: asked,
            embedding: &q,
            analysis: &OnceLock::new(),
        };
        let served = index.find_first(
            &scope,
            question,
            matching(gap + 0.001),
            &mut refusal,
            |k, _| Some(k),
        );
        assert_eq!((served, refusal), (None, Refusal::Ambiguous));
        assert_eq!(
            index
                .serve(&scope, asked, &q, matching(gap - 0.001))
                .map(|f| f.0),
            Some(found[0].0)
        );
    }

    /// A deterministic pseudo-random unit vector (xorshift), so the test needs no extra crate.
    fn random_unit(seed: u64, dim: usize) -> Vec<f32> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let v: Vec<f32> = (0..dim)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        unit(&v)
    }

    fn key(i: usize) -> Key {
        let mut k = [0u8; 32];
        k[..8].copy_from_slice(&(i as u64).to_le_bytes());
        Key(k)
    }

    /// Embeds "question N" as the random unit vector of seed N (the size of "wide" texts is
    /// one more), so that bulk loads can be checked against [`random_unit`].
    #[derive(Debug)]
    struct Numbered(usize);

    impl crate::embed::Embedder for Numbered {
        fn embed(&self, text: &str) -> Vec<f32> {
            let n: u64 = text
                .trim_start_matches("question ")
                .trim_start_matches("wide ")
                .parse()
                .unwrap();
            let wide = usize::from(text.starts_with("wide"));
            random_unit(n, self.0 + wide)
        }
        fn dim(&self) -> usize {
            self.0
        }
        fn name(&self) -> &str {
            "numbered"
        }
    }

    #[test]
    fn a_bulk_load_builds_scopes_that_find_what_single_inserts_do_and_keeps_live_entries() {
        let (index, dim) = (ScopeIndex::default(), 64);
        let (large, small) = (Key([1; 32]), Key([2; 32]));
        let n = EXACT_SCAN_LIMIT * 2;
        // Entries stored while the load runs: one new, one the load also brings (it stays once).
        index
            .insert(
                large,
                key(n),
                &random_unit(n as u64, dim),
                &format!("question {n}"),
            )
            .unwrap();
        index
            .insert(large, key(0), &random_unit(0, dim), "question 0")
            .unwrap();
        let mut questions: Vec<(Key, Key, String)> = (0..n)
            .map(|i| (large, key(i), format!("question {i}")))
            .chain((0..10).map(|i| (small, key(i), format!("question {i}"))))
            .collect();
        // A vector of another size than its scope's is left out.
        questions.push((small, key(99), "wide 99".to_owned()));
        assert_eq!(index.load(questions, &Numbered(dim), 2).unwrap(), n + 10);
        assert_eq!(index.len(), n + 1 + 10);
        {
            let scopes = index.scopes.read().unwrap();
            assert!(scopes[&large].read().unwrap().graph.is_some());
            assert!(scopes[&small].read().unwrap().graph.is_none());
        }
        let best = |scope: &Key, i: usize| {
            index
                .find(
                    scope,
                    &format!("question {i}"),
                    &random_unit(i as u64, dim),
                    0.99,
                )
                .first()
                .map(|h| h.0)
        };
        let found = (0..=n).filter(|&i| best(&large, i) == Some(key(i))).count();
        // Built on two threads, the graph's shape depends on how they interleave: its recall was
        // 99.8-100 % in 25 runs on busy cores, and 98.0-98.7 % in the rare runs that failed a 99 %
        // bound. 97 % still fails a build that loses a thread's share of the vectors.
        assert!(
            found * 100 >= (n + 1) * 97,
            "graph recall {found}/{}",
            n + 1
        );
        assert!((0..10).all(|i| best(&small, i) == Some(key(i))));
        // The loaded scopes are live ones: removal and insertion go on as usual.
        index.remove(&small, &key(3)).unwrap();
        assert_eq!(best(&small, 3), None);
        index
            .insert(small, key(3), &random_unit(3, dim), "question 3")
            .unwrap();
        assert_eq!(best(&small, 3), Some(key(3)));
    }

    #[test]
    fn a_large_scope_moves_to_the_graph_and_keeps_finding_and_forgetting() {
        let (index, scope, dim) = (ScopeIndex::default(), Key([1; 32]), 64);
        let n = EXACT_SCAN_LIMIT * 3;
        for i in 0..n {
            index
                .insert(
                    scope,
                    key(i),
                    &random_unit(i as u64, dim),
                    &format!("question {i}"),
                )
                .unwrap();
        }
        assert_eq!(index.len(), n);
        {
            let scopes = index.scopes.read().unwrap();
            assert!(scopes[&scope].read().unwrap().graph.is_some());
        }
        // The best match for entry i's own vector and text, if any.
        let best = |i: usize| {
            let q = random_unit(i as u64, dim);
            index
                .find(&scope, &format!("question {i}"), &q, 0.99)
                .first()
                .copied()
        };
        // Every entry is found by its own vector (the guard sees the same text).
        let found = (0..n)
            .filter(|&i| best(i).map(|h| h.0) == Some(key(i)))
            .count();
        assert!(found * 100 >= n * 99, "graph recall {found}/{n}");
        // Remove the first half; their slots are refilled from the end, and the rest is intact.
        for i in 0..n / 2 {
            index.remove(&scope, &key(i)).unwrap();
        }
        assert_eq!(index.len(), n - n / 2);
        for i in 0..n / 2 {
            assert_eq!(best(i), None);
        }
        let found = (n / 2..n)
            .filter(|&i| best(i).map(|h| (h.0, h.1 > 0.999)) == Some((key(i), true)))
            .count();
        assert!(found * 100 >= (n - n / 2) * 99, "after removals {found}");
        // Re-inserting a removed entry works, and a vector of the wrong size is refused.
        index
            .insert(scope, key(0), &random_unit(0, dim), "question 0")
            .unwrap();
        assert_eq!(
            index.find(&scope, "question 0", &random_unit(0, dim), 0.99)[0].0,
            key(0)
        );
        assert!(
            index
                .insert(scope, key(n), &random_unit(1, dim + 1), "x")
                .is_err()
        );
    }

    #[test]
    fn conditional_inserts_and_removals_ask_with_the_scope_locked() {
        let (index, scope) = (ScopeIndex::default(), Key([1; 32]));
        let v = unit(&[1.0, 0.0, 0.0]);
        let found = |index: &ScopeIndex| index.find(&scope, "question one", &v, 0.9).len();
        // Not wanted (the entry left the other index before its turn): nothing added.
        let asked = std::cell::Cell::new(false);
        let wanted = || {
            // Asked while the scope is locked for writing: a lookup cannot get in.
            let scopes = index.scopes.read().unwrap();
            assert!(scopes[&scope].try_read().is_err());
            asked.set(true);
            false
        };
        assert!(
            !index
                .insert_if(scope, key(1), &v, "question one", wanted)
                .unwrap()
        );
        assert!(asked.get());
        assert_eq!(found(&index), 0);
        assert!(
            index.scopes.read().unwrap().is_empty(),
            "the scope made for the refused question is gone"
        );
        assert!(
            index
                .insert_if(scope, key(1), &v, "question one", || true)
                .unwrap()
        );
        assert_eq!(found(&index), 1);
        // Stored again since it left the other index: kept.
        index.remove_unless(&scope, &key(1), || true).unwrap();
        assert_eq!(found(&index), 1);
        index.remove_unless(&scope, &key(1), || false).unwrap();
        assert_eq!(found(&index), 0);
        assert!(index.is_empty());
    }

    /// The vectors a scope's graph holds.
    fn graph_size(index: &ScopeIndex, scope: &Key) -> usize {
        let scopes = index.scopes.read().unwrap();
        let s = scopes[scope].read().unwrap();
        s.graph.as_ref().map_or(0, |Graph(g)| g.size())
    }

    #[test]
    fn a_vector_whose_entry_was_removed_before_it_reached_the_graph_stays_out() {
        let (index, scope, dim) = (ScopeIndex::default(), Key([1; 32]), 32);
        let n = EXACT_SCAN_LIMIT + 10;
        for i in 0..n {
            let text = format!("question {i}");
            index
                .insert(scope, key(i), &random_unit(i as u64, dim), &text)
                .unwrap();
        }
        assert_eq!(graph_size(&index, &scope), n);
        let scopes = index.scopes.read().unwrap();
        let mut s = scopes[&scope].write().unwrap();
        // Stored, then removed (an eviction, or the same key stored again) before its vector
        // is added: the late add must not bring back a vector nothing points to.
        let v = random_unit(n as u64, dim);
        let label = s
            .push(key(n), &v, guard::Analysis::of("question x"))
            .unwrap()
            .expect("past the exact-scan limit, the vector is left for the graph");
        s.remove(&key(n)).unwrap();
        s.add_to_graph(label, &v).unwrap();
        assert_eq!(s.keys.len(), n);
        let Some(Graph(graph)) = &s.graph else {
            panic!("the scope has its graph")
        };
        assert_eq!(graph.size(), n);
        // An entry that moved while its vector was on its way keeps its label.
        let label = s
            .push(key(n + 1), &v, guard::Analysis::of("question y"))
            .unwrap()
            .unwrap();
        s.remove(&key(0)).unwrap();
        s.add_to_graph(label, &v).unwrap();
        let Some(Graph(graph)) = &s.graph else {
            panic!("the scope has its graph")
        };
        assert_eq!(graph.size(), n);
        let found = s.nearest(&v, 0.99, 1);
        assert_eq!(found.len(), 1);
        assert_eq!(s.keys[found[0].0], key(n + 1));
    }

    #[test]
    fn lookups_and_stores_of_one_graph_scope_run_side_by_side() {
        let (index, scope, dim) = (ScopeIndex::default(), Key([1; 32]), 32);
        let base = EXACT_SCAN_LIMIT * 2;
        for i in 0..base {
            let text = format!("question {i}");
            index
                .insert(scope, key(i), &random_unit(i as u64, dim), &text)
                .unwrap();
        }
        let (writers, each) = (3, 600);
        let found = std::thread::scope(|t| {
            for w in 0..writers {
                let index = &index;
                t.spawn(move || {
                    for i in base + w * each..base + (w + 1) * each {
                        let text = format!("question {i}");
                        index
                            .insert(scope, key(i), &random_unit(i as u64, dim), &text)
                            .unwrap();
                        // Some stored again at once, as a repeated miss does.
                        if i % 7 == 0 {
                            index
                                .insert(scope, key(i), &random_unit(i as u64, dim), &text)
                                .unwrap();
                        }
                        if i % 11 == 0 {
                            index.remove(&scope, &key(i)).unwrap();
                        }
                    }
                });
            }
            let reader = t.spawn(|| {
                (0..base)
                    .filter(|&i| {
                        let q = random_unit(i as u64, dim);
                        let text = format!("question {i}");
                        index.find(&scope, &text, &q, 0.99).first().map(|h| h.0) == Some(key(i))
                    })
                    .count()
            });
            reader.join().unwrap()
        });
        assert!(
            found * 100 >= base * 98,
            "found {found}/{base} while storing"
        );
        let kept: Vec<usize> = (0..base + writers * each)
            .filter(|i| *i < base || i % 11 != 0)
            .collect();
        assert_eq!(index.len(), kept.len());
        assert_eq!(graph_size(&index, &scope), kept.len());
        let best = |i: usize| {
            let text = format!("question {i}");
            let q = random_unit(i as u64, dim);
            index.find(&scope, &text, &q, 0.99).first().map(|h| h.0)
        };
        let found = kept.iter().filter(|&&i| best(i) == Some(key(i))).count();
        assert!(
            found * 100 >= kept.len() * 98,
            "found {found}/{}",
            kept.len()
        );
        assert!(
            (base..base + writers * each)
                .filter(|i| i % 11 == 0)
                .all(|i| best(i).is_none())
        );
    }
}
