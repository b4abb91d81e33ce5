//! Relaying an upstream event stream to the client: event by event as each arrives, never
//! buffered whole. Each event is one body frame, which hyper writes (and flushes) on its own.
//!
//! The response head is held until the first event with content (see `attempt`): a stream that
//! fails before that fails over or gets a real error status instead of a 200 followed by an
//! error. After the head has gone out, a failure ends the stream with an OpenAI-shaped error
//! event and no `[DONE]` (a Responses API stream: that API's `error` event and no
//! `response.completed`), so no client takes a cut stream for a complete answer.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use futures_util::stream;
use reprise_api::{ErrorBody, ResponsesUsageProbe, UsageProbe};
use reprise_providers::{EventStream, StreamEvent, UpstreamError};

use reprise_cache::Assembler;

use super::record::{Outcome, RequestLog};
use crate::AppState;
use crate::cache::{FlightGuard, Lookup};

struct Relay {
    events: Box<EventStream>,
    /// Silence after which the client gets a keep-alive comment.
    keepalive: Option<std::time::Duration>,
    log: RequestLog,
    upstream_started: Instant,
    pending: VecDeque<StreamEvent>,
    finished: bool,
    collector: Option<Collector>,
    /// Drop the usage chunk: the client did not ask for it.
    strip_usage: bool,
    /// A Responses API stream: its error event is that API's.
    responses: bool,
    /// The data of the last Responses API event relayed: the gateway's own error event takes
    /// the sequence number after its.
    last_event: Option<String>,
}

/// Which API's stream is relayed, and what the relay does besides.
pub enum Wire {
    /// Chat completion chunks: collected for the cache when `collector` is set; the usage
    /// chunk the gateway asked for on the client's behalf is dropped when `strip_usage`.
    Chat {
        collector: Option<Box<Collector>>,
        strip_usage: bool,
    },
    /// Responses API events, relayed as they are; the final response collected for the cache
    /// when `collector` is set.
    Responses { collector: Option<Box<Collector>> },
}

/// Collects a relayed stream for the cache and stores its answer only when the stream ended
/// whole: a chat stream's chunks assembled, once `[DONE]` came; a Responses API stream's final
/// response, which its `response.completed` event carries whole. Holds the stampede guard, so
/// identical requests waiting on this one wake when it is stored (or abandoned).
pub struct Collector {
    state: AppState,
    lookup: Lookup,
    provider: String,
    /// Chat chunks so far (`None` for a Responses API stream).
    assembler: Option<Assembler>,
    flight: Option<FlightGuard>,
}

impl Collector {
    /// For a chat completion stream.
    pub fn new(
        state: AppState,
        lookup: Lookup,
        provider: &str,
        flight: Option<FlightGuard>,
    ) -> Self {
        Self {
            state,
            lookup,
            provider: provider.to_owned(),
            assembler: Some(Assembler::new()),
            flight,
        }
    }

    /// For a Responses API stream.
    pub fn for_responses(
        state: AppState,
        lookup: Lookup,
        provider: &str,
        flight: Option<FlightGuard>,
    ) -> Self {
        Self {
            assembler: None,
            ..Self::new(state, lookup, provider, flight)
        }
    }

    fn push(&mut self, chunk: &str) {
        if let Some(assembler) = &mut self.assembler {
            assembler.push(chunk);
        }
    }

    /// The `response.completed` event's data: its response is stored.
    fn complete_response(self, data: &str) {
        match serde_json::from_str::<serde_json::Value>(data) {
            Ok(mut event) => {
                let response = event["response"].take();
                super::cache::store_response(&self.state, &self.lookup, &self.provider, response);
            }
            Err(_) => tracing::debug!("stream not cached: its final event was unreadable"),
        }
    }

    fn complete(self) {
        let Some(assembler) = self.assembler else {
            return;
        };
        match assembler.finish() {
            Some(completion) => {
                super::cache::store(
                    &self.state,
                    &self.lookup,
                    &self.provider,
                    completion,
                    self.flight,
                );
            }
            None => tracing::debug!("stream not cached: a chunk was unreadable"),
        }
    }
}

/// Builds the streamed response from the events held while the attempt waited for content
/// (`held`; empty when a quiet upstream was released before its first event) and the rest of
/// the stream. `headers` are the gateway's own response headers (provider, cache).
pub fn respond(
    mut log: RequestLog,
    held: VecDeque<StreamEvent>,
    events: Box<EventStream>,
    upstream_started: Instant,
    headers: &[(&'static str, HeaderValue)],
    wire: Wire,
) -> Response {
    log.first_byte = Some(log.started.elapsed());
    log.status = 200;
    let (collector, strip_usage, responses) = match wire {
        Wire::Chat {
            collector,
            strip_usage,
        } => (collector.map(|c| *c), strip_usage, false),
        Wire::Responses { collector } => (collector.map(|c| *c), false, true),
    };
    let relay = Relay {
        events,
        keepalive: log.state().config().stream_keepalive,
        log,
        upstream_started,
        pending: held,
        finished: false,
        collector,
        strip_usage,
        responses,
        last_event: None,
    };
    let body = Body::from_stream(stream::unfold(relay, next_frame));
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Tells nginx-style reverse proxies in front of the gateway not to buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    for (name, value) in headers {
        h.insert(*name, value.clone());
    }
    response
}

async fn next_frame(mut relay: Relay) -> Option<(Result<Bytes, Infallible>, Relay)> {
    if relay.finished {
        return None;
    }
    let event = loop {
        let event = match relay.pending.pop_front() {
            Some(event) => Ok(event),
            None => match relay.keepalive {
                None => relay.events.next().await?,
                Some(quiet) => match tokio::time::timeout(quiet, relay.events.next()).await {
                    Ok(event) => event?,
                    // The upstream is quiet (a model thinking): a comment, which every SSE
                    // reader skips, keeps the client and any proxy between from timing out.
                    // Waiting for the next event again loses nothing (`next` is cancel-safe).
                    Err(_) => return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), relay)),
                },
            },
        };
        // The usage chunk the gateway asked for on the client's behalf (for its accounting) is
        // read, not relayed.
        if let (true, Ok(StreamEvent::Chunk(data))) = (relay.strip_usage, &event)
            && is_usage_only(data)
        {
            observe_usage(&mut relay.log, data);
            if let Some(collector) = &mut relay.collector {
                collector.push(data);
            }
            continue;
        }
        break event;
    };
    let frame = match event {
        Ok(StreamEvent::Chunk(data)) => {
            observe_usage(&mut relay.log, &data);
            if let Some(collector) = &mut relay.collector {
                collector.push(&data);
            }
            // A client that did not ask for usage gets chunks without it, as from OpenAI.
            match relay
                .strip_usage
                .then(|| without_null_usage(&data))
                .flatten()
            {
                Some(stripped) => Bytes::from(data_frame(&stripped)),
                None => Bytes::from(data_frame(&data)),
            }
        }
        Ok(StreamEvent::Done) => {
            relay.finished = true;
            if let Some(collector) = relay.collector.take() {
                collector.complete();
            }
            relay.log.outcome = Outcome::Ok;
            relay.log.upstream = Some(relay.upstream_started.elapsed());
            relay.log.settle();
            Bytes::from_static(b"data: [DONE]\n\n")
        }
        Ok(StreamEvent::Named { name, data, last }) => {
            if last {
                relay.finished = true;
                relay.log.usage = ResponsesUsageProbe::read(data.as_bytes()).or(relay.log.usage);
                // A response that failed, or an error event, ends the stream as it came; the
                // request did not succeed.
                if matches!(name.as_str(), "response.failed" | "error") {
                    relay.log.outcome = Outcome::StreamFailed;
                    relay.log.error = Some(UpstreamError::InBand(String::new()).label());
                } else {
                    relay.log.outcome = Outcome::Ok;
                }
                if let Some(collector) = relay.collector.take()
                    && name == "response.completed"
                {
                    collector.complete_response(&data);
                }
                relay.log.upstream = Some(relay.upstream_started.elapsed());
                relay.log.settle();
            }
            let mut frame = format!("event: {name}\n");
            frame.push_str(&data_frame(&data));
            relay.last_event = Some(data);
            Bytes::from(frame)
        }
        Err(err) => {
            relay.finished = true;
            relay.log.outcome = Outcome::StreamFailed;
            relay.log.error = Some(err.label());
            relay.log.upstream = Some(relay.upstream_started.elapsed());
            tracing::warn!(request_id = %relay.log.request_id, target = relay.log.target.as_deref(), error = %err, "upstream stream failed after the response head");
            if relay.responses {
                responses_error_frame(&err, next_sequence(relay.last_event.as_deref()))
            } else {
                error_frame(&err)
            }
        }
    };
    Some((Ok(frame), relay))
}

/// One SSE event carrying `data`. Data of several lines (an upstream's pretty-printed JSON,
/// which the SSE reader joined with `\n`) goes out as several `data:` lines, so the client
/// joins it back the same; one `data:` line would end the event's data at the first newline.
fn data_frame(data: &str) -> String {
    let mut frame = String::with_capacity(data.len() + 8);
    for line in data.split('\n') {
        frame.push_str("data: ");
        frame.push_str(line);
        frame.push('\n');
    }
    frame.push('\n');
    frame
}

/// Whether a chunk has a `usage` that is not `null`. With `stream_options.include_usage` every
/// OpenAI chunk carries `"usage":null` but the last: reading each with a JSON parser to find
/// that out was two parses an event. The text `"usage":` (quote, name, quote, colon) can only
/// be a key: inside a JSON string its quotes would be escaped.
fn carries_usage(data: &str) -> bool {
    data.match_indices("\"usage\"").any(|(at, key)| {
        let rest = data[at + key.len()..].trim_start();
        rest.strip_prefix(':')
            .is_some_and(|value| !value.trim_start().starts_with("null"))
    })
}

/// A chunk's text without the `"usage":null` OpenAI ends every chunk with when the usage chunk
/// was asked for; `None` when it does not end so. Only the outer object's last key can be
/// followed by the text's final brace alone.
fn without_null_usage(data: &str) -> Option<String> {
    let inner = data.trim_end().strip_suffix('}')?.trim_end();
    let before = inner
        .strip_suffix("null")?
        .trim_end()
        .strip_suffix(':')?
        .trim_end()
        .strip_suffix("\"usage\"")?
        .trim_end()
        .strip_suffix(',')?;
    Some(format!("{before}}}"))
}

/// The final usage chunk: `usage` and no choices.
fn is_usage_only(data: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default)]
        choices: Vec<serde::de::IgnoredAny>,
        usage: Option<serde::de::IgnoredAny>,
    }
    carries_usage(data)
        && serde_json::from_str::<Probe>(data)
            .is_ok_and(|p| p.choices.is_empty() && p.usage.is_some())
}

/// Reads `usage` from the chunks that carry it (the final one with `include_usage`).
fn observe_usage(log: &mut RequestLog, data: &str) {
    if carries_usage(data)
        && let Ok(UsageProbe { usage: Some(usage) }) = serde_json::from_str(data)
    {
        log.usage = Some(usage);
    }
}

fn error_frame(err: &UpstreamError) -> Bytes {
    let (message, code) = cut_reason(err);
    let body = ErrorBody::new(message, "upstream_error", None, Some(code.to_owned()));
    let json = serde_json::to_string(&body).unwrap_or_default();
    Bytes::from(format!("data: {json}\n\n"))
}

/// A Responses API stream's error event, as OpenAI sends one (`sequence` is its place in the
/// stream).
fn responses_error_frame(err: &UpstreamError, sequence: u64) -> Bytes {
    let (message, code) = cut_reason(err);
    let event = serde_json::json!({
        "type": "error",
        "code": code,
        "message": message,
        "param": null,
        "sequence_number": sequence,
    });
    Bytes::from(format!("event: error\ndata: {event}\n\n"))
}

/// The sequence number after the last event's (0 before any; a stream resumed with
/// `starting_after` does not start at 0).
fn next_sequence(last_event: Option<&str>) -> u64 {
    #[derive(serde::Deserialize)]
    struct Probe {
        sequence_number: Option<u64>,
    }
    last_event
        .and_then(|data| serde_json::from_str::<Probe>(data).ok())
        .and_then(|p| p.sequence_number)
        .map_or(0, |n| n.saturating_add(1))
}

/// What the client is told about a stream cut after its head: message and code.
fn cut_reason(err: &UpstreamError) -> (&'static str, &'static str) {
    if err.is_timeout() {
        (
            "The upstream stream stalled and was ended by the gateway; the response is incomplete.",
            "upstream_timeout",
        )
    } else {
        (
            "The upstream stream ended before it was complete; the response is incomplete.",
            "upstream_stream_truncated",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_usage_that_is_not_null_is_read() {
        let usage = r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#;
        assert!(carries_usage(usage));
        assert!(carries_usage(r#"{"usage" : {"prompt_tokens":1}}"#));
        for data in [
            r#"{"choices":[{"delta":{"content":"hi"}}],"usage":null}"#,
            r#"{"choices":[{"delta":{"content":"hi"}}],"usage" : null}"#,
            r#"{"choices":[{"delta":{"content":"the \"usage\": {1} of it"}}]}"#,
            r#"{"choices":[{"delta":{"content":"usage"}}]}"#,
        ] {
            assert!(!carries_usage(data), "{data}");
        }
        // A null one, then the real one (nested or later): found.
        assert!(carries_usage(
            r#"{"usage":null,"x":{"usage":{"total_tokens":3}}}"#
        ));
        assert!(is_usage_only(usage));
        assert!(!is_usage_only(
            r#"{"choices":[{"delta":{"content":"hi"}}],"usage":null}"#
        ));
    }

    #[test]
    fn a_null_usage_is_taken_off_the_end_of_a_chunk_only() {
        assert_eq!(
            without_null_usage(r#"{"id":"c","choices":[{"index":0}],"usage":null}"#).as_deref(),
            Some(r#"{"id":"c","choices":[{"index":0}]}"#)
        );
        assert_eq!(
            without_null_usage("{\"id\": \"c\", \"usage\" : null }\n").as_deref(),
            Some(r#"{"id": "c"}"#)
        );
        for kept in [
            r#"{"id":"c","choices":[]}"#,
            r#"{"id":"c","usage":{"total_tokens":3}}"#,
            r#"{"id":"c","x":{"usage":null}}"#,
            r#"{"usage":null}"#,
            r#"{"id":"c","note":"usage":null}"#,
        ] {
            assert_eq!(without_null_usage(kept), None, "{kept}");
        }
    }

    #[test]
    fn the_gateways_error_event_follows_the_last_events_number() {
        assert_eq!(next_sequence(None), 0);
        // A stream resumed after event 41 (`starting_after=41`).
        let last = r#"{"type":"response.output_text.delta","sequence_number":42,"delta":"x"}"#;
        assert_eq!(next_sequence(Some(last)), 43);
        assert_eq!(next_sequence(Some(r#"{"type":"x"}"#)), 0);
        let frame = responses_error_frame(&UpstreamError::Truncated, 43);
        let text = std::str::from_utf8(&frame).unwrap();
        assert!(text.starts_with("event: error\ndata: "), "{text}");
        let data: serde_json::Value =
            serde_json::from_str(text.trim_start_matches("event: error\ndata: ").trim()).unwrap();
        assert_eq!(data["sequence_number"], 43);
        assert_eq!(data["code"], "upstream_stream_truncated");
    }
}
