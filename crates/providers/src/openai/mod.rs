//! OpenAI and every server that speaks its API (Groq, Together, Mistral, DeepSeek, OpenRouter,
//! vLLM, Ollama, llama.cpp, LM Studio). The wire format *is* the hub format, so there is nothing
//! to translate: bodies pass through byte for byte.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use crate::stream::EventStream;
use crate::{Reply, Secret, Timeouts, UpstreamError};

/// Largest upstream error body read (and later wrapped or passed through); the rest is dropped.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// What it takes to build an [`OpenAiCompatible`] adapter.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// Base URL including the version segment, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    pub api_key: Option<Secret>,
    /// Extra headers sent with every request (e.g. `OpenAI-Organization`).
    pub headers: Vec<(String, Secret)>,
    pub timeouts: Timeouts,
    /// Speak HTTP/2 without negotiation (h2c on plain http), for upstreams known to support it.
    pub http2_prior_knowledge: bool,
}

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

#[derive(Debug, Clone)]
pub struct OpenAiCompatible {
    client: reqwest::Client,
    /// Endpoint URLs parsed once: parsing (with IDNA) per request is measurable on the hot path.
    chat_url: reqwest::Url,
    embeddings_url: reqwest::Url,
    models_url: reqwest::Url,
    headers: HeaderMap,
    timeouts: Timeouts,
}

impl OpenAiCompatible {
    pub fn new(config: OpenAiConfig) -> Result<Self, BuildError> {
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| BuildError::HeaderName(name.clone()))?;
            let mut value = HeaderValue::from_str(value.expose())
                .map_err(|_| BuildError::HeaderValue(name.to_string()))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        if let Some(key) = &config.api_key {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                .map_err(|_| BuildError::HeaderValue(AUTHORIZATION.to_string()))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(config.timeouts.connect)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .tcp_keepalive(Duration::from_secs(60));
        // Over TLS, HTTP/2 is negotiated by ALPN when the upstream offers it. A plain-http
        // upstream only gets HTTP/2 (h2c) when the operator says it speaks it.
        let client = if config.http2_prior_knowledge {
            client.http2_prior_knowledge()
        } else {
            client
        };
        let client = client
            .build()
            .map_err(|e| BuildError::Client(e.to_string()))?;
        let base_url = config.base_url.trim_end_matches('/').to_owned();
        let url = |path: &str| {
            reqwest::Url::parse(&format!("{base_url}{path}"))
                .map_err(|e| BuildError::BaseUrl(e.to_string()))
        };
        Ok(Self {
            client,
            chat_url: url("/chat/completions")?,
            embeddings_url: url("/embeddings")?,
            models_url: url("/models")?,
            headers,
            timeouts: config.timeouts,
        })
    }

    pub async fn chat(&self, body: Bytes, stream: bool) -> Result<Reply, UpstreamError> {
        self.post(&self.chat_url, body, stream).await
    }

    pub async fn embeddings(&self, body: Bytes) -> Result<Reply, UpstreamError> {
        self.post(&self.embeddings_url, body, false).await
    }

    pub async fn list_models(&self) -> Result<Vec<String>, UpstreamError> {
        #[derive(Deserialize)]
        struct List {
            data: Vec<Entry>,
        }
        #[derive(Deserialize)]
        struct Entry {
            id: String,
        }
        let request = self
            .client
            .get(self.models_url.clone())
            .headers(self.headers.clone());
        let started = Instant::now();
        let head_timeout = self.timeouts.first_byte.min(self.timeouts.total);
        let response = self.send(request, head_timeout).await?;
        let status = response.status();
        let body = self.read_body(response, started).await?;
        if !status.is_success() {
            return Err(UpstreamError::Status {
                status,
                body,
                retry_after: None,
            });
        }
        let list: List = serde_json::from_slice(&body)
            .map_err(|e| UpstreamError::Transport(format!("unreadable model list: {e}")))?;
        Ok(list.data.into_iter().map(|e| e.id).collect())
    }

    async fn post(
        &self,
        url: &reqwest::Url,
        body: Bytes,
        stream: bool,
    ) -> Result<Reply, UpstreamError> {
        let mut request = self
            .client
            .post(url.clone())
            .headers(self.headers.clone())
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
            let retry_after = retry_after(response.headers());
            let body = self.read_error_body(response).await;
            return Err(UpstreamError::Status {
                status,
                body,
                retry_after,
            });
        }
        if is_event_stream(response.headers()) {
            return Ok(Reply::Stream {
                status,
                events: EventStream::new(response, self.timeouts.stream_idle),
                first_byte,
            });
        }
        let body = self.read_body(response, started).await?;
        Ok(Reply::Json {
            status,
            body,
            first_byte,
        })
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

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

/// `retry-after-ms` (OpenAI's) wins over `Retry-After` in seconds. HTTP dates are ignored.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
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
    }

    #[test]
    fn debug_output_hides_the_key() {
        let p = OpenAiCompatible::new(OpenAiConfig {
            base_url: "http://127.0.0.1:1/v1/".into(),
            api_key: Some(Secret::new("sk-very-secret")),
            headers: vec![("OpenAI-Organization".into(), Secret::new("org-secret"))],
            timeouts: Timeouts::default(),
            http2_prior_knowledge: false,
        })
        .unwrap();
        let shown = format!("{p:?}");
        assert!(!shown.contains("sk-very-secret"), "{shown}");
        assert!(!shown.contains("org-secret"), "{shown}");
        assert_eq!(
            p.chat_url.as_str(),
            "http://127.0.0.1:1/v1/chat/completions"
        );
    }
}
