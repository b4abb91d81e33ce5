//! Attempt, retry, fail over: the routes of a plan are tried in order until one answers (chat
//! completions and embeddings alike).
//!
//! Retried: connection errors, timeouts, 408, 429, 5xx, broken or malformed answers. Never
//! another 4xx: that goes back to the client as it came. Each retry moves to the next route; a
//! retry on the same target waits first (exponential backoff with full jitter, or the
//! provider's `Retry-After` when longer, capped). The attempt budget and the request's deadline
//! bound the whole. A stream is held (head and events) until its first content event, so a
//! stream that fails before it fails over invisibly; after that it is the client's.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reprise_providers::{ChatCall, EventStream, Reply, Secret, StreamEvent, UpstreamError};

use crate::GatewayError;
use crate::config::RoutingConfig;
use crate::routing::Route;

/// How one attempt ended, for the log line and the final error message.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AttemptRecord {
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub outcome: String,
}

impl std::fmt::Display for AttemptRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.model {
            Some(model) => write!(f, "{} ({model}): {}", self.target, self.outcome),
            None => write!(f, "{}: {}", self.target, self.outcome),
        }
    }
}

/// What the winning attempt delivered.
pub enum Delivered {
    Json {
        status: http::StatusCode,
        body: Bytes,
    },
    /// A stream whose first events (up to and including the first with content) are held in
    /// `held`, the rest still to be read from `events`.
    Stream {
        held: VecDeque<StreamEvent>,
        events: Box<EventStream>,
    },
}

pub struct Success<'a> {
    pub route: Route<'a>,
    pub delivered: Delivered,
    pub attempts: Vec<AttemptRecord>,
    /// When the winning attempt was sent.
    pub sent: Instant,
}

pub struct Failure {
    pub error: GatewayError,
    pub attempts: Vec<AttemptRecord>,
    /// The target of the last attempt, for the response's provider header.
    pub last_target: Option<String>,
}

/// Streams hold at most this many content-free events (role, empty deltas) before being
/// released anyway.
const MAX_HELD: usize = 16;

/// Which API a generation request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `POST /v1/chat/completions`, translated for every provider.
    Chat,
    /// `POST /v1/completions` (legacy text completions), forwarded to OpenAI-compatible
    /// targets only.
    Completions,
    /// `POST /v1/responses`, forwarded to OpenAI-compatible targets only.
    Responses,
}

/// One generation request, as it goes upstream.
#[derive(Clone, Copy)]
pub struct Outgoing<'b> {
    pub api: Api,
    pub body: &'b Bytes,
    pub stream: bool,
    /// Pass-through mode: the caller's own provider key.
    pub api_key: Option<&'b Secret>,
}

/// Tries `routes` for one generation request (chat, text completion or Responses API). A
/// stream is held until its first content, or until it has been quiet for `release_after` (see
/// [`hold_until_content`]).
pub async fn generate<'a>(
    routes: &[Route<'a>],
    outgoing: Outgoing<'_>,
    settings: &RoutingConfig,
    started: Instant,
    release_after: Option<Duration>,
) -> Result<Success<'a>, Failure> {
    run(routes, settings, started, |route| async move {
        let call = ChatCall {
            body: outgoing.body.clone(),
            model: route.model.map(str::to_owned),
            stream: outgoing.stream,
            api_key: outgoing.api_key.cloned(),
        };
        let provider = &route.target.provider;
        let reply = match outgoing.api {
            Api::Chat => provider.chat(call).await?,
            Api::Completions => provider.completions(call).await?,
            Api::Responses => provider.responses(call).await?,
        };
        match reply {
            Reply::Json { status, body, .. } => Ok(Delivered::Json { status, body }),
            Reply::Stream { mut events, .. } => {
                let held = hold_until_content(&mut events, release_after).await?;
                Ok(Delivered::Stream { held, events })
            }
        }
    })
    .await
}

/// Tries `routes` for one embeddings request.
pub async fn embeddings<'a>(
    routes: &[Route<'a>],
    body: &Bytes,
    api_key: Option<&Secret>,
    settings: &RoutingConfig,
    started: Instant,
) -> Result<Success<'a>, Failure> {
    run(routes, settings, started, |route| async move {
        match route
            .target
            .provider
            .embeddings(body.clone(), route.model, api_key)
            .await?
        {
            Reply::Json { status, body, .. } => Ok(Delivered::Json { status, body }),
            Reply::Stream { .. } => Err(UpstreamError::Malformed(
                "an event stream in answer to an embeddings request".to_owned(),
            )),
        }
    })
    .await
}

/// The attempt loop, whatever the call.
async fn run<'a, F, Fut>(
    routes: &[Route<'a>],
    settings: &RoutingConfig,
    started: Instant,
    call: F,
) -> Result<Success<'a>, Failure>
where
    F: Fn(Route<'a>) -> Fut,
    Fut: std::future::Future<Output = Result<Delivered, UpstreamError>>,
{
    let deadline = started + settings.deadline;
    let mut attempts: Vec<AttemptRecord> = Vec::new();
    let mut last: Option<(String, UpstreamError)> = None;
    let mut skipped: Vec<&str> = Vec::new();
    let mut same_target_retries = 0u32;
    let mut next = 0usize;
    while (attempts.len() as u32) < settings.max_attempts && !routes.is_empty() {
        // The next route whose target can take this request at all.
        let Some(k) = next_route(routes, next, &skipped) else {
            break;
        };
        let route = routes[k];
        next = (k + 1) % routes.len();
        // A target cooling down is used only when it is all that is left (the plan puts it
        // last); a provider's `Retry-After` was already waited for by the backoff.
        let sent = Instant::now();
        if deadline <= sent {
            break;
        }
        route.target.health.begin(sent);
        let left = deadline.saturating_duration_since(sent);
        let outcome = tokio::time::timeout(left, call(route))
            .await
            .unwrap_or(Err(UpstreamError::TotalTimeout(settings.deadline)));
        let record = |outcome: String| AttemptRecord {
            target: route.target.name.clone(),
            model: route.model.map(str::to_owned),
            outcome,
        };
        match outcome {
            Ok(delivered) => {
                route.target.health.success(sent.elapsed());
                attempts.push(record("ok".to_owned()));
                return Ok(Success {
                    route,
                    delivered,
                    attempts,
                    sent,
                });
            }
            Err(err) => {
                attempts.push(record(describe(&err)));
                tracing::warn!(target = %route.target.name, error = %err, attempt = attempts.len(), "upstream attempt failed");
                if elsewhere(&err) {
                    // Not the target's fault, and not worth repeating there; another target
                    // in the plan may do it.
                    skipped.push(route.target.name.as_str());
                    last = Some((route.target.name.clone(), err));
                    continue;
                }
                if !err.retryable() {
                    return Err(Failure {
                        error: GatewayError::from_upstream(&route.target.name, err),
                        attempts,
                        last_target: Some(route.target.name.clone()),
                    });
                }
                let now = Instant::now();
                route.target.health.failure(now);
                if let Some(after) = err.retry_after() {
                    route
                        .target
                        .health
                        .pause(now + after.min(settings.retry_after_max));
                }
                // Waiting helps only when the same target is tried again.
                let again = next_route(routes, next, &skipped)
                    .is_some_and(|k| std::ptr::eq(routes[k].target, route.target));
                if again && (attempts.len() as u32) < settings.max_attempts {
                    let wait = backoff(settings, same_target_retries, err.retry_after());
                    same_target_retries += 1;
                    if now + wait >= deadline {
                        last = Some((route.target.name.clone(), err));
                        break;
                    }
                    tokio::time::sleep(wait).await;
                }
                last = Some((route.target.name.clone(), err));
            }
        }
    }
    Err(give_up(attempts, last))
}

/// Whether an error says the request belongs on another target rather than that it failed
/// there: the target cannot do what was asked (never sent), or, for a Responses API follow-up,
/// the target's account does not hold the `previous_response_id` (a 400 or 404 naming that
/// parameter: another account in the plan may). When no target takes it, the last one's answer
/// is the client's.
fn elsewhere(err: &UpstreamError) -> bool {
    match err {
        UpstreamError::Unsupported { .. } => true,
        UpstreamError::Status { status, body, .. }
            if *status == http::StatusCode::BAD_REQUEST
                || *status == http::StatusCode::NOT_FOUND =>
        {
            #[derive(serde::Deserialize)]
            struct Body {
                error: Error,
            }
            #[derive(serde::Deserialize)]
            struct Error {
                param: Option<String>,
            }
            serde_json::from_slice::<Body>(body)
                .is_ok_and(|b| b.error.param.as_deref() == Some("previous_response_id"))
        }
        _ => false,
    }
}

/// The index of the first route from `from` on (wrapping) whose target is not skipped.
fn next_route(routes: &[Route<'_>], from: usize, skipped: &[&str]) -> Option<usize> {
    (0..routes.len())
        .map(|k| (from + k) % routes.len())
        .find(|&k| !skipped.contains(&routes[k].target.name.as_str()))
}

/// The error for a request whose every attempt failed.
fn give_up(attempts: Vec<AttemptRecord>, last: Option<(String, UpstreamError)>) -> Failure {
    let last_target = attempts.last().map(|a| a.target.clone());
    let Some((target, err)) = last else {
        // Out of time before a single attempt.
        return Failure {
            error: GatewayError::UpstreamTimeout {
                target: last_target.clone().unwrap_or_default(),
            },
            attempts,
            last_target,
        };
    };
    let one_target = attempts.iter().all(|a| a.target == target);
    let error = if elsewhere(&err) {
        GatewayError::from_upstream(&target, err)
    } else if one_target {
        // A single target: its own last answer, as the core gateway relays it.
        GatewayError::from_upstream(&target, err)
    } else {
        let lines: Vec<String> = attempts.iter().map(ToString::to_string).collect();
        let all_429 = attempts.iter().all(|a| a.outcome == "HTTP 429");
        if all_429 {
            GatewayError::UpstreamRateLimited {
                attempts: lines,
                retry_after: err.retry_after(),
            }
        } else {
            GatewayError::AllTargetsFailed { attempts: lines }
        }
    };
    Failure {
        error,
        attempts,
        last_target,
    }
}

/// Full jitter over `initial * 2^n`, capped; never shorter than the provider's `Retry-After`
/// (itself capped).
pub fn backoff(settings: &RoutingConfig, retry: u32, retry_after: Option<Duration>) -> Duration {
    let ceiling = settings
        .backoff_initial
        .saturating_mul(2u32.saturating_pow(retry.min(16)))
        .min(settings.backoff_max);
    let jitter = ceiling.mul_f64(fastrand::f64());
    match retry_after {
        Some(after) => jitter.max(after.min(settings.retry_after_max)),
        None => jitter,
    }
}

fn describe(err: &UpstreamError) -> String {
    match err {
        UpstreamError::Status { status, .. } => format!("HTTP {}", status.as_u16()),
        UpstreamError::Connect(_) => "unreachable".to_owned(),
        UpstreamError::FirstByteTimeout(_) | UpstreamError::TotalTimeout(_) => {
            "timed out".to_owned()
        }
        UpstreamError::IdleTimeout(_) => "stream stalled".to_owned(),
        UpstreamError::Transport(_) | UpstreamError::Truncated => "broken response".to_owned(),
        UpstreamError::Malformed(_) => "malformed response".to_owned(),
        UpstreamError::InBand(_) => "error event".to_owned(),
        UpstreamError::Unsupported { param, .. } => format!("does not support '{param}'"),
    }
}

/// Reads a stream until its first event with content (text, tool call, refusal, reasoning, a
/// finish reason or usage; for the Responses API, any event after the response's opening ones)
/// or its end, and returns what it read. A failure before that point
/// is the attempt's failure, so the request can still fail over. An upstream that has answered
/// (its response head is in) and then stays quiet for `release_after` (a model thinking before
/// it answers) is released early: the client gets the response head and keep-alive comments
/// rather than a silence a proxy in between would time out.
async fn hold_until_content(
    events: &mut EventStream,
    release_after: Option<Duration>,
) -> Result<VecDeque<StreamEvent>, UpstreamError> {
    let mut held = VecDeque::new();
    let deadline = release_after.and_then(|d| tokio::time::Instant::now().checked_add(d));
    loop {
        let next = match deadline {
            // `next` is cancel-safe: an event being read is not lost.
            Some(deadline) => match tokio::time::timeout_at(deadline, events.next()).await {
                Ok(next) => next,
                Err(_) => return Ok(held),
            },
            None => events.next().await,
        };
        match next {
            None => return Err(UpstreamError::Truncated),
            Some(Err(err)) => return Err(err),
            Some(Ok(event)) => {
                let substantive = match &event {
                    StreamEvent::Done => true,
                    StreamEvent::Chunk(data) => has_content(data),
                    StreamEvent::Named { name, last, .. } => {
                        *last || !RESPONSE_PREAMBLE.contains(&name.as_str())
                    }
                };
                held.push_back(event);
                if substantive || held.len() >= MAX_HELD {
                    return Ok(held);
                }
            }
        }
    }
}

/// The Responses API events that open a response before any of its content.
const RESPONSE_PREAMBLE: [&str; 5] = [
    "response.created",
    "response.queued",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
];

fn has_content(data: &str) -> bool {
    let Ok(chunk) = serde_json::from_str::<serde_json::Value>(data) else {
        return true;
    };
    if chunk.get("usage").is_some_and(|u| !u.is_null()) || chunk.get("error").is_some() {
        return true;
    }
    let Some(choices) = chunk.get("choices").and_then(|c| c.as_array()) else {
        return true;
    };
    choices.iter().any(|choice| {
        if choice.get("finish_reason").is_some_and(|f| !f.is_null()) {
            return true;
        }
        // A text completion's chunk.
        if choice
            .get("text")
            .and_then(|t| t.as_str())
            .is_some_and(|t| !t.is_empty())
        {
            return true;
        }
        let Some(delta) = choice.get("delta").and_then(|d| d.as_object()) else {
            return false;
        };
        delta.iter().any(|(k, v)| match k.as_str() {
            "role" => false,
            _ => match v {
                serde_json::Value::Null => false,
                serde_json::Value::String(s) => !s.is_empty(),
                serde_json::Value::Array(a) => !a.is_empty(),
                _ => true,
            },
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_only_chunks_are_not_content() {
        let role = r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#;
        assert!(!has_content(role));
        let text = r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#;
        assert!(has_content(text));
        let tool = r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0}]},"finish_reason":null}]}"#;
        assert!(has_content(tool));
        let finish = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
        assert!(has_content(finish));
        // Text completions: text, not a delta.
        assert!(has_content(
            r#"{"choices":[{"index":0,"text":"fn","finish_reason":null}]}"#
        ));
        assert!(!has_content(
            r#"{"choices":[{"index":0,"text":"","finish_reason":null}]}"#
        ));
    }

    #[test]
    fn backoff_stays_within_its_bounds() {
        let settings = RoutingConfig {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
            retry_after_max: Duration::from_secs(2),
            ..RoutingConfig::default()
        };
        for retry in 0..10 {
            let ceiling = Duration::from_millis((100u64 << retry).min(1000));
            for _ in 0..200 {
                assert!(backoff(&settings, retry, None) <= ceiling);
            }
        }
        // Retry-After wins when longer, up to its cap.
        let wait = backoff(&settings, 0, Some(Duration::from_millis(1500)));
        assert!(wait >= Duration::from_millis(1500));
        let wait = backoff(&settings, 0, Some(Duration::from_secs(60)));
        assert_eq!(wait, Duration::from_secs(2));
    }
}
