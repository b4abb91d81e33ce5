use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;

/// Who caused a failed upstream call (after pingora's `blame()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The request was wrong; the same request would fail anywhere.
    Client,
    /// The upstream failed or could not be reached.
    Upstream,
}

/// A failed upstream call. Messages never contain URLs with credentials or upstream bodies: the
/// gateway decides what the client sees.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("could not connect to the upstream: {0}")]
    Connect(String),
    #[error("the upstream sent no response head within {0:?}")]
    FirstByteTimeout(Duration),
    #[error("the upstream response did not complete within {0:?}")]
    TotalTimeout(Duration),
    #[error("the upstream stream sent nothing for {0:?}")]
    IdleTimeout(Duration),
    #[error("the upstream answered HTTP {status}")]
    Status {
        status: StatusCode,
        body: Bytes,
        retry_after: Option<Duration>,
    },
    #[error("the upstream connection failed: {0}")]
    Transport(String),
    #[error("the upstream stream ended before its final event")]
    Truncated,
    #[error("the upstream sent something unreadable: {0}")]
    Malformed(String),
    /// An error event inside a stream that had started (Anthropic's `event: error`).
    #[error("the upstream reported an error mid-stream: {0}")]
    InBand(String),
    /// The request asks for something this provider cannot do; sending it would silently change
    /// the answer. Never sent upstream.
    #[error("{message}")]
    Unsupported { param: String, message: String },
}

impl UpstreamError {
    pub fn blame(&self) -> Blame {
        match self {
            UpstreamError::Status { status, .. }
                if status.is_client_error()
                    && *status != StatusCode::TOO_MANY_REQUESTS
                    && *status != StatusCode::REQUEST_TIMEOUT =>
            {
                Blame::Client
            }
            UpstreamError::Unsupported { .. } => Blame::Client,
            _ => Blame::Upstream,
        }
    }

    /// Whether the same request may succeed if sent again (to this target or another): connection
    /// failures, timeouts, 408, 429 and 5xx. Never another 4xx.
    pub fn retryable(&self) -> bool {
        match self {
            UpstreamError::Status { status, .. } => {
                status.is_server_error()
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || *status == StatusCode::REQUEST_TIMEOUT
            }
            UpstreamError::Connect(_)
            | UpstreamError::FirstByteTimeout(_)
            | UpstreamError::TotalTimeout(_)
            | UpstreamError::IdleTimeout(_)
            | UpstreamError::Transport(_)
            | UpstreamError::Truncated
            | UpstreamError::Malformed(_)
            | UpstreamError::InBand(_) => true,
            UpstreamError::Unsupported { .. } => false,
        }
    }

    /// Whether the failure was a timeout (the gateway answers 504 rather than 502).
    /// The `Retry-After` the upstream asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            UpstreamError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The upstream's HTTP status, for errors that have one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            UpstreamError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            UpstreamError::FirstByteTimeout(_)
                | UpstreamError::TotalTimeout(_)
                | UpstreamError::IdleTimeout(_)
        )
    }

    /// A short, bounded label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            UpstreamError::Connect(_) => "connect_error",
            UpstreamError::FirstByteTimeout(_) => "first_byte_timeout",
            UpstreamError::TotalTimeout(_) => "total_timeout",
            UpstreamError::IdleTimeout(_) => "idle_timeout",
            UpstreamError::Status { .. } => "http_status",
            UpstreamError::Transport(_) => "transport_error",
            UpstreamError::Truncated => "truncated_stream",
            UpstreamError::Malformed(_) => "malformed_response",
            UpstreamError::InBand(_) => "stream_error_event",
            UpstreamError::Unsupported { .. } => "unsupported_by_provider",
        }
    }

    /// A failed upstream call from hyper's client: the connection could not be made, or the
    /// exchange broke.
    pub(crate) fn from_client(err: hyper_util::client::legacy::Error) -> Self {
        let msg = error_chain(&err);
        if err.is_connect() {
            UpstreamError::Connect(msg)
        } else {
            UpstreamError::Transport(msg)
        }
    }

    /// A response body that broke while it was read.
    pub fn from_body(err: &(dyn std::error::Error + 'static)) -> Self {
        UpstreamError::Transport(error_chain(err))
    }

    pub(crate) fn from_reqwest(err: reqwest::Error) -> Self {
        // `without_url`: some providers carry keys in the query string; never echo URLs.
        let is_connect = err.is_connect();
        let msg = error_chain(&err.without_url());
        if is_connect {
            UpstreamError::Connect(msg)
        } else {
            UpstreamError::Transport(msg)
        }
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut msg = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> UpstreamError {
        UpstreamError::Status {
            status: StatusCode::from_u16(code).unwrap(),
            body: Bytes::new(),
            retry_after: None,
        }
    }

    #[test]
    fn only_transient_failures_are_retryable() {
        for code in [429, 408, 500, 502, 503, 504] {
            assert!(status(code).retryable(), "{code}");
            assert_eq!(status(code).blame(), Blame::Upstream, "{code}");
        }
        for code in [400, 401, 403, 404, 422] {
            assert!(!status(code).retryable(), "{code}");
            assert_eq!(status(code).blame(), Blame::Client, "{code}");
        }
        assert!(UpstreamError::Connect("refused".into()).retryable());
        assert!(UpstreamError::FirstByteTimeout(Duration::from_secs(1)).is_timeout());
    }
}
