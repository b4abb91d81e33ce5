//! Upstream provider adapters.
//!
//! The OpenAI shape is the hub: each adapter turns an OpenAI-shaped request into its provider's
//! wire format, makes the HTTP call, and turns the answer (JSON or an event stream) back into the
//! OpenAI shape. A closed enum of adapters dispatches with one `match`. Errors say who is to blame
//! and whether a retry can help; choosing *which* target to call, retrying and failing over belong
//! to the gateway, not here.
//!
//! Today there is one adapter, [`openai::OpenAiCompatible`], for OpenAI and every server that
//! speaks its API.

mod error;
pub mod openai;
mod secret;
mod stream;

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;

pub use error::{Blame, UpstreamError};
pub use secret::Secret;
pub use stream::{EventStream, StreamEvent};

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

/// A successful (2xx) upstream answer.
pub enum Reply {
    /// A whole JSON body, already in the OpenAI shape.
    Json {
        status: StatusCode,
        body: Bytes,
        /// Time from sending the request to the response head.
        first_byte: Duration,
    },
    /// An event stream of OpenAI chunks, read lazily: nothing is buffered.
    Stream {
        status: StatusCode,
        events: EventStream,
        first_byte: Duration,
    },
}

/// The closed set of adapters.
#[derive(Debug, Clone)]
pub enum Provider {
    OpenAiCompatible(openai::OpenAiCompatible),
}

impl Provider {
    /// `POST /chat/completions` with a body already in this provider's accepted shape.
    pub async fn chat(&self, body: Bytes, stream: bool) -> Result<Reply, UpstreamError> {
        match self {
            Provider::OpenAiCompatible(p) => p.chat(body, stream).await,
        }
    }

    /// `POST /embeddings`.
    pub async fn embeddings(&self, body: Bytes) -> Result<Reply, UpstreamError> {
        match self {
            Provider::OpenAiCompatible(p) => p.embeddings(body).await,
        }
    }

    /// The model ids the upstream says it serves.
    pub async fn list_models(&self) -> Result<Vec<String>, UpstreamError> {
        match self {
            Provider::OpenAiCompatible(p) => p.list_models().await,
        }
    }

    /// The short name of the adapter kind, for logs and `/v1/models`.
    pub fn kind(&self) -> &'static str {
        match self {
            Provider::OpenAiCompatible(_) => "openai",
        }
    }
}
