//! The HTTP call every adapter makes: one pooled client per target, the phase timeouts, and the
//! reading of bodies and error bodies. Adapters differ only in URLs, headers and what they do with
//! the bytes.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use crate::{Secret, Timeouts, UpstreamError};

/// Largest upstream error body read (and later wrapped or passed through); the rest is dropped.
const MAX_ERROR_BODY: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid header name {0:?}")]
    HeaderName(String),
    #[error("invalid value for header {0:?}")]
    HeaderValue(String),
    #[error("could not build the HTTP client: {0}")]
    Client(String),
    #[error("invalid base URL: {0}")]
    BaseUrl(String),
}

/// A 2xx answer before the adapter has looked at it.
pub(crate) enum Answer {
    Whole {
        status: StatusCode,
        body: Bytes,
        first_byte: Duration,
    },
    Stream {
        status: StatusCode,
        response: reqwest::Response,
        first_byte: Duration,
    },
}

impl Answer {
    /// The adapter's reply: a whole body converted by `json`, a stream read in `dialect`.
    pub(crate) fn into_reply(
        self,
        idle: Duration,
        json: impl FnOnce(Bytes) -> Result<Bytes, UpstreamError>,
        dialect: impl FnOnce() -> crate::stream::Dialect,
    ) -> Result<crate::Reply, UpstreamError> {
        Ok(match self {
            Answer::Whole {
                status,
                body,
                first_byte,
            } => crate::Reply::Json {
                status,
                body: json(body)?,
                first_byte,
            },
            Answer::Stream {
                status,
                response,
                first_byte,
            } => crate::Reply::Stream {
                status,
                events: crate::EventStream::new(response, idle, dialect()),
                first_byte,
            },
        })
    }
}

/// Turns a provider's error body into an OpenAI-shaped one (identity for OpenAI-compatible).
pub(crate) type ErrorShape = fn(StatusCode, &[u8]) -> Bytes;

/// The header that carries the API key, and whether its value is `Bearer KEY`.
#[derive(Debug, Clone, Copy)]
struct KeyHeader {
    name: &'static str,
    bearer: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    key_header: Option<KeyHeader>,
    /// Sent with every request; values marked sensitive so they never show in debug output.
    headers: HeaderMap,
    pub(crate) timeouts: Timeouts,
}

impl Http {
    pub(crate) fn new(
        timeouts: Timeouts,
        http2_prior_knowledge: bool,
        headers: &[(String, Secret)],
    ) -> Result<Self, BuildError> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            insert_secret(&mut map, name, value.expose())?;
        }
        let client = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .tcp_keepalive(Duration::from_secs(60));
        // Over TLS, HTTP/2 is negotiated by ALPN when the upstream offers it. A plain-http
        // upstream only gets HTTP/2 (h2c) when the operator says it speaks it.
        let client = if http2_prior_knowledge {
            client.http2_prior_knowledge()
        } else {
            client
        };
        let client = client
            .build()
            .map_err(|e| BuildError::Client(e.to_string()))?;
        Ok(Self {
            client,
            key_header: None,
            headers: map,
            timeouts,
        })
    }

    /// Adds a header sent with every request (credentials: marked sensitive).
    pub(crate) fn with_header(mut self, name: &str, value: &str) -> Result<Self, BuildError> {
        insert_secret(&mut self.headers, name, value)?;
        Ok(self)
    }

    /// Names the header the API key travels in, and sets the target's own key (if any).
    pub(crate) fn with_key(
        mut self,
        name: &'static str,
        bearer: bool,
        key: Option<&Secret>,
    ) -> Result<Self, BuildError> {
        self.key_header = Some(KeyHeader { name, bearer });
        if let Some(key) = key {
            insert_secret(&mut self.headers, name, &key_value(bearer, key.expose()))?;
        }
        Ok(self)
    }

    /// The headers of one request: the target's, with the caller's own key instead of the
    /// target's in pass-through mode.
    fn request_headers(&self, key: Option<&Secret>) -> Result<HeaderMap, UpstreamError> {
        let mut headers = self.headers.clone();
        if let (Some(key), Some(h)) = (key, self.key_header) {
            insert_secret(&mut headers, h.name, &key_value(h.bearer, key.expose())).map_err(
                |_| UpstreamError::Unsupported {
                    param: "authorization".to_owned(),
                    message: "The API key is not a valid HTTP header value.".to_owned(),
                },
            )?;
        }
        Ok(headers)
    }

    /// `POST url` with a JSON body. A non-2xx answer becomes [`UpstreamError::Status`] with its
    /// body shaped by `errors`.
    pub(crate) async fn post(
        &self,
        url: reqwest::Url,
        body: Bytes,
        stream: bool,
        errors: ErrorShape,
        key: Option<&Secret>,
    ) -> Result<Answer, UpstreamError> {
        let mut request = self
            .client
            .post(url)
            .headers(self.request_headers(key)?)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if stream {
            request = request.header(ACCEPT, "text/event-stream");
        }
        let started = Instant::now();
        // A stream's head must come within the first-byte timeout; a whole response also within
        // the total, so the head wait is the smaller of the two.
        let head_timeout = if stream {
            self.timeouts.first_byte
        } else {
            self.timeouts.first_byte.min(self.timeouts.total)
        };
        let response = self.send(request, head_timeout).await?;
        let first_byte = started.elapsed();
        let status = response.status();
        if !status.is_success() {
            return Err(self.status_error(response, errors).await);
        }
        if is_event_stream(response.headers()) {
            return Ok(Answer::Stream {
                status,
                response,
                first_byte,
            });
        }
        let body = self.read_body(response, started).await?;
        Ok(Answer::Whole {
            status,
            body,
            first_byte,
        })
    }

    /// `GET url`, the whole body of a 2xx answer.
    pub(crate) async fn get(
        &self,
        url: reqwest::Url,
        errors: ErrorShape,
    ) -> Result<Bytes, UpstreamError> {
        let request = self.client.get(url).headers(self.headers.clone());
        let started = Instant::now();
        let head_timeout = self.timeouts.first_byte.min(self.timeouts.total);
        let response = self.send(request, head_timeout).await?;
        if !response.status().is_success() {
            return Err(self.status_error(response, errors).await);
        }
        self.read_body(response, started).await
    }

    /// Sends the request and waits for the response head, at most `limit`.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        limit: Duration,
    ) -> Result<reqwest::Response, UpstreamError> {
        match tokio::time::timeout(limit, request.send()).await {
            Err(_) if limit < self.timeouts.first_byte => {
                Err(UpstreamError::TotalTimeout(self.timeouts.total))
            }
            Err(_) => Err(UpstreamError::FirstByteTimeout(self.timeouts.first_byte)),
            Ok(Err(e)) if e.is_timeout() => Err(UpstreamError::Connect(
                "connection attempt timed out".to_owned(),
            )),
            Ok(Err(e)) => Err(UpstreamError::from_reqwest(e)),
            Ok(Ok(response)) => Ok(response),
        }
    }

    /// Reads a whole body within what is left of the total timeout.
    async fn read_body(
        &self,
        response: reqwest::Response,
        started: Instant,
    ) -> Result<Bytes, UpstreamError> {
        let left = self.timeouts.total.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, response.bytes()).await {
            Err(_) => Err(UpstreamError::TotalTimeout(self.timeouts.total)),
            Ok(Err(e)) => Err(UpstreamError::from_reqwest(e)),
            Ok(Ok(body)) => Ok(body),
        }
    }

    /// A non-2xx answer as an error: status, `Retry-After`, and the body in the OpenAI shape.
    async fn status_error(&self, response: reqwest::Response, errors: ErrorShape) -> UpstreamError {
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = self.read_error_body(response).await;
        UpstreamError::Status {
            status,
            body: errors(status, &body),
            retry_after,
        }
    }

    /// Reads at most [`MAX_ERROR_BODY`] of an error body; a body that cannot be read is empty.
    async fn read_error_body(&self, mut response: reqwest::Response) -> Bytes {
        let mut body = Vec::new();
        let read = async {
            while let Ok(Some(chunk)) = response.chunk().await {
                body.extend_from_slice(&chunk);
                if body.len() >= MAX_ERROR_BODY {
                    body.truncate(MAX_ERROR_BODY);
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(self.timeouts.total, read).await;
        Bytes::from(body)
    }
}

fn key_value(bearer: bool, key: &str) -> String {
    if bearer {
        format!("Bearer {key}")
    } else {
        key.to_owned()
    }
}

fn insert_secret(map: &mut HeaderMap, name: &str, value: &str) -> Result<(), BuildError> {
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| BuildError::HeaderName(name.to_owned()))?;
    let mut value =
        HeaderValue::from_str(value).map_err(|_| BuildError::HeaderValue(name.to_string()))?;
    value.set_sensitive(true);
    map.insert(name, value);
    Ok(())
}

/// Parses `base` + `path` once, at build time: parsing (with IDNA) per request is measurable on
/// the hot path.
pub(crate) fn endpoint(base: &str, path: &str) -> Result<reqwest::Url, BuildError> {
    let base = base.trim_end_matches('/');
    reqwest::Url::parse(&format!("{base}{path}")).map_err(|e| BuildError::BaseUrl(e.to_string()))
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

/// `retry-after-ms` (OpenAI's) wins over `Retry-After` in seconds. HTTP dates are ignored.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    header("retry-after")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// The OpenAI error body `{"error": {"message", "type", "param", "code"}}`.
pub(crate) fn openai_error(message: &str, kind: &str, code: Option<&str>) -> Bytes {
    let body = serde_json::json!({
        "error": {"message": message, "type": kind, "param": null, "code": code}
    });
    Bytes::from(body.to_string())
}

/// The OpenAI error `type` for an HTTP status, for providers whose own types do not map.
pub(crate) fn error_type_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 404 | 409 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        _ => "server_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_prefers_milliseconds() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        h.insert("retry-after-ms", HeaderValue::from_static("nan"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        h.remove("retry-after-ms");
        assert_eq!(retry_after(&h), None);
    }
}
