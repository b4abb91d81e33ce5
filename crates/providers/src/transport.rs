//! The HTTP call every adapter makes: one pooled client per target, the phase timeouts, and the
//! reading of bodies and error bodies. Adapters differ only in URLs, headers and what they do with
//! the bytes.
//!
//! The client is hyper's pooled client over rustls (HTTP/1.1 keep-alive, HTTP/2 by ALPN or prior
//! knowledge): per request it cost about 30 % less CPU than `reqwest` over the same pool in a
//! stand-alone proxy trial, on a path where the client is the largest cost after the kernel's.
//! When the environment names an outbound proxy (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, with
//! `NO_PROXY`), calls go through `reqwest`, which applies those variables the way users expect.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as Pool;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use url::Url;

use crate::{Secret, Timeouts, UpstreamError};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An upstream response body, whichever client read it, read lazily frame by frame.
pub type RawBody = BoxBody<Bytes, BoxError>;

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);
/// TCP keep-alive on upstream connections.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// The environment variables that name an outbound proxy (as `reqwest` and curl read them).
const PROXY_VARIABLES: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

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
    #[error("could not set up TLS: {0}")]
    Tls(String),
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
        body: RawBody,
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
                body,
                first_byte,
            } => crate::Reply::Stream {
                status,
                events: Box::new(crate::EventStream::new(body, idle, dialect())),
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

/// The pooled client of one target.
#[derive(Debug, Clone)]
enum Client {
    /// hyper's client: the hot path.
    Direct(Box<Pool<HttpsConnector<HttpConnector>, Full<Bytes>>>),
    /// Through the outbound proxy the environment names.
    Proxied(reqwest::Client),
}

#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: Client,
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
        let proxied = PROXY_VARIABLES
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
        let client = if proxied {
            Client::Proxied(proxied_client(&timeouts, http2_prior_knowledge)?)
        } else {
            Client::Direct(Box::new(direct_client(&timeouts, http2_prior_knowledge)?))
        };
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
        url: &Url,
        body: Bytes,
        stream: bool,
        errors: ErrorShape,
        key: Option<&Secret>,
    ) -> Result<Answer, UpstreamError> {
        self.call(Method::POST, url, body, stream, errors, key)
            .await
    }

    /// `method url`, with a JSON body unless it is empty; as [`Http::post`].
    pub(crate) async fn call(
        &self,
        method: Method,
        url: &Url,
        body: Bytes,
        stream: bool,
        errors: ErrorShape,
        key: Option<&Secret>,
    ) -> Result<Answer, UpstreamError> {
        let mut headers = self.request_headers(key)?;
        if !body.is_empty() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if stream {
            headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        }
        let started = Instant::now();
        // A stream's head must come within the first-byte timeout; a whole response also within
        // the total, so the head wait is the smaller of the two.
        let head_timeout = if stream {
            self.timeouts.first_byte
        } else {
            self.timeouts.first_byte.min(self.timeouts.total)
        };
        let response = self.send(method, url, headers, body, head_timeout).await?;
        let first_byte = started.elapsed();
        let status = response.status();
        if !status.is_success() {
            return Err(self.status_error(response, errors).await);
        }
        if is_event_stream(response.headers()) {
            return Ok(Answer::Stream {
                status,
                body: response.into_body(),
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

    /// `POST url` with a body of any type, its answer's body left unread for the caller to
    /// relay (a non-2xx answer is an error, as for [`Http::call`]).
    pub(crate) async fn forward(
        &self,
        url: &Url,
        content_type: Option<&HeaderValue>,
        body: Bytes,
        errors: ErrorShape,
        key: Option<&Secret>,
    ) -> Result<crate::Forwarded, UpstreamError> {
        let mut headers = self.request_headers(key)?;
        if let Some(content_type) = content_type {
            headers.insert(CONTENT_TYPE, content_type.clone());
        }
        let response = self
            .send(Method::POST, url, headers, body, self.timeouts.first_byte)
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(self.status_error(response, errors).await);
        }
        Ok(crate::Forwarded {
            status,
            content_type: response.headers().get(CONTENT_TYPE).cloned(),
            body: response.into_body(),
            idle: self.timeouts.stream_idle,
        })
    }

    /// `GET url`, the whole body of a 2xx answer.
    pub(crate) async fn get(&self, url: &Url, errors: ErrorShape) -> Result<Bytes, UpstreamError> {
        let started = Instant::now();
        let head_timeout = self.timeouts.first_byte.min(self.timeouts.total);
        let response = self
            .send(
                Method::GET,
                url,
                self.headers.clone(),
                Bytes::new(),
                head_timeout,
            )
            .await?;
        if !response.status().is_success() {
            return Err(self.status_error(response, errors).await);
        }
        self.read_body(response, started).await
    }

    /// Sends the request and waits for the response head, at most `limit`.
    async fn send(
        &self,
        method: Method,
        url: &Url,
        headers: HeaderMap,
        body: Bytes,
        limit: Duration,
    ) -> Result<http::Response<RawBody>, UpstreamError> {
        let call = async {
            match &self.client {
                Client::Direct(pool) => {
                    let uri = http::Uri::try_from(url.as_str()).map_err(|_| {
                        UpstreamError::Transport("the upstream URL is not a valid URI".to_owned())
                    })?;
                    let mut request = http::Request::new(Full::new(body));
                    *request.method_mut() = method;
                    *request.uri_mut() = uri;
                    *request.headers_mut() = headers;
                    let response = pool
                        .request(request)
                        .await
                        .map_err(UpstreamError::from_client)?;
                    Ok(response.map(|b| b.map_err(BoxError::from).boxed()))
                }
                Client::Proxied(client) => {
                    let response = client
                        .request(method, url.clone())
                        .headers(headers)
                        .body(body)
                        .send()
                        .await
                        .map_err(|e| {
                            if e.is_timeout() {
                                UpstreamError::Connect("connection attempt timed out".to_owned())
                            } else {
                                UpstreamError::from_reqwest(e)
                            }
                        })?;
                    // `without_url`: some providers carry keys in the query string.
                    Ok(http::Response::from(response)
                        .map(|b| b.map_err(|e| BoxError::from(e.without_url())).boxed()))
                }
            }
        };
        match tokio::time::timeout(limit, call).await {
            Err(_) if limit < self.timeouts.first_byte => {
                Err(UpstreamError::TotalTimeout(self.timeouts.total))
            }
            Err(_) => Err(UpstreamError::FirstByteTimeout(self.timeouts.first_byte)),
            Ok(result) => result,
        }
    }

    /// Reads a whole body within what is left of the total timeout.
    async fn read_body(
        &self,
        response: http::Response<RawBody>,
        started: Instant,
    ) -> Result<Bytes, UpstreamError> {
        let left = self.timeouts.total.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, response.into_body().collect()).await {
            Err(_) => Err(UpstreamError::TotalTimeout(self.timeouts.total)),
            Ok(Err(e)) => Err(UpstreamError::from_body(&*e)),
            Ok(Ok(body)) => Ok(body.to_bytes()),
        }
    }

    /// A non-2xx answer as an error: status, `Retry-After`, and the body in the OpenAI shape.
    async fn status_error(
        &self,
        response: http::Response<RawBody>,
        errors: ErrorShape,
    ) -> UpstreamError {
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
    async fn read_error_body(&self, response: http::Response<RawBody>) -> Bytes {
        let mut body = Vec::new();
        let mut frames = response.into_body();
        let read = async {
            while let Some(Ok(frame)) = frames.frame().await {
                let Some(chunk) = frame.data_ref() else {
                    continue;
                };
                body.extend_from_slice(chunk);
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

/// hyper's pooled client over rustls: TLS with HTTP/2 by ALPN when the upstream offers it; a
/// plain-http upstream gets HTTP/2 (h2c) only when the operator says it speaks it.
fn direct_client(
    timeouts: &Timeouts,
    http2_prior_knowledge: bool,
) -> Result<Pool<HttpsConnector<HttpConnector>, Full<Bytes>>, BuildError> {
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(timeouts.connect));
    tcp.set_keepalive(Some(TCP_KEEPALIVE));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config()?)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(tcp);
    let mut builder = Pool::builder(TokioExecutor::new());
    builder
        .pool_idle_timeout(POOL_IDLE)
        .pool_timer(TokioTimer::new());
    if http2_prior_knowledge {
        builder.http2_only(true);
    }
    Ok(builder.build(connector))
}

/// `reqwest`, which applies the proxy variables (and `NO_PROXY`) itself.
fn proxied_client(
    timeouts: &Timeouts,
    http2_prior_knowledge: bool,
) -> Result<reqwest::Client, BuildError> {
    let client = reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .pool_idle_timeout(POOL_IDLE)
        .tcp_nodelay(true)
        .tcp_keepalive(TCP_KEEPALIVE)
        // Like the direct client: a redirect is the gateway's to report, not to follow.
        .redirect(reqwest::redirect::Policy::none());
    let client = if http2_prior_knowledge {
        client.http2_prior_knowledge()
    } else {
        client
    };
    client
        .build()
        .map_err(|e| BuildError::Client(e.to_string()))
}

/// The TLS set-up every target shares: the system's trusted roots and Mozilla's (webpki-roots),
/// TLS 1.2 and 1.3 with `ring`.
fn tls_config() -> Result<rustls::ClientConfig, BuildError> {
    static ROOTS: OnceLock<Arc<rustls::RootCertStore>> = OnceLock::new();
    let roots = ROOTS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        // Unreadable system certificates are skipped: the bundled roots still apply.
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        Arc::new(roots)
    });
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| BuildError::Tls(e.to_string()))?
        .with_root_certificates(Arc::clone(roots))
        .with_no_client_auth())
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
pub(crate) fn endpoint(base: &str, path: &str) -> Result<Url, BuildError> {
    let base = base.trim_end_matches('/');
    Url::parse(&format!("{base}{path}")).map_err(|e| BuildError::BaseUrl(e.to_string()))
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
