use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt};

use crate::UpstreamError;

/// One event of an OpenAI-shaped stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The `data` of one event: a `chat.completion.chunk` (or an in-band error object) as JSON
    /// text, exactly as the upstream sent it.
    Chunk(String),
    /// The `data: [DONE]` terminator. Nothing follows it.
    Done,
}

type RawEvents =
    Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<reqwest::Error>>> + Send>>;

/// An upstream event stream, read one event at a time as the bytes arrive.
///
/// A stream that ends without `[DONE]`, breaks, or stays silent longer than the idle timeout
/// yields one error and then nothing: a cut stream never looks like a clean end.
pub struct EventStream {
    events: RawEvents,
    idle: Duration,
    finished: bool,
}

impl EventStream {
    pub(crate) fn new(response: reqwest::Response, idle: Duration) -> Self {
        Self {
            events: Box::pin(response.bytes_stream().eventsource()),
            idle,
            finished: false,
        }
    }

    /// The next event, or `None` after `[DONE]` or after the error that ended the stream.
    pub async fn next(&mut self) -> Option<Result<StreamEvent, UpstreamError>> {
        if self.finished {
            return None;
        }
        loop {
            let item = match tokio::time::timeout(self.idle, self.events.next()).await {
                Err(_) => Err(UpstreamError::IdleTimeout(self.idle)),
                Ok(None) => Err(UpstreamError::Truncated),
                Ok(Some(Err(EventStreamError::Transport(e)))) => {
                    Err(UpstreamError::from_reqwest(e))
                }
                Ok(Some(Err(e))) => Err(UpstreamError::Transport(e.to_string())),
                Ok(Some(Ok(event))) => {
                    if event.data.is_empty() {
                        // Keep-alive or comment-only event: nothing to relay.
                        continue;
                    }
                    if event.data.trim() == "[DONE]" {
                        Ok(StreamEvent::Done)
                    } else {
                        Ok(StreamEvent::Chunk(event.data))
                    }
                }
            };
            if !matches!(item, Ok(StreamEvent::Chunk(_))) {
                self.finished = true;
            }
            return Some(item);
        }
    }
}
