//! The request story, in order, in one place:
//!
//! ```text
//! authenticate ─▶ limit ─▶ cache lookup ──hit──▶ respond
//!                               │ miss / bypass
//!                               ▼
//!       plan (ordered routes: alias strategy, patterns, health) ─▶ attempt / retry / fail over
//!            (streams: only until the first content event) ─▶ respond (JSON or relayed SSE)
//!                                                          ─▶ record (request log line, cache)
//! ```
//!
//! Each step is a plain async function called from here with explicit arguments. The caller is
//! identified by the route (`auth::identify`) before the body is read; `admit` and
//! `admit_upstream` below apply its limits and budgets.

mod attempt;
mod cache;
mod embeddings;
mod forward;
mod record;
mod relay;

use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use reprise_api::{
    ChatCompletionRequest, ChatMessage, CompletionsRequest, Model, ModelList, ResponsesRequest,
    ResponsesUsageProbe, Role, UsageProbe,
};
use reprise_providers::UpstreamError;
use serde_json::Value;

use attempt::Delivered;

pub use embeddings::{EMBEDDING_JSON, embeddings};
pub use forward::{ForwardRequest, forward};
pub use record::{CacheStatus, Outcome, RequestLog};

use crate::auth::Caller;
use crate::cache::{CachedApi, Flight, Shared};
use crate::limits;
use crate::{AppState, GatewayError};

/// What the request's headers tell the cache.
#[derive(Debug, Clone)]
pub struct CacheDirectives {
    pub control: reprise_cache::CacheControl,
    pub namespace: String,
}

/// `POST /v1/chat/completions`.
pub async fn chat(
    state: &AppState,
    mut log: RequestLog,
    caller: Caller,
    request: ChatCompletionRequest,
    raw: Bytes,
    directives: Result<CacheDirectives, GatewayError>,
) -> Response {
    log.model = Some(request.model.clone());
    log.stream = request.is_stream();
    if state.config().log_prompts {
        log.prompt = request
            .messages
            .last()
            .filter(|m| matches!(m.role, reprise_api::Role::User))
            .and_then(|m| reprise_cache::keys::text_of(m.content.as_ref()));
    }
    if let Err(err) = validate_chat(&request) {
        return fail(log, err, &[]);
    }
    let directives = match admit_cacheable(state, &mut log, &caller, &request.model, directives) {
        Ok(d) => d,
        Err(err) => return fail(log, err, &[]),
    };

    // Cache lookup: the exact tier, in the caller's namespace.
    let namespace = tenant_namespace(&caller, directives.namespace);
    let mut lookup = state.cache().prepare(
        CachedApi::Chat,
        &raw,
        namespace,
        directives.control,
        &log.request_id,
    );
    let mut flight = None;
    let mut shared_failure = None;
    if let Some(lookup) = &mut lookup {
        if let Some(hit) = cache::lookup(state, lookup).await {
            return cache::respond_hit(state, log, hit, &request);
        }
        // A leader that ends with no answer at all (its client went away, its stream was cut)
        // hands the call to one of its followers, once; the others wait for that one.
        let mut rounds = 0;
        while lookup.may_serve() && rounds < 2 {
            rounds += 1;
            match state.cache().flight(lookup.keys.exact) {
                Flight::Lead(guard) => {
                    flight = Some(guard);
                    break;
                }
                Flight::Follow(mut done) => {
                    // An identical request is already on its way upstream: wait for its answer.
                    let _ = done.changed().await;
                    if let Some(hit) = cache::lookup(state, lookup).await {
                        return cache::respond_hit(state, log, hit, &request);
                    }
                    let outcome = done.borrow().clone();
                    match outcome.as_deref() {
                        // An answer the cache does not keep: it answers this request too.
                        Some(Shared::Answer(entry)) => {
                            let hit = cache::Hit::shared(entry.clone());
                            return cache::respond_hit(state, log, hit, &request);
                        }
                        // Its call failed: the same request would fail the same way (unless
                        // it goes upstream with its own provider key, which the leader's may
                        // not be).
                        Some(Shared::Failure { .. }) => {
                            if caller.upstream_key.is_none() {
                                shared_failure = outcome;
                            }
                            break;
                        }
                        None => {}
                    }
                }
            }
        }
    }
    let cache = match &lookup {
        Some(l) if l.cacheable() => CacheStatus::Miss,
        _ => CacheStatus::Bypass,
    };
    let counter = match cache {
        CacheStatus::Miss => &state.cache().counters.misses,
        _ => &state.cache().counters.bypasses,
    };
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    log.cache = cache;
    let mut headers = vec![("x-reprise-cache", HeaderValue::from_static(cache.as_str()))];
    if let Some(Shared::Failure { error, target }) = shared_failure.as_deref() {
        log.target = target.clone();
        push_provider(&mut headers, target.as_deref());
        return fail(log, error.clone(), &headers);
    }

    let routes = state.router().plan(&request.model, Instant::now());
    if routes.is_empty() {
        let err = GatewayError::ModelNotFound {
            model: request.model,
        };
        return fail(log, err, &headers);
    }
    // An upstream call: the budgets, then the key's tokens per minute.
    let max_tokens = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|f| request.extra.get(*f).and_then(serde_json::Value::as_u64));
    if let Err(err) = admit_upstream(state, &mut log, &caller, &raw, max_tokens) {
        return fail(log, err, &headers);
    }

    // Attempt, retry, fail over. The request is forwarded exactly as it arrived to
    // OpenAI-compatible targets (unknown fields untouched), translated for the others.
    let upstream_started = Instant::now();
    let settings = &state.config().routing;
    // A stream always asks for its usage (spend and limits need it); the relay drops the usage
    // chunk when the client did not ask for it.
    let strip_usage = request.is_stream() && !request.include_usage();
    let upstream_body = if strip_usage {
        with_usage(&raw).unwrap_or_else(|| raw.clone())
    } else {
        raw.clone()
    };
    let outgoing = attempt::Outgoing {
        api: attempt::Api::Chat,
        body: &upstream_body,
        stream: request.is_stream(),
        api_key: caller.upstream_key.as_ref(),
    };
    let release_after = state.config().stream_keepalive;
    let attempt = attempt::generate(&routes, outgoing, settings, log.started, release_after);
    let success = match attempt.await {
        Ok(success) => success,
        Err(failure) => {
            log.upstream = Some(upstream_started.elapsed());
            if let Some(flight) = flight.filter(|_| caller.upstream_key.is_none()) {
                flight.fail(&failure.error, failure.last_target.as_deref());
            }
            return fail_attempts(log, failure, headers);
        }
    };
    let target = success.route.target;
    served_by(&mut log, &mut headers, &target.name, success.attempts);

    match success.delivered {
        Delivered::Json { status, body } => {
            log.upstream = Some(upstream_started.elapsed());
            // A storable answer is parsed whole once (usage comes from it); otherwise only its
            // usage is read.
            match lookup.as_ref().filter(|l| l.may_store()) {
                Some(lookup) => {
                    if let Ok(completion) = serde_json::from_slice::<serde_json::Value>(&body) {
                        log.usage = serde_json::from_value(completion["usage"].clone()).ok();
                        cache::store(state, lookup, &target.name, completion, flight.take());
                    }
                }
                None => {
                    log.usage = serde_json::from_slice::<UsageProbe>(&body)
                        .ok()
                        .and_then(|p| p.usage);
                }
            }
            drop(flight);
            json_response(log, status, body, &headers)
        }
        Delivered::Stream { held, events } => {
            let collector = lookup
                .filter(|l| l.may_store())
                .map(|lookup| relay::Collector::new(state.clone(), lookup, &target.name, flight))
                .map(Box::new);
            let wire = relay::Wire::Chat {
                collector,
                strip_usage,
            };
            relay::respond(log, held, events, success.sent, &headers, wire)
        }
    }
}

/// `POST /v1/responses`, OpenAI's Responses API: routed by model with the keys, limits,
/// budgets, retries, failover, accounting and log line of a chat completion; forwarded as it
/// came to OpenAI targets (a stream relayed event by event, names kept), translated through a
/// chat completion for the others (`reprise_providers`), and passed on to the next target of
/// the plan by one that cannot take it. Cached when it keeps nothing at the provider
/// (`"store": false`; see `reprise_cache::responses`), as a chat completion is.
pub async fn responses(
    state: &AppState,
    mut log: RequestLog,
    caller: Caller,
    request: ResponsesRequest,
    raw: Bytes,
    directives: Result<CacheDirectives, GatewayError>,
) -> Response {
    if state.config().log_prompts {
        log.prompt = responses_prompt(&raw);
    }
    let stream = request.is_stream();
    log.model = Some(request.model.clone());
    log.stream = stream;
    if request.model.trim().is_empty() {
        let err = GatewayError::invalid("'model' must name a model", Some("model"));
        return fail(log, err, &[]);
    }
    let directives = match admit_cacheable(state, &mut log, &caller, &request.model, directives) {
        Ok(d) => d,
        Err(err) => return fail(log, err, &[]),
    };
    let namespace = tenant_namespace(&caller, directives.namespace);
    // Providers that answer through a chat completion keep nothing: there `store` is moot.
    let may_be_kept = state.cache().enabled()
        && state
            .router()
            .plan(&request.model, Instant::now())
            .iter()
            .any(|route| route.target.provider.keeps_responses());
    let mut lookup = state.cache().prepare(
        CachedApi::Responses { may_be_kept },
        &raw,
        namespace,
        directives.control,
        &log.request_id,
    );
    let mut flight = None;
    if let Some(lookup) = &mut lookup {
        if let Some(hit) = cache::lookup(state, lookup).await {
            return cache::respond_hit_responses(state, log, hit, stream);
        }
        // An identical request already on its way upstream: wait for its answer to be stored.
        // When it is not (a failure, an answer the cache does not keep), each waiter calls the
        // upstream itself.
        if lookup.may_serve() {
            match state.cache().flight(lookup.keys.exact) {
                Flight::Lead(guard) => flight = Some(guard),
                Flight::Follow(mut done) => {
                    let _ = done.changed().await;
                    if let Some(hit) = cache::lookup(state, lookup).await {
                        return cache::respond_hit_responses(state, log, hit, stream);
                    }
                }
            }
        }
    }
    let forward = Uncached {
        api: attempt::Api::Responses,
        model: request.model,
        stream,
        max_tokens: request.max_output_tokens,
        strip_usage: false,
    };
    send(state, log, caller, forward, raw, (lookup, flight)).await
}

/// `POST /v1/completions`, legacy text completions: as [`responses`], but forwarded only (to
/// OpenAI-compatible and Azure targets; never translated), with chat-shaped streams (chunks and
/// `[DONE]`; the usage chunk asked for on the client's behalf, for accounting, and dropped when
/// it did not ask).
pub async fn completions(
    state: &AppState,
    mut log: RequestLog,
    caller: Caller,
    request: CompletionsRequest,
    raw: Bytes,
) -> Response {
    if state.config().log_prompts {
        #[derive(serde::Deserialize)]
        struct Prompt {
            prompt: serde_json::Value,
        }
        log.prompt = serde_json::from_slice::<Prompt>(&raw)
            .ok()
            .and_then(|p| p.prompt.as_str().map(str::to_owned));
    }
    let stream = request.is_stream();
    let forward = Uncached {
        api: attempt::Api::Completions,
        strip_usage: stream && !request.include_usage(),
        model: request.model,
        stream,
        max_tokens: request.max_tokens,
    };
    uncached(state, log, caller, forward, raw).await
}

/// A generation request the cache does not answer: what the pipeline reads of it.
struct Uncached {
    api: attempt::Api,
    model: String,
    stream: bool,
    /// The output ceiling, for the token estimate.
    max_tokens: Option<u64>,
    /// A chat-shaped stream whose client did not ask for the usage chunk: it is asked for
    /// (spend and limits need it) and dropped on the way back.
    strip_usage: bool,
}

/// Admits, routes, attempts and relays an [`Uncached`] request (`x-reprise-cache: bypass`).
async fn uncached(
    state: &AppState,
    mut log: RequestLog,
    caller: Caller,
    request: Uncached,
    raw: Bytes,
) -> Response {
    log.model = Some(request.model.clone());
    log.stream = request.stream;
    if request.model.trim().is_empty() {
        let err = GatewayError::invalid("'model' must name a model", Some("model"));
        return fail(log, err, &[]);
    }
    if let Err(err) = admit(state, &mut log, &caller, &request.model) {
        return fail(log, err, &[]);
    }
    send(state, log, caller, request, raw, (None, None)).await
}

/// Routes, attempts and relays an admitted request the cache did not answer; with a `lookup`
/// (a Responses API request the cache may keep: `x-reprise-cache: miss`), stores the answer,
/// holding `flight` (identical requests wait for it) until then.
async fn send(
    state: &AppState,
    mut log: RequestLog,
    caller: Caller,
    request: Uncached,
    raw: Bytes,
    (lookup, flight): (
        Option<crate::cache::Lookup>,
        Option<crate::cache::FlightGuard>,
    ),
) -> Response {
    let cache = match &lookup {
        Some(l) if l.cacheable() => CacheStatus::Miss,
        _ => CacheStatus::Bypass,
    };
    // Counted only for a request the cache was asked about (text completions never are).
    if lookup.is_some() {
        let counters = &state.cache().counters;
        let counter = match cache {
            CacheStatus::Miss => &counters.misses,
            _ => &counters.bypasses,
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    log.cache = cache;
    let lookup = lookup.filter(|l| l.may_store());
    let mut headers = vec![("x-reprise-cache", HeaderValue::from_static(cache.as_str()))];
    let routes = state.router().plan(&request.model, Instant::now());
    if routes.is_empty() {
        let err = GatewayError::ModelNotFound {
            model: request.model,
        };
        return fail(log, err, &headers);
    }
    if let Err(err) = admit_upstream(state, &mut log, &caller, &raw, request.max_tokens) {
        return fail(log, err, &headers);
    }
    let upstream_body = if request.strip_usage {
        with_usage(&raw).unwrap_or_else(|| raw.clone())
    } else {
        raw
    };
    let upstream_started = Instant::now();
    let outgoing = attempt::Outgoing {
        api: request.api,
        body: &upstream_body,
        stream: request.stream,
        api_key: caller.upstream_key.as_ref(),
    };
    let settings = &state.config().routing;
    let release_after = state.config().stream_keepalive;
    let success =
        match attempt::generate(&routes, outgoing, settings, log.started, release_after).await {
            Ok(success) => success,
            Err(failure) => {
                log.upstream = Some(upstream_started.elapsed());
                return fail_attempts(log, failure, headers);
            }
        };
    let target = &success.route.target.name;
    served_by(&mut log, &mut headers, target, success.attempts);
    match success.delivered {
        Delivered::Json { status, body } => {
            log.upstream = Some(upstream_started.elapsed());
            if let Some(lookup) = &lookup
                && let Ok(response) = serde_json::from_slice::<serde_json::Value>(&body)
            {
                cache::store_response(state, lookup, target, response);
            }
            drop(flight);
            log.usage = match request.api {
                attempt::Api::Responses => ResponsesUsageProbe::read(&body),
                attempt::Api::Chat | attempt::Api::Completions => {
                    serde_json::from_slice::<UsageProbe>(&body)
                        .ok()
                        .and_then(|p| p.usage)
                }
            };
            json_response(log, status, body, &headers)
        }
        Delivered::Stream { held, events } => {
            let wire = match request.api {
                attempt::Api::Responses => relay::Wire::Responses {
                    collector: lookup.map(|lookup| {
                        Box::new(relay::Collector::for_responses(
                            state.clone(),
                            lookup,
                            target,
                            flight,
                        ))
                    }),
                },
                attempt::Api::Chat | attempt::Api::Completions => relay::Wire::Chat {
                    collector: None,
                    strip_usage: request.strip_usage,
                },
            };
            relay::respond(log, held, events, success.sent, &headers, wire)
        }
    }
}

/// A call on a response the Responses API stored (see [`stored_response`]).
#[derive(Debug)]
pub struct StoredRequest {
    pub method: axum::http::Method,
    /// Below `/responses/`: the id, and the operation if any (`resp_1/cancel`).
    pub path: String,
    pub query: Option<String>,
}

/// `GET` and `DELETE /v1/responses/{id}`, `POST /v1/responses/{id}/cancel`,
/// `GET /v1/responses/{id}/input_items`: a response the Responses API stored, asked of the
/// OpenAI-compatible targets in configuration order until one holds it (the first answer that
/// is not a 404; a 404 from all is the last one's). A background response's events
/// (`GET /v1/responses/{id}?stream=true`) are relayed as a stream.
pub async fn stored_response(
    state: &AppState,
    mut log: RequestLog,
    caller: Caller,
    request: StoredRequest,
) -> Response {
    if let Some(key) = &caller.key {
        log.key = Some(key.clone());
        if let Err(err) = state.limiter().admit_request(key, Instant::now()) {
            return fail(log, err, &[]);
        }
    }
    let mut headers = vec![(
        "x-reprise-cache",
        HeaderValue::from_static(CacheStatus::Bypass.as_str()),
    )];
    let stream = request
        .query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|pair| pair == "stream=true"));
    log.stream = stream;
    let upstream_started = Instant::now();
    let mut last: Option<(String, UpstreamError)> = None;
    for target in state.targets() {
        let call = reprise_providers::StoredCall {
            method: request.method.clone(),
            path: &request.path,
            query: request.query.as_deref(),
            stream,
            api_key: caller.upstream_key.as_ref(),
        };
        let sent = Instant::now();
        let outcome = target.provider.stored_response(call).await;
        log.upstream = Some(upstream_started.elapsed());
        let err = match outcome {
            Ok(reply) => {
                log.target = Some(target.name.clone());
                push_provider(&mut headers, Some(&target.name));
                return match reply {
                    reprise_providers::Reply::Json { status, body, .. } => {
                        json_response(log, status, body, &headers)
                    }
                    reprise_providers::Reply::Stream { events, .. } => {
                        let held = std::collections::VecDeque::new();
                        relay::respond(
                            log,
                            held,
                            events,
                            sent,
                            &headers,
                            relay::Wire::Responses { collector: None },
                        )
                    }
                };
            }
            Err(err) => err,
        };
        // Not held there (another account may hold it), or not a Responses API target: the
        // next target is asked. A target's own 404 is kept over another's "not this API".
        let unsupported = matches!(err, UpstreamError::Unsupported { .. });
        if !unsupported && err.status() != Some(StatusCode::NOT_FOUND) {
            log.target = Some(target.name.clone());
            push_provider(&mut headers, Some(&target.name));
            return fail(
                log,
                GatewayError::from_upstream(&target.name, err),
                &headers,
            );
        }
        if !(unsupported && last.as_ref().is_some_and(|(_, e)| e.status().is_some())) {
            last = Some((target.name.clone(), err));
        }
    }
    let err = match last {
        Some((target, err)) => {
            push_provider(&mut headers, Some(&target));
            log.target = Some(target.clone());
            GatewayError::from_upstream(&target, err)
        }
        None => GatewayError::Internal,
    };
    fail(log, err, &headers)
}

/// The user's words in a Responses API request, for the request log: `input` when it is
/// text, else the text of its last user message.
fn responses_prompt(raw: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Input {
        input: serde_json::Value,
    }
    let input = serde_json::from_slice::<Input>(raw).ok()?.input;
    if let Some(text) = input.as_str() {
        return Some(text.to_owned());
    }
    let last = input
        .as_array()?
        .iter()
        .rev()
        .find(|item| item.get("role").and_then(|r| r.as_str()) == Some("user"))?;
    match last.get("content")? {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter(|p| p.get("type").and_then(|t| t.as_str()) == Some("input_text"))
                .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
                .collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        }
        _ => None,
    }
}

/// Ends a request whose every attempt failed: the attempts in its log line, the last target in
/// its provider header.
fn fail_attempts(
    mut log: RequestLog,
    failure: attempt::Failure,
    mut headers: Vec<(&'static str, HeaderValue)>,
) -> Response {
    log.attempts = failure.attempts;
    log.target = failure.last_target;
    push_provider(&mut headers, log.target.as_deref());
    fail(log, failure.error, &headers)
}

/// Notes the target that answered, and the attempts it took, in the log line and the headers.
fn served_by(
    log: &mut RequestLog,
    headers: &mut Vec<(&'static str, HeaderValue)>,
    target: &str,
    attempts: Vec<attempt::AttemptRecord>,
) {
    log.target = Some(target.to_owned());
    log.attempts = attempts;
    push_provider(headers, Some(target));
    push_attempts(headers, log.attempts.len());
}

/// `x-reprise-attempts`, when more than one upstream call was made.
fn push_attempts(headers: &mut Vec<(&'static str, HeaderValue)>, attempts: usize) {
    if attempts > 1 {
        headers.push(("x-reprise-attempts", HeaderValue::from(attempts)));
    }
}

fn push_provider(headers: &mut Vec<(&'static str, HeaderValue)>, target: Option<&str>) {
    if let Some(value) = target.and_then(|t| HeaderValue::from_str(t).ok()) {
        headers.push(("x-reprise-provider", value));
    }
}

/// The body with `stream_options.include_usage` set.
fn with_usage(raw: &[u8]) -> Option<Bytes> {
    let mut body: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(raw).ok()?;
    let options = body
        .entry("stream_options")
        .or_insert_with(|| serde_json::json!({}));
    if !options.is_object() {
        *options = serde_json::json!({});
    }
    options
        .as_object_mut()?
        .insert("include_usage".to_owned(), serde_json::Value::Bool(true));
    serde_json::to_vec(&body).ok().map(Bytes::from)
}

/// The checks every model request passes before anything else: the key may use the model, and
/// has requests left this minute.
fn admit(
    state: &AppState,
    log: &mut RequestLog,
    caller: &Caller,
    model: &str,
) -> Result<(), GatewayError> {
    let Some(key) = &caller.key else {
        return Ok(());
    };
    log.key = Some(key.clone());
    if !key.allows_model(model) {
        return Err(GatewayError::ModelNotAllowed {
            model: model.to_owned(),
        });
    }
    state.limiter().admit_request(key, Instant::now())
}

/// A request the cache may answer: its directives (malformed ones are a 400), then
/// [`admit`] (cache hits count against the key's requests per minute too).
fn admit_cacheable(
    state: &AppState,
    log: &mut RequestLog,
    caller: &Caller,
    model: &str,
    directives: Result<CacheDirectives, GatewayError>,
) -> Result<CacheDirectives, GatewayError> {
    let directives = directives?;
    admit(state, log, caller, model)?;
    Ok(directives)
}

/// The checks before an upstream call (cache hits skip them): the key's and its team's budgets,
/// then its tokens per minute (estimated now, corrected when the request ends).
fn admit_upstream(
    state: &AppState,
    log: &mut RequestLog,
    caller: &Caller,
    raw: &[u8],
    max_tokens: Option<u64>,
) -> Result<(), GatewayError> {
    let Some(key) = &caller.key else {
        return Ok(());
    };
    admit_budgets(state, key)?;
    let estimate = limits::estimate_tokens(raw, max_tokens);
    log.ticket = state
        .limiter()
        .admit_tokens(key, estimate, Instant::now())?;
    Ok(())
}

/// The key's and its team's daily and monthly budgets: refused once spent.
fn admit_budgets(state: &AppState, key: &crate::auth::Key) -> Result<(), GatewayError> {
    let now_ms = crate::state::unix_ms();
    let spend = state.spend();
    spend.check(
        &limits::holder_key(&key.id),
        "this key",
        key.daily_usd,
        key.monthly_usd,
        now_ms,
    )?;
    if let Some(team) = &key.team
        && let Some(budget) = state.config().teams.get(team)
    {
        spend.check(
            &limits::holder_team(team),
            &format!("team {team}"),
            budget.daily_usd,
            budget.monthly_usd,
            now_ms,
        )?;
    }
    Ok(())
}

/// The cache namespace: the caller's (key, team or pass-through key), with the
/// `x-reprise-namespace` header's below it when the operator allows that header.
fn tenant_namespace(caller: &Caller, header: String) -> String {
    match (&caller.namespace, header.is_empty()) {
        (None, _) => header,
        (Some(ns), true) => ns.clone(),
        (Some(ns), false) => format!("{ns}/{header}"),
    }
}

fn validate_chat(request: &ChatCompletionRequest) -> Result<(), GatewayError> {
    if request.model.trim().is_empty() {
        return Err(GatewayError::invalid(
            "'model' must name a model",
            Some("model"),
        ));
    }
    if request.messages.is_empty() {
        return Err(GatewayError::invalid(
            "'messages' must contain at least one message",
            Some("messages"),
        ));
    }
    request
        .messages
        .iter()
        .enumerate()
        .try_for_each(|(i, message)| validate_content(i, message))
}

/// A message's content is a string or an array of content part objects; a system, developer or
/// user message must have one (null is for an assistant turn that calls tools). Anything else
/// is the client's error, named here rather than left to each provider (or to a translation
/// for a provider that is not OpenAI) to report its own way.
fn validate_content(i: usize, message: &ChatMessage) -> Result<(), GatewayError> {
    let param = format!("messages[{i}].content");
    match &message.content {
        None if matches!(message.role, Role::System | Role::Developer | Role::User) => {
            Err(GatewayError::invalid(
                format!("missing required parameter: '{param}'"),
                Some(&param),
            ))
        }
        None | Some(Value::String(_)) => Ok(()),
        Some(Value::Array(parts)) => match parts.iter().position(|p| !p.is_object()) {
            Some(j) => {
                let param = format!("{param}[{j}]");
                Err(GatewayError::invalid(
                    format!(
                        "invalid type for '{param}': expected a content part object, got {}",
                        json_kind(&parts[j])
                    ),
                    Some(&param),
                ))
            }
            None => Ok(()),
        },
        Some(other) => Err(GatewayError::invalid(
            format!(
                "invalid type for '{param}': expected a string or an array of content parts, got {}",
                json_kind(other)
            ),
            Some(&param),
        )),
    }
}

/// How OpenAI names a JSON value's type in its errors.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `GET /v1/models`: the models every target serves. A target with exact model names configured
/// lists those; one without (or with patterns only) is asked for its list. A target that cannot
/// answer is left out; if none can, the error of the first is returned.
pub async fn models(state: &AppState, mut log: RequestLog) -> Response {
    let listed = model_list(state, &mut log).await;
    match listed.and_then(|data| to_json(&ModelList::new(data))) {
        Ok(body) => json_response(log, StatusCode::OK, body, &[]),
        Err(err) => fail(log, err, &[]),
    }
}

/// `GET /v1/models/{model}` (the SDKs' `models.retrieve`): the model as `GET /v1/models` lists
/// it; a model the list leaves out but a configured name pattern routes (`models = ["gpt-*"]`) is
/// described with that target as its owner; any other is a 404 `model_not_found`.
pub async fn model(state: &AppState, mut log: RequestLog, id: String) -> Response {
    log.model = Some(id.clone());
    let found = match model_list(state, &mut log).await {
        Ok(data) => data.into_iter().find(|m| m.id == id),
        // The list could not be had, but the routes may still know the model.
        Err(_) => None,
    };
    // A target that names no models serves whatever its upstream lists, which was asked.
    let found = found.or_else(|| {
        let routes = state.router().plan(&id, Instant::now());
        let route = routes.iter().find(|r| !r.target.models.is_empty())?;
        Some(Model::new(
            id.clone(),
            unix_now(),
            route.target.name.clone(),
        ))
    });
    let Some(found) = found else {
        return fail(log, GatewayError::ModelNotFound { model: id }, &[]);
    };
    match to_json(&found) {
        Ok(body) => json_response(log, StatusCode::OK, body, &[]),
        Err(err) => fail(log, err, &[]),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn to_json(value: &impl serde::Serialize) -> Result<Bytes, GatewayError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|_| GatewayError::Internal)
}

/// The models every target serves, and the aliases (see [`models`]).
async fn model_list(state: &AppState, log: &mut RequestLog) -> Result<Vec<Model>, GatewayError> {
    let created = unix_now();
    let upstream_started = Instant::now();
    let lists = futures_util::future::join_all(state.targets().iter().map(|target| async move {
        let exact: Vec<String> = target
            .models
            .iter()
            .filter(|m| !m.contains('*'))
            .cloned()
            .collect();
        if !exact.is_empty() {
            return (target, Ok(exact));
        }
        (target, target.provider.list_models().await)
    }))
    .await;
    log.upstream = Some(upstream_started.elapsed());

    let mut data: Vec<Model> = Vec::new();
    let mut first_error = None;
    for (target, result) in lists {
        match result {
            Ok(ids) => {
                for id in ids {
                    if !data.iter().any(|m| m.id == id) {
                        data.push(Model::new(id, created, target.name.clone()));
                    }
                }
            }
            Err(err) => {
                tracing::warn!(target = %target.name, error = %err, "could not list the target's models");
                first_error.get_or_insert_with(|| GatewayError::from_upstream(&target.name, err));
            }
        }
    }
    // Aliases are models too: the names clients may ask for.
    for alias in state.router().alias_names() {
        if !data.iter().any(|m| m.id == alias) {
            data.push(Model::new(alias.to_owned(), created, "reprise".to_owned()));
        }
    }
    match first_error {
        Some(err) if data.is_empty() => Err(err),
        _ => Ok(data),
    }
}

/// Ends a request with an error response.
pub fn fail(
    mut log: RequestLog,
    err: GatewayError,
    headers: &[(&'static str, HeaderValue)],
) -> Response {
    log.status = err.status().as_u16();
    log.outcome = Outcome::Error;
    log.error = Some(err.label());
    log.rejected = err.is_rejection();
    let mut response = err.into_response();
    for (name, value) in headers {
        response.headers_mut().insert(*name, value.clone());
    }
    response
}

fn json_response(
    mut log: RequestLog,
    status: StatusCode,
    body: Bytes,
    headers: &[(&'static str, HeaderValue)],
) -> Response {
    log.status = status.as_u16();
    log.outcome = Outcome::Ok;
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in headers {
        h.insert(*name, value.clone());
    }
    response.into_response()
}
