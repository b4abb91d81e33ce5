//! `POST /v1/embeddings`: routed by model with the retries and failover of a chat completion,
//! and cached input by input (`reprise_cache::embeddings`). The inputs found in the cache are
//! answered from it; only the others go upstream, in one request, and their embeddings are
//! stored. A request whose inputs are all in the cache makes no upstream call.
//!
//! Each embedding is kept as the upstream wrote it (its JSON text, floats or base64), so an
//! answer from the cache is the upstream's, digit for digit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use reprise_api::{EmbeddingsRequest, Usage, UsageProbe};
use reprise_cache::embeddings::{Inputs, apportion};
use reprise_cache::{CacheControl, Entry, Stored};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::attempt::{self, Delivered};
use super::cache::book_savings;
use super::record::{CacheStatus, RequestLog};
use super::{
    CacheDirectives, admit_cacheable, admit_upstream, fail, fail_attempts, json_response,
    served_by, tenant_namespace,
};
use crate::auth::Caller;
use crate::cache::{Flight, now_ms};
use crate::{AppState, GatewayError};

/// `POST /v1/embeddings`.
pub async fn embeddings(
    state: &AppState,
    mut log: RequestLog,
    caller: Caller,
    request: EmbeddingsRequest,
    raw: Bytes,
    directives: Result<CacheDirectives, GatewayError>,
) -> Response {
    log.model = Some(request.model.clone());
    if request.model.trim().is_empty() {
        let err = GatewayError::invalid("'model' must name a model", Some("model"));
        return fail(log, err, &[]);
    }
    if request.input.is_null() {
        let err = GatewayError::invalid("'input' must not be null", Some("input"));
        return fail(log, err, &[]);
    }
    let directives = match admit_cacheable(state, &mut log, &caller, &request.model, directives) {
        Ok(d) => d,
        Err(err) => return fail(log, err, &[]),
    };
    let namespace = tenant_namespace(&caller, directives.namespace);
    let control = directives.control;
    let look_up = || Batch::look_up(state, &raw, namespace.clone(), control, &log.request_id);
    let mut batch = look_up();
    if let Some(batch) = batch.as_ref().filter(|b| b.complete()) {
        return batch.respond(state, log);
    }
    // An identical request already on its way upstream: wait for its embeddings to be stored,
    // then look again. Held until this request's own are stored, if it leads.
    let mut _flight = None;
    if let Some(key) = batch
        .as_ref()
        .filter(|b| b.control.may_serve())
        .map(|b| b.inputs.batch_key())
    {
        match state.cache().flight(key) {
            Flight::Lead(guard) => _flight = Some(guard),
            Flight::Follow(mut done) => {
                let _ = done.changed().await;
                batch = look_up();
                if let Some(batch) = batch.as_ref().filter(|b| b.complete()) {
                    return batch.respond(state, log);
                }
            }
        }
    }

    let cache = if batch.is_some() {
        CacheStatus::Miss
    } else {
        CacheStatus::Bypass
    };
    let counters = &state.cache().counters;
    match cache {
        CacheStatus::Miss => &counters.misses,
        _ => &counters.bypasses,
    }
    .fetch_add(1, Ordering::Relaxed);
    log.cache = cache;
    let mut headers = vec![("x-reprise-cache", HeaderValue::from_static(cache.as_str()))];
    if let Some(batch) = &batch {
        let found = batch.found();
        headers.push(("x-reprise-cache-hits", HeaderValue::from(found)));
        counters
            .embedding_inputs_cached
            .fetch_add(found as u64, Ordering::Relaxed);
        counters
            .embedding_inputs_upstream
            .fetch_add((batch.found.len() - found) as u64, Ordering::Relaxed);
    }
    let routes = state.router().plan(&request.model, Instant::now());
    if routes.is_empty() {
        let err = GatewayError::ModelNotFound {
            model: request.model,
        };
        return fail(log, err, &headers);
    }
    if let Err(err) = admit_upstream(state, &mut log, &caller, &raw, None) {
        return fail(log, err, &headers);
    }
    // Only the inputs the cache lacks go upstream; with none found, the request as it came.
    let body = match &batch {
        Some(batch) if batch.found() > 0 => batch.upstream_body(),
        _ => raw,
    };
    let upstream_started = Instant::now();
    let settings = &state.config().routing;
    let key = caller.upstream_key.as_ref();
    let result = attempt::embeddings(&routes, &body, key, settings, log.started).await;
    log.upstream = Some(upstream_started.elapsed());
    let success = match result {
        Ok(success) => success,
        Err(failure) => return fail_attempts(log, failure, headers),
    };
    let target = success.route.target.name.clone();
    served_by(&mut log, &mut headers, &target, success.attempts);
    let (status, body) = match success.delivered {
        Delivered::Json { status, body } => (status, body),
        // `embeddings` never delivers a stream.
        Delivered::Stream { .. } => return fail(log, GatewayError::Internal, &headers),
    };
    let Some(batch) = batch.filter(|_| status.is_success()) else {
        log.usage = usage_of(&body);
        return json_response(log, status, body, &headers);
    };
    match batch.complete_with(state, &mut log, &target, &body) {
        Ok(Some(merged)) => json_response(log, status, merged, &headers),
        Ok(None) => json_response(log, status, body, &headers),
        Err(err) => fail(log, err, &headers),
    }
}

fn usage_of(body: &[u8]) -> Option<Usage> {
    serde_json::from_slice::<UsageProbe>(body)
        .ok()
        .and_then(|p| p.usage)
}

/// One request's inputs and what the cache holds of them.
struct Batch {
    /// The request, to rebuild with only the missing inputs.
    request: Map<String, Value>,
    model: String,
    namespace: String,
    inputs: Inputs,
    /// By input: its entry, when the cache may answer it.
    found: Vec<Option<Arc<Entry>>>,
    control: CacheControl,
    request_id: String,
}

/// An upstream embeddings list, each embedding kept as the upstream wrote it.
#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow)]
    data: Vec<Item<'a>>,
    model: Option<String>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Item<'a> {
    index: usize,
    #[serde(borrow)]
    embedding: &'a RawValue,
}

/// A stored input: its embedding's JSON text (valid JSON: it came from the upstream's answer,
/// or was checked when loaded from the store), the model the upstream named and the input's
/// share of the batch's tokens.
fn stored(entry: &Entry) -> Option<(&str, &str, u64)> {
    let stored = entry.completion.as_parsed()?;
    let embedding = stored[EMBEDDING_JSON].as_str()?;
    let model = stored["model"].as_str().unwrap_or(&entry.model);
    Some((embedding, model, entry.tokens().0))
}

/// The field of a stored input that holds its embedding's JSON text.
pub const EMBEDDING_JSON: &str = "embedding_json";

impl Batch {
    /// The request's inputs and those the cache holds; `None` when the cache is off, the
    /// directives neither serve nor store, or the input is no shape the cache keeps.
    fn look_up(
        state: &AppState,
        raw: &[u8],
        namespace: String,
        control: CacheControl,
        request_id: &str,
    ) -> Option<Batch> {
        let cache = state.cache();
        if !cache.enabled() || !(control.may_serve() || control.may_store()) {
            return None;
        }
        let request: Value = serde_json::from_slice(raw).ok()?;
        let inputs = reprise_cache::embeddings::inputs(&namespace, &request)?;
        let Value::Object(request) = request else {
            return None;
        };
        let found = inputs
            .keys
            .iter()
            .map(|key| {
                control
                    .may_serve()
                    .then(|| cache.get_key(key, control.max_age))
                    .flatten()
                    // An entry that is not an input's embedding is not an answer.
                    .filter(|entry| stored(entry).is_some())
            })
            .collect();
        Some(Batch {
            model: request
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            request,
            namespace,
            inputs,
            found,
            control,
            request_id: request_id.to_owned(),
        })
    }

    fn found(&self) -> usize {
        self.found.iter().filter(|f| f.is_some()).count()
    }

    fn complete(&self) -> bool {
        self.found.iter().all(Option::is_some)
    }

    /// The request with only the inputs the cache lacks, in their order.
    fn upstream_body(&self) -> Bytes {
        let missing: Vec<Value> = self
            .inputs
            .items
            .iter()
            .zip(&self.found)
            .filter(|(_, found)| found.is_none())
            .map(|(item, _)| item.clone())
            .collect();
        let mut request = self.request.clone();
        request.insert("input".into(), Value::Array(missing));
        Bytes::from(Value::Object(request).to_string())
    }

    /// Every input answered from the cache.
    fn respond(&self, state: &AppState, mut log: RequestLog) -> Response {
        let counters = &state.cache().counters;
        counters.exact_hits.fetch_add(1, Ordering::Relaxed);
        counters
            .embedding_inputs_cached
            .fetch_add(self.found.len() as u64, Ordering::Relaxed);
        let entries: Vec<&Arc<Entry>> = self.found.iter().flatten().collect();
        let mut data: Vec<&str> = Vec::with_capacity(entries.len());
        let mut tokens = 0;
        let mut model = self.model.as_str();
        for entry in &entries {
            // Readable: `look_up` keeps only entries that are.
            let Some((embedding, named, share)) = stored(entry) else {
                return fail(log, GatewayError::Internal, &[]);
            };
            entry.hits.fetch_add(1, Ordering::Relaxed);
            model = named;
            tokens += share;
            data.push(embedding);
        }
        book_savings(state, &mut log, &self.model, tokens, 0);
        log.cache = CacheStatus::Hit;
        log.usage = Some(Usage {
            prompt_tokens: tokens,
            total_tokens: tokens,
            ..Usage::default()
        });
        let now = now_ms();
        let age = entries.iter().map(|e| e.age_secs(now)).max().unwrap_or(0);
        let provider = entries.first().map(|e| e.provider.clone());
        log.target = provider.clone();
        let body = list(data, model, tokens);
        let mut headers = vec![
            ("x-reprise-cache", HeaderValue::from_static("hit")),
            ("x-reprise-cache-kind", HeaderValue::from_static("exact")),
            ("x-reprise-cache-hits", HeaderValue::from(entries.len())),
            ("age", HeaderValue::from(age)),
        ];
        if let Some(provider) = provider.and_then(|p| HeaderValue::from_str(&p).ok()) {
            headers.push(("x-reprise-provider", provider));
        }
        json_response(log, StatusCode::OK, body, &headers)
    }

    /// Stores the embeddings the upstream returned for the missing inputs and, when the cache
    /// answered some inputs, the whole list in the request's order (`None`: the upstream's
    /// answer is the whole answer, as it came).
    fn complete_with(
        &self,
        state: &AppState,
        log: &mut RequestLog,
        target: &str,
        body: &[u8],
    ) -> Result<Option<Bytes>, GatewayError> {
        let missing: Vec<usize> = (0..self.found.len())
            .filter(|&i| self.found[i].is_none())
            .collect();
        let answer = serde_json::from_slice::<Answer>(body)
            .ok()
            .filter(|a| fits(a, missing.len()));
        let Some(answer) = answer else {
            log.usage = usage_of(body);
            // With nothing of its own to add, the gateway relays what it got and keeps none of
            // it; it cannot merge an answer it cannot read.
            return match self.found() {
                0 => Ok(None),
                _ => Err(GatewayError::UpstreamBroken {
                    target: target.to_owned(),
                }),
            };
        };
        let billed = answer.usage.map_or(0, |u| u.prompt_tokens);
        log.usage = answer.usage;
        let model = answer.model.as_deref().unwrap_or(&self.model);
        let mut fresh: Vec<Option<&str>> = vec![None; missing.len()];
        for item in &answer.data {
            fresh[item.index] = Some(item.embedding.get());
        }
        if self.control.may_store() {
            let items: Vec<&Value> = missing.iter().map(|&i| &self.inputs.items[i]).collect();
            let shares = apportion(&items, billed);
            let cache = state.cache();
            let now = now_ms();
            for ((&i, embedding), share) in missing.iter().zip(&fresh).zip(shares) {
                let Some(embedding) = embedding else { continue };
                let completion = json!({
                    "object": "embedding",
                    EMBEDDING_JSON: embedding,
                    "model": model,
                    "usage": {"prompt_tokens": share, "completion_tokens": 0, "total_tokens": share},
                });
                let entry = Entry {
                    exact: self.inputs.keys[i],
                    scope: self.inputs.scope,
                    namespace: self.namespace.clone(),
                    model: self.model.clone(),
                    provider: target.to_owned(),
                    prompt: None,
                    completion: Stored::parsed(completion),
                    bytes: 0,
                    created_ms: now,
                    expires_ms: cache.expiry(self.control.ttl, now),
                    hits: AtomicU64::new(0),
                };
                cache.write_exact(entry, &self.request_id);
            }
        }
        if self.found() == 0 {
            return Ok(None);
        }
        // Some inputs came from the cache: the whole list, in the request's order.
        let mut saved = 0;
        let mut fresh = fresh.into_iter();
        let mut data = Vec::with_capacity(self.found.len());
        for found in &self.found {
            let embedding = match found {
                Some(entry) => {
                    let Some((embedding, _, share)) = stored(entry) else {
                        return Err(GatewayError::Internal);
                    };
                    entry.hits.fetch_add(1, Ordering::Relaxed);
                    saved += share;
                    embedding
                }
                None => fresh.next().flatten().ok_or(GatewayError::Internal)?,
            };
            data.push(embedding);
        }
        book_savings(state, log, &self.model, saved, 0);
        log.saved_tokens = saved;
        Ok(Some(list(data, model, billed + saved)))
    }
}

/// Whether an upstream list answers `count` inputs: one embedding for each index.
fn fits(answer: &Answer, count: usize) -> bool {
    let mut seen = vec![false; count];
    answer.data.len() == count
        && answer
            .data
            .iter()
            .all(|item| item.index < count && !std::mem::replace(&mut seen[item.index], true))
}

/// The list of `embeddings` (JSON texts, in the request's order: see
/// [`reprise_api::embeddings_list`]).
fn list(embeddings: Vec<&str>, model: &str, tokens: u64) -> Bytes {
    Bytes::from(reprise_api::embeddings_list(
        embeddings.into_iter(),
        model,
        tokens,
    ))
}
