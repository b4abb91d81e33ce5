use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt};

use crate::transport::{Body, BoxError};
use crate::{UpstreamError, anthropic, gemini};

/// One event of an OpenAI-shaped stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The `data` of one event: a `chat.completion.chunk` as JSON text (exactly as the upstream
    /// sent it for OpenAI-compatible upstreams; translated for the others).
    Chunk(String),
    /// The `data: [DONE]` terminator. Nothing follows it.
    Done,
}

type RawEvents = Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<BoxError>>> + Send>>;

/// How a provider's events become OpenAI chunks.
pub(crate) enum Dialect {
    /// Already OpenAI chunks: relayed as they are once known to be JSON.
    OpenAi,
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
            Dialect::Anthropic(t) => t.event(&event.event, &event.data, out),
            Dialect::Gemini(t) => t.event(&event.data, out),
        }
    }

    /// The upstream closed the stream: a clean end only where the dialect says it is complete.
    fn end(&mut self, out: &mut VecDeque<StreamEvent>) -> Result<(), UpstreamError> {
        match self {
            Dialect::OpenAi | Dialect::Anthropic(_) => Err(UpstreamError::Truncated),
            Dialect::Gemini(t) => t.end(out),
        }
    }
}

/// An upstream event stream, read one event at a time as the bytes arrive, in the OpenAI shape.
///
/// A stream that ends before its final event, breaks, sends something unreadable or stays silent
/// longer than the idle timeout yields one error and then nothing: a cut stream never looks like
/// a clean end.
pub struct EventStream {
    events: RawEvents,
    idle: Duration,
    dialect: Dialect,
    ready: VecDeque<StreamEvent>,
    finished: bool,
}

impl EventStream {
    pub(crate) fn new(body: Body, idle: Duration, dialect: Dialect) -> Self {
        Self {
            events: Box::pin(http_body_util::BodyDataStream::new(body).eventsource()),
            idle,
            dialect,
            ready: VecDeque::new(),
            finished: false,
        }
    }

    /// The next event, or `None` after `[DONE]` or after the error that ended the stream.
    pub async fn next(&mut self) -> Option<Result<StreamEvent, UpstreamError>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                if event == StreamEvent::Done {
                    self.ready.clear();
                    self.finished = true;
                }
                return Some(Ok(event));
            }
            if self.finished {
                return None;
            }
            let step = match tokio::time::timeout(self.idle, self.events.next()).await {
                Err(_) => Err(UpstreamError::IdleTimeout(self.idle)),
                Ok(None) => self.dialect.end(&mut self.ready),
                Ok(Some(Err(EventStreamError::Transport(e)))) => Err(UpstreamError::from_body(&*e)),
                Ok(Some(Err(e))) => Err(UpstreamError::Malformed(e.to_string())),
                // Keep-alive or comment-only events carry nothing to relay.
                Ok(Some(Ok(event))) if event.data.is_empty() => Ok(()),
                Ok(Some(Ok(event))) => self.dialect.event(&event, &mut self.ready),
            };
            if let Err(err) = step {
                self.finished = true;
                self.ready.clear();
                return Some(Err(err));
            }
        }
    }
}
