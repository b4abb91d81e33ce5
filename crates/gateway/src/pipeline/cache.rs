//! The pipeline's cache steps: answering a hit (JSON or a replayed stream) and storing a miss.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use reprise_api::{ChatCompletionRequest, Usage};
use reprise_cache::{Entry, Stored, replay};
use serde_json::Value;

use super::record::{CacheStatus, Outcome, RequestLog};
use crate::AppState;
use crate::cache::{FlightGuard, Lookup, now_ms};

/// A cache hit: the entry, and the similarity when the semantic tier found it.
pub struct Hit {
    entry: Arc<Entry>,
    similarity: Option<f32>,
}

impl Hit {
    /// The answer of the identical in-flight request this one waited for (an exact hit).
    pub fn shared(entry: Arc<Entry>) -> Self {
        Self {
            entry,
            similarity: None,
        }
    }
}

/// The exact tier, then (only on its miss) the semantic tier, embedding the question first.
pub async fn lookup(state: &AppState, lookup: &mut Lookup) -> Option<Hit> {
    if let Some(entry) = state.cache().get(lookup) {
        return Some(Hit {
            entry,
            similarity: None,
        });
    }
    // The vector serves this lookup and goes with the entry if the answer is stored
    // (`no-cache` stores without serving).
    if lookup.may_serve() || lookup.may_store() {
        state.cache().embed(lookup).await;
    }
    state
        .cache()
        .get_semantic(lookup)
        .map(|(entry, similarity)| Hit {
            entry,
            similarity: Some(similarity),
        })
}

/// Answers from a cache entry in the form the request asked for.
pub fn respond_hit(
    state: &AppState,
    log: RequestLog,
    hit: Hit,
    request: &ChatCompletionRequest,
) -> Response {
    let entry = &hit.entry;
    let response = if request.is_stream() {
        let mut events = String::new();
        for data in replay::chunks(&entry.completion.value(), request.include_usage()) {
            events.push_str("data: ");
            events.push_str(&data);
            events.push_str("\n\n");
        }
        event_stream(events)
    } else {
        json(replay::json_body(&entry.completion))
    };
    finish_hit(state, log, &hit, response)
}

/// Answers a Responses API request from a cache entry (a stored response): as a new response,
/// or as the events of one.
pub fn respond_hit_responses(
    state: &AppState,
    log: RequestLog,
    hit: Hit,
    stream: bool,
) -> Response {
    let now_secs = crate::cache::now_ms() / 1000;
    let stored = &hit.entry.completion;
    let response = if stream {
        let fresh = reprise_cache::responses::fresh(&stored.value(), now_secs);
        let mut events = String::new();
        for (name, data) in reprise_cache::responses::events(&fresh) {
            events.push_str("event: ");
            events.push_str(name);
            events.push_str("\ndata: ");
            events.push_str(&data);
            events.push_str("\n\n");
        }
        event_stream(events)
    } else {
        json(reprise_cache::responses::json_body(stored, now_secs))
    };
    finish_hit(state, log, &hit, response)
}

/// A replayed stream: every event is known at once, so they go out together, as one frame of a
/// chunked body (written with one system call, where a frame an event cost the hit about twice a
/// JSON hit's CPU), still an event stream of several events to the client.
fn event_stream(events: String) -> Response {
    let frame = Ok::<_, Infallible>(Bytes::from(events));
    let mut r = Response::new(Body::from_stream(futures_util::stream::once(
        std::future::ready(frame),
    )));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn json(body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A hit's books (counters, savings, the log line) and headers.
fn finish_hit(
    state: &AppState,
    mut log: RequestLog,
    hit: &Hit,
    mut response: Response,
) -> Response {
    let entry = &hit.entry;
    let counters = &state.cache().counters;
    let tier = if hit.similarity.is_some() {
        &counters.semantic_hits
    } else {
        &counters.exact_hits
    };
    tier.fetch_add(1, Ordering::Relaxed);
    let (prompt_tokens, completion_tokens) = entry.tokens();
    book_savings(
        state,
        &mut log,
        &entry.model,
        prompt_tokens,
        completion_tokens,
    );
    log.cache = CacheStatus::Hit;
    log.target = Some(entry.provider.clone());
    log.usage = Some(Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens + completion_tokens,
        prompt_tokens_details: None,
    });
    log.status = 200;
    log.outcome = Outcome::Ok;
    *response.status_mut() = StatusCode::OK;
    let h = response.headers_mut();
    h.insert("x-reprise-cache", HeaderValue::from_static("hit"));
    match hit.similarity {
        None => {
            h.insert("x-reprise-cache-kind", HeaderValue::from_static("exact"));
        }
        Some(similarity) => {
            h.insert("x-reprise-cache-kind", HeaderValue::from_static("semantic"));
            if let Ok(v) = HeaderValue::from_str(&format!("{similarity:.4}")) {
                h.insert("x-reprise-cache-similarity", v);
            }
        }
    }
    h.insert(header::AGE, HeaderValue::from(entry.age_secs(now_ms())));
    if let Ok(provider) = HeaderValue::from_str(&entry.provider) {
        h.insert("x-reprise-provider", provider);
    }
    response
}

/// Counts the tokens the cache answered and, when the model is priced, what they would have
/// cost upstream (on the request's log line and in the totals).
pub fn book_savings(
    state: &AppState,
    log: &mut RequestLog,
    model: &str,
    prompt_tokens: u64,
    completion_tokens: u64,
) {
    let counters = &state.cache().counters;
    counters
        .prompt_tokens_saved
        .fetch_add(prompt_tokens, Ordering::Relaxed);
    counters
        .completion_tokens_saved
        .fetch_add(completion_tokens, Ordering::Relaxed);
    match state.config().prices.get(model) {
        Some(price) => {
            let nano_usd = (price.cost(prompt_tokens, completion_tokens) * 1e9).round() as u64;
            counters
                .nano_usd_saved
                .fetch_add(nano_usd, Ordering::Relaxed);
            log.saved_nano_usd = i64::try_from(nano_usd).ok();
        }
        None => {
            counters.unpriced_hits.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Stores a Responses API answer when its never-store rules allow it.
pub fn store_response(state: &AppState, lookup: &Lookup, provider: &str, response: Value) {
    let storable = reprise_cache::responses::storable;
    if let Err((reason, _)) = state.cache().write(lookup, provider, response, storable) {
        tracing::debug!(reason, "response not cached");
    }
}

/// Stores an upstream answer when the never-store rules allow it; followers of `flight` then
/// find it in the cache. An answer those rules keep out (cut by `max_tokens`, a refusal, empty)
/// still answers them: they asked the very same request at the same time.
pub fn store(
    state: &AppState,
    lookup: &Lookup,
    provider: &str,
    completion: Value,
    flight: Option<FlightGuard>,
) {
    let storable = reprise_cache::storable;
    let Err((reason, completion)) = state.cache().write(lookup, provider, completion, storable)
    else {
        return;
    };
    tracing::debug!(reason, "answer not cached");
    let finished = completion["choices"][0]["finish_reason"].is_string();
    if let Some(flight) = flight
        && finished
        && matches!(reason, "finish_reason" | "refusal" | "empty")
    {
        let entry = state
            .cache()
            .entry(lookup, provider, Stored::compact(&completion), now_ms());
        flight.answer(Arc::new(entry));
    }
}
