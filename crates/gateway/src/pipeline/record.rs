//! The request log: one line per request, written exactly once, when the request is over.
//!
//! A [`RequestLog`] travels with the request through the pipeline (and into a relayed stream's
//! body) and writes its line when dropped, so a request that ends any way at all, including a
//! client that disconnects mid-stream, still leaves its line.

use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use reprise_api::Usage;
use serde::Serialize;

use std::sync::Arc;

use reprise_storage::{LedgerRow, RequestRow};

use crate::AppState;
use crate::auth::Key;
use crate::limits::TokenTicket;

/// What the cache did with a request (the `x-reprise-cache` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    /// The cache was not consulted.
    Bypass,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Bypass => "bypass",
        }
    }
}

/// How a request ended, as far as the log is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Error,
    /// The response head went out but the stream was cut (by the upstream or a timeout).
    StreamFailed,
    /// The client went away before the answer was complete.
    ClientClosed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::StreamFailed => "stream_failed",
            Outcome::ClientClosed => "client_closed",
        }
    }
}

/// One request's log line, filled in as the request goes and written on drop.
#[derive(Debug)]
pub struct RequestLog {
    pub request_id: String,
    pub route: &'static str,
    pub started: Instant,
    pub model: Option<String>,
    pub target: Option<String>,
    /// HTTP status sent; 499 (nginx's "client closed request") until a response is chosen.
    pub status: u16,
    pub stream: bool,
    pub upstream: Option<Duration>,
    /// Time from the request's arrival to the first event of a stream.
    pub first_byte: Option<Duration>,
    pub usage: Option<Usage>,
    pub cache: CacheStatus,
    pub outcome: Outcome,
    pub error: Option<&'static str>,
    /// The gateway refused the request itself (auth, limits, budgets); `error` says why.
    pub rejected: bool,
    /// The gateway runs without client authentication beyond loopback: warn on every line.
    pub unauthenticated: bool,
    /// Every upstream attempt and how it ended.
    pub attempts: Vec<super::attempt::AttemptRecord>,
    /// The virtual key that made the request.
    pub key: Option<Arc<Key>>,
    /// Tokens reserved against the key's tokens per minute, corrected when the request ends.
    pub ticket: Option<TokenTicket>,
    /// On cache hits: what the upstream call would have cost, in nano-USD (`None`: unpriced).
    /// On an embeddings request that went upstream with only some of its inputs: what the
    /// others would have cost.
    pub saved_nano_usd: Option<i64>,
    /// Tokens the cache answered in a request that still went upstream (the inputs of an
    /// embeddings batch that were in the cache); on a hit, its whole `usage` counts.
    pub saved_tokens: u64,
    /// The final user message, when the operator keeps prompts in the request log.
    pub prompt: Option<String>,
    /// What the request cost, in nano-USD (set when it is settled; `None`: unpriced).
    cost_nano_usd: Option<i64>,
    /// The ledger row was recorded (by [`RequestLog::settle`], before the line is written).
    settled: bool,
    state: AppState,
}

impl RequestLog {
    pub fn start(state: &AppState, headers: &HeaderMap, route: &'static str) -> Self {
        let request_id = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        state
            .metrics()
            .inflight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            request_id,
            route,
            started: Instant::now(),
            model: None,
            target: None,
            status: 499,
            stream: false,
            upstream: None,
            first_byte: None,
            usage: None,
            cache: CacheStatus::Bypass,
            outcome: Outcome::ClientClosed,
            error: None,
            rejected: false,
            unauthenticated: state.open_mode(),
            attempts: Vec::new(),
            key: None,
            ticket: None,
            saved_nano_usd: None,
            saved_tokens: 0,
            settled: false,
            prompt: None,
            cost_nano_usd: None,
            state: state.clone(),
        }
    }

    /// The gateway the request came to.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The request in the metrics.
    fn measure(&self, cost_nano: Option<i64>, usage: Option<reprise_api::Usage>) {
        let usage = usage.unwrap_or_default();
        let rejection = self.error.filter(|_| self.rejected);
        self.state.metrics().record(&crate::metrics::Finished {
            route: self.route,
            model: self.model.as_deref(),
            target: self.target.as_deref(),
            status: self.status,
            cache: self.cache.as_str(),
            key: self.key.as_ref().map(|k| k.label.as_str()),
            total: self.started.elapsed(),
            upstream: self.upstream,
            first_byte: self.first_byte,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            cost_usd: cost_nano.map(|n| n as f64 / 1e9),
            saved: self
                .saved(&usage)
                .map(|(tokens, nano)| (tokens, nano.map(|n| n as f64 / 1e9))),
            attempts: self.attempts.iter().map(|a| a.target.as_str()).collect(),
            rejection,
        });
    }

    /// Records the request's usage now (a stream's last event went out), rather than when the
    /// log is dropped: a client that read the whole answer finds it in the ledger.
    pub fn settle(&mut self) {
        if !self.settled {
            self.settled = true;
            self.account();
        }
    }

    /// The request's ledger row, its spend and its token correction: for requests that named a
    /// model on a model route.
    fn account(&mut self) {
        let model_route = matches!(
            self.route,
            "/v1/chat/completions" | "/v1/completions" | "/v1/responses" | "/v1/embeddings"
        );
        let Some(model) = self.model.clone().filter(|_| model_route) else {
            self.measure(None, None);
            return;
        };
        let usage = self.usage.unwrap_or_default();
        if let Some(ticket) = &self.ticket {
            let used = if self.usage.is_some() {
                usage
                    .total_tokens
                    .max(usage.prompt_tokens + usage.completion_tokens)
            } else {
                0
            };
            self.state.limiter().correct(ticket, used);
        }
        let hit = self.cache == CacheStatus::Hit;
        let price = self.state.config().prices.get(&model);
        let cached = usage.cached_tokens();
        let nano = |p: &crate::pricing::Price| {
            (p.cost_with_cache(usage.prompt_tokens, cached, usage.completion_tokens) * 1e9).round()
                as i64
        };
        let cost = if hit {
            Some(0)
        } else {
            price.as_ref().map(nano)
        };
        self.measure(cost, Some(usage));
        self.cost_nano_usd = cost;
        let now = crate::state::unix_ms();
        let key_id = self.key.as_ref().map(|k| k.id.clone());
        let team = self.key.as_ref().and_then(|k| k.team.clone());
        if let Some(cost) = cost.filter(|c| *c > 0) {
            let mut holders = Vec::with_capacity(2);
            if let Some(id) = &key_id {
                holders.push(crate::limits::holder_key(id));
            }
            if let Some(team) = &team {
                holders.push(crate::limits::holder_team(team));
            }
            self.state.spend().add(&holders, cost, now);
        }
        if self.state.config().log_retention_days > 0 {
            self.state.ledger().log(RequestRow {
                ts_ms: now,
                request_id: self.request_id.clone(),
                route: self.route.to_owned(),
                model: Some(model.clone()),
                key_label: self.key.as_ref().map(|k| k.label.clone()),
                target: self.target.clone(),
                status: i64::from(self.status),
                cache: self.cache.as_str().to_owned(),
                latency_ms: self.started.elapsed().as_secs_f64() * 1e3,
                prompt_tokens: i64::try_from(usage.prompt_tokens).unwrap_or(i64::MAX),
                completion_tokens: i64::try_from(usage.completion_tokens).unwrap_or(i64::MAX),
                cost_nano_usd: cost,
                prompt: self.prompt.take(),
            });
        }
        let saved = self.saved(&usage);
        self.state.ledger().record(LedgerRow {
            ts_ms: now,
            request_id: self.request_id.clone(),
            key_id,
            team,
            model,
            target: self.target.clone(),
            prompt_tokens: i64::try_from(usage.prompt_tokens).unwrap_or(i64::MAX),
            completion_tokens: i64::try_from(usage.completion_tokens).unwrap_or(i64::MAX),
            cached_tokens: i64::try_from(cached).unwrap_or(i64::MAX),
            cost_nano_usd: cost,
            cache: self.cache.as_str().to_owned(),
            saved_tokens: saved.map_or(0, |(tokens, _)| i64::try_from(tokens).unwrap_or(i64::MAX)),
            saved_nano_usd: saved.and_then(|(_, nano)| nano),
        });
    }

    /// What the cache saved this request, tokens and nano-USD (`None`: nothing): on a hit, its
    /// whole `usage`; on an embeddings batch that went upstream with only some of its inputs,
    /// the others'.
    fn saved(&self, usage: &reprise_api::Usage) -> Option<(u64, Option<i64>)> {
        let tokens = if self.cache == CacheStatus::Hit {
            usage.prompt_tokens + usage.completion_tokens
        } else {
            self.saved_tokens
        };
        (self.cache == CacheStatus::Hit || tokens > 0).then_some((tokens, self.saved_nano_usd))
    }
}

fn ms(d: Option<Duration>) -> Option<f64> {
    d.map(|d| (d.as_secs_f64() * 1e6).round() / 1e3)
}

/// The line as written in JSON logs. Field names match the `tracing` fallback below.
#[derive(Serialize)]
struct Line<'a> {
    timestamp: String,
    level: &'static str,
    message: &'static str,
    request_id: &'a str,
    route: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<&'a str>,
    /// The virtual key's id (never the key).
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<&'a str>,
    status: u16,
    stream: bool,
    latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttfb_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completion_tokens: Option<u64>,
    cache: &'static str,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unauthenticated: Option<bool>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    attempts: &'a [super::attempt::AttemptRecord],
    #[serde(skip_serializing_if = "Option::is_none")]
    cost_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    saved_usd: Option<f64>,
    target: &'static str,
}

impl RequestLog {
    fn json_line(&self, level: &'static str) -> Vec<u8> {
        let line = Line {
            timestamp: crate::telemetry::timestamp().to_string(),
            level,
            message: "request",
            request_id: &self.request_id,
            route: self.route,
            model: self.model.as_deref(),
            provider: self.target.as_deref(),
            key_id: self.key.as_ref().map(|k| k.id.as_str()),
            status: self.status,
            stream: self.stream,
            latency_ms: ms(Some(self.started.elapsed())),
            upstream_ms: ms(self.upstream),
            ttfb_ms: ms(self.first_byte),
            prompt_tokens: self.usage.map(|u| u.prompt_tokens),
            completion_tokens: self.usage.map(|u| u.completion_tokens),
            cache: self.cache.as_str(),
            outcome: self.outcome.as_str(),
            error: self.error,
            unauthenticated: self.unauthenticated.then_some(true),
            attempts: &self.attempts,
            cost_usd: self.cost_nano_usd.map(|n| n as f64 / 1e9),
            saved_usd: self.saved_nano_usd.map(|n| n as f64 / 1e9),
            target: "reprise::request",
        };
        let mut out = serde_json::to_vec(&line).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

macro_rules! request_line {
    ($level:expr, $log:expr) => {{
        let log = $log;
        tracing::event!(
            target: "reprise::request",
            $level,
            request_id = %log.request_id,
            route = log.route,
            model = log.model.as_deref(),
            provider = log.target.as_deref(),
            key_id = log.key.as_ref().map(|k| k.id.as_str()),
            status = log.status,
            stream = log.stream,
            latency_ms = ms(Some(log.started.elapsed())),
            upstream_ms = ms(log.upstream),
            ttfb_ms = ms(log.first_byte),
            prompt_tokens = log.usage.map(|u| u.prompt_tokens),
            completion_tokens = log.usage.map(|u| u.completion_tokens),
            cache = log.cache.as_str(),
            outcome = log.outcome.as_str(),
            error = log.error,
            unauthenticated = log.unauthenticated.then_some(true),
            attempts = log.attempts.len(),
            cost_usd = log.cost_nano_usd.map(|n| n as f64 / 1e9),
            saved_usd = log.saved_nano_usd.map(|n| n as f64 / 1e9),
            "request"
        )
    }};
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        use tracing::Level;
        self.settle();
        self.state
            .metrics()
            .inflight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if self.unauthenticated {
            if tracing::enabled!(target: "reprise::request", Level::WARN)
                && !crate::telemetry::write_json_line(&self.json_line("WARN"))
            {
                request_line!(Level::WARN, &*self);
            }
        } else if tracing::enabled!(target: "reprise::request", Level::INFO)
            && !crate::telemetry::write_json_line(&self.json_line("INFO"))
        {
            request_line!(Level::INFO, &*self);
        }
    }
}
