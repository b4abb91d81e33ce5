//! The gateway's side of the cache: the exact index loaded from the store, lookups, writes
//! (index at once, store in the background), and stampede protection. The cache engine itself
//! (keys, policy, assembly, replay) is `reprise-cache`; this module wires it to the store and to
//! the request's directives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reprise_cache::embed::Embedder;
use reprise_cache::guard;
use reprise_cache::semantic::{Asked, Refusal, ScopeIndex};
use reprise_cache::{CacheControl, CacheKeys, Cacheability, Entry, ExactIndex, Key, Stored};
use reprise_storage::{CacheRow, Store};
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::config::CacheConfig;
use crate::embedding::SemanticModel;
use crate::error::GatewayError;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

type Flights = Arc<Mutex<HashMap<Key, watch::Receiver<Outcome>>>>;

/// What a leader tells its followers when it stops leading: nothing (look in the cache, then
/// call the upstream yourself), or what its call ended with when the cache does not keep it.
type Outcome = Option<Arc<Shared>>;

/// A leader's result that its followers answer with, instead of each calling the same upstream
/// with the same request again.
#[derive(Debug)]
pub enum Shared {
    /// The upstream call failed.
    Failure {
        error: GatewayError,
        /// The target of the leader's last attempt.
        target: Option<String>,
    },
    /// An answer the never-store rules keep out of the cache (cut by `max_tokens`, a refusal):
    /// it answers the identical requests asked with it as well as it answers the leader's.
    Answer(Arc<Entry>),
}

/// Counters since start, for `/admin/cache/stats`.
#[derive(Debug, Default)]
pub struct Counters {
    pub exact_hits: AtomicU64,
    pub semantic_hits: AtomicU64,
    pub misses: AtomicU64,
    pub bypasses: AtomicU64,
    pub prompt_tokens_saved: AtomicU64,
    pub completion_tokens_saved: AtomicU64,
    /// What the hits would have cost upstream, in billionths of a dollar.
    pub nano_usd_saved: AtomicU64,
    /// Hits on models the price table does not know (their tokens are counted, not priced).
    pub unpriced_hits: AtomicU64,
    /// Semantic lookups whose most similar candidate the guard refused.
    pub guard_vetoes: AtomicU64,
    /// Semantic lookups refused because two cached questions were about as similar.
    pub ambiguous: AtomicU64,
    /// Entries pushed out by the size bounds (not expiry).
    pub evictions: AtomicU64,
    /// Embeddings inputs answered from the cache, and sent upstream.
    pub embedding_inputs_cached: AtomicU64,
    pub embedding_inputs_upstream: AtomicU64,
}

/// A snapshot of the cache, as `/admin/cache/stats` reports it.
#[derive(Debug, serde::Serialize)]
pub struct Stats {
    pub enabled: bool,
    pub semantic: bool,
    /// The semantic tier's model (the embedded model's name, or `MODEL at URL`).
    pub embedding_model: Option<String>,
    pub entries: usize,
    /// Entries the semantic tier can find (stored with their question, and embedded).
    pub semantic_entries: usize,
    pub bytes: u64,
    pub exact_hits: u64,
    pub semantic_hits: u64,
    pub misses: u64,
    pub bypasses: u64,
    pub prompt_tokens_saved: u64,
    pub completion_tokens_saved: u64,
    /// Estimated from the price table (USD).
    pub usd_saved: f64,
    pub unpriced_hits: u64,
    /// Embeddings inputs answered from the cache, and sent upstream (cached input by input).
    pub embedding_inputs_cached: u64,
    pub embedding_inputs_upstream: u64,
}

/// The cache as the pipeline uses it.
#[derive(Debug)]
pub struct Cache {
    pub counters: Counters,
    config: CacheConfig,
    index: Arc<ExactIndex>,
    semantic: Arc<ScopeIndex>,
    model: Option<SemanticModel>,
    /// Stored questions not yet in the semantic tier (see [`Cache::warm`]).
    pending: Mutex<Vec<(Key, Key, String)>>,
    /// Set until the embedded model's semantic tier holds the stored questions (`/readyz`).
    loading: Arc<AtomicBool>,
    in_flight: Flights,
    store: Store,
    /// Held by every write of cache rows, with the look at the index that decides it (see
    /// [`persist`]).
    writes: Arc<Mutex<()>>,
    /// Inserts waiting to be written to the store (see [`Writer::drain`]).
    queue: Arc<Mutex<Queue>>,
    tasks: TaskTracker,
}

/// An insert into the exact index, still to be written to the store: its row (when the index
/// still holds the entry by then) and the entries it pushed out (deleted unless stored again).
#[derive(Debug)]
struct Insert {
    row: CacheRow,
    entry: Arc<Entry>,
    pushed_out: Vec<Arc<Entry>>,
    request_id: String,
}

/// Inserts waiting for the store, and whether a [`Writer::drain`] is under way to write them.
#[derive(Debug, Default)]
struct Queue {
    waiting: Vec<Insert>,
    draining: bool,
}

/// At most this many inserts go into one transaction, so that a purge waiting for the store
/// waits for a few milliseconds of writes at most.
const WRITE_BATCH: usize = 256;

/// How long the writer lets inserts gather before each transaction: committing costs about as
/// much as writing a few rows (its pages go to the log, and every thousand pages to the
/// database file), so a stream of misses is written in transactions of many rows. An answer is
/// durable (and its "cache entry stored" line logged) this much later, at most a few
/// milliseconds more under load.
const WRITE_LINGER: Duration = Duration::from_millis(10);

/// What writing queued inserts to the store takes, apart from the cache (it runs off the
/// request's path, on the blocking pool).
struct Writer {
    store: Store,
    index: Arc<ExactIndex>,
    semantic: Arc<ScopeIndex>,
    writes: Arc<Mutex<()>>,
    queue: Arc<Mutex<Queue>>,
}

impl Writer {
    /// Writes the queued inserts, a batch a transaction, until none is left. One drain runs at
    /// a time, so a burst of misses is written by one blocking thread in a few transactions
    /// (each store used to take a thread of the blocking pool's eight and a transaction of its
    /// own, and a burst queued behind itself, readiness pings behind it).
    fn drain(&self) {
        // A panic (none is expected) must not leave the queue marked as being drained forever.
        struct Stop<'q>(&'q Mutex<Queue>);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.lock().unwrap_or_else(|p| p.into_inner()).draining = false;
                }
            }
        }
        let _stop = Stop(&self.queue);
        loop {
            std::thread::sleep(WRITE_LINGER);
            let batch: Vec<Insert> = {
                let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                if queue.waiting.is_empty() {
                    queue.draining = false;
                    return;
                }
                let n = queue.waiting.len().min(WRITE_BATCH);
                queue.waiting.drain(..n).collect()
            };
            // A full cache evicts a batch (a thousand entries at the default bound). Until an
            // evicted question leaves the semantic tier, a lookup that finds it finds no entry
            // for it and passes it by.
            for e in batch.iter().flat_map(|i| &i.pushed_out) {
                forget(&self.semantic, &self.index, e);
            }
            persist(&self.store, &self.index, &self.writes, &batch);
        }
    }
}

/// The APIs whose answers the cache keeps as entries with a question (embeddings are kept input
/// by input: see `pipeline::embeddings`).
#[derive(Debug, Clone, Copy)]
pub enum CachedApi {
    Chat,
    /// `may_be_kept`: a target of the request's plan keeps responses unless told not to.
    Responses {
        may_be_kept: bool,
    },
}

/// What the cache makes of one request.
#[derive(Debug)]
pub struct Lookup {
    pub keys: CacheKeys,
    pub request: Value,
    pub namespace: String,
    pub directives: CacheControl,
    pub cacheability: Cacheability,
    /// The final user message's embedding, when the semantic tier may answer.
    pub embedding: Option<Vec<f32>>,
    /// The guard's reading of the final user message, once a semantic lookup needed it: the
    /// insert of the answer takes it rather than reading the message again.
    pub analysis: OnceLock<guard::Analysis>,
    /// The request's id, for the log line that confirms a stored entry.
    pub request_id: String,
}

impl Lookup {
    pub fn cacheable(&self) -> bool {
        matches!(self.cacheability, Cacheability::Cacheable { .. })
    }

    pub fn may_serve(&self) -> bool {
        self.cacheable() && self.directives.may_serve()
    }

    pub fn may_store(&self) -> bool {
        self.cacheable() && self.directives.may_store()
    }
}

/// The first of identical concurrent misses leads (calls the upstream); the rest follow (wait
/// for it, then look again).
pub enum Flight {
    Lead(FlightGuard),
    Follow(watch::Receiver<Outcome>),
}

/// Held by the leader until its answer is stored (or abandoned); dropping it wakes followers.
#[derive(Debug)]
pub struct FlightGuard {
    key: Key,
    flights: Flights,
    done: watch::Sender<Outcome>,
}

impl FlightGuard {
    /// The leader's upstream call failed: its followers answer with the same failure.
    pub fn fail(self, error: &GatewayError, target: Option<&str>) {
        self.done.send_replace(Some(Arc::new(Shared::Failure {
            error: error.clone(),
            target: target.map(str::to_owned),
        })));
    }

    /// The leader's answer was not stored: its followers answer with it all the same.
    pub fn answer(self, entry: Arc<Entry>) {
        self.done
            .send_replace(Some(Arc::new(Shared::Answer(entry))));
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        flights.remove(&self.key);
    }
}

impl Cache {
    /// Builds the indexes from the store's entries. Blocking (reads the database, embeds the
    /// stored questions).
    pub fn open(
        config: CacheConfig,
        store: Store,
        tasks: TaskTracker,
        model: Option<SemanticModel>,
    ) -> anyhow::Result<Self> {
        let index = ExactIndex::new(config.bounds);
        let now = now_ms();
        let mut loaded = 0usize;
        let mut evicted = Vec::new();
        let mut pending = Vec::new();
        for row in store.load_cache_entries(now as i64)? {
            let (Some(exact), Some(scope), Some(completion)) = (
                parse_key(&row.exact_key),
                parse_key(&row.scope_key),
                serde_json::from_str::<Value>(&row.completion)
                    .ok()
                    .filter(readable),
            ) else {
                tracing::warn!(key = %row.exact_key, "skipping an unreadable cache entry");
                continue;
            };
            // The semantic tier is filled after start-up (see [`Cache::warm`]).
            if let (Some(_), Some(text)) = (&model, &row.prompt) {
                pending.push((scope, exact, text.clone()));
            }
            let entry = Entry {
                exact,
                scope,
                namespace: row.namespace,
                model: row.model,
                provider: row.provider,
                prompt: row.prompt,
                completion: held(completion),
                bytes: row.bytes.max(0) as u64,
                created_ms: row.created_ms.max(0) as u64,
                expires_ms: row.expires_ms.max(0) as u64,
                hits: AtomicU64::new(row.hits.max(0) as u64),
            };
            evicted.extend(index.insert(Arc::new(entry), now));
            loaded += 1;
        }
        if !evicted.is_empty() {
            let keys: Vec<String> = evicted.iter().map(|e| e.exact.to_hex()).collect();
            store.delete_cache_entries(&keys)?;
        }
        if config.enabled {
            tracing::info!(
                entries = index.len(),
                loaded,
                bytes = index.bytes(),
                "cache loaded"
            );
        }
        Ok(Self {
            counters: Counters::default(),
            config,
            index: Arc::new(index),
            semantic: Arc::default(),
            loading: Arc::new(AtomicBool::new(
                matches!(model, Some(SemanticModel::Local(_))) && !pending.is_empty(),
            )),
            model,
            pending: Mutex::new(pending),
            in_flight: Arc::default(),
            store,
            writes: Arc::default(),
            queue: Arc::default(),
            tasks,
        })
    }

    /// Keys and cacheability of a request of `api`; `None` when the cache is off, or when it
    /// is a Responses API request the cache never keeps (see `reprise_cache::responses`).
    pub fn prepare(
        &self,
        api: CachedApi,
        raw: &[u8],
        namespace: String,
        directives: CacheControl,
        request_id: &str,
    ) -> Option<Lookup> {
        self.prepare_with(raw, namespace, directives, request_id, |ns, r| match api {
            CachedApi::Chat => Some(reprise_cache::keys::keys(ns, r)),
            CachedApi::Responses { may_be_kept } => {
                reprise_cache::responses::keys(ns, r, may_be_kept)
                    .inspect_err(|reason| tracing::debug!(reason, "response not cacheable"))
                    .ok()
            }
        })
    }

    fn prepare_with(
        &self,
        raw: &[u8],
        namespace: String,
        directives: CacheControl,
        request_id: &str,
        keys: impl FnOnce(&str, &Value) -> Option<CacheKeys>,
    ) -> Option<Lookup> {
        if !self.config.enabled {
            return None;
        }
        let request: Value = serde_json::from_slice(raw).ok()?;
        let keys = keys(&namespace, &request)?;
        let cacheability = self
            .config
            .policy
            .assess(&request, keys.final_user_text.as_deref());
        Some(Lookup {
            keys,
            request,
            namespace,
            directives,
            cacheability,
            embedding: None,
            analysis: OnceLock::new(),
            request_id: request_id.to_owned(),
        })
    }

    /// Embeds the final user message when the semantic tier may answer `lookup` (after the
    /// exact tier missed). A failed remote call leaves the semantic tier out of this request.
    pub async fn embed(&self, lookup: &mut Lookup) {
        let semantic = matches!(
            lookup.cacheability,
            Cacheability::Cacheable { semantic: true }
        );
        let (Some(model), true, None, Some(text)) = (
            &self.model,
            semantic,
            &lookup.embedding,
            &lookup.keys.final_user_text,
        ) else {
            return;
        };
        match model.embed_questions(&[text]).await {
            Ok(mut vectors) => lookup.embedding = vectors.pop(),
            Err(err) => tracing::warn!(
                request_id = %lookup.request_id,
                error = %err,
                "semantic tier skipped: no embedding"
            ),
        }
    }

    /// Adds the stored questions (left by [`Cache::open`]) to the semantic tier; until then
    /// they are served by the exact tier only. The embedded model's tier is built on a thread
    /// of its own, on every core (see [`ScopeIndex::load`]), while the gateway serves; with a
    /// remote model, they are embedded through it batch by batch.
    pub async fn warm(&self) {
        let Some(model) = &self.model else { return };
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if let SemanticModel::Local(embedder) = model {
            self.load_in_background(pending, Arc::clone(embedder));
            return;
        }
        let mut added = 0usize;
        for batch in pending.chunks(crate::embedding::BATCH) {
            let texts: Vec<&str> = batch.iter().map(|(_, _, t)| t.as_str()).collect();
            let vectors = match model.embed_questions(&texts).await {
                Ok(v) => v,
                Err(err) => {
                    tracing::warn!(error = %err, "stored questions left out of the semantic tier");
                    return;
                }
            };
            for ((scope, exact, text), vector) in batch.iter().zip(vectors) {
                // An entry evicted or purged meanwhile stays out (see `forget`).
                match self
                    .semantic
                    .insert_if(*scope, *exact, &vector, text, || self.index.contains(exact))
                {
                    Ok(inserted) => added += usize::from(inserted),
                    Err(err) => {
                        tracing::warn!(error = %err, "a cache entry left out of the semantic tier")
                    }
                }
            }
        }
        if added > 0 {
            tracing::info!(entries = added, "semantic tier warmed from the store");
        }
    }

    /// [`Cache::warm`] for the embedded model. The thread is not waited for at shutdown: it
    /// only builds memory the process is about to let go.
    fn load_in_background(
        &self,
        mut pending: Vec<(Key, Key, String)>,
        embedder: Arc<dyn Embedder>,
    ) {
        if pending.is_empty() {
            self.loading.store(false, Ordering::Release);
            return;
        }
        let (index, semantic, loading) = (
            Arc::clone(&self.index),
            Arc::clone(&self.semantic),
            Arc::clone(&self.loading),
        );
        let load = move || {
            let started = std::time::Instant::now();
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            // An entry evicted or purged since start-up stays out, before and after.
            pending.retain(|(_, exact, _)| index.contains(exact));
            let keys: Vec<(Key, Key)> = pending.iter().map(|(s, k, _)| (*s, *k)).collect();
            match semantic.load(pending, embedder.as_ref(), threads) {
                Ok(added) => tracing::info!(
                    entries = added,
                    ms = started.elapsed().as_millis() as u64,
                    "semantic tier loaded"
                ),
                Err(err) => {
                    tracing::error!(error = %err, "stored questions left out of the semantic tier")
                }
            }
            for (scope, exact) in keys {
                if !index.contains(&exact)
                    && let Err(err) = semantic.remove(&scope, &exact)
                {
                    tracing::warn!(error = %err, "could not remove a cache entry from the semantic tier");
                }
            }
            loading.store(false, Ordering::Release);
        };
        if let Err(err) = std::thread::Builder::new()
            .name("reprise-cache-load".into())
            .spawn(load)
        {
            tracing::error!(error = %err, "stored questions left out of the semantic tier");
            self.loading.store(false, Ordering::Release);
        }
    }

    /// Whether the embedded model's semantic tier is still being filled from the store.
    pub fn loading(&self) -> bool {
        self.loading.load(Ordering::Acquire)
    }

    /// The semantic-tier entry that may answer `lookup`, with its similarity.
    pub fn get_semantic(&self, lookup: &Lookup) -> Option<(Arc<Entry>, f32)> {
        if !lookup.may_serve() {
            return None;
        }
        let (embedding, text) = (
            lookup.embedding.as_ref()?,
            lookup.keys.final_user_text.as_ref()?,
        );
        let max_age = lookup.directives.max_age.map(|d| d.as_secs());
        let now = now_ms();
        let mut refusal = Refusal::None;
        let asked = Asked {
            text,
            embedding,
            analysis: &lookup.analysis,
        };
        let found = self.semantic.find_first(
            &lookup.keys.scope,
            asked,
            self.config.matching(),
            &mut refusal,
            |key, similarity| {
                self.index
                    .get(&key, now, max_age)
                    .map(|entry| (entry, similarity))
            },
        );
        let refused = match refusal {
            Refusal::None => None,
            Refusal::Vetoed => Some(&self.counters.guard_vetoes),
            Refusal::Ambiguous => Some(&self.counters.ambiguous),
        };
        if let (None, Some(counter)) = (&found, refused) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    /// The exact-tier entry that may answer `lookup`.
    pub fn get(&self, lookup: &Lookup) -> Option<Arc<Entry>> {
        if !lookup.may_serve() {
            return None;
        }
        self.get_key(&lookup.keys.exact, lookup.directives.max_age)
    }

    /// Joins the in-flight call for the same exact key, or becomes its leader.
    pub fn flight(&self, key: Key) -> Flight {
        let mut flights = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rx) = flights.get(&key) {
            return Flight::Follow(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        flights.insert(key, rx);
        Flight::Lead(FlightGuard {
            key,
            flights: self.in_flight.clone(),
            done: tx,
        })
    }

    /// Stores an upstream answer if the rules allow (`storable`: the never-store rules of its
    /// API): into the index at once (so the next request hits), and into the store in the
    /// background. Returns why not, when not.
    pub fn write(
        &self,
        lookup: &Lookup,
        provider: &str,
        completion: Value,
        storable: fn(&Value, &Value) -> reprise_cache::Storable,
    ) -> Result<(), (&'static str, Value)> {
        if !lookup.may_store() {
            return Err(("directives", completion));
        }
        if let Err(reason) = storable(&lookup.request, &completion) {
            return Err((reason, completion));
        }
        let now = now_ms();
        let entry = Arc::new(self.entry(lookup, provider, Stored::compact(&completion), now));
        let text = entry.completion.text().into_owned();
        self.put(Arc::clone(&entry), text, now, &lookup.request_id);
        // The semantic tier after the exact index, and only while the exact index still holds
        // the entry (see `forget`): an eviction running meanwhile cannot leave it in one tier only.
        if let (Some(embedding), Some(question)) = (&lookup.embedding, &entry.prompt) {
            // The lookup's reading of the question, when it found candidates to guard.
            let analysis = match lookup.analysis.get() {
                Some(read) => read.clone(),
                None => guard::Analysis::of(question),
            };
            let inserted = self.semantic.insert_analysed_if(
                entry.scope,
                entry.exact,
                embedding,
                analysis,
                || self.index.holds(&entry),
            );
            if let Err(err) = inserted {
                tracing::warn!(error = %err, "a cache entry left out of the semantic tier");
            }
        }
        Ok(())
    }

    /// Puts an entry into the exact index at once, evicting what the bounds push out, and into
    /// the store in the background (the caller adds it to the semantic tier after). `text` is
    /// its completion serialised.
    fn put(&self, entry: Arc<Entry>, text: String, now: u64, request_id: &str) {
        let row = row(&entry, text);
        let pushed_out = self.index.insert(Arc::clone(&entry), now);
        self.counters
            .evictions
            .fetch_add(pushed_out.len() as u64, Ordering::Relaxed);
        let start = {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.waiting.push(Insert {
                row,
                entry,
                pushed_out,
                request_id: request_id.to_owned(),
            });
            !std::mem::replace(&mut queue.draining, true)
        };
        // Off the request's path; a drain under way takes this insert too.
        if start {
            let writer = Writer {
                store: self.store.clone(),
                index: Arc::clone(&self.index),
                semantic: Arc::clone(&self.semantic),
                writes: Arc::clone(&self.writes),
                queue: Arc::clone(&self.queue),
            };
            self.tasks.spawn_blocking(move || writer.drain());
        }
    }

    /// Whether requests are looked up and stored at all.
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// The entry stored under `key`, unless it expired or is older than `max_age`.
    pub fn get_key(&self, key: &Key, max_age: Option<Duration>) -> Option<Arc<Entry>> {
        self.index.get(key, now_ms(), max_age.map(|d| d.as_secs()))
    }

    /// When an entry stored now for `ttl` (the default when `None`) expires, in Unix ms.
    pub fn expiry(&self, ttl: Option<Duration>, now: u64) -> u64 {
        let ttl = ttl.unwrap_or(self.config.policy.default_ttl);
        now.saturating_add(ttl_ms(ttl))
    }

    /// Stores an entry of the exact tier only (an input's embedding: see
    /// `pipeline::embeddings`), counting its size.
    pub fn write_exact(&self, mut entry: Entry, request_id: &str) {
        entry.prompt = None;
        let text = entry.completion.text().into_owned();
        entry.bytes = text.len() as u64;
        let now = now_ms();
        self.put(Arc::new(entry), text, now, request_id);
    }

    /// The entry an answer makes, stored or not (see [`FlightGuard::answer`]).
    pub fn entry(&self, lookup: &Lookup, provider: &str, completion: Stored, now: u64) -> Entry {
        let bytes = completion.text().len();
        Entry {
            exact: lookup.keys.exact,
            scope: lookup.keys.scope,
            namespace: lookup.namespace.clone(),
            model: lookup.request["model"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            provider: provider.to_owned(),
            prompt: lookup
                .embedding
                .as_ref()
                .and(lookup.keys.final_user_text.clone()),
            completion,
            bytes: bytes as u64,
            created_ms: now,
            expires_ms: self.expiry(lookup.directives.ttl, now),
            hits: AtomicU64::new(0),
        }
    }

    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        Stats {
            enabled: self.config.enabled,
            semantic: self.model.is_some(),
            embedding_model: self.model.as_ref().map(SemanticModel::name),
            entries: self.index.len(),
            semantic_entries: self.semantic.len(),
            bytes: self.index.bytes(),
            exact_hits: get(&c.exact_hits),
            semantic_hits: get(&c.semantic_hits),
            misses: get(&c.misses),
            bypasses: get(&c.bypasses),
            prompt_tokens_saved: get(&c.prompt_tokens_saved),
            completion_tokens_saved: get(&c.completion_tokens_saved),
            usd_saved: get(&c.nano_usd_saved) as f64 / 1e9,
            unpriced_hits: get(&c.unpriced_hits),
            embedding_inputs_cached: get(&c.embedding_inputs_cached),
            embedding_inputs_upstream: get(&c.embedding_inputs_upstream),
        }
    }

    /// Removes the entries matching both filters (`None` matches everything), from the indexes
    /// and the store. Returns how many. Blocking (writes the store).
    pub fn purge(&self, namespace: Option<&str>, model: Option<&str>) -> anyhow::Result<usize> {
        let removed = self.index.remove_where(|e| {
            namespace.is_none_or(|n| e.namespace == n) && model.is_none_or(|m| e.model == m)
        });
        self.drop_entries(&removed)
    }

    /// Removes expired entries from the indexes and the store (they are never served, but
    /// would hold memory and disk until evicted). Returns how many. Blocking.
    pub fn sweep(&self) -> anyhow::Result<usize> {
        let expired = self.index.expire(now_ms());
        self.drop_entries(&expired)
    }

    /// Takes entries already out of the exact index out of the semantic tier and the store.
    fn drop_entries(&self, removed: &[Arc<Entry>]) -> anyhow::Result<usize> {
        for e in removed {
            forget(&self.semantic, &self.index, e);
        }
        if !removed.is_empty() {
            let keys: Vec<String> = removed.iter().map(|e| e.exact.to_hex()).collect();
            let _writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
            self.store.delete_cache_entries(&keys)?;
        }
        Ok(removed.len())
    }
}

/// An entry's row in the store, `text` its completion serialised.
fn row(entry: &Entry, text: String) -> CacheRow {
    CacheRow {
        exact_key: entry.exact.to_hex(),
        scope_key: entry.scope.to_hex(),
        namespace: entry.namespace.clone(),
        model: entry.model.clone(),
        provider: entry.provider.clone(),
        completion: text,
        bytes: entry.bytes as i64,
        created_ms: entry.created_ms as i64,
        expires_ms: entry.expires_ms as i64,
        hits: 0,
        prompt: entry.prompt.clone(),
    }
}

/// Brings the store in line with the exact index after a batch of inserts, in one
/// transaction: each new entry's row is written if the index still holds that very entry (not
/// purged, expired or evicted meanwhile, nor replaced by a newer answer, whose own insert writes
/// that one), and each entry an insert pushed out is deleted unless its key was stored again
/// since.
///
/// Each batch decides and writes under `writes` (as purges and sweeps delete under it), so the
/// last write to touch a key sees the index's final word on it, whatever order inserts reach
/// the store in: an eviction written late does not delete an entry stored again, and a store
/// written late does not write back an entry purged or evicted.
fn persist(store: &Store, index: &ExactIndex, writes: &Mutex<()>, batch: &[Insert]) {
    let _writes = writes.lock().unwrap_or_else(|p| p.into_inner());
    let mut stored = Vec::new();
    let written = store.write_cache(|w| {
        for insert in batch {
            if index.holds(&insert.entry) {
                w.put(&insert.row)?;
                stored.push(insert);
            }
            for e in &insert.pushed_out {
                if !index.contains(&e.exact) {
                    w.delete(&e.exact.to_hex())?;
                }
            }
        }
        Ok(())
    });
    match written {
        // Logged once durable: a crash after these lines cannot lose the entries.
        Ok(()) => {
            for insert in stored {
                let request_id = &insert.request_id;
                tracing::info!(%request_id, key = %insert.row.exact_key, "cache entry stored");
            }
        }
        // The whole batch is absent from the store; the entries are still served until a
        // restart.
        Err(err) => {
            for insert in batch {
                let request_id = &insert.request_id;
                tracing::error!(%request_id, error = %err, "could not persist a cache entry");
            }
        }
    }
}

/// A stored answer as the index holds it: an input's embedding parsed (its text is spliced into
/// answers as it is held), anything else as compact text.
fn held(completion: Value) -> Stored {
    if completion.get(crate::pipeline::EMBEDDING_JSON).is_some() {
        Stored::parsed(completion)
    } else {
        Stored::compact(&completion)
    }
}

/// Whether a stored completion can be served: an input's embedding must be JSON (it is spliced
/// into answers as it is; see `pipeline::embeddings`).
fn readable(completion: &Value) -> bool {
    match completion.get(crate::pipeline::EMBEDDING_JSON) {
        None => true,
        Some(text) => text
            .as_str()
            .is_some_and(|t| serde_json::from_str::<&serde_json::value::RawValue>(t).is_ok()),
    }
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}

fn parse_key(hex: &str) -> Option<Key> {
    blake3::Hash::from_hex(hex).ok().map(|h| Key(*h.as_bytes()))
}

/// Takes an entry out of the semantic tier once it has left the exact index (evicted, purged,
/// expired), unless its key was stored again since. Stores add to the exact index first, then
/// to the semantic tier while the exact index holds the entry; both checks are made with the
/// scope locked, so whatever order a key's stores and removals run in, the last sees the exact
/// index's final word and the two tiers agree.
fn forget(semantic: &ScopeIndex, index: &ExactIndex, entry: &Entry) {
    if let Err(err) =
        semantic.remove_unless(&entry.scope, &entry.exact, || index.contains(&entry.exact))
    {
        tracing::warn!(error = %err, "could not remove a cache entry from the semantic tier");
    }
}

#[cfg(test)]
mod tests {
    use reprise_cache::Bounds;
    use serde_json::json;

    use super::*;

    /// An answer stored under key `n` at `created_ms` for an hour.
    fn entry(n: u8, created_ms: u64) -> Arc<Entry> {
        keyed(Key([n; 32]), created_ms)
    }

    fn keyed(exact: Key, created_ms: u64) -> Arc<Entry> {
        Arc::new(Entry {
            exact,
            scope: Key([0; 32]),
            namespace: String::new(),
            model: "m".into(),
            provider: "openai".into(),
            prompt: Some(format!("question {}", exact.to_hex())),
            completion: Stored::compact(&json!({"choices": []})),
            bytes: 100,
            created_ms,
            expires_ms: created_ms + 3_600_000,
            hits: AtomicU64::new(0),
        })
    }

    /// `entry`'s insert as it waits for the store.
    fn insert(entry: &Arc<Entry>, pushed_out: &[Arc<Entry>]) -> Insert {
        Insert {
            row: row(entry, entry.completion.text().into_owned()),
            entry: Arc::clone(entry),
            pushed_out: pushed_out.to_vec(),
            request_id: "test".into(),
        }
    }

    /// Persists `entry`'s insert alone, as a batch of one.
    fn persist_insert(
        store: &Store,
        index: &ExactIndex,
        entry: &Arc<Entry>,
        pushed_out: &[Arc<Entry>],
    ) {
        persist(store, index, &Mutex::new(()), &[insert(entry, pushed_out)]);
    }

    /// (key, created_ms) of every row in the store.
    fn stored(store: &Store) -> Vec<(String, i64)> {
        let mut rows: Vec<_> = store
            .load_cache_entries(0)
            .unwrap()
            .into_iter()
            .map(|r| (r.exact_key, r.created_ms))
            .collect();
        rows.sort();
        rows
    }

    #[test]
    fn the_store_ends_up_holding_what_the_index_holds_whatever_order_writes_run_in() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let index = ExactIndex::new(Bounds {
            max_entries: 1,
            max_bytes: u64::MAX,
        });
        // X is stored, pushed out by Y, then stored again (pushing Y out).
        let x = entry(1, 1_000);
        assert!(index.insert(Arc::clone(&x), 1_000).is_empty());
        let y = entry(2, 2_000);
        let y_out = index.insert(Arc::clone(&y), 2_000);
        assert_eq!(y_out.len(), 1);
        assert!(Arc::ptr_eq(&y_out[0], &x));
        let x_again = entry(1, 3_000);
        let x_again_out = index.insert(Arc::clone(&x_again), 3_000);
        assert!(Arc::ptr_eq(&x_again_out[0], &y));
        // Their background writes run last first: Y's eviction of X must not delete X stored
        // again, nor the first X's late write replace the second's, nor Y come back.
        persist_insert(&store, &index, &x_again, &x_again_out);
        persist_insert(&store, &index, &y, &y_out);
        persist_insert(&store, &index, &x, &[]);
        assert_eq!(stored(&store), vec![(x.exact.to_hex(), 3_000)]);

        // Run in order, they end the same way.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        persist_insert(&store, &index, &x, &[]);
        persist_insert(&store, &index, &y, &y_out);
        persist_insert(&store, &index, &x_again, &x_again_out);
        assert_eq!(stored(&store), vec![(x.exact.to_hex(), 3_000)]);
    }

    #[test]
    fn a_batch_of_inserts_ends_as_they_would_one_by_one_and_the_drain_empties_the_queue() {
        let index = Arc::new(ExactIndex::new(Bounds {
            max_entries: 1,
            max_bytes: u64::MAX,
        }));
        // X is stored, pushed out by Y, then stored again (pushing Y out), as above.
        let x = entry(1, 1_000);
        index.insert(Arc::clone(&x), 1_000);
        let y = entry(2, 2_000);
        let y_out = index.insert(Arc::clone(&y), 2_000);
        let x_again = entry(1, 3_000);
        let x_again_out = index.insert(Arc::clone(&x_again), 3_000);
        let inserts = || {
            vec![
                insert(&x, &[]),
                insert(&y, &y_out),
                insert(&x_again, &x_again_out),
            ]
        };
        // One transaction, in order and reversed.
        for reversed in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            let mut batch = inserts();
            if reversed {
                batch.reverse();
            }
            persist(&store, &index, &Mutex::new(()), &batch);
            assert_eq!(stored(&store), vec![(x.exact.to_hex(), 3_000)]);
        }
        // The drain writes every queued insert, more than one batch's worth, and leaves the
        // queue ready for the next drain.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let many = Arc::new(ExactIndex::new(Bounds::default()));
        let mut waiting = Vec::new();
        for n in 0..=(WRITE_BATCH + 10) {
            let e = keyed(Key(*blake3::hash(&n.to_le_bytes()).as_bytes()), 1_000);
            many.insert(Arc::clone(&e), 1_000);
            waiting.push(insert(&e, &[]));
        }
        let writer = Writer {
            store: store.clone(),
            index: Arc::clone(&many),
            semantic: Arc::default(),
            writes: Arc::default(),
            queue: Arc::new(Mutex::new(Queue {
                waiting,
                draining: true,
            })),
        };
        writer.drain();
        assert_eq!(stored(&store).len(), WRITE_BATCH + 11);
        let queue = writer.queue.lock().unwrap();
        assert!(queue.waiting.is_empty() && !queue.draining);
    }

    #[test]
    fn an_entry_purged_before_its_write_runs_is_not_written_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let index = ExactIndex::new(Bounds::default());
        let (kept, purged) = (entry(1, 1_000), entry(2, 1_000));
        index.insert(Arc::clone(&kept), 1_000);
        index.insert(Arc::clone(&purged), 1_000);
        assert!(index.remove(&purged.exact).is_some());
        persist_insert(&store, &index, &kept, &[]);
        persist_insert(&store, &index, &purged, &[]);
        assert_eq!(stored(&store), vec![(kept.exact.to_hex(), 1_000)]);
    }

    #[test]
    fn a_stored_embedding_must_be_json_to_be_served() {
        assert!(readable(&json!({"choices": []})));
        assert!(readable(&json!({"embedding_json": "[0.5,-0.25]"})));
        assert!(readable(&json!({"embedding_json": "\"AAAAPw==\""})));
        assert!(!readable(&json!({"embedding_json": "[0.5,-0.2"})));
        assert!(!readable(&json!({"embedding_json": "[0.5]]}"})));
        assert!(!readable(&json!({"embedding_json": 3})));
    }
}
