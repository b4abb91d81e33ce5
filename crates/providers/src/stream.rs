use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt};

use crate::transport::{BoxError, RawBody};
use crate::{UpstreamError, anthropic, gemini};

/// One event of an OpenAI-shaped stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The `data` of one event: a `chat.completion.chunk` as JSON text (exactly as the upstream
    /// sent it for OpenAI-compatible upstreams; translated for the others).
    Chunk(String),
    /// The `data: [DONE]` terminator. Nothing follows it.
    Done,
    /// One event of a Responses API stream (`POST /v1/responses`), relayed as it came: its
    /// `event:` name (the `type` in its data) and its `data`. `last` marks the event that ends
    /// the response (`response.completed`, `response.incomplete`, `response.failed` or
    /// `error`); nothing follows it. These streams have no `[DONE]`.
    Named {
        name: String,
        data: String,
        last: bool,
    },
}

impl StreamEvent {
    /// Whether nothing follows this event.
    pub fn is_last(&self) -> bool {
        match self {
            StreamEvent::Done => true,
            StreamEvent::Named { last, .. } => *last,
            StreamEvent::Chunk(_) => false,
        }
    }
}

/// The Responses API events after which a stream is complete.
const RESPONSE_ENDS: [&str; 4] = [
    "response.completed",
    "response.incomplete",
    "response.failed",
    "error",
];

type RawEvents = Pin<Box<dyn Stream<Item = RawEvent> + Send>>;

/// How a provider's events become OpenAI chunks.
pub(crate) enum Dialect {
    /// Already OpenAI chunks: relayed as they are once known to be JSON.
    OpenAi,
    /// OpenAI's Responses API: named events, relayed as they are once known to be JSON.
    Responses,
    Anthropic(anthropic::stream::Translator),
    Gemini(gemini::stream::Translator),
}

impl Dialect {
    /// Turns one upstream event into zero or more OpenAI events.
    fn event(
        &mut self,
        event: &Event,
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<(), UpstreamError> {
        match self {
            Dialect::OpenAi => {
                let data = event.data.trim();
                if data == "[DONE]" {
                    out.push_back(StreamEvent::Done);
                } else if serde_json::from_str::<serde::de::IgnoredAny>(data).is_ok() {
                    out.push_back(StreamEvent::Chunk(event.data.clone()));
                } else {
                    return Err(UpstreamError::Malformed(
                        "an event's data is not JSON".to_owned(),
                    ));
                }
                Ok(())
            }
            Dialect::Responses => {
                #[derive(serde::Deserialize)]
                struct Probe {
                    #[serde(rename = "type")]
                    kind: Option<String>,
                }
                let Ok(Probe { kind }) = serde_json::from_str::<Probe>(&event.data) else {
                    return Err(UpstreamError::Malformed(
                        "an event's data is not a JSON object".to_owned(),
                    ));
                };
                // The event's name is its data's type; an unnamed event (SSE's default
                // "message") takes the type as its name.
                let name = match (event.event.as_str(), kind) {
                    ("" | "message", Some(kind)) => kind,
                    (name, _) => name.to_owned(),
                };
                let last = RESPONSE_ENDS.contains(&name.as_str());
                out.push_back(StreamEvent::Named {
                    name,
                    data: event.data.clone(),
                    last,
                });
                Ok(())
            }
            Dialect::Anthropic(t) => t.event(&event.event, &event.data, out),
            Dialect::Gemini(t) => t.event(&event.data, out),
        }
    }

    /// The upstream closed the stream: a clean end only where the dialect says it is complete.
    fn end(&mut self, out: &mut VecDeque<StreamEvent>) -> Result<(), UpstreamError> {
        match self {
            Dialect::OpenAi | Dialect::Responses | Dialect::Anthropic(_) => {
                Err(UpstreamError::Truncated)
            }
            Dialect::Gemini(t) => t.end(out),
        }
    }
}

/// An upstream event stream, read one event at a time as the bytes arrive, in the OpenAI shape.
///
/// A stream that ends before its final event, breaks, sends something unreadable or stays silent
/// longer than the idle timeout yields one error and then nothing: a cut stream never looks like
/// a clean end. Silent means no bytes at all: keep-alive comments (`: ping`), which make no
/// event, still show the upstream is there (a model thinking for minutes).
pub struct EventStream {
    events: RawEvents,
    idle: Duration,
    activity: Arc<Activity>,
    dialect: Dialect,
    ready: VecDeque<StreamEvent>,
    /// A chat stream read as the Responses API: its chunks become that API's events.
    responses: Option<crate::responses::Translator>,
    /// Events ready to hand out: the dialect's, or the translator's made from them.
    converted: VecDeque<StreamEvent>,
    finished: bool,
}

impl EventStream {
    pub(crate) fn new(body: RawBody, idle: Duration, dialect: Dialect) -> Self {
        let activity = Arc::new(Activity {
            opened: Instant::now(),
            last: AtomicU64::new(0),
        });
        let seen = activity.clone();
        let bytes = http_body_util::BodyDataStream::new(body).inspect(move |_| {
            let now = millis(seen.opened.elapsed());
            seen.last.store(now, Ordering::Relaxed);
        });
        Self {
            events: Box::pin(bytes.eventsource()),
            idle,
            activity,
            dialect,
            ready: VecDeque::new(),
            responses: None,
            converted: VecDeque::new(),
            finished: false,
        }
    }

    /// Reads this chat stream as the Responses API's events.
    pub(crate) fn as_responses(&mut self, translator: crate::responses::Translator) {
        self.responses = Some(translator);
    }

    /// The next event, or `None` after the last (`[DONE]`, or the event that ends a Responses
    /// API stream) or after the error that ended the stream.
    pub async fn next(&mut self) -> Option<Result<StreamEvent, UpstreamError>> {
        loop {
            if let Some(event) = self.converted.pop_front() {
                if event.is_last() {
                    self.converted.clear();
                    self.ready.clear();
                    self.finished = true;
                }
                return Some(Ok(event));
            }
            // The dialect's events pass to `converted`, through the Responses API translator
            // when there is one.
            if let Some(event) = self.ready.pop_front() {
                match (&mut self.responses, event) {
                    (Some(translator), StreamEvent::Chunk(data)) => {
                        if let Err(err) = translator.chunk(&data, &mut self.converted) {
                            self.finished = true;
                            self.ready.clear();
                            return Some(Err(err));
                        }
                    }
                    (Some(translator), StreamEvent::Done) => translator.done(&mut self.converted),
                    (_, event) => self.converted.push_back(event),
                }
                continue;
            }
            if self.finished {
                return None;
            }
            let step = match self.next_raw().await {
                None => Err(UpstreamError::IdleTimeout(self.idle)),
                Some(None) => self.dialect.end(&mut self.ready),
                Some(Some(Err(EventStreamError::Transport(e)))) => {
                    Err(UpstreamError::from_body(&*e))
                }
                Some(Some(Err(e))) => Err(UpstreamError::Malformed(e.to_string())),
                // Keep-alive or comment-only events carry nothing to relay.
                Some(Some(Ok(event))) if event.data.is_empty() => Ok(()),
                Some(Some(Ok(event))) => self.dialect.event(&event, &mut self.ready),
            };
            if let Err(err) = step {
                self.finished = true;
                self.ready.clear();
                return Some(Err(err));
            }
        }
    }
    /// The next raw event, or `None` once no bytes have come for the idle timeout.
    async fn next_raw(&mut self) -> Option<Option<RawEvent>> {
        loop {
            let last = Duration::from_millis(self.activity.last.load(Ordering::Relaxed));
            let quiet = self.activity.opened.elapsed().saturating_sub(last);
            let left = self.idle.checked_sub(quiet).filter(|d| !d.is_zero())?;
            // Dropping `next()` on a timeout loses nothing: a part-read event stays buffered.
            if let Ok(event) = tokio::time::timeout(left, self.events.next()).await {
                return Some(event);
            }
        }
    }
}

type RawEvent = Result<Event, EventStreamError<BoxError>>;

/// When the stream's bytes last arrived.
struct Activity {
    opened: Instant,
    /// Milliseconds after `opened`.
    last: AtomicU64,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use futures_util::StreamExt;
    use http_body_util::{BodyExt, StreamBody};
    use hyper::body::Frame;

    use super::*;

    /// A body that sends each piece after its delay.
    fn paced(pieces: Vec<(u64, &'static str)>) -> RawBody {
        let frames = futures_util::stream::iter(pieces).then(|(ms, piece)| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, BoxError>(Frame::data(Bytes::from_static(piece.as_bytes())))
        });
        BodyExt::boxed(StreamBody::new(frames))
    }

    /// Every event of an OpenAI stream of `pieces`, with an idle timeout of 1 s.
    async fn drain(pieces: Vec<(u64, &'static str)>) -> Vec<Result<StreamEvent, UpstreamError>> {
        drain_in(Dialect::OpenAi, pieces).await
    }

    async fn drain_in(
        dialect: Dialect,
        pieces: Vec<(u64, &'static str)>,
    ) -> Vec<Result<StreamEvent, UpstreamError>> {
        let mut stream = EventStream::new(paced(pieces), Duration::from_secs(1), dialect);
        let mut out = Vec::new();
        while let Some(event) = stream.next().await {
            out.push(event);
        }
        out
    }

    const CHUNK: &str = "data: {\"choices\":[]}\n\n";

    #[tokio::test]
    async fn keep_alive_comments_hold_a_quiet_stream_open() {
        // 2.4 s without an event, but a comment every 0.3 s: never 1 s without bytes.
        let mut pieces = vec![(0, CHUNK)];
        pieces.extend([(300, ": keep-alive\n\n"); 8]);
        pieces.push((300, "data: [DONE]\n\n"));
        let events = drain(pieces).await;
        assert!(
            matches!(
                &events[..],
                [Ok(StreamEvent::Chunk(_)), Ok(StreamEvent::Done)]
            ),
            "{events:?}"
        );
    }

    #[tokio::test]
    async fn a_silent_stream_times_out() {
        let pieces = vec![(0, CHUNK), (1500, "data: [DONE]\n\n")];
        let events = drain(pieces).await;
        assert!(
            matches!(
                &events[..],
                [
                    Ok(StreamEvent::Chunk(_)),
                    Err(UpstreamError::IdleTimeout(_))
                ]
            ),
            "{events:?}"
        );
    }

    fn named(name: &str, data: &str, last: bool) -> StreamEvent {
        StreamEvent::Named {
            name: name.to_owned(),
            data: data.to_owned(),
            last,
        }
    }

    #[tokio::test]
    async fn responses_events_keep_their_names_and_end_at_the_final_one() {
        const CREATED: &str = r#"{"type":"response.created","sequence_number":0}"#;
        const DELTA: &str = r#"{"type":"response.output_text.delta","delta":"Hi"}"#;
        const DONE: &str = r#"{"type":"response.completed","response":{"usage":null}}"#;
        let events = drain_in(
            Dialect::Responses,
            vec![
                (0, "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0}\n\n"),
                // Unnamed: the data's type names it.
                (0, "data: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n"),
                (0, ": keep-alive\n\n"),
                (0, "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":null}}\n\n"),
                // Nothing after the final event is read.
                (0, "event: response.created\ndata: {}\n\n"),
            ],
        )
        .await;
        let events: Vec<StreamEvent> = events.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            events,
            vec![
                named("response.created", CREATED, false),
                named("response.output_text.delta", DELTA, false),
                named("response.completed", DONE, true),
            ]
        );
        // An error event ends the stream too.
        let events = drain_in(
            Dialect::Responses,
            vec![(
                0,
                "event: error\ndata: {\"type\":\"error\",\"message\":\"x\"}\n\n",
            )],
        )
        .await;
        assert!(
            matches!(&events[..], [Ok(StreamEvent::Named { last: true, .. })]),
            "{events:?}"
        );
    }

    #[tokio::test]
    async fn a_responses_stream_without_its_final_event_is_cut() {
        let delta = "data: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n";
        let events = drain_in(Dialect::Responses, vec![(0, delta)]).await;
        assert!(
            matches!(
                &events[..],
                [
                    Ok(StreamEvent::Named { last: false, .. }),
                    Err(UpstreamError::Truncated)
                ]
            ),
            "{events:?}"
        );
        // `[DONE]` is not how these streams end: it is not JSON, so the stream is broken.
        let events = drain_in(Dialect::Responses, vec![(0, "data: [DONE]\n\n")]).await;
        assert!(
            matches!(&events[..], [Err(UpstreamError::Malformed(_))]),
            "{events:?}"
        );
    }
}
