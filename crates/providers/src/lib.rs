//! Upstream provider adapters.
//!
//! The OpenAI shape is the hub: each adapter turns an OpenAI-shaped request into its provider's
//! wire format, makes the HTTP call, and turns the answer (JSON or an event stream) back into the
//! OpenAI shape. A closed enum of adapters dispatches with one `match`. Errors say who is to blame
//! and whether a retry can help; choosing *which* target to call, retrying and failing over belong
//! to the gateway, not here.
//!
//! Adapters: [`openai::OpenAiCompatible`] (OpenAI, Azure OpenAI and every server that speaks the
//! OpenAI API: bodies pass through untouched), [`anthropic::Anthropic`] (Messages API) and
//! [`gemini::Gemini`] (`generateContent`). Each translating adapter is a folder: `translate` (pure
//! request and response conversions), `stream` (its events to OpenAI chunks, as they arrive) and
//! `mod` (the HTTP call).

pub mod anthropic;
mod error;
pub mod gemini;
pub mod openai;
mod responses;
mod secret;
mod stream;
mod translate;
mod transport;

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;

pub use error::{Blame, UpstreamError};
pub use secret::Secret;
pub use stream::{EventStream, StreamEvent};
pub use transport::{BoxError, BuildError, RawBody};

/// How long each phase of an upstream call may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP (and TLS) connection set-up.
    pub connect: Duration,
    /// From sending the request to the response head.
    pub first_byte: Duration,
    /// Whole non-streamed response, head and body.
    pub total: Duration,
    /// Longest silence between two events of a stream (streams have no total).
    pub stream_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(300),
            total: Duration::from_secs(600),
            stream_idle: Duration::from_secs(120),
        }
    }
}

/// What every adapter is built from: where, with which credentials and limits.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The API's base URL (OpenAI: including `/v1`; Azure: the resource URL).
    pub base_url: String,
    pub api_key: Option<Secret>,
    /// Extra headers sent with every request (e.g. `OpenAI-Organization`).
    pub headers: Vec<(String, Secret)>,
    pub timeouts: Timeouts,
    /// Speak HTTP/2 without negotiation (h2c on plain http), for upstreams known to support it.
    pub http2_prior_knowledge: bool,
}

/// One chat completion to send upstream.
#[derive(Debug, Clone)]
pub struct ChatCall {
    /// The client's request body, OpenAI-shaped, exactly as it arrived.
    pub body: Bytes,
    /// The model to ask the upstream for, when it differs from the body's (aliases,
    /// `provider/model` names).
    pub model: Option<String>,
    pub stream: bool,
    /// Pass-through mode: the caller's own provider key, used instead of the target's.
    pub api_key: Option<Secret>,
}

/// A call on a stored Responses API response (`GET`/`DELETE /responses/{id}`,
/// `POST /responses/{id}/cancel`, `GET /responses/{id}/input_items`).
#[derive(Debug, Clone)]
pub struct StoredCall<'a> {
    pub method: http::Method,
    /// The path below `/responses/`: the id, and the operation if any (`resp_1/cancel`).
    pub path: &'a str,
    /// The query string as the client sent it (`limit`, `after`, `stream`, `starting_after`...).
    pub query: Option<&'a str>,
    /// The answer is an event stream (`GET /responses/{id}?stream=true`).
    pub stream: bool,
    /// Pass-through mode: the caller's own provider key.
    pub api_key: Option<&'a Secret>,
}

/// A request on one of the OpenAI API's other routes (moderations, images, audio), forwarded
/// as it came: the body is not read, whatever its type (JSON, or a multipart upload).
#[derive(Debug, Clone)]
pub struct ForwardCall<'a> {
    /// The path below the base URL: `moderations`, `audio/speech`...
    pub path: &'a str,
    /// The query string as the client sent it.
    pub query: Option<&'a str>,
    /// The model the request names (Azure: the deployment that serves the route).
    pub model: Option<&'a str>,
    /// The client's `Content-Type` (a multipart body's boundary included).
    pub content_type: Option<&'a http::HeaderValue>,
    pub body: Bytes,
    /// Pass-through mode: the caller's own provider key.
    pub api_key: Option<&'a Secret>,
}

/// A successful (2xx) answer to a [`ForwardCall`]: its status, type and body as they came.
pub struct Forwarded {
    pub status: StatusCode,
    pub content_type: Option<http::HeaderValue>,
    pub body: RawBody,
    /// Longest silence allowed between two frames of the body.
    pub idle: Duration,
}

/// A successful (2xx) upstream answer, in the OpenAI shape.
pub enum Reply {
    /// A whole JSON body.
    Json {
        status: StatusCode,
        body: Bytes,
        /// Time from sending the request to the response head.
        first_byte: Duration,
    },
    /// An event stream of OpenAI chunks, read lazily: nothing is buffered.
    Stream {
        status: StatusCode,
        events: Box<EventStream>,
        first_byte: Duration,
    },
}

/// The closed set of adapters.
#[derive(Debug, Clone)]
pub enum Provider {
    OpenAiCompatible(openai::OpenAiCompatible),
    Anthropic(anthropic::Anthropic),
    Gemini(gemini::Gemini),
}

impl Provider {
    /// `POST` a chat completion, translated to and from the provider's wire format.
    pub async fn chat(&self, call: ChatCall) -> Result<Reply, UpstreamError> {
        match self {
            Provider::OpenAiCompatible(p) => p.chat(call).await,
            Provider::Anthropic(p) => p.chat(call).await,
            Provider::Gemini(p) => p.chat(call).await,
        }
    }

    /// `POST /completions`, legacy text completions (OpenAI-compatible and Azure upstreams
    /// only: it is not translated). Streams are chat-shaped: chunks and `[DONE]`.
    pub async fn completions(&self, call: ChatCall) -> Result<Reply, UpstreamError> {
        match self {
            Provider::OpenAiCompatible(p) => p.completions(call).await,
            Provider::Anthropic(_) | Provider::Gemini(_) => Err(UpstreamError::Unsupported {
                param: "model".to_owned(),
                message: format!(
                    "Text completions (/v1/completions) are forwarded to OpenAI-compatible \
                     targets only, and this model is served by the {} API; route it to an \
                     OpenAI-compatible target, or use /v1/chat/completions.",
                    self.kind()
                ),
            }),
        }
    }

    /// `POST /responses`, OpenAI's Responses API: forwarded to OpenAI-flavoured upstreams, and
    /// translated through a chat completion (see `responses.rs`) for Anthropic, Gemini, Azure
    /// and OpenAI-compatible servers that answer that route with a 404 or 405 of their own.
    /// `call.stream` reads the answer as its named events.
    pub async fn responses(&self, call: ChatCall) -> Result<Reply, UpstreamError> {
        if let Provider::OpenAiCompatible(p) = self
            && p.has_responses_api()
        {
            match p.responses(call.clone()).await {
                // A server without the Responses API (its router's 404 or 405, not an OpenAI
                // error): the request goes through its chat completions instead.
                Err(err) if no_such_route(&err) => {}
                other => return other,
            }
        }
        // As a chat completion, translated as usual, and its answer back.
        let request = parse_request(&call.body)?;
        let (chat, context) = responses::request(&request, call.stream)?;
        let body = serde_json::to_vec(&chat)
            .map(Bytes::from)
            .map_err(|e| UpstreamError::Transport(format!("could not encode the request: {e}")))?;
        Ok(match self.chat(ChatCall { body, ..call }).await? {
            Reply::Json {
                status,
                body,
                first_byte,
            } => Reply::Json {
                status,
                body: responses::response(&body, &context)?,
                first_byte,
            },
            Reply::Stream {
                status,
                mut events,
                first_byte,
            } => {
                events.as_responses(responses::Translator::new(context));
                Reply::Stream {
                    status,
                    events,
                    first_byte,
                }
            }
        })
    }

    /// A stored response's route (`/responses/{id}...`; OpenAI-flavoured upstreams only).
    pub async fn stored_response(&self, call: StoredCall<'_>) -> Result<Reply, UpstreamError> {
        match self {
            Provider::OpenAiCompatible(p) => p.stored_response(call).await,
            Provider::Anthropic(_) | Provider::Gemini(_) => Err(no_stored_responses(self.kind())),
        }
    }

    /// Whether the target takes `path`, one of the OpenAI API's other routes, for `model`
    /// ([`Provider::forward`]): OpenAI and the servers that speak its API under one base URL,
    /// and Azure for a named model (its deployment) on the routes a deployment has; never
    /// Anthropic or Gemini.
    pub fn forwards(&self, path: &str, model: Option<&str>) -> bool {
        matches!(self, Provider::OpenAiCompatible(p) if p.forwards(path, model))
    }

    /// `POST {base_url}/{path}` with the client's body and content type, the answer relayed as
    /// it came (see [`Provider::forwards`]).
    pub async fn forward(&self, call: ForwardCall<'_>) -> Result<Forwarded, UpstreamError> {
        match self {
            Provider::OpenAiCompatible(p) if p.forwards(call.path, call.model) => {
                p.forward(call).await
            }
            _ => Err(UpstreamError::Unsupported {
                param: "url".to_owned(),
                message: format!(
                    "This {} target does not take /{} for this request.",
                    self.kind(),
                    call.path
                ),
            }),
        }
    }

    /// `POST /embeddings` (OpenAI-compatible upstreams only).
    pub async fn embeddings(
        &self,
        body: Bytes,
        model: Option<&str>,
        api_key: Option<&Secret>,
    ) -> Result<Reply, UpstreamError> {
        match self {
            Provider::OpenAiCompatible(p) => p.embeddings(body, model, api_key).await,
            Provider::Gemini(p) => p.embeddings(body, model, api_key).await,
            Provider::Anthropic(_) => Err(UpstreamError::Unsupported {
                param: "model".to_owned(),
                message: "Anthropic has no embeddings API; route embeddings to an \
                          OpenAI-compatible or Gemini target."
                    .to_owned(),
            }),
        }
    }

    /// The model ids the upstream says it serves.
    pub async fn list_models(&self) -> Result<Vec<String>, UpstreamError> {
        match self {
            Provider::OpenAiCompatible(p) => p.list_models().await,
            Provider::Anthropic(p) => p.list_models().await,
            Provider::Gemini(p) => p.list_models().await,
        }
    }

    /// Whether a Responses API request may be kept at this upstream (OpenAI's own API, which
    /// stores responses unless told not to); the others answer it through a chat completion
    /// and keep nothing.
    pub fn keeps_responses(&self) -> bool {
        matches!(self, Provider::OpenAiCompatible(p) if p.has_responses_api())
    }

    /// The short name of the adapter kind, for logs and `/v1/models`.
    pub fn kind(&self) -> &'static str {
        match self {
            Provider::OpenAiCompatible(p) => p.kind(),
            Provider::Anthropic(_) => "anthropic",
            Provider::Gemini(_) => "gemini",
        }
    }
}

/// Whether an upstream error is a server's "no such route" (a 404 or 405 whose body is not an
/// OpenAI error: OpenAI's own 404s, an unknown model for one, are).
fn no_such_route(err: &UpstreamError) -> bool {
    let UpstreamError::Status { status, body, .. } = err else {
        return false;
    };
    let openai_error = serde_json::from_slice::<serde_json::Value>(body)
        .is_ok_and(|v| v.get("error").is_some_and(serde_json::Value::is_object));
    matches!(status.as_u16(), 404 | 405) && !openai_error
}

/// Why a target holds no stored response: only OpenAI's Responses API stores them.
pub(crate) fn no_stored_responses(kind: &str) -> UpstreamError {
    UpstreamError::Unsupported {
        param: "response_id".to_owned(),
        message: format!("A {kind} target stores no responses."),
    }
}

/// The request's JSON object, for adapters that translate it.
pub(crate) fn parse_request(
    body: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, UpstreamError> {
    serde_json::from_slice(body).map_err(|_| UpstreamError::Unsupported {
        param: "body".to_owned(),
        message: "The request body must be a JSON object.".to_owned(),
    })
}

/// Seconds since the Unix epoch, for `created` fields.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Fixtures recorded in each provider's wire format, for the translation snapshot tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::collections::VecDeque;

    use crate::StreamEvent;

    pub(crate) fn read(path: &str) -> String {
        let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
    }

    pub(crate) fn json(path: &str) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(&read(path)).unwrap()
    }

    /// The `(event, data)` pairs of a recorded event stream.
    pub(crate) fn sse(path: &str) -> Vec<(String, String)> {
        read(path)
            .split("\n\n")
            .filter(|block| !block.trim().is_empty())
            .map(|block| {
                let mut name = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                (name, data)
            })
            .collect()
    }

    /// The fixture request with a conversation holding empty texts: a whole message, and one
    /// part beside a text.
    pub(crate) fn with_empty_texts() -> serde_json::Map<String, serde_json::Value> {
        let mut request = json("openai_request.json");
        request.remove("tools");
        request.remove("tool_choice");
        request.insert(
            "messages".into(),
            serde_json::json!([
                {"role": "system", "content": ""},
                {"role": "user", "content": ""},
                {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "Hello"}]},
                {"role": "assistant", "content": "Hi."},
                {"role": "user", "content": "How are you?"}
            ]),
        );
        request
    }

    /// A translated stream as the cache assembles it, and the translated JSON answer, each
    /// with `created` zeroed (each side stamps its own time): the two to compare.
    pub(crate) fn assembled_and_json(
        out: VecDeque<StreamEvent>,
        json: &[u8],
    ) -> (serde_json::Value, serde_json::Value) {
        let mut assembler = reprise_cache::Assembler::new();
        for event in out {
            if let StreamEvent::Chunk(data) = event {
                assembler.push(&data);
            }
        }
        let mut from_stream = assembler.finish().unwrap();
        let mut from_json: serde_json::Value = serde_json::from_slice(json).unwrap();
        from_stream["created"] = 0.into();
        from_json["created"] = 0.into();
        (from_stream, from_json)
    }

    /// Translated events as JSON values (`"[DONE]"` for the terminator).
    pub(crate) fn chunks(out: VecDeque<StreamEvent>) -> Vec<serde_json::Value> {
        out.into_iter()
            .map(|e| match e {
                StreamEvent::Chunk(data) => serde_json::from_str(&data).unwrap(),
                StreamEvent::Done => serde_json::Value::from("[DONE]"),
                StreamEvent::Named { .. } => panic!("a translator made a Responses API event"),
            })
            .collect()
    }
}
