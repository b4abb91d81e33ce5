//! `GET /metrics`: every metric's name, help and labels are defined here, in one place (and
//! listed in the README). Label values are bounded: routes, targets, statuses and results are
//! closed sets; models are the first [`MAX_MODELS`] names seen (then `other`); keys are the
//! operator's key labels. Never a prompt, never a key.
//!
//! Event metrics are recorded as requests end (`pipeline/record.rs`); state metrics (cache size,
//! breaker states, memory, lookups by result) are read from their owners at each scrape.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::AppState;

/// Distinct model label values kept; later ones are counted as `other`.
pub const MAX_MODELS: usize = 64;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub model: String,
    pub target: String,
    pub status: &'static str,
    pub cache: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    pub target: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelKeyLabels {
    pub model: String,
    pub key: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub direction: &'static str,
    pub model: String,
    pub key: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

type FloatCounter = Counter<f64, AtomicU64>;

/// Histogram buckets from 10 µs to about 2 minutes: fine enough to see the gateway's own tens
/// of microseconds, wide enough for a long upstream call.
fn latency_histogram() -> Histogram {
    Histogram::new([
        0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01,
        0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
    ])
}

/// The gateway's event metrics.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    overhead: Family<RouteLabels, Histogram, fn() -> Histogram>,
    upstream: Family<TargetLabels, Histogram, fn() -> Histogram>,
    ttft: Family<TargetLabels, Histogram, fn() -> Histogram>,
    tokens: Family<TokenLabels, Counter>,
    cost: Family<ModelKeyLabels, FloatCounter>,
    saved_tokens: Family<ModelKeyLabels, Counter>,
    saved_usd: Family<ModelKeyLabels, FloatCounter>,
    retries: Family<TargetLabels, Counter>,
    failovers: Family<TargetLabels, Counter>,
    rejections: Family<ReasonLabels, Counter>,
    pub inflight: AtomicI64,
    pub connections: AtomicI64,
    models: Mutex<HashSet<String>>,
    /// The last hour, for the dashboard.
    pub series: crate::series::Series,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            overhead: Family::new_with_constructor(latency_histogram),
            upstream: Family::new_with_constructor(latency_histogram),
            ttft: Family::new_with_constructor(latency_histogram),
            tokens: Family::default(),
            cost: Family::default(),
            saved_tokens: Family::default(),
            saved_usd: Family::default(),
            retries: Family::default(),
            failovers: Family::default(),
            rejections: Family::default(),
            inflight: AtomicI64::new(0),
            connections: AtomicI64::new(0),
            models: Mutex::new(HashSet::new()),
            series: crate::series::Series::default(),
        }
    }
}

/// One finished request, as the metrics see it.
#[derive(Debug)]
pub struct Finished<'a> {
    pub route: &'static str,
    pub model: Option<&'a str>,
    pub target: Option<&'a str>,
    pub status: u16,
    pub cache: &'static str,
    pub key: Option<&'a str>,
    pub total: Duration,
    pub upstream: Option<Duration>,
    pub first_byte: Option<Duration>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: Option<f64>,
    pub saved: Option<(u64, Option<f64>)>,
    /// Targets of the attempts, in order.
    pub attempts: Vec<&'a str>,
    /// The error code of a refusal by the gateway's own limits or auth.
    pub rejection: Option<&'a str>,
}

/// The status label: `2xx`, `4xx`... (a label, so no allocation per request).
fn status_class(status: u16) -> &'static str {
    const CLASSES: [&str; 10] = [
        "0xx", "1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "7xx", "8xx", "9xx",
    ];
    CLASSES
        .get(usize::from(status / 100))
        .copied()
        .unwrap_or("other")
}

impl Metrics {
    /// The model's label value: its name while fewer than [`MAX_MODELS`] have been seen.
    fn model_label(&self, model: &str) -> String {
        let mut seen = self.models.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(model) {
            return model.to_owned();
        }
        if seen.len() < MAX_MODELS {
            seen.insert(model.to_owned());
            return model.to_owned();
        }
        "other".to_owned()
    }

    pub fn record(&self, f: &Finished<'_>) {
        let model = f
            .model
            .map_or_else(|| "none".to_owned(), |m| self.model_label(m));
        let key = f.key.unwrap_or("none").to_owned();
        let target = f.target.unwrap_or("none").to_owned();
        self.requests
            .get_or_create(&RequestLabels {
                route: f.route,
                model: model.clone(),
                target: target.clone(),
                status: status_class(f.status),
                cache: f.cache,
            })
            .inc();
        let route = RouteLabels { route: f.route };
        self.duration
            .get_or_create(&route)
            .observe(f.total.as_secs_f64());
        let overhead = f.total.saturating_sub(f.upstream.unwrap_or_default());
        if f.model.is_some() {
            self.series
                .record(f.total, overhead, f.cache == "hit", f.status >= 500);
        }
        self.overhead
            .get_or_create(&route)
            .observe(overhead.as_secs_f64());
        if let Some(upstream) = f.upstream
            && f.target.is_some()
        {
            let t = TargetLabels {
                target: target.clone(),
            };
            self.upstream
                .get_or_create(&t)
                .observe(upstream.as_secs_f64());
            if let Some(ttft) = f.first_byte {
                self.ttft.get_or_create(&t).observe(ttft.as_secs_f64());
            }
        }
        for (direction, n) in [("in", f.prompt_tokens), ("out", f.completion_tokens)] {
            if n > 0 && f.cache != "hit" {
                self.tokens
                    .get_or_create(&TokenLabels {
                        direction,
                        model: model.clone(),
                        key: key.clone(),
                    })
                    .inc_by(n);
            }
        }
        let mk = ModelKeyLabels {
            model: model.clone(),
            key: key.clone(),
        };
        if let Some(cost) = f.cost_usd.filter(|c| *c > 0.0) {
            self.cost.get_or_create(&mk).inc_by(cost);
        }
        if let Some((tokens, usd)) = f.saved {
            self.saved_tokens.get_or_create(&mk).inc_by(tokens);
            if let Some(usd) = usd {
                self.saved_usd.get_or_create(&mk).inc_by(usd);
            }
        }
        // Every attempt after the first is a retry, counted on the target retried from; one
        // that moved to another target is also a failover.
        for pair in f.attempts.windows(2) {
            let from = TargetLabels {
                target: pair[0].to_owned(),
            };
            self.retries.get_or_create(&from).inc();
            if pair[0] != pair[1] {
                self.failovers.get_or_create(&from).inc();
            }
        }
        if let Some(reason) = f.rejection {
            self.rejections
                .get_or_create(&ReasonLabels {
                    reason: reason.to_owned(),
                })
                .inc();
        }
    }

    /// The Prometheus text exposition of every metric, state metrics read now.
    pub fn render(&self, state: &AppState) -> String {
        let mut registry = <Registry>::with_prefix("reprise");
        registry.register(
            "requests",
            "Requests by route, model, target, status class and cache result",
            self.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from a request's arrival to the end of its response (streams: to the last event)",
            self.duration.clone(),
        );
        registry.register(
            "gateway_overhead_seconds",
            "Time spent in Reprise itself: request duration minus the upstream call",
            self.overhead.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "Upstream call duration by the target that answered",
            self.upstream.clone(),
        );
        registry.register(
            "time_to_first_token_seconds",
            "Time from a streamed request's arrival to its first content event, by target",
            self.ttft.clone(),
        );
        registry.register(
            "tokens",
            "Tokens sent to (in) and received from (out) upstreams, by model and key label",
            self.tokens.clone(),
        );
        registry.register(
            "cost_usd",
            "Spend in USD priced from the price table, by model and key label",
            self.cost.clone(),
        );
        registry.register(
            "saved_tokens",
            "Tokens the cache answered instead of an upstream, by model and key label",
            self.saved_tokens.clone(),
        );
        registry.register(
            "saved_usd",
            "USD the cache saved (what the upstream calls would have cost), by model and key label",
            self.saved_usd.clone(),
        );
        registry.register(
            "retries",
            "Upstream attempts after the first, by the target retried from",
            self.retries.clone(),
        );
        registry.register(
            "failovers",
            "Retries that moved to another target, by the target left",
            self.failovers.clone(),
        );
        registry.register(
            "rejections",
            "Requests the gateway refused itself, by reason (its error code)",
            self.rejections.clone(),
        );

        // State, read now.
        let counters = &state.cache().counters;
        let lookups = Family::<ResultLabels, Counter>::default();
        for (result, counter) in [
            ("exact_hit", &counters.exact_hits),
            ("semantic_hit", &counters.semantic_hits),
            ("miss", &counters.misses),
            ("bypass", &counters.bypasses),
            ("guard_veto", &counters.guard_vetoes),
            ("ambiguous", &counters.ambiguous),
        ] {
            lookups
                .get_or_create(&ResultLabels {
                    result: result.to_owned(),
                })
                .inc_by(counter.load(Ordering::Relaxed));
        }
        registry.register(
            "cache_lookups",
            "Cache lookups by result (a guard veto or an ambiguous match is also a miss)",
            lookups,
        );
        let inputs = Family::<ResultLabels, Counter>::default();
        for (result, counter) in [
            ("cached", &counters.embedding_inputs_cached),
            ("upstream", &counters.embedding_inputs_upstream),
        ] {
            inputs
                .get_or_create(&ResultLabels {
                    result: result.to_owned(),
                })
                .inc_by(counter.load(Ordering::Relaxed));
        }
        registry.register(
            "cache_embedding_inputs",
            "Embeddings inputs answered from the cache or sent upstream",
            inputs,
        );
        let evictions = Counter::<u64>::default();
        evictions.inc_by(counters.evictions.load(Ordering::Relaxed));
        registry.register(
            "cache_evictions",
            "Entries pushed out of the cache by its size bounds",
            evictions,
        );
        let stats = state.cache().stats();
        let gauge = |v: i64| {
            let g = Gauge::<i64, AtomicI64>::default();
            g.set(v);
            g
        };
        registry.register(
            "cache_entries",
            "Entries in the cache",
            gauge(i64::try_from(stats.entries).unwrap_or(i64::MAX)),
        );
        registry.register(
            "cache_bytes",
            "Bytes of cached answers",
            gauge(i64::try_from(stats.bytes).unwrap_or(i64::MAX)),
        );
        let breaker = Family::<TargetLabels, Gauge>::default();
        let (targets, _) = state.router().report(std::time::Instant::now());
        for t in targets {
            let value = match t.state {
                "healthy" => 0,
                "cooling_down" => 1,
                _ => 2,
            };
            breaker
                .get_or_create(&TargetLabels { target: t.name })
                .set(value);
        }
        registry.register(
            "breaker_state",
            "Circuit breaker per target: 0 healthy, 1 cooling down, 2 probing",
            breaker,
        );
        registry.register(
            "inflight_requests",
            "Requests being served now",
            gauge(self.inflight.load(Ordering::Relaxed)),
        );
        registry.register(
            "open_connections",
            "Client connections open now",
            gauge(self.connections.load(Ordering::Relaxed)),
        );
        registry.register(
            "resident_memory_bytes",
            "The process's resident set size",
            gauge(resident_bytes().unwrap_or(0)),
        );

        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
            tracing::error!("could not encode the metrics");
        }
        out
    }
}

/// Resident set size from `/proc/self/statm` (Linux); `None` elsewhere.
fn resident_bytes() -> Option<i64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: i64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_labels_are_bounded() {
        let m = Metrics::default();
        for i in 0..MAX_MODELS {
            assert_eq!(m.model_label(&format!("m{i}")), format!("m{i}"));
        }
        assert_eq!(m.model_label("one-too-many"), "other");
        assert_eq!(m.model_label("m3"), "m3", "seen names keep their label");
    }
}
